//! `atlas collect`: activation vectors and attributions into a run folder.
use std::path::PathBuf;

use anyhow::Result;
use clap::ValueEnum;

use atlas::collect::attribution::AttributionMethod;
use atlas::collect::shard::Shard;
use atlas::collect::{spawn_collect, CollectConfig};
use atlas::data::Preprocess;
use atlas::store::npy::Dtype;

use super::args::ModelArg;
use super::progress::follow_job;
use super::values::one_of;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// The image folder (class subfolders give labels).
    #[arg(long)]
    images: PathBuf,
    /// Layer names, comma-separated, or "all".
    #[arg(long, default_value = "all", value_delimiter = ',')]
    layers: Vec<String>,
    /// The run folder to write (reruns resume from it).
    #[arg(long)]
    out: PathBuf,
    /// Random positions per image and layer.
    #[arg(long, default_value_t = 1)]
    samples: u32,
    /// Cells kept free at each border of a layer's grid.
    #[arg(long, default_value_t = 1)]
    margin: i64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Images per saved chunk (the most work a kill can lose).
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    /// Store activations as float16 (half the disk).
    #[arg(long)]
    f16: bool,
    /// Use only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Image decoding threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// How attributions are computed.
    #[arg(long, value_enum, default_value_t = Attribution::Auto, value_parser = one_of::<Attribution>())]
    attribution: Attribution,
    /// Collect only shard i of N (numbered from 0: 0/4 … 3/4), a fixed 1/N of the images, into
    /// --out; `atlas merge` joins the N shard folders into the run an unsharded collection
    /// writes. Each shard resumes on its own.
    #[arg(long, value_name = "i/N")]
    shard: Option<Shard>,
}

/// `--attribution`.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Attribution {
    /// The model's forward-mode method when it has one, else double backward.
    Auto,
    ForwardMode,
    DoubleBackward,
}

impl From<Attribution> for AttributionMethod {
    fn from(a: Attribution) -> Self {
        match a {
            Attribution::Auto => AttributionMethod::Auto,
            Attribution::ForwardMode => AttributionMethod::ForwardMode,
            Attribution::DoubleBackward => AttributionMethod::DoubleBackward,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    // Empty means every layer the model exposes.
    let layers = if args.layers == ["all"] {
        vec![]
    } else {
        args.layers.iter().map(|s| s.trim().to_string()).collect()
    };
    let cfg = CollectConfig {
        model: args.model.path(),
        images: args.images,
        layers,
        out: args.out.clone(),
        samples_per_image: args.samples,
        margin: args.margin,
        seed: args.seed,
        batch_size: args.batch,
        chunk_images: args.chunk,
        acts_dtype: if args.f16 { Dtype::F16 } else { Dtype::F32 },
        preprocess: Preprocess::Squash,
        decode_workers: args.workers,
        limit: args.limit,
        attribution: args.attribution.into(),
        shard: args.shard,
    };
    let (summary, problems) = follow_job(spawn_collect(cfg), "collection", |_, _| {})?;
    let out = args.out.display();
    let m = &summary.manifest;
    if let Some(shard) = args.shard {
        println!(
            "shard {shard} complete: {} images ({} processed now in {:.1} s); merge every shard \
             with `atlas merge --out RUN SHARD_DIR...`",
            m.images_done, summary.images_processed_now, summary.seconds,
        );
        return Ok(());
    }
    println!(
        "run complete: {} images ({} processed now in {:.1} s), {} problems (see {out}/problems.csv)",
        m.images_done,
        summary.images_processed_now,
        summary.seconds,
        m.problems.max(problems),
    );
    for l in &m.layers {
        println!(
            "  {:<16} {:>7} rows x {:>5} channels  {out}/{}",
            l.name, l.rows, l.channels, l.dir
        );
    }
    Ok(())
}
