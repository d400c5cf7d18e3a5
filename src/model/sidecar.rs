//! The JSON sidecar that describes an atlas model: classes, input size, exposed layers.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::Preprocess;

pub const FORMAT: &str = "activation-atlas-model/1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synset: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LayerInfo {
    pub name: String,
    pub channels: i64,
    /// The feature map's grid (for a token layer: the patch grid).
    pub height: i64,
    pub width: i64,
    /// How the module returns the layer; `channels_first` when the sidecar omits it.
    #[serde(default, skip_serializing_if = "LayerLayout::is_channels_first")]
    pub layout: LayerLayout,
    /// `tokens` layout: how many leading class/register tokens precede the patch tokens.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prefix_tokens: i64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClassifyPreprocess {
    ResizeShorterCrop { resize: u32 },
    Squash,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sidecar {
    pub format: String,
    pub name: String,
    pub input_size: [u32; 2],
    /// Spelled `normalisation` in the sidecar files (models/export.py writes them).
    #[serde(default, rename = "normalisation")]
    pub normalization: String,
    pub classify_preprocess: ClassifyPreprocess,
    pub classes: Vec<ClassInfo>,
    pub layers: Vec<LayerInfo>,
    #[serde(default)]
    pub linear_head_layer: Option<String>,
    #[serde(default)]
    pub relaxed_method: Option<String>,
    /// Optional forward-mode attribution method (see models/CONTRACT.md).
    #[serde(default)]
    pub jvp_method: Option<String>,
    /// The module runs on `input_size` inputs only (e.g. a ViT's position embeddings).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed_input_size: bool,
    #[serde(default)]
    pub source: String,
}

impl Sidecar {
    /// The sidecar path that belongs to a model file: same stem, `.json`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("json")
    }

    pub fn load(model: &Path) -> Result<Self> {
        let path = Self::path_for(model);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not an atlas model: its sidecar {} is missing (see models/CONTRACT.md)",
                model.display(),
                path.display()
            )
        })?;
        let sidecar: Sidecar = serde_json::from_str(&text)
            .with_context(|| format!("sidecar {} is not valid", path.display()))?;
        sidecar
            .validate()
            .with_context(|| format!("sidecar {} is not valid", path.display()))?;
        Ok(sidecar)
    }

    pub fn validate(&self) -> Result<()> {
        if self.format != FORMAT {
            bail!("format is {:?}, expected {FORMAT:?}", self.format);
        }
        if self.classes.is_empty() {
            bail!("it lists no classes");
        }
        if self.layers.is_empty() {
            bail!("it exposes no layers");
        }
        if self.input_size.contains(&0) {
            bail!("input_size {:?} has a zero side", self.input_size);
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.channels <= 0 || l.height <= 0 || l.width <= 0 {
                bail!("layer {:?} has a non-positive shape", l.name);
            }
            if self.layers[..i].iter().any(|o| o.name == l.name) {
                bail!("layer {:?} is listed twice", l.name);
            }
            if l.prefix_tokens < 0 || (l.prefix_tokens > 0 && l.layout != LayerLayout::Tokens) {
                bail!(
                    "layer {:?}: prefix_tokens {} needs layout \"tokens\" and a count >= 0",
                    l.name,
                    l.prefix_tokens
                );
            }
            // The forward-mode method takes positions in the module's own coordinates.
            if self.jvp_method.is_some() && !l.layout.is_channels_first() {
                bail!(
                    "layer {:?} is not channels_first, which jvp_method needs",
                    l.name
                );
            }
        }
        if let Some(head) = &self.linear_head_layer {
            if self.layer_index(head).is_none() {
                bail!("linear_head_layer {head:?} is not one of the layers");
            }
        }
        Ok(())
    }

    /// Whether inputs of another size (icons) must be resized to `input_size` before the
    /// forward pass: when the module says so, and for token layers, whose patch grid is the
    /// sidecar's only at `input_size`.
    pub fn needs_input_size(&self) -> bool {
        self.fixed_input_size || self.layers.iter().any(|l| l.layout == LayerLayout::Tokens)
    }

    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }

    /// Input size as (width, height).
    pub fn size(&self) -> (u32, u32) {
        (self.input_size[1], self.input_size[0])
    }

    /// How images are prepared for classification.
    pub fn classify_preprocess(&self) -> Preprocess {
        match self.classify_preprocess {
            ClassifyPreprocess::ResizeShorterCrop { resize } => {
                Preprocess::ResizeShorterCrop { resize }
            }
            ClassifyPreprocess::Squash => Preprocess::Squash,
        }
    }

    /// Maps a folder label (an ImageNet synset such as `n01440764`, or a class name) to a logit
    /// index. Names match case-insensitively with `_` and spaces treated alike.
    pub fn class_index(&self, label: &str) -> Option<usize> {
        let norm = |s: &str| s.trim().to_lowercase().replace('_', " ");
        if let Some(i) = self
            .classes
            .iter()
            .position(|c| c.synset.as_deref() == Some(label))
        {
            return Some(i);
        }
        let wanted = norm(label);
        self.classes.iter().position(|c| norm(&c.name) == wanted)
    }
}

/// The shape in which the module returns a layer (the sidecar's `layout`, default `channels_first`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LayerLayout {
    /// `[B, C, h, w]`: a convolutional feature map, used as it is.
    #[default]
    ChannelsFirst,
    /// `[B, h, w, C]` (Swin-style stages).
    ChannelsLast,
    /// `[B, prefix_tokens + h·w, C]`: leading class/register tokens, then the patch tokens of the
    /// `h × w` patch grid in row-major order.
    Tokens,
}

impl LayerLayout {
    pub fn is_channels_first(&self) -> bool {
        *self == LayerLayout::ChannelsFirst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sidecar {
        Sidecar {
            format: FORMAT.into(),
            name: "tiny".into(),
            input_size: [32, 32],
            normalization: String::new(),
            classify_preprocess: ClassifyPreprocess::Squash,
            classes: vec![
                ClassInfo {
                    name: "tench".into(),
                    synset: Some("n01440764".into()),
                },
                ClassInfo {
                    name: "great white shark".into(),
                    synset: None,
                },
            ],
            layers: vec![LayerInfo {
                name: "a".into(),
                channels: 4,
                height: 8,
                width: 8,
                layout: LayerLayout::ChannelsFirst,
                prefix_tokens: 0,
            }],
            linear_head_layer: None,
            relaxed_method: None,
            jvp_method: None,
            fixed_input_size: false,
            source: String::new(),
        }
    }

    #[test]
    fn labels_map_by_synset_or_name() {
        let s = sample();
        assert_eq!(s.class_index("n01440764"), Some(0));
        assert_eq!(s.class_index("Great_White_Shark"), Some(1));
        assert_eq!(s.class_index("goldfish"), None);
    }

    #[test]
    fn validation_names_the_problem() {
        let mut s = sample();
        s.linear_head_layer = Some("nope".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        let mut s = sample();
        s.format = "other".into();
        assert!(s.validate().unwrap_err().to_string().contains("format"));
        let mut s = sample();
        s.layers[0].prefix_tokens = 1;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("prefix_tokens"), "{err}");
    }

    #[test]
    fn token_layers_read_from_json_and_feature_maps_stay_as_they_were() {
        let json = r#"{"name": "block6", "channels": 768, "height": 14, "width": 14,
                       "layout": "tokens", "prefix_tokens": 1}"#;
        let l: LayerInfo = serde_json::from_str(json).unwrap();
        assert_eq!((l.layout, l.prefix_tokens), (LayerLayout::Tokens, 1));
        let plain = r#"{"name":"a","channels":4,"height":8,"width":8}"#;
        let l: LayerInfo = serde_json::from_str(plain).unwrap();
        assert_eq!(l, sample().layers[0]);
        assert_eq!(serde_json::to_string(&l).unwrap(), plain);
    }
}
