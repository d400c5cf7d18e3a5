//! The "One image" page driven through its real widgets with egui_kittest (no display, no GPU):
//! two tiny atlases (head and stage6) are built from the bundled images, an image is dropped on
//! the window, and the page must show the model's top-5 (on the image prepared as the atlas's
//! run prepared its images), an H×W grid of positions, the image's markers on the atlas (where
//! the landing library places its vectors), a heat-map that follows the picked
//! class, optimized icons on request, the same in another layer, and a clear error for a corrupt
//! file after which the page still works.
use crate::common;
use crate::common::bundled::BundledRun;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atlas::analysis::landing::AtlasLanding;
use atlas::analysis::single_image::{analyse_image_with, attribution_map_for_input};
use atlas::app::image_page::{landing_markers, top5_label};
use atlas::app::{AtlasApp, JobId, Tab};
use atlas::atlas::{spawn_build, BuildConfig, BuildEvent};
use atlas::data::Preprocess;
use atlas::jobs::{JobEvent, JobOutcome};
use atlas::layout::{LayoutMethod, UmapParams};
use atlas::model::AtlasModel;
use atlas::render::RenderSettings;
use eframe::egui::{self, accesskit::Role};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

fn harness(app: AtlasApp) -> Harness<'static, AtlasApp> {
    common::app::harness(app, [1400.0, 900.0])
}

fn step_until(h: &mut Harness<'static, AtlasApp>, what: &str, done: impl Fn(&AtlasApp) -> bool) {
    common::app::step_until(h, what, Duration::from_secs(300), done)
}

fn icons() -> RenderSettings {
    RenderSettings {
        steps: 2,
        batch: 25,
        size: 64,
        ..RenderSettings::preview()
    }
}

/// Collects head and stage6 of 12 bundled images (4 positions each) and builds a 2/4 atlas of
/// each layer with a few optimization steps per icon.
fn tiny_atlases(dir: &Path) -> Vec<PathBuf> {
    let run = dir.join("run");
    let t = Instant::now();
    // A copy: the app may write into the runs it opens.
    BundledRun {
        layers: "head,stage6",
        samples: 4,
        limit: Some(12),
    }
    .copy_to(&run);
    eprintln!("collected in {:.1} s", t.elapsed().as_secs_f64());
    ["head", "stage6"]
        .iter()
        .map(|layer| {
            let out = dir.join(format!("atlas-{layer}"));
            let job = spawn_build(BuildConfig {
                run: run.clone(),
                layer: layer.to_string(),
                out: out.clone(),
                model: Some(common::model()),
                layout: LayoutMethod::Umap(UmapParams {
                    n_neighbors: 10,
                    ..Default::default()
                }),
                grids: vec![2, 4],
                min_count: 1,
                render: RenderSettings {
                    steps: 2,
                    batch: 8,
                    size: 64,
                    ..RenderSettings::preview()
                },
                icon_levels: Some(vec![4]),
                max_points: None,
                overview_levels: false,
            });
            let start = Instant::now();
            let mut stage = String::new();
            for ev in job.events.iter() {
                match ev {
                    JobEvent::Progress(p) if p.stage != stage => {
                        eprintln!(
                            "{layer}: {:.1} s {}",
                            start.elapsed().as_secs_f64(),
                            p.stage
                        );
                        stage = p.stage;
                    }
                    JobEvent::Finished(JobOutcome::Done(BuildEvent::Finished { .. })) => break,
                    JobEvent::Finished(other) => panic!("build of {layer} failed: {other:?}"),
                    _ => {}
                }
            }
            out
        })
        .collect()
}

fn drop_file(h: &mut Harness<'static, AtlasApp>, path: &Path) {
    common::app::drop_desktop_file(h, path);
    h.step();
    assert_eq!(
        h.state().tab,
        Tab::Image,
        "a dropped file opens the One image page"
    );
    assert_eq!(h.state().image_page.image.as_deref(), Some(path));
}

fn wait_for_analysis(h: &mut Harness<'static, AtlasApp>, layer: &str) {
    step_until(h, "the analysis", |a| {
        let p = &a.image_page;
        !a.running(JobId::Analysis)
            && (p.error.is_some() || p.result.as_ref().is_some_and(|r| r.analysis.layer == layer))
    });
    let p = &h.state().image_page;
    assert!(p.error.is_none(), "{:?}", p.error);
}

fn wait_for_heatmap(h: &mut Harness<'static, AtlasApp>, class: usize) -> Vec<f32> {
    step_until(h, "the heat-map", |a| {
        let p = &a.image_page;
        !a.running(JobId::Attribution) && p.attribution.as_ref().is_some_and(|m| m.class == class)
    });
    h.state()
        .image_page
        .attribution
        .as_ref()
        .unwrap()
        .values
        .clone()
}

fn view_index(app: &AtlasApp, layer: &str) -> usize {
    app.project
        .atlases
        .iter()
        .position(|v| v.manifest.layer == layer)
        .unwrap()
}

/// Where the page should put the image's markers, computed here from the model and the atlas
/// files: the image prepared as the atlas's run did, its vectors placed on the atlas by the
/// landing library (umap-learn's `transform`), at their normalized positions.
fn expected_markers(
    model: &AtlasModel,
    image: &Path,
    atlas: &Path,
    layer: &str,
) -> Vec<egui::Pos2> {
    let landing = AtlasLanding::load(atlas).unwrap();
    assert_eq!(landing.preprocess, Preprocess::Squash);
    let a = analyse_image_with(model, image, layer, landing.preprocess).unwrap();
    landing_markers(&landing.land(&a.acts, a.c).unwrap())
}

/// The page's markers are the expected ones, up to the last bits of two forward passes (more
/// on CUDA, where cuDNN may pick other algorithms or TF32 from one call to the next).
fn assert_markers(got: &[egui::Pos2], want: &[egui::Pos2]) {
    let tol = if atlas::model::default_device().is_cuda() {
        2e-2
    } else {
        1e-3
    };
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(g.distance(*w) < tol, "marker at {g:?}, expected {w:?}");
    }
}

#[test]
fn one_image_prediction_grid_markers_heatmap_icons_and_errors() {
    let t0 = Instant::now();
    let dir = common::scratch("app-image");
    let atlases = tiny_atlases(&dir);
    eprintln!("collected and built in {:.1} s", t0.elapsed().as_secs_f64());
    eprintln!("atlases built in {:.1} s", t0.elapsed().as_secs_f64());

    let mut app = AtlasApp::new_in(common::model(), common::assets(), dir.join("runs"));
    app.project.render_override = Some(icons());
    for a in &atlases {
        app.open_atlas(a.clone());
    }
    let mut h = harness(app);
    step_until(&mut h, "the model and both atlases", |a| {
        !a.running(JobId::Open) && a.project.atlases.len() == 2 && !a.loading_atlases()
    });
    common::app::assert_no_errors(h.state());
    let head = view_index(h.state(), "head");
    h.state_mut().project.current_atlas = head;

    // The reference prediction, on the image prepared as the atlas's run did (squashed).
    let image = common::image_files(&common::assets())[0].clone();
    let model = AtlasModel::load(&common::model(), atlas::model::default_device()).unwrap();
    let squashed = analyse_image_with(&model, &image, "head", Preprocess::Squash).unwrap();
    let reference = squashed.top5.clone();
    let names: Vec<String> = model.info.classes.iter().map(|c| c.name.clone()).collect();

    // Drop the image on the window: the page analyses it in the head atlas's layer.
    let t1 = Instant::now();
    drop_file(&mut h, &image);
    wait_for_analysis(&mut h, "head");
    eprintln!("analysis in {:.1} s", t1.elapsed().as_secs_f64());
    {
        let r = h.state().image_page.result.as_ref().unwrap();
        let got: Vec<usize> = r.analysis.top5.iter().map(|t| t.0).collect();
        let want: Vec<usize> = reference.iter().map(|t| t.0).collect();
        assert_eq!(
            got, want,
            "top-5 classes differ from the model's on the squashed image"
        );
        assert_eq!(r.analysis.input, squashed.input, "the run's preprocessing");
    }
    h.run_steps(2);
    for (rank, (class, p)) in reference.iter().enumerate() {
        h.get_by_label(&top5_label(rank + 1, &names[*class], *p));
    }
    // The 7×7 grid of the head layer, one widget per position, with the atlas's icons.
    let (hh, ww) = {
        let a = &h.state().image_page.result.as_ref().unwrap().analysis;
        (a.h, a.w)
    };
    assert_eq!((hh, ww), (7, 7));
    assert_eq!(h.get_all_by_label_contains("position (").count(), hh * ww);
    assert_eq!(h.state().image_page.drawn_positions, hh * ww);
    h.get_by_label(&format!("position ({}, {})", hh - 1, ww - 1));
    step_until(&mut h, "the atlas icons on the grid", |a| {
        a.project.atlases[head].icons.uploaded > 0
    });
    // Markers: one per position, where the landing library places the image's vectors.
    let want = expected_markers(&model, &image, &atlases[0], "head");
    assert_markers(&h.state().project.atlases[head].markers, &want);
    assert!(want
        .iter()
        .all(|p| (0.0..=1.0).contains(&p.x) && (0.0..=1.0).contains(&p.y)));

    // Heat-map: the top-1 class by default, equal to the backend's map; another class changes it.
    let top1 = reference[0].0;
    let map1 = wait_for_heatmap(&mut h, top1);
    let li = model.info.layer_index("head").unwrap();
    let direct = attribution_map_for_input(&model, &squashed.input, li, top1).unwrap();
    assert_eq!(map1.len(), hh * ww);
    for (a, b) in map1.iter().zip(&direct) {
        assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
    }
    h.run_steps(2);
    h.get_by_label_contains(&format!("attribution to {}: ", names[top1]));
    let second = reference[1].0;
    h.get_by_label(&top5_label(2, &names[second], reference[1].1))
        .click();
    let map2 = wait_for_heatmap(&mut h, second);
    assert_ne!(map1, map2, "another class must change the heat-map");
    // Any class by name through the search box.
    let other = (0..names.len())
        .find(|c| !reference.iter().any(|t| t.0 == *c) && names[*c].len() > 4)
        .unwrap();
    h.get_by_role(Role::TextInput).click();
    h.run_steps(2);
    h.get_by_role(Role::TextInput).type_text(&names[other]);
    h.run_steps(2);
    h.get_by_role_and_label(Role::Button, &names[other]).click();
    let map3 = wait_for_heatmap(&mut h, other);
    assert_ne!(map2, map3);
    h.run_steps(2);
    h.get_by_label(&format!("heat-map of: {}", names[other]));

    // Optimized icons for every position, on the tiny settings.
    let t2 = Instant::now();
    h.get_by_label("Optimize icons").click();
    step_until(&mut h, "the icon job", |a| a.running(JobId::OptimizeIcons));
    h.step();
    h.get_by_label("Cancel icons"); // the job shows its progress and can be cancelled
    step_until(&mut h, "the optimized icons", |a| {
        !a.running(JobId::OptimizeIcons)
    });
    eprintln!(
        "optimized {} icons in {:.1} s",
        hh * ww,
        t2.elapsed().as_secs_f64()
    );
    {
        let p = &h.state().image_page;
        assert!(p.error.is_none(), "{:?}", p.error);
        assert_eq!(p.optimized.len(), hh * ww);
        assert!(p
            .optimized
            .iter()
            .all(|t| t.as_ref().is_some_and(|t| t.size() == [64, 64])));
        assert!(p.show_optimized);
    }
    h.get_by_label("show optimized icons");

    // Show on atlas: the atlas page with the markers.
    h.get_by_label("Show on atlas").click();
    h.run_steps(2);
    assert_eq!(h.state().tab, Tab::Atlas);
    assert_eq!(h.state().project.atlases[head].markers.len(), hh * ww);

    // Another layer: make the stage6 atlas current and come back to the page.
    let stage6 = view_index(h.state(), "stage6");
    h.state_mut().project.current_atlas = stage6;
    h.get_by_label("One image").click();
    wait_for_analysis(&mut h, "stage6");
    {
        let r = h.state().image_page.result.as_ref().unwrap();
        assert_eq!((r.analysis.h, r.analysis.w, r.analysis.c), (7, 7, 192));
    }
    h.run_steps(2);
    assert_eq!(h.get_all_by_label_contains("position (").count(), 49);
    let want6 = expected_markers(&model, &image, &atlases[1], "stage6");
    assert_markers(&h.state().project.atlases[stage6].markers, &want6);
    assert!(
        h.state().project.atlases[head].markers.is_empty(),
        "old markers are cleared"
    );
    h.get_by_label_contains("layer: stage6");

    // A corrupt file: a clear error on the page, no stale result, markers cleared.
    let junk = dir.join("x.jpg");
    std::fs::write(&junk, b"this is not a JPEG at all").unwrap();
    drop_file(&mut h, &junk);
    step_until(&mut h, "the error", |a| !a.running(JobId::Analysis));
    let err = h
        .state()
        .image_page
        .error
        .clone()
        .expect("an error for x.jpg");
    assert!(
        err.contains("x.jpg") && err.contains("cannot read"),
        "{err}"
    );
    assert!(h.state().image_page.result.is_none());
    assert!(h.state().project.atlases[stage6].markers.is_empty());
    h.run_steps(2);
    h.get_by_label_contains("cannot analyse x.jpg");
    assert_eq!(h.query_all_by_label_contains("position (").count(), 0);

    // ... and the page still works: another image is analysed.
    let image2 = common::image_files(&common::assets())[1].clone();
    drop_file(&mut h, &image2);
    wait_for_analysis(&mut h, "stage6");
    assert!(h.state().image_page.error.is_none());
    assert_eq!(h.state().project.atlases[stage6].markers.len(), 49);
    h.run_steps(2);
    assert_eq!(h.get_all_by_label_contains("position (").count(), 49);
    // Its heat-map too (and no job is left running when the test process exits).
    let top1 = h.state().image_page.result.as_ref().unwrap().analysis.top5[0].0;
    wait_for_heatmap(&mut h, top1);
    eprintln!("whole test {:.1} s", t0.elapsed().as_secs_f64());
}
