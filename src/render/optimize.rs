//! Optimizing many icons at once (spec §4.6): Adam 0.05 on the Fourier coefficients, the summed
//! per-icon objective (each icon's gradient depends only on its own image), several tries from
//! fresh random starts, and per icon the try with the best score kept.
use anyhow::{ensure, Result};
use image::RgbImage;
use tch::{Kind, Tensor};

use super::maco::{alpha_from_attribution, MacoImage, Magnitude};
use super::objective::{boundary_penalty, centre_vectors, Objective, BOUNDARY_BAND};
use super::param::FftImage;
use super::transforms::{Crops, TransformStack};
use crate::layout::rng::Rng;
use crate::model::AtlasModel;

/// How icon images are parameterized and transformed.
#[derive(Clone, Debug, PartialEq)]
pub enum IconMethod {
    /// lucid's FFT + decorrelated colour (spec §4.3) with `transforms` (the `paper` recipe).
    Lucid,
    /// MACO: fixed magnitude spectrum, trainable phase, random crops (see [`MacoSettings`]).
    Maco(MacoSettings),
    /// Feature accentuation: lucid's FFT parameterization started from a real patch (the cell's
    /// exemplar) and kept near it (see [`AccentSettings`], [`render_accented`]).
    Accent(AccentSettings),
}

impl IconMethod {
    /// `lucid` (or `paper`), `maco` (the tuned MACO defaults) or `accent`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "lucid" | "paper" => Ok(IconMethod::Lucid),
            "maco" => Ok(IconMethod::Maco(MacoSettings::default())),
            "accent" => Ok(IconMethod::Accent(AccentSettings::default())),
            other => {
                anyhow::bail!("icon method must be lucid (paper), maco or accent, not {other:?}")
            }
        }
    }

    /// Whether icons start from each cell's exemplar patch (and so need them).
    pub fn needs_seeds(&self) -> bool {
        matches!(self, IconMethod::Accent(_))
    }

    pub fn name(&self) -> &'static str {
        match self {
            IconMethod::Lucid => "lucid",
            IconMethod::Maco(_) => "maco",
            IconMethod::Accent(_) => "accent",
        }
    }

    /// A short description for cache keys and manifests.
    pub fn describe(&self) -> String {
        match self {
            IconMethod::Lucid => "lucid".into(),
            IconMethod::Maco(m) => {
                let spectrum = match &m.magnitude {
                    None if m.own_spectrum => "own".to_string(),
                    None => "default".to_string(),
                    Some(s) => format!(
                        "own:{}x{}:{:.6e}",
                        s.width,
                        s.height,
                        s.values.iter().map(|v| *v as f64).sum::<f64>()
                    ),
                };
                format!(
                    "maco spectrum={spectrum} crops={:?} gain={} alpha_mask={} all_positions={}",
                    m.crops, m.gain, m.alpha_mask, m.all_positions
                )
            }
            IconMethod::Accent(a) => format!(
                "accent crops={:?} distance_weight={} all_positions={}",
                a.crops, a.distance_weight, a.all_positions
            ),
        }
    }
}

/// The MACO recipe's knobs (spec feature-visualisation-modern.md §7, tuned with
/// scripts/legibility.py, see docs/legibility.md).
#[derive(Clone, Debug, PartialEq)]
pub struct MacoSettings {
    /// The fixed magnitude; `None`: the built-in ImageNet-like spectrum at the icon size, or,
    /// with `own_spectrum`, the one `atlas build` estimates from the run's images.
    pub magnitude: Option<Magnitude>,
    /// Estimate the magnitude from the user's own images (MACO's "own spectrum") where a build
    /// has them, instead of the built-in ImageNet one.
    pub own_spectrum: bool,
    pub crops: Crops,
    /// Contrast of the standardized image before the sigmoid.
    pub gain: f64,
    /// Composite each icon over white with its attribution alpha (accumulated |∂obj/∂pixel|).
    pub alpha_mask: bool,
    /// The objective averaged over every position of the layer output instead of read at its
    /// centre (what a classifier's global pooling sees).
    pub all_positions: bool,
}

impl Default for MacoSettings {
    fn default() -> Self {
        MacoSettings {
            magnitude: None,
            own_spectrum: false,
            crops: Crops {
                crops: 2,
                min_side: 0.6,
                max_side: 1.0,
                centre_sd: 0.1,
                noise: 0.02,
            },
            gain: 1.0,
            alpha_mask: false,
            all_positions: true,
        }
    }
}

/// Feature accentuation's knobs (spec feature-visualisation-modern.md §5): the icon starts as
/// the cell's exemplar patch, and each step maximizes the objective relative to the patch's own
/// value minus `distance_weight` × the mean squared pixel change in units of 0.1² (a 10% RMS
/// change costs as much as doubling the objective). It uses MACO's crops, not lucid's stack.
#[derive(Clone, Debug, PartialEq)]
pub struct AccentSettings {
    pub crops: Crops,
    pub distance_weight: f64,
    pub all_positions: bool,
}

impl Default for AccentSettings {
    fn default() -> Self {
        AccentSettings {
            crops: MacoSettings::default().crops,
            distance_weight: 1.0,
            all_positions: true,
        }
    }
}

/// Everything that decides how icons are rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderSettings {
    /// Icon side in pixels (80 in the published atlases).
    pub size: i64,
    pub steps: usize,
    pub tries: usize,
    /// Icons optimized together as one image batch.
    pub batch: usize,
    pub learning_rate: f64,
    pub transforms: TransformStack,
    /// lucid (with `transforms`) or MACO (with its own crops; `transforms` unused).
    pub method: IconMethod,
    pub objective: Objective,
    /// Weight of lucid's `penalize_boundary_complexity(w=5)`, subtracted from each icon's
    /// objective (spec §4.5: weight 1 in the REC code; 0 = off). Off in the presets: the
    /// objective's scale depends on the model, and on EfficientNet-Lite0 (ReLU6 activations,
    /// notebook form dividing by C) it is ~1e-4 while the penalty of a coloured border is ~10, so
    /// weight 1 turns every icon mid-grey (measured: saturation 0.005, 0/30 icons recognized).
    pub boundary_penalty: f64,
    /// Whether directions are whitened with the layer's inverse second moment (spec §4.2).
    pub whiten: bool,
    /// A try's score is the mean objective of its last `score_window` steps (the final value
    /// alone is noisy because of the random transforms).
    pub score_window: usize,
    pub seed: u64,
}

impl RenderSettings {
    /// Quick look: 128 steps, one try.
    pub fn preview() -> Self {
        RenderSettings {
            size: 80,
            steps: 128,
            tries: 1,
            batch: 32,
            learning_rate: 0.05,
            transforms: TransformStack::Rec,
            method: IconMethod::Lucid,
            objective: Objective::default(),
            boundary_penalty: 0.0,
            whiten: true,
            score_window: 8,
            seed: 0,
        }
    }

    /// The published atlases' settings: 1024 steps, 4 tries, batches of 100.
    pub fn paper() -> Self {
        RenderSettings {
            steps: 1024,
            tries: 4,
            batch: 100,
            ..Self::preview()
        }
    }

    /// MACO icons (phase-only, fixed natural-image magnitude, random crops), see
    /// [`MacoSettings`], with the objective tuned for legibility on EfficientNet-Lite0
    /// (docs/legibility.md): the clean cosine form against the *raw* direction (no whitening),
    /// averaged over all positions. The same step budget as the preview.
    pub fn maco() -> Self {
        RenderSettings {
            method: IconMethod::Maco(MacoSettings::default()),
            learning_rate: 0.1,
            whiten: false,
            objective: Objective {
                form: super::objective::CosineForm::Clean,
                cossim_power: 4.0,
            },
            ..Self::preview()
        }
    }

    /// Feature accentuation of each cell's exemplar with MACO's objective (clean cosine, raw
    /// direction, all positions), lucid's learning rate, the preview's step budget.
    pub fn accent() -> Self {
        RenderSettings {
            method: IconMethod::Accent(AccentSettings::default()),
            ..Self::maco()
        }
        .with_learning_rate(0.05)
    }

    fn with_learning_rate(mut self, lr: f64) -> Self {
        self.learning_rate = lr;
        self
    }

    /// The names [`RenderSettings::preset`] takes.
    pub const PRESETS: [&'static str; 4] = ["preview", "paper", "maco", "accent"];

    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "preview" => Ok(Self::preview()),
            "paper" => Ok(Self::paper()),
            "maco" => Ok(Self::maco()),
            "accent" => Ok(Self::accent()),
            other => anyhow::bail!(
                "icon preset must be one of {}, not {other:?}",
                Self::PRESETS.join(", ")
            ),
        }
    }
}

/// The icons of one batch and the score each one's kept try reached.
pub struct RenderedIcons {
    pub images: Vec<RgbImage>,
    pub scores: Vec<f32>,
}

/// The objective `[B]` of the images and its gradient with respect to the Fourier coefficients,
/// after one draw of the transforms. `directions` `[B,C]` are already whitened if wanted. With
/// `boundary` > 0, that multiple of each icon's boundary penalty (on the untransformed image) is
/// subtracted.
#[allow(clippy::too_many_arguments)]
pub fn objective_and_gradient(
    model: &AtlasModel,
    layer: usize,
    image: &FftImage,
    directions: &Tensor,
    objective: &Objective,
    transforms: TransformStack,
    boundary: f64,
    rng: &mut Rng,
) -> Result<(Tensor, Tensor)> {
    let rgb = image.rgb();
    let x = transforms.apply(&rgb, rng, image.height);
    let out = model.forward(&x)?;
    let h = centre_vectors(&out.layers[layer]);
    let obj = objective.per_icon(&h, directions);
    // Out of place: the penalty must not modify a tensor autograd may have saved.
    let obj = if boundary > 0.0 {
        obj - boundary_penalty(&rgb, BOUNDARY_BAND) * boundary
    } else {
        obj
    };
    let loss = -obj.sum(Kind::Float);
    let mut grads = Tensor::f_run_backward(&[&loss], &[&image.spectrum], false, false)?;
    Ok((obj.detach(), -grads.remove(0)))
}

/// The MACO objective `[B]` (mean over each icon's crops), its gradient with respect to the
/// phases and with respect to the pixels `[B,3,h,w]` (the attribution the alpha mask sums).
#[allow(clippy::too_many_arguments)]
pub fn maco_objective_and_gradient(
    model: &AtlasModel,
    layer: usize,
    image: &MacoImage,
    directions: &Tensor,
    objective: &Objective,
    crops: &Crops,
    all_positions: bool,
    rng: &mut Rng,
) -> Result<(Tensor, Tensor, Tensor)> {
    let rgb = image.rgb();
    let obj = crops_objective(
        model,
        layer,
        &rgb,
        directions,
        objective,
        crops,
        all_positions,
        rng,
    )?;
    let loss = -obj.sum(Kind::Float);
    let mut grads = Tensor::f_run_backward(&[&loss], &[&image.phase, &rgb], false, false)?;
    let pixels = -grads.remove(1);
    Ok((obj.detach(), -grads.remove(0), pixels))
}

/// The objective `[B]` of images `rgb` `[B,3,h,w]` seen through one draw of `crops` (mean over
/// each icon's copies), at the layer output's centre or averaged over all its positions.
/// Differentiable with respect to `rgb`.
#[allow(clippy::too_many_arguments)]
pub fn crops_objective(
    model: &AtlasModel,
    layer: usize,
    rgb: &Tensor,
    directions: &Tensor,
    objective: &Objective,
    crops: &Crops,
    all_positions: bool,
    rng: &mut Rng,
) -> Result<Tensor> {
    let b = rgb.size()[0];
    let k = crops.crops.max(1) as i64;
    let x = if crops.crops == 0 {
        rgb.shallow_clone()
    } else {
        crops.apply(rgb, rng, rgb.size()[2])
    };
    let out = model.forward(&x)?;
    let dirs = directions.repeat([k, 1]);
    let per_copy = if all_positions {
        // Every position `[k·B·h·w, C]` against its icon's direction, averaged per copy.
        let a = &out.layers[layer];
        let sz = a.size();
        let positions = sz[2] * sz[3];
        let flat = a.permute([0, 2, 3, 1]).reshape([-1, sz[1]]);
        objective
            .per_icon(&flat, &dirs.repeat_interleave_self_int(positions, 0, None))
            .view([k * b, positions])
            .mean_dim([1i64].as_slice(), false, Kind::Float)
    } else {
        objective.per_icon(&centre_vectors(&out.layers[layer]), &dirs)
    };
    Ok(per_copy
        .view([k, b])
        .mean_dim([0i64].as_slice(), false, Kind::Float))
}

/// Feature accentuation's score `[B]` and its gradient with respect to the coefficients: the
/// objective relative to `reference` (the seed's own objective, `[B]`, positive) minus the
/// weighted mean squared pixel change from `seed`, in units of 0.1². Also returns the raw
/// objective `[B]` (for the kept score).
#[allow(clippy::too_many_arguments)]
pub fn accent_score_and_gradient(
    model: &AtlasModel,
    layer: usize,
    image: &FftImage,
    seed: &Tensor,
    reference: &Tensor,
    directions: &Tensor,
    objective: &Objective,
    accent: &AccentSettings,
    rng: &mut Rng,
) -> Result<(Tensor, Tensor, Tensor)> {
    let rgb = image.rgb();
    let obj = crops_objective(
        model,
        layer,
        &rgb,
        directions,
        objective,
        &accent.crops,
        accent.all_positions,
        rng,
    )?;
    let change = (&rgb - seed)
        .square()
        .mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float)
        / ACCENT_PIXEL_SCALE.powi(2);
    let score = &obj / reference - change * accent.distance_weight;
    let loss = -score.sum(Kind::Float);
    let mut grads = Tensor::f_run_backward(&[&loss], &[&image.spectrum], false, false)?;
    Ok((score.detach(), -grads.remove(0), obj.detach()))
}

/// The pixel change (RMS, in [0,1] units) that accentuation's distance term counts as 1.
pub const ACCENT_PIXEL_SCALE: f64 = 0.1;

/// Adam as TensorFlow implements it (lucid's optimizer): bias correction folded into the step.
struct Adam {
    lr: f64,
    m: Tensor,
    v: Tensor,
    t: i32,
}

impl Adam {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(lr: f64, like: &Tensor) -> Self {
        Adam {
            lr,
            m: like.zeros_like(),
            v: like.zeros_like(),
            t: 0,
        }
    }

    /// Moves `param` along `ascent` (the gradient of what is maximized).
    fn step(&mut self, param: &mut Tensor, ascent: &Tensor) {
        self.t += 1;
        tch::no_grad(|| {
            self.m = &self.m * Self::B1 + ascent * (1.0 - Self::B1);
            self.v = &self.v * Self::B2 + ascent.square() * (1.0 - Self::B2);
            let lr_t =
                self.lr * (1.0 - Self::B2.powi(self.t)).sqrt() / (1.0 - Self::B1.powi(self.t));
            let update = &self.m / (self.v.sqrt() + Self::EPS) * lr_t;
            let _ = param.g_add_(&update);
        });
    }
}

/// Renders one icon per row of `directions` `[B,C]` (already whitened if wanted) for layer
/// index `layer`. `progress(fraction)` after every step; `Ok(None)` when `cancel` says so.
pub fn render_batch(
    model: &AtlasModel,
    layer: usize,
    directions: &Tensor,
    settings: &RenderSettings,
    batch_seed: u64,
    progress: &mut dyn FnMut(f32),
    cancel: &dyn Fn() -> bool,
) -> Result<Option<RenderedIcons>> {
    ensure!(directions.dim() == 2, "directions must be [B, C]");
    ensure!(
        settings.steps > 0 && settings.tries > 0,
        "need at least one step and one try"
    );
    let channels = model.info.layers[layer].channels;
    ensure!(
        directions.size()[1] == channels,
        "directions have {} channels, layer {:?} has {channels}",
        directions.size()[1],
        model.info.layers[layer].name
    );
    let b = directions.size()[0];
    let dirs = directions.to_device(model.device).to_kind(Kind::Float);
    match &settings.method {
        IconMethod::Maco(maco) => {
            return render_maco(
                model, layer, &dirs, settings, maco, batch_seed, progress, cancel,
            )
        }
        IconMethod::Accent(_) => anyhow::bail!(
            "accentuation starts from each cell's exemplar patch: call render_accented with them"
        ),
        IconMethod::Lucid => {}
    }
    let size = settings.size;
    let mut best = BestOfTries::new(b);
    let total = (settings.tries * settings.steps) as f32;
    let window = settings.score_window.clamp(1, settings.steps);
    for attempt in 0..settings.tries {
        let seed = batch_seed.wrapping_mul(31).wrapping_add(attempt as u64) ^ settings.seed;
        let mut rng = Rng::derived(seed, 0xF00D, attempt as u64);
        let mut image = FftImage::random(b, size, size, seed, model.device);
        let mut adam = Adam::new(settings.learning_rate, &image.spectrum);
        let mut score = Tensor::zeros([b], (Kind::Float, model.device));
        for step in 0..settings.steps {
            if cancel() {
                return Ok(None);
            }
            let (obj, ascent) = objective_and_gradient(
                model,
                layer,
                &image,
                &dirs,
                &settings.objective,
                settings.transforms,
                settings.boundary_penalty,
                &mut rng,
            )?;
            if step >= settings.steps - window {
                score += obj / window as f64;
            }
            adam.step(&mut image.spectrum, &ascent);
            progress((attempt * settings.steps + step + 1) as f32 / total);
        }
        let rgb = tch::no_grad(|| image.rgb());
        best.offer(rgb, &score)?;
    }
    best.finish().map(Some)
}

/// [`render_batch`] with the MACO parameterization.
#[allow(clippy::too_many_arguments)]
fn render_maco(
    model: &AtlasModel,
    layer: usize,
    dirs: &Tensor,
    settings: &RenderSettings,
    maco: &MacoSettings,
    batch_seed: u64,
    progress: &mut dyn FnMut(f32),
    cancel: &dyn Fn() -> bool,
) -> Result<Option<RenderedIcons>> {
    let b = dirs.size()[0];
    let size = settings.size;
    let magnitude = match &maco.magnitude {
        Some(m) => {
            ensure!(
                m.height == size && m.width == size,
                "the magnitude spectrum is {}×{}, the icons {size}×{size}",
                m.width,
                m.height
            );
            m.clone()
        }
        None => Magnitude::default_for(size, size),
    };
    let mut best = BestOfTries::new(b);
    let total = (settings.tries * settings.steps) as f32;
    let window = settings.score_window.clamp(1, settings.steps);
    for attempt in 0..settings.tries {
        let seed = batch_seed.wrapping_mul(31).wrapping_add(attempt as u64) ^ settings.seed;
        let mut rng = Rng::derived(seed, 0xF00D, attempt as u64);
        let mut image = MacoImage::random(b, &magnitude, maco.gain, seed, model.device);
        let mut adam = Adam::new(settings.learning_rate, &image.phase);
        let mut score = Tensor::zeros([b], (Kind::Float, model.device));
        let mut attribution = Tensor::zeros([b, 1, size, size], (Kind::Float, model.device));
        for step in 0..settings.steps {
            if cancel() {
                return Ok(None);
            }
            let (obj, ascent, pixels) = maco_objective_and_gradient(
                model,
                layer,
                &image,
                dirs,
                &settings.objective,
                &maco.crops,
                maco.all_positions,
                &mut rng,
            )?;
            if step >= settings.steps - window {
                score += obj / window as f64;
            }
            attribution += pixels.abs().mean_dim([1i64].as_slice(), true, Kind::Float);
            adam.step(&mut image.phase, &ascent);
            progress((attempt * settings.steps + step + 1) as f32 / total);
        }
        let mut rgb = tch::no_grad(|| image.rgb());
        if maco.alpha_mask {
            let alpha = alpha_from_attribution(&attribution);
            rgb = &rgb * &alpha + (1.0 - alpha);
        }
        best.offer(rgb, &score)?;
    }
    best.finish().map(Some)
}

/// Feature accentuation (spec feature-visualisation-modern.md §5): one icon per row of
/// `directions` `[B,C]`, each started from its row of `seeds` `[B,3,s,s]` (RGB in [0,1], the
/// icon size) and optimized with Adam on lucid's coefficients. One try: the start is fixed.
/// `progress(fraction)` after every step; `Ok(None)` when `cancel` says so.
#[allow(clippy::too_many_arguments)]
pub fn render_accented(
    model: &AtlasModel,
    layer: usize,
    directions: &Tensor,
    seeds: &Tensor,
    settings: &RenderSettings,
    batch_seed: u64,
    progress: &mut dyn FnMut(f32),
    cancel: &dyn Fn() -> bool,
) -> Result<Option<RenderedIcons>> {
    let IconMethod::Accent(accent) = &settings.method else {
        anyhow::bail!("render_accented needs the accent icon method");
    };
    ensure!(settings.steps > 0, "need at least one step");
    let b = directions.size()[0];
    ensure!(
        seeds.size() == [b, 3, settings.size, settings.size],
        "seeds must be [{b}, 3, {s}, {s}], not {:?}",
        seeds.size(),
        s = settings.size
    );
    let dirs = directions.to_device(model.device).to_kind(Kind::Float);
    let seeds = seeds.to_device(model.device).to_kind(Kind::Float);
    let mut rng = Rng::derived(batch_seed ^ settings.seed, 0xACCE, 0);
    let mut image = FftImage::from_rgb(&seeds);
    // The seed as the parameterization reproduces it (pixels clamped away from 0 and 1).
    let start = tch::no_grad(|| image.rgb());
    let reference = tch::no_grad(|| {
        crops_objective(
            model,
            layer,
            &start,
            &dirs,
            &settings.objective,
            &accent.crops,
            accent.all_positions,
            &mut rng,
        )
    })?
    .abs()
    .clamp_min(1e-12);
    let mut adam = Adam::new(settings.learning_rate, &image.spectrum);
    let window = settings.score_window.clamp(1, settings.steps);
    let mut score = Tensor::zeros([b], (Kind::Float, model.device));
    for step in 0..settings.steps {
        if cancel() {
            return Ok(None);
        }
        let (_, ascent, obj) = accent_score_and_gradient(
            model,
            layer,
            &image,
            &start,
            &reference,
            &dirs,
            &settings.objective,
            accent,
            &mut rng,
        )?;
        if step >= settings.steps - window {
            score += obj / window as f64;
        }
        adam.step(&mut image.spectrum, &ascent);
        progress((step + 1) as f32 / settings.steps as f32);
    }
    let mut best = BestOfTries::new(b);
    best.offer(tch::no_grad(|| image.rgb()), &score)?;
    best.finish().map(Some)
}

/// Per icon, the try with the highest score so far (spec §4.6), shared by both renderers.
struct BestOfTries {
    images: Option<Tensor>,
    scores: Vec<f32>,
}

impl BestOfTries {
    fn new(batch: i64) -> Self {
        BestOfTries {
            images: None,
            scores: vec![f32::NEG_INFINITY; batch as usize],
        }
    }

    /// One try's images `[B,3,h,w]` and scores `[B]`: keeps each icon whose score beats the best.
    fn offer(&mut self, rgb: Tensor, score: &Tensor) -> Result<()> {
        let score: Vec<f32> = Vec::<f32>::try_from(score.to_device(tch::Device::Cpu))?;
        let better: Vec<bool> = score
            .iter()
            .zip(&self.scores)
            .map(|(s, b)| s > b || b.is_nan())
            .collect();
        for (i, &keep) in better.iter().enumerate() {
            if keep {
                self.scores[i] = score[i];
            }
        }
        self.images = Some(match self.images.take() {
            None => rgb,
            Some(prev) => {
                let mask = Tensor::from_slice(&better).to_device(rgb.device()).view([
                    better.len() as i64,
                    1,
                    1,
                    1,
                ]);
                rgb.where_self(&mask, &prev)
            }
        });
        Ok(())
    }

    fn finish(self) -> Result<RenderedIcons> {
        let images = to_rgb_images(&self.images.expect("at least one try"))?;
        Ok(RenderedIcons {
            images,
            scores: self.scores,
        })
    }
}

/// `[B,3,h,w]` in [0,1] → 8-bit RGB images.
pub fn to_rgb_images(batch: &Tensor) -> Result<Vec<RgbImage>> {
    let s = batch.size();
    let (h, w) = (s[2] as u32, s[3] as u32);
    let bytes = (batch.detach().to_device(tch::Device::Cpu).clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([0, 2, 3, 1])
        .contiguous();
    let flat: Vec<u8> = Vec::<u8>::try_from(bytes.view([-1]))?;
    let per = (h * w * 3) as usize;
    Ok(flat
        .chunks_exact(per)
        .map(|c| RgbImage::from_raw(w, h, c.to_vec()).expect("sized buffer"))
        .collect())
}
