//! Compositing as in NB-ADV `composite_img` (spec §8.2): Lanczos-resized background, a square
//! Lanczos-resized patch pasted opaquely at a corner. Every step is byte-exact with Pillow.
use image::RgbImage;

use super::Corner;
use crate::data::resize_lanczos;

/// Background → side×side, Pillow LANCZOS, byte-exact with Pillow's
/// `Image.resize((side, side), Image.LANCZOS)` (aspect ratio is not kept, as in the paper).
pub fn prepare_background(img: &RgbImage, side: u32) -> RgbImage {
    resize_lanczos(img, (side, side))
}

/// `int(ratio·side)`: Python `int()` truncation of the float64 product. Negative or NaN
/// ratios give 0; the result never exceeds `side`.
pub fn patch_side(ratio: f64, side: u32) -> u32 {
    let w = ratio * f64::from(side);
    if w.is_nan() || w <= 0.0 {
        0
    } else {
        (w as u64).min(u64::from(side)) as u32
    }
}

/// Square Lanczos resize of a patch to w×w (Pillow-exact). w == 0 → empty image.
pub fn resize_patch(patch: &RgbImage, w: u32) -> RgbImage {
    resize_lanczos(patch, (w, w))
}

/// Opaque paste (RGB overwrite) with top-left at (x, y); parts outside the image are clipped.
/// Returns a copy.
pub fn paste(bg: &RgbImage, patch: &RgbImage, x: i64, y: i64) -> RgbImage {
    let mut out = bg.clone();
    image::imageops::replace(&mut out, patch, x, y);
    out
}

/// Where a `w`-pixel patch goes at `corner` of a `side`-pixel image:
/// `(int(px·(side−w)), int(py·(side−w)))`.
pub fn corner_origin(corner: Corner, side: u32, w: u32) -> (u32, u32) {
    let (px, py) = corner.offsets();
    let free = side.saturating_sub(w);
    (px * free, py * free)
}

/// Spec §8.2 exactly: `w = patch_side(ratio, side)`, patch resized to w×w, pasted with its
/// top-left at `(int(px·(side−w)), int(py·(side−w)))`. `bg` must already be side×side (see
/// [`prepare_background`]); `side` is its width. Ratio 0 returns the background unchanged.
pub fn composite(bg: &RgbImage, patch: &RgbImage, ratio: f64, corner: Corner) -> RgbImage {
    let side = bg.width();
    debug_assert_eq!(
        bg.width(),
        bg.height(),
        "composite needs a square background"
    );
    let w = patch_side(ratio, side);
    if w == 0 {
        return bg.clone();
    }
    let (x, y) = corner_origin(corner, side, w);
    paste(bg, &resize_patch(patch, w), i64::from(x), i64::from(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_side_truncates_like_python_int() {
        // 0.29 * 224 = 64.96 in float64; int() truncates.
        assert_eq!(patch_side(0.29, 224), 64);
        assert_eq!(patch_side(0.4, 224), 89); // 89.60000000000001
        assert_eq!(patch_side(0.0, 224), 0);
        assert_eq!(patch_side(1.5, 224), 224);
        assert_eq!(patch_side(-0.1, 224), 0);
    }

    #[test]
    fn paste_clips_and_overwrites() {
        let bg = RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]));
        let patch = RgbImage::from_pixel(3, 3, image::Rgb([9, 9, 9]));
        let out = paste(&bg, &patch, 2, -1);
        let painted: Vec<(u32, u32)> = out
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 == [9, 9, 9])
            .map(|(x, y, _)| (x, y))
            .collect();
        assert_eq!(painted, vec![(2, 0), (3, 0), (2, 1), (3, 1)]);
        assert_eq!(bg.get_pixel(2, 0).0, [1, 2, 3], "the input is not modified");
    }

    #[test]
    fn composite_places_the_patch_at_each_corner() {
        let bg = RgbImage::from_pixel(10, 10, image::Rgb([0, 0, 0]));
        let patch = RgbImage::from_pixel(5, 5, image::Rgb([200, 100, 50]));
        for corner in Corner::ALL {
            let out = composite(&bg, &patch, 0.3, corner);
            let (x0, y0) = corner_origin(corner, 10, 3);
            for (x, y, p) in out.enumerate_pixels() {
                let inside = (x0..x0 + 3).contains(&x) && (y0..y0 + 3).contains(&y);
                assert_eq!(p.0 == [200, 100, 50], inside, "{corner} at ({x},{y})");
            }
        }
    }
}
