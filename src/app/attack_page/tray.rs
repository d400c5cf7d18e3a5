//! The patch tray: every patch gathered so far, each a drag source for the image (or click it to
//! place it), with its own top class; and the ways to add one.
use std::sync::Arc;

use eframe::egui::{self, RichText};

use super::{add_patch, cutter::Cutter, pick_patch, place, AttackPageState, PatchSource};
use crate::app::page::PageCx;

/// Thumbnail side in the tray.
const THUMB: f32 = 56.0;

fn rect_id() -> egui::Id {
    egui::Id::unique("attack_tray_rect")
}

/// The tray's screen rectangle in the last frame (where dropped files become patches).
pub fn last_rect(ctx: &egui::Context) -> Option<egui::Rect> {
    ctx.data(|d| d.get_temp(rect_id()))
}

pub fn show(page: &mut AttackPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let names = cx.class_names();
    ui.label(RichText::new("Patches").strong());
    let mut add_file = false;
    let mut add_noise = false;
    let mut cut = false;
    ui.horizontal_wrapped(|ui| {
        add_file = ui.button("Add file…").clicked();
        cut = ui
            .button("Cut from an image…")
            .on_hover_text("draw a rectangle on another image and use it as a patch")
            .clicked();
        add_noise = ui
            .button("Noise")
            .on_hover_text("a random-noise patch: the control of the paper's experiments")
            .clicked();
    });
    let st = &mut *page;
    let mut remove = None;
    let mut place_key = None;
    let top = ui.cursor().min;
    if st.patches.is_empty() {
        ui.label(
            RichText::new(
                "drop image files here, drag icons or dataset examples from the Atlas or \
                 Classes pages onto the Patch attack tab, or use the buttons above",
            )
            .weak(),
        );
    }
    let mut rects = vec![];
    for p in &st.patches {
        ui.horizontal(|ui| {
            let payload = PatchSource::Pixels {
                name: p.name.clone(),
                image: p.image.clone(),
            };
            let id = egui::Id::unique(("attack_tray_patch", p.key));
            let thumb = ui
                .dnd_drag_source(id, payload, |ui| match &p.texture {
                    Some(tex) => {
                        ui.image((tex.id(), egui::vec2(THUMB, THUMB)));
                    }
                    None => {
                        ui.add_sized([THUMB, THUMB], egui::Spinner::new());
                    }
                })
                .response
                .on_hover_text("drag onto the image, or press Place");
            rects.push((p.key, thumb.rect));
            ui.vertical(|ui| {
                ui.label(RichText::new(&p.name).small());
                let class = match p.class {
                    Some((c, prob)) => format!(
                        "alone: {} {:.1}%",
                        names.get(c).map(String::as_str).unwrap_or("?"),
                        100.0 * prob
                    ),
                    None => "alone: …".into(),
                };
                ui.label(RichText::new(class).small().weak());
                ui.horizontal(|ui| {
                    let placed = st.placed.is_some_and(|pl| pl.patch == p.key);
                    if ui
                        .add_enabled(
                            st.target.is_some() && !placed,
                            egui::Button::new("Place").small(),
                        )
                        .clicked()
                    {
                        place_key = Some(p.key);
                    }
                    if ui
                        .small_button("remove")
                        .on_hover_text("remove from the tray")
                        .clicked()
                    {
                        remove = Some(p.key);
                    }
                });
            });
        });
    }
    st.tray_rects = rects;
    let rect = egui::Rect::from_min_max(top, egui::pos2(ui.max_rect().max.x, ui.cursor().min.y));
    ui.ctx().data_mut(|d| d.insert_temp(rect_id(), rect));
    if let Some(key) = place_key {
        place(st, key, egui::pos2(0.5, 0.5));
    }
    if let Some(key) = remove {
        st.patches.retain(|p| p.key != key);
        if st.placed.is_some_and(|p| p.patch == key) {
            st.push_undo();
            st.placed = None;
        }
        // Undo entries of a removed patch would point at nothing.
        st.undo.retain(|u| u.is_none_or(|p| p.patch != key));
    }
    if cut {
        st.cutter = Some(Cutter::new(st.target.as_ref().map(|t| t.path.clone())));
    }
    if add_noise {
        let seed = st.patches.len() as u64 + 1;
        let img = crate::attack::batch::noise_patch(seed, 128);
        add_patch(
            cx.jobs,
            PatchSource::Pixels {
                name: format!("noise (seed {seed})"),
                image: Arc::new(img),
            },
            None,
        );
    }
    if add_file {
        pick_patch(cx.jobs);
    }
}
