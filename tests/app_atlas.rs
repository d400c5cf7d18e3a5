//! The explorer driven through its real widgets with egui_kittest (no display, no GPU): build an
//! atlas from the Atlas page (cancel midway, resume), zoom, hover a cell, click it, pick a class
//! to focus on, export cells, and reopen the project instantly from its saved atlas.
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use atlas::app::atlas_view::canvas::cell_screen_rect;
use atlas::app::{AtlasApp, Tab};
use atlas::render::RenderSettings;
use eframe::egui::{self, accesskit::Role};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

fn harness(app: AtlasApp) -> Harness<'static, AtlasApp> {
    common::app::harness(app, [1200.0, 800.0])
}

fn step_until(h: &mut Harness<'static, AtlasApp>, what: &str, done: impl Fn(&AtlasApp) -> bool) {
    common::app::step_until(h, what, Duration::from_secs(600), done)
}

fn new_app(runs: &Path) -> AtlasApp {
    let mut app = AtlasApp::new_in(common::model(), common::assets(), runs.to_path_buf());
    // A few optimisation steps: this test is about the app, tests/icons.rs about the icons.
    app.render_override = Some(RenderSettings {
        steps: 4,
        batch: 16,
        size: 64,
        ..RenderSettings::preview()
    });
    app
}

#[test]
fn build_zoom_hover_select_focus_export_and_reopen() {
    let runs = common::scratch("app-atlas");
    std::env::set_var("ATLAS_RECENT", runs.join("recent.json"));
    let mut h = harness(new_app(&runs));
    step_until(&mut h, "the model and images", |a| a.open_job.is_none());
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
    h.get_by_label("Atlas").click();
    h.step();
    assert_eq!(h.state().tab, Tab::Atlas);
    h.get_by_label_contains("no atlas for this project yet");
    // The linear-head layer is the default; 25 images x 16 positions.
    assert_eq!(h.state().build_positions, 16);

    // Start, cancel while collecting, start again: the build resumes and finishes.
    h.get_by_label("Build atlas").click();
    step_until(&mut h, "build progress", |a| {
        a.build_job
            .as_ref()
            .and_then(|j| j.progress.as_ref())
            .is_some()
    });
    h.get_by_label("Cancel build").click();
    step_until(&mut h, "the cancel", |a| a.build_job.is_none());
    assert!(
        h.state().log.iter().any(|l| l.contains("cancelled")),
        "{:?}",
        h.state().log
    );
    h.get_by_label("Build atlas").click();
    step_until(&mut h, "the atlas", |a| {
        (a.build_job.is_none() && !a.atlases.is_empty() && a.atlas_loads.is_empty())
            || !a.errors.is_empty()
    });
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
    assert_eq!(h.state().atlases[0].manifest.layer, "head");
    let cells: usize = h.state().atlases[0]
        .levels
        .iter()
        .map(|l| l.cells.len())
        .sum();
    assert!(cells > 5, "{cells} cells");
    // Every sheet is on disk and reaches the GPU cache.
    step_until(&mut h, "the icons", |a| {
        let v = &a.atlases[0];
        v.levels.iter().all(|l| l.sheets_on_disk.iter().all(|s| *s)) && v.icons.uploaded > 0
    });
    h.get_by_label("atlas canvas");
    let drawn = h.state().atlases[0].drawn_cells;
    assert!(drawn > 5, "{drawn} cells drawn");
    assert!(!h.state().atlases[0].drawn_labels.is_empty());

    // Zoom with the wheel over the canvas (about the pointer), then with the keyboard.
    let canvas = h.state().canvas_rect.expect("canvas on screen");
    h.hover_at(canvas.center());
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, 200.0),
        modifiers: Default::default(),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
    });
    h.run_steps(20);
    let zoom = h.state().atlases[0].camera.zoom;
    assert!(zoom > 1.2, "wheel zoom gave {zoom}");
    h.key_press(egui::Key::Plus);
    h.run_steps(2);
    assert!(h.state().atlases[0].camera.zoom > zoom * 1.2);
    h.key_press(egui::Key::Num0);
    h.run_steps(2);
    assert_eq!(h.state().atlases[0].camera.zoom, 1.0);

    // Hover the most populated cell: tooltip with its top classes and count.
    let (grid, index, cell) = {
        let v = &h.state().atlases[0];
        let level = v.levels.iter().find(|l| l.grid() == v.drawn_grid).unwrap();
        let (i, c) = level
            .cells
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| c.count)
            .unwrap();
        (level.grid(), i, c.clone())
    };
    let cam = h.state().atlases[0].camera;
    let centre = cell_screen_rect(&cam, canvas, grid, cell.x, cell.y).center();
    h.hover_at(centre);
    // Tooltips wait for the pointer to rest (egui's tooltip delay).
    for _ in 0..60 {
        h.step();
        std::thread::sleep(Duration::from_millis(15));
    }
    assert_eq!(h.state().atlases[0].hovered, Some((grid, index)));
    h.get_by_label(&format!("Average of {} activations", cell.count));
    let names = h.state().atlases[0].manifest.class_names.clone();
    let top = &names[cell.top[0].0];
    h.get_by_label(&format!("{top}  {:.2}", cell.top[0].1));

    // Click it: the side panel shows the cell and its large icon.
    h.event(egui::Event::PointerButton {
        pos: centre,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: Default::default(),
    });
    h.event(egui::Event::PointerButton {
        pos: centre,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: Default::default(),
    });
    h.run_steps(3);
    assert_eq!(h.state().atlases[0].selected, Some((grid, index)));
    h.get_by_label(&format!("Cell ({}, {})", cell.x, cell.y));

    // Class focus: search the top class by name and pick it from the list.
    h.get_by_role(Role::TextInput).click();
    h.run_steps(2);
    h.get_by_role(Role::TextInput)
        .type_text(&top[..top.len().min(6)]);
    h.run_steps(2);
    assert_eq!(h.state().class_search, &top[..top.len().min(6)]);
    h.get_by_role_and_label(Role::Button, top).click();
    h.run_steps(2);
    let focus = h.state().focus.clone().expect("a class in focus");
    assert_eq!(focus.class, cell.top[0].0);
    h.get_by_label(&format!("focus: {top}"));
    {
        let v = &h.state().atlases[0];
        let level = v.levels.iter().find(|l| l.grid() == grid).unwrap();
        let alphas = atlas::app::atlas_view::focus_alphas(level, names.len(), &focus).unwrap();
        // Opacity follows the attribution to the class: highest where it is largest.
        let best = (0..level.cells.len())
            .max_by(|&a, &b| {
                let attr = |i| level.attribution(i, focus.class, names.len()).unwrap();
                attr(a).total_cmp(&attr(b))
            })
            .unwrap();
        assert!((alphas[best] - 1.0).abs() < 1e-6);
        assert!(alphas.iter().any(|&a| a < 0.5), "{alphas:?}");
    }

    // Export the drawn level's cells.
    h.get_by_label("Cells as CSV").click();
    h.get_by_label("Cells as JSON").click();
    h.run_steps(3);
    let exports = h.state().exports_dir();
    let csv = std::fs::read_to_string(exports.join(format!("head-{grid}-cells.csv"))).unwrap();
    let level_cells = h.state().atlases[0]
        .levels
        .iter()
        .find(|l| l.grid() == grid)
        .unwrap()
        .cells
        .len();
    assert_eq!(csv.lines().count(), level_cells + 1);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(exports.join(format!("head-{grid}-cells.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(json["cells"].as_array().unwrap().len(), level_cells);
    assert!(h.state().log.iter().any(|l| l.contains("exported")));

    // Drag the cell's icon onto the "Patch attack" tab: the page opens mid-drag; dropped on the
    // image, the icon becomes a patch in the tray, placed where it fell.
    let photo = common::image_files(&common::assets())[0].clone();
    atlas::app::attack_page::open_target(h.state_mut(), photo);
    step_until(&mut h, "the image to attack", |a| {
        a.attack_page.target.is_some()
    });
    step_until(&mut h, "the large icon", |a| a.details_icon_rect.is_some());
    let icon = h.state().details_icon_rect.unwrap().center();
    let tab = h.get_by_label("Patch attack").rect().center();
    let press = |h: &mut Harness<'static, AtlasApp>, pos, pressed| {
        h.event(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        })
    };
    h.event(egui::Event::PointerMoved(icon));
    h.step();
    press(&mut h, icon, true);
    h.step();
    for k in 1..=6 {
        h.event(egui::Event::PointerMoved(
            icon + (tab - icon) * (k as f32 / 6.0),
        ));
        h.step();
    }
    h.run_steps(2);
    assert_eq!(
        h.state().tab,
        Tab::Attack,
        "hovering the tab with a patch opens the page"
    );
    let image = h
        .state()
        .attack_page
        .image_rect
        .expect("the workbench image");
    let drop_at = image.min + image.size() * 0.5;
    for k in 1..=4 {
        h.event(egui::Event::PointerMoved(
            tab + (drop_at - tab) * (k as f32 / 4.0),
        ));
        h.step();
    }
    press(&mut h, drop_at, false);
    h.step();
    step_until(&mut h, "the icon in the tray", |a| {
        a.attack_page.patches.len() == 1 && a.attack_page.placed.is_some()
    });
    let patch = &h.state().attack_page.patches[0];
    assert!(patch.name.starts_with("icon of cell"), "{}", patch.name);
    let icon_px = h.state().atlases[0].manifest.icon_size;
    assert_eq!(patch.image.dimensions(), (icon_px, icon_px));
    h.state_mut().shutdown();

    // Reopen the project: the saved atlas opens with no build.
    drop(h);
    let start = Instant::now();
    let mut h = harness(new_app(&runs));
    step_until(&mut h, "the saved atlas", |a| !a.atlases.is_empty());
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(h.state().build_job.is_none());
    assert_eq!(
        h.state().tab,
        Tab::Atlas,
        "a project with an atlas opens on it"
    );
    h.get_by_label("Home").click();
    h.run_steps(2);
    h.get_by_label("Recent projects");
    h.get_by_label("images"); // the bundled folder's name, listed as a recent project
    std::fs::remove_dir_all(&runs).unwrap();
}

/// Closing the window mid-job (eframe calls `on_exit`) stops the workers promptly and keeps every
/// finished stage: the next session's build reuses the collection instead of redoing it.
#[test]
fn closing_the_window_mid_build_keeps_finished_work() {
    let runs = common::scratch("app-close");
    std::env::set_var("ATLAS_RECENT", runs.join("recent.json"));
    let mut h = harness(new_app(&runs));
    step_until(&mut h, "the model", |a| a.model.is_some());
    h.state_mut().build_positions = 2;
    h.state_mut().start_build();
    // Wait until the collection is done and the atlas build has started.
    step_until(&mut h, "the atlas build stage", |a| {
        a.last_collection.is_some() || !a.errors.is_empty()
    });
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
    let closed = Instant::now();
    eframe::App::on_exit(h.state_mut(), None);
    step_until(&mut h, "the job to stop", |a| a.build_job.is_none());
    assert!(
        closed.elapsed() < Duration::from_secs(60),
        "the build took {:?} to stop",
        closed.elapsed()
    );
    let run_dir = h
        .state()
        .last_collection
        .as_ref()
        .unwrap()
        .manifest
        .settings
        .images_root
        .clone();
    assert_eq!(run_dir, common::assets());
    drop(h);

    let mut h = harness(new_app(&runs));
    step_until(&mut h, "the model", |a| a.model.is_some());
    h.state_mut().build_positions = 2;
    h.state_mut().start_build();
    step_until(&mut h, "the resumed build", |a| {
        (a.build_job.is_none() && !a.atlases.is_empty()) || !a.errors.is_empty()
    });
    assert!(h.state().errors.is_empty(), "{:?}", h.state().errors);
    assert!(
        h.state()
            .log
            .iter()
            .any(|l| l.contains("the run is already complete")),
        "the collection was redone: {:?}",
        h.state().log
    );
    std::fs::remove_dir_all(&runs).unwrap();
}
