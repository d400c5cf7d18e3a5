//! The size sweep of one image and one patch (NB-ADV): every (corner, ratio) composite
//! classified, for the plot of P(original), P(target) and P(patch class) against patch size.
use anyhow::{bail, Result};
use image::RgbImage;

use super::composite::{composite, prepare_background};
use super::{model_side, probe, Corner};
use crate::model::AtlasModel;

/// One classified composite.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub corner: Corner,
    pub ratio: f64,
    /// The full softmax vector.
    pub probs: Vec<f32>,
}

/// Ratios 0.00, step, 2·step, … up to and including `max_ratio` (spec: 0.00…0.79 step 0.01;
/// the UI uses max 0.80). Each is `i·step`, as numpy's `arange` computes them, so patch sides
/// match the notebook's. A non-positive step gives just `[0.0]`.
pub fn sweep_ratios(max_ratio: f64, step: f64) -> Vec<f64> {
    if step.is_nan() || step <= 0.0 || max_ratio.is_nan() || max_ratio < 0.0 {
        return vec![0.0];
    }
    // The tolerance keeps 0.8 / 0.01 = 80.00000000000001 and 0.3 / 0.1 = 2.9999999999999996
    // from losing or gaining the last point.
    let n = (max_ratio / step + 1e-9).floor() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// Every (corner, ratio) composite classified, corner-major (all ratios of `corners[0]` first).
/// `bg` may be any size: it is Lanczos-resized to the model's input side first unless it already
/// has it. `progress(done, total)` is called after each batch; the sweep stops with `Err` when
/// `cancel()` returns true between batches.
pub fn size_sweep(
    model: &AtlasModel,
    bg: &RgbImage,
    patch: &RgbImage,
    corners: &[Corner],
    ratios: &[f64],
    cancel: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<SweepPoint>> {
    let side = model_side(model)?;
    let bg = if bg.dimensions() == (side, side) {
        bg.clone()
    } else {
        prepare_background(bg, side)
    };
    let settings: Vec<(Corner, f64)> = corners
        .iter()
        .flat_map(|&c| ratios.iter().map(move |&r| (c, r)))
        .collect();
    let total = settings.len();
    let mut points = Vec::with_capacity(total);
    for chunk in settings.chunks(probe::BATCH) {
        if cancel() {
            bail!("size sweep cancelled");
        }
        let images: Vec<RgbImage> = chunk
            .iter()
            .map(|&(c, r)| composite(&bg, patch, r, c))
            .collect();
        let probs = probe::probabilities(model, &images)?;
        points.extend(
            chunk
                .iter()
                .zip(probs)
                .map(|(&(corner, ratio), probs)| SweepPoint {
                    corner,
                    ratio,
                    probs,
                }),
        );
        progress(points.len(), total);
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_include_the_end_point() {
        let r = sweep_ratios(0.79, 0.01);
        assert_eq!(r.len(), 80);
        assert_eq!(r[0], 0.0);
        assert_eq!(*r.last().unwrap(), 79.0 * 0.01);
        assert_eq!(sweep_ratios(0.8, 0.01).len(), 81);
        assert_eq!(sweep_ratios(0.3, 0.1).len(), 4);
        assert_eq!(sweep_ratios(0.5, 0.0), vec![0.0]);
    }
}
