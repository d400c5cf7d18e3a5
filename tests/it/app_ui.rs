//! The first window, driven through its real widgets with egui_kittest (no display needed).
use crate::common;

use std::time::Duration;

use atlas::app::{AtlasApp, JobId};
use eframe::egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

fn harness(app: AtlasApp) -> Harness<'static, AtlasApp> {
    common::app::harness(app, [1200.0, 800.0])
}

/// Steps frames (the app polls its job channels each frame) until `done` holds.
fn step_until(h: &mut Harness<'static, AtlasApp>, what: &str, done: impl Fn(&AtlasApp) -> bool) {
    common::app::step_until(h, what, Duration::from_secs(300), done)
}

#[test]
fn shows_model_images_predictions_and_runs_a_cancellable_resumable_collection() {
    let run = common::scratch("app-run");
    let mut h = harness(AtlasApp::new_in(
        common::model(),
        common::assets(),
        run.join("runs"),
    ));
    step_until(&mut h, "the images to be classified", |a| {
        !a.running(JobId::Open)
    });
    common::app::assert_no_errors(h.state());
    h.get_by_label("EfficientNet-Lite0");
    h.get_by_label("head (linear head)");
    let images = common::image_files(&common::assets()).len();
    assert_eq!(h.state().project.rows.len(), images);
    h.get_by_label_contains("top-1 accuracy on labelled images");
    h.get_by_label_contains("Bullmastiff"); // a bundled photo's prediction is on screen

    // Collect two layers only: untick the other five through their checkboxes.
    h.state_mut().project.dir = run.to_path_buf();
    for layer in ["stage2", "stage3", "stage5", "stage6", "stage7"] {
        h.get_by_role_and_label(Role::CheckBox, layer).click();
    }
    h.step();
    assert_eq!(
        h.state().images_page.collect_form.layers,
        vec![false, false, true, false, false, false, true]
    );
    h.get_by_label("Start collection").click();
    step_until(&mut h, "collection progress", |a| {
        a.job_progress(JobId::Collect)
            .is_some_and(|p| p.stage == "collecting")
    });
    h.get_by_label("Cancel collection").click();
    step_until(&mut h, "the cancel", |a| !a.running(JobId::Collect));
    common::app::assert_logged(h.state(), "cancelled");
    assert!(h.state().project.last_collection.is_none());

    // Starting again resumes and finishes.
    h.get_by_label("Start collection").click();
    step_until(&mut h, "the collection", |a| {
        a.project.last_collection.is_some() || !a.project.errors.is_empty()
    });
    common::app::assert_no_errors(h.state());
    h.step();
    h.get_by_label(&format!(
        "head: {images} vectors × 1280 channels, attributions over 1000 classes"
    ));
}

#[test]
fn broken_model_and_empty_folder_are_reported_and_the_window_stays_usable() {
    let dir = common::scratch("app-bad");
    let bogus = dir.join("bogus.pt");
    std::fs::write(&bogus, b"not a model").unwrap();
    let mut h = harness(AtlasApp::new_in(bogus, common::assets(), dir.join("runs")));
    step_until(&mut h, "the model error", |a| !a.project.errors.is_empty());
    h.get_by_label_contains("Error: ");
    assert!(
        h.state().project.errors[0].contains("bogus.pt")
            && h.state().project.errors[0].contains("sidecar"),
        "{:?}",
        h.state().project.errors
    );
    assert!(h.state().project.model.is_none());

    // Switching to a good model and an empty folder: the model loads, the folder is reported.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    h.get_by_label("dismiss").click();
    h.step();
    h.state_mut().project.model_path = common::model();
    h.state_mut().open_folder(empty);
    step_until(&mut h, "the empty-folder error", |a| {
        !a.project.errors.is_empty()
    });
    assert!(
        h.state().project.model.is_some(),
        "{:?}",
        h.state().project.errors
    );
    h.get_by_label_contains("contains no readable images");

    // A folder of non-images: each file is named as skipped, and the window still works.
    let junk = dir.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("photo.jpg"), b"definitely not a jpeg").unwrap();
    std::fs::write(junk.join("notes.txt"), b"hello").unwrap();
    h.get_by_label("dismiss").click();
    h.step();
    h.state_mut().open_folder(junk);
    step_until(&mut h, "the non-image error", |a| {
        !a.project.errors.is_empty()
    });
    h.get_by_label_contains("contains no readable images");
    assert!(
        h.state()
            .project
            .problems
            .iter()
            .any(|p| p.path.ends_with("photo.jpg")),
        "{:?}",
        h.state().project.problems
    );
    h.get_by_label("Atlas").click();
    h.step();
    h.get_by_label_contains("no atlas for this project yet");
}
