//! Grids over a normalized layout (spec §3.1–3.2): half-open binning into G×G cells and
//! per-cell averages of activations and attributions. Each grid size is binned independently
//! from the same layout; with doubling sizes every coarse cell is exactly the union of its 2×2
//! finer cells, which is what makes zooming consistent.

use rayon::prelude::*;

pub mod rank;

/// One occupied grid cell: `x` is the column (layout x), `y` the row index counted from the
/// bottom (layout y, Cartesian y-up; flip with `G − 1 − y` for screen rows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub x: usize,
    pub y: usize,
    /// Row indices (into the layout / activation matrices) of the points in this cell, ascending.
    pub members: Vec<usize>,
}

/// Index of a coordinate in a grid of `g` cells: half-open cells `floor(min(p·G, G−1))`, so a
/// point on an inner border belongs to the upper cell and p = 1 to the last cell. Values below
/// 0 (or NaN) go to cell 0.
#[inline]
pub fn cell_index(p: f32, g: usize) -> usize {
    let v = p * g as f32;
    if v.is_nan() {
        return 0;
    }
    let v = v.min((g - 1) as f32);
    if v > 0.0 {
        v.floor() as usize
    } else {
        0
    }
}

/// Bin a normalized layout ([0, 1]²) into a `grid × grid` grid and keep the cells with at least
/// `min_count` points (spec recommends 5). Cells are ordered by (y, x).
pub fn bin(points: &[[f32; 2]], grid: usize, min_count: usize) -> Vec<Cell> {
    assert!(grid > 0, "grid size must be positive");
    let mut slots: Vec<Vec<usize>> = vec![Vec::new(); grid * grid];
    for (i, p) in points.iter().enumerate() {
        let (cx, cy) = (cell_index(p[0], grid), cell_index(p[1], grid));
        slots[cy * grid + cx].push(i);
    }
    slots
        .into_iter()
        .enumerate()
        .filter(|(_, m)| !m.is_empty() && m.len() >= min_count)
        .map(|(s, members)| Cell {
            x: s % grid,
            y: s / grid,
            members,
        })
        .collect()
}

/// How full a view fitted to the occupied area looks: the fraction of the grid cells inside the
/// bounding box of the kept `cells` that are kept (1 when there are none).
pub fn occupancy(cells: &[Cell], grid: usize) -> f64 {
    let (Some(x0), Some(x1)) = (
        cells.iter().map(|c| c.x).min(),
        cells.iter().map(|c| c.x).max(),
    ) else {
        return 1.0;
    };
    let y0 = cells.iter().map(|c| c.y).min().unwrap_or(0);
    let y1 = cells.iter().map(|c| c.y).max().unwrap_or(0);
    debug_assert!(x1 < grid && y1 < grid);
    cells.len() as f64 / ((x1 - x0 + 1) * (y1 - y0 + 1)) as f64
}

/// A coarser grid for a full opening view: when the coarsest level keeps fewer than `target` of
/// the cells in its occupied area, the finest grid below it (down to 2) that does. A small or
/// clumpy layout (e.g. 16 positions of each of 25 photos: 25 tight clusters) leaves most cells of
/// even its coarsest published grid empty; its overview level is what the viewer opens on.
/// Returns the added size, if one is needed.
pub fn overview_grid(
    points: &[[f32; 2]],
    coarsest: usize,
    min_count: usize,
    target: f64,
) -> Option<usize> {
    if coarsest <= 2 || occupancy(&bin(points, coarsest, min_count), coarsest) >= target {
        return None;
    }
    (2..coarsest)
        .rev()
        .find(|&g| occupancy(&bin(points, g, min_count), g) >= target)
        .or(Some(2))
}

/// Per-cell averages (spec §3.1, §5.3).
#[derive(Clone, Debug)]
pub struct CellSummary {
    pub x: usize,
    pub y: usize,
    pub count: usize,
    /// Mean raw activation vector (length C).
    pub mean_activation: Vec<f32>,
    /// Mean attribution vector (length K).
    pub mean_attribution: Vec<f32>,
    /// Up to 5 (class index, mean attribution), largest first: label = `top[0]`.
    pub top_classes: Vec<(usize, f32)>,
}

/// Average the row-major `acts` (`[N, c]`) and `attr` (`[N, k]`) over each cell's members
/// (sums in f64) and rank classes by mean attribution. Either matrix may have zero columns.
pub fn summarize(
    cells: &[Cell],
    acts: &[f32],
    c: usize,
    attr: &[f32],
    k: usize,
) -> Vec<CellSummary> {
    cells
        .par_iter()
        .map(|cell| {
            let mean = |m: &[f32], w: usize| -> Vec<f32> {
                let mut s = vec![0.0f64; w];
                for &i in &cell.members {
                    s.iter_mut()
                        .zip(&m[i * w..(i + 1) * w])
                        .for_each(|(a, b)| *a += *b as f64);
                }
                let n = cell.members.len().max(1) as f64;
                s.into_iter().map(|v| (v / n) as f32).collect()
            };
            let mean_activation = mean(acts, c);
            let mean_attribution = mean(attr, k);
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by(|&a, &b| {
                mean_attribution[b]
                    .total_cmp(&mean_attribution[a])
                    .then(a.cmp(&b))
            });
            let top_classes = order
                .into_iter()
                .take(5)
                .map(|j| (j, mean_attribution[j]))
                .collect();
            CellSummary {
                x: cell.x,
                y: cell.y,
                count: cell.members.len(),
                mean_activation,
                mean_attribution,
                top_classes,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_points(n: usize) -> Vec<[f32; 2]> {
        // Deterministic scatter including exact borders 0, 1 and inner edges k/80.
        let mut s = 12345u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut pts: Vec<[f32; 2]> = (0..n).map(|_| [next(), next()]).collect();
        for k in 0..=80 {
            pts.push([k as f32 / 80.0, 1.0 - k as f32 / 80.0]);
        }
        pts
    }

    #[test]
    fn coarse_cells_are_unions_of_fine_cells() {
        let pts = pseudo_points(5000);
        for g in [20usize, 40] {
            let coarse = bin(&pts, g, 1);
            let fine = bin(&pts, 2 * g, 1);
            let total: usize = coarse.iter().map(|c| c.members.len()).sum();
            assert_eq!(total, pts.len());
            for c in &coarse {
                let mut union: Vec<usize> = fine
                    .iter()
                    .filter(|f| f.x / 2 == c.x && f.y / 2 == c.y)
                    .flat_map(|f| f.members.iter().copied())
                    .collect();
                union.sort_unstable();
                assert_eq!(union, c.members, "cell {},{} at G={g}", c.x, c.y);
            }
        }
    }

    #[test]
    fn half_open_borders() {
        assert_eq!(cell_index(0.0, 20), 0);
        assert_eq!(cell_index(0.05, 20), 1); // inner border → upper cell
        assert_eq!(cell_index(0.0499, 20), 0);
        assert_eq!(cell_index(1.0, 20), 19); // last edge is closed
        assert_eq!(cell_index(1.5, 20), 19);
        assert_eq!(cell_index(-0.1, 20), 0);
        assert_eq!(cell_index(f32::NAN, 20), 0);
        let cells = bin(&[[0.5, 0.5], [1.0, 0.0]], 2, 1);
        assert_eq!(cells.len(), 2);
        assert_eq!((cells[0].x, cells[0].y), (1, 0));
        assert_eq!((cells[1].x, cells[1].y), (1, 1));
    }

    #[test]
    fn min_count_filters_sparse_cells() {
        let mut pts = vec![[0.1, 0.1]; 5];
        pts.extend(vec![[0.9, 0.9]; 4]);
        let cells = bin(&pts, 4, 5);
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].members, vec![0, 1, 2, 3, 4]);
        assert_eq!(bin(&pts, 4, 1).len(), 2);
        assert_eq!(bin(&pts, 4, 0).len(), 2); // empty cells never appear
    }

    #[test]
    fn summaries_average_and_rank() {
        let pts = [[0.1, 0.1], [0.2, 0.2], [0.9, 0.9]];
        let acts = [1.0, 2.0, 3.0, 4.0, 10.0, 10.0];
        let attr = [
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, //
            0.0, 3.0, 2.0, 1.0, 4.0, 9.0, //
            9.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let cells = bin(&pts, 2, 1);
        let s = summarize(&cells, &acts, 2, &attr, 6);
        assert_eq!(s[0].count, 2);
        assert_eq!(s[0].mean_activation, vec![2.0, 3.0]);
        assert_eq!(s[0].mean_attribution, vec![0.0, 2.0, 2.0, 2.0, 4.0, 7.0]);
        let top: Vec<usize> = s[0].top_classes.iter().map(|t| t.0).collect();
        assert_eq!(top, vec![5, 4, 1, 2, 3]);
        assert_eq!(s[1].top_classes[0], (0, 9.0));
    }

    #[test]
    fn the_overview_grid_is_the_finest_that_fills_half_its_area() {
        // Two tight clusters in opposite corners: every grid finer than 2×2 is mostly empty.
        let mut pts = vec![];
        for i in 0..50 {
            let d = i as f32 * 0.001;
            pts.push([0.05 + d, 0.05 + d]);
            pts.push([0.95 - d, 0.95 - d]);
        }
        assert_eq!(occupancy(&bin(&pts, 10, 5), 10), 2.0 / 100.0);
        assert_eq!(overview_grid(&pts, 10, 5, 0.5), Some(2));
        // Four clusters on a 3×3 lattice's corners and centre: 3×3 keeps 5 of 9.
        let mut pts = vec![];
        for (cx, cy) in [(0.1, 0.1), (0.9, 0.1), (0.1, 0.9), (0.9, 0.9), (0.5, 0.5)] {
            for i in 0..20 {
                pts.push([cx + i as f32 * 1e-3, cy]);
            }
        }
        assert_eq!(overview_grid(&pts, 10, 5, 0.5), Some(3));
        assert!(occupancy(&bin(&pts, 3, 5), 3) >= 0.5);
        // A layout that fills its grid needs none.
        let even: Vec<[f32; 2]> = (0..400)
            .map(|i| {
                [
                    ((i % 20) as f32 + 0.5) / 20.0,
                    ((i / 20) as f32 + 0.5) / 20.0,
                ]
            })
            .collect();
        assert_eq!(overview_grid(&even, 10, 4, 0.5), None);
    }
}
