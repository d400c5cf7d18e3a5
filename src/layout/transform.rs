//! Placing new points into an existing layout, the way umap-learn's `UMAP.transform` does
//! (umap-learn 0.5, `umap_.py` `transform`, `init_graph_transform`, `layouts.py`
//! `optimize_layout_euclidean` with `move_other=False`):
//!
//! 1. the `n_neighbors` nearest points of the layout to each new point, exactly, in the metric
//!    of the layout (the new point is not among them, so there is no self column; a vector
//!    identical to a layout point is at distance exactly 0 from it, where umap-learn's f32
//!    cosine can leave ~1e-7 and so miss its "a point of the data set embeds at its own
//!    coordinates" rule); neighbours at or beyond the metric's disconnection distance (2 for
//!    cosine) are dropped;
//! 2. fuzzy membership strengths: `smooth_knn_dist` with `local_connectivity = 0` (umap-learn
//!    passes `local_connectivity − 1`), so ρ = 0 and the weight of a neighbour at distance `d`
//!    is `exp(−d/σ)` (1 at d = 0); σ solves Σ_{j≥1} exp(−d_j/σ) = log2(k) — the first column is
//!    skipped as in umap-learn's bisection — with the `MIN_K_DIST_SCALE` floor of the mean
//!    distance over all new points;
//! 3. the initial position: the weighted mean of the neighbours' layout coordinates (weights
//!    normalized to sum 1, neighbours in index order), or exactly a neighbour's coordinates when
//!    its weight is 1 (the new point coincides with it);
//! 4. a few epochs of umap-learn's SGD that move only the new points against the fixed layout:
//!    edges lighter than max/n_epochs dropped, the same sampling schedule, one attraction per
//!    sampled edge, negative samples from the layout's points, learning rate a quarter of the
//!    fit's, decaying linearly; `n_epochs` is 100 for up to 10,000 new points and 30 above (a
//!    third of the fit's epochs when those were set explicitly).
//!
//! The new points are independent of each other (the layout does not move), so each is
//! optimized on its own random stream keyed by (seed, point): the result for a seed does not
//! depend on the number of threads. The random streams differ from umap-learn's, so only steps
//! 1–3 can be compared number for number (`tests/reference/umap_transform_ref.py`).

use anyhow::{ensure, Result};
use rayon::prelude::*;

use super::embed::find_ab_params;
use super::fuzzy::smooth_sigma;
use super::knn::{distance_fast, prepare, Metric};
use super::rng::Rng;
use super::UmapParams;

/// Index value of a dropped neighbour (at or beyond the disconnection distance).
pub const NO_NEIGHBOUR: u32 = u32::MAX;

/// The layout's points, prepared for the metric (L2-normalized for cosine), to search new
/// points' neighbours among.
pub struct TransformIndex {
    prepared: Vec<f32>,
    n: usize,
    d: usize,
    metric: Metric,
}

impl TransformIndex {
    /// The `n×d` row-major rows the layout was computed from.
    pub fn new(data: &[f32], n: usize, d: usize, metric: Metric) -> Result<Self> {
        ensure!(
            data.len() == n * d,
            "transform: data has {} values, expected {n}×{d}",
            data.len()
        );
        ensure!(n > 0 && d > 0, "transform: the layout has no points");
        ensure!(
            data.iter().all(|v| v.is_finite()),
            "transform: the layout's data contains NaN or infinite values"
        );
        Ok(TransformIndex {
            prepared: prepare(data, d, metric),
            n,
            d,
            metric,
        })
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn dim(&self) -> usize {
        self.d
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The `k` nearest layout points of each of the `q` query rows (exact; ascending distance,
    /// ties to the lower index): (indices `q×k`, distances `q×k`). `k` is capped at the number
    /// of points. The same for any number of threads.
    pub fn neighbours(&self, queries: &[f32], q: usize, k: usize) -> (Vec<u32>, Vec<f32>) {
        let (d, metric) = (self.d, self.metric);
        assert_eq!(queries.len(), q * d, "queries are not rows of {d}");
        let k = k.clamp(1, self.n);
        let qp = prepare(queries, d, metric);
        // Blocks of layout rows in parallel; every block scans all queries (they stay in cache),
        // so the layout's rows are read from memory once.
        const BLOCK: usize = 256;
        let empty = || vec![Vec::<(f32, u32)>::with_capacity(k + 1); q];
        let tops = self
            .prepared
            .par_chunks(BLOCK * d)
            .enumerate()
            .fold(empty, |mut acc, (b, rows)| {
                for (r, row) in rows.chunks_exact(d).enumerate() {
                    let j = (b * BLOCK + r) as u32;
                    for (qi, top) in acc.iter_mut().enumerate() {
                        let qrow = &qp[qi * d..(qi + 1) * d];
                        let mut dist = distance_fast(qrow, row, metric);
                        // An identical vector is at distance exactly 0 (f32 rounding can leave
                        // ~1e-7 for cosine), so it gets weight 1 and the new point takes its
                        // coordinates, as umap-learn intends for points of the data set.
                        if dist > 0.0 && dist < 1e-5 && qrow == row {
                            dist = 0.0;
                        }
                        push_top(top, k, (dist, j));
                    }
                }
                acc
            })
            .reduce(empty, |mut a, b| {
                for (ta, tb) in a.iter_mut().zip(b) {
                    for e in tb {
                        push_top(ta, k, e);
                    }
                }
                a
            });
        let mut indices = Vec::with_capacity(q * k);
        let mut dists = Vec::with_capacity(q * k);
        for top in tops {
            debug_assert_eq!(top.len(), k);
            for (dd, j) in top {
                indices.push(j);
                dists.push(dd);
            }
        }
        (indices, dists)
    }
}

/// Keeps the `k` smallest (distance, index) pairs of `top`, sorted (a strict total order, so
/// the result does not depend on the order the pairs arrive in).
fn push_top(top: &mut Vec<(f32, u32)>, k: usize, e: (f32, u32)) {
    let less = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if top.len() == k && less(&e, &top[k - 1]).is_ge() {
        return;
    }
    let at = top.partition_point(|x| less(x, &e).is_lt());
    top.insert(at, e);
    top.truncate(k);
}

/// umap-learn's `DISCONNECTION_DISTANCES` for the metric: neighbours at least this far are
/// dropped.
pub fn disconnection_distance(metric: Metric) -> f32 {
    match metric {
        Metric::Cosine => 2.0,
        Metric::Euclidean => f32::INFINITY,
    }
}

/// The bipartite graph between the new points and the layout's points (umap-learn's
/// `transform_mode="graph"` result, row by row).
#[derive(Clone, Debug)]
pub struct TransformGraph {
    pub q: usize,
    pub k: usize,
    /// `q×k` layout point indices ([`NO_NEIGHBOUR`] for dropped ones), ascending distance.
    pub indices: Vec<u32>,
    pub dists: Vec<f32>,
    /// σ per new point (ρ is 0).
    pub sigmas: Vec<f32>,
    /// `q×k` membership strengths (0 for dropped neighbours).
    pub weights: Vec<f32>,
}

/// Membership strengths of the new points' neighbour lists (`q×k`, ascending distance):
/// umap-learn's `smooth_knn_dist(dists, k, local_connectivity=0)` and
/// `compute_membership_strengths(..., bipartite=True)`, after dropping the neighbours at or
/// beyond `disconnection` (their index becomes [`NO_NEIGHBOUR`]).
pub fn membership_graph(
    mut indices: Vec<u32>,
    dists: Vec<f32>,
    k: usize,
    disconnection: f32,
) -> TransformGraph {
    assert!(k > 0 && indices.len() == dists.len() && dists.len().is_multiple_of(k));
    let q = dists.len() / k;
    for (i, &d) in indices.iter_mut().zip(&dists) {
        if d >= disconnection {
            *i = NO_NEIGHBOUR;
        }
    }
    let target = (k as f64).log2();
    let mean_all = dists.iter().map(|&x| x as f64).sum::<f64>() / dists.len().max(1) as f64;
    // local_connectivity = 0: rho = 0 · (first non-zero distance) = 0.
    let sigmas: Vec<f32> = dists
        .par_chunks(k)
        .map(|row| smooth_sigma(row, 0.0, target, mean_all))
        .collect();
    let weights = indices
        .iter()
        .zip(&dists)
        .enumerate()
        .map(|(e, (&j, &d))| {
            let sigma = sigmas[e / k];
            if j == NO_NEIGHBOUR {
                0.0
            } else if d <= 0.0 || sigma == 0.0 {
                1.0
            } else {
                (-(d / sigma)).exp()
            }
        })
        .collect();
    TransformGraph {
        q,
        k,
        indices,
        dists,
        sigmas,
        weights,
    }
}

/// umap-learn's `init_graph_transform`: per new point the weighted mean of its neighbours'
/// coordinates in `embedding` (weights over their sum, neighbours in index order, f32), the
/// coordinates of the first neighbour of weight 1 when there is one, NaN when it has no
/// neighbour of positive weight.
pub fn initial_positions(graph: &TransformGraph, embedding: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let k = graph.k;
    (0..graph.q)
        .map(|i| {
            let mut row: Vec<(u32, f32)> = (0..k)
                .map(|t| (graph.indices[i * k + t], graph.weights[i * k + t]))
                .filter(|&(j, w)| j != NO_NEIGHBOUR && w != 0.0)
                .collect();
            if row.is_empty() {
                return [f32::NAN; 2];
            }
            row.sort_by_key(|e| e.0);
            let sum: f32 = row.iter().map(|e| e.1).sum();
            let mut p = [0.0f32; 2];
            for (j, w) in row {
                let e = embedding[j as usize];
                if w == 1.0 {
                    p = e;
                    break;
                }
                let s = w / sum;
                p[0] += s * e[0];
                p[1] += s * e[1];
            }
            p
        })
        .collect()
}

/// umap-learn's epoch count for `transform`: 100 for up to 10,000 new points, else 30; a third
/// of the fit's `n_epochs` when those were set explicitly.
pub fn transform_epochs(fit_n_epochs: Option<usize>, new_points: usize) -> usize {
    match fit_n_epochs {
        None if new_points <= 10_000 => 100,
        None => 30,
        Some(e) => e / 3,
    }
}

/// Settings of a transform.
#[derive(Clone, Debug)]
pub struct TransformParams {
    /// Neighbours per new point (the fit's `n_neighbors`).
    pub n_neighbors: usize,
    pub a: f32,
    pub b: f32,
    /// The fit's `n_epochs` setting (`None`: its default); see [`transform_epochs`].
    pub fit_n_epochs: Option<usize>,
    /// Run the SGD epochs (UMAP) or keep the weighted initial positions (t-SNE layouts, which
    /// have no UMAP objective to optimize against).
    pub optimize: bool,
    /// The fit's learning rate; the transform uses a quarter of it.
    pub learning_rate: f32,
    pub negative_sample_rate: usize,
    pub repulsion_strength: f32,
    pub seed: u64,
}

impl TransformParams {
    /// The transform matching a layout made with `p`.
    pub fn for_umap(p: &UmapParams) -> Self {
        let (a, b) = find_ab_params(p.spread, p.min_dist);
        TransformParams {
            n_neighbors: p.n_neighbors,
            a,
            b,
            fit_n_epochs: p.n_epochs,
            optimize: true,
            learning_rate: p.learning_rate,
            negative_sample_rate: p.negative_sample_rate,
            repulsion_strength: 1.0,
            seed: p.seed,
        }
    }

    /// Neighbour-weighted initial positions only, with `n_neighbors` neighbours.
    pub fn init_only(n_neighbors: usize) -> Self {
        TransformParams {
            n_neighbors,
            a: 1.0,
            b: 1.0,
            fit_n_epochs: None,
            optimize: false,
            learning_rate: 1.0,
            negative_sample_rate: 5,
            repulsion_strength: 1.0,
            seed: 0,
        }
    }
}

/// New points placed into a layout.
#[derive(Clone, Debug)]
pub struct Placement {
    pub graph: TransformGraph,
    /// Weighted initial positions (layout coordinates).
    pub init: Vec<[f32; 2]>,
    /// Final positions (equal to `init` without optimization; NaN for a point without
    /// neighbours).
    pub positions: Vec<[f32; 2]>,
    /// Epochs run (0 without optimization).
    pub n_epochs: usize,
}

/// Places the `q` rows of `queries` into `embedding`, the layout of `index`'s points (same
/// order), as umap-learn's `transform` does (see the module documentation).
pub fn transform(
    index: &TransformIndex,
    embedding: &[[f32; 2]],
    queries: &[f32],
    q: usize,
    params: &TransformParams,
) -> Result<Placement> {
    ensure!(
        embedding.len() == index.len(),
        "transform: the layout has {} points, the index {}",
        embedding.len(),
        index.len()
    );
    ensure!(
        queries.len() == q * index.dim(),
        "transform: {} query values are not {q} rows of {}",
        queries.len(),
        index.dim()
    );
    ensure!(
        queries.iter().all(|v| v.is_finite()),
        "transform: the new points contain NaN or infinite values"
    );
    ensure!(
        params.n_neighbors >= 1,
        "transform: n_neighbors must be ≥ 1"
    );
    let k = params.n_neighbors.min(index.len());
    let (indices, dists) = index.neighbours(queries, q, k);
    let graph = membership_graph(indices, dists, k, disconnection_distance(index.metric()));
    let init = initial_positions(&graph, embedding);
    let n_epochs = if params.optimize {
        transform_epochs(params.fit_n_epochs, q)
    } else {
        0
    };
    let positions = if n_epochs > 0 {
        optimize_new_points(&init, &graph, embedding, params, n_epochs)
    } else {
        init.clone()
    };
    Ok(Placement {
        graph,
        init,
        positions,
        n_epochs,
    })
}

/// umap-learn's `optimize_layout_euclidean(head=new points, tail=layout, move_other=False)`
/// with `initial_alpha = learning_rate / 4`, one new point at a time.
fn optimize_new_points(
    init: &[[f32; 2]],
    graph: &TransformGraph,
    embedding: &[[f32; 2]],
    p: &TransformParams,
    n_epochs: usize,
) -> Vec<[f32; 2]> {
    let k = graph.k;
    let n_vertices = embedding.len();
    // graph.data[graph.data < max / n_epochs] = 0; make_epochs_per_sample.
    let wmax = graph.weights.iter().copied().fold(0.0f32, f32::max);
    if wmax <= 0.0 {
        return init.to_vec();
    }
    let nsr = p.negative_sample_rate.max(1) as f64;
    let initial_alpha = p.learning_rate / 4.0;
    let (a, b, gamma) = (p.a, p.b, p.repulsion_strength);
    let clip = |v: f32| v.clamp(-4.0, 4.0);
    (0..graph.q)
        .into_par_iter()
        .map(|i| {
            let mut cur = init[i];
            if !(cur[0].is_finite() && cur[1].is_finite()) {
                return cur;
            }
            // (tail, epochs_per_sample, epoch_of_next_sample, epochs_per_negative_sample,
            // epoch_of_next_negative_sample) of this point's edges, in graph order.
            let mut edges: Vec<(usize, f64, f64, f64, f64)> = (0..k)
                .filter_map(|t| {
                    let (j, w) = (graph.indices[i * k + t], graph.weights[i * k + t]);
                    if j == NO_NEIGHBOUR || w <= 0.0 || w < wmax / n_epochs as f32 {
                        return None;
                    }
                    let n_samples = n_epochs as f64 * (w as f64 / wmax as f64);
                    let eps = n_epochs as f64 / n_samples;
                    Some((j as usize, eps, eps, eps / nsr, eps / nsr))
                })
                .collect();
            let mut rng = Rng::derived(p.seed ^ 0x7472_616e_7366, i as u64, 0);
            let mut alpha = initial_alpha;
            for n in 0..n_epochs {
                let nf = n as f64;
                for e in edges.iter_mut() {
                    if e.2 > nf {
                        continue;
                    }
                    let other = embedding[e.0];
                    let (dx, dy) = (cur[0] - other[0], cur[1] - other[1]);
                    let d2 = dx * dx + dy * dy;
                    let gc = if d2 > 0.0 {
                        -2.0 * a * b * d2.powf(b - 1.0) / (a * d2.powf(b) + 1.0)
                    } else {
                        0.0
                    };
                    cur[0] += clip(gc * dx) * alpha;
                    cur[1] += clip(gc * dy) * alpha;
                    e.2 += e.1;
                    let n_neg = ((nf - e.4) / e.3).max(0.0) as usize;
                    for _ in 0..n_neg {
                        let other = embedding[rng.below(n_vertices)];
                        let (dx, dy) = (cur[0] - other[0], cur[1] - other[1]);
                        let d2 = dx * dx + dy * dy;
                        if d2 > 0.0 {
                            let gc = 2.0 * gamma * b / ((0.001 + d2) * (a * d2.powf(b) + 1.0));
                            cur[0] += clip(gc * dx) * alpha;
                            cur[1] += clip(gc * dy) * alpha;
                        }
                    }
                    e.4 += n_neg as f64 * e.3;
                }
                alpha = initial_alpha * (1.0 - (n as f32 / n_epochs as f32));
            }
            cur
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid_data() -> (Vec<f32>, Vec<[f32; 2]>) {
        // 100 points on a 10×10 grid in 3-D (z = 1 so cosine is meaningful), laid out as
        // themselves.
        let mut x = Vec::new();
        let mut emb = Vec::new();
        for i in 0..10 {
            for j in 0..10 {
                x.extend([i as f32, j as f32, 1.0]);
                emb.push([i as f32, j as f32]);
            }
        }
        (x, emb)
    }

    #[test]
    fn neighbours_are_exact_and_thread_independent() {
        let (x, _) = grid_data();
        let idx = TransformIndex::new(&x, 100, 3, Metric::Euclidean).unwrap();
        let qs = [4.2, 5.1, 1.0, 0.0, 0.0, 1.0, 9.0, 9.0, 1.0];
        let (i1, d1) = idx.neighbours(&qs, 3, 5);
        assert_eq!(&i1[0..2], &[45, 55]); // (4,5) then (5,5)
        assert_eq!(i1[5], 0);
        assert_eq!(i1[10], 99);
        assert!(d1.chunks(5).all(|r| r.windows(2).all(|w| w[0] <= w[1])));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        assert_eq!(pool.install(|| idx.neighbours(&qs, 3, 5)), (i1, d1));
        // k is capped at the number of points.
        assert_eq!(idx.neighbours(&qs, 3, 500).0.len(), 300);
    }

    #[test]
    fn weights_and_initial_positions() {
        let (x, emb) = grid_data();
        let idx = TransformIndex::new(&x, 100, 3, Metric::Euclidean).unwrap();
        // A copy of point 23 snaps onto it (weight 1); a point between two lands between them.
        let qs = [2.0, 3.0, 1.0, 6.5, 6.0, 1.0];
        let p = transform(&idx, &emb, &qs, 2, &TransformParams::init_only(8)).unwrap();
        assert_eq!(p.init[0], [2.0, 3.0]);
        assert_eq!(p.graph.weights[0], 1.0);
        assert!((p.init[1][0] - 6.5).abs() < 0.05 && (p.init[1][1] - 6.0).abs() < 0.3);
        assert_eq!(p.positions, p.init);
        assert_eq!(p.n_epochs, 0);
        for w in p.graph.weights.chunks(8) {
            assert!(w.windows(2).all(|v| v[0] >= v[1]) && w.iter().all(|&v| v > 0.0));
        }
    }

    #[test]
    fn sgd_keeps_points_near_their_neighbours_and_is_reproducible() {
        let (x, emb) = grid_data();
        let idx = TransformIndex::new(&x, 100, 3, Metric::Euclidean).unwrap();
        let qs = [2.0, 3.0, 1.0, 6.5, 6.0, 1.0, 4.4, 4.4, 1.0];
        let params = TransformParams::for_umap(&UmapParams {
            n_neighbors: 8,
            ..Default::default()
        });
        let p = transform(&idx, &emb, &qs, 3, &params).unwrap();
        assert_eq!(p.n_epochs, 100);
        for (got, want) in p.positions.iter().zip([[2.0, 3.0], [6.5, 6.0], [4.4, 4.4]]) {
            let d = ((got[0] - want[0]).powi(2) + (got[1] - want[1]).powi(2)).sqrt();
            assert!(d < 1.0, "{got:?} vs {want:?}");
        }
        assert_ne!(p.positions, p.init, "the epochs move the points");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let again = pool.install(|| transform(&idx, &emb, &qs, 3, &params).unwrap());
        assert_eq!(again.positions, p.positions);
        assert_eq!(transform_epochs(None, 20_000), 30);
        assert_eq!(transform_epochs(Some(200), 5), 66);
    }

    #[test]
    fn disconnected_neighbours_are_dropped() {
        // Cosine: the exact opposite direction is at distance 2.
        let x = [1.0, 0.0, -1.0, 0.0, 0.0, 1.0];
        let idx = TransformIndex::new(&x, 3, 2, Metric::Cosine).unwrap();
        let emb = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let p = transform(&idx, &emb, &[-2.0, 0.0], 1, &TransformParams::init_only(3)).unwrap();
        assert_eq!(p.graph.indices[0], 1);
        assert_eq!(p.graph.indices[2], NO_NEIGHBOUR);
        assert_eq!(p.graph.weights[2], 0.0);
        assert_eq!(p.init[0], [10.0, 0.0]); // snaps onto the identical direction
        assert!(transform(
            &idx,
            &emb[..2],
            &[1.0, 0.0],
            1,
            &TransformParams::init_only(3)
        )
        .is_err());
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// Not a test: times the neighbour search of an image's 196 vectors among 100k 1280-d
    /// points (`cargo test --release --lib transform::timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn time_neighbours() {
        let (n, d, q) = (100_000, 1280, 196);
        let mut rng = Rng::new(1);
        let data: Vec<f32> = (0..n * d).map(|_| rng.uniform() as f32).collect();
        let qs: Vec<f32> = (0..q * d).map(|_| rng.uniform() as f32).collect();
        let t = std::time::Instant::now();
        let idx = TransformIndex::new(&data, n, d, Metric::Cosine).unwrap();
        println!("index: {:.2} s", t.elapsed().as_secs_f64());
        let emb: Vec<[f32; 2]> = (0..n)
            .map(|i| [(i % 317) as f32, (i % 91) as f32])
            .collect();
        let t = std::time::Instant::now();
        let p = TransformParams::for_umap(&UmapParams::default());
        let placed = transform(&idx, &emb, &qs, q, &p).unwrap();
        println!(
            "transform of {q} points (k = 50, {} epochs): {:.2} s",
            placed.n_epochs,
            t.elapsed().as_secs_f64()
        );
    }
}
