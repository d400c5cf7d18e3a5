//! PCA written by hand: exact (covariance + Jacobi) for small dimension, randomized range finder
//! with power iterations (Halko, Martinsson & Tropp 2011) for large dimension.
//!
//! Used twice by the layout: to reduce 512–1280-d activations to ~64 dims before the kNN search
//! (where the squared-distance matrix product dominates the cost), and for the PCA
//! initialization of the embedding. Every reduction sums fixed-size chunks in a fixed order, so
//! results do not depend on the number of threads.

use super::linalg::sym_eigen;
use super::rng::Rng;
use rayon::prelude::*;

/// Rows used to fit the components; projecting all rows is cheap, fitting on all is not needed
/// for a search-space reduction whose candidates are re-ranked exactly anyway.
const MAX_FIT_ROWS: usize = 10_000;
/// Up to this input dimension the covariance matrix is formed and diagonalized exactly.
const EXACT_MAX_DIM: usize = 256;
const OVERSAMPLE: usize = 10;
const POWER_ITERS: usize = 3;
const ROW_CHUNK: usize = 512;

/// A fitted PCA: `m` unit components of length `d`, by decreasing variance.
pub(crate) struct Pca {
    pub d: usize,
    pub m: usize,
    pub mean: Vec<f32>,
    /// Components transposed, `d×m` row-major: `comp_t[kk*m + c]` is entry kk of component c.
    pub comp_t: Vec<f32>,
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
        let mean32: Vec<f32> = mean.iter().map(|&x| x as f32).collect();
        let xc: Vec<f32> = rows
            .iter()
            .flat_map(|&r| {
                data[r * d..(r + 1) * d]
                    .iter()
                    .zip(&mean32)
                    .map(|(x, m)| x - m)
            })
            .collect();
        let comps = if d <= EXACT_MAX_DIM {
            exact_components(&xc, d, m)
        } else {
            randomized_components(&xc, s, d, m, seed)
        };
        let mut comp_t = vec![0.0f32; d * m];
        for (c, v) in comps.iter().enumerate() {
            for kk in 0..d {
                comp_t[kk * m + c] = v[kk] as f32;
            }
        }
        Pca {
            d,
            m,
            mean: mean32,
            comp_t,
        }
    }

    /// Project the `n×d` rows onto the components: `n×m`, row-major.
    pub(crate) fn transform(&self, data: &[f32], n: usize) -> Vec<f32> {
        let (d, m) = (self.d, self.m);
        let mut out = vec![0.0f32; n * m];
        out.par_chunks_mut(m)
            .zip(data[..n * d].par_chunks(d))
            .for_each(|(o, x)| {
                // axpy form (no reductions) so the compiler vectorizes it.
                for ((xi, mi), ct) in x.iter().zip(&self.mean).zip(self.comp_t.chunks_exact(m)) {
                    let v = xi - mi;
                    o.iter_mut().zip(ct).for_each(|(a, b)| *a += v * b);
                }
            });
        out
    }
}

fn exact_components(xc: &[f32], d: usize, m: usize) -> Vec<Vec<f64>> {
    // Covariance (up to a constant factor) Xᵀ X, accumulated per row chunk then summed in order.
    let partials: Vec<Vec<f64>> = xc
        .par_chunks(ROW_CHUNK * d)
        .map(|chunk| {
            let mut c = vec![0.0f64; d * d];
            for row in chunk.chunks_exact(d) {
                for i in 0..d {
                    let ri = row[i] as f64;
                    c[i * d + i..(i + 1) * d]
                        .iter_mut()
                        .zip(&row[i..])
                        .for_each(|(a, b)| *a += ri * *b as f64);
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
    let (_vals, vecs) = sym_eigen(&mut cov, d);
    (0..m).map(|c| vecs[c * d..(c + 1) * d].to_vec()).collect()
}

/// `Xᵀ Q` for row-major `q` (`s×l`): row-major `d×l`, summed per row chunk in a fixed order.
fn xt_times(xc: &[f32], s: usize, d: usize, q: &[f32], l: usize) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = (0..s.div_ceil(ROW_CHUNK))
        .into_par_iter()
        .map(|ch| {
            let mut z = vec![0.0f32; d * l];
            for i in ch * ROW_CHUNK..((ch + 1) * ROW_CHUNK).min(s) {
                let qi = &q[i * l..(i + 1) * l];
                for (zk, &x) in z.chunks_exact_mut(l).zip(&xc[i * d..(i + 1) * d]) {
                    zk.iter_mut().zip(qi).for_each(|(a, b)| *a += x * b);
                }
            }
            z
        })
        .collect();
    let mut z = vec![0.0f32; d * l];
    for p in &partials {
        z.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    z
}

/// `X Z` for row-major `z` (`d×l`): row-major `s×l`.
fn x_times(xc: &[f32], d: usize, z: &[f32], l: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; (xc.len() / d) * l];
    y.par_chunks_mut(l)
        .zip(xc.par_chunks(d))
        .for_each(|(yi, xi)| {
            for (zk, &x) in z.chunks_exact(l).zip(xi) {
                yi.iter_mut().zip(zk).for_each(|(a, b)| *a += x * b);
            }
        });
    y
}

/// Orthonormalize the columns of the row-major `r×l` matrix `a` in place through the
/// eigen-decomposition of its Gram matrix (`A ← A V Λ^(-1/2)`); columns whose eigenvalue is
/// negligible become zero. Used after every half power step, when the column scales differ by
/// at most one factor of the spectrum, so squaring the condition number is harmless.
fn orthonormalize_cols(a: &mut [f32], l: usize) {
    let mut g = vec![0.0f64; l * l];
    for row in a.chunks_exact(l) {
        for i in 0..l {
            let ri = row[i] as f64;
            g[i * l + i..(i + 1) * l]
                .iter_mut()
                .zip(&row[i..])
                .for_each(|(x, y)| *x += ri * *y as f64);
        }
    }
    for i in 0..l {
        for j in 0..i {
            g[i * l + j] = g[j * l + i];
        }
    }
    let (vals, vecs) = sym_eigen(&mut g, l);
    let top = vals.first().copied().unwrap_or(0.0).max(0.0);
    // T = V Λ^(-1/2), l×l row-major: T[i][c] = vecs[c][i] / sqrt(λ_c).
    let mut t = vec![0.0f32; l * l];
    for c in 0..l {
        if vals[c] > 1e-10 * top && vals[c] > 0.0 {
            let s = 1.0 / vals[c].sqrt();
            for i in 0..l {
                t[i * l + c] = (vecs[c * l + i] * s) as f32;
            }
        }
    }
    a.par_chunks_mut(l).for_each(|row| {
        let mut out = vec![0.0f32; l];
        for (ti, &x) in t.chunks_exact(l).zip(row.iter()) {
            out.iter_mut().zip(ti).for_each(|(o, b)| *o += x * b);
        }
        row.copy_from_slice(&out);
    });
}

fn randomized_components(xc: &[f32], s: usize, d: usize, m: usize, seed: u64) -> Vec<Vec<f64>> {
    let l = (m + OVERSAMPLE).min(d).min(s.max(1));
    let mut rng = Rng::new(seed ^ 0x5ca1_ab1e);
    let omega: Vec<f32> = (0..d * l).map(|_| rng.normal() as f32).collect();
    let mut q = x_times(xc, d, &omega, l);
    orthonormalize_cols(&mut q, l);
    // Power iterations sharpen the spectrum so the leading subspace is found accurately even
    // when the singular values decay slowly (typical for activations).
    for _ in 0..POWER_ITERS {
        let mut z = xt_times(xc, s, d, &q, l);
        orthonormalize_cols(&mut z, l);
        q = x_times(xc, d, &z, l);
        orthonormalize_cols(&mut q, l);
    }
    // B = Qᵀ X = Zᵀ with Z = Xᵀ Q; right singular vectors of B: V = Z U Σ⁻¹ where Zᵀ Z = U Σ² Uᵀ.
    let z = xt_times(xc, s, d, &q, l);
    let mut g = vec![0.0f64; l * l];
    for row in z.chunks_exact(l) {
        for i in 0..l {
            for j in 0..l {
                g[i * l + j] += row[i] as f64 * row[j] as f64;
            }
        }
    }
    let (vals, u) = sym_eigen(&mut g, l);
    (0..m)
        .map(|c| {
            let mut v = vec![0.0f64; d];
            if c < l && vals[c] > 0.0 {
                for (kk, row) in z.chunks_exact(l).enumerate() {
                    v[kk] = (0..l).map(|i| row[i] as f64 * u[c * l + i]).sum();
                }
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
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
        let c0: Vec<f32> = (0..d).map(|kk| pca.comp_t[kk * 4]).collect();
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
