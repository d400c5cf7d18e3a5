//! The atlas manifest and the per-level cell tables.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::store::{atomic, csv_io};

pub const FORMAT: &str = "activation-atlas/1";
/// Icons per row in a sheet.
pub const SHEET_COLUMNS: usize = 10;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LevelRecord {
    pub grid: usize,
    pub cells: usize,
    /// Icons per sheet (the render batch size); cell `i` is tile `i % icons_per_sheet` of sheet
    /// `i / icons_per_sheet`, laid out `SHEET_COLUMNS` to a row.
    pub icons_per_sheet: usize,
    pub sheet_columns: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AtlasManifest {
    pub format: String,
    pub run: PathBuf,
    pub layer: String,
    pub model_file: PathBuf,
    pub points: usize,
    pub channels: usize,
    pub class_names: Vec<String>,
    /// Human-readable layout settings, e.g. `umap n_neighbors=50 min_dist=0.05 cosine seed=0`.
    pub layout: String,
    pub min_count: usize,
    /// Human-readable icon settings.
    pub render: String,
    pub icon_size: u32,
    pub levels: Vec<LevelRecord>,
    /// The run layer's row count when the atlas was built. Atlas row `i` is run row
    /// `build::pick_rows(run_rows, Some(points))[i]` (every row, in order, when the two are
    /// equal). `None` in atlases written before this field existed; readers then take the run's
    /// current row count, which gives the same rows as long as the run is unchanged.
    #[serde(default)]
    pub run_rows: Option<usize>,
}

impl AtlasManifest {
    pub fn path(root: &Path) -> PathBuf {
        root.join("manifest.json")
    }

    pub fn load(root: &Path) -> Result<Self> {
        let path = Self::path(root);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not an atlas folder (no manifest.json)",
                root.display()
            )
        })?;
        let m: AtlasManifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid atlas manifest", path.display()))?;
        if m.format != FORMAT {
            bail!("{}: unknown atlas format {:?}", path.display(), m.format);
        }
        Ok(m)
    }

    pub fn save(&self, root: &Path) -> Result<()> {
        atomic::write_bytes(
            &Self::path(root),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }

    pub fn level(&self, grid: usize) -> Option<&LevelRecord> {
        self.levels.iter().find(|l| l.grid == grid)
    }
}

pub fn level_dir(root: &Path, grid: usize) -> PathBuf {
    root.join("levels").join(grid.to_string())
}

pub fn sheet_path(root: &Path, grid: usize, sheet: usize) -> PathBuf {
    kind_sheet_path(root, grid, IconKind::Synthetic, sheet)
}

/// The kinds of icon sheets a level can have. All use the same sheet format (cell `i` is tile
/// `i % icons_per_sheet` of sheet `i / icons_per_sheet`, `SHEET_COLUMNS` to a row, `icon_size`
/// pixels square), so the viewer and the poster read them the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IconKind {
    /// Feature visualizations of the cell's mean activation (`levels/G/icons/`).
    Synthetic,
    /// The cell's most typical real patch: the receptive-field crop of the dataset example whose
    /// activation is most similar (cosine) to the cell mean (`levels/G/exemplars/`).
    Exemplar,
    /// A 2×2 mosaic of the cell's four most typical patches, best top left, then top right,
    /// bottom left, bottom right (`levels/G/mosaics/`).
    Mosaic,
}

impl IconKind {
    pub const ALL: [IconKind; 3] = [IconKind::Synthetic, IconKind::Exemplar, IconKind::Mosaic];

    /// The folder of a level that holds this kind's sheets.
    pub fn dir_name(self) -> &'static str {
        match self {
            IconKind::Synthetic => "icons",
            IconKind::Exemplar => "exemplars",
            IconKind::Mosaic => "mosaics",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IconKind::Synthetic => "synthetic",
            IconKind::Exemplar => "exemplar",
            IconKind::Mosaic => "mosaic",
        }
    }
}

/// Sheet `sheet` of `kind` at grid `grid`.
pub fn kind_sheet_path(root: &Path, grid: usize, kind: IconKind, sheet: usize) -> PathBuf {
    level_dir(root, grid)
        .join(kind.dir_name())
        .join(format!("sheet_{sheet:04}.png"))
}

/// A synthetic sheet that is still being rendered: RGBA, the finished icons (always the first
/// ones of the sheet) opaque, the rest fully transparent. Replaced by [`sheet_path`] when the
/// sheet is complete.
pub fn partial_sheet_path(root: &Path, grid: usize, sheet: usize) -> PathBuf {
    level_dir(root, grid)
        .join(IconKind::Synthetic.dir_name())
        .join(format!("sheet_{sheet:04}.partial.png"))
}

/// How many leading tiles of a partial sheet are finished (opaque at their top-left pixel).
pub fn finished_tiles(
    sheet: &image::RgbaImage,
    icon_size: u32,
    columns: usize,
    tiles: usize,
) -> usize {
    (0..tiles)
        .take_while(|&t| {
            let (x, y) = (
                (t % columns.max(1)) as u32 * icon_size,
                (t / columns.max(1)) as u32 * icon_size,
            );
            x < sheet.width() && y < sheet.height() && sheet.get_pixel(x, y).0[3] == 255
        })
        .count()
}

/// Which icons to build or show: `synthetic`, `exemplar` (the exemplar and the mosaic sheets)
/// or `both`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IconSet {
    Synthetic,
    Exemplar,
    Both,
}

impl IconSet {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "synthetic" => Ok(IconSet::Synthetic),
            "exemplar" | "exemplars" => Ok(IconSet::Exemplar),
            "both" => Ok(IconSet::Both),
            other => bail!("--icons must be synthetic, exemplar or both, not {other:?}"),
        }
    }

    pub fn synthetic(self) -> bool {
        self != IconSet::Exemplar
    }

    pub fn exemplars(self) -> bool {
        self != IconSet::Synthetic
    }
}

/// Tiles `icons` into a sheet `SHEET_COLUMNS` wide and writes it atomically as PNG.
pub fn write_sheet(path: &Path, icons: &[RgbImage]) -> Result<()> {
    let Some(first) = icons.first() else {
        bail!("no icons to write");
    };
    let (w, h) = first.dimensions();
    let cols = SHEET_COLUMNS.min(icons.len()) as u32;
    let rows = icons.len().div_ceil(SHEET_COLUMNS) as u32;
    let mut sheet = RgbImage::from_pixel(cols * w, rows * h, image::Rgb([255, 255, 255]));
    for (i, icon) in icons.iter().enumerate() {
        let (cx, cy) = ((i % SHEET_COLUMNS) as u32, (i / SHEET_COLUMNS) as u32);
        image::imageops::replace(&mut sheet, icon, (cx * w) as i64, (cy * h) as i64);
    }
    write_png(path, &sheet)
}

/// Encodes `image` as PNG and writes it atomically.
pub fn write_png<P, C>(path: &Path, image: &image::ImageBuffer<P, C>) -> Result<()>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut bytes = vec![];
    image.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    atomic::write_bytes(path, &bytes)
}

/// One line of `cells.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct CellRecord {
    /// Column, and row counted from the bottom (Cartesian; screen row = G − 1 − y).
    pub x: usize,
    pub y: usize,
    pub count: usize,
    /// Up to 5 (class index, mean attribution), largest first.
    pub top: Vec<(usize, f32)>,
}

impl CellRecord {
    /// The name of the cell's top class in `names` (empty when it has none).
    pub fn top_name(&self, names: &[String]) -> String {
        self.top
            .first()
            .and_then(|t| names.get(t.0))
            .cloned()
            .unwrap_or_default()
    }
}

const CELLS_HEADER: &str = "index,x,y,count,top_classes";

pub fn write_cells(path: &Path, cells: &[CellRecord]) -> Result<()> {
    csv_io::write_file(path, |w| {
        w.write_record(CELLS_HEADER.split(','))?;
        for (i, c) in cells.iter().enumerate() {
            let top: Vec<String> = c.top.iter().map(|(k, v)| format!("{k}:{v:e}")).collect();
            w.write_record([
                i.to_string(),
                c.x.to_string(),
                c.y.to_string(),
                c.count.to_string(),
                top.join(" "),
            ])?;
        }
        Ok(())
    })
}

pub fn read_cells(path: &Path) -> Result<Vec<CellRecord>> {
    let records = csv_io::read_records(path)?;
    let mut records = records.iter();
    if records
        .next()
        .map(|h| h.iter().collect::<Vec<_>>().join(","))
        != Some(CELLS_HEADER.into())
    {
        bail!("{} is not a cell table", path.display());
    }
    records.map(|f| cell_record(path, f)).collect()
}

fn cell_record(path: &Path, f: &csv_io::StringRecord) -> Result<CellRecord> {
    let bad = || format!("{}: bad line {}", path.display(), csv_io::line_of(f));
    if f.len() != 5 {
        bail!(bad());
    }
    let top = f[4]
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once(':').with_context(bad)?;
            Ok((k.parse()?, v.parse()?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CellRecord {
        x: f[1].parse().with_context(bad)?,
        y: f[2].parse().with_context(bad)?,
        count: f[3].parse().with_context(bad)?,
        top,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_tables_round_trip() {
        let dir = std::env::temp_dir().join(format!("atlas-cells-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cells = vec![
            CellRecord {
                x: 3,
                y: 0,
                count: 12,
                top: vec![(5, 0.25), (1, -1.5e-3)],
            },
            CellRecord {
                x: 0,
                y: 19,
                count: 5,
                top: vec![],
            },
        ];
        let p = dir.join("cells.csv");
        write_cells(&p, &cells).unwrap();
        assert_eq!(read_cells(&p).unwrap(), cells);
        // Byte for byte the format written before the csv crate (atlases keep opening).
        let old = "index,x,y,count,top_classes\n0,3,0,12,5:2.5e-1 1:-1.5e-3\n1,0,19,5,\n";
        assert_eq!(std::fs::read_to_string(&p).unwrap(), old);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
