//! Where a patch comes from. A [`PatchSource`] is what the app's pages hand to the attack
//! workbench, either as an egui drag-and-drop payload (drag an icon or a dataset example onto the "Patch attack"
//! tab, then onto the image) or through a "Use as patch" button. It is cheap to clone; the
//! pixels are read by [`resolve`] on a worker thread when the patch is actually wanted.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{ensure, Result};
use image::RgbImage;

use crate::analysis::examples::{example_patch, Example};

/// Side of a dataset-example patch cut for the workbench (Lanczos-resized again when pasted).
pub const EXAMPLE_PATCH_PX: u32 = 128;

#[derive(Clone)]
pub enum PatchSource {
    /// Pixels already in hand (a cut rectangle, a patch from the tray).
    Pixels { name: String, image: Arc<RgbImage> },
    /// An image file (dropped from the desktop, or chosen in a file dialog).
    File(PathBuf),
    /// One icon of an atlas: tile `tile` of icon sheet `sheet`.
    Icon {
        name: String,
        sheet: PathBuf,
        tile: usize,
        columns: usize,
        icon_px: u32,
    },
    /// The image patch under one dataset example of an atlas cell.
    Example {
        name: String,
        example: Box<Example>,
        /// The model input size the example's position refers to.
        model_input: (u32, u32),
    },
}

impl PatchSource {
    /// A short description for logs and the tray.
    pub fn name(&self) -> String {
        match self {
            PatchSource::Pixels { name, .. }
            | PatchSource::Icon { name, .. }
            | PatchSource::Example { name, .. } => name.clone(),
            PatchSource::File(p) => file_name(p),
        }
    }
}

/// The icon of cell `index` of an atlas level as a patch source.
pub fn icon_source(
    root: &Path,
    grid: usize,
    index: usize,
    record: &crate::atlas::manifest::LevelRecord,
    icon_px: u32,
    name: String,
) -> PatchSource {
    let per = record.icons_per_sheet.max(1);
    PatchSource::Icon {
        name,
        sheet: crate::atlas::manifest::sheet_path(root, grid, index / per),
        tile: index % per,
        columns: record.sheet_columns.max(1),
        icon_px,
    }
}

/// A dataset example as a patch source (`model_input`: the atlas's model input size).
pub fn example_source(example: &Example, model_input: (u32, u32)) -> PatchSource {
    PatchSource::Example {
        name: format!(
            "patch of {} at position ({}, {})",
            file_name(&example.image_path),
            example.pos_y,
            example.pos_x
        ),
        example: Box::new(example.clone()),
        model_input,
    }
}

/// Reads the patch's pixels (off the UI thread: files are decoded, tiles cut, examples re-read).
pub fn resolve(source: &PatchSource) -> Result<(String, RgbImage)> {
    let image = match source {
        PatchSource::Pixels { image, .. } => (**image).clone(),
        PatchSource::File(path) => crate::attack::load_image(path)?,
        PatchSource::Icon {
            sheet,
            tile,
            columns,
            icon_px,
            ..
        } => {
            let img = crate::attack::load_image(sheet)?;
            let cols = (*columns).max(1);
            let (x, y) = (
                (tile % cols) as u32 * icon_px,
                (tile / cols) as u32 * icon_px,
            );
            ensure!(
                x + icon_px <= img.width() && y + icon_px <= img.height(),
                "{} has no tile {tile}",
                sheet.display()
            );
            image::imageops::crop_imm(&img, x, y, *icon_px, *icon_px).to_image()
        }
        PatchSource::Example {
            example,
            model_input,
            ..
        } => example_patch(example, *model_input, EXAMPLE_PATCH_PX)?,
    };
    ensure!(
        image.width() > 0 && image.height() > 0,
        "{} is an empty image",
        source.name()
    );
    Ok((source.name(), image))
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}
