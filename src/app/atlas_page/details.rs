//! The Atlas page's right panel: the selected cell's large icon (a drag source for patches), its
//! top classes and its dataset examples.
use eframe::egui::{self, RichText};

use super::AtlasPage;
use crate::app::examples::ExampleControls;
use crate::app::page::{Action, PageCx};
use crate::attack::patch_source::icon_source;

pub fn panel(page: &mut AtlasPage, cx: &mut PageCx<'_>, ui: &mut egui::Ui) {
    let project = &mut *cx.project;
    let Some(view) = project.atlases.get_mut(project.current_atlas) else {
        return;
    };
    let Some((grid, index)) = view.selected else {
        page.examples.clear(cx.jobs);
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
    page.examples
        .request(cx.jobs, view.root.clone(), grid, index, cell.x, cell.y);
    let mut close = false;
    let mut actions = vec![];
    let mut use_icon = false;
    let mut icon_rect = None;
    let top = cell.top_name(&names);
    let icon = icon_source(
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
                    let dragged = ui
                        .dnd_drag_source(id, icon.clone(), |ui| {
                            ui.image((tex.id(), egui::vec2(240.0, 240.0)))
                        })
                        .response
                        .on_hover_text("drag onto the Patch attack tab to use the icon as a patch");
                    icon_rect = Some(dragged.rect);
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
                .show(ui, |ui| {
                    actions = page.examples.show(ui, None, ExampleControls::ContextMenu);
                });
        });
    if close {
        view.selected = None;
    }
    page.details_icon_rect = icon_rect;
    if use_icon {
        actions.push(Action::UseAsPatch(icon));
    }
    cx.actions.extend(actions);
}
