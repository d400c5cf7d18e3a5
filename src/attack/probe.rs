//! Classifying composites: softmax probabilities of model-sized images, in batches.
use anyhow::{bail, Result};
use image::RgbImage;
use tch::{Kind, Tensor};

use crate::data::to_chw_f32;
use crate::model::AtlasModel;

/// Images per forward pass: big enough to keep the model busy, small enough for a laptop.
pub const BATCH: usize = 32;

/// Softmax probabilities (full K vector per image) of model-sized RGB images, batched
/// (batch ≤ 32), on `model.device`. Images must already be the model's input size; they are fed
/// as [0, 1] pixels, the model applies its own normalization.
pub fn probabilities(model: &AtlasModel, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
    let (w, h) = model.info.size();
    if let Some(bad) = images.iter().find(|im| im.dimensions() != (w, h)) {
        bail!(
            "an image to classify is {}×{}, but the model takes {w}×{h}",
            bad.width(),
            bad.height()
        );
    }
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        let mut pixels = Vec::with_capacity(chunk.len() * 3 * (w * h) as usize);
        for im in chunk {
            pixels.extend(to_chw_f32(im));
        }
        let x = Tensor::from_slice(&pixels).reshape([chunk.len() as i64, 3, h as i64, w as i64]);
        let probs = model
            .probabilities(&x)?
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Float);
        let rows: Vec<Vec<f32>> = Vec::try_from(probs)?;
        out.extend(rows);
    }
    Ok(out)
}

/// Index and value of the largest probability (the first one on ties, like `argmax`).
pub fn top1(probs: &[f32]) -> (usize, f32) {
    probs
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, p)| {
            if p > best.1 {
                (i, p)
            } else {
                best
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_takes_the_first_maximum() {
        assert_eq!(top1(&[0.1, 0.4, 0.4, 0.1]), (1, 0.4));
        assert_eq!(top1(&[1.0]), (0, 1.0));
    }
}
