//! `atlas poster`: one level of an atlas as a PNG with class labels.
use std::path::PathBuf;

use anyhow::Result;
use clap::ValueEnum;

use atlas::atlas::poster::{render_poster_icons, PosterIcons, PosterOptions};
use atlas::atlas::IconKind;

use super::values::one_of;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The atlas folder (from `atlas build`).
    #[arg(long)]
    atlas: PathBuf,
    /// Grid size of the level.
    #[arg(long, default_value_t = 20)]
    level: usize,
    /// The PNG to write.
    #[arg(long)]
    out: PathBuf,
    /// Cell side in pixels (default: the icon size).
    #[arg(long)]
    cell_px: Option<u32>,
    /// Leave out the class labels.
    #[arg(long)]
    no_labels: bool,
    /// Icon size by point density (1 = the viewer's default).
    #[arg(long, default_value_t = 1.0)]
    density: f32,
    /// Icons shown in the cells.
    #[arg(long, value_enum, default_value_t = PosterIconsArg::Synthetic, value_parser = one_of::<PosterIconsArg>())]
    icons: PosterIconsArg,
}

/// `--icons`.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum PosterIconsArg {
    /// Feature visualizations.
    Synthetic,
    /// Each cell's most typical real patch.
    #[value(alias = "exemplars")]
    Exemplar,
    /// A 2×2 mosaic of each cell's top four patches.
    Mosaic,
    /// The synthetic and the exemplar posters side by side.
    Both,
}

impl From<PosterIconsArg> for PosterIcons {
    fn from(icons: PosterIconsArg) -> Self {
        match icons {
            PosterIconsArg::Synthetic => PosterIcons::Only(IconKind::Synthetic),
            PosterIconsArg::Exemplar => PosterIcons::Only(IconKind::Exemplar),
            PosterIconsArg::Mosaic => PosterIcons::Only(IconKind::Mosaic),
            PosterIconsArg::Both => PosterIcons::Both,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let options = PosterOptions {
        grid: args.level,
        cell_px: args.cell_px,
        labels: !args.no_labels,
        density: args.density,
    };
    let img = render_poster_icons(&args.atlas, &options, args.icons.into())?;
    let mut bytes = vec![];
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    atlas::store::atomic::write_bytes(&args.out, &bytes)?;
    println!(
        "wrote {} ({}×{} px)",
        args.out.display(),
        img.width(),
        img.height()
    );
    Ok(())
}
