//! Frame time of the atlas canvas with a full 160×160 level on screen (25,600 icons, labels,
//! outlines, minimap), measured on the CPU side that this app controls: building the frame
//! (`Context::run`, our canvas code and egui's layout) and tessellating it into triangles.
//! The GPU upload and draw are the backend's and are not included. Run with
//! `cargo bench --bench canvas_frame` (scripts/bench runs it).
use std::time::Instant;

use atlas::app::atlas_view::{canvas, AtlasView, ClassFocus, LevelChoice};
use atlas::atlas::manifest::{level_dir, sheet_path, write_cells, AtlasManifest, CellRecord};
use atlas::atlas::LevelRecord;
use atlas::store::npy::{self, Dtype};
use eframe::egui;

const GRID: usize = 160;
const ICON: u32 = 32;
const PER_SHEET: usize = 32;
const CLASSES: usize = 1000;

/// A synthetic atlas with every cell of a 160×160 level occupied and every icon rendered.
fn synthetic_atlas(root: &std::path::Path) -> anyhow::Result<()> {
    let cells: Vec<CellRecord> = (0..GRID * GRID)
        .map(|i| CellRecord {
            x: i % GRID,
            y: i / GRID,
            count: 1 + (i * 7919) % 40,
            top: (0..5)
                .map(|k| ((i + k * 13) % CLASSES, 1.0 / (k + 1) as f32))
                .collect(),
        })
        .collect();
    let dir = level_dir(root, GRID);
    std::fs::create_dir_all(dir.join("icons"))?;
    write_cells(&dir.join("cells.csv"), &cells)?;
    let attr: Vec<f32> = (0..cells.len() * CLASSES)
        .map(|i| ((i * 2654435761) % 1000) as f32 / 1000.0 - 0.3)
        .collect();
    npy::write(
        &dir.join("mean_attr.npy"),
        &attr,
        cells.len(),
        CLASSES,
        Dtype::F32,
    )?;
    let sheets = cells.len().div_ceil(PER_SHEET);
    for s in 0..sheets {
        let img = image::RgbImage::from_fn(10 * ICON, 4 * ICON, |x, y| {
            image::Rgb([(x * 3 + s as u32) as u8, (y * 5) as u8, (x ^ y) as u8])
        });
        img.save(sheet_path(root, GRID, s))?;
    }
    let manifest = AtlasManifest {
        format: atlas::atlas::manifest::FORMAT.into(),
        run: root.into(),
        layer: "synthetic".into(),
        model_file: root.into(),
        points: cells.iter().map(|c| c.count).sum(),
        channels: 8,
        class_names: (0..CLASSES).map(|i| format!("class number {i}")).collect(),
        layout: "synthetic".into(),
        min_count: 1,
        render: "synthetic".into(),
        icon_size: ICON,
        run_rows: None,
        levels: vec![LevelRecord {
            grid: GRID,
            cells: cells.len(),
            icons_per_sheet: PER_SHEET,
            sheet_columns: 10,
        }],
    };
    manifest.save(root)
}

fn frame(
    ctx: &egui::Context,
    view: &mut AtlasView,
    focus: Option<&ClassFocus>,
) -> (f64, f64, usize) {
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1600.0, 1000.0),
        )),
        ..Default::default()
    };
    let t0 = Instant::now();
    let out = ctx.run_ui(input, |ui| {
        egui::CentralPanel::default().show(ui, |ui| {
            canvas::show(ui, view, focus);
        });
    });
    let t1 = Instant::now();
    let prims = ctx.tessellate(out.shapes, out.pixels_per_point);
    let t2 = Instant::now();
    let triangles = prims
        .iter()
        .map(|p| match &p.primitive {
            egui::epaint::Primitive::Mesh(m) => m.indices.len() / 3,
            _ => 0,
        })
        .sum();
    (
        (t1 - t0).as_secs_f64() * 1e3,
        (t2 - t1).as_secs_f64() * 1e3,
        triangles,
    )
}

fn main() -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("atlas-canvas-bench-{}", std::process::id()));
    let t = Instant::now();
    synthetic_atlas(&root)?;
    println!(
        "canvas frame benchmark: synthetic {GRID}x{GRID} level, {} icons ({ICON} px), {CLASSES} classes (made in {:.1} s)",
        GRID * GRID,
        t.elapsed().as_secs_f64()
    );
    let mut view = AtlasView::open(&root)?;
    view.level_choice = LevelChoice::Grid(GRID);
    let ctx = egui::Context::default();
    // Load every sheet (off-thread decode, upload on "UI" frames) before timing.
    let t = Instant::now();
    loop {
        frame(&ctx, &mut view, None);
        if view.icons.uploaded >= GRID * GRID / PER_SHEET {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        anyhow::ensure!(t.elapsed().as_secs() < 300, "icons did not load");
    }
    println!(
        "all {} sheets loaded in {:.1} s",
        view.icons.uploaded,
        t.elapsed().as_secs_f64()
    );
    let focus = ClassFocus {
        class: 17,
        positive: true,
        intensity: 1.0,
    };
    println!(
        "{:<28} {:>10} {:>12} {:>10} {:>10} {:>11}",
        "case", "build ms", "tessellate ms", "total ms", "fps", "triangles"
    );
    for (name, focus) in [
        ("whole level", None),
        ("whole level, class focus", Some(&focus)),
    ] {
        let mut times = vec![];
        let mut tris = 0;
        for _ in 0..30 {
            let (b, t, n) = frame(&ctx, &mut view, focus);
            times.push((b, t));
            tris = n;
        }
        times.sort_by(|a, b| (a.0 + a.1).total_cmp(&(b.0 + b.1)));
        let (b, t) = times[times.len() / 2];
        println!(
            "{name:<28} {b:>10.2} {t:>12.2} {:>10.2} {:>10.0} {tris:>11}",
            b + t,
            1000.0 / (b + t)
        );
        assert_eq!(
            view.drawn_cells,
            GRID * GRID,
            "the whole level is on screen"
        );
    }
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
