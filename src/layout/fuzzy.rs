//! umap-learn's fuzzy simplicial set (`smooth_knn_dist`, `compute_membership_strengths`,
//! fuzzy union), reproduced detail for detail so our graph equals umap-learn's for the same kNN.

use super::knn::Knn;
use rayon::prelude::*;

/// umap-learn `SMOOTH_K_TOLERANCE`: stop the σ bisection when |Σ − log2 k| is below this.
const SMOOTH_K_TOLERANCE: f64 = 1e-5;
/// umap-learn `MIN_K_DIST_SCALE`: σ is never below this fraction of the mean distance.
const MIN_K_DIST_SCALE: f64 = 1e-3;
const N_ITER: usize = 64;

/// The symmetric fuzzy graph as COO entries (both directions present, like umap-learn's
/// `graph.tocoo()`), sorted by (head, tail).
#[derive(Clone, Debug)]
pub struct Graph {
    pub n: usize,
    pub head: Vec<u32>,
    pub tail: Vec<u32>,
    pub weight: Vec<f32>,
}

/// Per row of `dists` (n×k, first column the point itself): (σ, ρ) with ρ = distance to the
/// nearest non-identical neighbour and σ such that Σ_{j≥1} exp(−max(0, d_j − ρ)/σ) = log2(k).
/// Same algorithm as umap-learn's `smooth_knn_dist` with `local_connectivity = 1`,
/// `bandwidth = 1`, including its bisection (doubling while unbounded), tolerances and the
/// `MIN_K_DIST_SCALE` floor.
pub fn smooth_knn_dist(dists: &[f32], k: usize) -> (Vec<f32>, Vec<f32>) {
    let target = (k as f64).log2();
    // np.mean over the whole distance matrix (f64 here; numpy sums f32 pairwise).
    let mean_all = dists.iter().map(|&x| x as f64).sum::<f64>() / dists.len().max(1) as f64;
    let res: Vec<(f32, f32)> = dists
        .par_chunks(k)
        .map(|row| {
            // local_connectivity = 1: rho is the first strictly positive distance (index 0 of
            // the non-zero distances, no interpolation).
            let rho = row.iter().copied().find(|&x| x > 0.0).unwrap_or(0.0);
            (smooth_sigma(row, rho, target, mean_all), rho)
        })
        .collect();
    res.into_iter().unzip()
}

/// σ of one row of `smooth_knn_dist` for a given ρ: umap-learn's bisection for
/// Σ_{j≥1} exp(−max(0, d_j − ρ)/σ) = `target` (the first column is skipped, as umap-learn does
/// whether or not it is the point itself), then the `MIN_K_DIST_SCALE` floor (of the row's mean
/// distance when ρ > 0, else of `mean_all`, the mean of the whole distance matrix).
pub(crate) fn smooth_sigma(row: &[f32], rho: f32, target: f64, mean_all: f64) -> f32 {
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..N_ITER {
        let mut psum = 0.0f64;
        for &dj in &row[1..] {
            let d = (dj - rho) as f64; // f32 subtraction, as numba does on f32 arrays
            psum += if d > 0.0 { (-(d / mid)).exp() } else { 1.0 };
        }
        if (psum - target).abs() < SMOOTH_K_TOLERANCE {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            if hi == f64::INFINITY {
                mid *= 2.0;
            } else {
                mid = (lo + hi) / 2.0;
            }
        }
    }
    let mut sigma = mid as f32;
    let floor = if rho > 0.0 {
        let mean_row = row.iter().map(|&x| x as f64).sum::<f64>() / row.len() as f64;
        MIN_K_DIST_SCALE * mean_row
    } else {
        MIN_K_DIST_SCALE * mean_all
    };
    if (sigma as f64) < floor {
        sigma = floor as f32;
    }
    sigma
}

/// The fuzzy simplicial set of a kNN graph: membership exp(−(d − ρ_i)/σ_i) (1 within ρ, 0 for
/// the point itself), then fuzzy union `a + b − a·b` with the transpose (set_op_mix_ratio 1).
pub fn fuzzy_simplicial_set(knn: &Knn) -> Graph {
    let (n, k) = (knn.n, knn.k);
    let (sigmas, rhos) = smooth_knn_dist(&knn.dists, k);
    // (key = row<<32 | col, value, from_transpose)
    let mut entries: Vec<(u64, f32, bool)> = Vec::with_capacity(2 * n * k);
    for i in 0..n {
        for t in 0..k {
            let j = knn.indices[i * k + t] as usize;
            if j == i {
                continue; // val = 0, eliminated
            }
            let d = knn.dists[i * k + t];
            let val = if d - rhos[i] <= 0.0 || sigmas[i] == 0.0 {
                1.0
            } else {
                (-((d - rhos[i]) / sigmas[i])).exp()
            };
            if val <= 0.0 {
                continue;
            }
            entries.push((((i as u64) << 32) | j as u64, val, false));
            entries.push((((j as u64) << 32) | i as u64, val, true));
        }
    }
    entries.par_sort_unstable_by_key(|e| (e.0, e.2));
    let mut g = Graph {
        n,
        head: Vec::with_capacity(entries.len() / 2 + n),
        tail: Vec::new(),
        weight: Vec::new(),
    };
    let mut s = 0;
    while s < entries.len() {
        let key = entries[s].0;
        let (mut a, mut b) = (0.0f32, 0.0f32);
        while s < entries.len() && entries[s].0 == key {
            if entries[s].2 {
                b += entries[s].1;
            } else {
                a += entries[s].1;
            }
            s += 1;
        }
        let w = a + b - a * b;
        if w > 0.0 {
            g.head.push((key >> 32) as u32);
            g.tail.push((key & 0xffff_ffff) as u32);
            g.weight.push(w);
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_knn_dist_matches_umap_learn() {
        // Values printed by umap-learn 0.5.12 `smooth_knn_dist(d, 5.0)` for this matrix.
        let d: [f32; 20] = [
            0.0, 0.1, 0.2, 0.35, 0.5, //
            0.0, 0.0, 0.3, 0.3, 0.9, //
            0.0, 1.0, 1.5, 2.0, 4.0, //
            0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let (sigma, rho) = smooth_knn_dist(&d, 5);
        let want_sigma = [
            0.27225494384765625,
            0.0003000000142492354,
            1.425537109375,
            0.0005574999959208071,
        ];
        let want_rho = [0.1, 0.3, 1.0, 0.0];
        for i in 0..4 {
            assert!(
                (sigma[i] as f64 - want_sigma[i]).abs() < 1e-6 * want_sigma[i].max(1e-3),
                "sigma {i}: {} vs {}",
                sigma[i],
                want_sigma[i]
            );
            assert!((rho[i] - want_rho[i]).abs() < 1e-7, "rho {i}");
        }
    }

    #[test]
    fn fuzzy_union_is_symmetric() {
        // 4 points on a line, k = 3 (self + 2).
        let knn = Knn {
            n: 4,
            k: 3,
            indices: vec![0, 1, 2, 1, 0, 2, 2, 1, 3, 3, 2, 1],
            dists: vec![0.0, 1.0, 2.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 2.0],
        };
        let g = fuzzy_simplicial_set(&knn);
        let w = |a: u32, b: u32| {
            (0..g.head.len())
                .find(|&e| g.head[e] == a && g.tail[e] == b)
                .map(|e| g.weight[e])
        };
        for e in 0..g.head.len() {
            assert_eq!(w(g.tail[e], g.head[e]), Some(g.weight[e]));
            assert!(g.weight[e] > 0.0 && g.weight[e] <= 1.0);
        }
        assert_eq!(w(0, 1), Some(1.0)); // nearest neighbour within rho
        assert_eq!(w(0, 3), None);
    }
}
