//! Runs of the bundled images, collected with the CLI (`atlas collect`) once per process and
//! shared: most tests only read their run, and a collection costs seconds to half a minute.
//! A test that writes into its run (the app puts atlases and class atlases there) gets a copy.
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// What `atlas collect` takes from the bundled images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BundledRun {
    /// Comma-separated, as `--layers` takes them.
    pub layers: &'static str,
    /// Positions per image (`--samples`).
    pub samples: usize,
    /// The first `limit` images (`--limit`); `None`: all of them.
    pub limit: Option<usize>,
}

impl BundledRun {
    /// The run, collected on first use in this process. Only read it: other tests share it.
    pub fn shared(self) -> &'static Path {
        static RUNS: OnceLock<Mutex<HashMap<BundledRun, &'static Path>>> = OnceLock::new();
        // Held while collecting, so that two threads never collect the same run; a failed
        // collection (a panic) caches nothing and the next test tries again.
        let mut runs = RUNS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(run) = runs.get(&self) {
            return run;
        }
        let run: &'static Path = Box::leak(self.folder_name().into_boxed_path());
        self.collect_into(run);
        runs.insert(self, run);
        run
    }

    /// A copy of the shared run at `dest`, for a test that writes into its run.
    pub fn copy_to(self, dest: &Path) {
        super::copy_dir(self.shared(), dest);
    }

    fn folder_name(self) -> PathBuf {
        let limit = self.limit.map_or("all".to_string(), |n| n.to_string());
        process_dir().join(format!(
            "run-{}-{}-{limit}",
            self.layers.replace(',', "+"),
            self.samples
        ))
    }

    fn collect_into(self, run: &Path) {
        let mut cmd = Command::new(super::atlas_bin());
        cmd.args(["collect", "--layers", self.layers])
            .args(["--samples", &self.samples.to_string()]);
        if let Some(n) = self.limit {
            cmd.args(["--limit", &n.to_string()]);
        }
        let out = cmd
            .arg("--images")
            .arg(super::assets())
            .arg("--model")
            .arg(super::model())
            .arg("--out")
            .arg(run)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "atlas collect of {self:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A folder for what the tests of this process share (collected runs, fixtures), which lives as
/// long as the process. Statics are never dropped, so it cannot be removed when the process ends;
/// instead the process holds a lock on `<folder>.lock` while it runs, and the next test process
/// removes every folder whose lock is free. With `ATLAS_KEEP_TEST_DIRS` set nothing is removed.
pub fn process_dir() -> &'static Path {
    static DIR: OnceLock<(PathBuf, File)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let root = std::env::temp_dir().join("atlas-test-shared");
        std::fs::create_dir_all(&root).unwrap();
        if !super::keep_test_dirs() {
            remove_abandoned(&root);
        }
        // Locked before it gets the `.lock` name that the sweep looks at, so that no other
        // process ever finds it unlocked.
        let locking = tempfile::Builder::new()
            .prefix("p")
            .suffix(".locking")
            .tempfile_in(&root)
            .unwrap();
        locking.as_file().lock().unwrap();
        let (lock, locking_path) = locking.keep().unwrap();
        let dir = locking_path.with_extension("");
        std::fs::rename(&locking_path, dir.with_extension("lock")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        (dir, lock)
    })
    .0
}

/// Removes the shared folders of test processes that have ended (their lock is free).
fn remove_abandoned(root: &Path) {
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let lock_path = entry.path();
        if lock_path.extension() != Some("lock".as_ref()) {
            continue;
        }
        let Ok(lock) = File::open(&lock_path) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(lock_path.with_extension(""));
            let _ = std::fs::remove_file(&lock_path);
        }
    }
}
