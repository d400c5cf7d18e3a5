//! The Atlas page's left panel: build, view settings (layer, grid, icons, density, zoom) and
//! class focus.
use eframe::egui::{self, RichText};

use super::AtlasPage;
use crate::app::atlas_view::{AtlasView, ClassFocus, IconView, LevelChoice, MAX_ZOOM, MIN_ZOOM};
use crate::app::page::PageCx;
use crate::app::project::Project;
use crate::app::widgets::class_matches;

pub fn panel(page: &mut AtlasPage, cx: &mut PageCx<'_>, ui: &mut egui::Ui) {
    egui::Panel::left("atlas_controls")
        .default_size(270.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                page.build_section(cx, ui);
                ui.separator();
                view_section(cx.project, ui);
                ui.separator();
                focus_section(&mut page.class_search, cx.project, ui);
            });
        });
}

fn view_section(project: &mut Project, ui: &mut egui::Ui) {
    ui.heading("View");
    if project.atlases.is_empty() {
        ui.label("no atlas yet: build one above");
        return;
    }
    ui.horizontal_wrapped(|ui| {
        ui.label("layer:");
        for (i, view) in project.atlases.iter().enumerate() {
            let on = project.current_atlas == i;
            let button = ui.selectable_label(on, layer_button_label(&project.atlases, i));
            if button
                .on_hover_text(view.root.display().to_string())
                .clicked()
            {
                project.current_atlas = i;
            }
        }
    });
    let Some(view) = project.atlases.get_mut(project.current_atlas) else {
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
        for v in IconView::ALL {
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
            view.camera.zoom = (view.camera.zoom * 1.5).min(MAX_ZOOM);
        }
        if ui.button("Zoom out").clicked() {
            view.camera.zoom = (view.camera.zoom / 1.5).max(MIN_ZOOM);
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

/// Search a class by name and pick it; the focused class tints the atlas by its attribution.
fn focus_section(search: &mut String, project: &mut Project, ui: &mut egui::Ui) {
    ui.heading("Class focus");
    let names: Vec<String> = match project.atlases.get(project.current_atlas) {
        Some(v) => v.manifest.class_names.clone(),
        None => return,
    };
    ui.add(egui::TextEdit::singleline(search).hint_text("search classes"));
    if let Some(f) = &mut project.focus {
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
            project.focus = None;
        }
    }
    let chosen = project.focus.as_ref().map(|f| f.class);
    if let Some(class) = class_matches(ui, "class_list", 180.0, search, chosen, &names) {
        project.focus = Some(ClassFocus {
            class,
            positive: true,
            intensity: 1.0,
        });
    }
}

/// The layer's name, with its atlas folder's name where two open atlases show the same layer
/// (the project's own atlas beside one opened with `--atlas`, say).
fn layer_button_label(atlases: &[AtlasView], i: usize) -> String {
    let layer = &atlases[i].manifest.layer;
    let shared = atlases
        .iter()
        .filter(|a| &a.manifest.layer == layer)
        .count()
        > 1;
    let folder = atlases[i].root.file_name().map(|f| f.to_string_lossy());
    match (shared, folder) {
        (true, Some(folder)) => format!("{layer} ({folder})"),
        _ => layer.clone(),
    }
}
