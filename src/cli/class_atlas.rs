//! `atlas class-atlas`: the class activation atlas of one class (spec §6).
use std::path::PathBuf;

use anyhow::Result;

use atlas::classes::{spawn_class_atlas, ClassAtlasConfig};

use super::args::LayoutKind;
use super::class_jobs::{follow_class_job, ClassJobArgs};
use super::values::one_of;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The collection run folder (from `atlas collect`).
    #[arg(long)]
    run: PathBuf,
    #[arg(long)]
    layer: String,
    /// Class name (case-insensitive) or index.
    #[arg(long)]
    class: String,
    /// Grid size.
    #[arg(long, default_value_t = 8)]
    grid: usize,
    /// The folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Layout (UMAP: 20 neighbours, min_dist 0.02, cosine).
    #[arg(long, value_enum, default_value_t = LayoutKind::Umap, value_parser = one_of::<LayoutKind>())]
    layout: LayoutKind,
    /// UMAP: neighbours per point.
    #[arg(long, default_value_t = 20)]
    neighbors: usize,
    /// UMAP: minimum distance.
    #[arg(long, default_value_t = 0.02)]
    min_dist: f32,
    #[command(flatten)]
    job: ClassJobArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let mut cfg = ClassAtlasConfig::new(args.run, &args.layer, &args.class, args.out);
    cfg.filter = args.job.filter();
    cfg.n = args.job.n;
    cfg.grid = args.grid;
    cfg.min_count = args.job.min_count;
    cfg.selection = args.job.selection();
    cfg.layout = args.layout.method(args.neighbors, args.min_dist, args.seed);
    cfg.render = args.job.render.settings(args.seed)?;
    if let Some(w) = args.job.whitening() {
        cfg.whitening = w;
    }
    cfg.model = args.job.model;
    follow_class_job(spawn_class_atlas(cfg))
}
