//! `atlas attack`: the patch attack table (spec §8.3).
use std::path::PathBuf;

use anyhow::Result;
use clap::ValueEnum;

use atlas::attack::batch::{self, BatchConfig, PatchInput};
use atlas::attack::Corner;
use atlas::model::Sidecar;

use super::args::ModelArg;
use super::progress::follow_job;
use super::values::one_of;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Folder (or one file) of images of the original class.
    #[arg(long)]
    images: PathBuf,
    /// Patch files or folders of patches, comma-separated.
    #[arg(long, required = true, value_delimiter = ',')]
    patches: Vec<String>,
    /// Original class: index, synset (n01440764) or name.
    #[arg(long)]
    original: String,
    /// Target class: index, synset or name.
    #[arg(long)]
    target: String,
    /// Add the uniform-noise control patch.
    #[arg(long)]
    noise: bool,
    #[arg(long, default_value_t = 0)]
    noise_seed: u64,
    /// Patch side as a fraction of the image side, static protocol.
    #[arg(long, default_value_t = 0.4)]
    static_ratio: f64,
    /// Where the static protocol puts the patch.
    #[arg(long, value_enum, ignore_case = true, default_value_t = CornerArg::TopLeft, value_parser = one_of::<CornerArg>())]
    static_corner: CornerArg,
    /// Ratios of the dynamic protocol, comma-separated (default 0.1,0.2,…,0.8).
    #[arg(long, value_delimiter = ',', value_parser = ratio)]
    dynamic_ratios: Option<Vec<f64>>,
    /// Use only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// CSV output.
    #[arg(long)]
    out: PathBuf,
}

/// `--static-corner` (`_` or a space may stand for `-`).
#[derive(ValueEnum, Clone, Copy, Debug)]
enum CornerArg {
    #[value(aliases = ["top_left", "top left"])]
    TopLeft,
    #[value(aliases = ["top_right", "top right"])]
    TopRight,
    #[value(aliases = ["bottom_left", "bottom left"])]
    BottomLeft,
    #[value(aliases = ["bottom_right", "bottom right"])]
    BottomRight,
}

impl From<CornerArg> for Corner {
    fn from(c: CornerArg) -> Self {
        match c {
            CornerArg::TopLeft => Corner::TopLeft,
            CornerArg::TopRight => Corner::TopRight,
            CornerArg::BottomLeft => Corner::BottomLeft,
            CornerArg::BottomRight => Corner::BottomRight,
        }
    }
}

/// One ratio of `--dynamic-ratios`, checked by the library's rule (in (0, 1]).
fn ratio(s: &str) -> Result<f64> {
    Ok(batch::parse_ratios(s)?[0])
}

pub fn run(args: Args) -> Result<()> {
    let model = args.model.path();
    let info = Sidecar::load(&model)?;
    // The library expands folders of patches from the list as written on the command line.
    let patches = batch::patch_files(&args.patches.join(","))?;
    let mut cfg = BatchConfig::new(
        &model,
        batch::image_input(&args.images),
        patches.into_iter().map(PatchInput::File).collect(),
        batch::resolve_class(&info, &args.original)?,
        batch::resolve_class(&info, &args.target)?,
    );
    cfg.noise_seed = args.noise.then_some(args.noise_seed);
    cfg.static_ratio = args.static_ratio;
    cfg.static_corner = args.static_corner.into();
    if let Some(ratios) = args.dynamic_ratios {
        cfg.dynamic_ratios = ratios;
    }
    cfg.limit = args.limit;
    let (table, _) = follow_job(batch::spawn_batch(cfg), "patch attack", |_, _| {})?;
    print!("{table}");
    table.write_csv(&args.out)?;
    println!(
        "{} composites classified in {:.1} s; wrote {}",
        table.composites,
        table.elapsed_s,
        args.out.display()
    );
    Ok(())
}
