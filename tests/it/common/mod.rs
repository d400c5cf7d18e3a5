//! Shared helpers of the integration tests.
pub mod app;
pub mod bundled;
pub mod layout;
use std::path::{Path, PathBuf};

/// The embedded default model, exported by `scripts/setup.sh`.
pub fn model() -> PathBuf {
    let path = atlas::defaults::default_model();
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh first",
        path.display()
    );
    path
}

/// The bundled photographs, fetched by `scripts/setup.sh`.
pub fn assets() -> PathBuf {
    let path = atlas::defaults::default_images();
    assert!(
        path.is_dir(),
        "{} is missing: run scripts/setup.sh first",
        path.display()
    );
    path
}

/// The project's Python (with torch), for the independent references.
pub fn python() -> PathBuf {
    atlas::defaults::project_dir().join(".venv/bin/python")
}

/// `ATLAS_DATA`, the real-data tier's folder; `None` means the tier is skipped. A value that is not
/// a folder is an error, so a misconfigured CI cannot silently skip it.
pub fn atlas_data() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("ATLAS_DATA")?);
    assert!(
        dir.is_dir(),
        "ATLAS_DATA={} is not a directory",
        dir.display()
    );
    Some(dir)
}

/// A fresh, empty scratch folder for one test (`atlas-test-<name>-<random>` in the temp folder),
/// removed when it goes out of scope, also when the test fails. With `ATLAS_KEEP_TEST_DIRS` set
/// it is kept, for a look afterwards.
pub fn scratch(name: &str) -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix(&format!("atlas-test-{name}-"))
        .disable_cleanup(keep_test_dirs())
        .tempdir()
        .unwrap();
    Scratch(dir)
}

/// Whether the tests keep their folders (`ATLAS_KEEP_TEST_DIRS` is set).
pub fn keep_test_dirs() -> bool {
    std::env::var_os("ATLAS_KEEP_TEST_DIRS").is_some()
}

/// A test's scratch folder; it derefs to its path, so `dir.join(..)` and `&dir` work as on a
/// `PathBuf`.
pub struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

/// Copies the folder `from` to `to` (replaced if it exists), subfolders included.
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), &dst).unwrap();
        }
    }
}

/// Sets an environment variable of this process until the returned guard is dropped, then
/// restores its old value, so that it does not leak into the tests that run after this one in
/// the same binary. (Tests run one at a time: see `main.rs`.)
pub fn set_env_var(name: &'static str, value: &str) -> EnvVarGuard {
    let old = std::env::var_os(name);
    std::env::set_var(name, value);
    EnvVarGuard { name, old }
}

pub struct EnvVarGuard {
    name: &'static str,
    old: Option<std::ffi::OsString>,
}

impl Drop for EnvVarGuard {
    fn drop(&mut self) {
        match &self.old {
            Some(v) => std::env::set_var(self.name, v),
            None => std::env::remove_var(self.name),
        }
    }
}

/// Every image file under `dir`, sorted.
pub fn image_files(dir: &Path) -> Vec<PathBuf> {
    atlas::data::scan_folder(dir)
        .unwrap()
        .images
        .into_iter()
        .map(|e| e.path)
        .collect()
}

pub fn atlas_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_atlas"))
}

/// `atlas collect --model <embedded> --images <bundled> --out OUT` on the CPU, for the caller to
/// add its flags. Byte-identical runs are claimed on the CPU, where the computation is
/// deterministic (cuDNN's backward passes are not).
pub fn collect_bundled(out: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(atlas_bin());
    cmd.env("ATLAS_DEVICE", "cpu")
        .arg("collect")
        .arg("--model")
        .arg(model())
        .arg("--images")
        .arg(assets())
        .arg("--out")
        .arg(out);
    cmd
}

/// Runs the `atlas` command line with `args`; fails with its stderr unless it succeeds, and
/// returns its stdout.
pub fn atlas_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(atlas_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "atlas {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs the independent PyTorch reference (`tests/reference/attribution_ref.py`: the eager model
/// rebuilt from the sidecar, forward-mode AD) on an input batch `[n,3,h,w]` and the given
/// `{"image", "layer", "y", "x"}` entries; returns its attribution rows `[entries, K]`.
pub fn attribution_reference(
    model: &Path,
    pixels: &[f32],
    shape: [usize; 4],
    entries: Vec<serde_json::Value>,
    dir: &Path,
) -> atlas::store::npy::Matrix {
    use atlas::store::npy;
    npy::write_nd(&dir.join("input.npy"), pixels, &shape, npy::Dtype::F32).unwrap();
    std::fs::write(
        dir.join("positions.json"),
        serde_json::Value::Array(entries).to_string(),
    )
    .unwrap();
    run_reference(
        "attribution_ref.py",
        &[
            "--model".as_ref(),
            model.as_os_str(),
            "--tensor".as_ref(),
            dir.join("input.npy").as_os_str(),
            "--positions".as_ref(),
            dir.join("positions.json").as_os_str(),
            "--out".as_ref(),
            dir.join("ref.npy").as_os_str(),
        ],
    );
    npy::read(&dir.join("ref.npy")).unwrap()
}

/// Runs `tests/reference/<script>` with the venv's Python; panics with its stderr on failure.
pub fn run_reference(script: &str, args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new(python())
        .arg(
            atlas::defaults::project_dir()
                .join("tests/reference")
                .join(script),
        )
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `per_class` images of every class folder of `root`, symlinked into a scratch
/// folder `name` with the same class folders.
pub fn class_subset(root: &Path, name: &str, per_class: usize) -> Scratch {
    let subset = scratch(name);
    let mut classes: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    classes.sort();
    for class in &classes {
        let dst = subset.join(class.file_name().unwrap());
        std::fs::create_dir_all(&dst).unwrap();
        for img in image_files(class).into_iter().take(per_class) {
            std::os::unix::fs::symlink(&img, dst.join(img.file_name().unwrap())).unwrap();
        }
    }
    subset
}

/// Max over rows of max|a − b| / max|b|: elementwise ratios mean nothing for near-zero classes.
pub fn max_row_relative_error(a: &[f32], b: &[f32], k: usize) -> f32 {
    assert_eq!(a.len(), b.len(), "different numbers of values");
    a.chunks(k)
        .zip(b.chunks(k))
        .map(|(ra, rb)| {
            let scale = rb.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
            ra.iter()
                .zip(rb)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
                / scale
        })
        .fold(0f32, f32::max)
}

/// The first `n` bundled images, squashed to the model's input size: the pixels `[n,3,h,w]` (to
/// hand to the Python reference) and the same as a tensor.
pub fn bundled_batch(model: &atlas::model::AtlasModel, n: usize) -> (Vec<f32>, tch::Tensor) {
    use atlas::data::{load_rgb, to_chw_f32, Preprocess};
    let (w, h) = model.info.size();
    let pixels: Vec<f32> = image_files(&assets())
        .iter()
        .take(n)
        .flat_map(|f| to_chw_f32(&load_rgb(f, Preprocess::Squash, (w, h)).unwrap()))
        .collect();
    let x = tch::Tensor::from_slice(&pixels).reshape([n as i64, 3, h as i64, w as i64]);
    (pixels, x)
}

/// Tolerance for model outputs on `device` compared with a CPU reference, or with the same
/// computation in another batch: `cpu` on the CPU (libtorch agrees with itself and with PyTorch
/// to float rounding there); on CUDA at least 2e-3, since cuDNN picks algorithms per shape and
/// may use TF32 for convolutions.
pub fn device_tolerance(device: tch::Device, cpu: f32) -> f32 {
    if device.is_cuda() {
        cpu.max(2e-3)
    } else {
        cpu
    }
}

/// Classes ordered by how many rows of `attr` (`[rows, classes]` attributions) they win, most
/// first (ties by class index), and each class's number of wins.
pub fn classes_by_wins(attr: &atlas::store::npy::Matrix) -> (Vec<usize>, Vec<usize>) {
    let k = attr.cols;
    let mut wins = vec![0usize; k];
    for r in 0..attr.rows {
        wins[atlas::classes::select::argmax(attr.row(r))] += 1;
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| wins[b].cmp(&wins[a]).then(a.cmp(&b)));
    (order, wins)
}
