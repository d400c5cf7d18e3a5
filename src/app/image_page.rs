//! The "One image" page (spec §9.1): drop or pick an image and see its top-5 prediction, its
//! spatial activation grid (each position drawn as the icon of the atlas cell its vector lands
//! in, or as a feature-visualization icon of its own vector on request), the attribution heat-map
//! of a chosen class over the input, and where its vectors land on the atlas (markers on the
//! atlas view, at the positions umap-learn's `transform` would give them: see
//! [`crate::analysis::landing`]). With an atlas the image is prepared as the atlas's run prepared
//! its images.
//! All model work runs in background jobs ([`work`]); this file only polls and draws.
pub mod work;

use std::path::PathBuf;
use std::time::Duration;

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, StrokeKind, TextureHandle, Vec2};

use super::job_id::JobId;
use super::page::{Action, Page, PageCx};
use super::widgets::progress_row;
use crate::jobs::JobOutcome;
use work::{Analysis, AnalysisRequest, AtlasTarget, AttrMap, IconBatch, LandingCache, ModelCache};

const ORANGE: Color32 = Color32::from_rgb(255, 130, 0);
const BLUE: Color32 = Color32::from_rgb(30, 110, 255);
const INPUT_SIDE: f32 = 320.0;
const GRID_SIDE: f32 = 360.0;

/// What the page keeps between frames.
#[derive(Default)]
pub struct ImagePageState {
    pub image: Option<PathBuf>,
    /// The layer picked on the page; used only when there is no atlas (then `None` means the
    /// model's linear-head layer).
    pub layer: Option<String>,
    /// The request of the running or last analysis.
    pub request: Option<AnalysisRequest>,
    pub result: Option<Analysis>,
    /// Why the last analysis failed, shown on the page.
    pub error: Option<String>,
    pub input_texture: Option<TextureHandle>,
    /// The class of the heat-map (default: the top-1 class).
    pub attr_class: Option<usize>,
    pub attribution: Option<AttrMap>,
    pub show_overlay: bool,
    pub class_search: String,
    /// Feature-visualization icons of the positions (row `y·w + x`), as they arrive.
    pub optimized: Vec<Option<TextureHandle>>,
    /// Draw the optimized icons instead of the landing cells' icons.
    pub show_optimized: bool,
    /// Positions drawn in the last frame (for tests).
    pub drawn_positions: usize,
    /// The atlas whose view holds this image's markers.
    pub marked_atlas: Option<PathBuf>,
    pub model_cache: ModelCache,
    pub landing_cache: LandingCache,
}

/// An image was dropped on the window or picked: analyse it (in the background).
pub fn open_image(page: &mut ImagePageState, cx: &mut PageCx, path: PathBuf) {
    page.image = Some(path);
    page.error = None;
    page.result = None;
    page.input_texture = None;
    page.attribution = None;
    page.attr_class = None;
    page.class_search.clear();
    page.show_overlay = true;
    cx.jobs.cancel_and_forget(&JobId::Attribution);
    clear_optimized(page, cx);
    clear_markers(page, cx);
    start_analysis(page, cx);
}

fn clear_optimized(page: &mut ImagePageState, cx: &mut PageCx) {
    cx.jobs.cancel_and_forget(&JobId::OptimizeIcons);
    page.optimized.clear();
    page.show_optimized = false;
}

fn clear_markers(page: &mut ImagePageState, cx: &mut PageCx) {
    if let Some(root) = page.marked_atlas.take() {
        for v in cx.project.atlases.iter_mut().filter(|v| v.root == root) {
            v.markers.clear();
        }
    }
}

/// The atlas the image's vectors are placed on, and the level whose icons the grid shows: the
/// current atlas's finest level with icons (its finest level when none has icons yet).
fn atlas_target(cx: &PageCx) -> Option<AtlasTarget> {
    let view = cx.project.atlases.get(cx.project.current_atlas)?;
    let level = view
        .levels
        .iter()
        .rev()
        .find(|l| l.sheets_on_disk.iter().any(|s| *s))
        .or_else(|| view.levels.last())?;
    Some(AtlasTarget {
        root: view.root.clone(),
        grid: level.grid(),
    })
}

/// What the page should show now: the image in the current atlas's layer (or the picked one).
fn wanted_request(page: &ImagePageState, cx: &PageCx) -> Option<AnalysisRequest> {
    let image = page.image.clone()?;
    let atlas = atlas_target(cx);
    let layer = match cx.project.atlases.get(cx.project.current_atlas) {
        Some(v) => Some(v.manifest.layer.clone()),
        None => page.layer.clone(),
    };
    Some(AnalysisRequest {
        model: cx.project.model_path.clone(),
        image,
        layer,
        atlas,
    })
}

fn start_analysis(page: &mut ImagePageState, cx: &mut PageCx) {
    let Some(req) = wanted_request(page, cx) else {
        return;
    };
    page.error = None;
    page.request = Some(req.clone());
    let (models, landings) = (page.model_cache.clone(), page.landing_cache.clone());
    cx.jobs.start(JobId::Analysis, || {
        work::spawn_analysis(models, landings, req)
    });
}

fn start_attribution(page: &mut ImagePageState, cx: &mut PageCx, class: usize) {
    let Some(result) = &page.result else { return };
    page.attr_class = Some(class);
    let models = page.model_cache.clone();
    let (model, input) = (result.request.model.clone(), result.analysis.input.clone());
    let layer = result.layer_index;
    cx.jobs.start(JobId::Attribution, || {
        work::spawn_attribution(models, model, input, layer, class)
    });
}

/// Renders a feature-visualization icon for every position's vector.
pub fn start_optimize(page: &mut ImagePageState, cx: &mut PageCx) {
    let settings = cx
        .project
        .render_override
        .clone()
        .unwrap_or_else(crate::render::RenderSettings::preview);
    clear_optimized(page, cx);
    let Some(result) = &page.result else { return };
    let a = &result.analysis;
    page.optimized = vec![None; a.h * a.w];
    let whitening = result
        .landing
        .as_ref()
        .map(|n| n.root.join("whitening.npy"));
    let request = work::OptimizeRequest {
        model: result.request.model.clone(),
        layer: result.layer_index,
        acts: a.acts.clone(),
        c: a.c,
        whitening,
        settings,
    };
    let models = page.model_cache.clone();
    cx.jobs.start(JobId::OptimizeIcons, || {
        work::spawn_optimize(models, request)
    });
}

pub fn ask_image(cx: &mut PageCx) {
    if !cx.jobs.is_running(&JobId::PickImage) {
        cx.jobs
            .start(JobId::PickImage, super::workers::spawn_pick_image);
    }
}

impl Page for ImagePageState {
    fn logic(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>) {
        logic(self, cx, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        show(self, cx, ui);
    }
}

/// Takes what the page's jobs reported; runs every frame whatever page is on screen.
fn logic(page: &mut ImagePageState, cx: &mut PageCx, ctx: &egui::Context) {
    // Re-analyse when what the page should show changed (an atlas arrived, another atlas became
    // current, another layer was picked).
    if page.image.is_some() {
        let wanted = wanted_request(page, cx);
        if wanted.is_some() && wanted != page.request {
            start_analysis(page, cx);
        }
    }
    poll_pick(page, cx);
    poll_analysis(page, cx, ctx);
    poll_attribution(page, cx);
    poll_optimized(page, cx, ctx);
}

fn poll_pick(page: &mut ImagePageState, cx: &mut PageCx) {
    let picked = cx.jobs.poll::<PathBuf, PathBuf>(&JobId::PickImage);
    if let Some(JobOutcome::Done(path)) = picked.outcome {
        open_image(page, cx, path);
    }
}

fn poll_analysis(page: &mut ImagePageState, cx: &mut PageCx, ctx: &egui::Context) {
    let (_, outcome) = cx
        .jobs
        .poll::<Analysis, Analysis>(&JobId::Analysis)
        .report_to(&mut cx.project.problems, &mut cx.project.log);
    match outcome {
        Some(JobOutcome::Done(result)) => accept_result(page, cx, result, ctx),
        Some(JobOutcome::Failed(e)) => {
            let name = page
                .image
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            page.error = Some(format!("cannot analyse {name}: {e}"));
            page.result = None;
            page.input_texture = None;
        }
        Some(JobOutcome::Cancelled) | None => {}
    }
}

fn poll_attribution(page: &mut ImagePageState, cx: &mut PageCx) {
    let (_, outcome) = cx
        .jobs
        .poll::<AttrMap, AttrMap>(&JobId::Attribution)
        .report_to(&mut cx.project.problems, &mut cx.project.log);
    match outcome {
        Some(JobOutcome::Done(map)) => page.attribution = Some(map),
        Some(JobOutcome::Failed(e)) => page.error = Some(format!("attribution failed: {e}")),
        Some(JobOutcome::Cancelled) | None => {}
    }
}

fn poll_optimized(page: &mut ImagePageState, cx: &mut PageCx, ctx: &egui::Context) {
    let (batches, outcome) = cx
        .jobs
        .poll::<(), IconBatch>(&JobId::OptimizeIcons)
        .report_to(&mut cx.project.problems, &mut cx.project.log);
    for batch in batches {
        for (i, img) in batch.images.into_iter().enumerate() {
            let p = batch.first + i;
            if let Some(slot) = page.optimized.get_mut(p) {
                *slot = Some(ctx.load_texture(
                    format!("one-image-icon-{p}"),
                    img,
                    egui::TextureOptions::LINEAR,
                ));
                page.show_optimized = true;
            }
        }
    }
    match outcome {
        Some(JobOutcome::Cancelled) => cx.project.log.push("icon optimization cancelled".into()),
        Some(JobOutcome::Failed(e)) => page.error = Some(format!("icon optimization failed: {e}")),
        Some(JobOutcome::Done(())) | None => {}
    }
}

/// A finished analysis: keep it, upload the input, set the atlas markers, start the heat-map of
/// the top-1 class (or of the class already picked).
fn accept_result(
    page: &mut ImagePageState,
    cx: &mut PageCx,
    result: Analysis,
    ctx: &egui::Context,
) {
    clear_markers(page, cx);
    clear_optimized(page, cx);
    let input = &result.analysis.input;
    page.input_texture = Some(ctx.load_texture(
        "one-image-input",
        egui::ColorImage::from_rgb(
            [input.width() as usize, input.height() as usize],
            input.as_raw(),
        ),
        egui::TextureOptions::LINEAR,
    ));
    if let Some(landing) = &result.landing {
        if let Some(view) = cx
            .project
            .atlases
            .iter_mut()
            .find(|v| v.root == landing.root)
        {
            view.markers = landing_markers(&landing.landed);
            page.marked_atlas = Some(view.root.clone());
        }
    }
    let class = page
        .attr_class
        .or_else(|| result.analysis.top5.first().map(|t| t.0));
    let same_input = page.result.as_ref().is_some_and(|r| {
        r.request.image == result.request.image && r.layer_index == result.layer_index
    });
    if !same_input {
        page.attribution = None;
    }
    page.result = Some(result);
    if let Some(class) = class {
        start_attribution(page, cx, class);
    }
}

/// The atlas markers of landed vectors: their normalized layout positions in atlas units (x
/// right, y down, so `1 − y`), drawn the same on every level; vectors without a position have no
/// marker.
pub fn landing_markers(landed: &crate::analysis::Landed) -> Vec<Pos2> {
    landed
        .points
        .iter()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .map(|p| Pos2::new(p[0], 1.0 - p[1]))
        .collect()
}

fn show(page: &mut ImagePageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    // The grid draws the atlas's icons: take the sheets decoded since the last frame, and look
    // again soon while some are still decoding (the decoder does not wake the window).
    let icons_loading = cx
        .project
        .atlases
        .iter_mut()
        .map(|v| v.icons.poll(&ctx) || v.icons.is_loading())
        .fold(false, |a, b| a | b);
    if icons_loading {
        ctx.request_repaint_after(Duration::from_millis(100));
    }
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::both().auto_shrink([false, false]).show(ui, |ui| {
            header(page, cx, ui);
            ui.separator();
            if let Some(e) = &page.error {
                ui.colored_label(Color32::from_rgb(200, 40, 40), e);
            }
            if page.result.is_none() {
                if page.image.is_none() {
                    ui.label("Drop an image on the window or pick one to see what the model makes of it.");
                }
                return;
            }
            // Fixed-width columns: input and heat-map, the activation grid, prediction and class.
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(INPUT_SIDE);
                    input_and_heatmap(page, cx, ui);
                });
                ui.separator();
                ui.vertical(|ui| {
                    ui.set_width(GRID_SIDE + 20.0);
                    activation_grid(page, cx, ui);
                });
                ui.separator();
                ui.vertical(|ui| {
                    ui.set_width(280.0);
                    predictions(page, cx, ui);
                    ui.separator();
                    class_picker(page, cx, ui);
                });
            });
        });
    });
}

fn header(page: &mut ImagePageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        let picking = cx.jobs.is_running(&JobId::PickImage);
        if ui
            .add_enabled(!picking, egui::Button::new("Pick image…"))
            .clicked()
        {
            ask_image(cx);
        }
        match &page.image {
            Some(p) => ui.label(format!("image: {}", p.display())),
            None => ui.label("no image yet"),
        };
        ui.separator();
        layer_choice(page, cx, ui);
        if cx.jobs.is_running(&JobId::Analysis) {
            if let Some(p) = cx.jobs.progress(&JobId::Analysis) {
                progress_row(ui, p);
            } else {
                ui.spinner();
            }
            if ui.button("Cancel").clicked() {
                cx.jobs.cancel(&JobId::Analysis);
            }
        }
    });
}

fn layer_choice(page: &mut ImagePageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    if let Some(view) = cx.project.atlases.get(cx.project.current_atlas) {
        let root = view
            .root
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        ui.label(format!("layer: {} (the atlas {root})", view.manifest.layer));
        return;
    }
    let Some(model) = &cx.project.model else {
        ui.label("layer: the model's head (loading the model…)");
        return;
    };
    let default = model
        .linear_head_layer
        .clone()
        .or_else(|| model.layers.last().map(|l| l.name.clone()))
        .unwrap_or_default();
    let current = page.layer.clone().unwrap_or(default);
    let mut picked = current.clone();
    egui::ComboBox::from_label("Layer")
        .selected_text(&current)
        .show_ui(ui, |ui| {
            for l in &model.layers {
                ui.selectable_value(
                    &mut picked,
                    l.name.clone(),
                    format!("{} ({}×{}×{})", l.name, l.height, l.width, l.channels),
                );
            }
        });
    if picked != current {
        page.layer = Some(picked);
    }
}

fn preprocess_text(p: crate::data::Preprocess) -> String {
    match p {
        crate::data::Preprocess::Squash => "squashed to the model's input size".into(),
        crate::data::Preprocess::ResizeShorterCrop { resize } => {
            format!("shorter side resized to {resize}, centre crop")
        }
    }
}

fn class_name(names: &[String], class: usize) -> &str {
    names.get(class).map(String::as_str).unwrap_or("?")
}

/// The label of a top-5 row (also what tests look for).
pub fn top5_label(rank: usize, name: &str, p: f32) -> String {
    format!("{rank}. {name}  {:.1} %", p * 100.0)
}

fn predictions(page: &mut ImagePageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let Some(result) = &page.result else {
        return;
    };
    ui.strong("Prediction (top 5)");
    let mut pick = None;
    for (rank, (class, p)) in result.analysis.top5.iter().enumerate() {
        let text = top5_label(rank + 1, class_name(&result.class_names, *class), *p);
        let on = page.attr_class == Some(*class);
        if ui
            .selectable_label(on, text)
            .on_hover_text("show its attribution heat-map")
            .clicked()
        {
            pick = Some(*class);
        }
    }
    if let Some(c) = pick {
        start_attribution(page, cx, c);
    }
}

fn class_picker(page: &mut ImagePageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let Some(result) = &page.result else {
        return;
    };
    let names = result.class_names.clone();
    let current = page.attr_class;
    ui.strong("Heat-map class");
    ui.label(match current {
        Some(c) => format!("heat-map of: {}", class_name(&names, c)),
        None => "heat-map of: none".into(),
    });
    ui.add(
        egui::TextEdit::singleline(&mut page.class_search)
            .hint_text("search classes")
            .desired_width(220.0),
    );
    let query = page.class_search.trim().to_lowercase();
    let mut pick = None;
    if !query.is_empty() {
        egui::ScrollArea::vertical()
            .id_salt("one-image-classes")
            .max_height(200.0)
            .show(ui, |ui| {
                let mut shown = 0;
                for (i, name) in names.iter().enumerate() {
                    if !name.to_lowercase().contains(&query) {
                        continue;
                    }
                    if ui.button(name).clicked() {
                        pick = Some(i);
                    }
                    shown += 1;
                    if shown >= 40 {
                        ui.label("… type more to narrow the list");
                        break;
                    }
                }
                if shown == 0 {
                    ui.label("no class matches");
                }
            });
    }
    if let Some(c) = pick {
        page.class_search.clear();
        start_attribution(page, cx, c);
    }
}

fn input_and_heatmap(page: &mut ImagePageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let Some(result) = &page.result else { return };
    let a = &result.analysis;
    ui.strong(format!("Input ({}×{})", a.input.width(), a.input.height()));
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(INPUT_SIDE), Sense::hover());
    let painter = ui.painter_at(rect);
    if let Some(tex) = &page.input_texture {
        painter.image(
            tex.id(),
            rect,
            Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
            Color32::WHITE,
        );
    }
    let map = page
        .attribution
        .as_ref()
        .filter(|m| m.values.len() == a.h * a.w);
    if let (Some(map), true) = (map, page.show_overlay) {
        let max = map.values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let (cw, ch) = (rect.width() / a.w as f32, rect.height() / a.h as f32);
        for y in 0..a.h {
            for x in 0..a.w {
                let v = map.values[y * a.w + x];
                if max <= 0.0 || v == 0.0 {
                    continue;
                }
                let strength = (v.abs() / max).min(1.0);
                let base = if v > 0.0 { ORANGE } else { BLUE };
                let colour = base.gamma_multiply(0.75 * strength);
                let r = Rect::from_min_size(
                    rect.min + Vec2::new(x as f32 * cw, y as f32 * ch),
                    Vec2::new(cw, ch),
                );
                painter.rect_filled(r, 0.0, colour);
            }
        }
    }
    ui.checkbox(&mut page.show_overlay, "attribution overlay");
    let attributing = cx.jobs.is_running(&JobId::Attribution);
    match (&page.attribution, attributing) {
        (_, true) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(match cx.jobs.progress(&JobId::Attribution) {
                    Some(p) => p.stage.clone(),
                    None => "attribution…".into(),
                });
            });
        }
        (Some(map), false) => {
            let min = map.values.iter().copied().fold(f32::INFINITY, f32::min);
            let max = map.values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            ui.label(format!(
                "attribution to {}: {min:.3} … {max:.3}",
                class_name(&result.class_names, map.class)
            ));
            ui.horizontal(|ui| {
                ui.colored_label(ORANGE, "orange: towards the class");
                ui.colored_label(BLUE, "blue: away from it");
            });
        }
        (None, false) => {}
    }
}

/// Where a position's vector lands on the atlas, for its tooltip: the finest level's grid, the
/// cell (x, y) and its record (none: no atlas point near the vector), the layout position.
type LandedCell = (
    usize,
    Option<(usize, usize)>,
    Option<crate::atlas::manifest::CellRecord>,
    Option<[f32; 2]>,
);

fn activation_grid(page: &mut ImagePageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let Some(result) = &page.result else { return };
    let a = &result.analysis;
    let (h, w) = (a.h, a.w);
    ui.strong(format!("Activation grid: {} {h}×{w}×{}", a.layer, a.c));
    let mut landing = result.landing.as_ref().and_then(|n| {
        cx.project
            .atlases
            .iter_mut()
            .find(|v| v.root == n.root)
            .map(|v| (n, v))
    });
    let side = (GRID_SIDE / w.max(h) as f32).clamp(6.0, 64.0);
    let (rect, _) =
        ui.allocate_exact_size(Vec2::new(side * w as f32, side * h as f32), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::WHITE);
    let full = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
    for y in 0..h {
        for x in 0..w {
            let p = y * w + x;
            let r = Rect::from_min_size(
                rect.min + Vec2::new(x as f32 * side, y as f32 * side),
                Vec2::splat(side),
            );
            let response = ui.interact(
                r,
                ui.scope_id().with(("one-image-pos", y, x)),
                Sense::hover(),
            );
            response.widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::Image, true, format!("position ({y}, {x})"))
            });
            let optimized = page
                .optimized
                .get(p)
                .and_then(|t| t.as_ref())
                .filter(|_| page.show_optimized);
            let mut cell_info = None;
            let mut drawn = false;
            if let Some(tex) = optimized {
                painter.image(tex.id(), r.shrink(0.5), full, Color32::WHITE);
                drawn = true;
            } else if let Some((n, v)) = landing.as_mut() {
                drawn = draw_landed_icon(&painter, r, p, n, v);
                cell_info = landed_cell(p, n, v);
            }
            if !drawn {
                painter.rect_filled(r.shrink(0.5), 0.0, Color32::from_gray(222));
            }
            painter.rect_stroke(
                r,
                0.0,
                Stroke::new(0.5, Color32::from_gray(200)),
                StrokeKind::Inside,
            );
            let norm = a.vector(y, x).iter().map(|v| v * v).sum::<f32>().sqrt();
            response.on_hover_ui(|ui| {
                position_tooltip(ui, (y, x), norm, cell_info.as_ref(), &result.class_names)
            });
        }
    }
    page.drawn_positions = h * w;
    grid_footer(page, cx, ui);
}

/// Draws the icon of the atlas cell position `p`'s vector lands in (at the landing's level);
/// false when it has no cell or its icon is not loaded.
fn draw_landed_icon(
    painter: &egui::Painter,
    r: Rect,
    p: usize,
    n: &work::Landing,
    v: &mut super::atlas_view::AtlasView,
) -> bool {
    let Some(level) = v.levels.iter().find(|l| l.grid() == n.grid) else {
        return false;
    };
    let Some(cell) = n
        .landed
        .cell(p, n.grid)
        .and_then(|xy| level.lookup.get(&xy).copied())
    else {
        return false;
    };
    let per = level.record.icons_per_sheet.max(1);
    let sheet = cell / per;
    if !level.sheets_on_disk.get(sheet).copied().unwrap_or(false) {
        return false;
    }
    let Some(tex) = v.icons.sheet(&level.record, sheet) else {
        return false;
    };
    painter.image(
        tex.texture.id(),
        r.shrink(0.5),
        tex.uv(cell % per, 0.1),
        Color32::WHITE,
    );
    true
}

/// The cell position `p`'s vector lands in at the atlas's finest level, for the tooltip.
fn landed_cell(
    p: usize,
    n: &work::Landing,
    v: &super::atlas_view::AtlasView,
) -> Option<LandedCell> {
    let fine = v.levels.iter().max_by_key(|l| l.grid())?;
    let g = fine.grid();
    let xy = n.landed.cell(p, g);
    let cell = xy
        .and_then(|xy| fine.lookup.get(&xy))
        .and_then(|&i| fine.cells.get(i).cloned());
    Some((g, xy, cell, n.landed.points.get(p).copied()))
}

fn position_tooltip(
    ui: &mut egui::Ui,
    (y, x): (usize, usize),
    norm: f32,
    cell_info: Option<&LandedCell>,
    names: &[String],
) {
    ui.label(egui::RichText::new(format!("position ({y}, {x})")).strong());
    ui.label(format!("|activation| {norm:.2}"));
    match cell_info {
        Some((g, Some((cx, cy)), cell, pos)) => {
            ui.label(format!("lands in cell ({cx}, {cy}) of {g}×{g}"));
            if let Some(p) = pos {
                ui.label(format!("at ({:.3}, {:.3}) of the layout", p[0], p[1]));
            }
            match cell.as_ref().and_then(|c| c.top.first()) {
                Some((class, v)) => {
                    ui.label(format!(
                        "its top class: {}  {v:.2}",
                        class_name(names, *class)
                    ));
                }
                None if cell.is_none() => {
                    ui.label("an empty cell (too few atlas points)");
                }
                None => {}
            }
        }
        Some((_, None, _, _)) => {
            ui.label("no position: no atlas point is near this vector");
        }
        None => {
            ui.label("no atlas to compare with");
        }
    }
}

/// Under the grid: where the icons come from, the icon optimization and "Show on atlas".
fn grid_footer(page: &mut ImagePageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let Some(result) = &page.result else { return };
    match &result.landing {
        Some(n) => {
            ui.label(format!(
                "icons: the cell each vector lands in, at the atlas's {}×{} level",
                n.grid, n.grid
            ));
            ui.label(&n.landed.description);
            ui.label(format!(
                "image prepared as the atlas's run did: {}",
                preprocess_text(result.preprocess)
            ));
        }
        None => match &result.landing_error {
            Some(e) => {
                ui.label(format!("not placed on the atlas: {e}"));
            }
            None => {
                ui.label("open or build an atlas of this layer to see where the image lands");
            }
        },
    };
    let has_optimized = page.optimized.iter().any(Option::is_some);
    let mut optimize_clicked = false;
    ui.horizontal(|ui| {
        if cx.jobs.is_running(&JobId::OptimizeIcons) {
            if let Some(p) = cx.jobs.progress(&JobId::OptimizeIcons) {
                progress_row(ui, p);
            } else {
                ui.spinner();
            }
            if ui.button("Cancel icons").clicked() {
                cx.jobs.cancel(&JobId::OptimizeIcons);
            }
        } else if ui
            .button("Optimize icons")
            .on_hover_text("render a feature-visualization icon for every position's vector")
            .clicked()
        {
            optimize_clicked = true;
        }
        if has_optimized {
            ui.checkbox(&mut page.show_optimized, "show optimized icons");
        }
    });
    let marked = page.marked_atlas.clone();
    let mut show_on_atlas = false;
    if let Some(root) = &marked {
        let n = cx
            .project
            .atlases
            .iter()
            .find(|v| &v.root == root)
            .map_or(0, |v| v.markers.len());
        ui.horizontal(|ui| {
            if ui.button("Show on atlas").clicked() {
                show_on_atlas = true;
            }
            ui.label(format!("{n} markers on the atlas"));
        });
    }
    if optimize_clicked {
        start_optimize(page, cx);
    }
    if let (true, Some(root)) = (show_on_atlas, marked) {
        cx.act(Action::ShowAtlas(root));
    }
}
