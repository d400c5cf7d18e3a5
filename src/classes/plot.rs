//! The comparison's PNG: the icon grid (the level's poster) with axis captions.
use std::path::Path;

use anyhow::Result;
use image::{Rgb, RgbImage};

use super::job::ComparisonInfo;
use crate::atlas::poster::{caption_width, draw_caption, render_poster, PosterOptions};

/// The `grid` level of the comparison folder `root` framed by a title, "< more A" / "more B >"
/// under the x axis and "1-D t-SNE" beside the y axis.
pub fn comparison_png(root: &Path, grid: usize, info: &ComparisonInfo) -> Result<RgbImage> {
    let poster = render_poster(
        root,
        &PosterOptions {
            grid,
            cell_px: None,
            labels: true,
            density: 1.0,
        },
    )?;
    let (pw, ph) = poster.dimensions();
    let size = 15.0;
    let (left, top, bottom, right) = (26u32, 34u32, 50u32, 10u32);
    let mut img = RgbImage::from_pixel(pw + left + right, ph + top + bottom, Rgb([255, 255, 255]));
    image::imageops::replace(&mut img, &poster, left as i64, top as i64);

    let title = format!(
        "{} vs {} — layer {}, {} samples",
        info.a.name,
        info.b.name,
        info.layer,
        info.rows.len()
    );
    let tw = caption_width(&title, size + 2.0)?;
    draw_caption(
        &mut img,
        &title,
        left + pw.saturating_sub(tw) / 2,
        top - 10,
        size + 2.0,
    )?;

    // x axis: a line with a tick at x = 0, captions at both ends.
    let axis_y = top + ph + 6;
    for x in left..left + pw {
        img.put_pixel(x, axis_y, Rgb([90, 90, 90]));
    }
    for t in 0..5 {
        img.put_pixel(left + pw / 2, axis_y - 2 + t, Rgb([90, 90, 90]));
    }
    let base = axis_y + 20;
    let more_a = format!("< more {}", info.a.name);
    let more_b = format!("more {} >", info.b.name);
    draw_caption(&mut img, &more_a, left, base, size)?;
    let bw = caption_width(&more_b, size)?;
    draw_caption(
        &mut img,
        &more_b,
        (left + pw).saturating_sub(bw),
        base,
        size,
    )?;
    let sub = format!(
        "x = (attribution to {} − to {}) / p{} = {:.3}",
        info.b.name, info.a.name, info.percentile, info.scale
    );
    let sw = caption_width(&sub, size - 3.0)?;
    draw_caption(
        &mut img,
        &sub,
        left + pw.saturating_sub(sw) / 2,
        base + 17,
        size - 3.0,
    )?;

    // y axis caption, drawn horizontally and turned a quarter anticlockwise.
    let ylabel = "positioned by similarity (1-D t-SNE)";
    let yw = caption_width(ylabel, size)? + 4;
    let mut strip = RgbImage::from_pixel(yw, left, Rgb([255, 255, 255]));
    draw_caption(&mut strip, ylabel, 2, left - 7, size)?;
    let turned = image::imageops::rotate270(&strip);
    let y0 = top + ph.saturating_sub(yw) / 2;
    image::imageops::replace(&mut img, &turned, 0, y0 as i64);
    Ok(img)
}
