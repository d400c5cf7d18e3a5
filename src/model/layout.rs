//! How an exposed layer, as the module returns it, becomes the `[B, C, h, w]` feature map that the
//! rest of the pipeline sees (sampling, attribution, icons, the One image grid).
//!
//! Convolutional networks return feature maps already. Vision transformers return tokens
//! `[B, N, C]`: a few leading class/register tokens, then the `h·w` patch tokens in row-major
//! order; Swin-style networks return `[B, h, w, C]`. The sidecar says which (`layout`,
//! `prefix_tokens`), and [`LayerInfo::feature_map`] is the one place where the reshape happens,
//! right after the forward pass (see `torch_model::AtlasModel::run_method`).
use tch::Tensor;

use super::sidecar::{LayerInfo, LayerLayout};

impl LayerInfo {
    /// The shape the module returns for this layer and a batch of `batch` images.
    pub fn module_shape(&self, batch: i64) -> Vec<i64> {
        let (c, h, w) = (self.channels, self.height, self.width);
        match self.layout {
            LayerLayout::ChannelsFirst => vec![batch, c, h, w],
            LayerLayout::ChannelsLast => vec![batch, h, w, c],
            LayerLayout::Tokens => vec![batch, self.prefix_tokens + h * w, c],
        }
    }

    /// The module's tensor for this layer as a `[B, C, h, w]` feature map: class/register tokens
    /// dropped, patch tokens laid out on their grid, channels first. A feature map is returned as
    /// it is (the same tensor); the others are contiguous copies, computed with autograd so that
    /// gradients with respect to the input flow through them (icons optimise the pixels).
    pub fn feature_map(&self, module_output: &Tensor) -> Tensor {
        let (c, h, w) = (self.channels, self.height, self.width);
        match self.layout {
            LayerLayout::ChannelsFirst => module_output.shallow_clone(),
            LayerLayout::ChannelsLast => module_output.permute([0, 3, 1, 2]).contiguous(),
            LayerLayout::Tokens => {
                let batch = module_output.size()[0];
                module_output
                    .narrow(1, self.prefix_tokens, h * w)
                    .reshape([batch, h, w, c])
                    .permute([0, 3, 1, 2])
                    .contiguous()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    fn layer(layout: LayerLayout, prefix_tokens: i64) -> LayerInfo {
        LayerInfo {
            name: "l".into(),
            channels: 3,
            height: 2,
            width: 4,
            layout,
            prefix_tokens,
        }
    }

    #[test]
    fn tokens_map_row_major_after_the_prefix() {
        let info = layer(LayerLayout::Tokens, 2);
        assert_eq!(info.module_shape(5), [5, 10, 3]);
        // Token n, channel k holds 100·n + k.
        let tokens = (Tensor::arange(10, (Kind::Float, tch::Device::Cpu)).view([1, 10, 1]) * 100.0
            + Tensor::arange(3, (Kind::Float, tch::Device::Cpu)).view([1, 1, 3]))
        .repeat([2, 1, 1]);
        let map = info.feature_map(&tokens);
        assert_eq!(map.size(), [2, 3, 2, 4]);
        for (y, x, k) in [(0, 0, 0), (0, 3, 1), (1, 0, 2), (1, 2, 0)] {
            let token = 2 + y * 4 + x;
            assert_eq!(
                map.double_value(&[1, k, y, x]),
                (100 * token + k) as f64,
                "(y {y}, x {x}, channel {k})"
            );
        }
    }

    #[test]
    fn channels_last_is_permuted_and_channels_first_kept() {
        let info = layer(LayerLayout::ChannelsLast, 0);
        assert_eq!(info.module_shape(1), [1, 2, 4, 3]);
        let nhwc = Tensor::arange(24, (Kind::Float, tch::Device::Cpu)).view([1, 2, 4, 3]);
        let map = info.feature_map(&nhwc);
        assert_eq!(map.size(), [1, 3, 2, 4]);
        assert_eq!(
            map.double_value(&[0, 2, 1, 3]),
            nhwc.double_value(&[0, 1, 3, 2])
        );
        let nchw = Tensor::arange(24, (Kind::Float, tch::Device::Cpu)).view([1, 3, 2, 4]);
        let same = layer(LayerLayout::ChannelsFirst, 0).feature_map(&nchw);
        assert!(same.equal(&nchw));
    }
}
