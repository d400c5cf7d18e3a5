//! Recent projects (model + image folder), newest first, kept in `runs/recent.json` and written
//! atomically. A project's runs and atlases live in its own folder, so reopening one only has to
//! find them again.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::atomic;

const KEEP: usize = 12;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentProject {
    pub model: PathBuf,
    pub images: PathBuf,
}

/// `recent.json` of the runs folder `runs_root`, unless `ATLAS_RECENT` names another file.
pub fn recent_file_in(runs_root: &Path) -> PathBuf {
    std::env::var_os("ATLAS_RECENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| runs_root.join("recent.json"))
}

/// The list; a missing or unreadable file is an empty list (it is only a convenience).
pub fn load(path: &Path) -> Vec<RecentProject> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Moves `project` to the front and saves; returns the new list.
pub fn remember(path: &Path, project: RecentProject) -> Vec<RecentProject> {
    let mut list = load(path);
    list.retain(|p| *p != project);
    list.insert(0, project);
    list.truncate(KEEP);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(text) = serde_json::to_string_pretty(&list) {
        let _ = atomic::write_bytes(path, text.as_bytes());
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_without_duplicates() {
        let dir = std::env::temp_dir().join(format!("atlas-recent-{}", std::process::id()));
        let file = dir.join("recent.json");
        let p = |i: u32| RecentProject {
            model: PathBuf::from("m.pt"),
            images: PathBuf::from(format!("folder{i}")),
        };
        remember(&file, p(1));
        remember(&file, p(2));
        let list = remember(&file, p(1));
        assert_eq!(list, vec![p(1), p(2)]);
        assert_eq!(load(&file), list);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
