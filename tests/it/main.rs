//! The integration tests, as one binary (as ripgrep does): one module per area, sharing the
//! helpers in `common`. One binary links libtorch once instead of once per test file.
//!
//! Run them with `--test-threads=1` (`scripts/test` does): the app tests set the process-wide
//! `ATLAS_RECENT` with `std::env::set_var`, and the atlas tests `ATLAS_DEVICE`, which would race
//! with each other when tests of one binary run in parallel threads.
mod common;

mod analysis_examples;
mod analysis_single_image;
mod app_atlas;
mod app_attack;
mod app_classes;
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
mod real_data;
mod tsne_quality;
