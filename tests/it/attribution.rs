//! Attribution is right: Rust rows against an independent PyTorch reference (eager model rebuilt
//! from the sidecar, forward-mode AD), for both of our methods; and on the linear head, the
//! attributions of all positions sum to the logit minus its bias.
use crate::common;

use atlas::collect::attribution::{
    forward_with_attributions, gather_vectors, linear_head_attribution, AttributionMethod,
    LayerSamples,
};
use atlas::collect::positions::{sample_positions, Position};
use atlas::model::AtlasModel;
use tch::{Device, Kind, Tensor};

const IMAGES: usize = 4;
const DRAWS: u64 = 1;

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.detach().to_kind(Kind::Float).contiguous().flatten(0, -1)).unwrap()
}

#[test]
fn rows_match_pytorch_forward_mode_reference() {
    let model = AtlasModel::load(&common::model(), Device::Cpu).unwrap();
    let head = model
        .linear_head()
        .unwrap()
        .expect("EfficientNet-Lite0 has a linear head");
    let (pixels, x) = common::bundled_batch(&model, IMAGES);
    let k = model.num_classes();

    // Two positions per image in every layer; the head through its exact formula, every other layer
    // through the model's forward-mode method and, separately, through double backward.
    let mut positions: Vec<(usize, Vec<Position>)> = vec![];
    for (l, info) in model.info.layers.iter().enumerate() {
        for draw in 0..DRAWS {
            let pos = (0..IMAGES as u64)
                .map(|i| {
                    let drawn =
                        sample_positions(5, i, l as u64, draw + 1, info.height, info.width, 1);
                    drawn[draw as usize]
                })
                .collect();
            positions.push((l, pos));
        }
    }
    let samples: Vec<LayerSamples> = positions
        .iter()
        .map(|(l, p)| LayerSamples {
            layer: *l,
            positions: p,
        })
        .collect();
    let mut ours = vec![];
    for method in [
        AttributionMethod::ForwardMode,
        AttributionMethod::DoubleBackward,
    ] {
        let (fwd, attrs) = forward_with_attributions(&model, &x, &samples, method).unwrap();
        let mut rows = vec![];
        for ((l, pos), attr) in positions.iter().zip(attrs) {
            let attr = if *l == head.layer {
                linear_head_attribution(
                    &gather_vectors(&fwd.layers[*l], pos),
                    &head,
                    &fwd.layers[*l].size(),
                )
            } else {
                attr
            };
            rows.extend(to_vec(&attr));
        }
        ours.push(rows);
    }

    let dir = common::scratch("attribution");
    let mut entries = vec![];
    for (l, pos) in &positions {
        for (i, p) in pos.iter().enumerate() {
            entries.push(serde_json::json!({"image": i, "layer": model.info.layers[*l].name, "y": p.y, "x": p.x}));
        }
    }
    let reference = common::attribution_reference(
        &common::model(),
        &pixels,
        [IMAGES, 3, 224, 224],
        entries,
        &dir,
    );
    assert_eq!(
        (reference.rows, reference.cols),
        (positions.len() * IMAGES, k)
    );
    for (name, rows) in ["forward-mode", "double-backward"].iter().zip(&ours) {
        let err = common::max_row_relative_error(rows, &reference.data, k);
        println!(
            "{name}: max row-relative error vs PyTorch forward-mode AD = {err:.2e} over {} rows",
            reference.rows
        );
        assert!(err < 1e-3, "{name}: {err}");
    }
    // A wrong answer must not pass: attributions at other positions are far off.
    let shifted: Vec<f32> = reference.data[k..]
        .iter()
        .chain(&reference.data[..k])
        .copied()
        .collect();
    assert!(common::max_row_relative_error(&ours[0], &shifted, k) > 0.1);
}

#[test]
fn linear_head_attributions_sum_to_logit_minus_bias() {
    let model = AtlasModel::load(&common::model(), Device::Cpu).unwrap();
    let head = model.linear_head().unwrap().unwrap();
    let (_, x) = common::bundled_batch(&model, IMAGES);
    let fwd = tch::no_grad(|| model.forward(&x)).unwrap();
    let act = &fwd.layers[head.layer];
    let size = act.size();
    let mut total = Tensor::zeros(
        [IMAGES as i64, model.num_classes() as i64],
        (Kind::Float, Device::Cpu),
    );
    for y in 0..size[2] {
        for x_ in 0..size[3] {
            let pos = vec![Position { y, x: x_ }; IMAGES];
            total += linear_head_attribution(&gather_vectors(act, &pos), &head, &size);
        }
    }
    let expected = &fwd.logits - &head.bias;
    let err =
        common::max_row_relative_error(&to_vec(&total), &to_vec(&expected), model.num_classes());
    println!(
        "sum over {} positions vs logit - bias: max row-relative error {err:.2e}",
        size[2] * size[3]
    );
    assert!(err < 1e-4, "{err}");

    // The autograd path agrees with the exact formula on the head layer.
    let pos: Vec<Position> = (0..IMAGES as i64)
        .map(|i| Position { y: 1 + i, x: 5 - i })
        .collect();
    let samples = [LayerSamples {
        layer: head.layer,
        positions: &pos,
    }];
    let (fwd, attrs) =
        forward_with_attributions(&model, &x, &samples, AttributionMethod::DoubleBackward).unwrap();
    let exact =
        linear_head_attribution(&gather_vectors(&fwd.layers[head.layer], &pos), &head, &size);
    let err =
        common::max_row_relative_error(&to_vec(&attrs[0]), &to_vec(&exact), model.num_classes());
    assert!(err < 1e-4, "double backward vs exact on the head: {err}");
}
