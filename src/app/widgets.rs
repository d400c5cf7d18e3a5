//! Small widgets shared by several pages.
use eframe::egui::{self, RichText};

use super::job_id::{JobId, Jobs};
use crate::jobs::Progress;
use crate::model::LayerInfo;

/// At most this many matches are listed under a class search box.
const CLASS_LIST: usize = 200;

/// A search box with the matching class names under it; a click picks one.
pub fn class_picker(
    ui: &mut egui::Ui,
    id: &str,
    caption: &str,
    search: &mut String,
    chosen: &mut Option<usize>,
    names: &[String],
) {
    let label = ui.label(RichText::new(caption).strong());
    ui.add(egui::TextEdit::singleline(search).hint_text("search classes"))
        .labelled_by(label.id);
    ui.label(match chosen.and_then(|c| names.get(c)) {
        Some(n) => format!("{caption}: {n}"),
        None => format!("{caption}: none chosen"),
    });
    if let Some(i) = class_matches(ui, id, 140.0, search, *chosen, names) {
        *chosen = Some(i);
    }
}

/// The class names that contain `search` (any case), at most [`CLASS_LIST`], `chosen` marked;
/// returns the one clicked. Nothing is listed while the search is empty.
pub fn class_matches(
    ui: &mut egui::Ui,
    id: &str,
    max_height: f32,
    search: &str,
    chosen: Option<usize>,
    names: &[String],
) -> Option<usize> {
    let query = search.to_lowercase();
    if query.is_empty() {
        return None;
    }
    let mut clicked = None;
    egui::ScrollArea::vertical()
        .id_salt(id)
        .max_height(max_height)
        .show(ui, |ui| {
            let matches = names
                .iter()
                .enumerate()
                .filter(|(_, n)| n.to_lowercase().contains(&query))
                .take(CLASS_LIST);
            let mut any = false;
            for (i, name) in matches {
                any = true;
                if ui.selectable_label(chosen == Some(i), name).clicked() {
                    clicked = Some(i);
                }
            }
            if !any {
                ui.label(RichText::new("no class matches").weak());
            }
        });
    clicked
}

/// One tick box per layer of the model, in a wrapped row (the layers to collect or build).
pub fn layer_ticks(ui: &mut egui::Ui, layers: &[LayerInfo], ticks: &mut [bool]) {
    ui.horizontal_wrapped(|ui| {
        ui.label("layers:");
        for (l, on) in layers.iter().zip(ticks.iter_mut()) {
            ui.checkbox(on, &l.name);
        }
    });
}

/// The "positions per image" field, up to `max`.
pub fn positions_per_image(ui: &mut egui::Ui, positions: &mut u32, max: u32) {
    ui.label("positions per image:");
    ui.add(egui::DragValue::new(positions).range(1..=max));
}

/// A job's controls: while it runs, its progress (a spinner until it reports) and a cancel
/// button; otherwise the button that starts it. True when that button was clicked.
pub fn job_row(ui: &mut egui::Ui, jobs: &mut Jobs, job: &JobId, start: &str, cancel: &str) -> bool {
    if !jobs.is_running(job) {
        return ui.button(start).clicked();
    }
    match jobs.progress(job) {
        Some(p) => progress_row(ui, p),
        None => {
            ui.spinner();
        }
    }
    if ui.button(cancel).clicked() {
        jobs.cancel(job);
    }
    false
}

/// A job's progress bar: stage, done/total and the stage's ETA.
pub fn progress_row(ui: &mut egui::Ui, p: &Progress) {
    let eta = p
        .eta_s()
        .map(|s| format!(", ETA {s:.0} s"))
        .unwrap_or_default();
    ui.add(
        egui::ProgressBar::new(p.fraction())
            .desired_width(260.0)
            .text(format!("{}: {}/{}{eta}", p.stage, p.done, p.total)),
    );
}
