//! Dataset examples of atlas cells (`atlas::analysis::examples`) on a tiny atlas of the bundled
//! images: every example bins into its cell, the examples of all cells are the layout's points
//! (and the cells' counts in `cells.csv`), ranking is by cosine similarity to the cell's mean as
//! stored in `mean_acts.npy`, a `--max-points` atlas maps its rows to the right run rows (checked
//! against the run's own provenance and activations), and patches cut the position's region.
use crate::common;
use crate::common::bundled::BundledRun;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use atlas::analysis::{example_patch, DatasetIndex, Example};
use atlas::atlas::manifest::{level_dir, read_cells};
use atlas::atlas::AtlasManifest;
use atlas::collect::run_folder::parse_csv_line;
use atlas::data::{load_rgb, Preprocess};
use atlas::grid::cell_index;
use atlas::store::npy;

const IMAGES: usize = 16;
const SAMPLES: usize = 5;
const ROWS: usize = IMAGES * SAMPLES;
const MAX_POINTS: usize = 37;
const LAYER: &str = "stage6";

struct Fixture {
    dir: PathBuf,
    run: PathBuf,
    /// Every run row, grids 2 and 4, min count 2, no icons.
    full: PathBuf,
    /// `--max-points 37`, grids 2 and 3, min count 1, no icons.
    strided: PathBuf,
}

fn atlas_cmd(args: &[&str], paths: &[(&str, &Path)]) {
    let mut cmd = Command::new(common::atlas_bin());
    cmd.args(args);
    for (flag, p) in paths {
        cmd.arg(flag).arg(p);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "atlas {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One run and two atlases, made once for all tests of this file.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let t = std::time::Instant::now();
        // Per process: the tests of this file write their variants next to it.
        let dir = common::bundled::process_dir().join("analysis_examples");
        std::fs::create_dir_all(&dir).unwrap();
        let run = BundledRun {
            layers: LAYER,
            samples: SAMPLES,
            limit: Some(IMAGES),
        }
        .shared()
        .to_path_buf();
        let full = dir.join("full");
        let strided = dir.join("strided");
        for (out, extra) in [
            (&full, vec!["--grids", "2,4", "--min-count", "2"]),
            (
                &strided,
                vec!["--grids", "2,3", "--min-count", "1", "--max-points", "37"],
            ),
        ] {
            let mut args = vec![
                "build",
                "--layer",
                LAYER,
                "--icon-levels",
                "none",
                "--neighbors",
                "10",
            ];
            args.extend(extra);
            atlas_cmd(&args, &[("--run", &run), ("--out", out)]);
        }
        println!(
            "fixture (collect + 2 builds): {:.1} s",
            t.elapsed().as_secs_f64()
        );
        Fixture {
            dir,
            run,
            full,
            strided,
        }
    })
}

/// The run's provenance lines of `LAYER`, parsed here from the CSV: (path, label, y, x).
fn run_provenance(run: &Path) -> Vec<(PathBuf, String, i64, i64)> {
    let text = std::fs::read_to_string(run.join("provenance.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(parse_csv_line)
        .filter(|f| f[1] == LAYER)
        .map(|f| {
            (
                PathBuf::from(&f[3]),
                f[4].clone(),
                f[5].parse().unwrap(),
                f[6].parse().unwrap(),
            )
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Every example of every cell bins into that cell, each row appears once over all cells, and
/// lists are ranked by similarity; returns the number of examples per cell (y·g + x).
fn check_partition(idx: &DatasetIndex, g: usize) -> Vec<usize> {
    let mut seen = vec![0usize; idx.len()];
    let mut counts = vec![0usize; g * g];
    for y in 0..g {
        for x in 0..g {
            let ex = idx.cell_examples(g, x, y, usize::MAX);
            for e in &ex {
                let p = idx.points()[e.row];
                assert_eq!(
                    (cell_index(p[0], g), cell_index(p[1], g)),
                    (x, y),
                    "row {} at {p:?} listed in cell ({x}, {y}) of {g}×{g}",
                    e.row
                );
                seen[e.row] += 1;
            }
            assert!(
                ex.windows(2).all(|w| w[0].similarity >= w[1].similarity),
                "cell ({x}, {y}) of {g}×{g} is not ranked by similarity"
            );
            counts[y * g + x] = ex.len();
            let top3 = idx.cell_examples(g, x, y, 3);
            assert_eq!(top3[..], ex[..ex.len().min(3)], "max cuts the ranking");
        }
    }
    assert!(
        seen.iter().all(|&s| s == 1),
        "every row is an example of exactly one cell at {g}×{g}: {seen:?}"
    );
    counts
}

#[test]
fn examples_partition_the_layout_and_match_the_cell_tables() {
    let f = fixture();
    let idx = DatasetIndex::load(&f.full).unwrap();
    assert_eq!(idx.len(), ROWS);
    assert_eq!(idx.points().len(), ROWS);
    assert_eq!(idx.layer_shape(), (7, 7));
    assert_eq!(idx.preprocess(), Preprocess::Squash);
    let run_acts = npy::read(&f.run.join("layers").join(LAYER).join("acts.npy")).unwrap();
    let provenance = run_provenance(&f.run);
    let manifest = AtlasManifest::load(&f.full).unwrap();
    assert_eq!(
        manifest.run_rows,
        Some(ROWS),
        "build records the run's rows"
    );

    for level in &manifest.levels {
        let g = level.grid;
        let counts = check_partition(&idx, g);
        let dir = level_dir(&f.full, g);
        let cells = read_cells(&dir.join("cells.csv")).unwrap();
        let means = npy::read(&dir.join("mean_acts.npy")).unwrap();
        let mut kept = 0;
        for (i, cell) in cells.iter().enumerate() {
            let ex = idx.cell_examples(g, cell.x, cell.y, usize::MAX);
            assert_eq!(
                ex.len(),
                cell.count,
                "cell {i} ({}, {}) of {g}×{g}",
                cell.x,
                cell.y
            );
            kept += ex.len();
            for e in &ex {
                // The similarity is the cosine to the stored cell mean of the run's own row.
                let act = run_acts.row(e.run_row);
                assert_eq!(idx.activation(e.row), act);
                let want = cosine(act, means.row(i));
                assert!(
                    (e.similarity as f64 - want).abs() < 1e-5,
                    "row {}: similarity {} vs {want}",
                    e.row,
                    e.similarity
                );
                // Every row of this atlas is its run row; the fields are the provenance's.
                assert_eq!(e.run_row, e.row);
                let (path, label, y, x) = &provenance[e.run_row];
                assert_eq!(&e.image_path, path);
                assert_eq!(e.label.clone().unwrap_or_default(), *label);
                assert_eq!((e.pos_y, e.pos_x), (*y, *x));
                assert_eq!((e.layer_h, e.layer_w), (7, 7));
                assert_eq!(idx.row_image(e.row), path);
            }
            if ex.len() > 2 {
                assert!(
                    ex[0].similarity > ex[ex.len() - 1].similarity,
                    "a real ranking, not ties"
                );
            }
        }
        // Cells missing from the table are exactly the ones under the min count.
        let listed: usize = counts.iter().filter(|&&n| n >= manifest.min_count).sum();
        assert_eq!(listed, kept, "{g}×{g}");
        assert_eq!(
            cells.len(),
            counts.iter().filter(|&&n| n >= manifest.min_count).count()
        );
    }
    // A grid size that is not a level bins the same way.
    assert_eq!(check_partition(&idx, 3).iter().sum::<usize>(), ROWS);
    assert!(idx.cell_examples(4, 4, 0, 10).is_empty(), "out of range");
    assert!(idx.cell_examples(0, 0, 0, 10).is_empty());
}

#[test]
fn max_points_atlas_maps_rows_to_the_run() {
    let f = fixture();
    let idx = DatasetIndex::load(&f.strided).unwrap();
    assert_eq!(idx.len(), MAX_POINTS);
    let manifest = AtlasManifest::load(&f.strided).unwrap();
    assert_eq!(
        (manifest.points, manifest.run_rows),
        (MAX_POINTS, Some(ROWS))
    );
    let run_acts = npy::read(&f.run.join("layers").join(LAYER).join("acts.npy")).unwrap();
    let provenance = run_provenance(&f.run);
    let labels: Vec<String> = {
        let text = std::fs::read_to_string(f.run.join("images.csv")).unwrap();
        text.lines()
            .skip(1)
            .map(|l| parse_csv_line(l)[2].clone())
            .collect()
    };
    for i in 0..MAX_POINTS {
        // `atlas build --max-points M` keeps the evenly strided rows i·N/M.
        let r = i * ROWS / MAX_POINTS;
        let e = idx.example(i, 0.0);
        assert_eq!(e.run_row, r);
        assert_eq!(idx.run_row(i), r);
        let (path, label, y, x) = &provenance[r];
        assert_eq!(&e.image_path, path, "atlas row {i}");
        assert_eq!((e.pos_y, e.pos_x), (*y, *x), "atlas row {i}");
        assert_eq!(e.label.clone().unwrap_or_default(), *label);
        assert_eq!(labels[e.image_index], *label);
        assert_eq!(idx.activation(i), run_acts.row(r));
    }
    // The mapping is what the build used: the stored cell means are the means of the mapped run
    // rows, and not of the first 37 rows.
    let dir = level_dir(&f.strided, 3);
    let cells = read_cells(&dir.join("cells.csv")).unwrap();
    let means = npy::read(&dir.join("mean_acts.npy")).unwrap();
    let mean = |rows: &[usize]| -> Vec<f32> {
        let mut s = vec![0f64; run_acts.cols];
        for &r in rows {
            s.iter_mut()
                .zip(run_acts.row(r))
                .for_each(|(a, b)| *a += *b as f64);
        }
        s.into_iter()
            .map(|v| (v / rows.len() as f64) as f32)
            .collect()
    };
    let mut identity_differs = false;
    for (i, cell) in cells.iter().enumerate() {
        let ex = idx.cell_examples(3, cell.x, cell.y, usize::MAX);
        assert_eq!(ex.len(), cell.count);
        let mapped: Vec<usize> = ex.iter().map(|e| e.run_row).collect();
        let m = mean(&mapped);
        let err = m
            .iter()
            .zip(means.row(i))
            .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(err < 1e-5, "cell {i}: {err}");
        let rows: Vec<usize> = ex.iter().map(|e| e.row).collect();
        identity_differs |= mean(&rows) != means.row(i);
    }
    assert!(identity_differs, "the test would not see a wrong mapping");
    check_partition(&idx, 3);

    // An atlas written before `run_rows` existed: the same rows from the manifest's point count.
    let old = f.dir.join("strided-old");
    common::copy_dir(&f.strided, &old);
    set_manifest(&old, |m| {
        m.as_object_mut().unwrap().remove("run_rows");
    });
    assert_eq!(AtlasManifest::load(&old).unwrap().run_rows, None);
    let idx_old = DatasetIndex::load(&old).unwrap();
    for cell in &cells {
        assert_eq!(
            idx_old.cell_examples(3, cell.x, cell.y, 50),
            idx.cell_examples(3, cell.x, cell.y, 50)
        );
    }

    // ... whose run changed since: refused, naming the cell means it no longer reproduces.
    let run2 = f.dir.join("run-changed");
    common::copy_dir(&f.run, &run2);
    let acts_path = run2.join("layers").join(LAYER).join("acts.npy");
    let mut reversed = vec![];
    for r in (0..run_acts.rows).rev() {
        reversed.extend_from_slice(run_acts.row(r));
    }
    npy::write(
        &acts_path,
        &reversed,
        run_acts.rows,
        run_acts.cols,
        npy::Dtype::F32,
    )
    .unwrap();
    set_manifest(&old, |m| m["run"] = run2.to_string_lossy().into());
    let err = format!("{:#}", DatasetIndex::load(&old).err().unwrap());
    assert!(
        err.contains("mean_acts.npy") && err.contains("rebuild"),
        "{err}"
    );

    // A newer atlas notices a different row count directly.
    let bad = f.dir.join("strided-bad");
    common::copy_dir(&f.strided, &bad);
    set_manifest(&bad, |m| m["run_rows"] = (ROWS + 1).into());
    let err = format!("{:#}", DatasetIndex::load(&bad).err().unwrap());
    assert!(
        err.contains("acts.npy") && err.contains(&format!("{ROWS} rows")),
        "{err}"
    );

    // Missing or inconsistent files are named.
    common::copy_dir(&f.strided, &bad);
    npy::write(
        &bad.join("layout_normalized.npy"),
        &vec![0.5; 2 * (MAX_POINTS - 1)],
        MAX_POINTS - 1,
        2,
        npy::Dtype::F32,
    )
    .unwrap();
    let err = format!("{:#}", DatasetIndex::load(&bad).err().unwrap());
    assert!(err.contains("layout_normalized.npy"), "{err}");
    std::fs::remove_file(bad.join("layout_normalized.npy")).unwrap();
    let err = format!("{:#}", DatasetIndex::load(&bad).err().unwrap());
    assert!(err.contains("layout_normalized.npy"), "{err}");
    let run3 = f.dir.join("run-no-provenance");
    common::copy_dir(&f.run, &run3);
    std::fs::remove_file(run3.join("provenance.csv")).unwrap();
    common::copy_dir(&f.strided, &bad);
    set_manifest(&bad, |m| m["run"] = run3.to_string_lossy().into());
    let err = format!("{:#}", DatasetIndex::load(&bad).err().unwrap());
    assert!(err.contains("provenance.csv"), "{err}");
    let err = format!(
        "{:#}",
        DatasetIndex::load(&f.dir.join("nothing")).err().unwrap()
    );
    assert!(err.contains("manifest.json"), "{err}");
}

#[test]
fn example_patches_cut_the_position_region() {
    let f = fixture();
    let idx = DatasetIndex::load(&f.full).unwrap();
    let input = idx.model_input();
    assert_eq!(input, (224, 224));
    // Two rows of the same image at different positions.
    let all: Vec<Example> = (0..idx.len()).map(|r| idx.example(r, 0.0)).collect();
    let (a, b) = all
        .iter()
        .flat_map(|a| all.iter().map(move |b| (a, b)))
        .find(|(a, b)| a.image_path == b.image_path && (a.pos_y, a.pos_x) != (b.pos_y, b.pos_x))
        .expect("two positions in one image");
    let full = load_rgb(&a.image_path, Preprocess::Squash, input).unwrap();
    for e in [a, b] {
        // stage6 is 7×7 on 224 px: a 64-px square (2 strides) centred on the position's cell,
        // shifted to stay inside the image; at 64 px out the patch is that crop, pixel for pixel.
        let start = |p: i64| ((p as f64 + 0.5) * 32.0 - 32.0).round().clamp(0.0, 160.0) as u32;
        let want = image::imageops::crop_imm(&full, start(e.pos_x), start(e.pos_y), 64, 64);
        let got = example_patch(e, input, 64).unwrap();
        assert_eq!(got.dimensions(), (64, 64));
        assert!(
            got.pixels().eq(want.to_image().pixels()),
            "patch of ({}, {}) is not its region",
            e.pos_y,
            e.pos_x
        );
        assert_eq!(example_patch(e, input, 40).unwrap().dimensions(), (40, 40));
    }
    let pa = example_patch(a, input, 40).unwrap();
    let pb = example_patch(b, input, 40).unwrap();
    let diff = pa.pixels().zip(pb.pixels()).filter(|(p, q)| p != q).count();
    assert!(
        diff > 100,
        "two positions give nearly the same patch ({diff} pixels differ)"
    );
    assert_eq!(pa, example_patch(a, input, 40).unwrap(), "deterministic");

    let mut missing = a.clone();
    missing.image_path = f.dir.join("gone.jpg");
    let err = format!("{:#}", example_patch(&missing, input, 40).err().unwrap());
    assert!(err.contains("gone.jpg"), "{err}");
    assert!(example_patch(a, input, 0).is_err());
}

fn set_manifest(root: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = root.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}
