//! The pages of the window. Each page owns its state and implements [`Page`]: `logic` runs every
//! frame whatever page is on screen (it takes what the page's jobs reported), `ui` only while the
//! page is shown. A page edits only its own state and the shared [`Project`]; what it needs of the
//! rest of the app comes in a [`PageCx`], and anything it wants done elsewhere (another page, the
//! tab, opening a project) it asks for with an [`Action`], which the app applies after the page
//! returns.
//!
//! A new page: a module with its state type implementing [`Page`], a [`Tab`] (and its entry in
//! the tab bar's `TABS`), a field in `AtlasApp` and its line in `Pages` (`all` and `get`), and
//! [`Action`]s for what it asks of the others. State that several pages share goes in
//! [`Project`].
use std::path::PathBuf;

use eframe::egui;

use super::job_id::Jobs;
use super::project::{Project, ProjectEvent};
use crate::attack::patch_source::PatchSource;

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

/// What a page asks of the app.
#[derive(Clone)]
pub enum Action {
    /// Put a patch in the Patch attack page's tray.
    UseAsPatch(PatchSource),
    /// Open an image on the Patch attack page as the image to attack.
    AttackImage(PathBuf),
    /// Analyse an image on the One image page.
    OpenImage(PathBuf),
    /// Make the atlas in this folder the current one and show the Atlas page.
    ShowAtlas(PathBuf),
    ShowTab(Tab),
    /// Open this model and image folder as the project.
    OpenProject {
        model: PathBuf,
        images: PathBuf,
    },
    /// Ask the user for an image folder, or a model, and open it.
    PickFolder,
    PickModel,
}

/// What a page may use of the app besides its own state: the shared project, the jobs registry,
/// and the list of what it asks of the app.
pub struct PageCx<'a> {
    pub project: &'a mut Project,
    pub jobs: &'a mut Jobs,
    /// What the page asked for this frame, applied by the app after the page returns.
    pub actions: Vec<Action>,
}

impl PageCx<'_> {
    /// The loaded model's class names (empty until it has loaded).
    pub fn class_names(&self) -> Vec<String> {
        self.project.class_names()
    }

    pub fn act(&mut self, action: Action) {
        self.actions.push(action);
    }
}

/// A page of the window: its state, its per-frame logic and its drawing.
pub trait Page {
    /// Follows a change of the project (a new project, the model loaded, the folder scanned);
    /// most pages have nothing to do.
    fn on_project(&mut self, _event: ProjectEvent, _cx: &mut PageCx<'_>) {}
    /// Takes what the page's jobs reported; runs every frame, whatever page is on screen.
    fn logic(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>);
    /// Draws the page (only while it is on screen).
    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>);
}
