//! Quality of the Rust UMAP on a labelled synthetic mixture: 10 clusters in 128-D, each a
//! noisy 3-D linear manifold (so within-cluster structure exists and trustworthiness means
//! something). Asserts 2-D neighbour label agreement ≥ 0.95 and trustworthiness (sklearn's
//! definition, cosine metric in the input space) ≥ 0.9 at k = 15.
//!
//! With `ATLAS_LAYOUT_DUMP=DIR` the data, labels and our layout are written as `.npy` so
//! `benches/layout_reference.py` can compare with umap-learn on exactly the same input.

use crate::common::layout::{knn_embedded, label_agreement, mixture, trustworthiness};
use atlas::layout::{umap, Metric, UmapParams};
use std::time::Instant;

const CLUSTERS: usize = 10;
const PER: usize = 300;
const D: usize = 128;
const K_EVAL: usize = 15;

#[test]
fn umap_separates_labelled_mixture() {
    let (data, labels) = mixture(CLUSTERS, PER, D, 0.25, 0.15, 2019);
    let n = labels.len();
    let params = UmapParams {
        n_neighbors: 50,
        min_dist: 0.05,
        metric: Metric::Cosine,
        seed: 7,
        ..Default::default()
    };
    let t0 = Instant::now();
    let y = umap(&data, n, D, &params, &mut |_, _| {}, &|| false)
        .expect("umap")
        .expect("not cancelled");
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(y.len(), n);
    assert!(y.iter().all(|p| p[0].is_finite() && p[1].is_finite()));

    let flat: Vec<f32> = y.iter().flatten().copied().collect();
    let nn = knn_embedded(&flat, 2, K_EVAL);
    let agreement = label_agreement(&nn, &labels);
    let trust = trustworthiness(&data, D, &nn, K_EVAL);
    println!("rust umap: n={n} d={D} time {secs:.2} s, agreement {agreement:.4}, trustworthiness {trust:.4}");

    if let Ok(dir) = std::env::var("ATLAS_LAYOUT_DUMP") {
        use atlas::store::npy::{write, Dtype};
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        write(&dir.join("X.npy"), &data, n, D, Dtype::F32).unwrap();
        let lab: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        write(&dir.join("labels.npy"), &lab, n, 1, Dtype::F32).unwrap();
        write(&dir.join("ours.npy"), &flat, n, 2, Dtype::F32).unwrap();
    }

    assert!(agreement >= 0.95, "neighbour label agreement {agreement}");
    assert!(trust >= 0.9, "trustworthiness {trust}");
}

/// Lay out any `.npy` matrix for benchmarking against `benches/layout_reference.py`:
/// `ATLAS_LAYOUT_INPUT=X.npy ATLAS_LAYOUT_OUTPUT=ours.npy cargo test --release --test
/// layout_quality -- --ignored --nocapture` (optional `ATLAS_LAYOUT_NEIGHBORS`, `ATLAS_LAYOUT_MIN_DIST`).
#[test]
#[ignore = "benchmark helper driven by environment variables"]
fn layout_npy_file() {
    let Ok(input) = std::env::var("ATLAS_LAYOUT_INPUT") else {
        println!("ATLAS_LAYOUT_INPUT not set: nothing to do");
        return;
    };
    let m = atlas::store::npy::read(std::path::Path::new(&input)).expect("read input");
    let env = |k: &str| std::env::var(k).ok();
    let params = UmapParams {
        n_neighbors: env("ATLAS_LAYOUT_NEIGHBORS").map_or(50, |v| v.parse().unwrap()),
        min_dist: env("ATLAS_LAYOUT_MIN_DIST").map_or(0.05, |v| v.parse().unwrap()),
        seed: 7,
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut last = String::new();
    let mut stage_start = Instant::now();
    let y = umap(
        &m.data,
        m.rows,
        m.cols,
        &params,
        &mut |stage, _| {
            if stage != last {
                if !last.is_empty() {
                    println!("  {last}: {:.2} s", stage_start.elapsed().as_secs_f64());
                }
                last = stage.to_string();
                stage_start = Instant::now();
            }
        },
        &|| false,
    )
    .unwrap()
    .unwrap();
    println!("  {last}: {:.2} s", stage_start.elapsed().as_secs_f64());
    println!(
        "rust umap: n={} d={} time {:.2} s",
        m.rows,
        m.cols,
        t0.elapsed().as_secs_f64()
    );
    if let Some(out) = env("ATLAS_LAYOUT_OUTPUT") {
        let flat: Vec<f32> = y.iter().flatten().copied().collect();
        atlas::store::npy::write(
            std::path::Path::new(&out),
            &flat,
            m.rows,
            2,
            atlas::store::npy::Dtype::F32,
        )
        .unwrap();
    }
}
