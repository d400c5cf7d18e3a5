//! `atlas classify`: the top-k classes of images, and the accuracy on labelled folders.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use atlas::classify::{accuracy, classify, entries_of};
use atlas::model::AtlasModel;

use super::args::ModelArg;
use super::progress::bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Classes printed per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Print only the accuracy summary.
    #[arg(long)]
    quiet: bool,
    /// Image files and folders (class subfolders give labels).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let model = AtlasModel::load(&args.model.path(), atlas::model::default_device())?;
    let entries = entries_of(&args.inputs, |p| {
        eprintln!("skipped {}: {}", p.path.display(), p.reason)
    })?;
    if entries.is_empty() {
        bail!("no images to classify");
    }
    let pb = bar(entries.len() as u64);
    pb.set_message("classifying");
    let results = classify(&model, &entries, args.top, args.batch, 2, |d, _| {
        pb.set_position(d as u64)
    })
    .context("classifying")?;
    pb.finish_and_clear();
    let names = &model.info.classes;
    for r in &results {
        match &r.top {
            Ok(t) if !args.quiet => {
                let cells: Vec<String> = t
                    .iter()
                    .map(|(c, p)| format!("{} {:.2}%", names[*c].name, p * 100.0))
                    .collect();
                println!("{}\t{}", r.path.display(), cells.join(", "));
            }
            Ok(_) => {}
            Err(e) => eprintln!("skipped {}: {e}", r.path.display()),
        }
    }
    let (correct, labelled) = accuracy(&results);
    if labelled > 0 {
        println!(
            "top-1 accuracy: {correct}/{labelled} = {:.2}%",
            100.0 * correct as f64 / labelled as f64
        );
    }
    Ok(())
}
