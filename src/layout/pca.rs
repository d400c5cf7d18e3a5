//! PCA written by hand: exact (covariance + Jacobi) for small dimension, randomized range finder
//! with power iterations (Halko, Martinsson & Tropp 2011) for large dimension.
//!
//! Used twice by the layout: to reduce 512–1280-d activations to ~64 dims before the kNN search
//! (where the squared-distance matrix product dominates the cost), and for the PCA
//! initialisation of the embedding. Every reduction sums fixed-size chunks in a fixed order, so
//! results do not depend on the number of threads.

use super::linalg::{orthonormalize, sym_eigen};
use super::rng::Rng;
use rayon::prelude::*;

/// Rows used to fit the components; projecting all rows is cheap, fitting on all is not needed.
const MAX_FIT_ROWS: usize = 20_000;
/// Up to this input dimension the covariance matrix is formed and diagonalised exactly.
const EXACT_MAX_DIM: usize = 256;
const OVERSAMPLE: usize = 10;
const POWER_ITERS: usize = 4;
const ROW_CHUNK: usize = 512;

/// A fitted PCA: `components` holds `m` unit vectors of length `d` (row-major, by decreasing
/// variance).
pub(crate) struct Pca {
    pub d: usize,
    pub m: usize,
    pub mean: Vec<f32>,
    pub components: Vec<f32>,
}

impl Pca {
    /// Fit `m` components to the `n×d` rows of `data`.
    pub(crate) fn fit(data: &[f32], n: usize, d: usize, m: usize, seed: u64) -> Pca {
        assert!(n > 0 && data.len() == n * d);
        let m = m.min(d);
        // Evenly strided subsample: deterministic and covers ordered data (e.g. class-sorted).
        let rows: Vec<usize> = if n <= MAX_FIT_ROWS {
            (0..n).collect()
        } else {
            (0..MAX_FIT_ROWS).map(|i| i * n / MAX_FIT_ROWS).collect()
        };
        let s = rows.len();
        let mut mean = vec![0.0f64; d];
        for &r in &rows {
            for (m, x) in mean.iter_mut().zip(&data[r * d..(r + 1) * d]) {
                *m += *x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= s as f64);
        // Centred copy of the fit rows in f64 (≤ 20k × 1280 × 8 B = 200 MB worst case; the
        // randomized path touches it several times, so converting once pays off).
        let xc: Vec<f64> = rows
            .iter()
            .flat_map(|&r| {
                data[r * d..(r + 1) * d]
                    .iter()
                    .zip(&mean)
                    .map(|(x, m)| *x as f64 - m)
            })
            .collect();
        let comps = if d <= EXACT_MAX_DIM {
            exact_components(&xc, s, d, m)
        } else {
            randomized_components(&xc, s, d, m, seed)
        };
        Pca {
            d,
            m,
            mean: mean.iter().map(|&x| x as f32).collect(),
            components: comps.iter().flatten().map(|&x| x as f32).collect(),
        }
    }

    /// Project the `n×d` rows onto the components: `n×m`, row-major.
    pub(crate) fn transform(&self, data: &[f32], n: usize) -> Vec<f32> {
        let (d, m) = (self.d, self.m);
        let mut out = vec![0.0f32; n * m];
        out.par_chunks_mut(m)
            .zip(data.par_chunks(d))
            .for_each(|(o, x)| {
                for (c, oc) in o.iter_mut().enumerate() {
                    let comp = &self.components[c * d..(c + 1) * d];
                    let mut acc = 0.0f32;
                    for ((xi, mi), ci) in x.iter().zip(&self.mean).zip(comp) {
                        acc += (xi - mi) * ci;
                    }
                    *oc = acc;
                }
            });
        out
    }
}

fn exact_components(xc: &[f64], s: usize, d: usize, m: usize) -> Vec<Vec<f64>> {
    // Covariance (up to a constant factor) X^T X, accumulated per row chunk then summed in order.
    let partials: Vec<Vec<f64>> = xc
        .par_chunks(ROW_CHUNK * d)
        .map(|chunk| {
            let mut c = vec![0.0f64; d * d];
            for row in chunk.chunks_exact(d) {
                for i in 0..d {
                    let ri = row[i];
                    if ri == 0.0 {
                        continue;
                    }
                    let ci = &mut c[i * d..(i + 1) * d];
                    for (cij, rj) in ci[i..].iter_mut().zip(&row[i..]) {
                        *cij += ri * rj;
                    }
                }
            }
            c
        })
        .collect();
    let mut cov = vec![0.0f64; d * d];
    for p in &partials {
        cov.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    for i in 0..d {
        for j in 0..i {
            cov[i * d + j] = cov[j * d + i];
        }
    }
    let _ = s;
    let (_vals, vecs) = sym_eigen(&mut cov, d);
    (0..m).map(|c| vecs[c * d..(c + 1) * d].to_vec()).collect()
}

/// Z = Xᵀ Q for the column vectors `q` (each of length s): returns `l` vectors of length d.
fn xt_times(xc: &[f64], s: usize, d: usize, q: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let l = q.len();
    let n_chunks = s.div_ceil(ROW_CHUNK);
    let partials: Vec<Vec<f64>> = (0..n_chunks)
        .into_par_iter()
        .map(|ch| {
            let mut z = vec![0.0f64; l * d];
            for i in ch * ROW_CHUNK..((ch + 1) * ROW_CHUNK).min(s) {
                let row = &xc[i * d..(i + 1) * d];
                for c in 0..l {
                    let w = q[c][i];
                    for (zc, x) in z[c * d..(c + 1) * d].iter_mut().zip(row) {
                        *zc += w * x;
                    }
                }
            }
            z
        })
        .collect();
    let mut z = vec![vec![0.0f64; d]; l];
    for p in &partials {
        for c in 0..l {
            z[c].iter_mut()
                .zip(&p[c * d..(c + 1) * d])
                .for_each(|(a, b)| *a += b);
        }
    }
    z
}

/// Y = X Z for `l` vectors z of length d: returns `l` vectors of length s.
fn x_times(xc: &[f64], s: usize, d: usize, z: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let l = z.len();
    let rows: Vec<Vec<f64>> = (0..s)
        .into_par_iter()
        .map(|i| {
            let row = &xc[i * d..(i + 1) * d];
            z.iter().map(|zc| super::linalg::dot(row, zc)).collect()
        })
        .collect();
    (0..l)
        .map(|c| rows.iter().map(|r| r[c]).collect())
        .collect()
}

fn randomized_components(xc: &[f64], s: usize, d: usize, m: usize, seed: u64) -> Vec<Vec<f64>> {
    let l = (m + OVERSAMPLE).min(d).min(s.max(1));
    let mut rng = Rng::new(seed ^ 0x5ca1_ab1e);
    let omega: Vec<Vec<f64>> = (0..l)
        .map(|_| (0..d).map(|_| rng.normal()).collect())
        .collect();
    let mut q = x_times(xc, s, d, &omega);
    orthonormalize(&mut q);
    // Power iterations sharpen the spectrum so the leading subspace is found accurately even
    // when the singular values decay slowly (typical for activations).
    for _ in 0..POWER_ITERS {
        let mut z = xt_times(xc, s, d, &q);
        orthonormalize(&mut z);
        q = x_times(xc, s, d, &z);
        orthonormalize(&mut q);
    }
    // B = Qᵀ X = Zᵀ; right singular vectors of B are V = Z U Σ⁻¹ where Zᵀ Z = U Σ² Uᵀ.
    let z = xt_times(xc, s, d, &q);
    let mut g = vec![0.0f64; l * l];
    for i in 0..l {
        for j in 0..l {
            g[i * l + j] = super::linalg::dot(&z[i], &z[j]);
        }
    }
    let (vals, u) = sym_eigen(&mut g, l);
    (0..m)
        .map(|c| {
            let mut v = vec![0.0f64; d];
            if c < l && vals[c] > 0.0 {
                for (i, zi) in z.iter().enumerate() {
                    let w = u[c * l + i];
                    v.iter_mut().zip(zi).for_each(|(a, b)| *a += w * b);
                }
                let norm = super::linalg::dot(&v, &v).sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| *x /= norm);
                }
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data with a known dominant direction: both paths must find it.
    fn check(d: usize) {
        let n = 400;
        let mut rng = Rng::new(3);
        let dir: Vec<f32> = (0..d).map(|i| if i % 3 == 0 { 1.0 } else { 0.0 }).collect();
        let norm = dir.iter().map(|x| x * x).sum::<f32>().sqrt();
        let mut data = vec![0.0f32; n * d];
        for i in 0..n {
            let t = rng.normal() as f32 * 10.0;
            for j in 0..d {
                data[i * d + j] = 5.0 + t * dir[j] / norm + 0.1 * rng.normal() as f32;
            }
        }
        let pca = Pca::fit(&data, n, d, 4, 1);
        let c0 = &pca.components[..d];
        let cos: f32 = c0.iter().zip(&dir).map(|(a, b)| a * b).sum::<f32>() / norm;
        assert!(cos.abs() > 0.99, "d={d}: cos {cos}");
        let proj = pca.transform(&data, n);
        let var0: f32 = (0..n).map(|i| proj[i * 4].powi(2)).sum::<f32>() / n as f32;
        let var1: f32 = (0..n).map(|i| proj[i * 4 + 1].powi(2)).sum::<f32>() / n as f32;
        assert!(var0 > 50.0 && var1 < 0.1, "{var0} {var1}");
    }

    #[test]
    fn exact_path_finds_dominant_direction() {
        check(40);
    }

    #[test]
    fn randomized_path_finds_dominant_direction() {
        check(300);
    }
}
