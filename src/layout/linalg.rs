//! Small dense linear algebra written by hand (no BLAS / nalgebra in this project): a cyclic
//! Jacobi eigen-solver for the small symmetric matrices of PCA, and a vectorizable dot product.

/// Eigen-decomposition of a symmetric `n×n` matrix (row-major, overwritten).
/// Returns eigenvalues in descending order and the matching eigenvectors as rows
/// (`vecs[c*n..(c+1)*n]` is the c-th eigenvector). Cyclic Jacobi: O(n³) per sweep, robust and
/// accurate, fine for the n ≤ ~300 matrices used here.
pub(crate) fn sym_eigen(a: &mut [f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n);
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let mut off = 0.0;
        let mut diag = 0.0;
        for i in 0..n {
            diag += a[i * n + i] * a[i * n + i];
            for j in (i + 1)..n {
                off += a[i * n + j] * a[i * n + j];
            }
        }
        if off <= 1e-30 * diag.max(1e-300) || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in (p + 1)..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let app = a[p * n + p];
                let aqq = a[q * n + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // Rotate rows/columns p and q of A.
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let vals = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vecs = vec![0.0; n * n];
    for (c, &i) in order.iter().enumerate() {
        for k in 0..n {
            vecs[c * n + k] = v[k * n + i];
        }
    }
    (vals, vecs)
}

/// f32 dot product with 8 independent partial sums, so the compiler can vectorize it (a plain
/// iterator `sum` must keep the sequential order and stays scalar).
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// [`dot_f32`] compiled for AVX2 + FMA when the CPU has them (16 lanes, fused multiply-adds;
/// rounding differs from [`dot_f32`]).
#[inline]
pub(crate) fn dot_fast(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features this function is compiled for.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_f32(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Squared Euclidean distance, vectorizable like [`dot_f32`] (no cancellation for close points).
#[inline]
pub(crate) fn sqdist_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let t = x[i] - y[i];
            acc[i] += t * t;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    acc.iter().sum::<f32>() + tail
}

/// [`sqdist_f32`] compiled for AVX2 + FMA when the CPU has them (twice the lanes), for the
/// distance-bound NN-descent join. The feature check is a cached flag.
#[inline]
pub(crate) fn sqdist_fast(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features this function is compiled for.
            return unsafe { sqdist_avx2(a, b) };
        }
    }
    sqdist_f32(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sqdist_avx2(a: &[f32], b: &[f32]) -> f32 {
    sqdist_fma_body(a, b)
}

/// The body of [`sqdist_fast`]'s AVX2 path, to be inlined into other `avx2,fma` functions
/// (bit-identical results). Only call it from code compiled with the fma feature: elsewhere
/// `mul_add` is a libm call.
#[inline(always)]
pub(crate) fn sqdist_fma_body(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            let t = x[i] - y[i];
            acc[i] = t.mul_add(t, acc[i]);
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_reconstructs_symmetric_matrix() {
        let n = 6;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = ((i * 7 + j * 3) % 5) as f64 + ((j * 7 + i * 3) % 5) as f64;
            }
        }
        let orig = a.clone();
        let (vals, vecs) = sym_eigen(&mut a, n);
        for w in vals.windows(2) {
            assert!(w[0] >= w[1]);
        }
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n)
                    .map(|c| vals[c] * vecs[c * n + i] * vecs[c * n + j])
                    .sum();
                assert!((r - orig[i * n + j]).abs() < 1e-9, "{i},{j}");
            }
        }
    }
}
