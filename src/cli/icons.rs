//! `atlas icons`: feature-visualization icons of directions of a layer, as a folder of PNGs.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use atlas::model::AtlasModel;
use atlas::render::folder::{random_directions, read_directions, render_to_folder};

use super::args::{ModelArg, RenderArgs};
use super::progress::bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// The layer whose directions are visualized.
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
    let pb = bar((directions.len() / channels) as u64);
    pb.set_message("icons");
    let n = render_to_folder(
        &model,
        layer,
        &directions,
        &render,
        &args.out,
        &mut |icons| pb.set_position(icons as u64),
    )?;
    pb.finish_and_clear();
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
