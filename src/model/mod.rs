//! The model contract (`models/CONTRACT.md`): a TorchScript file plus a JSON sidecar.
//!
//! `sidecar` parses and checks the JSON; `torch_model` loads the TorchScript module, checks that it
//! really produces what the sidecar promises, and runs it.
pub mod sidecar;
pub mod torch_model;

pub use sidecar::{ClassInfo, LayerInfo, Sidecar};
pub use torch_model::{AtlasModel, Forward, LinearHead};

/// The device every tensor of the pipeline lives on: the GPU when libtorch sees one.
pub fn default_device() -> tch::Device {
    tch::Device::cuda_if_available()
}
