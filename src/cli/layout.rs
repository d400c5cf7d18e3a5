//! `atlas layout`: UMAP or t-SNE coordinates of the rows of an .npy.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use atlas::layout::{layout_file, LayoutMethod, TsneParams, UmapParams};

use super::args::LayoutKind;
use super::progress::bar;
use super::values::{name_of, one_of};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An n×d .npy of rows.
    #[arg(long)]
    input: PathBuf,
    /// The n×dims .npy of raw coordinates to write.
    #[arg(long)]
    output: PathBuf,
    #[arg(long, value_enum, default_value_t = LayoutKind::Umap, value_parser = one_of::<LayoutKind>())]
    method: LayoutKind,
    /// Output dimensions: 2, or 1 with t-SNE (the class comparison's y axis).
    #[arg(long, default_value_t = 2)]
    dims: usize,
    /// UMAP: neighbours per point (spec default 50).
    #[arg(long, default_value_t = 50)]
    neighbors: usize,
    /// UMAP only.
    #[arg(long, default_value_t = 0.05)]
    min_dist: f32,
    /// t-SNE only (spec default 50).
    #[arg(long, default_value_t = 50.0)]
    perplexity: f32,
    /// UMAP: SGD epochs (default: umap-learn's rule, 500 up to 10k points, else 200).
    /// t-SNE: iterations (default 1000, the first 250 with early exaggeration).
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl Args {
    /// The layout the flags ask for; UMAP lays out in 2-D only, t-SNE in 1-D or 2-D.
    fn method(&self) -> Result<LayoutMethod> {
        Ok(match (self.method, self.dims) {
            (LayoutKind::Umap, 2) => LayoutMethod::Umap(UmapParams {
                n_neighbors: self.neighbors,
                min_dist: self.min_dist,
                n_epochs: self.epochs,
                seed: self.seed,
                ..Default::default()
            }),
            (LayoutKind::Tsne, 1 | 2) => LayoutMethod::Tsne(TsneParams {
                dims: self.dims,
                perplexity: self.perplexity,
                n_iter: self.epochs.unwrap_or(1000),
                seed: self.seed,
                ..Default::default()
            }),
            (kind, dims) => bail!(
                "--method {} cannot lay out in {dims} dimensions",
                name_of(&kind)
            ),
        })
    }
}

pub fn run(args: Args) -> Result<()> {
    let method = args.method()?;
    let start = Instant::now();
    let pb = bar(1000);
    let mut stage = String::new();
    let rows = layout_file(
        &args.input,
        &args.output,
        &method,
        &mut |s, f| {
            if s != stage {
                stage = s.to_string();
                pb.set_message(stage.clone());
            }
            pb.set_position((f * 1000.0) as u64);
        },
        &|| false,
    )?
    .context("layout cancelled")?;
    pb.finish_and_clear();
    println!(
        "laid out {rows} rows in {:.2} s -> {}",
        start.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}
