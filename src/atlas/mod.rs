//! The atlas folder: a collection run's layer laid out, binned on nested grids and rendered as
//! icons (spec §2–4).
//!
//! ```text
//! ATLAS/manifest.json            what was built from what, with which settings; per-level info
//! ATLAS/layout.npy               raw layout coordinates [N, 2]
//! ATLAS/layout_normalized.npy    the same mapped to [0, 1]² (spec §2.4)
//! ATLAS/whitening.npy            (Σ + λI)⁻¹ of the layer's activations [C, C]
//! ATLAS/levels/G/cells.csv       one line per kept cell: x, y (from the bottom), count, top classes
//! ATLAS/levels/G/mean_acts.npy   mean activation per cell [cells, C]
//! ATLAS/levels/G/mean_attr.npy   mean attribution per cell [cells, K]
//! ATLAS/levels/G/icons/sheet_NNNN.png   icons of cells NNNN·B … in 10-column sheets
//! ATLAS/levels/G/icons/sheet_NNNN.partial.png   a sheet still being rendered (RGBA: finished
//!                                               icons opaque, the rest transparent)
//! ATLAS/levels/G/exemplars/sheet_NNNN.png       each cell's most typical real patch (same format)
//! ATLAS/levels/G/mosaics/sheet_NNNN.png         2×2 mosaics of each cell's four most typical patches
//! ```
//!
//! Every stage's output is written atomically together with the settings that made it, so a
//! rerun skips finished stages and finished icon sheets (a cancelled or killed build resumes).
pub mod build;
pub mod exemplars;
pub mod manifest;
pub mod poster;

pub use build::{build, spawn_build, spawn_build_icons, BuildConfig, BuildEvent};
pub use manifest::{AtlasManifest, CellRecord, IconKind, IconSet, LevelRecord};
