//! The picked cell (class atlas, either side atlas or a comparison icon): its icon, top classes,
//! dataset examples, and "Use as patch" for the attack workbench.
use eframe::egui::{self, RichText};

use super::{ClassesPageState, Picked};
use crate::app::examples::ExamplesState;
use crate::app::page::PageCx;
use crate::app::JobId;
use crate::attack::patch_source::{example_source, icon_source, resolve, PatchSource};
use crate::jobs::{self, Finish};

/// What the user did in the panel.
enum Action {
    Close,
    /// Cut this icon or example for the attack workbench.
    Patch(PatchSource),
}

/// Which atlas of the page the picked cell belongs to, in words.
fn caption(st: &ClassesPageState, picked: &Picked) -> String {
    let root = Some(&picked.root);
    let (a, b) = match &st.comparison {
        Some(c) => (c.a.name.clone(), c.b.name.clone()),
        None => ("A".into(), "B".into()),
    };
    if st.compare_root.as_ref() == root {
        format!("comparison {a} vs {b}")
    } else if st.side_roots[0].as_ref() == root {
        format!("class atlas of {a}")
    } else if st.side_roots[1].as_ref() == root {
        format!("class atlas of {b}")
    } else {
        match &st.class_info {
            Some(i) => format!("class atlas of {}", i.class.name),
            None => "class atlas".into(),
        }
    }
}

/// The cell's dataset examples, each a drag source with a "Use as patch" button (once the
/// model input their positions refer to is known).
fn examples_section(
    ui: &mut egui::Ui,
    examples: &ExamplesState,
    input: Option<(u32, u32)>,
    action: &mut Option<Action>,
) {
    ui.label(RichText::new("Dataset examples").strong());
    if let Some(e) = &examples.error {
        ui.colored_label(egui::Color32::from_rgb(200, 40, 40), e);
    }
    ui.label(
        RichText::new(format!(
            "{} of {} patches whose vectors fall in this cell, most typical first",
            examples.items.len(),
            examples.total
        ))
        .small(),
    );
    ui.horizontal_wrapped(|ui| {
        for (ex, tex) in &examples.items {
            ui.vertical(|ui| {
                let file = ex
                    .image_path
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default();
                let tip = format!(
                    "{file}\nposition ({}, {}) of {}×{}\nsimilarity {:.2}",
                    ex.pos_y, ex.pos_x, ex.layer_h, ex.layer_w, ex.similarity
                );
                let Some(input) = input else {
                    ui.image((tex.id(), egui::vec2(64.0, 64.0)))
                        .on_hover_text(tip);
                    return;
                };
                let source = example_source(ex, input);
                let drag = egui::Id::unique(("classes_example_drag", ex.row));
                ui.dnd_drag_source(drag, source.clone(), |ui| {
                    ui.image((tex.id(), egui::vec2(64.0, 64.0)))
                })
                .response
                .on_hover_text(tip);
                if ui.small_button("Use as patch").clicked() {
                    *action = Some(Action::Patch(source));
                }
            });
        }
        if examples.cutting {
            ui.spinner();
        }
    });
}

pub fn panel(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let model_input = cx.model.as_ref().map(|m| m.size());
    let st = &mut *page;
    let Some(picked) = st.picked.clone() else {
        st.examples.clear(cx.jobs);
        return;
    };
    let caption = caption(st, &picked);
    let Some(view) = st.view_mut(&picked.root) else {
        st.picked = None;
        return;
    };
    let Some(level) = view.level(picked.grid) else {
        return;
    };
    let record = level.record.clone();
    let Some(cell) = level.cells.get(picked.index).cloned() else {
        st.picked = None;
        return;
    };
    let names = view.manifest.class_names.clone();
    let top = cell.top_name(&names);
    let icon = icon_source(
        &picked.root,
        picked.grid,
        picked.index,
        &record,
        view.manifest.icon_size,
        format!(
            "icon of cell ({}, {}) of the {caption} (top class {top})",
            cell.x, cell.y
        ),
    );
    let large = view.icons.large_icon(&record, picked.index).map(|t| t.id());
    st.examples.request(
        cx.jobs,
        picked.root.clone(),
        picked.grid,
        picked.index,
        cell.x,
        cell.y,
    );
    let examples = &st.examples;
    // The examples' positions refer to the atlas's model input (known once its index is read).
    let input = examples.model_input().or(model_input);
    let mut action = None;
    egui::Panel::right("classes_cell_details")
        .default_size(300.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical()
                .id_salt("classes_details_scroll")
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.heading(format!("Cell ({}, {})", cell.x, cell.y));
                        if ui.small_button("close").clicked() {
                            action = Some(Action::Close);
                        }
                    });
                    ui.label(RichText::new(&caption).small());
                    ui.label(format!(
                        "{g}×{g} grid · average of {} activations",
                        cell.count,
                        g = picked.grid
                    ));
                    match large {
                        Some(id) => {
                            let drag = egui::Id::unique(("classes_icon_drag", picked.index));
                            ui.dnd_drag_source(drag, icon.clone(), |ui| {
                                ui.image((id, egui::vec2(200.0, 200.0)))
                            })
                            .response
                            .on_hover_text("drag onto the Patch attack tab to use it as a patch");
                        }
                        None => {
                            ui.add_sized([200.0, 200.0], egui::Spinner::new());
                        }
                    }
                    if ui
                        .button("Use this icon as patch")
                        .on_hover_text("hand the icon to the attack workbench")
                        .clicked()
                    {
                        action = Some(Action::Patch(icon.clone()));
                    }
                    ui.label(RichText::new("Top classes (mean attribution)").strong());
                    egui::Grid::new("classes_cell_top")
                        .striped(true)
                        .show(ui, |ui| {
                            for (class, v) in &cell.top {
                                ui.label(names.get(*class).map(String::as_str).unwrap_or("?"));
                                ui.label(format!("{v:.3}"));
                                ui.end_row();
                            }
                        });
                    ui.separator();
                    examples_section(ui, examples, input, &mut action);
                });
        });
    match action {
        None => {}
        Some(Action::Close) => {
            if let Some(v) = st.view_mut(&picked.root) {
                v.selected = None;
            }
            st.picked = None;
        }
        Some(Action::Patch(source)) => {
            cx.jobs.start(JobId::CutPatch, || {
                jobs::spawn_task("patch", move |_| Ok(Finish::Done(resolve(&source)?)))
            });
        }
    }
}
