//! Image folders: scanning, robust decoding, batching.
//!
//! The pipeline reads a user's folder of images, so everything here assumes the input is messy:
//! stray text files, half-copied JPEGs, symlink loops, 16-bit or CMYK files, hostile headers.
//! Bad inputs are *reported* (as [`Problem`]s from the scan or as per-image failures from the
//! loader) and never abort the run or panic.
//!
//! Read it in pipeline order:
//! - [`scan`]: walk the folder, sniff file contents, assign labels (first-level subfolder).
//! - [`decode`]: one file → RGB image of the model's input size ([`Preprocess`] says how).
//!   It leans on two helpers: `jpeg` (detects truncated JPEGs, which the decoder would silently
//!   pad) and `resize` (Pillow-exact bilinear and Lanczos resamplers, so pixels match Python
//!   pipelines).
//! - [`loader`]: decode many files in parallel off the caller's thread, in ordered batches.

pub mod decode;
mod jpeg;
pub mod loader;
mod resize;
pub mod scan;

pub use decode::{load_rgb, to_chw_f32, Preprocess};
pub use loader::{spawn_loader, Batch};
pub use resize::resize_lanczos;
pub use scan::{scan_folder, ImageEntry, Problem, ScanReport};
