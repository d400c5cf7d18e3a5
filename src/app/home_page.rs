//! The Home page: the ways to open a project, and the recent ones.
use eframe::egui;

use super::page::{Action, Page, PageCx, Tab};

/// The welcome page (no state of its own: the recent projects are the project's).
#[derive(Default)]
pub struct HomePage;

impl Page for HomePage {
    fn logic(&mut self, _ctx: &egui::Context, _cx: &mut PageCx<'_>) {}

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("Welcome to Activation Atlas");
            ui.label(
                "Open a folder of images (or drop one on this window), keep the embedded \
                 EfficientNet-Lite0 or open your own TorchScript model, then build the atlas.",
            );
            ui.horizontal(|ui| open_buttons(ui, cx));
            ui.separator();
            recent_projects(ui, cx);
        });
    }
}

/// "Open folder…", "Open model…" and the bundled example.
fn open_buttons(ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
    if ui.button("Open folder…").clicked() {
        cx.act(Action::PickFolder);
    }
    if ui.button("Open model…").clicked() {
        cx.act(Action::PickModel);
    }
    if ui.button("Open the bundled example").clicked() {
        cx.act(Action::OpenProject {
            model: crate::defaults::default_model(),
            images: crate::defaults::default_images(),
        });
        cx.act(Action::ShowTab(Tab::Images));
    }
}

/// The recent projects, newest first; a click reopens one on the Atlas page.
fn recent_projects(ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
    ui.heading("Recent projects");
    if cx.project.recent.is_empty() {
        ui.label("none yet");
    }
    let file_name = |p: &std::path::Path| {
        p.file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    let mut chosen = None;
    egui::Grid::new("recent").striped(true).show(ui, |ui| {
        for p in &cx.project.recent {
            if ui.link(file_name(&p.images)).clicked() {
                chosen = Some(p.clone());
            }
            ui.label(p.images.display().to_string());
            ui.label(file_name(&p.model));
            ui.end_row();
        }
    });
    if let Some(p) = chosen {
        cx.act(Action::OpenProject {
            model: p.model,
            images: p.images,
        });
        cx.act(Action::ShowTab(Tab::Atlas));
    }
}
