//! `atlas compare`: the two-class comparison (spec §7).
use std::path::PathBuf;

use anyhow::Result;

use atlas::classes::{spawn_compare, CompareConfig};

use super::class_jobs::{follow_class_job, ClassJobArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The collection run folder (from `atlas collect`).
    #[arg(long)]
    run: PathBuf,
    #[arg(long)]
    layer: String,
    /// Left class ("more A"), name or index.
    #[arg(long)]
    a: String,
    /// Right class ("more B"), name or index.
    #[arg(long)]
    b: String,
    /// The folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Grid size.
    #[arg(long, default_value_t = 10)]
    grid: usize,
    /// Also build the class atlases of A and B (OUT/class_a, OUT/class_b).
    #[arg(long)]
    with_class_atlases: bool,
    /// t-SNE iterations (the first 250 with early exaggeration).
    #[arg(long, default_value_t = 1000)]
    iterations: usize,
    #[command(flatten)]
    job: ClassJobArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let mut cfg = CompareConfig::new(args.run, &args.layer, &args.a, &args.b, args.out);
    cfg.filter = args.job.filter();
    cfg.n = args.job.n;
    cfg.grid = args.grid;
    cfg.min_count = args.job.min_count;
    cfg.selection = args.job.selection();
    cfg.with_class_atlases = args.with_class_atlases;
    cfg.tsne.n_iter = args.iterations;
    cfg.tsne.seed = args.seed;
    cfg.render = args.job.render.settings(args.seed)?;
    if let Some(w) = args.job.whitening() {
        cfg.whitening = w;
    }
    cfg.model = args.job.model;
    follow_class_job(spawn_compare(cfg))
}
