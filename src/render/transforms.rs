//! Transformation robustness (spec §4.4) with lucid's semantics: `jitter(d)` is a random *crop*
//! of `(h−d)×(w−d)` (the image shrinks), scale resizes bilinearly, rotate turns about the centre
//! with zero fill. One random draw per step for the whole batch, as lucid does.
use tch::{Kind, Tensor};

use crate::layout::rng::Rng;

/// Which stack of random transforms is applied before every forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformStack {
    /// The later atlas code (REC `render_icons`, spec default): pad 16 grey, jitter 4,4,8,8,8,
    /// scale 0.998^(20..39), rotate, jitter 2, crop-or-pad back to the icon size.
    Rec,
    /// The linked notebooks: pad 2 white, jitter 4,4,8,8,8, strong scale 0.67–1.03, rotate,
    /// jitter 2, no final crop (the network sees a smaller image).
    Notebook,
    /// No transforms (for tests and objective checks).
    None,
}

impl TransformStack {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "rec" => Ok(TransformStack::Rec),
            "notebook" => Ok(TransformStack::Notebook),
            "none" => Ok(TransformStack::None),
            other => anyhow::bail!("transform stack must be rec, notebook or none, not {other:?}"),
        }
    }

    /// Applies the stack to `x` `[B,3,h,w]` (differentiably); `size` is the icon size that REC
    /// crops or pads back to.
    pub fn apply(self, x: &Tensor, rng: &mut Rng, size: i64) -> Tensor {
        match self {
            TransformStack::None => x.shallow_clone(),
            TransformStack::Rec => {
                let mut t = pad(x, 16, 0.5);
                for d in [4, 4, 8, 8, 8] {
                    t = jitter(&t, d, rng);
                }
                t = scale(&t, pick(&rec_scales(), rng));
                t = rotate(&t, pick(&rotations(), rng));
                t = jitter(&t, 2, rng);
                crop_or_pad(&t, size)
            }
            TransformStack::Notebook => {
                let mut t = pad(x, 2, 1.0);
                for d in [4, 4, 8, 8, 8] {
                    t = jitter(&t, d, rng);
                }
                t = scale(&t, pick(&notebook_scales(), rng));
                t = rotate(&t, pick(&rotations(), rng));
                jitter(&t, 2, rng)
            }
        }
    }
}

fn pick(options: &[f64], rng: &mut Rng) -> f64 {
    options[rng.below(options.len())]
}

/// `[0.998^n for n in 20..39]`.
pub fn rec_scales() -> Vec<f64> {
    (20..40).map(|n| 0.998f64.powi(n)).collect()
}

/// `[0.995^n for n in −5..79] + 2 × [0.998^n for n in 20..39]` (125 entries).
pub fn notebook_scales() -> Vec<f64> {
    let mut v: Vec<f64> = (-5..80).map(|n| 0.995f64.powi(n)).collect();
    v.extend(rec_scales());
    v.extend(rec_scales());
    v
}

/// Degrees: `[−20..19] + [−10..9] + [−5..4] + [0]×5` (75 entries, peaked at 0).
pub fn rotations() -> Vec<f64> {
    let mut v: Vec<f64> = (-20..20).map(f64::from).collect();
    v.extend((-10..10).map(f64::from));
    v.extend((-5..5).map(f64::from));
    v.extend([0.0; 5]);
    v
}

/// Constant padding with `value` on every side.
pub fn pad(x: &Tensor, p: i64, value: f64) -> Tensor {
    (x - value).constant_pad_nd([p, p, p, p]) + value
}

/// lucid `jitter(d)`: a random `(h−d)×(w−d)` crop (offsets uniform in 0..=d).
pub fn jitter(x: &Tensor, d: i64, rng: &mut Rng) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    let oy = rng.below(d as usize + 1) as i64;
    let ox = rng.below(d as usize + 1) as i64;
    x.narrow(2, oy, h - d).narrow(3, ox, w - d)
}

/// Bilinear resize to `floor(s·h) × floor(s·w)` (lucid casts the scaled shape to int).
pub fn scale(x: &Tensor, s: f64) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    let (nh, nw) = ((s * h as f64) as i64, (s * w as f64) as i64);
    if (nh, nw) == (h, w) {
        return x.shallow_clone();
    }
    x.upsample_bilinear2d([nh, nw], false, None, None)
}

/// Rotation by `degrees` about the image centre, bilinear, zero outside (lucid uses TF's
/// `contrib.image.rotate`, which also fills with zeros).
pub fn rotate(x: &Tensor, degrees: f64) -> Tensor {
    if degrees == 0.0 {
        return x.shallow_clone();
    }
    let size = x.size();
    let (b, h, w) = (size[0], size[2], size[3]);
    let a = degrees.to_radians();
    // affine_grid maps output coordinates in [-1,1]² to input coordinates; the aspect ratio
    // terms keep the rotation rigid for non-square images.
    let (c, s) = (a.cos(), a.sin());
    let r = h as f64 / w as f64;
    let theta = Tensor::from_slice(&[
        c as f32,
        (-s * r) as f32,
        0.0,
        (s / r) as f32,
        c as f32,
        0.0,
    ])
    .view([1, 2, 3])
    .expand([b, 2, 3], false)
    .to_device(x.device())
    .to_kind(Kind::Float);
    let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), false);
    Tensor::grid_sampler(x, &grid, 0, 0, false)
}

/// TF's `resize_image_with_crop_or_pad`: centre crop or symmetric zero padding to `size`.
pub fn crop_or_pad(x: &Tensor, size: i64) -> Tensor {
    let mut t = x.shallow_clone();
    for dim in [2, 3] {
        let n = t.size()[dim as usize];
        if n > size {
            t = t.narrow(dim, (n - size) / 2, size);
        } else if n < size {
            let before = (size - n) / 2;
            let after = size - n - before;
            let pads = if dim == 2 {
                [0, 0, before, after]
            } else {
                [before, after, 0, 0]
            };
            t = t.constant_pad_nd(pads);
        }
    }
    t
}

/// MACO-style per-icon random crops (spec feature-visualisation-modern.md §2, §7): for each of
/// `crops` copies of every icon, a square of side `U[min_side, max_side]` of the canvas centred at
/// `0.5 + N(0, centre_sd)` per axis (kept inside the canvas), resampled bilinearly (border
/// padding) to `out × out`,
/// plus pixel noise `N(0, noise²) + U(−noise/2, noise/2)`. Returns `[crops·B, 3, out, out]`, copy
/// `k` of icon `b` at row `k·B + b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crops {
    pub crops: usize,
    pub min_side: f64,
    pub max_side: f64,
    pub centre_sd: f64,
    pub noise: f64,
}

impl Crops {
    pub fn apply(&self, x: &Tensor, rng: &mut Rng, out: i64) -> Tensor {
        let b = x.size()[0];
        let n = self.crops as i64 * b;
        let mut theta = Vec::with_capacity(n as usize * 6);
        for _ in 0..n {
            let side = self.min_side + (self.max_side - self.min_side) * rng.uniform();
            let lim = (1.0 - side).max(0.0);
            // Centre offset in affine_grid's [-1, 1] coordinates (twice the [0,1] offset).
            let cy = (2.0 * self.centre_sd * rng.normal()).clamp(-lim, lim);
            let cx = (2.0 * self.centre_sd * rng.normal()).clamp(-lim, lim);
            theta.extend_from_slice(&[side as f32, 0.0, cx as f32, 0.0, side as f32, cy as f32]);
        }
        let theta = Tensor::from_slice(&theta)
            .view([n, 2, 3])
            .to_device(x.device())
            .to_kind(Kind::Float);
        let grid = Tensor::affine_grid_generator(&theta, [n, 3, out, out].as_slice(), false);
        let src = x.repeat([self.crops as i64, 1, 1, 1]);
        // Border padding: the outermost samples of a crop at the canvas edge sit half a pixel
        // outside the outermost pixel centres.
        let t = Tensor::grid_sampler(&src, &grid, 0, 1, false);
        if self.noise > 0.0 {
            let count = (n * 3 * out * out) as usize;
            let v: Vec<f32> = (0..count)
                .map(|_| (self.noise * (rng.normal() + rng.uniform() - 0.5)) as f32)
                .collect();
            t + Tensor::from_slice(&v)
                .view([n, 3, out, out])
                .to_device(x.device())
        } else {
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn lists_match_the_spec() {
        assert_eq!(rotations().len(), 75);
        assert_eq!(notebook_scales().len(), 125);
        let s = rec_scales();
        assert!((s[0] - 0.998f64.powi(20)).abs() < 1e-12 && s.len() == 20);
    }

    #[test]
    fn rec_stack_returns_the_icon_size_and_notebook_shrinks() {
        let x = Tensor::rand([2, 3, 80, 80], (Kind::Float, Device::Cpu));
        let mut rng = Rng::new(1);
        for _ in 0..5 {
            assert_eq!(
                TransformStack::Rec.apply(&x, &mut rng, 80).size(),
                [2, 3, 80, 80]
            );
            let n = TransformStack::Notebook.apply(&x, &mut rng, 80).size();
            // 84 − 34 = 50 px before scaling by 0.67–1.03.
            assert!(n[2] >= 33 && n[2] <= 52 && n[2] == n[3], "{n:?}");
        }
    }

    #[test]
    fn jitter_is_a_crop_and_rotation_keeps_the_centre() {
        let x = Tensor::arange(100, (Kind::Float, Device::Cpu)).view([1, 1, 10, 10]);
        let mut rng = Rng::new(7);
        let j = jitter(&x, 4, &mut rng);
        assert_eq!(j.size(), [1, 1, 6, 6]);
        // A crop: the top-left value sits somewhere in the original's first 5 rows/cols.
        let v = j.double_value(&[0, 0, 0, 0]) as i64;
        assert!(v / 10 <= 4 && v % 10 <= 4);
        let img = Tensor::zeros([1, 1, 9, 9], (Kind::Float, Device::Cpu));
        let _ = img.narrow(2, 4, 1).narrow(3, 4, 1).fill_(1.0);
        let r = rotate(&img, 15.0);
        assert!((r.double_value(&[0, 0, 4, 4]) - 1.0).abs() < 1e-5);
        // A quarter turn samples exactly on pixel centres: it must equal an exact rotation.
        let sq = Tensor::arange(25, (Kind::Float, Device::Cpu)).view([1, 1, 5, 5]);
        let turned = rotate(&sq, 90.0);
        let exact = sq.rot90(1, [2, 3]);
        let err = (turned - exact).abs().max().double_value(&[]);
        assert!(err < 1e-3, "quarter turn differs from rot90 by {err}");
    }

    #[test]
    fn full_centred_crops_are_the_image() {
        let x = Tensor::rand([2, 3, 12, 12], (Kind::Float, Device::Cpu));
        let c = Crops {
            crops: 3,
            min_side: 1.0,
            max_side: 1.0,
            centre_sd: 0.0,
            noise: 0.0,
        };
        let y = c.apply(&x, &mut Rng::new(3), 12);
        assert_eq!(y.size(), [6, 3, 12, 12]);
        let err = (y.narrow(0, 4, 2) - &x).abs().max().double_value(&[]);
        assert!(err < 1e-5, "{err}");
        // Half-size crops stay inside the canvas: no zero padding shows up.
        let ones = Tensor::ones([1, 3, 12, 12], (Kind::Float, Device::Cpu));
        let h = Crops {
            min_side: 0.5,
            max_side: 0.5,
            centre_sd: 1.0,
            ..c
        };
        let z = h.apply(&ones, &mut Rng::new(4), 8);
        assert!((z.min().double_value(&[]) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn crop_or_pad_centres() {
        let x = Tensor::ones([1, 1, 5, 7], (Kind::Float, Device::Cpu));
        let y = crop_or_pad(&x, 6);
        assert_eq!(y.size(), [1, 1, 6, 6]);
        assert_eq!(y.sum(Kind::Float).double_value(&[]), 30.0);
        assert_eq!(y.double_value(&[0, 0, 0, 0]), 1.0);
        assert_eq!(y.double_value(&[0, 0, 5, 0]), 0.0);
    }
}
