//! "Cut from an image": a window showing another picture; drag a rectangle on it and add the cut
//! as a patch (the paper's patches are photos of a concept; often the concept sits in a corner
//! of a larger photo).
use std::path::PathBuf;

use eframe::egui::{self, Color32, RichText, Sense, Stroke};
use image::RgbImage;

use crate::app::file_dialog::{self, PickRequest, IMAGE_EXTENSIONS};
use crate::app::job_id::{JobId, Jobs};
use crate::attack::load_image;
use crate::attack::patch_source::file_name;
use crate::jobs::{self, Finish, JobHandle, JobOutcome};

/// Largest side the picture is shown at in the window, in points.
const VIEW: f32 = 420.0;

pub enum Action {
    Close,
    /// A cut: its name and pixels (at the picture's full resolution).
    Add(String, RgbImage),
}

#[derive(Default)]
pub struct Cutter {
    /// The picture: its file, pixels and texture.
    pub picture: Option<(PathBuf, RgbImage, egui::TextureHandle)>,
    /// Selected rectangle in picture pixels (min, max).
    pub selection: Option<egui::Rect>,
    error: Option<String>,
    /// Suggested first picture (the target's file), offered as a button.
    pub suggestion: Option<PathBuf>,
}

impl Cutter {
    /// A cutter offering `suggestion` (the target's file) as its first picture.
    pub fn new(suggestion: Option<PathBuf>) -> Self {
        Cutter {
            suggestion,
            ..Default::default()
        }
    }

    /// Reads `path` on a worker.
    pub fn open(jobs: &mut Jobs, path: PathBuf) {
        jobs.start(JobId::CutterLoad, || {
            jobs::spawn_task("attack-cut-open", move |_| {
                let img = load_image(&path)?;
                Ok(Finish::Done((path, img)))
            })
        });
    }

    pub fn show(&mut self, ctx: &egui::Context, jobs: &mut Jobs) -> Option<Action> {
        let mut action = None;
        let mut open = true;
        egui::Window::new("Cut a patch from an image")
            .open(&mut open)
            .default_width(VIEW + 20.0)
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    if ui.button("Open image…").clicked() {
                        jobs.start(JobId::CutterLoad, spawn_pick_picture);
                    }
                    if let Some(s) = self.suggestion.clone() {
                        if ui.button(format!("Use {}", file_name(&s))).clicked() {
                            Self::open(jobs, s);
                        }
                    }
                    if jobs.is_running(&JobId::CutterLoad) {
                        ui.spinner();
                    }
                });
                if let Some(e) = &self.error {
                    ui.colored_label(Color32::from_rgb(200, 40, 40), e);
                }
                action = self.picture_ui(ui);
            });
        if !open {
            return Some(Action::Close);
        }
        action
    }

    /// Takes the picture once it is read; runs every frame while the cutter is open.
    pub fn logic(&mut self, ctx: &egui::Context, jobs: &mut Jobs) {
        let read = jobs.poll::<(PathBuf, RgbImage), (PathBuf, RgbImage)>(&JobId::CutterLoad);
        match read.outcome {
            Some(JobOutcome::Done((path, img))) => {
                let tex = super::texture(ctx, "attack-cut-picture", &img);
                self.picture = Some((path, img, tex));
                self.selection = None;
                self.error = None;
            }
            Some(JobOutcome::Failed(e)) => self.error = Some(e),
            Some(JobOutcome::Cancelled) | None => {}
        }
    }

    fn picture_ui(&mut self, ui: &mut egui::Ui) -> Option<Action> {
        let (path, img, tex) = self.picture.as_ref()?;
        let (w, h) = (img.width() as f32, img.height() as f32);
        let scale = VIEW / w.max(h);
        let (rect, resp) = ui.allocate_exact_size(egui::vec2(w * scale, h * scale), Sense::drag());
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        ui.painter().image(tex.id(), rect, uv, Color32::WHITE);
        let to_px = |p: egui::Pos2| {
            egui::pos2(
                ((p.x - rect.min.x) / scale).clamp(0.0, w),
                ((p.y - rect.min.y) / scale).clamp(0.0, h),
            )
        };
        if resp.dragged() {
            if let (Some(a), Some(b)) = (
                ui.input(|i| i.pointer.press_origin()),
                resp.interact_pointer_pos(),
            ) {
                self.selection = Some(egui::Rect::from_two_pos(to_px(a), to_px(b)));
            }
        }
        let mut action = None;
        if let Some(sel) = self.selection {
            let screen = egui::Rect::from_min_max(
                rect.min + sel.min.to_vec2() * scale,
                rect.min + sel.max.to_vec2() * scale,
            );
            ui.painter().rect_stroke(
                screen,
                0.0,
                Stroke::new(2.0, Color32::YELLOW),
                egui::StrokeKind::Outside,
            );
            let (x0, y0) = (sel.min.x as u32, sel.min.y as u32);
            let (x1, y1) = (sel.max.x.ceil() as u32, sel.max.y.ceil() as u32);
            let (cw, ch) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
            ui.label(format!("{cw}×{ch} px from ({x0}, {y0})"));
            let ok = cw >= 4 && ch >= 4;
            if ui
                .add_enabled(ok, egui::Button::new("Add as patch"))
                .on_disabled_hover_text("draw a rectangle of at least 4×4 px")
                .clicked()
            {
                let cut = image::imageops::crop_imm(img, x0, y0, cw, ch).to_image();
                let name = format!("{} [{x0},{y0} {cw}×{ch}]", file_name(path));
                action = Some(Action::Add(name, cut));
            }
        } else {
            ui.label(RichText::new("drag a rectangle on the picture").weak());
        }
        action
    }
}

/// Asks for a picture with a file dialog and reads it (closing the dialog cancels).
fn spawn_pick_picture() -> JobHandle<(PathBuf, RgbImage)> {
    jobs::spawn_task("attack-cut-pick", |cancel| {
        let request = PickRequest::file("Cut a patch from…").filter("Images", IMAGE_EXTENSIONS);
        let Some(path) = file_dialog::pick(&request, cancel) else {
            return Ok(Finish::Cancelled);
        };
        let img = load_image(&path)?;
        Ok(Finish::Done((path, img)))
    })
}
