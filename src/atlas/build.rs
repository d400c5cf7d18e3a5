//! `atlas build`: run folder → layout → nested grids → icons, each stage cached and resumable.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use image::RgbImage;
use tch::{Kind, Tensor};

use super::manifest::{
    level_dir, sheet_path, write_cells, AtlasManifest, CellRecord, LevelRecord, FORMAT,
    SHEET_COLUMNS,
};
use crate::collect::run_folder::RunFolder;
use crate::grid;
use crate::jobs::{spawn, CancelToken, JobHandle, Reporter};
use crate::layout::{normalize_layout, run_layout, LayoutMethod};
use crate::model::AtlasModel;
use crate::render::objective::whiten;
use crate::render::optimize::render_batch;
use crate::render::{whitening_matrix, RenderSettings};
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
}

/// What the build job reports as it goes and when it ends.
#[derive(Clone, Debug)]
pub enum BuildEvent {
    /// The cell tables of every level are written (icons may still be missing).
    LevelsReady(AtlasManifest),
    /// A sheet of icons was written.
    SheetReady { grid: usize, sheet: usize },
    Finished {
        manifest: AtlasManifest,
        icons_rendered: usize,
        seconds: f64,
    },
}

pub fn spawn_build(config: BuildConfig) -> JobHandle<BuildEvent> {
    spawn("atlas-build", move |reporter, cancel| {
        build(&config, reporter, cancel)
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
    let start = Instant::now();
    let out = &config.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    atomic::remove_stale_temps(out)?;
    let mut grids = config.grids.clone();
    grids.sort_unstable();
    grids.dedup();
    ensure!(
        !grids.is_empty() && grids[0] > 0,
        "give at least one positive grid size"
    );

    // --- inputs ------------------------------------------------------------------------------
    let run = RunFolder::new(&config.run);
    let run_manifest = run
        .read_manifest()?
        .with_context(|| format!("{} is not a collection run", config.run.display()))?;
    ensure!(
        run_manifest.status == "complete",
        "the run {} is not complete yet: finish it with `atlas collect` first",
        config.run.display()
    );
    let layer = run_manifest
        .layers
        .iter()
        .find(|l| l.name == config.layer)
        .with_context(|| {
            let names: Vec<&str> = run_manifest
                .layers
                .iter()
                .map(|l| l.name.as_str())
                .collect();
            format!("the run has no layer {:?} (it has {names:?})", config.layer)
        })?;
    reporter.progress("reading the run", 0, 1);
    let layer_dir = config.run.join(&layer.dir);
    let acts = npy::read(&layer_dir.join("acts.npy"))?;
    let attr = npy::read(&layer_dir.join("attr.npy"))?;
    ensure!(
        acts.rows == attr.rows,
        "acts.npy and attr.npy have different row counts"
    );
    let run_rows = acts.rows;
    let rows = pick_rows(run_rows, config.max_points);
    let (c, k) = (acts.cols, attr.cols);
    // Moved, not copied, when every row is used: at 1M rows each matrix is gigabytes.
    let acts_data = gather(acts.data, c, &rows);
    let attr_data = gather(attr.data, k, &rows);
    let n = rows.len();
    ensure!(
        n >= 3,
        "the layer has only {n} rows: collect more images or samples"
    );

    // --- layout ------------------------------------------------------------------------------
    let layout_desc = match &inputs.layout {
        Some(given) => given.description.clone(),
        None => describe_layout(&config.layout),
    };
    let mut layout_key = format!(
        "run={} layer={} rows={n} {layout_desc}",
        config.run.display(),
        config.layer
    );
    if !inputs.source_key.is_empty() {
        layout_key.push_str(&format!(" source={}", inputs.source_key));
    }
    let layout_norm_path = out.join("layout_normalized.npy");
    let points: Vec<[f32; 2]> = if let Some(given) = &inputs.layout {
        ensure!(
            given.normalized.len() == n && given.raw.len() == 2 * n,
            "the given layout has {} points, the run has {n} rows",
            given.normalized.len()
        );
        if !(stage_is_current(&out.join("layout.key"), &layout_key) && layout_norm_path.is_file()) {
            npy::write(&out.join("layout.npy"), &given.raw, n, 2, Dtype::F32)?;
            let flat: Vec<f32> = given.normalized.iter().flatten().copied().collect();
            npy::write(&layout_norm_path, &flat, n, 2, Dtype::F32)?;
            atomic::write_bytes(&out.join("layout.key"), layout_key.as_bytes())?;
        }
        given.normalized.clone()
    } else if stage_is_current(&out.join("layout.key"), &layout_key) && layout_norm_path.is_file() {
        reporter.log("layout: reusing the saved layout");
        let m = npy::read(&layout_norm_path)?;
        m.data.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
    } else {
        let mut stage = String::new();
        let Some((coords, dims)) = run_layout(
            &acts_data,
            n,
            c,
            &config.layout,
            &mut |s, f| {
                if s != stage {
                    stage = s.to_string();
                }
                reporter.progress(&format!("layout: {stage}"), (f * 1000.0) as u64, 1000);
            },
            &|| cancel.is_cancelled(),
        )?
        else {
            return Ok(None);
        };
        ensure!(
            dims == 2,
            "an atlas needs a 2-D layout, the method gave {dims}-D"
        );
        npy::write(&out.join("layout.npy"), &coords, n, 2, Dtype::F32)?;
        let mut points: Vec<[f32; 2]> = coords.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        normalize_layout(&mut points);
        let flat: Vec<f32> = points.iter().flatten().copied().collect();
        npy::write(&layout_norm_path, &flat, n, 2, Dtype::F32)?;
        atomic::write_bytes(&out.join("layout.key"), layout_key.as_bytes())?;
        points
    };
    if cancel.is_cancelled() {
        return Ok(None);
    }

    // --- grids -------------------------------------------------------------------------------
    let mut manifest = AtlasManifest {
        format: FORMAT.into(),
        run: config.run.clone(),
        layer: config.layer.clone(),
        model_file: config
            .model
            .clone()
            .unwrap_or_else(|| run_manifest.settings.model_file.clone()),
        points: n,
        channels: c,
        class_names: run_manifest.class_names.clone(),
        layout: layout_desc,
        min_count: config.min_count,
        render: describe_render(&config.render),
        icon_size: config.render.size as u32,
        levels: vec![],
        run_rows: Some(run_rows),
    };
    let mut level_means: Vec<Vec<f32>> = vec![];
    for (i, &g) in grids.iter().enumerate() {
        reporter.progress("grids", i as u64, grids.len() as u64);
        let dir = level_dir(out, g);
        std::fs::create_dir_all(&dir)?;
        let cells = grid::bin(&points, g, config.min_count);
        let summaries = grid::summarize(&cells, &acts_data, c, &attr_data, k);
        let level_key = format!("{layout_key} grid={g} min_count={}", config.min_count);
        let means: Vec<f32> = summaries
            .iter()
            .flat_map(|s| s.mean_activation.iter().copied())
            .collect();
        if !stage_is_current(&dir.join("cells.key"), &level_key) {
            // The cells changed: icons of the old cells are meaningless now.
            let icons = dir.join("icons");
            if icons.exists() {
                std::fs::remove_dir_all(&icons)?;
            }
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
            npy::write(&dir.join("mean_acts.npy"), &means, n_cells, c, Dtype::F32)?;
            let attrs: Vec<f32> = summaries
                .iter()
                .flat_map(|s| s.mean_attribution.iter().copied())
                .collect();
            npy::write(&dir.join("mean_attr.npy"), &attrs, n_cells, k, Dtype::F32)?;
            atomic::write_bytes(&dir.join("cells.key"), level_key.as_bytes())?;
        }
        manifest.levels.push(LevelRecord {
            grid: g,
            cells: summaries.len(),
            icons_per_sheet: config.render.batch,
            sheet_columns: SHEET_COLUMNS,
        });
        level_means.push(means);
    }
    manifest.save(out)?;
    reporter.partial(wrap(BuildEvent::LevelsReady(manifest.clone())));

    // --- icons -------------------------------------------------------------------------------
    let wanted: Vec<usize> = grids
        .iter()
        .copied()
        .filter(|g| config.icon_levels.as_ref().is_none_or(|l| l.contains(g)))
        .collect();
    let mut icons_rendered = 0usize;
    if !wanted.is_empty() {
        let model_path = &manifest.model_file;
        let model = AtlasModel::load(model_path, crate::model::default_device())?;
        let li = model.info.layer_index(&config.layer).with_context(|| {
            format!(
                "the model {} has no layer {:?}",
                model_path.display(),
                config.layer
            )
        })?;
        ensure!(
            model.info.layers[li].channels as usize == c,
            "the model's layer {:?} has {} channels, the run's has {c}",
            config.layer,
            model.info.layers[li].channels
        );
        let whitening = if config.render.whiten {
            reporter.progress("whitening", 0, 1);
            let s = match &inputs.whitening {
                Some((m, _)) => {
                    ensure!(
                        m.len() == c * c,
                        "the given whitening matrix has {} values, expected {c}×{c}",
                        m.len()
                    );
                    Tensor::from_slice(m).view([c as i64, c as i64])
                }
                None => whitening_matrix(&acts_data, n, c, 1e-3)?,
            };
            npy::write(
                &out.join("whitening.npy"),
                &Vec::<f32>::try_from(s.contiguous().view([-1]))?,
                c,
                c,
                Dtype::F32,
            )?;
            Some(s)
        } else {
            None
        };
        let mut render_key = describe_render(&config.render);
        if let (true, Some((_, key))) = (config.render.whiten, &inputs.whitening) {
            render_key.push_str(&format!(" whitening={key}"));
        }
        let total: usize = grids
            .iter()
            .zip(&manifest.levels)
            .filter(|(g, _)| wanted.contains(g))
            .map(|(_, l)| l.cells)
            .sum();
        let mut done = 0usize;
        for (gi, &g) in grids.iter().enumerate() {
            if !wanted.contains(&g) {
                continue;
            }
            let cells = manifest.levels[gi].cells;
            let icons_dir = level_dir(out, g).join("icons");
            let key_file = icons_dir.join("render.key");
            if !stage_is_current(&key_file, &render_key) && icons_dir.exists() {
                std::fs::remove_dir_all(&icons_dir)?;
            }
            std::fs::create_dir_all(&icons_dir)?;
            atomic::remove_stale_temps(&icons_dir)?;
            atomic::write_bytes(&key_file, render_key.as_bytes())?;
            let batch = config.render.batch.max(1);
            for (sheet, first) in (0..cells).step_by(batch).enumerate() {
                let count = batch.min(cells - first);
                let path = sheet_path(out, g, sheet);
                if path.is_file() {
                    done += count;
                    continue;
                }
                let means = &level_means[gi][first * c..(first + count) * c];
                let mut dirs = Tensor::from_slice(means).view([count as i64, c as i64]);
                if let Some(s) = &whitening {
                    dirs = whiten(&dirs, s);
                }
                let stage = format!("icons {g}×{g}");
                let seed = (g as u64) << 32 | sheet as u64;
                let Some(icons) = render_batch(
                    &model,
                    li,
                    &dirs.to_kind(Kind::Float),
                    &config.render,
                    seed,
                    &mut |f| {
                        let now = done as f32 + f * count as f32;
                        reporter.progress(&stage, now as u64, total as u64)
                    },
                    &|| cancel.is_cancelled(),
                )?
                else {
                    return Ok(None);
                };
                write_sheet(&path, &icons.images)?;
                icons_rendered += count;
                done += count;
                reporter.progress(&stage, done as u64, total as u64);
                reporter.partial(wrap(BuildEvent::SheetReady { grid: g, sheet }));
            }
        }
    }
    Ok(Some(BuildEvent::Finished {
        manifest,
        icons_rendered,
        seconds: start.elapsed().as_secs_f64(),
    }))
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
        "size={} steps={} tries={} batch={} lr={} transforms={:?} objective={:?} power={} whiten={} score_window={} seed={}",
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
        r.seed
    )
}

/// Tiles `icons` into a sheet `SHEET_COLUMNS` wide and writes it atomically as PNG.
fn write_sheet(path: &Path, icons: &[RgbImage]) -> Result<()> {
    let Some(first) = icons.first() else {
        bail!("no icons to write");
    };
    let (w, h) = first.dimensions();
    let cols = SHEET_COLUMNS.min(icons.len()) as u32;
    let rows = icons.len().div_ceil(SHEET_COLUMNS) as u32;
    let mut sheet = RgbImage::from_pixel(cols * w, rows * h, image::Rgb([255, 255, 255]));
    for (i, icon) in icons.iter().enumerate() {
        let (cx, cy) = ((i % SHEET_COLUMNS) as u32, (i / SHEET_COLUMNS) as u32);
        image::imageops::replace(&mut sheet, icon, (cx * w) as i64, (cy * h) as i64);
    }
    let mut bytes = vec![];
    sheet.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    atomic::write_bytes(path, &bytes)
}

/// Reads icon `index` of a level back from its sheet.
pub fn read_icon(
    root: &Path,
    level: &LevelRecord,
    icon_size: u32,
    index: usize,
) -> Result<RgbImage> {
    let sheet = index / level.icons_per_sheet;
    let tile = index % level.icons_per_sheet;
    let path = sheet_path(root, level.grid, sheet);
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
