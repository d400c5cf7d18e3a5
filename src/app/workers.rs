//! The app's background work. Each function starts a job thread and returns its handle; the UI
//! thread only polls the handle's channel (through the registry, in `AtlasApp::logic`).
use std::path::PathBuf;

use anyhow::Context;
use eframe::egui::ColorImage;

use crate::app::file_dialog::{self, PickRequest, IMAGE_EXTENSIONS};
use crate::classify::{classify, Classified};
use crate::data::scan_folder;
use crate::jobs::{self, Finish, JobHandle};
use crate::model::{AtlasModel, Sidecar};

/// At most this many thumbnails are kept for the image grid; all images are still classified.
pub const MAX_THUMBNAILS: usize = 600;
const THUMB: u32 = 72;

/// One row of the image grid.
pub struct ImageRow {
    pub result: Classified,
    pub thumbnail: Option<ColorImage>,
}

pub enum OpenUpdate {
    /// The model loaded: its sidecar and the device it runs on.
    Model(Box<Sidecar>, String),
    /// The folder was scanned: how many images it holds.
    Scanned(usize),
    /// Predictions for some images, in folder order.
    Rows(Vec<ImageRow>),
}

/// Loads the model, scans the folder and classifies every image, streaming everything as
/// partial updates; ends with `Done(())` when every image is classified.
pub fn spawn_open(model_path: PathBuf, images: PathBuf) -> JobHandle<(), OpenUpdate> {
    jobs::spawn_job("open", move |reporter, cancel| {
        reporter.progress("loading model", 0, 1);
        let model = AtlasModel::load(&model_path, crate::model::default_device())?;
        reporter.partial(OpenUpdate::Model(
            Box::new(model.info.clone()),
            format!("{:?}", model.device),
        ));
        reporter.progress("scanning", 0, 1);
        let scan = scan_folder(&images)
            .with_context(|| format!("cannot open image folder {}", images.display()))?;
        for p in scan.problems {
            reporter.problem(p);
        }
        if scan.images.is_empty() {
            anyhow::bail!("{} contains no readable images", images.display());
        }
        reporter.partial(OpenUpdate::Scanned(scan.images.len()));
        let total = scan.images.len();
        // Classify in slices so rows reach the window early and cancel is prompt.
        for (slice_index, slice) in scan.images.chunks(64).enumerate() {
            if cancel.is_cancelled() {
                return Ok(Finish::Cancelled);
            }
            let results = classify(&model, slice, 5, 32, 2, |_, _| {})?;
            let rows = results
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let keep_thumb = slice_index * 64 + i < MAX_THUMBNAILS;
                    let thumbnail = (keep_thumb && r.top.is_ok())
                        .then(|| thumbnail(&r.path))
                        .flatten();
                    ImageRow {
                        result: r,
                        thumbnail,
                    }
                })
                .collect();
            reporter.partial(OpenUpdate::Rows(rows));
            reporter.progress(
                "classifying",
                ((slice_index + 1) * 64).min(total) as u64,
                total as u64,
            );
        }
        Ok(Finish::Done(()))
    })
}

fn thumbnail(path: &std::path::Path) -> Option<ColorImage> {
    let img = crate::data::load_rgb(
        path,
        crate::data::Preprocess::ResizeShorterCrop { resize: THUMB },
        (THUMB, THUMB),
    )
    .ok()?;
    Some(ColorImage::from_rgb(
        [img.width() as usize, img.height() as usize],
        img.as_raw(),
    ))
}

/// What a file dialog's answer means for its job: closing it without a choice cancels.
pub fn picked(path: Option<PathBuf>) -> anyhow::Result<Finish<PathBuf>> {
    Ok(path.map_or(Finish::Cancelled, Finish::Done))
}

/// Opens a folder dialog off the UI thread (it blocks; see `file_dialog` for the routes).
pub fn spawn_pick_folder() -> JobHandle<PathBuf> {
    jobs::spawn_task("pick-folder", |cancel| {
        picked(file_dialog::pick(
            &PickRequest::folder("Open an image folder"),
            cancel,
        ))
    })
}

/// Opens a file dialog for a model file.
pub fn spawn_pick_model() -> JobHandle<PathBuf> {
    jobs::spawn_task("pick-model", |cancel| {
        let request = PickRequest::file("Open an atlas model").filter("TorchScript", &["pt"]);
        picked(file_dialog::pick(&request, cancel))
    })
}

/// Reads atlas folders (cell tables, attributions, which icon sheets exist) off the UI thread;
/// each arrives as a partial result. A broken folder is reported (the job fails at its end) and
/// the others still load.
pub fn spawn_load_atlases(
    dirs: Vec<PathBuf>,
) -> JobHandle<(), crate::app::atlas_view::LoadedAtlas> {
    jobs::spawn_job("load-atlas", move |reporter, cancel| {
        let total = dirs.len() as u64;
        let mut failed = vec![];
        for (i, dir) in dirs.iter().enumerate() {
            if cancel.is_cancelled() {
                return Ok(Finish::Cancelled);
            }
            reporter.progress("opening atlases", i as u64, total);
            match crate::app::atlas_view::load_atlas(dir) {
                Ok(a) => reporter.partial(a),
                Err(e) => failed.push(format!("{e:#}")),
            }
        }
        if !failed.is_empty() {
            anyhow::bail!("{}", failed.join("; "));
        }
        Ok(Finish::Done(()))
    })
}

/// Opens a file dialog for one image (the One image page).
pub fn spawn_pick_image() -> JobHandle<PathBuf> {
    jobs::spawn_task("pick-image", |cancel| {
        let request = PickRequest::file("Open an image").filter("Images", IMAGE_EXTENSIONS);
        picked(file_dialog::pick(&request, cancel))
    })
}
