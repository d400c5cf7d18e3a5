//! The desktop app. State lives in [`AtlasApp`]; each panel is a function in `panels`; heavy
//! work runs in `workers` threads and reaches the UI only through job channels, polled once a
//! frame, so the UI thread never blocks.
mod panels;
pub mod workers;

use std::path::PathBuf;

use eframe::egui;

use crate::collect::{spawn_collect, CollectConfig, CollectSummary};
use crate::data::Problem;
use crate::jobs::{JobEvent, JobHandle, JobOutcome, Progress};
use crate::model::Sidecar;
use workers::{ImageRow, OpenUpdate};

/// Opens the window. Fails with a readable message when there is no display.
pub fn run(model: PathBuf, images: PathBuf) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1200.0, 800.0])
            .with_title("Activation Atlas"),
        ..Default::default()
    };
    eframe::run_native(
        "Activation Atlas",
        options,
        Box::new(move |_cc| Ok(Box::new(AtlasApp::new(model, images)))),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot open a window ({e}); is a display available (DISPLAY / WAYLAND_DISPLAY)?"
        )
    })
}

/// A long job with what the UI shows about it.
pub struct Tracked<T> {
    pub handle: JobHandle<T>,
    pub progress: Option<Progress>,
}

impl<T> Tracked<T> {
    fn new(handle: JobHandle<T>) -> Self {
        Tracked {
            handle,
            progress: None,
        }
    }

    /// Takes every pending event: progress is kept here, problems and log lines go to the app's
    /// lists; partial results and the final outcome (if the job ended) are returned.
    fn drain(
        &mut self,
        problems: &mut Vec<Problem>,
        log: &mut Vec<String>,
    ) -> (Vec<T>, Option<JobOutcome<T>>) {
        let mut partials = vec![];
        while let Ok(ev) = self.handle.events.try_recv() {
            match ev {
                JobEvent::Progress(p) => self.progress = Some(p),
                JobEvent::Problem(p) => problems.push(p),
                JobEvent::Log(l) => log.push(l),
                JobEvent::Partial(item) => partials.push(item),
                JobEvent::Finished(outcome) => return (partials, Some(outcome)),
            }
        }
        (partials, None)
    }
}

/// Settings of the next collection, edited in the collection panel.
pub struct CollectForm {
    pub layers: Vec<bool>,
    pub samples_per_image: u32,
    pub out: PathBuf,
}

pub struct AtlasApp {
    pub model_path: PathBuf,
    pub images_path: PathBuf,
    pub model: Option<Sidecar>,
    pub device: String,
    pub images_total: usize,
    pub rows: Vec<ImageRow>,
    pub thumbnails: Vec<Option<egui::TextureHandle>>,
    pub problems: Vec<Problem>,
    pub errors: Vec<String>,
    pub log: Vec<String>,
    pub open_job: Option<Tracked<OpenUpdate>>,
    pub collect_job: Option<Tracked<CollectSummary>>,
    pub collect_form: CollectForm,
    pub last_collection: Option<CollectSummary>,
    pick_folder: Option<JobHandle<PathBuf>>,
    pick_model: Option<JobHandle<PathBuf>>,
}

impl AtlasApp {
    pub fn new(model_path: PathBuf, images_path: PathBuf) -> Self {
        let mut app = AtlasApp {
            model_path,
            images_path,
            model: None,
            device: String::new(),
            images_total: 0,
            rows: vec![],
            thumbnails: vec![],
            problems: vec![],
            errors: vec![],
            log: vec![],
            open_job: None,
            collect_job: None,
            collect_form: CollectForm {
                layers: vec![],
                samples_per_image: 1,
                out: PathBuf::new(),
            },
            last_collection: None,
            pick_folder: None,
            pick_model: None,
        };
        app.open();
        app
    }

    /// (Re)opens the current model and image folder: cancels what runs and starts afresh.
    pub fn open(&mut self) {
        if let Some(job) = self.open_job.take() {
            job.handle.cancel.cancel();
        }
        self.model = None;
        self.rows.clear();
        self.thumbnails.clear();
        self.problems.clear();
        self.images_total = 0;
        self.collect_form.out = default_run_dir(&self.model_path, &self.images_path);
        self.open_job = Some(Tracked::new(workers::spawn_open(
            self.model_path.clone(),
            self.images_path.clone(),
        )));
    }

    fn apply_open_update(&mut self, update: OpenUpdate, ctx: &egui::Context) {
        match update {
            OpenUpdate::Model(info, device) => {
                self.collect_form.layers = vec![true; info.layers.len()];
                self.model = Some(*info);
                self.device = device;
            }
            OpenUpdate::Scanned(n) => self.images_total = n,
            OpenUpdate::Rows(rows) => {
                for row in rows {
                    let tex = row.thumbnail.as_ref().map(|img| {
                        let name = format!("thumb-{}", self.thumbnails.len());
                        ctx.load_texture(name, img.clone(), egui::TextureOptions::LINEAR)
                    });
                    self.thumbnails.push(tex);
                    self.rows.push(row);
                }
            }
            OpenUpdate::Complete => {}
        }
    }

    pub fn open_folder(&mut self, folder: PathBuf) {
        self.images_path = folder;
        self.open();
    }

    pub fn start_collection(&mut self) {
        let Some(model) = &self.model else { return };
        let layers = model
            .layers
            .iter()
            .zip(&self.collect_form.layers)
            .filter(|(_, on)| **on)
            .map(|(l, _)| l.name.clone())
            .collect::<Vec<_>>();
        if layers.is_empty() {
            self.errors
                .push("choose at least one layer to collect".into());
            return;
        }
        // One run folder per (layers, positions) choice under the pair's folder, so changing the
        // settings starts a new run instead of clashing with the saved one.
        let tag = if layers.len() == model.layers.len() {
            "all-layers".to_string()
        } else {
            layers.join("+")
        };
        let out = self
            .collect_form
            .out
            .join(format!("{tag}-x{}", self.collect_form.samples_per_image));
        let cfg = CollectConfig {
            model: self.model_path.clone(),
            images: self.images_path.clone(),
            layers,
            out,
            samples_per_image: self.collect_form.samples_per_image,
            ..Default::default()
        };
        self.log
            .push(format!("collecting into {}", cfg.out.display()));
        self.collect_job = Some(Tracked::new(spawn_collect(cfg)));
    }

    pub fn cancel_collection(&mut self) {
        if let Some(job) = &self.collect_job {
            job.handle.cancel.cancel();
        }
    }

    /// Drains every job channel; called once per frame before drawing.
    pub fn poll_jobs(&mut self, ctx: &egui::Context) {
        let busy = self.open_job.is_some() || self.collect_job.is_some();
        if let Some(job) = &mut self.open_job {
            let (partials, outcome) = job.drain(&mut self.problems, &mut self.log);
            for update in partials {
                self.apply_open_update(update, ctx);
            }
            if let Some(outcome) = outcome {
                if let JobOutcome::Failed(e) = outcome {
                    self.errors.push(e);
                }
                self.open_job = None;
            }
        }
        if let Some(job) = &mut self.collect_job {
            let (_, outcome) = job.drain(&mut self.problems, &mut self.log);
            if let Some(outcome) = outcome {
                match outcome {
                    JobOutcome::Done(summary) => {
                        self.log.push(format!(
                            "collection complete: {} images",
                            summary.manifest.images_done
                        ));
                        self.last_collection = Some(summary);
                    }
                    JobOutcome::Cancelled => self
                        .log
                        .push("collection cancelled; start it again to resume".into()),
                    JobOutcome::Failed(e) => self.errors.push(format!("collection failed: {e}")),
                }
                self.collect_job = None;
            }
        }
        if let Some(path) = poll_pick(&mut self.pick_folder) {
            self.open_folder(path);
        }
        if let Some(path) = poll_pick(&mut self.pick_model) {
            self.model_path = path;
            self.open();
        }
        if busy || self.pick_folder.is_some() || self.pick_model.is_some() {
            // Keep polling while work runs, without spinning the CPU.
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    /// The whole window; separate from `eframe::App` so tests can drive it with egui_kittest.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_jobs(&ctx);
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if let Some(folder) = dropped.into_iter().find(|p| p.is_dir()) {
            self.open_folder(folder);
        }
        panels::top_bar(self, ui);
        panels::model_panel(self, ui);
        panels::collect_panel(self, ui);
        panels::images_panel(self, ui);
    }

    pub fn ask_folder(&mut self) {
        self.pick_folder
            .get_or_insert_with(workers::spawn_pick_folder);
    }
    pub fn ask_model(&mut self) {
        self.pick_model
            .get_or_insert_with(workers::spawn_pick_model);
    }
}

fn poll_pick(slot: &mut Option<JobHandle<PathBuf>>) -> Option<PathBuf> {
    let ev = slot.as_ref()?.events.try_recv().ok()?;
    *slot = None;
    match ev {
        JobEvent::Finished(JobOutcome::Done(p)) => Some(p),
        _ => None,
    }
}

/// `runs/<model>-<folder>` inside the project: one run folder per (model, image folder) pair,
/// so reopening the same pair resumes or reuses its run.
fn default_run_dir(model: &std::path::Path, images: &std::path::Path) -> PathBuf {
    let stem = |p: &std::path::Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    crate::defaults::default_runs_dir().join(format!("{}-{}", stem(model), stem(images)))
}

impl eframe::App for AtlasApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // Finished chunks are on disk; stop the workers so the process can exit promptly.
        if let Some(job) = &self.open_job {
            job.handle.cancel.cancel();
        }
        self.cancel_collection();
    }
}
