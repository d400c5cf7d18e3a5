//! `atlas app` (and `atlas` alone): the desktop app.
use std::path::PathBuf;

use anyhow::Result;

use atlas::app::OpenAlso;
use atlas::defaults;

use super::args::ModelArg;

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Image folder to open (default: the bundled photographs).
    #[arg(long)]
    images: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArg,
    /// Atlas folders (from `atlas build`) to open as well; repeat for several layers.
    #[arg(long)]
    atlas: Vec<PathBuf>,
    /// An image to open on the One image page.
    #[arg(long)]
    image: Option<PathBuf>,
    /// An image to open on the Patch attack page.
    #[arg(long)]
    attack: Option<PathBuf>,
    /// Patch files for the Patch attack page's tray (repeat; the first is placed on the
    /// image).
    #[arg(long)]
    patch: Vec<PathBuf>,
    /// Do not build the project's atlas on opening (by default, when nothing else is asked
    /// for and the project has no saved atlas, the app builds one on the Atlas page).
    #[arg(long)]
    no_build: bool,
}

pub fn run(args: Args) -> Result<()> {
    // The first-run atlas is built only when nothing else was asked for.
    let build_atlas =
        !args.no_build && args.atlas.is_empty() && args.image.is_none() && args.attack.is_none();
    atlas::app::run(
        args.model.path(),
        args.images.unwrap_or_else(defaults::default_images),
        OpenAlso {
            build_atlas,
            atlases: args.atlas,
            image: args.image,
            attack: args.attack,
            patches: args.patch,
        },
    )
}
