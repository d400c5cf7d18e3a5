//! Which spatial positions are sampled: a pure function of (seed, image, layer, draw), so that a
//! resumed or repeated run samples exactly the same positions as an uninterrupted one.

/// SplitMix64 finalizer: a good 64-bit mix, enough for sampling positions.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A (row, column) position in a layer's `height × width` grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub y: i64,
    pub x: i64,
}

/// The interior of one axis of length `n`: the first index and how many there are, keeping
/// `margin` cells free at both ends ("we avoid the edges due to boundary effects"; spec §1.3).
/// When the axis is too small for the margin, the margin shrinks so a position always exists.
fn interior(n: i64, margin: i64) -> (i64, u64) {
    let m = margin.min((n - 1) / 2).max(0);
    (m, (n - 2 * m).max(1) as u64)
}

/// How many distinct interior positions a `height × width` layer has with this margin.
pub fn interior_positions(height: i64, width: i64, margin: i64) -> u64 {
    interior(height, margin).1 * interior(width, margin).1
}

/// The positions sampled for `image` in layer `layer`: `count` distinct interior positions, drawn
/// without replacement (a partial Fisher–Yates shuffle of the interior), or every interior
/// position once when `count` exceeds them. Draw `d` is element `d`: a pure function of
/// (seed, image, layer), so a resumed or repeated run samples exactly the same positions, and
/// integer-only, so every machine agrees.
pub fn sample_positions(
    seed: u64,
    image: u64,
    layer: u64,
    count: u64,
    height: i64,
    width: i64,
    margin: i64,
) -> Vec<Position> {
    let (y0, ny) = interior(height, margin);
    let (x0, nx) = interior(width, margin);
    let n = ny * nx;
    let k = count.min(n);
    let stream = mix(seed ^ mix(image ^ mix(layer.wrapping_mul(0x1000_0001))));
    // Sparse Fisher–Yates: only the swapped slots are stored, so a 112×112 layer costs O(k).
    let mut swapped = std::collections::HashMap::<u64, u64>::new();
    let mut out = Vec::with_capacity(k as usize);
    for i in 0..k {
        let j = i + mix(stream ^ mix(i)) % (n - i);
        let at_j = *swapped.get(&j).unwrap_or(&j);
        let at_i = *swapped.get(&i).unwrap_or(&i);
        swapped.insert(j, at_i);
        out.push(Position {
            y: y0 + (at_j / nx) as i64,
            x: x0 + (at_j % nx) as i64,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_deterministic_interior_distinct_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for image in 0..2000 {
            let p = sample_positions(7, image, 2, 16, 14, 14, 1);
            assert_eq!(p, sample_positions(7, image, 2, 16, 14, 14, 1));
            assert_eq!(p.len(), 16);
            let distinct: std::collections::HashSet<_> = p.iter().map(|q| (q.y, q.x)).collect();
            assert_eq!(
                distinct.len(),
                16,
                "image {image}: a position repeats in {p:?}"
            );
            for q in &p {
                assert!((1..=12).contains(&q.y) && (1..=12).contains(&q.x), "{q:?}");
            }
            seen.insert((p[0].y, p[0].x));
        }
        assert_eq!(
            seen.len(),
            144,
            "every interior cell of a 14x14 grid is drawn first somewhere"
        );
        assert_ne!(
            sample_positions(7, 0, 2, 4, 14, 14, 1),
            sample_positions(8, 0, 2, 4, 14, 14, 1)
        );
    }

    #[test]
    fn more_draws_than_positions_take_each_position_once() {
        // A 7×7 layer with margin 1 has 25 interior positions.
        assert_eq!(interior_positions(7, 7, 1), 25);
        let p = sample_positions(3, 5, 0, 40, 7, 7, 1);
        let mut all: Vec<(i64, i64)> = p.iter().map(|q| (q.y, q.x)).collect();
        all.sort_unstable();
        let expected: Vec<(i64, i64)> = (1..6).flat_map(|y| (1..6).map(move |x| (y, x))).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn a_prefix_of_draws_is_stable() {
        // Asking for fewer draws gives the first draws of a longer request.
        let long = sample_positions(11, 9, 1, 20, 28, 28, 1);
        let short = sample_positions(11, 9, 1, 5, 28, 28, 1);
        assert_eq!(&long[..5], &short[..]);
    }

    #[test]
    fn tiny_layers_still_get_a_position() {
        let p = sample_positions(1, 3, 0, 1, 1, 2, 1);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].y, 0);
        assert!((0..2).contains(&p[0].x));
    }
}
