//! The "Classes" page (issue 5): class activation atlases and the two-class comparison. Owned by
//! the class-tools UI work; see `show`.
use eframe::egui;

use super::AtlasApp;

/// What the page keeps between frames.
#[derive(Default)]
pub struct ClassesPageState {}

pub fn show(_app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::CentralPanel::default().show(ui, |ui| {
        ui.label("class tools");
    });
}
