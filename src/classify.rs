//! Classification of image files: top-k predictions and, where labels are known, accuracy.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use tch::Tensor;

use crate::data::{scan_folder, spawn_loader, ImageEntry, Problem};
use crate::model::{torch_model::top_k, AtlasModel};

/// The k most probable classes: (class index, probability), best first.
pub type TopK = Vec<(usize, f32)>;

/// The prediction for one image, or why it could not be read.
pub struct Classified {
    pub path: PathBuf,
    pub label: Option<String>,
    /// The logit index of the true class, when the label maps to one.
    pub truth: Option<usize>,
    pub top: Result<TopK, String>,
}

/// The label of an image: its first-level folder name, else a synset prefix of its file name
/// (`n01440764_tench.jpg`, the convention of ImageNet sample sets).
pub fn label_of(entry: &ImageEntry) -> Option<String> {
    entry.label.clone().or_else(|| {
        let stem = entry.path.file_stem()?.to_string_lossy().to_string();
        let prefix = stem.split('_').next()?;
        let is_synset = prefix.len() == 9
            && prefix.starts_with('n')
            && prefix[1..].bytes().all(|b| b.is_ascii_digit());
        is_synset.then(|| prefix.to_string())
    })
}

/// The images named by `inputs`: a file is taken as it is (unlabelled), a folder is scanned (its
/// class subfolders give labels) and what its scan skips goes to `on_skip`.
pub fn entries_of(
    inputs: &[PathBuf],
    mut on_skip: impl FnMut(&Problem),
) -> Result<Vec<ImageEntry>> {
    let mut entries = vec![];
    for input in inputs {
        if input.is_dir() {
            let scan = scan_folder(input)?;
            scan.problems.iter().for_each(&mut on_skip);
            entries.extend(scan.images);
        } else {
            entries.push(ImageEntry {
                path: input.clone(),
                label: None,
            });
        }
    }
    Ok(entries)
}

/// Classifies `entries` with the model's classification preprocessing, in batches, decoding on
/// `workers` threads. `progress(done, total)` is called after every batch.
pub fn classify(
    model: &AtlasModel,
    entries: &[ImageEntry],
    k: usize,
    batch_size: usize,
    workers: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Classified>> {
    let paths: Arc<Vec<PathBuf>> = Arc::new(entries.iter().map(|e| e.path.clone()).collect());
    let (w, h) = model.info.size();
    let rx = spawn_loader(
        paths,
        (0..entries.len()).collect(),
        batch_size,
        model.info.classify_preprocess(),
        (w, h),
        workers,
    );
    let mut tops: Vec<Option<Result<TopK, String>>> = (0..entries.len()).map(|_| None).collect();
    let mut done = 0;
    for batch in rx {
        for (i, reason) in &batch.failures {
            tops[*i] = Some(Err(reason.clone()));
        }
        if !batch.indices.is_empty() {
            let x = Tensor::from_slice(&batch.pixels).reshape([
                batch.indices.len() as i64,
                3,
                h as i64,
                w as i64,
            ]);
            let probs = model.probabilities(&x)?;
            for (i, top) in batch.indices.iter().zip(top_k(&probs, k)) {
                tops[*i] = Some(Ok(top));
            }
        }
        done += batch.indices.len() + batch.failures.len();
        progress(done, entries.len());
    }
    Ok(entries
        .iter()
        .zip(tops)
        .map(|(e, top)| {
            let label = label_of(e);
            Classified {
                path: e.path.clone(),
                truth: label.as_deref().and_then(|l| model.info.class_index(l)),
                label,
                top: top.unwrap_or_else(|| Err("not processed".into())),
            }
        })
        .collect())
}

/// Top-1 accuracy over the images whose label maps to a class: (correct, labelled).
pub fn accuracy<'a>(results: impl IntoIterator<Item = &'a Classified>) -> (usize, usize) {
    let labelled: Vec<&Classified> = results
        .into_iter()
        .filter(|r| r.truth.is_some() && r.top.is_ok())
        .collect();
    let correct = labelled
        .iter()
        .filter(|r| r.top.as_ref().ok().and_then(|t| t.first()).map(|t| t.0) == r.truth)
        .count();
    (correct, labelled.len())
}
