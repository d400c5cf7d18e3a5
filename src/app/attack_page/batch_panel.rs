//! Batch evaluation (spec §8.3): a folder of images of the original class × the tray's patches
//! (and a noise control), under the static protocol (one size and corner for all) and the
//! dynamic one (best corner and size per image); a table per patch as in the paper, CSV export,
//! progress and cancel. The work is [`crate::attack::batch::spawn_batch`].
use std::path::PathBuf;

use eframe::egui::{self, Color32, RichText};

use super::AttackPageState;
use crate::app::job_id::{JobId, Jobs};
use crate::app::page::PageCx;
use crate::app::widgets::progress_row;
use crate::attack::batch::{image_input, spawn_batch, BatchConfig, PatchInput};
use crate::attack::table::{AttackTable, PatchRow};
use crate::attack::Corner;
use crate::jobs::JobOutcome;
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
    /// The table (partial while the job runs).
    pub table: Option<AttackTable>,
    pub error: Option<String>,
    /// Where the last CSV went.
    pub saved: Option<PathBuf>,
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
            table: None,
            error: None,
            saved: None,
        }
    }
}

/// Takes the chosen folder, and the table as it grows (partial) and when the job ends.
pub fn poll(st: &mut AttackPageState, jobs: &mut Jobs) {
    let b = &mut st.batch;
    if let Some(JobOutcome::Done(p)) = jobs
        .poll::<PathBuf, PathBuf>(&JobId::PickBatchFolder)
        .outcome
    {
        b.folder = p.display().to_string();
    }
    let drained = jobs.poll::<AttackTable, AttackTable>(&JobId::Batch);
    // Skipped images are the page's errors; the job's log lines are not shown.
    for p in drained.problems {
        st.errors
            .push(format!("skipped {}: {}", p.path.display(), p.reason));
    }
    let b = &mut st.batch;
    if let Some(t) = drained.partials.into_iter().last() {
        b.table = Some(t);
    }
    match drained.outcome {
        None => {}
        Some(JobOutcome::Done(t)) => b.table = Some(t),
        Some(JobOutcome::Failed(e)) => b.error = Some(e),
        Some(JobOutcome::Cancelled) => {
            b.error = Some("cancelled: the table shows the images done so far".into())
        }
    }
}

/// The batch configuration from the form, or why it cannot run.
fn config(page: &AttackPageState, cx: &PageCx) -> Result<BatchConfig, String> {
    let st = page;
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
        cx.project.images_path.clone()
    } else {
        PathBuf::from(b.folder.trim())
    };
    if !folder.exists() {
        return Err(format!("{} does not exist", folder.display()));
    }
    let mut cfg = BatchConfig::new(
        cx.project.model_path.clone(),
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

pub fn show(page: &mut AttackPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    form(page, cx, ui);
    ui.separator();
    let b = &page.batch;
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
            .add_enabled(
                !cx.jobs.is_running(&JobId::Batch),
                egui::Button::new("Export CSV"),
            )
            .clicked();
        if let Some(p) = &b.saved {
            ui.label(RichText::new(format!("saved {}", p.display())).small());
        }
    });
    if export {
        let path = cx.project.exports_dir().join(format!(
            "attack-{}-to-{}.csv",
            slug(&t.original.name),
            slug(&t.target.name)
        ));
        let result = std::fs::create_dir_all(cx.project.exports_dir())
            .map_err(anyhow::Error::from)
            .and_then(|()| t.write_csv(&path));
        let b = &mut page.batch;
        match result {
            Ok(()) => b.saved = Some(path),
            Err(e) => b.error = Some(format!("cannot write the CSV: {e:#}")),
        }
    }
}

fn form(page: &mut AttackPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let names = cx.class_names();
    let name = |c: Option<usize>| c.and_then(|c| names.get(c).cloned()).unwrap_or("–".into());
    let st = &mut *page;
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
        if ui.button("Choose…").clicked() && !cx.jobs.is_running(&JobId::PickBatchFolder) {
            cx.jobs.start(
                JobId::PickBatchFolder,
                crate::app::workers::spawn_pick_folder,
            );
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
    let running = cx.jobs.is_running(&JobId::Batch);
    let mut start = false;
    ui.horizontal(|ui| {
        if running {
            if let Some(p) = cx.jobs.progress(&JobId::Batch) {
                progress_row(ui, p);
            }
            if ui.button("Cancel").clicked() {
                cx.jobs.cancel(&JobId::Batch);
            }
        } else {
            start = ui.button("Run the batch evaluation").clicked();
        }
    });
    if start {
        match config(page, cx) {
            Ok(cfg) => {
                let b = &mut page.batch;
                b.error = None;
                b.table = None;
                b.saved = None;
                cx.jobs.start(JobId::Batch, || spawn_batch(cfg));
            }
            Err(e) => page.batch.error = Some(e),
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
