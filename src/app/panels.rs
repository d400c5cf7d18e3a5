//! The app-level panels (the top bar, the Home and Images pages' panels), one function each,
//! reading and editing `AtlasApp`; also the drag indicator shown over every page.
use eframe::egui::{self, Color32, RichText};

use super::widgets::progress_row;
use super::{AtlasApp, JobId, Tab};
use crate::attack::patch_source::PatchSource;

pub fn top_bar(app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::Panel::top("top_bar").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("Activation Atlas");
            ui.separator();
            for (tab, name) in [
                (Tab::Home, "Home"),
                (Tab::Images, "Images"),
                (Tab::Atlas, "Atlas"),
                (Tab::Layers, "Layers"),
                (Tab::Image, "One image"),
                (Tab::Classes, "Classes"),
                (Tab::Attack, "Patch attack"),
            ] {
                let tab_button = ui.selectable_label(app.tab == tab, name);
                if tab_button.clicked() {
                    app.set_tab(tab);
                }
                if tab == Tab::Attack {
                    // Drag an icon or example over this tab to open the page mid-drag.
                    tab_drag_hover(app, &tab_button);
                }
            }
            ui.separator();
            if ui.button("Open folder…").clicked() {
                app.ask_folder();
            }
            if ui.button("Open model…").clicked() {
                app.ask_model();
            }
            ui.separator();
            ui.label(format!("images: {}", app.images_path.display()));
            if app.jobs.is_running(&JobId::Open) {
                if let Some(p) = app.jobs.progress(&JobId::Open) {
                    progress_row(ui, p);
                }
                if ui.button("Cancel").clicked() {
                    app.jobs.cancel(&JobId::Open);
                }
            }
        });
        let mut dismiss = None;
        for (i, e) in app.errors.iter().enumerate() {
            // The button first: a long message (a deep path) would push it off the window.
            ui.horizontal(|ui| {
                if ui.small_button("dismiss").clicked() {
                    dismiss = Some(i);
                }
                ui.colored_label(Color32::from_rgb(200, 40, 40), format!("Error: {e}"));
            });
        }
        if let Some(i) = dismiss {
            app.errors.remove(i);
        }
    });
}

/// The welcome page: recent projects and the ways to open one.
pub fn home_page(app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::CentralPanel::default().show(ui, |ui| {
        ui.heading("Welcome to Activation Atlas");
        ui.label(
            "Open a folder of images (or drop one on this window), keep the embedded \
             EfficientNet-Lite0 or open your own TorchScript model, then build the atlas.",
        );
        ui.horizontal(|ui| {
            if ui.button("Open folder…").clicked() {
                app.ask_folder();
            }
            if ui.button("Open model…").clicked() {
                app.ask_model();
            }
            if ui.button("Open the bundled example").clicked() {
                app.model_path = crate::defaults::default_model();
                app.images_path = crate::defaults::default_images();
                app.open();
                app.set_tab(Tab::Images);
            }
        });
        ui.separator();
        ui.heading("Recent projects");
        if app.recent.is_empty() {
            ui.label("none yet");
        }
        let mut chosen = None;
        egui::Grid::new("recent").striped(true).show(ui, |ui| {
            for p in &app.recent {
                let name = p
                    .images
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default();
                if ui.link(&name).clicked() {
                    chosen = Some(p.clone());
                }
                ui.label(p.images.display().to_string());
                ui.label(
                    p.model
                        .file_name()
                        .map(|f| f.to_string_lossy().to_string())
                        .unwrap_or_default(),
                );
                ui.end_row();
            }
        });
        if let Some(p) = chosen {
            app.model_path = p.model;
            app.images_path = p.images;
            app.open();
            app.set_tab(Tab::Atlas);
        }
    });
}

pub fn model_panel(app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::Panel::left("model_panel")
        .default_size(260.0)
        .show(ui, |ui| {
            ui.heading("Model");
            let Some(info) = &app.model else {
                ui.label(format!("loading {} …", app.model_path.display()));
                return;
            };
            ui.label(RichText::new(&info.name).strong());
            ui.label(format!(
                "{} classes, input {}×{}",
                info.classes.len(),
                info.input_size[1],
                info.input_size[0]
            ));
            ui.label(format!("device: {}", app.device));
            ui.label(format!("file: {}", app.model_path.display()));
            ui.separator();
            ui.label(RichText::new("Layers").strong());
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
            ui.separator();
            let (correct, labelled) = crate::classify::accuracy(app.rows.iter().map(|r| &r.result));
            ui.label(format!(
                "images classified: {} of {}",
                app.rows.len(),
                app.images_total
            ));
            if labelled > 0 {
                ui.label(format!(
                    "top-1 accuracy on labelled images: {correct}/{labelled} ({:.1}%)",
                    100.0 * correct as f64 / labelled as f64
                ));
            }
            if !app.problems.is_empty() {
                ui.collapsing(format!("skipped inputs: {}", app.problems.len()), |ui| {
                    egui::ScrollArea::vertical()
                        .max_height(160.0)
                        .show(ui, |ui| {
                            for p in &app.problems {
                                ui.label(format!("{}: {}", p.path.display(), p.reason));
                            }
                        });
                });
            }
        });
}

pub fn collect_panel(app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::Panel::bottom("collect_panel").show(ui, |ui| {
        ui.heading("Collection: activations + attributions");
        let Some(info) = app.model.clone() else {
            ui.label("waiting for the model");
            return;
        };
        ui.horizontal_wrapped(|ui| {
            ui.label("layers:");
            for (l, on) in info.layers.iter().zip(app.collect_form.layers.iter_mut()) {
                ui.checkbox(on, &l.name);
            }
        });
        ui.horizontal(|ui| {
            ui.label("positions per image:");
            ui.add(egui::DragValue::new(&mut app.collect_form.samples_per_image).range(1..=16));
            ui.label(format!(
                "runs are saved under {}",
                app.collect_form.out.display()
            ));
        });
        ui.horizontal(|ui| {
            if app.jobs.is_running(&JobId::Collect) {
                match app.jobs.progress(&JobId::Collect) {
                    Some(p) => progress_row(ui, p),
                    None => {
                        ui.spinner();
                    }
                }
                if ui.button("Cancel collection").clicked() {
                    app.cancel_collection();
                }
            } else if ui.button("Start collection").clicked() {
                app.start_collection();
            }
        });
        if let Some(done) = &app.last_collection {
            for l in &done.manifest.layers {
                ui.label(format!(
                    "{}: {} vectors × {} channels, attributions over {} classes",
                    l.name, l.rows, l.channels, done.manifest.num_classes
                ));
            }
        }
        if let Some(line) = app.log.last() {
            ui.label(RichText::new(line).italics());
        }
    });
}

pub fn images_panel(app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::CentralPanel::default().show(ui, |ui| {
        ui.heading(format!("Images and predictions ({})", app.rows.len()));
        let names = app.class_names();
        const CELL: f32 = 150.0;
        let columns =
            ((ui.available_width() / (CELL + ui.spacing().item_spacing.x)).floor() as usize).max(1);
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("images")
                .min_col_width(CELL)
                .max_col_width(CELL)
                .show(ui, |ui| {
                    let shown = app
                        .rows
                        .iter()
                        .zip(&app.thumbnails)
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

fn image_cell(
    ui: &mut egui::Ui,
    row: &super::workers::ImageRow,
    tex: &egui::TextureHandle,
    names: &[String],
) {
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

/// While a patch is dragged, its name follows the pointer (with where to drop it).
pub fn drag_indicator(ctx: &egui::Context) {
    let Some(payload) = egui::DragAndDrop::payload::<PatchSource>(ctx) else {
        return;
    };
    let Some(pos) = ctx.pointer_latest_pos() else {
        return;
    };
    egui::Area::new(egui::Id::unique("attack_drag_indicator"))
        .order(egui::Order::Tooltip)
        .fixed_pos(pos + egui::vec2(14.0, 14.0))
        .interactable(false)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.label(format!("patch: {}", payload.name()));
                ui.label(
                    RichText::new("drop it on the Patch attack tab, then on the image")
                        .small()
                        .weak(),
                );
            });
        });
}

/// True while an egui drag carries a patch (so the tab bar can open this page mid-drag).
fn dragging_patch(ctx: &egui::Context) -> bool {
    egui::DragAndDrop::has_payload_of_type::<PatchSource>(ctx)
}

/// Switches to the Patch attack page when a patch is dragged over its tab. (Raw pointer
/// geometry: the dragged picture itself floats under the pointer, so egui's hover tests would say
/// the tab is covered.)
fn tab_drag_hover(app: &mut AtlasApp, tab_response: &egui::Response) {
    let ctx = &tab_response.ctx;
    let over = ctx
        .pointer_latest_pos()
        .is_some_and(|p| tab_response.rect.contains(p));
    if app.tab != Tab::Attack && over && dragging_patch(ctx) {
        app.set_tab(Tab::Attack);
    }
}
