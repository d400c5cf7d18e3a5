//! What every page shares: the project (model, image folder, the project's folder, its classified
//! images and atlases), the icon settings, the recent projects and the window's messages. The app
//! owns one [`Project`] and lends it to each page through its `PageCx`; the pages own the rest.
//!
//! Opening a project starts the `Open` job (model, scan, classify) and reads the project's saved
//! atlases; the app polls both here and tells the pages what changed with a [`ProjectEvent`].
use std::path::{Path, PathBuf};

use eframe::egui;

use super::atlas_view::{AtlasView, ClassFocus, LoadedAtlas};
use super::job_id::{JobId, Jobs};
use super::recent::{self, RecentProject};
use super::workers::{self, ImageRow, OpenUpdate};
use crate::collect::CollectSummary;
use crate::data::Problem;
use crate::jobs::JobOutcome;
use crate::model::Sidecar;
use crate::render::RenderSettings;

/// What changed in the project, for the pages to follow (each page reads the new state from the
/// project itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectEvent {
    /// A project was (re)opened: its model, images and atlases are loading again.
    Opened,
    /// The model loaded: `Project::model` is set.
    ModelLoaded,
    /// The folder was scanned: `Project::images_total` is set.
    Scanned,
}

pub struct Project {
    pub model_path: PathBuf,
    pub images_path: PathBuf,
    /// Where projects keep their runs (`runs/` of the install unless told otherwise).
    pub runs_root: PathBuf,
    /// `<runs_root>/<model>-<folder>` (see [`project_dir`]): the project's runs, atlases and
    /// exports.
    pub dir: PathBuf,
    pub model: Option<Sidecar>,
    /// The device the model runs on, in words.
    pub device: String,
    pub images_total: usize,
    /// The project's classified images, in folder order.
    pub rows: Vec<ImageRow>,
    /// One atlas per layer of the project, in the order they were loaded.
    pub atlases: Vec<AtlasView>,
    /// Which atlas the Atlas page (and the pages that use "the current atlas") shows.
    pub current_atlas: usize,
    /// The class in focus on the Atlas and Layers pages.
    pub focus: Option<ClassFocus>,
    /// The last collection (alone or as the first stage of a build).
    pub last_collection: Option<CollectSummary>,
    /// Icon preset of the next build or class atlas: "maco", "preview" or "paper".
    pub preset: String,
    /// Icon settings that replace the preset (tests use a few steps; scripts may too).
    pub render_override: Option<RenderSettings>,
    pub recent: Vec<RecentProject>,
    /// Where the recent projects are kept: `recent.json` of the runs folder (so a test's own
    /// runs folder keeps its own list), or the file `ATLAS_RECENT` names.
    pub recent_file: PathBuf,
    /// The window's messages: skipped inputs, errors (until dismissed) and the log.
    pub problems: Vec<Problem>,
    pub errors: Vec<String>,
    pub log: Vec<String>,
}

impl Project {
    /// A project not opened yet (see [`Project::open`]).
    pub fn new(model_path: PathBuf, images_path: PathBuf, runs_root: PathBuf) -> Self {
        let recent_file = recent::recent_file_in(&runs_root);
        Project {
            dir: project_dir(&runs_root, &model_path, &images_path),
            model_path,
            images_path,
            runs_root,
            model: None,
            device: String::new(),
            images_total: 0,
            rows: vec![],
            atlases: vec![],
            current_atlas: 0,
            focus: None,
            last_collection: None,
            // The most legible synthetic icons on the benchmark (docs/legibility.md).
            preset: "maco".into(),
            render_override: None,
            recent: recent::load(&recent_file),
            recent_file,
            problems: vec![],
            errors: vec![],
            log: vec![],
        }
    }

    /// (Re)opens the current model and image folder: cancels what loads and starts afresh, and
    /// loads the project's saved atlases (so reopening a project shows its atlas at once).
    pub fn open(&mut self, jobs: &mut Jobs) {
        jobs.cancel_and_forget(&JobId::Open);
        self.model = None;
        self.rows.clear();
        self.problems.clear();
        self.images_total = 0;
        self.atlases.clear();
        for key in jobs.keys(JobId::is_atlas_load) {
            jobs.cancel_and_forget(&key);
        }
        self.current_atlas = 0;
        self.focus = None;
        self.dir = project_dir(&self.runs_root, &self.model_path, &self.images_path);
        let (model, images) = (self.model_path.clone(), self.images_path.clone());
        jobs.start(JobId::Open, || workers::spawn_open(model, images));
        let saved = find_atlases(&self.dir);
        if !saved.is_empty() {
            self.log
                .push(format!("opening {} saved atlas(es)", saved.len()));
            Self::load_atlases(jobs, saved);
        }
        if self.images_path.is_dir() && self.model_path.is_file() {
            self.recent = recent::remember(
                &self.recent_file,
                RecentProject {
                    model: self.model_path.clone(),
                    images: self.images_path.clone(),
                },
            );
        }
    }

    /// Reads atlas folders in the background; each view is added as it arrives.
    pub fn load_atlases(jobs: &mut Jobs, dirs: Vec<PathBuf>) {
        let key = JobId::LoadAtlas(jobs.next_id());
        jobs.start(key, || workers::spawn_load_atlases(dirs));
    }

    /// Whether atlas folders are still being read.
    pub fn loading_atlases(jobs: &Jobs) -> bool {
        jobs.any(JobId::is_atlas_load)
    }

    /// Takes what the `Open` job reported; returns what changed for the pages.
    pub fn poll_open(&mut self, jobs: &mut Jobs) -> Vec<ProjectEvent> {
        let (updates, outcome) = jobs
            .poll::<(), OpenUpdate>(&JobId::Open)
            .report_to(&mut self.problems, &mut self.log);
        if let Some(JobOutcome::Failed(e)) = outcome {
            self.errors.push(e);
        }
        let mut events = vec![];
        for update in updates {
            match update {
                OpenUpdate::Model(info, device) => {
                    self.model = Some(*info);
                    self.device = device;
                    events.push(ProjectEvent::ModelLoaded);
                }
                OpenUpdate::Scanned(n) => {
                    self.images_total = n;
                    events.push(ProjectEvent::Scanned);
                }
                OpenUpdate::Rows(rows) => self.rows.extend(rows),
            }
        }
        events
    }

    /// Takes the atlases read so far; returns how many were new (not a refresh of a view).
    pub fn poll_atlas_loads(&mut self, jobs: &mut Jobs) -> usize {
        let mut added = 0;
        for key in jobs.keys(JobId::is_atlas_load) {
            let (loaded, outcome) = jobs
                .poll::<(), LoadedAtlas>(&key)
                .report_to(&mut self.problems, &mut self.log);
            for atlas in loaded {
                added += usize::from(self.add_atlas(atlas));
            }
            if let Some(JobOutcome::Failed(e)) = outcome {
                self.errors.push(e);
            }
        }
        added
    }

    /// Adds a freshly loaded atlas, or refreshes the view of the same folder; true when added.
    fn add_atlas(&mut self, loaded: LoadedAtlas) -> bool {
        if let Some(view) = self.atlases.iter_mut().find(|v| v.root == loaded.root) {
            view.refresh(loaded);
            return false;
        }
        self.atlases.push(AtlasView::new(loaded));
        true
    }

    /// The loaded model's class names (empty until it has loaded).
    pub fn class_names(&self) -> Vec<String> {
        self.model
            .as_ref()
            .map(|m| m.classes.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The model's layers, with a tick on each `on` says (the layer choices of collection and
    /// build).
    pub fn chosen_layers(&self, on: &[bool]) -> Vec<String> {
        let Some(model) = &self.model else {
            return vec![];
        };
        model
            .layers
            .iter()
            .zip(on)
            .filter(|(_, on)| **on)
            .map(|(l, _)| l.name.clone())
            .collect()
    }

    /// Where exports of the project go.
    pub fn exports_dir(&self) -> PathBuf {
        self.dir.join("exports")
    }

    /// The last line of the log, in italics (under the build and collection buttons).
    pub fn last_log_line(&self, ui: &mut egui::Ui, small: bool) {
        if let Some(line) = self.log.last() {
            let text = egui::RichText::new(line).italics();
            ui.label(if small { text.small() } else { text });
        }
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
