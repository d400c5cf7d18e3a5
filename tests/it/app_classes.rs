//! The Classes page driven through its real widgets with egui_kittest (no display, no GPU), on a
//! tiny run of the bundled images (head layer, 6 positions per image) and its atlas built with
//! the CLI: pick a class by searching, switch the filter, build a class atlas (sample counts
//! checked against `atlas::classes` on the run), click a cell (top classes), pick A and B,
//! compare (10×10 plot, axis captions with the class names, both class atlases), click an icon
//! and hand it (and a dataset example) to the attack workbench with "Use as patch".
use crate::common;
use crate::common::bundled::BundledRun;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atlas::app::atlas_view::canvas::cell_screen_rect;
use atlas::app::{AtlasApp, JobId, Tab};
use atlas::classes::{
    class_rows, comparison_rows, magnitude_rows, winner_rows, ClassFilter, Selection,
};
use atlas::render::RenderSettings;
use atlas::store::npy;
use eframe::egui::{self, accesskit::Role};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

const LAYER: &str = "head";

fn harness(app: AtlasApp) -> Harness<'static, AtlasApp> {
    Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut AtlasApp| app.show(ui), app)
}

fn step_until(h: &mut Harness<'static, AtlasApp>, what: &str, done: impl Fn(&AtlasApp) -> bool) {
    let start = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            eprintln!("{what}: {:.1} s", start.elapsed().as_secs_f64());
            return;
        }
        assert!(
            h.state().project.errors.is_empty(),
            "errors while waiting for {what}: {:?}; log: {:?}",
            h.state().project.errors,
            h.state().project.log
        );
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "timed out waiting for {what}; log: {:?}",
            h.state().project.log
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn click_at(h: &mut Harness<'static, AtlasApp>, pos: egui::Pos2) {
    h.hover_at(pos);
    h.step();
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        });
    }
    h.run_steps(3);
}

/// A run of the bundled images and its atlas (no icons: the class tools render their own).
fn tiny_project(dir: &Path) -> (PathBuf, PathBuf) {
    let run = dir.join("run");
    let atlas_dir = dir.join("atlas");
    let t = Instant::now();
    // A copy: the Classes page writes its class atlases into the run.
    BundledRun {
        layers: LAYER,
        samples: 6,
        limit: None,
    }
    .copy_to(&run);
    common::atlas_ok(&[
        "build".as_ref(),
        "--run".as_ref(),
        run.as_os_str(),
        "--layer".as_ref(),
        LAYER.as_ref(),
        "--out".as_ref(),
        atlas_dir.as_os_str(),
        "--grids".as_ref(),
        "4,8".as_ref(),
        "--icon-levels".as_ref(),
        "none".as_ref(),
    ]);
    eprintln!("collect + build: {:.1} s", t.elapsed().as_secs_f64());
    (run, atlas_dir)
}

#[test]
fn class_atlas_comparison_and_patch() {
    let dir = common::scratch("app-classes");
    let (run, atlas_dir) = tiny_project(&dir);
    let attr = npy::read(&run.join("layers").join(LAYER).join("attr.npy")).unwrap();
    let k = attr.cols;
    let (order, _) = common::classes_by_wins(&attr);

    let mut app = AtlasApp::new_in(common::model(), common::assets(), dir.join("runs"));
    app.open_atlas(atlas_dir.clone());
    // A few optimization steps: this test is about the page, tests/icons.rs about the icons.
    app.classes_page.render_override = Some(RenderSettings {
        steps: 4,
        batch: 16,
        size: 64,
        ..RenderSettings::preview()
    });
    // ~50 samples: an 8×8 grid would keep almost no cell of ≥ 5 points.
    app.classes_page.grid = 4;
    let mut h = harness(app);
    step_until(&mut h, "the model and the atlas", |a| {
        !a.running(JobId::Open) && !a.project.atlases.is_empty() && !a.loading_atlases()
    });
    let names = h.state().project.atlases[0].manifest.class_names.clone();
    h.get_by_label("Classes").click();
    h.run_steps(2);
    assert_eq!(h.state().tab, Tab::Classes);
    h.get_by_label("Class activation atlas");

    // --- pick a class by searching, switch the filter ------------------------------------------
    let a = order[0];
    let a_name = names[a].clone();
    let query = &a_name[..a_name.len().min(5)];
    h.get_by_role(Role::TextInput).click();
    h.run_steps(2);
    h.get_by_role(Role::TextInput).type_text(query);
    h.run_steps(2);
    assert_eq!(h.state().classes_page.search, query);
    h.get_by_role_and_label(Role::Button, &a_name).click();
    h.run_steps(2);
    assert_eq!(h.state().classes_page.class, Some(a));
    h.get_by_label(&format!("Class: {a_name}"));
    assert_eq!(h.state().classes_page.filter, ClassFilter::Both);
    h.get_by_label("winner").click();
    h.run_steps(2);
    assert_eq!(h.state().classes_page.filter, ClassFilter::Winner);
    h.get_by_label("magnitude").click();
    h.run_steps(2);
    assert_eq!(h.state().classes_page.filter, ClassFilter::Magnitude);
    h.get_by_label("both").click();
    h.run_steps(2);
    assert_eq!(h.state().classes_page.filter, ClassFilter::Both);

    // --- build the class atlas ---------------------------------------------------------------
    h.get_by_label("Build class atlas").click();
    step_until(&mut h, "class atlas job started", |a| {
        a.running(JobId::ClassAtlas)
    });
    h.step();
    h.get_by_label("Cancel class atlas"); // the button while it runs
    step_until(&mut h, "the class atlas", |a| {
        let st = &a.classes_page;
        !a.running(JobId::ClassAtlas) && st.class_info.is_some() && st.class_view.is_some()
    });
    step_until(&mut h, "the class atlas's icons", |a| {
        let st = &a.classes_page;
        !a.jobs.any(JobId::is_classes_load)
            && st.class_view.as_ref().is_some_and(|v| {
                v.levels.iter().all(|l| l.sheets_on_disk.iter().all(|s| *s)) && v.icons.uploaded > 0
            })
    });
    // Sample counts: the ones atlas::classes gives on the run itself.
    let want = class_rows(&attr.data, k, a, ClassFilter::Both, 2000, Selection::Union);
    let winners = winner_rows(&attr.data, k, a).len();
    let magnitude = magnitude_rows(&attr.data, k, a, 2000).len();
    {
        let st = &h.state().classes_page;
        let info = st.class_info.as_ref().unwrap();
        assert_eq!(info.class.index, a);
        assert_eq!(info.rows, want);
        assert_eq!(info.winner_count, winners);
        assert_eq!(info.magnitude_count, magnitude);
        let view = st.class_view.as_ref().unwrap();
        assert_eq!(view.manifest.points, want.len());
        assert_eq!(view.levels.len(), 1);
        assert_eq!(view.levels[0].grid(), 4);
        assert!(!view.levels[0].cells.is_empty(), "no cell kept");
        assert!(view.levels[0].cells.iter().all(|c| c.count >= 5));
        assert!(view.drawn_cells > 0, "the canvas drew no cell");
        assert!(
            st.class_root
                .as_ref()
                .unwrap()
                .starts_with(run.join("classes").join(LAYER)),
            "{:?}",
            st.class_root
        );
    }
    h.get_by_label(&format!(
        "{a_name} (both, N=2000): {} samples — {winners} winners, {magnitude} by magnitude",
        want.len()
    ));

    // --- click the most populated cell: its top classes ----------------------------------------
    let rect = h
        .state()
        .classes_page
        .class_canvas_rect
        .expect("canvas on screen");
    let (index, cell, cam) = {
        let v = h.state().classes_page.class_view.as_ref().unwrap();
        let (i, c) = v.levels[0]
            .cells
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| c.count)
            .unwrap();
        (i, c.clone(), v.camera)
    };
    click_at(
        &mut h,
        cell_screen_rect(&cam, rect, 4, cell.x, cell.y).center(),
    );
    let picked = h
        .state()
        .classes_page
        .picked
        .clone()
        .expect("a picked cell");
    assert_eq!((picked.grid, picked.index), (4, index));
    h.get_by_label(&format!("Cell ({}, {})", cell.x, cell.y));
    h.get_by_label("Top classes (mean attribution)");
    let (top, v) = cell.top[0];
    assert!(h.query_all_by_label(&format!("{v:.3}")).count() >= 1);
    assert!(h.query_all_by_label(&names[top]).count() >= 1);
    h.get_by_label(&format!("class atlas of {a_name}"));

    // --- compare two classes -------------------------------------------------------------------
    h.get_by_label("Compare two classes").click();
    h.run_steps(2);
    // A and B by searching: the two classes that win the most rows.
    let b = *order[1..]
        .iter()
        .find(|&&c| !names[c].contains(&a_name) && !a_name.contains(&names[c]))
        .unwrap();
    let b_name = names[b].clone();
    for (caption, name) in [("Class A", &a_name), ("Class B", &b_name)] {
        h.get_by_role_and_label(Role::TextInput, caption).click();
        h.run_steps(2);
        h.get_by_role_and_label(Role::TextInput, caption)
            .type_text(name);
        h.run_steps(2);
        h.get_by_role_and_label(Role::Button, name).click();
        h.run_steps(2);
    }
    assert_eq!(h.state().classes_page.class_a, Some(a));
    assert_eq!(h.state().classes_page.class_b, Some(b));
    h.get_by_label(&format!("Class A: {a_name}"));
    h.get_by_label(&format!("Class B: {b_name}"));
    h.get_by_label("Compare").click();
    step_until(&mut h, "the comparison", |a| {
        let st = &a.classes_page;
        !a.running(JobId::Compare)
            && st.comparison.is_some()
            && st.side_views.iter().all(Option::is_some)
            && st.compare_view.is_some()
            && !a.jobs.any(JobId::is_classes_load)
    });
    step_until(&mut h, "the comparison's icons", |a| {
        let st = &a.classes_page;
        st.plot_cells > 0 && st.plot_icons == st.plot_cells
    });
    // The plot's icon switch (the comparison view opens on exemplars, like the atlas canvas):
    // synthetic only, both kinds side by side, exemplars only, synthetic again.
    h.get_by_label("synthetic").click();
    step_until(&mut h, "synthetic icons only", |a| {
        let st = &a.classes_page;
        st.plot_icons == st.plot_cells && st.plot_exemplars == 0
    });
    h.get_by_label("side by side").click();
    step_until(&mut h, "synthetic and exemplar icons", |a| {
        let st = &a.classes_page;
        st.plot_icons == st.plot_cells && st.plot_exemplars == st.plot_cells
    });
    h.get_by_label("exemplar").click();
    step_until(&mut h, "exemplar icons", |a| {
        let st = &a.classes_page;
        st.plot_icons == st.plot_cells && st.plot_exemplars == st.plot_cells
    });
    h.get_by_label("synthetic").click();
    step_until(&mut h, "synthetic icons again", |a| {
        let st = &a.classes_page;
        st.plot_icons == st.plot_cells && st.plot_exemplars == 0
    });
    let info = h.state().classes_page.comparison.clone().unwrap();
    assert_eq!((info.a.index, info.b.index), (a, b));
    assert_eq!(
        info.rows,
        comparison_rows(
            &attr.data,
            k,
            a,
            b,
            ClassFilter::Both,
            2000,
            Selection::Union
        )
    );
    assert_eq!(info.grid, 10);
    assert!(!info.cells.is_empty());
    assert_eq!(h.state().classes_page.plot_cells, info.cells.len());
    for c in &info.cells {
        // Cells of a 10×10 grid over x ∈ [−1, 1], y ∈ [0, 1].
        assert!(c.col < 10 && c.row < 10);
        assert!((c.x_range[1] - c.x_range[0] - 0.2).abs() < 1e-5);
        assert!((c.y_range[1] - c.y_range[0] - 0.1).abs() < 1e-5);
        assert!(c.x_range[0] >= -1.0 - 1e-6 && c.x_range[1] <= 1.0 + 1e-6);
        assert!(c.count >= 5);
    }
    {
        let st = &h.state().classes_page;
        assert_eq!(st.x_label, format!("← more {a_name} | more {b_name} →"));
        assert_eq!(st.y_label, "1-D t-SNE");
        // The side atlases are the class atlases of A and B.
        for (i, c) in [(0, a), (1, b)] {
            let v = st.side_views[i].as_ref().unwrap();
            let ci: atlas::classes::ClassAtlasInfo = serde_json::from_str(
                &std::fs::read_to_string(v.root.join("class_atlas.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(ci.class.index, c);
            assert_eq!(
                v.manifest.points,
                class_rows(&attr.data, k, c, ClassFilter::Both, 2000, Selection::Union).len()
            );
        }
    }
    h.get_by_label(&format!("← more {a_name}"));
    h.get_by_label(&format!("more {b_name} →"));
    h.get_by_label(&format!("class atlas of {b_name}"));

    // --- click an icon on the plot, use it as a patch -------------------------------------------
    let (icon, icon_rect) = h.state().classes_page.plot_rects[0];
    click_at(&mut h, icon_rect.center());
    let picked = h
        .state()
        .classes_page
        .picked
        .clone()
        .expect("a picked icon");
    assert_eq!(
        Some(&picked.root),
        h.state().classes_page.compare_root.as_ref()
    );
    assert_eq!((picked.grid, picked.index), (10, icon));
    let bin = info.cells.iter().find(|c| c.index == icon).unwrap().clone();
    h.get_by_label(&format!("Cell ({}, {})", bin.col, bin.row));
    h.get_by_label(&format!("comparison {a_name} vs {b_name}"));
    assert!(
        h.query_all_by_label(&format!("{:.3}", bin.top[0].1))
            .count()
            >= 1
    );
    assert!(h.state().classes_page.patch_for_attack.is_none());
    h.get_by_label("Use this icon as patch").click();
    step_until(&mut h, "the icon patch", |a| {
        a.classes_page.patch_for_attack.is_some()
    });
    {
        let (what, img) = h.state().classes_page.patch_for_attack.clone().unwrap();
        assert!(what.starts_with("icon of cell"), "{what}");
        assert_eq!(img.dimensions(), (64, 64));
        // The patch is exactly the rendered icon of that cell (its tile in the level's sheet),
        // and the tile is not a blank one. (How much contrast an optimized icon has depends on
        // the machine's kernels, so no threshold on it.)
        let st = &h.state().classes_page;
        let root = st.compare_root.clone().unwrap();
        let view = st.compare_view.as_ref().unwrap();
        let level = view.levels.iter().find(|l| l.grid() == 10).unwrap();
        let tile =
            atlas::atlas::build::read_icon(&root, &level.record, view.manifest.icon_size, icon)
                .unwrap();
        assert_eq!(tile.dimensions(), (64, 64));
        assert!(
            img.as_raw() == tile.as_raw(),
            "the patch differs from the icon's tile"
        );
        let first = &img.as_raw()[..3];
        assert!(
            img.as_raw().chunks(3).any(|px| px != first),
            "a blank tile was used as the patch"
        );
    }
    common::app::assert_logged(h.state(), "patch ready for the attack workbench");
    // The same patch lands in the Patch attack page's tray.
    step_until(&mut h, "the patch in the attack tray", |a| {
        a.attack_page
            .patches
            .iter()
            .any(|p| p.name.starts_with("icon of cell") && p.image.dimensions() == (64, 64))
    });
    // A dataset example of the icon's cell, too.
    step_until(&mut h, "the icon's dataset examples", |a| {
        !a.classes_page.examples.items.is_empty()
    });
    h.query_all_by_label("Use as patch").next().unwrap().click();
    step_until(&mut h, "the example patch", |a| {
        a.classes_page
            .patch_for_attack
            .as_ref()
            .is_some_and(|(w, _)| w.starts_with("patch of"))
    });
    let (_, img) = h.state().classes_page.patch_for_attack.clone().unwrap();
    assert_eq!(img.dimensions(), (128, 128));
    // --- similar classes: a row of the list fills A and B ----------------------------------------
    step_until(&mut h, "similar class pairs", |a| {
        a.classes_page.pairs.is_some()
    });
    let pair = {
        let pairs = &h.state().classes_page.pairs.as_ref().unwrap().pairs;
        assert!(!pairs.is_empty(), "no similar class pairs");
        // A pair other than the current A and B, so the click has something to change.
        pairs
            .iter()
            .find(|p| (p.a, p.b) != (a, b))
            .unwrap_or(&pairs[0])
            .clone()
    };
    h.get_by_label(&format!(
        "{} / {}  {:.2}",
        pair.name_a, pair.name_b, pair.similarity
    ))
    .click();
    h.run_steps(2);
    assert_eq!(h.state().classes_page.class_a, Some(pair.a));
    assert_eq!(h.state().classes_page.class_b, Some(pair.b));

    // --- closing the window stops this page's jobs too -------------------------------------------
    // A comparison with a very long icon optimization, and the window closes while it runs.
    h.state_mut().classes_page.render_override = Some(RenderSettings {
        steps: 100_000,
        batch: 16,
        size: 64,
        ..RenderSettings::preview()
    });
    h.get_by_label("Compare").click();
    h.step();
    let token = h
        .state()
        .jobs
        .cancel_token(&JobId::Compare)
        .expect("the comparison is running");
    assert!(!token.is_cancelled());
    let report = h.state_mut().shutdown();
    assert!(
        token.is_cancelled(),
        "closing did not cancel the comparison"
    );
    assert!(report.stopped >= 1, "{report:?}");
    assert_eq!(
        report.still_running, 0,
        "a job outlived the close: {report:?}"
    );
    assert!(
        h.state().jobs.is_empty(),
        "a job was left registered after the close"
    );
}
