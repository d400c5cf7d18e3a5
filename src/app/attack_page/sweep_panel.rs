//! The size sweep (spec §8.2, NB-ADV): the patch pasted at ratio 0.00 … 0.80 of the image side in
//! one corner or each of the four, every composite classified, and P(original), P(target) and
//! P(patch class) plotted against the ratio, as in the paper's figure.
use eframe::egui::{self, Color32, RichText};
use egui_plot::{Legend, Line, Plot, PlotPoints, VLine};

use super::AttackPageState;
use crate::app::job_id::{JobId, Jobs};
use crate::app::page::PageCx;
use crate::app::widgets::progress_row;
use crate::attack::sweep::{size_sweep, sweep_ratios, SweepPoint};
use crate::attack::Corner;
use crate::jobs::{self, Finish, JobOutcome};
use crate::model::AtlasModel;

/// A finished sweep and what its curves are about.
pub struct SweepResult {
    pub points: Vec<SweepPoint>,
    pub patch_name: String,
    /// (label, class index) of the curves: original, target, patch class.
    pub classes: Vec<(String, usize)>,
}

pub struct SweepState {
    /// `None`: all four corners.
    pub corner: Option<Corner>,
    pub max_ratio: f64,
    pub step: f64,
    pub result: Option<SweepResult>,
    pub error: Option<String>,
}

impl Default for SweepState {
    fn default() -> Self {
        SweepState {
            corner: Some(Corner::TopLeft),
            max_ratio: 0.8,
            step: 0.01,
            result: None,
            error: None,
        }
    }
}

/// Takes the sweep's result when it ends.
pub fn poll(st: &mut AttackPageState, jobs: &mut Jobs) {
    let sw = &mut st.sweep;
    match jobs.poll::<SweepResult, SweepResult>(&JobId::Sweep).outcome {
        Some(JobOutcome::Done(r)) => sw.result = Some(r),
        Some(JobOutcome::Failed(e)) => sw.error = Some(e),
        Some(JobOutcome::Cancelled) | None => {}
    }
}

/// Starts the sweep of the placed patch on the target (with the chosen classes).
pub fn start(page: &mut AttackPageState, cx: &mut PageCx) {
    let names = cx.class_names();
    let model_path = cx.project.model_path.clone();
    let st = &mut *page;
    let (Some(t), Some(placed)) = (&st.target, st.placed) else {
        return;
    };
    let Some(patch) = st.patch(placed.patch) else {
        return;
    };
    let name = |c: usize| {
        names
            .get(c)
            .cloned()
            .unwrap_or_else(|| format!("class {c}"))
    };
    let mut classes = vec![];
    for (what, class) in [
        ("original", st.original),
        ("target", st.target_class),
        ("patch class", patch.class.map(|c| c.0)),
    ] {
        if let Some(c) = class {
            classes.push((format!("P({}) [{what}]", name(c)), c));
        }
    }
    let corners: Vec<Corner> = st.sweep.corner.map_or(Corner::ALL.to_vec(), |c| vec![c]);
    let ratios = sweep_ratios(st.sweep.max_ratio, st.sweep.step);
    let background = t.background.clone();
    let image = patch.image.clone();
    let patch_name = patch.name.clone();
    st.sweep.error = None;
    let sweep = move |reporter: &jobs::Reporter<SweepResult>, cancel: &jobs::CancelToken| {
        reporter.progress("loading the model", 0, 1);
        let model = AtlasModel::load(&model_path, crate::model::default_device())?;
        let stop = || cancel.is_cancelled();
        let mut progress = |done: usize, total: usize| {
            reporter.progress("classifying composites", done as u64, total as u64)
        };
        let points = match size_sweep(
            &model,
            &background,
            &image,
            &corners,
            &ratios,
            &stop,
            &mut progress,
        ) {
            Ok(p) => p,
            Err(_) if cancel.is_cancelled() => return Ok(Finish::Cancelled),
            Err(e) => return Err(e),
        };
        Ok(Finish::Done(SweepResult {
            points,
            patch_name,
            classes,
        }))
    };
    cx.jobs
        .start(JobId::Sweep, || jobs::spawn_job("attack-sweep", sweep));
}

pub fn show(page: &mut AttackPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let ready = page.target.is_some() && page.placed.is_some();
    let mut run = false;
    {
        let sw = &mut page.sweep;
        ui.horizontal_wrapped(|ui| {
            ui.label("corner:");
            for c in Corner::ALL {
                ui.selectable_value(&mut sw.corner, Some(c), c.label());
            }
            ui.selectable_value(&mut sw.corner, None, "all four");
            ui.separator();
            ui.add(egui::Slider::new(&mut sw.max_ratio, 0.05..=0.95).text("largest size"));
            ui.add(
                egui::DragValue::new(&mut sw.step)
                    .range(0.005..=0.2)
                    .speed(0.005)
                    .prefix("step "),
            );
        });
        let jobs = &cx.jobs;
        ui.horizontal(|ui| match jobs.is_running(&JobId::Sweep) {
            true => {
                if let Some(p) = jobs.progress(&JobId::Sweep) {
                    progress_row(ui, p);
                }
                if ui.button("Cancel").clicked() {
                    jobs.cancel(&JobId::Sweep);
                }
            }
            false => {
                run = ui
                    .add_enabled(ready, egui::Button::new("Run the sweep"))
                    .on_disabled_hover_text("open an image and place a patch first")
                    .clicked();
            }
        });
        if let Some(e) = &sw.error {
            ui.colored_label(Color32::from_rgb(200, 40, 40), e);
        }
    }
    if run {
        start(page, cx);
    }
    let current = page.placed.map(|p| f64::from(p.at.side / page.side()));
    let Some(r) = &page.sweep.result else {
        ui.label(
            RichText::new(
                "the sweep pastes the placed patch at every size in the chosen corner(s) and \
                 plots the three classes' probabilities against the size",
            )
            .weak(),
        );
        return;
    };
    ui.label(RichText::new(format!("patch: {}", r.patch_name)).strong());
    plot(ui, r, current);
}

/// Curve colours: original, target, patch class (as in the workbench's bars).
const COLOURS: [Color32; 3] = [
    Color32::from_rgb(60, 120, 200),
    Color32::from_rgb(220, 110, 40),
    Color32::from_rgb(60, 160, 80),
];

fn plot(ui: &mut egui::Ui, r: &SweepResult, current: Option<f64>) {
    let corners: Vec<Corner> = Corner::ALL
        .into_iter()
        .filter(|c| r.points.iter().any(|p| p.corner == *c))
        .collect();
    Plot::new("attack_sweep")
        .legend(Legend::default())
        .x_axis_label("patch size (fraction of the image side)")
        .y_axis_label("probability")
        .include_y(0.0)
        .include_y(1.0)
        .include_x(0.0)
        .show(ui, |plot| {
            for (ci, corner) in corners.iter().enumerate() {
                for (k, (label, class)) in r.classes.iter().enumerate() {
                    let pts: PlotPoints = r
                        .points
                        .iter()
                        .filter(|p| p.corner == *corner)
                        .map(|p| {
                            [
                                p.ratio,
                                f64::from(p.probs.get(*class).copied().unwrap_or(0.0)),
                            ]
                        })
                        .collect();
                    let name = if corners.len() > 1 {
                        format!("{label} {}", corner.label())
                    } else {
                        label.clone()
                    };
                    let style = [
                        egui_plot::LineStyle::Solid,
                        egui_plot::LineStyle::dashed_dense(),
                        egui_plot::LineStyle::dotted_dense(),
                        egui_plot::LineStyle::dashed_loose(),
                    ][ci % 4];
                    plot.line(
                        Line::new(name, pts)
                            .color(COLOURS[k % 3])
                            .style(style)
                            .width(2.0),
                    );
                }
            }
            if let Some(x) = current {
                plot.vline(VLine::new("current size", x).color(Color32::GRAY));
            }
        });
}
