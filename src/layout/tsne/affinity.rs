//! Input-space affinities of t-SNE, as scikit-learn's Barnes-Hut path computes them
//! (`_joint_probabilities_nn` + `_utils._binary_search_perplexity`): Gaussian conditional
//! probabilities over each point's k nearest neighbours on *squared* distances, the bandwidth
//! binary-searched to the perplexity, then `P = (P + Pᵀ) / ΣP`.

use rayon::prelude::*;

use crate::layout::knn::Knn;

/// Same constants as scikit-learn (`_utils.pyx`).
const PERPLEXITY_TOLERANCE: f64 = 1e-5;
const EPSILON_DBL: f64 = 1e-8;
const N_STEPS: usize = 100;

/// Symmetric sparse matrix, compressed rows (each row's columns ascending, no diagonal).
#[derive(Clone, Debug)]
pub(crate) struct Csr {
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub vals: Vec<f32>,
}

/// Conditional probabilities `p_{j|i}` of one row from its squared distances (sklearn's binary
/// search on β = 1/(2σ²), starting at 1, doubling/halving until bracketed, tolerance 1e-5 on
/// the entropy in nats).
pub(crate) fn conditional_row(sqd: &[f32], perplexity: f64, out: &mut [f64]) {
    let desired = perplexity.ln();
    let (mut beta, mut lo, mut hi) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    for _ in 0..N_STEPS {
        let mut sum = 0.0;
        for (o, &d) in out.iter_mut().zip(sqd) {
            *o = (-(d as f64) * beta).exp();
            sum += *o;
        }
        if sum == 0.0 {
            sum = EPSILON_DBL;
        }
        let mut sum_dp = 0.0;
        for (o, &d) in out.iter_mut().zip(sqd) {
            *o /= sum;
            sum_dp += d as f64 * *o;
        }
        let entropy = sum.ln() + beta * sum_dp;
        let diff = entropy - desired;
        if diff.abs() <= PERPLEXITY_TOLERANCE {
            break;
        }
        if diff > 0.0 {
            lo = beta;
            beta = if hi == f64::INFINITY {
                beta * 2.0
            } else {
                (beta + hi) / 2.0
            };
        } else {
            hi = beta;
            beta = if lo == f64::NEG_INFINITY {
                beta / 2.0
            } else {
                (beta + lo) / 2.0
            };
        }
    }
}

/// Joint probabilities from a kNN graph whose first column is the point itself (as
/// [`crate::layout::knn`]'s search returns it) and whose distances are the metric's (they are
/// squared here, as sklearn does for every metric).
pub(crate) fn joint_probabilities(knn: &Knn, perplexity: f64) -> Csr {
    let (n, k) = (knn.n, knn.k);
    let kk = k.saturating_sub(1);
    // Conditional rows, neighbours only (self dropped).
    let mut cond = vec![0f64; n * kk];
    if kk > 0 {
        cond.par_chunks_mut(kk).enumerate().for_each(|(i, out)| {
            let sqd: Vec<f32> = knn.dists[i * k + 1..(i + 1) * k]
                .iter()
                .map(|d| d * d)
                .collect();
            conditional_row(&sqd, perplexity, out);
        });
    }
    let col = |i: usize, t: usize| knn.indices[i * k + 1 + t] as usize;

    // Transpose by counting: row j of the transpose lists (i, p_{j|i}) by ascending i.
    let mut tptr = vec![0usize; n + 1];
    for i in 0..n {
        for t in 0..kk {
            let j = col(i, t);
            if j != i {
                tptr[j + 1] += 1;
            }
        }
    }
    for j in 0..n {
        tptr[j + 1] += tptr[j];
    }
    let mut fill = tptr.clone();
    let mut tidx = vec![0u32; tptr[n]];
    let mut tval = vec![0f64; tptr[n]];
    for i in 0..n {
        for t in 0..kk {
            let j = col(i, t);
            if j != i {
                tidx[fill[j]] = i as u32;
                tval[fill[j]] = cond[i * kk + t];
                fill[j] += 1;
            }
        }
    }

    // Row i of P + Pᵀ: merge the forward row (sorted by column) with the transposed row.
    let rows: Vec<Vec<(u32, f64)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut fwd: Vec<(u32, f64)> = (0..kk)
                .filter(|&t| col(i, t) != i)
                .map(|t| (col(i, t) as u32, cond[i * kk + t]))
                .collect();
            fwd.sort_unstable_by_key(|e| e.0);
            let bwd = tidx[tptr[i]..tptr[i + 1]]
                .iter()
                .copied()
                .zip(tval[tptr[i]..tptr[i + 1]].iter().copied());
            let mut out: Vec<(u32, f64)> = Vec::with_capacity(fwd.len() + tptr[i + 1] - tptr[i]);
            let mut a = fwd.into_iter().peekable();
            let mut b = bwd.peekable();
            loop {
                let next = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                    (Some(x), Some(y)) if x.0 > y.0 => b.next(),
                    (Some(_), Some(_)) => {
                        let (x, y) = (a.next().unwrap(), b.next().unwrap());
                        Some((x.0, x.1 + y.1))
                    }
                    (Some(_), None) => a.next(),
                    (None, Some(_)) => b.next(),
                    (None, None) => None,
                };
                match next {
                    Some(e) => match out.last_mut() {
                        // A neighbour listed twice (possible with duplicate rows) adds up.
                        Some(l) if l.0 == e.0 => l.1 += e.1,
                        _ => out.push(e),
                    },
                    None => break,
                }
            }
            out
        })
        .collect();

    let total: f64 = rows.iter().flat_map(|r| r.iter().map(|e| e.1)).sum();
    let total = total.max(f64::EPSILON);
    let nnz: usize = rows.iter().map(|r| r.len()).sum();
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(0);
    let mut indices = Vec::with_capacity(nnz);
    let mut vals = Vec::with_capacity(nnz);
    for r in rows {
        for (j, p) in r {
            indices.push(j);
            vals.push((p / total) as f32);
        }
        indptr.push(indices.len());
    }
    Csr {
        indptr,
        indices,
        vals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_search_reaches_the_perplexity() {
        let sqd: Vec<f32> = (0..150)
            .map(|i| 0.001 * (i as f32 + 1.0).powf(1.3))
            .collect();
        let mut p = vec![0f64; sqd.len()];
        for perp in [5.0, 30.0, 50.0] {
            conditional_row(&sqd, perp, &mut p);
            let h: f64 = -p
                .iter()
                .filter(|&&v| v > 0.0)
                .map(|v| v * v.ln())
                .sum::<f64>();
            assert!(
                (h.exp() - perp).abs() < 1e-2 * perp,
                "{} vs {perp}",
                h.exp()
            );
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            // Nearer neighbours get more mass.
            assert!(p.windows(2).all(|w| w[0] >= w[1]));
        }
    }

    #[test]
    fn joint_probabilities_match_a_dense_computation() {
        // Six points on a line, k = 4 (self + 3), Euclidean distances.
        let xs = [0.0f32, 1.0, 2.5, 4.0, 4.5, 7.0];
        let (n, k, perp) = (xs.len(), 4, 2.0);
        let mut indices = Vec::new();
        let mut dists = Vec::new();
        for i in 0..n {
            let mut o: Vec<(f32, u32)> =
                (0..n).map(|j| ((xs[i] - xs[j]).abs(), j as u32)).collect();
            o.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (d, j) in o.into_iter().take(k) {
                indices.push(j);
                dists.push(d);
            }
        }
        let knn = Knn {
            n,
            k,
            indices,
            dists,
        };
        let p = joint_probabilities(&knn, perp);
        let dense = |i: usize, j: usize| {
            (p.indptr[i]..p.indptr[i + 1])
                .find(|&t| p.indices[t] as usize == j)
                .map_or(0.0, |t| p.vals[t] as f64)
        };
        // Reference: P_ij = (p_{j|i} + p_{i|j}) / 2n (each conditional row sums to 1).
        let mut cond = vec![vec![0f64; n]; n];
        for (i, row) in cond.iter_mut().enumerate() {
            let sqd: Vec<f32> = knn.dists[i * k + 1..(i + 1) * k]
                .iter()
                .map(|d| d * d)
                .collect();
            let mut c = vec![0f64; k - 1];
            conditional_row(&sqd, perp, &mut c);
            for (&j, v) in knn.indices[i * k + 1..(i + 1) * k].iter().zip(c) {
                row[j as usize] = v;
            }
        }
        for (i, ci) in cond.iter().enumerate() {
            for (j, cj) in cond.iter().enumerate() {
                let want = (ci[j] + cj[i]) / (2 * n) as f64;
                assert!((dense(i, j) - want).abs() < 1e-6, "P[{i},{j}]");
            }
            let row = &p.indices[p.indptr[i]..p.indptr[i + 1]];
            assert!(row.windows(2).all(|w| w[0] < w[1]), "row {i} not sorted");
        }
        assert!((p.vals.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
