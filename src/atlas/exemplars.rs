//! Exemplar icons (issue 13 §3): every cell drawn with real pixels instead of a feature
//! visualization. A cell's examples are its atlas rows ranked by the cosine similarity of their
//! activation to the cell's mean activation ([`crate::grid::rank::rank_by_similarity`],
//! the ranking of the app's dataset-examples list); the *exemplar* is the receptive-field patch
//! ([`crate::collect::provenance::patch_rect`]) of the first one, the *mosaic* the patches of the
//! first four in a 2×2 grid. Images are read with the run's own preprocessing (`squash` or
//! `resize_shorter_crop:N` at the model's input size) and patches are resized with Pillow's
//! LANCZOS ([`crate::data::resize_lanczos`]), so a sheet tile is exactly
//! `PIL.Image.open(p).convert("RGB").resize(input, BILINEAR).crop(rect).resize((S, S), LANCZOS)`
//! for a squashed run.
//!
//! Exemplars need no model and no optimization, only image decoding, so the build writes them
//! right after the cell tables, before any synthetic icon is rendered. Sheets have the synthetic
//! sheets' format (`levels/G/exemplars/sheet_NNNN.png`, `levels/G/mosaics/sheet_NNNN.png`).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use image::{Rgb, RgbImage};
use rayon::prelude::*;

use super::manifest::{kind_sheet_path, level_dir, IconKind};
use crate::collect::provenance::{
    parse_preprocess, patch_rect, read_layer_provenance, ProvenanceRow,
};
use crate::collect::run_folder::RunManifest;
use crate::data::{load_rgb, resize_lanczos, Preprocess};
use crate::grid::rank::rank_by_similarity;
use crate::model::sidecar::Sidecar;
use crate::store::atomic;

/// Colour of mosaic quadrants of cells with fewer than four examples, and of tiles whose image
/// could not be read.
pub const EMPTY: Rgb<u8> = Rgb([235, 235, 235]);

/// Cells processed together: their patches are held in memory until their sheets are written
/// (two tiles per cell), and each image they need is decoded once.
const CHUNK_CELLS: usize = 2048;

/// Where the atlas rows come from: image, layer position, and how the run read the images.
pub struct ExemplarSource {
    /// Per atlas row.
    pub rows: Vec<ProvenanceRow>,
    pub preprocess: Preprocess,
    /// The model's input (width, height).
    pub model_input: (u32, u32),
    pub layer_h: usize,
    pub layer_w: usize,
}

impl ExemplarSource {
    /// Reads the provenance of `atlas_rows` (run rows of `layer`, whose `acts.npy` has
    /// `run_rows` rows), the run's preprocessing and the layer's grid from the model sidecar
    /// (`model_file`, else the run's model).
    pub fn load(
        run_root: &Path,
        run: &RunManifest,
        layer: &str,
        model_file: &Path,
        run_rows: usize,
        atlas_rows: &[usize],
    ) -> Result<Self> {
        let all = read_layer_provenance(run_root, layer, run_rows)?;
        let rows = atlas_rows.iter().map(|&r| all[r].clone()).collect();
        let preprocess = parse_preprocess(&run.settings.preprocess)
            .with_context(|| format!("in the run {}", run_root.display()))?;
        let sidecar = Sidecar::load(model_file)
            .or_else(|e| Sidecar::load(&run.settings.model_file).map_err(|_| e))
            .context("exemplar patches need the layer's grid size from the model sidecar")?;
        let info = sidecar
            .layer_index(layer)
            .map(|i| &sidecar.layers[i])
            .with_context(|| format!("the model sidecar has no layer {layer:?}"))?;
        Ok(ExemplarSource {
            rows,
            preprocess,
            model_input: sidecar.size(),
            layer_h: info.height.max(1) as usize,
            layer_w: info.width.max(1) as usize,
        })
    }

    /// Up to `count` of the run's images (distinct, evenly spread over the rows), read with the
    /// run's preprocessing and resized to `size × size`: what MACO's own spectrum is estimated
    /// from. Unreadable images are skipped.
    pub fn sample_images(&self, count: usize, size: u32) -> Vec<RgbImage> {
        let mut paths: Vec<&Path> = self.rows.iter().map(|r| r.path.as_path()).collect();
        paths.dedup();
        let step = paths.len().div_ceil(count.max(1)).max(1);
        paths
            .par_iter()
            .step_by(step)
            .filter_map(|p| load_rgb(p, self.preprocess, self.model_input).ok())
            .map(|img| resize_lanczos(&img, (size, size)))
            .collect()
    }

    /// The patch of atlas row `row` in `input` (the row's image, preprocessed), resized to
    /// `w × h` with Pillow's LANCZOS (unchanged when it already has that size).
    pub fn patch(&self, input: &RgbImage, row: usize, (w, h): (u32, u32)) -> RgbImage {
        let r = &self.rows[row];
        let (x0, y0, pw, ph) = patch_rect(r.y, r.x, self.layer_h, self.layer_w, input.dimensions());
        let crop = image::imageops::crop_imm(input, x0, y0, pw, ph).to_image();
        if (pw, ph) == (w, h) {
            crop
        } else {
            resize_lanczos(&crop, (w, h))
        }
    }
}

/// The patches one image gives, as (cell in the chunk, slot, patch), and why it could not be
/// read.
type ImagePatches = (Vec<(usize, usize, RgbImage)>, Option<(PathBuf, String)>);

/// What one level's exemplar pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExemplarStats {
    pub cells: usize,
    pub sheets: usize,
    /// Image decodes (an image used by several cells of a chunk is decoded once).
    pub decoded: usize,
    /// Images that could not be read (their tiles are [`EMPTY`]).
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The quadrant sizes of a mosaic of side `s`: (width, height) of quadrant `k` (0 top left,
/// 1 top right, 2 bottom left, 3 bottom right) and its offset.
pub fn mosaic_quadrant(s: u32, k: usize) -> ((u32, u32), (u32, u32)) {
    let a = s / 2;
    let b = s - a;
    let (col, row) = ((k % 2) as u32, (k / 2) as u32);
    let w = if col == 0 { a } else { b };
    let h = if row == 0 { a } else { b };
    ((w, h), (col * a, row * a))
}

/// The atlas rows shown by a cell's exemplar (the first) and mosaic (up to four).
pub fn cell_exemplar_rows(
    acts: &[f32],
    c: usize,
    norms: &[f32],
    members: &[usize],
    mean: &[f32],
) -> Vec<usize> {
    rank_by_similarity(acts, c, norms, members, mean, 4)
        .into_iter()
        .map(|(r, _)| r)
        .collect()
}

/// The cache key of a level's exemplar sheets: the cell table's key and everything that decides
/// the pixels.
pub fn exemplar_key(
    level_key: &str,
    source: &ExemplarSource,
    icon: u32,
    per_sheet: usize,
) -> String {
    format!(
        "{level_key} exemplars=cosine-top4 patch=2strides resize=lanczos icon={icon} \
         per_sheet={per_sheet} preprocess={:?} input={:?} layer={}x{}",
        source.preprocess, source.model_input, source.layer_h, source.layer_w
    )
}

/// Writes the exemplar and mosaic sheets of one level (unless `key` says they are current),
/// `per_sheet` cells to a sheet. `members[i]` are the atlas rows of cell `i` and
/// `means[i·c..(i+1)·c]` its mean activation. `Ok(None)` when cancelled; `Ok(Some(stats))` with
/// `stats.sheets == 0` when nothing needed writing.
#[allow(clippy::too_many_arguments)]
pub fn write_level(
    root: &Path,
    grid: usize,
    members: &[Vec<usize>],
    means: &[f32],
    acts: &[f32],
    c: usize,
    norms: &[f32],
    source: &ExemplarSource,
    icon: u32,
    per_sheet: usize,
    key: &str,
    cancel: &dyn Fn() -> bool,
) -> Result<Option<ExemplarStats>> {
    ensure!(icon >= 2, "the icon size must be at least 2 pixels");
    let per_sheet = per_sheet.max(1);
    let cells = members.len();
    let sheets = cells.div_ceil(per_sheet);
    let dir = level_dir(root, grid);
    let key_file = dir.join(IconKind::Exemplar.dir_name()).join("exemplar.key");
    let all_there = (0..sheets).all(|s| {
        kind_sheet_path(root, grid, IconKind::Exemplar, s).is_file()
            && kind_sheet_path(root, grid, IconKind::Mosaic, s).is_file()
    });
    if all_there && std::fs::read_to_string(&key_file).is_ok_and(|k| k == key) {
        return Ok(Some(ExemplarStats {
            cells,
            ..Default::default()
        }));
    }
    for kind in [IconKind::Exemplar, IconKind::Mosaic] {
        let d = dir.join(kind.dir_name());
        if d.exists() {
            std::fs::remove_dir_all(&d).with_context(|| format!("cannot clear {}", d.display()))?;
        }
        std::fs::create_dir_all(&d)?;
    }
    let mut stats = ExemplarStats {
        cells,
        ..Default::default()
    };
    let chunk = (CHUNK_CELLS / per_sheet).max(1) * per_sheet;
    for start in (0..cells).step_by(chunk) {
        if cancel() {
            return Ok(None);
        }
        let end = (start + chunk).min(cells);
        // Per cell of the chunk: its ranked rows; per image: the (cell, slot) patches it gives.
        let ranked: Vec<Vec<usize>> = (start..end)
            .into_par_iter()
            .map(|i| cell_exemplar_rows(acts, c, norms, &members[i], &means[i * c..(i + 1) * c]))
            .collect();
        let mut by_image: BTreeMap<&Path, Vec<(usize, usize, usize)>> = BTreeMap::new();
        for (ci, rows) in ranked.iter().enumerate() {
            for (slot, &row) in rows.iter().enumerate() {
                by_image
                    .entry(source.rows[row].path.as_path())
                    .or_default()
                    .push((ci, slot, row));
            }
        }
        let n = end - start;
        let decoded: Vec<ImagePatches> = by_image
            .into_par_iter()
            .map(|(path, wants)| {
                let input = match load_rgb(path, source.preprocess, source.model_input) {
                    Ok(img) => img,
                    Err(e) => return (vec![], Some((path.to_path_buf(), e))),
                };
                let mut out = vec![];
                for (ci, slot, row) in wants {
                    if slot == 0 {
                        // Slot usize::MAX marks the single exemplar.
                        out.push((ci, usize::MAX, source.patch(&input, row, (icon, icon))));
                    }
                    let (size, _) = mosaic_quadrant(icon, slot);
                    out.push((ci, slot, source.patch(&input, row, size)));
                }
                (out, None)
            })
            .collect();
        let mut singles: Vec<RgbImage> = vec![RgbImage::from_pixel(icon, icon, EMPTY); n];
        let mut mosaics: Vec<RgbImage> = vec![RgbImage::from_pixel(icon, icon, EMPTY); n];
        for (patches, problem) in decoded {
            stats.decoded += 1;
            if let Some(p) = problem {
                stats.unreadable.push(p);
            }
            for (ci, slot, img) in patches {
                if slot == usize::MAX {
                    singles[ci] = img;
                } else {
                    let (_, (ox, oy)) = mosaic_quadrant(icon, slot);
                    image::imageops::replace(&mut mosaics[ci], &img, ox as i64, oy as i64);
                }
            }
        }
        if cancel() {
            return Ok(None);
        }
        let first_sheet = start / per_sheet;
        let jobs: Vec<(IconKind, usize, &[RgbImage])> = singles
            .chunks(per_sheet)
            .enumerate()
            .map(|(k, t)| (IconKind::Exemplar, first_sheet + k, t))
            .chain(
                mosaics
                    .chunks(per_sheet)
                    .enumerate()
                    .map(|(k, t)| (IconKind::Mosaic, first_sheet + k, t)),
            )
            .collect();
        jobs.par_iter()
            .map(|(kind, s, tiles)| {
                super::manifest::write_sheet(&kind_sheet_path(root, grid, *kind, *s), tiles)
            })
            .collect::<Result<Vec<()>>>()?;
        stats.sheets += jobs.len() / 2;
    }
    stats.unreadable.sort();
    stats.unreadable.dedup_by(|a, b| a.0 == b.0);
    atomic::write_bytes(&key_file, key.as_bytes())?;
    Ok(Some(stats))
}
