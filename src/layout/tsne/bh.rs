//! Barnes-Hut approximation of t-SNE's repulsive forces (van der Maaten 2014), for a 1-D
//! (binary tree) or 2-D (quadtree) embedding: `D` is the embedding dimension, each node has up
//! to `2^D` children.
//!
//! Like scikit-learn's `_QuadTree.summarize`, a node of squared width `w²` at squared distance
//! `d²` from the query (to its centre of mass) stands for all its points when
//! `w² / d² < θ²`. Unlike scikit-learn, leaves hold up to [`LEAF`] points and an unsummarized
//! leaf is summed exactly, point by point (scikit-learn's leaves hold one point, so this is at
//! least as accurate). The tree is rebuilt every iteration; points are reordered into tree
//! order so the traversals of neighbouring points touch the same memory.

use rayon::prelude::*;

/// Points per leaf.
const LEAF: usize = 8;
/// Beyond this depth (or below this width) a node is a leaf whatever its size: only exact or
/// nearly exact duplicates get there.
const MAX_DEPTH: usize = 48;

/// Points closer than this in every coordinate do not repel each other (nor count in Z): this
/// is scikit-learn's quadtree `EPSILON`, under which it merges points into one leaf and skips
/// that leaf for its own points. It is reproduced on purpose: it matters while the embedding is
/// still ~1e-4 wide (sklearn's initial scale), and it is what keeps sklearn's 1-D layouts with
/// learning rate 10 from collapsing to a point during early exaggeration.
pub(crate) const DUPLICATE: f32 = 1e-6;

#[derive(Clone, Copy, Debug)]
struct Node<const D: usize> {
    /// Centre of mass.
    com: [f32; D],
    count: f32,
    /// Squared largest side of the cell.
    width2: f32,
    /// First child (children are contiguous); 0 for a leaf (the root is never a child).
    child: u32,
    n_children: u32,
    /// The node's points: `pts[start..end]`.
    start: u32,
    end: u32,
}

pub(crate) struct Tree<const D: usize> {
    nodes: Vec<Node<D>>,
    /// Positions in tree order.
    pts: Vec<[f32; D]>,
    /// Original index of `pts[t]`.
    order: Vec<u32>,
}

impl<const D: usize> Tree<D> {
    /// Builds the tree over the `n×D` row-major positions `y`.
    pub(crate) fn build(y: &[f32]) -> Tree<D> {
        let n = y.len() / D;
        let mut pts: Vec<[f32; D]> = y
            .chunks_exact(D)
            .map(|c| std::array::from_fn(|a| c[a]))
            .collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut lo = [f32::INFINITY; D];
        let mut hi = [f32::NEG_INFINITY; D];
        for p in &pts {
            for a in 0..D {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        let mut tree = Tree {
            nodes: Vec::with_capacity(2 * n / LEAF + 16),
            pts: Vec::new(),
            order: Vec::new(),
        };
        if n == 0 {
            return tree;
        }
        // Square cells (as sklearn's quadtree): the root is a cube of the largest side.
        let side = (0..D).map(|a| hi[a] - lo[a]).fold(0.0f32, f32::max);
        let hi: [f32; D] = std::array::from_fn(|a| lo[a] + side);
        let min_w2 = (side * 1e-6).powi(2);
        let mut scratch_p = pts.clone();
        let mut scratch_o = order.clone();
        tree.nodes.push(Node {
            com: [0.0; D],
            count: 0.0,
            width2: 0.0,
            child: 0,
            n_children: 0,
            start: 0,
            end: 0,
        });
        let mut b = Builder {
            nodes: &mut tree.nodes,
            pts: &mut pts,
            order: &mut order,
            sp: &mut scratch_p,
            so: &mut scratch_o,
            min_w2,
        };
        b.node(0, 0, n, lo, hi, 0);
        tree.pts = pts;
        tree.order = order;
        tree
    }

    /// Repulsive part of the gradient, unnormalized, for every point (written to `neg`, `n×D`
    /// in the original order): `Σ_j (1 + |y_i − y_j|²)^{-2} (y_i − y_j)`; returns
    /// `Z = Σ_{i≠j} (1 + |y_i − y_j|²)^{-1}`. Deterministic whatever the thread count.
    pub(crate) fn repulsion(&self, theta: f32, neg: &mut [f32]) -> f64 {
        let n = self.pts.len();
        let theta2 = theta * theta;
        let per: Vec<([f32; D], f64)> = (0..n)
            .into_par_iter()
            .with_min_len(256)
            .map(|t| self.point(t, theta2))
            .collect();
        let mut z = 0.0f64;
        for (t, (f, zi)) in per.iter().enumerate() {
            z += zi;
            let i = self.order[t] as usize;
            neg[i * D..(i + 1) * D].copy_from_slice(f);
        }
        z
    }

    fn point(&self, t: usize, theta2: f32) -> ([f32; D], f64) {
        let y = self.pts[t];
        let mut f = [0f32; D];
        let mut z = 0f64;
        let mut stack = [0u32; 4 * MAX_DEPTH + 8];
        let mut sp = 1usize; // stack[0] = root
        while sp > 0 {
            sp -= 1;
            let nd = &self.nodes[stack[sp] as usize];
            let mut diff = [0f32; D];
            let mut d2 = 0f32;
            for a in 0..D {
                diff[a] = y[a] - nd.com[a];
                d2 += diff[a] * diff[a];
            }
            let leaf = nd.n_children == 0;
            if leaf && nd.width2 <= DUPLICATE * DUPLICATE {
                // A cell of (near) duplicates, as one sklearn leaf: skipped by its own points,
                // a point mass for the others.
                if diff.iter().all(|v| v.abs() <= DUPLICATE) {
                    continue;
                }
                let q = 1.0 / (1.0 + d2);
                z += (nd.count * q) as f64;
                let m = nd.count * q * q;
                for a in 0..D {
                    f[a] += m * diff[a];
                }
            } else if nd.width2 < theta2 * d2 {
                let q = 1.0 / (1.0 + d2);
                z += (nd.count * q) as f64;
                let m = nd.count * q * q;
                for a in 0..D {
                    f[a] += m * diff[a];
                }
            } else if leaf {
                let mut zl = 0f32;
                for s in nd.start as usize..nd.end as usize {
                    let p = &self.pts[s];
                    let mut d2 = 0f32;
                    let mut diff = [0f32; D];
                    let mut duplicate = true;
                    for a in 0..D {
                        diff[a] = y[a] - p[a];
                        d2 += diff[a] * diff[a];
                        duplicate &= diff[a].abs() <= DUPLICATE;
                    }
                    if duplicate {
                        continue; // the point itself, or one sklearn would merge with it
                    }
                    let q = 1.0 / (1.0 + d2);
                    zl += q;
                    for a in 0..D {
                        f[a] += q * q * diff[a];
                    }
                }
                z += zl as f64;
            } else {
                for c in 0..nd.n_children {
                    stack[sp] = nd.child + c;
                    sp += 1;
                }
            }
        }
        (f, z)
    }
}

struct Builder<'a, const D: usize> {
    nodes: &'a mut Vec<Node<D>>,
    pts: &'a mut [[f32; D]],
    order: &'a mut [u32],
    sp: &'a mut [[f32; D]],
    so: &'a mut [u32],
    min_w2: f32,
}

impl<const D: usize> Builder<'_, D> {
    fn node(&mut self, id: usize, s: usize, e: usize, lo: [f32; D], hi: [f32; D], depth: usize) {
        let mut acc = [0f64; D];
        for p in &self.pts[s..e] {
            for a in 0..D {
                acc[a] += p[a] as f64;
            }
        }
        let cnt = (e - s) as f64;
        let com: [f32; D] = std::array::from_fn(|a| (acc[a] / cnt) as f32);
        let width2 = (0..D)
            .map(|a| (hi[a] - lo[a]) * (hi[a] - lo[a]))
            .fold(0.0f32, f32::max);
        let mut nd = Node {
            com,
            count: cnt as f32,
            width2,
            child: 0,
            n_children: 0,
            start: s as u32,
            end: e as u32,
        };
        if e - s <= LEAF
            || depth >= MAX_DEPTH
            || width2 <= self.min_w2
            || width2 <= DUPLICATE * DUPLICATE
        {
            self.nodes[id] = nd;
            return;
        }
        let mid: [f32; D] = std::array::from_fn(|a| 0.5 * (lo[a] + hi[a]));
        let quad = |p: &[f32; D]| -> usize {
            let mut q = 0;
            for a in 0..D {
                if p[a] >= mid[a] {
                    q |= 1 << a;
                }
            }
            q
        };
        // Counting sort of the range by child cell (stable).
        let nc = 1usize << D;
        let mut counts = [0usize; 8];
        for p in &self.pts[s..e] {
            counts[quad(p)] += 1;
        }
        let mut offs = [0usize; 8];
        for q in 1..nc {
            offs[q] = offs[q - 1] + counts[q - 1];
        }
        let starts = offs;
        self.sp[s..e].copy_from_slice(&self.pts[s..e]);
        self.so[s..e].copy_from_slice(&self.order[s..e]);
        for r in s..e {
            let q = quad(&self.sp[r]);
            self.pts[s + offs[q]] = self.sp[r];
            self.order[s + offs[q]] = self.so[r];
            offs[q] += 1;
        }
        let first = self.nodes.len();
        let kids: Vec<usize> = (0..nc).filter(|&q| counts[q] > 0).collect();
        self.nodes.extend(kids.iter().map(|_| nd));
        nd.child = first as u32;
        nd.n_children = kids.len() as u32;
        self.nodes[id] = nd;
        for (c, &q) in kids.iter().enumerate() {
            let mut clo = lo;
            let mut chi = hi;
            for a in 0..D {
                if q & (1 << a) != 0 {
                    clo[a] = mid[a];
                } else {
                    chi[a] = mid[a];
                }
            }
            let cs = s + starts[q];
            self.node(first + c, cs, cs + counts[q], clo, chi, depth + 1);
        }
    }
}

/// Exact repulsion (O(n²), same duplicate rule), for tests.
#[cfg(test)]
pub(crate) fn exact_repulsion<const D: usize>(y: &[f32], neg: &mut [f32]) -> f64 {
    let n = y.len() / D;
    let mut z = 0f64;
    for i in 0..n {
        let mut f = [0f64; D];
        for j in 0..n {
            let mut d2 = 0f64;
            let mut diff = [0f64; D];
            for a in 0..D {
                diff[a] = (y[i * D + a] - y[j * D + a]) as f64;
                d2 += diff[a] * diff[a];
            }
            if diff.iter().all(|v| v.abs() <= DUPLICATE as f64) {
                continue;
            }
            let q = 1.0 / (1.0 + d2);
            z += q;
            for a in 0..D {
                f[a] += q * q * diff[a];
            }
        }
        for a in 0..D {
            neg[i * D + a] = f[a] as f32;
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::rng::Rng;

    fn check<const D: usize>(theta: f32, tol: f64) {
        let mut rng = Rng::new(3);
        // Clumps at different scales plus exact duplicates.
        let n = 1500;
        let mut y = Vec::with_capacity(n * D);
        for i in 0..n {
            let c = (i % 5) as f64 * 7.0;
            let s = if i % 3 == 0 { 0.05 } else { 2.0 };
            for _ in 0..D {
                y.push((c + s * rng.normal()) as f32);
            }
        }
        for a in 0..D {
            y[10 * D + a] = y[20 * D + a];
            y[11 * D + a] = y[20 * D + a];
        }
        let mut want = vec![0f32; n * D];
        let zw = exact_repulsion::<D>(&y, &mut want);
        let mut got = vec![0f32; n * D];
        let tree = Tree::<D>::build(&y);
        let zg = tree.repulsion(theta, &mut got);
        assert!((zg - zw).abs() / zw < tol, "Z {zg} vs {zw}");
        // Relative error of the force field as a whole.
        let num: f64 = got
            .iter()
            .zip(&want)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
        assert!(
            (num / den).sqrt() < tol,
            "force error {}",
            (num / den).sqrt()
        );
        // θ = 0 is exact.
        let zx = tree.repulsion(0.0, &mut got);
        assert!((zx - zw).abs() / zw < 1e-5);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn barnes_hut_matches_exact_repulsion_2d() {
        check::<2>(0.5, 0.02);
    }

    #[test]
    fn barnes_hut_matches_exact_repulsion_1d() {
        check::<1>(0.5, 0.02);
    }
}
