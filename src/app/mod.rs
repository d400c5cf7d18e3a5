//! The desktop app: a thin shell around the pages. [`AtlasApp`] holds what the pages share (the
//! [`Project`]: model, images, atlases, messages), the one job registry, the tab bar and the
//! pages; each page owns its state behind the [`Page`] trait and asks for anything outside
//! itself with an [`Action`] that the shell applies. Heavy work runs in job threads and reaches
//! the UI only through the registry, polled once a frame, so the UI thread never blocks.
pub mod atlas_page;
pub mod atlas_view;
pub mod attack_page;
pub mod classes_page;
pub mod examples;
pub mod file_dialog;
pub mod home_page;
pub mod image_page;
pub mod images_page;
mod job_id;
pub mod layers_page;
pub mod page;
pub mod project;
pub mod recent;
mod top_bar;
pub mod widgets;
pub mod workers;

use std::path::PathBuf;

use eframe::egui;

pub use crate::jobs::ShutdownReport;
use atlas_page::AtlasPage;
use home_page::HomePage;
use images_page::ImagesPage;
pub use job_id::{ExamplesOf, JobId, Jobs};
use layers_page::LayersPage;
pub use page::Tab;
use page::{Action, Page, PageCx};
pub use project::{find_atlases, project_dir, Project, ProjectEvent};

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
                app.atlas_page.auto_build = true;
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
    home: &'a mut HomePage,
    images: &'a mut ImagesPage,
    atlas: &'a mut AtlasPage,
    layers: &'a mut LayersPage,
    image: &'a mut image_page::ImagePageState,
    classes: &'a mut classes_page::ClassesPageState,
    attack: &'a mut attack_page::AttackPageState,
}

impl<'a> Pages<'a> {
    /// Every page, in the order their logic runs.
    fn all(self) -> [&'a mut dyn Page; 7] {
        [
            self.atlas,
            self.images,
            self.home,
            self.layers,
            self.image,
            self.classes,
            self.attack,
        ]
    }

    /// The page under `tab`.
    fn get(self, tab: Tab) -> &'a mut dyn Page {
        match tab {
            Tab::Home => self.home,
            Tab::Images => self.images,
            Tab::Atlas => self.atlas,
            Tab::Layers => self.layers,
            Tab::Image => self.image,
            Tab::Classes => self.classes,
            Tab::Attack => self.attack,
        }
    }
}

pub struct AtlasApp {
    /// What the pages share: model, images, atlases, icon settings, recent projects, messages.
    pub project: Project,
    /// Every background job of the window, all pages (see [`JobId`]).
    pub jobs: Jobs,
    /// The in-app file browser, for desktops where no native dialog opens.
    pub browser: file_dialog::BuiltinBrowser,
    pub tab: Tab,
    /// The user picked a tab: stop switching pages by ourselves.
    pub tab_chosen: bool,
    pub home_page: HomePage,
    pub images_page: ImagesPage,
    pub atlas_page: AtlasPage,
    pub layers_page: LayersPage,
    pub image_page: image_page::ImagePageState,
    pub classes_page: classes_page::ClassesPageState,
    pub attack_page: attack_page::AttackPageState,
}

impl AtlasApp {
    pub fn new(model_path: PathBuf, images_path: PathBuf) -> Self {
        Self::new_in(model_path, images_path, crate::defaults::default_runs_dir())
    }

    /// Like [`AtlasApp::new`] with projects kept under `runs_root`.
    pub fn new_in(model_path: PathBuf, images_path: PathBuf, runs_root: PathBuf) -> Self {
        let mut app = AtlasApp {
            project: Project::new(model_path, images_path, runs_root),
            jobs: Jobs::default(),
            browser: file_dialog::BuiltinBrowser::new(),
            tab: Tab::Images,
            tab_chosen: false,
            home_page: HomePage,
            images_page: ImagesPage::default(),
            atlas_page: AtlasPage::default(),
            layers_page: LayersPage,
            image_page: Default::default(),
            classes_page: Default::default(),
            attack_page: Default::default(),
        };
        app.open();
        app
    }

    /// (Re)opens the current model and image folder (see [`Project::open`]) and tells the pages.
    pub fn open(&mut self) {
        self.project.open(&mut self.jobs);
        self.tell_pages(ProjectEvent::Opened);
    }

    pub fn open_folder(&mut self, folder: PathBuf) {
        self.project.images_path = folder;
        self.open();
    }

    /// Opens an atlas folder built elsewhere (e.g. by `atlas build`) next to the project's.
    pub fn open_atlas(&mut self, dir: PathBuf) {
        Project::load_atlases(&mut self.jobs, vec![dir]);
    }

    pub fn set_tab(&mut self, tab: Tab) {
        self.tab = tab;
        self.tab_chosen = true;
    }

    /// Starts the Atlas page's build (collect, lay out, render) with its settings.
    pub fn start_build(&mut self) {
        self.with_pages(|p, cx| p.atlas.start_build(cx));
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
        Project::loading_atlases(&self.jobs)
    }

    /// Takes what every job reported, on every page; runs once a frame before drawing, whatever
    /// page is on screen. Jobs wake the window when they report, so nothing here polls on a timer.
    pub fn logic(&mut self, ctx: &egui::Context) {
        if !self.jobs.has_waker() {
            let ctx = ctx.clone();
            self.jobs
                .set_waker(std::sync::Arc::new(move || ctx.request_repaint()));
        }
        for event in self.project.poll_open(&mut self.jobs) {
            self.tell_pages(event);
        }
        let added = self.project.poll_atlas_loads(&mut self.jobs);
        // The first atlas takes the window to the Atlas page, unless the user chose a page.
        if added > 0 && !self.tab_chosen && self.tab == Tab::Images {
            self.tab = Tab::Atlas;
        }
        self.poll_picks();
        self.with_pages(|pages, cx| {
            for page in pages.all() {
                page.logic(ctx, cx);
            }
        });
    }

    /// The file dialogs for the project's folder and model.
    fn poll_picks(&mut self) {
        if let Some(path) = self.poll_pick(JobId::PickFolder) {
            self.open_folder(path);
        }
        if let Some(path) = self.poll_pick(JobId::PickModel) {
            self.project.model_path = path;
            self.open();
        }
    }

    fn poll_pick(&mut self, key: JobId) -> Option<PathBuf> {
        match self.jobs.poll::<PathBuf, PathBuf>(&key).outcome? {
            crate::jobs::JobOutcome::Done(path) => Some(path),
            _ => None,
        }
    }

    fn ask_folder(&mut self) {
        if !self.jobs.is_running(&JobId::PickFolder) {
            self.jobs
                .start(JobId::PickFolder, workers::spawn_pick_folder);
        }
    }

    fn ask_model(&mut self) {
        if !self.jobs.is_running(&JobId::PickModel) {
            self.jobs.start(JobId::PickModel, workers::spawn_pick_model);
        }
    }

    /// The whole window; separate from `eframe::App` so tests can drive it with egui_kittest.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.logic(&ui.ctx().clone());
        self.ui(ui);
    }

    /// Draws the window (after [`AtlasApp::logic`] took the jobs' news).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.take_dropped_files(&ctx);
        for action in top_bar::top_bar(ui, self.tab, &mut self.project, &mut self.jobs) {
            self.apply(action);
        }
        let tab = self.tab;
        self.with_pages(|pages, cx| pages.get(tab).ui(ui, cx));
        top_bar::drag_indicator(&ctx);
        self.browser.show(&ctx);
    }

    /// A dropped folder opens as the project; a dropped file goes to the One image page (the
    /// Patch attack page takes dropped files itself).
    fn take_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if let Some(folder) = dropped.iter().find(|p| p.is_dir()) {
            self.open_folder(folder.clone());
        } else if let Some(file) = dropped.into_iter().find(|p| p.is_file()) {
            if self.tab != Tab::Attack {
                self.apply(Action::OpenImage(file));
                self.set_tab(Tab::Image);
            }
        }
    }

    /// Tells every page that the project changed.
    fn tell_pages(&mut self, event: ProjectEvent) {
        self.with_pages(|pages, cx| {
            for page in pages.all() {
                page.on_project(event, cx);
            }
        });
    }

    /// Runs `f` on the pages with the shared project and the registry, then carries out the
    /// actions they asked for.
    fn with_pages(&mut self, f: impl FnOnce(Pages<'_>, &mut PageCx<'_>)) {
        let mut cx = PageCx {
            project: &mut self.project,
            jobs: &mut self.jobs,
            actions: vec![],
        };
        let pages = Pages {
            home: &mut self.home_page,
            images: &mut self.images_page,
            atlas: &mut self.atlas_page,
            layers: &mut self.layers_page,
            image: &mut self.image_page,
            classes: &mut self.classes_page,
            attack: &mut self.attack_page,
        };
        f(pages, &mut cx);
        for action in std::mem::take(&mut cx.actions) {
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
                self.with_pages(|p, cx| attack_page::open_target(p.attack, cx, path));
            }
            Action::OpenImage(path) => {
                self.with_pages(|p, cx| image_page::open_image(p.image, cx, path));
            }
            Action::ShowAtlas(root) => {
                let atlases = &self.project.atlases;
                if let Some(i) = atlases.iter().position(|v| v.root == root) {
                    self.project.current_atlas = i;
                }
                self.set_tab(Tab::Atlas);
            }
            Action::ShowTab(tab) => self.set_tab(tab),
            Action::OpenProject { model, images } => {
                self.project.model_path = model;
                self.project.images_path = images;
                self.open();
            }
            Action::PickFolder => self.ask_folder(),
            Action::PickModel => self.ask_model(),
        }
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
