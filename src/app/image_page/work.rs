//! The One image page's background work: the analysis of an image (prediction, activation grid,
//! nearest atlas cells), the attribution map of a class, and feature-visualisation icons for
//! every position. Each runs as a [`crate::jobs`] job; the loaded model is shared between them
//! through [`ModelCache`], so only the first request of a session pays for loading it.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use eframe::egui::ColorImage;
use image::RgbImage;
use tch::{Kind, Tensor};

use crate::analysis::single_image::{analyse_input, attribution_map_for_input, load_input};
use crate::analysis::single_image::{nearest_cells, ImageAnalysis};
use crate::atlas::manifest::level_dir;
use crate::jobs::{self, CancelToken, JobHandle, Reporter};
use crate::model::AtlasModel;
use crate::render::objective::whiten;
use crate::render::optimize::render_batch;
use crate::render::RenderSettings;
use crate::store::npy;

/// The model loaded by the last job, kept for the next one (same file: no reload).
pub type ModelCache = Arc<Mutex<Option<AtlasModel>>>;

/// Runs `f` with the model at `path`, loading it first when the cache holds another one (or
/// none). Jobs take turns: one holds the model at a time.
fn with_model<T, R>(
    cache: &ModelCache,
    path: &Path,
    reporter: &Reporter<T>,
    f: impl FnOnce(&AtlasModel) -> Result<R>,
) -> Result<R> {
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().is_none_or(|m| m.path != path) {
        *guard = None;
        reporter.progress("loading the model", 0, 1);
        *guard = Some(AtlasModel::load(path, crate::model::default_device())?);
    }
    f(guard.as_ref().expect("loaded above"))
}

/// An atlas level to compare the image's vectors with.
#[derive(Clone, Debug, PartialEq)]
pub struct AtlasTarget {
    pub root: PathBuf,
    pub grid: usize,
}

/// What to analyse.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisRequest {
    pub model: PathBuf,
    pub image: PathBuf,
    /// `None`: the model's linear-head layer (or its last layer).
    pub layer: Option<String>,
    pub atlas: Option<AtlasTarget>,
}

/// For every position of the grid, the nearest cell of an atlas level.
pub struct Nearest {
    pub root: PathBuf,
    pub grid: usize,
    /// Per position (row `y·w + x`): (cell index in the level, cosine similarity).
    pub cells: Vec<(usize, f32)>,
}

/// One image through the model.
pub struct Analysis {
    pub request: AnalysisRequest,
    pub analysis: ImageAnalysis,
    pub layer_index: usize,
    pub class_names: Vec<String>,
    pub nearest: Option<Nearest>,
}

pub fn spawn_analysis(cache: ModelCache, req: AnalysisRequest) -> JobHandle<Analysis> {
    jobs::spawn("one-image", move |reporter, cancel| {
        with_model(&cache, &req.model, reporter, |model| {
            analyse(model, req.clone(), reporter, cancel)
        })
    })
}

fn analyse(
    model: &AtlasModel,
    request: AnalysisRequest,
    reporter: &Reporter<Analysis>,
    cancel: &CancelToken,
) -> Result<Option<Analysis>> {
    let info = &model.info;
    let layer = match &request.layer {
        Some(l) => l.clone(),
        None => info
            .linear_head_layer
            .clone()
            .or_else(|| info.layers.last().map(|l| l.name.clone()))
            .context("the model exposes no layers")?,
    };
    let layer_index = info
        .layer_index(&layer)
        .with_context(|| format!("the model {} has no layer {layer:?}", model.path.display()))?;
    if cancel.is_cancelled() {
        return Ok(None);
    }
    reporter.progress("reading the image", 0, 3);
    let input = load_input(model, &request.image, info.classify_preprocess())?;
    reporter.progress("running the model", 1, 3);
    let analysis = analyse_input(model, input, layer_index)?;
    if cancel.is_cancelled() {
        return Ok(None);
    }
    let nearest = match &request.atlas {
        Some(target) => {
            reporter.progress("finding the nearest atlas cells", 2, 3);
            Some(nearest_in_atlas(target, &analysis)?)
        }
        None => None,
    };
    reporter.progress("done", 3, 3);
    Ok(Some(Analysis {
        request,
        layer_index,
        class_names: info.classes.iter().map(|c| c.name.clone()).collect(),
        analysis,
        nearest,
    }))
}

fn nearest_in_atlas(target: &AtlasTarget, analysis: &ImageAnalysis) -> Result<Nearest> {
    let path = level_dir(&target.root, target.grid).join("mean_acts.npy");
    let means = npy::read(&path)
        .with_context(|| format!("cannot read the atlas cell means {}", path.display()))?;
    ensure!(
        means.cols == analysis.c,
        "{} has {} channels but layer {:?} has {}",
        path.display(),
        means.cols,
        analysis.layer,
        analysis.c
    );
    Ok(Nearest {
        root: target.root.clone(),
        grid: target.grid,
        cells: nearest_cells(&analysis.acts, analysis.c, &means.data),
    })
}

/// The spatial attribution map of one class (spec §9.1 AttrSpatial), row `y·w + x`.
pub struct AttrMap {
    pub class: usize,
    pub values: Vec<f32>,
}

pub fn spawn_attribution(
    cache: ModelCache,
    model: PathBuf,
    input: RgbImage,
    layer: usize,
    class: usize,
) -> JobHandle<AttrMap> {
    jobs::spawn("one-image-attribution", move |reporter, cancel| {
        with_model(&cache, &model, reporter, |model| {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            reporter.progress("attribution", 0, 1);
            let values = attribution_map_for_input(model, &input, layer, class)?;
            Ok(Some(AttrMap { class, values }))
        })
    })
}

/// Icons of the positions `first..first + images.len()`, as they are rendered.
pub struct IconBatch {
    pub first: usize,
    pub images: Vec<ColorImage>,
}

pub struct OptimiseRequest {
    pub model: PathBuf,
    pub layer: usize,
    /// `[positions, c]` activation vectors.
    pub acts: Vec<f32>,
    pub c: usize,
    /// The atlas's `whitening.npy` (used when `settings.whiten`).
    pub whitening: Option<PathBuf>,
    pub settings: RenderSettings,
}

/// Renders one feature-visualisation icon per activation vector, a batch at a time; every batch
/// arrives as a partial result, the last one also as the final result.
pub fn spawn_optimise(cache: ModelCache, req: OptimiseRequest) -> JobHandle<IconBatch> {
    jobs::spawn("one-image-icons", move |reporter, cancel| {
        with_model(&cache, &req.model, reporter, |model| {
            optimise(model, &req, reporter, cancel)
        })
    })
}

fn optimise(
    model: &AtlasModel,
    req: &OptimiseRequest,
    reporter: &Reporter<IconBatch>,
    cancel: &CancelToken,
) -> Result<Option<IconBatch>> {
    let c = req.c;
    let n = req.acts.len() / c.max(1);
    let s = match (&req.whitening, req.settings.whiten) {
        (Some(path), true) if path.is_file() => {
            let m = npy::read(path)?;
            ensure!(
                m.rows == c && m.cols == c,
                "{} is {}×{}, expected {c}×{c}",
                path.display(),
                m.rows,
                m.cols
            );
            Some(Tensor::from_slice(&m.data).view([c as i64, c as i64]))
        }
        _ => None,
    };
    let batch = req.settings.batch.max(1);
    let mut last = None;
    for first in (0..n).step_by(batch) {
        let count = batch.min(n - first);
        let mut dirs = Tensor::from_slice(&req.acts[first * c..(first + count) * c])
            .view([count as i64, c as i64]);
        if let Some(s) = &s {
            dirs = whiten(&dirs, s);
        }
        let Some(icons) = render_batch(
            model,
            req.layer,
            &dirs.to_kind(Kind::Float),
            &req.settings,
            first as u64,
            &mut |f| {
                reporter.progress(
                    "optimising icons",
                    (first as f32 + f * count as f32) as u64,
                    n as u64,
                )
            },
            &|| cancel.is_cancelled(),
        )?
        else {
            return Ok(None);
        };
        let images: Vec<ColorImage> = icons
            .images
            .iter()
            .map(|img| {
                ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
            })
            .collect();
        reporter.progress("optimising icons", (first + count) as u64, n as u64);
        if first + count < n {
            reporter.partial(IconBatch { first, images });
        } else {
            last = Some(IconBatch { first, images });
        }
    }
    Ok(last)
}
