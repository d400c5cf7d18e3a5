//! The workbench: the image with the patch on it, moved by dragging its body, resized by
//! dragging its corner handle (or the mouse wheel over it), and the model's live answer beside it.
//!
//! While the user drags, the picture is a preview (background and patch textures, scaled by the
//! GPU); as soon as the classifier has answered for the current rectangle, the exact composite it
//! classified (Lanczos-resized patch, opaque paste) replaces the preview, so what is on screen is
//! what the probabilities are about.
use eframe::egui::{self, Color32, RichText, Sense, Stroke};

use super::{add_patch, place, AttackPageState, PatchSource, Placed};
use crate::app::page::PageCx;
use crate::attack::Corner;

/// Side of the resize handle, in points.
const HANDLE: f32 = 12.0;
/// Bars in the top-k list.
const TOP: usize = 5;

/// What a drag on the image does, decided where it started.
#[derive(Clone, Copy, Debug, PartialEq)]
enum DragMode {
    Move,
    Resize,
}

pub fn show(page: &mut AttackPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let names = cx.class_names();
    let st = &mut *page;
    let Some(target) = &st.target else {
        let (rect, _) = ui.allocate_exact_size(
            egui::vec2(ui.available_width().min(448.0), 300.0),
            Sense::hover(),
        );
        st.image_rect = Some(rect);
        ui.painter().rect_stroke(
            rect,
            6.0,
            Stroke::new(1.0, Color32::GRAY),
            egui::StrokeKind::Inside,
        );
        ui.painter().text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "drop an image here (or open one on the left)",
            egui::FontId::proportional(15.0),
            Color32::GRAY,
        );
        return;
    };
    let side = target.background.width() as f32;
    let background = target.texture.as_ref().map(|t| t.id());
    let avail = ui.available_size();
    let size = (avail.x - 330.0).min(avail.y - 8.0).clamp(224.0, 560.0);
    let mut dropped = None;
    ui.horizontal_top(|ui| {
        let (rect, resp) = ui.allocate_exact_size(egui::vec2(size, size), Sense::click_and_drag());
        st.image_rect = Some(rect);
        let scale = size / side;
        let painter = ui.painter_at(rect);
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        let exact = st
            .placed
            .is_some_and(|p| st.probs_for == Some((p.patch, p.at.pixels())));
        match (&st.composite_texture, exact) {
            (Some(tex), true) => {
                painter.image(tex.id(), rect, uv, Color32::WHITE);
            }
            _ => {
                if let Some(id) = background {
                    painter.image(id, rect, uv, Color32::WHITE);
                }
                if let Some(p) = st.placed {
                    if let Some(tex) = st.patch(p.patch).and_then(|p| p.texture.as_ref()) {
                        painter.image(tex.id(), patch_rect(rect, scale, p), uv, Color32::WHITE);
                    }
                }
            }
        }
        if let Some(p) = st.placed {
            let r = patch_rect(rect, scale, p);
            painter.rect_stroke(
                r,
                0.0,
                Stroke::new(1.5, Color32::YELLOW),
                egui::StrokeKind::Outside,
            );
            painter.rect_filled(handle_rect(r), 2.0, Color32::YELLOW);
        }
        interact(st, &resp, rect, scale);
        // A patch dragged from the tray, the atlas or the comparison plot.
        if resp.dnd_hover_payload::<PatchSource>().is_some() {
            painter.rect_stroke(
                rect,
                0.0,
                Stroke::new(3.0, Color32::LIGHT_BLUE),
                egui::StrokeKind::Inside,
            );
        }
        if let Some(payload) = resp.dnd_release_payload::<PatchSource>() {
            let pos = ui.ctx().pointer_latest_pos().unwrap_or(rect.center());
            let rel = egui::pos2((pos.x - rect.min.x) / size, (pos.y - rect.min.y) / size);
            dropped = Some(((*payload).clone(), rel));
        }
        ui.vertical(|ui| {
            ui.set_width(310.0);
            answer_panel(st, ui, &names);
            ui.separator();
            placement_panel(st, ui);
        });
    });
    if let Some((source, rel)) = dropped {
        // A tray patch is already read: place it now; anything else is read first.
        match &source {
            PatchSource::Pixels { name, image } => {
                let found = page
                    .patches
                    .iter()
                    .find(|p| p.name == *name && p.image == *image)
                    .map(|p| p.key);
                match found {
                    Some(key) => place(page, key, rel),
                    None => add_patch(cx.jobs, source, Some(rel)),
                }
            }
            _ => add_patch(cx.jobs, source, Some(rel)),
        }
    }
}

/// The patch's screen rectangle.
fn patch_rect(image: egui::Rect, scale: f32, p: Placed) -> egui::Rect {
    let (x, y, w) = p.at.pixels();
    egui::Rect::from_min_size(
        image.min + egui::vec2(x as f32 * scale, y as f32 * scale),
        egui::vec2(w as f32 * scale, w as f32 * scale),
    )
}

fn handle_rect(patch: egui::Rect) -> egui::Rect {
    egui::Rect::from_center_size(patch.max, egui::vec2(HANDLE, HANDLE))
}

/// Mouse and keyboard on the image: drag to move, drag the handle (or wheel) to resize, Ctrl+Z
/// to undo, arrow keys to nudge by one pixel.
fn interact(st: &mut AttackPageState, resp: &egui::Response, rect: egui::Rect, scale: f32) {
    let side = st.side();
    let ctx = &resp.ctx;
    let mode_id = resp.id.with("drag-mode");
    if resp.drag_started() {
        let origin = ctx.input(|i| i.pointer.press_origin());
        let mode = match (st.placed, origin) {
            (Some(p), Some(o)) if handle_rect(patch_rect(rect, scale, p)).contains(o) => {
                Some(DragMode::Resize)
            }
            (Some(p), Some(o)) if patch_rect(rect, scale, p).contains(o) => Some(DragMode::Move),
            _ => None,
        };
        if mode.is_some() {
            st.push_undo();
        }
        ctx.data_mut(|d| d.insert_temp(mode_id, mode));
    }
    let mode: Option<DragMode> = ctx.data(|d| d.get_temp(mode_id)).flatten();
    if resp.dragged() {
        if let (Some(mode), Some(p)) = (mode, &mut st.placed) {
            let d = resp.drag_delta() / scale;
            let a = &mut p.at;
            match mode {
                DragMode::Move => {
                    a.x = (a.x + d.x).clamp(0.0, side - a.side);
                    a.y = (a.y + d.y).clamp(0.0, side - a.side);
                }
                DragMode::Resize => {
                    let grow = if d.x.abs() > d.y.abs() { d.x } else { d.y };
                    a.side = (a.side + grow).clamp(1.0, side - a.x.max(a.y));
                }
            }
        }
    }
    if resp.drag_stopped() {
        ctx.data_mut(|d| d.remove::<Option<DragMode>>(mode_id));
    }
    // Wheel over the patch: resize about its centre.
    if let (Some(p), Some(pos)) = (&mut st.placed, resp.hover_pos()) {
        let scroll = ctx.input(|i| i.smooth_scroll_delta.y);
        if scroll != 0.0 && patch_rect(rect, scale, *p).contains(pos) {
            let a = &mut p.at;
            let c = (a.x + a.side / 2.0, a.y + a.side / 2.0);
            a.side = (a.side * (1.0 + scroll * 0.002)).clamp(1.0, side);
            a.x = (c.0 - a.side / 2.0).clamp(0.0, side - a.side);
            a.y = (c.1 - a.side / 2.0).clamp(0.0, side - a.side);
        }
    }
    // Keys act only when no text field has the keyboard.
    if ctx.memory(|m| m.focused().is_none()) {
        let undo = ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z));
        let (dx, dy) = ctx.input(|i| {
            let k = |key| i.key_pressed(key) as i32 as f32;
            (
                k(egui::Key::ArrowRight) - k(egui::Key::ArrowLeft),
                k(egui::Key::ArrowDown) - k(egui::Key::ArrowUp),
            )
        });
        if undo {
            st.undo();
        } else if dx != 0.0 || dy != 0.0 {
            st.push_undo();
            if let Some(p) = &mut st.placed {
                p.at.x = (p.at.x.round() + dx).clamp(0.0, side - p.at.side);
                p.at.y = (p.at.y.round() + dy).clamp(0.0, side - p.at.side);
            }
        }
    }
}

/// The model's answer: top 5, and the three classes the experiment is about, before and now.
fn answer_panel(st: &AttackPageState, ui: &mut egui::Ui, names: &[String]) {
    let name = |c: usize| {
        names
            .get(c)
            .cloned()
            .unwrap_or_else(|| format!("class {c}"))
    };
    let clean = st.target.as_ref().and_then(|t| t.clean.as_ref());
    let now = if st.placed.is_some() {
        st.probs.as_ref()
    } else {
        clean
    };
    ui.label(
        RichText::new(if st.placed.is_some() {
            "With the patch"
        } else {
            "Without a patch"
        })
        .strong(),
    );
    match now {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("classifying…");
            });
        }
        Some(probs) => {
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
            for &c in order.iter().take(TOP) {
                let tint = if Some(c) == st.target_class {
                    Color32::from_rgb(200, 90, 40)
                } else if Some(c) == st.original {
                    Color32::from_rgb(60, 120, 200)
                } else {
                    Color32::from_gray(110)
                };
                ui.add(
                    egui::ProgressBar::new(probs[c])
                        .desired_width(300.0)
                        .fill(tint)
                        .text(format!("{} {:.2}%", name(c), 100.0 * probs[c])),
                );
            }
            if st.placed.is_some() && order.first().copied() == st.target_class {
                ui.colored_label(
                    Color32::from_rgb(220, 120, 40),
                    "flipped to the target class",
                );
            }
        }
    }
    ui.add_space(6.0);
    let patch_class = st
        .placed
        .and_then(|p| st.patch(p.patch))
        .and_then(|p| p.class);
    egui::Grid::new("attack_tracked")
        .striped(true)
        .show(ui, |ui| {
            ui.label("");
            ui.label(RichText::new("no patch").small());
            ui.label(RichText::new("with patch").small());
            ui.end_row();
            let rows = [
                ("original", st.original),
                ("target", st.target_class),
                ("patch class", patch_class.map(|c| c.0)),
            ];
            for (what, class) in rows {
                let Some(c) = class else { continue };
                ui.label(format!("{what}: {}", name(c)));
                let pct = |p: Option<&Vec<f32>>| {
                    p.and_then(|v| v.get(c))
                        .map_or("–".into(), |v| format!("{:.2}%", 100.0 * v))
                };
                ui.label(pct(clean));
                ui.label(if st.placed.is_some() {
                    pct(st.probs.as_ref())
                } else {
                    "–".into()
                });
                ui.end_row();
            }
        });
}

/// Where the patch is, as numbers, with the spec's corner placements and undo.
fn placement_panel(st: &mut AttackPageState, ui: &mut egui::Ui) {
    let side = st.side();
    let Some(mut placed) = st.placed else {
        ui.label(
            RichText::new(
                "drag a patch from the tray (or drop a file, an atlas icon or a dataset example) \
                 onto the image",
            )
            .weak(),
        );
        return;
    };
    let name = st
        .patch(placed.patch)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    ui.label(RichText::new(format!("Patch: {name}")).strong());
    let (x, y, w) = placed.at.pixels();
    ui.label(format!("at ({x}, {y}), {w}×{w} px of {side:.0}"));
    let mut ratio = placed.at.side / side;
    let slider = ui.add(egui::Slider::new(&mut ratio, 0.01..=0.8).text("size (of the side)"));
    // One undo step per slider drag (or per typed value), not one per frame of the drag.
    if slider.drag_started() || (slider.changed() && !slider.dragged()) {
        st.push_undo();
    }
    if slider.changed() {
        let a = &mut placed.at;
        a.side = (ratio * side).floor().max(1.0);
        a.x = a.x.min(side - a.side);
        a.y = a.y.min(side - a.side);
    }
    ui.horizontal_wrapped(|ui| {
        ui.label("corner:");
        for c in Corner::ALL {
            if ui.small_button(c.label()).clicked() {
                st.push_undo();
                // Spec §8.2: top-left at (int(px·(side−w)), int(py·(side−w))).
                let w = placed.at.side.round();
                let (px, py) = c.offsets();
                placed.at.x = px as f32 * (side - w);
                placed.at.y = py as f32 * (side - w);
            }
        }
    });
    let (mut remove, mut undo) = (false, false);
    ui.horizontal(|ui| {
        remove = ui.button("Remove patch").clicked();
        undo = ui
            .add_enabled(!st.undo.is_empty(), egui::Button::new("Undo"))
            .on_hover_text("Ctrl+Z")
            .clicked();
    });
    if undo {
        st.undo();
    } else if remove {
        st.push_undo();
        st.placed = None;
    } else {
        st.placed = Some(placed);
    }
}
