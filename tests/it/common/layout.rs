//! Layout quality helpers shared by `tests/layout_quality.rs` (UMAP) and `tests/tsne_quality.rs`:
//! a labelled synthetic mixture, embedded-space neighbours, sklearn's trustworthiness and the
//! neighbour label agreement.

use rayon::prelude::*;

pub struct SplitMix(pub u64);
impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn normal(&mut self) -> f32 {
        let u1 = 1.0 - (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// `clusters` clusters of `per` rows in `d` dimensions, each a noisy 3-D linear manifold (so
/// within-cluster structure exists and trustworthiness means something): centre ~ N(0, 1),
/// manifold basis ~ N(0, `basis`²), isotropic noise ~ N(0, `noise`²). Rows are ordered by
/// cluster; returns (data n×d, labels).
pub fn mixture(
    clusters: usize,
    per: usize,
    d: usize,
    basis: f32,
    noise: f32,
    seed: u64,
) -> (Vec<f32>, Vec<usize>) {
    let mut rng = SplitMix(seed);
    let mut data = Vec::with_capacity(clusters * per * d);
    let mut labels = Vec::new();
    for c in 0..clusters {
        let centre: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
        let b: Vec<f32> = (0..3 * d).map(|_| rng.normal() * basis).collect();
        for _ in 0..per {
            let z = [rng.normal(), rng.normal(), rng.normal()];
            for j in 0..d {
                let s = z[0] * b[j] + z[1] * b[d + j] + z[2] * b[2 * d + j];
                data.push(centre[j] + s + noise * rng.normal());
            }
            labels.push(c);
        }
    }
    (data, labels)
}

pub fn cosine_dist(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    1.0 - ab / (aa.sqrt() * bb.sqrt())
}

/// Indices of the k nearest embedded neighbours of each point (self excluded, ties by index);
/// `y` is `n×dims` row-major.
pub fn knn_embedded(y: &[f32], dims: usize, k: usize) -> Vec<Vec<usize>> {
    let n = y.len() / dims;
    (0..n)
        .into_par_iter()
        .map(|i| {
            let yi = &y[i * dims..(i + 1) * dims];
            let mut v: Vec<(f32, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let d2 = yi
                        .iter()
                        .zip(&y[j * dims..(j + 1) * dims])
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f32>();
                    (d2, j)
                })
                .collect();
            v.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            v.truncate(k);
            v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            v.into_iter().map(|p| p.1).collect()
        })
        .collect()
}

/// Fraction of each point's embedded neighbours (as given) that share its label, averaged.
pub fn label_agreement(nn: &[Vec<usize>], labels: &[usize]) -> f64 {
    nn.iter()
        .enumerate()
        .map(|(i, js)| {
            js.iter().filter(|&&j| labels[j] == labels[i]).count() as f64 / js.len() as f64
        })
        .sum::<f64>()
        / nn.len() as f64
}

/// sklearn.manifold.trustworthiness: 1 − 2/(n k (2n − 3k − 1)) Σ_i Σ_{j ∈ N_k^emb(i)} max(0, r(i, j) − k),
/// r(i, j) = rank of j among i's input-space neighbours (1 = nearest, self excluded), with the
/// cosine metric in the input space.
pub fn trustworthiness(x: &[f32], d: usize, emb_nn: &[Vec<usize>], k: usize) -> f64 {
    let n = emb_nn.len();
    let t: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let xi = &x[i * d..(i + 1) * d];
            let mut order: Vec<(f32, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (cosine_dist(xi, &x[j * d..(j + 1) * d]), j))
                .collect();
            order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut rank = vec![0usize; n];
            for (r, &(_, j)) in order.iter().enumerate() {
                rank[j] = r + 1;
            }
            emb_nn[i]
                .iter()
                .take(k)
                .map(|&j| (rank[j] as f64 - k as f64).max(0.0))
                .sum::<f64>()
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    let (n, k) = (n as f64, k as f64);
    1.0 - t * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))
}
