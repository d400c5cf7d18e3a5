//! The pages of the window. Each page owns its state and implements [`Page`]: `logic` runs every
//! frame whatever page is on screen (it takes what the page's jobs reported), `ui` only while the
//! page is shown. A page edits only its own state; what it needs of the rest of the app comes in
//! a [`PageCx`], and anything it wants done elsewhere (another page, the tab, the current atlas)
//! it asks for with an [`Action`], which the app applies after the page returns.
//!
//! A new page: a module with its state type implementing [`Page`], a [`super::Tab`], a field in
//! `AtlasApp` and its line in `AtlasApp::with_pages` and `AtlasApp::ui`, and [`Action`]s for
//! what it asks of the others.
use std::path::PathBuf;

use eframe::egui;

use super::atlas_view::AtlasView;
use super::workers::ImageRow;
use super::Jobs;
use crate::attack::patch_source::PatchSource;
use crate::data::Problem;
use crate::model::Sidecar;
use crate::render::RenderSettings;

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
    ShowTab(super::Tab),
}

/// What a page may use of the app besides its own state: the project, the jobs registry and the
/// window's message lists.
pub struct PageCx<'a> {
    pub jobs: &'a mut Jobs,
    /// The project's atlases, and which one the Atlas page shows.
    pub atlases: &'a mut Vec<AtlasView>,
    pub current_atlas: usize,
    pub model: &'a Option<Sidecar>,
    pub model_path: &'a PathBuf,
    pub images_path: &'a PathBuf,
    /// The project's classified images.
    pub rows: &'a [ImageRow],
    /// Icon settings that replace the preset, and the preset.
    pub render_override: &'a Option<RenderSettings>,
    pub preset: &'a str,
    /// Where exports of the project go.
    pub exports_dir: PathBuf,
    pub problems: &'a mut Vec<Problem>,
    pub log: &'a mut Vec<String>,
    pub errors: &'a mut Vec<String>,
    /// What the page asked for this frame, applied by the app after the page returns.
    pub actions: Vec<Action>,
}

impl PageCx<'_> {
    /// The loaded model's class names (empty until it has loaded).
    pub fn class_names(&self) -> Vec<String> {
        self.model
            .as_ref()
            .map(|m| m.classes.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    }

    pub fn act(&mut self, action: Action) {
        self.actions.push(action);
    }
}

/// A page of the window: its state, its per-frame logic and its drawing.
pub trait Page {
    /// Takes what the page's jobs reported; runs every frame, whatever page is on screen.
    fn logic(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>);
    /// Draws the page (only while it is on screen).
    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>);
}
