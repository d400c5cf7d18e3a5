//! The window's own parts, over every page: the tab bar (with the project's folder and the
//! errors) and the name of a patch being dragged.
use eframe::egui::{self, Color32, RichText};

use super::job_id::{JobId, Jobs};
use super::page::{Action, Tab};
use super::project::Project;
use super::widgets::progress_row;
use crate::attack::patch_source::PatchSource;

/// The tabs, in the order of the bar.
const TABS: [(Tab, &str); 7] = [
    (Tab::Home, "Home"),
    (Tab::Images, "Images"),
    (Tab::Atlas, "Atlas"),
    (Tab::Layers, "Layers"),
    (Tab::Image, "One image"),
    (Tab::Classes, "Classes"),
    (Tab::Attack, "Patch attack"),
];

/// The tab bar, the open buttons, the project's folder and the errors (each dismissable);
/// returns what the user asked for.
pub fn top_bar(ui: &mut egui::Ui, tab: Tab, project: &mut Project, jobs: &mut Jobs) -> Vec<Action> {
    let mut actions = vec![];
    egui::Panel::top("top_bar").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("Activation Atlas");
            ui.separator();
            for (each, name) in TABS {
                let tab_button = ui.selectable_label(tab == each, name);
                // Drag an icon or example over the Patch attack tab to open the page mid-drag.
                let dragged_onto =
                    each == Tab::Attack && tab != Tab::Attack && patch_over(&tab_button);
                if tab_button.clicked() || dragged_onto {
                    actions.push(Action::ShowTab(each));
                }
            }
            ui.separator();
            if ui.button("Open folder…").clicked() {
                actions.push(Action::PickFolder);
            }
            if ui.button("Open model…").clicked() {
                actions.push(Action::PickModel);
            }
            ui.separator();
            ui.label(format!("images: {}", project.images_path.display()));
            if jobs.is_running(&JobId::Open) {
                if let Some(p) = jobs.progress(&JobId::Open) {
                    progress_row(ui, p);
                }
                if ui.button("Cancel").clicked() {
                    jobs.cancel(&JobId::Open);
                }
            }
        });
        errors(ui, &mut project.errors);
    });
    actions
}

/// The errors, each with a button that dismisses it.
fn errors(ui: &mut egui::Ui, errors: &mut Vec<String>) {
    let mut dismiss = None;
    for (i, e) in errors.iter().enumerate() {
        // The button first: a long message (a deep path) would push it off the window.
        ui.horizontal(|ui| {
            if ui.small_button("dismiss").clicked() {
                dismiss = Some(i);
            }
            ui.colored_label(Color32::from_rgb(200, 40, 40), format!("Error: {e}"));
        });
    }
    if let Some(i) = dismiss {
        errors.remove(i);
    }
}

/// While a patch is dragged, its name follows the pointer (with where to drop it).
pub fn drag_indicator(ctx: &egui::Context) {
    let Some(payload) = egui::DragAndDrop::payload::<PatchSource>(ctx) else {
        return;
    };
    let Some(pos) = ctx.pointer_latest_pos() else {
        return;
    };
    egui::Area::new(egui::Id::unique("attack_drag_indicator"))
        .order(egui::Order::Tooltip)
        .fixed_pos(pos + egui::vec2(14.0, 14.0))
        .interactable(false)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.label(format!("patch: {}", payload.name()));
                ui.label(
                    RichText::new("drop it on the Patch attack tab, then on the image")
                        .small()
                        .weak(),
                );
            });
        });
}

/// Whether a patch is being dragged over `tab`. (Raw pointer geometry: the dragged picture
/// itself floats under the pointer, so egui's hover tests would say the tab is covered.)
fn patch_over(tab: &egui::Response) -> bool {
    let ctx = &tab.ctx;
    let over = ctx
        .pointer_latest_pos()
        .is_some_and(|p| tab.rect.contains(p));
    over && egui::DragAndDrop::has_payload_of_type::<PatchSource>(ctx)
}
