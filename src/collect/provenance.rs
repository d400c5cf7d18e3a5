//! Where a run's rows come from: the image and layer position of every row (`provenance.csv`),
//! how the run preprocessed its images, and the image region a layer position looks at. Read by
//! the atlas build (exemplar icons) and by the dataset examples of the explorer.
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use image::RgbImage;

use crate::data::Preprocess;
use crate::store::csv_io;

/// One run row's origin, from the run's `provenance.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProvenanceRow {
    pub run_row: usize,
    /// Index of the image in the run's `images.csv`.
    pub image_index: usize,
    pub path: PathBuf,
    pub label: Option<String>,
    /// Position in the layer grid (row from the top, column).
    pub y: i64,
    pub x: i64,
}

/// Parses a run's `preprocess` setting (`squash`, `resize_shorter_crop:N`).
pub fn parse_preprocess(s: &str) -> Result<Preprocess> {
    if s == "squash" {
        return Ok(Preprocess::Squash);
    }
    if let Some(n) = s.strip_prefix("resize_shorter_crop:") {
        let resize = n
            .parse()
            .with_context(|| format!("bad resize in preprocess setting {s:?}"))?;
        return Ok(Preprocess::ResizeShorterCrop { resize });
    }
    bail!("unknown preprocess setting {s:?}")
}

/// The rows of `layer` in the run's `provenance.csv` (`run_root/provenance.csv`), indexed by the
/// layer's run row; exactly `rows` of them (the row count of the layer's `acts.npy`).
pub fn read_layer_provenance(
    run_root: &Path,
    layer: &str,
    rows: usize,
) -> Result<Vec<ProvenanceRow>> {
    read_provenance(&run_root.join("provenance.csv"), layer, rows)
}

/// The provenance rows of `layer`, indexed by the layer's run row; exactly `rows` of them.
fn read_provenance(path: &Path, layer: &str, rows: usize) -> Result<Vec<ProvenanceRow>> {
    let mut records = csv_io::open(path)?.into_records();
    let read_error = || format!("reading {}", path.display());
    let header = records
        .next()
        .transpose()
        .with_context(read_error)?
        .with_context(|| format!("{} is empty", path.display()))?;
    ensure!(
        header
            .iter()
            .eq("row,layer,image_index,path,label,y,x,draw".split(',')),
        "{} has an unknown header {header:?}",
        path.display()
    );
    let mut out = Vec::with_capacity(rows);
    for f in records {
        let f = f.with_context(read_error)?;
        let line = csv_io::line_of(&f);
        let bad = || format!("{}: malformed line {line}: {f:?}", path.display());
        ensure!(f.len() == 8, bad());
        if &f[1] != layer {
            continue;
        }
        let row: usize = f[0].parse().with_context(bad)?;
        ensure!(
            row == out.len(),
            "{}: rows of layer {layer:?} are not numbered 0, 1, 2, … (line {line} has row {row})",
            path.display(),
        );
        out.push(ProvenanceRow {
            run_row: row,
            image_index: f[2].parse().with_context(bad)?,
            path: PathBuf::from(&f[3]),
            label: (!f[4].is_empty()).then(|| f[4].to_string()),
            y: f[5].parse().with_context(bad)?,
            x: f[6].parse().with_context(bad)?,
        });
    }
    ensure!(
        out.len() == rows,
        "{} has {} rows of layer {layer:?}, its acts.npy has {rows}",
        path.display(),
        out.len()
    );
    Ok(out)
}

/// The square-ish region of a `model_input` = (width W, height H) image that position
/// (`pos_y`, `pos_x`) of a `layer_h × layer_w` grid looks at: (x0, y0, width, height) in pixels.
///
/// Centre: the centre of the position's cell, ((x + 0.5)/w·W, (y + 0.5)/h·H). Side: 2·W/w
/// (2·H/h vertically) clamped to [W/8, W]. The theoretical receptive field of a deep layer covers
/// most of the image, but the *effective* one (where the gradient mass is, Luo et al. 2016) is a
/// roughly Gaussian blob a few strides wide around the centre; two strides shows the position's
/// own cell plus half of each neighbour, which is how overlapping patches look in Building
/// Blocks' activation grids. The lower clamp W/8 keeps early layers (stride 4–8) from giving
/// patches too small to recognize anything in. The region is shifted (not shrunk) to stay inside
/// the image.
pub fn patch_rect(
    pos_y: i64,
    pos_x: i64,
    layer_h: usize,
    layer_w: usize,
    model_input: (u32, u32),
) -> (u32, u32, u32, u32) {
    let axis = |pos: i64, cells: usize, size: u32| -> (u32, u32) {
        let size_f = size as f64;
        let cells = cells.max(1) as f64;
        let side = (2.0 * size_f / cells)
            .clamp(size_f / 8.0, size_f)
            .round()
            .clamp(1.0, size_f);
        let centre = (pos as f64 + 0.5) / cells * size_f;
        let start = (centre - side / 2.0).round().clamp(0.0, size_f - side);
        (start as u32, side as u32)
    };
    let (x0, w) = axis(pos_x, layer_w, model_input.0);
    let (y0, h) = axis(pos_y, layer_h, model_input.1);
    (x0, y0, w, h)
}

/// Cuts the region of [`patch_rect`] out of a preprocessed model input and resizes it to
/// `out_px × out_px` (bilinear; returned as is when it already has that size).
pub fn crop_patch(
    input: &RgbImage,
    pos_y: i64,
    pos_x: i64,
    layer_h: usize,
    layer_w: usize,
    out_px: u32,
) -> RgbImage {
    let (x0, y0, w, h) = patch_rect(pos_y, pos_x, layer_h, layer_w, input.dimensions());
    let crop = image::imageops::crop_imm(input, x0, y0, w, h).to_image();
    if (w, h) == (out_px, out_px) {
        crop
    } else {
        image::imageops::resize(&crop, out_px, out_px, image::imageops::FilterType::Triangle)
    }
}
