//! Where an image's vectors land on an atlas: each vector is placed into the atlas's layout the
//! way umap-learn's `transform` places new points ([`crate::layout::transform`]: neighbours
//! among the atlas's points in the layout's metric, fuzzy weights, the weighted mean of the
//! neighbours' layout coordinates, then a few epochs of UMAP's optimization against the fixed
//! layout), and the result goes through the same normalization as the atlas's own points
//! ([`LayoutNormalization`], fitted on `layout.npy` and checked against
//! `layout_normalized.npy`), so it can be drawn on every level and binned into a cell of any
//! grid. For a t-SNE layout only the neighbour-weighted position is used (t-SNE has no
//! objective for a new point against a fixed map); other layouts (class comparisons, whose axes
//! are not a layout of the activations) cannot take new points.
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use super::examples::parse_preprocess;
use crate::atlas::build::pick_rows;
use crate::atlas::AtlasManifest;
use crate::collect::run_folder::RunFolder;
use crate::data::Preprocess;
use crate::grid::cell_index;
use crate::layout::transform::{transform, TransformIndex, TransformParams};
use crate::layout::{LayoutNormalization, Metric, UmapParams};
use crate::store::npy;

/// Neighbours used to place a point into a t-SNE layout (umap-learn's default `n_neighbors`).
pub const TSNE_NEIGHBOURS: usize = 15;

/// How new points are placed into an atlas's layout, read from its manifest's `layout` text.
#[derive(Clone, Debug)]
pub enum LandingMethod {
    /// umap-learn's `transform` with the layout's settings.
    Umap(UmapParams),
    /// The neighbour-weighted initial position only, with [`TSNE_NEIGHBOURS`] neighbours.
    Tsne { metric: Metric },
}

impl LandingMethod {
    /// Parses an atlas manifest's `layout` text (as `atlas build` writes it, e.g.
    /// `umap n_neighbors=50 min_dist=0.05 metric=Cosine epochs=None seed=0`).
    pub fn parse(layout: &str) -> Result<Self> {
        let mut words = layout.split_whitespace();
        let kind = words.next().unwrap_or("");
        let mut get = std::collections::HashMap::new();
        for w in words {
            if let Some((k, v)) = w.split_once('=') {
                get.insert(k, v);
            }
        }
        let metric = match get.get("metric").copied() {
            None | Some("Cosine") => Metric::Cosine,
            Some("Euclidean") => Metric::Euclidean,
            Some(m) => bail!("unknown layout metric {m:?} in {layout:?}"),
        };
        let num = |key: &str| -> Result<Option<f64>> {
            get.get(key)
                .map(|v| {
                    v.parse::<f64>()
                        .with_context(|| format!("bad {key}={v:?} in the layout {layout:?}"))
                })
                .transpose()
        };
        match kind {
            "umap" => {
                let d = UmapParams::default();
                let n_epochs = match get.get("epochs").copied() {
                    None | Some("None") => None,
                    Some(v) => Some(
                        v.strip_prefix("Some(")
                            .and_then(|v| v.strip_suffix(')'))
                            .unwrap_or(v)
                            .parse()
                            .with_context(|| format!("bad epochs={v:?} in {layout:?}"))?,
                    ),
                };
                Ok(LandingMethod::Umap(UmapParams {
                    n_neighbors: num("n_neighbors")?.map_or(d.n_neighbors, |v| v as usize),
                    min_dist: num("min_dist")?.map_or(d.min_dist, |v| v as f32),
                    metric,
                    n_epochs,
                    seed: num("seed")?.map_or(d.seed, |v| v as u64),
                    ..d
                }))
            }
            "tsne" => Ok(LandingMethod::Tsne { metric }),
            _ => bail!(
                "the atlas's layout ({layout}) is not a UMAP or t-SNE layout of the activations, \
                 so an image's vectors cannot be placed in it"
            ),
        }
    }

    pub fn metric(&self) -> Metric {
        match self {
            LandingMethod::Umap(p) => p.metric,
            LandingMethod::Tsne { metric } => *metric,
        }
    }

    pub fn params(&self) -> TransformParams {
        match self {
            LandingMethod::Umap(p) => TransformParams::for_umap(p),
            LandingMethod::Tsne { .. } => TransformParams::init_only(TSNE_NEIGHBOURS),
        }
    }

    /// One line for the UI: how the points were placed.
    pub fn describe(&self, n_epochs: usize) -> String {
        match self {
            LandingMethod::Umap(p) => format!(
                "placed by UMAP transform: {} nearest atlas points ({:?}), weighted mean of their \
                 positions, then {n_epochs} epochs against the fixed layout",
                p.n_neighbors, p.metric
            ),
            LandingMethod::Tsne { metric } => format!(
                "placed at the weighted mean of the {TSNE_NEIGHBOURS} nearest atlas points' \
                 positions ({metric:?}; t-SNE layout: no optimization epochs)"
            ),
        }
    }
}

/// An atlas made ready to take new points: its points' activations, raw layout and
/// normalization, and how its run prepared images.
pub struct AtlasLanding {
    pub root: PathBuf,
    pub manifest: AtlasManifest,
    pub method: LandingMethod,
    /// The run's image preprocessing (its `preprocess` setting; squash when it has none).
    pub preprocess: Preprocess,
    index: TransformIndex,
    raw: Vec<[f32; 2]>,
    normalization: LayoutNormalization,
}

/// Vectors placed on an atlas.
#[derive(Clone, Debug)]
pub struct Landed {
    /// Layout coordinates (as `layout.npy`), one per vector; NaN for a vector without
    /// neighbours.
    pub raw: Vec<[f32; 2]>,
    /// The neighbour-weighted initial positions (layout coordinates).
    pub init_raw: Vec<[f32; 2]>,
    /// Normalized positions in [0, 1]² (as `layout_normalized.npy`: x right, y up).
    pub points: Vec<[f32; 2]>,
    pub n_epochs: usize,
    /// For the UI: how the points were placed.
    pub description: String,
}

impl Landed {
    /// The (x, y) cell of a `grid × grid` level that vector `i` falls in (`y` counted from the
    /// bottom, as in `cells.csv`); `None` when it has no position.
    pub fn cell(&self, i: usize, grid: usize) -> Option<(usize, usize)> {
        let p = self.points.get(i)?;
        (p[0].is_finite() && p[1].is_finite())
            .then(|| (cell_index(p[0], grid), cell_index(p[1], grid)))
    }
}

impl AtlasLanding {
    /// Reads the atlas at `root`: its manifest, layout (`layout.npy`, `layout_normalized.npy`)
    /// and the run's activations of the atlas's rows.
    pub fn load(root: &Path) -> Result<AtlasLanding> {
        let manifest = AtlasManifest::load(root)?;
        let method = LandingMethod::parse(&manifest.layout)?;
        let run = RunFolder::new(&manifest.run);
        let run_manifest = run.read_manifest()?.with_context(|| {
            format!("the atlas's run {} has no run.json", manifest.run.display())
        })?;
        let preprocess = if run_manifest.settings.preprocess.is_empty() {
            Preprocess::Squash
        } else {
            parse_preprocess(&run_manifest.settings.preprocess)?
        };
        let layer = run_manifest
            .layers
            .iter()
            .find(|l| l.name == manifest.layer)
            .with_context(|| {
                format!(
                    "the run {} has no layer {:?}",
                    manifest.run.display(),
                    manifest.layer
                )
            })?;
        let acts_path = manifest.run.join(&layer.dir).join("acts.npy");
        let acts = npy::read(&acts_path)?;
        ensure!(
            acts.cols == manifest.channels,
            "{} has {} channels, the atlas has {}",
            acts_path.display(),
            acts.cols,
            manifest.channels
        );
        let total = manifest.run_rows.unwrap_or(acts.rows);
        ensure!(
            total == acts.rows && manifest.points <= total,
            "{} has {} rows, the atlas {} was built from {total}: rebuild the atlas",
            acts_path.display(),
            acts.rows,
            root.display()
        );
        let rows = pick_rows(total, Some(manifest.points));
        let c = acts.cols;
        let data: Vec<f32> = if rows.len() == total {
            acts.data
        } else {
            rows.iter()
                .flat_map(|&r| acts.data[r * c..(r + 1) * c].iter().copied())
                .collect()
        };

        let read_points = |name: &str| -> Result<Vec<[f32; 2]>> {
            let path = root.join(name);
            let m = npy::read(&path)?;
            ensure!(
                m.rows == manifest.points && m.cols == 2,
                "{} is [{}, {}], expected [{}, 2]",
                path.display(),
                m.rows,
                m.cols,
                manifest.points
            );
            Ok(m.data.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
        };
        let raw = read_points("layout.npy")?;
        let normalized = read_points("layout_normalized.npy")?;
        let normalization = LayoutNormalization::fit(&raw);
        let worst = raw
            .iter()
            .zip(&normalized)
            .map(|(r, n)| {
                let m = normalization.apply(*r);
                (m[0] - n[0]).abs().max((m[1] - n[1]).abs())
            })
            .fold(0.0f32, f32::max);
        ensure!(
            worst <= 1e-5,
            "{}: layout_normalized.npy is not the normalized layout.npy (off by {worst}), so new \
             points cannot be mapped onto the grids",
            root.display()
        );
        let index = TransformIndex::new(&data, manifest.points, c, method.metric())?;
        Ok(AtlasLanding {
            root: root.to_path_buf(),
            manifest,
            method,
            preprocess,
            index,
            raw,
            normalization,
        })
    }

    /// The atlas's own points in layout coordinates (`layout.npy`).
    pub fn layout(&self) -> &[[f32; 2]] {
        &self.raw
    }

    /// Normalizes layout coordinates the way the atlas's points were.
    pub fn normalize(&self, p: [f32; 2]) -> [f32; 2] {
        self.normalization.apply(p)
    }

    /// Places the `[rows, c]` vectors `acts` on the atlas.
    pub fn land(&self, acts: &[f32], c: usize) -> Result<Landed> {
        ensure!(
            c == self.index.dim(),
            "the vectors have {c} channels, the atlas's layer {:?} has {}",
            self.manifest.layer,
            self.index.dim()
        );
        ensure!(
            acts.len().is_multiple_of(c.max(1)),
            "{} values are not rows of {c}",
            acts.len()
        );
        let q = acts.len() / c;
        let placed = transform(&self.index, &self.raw, acts, q, &self.method.params())?;
        let points = placed
            .positions
            .iter()
            .map(|p| {
                if p[0].is_finite() && p[1].is_finite() {
                    self.normalize(*p)
                } else {
                    [f32::NAN; 2]
                }
            })
            .collect();
        Ok(Landed {
            description: self.method.describe(placed.n_epochs),
            raw: placed.positions,
            init_raw: placed.init,
            points,
            n_epochs: placed.n_epochs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_build_descriptions() {
        let m = LandingMethod::parse(
            "umap n_neighbors=20 min_dist=0.02 metric=Cosine epochs=Some(200) seed=7",
        )
        .unwrap();
        let LandingMethod::Umap(p) = &m else {
            panic!("{m:?}")
        };
        assert_eq!(
            (p.n_neighbors, p.min_dist, p.n_epochs, p.seed),
            (20, 0.02, Some(200), 7)
        );
        assert_eq!(p.metric, Metric::Cosine);
        assert_eq!(m.params().fit_n_epochs, Some(200));
        let m = LandingMethod::parse(
            "umap n_neighbors=50 min_dist=0.05 metric=Euclidean epochs=None seed=0",
        )
        .unwrap();
        assert_eq!(m.metric(), Metric::Euclidean);
        let t = LandingMethod::parse(
            "tsne dims=2 perplexity=50 learning_rate=10 metric=Cosine iterations=1000 seed=0",
        )
        .unwrap();
        assert!(matches!(
            t,
            LandingMethod::Tsne {
                metric: Metric::Cosine
            }
        ));
        assert!(!t.params().optimize);
        assert!(t.describe(0).contains("no optimization"));
        let e = LandingMethod::parse("comparison x=(attr[3]-attr[1]) y=tsne").unwrap_err();
        assert!(e.to_string().contains("cannot be placed"), "{e}");
    }
}
