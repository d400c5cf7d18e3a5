//! Class tools (spec §6–7) on a small run of the bundled images (head layer, 6 positions per
//! image): the filters, the comparison's sample set and x axis against an independent numpy
//! reference (`tests/reference/class_tools_ref.py`), the class-atlas and comparison jobs' atlas
//! folders (viewer-compatible, full-layer whitening, cached reruns), the class-pair similarity
//! on a hand-made atlas, and the CLI end to end.
use crate::common;
use crate::common::bundled::BundledRun;

use std::path::Path;
use std::process::Command;

use atlas::analysis::DatasetIndex;
use atlas::atlas::manifest::{
    kind_sheet_path, level_dir, read_cells, sheet_path, write_cells, CellRecord, IconKind,
};
use atlas::atlas::{AtlasManifest, BuildEvent};
use atlas::classes::{
    class_pairs, class_rows, comparison_rows, comparison_x, ClassAtlasConfig, ClassEvent,
    ClassFilter, CompareConfig, PairClasses, PairWeighting, Selection,
};
use atlas::jobs::{JobEvent, JobHandle, JobOutcome};
use atlas::layout::{LayoutMethod, UmapParams};
use atlas::render::RenderSettings;
use atlas::store::npy;

const LAYER: &str = "head";

/// The run shared by the tests (collected once per process: ~30 s on 2 cores).
fn shared_run() -> &'static Path {
    BundledRun {
        layers: LAYER,
        samples: 6,
        limit: None,
    }
    .shared()
}

fn attr_of(run: &Path) -> npy::Matrix {
    npy::read(&run.join("layers").join(LAYER).join("attr.npy")).unwrap()
}

/// The two classes that win the most rows (so every filter has something to select).
fn two_classes(attr: &npy::Matrix) -> (usize, usize) {
    let (order, wins) = common::classes_by_wins(attr);
    assert!(wins[order[1]] >= 3, "too few winners: {:?}", &wins[..5]);
    (order[0], order[1])
}

/// Runs the numpy reference; returns its JSON.
fn reference(run: &Path, args: &[String], dir: &Path, tag: &str) -> serde_json::Value {
    let out = dir.join(format!("ref_{tag}.json"));
    let mut all: Vec<std::ffi::OsString> = vec![
        "--run".into(),
        run.into(),
        "--layer".into(),
        LAYER.into(),
        "--out".into(),
        out.clone().into(),
    ];
    all.extend(args.iter().map(Into::into));
    let refs: Vec<&std::ffi::OsStr> = all.iter().map(|s| s.as_os_str()).collect();
    common::run_reference("class_tools_ref.py", &refs);
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn as_rows(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn as_f32(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn filters_and_x_axis_match_the_numpy_reference() {
    let run = shared_run();
    let dir = common::scratch("class_tools_ref");
    let attr = attr_of(run);
    let k = attr.cols;
    let (a, b) = two_classes(&attr);
    let mut checked = 0;
    for (filter, n) in [
        (ClassFilter::Winner, 2000),
        (ClassFilter::Magnitude, 20),
        (ClassFilter::Magnitude, 2000), // every row ranked: only the positive ones stay
        (ClassFilter::Both, 20),
        (ClassFilter::Both, 60),
    ] {
        for selection in [Selection::Union, Selection::Concat] {
            let mut args = vec![
                "--filter".to_string(),
                filter.name().to_string(),
                "--n".into(),
                n.to_string(),
            ];
            if selection == Selection::Concat {
                args.push("--keep-duplicates".into());
            }
            let tag = format!("{}_{n}_{selection:?}", filter.name());
            // One class.
            for c in [a, b] {
                let mut ca = args.clone();
                ca.extend(["--class".to_string(), c.to_string()]);
                let r = reference(run, &ca, &dir, &format!("{tag}_{c}"));
                let ours = class_rows(&attr.data, k, c, filter, n, selection);
                assert_eq!(
                    ours,
                    as_rows(&r["rows"]),
                    "class {c}, {filter:?} n={n} {selection:?}"
                );
                assert!(!ours.is_empty());
            }
            // The comparison: sample set and x.
            let mut cb = args.clone();
            cb.extend([
                "--class".to_string(),
                a.to_string(),
                "--b".into(),
                b.to_string(),
            ]);
            let r = reference(run, &cb, &dir, &format!("{tag}_cmp"));
            let rows = comparison_rows(&attr.data, k, a, b, filter, n, selection);
            assert_eq!(rows, as_rows(&r["rows"]), "comparison {tag}");
            let (x, scale) = comparison_x(&attr.data, k, &rows, a, b, 99.0);
            let want = as_f32(&r["x"]);
            let err = x
                .iter()
                .zip(&want)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "x differs by {err} ({tag})");
            assert!((scale - r["scale"].as_f64().unwrap()).abs() < 1e-6 * scale.max(1.0));
            assert!(x.iter().all(|v| (-1.0..=1.0).contains(v)));
            assert!(
                x.iter().any(|&v| v == 1.0 || v == -1.0) || rows.len() < 100,
                "the 1% beyond p99 are clipped"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
    // Concat keeps duplicates where both filters pick a row; union never repeats one.
    let concat = class_rows(&attr.data, k, a, ClassFilter::Both, 60, Selection::Concat);
    let union = class_rows(&attr.data, k, a, ClassFilter::Both, 60, Selection::Union);
    assert!(concat.len() > union.len(), "winners are among the top 60");
    let mut u = concat.clone();
    u.sort_unstable();
    u.dedup();
    assert_eq!(u, union);
}

fn quick_render() -> RenderSettings {
    RenderSettings {
        steps: 3,
        batch: 8,
        ..RenderSettings::preview()
    }
}

/// Follows a class job; returns (final event, partial events).
fn follow(job: JobHandle<ClassEvent>) -> (ClassEvent, Vec<ClassEvent>) {
    let mut partials = vec![];
    for ev in job.events.iter() {
        match ev {
            JobEvent::Partial(p) => partials.push(p),
            JobEvent::Finished(JobOutcome::Done(r)) => return (r, partials),
            JobEvent::Finished(other) => panic!("class job failed: {other:?}"),
            _ => {}
        }
    }
    panic!("the job ended without a result")
}

#[test]
fn class_atlas_and_comparison_folders() {
    let run = shared_run();
    let dir = common::scratch("class_tools_jobs");
    let attr = attr_of(run);
    let acts = npy::read(&run.join("layers").join(LAYER).join("acts.npy")).unwrap();
    let (k, c) = (attr.cols, acts.cols);
    let (a, b) = two_classes(&attr);

    // --- class atlas -------------------------------------------------------------------------
    let out = dir.join("class");
    let mut cfg = ClassAtlasConfig::new(run, LAYER, &a.to_string(), &out);
    cfg.n = 80;
    cfg.grid = 4; // 80-odd points: an 8×8 grid would keep almost no cell of ≥ 5
    cfg.layout = LayoutMethod::Umap(UmapParams {
        n_neighbors: 10,
        min_dist: 0.02,
        ..Default::default()
    });
    cfg.render = quick_render();
    cfg.model = Some(common::model());
    let t = std::time::Instant::now();
    let (done, partials) = follow(atlas::classes::spawn_class_atlas(cfg.clone()));
    eprintln!("class atlas: {:.1} s", t.elapsed().as_secs_f64());
    let ClassEvent::ClassAtlasDone(r) = done else {
        panic!("expected a class atlas")
    };
    assert!(partials
        .iter()
        .any(|p| matches!(p, ClassEvent::Selected { rows, .. } if *rows == r.info.rows.len())));
    assert!(partials.iter().any(|p| matches!(
        p,
        ClassEvent::Build {
            event: BuildEvent::SheetReady { .. },
            ..
        }
    )));
    let want = class_rows(&attr.data, k, a, ClassFilter::Both, 80, Selection::Union);
    assert_eq!(r.info.rows, want);
    let info: atlas::classes::ClassAtlasInfo =
        serde_json::from_str(&std::fs::read_to_string(out.join("class_atlas.json")).unwrap())
            .unwrap();
    assert_eq!(info, r.info);
    let m = AtlasManifest::load(&out).unwrap();
    assert_eq!(m.points, want.len());
    assert!(m.layout.starts_with("umap n_neighbors=10 min_dist=0.02"));
    let level = m.level(4).expect("the 4×4 level");
    assert!(level.cells > 0, "no cell kept");
    let cells = read_cells(&level_dir(&out, 4).join("cells.csv")).unwrap();
    assert!(cells.iter().all(|cell| cell.count >= 5));
    // Each cell's mean activation is the mean of the source rows it holds.
    let layout = npy::read(&out.join("layout_normalized.npy")).unwrap();
    let means = npy::read(&level_dir(&out, 4).join("mean_acts.npy")).unwrap();
    for (i, cell) in cells.iter().enumerate() {
        let members: Vec<usize> = (0..layout.rows)
            .filter(|&j| {
                let p = layout.row(j);
                atlas::grid::cell_index(p[0], 4) == cell.x
                    && atlas::grid::cell_index(p[1], 4) == cell.y
            })
            .collect();
        assert_eq!(members.len(), cell.count);
        for ch in [0, c / 2, c - 1] {
            let mean: f64 = members
                .iter()
                .map(|&j| acts.row(want[j])[ch] as f64)
                .sum::<f64>()
                / members.len() as f64;
            assert!((means.row(i)[ch] as f64 - mean).abs() < 1e-4, "cell {i}");
        }
    }
    assert!(sheet_path(&out, 4, 0).is_file());
    assert!(out.join("class_atlas.png").is_file());
    // Icons whitened with the full layer's matrix, not the subset's.
    let full = atlas::render::whitening_matrix(&acts.data, acts.rows, c, 1e-3).unwrap();
    let full = Vec::<f32>::try_from(full.contiguous().view([-1])).unwrap();
    let saved = npy::read(&out.join("whitening.npy")).unwrap();
    let diff = saved
        .data
        .iter()
        .zip(&full)
        .map(|(p, q)| (p - q).abs() / q.abs().max(1.0))
        .fold(0f32, f32::max);
    assert!(
        diff < 1e-4,
        "whitening.npy is not the full layer's ({diff})"
    );
    // The viewer's dataset examples open the class atlas unchanged and find the source images.
    let index = DatasetIndex::load(&out).expect("DatasetIndex opens a class atlas");
    assert_eq!(index.len(), want.len());
    let prov = std::fs::read_to_string(run.join("provenance.csv")).unwrap();
    let prov: Vec<&str> = prov.lines().skip(1).collect();
    for j in [0, want.len() / 2, want.len() - 1] {
        let src = atlas::collect::run_folder::parse_csv_line(prov[want[j]]);
        assert_eq!(index.row_image(j), Path::new(&src[3]), "atlas row {j}");
        assert_eq!(index.activation(j), acts.row(want[j]));
    }
    // A rerun is served from the cache.
    let (again, _) = follow(atlas::classes::spawn_class_atlas(cfg.clone()));
    let ClassEvent::ClassAtlasDone(again) = again else {
        panic!()
    };
    assert_eq!(again.icons_rendered, 0);
    // Another class into the same folder redoes everything (same count, other rows).
    let mut other = cfg.clone();
    other.class = b.to_string();
    let (o, _) = follow(atlas::classes::spawn_class_atlas(other));
    let ClassEvent::ClassAtlasDone(o) = o else {
        panic!()
    };
    assert_eq!(o.info.class.index, b);
    assert!(o.icons_rendered > 0 || o.manifest.levels[0].cells == 0);
    assert_ne!(
        npy::read(&out.join("layout.npy")).unwrap().data.len(),
        0,
        "layout rewritten"
    );

    // --- comparison --------------------------------------------------------------------------
    let out = dir.join("compare");
    let mut cfg = CompareConfig::new(run, LAYER, &a.to_string(), &b.to_string(), &out);
    cfg.n = 40;
    cfg.render = quick_render();
    cfg.model = Some(common::model());
    cfg.tsne.n_iter = 500;
    let t = std::time::Instant::now();
    let (done, _) = follow(atlas::classes::spawn_compare(cfg));
    eprintln!("comparison: {:.1} s", t.elapsed().as_secs_f64());
    let ClassEvent::ComparisonDone(r) = done else {
        panic!("expected a comparison")
    };
    let info: atlas::classes::ComparisonInfo =
        serde_json::from_str(&std::fs::read_to_string(out.join("comparison.json")).unwrap())
            .unwrap();
    assert_eq!(info, r.info);
    let refj = reference(
        run,
        &[
            "--class".into(),
            a.to_string(),
            "--b".into(),
            b.to_string(),
            "--n".into(),
            "40".into(),
        ],
        &dir,
        "job_cmp",
    );
    assert_eq!(info.rows, as_rows(&refj["rows"]));
    let err = info
        .x
        .iter()
        .zip(as_f32(&refj["x"]))
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-5, "comparison.json x differs from numpy by {err}");
    assert!(info.y.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(
        info.y.iter().copied().fold(f32::INFINITY, f32::min),
        0.0,
        "normalized y spans [0, 1]"
    );
    // The folder's layout is ((x + 1) / 2, y) and the cells are the 10×10 bins of (x, y).
    let layout = npy::read(&out.join("layout_normalized.npy")).unwrap();
    let mut counts = vec![0usize; 100];
    for j in 0..layout.rows {
        assert!((layout.row(j)[0] - (info.x[j] + 1.0) / 2.0).abs() < 1e-6);
        assert_eq!(layout.row(j)[1], info.y[j]);
        let col = (((info.x[j] as f64 + 1.0) / 2.0 * 10.0).floor() as usize).min(9);
        let row = ((info.y[j] as f64 * 10.0).floor() as usize).min(9);
        counts[row * 10 + col] += 1;
    }
    let kept: Vec<(usize, usize, usize)> = (0..100)
        .filter(|&s| counts[s] >= 5)
        .map(|s| (s % 10, s / 10, counts[s]))
        .collect();
    let got: Vec<(usize, usize, usize)> =
        info.cells.iter().map(|c| (c.col, c.row, c.count)).collect();
    assert_eq!(got, kept, "cells of the comparison grid");
    for cell in &info.cells {
        assert!((cell.x_range[0] - (-1.0 + 0.2 * cell.col as f32)).abs() < 1e-5);
        assert_eq!(cell.label, r.manifest.class_names[cell.top[0].0]);
    }
    if !info.cells.is_empty() {
        let png = image::open(out.join("comparison.png")).unwrap();
        assert!(png.width() > 800 && png.height() > 800);
        // Two panels (synthetic, exemplar) of the same 10×10 poster side by side.
        let poster = atlas::atlas::poster::render_poster_kind(
            &out,
            &atlas::atlas::poster::PosterOptions {
                grid: 10,
                cell_px: None,
                labels: true,
                density: 1.0,
            },
            IconKind::Exemplar,
        )
        .unwrap();
        assert!(
            png.width() >= 2 * poster.width() + atlas::classes::plot::PANEL_GAP,
            "comparison.png ({}) is not two {}-pixel panels wide",
            png.width(),
            poster.width()
        );
    }
    check_comparison_exemplars(&dir, &out, run, &acts, &info);
}

/// The comparison folder holds exemplar sheets (as `atlas build` writes them), and the exemplar
/// tile of each cell is the receptive-field patch of the cell's most typical sample: the member
/// (samples binned here from `info.x`, `info.y`) whose activation has the highest cosine
/// similarity (f64, here) to the members' mean, cut and resized by Pillow
/// (`tests/reference/exemplar_ref.py`). Cells whose two best are closer than 1e-6 are left out.
/// The 64-px patch is upscaled to the icon size (80 px) and the crate's resize differs from
/// Pillow's by a few levels there, so tiles match to within 8 levels (mean < 1); the patch of the
/// second most typical sample, a control, must differ by far more somewhere.
fn check_comparison_exemplars(
    dir: &Path,
    out: &Path,
    run: &Path,
    acts: &npy::Matrix,
    info: &atlas::classes::ComparisonInfo,
) {
    let m = AtlasManifest::load(out).unwrap();
    let level = m.level(10).expect("the 10×10 level");
    assert_eq!(level.cells, info.cells.len());
    if info.cells.is_empty() {
        return;
    }
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["settings"]["preprocess"], "squash");
    // (image path, y, x) of the run's rows of the layer.
    let prov: Vec<(String, i64, i64)> = std::fs::read_to_string(run.join("provenance.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(atlas::collect::run_folder::parse_csv_line)
        .filter(|f| f[1] == LAYER)
        .map(|f| (f[3].clone(), f[5].parse().unwrap(), f[6].parse().unwrap()))
        .collect();
    // `head` is a 7×7 grid on 224 px: the patch is 2 strides (64 px) centred on the position's
    // cell, shifted to stay inside the image.
    let rect = |y: i64, x: i64| {
        assert!((0..7).contains(&y) && (0..7).contains(&x));
        let start = |p: i64| ((p as f64 + 0.5) * 32.0 - 32.0).round().clamp(0.0, 160.0) as u32;
        [start(x), start(y), 64, 64]
    };
    let icon = m.icon_size;
    let mut entries = vec![];
    let mut wanted = vec![];
    for (i, cell) in info.cells.iter().enumerate() {
        let bin = |v: f32| ((v as f64 * 10.0).floor() as usize).min(9);
        let members: Vec<usize> = (0..info.rows.len())
            .filter(|&j| (bin((info.x[j] + 1.0) / 2.0), bin(info.y[j])) == (cell.col, cell.row))
            .collect();
        assert_eq!(members.len(), cell.count, "cell {i}");
        let row = |j: usize| acts.row(info.rows[j]);
        let mut mean = vec![0f64; acts.cols];
        for &j in &members {
            for (s, v) in mean.iter_mut().zip(row(j)) {
                *s += *v as f64 / members.len() as f64;
            }
        }
        let nm = mean.iter().map(|a| a * a).sum::<f64>().sqrt();
        let cos = |j: usize| {
            let v = row(j);
            let dot: f64 = v.iter().zip(&mean).map(|(a, b)| *a as f64 * b).sum();
            dot / (v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt() * nm)
        };
        let mut ranked: Vec<(usize, f64)> = members.iter().map(|&j| (j, cos(j))).collect();
        ranked.sort_by(|p, q| q.1.total_cmp(&p.1).then(p.0.cmp(&q.0)));
        if ranked.len() > 1 && ranked[0].1 - ranked[1].1 <= 1e-6 {
            continue;
        }
        for (slot, &(j, _)) in ranked.iter().take(2).enumerate() {
            let (path, y, x) = &prov[info.rows[j]];
            let file = dir.join(format!("cmp-exemplar-{i}-{slot}.png"));
            entries.push(serde_json::json!({
                "path": path, "preprocess": "squash", "input": [224, 224],
                "rect": rect(*y, *x), "out": [icon, icon], "file": file,
            }));
            wanted.push((i, slot, file));
        }
    }
    let list = dir.join("cmp-exemplar-entries.json");
    std::fs::write(&list, serde_json::Value::Array(entries).to_string()).unwrap();
    common::run_reference("exemplar_ref.py", &["--entries".as_ref(), list.as_os_str()]);
    let per = level.icons_per_sheet;
    let (mut checked, mut controls_far) = (0, 0);
    for (i, slot, file) in &wanted {
        let path = kind_sheet_path(out, 10, IconKind::Exemplar, i / per);
        let sheet = image::open(&path)
            .unwrap_or_else(|e| panic!("no exemplar sheet {}: {e}", path.display()))
            .to_rgb8();
        let (t, cols) = (i % per, level.sheet_columns);
        let (tx, ty) = ((t % cols) as u32 * icon, (t / cols) as u32 * icon);
        let got = image::imageops::crop_imm(&sheet, tx, ty, icon, icon).to_image();
        let want = image::open(file).unwrap().to_rgb8();
        assert_eq!(got.dimensions(), want.dimensions());
        let d: Vec<u8> = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(p, q)| p.abs_diff(*q))
            .collect();
        let max = *d.iter().max().unwrap();
        let mean = d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64;
        if *slot == 0 {
            assert!(
                max <= 8 && mean < 1.0,
                "exemplar tile of cell {i} differs from Pillow's patch (max {max}, mean {mean:.2})"
            );
            checked += 1;
        } else {
            controls_far += (max > 64) as usize;
        }
    }
    assert!(checked > 0, "no cell with a clear most typical sample");
    let controls = wanted.iter().filter(|w| w.1 == 1).count();
    assert!(
        controls_far > 0,
        "no second-best patch differs from the exemplar tile: the check could not fail"
    );
    eprintln!(
        "comparison exemplars checked: {checked} of {} cells ({controls_far} of {controls} \
         controls far off)",
        info.cells.len()
    );
}

#[test]
fn class_pairs_follow_the_definition() {
    // A hand-made atlas level: 3 cells × 3 classes.
    let dir = common::scratch("class_tools_pairs");
    let names = vec!["ant".to_string(), "bee".into(), "cat".into()];
    let manifest = AtlasManifest {
        format: atlas::atlas::manifest::FORMAT.into(),
        run: dir.join("run"),
        layer: "x".into(),
        model_file: dir.join("m.pt"),
        points: 40,
        channels: 2,
        class_names: names,
        layout: "test".into(),
        min_count: 1,
        render: String::new(),
        icon_size: 80,
        levels: vec![atlas::atlas::LevelRecord {
            grid: 2,
            cells: 3,
            icons_per_sheet: 10,
            sheet_columns: 10,
        }],
        run_rows: Some(40),
    };
    manifest.save(&dir).unwrap();
    let ld = level_dir(&dir, 2);
    std::fs::create_dir_all(&ld).unwrap();
    let counts = [10usize, 20, 10];
    let cells: Vec<CellRecord> = (0..3)
        .map(|i| CellRecord {
            x: i % 2,
            y: i / 2,
            count: counts[i],
            top: vec![(i, 1.0)],
        })
        .collect();
    write_cells(&ld.join("cells.csv"), &cells).unwrap();
    #[rustfmt::skip]
    let attr = [
        1.0f32, 1.0, -1.0, // cell 0
        1.0,    0.5,  1.0, // cell 1
        0.0,   -2.0,  1.0, // cell 2
    ];
    npy::write(&ld.join("mean_attr.npy"), &attr, 3, 3, npy::Dtype::F32).unwrap();
    // Mass = count × mean, clipped at 0:
    //   ant: 10, 20, 0 → p = 1/3, 2/3, 0      bee: 10, 10, 0 → p = 1/2, 1/2, 0
    //   cat: 0, 20, 10 → p = 0, 2/3, 1/3
    // ant–bee = 1/3 + 1/2 = 5/6; ant–cat = 2/3; bee–cat = 1/2.
    let r = class_pairs(&dir, 2, 10, PairClasses::All, PairWeighting::Mass).unwrap();
    let got: Vec<(usize, usize, f64)> = r.pairs.iter().map(|p| (p.a, p.b, p.similarity)).collect();
    let want = [(0, 1, 5.0 / 6.0), (0, 2, 2.0 / 3.0), (1, 2, 0.5)];
    assert_eq!(got.len(), 3);
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1), (w.0, w.1));
        assert!((g.2 - w.2).abs() < 1e-12, "{got:?}");
    }
    assert_eq!(r.pairs[0].name_b, "bee");
    assert_eq!(r.pairs[0].shared_cells, 2);
    assert_eq!(r.pairs[0].mass_a, 30.0);
    // Without the counts: ant 1, 1, 0; bee 1, .5, 0; cat 0, 1, 1 → ant–bee = .5 + 1/3.
    let r = class_pairs(&dir, 2, 1, PairClasses::All, PairWeighting::Mean).unwrap();
    assert_eq!((r.pairs[0].a, r.pairs[0].b), (0, 1));
    assert!((r.pairs[0].similarity - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
    // Only the classes labelling a cell (all three here), or the top-2 by mass (ant 30, cat 30).
    let r = class_pairs(&dir, 2, 10, PairClasses::TopMass(2), PairWeighting::Mass).unwrap();
    assert_eq!(r.pairs.len(), 1);
    assert_eq!((r.pairs[0].a, r.pairs[0].b), (0, 2));
    assert!(class_pairs(&dir, 3, 10, PairClasses::All, PairWeighting::Mass).is_err());
}

#[test]
fn cli_end_to_end() {
    let run = shared_run();
    let dir = common::scratch("class_tools_cli");
    let attr = attr_of(run);
    let (a, b) = two_classes(&attr);
    let names: Vec<String> = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(run.join("run.json")).unwrap(),
    )
    .unwrap()["class_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let cli = |args: &[&str]| {
        let out = Command::new(common::atlas_bin())
            .args(args)
            .arg("--run")
            .arg(run)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Class by name, in another case.
    let ca = dir.join("ca");
    let upper = names[a].to_uppercase();
    let (ok, stdout, stderr) = cli(&[
        "class-atlas",
        "--layer",
        LAYER,
        "--class",
        &upper,
        "--n",
        "80",
        "--grid",
        "4",
        "--neighbors",
        "10",
        "--steps",
        "2",
        "--batch",
        "8",
        "--out",
        ca.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("class_atlas.json"), "{stdout}");
    assert!(ca.join("class_atlas.png").is_file(), "{stdout}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ca.join("class_atlas.json")).unwrap())
            .unwrap();
    assert_eq!(info["class"]["index"].as_u64().unwrap() as usize, a);

    let cmp = dir.join("cmp");
    let (ok, stdout, stderr) = cli(&[
        "compare",
        "--layer",
        LAYER,
        "--a",
        &names[a],
        "--b",
        &b.to_string(),
        "--n",
        "40",
        "--iterations",
        "300",
        "--steps",
        "2",
        "--batch",
        "16",
        "--out",
        cmp.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(cmp.join("comparison.json").is_file(), "{stdout}");
    let cells = read_cells(&level_dir(&cmp, 10).join("cells.csv")).unwrap();
    assert_eq!(cmp.join("comparison.png").is_file(), !cells.is_empty());

    // An unknown class names the closest ones.
    let typo: String = names[a].chars().skip(1).collect();
    let (ok, _, stderr) = cli(&[
        "class-atlas",
        "--layer",
        LAYER,
        "--class",
        &format!("{typo}x"),
        "--out",
        dir.join("bad").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("no class") && stderr.contains(&format!("{:?} ({a})", names[a])),
        "{stderr}"
    );
    let (ok, _, stderr) = cli(&[
        "compare",
        "--layer",
        LAYER,
        "--a",
        "5000",
        "--b",
        "1",
        "--out",
        dir.join("bad").to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("out of range"), "{stderr}");

    // class-pairs on the class atlas's level.
    let out = Command::new(common::atlas_bin())
        .args(["class-pairs", "--level", "4", "--top", "5", "--atlas"])
        .arg(&ca)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pairs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ca.join("class_pairs_4.json")).unwrap())
            .unwrap();
    assert!(pairs["pairs"].as_array().unwrap().len() <= 5);
    assert!(stdout.contains("wrote"), "{stdout}");
}
