//! Driving the app in egui_kittest: a harness around `AtlasApp::show`, and stepping frames until
//! the background jobs (polled once a frame) have done something.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas::app::AtlasApp;
use eframe::egui;
use egui_kittest::Harness;

/// A file dropped on the window from the desktop, as the windowing integration hands it to egui.
#[derive(Debug)]
pub struct DesktopFile(pub PathBuf);

impl egui::DroppedFile for DesktopFile {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Drops `file` on the window in the next frame (where the pointer is).
pub fn drop_desktop_file(h: &mut Harness<'static, AtlasApp>, file: &Path) {
    h.input_mut()
        .dropped_files
        .push(Arc::new(DesktopFile(file.to_path_buf())));
}

pub fn harness(app: AtlasApp, size: [f32; 2]) -> Harness<'static, AtlasApp> {
    Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, app: &mut AtlasApp| app.show(ui), app)
}

/// Steps frames until `done` holds; fails after `limit` with the app's errors and log.
pub fn step_until(
    h: &mut Harness<'static, AtlasApp>,
    what: &str,
    limit: Duration,
    done: impl Fn(&AtlasApp) -> bool,
) {
    let start = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; errors: {:?}; page error: {:?}; log: {:?}",
            h.state().project.errors,
            h.state().image_page.error,
            h.state().project.log
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Fails, showing the errors and the log, unless the app reported no error.
pub fn assert_no_errors(app: &AtlasApp) {
    assert!(
        app.project.errors.is_empty(),
        "errors: {:?}; log: {:?}",
        app.project.errors,
        app.project.log
    );
}

/// Fails, showing the log, unless a line of the app's log contains `text`.
pub fn assert_logged(app: &AtlasApp, text: &str) {
    assert!(
        app.project.log.iter().any(|l| l.contains(text)),
        "no log line contains {text:?}: {:?}",
        app.project.log
    );
}
