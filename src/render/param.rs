//! Lucid's image parameterization `param.image(size, fft=True, decorrelate=True, sigmoid)`
//! (spec §4.3): trainable Fourier coefficients, scaled by 1/frequency, inverse real FFT (ortho),
//! divided by 4, mapped from a decorrelated colour space to RGB and squashed by a sigmoid.
use tch::{Device, Kind, Tensor};

use crate::layout::rng::Rng;

/// Square root of ImageNet's colour correlation (lucid `color_correlation_svd_sqrt`).
const COLOR_CORRELATION_SQRT: [[f32; 3]; 3] =
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// Spectrum width lucid uses: `w/2 + 1` columns (rfft layout), one more for odd widths.
pub fn spectrum_width(w: i64) -> i64 {
    w / 2 + 1 + (w % 2)
}

/// numpy's `fftfreq(n)[i]`.
fn fftfreq(n: i64, i: i64) -> f64 {
    let k = if i < (n + 1) / 2 { i } else { i - n };
    k as f64 / n as f64
}

/// Per-coefficient scale `1 / max(f, 1/max(w,h))` (decay power 1), shape `[h, wf, 1]` so it
/// broadcasts over the real/imaginary pair.
pub fn spectrum_scale(h: i64, w: i64, device: Device) -> Tensor {
    let wf = spectrum_width(w);
    let floor = 1.0 / h.max(w) as f64;
    let mut v = Vec::with_capacity((h * wf) as usize);
    for y in 0..h {
        for x in 0..wf {
            let (fy, fx) = (fftfreq(h, y), fftfreq(w, x));
            v.push((1.0 / (fy * fy + fx * fx).sqrt().max(floor)) as f32);
        }
    }
    Tensor::from_slice(&v).view([h, wf, 1]).to_device(device)
}

/// Random initial coefficients `N(0, 0.01²)`, `[batch, 3, h, wf, 2]` (real, imaginary).
pub fn random_spectrum(batch: i64, h: i64, w: i64, seed: u64, device: Device) -> Tensor {
    let n = (batch * 3 * h * spectrum_width(w) * 2) as usize;
    let mut rng = Rng::derived(seed, 0x5EC7_0000, batch as u64);
    let v: Vec<f32> = (0..n).map(|_| (0.01 * rng.normal()) as f32).collect();
    Tensor::from_slice(&v)
        .view([batch, 3, h, spectrum_width(w), 2])
        .to_device(device)
}

/// The 3×3 colour matrix normalized by its largest column norm (≈0.462), `[3, 3]`.
pub fn colour_matrix(device: Device) -> Tensor {
    let c = COLOR_CORRELATION_SQRT;
    let max_norm = (0..3)
        .map(|j| (0..3).map(|i| c[i][j] * c[i][j]).sum::<f32>().sqrt())
        .fold(0.0f32, f32::max);
    let flat: Vec<f32> = c.iter().flatten().map(|v| v / max_norm).collect();
    Tensor::from_slice(&flat).view([3, 3]).to_device(device)
}

/// A batch of images given by their Fourier coefficients.
pub struct FftImage {
    /// `[B, 3, h, wf, 2]`, the trainable tensor.
    pub spectrum: Tensor,
    pub height: i64,
    pub width: i64,
    scale: Tensor,
    colour: Tensor,
}

impl FftImage {
    pub fn new(spectrum: Tensor, height: i64, width: i64) -> Self {
        let device = spectrum.device();
        FftImage {
            scale: spectrum_scale(height, width, device),
            colour: colour_matrix(device),
            spectrum,
            height,
            width,
        }
    }

    pub fn random(batch: i64, height: i64, width: i64, seed: u64, device: Device) -> Self {
        let spectrum = random_spectrum(batch, height, width, seed, device).set_requires_grad(true);
        FftImage::new(spectrum, height, width)
    }

    /// The coefficients whose image is `seed` `[B, 3, h, w]` in [0, 1] (feature accentuation
    /// starts from a real patch, Faccent's seeded `param.fourier`): the exact inverse of
    /// [`FftImage::rgb`] for even widths, after clamping pixels to `[1e-3, 1 − 1e-3]` so the
    /// logit stays finite. Trainable.
    pub fn from_rgb(seed: &Tensor) -> Self {
        let s = seed.size();
        let (h, w) = (s[2], s[3]);
        let device = seed.device();
        let x = seed.to_kind(Kind::Float).clamp(1e-3, 1.0 - 1e-3);
        let one_minus: Tensor = -&x + 1.0;
        let logit = (&x / one_minus).log();
        let inverse = colour_matrix(device).inverse();
        let spatial = Tensor::einsum("ij,bjyx->biyx", &[&inverse, &logit], None::<i64>) * 4.0;
        let spectrum = spatial
            .fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "ortho")
            .view_as_real()
            / spectrum_scale(h, w, device);
        let spectrum = spectrum.narrow(3, 0, spectrum_width(w)).contiguous();
        FftImage::new(spectrum.set_requires_grad(true), h, w)
    }

    /// The RGB images in [0, 1], `[B, 3, h, w]`, differentiable with respect to `spectrum`.
    pub fn rgb(&self) -> Tensor {
        let (h, w) = (self.height, self.width);
        let scaled = (&self.spectrum * &self.scale).view_as_complex();
        // TF's irfft2d divides by h·w and lucid multiplies by sqrt(h·w): an orthonormal inverse.
        let out_w = 2 * (spectrum_width(w) - 1);
        let spatial = scaled
            .fft_irfft2([h, out_w].as_slice(), [-2i64, -1].as_slice(), "ortho")
            .narrow(3, 0, w)
            / 4.0;
        // Decorrelated colour → RGB: rgb_i = Σ_j C[i][j] · t_j.
        let rgb = Tensor::einsum("ij,bjyx->biyx", &[&self.colour, &spatial], None::<i64>);
        rgb.sigmoid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_follow_numpy_fftfreq() {
        let got: Vec<f64> = (0..5).map(|i| fftfreq(5, i)).collect();
        assert_eq!(got, vec![0.0, 0.2, 0.4, -0.4, -0.2]);
        let got: Vec<f64> = (0..4).map(|i| fftfreq(4, i)).collect();
        assert_eq!(got, vec![0.0, 0.25, -0.5, -0.25]);
        assert_eq!(spectrum_width(80), 41);
        assert_eq!(spectrum_width(81), 42);
    }

    #[test]
    fn zero_spectrum_is_mid_grey_and_images_stay_in_range() {
        let img = FftImage::new(
            Tensor::zeros([2, 3, 16, 9, 2], (Kind::Float, Device::Cpu)),
            16,
            16,
        );
        let rgb = img.rgb();
        assert_eq!(rgb.size(), [2, 3, 16, 16]);
        assert!((rgb - 0.5).abs().max().double_value(&[]) < 1e-6);
        let img = FftImage::random(2, 16, 15, 3, Device::Cpu);
        let rgb = img.rgb();
        assert_eq!(rgb.size(), [2, 3, 16, 15]);
        assert!(rgb.min().double_value(&[]) > 0.0 && rgb.max().double_value(&[]) < 1.0);
    }

    #[test]
    fn seeded_coefficients_reproduce_the_seed() {
        // Step 0 of feature accentuation must show the patch it starts from.
        let seed = Tensor::rand([2, 3, 16, 12], (Kind::Float, Device::Cpu)) * 0.9 + 0.05;
        let img = FftImage::from_rgb(&seed);
        assert_eq!(img.spectrum.size(), [2, 3, 16, 7, 2]);
        assert!(img.spectrum.requires_grad());
        let back = img.rgb();
        let err = (back - &seed).abs().max().double_value(&[]);
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn colour_matrix_columns_have_unit_max_norm() {
        let c = colour_matrix(Device::Cpu);
        let norms = c
            .square()
            .sum_dim_intlist([0i64].as_slice(), false, Kind::Float)
            .sqrt();
        assert!((norms.max().double_value(&[]) - 1.0).abs() < 1e-6);
    }
}
