//! Dataset examples: the non-parametric view of an atlas cell (which image patches landed there).
//!
//! [`DatasetIndex::load`] joins an atlas folder with the collection run it was built from:
//! the normalized layout (one point per atlas row), the layer's activation rows, and for every row
//! the image and the layer position it was sampled at (`provenance.csv`, `images.csv`).
//!
//! Atlas rows are not always run rows: `atlas build --max-points M` keeps `M` evenly strided rows
//! of the run (`build::pick_rows`). Atlas row `i` is run row `pick_rows(R, Some(N))[i]`, with `N`
//! the manifest's `points` and `R` the run's row count at build time (`run_rows` in the manifest;
//! atlases written before that field use the run's current count). Because a run folder can be
//! re-collected after the atlas was built, loading also re-derives one level's per-cell means
//! from the mapped rows and refuses the atlas when they do not reproduce `mean_acts.npy`.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, ensure, Context, Result};
use image::RgbImage;

use crate::atlas::build::pick_rows;
use crate::atlas::manifest::{level_dir, read_cells, AtlasManifest};
use crate::collect::run_folder::{RunFolder, RunManifest};
use crate::data::{load_rgb, Preprocess};
use crate::grid::cell_index;
use crate::model::sidecar::Sidecar;
use crate::store::npy;

pub use crate::collect::provenance::{
    crop_patch, parse_preprocess, patch_rect, read_layer_provenance, ProvenanceRow,
};
pub use crate::grid::rank::{rank_by_similarity, row_norms};

/// One dataset example of a cell: an atlas row, the image it was sampled from and where.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// Atlas row: index into [`DatasetIndex::points`] (and argument of [`DatasetIndex::row_image`]).
    pub row: usize,
    pub image_path: PathBuf,
    /// The image's folder label, if it has one.
    pub label: Option<String>,
    /// Position in the layer grid (row from the top, column), as sampled by `atlas collect`.
    pub pos_y: i64,
    pub pos_x: i64,
    /// The layer grid's size.
    pub layer_h: usize,
    pub layer_w: usize,
    /// Cosine similarity of this row's activation to the mean activation of the cell it was
    /// listed for (1 = the most typical).
    pub similarity: f32,
    /// The row of the run (`provenance.csv`'s `row` for the atlas's layer).
    pub run_row: usize,
    /// Index of the image in the run's `images.csv`.
    pub image_index: usize,
    /// How the run turned the image into the model input (needed to cut the patch).
    pub preprocess: Preprocess,
}

/// Point indices of one grid size sorted by cell: `order[starts[k]..starts[k+1]]`-style lookup
/// by binary search on `keys` (cell id `y·G + x` of each sorted entry), so a fine grid costs
/// O(N) memory, not O(G²).
struct Binning {
    keys: Vec<u64>,
    order: Vec<u32>,
}

/// An atlas joined with its run: layout points, activations and provenance of every atlas row.
///
/// The activation rows stay in the run's `acts.npy` and are read on demand (a cell's members
/// when its examples are ranked): at a million rows of 1,280 channels they would be 5 GB in
/// memory, and reading them all would make opening the index take tens of seconds.
pub struct DatasetIndex {
    root: PathBuf,
    manifest: AtlasManifest,
    points: Vec<[f32; 2]>,
    /// The layer's `acts.npy`; atlas row `i` is its row `source[i]`.
    acts: npy::RowReader,
    source: Vec<usize>,
    c: usize,
    rows: Vec<ProvenanceRow>,
    layer_h: usize,
    layer_w: usize,
    model_input: (u32, u32),
    preprocess: Preprocess,
    binnings: Mutex<HashMap<usize, Arc<Binning>>>,
}

impl DatasetIndex {
    /// Reads the atlas at `atlas_root` and the parts of its run that describe the atlas's rows.
    pub fn load(atlas_root: &Path) -> Result<DatasetIndex> {
        let manifest = AtlasManifest::load(atlas_root)?;
        let run = RunFolder::new(&manifest.run);
        let (run_manifest, layer_dir) = run_layer(&manifest, &run, atlas_root)?;
        let acts_path = manifest.run.join(layer_dir).join("acts.npy");
        let acts = AtlasActs::open(&manifest, atlas_root, &acts_path)?;
        let c = manifest.channels;
        let points = read_layout(&manifest, atlas_root)?;
        let rows = atlas_provenance(&run, &manifest.layer, &acts)?;
        let sidecar = layer_sidecar(&manifest, &run_manifest)?;
        let li = sidecar.layer_index(&manifest.layer).with_context(|| {
            format!(
                "the model sidecar for {} has no layer {:?}",
                manifest.model_file.display(),
                manifest.layer
            )
        })?;
        let info = &sidecar.layers[li];
        ensure!(
            info.channels as usize == c,
            "the model's layer {:?} has {} channels, {} has {c}",
            manifest.layer,
            info.channels,
            acts_path.display()
        );
        for r in &rows {
            ensure!(
                (0..info.height).contains(&r.y) && (0..info.width).contains(&r.x),
                "provenance row {} has position ({}, {}) outside the {}×{} layer",
                r.run_row,
                r.y,
                r.x,
                info.height,
                info.width
            );
        }
        let preprocess = parse_preprocess(&run_manifest.settings.preprocess)
            .with_context(|| format!("in {}", run.manifest_path().display()))?;

        let index = DatasetIndex {
            root: atlas_root.to_path_buf(),
            points,
            acts: acts.reader,
            source: acts.source,
            c,
            rows,
            layer_h: info.height as usize,
            layer_w: info.width as usize,
            model_input: sidecar.size(),
            preprocess,
            binnings: Mutex::new(HashMap::new()),
            manifest,
        };
        index.check_against_level()?;
        Ok(index)
    }

    /// Re-derives the coarsest level's cell counts (all cells) and mean activations (the smallest
    /// cells, up to [`CHECK_ROWS`] rows in all: reading every row of a million would take tens of
    /// seconds) from the mapped rows and compares them with `cells.csv` and `mean_acts.npy`: a
    /// wrong row mapping (a re-collected run, a mismatched build) cannot pass.
    fn check_against_level(&self) -> Result<()> {
        let Some(level) = self.manifest.levels.iter().min_by_key(|l| l.grid) else {
            return Ok(());
        };
        let dir = level_dir(&self.root, level.grid);
        let cells = read_cells(&dir.join("cells.csv"))?;
        let means_path = dir.join("mean_acts.npy");
        let means = npy::read(&means_path)?;
        ensure!(
            means.rows == cells.len() && (cells.is_empty() || means.cols == self.c),
            "{} is [{}, {}], expected [{}, {}]",
            means_path.display(),
            means.rows,
            means.cols,
            cells.len(),
            self.c
        );
        let members: Vec<Vec<usize>> = cells
            .iter()
            .map(|cell| self.cell_members(level.grid, cell.x, cell.y))
            .collect();
        for (i, (cell, rows)) in cells.iter().zip(&members).enumerate() {
            ensure!(
                rows.len() == cell.count,
                "{}: cell {i} ({}, {}) has {} points, the layout puts {} there",
                dir.join("cells.csv").display(),
                cell.x,
                cell.y,
                cell.count,
                rows.len()
            );
        }
        let mut by_size: Vec<usize> = (0..cells.len()).collect();
        by_size.sort_by_key(|&i| (cells[i].count, i));
        let mut checked_rows = 0;
        for i in by_size {
            if checked_rows > 0 && checked_rows + cells[i].count > CHECK_ROWS {
                break;
            }
            checked_rows += cells[i].count;
            let mean = self.mean_of(&self.activations_of(&members[i])?);
            let want = means.row(i);
            let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
            let err = mean
                .iter()
                .zip(want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            ensure!(
                err <= 1e-4 * scale,
                "the run's activation rows do not reproduce {} (cell {i}: max difference {err:e}): \
                 the run {} changed since the atlas {} was built; rebuild the atlas",
                means_path.display(),
                self.manifest.run.display(),
                self.root.display()
            );
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifest(&self) -> &AtlasManifest {
        &self.manifest
    }

    /// Number of atlas rows.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Channels per activation row.
    pub fn channels(&self) -> usize {
        self.c
    }

    /// The normalized layout point of every atlas row, in [0, 1]² (x right, y up).
    pub fn points(&self) -> &[[f32; 2]] {
        &self.points
    }

    /// The image atlas row `row` was sampled from. Panics when `row >= len()`.
    pub fn row_image(&self, row: usize) -> &Path {
        &self.rows[row].path
    }

    /// The run row of atlas row `row`. Panics when `row >= len()`.
    pub fn run_row(&self, row: usize) -> usize {
        self.rows[row].run_row
    }

    /// The activation vector of atlas row `row`, read from the run's `acts.npy`. Panics when
    /// `row >= len()` or when the file can no longer be read.
    pub fn activation(&self, row: usize) -> Vec<f32> {
        self.acts
            .row(self.source[row])
            .unwrap_or_else(|e| panic!("activation of atlas row {row}: {e:#}"))
    }

    /// The activations of atlas rows `rows`, `[rows.len(), C]` row-major.
    fn activations_of(&self, rows: &[usize]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(rows.len() * self.c);
        // One read per run of consecutive run rows (a cell's members are mostly scattered, a
        // coarse cell's often adjacent).
        let mut i = 0;
        while i < rows.len() {
            let first = self.source[rows[i]];
            let mut len = 1;
            while i + len < rows.len() && self.source[rows[i + len]] == first + len {
                len += 1;
            }
            self.acts.read_rows_into(first, len, &mut out)?;
            i += len;
        }
        Ok(out)
    }

    /// The layer grid as (height, width).
    pub fn layer_shape(&self) -> (usize, usize) {
        (self.layer_h, self.layer_w)
    }

    /// The model's input size as (width, height), as [`example_patch`] wants it.
    pub fn model_input(&self) -> (u32, u32) {
        self.model_input
    }

    /// How the run preprocessed its images.
    pub fn preprocess(&self) -> Preprocess {
        self.preprocess
    }

    fn binning(&self, grid: usize) -> Arc<Binning> {
        let mut cache = self.binnings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = cache.get(&grid) {
            return b.clone();
        }
        let g = grid as u64;
        let ids: Vec<u64> = self
            .points
            .iter()
            .map(|p| cell_index(p[1], grid) as u64 * g + cell_index(p[0], grid) as u64)
            .collect();
        let mut order: Vec<u32> = (0..self.points.len() as u32).collect();
        order.sort_by_key(|&i| (ids[i as usize], i));
        let keys = order.iter().map(|&i| ids[i as usize]).collect();
        let b = Arc::new(Binning { keys, order });
        if cache.len() >= 8 {
            cache.clear();
        }
        cache.insert(grid, b.clone());
        b
    }

    /// Atlas rows whose layout point falls into cell (`cell_x`, `cell_y`) of a `grid × grid`
    /// grid, ascending, with the half-open binning of `grid::cell_index` (`cell_y` counted from
    /// the bottom, as in `cells.csv`). Cells dropped by the build's `min_count` still list their
    /// rows here.
    pub fn cell_members(&self, grid: usize, cell_x: usize, cell_y: usize) -> Vec<usize> {
        if grid == 0 || cell_x >= grid || cell_y >= grid {
            return vec![];
        }
        let b = self.binning(grid);
        let id = cell_y as u64 * grid as u64 + cell_x as u64;
        let lo = b.keys.partition_point(|&k| k < id);
        let hi = b.keys.partition_point(|&k| k <= id);
        b.order[lo..hi].iter().map(|&i| i as usize).collect()
    }

    /// Mean activation of the `[rows, C]` matrix `acts` (sums in f64, as `grid::summarize` does).
    fn mean_of(&self, acts: &[f32]) -> Vec<f32> {
        let mut s = vec![0f64; self.c];
        for row in acts.chunks_exact(self.c) {
            s.iter_mut().zip(row).for_each(|(a, b)| *a += *b as f64);
        }
        let n = (acts.len() / self.c).max(1) as f64;
        s.into_iter().map(|v| (v / n) as f32).collect()
    }

    /// The dataset examples of cell (`cell_x`, `cell_y`) at grid size `grid`: its rows ranked by
    /// the cosine similarity of their activation to the cell's mean activation (most typical
    /// first; ties by row), at most `max`. Empty for an empty or out-of-range cell.
    pub fn cell_examples(
        &self,
        grid: usize,
        cell_x: usize,
        cell_y: usize,
        max: usize,
    ) -> Vec<Example> {
        let members = self.cell_members(grid, cell_x, cell_y);
        if members.is_empty() || max == 0 {
            return vec![];
        }
        // The members' rows, read once: local row j is atlas row members[j].
        let acts = self
            .activations_of(&members)
            .unwrap_or_else(|e| panic!("examples of cell ({cell_x}, {cell_y}): {e:#}"));
        let norms = row_norms(&acts, self.c);
        let local: Vec<usize> = (0..members.len()).collect();
        let mean = self.mean_of(&acts);
        rank_by_similarity(&acts, self.c, &norms, &local, &mean, max)
            .into_iter()
            .map(|(j, similarity)| self.example(members[j], similarity))
            .collect()
    }

    /// Atlas row `row` as an [`Example`] with the given similarity. Panics when `row >= len()`.
    pub fn example(&self, row: usize, similarity: f32) -> Example {
        let info = &self.rows[row];
        Example {
            row,
            image_path: info.path.clone(),
            label: info.label.clone(),
            pos_y: info.y,
            pos_x: info.x,
            layer_h: self.layer_h,
            layer_w: self.layer_w,
            similarity,
            run_row: info.run_row,
            image_index: info.image_index,
            preprocess: self.preprocess,
        }
    }
}

/// The atlas's run manifest and the folder (relative to the run) of the atlas's layer.
fn run_layer(
    manifest: &AtlasManifest,
    run: &RunFolder,
    atlas_root: &Path,
) -> Result<(RunManifest, String)> {
    let run_manifest = run.read_manifest()?.with_context(|| {
        format!(
            "the atlas's run {} (named in {}) has no run.json",
            manifest.run.display(),
            AtlasManifest::path(atlas_root).display()
        )
    })?;
    let layer = run_manifest
        .layers
        .iter()
        .find(|l| l.name == manifest.layer)
        .with_context(|| {
            format!(
                "{} has no layer {:?}, the layer of the atlas {}",
                run.manifest_path().display(),
                manifest.layer,
                atlas_root.display()
            )
        })?;
    let dir = layer.dir.clone();
    Ok((run_manifest, dir))
}

/// The layer's `acts.npy` opened for reading and the run row of every atlas row.
struct AtlasActs {
    reader: npy::RowReader,
    /// The run's row count of the layer.
    run_rows: usize,
    /// The run row of every atlas row (ascending).
    source: Vec<usize>,
}

impl AtlasActs {
    /// Opens the layer's `acts.npy` after checking that the run still has the rows the atlas was
    /// built from.
    fn open(manifest: &AtlasManifest, atlas_root: &Path, acts_path: &Path) -> Result<AtlasActs> {
        let mpath = AtlasManifest::path(atlas_root);
        let reader = npy::RowReader::open(acts_path)?;
        let total = reader.rows;
        ensure!(
            reader.cols == manifest.channels,
            "{} has {} channels, the atlas manifest {} says {}",
            acts_path.display(),
            reader.cols,
            mpath.display(),
            manifest.channels
        );
        if let Some(r) = manifest.run_rows {
            ensure!(
                r == total,
                "{} now has {total} rows, the atlas {} was built from {r}: the run changed, \
                 rebuild the atlas",
                acts_path.display(),
                atlas_root.display()
            );
        }
        ensure!(
            manifest.points <= total,
            "the atlas manifest {} has {} points but {} has only {total} rows",
            mpath.display(),
            manifest.points,
            acts_path.display()
        );
        let source = pick_rows(total, Some(manifest.points));
        Ok(AtlasActs {
            reader,
            run_rows: total,
            source,
        })
    }
}

/// At most this many rows are read to check the coarsest level's means when an index is loaded
/// (at least one cell's, whatever its size).
const CHECK_ROWS: usize = 20_000;

/// The atlas's normalized layout, one point per atlas row.
fn read_layout(manifest: &AtlasManifest, atlas_root: &Path) -> Result<Vec<[f32; 2]>> {
    let layout_path = atlas_root.join("layout_normalized.npy");
    let layout = npy::read(&layout_path)?;
    ensure!(
        layout.cols == 2 && layout.rows == manifest.points,
        "{} is [{}, {}], expected [{}, 2] (the manifest's point count)",
        layout_path.display(),
        layout.rows,
        layout.cols,
        manifest.points
    );
    Ok(layout.data.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
}

/// The provenance of every atlas row, with the image's label from `images.csv` (whose path must
/// agree with `provenance.csv`'s).
fn atlas_provenance(run: &RunFolder, layer: &str, acts: &AtlasActs) -> Result<Vec<ProvenanceRow>> {
    let images = run
        .read_image_list()
        .with_context(|| format!("reading {}", run.root.join("images.csv").display()))?;
    let prov_path = run.root.join("provenance.csv");
    let all = read_layer_provenance(&run.root, layer, acts.run_rows)?;
    let mut rows = Vec::with_capacity(acts.source.len());
    for &r in &acts.source {
        let info = all[r].clone();
        let (path, label, _) = images.get(info.image_index).with_context(|| {
            format!(
                "{}: row {r} names image {} but images.csv has {} images",
                prov_path.display(),
                info.image_index,
                images.len()
            )
        })?;
        ensure!(
            *path == info.path,
            "{} and images.csv disagree on image {}: {} vs {}",
            prov_path.display(),
            info.image_index,
            info.path.display(),
            path.display()
        );
        rows.push(ProvenanceRow {
            label: label.clone(),
            ..info
        });
    }
    Ok(rows)
}

/// The model sidecar that gives the layer's grid size and the model input: the atlas's model's,
/// else the run's.
fn layer_sidecar(manifest: &AtlasManifest, run_manifest: &RunManifest) -> Result<Sidecar> {
    Sidecar::load(&manifest.model_file)
        .or_else(|e| Sidecar::load(&run_manifest.settings.model_file).map_err(|_| e))
        .with_context(|| {
            format!(
                "the layer's grid size comes from the model sidecar, and neither the atlas's \
                 model {} nor the run's {} has one",
                manifest.model_file.display(),
                run_manifest.settings.model_file.display()
            )
        })
}

/// The patch of the example's image that its layer position looks at, as an `out_px × out_px`
/// image: the image is loaded with the run's preprocessing at `model_input` = (width, height)
/// (the model's input size, e.g. `DatasetIndex::model_input()` or `Sidecar::size()`), then
/// [`crop_patch`] cuts the region of [`patch_rect`].
pub fn example_patch(ex: &Example, model_input: (u32, u32), out_px: u32) -> Result<RgbImage> {
    ensure!(out_px > 0, "the patch size must be positive");
    ensure!(
        model_input.0 > 0 && model_input.1 > 0,
        "the model input size {model_input:?} has a zero side"
    );
    let input = load_rgb(&ex.image_path, ex.preprocess, model_input)
        .map_err(|e| anyhow!("cannot read {}: {e}", ex.image_path.display()))?;
    Ok(crop_patch(
        &input, ex.pos_y, ex.pos_x, ex.layer_h, ex.layer_w, out_px,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_rects_follow_the_position_and_stay_inside() {
        // 7×7 on 224: side 64, centre of (3, 3) is 112.
        assert_eq!(patch_rect(3, 3, 7, 7, (224, 224)), (80, 80, 64, 64));
        // Corner: shifted inside, not shrunk.
        assert_eq!(patch_rect(0, 6, 7, 7, (224, 224)), (160, 0, 64, 64));
        // 56×56 would give 8 px: clamped to W/8 = 28.
        assert_eq!(patch_rect(10, 20, 56, 56, (224, 224)).2, 28);
        // 1×1: the whole image.
        assert_eq!(patch_rect(0, 0, 1, 1, (224, 160)), (0, 0, 224, 160));
    }

    #[test]
    fn preprocess_settings_parse() {
        assert_eq!(parse_preprocess("squash").unwrap(), Preprocess::Squash);
        assert_eq!(
            parse_preprocess("resize_shorter_crop:256").unwrap(),
            Preprocess::ResizeShorterCrop { resize: 256 }
        );
        assert!(parse_preprocess("other").is_err());
    }
}
