//! The "Classes" page (issue 5, spec §6–7): class activation atlases, two-class comparisons and
//! class similarity, on the run and layer of one of the project's atlases.
//!
//! * **Class atlas**: a searchable class picker, the sample filter (winner / magnitude / both, N),
//!   the grid, and *Build class atlas*, which runs [`crate::classes::spawn_class_atlas`] in the
//!   background into `<run>/classes/<layer>/<class>-<filter>-<n>[-g<grid>][-m<min>]` (the backend
//!   caches every stage, so reopening one is instant). The result is drawn with the atlas canvas,
//!   icons appearing sheet by sheet, each cell labelled with its own top class.
//! * **Compare two classes**: classes A and B (searchable, or a row of the *Similar classes* list,
//!   computed in the background by [`crate::classes::class_pairs`] over the source atlas's finest
//!   level), *Compare* runs [`crate::classes::spawn_compare`] with both class atlases; the 10×10
//!   comparison is an `egui_plot` plot (x from −1 "more A" to 1 "more B", y the 1-D t-SNE) with the
//!   two class atlases beside it.
//! * Clicking a cell or an icon opens its details: large icon, top classes, dataset examples, and
//!   *Use as patch* (the icon or an example patch), handed to the attack workbench through
//!   [`ClassesPageState::patch_for_attack`].
//!
//! The page's jobs are polled by [`show`], i.e. while the page is on screen.
mod compare_plot;
mod details;

use std::path::{Path, PathBuf};

use eframe::egui::{self, RichText};

use super::atlas_view::{canvas, AtlasView, LoadedAtlas};
use super::examples::ExamplesState;
use super::job_id::{ExamplesOf, JobId, Jobs};
use super::page::{Action, Page, PageCx};
use super::widgets::class_picker;
use super::widgets::progress_row;
use super::workers;
use crate::classes::{
    spawn_class_atlas, spawn_compare, ClassAtlasConfig, ClassAtlasInfo, ClassEvent, ClassFilter,
    ClassPairs, CompareConfig, ComparisonInfo, PairClasses, PairWeighting,
};
use crate::jobs::{self, Finish, JobOutcome};
use crate::render::RenderSettings;
use crate::store::names::slug;

/// Class pairs listed under "Similar classes".
const PAIRS: usize = 30;

/// The page's two tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    ClassAtlas,
    Compare,
}

/// A picked cell: the atlas folder it belongs to, its grid and its index in `cells.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct Picked {
    pub root: PathBuf,
    pub grid: usize,
    pub index: usize,
}

/// What the page keeps between frames.
pub struct ClassesPageState {
    pub mode: Mode,
    /// Index into `cx.project.atlases` of the atlas whose run and layer the tools use (`None`: the
    /// Atlas page's current one).
    pub source: Option<usize>,
    /// Class atlas: search text and the chosen class (index into the run's class names).
    pub search: String,
    pub class: Option<usize>,
    pub filter: ClassFilter,
    /// The magnitude filter's N (spec: 2000).
    pub n: usize,
    /// Class atlas grid (spec: 8; the comparison keeps the spec's 10).
    pub grid: usize,
    /// Cells with fewer points are dropped (spec: 5).
    pub min_count: usize,
    /// Icon settings that replace the app's preset (tests use a few steps).
    pub render_override: Option<RenderSettings>,
    /// The folder of the class atlas on screen (or being built).
    pub class_root: Option<PathBuf>,
    pub class_view: Option<AtlasView>,
    /// The class atlas canvas's screen rectangle in the last frame.
    pub class_canvas_rect: Option<egui::Rect>,
    /// `class_atlas.json` of the finished class atlas.
    pub class_info: Option<ClassAtlasInfo>,
    /// The sample set the running or last job chose: (what, rows).
    pub class_selected: Option<(String, usize)>,
    /// Comparison: searches and classes A and B.
    pub search_a: String,
    pub search_b: String,
    pub class_a: Option<usize>,
    pub class_b: Option<usize>,
    pub compare_root: Option<PathBuf>,
    /// The comparison's atlas folder (for its icon sheets and cell records).
    pub compare_view: Option<AtlasView>,
    pub comparison: Option<ComparisonInfo>,
    /// The class atlases of A and B, side by side with the plot.
    pub side_roots: [Option<PathBuf>; 2],
    pub side_views: [Option<AtlasView>; 2],
    /// The plot's x axis caption, e.g. "← more snorkel | more scuba diver →" (drawn in the
    /// monospace font: egui's proportional font has no arrows).
    pub x_label: String,
    pub y_label: String,
    /// Cells placed on the plot in the last frame, and how many of them had their icon.
    pub plot_cells: usize,
    pub plot_icons: usize,
    /// Of those, how many showed an exemplar icon (the plot's icon switch: exemplar or both).
    pub plot_exemplars: usize,
    /// Screen rectangle of each placed cell in the last frame: (cell index, rect).
    pub plot_rects: Vec<(usize, egui::Rect)>,
    /// Similar class pairs of the source atlas's finest level.
    pub pairs: Option<ClassPairs>,
    pairs_for: Option<PathBuf>,
    /// The cell whose details are shown.
    pub picked: Option<Picked>,
    /// Dataset examples of the picked cell.
    pub examples: ExamplesState,
    /// The image chosen with "Use as patch" (the icon's tile or a dataset example's patch), with
    /// a description, for the attack workbench.
    pub patch_for_attack: Option<(String, image::RgbImage)>,
    patch_texture: Option<egui::TextureHandle>,
}

impl Default for ClassesPageState {
    fn default() -> Self {
        ClassesPageState {
            mode: Mode::ClassAtlas,
            source: None,
            search: String::new(),
            class: None,
            filter: ClassFilter::Both,
            n: 2000,
            grid: 8,
            min_count: 5,
            render_override: None,
            class_root: None,
            class_view: None,
            class_canvas_rect: None,
            class_info: None,
            class_selected: None,
            search_a: String::new(),
            search_b: String::new(),
            class_a: None,
            class_b: None,
            compare_root: None,
            compare_view: None,
            comparison: None,
            side_roots: [None, None],
            side_views: [None, None],
            x_label: String::new(),
            y_label: "1-D t-SNE".into(),
            plot_cells: 0,
            plot_icons: 0,
            plot_exemplars: 0,
            plot_rects: vec![],
            pairs: None,
            pairs_for: None,
            picked: None,
            examples: ExamplesState::new(ExamplesOf::Classes),
            patch_for_attack: None,
            patch_texture: None,
        }
    }
}

impl ClassesPageState {
    /// Every atlas view of the page with its folder.
    fn views_mut(&mut self) -> impl Iterator<Item = &mut AtlasView> {
        self.class_view
            .iter_mut()
            .chain(self.compare_view.iter_mut())
            .chain(self.side_views.iter_mut().flatten())
    }

    pub fn view(&self, root: &Path) -> Option<&AtlasView> {
        self.class_view
            .iter()
            .chain(self.compare_view.iter())
            .chain(self.side_views.iter().flatten())
            .find(|v| v.root == root)
    }

    pub fn view_mut(&mut self, root: &Path) -> Option<&mut AtlasView> {
        self.views_mut().find(|v| v.root == root)
    }

    fn load(jobs: &mut Jobs, dir: PathBuf) {
        let key = JobId::ClassesLoad(jobs.next_id());
        jobs.start(key, || workers::spawn_load_atlases(vec![dir]));
    }

    /// A loaded atlas goes to the slot waiting for its folder (refreshing the view there).
    fn place(&mut self, loaded: LoadedAtlas) {
        let root = loaded.root.clone();
        let slot = if self.class_root.as_ref() == Some(&root) {
            &mut self.class_view
        } else if self.compare_root.as_ref() == Some(&root) {
            &mut self.compare_view
        } else if self.side_roots[0].as_ref() == Some(&root) {
            &mut self.side_views[0]
        } else if self.side_roots[1].as_ref() == Some(&root) {
            &mut self.side_views[1]
        } else {
            return; // an older build's folder: nothing waits for it any more
        };
        match slot {
            Some(v) if v.root == root => v.refresh(loaded),
            _ => *slot = Some(AtlasView::new(loaded)),
        }
    }

    /// The atlas folder a build event of `part` belongs to.
    fn part_root(&self, part: &str) -> Option<PathBuf> {
        match part {
            "class atlas" => self.class_root.clone(),
            "comparison" => self.compare_root.clone(),
            "class atlas A" => self.side_roots[0].clone(),
            "class atlas B" => self.side_roots[1].clone(),
            _ => None,
        }
    }

    fn on_event(&mut self, jobs: &mut Jobs, event: ClassEvent) {
        match event {
            ClassEvent::Selected { what, rows } => self.class_selected = Some((what, rows)),
            ClassEvent::Build { part, event } => {
                let Some(root) = self.part_root(&part) else {
                    return;
                };
                match event {
                    crate::atlas::BuildEvent::SheetReady { grid, sheet } => {
                        if let Some(v) = self.view_mut(&root) {
                            v.sheet_ready(grid, sheet);
                        }
                    }
                    // Levels written, or the build finished (sheets written while the view was
                    // still loading were not announced to it): read the folder again.
                    _ => Self::load(jobs, root),
                }
            }
            // A side class atlas of a comparison.
            ClassEvent::ClassAtlasDone(r) => Self::load(jobs, r.out.clone()),
            ClassEvent::ComparisonDone(_) => {}
        }
    }
}

/// The source atlas: (index, run, layer, class names, finest grid, folder).
struct Source {
    run: PathBuf,
    layer: String,
    names: Vec<String>,
    finest: usize,
    root: PathBuf,
}

fn source(page: &ClassesPageState, cx: &PageCx) -> Option<Source> {
    let i = page.source.unwrap_or(cx.project.current_atlas);
    let v = cx
        .project
        .atlases
        .get(i)
        .or_else(|| cx.project.atlases.first())?;
    Some(Source {
        run: v.manifest.run.clone(),
        layer: v.manifest.layer.clone(),
        names: v.manifest.class_names.clone(),
        finest: v.levels.last().map_or(0, |l| l.grid()),
        root: v.root.clone(),
    })
}

fn render_settings(page: &ClassesPageState, cx: &PageCx) -> Result<RenderSettings, String> {
    match page
        .render_override
        .clone()
        .or_else(|| cx.project.render_override.clone())
    {
        Some(r) => Ok(r),
        None => RenderSettings::preset(&cx.project.preset).map_err(|e| e.to_string()),
    }
}

fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

/// Starts (or reopens: the backend caches) the class atlas of the chosen class.
pub fn start_class_atlas(page: &mut ClassesPageState, cx: &mut PageCx) {
    let Some(src) = source(page, cx) else { return };
    let Some(class) = page.class else {
        cx.project.errors.push("choose a class first".into());
        return;
    };
    let render = match render_settings(page, cx) {
        Ok(r) => r,
        Err(e) => {
            cx.project.errors.push(e);
            return;
        }
    };
    let st = &mut *page;
    let name = src.names.get(class).cloned().unwrap_or_default();
    let mut folder = format!("{}-{}-{}", slug(&name), st.filter.name(), st.n);
    if st.grid != 8 {
        folder.push_str(&format!("-g{}", st.grid));
    }
    if st.min_count != 5 {
        folder.push_str(&format!("-m{}", st.min_count));
    }
    let out = absolute(src.run.join("classes").join(slug(&src.layer)).join(folder));
    let mut cfg = ClassAtlasConfig::new(&src.run, &src.layer, &class.to_string(), &out);
    cfg.filter = st.filter;
    cfg.n = st.n;
    cfg.grid = st.grid;
    cfg.min_count = st.min_count;
    cfg.render = render;
    cx.jobs.cancel_and_forget(&JobId::ClassAtlas);
    if st.class_root.as_ref() != Some(&out) {
        st.class_view = None;
        st.class_info = None;
    }
    st.class_selected = None;
    st.class_root = Some(out.clone());
    if out.join("manifest.json").is_file() {
        ClassesPageState::load(cx.jobs, out.clone());
    }
    cx.project
        .log
        .push(format!("class atlas of {name} into {}", out.display()));
    cx.jobs.start(JobId::ClassAtlas, || spawn_class_atlas(cfg));
}

/// Starts (or reopens) the comparison of A and B, with both class atlases.
pub fn start_compare(page: &mut ClassesPageState, cx: &mut PageCx) {
    let Some(src) = source(page, cx) else { return };
    let (Some(a), Some(b)) = (page.class_a, page.class_b) else {
        cx.project
            .errors
            .push("choose classes A and B first".into());
        return;
    };
    if a == b {
        cx.project
            .errors
            .push("choose two different classes".into());
        return;
    }
    let render = match render_settings(page, cx) {
        Ok(r) => r,
        Err(e) => {
            cx.project.errors.push(e);
            return;
        }
    };
    let st = &mut *page;
    let name = |c: usize| src.names.get(c).cloned().unwrap_or_default();
    let mut folder = format!(
        "{}-vs-{}-{}-{}",
        slug(&name(a)),
        slug(&name(b)),
        st.filter.name(),
        st.n
    );
    if st.min_count != 5 {
        folder.push_str(&format!("-m{}", st.min_count));
    }
    let out = absolute(
        src.run
            .join("classes")
            .join(slug(&src.layer))
            .join("compare")
            .join(folder),
    );
    let mut cfg = CompareConfig::new(&src.run, &src.layer, &a.to_string(), &b.to_string(), &out);
    cfg.filter = st.filter;
    cfg.n = st.n;
    cfg.min_count = st.min_count;
    cfg.render = render;
    cfg.with_class_atlases = true;
    cx.jobs.cancel_and_forget(&JobId::Compare);
    if st.compare_root.as_ref() != Some(&out) {
        st.compare_view = None;
        st.comparison = None;
        st.side_views = [None, None];
    }
    st.compare_root = Some(out.clone());
    st.side_roots = [Some(out.join("class_a")), Some(out.join("class_b"))];
    st.x_label = format!("← more {} | more {} →", name(a), name(b));
    for dir in [out.clone(), out.join("class_a"), out.join("class_b")] {
        if dir.join("manifest.json").is_file() {
            ClassesPageState::load(cx.jobs, dir);
        }
    }
    if let Ok(text) = std::fs::read_to_string(out.join("comparison.json")) {
        st.comparison = serde_json::from_str(&text).ok();
    }
    cx.project.log.push(format!(
        "comparing {} and {} into {}",
        name(a),
        name(b),
        out.display()
    ));
    cx.jobs.start(JobId::Compare, || spawn_compare(cfg));
}

impl Page for ClassesPageState {
    fn logic(&mut self, ctx: &egui::Context, cx: &mut PageCx<'_>) {
        logic(self, cx, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PageCx<'_>) {
        show(self, cx, ui);
    }
}

/// Takes what the page's jobs reported; runs every frame whatever page is on screen.
fn logic(page: &mut ClassesPageState, cx: &mut PageCx, ctx: &egui::Context) {
    poll_builds(page, cx);
    poll_loads(page, cx);
    poll_pairs(page, cx);
    poll_patch(page, cx, ctx);
    page.examples.poll(cx.jobs, ctx);
}

/// The class atlas and comparison jobs.
fn poll_builds(page: &mut ClassesPageState, cx: &mut PageCx) {
    for key in [JobId::ClassAtlas, JobId::Compare] {
        let (partials, outcome) = cx
            .jobs
            .poll::<ClassEvent, ClassEvent>(&key)
            .report_to(&mut cx.project.problems, &mut cx.project.log);
        for ev in partials {
            page.on_event(cx.jobs, ev);
        }
        let class_atlas = key == JobId::ClassAtlas;
        match outcome {
            None => {}
            Some(JobOutcome::Done(event)) => on_build_done(page, cx, event),
            Some(JobOutcome::Cancelled) => cx.project.log.push(if class_atlas {
                "class atlas cancelled; finished stages are saved and Build class atlas resumes"
                    .into()
            } else {
                "comparison cancelled; finished stages are saved and Compare resumes".into()
            }),
            Some(JobOutcome::Failed(e)) => cx.project.errors.push(if class_atlas {
                format!("class atlas failed: {e}")
            } else {
                format!("comparison failed: {e}")
            }),
        }
    }
}

/// A finished class atlas or comparison: keep its description and read its folders.
fn on_build_done(page: &mut ClassesPageState, cx: &mut PageCx, event: ClassEvent) {
    let (st, jobs, log) = (page, &mut *cx.jobs, &mut cx.project.log);
    match event {
        ClassEvent::ClassAtlasDone(r) => {
            log.push(format!(
                "class atlas of {} ({}): {} samples, {} icons rendered, {:.1} s",
                r.info.class.name,
                r.info.filter.name(),
                r.info.rows.len(),
                r.icons_rendered,
                r.seconds
            ));
            st.class_info = Some(r.info.clone());
            st.class_root = Some(r.out.clone());
            ClassesPageState::load(jobs, r.out.clone());
        }
        ClassEvent::ComparisonDone(r) => {
            log.push(format!(
                "comparison of {} and {}: {} samples, {} cells, {:.1} s",
                r.info.a.name,
                r.info.b.name,
                r.info.rows.len(),
                r.info.cells.len(),
                r.seconds
            ));
            st.x_label = format!("← more {} | more {} →", r.info.a.name, r.info.b.name);
            st.comparison = Some(r.info.clone());
            st.compare_root = Some(r.out.clone());
            ClassesPageState::load(jobs, r.out.clone());
            for (i, side) in r.class_atlases.iter().enumerate().take(2) {
                st.side_roots[i] = Some(side.out.clone());
                ClassesPageState::load(jobs, side.out.clone());
            }
        }
        _ => {}
    }
}

/// Atlas folders being read.
fn poll_loads(page: &mut ClassesPageState, cx: &mut PageCx) {
    for key in cx.jobs.keys(JobId::is_classes_load) {
        let (loaded, outcome) = cx
            .jobs
            .poll::<(), LoadedAtlas>(&key)
            .report_to(&mut cx.project.problems, &mut cx.project.log);
        for atlas in loaded {
            page.place(atlas);
        }
        if let Some(JobOutcome::Failed(e)) = outcome {
            cx.project.errors.push(e);
        }
    }
}

/// Similar class pairs.
fn poll_pairs(page: &mut ClassesPageState, cx: &mut PageCx) {
    match cx
        .jobs
        .poll::<ClassPairs, ClassPairs>(&JobId::ClassPairs)
        .outcome
    {
        Some(JobOutcome::Done(p)) => page.pairs = Some(p),
        Some(JobOutcome::Failed(e)) => cx.project.errors.push(format!("class pairs: {e}")),
        Some(JobOutcome::Cancelled) | None => {}
    }
}

/// A patch being cut for the attack workbench.
fn poll_patch(page: &mut ClassesPageState, cx: &mut PageCx, ctx: &egui::Context) {
    let cut = cx
        .jobs
        .poll::<(String, image::RgbImage), (String, image::RgbImage)>(&JobId::CutPatch);
    match cut.outcome {
        Some(JobOutcome::Done((what, img))) => {
            let st = &mut *page;
            let color = egui::ColorImage::from_rgb(
                [img.width() as usize, img.height() as usize],
                img.as_raw(),
            );
            st.patch_texture =
                Some(ctx.load_texture("attack-patch", color, egui::TextureOptions::LINEAR));
            cx.project
                .log
                .push(format!("patch ready for the attack workbench: {what}"));
            let source = crate::attack::patch_source::PatchSource::Pixels {
                name: what.clone(),
                image: std::sync::Arc::new(img.clone()),
            };
            st.patch_for_attack = Some((what, img));
            cx.act(Action::UseAsPatch(source));
        }
        Some(JobOutcome::Failed(e)) => cx.project.errors.push(format!("cannot cut the patch: {e}")),
        Some(JobOutcome::Cancelled) | None => {}
    }
}

/// Starts the class-pair job for the source atlas unless its pairs are known or coming.
fn ensure_pairs(page: &mut ClassesPageState, cx: &mut PageCx) {
    let Some(src) = source(page, cx) else { return };
    let st = &mut *page;
    if st.pairs_for.as_ref() == Some(&src.root) || src.finest == 0 {
        return;
    }
    st.pairs_for = Some(src.root.clone());
    st.pairs = None;
    let (root, grid) = (src.root, src.finest);
    cx.jobs.start(JobId::ClassPairs, || {
        jobs::spawn_task("class-pairs", move |_| {
            Ok(Finish::Done(crate::classes::class_pairs(
                &root,
                grid,
                PAIRS,
                PairClasses::Labelled,
                PairWeighting::Mass,
            )?))
        })
    });
}

fn show(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    upload_comparison_icons(page, ui.ctx());
    if cx.project.atlases.is_empty() {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("Class tools");
            ui.label(
                "The class tools work on the run and layer of an atlas: build one on the Atlas \
                 page first (or open a project that has one).",
            );
        });
        return;
    }
    if page.mode == Mode::Compare {
        ensure_pairs(page, cx);
    }
    controls(page, cx, ui);
    details::panel(page, cx, ui);
    egui::CentralPanel::default().show(ui, |ui| match page.mode {
        Mode::ClassAtlas => class_atlas_area(page, cx, ui),
        Mode::Compare => compare_plot::area(page, cx, ui),
    });
}

/// The comparison's icons are drawn by the plot, not by a canvas: upload them here, and look
/// again soon while some are still decoding (the decoder does not wake the window).
fn upload_comparison_icons(page: &mut ClassesPageState, ctx: &egui::Context) {
    if let Some(v) = &mut page.compare_view {
        if v.icons.poll(ctx) {
            ctx.request_repaint();
        }
        if v.icons.is_loading() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }
}

fn filter_row(ui: &mut egui::Ui, filter: &mut ClassFilter, n: &mut usize) {
    ui.horizontal(|ui| {
        ui.label("samples:");
        for (f, tip) in [
            (
                ClassFilter::Winner,
                "samples whose attribution is largest for the class",
            ),
            (
                ClassFilter::Magnitude,
                "the N samples with the largest positive attribution",
            ),
            (
                ClassFilter::Both,
                "winner or magnitude, each sample once (the paper's class atlases)",
            ),
        ] {
            ui.selectable_value(filter, f, f.name()).on_hover_text(tip);
        }
    });
    ui.add_enabled_ui(*filter != ClassFilter::Winner, |ui| {
        ui.horizontal(|ui| {
            ui.label("N:");
            ui.add(egui::DragValue::new(n).range(1..=1_000_000).speed(10));
        });
    });
}

fn controls(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    egui::Panel::left("classes_controls")
        .default_size(280.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.horizontal(|ui| {
                    let st = &mut *page;
                    ui.selectable_value(&mut st.mode, Mode::ClassAtlas, "Class atlas");
                    ui.selectable_value(&mut st.mode, Mode::Compare, "Compare two classes");
                });
                ui.separator();
                source_row(page, cx, ui);
                match page.mode {
                    Mode::ClassAtlas => class_atlas_controls(page, cx, ui),
                    Mode::Compare => compare_controls(page, cx, ui),
                }
                ui.separator();
                if let Some(line) = cx.project.log.last() {
                    ui.label(RichText::new(line).italics().small());
                }
                if let Some(tex) = &page.patch_texture {
                    ui.separator();
                    ui.label(RichText::new("Patch for the attack workbench").strong());
                    ui.image((tex.id(), egui::vec2(96.0, 96.0)));
                    if let Some((what, _)) = &page.patch_for_attack {
                        ui.label(RichText::new(what).small());
                    }
                }
            });
        });
}

/// The atlas (layer) the tools work on.
fn source_row(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let current = page
        .source
        .unwrap_or(cx.project.current_atlas)
        .min(cx.project.atlases.len() - 1);
    ui.horizontal_wrapped(|ui| {
        ui.label("layer:");
        for i in 0..cx.project.atlases.len() {
            let name = cx.project.atlases[i].manifest.layer.clone();
            if ui.selectable_label(current == i, name).clicked() {
                page.source = Some(i);
            }
        }
    });
    if let Some(v) = cx.project.atlases.get(current) {
        ui.label(
            RichText::new(format!(
                "run {} ({} points)",
                v.manifest.run.display(),
                v.manifest.points
            ))
            .small()
            .weak(),
        );
    }
}

fn class_atlas_controls(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let Some(src) = source(page, cx) else { return };
    ui.heading("Class activation atlas");
    let st = &mut *page;
    class_picker(
        ui,
        "class_atlas_list",
        "Class",
        &mut st.search,
        &mut st.class,
        &src.names,
    );
    filter_row(ui, &mut st.filter, &mut st.n);
    ui.horizontal(|ui| {
        ui.label("grid:");
        ui.add(egui::DragValue::new(&mut st.grid).range(2..=40));
        ui.label("min points:");
        ui.add(egui::DragValue::new(&mut st.min_count).range(1..=100));
    });
    if cx.jobs.is_running(&JobId::ClassAtlas) {
        job_row(ui, cx.jobs, JobId::ClassAtlas, "Cancel class atlas");
    } else if ui
        .add_enabled(st.class.is_some(), egui::Button::new("Build class atlas"))
        .clicked()
    {
        start_class_atlas(page, cx);
    }
}

fn compare_controls(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let Some(src) = source(page, cx) else { return };
    ui.heading("Compare two classes");
    let st = &mut *page;
    class_picker(
        ui,
        "class_a_list",
        "Class A",
        &mut st.search_a,
        &mut st.class_a,
        &src.names,
    );
    class_picker(
        ui,
        "class_b_list",
        "Class B",
        &mut st.search_b,
        &mut st.class_b,
        &src.names,
    );
    filter_row(ui, &mut st.filter, &mut st.n);
    ui.horizontal(|ui| {
        ui.label("min points per cell:");
        ui.add(egui::DragValue::new(&mut st.min_count).range(1..=100));
    });
    if cx.jobs.is_running(&JobId::Compare) {
        job_row(ui, cx.jobs, JobId::Compare, "Cancel comparison");
    } else {
        let ready = st.class_a.is_some() && st.class_b.is_some() && st.class_a != st.class_b;
        if ui
            .add_enabled(ready, egui::Button::new("Compare"))
            .clicked()
        {
            start_compare(page, cx);
        }
    }
    ui.separator();
    pairs_list(page, cx, ui, &src);
}

/// A running job's progress (a spinner until it reports) and its cancel button.
fn job_row(ui: &mut egui::Ui, jobs: &Jobs, key: JobId, cancel: &str) {
    match jobs.progress(&key) {
        Some(p) => progress_row(ui, p),
        None => {
            ui.spinner();
        }
    }
    if ui.button(cancel).clicked() {
        jobs.cancel(&key);
    }
}

/// The most similar class pairs; a click fills A and B.
fn pairs_list(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui, src: &Source) {
    ui.label(RichText::new("Similar classes").strong());
    let st = &mut *page;
    let Some(pairs) = &st.pairs else {
        if cx.jobs.is_running(&JobId::ClassPairs) {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("comparing class distributions…");
            });
        }
        return;
    };
    ui.label(
        RichText::new(format!(
            "histogram intersection of the classes' attribution over the {g}×{g} level \
             ({} classes); click a pair to compare it",
            pairs.classes_considered,
            g = src.finest
        ))
        .small()
        .weak(),
    );
    let mut pick = None;
    egui::ScrollArea::vertical()
        .id_salt("class_pairs")
        .max_height(220.0)
        .show(ui, |ui| {
            for p in &pairs.pairs {
                let on = st.class_a == Some(p.a) && st.class_b == Some(p.b);
                let text = format!("{} / {}  {:.2}", p.name_a, p.name_b, p.similarity);
                if ui
                    .selectable_label(on, text)
                    .on_hover_text(format!("{} shared cells", p.shared_cells))
                    .clicked()
                {
                    pick = Some((p.a, p.b, p.name_a.clone(), p.name_b.clone()));
                }
            }
            if pairs.pairs.is_empty() {
                ui.label(RichText::new("no pairs (too few labelled cells)").weak());
            }
        });
    if let Some((a, b, na, nb)) = pick {
        st.class_a = Some(a);
        st.class_b = Some(b);
        st.search_a = na;
        st.search_b = nb;
    }
}

/// The class atlas's summary line and canvas.
fn class_atlas_area(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let st = &mut *page;
    if let Some(info) = &st.class_info {
        ui.label(
            RichText::new(format!(
                "{} ({}, N={}): {} samples — {} winners, {} by magnitude",
                info.class.name,
                info.filter.name(),
                info.n,
                info.rows.len(),
                info.winner_count,
                info.magnitude_count
            ))
            .strong(),
        );
    } else if let Some((what, rows)) = &st.class_selected {
        ui.label(format!("{what}: {rows} samples"));
    }
    let Some(view) = &mut st.class_view else {
        ui.centered_and_justified(|ui| {
            ui.label(if cx.jobs.is_running(&JobId::ClassAtlas) {
                "the class atlas appears here as soon as its layout is done…"
            } else {
                "choose a class and press Build class atlas"
            });
        });
        return;
    };
    if let Some(level) = view.levels.last() {
        let kept = level.cells.len();
        let g = level.grid();
        ui.label(
            RichText::new(format!(
                "{g}×{g} grid, {kept} cells of ≥ {} points; each cell is labelled with its own \
                 top class",
                view.manifest.min_count
            ))
            .small(),
        );
    }
    st.class_canvas_rect = Some(ui.available_rect_before_wrap());
    let events = canvas::show(ui, view, None);
    if let Some((grid, index)) = events.clicked {
        st.picked = Some(Picked {
            root: view.root.clone(),
            grid,
            index,
        });
    }
}
