//! On-disk formats: `.npy` matrices and atomic file writes.
//!
//! Everything the pipeline persists goes through [`atomic`] so that a kill at any moment leaves
//! either the old file or the complete new one, never a torn file.
pub mod atomic;
pub mod npy;
