//! The Images page: the model and its layers on the left, the collection form at the bottom, the
//! project's images with their predictions in the middle.
use eframe::egui::{self, Color32, RichText};

use super::job_id::JobId;
use super::page::{Page, PageCx};
use super::project::{Project, ProjectEvent};
use super::widgets::{job_row, layer_ticks, positions_per_image};
use super::workers::ImageRow;
use crate::collect::{spawn_collect, CollectConfig, CollectSummary};
use crate::jobs::JobOutcome;

/// Settings of the next collection, edited in the collection panel.
pub struct CollectForm {
    /// One tick per layer of the model.
    pub layers: Vec<bool>,
    pub samples_per_image: u32,
}

pub struct ImagesPage {
    pub collect_form: CollectForm,
    /// The images' thumbnails as textures, one per row of the project (`None`: no thumbnail).
    thumbnails: Vec<Option<egui::TextureHandle>>,
}

impl Default for ImagesPage {
    fn default() -> Self {
        ImagesPage {
            collect_form: CollectForm {
                layers: vec![],
                samples_per_image: 1,
            },
            thumbnails: vec![],
        }
    }
}

impl Page for ImagesPage {
    fn on_project(&mut self, event: ProjectEvent, cx: &mut PageCx<'_>) {
        match event {
            ProjectEvent::Opened => self.thumbnails.clear(),
            ProjectEvent::ModelLoaded => {
                let layers = cx.project.model.as_ref().map_or(0, |m| m.layers.len());
                self.collect_form.layers = vec![true; layers];
            }
            ProjectEvent::Scanned => {}
        }
    }

    fn logic(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>) {
        self.load_thumbnails(ctx, &cx.project.rows);
        poll_collect(cx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        model_panel(cx.project, ui);
        self.collect_panel(cx, ui);
        self.images_panel(cx.project, ui);
    }
}

impl ImagesPage {
    /// Makes textures of the thumbnails of rows that arrived since the last frame.
    fn load_thumbnails(&mut self, ctx: &egui::Context, rows: &[ImageRow]) {
        for row in rows.iter().skip(self.thumbnails.len()) {
            let tex = row.thumbnail.as_ref().map(|img| {
                let name = format!("thumb-{}", self.thumbnails.len());
                ctx.load_texture(name, img.clone(), egui::TextureOptions::LINEAR)
            });
            self.thumbnails.push(tex);
        }
    }

    /// Collects the ticked layers into a run folder of the project.
    pub fn start_collection(&self, cx: &mut PageCx<'_>) {
        let project = &mut *cx.project;
        let Some(model) = &project.model else { return };
        let layers = project.chosen_layers(&self.collect_form.layers);
        if layers.is_empty() {
            project
                .errors
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
        let samples_per_image = self.collect_form.samples_per_image;
        let out = project.dir.join(format!("{tag}-x{samples_per_image}"));
        let cfg = CollectConfig {
            model: project.model_path.clone(),
            images: project.images_path.clone(),
            layers,
            out,
            samples_per_image,
            ..Default::default()
        };
        project
            .log
            .push(format!("collecting into {}", cfg.out.display()));
        cx.jobs.start(JobId::Collect, || spawn_collect(cfg));
    }

    fn collect_panel(&mut self, cx: &mut PageCx<'_>, ui: &mut egui::Ui) {
        egui::Panel::bottom("collect_panel").show(ui, |ui| {
            ui.heading("Collection: activations + attributions");
            let Some(info) = cx.project.model.clone() else {
                ui.label("waiting for the model");
                return;
            };
            let form = &mut self.collect_form;
            layer_ticks(ui, &info.layers, &mut form.layers);
            ui.horizontal(|ui| {
                positions_per_image(ui, &mut form.samples_per_image, 16);
                ui.label(format!("runs are saved under {}", cx.project.dir.display()));
            });
            ui.horizontal(|ui| {
                let collect = &JobId::Collect;
                if job_row(
                    ui,
                    cx.jobs,
                    collect,
                    "Start collection",
                    "Cancel collection",
                ) {
                    self.start_collection(cx);
                }
            });
            if let Some(done) = &cx.project.last_collection {
                for l in &done.manifest.layers {
                    ui.label(format!(
                        "{}: {} vectors × {} channels, attributions over {} classes",
                        l.name, l.rows, l.channels, done.manifest.num_classes
                    ));
                }
            }
            cx.project.last_log_line(ui, false);
        });
    }

    fn images_panel(&self, project: &Project, ui: &mut egui::Ui) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading(format!("Images and predictions ({})", project.rows.len()));
            let names = project.class_names();
            const CELL: f32 = 150.0;
            let columns = ((ui.available_width() / (CELL + ui.spacing().item_spacing.x)).floor()
                as usize)
                .max(1);
            egui::ScrollArea::vertical().show(ui, |ui| {
                egui::Grid::new("images")
                    .min_col_width(CELL)
                    .max_col_width(CELL)
                    .show(ui, |ui| {
                        let shown = project
                            .rows
                            .iter()
                            .zip(&self.thumbnails)
                            .filter_map(|(row, tex)| tex.as_ref().map(|t| (row, t)));
                        for (i, (row, tex)) in shown.enumerate() {
                            ui.vertical(|ui| image_cell(ui, row, tex, &names));
                            if (i + 1) % columns == 0 {
                                ui.end_row();
                            }
                        }
                    });
            });
        });
    }
}

/// Takes the collection's news: its summary when it is done.
fn poll_collect(cx: &mut PageCx<'_>) {
    let project = &mut *cx.project;
    let (_, outcome) = cx
        .jobs
        .poll::<CollectSummary, CollectSummary>(&JobId::Collect)
        .report_to(&mut project.problems, &mut project.log);
    match outcome {
        None => {}
        Some(JobOutcome::Done(summary)) => collection_done(project, summary),
        Some(JobOutcome::Cancelled) => project
            .log
            .push("collection cancelled; start it again to resume".into()),
        Some(JobOutcome::Failed(e)) => project.errors.push(format!("collection failed: {e}")),
    }
}

/// Keeps a finished collection's summary (alone, or as the first stage of an atlas build).
pub fn collection_done(project: &mut Project, summary: CollectSummary) {
    project.log.push(format!(
        "collection complete: {} images",
        summary.manifest.images_done
    ));
    project.last_collection = Some(summary);
}

/// The model, its layers, how many images are classified and how well, and skipped inputs.
fn model_panel(project: &Project, ui: &mut egui::Ui) {
    egui::Panel::left("model_panel")
        .default_size(260.0)
        .show(ui, |ui| {
            ui.heading("Model");
            let Some(info) = &project.model else {
                ui.label(format!("loading {} …", project.model_path.display()));
                return;
            };
            ui.label(RichText::new(&info.name).strong());
            ui.label(format!(
                "{} classes, input {}×{}",
                info.classes.len(),
                info.input_size[1],
                info.input_size[0]
            ));
            ui.label(format!("device: {}", project.device));
            ui.label(format!("file: {}", project.model_path.display()));
            ui.separator();
            ui.label(RichText::new("Layers").strong());
            layers_grid(ui, info);
            ui.separator();
            classified(ui, project);
        });
}

fn layers_grid(ui: &mut egui::Ui, info: &crate::model::Sidecar) {
    egui::Grid::new("layers").striped(true).show(ui, |ui| {
        ui.label("name");
        ui.label("channels");
        ui.label("grid");
        ui.end_row();
        for l in &info.layers {
            let head = info.linear_head_layer.as_deref() == Some(l.name.as_str());
            ui.label(if head {
                format!("{} (linear head)", l.name)
            } else {
                l.name.clone()
            });
            ui.label(l.channels.to_string());
            ui.label(format!("{}×{}", l.height, l.width));
            ui.end_row();
        }
    });
}

/// How many images are classified, the accuracy on labelled ones, and the skipped inputs.
fn classified(ui: &mut egui::Ui, project: &Project) {
    let (correct, labelled) = crate::classify::accuracy(project.rows.iter().map(|r| &r.result));
    ui.label(format!(
        "images classified: {} of {}",
        project.rows.len(),
        project.images_total
    ));
    if labelled > 0 {
        ui.label(format!(
            "top-1 accuracy on labelled images: {correct}/{labelled} ({:.1}%)",
            100.0 * correct as f64 / labelled as f64
        ));
    }
    if !project.problems.is_empty() {
        ui.collapsing(
            format!("skipped inputs: {}", project.problems.len()),
            |ui| {
                egui::ScrollArea::vertical()
                    .max_height(160.0)
                    .show(ui, |ui| {
                        for p in &project.problems {
                            ui.label(format!("{}: {}", p.path.display(), p.reason));
                        }
                    });
            },
        );
    }
}

fn image_cell(ui: &mut egui::Ui, row: &ImageRow, tex: &egui::TextureHandle, names: &[String]) {
    ui.image((tex.id(), egui::vec2(72.0, 72.0)));
    let row = &row.result;
    if let Ok(top) = &row.top {
        if let Some((c, p)) = top.first() {
            let colour = match row.truth.map(|t| t == *c) {
                Some(true) => Color32::from_rgb(30, 140, 60),
                Some(false) => Color32::from_rgb(190, 60, 40),
                None => ui.visuals().text_color(),
            };
            let name = names.get(*c).map(String::as_str).unwrap_or("?");
            ui.colored_label(colour, format!("{name} {:.0}%", p * 100.0));
        }
    }
    let file = row
        .path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    ui.label(RichText::new(file).small());
}
