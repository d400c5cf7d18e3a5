//! MACO-style phase-only parameterization (spec feature-visualisation-modern.md §1, §3, §7):
//! the magnitude of every icon's spectrum is fixed to an average natural-image spectrum and only
//! the phase is optimized; the accumulated pixel gradient gives an attribution (alpha) mask.
//!
//! Image formation per icon: `x = irfft2(r·cos φ + i·r·sin φ)` in the decorrelated colour space,
//! standardized over its `(3,h,w)` values (unbiased std, `+1e-4`), times `gain`, mapped to RGB with
//! lucid's colour matrix (as [`super::param`]) and squashed by a sigmoid. The phase starts
//! uniform in `(−π, π)` and is not standardized (§1.4 of the spec: avoids the corner blob).
use anyhow::{ensure, Result};
use image::RgbImage;
use tch::{Device, Kind, Tensor};

use super::param::colour_matrix;
use crate::layout::rng::Rng;

/// The built-in magnitude spectrum, fitted offline (benches/fit_spectrum.py) on the 1,000
/// ImageNet sample images (one per class) at 80 px: images → clamped logit → decorrelated colour
/// coordinates → mean |rfft2|; per channel `a_c / f^α` with one shared `α`, least squares over
/// `2/80 ≤ f ≤ 0.4`; the DC bin relative to `a_c · size^α`.
pub const DEFAULT_ALPHA: f64 = 1.466;
pub const DEFAULT_AMPLITUDES: [f64; 3] = [1.0, 0.9004, 1.1472];
pub const DEFAULT_DC: [f64; 3] = [1.5662, 2.3852, 1.4874];

/// A fixed magnitude spectrum `[3, h, w/2+1]` (rfft2 layout).
#[derive(Clone, Debug, PartialEq)]
pub struct Magnitude {
    pub values: Vec<f32>,
    pub height: i64,
    pub width: i64,
}

impl Magnitude {
    pub fn spectrum_width(w: i64) -> i64 {
        w / 2 + 1
    }

    /// The built-in ImageNet-like spectrum `a_c / max(f, 1/max(h,w))^α` at any size.
    pub fn default_for(height: i64, width: i64) -> Self {
        Self::power_law(height, width, DEFAULT_ALPHA, DEFAULT_AMPLITUDES, DEFAULT_DC)
    }

    pub fn power_law(height: i64, width: i64, alpha: f64, amps: [f64; 3], dc: [f64; 3]) -> Self {
        let wf = Self::spectrum_width(width);
        let floor = 1.0 / height.max(width) as f64;
        let mut values = Vec::with_capacity((3 * height * wf) as usize);
        for c in 0..3 {
            for y in 0..height {
                for x in 0..wf {
                    let fy = fftfreq(height, y);
                    let fx = x as f64 / width as f64;
                    let f = (fy * fy + fx * fx).sqrt().max(floor);
                    let mut m = amps[c] / f.powf(alpha);
                    if y == 0 && x == 0 {
                        m *= dc[c];
                    }
                    values.push(m as f32);
                }
            }
        }
        Magnitude {
            values,
            height,
            width,
        }
    }

    /// The mean magnitude spectrum of `images` (each resized to `height×width` by the caller, RGB
    /// in [0,1] after `clamp(1e-3, 1−1e-3)` and logit, in decorrelated colour coordinates), the
    /// MACO "own spectrum" of the user's images (spec §1.2, "Own spectrum").
    pub fn from_images(images: &[RgbImage], height: i64, width: i64) -> Result<Self> {
        ensure!(!images.is_empty(), "no images to estimate a spectrum from");
        let inv = colour_matrix(Device::Cpu).to_kind(Kind::Double).inverse();
        let mut acc = Tensor::zeros(
            [3, height, Self::spectrum_width(width)],
            (Kind::Double, Device::Cpu),
        );
        for img in images {
            ensure!(
                img.width() as i64 == width && img.height() as i64 == height,
                "spectrum images must be {width}×{height}"
            );
            let x = Tensor::from_slice(img.as_raw())
                .to_kind(Kind::Double)
                .view([height, width, 3])
                .permute([2, 0, 1])
                / 255.0;
            let x = x.clamp(1e-3, 1.0 - 1e-3);
            let one_minus: Tensor = -&x + 1.0;
            let t = (&x / one_minus).log();
            let d = Tensor::einsum("ij,jyx->iyx", &[&inv, &t], None::<i64>);
            acc += d
                .fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "backward")
                .abs();
        }
        let acc = (acc / images.len() as f64)
            .to_kind(Kind::Float)
            .contiguous();
        Ok(Magnitude {
            values: Vec::<f32>::try_from(acc.view([-1]))?,
            height,
            width,
        })
    }

    pub fn tensor(&self, device: Device) -> Tensor {
        Tensor::from_slice(&self.values)
            .view([3, self.height, Self::spectrum_width(self.width)])
            .to_device(device)
    }
}

/// numpy's `fftfreq(n)[i]`.
fn fftfreq(n: i64, i: i64) -> f64 {
    let k = if i < (n + 1) / 2 { i } else { i - n };
    k as f64 / n as f64
}

/// Random initial phases uniform in `(−π, π)`, `[batch, 3, h, w/2+1]`.
pub fn random_phase(batch: i64, h: i64, w: i64, seed: u64, device: Device) -> Tensor {
    let n = (batch * 3 * h * Magnitude::spectrum_width(w)) as usize;
    let mut rng = Rng::derived(seed, 0x3AC0_0000, batch as u64);
    let v: Vec<f32> = (0..n)
        .map(|_| ((rng.uniform() * 2.0 - 1.0) * std::f64::consts::PI) as f32)
        .collect();
    Tensor::from_slice(&v)
        .view([batch, 3, h, Magnitude::spectrum_width(w)])
        .to_device(device)
}

/// A batch of MACO images: trainable phases, one fixed magnitude.
pub struct MacoImage {
    /// `[B, 3, h, w/2+1]`, the trainable tensor.
    pub phase: Tensor,
    pub height: i64,
    pub width: i64,
    pub gain: f64,
    magnitude: Tensor,
    colour: Tensor,
}

impl MacoImage {
    pub fn new(phase: Tensor, magnitude: &Magnitude, gain: f64) -> Self {
        let device = phase.device();
        MacoImage {
            magnitude: magnitude.tensor(device),
            colour: colour_matrix(device),
            height: magnitude.height,
            width: magnitude.width,
            gain,
            phase,
        }
    }

    pub fn random(batch: i64, magnitude: &Magnitude, gain: f64, seed: u64, device: Device) -> Self {
        let phase = random_phase(batch, magnitude.height, magnitude.width, seed, device)
            .set_requires_grad(true);
        MacoImage::new(phase, magnitude, gain)
    }

    /// The RGB images in [0, 1], `[B, 3, h, w]`, differentiable with respect to `phase`.
    pub fn rgb(&self) -> Tensor {
        let (h, w) = (self.height, self.width);
        let b = self.phase.size()[0];
        let re = &self.magnitude * self.phase.cos();
        let im = &self.magnitude * self.phase.sin();
        let z = Tensor::complex(&re, &im);
        let x = z.fft_irfft2([h, w].as_slice(), [-2i64, -1].as_slice(), "backward");
        let flat = x.view([b, -1]);
        let mean = flat.mean_dim([1i64].as_slice(), true, Kind::Float);
        let std = flat.std_dim([1i64].as_slice(), true, true);
        let x = ((flat - mean) / (std + 1e-4) * self.gain).view([b, 3, h, w]);
        let rgb = Tensor::einsum("ij,bjyx->biyx", &[&self.colour, &x], None::<i64>);
        rgb.sigmoid()
    }
}

/// The displayed alpha of accumulated `|∂objective/∂pixel|` `[B,1,h,w]` (spec §3, Horama's
/// `plot_maco`): clipped from above at its 80th percentile per icon, divided by its maximum.
pub fn alpha_from_attribution(acc: &Tensor) -> Tensor {
    let s = acc.size();
    let flat = acc.view([s[0], -1]);
    let q = flat.quantile_scalar(0.8, Some(1), true, "linear");
    let clipped = flat.minimum(&q);
    let max = clipped.amax([1i64].as_slice(), true).clamp_min(1e-12);
    (clipped / max).view(s.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spectrum_falls_as_a_power_law() {
        let m = Magnitude::default_for(16, 16);
        let wf = 9usize;
        let at = |c: usize, y: usize, x: usize| m.values[c * 16 * wf + y * wf + x] as f64;
        // f = 1/16 and 2/16 along x: ratio 2^α.
        let r = at(0, 0, 1) / at(0, 0, 2);
        assert!((r - 2f64.powf(DEFAULT_ALPHA)).abs() < 1e-4, "{r}");
        // ±ky rows are mirror images (no orientation preference).
        assert_eq!(at(1, 3, 2), at(1, 13, 2));
        assert_eq!(m.values.len(), 3 * 16 * wf);
    }

    #[test]
    fn images_are_standardized_and_in_range() {
        let m = Magnitude::default_for(20, 20);
        let img = MacoImage::random(2, &m, 1.0, 5, Device::Cpu);
        let rgb = img.rgb();
        assert_eq!(rgb.size(), [2, 3, 20, 20]);
        assert!(rgb.min().double_value(&[]) > 0.0 && rgb.max().double_value(&[]) < 1.0);
        // A random phase spreads energy: no corner blob, the mean stays near mid-grey.
        let mean = rgb.mean(Kind::Float).double_value(&[]);
        assert!((mean - 0.5).abs() < 0.1, "{mean}");
    }

    #[test]
    fn own_spectrum_of_a_constant_image_is_dc_only() {
        let img = RgbImage::from_pixel(8, 8, image::Rgb([200, 100, 50]));
        let m = Magnitude::from_images(&[img], 8, 8).unwrap();
        let wf = 5usize;
        for c in 0..3 {
            let plane = &m.values[c * 8 * wf..(c + 1) * 8 * wf];
            assert!(plane[1..].iter().all(|v| v.abs() < 1e-3), "{plane:?}");
        }
        assert!(m.values[0].abs() > 1.0);
    }

    #[test]
    fn alpha_is_clipped_and_normalized() {
        let acc = Tensor::arange(10, (Kind::Float, Device::Cpu)).view([1, 1, 2, 5]);
        let a = alpha_from_attribution(&acc);
        assert!((a.max().double_value(&[]) - 1.0).abs() < 1e-6);
        assert_eq!(a.min().double_value(&[]), 0.0);
        // The top 20% share the clipped maximum.
        assert_eq!(a.double_value(&[0, 0, 1, 4]), 1.0);
        assert_eq!(a.double_value(&[0, 0, 1, 3]), 1.0);
    }
}
