//! The "Patch attack" page (issue 6, spec §8): paste a small picture of a correlated concept onto
//! a photo and watch the classifier change its mind.
//!
//! * **Target image**: dropped on the page, opened with a dialog, picked from the project's images
//!   or sent from a dataset example ("Attack this image"). It is resized to the model's input
//!   (Lanczos, spec §8.2) once; everything after works on that background.
//! * **Patches** live in a tray: files dropped on the tray or the image, icons and dataset
//!   examples dragged from the Atlas or Classes pages (drag onto the "Patch attack" tab: the page
//!   opens mid-drag), "Use as patch" buttons, rectangles cut from another image, a noise control.
//! * **Workbench** ([`workbench`]): the patch on the image, moved and resized with the mouse; a
//!   live classifier thread ([`probe`]) answers every change with the top 5 and the
//!   probabilities of the original, target and patch classes.
//! * **Size sweep** ([`sweep_panel`]) and **batch evaluation** ([`batch_panel`]) run as jobs with
//!   progress and cancel.
mod batch_panel;
mod cutter;
pub mod probe;
mod sweep_panel;
mod tray;
mod workbench;

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui::{self, RichText, TextureHandle};
use image::RgbImage;

use super::file_dialog::{self, PickRequest, IMAGE_EXTENSIONS};
use super::job_id::{JobId, Jobs};
use super::page::{Page, PageCx};
use super::widgets::class_picker;
use crate::attack::patch_source as source;
pub use crate::attack::patch_source::PatchSource;
use crate::jobs::{self, Finish, JobHandle, JobOutcome};
use probe::{Placement, ProbeAnswer, ProbeEvent, ProbeInput, ProbeKind, ProbeWorker};

/// The page's three tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Workbench,
    Sweep,
    Batch,
}

/// A patch in the tray.
pub struct Patch {
    /// Stable key (tray order changes when patches are removed).
    pub key: u64,
    pub name: String,
    pub image: Arc<RgbImage>,
    pub texture: Option<TextureHandle>,
    /// The patch's own top class (the patch alone, resized to the model input): (class, P).
    pub class: Option<(usize, f32)>,
}

/// The background the patch goes on.
pub struct Target {
    pub path: PathBuf,
    /// Model-sized (Lanczos) pixels: what the model sees without a patch.
    pub background: Arc<RgbImage>,
    pub texture: Option<TextureHandle>,
    /// Softmax of the clean background.
    pub clean: Option<Vec<f32>>,
}

/// The patch on the image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placed {
    /// Key of the tray patch.
    pub patch: u64,
    pub at: Placement,
}

pub struct AttackPageState {
    pub mode: Mode,
    pub target: Option<Target>,
    pub patches: Vec<Patch>,
    next_key: u64,
    pub placed: Option<Placed>,
    /// Earlier placements, for Ctrl+Z (pushed when a drag or an edit starts).
    pub undo: Vec<Option<Placed>>,
    /// Softmax of the composite on screen, and the exact composite the model saw.
    pub probs: Option<Vec<f32>>,
    pub composite_texture: Option<TextureHandle>,
    /// The placement the probabilities belong to (`None`: not yet answered).
    pub probs_for: Option<(u64, (i64, i64, u32))>,
    pub original: Option<usize>,
    pub target_class: Option<usize>,
    pub search_original: String,
    pub search_target: String,
    /// The project image list's filter.
    pub image_search: String,
    pub status: String,
    pub errors: Vec<String>,
    pub probe: ProbeWorker,
    /// The composite request in flight: (patch, rectangle) of its last ask.
    asked: Option<(u64, (i64, i64, u32))>,
    pub sweep: sweep_panel::SweepState,
    pub batch: batch_panel::BatchState,
    pub cutter: Option<cutter::Cutter>,
    /// Screen rectangle of the workbench image in the last frame (tests aim with it).
    pub image_rect: Option<egui::Rect>,
    /// Screen rectangles of the tray's thumbnails in the last frame: (patch key, rect).
    pub tray_rects: Vec<(u64, egui::Rect)>,
}

impl Default for AttackPageState {
    fn default() -> Self {
        AttackPageState {
            mode: Mode::Workbench,
            target: None,
            patches: vec![],
            next_key: 0,
            placed: None,
            undo: vec![],
            probs: None,
            composite_texture: None,
            probs_for: None,
            original: None,
            target_class: None,
            search_original: String::new(),
            search_target: String::new(),
            image_search: String::new(),
            status: String::new(),
            errors: vec![],
            probe: ProbeWorker::default(),
            asked: None,
            sweep: Default::default(),
            batch: Default::default(),
            cutter: None,
            image_rect: None,
            tray_rects: vec![],
        }
    }
}

/// What a read job brings back.
enum Loaded {
    Target(PathBuf, RgbImage),
    /// A patch, and where to put it (relative position in the image, 0..1) if it was dropped
    /// onto the image.
    Patch(String, RgbImage, Option<egui::Pos2>),
    /// A file chosen in a dialog, as the target or as a patch.
    Picked {
        path: PathBuf,
        for_patch: bool,
    },
}

/// A file dialog for an image, off the UI thread.
fn spawn_pick(for_patch: bool) -> JobHandle<Loaded> {
    jobs::spawn_task("attack-pick", move |cancel| {
        let title = if for_patch {
            "Add a patch"
        } else {
            "Open an image to attack"
        };
        let request = PickRequest::file(title).filter("Images", IMAGE_EXTENSIONS);
        let path = file_dialog::pick(&request, cancel);
        Ok(path.map_or(Finish::Cancelled, |path| {
            Finish::Done(Loaded::Picked { path, for_patch })
        }))
    })
}

/// Starts a read (or a file dialog) of the page; several may run side by side.
fn start_load(jobs: &mut Jobs, spawn: impl FnOnce() -> JobHandle<Loaded>) {
    let key = JobId::AttackLoad(jobs.next_id());
    jobs.start(key, spawn);
}

/// Asks for a patch file with the native dialog.
pub fn pick_patch(jobs: &mut Jobs) {
    start_load(jobs, || spawn_pick(true));
}

impl AttackPageState {
    pub fn patch(&self, key: u64) -> Option<&Patch> {
        self.patches.iter().find(|p| p.key == key)
    }

    /// The model's input side (the background is side × side).
    pub fn side(&self) -> f32 {
        self.target
            .as_ref()
            .map_or(224.0, |t| t.background.width() as f32)
    }

    /// Remembers the current placement for Ctrl+Z.
    pub fn push_undo(&mut self) {
        if self.undo.last() != Some(&self.placed) {
            self.undo.push(self.placed);
            if self.undo.len() > 100 {
                self.undo.remove(0);
            }
        }
    }

    pub fn undo(&mut self) {
        if let Some(p) = self.undo.pop() {
            self.placed = p;
        }
    }
}

/// Opens `path` as the image to attack (read on a worker).
pub fn open_target(page: &mut AttackPageState, cx: &mut PageCx, path: PathBuf) {
    // The sidecar gives the input size even before the model itself has loaded.
    let side = match &cx.project.model {
        Some(m) => m.size().0,
        None => match crate::model::Sidecar::load(&cx.project.model_path) {
            Ok(s) => s.size().0,
            Err(e) => {
                page.errors.push(format!("{e:#}"));
                return;
            }
        },
    };
    start_load(cx.jobs, || {
        jobs::spawn_task("attack-target", move |_| {
            let img = crate::attack::load_image(&path)?;
            let bg = crate::attack::composite::prepare_background(&img, side);
            Ok(Finish::Done(Loaded::Target(path, bg)))
        })
    });
}

/// Adds a patch to the tray (read on a worker); `drop_at` places it on the image at that
/// relative position once it is read.
pub fn add_patch(jobs: &mut Jobs, source: PatchSource, drop_at: Option<egui::Pos2>) {
    start_load(jobs, || {
        crate::jobs::spawn_task("attack-patch", move |_| {
            let (name, img) = source::resolve(&source)?;
            Ok(Finish::Done(Loaded::Patch(name, img, drop_at)))
        })
    });
}

impl Page for AttackPageState {
    fn logic(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>) {
        logic(self, cx, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        show(self, cx, ui);
    }
}

/// Takes what the workers finished; runs every frame whatever page is on screen.
fn logic(page: &mut AttackPageState, cx: &mut PageCx, ctx: &egui::Context) {
    let model_path = cx.project.model_path.clone();
    let finished: Vec<_> = cx
        .jobs
        .keys(JobId::is_attack_load)
        .into_iter()
        .filter_map(|key| cx.jobs.poll::<Loaded, Loaded>(&key).outcome)
        .collect();
    for outcome in finished {
        let st = &mut *page;
        match outcome {
            JobOutcome::Done(Loaded::Target(path, bg)) => {
                set_target(st, ctx, &model_path, path, bg)
            }
            JobOutcome::Done(Loaded::Patch(name, img, at)) => {
                let key = add_to_tray(st, ctx, &model_path, name, img);
                if let Some(rel) = at {
                    place(st, key, rel);
                }
            }
            JobOutcome::Done(Loaded::Picked { path, for_patch }) => {
                if for_patch {
                    add_patch(cx.jobs, PatchSource::File(path), None);
                } else {
                    open_target(page, cx, path);
                }
            }
            JobOutcome::Failed(e) => st.errors.push(e),
            JobOutcome::Cancelled => {}
        }
    }
    let st = &mut *page;
    // The live classifier's answers.
    while let Ok(ev) = st.probe.events.try_recv() {
        match ev {
            ProbeEvent::Status(s) => st.status = s,
            ProbeEvent::Answer(a) => take_answer(st, ctx, a),
        }
    }
    request_composite(st, &model_path);
    sweep_panel::poll(st, cx.jobs);
    batch_panel::poll(st, cx.jobs);
    if let Some(c) = &mut st.cutter {
        c.logic(ctx, cx.jobs);
    }
    // The live classifier does not wake the window: look again soon while it works.
    if st.asked.is_some() {
        ctx.request_repaint_after(std::time::Duration::from_millis(50));
    }
}

fn set_target(
    st: &mut AttackPageState,
    ctx: &egui::Context,
    model: &std::path::Path,
    path: PathBuf,
    bg: RgbImage,
) {
    let texture = Some(texture(ctx, "attack-target", &bg));
    let background = Arc::new(bg);
    st.probe
        .ask(model.to_path_buf(), ProbeInput::Clean(background.clone()));
    st.target = Some(Target {
        path,
        background,
        texture,
        clean: None,
    });
    st.original = None;
    st.probs = None;
    st.probs_for = None;
    st.asked = None;
    st.composite_texture = None;
}

fn add_to_tray(
    st: &mut AttackPageState,
    ctx: &egui::Context,
    model: &std::path::Path,
    name: String,
    img: RgbImage,
) -> u64 {
    st.next_key += 1;
    let key = st.next_key;
    let image = Arc::new(img);
    st.probe.ask(
        model.to_path_buf(),
        ProbeInput::Patch {
            key,
            image: image.clone(),
        },
    );
    st.patches.push(Patch {
        key,
        name,
        texture: Some(texture(ctx, &format!("attack-patch-{key}"), &image)),
        image,
        class: None,
    });
    key
}

/// Puts patch `key` on the image, centred at `rel` (0..1 of the image side), at the current
/// size (or 30% of the side for the first patch).
pub fn place(st: &mut AttackPageState, key: u64, rel: egui::Pos2) {
    let side = st.side();
    let s = st.placed.map_or(0.3 * side, |p| p.at.side).clamp(1.0, side);
    st.push_undo();
    let x = (rel.x * side - s / 2.0).clamp(0.0, side - s);
    let y = (rel.y * side - s / 2.0).clamp(0.0, side - s);
    st.placed = Some(Placed {
        patch: key,
        at: Placement { x, y, side: s },
    });
}

fn take_answer(st: &mut AttackPageState, ctx: &egui::Context, a: ProbeAnswer) {
    let probs = match a.result {
        Ok(p) => p,
        Err(e) => {
            st.errors.push(format!("classifier: {e}"));
            st.asked = None;
            return;
        }
    };
    match a.kind {
        ProbeKind::Clean => {
            if let Some(t) = &mut st.target {
                // Default classes: the image's top class is the one to flip; the runner-up
                // is a natural first target.
                let mut order: Vec<usize> = (0..probs.len()).collect();
                order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
                st.original = st.original.or(order.first().copied());
                st.target_class = st.target_class.or(order.get(1).copied());
                t.clean = Some(probs);
            }
        }
        ProbeKind::Patch(key) => {
            if let Some(p) = st.patches.iter_mut().find(|p| p.key == key) {
                p.class = (!probs.is_empty()).then(|| crate::attack::probe::top1(&probs));
            }
        }
        ProbeKind::Composite(at) => {
            let Some((key, _)) = st.asked else { return };
            if st.asked.map(|a| a.1) == Some(at) {
                st.asked = None;
            }
            if let Some(img) = a.composite {
                st.composite_texture = Some(texture(ctx, "attack-composite", &img));
            }
            st.probs = Some(probs);
            st.probs_for = Some((key, at));
        }
    }
}

/// Asks the classifier about the current composite when it changed since the last answer.
fn request_composite(st: &mut AttackPageState, model: &std::path::Path) {
    let (Some(t), Some(placed)) = (&st.target, st.placed) else {
        return;
    };
    let Some(patch) = st.patch(placed.patch) else {
        return;
    };
    let want = (placed.patch, placed.at.pixels());
    if st.probs_for == Some(want) || st.asked == Some(want) {
        return;
    }
    let input = ProbeInput::Composite {
        background: t.background.clone(),
        patch: patch.image.clone(),
        at: want.1,
    };
    st.probe.ask(model.to_path_buf(), input);
    st.asked = Some(want);
}

pub fn texture(ctx: &egui::Context, name: &str, img: &RgbImage) -> TextureHandle {
    let color =
        egui::ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw());
    ctx.load_texture(name, color, egui::TextureOptions::LINEAR)
}

/// The page.
fn show(page: &mut AttackPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    take_dropped_files(page, cx, &ctx);
    controls(page, cx, ui);
    egui::CentralPanel::default().show(ui, |ui| {
        ui.horizontal(|ui| {
            let st = &mut *page;
            ui.selectable_value(&mut st.mode, Mode::Workbench, "Workbench");
            ui.selectable_value(&mut st.mode, Mode::Sweep, "Size sweep");
            ui.selectable_value(&mut st.mode, Mode::Batch, "Batch evaluation");
            if !st.status.is_empty() {
                ui.separator();
                ui.label(RichText::new(&st.status).italics().small());
            }
        });
        let mut dismiss = None;
        for (i, e) in page.errors.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.colored_label(egui::Color32::from_rgb(200, 40, 40), e);
                if ui.small_button("dismiss").clicked() {
                    dismiss = Some(i);
                }
            });
        }
        if let Some(i) = dismiss {
            page.errors.remove(i);
        }
        ui.separator();
        match page.mode {
            Mode::Workbench => workbench::show(page, cx, ui),
            Mode::Sweep => sweep_panel::show(page, cx, ui),
            Mode::Batch => batch_panel::show(page, cx, ui),
        }
    });
    if let Some(c) = &mut page.cutter {
        if let Some(action) = c.show(&ctx, cx.jobs) {
            match action {
                cutter::Action::Close => page.cutter = None,
                cutter::Action::Add(name, img) => add_patch(
                    cx.jobs,
                    PatchSource::Pixels {
                        name,
                        image: Arc::new(img),
                    },
                    None,
                ),
            }
        }
    }
}

/// Files dropped on this page: onto the image they become a patch placed where they fell (or
/// the target when there is none yet); onto the tray, patches; anywhere else, the first file is
/// the target when none is set, else a patch.
fn take_dropped_files(page: &mut AttackPageState, cx: &mut PageCx, ctx: &egui::Context) {
    let (files, pos): (Vec<PathBuf>, Option<egui::Pos2>) = ctx.input(|i| {
        (
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| p.is_file())
                .collect(),
            i.pointer.latest_pos(),
        )
    });
    if files.is_empty() {
        return;
    }
    let on_image = match (page.image_rect, pos) {
        (Some(r), Some(p)) if r.contains(p) => Some(egui::pos2(
            (p.x - r.min.x) / r.width(),
            (p.y - r.min.y) / r.height(),
        )),
        _ => None,
    };
    let on_tray = matches!((tray::last_rect(ctx), pos), (Some(r), Some(p)) if r.contains(p));
    let mut files = files.into_iter();
    if page.target.is_none() && !on_tray {
        if let Some(first) = files.next() {
            open_target(page, cx, first);
        }
    }
    for f in files {
        add_patch(
            cx.jobs,
            PatchSource::File(f),
            if on_tray { None } else { on_image },
        );
    }
}

/// The left column: target image, classes, the patch tray.
fn controls(page: &mut AttackPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    egui::Panel::left("attack_controls")
        .default_size(290.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                target_section(page, cx, ui);
                ui.separator();
                classes_section(page, cx, ui);
                ui.separator();
                tray::show(page, cx, ui);
            });
        });
}

fn target_section(page: &mut AttackPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    ui.label(RichText::new("Image to attack").strong());
    match &page.target {
        Some(t) => {
            ui.horizontal(|ui| {
                if let Some(tex) = &t.texture {
                    ui.image((tex.id(), egui::vec2(64.0, 64.0)));
                }
                ui.label(RichText::new(source::file_name(&t.path)).small());
            });
        }
        None => {
            ui.label(
                RichText::new("drop an image on this page, open one, or pick one below").weak(),
            );
        }
    }
    if ui.button("Open image…").clicked() {
        start_load(cx.jobs, || spawn_pick(false));
    }
    // The project's images, by name.
    ui.add(
        egui::TextEdit::singleline(&mut page.image_search).hint_text("search the project's images"),
    );
    let query = page.image_search.to_lowercase();
    let mut chosen = None;
    egui::ScrollArea::vertical()
        .id_salt("attack_images")
        .max_height(110.0)
        .show(ui, |ui| {
            for row in cx
                .project
                .rows
                .iter()
                .filter(|r| {
                    query.is_empty()
                        || r.result
                            .path
                            .to_string_lossy()
                            .to_lowercase()
                            .contains(&query)
                })
                .take(200)
            {
                let name = source::file_name(&row.result.path);
                let label = match &row.result.label {
                    Some(l) => format!("{name} ({l})"),
                    None => name,
                };
                if ui.selectable_label(false, label).clicked() {
                    chosen = Some(row.result.path.clone());
                }
            }
        });
    if let Some(p) = chosen {
        open_target(page, cx, p);
    }
}

fn classes_section(page: &mut AttackPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let names = cx.class_names();
    let st = &mut *page;
    class_picker(
        ui,
        "attack_original",
        "Original class",
        &mut st.search_original,
        &mut st.original,
        &names,
    );
    class_picker(
        ui,
        "attack_target",
        "Target class",
        &mut st.search_target,
        &mut st.target_class,
        &names,
    );
}
