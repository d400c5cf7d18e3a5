//! `atlas build`: run folder → layout → nested grids → icons, each stage cached and resumable.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use image::RgbImage;
use tch::{Kind, Tensor};

use super::exemplars::{self, ExemplarSource};
use super::manifest::{
    finished_tiles, kind_sheet_path, level_dir, partial_sheet_path, sheet_path, write_cells,
    write_png, write_sheet, AtlasManifest, CellRecord, IconKind, IconSet, LevelRecord, FORMAT,
    SHEET_COLUMNS,
};
use crate::collect::run_folder::{RunFolder, RunManifest};
use crate::grid;
use crate::grid::rank::row_norms;
use crate::jobs::{spawn, CancelToken, JobHandle, Reporter};
use crate::layout::{normalize_layout, run_layout_owned, LayoutMethod};
use crate::model::AtlasModel;
use crate::render::maco::Magnitude;
use crate::render::objective::whiten;
use crate::render::optimize::{render_accented, render_batch};
use crate::render::{whitening_matrix, IconMethod, RenderSettings};
use crate::store::atomic;
use crate::store::npy::{self, Dtype};

#[derive(Clone, Debug)]
pub struct BuildConfig {
    pub run: PathBuf,
    pub layer: String,
    pub out: PathBuf,
    /// Default: the model the run was collected with.
    pub model: Option<PathBuf>,
    pub layout: LayoutMethod,
    /// Grid sizes, e.g. 20, 40, 80, 160; rendered coarse first.
    pub grids: Vec<usize>,
    /// Cells with fewer points are dropped (spec §3.1: 5).
    pub min_count: usize,
    pub render: RenderSettings,
    /// Grid sizes that get icons (`None`: every level).
    pub icon_levels: Option<Vec<usize>>,
    /// Use at most this many of the run's rows (evenly strided, deterministic).
    pub max_points: Option<usize>,
    /// Add coarser grids until the coarsest level fills at least half of its occupied area
    /// ([`grid::overview_grid`]), so the opening view is not a square of mostly empty cells.
    pub overview_levels: bool,
}

/// What the build job reports as it goes and when it ends.
#[derive(Clone, Debug)]
pub enum BuildEvent {
    /// The cell tables of every level are written (icons may still be missing). Sent again after
    /// each level's exemplar sheets are written (before any synthetic icon is rendered), so a
    /// viewer that re-reads the folder on this event shows them at once.
    LevelsReady(AtlasManifest),
    /// A synthetic sheet was written: complete (`sheet_path`) or, while its first icons are
    /// rendered, partial (`partial_sheet_path`, more icons each time).
    SheetReady { grid: usize, sheet: usize },
    Finished {
        manifest: AtlasManifest,
        icons_rendered: usize,
        seconds: f64,
    },
}

pub fn spawn_build(config: BuildConfig) -> JobHandle<BuildEvent> {
    spawn_build_icons(config, IconSet::Both)
}

/// [`spawn_build`] writing only the icons of `icons` (`atlas build --icons`).
pub fn spawn_build_icons(config: BuildConfig, icons: IconSet) -> JobHandle<BuildEvent> {
    spawn("atlas-build", move |reporter, cancel| {
        build_icons(
            &config,
            &BuildInputs::default(),
            icons,
            reporter,
            &|e| e,
            cancel,
        )
    })
}

/// `true` when `key` equals the key stored beside a stage's output.
fn stage_is_current(key_file: &Path, key: &str) -> bool {
    std::fs::read_to_string(key_file).is_ok_and(|k| k == key)
}

pub fn build(
    config: &BuildConfig,
    reporter: &Reporter<BuildEvent>,
    cancel: &CancelToken,
) -> Result<Option<BuildEvent>> {
    build_with(config, &BuildInputs::default(), reporter, &|e| e, cancel)
}

/// A layout computed elsewhere (the class comparison's attribution × 1-D t-SNE axes).
#[derive(Clone, Debug)]
pub struct GivenLayout {
    /// Raw coordinates `[N, 2]`, row-major (written to `layout.npy`).
    pub raw: Vec<f32>,
    /// The points binned into the grids, in [0, 1]² (written to `layout_normalized.npy`).
    pub normalized: Vec<[f32; 2]>,
    /// The manifest's `layout` text; also part of the cache key, so it must change when the
    /// coordinates do (e.g. include a hash of the rows they were computed from).
    pub description: String,
}

/// What a build takes beyond [`BuildConfig`], for builds that are not "lay out the run's rows
/// and whiten with them" (class atlases and comparisons, [`crate::classes`]). `Default` is a
/// plain `atlas build`.
#[derive(Clone, Debug, Default)]
pub struct BuildInputs {
    /// Appended to every stage's cache key: identifies the content of the run's rows (a run
    /// folder rewritten with a different selection of the same size must redo the layout).
    pub source_key: String,
    /// Use this layout instead of running `config.layout`.
    pub layout: Option<GivenLayout>,
    /// Whitening matrix `[C, C]` (row-major) for the icons instead of the one computed from the
    /// used rows (spec §6: class atlases whiten with the full layer's matrix), and a text that
    /// identifies it (part of the icons' cache key).
    pub whitening: Option<(Vec<f32>, String)>,
}

/// [`build`] with extra inputs; events are passed through `wrap` so that a job with its own
/// event type ([`crate::classes::ClassEvent`]) can run a build on its own reporter.
pub fn build_with<E>(
    config: &BuildConfig,
    inputs: &BuildInputs,
    reporter: &Reporter<E>,
    wrap: &dyn Fn(BuildEvent) -> E,
    cancel: &CancelToken,
) -> Result<Option<BuildEvent>> {
    build_icons(config, inputs, IconSet::Both, reporter, wrap, cancel)
}

/// The sizes of the render batches of one sheet of `count` icons. The first sheet of a level
/// (`ramp`) starts with single icons and doubles, 1, 1, 2, 4, 8, …, so the first icon is on
/// screen after one single-icon optimization and the level fills progressively; the sheet is
/// rewritten (as a partial sheet) after each batch. Later sheets are one batch (on a GPU a
/// batch costs about as much as a single icon, so splitting every sheet would multiply the
/// build time). The schedule depends only on `count` and `ramp`, so a resumed build renders the
/// same batches with the same seeds.
pub fn sheet_batches(count: usize, ramp: bool) -> Vec<usize> {
    if !ramp {
        return vec![count];
    }
    let mut out = vec![];
    let (mut sum, mut size) = (0, 1);
    while sum < count {
        let len = size.min(count - sum);
        out.push(len);
        sum += len;
        if out.len() > 1 {
            size *= 2;
        }
    }
    out
}

/// [`build_with`] writing only the icons of `icons`: synthetic ones (rendered with the model),
/// exemplar ones (real patches, [`exemplars`]; written first), or both. The stages run in the
/// pipeline's order (run → layout → grids → exemplars → synthetic icons), each cached by a key
/// beside its output so that a rerun or a resumed build redoes only what changed.
pub fn build_icons<E>(
    config: &BuildConfig,
    inputs: &BuildInputs,
    icons: IconSet,
    reporter: &Reporter<E>,
    wrap: &dyn Fn(BuildEvent) -> E,
    cancel: &CancelToken,
) -> Result<Option<BuildEvent>> {
    let start = Instant::now();
    let ctx = Stage {
        config,
        inputs,
        reporter,
        wrap,
        cancel,
        out: &config.out,
    };
    std::fs::create_dir_all(ctx.out)
        .with_context(|| format!("cannot create {}", ctx.out.display()))?;
    atomic::remove_stale_temps(ctx.out)?;
    let mut grids = config.grids.clone();
    grids.sort_unstable();
    grids.dedup();
    ensure!(
        !grids.is_empty() && grids[0] > 0,
        "give at least one positive grid size"
    );
    let t = Instant::now();
    let mut data = read_run(&ctx)?;
    log_stage(&ctx, "reading the activations", t);
    let layout_desc = match &inputs.layout {
        Some(given) => given.description.clone(),
        None => describe_layout(&config.layout),
    };
    let mut layout_key = format!(
        "run={} layer={} rows={} {layout_desc}",
        config.run.display(),
        config.layer,
        data.n
    );
    if !inputs.source_key.is_empty() {
        layout_key.push_str(&format!(" source={}", inputs.source_key));
    }
    let t = Instant::now();
    let Some(points) = layout_stage(&ctx, &mut data, &layout_key)? else {
        return Ok(None);
    };
    log_stage(&ctx, "layout", t);
    if cancel.is_cancelled() {
        return Ok(None);
    }
    if config.overview_levels {
        if let Some(added) = grid::overview_grid(&points, grids[0], config.min_count, 0.5) {
            reporter.log(format!(
                "the {g}×{g} level fills less than half of its occupied area: added the \
                 {added}×{added} overview level",
                g = grids[0]
            ));
            grids.insert(0, added);
        }
    }
    // Read only now, not beside the layout's working memory: at 1M rows the attributions over
    // 1,000 classes are 4 GB (the activations at 1,280 channels 5 GB).
    let t = Instant::now();
    data.attr = read_attributions(&ctx, &data)?;
    log_stage(&ctx, "reading the attributions", t);
    let t = Instant::now();
    let levels = grid_stage(&ctx, &data, &points, &grids, &layout_key, layout_desc)?;
    drop(std::mem::take(&mut data.attr));
    log_stage(&ctx, "grids", t);
    reporter.partial(wrap(BuildEvent::LevelsReady(levels.manifest.clone())));

    let wanted: Vec<usize> = grids
        .iter()
        .copied()
        .filter(|g| config.icon_levels.as_ref().is_none_or(|l| l.contains(g)))
        .collect();
    let t = Instant::now();
    if icons.exemplars()
        && !wanted.is_empty()
        && exemplar_stage(&ctx, &data, &levels, &wanted, icons)?.is_none()
    {
        return Ok(None);
    }
    log_stage(&ctx, "exemplar icons", t);
    let mut icons_rendered = 0usize;
    if icons.synthetic() && !wanted.is_empty() {
        let t = Instant::now();
        let Some(rendered) = synthetic_stage(&ctx, &data, &levels, &wanted)? else {
            return Ok(None);
        };
        icons_rendered = rendered;
        log_stage(&ctx, "synthetic icons (with model load and whitening)", t);
    }
    Ok(Some(BuildEvent::Finished {
        manifest: levels.manifest,
        icons_rendered,
        seconds: start.elapsed().as_secs_f64(),
    }))
}

/// What every stage of one build shares.
struct Stage<'a, E> {
    config: &'a BuildConfig,
    inputs: &'a BuildInputs,
    reporter: &'a Reporter<E>,
    wrap: &'a dyn Fn(BuildEvent) -> E,
    cancel: &'a CancelToken,
    out: &'a Path,
}

/// Logs how long a stage took (from `start`), for the scaling measurements (`scripts/bench-scale`).
fn log_stage<E>(ctx: &Stage<E>, stage: &str, start: Instant) {
    ctx.reporter.log(format!(
        "stage {stage}: {:.1} s",
        start.elapsed().as_secs_f64()
    ));
}

/// The run's rows the atlas uses, read once.
struct RunData {
    manifest: RunManifest,
    /// Rows of the layer's `acts.npy`.
    run_rows: usize,
    /// Atlas row `i` is run row `rows[i]`.
    rows: Vec<usize>,
    /// `[n, c]` activations of the used rows.
    acts: Vec<f32>,
    /// The layer's `acts.npy` (read again after the layout, which takes `acts`).
    acts_path: PathBuf,
    /// `[n, k]` attributions of the used rows: read after the layout, dropped after the grids.
    attr: Vec<f32>,
    attr_path: PathBuf,
    n: usize,
    c: usize,
    k: usize,
}

fn read_run<E>(ctx: &Stage<E>) -> Result<RunData> {
    let config = ctx.config;
    let run = RunFolder::new(&config.run);
    let manifest = run
        .read_manifest()?
        .with_context(|| format!("{} is not a collection run", config.run.display()))?;
    ensure!(
        manifest.status == "complete",
        "the run {} is not complete yet: finish it with `atlas collect` first",
        config.run.display()
    );
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.name == config.layer)
        .with_context(|| {
            let names: Vec<&str> = manifest.layers.iter().map(|l| l.name.as_str()).collect();
            format!("the run has no layer {:?} (it has {names:?})", config.layer)
        })?;
    ctx.reporter.progress("reading the run", 0, 1);
    let layer_dir = config.run.join(&layer.dir);
    let acts_path = layer_dir.join("acts.npy");
    let acts = npy::read(&acts_path)?;
    let attr = npy::RowReader::open(&layer_dir.join("attr.npy"))?;
    ensure!(
        acts.rows == attr.rows,
        "acts.npy and attr.npy have different row counts"
    );
    let run_rows = acts.rows;
    let rows = pick_rows(run_rows, config.max_points);
    let (c, k) = (acts.cols, attr.cols);
    // Moved, not copied, when every row is used: at 1M rows each matrix is gigabytes.
    let acts = gather(acts.data, c, &rows);
    let n = rows.len();
    ensure!(
        n >= 3,
        "the layer has only {n} rows: collect more images or samples"
    );
    Ok(RunData {
        manifest,
        run_rows,
        rows,
        acts,
        acts_path,
        attr: vec![],
        attr_path: layer_dir.join("attr.npy"),
        n,
        c,
        k,
    })
}

/// The used rows of the layer's `attr.npy`, `[n, k]`.
fn read_attributions<E>(ctx: &Stage<E>, data: &RunData) -> Result<Vec<f32>> {
    ctx.reporter.progress("reading the attributions", 0, 1);
    read_used_rows(&data.attr_path, &data.rows, data.k)
}

/// Rows `rows` of a `[run rows, width]` matrix of the run (read again after the layout).
fn read_used_rows(path: &Path, rows: &[usize], width: usize) -> Result<Vec<f32>> {
    let m = npy::read(path)?;
    ensure!(
        m.cols == width && rows.last().is_none_or(|&r| r < m.rows),
        "{} changed while the atlas was built",
        path.display()
    );
    Ok(gather(m.data, width, rows))
}

/// The layout in [0, 1]²: given, reused from the folder when its key matches, or computed.
/// `Ok(None)` when cancelled.
fn layout_stage<E>(ctx: &Stage<E>, data: &mut RunData, key: &str) -> Result<Option<Vec<[f32; 2]>>> {
    let out = ctx.out;
    let n = data.n;
    let norm_path = out.join("layout_normalized.npy");
    let current = stage_is_current(&out.join("layout.key"), key) && norm_path.is_file();
    if let Some(given) = &ctx.inputs.layout {
        ensure!(
            given.normalized.len() == n && given.raw.len() == 2 * n,
            "the given layout has {} points, the run has {n} rows",
            given.normalized.len()
        );
        if !current {
            write_layout(out, &given.raw, &given.normalized, key)?;
        }
        return Ok(Some(given.normalized.clone()));
    }
    if current {
        ctx.reporter.log("layout: reusing the saved layout");
        let m = npy::read(&norm_path)?;
        return Ok(Some(m.data.chunks_exact(2).map(|p| [p[0], p[1]]).collect()));
    }
    // The layout takes the rows and normalizes them in place, and they are read again after it:
    // at 1M × 1,280 that is one 5 GB copy in memory instead of two, for a few seconds of reading.
    let acts = std::mem::take(&mut data.acts);
    let Some((coords, dims)) = run_layout_owned(
        acts,
        n,
        data.c,
        &ctx.config.layout,
        &mut |stage, f| {
            let stage = format!("layout: {stage}");
            ctx.reporter.progress(&stage, (f * 1000.0) as u64, 1000);
        },
        &|| ctx.cancel.is_cancelled(),
    )?
    else {
        return Ok(None);
    };
    data.acts = read_used_rows(&data.acts_path, &data.rows, data.c)?;
    ensure!(
        dims == 2,
        "an atlas needs a 2-D layout, the method gave {dims}-D"
    );
    let mut points: Vec<[f32; 2]> = coords.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
    normalize_layout(&mut points);
    write_layout(out, &coords, &points, key)?;
    Ok(Some(points))
}

/// Writes `layout.npy` (raw), `layout_normalized.npy` and, last, the key that marks them current.
fn write_layout(out: &Path, raw: &[f32], normalized: &[[f32; 2]], key: &str) -> Result<()> {
    let n = normalized.len();
    npy::write(&out.join("layout.npy"), raw, n, 2, Dtype::F32)?;
    let flat: Vec<f32> = normalized.iter().flatten().copied().collect();
    npy::write(&out.join("layout_normalized.npy"), &flat, n, 2, Dtype::F32)?;
    atomic::write_bytes(&out.join("layout.key"), key.as_bytes())
}

/// Every level's cells, written to the folder, and what the icon stages need of them.
struct Levels {
    manifest: AtlasManifest,
    grids: Vec<usize>,
    /// Per level, the cells' mean activations `[cells, c]`, row-major.
    means: Vec<Vec<f32>>,
    /// Per level and cell, the atlas rows in the cell.
    members: Vec<Vec<Vec<usize>>>,
    /// Per level, the cache key of its cells.
    keys: Vec<String>,
}

fn grid_stage<E>(
    ctx: &Stage<E>,
    data: &RunData,
    points: &[[f32; 2]],
    grids: &[usize],
    layout_key: &str,
    layout_desc: String,
) -> Result<Levels> {
    let config = ctx.config;
    let mut levels = Levels {
        manifest: AtlasManifest {
            format: FORMAT.into(),
            run: config.run.clone(),
            layer: config.layer.clone(),
            model_file: config
                .model
                .clone()
                .unwrap_or_else(|| data.manifest.settings.model_file.clone()),
            points: data.n,
            channels: data.c,
            class_names: data.manifest.class_names.clone(),
            layout: layout_desc,
            min_count: config.min_count,
            render: describe_render(&config.render),
            icon_size: config.render.size as u32,
            levels: vec![],
            run_rows: Some(data.run_rows),
        },
        grids: grids.to_vec(),
        means: vec![],
        members: vec![],
        keys: vec![],
    };
    for (i, &g) in grids.iter().enumerate() {
        ctx.reporter.progress("grids", i as u64, grids.len() as u64);
        let dir = level_dir(ctx.out, g);
        std::fs::create_dir_all(&dir)?;
        let cells = grid::bin(points, g, config.min_count);
        let summaries = grid::summarize(&cells, &data.acts, data.c, &data.attr, data.k);
        let level_key = format!("{layout_key} grid={g} min_count={}", config.min_count);
        let means: Vec<f32> = summaries
            .iter()
            .flat_map(|s| s.mean_activation.iter().copied())
            .collect();
        // Every kind of sheet shares the level's sheet layout: when it changes (another icon
        // size or batch), sheets of the old layout would be misread.
        let sheet_layout = format!(
            "icon={} per_sheet={} columns={SHEET_COLUMNS}",
            config.render.size,
            config.render.batch.max(1)
        );
        let layout_file = dir.join("sheets.key");
        if layout_file.is_file() && !stage_is_current(&layout_file, &sheet_layout) {
            remove_icon_sheets(&dir)?;
        }
        if !stage_is_current(&layout_file, &sheet_layout) {
            atomic::write_bytes(&layout_file, sheet_layout.as_bytes())?;
        }
        if !stage_is_current(&dir.join("cells.key"), &level_key) {
            // The cells changed: icons of the old cells are meaningless now.
            remove_icon_sheets(&dir)?;
            write_level_tables(&dir, &summaries, &means, data.c, data.k)?;
            atomic::write_bytes(&dir.join("cells.key"), level_key.as_bytes())?;
        }
        levels.manifest.levels.push(LevelRecord {
            grid: g,
            cells: summaries.len(),
            icons_per_sheet: config.render.batch,
            sheet_columns: SHEET_COLUMNS,
        });
        levels.means.push(means);
        levels
            .members
            .push(cells.into_iter().map(|cell| cell.members).collect());
        levels.keys.push(level_key);
    }
    levels.manifest.save(ctx.out)?;
    Ok(levels)
}

/// Removes every kind of icon sheet of a level folder.
fn remove_icon_sheets(level: &Path) -> Result<()> {
    for kind in IconKind::ALL {
        let icons = level.join(kind.dir_name());
        if icons.exists() {
            std::fs::remove_dir_all(&icons)?;
        }
    }
    Ok(())
}

/// `cells.csv`, `mean_acts.npy` and `mean_attr.npy` of one level.
fn write_level_tables(
    dir: &Path,
    summaries: &[grid::CellSummary],
    means: &[f32],
    c: usize,
    k: usize,
) -> Result<()> {
    let records: Vec<CellRecord> = summaries
        .iter()
        .map(|s| CellRecord {
            x: s.x,
            y: s.y,
            count: s.count,
            top: s.top_classes.clone(),
        })
        .collect();
    write_cells(&dir.join("cells.csv"), &records)?;
    let n_cells = summaries.len();
    npy::write(&dir.join("mean_acts.npy"), means, n_cells, c, Dtype::F32)?;
    let attrs: Vec<f32> = summaries
        .iter()
        .flat_map(|s| s.mean_attribution.iter().copied())
        .collect();
    npy::write(&dir.join("mean_attr.npy"), &attrs, n_cells, k, Dtype::F32)
}

/// Exemplar and mosaic sheets (real patches: no model, written before any synthetic icon) of
/// the `wanted` levels. `Ok(None)` when cancelled.
fn exemplar_stage<E>(
    ctx: &Stage<E>,
    data: &RunData,
    levels: &Levels,
    wanted: &[usize],
    icons: IconSet,
) -> Result<Option<()>> {
    let t = Instant::now();
    let manifest = &levels.manifest;
    let source = match exemplar_source(ctx, data, manifest) {
        Err(e) if icons == IconSet::Both => {
            ctx.reporter.log(format!("exemplar icons skipped: {e:#}"));
            return Ok(Some(()));
        }
        Err(e) => return Err(e.context("cannot make exemplar icons")),
        Ok(source) => source,
    };
    let norms = row_norms(&data.acts, data.c);
    let (mut written, mut cells_done) = (0, 0);
    for (gi, &g) in levels.grids.iter().enumerate() {
        if !wanted.contains(&g) {
            continue;
        }
        let stage = format!("exemplars {g}×{g}");
        ctx.reporter
            .progress(&stage, gi as u64, levels.grids.len() as u64);
        let per_sheet = manifest.levels[gi].icons_per_sheet;
        let key = exemplars::exemplar_key(&levels.keys[gi], &source, manifest.icon_size, per_sheet);
        let Some(stats) = exemplars::write_level(
            ctx.out,
            g,
            &levels.members[gi],
            &levels.means[gi],
            &data.acts,
            data.c,
            &norms,
            &source,
            manifest.icon_size,
            per_sheet,
            &key,
            &|| ctx.cancel.is_cancelled(),
        )?
        else {
            return Ok(None);
        };
        if let Some((path, why)) = stats.unreadable.first() {
            ctx.reporter.log(format!(
                "exemplars {g}×{g}: {} image(s) could not be read, their tiles are blank \
                 (first: {}: {why})",
                stats.unreadable.len(),
                path.display()
            ));
        }
        if stats.sheets > 0 {
            written += stats.sheets;
            cells_done += stats.cells;
            // Announce them: viewers re-read the folder on this event.
            ctx.reporter
                .partial((ctx.wrap)(BuildEvent::LevelsReady(manifest.clone())));
        }
    }
    if written > 0 {
        ctx.reporter.log(format!(
            "exemplar icons: {cells_done} cells, {written} sheets of each kind in {:.2} s",
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(Some(()))
}

/// Where the atlas rows' images and patches come from (for exemplars and the own spectrum).
fn exemplar_source<E>(
    ctx: &Stage<E>,
    data: &RunData,
    manifest: &AtlasManifest,
) -> Result<ExemplarSource> {
    ExemplarSource::load(
        &ctx.config.run,
        &data.manifest,
        &ctx.config.layer,
        &manifest.model_file,
        data.run_rows,
        &data.rows,
    )
}

/// The model and layer the synthetic icons are rendered with, and the whitening (if any).
struct IconRenderer {
    model: AtlasModel,
    layer: usize,
    whitening: Option<Tensor>,
    /// The configured settings, with MACO's own spectrum estimated where asked for.
    settings: RenderSettings,
    /// The render settings' cache key (with the given whitening's identity).
    key: String,
}

/// Synthetic icons of the `wanted` levels, coarse levels first, sheet by sheet (the first sheet
/// of each level a batch at a time). Returns how many icons were rendered; `Ok(None)` when
/// cancelled.
fn synthetic_stage<E>(
    ctx: &Stage<E>,
    data: &RunData,
    levels: &Levels,
    wanted: &[usize],
) -> Result<Option<usize>> {
    let renderer = icon_renderer(ctx, data, &levels.manifest)?;
    let total: usize = levels
        .grids
        .iter()
        .zip(&levels.manifest.levels)
        .filter(|(g, _)| wanted.contains(g))
        .map(|(_, l)| l.cells)
        .sum();
    let mut progress = IconProgress {
        done: 0,
        total,
        rendered: 0,
    };
    for (gi, &g) in levels.grids.iter().enumerate() {
        if wanted.contains(&g)
            && render_level(ctx, levels, gi, &renderer, data.c, &mut progress)?.is_none()
        {
            return Ok(None);
        }
    }
    Ok(Some(progress.rendered))
}

/// Loads the model, checks the layer against the run and computes or takes the whitening.
fn icon_renderer<E>(
    ctx: &Stage<E>,
    data: &RunData,
    manifest: &AtlasManifest,
) -> Result<IconRenderer> {
    let (config, c) = (ctx.config, data.c);
    let model_path = &manifest.model_file;
    let model = AtlasModel::load(model_path, crate::model::default_device())?;
    let layer = model.info.layer_index(&config.layer).with_context(|| {
        format!(
            "the model {} has no layer {:?}",
            model_path.display(),
            config.layer
        )
    })?;
    ensure!(
        model.info.layers[layer].channels as usize == c,
        "the model's layer {:?} has {} channels, the run's has {c}",
        config.layer,
        model.info.layers[layer].channels
    );
    let whitening = if config.render.whiten {
        ctx.reporter.progress("whitening", 0, 1);
        let t = Instant::now();
        let s = match &ctx.inputs.whitening {
            Some((m, _)) => {
                ensure!(
                    m.len() == c * c,
                    "the given whitening matrix has {} values, expected {c}×{c}",
                    m.len()
                );
                Tensor::from_slice(m).view([c as i64, c as i64])
            }
            None => whitening_matrix(&data.acts, data.n, c, 1e-3)?,
        };
        npy::write(
            &ctx.out.join("whitening.npy"),
            &Vec::<f32>::try_from(s.contiguous().view([-1]))?,
            c,
            c,
            Dtype::F32,
        )?;
        log_stage(ctx, "whitening", t);
        Some(s)
    } else {
        None
    };
    let mut settings = config.render.clone();
    if let IconMethod::Maco(maco) = &mut settings.method {
        if maco.own_spectrum && maco.magnitude.is_none() {
            ctx.reporter.progress("spectrum of the images", 0, 1);
            maco.magnitude = Some(own_spectrum(ctx, data, manifest)?);
        }
    }
    let mut key = describe_render(&settings);
    if let (true, Some((_, given))) = (config.render.whiten, &ctx.inputs.whitening) {
        key.push_str(&format!(" whitening={given}"));
    }
    Ok(IconRenderer {
        model,
        layer,
        whitening,
        settings,
        key,
    })
}

/// MACO's magnitude spectrum estimated from (up to 64 of) the run's own images at the icon size.
fn own_spectrum<E>(ctx: &Stage<E>, data: &RunData, manifest: &AtlasManifest) -> Result<Magnitude> {
    let source = exemplar_source(ctx, data, manifest)
        .context("the own spectrum is estimated from the run's images")?;
    let size = ctx.config.render.size;
    let images = source.sample_images(64, size as u32);
    ensure!(
        !images.is_empty(),
        "none of the run's images could be read to estimate their spectrum"
    );
    ctx.reporter.log(format!(
        "icons: magnitude spectrum estimated from {} of the run's images",
        images.len()
    ));
    Magnitude::from_images(&images, size, size)
}

/// Icons finished (found or rendered) out of all the wanted levels' cells.
struct IconProgress {
    done: usize,
    total: usize,
    rendered: usize,
}

/// The synthetic sheets of level `gi`. `Ok(None)` when cancelled.
fn render_level<E>(
    ctx: &Stage<E>,
    levels: &Levels,
    gi: usize,
    renderer: &IconRenderer,
    c: usize,
    progress: &mut IconProgress,
) -> Result<Option<()>> {
    let (out, render) = (ctx.out, &renderer.settings);
    let level = &levels.manifest.levels[gi];
    let g = level.grid;
    let icons_dir = level_dir(out, g).join("icons");
    let key_file = icons_dir.join("render.key");
    if !stage_is_current(&key_file, &renderer.key) && icons_dir.exists() {
        std::fs::remove_dir_all(&icons_dir)?;
    }
    std::fs::create_dir_all(&icons_dir)?;
    atomic::remove_stale_temps(&icons_dir)?;
    atomic::write_bytes(&key_file, renderer.key.as_bytes())?;
    let batch = render.batch.max(1);
    let stage = format!("icons {g}×{g}");
    for (sheet, first) in (0..level.cells).step_by(batch).enumerate() {
        let count = batch.min(level.cells - first);
        let path = sheet_path(out, g, sheet);
        if path.is_file() {
            progress.done += count;
            continue;
        }
        let partial = partial_sheet_path(out, g, sheet);
        let batches = sheet_batches(count, sheet == 0);
        // Icons a cancelled or killed build finished (whole batches only).
        let mut tiles = read_partial(&partial, levels.manifest.icon_size, count, &batches);
        progress.done += tiles.len();
        let mut lo = 0;
        for len in batches {
            let range = lo..lo + len;
            lo += len;
            if range.end <= tiles.len() {
                continue;
            }
            let cells = first + range.start..first + range.end;
            let means = &levels.means[gi][cells.start * c..cells.end * c];
            // A sheet rendered as one batch keeps the seed it always had.
            let seed = ((g as u64) << 32 | sheet as u64) ^ ((range.start as u64) << 48);
            let done = progress.done;
            let Some(images) = render_cells(ctx, renderer, level, cells, means, seed, &mut |f| {
                let now = done as f32 + f * len as f32;
                ctx.reporter
                    .progress(&stage, now as u64, progress.total as u64)
            })?
            else {
                return Ok(None);
            };
            tiles.extend(images);
            progress.rendered += len;
            progress.done += len;
            if tiles.len() < count {
                write_partial_sheet(&partial, &tiles, count)?;
            } else {
                write_sheet(&path, &tiles)?;
                if partial.exists() {
                    std::fs::remove_file(&partial)?;
                }
            }
            ctx.reporter
                .progress(&stage, progress.done as u64, progress.total as u64);
            ctx.reporter
                .partial((ctx.wrap)(BuildEvent::SheetReady { grid: g, sheet }));
        }
    }
    Ok(Some(()))
}

/// The icons of `cells` of a level (their mean activations `means`, row-major), with the
/// configured method: from noise, or (accentuation) from each cell's exemplar patch.
fn render_cells<E>(
    ctx: &Stage<E>,
    renderer: &IconRenderer,
    level: &LevelRecord,
    cells: std::ops::Range<usize>,
    means: &[f32],
    seed: u64,
    progress: &mut dyn FnMut(f32),
) -> Result<Option<Vec<RgbImage>>> {
    let render = &renderer.settings;
    let len = cells.len() as i64;
    let mut dirs = Tensor::from_slice(means).view([len, -1]);
    if let Some(s) = &renderer.whitening {
        dirs = whiten(&dirs, s);
    }
    let dirs = dirs.to_kind(Kind::Float);
    let cancel = || ctx.cancel.is_cancelled();
    let rendered = if render.method.needs_seeds() {
        let seeds = exemplar_seeds(ctx.out, level, render.size as u32, cells)?;
        render_accented(
            &renderer.model,
            renderer.layer,
            &dirs,
            &seeds,
            render,
            seed,
            progress,
            &cancel,
        )?
    } else {
        render_batch(
            &renderer.model,
            renderer.layer,
            &dirs,
            render,
            seed,
            progress,
            &cancel,
        )?
    };
    Ok(rendered.map(|r| r.images))
}

/// The exemplar tiles of `cells` as `[B, 3, s, s]` in [0, 1]: feature accentuation's starting
/// images. They are written by the exemplar stage, which runs first.
fn exemplar_seeds(
    root: &Path,
    level: &LevelRecord,
    icon_size: u32,
    cells: std::ops::Range<usize>,
) -> Result<Tensor> {
    let mut bytes = Vec::with_capacity(cells.len() * (icon_size * icon_size * 3) as usize);
    for cell in cells.clone() {
        let tile = read_kind_icon(root, level, IconKind::Exemplar, icon_size, cell).context(
            "accentuated icons start from each cell's exemplar: build with --icons both",
        )?;
        bytes.extend_from_slice(tile.as_raw());
    }
    let s = icon_size as i64;
    Ok(Tensor::from_slice(&bytes)
        .view([cells.len() as i64, s, s, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        / 255.0)
}

/// Rows to use: all, or `max` evenly strided ones (runs are ordered by image, so a prefix would
/// over-represent the first folders). Atlas row `i` is run row `pick_rows(..)[i]`; since
/// `pick_rows(total, Some(n))` with `n = pick_rows(total, max).len()` gives the same rows, readers
/// recompute the mapping from the manifest's `points` and `run_rows`.
pub fn pick_rows(total: usize, max: Option<usize>) -> Vec<usize> {
    match max {
        Some(m) if m < total => (0..m).map(|i| i * total / m).collect(),
        _ => (0..total).collect(),
    }
}

fn gather(data: Vec<f32>, width: usize, rows: &[usize]) -> Vec<f32> {
    if rows.len() * width == data.len() {
        return data;
    }
    rows.iter()
        .flat_map(|&r| data[r * width..(r + 1) * width].iter().copied())
        .collect()
}

fn describe_layout(method: &LayoutMethod) -> String {
    match method {
        LayoutMethod::Umap(p) => format!(
            "umap n_neighbors={} min_dist={} metric={:?} epochs={:?} seed={}",
            p.n_neighbors, p.min_dist, p.metric, p.n_epochs, p.seed
        ),
        LayoutMethod::Tsne(p) => format!(
            "tsne dims={} perplexity={} learning_rate={} metric={:?} iterations={} seed={}",
            p.dims, p.perplexity, p.learning_rate, p.metric, p.n_iter, p.seed
        ),
    }
}

fn describe_render(r: &RenderSettings) -> String {
    format!(
        "size={} steps={} tries={} batch={} lr={} transforms={:?} objective={:?} power={} whiten={} score_window={} seed={} boundary={} method={}",
        r.size,
        r.steps,
        r.tries,
        r.batch,
        r.learning_rate,
        r.transforms,
        r.objective.form,
        r.objective.cossim_power,
        r.whiten,
        r.score_window,
        r.seed,
        r.boundary_penalty,
        r.method.describe()
    )
}

/// The finished icons of a partial sheet of `count` icons, cut back to the last whole batch of
/// `batches`; none when there is no (readable, matching) partial sheet.
fn read_partial(path: &Path, icon: u32, count: usize, batches: &[usize]) -> Vec<RgbImage> {
    let Ok(img) = image::open(path) else {
        return vec![];
    };
    let img = img.to_rgba8();
    let cols = SHEET_COLUMNS.min(count);
    if img.dimensions()
        != (
            cols as u32 * icon,
            count.div_ceil(SHEET_COLUMNS) as u32 * icon,
        )
    {
        return vec![];
    }
    let ready = finished_tiles(&img, icon, SHEET_COLUMNS, count);
    let mut keep = 0;
    for len in batches {
        if keep + len > ready {
            break;
        }
        keep += len;
    }
    (0..keep)
        .map(|t| {
            let (x, y) = (
                (t % SHEET_COLUMNS) as u32 * icon,
                (t / SHEET_COLUMNS) as u32 * icon,
            );
            image::DynamicImage::ImageRgba8(
                image::imageops::crop_imm(&img, x, y, icon, icon).to_image(),
            )
            .to_rgb8()
        })
        .collect()
}

/// Writes the first icons of a sheet of `count` as an RGBA sheet of the final size: finished
/// tiles opaque, the others transparent ([`partial_sheet_path`]).
fn write_partial_sheet(path: &Path, icons: &[RgbImage], count: usize) -> Result<()> {
    let Some(first) = icons.first() else {
        bail!("no icons to write");
    };
    let (w, h) = first.dimensions();
    let cols = SHEET_COLUMNS.min(count) as u32;
    let rows = count.div_ceil(SHEET_COLUMNS) as u32;
    let mut sheet = image::RgbaImage::new(cols * w, rows * h);
    for (i, icon) in icons.iter().enumerate() {
        let (cx, cy) = ((i % SHEET_COLUMNS) as u32, (i / SHEET_COLUMNS) as u32);
        let rgba = image::DynamicImage::ImageRgb8(icon.clone()).to_rgba8();
        image::imageops::replace(&mut sheet, &rgba, (cx * w) as i64, (cy * h) as i64);
    }
    write_png(path, &sheet)
}

/// Reads synthetic icon `index` of a level back from its sheet.
pub fn read_icon(
    root: &Path,
    level: &LevelRecord,
    icon_size: u32,
    index: usize,
) -> Result<RgbImage> {
    read_kind_icon(root, level, IconKind::Synthetic, icon_size, index)
}

/// Reads icon `index` of a level's sheets of `kind` back.
pub fn read_kind_icon(
    root: &Path,
    level: &LevelRecord,
    kind: IconKind,
    icon_size: u32,
    index: usize,
) -> Result<RgbImage> {
    let sheet = index / level.icons_per_sheet;
    let tile = index % level.icons_per_sheet;
    let path = kind_sheet_path(root, level.grid, kind, sheet);
    let img = image::open(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .to_rgb8();
    let (cx, cy) = (
        (tile % level.sheet_columns) as u32,
        (tile / level.sheet_columns) as u32,
    );
    Ok(
        image::imageops::crop_imm(&img, cx * icon_size, cy * icon_size, icon_size, icon_size)
            .to_image(),
    )
}

#[cfg(test)]
mod tests {
    use super::sheet_batches;

    #[test]
    fn first_sheets_ramp_up_from_single_icons() {
        assert_eq!(sheet_batches(32, true), vec![1, 1, 2, 4, 8, 16]);
        assert_eq!(sheet_batches(24, true), vec![1, 1, 2, 4, 8, 8]);
        assert_eq!(sheet_batches(3, true), vec![1, 1, 1]);
        assert_eq!(sheet_batches(1, true), vec![1]);
        assert_eq!(sheet_batches(100, false), vec![100]);
        for n in 1..300 {
            assert_eq!(sheet_batches(n, true).iter().sum::<usize>(), n);
            assert!(sheet_batches(n, true).len() <= 2 + (n as f64).log2().ceil() as usize);
        }
    }
}
