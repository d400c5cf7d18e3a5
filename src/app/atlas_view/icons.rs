//! Icon textures: sheets are decoded (and shrunk for fine levels) on a loader thread and uploaded
//! on the UI thread when they arrive, so panning never waits on PNG decoding.
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use eframe::egui::{self, ColorImage, TextureHandle, TextureOptions};

use crate::atlas::manifest::{sheet_path, AtlasManifest};
use crate::atlas::LevelRecord;

/// Texture side of one icon at grid `g`. A 160×160 level never shows an icon much larger than
/// 45 px before the view switches levels (spec §3.3), so fine levels are kept small: the whole
/// 160² level then takes ~100 MB of texture memory instead of 1.6 GB at full size.
pub fn texture_icon_px(grid: usize, icon_size: u32) -> u32 {
    (5120 / grid.max(1) as u32).clamp(32, 128).min(icon_size)
}

/// One icon sheet on the GPU.
pub struct SheetTexture {
    pub texture: TextureHandle,
    /// Side of one icon in texels.
    pub icon_px: u32,
    pub columns: usize,
}

impl SheetTexture {
    /// A copy sharing the same GPU texture (handles are reference counted).
    pub fn shallow(&self) -> SheetTexture {
        SheetTexture {
            texture: self.texture.clone(),
            icon_px: self.icon_px,
            columns: self.columns,
        }
    }

    /// UV rectangle of `tile`, cropped by `crop` (fraction of the side, half per edge) so small
    /// icons lose their borders (spec §3.4).
    pub fn uv(&self, tile: usize, crop: f32) -> egui::Rect {
        let [w, h] = self.texture.size();
        let (col, row) = ((tile % self.columns) as f32, (tile / self.columns) as f32);
        let s = self.icon_px as f32;
        let inset = s * crop * 0.5;
        egui::Rect::from_min_max(
            egui::pos2((col * s + inset) / w as f32, (row * s + inset) / h as f32),
            egui::pos2(
                ((col + 1.0) * s - inset) / w as f32,
                ((row + 1.0) * s - inset) / h as f32,
            ),
        )
    }
}

enum Request {
    Sheet {
        grid: usize,
        sheet: usize,
        path: PathBuf,
        scale: f32,
    },
    /// One icon at full size (the selected cell's large icon).
    Tile {
        key: (usize, usize),
        path: PathBuf,
        x: u32,
        y: u32,
        side: u32,
    },
}

enum Loaded {
    Sheet {
        grid: usize,
        sheet: usize,
        image: Result<ColorImage, String>,
    },
    Tile {
        key: (usize, usize),
        image: Result<ColorImage, String>,
    },
}

pub struct IconCache {
    root: PathBuf,
    icon_size: u32,
    requests: Sender<Request>,
    loaded: Receiver<Loaded>,
    sheets: HashMap<(usize, usize), SheetTexture>,
    pending: HashSet<(usize, usize)>,
    failed: HashSet<(usize, usize)>,
    /// (grid, cell) → full-size icon.
    large: Option<((usize, usize), TextureHandle)>,
    large_pending: Option<(usize, usize)>,
    /// Sheets uploaded so far (for tests and the status line).
    pub uploaded: usize,
}

impl IconCache {
    pub fn new(root: &Path, manifest: &AtlasManifest) -> Self {
        let (req_tx, req_rx) = crossbeam_channel::unbounded::<Request>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        // The thread ends when the cache (the request sender) is dropped.
        std::thread::Builder::new()
            .name("icon-loader".into())
            .spawn(move || {
                for req in req_rx {
                    let out = match req {
                        Request::Sheet {
                            grid,
                            sheet,
                            path,
                            scale,
                        } => Loaded::Sheet {
                            grid,
                            sheet,
                            image: decode(&path, None, scale),
                        },
                        Request::Tile {
                            key,
                            path,
                            x,
                            y,
                            side,
                        } => Loaded::Tile {
                            key,
                            image: decode(&path, Some((x, y, side)), 1.0),
                        },
                    };
                    if done_tx.send(out).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn icon loader");
        IconCache {
            root: root.to_path_buf(),
            icon_size: manifest.icon_size,
            requests: req_tx,
            loaded: done_rx,
            sheets: HashMap::new(),
            pending: HashSet::new(),
            failed: HashSet::new(),
            large: None,
            large_pending: None,
            uploaded: 0,
        }
    }

    /// The sheet's texture if loaded; otherwise asks the loader for it (once) and returns `None`.
    pub fn sheet(&mut self, level: &LevelRecord, sheet: usize) -> Option<&SheetTexture> {
        let key = (level.grid, sheet);
        if !self.sheets.contains_key(&key)
            && !self.pending.contains(&key)
            && !self.failed.contains(&key)
        {
            let px = texture_icon_px(level.grid, self.icon_size);
            let _ = self.requests.send(Request::Sheet {
                grid: level.grid,
                sheet,
                path: sheet_path(&self.root, level.grid, sheet),
                scale: px as f32 / self.icon_size as f32,
            });
            self.pending.insert(key);
        }
        self.sheets.get(&key)
    }

    /// The full-size icon of cell `index` of `level`, requested on first use.
    pub fn large_icon(&mut self, level: &LevelRecord, index: usize) -> Option<&TextureHandle> {
        let key = (level.grid, index);
        if self.large.as_ref().is_some_and(|(k, _)| *k == key) {
            return self.large.as_ref().map(|(_, t)| t);
        }
        if self.large_pending != Some(key) {
            let per = level.icons_per_sheet.max(1);
            let tile = index % per;
            let s = self.icon_size;
            let _ = self.requests.send(Request::Tile {
                key,
                path: sheet_path(&self.root, level.grid, index / per),
                x: (tile % level.sheet_columns) as u32 * s,
                y: (tile / level.sheet_columns) as u32 * s,
                side: s,
            });
            self.large_pending = Some(key);
        }
        None
    }

    /// Uploads whatever the loader finished; returns true when something new arrived.
    pub fn poll(&mut self, ctx: &egui::Context) -> bool {
        let mut any = false;
        while let Ok(done) = self.loaded.try_recv() {
            any = true;
            match done {
                Loaded::Sheet { grid, sheet, image } => {
                    let key = (grid, sheet);
                    if !self.pending.remove(&key) {
                        continue; // invalidated while loading: a newer request follows
                    }
                    match image {
                        Ok(img) => {
                            let texture = ctx.load_texture(
                                format!("sheet-{grid}-{sheet}"),
                                img,
                                TextureOptions::LINEAR,
                            );
                            let px = texture_icon_px(grid, self.icon_size);
                            let columns = (texture.size()[0] as u32 / px).max(1) as usize;
                            self.sheets.insert(
                                key,
                                SheetTexture {
                                    texture,
                                    icon_px: px,
                                    columns,
                                },
                            );
                            self.uploaded += 1;
                        }
                        Err(_) => {
                            self.failed.insert(key);
                        }
                    }
                }
                Loaded::Tile { key, image } => {
                    if self.large_pending == Some(key) {
                        self.large_pending = None;
                        if let Ok(img) = image {
                            let tex = ctx.load_texture(
                                format!("icon-{}-{}", key.0, key.1),
                                img,
                                TextureOptions::LINEAR,
                            );
                            self.large = Some((key, tex));
                        }
                    }
                }
            }
        }
        any
    }

    pub fn is_loading(&self) -> bool {
        !self.pending.is_empty() || self.large_pending.is_some()
    }

    /// A sheet was rewritten: drop its texture so the next frame loads the new file.
    pub fn invalidate(&mut self, grid: usize, sheet: usize) {
        let key = (grid, sheet);
        self.sheets.remove(&key);
        self.pending.remove(&key);
        self.failed.remove(&key);
        if self.large.as_ref().is_some_and(|((g, _), _)| *g == grid) {
            self.large = None;
        }
    }

    /// Forget failures (files may exist now).
    pub fn reset_missing(&mut self) {
        self.failed.clear();
    }
}

fn decode(path: &Path, tile: Option<(u32, u32, u32)>, scale: f32) -> Result<ColorImage, String> {
    let img = image::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgba8();
    let img = match tile {
        Some((x, y, side)) => image::imageops::crop_imm(&img, x, y, side, side).to_image(),
        None if scale < 1.0 => {
            let (w, h) = img.dimensions();
            image::imageops::resize(
                &img,
                ((w as f32 * scale).round() as u32).max(1),
                ((h as f32 * scale).round() as u32).max(1),
                image::imageops::FilterType::Triangle,
            )
        }
        None => img,
    };
    Ok(ColorImage::from_rgba_unmultiplied(
        [img.width() as usize, img.height() as usize],
        img.as_raw(),
    ))
}
