//! The Atlas page: build controls, view settings and class focus on the left ([`controls`]), the
//! selected cell on the right ([`details`]), the canvas in the middle with its export row
//! ([`export`]). The build job (collect, then lay out and render) is in [`build`].
mod build;
mod controls;
mod details;
mod export;

use eframe::egui;

use super::atlas_view::canvas;
use super::examples::ExamplesState;
use super::job_id::{ExamplesOf, JobId};
use super::page::{Page, PageCx};
use super::project::ProjectEvent;

pub struct AtlasPage {
    /// Layers the next "Build atlas" collects and lays out (one tick per layer of the model).
    pub build_layers: Vec<bool>,
    /// Positions per image of the next "Build atlas".
    pub build_positions: u32,
    /// Build the project's atlas as soon as the model and the folder are read, unless a saved
    /// atlas opens (the first run of `atlas app` with no arguments lands on an atlas filling in).
    pub auto_build: bool,
    /// The class search box of the focus section.
    pub class_search: String,
    /// Dataset examples of the selected cell.
    pub examples: ExamplesState,
    /// The canvas's screen rectangle in the last frame (for the PNG export).
    pub canvas_rect: Option<egui::Rect>,
    /// The selected cell's large icon on screen in the last frame (a drag source for patches).
    pub details_icon_rect: Option<egui::Rect>,
    exports: export::Exports,
}

impl Default for AtlasPage {
    fn default() -> Self {
        AtlasPage {
            build_layers: vec![],
            build_positions: 1,
            auto_build: false,
            class_search: String::new(),
            examples: ExamplesState::new(ExamplesOf::Atlas),
            canvas_rect: None,
            details_icon_rect: None,
            exports: export::Exports::default(),
        }
    }
}

impl Page for AtlasPage {
    fn on_project(&mut self, event: ProjectEvent, cx: &mut PageCx<'_>) {
        match event {
            ProjectEvent::Opened => cx.jobs.cancel_and_forget(&JobId::Build),
            ProjectEvent::ModelLoaded => self.build_layers = build::default_layers(cx.project),
            ProjectEvent::Scanned => {
                self.build_positions = build::default_positions(cx.project.images_total);
            }
        }
    }

    fn logic(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>) {
        build::poll(cx);
        self.examples.poll(cx.jobs, ctx);
        self.exports.poll(cx.project);
        self.maybe_auto_build(cx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        controls::panel(self, cx, ui);
        details::panel(self, cx, ui);
        self.canvas(cx, ui);
    }
}

impl AtlasPage {
    /// The current atlas, or what the user waits for while there is none.
    fn canvas(&mut self, cx: &mut PageCx<'_>, ui: &mut egui::Ui) {
        egui::CentralPanel::default().show(ui, |ui| {
            let project = &mut *cx.project;
            if project.atlases.get(project.current_atlas).is_none() {
                ui.centered_and_justified(|ui| {
                    ui.label(if cx.jobs.is_running(&JobId::Build) {
                        "the atlas appears here as soon as its layout is done…"
                    } else if self.auto_build {
                        "loading the model and the images: the atlas builds by itself, then appears here…"
                    } else {
                        "no atlas for this project yet: choose layers and press Build atlas"
                    });
                });
                self.canvas_rect = None;
                return;
            }
            self.export_row(project, ui);
            let focus = project.focus.clone();
            let Some(view) = project.atlases.get_mut(project.current_atlas) else {
                return;
            };
            self.canvas_rect = Some(ui.available_rect_before_wrap());
            canvas::show(ui, view, focus.as_ref());
        });
    }
}
