//! The in-app file browser: the route a desktop with no portal, zenity or kdialog ends on (as
//! under Xvfb). Driven through its real widgets with egui_kittest.
use crate::common;

use std::time::Duration;

use atlas::app::{AtlasApp, JobId};
use eframe::egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

fn step_until(h: &mut Harness<'static, AtlasApp>, what: &str, done: impl Fn(&AtlasApp) -> bool) {
    common::app::step_until(h, what, Duration::from_secs(120), done);
}

#[test]
fn the_in_app_browser_opens_a_folder_and_a_closed_browser_changes_nothing() {
    let dir = common::scratch("file-dialog");
    let photos = dir.join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a model").unwrap();
    for image in common::image_files(&common::assets()).iter().take(2) {
        std::fs::copy(image, photos.join(image.file_name().unwrap())).unwrap();
    }
    let mut app = AtlasApp::new_in(common::model(), common::assets(), dir.join("runs"));
    app.browser.use_only_builtin();
    app.browser.start_in(dir.to_path_buf());
    let mut h = common::app::harness(app, [1200.0, 800.0]);
    step_until(&mut h, "the bundled images to open", |a| {
        !a.running(JobId::Open)
    });

    // "Open folder…" (in the top bar and on the welcome page: either will do).
    h.get_all_by_label("Open folder…").next().unwrap().click();
    step_until(&mut h, "the in-app browser", |a| a.browser.is_open());
    h.step(); // a new window is laid out unseen in its first frame
    h.get_by_label_contains("Open an image folder");
    h.get_by_label("🗋 notes.txt"); // no filter for a folder: files are listed too
    h.get_by_label("🗀 photos").click();
    h.step();
    open_button(&h).click();
    step_until(&mut h, "the chosen folder to open", |a| {
        a.project.images_path == photos && !a.running(JobId::PickFolder)
    });
    assert!(!h.state().browser.is_open());
    step_until(&mut h, "the chosen folder's images", |a| {
        !a.running(JobId::Open)
    });
    assert!(
        h.state().project.errors.is_empty(),
        "{:?}",
        h.state().project.errors
    );
    assert_eq!(h.state().project.rows.len(), 2);

    // Closing the browser without a choice keeps the model.
    let model = h.state().project.model_path.clone();
    h.get_all_by_label("Open model…").next().unwrap().click();
    step_until(&mut h, "the in-app browser", |a| a.browser.is_open());
    h.step(); // a new window is laid out unseen in its first frame
    h.get_by_label_contains("Open an atlas model");
    // The filter shows folders and .pt files only.
    assert!(h.query_by_label("🗀 photos").is_some());
    assert!(h.query_by_label("🗋 notes.txt").is_none());
    assert!(h.query_by_label_contains("notes.txt").is_none());
    h.get_by_role_and_label(Role::Button, "Cancel").click();
    step_until(&mut h, "the closed browser", |a| {
        !a.browser.is_open() && !a.running(JobId::PickModel)
    });
    assert_eq!(h.state().project.model_path, model);
    assert!(
        h.state().project.errors.is_empty(),
        "{:?}",
        h.state().project.errors
    );
}

/// The browser's "Open" button (the window has no other button of that name).
fn open_button<'a>(h: &'a Harness<'static, AtlasApp>) -> egui_kittest::Node<'a> {
    h.get_by_role_and_label(Role::Button, "Open")
}
