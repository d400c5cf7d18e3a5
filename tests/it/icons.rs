//! Icon rendering (feature visualization) against an independent PyTorch reference, and the
//! behaviours the issue asks for: a channel's icon drives that channel, whitening matters.
use crate::common;

use atlas::layout::rng::Rng;
use atlas::model::AtlasModel;
use atlas::render::maco::{random_phase, MacoImage, Magnitude};
use atlas::render::objective::{centre_vectors, whiten};
use atlas::render::optimize::{
    accent_score_and_gradient, maco_objective_and_gradient, objective_and_gradient, render_batch,
    AccentSettings,
};
use atlas::render::param::{random_spectrum, spectrum_width, FftImage};
use atlas::render::transforms::Crops;
use atlas::render::{whitening_matrix, CosineForm, Objective, RenderSettings, TransformStack};
use atlas::store::npy;
use tch::{Device, Kind, Tensor};

fn load() -> AtlasModel {
    AtlasModel::load(&common::model(), Device::Cpu).unwrap()
}

/// Activations of `layer` at every position of the first bundled images, `[n, C]`.
fn bundled_activations(model: &AtlasModel, layer: usize, images: usize) -> Tensor {
    let (_, x) = common::bundled_batch(model, images);
    let x = x.to_device(model.device);
    let out = tch::no_grad(|| model.forward(&x)).unwrap();
    let a = &out.layers[layer];
    let c = a.size()[1];
    a.permute([0, 2, 3, 1]).reshape([-1, c])
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(
        t.to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]),
    )
    .unwrap()
}

/// Relative tolerance of objective/gradient comparisons with the fp32 CPU reference: libtorch on
/// CPU agrees to ~1e-6; cuDNN may pick other algorithms (and TF32 where allowed), so looser there.
fn reference_tolerance(device: Device) -> f32 {
    if device.is_cuda() {
        5e-3
    } else {
        1e-4
    }
}

#[test]
fn objective_and_gradient_match_pytorch() {
    // On the machine's default device (CUDA where there is one); the reference runs on the CPU.
    let model = AtlasModel::load(&common::model(), atlas::model::default_device()).unwrap();
    let tol = reference_tolerance(model.device);
    let dir = common::scratch("icons_objective");
    let size = 80i64;
    let b = 3i64;
    // The REC stack's boundary penalty is checked on two of the three layers, with weights that
    // keep both terms visible in the sum (the objective is ~1e-4..1, the penalty ~10..100).
    for (layer_name, form, boundary) in [
        ("stage4", CosineForm::Notebook, 0.0),
        ("stage6", CosineForm::Clean, 1e-2),
        ("head", CosineForm::Notebook, 1e-4),
    ] {
        let layer = model.info.layer_index(layer_name).unwrap();
        let c = model.info.layers[layer].channels;
        // Directions like a cell's mean activation: non-negative, from real images.
        let acts = bundled_activations(&model, layer, 2);
        let dirs = acts.narrow(0, 5, b).abs() + 0.05;
        let spectrum = random_spectrum(b, size, size, 11, model.device) * 20.0;
        let image = FftImage::new(spectrum.set_requires_grad(true), size, size);
        let objective = Objective {
            form,
            cossim_power: 4.0,
        };
        let (obj, grad) = objective_and_gradient(
            &model,
            layer,
            &image,
            &dirs,
            &objective,
            TransformStack::None,
            boundary,
            &mut Rng::new(0),
        )
        .unwrap();
        let wf = spectrum_width(size) as usize;
        let shape = [b as usize, 3, size as usize, wf, 2];
        npy::write_nd(
            &dir.join("spec.npy"),
            &to_vec(&image.spectrum.detach()),
            &shape,
            npy::Dtype::F32,
        )
        .unwrap();
        npy::write(
            &dir.join("dirs.npy"),
            &to_vec(&dirs),
            b as usize,
            c as usize,
            npy::Dtype::F32,
        )
        .unwrap();
        let form_name = if form == CosineForm::Notebook {
            "notebook"
        } else {
            "clean"
        };
        let path = |f: &str| dir.join(f).into_os_string();
        let weight = boundary.to_string();
        common::run_reference(
            "fv_ref.py",
            &[
                "objective".as_ref(),
                "--model".as_ref(),
                common::model().as_os_str(),
                "--layer".as_ref(),
                layer_name.as_ref(),
                "--form".as_ref(),
                form_name.as_ref(),
                "--spectrum".as_ref(),
                &path("spec.npy"),
                "--directions".as_ref(),
                &path("dirs.npy"),
                "--out-obj".as_ref(),
                &path("obj.npy"),
                "--out-grad".as_ref(),
                &path("grad.npy"),
                "--boundary".as_ref(),
                weight.as_ref(),
            ],
        );
        let ref_obj = npy::read(&dir.join("obj.npy")).unwrap().data;
        let ref_grad = npy::read(&dir.join("grad.npy")).unwrap().data;
        let ours_obj = to_vec(&obj);
        let ours_grad = to_vec(&grad);
        let obj_err = common::max_row_relative_error(&ours_obj, &ref_obj, ours_obj.len());
        let per_icon = ref_grad.len() / b as usize;
        let grad_err = common::max_row_relative_error(&ours_grad, &ref_grad, per_icon);
        println!("{layer_name} {form:?} boundary {boundary}: objective {ref_obj:?}, rel. error objective {obj_err:.2e}, gradient {grad_err:.2e}");
        assert!(
            ref_obj.iter().all(|v| v.abs() > 0.0),
            "degenerate objective {ref_obj:?}"
        );
        assert!(obj_err < tol, "objective differs: {obj_err}");
        assert!(grad_err < tol, "gradient differs: {grad_err}");
    }
}

/// The MACO parameterization (fixed magnitude, trainable phase, per-icon standardization, gain,
/// lucid colours, sigmoid) and the objective: value and phase gradient against the PyTorch
/// reference, on the built-in spectrum and on one estimated from the bundled photographs.
#[test]
fn maco_objective_and_gradient_match_pytorch() {
    let model = AtlasModel::load(&common::model(), atlas::model::default_device()).unwrap();
    let tol = reference_tolerance(model.device);
    let dir = common::scratch("icons_maco_objective");
    let size = 80i64;
    let b = 3i64;
    let photos: Vec<image::RgbImage> = common::image_files(&common::assets())
        .iter()
        .take(6)
        .map(|f| {
            image::open(f)
                .unwrap()
                .resize_exact(
                    size as u32,
                    size as u32,
                    image::imageops::FilterType::Triangle,
                )
                .to_rgb8()
        })
        .collect();
    let own = Magnitude::from_images(&photos, size, size).unwrap();
    // stage6: centre position, notebook form; head: every position averaged, clean form.
    for (layer_name, magnitude, gain, all_positions) in [
        ("stage6", Magnitude::default_for(size, size), 1.0, false),
        ("head", own, 1.5, true),
    ] {
        let (form, form_name) = if all_positions {
            (CosineForm::Clean, "clean")
        } else {
            (CosineForm::Notebook, "notebook")
        };
        let layer = model.info.layer_index(layer_name).unwrap();
        let c = model.info.layers[layer].channels;
        let acts = bundled_activations(&model, layer, 2);
        let dirs = acts.narrow(0, 7, b).abs() + 0.05;
        let phase = random_phase(b, size, size, 5, model.device).set_requires_grad(true);
        let image = MacoImage::new(phase, &magnitude, gain);
        let crops = Crops {
            crops: 0,
            min_side: 1.0,
            max_side: 1.0,
            centre_sd: 0.0,
            noise: 0.0,
        };
        let (obj, grad, pixels) = maco_objective_and_gradient(
            &model,
            layer,
            &image,
            &dirs,
            &Objective {
                form,
                cossim_power: 4.0,
            },
            &crops,
            all_positions,
            &mut Rng::new(0),
        )
        .unwrap();
        assert!(pixels.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        let wf = (size / 2 + 1) as usize;
        npy::write_nd(
            &dir.join("phase.npy"),
            &to_vec(&image.phase.detach()),
            &[b as usize, 3, size as usize, wf],
            npy::Dtype::F32,
        )
        .unwrap();
        npy::write_nd(
            &dir.join("mag.npy"),
            &magnitude.values,
            &[3, size as usize, wf],
            npy::Dtype::F32,
        )
        .unwrap();
        npy::write(
            &dir.join("dirs.npy"),
            &to_vec(&dirs),
            b as usize,
            c as usize,
            npy::Dtype::F32,
        )
        .unwrap();
        let path = |f: &str| dir.join(f).into_os_string();
        let gain_arg = gain.to_string();
        common::run_reference(
            "fv_ref.py",
            &[
                "objective".as_ref(),
                "--model".as_ref(),
                common::model().as_os_str(),
                "--layer".as_ref(),
                layer_name.as_ref(),
                "--param".as_ref(),
                "maco".as_ref(),
                "--phase".as_ref(),
                &path("phase.npy"),
                "--magnitude".as_ref(),
                &path("mag.npy"),
                "--gain".as_ref(),
                gain_arg.as_ref(),
                "--form".as_ref(),
                form_name.as_ref(),
                "--where".as_ref(),
                if all_positions { "all" } else { "centre" }.as_ref(),
                "--directions".as_ref(),
                &path("dirs.npy"),
                "--out-obj".as_ref(),
                &path("obj.npy"),
                "--out-grad".as_ref(),
                &path("grad.npy"),
            ],
        );
        let ref_obj = npy::read(&dir.join("obj.npy")).unwrap().data;
        let ref_grad = npy::read(&dir.join("grad.npy")).unwrap().data;
        let ours_obj = to_vec(&obj);
        let ours_grad = to_vec(&grad);
        let obj_err = common::max_row_relative_error(&ours_obj, &ref_obj, ours_obj.len());
        let per_icon = ref_grad.len() / b as usize;
        let grad_err = common::max_row_relative_error(&ours_grad, &ref_grad, per_icon);
        println!("maco {layer_name} gain {gain} all positions {all_positions}: objective {ref_obj:?}, rel. error objective {obj_err:.2e}, gradient {grad_err:.2e}");
        assert!(
            ref_obj.iter().all(|v| v.abs() > 0.0),
            "degenerate objective {ref_obj:?}"
        );
        assert!(obj_err < tol, "objective differs: {obj_err}");
        assert!(grad_err < tol, "gradient differs: {grad_err}");
    }
}

#[test]
fn a_channel_icon_drives_that_channel_far_above_its_dataset_mean() {
    let model = load();
    let layer = model.info.layer_index("stage5").unwrap();
    let c = model.info.layers[layer].channels;
    let acts = bundled_activations(&model, layer, 8);
    let mean = acts.mean_dim([0i64].as_slice(), false, Kind::Float);
    let std = acts.std_dim([0i64].as_slice(), true, false);
    let channels = [3i64, 40, 100];
    let dirs = Tensor::zeros([3, c], (Kind::Float, Device::Cpu));
    for (i, &ch) in channels.iter().enumerate() {
        let _ = dirs.get(i as i64).get(ch).fill_(1.0);
    }
    let settings = RenderSettings {
        steps: 64,
        whiten: false,
        ..RenderSettings::preview()
    };
    let icons = render_batch(&model, layer, &dirs, &settings, 0, &mut |_| {}, &|| false)
        .unwrap()
        .unwrap();
    let x = icons_tensor(&icons.images);
    let out = tch::no_grad(|| model.forward(&x)).unwrap();
    let h = centre_vectors(&out.layers[layer]);
    for (i, &ch) in channels.iter().enumerate() {
        let got = h.double_value(&[i as i64, ch]);
        let (m, s) = (mean.double_value(&[ch]), std.double_value(&[ch]));
        println!("channel {ch}: icon {got:.3}, dataset mean {m:.3} (std {s:.3})");
        assert!(
            got > m + 4.0 * s && got > 3.0 * m.abs(),
            "channel {ch}: {got} vs mean {m} std {s}"
        );
    }
}

fn icons_tensor(images: &[image::RgbImage]) -> Tensor {
    let (w, h) = images[0].dimensions();
    let v: Vec<f32> = images.iter().flat_map(atlas::data::to_chw_f32).collect();
    Tensor::from_slice(&v).view([images.len() as i64, 3, h as i64, w as i64])
}

#[test]
fn whitening_changes_the_icons_and_each_wins_its_own_objective() {
    let model = load();
    let layer = model.info.layer_index("stage6").unwrap();
    let acts = bundled_activations(&model, layer, 8);
    let (n, c) = (acts.size()[0] as usize, acts.size()[1] as usize);
    let s = whitening_matrix(&to_vec(&acts), n, c, 1e-3).unwrap();
    // Two directions: means of two different groups of positions (like two atlas cells).
    let dirs = Tensor::stack(
        &[
            acts.narrow(0, 0, 40)
                .mean_dim([0i64].as_slice(), false, Kind::Float),
            acts.narrow(0, 200, 40)
                .mean_dim([0i64].as_slice(), false, Kind::Float),
        ],
        0,
    );
    let white = whiten(&dirs, &s);
    let settings = RenderSettings {
        steps: 64,
        ..RenderSettings::preview()
    };
    let raw_icons = render_batch(&model, layer, &dirs, &settings, 0, &mut |_| {}, &|| false)
        .unwrap()
        .unwrap();
    let white_icons = render_batch(&model, layer, &white, &settings, 0, &mut |_| {}, &|| false)
        .unwrap()
        .unwrap();
    let (xr, xw) = (
        icons_tensor(&raw_icons.images),
        icons_tensor(&white_icons.images),
    );
    let diff = (&xr - &xw).abs().mean(Kind::Float).double_value(&[]);
    println!("mean |raw icon - whitened icon| = {diff:.3}");
    assert!(diff > 0.05, "whitening did not change the icons ({diff})");
    // Each icon scores higher than the other on the objective it was optimized for.
    let obj = Objective::default();
    let score = |x: &Tensor, v: &Tensor| {
        let out = tch::no_grad(|| model.forward(x)).unwrap();
        to_vec(&obj.per_icon(&centre_vectors(&out.layers[layer]), v))
    };
    let (w_on_w, r_on_w) = (score(&xw, &white), score(&xr, &white));
    let (r_on_r, w_on_r) = (score(&xr, &dirs), score(&xw, &dirs));
    println!("whitened objective: whitened icons {w_on_w:?} raw icons {r_on_w:?}");
    println!("raw objective: raw icons {r_on_r:?} whitened icons {w_on_r:?}");
    for i in 0..2 {
        assert!(w_on_w[i] > r_on_w[i], "icon {i}: whitened objective");
        assert!(r_on_r[i] > w_on_r[i], "icon {i}: raw objective");
    }
}

/// Feature accentuation's score (objective relative to the seed's, minus the weighted squared
/// pixel change from the seed) and its gradient through lucid's parameterization, against the
/// PyTorch reference; and its start: coefficients made from a photo reproduce the photo.
#[test]
fn accent_score_and_gradient_match_pytorch() {
    let model = AtlasModel::load(&common::model(), atlas::model::default_device()).unwrap();
    let tol = reference_tolerance(model.device);
    let dir = common::scratch("icons_accent_objective");
    let size = 80i64;
    let photos: Vec<u8> = common::image_files(&common::assets())
        .iter()
        .take(3)
        .flat_map(|f| {
            image::open(f)
                .unwrap()
                .resize_exact(80, 80, image::imageops::FilterType::Triangle)
                .to_rgb8()
                .into_raw()
        })
        .collect();
    let b = 3i64;
    let seeds = (Tensor::from_slice(&photos)
        .view([b, size, size, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        / 255.0)
        .clamp(1e-3, 1.0 - 1e-3)
        .to_device(model.device);
    let start = FftImage::from_rgb(&seeds);
    let back = tch::no_grad(|| start.rgb());
    let err = (&back - &seeds).abs().max().double_value(&[]);
    assert!(
        err < 1e-3,
        "the seeded image differs from the photo by {err}"
    );
    // A few steps away from the seed, so that the distance term has a gradient.
    let spectrum = start.spectrum.detach() + random_spectrum(b, size, size, 3, model.device) * 30.0;
    let image = FftImage::new(spectrum.set_requires_grad(true), size, size);
    let layer_name = "head";
    let layer = model.info.layer_index(layer_name).unwrap();
    let c = model.info.layers[layer].channels;
    let dirs = bundled_activations(&model, layer, 2).narrow(0, 3, b).abs() + 0.05;
    let reference = Tensor::from_slice(&[0.5f32, 2.0, 0.01]).to_device(model.device);
    let accent = AccentSettings {
        crops: Crops {
            crops: 0,
            min_side: 1.0,
            max_side: 1.0,
            centre_sd: 0.0,
            noise: 0.0,
        },
        distance_weight: 0.5,
        all_positions: true,
    };
    let objective = Objective {
        form: CosineForm::Clean,
        cossim_power: 4.0,
    };
    let (score, grad, _) = accent_score_and_gradient(
        &model,
        layer,
        &image,
        &seeds,
        &reference,
        &dirs,
        &objective,
        &accent,
        &mut Rng::new(0),
    )
    .unwrap();
    let wf = spectrum_width(size) as usize;
    let write = |name: &str, t: &Tensor, shape: &[usize]| {
        npy::write_nd(&dir.join(name), &to_vec(t), shape, npy::Dtype::F32).unwrap()
    };
    write(
        "spec.npy",
        &image.spectrum.detach(),
        &[b as usize, 3, size as usize, wf, 2],
    );
    write(
        "seed.npy",
        &seeds,
        &[b as usize, 3, size as usize, size as usize],
    );
    write("ref.npy", &reference, &[b as usize]);
    write("dirs.npy", &dirs, &[b as usize, c as usize]);
    let path = |f: &str| dir.join(f).into_os_string();
    common::run_reference(
        "fv_ref.py",
        &[
            "objective".as_ref(),
            "--model".as_ref(),
            common::model().as_os_str(),
            "--layer".as_ref(),
            layer_name.as_ref(),
            "--form".as_ref(),
            "clean".as_ref(),
            "--where".as_ref(),
            "all".as_ref(),
            "--spectrum".as_ref(),
            &path("spec.npy"),
            "--seed-rgb".as_ref(),
            &path("seed.npy"),
            "--reference".as_ref(),
            &path("ref.npy"),
            "--distance-weight".as_ref(),
            "0.5".as_ref(),
            "--directions".as_ref(),
            &path("dirs.npy"),
            "--out-obj".as_ref(),
            &path("obj.npy"),
            "--out-grad".as_ref(),
            &path("grad.npy"),
        ],
    );
    let ref_score = npy::read(&dir.join("obj.npy")).unwrap().data;
    let ref_grad = npy::read(&dir.join("grad.npy")).unwrap().data;
    let ours = to_vec(&score);
    let score_err = common::max_row_relative_error(&ours, &ref_score, ours.len());
    let grad_err = common::max_row_relative_error(&to_vec(&grad), &ref_grad, ref_grad.len() / 3);
    println!(
        "accent: score {ref_score:?}, rel. error score {score_err:.2e}, gradient {grad_err:.2e}"
    );
    // Both terms matter: the pixel change is far from zero and so is the relative objective.
    assert!(
        ref_score.iter().all(|v| v.abs() > 1e-3),
        "degenerate score {ref_score:?}"
    );
    assert!(score_err < tol, "score differs: {score_err}");
    assert!(grad_err < tol, "gradient differs: {grad_err}");
}
