//! Class similarity over the cells of an atlas level (see [`crate::classes`] for the definition).
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::atlas::manifest::{level_dir, read_cells, AtlasManifest};
use crate::store::npy;

/// How a cell's attribution becomes a class's mass in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairWeighting {
    /// `max(0, n_cell · mean_attr)`: the positive part of the cell's summed attribution.
    Mass,
    /// `max(0, mean_attr)`: every cell weighs the same whatever its point count.
    Mean,
}

/// Which classes are paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairClasses {
    /// Classes that are the top class (label) of at least one kept cell.
    Labelled,
    /// Every class with positive mass (K² / 2 pairs: slow for 1000 classes on fine levels).
    All,
    /// The `m` classes with the largest total mass.
    TopMass(usize),
}

impl PairClasses {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "labelled" | "labeled" => Ok(PairClasses::Labelled),
            "all" => Ok(PairClasses::All),
            n => match n.parse::<usize>() {
                Ok(m) if m >= 2 => Ok(PairClasses::TopMass(m)),
                _ => bail!("--classes must be labelled, all or a number ≥ 2, not {n:?}"),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassPair {
    pub a: usize,
    pub b: usize,
    pub name_a: String,
    pub name_b: String,
    /// Σ_cells min(p_a, p_b) ∈ [0, 1].
    pub similarity: f64,
    /// Total masses Σ_cells m_c of the two classes.
    pub mass_a: f64,
    pub mass_b: f64,
    /// Cells where both classes have positive mass.
    pub shared_cells: usize,
}

/// The result (and the JSON `atlas class-pairs` writes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassPairs {
    pub atlas: PathBuf,
    pub layer: String,
    pub level: usize,
    pub cells: usize,
    pub weighting: PairWeighting,
    pub classes: PairClasses,
    /// Classes that were paired (after dropping those without positive mass).
    pub classes_considered: usize,
    /// Most similar first (ties: lower class indices first).
    pub pairs: Vec<ClassPair>,
}

/// The `top` most similar class pairs over level `grid` of the atlas at `root`.
pub fn class_pairs(
    root: &Path,
    grid: usize,
    top: usize,
    classes: PairClasses,
    weighting: PairWeighting,
) -> Result<ClassPairs> {
    let manifest = AtlasManifest::load(root)?;
    ensure!(manifest.level(grid).is_some(), {
        let have: Vec<usize> = manifest.levels.iter().map(|l| l.grid).collect();
        format!("the atlas has no {grid}×{grid} level (it has {have:?})")
    });
    let dir = level_dir(root, grid);
    let cells = read_cells(&dir.join("cells.csv"))?;
    let attr = npy::read(&dir.join("mean_attr.npy"))
        .with_context(|| format!("reading {}", dir.join("mean_attr.npy").display()))?;
    ensure!(
        attr.rows == cells.len(),
        "{} has {} rows, cells.csv {} cells",
        dir.join("mean_attr.npy").display(),
        attr.rows,
        cells.len()
    );
    let k = attr.cols;
    let nc = cells.len();
    // Mass per class, transposed: mass[class][cell].
    let mut mass = vec![vec![0f64; nc]; k];
    for (j, cell) in cells.iter().enumerate() {
        let w = match weighting {
            PairWeighting::Mass => cell.count as f64,
            PairWeighting::Mean => 1.0,
        };
        for (cls, &v) in attr.row(j).iter().enumerate() {
            mass[cls][j] = (w * v as f64).max(0.0);
        }
    }
    let totals: Vec<f64> = mass.iter().map(|m| m.iter().sum()).collect();
    let mut candidates: Vec<usize> = match classes {
        PairClasses::Labelled => {
            let mut v: Vec<usize> = cells
                .iter()
                .filter_map(|c| c.top.first().map(|t| t.0))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        }
        PairClasses::All => (0..k).collect(),
        PairClasses::TopMass(m) => {
            let mut v: Vec<usize> = (0..k).collect();
            v.sort_by(|&a, &b| totals[b].total_cmp(&totals[a]).then(a.cmp(&b)));
            v.truncate(m);
            v.sort_unstable();
            v
        }
    };
    candidates.retain(|&c| c < k && totals[c] > 0.0);
    let p: Vec<Vec<f64>> = candidates
        .iter()
        .map(|&c| mass[c].iter().map(|m| m / totals[c]).collect())
        .collect();
    let names = &manifest.class_names;
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let mut pairs: Vec<ClassPair> = (0..candidates.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let p = &p;
            let candidates = &candidates;
            let totals = &totals;
            (i + 1..candidates.len()).map(move |j| {
                let (mut s, mut shared) = (0f64, 0usize);
                for (x, y) in p[i].iter().zip(&p[j]) {
                    s += x.min(*y);
                    shared += usize::from(*x > 0.0 && *y > 0.0);
                }
                let (a, b) = (candidates[i], candidates[j]);
                ClassPair {
                    a,
                    b,
                    name_a: String::new(),
                    name_b: String::new(),
                    similarity: s,
                    mass_a: totals[a],
                    mass_b: totals[b],
                    shared_cells: shared,
                }
            })
        })
        .collect();
    pairs.sort_by(|x, y| {
        y.similarity
            .total_cmp(&x.similarity)
            .then((x.a, x.b).cmp(&(y.a, y.b)))
    });
    pairs.truncate(top);
    for pr in &mut pairs {
        pr.name_a = name(pr.a);
        pr.name_b = name(pr.b);
    }
    Ok(ClassPairs {
        atlas: root.to_path_buf(),
        layer: manifest.layer.clone(),
        level: grid,
        cells: nc,
        weighting,
        classes,
        classes_considered: candidates.len(),
        pairs,
    })
}
