//! The desktop app. State lives in [`AtlasApp`]; each panel is a function in `panels`; heavy
//! work runs in `workers` threads and reaches the UI only through job channels, polled once a
//! frame, so the UI thread never blocks.
mod atlas_panels;
pub mod atlas_view;
pub mod attack_page;
pub mod classes_page;
pub mod examples;
pub mod image_page;
mod panels;
pub mod pipeline;
pub mod recent;
pub mod widgets;
pub mod workers;

use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use eframe::egui;

use crate::collect::{spawn_collect, CollectConfig, CollectSummary};
use crate::data::Problem;
use crate::jobs::{JobEvent, JobHandle, JobOutcome, Progress, StopJob};
use crate::model::Sidecar;
use atlas_view::{AtlasView, ClassFocus, LoadedAtlas};
use pipeline::PipelineEvent;
use workers::{ImageRow, OpenUpdate};

/// The window's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Home,
    Images,
    Atlas,
    Layers,
    Image,
    Classes,
    Attack,
}

/// Opens the window. Fails with a readable message when there is no display.
/// What to open besides the project, from the command line.
#[derive(Default)]
pub struct OpenAlso {
    /// Atlas folders built elsewhere.
    pub atlases: Vec<PathBuf>,
    /// An image for the One image page.
    pub image: Option<PathBuf>,
    /// An image to attack on the Patch attack page, and patches for its tray (the first is
    /// placed on the image).
    pub attack: Option<PathBuf>,
    pub patches: Vec<PathBuf>,
    /// Open on the Atlas page and build the project's atlas if it has none saved (the first
    /// run on the bundled example).
    pub build_atlas: bool,
}

pub fn run(model: PathBuf, images: PathBuf, also: OpenAlso) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1200.0, 800.0])
            .with_title("Activation Atlas"),
        ..Default::default()
    };
    eframe::run_native(
        "Activation Atlas",
        options,
        Box::new(move |_cc| {
            let mut app = AtlasApp::new(model, images);
            if also.build_atlas {
                app.auto_build = true;
                app.set_tab(Tab::Atlas);
            }
            for dir in also.atlases {
                app.open_atlas(dir);
            }
            if let Some(image) = also.image {
                image_page::open_image(&mut app, image);
                app.set_tab(Tab::Image);
            }
            if let Some(image) = also.attack {
                attack_page::open_target(&mut app, image);
                for (i, p) in also.patches.into_iter().enumerate() {
                    let at = (i == 0).then_some(egui::pos2(0.5, 0.5));
                    attack_page::add_patch(&mut app, attack_page::PatchSource::File(p), at);
                }
                app.set_tab(Tab::Attack);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot open a window ({e}); is a display available (DISPLAY / WAYLAND_DISPLAY)?"
        )
    })
}

/// What closing the window did to the running jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Job threads that were asked to stop.
    pub stopped: usize,
    /// Of those, how many had not ended by the deadline.
    pub still_running: usize,
}

impl<T> StopJob for Tracked<T> {
    fn stop_job(&mut self) -> Option<std::thread::JoinHandle<()>> {
        self.handle.stop()
    }
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
    /// Where projects keep their runs (`runs/` of the install unless told otherwise).
    pub runs_root: PathBuf,
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
    /// Layers the next "Build atlas" collects and lays out.
    pub build_layers: Vec<bool>,
    /// Positions per image of the next "Build atlas".
    pub build_positions: u32,
    pub last_collection: Option<CollectSummary>,
    pub tab: Tab,
    /// The user picked a tab: stop switching pages by ourselves.
    pub tab_chosen: bool,
    /// Build the project's atlas as soon as the model and the folder are read, unless a saved
    /// atlas opens (the first run of `atlas app` with no arguments lands on an atlas filling in).
    pub auto_build: bool,
    /// One atlas per layer of the project, in the order they were loaded.
    pub atlases: Vec<AtlasView>,
    pub current_atlas: usize,
    pub atlas_loads: Vec<Tracked<LoadedAtlas>>,
    pub build_job: Option<Tracked<PipelineEvent>>,
    /// Icon preset of the next build: "maco", "preview" or "paper".
    pub preset: String,
    /// Icon settings that replace the preset (tests use a few steps; scripts may too).
    pub render_override: Option<crate::render::RenderSettings>,
    pub focus: Option<ClassFocus>,
    pub class_search: String,
    pub image_page: image_page::ImagePageState,
    pub classes_page: classes_page::ClassesPageState,
    pub attack_page: attack_page::AttackPageState,
    /// Dataset examples of the selected cell.
    pub examples: examples::ExamplesState,
    pub recent: Vec<recent::RecentProject>,
    /// The canvas's screen rectangle in the last frame (for the PNG export).
    pub canvas_rect: Option<egui::Rect>,
    /// The selected cell's large icon on screen in the last frame (a drag source for patches).
    pub details_icon_rect: Option<egui::Rect>,
    export_tx: Sender<Result<PathBuf, String>>,
    export_rx: Receiver<Result<PathBuf, String>>,
    pick_folder: Option<JobHandle<PathBuf>>,
    pick_model: Option<JobHandle<PathBuf>>,
}

impl AtlasApp {
    pub fn new(model_path: PathBuf, images_path: PathBuf) -> Self {
        Self::new_in(model_path, images_path, crate::defaults::default_runs_dir())
    }

    /// Like [`AtlasApp::new`] with projects kept under `runs_root`.
    pub fn new_in(model_path: PathBuf, images_path: PathBuf, runs_root: PathBuf) -> Self {
        let (export_tx, export_rx) = crossbeam_channel::unbounded();
        let mut app = AtlasApp {
            model_path,
            images_path,
            runs_root,
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
            build_layers: vec![],
            build_positions: 1,
            last_collection: None,
            tab: Tab::Images,
            tab_chosen: false,
            auto_build: false,
            atlases: vec![],
            current_atlas: 0,
            atlas_loads: vec![],
            build_job: None,
            // The most legible synthetic icons on the benchmark (docs/legibility.md).
            preset: "maco".into(),
            render_override: None,
            focus: None,
            class_search: String::new(),
            image_page: Default::default(),
            classes_page: Default::default(),
            attack_page: Default::default(),
            examples: Default::default(),
            recent: recent::load(&recent::recent_file()),
            canvas_rect: None,
            details_icon_rect: None,
            export_tx,
            export_rx,
            pick_folder: None,
            pick_model: None,
        };
        app.open();
        app
    }

    /// (Re)opens the current model and image folder: cancels what runs and starts afresh, and
    /// loads the project's saved atlases (so reopening a project shows its atlas at once).
    pub fn open(&mut self) {
        if let Some(job) = self.open_job.take() {
            job.handle.cancel.cancel();
        }
        if let Some(job) = self.build_job.take() {
            job.handle.cancel.cancel();
        }
        self.model = None;
        self.rows.clear();
        self.thumbnails.clear();
        self.problems.clear();
        self.images_total = 0;
        self.atlases.clear();
        self.atlas_loads.clear();
        self.current_atlas = 0;
        self.focus = None;
        self.collect_form.out = project_dir(&self.runs_root, &self.model_path, &self.images_path);
        // Small folders get several positions per image so their atlas has enough points.
        self.open_job = Some(Tracked::new(workers::spawn_open(
            self.model_path.clone(),
            self.images_path.clone(),
        )));
        let saved = find_atlases(&self.collect_form.out);
        if !saved.is_empty() {
            self.log
                .push(format!("opening {} saved atlas(es)", saved.len()));
            self.atlas_loads
                .push(Tracked::new(workers::spawn_load_atlases(saved)));
        }
        if self.images_path.is_dir() && self.model_path.is_file() {
            self.recent = recent::remember(
                &recent::recent_file(),
                recent::RecentProject {
                    model: self.model_path.clone(),
                    images: self.images_path.clone(),
                },
            );
        }
    }

    /// Opens an atlas folder built elsewhere (e.g. by `atlas build`) next to the project's.
    pub fn open_atlas(&mut self, dir: PathBuf) {
        self.atlas_loads
            .push(Tracked::new(workers::spawn_load_atlases(vec![dir])));
    }

    /// Adds a freshly loaded atlas, or refreshes the view of the same folder.
    fn add_atlas(&mut self, loaded: LoadedAtlas) {
        if let Some(view) = self.atlases.iter_mut().find(|v| v.root == loaded.root) {
            view.refresh(loaded);
            return;
        }
        self.atlases.push(AtlasView::new(loaded));
        if !self.tab_chosen && self.tab == Tab::Images {
            self.tab = Tab::Atlas;
        }
    }

    /// The loaded model's class names (empty until it has loaded).
    pub fn class_names(&self) -> Vec<String> {
        self.model
            .as_ref()
            .map(|m| m.classes.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    }

    pub fn current(&mut self) -> Option<&mut AtlasView> {
        self.atlases.get_mut(self.current_atlas)
    }

    pub fn set_tab(&mut self, tab: Tab) {
        self.tab = tab;
        self.tab_chosen = true;
    }

    fn apply_open_update(&mut self, update: OpenUpdate, ctx: &egui::Context) {
        match update {
            OpenUpdate::Model(info, device) => {
                self.collect_form.layers = vec![true; info.layers.len()];
                // The atlas is built for the linear-head layer by default (the most class-like
                // icons and the most meaningful labels); other layers are a tick away.
                let head = info.linear_head_layer.clone();
                self.build_layers = info
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(i, l)| match &head {
                        Some(h) => *h == l.name,
                        None => i + 1 == info.layers.len(),
                    })
                    .collect();
                self.model = Some(*info);
                self.device = device;
            }
            OpenUpdate::Scanned(n) => {
                self.images_total = n;
                // Small folders get several positions per image so their atlas has points
                // enough for a grid; large ones keep the paper's one per image.
                self.build_positions = match n {
                    0..=300 => 16,
                    301..=3000 => 4,
                    _ => 1,
                };
            }
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
        let busy = self.open_job.is_some()
            || self.collect_job.is_some()
            || self.build_job.is_some()
            || !self.atlas_loads.is_empty();
        self.poll_build();
        self.poll_atlas_loads();
        self.examples.poll(ctx);
        // The Classes page's jobs report even while another page is on screen.
        if self.tab != Tab::Classes {
            classes_page::poll(self, ctx);
        }
        attack_page::poll(self, ctx);
        while let Ok(result) = self.export_rx.try_recv() {
            match result {
                Ok(path) => self.log.push(format!("exported {}", path.display())),
                Err(e) => self.errors.push(format!("export failed: {e}")),
            }
        }
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
        self.maybe_auto_build();
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

    fn poll_build(&mut self) {
        let Some(job) = &mut self.build_job else {
            return;
        };
        let (partials, outcome) = job.drain(&mut self.problems, &mut self.log);
        for event in partials {
            match event {
                PipelineEvent::Collected(summary) => {
                    self.log.push(format!(
                        "collection complete: {} images",
                        summary.manifest.images_done
                    ));
                    self.last_collection = Some(summary);
                }
                PipelineEvent::Build { dir, event, .. } => match event {
                    crate::atlas::BuildEvent::LevelsReady(_) => self
                        .atlas_loads
                        .push(Tracked::new(workers::spawn_load_atlases(vec![dir]))),
                    crate::atlas::BuildEvent::SheetReady { grid, sheet } => {
                        if let Some(v) = self.atlases.iter_mut().find(|v| v.root == dir) {
                            v.sheet_ready(grid, sheet);
                        }
                    }
                    // Read the finished atlas again: sheets written while its view was still
                    // loading were not announced to it.
                    crate::atlas::BuildEvent::Finished { .. } => self
                        .atlas_loads
                        .push(Tracked::new(workers::spawn_load_atlases(vec![dir]))),
                },
            }
        }
        if let Some(outcome) = outcome {
            match outcome {
                JobOutcome::Done(_) => self.log.push("atlas complete".into()),
                JobOutcome::Cancelled => self.log.push(
                    "atlas build cancelled; finished work is saved and Build atlas resumes it"
                        .into(),
                ),
                JobOutcome::Failed(e) => self.errors.push(format!("atlas build failed: {e}")),
            }
            self.build_job = None;
        }
    }

    fn poll_atlas_loads(&mut self) {
        let mut loads = std::mem::take(&mut self.atlas_loads);
        loads.retain_mut(|job| {
            let (partials, outcome) = job.drain(&mut self.problems, &mut self.log);
            for loaded in partials {
                self.add_atlas(loaded);
            }
            match outcome {
                None => true,
                Some(JobOutcome::Failed(e)) => {
                    self.errors.push(e);
                    false
                }
                Some(_) => false,
            }
        });
        self.atlas_loads.extend(loads);
    }

    /// Collects (or resumes) the chosen layers and builds their atlases, in one cancellable job.
    /// Starts the build asked for by [`AtlasApp::auto_build`] once the model is loaded, the
    /// folder scanned (which sets the positions per image) and any saved atlas has loaded.
    fn maybe_auto_build(&mut self) {
        let ready = self.model.is_some() && self.images_total > 0 && self.atlas_loads.is_empty();
        if !self.auto_build || !ready || self.build_job.is_some() {
            return;
        }
        self.auto_build = false;
        if self.atlases.is_empty() {
            self.log
                .push("no saved atlas for this project yet: building one".into());
            self.set_tab(Tab::Atlas);
            self.start_build();
        }
    }

    pub fn start_build(&mut self) {
        let Some(model) = &self.model else { return };
        let layers: Vec<String> = model
            .layers
            .iter()
            .zip(&self.build_layers)
            .filter(|(_, on)| **on)
            .map(|(l, _)| l.name.clone())
            .collect();
        if layers.is_empty() {
            self.errors
                .push("choose at least one layer for the atlas".into());
            return;
        }
        let render = match self
            .render_override
            .clone()
            .map_or_else(|| crate::render::RenderSettings::preset(&self.preset), Ok)
        {
            Ok(r) => r,
            Err(e) => {
                self.errors.push(e.to_string());
                return;
            }
        };
        let out = self.collect_form.out.join(format!(
            "atlas-{}-x{}",
            layers.join("+"),
            self.build_positions
        ));
        self.log.push(format!("building into {}", out.display()));
        let collect = CollectConfig {
            model: self.model_path.clone(),
            images: self.images_path.clone(),
            layers,
            out,
            samples_per_image: self.build_positions,
            ..Default::default()
        };
        self.build_job = Some(Tracked::new(pipeline::spawn_pipeline(
            pipeline::PipelineConfig { collect, render },
        )));
    }

    pub fn cancel_build(&mut self) {
        if let Some(job) = &self.build_job {
            job.handle.cancel.cancel();
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
        // A dropped folder opens as the project; a dropped file goes to the One image page (the
        // Patch attack page takes dropped files itself).
        if let Some(folder) = dropped.iter().find(|p| p.is_dir()) {
            self.open_folder(folder.clone());
        } else if let Some(file) = dropped.into_iter().find(|p| p.is_file()) {
            if self.tab != Tab::Attack {
                image_page::open_image(self, file);
                self.set_tab(Tab::Image);
            }
        }
        panels::top_bar(self, ui);
        match self.tab {
            Tab::Home => panels::home_page(self, ui),
            Tab::Images => {
                panels::model_panel(self, ui);
                panels::collect_panel(self, ui);
                panels::images_panel(self, ui);
            }
            Tab::Atlas => {
                atlas_panels::controls(self, ui);
                atlas_panels::details(self, ui);
                atlas_panels::canvas(self, ui);
            }
            Tab::Layers => atlas_panels::layers(self, ui),
            Tab::Image => image_page::show(self, ui),
            Tab::Classes => classes_page::show(self, ui),
            Tab::Attack => attack_page::show(self, ui),
        }
        attack_page::drag_indicator(&ctx);
    }

    /// Saves the canvas as it is on screen: asks the window for a screenshot and crops it to
    /// the canvas when it arrives (next frame), writing the PNG atomically off the UI thread.
    pub fn export_view_png(&mut self, ctx: &egui::Context) {
        let Some(rect) = self.canvas_rect else {
            return;
        };
        let Some(view) = self.atlases.get(self.current_atlas) else {
            return;
        };
        let path = self.exports_dir().join(format!(
            "{}-{}-view.png",
            view.manifest.layer, view.drawn_grid
        ));
        let ppp = ctx.pixels_per_point();
        let tx = self.export_tx.clone();
        let repaint = ctx.clone();
        ctx.request_screenshot(move |image| {
            std::thread::spawn(move || {
                let _ = tx.send(save_crop(&image, rect, ppp, &path).map(|_| path));
                repaint.request_repaint();
            });
        });
    }

    /// Writes the drawn level's cells as CSV or JSON into the project's exports folder.
    pub fn export_cells(&mut self, json: bool) {
        let Some(view) = self.atlases.get(self.current_atlas) else {
            return;
        };
        let grid = view.drawn_grid;
        let ext = if json { "json" } else { "csv" };
        let path = self
            .exports_dir()
            .join(format!("{}-{grid}-cells.{ext}", view.manifest.layer));
        let text = if json {
            view.cells_json(grid)
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
        } else {
            view.cells_csv(grid)
        };
        let result = text
            .ok_or_else(|| anyhow::anyhow!("no {grid}×{grid} level"))
            .and_then(|t| {
                std::fs::create_dir_all(self.exports_dir())?;
                crate::store::atomic::write_bytes(&path, t.as_bytes())
            });
        let _ = self
            .export_tx
            .send(result.map(|_| path).map_err(|e| format!("{e:#}")));
    }

    /// Stops every job and waits (a bounded time) for their threads: finished chunks, stages and
    /// sheets are on disk already, and a libtorch call still running while the process exits
    /// can crash it.
    /// Every job the app and its pages own, for the close-window loop.
    fn jobs_mut(&mut self) -> Vec<&mut dyn StopJob> {
        let mut jobs: Vec<&mut dyn StopJob> = vec![];
        jobs.extend(self.open_job.as_mut().map(|j| j as &mut dyn StopJob));
        jobs.extend(self.collect_job.as_mut().map(|j| j as &mut dyn StopJob));
        jobs.extend(self.build_job.as_mut().map(|j| j as &mut dyn StopJob));
        jobs.extend(self.atlas_loads.iter_mut().map(|j| j as &mut dyn StopJob));
        jobs.extend(self.examples.job.as_mut().map(|j| j as &mut dyn StopJob));
        jobs.extend(self.pick_folder.as_mut().map(|j| j as &mut dyn StopJob));
        jobs.extend(self.pick_model.as_mut().map(|j| j as &mut dyn StopJob));
        jobs.extend(self.image_page.jobs_mut());
        jobs.extend(self.classes_page.jobs_mut());
        jobs
    }

    /// Cancels every running job (all pages) and joins their threads, waiting at most 20 s.
    /// Called when the window closes.
    pub fn shutdown(&mut self) -> ShutdownReport {
        let mut threads: Vec<_> = self
            .jobs_mut()
            .into_iter()
            .filter_map(|j| j.stop_job())
            .collect();
        threads.extend(self.attack_page.shutdown());
        let stopped = threads.len();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let still_running = crate::jobs::join_until(threads, deadline);
        ShutdownReport {
            stopped,
            still_running,
        }
    }

    pub fn exports_dir(&self) -> PathBuf {
        self.collect_form.out.join("exports")
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

/// Crops a window screenshot to `rect` (points) and writes it as PNG.
fn save_crop(
    image: &egui::ColorImage,
    rect: egui::Rect,
    ppp: f32,
    path: &Path,
) -> Result<(), String> {
    let [w, h] = image.size;
    let x0 = ((rect.min.x * ppp).round().max(0.0) as usize).min(w);
    let y0 = ((rect.min.y * ppp).round().max(0.0) as usize).min(h);
    let x1 = ((rect.max.x * ppp).round().max(0.0) as usize).min(w);
    let y1 = ((rect.max.y * ppp).round().max(0.0) as usize).min(h);
    if x1 <= x0 || y1 <= y0 {
        return Err("the canvas is not on screen".into());
    }
    let mut out = image::RgbaImage::new((x1 - x0) as u32, (y1 - y0) as u32);
    for y in y0..y1 {
        for x in x0..x1 {
            let c = image.pixels[y * w + x];
            out.put_pixel((x - x0) as u32, (y - y0) as u32, image::Rgba(c.to_array()));
        }
    }
    let mut bytes = vec![];
    out.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    crate::store::atomic::write_bytes(path, &bytes).map_err(|e| format!("{e:#}"))
}

fn poll_pick(slot: &mut Option<JobHandle<PathBuf>>) -> Option<PathBuf> {
    let ev = slot.as_ref()?.events.try_recv().ok()?;
    *slot = None;
    match ev {
        JobEvent::Finished(JobOutcome::Done(p)) => Some(p),
        _ => None,
    }
}

/// `<runs_root>/<model>-<folder>`: one project folder per (model, image folder) pair, so
/// reopening the same pair resumes or reuses its runs and atlases.
pub fn project_dir(runs_root: &Path, model: &Path, images: &Path) -> PathBuf {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    runs_root.join(format!("{}-{}", stem(model), stem(images)))
}

/// Atlas folders saved in a project: `<project>/<run>/atlases/<layer>/manifest.json`.
pub fn find_atlases(project: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    let Ok(runs) = std::fs::read_dir(project) else {
        return found;
    };
    for run in runs.flatten() {
        let Ok(layers) = std::fs::read_dir(run.path().join("atlases")) else {
            continue;
        };
        for layer in layers.flatten() {
            if layer.path().join("manifest.json").is_file() {
                found.push(layer.path());
            }
        }
    }
    found.sort();
    found
}

impl eframe::App for AtlasApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shutdown();
    }
}
