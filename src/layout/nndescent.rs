//! Approximate k-nearest neighbours by NN-descent (Dong, Moses & Li 2011), seeded by
//! random-projection trees, as pynndescent (umap-learn's kNN) does. Used instead of the exact
//! search above [`super::knn::EXACT_MAX_ROWS`] rows, where the exact search's n² cost dominates
//! (1M rows: ~10¹³ multiply-adds).
//!
//! Everything runs in the search space (the PCA projection of the prepared rows); the caller
//! re-ranks the final lists with exact distances. Squared Euclidean distance in that space
//! orders neighbours as cosine does for L2-normalized rows.
//!
//! Determinism: every random choice comes from a hash of (seed, iteration, point), and updates
//! are applied in the order of an ordered parallel collect, in fixed batches, so the result is
//! the same for any number of threads. `ATLAS_NND_DEBUG=1` prints each stage's elapsed time and list changes to stderr.

use super::linalg::sqdist_f32 as sqdist_portable;
use super::linalg::sqdist_fast as sqdist_f32;
use rayon::prelude::*;

/// Neighbour lists: `n × k` indices (self excluded) and squared distances in the search space,
/// as a max-heap per row (the worst entry first), with a "new" flag per entry.
struct Heaps {
    k: usize,
    idx: Vec<u32>,
    dist: Vec<f32>,
    new: Vec<bool>,
}

/// Settings; the defaults follow pynndescent's choices for umap-learn.
#[derive(Clone, Debug)]
pub(crate) struct NnDescent {
    /// Candidates sampled per point per iteration (pynndescent: min(60, k); the join costs
    /// ~max_candidates² distances per point, so fewer candidates and an extra iteration or two
    /// are cheaper for the same recall).
    pub max_candidates: usize,
    pub max_iters: usize,
    /// Stop when fewer than `delta · n · k` list entries changed in an iteration.
    pub delta: f64,
    pub n_trees: usize,
    pub leaf_size: usize,
}

impl NnDescent {
    pub(crate) fn for_size(n: usize, k: usize) -> Self {
        NnDescent {
            max_candidates: k.min(30),
            max_iters: (n.max(2) as f64).log2().round().max(5.0) as usize,
            // pynndescent stops below 0.001 · n · k changes, but it samples every new entry
            // in each iteration (max_candidates ≥ k); with 30 candidates the entries left
            // unsampled stay "new" and make one more full-cost iteration that finds almost
            // nothing. Measured on the 100k × 512 bench (k = 59 candidates): iterations changed
            // 30 %, 2.4 %, then 0.002 % of the entries (129 of 5.9M) for ~25 % of the search
            // time; stopping at 2.4 % left the layout's trustworthiness and label agreement
            // unchanged (0.9832 / 1.0000 vs 0.9825 / 1.0000). The lists are re-ranked with
            // exact distances afterwards, so a few late swaps near the k-th rank do not matter.
            delta: 0.03,
            // pynndescent: 5 + round(n^0.25 / 2) trees, capped (each costs ~leaf_size/2 distances
            // per point; they are cheap next to one descent iteration).
            n_trees: (5 + ((n as f64).powf(0.25) / 2.0).round() as usize).min(8),
            leaf_size: k.max(10),
        }
    }
}

/// Points per batch of the local join: updates are collected for a batch and then applied,
/// which bounds the memory of pending updates and keeps later batches' thresholds fresh.
const BATCH: usize = 16_384;
/// Points per work unit of the local join (one update list each).
const GROUP: usize = 128;

/// Whether `j` is in `row`, without early exit so that it compiles to a few vector compares
/// (`slice::contains` tests one element per iteration; the list-update and candidate heaps
/// test ~30–60 entries per offered pair and this test dominated them).
#[inline]
fn contains(row: &[u32], j: u32) -> bool {
    let mut hit = 0u32;
    for c in row.chunks(8) {
        let mut h = 0u32;
        for &v in c {
            h |= (v == j) as u32;
        }
        hit |= h;
    }
    hit != 0
}

/// A 32-bit hash of (seed, a, b): the random source of every decision here.
#[inline]
fn hash(seed: u64, a: u64, b: u64) -> u32 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

impl Heaps {
    fn new(n: usize, k: usize) -> Self {
        Heaps {
            k,
            idx: vec![u32::MAX; n * k],
            dist: vec![f32::INFINITY; n * k],
            new: vec![true; n * k],
        }
    }

    /// Pushes `(d, j)` into row `i`'s heap (a slice triple) unless it is not better than the
    /// worst entry or already present. Returns whether the list changed.
    #[inline]
    fn push(idx: &mut [u32], dist: &mut [f32], new: &mut [bool], d: f32, j: u32) -> bool {
        if d >= dist[0] || contains(idx, j) {
            return false;
        }
        let k = idx.len();
        // Replace the root and sift down (max-heap on distance).
        let mut p = 0;
        loop {
            let l = 2 * p + 1;
            if l >= k {
                break;
            }
            let r = l + 1;
            let c = if r < k && dist[r] > dist[l] { r } else { l };
            if dist[c] <= d {
                break;
            }
            dist[p] = dist[c];
            idx[p] = idx[c];
            new[p] = new[c];
            p = c;
        }
        dist[p] = d;
        idx[p] = j;
        new[p] = true;
        true
    }

    /// Applies updates `(dest, d, src)` in the order given (deterministic: they come from an
    /// ordered parallel collect), rows in parallel. Returns the number of changed entries.
    fn apply(&mut self, chunks: &[Vec<(u32, f32, u32)>]) -> usize {
        const ROWS: usize = 1024;
        let k = self.k;
        let n = self.idx.len() / k;
        // Stable counting sort by block of destination rows keeps each row's order.
        let nb = n.div_ceil(ROWS);
        let mut start = vec![0usize; nb + 1];
        let updates = || chunks.iter().flatten();
        for u in updates() {
            start[u.0 as usize / ROWS + 1] += 1;
        }
        for b in 0..nb {
            start[b + 1] += start[b];
        }
        let mut fill = start.clone();
        let mut sorted = vec![(0u32, 0f32, 0u32); start[nb]];
        for &u in updates() {
            let b = u.0 as usize / ROWS;
            sorted[fill[b]] = u;
            fill[b] += 1;
        }
        let sorted = &sorted;
        let start = &start;
        self.idx
            .par_chunks_mut(ROWS * k)
            .zip(self.dist.par_chunks_mut(ROWS * k))
            .zip(self.new.par_chunks_mut(ROWS * k))
            .enumerate()
            .map(|(c, ((idx, dist), new))| {
                let r0 = c * ROWS;
                let mut changed = 0;
                for &(dest, d, src) in &sorted[start[c]..start[c + 1]] {
                    let o = (dest as usize - r0) * k;
                    changed += Self::push(
                        &mut idx[o..o + k],
                        &mut dist[o..o + k],
                        &mut new[o..o + k],
                        d,
                        src,
                    ) as usize;
                }
                changed
            })
            .sum()
    }
}

/// k nearest neighbours (self excluded) of each of the `n` rows of `x` (`n×m`, row-major) by
/// squared Euclidean distance: rows of `(index, squared distance)` sorted ascending, `n×k`.
/// Rows with fewer than k reachable neighbours (tiny n) are padded with `u32::MAX`.
/// `progress` gets the fraction of the maximum iterations done; returns `None` when `cancel`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn nn_descent(
    x: &[f32],
    n: usize,
    m: usize,
    k: usize,
    cfg: &NnDescent,
    seed: u64,
    progress: &mut dyn FnMut(f32),
    cancel: &dyn Fn() -> bool,
) -> Option<(Vec<u32>, Vec<f32>)> {
    let k = k.min(n.saturating_sub(1)).max(1);
    let row = |i: usize| &x[i * m..(i + 1) * m];
    let dist = |i: usize, j: usize| sqdist_f32(row(i), row(j));
    let mut heaps = Heaps::new(n, k);
    let debug = std::env::var_os("ATLAS_NND_DEBUG").is_some();
    let t0 = std::time::Instant::now();
    let lap = |what: &str| {
        if debug {
            eprintln!(
                "  nndescent {what}: {:.2} s (process CPU {:.1} s)",
                t0.elapsed().as_secs_f64(),
                super::process_cpu_secs()
            );
        }
    };

    // 1. Random-projection forest: every pair inside a leaf is a candidate.
    for t in 0..cfg.n_trees {
        if cancel() {
            return None;
        }
        let leaves = rp_tree(
            x,
            n,
            m,
            cfg.leaf_size,
            seed ^ hash(seed, 0x7ee, t as u64) as u64,
        );
        let thr = thresholds(&heaps);
        let cx = JoinCtx {
            x,
            m,
            lists: &heaps.idx,
            k,
            thr: &thr,
        };
        // One update list per fixed group of leaves (not per leaf, and not concatenated: the
        // lists are applied in order as they are).
        let ups: Vec<Vec<(u32, f32, u32)>> = leaves
            .par_chunks(64)
            .map_init(
                || (Vec::new(), Vec::new()),
                |scratch, group| {
                    let mut out = Vec::new();
                    for leaf in group {
                        local_join(cx, leaf, leaf.len(), scratch, &mut out);
                    }
                    out
                },
            )
            .collect();
        lap("tree join");
        heaps.apply(&ups);
        lap("tree apply");
    }
    // Rows still short of k (tiny leaves): fill with hashed random points so every row has a
    // full list to descend from.
    fill_random(&mut heaps, n, seed, &dist);

    // 2. NN-descent iterations: neighbours of neighbours (forward and reverse) are candidates.
    let mc = cfg.max_candidates.max(1);
    for it in 0..cfg.max_iters {
        if cancel() {
            return None;
        }
        let (newc, oldc) = candidates(&mut heaps, n, mc, seed, it as u64);
        lap("candidates");
        let (mut changed, mut n_updates) = (0usize, 0usize);
        for b0 in (0..n).step_by(BATCH) {
            let thr = thresholds(&heaps);
            let cx = JoinCtx {
                x,
                m,
                lists: &heaps.idx,
                k,
                thr: &thr,
            };
            // One update list per fixed group of points, applied in order (see above).
            let b1 = (b0 + BATCH).min(n);
            let ups: Vec<Vec<(u32, f32, u32)>> = (b0..b1)
                .step_by(GROUP)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map_init(
                    || (Vec::new(), (Vec::new(), Vec::new())),
                    |(ids, scratch), g0| {
                        let mut out = Vec::new();
                        for i in g0..(g0 + GROUP).min(b1) {
                            let nw = cand_row(&newc, i, mc);
                            let od = cand_row(&oldc, i, mc);
                            ids.clear();
                            ids.extend_from_slice(nw);
                            ids.extend_from_slice(od);
                            local_join(cx, ids, nw.len(), scratch, &mut out);
                        }
                        out
                    },
                )
                .collect();
            n_updates += ups.iter().map(|u| u.len()).sum::<usize>();
            changed += heaps.apply(&ups);
        }
        progress((it + 1) as f32 / cfg.max_iters as f32);
        lap(&format!(
            "iteration {it}: {changed} changes of {n_updates} proposed"
        ));
        if (changed as f64) < cfg.delta * (n * k) as f64 {
            break;
        }
    }
    progress(1.0);

    // 3. Sorted rows.
    let mut idx = heaps.idx;
    let mut dst = heaps.dist;
    idx.par_chunks_mut(k)
        .zip(dst.par_chunks_mut(k))
        .for_each(|(ir, dr)| {
            let mut v: Vec<(f32, u32)> = dr.iter().copied().zip(ir.iter().copied()).collect();
            v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (t, (d, j)) in v.into_iter().enumerate() {
                dr[t] = d;
                ir[t] = j;
            }
        });
    Some((idx, dst))
}

/// What the local join reads: the search-space rows `x` (`n×m`), the current lists
/// (`lists`, `n×k`, as at the start of the batch) and their worst distances `thr`.
#[derive(Clone, Copy)]
struct JoinCtx<'a> {
    x: &'a [f32],
    m: usize,
    lists: &'a [u32],
    k: usize,
    thr: &'a [f32],
}

/// pynndescent's local join of one candidate set: `ids` holds `nn` new candidates then the old
/// ones; every new–new pair and every new–old pair is compared, and `(dest, d, src)` is pushed
/// to `out` for each end whose current worst distance the pair beats and whose list does not
/// already hold the other end. Pairs are visited in a fixed order (new a, then new b > a,
/// then old), so `out` is deterministic.
///
/// The candidates' rows and lists are first gathered into `buf` / `lbuf` (≤ 2·max_candidates
/// of each, a few KB, in L1): each pair's distance then reads cached rows, where reading them
/// from `x` cost two random cache misses per pair (100k × 64 f32 rows do not fit in L2; the
/// join compares ~1,300 pairs per point). Dropping pairs already in the list here matters
/// because in clustered data most neighbours of neighbours are already neighbours: on the
/// 100k × 512 bench the second iteration proposed 68M updates for 141k changes (0.8 GB of
/// update lists to sort and apply) before this filter. The list can still change within the
/// batch before the update is applied, which [`Heaps::push`] checks again.
fn local_join(
    cx: JoinCtx,
    ids: &[u32],
    nn: usize,
    (buf, lbuf): &mut (Vec<f32>, Vec<u32>),
    out: &mut Vec<(u32, f32, u32)>,
) {
    let (m, k) = (cx.m, cx.k);
    buf.clear();
    lbuf.clear();
    for &p in ids {
        buf.extend_from_slice(&cx.x[p as usize * m..(p as usize + 1) * m]);
        lbuf.extend_from_slice(&cx.lists[p as usize * k..(p as usize + 1) * k]);
    }
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features this function is compiled for.
            unsafe { local_join_avx2(cx, ids, nn, buf, lbuf, out) };
            return;
        }
    }
    local_join_body::<false>(cx, ids, nn, buf, lbuf, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn local_join_avx2(
    cx: JoinCtx,
    ids: &[u32],
    nn: usize,
    buf: &[f32],
    lbuf: &[u32],
    out: &mut Vec<(u32, f32, u32)>,
) {
    local_join_body::<true>(cx, ids, nn, buf, lbuf, out)
}

/// Squared distance for [`local_join_body`] on AVX2 + FMA: 16 fused lanes like
/// [`super::linalg::sqdist_fast`], but summed pairwise (16 → 8 → 4 → 2 → 1, a few vector adds) instead
/// of lane by lane: the sequential 16-add chain was most of the latency of a 64-d distance.
#[inline(always)]
fn sqdist_fma_tree(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            let t = x[i] - y[i];
            acc[i] = t.mul_add(t, acc[i]);
        }
    }
    let mut w = 8;
    while w > 0 {
        for i in 0..w {
            acc[i] += acc[i + w];
        }
        w /= 2;
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    acc[0] + tail
}

/// `FMA`: the distance is [`sqdist_fma_tree`], otherwise the portable [`sqdist_portable`].
#[inline(always)]
fn local_join_body<const FMA: bool>(
    cx: JoinCtx,
    ids: &[u32],
    nn: usize,
    buf: &[f32],
    lbuf: &[u32],
    out: &mut Vec<(u32, f32, u32)>,
) {
    let (m, k, thr) = (cx.m, cx.k, cx.thr);
    let row = |a: usize| &buf[a * m..(a + 1) * m];
    let list = |a: usize| &lbuf[a * k..(a + 1) * k];
    for a in 0..nn {
        let p = ids[a];
        let ra = row(a);
        // `b` indexes the gathered row buffer as well as `ids`, so the index is the point.
        #[allow(clippy::needless_range_loop)]
        for b in a + 1..ids.len() {
            let q = ids[b];
            if p == q {
                continue;
            }
            let d = if FMA {
                sqdist_fma_tree(ra, row(b))
            } else {
                sqdist_portable(ra, row(b))
            };
            if d < thr[p as usize] && !contains(list(a), q) {
                out.push((p, d, q));
            }
            if d < thr[q as usize] && !contains(list(b), p) {
                out.push((q, d, p));
            }
        }
    }
}

/// The current worst distance of every row (the heap roots).
fn thresholds(h: &Heaps) -> Vec<f32> {
    h.dist.par_chunks(h.k).map(|r| r[0]).collect()
}

/// Fills unfilled slots with random points (distinct from the row itself).
fn fill_random(h: &mut Heaps, n: usize, seed: u64, dist: &(dyn Fn(usize, usize) -> f32 + Sync)) {
    let k = h.k;
    h.idx
        .par_chunks_mut(k)
        .zip(h.dist.par_chunks_mut(k))
        .zip(h.new.par_chunks_mut(k))
        .enumerate()
        .for_each(|(i, ((idx, d), new))| {
            let mut tries = 0u64;
            while idx.contains(&u32::MAX) && tries < 4 * k as u64 + 16 {
                let j = ((hash(seed, 0xf111 + tries, i as u64) as u64 * n as u64) >> 32) as usize;
                tries += 1;
                if j != i {
                    // Slots still empty have distance ∞, so any real distance goes in.
                    Heaps::push(idx, d, new, dist(i, j), j as u32);
                }
            }
        });
}

/// Candidate rows: `n × mc` indices, `u32::MAX` marking unused slots.
fn cand_row(c: &[u32], i: usize, mc: usize) -> &[u32] {
    let r = &c[i * mc..(i + 1) * mc];
    let len = r.iter().position(|&v| v == u32::MAX).unwrap_or(mc);
    &r[..len]
}

/// pynndescent's `new_build_candidates`: for each point, up to `mc` "new" and `mc` "old"
/// candidates from its list and from the lists it appears in (reverse neighbours), each pair
/// kept with a random priority so that the sample is uniform. New entries that were sampled
/// are then marked old.
fn candidates(h: &mut Heaps, n: usize, mc: usize, seed: u64, it: u64) -> (Vec<u32>, Vec<u32>) {
    let k = h.k;
    // Bounded max-heaps on priority: keep the mc smallest priorities.
    let mut newc = vec![u32::MAX; n * mc];
    let mut newp = vec![u32::MAX; n * mc];
    let mut oldc = vec![u32::MAX; n * mc];
    let mut oldp = vec![u32::MAX; n * mc];
    fn add(c: &mut [u32], p: &mut [u32], pr: u32, j: u32) {
        if pr >= p[0] || contains(c, j) {
            return;
        }
        let len = c.len();
        let mut a = 0;
        loop {
            let l = 2 * a + 1;
            if l >= len {
                break;
            }
            let r = l + 1;
            let ch = if r < len && p[r] > p[l] { r } else { l };
            if p[ch] <= pr {
                break;
            }
            p[a] = p[ch];
            c[a] = c[ch];
            a = ch;
        }
        p[a] = pr;
        c[a] = j;
    }
    // The reverse offers (row j gets i for every entry j of row i's list) are a random
    // scatter over all rows. They are first bucketed by block of destination rows, in the
    // scan order (i, then t), by a stable parallel counting sort over fixed chunks of source
    // rows; then each destination block (its heaps fit in L2) takes its own offers in that
    // order, with every row's forward offers slotted in where the scan would reach the row
    // itself. Each row thus sees exactly the sequence of offers of the sequential scan
    // (so the result is the same for any number of threads), without every thread scanning
    // every list nor a cache miss per offer.
    const ROWS: usize = 1024;
    const SRC: usize = 4096;
    let nb = n.div_ceil(ROWS);
    let (idx, new) = (&h.idx, &h.new);
    let prio = |i: usize, j: u32| {
        // Symmetric priority: the pair is sampled (or not) the same way from both ends.
        let (a, b) = ((i as u32).min(j) as u64, (i as u32).max(j) as u64);
        hash(seed, it, (a << 32) | b)
    };
    // Per source chunk: its offers (dest, src with the "new" flag in bit 31, priority) sorted
    // stably by destination block, and the block offsets.
    #[allow(clippy::type_complexity)]
    let chunks: Vec<(Vec<(u32, u32, u32)>, Vec<usize>)> = (0..n.div_ceil(SRC))
        .into_par_iter()
        .map(|c| {
            let rows = c * SRC..((c + 1) * SRC).min(n);
            let mut start = vec![0usize; nb + 1];
            for e in rows.start * k..rows.end * k {
                if idx[e] != u32::MAX {
                    start[idx[e] as usize / ROWS + 1] += 1;
                }
            }
            for b in 0..nb {
                start[b + 1] += start[b];
            }
            let mut fill = start.clone();
            let mut offers = vec![(0u32, 0u32, 0u32); start[nb]];
            for i in rows {
                for t in 0..k {
                    let j = idx[i * k + t];
                    if j == u32::MAX {
                        continue;
                    }
                    let b = j as usize / ROWS;
                    let flag = if new[i * k + t] { 1u32 << 31 } else { 0 };
                    offers[fill[b]] = (j, i as u32 | flag, prio(i, j));
                    fill[b] += 1;
                }
            }
            (offers, start)
        })
        .collect();
    let chunks = &chunks;
    newc.par_chunks_mut(ROWS * mc)
        .zip(newp.par_chunks_mut(ROWS * mc))
        .zip(
            oldc.par_chunks_mut(ROWS * mc)
                .zip(oldp.par_chunks_mut(ROWS * mc)),
        )
        .enumerate()
        .for_each(|(blk, ((nc, np), (oc, op)))| {
            let lo = blk * ROWS;
            let hi = lo + nc.len() / mc;
            let mut slot = |r: usize, j: u32, is_new: bool, pr: u32| {
                let o = (r - lo) * mc;
                if is_new {
                    add(&mut nc[o..o + mc], &mut np[o..o + mc], pr, j);
                } else {
                    add(&mut oc[o..o + mc], &mut op[o..o + mc], pr, j);
                }
            };
            let forward = |r: usize, slot: &mut dyn FnMut(usize, u32, bool, u32)| {
                for t in 0..k {
                    let j = idx[r * k + t];
                    if j != u32::MAX {
                        slot(r, j, new[r * k + t], prio(r, j));
                    }
                }
            };
            let mut next_fwd = lo;
            for (offers, start) in chunks {
                for &(j, src, pr) in &offers[start[blk]..start[blk + 1]] {
                    let i = (src & !(1 << 31)) as usize;
                    // Rows before the source have been reached by the scan: their own lists
                    // come first (a row never gets a reverse offer from itself).
                    while next_fwd < hi && next_fwd < i {
                        forward(next_fwd, &mut slot);
                        next_fwd += 1;
                    }
                    slot(j as usize, i as u32, src >> 31 == 1, pr);
                }
            }
            while next_fwd < hi {
                forward(next_fwd, &mut slot);
                next_fwd += 1;
            }
        });
    // Entries sampled as new candidates become old.
    h.idx
        .par_chunks(k)
        .zip(h.new.par_chunks_mut(k))
        .enumerate()
        .for_each(|(i, (idx, new))| {
            let row = &newc[i * mc..(i + 1) * mc];
            for (f, j) in new.iter_mut().zip(idx) {
                if *f && row.contains(j) {
                    *f = false;
                }
            }
        });
    // Compact: used slots first (cand_row stops at the first unused one).
    for c in [&mut newc, &mut oldc] {
        c.par_chunks_mut(mc).for_each(|r| {
            r.sort_unstable();
        });
    }
    (newc, oldc)
}

/// Leaves (index lists of at most `leaf_size`, a few more for degenerate splits) of one
/// random-projection tree: each node splits its points by the hyperplane equidistant from two
/// of them chosen at random (pynndescent's Euclidean split).
fn rp_tree(x: &[f32], n: usize, m: usize, leaf_size: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut leaves = Vec::new();
    split(
        x,
        m,
        (0..n as u32).collect(),
        leaf_size.max(2),
        seed,
        1,
        &mut leaves,
    );
    leaves
}

fn split(
    x: &[f32],
    m: usize,
    pts: Vec<u32>,
    leaf_size: usize,
    seed: u64,
    node: u64,
    leaves: &mut Vec<Vec<u32>>,
) {
    if pts.len() <= leaf_size || node >= 1 << 40 {
        leaves.push(pts);
        return;
    }
    let row = |i: u32| &x[i as usize * m..(i as usize + 1) * m];
    let len = pts.len() as u64;
    let a = pts[((hash(seed, node, 1) as u64 * len) >> 32) as usize];
    let mut b = pts[((hash(seed, node, 2) as u64 * len) >> 32) as usize];
    if a == b {
        b = pts[(pts.iter().position(|&p| p == a).unwrap() + 1) % pts.len()];
    }
    let (ra, rb) = (row(a), row(b));
    let normal: Vec<f32> = ra.iter().zip(rb).map(|(p, q)| p - q).collect();
    let offset: f32 = ra.iter().zip(rb).map(|(p, q)| (p * p - q * q) * 0.5).sum();
    let side = |i: u32| {
        let r = row(i);
        let mut s = 0.0f32;
        for (v, w) in r.iter().zip(&normal) {
            s += v * w;
        }
        s - offset
    };
    let sides: Vec<f32> = if pts.len() > 4096 {
        pts.par_iter().map(|&i| side(i)).collect()
    } else {
        pts.iter().map(|&i| side(i)).collect()
    };
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for (t, (&p, &s)) in pts.iter().zip(&sides).enumerate() {
        // Points on the hyperplane (duplicates) go to a side by a hash, so splits make progress.
        let go_left = if s == 0.0 {
            hash(seed, node, 3 + t as u64) & 1 == 0
        } else {
            s < 0.0
        };
        if go_left {
            left.push(p);
        } else {
            right.push(p);
        }
    }
    if left.is_empty() || right.is_empty() {
        // Degenerate (identical points): split in halves.
        let mut all = if left.is_empty() { right } else { left };
        right = all.split_off(all.len() / 2);
        left = all;
    }
    drop(sides);
    if left.len() + right.len() > 4 * 4096 {
        let (mut l1, mut l2) = (Vec::new(), Vec::new());
        rayon::join(
            || split(x, m, left, leaf_size, seed, 2 * node, &mut l1),
            || split(x, m, right, leaf_size, seed, 2 * node + 1, &mut l2),
        );
        leaves.append(&mut l1);
        leaves.append(&mut l2);
    } else {
        split(x, m, left, leaf_size, seed, 2 * node, leaves);
        split(x, m, right, leaf_size, seed, 2 * node + 1, leaves);
    }
}

#[cfg(test)]
mod tests {
    use super::super::rng::Rng;
    use super::*;

    /// Clustered data with some spread, like activations.
    fn data(n: usize, m: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let centres: Vec<f32> = (0..20 * m).map(|_| rng.normal() as f32).collect();
        (0..n)
            .flat_map(|i| {
                let c = i % 20;
                (0..m)
                    .map(|j| centres[c * m + j] + 0.6 * rng.normal() as f32)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn exact(x: &[f32], n: usize, m: usize, k: usize) -> Vec<Vec<u32>> {
        (0..n)
            .into_par_iter()
            .map(|i| {
                let mut v: Vec<(f32, u32)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| {
                        (
                            sqdist_f32(&x[i * m..(i + 1) * m], &x[j * m..(j + 1) * m]),
                            j as u32,
                        )
                    })
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v.truncate(k);
                v.into_iter().map(|p| p.1).collect()
            })
            .collect()
    }

    #[test]
    fn recall_against_exact_search() {
        for (n, m, k) in [(3000, 24, 15), (2000, 10, 30)] {
            let x = data(n, m, 3);
            let cfg = NnDescent::for_size(n, k);
            let (idx, d) = nn_descent(&x, n, m, k, &cfg, 1, &mut |_| {}, &|| false).unwrap();
            let want = exact(&x, n, m, k);
            let mut hits = 0;
            for i in 0..n {
                let row = &idx[i * k..(i + 1) * k];
                assert!(!row.contains(&(i as u32)));
                assert!(d[i * k..(i + 1) * k].windows(2).all(|w| w[0] <= w[1]));
                hits += row.iter().filter(|j| want[i].contains(j)).count();
            }
            let recall = hits as f64 / (n * k) as f64;
            assert!(recall >= 0.95, "n {n} m {m} k {k}: recall {recall}");
        }
    }

    #[test]
    fn same_seed_same_result_on_any_thread_count() {
        let (n, m, k) = (2500, 16, 10);
        let x = data(n, m, 8);
        let run = |seed: u64, threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let cfg = NnDescent::for_size(n, k);
            pool.install(|| nn_descent(&x, n, m, k, &cfg, seed, &mut |_| {}, &|| false))
                .unwrap()
        };
        let a = run(5, 1);
        assert_eq!(a, run(5, 4));
        assert_ne!(a.0, run(6, 2).0);
    }

    #[test]
    fn duplicates_and_tiny_inputs() {
        // All rows identical: splits degenerate, every distance is 0; lists must still fill.
        let x = vec![1.0f32; 300 * 4];
        let cfg = NnDescent::for_size(300, 10);
        let (idx, d) = nn_descent(&x, 300, 4, 10, &cfg, 0, &mut |_| {}, &|| false).unwrap();
        assert!(idx.iter().all(|&j| j < 300) && d.iter().all(|&v| v == 0.0));
        for i in 0..300 {
            assert!(!idx[i * 10..(i + 1) * 10].contains(&(i as u32)));
        }
        // Fewer rows than k + 1.
        let x = data(5, 3, 1);
        let cfg = NnDescent::for_size(5, 10);
        let (idx, _) = nn_descent(&x, 5, 3, 10, &cfg, 0, &mut |_| {}, &|| false).unwrap();
        assert_eq!(idx.len(), 5 * 4);
        assert!(idx.iter().all(|&j| j < 5));
        // Cancel.
        let x = data(500, 3, 1);
        let cfg = NnDescent::for_size(500, 10);
        assert!(nn_descent(&x, 500, 3, 10, &cfg, 0, &mut |_| {}, &|| true).is_none());
    }
}
