//! The export script's other model families honour the contract: lucid's InceptionV1 (random
//! weights here; the real ones need the internet) and a torchvision classifier by name. Both go
//! through the double-backward attribution path with the max-pool relaxation, checked against the
//! independent forward-mode reference.
use crate::common;

use std::path::{Path, PathBuf};

use atlas::collect::attribution::{forward_with_attributions, AttributionMethod, LayerSamples};
use atlas::collect::positions::Position;
use atlas::collect::{collect, CollectConfig};
use atlas::jobs::{CancelToken, Reporter};
use atlas::model::AtlasModel;
use atlas::store::npy::{self, Dtype};
use tch::{Device, Kind};

pub(crate) fn export(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = std::process::Command::new(common::python())
        .arg(atlas::defaults::project_dir().join("models/export.py"))
        .args(args)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "export {args:?} failed");
    out.with_extension("pt")
}

/// Rust double-backward rows against tests/reference/attribution_ref.py for two positions in
/// each layer; returns the largest row-relative error (each must be below 1e-3).
pub(crate) fn check_against_reference(model: &AtlasModel, layers: &[&str], dir: &Path) -> f32 {
    let (w, h) = model.info.size();
    let (pixels, x) = common::bundled_batch(model, 2);
    let mut positions = vec![];
    let mut entries = vec![];
    for name in layers {
        let l = model.info.layer_index(name).unwrap();
        let info = &model.info.layers[l];
        let pos = vec![
            Position { y: 1, x: 2 },
            Position {
                y: info.height - 2,
                x: info.width / 2,
            },
        ];
        for (i, p) in pos.iter().enumerate() {
            entries.push(serde_json::json!({"image": i, "layer": name, "y": p.y, "x": p.x}));
        }
        positions.push((l, pos));
    }
    let samples: Vec<LayerSamples> = positions
        .iter()
        .map(|(l, p)| LayerSamples {
            layer: *l,
            positions: p,
        })
        .collect();
    let (_, attrs) =
        forward_with_attributions(model, &x, &samples, AttributionMethod::DoubleBackward).unwrap();
    let ours: Vec<f32> = attrs
        .iter()
        .flat_map(|a| Vec::<f32>::try_from(a.to_kind(Kind::Float).flatten(0, -1)).unwrap())
        .collect();

    let reference = common::attribution_reference(
        &model.path,
        &pixels,
        [2, 3, h as usize, w as usize],
        entries,
        dir,
    );
    let k = model.num_classes();
    let mut worst = 0f32;
    for (row, (a, b)) in ours.chunks(k).zip(reference.data.chunks(k)).enumerate() {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs())) / scale.max(1e-12);
        assert!(
            scale > 0.0 && err < 1e-3,
            "{}: row {row}: error {err}, scale {scale}",
            model.info.name
        );
        worst = worst.max(err);
    }
    println!(
        "{} {layers:?}: attribution vs the PyTorch reference, max row-relative error {worst:.2e}",
        model.info.name
    );
    worst
}

fn collect_two(model: &Path, layers: &[&str], dir: &Path) -> atlas::collect::CollectSummary {
    let cfg = CollectConfig {
        model: model.to_path_buf(),
        images: common::assets(),
        layers: layers.iter().map(|s| s.to_string()).collect(),
        out: dir.join("run"),
        limit: Some(3),
        acts_dtype: Dtype::F16,
        ..Default::default()
    };
    let (tx, _rx) = crossbeam_channel::unbounded();
    collect(&cfg, &Reporter::new(tx), &CancelToken::default())
        .unwrap()
        .unwrap()
}

#[test]
fn inceptionv1_export_with_random_weights() {
    let dir = common::scratch("inceptionv1");
    let pt = export(&dir, "inceptionv1", &["inceptionv1", "--weights", "random"]);
    let model = AtlasModel::load(&pt, Device::Cpu).unwrap();
    assert_eq!(model.num_classes(), 1008, "lucid's 1008 logits");
    let names: Vec<&str> = model.info.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a",
            "mixed5b"
        ]
    );
    let l4a = &model.info.layers[2];
    assert_eq!(
        (l4a.channels, l4a.height),
        (508, 14),
        "mixed4a has 508 channels, not 512"
    );
    assert_eq!(model.info.linear_head_layer.as_deref(), Some("mixed5b"));
    assert!(!model.has_jvp());
    // mixed4a reaches the logits through the 4e→5a max-pool: the relaxation is on that path.
    check_against_reference(&model, &["mixed4a", "mixed5a"], &dir);
    let summary = collect_two(&pt, &["mixed4c", "mixed5b"], &dir);
    let acts = npy::read(
        &dir.join("run")
            .join(&summary.manifest.layers[0].dir)
            .join("acts.npy"),
    )
    .unwrap();
    assert_eq!((acts.rows, acts.cols, acts.dtype), (3, 512, Dtype::F16));
}

#[test]
fn torchvision_resnet18_export_by_name() {
    let dir = common::scratch("resnet18");
    let pt = export(
        &dir,
        "resnet18",
        &[
            "torchvision",
            "--arch",
            "resnet18",
            "--layers",
            "layer1,layer2,layer3,layer4",
            "--weights",
            "none",
        ],
    );
    let model = AtlasModel::load(&pt, Device::Cpu).unwrap();
    assert_eq!(model.num_classes(), 1000);
    let shapes: Vec<(i64, i64)> = model
        .info
        .layers
        .iter()
        .map(|l| (l.channels, l.height))
        .collect();
    assert_eq!(shapes, [(64, 56), (128, 28), (256, 14), (512, 7)]);
    check_against_reference(&model, &["layer2", "layer3"], &dir);
    let summary = collect_two(&pt, &["layer3", "layer4"], &dir);
    assert_eq!(summary.manifest.images_done, 3);
}
