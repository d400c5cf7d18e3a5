//! Which spatial positions are sampled: a pure function of (seed, image, layer, draw), so that a
//! resumed or repeated run samples exactly the same positions as an uninterrupted one.

/// SplitMix64 finaliser: a good 64-bit mix, enough for sampling positions.
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

/// The `draw`-th sampled position of `image` in layer `layer`, at least `margin` cells away from
/// every border ("we avoid the edges due to boundary effects"; spec §1.3 recommends a margin on
/// both sides). When the layer is too small for the margin, the margin shrinks so a position
/// always exists.
pub fn sample_position(
    seed: u64,
    image: u64,
    layer: u64,
    draw: u64,
    height: i64,
    width: i64,
    margin: i64,
) -> Position {
    let h = mix(seed ^ mix(image ^ mix(layer.wrapping_mul(0x1000_0001) ^ mix(draw))));
    let pick = |r: u64, n: i64| {
        let m = margin.min((n - 1) / 2).max(0);
        let span = (n - 2 * m) as u64;
        m + (r % span) as i64
    };
    Position {
        y: pick(h >> 32, height),
        x: pick(h & 0xFFFF_FFFF, width),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_deterministic_interior_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for image in 0..2000 {
            let p = sample_position(7, image, 2, 0, 14, 14, 1);
            assert_eq!(p, sample_position(7, image, 2, 0, 14, 14, 1));
            assert!((1..=12).contains(&p.y) && (1..=12).contains(&p.x), "{p:?}");
            seen.insert((p.y, p.x));
        }
        assert_eq!(
            seen.len(),
            144,
            "every interior cell of a 14x14 grid gets drawn"
        );
        assert_ne!(
            sample_position(7, 0, 2, 0, 14, 14, 1),
            sample_position(8, 0, 2, 0, 14, 14, 1)
        );
    }

    #[test]
    fn tiny_layers_still_get_a_position() {
        let p = sample_position(1, 3, 0, 0, 1, 2, 1);
        assert_eq!(p.y, 0);
        assert!((0..2).contains(&p.x));
    }
}
