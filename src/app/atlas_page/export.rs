//! The Atlas page's exports: the canvas as it is on screen (PNG) and the drawn level's cells
//! (CSV or JSON), written into the project's exports folder off the UI thread.
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use eframe::egui::{self, RichText};

use super::AtlasPage;
use crate::app::project::Project;

/// Where finished exports report (a screenshot arrives a frame later, on another thread).
pub struct Exports {
    tx: Sender<Result<PathBuf, String>>,
    rx: Receiver<Result<PathBuf, String>>,
}

impl Default for Exports {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Exports { tx, rx }
    }
}

impl Exports {
    /// Logs finished exports and reports failed ones.
    pub fn poll(&self, project: &mut Project) {
        while let Ok(result) = self.rx.try_recv() {
            match result {
                Ok(path) => project.log.push(format!("exported {}", path.display())),
                Err(e) => project.errors.push(format!("export failed: {e}")),
            }
        }
    }
}

impl AtlasPage {
    /// The row above the canvas: export buttons and where exports go.
    pub(super) fn export_row(&self, project: &Project, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if ui.button("View as PNG").clicked() {
                let ctx = ui.ctx().clone();
                self.export_view_png(project, &ctx);
            }
            if ui.button("Cells as CSV").clicked() {
                self.export_cells(project, false);
            }
            if ui.button("Cells as JSON").clicked() {
                self.export_cells(project, true);
            }
            ui.label(
                RichText::new(format!("exports go to {}", project.exports_dir().display()))
                    .small()
                    .weak(),
            );
        });
    }

    /// Saves the canvas as it is on screen: asks the window for a screenshot and crops it to
    /// the canvas when it arrives (next frame), writing the PNG atomically off the UI thread.
    pub fn export_view_png(&self, project: &Project, ctx: &egui::Context) {
        let Some(rect) = self.canvas_rect else {
            return;
        };
        let Some(view) = project.atlases.get(project.current_atlas) else {
            return;
        };
        let path = project.exports_dir().join(format!(
            "{}-{}-view.png",
            view.manifest.layer, view.drawn_grid
        ));
        let ppp = ctx.pixels_per_point();
        let tx = self.exports.tx.clone();
        let repaint = ctx.clone();
        ctx.request_screenshot(move |image| {
            std::thread::spawn(move || {
                let _ = tx.send(save_crop(&image, rect, ppp, &path).map(|()| path));
                repaint.request_repaint();
            });
        });
    }

    /// Writes the drawn level's cells as CSV or JSON into the project's exports folder.
    pub fn export_cells(&self, project: &Project, json: bool) {
        let Some(view) = project.atlases.get(project.current_atlas) else {
            return;
        };
        let grid = view.drawn_grid;
        let ext = if json { "json" } else { "csv" };
        let dir = project.exports_dir();
        let path = dir.join(format!("{}-{grid}-cells.{ext}", view.manifest.layer));
        let text = if json {
            view.cells_json(grid)
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
        } else {
            view.cells_csv(grid)
        };
        let result = text
            .ok_or_else(|| anyhow::anyhow!("no {grid}×{grid} level"))
            .and_then(|t| {
                std::fs::create_dir_all(&dir)?;
                crate::store::atomic::write_bytes(&path, t.as_bytes())
            });
        let _ = self
            .exports
            .tx
            .send(result.map(|()| path).map_err(|e| format!("{e:#}")));
    }
}

/// Crops a window screenshot to `rect` (points) and writes it as PNG.
fn save_crop(
    image: &egui::ColorImage,
    rect: egui::Rect,
    ppp: f32,
    path: &Path,
) -> Result<(), String> {
    let [w, h] = image.size;
    let x0 = ((rect.min.x * ppp).round().max(0.0) as usize).min(w);
    let y0 = ((rect.min.y * ppp).round().max(0.0) as usize).min(h);
    let x1 = ((rect.max.x * ppp).round().max(0.0) as usize).min(w);
    let y1 = ((rect.max.y * ppp).round().max(0.0) as usize).min(h);
    if x1 <= x0 || y1 <= y0 {
        return Err("the canvas is not on screen".into());
    }
    let mut out = image::RgbaImage::new((x1 - x0) as u32, (y1 - y0) as u32);
    for y in y0..y1 {
        for x in x0..x1 {
            let c = image.pixels[y * w + x];
            out.put_pixel((x - x0) as u32, (y - y0) as u32, image::Rgba(c.to_array()));
        }
    }
    let mut bytes = vec![];
    out.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    crate::store::atomic::write_bytes(path, &bytes).map_err(|e| format!("{e:#}"))
}
