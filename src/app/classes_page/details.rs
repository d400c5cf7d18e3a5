//! The picked cell (class atlas, either side atlas or a comparison icon): its icon, top classes,
//! dataset examples, and "Use as patch" for the attack workbench.
use eframe::egui::{self, RichText};

use super::{ClassesPageState, Picked};
use crate::app::examples::ExampleControls;
use crate::app::job_id::JobId;
use crate::app::page::{Action as PageAction, PageCx};
use crate::attack::patch_source::{icon_source, resolve, PatchSource};
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

pub fn panel(page: &mut ClassesPageState, cx: &mut PageCx, ui: &mut egui::Ui) {
    let model_input = cx.project.model.as_ref().map(|m| m.size());
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
                    // The examples' positions refer to the atlas's model input (known once its
                    // index is read; until then, the project's model's).
                    let asked = examples.show(ui, model_input, ExampleControls::Button);
                    for asked in asked {
                        if let PageAction::UseAsPatch(source) = asked {
                            action = Some(Action::Patch(source));
                        }
                    }
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
