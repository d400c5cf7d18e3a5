//! Collection: activation vectors at random interior positions of chosen layers, each with its
//! attribution vector over all classes, written to a resumable run folder.
//!
//! `positions` decides where to sample, `attribution` computes `h·∇logit` for every class,
//! `run_folder` owns the on-disk layout (chunks, resume, final matrices), and `job` ties them
//! together on a background thread. `shard` splits a collection over machines (`--shard i/N`)
//! and `merge` joins the shards into the run an unsharded collection writes.
pub mod attribution;
pub mod job;
pub mod merge;
pub mod positions;
pub mod provenance;
pub mod run_folder;
pub mod shard;

pub use job::{collect, spawn_collect, CollectConfig, CollectSummary};
pub use run_folder::{RunFolder, RunManifest};
