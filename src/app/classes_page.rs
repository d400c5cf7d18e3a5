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
use super::panels::progress_row;
use super::widgets::class_picker;
use super::{workers, AtlasApp, Tracked};
use crate::classes::{
    spawn_class_atlas, spawn_compare, ClassAtlasConfig, ClassAtlasInfo, ClassEvent, ClassFilter,
    ClassPairs, CompareConfig, ComparisonInfo, PairClasses, PairWeighting,
};
use crate::jobs::{self, JobEvent, JobHandle, JobOutcome};
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
    /// Index into `app.atlases` of the atlas whose run and layer the tools use (`None`: the
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
    pub class_job: Option<Tracked<ClassEvent>>,
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
    pub compare_job: Option<Tracked<ClassEvent>>,
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
    pairs_job: Option<JobHandle<ClassPairs>>,
    /// The cell whose details are shown.
    pub picked: Option<Picked>,
    /// Dataset examples of the picked cell.
    pub examples: ExamplesState,
    /// The image chosen with "Use as patch" (the icon's tile or a dataset example's patch), with
    /// a description, for the attack workbench.
    pub patch_for_attack: Option<(String, image::RgbImage)>,
    patch_texture: Option<egui::TextureHandle>,
    patch_job: Option<JobHandle<(String, image::RgbImage)>>,
    loads: Vec<Tracked<LoadedAtlas>>,
}

impl ClassesPageState {
    /// Every job this page owns (class atlas, comparison, class pairs, patches, atlas loads).
    pub fn jobs_mut(&mut self) -> Vec<&mut dyn crate::jobs::StopJob> {
        let mut jobs: Vec<&mut dyn crate::jobs::StopJob> = vec![];
        jobs.extend(self.class_job.as_mut().map(|j| j as _));
        jobs.extend(self.compare_job.as_mut().map(|j| j as _));
        jobs.extend(self.pairs_job.as_mut().map(|j| j as _));
        jobs.extend(self.patch_job.as_mut().map(|j| j as _));
        jobs.extend(self.examples.job.as_mut().map(|j| j as _));
        jobs.extend(self.loads.iter_mut().map(|j| j as _));
        jobs
    }
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
            class_job: None,
            class_root: None,
            class_view: None,
            class_canvas_rect: None,
            class_info: None,
            class_selected: None,
            search_a: String::new(),
            search_b: String::new(),
            class_a: None,
            class_b: None,
            compare_job: None,
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
            pairs_job: None,
            picked: None,
            examples: ExamplesState::default(),
            patch_for_attack: None,
            patch_texture: None,
            patch_job: None,
            loads: vec![],
        }
    }
}

impl ClassesPageState {
    /// Atlas folders still being read.
    pub fn loads_pending(&self) -> usize {
        self.loads.len()
    }

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

    fn load(&mut self, dir: PathBuf) {
        self.loads
            .push(Tracked::new(workers::spawn_load_atlases(vec![dir])));
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

    fn on_event(&mut self, event: ClassEvent) {
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
                    _ => self.load(root),
                }
            }
            // A side class atlas of a comparison.
            ClassEvent::ClassAtlasDone(r) => self.load(r.out.clone()),
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

fn source(app: &AtlasApp) -> Option<Source> {
    let i = app.classes_page.source.unwrap_or(app.current_atlas);
    let v = app.atlases.get(i).or_else(|| app.atlases.first())?;
    Some(Source {
        run: v.manifest.run.clone(),
        layer: v.manifest.layer.clone(),
        names: v.manifest.class_names.clone(),
        finest: v.levels.last().map_or(0, |l| l.grid()),
        root: v.root.clone(),
    })
}

fn render_settings(app: &AtlasApp) -> Result<RenderSettings, String> {
    match app
        .classes_page
        .render_override
        .clone()
        .or_else(|| app.render_override.clone())
    {
        Some(r) => Ok(r),
        None => RenderSettings::preset(&app.preset).map_err(|e| e.to_string()),
    }
}

fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

/// Starts (or reopens: the backend caches) the class atlas of the chosen class.
pub fn start_class_atlas(app: &mut AtlasApp) {
    let Some(src) = source(app) else { return };
    let Some(class) = app.classes_page.class else {
        app.errors.push("choose a class first".into());
        return;
    };
    let render = match render_settings(app) {
        Ok(r) => r,
        Err(e) => {
            app.errors.push(e);
            return;
        }
    };
    let st = &mut app.classes_page;
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
    if let Some(job) = st.class_job.take() {
        job.handle.cancel.cancel();
    }
    if st.class_root.as_ref() != Some(&out) {
        st.class_view = None;
        st.class_info = None;
    }
    st.class_selected = None;
    st.class_root = Some(out.clone());
    if out.join("manifest.json").is_file() {
        st.load(out.clone());
    }
    app.log
        .push(format!("class atlas of {name} into {}", out.display()));
    app.classes_page.class_job = Some(Tracked::new(spawn_class_atlas(cfg)));
}

/// Starts (or reopens) the comparison of A and B, with both class atlases.
pub fn start_compare(app: &mut AtlasApp) {
    let Some(src) = source(app) else { return };
    let (Some(a), Some(b)) = (app.classes_page.class_a, app.classes_page.class_b) else {
        app.errors.push("choose classes A and B first".into());
        return;
    };
    if a == b {
        app.errors.push("choose two different classes".into());
        return;
    }
    let render = match render_settings(app) {
        Ok(r) => r,
        Err(e) => {
            app.errors.push(e);
            return;
        }
    };
    let st = &mut app.classes_page;
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
    if let Some(job) = st.compare_job.take() {
        job.handle.cancel.cancel();
    }
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
            st.load(dir);
        }
    }
    if let Ok(text) = std::fs::read_to_string(out.join("comparison.json")) {
        st.comparison = serde_json::from_str(&text).ok();
    }
    app.log.push(format!(
        "comparing {} and {} into {}",
        name(a),
        name(b),
        out.display()
    ));
    app.classes_page.compare_job = Some(Tracked::new(spawn_compare(cfg)));
}

/// Drains the page's jobs; called by [`show`] every frame.
pub fn poll(app: &mut AtlasApp, ctx: &egui::Context) {
    let AtlasApp {
        classes_page: st,
        attack_page,
        problems,
        log,
        errors,
        ..
    } = app;
    let mut busy = false;
    // Class atlas and comparison jobs.
    for which in 0..2 {
        let slot = if which == 0 {
            &mut st.class_job
        } else {
            &mut st.compare_job
        };
        let Some(job) = slot else { continue };
        busy = true;
        let (partials, outcome) = job.drain(problems, log);
        if outcome.is_some() {
            *slot = None;
        }
        for ev in partials {
            st.on_event(ev);
        }
        match outcome {
            None => {}
            Some(JobOutcome::Done(ClassEvent::ClassAtlasDone(r))) => {
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
                st.load(r.out.clone());
            }
            Some(JobOutcome::Done(ClassEvent::ComparisonDone(r))) => {
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
                st.load(r.out.clone());
                for (i, side) in r.class_atlases.iter().enumerate().take(2) {
                    st.side_roots[i] = Some(side.out.clone());
                    st.load(side.out.clone());
                }
            }
            Some(JobOutcome::Done(_)) => {}
            Some(JobOutcome::Cancelled) => log.push(if which == 0 {
                "class atlas cancelled; finished stages are saved and Build class atlas resumes"
                    .into()
            } else {
                "comparison cancelled; finished stages are saved and Compare resumes".into()
            }),
            Some(JobOutcome::Failed(e)) => errors.push(if which == 0 {
                format!("class atlas failed: {e}")
            } else {
                format!("comparison failed: {e}")
            }),
        }
    }
    // Atlas folders being read.
    let mut loads = std::mem::take(&mut st.loads);
    loads.retain_mut(|job| {
        let (partials, outcome) = job.drain(problems, log);
        for loaded in partials {
            st.place(loaded);
        }
        match outcome {
            None => true,
            Some(JobOutcome::Failed(e)) => {
                errors.push(e);
                false
            }
            Some(_) => false,
        }
    });
    st.loads.extend(loads);
    busy |= !st.loads.is_empty();
    // Similar class pairs.
    if let Some(job) = &st.pairs_job {
        busy = true;
        while let Ok(ev) = job.events.try_recv() {
            if let JobEvent::Finished(outcome) = ev {
                match outcome {
                    JobOutcome::Done(p) => st.pairs = Some(p),
                    JobOutcome::Failed(e) => errors.push(format!("class pairs: {e}")),
                    JobOutcome::Cancelled => {}
                }
                st.pairs_job = None;
                break;
            }
        }
    }
    // A patch being cut.
    if let Some(job) = &st.patch_job {
        busy = true;
        while let Ok(ev) = job.events.try_recv() {
            if let JobEvent::Finished(outcome) = ev {
                match outcome {
                    JobOutcome::Done((what, img)) => {
                        let color = egui::ColorImage::from_rgb(
                            [img.width() as usize, img.height() as usize],
                            img.as_raw(),
                        );
                        st.patch_texture = Some(ctx.load_texture(
                            "attack-patch",
                            color,
                            egui::TextureOptions::LINEAR,
                        ));
                        log.push(format!("patch ready for the attack workbench: {what}"));
                        let source = crate::app::attack_page::PatchSource::Pixels {
                            name: what.clone(),
                            image: std::sync::Arc::new(img.clone()),
                        };
                        crate::app::attack_page::queue_patch(attack_page, source, None);
                        st.patch_for_attack = Some((what, img));
                    }
                    JobOutcome::Failed(e) => errors.push(format!("cannot cut the patch: {e}")),
                    JobOutcome::Cancelled => {}
                }
                st.patch_job = None;
                break;
            }
        }
    }
    st.examples.poll(ctx);
    // The comparison's icons are drawn by the plot, not by a canvas: upload them here.
    if let Some(v) = &mut st.compare_view {
        if v.icons.poll(ctx) {
            ctx.request_repaint();
        }
        busy |= v.icons.is_loading();
    }
    if busy {
        ctx.request_repaint_after(std::time::Duration::from_millis(100));
    }
}

/// Starts the class-pair job for the source atlas unless its pairs are known or coming.
fn ensure_pairs(app: &mut AtlasApp) {
    let Some(src) = source(app) else { return };
    let st = &mut app.classes_page;
    if st.pairs_for.as_ref() == Some(&src.root) || src.finest == 0 {
        return;
    }
    st.pairs_for = Some(src.root.clone());
    st.pairs = None;
    let (root, grid) = (src.root, src.finest);
    st.pairs_job = Some(jobs::spawn("class-pairs", move |_, _| {
        Ok(Some(crate::classes::class_pairs(
            &root,
            grid,
            PAIRS,
            PairClasses::Labelled,
            PairWeighting::Mass,
        )?))
    }));
}

pub fn show(app: &mut AtlasApp, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    poll(app, &ctx);
    if app.atlases.is_empty() {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("Class tools");
            ui.label(
                "The class tools work on the run and layer of an atlas: build one on the Atlas \
                 page first (or open a project that has one).",
            );
        });
        return;
    }
    if app.classes_page.mode == Mode::Compare {
        ensure_pairs(app);
    }
    controls(app, ui);
    details::panel(app, ui);
    egui::CentralPanel::default().show(ui, |ui| match app.classes_page.mode {
        Mode::ClassAtlas => class_atlas_area(app, ui),
        Mode::Compare => compare_plot::area(app, ui),
    });
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

fn controls(app: &mut AtlasApp, ui: &mut egui::Ui) {
    egui::Panel::left("classes_controls")
        .default_size(280.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.horizontal(|ui| {
                    let st = &mut app.classes_page;
                    ui.selectable_value(&mut st.mode, Mode::ClassAtlas, "Class atlas");
                    ui.selectable_value(&mut st.mode, Mode::Compare, "Compare two classes");
                });
                ui.separator();
                source_row(app, ui);
                match app.classes_page.mode {
                    Mode::ClassAtlas => class_atlas_controls(app, ui),
                    Mode::Compare => compare_controls(app, ui),
                }
                ui.separator();
                if let Some(line) = app.log.last() {
                    ui.label(RichText::new(line).italics().small());
                }
                if let Some(tex) = &app.classes_page.patch_texture {
                    ui.separator();
                    ui.label(RichText::new("Patch for the attack workbench").strong());
                    ui.image((tex.id(), egui::vec2(96.0, 96.0)));
                    if let Some((what, _)) = &app.classes_page.patch_for_attack {
                        ui.label(RichText::new(what).small());
                    }
                }
            });
        });
}

/// The atlas (layer) the tools work on.
fn source_row(app: &mut AtlasApp, ui: &mut egui::Ui) {
    let current = app
        .classes_page
        .source
        .unwrap_or(app.current_atlas)
        .min(app.atlases.len() - 1);
    ui.horizontal_wrapped(|ui| {
        ui.label("layer:");
        for i in 0..app.atlases.len() {
            let name = app.atlases[i].manifest.layer.clone();
            if ui.selectable_label(current == i, name).clicked() {
                app.classes_page.source = Some(i);
            }
        }
    });
    if let Some(v) = app.atlases.get(current) {
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

fn class_atlas_controls(app: &mut AtlasApp, ui: &mut egui::Ui) {
    let Some(src) = source(app) else { return };
    ui.heading("Class activation atlas");
    let st = &mut app.classes_page;
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
    if let Some(job) = &st.class_job {
        match &job.progress {
            Some(p) => progress_row(ui, p),
            None => {
                ui.spinner();
            }
        }
        if ui.button("Cancel class atlas").clicked() {
            job.handle.cancel.cancel();
        }
    } else if ui
        .add_enabled(st.class.is_some(), egui::Button::new("Build class atlas"))
        .clicked()
    {
        start_class_atlas(app);
    }
}

fn compare_controls(app: &mut AtlasApp, ui: &mut egui::Ui) {
    let Some(src) = source(app) else { return };
    ui.heading("Compare two classes");
    let st = &mut app.classes_page;
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
    if let Some(job) = &st.compare_job {
        match &job.progress {
            Some(p) => progress_row(ui, p),
            None => {
                ui.spinner();
            }
        }
        if ui.button("Cancel comparison").clicked() {
            job.handle.cancel.cancel();
        }
    } else {
        let ready = st.class_a.is_some() && st.class_b.is_some() && st.class_a != st.class_b;
        if ui
            .add_enabled(ready, egui::Button::new("Compare"))
            .clicked()
        {
            start_compare(app);
        }
    }
    ui.separator();
    pairs_list(app, ui, &src);
}

/// The most similar class pairs; a click fills A and B.
fn pairs_list(app: &mut AtlasApp, ui: &mut egui::Ui, src: &Source) {
    ui.label(RichText::new("Similar classes").strong());
    let st = &mut app.classes_page;
    let Some(pairs) = &st.pairs else {
        if st.pairs_job.is_some() {
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
fn class_atlas_area(app: &mut AtlasApp, ui: &mut egui::Ui) {
    let st = &mut app.classes_page;
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
            ui.label(if st.class_job.is_some() {
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
