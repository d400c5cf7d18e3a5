//! Layout normalization exactly as the reference code's `normalize_layout` (spec §2.4).

/// numpy `percentile(v, q)` with the default linear interpolation; `v` must be sorted.
fn percentile_sorted(v: &[f32], q: f64) -> f64 {
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let t = pos - lo as f64;
    v[lo] as f64 + t * (v[hi] as f64 - v[lo] as f64)
}

/// Normalize a 2-D layout in place, each axis independently (aspect ratio is not kept):
/// lo/hi = 1st/99th percentile; `lo -= 0.1·(hi − lo)` and then `hi += 0.1·(hi − lo)` with the
/// already-widened `lo` (the reference code's quirk, reproduced); clip to [lo, hi]; subtract the
/// minimum and divide by the maximum so the axis spans exactly [0, 1]. Outliers pile up on the
/// border. Deviation: an axis with zero extent (where numpy would divide by zero and give NaN)
/// is set to 0.5. Non-finite coordinates are treated as the axis minimum.
///
/// Equals [`LayoutNormalization::fit`] on the points followed by
/// [`LayoutNormalization::apply`] on each.
pub fn normalize_layout(points: &mut [[f32; 2]]) {
    let norm = LayoutNormalization::fit(points);
    for p in points.iter_mut() {
        *p = norm.apply(*p);
    }
}

/// The map [`normalize_layout`] applies to a layout, kept so that a point placed into the layout
/// later (e.g. an image's vectors landed by [`crate::layout::transform`]) goes through the same
/// map as the layout's own points: `(clamp(x, lo, hi) − min) / extent` per axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayoutNormalization {
    /// Per axis: the clip range, the smallest clipped value of the layout and the extent of the
    /// clipped values (`None`: the axis has no extent or no finite value, mapped to 0.5).
    axes: [Option<AxisMap>; 2],
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct AxisMap {
    lo: f64,
    hi: f64,
    min: f64,
    extent: f64,
}

impl LayoutNormalization {
    /// The normalization [`normalize_layout`] would apply to `points`.
    pub fn fit(points: &[[f32; 2]]) -> Self {
        let mut axes = [None, None];
        for (ax, slot) in axes.iter_mut().enumerate() {
            let mut v: Vec<f32> = points
                .iter()
                .map(|p| p[ax])
                .filter(|x| x.is_finite())
                .collect();
            if v.is_empty() {
                continue;
            }
            v.sort_by(f32::total_cmp);
            let mut lo = percentile_sorted(&v, 1.0);
            let mut hi = percentile_sorted(&v, 99.0);
            lo -= 0.1 * (hi - lo);
            hi += 0.1 * (hi - lo);
            let clip = |x: f32| {
                let x = x as f64;
                if x.is_finite() {
                    x.clamp(lo, hi)
                } else {
                    lo
                }
            };
            let min = points
                .iter()
                .map(|p| clip(p[ax]))
                .fold(f64::INFINITY, f64::min);
            let extent = points
                .iter()
                .map(|p| clip(p[ax]) - min)
                .fold(0.0f64, f64::max);
            if extent > 0.0 {
                *slot = Some(AxisMap {
                    lo,
                    hi,
                    min,
                    extent,
                });
            }
        }
        LayoutNormalization { axes }
    }

    /// Maps a raw layout point into [0, 1]² (points outside the layout's clipped extent land on
    /// the border).
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let mut out = [0.5f32; 2];
        for ax in 0..2 {
            if let Some(m) = &self.axes[ax] {
                let x = p[ax] as f64;
                let c = if x.is_finite() {
                    x.clamp(m.lo, m.hi)
                } else {
                    m.lo
                };
                // Within [0, 1] for the layout's own points; a new point beyond their extent
                // is put on the border, like the layout's outliers.
                out[ax] = ((c - m.min) / m.extent).clamp(0.0, 1.0) as f32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_formula() {
        // x = 0..=100 plus an outlier at 1000; y constant.
        let mut pts: Vec<[f32; 2]> = (0..=100).map(|i| [i as f32, 3.0]).collect();
        pts.push([1000.0, 3.0]);
        let mut got = pts.clone();
        normalize_layout(&mut got);
        // numpy: p1 = 1.01, p99 = 99.99 (102 values), lo = 1.01 − 9.898 = −8.888,
        // hi = 99.99 + 0.1·(99.99 + 8.888) = 110.8778 (quirk: uses widened lo).
        let v: Vec<f64> = (0..=100).map(|i| i as f64).chain([1000.0]).collect();
        let pct = |q: f64| {
            let pos = q / 100.0 * 101.0;
            let l = pos.floor() as usize;
            v[l] + (pos - l as f64) * (v[l + 1] - v[l])
        };
        let (p1, p99) = (pct(1.0), pct(99.0));
        let lo = p1 - 0.1 * (p99 - p1);
        let hi = p99 + 0.1 * (p99 - lo);
        let mn = 0.0f64.max(lo); // smallest clipped value is 0 (lo < 0)
        for (g, p) in got.iter().zip(&pts) {
            let want = ((p[0] as f64).clamp(lo, hi) - mn) / (hi - mn);
            assert!((g[0] as f64 - want).abs() < 1e-6, "{g:?} vs {want}");
            assert_eq!(g[1], 0.5);
        }
        assert_eq!(got.last().unwrap()[0], 1.0); // the outlier is clipped onto the border
        assert_eq!(got[0][0], 0.0);
    }

    #[test]
    fn new_points_go_through_the_same_map() {
        let pts: Vec<[f32; 2]> = (0..200)
            .map(|i| [(i as f32 * 0.37).sin() * 5.0, (i * i % 97) as f32])
            .collect();
        let mut normed = pts.clone();
        normalize_layout(&mut normed);
        let m = LayoutNormalization::fit(&pts);
        for (p, n) in pts.iter().zip(&normed) {
            assert_eq!(m.apply(*p), *n);
        }
        // Between two points: between their images; beyond the layout: on the border.
        let mid = m.apply([0.5 * (pts[3][0] + pts[4][0]), 0.5 * (pts[3][1] + pts[4][1])]);
        for ax in 0..2 {
            let (a, b) = (
                normed[3][ax].min(normed[4][ax]),
                normed[3][ax].max(normed[4][ax]),
            );
            assert!(mid[ax] >= a - 1e-6 && mid[ax] <= b + 1e-6);
        }
        assert_eq!(m.apply([-1e6, 1e6]), [0.0, 1.0]);
        assert_eq!(m.apply([f32::NAN, 50.0])[0], 0.0);
        // A flat axis maps to 0.5.
        let flat = LayoutNormalization::fit(&[[1.0, 2.0], [1.0, 3.0]]);
        assert_eq!(flat.apply([7.0, 2.5])[0], 0.5);
    }
}
