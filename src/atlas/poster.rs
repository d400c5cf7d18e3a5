//! `atlas poster`: one level of an atlas as a PNG, icons placed as in the notebooks (column x,
//! row G−1−y), sized by density (spec §3.4) and labelled with each cell's top class.
use std::collections::HashMap;
use std::path::Path;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use anyhow::{bail, Context, Result};
use image::{Rgb, RgbImage};

use super::manifest::{kind_sheet_path, level_dir, read_cells, AtlasManifest, IconKind};

#[derive(Clone, Debug)]
pub struct PosterOptions {
    pub grid: usize,
    /// Cell side in pixels on the poster (default: the icon size).
    pub cell_px: Option<u32>,
    pub labels: bool,
    /// The viewer's density slider (spec §3.4: icon side = cell · min(1, sqrt(density·n/avg))).
    pub density: f32,
}

/// Which icons a poster shows (`atlas poster --icons`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PosterIcons {
    /// One kind of icon.
    Only(IconKind),
    /// The synthetic poster and the exemplar poster side by side (synthetic on the left),
    /// [`PANEL_GAP`] white pixels apart.
    Both,
}

/// White pixels between the panels of a [`PosterIcons::Both`] poster.
pub const PANEL_GAP: u32 = 16;

impl PosterIcons {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "synthetic" => Ok(PosterIcons::Only(IconKind::Synthetic)),
            "exemplar" | "exemplars" => Ok(PosterIcons::Only(IconKind::Exemplar)),
            "mosaic" => Ok(PosterIcons::Only(IconKind::Mosaic)),
            "both" => Ok(PosterIcons::Both),
            other => bail!("--icons must be synthetic, exemplar, mosaic or both, not {other:?}"),
        }
    }
}

/// Renders the poster of level `grid` with synthetic icons.
pub fn render_poster(root: &Path, opts: &PosterOptions) -> Result<RgbImage> {
    render_poster_kind(root, opts, IconKind::Synthetic)
}

/// Renders the poster of level `grid` with the icons of `icons`.
pub fn render_poster_icons(
    root: &Path,
    opts: &PosterOptions,
    icons: PosterIcons,
) -> Result<RgbImage> {
    match icons {
        PosterIcons::Only(kind) => render_poster_kind(root, opts, kind),
        PosterIcons::Both => {
            let left = render_poster_kind(root, opts, IconKind::Synthetic)?;
            let right = render_poster_kind(root, opts, IconKind::Exemplar)?;
            let mut out = RgbImage::from_pixel(
                left.width() + PANEL_GAP + right.width(),
                left.height().max(right.height()),
                Rgb([255, 255, 255]),
            );
            image::imageops::replace(&mut out, &left, 0, 0);
            image::imageops::replace(&mut out, &right, (left.width() + PANEL_GAP) as i64, 0);
            Ok(out)
        }
    }
}

/// Renders the poster of level `grid` with the icons of `kind`.
pub fn render_poster_kind(root: &Path, opts: &PosterOptions, kind: IconKind) -> Result<RgbImage> {
    let manifest = AtlasManifest::load(root)?;
    let level = manifest.level(opts.grid).with_context(|| {
        let have: Vec<usize> = manifest.levels.iter().map(|l| l.grid).collect();
        format!(
            "the atlas has no {0}×{0} level (it has {have:?})",
            opts.grid
        )
    })?;
    let cells = read_cells(&level_dir(root, opts.grid).join("cells.csv"))?;
    let g = opts.grid as u32;
    let px = opts.cell_px.unwrap_or(manifest.icon_size).max(8);
    let icon = manifest.icon_size;
    let mut poster = RgbImage::from_pixel(g * px, g * px, Rgb([255, 255, 255]));
    let avg = manifest.points as f32 / (g * g) as f32;
    let mut sheets: HashMap<usize, RgbImage> = HashMap::new();
    let mut missing = 0usize;
    for (i, cell) in cells.iter().enumerate() {
        let (col, row) = (cell.x as u32, g - 1 - cell.y as u32);
        let frac = (opts.density * cell.count as f32 / avg).sqrt().min(1.0);
        let side = ((px as f32 * frac).round() as u32).max(2);
        let sheet = i / level.icons_per_sheet;
        let tile = i % level.icons_per_sheet;
        if let std::collections::hash_map::Entry::Vacant(slot) = sheets.entry(sheet) {
            match image::open(kind_sheet_path(root, opts.grid, kind, sheet)) {
                Ok(img) => {
                    slot.insert(img.to_rgb8());
                }
                Err(_) => {
                    missing += 1;
                    continue;
                }
            }
        }
        let sheet_img = &sheets[&sheet];
        let (tx, ty) = (
            (tile % level.sheet_columns) as u32 * icon,
            (tile / level.sheet_columns) as u32 * icon,
        );
        let tile_img = image::imageops::crop_imm(sheet_img, tx, ty, icon, icon).to_image();
        let scaled =
            image::imageops::resize(&tile_img, side, side, image::imageops::FilterType::Triangle);
        let off = (px - side) / 2;
        image::imageops::replace(
            &mut poster,
            &scaled,
            (col * px + off) as i64,
            (row * px + off) as i64,
        );
    }
    if missing == cells.len() && !cells.is_empty() {
        match kind {
            IconKind::Synthetic => bail!(
                "level {0}×{0} has no icons yet: build them with `atlas build … --icon-levels {0}`",
                opts.grid
            ),
            _ => bail!(
                "level {0}×{0} has no {1} icons yet: build them with `atlas build … --icons \
                 exemplar --icon-levels {0}`",
                opts.grid,
                kind.name()
            ),
        }
    }
    draw_grid_lines(&mut poster, g, px);
    if opts.labels {
        let font = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)?;
        let size = (px as f32 * 0.15).clamp(9.0, 14.0);
        // Label every k-th cell so labels do not overlap (spec §3.4).
        let kx = (40.0 / px as f32).ceil().max(1.0) as usize;
        let ky = (60.0 / px as f32).ceil().max(1.0) as usize;
        for cell in &cells {
            if cell.x % kx != 0 || cell.y % ky != 0 {
                continue;
            }
            let Some(&(class, _)) = cell.top.first() else {
                continue;
            };
            let name = manifest
                .class_names
                .get(class)
                .map(String::as_str)
                .unwrap_or("?");
            let (col, row) = (cell.x as u32, g - 1 - cell.y as u32);
            draw_label(
                &mut poster,
                &font,
                size,
                name,
                col * px + 2,
                (row + 1) * px - 2,
                px - 4,
            );
        }
    }
    Ok(poster)
}

/// Width in pixels of `text` in the poster font at `size` px.
pub fn caption_width(text: &str, size: f32) -> Result<u32> {
    let font = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)?;
    let scaled = font.as_scaled(PxScale::from(size));
    let mut x = 0.0f32;
    let mut prev = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(p) = prev {
            x += scaled.kern(p, id);
        }
        x += scaled.h_advance(id);
        prev = Some(id);
    }
    Ok(x.ceil() as u32)
}

/// Draws `text` in the poster font (dark grey on a light band) with its baseline at `bottom`,
/// starting at `left`; for captions around posters (the class comparison's axes).
pub fn draw_caption(
    img: &mut RgbImage,
    text: &str,
    left: u32,
    bottom: u32,
    size: f32,
) -> Result<()> {
    let font = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)?;
    let max_w = img.width().saturating_sub(left);
    draw_label(img, &font, size, text, left, bottom, max_w);
    Ok(())
}

/// Thin light-grey outline of every cell (the viewer's 30 % grey).
fn draw_grid_lines(img: &mut RgbImage, g: u32, px: u32) {
    let (w, h) = img.dimensions();
    for i in 0..=g {
        let p = (i * px).min(w - 1);
        for t in 0..h {
            blend(img, p, t, [128, 128, 128], 0.3);
        }
        let p = (i * px).min(h - 1);
        for t in 0..w {
            blend(img, t, p, [128, 128, 128], 0.3);
        }
    }
}

fn blend(img: &mut RgbImage, x: u32, y: u32, c: [u8; 3], a: f32) {
    let p = img.get_pixel_mut(x, y);
    for (v, c) in p.0.iter_mut().zip(c) {
        *v = (*v as f32 * (1.0 - a) + c as f32 * a).round() as u8;
    }
}

/// Dark text on a translucent white band, baseline at `bottom`, clipped to `max_w` pixels.
fn draw_label(
    img: &mut RgbImage,
    font: &FontRef,
    size: f32,
    text: &str,
    left: u32,
    bottom: u32,
    max_w: u32,
) {
    let scaled = font.as_scaled(PxScale::from(size));
    let mut glyphs = vec![];
    let mut x = 0.0f32;
    let mut prev = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(p) = prev {
            x += scaled.kern(p, id);
        }
        let adv = scaled.h_advance(id);
        if x + adv > max_w as f32 {
            break;
        }
        glyphs.push(id.with_scale_and_position(
            size,
            ab_glyph::point(left as f32 + x, bottom as f32 - scaled.descent()),
        ));
        x += adv;
        prev = Some(id);
    }
    let band_top = (bottom as f32 - scaled.height()).max(0.0) as u32;
    let (w, h) = img.dimensions();
    for yy in band_top..bottom.min(h) {
        for xx in left.saturating_sub(1)..(left + x.ceil() as u32 + 1).min(w) {
            blend(img, xx, yy, [255, 255, 255], 0.7);
        }
    }
    for glyph in glyphs {
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, cov| {
                let (px, py) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                    blend(img, px as u32, py as u32, [20, 20, 20], cov.min(1.0));
                }
            });
        }
    }
}
