//! The integration tests, as one binary (as ripgrep does): one module per area, sharing the
//! helpers in `common`. One binary links libtorch once instead of once per test file, and runs of
//! the bundled images are collected once per process (`common::bundled`).
//!
//! Run them with `--test-threads=1` (`scripts/test` does): `atlas_build` sets `ATLAS_DEVICE`
//! with `std::env::set_var`, and environment variables are shared by every thread of the binary,
//! so tests running in parallel would see each other's values; the app tests also start
//! libtorch-heavy jobs that only make sense one at a time on small machines (and `set_var` while another thread reads the environment is undefined
//! behaviour with glibc, which is why Rust 2024 makes it `unsafe`).
//!
//! Scratch folders (`common::scratch`) are removed when their test ends; set
//! `ATLAS_KEEP_TEST_DIRS=1` to keep them for a look afterwards.
//!
//! `too_many_lines` is allowed here (not in `src/`): the app tests are scenarios that read top to
//! bottom as a user's session (build, zoom, hover, select, export, reopen), and cutting them
//! into functions would hide the order of the steps they check.
#![allow(clippy::too_many_lines)]

mod common;

mod analysis_examples;
mod analysis_single_image;
mod app_atlas;
mod app_attack;
mod app_classes;
mod app_file_dialog;
mod app_image;
mod app_ui;
mod atlas_build;
mod attack;
mod attribution;
mod class_tools;
mod collect_resume;
mod data_bad_input;
mod icons;
mod layout_quality;
mod model_contract;
mod model_exports;
mod models_any;
mod real_data;
mod shard;
mod tsne_quality;
