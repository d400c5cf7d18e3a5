//! The real-data tier: runs when `ATLAS_DATA` points at the shared data folder (`.ci/run` sets it),
//! and says so and skips otherwise.
use crate::common;

use atlas::classify::{accuracy, classify};
use atlas::collect::{collect, CollectConfig};
use atlas::data::scan_folder;
use atlas::jobs::{CancelToken, Reporter};
use atlas::model::AtlasModel;
use atlas::store::npy;

fn data_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let dir = common::atlas_data();
    if dir.is_none() {
        eprintln!("{test}: skipped, ATLAS_DATA is not set");
    }
    dir
}

/// PyTorch gives 87.4% on these 1,000 files (shorter side 256, centre crop 224).
#[test]
fn efficientnet_lite0_top1_on_imagenet_samples() {
    let Some(data) = data_or_skip("accuracy") else {
        return;
    };
    let model = AtlasModel::load(&common::model(), atlas::model::default_device()).unwrap();
    let scan = scan_folder(&data.join("imagenet-samples")).unwrap();
    assert_eq!(scan.images.len(), 1000, "problems: {:?}", scan.problems);
    let results = classify(&model, &scan.images, 5, 50, 2, |_, _| {}).unwrap();
    let (correct, labelled) = accuracy(&results);
    let acc = correct as f64 / labelled as f64;
    println!(
        "EfficientNet-Lite0 through the Rust path: top-1 {correct}/{labelled} = {:.2}%",
        acc * 100.0
    );
    assert_eq!(labelled, 1000, "every file name carries its synset");
    assert!(acc >= 0.85, "top-1 {acc:.4} < 0.85");
}

/// Collection on real photographs: shapes, finite values, and the head layer's attributions
/// pointing at the right class for most Imagenette classes.
#[test]
fn collection_on_imagenette() {
    let Some(data) = data_or_skip("collection") else {
        return;
    };
    let root = data.join("imagenette-val");
    // 30 images of each of the 10 classes, through symlinks, to keep the tier quick.
    let subset = common::class_subset(&root, "imagenette-subset", 30);
    let out = subset.join("run");
    let cfg = CollectConfig {
        model: common::model(),
        images: subset.to_path_buf(),
        out: out.clone(),
        ..Default::default()
    };
    let (tx, _rx) = crossbeam_channel::unbounded();
    let summary = collect(&cfg, &Reporter::new(tx), &CancelToken::default())
        .unwrap()
        .unwrap();
    let m = &summary.manifest;
    assert_eq!(m.images_done, 300);
    assert_eq!(m.problems, 0);
    let model = AtlasModel::load(&common::model(), tch::Device::Cpu).unwrap();
    let images = atlas::collect::RunFolder::new(&out)
        .read_image_list()
        .unwrap();
    for layer in &m.layers {
        let acts = npy::read(&out.join(&layer.dir).join("acts.npy")).unwrap();
        let attr = npy::read(&out.join(&layer.dir).join("attr.npy")).unwrap();
        assert_eq!((acts.rows, acts.cols), (300, layer.channels));
        assert_eq!((attr.rows, attr.cols), (300, 1000));
        assert!(
            acts.data.iter().chain(&attr.data).all(|v| v.is_finite()),
            "{} has non-finite values",
            layer.name
        );
        // Only the head ends in ReLU6; the stage outputs end in a linear projection (+ skip).
        if layer.name == "head" {
            assert!(
                acts.data.iter().all(|v| (0.0..=6.0).contains(v)),
                "ReLU6 outputs lie in [0, 6]"
            );
        } else {
            assert!(
                acts.data.iter().any(|v| *v < 0.0),
                "{}: a linear projection has negative outputs",
                layer.name
            );
        }
    }
    // Head layer: per class folder, the class with the largest mean attribution.
    let head = m
        .layers
        .iter()
        .find(|l| Some(&l.name) == model.info.linear_head_layer.as_ref())
        .unwrap();
    let attr = npy::read(&out.join(&head.dir).join("attr.npy")).unwrap();
    let mut hits = 0;
    for class in 0..10 {
        let rows: Vec<usize> = (0..300)
            .filter(|r| images[*r].2 == images[class * 30].2)
            .collect();
        let truth = images[class * 30].2.unwrap();
        let mean: Vec<f32> = (0..1000)
            .map(|c| rows.iter().map(|r| attr.row(*r)[c]).sum::<f32>())
            .collect();
        let best = (0..1000)
            .max_by(|a, b| mean[*a].total_cmp(&mean[*b]))
            .unwrap();
        hits += (best == truth) as usize;
    }
    println!("head-layer mean attribution names the folder's class for {hits}/10 classes");
    assert!(hits >= 8, "only {hits}/10");
}

/// UMAP on real activations: EfficientNet-Lite0 head-layer vectors (1280-d, 6 positions in each
/// of 40 Imagenette images per class, 2,400 rows; label = the image's folder class), laid out by
/// our UMAP and by umap-learn (`benches/layout_bench.py score`, same parameters 50 / 0.05 /
/// cosine, random_state 0). Ours must not be worse than umap-learn by more than 0.02 in
/// trustworthiness (k = 15) or in 2-D neighbour label agreement (fraction of each row's 15
/// nearest 2-D neighbours with its label). A seed must also reproduce our layout exactly.
#[test]
fn umap_on_imagenette_activations_matches_umap_learn() {
    use atlas::layout::{umap, UmapParams};
    let Some(data) = data_or_skip("umap on activations") else {
        return;
    };
    let root = data.join("imagenette-val");
    let subset = common::class_subset(&root, "imagenette-umap", 40);
    let out = subset.join("run");
    let cfg = CollectConfig {
        model: common::model(),
        images: subset.to_path_buf(),
        out: out.clone(),
        layers: vec!["head".into()],
        samples_per_image: 6,
        ..Default::default()
    };
    let (tx, _rx) = crossbeam_channel::unbounded();
    let summary = collect(&cfg, &Reporter::new(tx), &CancelToken::default())
        .unwrap()
        .unwrap();
    let layer = &summary.manifest.layers[0];
    let acts = npy::read(&out.join(&layer.dir).join("acts.npy")).unwrap();
    assert_eq!(acts.rows, 2400);
    // Row → image (provenance.csv column 2) → the image's folder class.
    let images = atlas::collect::RunFolder::new(&out)
        .read_image_list()
        .unwrap();
    let prov = std::fs::read_to_string(out.join("provenance.csv")).unwrap();
    let labels: Vec<f32> = prov
        .lines()
        .skip(1)
        .map(|l| {
            let img: usize = l.split(',').nth(2).unwrap().parse().unwrap();
            images[img].2.expect("folder class") as f32
        })
        .collect();
    assert_eq!(labels.len(), acts.rows);

    let params = UmapParams {
        seed: 3,
        ..Default::default()
    };
    let run = || {
        umap(
            &acts.data,
            acts.rows,
            acts.cols,
            &params,
            &mut |_, _| {},
            &|| false,
        )
        .unwrap()
        .unwrap()
    };
    let ours = run();
    assert_eq!(ours, run(), "the same seed must give the same layout");
    let flat: Vec<f32> = ours.iter().flatten().copied().collect();
    let (x, l, y) = (
        subset.join("x.npy"),
        subset.join("labels.npy"),
        subset.join("ours.npy"),
    );
    npy::write(&x, &acts.data, acts.rows, acts.cols, npy::Dtype::F32).unwrap();
    npy::write(&l, &labels, acts.rows, 1, npy::Dtype::F32).unwrap();
    npy::write(&y, &flat, acts.rows, 2, npy::Dtype::F32).unwrap();
    let script = atlas::defaults::project_dir().join("benches/layout_bench.py");
    let res = std::process::Command::new(common::python())
        .arg(&script)
        .args(["score", "--data"])
        .arg(&x)
        .arg("--labels")
        .arg(&l)
        .arg("--ours")
        .arg(&y)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let text = String::from_utf8_lossy(&res.stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let get = |tool: &str, key: &str| v[tool][key].as_f64().unwrap();
    println!(
        "UMAP on {} head-layer vectors: trustworthiness ours {:.4} / umap-learn {:.4}, \
         neighbour label agreement ours {:.4} / umap-learn {:.4}",
        acts.rows,
        get("ours", "trust"),
        get("umap_learn", "trust"),
        get("ours", "agree"),
        get("umap_learn", "agree")
    );
    assert!(get("ours", "trust") >= get("umap_learn", "trust") - 0.02);
    assert!(get("ours", "agree") >= get("umap_learn", "agree") - 0.02);
}
