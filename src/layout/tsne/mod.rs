//! t-SNE (van der Maaten & Hinton 2008; Barnes-Hut, van der Maaten 2014) in 1-D or 2-D,
//! following scikit-learn's `TSNE(method="barnes_hut")` step by step so that the spec's settings
//! (§2.3: `metric="cosine", learning_rate=10, perplexity=50`, other parameters default) mean
//! the same thing here:
//!
//! 1. `k = min(n − 1, ⌊3·perplexity + 1⌋)` nearest neighbours by the metric (cosine:
//!    `1 − cos`), with the layouts' kNN ([`crate::layout::knn`]: exact up to 100k rows,
//!    NN-descent above);
//! 2. conditional Gaussians on the *squared* distances, bandwidths binary-searched to the
//!    perplexity, symmetrized and normalized ([`affinity`]);
//! 3. PCA initialization of the raw rows, rescaled so the first coordinate has standard
//!    deviation 1e-4 (sklearn's `init="pca"`), or Gaussian noise of that size;
//! 4. gradient descent on KL(P‖Q) with a Student-t (one degree of freedom) kernel: attraction
//!    over P's non-zeros, repulsion by Barnes-Hut ([`bh`], θ = `angle`); the first
//!    `exaggeration_iter` iterations with P × `early_exaggeration` and momentum 0.5, the rest
//!    with momentum 0.8; sklearn's per-parameter gains (+0.2 / ×0.8, at least 0.01); every 50
//!    iterations the KL divergence is checked and the phase stops after
//!    `n_iter_without_progress` iterations without improvement or when the gradient norm falls
//!    to `min_grad_norm`.
//!
//! Deliberate deviations: points closer than 1e-6 in every coordinate ignore each other in the
//! repulsion as in sklearn's quadtree (see [`bh`]; without it 1-D layouts at learning rate 10
//! can collapse to a point); leaves hold up to 8 points summed exactly; the embedding is
//! re-centred every iteration (the objective does not see it; float32 resolution does); the
//! kNN search can run in a PCA-reduced space with exact re-ranking (`pca_dims`, off by
//! default); a perplexity too large for `n` is lowered instead of refused; `n_iter` below 250
//! shortens the exaggeration phase (sklearn always runs it for 250).
//!
//! Every stage is deterministic whatever the number of threads, so a seed (which only matters
//! for the randomized PCA on wide input and for `TsneInit::Random`) reproduces a layout exactly.

mod affinity;
mod bh;

use rayon::prelude::*;

use super::knn::{self, Metric};
use super::pca::Pca;
use super::rng::Rng;
use affinity::Csr;

/// How the embedding starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsneInit {
    /// First principal components of the input rows, scaled to standard deviation 1e-4 along the
    /// first (sklearn's default).
    Pca,
    /// Gaussian noise of standard deviation 1e-4, from the seed.
    Random,
}

/// t-SNE settings. `Default` is the spec's reference (§2.3): scikit-learn's
/// `TSNE(n_components=2, metric="cosine", learning_rate=10, perplexity=50)` with its other
/// defaults (early exaggeration 12 for 250 iterations, 1000 iterations, θ = 0.5, PCA init).
#[derive(Clone, Debug)]
pub struct TsneParams {
    /// Embedding dimension: 1 (class comparison, spec §7) or 2.
    pub dims: usize,
    pub perplexity: f32,
    pub learning_rate: f32,
    pub early_exaggeration: f32,
    /// Iterations with early exaggeration (sklearn: 250, not a parameter there).
    pub exaggeration_iter: usize,
    /// Total iterations (sklearn's `max_iter`).
    pub n_iter: usize,
    pub n_iter_without_progress: usize,
    pub min_grad_norm: f32,
    /// Barnes-Hut θ.
    pub angle: f32,
    pub metric: Metric,
    pub init: TsneInit,
    /// Search the neighbours among this many principal components when the input is wider
    /// (candidates are re-ranked with exact distances, as for UMAP). `None` (the default, as
    /// sklearn): exact neighbours in the full dimension. The reduction is much faster on large,
    /// wide inputs but loses neighbours t-SNE needs (k = 3·perplexity): on a noisy 10k × 256
    /// mixture, trustworthiness 0.953 with 64 dims against 0.971 exact (sklearn: 0.971).
    pub pca_dims: Option<usize>,
    pub seed: u64,
}

impl Default for TsneParams {
    fn default() -> Self {
        TsneParams {
            dims: 2,
            perplexity: 50.0,
            learning_rate: 10.0,
            early_exaggeration: 12.0,
            exaggeration_iter: 250,
            n_iter: 1000,
            n_iter_without_progress: 300,
            min_grad_norm: 1e-7,
            angle: 0.5,
            metric: Metric::Cosine,
            init: TsneInit::Pca,
            pca_dims: None,
            seed: 0,
        }
    }
}

/// Iterations between convergence checks (sklearn's `_N_ITER_CHECK`).
const N_ITER_CHECK: usize = 50;

/// Lay out the `n×d` row-major rows of `data` with t-SNE in `params.dims` dimensions.
///
/// `progress(stage, fraction)` is called on the calling thread with stages `"neighbours"`,
/// `"affinities"`, `"init"`, `"optimize"`; `cancel` is polled between iterations. Returns
/// `Ok(None)` when cancelled, otherwise `n×dims` raw coordinates, row-major.
///
/// A perplexity too large for `n` is lowered to `(n − 1) / 3` (sklearn refuses it instead).
pub fn tsne(
    data: &[f32],
    n: usize,
    d: usize,
    params: &TsneParams,
    progress: &mut dyn FnMut(&str, f32),
    cancel: &dyn Fn() -> bool,
) -> anyhow::Result<Option<Vec<f32>>> {
    let dims = params.dims;
    anyhow::ensure!(
        dims == 1 || dims == 2,
        "tsne: dims must be 1 or 2, not {dims}"
    );
    anyhow::ensure!(
        data.len() == n * d,
        "tsne: data has {} values, expected {n}×{d}",
        data.len()
    );
    anyhow::ensure!(d > 0 || n == 0, "tsne: rows have no dimensions");
    anyhow::ensure!(
        data.iter().all(|v| v.is_finite()),
        "tsne: data contains NaN or infinite values"
    );
    anyhow::ensure!(
        params.perplexity > 0.0 && params.learning_rate > 0.0 && params.angle >= 0.0,
        "tsne: perplexity and learning rate must be positive, angle non-negative"
    );
    if n <= 2 {
        return Ok(Some((0..n * dims).map(|i| (i / dims) as f32).collect()));
    }

    progress("neighbours", 0.0);
    let perplexity = (params.perplexity as f64)
        .min((n - 1) as f64 / 3.0)
        .max(1.0);
    let k = ((3.0 * perplexity + 1.0) as usize).min(n - 1);
    let prepared = knn::prepare(data, d, params.metric);
    let (space, m, _) = knn::search_space(&prepared, n, d, params.pca_dims, params.seed);
    if cancel() {
        return Ok(None);
    }
    let reduced = space.is_some();
    let sp = space.as_deref().unwrap_or(&prepared);
    let Some(nn) = knn::neighbours(
        &prepared,
        d,
        sp,
        m,
        n,
        k + 1, // the search counts the point itself
        params.metric,
        reduced,
        params.seed,
        &mut |f| progress("neighbours", f),
        cancel,
    ) else {
        return Ok(None);
    };
    drop(space);
    drop(prepared);

    progress("affinities", 0.0);
    let p = affinity::joint_probabilities(&nn, perplexity);
    drop(nn);
    progress("affinities", 1.0);
    if cancel() {
        return Ok(None);
    }

    progress("init", 0.0);
    let mut y = initial_layout(data, n, d, params);
    progress("init", 1.0);

    progress("optimize", 0.0);
    let done = match dims {
        1 => optimize::<1>(&p, &mut y, params, progress, cancel),
        _ => optimize::<2>(&p, &mut y, params, progress, cancel),
    };
    Ok(done.then_some(y))
}

fn initial_layout(data: &[f32], n: usize, d: usize, params: &TsneParams) -> Vec<f32> {
    let dims = params.dims;
    let random = |seed: u64| {
        let mut rng = Rng::new(seed);
        (0..n * dims)
            .map(|_| (1e-4 * rng.normal()) as f32)
            .collect::<Vec<f32>>()
    };
    if params.init == TsneInit::Random {
        return random(params.seed);
    }
    let pca = Pca::fit(data, n, d, dims.min(d), params.seed);
    let proj = pca.transform(data, n);
    let m = pca.m;
    let mut y = vec![0f32; n * dims];
    for i in 0..n {
        for a in 0..m {
            y[i * dims + a] = proj[i * m + a];
        }
    }
    let mean = (0..n).map(|i| y[i * dims] as f64).sum::<f64>() / n as f64;
    let var = (0..n)
        .map(|i| (y[i * dims] as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    if var.sqrt() <= 1e-12 {
        // All rows alike along every direction: nothing for PCA to show.
        return random(params.seed);
    }
    let s = (1e-4 / var.sqrt()) as f32;
    y.iter_mut().for_each(|v| *v *= s);
    y
}

/// Each pair of P once (`j > i`), `(j, p_ij)` interleaved, rows cut into [`PAIR_CHUNKS`] chunks
/// of about equal work. The attraction walks each pair once and adds its force to both ends,
/// every chunk into its own buffer; the buffers are summed in chunk order, so the result does not
/// depend on the number of threads.
struct Pairs {
    ptr: Vec<usize>,
    entries: Vec<(u32, f32)>,
    chunks: Vec<usize>,
}

const PAIR_CHUNKS: usize = 16;

impl Pairs {
    fn new(p: &Csr) -> Pairs {
        let n = p.indptr.len() - 1;
        let mut ptr = Vec::with_capacity(n + 1);
        let mut entries = Vec::with_capacity(p.indices.len() / 2 + n);
        ptr.push(0);
        for i in 0..n {
            for t in p.indptr[i]..p.indptr[i + 1] {
                let j = p.indices[t] as usize;
                if j > i {
                    entries.push((j as u32, p.vals[t]));
                }
            }
            ptr.push(entries.len());
        }
        let total = entries.len().max(1);
        let mut chunks = vec![0];
        for c in 1..PAIR_CHUNKS {
            let target = total * c / PAIR_CHUNKS;
            let row = ptr.partition_point(|&e| e < target).min(n);
            chunks.push(row.max(*chunks.last().unwrap()));
        }
        chunks.push(n);
        Pairs {
            ptr,
            entries,
            chunks,
        }
    }
}

/// Attractive part of the gradient, `Σ_j p_ij (1 + |y_i − y_j|²)^{-1} (y_i − y_j)` per point
/// (times `exaggeration`), into `pos`; returns KL(P‖Q) when `sum_q` is given (with the
/// exaggerated P, as sklearn reports it). `bufs`: scratch, one `n×D` buffer per chunk.
fn attraction<const D: usize>(
    p: &Pairs,
    y: &[f32],
    exaggeration: f32,
    pos: &mut [f32],
    bufs: &mut [Vec<f32>],
    sum_q: Option<f64>,
) -> f64 {
    const TINY: f32 = f32::MIN_POSITIVE;
    let kl: f64 = bufs
        .par_iter_mut()
        .enumerate()
        .map(|(c, buf)| {
            buf.iter_mut().for_each(|v| *v = 0.0);
            let mut kl = 0f64;
            for i in p.chunks[c]..p.chunks[c + 1] {
                let yi: [f32; D] = std::array::from_fn(|a| y[i * D + a]);
                let mut fi = [0f32; D];
                for &(j, pv) in &p.entries[p.ptr[i]..p.ptr[i + 1]] {
                    let j = j as usize;
                    let pij = pv * exaggeration;
                    let mut d2 = 0f32;
                    let mut diff = [0f32; D];
                    for a in 0..D {
                        diff[a] = yi[a] - y[j * D + a];
                        d2 += diff[a] * diff[a];
                    }
                    let q = 1.0 / (1.0 + d2);
                    let w = pij * q;
                    for a in 0..D {
                        fi[a] += w * diff[a];
                        buf[j * D + a] -= w * diff[a];
                    }
                    if let Some(z) = sum_q {
                        let qn = (q as f64 / z) as f32;
                        kl += (pij * (pij.max(TINY) / qn.max(TINY)).ln()) as f64;
                    }
                }
                for a in 0..D {
                    buf[i * D + a] += fi[a];
                }
            }
            kl
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    let bufs = &*bufs;
    pos.par_chunks_mut(4096).enumerate().for_each(|(c, out)| {
        let range = c * 4096..c * 4096 + out.len();
        out.iter_mut().for_each(|v| *v = 0.0);
        for b in bufs {
            for (o, v) in out.iter_mut().zip(&b[range.clone()]) {
                *o += v;
            }
        }
    });
    // Every unordered pair stands for p_ij and p_ji.
    2.0 * kl
}

fn recentre(y: &mut [f32], dims: usize) {
    let n = (y.len() / dims).max(1) as f64;
    for a in 0..dims {
        let mean = (y
            .iter()
            .skip(a)
            .step_by(dims)
            .map(|&v| v as f64)
            .sum::<f64>()
            / n) as f32;
        y.iter_mut().skip(a).step_by(dims).for_each(|v| *v -= mean);
    }
}

/// sklearn's `_gradient_descent` over both phases. Returns false when cancelled.
fn optimize<const D: usize>(
    p: &Csr,
    y: &mut [f32],
    params: &TsneParams,
    progress: &mut dyn FnMut(&str, f32),
    cancel: &dyn Fn() -> bool,
) -> bool {
    let len = y.len();
    let mut update = vec![0f32; len];
    let mut gains = vec![1f32; len];
    let mut neg = vec![0f32; len];
    let mut pos = vec![0f32; len];
    let pairs = Pairs::new(p);
    let mut bufs = vec![vec![0f32; len]; pairs.chunks.len() - 1];
    let total = params.n_iter;
    let explore = params.exaggeration_iter.min(total);
    let phases = [
        (
            0..explore,
            0.5f32,
            params.early_exaggeration,
            params.exaggeration_iter,
        ),
        (explore..total, 0.8, 1.0, params.n_iter_without_progress),
    ];
    let mut next_start = 0;
    for (range, momentum, exaggeration, without_progress) in phases {
        let mut best_error = f64::MAX;
        let mut best_iter = next_start;
        let start = next_start;
        for it in start..range.end {
            if cancel() {
                return false;
            }
            next_start = it + 1;
            let check = (it + 1) % N_ITER_CHECK == 0;
            let tree = bh::Tree::<D>::build(y);
            let sum_q = tree.repulsion(params.angle, &mut neg).max(f64::EPSILON);
            drop(tree);
            let error = attraction::<D>(
                &pairs,
                y,
                exaggeration,
                &mut pos,
                &mut bufs,
                (check || it + 1 == total).then_some(sum_q),
            );
            let inv_z = (1.0 / sum_q) as f32;
            let lr = params.learning_rate;
            let grad_norm2: f64 = y
                .par_chunks_mut(1024)
                .zip(update.par_chunks_mut(1024))
                .zip(gains.par_chunks_mut(1024))
                .zip(pos.par_chunks(1024).zip(neg.par_chunks(1024)))
                .map(|(((yc, uc), gc), (pc, nc))| {
                    let mut g2 = 0f64;
                    for e in 0..yc.len() {
                        // dof = 1: the gradient is 4 (attraction − repulsion / Z).
                        let mut g = 4.0 * (pc[e] - nc[e] * inv_z);
                        if uc[e] * g < 0.0 {
                            gc[e] += 0.2;
                        } else {
                            gc[e] *= 0.8;
                        }
                        gc[e] = gc[e].max(0.01);
                        g *= gc[e];
                        g2 += (g as f64) * (g as f64);
                        uc[e] = momentum * uc[e] - lr * g;
                        yc[e] += uc[e];
                    }
                    g2
                })
                .collect::<Vec<f64>>()
                .iter()
                .sum();
            // Keep the centroid at the origin: the objective does not see it, but float32
            // resolution does (a drifting centroid lets a collapsed embedding round to a point).
            recentre(y, D);
            if it % 10 == 0 || it + 1 == total {
                progress("optimize", (it + 1) as f32 / total as f32);
            }
            if check {
                if error < best_error {
                    best_error = error;
                    best_iter = it;
                } else if it - best_iter > without_progress {
                    break;
                }
                if grad_norm2.sqrt() <= params.min_grad_norm as f64 {
                    break;
                }
            }
        }
    }
    progress("optimize", 1.0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gaussian clusters in `d` dimensions, ordered by cluster; returns (data, labels).
    fn clusters(k: usize, per: usize, d: usize, spread: f64, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let mut x = Vec::with_capacity(k * per * d);
        let mut labels = Vec::new();
        for c in 0..k {
            let centre: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            for _ in 0..per {
                x.extend(centre.iter().map(|m| (m + spread * rng.normal()) as f32));
                labels.push(c);
            }
        }
        (x, labels)
    }

    fn run(x: &[f32], n: usize, d: usize, p: &TsneParams) -> Vec<f32> {
        tsne(x, n, d, p, &mut |_, _| {}, &|| false)
            .unwrap()
            .unwrap()
    }

    /// Fraction of points whose nearest embedded neighbour has their label.
    fn nn_agreement(y: &[f32], dims: usize, labels: &[usize]) -> f64 {
        let n = labels.len();
        let hits = (0..n)
            .filter(|&i| {
                let j = (0..n)
                    .filter(|&j| j != i)
                    .min_by(|&a, &b| {
                        let da: f32 = (0..dims)
                            .map(|t| (y[i * dims + t] - y[a * dims + t]).powi(2))
                            .sum();
                        let db: f32 = (0..dims)
                            .map(|t| (y[i * dims + t] - y[b * dims + t]).powi(2))
                            .sum();
                        da.total_cmp(&db)
                    })
                    .unwrap();
                labels[j] == labels[i]
            })
            .count();
        hits as f64 / n as f64
    }

    #[test]
    fn separates_clusters_in_1d_and_2d() {
        let (x, labels) = clusters(5, 60, 20, 0.3, 1);
        let n = labels.len();
        for dims in [1, 2] {
            let p = TsneParams {
                dims,
                perplexity: 15.0,
                n_iter: 500,
                ..Default::default()
            };
            let y = run(&x, n, 20, &p);
            assert_eq!(y.len(), n * dims);
            assert!(y.iter().all(|v| v.is_finite()));
            let a = nn_agreement(&y, dims, &labels);
            assert!(a > 0.97, "{dims}-D agreement {a}");
        }
    }

    #[test]
    fn seed_reproducible_and_cancel_returns_none() {
        let (x, _) = clusters(3, 40, 8, 0.5, 2);
        let n = 120;
        let p = TsneParams {
            perplexity: 10.0,
            n_iter: 300,
            init: TsneInit::Random,
            seed: 5,
            ..Default::default()
        };
        let a = run(&x, n, 8, &p);
        let b = run(&x, n, 8, &p);
        assert_eq!(a, b);
        let c = run(
            &x,
            n,
            8,
            &TsneParams {
                seed: 6,
                ..p.clone()
            },
        );
        assert_ne!(a, c);
        let r = tsne(&x, n, 8, &p, &mut |_, _| {}, &|| true).unwrap();
        assert!(r.is_none());
        // Cancelled during the optimization (after some progress calls).
        let calls = std::cell::Cell::new(0);
        let r = tsne(
            &x,
            n,
            8,
            &p,
            &mut |s, _| {
                if s == "optimize" {
                    calls.set(calls.get() + 1)
                }
            },
            &|| calls.get() > 3,
        )
        .unwrap();
        assert!(r.is_none());
    }

    #[test]
    fn bad_and_degenerate_inputs() {
        let p = TsneParams {
            n_iter: 60,
            ..Default::default()
        };
        let none = |x: &[f32], n, d, p: &TsneParams| tsne(x, n, d, p, &mut |_, _| {}, &|| false);
        assert!(none(&[1.0; 10], 3, 3, &p).is_err());
        assert!(none(&[f32::NAN; 9], 3, 3, &p).is_err());
        assert!(none(
            &[1.0; 9],
            3,
            3,
            &TsneParams {
                dims: 3,
                ..p.clone()
            }
        )
        .is_err());
        let finite = |y: &[f32]| y.iter().all(|v| v.is_finite());
        // Fewer points than the perplexity asks for; identical rows; zero rows under cosine.
        let y = run(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 0.5], 4, 2, &p);
        assert!(y.len() == 8 && finite(&y));
        assert!(finite(&run(&vec![0.5; 40 * 3], 40, 3, &p)));
        assert!(finite(&run(&vec![0.0; 40 * 3], 40, 3, &p)));
        let x: Vec<f32> = (0..60).map(|i| (i % 7) as f32).collect();
        let e = TsneParams {
            metric: Metric::Euclidean,
            dims: 1,
            ..p.clone()
        };
        assert!(finite(&run(&x, 60, 1, &e)));
        assert!(run(&[], 0, 5, &p).is_empty());
    }

    #[test]
    fn progress_reports_every_stage_in_order() {
        let (x, _) = clusters(3, 30, 6, 0.5, 3);
        let mut stages: Vec<String> = Vec::new();
        let mut last = -1.0f32;
        let p = TsneParams {
            perplexity: 10.0,
            n_iter: 100,
            ..Default::default()
        };
        tsne(
            &x,
            90,
            6,
            &p,
            &mut |s, f| {
                assert!((0.0..=1.0).contains(&f));
                if stages.last().map(|l| l != s).unwrap_or(true) {
                    stages.push(s.to_string());
                    last = -1.0;
                }
                assert!(f >= last);
                last = f;
            },
            &|| false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(stages, ["neighbours", "affinities", "init", "optimize"]);
    }
}
