//! Shared helpers of the integration tests.
#![allow(dead_code)]
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

/// A fresh, empty scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
