//! The atlas canvas: pan and zoom, the level of detail of the paper's viewer, density-sized
//! icons (one textured mesh per icon sheet), non-overlapping labels, hover tooltip, click to
//! select, markers, and a minimap. Everything here is per-frame drawing from state; no I/O.
use std::collections::HashMap;

use eframe::egui::{
    self, Color32, FontId, Key, Mesh, Pos2, Rect, Sense, Shape, Stroke, StrokeKind, TextureId, Vec2,
};

use super::labels::{kth_cell, place_labels};
use super::{focus_alphas, AtlasView, Camera, ClassFocus, DrawnIcons, IconView};
use crate::atlas::manifest::IconKind;

const OUTLINE: Color32 = Color32::from_rgba_premultiplied(38, 38, 38, 77); // 30 % grey
const PENDING: Color32 = Color32::from_rgb(222, 222, 222);
const MINIMAP: f32 = 150.0;

/// What the user did on the canvas this frame.
#[derive(Default)]
pub struct CanvasEvents {
    /// A cell was clicked: (grid, cell index).
    pub clicked: Option<(usize, usize)>,
}

/// Draws `view` into the rest of `ui` and handles its input.
pub fn show(ui: &mut egui::Ui, view: &mut AtlasView, focus: Option<&ClassFocus>) -> CanvasEvents {
    let ctx = ui.ctx().clone();
    if view.icons.poll(&ctx) {
        ctx.request_repaint();
    }
    let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "atlas canvas"));
    if view.home.is_none() {
        view.go_home(rect);
    }
    let minimap_rect = place_minimap(view, rect);
    handle_input(ui, view, rect, &response, minimap_rect);

    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::WHITE);
    let level_index = view.level_index(rect);
    let grid = view.levels[level_index].grid();
    let cell_px = view.camera.scale(rect) / grid as f32;
    let icons = icon_shapes(view, level_index, rect, focus);
    painter.extend(grid_lines(&view.camera, rect, grid, cell_px));
    painter.extend(icons.placeholders);
    painter.extend(icons.meshes.into_values().map(Shape::mesh));
    view.drawn_grid = grid;
    view.drawn_cells = icons.visible.len();
    view.drawn_occupancy =
        super::visible_occupancy(&view.levels[level_index], view.camera.visible_area(rect));
    view.drawn_icons = icons.drawn;

    update_hover(view, &response, rect, level_index, minimap_rect);
    draw_highlights(&painter, view, rect, level_index);
    view.drawn_labels.clear();
    if view.show_labels && cell_px >= 6.0 {
        draw_labels(&painter, view, level_index, rect, cell_px, &icons.visible);
    }
    let events = tooltip_and_click(view, &response, level_index);
    if let Some(m) = minimap_rect {
        draw_minimap(&painter, view, m, rect);
    }
    // The sheet decoder does not wake the window: look again soon while it works.
    if view.icons.is_loading() {
        ctx.request_repaint_after(std::time::Duration::from_millis(50));
    }
    events
}

/// Where the minimap goes this frame (none while the whole atlas is on screen).
fn place_minimap(view: &mut AtlasView, rect: Rect) -> Option<Rect> {
    let occupied = view
        .levels
        .first()
        .and_then(super::occupied_area)
        .unwrap_or(Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)));
    let minimap_rect = minimap_rect(
        rect,
        view.show_minimap && !area_fully_visible(&view.camera, rect, occupied),
    );
    view.minimap = minimap_rect;
    minimap_rect
}

/// The icons of one frame: one mesh per sheet texture, grey squares for icons not loaded yet.
struct IconShapes {
    meshes: HashMap<TextureId, Mesh>,
    placeholders: Vec<Shape>,
    /// The cells on screen: (cell index, screen rectangle).
    visible: Vec<(usize, Rect)>,
    drawn: DrawnIcons,
}

/// The icon kinds a cell shows, and where, under the canvas's icon switch.
fn icon_parts(icon_view: IconView, hovered: bool, icon_rect: Rect) -> Vec<(IconKind, Rect)> {
    let side = icon_rect.width();
    let half = |dx: f32| {
        Rect::from_center_size(
            icon_rect.center() + Vec2::new(dx * side / 4.0, 0.0),
            Vec2::splat(side / 2.0),
        )
    };
    match icon_view {
        IconView::Synthetic => vec![(IconKind::Synthetic, icon_rect)],
        IconView::Exemplar => vec![(IconKind::Exemplar, icon_rect)],
        IconView::Mosaic => vec![(IconKind::Mosaic, icon_rect)],
        IconView::SideBySide => vec![
            (IconKind::Synthetic, half(-1.0)),
            (IconKind::Exemplar, half(1.0)),
        ],
        IconView::Hover if hovered => vec![(IconKind::Exemplar, icon_rect)],
        IconView::Hover => vec![(IconKind::Synthetic, icon_rect)],
    }
}

/// Builds the shapes of the visible cells' icons of level `level_index`: each icon sized by its
/// cell's count, faded outside the class focus.
fn icon_shapes(
    view: &mut AtlasView,
    level_index: usize,
    rect: Rect,
    focus: Option<&ClassFocus>,
) -> IconShapes {
    let level = &view.levels[level_index];
    let grid = level.grid();
    let classes = view.manifest.class_names.len();
    let alphas = focus.and_then(|f| focus_alphas(level, classes, f));
    let cam = view.camera;
    let cell_px = cam.scale(rect) / grid as f32;
    let avg = view.manifest.points.max(1) as f32 / (grid * grid) as f32;
    let mut shapes = IconShapes {
        meshes: HashMap::new(),
        placeholders: vec![],
        visible: vec![],
        drawn: DrawnIcons::default(),
    };
    let record = level.record.clone();
    let per_sheet = record.icons_per_sheet.max(1);
    // Per kind, the texture of the sheet being filled: cells come in index order, so a sheet's
    // cells are consecutive and the cache is asked once per sheet, not once per icon.
    type Current = Option<(usize, Option<(TextureId, super::icons::SheetTexture)>)>;
    let mut current: [Current; 3] = [None, None, None];
    let hovered = view.hovered.filter(|(g, _)| *g == grid).map(|(_, i)| i);
    // A level without exemplar sheets (e.g. built with `--icons synthetic`, or whose images
    // are gone) shows its synthetic icons rather than placeholders.
    let icon_view = match view.icon_view {
        IconView::Exemplar | IconView::Mosaic if !level.exemplar_sheets.iter().any(|s| *s) => {
            IconView::Synthetic
        }
        other => other,
    };
    for (i, cell) in level.cells.iter().enumerate() {
        let cell_rect = cell_screen_rect(&cam, rect, grid, cell.x, cell.y);
        if !cell_rect.intersects(rect) {
            continue;
        }
        shapes.visible.push((i, cell_rect));
        let frac = (view.density * cell.count as f32 / avg).sqrt().min(1.0);
        let side = (cell_px * frac).max(1.0);
        let icon_rect = Rect::from_center_size(cell_rect.center(), Vec2::splat(side));
        let alpha = alphas.as_ref().map_or(1.0, |a| a[i]);
        let sheet = i / per_sheet;
        for (kind, part) in icon_parts(icon_view, hovered == Some(i), icon_rect) {
            let slot = &mut current[kind as usize];
            if slot.as_ref().is_none_or(|(s, _)| *s != sheet) {
                let tex = if level.has_sheet(kind, sheet) {
                    view.icons
                        .sheet_of(kind, &record, sheet)
                        .map(|t| (t.texture.id(), t.shallow()))
                } else {
                    None
                };
                *slot = Some((sheet, tex));
            }
            let tile = i % per_sheet;
            match slot.as_ref().and_then(|(_, t)| t.as_ref()) {
                Some((id, tex)) if tex.has(tile) => {
                    let crop = (8.0 / part.width()).min(0.6);
                    let tint = Color32::from_white_alpha((alpha * 255.0).round() as u8);
                    shapes
                        .meshes
                        .entry(*id)
                        .or_insert_with(|| Mesh::with_texture(*id))
                        .add_rect_with_uv(part, tex.uv(tile, crop), tint);
                    shapes.drawn.add(kind, *id);
                }
                _ => shapes.placeholders.push(Shape::rect_filled(
                    part,
                    0.0,
                    PENDING.gamma_multiply(alpha.max(0.15)),
                )),
            }
        }
    }
    shapes
}

/// Thin grey grid lines (the viewer's 30 % outline): 2·(G+1) segments instead of a stroked
/// rectangle per cell, which at 160×160 cost more to tessellate than all the icons. None when
/// cells are smaller than 4 px.
fn grid_lines(cam: &Camera, rect: Rect, grid: usize, cell_px: f32) -> Vec<Shape> {
    let mut outlines: Vec<Shape> = vec![];
    if cell_px < 4.0 {
        return outlines;
    }
    let atlas = Rect::from_min_max(
        cam.to_screen(rect, Pos2::ZERO),
        cam.to_screen(rect, Pos2::new(1.0, 1.0)),
    )
    .intersect(rect);
    let origin = cam.to_screen(rect, Pos2::ZERO);
    let first = ((atlas.left() - origin.x) / cell_px).floor().max(0.0) as usize;
    let last = (((atlas.right() - origin.x) / cell_px).ceil() as usize).min(grid);
    for k in first..=last {
        let x = origin.x + k as f32 * cell_px;
        outlines.push(Shape::line_segment(
            [Pos2::new(x, atlas.top()), Pos2::new(x, atlas.bottom())],
            Stroke::new(1.0, OUTLINE),
        ));
    }
    let first = ((atlas.top() - origin.y) / cell_px).floor().max(0.0) as usize;
    let last = (((atlas.bottom() - origin.y) / cell_px).ceil() as usize).min(grid);
    for k in first..=last {
        let y = origin.y + k as f32 * cell_px;
        outlines.push(Shape::line_segment(
            [Pos2::new(atlas.left(), y), Pos2::new(atlas.right(), y)],
            Stroke::new(1.0, OUTLINE),
        ));
    }
    outlines
}

/// The cell under the pointer (none over the minimap).
fn update_hover(
    view: &mut AtlasView,
    response: &egui::Response,
    rect: Rect,
    level_index: usize,
    minimap_rect: Option<Rect>,
) {
    let grid = view.levels[level_index].grid();
    view.hovered = None;
    if let Some(p) = response.hover_pos() {
        if !minimap_rect.is_some_and(|m| m.contains(p)) {
            view.hovered = cell_at(&view.camera, rect, grid, p)
                .and_then(|xy| view.levels[level_index].lookup.get(&xy).copied())
                .map(|i| (grid, i));
        }
    }
}

/// Outlines of the hovered and the selected cell, and the markers of an image's vectors.
fn draw_highlights(painter: &egui::Painter, view: &AtlasView, rect: Rect, level_index: usize) {
    let cam = view.camera;
    let grid = view.levels[level_index].grid();
    let outline_cell = |i: usize, colour: Color32| {
        let c = &view.levels[level_index].cells[i];
        painter.rect_stroke(
            cell_screen_rect(&cam, rect, grid, c.x, c.y),
            0.0,
            Stroke::new(2.0, colour),
            StrokeKind::Inside,
        );
    };
    if let Some((g, i)) = view.hovered {
        if g == grid {
            outline_cell(i, Color32::from_rgb(40, 110, 220));
        }
    }
    if let Some((g, i)) = view.selected {
        if g == grid && i < view.levels[level_index].cells.len() {
            outline_cell(i, Color32::from_rgb(230, 120, 0));
        }
    }
    for m in &view.markers {
        let p = cam.to_screen(rect, *m);
        if rect.contains(p) {
            painter.circle(
                p,
                4.0,
                Color32::from_rgb(230, 40, 90),
                Stroke::new(1.0, Color32::WHITE),
            );
        }
    }
}

/// The hovered cell's tooltip; a click selects it.
fn tooltip_and_click(
    view: &mut AtlasView,
    response: &egui::Response,
    level_index: usize,
) -> CanvasEvents {
    let mut events = CanvasEvents::default();
    let Some((g, i)) = view.hovered else {
        return events;
    };
    let cell = view.levels[level_index].cells[i].clone();
    let names = &view.manifest.class_names;
    response.clone().on_hover_ui_at_pointer(|ui| {
        ui.label(egui::RichText::new(format!("cell ({}, {}) of {g}×{g}", cell.x, cell.y)).strong());
        for (class, v) in &cell.top {
            let name = names.get(*class).map(String::as_str).unwrap_or("?");
            ui.label(format!("{name}  {v:.2}"));
        }
        ui.label(format!("Average of {} activations", cell.count));
    });
    if response.clicked() {
        view.selected = Some((g, i));
        events.clicked = Some((g, i));
    }
    events
}

/// Screen rectangle of cell (x, y) (y counted from the bottom).
pub fn cell_screen_rect(cam: &Camera, rect: Rect, grid: usize, x: usize, y: usize) -> Rect {
    let g = grid as f32;
    let row = (grid - 1 - y) as f32;
    let min = cam.to_screen(rect, Pos2::new(x as f32 / g, row / g));
    let max = cam.to_screen(rect, Pos2::new((x as f32 + 1.0) / g, (row + 1.0) / g));
    Rect::from_min_max(min, max)
}

/// The cell (x, y from the bottom) under screen point `p`, if inside the atlas.
pub fn cell_at(cam: &Camera, rect: Rect, grid: usize, p: Pos2) -> Option<(usize, usize)> {
    let a = cam.to_atlas(rect, p);
    if !(0.0..1.0).contains(&a.x) || !(0.0..1.0).contains(&a.y) {
        return None;
    }
    let x = (a.x * grid as f32).floor() as usize;
    let row = (a.y * grid as f32).floor() as usize;
    Some((x.min(grid - 1), grid - 1 - row.min(grid - 1)))
}

/// Whether `area` (atlas units) lies inside the canvas: at the opening view, or zoomed out,
/// every cell is on screen and a minimap would only cover some of them.
fn area_fully_visible(cam: &Camera, canvas: Rect, area: Rect) -> bool {
    let a = cam.to_screen(canvas, area.min);
    let b = cam.to_screen(canvas, area.max);
    canvas.expand(0.5).contains(a) && canvas.expand(0.5).contains(b)
}

fn minimap_rect(canvas: Rect, enabled: bool) -> Option<Rect> {
    (enabled && canvas.width() > 3.0 * MINIMAP && canvas.height() > 2.0 * MINIMAP).then(|| {
        Rect::from_min_size(
            canvas.right_bottom() - Vec2::splat(MINIMAP + 10.0),
            Vec2::splat(MINIMAP),
        )
    })
}

fn handle_input(
    ui: &egui::Ui,
    view: &mut AtlasView,
    rect: Rect,
    response: &egui::Response,
    minimap: Option<Rect>,
) {
    let pointer = response.hover_pos();
    let on_minimap = |p: Option<Pos2>| minimap.zip(p).filter(|(m, p)| m.contains(*p));
    // Minimap: click or drag there moves the view.
    if response.is_pointer_button_down_on() {
        if let Some((m, p)) = on_minimap(ui.input(|i| i.pointer.interact_pos())) {
            let inner = m.shrink(4.0);
            view.camera.center = Pos2::new(
                ((p.x - inner.left()) / inner.width()).clamp(0.0, 1.0),
                ((p.y - inner.top()) / inner.height()).clamp(0.0, 1.0),
            );
            return;
        }
    }
    if response.dragged() {
        view.camera.pan_pixels(rect, response.drag_delta());
    }
    if response.double_clicked() {
        if let Some(p) = pointer {
            view.camera.zoom_about(rect, p, 2.0);
        }
    }
    if response.hovered() {
        let (zoom, scroll) = ui.input(|i| (i.zoom_delta(), i.smooth_scroll_delta));
        // Wheel and pinch zoom about the pointer; horizontal scroll (trackpads) pans.
        let factor = zoom * (scroll.y * 0.0025).exp();
        if (factor - 1.0).abs() > 1e-4 {
            view.camera
                .zoom_about(rect, pointer.unwrap_or(rect.center()), factor);
        }
        if scroll.x != 0.0 {
            view.camera.pan_pixels(rect, Vec2::new(scroll.x, 0.0));
        }
        let keys = ui.input(|i| {
            let pan = |k: Key| if i.key_down(k) { 1.0 } else { 0.0 };
            (
                Vec2::new(
                    pan(Key::ArrowLeft) - pan(Key::ArrowRight),
                    pan(Key::ArrowUp) - pan(Key::ArrowDown),
                ),
                i.key_pressed(Key::Plus) || i.key_pressed(Key::Equals),
                i.key_pressed(Key::Minus),
                i.key_pressed(Key::Num0) || i.key_pressed(Key::Home),
            )
        });
        if keys.0 != Vec2::ZERO {
            view.camera.pan_pixels(rect, keys.0 * 12.0);
            ui.ctx().request_repaint();
        }
        if keys.1 {
            view.camera.zoom_about(rect, rect.center(), 1.25);
        }
        if keys.2 {
            view.camera.zoom_about(rect, rect.center(), 0.8);
        }
        if keys.3 {
            view.go_home(rect);
        }
    }
}

fn draw_labels(
    painter: &egui::Painter,
    view: &mut AtlasView,
    level_index: usize,
    rect: Rect,
    cell_px: f32,
    visible: &[(usize, Rect)],
) {
    let level = &view.levels[level_index];
    let size = (cell_px * 0.15).clamp(9.0, 13.0);
    let font = FontId::proportional(size);
    let mut galleys = vec![];
    let mut rects = vec![];
    let mut priority = vec![];
    for &(i, cell_rect) in visible {
        let cell = &level.cells[i];
        // The viewer's every-k-th-cell thinning only where cells are small; on large cells it
        // would drop labels that fit, and the placement below already prevents overlaps.
        if cell_px < 60.0 && !kth_cell(cell.x, cell.y, cell_px) {
            continue;
        }
        let Some(&(class, _)) = cell.top.first() else {
            continue;
        };
        let name = view
            .manifest
            .class_names
            .get(class)
            .cloned()
            .unwrap_or_default();
        let galley = painter.layout_no_wrap(name, font.clone(), Color32::from_gray(20));
        let pos = Pos2::new(
            cell_rect.left() + 2.0,
            cell_rect.bottom() - 2.0 - galley.size().y,
        );
        rects.push(Rect::from_min_size(pos, galley.size()));
        priority.push(cell.count as f32);
        galleys.push(galley);
    }
    for i in place_labels(&rects, &priority, rect) {
        painter.rect_filled(rects[i].expand(1.0), 2.0, Color32::from_white_alpha(190));
        painter.galley(rects[i].min, galleys[i].clone(), Color32::from_gray(20));
        view.drawn_labels.push(rects[i]);
    }
}

fn draw_minimap(painter: &egui::Painter, view: &AtlasView, m: Rect, canvas: Rect) {
    painter.rect_filled(m, 3.0, Color32::from_white_alpha(235));
    painter.rect_stroke(
        m,
        3.0,
        Stroke::new(1.0, Color32::from_gray(120)),
        StrokeKind::Inside,
    );
    let inner = m.shrink(4.0);
    let coarse = &view.levels[0];
    let g = coarse.grid() as f32;
    let avg = view.manifest.points.max(1) as f32 / (g * g);
    for c in &coarse.cells {
        let row = g - 1.0 - c.y as f32;
        let r = Rect::from_min_size(
            inner.min + Vec2::new(c.x as f32, row) * inner.width() / g,
            Vec2::splat(inner.width() / g),
        );
        let shade = (c.count as f32 / avg).sqrt().min(1.0);
        painter.rect_filled(r, 0.0, Color32::from_gray(220 - (shade * 140.0) as u8));
    }
    // The part of the atlas the canvas shows.
    let tl = view.camera.to_atlas(canvas, canvas.left_top());
    let br = view.camera.to_atlas(canvas, canvas.right_bottom());
    let to_mini = |p: Pos2| inner.min + p.to_vec2() * inner.width();
    let window = Rect::from_min_max(to_mini(tl), to_mini(br)).intersect(inner);
    painter.rect_stroke(
        window,
        0.0,
        Stroke::new(1.5, Color32::from_rgb(230, 120, 0)),
        StrokeKind::Inside,
    );
}
