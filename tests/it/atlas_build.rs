//! `atlas build` / `atlas poster` end to end on the bundled images: every stage's output, a
//! cancelled build that resumes to exactly what an uninterrupted build makes, and clear errors;
//! synthetic sheets written progressively (partial sheets, resumed mid-sheet); exemplar icons
//! equal to patches cut independently with Pillow/torchvision from the example nearest the cell
//! mean (re-derived here from the run's .npy files), for a squashed and a resize-cropped run;
//! the `--icons` flags of `build` and `poster`.
use crate::common;
use crate::common::bundled::BundledRun;

use std::path::{Path, PathBuf};
use std::process::Command;

use atlas::atlas::manifest::{
    finished_tiles, kind_sheet_path, level_dir, partial_sheet_path, read_cells, sheet_path,
    IconKind,
};
use atlas::atlas::poster::{render_poster, PosterOptions};
use atlas::atlas::{spawn_build, AtlasManifest, BuildConfig, BuildEvent};
use atlas::jobs::{JobEvent, JobOutcome};
use atlas::layout::{LayoutMethod, UmapParams};
use atlas::render::RenderSettings;

/// Stage6 of 12 bundled images, 6 positions each (shared: the builds only read it).
fn collect_run() -> &'static Path {
    BundledRun {
        layers: "stage6",
        samples: 6,
        limit: Some(12),
    }
    .shared()
}

fn config(run: &Path, out: &Path) -> BuildConfig {
    BuildConfig {
        run: run.to_path_buf(),
        layer: "stage6".into(),
        out: out.to_path_buf(),
        model: Some(common::model()),
        layout: LayoutMethod::Umap(UmapParams {
            n_neighbors: 10,
            ..Default::default()
        }),
        grids: vec![4, 2],
        min_count: 2,
        render: RenderSettings {
            steps: 3,
            batch: 3,
            ..RenderSettings::preview()
        },
        icon_levels: None,
        max_points: None,
        overview_levels: false,
    }
}

/// Runs a build; with `cancel_after_sheets`, cancels once that many sheets are written.
fn run_build(
    cfg: BuildConfig,
    cancel_after_sheets: Option<usize>,
) -> Option<(AtlasManifest, usize)> {
    run_build_events(cfg, cancel_after_sheets).map(|(m, n, _)| (m, n))
}

/// The manifest, the icons rendered, and the (grid, sheet) of every `SheetReady` in order.
type BuildOutcome = (AtlasManifest, usize, Vec<(usize, usize)>);

/// [`run_build`], also returning the (grid, sheet) of every `SheetReady` in order.
fn run_build_events(cfg: BuildConfig, cancel_after_sheets: Option<usize>) -> Option<BuildOutcome> {
    let job = spawn_build(cfg);
    let mut sheets = vec![];
    for ev in job.events.iter() {
        match ev {
            JobEvent::Partial(BuildEvent::SheetReady { grid, sheet }) => {
                sheets.push((grid, sheet));
                if Some(sheets.len()) == cancel_after_sheets {
                    job.cancel.cancel();
                }
            }
            JobEvent::Finished(JobOutcome::Done(BuildEvent::Finished {
                manifest,
                icons_rendered,
                ..
            })) => return Some((manifest, icons_rendered, sheets)),
            JobEvent::Finished(JobOutcome::Cancelled) => return None,
            JobEvent::Finished(other) => panic!("build failed: {other:?}"),
            _ => {}
        }
    }
    panic!("the build job ended without a result")
}

fn all_sheets(root: &Path, m: &AtlasManifest) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = vec![];
    for l in &m.levels {
        for s in 0..l.cells.div_ceil(l.icons_per_sheet) {
            let p = sheet_path(root, l.grid, s);
            let bytes = std::fs::read(&p).unwrap_or_else(|_| panic!("missing {}", p.display()));
            v.push((p.strip_prefix(root).unwrap().to_path_buf(), bytes));
        }
    }
    v
}

#[test]
fn build_resume_and_poster() {
    // Resumed and uninterrupted builds are compared byte for byte: on the CPU, where rendering is
    // deterministic (cuDNN's backward passes are not).
    let _cpu = common::set_env_var("ATLAS_DEVICE", "cpu");
    let dir = common::scratch("atlas_build");
    let run = collect_run();

    // Uninterrupted build.
    let full = dir.join("full");
    let (m, rendered, events) = run_build_events(config(run, &full), None).expect("not cancelled");
    assert_eq!(m.points, 72, "12 images × 6 samples");
    assert_eq!(
        m.levels.iter().map(|l| l.grid).collect::<Vec<_>>(),
        vec![2, 4]
    );
    let total: usize = m.levels.iter().map(|l| l.cells).sum();
    assert_eq!(rendered, total, "every kept cell gets an icon");
    for l in &m.levels {
        let cells = read_cells(&level_dir(&full, l.grid).join("cells.csv")).unwrap();
        assert_eq!(cells.len(), l.cells);
        assert!(cells
            .iter()
            .all(|c| c.count >= 2 && c.x < l.grid && c.y < l.grid));
        assert!(
            cells.iter().all(|c| c.top.len() == 5),
            "top classes per cell"
        );
        // Coarse cells are unions of fine cells: counts add up to the same kept total or less.
        let kept: usize = cells.iter().map(|c| c.count).sum();
        assert!(kept <= 72 && kept > 0);
    }
    let level2: usize = read_cells(&level_dir(&full, 2).join("cells.csv"))
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum();
    assert_eq!(
        level2, 72,
        "a 2×2 grid with min count 2 keeps every point here"
    );
    let full_sheets = all_sheets(&full, &m);
    // Icons arrive progressively: the first sheet of each level is written once per render
    // batch (1, 1, 2, … icons), coarse level first; no partial sheet is left at the end.
    let l2 = &m.levels[0];
    let batches = atlas::atlas::build::sheet_batches(l2.icons_per_sheet.min(l2.cells), true);
    assert!(batches.len() > 1 && batches[0] == 1, "{batches:?}");
    assert_eq!(
        events.iter().filter(|e| **e == (2, 0)).count(),
        batches.len(),
        "sheet 0 of 2×2 written once per batch: {events:?}"
    );
    assert_eq!(
        events[0],
        (2, 0),
        "the coarse level comes first: {events:?}"
    );
    assert_eq!(
        events.last().map(|e| e.0),
        Some(4),
        "the fine level comes last: {events:?}"
    );
    for l in &m.levels {
        for s in 0..l.cells.div_ceil(l.icons_per_sheet) {
            assert!(!partial_sheet_path(&full, l.grid, s).exists());
        }
    }

    // A build cancelled after its first sheet (a partial one), then resumed, gives identical
    // files.
    let resumed = dir.join("resumed");
    assert!(
        run_build(config(run, &resumed), Some(1)).is_none(),
        "cancel was honoured"
    );
    // Exemplars came before any synthetic icon; the first sheet is partial (whole batches of
    // finished icons, the rest transparent) and not complete yet.
    for l in &m.levels {
        for s in 0..l.cells.div_ceil(l.icons_per_sheet) {
            assert!(kind_sheet_path(&resumed, l.grid, IconKind::Exemplar, s).is_file());
            assert!(kind_sheet_path(&resumed, l.grid, IconKind::Mosaic, s).is_file());
        }
    }
    // The first sheet is normally still partial: whole batches of finished icons, the rest
    // transparent (unless the build outran the cancel and finished it).
    let per = l2.icons_per_sheet.min(l2.cells);
    let final0 = image::open(sheet_path(&full, 2, 0)).unwrap().to_rgb8();
    let icon = m.icon_size;
    let tile = |img: &image::RgbaImage, t: usize| {
        let (x, y) = ((t % 10) as u32 * icon, (t / 10) as u32 * icon);
        image::imageops::crop_imm(img, x, y, icon, icon).to_image()
    };
    let full0 = image::DynamicImage::ImageRgb8(final0.clone()).to_rgba8();
    if let Ok(partial) = image::open(partial_sheet_path(&resumed, 2, 0)) {
        let partial = partial.to_rgba8();
        assert!(!sheet_path(&resumed, 2, 0).exists());
        assert_eq!(partial.dimensions(), final0.dimensions());
        let ready = finished_tiles(&partial, icon, 10, per);
        assert!(
            ready >= 1 && ready < per,
            "{ready} of {per} icons in the partial sheet"
        );
        for t in 0..per {
            if t < ready {
                assert_eq!(tile(&partial, t), tile(&full0, t), "partial icon {t}");
            } else {
                assert!(tile(&partial, t).pixels().all(|p| p.0[3] == 0), "tile {t}");
            }
        }
    } else {
        println!("note: the build finished sheet 0 before the cancel reached it");
        assert!(sheet_path(&resumed, 2, 0).is_file());
    }
    let (m2, rendered2) = run_build(config(run, &resumed), None).expect("resume finishes");
    assert!(
        rendered2 < total,
        "the resume re-rendered everything ({rendered2} of {total})"
    );
    assert_eq!(m2, m);
    assert_eq!(
        all_sheets(&resumed, &m2),
        full_sheets,
        "resumed icons differ"
    );

    // A build killed after the first batch of a sheet (its partial sheet, as written: the
    // first icon opaque, the rest transparent) resumes from there to the same sheet.
    let killed = dir.join("killed");
    common::copy_dir(&full, &killed);
    std::fs::remove_file(sheet_path(&killed, 2, 0)).unwrap();
    let mut partial = image::RgbaImage::new(final0.width(), final0.height());
    image::imageops::replace(&mut partial, &tile(&full0, 0), 0, 0);
    partial.save(partial_sheet_path(&killed, 2, 0)).unwrap();
    let (_, redone) = run_build(config(run, &killed), None).unwrap();
    assert_eq!(
        redone,
        per - 1,
        "only the unfinished icons of the sheet are rendered"
    );
    assert!(!partial_sheet_path(&killed, 2, 0).exists());
    assert_eq!(all_sheets(&killed, &m), full_sheets, "resumed mid-sheet");

    // A finished atlas rebuilds nothing; other render settings replace the icons.
    let (_, again) = run_build(config(run, &resumed), None).unwrap();
    assert_eq!(again, 0);
    let mut cfg = config(run, &resumed);
    cfg.render.steps = 4;
    cfg.icon_levels = Some(vec![2]);
    let (_, redone) = run_build(cfg, None).unwrap();
    assert_eq!(redone, m.levels[0].cells);

    // Poster: one icon-sized cell per grid cell, labels drawn.
    let poster = render_poster(
        &full,
        &PosterOptions {
            grid: 4,
            cell_px: None,
            labels: true,
            density: 1.0,
        },
    )
    .unwrap();
    assert_eq!(poster.dimensions(), (320, 320));
    let plain = render_poster(
        &full,
        &PosterOptions {
            grid: 4,
            cell_px: None,
            labels: false,
            density: 1.0,
        },
    )
    .unwrap();
    let differing = poster
        .pixels()
        .zip(plain.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(differing > 100, "labels changed only {differing} pixels");

    // CLI errors name the problem.
    let out = Command::new(common::atlas_bin())
        .args(["poster", "--level", "3", "--out"])
        .arg(dir.join("p.png"))
        .arg("--atlas")
        .arg(&full)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no 3×3 level") && err.contains("[2, 4]"),
        "{err}"
    );
    let out = Command::new(common::atlas_bin())
        .args(["build", "--layer", "nope", "--out"])
        .arg(dir.join("x"))
        .arg("--run")
        .arg(run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no layer \"nope\"") && err.contains("stage6"),
        "{err}"
    );
}

/// The first `n` bundled photographs re-encoded as PNG (class folders kept): Pillow and the app
/// then decode the same pixels, so patches can be compared byte for byte.
fn png_copies(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("png-images");
    let assets = common::assets();
    for f in common::image_files(&assets).into_iter().take(n) {
        let dst = root.join(f.strip_prefix(&assets).unwrap().with_extension("png"));
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        image::open(&f).unwrap().to_rgb8().save(&dst).unwrap();
    }
    root
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

/// One atlas row's origin, read here from `provenance.csv`: (image path, y, x).
fn provenance(run: &Path) -> Vec<(String, i64, i64)> {
    let text = std::fs::read_to_string(run.join("provenance.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(atlas::collect::run_folder::parse_csv_line)
        .filter(|f| f[1] == "stage6")
        .map(|f| (f[3].clone(), f[5].parse().unwrap(), f[6].parse().unwrap()))
        .collect()
}

/// Checks every exemplar and mosaic tile of `atlas` (built from `run` with preprocessing
/// `preprocess`, every run row) against patches cut by `tests/reference/exemplar_ref.py` from
/// the examples this function ranks itself: cosine similarity (f64) of each member row of
/// `acts.npy` to the member mean, members binned here from `layout_normalized.npy`. Cells whose
/// top ranks are closer than 1e-6 (where f32 rounding could reorder them) are left out. Returns
/// the number of exemplar tiles checked; with `control`, also checks that the other preprocessing gives
/// different pixels somewhere.
fn check_exemplars(
    dir: &Path,
    atlas_dir: &Path,
    run: &Path,
    preprocess: &str,
    control: &str,
) -> usize {
    use atlas::store::npy;
    let m = AtlasManifest::load(atlas_dir).unwrap();
    let acts = npy::read(&run.join("layers").join("stage6").join("acts.npy")).unwrap();
    let layout = npy::read(&atlas_dir.join("layout_normalized.npy")).unwrap();
    assert_eq!((acts.rows, layout.rows), (m.points, m.points));
    let prov = provenance(run);
    let idx = atlas::analysis::DatasetIndex::load(atlas_dir).unwrap();
    let icon = m.icon_size;
    let (a, b) = (icon / 2, icon - icon / 2);
    // stage6 is a 7×7 grid on 224 px: the patch is 2 strides (64 px) centred on the position's
    // cell, shifted to stay inside the image.
    let rect = |y: i64, x: i64| {
        let start = |p: i64| ((p as f64 + 0.5) * 32.0 - 32.0).round().clamp(0.0, 160.0) as u32;
        [start(x), start(y), 64, 64]
    };
    let mut entries = vec![];
    // (grid, cell, slot (4 = the exemplar), file)
    let mut wanted = vec![];
    for level in &m.levels {
        let g = level.grid;
        let cells = read_cells(&level_dir(atlas_dir, g).join("cells.csv")).unwrap();
        for (i, cell) in cells.iter().enumerate() {
            let bin = |p: f32| ((p * g as f32).floor() as usize).min(g - 1);
            let members: Vec<usize> = (0..m.points)
                .filter(|&r| {
                    let p = layout.row(r);
                    (bin(p[0]), bin(p[1])) == (cell.x, cell.y)
                })
                .collect();
            assert_eq!(members.len(), cell.count, "cell {i} of {g}×{g}");
            let mut mean = vec![0f64; acts.cols];
            for &r in &members {
                for (s, v) in mean.iter_mut().zip(acts.row(r)) {
                    *s += *v as f64 / members.len() as f64;
                }
            }
            let cos = |r: usize| {
                let v = acts.row(r);
                let dot: f64 = v.iter().zip(&mean).map(|(a, b)| *a as f64 * b).sum();
                let nv = v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
                let nm = mean.iter().map(|a| a * a).sum::<f64>().sqrt();
                dot / (nv * nm)
            };
            let mut ranked: Vec<(usize, f64)> = members.iter().map(|&r| (r, cos(r))).collect();
            ranked.sort_by(|p, q| q.1.total_cmp(&p.1).then(p.0.cmp(&q.0)));
            let clear = |k: usize| {
                (0..k.min(ranked.len())).all(|j| {
                    ranked
                        .get(j + 1)
                        .is_none_or(|next| ranked[j].1 - next.1 > 1e-6)
                })
            };
            let mut add = |slot: usize, row: usize, out: [u32; 2]| {
                let (path, y, x) = &prov[row];
                let file =
                    dir.join(format!("ref-{preprocess}-{g}-{i}-{slot}.png").replace(':', "_"));
                entries.push(serde_json::json!({
                    "path": path, "preprocess": preprocess, "input": [224, 224],
                    "rect": rect(*y, *x), "out": out, "file": file,
                }));
                wanted.push((g, i, slot, file));
            };
            if clear(1) {
                add(4, ranked[0].0, [icon, icon]);
            }
            // The app's dataset-examples list starts with the same rows.
            let app_rows: Vec<usize> = idx
                .cell_examples(g, cell.x, cell.y, 4)
                .iter()
                .map(|e| e.row)
                .collect();
            let k = (1..=4).rev().find(|&k| clear(k)).unwrap_or(0);
            assert_eq!(
                app_rows[..k.min(app_rows.len())],
                ranked.iter().take(k).map(|r| r.0).collect::<Vec<_>>()[..],
                "cell {i} of {g}×{g}"
            );
            if clear(4) {
                for (k, &(row, _)) in ranked.iter().take(4).enumerate() {
                    let w = if k % 2 == 0 { a } else { b };
                    let h = if k / 2 == 0 { a } else { b };
                    add(k, row, [w, h]);
                }
                for k in ranked.len()..4 {
                    wanted.push((g, i, k, PathBuf::new())); // an empty quadrant
                }
            }
            if control.is_empty() || !clear(1) {
                continue;
            }
            // The same patch cut from the other preprocessing, to show the check would notice.
            let (path, y, x) = &prov[ranked[0].0];
            let file = dir.join(format!("ctl-{g}-{i}.png"));
            entries.push(serde_json::json!({
                "path": path, "preprocess": control, "input": [224, 224],
                "rect": rect(*y, *x), "out": [icon, icon], "file": file,
            }));
            wanted.push((g, i, 99, file));
        }
    }
    let list = dir.join(format!("entries-{}.json", preprocess.replace(':', "_")));
    std::fs::write(&list, serde_json::Value::Array(entries).to_string()).unwrap();
    common::run_reference("exemplar_ref.py", &[os("--entries"), list.as_os_str()]);

    let per = m.levels[0].icons_per_sheet;
    let (mut checked, mut control_differs, mut controls) = (0, 0, 0);
    for (g, i, slot, file) in &wanted {
        let kind = if *slot >= 4 {
            IconKind::Exemplar
        } else {
            IconKind::Mosaic
        };
        let sheet = image::open(kind_sheet_path(atlas_dir, *g, kind, i / per))
            .unwrap()
            .to_rgb8();
        let t = i % per;
        let (tx, ty) = ((t % 10) as u32 * icon, (t / 10) as u32 * icon);
        let (qx, qy, w, h) = match slot {
            0 => (0, 0, a, a),
            1 => (a, 0, b, a),
            2 => (0, a, a, b),
            3 => (a, a, b, b),
            _ => (0, 0, icon, icon),
        };
        let got = image::imageops::crop_imm(&sheet, tx + qx, ty + qy, w, h).to_image();
        if file.as_os_str().is_empty() {
            assert!(
                got.pixels().all(|p| p.0 == [235, 235, 235]),
                "empty quadrant"
            );
            continue;
        }
        let want = image::open(file).unwrap().to_rgb8();
        if *slot == 99 {
            controls += 1;
            control_differs += (got != want) as usize;
            continue;
        }
        assert_eq!(got.dimensions(), want.dimensions());
        let diff = got
            .pixels()
            .zip(want.pixels())
            .flat_map(|(p, q)| p.0.iter().zip(q.0).map(|(x, y)| x.abs_diff(y)))
            .max()
            .unwrap();
        assert_eq!(
            diff, 0,
            "{preprocess}: {kind:?} tile of cell {i} of {g}×{g} (slot {slot}) differs from Pillow's \
             patch by up to {diff}"
        );
        checked += (*slot == 4) as usize;
    }
    if !control.is_empty() {
        assert!(
            controls > 0 && control_differs > 0,
            "{control_differs} of {controls}"
        );
    }
    checked
}

#[test]
fn exemplar_icons_are_the_typical_patches_and_the_icons_flags_work() {
    let dir = common::scratch("atlas_exemplars");
    let images = png_copies(&dir, 12);
    let model = common::model();

    // A squashed run (the CLI's preprocessing) ...
    let run = dir.join("run");
    common::atlas_ok(&[
        os("collect"),
        os("--layers"),
        os("stage6"),
        os("--samples"),
        os("6"),
        os("--images"),
        images.as_os_str(),
        os("--model"),
        model.as_os_str(),
        os("--out"),
        run.as_os_str(),
    ]);
    // ... and a resize-cropped one.
    let run_rc = dir.join("run-rc");
    let job = atlas::collect::spawn_collect(atlas::collect::CollectConfig {
        model: model.clone(),
        images: images.clone(),
        layers: vec!["stage6".into()],
        out: run_rc.clone(),
        samples_per_image: 6,
        preprocess: atlas::data::Preprocess::ResizeShorterCrop { resize: 256 },
        ..Default::default()
    });
    loop {
        match job.events.recv().unwrap() {
            JobEvent::Finished(JobOutcome::Done(_)) => break,
            JobEvent::Finished(other) => panic!("collect failed: {other:?}"),
            _ => {}
        }
    }

    let build = |run: &Path, out: &Path, extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            os("build"),
            os("--run"),
            run.as_os_str(),
            os("--layer"),
            os("stage6"),
            os("--out"),
            out.as_os_str(),
            os("--grids"),
            os("2,4"),
            os("--min-count"),
            os("1"),
            os("--neighbors"),
            os("10"),
            os("--batch"),
            os("4"),
        ];
        args.extend(extra.iter().map(os));
        common::atlas_ok(&args)
    };
    // `--icons exemplar`: exemplar and mosaic sheets, no synthetic ones, no model run.
    let ex = dir.join("atlas");
    let t = std::time::Instant::now();
    build(&run, &ex, &["--icons", "exemplar"]);
    println!(
        "exemplar build (layout, grids, exemplars): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let m = AtlasManifest::load(&ex).unwrap();
    for l in &m.levels {
        let sheets = l.cells.div_ceil(l.icons_per_sheet);
        assert!(sheets >= 1);
        for s in 0..sheets {
            for kind in [IconKind::Exemplar, IconKind::Mosaic] {
                let img = image::open(kind_sheet_path(&ex, l.grid, kind, s)).unwrap();
                let n = (l.cells - s * l.icons_per_sheet).min(l.icons_per_sheet);
                assert_eq!(
                    (img.width(), img.height()),
                    (
                        n.min(10) as u32 * m.icon_size,
                        n.div_ceil(10) as u32 * m.icon_size
                    ),
                    "{kind:?} sheet {s} of {0}×{0} has the synthetic sheets' format",
                    l.grid
                );
            }
            assert!(!sheet_path(&ex, l.grid, s).exists(), "no synthetic icons");
        }
    }
    // Tiles against Pillow, for both runs (the resize-cropped one must not be squashed).
    let n = check_exemplars(&dir, &ex, &run, "squash", "");
    let ex_rc = dir.join("atlas-rc");
    build(&run_rc, &ex_rc, &["--icons", "exemplar"]);
    let n_rc = check_exemplars(&dir, &ex_rc, &run_rc, "resize_shorter_crop:256", "squash");
    let total: usize = m.levels.iter().map(|l| l.cells).sum();
    let total_rc: usize = AtlasManifest::load(&ex_rc)
        .unwrap()
        .levels
        .iter()
        .map(|l| l.cells)
        .sum();
    println!("exemplars checked: {n} of {total} cells, {n_rc} of {total_rc} (resize-crop)");
    assert!(
        10 * n >= 9 * total && 10 * n_rc >= 9 * total_rc,
        "checked only {n} of {total} and {n_rc} of {total_rc} cells (ambiguous rankings?)"
    );

    // `--icons synthetic` adds synthetic sheets and leaves the exemplars as they are; a default
    // (`both`) build then has nothing to do.
    let before: Vec<Vec<u8>> = (0..m.levels[1].cells.div_ceil(4))
        .map(|s| std::fs::read(kind_sheet_path(&ex, 4, IconKind::Exemplar, s)).unwrap())
        .collect();
    let out = build(&run, &ex, &["--icons", "synthetic", "--steps", "2"]);
    assert!(
        out.contains(&format!("{total} icons rendered now")),
        "{out}"
    );
    for l in &m.levels {
        for s in 0..l.cells.div_ceil(l.icons_per_sheet) {
            assert!(sheet_path(&ex, l.grid, s).is_file());
        }
    }
    let after: Vec<Vec<u8>> = (0..m.levels[1].cells.div_ceil(4))
        .map(|s| std::fs::read(kind_sheet_path(&ex, 4, IconKind::Exemplar, s)).unwrap())
        .collect();
    assert_eq!(before, after, "the synthetic build rewrote the exemplars");
    let out = build(&run, &ex, &["--steps", "2"]);
    assert!(out.contains(" 0 icons rendered now"), "{out}");

    // Posters: `both` is the synthetic poster and the exemplar poster side by side.
    let poster = |icons: &str| {
        let p = dir.join(format!("poster-{icons}.png"));
        common::atlas_ok(&[
            os("poster"),
            os("--atlas"),
            ex.as_os_str(),
            os("--level"),
            os("4"),
            os("--icons"),
            os(icons),
            os("--out"),
            p.as_os_str(),
        ]);
        image::open(&p).unwrap().to_rgb8()
    };
    let (syn, exm, mos, both) = (
        poster("synthetic"),
        poster("exemplar"),
        poster("mosaic"),
        poster("both"),
    );
    let side = 4 * m.icon_size;
    assert_eq!(syn.dimensions(), (side, side));
    assert_eq!(exm.dimensions(), (side, side));
    assert_ne!(syn, exm);
    assert_ne!(exm, mos);
    let gap = atlas::atlas::poster::PANEL_GAP;
    assert_eq!(both.dimensions(), (2 * side + gap, side));
    assert_eq!(
        image::imageops::crop_imm(&both, 0, 0, side, side).to_image(),
        syn
    );
    assert_eq!(
        image::imageops::crop_imm(&both, side + gap, 0, side, side).to_image(),
        exm
    );
    // The default is the synthetic poster.
    let p = dir.join("poster-default.png");
    common::atlas_ok(&[
        os("poster"),
        os("--atlas"),
        ex.as_os_str(),
        os("--level"),
        os("4"),
        os("--out"),
        p.as_os_str(),
    ]);
    assert_eq!(image::open(&p).unwrap().to_rgb8(), syn);

    // Bad values and missing icons are named.
    for (args, want) in [
        (
            vec![os("poster"), os("--atlas"), ex.as_os_str()],
            "synthetic, exemplar, mosaic or both",
        ),
        (
            vec![
                os("build"),
                os("--layer"),
                os("stage6"),
                os("--run"),
                run.as_os_str(),
            ],
            "synthetic, exemplar or both",
        ),
    ] {
        let out = Command::new(common::atlas_bin())
            .args(&args)
            .args(["--icons", "pretty", "--out"])
            .arg(dir.join("x"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
    let syn_only = dir.join("atlas-syn");
    build(
        &run,
        &syn_only,
        &["--icons", "synthetic", "--steps", "2", "--icon-levels", "2"],
    );
    assert!(!kind_sheet_path(&syn_only, 2, IconKind::Exemplar, 0).exists());
    let out = Command::new(common::atlas_bin())
        .args(["poster", "--level", "2", "--icons", "exemplar", "--atlas"])
        .arg(&syn_only)
        .arg("--out")
        .arg(dir.join("y.png"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--icons exemplar"),
        "{err}"
    );
}
