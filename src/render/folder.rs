//! Icons of arbitrary directions of a layer, written as a folder of PNGs (`atlas icons`; the
//! benchmark of icons per second in `scripts/bench`).
use std::path::Path;

use anyhow::{bail, Context, Result};
use tch::Tensor;

use super::{render_batch, RenderSettings};
use crate::layout::rng::Rng;
use crate::model::AtlasModel;

/// The rows of an `[N, C]` .npy as directions of layer `layer` (which has `channels` channels).
pub fn read_directions(path: &Path, channels: usize, layer: &str) -> Result<Vec<f32>> {
    let m = crate::store::npy::read(path)?;
    if m.cols != channels {
        bail!(
            "{} has {} columns, layer {layer:?} has {channels} channels",
            path.display(),
            m.cols
        );
    }
    Ok(m.data)
}

/// `n` directions of `channels` values, uniform in [0, 1) from `seed` (non-negative, like the
/// mean activations of cells after a ReLU).
pub fn random_directions(n: usize, channels: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * channels).map(|_| rng.uniform() as f32).collect()
}

/// Renders one icon per row of `directions` (row-major, layer `layer`'s channels wide),
/// `settings.batch` at a time, into `out/icon_0000.png`, `icon_0001.png`, … Directions are used
/// as given (not whitened). `progress(icons)` reports how many icons are done (fractional
/// within a batch). Returns the number of icons.
pub fn render_to_folder(
    model: &AtlasModel,
    layer: usize,
    directions: &[f32],
    settings: &RenderSettings,
    out: &Path,
    progress: &mut dyn FnMut(f32),
) -> Result<usize> {
    let channels = model.info.layers[layer].channels as usize;
    std::fs::create_dir_all(out)?;
    let mut done = 0usize;
    for (b, chunk) in directions
        .chunks(settings.batch.max(1) * channels)
        .enumerate()
    {
        let rows = chunk.len() / channels;
        let d = Tensor::from_slice(chunk).view([rows as i64, channels as i64]);
        let icons = render_batch(
            model,
            layer,
            &d,
            settings,
            b as u64,
            &mut |f| progress(done as f32 + f * rows as f32),
            &|| false,
        )?
        .context("cancelled")?;
        for (i, img) in icons.images.iter().enumerate() {
            let path = out.join(format!("icon_{:04}.png", done + i));
            img.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        done += rows;
    }
    Ok(done)
}
