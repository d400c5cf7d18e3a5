//! The Layers page: every layer's atlas side by side, all with the Atlas page's class focus.
use eframe::egui::{self, RichText};

use super::atlas_view::canvas;
use super::page::{Page, PageCx};

/// No state of its own: the atlases and the focus are the project's.
#[derive(Default)]
pub struct LayersPage;

impl Page for LayersPage {
    fn logic(&mut self, _ctx: &egui::Context, _cx: &mut PageCx<'_>) {}

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        let project = &mut *cx.project;
        egui::CentralPanel::default().show(ui, |ui| {
            if project.atlases.is_empty() {
                ui.label("no atlases yet: build atlases for one or more layers on the Atlas page");
                return;
            }
            let focus = project.focus.clone();
            let names = project
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
            let n = project.atlases.len();
            ui.columns(n, |cols| {
                for (col, view) in cols.iter_mut().zip(project.atlases.iter_mut()) {
                    col.label(RichText::new(&view.manifest.layer).strong());
                    canvas::show(col, view, focus.as_ref());
                }
            });
        });
    }
}
