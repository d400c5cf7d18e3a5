//! The collection job: images → forward pass → sampled vectors + attributions → run folder.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use crate::data::{scan_folder, spawn_loader, Batch, Preprocess};
use crate::jobs::{self, CancelToken, JobHandle, Reporter};
use crate::model::{torch_model::top_k, AtlasModel};
use crate::store::npy::Dtype;

use super::attribution::{
    forward_with_attributions, gather_vectors, linear_head_attribution, AttributionMethod,
    LayerSamples,
};
use super::positions::{interior_positions, sample_positions, Position};
use super::run_folder::{
    ChunkData, ChunkLayer, RunFolder, RunManifest, RunSettings, COMPLETE, FORMAT, SHARD_COMPLETE,
};
use super::shard::Shard;

#[derive(Clone, Debug)]
pub struct CollectConfig {
    pub model: PathBuf,
    pub images: PathBuf,
    /// Layer names; empty means every layer the model exposes.
    pub layers: Vec<String>,
    pub out: PathBuf,
    /// Random positions per image and layer (the paper uses 1).
    pub samples_per_image: u32,
    /// Cells kept free at every border of the layer grid.
    pub margin: i64,
    pub seed: u64,
    pub batch_size: usize,
    /// Images per saved chunk (rounded up to a multiple of the batch size): the most work a kill
    /// can lose.
    pub chunk_images: usize,
    pub acts_dtype: Dtype,
    pub preprocess: Preprocess,
    pub decode_workers: usize,
    /// Use only the first N images of the folder.
    pub limit: Option<usize>,
    pub attribution: AttributionMethod,
    /// Collect only this shard's chunks into `out`, for `atlas merge` (see [`super::shard`]).
    pub shard: Option<Shard>,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            model: PathBuf::new(),
            images: PathBuf::new(),
            layers: vec![],
            out: PathBuf::new(),
            samples_per_image: 1,
            margin: 1,
            seed: 0,
            batch_size: 32,
            chunk_images: 512,
            acts_dtype: Dtype::F32,
            preprocess: Preprocess::Squash,
            decode_workers: 2,
            limit: None,
            attribution: AttributionMethod::Auto,
            shard: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct CollectSummary {
    pub manifest: RunManifest,
    pub images_processed_now: usize,
    pub seconds: f64,
}

/// Starts a collection on a background thread.
pub fn spawn_collect(config: CollectConfig) -> JobHandle<CollectSummary> {
    jobs::spawn("collect", move |reporter, cancel| {
        collect(&config, reporter, cancel)
    })
}

fn preprocess_label(p: Preprocess) -> String {
    match p {
        Preprocess::Squash => "squash".into(),
        Preprocess::ResizeShorterCrop { resize } => format!("resize_shorter_crop:{resize}"),
    }
}

/// Runs (or resumes) a collection. Returns `None` when cancelled; finished chunks stay saved.
pub fn collect(
    cfg: &CollectConfig,
    reporter: &Reporter<CollectSummary>,
    cancel: &CancelToken,
) -> Result<Option<CollectSummary>> {
    let started = std::time::Instant::now();
    if cfg.batch_size == 0 || cfg.samples_per_image == 0 {
        bail!("batch size and samples per image must be at least 1");
    }
    reporter.progress("loading model", 0, 1);
    let model = AtlasModel::load(&cfg.model, crate::model::default_device())?;
    let info = &model.info;
    let layers: Vec<usize> = if cfg.layers.is_empty() {
        (0..info.layers.len()).collect()
    } else {
        cfg.layers
            .iter()
            .map(|name| {
                info.layer_index(name).with_context(|| {
                    let known: Vec<&str> = info.layers.iter().map(|l| l.name.as_str()).collect();
                    format!(
                        "model {} has no layer {name:?}; it exposes {}",
                        info.name,
                        known.join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    let chunk_images = cfg.chunk_images.max(1).div_ceil(cfg.batch_size) * cfg.batch_size;
    let settings = RunSettings {
        model_file: cfg.model.canonicalize().unwrap_or(cfg.model.clone()),
        model_name: info.name.clone(),
        model_bytes: std::fs::metadata(&cfg.model)?.len(),
        images_root: cfg.images.canonicalize().unwrap_or(cfg.images.clone()),
        layers: layers
            .iter()
            .map(|&l| info.layers[l].name.clone())
            .collect(),
        samples_per_image: cfg.samples_per_image,
        margin: cfg.margin,
        seed: cfg.seed,
        batch_size: cfg.batch_size,
        chunk_images,
        acts_dtype: cfg.acts_dtype,
        preprocess: preprocess_label(cfg.preprocess),
    };

    let run = RunFolder::new(&cfg.out);
    let mut manifest = open_run(cfg, &run, &model, settings, reporter)?;
    if manifest.status == COMPLETE || manifest.status == SHARD_COMPLETE {
        reporter.log(format!("{} is already complete", describe_part(cfg.shard)));
        return Ok(Some(CollectSummary {
            manifest,
            images_processed_now: 0,
            seconds: 0.0,
        }));
    }

    for &l in &layers {
        let layer = &info.layers[l];
        let available = interior_positions(layer.height, layer.width, cfg.margin);
        if u64::from(cfg.samples_per_image) > available {
            reporter.log(format!(
                "layer {} has only {available} interior positions ({}×{}, margin {}): each is \
                 sampled once per image instead of {} samples",
                layer.name, layer.height, layer.width, cfg.margin, cfg.samples_per_image
            ));
        }
    }
    let images = run.read_image_list()?;
    let paths: Arc<Vec<PathBuf>> = Arc::new(images.iter().map(|(p, _, _)| p.clone()).collect());
    let num_chunks = paths.len().div_ceil(chunk_images);
    let mine = cfg.shard.map_or(0..num_chunks, |s| s.chunks(num_chunks));
    let done = run.finished_chunks()?;
    let images_in = |chunk: usize| chunk_len(chunk, chunk_images, paths.len()) as u64;
    let total: u64 = mine.clone().map(images_in).sum();
    let mut images_done: u64 = done
        .iter()
        .filter(|c| mine.contains(c))
        .map(|&c| images_in(c))
        .sum();
    if let Some(shard) = cfg.shard {
        reporter.log(format!(
            "shard {shard}: chunks {}..{} of {num_chunks}, {total} of {} images",
            mine.start,
            mine.end,
            paths.len()
        ));
        if mine.is_empty() {
            // Shards take whole chunks, so that their batches are the unsharded run's.
            reporter.log(format!(
                "shard {shard} has no images: the run has {num_chunks} chunks of {chunk_images} \
                 images for {} shards (a smaller --chunk gives every shard some)",
                shard.count
            ));
        }
    }
    let mut processed_now = 0usize;
    let head = model.linear_head()?;
    let size = info.size();
    reporter.progress("collecting", images_done, total);

    for chunk in mine.filter(|c| !done.contains(c)) {
        let start = chunk * chunk_images;
        let order: Vec<usize> = (start..(start + chunk_images).min(paths.len())).collect();
        let rx = spawn_loader(
            paths.clone(),
            order,
            cfg.batch_size,
            cfg.preprocess,
            size,
            cfg.decode_workers,
        );
        let mut data = ChunkData {
            index: chunk,
            layers: layers.iter().map(|_| ChunkLayer::default()).collect(),
            predictions: vec![],
            problems: vec![],
        };
        for batch in rx {
            if cancel.is_cancelled() {
                reporter.log("cancelled; finished chunks are saved and a rerun resumes from them");
                return Ok(None);
            }
            let n = batch.indices.len() + batch.failures.len();
            for (img, reason) in &batch.failures {
                reporter.problem(crate::data::Problem {
                    path: paths[*img].clone(),
                    reason: reason.clone(),
                });
            }
            process_batch(&model, head.as_ref(), &layers, cfg, &batch, &mut data)?;
            images_done += n as u64;
            processed_now += n;
            reporter.progress("collecting", images_done, total);
        }
        if cancel.is_cancelled() {
            return Ok(None);
        }
        run.save_chunk(&data, cfg.acts_dtype)?;
    }

    let channels: Vec<usize> = layers
        .iter()
        .map(|&l| info.layers[l].channels as usize)
        .collect();
    if cfg.shard.is_some() {
        // The final files are written by `atlas merge`, from every shard's chunks.
        manifest.images_done = total as usize;
        run.complete_shard(&mut manifest, &channels)?;
    } else {
        reporter.progress("merging", 0, 1);
        run.finalize(&mut manifest, &channels)?;
        reporter.progress("merging", 1, 1);
    }
    Ok(Some(CollectSummary {
        manifest,
        images_processed_now: processed_now,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// The manifest of the run in `cfg.out` when it was made with these settings (and is the same
/// shard), or of a run started there now.
fn open_run(
    cfg: &CollectConfig,
    run: &RunFolder,
    model: &AtlasModel,
    settings: RunSettings,
    reporter: &Reporter<CollectSummary>,
) -> Result<RunManifest> {
    Ok(match run.read_manifest()? {
        Some(m) if m.settings != settings => bail!(
            "{} holds a run made with other settings; choose another output folder (or delete it)\n  there: {:?}\n  now:   {:?}",
            cfg.out.display(), m.settings, settings
        ),
        Some(m) if m.shard != cfg.shard => bail!(
            "{} holds {}, not {}; choose another output folder",
            cfg.out.display(),
            describe_part(m.shard),
            describe_part(cfg.shard)
        ),
        Some(m) if m.format != FORMAT && m.status != COMPLETE => bail!(
            "{} holds an unfinished run of an older format ({}) whose positions were drawn with \
             replacement; it cannot be resumed with the current sampler: delete it or choose \
             another output folder",
            cfg.out.display(),
            m.format
        ),
        Some(m) => {
            reporter.log(format!("resuming the run in {}", cfg.out.display()));
            m
        }
        None => start_run(cfg, run, model, settings, reporter)?,
    })
}

/// "shard i/N" or "the whole run", for messages.
fn describe_part(shard: Option<Shard>) -> String {
    shard.map_or("the whole run".into(), |s| format!("shard {s}"))
}

fn chunk_len(chunk: usize, chunk_images: usize, total: usize) -> usize {
    (total - chunk * chunk_images).min(chunk_images)
}

fn start_run(
    cfg: &CollectConfig,
    run: &RunFolder,
    model: &AtlasModel,
    settings: RunSettings,
    reporter: &Reporter<CollectSummary>,
) -> Result<RunManifest> {
    reporter.progress("scanning images", 0, 1);
    let scan = scan_folder(&cfg.images)?;
    for p in &scan.problems {
        reporter.problem(p.clone());
    }
    let mut entries = scan.images;
    if let Some(limit) = cfg.limit {
        entries.truncate(limit);
    }
    if entries.is_empty() {
        bail!(
            "{} contains no images that can be read ({} other files skipped)",
            cfg.images.display(),
            scan.problems.len()
        );
    }
    let classes: Vec<Option<usize>> = entries
        .iter()
        .map(|e| e.label.as_deref().and_then(|l| model.info.class_index(l)))
        .collect();
    run.write_image_list(&entries, &classes, &scan.problems)?;
    let manifest = RunManifest {
        format: FORMAT.into(),
        settings,
        num_images: entries.len(),
        num_classes: model.num_classes(),
        class_names: model.info.classes.iter().map(|c| c.name.clone()).collect(),
        status: "collecting".into(),
        layers: vec![],
        images_done: 0,
        problems: 0,
        shard: cfg.shard,
    };
    run.write_manifest(&manifest)?;
    reporter.log(format!(
        "{} images to collect from {}",
        entries.len(),
        cfg.images.display()
    ));
    Ok(manifest)
}

/// One batch: a single forward pass for all layers, then the attributions of every sample.
fn process_batch(
    model: &AtlasModel,
    head: Option<&crate::model::LinearHead>,
    layers: &[usize],
    cfg: &CollectConfig,
    batch: &Batch,
    data: &mut ChunkData,
) -> Result<()> {
    for (img, reason) in &batch.failures {
        data.problems.push((*img, reason.clone()));
    }
    let b = batch.indices.len();
    if b == 0 {
        return Ok(());
    }
    let (w, h) = model.info.size();
    let x = Tensor::from_slice(&batch.pixels)
        .reshape([b as i64, 3, h as i64, w as i64])
        .to_device(model.device);

    // Positions for every (layer, draw), then one attribution pass over all of them. Each image
    // gets distinct positions per layer (drawn without replacement).
    let mut plan: Vec<(usize, u32, Vec<Position>)> = vec![];
    for (slot, &l) in layers.iter().enumerate() {
        let info = &model.info.layers[l];
        let per_image: Vec<Vec<Position>> = batch
            .indices
            .iter()
            .map(|&img| {
                sample_positions(
                    cfg.seed,
                    img as u64,
                    l as u64,
                    cfg.samples_per_image as u64,
                    info.height,
                    info.width,
                    cfg.margin,
                )
            })
            .collect();
        let draws = per_image.first().map_or(0, Vec::len);
        for draw in 0..draws {
            let positions = per_image.iter().map(|p| p[draw]).collect();
            plan.push((slot, draw as u32, positions));
        }
    }
    let is_head = |l: usize| head.is_some_and(|hd| hd.layer == l);
    let backprop: Vec<LayerSamples> = plan
        .iter()
        .filter(|(slot, _, _)| !is_head(layers[*slot]))
        .map(|(slot, _, pos)| LayerSamples {
            layer: layers[*slot],
            positions: pos,
        })
        .collect();
    let (fwd, attrs) = forward_with_attributions(model, &x, &backprop, cfg.attribution)?;
    let mut backprop_attr = attrs.into_iter();
    let probs = fwd.logits.detach().softmax(-1, Kind::Float);
    for (img, top) in batch.indices.iter().zip(top_k(&probs, 5)) {
        data.predictions.push((*img, top));
    }

    // Rows are stored image-major: for each image, its draws in order.
    let mut per_slot: Vec<Vec<DrawRows>> = layers.iter().map(|_| vec![]).collect();
    for (slot, draw, positions) in &plan {
        let l = layers[*slot];
        let act = &fwd.layers[l];
        let vectors = gather_vectors(act, positions).detach();
        let attr = if is_head(l) {
            linear_head_attribution(&vectors, head.expect("head"), &act.size())
        } else {
            backprop_attr
                .next()
                .expect("one attribution per planned sample")
        };
        per_slot[*slot].push(DrawRows {
            draw: *draw,
            positions: positions.clone(),
            channels: vectors.size()[1] as usize,
            classes: attr.size()[1] as usize,
            vectors: to_vec(&vectors),
            attr: to_vec(&attr),
        });
    }
    for (slot, draws) in per_slot.iter().enumerate() {
        let out = &mut data.layers[slot];
        for (i, &img) in batch.indices.iter().enumerate() {
            for d in draws {
                let (c, k) = (d.channels, d.classes);
                out.acts.extend_from_slice(&d.vectors[i * c..(i + 1) * c]);
                out.attr.extend_from_slice(&d.attr[i * k..(i + 1) * k]);
                out.rows
                    .push((img, d.positions[i].y, d.positions[i].x, d.draw));
            }
        }
    }
    Ok(())
}

/// One (layer, draw) of a batch, on the CPU: `[B, channels]` vectors and `[B, classes]` rows.
struct DrawRows {
    draw: u32,
    positions: Vec<Position>,
    channels: usize,
    classes: usize,
    vectors: Vec<f32>,
    attr: Vec<f32>,
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    let t = t
        .detach()
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    Vec::<f32>::try_from(t.flatten(0, -1)).expect("float tensor")
}
