//! `atlas build`: an atlas folder from a collection run (layout, nested grids, icons).
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::ValueEnum;

use atlas::atlas::{spawn_build_icons, BuildConfig, BuildEvent, IconSet};
use atlas::render::{CosineForm, IconMethod, RenderSettings, TransformStack};

use super::args::{LayoutKind, RenderArgs};
use super::progress::follow_job;
use super::values::{grid_size, one_of};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The collection run folder (from `atlas collect`).
    #[arg(long)]
    run: PathBuf,
    /// The layer of the run to lay out.
    #[arg(long)]
    layer: String,
    /// The atlas folder to write (reruns resume from it).
    #[arg(long)]
    out: PathBuf,
    /// Default: the model the run was collected with.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Grid sizes, coarse to fine.
    #[arg(long, default_value = "20,40,80,160", value_delimiter = ',', value_parser = grid_size)]
    grids: Vec<usize>,
    /// Grid sizes that get icons ("all", "none" or a list).
    #[arg(long, default_value = "all", value_parser = IconLevels::parse)]
    icon_levels: IconLevels,
    /// Icons to make (exemplars are written first and need no model).
    #[arg(long, value_enum, default_value_t = IconsToMake::Both, value_parser = one_of::<IconsToMake>())]
    icons: IconsToMake,
    /// Cells with fewer points are dropped.
    #[arg(long, default_value_t = 5)]
    min_count: usize,
    #[command(flatten)]
    render: RenderArgs,
    /// Transform stack (default: the preset's, rec).
    #[arg(long, value_enum, value_parser = one_of::<Transforms>())]
    transforms: Option<Transforms>,
    /// Objective form (default: the preset's; notebook for preview and paper, clean for maco).
    #[arg(long, value_enum, value_parser = one_of::<ObjectiveForm>())]
    objective: Option<ObjectiveForm>,
    /// n in dot × cos^n (default: the preset's, 4).
    #[arg(long)]
    cossim_power: Option<f64>,
    /// Do not whiten the directions (the maco preset does not whiten anyway).
    #[arg(long)]
    no_whiten: bool,
    /// Weight of the REC stack's boundary penalty (spec §4.5: 1; default 0 = off, see
    /// RenderSettings::boundary_penalty; used with the rec stack only).
    #[arg(long, default_value_t = 0.0)]
    boundary_penalty: f64,
    /// MACO icons: the fixed magnitude spectrum, the built-in ImageNet one or one estimated from
    /// the run's own images (up to 64, at the icon size).
    #[arg(long, value_enum, default_value_t = Spectrum::Imagenet, value_parser = one_of::<Spectrum>())]
    spectrum: Spectrum,
    /// MACO icons: composite each icon over white with its attribution alpha mask (the
    /// accumulated |∂objective/∂pixel|, clipped at its 80th percentile).
    #[arg(long)]
    alpha_mask: bool,
    /// Layout (UMAP: the spec's 50 neighbours, min_dist 0.05, cosine).
    #[arg(long, value_enum, default_value_t = LayoutKind::Umap, value_parser = one_of::<LayoutKind>())]
    layout: LayoutKind,
    /// UMAP: neighbours per point.
    #[arg(long, default_value_t = 50)]
    neighbors: usize,
    /// UMAP: minimum distance.
    #[arg(long, default_value_t = 0.05)]
    min_dist: f32,
    /// Use at most this many of the run's rows.
    #[arg(long)]
    max_points: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Add coarser overview grids while the coarsest level fills less than half of its
    /// occupied area (what the app does; the paper's grids are kept as given without it).
    #[arg(long)]
    overview_levels: bool,
}

/// `--icon-levels`: every level, none, or the grid sizes listed.
#[derive(Clone, Debug)]
enum IconLevels {
    All,
    None,
    Only(Vec<usize>),
}

impl IconLevels {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "all" => IconLevels::All,
            "none" => IconLevels::None,
            list => IconLevels::Only(list.split(',').map(grid_size).collect::<Result<_, _>>()?),
        })
    }

    /// As `BuildConfig::icon_levels` takes it (`None`: every level).
    fn grids(self) -> Option<Vec<usize>> {
        match self {
            IconLevels::All => None,
            IconLevels::None => Some(vec![]),
            IconLevels::Only(grids) => Some(grids),
        }
    }
}

/// `--icons`.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum IconsToMake {
    /// Feature visualizations.
    Synthetic,
    /// Each cell's most typical real patch and a 2×2 mosaic of its top four.
    #[value(alias = "exemplars")]
    Exemplar,
    Both,
}

impl From<IconsToMake> for IconSet {
    fn from(icons: IconsToMake) -> Self {
        match icons {
            IconsToMake::Synthetic => IconSet::Synthetic,
            IconsToMake::Exemplar => IconSet::Exemplar,
            IconsToMake::Both => IconSet::Both,
        }
    }
}

/// `--transforms`: the random transforms applied before every forward pass.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Transforms {
    /// The later atlas code's stack (pad, jitter, scale, rotate, crop back).
    Rec,
    /// The linked notebooks' stack (strong scaling, no final crop).
    Notebook,
    None,
}

impl From<Transforms> for TransformStack {
    fn from(t: Transforms) -> Self {
        match t {
            Transforms::Rec => TransformStack::Rec,
            Transforms::Notebook => TransformStack::Notebook,
            Transforms::None => TransformStack::None,
        }
    }
}

/// `--objective`: how the cosine factor of dot × cos^n is formed.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum ObjectiveForm {
    /// The notebooks' direction_neuron_cossim_S.
    Notebook,
    /// lucid's direction_neuron.
    Clean,
}

impl From<ObjectiveForm> for CosineForm {
    fn from(form: ObjectiveForm) -> Self {
        match form {
            ObjectiveForm::Notebook => CosineForm::Notebook,
            ObjectiveForm::Clean => CosineForm::Clean,
        }
    }
}

/// `--spectrum`: MACO's fixed magnitude.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Spectrum {
    /// The built-in spectrum fitted on ImageNet photographs.
    Imagenet,
    /// Estimated from the run's own images.
    Own,
}

impl Args {
    /// The preset's recipe, with only the flags given on the command line changed.
    fn render_settings(&self) -> Result<RenderSettings> {
        let mut render = self.render.settings(self.seed)?;
        if let Some(t) = self.transforms {
            render.transforms = t.into();
        }
        if let Some(form) = self.objective {
            render.objective.form = form.into();
        }
        if let Some(power) = self.cossim_power {
            render.objective.cossim_power = power;
        }
        if self.no_whiten {
            render.whiten = false;
        }
        if render.transforms == TransformStack::Rec {
            render.boundary_penalty = self.boundary_penalty;
        }
        let maco_only = self.spectrum == Spectrum::Own || self.alpha_mask;
        match &mut render.method {
            IconMethod::Maco(maco) => {
                maco.own_spectrum = self.spectrum == Spectrum::Own;
                maco.alpha_mask = self.alpha_mask;
            }
            _ if maco_only => bail!("--spectrum own and --alpha-mask need --preset maco"),
            _ => {}
        }
        Ok(render)
    }
}

pub fn run(args: Args) -> Result<()> {
    let render = args.render_settings()?;
    let layout = args.layout.method(args.neighbors, args.min_dist, args.seed);
    let cfg = BuildConfig {
        run: args.run,
        layer: args.layer,
        out: args.out.clone(),
        model: args.model,
        layout,
        grids: args.grids,
        min_count: args.min_count,
        render,
        icon_levels: args.icon_levels.grids(),
        max_points: args.max_points,
        overview_levels: args.overview_levels,
    };
    let mut levels_printed = false;
    let job = spawn_build_icons(cfg, args.icons.into());
    let (result, _) = follow_job(job, "build", |pb, event| {
        // Sent again once exemplar sheets are written: print the levels once.
        if let (BuildEvent::LevelsReady(m), false) = (event, levels_printed) {
            levels_printed = true;
            for l in &m.levels {
                pb.println(format!("level {0}×{0}: {1} cells", l.grid, l.cells));
            }
        }
    })?;
    let BuildEvent::Finished {
        manifest,
        icons_rendered,
        seconds,
    } = result
    else {
        bail!("the build ended unexpectedly");
    };
    println!(
        "atlas complete: {} points of layer {}, {} icons rendered now, {seconds:.1} s -> {}",
        manifest.points,
        manifest.layer,
        icons_rendered,
        args.out.display()
    );
    Ok(())
}
