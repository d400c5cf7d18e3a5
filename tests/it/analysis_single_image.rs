//! One image through the model (`atlas::analysis::single_image`, spec §9.1) on the embedded
//! EfficientNet-Lite0 and a bundled photograph: the prediction equals `classify`'s, the activation
//! grid is the layer's, position-major; the spatial attribution map equals an independent PyTorch
//! reference (eager model rebuilt from the sidecar: tests/reference/attribution_map_ref.py, which
//! checks itself against forward-mode AD) for stage4 and the head; each atlas cell's own mean
//! is nearest to that cell; landing by projection (umap-learn's `transform`) agrees with
//! umap-learn (tests/reference/umap_transform_ref.py) on neighbours, weights and initial
//! positions, puts the run's own vectors within one cell of their own places, and the One image
//! page prepares the image exactly as the collection did.
use crate::common;
use crate::common::bundled::BundledRun;

use std::process::Command;

use atlas::analysis::{
    analyse_image, attribution_map, attribution_map_for_input, nearest_cells, ImageAnalysis,
};
use atlas::atlas::manifest::level_dir;
use atlas::classify::classify;
use atlas::data::{load_rgb, scan_folder, to_chw_f32};
use atlas::model::AtlasModel;
use atlas::store::npy;
use tch::{Device, Kind, Tensor};

use atlas::analysis::landing::{AtlasLanding, LandingMethod};
use atlas::app::image_page::work::{spawn_analysis, AnalysisRequest, AtlasTarget};
use atlas::collect::run_folder::parse_csv_line;
use atlas::data::{spawn_loader, Preprocess};
use atlas::grid::cell_index;
use atlas::jobs::{JobEvent, JobOutcome};
use atlas::layout::transform::{transform, TransformIndex, TransformParams};
use atlas::layout::Metric;

fn model() -> AtlasModel {
    AtlasModel::load(&common::model(), Device::Cpu).unwrap()
}

fn first_image() -> std::path::PathBuf {
    common::image_files(&common::assets())[0].clone()
}

#[test]
fn prediction_and_activations_are_the_models() {
    let model = model();
    let entries = scan_folder(&common::assets()).unwrap().images;
    let t = std::time::Instant::now();
    let a: ImageAnalysis = analyse_image(&model, &entries[0].path, "stage4").unwrap();
    println!("analyse_image: {:.2} s", t.elapsed().as_secs_f64());
    let classified = classify(&model, &entries[..1], 5, 1, 1, |_, _| {}).unwrap();
    let want = classified[0].top.as_ref().unwrap();
    assert_eq!(a.top5.len(), 5);
    assert_eq!(
        a.top5.iter().map(|t| t.0).collect::<Vec<_>>(),
        want.iter().map(|t| t.0).collect::<Vec<_>>(),
        "top-5 classes"
    );
    for (p, q) in a.top5.iter().zip(want) {
        assert!((p.1 - q.1).abs() < 1e-5, "{p:?} vs {q:?}");
    }

    let info = &model.info.layers[model.info.layer_index("stage4").unwrap()];
    assert_eq!(a.layer, "stage4");
    assert_eq!(
        (a.h, a.w, a.c),
        (
            info.height as usize,
            info.width as usize,
            info.channels as usize
        )
    );
    assert_eq!(a.acts.len(), a.h * a.w * a.c);
    // The input is the classification preprocessing, and row y·w + x is A[:, y, x].
    let input = load_rgb(
        &entries[0].path,
        model.info.classify_preprocess(),
        model.info.size(),
    )
    .unwrap();
    assert_eq!(a.input, input);
    let x = Tensor::from_slice(&to_chw_f32(&input)).reshape([1, 3, 224, 224]);
    let fwd = tch::no_grad(|| model.forward(&x)).unwrap();
    let act = &fwd.layers[model.info.layer_index("stage4").unwrap()];
    for (y, x_) in [(0usize, 0usize), (2, 9), (9, 2), (13, 13)] {
        let col = act.get(0).select(1, y as i64).select(1, x_ as i64);
        let want: Vec<f32> = Vec::try_from(col.to_kind(Kind::Float)).unwrap();
        assert_eq!(a.vector(y, x_), &want[..], "position ({y}, {x_})");
        let r = y * a.w + x_;
        assert_eq!(&a.acts[r * a.c..(r + 1) * a.c], &want[..]);
    }

    // Clear errors.
    let err = format!(
        "{:#}",
        analyse_image(&model, &entries[0].path, "nope")
            .err()
            .unwrap()
    );
    assert!(err.contains("nope") && err.contains("stage4"), "{err}");
    let dir = common::scratch("analysis_single_bad");
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "not an image").unwrap();
    let err = format!("{:#}", analyse_image(&model, &text, "head").err().unwrap());
    assert!(err.contains("notes.jpg"), "{err}");
    let err = format!(
        "{:#}",
        attribution_map(&model, &entries[0].path, "head", 5000)
            .err()
            .unwrap()
    );
    assert!(err.contains("5000"), "{err}");
    let err = format!(
        "{:#}",
        attribution_map(&model, &dir.join("missing.png"), "head", 1)
            .err()
            .unwrap()
    );
    assert!(err.contains("missing.png"), "{err}");
}

fn max_relative(a: &[f32], b: &[f32]) -> f32 {
    common::max_row_relative_error(a, b, b.len())
}

/// `tests/reference/attribution_map_ref.py` on the input `[1,3,224,224]`: one map per class,
/// `[classes, h·w]` (reverse mode on the eager model, cross-checked there by forward mode).
fn map_reference(
    pixels: &[f32],
    layer: &str,
    classes: &[usize],
    dir: &std::path::Path,
) -> npy::Matrix {
    let input = dir.join("input.npy");
    let out = dir.join("map.npy");
    npy::write_nd(&input, pixels, &[1, 3, 224, 224], npy::Dtype::F32).unwrap();
    let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    let classes = classes.join(",");
    let model = common::model();
    common::run_reference(
        "attribution_map_ref.py",
        &[
            "--model".as_ref(),
            model.as_os_str(),
            "--tensor".as_ref(),
            input.as_os_str(),
            "--layer".as_ref(),
            layer.as_ref(),
            "--classes".as_ref(),
            classes.as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    npy::read(&out).unwrap()
}

#[test]
fn attribution_maps_match_the_pytorch_reference() {
    let model = model();
    let image = first_image();
    let a = analyse_image(&model, &image, "head").unwrap();
    // The top class and one the image says little about.
    let classes = [a.top5[0].0, 7usize];
    let dir = common::scratch("analysis_attr_map");
    let pixels = to_chw_f32(&a.input);

    for layer in ["stage4", "head"] {
        let li = model.info.layer_index(layer).unwrap();
        let info = &model.info.layers[li];
        let (h, w) = (info.height as usize, info.width as usize);
        let t = std::time::Instant::now();
        let ours: Vec<Vec<f32>> = classes
            .iter()
            .map(|&c| attribution_map(&model, &image, layer, c).unwrap())
            .collect();
        println!(
            "{layer}: 2 attribution maps in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let t = std::time::Instant::now();
        let reference = map_reference(&pixels, layer, &classes, &dir);
        println!("{layer}: reference in {:.1} s", t.elapsed().as_secs_f64());
        assert_eq!((reference.rows, reference.cols), (classes.len(), h * w));
        for (ci, (map, &c)) in ours.iter().zip(&classes).enumerate() {
            assert_eq!(map.len(), h * w);
            let want = reference.row(ci);
            let err = max_relative(map, want);
            println!("{layer} class {c}: max relative error vs PyTorch {err:.2e}");
            assert!(err < 1e-4, "{layer} class {c}: {err}");
            // A wrong map must not pass: transposed, or another class's.
            let transposed: Vec<f32> = (0..h * w).map(|r| map[(r % w) * w + r / w]).collect();
            assert!(max_relative(&transposed, want) > 1e-2);
        }
        assert!(max_relative(&ours[0], &ours[1]) > 1e-2);

        // The same through an already decoded input.
        let again = attribution_map_for_input(&model, &a.input, li, classes[0]).unwrap();
        assert_eq!(again, ours[0]);

        if layer == "head" {
            // The head reaches the logits through average pooling and a linear map: the map sums
            // to the logit minus its bias.
            let head = model.linear_head().unwrap().unwrap();
            let x = Tensor::from_slice(&pixels).reshape([1, 3, 224, 224]);
            let logits = tch::no_grad(|| model.forward(&x)).unwrap().logits;
            for (map, &c) in ours.iter().zip(&classes) {
                let want =
                    logits.double_value(&[0, c as i64]) - head.bias.double_value(&[c as i64]);
                let sum: f64 = map.iter().map(|v| *v as f64).sum();
                assert!(
                    (sum - want).abs() < 1e-4 * want.abs().max(1.0),
                    "class {c}: Σ map {sum} vs logit − bias {want}"
                );
            }
        }
    }
}

#[test]
fn nearest_cells_find_each_cells_own_mean() {
    // A tiny atlas of the head layer: 8 images × 4 positions, grids 2 and 4, no icons.
    let dir = common::scratch("analysis_nearest");
    let run = BundledRun {
        layers: "head",
        samples: 4,
        limit: Some(8),
    }
    .shared();
    let atlas_dir = dir.join("atlas");
    let out = Command::new(common::atlas_bin())
        .args([
            "build",
            "--layer",
            "head",
            "--grids",
            "2,4",
            "--min-count",
            "1",
            "--icon-levels",
            "none",
            "--neighbors",
            "8",
        ])
        .arg("--run")
        .arg(run)
        .arg("--out")
        .arg(&atlas_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let means = npy::read(&level_dir(&atlas_dir, 4).join("mean_acts.npy")).unwrap();
    let c = means.cols;
    assert_eq!(c, 1280);
    assert!(means.rows >= 3, "only {} cells", means.rows);

    // Each cell's own mean is nearest to itself, at similarity 1.
    let got = nearest_cells(&means.data, c, &means.data);
    assert_eq!(got.len(), means.rows);
    for (i, (cell, sim)) in got.iter().enumerate() {
        assert_eq!(*cell, i);
        assert!((sim - 1.0).abs() < 1e-5, "cell {i}: {sim}");
    }
    // A scaled copy (cosine ignores length) too.
    let scaled: Vec<f32> = means.row(1).iter().map(|v| v * 3.0).collect();
    assert_eq!(nearest_cells(&scaled, c, &means.data)[0].0, 1);

    // An image's positions: the best cell by a brute-force f64 cosine.
    let a = analyse_image(&model(), &first_image(), "head").unwrap();
    let got = nearest_cells(&a.acts, a.c, &means.data);
    assert_eq!(got.len(), a.h * a.w);
    let cos = |u: &[f32], v: &[f32]| -> f64 {
        let d: f64 = u.iter().zip(v).map(|(x, y)| *x as f64 * *y as f64).sum();
        let n = |w: &[f32]| w.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        d / (n(u) * n(v))
    };
    for (p, (cell, sim)) in got.iter().enumerate() {
        let v = &a.acts[p * c..(p + 1) * c];
        let sims: Vec<f64> = (0..means.rows).map(|i| cos(v, means.row(i))).collect();
        let best = sims.iter().copied().fold(f64::MIN, f64::max);
        assert!((*sim as f64 - best).abs() < 1e-5, "position {p}");
        assert!(
            (sims[*cell] - best).abs() < 1e-5,
            "position {p}: cell {cell}"
        );
    }
}

/// Neighbours, membership weights and weighted initial positions of new points against
/// umap-learn's `transform` (its graph mode and `init_graph_transform`) on a fixed dataset, with
/// umap-learn's fitted layout as the fixed layout. The SGD epochs are not compared (they depend
/// on the random streams).
#[test]
fn umap_transform_matches_umap_learn() {
    let (all, _) = common::layout::mixture(3, 110, 16, 0.6, 0.3, 17);
    let d = 16;
    // Every 11th row is a new point, the others are the layout's.
    let (mut train, mut queries) = (vec![], vec![]);
    for (i, row) in all.chunks(d).enumerate() {
        if i % 11 == 5 {
            queries.extend_from_slice(row);
        } else {
            train.extend_from_slice(row);
        }
    }
    let (n, q) = (train.len() / d, queries.len() / d);
    assert_eq!((n, q), (300, 30));
    let dir = common::scratch("umap_transform_ref");
    npy::write(&dir.join("train.npy"), &train, n, d, npy::Dtype::F32).unwrap();
    npy::write(&dir.join("queries.npy"), &queries, q, d, npy::Dtype::F32).unwrap();
    let k = 10;
    let t = std::time::Instant::now();
    common::run_reference(
        "umap_transform_ref.py",
        &[
            dir.join("train.npy").as_os_str(),
            dir.join("queries.npy").as_os_str(),
            dir.as_os_str(),
            "--n-neighbors".as_ref(),
            k.to_string().as_ref(),
        ],
    );
    println!("umap-learn reference in {:.1} s", t.elapsed().as_secs_f64());
    for (name, metric) in [("cosine", Metric::Cosine), ("euclidean", Metric::Euclidean)] {
        let emb = npy::read(&dir.join(format!("{name}_embedding.npy"))).unwrap();
        let graph = npy::read(&dir.join(format!("{name}_graph.npy"))).unwrap();
        let init = npy::read(&dir.join(format!("{name}_init.npy"))).unwrap();
        assert_eq!((emb.rows, graph.rows, graph.cols, init.rows), (n, q, n, q));
        let layout: Vec<[f32; 2]> = emb.data.chunks(2).map(|p| [p[0], p[1]]).collect();
        let scale = layout
            .iter()
            .flat_map(|p| p.iter())
            .fold(0.0f32, |m, v| m.max(v.abs()));
        let index = TransformIndex::new(&train, n, d, metric).unwrap();
        let placed =
            transform(&index, &layout, &queries, q, &TransformParams::init_only(k)).unwrap();
        let (mut worst_w, mut worst_p) = (0.0f32, 0.0f32);
        for i in 0..q {
            // The same neighbours, each with the same weight.
            let mut theirs: Vec<(u32, f32)> = (0..n)
                .filter(|&j| graph.row(i)[j] > 0.0)
                .map(|j| (j as u32, graph.row(i)[j]))
                .collect();
            let mut ours: Vec<(u32, f32)> = (0..k)
                .map(|t| {
                    (
                        placed.graph.indices[i * k + t],
                        placed.graph.weights[i * k + t],
                    )
                })
                .filter(|e| e.1 > 0.0)
                .collect();
            theirs.sort_by_key(|e| e.0);
            ours.sort_by_key(|e| e.0);
            assert_eq!(
                ours.iter().map(|e| e.0).collect::<Vec<_>>(),
                theirs.iter().map(|e| e.0).collect::<Vec<_>>(),
                "{name}: neighbours of new point {i}"
            );
            for (a, b) in ours.iter().zip(&theirs) {
                worst_w = worst_w.max((a.1 - b.1).abs());
            }
            for ax in 0..2 {
                worst_p = worst_p.max((placed.init[i][ax] - init.row(i)[ax]).abs());
            }
        }
        println!(
            "{name}: max weight difference {worst_w:.2e}, max initial position difference \
             {worst_p:.2e} (layout scale {scale:.1})"
        );
        assert!(worst_w < 1e-4, "{name}: weights differ by {worst_w}");
        assert!(
            worst_p < 1e-4 * (1.0 + scale),
            "{name}: initial positions differ by {worst_p}"
        );
        // Weights without the local-connectivity adjustment (ρ = the nearest distance, as in the
        // fit's graph) would not pass: the nearest neighbour would always weigh 1.
        assert!(
            (0..q).any(|i| placed.graph.weights[i * k] < 0.99),
            "{name}: the nearest neighbour always weighs 1"
        );
    }
}

/// `atlas collect` (shared) + `atlas build` of the head layer of every bundled image (8 positions
/// each), UMAP with 15 neighbours, grids 4 and 8, no icons.
fn landing_atlas(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let run = BundledRun {
        layers: "head",
        samples: 8,
        limit: None,
    }
    .shared()
    .to_path_buf();
    let atlas_dir = dir.join("atlas");
    let out = Command::new(common::atlas_bin())
        .args([
            "build",
            "--layer",
            "head",
            "--grids",
            "4,8",
            "--min-count",
            "1",
        ])
        .args(["--icon-levels", "none", "--neighbors", "15"])
        .arg("--run")
        .arg(&run)
        .arg("--out")
        .arg(&atlas_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (run, atlas_dir)
}

/// (path, y, x) of every run row of `layer`, from the run's provenance.csv.
fn provenance(run: &std::path::Path, layer: &str) -> Vec<(std::path::PathBuf, usize, usize)> {
    let text = std::fs::read_to_string(run.join("provenance.csv")).unwrap();
    let mut lines = text.lines();
    let header = parse_csv_line(lines.next().unwrap());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (l, p, y, x) = (col("layer"), col("path"), col("y"), col("x"));
    lines
        .map(parse_csv_line)
        .filter(|f| f[l] == layer)
        .map(|f| {
            (
                f[p].clone().into(),
                f[y].parse().unwrap(),
                f[x].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn landing_places_the_runs_own_vectors_in_their_cells_and_the_page_prepares_as_the_run() {
    let dir = common::scratch("analysis_landing");
    let t = std::time::Instant::now();
    let (run, atlas_dir) = landing_atlas(&dir);
    println!("collect + build in {:.1} s", t.elapsed().as_secs_f64());
    let landing = AtlasLanding::load(&atlas_dir).unwrap();
    let LandingMethod::Umap(p) = &landing.method else {
        panic!("{:?}", landing.method)
    };
    assert_eq!((p.n_neighbors, p.metric), (15, Metric::Cosine));
    assert_eq!(landing.preprocess, Preprocess::Squash, "the run's setting");
    let n = landing.manifest.points;
    let c = landing.manifest.channels;
    assert_eq!(n, 25 * 8);
    let own = npy::read(&atlas_dir.join("layout_normalized.npy")).unwrap();
    let run_manifest = atlas::collect::run_folder::RunFolder::new(&run)
        .read_manifest()
        .unwrap()
        .unwrap();
    let layer = run_manifest
        .layers
        .iter()
        .find(|l| l.name == "head")
        .unwrap();
    let acts = npy::read(&run.join(&layer.dir).join("acts.npy")).unwrap();
    assert_eq!((acts.rows, acts.cols), (n, c));
    let finest = 8;

    // Every row of the run, landed as a new point: its own vector is its nearest neighbour
    // (weight 1), so it starts on its own position, and the epochs keep it within one cell.
    let t = std::time::Instant::now();
    let landed = landing.land(&acts.data, c).unwrap();
    println!("landed {n} vectors in {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(landed.n_epochs, 100);
    // Rows with the same vector (a position drawn twice) are interchangeable: the first of them
    // takes weight 1.
    let same: Vec<Vec<usize>> = (0..n)
        .map(|i| (0..n).filter(|&j| acts.row(j) == acts.row(i)).collect())
        .collect();
    let (mut worst_init, mut worst, mut off) = (0.0f32, 0.0f32, 0usize);
    let cells_apart = |p: [f32; 2], q: &[f32]| {
        let (a, b) = (cell_index(p[0], finest), cell_index(p[1], finest));
        let (c, d) = (cell_index(q[0], finest), cell_index(q[1], finest));
        a.abs_diff(c).max(b.abs_diff(d))
    };
    let apart = |p: [f32; 2], q: &[f32]| (p[0] - q[0]).abs().max((p[1] - q[1]).abs());
    for (i, same_i) in same.iter().enumerate() {
        let init = landing.normalize(landed.init_raw[i]);
        let got = landed.points[i];
        worst_init = worst_init.max(
            same_i
                .iter()
                .map(|&j| apart(init, own.row(j)))
                .fold(f32::INFINITY, f32::min),
        );
        worst = worst.max(
            same_i
                .iter()
                .map(|&j| apart(got, own.row(j)))
                .fold(f32::INFINITY, f32::min),
        );
        if same_i.iter().all(|&j| cells_apart(got, own.row(j)) > 1) {
            off += 1;
            println!(
                "row {i}: lands at {got:?}, its own position is {:?}",
                own.row(i)
            );
        }
        // The cell at any level is the grid index of the normalized position.
        for g in [1, 4, 8, 80] {
            assert_eq!(
                landed.cell(i, g),
                Some((cell_index(got[0], g), cell_index(got[1], g)))
            );
        }
    }
    let dups = same.iter().filter(|s| s.len() > 1).count();
    println!("{dups} of {n} rows repeat another row's vector");
    println!(
        "own vectors: initial positions off by at most {worst_init:.2e}, final by {worst:.4} \
         (a {finest}×{finest} cell is {:.4})",
        1.0 / finest as f32
    );
    assert!(worst_init < 1e-5, "initial positions off by {worst_init}");
    assert_eq!(
        off, 0,
        "{off} of {n} vectors land more than one cell from their own"
    );

    // A t-SNE atlas of the same run: the neighbour-weighted position only, no epochs.
    let tsne_dir = dir.join("atlas-tsne");
    let out = Command::new(common::atlas_bin())
        .args([
            "build",
            "--layer",
            "head",
            "--grids",
            "4,8",
            "--min-count",
            "1",
        ])
        .args(["--icon-levels", "none", "--layout", "tsne"])
        .arg("--run")
        .arg(&run)
        .arg("--out")
        .arg(&tsne_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tsne = AtlasLanding::load(&tsne_dir).unwrap();
    assert!(matches!(tsne.method, LandingMethod::Tsne { .. }));
    let tsne_own = npy::read(&tsne_dir.join("layout_normalized.npy")).unwrap();
    let t_landed = tsne.land(&acts.data, c).unwrap();
    assert_eq!(t_landed.n_epochs, 0);
    assert_eq!(t_landed.raw, t_landed.init_raw);
    assert!(t_landed.description.contains("no optimization epochs"));
    for (i, same_i) in same.iter().enumerate() {
        let d = same_i
            .iter()
            .map(|&j| apart(t_landed.points[i], tsne_own.row(j)))
            .fold(f32::INFINITY, f32::min);
        assert!(d < 1e-5, "t-SNE row {i}: lands {d} from its own position");
    }

    // The One image page: the image is prepared as the collection's loader prepares it, its
    // vectors at the run's positions are the run's rows, and they land near those rows.
    let prov = provenance(&run, "head");
    assert_eq!(prov.len(), n);
    let image = prov[0].0.clone();
    let cache = Default::default();
    let job = spawn_analysis(
        cache,
        Default::default(),
        AnalysisRequest {
            model: common::model(),
            image: image.clone(),
            layer: Some("head".into()),
            atlas: Some(AtlasTarget {
                root: atlas_dir.clone(),
                grid: finest,
            }),
        },
    );
    let result = job
        .events
        .iter()
        .find_map(|ev| match ev {
            JobEvent::Finished(JobOutcome::Done(a)) => Some(a),
            JobEvent::Finished(JobOutcome::Failed(e)) => panic!("the analysis failed: {e}"),
            JobEvent::Finished(_) => panic!("the analysis was cancelled"),
            _ => None,
        })
        .unwrap();
    assert_eq!(result.preprocess, Preprocess::Squash);
    let model = model();
    let loaded = spawn_loader(
        std::sync::Arc::new(vec![image.clone()]),
        vec![0],
        1,
        Preprocess::Squash,
        model.info.size(),
        1,
    )
    .recv()
    .unwrap();
    assert_eq!(loaded.indices, vec![0]);
    assert_eq!(
        to_chw_f32(&result.analysis.input),
        loaded.pixels,
        "the page's input tensor is the collection loader's"
    );
    let classify_input =
        load_rgb(&image, model.info.classify_preprocess(), model.info.size()).unwrap();
    if model.info.classify_preprocess() != Preprocess::Squash {
        assert_ne!(result.analysis.input, classify_input);
    }
    let a = &result.analysis;
    let page = result.landing.as_ref().expect("a landing");
    assert_eq!(page.grid, finest);
    assert_eq!(page.landed.points.len(), a.h * a.w);
    let again = landing.land(&a.acts, a.c).unwrap();
    assert_eq!(
        again.points, page.landed.points,
        "the page lands with the library"
    );
    let (mut checked, mut worst_page, mut worst_err) = (0, 0.0f32, 0.0f32);
    for (row, (path, y, x)) in prov.iter().enumerate() {
        if *path != image {
            continue;
        }
        let err = common::max_row_relative_error(a.vector(*y, *x), acts.row(row), c);
        // The same model on the same device, another batch (the collection ran 32 at a time).
        let tol = common::device_tolerance(atlas::model::default_device(), 1e-4);
        assert!(err < tol, "row {row}: the page's vector differs by {err}");
        worst_err = worst_err.max(err);
        let got = page.landed.points[y * a.w + x];
        worst_page = worst_page.max(apart(got, own.row(row)));
        assert!(
            cells_apart(got, own.row(row)) <= 1,
            "row {row} ({y}, {x}): the page lands it at {got:?}, its own position is {:?}",
            own.row(row)
        );
        checked += 1;
    }
    println!(
        "the page's vectors at the run's 8 positions: relative difference {worst_err:.1e}, landed \
         at most {worst_page:.4} from the run rows' positions"
    );
    assert_eq!(checked, 8);

    // An atlas whose layout is not one of the activations (a class comparison's axes): the page
    // still analyses the image and says why its vectors are not placed.
    let mut m = atlas::atlas::AtlasManifest::load(&atlas_dir).unwrap();
    m.layout = "comparison x=(attr[2]-attr[1]) y=tsne".into();
    m.save(&atlas_dir).unwrap();
    let job = spawn_analysis(
        Default::default(),
        Default::default(),
        AnalysisRequest {
            model: common::model(),
            image: image.clone(),
            layer: Some("head".into()),
            atlas: Some(AtlasTarget {
                root: atlas_dir.clone(),
                grid: finest,
            }),
        },
    );
    let result = job
        .events
        .iter()
        .find_map(|ev| match ev {
            JobEvent::Finished(JobOutcome::Done(a)) => Some(a),
            JobEvent::Finished(JobOutcome::Failed(e)) => panic!("the analysis failed: {e}"),
            JobEvent::Finished(_) => panic!("the analysis was cancelled"),
            _ => None,
        })
        .unwrap();
    assert!(result.landing.is_none());
    let why = result.landing_error.as_deref().unwrap_or_default();
    assert!(why.contains("cannot be placed"), "{why}");
    assert_eq!(result.analysis.acts.len(), a.acts.len());
}
