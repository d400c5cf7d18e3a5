//! `atlas class-pairs`: class pairs ranked by the positive attribution they share over the
//! cells of an atlas level.
use std::path::PathBuf;

use anyhow::Result;
use clap::ValueEnum;

use atlas::classes::{class_pairs, ClassPairs, PairClasses, PairWeighting};

use super::values::one_of;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The atlas folder (from `atlas build`).
    #[arg(long)]
    atlas: PathBuf,
    /// Grid size of the level.
    #[arg(long, default_value_t = 20)]
    level: usize,
    /// Pairs printed and written.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Classes paired: labelled (top class of some cell), all, or a number M (the M with
    /// the most positive attribution).
    #[arg(long, default_value = "labelled", value_parser = PairClasses::parse)]
    classes: PairClasses,
    /// Weigh cells by their point count or not.
    #[arg(long, value_enum, default_value_t = Weighting::Mass, value_parser = one_of::<Weighting>())]
    weighting: Weighting,
    /// JSON output (default: ATLAS/class_pairs_G.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `--weighting`.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Weighting {
    /// A cell counts by its point count times its mean attribution.
    Mass,
    /// Every cell counts the same, whatever its point count.
    Mean,
}

impl From<Weighting> for PairWeighting {
    fn from(w: Weighting) -> Self {
        match w {
            Weighting::Mass => PairWeighting::Mass,
            Weighting::Mean => PairWeighting::Mean,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let level = args.level;
    let result = class_pairs(
        &args.atlas,
        level,
        args.top,
        args.classes,
        args.weighting.into(),
    )?;
    let out = args
        .out
        .unwrap_or_else(|| args.atlas.join(format!("class_pairs_{level}.json")));
    atlas::store::atomic::write_bytes(&out, serde_json::to_string_pretty(&result)?.as_bytes())?;
    print_pairs(&result, level);
    println!("wrote {}", out.display());
    Ok(())
}

fn print_pairs(result: &ClassPairs, level: usize) {
    println!(
        "{} classes over {} cells of the {level}×{level} level ({:?} weighting):",
        result.classes_considered, result.cells, result.weighting
    );
    for (i, p) in result.pairs.iter().enumerate() {
        println!(
            "{:>3}. {:.4}  {} ({}) — {} ({})  shared cells {}",
            i + 1,
            p.similarity,
            p.name_a,
            p.a,
            p.name_b,
            p.b,
            p.shared_cells
        );
    }
}
