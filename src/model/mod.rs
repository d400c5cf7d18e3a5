//! The model contract (`models/CONTRACT.md`): a TorchScript file plus a JSON sidecar.
//!
//! `sidecar` parses and checks the JSON; `torch_model` loads the TorchScript module, checks that it
//! really produces what the sidecar promises, and runs it; `layout` turns token and channels-last
//! layers into the `[B,C,h,w]` feature maps everything else works on.
pub mod layout;
pub mod sidecar;
pub mod torch_model;

pub use sidecar::LayerLayout;
pub use sidecar::{ClassInfo, LayerInfo, Sidecar};
pub use torch_model::{AtlasModel, Forward, LinearHead};

/// The device every tensor of the pipeline lives on: `ATLAS_DEVICE` (`cpu`, `cuda`, `cuda:N`)
/// when it is set, else the GPU when libtorch sees one. Tests that claim byte-identical results
/// (resume, rebuild) set `ATLAS_DEVICE=cpu`: cuDNN's backward passes are not deterministic.
pub fn default_device() -> tch::Device {
    match std::env::var("ATLAS_DEVICE") {
        Ok(s) => parse_device(&s).unwrap_or_else(|e| {
            eprintln!("ignoring ATLAS_DEVICE: {e}");
            tch::Device::cuda_if_available()
        }),
        Err(_) => tch::Device::cuda_if_available(),
    }
}

/// `cpu`, `cuda` (the first GPU) or `cuda:N`; CUDA only where libtorch sees that GPU.
pub fn parse_device(s: &str) -> anyhow::Result<tch::Device> {
    let device = match s.trim() {
        "cpu" => return Ok(tch::Device::Cpu),
        "cuda" => tch::Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => tch::Device::Cuda(n),
            _ => anyhow::bail!("device must be cpu, cuda or cuda:N, not {other:?}"),
        },
    };
    let tch::Device::Cuda(n) = device else {
        unreachable!()
    };
    let available = if tch::Cuda::is_available() {
        tch::Cuda::device_count() as usize
    } else {
        0
    };
    anyhow::ensure!(
        n < available,
        "{s} asked for, but libtorch sees {available} CUDA device(s)"
    );
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::parse_device;

    #[test]
    fn devices_parse_and_unknown_ones_are_refused() {
        assert_eq!(parse_device("cpu").unwrap(), tch::Device::Cpu);
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        // cuda:N is accepted exactly when libtorch sees that many GPUs.
        let n = if tch::Cuda::is_available() {
            tch::Cuda::device_count() as usize
        } else {
            0
        };
        assert!(parse_device(&format!("cuda:{n}")).is_err());
        assert_eq!(parse_device("cuda").is_ok(), n > 0);
    }
}
