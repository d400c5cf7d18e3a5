//! Where the embedded defaults live: the EfficientNet-Lite0 export and the bundled photographs,
//! both produced by `scripts/setup.sh` inside the project folder.
use std::path::PathBuf;

/// The project folder (compile-time), so the binary finds its defaults from any working directory.
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$ATLAS_MODEL`, else `models/efficientnet-lite0.pt` of the project.
pub fn default_model() -> PathBuf {
    std::env::var_os("ATLAS_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_dir().join("models").join("efficientnet-lite0.pt"))
}

/// `assets/images` of the project: the bundled photographs.
pub fn default_images() -> PathBuf {
    project_dir().join("assets").join("images")
}

/// Where the app keeps its runs unless told otherwise.
pub fn default_runs_dir() -> PathBuf {
    project_dir().join("runs")
}
