//! Loading and running an atlas model through libtorch.
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::{CModule, Device, IValue, Kind, Tensor};

use super::sidecar::{LayerInfo, Sidecar};

/// An atlas model: its TorchScript module and its sidecar, checked against each other.
pub struct AtlasModel {
    pub path: PathBuf,
    pub info: Sidecar,
    pub device: Device,
    module: CModule,
}

/// One forward pass: pre-softmax logits `[B,K]` and the exposed layers `[B,C,h,w]` in sidecar order.
pub struct Forward {
    pub logits: Tensor,
    /// The layers as feature maps (token and channels-last layers reshaped, see `layout`).
    pub layers: Vec<Tensor>,
    /// The layers as the module returned them: the tensors the logits were computed from.
    module_outputs: Vec<Tensor>,
    infos: Vec<LayerInfo>,
}

impl Forward {
    /// The gradients of `target` (a scalar computed from the logits) with respect to the feature
    /// maps of the layers `which`, in that order. `keep_graph` keeps the graph for another
    /// backward; `create_graph` makes the gradients differentiable (the double-backward trick).
    ///
    /// A reshaped feature map is computed *from* the module's output, beside the path to the
    /// logits, so autograd cannot differentiate the logits with respect to it. The gradient is
    /// taken with respect to the module's output instead and reshaped the same way: the reshape
    /// only selects and permutes entries, so that is exactly the gradient at each map entry
    /// (class/register tokens are dropped with their gradients).
    pub fn layer_gradients(
        &self,
        target: &Tensor,
        which: &[usize],
        keep_graph: bool,
        create_graph: bool,
    ) -> Result<Vec<Tensor>> {
        let inputs: Vec<&Tensor> = which.iter().map(|&l| &self.module_outputs[l]).collect();
        let grads = Tensor::f_run_backward(&[target], &inputs, keep_graph, create_graph)?;
        Ok(which
            .iter()
            .zip(grads)
            .map(|(&l, g)| self.infos[l].feature_map(&g))
            .collect())
    }
}

/// `logits = W · avgpool(layer) + b` for the sidecar's `linear_head_layer`.
pub struct LinearHead {
    pub layer: usize,
    pub weight: Tensor,
    pub bias: Tensor,
}

impl AtlasModel {
    /// Loads `path` (a `.pt` TorchScript file) and its `.json` sidecar, then runs one tiny forward
    /// pass to check the module against the sidecar, so a wrong file fails here with its name.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        if !path.is_file() {
            bail!("model file {} does not exist", path.display());
        }
        let info = Sidecar::load(path)?;
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            anyhow!(
                "{} is not a TorchScript module that libtorch can load: {}",
                path.display(),
                first_line(&e.to_string())
            )
        })?;
        module.set_eval();
        let model = AtlasModel {
            path: path.to_path_buf(),
            info,
            device,
            module,
        };
        model
            .check_against_sidecar()
            .with_context(|| format!("{} does not match its sidecar", path.display()))?;
        Ok(model)
    }

    fn check_against_sidecar(&self) -> Result<()> {
        let (w, h) = self.info.size();
        let x = Tensor::full([1, 3, h as i64, w as i64], 0.5, (Kind::Float, self.device));
        let out = tch::no_grad(|| self.forward(&x))?;
        let k = self.info.classes.len() as i64;
        if out.logits.size() != [1, k] {
            bail!(
                "forward returned logits of shape {:?}, expected [1, {k}] (one per class)",
                out.logits.size()
            );
        }
        for (t, l) in out.module_outputs.iter().zip(&self.info.layers) {
            let want = l.module_shape(1);
            if t.size() != want {
                bail!(
                    "layer {:?} has shape {:?}, the sidecar says {:?} ({:?} layout)",
                    l.name,
                    t.size(),
                    want,
                    l.layout
                );
            }
        }
        if let Some(head) = self.linear_head()? {
            let c = self.info.layers[head.layer].channels;
            if head.weight.size() != [k, c] || head.bias.size() != [k] {
                bail!(
                    "linear_head returned W {:?} and b {:?}, expected [{k}, {c}] and [{k}]",
                    head.weight.size(),
                    head.bias.size()
                );
            }
        }
        if let Some(method) = &self.info.relaxed_method {
            self.run_method(method, &x)
                .with_context(|| format!("the sidecar names method {method:?}"))?;
        }
        if self.has_jvp() {
            let zero = Tensor::zeros([1], (Kind::Int64, self.device));
            let (_, attrs) =
                tch::no_grad(|| self.attribution_jvp(&x, &[(0, zero.shallow_clone(), zero)]))?;
            if attrs[0].size() != [1, k] {
                bail!(
                    "jvp_method returned attributions of shape {:?}, expected [1, {k}]",
                    attrs[0].size()
                );
            }
        }
        Ok(())
    }

    pub fn num_classes(&self) -> usize {
        self.info.classes.len()
    }

    /// Plain forward pass (use under `tch::no_grad` when no gradient is needed).
    pub fn forward(&self, x: &Tensor) -> Result<Forward> {
        self.run_method("forward", x)
    }

    /// The forward pass whose backward uses the max-pool relaxation; the values equal `forward`.
    pub fn forward_for_attribution(&self, x: &Tensor) -> Result<Forward> {
        match &self.info.relaxed_method {
            Some(method) => self.run_method(method, x),
            None => self.forward(x),
        }
    }

    /// `x` as the module accepts it: resized (bilinear, differentiable) to `input_size` when the
    /// module takes that size only and `x` has another (icons are rendered at their own size).
    fn module_input(&self, x: &Tensor) -> Tensor {
        let (w, h) = self.info.size();
        let size = x.size();
        if !self.info.needs_input_size() || size[2..] == [h as i64, w as i64] {
            return x.shallow_clone();
        }
        x.upsample_bilinear2d([h as i64, w as i64], false, None, None)
    }

    fn run_method(&self, method: &str, x: &Tensor) -> Result<Forward> {
        let input = [IValue::Tensor(self.module_input(x))];
        let out = if method == "forward" {
            self.module.forward_is(&input)
        } else {
            self.module.method_is(method, &input)
        }
        .map_err(|e| anyhow!("running {method}: {}", first_line(&e.to_string())))?;
        let IValue::Tuple(mut parts) = out else {
            bail!("{method} must return (logits, [layers]), got another type");
        };
        if parts.len() != 2 {
            bail!(
                "{method} must return a pair (logits, [layers]), got {} values",
                parts.len()
            );
        }
        let layers = tensor_list(parts.pop(), method)?;
        let Some(IValue::Tensor(logits)) = parts.pop() else {
            bail!("{method}: first output must be the logits tensor");
        };
        if layers.len() != self.info.layers.len() {
            bail!(
                "{method} returned {} layers, the sidecar lists {}",
                layers.len(),
                self.info.layers.len()
            );
        }
        Ok(self.as_feature_maps(logits, layers))
    }

    /// The forward pass with every layer also as a `[B,C,h,w]` feature map: the one place where
    /// token and channels-last layers are reshaped.
    fn as_feature_maps(&self, logits: Tensor, module_outputs: Vec<Tensor>) -> Forward {
        let layers = module_outputs
            .iter()
            .zip(&self.info.layers)
            .map(|(t, info)| info.feature_map(t))
            .collect();
        Forward {
            logits,
            layers,
            module_outputs,
            infos: self.info.layers.clone(),
        }
    }

    /// Whether the model offers forward-mode attribution.
    pub fn has_jvp(&self) -> bool {
        self.info.jvp_method.is_some()
    }

    /// Forward-mode attribution (the sidecar's `jvp_method`): one call returns the forward pass and,
    /// for every `(layer, ys, xs)` request, the attribution rows `[B,K]` of the vectors at those
    /// positions. Run it under `no_grad`.
    pub fn attribution_jvp(
        &self,
        x: &Tensor,
        requests: &[(usize, Tensor, Tensor)],
    ) -> Result<(Forward, Vec<Tensor>)> {
        let method = self
            .info
            .jvp_method
            .as_deref()
            .context("the model has no jvp_method")?;
        let layers = IValue::IntList(requests.iter().map(|r| r.0 as i64).collect());
        let ys = IValue::TensorList(requests.iter().map(|r| r.1.shallow_clone()).collect());
        let xs = IValue::TensorList(requests.iter().map(|r| r.2.shallow_clone()).collect());
        let out = self
            .module
            .method_is(
                method,
                &[IValue::Tensor(self.module_input(x)), layers, ys, xs],
            )
            .map_err(|e| anyhow!("running {method}: {}", first_line(&e.to_string())))?;
        let IValue::Tuple(mut parts) = out else {
            bail!("{method} must return (logits, [layers], [attributions])");
        };
        if parts.len() != 3 {
            bail!("{method} must return 3 values, got {}", parts.len());
        }
        let attrs = tensor_list(parts.pop(), method)?;
        let layers = tensor_list(parts.pop(), method)?;
        let Some(IValue::Tensor(logits)) = parts.pop() else {
            bail!("{method}: first output must be the logits tensor");
        };
        if attrs.len() != requests.len() || layers.len() != self.info.layers.len() {
            bail!(
                "{method} returned {} attributions and {} layers for {} requests",
                attrs.len(),
                layers.len(),
                requests.len()
            );
        }
        Ok((self.as_feature_maps(logits, layers), attrs))
    }

    /// The exact linear map of the `linear_head_layer`, when the sidecar names one.
    pub fn linear_head(&self) -> Result<Option<LinearHead>> {
        let Some(name) = &self.info.linear_head_layer else {
            return Ok(None);
        };
        let layer = self.info.layer_index(name).expect("validated sidecar");
        let out = self
            .module
            .method_is::<IValue>("linear_head", &[])
            .map_err(|e| {
                anyhow!(
                    "the sidecar names a linear head but method linear_head fails: {}",
                    first_line(&e.to_string())
                )
            })?;
        match out {
            IValue::Tuple(mut v) if v.len() == 2 => match (v.remove(0), v.remove(0)) {
                (IValue::Tensor(weight), IValue::Tensor(bias)) => Ok(Some(LinearHead {
                    layer,
                    weight: weight.detach().to_kind(Kind::Float),
                    bias: bias.detach().to_kind(Kind::Float),
                })),
                _ => bail!("linear_head must return (W, b) tensors"),
            },
            _ => bail!("linear_head must return a pair (W, b)"),
        }
    }

    /// Softmax probabilities for a batch of `[B,3,H,W]` pixels in [0,1].
    pub fn probabilities(&self, x: &Tensor) -> Result<Tensor> {
        let out = tch::no_grad(|| self.forward(&x.to_device(self.device)))?;
        Ok(out.logits.softmax(-1, Kind::Float))
    }
}

/// A list (or tuple) of tensors returned by a TorchScript method.
fn tensor_list(value: Option<IValue>, method: &str) -> Result<Vec<Tensor>> {
    let items = match value {
        Some(IValue::TensorList(ts)) => return Ok(ts),
        Some(IValue::GenericList(items) | IValue::Tuple(items)) => items,
        _ => bail!("{method}: expected a list of tensors"),
    };
    items
        .into_iter()
        .map(|v| match v {
            IValue::Tensor(t) => Ok(t),
            _ => Err(anyhow!("{method}: a list holds a non-tensor")),
        })
        .collect()
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// The `k` most probable classes of every row of `probs` `[B,K]`: (index, probability).
pub fn top_k(probs: &Tensor, k: usize) -> Vec<Vec<(usize, f32)>> {
    let k = k.min(probs.size()[1] as usize) as i64;
    let (values, indices) = probs.to_device(Device::Cpu).topk(k, -1, true, true);
    let values: Vec<Vec<f32>> = Vec::try_from(values).unwrap_or_default();
    let indices: Vec<Vec<i64>> = Vec::try_from(indices).unwrap_or_default();
    values
        .into_iter()
        .zip(indices)
        .map(|(v, i)| i.into_iter().map(|i| i as usize).zip(v).collect())
        .collect()
}
