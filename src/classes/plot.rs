//! The comparison's PNG: the icon grid (the level's poster) with axis captions; when the folder
//! has exemplar sheets, the synthetic panel and the exemplar panel side by side.
use std::path::Path;

use anyhow::Result;
use image::{Rgb, RgbImage};

use super::info::ComparisonInfo;
use crate::atlas::manifest::{kind_sheet_path, IconKind};
use crate::atlas::poster::{caption_width, draw_caption, render_poster_kind, PosterOptions};

/// White pixels between the synthetic and the exemplar panel.
pub const PANEL_GAP: u32 = 24;

/// The `grid` level of the comparison folder `root` framed by a title, "< more A" / "more B >"
/// under the x axis and "1-D t-SNE" beside the y axis. With exemplar sheets in the folder
/// (`levels/G/exemplars/`), two panels of the same cells: synthetic icons on the left, exemplar
/// icons (each cell's most typical real patch) on the right, each with its own heading and axis.
pub fn comparison_png(root: &Path, grid: usize, info: &ComparisonInfo) -> Result<RgbImage> {
    let opts = PosterOptions {
        grid,
        cell_px: None,
        labels: true,
        density: 1.0,
    };
    let mut panels = vec![(
        render_poster_kind(root, &opts, IconKind::Synthetic)?,
        "synthetic icons (feature visualization of the cell mean)",
    )];
    if kind_sheet_path(root, grid, IconKind::Exemplar, 0).is_file() {
        panels.push((
            render_poster_kind(root, &opts, IconKind::Exemplar)?,
            "exemplar icons (the real patch nearest the cell mean)",
        ));
    }
    let headed = panels.len() > 1;
    let framed: Vec<RgbImage> = panels
        .iter()
        .map(|(poster, heading)| panel(poster, headed.then_some(*heading), info))
        .collect::<Result<_>>()?;
    let size = 15.0;
    let (left, top, right) = (26u32, 34u32, 10u32);
    let pw: u32 =
        framed.iter().map(|p| p.width()).sum::<u32>() + PANEL_GAP * (framed.len() as u32 - 1);
    let ph = framed.iter().map(|p| p.height()).max().unwrap_or(0);
    let mut img = RgbImage::from_pixel(pw + left + right, ph + top, Rgb([255, 255, 255]));
    let mut x = left;
    for p in &framed {
        image::imageops::replace(&mut img, p, x as i64, top as i64);
        x += p.width() + PANEL_GAP;
    }

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

    // y axis caption, drawn horizontally and turned a quarter anticlockwise.
    let poster_h = panels[0].0.height();
    let head = if headed { PANEL_HEADING } else { 0 };
    let ylabel = "positioned by similarity (1-D t-SNE)";
    let yw = caption_width(ylabel, size)? + 4;
    let mut strip = RgbImage::from_pixel(yw, left, Rgb([255, 255, 255]));
    draw_caption(&mut strip, ylabel, 2, left - 7, size)?;
    let turned = image::imageops::rotate270(&strip);
    let y0 = top + head + poster_h.saturating_sub(yw) / 2;
    image::imageops::replace(&mut img, &turned, 0, y0 as i64);
    Ok(img)
}

/// Height of a panel's heading.
const PANEL_HEADING: u32 = 22;

/// One poster with its heading (when given) and its x axis: a line with a tick at x = 0,
/// "< more A" / "more B >" at its ends and the definition of x under it.
fn panel(poster: &RgbImage, heading: Option<&str>, info: &ComparisonInfo) -> Result<RgbImage> {
    let size = 15.0;
    let (pw, ph) = poster.dimensions();
    let head = if heading.is_some() { PANEL_HEADING } else { 0 };
    let bottom = 50u32;
    let mut img = RgbImage::from_pixel(pw, head + ph + bottom, Rgb([255, 255, 255]));
    if let Some(h) = heading {
        let hw = caption_width(h, size - 1.0)?;
        draw_caption(&mut img, h, pw.saturating_sub(hw) / 2, head - 6, size - 1.0)?;
    }
    image::imageops::replace(&mut img, poster, 0, head as i64);
    let axis_y = head + ph + 6;
    for x in 0..pw {
        img.put_pixel(x, axis_y, Rgb([90, 90, 90]));
    }
    for t in 0..5 {
        img.put_pixel(pw / 2, axis_y - 2 + t, Rgb([90, 90, 90]));
    }
    let base = axis_y + 20;
    let more_a = format!("< more {}", info.a.name);
    let more_b = format!("more {} >", info.b.name);
    draw_caption(&mut img, &more_a, 0, base, size)?;
    let bw = caption_width(&more_b, size)?;
    draw_caption(&mut img, &more_b, pw.saturating_sub(bw), base, size)?;
    let sub = format!(
        "x = (attribution to {} − to {}) / p{} = {:.3}",
        info.b.name, info.a.name, info.percentile, info.scale
    );
    let sw = caption_width(&sub, size - 3.0)?;
    draw_caption(
        &mut img,
        &sub,
        pw.saturating_sub(sw) / 2,
        base + 17,
        size - 3.0,
    )?;
    Ok(img)
}
