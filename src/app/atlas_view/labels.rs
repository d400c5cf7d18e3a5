//! Top-class labels that never overlap. Candidates come from the viewer's every-k-th-cell rule
//! (spec §3.4); that rule alone still lets long names run into each other, so candidates are
//! then placed greedily, most populated cell first, and a label that would touch one already
//! placed is dropped.
use eframe::egui::Rect;

/// Which candidates to draw: indices into `rects`, in placement order. `priority[i]` larger
/// places first (ties keep input order). No two accepted rectangles intersect, and none leaves
/// `bounds`.
pub fn place_labels(rects: &[Rect], priority: &[f32], bounds: Rect) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rects.len()).collect();
    order.sort_by(|&a, &b| priority[b].total_cmp(&priority[a]).then(a.cmp(&b)));
    let mut placed: Vec<usize> = vec![];
    for i in order {
        let r = rects[i];
        if !bounds.contains_rect(r) {
            continue;
        }
        // A pixel of air between labels.
        let grown = r.expand(1.0);
        if placed.iter().all(|&j| !rects[j].intersects(grown)) {
            placed.push(i);
        }
    }
    placed
}

/// The every-k-th-cell rule: `k = ceil(40 / icon)` along x and `ceil(60 / icon)` along y.
pub fn kth_cell(x: usize, y: usize, icon_px: f32) -> bool {
    let kx = (40.0 / icon_px.max(1.0)).ceil().max(1.0) as usize;
    let ky = (60.0 / icon_px.max(1.0)).ceil().max(1.0) as usize;
    x.is_multiple_of(kx) && y.is_multiple_of(ky)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eframe::egui::{pos2, vec2};

    #[test]
    fn accepted_labels_never_overlap_and_priority_wins() {
        let bounds = Rect::from_min_size(pos2(0.0, 0.0), vec2(500.0, 500.0));
        // A dense row of long labels that overlap their neighbours, and one outside the bounds.
        let mut rects: Vec<Rect> = (0..40)
            .map(|i| Rect::from_min_size(pos2(i as f32 * 10.0, 100.0), vec2(60.0, 12.0)))
            .collect();
        rects.push(Rect::from_min_size(pos2(490.0, 10.0), vec2(60.0, 12.0)));
        let mut priority = vec![1.0; rects.len()];
        priority[7] = 5.0;
        let placed = place_labels(&rects, &priority, bounds);
        assert_eq!(placed[0], 7, "the most populated cell is labelled first");
        assert!(
            !placed.contains(&40),
            "a label outside the canvas is dropped"
        );
        for (n, &a) in placed.iter().enumerate() {
            for &b in &placed[n + 1..] {
                assert!(!rects[a].intersects(rects[b]), "{a} and {b} overlap");
            }
        }
        // 400 px of row, 60 px labels with a pixel between: at most 6 fit, and greedy finds >= 4.
        assert!((4..=7).contains(&placed.len()), "{placed:?}");
    }

    #[test]
    fn kth_rule_thins_small_icons_only() {
        assert!((0..10).all(|x| kth_cell(x, 0, 80.0)));
        let kept = (0..40).filter(|&x| kth_cell(x, 0, 10.0)).count();
        assert_eq!(kept, 10); // k = 4
    }
}
