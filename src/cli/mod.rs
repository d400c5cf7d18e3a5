//! The command line: [`Cli`] holds the global flags and the [`Command`]; each command has its
//! own module with one `Args` struct (its flags) and one `run(args)`. Flags that several commands
//! share live in [`args`], value parsers in [`values`], progress bars in [`progress`].
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod app;
mod args;
mod attack;
mod build;
mod class_atlas;
mod class_jobs;
mod class_pairs;
mod classify;
mod collect;
mod compare;
mod icons;
mod layout;
mod merge;
mod poster;
mod progress;
mod values;

#[derive(Parser)]
#[command(
    name = "atlas",
    version,
    about = "Activation atlases of your own image classifier and images"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Where the model runs: cpu, cuda or cuda:N (default: the first GPU libtorch sees, else
    /// the CPU; the ATLAS_DEVICE environment variable does the same). Every command that loads
    /// a model uses it.
    #[arg(long, global = true, value_parser = values::device)]
    device: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the desktop app (the default when no command is given).
    App(app::Args),
    /// Collect activation vectors and their attributions into a run folder (resumable; with
    /// --shard i/N one part of the images, for `atlas merge`).
    Collect(collect::Args),
    /// Merge the shard folders of `atlas collect --shard i/N` into one run folder, byte for byte
    /// the one an unsharded collection writes.
    Merge(merge::Args),
    /// Print the top-k classes of images (files or folders); with labelled folders, the accuracy.
    Classify(classify::Args),
    /// Build an atlas from a collection run: layout, nested grids, icons (resumable).
    Build(build::Args),
    /// Render feature-visualization icons for directions of a layer (rows of an .npy, or random
    /// non-negative directions) into a folder of PNGs.
    Icons(icons::Args),
    /// Write one level of an atlas as a PNG with class labels.
    Poster(poster::Args),
    /// Lay out the rows of an n×d .npy with UMAP (n×2) or t-SNE (n×1 or n×2); raw coordinates.
    Layout(layout::Args),
    /// Class activation atlas (spec §6): the samples of one class, laid out alone, on an 8×8
    /// grid with icons whitened by the full layer; writes an atlas folder, class_atlas.json and
    /// class_atlas.png.
    ClassAtlas(class_atlas::Args),
    /// Two-class comparison (spec §7): x = attribution to B − to A (÷ its 99th percentile),
    /// y = 1-D t-SNE, 10×10 icons; writes an atlas folder, comparison.json and comparison.png.
    Compare(compare::Args),
    /// Patch attack (spec §8.3): paste patches onto images of one class and count how often
    /// the top-1 flips to a target class; prints the table and writes it as CSV.
    Attack(attack::Args),
    /// Rank class pairs by shared positive attribution over the cells of an atlas level.
    ClassPairs(class_pairs::Args),
}

impl Cli {
    /// Runs the command (the app when none is given) with the global flags applied.
    fn run(self) -> Result<()> {
        if let Some(device) = &self.device {
            // Read by atlas::model::default_device(), on every thread and job of this process.
            std::env::set_var("ATLAS_DEVICE", device);
        }
        match self.command.unwrap_or(Command::App(app::Args::default())) {
            Command::App(args) => app::run(args),
            Command::Collect(args) => collect::run(args),
            Command::Merge(args) => merge::run(args),
            Command::Classify(args) => classify::run(args),
            Command::Build(args) => build::run(args),
            Command::Icons(args) => icons::run(args),
            Command::Poster(args) => poster::run(args),
            Command::Layout(args) => layout::run(args),
            Command::ClassAtlas(args) => class_atlas::run(args),
            Command::Compare(args) => compare::run(args),
            Command::Attack(args) => attack::run(args),
            Command::ClassPairs(args) => class_pairs::run(args),
        }
    }
}

/// Parses the command line and runs it. Usage errors (a bad flag or value, an unknown device)
/// exit with clap's code 2 and `--help` with 0; a command that fails prints `error: …` and
/// exits with 1.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout, errors to stderr, as clap's own `exit` does.
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
