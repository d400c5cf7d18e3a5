//! Embedding: umap-learn's curve parameters (a, b), the initialization and the SGD layout loop
//! (`optimize_layout_euclidean`), reproduced step by step.

use super::fuzzy::Graph;
use super::rng::Rng;
use rayon::prelude::*;

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
/// initialization. Falls back to uniform random in [−10, 10] (umap-learn's `init="random"`) when
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
}

/// Vertices per work unit. Each unit owns its vertices' coordinates and their outgoing edges,
/// and has its own random stream keyed by (seed, epoch, unit), so the result does not depend on
/// the number of threads or on scheduling.
const VBLOCK: usize = 512;
/// Vectors of 8 lanes advanced side by side: each is one dependency chain, and a step of a chain
/// (a pow, a division) takes several times longer than the CPU needs to issue it.
const GROUPS: usize = 2;
/// Independent sample streams: a block's vertices are dealt out to this many lanes, each lane
/// applies its vertices' samples one after the other, one step evaluates one sample per lane.
const LANES: usize = 8 * GROUPS;
/// How many steps ahead the lanes prefetch the other endpoints (random reads from the whole
/// layout, 0.8 MB at 100k points: more than L2).
const PREFETCH: usize = 8;
/// [`Scratch::meta`]: local vertex (bits 0..16; `VBLOCK` is the padding slot), kind (no force:
/// a negative sample that drew the vertex itself or lane padding; negative; positive), and in
/// the interleaved lists the flag of a lane's first sample of a vertex.
const SLOT: u32 = 0xffff;
const KIND: u32 = 3 << 16;
const NONE: u32 = 0;
const NEG: u32 = 1 << 16;
const POS: u32 = 2 << 16;
const FIRST: u32 = 1 << 31;

/// log2(1 + u) = u·Σ LOG2_POLY[i]·uⁱ for u in [√½ − 1, √2 − 1] (least-squares Chebyshev fit,
/// absolute error < 3e-7).
// Fitted coefficients that happen to be close to log2(e) and ln 2, not those constants.
#[allow(clippy::approx_constant, clippy::excessive_precision)]
const LOG2_POLY: [f32; 8] = [
    1.442_695,
    -0.721_351_5,
    0.480_915_04,
    -0.360_308_74,
    0.287_395_08,
    -0.248_266_2,
    0.231_319_3,
    -0.144_371_64,
];
/// 2^f = Σ EXP2_POLY[i]·fⁱ for f in [−½, ½] (relative error < 3e-7).
#[allow(clippy::approx_constant, clippy::excessive_precision)]
const EXP2_POLY: [f32; 6] = [
    1.000_000_1,
    0.693_147_2,
    0.240_222_12,
    0.055_503_41,
    0.009_670_768,
    0.001_339_528_5,
];

/// `x^b` for x > 0 as `exp2(b·log2 x)` with short polynomials (relative error < 1e-5 while the
/// result is a normal f32; the f32 rounding of `b·log2 x` dominates for extreme x). libm's
/// `powf` dominated the SGD loop. Scalar twin of the vector code in `simd::pow` (same steps).
#[inline(always)]
fn fast_pow(x: f32, b: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let u = m - 1.0;
    let mut q = LOG2_POLY[7];
    for c in LOG2_POLY[..7].iter().rev() {
        q = q * u + c;
    }
    let y = (b * (e as f32 + u * q)).clamp(-126.0, 126.0);
    // i = round(y) via a truncating cast of a positive number (no libm call).
    let i = (y + 128.5) as i32 - 128;
    let f = y - i as f32;
    let mut p = EXP2_POLY[5];
    for c in EXP2_POLY[..5].iter().rev() {
        p = p * f + c;
    }
    f32::from_bits(((i + 127) as u32) << 23) * p
}

/// The edges leaving the vertices `v0..v0 + start.len() - 1` and their sampling schedules.
struct Block {
    v0: usize,
    /// Edges of vertex `v0 + i` are `start[i]..start[i + 1]` in the vectors below.
    start: Vec<u32>,
    /// w / w_max = 1 / umap-learn's `epochs_per_sample`: an edge is sampled in epoch t ≥ 1 iff
    /// ⌊t·rate⌋ > ⌊(t − 1)·rate⌋, i.e. when umap-learn's `epoch_of_next_sample` (eps, 2·eps, ...)
    /// passes t. Read-only and 4 bytes: it is scanned for every edge every epoch.
    rate: Vec<f32>,
    tail: Vec<u32>,
    /// (`epoch_of_next_negative_sample`, `epochs_per_negative_sample`); only touched when the
    /// edge is sampled. f32 where umap-learn has f64: at a few hundred epochs f32 resolves
    /// ~10⁻⁵ epoch.
    neg: Vec<[f32; 2]>,
    /// `negative_sample_rate`.
    nsr: f32,
}

/// Per-worker buffers for one block's epoch.
#[derive(Default)]
struct Scratch {
    /// The edges due this epoch, vertex by vertex: the tail and the number of negative samples.
    due_tail: Vec<u32>,
    due_neg: Vec<u32>,
    /// Due edges of local vertex `i` are `due_start[i]..due_start[i + 1]`.
    due_start: Vec<u32>,
    /// Samples (positive and negative) of local vertex `i` are `vstart[i]..vstart[i + 1]` in
    /// the order they are applied.
    vstart: Vec<u32>,
    /// The samples dealt out to lanes: sample t of lane l at `t·LANES + l`, padded. The other
    /// endpoint (global index) and the meta word.
    iother: Vec<u32>,
    imeta: Vec<u32>,
    steps: usize,
    /// The block's coordinates (x, y interleaved) plus one padding slot.
    pos: Vec<f32>,
}

/// Constants of the gradient.
#[derive(Clone, Copy)]
struct Grad {
    a: f32,
    b: f32,
    gamma: f32,
    n: usize,
}

/// umap-learn's `optimize_layout_euclidean` (2-D, `move_other = True`, gradient clipping at 4,
/// learning rate decaying linearly to 0) on the fuzzy graph, in place, with the same edge
/// sampling schedule and the same gradients, organized so that it is parallel AND reproducible:
///
/// * Work is split by vertex blocks ([`VBLOCK`]); a block only ever writes its own vertices.
///   umap-learn's `move_other` moves the tail of an edge too; the graph is symmetric and an edge
///   and its mirror have the same weight, hence the same schedule, so umap-learn pulls each
///   endpoint twice per sampled pair. Here the block owning the head applies that pull twice
///   and the mirror edge's block does the same for the other endpoint.
/// * Within an epoch a block reads the other vertices from the snapshot taken at the start of
///   the epoch (its own vertices are live), so blocks never race: the layout for a seed is
///   bit-identical on any number of threads. umap-learn's parallel SGD ("hogwild" numba
///   `prange`) reads half-updated neighbours instead; the order differs, the forces do not.
/// * Each vertex's samples are applied one by one in umap-learn's order (a positive sample,
///   then its negative samples, then the next due edge), each at the vertex's updated
///   position. A block first lists its epoch's samples (drawing the negative samples), then
///   deals its vertices out to [`LANES`] lanes with about equal numbers of samples; one step
///   evaluates the next sample of every lane, 8 lanes to a vector. One vertex's updates are a
///   chain of dependent computations and random memory reads; running many independent chains
///   side by side is what makes this fast.
///
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
    let mut blocks = make_blocks(graph, n, n_epochs, wmax, p.negative_sample_rate);
    let g = Grad {
        a: p.a,
        b: p.b,
        gamma: p.repulsion_strength,
        n,
    };
    let mut cur: Vec<f32> = embedding.iter().flat_map(|q| [q[0], q[1]]).collect();
    let mut next = cur.clone();
    let mut completed = true;
    for epoch in 0..n_epochs {
        if cancel() {
            completed = false;
            break;
        }
        let alpha = p.learning_rate * (1.0 - epoch as f32 / n_epochs as f32);
        let snap = &cur;
        next.par_chunks_mut(2 * VBLOCK)
            .zip(blocks.par_iter_mut())
            .enumerate()
            .for_each_init(Scratch::default, |s, (bi, (out, blk))| {
                let mut rng = Rng::derived(p.seed, epoch as u64, bi as u64);
                due_edges(blk, s, epoch);
                deal_to_lanes(s, blk.v0, g.n, &mut rng);
                s.pos.clear();
                s.pos
                    .extend_from_slice(&snap[2 * blk.v0..2 * blk.v0 + out.len()]);
                s.pos.resize(2 * (VBLOCK + 1), 0.0);
                run_lanes(s, snap, g, alpha);
                out.copy_from_slice(&s.pos[..out.len()]);
            });
        std::mem::swap(&mut cur, &mut next);
        progress((epoch + 1) as f32 / n_epochs as f32);
    }
    for (i, q) in embedding.iter_mut().enumerate() {
        *q = [cur[2 * i], cur[2 * i + 1]];
    }
    completed
}

/// Cuts the graph (sorted by head) into vertex blocks, dropping as umap-learn does the edges too
/// weak to be sampled even once (w < max / n_epochs).
fn make_blocks(graph: &Graph, n: usize, n_epochs: usize, wmax: f32, nsr: usize) -> Vec<Block> {
    let nsr = nsr.max(1) as f64;
    let mut blocks: Vec<Block> = (0..n.div_ceil(VBLOCK))
        .map(|b| Block {
            v0: b * VBLOCK,
            start: vec![0],
            rate: Vec::new(),
            tail: Vec::new(),
            neg: Vec::new(),
            nsr: nsr as f32,
        })
        .collect();
    let mut e = 0;
    for v in 0..n {
        let blk = &mut blocks[v / VBLOCK];
        while e < graph.head.len() && graph.head[e] as usize == v {
            let w = graph.weight[e];
            if w >= wmax / n_epochs as f32 {
                // make_epochs_per_sample: n_samples = n_epochs · w / wmax; eps = n_epochs / n_samples.
                let eps = n_epochs as f64 / (n_epochs as f64 * (w as f64 / wmax as f64));
                blk.rate.push((1.0 / eps) as f32);
                blk.tail.push(graph.tail[e]);
                let eps_neg = (eps / nsr) as f32;
                blk.neg.push([eps_neg, eps_neg]);
            }
            e += 1;
        }
        blk.start.push(blk.tail.len() as u32);
    }
    for blk in &mut blocks {
        // Whole vectors for `scan_due`; a rate of 0 is never due.
        blk.rate.resize(blk.rate.len().next_multiple_of(8), 0.0);
    }
    blocks
}

/// Finds the block's edges due in epoch `ep` (vertex by vertex) and their numbers of negative
/// samples, advancing the negative-sampling schedules.
fn due_edges(blk: &mut Block, s: &mut Scratch, ep: usize) {
    s.due_tail.clear();
    s.due_neg.clear();
    s.due_start.clear();
    s.due_start.push(0);
    s.vstart.clear();
    s.vstart.push(0);
    let nv = blk.start.len() - 1;
    if ep == 0 {
        // epoch_of_next_sample starts at epochs_per_sample ≥ 1: nothing is due in epoch 0.
        s.due_start.resize(nv + 1, 0);
        s.vstart.resize(nv + 1, 0);
        return;
    }
    let (t1, t0) = (ep as f32, (ep - 1) as f32);
    // The due edges, in edge order, without a branch per edge (a sixth of them are due,
    // unpredictably): edge e is due iff ⌊t·rate⌋ > ⌊(t − 1)·rate⌋.
    s.due_tail.resize(blk.rate.len(), 0);
    let nd = scan_due(&blk.rate, t1, t0, &mut s.due_tail);
    s.due_tail.truncate(nd);
    let mut k = 0;
    let mut samples = 0u32;
    for i in 0..nv {
        let e1 = blk.start[i + 1];
        while k < nd && s.due_tail[k] < e1 {
            let e = s.due_tail[k] as usize;
            let ng = &mut blk.neg[e];
            // ≥ 0 (the schedule never runs ahead of the epoch); the cast floors it.
            let n_neg = ((t1 - ng[0]) * (blk.nsr * blk.rate[e])).max(0.0) as u32;
            ng[0] += n_neg as f32 * ng[1];
            s.due_tail[k] = blk.tail[e];
            s.due_neg.push(n_neg);
            samples += 1 + n_neg;
            k += 1;
        }
        s.due_start.push(k as u32);
        s.vstart.push(samples);
    }
}

/// Writes the indices of the due edges (⌊t1·rate⌋ > ⌊t0·rate⌋) to `out` (as long as `rate`)
/// and returns their number. `rate.len()` is a multiple of 8.
fn scan_due(rate: &[f32], t1: f32, t0: f32, out: &mut [u32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { simd::scan_due(rate, t1, t0, out) };
        }
    }
    let mut nd = 0;
    for (e, &r) in rate.iter().enumerate() {
        out[nd] = e as u32;
        // Both products are ≥ 0, so the casts floor them.
        nd += ((t1 * r) as i32 > (t0 * r) as i32) as usize;
    }
    nd
}

/// Deals the block's vertices out to the lanes (contiguous runs of vertices with about equal
/// numbers of samples) and writes the lane-interleaved sample lists: per due edge the positive
/// sample, then its negative samples (uniform vertices drawn from `rng`; drawing the vertex
/// itself exerts no force), in umap-learn's order. Short lanes are padded with no-force samples
/// on the padding slot; each lane's first sample of a vertex (and its first padding) is flagged.
fn deal_to_lanes(s: &mut Scratch, v0: usize, n: usize, rng: &mut Rng) {
    let nv = s.vstart.len() - 1;
    let total = s.vstart[nv] as usize;
    let mut vlo = [0usize; LANES];
    let mut vhi = [0usize; LANES];
    let mut v = 0;
    for l in 0..LANES {
        vlo[l] = v;
        let cut = total * (l + 1) / LANES;
        while v < nv && (s.vstart[v] as usize) < cut {
            v += 1;
        }
        vhi[l] = v;
    }
    let steps = (0..LANES)
        .map(|l| (s.vstart[vhi[l]] - s.vstart[vlo[l]]) as usize)
        .max()
        .unwrap_or(0);
    s.steps = steps;
    s.iother.clear();
    s.iother.resize(steps * LANES, 0);
    s.imeta.clear();
    s.imeta.resize(steps * LANES, VBLOCK as u32 | NONE);
    let (io, im) = (&mut s.iother, &mut s.imeta);
    for l in 0..LANES {
        let mut at = l;
        for i in vlo[l]..vhi[l] {
            let j = (v0 + i) as u32;
            let mut first = FIRST;
            for k in s.due_start[i] as usize..s.due_start[i + 1] as usize {
                io[at] = s.due_tail[k];
                im[at] = i as u32 | POS | first;
                first = 0;
                at += LANES;
                let n_neg = s.due_neg[k] as usize;
                for _ in 0..n_neg / 2 {
                    // Two 32-bit draws per 64-bit output; multiply-shift maps each to 0..n.
                    let r = rng.next_u64();
                    for bits in [r & 0xffff_ffff, r >> 32] {
                        let kk = ((bits * n as u64) >> 32) as u32;
                        io[at] = kk;
                        im[at] = i as u32 | if kk == j { NONE } else { NEG };
                        at += LANES;
                    }
                }
                if n_neg % 2 == 1 {
                    let kk = (((rng.next_u64() >> 32) * n as u64) >> 32) as u32;
                    io[at] = kk;
                    im[at] = i as u32 | if kk == j { NONE } else { NEG };
                    at += LANES;
                }
            }
        }
        if at < steps * LANES {
            im[at] |= FIRST;
        }
    }
}

/// Applies the dealt samples to `s.pos`; an AVX2 + FMA version when the CPU has it.
fn run_lanes(s: &mut Scratch, snap: &[f32], g: Grad, alpha: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { simd::lanes(s, snap, g, alpha) };
            return;
        }
    }
    lanes_scalar(s, snap, g, alpha)
}

/// The gradient step of one sample on the vertex at (cx, cy) from the other endpoint (ox, oy):
/// positive −2ab·d^(2(b−1)) / (1 + a·d^2b), applied twice (see [`optimize_layout`]); negative
/// 2γb / ((0.001 + d²)(1 + a·d^2b)); each coordinate clipped at ±4, times the learning rate.
#[inline(always)]
fn step_scalar(cx: f32, cy: f32, ox: f32, oy: f32, kind: u32, g: Grad, alpha: f32) -> (f32, f32) {
    let (dx, dy) = (cx - ox, cy - oy);
    let d2 = dx * dx + dy * dy;
    if kind == NONE || d2 <= 0.0 {
        return (0.0, 0.0);
    }
    let pb = fast_pow(d2, g.b);
    let den = g.a * pb + 1.0;
    let (gc, scale) = if kind == POS {
        (-2.0 * g.a * g.b * pb / (d2 * den), 2.0 * alpha)
    } else {
        (2.0 * g.gamma * g.b / ((0.001 + d2) * den), alpha)
    };
    (
        (gc * dx).clamp(-4.0, 4.0) * scale,
        (gc * dy).clamp(-4.0, 4.0) * scale,
    )
}

/// Portable version of [`simd::lanes`] (same order of updates; results differ from it in the
/// last bits: no fused multiply-adds).
fn lanes_scalar(s: &mut Scratch, snap: &[f32], g: Grad, alpha: f32) {
    for l in 0..LANES {
        for t in 0..s.steps {
            let m = s.imeta[t * LANES + l];
            let o = s.iother[t * LANES + l] as usize;
            let v = (m & SLOT) as usize;
            let (cx, cy) = (s.pos[2 * v], s.pos[2 * v + 1]);
            let (ux, uy) = step_scalar(cx, cy, snap[2 * o], snap[2 * o + 1], m & KIND, g, alpha);
            s.pos[2 * v] = cx + ux;
            s.pos[2 * v + 1] = cy + uy;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::*;
    use std::arch::x86_64::*;

    /// Broadcast constants.
    struct K {
        a: __m256,
        b: __m256,
        pos_num: __m256,
        neg_num: __m256,
        alpha: __m256,
        alpha2: __m256,
    }

    /// [`fast_pow`] on 8 lanes (x > 0).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn pow(x: __m256, b: __m256) -> __m256 {
        let bits = _mm256_castps_si256(x);
        let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127));
        let m = _mm256_castsi256_ps(_mm256_or_si256(
            _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
            _mm256_set1_epi32(0x3f80_0000),
        ));
        let big = _mm256_cmp_ps::<_CMP_GT_OQ>(m, _mm256_set1_ps(std::f32::consts::SQRT_2));
        let m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5)), big);
        let ef = _mm256_add_ps(
            _mm256_cvtepi32_ps(e),
            _mm256_and_ps(big, _mm256_set1_ps(1.0)),
        );
        let u = _mm256_sub_ps(m, _mm256_set1_ps(1.0));
        let mut q = _mm256_set1_ps(LOG2_POLY[7]);
        for c in LOG2_POLY[..7].iter().rev() {
            q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(*c));
        }
        let y = _mm256_mul_ps(b, _mm256_fmadd_ps(u, q, ef));
        let y = _mm256_min_ps(
            _mm256_max_ps(y, _mm256_set1_ps(-126.0)),
            _mm256_set1_ps(126.0),
        );
        let i = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
        let f = _mm256_sub_ps(y, i);
        let mut p = _mm256_set1_ps(EXP2_POLY[5]);
        for c in EXP2_POLY[..5].iter().rev() {
            p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(*c));
        }
        let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(i),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(_mm256_castsi256_ps(scale), p)
    }

    /// [`step_scalar`] on 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn step(
        cx: __m256,
        cy: __m256,
        ox: __m256,
        oy: __m256,
        meta: __m256i,
        k: &K,
    ) -> (__m256, __m256) {
        let dx = _mm256_sub_ps(cx, ox);
        let dy = _mm256_sub_ps(cy, oy);
        let d2 = _mm256_fmadd_ps(dx, dx, _mm256_mul_ps(dy, dy));
        let pb = pow(_mm256_max_ps(d2, _mm256_set1_ps(f32::MIN_POSITIVE)), k.b);
        let den = _mm256_fmadd_ps(k.a, pb, _mm256_set1_ps(1.0));
        let kind = _mm256_and_si256(meta, _mm256_set1_epi32(KIND as i32));
        let is_pos = _mm256_castsi256_ps(_mm256_cmpeq_epi32(kind, _mm256_set1_epi32(POS as i32)));
        let is_none = _mm256_castsi256_ps(_mm256_cmpeq_epi32(kind, _mm256_setzero_si256()));
        let num = _mm256_blendv_ps(k.neg_num, _mm256_mul_ps(k.pos_num, pb), is_pos);
        let dd = _mm256_blendv_ps(_mm256_add_ps(d2, _mm256_set1_ps(0.001)), d2, is_pos);
        let gc = _mm256_div_ps(num, _mm256_mul_ps(dd, den));
        let scale = _mm256_blendv_ps(k.alpha, k.alpha2, is_pos);
        let live = _mm256_andnot_ps(
            is_none,
            _mm256_cmp_ps::<_CMP_GT_OQ>(d2, _mm256_setzero_ps()),
        );
        let (lo, hi) = (_mm256_set1_ps(-4.0), _mm256_set1_ps(4.0));
        let clip = |v: __m256| _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        let ux = _mm256_and_ps(live, _mm256_mul_ps(clip(_mm256_mul_ps(gc, dx)), scale));
        let uy = _mm256_and_ps(live, _mm256_mul_ps(clip(_mm256_mul_ps(gc, dy)), scale));
        (ux, uy)
    }

    /// For each 8-bit mask, the lanes whose bit is set, first (the compaction table).
    static COMPACT: [[u32; 8]; 256] = {
        let mut t = [[0u32; 8]; 256];
        let mut m = 0;
        while m < 256 {
            let (mut k, mut l) = (0, 0);
            while l < 8 {
                if m & (1 << l) != 0 {
                    t[m][k] = l as u32;
                    k += 1;
                }
                l += 1;
            }
            m += 1;
        }
        t
    };

    /// [`super::scan_due`] 8 edges at a time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn scan_due(rate: &[f32], t1: f32, t0: f32, out: &mut [u32]) -> usize {
        assert!(rate.len().is_multiple_of(8) && out.len() >= rate.len());
        let (v1, v0) = (_mm256_set1_ps(t1), _mm256_set1_ps(t0));
        let mut nd = 0;
        let mut idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        for c in rate.chunks_exact(8) {
            // SAFETY: 8 values; `out` has room for 8 more at nd (nd ≤ the edges scanned so far).
            unsafe {
                let r = _mm256_loadu_ps(c.as_ptr());
                let a = _mm256_cvttps_epi32(_mm256_mul_ps(v1, r));
                let b = _mm256_cvttps_epi32(_mm256_mul_ps(v0, r));
                let m = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(a, b))) as usize;
                let perm = _mm256_loadu_si256(COMPACT[m].as_ptr() as *const __m256i);
                _mm256_storeu_si256(
                    out.as_mut_ptr().add(nd) as *mut __m256i,
                    _mm256_permutevar8x32_epi32(idx, perm),
                );
                nd += m.count_ones() as usize;
            }
            idx = _mm256_add_epi32(idx, _mm256_set1_epi32(8));
        }
        nd
    }

    /// Runs the lanes: each group of 8 keeps its lanes' current vertices in registers, loads a
    /// vertex from `s.pos` at its first sample and stores the previous one back.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn lanes(s: &mut Scratch, snap: &[f32], g: Grad, alpha: f32) {
        let k = K {
            a: _mm256_set1_ps(g.a),
            b: _mm256_set1_ps(g.b),
            pos_num: _mm256_set1_ps(-2.0 * g.a * g.b),
            neg_num: _mm256_set1_ps(2.0 * g.gamma * g.b),
            alpha: _mm256_set1_ps(alpha),
            alpha2: _mm256_set1_ps(2.0 * alpha),
        };
        let steps = s.steps;
        assert!(s.iother.len() >= steps * LANES && s.imeta.len() >= steps * LANES);
        assert!(s.pos.len() >= 2 * (VBLOCK + 1));
        assert!(snap.len() >= 2 * g.n);
        let (io, im) = (s.iother.as_ptr(), s.imeta.as_ptr());
        let pos = &mut s.pos;
        let sp = snap.as_ptr() as *const f64;
        let mut cx = [_mm256_setzero_ps(); GROUPS];
        let mut cy = [_mm256_setzero_ps(); GROUPS];
        let mut cur = [[VBLOCK as u32; 8]; GROUPS];
        for t in 0..steps {
            if t + PREFETCH < steps {
                for l in 0..LANES {
                    // SAFETY: in bounds (checked above); a prefetch has no other effect.
                    unsafe {
                        let o = *io.add((t + PREFETCH) * LANES + l) as usize;
                        _mm_prefetch::<_MM_HINT_T0>(sp.add(o) as *const i8);
                    }
                }
            }
            for gi in 0..GROUPS {
                let base = t * LANES + 8 * gi;
                // SAFETY: base + 8 ≤ steps·LANES (checked above).
                let (meta, oth) = unsafe {
                    (
                        _mm256_loadu_si256(im.add(base) as *const __m256i),
                        _mm256_loadu_si256(io.add(base) as *const __m256i),
                    )
                };
                let fm = _mm256_movemask_ps(_mm256_castsi256_ps(meta));
                if fm != 0 {
                    let (mut xs, mut ys, mut ms) = ([0f32; 8], [0f32; 8], [0u32; 8]);
                    // SAFETY: 8-lane arrays.
                    unsafe {
                        _mm256_storeu_ps(xs.as_mut_ptr(), cx[gi]);
                        _mm256_storeu_ps(ys.as_mut_ptr(), cy[gi]);
                        _mm256_storeu_si256(ms.as_mut_ptr() as *mut __m256i, meta);
                    }
                    let mut f = fm as u32;
                    while f != 0 {
                        let l = f.trailing_zeros() as usize;
                        let old = cur[gi][l] as usize;
                        pos[2 * old] = xs[l];
                        pos[2 * old + 1] = ys[l];
                        let new = (ms[l] & SLOT) as usize;
                        xs[l] = pos[2 * new];
                        ys[l] = pos[2 * new + 1];
                        cur[gi][l] = new as u32;
                        f &= f - 1;
                    }
                    // SAFETY: 8-lane arrays.
                    unsafe {
                        cx[gi] = _mm256_loadu_ps(xs.as_ptr());
                        cy[gi] = _mm256_loadu_ps(ys.as_ptr());
                    }
                }
                // Gather the other endpoints as (x, y) pairs: lanes 0–3 and 4–7.
                // SAFETY: every listed index is < n and snap holds 2n values.
                let (p0, p1) = unsafe {
                    (
                        _mm256_castpd_ps(_mm256_i32gather_pd::<8>(sp, _mm256_castsi256_si128(oth))),
                        _mm256_castpd_ps(_mm256_i32gather_pd::<8>(
                            sp,
                            _mm256_extracti128_si256::<1>(oth),
                        )),
                    )
                };
                // [x0 x1 x4 x5 | x2 x3 x6 x7] → lane order.
                let xs = _mm256_shuffle_ps::<0b10_00_10_00>(p0, p1);
                let ys = _mm256_shuffle_ps::<0b11_01_11_01>(p0, p1);
                let ox =
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(xs)));
                let oy =
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(ys)));
                let (ux, uy) = step(cx[gi], cy[gi], ox, oy, meta, &k);
                cx[gi] = _mm256_add_ps(cx[gi], ux);
                cy[gi] = _mm256_add_ps(cy[gi], uy);
            }
        }
        for gi in 0..GROUPS {
            let (mut xs, mut ys) = ([0f32; 8], [0f32; 8]);
            // SAFETY: 8-lane arrays.
            unsafe {
                _mm256_storeu_ps(xs.as_mut_ptr(), cx[gi]);
                _mm256_storeu_ps(ys.as_mut_ptr(), cy[gi]);
            }
            for l in 0..8 {
                let v = cur[gi][l] as usize;
                pos[2 * v] = xs[l];
                pos[2 * v + 1] = ys[l];
            }
        }
    }
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
