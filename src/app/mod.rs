//! The desktop app. State lives in [`AtlasApp`]; each panel is a function in `panels`; heavy
//! work runs in `workers` threads and reaches the UI only through job channels, polled once a
//! frame, so the UI thread never blocks.
mod atlas_panels;
pub mod atlas_view;
pub mod attack_page;
pub mod classes_page;
pub mod examples;
pub mod file_dialog;
pub mod image_page;
mod job_id;
pub mod page;
mod panels;
pub mod recent;
pub mod widgets;
pub mod workers;

use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use eframe::egui;

use crate::collect::{spawn_collect, CollectConfig, CollectSummary};
use crate::data::Problem;
use crate::jobs::JobOutcome;
pub use crate::jobs::ShutdownReport;
use crate::model::Sidecar;
use crate::pipeline::{self, PipelineEvent};
use atlas_view::{AtlasView, ClassFocus, LoadedAtlas};
pub use job_id::{ExamplesOf, JobId, Jobs};
use page::{Action, Page, PageCx};
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
                app.apply(Action::OpenImage(image));
                app.set_tab(Tab::Image);
            }
            if let Some(image) = also.attack {
                app.apply(Action::AttackImage(image));
                for (i, p) in also.patches.into_iter().enumerate() {
                    // The first patch is placed on the image.
                    let at = (i == 0).then_some(egui::pos2(0.5, 0.5));
                    attack_page::add_patch(&mut app.jobs, attack_page::PatchSource::File(p), at);
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

/// The pages, borrowed for one call with a [`PageCx`].
struct Pages<'a> {
    image: &'a mut image_page::ImagePageState,
    classes: &'a mut classes_page::ClassesPageState,
    attack: &'a mut attack_page::AttackPageState,
}

impl<'a> Pages<'a> {
    /// Every page, in the order their logic runs.
    fn all(self) -> [&'a mut dyn Page; 3] {
        [self.image, self.classes, self.attack]
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
    /// Every background job of the window, all pages (see [`JobId`]).
    pub jobs: Jobs,
    /// The in-app file browser, for desktops where no native dialog opens.
    pub browser: file_dialog::BuiltinBrowser,
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
    /// Where the recent projects are kept: `recent.json` of the runs folder (so a test's own
    /// runs folder keeps its own list), or the file `ATLAS_RECENT` names.
    pub recent_file: PathBuf,
    /// The canvas's screen rectangle in the last frame (for the PNG export).
    pub canvas_rect: Option<egui::Rect>,
    /// The selected cell's large icon on screen in the last frame (a drag source for patches).
    pub details_icon_rect: Option<egui::Rect>,
    export_tx: Sender<Result<PathBuf, String>>,
    export_rx: Receiver<Result<PathBuf, String>>,
}

impl AtlasApp {
    pub fn new(model_path: PathBuf, images_path: PathBuf) -> Self {
        Self::new_in(model_path, images_path, crate::defaults::default_runs_dir())
    }

    /// Like [`AtlasApp::new`] with projects kept under `runs_root`.
    pub fn new_in(model_path: PathBuf, images_path: PathBuf, runs_root: PathBuf) -> Self {
        let (export_tx, export_rx) = crossbeam_channel::unbounded();
        let recent_file = recent::recent_file_in(&runs_root);
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
            jobs: Jobs::default(),
            browser: file_dialog::BuiltinBrowser::new(),
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
            // The most legible synthetic icons on the benchmark (docs/legibility.md).
            preset: "maco".into(),
            render_override: None,
            focus: None,
            class_search: String::new(),
            image_page: Default::default(),
            classes_page: Default::default(),
            attack_page: Default::default(),
            examples: examples::ExamplesState::new(ExamplesOf::Atlas),
            recent: recent::load(&recent_file),
            recent_file,
            canvas_rect: None,
            details_icon_rect: None,
            export_tx,
            export_rx,
        };
        app.open();
        app
    }

    /// (Re)opens the current model and image folder: cancels what runs and starts afresh, and
    /// loads the project's saved atlases (so reopening a project shows its atlas at once).
    pub fn open(&mut self) {
        self.jobs.cancel_and_forget(&JobId::Open);
        self.jobs.cancel_and_forget(&JobId::Build);
        self.model = None;
        self.rows.clear();
        self.thumbnails.clear();
        self.problems.clear();
        self.images_total = 0;
        self.atlases.clear();
        for key in self.jobs.keys(JobId::is_atlas_load) {
            self.jobs.cancel_and_forget(&key);
        }
        self.current_atlas = 0;
        self.focus = None;
        self.collect_form.out = project_dir(&self.runs_root, &self.model_path, &self.images_path);
        // Small folders get several positions per image so their atlas has enough points.
        let (model, images) = (self.model_path.clone(), self.images_path.clone());
        self.jobs
            .start(JobId::Open, || workers::spawn_open(model, images));
        let saved = find_atlases(&self.collect_form.out);
        if !saved.is_empty() {
            self.log
                .push(format!("opening {} saved atlas(es)", saved.len()));
            self.load_atlases(saved);
        }
        if self.images_path.is_dir() && self.model_path.is_file() {
            self.recent = recent::remember(
                &self.recent_file,
                recent::RecentProject {
                    model: self.model_path.clone(),
                    images: self.images_path.clone(),
                },
            );
        }
    }

    /// Opens an atlas folder built elsewhere (e.g. by `atlas build`) next to the project's.
    pub fn open_atlas(&mut self, dir: PathBuf) {
        self.load_atlases(vec![dir]);
    }

    /// Reads atlas folders in the background; each view is added as it arrives.
    fn load_atlases(&mut self, dirs: Vec<PathBuf>) {
        let key = JobId::LoadAtlas(self.jobs.next_id());
        self.jobs.start(key, || workers::spawn_load_atlases(dirs));
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
        self.jobs.start(JobId::Collect, || spawn_collect(cfg));
    }

    pub fn cancel_collection(&mut self) {
        self.jobs.cancel(&JobId::Collect);
    }

    /// Takes what every job reported, on every page; runs once a frame before drawing, whatever
    /// page is on screen. Jobs wake the window when they report, so nothing here polls on a timer.
    pub fn logic(&mut self, ctx: &egui::Context) {
        if !self.jobs.has_waker() {
            let ctx = ctx.clone();
            self.jobs
                .set_waker(std::sync::Arc::new(move || ctx.request_repaint()));
        }
        self.poll_build();
        self.poll_atlas_loads();
        self.examples.poll(&mut self.jobs, ctx);
        self.with_pages(|pages, cx| {
            for page in pages.all() {
                page.logic(ctx, cx);
            }
        });
        self.poll_exports();
        self.poll_open(ctx);
        self.maybe_auto_build();
        self.poll_collect();
        self.poll_picks();
    }

    fn poll_exports(&mut self) {
        while let Ok(result) = self.export_rx.try_recv() {
            match result {
                Ok(path) => self.log.push(format!("exported {}", path.display())),
                Err(e) => self.errors.push(format!("export failed: {e}")),
            }
        }
    }

    fn poll_open(&mut self, ctx: &egui::Context) {
        let (updates, outcome) = self
            .jobs
            .poll::<(), OpenUpdate>(&JobId::Open)
            .report_to(&mut self.problems, &mut self.log);
        for update in updates {
            self.apply_open_update(update, ctx);
        }
        if let Some(JobOutcome::Failed(e)) = outcome {
            self.errors.push(e);
        }
    }

    fn poll_collect(&mut self) {
        let (_, outcome) = self
            .jobs
            .poll::<CollectSummary, CollectSummary>(&JobId::Collect)
            .report_to(&mut self.problems, &mut self.log);
        match outcome {
            None => {}
            Some(JobOutcome::Done(summary)) => {
                self.log.push(format!(
                    "collection complete: {} images",
                    summary.manifest.images_done
                ));
                self.last_collection = Some(summary);
            }
            Some(JobOutcome::Cancelled) => self
                .log
                .push("collection cancelled; start it again to resume".into()),
            Some(JobOutcome::Failed(e)) => self.errors.push(format!("collection failed: {e}")),
        }
    }

    /// The file dialogs for the project's folder and model.
    fn poll_picks(&mut self) {
        if let Some(path) = self.poll_pick(JobId::PickFolder) {
            self.open_folder(path);
        }
        if let Some(path) = self.poll_pick(JobId::PickModel) {
            self.model_path = path;
            self.open();
        }
    }

    fn poll_pick(&mut self, key: JobId) -> Option<PathBuf> {
        match self.jobs.poll::<PathBuf, PathBuf>(&key).outcome? {
            JobOutcome::Done(path) => Some(path),
            _ => None,
        }
    }

    fn poll_build(&mut self) {
        let (partials, outcome) = self
            .jobs
            .poll::<(), PipelineEvent>(&JobId::Build)
            .report_to(&mut self.problems, &mut self.log);
        for event in partials {
            self.on_pipeline_event(event);
        }
        match outcome {
            None => {}
            Some(JobOutcome::Done(())) => self.log.push("atlas complete".into()),
            Some(JobOutcome::Cancelled) => self.log.push(
                "atlas build cancelled; finished work is saved and Build atlas resumes it".into(),
            ),
            Some(JobOutcome::Failed(e)) => self.errors.push(format!("atlas build failed: {e}")),
        }
    }

    fn on_pipeline_event(&mut self, event: PipelineEvent) {
        match event {
            PipelineEvent::Collected(summary) => {
                self.log.push(format!(
                    "collection complete: {} images",
                    summary.manifest.images_done
                ));
                self.last_collection = Some(summary);
            }
            PipelineEvent::Build { dir, event, .. } => match event {
                crate::atlas::BuildEvent::LevelsReady(_) => self.load_atlases(vec![dir]),
                crate::atlas::BuildEvent::SheetReady { grid, sheet } => {
                    if let Some(v) = self.atlases.iter_mut().find(|v| v.root == dir) {
                        v.sheet_ready(grid, sheet);
                    }
                }
                // Read the finished atlas again: sheets written while its view was still
                // loading were not announced to it.
                crate::atlas::BuildEvent::Finished { .. } => self.load_atlases(vec![dir]),
            },
        }
    }

    fn poll_atlas_loads(&mut self) {
        for key in self.jobs.keys(JobId::is_atlas_load) {
            let (loaded, outcome) = self
                .jobs
                .poll::<(), LoadedAtlas>(&key)
                .report_to(&mut self.problems, &mut self.log);
            for atlas in loaded {
                self.add_atlas(atlas);
            }
            if let Some(JobOutcome::Failed(e)) = outcome {
                self.errors.push(e);
            }
        }
    }

    /// Whether the job under `job` runs (on any page).
    pub fn running(&self, job: JobId) -> bool {
        self.jobs.is_running(&job)
    }

    /// The last progress the job under `job` reported.
    pub fn job_progress(&self, job: JobId) -> Option<&crate::jobs::Progress> {
        self.jobs.progress(&job)
    }

    /// Whether atlas folders are still being read.
    pub fn loading_atlases(&self) -> bool {
        self.jobs.any(JobId::is_atlas_load)
    }

    /// Collects (or resumes) the chosen layers and builds their atlases, in one cancellable job.
    /// Starts the build asked for by [`AtlasApp::auto_build`] once the model is loaded, the
    /// folder scanned (which sets the positions per image) and any saved atlas has loaded.
    fn maybe_auto_build(&mut self) {
        let ready = self.model.is_some() && self.images_total > 0 && !self.loading_atlases();
        if !self.auto_build || !ready || self.jobs.is_running(&JobId::Build) {
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
        self.jobs.start(JobId::Build, || {
            pipeline::spawn_pipeline(pipeline::PipelineConfig { collect, render })
        });
    }

    pub fn cancel_build(&mut self) {
        self.jobs.cancel(&JobId::Build);
    }

    /// The whole window; separate from `eframe::App` so tests can drive it with egui_kittest.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.logic(&ui.ctx().clone());
        self.ui(ui);
    }

    /// Draws the window (after [`AtlasApp::logic`] took the jobs' news).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
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
                self.apply(Action::OpenImage(file));
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
            Tab::Image => self.with_pages(|p, cx| p.image.ui(ui, cx)),
            Tab::Classes => self.with_pages(|p, cx| p.classes.ui(ui, cx)),
            Tab::Attack => self.with_pages(|p, cx| p.attack.ui(ui, cx)),
        }
        panels::drag_indicator(&ctx);
        self.browser.show(&ctx);
    }

    /// Runs `f` on the pages with what they may use of the app, then carries out the actions
    /// they asked for.
    fn with_pages(&mut self, f: impl FnOnce(Pages<'_>, &mut PageCx<'_>)) {
        let AtlasApp {
            image_page,
            classes_page,
            attack_page,
            jobs,
            atlases,
            current_atlas,
            model,
            model_path,
            images_path,
            rows,
            render_override,
            preset,
            problems,
            log,
            errors,
            collect_form,
            ..
        } = self;
        let mut cx = PageCx {
            jobs,
            atlases,
            current_atlas: *current_atlas,
            model,
            model_path,
            images_path,
            rows,
            render_override,
            preset,
            exports_dir: collect_form.out.join("exports"),
            problems,
            log,
            errors,
            actions: vec![],
        };
        let pages = Pages {
            image: image_page,
            classes: classes_page,
            attack: attack_page,
        };
        f(pages, &mut cx);
        for action in cx.actions {
            self.apply(action);
        }
    }

    /// Carries out what a page (or the command line, or a drop on the window) asked for.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::UseAsPatch(source) => {
                self.attack_page.status = format!("added to the tray: {}", source.name());
                attack_page::add_patch(&mut self.jobs, source, None);
            }
            Action::AttackImage(path) => {
                self.with_pages(|p, cx| attack_page::open_target(p.attack, cx, path))
            }
            Action::OpenImage(path) => {
                self.with_pages(|p, cx| image_page::open_image(p.image, cx, path))
            }
            Action::ShowAtlas(root) => {
                if let Some(i) = self.atlases.iter().position(|v| v.root == root) {
                    self.current_atlas = i;
                }
                self.set_tab(Tab::Atlas);
            }
            Action::ShowTab(tab) => self.set_tab(tab),
        }
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
                let _ = tx.send(save_crop(&image, rect, ppp, &path).map(|()| path));
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
            .send(result.map(|()| path).map_err(|e| format!("{e:#}")));
    }

    /// Cancels every running job (all pages) and the live classifier, and joins their threads,
    /// waiting at most 20 s: finished chunks, stages and sheets are on disk already, and a
    /// libtorch call still running while the process exits can crash it. Called when the window
    /// closes.
    pub fn shutdown(&mut self) -> ShutdownReport {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let probe: Vec<_> = self.attack_page.probe.stop().into_iter().collect();
        let probe_stopped = probe.len();
        let probe_left = crate::jobs::join_until(probe, deadline);
        let report = self.jobs.shutdown(deadline);
        ShutdownReport {
            stopped: report.stopped + probe_stopped,
            still_running: report.still_running + probe_left,
        }
    }

    pub fn exports_dir(&self) -> PathBuf {
        self.collect_form.out.join("exports")
    }

    pub fn ask_folder(&mut self) {
        if !self.jobs.is_running(&JobId::PickFolder) {
            self.jobs
                .start(JobId::PickFolder, workers::spawn_pick_folder);
        }
    }
    pub fn ask_model(&mut self) {
        if !self.jobs.is_running(&JobId::PickModel) {
            self.jobs.start(JobId::PickModel, workers::spawn_pick_model);
        }
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
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        AtlasApp::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        AtlasApp::ui(self, ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shutdown();
    }
}
