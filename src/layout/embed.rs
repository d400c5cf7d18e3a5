//! Embedding: umap-learn's curve parameters (a, b), the initialisation and the SGD layout loop
//! (`optimize_layout_euclidean`), reproduced step by step.

use super::fuzzy::Graph;
use super::rng::Rng;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// umap-learn `find_ab_params(spread, min_dist)`: least-squares fit of `1/(1 + a·x^(2b))` to
/// the curve that is 1 below `min_dist` and `exp(−(x − min_dist)/spread)` above, on 300 points
/// of `linspace(0, 3·spread)`. scipy's `curve_fit` (Levenberg–Marquardt from (1, 1)) is
/// reproduced with an analytic-Jacobian Levenberg–Marquardt; both reach the same least-squares
/// optimum (min_dist 0.1 → a = 1.5769, b = 0.8951).
pub fn find_ab_params(spread: f32, min_dist: f32) -> (f32, f32) {
    let (spread, min_dist) = (spread as f64, min_dist as f64);
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let cost = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let r = 1.0 / (1.0 + a * x.powf(2.0 * b)) - y;
                r * r
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let mut c = cost(a, b);
    let mut lambda = 1e-3;
    for _ in 0..2000 {
        // J^T J and J^T r for the residuals r_i = f(x_i) − y_i.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            if x == 0.0 {
                continue; // f(0) = 1 whatever a, b: zero derivatives
            }
            let p = x.powf(2.0 * b);
            let den = 1.0 + a * p;
            let r = 1.0 / den - y;
            let da = -p / (den * den);
            let db = -a * p * 2.0 * x.ln() / (den * den);
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let mut improved = false;
        while lambda < 1e12 {
            let (m11, m22) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
            let det = m11 * m22 - jab * jab;
            if det.abs() < 1e-300 {
                lambda *= 10.0;
                continue;
            }
            let sa = -(m22 * ga - jab * gb) / det;
            let sb = -(m11 * gb - jab * ga) / det;
            let (na, nb) = (a + sa, b + sb);
            let nc = cost(na, nb);
            if nc.is_finite() && nc <= c {
                let rel = (c - nc) / c.max(1e-300);
                a = na;
                b = nb;
                c = nc;
                lambda = (lambda / 10.0).max(1e-12);
                improved = rel > 1e-15 || sa.abs() + sb.abs() > 1e-13;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    (a as f32, b as f32)
}

/// umap-learn's default number of epochs.
pub fn default_n_epochs(n: usize) -> usize {
    if n <= 10_000 {
        500
    } else {
        200
    }
}

/// Initial layout from 2-D coordinates (`coords`, e.g. the first two principal components):
/// umap-learn's `init="pca"` path — scale so the largest |coordinate| is 10, add N(0, 1e-4)
/// noise, then min–max scale each axis to [0, 10] as `simplicial_set_embedding` does for every
/// initialisation. Falls back to uniform random in [−10, 10] (umap-learn's `init="random"`) when
/// the coordinates are degenerate.
pub fn init_from_coords(coords: &[[f32; 2]], seed: u64) -> Vec<[f32; 2]> {
    let mut rng = Rng::new(seed ^ 0x1417);
    let maxabs = coords
        .iter()
        .flat_map(|p| p.iter())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let mut e: Vec<[f32; 2]> = if maxabs > 0.0 && maxabs.is_finite() {
        let s = 10.0 / maxabs;
        coords
            .iter()
            .map(|p| {
                [
                    p[0] * s + (rng.normal() * 1e-4) as f32,
                    p[1] * s + (rng.normal() * 1e-4) as f32,
                ]
            })
            .collect()
    } else {
        coords
            .iter()
            .map(|_| {
                [
                    (rng.uniform() * 20.0 - 10.0) as f32,
                    (rng.uniform() * 20.0 - 10.0) as f32,
                ]
            })
            .collect()
    };
    for ax in 0..2 {
        let lo = e.iter().map(|p| p[ax]).fold(f32::INFINITY, f32::min);
        let hi = e.iter().map(|p| p[ax]).fold(f32::NEG_INFINITY, f32::max);
        let r = hi - lo;
        for p in e.iter_mut() {
            p[ax] = if r > 0.0 {
                10.0 * (p[ax] - lo) / r
            } else {
                5.0
            };
        }
    }
    e
}

/// Parameters of the SGD loop (umap-learn names).
#[derive(Clone, Debug)]
pub struct SgdParams {
    pub a: f32,
    pub b: f32,
    pub n_epochs: usize,
    pub learning_rate: f32,
    pub negative_sample_rate: usize,
    pub repulsion_strength: f32,
    pub seed: u64,
    /// Process the edge chunks one after another instead of in parallel (see [`optimize_layout`]).
    pub deterministic: bool,
}

/// Edges per work unit; each unit has its own random stream keyed by (seed, epoch, unit).
const CHUNK: usize = 4096;

/// `x^b` for x > 0 as `exp2(b·log2 x)` with short polynomials (relative error < 1e-5 while the
/// result is a normal f32; the f32 rounding of `b·log2 x` dominates for extreme x).
/// `powf` from libm dominated the SGD loop (one call per positive and per negative sample); the
/// approximation changes the layout far less than the sampling noise does. No libm calls at all
/// (`round`/`floor` are calls on baseline x86-64), only arithmetic and bit operations.
#[inline]
fn fast_pow(x: f32, b: f32) -> f32 {
    // log2 x = e + log2 m with m in [√½, √2): log2 m = 2/ln2 · atanh(t), t = (m−1)/(m+1),
    // |t| ≤ 0.172, so the series to t⁷ is accurate to ~3e-8.
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let atanh = t * (1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0))));
    let y = (b * (e as f32 + 2.0 * std::f32::consts::LOG2_E * atanh)).clamp(-126.0, 126.0);
    // exp2 y = 2^i · exp(f·ln2) with i = round(y) (via a truncating cast of a positive number)
    // and f in [−½, ½]; Taylor to f⁶ is accurate to ~1e-7.
    let i = (y + 128.5) as i32 - 128;
    let f = (y - i as f32) * std::f32::consts::LN_2;
    let p = 1.0
        + f * (1.0
            + f * (0.5 + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f / 720.0)))));
    f32::from_bits(((i + 127) as u32) << 23) * p
}

#[inline]
fn clip(v: f32) -> f32 {
    v.clamp(-4.0, 4.0)
}

#[derive(Clone, Copy)]
struct EdgeState {
    next: f64,
    next_neg: f64,
}

/// umap-learn's `optimize_layout_euclidean` (2-D, `move_other = True`, gradient clipping at 4,
/// learning rate decaying linearly to 0) on the fuzzy graph, in place.
///
/// Parallelism and determinism: edges are cut into fixed chunks of 4096, each with its own
/// random stream derived from (seed, epoch, chunk); chunks of one epoch run in parallel on the
/// rayon pool, updating the shared coordinates lock-free ("hogwild", as umap-learn does with
/// numba `prange`) through relaxed atomics. Hence: with `deterministic = true` (chunks in order on
/// one thread) or a one-thread rayon pool, a given seed gives bit-identical layouts; with more
/// threads the races between chunks make layouts differ slightly from run to run (not in quality).
/// Returns false when cancelled (the layout is then partial).
pub fn optimize_layout(
    embedding: &mut [[f32; 2]],
    graph: &Graph,
    p: &SgdParams,
    progress: &mut dyn FnMut(f32),
    cancel: &dyn Fn() -> bool,
) -> bool {
    let n = embedding.len();
    let n_epochs = p.n_epochs.max(1);
    let wmax = graph.weight.iter().copied().fold(0.0f32, f32::max);
    if n == 0 || wmax <= 0.0 {
        return true;
    }
    // umap-learn drops edges too weak to be sampled even once: w < max / n_epochs.
    let keep: Vec<usize> = (0..graph.weight.len())
        .filter(|&e| graph.weight[e] >= wmax / n_epochs as f32)
        .collect();
    let head: Vec<u32> = keep.iter().map(|&e| graph.head[e]).collect();
    let tail: Vec<u32> = keep.iter().map(|&e| graph.tail[e]).collect();
    // make_epochs_per_sample: n_samples = n_epochs · w / wmax; epochs_per_sample = n_epochs / n_samples.
    let eps: Vec<f64> = keep
        .iter()
        .map(|&e| {
            let ns = n_epochs as f64 * (graph.weight[e] as f64 / wmax as f64);
            n_epochs as f64 / ns
        })
        .collect();
    let nsr = p.negative_sample_rate.max(1) as f64;
    let eps_neg: Vec<f64> = eps.iter().map(|e| e / nsr).collect();
    let mut state: Vec<EdgeState> = eps
        .iter()
        .zip(&eps_neg)
        .map(|(&a, &b)| EdgeState {
            next: a,
            next_neg: b,
        })
        .collect();
    let pos: Vec<AtomicU32> = embedding
        .iter()
        .flat_map(|q| {
            [
                AtomicU32::new(q[0].to_bits()),
                AtomicU32::new(q[1].to_bits()),
            ]
        })
        .collect();
    let (a, b) = (p.a, p.b);
    let gamma = p.repulsion_strength;
    let load = |i: usize| {
        [
            f32::from_bits(pos[2 * i].load(Relaxed)),
            f32::from_bits(pos[2 * i + 1].load(Relaxed)),
        ]
    };
    let store = |i: usize, v: [f32; 2]| {
        pos[2 * i].store(v[0].to_bits(), Relaxed);
        pos[2 * i + 1].store(v[1].to_bits(), Relaxed);
    };
    let mut completed = true;
    for epoch in 0..n_epochs {
        if cancel() {
            completed = false;
            break;
        }
        let alpha = p.learning_rate * (1.0 - epoch as f32 / n_epochs as f32);
        let ep = epoch as f64;
        let run_chunk = |(ci, st): (usize, &mut [EdgeState])| {
            let mut rng = Rng::derived(p.seed, epoch as u64, ci as u64);
            for (t, s) in st.iter_mut().enumerate() {
                if s.next > ep {
                    continue;
                }
                let e = ci * CHUNK + t;
                let (j, k) = (head[e] as usize, tail[e] as usize);
                let mut cur = load(j);
                let mut oth = load(k);
                let (dx, dy) = (cur[0] - oth[0], cur[1] - oth[1]);
                let d2 = dx * dx + dy * dy;
                let gc = if d2 > 0.0 {
                    let pb = fast_pow(d2, b);
                    -2.0 * a * b * (pb / d2) / (a * pb + 1.0)
                } else {
                    0.0
                };
                let (gx, gy) = (clip(gc * dx), clip(gc * dy));
                cur[0] += gx * alpha;
                cur[1] += gy * alpha;
                oth[0] -= gx * alpha;
                oth[1] -= gy * alpha;
                store(k, oth);
                s.next += eps[e];
                // `as usize` floors a non-negative value and saturates a negative one to 0
                // (`floor` would be a libm call on baseline x86-64).
                let n_neg = ((ep - s.next_neg) / eps_neg[e]) as usize;
                // The repulsive gradients of this edge's negative samples are all taken at the
                // same position of `cur` and then summed, where umap-learn applies them one by
                // one. Each is still clipped at 4 and the step is tiny, so the difference is
                // second order; it removes a ~100-cycle dependency chain per sample and lets the
                // samples' arithmetic overlap.
                let (mut sx, mut sy) = (0.0f32, 0.0f32);
                for _ in 0..n_neg {
                    let kk = rng.below(n);
                    let o = load(kk);
                    let (dx, dy) = (cur[0] - o[0], cur[1] - o[1]);
                    let d2 = dx * dx + dy * dy;
                    // d2 == 0 (the point itself or a coincident one): no force, as in umap-learn.
                    if d2 > 0.0 {
                        let gc = 2.0 * gamma * b / ((0.001 + d2) * (a * fast_pow(d2, b) + 1.0));
                        sx += clip(gc * dx);
                        sy += clip(gc * dy);
                    }
                }
                cur[0] += sx * alpha;
                cur[1] += sy * alpha;
                store(j, cur);
                s.next_neg += n_neg as f64 * eps_neg[e];
            }
        };
        if p.deterministic {
            state.chunks_mut(CHUNK).enumerate().for_each(run_chunk);
        } else {
            state.par_chunks_mut(CHUNK).enumerate().for_each(run_chunk);
        }
        progress((epoch + 1) as f32 / n_epochs as f32);
    }
    for (i, q) in embedding.iter_mut().enumerate() {
        *q = load(i);
    }
    completed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ab_params_match_umap_learn() {
        // (min_dist, a, b) printed by umap-learn 0.5.12 `find_ab_params(1.0, min_dist)`.
        let want = [
            (0.1, 1.57694346046584, 0.8950608779639974),
            (0.05, 1.7502249630984574, 0.8420553922927806),
            (0.02, 1.8587366641087908, 0.8108764414905975),
            (0.01, 1.8956058659984905, 0.8006378442240341),
            (0.5, 0.5830300203968329, 1.3341669926352966),
        ];
        for (md, wa, wb) in want {
            let (a, b) = find_ab_params(1.0, md as f32);
            assert!(
                (a as f64 - wa).abs() < 1e-3 * wa,
                "min_dist {md}: a {a} vs {wa}"
            );
            assert!(
                (b as f64 - wb).abs() < 1e-3 * wb,
                "min_dist {md}: b {b} vs {wb}"
            );
        }
    }

    #[test]
    fn fast_pow_is_accurate() {
        // Over the range of squared distances the SGD sees (results stay normal f32; below
        // 2^-126 the result is clamped, which only matters for coincident points).
        let mut x = 1e-20f32;
        while x < 1e20 {
            for b in [0.8f32, 0.895_061, 1.0, 1.334_167] {
                let (got, want) = (fast_pow(x, b), (x as f64).powf(b as f64));
                assert!(
                    ((got as f64 - want) / want).abs() < 1e-5,
                    "{x}^{b}: {got} vs {want}"
                );
            }
            x *= 1.37;
        }
    }

    #[test]
    fn init_spans_zero_to_ten() {
        let coords: Vec<[f32; 2]> = (0..50).map(|i| [i as f32, (i * i) as f32]).collect();
        let e = init_from_coords(&coords, 0);
        for ax in 0..2 {
            let lo = e.iter().map(|p| p[ax]).fold(f32::INFINITY, f32::min);
            let hi = e.iter().map(|p| p[ax]).fold(f32::NEG_INFINITY, f32::max);
            assert!(lo.abs() < 1e-5 && (hi - 10.0).abs() < 1e-4);
        }
    }
}
