//! On-disk formats: `.npy` matrices, CSV tables, atomic file writes and names made from user text.
//!
//! Everything the pipeline persists goes through [`atomic`] so that a kill at any moment leaves
//! either the old file or the complete new one, never a torn file.
pub mod atomic;
pub mod csv_io;
pub mod names;
pub mod npy;
