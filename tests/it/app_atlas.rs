//! The explorer driven through its real widgets with egui_kittest (no display, no GPU): build an
//! atlas from the Atlas page (cancel midway, resume), zoom, hover a cell, click it, pick a class
//! to focus on, export cells, and reopen the project instantly from its saved atlas.
use crate::common;
use crate::common::bundled::BundledRun;

use std::path::Path;
use std::time::{Duration, Instant};

use atlas::app::atlas_view::canvas::cell_screen_rect;
use atlas::app::{AtlasApp, JobId, Tab};
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
    // A few optimization steps: this test is about the app, tests/icons.rs about the icons.
    app.project.render_override = Some(RenderSettings {
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
    let mut h = harness(new_app(&runs));
    step_until(&mut h, "the model and images", |a| !a.running(JobId::Open));
    common::app::assert_no_errors(h.state());
    h.get_by_label("Atlas").click();
    h.step();
    assert_eq!(h.state().tab, Tab::Atlas);
    h.get_by_label_contains("no atlas for this project yet");
    // The linear-head layer is the default; 25 images x 16 positions.
    assert_eq!(h.state().atlas_page.build_positions, 16);

    // Start, cancel while collecting, start again: the build resumes and finishes.
    h.get_by_label("Build atlas").click();
    step_until(&mut h, "build progress", |a| {
        a.job_progress(JobId::Build).is_some()
    });
    h.get_by_label("Cancel build").click();
    step_until(&mut h, "the cancel", |a| !a.running(JobId::Build));
    common::app::assert_logged(h.state(), "cancelled");
    h.get_by_label("Build atlas").click();
    step_until(&mut h, "the atlas", |a| {
        (!a.running(JobId::Build) && !a.project.atlases.is_empty() && !a.loading_atlases())
            || !a.project.errors.is_empty()
    });
    common::app::assert_no_errors(h.state());
    assert_eq!(h.state().project.atlases[0].manifest.layer, "head");
    let cells: usize = h.state().project.atlases[0]
        .levels
        .iter()
        .map(|l| l.cells.len())
        .sum();
    assert!(cells > 5, "{cells} cells");
    // Every sheet is on disk and reaches the GPU cache.
    step_until(&mut h, "the icons", |a| {
        let v = &a.project.atlases[0];
        v.levels.iter().all(|l| l.sheets_on_disk.iter().all(|s| *s)) && v.icons.uploaded > 0
    });
    h.get_by_label("atlas canvas");
    // The opening view shows every cell of the level it draws (which level that is depends on
    // the layout: the finest that fills at least half of its occupied area).
    let drawn = h.state().project.atlases[0].drawn_cells;
    let opening_cells = {
        let v = &h.state().project.atlases[0];
        v.levels
            .iter()
            .find(|l| l.grid() == v.drawn_grid)
            .unwrap()
            .cells
            .len()
    };
    assert!(drawn >= 2, "{drawn} cells drawn");
    assert_eq!(
        drawn, opening_cells,
        "cells of the opening level off screen"
    );
    assert!(!h.state().project.atlases[0].drawn_labels.is_empty());

    // The opening view is full: at least half of the drawn level's cells on screen hold an
    // icon (the camera is fitted to the occupied area; overview levels exist for sparse layouts).
    let opening = h.state().project.atlases[0].drawn_occupancy;
    assert!(opening >= 0.5, "opening view occupancy {opening}");
    let home = h.state().project.atlases[0].camera;
    assert_eq!(h.state().project.atlases[0].home, Some(home));

    // Zoom with the wheel over the canvas (about the pointer), then with the keyboard.
    let canvas = h.state().atlas_page.canvas_rect.expect("canvas on screen");
    h.hover_at(canvas.center());
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, 200.0),
        modifiers: Default::default(),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
    });
    h.run_steps(20);
    let zoom = h.state().project.atlases[0].camera.zoom;
    assert!(
        zoom > home.zoom * 1.2,
        "wheel zoom gave {zoom} from {}",
        home.zoom
    );
    h.key_press(egui::Key::Plus);
    h.run_steps(2);
    assert!(h.state().project.atlases[0].camera.zoom > zoom * 1.2);
    assert!(
        h.state().project.atlases[0].minimap.is_some(),
        "zoomed in, the minimap shows where the view is"
    );
    h.key_press(egui::Key::Num0);
    h.run_steps(2);
    assert_eq!(
        h.state().project.atlases[0].camera,
        home,
        "0 goes back to the opening view"
    );

    // At the default view the whole atlas is on screen and nothing covers it: no minimap.
    h.run_steps(2);
    assert_eq!(h.state().project.atlases[0].minimap, None);
    // Hover the most populated cell among those drawn entirely inside the canvas (which cells
    // those are depends on the layout, so the test asks rather than assumes): tooltip with its
    // top classes and count.
    let cam = h.state().project.atlases[0].camera;
    let (grid, index, cell) = {
        let v = &h.state().project.atlases[0];
        let level = v.levels.iter().find(|l| l.grid() == v.drawn_grid).unwrap();
        let (i, c) = level
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                canvas.contains_rect(cell_screen_rect(&cam, canvas, level.grid(), c.x, c.y))
            })
            .max_by_key(|(_, c)| c.count)
            .expect("a cell fully on screen at the default view");
        (level.grid(), i, c.clone())
    };
    let centre = cell_screen_rect(&cam, canvas, grid, cell.x, cell.y).center();
    h.hover_at(centre);
    // Tooltips wait for the pointer to rest (egui's tooltip delay).
    for _ in 0..60 {
        h.step();
        std::thread::sleep(Duration::from_millis(15));
    }
    assert_eq!(h.state().project.atlases[0].hovered, Some((grid, index)));
    h.get_by_label(&format!("Average of {} activations", cell.count));
    let names = h.state().project.atlases[0].manifest.class_names.clone();
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
    assert_eq!(h.state().project.atlases[0].selected, Some((grid, index)));
    h.get_by_label(&format!("Cell ({}, {})", cell.x, cell.y));

    // Class focus: search the top class by name and pick it from the list.
    h.get_by_role(Role::TextInput).click();
    h.run_steps(2);
    h.get_by_role(Role::TextInput)
        .type_text(&top[..top.len().min(6)]);
    h.run_steps(2);
    assert_eq!(h.state().atlas_page.class_search, &top[..top.len().min(6)]);
    h.get_by_role_and_label(Role::Button, top).click();
    h.run_steps(2);
    let focus = h.state().project.focus.clone().expect("a class in focus");
    assert_eq!(focus.class, cell.top[0].0);
    h.get_by_label(&format!("focus: {top}"));
    {
        let v = &h.state().project.atlases[0];
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
    let exports = h.state().project.exports_dir();
    let csv = std::fs::read_to_string(exports.join(format!("head-{grid}-cells.csv"))).unwrap();
    let level_cells = h.state().project.atlases[0]
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
    common::app::assert_logged(h.state(), "exported");

    // Drag the cell's icon onto the "Patch attack" tab: the page opens mid-drag; dropped on the
    // image, the icon becomes a patch in the tray, placed where it fell.
    let photo = common::image_files(&common::assets())[0].clone();
    h.state_mut()
        .apply(atlas::app::page::Action::AttackImage(photo));
    step_until(&mut h, "the image to attack", |a| {
        a.attack_page.target.is_some()
    });
    step_until(&mut h, "the large icon", |a| {
        a.atlas_page.details_icon_rect.is_some()
    });
    let icon = h.state().atlas_page.details_icon_rect.unwrap().center();
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
    let icon_px = h.state().project.atlases[0].manifest.icon_size;
    assert_eq!(patch.image.dimensions(), (icon_px, icon_px));
    h.state_mut().shutdown();

    // Reopen the project: the saved atlas opens with no build.
    drop(h);
    let start = Instant::now();
    let mut h = harness(new_app(&runs));
    step_until(&mut h, "the saved atlas", |a| !a.project.atlases.is_empty());
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(!h.state().running(JobId::Build));
    assert_eq!(
        h.state().tab,
        Tab::Atlas,
        "a project with an atlas opens on it"
    );
    h.get_by_label("Home").click();
    h.run_steps(2);
    h.get_by_label("Recent projects");
    h.get_by_label("images"); // the bundled folder's name, listed as a recent project
}

/// Closing the window mid-job (eframe calls `on_exit`) stops the workers promptly and keeps every
/// finished stage: the next session's build reuses the collection instead of redoing it.
#[test]
fn closing_the_window_mid_build_keeps_finished_work() {
    let runs = common::scratch("app-close");
    let mut h = harness(new_app(&runs));
    step_until(&mut h, "the model", |a| a.project.model.is_some());
    h.state_mut().atlas_page.build_positions = 2;
    h.state_mut().start_build();
    // Wait until the collection is done and the atlas build has started.
    step_until(&mut h, "the atlas build stage", |a| {
        a.project.last_collection.is_some() || !a.project.errors.is_empty()
    });
    common::app::assert_no_errors(h.state());
    let closed = Instant::now();
    eframe::App::on_exit(h.state_mut(), None);
    step_until(&mut h, "the job to stop", |a| !a.running(JobId::Build));
    assert!(
        closed.elapsed() < Duration::from_secs(60),
        "the build took {:?} to stop",
        closed.elapsed()
    );
    let run_dir = h
        .state()
        .project
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
    step_until(&mut h, "the model", |a| a.project.model.is_some());
    h.state_mut().atlas_page.build_positions = 2;
    h.state_mut().start_build();
    step_until(&mut h, "the resumed build", |a| {
        (!a.running(JobId::Build) && !a.project.atlases.is_empty()) || !a.project.errors.is_empty()
    });
    common::app::assert_no_errors(h.state());
    // The second session reuses the first one's collection instead of redoing it.
    common::app::assert_logged(h.state(), "run is already complete");
    drop(h);

    // The first-run behaviour (`atlas app` with no arguments) on a project that now has a saved
    // atlas: the saved one opens and nothing is rebuilt.
    let mut app = new_app(&runs);
    app.atlas_page.auto_build = true;
    let mut h = harness(app);
    step_until(&mut h, "the saved atlas", |a| {
        !a.project.atlases.is_empty()
            && !a.loading_atlases()
            && a.project.model.is_some()
            && !a.atlas_page.auto_build
    });
    assert!(
        !h.state().running(JobId::Build),
        "a saved atlas was rebuilt"
    );
    assert_eq!(h.state().tab, Tab::Atlas);
}

/// `atlas app` with no arguments (the first run) lands on the Atlas page with the bundled
/// example's atlas building, not on a button.
#[test]
fn first_run_lands_on_an_atlas_building() {
    let runs = common::scratch("app-first-run");
    let mut app = new_app(&runs);
    app.atlas_page.auto_build = true;
    app.set_tab(Tab::Atlas);
    let mut h = harness(app);
    step_until(&mut h, "the build to start by itself", |a| {
        a.running(JobId::Build) || !a.project.errors.is_empty()
    });
    common::app::assert_no_errors(h.state());
    assert_eq!(h.state().tab, Tab::Atlas);
    assert_eq!(h.state().atlas_page.build_positions, 16);
    step_until(&mut h, "build progress on screen", |a| {
        a.job_progress(JobId::Build).is_some()
    });
    h.get_by_label("Cancel build");
    let report = h.state_mut().shutdown();
    assert_eq!(report.still_running, 0, "{report:?}");
    drop(h);
}

/// Texture ids of the meshes the last frame painted (what actually reached the painter).
fn painted_textures(h: &Harness<'static, AtlasApp>) -> Vec<egui::TextureId> {
    fn walk(shape: &egui::Shape, out: &mut Vec<egui::TextureId>) {
        match shape {
            egui::Shape::Mesh(m) => out.push(m.texture_id),
            egui::Shape::Vec(v) => v.iter().for_each(|s| walk(s, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    for clipped in &h.output().shapes {
        walk(&clipped.shape, &mut out);
    }
    out
}

/// The icon switch above the canvas decides which sheets the canvas draws: synthetic, exemplar,
/// mosaic, both side by side, or the exemplar of the hovered cell only. Checked on the counts the
/// canvas reports and on the textures of the meshes that reach the painter.
#[test]
fn icon_switch_changes_the_drawn_textures() {
    use atlas::app::atlas_view::LevelChoice;
    use atlas::atlas::IconKind;
    let runs = common::scratch("app-icon-switch");
    // A small atlas with every kind of sheet, built with the CLI.
    let run = runs.join("cli-run");
    let atlas_dir = runs.join("cli-atlas");
    // A copy: the app writes into the runs it opens.
    BundledRun {
        layers: "stage6",
        samples: 6,
        limit: Some(12),
    }
    .copy_to(&run);
    let build: Vec<&std::ffi::OsStr> = vec![
        "build".as_ref(),
        "--layer".as_ref(),
        "stage6".as_ref(),
        "--grids".as_ref(),
        "2,4".as_ref(),
        "--min-count".as_ref(),
        "1".as_ref(),
        "--neighbors".as_ref(),
        "10".as_ref(),
        "--steps".as_ref(),
        "2".as_ref(),
        "--batch".as_ref(),
        "8".as_ref(),
        "--run".as_ref(),
        run.as_os_str(),
        "--out".as_ref(),
        atlas_dir.as_os_str(),
    ];
    common::atlas_ok(&build);

    let mut h = harness(new_app(&runs));
    step_until(&mut h, "the model", |a| a.project.model.is_some());
    h.state_mut().open_atlas(atlas_dir.clone());
    step_until(&mut h, "the atlas", |a| !a.project.atlases.is_empty());
    h.get_by_label("Atlas").click();
    h.step();
    h.state_mut().project.atlases[0].level_choice = LevelChoice::Grid(4);
    let sheets = {
        let v = &h.state().project.atlases[0];
        let level = v.level(4).unwrap();
        assert!(level.exemplar_sheets.iter().all(|s| *s) && level.mosaic_sheets.iter().all(|s| *s));
        level.sheet_count()
    };
    let ids = |h: &Harness<'static, AtlasApp>, kind: IconKind| -> Vec<egui::TextureId> {
        (0..sheets)
            .filter_map(|s| h.state().project.atlases[0].icons.texture_id(kind, 4, s))
            .collect()
    };
    // Waits until every drawn cell shows an icon of `kinds`, then checks the counts and that
    // the painted meshes use exactly the sheets of those kinds.
    let check = |h: &mut Harness<'static, AtlasApp>, label: &str, kinds: &[IconKind]| {
        h.get_by_label(label).click();
        let per_cell = kinds.to_vec();
        step_until(h, label, move |a| {
            let v = &a.project.atlases[0];
            v.drawn_cells > 0
                && per_cell
                    .iter()
                    .all(|k| v.drawn_icons.count(*k) == v.drawn_cells)
        });
        h.step();
        let v = &h.state().project.atlases[0];
        for k in IconKind::ALL {
            if !kinds.contains(&k) {
                assert_eq!(v.drawn_icons.count(k), 0, "{label}: {k:?} icons drawn");
            }
        }
        let mut want: Vec<egui::TextureId> = kinds.iter().flat_map(|k| ids(h, *k)).collect();
        want.sort_by_key(|t| format!("{t:?}"));
        let mut drawn = v.drawn_icons.textures.clone();
        drawn.sort_by_key(|t| format!("{t:?}"));
        assert_eq!(drawn, want, "{label}: the sheets drawn");
        let painted = painted_textures(h);
        for t in &want {
            assert!(painted.contains(t), "{label}: {t:?} not painted");
        }
        for k in IconKind::ALL {
            if !kinds.contains(&k) {
                for t in ids(h, k) {
                    assert!(!painted.contains(&t), "{label}: {k:?} sheet painted");
                }
            }
        }
    };
    check(&mut h, "synthetic", &[IconKind::Synthetic]);
    check(&mut h, "exemplar", &[IconKind::Exemplar]);
    check(&mut h, "mosaic", &[IconKind::Mosaic]);
    check(
        &mut h,
        "side by side",
        &[IconKind::Synthetic, IconKind::Exemplar],
    );
    // On hover: synthetic icons, and the exemplar for the cell under the pointer.
    h.get_by_label("exemplar on hover").click();
    h.run_steps(2);
    let canvas = h.state().atlas_page.canvas_rect.expect("canvas on screen");
    let (cell_rect, drawn) = {
        let v = &h.state().project.atlases[0];
        let level = v.level(4).unwrap();
        let c = level.cells.iter().max_by_key(|c| c.count).unwrap();
        (
            cell_screen_rect(&v.camera, canvas, 4, c.x, c.y),
            v.drawn_cells,
        )
    };
    h.hover_at(cell_rect.center());
    step_until(&mut h, "the hovered exemplar", |a| {
        a.project.atlases[0].drawn_icons.exemplar == 1
    });
    let v = &h.state().project.atlases[0];
    assert_eq!(v.drawn_icons.synthetic, drawn - 1);
    assert_eq!(v.drawn_icons.mosaic, 0);
    // Stop the app's workers before the process exits (libtorch at exit with a live worker).
    h.state_mut().shutdown();
    drop(h);
}

/// Built from the Atlas page, a level's first synthetic icons arrive one batch at a time (the
/// count of drawn synthetic icons takes several values before the sheet is complete), and the
/// exemplar icons are on the canvas before the first synthetic one.
#[test]
fn icons_arrive_one_by_one_after_the_exemplars() {
    let runs = common::scratch("app-progressive");
    let mut app = AtlasApp::new_in(common::model(), common::assets(), runs.to_path_buf());
    // Enough steps that each render batch spans several frames.
    app.project.render_override = Some(RenderSettings {
        steps: 24,
        batch: 32,
        size: 64,
        ..RenderSettings::preview()
    });
    let mut h = harness(app);
    step_until(&mut h, "the model", |a| a.project.model.is_some());
    h.get_by_label("Atlas").click();
    h.step();
    // 25 images × 2 positions: one small level, one sheet.
    h.state_mut().atlas_page.build_positions = 2;
    h.get_by_label("Build atlas").click();
    step_until(&mut h, "the atlas view", |a| {
        !a.project.atlases.is_empty() || !a.project.errors.is_empty()
    });
    common::app::assert_no_errors(h.state());
    h.get_by_label("side by side").click();
    let start = Instant::now();
    let mut seen: Vec<(usize, usize)> = vec![]; // (exemplar, synthetic) drawn per frame
    let mut times: Vec<f64> = vec![];
    loop {
        h.step();
        let a = h.state();
        common::app::assert_no_errors(a);
        let v = &a.project.atlases[0];
        seen.push((v.drawn_icons.exemplar, v.drawn_icons.synthetic));
        times.push(start.elapsed().as_secs_f64());
        let cells = v.levels[0].cells.len();
        if !a.running(JobId::Build) && v.drawn_icons.synthetic == cells && cells > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "timed out; last frames {:?}",
            &seen[seen.len().saturating_sub(5)..]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cells = h.state().project.atlases[0].levels[0].cells.len();
    let first_exemplar = seen.iter().position(|s| s.0 > 0).expect("exemplars drawn");
    let first_synthetic = seen.iter().position(|s| s.1 > 0).expect("icons drawn");
    assert!(
        first_exemplar < first_synthetic,
        "exemplars at frame {first_exemplar}, first synthetic icon at frame {first_synthetic}"
    );
    let mut counts: Vec<usize> = seen.iter().map(|s| s.1).filter(|&n| n > 0).collect();
    counts.dedup();
    println!(
        "after the atlas view opened: exemplars drawn at {:.2} s, first synthetic icon at {:.2} s, \
         all {cells} at {:.2} s; synthetic icons drawn over frames: {counts:?}",
        times[first_exemplar],
        times[first_synthetic],
        times[times.len() - 1]
    );
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "the drawn icons only grow: {counts:?}"
    );
    assert!(
        counts.len() >= 3 && counts[0] < cells,
        "icons arrived in {counts:?} (of {cells}), not one batch at a time"
    );
    h.state_mut().shutdown();
    drop(h);
}
