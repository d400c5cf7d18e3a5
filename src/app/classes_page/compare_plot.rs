//! The comparison on screen: the 10×10 icons on an `egui_plot` plot at their cells' (x, y) ranges
//! (x from −1 "more A" to 1 "more B", y the normalized 1-D t-SNE), the two class atlases beside
//! it, and clicks on either that pick a cell. A switch above the plot shows synthetic icons,
//! exemplar icons (each cell's most typical real patch) or both, synthetic left, exemplar right
//! (the comparison view's [`IconView`]).
use eframe::egui::{self, Color32, RichText};
use egui_plot::{HoverPosition, Line, Plot, PlotImage, PlotPoint, Polygon, VLine};

use super::{canvas, ClassesPageState, Picked};
use crate::app::atlas_view::IconView;
use crate::app::page::PageCx;
use crate::atlas::IconKind;
use crate::classes::ComparisonInfo;

pub fn area(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let st = &mut *page;
    // Taken out for the frame (the per-sample vectors are not copied every frame).
    let Some(info) = st.comparison.take() else {
        st.plot_cells = 0;
        st.plot_icons = 0;
        st.plot_exemplars = 0;
        st.plot_rects.clear();
        ui.centered_and_justified(|ui| {
            ui.label(if cx.jobs.is_running(&crate::app::job_id::JobId::Compare) {
                "the comparison appears here when its layout is done (the class atlases of A and \
                 B come first)…"
            } else {
                "choose classes A and B (or a pair of similar classes) and press Compare"
            });
        });
        return;
    };
    ui.label(
        RichText::new(format!(
            "{} vs {}: {} samples ({} of {}, {} of {}, filter {} N={}), {} cells of the {g}×{g} \
             grid with ≥ {} points",
            info.a.name,
            info.b.name,
            info.rows.len(),
            info.a_count,
            info.a.name,
            info.b_count,
            info.b.name,
            info.filter.name(),
            info.n,
            info.cells.len(),
            info.min_count,
            g = info.grid
        ))
        .strong(),
    );
    let avail = ui.available_size();
    let plot_w = (avail.x * 0.6).max(220.0);
    let side_w = (avail.x - plot_w - 12.0).max(120.0);
    let height = (avail.y - 30.0).max(200.0);
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            ui.set_width(plot_w);
            if let Some(view) = &mut st.compare_view {
                ui.horizontal(|ui| {
                    ui.label("Icons:");
                    for (v, name) in [
                        (IconView::Synthetic, "synthetic"),
                        (IconView::Exemplar, "exemplar"),
                        (IconView::SideBySide, "side by side"),
                    ] {
                        ui.selectable_value(&mut view.icon_view, v, name);
                    }
                });
            }
            plot(st, ui, &info, plot_w, height - 24.0);
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("← more {}", info.a.name)).monospace());
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.label(RichText::new(format!("more {} →", info.b.name)).monospace());
                });
            });
        });
        ui.vertical(|ui| {
            let h = (height - 40.0) / 2.0;
            for (i, name) in [(0, &info.a.name), (1, &info.b.name)] {
                ui.label(RichText::new(format!("class atlas of {name}")).strong());
                match &mut st.side_views[i] {
                    Some(view) => {
                        let events = ui
                            .allocate_ui(egui::vec2(side_w, h), |ui| canvas::show(ui, view, None))
                            .inner;
                        if let Some((grid, index)) = events.clicked {
                            st.picked = Some(Picked {
                                root: view.root.clone(),
                                grid,
                                index,
                            });
                        }
                    }
                    None => {
                        ui.allocate_ui(egui::vec2(side_w, h), |ui| {
                            ui.centered_and_justified(|ui| {
                                ui.label("the class atlas appears here when it is built…")
                            });
                        });
                    }
                }
            }
        });
    });
    st.comparison = Some(info);
}

/// One icon of a cell on the plot: its kind, its x range (the whole cell's, or a half) and its
/// texture with the tile's rectangle in it (`None` while the sheet is not loaded).
type TilePart = (IconKind, [f32; 2], Option<(egui::TextureId, egui::Rect)>);

/// One cell on the plot.
struct Tile {
    index: usize,
    x: [f32; 2],
    y: [f32; 2],
    parts: Vec<TilePart>,
}

/// One tile per comparison cell, split into the icon kinds of the comparison atlas's icon switch,
/// each with its texture once the sheet is loaded.
fn plot_tiles(st: &mut ClassesPageState, info: &ComparisonInfo) -> Vec<Tile> {
    // Icon textures of the comparison's atlas folder (loaded by its icon cache).
    let kinds: &[IconKind] = match st.compare_view.as_ref().map(|v| v.icon_view) {
        Some(IconView::Exemplar) => &[IconKind::Exemplar],
        Some(IconView::Mosaic) => &[IconKind::Mosaic],
        Some(IconView::SideBySide) => &[IconKind::Synthetic, IconKind::Exemplar],
        _ => &[IconKind::Synthetic],
    };
    let mut tiles: Vec<Tile> = info
        .cells
        .iter()
        .map(|c| {
            let w = (c.x_range[1] - c.x_range[0]) / kinds.len() as f32;
            Tile {
                index: c.index,
                x: c.x_range,
                y: c.y_range,
                parts: kinds
                    .iter()
                    .enumerate()
                    .map(|(k, &kind)| {
                        let x0 = c.x_range[0] + w * k as f32;
                        (kind, [x0, x0 + w], None)
                    })
                    .collect(),
            }
        })
        .collect();
    let Some(view) = &mut st.compare_view else {
        return tiles;
    };
    let Some(level) = view.levels.iter().find(|l| l.grid() == info.grid) else {
        return tiles;
    };
    let record = level.record.clone();
    let per = record.icons_per_sheet.max(1);
    for t in &mut tiles {
        let sheet = t.index / per;
        for (kind, _, tex) in &mut t.parts {
            if level.has_sheet(*kind, sheet) {
                *tex = view
                    .icons
                    .sheet_of(*kind, &record, sheet)
                    .map(|s| (s.texture.id(), s.uv(t.index % per, 0.0)));
            }
        }
    }
    tiles
}

/// The tiles' icons (grey where not loaded yet), the x = 0 line and the picked cell's outline.
fn draw_tiles(pui: &mut egui_plot::PlotUi<'_>, tiles: &[Tile], picked: Option<usize>) {
    for t in tiles {
        let centre_y = (t.y[0] + t.y[1]) as f64 / 2.0;
        for (kind, x, tex) in &t.parts {
            let centre = PlotPoint::new((x[0] + x[1]) as f64 / 2.0, centre_y);
            // A half of a cell: the cell's shape at half its size, centred in height.
            let w = (x[1] - x[0]) * 0.96;
            let h = (t.y[1] - t.y[0]) * 0.96 * w / ((t.x[1] - t.x[0]) * 0.96);
            let size = egui::vec2(w, h);
            let name = format!("cell {} ({})", t.index, kind.name());
            match tex {
                Some((id, uv)) => pui.image(
                    PlotImage::new(name, *id, centre, size)
                        .uv(*uv)
                        .allow_hover(false),
                ),
                None => pui.polygon(
                    Polygon::new(name, rect_points(*x, t.y, 0.02))
                        .fill_color(Color32::from_gray(222))
                        .stroke(egui::Stroke::NONE)
                        .allow_hover(false),
                ),
            }
        }
    }
    pui.vline(
        VLine::new("x = 0", 0.0)
            .color(Color32::from_gray(150))
            .allow_hover(false),
    );
    if let Some(t) = picked.and_then(|i| tiles.iter().find(|t| t.index == i)) {
        let mut pts = rect_points(t.x, t.y, 0.0);
        pts.push(pts[0]);
        pui.line(
            Line::new("picked", pts)
                .color(Color32::from_rgb(230, 120, 0))
                .width(2.5)
                .allow_hover(false),
        );
    }
}

/// Where each cell is on screen (tests click there) and how many showed their icons.
fn record_tiles(st: &mut ClassesPageState, tiles: &[Tile], tr: &egui_plot::PlotTransform) {
    st.plot_rects = tiles
        .iter()
        .map(|t| {
            let p0 = tr.position_from_point(&PlotPoint::new(t.x[0] as f64, t.y[0] as f64));
            let p1 = tr.position_from_point(&PlotPoint::new(t.x[1] as f64, t.y[1] as f64));
            (t.index, egui::Rect::from_two_pos(p0, p1))
        })
        .collect();
    st.plot_cells = tiles.len();
    st.plot_icons = tiles
        .iter()
        .filter(|t| t.parts.iter().all(|p| p.2.is_some()))
        .count();
    st.plot_exemplars = tiles
        .iter()
        .filter(|t| {
            t.parts
                .iter()
                .any(|p| p.0 == IconKind::Exemplar && p.2.is_some())
        })
        .count();
}

/// A drag that starts on a cell carries its icon to the attack workbench.
fn drag_icon(st: &ClassesPageState, ui: &egui::Ui, info: &ComparisonInfo) {
    let g = info.grid;
    let origin = ui.input(|i| i.pointer.press_origin());
    let hit = origin.and_then(|o| st.plot_rects.iter().find(|(_, r)| r.contains(o)));
    let (Some((index, _)), Some(root), Some(view)) = (hit, &st.compare_root, &st.compare_view)
    else {
        return;
    };
    if let Some(level) = view.levels.iter().find(|l| l.grid() == g) {
        let name = format!(
            "icon of cell {index} of the comparison {} vs {}",
            info.a.name, info.b.name
        );
        let source = crate::attack::patch_source::icon_source(
            root,
            g,
            *index,
            &level.record,
            view.manifest.icon_size,
            name,
        );
        egui::DragAndDrop::set_payload(ui.ctx(), source);
    }
}

fn plot(st: &mut ClassesPageState, ui: &mut egui::Ui, info: &ComparisonInfo, w: f32, h: f32) {
    let g = info.grid;
    let tiles = plot_tiles(st, info);
    let picked = st
        .picked
        .as_ref()
        .filter(|p| st.compare_root.as_ref() == Some(&p.root))
        .map(|p| p.index);
    let hover_cells: Vec<([f32; 2], [f32; 2], String, usize)> = info
        .cells
        .iter()
        .map(|c| (c.x_range, c.y_range, c.label.clone(), c.count))
        .collect();
    let find = move |p: PlotPoint| -> Option<usize> {
        hover_cells.iter().position(|(x, y, _, _)| {
            (x[0] as f64..=x[1] as f64).contains(&p.x) && (y[0] as f64..=y[1] as f64).contains(&p.y)
        })
    };
    let labels: Vec<(String, usize)> = info
        .cells
        .iter()
        .map(|c| (c.label.clone(), c.count))
        .collect();
    let find_label = find.clone();
    let (a, b) = (info.a.name.clone(), info.b.name.clone());
    let response = Plot::new("class_comparison")
        .width(w)
        .height(h)
        .x_axis_label(RichText::new(st.x_label.clone()).monospace())
        .y_axis_label(st.y_label.clone())
        .default_x_bounds(-1.0, 1.0)
        .default_y_bounds(0.0, 1.0)
        .allow_scroll(false)
        // A drag on an icon carries it to the attack workbench (instead of panning).
        .allow_drag(false)
        .show_grid(false)
        .label_formatter(move |hp| {
            let p = match hp {
                HoverPosition::NearDataPoint { position, .. } => *position,
                HoverPosition::Elsewhere { position } => *position,
            };
            let side = if p.x < 0.0 { &a } else { &b };
            Some(match find_label(p) {
                Some(i) => format!(
                    "{} ({} samples)\nmore {side} ({:+.2})",
                    labels[i].0, labels[i].1, p.x
                ),
                None => format!("more {side} ({:+.2})", p.x),
            })
        })
        .show(ui, |pui| draw_tiles(pui, &tiles, picked));
    let tr = response.transform;
    record_tiles(st, &tiles, &tr);
    if response.response.drag_started() {
        drag_icon(st, ui, info);
    }
    if response.response.clicked() {
        if let Some(pos) = response.response.interact_pointer_pos() {
            if let (Some(i), Some(root)) = (find(tr.value_from_position(pos)), &st.compare_root) {
                st.picked = Some(Picked {
                    root: root.clone(),
                    grid: g,
                    index: info.cells[i].index,
                });
            }
        }
    }
}

/// The corners of the cell `x` × `y`, shrunk by `inset` of its size.
fn rect_points(x: [f32; 2], y: [f32; 2], inset: f32) -> Vec<[f64; 2]> {
    let (dx, dy) = ((x[1] - x[0]) * inset, (y[1] - y[0]) * inset);
    let (x0, x1) = ((x[0] + dx) as f64, (x[1] - dx) as f64);
    let (y0, y1) = ((y[0] + dy) as f64, (y[1] - dy) as f64);
    vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
}
