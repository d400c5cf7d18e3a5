//! Batch evaluation (spec §8.3): a folder of images of the original class × the tray's patches
//! (and a noise control), under the static protocol (one size and corner for all) and the
//! dynamic one (best corner and size per image); a table per patch as in the paper, CSV export,
//! progress and cancel. The work is [`crate::attack::batch::spawn_batch`].
use std::path::PathBuf;

use eframe::egui::{self, Color32, RichText};

use super::AttackPageState;
use crate::app::panels::progress_row;
use crate::app::AtlasApp;
use crate::attack::batch::{image_input, spawn_batch, BatchConfig, PatchInput};
use crate::attack::table::{AttackTable, PatchRow};
use crate::attack::Corner;
use crate::jobs::{JobEvent, JobHandle, JobOutcome, Progress};
use crate::store::names::slug;

pub struct BatchState {
    /// Folder (or image) of the original class; empty: the project's folder.
    pub folder: String,
    /// Tray patches to evaluate, by key (unticked ones are left out).
    pub skip: Vec<u64>,
    pub noise: bool,
    pub static_ratio: f64,
    pub static_corner: Corner,
    /// The dynamic protocol's sizes, comma-separated.
    pub dynamic_ratios: String,
    /// Use only the first N images (0: all).
    pub limit: usize,
    job: Option<JobHandle<AttackTable>>,
    pub progress: Option<Progress>,
    /// The table (partial while the job runs).
    pub table: Option<AttackTable>,
    pub error: Option<String>,
    /// Where the last CSV went.
    pub saved: Option<PathBuf>,
    pick: Option<JobHandle<PathBuf>>,
}

impl Default for BatchState {
    fn default() -> Self {
        BatchState {
            folder: String::new(),
            skip: vec![],
            noise: true,
            static_ratio: 0.4,
            static_corner: Corner::TopLeft,
            dynamic_ratios: "0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8".into(),
            limit: 0,
            job: None,
            progress: None,
            table: None,
            error: None,
            saved: None,
            pick: None,
        }
    }
}

impl BatchState {
    pub fn busy(&self) -> bool {
        self.job.is_some() || self.pick.is_some()
    }

    pub fn stop(&mut self) -> Option<std::thread::JoinHandle<()>> {
        let job = self.job.as_mut()?;
        job.cancel.cancel();
        job.thread.take()
    }
}

pub fn poll(st: &mut AttackPageState) {
    let b = &mut st.batch;
    if let Some(pick) = &b.pick {
        if let Ok(ev) = pick.events.try_recv() {
            if let JobEvent::Finished(JobOutcome::Done(p)) = ev {
                b.folder = p.display().to_string();
            }
            b.pick = None;
        }
    }
    let Some(job) = &b.job else { return };
    while let Ok(ev) = job.events.try_recv() {
        match ev {
            JobEvent::Progress(p) => b.progress = Some(p),
            JobEvent::Partial(t) => b.table = Some(t),
            JobEvent::Problem(p) => {
                st.errors
                    .push(format!("skipped {}: {}", p.path.display(), p.reason))
            }
            JobEvent::Log(_) => {}
            JobEvent::Finished(outcome) => {
                match outcome {
                    JobOutcome::Done(t) => b.table = Some(t),
                    JobOutcome::Failed(e) => b.error = Some(e),
                    JobOutcome::Cancelled => {
                        b.error = Some("cancelled: the table shows the images done so far".into())
                    }
                }
                b.job = None;
                b.progress = None;
                return;
            }
        }
    }
}

/// The batch configuration from the form, or why it cannot run.
fn config(app: &AtlasApp) -> Result<BatchConfig, String> {
    let st = &app.attack_page;
    let b = &st.batch;
    let original = st.original.ok_or("choose the original class")?;
    let target = st.target_class.ok_or("choose the target class")?;
    let patches: Vec<PatchInput> = st
        .patches
        .iter()
        .filter(|p| !b.skip.contains(&p.key))
        .map(|p| PatchInput::Image {
            name: p.name.clone(),
            image: (*p.image).clone(),
        })
        .collect();
    if patches.is_empty() && !b.noise {
        return Err("add patches to the tray (or tick the noise control)".into());
    }
    let folder = if b.folder.trim().is_empty() {
        app.images_path.clone()
    } else {
        PathBuf::from(b.folder.trim())
    };
    if !folder.exists() {
        return Err(format!("{} does not exist", folder.display()));
    }
    let mut cfg = BatchConfig::new(
        app.model_path.clone(),
        image_input(&folder),
        patches,
        original,
        target,
    );
    cfg.noise_seed = b.noise.then_some(0);
    cfg.static_ratio = b.static_ratio;
    cfg.static_corner = b.static_corner;
    cfg.dynamic_ratios = crate::attack::batch::parse_ratios(&b.dynamic_ratios)
        .map_err(|e| format!("dynamic sizes: {e:#}"))?;
    cfg.limit = (b.limit > 0).then_some(b.limit);
    Ok(cfg)
}

pub fn show(app: &mut AtlasApp, ui: &mut egui::Ui) {
    form(app, ui);
    ui.separator();
    let b = &app.attack_page.batch;
    if let Some(e) = &b.error {
        ui.colored_label(Color32::from_rgb(200, 40, 40), e);
    }
    let Some(t) = &b.table else {
        ui.label(
            RichText::new(
                "each patch is pasted on every image of the folder; an image counts when the \
                 model gave it the original class without a patch, and flips when the patch \
                 makes the target class its top-1",
            )
            .weak(),
        );
        return;
    };
    table(ui, t);
    let mut export = false;
    ui.horizontal(|ui| {
        export = ui
            .add_enabled(b.job.is_none(), egui::Button::new("Export CSV"))
            .clicked();
        if let Some(p) = &b.saved {
            ui.label(RichText::new(format!("saved {}", p.display())).small());
        }
    });
    if export {
        let path = app.exports_dir().join(format!(
            "attack-{}-to-{}.csv",
            slug(&t.original.name),
            slug(&t.target.name)
        ));
        let result = std::fs::create_dir_all(app.exports_dir())
            .map_err(anyhow::Error::from)
            .and_then(|_| t.write_csv(&path));
        let b = &mut app.attack_page.batch;
        match result {
            Ok(()) => b.saved = Some(path),
            Err(e) => b.error = Some(format!("cannot write the CSV: {e:#}")),
        }
    }
}

fn form(app: &mut AtlasApp, ui: &mut egui::Ui) {
    let names = app.class_names();
    let name = |c: Option<usize>| c.and_then(|c| names.get(c).cloned()).unwrap_or("–".into());
    let st = &mut app.attack_page;
    ui.label(format!(
        "original class: {}, target class: {} (choose them on the left)",
        name(st.original),
        name(st.target_class)
    ));
    let b = &mut st.batch;
    ui.horizontal(|ui| {
        ui.label("images of the original class:");
        ui.add(
            egui::TextEdit::singleline(&mut b.folder)
                .hint_text("the project's folder")
                .desired_width(320.0),
        );
        if ui.button("Choose…").clicked() && b.pick.is_none() {
            b.pick = Some(crate::app::workers::spawn_pick_folder());
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("patches:");
        for p in &st.patches {
            let mut on = !b.skip.contains(&p.key);
            if ui.checkbox(&mut on, &p.name).changed() {
                b.skip.retain(|k| *k != p.key);
                if !on {
                    b.skip.push(p.key);
                }
            }
        }
        ui.checkbox(&mut b.noise, "noise control");
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("static:");
        ui.add(egui::Slider::new(&mut b.static_ratio, 0.05..=0.8).text("size"));
        egui::ComboBox::from_id_salt("attack_static_corner")
            .selected_text(b.static_corner.label())
            .show_ui(ui, |ui| {
                for c in Corner::ALL {
                    ui.selectable_value(&mut b.static_corner, c, c.label());
                }
            });
        ui.separator();
        ui.label("dynamic sizes (all four corners):");
        ui.add(egui::TextEdit::singleline(&mut b.dynamic_ratios).desired_width(220.0));
        ui.separator();
        ui.label("first");
        ui.add(egui::DragValue::new(&mut b.limit).range(0..=1_000_000));
        ui.label("images (0: all)");
    });
    let running = b.job.is_some();
    let mut start = false;
    ui.horizontal(|ui| {
        if running {
            if let Some(p) = &b.progress {
                progress_row(ui, p);
            }
            if ui.button("Cancel").clicked() {
                if let Some(j) = &b.job {
                    j.cancel.cancel();
                }
            }
        } else {
            start = ui.button("Run the batch evaluation").clicked();
        }
    });
    if start {
        match config(app) {
            Ok(cfg) => {
                let b = &mut app.attack_page.batch;
                b.error = None;
                b.table = None;
                b.saved = None;
                b.job = Some(spawn_batch(cfg));
            }
            Err(e) => app.attack_page.batch.error = Some(e),
        }
    }
}

/// The paper's table: one row per patch, then the total of the photo patches.
fn table(ui: &mut egui::Ui, t: &AttackTable) {
    ui.label(
        RichText::new(format!(
            "{} to {}: {} of {} images done · static {:.2} at {} · {} composites in {:.0} s",
            t.original.name,
            t.target.name,
            t.images_done,
            t.images_read,
            t.static_ratio,
            t.static_corner.label(),
            t.composites,
            t.elapsed_s
        ))
        .strong(),
    );
    egui::ScrollArea::both().max_height(360.0).show(ui, |ui| {
        egui::Grid::new("attack_table")
            .striped(true)
            .show(ui, |ui| {
                for h in [
                    "patch",
                    "patch alone",
                    "correct before",
                    "flipped static",
                    "flipped dynamic",
                    "success static",
                    "success dynamic",
                    "P(target) before",
                    "static",
                    "dynamic",
                ] {
                    ui.label(RichText::new(h).strong());
                }
                ui.end_row();
                let total = t.total();
                for r in t.rows.iter().chain(total.as_ref()) {
                    row(ui, r);
                }
            });
    });
}

fn row(ui: &mut egui::Ui, r: &PatchRow) {
    let pct = |v: f64| format!("{:.1}%", 100.0 * v);
    ui.label(&r.patch);
    ui.label(match &r.patch_class {
        Some(c) => format!("{} {:.0}%", c.name, 100.0 * r.patch_prob),
        None => "–".into(),
    });
    ui.label(r.correct_before.to_string());
    ui.label(r.flipped_static.to_string());
    ui.label(r.flipped_dynamic.to_string());
    ui.label(pct(r.success_static()));
    ui.label(pct(r.success_dynamic()));
    ui.label(pct(r.p_target_before));
    ui.label(pct(r.p_target_static));
    ui.label(pct(r.p_target_dynamic));
    ui.end_row();
}
