//! What `atlas class-atlas` and `atlas compare` share: how samples are picked, how icons are
//! made, and following the job to its files.
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::ValueEnum;

use atlas::atlas::BuildEvent;
use atlas::classes::{
    ClassAtlasResult, ClassEvent, ClassFilter, ComparisonResult, Selection, WhiteningSource,
};
use atlas::jobs::JobHandle;

use super::args::RenderArgs;
use super::progress::follow_job;
use super::values::one_of;

/// Which samples of a class are used, and how the icons of the cells are made.
#[derive(clap::Args, Debug)]
pub struct ClassJobArgs {
    /// Samples of a class: winner (argmax of the attribution), magnitude (top N by attribution,
    /// > 0) or both.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Filter::Both, value_parser = one_of::<Filter>())]
    filter: Filter,
    /// The magnitude filter's N.
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    /// Cells with fewer points are dropped (NB-CLS keeps n > 4).
    #[arg(long, default_value_t = 5)]
    pub min_count: usize,
    /// Keep rows twice when both filters pick them (the notebook's concatenation).
    #[arg(long)]
    keep_duplicates: bool,
    /// A [C, C] whitening matrix (e.g. the layer atlas's whitening.npy); default: computed
    /// from all of the layer's rows.
    #[arg(long)]
    whitening: Option<PathBuf>,
    /// Default: the model the run was collected with.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub render: RenderArgs,
}

/// `--filter`.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Filter {
    /// The class is the argmax of the sample's attribution ("top rank").
    #[value(alias = "top-rank")]
    Winner,
    /// The N samples with the largest attribution to the class ("overall magnitude").
    #[value(alias = "top")]
    Magnitude,
    Both,
}

impl ClassJobArgs {
    pub fn filter(&self) -> ClassFilter {
        match self.filter {
            Filter::Winner => ClassFilter::Winner,
            Filter::Magnitude => ClassFilter::Magnitude,
            Filter::Both => ClassFilter::Both,
        }
    }

    pub fn selection(&self) -> Selection {
        if self.keep_duplicates {
            Selection::Concat
        } else {
            Selection::Union
        }
    }

    /// The whitening file given, if any (else the job's default).
    pub fn whitening(&self) -> Option<WhiteningSource> {
        self.whitening.clone().map(WhiteningSource::File)
    }
}

/// Follows a class-atlas or comparison job and prints where its files are.
pub fn follow_class_job(job: JobHandle<ClassEvent>) -> Result<()> {
    let (result, _) = follow_job(job, "class job", |pb, event| match event {
        ClassEvent::Selected { what, rows } => pb.println(format!("{what}: {rows} samples")),
        ClassEvent::Build {
            part,
            event: BuildEvent::LevelsReady(m),
        } => {
            for l in &m.levels {
                pb.println(format!("{part}: {0}×{0} grid, {1} cells", l.grid, l.cells));
            }
        }
        ClassEvent::ClassAtlasDone(r) => pb.println(format!(
            "class atlas of {} -> {}",
            r.info.class.name,
            r.out.display()
        )),
        _ => {}
    })?;
    match result {
        ClassEvent::ClassAtlasDone(r) => print_class_atlas(&r),
        ClassEvent::ComparisonDone(r) => print_comparison(&r),
        _ => bail!("the job ended unexpectedly"),
    }
    Ok(())
}

fn print_class_atlas(r: &ClassAtlasResult) {
    println!(
        "class atlas of {:?} ({} filter): {} samples ({} winners, {} by magnitude), {} \
         cells, {} icons rendered now, {:.1} s -> {}",
        r.info.class.name,
        r.info.filter.name(),
        r.info.rows.len(),
        r.info.winner_count,
        r.info.magnitude_count,
        r.manifest.levels.first().map(|l| l.cells).unwrap_or(0),
        r.icons_rendered,
        r.seconds,
        r.out.display()
    );
    println!("wrote {}", r.out.join("class_atlas.json").display());
    if let Some(p) = &r.poster {
        println!("wrote {}", p.display());
    }
}

fn print_comparison(r: &ComparisonResult) {
    println!(
        "{} vs {}: {} samples ({} and {}), p{} of |d| = {:.4}, {} cells, {} icons \
         rendered now, {:.1} s -> {}",
        r.info.a.name,
        r.info.b.name,
        r.info.rows.len(),
        r.info.a_count,
        r.info.b_count,
        r.info.percentile,
        r.info.scale,
        r.info.cells.len(),
        r.icons_rendered,
        r.seconds,
        r.out.display()
    );
    println!("wrote {}", r.out.join("comparison.json").display());
    if let Some(p) = &r.poster {
        println!("wrote {}", p.display());
    }
}
