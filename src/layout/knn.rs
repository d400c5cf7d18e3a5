//! Exact k-nearest-neighbour search by blocked matrix products.
//!
//! Measured on this kind of machine (see `notes/toolchain.md`): for 20k–100k activation rows an
//! exact search after a PCA reduction to ~64 dims beats graph indices (hnsw) that are slow to
//! build. The search ranks candidates by squared Euclidean distance in the (reduced) search
//! space, `|y|² − 2 x·y`, computed tile by tile with a register-blocked kernel (4 query rows ×
//! 16 database rows, database packed dimension-major so the inner loop is one broadcast and two
//! 8-lane FMAs per dimension). When the space was reduced, `2k + 10` candidates are kept and
//! re-ranked with exact distances in the full space, so only the candidate recall depends on PCA.

use super::linalg::{dot_f32, dot_fast, sqdist_f32, sqdist_fast};
use super::nndescent::{nn_descent, NnDescent};
use super::pca::Pca;
use rayon::prelude::*;

/// Distance between activation vectors. Cosine is `1 − cos(x, y)` as in umap-learn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    Euclidean,
}

/// k nearest neighbours of every row, row-major `n×k`, ascending distance. As in umap-learn the
/// point itself is the first neighbour (distance 0), so `k` counts the point itself.
#[derive(Clone, Debug)]
pub struct Knn {
    pub n: usize,
    pub k: usize,
    pub indices: Vec<u32>,
    pub dists: Vec<f32>,
}

const MR: usize = 4; // query rows per micro-tile
const NR: usize = 16; // database rows per micro-tile (two AVX registers)
const QB: usize = 128; // query rows per task (their packed copy stays in L2)
const DB: usize = 256; // database rows per cache block

/// Rows after the metric's preprocessing: L2-normalized for cosine (so cosine distance is
/// `1 − x·y` and equals half the squared Euclidean distance), unchanged for Euclidean.
pub(crate) fn prepare(data: &[f32], d: usize, metric: Metric) -> Vec<f32> {
    prepare_owned(data.to_vec(), d, metric)
}

/// [`prepare`] in place: no second copy of the rows (at 1M × 1,280 each copy is 5 GB).
pub(crate) fn prepare_owned(mut x: Vec<f32>, d: usize, metric: Metric) -> Vec<f32> {
    if metric == Metric::Cosine {
        x.par_chunks_mut(d).for_each(|r| {
            let nrm = dot_f32(r, r).sqrt();
            if nrm > 0.0 {
                r.iter_mut().for_each(|v| *v /= nrm);
            }
        });
    }
    x
}

/// [`distance`] with the dot product compiled for AVX2 + FMA when the CPU has it (different
/// rounding from [`distance`]; used by the NN-descent re-rank, where it is the inner loop).
#[inline]
pub(crate) fn distance_fast(a: &[f32], b: &[f32], metric: Metric) -> f32 {
    match metric {
        Metric::Cosine => (1.0 - dot_fast(a, b)).max(0.0),
        Metric::Euclidean => sqdist_fast(a, b).sqrt(),
    }
}

/// Distance between two prepared rows.
#[inline]
pub(crate) fn distance(a: &[f32], b: &[f32], metric: Metric) -> f32 {
    match metric {
        Metric::Cosine => (1.0 - dot_f32(a, b)).max(0.0),
        Metric::Euclidean => sqdist_f32(a, b).sqrt(),
    }
}

/// Search space for the kNN: the prepared rows, or their PCA projection when `pca_dims` is set
/// and smaller than `d`. Returns (space, its dimension, the fitted PCA if any).
pub(crate) fn search_space(
    prepared: &[f32],
    n: usize,
    d: usize,
    pca_dims: Option<usize>,
    seed: u64,
) -> (Option<Vec<f32>>, usize, Option<Pca>) {
    match pca_dims {
        Some(m) if m > 0 && m < d => {
            let pca = Pca::fit(prepared, n, d, m, seed);
            let y = pca.transform(prepared, n);
            (Some(y), m, Some(pca))
        }
        _ => (None, d, None),
    }
}

/// Exact kNN of the `n×d` prepared rows, searched in `space` (`n×m`; pass the prepared rows
/// themselves for no reduction). `progress` receives the fraction done; `cancel` is polled
/// between batches of query blocks. Returns `None` when cancelled.
#[allow(clippy::too_many_arguments)]
pub(crate) fn knn_search(
    prepared: &[f32],
    d: usize,
    space: &[f32],
    m: usize,
    n: usize,
    k: usize,
    metric: Metric,
    reduced: bool,
    progress: &mut dyn FnMut(f32),
    cancel: &dyn Fn() -> bool,
) -> Option<Knn> {
    let k = k.clamp(1, n.max(1));
    // Candidates other than the point itself.
    let c = if reduced {
        (2 * k + 10).min(n - 1)
    } else {
        (k - 1).min(n - 1)
    };
    let packed = pack_database(space, n, m);
    let norms: Vec<f32> = (0..n.div_ceil(NR) * NR)
        .map(|j| {
            if j < n {
                dot_f32(&space[j * m..(j + 1) * m], &space[j * m..(j + 1) * m])
            } else {
                f32::INFINITY // padding rows are never selected
            }
        })
        .collect();
    let n_blocks = n.div_ceil(QB);
    let batch = (rayon::current_num_threads() * 4).max(1);
    let mut indices = vec![0u32; n * k];
    let mut dists = vec![0f32; n * k];
    let mut done = 0;
    while done < n_blocks {
        if cancel() {
            return None;
        }
        let end = (done + batch).min(n_blocks);
        let s = done * QB * k;
        let e = (end * QB).min(n) * k;
        indices[s..e]
            .par_chunks_mut(QB * k)
            .zip(dists[s..e].par_chunks_mut(QB * k))
            .enumerate()
            .for_each(|(b, (idx, dst))| {
                let q0 = (done + b) * QB;
                let q1 = (q0 + QB).min(n);
                let cands = search_block(space, m, n, &packed, &norms, q0, q1, c);
                // Re-rank candidates by the exact distance in the full prepared space.
                for (r, qi) in (q0..q1).enumerate() {
                    let qrow = &prepared[qi * d..(qi + 1) * d];
                    let mut best: Vec<(f32, u32)> = cands[r]
                        .iter()
                        .map(|&j| {
                            let j = j as usize;
                            (
                                distance(qrow, &prepared[j * d..(j + 1) * d], metric),
                                j as u32,
                            )
                        })
                        .collect();
                    best.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    best.truncate(k - 1);
                    idx[r * k] = qi as u32;
                    dst[r * k] = 0.0;
                    for (t, (dd, j)) in best.into_iter().enumerate() {
                        idx[r * k + 1 + t] = j;
                        dst[r * k + 1 + t] = dd;
                    }
                }
            });
        done = end;
        progress(done as f32 / n_blocks as f32);
    }
    Some(Knn {
        n,
        k,
        indices,
        dists,
    })
}

/// Above this many rows [`neighbours`] uses NN-descent instead of the exact search: the exact
/// search costs n² · m multiply-adds, NN-descent ~n · max_candidates² · m per iteration (3–4
/// iterations). Measured on a 100k × 512 mixture (2 shared cores, k = 50, 64 search dims, same
/// load for both): exact 162 s, NN-descent 94 s (recall 0.90 of the exact lists, layout quality
/// unchanged, see `benches/layout_bench.py`); by the n² / n scaling they cross near 60k.
/// `ATLAS_KNN_EXACT_MAX_ROWS` overrides it (to benchmark one path against the other).
pub const EXACT_MAX_ROWS: usize = 60_000;

fn exact_max_rows() -> usize {
    std::env::var("ATLAS_KNN_EXACT_MAX_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EXACT_MAX_ROWS)
}

/// The kNN used by the layouts: exact below [`EXACT_MAX_ROWS`] rows, otherwise NN-descent in
/// the search space followed by an exact re-rank of its lists in the full prepared space (so
/// the distances are the metric's, as from [`knn_search`]). Same contract as [`knn_search`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn neighbours(
    prepared: &[f32],
    d: usize,
    space: &[f32],
    m: usize,
    n: usize,
    k: usize,
    metric: Metric,
    reduced: bool,
    seed: u64,
    progress: &mut dyn FnMut(f32),
    cancel: &dyn Fn() -> bool,
) -> Option<Knn> {
    if n <= exact_max_rows() {
        return knn_search(
            prepared, d, space, m, n, k, metric, reduced, progress, cancel,
        );
    }
    let k = k.clamp(1, n);
    // A few more candidates than needed when the search space is reduced, for the re-rank.
    let kc = if reduced { k - 1 + k / 5 } else { k - 1 };
    let cfg = NnDescent::for_size(n, kc);
    let (cand, _) = nn_descent(space, n, m, kc, &cfg, seed, progress, cancel)?;
    let kc = cand.len() / n;
    // Re-rank in a breadth-first order of the candidate graph: consecutive rows then share
    // most of their candidates, whose full-dimension rows (2 KB each at 512-d, 200 MB for
    // 100k rows) are then mostly still in cache; in row order every candidate row was a fresh
    // memory fetch (the rows are in no particular order). Each row's result does not depend on
    // the order, so this changes nothing but the time.
    let order = bfs_order(&cand, n, kc);
    const CHUNK: usize = 256;
    let ranked: Vec<(Vec<u32>, Vec<f32>)> = order
        .par_chunks(CHUNK)
        .map(|rows| {
            let mut idx = vec![0u32; rows.len() * k];
            let mut dst = vec![0f32; rows.len() * k];
            let mut best: Vec<(f32, u32)> = Vec::with_capacity(kc);
            for (r, &i) in rows.iter().enumerate() {
                let i = i as usize;
                let qrow = &prepared[i * d..(i + 1) * d];
                best.clear();
                best.extend(cand[i * kc..(i + 1) * kc].iter().map(|&j| {
                    let j = j as usize;
                    (
                        distance_fast(qrow, &prepared[j * d..(j + 1) * d], metric),
                        j as u32,
                    )
                }));
                best.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                idx[r * k] = i as u32;
                dst[r * k] = 0.0;
                for (t, &(dd, j)) in best.iter().take(k - 1).enumerate() {
                    idx[r * k + 1 + t] = j;
                    dst[r * k + 1 + t] = dd;
                }
            }
            (idx, dst)
        })
        .collect();
    let mut indices = vec![0u32; n * k];
    let mut dists = vec![0f32; n * k];
    for (rows, (idx, dst)) in order.chunks(CHUNK).zip(&ranked) {
        for (r, &i) in rows.iter().enumerate() {
            let i = i as usize;
            indices[i * k..(i + 1) * k].copy_from_slice(&idx[r * k..(r + 1) * k]);
            dists[i * k..(i + 1) * k].copy_from_slice(&dst[r * k..(r + 1) * k]);
        }
    }
    Some(Knn {
        n,
        k,
        indices,
        dists,
    })
}

/// Breadth-first visiting order of the directed graph with `kc` out-neighbours per row (rows
/// of `u32::MAX` padding ignored), restarting from the lowest unvisited row.
fn bfs_order(nbrs: &[u32], n: usize, kc: usize) -> Vec<u32> {
    let mut order = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    for s in 0..n {
        if seen[s] {
            continue;
        }
        seen[s] = true;
        order.push(s as u32);
        let mut q = order.len() - 1;
        while q < order.len() {
            let v = order[q] as usize;
            q += 1;
            for &j in &nbrs[v * kc..(v + 1) * kc] {
                if (j as usize) < n && !seen[j as usize] {
                    seen[j as usize] = true;
                    order.push(j);
                }
            }
        }
    }
    order
}

/// Database packed in panels of NR rows, dimension-major inside a panel:
/// `packed[(p*m + kk)*NR + r] = space[(p*NR + r)*m + kk]`, zero padded.
fn pack_database(space: &[f32], n: usize, m: usize) -> Vec<f32> {
    let panels = n.div_ceil(NR);
    let mut packed = vec![0f32; panels * m * NR];
    packed
        .par_chunks_mut(m * NR)
        .enumerate()
        .for_each(|(p, panel)| {
            for r in 0..NR {
                let j = p * NR + r;
                if j < n {
                    for kk in 0..m {
                        panel[kk * NR + r] = space[j * m + kk];
                    }
                }
            }
        });
    packed
}

/// Bounded max-heap of (score, index): keeps the `cap` smallest scores seen.
struct TopK {
    cap: usize,
    s: Vec<f32>,
    i: Vec<u32>,
}

impl TopK {
    fn new(cap: usize) -> Self {
        TopK {
            cap,
            s: Vec::with_capacity(cap),
            i: Vec::with_capacity(cap),
        }
    }

    #[inline]
    fn threshold(&self) -> f32 {
        if self.s.len() < self.cap {
            f32::INFINITY
        } else {
            self.s[0]
        }
    }

    #[inline]
    fn push(&mut self, score: f32, idx: u32) {
        if self.cap == 0 {
            return;
        }
        if self.s.len() < self.cap {
            // Sift up.
            self.s.push(score);
            self.i.push(idx);
            let mut c = self.s.len() - 1;
            while c > 0 {
                let p = (c - 1) / 2;
                if self.s[p] >= self.s[c] {
                    break;
                }
                self.s.swap(p, c);
                self.i.swap(p, c);
                c = p;
            }
        } else {
            // Replace the root (the worst) and sift down.
            self.s[0] = score;
            self.i[0] = idx;
            let len = self.s.len();
            let mut p = 0;
            loop {
                let l = 2 * p + 1;
                if l >= len {
                    break;
                }
                let r = l + 1;
                let c = if r < len && self.s[r] > self.s[l] {
                    r
                } else {
                    l
                };
                if self.s[p] >= self.s[c] {
                    break;
                }
                self.s.swap(p, c);
                self.i.swap(p, c);
                p = c;
            }
        }
    }
}

/// Candidates (indices, unsorted) for query rows `q0..q1`.
#[allow(clippy::too_many_arguments)]
fn search_block(
    space: &[f32],
    m: usize,
    n: usize,
    packed: &[f32],
    norms: &[f32],
    q0: usize,
    q1: usize,
    c: usize,
) -> Vec<Vec<u32>> {
    // Pack the queries in groups of MR rows, dimension-major: qp[(g*m + kk)*MR + r].
    let groups = (q1 - q0).div_ceil(MR);
    let mut qp = vec![0f32; groups * m * MR];
    for (r, qi) in (q0..q1).enumerate() {
        let (g, rr) = (r / MR, r % MR);
        for kk in 0..m {
            qp[(g * m + kk) * MR + rr] = space[qi * m + kk];
        }
    }
    let mut heaps: Vec<TopK> = (q0..q1).map(|_| TopK::new(c)).collect();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features this function is compiled for.
            unsafe { scan_avx2(&qp, groups, m, n, packed, norms, q0, &mut heaps) };
            return heaps.into_iter().map(|h| h.i).collect();
        }
    }
    scan::<false>(&qp, groups, m, n, packed, norms, q0, &mut heaps);
    heaps.into_iter().map(|h| h.i).collect()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn scan_avx2(
    qp: &[f32],
    groups: usize,
    m: usize,
    n: usize,
    packed: &[f32],
    norms: &[f32],
    q0: usize,
    heaps: &mut [TopK],
) {
    scan::<true>(qp, groups, m, n, packed, norms, q0, heaps)
}

/// Loop over database cache blocks × query groups × panels. `FMA` selects `mul_add` (only fast
/// when compiled with the fma feature; otherwise a libm call) or separate multiply and add.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)] // explicit indices keep the tile in registers
fn scan<const FMA: bool>(
    qp: &[f32],
    groups: usize,
    m: usize,
    n: usize,
    packed: &[f32],
    norms: &[f32],
    q0: usize,
    heaps: &mut [TopK],
) {
    let panels = n.div_ceil(NR);
    let panels_per_block = DB / NR;
    for pb in (0..panels).step_by(panels_per_block) {
        let pe = (pb + panels_per_block).min(panels);
        for g in 0..groups {
            let qg = &qp[g * m * MR..(g + 1) * m * MR];
            for p in pb..pe {
                let panel = &packed[p * m * NR..(p + 1) * m * NR];
                let mut acc = [[0f32; NR]; MR];
                for (a, b) in qg.chunks_exact(MR).zip(panel.chunks_exact(NR)) {
                    for r in 0..MR {
                        let ar = a[r];
                        for cc in 0..NR {
                            acc[r][cc] = if FMA {
                                ar.mul_add(b[cc], acc[r][cc])
                            } else {
                                acc[r][cc] + ar * b[cc]
                            };
                        }
                    }
                }
                let nb = &norms[p * NR..(p + 1) * NR];
                for r in 0..MR {
                    let row = g * MR + r;
                    if row >= heaps.len() {
                        break;
                    }
                    let qi = q0 + row;
                    let h = &mut heaps[row];
                    let mut thr = h.threshold();
                    for cc in 0..NR {
                        let s = nb[cc] - 2.0 * acc[r][cc];
                        if s < thr {
                            let j = p * NR + cc;
                            if j != qi {
                                h.push(s, j as u32);
                                thr = h.threshold();
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::rng::Rng;
    use super::*;

    fn brute(data: &[f32], n: usize, d: usize, k: usize, metric: Metric) -> Vec<Vec<u32>> {
        let x = prepare(data, d, metric);
        (0..n)
            .map(|i| {
                let mut v: Vec<(f32, u32)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| {
                        (
                            distance(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d], metric),
                            j as u32,
                        )
                    })
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v.truncate(k - 1);
                v.into_iter().map(|p| p.1).collect()
            })
            .collect()
    }

    fn run(n: usize, d: usize, k: usize, metric: Metric, pca: Option<usize>) -> (Knn, Vec<f32>) {
        let mut rng = Rng::new(11);
        let data: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        let x = prepare(&data, d, metric);
        let (space, m, _) = search_space(&x, n, d, pca, 1);
        let reduced = space.is_some();
        let sp = space.as_deref().unwrap_or(&x);
        let knn = knn_search(&x, d, sp, m, n, k, metric, reduced, &mut |_| {}, &|| false).unwrap();
        (knn, data)
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn exact_search_matches_brute_force() {
        // Odd sizes exercise the padding of query groups and database panels.
        for metric in [Metric::Cosine, Metric::Euclidean] {
            let (n, d, k) = (301, 23, 10);
            let (knn, data) = run(n, d, k, metric, None);
            let want = brute(&data, n, d, k, metric);
            let mut agree = 0;
            for i in 0..n {
                assert_eq!(knn.indices[i * k], i as u32);
                assert_eq!(knn.dists[i * k], 0.0);
                for t in 1..k {
                    assert!(knn.dists[i * k + t] >= knn.dists[i * k + t - 1]);
                    if want[i].contains(&knn.indices[i * k + t]) {
                        agree += 1;
                    }
                }
            }
            // Ties aside (float rounding between the two formulas), the sets are identical.
            assert!(
                agree as f32 >= 0.999 * (n * (k - 1)) as f32,
                "{metric:?} {agree}"
            );
        }
    }

    #[test]
    fn reduced_search_keeps_high_recall() {
        // Low intrinsic dimension: 8 latent dims embedded in 200 — PCA to 16 loses nothing.
        let (n, d, k) = (500, 200, 15);
        let mut rng = Rng::new(5);
        let basis: Vec<f32> = (0..8 * d).map(|_| rng.normal() as f32).collect();
        let mut data = vec![0f32; n * d];
        for i in 0..n {
            let z: Vec<f32> = (0..8).map(|_| rng.normal() as f32).collect();
            for j in 0..d {
                data[i * d + j] = (0..8).map(|t| z[t] * basis[t * d + j]).sum::<f32>()
                    + 3.0
                    + 0.01 * rng.normal() as f32;
            }
        }
        let x = prepare(&data, d, Metric::Cosine);
        let (space, m, _) = search_space(&x, n, d, Some(16), 1);
        let knn = knn_search(
            &x,
            d,
            space.as_deref().unwrap(),
            m,
            n,
            k,
            Metric::Cosine,
            true,
            &mut |_| {},
            &|| false,
        )
        .unwrap();
        let want = brute(&data, n, d, k, Metric::Cosine);
        let hits: usize = (0..n)
            .map(|i| {
                (1..k)
                    .filter(|&t| want[i].contains(&knn.indices[i * k + t]))
                    .count()
            })
            .sum();
        let recall = hits as f32 / (n * (k - 1)) as f32;
        assert!(recall > 0.98, "recall {recall}");
    }
}
