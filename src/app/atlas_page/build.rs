//! The project's atlas build: collect (or resume) the ticked layers and build their atlases in
//! one cancellable job, its controls, and the build that starts by itself on a first run.
use eframe::egui;

use super::AtlasPage;
use crate::app::images_page::collection_done;
use crate::app::job_id::JobId;
use crate::app::page::{Action, PageCx, Tab};
use crate::app::project::Project;
use crate::app::widgets::{job_row, layer_ticks, positions_per_image};
use crate::atlas::BuildEvent;
use crate::collect::CollectConfig;
use crate::jobs::JobOutcome;
use crate::pipeline::{self, PipelineEvent};
use crate::render::RenderSettings;

/// The icon presets offered, with what each is.
const PRESETS: [(&str, &str); 3] = [
    (
        "maco",
        "MACO phase icons, 128 steps: the most legible synthetic icons on the legibility \
         benchmark (docs/legibility.md)",
    ),
    ("preview", "lucid's recipe, 128 steps, 1 try: quick"),
    (
        "paper",
        "lucid's recipe, 1024 steps, best of 4 tries: the paper's, slow on a CPU",
    ),
];

/// The atlas is built for the linear-head layer by default (the most class-like icons and the
/// most meaningful labels); other layers are a tick away.
pub fn default_layers(project: &Project) -> Vec<bool> {
    let Some(info) = &project.model else {
        return vec![];
    };
    let head = info.linear_head_layer.as_ref();
    let last = info.layers.len().saturating_sub(1);
    info.layers
        .iter()
        .enumerate()
        .map(|(i, l)| head.map_or(i == last, |h| *h == l.name))
        .collect()
}

/// Small folders get several positions per image so their atlas has points enough for a grid;
/// large ones keep the paper's one per image.
pub fn default_positions(images: usize) -> u32 {
    match images {
        0..=300 => 16,
        301..=3000 => 4,
        _ => 1,
    }
}

impl AtlasPage {
    /// Collects (or resumes) the chosen layers and builds their atlases, in one cancellable job.
    pub fn start_build(&self, cx: &mut PageCx<'_>) {
        let project = &mut *cx.project;
        if project.model.is_none() {
            return;
        }
        let layers = project.chosen_layers(&self.build_layers);
        if layers.is_empty() {
            project
                .errors
                .push("choose at least one layer for the atlas".into());
            return;
        }
        let render = match project
            .render_override
            .clone()
            .map_or_else(|| RenderSettings::preset(&project.preset), Ok)
        {
            Ok(r) => r,
            Err(e) => {
                project.errors.push(e.to_string());
                return;
            }
        };
        let out = project.dir.join(format!(
            "atlas-{}-x{}",
            layers.join("+"),
            self.build_positions
        ));
        project.log.push(format!("building into {}", out.display()));
        let collect = CollectConfig {
            model: project.model_path.clone(),
            images: project.images_path.clone(),
            layers,
            out,
            samples_per_image: self.build_positions,
            ..Default::default()
        };
        cx.jobs.start(JobId::Build, || {
            pipeline::spawn_pipeline(pipeline::PipelineConfig { collect, render })
        });
    }

    /// Starts the build asked for by [`AtlasPage::auto_build`] once the model is loaded, the
    /// folder scanned (which sets the positions per image) and any saved atlas has loaded.
    pub(super) fn maybe_auto_build(&mut self, cx: &mut PageCx<'_>) {
        let project = &cx.project;
        let ready = project.model.is_some()
            && project.images_total > 0
            && !Project::loading_atlases(cx.jobs);
        if !self.auto_build || !ready || cx.jobs.is_running(&JobId::Build) {
            return;
        }
        self.auto_build = false;
        if project.atlases.is_empty() {
            cx.project
                .log
                .push("no saved atlas for this project yet: building one".into());
            cx.act(Action::ShowTab(Tab::Atlas));
            self.start_build(cx);
        }
    }

    /// The build controls: layers, positions, icon preset, Build or Cancel.
    pub(super) fn build_section(&mut self, cx: &mut PageCx<'_>, ui: &mut egui::Ui) {
        ui.heading("Build");
        let Some(info) = cx.project.model.clone() else {
            ui.label("waiting for the model");
            return;
        };
        ui.label(format!(
            "{} on {} images",
            info.name,
            cx.project.images_total.max(cx.project.rows.len())
        ));
        layer_ticks(ui, &info.layers, &mut self.build_layers);
        ui.horizontal(|ui| positions_per_image(ui, &mut self.build_positions, 64));
        ui.horizontal(|ui| {
            ui.label("icons:");
            for (preset, what) in PRESETS {
                let on = cx.project.preset == preset;
                if ui
                    .selectable_label(on, preset)
                    .on_hover_text(what)
                    .clicked()
                {
                    cx.project.preset = preset.into();
                }
            }
        });
        if job_row(ui, cx.jobs, &JobId::Build, "Build atlas", "Cancel build") {
            self.start_build(cx);
        }
        cx.project.last_log_line(ui, true);
    }
}

/// Takes the build's news: its collection, each atlas as its levels are laid out, each sheet of
/// icons as it is rendered.
pub fn poll(cx: &mut PageCx<'_>) {
    let project = &mut *cx.project;
    let (partials, outcome) = cx
        .jobs
        .poll::<(), PipelineEvent>(&JobId::Build)
        .report_to(&mut project.problems, &mut project.log);
    for event in partials {
        on_pipeline_event(cx, event);
    }
    let project = &mut *cx.project;
    match outcome {
        None => {}
        Some(JobOutcome::Done(())) => project.log.push("atlas complete".into()),
        Some(JobOutcome::Cancelled) => project.log.push(
            "atlas build cancelled; finished work is saved and Build atlas resumes it".into(),
        ),
        Some(JobOutcome::Failed(e)) => project.errors.push(format!("atlas build failed: {e}")),
    }
}

fn on_pipeline_event(cx: &mut PageCx<'_>, event: PipelineEvent) {
    let project = &mut *cx.project;
    match event {
        PipelineEvent::Collected(summary) => collection_done(project, summary),
        PipelineEvent::Build { dir, event, .. } => match event {
            BuildEvent::LevelsReady(_) => Project::load_atlases(cx.jobs, vec![dir]),
            BuildEvent::SheetReady { grid, sheet } => {
                if let Some(v) = project.atlases.iter_mut().find(|v| v.root == dir) {
                    v.sheet_ready(grid, sheet);
                }
            }
            // Read the finished atlas again: sheets written while its view was still loading
            // were not announced to it.
            BuildEvent::Finished { .. } => Project::load_atlases(cx.jobs, vec![dir]),
        },
    }
}
