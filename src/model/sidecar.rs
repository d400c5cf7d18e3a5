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
    pub height: i64,
    pub width: i64,
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
        }
        if let Some(head) = &self.linear_head_layer {
            if self.layer_index(head).is_none() {
                bail!("linear_head_layer {head:?} is not one of the layers");
            }
        }
        Ok(())
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
            }],
            linear_head_layer: None,
            relaxed_method: None,
            jvp_method: None,
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
    }
}
