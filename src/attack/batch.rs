//! Batch evaluation of patches over many images of one class (spec §8.3).
//!
//! For every image whose top-1 without a patch is the original class, every patch is pasted
//! - once at the **static** setting (one ratio and one corner for all images), and
//! - at every **dynamic** setting (each corner × each dynamic ratio, plus the static setting so
//!   that dynamic is never weaker than static); the image counts as flipped when any of them
//!   makes the target class top-1, and its dynamic P(target) is the largest over them.
//!
//! Images that were not correct before are classified once and skip the composites, as the
//! metrics only count correct-before images. All composites of an image go through the model in
//! batches of [`probe::BATCH`]; cancellation is checked between batches.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use image::RgbImage;
use rayon::prelude::*;

use super::composite::{corner_origin, paste, patch_side, prepare_background, resize_patch};
pub use super::table::{AttackTable, ClassName, PatchRow, RowKind};
use super::{load_image, model_side, probe, Corner};
use crate::data::decode::load_original;
use crate::data::{scan_folder, Problem};
use crate::jobs::{spawn, JobHandle};
use crate::layout::rng::Rng;
use crate::model::{default_device, AtlasModel, Sidecar};

/// The images to attack.
#[derive(Clone, Debug)]
pub enum ImageInput {
    /// Every image under a folder (sorted by path; unreadable files become problems).
    Folder(PathBuf),
    /// These files, in this order.
    Files(Vec<PathBuf>),
}

/// A patch: an image file (named after its file stem) or an image in memory with a name.
#[derive(Clone, Debug)]
pub enum PatchInput {
    File(PathBuf),
    Image { name: String, image: RgbImage },
}

impl PatchInput {
    pub fn name(&self) -> String {
        match self {
            PatchInput::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
            PatchInput::Image { name, .. } => name.clone(),
        }
    }

    /// The patch's pixels; a file that cannot be decoded is an error naming the patch.
    pub fn load(&self) -> Result<RgbImage> {
        match self {
            PatchInput::File(p) => {
                load_image(p).with_context(|| format!("patch {:?} cannot be used", self.name()))
            }
            PatchInput::Image { image, .. } => Ok(image.clone()),
        }
    }
}

/// A batch attack. [`BatchConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Atlas model (.pt with its .json sidecar).
    pub model: PathBuf,
    /// Images of the original class.
    pub images: ImageInput,
    pub patches: Vec<PatchInput>,
    /// Adds the control patch "noise": uniform RGB noise of the input size from this seed.
    pub noise_seed: Option<u64>,
    /// Logit indices (see [`resolve_class`]).
    pub original: usize,
    pub target: usize,
    /// The static protocol's setting (default 0.4 at the top-left corner: the size of the
    /// paper's single-image examples; the paper does not publish its static size).
    pub static_ratio: f64,
    pub static_corner: Corner,
    /// The dynamic protocol's settings (default: 0.1, 0.2, …, 0.8 at all four corners).
    pub dynamic_ratios: Vec<f64>,
    pub dynamic_corners: Vec<Corner>,
    /// Use only the first N images.
    pub limit: Option<usize>,
}

impl BatchConfig {
    pub fn new(
        model: impl Into<PathBuf>,
        images: ImageInput,
        patches: Vec<PatchInput>,
        original: usize,
        target: usize,
    ) -> Self {
        BatchConfig {
            model: model.into(),
            images,
            patches,
            noise_seed: None,
            original,
            target,
            static_ratio: 0.4,
            static_corner: Corner::TopLeft,
            dynamic_ratios: default_dynamic_ratios(),
            dynamic_corners: Corner::ALL.to_vec(),
            limit: None,
        }
    }
}

/// 0.1, 0.2, …, 0.8 (each `i·0.1`, as Python's `[i * 0.1 for i in range(1, 9)]`).
pub fn default_dynamic_ratios() -> Vec<f64> {
    (1..=8).map(|i| f64::from(i) * 0.1).collect()
}

/// A class given by logit index, synset (`n01440764`) or name (case-insensitive, `_` = space).
pub fn resolve_class(info: &Sidecar, s: &str) -> Result<usize> {
    let k = info.classes.len();
    if let Ok(i) = s.trim().parse::<usize>() {
        ensure!(
            i < k,
            "class index {i} is out of range: the model has {k} classes (0–{})",
            k - 1
        );
        return Ok(i);
    }
    if let Some(i) = info.class_index(s) {
        return Ok(i);
    }
    let needle = s.trim().to_lowercase().replace('_', " ");
    let near: Vec<&str> = info
        .classes
        .iter()
        .filter(|c| !needle.is_empty() && c.name.to_lowercase().contains(&needle))
        .map(|c| c.name.as_str())
        .take(5)
        .collect();
    let hint = if near.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", near.join(" / "))
    };
    bail!(
        "unknown class {s:?}: give an index (0–{}), a synset such as n01440764 or a class name \
         of {}{hint}",
        k - 1,
        info.name
    )
}

/// Uniform RGB noise, `side`×`side`, reproducible from `seed`.
pub fn noise_patch(seed: u64, side: u32) -> RgbImage {
    let mut rng = Rng::new(seed);
    let mut img = RgbImage::new(side, side);
    for b in img.iter_mut() {
        *b = rng.below(256) as u8;
    }
    img
}

/// What [`run_batch`] tells its caller while it works.
#[derive(Clone, Debug)]
pub enum BatchEvent {
    Progress {
        stage: &'static str,
        done: usize,
        total: usize,
    },
    /// An image that was skipped, with the reason.
    Problem(Problem),
    Log(String),
    /// The table over the images done so far.
    Partial(AttackTable),
}

/// The error [`run_batch`] returns when `cancel()` said stop (test with `e.is::<Cancelled>()`).
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the patch attack was cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Stage names, in order.
pub const STAGE_PATCHES: &str = "classifying the patches";
pub const STAGE_BEFORE: &str = "classifying the images without a patch";
pub const STAGE_ATTACK: &str = "pasting patches";

/// Images decoded and classified together in the first stage.
const CHUNK: usize = probe::BATCH;

/// Per-patch running sums over the correct-before images.
#[derive(Clone, Default)]
struct Sums {
    flipped_static: usize,
    flipped_dynamic: usize,
    p_static: f64,
    p_dynamic: f64,
}

impl Sums {
    /// Adds one image: `probs` are the patch's composites at every setting, the static one
    /// first.
    fn add(&mut self, probs: &[Vec<f32>], target: usize) {
        let flips = |p: &Vec<f32>| probe::top1(p).0 == target;
        self.flipped_static += usize::from(flips(&probs[0]));
        self.flipped_dynamic += usize::from(probs.iter().any(flips));
        self.p_static += f64::from(probs[0][target]);
        self.p_dynamic += probs
            .iter()
            .map(|p| f64::from(p[target]))
            .fold(0.0, f64::max);
    }
}

/// A patch ready to paste: its row name, its kind and its pixels.
type Patch = (String, RowKind, RgbImage);

/// Runs the whole evaluation on this thread. Fails on a bad model, patch file or class; skips
/// (and reports) unreadable images; returns `Err(Cancelled)` when `cancel()` turns true.
pub fn run_batch(
    config: &BatchConfig,
    cancel: &dyn Fn() -> bool,
    events: &mut dyn FnMut(BatchEvent),
) -> Result<AttackTable> {
    let started = Instant::now();
    let model = AtlasModel::load(&config.model, default_device())?;
    let side = model_side(&model)?;
    check_config(config, model.num_classes())?;
    // Patches first: a bad patch file should fail before minutes of classification.
    let patches = load_patches(config, side)?;
    let mut paths = list_images(&config.images, events)?;
    if let Some(n) = config.limit {
        paths.truncate(n);
    }
    ensure!(!paths.is_empty(), "no images to attack");
    events(BatchEvent::Progress {
        stage: STAGE_PATCHES,
        done: 0,
        total: patches.len(),
    });
    let attack = Attack::new(config, &model, side, patches)?;
    let mut table = attack.empty_table(paths.len());

    // Stage 1: every image without a patch; keep the backgrounds of the correct ones.
    let correct = attack.classify_backgrounds(&paths, &mut table, cancel, events)?;
    events(BatchEvent::Log(format!(
        "{} of {} images read are {} without a patch",
        correct.len(),
        table.images_read,
        table.original.name
    )));

    // Stage 2: the composites of the correct images.
    let p_before: Vec<f32> = correct.iter().map(|(_, p)| *p).collect();
    let mut sums = vec![Sums::default(); attack.patches.len()];
    for (done, (bg, _)) in correct.iter().enumerate() {
        let probs = attack.classify_composites(bg, cancel)?;
        table.composites += probs.len();
        for (s, mine) in sums.iter_mut().zip(probs.chunks(attack.settings.len())) {
            s.add(mine, config.target);
        }
        table.images_done = done + 1;
        table.rows = attack.rows(&sums, &p_before[..=done], table.images_read);
        table.elapsed_s = started.elapsed().as_secs_f64();
        events(BatchEvent::Progress {
            stage: STAGE_ATTACK,
            done: done + 1,
            total: correct.len(),
        });
        events(BatchEvent::Partial(table.clone()));
    }
    table.images_done = table.images_read;
    table.rows = attack.rows(&sums, &p_before, table.images_read);
    table.elapsed_s = started.elapsed().as_secs_f64();
    Ok(table)
}

/// Fails on classes out of range or equal, ratios outside (0, 1], or nothing to paste.
fn check_config(config: &BatchConfig, classes: usize) -> Result<()> {
    let k = classes;
    for (what, c) in [("original", config.original), ("target", config.target)] {
        ensure!(
            c < k,
            "the {what} class {c} is out of range (the model has {k} classes)"
        );
    }
    ensure!(
        config.original != config.target,
        "the original and target classes are the same"
    );
    ensure!(
        config.static_ratio > 0.0 && config.static_ratio <= 1.0,
        "the static ratio {} is not in (0, 1]",
        config.static_ratio
    );
    if let Some(r) = config
        .dynamic_ratios
        .iter()
        .find(|r| !(**r > 0.0 && **r <= 1.0))
    {
        bail!("the dynamic ratio {r} is not in (0, 1]");
    }
    ensure!(
        !config.patches.is_empty() || config.noise_seed.is_some(),
        "no patches given"
    );
    Ok(())
}

/// The photo patches in the given order, then the noise control when asked for.
fn load_patches(config: &BatchConfig, side: u32) -> Result<Vec<Patch>> {
    let mut patches: Vec<Patch> = Vec::new();
    for p in &config.patches {
        patches.push((p.name(), RowKind::Patch, p.load()?));
    }
    if let Some(seed) = config.noise_seed {
        patches.push(("noise".into(), RowKind::Noise, noise_patch(seed, side)));
    }
    Ok(patches)
}

/// The (corner, patch side) settings every patch is pasted at: the static one first, then each
/// distinct dynamic one.
fn paste_settings(config: &BatchConfig, side: u32) -> Vec<(Corner, u32)> {
    let static_setting = (config.static_corner, patch_side(config.static_ratio, side));
    let mut settings = vec![static_setting];
    for &c in &config.dynamic_corners {
        for &r in &config.dynamic_ratios {
            let s = (c, patch_side(r, side));
            if s.1 > 0 && !settings.contains(&s) {
                settings.push(s);
            }
        }
    }
    settings
}

/// The model, the patches and everything about them that does not depend on the image.
struct Attack<'a> {
    config: &'a BatchConfig,
    model: &'a AtlasModel,
    /// The model's (square) input side.
    side: u32,
    patches: Vec<Patch>,
    /// Probabilities of each patch alone, resized to the input size.
    alone: Vec<Vec<f32>>,
    settings: Vec<(Corner, u32)>,
    /// Every patch resized once per side length: (patch index, side) → pixels.
    resized: HashMap<(usize, u32), RgbImage>,
}

impl<'a> Attack<'a> {
    /// Classifies the patches alone and resizes them for every setting.
    fn new(
        config: &'a BatchConfig,
        model: &'a AtlasModel,
        side: u32,
        patches: Vec<Patch>,
    ) -> Result<Self> {
        let alone: Vec<RgbImage> = patches
            .iter()
            .map(|(_, _, img)| resize_patch(img, side))
            .collect();
        let alone = probe::probabilities(model, &alone)?;
        let settings = paste_settings(config, side);
        let mut resized: HashMap<(usize, u32), RgbImage> = HashMap::new();
        for (pi, (_, _, img)) in patches.iter().enumerate() {
            for &(_, w) in &settings {
                resized
                    .entry((pi, w))
                    .or_insert_with(|| resize_patch(img, w));
            }
        }
        Ok(Attack {
            config,
            model,
            side,
            patches,
            alone,
            settings,
            resized,
        })
    }

    fn class(&self, index: usize) -> ClassName {
        ClassName {
            index,
            name: self.model.info.classes[index].name.clone(),
        }
    }

    /// The table before any image: the settings, `listed` images and no rows.
    fn empty_table(&self, listed: usize) -> AttackTable {
        let config = self.config;
        AttackTable {
            model: self.model.info.name.clone(),
            original: self.class(config.original),
            target: self.class(config.target),
            static_ratio: config.static_ratio,
            static_corner: config.static_corner,
            dynamic_ratios: config.dynamic_ratios.clone(),
            dynamic_corners: config.dynamic_corners.clone(),
            images_listed: listed,
            images_read: 0,
            images_done: 0,
            rows: Vec::new(),
            problems: Vec::new(),
            composites: self.patches.len(),
            elapsed_s: 0.0,
        }
    }

    /// Stage 1: decodes and classifies the images without a patch, chunk by chunk; unreadable
    /// ones become problems. Returns the backgrounds whose top-1 is the original class, with
    /// their P(target).
    fn classify_backgrounds(
        &self,
        paths: &[PathBuf],
        table: &mut AttackTable,
        cancel: &dyn Fn() -> bool,
        events: &mut dyn FnMut(BatchEvent),
    ) -> Result<Vec<(RgbImage, f32)>> {
        let (original, target) = (self.config.original, self.config.target);
        let mut correct = Vec::new();
        for (ci, chunk) in paths.chunks(CHUNK).enumerate() {
            if cancel() {
                bail!(Cancelled);
            }
            let decoded: Vec<Result<RgbImage, String>> = chunk
                .par_iter()
                .map(|p| load_original(p).map(|img| prepare_background(&img, self.side)))
                .collect();
            let mut backgrounds = Vec::new();
            for (path, d) in chunk.iter().zip(decoded) {
                match d {
                    Ok(img) => backgrounds.push(img),
                    Err(reason) => {
                        let problem = Problem {
                            path: path.clone(),
                            reason,
                        };
                        table.problems.push(problem.clone());
                        events(BatchEvent::Problem(problem));
                    }
                }
            }
            let probs = probe::probabilities(self.model, &backgrounds)?;
            table.images_read += backgrounds.len();
            table.composites += backgrounds.len();
            for (bg, p) in backgrounds.into_iter().zip(probs) {
                if probe::top1(&p).0 == original {
                    correct.push((bg, p[target]));
                }
            }
            events(BatchEvent::Progress {
                stage: STAGE_BEFORE,
                done: (ci * CHUNK + chunk.len()).min(paths.len()),
                total: paths.len(),
            });
        }
        Ok(correct)
    }

    /// Stage 2 for one background: every patch at every setting, in batches (cancellation is
    /// checked between them). Probabilities by patch, then setting.
    fn classify_composites(
        &self,
        bg: &RgbImage,
        cancel: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<f32>>> {
        let jobs: Vec<(usize, usize)> = (0..self.patches.len())
            .flat_map(|pi| (0..self.settings.len()).map(move |si| (pi, si)))
            .collect();
        let mut probs: Vec<Vec<f32>> = Vec::with_capacity(jobs.len());
        for batch in jobs.chunks(probe::BATCH) {
            if cancel() {
                bail!(Cancelled);
            }
            let images: Vec<RgbImage> = batch
                .iter()
                .map(|&(pi, si)| {
                    let (corner, w) = self.settings[si];
                    let (x, y) = corner_origin(corner, self.side, w);
                    paste(bg, &self.resized[&(pi, w)], i64::from(x), i64::from(y))
                })
                .collect();
            probs.extend(probe::probabilities(self.model, &images)?);
        }
        Ok(probs)
    }

    /// The patch rows over the first `p_before.len()` correct images (`p_before`: their
    /// P(target) without a patch).
    fn rows(&self, sums: &[Sums], p_before: &[f32], images_read: usize) -> Vec<PatchRow> {
        let n = p_before.len();
        let mean = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
        let p_before_sum: f64 = p_before.iter().map(|p| f64::from(*p)).sum();
        self.patches
            .iter()
            .zip(sums)
            .zip(&self.alone)
            .map(|(((name, kind, _), s), a)| {
                let (c, p) = probe::top1(a);
                PatchRow {
                    kind: *kind,
                    patch: name.clone(),
                    patch_class: Some(self.class(c)),
                    patch_prob: p,
                    images_read,
                    correct_before: n,
                    flipped_static: s.flipped_static,
                    flipped_dynamic: s.flipped_dynamic,
                    p_target_before: mean(p_before_sum),
                    p_target_static: mean(s.p_static),
                    p_target_dynamic: mean(s.p_dynamic),
                }
            })
            .collect()
    }
}

fn list_images(input: &ImageInput, events: &mut dyn FnMut(BatchEvent)) -> Result<Vec<PathBuf>> {
    match input {
        ImageInput::Files(files) => Ok(files.clone()),
        ImageInput::Folder(dir) => {
            let report = scan_folder(dir)?;
            for p in report.problems {
                events(BatchEvent::Problem(p));
            }
            Ok(report.images.into_iter().map(|e| e.path).collect())
        }
    }
}

/// [`run_batch`] on a job thread: progress with stage names, skipped images as problems, the
/// table so far as partials after every attacked image, and the final table.
pub fn spawn_batch(config: BatchConfig) -> JobHandle<AttackTable> {
    spawn("patch-attack", move |reporter, cancel| {
        let result = run_batch(&config, &|| cancel.is_cancelled(), &mut |ev| match ev {
            BatchEvent::Progress { stage, done, total } => {
                reporter.progress(stage, done as u64, total as u64)
            }
            BatchEvent::Problem(p) => reporter.problem(p),
            BatchEvent::Log(line) => reporter.log(line),
            BatchEvent::Partial(t) => reporter.partial(t),
        });
        match result {
            Ok(table) => Ok(Some(table)),
            Err(e) if e.is::<Cancelled>() => Ok(None),
            Err(e) => Err(e),
        }
    })
}

/// Patch files from a comma-separated list, where each item is a file or a folder (its images,
/// sorted).
pub fn patch_files(list: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let path = Path::new(item);
        if path.is_dir() {
            let report = scan_folder(path)?;
            ensure!(
                !report.images.is_empty(),
                "patch folder {} holds no images",
                path.display()
            );
            out.extend(report.images.into_iter().map(|e| e.path));
        } else {
            out.push(path.to_path_buf());
        }
    }
    ensure!(!out.is_empty(), "no patches given");
    Ok(out)
}

/// A folder (all its images) or a single image file.
pub fn image_input(path: &Path) -> ImageInput {
    if path.is_dir() {
        ImageInput::Folder(path.to_path_buf())
    } else {
        ImageInput::Files(vec![path.to_path_buf()])
    }
}

/// Comma-separated ratios such as `0.1,0.2,0.4`, each in (0, 1].
pub fn parse_ratios(s: &str) -> Result<Vec<f64>> {
    let ratios = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let r: f64 = t
                .parse()
                .with_context(|| format!("{t:?} is not a number (ratios look like 0.4)"))?;
            ensure!(r > 0.0 && r <= 1.0, "ratio {t} is not in (0, 1]");
            Ok(r)
        })
        .collect::<Result<Vec<f64>>>()?;
    ensure!(!ratios.is_empty(), "no ratios given");
    Ok(ratios)
}

/// A corner label, or an error listing the labels.
pub fn parse_corner(s: &str) -> Result<Corner> {
    Corner::parse(s).with_context(|| {
        let labels: Vec<&str> = Corner::ALL.iter().map(|c| c.label()).collect();
        format!("unknown corner {s:?}: use one of {}", labels.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dynamic_ratios_are_tenths() {
        let r = default_dynamic_ratios();
        assert_eq!(r.len(), 8);
        assert_eq!(patch_side(r[0], 224), 22);
        assert_eq!(patch_side(r[2], 224), 67); // 0.30000000000000004 · 224 = 67.2
        assert_eq!(patch_side(r[7], 224), 179);
    }

    #[test]
    fn ratio_and_corner_parsing_explain_errors() {
        assert_eq!(parse_ratios("0.1, 0.5").unwrap(), vec![0.1, 0.5]);
        assert!(format!("{:#}", parse_ratios("0.1,x").unwrap_err()).contains("not a number"));
        assert!(format!("{:#}", parse_ratios("1.5").unwrap_err()).contains("not in (0, 1]"));
        assert_eq!(parse_corner("top-right").unwrap(), Corner::TopRight);
        assert!(format!("{:#}", parse_corner("middle").unwrap_err()).contains("top-left"));
    }

    #[test]
    fn noise_is_reproducible_and_spread() {
        let a = noise_patch(7, 16);
        assert_eq!(a, noise_patch(7, 16));
        assert_ne!(a, noise_patch(8, 16));
        let mean = a.iter().map(|&b| f64::from(b)).sum::<f64>() / a.len() as f64;
        assert!((mean - 127.5).abs() < 15.0, "mean {mean}");
    }
}
