//! Sample filters of the class activation atlas (spec §6), the comparison's sample set and x axis
//! (spec §7), and class-name lookup.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Which samples of a layer belong to a class (spec §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassFilter {
    /// "Top rank": the class is the argmax of the sample's attribution vector (ties: the lowest
    /// class index, as `numpy.argmax`).
    Winner,
    /// "Overall magnitude": the `n` samples with the largest attribution to the class (ties: the
    /// lower row first), then those with attribution ≤ 0 dropped.
    Magnitude,
    /// Winner ∪ magnitude (NB-CLS concatenates the two lists; see [`Selection`] for duplicates).
    Both,
}

impl ClassFilter {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "winner" | "top-rank" => Ok(ClassFilter::Winner),
            "magnitude" | "top" => Ok(ClassFilter::Magnitude),
            "both" => Ok(ClassFilter::Both),
            other => bail!("the class filter must be winner, magnitude or both, not {other:?}"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ClassFilter::Winner => "winner",
            ClassFilter::Magnitude => "magnitude",
            ClassFilter::Both => "both",
        }
    }
}

/// How the rows of several lists are combined (the `both` filter, and the comparison's two
/// classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Set union, each run row once, in ascending row order (the default: a row counted twice
    /// would weigh twice in its cell's means and sit on top of itself in the layout).
    Union,
    /// The reference notebook's concatenation, duplicates kept: for `both`, the magnitude list
    /// (largest attribution first) then the winner list (ascending rows); for a comparison,
    /// class A's list then class B's.
    Concat,
}

/// Rows whose attribution argmax is `class`, ascending. `attr` is `[N, k]` row-major.
pub fn winner_rows(attr: &[f32], k: usize, class: usize) -> Vec<usize> {
    attr.chunks_exact(k)
        .enumerate()
        .filter(|(_, row)| argmax(row) == class)
        .map(|(i, _)| i)
        .collect()
}

/// First index of the largest value (NaN never wins).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() {
            best = j;
        }
    }
    best
}

/// The `n` rows with the largest attribution to `class` (ties: lower row first), keeping only
/// those with attribution > 0; largest first.
pub fn magnitude_rows(attr: &[f32], k: usize, class: usize, n: usize) -> Vec<usize> {
    let col: Vec<f32> = attr.chunks_exact(k).map(|r| r[class]).collect();
    let mut order: Vec<usize> = (0..col.len()).collect();
    order.sort_by(|&a, &b| col[b].total_cmp(&col[a]).then(a.cmp(&b)));
    order.truncate(n);
    order.retain(|&i| col[i] > 0.0);
    order
}

/// The rows of one class under `filter` (spec §6), combined as `selection` says.
pub fn class_rows(
    attr: &[f32],
    k: usize,
    class: usize,
    filter: ClassFilter,
    n: usize,
    selection: Selection,
) -> Vec<usize> {
    match filter {
        ClassFilter::Winner => winner_rows(attr, k, class),
        ClassFilter::Magnitude => {
            let mut rows = magnitude_rows(attr, k, class, n);
            if selection == Selection::Union {
                rows.sort_unstable();
            }
            rows
        }
        ClassFilter::Both => {
            let mut rows = magnitude_rows(attr, k, class, n);
            rows.extend(winner_rows(attr, k, class));
            if selection == Selection::Union {
                rows.sort_unstable();
                rows.dedup();
            }
            rows
        }
    }
}

/// The comparison's sample set (spec §7): class A's rows then class B's, each under `filter`,
/// combined as `selection` says (union: ascending, each row once).
pub fn comparison_rows(
    attr: &[f32],
    k: usize,
    a: usize,
    b: usize,
    filter: ClassFilter,
    n: usize,
    selection: Selection,
) -> Vec<usize> {
    let mut rows = class_rows(attr, k, a, filter, n, selection);
    rows.extend(class_rows(attr, k, b, filter, n, selection));
    if selection == Selection::Union {
        rows.sort_unstable();
        rows.dedup();
    }
    rows
}

/// numpy's `percentile(v, q)` (linear interpolation) of unsorted values, in f64.
pub fn percentile(values: &[f32], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    v.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
}

/// The comparison's x axis (spec §7): `d = attr[r, b] − attr[r, a]` (in f32, as numpy on the
/// f32 matrix), divided by the `q`-th percentile of `|d|` over `rows` and clipped to [−1, 1];
/// positive = more attributed to B. Returns the coordinates and the divisor (0 when every `d` is
/// 0; then every x is 0).
pub fn comparison_x(
    attr: &[f32],
    k: usize,
    rows: &[usize],
    a: usize,
    b: usize,
    q: f64,
) -> (Vec<f32>, f64) {
    let d: Vec<f32> = rows
        .iter()
        .map(|&r| attr[r * k + b] - attr[r * k + a])
        .collect();
    let abs: Vec<f32> = d.iter().map(|v| v.abs()).collect();
    let scale = percentile(&abs, q);
    let x = d
        .iter()
        .map(|&v| {
            if scale > 0.0 {
                (v as f64 / scale).clamp(-1.0, 1.0) as f32
            } else {
                0.0
            }
        })
        .collect();
    (x, scale)
}

/// Finds a class by index ("42") or name, case-insensitively; a name may also be one of the
/// comma-separated synonyms of a class name ("tiger cat" in "tiger cat, Felis tigris"). An
/// unknown name is an error that lists the closest names.
pub fn resolve_class(names: &[String], query: &str) -> Result<usize> {
    let q = query.trim();
    if let Ok(i) = q.parse::<usize>() {
        if i < names.len() {
            return Ok(i);
        }
        bail!(
            "class index {i} is out of range: the run has {} classes (0–{})",
            names.len(),
            names.len().saturating_sub(1)
        );
    }
    let ql = q.to_lowercase();
    if let Some(i) = names.iter().position(|n| n.to_lowercase() == ql) {
        return Ok(i);
    }
    let syn: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].split(',').any(|s| s.trim().to_lowercase() == ql))
        .collect();
    if syn.len() == 1 {
        return Ok(syn[0]);
    }
    let close = close_matches(names, q, 6);
    let listed: Vec<String> = close
        .iter()
        .map(|&i| format!("{:?} ({i})", names[i]))
        .collect();
    if syn.len() > 1 {
        bail!(
            "the class name {q:?} is ambiguous: {}",
            syn.iter()
                .map(|&i| format!("{:?} ({i})", names[i]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    bail!(
        "the run has no class {q:?} (among its {} classes); close matches: {}",
        names.len(),
        if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join(", ")
        }
    )
}

/// Up to `max` class indices whose names are closest to `query`: names containing it (or
/// contained in it) first, then by edit distance.
pub fn close_matches(names: &[String], query: &str, max: usize) -> Vec<usize> {
    let q = query.to_lowercase();
    let mut scored: Vec<(usize, usize, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let nl = n.to_lowercase();
            let contains = !q.is_empty() && (nl.contains(&q) || q.contains(&nl));
            // Distance to the best-matching synonym.
            let d = nl
                .split(',')
                .map(|s| levenshtein(s.trim(), &q))
                .min()
                .unwrap_or(usize::MAX);
            (usize::from(!contains), d, i)
        })
        .collect();
    scored.sort_unstable(); // the index makes every entry distinct
    let limit = (q.chars().count() / 2).max(2);
    scored
        .into_iter()
        .filter(|&(c, d, _)| c == 0 || d <= limit)
        .take(max)
        .map(|(_, _, i)| i)
        .collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_on_a_small_matrix() {
        // 5 rows × 3 classes.
        let attr = [
            0.1, 0.5, 0.2, // winner 1
            0.9, 0.3, 0.0, // winner 0
            -0.1, -0.2, -0.3, // winner 0
            0.0, 0.3, 0.3, // tie → winner 1
            0.2, -0.5, 0.1, // winner 0
        ];
        assert_eq!(winner_rows(&attr, 3, 0), vec![1, 2, 4]);
        assert_eq!(winner_rows(&attr, 3, 1), vec![0, 3]);
        // Class 1: values 0.5, 0.3, -0.2, 0.3, -0.5 → order 0, 1, 3 (tie: lower row), 2, 4.
        assert_eq!(magnitude_rows(&attr, 3, 1, 4), vec![0, 1, 3]);
        assert_eq!(magnitude_rows(&attr, 3, 1, 2), vec![0, 1]);
        assert_eq!(
            class_rows(&attr, 3, 1, ClassFilter::Both, 2, Selection::Union),
            vec![0, 1, 3]
        );
        assert_eq!(
            class_rows(&attr, 3, 1, ClassFilter::Both, 2, Selection::Concat),
            vec![0, 1, 0, 3]
        );
        assert_eq!(
            comparison_rows(&attr, 3, 0, 2, ClassFilter::Winner, 9, Selection::Union),
            vec![1, 2, 4]
        );
    }

    #[test]
    fn x_axis_and_percentile() {
        let v: Vec<f32> = (0..=100).map(|i| i as f32).collect();
        assert!((percentile(&v, 99.0) - 99.0).abs() < 1e-12);
        assert!((percentile(&[1.0, 2.0], 50.0) - 1.5).abs() < 1e-12);
        let attr = [0.0, 1.0, 2.0, 0.0, 0.0, 0.0];
        let (x, s) = comparison_x(&attr, 2, &[0, 1, 2], 0, 1, 99.0);
        // d = 1, −2, 0; |d| = 1, 2, 0; p99 = 1.98.
        assert!((s - 1.98).abs() < 1e-9);
        assert!((x[0] - 1.0 / 1.98).abs() < 1e-6);
        assert_eq!(x[1], -1.0);
        assert_eq!(x[2], 0.0);
    }

    #[test]
    fn class_names() {
        let names: Vec<String> = ["tench", "goldfish", "tiger cat, Felis tigris", "church"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(resolve_class(&names, "Goldfish").unwrap(), 1);
        assert_eq!(resolve_class(&names, "3").unwrap(), 3);
        assert_eq!(resolve_class(&names, "TIGER CAT").unwrap(), 2);
        let e = resolve_class(&names, "chruch").unwrap_err().to_string();
        assert!(
            e.contains("no class \"chruch\"") && e.contains("\"church\" (3)"),
            "{e}"
        );
        assert!(resolve_class(&names, "7").is_err());
    }
}
