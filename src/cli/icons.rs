//! `atlas icons`: feature-visualisation icons of directions of a layer, as a folder of PNGs.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use atlas::model::AtlasModel;
use atlas::render::{render_batch, RenderSettings};

use super::args::{ModelArg, RenderArgs};
use super::progress::bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// The layer whose directions are visualised.
    #[arg(long)]
    layer: String,
    /// [N, C] .npy of directions (raw; whitening is not applied here).
    #[arg(long)]
    directions: Option<PathBuf>,
    /// Without --directions: this many random directions (uniform in [0,1), seeded).
    #[arg(long, default_value_t = 8)]
    random: usize,
    /// The folder to write icon_0000.png, icon_0001.png, … into.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    render: RenderArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let render = args.render.settings(args.seed)?;
    let start = Instant::now();
    let model = AtlasModel::load(&args.model.path(), atlas::model::default_device())?;
    let layer = model.info.layer_index(&args.layer).with_context(|| {
        let names: Vec<&str> = model.info.layers.iter().map(|l| l.name.as_str()).collect();
        format!("the model has no layer {:?} (it has {names:?})", args.layer)
    })?;
    let channels = model.info.layers[layer].channels as usize;
    let directions = match &args.directions {
        Some(path) => read_directions(path, channels, &args.layer)?,
        None => random_directions(args.random, channels, render.seed),
    };
    let n = directions.len() / channels;
    render_to_folder(&model, layer, &directions, &render, &args.out)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "rendered {n} icons ({} steps, {} tries, batch {}) in {secs:.2} s: {:.4} icons/s -> {}",
        render.steps,
        render.tries,
        render.batch,
        n as f64 / secs,
        args.out.display()
    );
    Ok(())
}

/// The rows of an [N, C] .npy, checked against the layer's `channels`.
fn read_directions(path: &Path, channels: usize, layer: &str) -> Result<Vec<f32>> {
    let m = atlas::store::npy::read(path)?;
    if m.cols != channels {
        bail!(
            "{} has {} columns, layer {layer:?} has {channels} channels",
            path.display(),
            m.cols
        );
    }
    Ok(m.data)
}

/// `n` directions of `channels` values uniform in [0, 1), from `seed`.
fn random_directions(n: usize, channels: usize, seed: u64) -> Vec<f32> {
    let mut rng = atlas::layout::rng::Rng::new(seed);
    (0..n * channels).map(|_| rng.uniform() as f32).collect()
}

/// Renders one icon per row of `directions` (row-major, the layer's channels wide), a batch at a
/// time, into `out/icon_NNNN.png`, with a progress bar.
fn render_to_folder(
    model: &AtlasModel,
    layer: usize,
    directions: &[f32],
    render: &RenderSettings,
    out: &Path,
) -> Result<()> {
    let channels = model.info.layers[layer].channels as usize;
    std::fs::create_dir_all(out)?;
    let pb = bar((directions.len() / channels) as u64);
    pb.set_message("icons");
    let mut done = 0usize;
    for (b, chunk) in directions
        .chunks(render.batch.max(1) * channels)
        .enumerate()
    {
        let rows = chunk.len() / channels;
        let d = tch::Tensor::from_slice(chunk).view([rows as i64, channels as i64]);
        let icons = render_batch(
            model,
            layer,
            &d,
            render,
            b as u64,
            &mut |f| pb.set_position((done as f32 + f * rows as f32) as u64),
            &|| false,
        )?
        .context("cancelled")?;
        for (i, img) in icons.images.iter().enumerate() {
            let path = out.join(format!("icon_{:04}.png", done + i));
            img.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        done += rows;
    }
    pb.finish_and_clear();
    Ok(())
}
