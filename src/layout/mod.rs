//! 2-D layout of activation vectors: UMAP (McInnes et al.), reimplemented after umap-learn
//! because the `umap-rs` crate produced poor layouts on this data (see notes/toolchain.md).
//!
//! Pipeline ([`umap`]): metric preparation (L2-normalize for cosine) → optional PCA to
//! `pca_dims` → kNN ([`knn::neighbours`]: exact by blocked matrix products up to
//! [`knn::EXACT_MAX_ROWS`] rows, NN-descent above, both re-ranked with exact distances) →
//! umap-learn's fuzzy simplicial set ([`fuzzy`]) → PCA initialization → umap-learn's SGD
//! ([`embed`], parallel by vertex blocks and reproducible for a seed on any number of threads).
//! [`normalize_layout`] then maps the layout to [0, 1]² for binning (spec §2.4).
//!
//! Initialization: umap-learn's default is a spectral embedding of the graph; this
//! implementation uses umap-learn's `init="pca"` path (first two principal components of the
//! prepared rows, scaled to [0, 10]) because a robust eigensolver for large, often disconnected
//! kNN graphs is not written yet.

pub mod embed;
pub mod file;
pub mod fuzzy;
pub mod knn;
mod linalg;
mod nndescent;
pub mod normalize;
mod pca;
pub mod rng;
pub mod transform;
pub mod tsne;

pub use file::{layout_file, run_layout, run_layout_owned, LayoutMethod};
pub use knn::Metric;
pub use normalize::{normalize_layout, LayoutNormalization};
pub use tsne::{tsne, TsneInit, TsneParams};

/// UMAP settings. Defaults are the published atlases' `50_0.05_cosine` (spec §2.2) with
/// umap-learn's other defaults.
#[derive(Clone, Debug)]
pub struct UmapParams {
    /// Neighbours per point, counting the point itself (umap-learn convention).
    pub n_neighbors: usize,
    pub min_dist: f32,
    pub spread: f32,
    pub metric: Metric,
    /// `None`: umap-learn's default, 500 epochs up to 10,000 points and 200 above.
    pub n_epochs: Option<usize>,
    pub learning_rate: f32,
    pub negative_sample_rate: usize,
    /// Reduce to this many principal components before the kNN search when the input has more
    /// dimensions (candidates are then re-ranked with exact distances). `None`: search in the
    /// full dimension (exact, much slower for 512–1280-d input).
    pub pca_dims: Option<usize>,
    /// Every stage is deterministic for any number of threads, so a seed fixes the layout.
    pub seed: u64,
}

impl Default for UmapParams {
    fn default() -> Self {
        UmapParams {
            n_neighbors: 50,
            min_dist: 0.05,
            spread: 1.0,
            metric: Metric::Cosine,
            n_epochs: None,
            learning_rate: 1.0,
            negative_sample_rate: 5,
            pca_dims: Some(64),
            seed: 0,
        }
    }
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, clock ticks of
/// 1/100 s; 0 elsewhere). For `ATLAS_NND_DEBUG` stage timings: on a shared machine wall time
/// measures the other work too, CPU time mostly does not.
pub(crate) fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Lay out the `n×d` row-major rows of `data` in 2-D with UMAP.
///
/// `progress(stage, fraction)` is called on the calling thread with stages `"neighbours"`,
/// `"graph"`, `"init"`, `"optimize"`; `cancel` is polled between batches of work. Returns
/// `Ok(None)` when cancelled, otherwise one point per row (raw UMAP coordinates; see
/// [`normalize_layout`]).
pub fn umap(
    data: &[f32],
    n: usize,
    d: usize,
    params: &UmapParams,
    progress: &mut dyn FnMut(&str, f32),
    cancel: &dyn Fn() -> bool,
) -> anyhow::Result<Option<Vec<[f32; 2]>>> {
    umap_rows(
        std::borrow::Cow::Borrowed(data),
        n,
        d,
        params,
        progress,
        cancel,
    )
}

/// [`umap`] taking the rows: the metric's preprocessing (L2-normalization for cosine) is done in
/// place, so the rows are held once, not twice (5 GB saved at 1M × 1,280).
pub fn umap_owned(
    data: Vec<f32>,
    n: usize,
    d: usize,
    params: &UmapParams,
    progress: &mut dyn FnMut(&str, f32),
    cancel: &dyn Fn() -> bool,
) -> anyhow::Result<Option<Vec<[f32; 2]>>> {
    umap_rows(
        std::borrow::Cow::Owned(data),
        n,
        d,
        params,
        progress,
        cancel,
    )
}

fn umap_rows(
    data: std::borrow::Cow<[f32]>,
    n: usize,
    d: usize,
    params: &UmapParams,
    progress: &mut dyn FnMut(&str, f32),
    cancel: &dyn Fn() -> bool,
) -> anyhow::Result<Option<Vec<[f32; 2]>>> {
    anyhow::ensure!(
        data.len() == n * d,
        "umap: data has {} values, expected {n}×{d}",
        data.len()
    );
    anyhow::ensure!(d > 0 || n == 0, "umap: rows have no dimensions");
    anyhow::ensure!(
        data.iter().all(|v| v.is_finite()),
        "umap: data contains NaN or infinite values"
    );
    anyhow::ensure!(
        params.n_neighbors >= 2,
        "umap: n_neighbors must be at least 2"
    );
    if n <= 2 {
        // Nothing to lay out meaningfully.
        return Ok(Some((0..n).map(|i| [i as f32, 0.0]).collect()));
    }
    let k = params.n_neighbors.min(n);
    let t0 = std::time::Instant::now();
    let debug = std::env::var_os("ATLAS_NND_DEBUG").is_some();
    let lap = |what: &str| {
        if debug {
            eprintln!(
                "umap {what}: {:.2} s (process CPU {:.1} s)",
                t0.elapsed().as_secs_f64(),
                process_cpu_secs()
            );
        }
    };

    progress("neighbours", 0.0);
    let prepared = knn::prepare_owned(data.into_owned(), d, params.metric);
    lap("prepare");
    let (space, m, pca) = knn::search_space(&prepared, n, d, params.pca_dims, params.seed);
    lap("pca");
    if cancel() {
        return Ok(None);
    }
    let reduced = space.is_some();
    let sp = space.as_deref().unwrap_or(&prepared);
    let Some(nn) = knn::neighbours(
        &prepared,
        d,
        sp,
        m,
        n,
        k,
        params.metric,
        reduced,
        params.seed,
        &mut |f| progress("neighbours", f),
        cancel,
    ) else {
        return Ok(None);
    };
    lap("neighbours");

    progress("graph", 0.0);
    let graph = fuzzy::fuzzy_simplicial_set(&nn);
    drop(nn);
    lap("graph");
    progress("graph", 1.0);
    if cancel() {
        return Ok(None);
    }

    progress("init", 0.0);
    // First two principal components of the prepared rows: the PCA used for the search already
    // has them (ordered by variance); otherwise fit one.
    let coords: Vec<[f32; 2]> = match pca {
        Some(_) => (0..n)
            .map(|i| [sp[i * m], sp[i * m + 1.min(m - 1)]])
            .collect(),
        None => {
            let p = pca::Pca::fit(&prepared, n, d, 2.min(d), params.seed);
            let y = p.transform(&prepared, n);
            (0..n)
                .map(|i| [y[i * p.m], if p.m > 1 { y[i * p.m + 1] } else { 0.0 }])
                .collect()
        }
    };
    let mut emb = embed::init_from_coords(&coords, params.seed);
    progress("init", 1.0);
    lap("init");

    let (a, b) = embed::find_ab_params(params.spread, params.min_dist);
    let sgd = embed::SgdParams {
        a,
        b,
        n_epochs: params
            .n_epochs
            .unwrap_or_else(|| embed::default_n_epochs(n)),
        learning_rate: params.learning_rate,
        negative_sample_rate: params.negative_sample_rate,
        repulsion_strength: 1.0,
        seed: params.seed,
    };
    progress("optimize", 0.0);
    if !embed::optimize_layout(
        &mut emb,
        &graph,
        &sgd,
        &mut |f| progress("optimize", f),
        cancel,
    ) {
        return Ok(None);
    }
    lap("optimize");
    Ok(Some(emb))
}

#[cfg(test)]
mod tests {
    use super::rng::Rng;
    use super::*;

    fn blobs(n_per: usize, d: usize) -> Vec<f32> {
        let mut rng = Rng::new(9);
        let centres: Vec<f32> = (0..3 * d).map(|_| rng.normal() as f32).collect();
        let mut x = Vec::new();
        for c in 0..3 {
            for _ in 0..n_per {
                x.extend((0..d).map(|j| centres[c * d + j] + 0.2 * rng.normal() as f32));
            }
        }
        x
    }

    #[test]
    fn seed_reproducible_on_any_thread_count() {
        let (n, d) = (600, 10);
        let x = blobs(200, d);
        let p = UmapParams {
            n_neighbors: 10,
            n_epochs: Some(50),
            seed: 4,
            ..Default::default()
        };
        let run = |p: &UmapParams, threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| umap(&x, n, d, p, &mut |_, _| {}, &|| false))
                .unwrap()
                .unwrap()
        };
        let a = run(&p, 1);
        assert_eq!(a, run(&p, 3));
        assert_eq!(a, run(&p, 1));
        assert_ne!(
            a,
            run(
                &UmapParams {
                    seed: 5,
                    ..p.clone()
                },
                2
            )
        );
    }

    #[test]
    fn cancel_returns_none_and_bad_input_is_refused() {
        let x = blobs(20, 4);
        let r = umap(&x, 60, 4, &UmapParams::default(), &mut |_, _| {}, &|| true).unwrap();
        assert!(r.is_none());
        assert!(umap(&x, 61, 4, &UmapParams::default(), &mut |_, _| {}, &|| false).is_err());
    }

    #[test]
    fn degenerate_inputs_give_finite_layouts() {
        let finite = |y: &[[f32; 2]]| y.iter().all(|p| p[0].is_finite() && p[1].is_finite());
        let p = UmapParams {
            n_epochs: Some(30),
            ..Default::default()
        };
        let run = |x: &[f32], n: usize, d: usize, p: &UmapParams| {
            umap(x, n, d, p, &mut |_, _| {}, &|| false)
                .unwrap()
                .unwrap()
        };
        // Fewer points than neighbours.
        let y = run(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 3, 2, &p);
        assert!(y.len() == 3 && finite(&y));
        // All rows identical, and all-zero rows under cosine.
        assert!(finite(&run(&vec![0.5; 40 * 3], 40, 3, &p)));
        assert!(finite(&run(&vec![0.0; 40 * 3], 40, 3, &p)));
        // Euclidean metric, one dimension.
        let x: Vec<f32> = (0..60).map(|i| (i % 7) as f32).collect();
        let e = UmapParams {
            metric: Metric::Euclidean,
            ..p.clone()
        };
        assert!(finite(&run(&x, 60, 1, &e)));
        // Empty input.
        assert!(run(&[], 0, 5, &p).is_empty());
    }

    #[test]
    fn progress_reports_every_stage_in_order() {
        let x = blobs(30, 6);
        let mut stages: Vec<String> = Vec::new();
        let mut last = -1.0f32;
        let p = UmapParams {
            n_neighbors: 10,
            n_epochs: Some(20),
            ..Default::default()
        };
        umap(
            &x,
            90,
            6,
            &p,
            &mut |s, f| {
                assert!((0.0..=1.0).contains(&f));
                if stages.last().map(|l| l != s).unwrap_or(true) {
                    stages.push(s.to_string());
                    last = -1.0;
                }
                assert!(f >= last);
                last = f;
            },
            &|| false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(stages, ["neighbours", "graph", "init", "optimize"]);
    }
}
