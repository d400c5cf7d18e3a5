//! Models beyond convolutional feature maps, all with random weights (offline): a torchvision ViT
//! (token layers `[B,N,C]`), a Swin (channels-last stages `[B,H,W,C]`) and a hand-written network
//! through `export.py module` (submodules by path, hooks, a token layer). Each is checked against
//! the contract, its attribution against the PyTorch reference (forward-mode AD on the eager model,
//! which finds a position in the module's own tensor independently of the Rust reshape), and the
//! ViT and the hand-written network go through `atlas collect` + `atlas build` (with icons) on the
//! bundled images.
use crate::common;
use crate::model_exports::{check_against_reference, export};

use std::path::Path;
use std::process::Command;

use atlas::analysis::single_image::{analyse_input, attribution_map_for_input};
use atlas::data::{load_rgb, to_chw_f32, Preprocess};
use atlas::model::sidecar::ClassifyPreprocess;
use atlas::model::{AtlasModel, LayerLayout};
use atlas::store::npy;
use tch::Device;

fn run_python(args: &[&str]) {
    let out = Command::new(common::python()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "python {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh subfolder of a test's scratch folder (the references write fixed file names).
fn scratch_dir(dir: &Path, name: &str) -> std::path::PathBuf {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    sub
}

/// `atlas collect` (2 positions per image) then `atlas build` of one 2×2 grid with a few quick
/// icons, through the CLI; checks the run's and the atlas's shapes and that icons were drawn.
fn collect_and_build(pt: &Path, layer: &str, channels: usize, limit: &str, dir: &Path) {
    let run = dir.join("run");
    let atlas_dir = dir.join("atlas");
    let os = |s: &'static str| -> &std::ffi::OsStr { s.as_ref() };
    let assets = common::assets();
    common::atlas_ok(&[
        os("collect"),
        os("--model"),
        pt.as_os_str(),
        os("--images"),
        assets.as_os_str(),
        os("--layers"),
        layer.as_ref(),
        os("--out"),
        run.as_os_str(),
        os("--samples"),
        os("2"),
        os("--limit"),
        limit.as_ref(),
        os("--device"),
        os("cpu"),
    ]);
    let images: usize = limit.parse().unwrap();
    let built = common::atlas_ok(&[
        os("build"),
        os("--run"),
        run.as_os_str(),
        os("--layer"),
        layer.as_ref(),
        os("--out"),
        atlas_dir.as_os_str(),
        os("--grids"),
        os("2"),
        os("--min-count"),
        os("1"),
        os("--neighbors"),
        os("8"),
        os("--steps"),
        os("4"),
        os("--tries"),
        os("1"),
        os("--device"),
        os("cpu"),
    ]);
    println!("{built}");
    let level = atlas_dir.join("levels").join("2");
    let means = npy::read(&level.join("mean_acts.npy")).unwrap();
    assert_eq!(means.cols, channels);
    assert!(
        (1..=4).contains(&means.rows),
        "{} cells in a 2×2 grid",
        means.rows
    );
    let attr = npy::read(&level.join("mean_attr.npy")).unwrap();
    assert_eq!(attr.rows, means.rows);
    // 2·images points were laid out; the icons are real drawings, not one flat colour.
    assert!(built.contains(&format!("{} points", 2 * images)), "{built}");
    let sheet = image::open(level.join("icons").join("sheet_0000.png"))
        .unwrap()
        .to_rgb8();
    let first = *sheet.get_pixel(0, 0);
    let varied = sheet.pixels().filter(|p| **p != first).count();
    assert!(
        varied > 100,
        "the icon sheet is almost one colour ({varied} pixels differ)"
    );
}

/// The One image page's data on `layer`: the grid is the patch grid with every position's vector,
/// and the heat map cell (y, x) for the top class equals the reference attribution of the vector
/// at (y, x) to that class.
fn one_image_matches_reference(model: &AtlasModel, layer: &str, dir: &Path) -> f32 {
    let li = model.info.layer_index(layer).unwrap();
    let info = model.info.layers[li].clone();
    let (w, h) = model.info.size();
    let file = &common::image_files(&common::assets())[0];
    let input = load_rgb(file, Preprocess::Squash, (w, h)).unwrap();
    let analysis = analyse_input(model, input.clone(), li).unwrap();
    let (gh, gw, c) = (
        info.height as usize,
        info.width as usize,
        info.channels as usize,
    );
    assert_eq!((analysis.h, analysis.w, analysis.c), (gh, gw, c));
    assert_eq!(analysis.acts.len(), gh * gw * c);
    let class = analysis.top5[0].0;
    let map = attribution_map_for_input(model, &input, li, class).unwrap();
    assert_eq!(map.len(), gh * gw);

    let cells = [(1, 2), (gh / 2, gw / 2), (gh - 2, gw - 1)];
    let entries = cells
        .iter()
        .map(|(y, x)| serde_json::json!({"image": 0, "layer": layer, "y": y, "x": x}))
        .collect();
    let reference = common::attribution_reference(
        &model.path,
        &to_chw_f32(&input),
        [1, 3, h as usize, w as usize],
        entries,
        dir,
    );
    let k = model.num_classes();
    let mut worst = 0f32;
    for (row, (y, x)) in reference.data.chunks(k).zip(cells) {
        let scale = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = (map[y * gw + x] - row[class]).abs() / scale.max(1e-12);
        assert!(scale > 0.0 && err < 1e-3, "cell ({y}, {x}): error {err}");
        worst = worst.max(err);
    }
    println!("{layer}: One image heat map vs the PyTorch reference, max error {worst:.2e}");
    worst
}

#[test]
fn vit_token_layers_match_pytorch_and_collect_and_build() {
    let dir = common::scratch("vit");
    // Not `encoder.ln`: its patch tokens do not reach the head, which reads the class token only,
    // so their attribution is exactly zero.
    let layers = "encoder.layers.encoder_layer_3,encoder.layers.encoder_layer_9";
    // Random weights, but torchvision zero-initialises the ViT head (every logit and attribution
    // would be 0): a state dict with a random head, through the exporter's state-dict path.
    let weights = dir.join("vit_b_32-random-head.pth");
    run_python(&[
        "-c",
        "import sys, torch, torchvision\n\
         torch.manual_seed(0)\n\
         m = torchvision.models.vit_b_32()\n\
         torch.nn.init.normal_(m.heads.head.weight, std=0.02)\n\
         torch.save(m.state_dict(), sys.argv[1])",
        weights.to_str().unwrap(),
    ]);
    let pt = export(
        &dir,
        "vit_b_32",
        &[
            "torchvision",
            "--arch",
            "vit_b_32",
            "--layers",
            layers,
            "--weights",
            weights.to_str().unwrap(),
        ],
    );
    let model = AtlasModel::load(&pt, Device::Cpu).unwrap();
    for l in &model.info.layers {
        assert_eq!(
            (l.layout, l.prefix_tokens, l.channels, l.height, l.width),
            (LayerLayout::Tokens, 1, 768, 7, 7),
            "{}: 1 class token, then 7×7 patches of 32 px",
            l.name
        );
    }
    assert!(
        model.info.fixed_input_size,
        "a ViT's position embeddings fix its input size"
    );
    assert_eq!(
        model.info.linear_head_layer, None,
        "the head reads the class token"
    );
    check_against_reference(
        &model,
        &[
            "encoder.layers.encoder_layer_3",
            "encoder.layers.encoder_layer_9",
        ],
        &scratch_dir(&dir, "attribution"),
    );
    one_image_matches_reference(
        &model,
        "encoder.layers.encoder_layer_9",
        &scratch_dir(&dir, "one_image"),
    );
    collect_and_build(&pt, "encoder.layers.encoder_layer_9", 768, "6", &dir);
}

#[test]
fn swin_channels_last_stages_match_pytorch() {
    let dir = common::scratch("swin");
    let pt = export(
        &dir,
        "swin_t",
        &[
            "torchvision",
            "--arch",
            "swin_t",
            "--layers",
            // Not `features.7`: the per-token LayerNorm after it makes the logits invariant to
            // scaling a token, so h·∇h logit is exactly zero there.
            "features.5,features.6",
            "--weights",
            "none",
        ],
    );
    let model = AtlasModel::load(&pt, Device::Cpu).unwrap();
    let shapes: Vec<_> = model
        .info
        .layers
        .iter()
        .map(|l| (l.layout, l.channels, l.height, l.width))
        .collect();
    assert_eq!(
        shapes,
        [
            (LayerLayout::ChannelsLast, 384, 14, 14),
            (LayerLayout::ChannelsLast, 768, 7, 7)
        ]
    );
    assert!(!model.info.fixed_input_size, "Swin pads other sizes");
    check_against_reference(&model, &["features.5", "features.6"], &dir);
}

#[test]
fn any_module_by_factory_is_exported_collected_and_built() {
    let dir = common::scratch("module");
    let project = atlas::defaults::project_dir();
    // One line with a WordNet id (gives the synset), the others names only.
    let labels = dir.join("labels.txt");
    let names: Vec<String> = std::iter::once("n01440764 tench".to_string())
        .chain((1..10).map(|i| format!("kind {i}")))
        .collect();
    std::fs::write(&labels, names.join("\n") + "\n").unwrap();
    let factory = format!(
        "{}:tiny_hybrid",
        project.join("models/examples/tiny_hybrid.py").display()
    );
    let pt = export(
        &dir,
        "tiny",
        &[
            "module",
            "--factory",
            &factory,
            "--layers",
            "stages.s1,stages.s2.mix,attn",
            "--labels",
            labels.to_str().unwrap(),
        ],
    );
    let model = AtlasModel::load(&pt, Device::Cpu).unwrap();
    let info = &model.info;
    let shapes: Vec<_> = info
        .layers
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.layout,
                l.prefix_tokens,
                l.channels,
                l.height,
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("stages.s1", LayerLayout::ChannelsFirst, 0, 32, 16),
            ("stages.s2.mix", LayerLayout::ChannelsFirst, 0, 64, 8),
            ("attn", LayerLayout::Tokens, 1, 64, 8)
        ]
    );
    // Preprocessing from the network's timm-style pretrained_cfg: 64 px, crop_pct 0.875.
    assert_eq!(info.input_size, [64, 64]);
    assert_eq!(
        info.classify_preprocess,
        ClassifyPreprocess::ResizeShorterCrop { resize: 73 }
    );
    assert!(
        info.normalization.contains("0.25"),
        "{}",
        info.normalization
    );
    assert_eq!(info.classes.len(), 10);
    assert_eq!(info.classes[0].synset.as_deref(), Some("n01440764"));
    assert_eq!(
        (info.classes[0].name.as_str(), info.classes[3].name.as_str()),
        ("tench", "kind 3")
    );
    // stages.s1 reaches the logits through stage 2's max-pool: the relaxation is on that path.
    check_against_reference(
        &model,
        &["stages.s1", "attn"],
        &scratch_dir(&dir, "attribution"),
    );
    one_image_matches_reference(&model, "attn", &scratch_dir(&dir, "one_image"));
    collect_and_build(&pt, "attn", 64, "25", &dir);

    // The dotted form, from the project folder; a wrong path or a layer that is not a map or
    // tokens is refused with what exists.
    for (layers, expected) in [
        (
            "stages.s3",
            "no submodule 'stages.s3'; 'stages' has: s1, s2",
        ),
        ("head", "layer 'head' is not a [B,C,H,W] feature map"),
    ] {
        let out = Command::new(common::python())
            .current_dir(&project)
            .args([
                "models/export.py",
                "module",
                "--factory",
                "models.examples.tiny_hybrid:tiny_hybrid",
                "--layers",
                layers,
                "--out",
            ])
            .arg(dir.join("refused"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{layers}: {err}"
        );
    }
}
