//! Patch attack (spec §8): Lanczos resizing and compositing byte for byte against Pillow, the
//! probabilities of composites against the eager PyTorch model (both through the independent
//! reference `tests/reference/attack_ref.py`), the batch protocols' bookkeeping against
//! composites classified one by one, cancellation, and the `atlas attack` CLI end to end with
//! its error messages.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use atlas::attack::batch::{
    run_batch, spawn_batch, BatchConfig, BatchEvent, Cancelled, ImageInput, PatchInput, RowKind,
};
use atlas::attack::composite::{composite, prepare_background, resize_patch};
use atlas::attack::sweep::{size_sweep, sweep_ratios};
use atlas::attack::{load_image, probe, Corner};
use atlas::data::resize_lanczos;
use atlas::jobs::{JobEvent, JobOutcome};
use atlas::model::{default_device, AtlasModel};
use atlas::store::npy;
use image::RgbImage;

/// A deterministic pattern with sharp edges and gradients (ringing and clipping show up).
fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            ((x * 37 + y * 11) % 256) as u8,
            ((x * x + 3 * y) % 256) as u8,
            if (x / 5 + y / 3) % 2 == 0 { 250 } else { 5 },
        ])
    })
}

/// A bundled photograph decoded by us, cropped to an odd size and saved as PNG, so that the
/// reference starts from exactly the same pixels (JPEG decoders differ in their last bits).
fn photo_png(file: &str, crop: (u32, u32, u32, u32), dir: &Path, name: &str) -> PathBuf {
    let img = load_image(&common::assets().join(file)).unwrap();
    let (x, y, w, h) = crop;
    let img = image::imageops::crop_imm(&img, x, y, w, h).to_image();
    let path = dir.join(name);
    img.save(&path).unwrap();
    path
}

fn run_ref(args: &[&std::ffi::OsStr]) {
    common::run_reference("attack_ref.py", args);
}

#[test]
fn lanczos_resize_is_byte_exact_with_pillow() {
    let dir = common::scratch("attack_lanczos");
    let cases: Vec<(RgbImage, &str)> = vec![
        (pattern(13, 7), "5x4,11x9,13x3,1x1,40x7"),
        (pattern(97, 131), "224x224,89x89,22x22,179x179,96x130"),
        (pattern(50, 50), "179x179,224x224,49x49"),
        // Tall: Pillow runs the vertical pass first for these (see data::resize).
        (pattern(60, 300), "50x50,59x224,224x224,30x20"),
        (
            load_image(&common::assets().join("unlabelled/skimage_chelsea.png")).unwrap(),
            "224x224,67x67,300x451,451x299",
        ),
    ];
    for (i, (img, sizes)) in cases.iter().enumerate() {
        let src = dir.join(format!("src{i}.png"));
        img.save(&src).unwrap();
        let out = dir.join(format!("ref{i}.npy"));
        run_ref(&[
            "resize".as_ref(),
            "--image".as_ref(),
            src.as_os_str(),
            "--sizes".as_ref(),
            sizes.as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
        let reference = npy::read(&out).unwrap();
        for (r, size) in sizes.split(',').enumerate() {
            let (w, h) = size.split_once('x').unwrap();
            let (w, h): (u32, u32) = (w.parse().unwrap(), h.parse().unwrap());
            let ours = resize_lanczos(img, (w, h));
            let n = (w * h * 3) as usize;
            let theirs: Vec<u8> = reference.row(r)[..n].iter().map(|&v| v as u8).collect();
            let differing = ours
                .as_raw()
                .iter()
                .zip(&theirs)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                differing,
                0,
                "{}x{} → {w}x{h}: {differing} of {n} bytes differ from Pillow",
                img.width(),
                img.height()
            );
        }
    }
}

#[test]
fn composites_and_probabilities_match_pil_and_eager_torch() {
    let dir = common::scratch("attack_composite");
    let bg_path = photo_png(
        "unlabelled/skimage_coffee.png",
        (13, 7, 401, 333),
        &dir,
        "bg.png",
    );
    let patch_path = photo_png(
        "n02110341/foolbox_imagenet_16_251.jpg",
        (100, 60, 251, 173),
        &dir,
        "patch.png",
    );
    // Ratios chosen to hit float truncation (0.29·224 = 64.96), tiny and full patches.
    let settings: Vec<(f64, Corner)> = vec![
        (0.0, Corner::TopLeft),
        (0.01, Corner::BottomRight),
        (0.07, Corner::TopRight),
        (0.29, Corner::BottomLeft),
        (0.4, Corner::TopLeft),
        (0.55, Corner::TopRight),
        (0.79, Corner::BottomRight),
        (1.0, Corner::BottomLeft),
    ];
    let spec: Vec<String> = settings
        .iter()
        .map(|(r, c)| format!("{r}:{}", c.label()))
        .collect();
    let model_path = common::model();
    run_ref(&[
        "composite".as_ref(),
        "--model".as_ref(),
        model_path.as_os_str(),
        "--background".as_ref(),
        bg_path.as_os_str(),
        "--patch".as_ref(),
        patch_path.as_os_str(),
        "--settings".as_ref(),
        spec.join(",").as_ref(),
        "--pixels".as_ref(),
        dir.join("pixels.npy").as_os_str(),
        "--probs".as_ref(),
        dir.join("probs.npy").as_os_str(),
    ]);
    let ref_pixels = npy::read(&dir.join("pixels.npy")).unwrap();
    let ref_probs = npy::read(&dir.join("probs.npy")).unwrap();

    let model = AtlasModel::load(&model_path, default_device()).unwrap();
    let side = model.info.size().0;
    assert_eq!(ref_pixels.cols, (side * side * 3) as usize);
    let bg = prepare_background(&load_image(&bg_path).unwrap(), side);
    let patch = load_image(&patch_path).unwrap();
    let composites: Vec<RgbImage> = settings
        .iter()
        .map(|&(r, c)| composite(&bg, &patch, r, c))
        .collect();
    for (i, (img, (r, c))) in composites.iter().zip(&settings).enumerate() {
        let theirs: Vec<u8> = ref_pixels.row(i).iter().map(|&v| v as u8).collect();
        assert!(
            img.as_raw() == &theirs,
            "composite {r} {c} differs from PIL in {} bytes",
            img.as_raw()
                .iter()
                .zip(&theirs)
                .filter(|(a, b)| a != b)
                .count()
        );
    }
    // The patch really is there: ratio 0 is the background, the others are not.
    assert_eq!(composites[0], bg);
    assert!(composites[1..].iter().all(|c| c != &bg));

    let probs = probe::probabilities(&model, &composites).unwrap();
    let k = model.num_classes();
    assert_eq!(ref_probs.cols, k);
    for (i, p) in probs.iter().enumerate() {
        let sum: f32 = p.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "softmax sums to {sum}");
        let worst = p
            .iter()
            .zip(ref_probs.row(i))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let tol = common::device_tolerance(model.device, 1e-4);
        assert!(worst < tol, "setting {i}: max |ΔP| = {worst:e}");
    }
    // At full size the patch (a Dalmatian) dominates; without it, it is not the top class.
    assert_eq!(probe::top1(&probs[7]).0, 251);
    assert_ne!(probe::top1(&probs[0]).0, 251);

    // The sweep gives the same numbers for the same settings, reports progress and stops on
    // cancel.
    let ratios = [0.0, 0.29, 0.79];
    let mut calls = Vec::new();
    let points = size_sweep(
        &model,
        &load_image(&bg_path).unwrap(),
        &patch,
        &[Corner::BottomLeft, Corner::BottomRight],
        &ratios,
        &|| false,
        &mut |d, t| calls.push((d, t)),
    )
    .unwrap();
    assert_eq!(points.len(), 6);
    assert_eq!(calls.last(), Some(&(6, 6)));
    assert_eq!(points[1].corner, Corner::BottomLeft);
    // Same composites; only the batch they were classified in differs (float summation order).
    let tol = common::device_tolerance(model.device, 1e-5);
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol);
    assert!(close(&points[1].probs, &probs[3]), "0.29 bottom-left");
    assert!(close(&points[5].probs, &probs[6]), "0.79 bottom-right");
    let cancelled = size_sweep(
        &model,
        &bg,
        &patch,
        &Corner::ALL,
        &sweep_ratios(0.8, 0.01),
        &|| true,
        &mut |_, _| {},
    );
    assert!(cancelled.is_err());
}

/// Two jeep photographs (both classified jeep) attacked with the Dalmatian photograph and a
/// yurt photograph towards Dalmatian.
fn jeep_config() -> BatchConfig {
    let assets = common::assets();
    let mut cfg = BatchConfig::new(
        common::model(),
        ImageInput::Folder(assets.join("n03594945")),
        vec![
            PatchInput::File(assets.join("n02110341/foolbox_imagenet_16_251.jpg")),
            PatchInput::File(assets.join("n04613696/foolbox_imagenet_08_915.jpg")),
        ],
        609, // jeep
        251, // Dalmatian
    );
    cfg.dynamic_ratios = vec![0.8];
    cfg.static_ratio = 0.5;
    cfg.static_corner = Corner::BottomRight;
    cfg
}

#[test]
fn batch_protocols_agree_with_composites_classified_one_by_one() {
    let cfg = jeep_config();
    let mut stages = Vec::new();
    let table = run_batch(&cfg, &|| false, &mut |ev| {
        if let BatchEvent::Progress { stage, .. } = ev {
            if stages.last() != Some(&stage) {
                stages.push(stage);
            }
        }
    })
    .unwrap();
    assert_eq!(
        stages,
        vec![
            atlas::attack::batch::STAGE_PATCHES,
            atlas::attack::batch::STAGE_BEFORE,
            atlas::attack::batch::STAGE_ATTACK
        ]
    );

    // Recompute every number from single composites.
    let model = AtlasModel::load(&cfg.model, default_device()).unwrap();
    let side = model.info.size().0;
    let images = common::image_files(&common::assets().join("n03594945"));
    let backgrounds: Vec<RgbImage> = images
        .iter()
        .map(|p| prepare_background(&load_image(p).unwrap(), side))
        .collect();
    let before = probe::probabilities(&model, &backgrounds).unwrap();
    let correct: Vec<usize> = (0..images.len())
        .filter(|&i| probe::top1(&before[i]).0 == 609)
        .collect();
    assert!(!correct.is_empty(), "the bundled jeeps should be jeeps");
    let mut settings = vec![(cfg.static_ratio, cfg.static_corner)];
    for c in Corner::ALL {
        for &r in &cfg.dynamic_ratios {
            settings.push((r, c));
        }
    }
    assert_eq!(table.rows.len(), 2);
    assert_eq!(table.images_read, images.len());
    for (row, patch) in table.rows.iter().zip(&cfg.patches) {
        let patch_img = patch.load().unwrap();
        let alone = probe::probabilities(&model, &[resize_patch(&patch_img, side)]).unwrap();
        let (c, p) = probe::top1(&alone[0]);
        assert_eq!(row.patch_class.as_ref().unwrap().index, c);
        let tol = f64::from(common::device_tolerance(model.device, 1e-5));
        assert!((f64::from(row.patch_prob) - f64::from(p)).abs() < tol / 10.0);
        let (mut fs, mut fd, mut ps, mut pd, mut pb) = (0, 0, 0.0, 0.0, 0.0);
        for &i in &correct {
            let comps: Vec<RgbImage> = settings
                .iter()
                .map(|&(r, c)| composite(&backgrounds[i], &patch_img, r, c))
                .collect();
            let probs = probe::probabilities(&model, &comps).unwrap();
            fs += usize::from(probe::top1(&probs[0]).0 == 251);
            fd += usize::from(probs.iter().any(|p| probe::top1(p).0 == 251));
            ps += f64::from(probs[0][251]);
            pd += probs.iter().map(|p| f64::from(p[251])).fold(0.0, f64::max);
            pb += f64::from(before[i][251]);
        }
        let n = correct.len() as f64;
        assert_eq!(row.correct_before, correct.len());
        assert_eq!((row.flipped_static, row.flipped_dynamic), (fs, fd));
        assert!((row.p_target_static - ps / n).abs() < tol);
        assert!((row.p_target_dynamic - pd / n).abs() < tol);
        assert!((row.p_target_before - pb / n).abs() < tol / 10.0);
        assert!(row.flipped_dynamic >= row.flipped_static);
        assert!(row.p_target_dynamic >= row.p_target_static);
    }
    // The Dalmatian photo at 0.8 of the image flips a jeep to Dalmatian (measured: 88% P).
    assert_eq!(table.rows[0].patch_class.as_ref().unwrap().index, 251);
    assert!(table.rows[0].flipped_dynamic >= 1);
    assert_eq!(
        table.rows[1].flipped_dynamic, 0,
        "a yurt does not make a Dalmatian"
    );
}

#[test]
fn batch_reports_unreadable_images_and_stops_on_cancel() {
    let dir = common::scratch("attack_cancel");
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let jeep = common::assets().join("n03594945/foolbox_imagenet_06_609.jpg");
    let mut cfg = jeep_config();
    cfg.images = ImageInput::Files(vec![broken.clone(), jeep]);
    cfg.patches = vec![PatchInput::Image {
        name: "grey".into(),
        image: RgbImage::from_pixel(8, 8, image::Rgb([128, 128, 128])),
    }];
    cfg.noise_seed = Some(3);
    cfg.dynamic_ratios = vec![0.3];
    let job = spawn_batch(cfg.clone());
    let mut problems = Vec::new();
    let table = loop {
        match job.events.recv().unwrap() {
            JobEvent::Problem(p) => problems.push(p),
            JobEvent::Finished(JobOutcome::Done(t)) => break t,
            JobEvent::Finished(other) => panic!("job ended with {other:?}"),
            _ => {}
        }
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, broken);
    assert_eq!((table.images_listed, table.images_read), (2, 1));
    assert_eq!(table.problems, problems);
    assert_eq!(table.rows.len(), 2);
    assert_eq!(table.rows[1].kind, RowKind::Noise);
    assert_eq!(table.rows[1].patch, "noise");

    let job = spawn_batch(cfg);
    job.cancel.cancel();
    let outcome = loop {
        if let JobEvent::Finished(o) = job.events.recv().unwrap() {
            break o;
        }
    };
    assert!(matches!(outcome, JobOutcome::Cancelled), "{outcome:?}");
    let err = run_batch(&jeep_config(), &|| true, &mut |_| {}).unwrap_err();
    assert!(err.is::<Cancelled>());
}

fn atlas_attack(args: &[&str]) -> std::process::Output {
    Command::new(common::atlas_bin())
        .arg("attack")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_attack_end_to_end() {
    let dir = common::scratch("attack_cli");
    let assets = common::assets();
    let out = dir.join("table.csv");
    let dalmatian = assets.join("n02110341/foolbox_imagenet_16_251.jpg");
    let patch_dir = dir.join("patches");
    std::fs::create_dir_all(&patch_dir).unwrap();
    std::fs::copy(
        assets.join("n04613696/foolbox_imagenet_08_915.jpg"),
        patch_dir.join("yurt.jpg"),
    )
    .unwrap();
    let model = common::model();
    let run = atlas_attack(&[
        "--model",
        model.to_str().unwrap(),
        "--images",
        assets.join("n03594945").to_str().unwrap(),
        "--patches",
        &format!("{},{}", dalmatian.display(), patch_dir.display()),
        "--original",
        "jeep",
        "--target",
        "n02110341",
        "--noise",
        "--static-ratio",
        "0.5",
        "--static-corner",
        "bottom-right",
        "--dynamic-ratios",
        "0.8",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("jeep (609) → Dalmatian (251)"), "{stdout}");
    let csv = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 3 + 1, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(first[col("patch")], "foolbox_imagenet_16_251");
    assert_eq!(first[col("patch_class")], "251");
    assert_eq!(first[col("images_read")], "2");
    assert_eq!(first[col("static_setting")], "0.5 bottom-right");
    assert!(lines[2].starts_with("patch,yurt,"));
    assert!(lines[3].starts_with("noise,noise,"));
    assert!(lines[4].starts_with("total,all 2 patches,"));
    // Same numbers as the library run of the same configuration.
    let table = run_batch(&jeep_config(), &|| false, &mut |_| {}).unwrap();
    for (line, row) in lines[1..3].iter().zip(&table.rows) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[col("correct_before")], row.correct_before.to_string());
        assert_eq!(f[col("flipped_static")], row.flipped_static.to_string());
        assert_eq!(f[col("flipped_dynamic")], row.flipped_dynamic.to_string());
        // The CLI's batches also hold the noise patch's composites: floats may differ slightly.
        let p: f64 = f[col("p_target_dynamic")].parse().unwrap();
        assert!((p - row.p_target_dynamic).abs() < 1e-4);
    }
    // Atomic write: no temporary file is left beside the table.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn cli_attack_explains_bad_patches_and_unknown_classes() {
    let dir = common::scratch("attack_cli_errors");
    let assets = common::assets();
    let images = assets.join("n03594945");
    let bad = dir.join("notes.jpg");
    std::fs::write(&bad, "these are notes, not a photo").unwrap();
    let out = dir.join("t.csv");
    let run = atlas_attack(&[
        "--images",
        images.to_str().unwrap(),
        "--patches",
        bad.to_str().unwrap(),
        "--original",
        "jeep",
        "--target",
        "Dalmatian",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("patch \"notes\" cannot be used"), "{err}");
    assert!(err.contains("not an image"), "{err}");
    assert!(!out.exists());

    let run = atlas_attack(&[
        "--images",
        images.to_str().unwrap(),
        "--patches",
        assets
            .join("n02110341/foolbox_imagenet_16_251.jpg")
            .to_str()
            .unwrap(),
        "--original",
        "jeep",
        "--target",
        "dalmatia",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("unknown class \"dalmatia\""), "{err}");
    assert!(err.contains("did you mean Dalmatian"), "{err}");

    let run = atlas_attack(&[
        "--images",
        images.to_str().unwrap(),
        "--patches",
        bad.to_str().unwrap(),
        "--original",
        "5000",
        "--target",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("class index 5000 is out of range"), "{err}");
}
