//! Icon textures: sheets are decoded (and shrunk for fine levels) on a loader thread and uploaded
//! on the UI thread when they arrive, so panning never waits on PNG decoding.
//!
//! Every kind of sheet ([`IconKind`]: synthetic, exemplar, mosaic) is cached separately. A
//! synthetic sheet still being rendered is read from its partial file (`sheet_NNNN.partial.png`),
//! and [`SheetTexture::ready`] says how many of its icons are finished; when the build rewrites
//! it, the old texture stays on screen until the new one is uploaded, so icons arrive one batch
//! at a time without flicker.
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use eframe::egui::{self, ColorImage, TextureHandle, TextureOptions};

use crate::atlas::manifest::{
    finished_tiles, kind_sheet_path, partial_sheet_path, AtlasManifest, IconKind,
};
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
    /// Icons of the sheet that are finished: all of them (`usize::MAX`) for a complete sheet,
    /// the first `ready` for a partial one.
    pub ready: usize,
}

impl SheetTexture {
    /// A copy sharing the same GPU texture (handles are reference counted).
    pub fn shallow(&self) -> SheetTexture {
        SheetTexture {
            texture: self.texture.clone(),
            icon_px: self.icon_px,
            columns: self.columns,
            ready: self.ready,
        }
    }

    /// Whether tile `tile` holds a finished icon.
    pub fn has(&self, tile: usize) -> bool {
        tile < self.ready
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

/// Cache key of a sheet: (kind, grid, sheet).
type SheetKey = (IconKind, usize, usize);

enum Request {
    Sheet {
        key: SheetKey,
        path: PathBuf,
        /// Read this instead when `path` is missing (a synthetic sheet still being rendered).
        partial: Option<PathBuf>,
        /// Icons in the sheet (to count the finished ones of a partial sheet).
        tiles: usize,
        columns: usize,
        icon_size: u32,
        scale: f32,
        generation: u64,
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
        key: SheetKey,
        generation: u64,
        /// The image and its finished icons.
        image: Result<(ColorImage, usize), String>,
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
    sheets: HashMap<SheetKey, SheetTexture>,
    /// Requested sheets and the generation of their newest request (older answers are dropped).
    pending: HashMap<SheetKey, u64>,
    generation: u64,
    failed: HashSet<SheetKey>,
    /// Sheets rewritten on disk whose (older) texture is still shown until the new one arrives.
    stale: HashSet<SheetKey>,
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
                            key,
                            path,
                            partial,
                            tiles,
                            columns,
                            icon_size,
                            scale,
                            generation,
                        } => Loaded::Sheet {
                            key,
                            generation,
                            image: match (decode(&path, None, scale), partial) {
                                (Ok(img), _) => Ok((img, usize::MAX)),
                                (Err(e), None) => Err(e),
                                (Err(_), Some(p)) => {
                                    decode_partial(&p, tiles, columns, icon_size, scale)
                                }
                            },
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
            pending: HashMap::new(),
            generation: 0,
            failed: HashSet::new(),
            stale: HashSet::new(),
            large: None,
            large_pending: None,
            uploaded: 0,
        }
    }

    /// The synthetic sheet's texture if loaded; otherwise asks the loader for it (once) and
    /// returns `None`.
    pub fn sheet(&mut self, level: &LevelRecord, sheet: usize) -> Option<&SheetTexture> {
        self.sheet_of(IconKind::Synthetic, level, sheet)
    }

    /// [`Self::sheet`] for any kind of icon. A synthetic sheet that is not complete yet is read
    /// from its partial file.
    pub fn sheet_of(
        &mut self,
        kind: IconKind,
        level: &LevelRecord,
        sheet: usize,
    ) -> Option<&SheetTexture> {
        let key = (kind, level.grid, sheet);
        let wanted = !self.sheets.contains_key(&key) || self.stale.contains(&key);
        if wanted && !self.pending.contains_key(&key) && !self.failed.contains(&key) {
            self.generation += 1;
            let px = texture_icon_px(level.grid, self.icon_size);
            let per = level.icons_per_sheet.max(1);
            let _ = self.requests.send(Request::Sheet {
                key,
                path: kind_sheet_path(&self.root, level.grid, kind, sheet),
                partial: (kind == IconKind::Synthetic)
                    .then(|| partial_sheet_path(&self.root, level.grid, sheet)),
                tiles: per,
                columns: level.sheet_columns,
                icon_size: self.icon_size,
                scale: px as f32 / self.icon_size as f32,
                generation: self.generation,
            });
            self.pending.insert(key, self.generation);
            self.stale.remove(&key);
        }
        self.sheets.get(&key)
    }

    /// The texture id of a loaded sheet (for tests: which texture the canvas drew).
    pub fn texture_id(&self, kind: IconKind, grid: usize, sheet: usize) -> Option<egui::TextureId> {
        self.sheets
            .get(&(kind, grid, sheet))
            .map(|t| t.texture.id())
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
                path: kind_sheet_path(&self.root, level.grid, IconKind::Synthetic, index / per),
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
                Loaded::Sheet {
                    key,
                    generation,
                    image,
                } => {
                    if self.pending.get(&key) != Some(&generation) {
                        continue; // invalidated while loading: a newer request follows
                    }
                    self.pending.remove(&key);
                    let (kind, grid, sheet) = key;
                    match image {
                        Ok((img, ready)) => {
                            let texture = ctx.load_texture(
                                format!("sheet-{}-{grid}-{sheet}", kind.name()),
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
                                    ready,
                                },
                            );
                            self.uploaded += 1;
                        }
                        // A stale texture stays until a readable file replaces it.
                        Err(_) if self.sheets.contains_key(&key) => {}
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

    /// A synthetic sheet was rewritten (more icons, or complete): the next frame loads the new
    /// file; the old texture is drawn until it arrives.
    pub fn invalidate(&mut self, grid: usize, sheet: usize) {
        self.invalidate_kind(IconKind::Synthetic, grid, sheet);
    }

    /// [`Self::invalidate`] for any kind of sheet.
    pub fn invalidate_kind(&mut self, kind: IconKind, grid: usize, sheet: usize) {
        let key = (kind, grid, sheet);
        if self.sheets.contains_key(&key) {
            self.stale.insert(key);
        }
        self.pending.remove(&key);
        self.failed.remove(&key);
        if kind == IconKind::Synthetic && self.large.as_ref().is_some_and(|((g, _), _)| *g == grid)
        {
            self.large = None;
        }
    }

    /// Forget failures (files may exist now).
    pub fn reset_missing(&mut self) {
        self.failed.clear();
    }
}

/// A partial synthetic sheet: the image (unfinished tiles transparent) and its finished icons.
fn decode_partial(
    path: &Path,
    tiles: usize,
    columns: usize,
    icon_size: u32,
    scale: f32,
) -> Result<(ColorImage, usize), String> {
    let img = image::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgba8();
    let ready = finished_tiles(&img, icon_size, columns, tiles);
    Ok((to_color_image(img, None, scale), ready))
}

fn decode(path: &Path, tile: Option<(u32, u32, u32)>, scale: f32) -> Result<ColorImage, String> {
    let img = image::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgba8();
    Ok(to_color_image(img, tile, scale))
}

fn to_color_image(img: image::RgbaImage, tile: Option<(u32, u32, u32)>, scale: f32) -> ColorImage {
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
    ColorImage::from_rgba_unmultiplied([img.width() as usize, img.height() as usize], img.as_raw())
}
