//! Feature visualization of activation directions (spec §4): the icons of an atlas.
//!
//! One icon is an image optimized so that the chosen layer's activation vector at the centre of
//! its output points along a direction `v` (a cell's mean activation):
//!
//! * [`param`]: lucid's FFT + decorrelated-colour parameterization, squashed by a sigmoid;
//! * [`maco`]: MACO's phase-only parameterization with a fixed magnitude spectrum and its
//!   attribution alpha mask (the `maco` icon method);
//! * feature accentuation (the `accent` method): lucid's parameterization started from a cell's
//!   exemplar patch and kept near it ([`optimize::render_accented`]);
//! * [`transforms`]: lucid's random crop-jitter / scale / rotate stacks (REC default, NB option);
//! * [`objective`]: `dot × cos⁴` in the notebook form or the clean form, plus whitening;
//! * [`optimize`]: Adam 0.05 over many icons at once, several tries, keep the best per icon;
//! * [`folder`]: icons of any directions written as a folder of PNGs (`atlas icons`).
pub mod folder;
pub mod maco;
pub mod objective;
pub mod optimize;
pub mod param;
pub mod transforms;

pub use objective::{whitening_matrix, CosineForm, Objective};
pub use optimize::{
    render_accented, render_batch, AccentSettings, IconMethod, MacoSettings, RenderSettings,
    RenderedIcons,
};
pub use transforms::TransformStack;
