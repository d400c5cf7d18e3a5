//! One image through the model (spec §9.1): its prediction, a layer's activation grid, the
//! spatial attribution map of a class (AttrSpatial: `Σ_channels acts · ∂logit_c/∂acts` per
//! position, the §5.1 attribution summed over the channels of each position), and the atlas cell
//! each position's vector is closest to.
use std::path::Path;

use anyhow::{anyhow, ensure, Context, Result};
use image::RgbImage;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::data::{load_rgb, to_chw_f32, Preprocess};
use crate::model::{torch_model::top_k, AtlasModel};

/// What one image does in one layer.
#[derive(Clone, Debug)]
pub struct ImageAnalysis {
    /// The preprocessed model input.
    pub input: RgbImage,
    /// The five most probable classes: (class index, softmax probability), best first.
    pub top5: Vec<(usize, f32)>,
    pub layer: String,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    /// `[h·w, c]` activation vectors, row `y·w + x`.
    pub acts: Vec<f32>,
}

impl ImageAnalysis {
    /// The activation vector at position (y, x).
    pub fn vector(&self, y: usize, x: usize) -> &[f32] {
        let r = y * self.w + x;
        &self.acts[r * self.c..(r + 1) * self.c]
    }
}

fn layer_index(model: &AtlasModel, layer: &str) -> Result<usize> {
    model.info.layer_index(layer).with_context(|| {
        let names: Vec<&str> = model.info.layers.iter().map(|l| l.name.as_str()).collect();
        format!(
            "the model {} has no layer {layer:?} (it has {names:?})",
            model.path.display()
        )
    })
}

/// Decodes `image` with `preprocess` at the model's input size.
pub fn load_input(model: &AtlasModel, image: &Path, preprocess: Preprocess) -> Result<RgbImage> {
    load_rgb(image, preprocess, model.info.size())
        .map_err(|e| anyhow!("cannot read {}: {e}", image.display()))
}

fn input_tensor(model: &AtlasModel, input: &RgbImage) -> Tensor {
    let (w, h) = input.dimensions();
    Tensor::from_slice(&to_chw_f32(input))
        .reshape([1, 3, h as i64, w as i64])
        .to_device(model.device)
}

/// `[1, C, h, w]` → `[h·w·C]` floats, position-major.
fn position_major(act: &Tensor) -> Result<Vec<f32>> {
    let t = act
        .detach()
        .squeeze_dim(0)
        .permute([1, 2, 0])
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
        .contiguous()
        .view([-1]);
    Ok(Vec::<f32>::try_from(t)?)
}

/// Runs `image` through the model with its classification preprocessing (the sidecar's
/// `classify_preprocess`, as `atlas classify` does) and returns the prediction and `layer`'s
/// activations.
pub fn analyse_image(model: &AtlasModel, image: &Path, layer: &str) -> Result<ImageAnalysis> {
    analyse_image_with(model, image, layer, model.info.classify_preprocess())
}

/// [`analyse_image`] with an explicit preprocessing (e.g. the atlas run's, usually `Squash`).
pub fn analyse_image_with(
    model: &AtlasModel,
    image: &Path,
    layer: &str,
    preprocess: Preprocess,
) -> Result<ImageAnalysis> {
    let li = layer_index(model, layer)?;
    let input = load_input(model, image, preprocess)?;
    analyse_input(model, input, li)
}

/// [`analyse_image`] on an already preprocessed input of the model's size.
pub fn analyse_input(model: &AtlasModel, input: RgbImage, layer: usize) -> Result<ImageAnalysis> {
    ensure!(
        input.dimensions() == model.info.size(),
        "the input is {:?}, the model wants {:?}",
        input.dimensions(),
        model.info.size()
    );
    let info = model
        .info
        .layers
        .get(layer)
        .with_context(|| format!("the model has no layer {layer}"))?;
    let x = input_tensor(model, &input);
    let fwd = tch::no_grad(|| model.forward(&x))?;
    let probs = fwd.logits.softmax(-1, Kind::Float);
    let top5 = top_k(&probs, 5).pop().unwrap_or_default();
    let act = &fwd.layers[layer];
    let (c, h, w) = (
        info.channels as usize,
        info.height as usize,
        info.width as usize,
    );
    ensure!(
        act.size() == [1, c as i64, h as i64, w as i64],
        "layer {:?} has shape {:?}, the sidecar says [1, {c}, {h}, {w}]",
        info.name,
        act.size()
    );
    Ok(ImageAnalysis {
        input,
        top5,
        layer: info.name.clone(),
        h,
        w,
        c,
        acts: position_major(act)?,
    })
}

/// The spatial attribution map of `class` in `layer` (spec §9.1 AttrSpatial): per position
/// (row `y·w + x`) `Σ_channels acts · ∂logit_class/∂acts`, with the pre-softmax logit and the
/// model's attribution forward (the max-pool relaxation, where it has max-pools). Length `h·w`.
/// Uses the classification preprocessing, like [`analyse_image`].
pub fn attribution_map(
    model: &AtlasModel,
    image: &Path,
    layer: &str,
    class: usize,
) -> Result<Vec<f32>> {
    let li = layer_index(model, layer)?;
    let input = load_input(model, image, model.info.classify_preprocess())?;
    attribution_map_for_input(model, &input, li, class)
}

/// [`attribution_map`] on an already preprocessed input (e.g. `ImageAnalysis::input`), with the
/// layer given by index.
pub fn attribution_map_for_input(
    model: &AtlasModel,
    input: &RgbImage,
    layer: usize,
    class: usize,
) -> Result<Vec<f32>> {
    ensure!(
        layer < model.info.layers.len(),
        "the model has no layer {layer}"
    );
    ensure!(
        class < model.num_classes(),
        "class {class} does not exist: the model has {} classes",
        model.num_classes()
    );
    ensure!(
        input.dimensions() == model.info.size(),
        "the input is {:?}, the model wants {:?}",
        input.dimensions(),
        model.info.size()
    );
    // One backward from the chosen logit. The input requires grad so the layers are recorded with
    // autograd edges to the logits whatever the module's parameters say.
    let x = input_tensor(model, input).set_requires_grad(true);
    let fwd = model.forward_for_attribution(&x)?;
    let act = &fwd.layers[layer];
    let target = fwd.logits.get(0).get(class as i64);
    let mut grads = fwd.layer_gradients(&target, &[layer], false, false)?;
    let grad = grads.remove(0);
    let map = (grad * act.detach()).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    Ok(Vec::<f32>::try_from(
        map.to_device(Device::Cpu).contiguous().view([-1]),
    )?)
}

/// For each position (row of `acts`, `[positions, c]`), the cell whose mean activation (row of
/// `cell_means`, `[cells, c]`, e.g. `levels/<G>/mean_acts.npy`) has the highest cosine similarity
/// to it, and that similarity. Ties go to the lower cell index; a zero vector has similarity 0 to
/// everything (cell 0). Empty when there are no cells.
pub fn nearest_cells(acts: &[f32], c: usize, cell_means: &[f32]) -> Vec<(usize, f32)> {
    assert!(c > 0, "nearest_cells: c must be positive");
    assert!(
        acts.len().is_multiple_of(c) && cell_means.len().is_multiple_of(c),
        "nearest_cells: {} activations and {} mean values are not rows of {c}",
        acts.len(),
        cell_means.len()
    );
    if cell_means.is_empty() {
        return vec![];
    }
    let unit = |v: &[f32]| -> Vec<f32> {
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        if n > 0.0 {
            v.iter().map(|a| a / n).collect()
        } else {
            vec![0.0; v.len()]
        }
    };
    let means: Vec<Vec<f32>> = cell_means.chunks_exact(c).map(unit).collect();
    acts.par_chunks_exact(c)
        .map(|v| {
            let v = unit(v);
            let mut best = (0usize, f32::NEG_INFINITY);
            for (i, m) in means.iter().enumerate() {
                let s: f32 = v.iter().zip(m).map(|(a, b)| a * b).sum();
                if s > best.1 {
                    best = (i, s);
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_cells_picks_the_most_similar_direction() {
        let means = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let acts = [5.0, 0.1, 0.0, 3.0, 2.0, 2.1, 0.0, 0.0];
        let got = nearest_cells(&acts, 2, &means);
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 0]
        );
        assert!((got[2].1 - 1.0).abs() < 1e-3);
        assert_eq!(got[3].1, 0.0);
        assert!(nearest_cells(&acts, 2, &[]).is_empty());
    }
}
