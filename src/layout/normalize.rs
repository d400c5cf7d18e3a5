//! Layout normalisation exactly as the reference code's `normalize_layout` (spec §2.4).

/// numpy `percentile(v, q)` with the default linear interpolation; `v` must be sorted.
fn percentile_sorted(v: &[f32], q: f64) -> f64 {
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let t = pos - lo as f64;
    v[lo] as f64 + t * (v[hi] as f64 - v[lo] as f64)
}

/// Normalise a 2-D layout in place, each axis independently (aspect ratio is not kept):
/// lo/hi = 1st/99th percentile; `lo -= 0.1·(hi − lo)` and then `hi += 0.1·(hi − lo)` with the
/// already-widened `lo` (the reference code's quirk, reproduced); clip to [lo, hi]; subtract the
/// minimum and divide by the maximum so the axis spans exactly [0, 1]. Outliers pile up on the
/// border. Deviation: an axis with zero extent (where numpy would divide by zero and give NaN)
/// is set to 0.5. Non-finite coordinates are treated as the axis minimum.
pub fn normalize_layout(points: &mut [[f32; 2]]) {
    if points.is_empty() {
        return;
    }
    for ax in 0..2 {
        let mut v: Vec<f32> = points
            .iter()
            .map(|p| p[ax])
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            points.iter_mut().for_each(|p| p[ax] = 0.5);
            continue;
        }
        v.sort_by(f32::total_cmp);
        let mut lo = percentile_sorted(&v, 1.0);
        let mut hi = percentile_sorted(&v, 99.0);
        lo -= 0.1 * (hi - lo);
        hi += 0.1 * (hi - lo);
        let clipped: Vec<f64> = points
            .iter()
            .map(|p| {
                let x = p[ax] as f64;
                if x.is_finite() {
                    x.clamp(lo, hi)
                } else {
                    lo
                }
            })
            .collect();
        let mn = clipped.iter().copied().fold(f64::INFINITY, f64::min);
        let mx = clipped.iter().map(|x| x - mn).fold(0.0f64, f64::max);
        for (p, c) in points.iter_mut().zip(clipped) {
            p[ax] = if mx > 0.0 {
                ((c - mn) / mx) as f32
            } else {
                0.5
            };
        }
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
}
