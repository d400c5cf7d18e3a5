//! Attribution of a sampled activation vector to every class logit (spec §5):
//! `attr_c = h · ∇_h logit_c`, with `h` the channel vector at one position.
//!
//! For all classes at once this is a Jacobian-vector product `J·t` of the logits with respect to the
//! layer, in the direction `t` that is zero except `h` at the sampled position. libtorch has no
//! forward-mode AD through TorchScript, so we use the double-backward trick: with a dummy `u`,
//! `g(u) = ∂(logits·u)/∂A = Jᵀu` is linear in `u`, and `∂⟨g(u), t⟩/∂u = J·t`.
//! The first backward is shared by all layers; each layer then needs one more backward.
//! On CPU the double backward of a depthwise convolution loops over channel groups and is slow,
//! so a model may ship a forward-mode method (`jvp_method` in its sidecar) that pushes the tangent
//! forward exactly; it is preferred when present.
//! For a layer that reaches the logits through average pooling and a linear map only, the
//! attribution is exact and needs no autograd: `attr_c = h·W_c / (H·W)`.
use anyhow::Result;
use tch::{Kind, Tensor};

use crate::model::{AtlasModel, Forward, LinearHead};

use super::positions::Position;

/// The positions sampled in one layer for every item of the batch (one per item per call).
pub struct LayerSamples<'a> {
    pub layer: usize,
    pub positions: &'a [Position],
}

/// Picks `A[b, :, y_b, x_b]` for every batch item: `[B, C]`.
pub fn gather_vectors(act: &Tensor, positions: &[Position]) -> Tensor {
    let device = act.device();
    let b = Tensor::arange(positions.len() as i64, (Kind::Int64, device));
    let ys =
        Tensor::from_slice(&positions.iter().map(|p| p.y).collect::<Vec<_>>()).to_device(device);
    let xs =
        Tensor::from_slice(&positions.iter().map(|p| p.x).collect::<Vec<_>>()).to_device(device);
    act.index(&[Some(b), None, Some(ys), Some(xs)])
}

/// Exact attribution through a linear head: `[B,C] × [K,C]ᵀ / (H·W)`.
pub fn linear_head_attribution(vectors: &Tensor, head: &LinearHead, act_size: &[i64]) -> Tensor {
    let area = (act_size[2] * act_size[3]) as f64;
    vectors.matmul(&head.weight.tr()) / area
}

/// Attribution rows `[B,K]` for several sample sets over one forward graph.
///
/// `fwd` must be a forward pass recorded with gradients (the input or the weights require grad).
/// Returns one tensor per entry of `samples`, in order.
pub fn backprop_attributions(fwd: &Forward, samples: &[LayerSamples]) -> Result<Vec<Tensor>> {
    let (logits, layers) = (&fwd.logits, &fwd.layers);
    if samples.is_empty() {
        return Ok(vec![]);
    }
    // One first backward for all layers involved (deduplicated), with a graph we can differentiate.
    let mut involved: Vec<usize> = samples.iter().map(|s| s.layer).collect();
    involved.sort_unstable();
    involved.dedup();
    let u = logits.zeros_like().set_requires_grad(true);
    let s = (logits * &u).sum(Kind::Float);
    let grads = fwd.layer_gradients(&s, &involved, true, true)?;

    let mut out = Vec::with_capacity(samples.len());
    for sample in samples {
        let slot = involved
            .iter()
            .position(|&l| l == sample.layer)
            .expect("involved layer");
        let h = gather_vectors(&layers[sample.layer], sample.positions).detach();
        let g = gather_vectors(&grads[slot], sample.positions);
        let t = (g * h).sum(Kind::Float);
        let mut attr = Tensor::f_run_backward(&[&t], &[&u], true, false)?;
        out.push(attr.remove(0));
    }
    Ok(out)
}

/// How the `h·∇logit` rows are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttributionMethod {
    /// The model's forward-mode method when it has one, else double backward.
    #[default]
    Auto,
    ForwardMode,
    DoubleBackward,
}

/// One forward pass of `x` plus the attribution rows of every sample set, in order.
pub fn forward_with_attributions(
    model: &AtlasModel,
    x: &Tensor,
    samples: &[LayerSamples],
    method: AttributionMethod,
) -> Result<(Forward, Vec<Tensor>)> {
    let forward_mode = match method {
        AttributionMethod::Auto => model.has_jvp(),
        AttributionMethod::ForwardMode => true,
        AttributionMethod::DoubleBackward => false,
    };
    if forward_mode {
        let device = x.device();
        let requests: Vec<(usize, Tensor, Tensor)> = samples
            .iter()
            .map(|s| {
                let ys: Vec<i64> = s.positions.iter().map(|p| p.y).collect();
                let xs: Vec<i64> = s.positions.iter().map(|p| p.x).collect();
                (
                    s.layer,
                    Tensor::from_slice(&ys).to_device(device),
                    Tensor::from_slice(&xs).to_device(device),
                )
            })
            .collect();
        return tch::no_grad(|| model.attribution_jvp(x, &requests));
    }
    // Record a graph from the input so the layers have autograd edges to the logits.
    let x = x.detach().set_requires_grad(true);
    let fwd = model.forward_for_attribution(&x)?;
    let attrs = backprop_attributions(&fwd, samples)?;
    Ok((fwd, attrs))
}
