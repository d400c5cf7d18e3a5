//! One image through the model (`atlas::analysis::single_image`, spec §9.1) on the embedded
//! EfficientNet-Lite0 and a bundled photograph: the prediction equals `classify`'s, the activation
//! grid is the layer's, position-major; the spatial attribution map equals an independent PyTorch
//! reference (eager model rebuilt from the sidecar: tests/reference/attribution_map_ref.py, which
//! checks itself against forward-mode AD) for stage4 and the head; and each atlas cell's own mean
//! is nearest to that cell.
mod common;

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
    std::fs::remove_dir_all(&dir).unwrap();
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
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nearest_cells_find_each_cells_own_mean() {
    // A tiny atlas of the head layer: 8 images × 4 positions, grids 2 and 4, no icons.
    let dir = common::scratch("analysis_nearest");
    let run = dir.join("run");
    let out = Command::new(common::atlas_bin())
        .args([
            "collect",
            "--layers",
            "head",
            "--samples",
            "4",
            "--limit",
            "8",
        ])
        .arg("--images")
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
        let best = sims.iter().cloned().fold(f64::MIN, f64::max);
        assert!((*sim as f64 - best).abs() < 1e-5, "position {p}");
        assert!(
            (sims[*cell] - best).abs() < 1e-5,
            "position {p}: cell {cell}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
