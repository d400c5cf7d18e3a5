//! One atlas on screen: its data (loaded off the UI thread), its camera, and what the user picked
//! in it. Drawing and input handling are in [`canvas`], icon textures in [`icons`], label
//! placement in [`labels`].
pub mod canvas;
pub mod icons;
pub mod labels;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use eframe::egui::{self, Pos2, Vec2};

use crate::atlas::manifest::{
    kind_sheet_path, level_dir, partial_sheet_path, read_cells, sheet_path, AtlasManifest,
    CellRecord, IconKind,
};
use crate::atlas::LevelRecord;
use crate::store::npy;

/// One level of an atlas as read from disk.
pub struct LevelData {
    pub record: LevelRecord,
    pub cells: Vec<CellRecord>,
    /// (x, y) → index into `cells`.
    pub lookup: HashMap<(usize, usize), usize>,
    /// `[cells, classes]` mean attributions (for class focus); empty when the file is missing.
    pub mean_attr: Vec<f32>,
    /// Per sheet: is its PNG on disk (icons rendered)?
    pub sheets_on_disk: Vec<bool>,
    /// Per sheet: is a partial synthetic sheet on disk (the first icons rendered)?
    pub partial_sheets: Vec<bool>,
    /// Per sheet: are its exemplar and mosaic sheets on disk?
    pub exemplar_sheets: Vec<bool>,
    pub mosaic_sheets: Vec<bool>,
}

impl LevelData {
    pub fn grid(&self) -> usize {
        self.record.grid
    }

    pub fn sheet_count(&self) -> usize {
        self.cells
            .len()
            .div_ceil(self.record.icons_per_sheet.max(1))
    }

    /// Whether sheet `sheet` of `kind` can be loaded (a synthetic sheet also when partial).
    pub fn has_sheet(&self, kind: IconKind, sheet: usize) -> bool {
        let on = |v: &Vec<bool>| v.get(sheet).copied().unwrap_or(false);
        match kind {
            IconKind::Synthetic => on(&self.sheets_on_disk) || on(&self.partial_sheets),
            IconKind::Exemplar => on(&self.exemplar_sheets),
            IconKind::Mosaic => on(&self.mosaic_sheets),
        }
    }

    /// Mean attribution of cell `i` to `class`, if the level has attributions.
    pub fn attribution(&self, i: usize, class: usize, classes: usize) -> Option<f32> {
        self.mean_attr.get(i * classes + class).copied()
    }
}

/// Everything an [`AtlasView`] needs from disk; built by [`load_atlas`] on a worker thread.
pub struct LoadedAtlas {
    pub root: PathBuf,
    pub manifest: AtlasManifest,
    pub levels: Vec<LevelData>,
}

/// Reads an atlas folder: manifest, every level's cell table and attributions, and which icon
/// sheets exist. Levels whose cell table is not written yet are left out.
pub fn load_atlas(root: &Path) -> Result<LoadedAtlas> {
    let manifest = AtlasManifest::load(root)?;
    let mut levels = vec![];
    for record in &manifest.levels {
        let dir = level_dir(root, record.grid);
        let cells_path = dir.join("cells.csv");
        if !cells_path.is_file() {
            continue;
        }
        let cells = read_cells(&cells_path)?;
        let lookup = cells
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.x, c.y), i))
            .collect();
        let attr_path = dir.join("mean_attr.npy");
        let mean_attr = if attr_path.is_file() {
            let m = npy::read(&attr_path)?;
            anyhow::ensure!(
                m.rows == cells.len() && m.cols == manifest.class_names.len(),
                "{} has shape {}×{}, expected {}×{}",
                attr_path.display(),
                m.rows,
                m.cols,
                cells.len(),
                manifest.class_names.len()
            );
            m.data
        } else {
            vec![]
        };
        let mut level = LevelData {
            record: record.clone(),
            cells,
            lookup,
            mean_attr,
            sheets_on_disk: vec![],
            partial_sheets: vec![],
            exemplar_sheets: vec![],
            mosaic_sheets: vec![],
        };
        let sheets = level.sheet_count();
        let exist = |f: &dyn Fn(usize) -> PathBuf| (0..sheets).map(|s| f(s).is_file()).collect();
        level.sheets_on_disk = exist(&|s| sheet_path(root, record.grid, s));
        level.partial_sheets = exist(&|s| partial_sheet_path(root, record.grid, s));
        level.exemplar_sheets =
            exist(&|s| kind_sheet_path(root, record.grid, IconKind::Exemplar, s));
        level.mosaic_sheets = exist(&|s| kind_sheet_path(root, record.grid, IconKind::Mosaic, s));
        levels.push(level);
    }
    anyhow::ensure!(
        !levels.is_empty(),
        "{} has no levels with cell tables yet",
        root.display()
    );
    levels.sort_by_key(|l| l.grid());
    Ok(LoadedAtlas {
        root: root.to_path_buf(),
        manifest,
        levels,
    })
}

/// Where the view looks: `center` in atlas units (the unit square, y down as on screen) and
/// `zoom` relative to fitting the whole atlas in the canvas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    pub center: Pos2,
    pub zoom: f32,
}

impl Default for Camera {
    fn default() -> Self {
        Camera {
            center: Pos2::new(0.5, 0.5),
            zoom: 1.0,
        }
    }
}

pub const MIN_ZOOM: f32 = 0.5;
pub const MAX_ZOOM: f32 = 64.0;

impl Camera {
    /// Screen pixels per atlas unit in `rect`.
    pub fn scale(&self, rect: egui::Rect) -> f32 {
        rect.width().min(rect.height()) * 0.96 * self.zoom
    }
    pub fn to_screen(&self, rect: egui::Rect, p: Pos2) -> Pos2 {
        rect.center() + (p - self.center) * self.scale(rect)
    }
    pub fn to_atlas(&self, rect: egui::Rect, p: Pos2) -> Pos2 {
        self.center + (p - rect.center()) / self.scale(rect)
    }
    /// Zooms by `factor`, keeping the atlas point under `anchor` (screen) where it is.
    pub fn zoom_about(&mut self, rect: egui::Rect, anchor: Pos2, factor: f32) {
        let before = self.to_atlas(rect, anchor);
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        let after = self.to_atlas(rect, anchor);
        self.center += before - after;
        self.clamp_center();
    }
    pub fn pan_pixels(&mut self, rect: egui::Rect, delta: Vec2) {
        self.center -= delta / self.scale(rect);
        self.clamp_center();
    }
    /// The camera that fits `area` (atlas units) into `canvas`, as large as it goes: the opening
    /// view, fitted to the occupied part of the atlas rather than to the whole square.
    pub fn fit(area: egui::Rect, canvas: egui::Rect) -> Camera {
        let side = canvas.width().min(canvas.height()).max(1.0);
        let zoom = (canvas.width() / area.width().max(1e-3))
            .min(canvas.height() / area.height().max(1e-3))
            / side;
        Camera {
            center: area.center(),
            zoom: zoom.clamp(MIN_ZOOM, MAX_ZOOM),
        }
    }

    /// The part of the atlas square on screen in `canvas`.
    pub fn visible_area(&self, canvas: egui::Rect) -> egui::Rect {
        egui::Rect::from_min_max(
            self.to_atlas(canvas, canvas.min),
            self.to_atlas(canvas, canvas.max),
        )
        .intersect(egui::Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)))
    }

    fn clamp_center(&mut self) {
        self.center.x = self.center.x.clamp(0.0, 1.0);
        self.center.y = self.center.y.clamp(0.0, 1.0);
    }
}

/// Which grid the canvas draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelChoice {
    /// The published viewer's rule (spec §3.3), from the atlas's size on screen.
    Auto,
    Grid(usize),
}

/// Spec §3.3: `optimalNumIcons = (size·scale/80)/m`, `level = floor(sqrt(optimalNumIcons/20))`
/// with m = 0.5, where `size·scale` is the side of the whole atlas on screen in pixels.
/// The area of `level`'s cells in atlas units (y down), or `None` when it has no cells.
pub fn occupied_area(level: &LevelData) -> Option<egui::Rect> {
    let g = level.grid() as f32;
    let mut area: Option<egui::Rect> = None;
    for c in &level.cells {
        let row = (level.grid() - 1 - c.y) as f32;
        let r = egui::Rect::from_min_max(
            Pos2::new(c.x as f32 / g, row / g),
            Pos2::new((c.x + 1) as f32 / g, (row + 1.0) / g),
        );
        area = Some(area.map_or(r, |a| a.union(r)));
    }
    area
}

/// The fraction of `level`'s grid cells whose centre lies in `visible` (atlas units) that hold a
/// cell (and so an icon): how full the view looks at this level.
pub fn visible_occupancy(level: &LevelData, visible: egui::Rect) -> f32 {
    let g = level.grid();
    // Grid indices i with (i + 0.5)/g in [lo, hi].
    let span = |lo: f32, hi: f32| {
        let first = (lo * g as f32 - 0.5).ceil().max(0.0) as usize;
        let last = (hi * g as f32 - 0.5).floor().min(g as f32 - 1.0);
        (first, (last >= first as f32).then_some(last as usize))
    };
    let ((x0, x1), (r0, r1)) = (
        span(visible.min.x, visible.max.x),
        span(visible.min.y, visible.max.y),
    );
    let (Some(x1), Some(r1)) = (x1, r1) else {
        return 0.0;
    };
    let on_screen = (x1 - x0 + 1) * (r1 - r0 + 1);
    let kept = level
        .cells
        .iter()
        .filter(|c| (x0..=x1).contains(&c.x) && (r0..=r1).contains(&(g - 1 - c.y)))
        .count();
    kept as f32 / on_screen as f32
}

/// The level the viewer draws in `Auto` mode: the published viewer's rule (spec §3.3) gives the
/// wanted grid (20 × 2^level index, so the choice is the same on the published 20/40/80/160
/// levels); the finest level not finer than that is then coarsened while fewer than half of
/// its cells on screen hold an icon (sparse or clumpy layouts, the overview levels).
pub fn choose_level(levels: &[LevelData], atlas_side_px: f32, visible: egui::Rect) -> usize {
    let wanted = 20usize << auto_level_index(atlas_side_px, 8);
    let mut i = levels.iter().rposition(|l| l.grid() <= wanted).unwrap_or(0);
    while i > 0 && visible_occupancy(&levels[i], visible) < 0.5 {
        i -= 1;
    }
    i
}

pub fn auto_level_index(atlas_side_px: f32, levels: usize) -> usize {
    let optimal = (atlas_side_px / 80.0) / 0.5;
    let level = (optimal / 20.0).max(0.0).sqrt().floor() as usize;
    level.min(levels.saturating_sub(1))
}

/// Class focus (spec §5.3): icon opacity follows the cell's mean attribution to one class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassFocus {
    pub class: usize,
    /// `true`: cells that push towards the class; `false`: cells that push away from it.
    pub positive: bool,
    /// The viewer's intensity slider (0.5–2).
    pub intensity: f32,
}

/// Per-cell opacity under `focus`: `clamp(sign·attr / maxAttr, 0, 1)·intensity`, with `maxAttr`
/// the largest `sign·attr` over cells with more than 500 points (spec §5.3), or over all cells
/// when none is that large (small datasets). `None` when the level has no attributions.
pub fn focus_alphas(level: &LevelData, classes: usize, focus: &ClassFocus) -> Option<Vec<f32>> {
    if level.mean_attr.is_empty() {
        return None;
    }
    let sign = if focus.positive { 1.0 } else { -1.0 };
    let values: Vec<f32> = (0..level.cells.len())
        .map(|i| sign * level.attribution(i, focus.class, classes).unwrap_or(0.0))
        .collect();
    let big = |min: usize| {
        values
            .iter()
            .zip(&level.cells)
            .filter(|(_, c)| c.count > min)
            .map(|(v, _)| *v)
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let mut max = big(500);
    // NaN or no positive cell among the large ones: fall back to all cells.
    if max.is_nan() || max <= 0.0 {
        max = big(0);
    }
    Some(
        values
            .iter()
            .map(|v| {
                if max > 0.0 {
                    (v / max).clamp(0.0, 1.0) * focus.intensity
                } else {
                    0.0
                }
                .min(1.0)
            })
            .collect(),
    )
}

/// Which icons the canvas draws (the icon switch above the canvas).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IconView {
    /// Feature visualizations.
    Synthetic,
    /// Each cell's most typical real patch.
    Exemplar,
    /// A 2×2 mosaic of each cell's four most typical patches.
    Mosaic,
    /// Synthetic icon on the left half of each cell, exemplar on the right.
    SideBySide,
    /// Synthetic icons; the cell under the pointer shows its exemplar.
    Hover,
}

impl IconView {
    pub const ALL: [IconView; 5] = [
        IconView::Synthetic,
        IconView::Exemplar,
        IconView::Mosaic,
        IconView::SideBySide,
        IconView::Hover,
    ];

    pub fn label(self) -> &'static str {
        match self {
            IconView::Synthetic => "synthetic",
            IconView::Exemplar => "exemplar",
            IconView::Mosaic => "mosaic",
            IconView::SideBySide => "side by side",
            IconView::Hover => "exemplar on hover",
        }
    }
}

/// Icons drawn in the last frame, per kind (for tests and the status line).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DrawnIcons {
    pub synthetic: usize,
    pub exemplar: usize,
    pub mosaic: usize,
    /// The sheet textures the icons came from.
    pub textures: Vec<egui::TextureId>,
}

impl DrawnIcons {
    pub fn count(&self, kind: IconKind) -> usize {
        match kind {
            IconKind::Synthetic => self.synthetic,
            IconKind::Exemplar => self.exemplar,
            IconKind::Mosaic => self.mosaic,
        }
    }

    pub fn add(&mut self, kind: IconKind, texture: egui::TextureId) {
        match kind {
            IconKind::Synthetic => self.synthetic += 1,
            IconKind::Exemplar => self.exemplar += 1,
            IconKind::Mosaic => self.mosaic += 1,
        }
        if !self.textures.contains(&texture) {
            self.textures.push(texture);
        }
    }
}

/// The state of one atlas on screen.
pub struct AtlasView {
    pub root: PathBuf,
    pub manifest: AtlasManifest,
    pub levels: Vec<LevelData>,
    pub camera: Camera,
    pub level_choice: LevelChoice,
    /// Spec §3.4 density slider (0.2–8).
    pub density: f32,
    pub show_labels: bool,
    pub show_minimap: bool,
    /// (grid, cell index) under the pointer in the last frame.
    pub hovered: Option<(usize, usize)>,
    /// (grid, cell index) the user clicked.
    pub selected: Option<(usize, usize)>,
    /// Points to mark on the atlas (atlas units), e.g. where one image's vectors land.
    pub markers: Vec<Pos2>,
    pub icons: icons::IconCache,
    /// Which icons the canvas draws.
    pub icon_view: IconView,
    /// Icons drawn in the last frame, per kind.
    pub drawn_icons: DrawnIcons,
    /// The grid drawn in the last frame (for tests and the status line).
    pub drawn_grid: usize,
    /// Cells and labels drawn in the last frame.
    pub drawn_cells: usize,
    /// Where the minimap was drawn in the last frame: `None` while the whole atlas is in view
    /// (it would only cover cells there, and show nothing the view does not).
    pub minimap: Option<egui::Rect>,
    pub drawn_labels: Vec<egui::Rect>,
    /// The fraction of the drawn level's cells on screen that held an icon in the last frame.
    pub drawn_occupancy: f32,
    /// The opening camera last fitted to the canvas; `None` until the first frame (or after
    /// *Reset view*), when the canvas fits it. While the user has not moved away from it, a
    /// refresh (more levels arriving during a build) fits it again.
    pub home: Option<Camera>,
}

impl AtlasView {
    pub fn new(loaded: LoadedAtlas) -> Self {
        let icons = icons::IconCache::new(&loaded.root, &loaded.manifest);
        AtlasView {
            root: loaded.root,
            manifest: loaded.manifest,
            levels: loaded.levels,
            camera: Camera::default(),
            level_choice: LevelChoice::Auto,
            density: 1.0,
            show_labels: true,
            show_minimap: true,
            hovered: None,
            selected: None,
            markers: vec![],
            icons,
            // Exemplars by default: on the legibility benchmark (docs/legibility.md) an independent
            // classifier names far more exemplar icons than synthetic ones.
            icon_view: IconView::Exemplar,
            drawn_icons: DrawnIcons::default(),
            drawn_grid: 0,
            drawn_cells: 0,
            minimap: None,
            drawn_labels: vec![],
            drawn_occupancy: 0.0,
            home: None,
        }
    }

    pub fn open(root: &Path) -> Result<Self> {
        Ok(Self::new(load_atlas(root).with_context(|| {
            format!("cannot open the atlas {}", root.display())
        })?))
    }

    pub fn level(&self, grid: usize) -> Option<&LevelData> {
        self.levels.iter().find(|l| l.grid() == grid)
    }

    /// The opening view for a canvas of `rect`: fitted to the area the coarsest level's cells
    /// occupy (the whole square when there are none).
    pub fn home_camera(&self, rect: egui::Rect) -> Camera {
        self.levels
            .first()
            .and_then(occupied_area)
            .map_or_else(Camera::default, |area| Camera::fit(area, rect))
    }

    /// Moves the camera to the opening view.
    pub fn go_home(&mut self, rect: egui::Rect) {
        self.camera = self.home_camera(rect);
        self.home = Some(self.camera);
    }

    /// The level index to draw for a canvas of `rect`.
    pub fn level_index(&self, rect: egui::Rect) -> usize {
        match self.level_choice {
            LevelChoice::Grid(g) => self.levels.iter().position(|l| l.grid() == g).unwrap_or(0),
            LevelChoice::Auto => choose_level(
                &self.levels,
                self.camera.scale(rect),
                self.camera.visible_area(rect),
            ),
        }
    }

    /// The selected cell's record, if any.
    pub fn selected_cell(&self) -> Option<(&LevelData, &CellRecord, usize)> {
        let (g, i) = self.selected?;
        let level = self.level(g)?;
        Some((level, level.cells.get(i)?, i))
    }

    /// Re-reads the cell tables after a build stage finished (e.g. `LevelsReady`), keeping the
    /// camera, the selection and the loaded textures.
    pub fn refresh(&mut self, loaded: LoadedAtlas) {
        self.manifest = loaded.manifest;
        self.levels = loaded.levels;
        if self.home == Some(self.camera) {
            self.home = None;
        }
        self.icons.reset_missing();
    }

    /// A synthetic sheet was written by the build (complete, or partial with more icons): mark
    /// it on disk so the cache loads it.
    pub fn sheet_ready(&mut self, grid: usize, sheet: usize) {
        let complete = sheet_path(&self.root, grid, sheet).is_file();
        if let Some(level) = self.levels.iter_mut().find(|l| l.grid() == grid) {
            if sheet < level.sheets_on_disk.len() {
                if complete {
                    level.sheets_on_disk[sheet] = true;
                } else {
                    level.partial_sheets[sheet] = true;
                }
            }
        }
        self.icons.invalidate(grid, sheet);
    }

    /// Cells of the drawn level as JSON in the published viewer's schema (spec §3.4: x, y, n,
    /// i, v) plus the class names of `i`.
    pub fn cells_json(&self, grid: usize) -> Option<serde_json::Value> {
        let level = self.level(grid)?;
        let names = &self.manifest.class_names;
        let cells: Vec<serde_json::Value> = level
            .cells
            .iter()
            .map(|c| {
                serde_json::json!({
                    "x": c.x,
                    "y": c.y,
                    "n": c.count,
                    "i": c.top.iter().map(|t| t.0).collect::<Vec<_>>(),
                    "v": c.top.iter().map(|t| t.1).collect::<Vec<_>>(),
                    "names": c.top.iter().map(|t| names.get(t.0).cloned().unwrap_or_default()).collect::<Vec<_>>(),
                })
            })
            .collect();
        Some(serde_json::json!({
            "atlas": self.root,
            "layer": self.manifest.layer,
            "grid": grid,
            "points": self.manifest.points,
            "cells": cells,
        }))
    }

    /// Cells of a level as CSV: x, y (from the bottom), count, then the top five classes by
    /// name and value.
    pub fn cells_csv(&self, grid: usize) -> Option<String> {
        let level = self.level(grid)?;
        let mut header = vec!["x".to_string(), "y".into(), "count".into()];
        for k in 1..=5 {
            header.extend([format!("class{k}"), format!("attribution{k}")]);
        }
        let names = &self.manifest.class_names;
        let rows = level.cells.iter().map(|c| {
            let mut row = vec![c.x.to_string(), c.y.to_string(), c.count.to_string()];
            for k in 0..5 {
                match c.top.get(k) {
                    Some((class, v)) => row.extend([
                        names.get(*class).map_or("?", String::as_str).to_string(),
                        v.to_string(),
                    ]),
                    None => row.extend([String::new(), String::new()]),
                }
            }
            row
        });
        crate::store::csv_io::to_string(std::iter::once(header).chain(rows)).ok()
    }
}
