//! Ranking a cell's members by how typical they are: the cosine similarity of each member's
//! activation to the cell's mean activation. The dataset examples list and the exemplar icons
//! both use this order.

/// Euclidean norm of every `c`-wide row of `acts` (as [`rank_by_similarity`] wants them).
pub fn row_norms(acts: &[f32], c: usize) -> Vec<f32> {
    acts.chunks_exact(c.max(1))
        .map(|v| v.iter().map(|a| a * a).sum::<f32>().sqrt())
        .collect()
}

/// `members` (rows of the `c`-wide matrix `acts`, with `norms` from [`row_norms`]) ranked by the
/// cosine similarity of their row to `mean`, most similar first, ties by row; at most `max`, as
/// (row, similarity). This is the ranking of the dataset examples, and the first entries are a
/// cell's exemplar icons (`atlas::exemplars`).
pub fn rank_by_similarity(
    acts: &[f32],
    c: usize,
    norms: &[f32],
    members: &[usize],
    mean: &[f32],
    max: usize,
) -> Vec<(usize, f32)> {
    let mean_norm = mean.iter().map(|a| a * a).sum::<f32>().sqrt();
    let mut ranked: Vec<(usize, f32)> = members
        .iter()
        .map(|&r| {
            let dot: f32 = acts[r * c..(r + 1) * c]
                .iter()
                .zip(mean)
                .map(|(a, b)| a * b)
                .sum();
            let denom = norms[r] * mean_norm;
            (r, if denom > 0.0 { dot / denom } else { 0.0 })
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(max);
    ranked
}
