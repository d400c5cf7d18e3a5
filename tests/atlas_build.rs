//! `atlas build` / `atlas poster` end to end on the bundled images: every stage's output, a
//! cancelled build that resumes to exactly what an uninterrupted build makes, and clear errors.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use atlas::atlas::manifest::{level_dir, read_cells, sheet_path};
use atlas::atlas::poster::{render_poster, PosterOptions};
use atlas::atlas::{spawn_build, AtlasManifest, BuildConfig, BuildEvent};
use atlas::jobs::{JobEvent, JobOutcome};
use atlas::layout::{LayoutMethod, UmapParams};
use atlas::render::RenderSettings;

fn collect_run(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    let out = Command::new(common::atlas_bin())
        .args([
            "collect",
            "--layers",
            "stage6",
            "--samples",
            "6",
            "--limit",
            "12",
            "--images",
        ])
        .arg(common::assets())
        .arg("--model")
        .arg(common::model())
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run
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
    }
}

/// Runs a build; with `cancel_after_sheets`, cancels once that many sheets are written.
fn run_build(
    cfg: BuildConfig,
    cancel_after_sheets: Option<usize>,
) -> Option<(AtlasManifest, usize)> {
    let job = spawn_build(cfg);
    let mut sheets = 0;
    for ev in job.events.iter() {
        match ev {
            JobEvent::Partial(BuildEvent::SheetReady { .. }) => {
                sheets += 1;
                if Some(sheets) == cancel_after_sheets {
                    job.cancel.cancel();
                }
            }
            JobEvent::Finished(JobOutcome::Done(BuildEvent::Finished {
                manifest,
                icons_rendered,
                ..
            })) => return Some((manifest, icons_rendered)),
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
    let dir = common::scratch("atlas_build");
    let run = collect_run(&dir);

    // Uninterrupted build.
    let full = dir.join("full");
    let (m, rendered) = run_build(config(&run, &full), None).expect("not cancelled");
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

    // A build cancelled after its first sheet, then resumed, gives identical files.
    let resumed = dir.join("resumed");
    assert!(
        run_build(config(&run, &resumed), Some(1)).is_none(),
        "cancel was honoured"
    );
    let (m2, rendered2) = run_build(config(&run, &resumed), None).expect("resume finishes");
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

    // A finished atlas rebuilds nothing; other render settings replace the icons.
    let (_, again) = run_build(config(&run, &resumed), None).unwrap();
    assert_eq!(again, 0);
    let mut cfg = config(&run, &resumed);
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
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no layer \"nope\"") && err.contains("stage6"),
        "{err}"
    );
}
