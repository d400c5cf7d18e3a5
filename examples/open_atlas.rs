//! Times what the app does to open an atlas, headless: `load_atlas` (the atlas view: manifest,
//! every level's cells and attributions), then `DatasetIndex::load` (the dataset examples'
//! index, read when the first cell's examples are asked for) and the examples of the coarsest
//! level's fullest cell. Run under `/usr/bin/time -v` for the peak memory
//! (`scripts/bench-scale` does):
//!
//! ```sh
//! cargo build --release --example open_atlas && target/release/examples/open_atlas ATLAS
//! ```
use std::path::PathBuf;
use std::time::Instant;

use atlas::analysis::DatasetIndex;
use atlas::app::atlas_view::load_atlas;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: open_atlas ATLAS_DIR"))?,
    );
    let t = Instant::now();
    let loaded = load_atlas(&root)?;
    let view_s = t.elapsed().as_secs_f64();
    let cells: usize = loaded.levels.iter().map(|l| l.cells.len()).sum();
    println!(
        "atlas view: {view_s:.2} s ({} levels, {cells} cells, {} points)",
        loaded.levels.len(),
        loaded.manifest.points
    );

    let t = Instant::now();
    let index = DatasetIndex::load(&root)?;
    let index_s = t.elapsed().as_secs_f64();
    println!("dataset index: {index_s:.2} s ({} rows)", index.len());

    let coarsest = &loaded.levels[0];
    let fullest = coarsest
        .cells
        .iter()
        .max_by_key(|c| c.count)
        .ok_or_else(|| anyhow::anyhow!("the coarsest level has no cells"))?;
    let t = Instant::now();
    let examples = index.cell_examples(coarsest.record.grid, fullest.x, fullest.y, 16);
    println!(
        "examples of the fullest {g}×{g} cell ({} rows): {:.2} s, {} listed",
        fullest.count,
        t.elapsed().as_secs_f64(),
        examples.len(),
        g = coarsest.record.grid
    );
    println!("open total: {:.2} s", view_s + index_s);
    Ok(())
}
