//! Activation Atlas: see what an image classifier has learned.
//!
//! The modules mirror the pipeline: `data` (image folders) → `model` (the TorchScript contract)
//! → `collect` (activations + attributions into a run folder) → later `layout`, `grid`, `render`;
//! `app` is the egui desktop front end, `jobs` the background-work plumbing both use.
pub mod analysis;
pub mod app;
pub mod atlas;
pub mod attack;
pub mod classes;
pub mod classify;
pub mod collect;
pub mod data;
pub mod defaults;
pub mod grid;
pub mod jobs;
pub mod layout;
pub mod model;
pub mod pipeline;
pub mod render;
pub mod store;
