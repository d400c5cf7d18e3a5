//! Class tools: class activation atlases (spec §6), two-class comparisons (spec §7) and class
//! similarity over an atlas (beyond the paper).
//!
//! # Class activation atlas ([`spawn_class_atlas`], [`class_atlas`], `atlas class-atlas`)
//!
//! For one class `c` of a run's layer, keep the samples chosen by a [`ClassFilter`]:
//!
//! * `winner` ("top rank"): `argmax(attr[i, :]) == c` (ties: the lowest class index);
//! * `magnitude` ("overall magnitude"): the `n` rows with the largest `attr[i, c]` (default
//!   2000, ties: lower row first), then those with `attr[i, c] ≤ 0` dropped;
//! * `both`: winner ∪ magnitude. With [`Selection::Union`] (default) each run row appears once,
//!   rows ascending; [`Selection::Concat`] reproduces the reference notebook (NB-CLS), which
//!   concatenates the magnitude list (largest first) and the winner list and keeps duplicates.
//!
//! Only those rows are laid out (default UMAP 20 / 0.02 / cosine, the published class atlases'
//! `20_0.02_cosine`; t-SNE as the article prefers is an option), normalized (spec §2.4), binned
//! on an 8×8 grid keeping cells with ≥ 5 points (NB-CLS: `n > 4`), and every cell gets its mean
//! activation, mean attribution, top classes (its label is its own top class, not necessarily
//! `c`) and an icon whitened with the **full** layer's matrix (all the run's rows of the layer,
//! or a given `whitening.npy`).
//!
//! The output folder `OUT` is an ordinary atlas folder (see [`crate::atlas`]) that the viewer
//! and [`crate::analysis`] open unchanged:
//!
//! ```text
//! OUT/run/                 a run folder holding only the selected rows of the layer
//!                          (acts.npy f32, attr.npy, provenance.csv renumbered, images.csv,
//!                          predictions.csv, run.json, subset.json = {source_run, layer,
//!                          source_rows, rows}); the atlas manifest's `run` points here, so
//!                          atlas row i = subset row i = source run row rows[i]
//! OUT/manifest.json, layout.npy, layout_normalized.npy, whitening.npy (the full layer's),
//! OUT/levels/8/cells.csv, mean_acts.npy, mean_attr.npy, icons/sheet_NNNN.png
//! OUT/class_atlas.json     ClassAtlasInfo: class, filter, n, selection, counts, run rows, …
//! OUT/class_atlas.png      the poster of the level (when icons were rendered)
//! ```
//!
//! Every stage is cached as in `atlas build` (keys include a hash of the selected rows), so a
//! rerun after a cancel resumes and a finished folder is not redone.
//!
//! # Two-class comparison ([`spawn_compare`], [`compare`], `atlas compare`)
//!
//! Spec §7: the sample set is class A's rows then class B's (each under the filter, default
//! `both` with n = 2000), as a union (default) or the notebook's concatenation. Then
//!
//! * x = `attr[i, B] − attr[i, A]`, divided by the 99th percentile (numpy's linear
//!   interpolation) of its absolute value over the set and clipped to [−1, 1]; no re-centring;
//!   positive = "more B";
//! * y = 1-D t-SNE of the activations (cosine, perplexity 50, learning rate 10), normalized to
//!   [0, 1] with `normalize_layout`;
//! * a 10×10 grid over x ∈ [−1, 1], y ∈ [0, 1] (the atlas folder stores `((x + 1) / 2, y)` as
//!   its normalized layout, so cell column `i` spans x ∈ [−1 + 2i/G, −1 + 2(i+1)/G)), cells with
//!   ≥ 5 points, icons as for a class atlas.
//!
//! Output: an atlas folder as above plus `comparison.json` ([`ComparisonInfo`]: classes, run
//! rows, per-sample x and y, the percentile and its value, per-cell bins with their x/y ranges
//! and top classes) and `comparison.png` (the icons with "more A" / "more B" axis captions).
//! With `with_class_atlases`, the class atlases of A and B are built into `OUT/class_a` and
//! `OUT/class_b`.
//!
//! # Class similarity ([`class_pairs`], `atlas class-pairs`)
//!
//! Over the kept cells of one level of an existing atlas: for class c and cell j, the class's
//! attribution mass `m_c(j) = max(0, n_j · ā_c(j))` (n_j the cell's point count, ā the cell's
//! mean attribution, so `n_j · ā_c(j)` is the summed attribution of the cell's points; with
//! [`PairWeighting::Mean`] the count is left out). `p_c = m_c / Σ_j m_c(j)` is the class's
//! distribution over cells, and
//!
//! ```text
//! similarity(a, b) = Σ_j min(p_a(j), p_b(j))        ∈ [0, 1]
//! ```
//!
//! (histogram intersection: 1 when the two classes draw their positive evidence from the same
//! cells in the same proportions, 0 when they share no cell). Classes with no positive mass are
//! skipped; [`PairClasses`] limits the candidates (default: classes that label at least one
//! cell). Cost: candidates² / 2 × cells.
//!
//! # Use from the app
//!
//! ```ignore
//! let job = classes::spawn_class_atlas(ClassAtlasConfig::new(run, "head", "church", out));
//! // job.events: Progress (stage, done, total), Log lines,
//! //   Partial(ClassEvent::Selected { .. })       the sample set is chosen,
//! //   Partial(ClassEvent::Build { part, event })  BuildEvent::LevelsReady / SheetReady of the
//! //                                               atlas folder `part` (icons as they arrive),
//! //   Finished(Done(ClassEvent::ClassAtlasDone(result)))   open result.out as an atlas.
//! // spawn_compare(CompareConfig::new(run, "head", "a", "b", out)) ends with ComparisonDone;
//! // with class atlases it first sends ClassAtlasDone partials for A and B.
//! ```
pub mod info;
mod job;
pub mod pairs;
pub mod plot;
pub mod select;
pub mod subset;

pub use info::{
    CellBin, ClassAtlasInfo, ClassRef, ComparisonInfo, CLASS_ATLAS_FORMAT, COMPARISON_FORMAT,
};
pub use job::{
    class_atlas, compare, spawn_class_atlas, spawn_compare, ClassAtlasConfig, ClassAtlasResult,
    ClassEvent, CompareConfig, ComparisonResult, WhiteningSource,
};
pub use pairs::{class_pairs, ClassPair, ClassPairs, PairClasses, PairWeighting};
pub use select::{
    class_rows, comparison_rows, comparison_x, magnitude_rows, resolve_class, winner_rows,
    ClassFilter, Selection,
};
