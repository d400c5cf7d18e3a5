//! Driving the app in egui_kittest: a harness around `AtlasApp::show`, and stepping frames until
//! the background jobs (polled once a frame) have done something.
use std::time::{Duration, Instant};

use atlas::app::AtlasApp;
use egui_kittest::Harness;

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
            h.state().errors,
            h.state().image_page.error,
            h.state().log
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}
