//! A file that is not an atlas model is refused with a message that names the file and what is
//! missing; the real default model loads and matches its sidecar.
use crate::common;

use atlas::model::AtlasModel;
use tch::Device;

fn load_err(path: &std::path::Path) -> String {
    match AtlasModel::load(path, Device::Cpu) {
        Ok(_) => panic!(
            "{} loaded although it is not an atlas model",
            path.display()
        ),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn default_model_loads_and_matches_sidecar() {
    let model = AtlasModel::load(&common::model(), Device::Cpu).unwrap();
    assert_eq!(model.num_classes(), 1000);
    assert!(model.info.layers.len() >= 5, "one layer per stage");
    let sizes: Vec<i64> = model.info.layers.iter().map(|l| l.height).collect();
    assert_eq!(sizes.first(), Some(&56));
    assert_eq!(sizes.last(), Some(&7));
    assert!(model.linear_head().unwrap().is_some());
}

#[test]
fn wrong_files_are_named_with_the_reason() {
    let dir = common::scratch("contract");
    // Missing file.
    let missing = dir.join("missing.pt");
    assert!(load_err(&missing).contains("does not exist"));
    // No sidecar.
    let lonely = dir.join("lonely.pt");
    std::fs::copy(common::model(), &lonely).unwrap();
    let e = load_err(&lonely);
    assert!(e.contains("lonely.pt") && e.contains("sidecar"), "{e}");
    // A sidecar next to garbage.
    let garbage = dir.join("garbage.pt");
    std::fs::write(&garbage, b"this is not torchscript").unwrap();
    std::fs::copy(
        common::model().with_extension("json"),
        dir.join("garbage.json"),
    )
    .unwrap();
    let e = load_err(&garbage);
    assert!(e.contains("garbage.pt") && e.contains("TorchScript"), "{e}");
    // A sidecar that lies about a layer's shape.
    let liar = dir.join("liar.pt");
    std::fs::copy(common::model(), &liar).unwrap();
    let mut sidecar: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::model().with_extension("json")).unwrap(),
    )
    .unwrap();
    sidecar["layers"][0]["channels"] = serde_json::json!(7);
    std::fs::write(dir.join("liar.json"), sidecar.to_string()).unwrap();
    let e = load_err(&liar);
    assert!(e.contains("liar.pt") && e.contains("sidecar says"), "{e}");
    // A sidecar with a missing field.
    let partial = dir.join("partial.pt");
    std::fs::copy(common::model(), &partial).unwrap();
    std::fs::write(
        dir.join("partial.json"),
        r#"{"format": "activation-atlas-model/1", "name": "x"}"#,
    )
    .unwrap();
    let e = load_err(&partial);
    assert!(
        e.contains("partial.json") && e.contains("missing field"),
        "{e}"
    );
}

#[test]
fn cli_names_a_wrong_model_file() {
    let dir = common::scratch("contract-cli");
    let bogus = dir.join("bogus.pt");
    std::fs::write(&bogus, b"nope").unwrap();
    let out = std::process::Command::new(common::atlas_bin())
        .args(["classify", "--model"])
        .arg(&bogus)
        .arg(common::assets())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bogus.pt") && err.contains("sidecar"), "{err}");
}

#[test]
fn cli_device_flag_runs_on_the_cpu_and_refuses_unknown_devices() {
    let image = common::image_files(&common::assets())[0].clone();
    let run = |device: &str| {
        std::process::Command::new(common::atlas_bin())
            .args(["classify", "--device", device, "--top", "1"])
            .arg(&image)
            .output()
            .unwrap()
    };
    let cpu = run("cpu");
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    assert!(!cpu.stdout.is_empty());
    let bad = run("tpu");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("cpu, cuda or cuda:N"), "{err}");
}
