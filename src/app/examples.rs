//! Dataset examples of the selected cell: the image patches whose vectors fell into it (the
//! non-parametric view the paper's reviewers asked for). The atlas's [`DatasetIndex`] is loaded
//! once per atlas on a worker, kept, and patches arrive one by one as they are cut.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui::{self, ColorImage, TextureHandle};

use super::job_id::{ExamplesOf, JobId, Jobs};
use super::page::{Action, Tab};
use crate::analysis::examples::{example_patch, DatasetIndex, Example};
use crate::jobs::{self, Finish, JobHandle, JobOutcome};

/// Patches shown per cell.
pub const EXAMPLES: usize = 12;
const PATCH_PX: u32 = 96;

/// What the examples job delivers as it goes (it ends with `Done(())`).
pub enum ExampleUpdate {
    Index(Arc<DatasetIndex>),
    /// How many rows the cell holds in all.
    Count(usize),
    Patch(Example, ColorImage),
}

/// The examples on screen; the job cutting them runs in the app's registry.
pub struct ExamplesState {
    /// Which page's examples these are (their job's key).
    of: ExamplesOf,
    /// (atlas folder, grid, cell index) the examples belong to.
    pub key: Option<(PathBuf, usize, usize)>,
    pub items: Vec<(Example, TextureHandle)>,
    pub total: usize,
    pub error: Option<String>,
    /// The patches are still being cut (the spinner).
    pub cutting: bool,
    indexes: HashMap<PathBuf, Arc<DatasetIndex>>,
}

/// Cuts the examples of cell (`x`, `y`) of `grid`, reading the atlas's index unless `cached`.
fn spawn_examples(
    atlas: PathBuf,
    cached: Option<Arc<DatasetIndex>>,
    grid: usize,
    x: usize,
    y: usize,
) -> JobHandle<(), ExampleUpdate> {
    jobs::spawn_job("examples", move |reporter, cancel| {
        let index = match cached {
            Some(i) => i,
            None => {
                reporter.progress("reading the dataset index", 0, 1);
                let i = Arc::new(DatasetIndex::load(&atlas)?);
                reporter.partial(ExampleUpdate::Index(i.clone()));
                i
            }
        };
        reporter.partial(ExampleUpdate::Count(index.cell_members(grid, x, y).len()));
        let examples = index.cell_examples(grid, x, y, EXAMPLES);
        let input = index.model_input();
        for (n, ex) in examples.into_iter().enumerate() {
            if cancel.is_cancelled() {
                return Ok(Finish::Cancelled);
            }
            reporter.progress("cutting patches", n as u64, EXAMPLES as u64);
            let patch = example_patch(&ex, input, PATCH_PX)?;
            let img = ColorImage::from_rgb(
                [patch.width() as usize, patch.height() as usize],
                patch.as_raw(),
            );
            reporter.partial(ExampleUpdate::Patch(ex, img));
        }
        Ok(Finish::Done(()))
    })
}

impl ExamplesState {
    pub fn new(of: ExamplesOf) -> Self {
        ExamplesState {
            of,
            key: None,
            items: vec![],
            total: 0,
            error: None,
            cutting: false,
            indexes: HashMap::new(),
        }
    }

    fn job_id(&self) -> JobId {
        JobId::Examples(self.of)
    }

    /// Starts cutting the examples of cell (`x`, `y`) of `grid` unless they are already shown.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        jobs: &mut Jobs,
        atlas: PathBuf,
        grid: usize,
        index: usize,
        x: usize,
        y: usize,
    ) {
        let key = (atlas.clone(), grid, index);
        if self.key.as_ref() == Some(&key) {
            return;
        }
        jobs.cancel_and_forget(&self.job_id());
        self.key = Some(key);
        self.items.clear();
        self.total = 0;
        self.error = None;
        self.cutting = true;
        let cached = self.indexes.get(&atlas).cloned();
        jobs.start(self.job_id(), || spawn_examples(atlas, cached, grid, x, y));
    }

    /// The model input size of the shown examples' atlas (once its index is loaded).
    pub fn model_input(&self) -> Option<(u32, u32)> {
        let (root, _, _) = self.key.as_ref()?;
        Some(self.indexes.get(root)?.model_input())
    }

    pub fn clear(&mut self, jobs: &mut Jobs) {
        jobs.cancel_and_forget(&self.job_id());
        self.cutting = false;
        self.key = None;
        self.items.clear();
    }

    /// Takes finished patches into textures; call once a frame.
    pub fn poll(&mut self, jobs: &mut Jobs, ctx: &egui::Context) {
        let drained = jobs.poll::<(), ExampleUpdate>(&self.job_id());
        for update in drained.partials {
            self.take(update, ctx);
        }
        match drained.outcome {
            None => {}
            Some(JobOutcome::Failed(e)) => {
                self.error = Some(e);
                self.cutting = false;
            }
            Some(_) => self.cutting = false,
        }
    }

    fn take(&mut self, update: ExampleUpdate, ctx: &egui::Context) {
        match update {
            ExampleUpdate::Index(i) => {
                if let Some((root, _, _)) = &self.key {
                    self.indexes.insert(root.clone(), i);
                }
            }
            ExampleUpdate::Count(n) => self.total = n,
            ExampleUpdate::Patch(ex, img) => {
                let name = format!("example-{}", ex.row);
                let tex = ctx.load_texture(name, img, egui::TextureOptions::LINEAR);
                self.items.push((ex, tex));
            }
        }
    }

    /// The patches as a wrapped grid with their image names on hover, each a drag source for the
    /// attack workbench once the model input their positions refer to is known (from the atlas's
    /// index, else `fallback_input`). `controls` says how a patch is sent there, or its image
    /// attacked; what the user asked for is returned.
    pub fn show(
        &self,
        ui: &mut egui::Ui,
        fallback_input: Option<(u32, u32)>,
        controls: ExampleControls,
    ) -> Vec<Action> {
        ui.label(egui::RichText::new("Dataset examples").strong());
        if let Some(e) = &self.error {
            ui.colored_label(egui::Color32::from_rgb(200, 40, 40), e);
        }
        let input = self.model_input().or(fallback_input);
        let mut actions = vec![];
        ui.label(
            egui::RichText::new(format!(
                "{} of {} patches whose vectors fall in this cell, most typical first",
                self.items.len(),
                self.total
            ))
            .small(),
        );
        ui.horizontal_wrapped(|ui| {
            for (ex, tex) in &self.items {
                match controls {
                    ExampleControls::ContextMenu => {
                        self.example(ui, ex, tex, input, controls, &mut actions);
                    }
                    ExampleControls::Button => {
                        ui.vertical(|ui| self.example(ui, ex, tex, input, controls, &mut actions));
                    }
                }
            }
            if self.cutting {
                ui.spinner();
            }
        });
        actions
    }

    /// One example: its patch (a drag source once `input` is known) and its controls.
    fn example(
        &self,
        ui: &mut egui::Ui,
        ex: &Example,
        tex: &TextureHandle,
        input: Option<(u32, u32)>,
        controls: ExampleControls,
        actions: &mut Vec<Action>,
    ) {
        let size = egui::vec2(64.0, 64.0);
        let tip = tooltip(ex, controls);
        let Some(input) = input else {
            ui.image((tex.id(), size)).on_hover_text(tip);
            return;
        };
        let payload = crate::attack::patch_source::example_source(ex, input);
        let id = egui::Id::unique(("example_drag", self.of, ex.row));
        let resp = ui
            .dnd_drag_source(id, payload.clone(), |ui| ui.image((tex.id(), size)))
            .response
            .on_hover_text(tip);
        match controls {
            ExampleControls::ContextMenu => {
                resp.context_menu(|ui| {
                    if ui.button("Use as patch").clicked() {
                        actions.push(Action::UseAsPatch(payload.clone()));
                    }
                    if ui.button("Attack this image").clicked() {
                        actions.push(Action::AttackImage(ex.image_path.clone()));
                        actions.push(Action::ShowTab(Tab::Attack));
                    }
                });
            }
            ExampleControls::Button => {
                if ui.small_button("Use as patch").clicked() {
                    actions.push(Action::UseAsPatch(payload));
                }
            }
        }
    }
}

/// How an example is sent to the attack workbench besides dragging it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExampleControls {
    /// A right-click menu: use as patch, or attack its image (the Atlas page).
    ContextMenu,
    /// A "Use as patch" button under each patch (the Classes page).
    Button,
}

/// The example's image, position, similarity and label, and what it can do.
fn tooltip(ex: &Example, controls: ExampleControls) -> String {
    let file = ex
        .image_path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let label = ex
        .label
        .as_ref()
        .map(|l| format!("\nlabel {l}"))
        .unwrap_or_default();
    let hint = match controls {
        ExampleControls::ContextMenu => {
            "\ndrag onto the Patch attack tab to use it as a patch; right-click for more"
        }
        ExampleControls::Button => "",
    };
    format!(
        "{file}\nposition ({}, {}) of {}×{}\nsimilarity to the cell mean {:.2}{label}{hint}",
        ex.pos_y, ex.pos_x, ex.layer_h, ex.layer_w, ex.similarity
    )
}
