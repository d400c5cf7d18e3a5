//! The Atlas and Layers pages: build controls, view settings, class focus and export on the
//! left, the selected cell on the right, the canvas in the middle.
use eframe::egui::{self, RichText};

use super::atlas_view::{canvas, ClassFocus, LevelChoice};
use super::page::Action;
use super::widgets::progress_row;
use super::{AtlasApp, JobId};

/// At most this many matches are listed under the class search box.
const CLASS_LIST: usize = 200;

pub fn controls(app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::Panel::left("atlas_controls")
        .default_size(270.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                build_section(app, ui);
                ui.separator();
                view_section(app, ui);
                ui.separator();
                focus_section(app, ui);
            });
        });
}

fn build_section(app: &mut AtlasApp, ui: &mut egui::Ui) {
    ui.heading("Build");
    let Some(info) = app.model.clone() else {
        ui.label("waiting for the model");
        return;
    };
    ui.label(format!(
        "{} on {} images",
        info.name,
        app.images_total.max(app.rows.len())
    ));
    ui.horizontal_wrapped(|ui| {
        ui.label("layers:");
        for (l, on) in info.layers.iter().zip(app.build_layers.iter_mut()) {
            ui.checkbox(on, &l.name);
        }
    });
    ui.horizontal(|ui| {
        ui.label("positions per image:");
        ui.add(egui::DragValue::new(&mut app.build_positions).range(1..=64));
    });
    ui.horizontal(|ui| {
        ui.label("icons:");
        for preset in ["maco", "preview", "paper"] {
            if ui
                .selectable_label(app.preset == preset, preset)
                .on_hover_text(match preset {
                    "maco" => {
                        "MACO phase icons, 128 steps: the most legible synthetic icons on the \
                         legibility benchmark (docs/legibility.md)"
                    }
                    "preview" => "lucid's recipe, 128 steps, 1 try: quick",
                    _ => "lucid's recipe, 1024 steps, best of 4 tries: the paper's, slow on a CPU",
                })
                .clicked()
            {
                app.preset = preset.into();
            }
        }
    });
    if app.jobs.is_running(&JobId::Build) {
        match app.jobs.progress(&JobId::Build) {
            Some(p) => progress_row(ui, p),
            None => {
                ui.spinner();
            }
        }
        if ui.button("Cancel build").clicked() {
            app.cancel_build();
        }
    } else if ui.button("Build atlas").clicked() {
        app.start_build();
    }
    if let Some(line) = app.log.last() {
        ui.label(RichText::new(line).italics().small());
    }
}

fn view_section(app: &mut AtlasApp, ui: &mut egui::Ui) {
    ui.heading("View");
    if app.atlases.is_empty() {
        ui.label("no atlas yet: build one above");
        return;
    }
    ui.horizontal_wrapped(|ui| {
        ui.label("layer:");
        for i in 0..app.atlases.len() {
            let name = app.atlases[i].manifest.layer.clone();
            if ui.selectable_label(app.current_atlas == i, name).clicked() {
                app.current_atlas = i;
            }
        }
    });
    let Some(view) = app.atlases.get_mut(app.current_atlas) else {
        return;
    };
    ui.horizontal_wrapped(|ui| {
        ui.label("grid:");
        ui.selectable_value(&mut view.level_choice, LevelChoice::Auto, "auto");
        for g in view.levels.iter().map(|l| l.grid()).collect::<Vec<_>>() {
            ui.selectable_value(&mut view.level_choice, LevelChoice::Grid(g), format!("{g}"));
        }
    });
    // The icon switch: feature visualizations, real patches, or both.
    ui.horizontal_wrapped(|ui| {
        ui.label("icons:");
        for v in super::atlas_view::IconView::ALL {
            ui.selectable_value(&mut view.icon_view, v, v.label());
        }
    });
    ui.add(
        egui::Slider::new(&mut view.density, 0.2..=8.0)
            .logarithmic(true)
            .text("density"),
    );
    ui.checkbox(&mut view.show_labels, "labels");
    ui.checkbox(&mut view.show_minimap, "minimap");
    ui.horizontal(|ui| {
        if ui.button("Zoom in").clicked() {
            view.camera.zoom = (view.camera.zoom * 1.5).min(super::atlas_view::MAX_ZOOM);
        }
        if ui.button("Zoom out").clicked() {
            view.camera.zoom = (view.camera.zoom / 1.5).max(super::atlas_view::MIN_ZOOM);
        }
        if ui.button("Reset view").clicked() {
            // The canvas fits the opening view again in its next frame.
            view.home = None;
        }
    });
    ui.label(
        RichText::new(format!(
            "{} points, {}×{} grid on screen, {} cells drawn, zoom {:.1}×",
            view.manifest.points,
            view.drawn_grid,
            view.drawn_grid,
            view.drawn_cells,
            view.camera.zoom
        ))
        .small(),
    );
    ui.label(
        RichText::new(
            "drag to pan, scroll or pinch to zoom, arrows and +/− too, double-click zooms in",
        )
        .small()
        .weak(),
    );
}

fn focus_section(app: &mut AtlasApp, ui: &mut egui::Ui) {
    ui.heading("Class focus");
    let names: Vec<String> = match app.atlases.get(app.current_atlas) {
        Some(v) => v.manifest.class_names.clone(),
        None => return,
    };
    ui.add(egui::TextEdit::singleline(&mut app.class_search).hint_text("search classes"));
    if let Some(f) = &mut app.focus {
        ui.label(format!(
            "focus: {}",
            names.get(f.class).map(String::as_str).unwrap_or("?")
        ));
        ui.horizontal(|ui| {
            ui.radio_value(&mut f.positive, true, "positive influence");
            ui.radio_value(&mut f.positive, false, "negative");
        });
        ui.add(egui::Slider::new(&mut f.intensity, 0.5..=2.0).text("intensity"));
        if ui.button("Clear focus").clicked() {
            app.focus = None;
        }
    }
    let query = app.class_search.to_lowercase();
    if query.is_empty() {
        return;
    }
    egui::ScrollArea::vertical()
        .id_salt("class_list")
        .max_height(180.0)
        .show(ui, |ui| {
            let matches = names
                .iter()
                .enumerate()
                .filter(|(_, n)| n.to_lowercase().contains(&query))
                .take(CLASS_LIST);
            for (i, name) in matches {
                let on = app.focus.as_ref().is_some_and(|f| f.class == i);
                if ui.selectable_label(on, name).clicked() {
                    app.focus = Some(ClassFocus {
                        class: i,
                        positive: true,
                        intensity: 1.0,
                    });
                }
            }
        });
}

/// The row above the canvas: what is on screen, and export.
fn toolbar(app: &mut AtlasApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        if ui.button("View as PNG").clicked() {
            let ctx = ui.ctx().clone();
            app.export_view_png(&ctx);
        }
        if ui.button("Cells as CSV").clicked() {
            app.export_cells(false);
        }
        if ui.button("Cells as JSON").clicked() {
            app.export_cells(true);
        }
        ui.label(
            RichText::new(format!("exports go to {}", app.exports_dir().display()))
                .small()
                .weak(),
        );
    });
}

/// The selected cell: large icon, top classes.
pub fn details(app: &mut AtlasApp, ui: &mut egui::Ui) {
    let Some(view) = app.atlases.get_mut(app.current_atlas) else {
        return;
    };
    let Some((grid, index)) = view.selected else {
        app.examples.clear(&mut app.jobs);
        return;
    };
    let Some(level) = view.level(grid) else {
        return;
    };
    let record = level.record.clone();
    let Some(cell) = level.cells.get(index).cloned() else {
        return;
    };
    let names = view.manifest.class_names.clone();
    app.examples.request(
        &mut app.jobs,
        view.root.clone(),
        grid,
        index,
        cell.x,
        cell.y,
    );
    let examples = &app.examples;
    let mut close = false;
    let mut actions = vec![];
    let mut use_icon = false;
    let mut icon_rect = None;
    let top = cell.top_name(&names);
    let icon_source = crate::attack::patch_source::icon_source(
        &view.root,
        grid,
        index,
        &record,
        view.manifest.icon_size,
        format!(
            "icon of cell ({}, {}) of {} (top class {top})",
            cell.x, cell.y, view.manifest.layer
        ),
    );
    egui::Panel::right("cell_details")
        .default_size(300.0)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(format!("Cell ({}, {})", cell.x, cell.y));
                if ui.small_button("close").clicked() {
                    close = true;
                }
            });
            ui.label(format!(
                "{grid}×{grid} grid · average of {} activations",
                cell.count
            ));
            match view.icons.large_icon(&record, index) {
                Some(tex) => {
                    let id = egui::Id::unique(("atlas_icon_drag", grid, index));
                    let icon = ui
                        .dnd_drag_source(id, icon_source.clone(), |ui| {
                            ui.image((tex.id(), egui::vec2(240.0, 240.0)))
                        })
                        .response
                        .on_hover_text("drag onto the Patch attack tab to use the icon as a patch");
                    icon_rect = Some(icon.rect);
                }
                None => {
                    ui.add_sized([240.0, 240.0], egui::Spinner::new());
                }
            }
            use_icon = ui
                .button("Use the icon as patch")
                .on_hover_text("put it in the Patch attack page's tray")
                .clicked();
            ui.label(RichText::new("Top classes (mean attribution)").strong());
            egui::Grid::new("cell_top").striped(true).show(ui, |ui| {
                for (class, v) in &cell.top {
                    ui.label(names.get(*class).map(String::as_str).unwrap_or("?"));
                    ui.label(format!("{v:.3}"));
                    ui.end_row();
                }
            });
            ui.separator();
            egui::ScrollArea::vertical()
                .id_salt("examples")
                .show(ui, |ui| actions = examples.show(ui));
        });
    if close {
        view.selected = None;
    }
    app.details_icon_rect = icon_rect;
    if use_icon {
        actions.push(Action::UseAsPatch(icon_source));
    }
    for action in actions {
        app.apply(action);
    }
}

pub fn canvas(app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::CentralPanel::default().show(ui, |ui| {
        let focus = app.focus.clone();
        if app.atlases.get(app.current_atlas).is_none() {
            ui.centered_and_justified(|ui| {
                ui.label(if app.jobs.is_running(&JobId::Build) {
                    "the atlas appears here as soon as its layout is done…"
                } else if app.auto_build {
                    "loading the model and the images: the atlas builds by itself, then appears here…"
                } else {
                    "no atlas for this project yet: choose layers and press Build atlas"
                });
            });
            app.canvas_rect = None;
            return;
        }
        toolbar(app, ui);
        let Some(view) = app.atlases.get_mut(app.current_atlas) else {
            return;
        };
        app.canvas_rect = Some(ui.available_rect_before_wrap());
        canvas::show(ui, view, focus.as_ref());
    });
}

/// Several layers' atlases side by side, all with the same class focus.
pub fn layers(app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::CentralPanel::default().show(ui, |ui| {
        if app.atlases.is_empty() {
            ui.label("no atlases yet: build atlases for one or more layers on the Atlas page");
            return;
        }
        let focus = app.focus.clone();
        let names = app
            .atlases
            .first()
            .map(|v| v.manifest.class_names.clone())
            .unwrap_or_default();
        ui.label(match &focus {
            Some(f) => format!(
                "class focus on every layer: {} (set it on the Atlas page)",
                names.get(f.class).map(String::as_str).unwrap_or("?")
            ),
            None => "no class focus (set one on the Atlas page)".into(),
        });
        let n = app.atlases.len();
        ui.columns(n, |cols| {
            for (col, view) in cols.iter_mut().zip(app.atlases.iter_mut()) {
                col.label(RichText::new(&view.manifest.layer).strong());
                canvas::show(col, view, focus.as_ref());
            }
        });
    });
}
