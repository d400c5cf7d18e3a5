//! The Patch attack page through egui_kittest (real widgets, real model, bundled photographs):
//! drop the image to attack and a patch file from the "desktop", move the patch by dragging its
//! body, resize it by its handle, undo, check that the live probabilities are the backend's on
//! the very composite shown, drag a tray patch onto the image, and run a small size sweep.
use crate::common;

use std::path::Path;
use std::time::Duration;

use crate::common::app::{harness, step_until};
use atlas::app::{AtlasApp, JobId, Tab};
use atlas::attack::composite::{paste, resize_patch};
use atlas::attack::Corner;
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

fn drop_file(h: &mut Harness<'static, AtlasApp>, file: &Path, at: egui::Pos2) {
    h.event(egui::Event::PointerMoved(at));
    h.step();
    common::app::drop_desktop_file(h, file);
    h.step();
}

fn press(h: &mut Harness<'static, AtlasApp>, pos: egui::Pos2, pressed: bool) {
    h.event(egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: Default::default(),
    });
}

/// Drags with the primary button from `from` to `to` in a few moves.
fn drag(h: &mut Harness<'static, AtlasApp>, from: egui::Pos2, to: egui::Pos2) {
    h.event(egui::Event::PointerMoved(from));
    h.step();
    press(h, from, true);
    h.step();
    for k in 1..=4 {
        let t = k as f32 / 4.0;
        h.event(egui::Event::PointerMoved(from + (to - from) * t));
        h.step();
    }
    press(h, to, false);
    h.step();
}

/// The live answer is in for the placement on screen.
fn answered(a: &AtlasApp) -> bool {
    let st = &a.attack_page;
    st.placed
        .is_some_and(|p| st.probs_for == Some((p.patch, p.at.pixels())))
}

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn drop_move_resize_undo_and_sweep_a_patch() {
    let runs = common::scratch("app-attack");
    let files = common::image_files(&common::assets());
    assert!(files.len() >= 3);
    let app = AtlasApp::new_in(common::model(), common::assets(), runs.to_path_buf());
    let mut h = harness(app, [1280.0, 860.0]);
    step_until(&mut h, "the model", WAIT, |a| a.project.model.is_some());
    h.get_by_label("Patch attack").click();
    h.run_steps(2);
    assert_eq!(h.state().tab, Tab::Attack);

    // 1. The first file dropped anywhere on the page is the image to attack.
    drop_file(&mut h, &files[0], egui::pos2(700.0, 300.0));
    step_until(&mut h, "the clean prediction", WAIT, |a| {
        a.attack_page
            .target
            .as_ref()
            .is_some_and(|t| t.clean.is_some())
    });
    let (original, target_class) = (
        h.state().attack_page.original,
        h.state().attack_page.target_class,
    );
    assert!(original.is_some() && target_class.is_some() && original != target_class);
    assert_eq!(
        h.state().tab,
        Tab::Attack,
        "a drop here must not leave the page"
    );

    // 2. A second file dropped onto the image becomes a patch, centred where it fell.
    h.run_steps(2);
    let rect = h
        .state()
        .attack_page
        .image_rect
        .expect("the image on screen");
    let side = h.state().attack_page.side();
    drop_file(&mut h, &files[1], rect.min + rect.size() * 0.3);
    step_until(&mut h, "the patch placed", WAIT, |a| {
        a.attack_page.placed.is_some()
    });
    let placed = h.state().attack_page.placed.unwrap();
    let centre = (placed.at.x + placed.at.side / 2.0) / side;
    assert!(
        (centre - 0.3).abs() < 0.02 || placed.at.x == 0.0,
        "the patch is centred where it was dropped: {placed:?}"
    );
    assert_eq!(h.state().attack_page.patches.len(), 1);
    step_until(&mut h, "the live answer", WAIT, answered);

    // The probabilities on screen are the model's on exactly that composite.
    // On the device the page's probe uses, so the same kernels run.
    let model =
        atlas::model::AtlasModel::load(&common::model(), atlas::model::default_device()).unwrap();
    let tol = common::device_tolerance(model.device, 1e-5);
    let check = |a: &AtlasApp| {
        let st = &a.attack_page;
        let p = st.placed.unwrap();
        let (x, y, w) = p.at.pixels();
        let patch = st.patch(p.patch).unwrap().image.clone();
        let bg = st.target.as_ref().unwrap().background.clone();
        let composite = paste(&bg, &resize_patch(&patch, w), x, y);
        let want = atlas::attack::probe::probabilities(&model, &[composite]).unwrap();
        let got = st.probs.as_ref().unwrap();
        let diff = want[0]
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < tol, "live probabilities differ by {diff}");
    };
    check(h.state());
    // The top-5 bars name the top class of the composite.
    let probs = h.state().attack_page.probs.clone().unwrap();
    let top = atlas::attack::probe::top1(&probs).0;
    let name = h.state().project.model.as_ref().unwrap().classes[top]
        .name
        .clone();
    h.get_by_label_contains(&format!("{name} {:.2}%", 100.0 * probs[top]));

    // 3. Drag the patch body: it moves by the pointer's travel (in model pixels).
    let scale = rect.width() / side;
    let before = h.state().attack_page.placed.unwrap().at;
    let body =
        rect.min + egui::vec2(before.x + before.side / 2.0, before.y + before.side / 2.0) * scale;
    drag(&mut h, body, body + egui::vec2(40.0, 24.0));
    let moved = h.state().attack_page.placed.unwrap().at;
    assert!(
        (moved.x - (before.x + 40.0 / scale)).abs() < 1.0
            && (moved.y - (before.y + 24.0 / scale)).abs() < 1.0,
        "moved {before:?} → {moved:?}"
    );
    assert_eq!(moved.side, before.side);
    step_until(&mut h, "the answer after the move", WAIT, answered);
    check(h.state());

    // 4. Drag the corner handle: the patch grows, its top-left stays.
    let handle = rect.min + egui::vec2(moved.x + moved.side, moved.y + moved.side) * scale;
    drag(&mut h, handle, handle + egui::vec2(30.0, 10.0));
    let grown = h.state().attack_page.placed.unwrap().at;
    assert!(
        (grown.side - (moved.side + 30.0 / scale)).abs() < 1.0,
        "resized {moved:?} → {grown:?}"
    );
    assert_eq!((grown.x, grown.y), (moved.x, moved.y));
    step_until(&mut h, "the answer after the resize", WAIT, answered);
    check(h.state());

    // 5. Ctrl+Z undoes the resize, then the move.
    let undo = |h: &mut Harness<'static, AtlasApp>| {
        h.event(egui::Event::Key {
            key: egui::Key::Z,
            physical_key: None,
            pressed: true,
            repeat: false,
            modifiers: egui::Modifiers::COMMAND,
        });
        h.run_steps(2);
    };
    undo(&mut h);
    assert_eq!(h.state().attack_page.placed.unwrap().at, moved);
    undo(&mut h);
    assert_eq!(h.state().attack_page.placed.unwrap().at, before);

    // 6. A tray patch dragged onto the image replaces the placed one (egui drag and drop).
    drop_file(&mut h, &files[2], egui::pos2(5.0, 5.0)); // outside the image: tray only
    step_until(&mut h, "a second tray patch", WAIT, |a| {
        a.attack_page.patches.len() == 2 && a.attack_page.patches[1].texture.is_some()
    });
    h.run_steps(2);
    let second = h.state().attack_page.patches[1].key;
    assert_ne!(h.state().attack_page.placed.unwrap().patch, second);
    let thumb = h
        .state()
        .attack_page
        .tray_rects
        .iter()
        .find(|(k, _)| *k == second)
        .map(|(_, r)| r.center())
        .expect("the second patch's thumbnail in the tray");
    let dest = rect.min + rect.size() * 0.7;
    drag(&mut h, thumb, dest);
    h.run_steps(3);
    let now = h.state().attack_page.placed.unwrap();
    assert_eq!(
        now.patch, second,
        "the dragged tray patch is the one placed"
    );
    assert!(
        ((now.at.x + now.at.side / 2.0) / side - 0.7).abs() < 0.03
            || now.at.x + now.at.side >= side - 1.0
    );
    step_until(&mut h, "the answer for the new patch", WAIT, answered);
    check(h.state());

    // 7. Size sweep, top-left, 0 … 0.4 step 0.1: five points; at ratio 0 the composite is the
    // clean image.
    {
        let st = &mut h.state_mut().attack_page;
        st.mode = atlas::app::attack_page::Mode::Sweep;
        st.sweep.corner = Some(Corner::TopLeft);
        st.sweep.max_ratio = 0.4;
        st.sweep.step = 0.1;
    }
    h.run_steps(2);
    h.get_by_label("Run the sweep").click();
    step_until(&mut h, "the sweep", WAIT, |a| {
        a.attack_page.sweep.result.is_some()
    });
    let r = h.state().attack_page.sweep.result.as_ref().unwrap();
    assert_eq!(r.points.len(), 5);
    assert_eq!(
        r.classes.len(),
        3,
        "original, target and patch class curves"
    );
    let clean = h
        .state()
        .attack_page
        .target
        .as_ref()
        .unwrap()
        .clean
        .clone()
        .unwrap();
    let zero = &r.points[0];
    assert_eq!(zero.ratio, 0.0);
    let diff = zero
        .probs
        .iter()
        .zip(&clean)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "ratio 0 equals the clean image ({diff})");
    // The bigger patches change the answer.
    let last = &r.points[4];
    assert!(last
        .probs
        .iter()
        .zip(&clean)
        .any(|(a, b)| (a - b).abs() > 1e-3));

    // 8. Batch evaluation of the two tray patches and the noise control on the folder of the
    // attacked image (its class), static 0.3 top-left, dynamic 0.2 and 0.4 at all corners: the
    // table on the page equals the backend's on the same configuration, and exports as CSV.
    let folder = files[0].parent().unwrap().to_path_buf();
    {
        let st = &mut h.state_mut().attack_page;
        st.mode = atlas::app::attack_page::Mode::Batch;
        st.batch.folder = folder.display().to_string();
        st.batch.static_ratio = 0.3;
        st.batch.dynamic_ratios = "0.2, 0.4".into();
    }
    h.run_steps(2);
    h.get_by_label("Run the batch evaluation").click();
    step_until(&mut h, "the batch table", WAIT, |a| {
        a.attack_page
            .batch
            .table
            .as_ref()
            .is_some_and(|t| t.images_done == t.images_read)
            && !a.running(JobId::Batch)
    });
    let table = h.state().attack_page.batch.table.clone().unwrap();
    assert_eq!(table.rows.len(), 3, "two patches and the noise control");
    assert!(
        table.rows.iter().all(|r| r.correct_before >= 1),
        "{table:?}"
    );
    let st = &h.state().attack_page;
    let patches = st
        .patches
        .iter()
        .map(|p| atlas::attack::batch::PatchInput::Image {
            name: p.name.clone(),
            image: (*p.image).clone(),
        })
        .collect();
    let mut cfg = atlas::attack::batch::BatchConfig::new(
        common::model(),
        atlas::attack::batch::image_input(&folder),
        patches,
        st.original.unwrap(),
        st.target_class.unwrap(),
    );
    cfg.noise_seed = Some(0);
    cfg.static_ratio = 0.3;
    cfg.dynamic_ratios = vec![0.2, 0.4];
    let want = atlas::attack::batch::run_batch(&cfg, &|| false, &mut |_| {}).unwrap();
    for (a, b) in table.rows.iter().zip(&want.rows) {
        assert_eq!(
            (a.correct_before, a.flipped_static, a.flipped_dynamic),
            (b.correct_before, b.flipped_static, b.flipped_dynamic)
        );
        assert!((a.p_target_static - b.p_target_static).abs() < 1e-6);
        assert!((a.p_target_dynamic - b.p_target_dynamic).abs() < 1e-6);
    }
    h.get_by_label("Export CSV").click();
    h.run_steps(2);
    let csv = h
        .state()
        .attack_page
        .batch
        .saved
        .clone()
        .expect("the CSV path");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        text.lines().count(),
        1 + 3 + 1,
        "header, 3 rows, total:\n{text}"
    );
    h.state_mut().shutdown();
    drop(h);
}
