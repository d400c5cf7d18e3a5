//! The patch-attack workbench (spec §8): paste a small photo of a correlated concept onto an
//! image and watch the classifier flip to a target class.
//!
//! Read it in this order:
//! - [`composite`]: Pillow-exact Lanczos resizing of background and patch, opaque paste at a
//!   corner (NB-ADV `composite_img`).
//! - [`probe`]: softmax probabilities of composites, batched on the model's device.
//! - [`sweep`]: one image, one patch: every (corner, ratio) classified (the size sweep plot).
//! - [`batch`]: many images × many patches, static and dynamic protocols, the success table
//!   ([`table`]).
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::data::decode::load_original;

pub mod batch;
pub mod composite;
pub mod patch_source;
pub mod probe;
pub mod sweep;
pub mod table;

/// Where a patch goes: one of the image's four corners.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    pub const ALL: [Corner; 4] = [
        Corner::TopLeft,
        Corner::TopRight,
        Corner::BottomLeft,
        Corner::BottomRight,
    ];

    /// (px, py) of spec §8.2: top-left = (0,0), top-right = (1,0), bottom-left = (0,1),
    /// bottom-right = (1,1). The patch's top-left corner goes to (px·(side−w), py·(side−w)).
    pub fn offsets(self) -> (u32, u32) {
        match self {
            Corner::TopLeft => (0, 0),
            Corner::TopRight => (1, 0),
            Corner::BottomLeft => (0, 1),
            Corner::BottomRight => (1, 1),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Corner::TopLeft => "top-left",
            Corner::TopRight => "top-right",
            Corner::BottomLeft => "bottom-left",
            Corner::BottomRight => "bottom-right",
        }
    }

    /// Accepts the labels ("top-left", …), case-insensitively, with `_` or a space for `-`.
    pub fn parse(s: &str) -> Option<Corner> {
        let norm = s.trim().to_lowercase().replace(['_', ' '], "-");
        Corner::ALL.into_iter().find(|c| c.label() == norm)
    }
}

impl std::fmt::Display for Corner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Decode an image file at its own size (8-bit RGB, EXIF orientation applied, alpha dropped),
/// with the same safety limits as the collection's loader. The error names the file.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    load_original(path).map_err(|reason| anyhow!("{}: {reason}", path.display()))
}

/// The model's square input side, or an error for a non-square model.
pub fn model_side(model: &crate::model::AtlasModel) -> Result<u32> {
    let (w, h) = model.info.size();
    if w != h {
        bail!("the patch attack needs a square model input; this model takes {w}×{h}");
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corner_labels_round_trip() {
        for c in Corner::ALL {
            assert_eq!(Corner::parse(c.label()), Some(c));
        }
        assert_eq!(Corner::parse("Bottom_Right"), Some(Corner::BottomRight));
        assert_eq!(Corner::parse("middle"), None);
        assert_eq!(Corner::TopRight.offsets(), (1, 0));
        assert_eq!(Corner::BottomLeft.offsets(), (0, 1));
    }
}
