//! The class-atlas and comparison jobs (see the module docs of [`crate::classes`]).
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};

use super::info::{
    CellBin, ClassAtlasInfo, ClassRef, ComparisonInfo, CLASS_ATLAS_FORMAT, COMPARISON_FORMAT,
};
use super::select::{
    class_rows, comparison_rows, comparison_x, magnitude_rows, resolve_class, winner_rows,
    ClassFilter, Selection,
};
use super::subset::{fnv1a, selection_key, write_subset_run};
use crate::atlas::build::{build_with, BuildInputs, GivenLayout};
use crate::atlas::manifest::{level_dir, read_cells};
use crate::atlas::poster::{render_poster, PosterOptions};
use crate::atlas::{AtlasManifest, BuildConfig, BuildEvent};
use crate::collect::run_folder::{RunFolder, RunManifest};
use crate::jobs::{spawn, CancelToken, JobHandle, Reporter};
use crate::layout::{normalize_layout, tsne, LayoutMethod, TsneParams, UmapParams};
use crate::render::{whitening_matrix, RenderSettings};
use crate::store::atomic;
use crate::store::npy::{self, Dtype, Matrix};

/// Where the icons' whitening matrix comes from (spec §6: the full layer, not the subset).
#[derive(Clone, Debug, PartialEq)]
pub enum WhiteningSource {
    /// `(Σ + λI)⁻¹` of all the run's rows of the layer (λ = 10⁻³ × mean diagonal, as
    /// `atlas build`); cached in the output folder.
    FullLayer,
    /// A `[C, C]` `.npy`, e.g. the `whitening.npy` of the layer's full atlas.
    File(PathBuf),
}

/// A class atlas to build. [`ClassAtlasConfig::new`] gives the spec's defaults.
#[derive(Clone, Debug)]
pub struct ClassAtlasConfig {
    pub run: PathBuf,
    pub layer: String,
    /// Class name (case-insensitive) or index.
    pub class: String,
    pub filter: ClassFilter,
    /// The magnitude filter's N (spec: 2000).
    pub n: usize,
    pub selection: Selection,
    /// Grid size (spec: 8).
    pub grid: usize,
    /// Cells with fewer points are dropped (NB-CLS keeps n > 4: 5).
    pub min_count: usize,
    /// Default UMAP 20 / 0.02 / cosine (the published class atlases).
    pub layout: LayoutMethod,
    pub render: RenderSettings,
    pub whitening: WhiteningSource,
    /// Default: the model the run was collected with.
    pub model: Option<PathBuf>,
    pub out: PathBuf,
    /// Write `class_atlas.png` (the level's poster) at the end.
    pub poster: bool,
}

impl ClassAtlasConfig {
    pub fn new(run: impl Into<PathBuf>, layer: &str, class: &str, out: impl Into<PathBuf>) -> Self {
        ClassAtlasConfig {
            run: run.into(),
            layer: layer.into(),
            class: class.into(),
            filter: ClassFilter::Both,
            n: 2000,
            selection: Selection::Union,
            grid: 8,
            min_count: 5,
            layout: class_umap(0),
            render: RenderSettings::preview(),
            whitening: WhiteningSource::FullLayer,
            model: None,
            out: out.into(),
            poster: true,
        }
    }
}

/// The class atlases' UMAP: 20 neighbours, min_dist 0.02, cosine (CFG `20_0.02_cosine`).
pub fn class_umap(seed: u64) -> LayoutMethod {
    LayoutMethod::Umap(UmapParams {
        n_neighbors: 20,
        min_dist: 0.02,
        seed,
        ..Default::default()
    })
}

/// A comparison to build. [`CompareConfig::new`] gives the spec's defaults.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    pub run: PathBuf,
    pub layer: String,
    /// Left class ("more A" is x < 0) and right class, by name or index.
    pub a: String,
    pub b: String,
    /// Filter for each class's samples (spec §7: winner ∪ top-2000 positive, i.e. `Both`).
    pub filter: ClassFilter,
    pub n: usize,
    pub selection: Selection,
    /// Percentile of |d| that x is divided by (spec: 99).
    pub percentile: f64,
    /// Grid size (spec: 10).
    pub grid: usize,
    pub min_count: usize,
    /// The y axis: 1-D t-SNE (`dims` is forced to 1).
    pub tsne: TsneParams,
    pub render: RenderSettings,
    pub whitening: WhiteningSource,
    pub model: Option<PathBuf>,
    pub out: PathBuf,
    /// Also build the class atlases of A and B (into `OUT/class_a`, `OUT/class_b`) with these
    /// settings' filter, n, selection, render and whitening and the class-atlas defaults
    /// otherwise.
    pub with_class_atlases: bool,
    /// Write `comparison.png` at the end.
    pub poster: bool,
}

impl CompareConfig {
    pub fn new(
        run: impl Into<PathBuf>,
        layer: &str,
        a: &str,
        b: &str,
        out: impl Into<PathBuf>,
    ) -> Self {
        CompareConfig {
            run: run.into(),
            layer: layer.into(),
            a: a.into(),
            b: b.into(),
            filter: ClassFilter::Both,
            n: 2000,
            selection: Selection::Union,
            percentile: 99.0,
            grid: 10,
            min_count: 5,
            tsne: TsneParams {
                dims: 1,
                ..Default::default()
            },
            render: RenderSettings::preview(),
            whitening: WhiteningSource::FullLayer,
            model: None,
            out: out.into(),
            with_class_atlases: false,
            poster: true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClassAtlasResult {
    pub out: PathBuf,
    pub info: ClassAtlasInfo,
    pub manifest: AtlasManifest,
    pub icons_rendered: usize,
    pub poster: Option<PathBuf>,
    pub seconds: f64,
}

#[derive(Clone, Debug)]
pub struct ComparisonResult {
    pub out: PathBuf,
    pub info: ComparisonInfo,
    pub manifest: AtlasManifest,
    pub icons_rendered: usize,
    pub poster: Option<PathBuf>,
    pub class_atlases: Vec<ClassAtlasResult>,
    pub seconds: f64,
}

/// What the class jobs report (partials) and end with. Events are few (one per stage or
/// sheet), so the size of the largest variant does not matter.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum ClassEvent {
    /// A sample set was chosen (`what`: e.g. "church (both)" or "church vs monastery").
    Selected {
        what: String,
        rows: usize,
    },
    /// An event of the atlas build of the folder `part` ("class atlas", "comparison",
    /// "class atlas A", "class atlas B"): levels written, an icon sheet written.
    Build {
        part: String,
        event: BuildEvent,
    },
    ClassAtlasDone(Box<ClassAtlasResult>),
    ComparisonDone(Box<ComparisonResult>),
}

pub fn spawn_class_atlas(config: ClassAtlasConfig) -> JobHandle<ClassEvent> {
    spawn("class-atlas", move |reporter, cancel| {
        Ok(
            class_atlas(&config, reporter, cancel)?
                .map(|r| ClassEvent::ClassAtlasDone(Box::new(r))),
        )
    })
}

pub fn spawn_compare(config: CompareConfig) -> JobHandle<ClassEvent> {
    spawn("class-compare", move |reporter, cancel| {
        Ok(compare(&config, reporter, cancel)?.map(|r| ClassEvent::ComparisonDone(Box::new(r))))
    })
}

/// A run's layer in memory.
struct LayerData {
    manifest: RunManifest,
    acts: Matrix,
    attr: Matrix,
}

fn load_layer(run: &Path, layer: &str) -> Result<LayerData> {
    let folder = RunFolder::new(run);
    let manifest = folder
        .read_manifest()?
        .with_context(|| format!("{} is not a collection run", run.display()))?;
    ensure!(
        manifest.status == "complete",
        "the run {} is not complete yet: finish it with `atlas collect` first",
        run.display()
    );
    let summary = manifest
        .layers
        .iter()
        .find(|l| l.name == layer)
        .with_context(|| {
            let names: Vec<&str> = manifest.layers.iter().map(|l| l.name.as_str()).collect();
            format!("the run has no layer {layer:?} (it has {names:?})")
        })?;
    let dir = run.join(&summary.dir);
    let acts = npy::read(&dir.join("acts.npy"))?;
    let attr = npy::read(&dir.join("attr.npy"))?;
    ensure!(
        acts.rows == attr.rows,
        "acts.npy and attr.npy have different row counts"
    );
    ensure!(
        attr.cols == manifest.class_names.len(),
        "attr.npy has {} columns, the run has {} classes",
        attr.cols,
        manifest.class_names.len()
    );
    Ok(LayerData {
        manifest,
        acts,
        attr,
    })
}

/// The icons' whitening matrix and a text naming it (cached in `out/whitening_full.npy`).
fn whitening_for(
    source: &WhiteningSource,
    run: &Path,
    layer: &str,
    data: &LayerData,
    out: &Path,
) -> Result<(Vec<f32>, String)> {
    let c = data.acts.cols;
    match source {
        WhiteningSource::File(p) => {
            let m = npy::read(p)?;
            ensure!(
                m.rows == c && m.cols == c,
                "{} is {}×{}, the layer has {c} channels",
                p.display(),
                m.rows,
                m.cols
            );
            let h = fnv1a(m.data.iter().flat_map(|v| v.to_le_bytes()));
            Ok((m.data, format!("file {} ({h:016x})", p.display())))
        }
        WhiteningSource::FullLayer => {
            let acts_path = RunFolder::new(run).layer_dir(layer).join("acts.npy");
            let meta = std::fs::metadata(&acts_path).ok();
            let stamp = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let key = format!(
                "full layer {layer} of {} ({} rows, {} bytes, mtime {stamp})",
                run.display(),
                data.acts.rows,
                meta.map(|m| m.len()).unwrap_or(0)
            );
            let cache = out.join("whitening_full.npy");
            let key_file = out.join("whitening_full.key");
            if std::fs::read_to_string(&key_file).is_ok_and(|k| k == key) {
                if let Ok(m) = npy::read(&cache) {
                    if m.rows == c && m.cols == c {
                        return Ok((m.data, key));
                    }
                }
            }
            let s = whitening_matrix(&data.acts.data, data.acts.rows, c, 1e-3)?;
            let v = Vec::<f32>::try_from(s.contiguous().view([-1]))?;
            npy::write(&cache, &v, c, c, Dtype::F32)?;
            atomic::write_bytes(&key_file, key.as_bytes())?;
            Ok((v, key))
        }
    }
}

/// Builds a class atlas (see the module docs). `Ok(None)` when cancelled.
pub fn class_atlas(
    config: &ClassAtlasConfig,
    reporter: &Reporter<ClassEvent>,
    cancel: &CancelToken,
) -> Result<Option<ClassAtlasResult>> {
    reporter.progress("reading the run", 0, 1);
    let data = load_layer(&config.run, &config.layer)?;
    class_atlas_on(config, &data, "class atlas", reporter, cancel)
}

fn class_atlas_on(
    config: &ClassAtlasConfig,
    data: &LayerData,
    part: &str,
    reporter: &Reporter<ClassEvent>,
    cancel: &CancelToken,
) -> Result<Option<ClassAtlasResult>> {
    let start = Instant::now();
    // Absolute paths: the manifest's `run` and the JSON must work from any directory.
    let config = &ClassAtlasConfig {
        run: std::path::absolute(&config.run)?,
        out: std::path::absolute(&config.out)?,
        ..config.clone()
    };
    let names = &data.manifest.class_names;
    let class = resolve_class(names, &config.class)?;
    let k = data.attr.cols;
    let winners = winner_rows(&data.attr.data, k, class).len();
    let magnitude = magnitude_rows(&data.attr.data, k, class, config.n).len();
    let rows = class_rows(
        &data.attr.data,
        k,
        class,
        config.filter,
        config.n,
        config.selection,
    );
    let what = format!("{} ({})", names[class], config.filter.name());
    reporter.partial(ClassEvent::Selected {
        what: what.clone(),
        rows: rows.len(),
    });
    reporter.log(format!(
        "{what}: {} samples ({winners} winners, {magnitude} of the top {} by attribution)",
        rows.len(),
        config.n
    ));
    ensure!(
        rows.len() >= 3,
        "only {} samples of layer {:?} belong to class {:?} with the {} filter: too few for an \
         atlas (collect more images of the class, or try another filter)",
        rows.len(),
        config.layer,
        names[class],
        config.filter.name()
    );
    let out = &config.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let whitening = whitening_for(&config.whitening, &config.run, &config.layer, data, out)?;
    let key = selection_key(&config.run, &config.layer, data.acts.rows, &rows);
    let sub = out.join("run");
    write_subset_run(
        &config.run,
        &data.manifest,
        &config.layer,
        &data.acts,
        &data.attr,
        &rows,
        &sub,
        &key,
    )?;
    let build_config = BuildConfig {
        run: sub.clone(),
        layer: config.layer.clone(),
        out: out.clone(),
        model: config.model.clone(),
        layout: config.layout.clone(),
        grids: vec![config.grid],
        min_count: config.min_count,
        render: config.render.clone(),
        icon_levels: None,
        max_points: None,
        overview_levels: false,
    };
    let inputs = BuildInputs {
        source_key: key,
        layout: None,
        whitening: Some(whitening.clone()),
    };
    let part_name = part.to_string();
    let wrap = move |event| ClassEvent::Build {
        part: part_name.clone(),
        event,
    };
    let Some(BuildEvent::Finished {
        manifest,
        icons_rendered,
        ..
    }) = build_with(&build_config, &inputs, reporter, &wrap, cancel)?
    else {
        return Ok(None);
    };
    let info = ClassAtlasInfo {
        format: CLASS_ATLAS_FORMAT.into(),
        source_run: config.run.clone(),
        layer: config.layer.clone(),
        class: ClassRef {
            index: class,
            name: names[class].clone(),
        },
        filter: config.filter,
        n: config.n,
        selection: config.selection,
        winner_count: winners,
        magnitude_count: magnitude,
        rows,
        grid: config.grid,
        min_count: config.min_count,
        layout: manifest.layout.clone(),
        whitening: whitening.1,
    };
    atomic::write_bytes(
        &out.join("class_atlas.json"),
        serde_json::to_string_pretty(&info)?.as_bytes(),
    )?;
    let poster = if config.poster && manifest.level(config.grid).is_some_and(|l| l.cells > 0) {
        let img = render_poster(
            out,
            &PosterOptions {
                grid: config.grid,
                cell_px: None,
                labels: true,
                density: 1.0,
            },
        )?;
        let path = out.join("class_atlas.png");
        write_png(&img, &path)?;
        Some(path)
    } else {
        None
    };
    Ok(Some(ClassAtlasResult {
        out: out.clone(),
        info,
        manifest,
        icons_rendered,
        poster,
        seconds: start.elapsed().as_secs_f64(),
    }))
}

pub(crate) fn write_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    let mut bytes = vec![];
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    atomic::write_bytes(path, &bytes)
}

fn describe_tsne(p: &TsneParams) -> String {
    format!(
        "tsne dims=1 perplexity={} learning_rate={} metric={:?} iterations={} seed={}",
        p.perplexity, p.learning_rate, p.metric, p.n_iter, p.seed
    )
}

/// Builds a two-class comparison (see the module docs). `Ok(None)` when cancelled.
pub fn compare(
    config: &CompareConfig,
    reporter: &Reporter<ClassEvent>,
    cancel: &CancelToken,
) -> Result<Option<ComparisonResult>> {
    let start = Instant::now();
    let config = &CompareConfig {
        run: std::path::absolute(&config.run)?,
        out: std::path::absolute(&config.out)?,
        ..config.clone()
    };
    reporter.progress("reading the run", 0, 1);
    let data = load_layer(&config.run, &config.layer)?;
    let pair = select_pair(config, &data, reporter)?;
    let out = &config.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    // Class atlases first when asked (they share the loaded layer).
    let Some(class_atlases) = pair_class_atlases(config, &data, &pair, reporter, cancel)? else {
        return Ok(None);
    };
    let Some(axes) = comparison_axes(config, &data, &pair, reporter, cancel)? else {
        return Ok(None);
    };
    let whitening = whitening_for(&config.whitening, &config.run, &config.layer, &data, out)?;
    let built = build_comparison_folder(config, &data, &pair, &axes, &whitening, reporter, cancel)?;
    let Some(BuildEvent::Finished {
        manifest,
        icons_rendered,
        ..
    }) = built
    else {
        return Ok(None);
    };
    let cells = comparison_cells(out, config.grid, &data.manifest.class_names)?;
    let class_atlas_dirs = class_atlases.iter().map(|r| r.out.clone()).collect();
    let info = ComparisonInfo {
        whitening: whitening.1,
        cells,
        class_atlases: class_atlas_dirs,
        ..comparison_info(config, &data.manifest.class_names, pair, axes)
    };
    atomic::write_bytes(
        &out.join("comparison.json"),
        serde_json::to_string(&info)?.as_bytes(),
    )?;
    let poster = if config.poster && manifest.level(config.grid).is_some_and(|l| l.cells > 0) {
        let img = super::plot::comparison_png(out, config.grid, &info)?;
        let path = out.join("comparison.png");
        write_png(&img, &path)?;
        Some(path)
    } else {
        None
    };
    Ok(Some(ComparisonResult {
        out: out.clone(),
        info,
        manifest,
        icons_rendered,
        poster,
        class_atlases,
        seconds: start.elapsed().as_secs_f64(),
    }))
}

/// The two classes of a comparison and its samples.
struct PairSelection {
    a: usize,
    b: usize,
    /// Rows per class under the filter (before combining).
    a_count: usize,
    b_count: usize,
    /// The source run's row of every sample.
    rows: Vec<usize>,
    /// The cache key of the samples ([`selection_key`]).
    key: String,
}

/// Resolves the two classes and chooses the samples (class A's rows, then class B's); fails
/// when they are the same class or give fewer than 3 samples.
fn select_pair(
    config: &CompareConfig,
    data: &LayerData,
    reporter: &Reporter<ClassEvent>,
) -> Result<PairSelection> {
    let names = &data.manifest.class_names;
    let a = resolve_class(names, &config.a)?;
    let b = resolve_class(names, &config.b)?;
    ensure!(
        a != b,
        "compare two different classes (both are {:?})",
        names[a]
    );
    let k = data.attr.cols;
    let attr = &data.attr.data;
    let a_count = class_rows(attr, k, a, config.filter, config.n, config.selection).len();
    let b_count = class_rows(attr, k, b, config.filter, config.n, config.selection).len();
    let rows = comparison_rows(attr, k, a, b, config.filter, config.n, config.selection);
    let what = format!("{} vs {}", names[a], names[b]);
    reporter.partial(ClassEvent::Selected {
        what: what.clone(),
        rows: rows.len(),
    });
    reporter.log(format!(
        "{what}: {} samples ({a_count} of {}, {b_count} of {}, filter {})",
        rows.len(),
        names[a],
        names[b],
        config.filter.name()
    ));
    ensure!(
        rows.len() >= 3,
        "only {} samples of layer {:?} belong to {:?} or {:?} with the {} filter: too few to \
         compare",
        rows.len(),
        config.layer,
        names[a],
        names[b],
        config.filter.name()
    );
    let key = selection_key(&config.run, &config.layer, data.acts.rows, &rows);
    Ok(PairSelection {
        a,
        b,
        a_count,
        b_count,
        rows,
        key,
    })
}

/// With `with_class_atlases`, the class atlases of A and B (`OUT/class_a`, `OUT/class_b`), each
/// also sent as a partial; otherwise none. `Ok(None)` when cancelled.
fn pair_class_atlases(
    config: &CompareConfig,
    data: &LayerData,
    pair: &PairSelection,
    reporter: &Reporter<ClassEvent>,
    cancel: &CancelToken,
) -> Result<Option<Vec<ClassAtlasResult>>> {
    let mut class_atlases = vec![];
    if !config.with_class_atlases {
        return Ok(Some(class_atlases));
    }
    for (label, class, dir) in [("A", pair.a, "class_a"), ("B", pair.b, "class_b")] {
        let cfg = ClassAtlasConfig {
            filter: config.filter,
            n: config.n,
            selection: config.selection,
            render: config.render.clone(),
            whitening: config.whitening.clone(),
            model: config.model.clone(),
            poster: config.poster,
            ..ClassAtlasConfig::new(
                &config.run,
                &config.layer,
                &class.to_string(),
                config.out.join(dir),
            )
        };
        let part = format!("class atlas {label}");
        let Some(r) = class_atlas_on(&cfg, data, &part, reporter, cancel)? else {
            return Ok(None);
        };
        reporter.partial(ClassEvent::ClassAtlasDone(Box::new(r.clone())));
        class_atlases.push(r);
    }
    Ok(Some(class_atlases))
}

/// The comparison's coordinates of every sample.
struct Axes {
    /// x ∈ [−1, 1] (positive = more B) and the percentile value it was divided by.
    x: Vec<f32>,
    scale: f64,
    /// The 1-D t-SNE coordinate, raw and normalized to [0, 1].
    y_raw: Vec<f32>,
    y: Vec<f32>,
    /// The t-SNE's settings (`dims` = 1) and their text.
    tsne: TsneParams,
    tsne_desc: String,
}

/// x: the attribution difference; y: the 1-D t-SNE of the samples' activations (cached in
/// `OUT/tsne_y.npy` under the samples' key and the t-SNE settings). `Ok(None)` when cancelled.
fn comparison_axes(
    config: &CompareConfig,
    data: &LayerData,
    pair: &PairSelection,
    reporter: &Reporter<ClassEvent>,
    cancel: &CancelToken,
) -> Result<Option<Axes>> {
    let (k, c) = (data.attr.cols, data.acts.cols);
    let rows = &pair.rows;
    let (x, scale) = comparison_x(&data.attr.data, k, rows, pair.a, pair.b, config.percentile);
    let mut tsne_params = config.tsne.clone();
    tsne_params.dims = 1;
    let tsne_desc = describe_tsne(&tsne_params);
    let tsne_key = format!("{} {tsne_desc}", pair.key);
    let y_path = config.out.join("tsne_y.npy");
    let y_key = config.out.join("tsne_y.key");
    let n = rows.len();
    let cached = std::fs::read_to_string(&y_key)
        .ok()
        .filter(|k| *k == tsne_key)
        .and_then(|_| npy::read(&y_path).ok())
        .filter(|m| m.rows == n && m.cols == 1);
    let y_raw: Vec<f32> = match cached {
        Some(m) => m.data,
        None => {
            let sel: Vec<f32> = rows
                .iter()
                .flat_map(|&r| data.acts.data[r * c..(r + 1) * c].iter().copied())
                .collect();
            let Some(y) = tsne(
                &sel,
                n,
                c,
                &tsne_params,
                &mut |s, f| {
                    reporter.progress(&format!("1-D t-SNE: {s}"), (f * 1000.0) as u64, 1000)
                },
                &|| cancel.is_cancelled(),
            )?
            else {
                return Ok(None);
            };
            npy::write(&y_path, &y, n, 1, Dtype::F32)?;
            atomic::write_bytes(&y_key, tsne_key.as_bytes())?;
            y
        }
    };
    let mut ys: Vec<[f32; 2]> = y_raw.iter().map(|&v| [0.0, v]).collect();
    normalize_layout(&mut ys);
    let y: Vec<f32> = ys.iter().map(|p| p[1]).collect();
    Ok(Some(Axes {
        x,
        scale,
        y_raw,
        y,
        tsne: tsne_params,
        tsne_desc,
    }))
}

/// The comparison's atlas folder: a subset run of the samples and one level of `grid` with the
/// comparison's axes as its layout (x mapped to [0, 1]). `Ok(None)` when cancelled.
fn build_comparison_folder(
    config: &CompareConfig,
    data: &LayerData,
    pair: &PairSelection,
    axes: &Axes,
    whitening: &(Vec<f32>, String),
    reporter: &Reporter<ClassEvent>,
    cancel: &CancelToken,
) -> Result<Option<BuildEvent>> {
    let out = &config.out;
    let names = &data.manifest.class_names;
    let (a, b) = (pair.a, pair.b);
    let sub = out.join("run");
    write_subset_run(
        &config.run,
        &data.manifest,
        &config.layer,
        &data.acts,
        &data.attr,
        &pair.rows,
        &sub,
        &pair.key,
    )?;
    let description = format!(
        "comparison x=(attr[{b}]-attr[{a}])/p{}(|d|) clipped to [-1,1] (A={a} {:?}, B={b} {:?}), \
         y={}",
        config.percentile, names[a], names[b], axes.tsne_desc
    );
    let given = GivenLayout {
        raw: axes
            .x
            .iter()
            .zip(&axes.y_raw)
            .flat_map(|(&x, &y)| [x, y])
            .collect(),
        normalized: axes
            .x
            .iter()
            .zip(&axes.y)
            .map(|(&x, &y)| [(x + 1.0) / 2.0, y])
            .collect(),
        description,
    };
    let build_config = BuildConfig {
        run: sub,
        layer: config.layer.clone(),
        out: out.clone(),
        model: config.model.clone(),
        layout: LayoutMethod::Tsne(axes.tsne.clone()),
        grids: vec![config.grid],
        min_count: config.min_count,
        render: config.render.clone(),
        icon_levels: None,
        max_points: None,
        overview_levels: false,
    };
    let inputs = BuildInputs {
        source_key: pair.key.clone(),
        layout: Some(given),
        whitening: Some(whitening.clone()),
    };
    let wrap = |event| ClassEvent::Build {
        part: "comparison".into(),
        event,
    };
    build_with(&build_config, &inputs, reporter, &wrap, cancel)
}

/// The kept cells of the comparison's level `grid` with their x and y ranges and labels.
fn comparison_cells(out: &Path, grid: usize, names: &[String]) -> Result<Vec<CellBin>> {
    let cells = read_cells(&level_dir(out, grid).join("cells.csv"))?;
    let step = 1.0 / grid as f32;
    Ok(cells
        .into_iter()
        .enumerate()
        .map(|(index, cell)| CellBin {
            index,
            col: cell.x,
            row: cell.y,
            count: cell.count,
            x_range: [
                -1.0 + 2.0 * cell.x as f32 * step,
                -1.0 + 2.0 * (cell.x + 1) as f32 * step,
            ],
            y_range: [cell.y as f32 * step, (cell.y + 1) as f32 * step],
            label: cell
                .top
                .first()
                .and_then(|t| names.get(t.0))
                .cloned()
                .unwrap_or_default(),
            top: cell.top,
        })
        .collect())
}

/// `comparison.json` from the settings, the samples and their axes; the whitening, cells and
/// class atlases are left empty for the caller to fill.
fn comparison_info(
    config: &CompareConfig,
    names: &[String],
    pair: PairSelection,
    axes: Axes,
) -> ComparisonInfo {
    let class = |index: usize| ClassRef {
        index,
        name: names[index].clone(),
    };
    ComparisonInfo {
        format: COMPARISON_FORMAT.into(),
        source_run: config.run.clone(),
        layer: config.layer.clone(),
        a: class(pair.a),
        b: class(pair.b),
        filter: config.filter,
        n: config.n,
        selection: config.selection,
        a_count: pair.a_count,
        b_count: pair.b_count,
        rows: pair.rows,
        x: axes.x,
        y: axes.y,
        y_raw: axes.y_raw,
        percentile: config.percentile,
        scale: axes.scale,
        grid: config.grid,
        min_count: config.min_count,
        tsne: axes.tsne_desc,
        whitening: String::new(),
        cells: vec![],
        class_atlases: vec![],
    }
}
