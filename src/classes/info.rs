//! What the class jobs write next to their atlas folders: `class_atlas.json`
//! ([`ClassAtlasInfo`]) and `comparison.json` ([`ComparisonInfo`]). Both the jobs
//! ([`super::job`], [`super::compare`]) and the comparison's picture ([`super::plot`]) read them.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::select::{ClassFilter, Selection};

pub const CLASS_ATLAS_FORMAT: &str = "activation-atlas-class/1";
pub const COMPARISON_FORMAT: &str = "activation-atlas-compare/1";

/// A class: index into the run's `class_names` and its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassRef {
    pub index: usize,
    pub name: String,
}

/// `class_atlas.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAtlasInfo {
    pub format: String,
    pub source_run: PathBuf,
    pub layer: String,
    pub class: ClassRef,
    pub filter: ClassFilter,
    pub n: usize,
    pub selection: Selection,
    /// Rows the winner filter gives, and the magnitude filter (after dropping ≤ 0).
    pub winner_count: usize,
    pub magnitude_count: usize,
    /// The source run's row of every atlas row (atlas row i = `rows[i]`).
    pub rows: Vec<usize>,
    pub grid: usize,
    pub min_count: usize,
    /// The manifest's layout text.
    pub layout: String,
    pub whitening: String,
}

/// One kept cell of the comparison grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellBin {
    /// Index in `cells.csv` (and icon index).
    pub index: usize,
    /// Column (x bin, 0 = most A) and row from the bottom (y bin).
    pub col: usize,
    pub row: usize,
    pub count: usize,
    /// x ∈ [lo, hi) and y ∈ [lo, hi) of the cell (the last bin is closed).
    pub x_range: [f32; 2],
    pub y_range: [f32; 2],
    /// Up to 5 (class, mean attribution), largest first; `top[0]` labels the cell.
    pub top: Vec<(usize, f32)>,
    pub label: String,
}

/// `comparison.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonInfo {
    pub format: String,
    pub source_run: PathBuf,
    pub layer: String,
    pub a: ClassRef,
    pub b: ClassRef,
    pub filter: ClassFilter,
    pub n: usize,
    pub selection: Selection,
    /// Rows per class under the filter (before combining).
    pub a_count: usize,
    pub b_count: usize,
    /// The source run's row of every sample (= atlas row).
    pub rows: Vec<usize>,
    /// Per sample: x ∈ [−1, 1] (positive = more B) and y ∈ [0, 1] (normalized 1-D t-SNE).
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    /// The raw 1-D t-SNE coordinate.
    pub y_raw: Vec<f32>,
    /// The percentile of |attr_B − attr_A| used (99) and its value (the divisor).
    pub percentile: f64,
    pub scale: f64,
    pub grid: usize,
    pub min_count: usize,
    pub tsne: String,
    pub whitening: String,
    pub cells: Vec<CellBin>,
    /// Class atlas folders built with the comparison.
    pub class_atlases: Vec<PathBuf>,
}
