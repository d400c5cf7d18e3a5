//! The One image page's background work: the analysis of an image (prediction, activation grid,
//! where its vectors land on the atlas), the attribution map of a class, and
//! feature-visualization icons for every position. Each runs as a [`crate::jobs`] job; the loaded
//! model is shared between them through [`ModelCache`], so only the first request of a session
//! pays for loading it, and the atlas's points through [`LandingCache`].
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use eframe::egui::ColorImage;
use image::RgbImage;
use tch::{Kind, Tensor};

use crate::analysis::landing::{AtlasLanding, Landed};
use crate::analysis::single_image::ImageAnalysis;
use crate::analysis::single_image::{analyse_input, attribution_map_for_input, load_input};
use crate::atlas::AtlasManifest;
use crate::data::Preprocess;
use crate::jobs::{self, CancelToken, Finish, JobHandle, Reporter};
use crate::model::AtlasModel;
use crate::render::objective::whiten;
use crate::render::optimize::render_batch;
use crate::render::RenderSettings;
use crate::store::npy;

/// The model loaded by the last job, kept for the next one (same file: no reload).
pub type ModelCache = Arc<Mutex<Option<AtlasModel>>>;

/// The atlas prepared for landing by the last analysis, kept for the next one (same folder and
/// manifest: no reload of its activations).
pub type LandingCache = Arc<Mutex<Option<Arc<AtlasLanding>>>>;

/// Runs `f` with the model at `path`, loading it first when the cache holds another one (or
/// none). Jobs take turns: one holds the model at a time.
fn with_model<T, P, R>(
    cache: &ModelCache,
    path: &Path,
    reporter: &Reporter<T, P>,
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

/// The atlas at `root` ready for landing, from the cache when it holds the same atlas.
pub fn atlas_landing(cache: &LandingCache, root: &Path) -> Result<Arc<AtlasLanding>> {
    let manifest = AtlasManifest::load(root)?;
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = guard.as_ref() {
        if l.root == root && l.manifest == manifest {
            return Ok(l.clone());
        }
    }
    *guard = None;
    let l = Arc::new(AtlasLanding::load(root)?);
    *guard = Some(l.clone());
    Ok(l)
}

/// An atlas to place the image's vectors on.
#[derive(Clone, Debug, PartialEq)]
pub struct AtlasTarget {
    pub root: PathBuf,
    /// The level whose icons the activation grid shows.
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

/// Where the image's vectors land on an atlas.
pub struct Landing {
    pub root: PathBuf,
    /// The level whose icons the activation grid shows.
    pub grid: usize,
    /// Per position (row `y·w + x`).
    pub landed: Landed,
}

/// One image through the model.
pub struct Analysis {
    pub request: AnalysisRequest,
    pub analysis: ImageAnalysis,
    pub layer_index: usize,
    pub class_names: Vec<String>,
    /// How the image was prepared: the atlas's run's preprocessing when there is an atlas (so
    /// the vectors are comparable with the atlas's), else the model's classification one.
    pub preprocess: Preprocess,
    pub landing: Option<Landing>,
    /// Why the vectors were not placed on the atlas (e.g. a class comparison, whose axes are
    /// not a layout of the activations).
    pub landing_error: Option<String>,
}

pub fn spawn_analysis(
    cache: ModelCache,
    landing: LandingCache,
    req: AnalysisRequest,
) -> JobHandle<Analysis> {
    jobs::spawn_job("one-image", move |reporter, cancel| {
        with_model(&cache, &req.model, reporter, |model| {
            analyse(model, &landing, req.clone(), reporter, cancel)
        })
    })
}

fn analyse(
    model: &AtlasModel,
    landing_cache: &LandingCache,
    request: AnalysisRequest,
    reporter: &Reporter<Analysis>,
    cancel: &CancelToken,
) -> Result<Finish<Analysis>> {
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
        return Ok(Finish::Cancelled);
    }
    let mut landing_error = None;
    let atlas = match &request.atlas {
        Some(target) => {
            reporter.progress("reading the atlas's points", 0, 4);
            match atlas_landing(landing_cache, &target.root) {
                Ok(l) => Some((target, l)),
                Err(e) => {
                    landing_error = Some(format!("{e:#}"));
                    None
                }
            }
        }
        None => None,
    };
    if cancel.is_cancelled() {
        return Ok(Finish::Cancelled);
    }
    let preprocess = atlas
        .as_ref()
        .map_or_else(|| info.classify_preprocess(), |(_, l)| l.preprocess);
    reporter.progress("reading the image", 1, 4);
    let input = load_input(model, &request.image, preprocess)?;
    reporter.progress("running the model", 2, 4);
    let analysis = analyse_input(model, input, layer_index)?;
    if cancel.is_cancelled() {
        return Ok(Finish::Cancelled);
    }
    let landing = match atlas {
        Some((target, l)) => {
            reporter.progress("placing the vectors on the atlas", 3, 4);
            Some(Landing {
                root: target.root.clone(),
                grid: target.grid,
                landed: l.land(&analysis.acts, analysis.c)?,
            })
        }
        None => None,
    };
    reporter.progress("done", 4, 4);
    Ok(Finish::Done(Analysis {
        request,
        layer_index,
        class_names: info.classes.iter().map(|c| c.name.clone()).collect(),
        analysis,
        preprocess,
        landing,
        landing_error,
    }))
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
    jobs::spawn_job("one-image-attribution", move |reporter, cancel| {
        with_model(&cache, &model, reporter, |model| {
            if cancel.is_cancelled() {
                return Ok(Finish::Cancelled);
            }
            reporter.progress("attribution", 0, 1);
            let values = attribution_map_for_input(model, &input, layer, class)?;
            Ok(Finish::Done(AttrMap { class, values }))
        })
    })
}

/// Icons of the positions `first..first + images.len()`, as they are rendered.
pub struct IconBatch {
    pub first: usize,
    pub images: Vec<ColorImage>,
}

pub struct OptimizeRequest {
    pub model: PathBuf,
    pub layer: usize,
    /// `[positions, c]` activation vectors.
    pub acts: Vec<f32>,
    pub c: usize,
    /// The atlas's `whitening.npy` (used when `settings.whiten`).
    pub whitening: Option<PathBuf>,
    pub settings: RenderSettings,
}

/// Renders one feature-visualization icon per activation vector, a batch at a time; every batch
/// arrives as a partial result, and the job ends with `Done(())`.
pub fn spawn_optimize(cache: ModelCache, req: OptimizeRequest) -> JobHandle<(), IconBatch> {
    jobs::spawn_job("one-image-icons", move |reporter, cancel| {
        with_model(&cache, &req.model, reporter, |model| {
            optimize(model, &req, reporter, cancel)
        })
    })
}

fn optimize(
    model: &AtlasModel,
    req: &OptimizeRequest,
    reporter: &Reporter<(), IconBatch>,
    cancel: &CancelToken,
) -> Result<Finish<()>> {
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
                    "optimizing icons",
                    (first as f32 + f * count as f32) as u64,
                    n as u64,
                )
            },
            &|| cancel.is_cancelled(),
        )?
        else {
            return Ok(Finish::Cancelled);
        };
        let images: Vec<ColorImage> = icons
            .images
            .iter()
            .map(|img| {
                ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
            })
            .collect();
        reporter.progress("optimizing icons", (first + count) as u64, n as u64);
        reporter.partial(IconBatch { first, images });
    }
    Ok(Finish::Done(()))
}
