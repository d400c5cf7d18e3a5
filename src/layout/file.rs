//! File-to-file layout: read an `n×d` `.npy`, lay it out, write an `n×2` (or `n×1`) `.npy`.
//! Used by `atlas layout` (and so by the layout benchmark, which runs umap-learn on the same
//! file).

use std::path::Path;

use anyhow::{Context, Result};

use super::{TsneParams, UmapParams};
use crate::store::npy::{self, Dtype};

/// Which algorithm lays the points out.
#[derive(Clone, Debug)]
pub enum LayoutMethod {
    Umap(UmapParams),
    /// t-SNE in `dims` = 1 or 2 dimensions (writes `n×1` or `n×2`).
    Tsne(TsneParams),
}

/// [`run_layout`] taking the rows, which UMAP then preprocesses in place instead of copying
/// ([`super::umap_owned`]); for callers that can give them up (`atlas build` re-reads them).
pub fn run_layout_owned(
    data: Vec<f32>,
    n: usize,
    d: usize,
    method: &LayoutMethod,
    progress: &mut dyn FnMut(&str, f32),
    cancel: &dyn Fn() -> bool,
) -> Result<Option<(Vec<f32>, usize)>> {
    match method {
        LayoutMethod::Umap(p) => Ok(super::umap_owned(data, n, d, p, progress, cancel)?
            .map(|points| (points.iter().flat_map(|p| [p[0], p[1]]).collect(), 2))),
        LayoutMethod::Tsne(_) => run_layout(&data, n, d, method, progress, cancel),
    }
}

/// Lays out the `n×d` rows of `data` with `method`: the coordinates (`n×dims`, row-major, raw,
/// not normalized) and `dims`; `Ok(None)` when cancelled.
pub fn run_layout(
    data: &[f32],
    n: usize,
    d: usize,
    method: &LayoutMethod,
    progress: &mut dyn FnMut(&str, f32),
    cancel: &dyn Fn() -> bool,
) -> Result<Option<(Vec<f32>, usize)>> {
    Ok(match method {
        LayoutMethod::Umap(p) => super::umap(data, n, d, p, progress, cancel)?
            .map(|points| (points.iter().flat_map(|p| [p[0], p[1]]).collect(), 2)),
        LayoutMethod::Tsne(p) => {
            super::tsne(data, n, d, p, progress, cancel)?.map(|coords| (coords, p.dims))
        }
    })
}

/// Lays out the rows of `input` and writes the raw (un-normalized) coordinates to `output`
/// atomically. Returns the number of rows.
pub fn layout_file(
    input: &Path,
    output: &Path,
    method: &LayoutMethod,
    progress: &mut dyn FnMut(&str, f32),
    cancel: &dyn Fn() -> bool,
) -> Result<Option<usize>> {
    let m = npy::read(input)?;
    let rows = m.rows;
    let Some((coords, dims)) = run_layout_owned(m.data, m.rows, m.cols, method, progress, cancel)
        .with_context(|| format!("laying out {}", input.display()))?
    else {
        return Ok(None);
    };
    npy::write(output, &coords, rows, dims, Dtype::F32)?;
    Ok(Some(rows))
}
