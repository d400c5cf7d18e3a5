//! Walk an image folder and list the images in it, without decoding them.
//!
//! Labels come from the folder layout used by torchvision's `ImageFolder`: `root/<label>/...`.
//! Files are recognized by their first bytes, not their extension, because real folders contain
//! `.jpg` files that are really PNGs (fine) and `.jpg` files that are really HTML error pages
//! (not fine). Anything odd becomes a [`Problem`] the user can see, instead of an error that
//! stops the scan.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// One image found by the scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// Path as reached from the root (through symlinks, not resolved), so it stays readable.
    pub path: PathBuf,
    /// Name of the first-level subfolder under the root; `None` for files directly in the root.
    pub label: Option<String>,
}

/// Something the scan skipped, with a reason meant for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: PathBuf,
    pub reason: String,
}

/// Result of [`scan_folder`]: both lists are sorted by path, so scans are reproducible.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    pub images: Vec<ImageEntry>,
    pub problems: Vec<Problem>,
}

/// Enough leading bytes for `image::guess_format` (its longest signature is 16 bytes).
const SNIFF_BYTES: usize = 32;

/// Recursively scan `root` for images.
///
/// Only a missing or non-folder root is an error; everything below it (unreadable folders,
/// broken symlinks, non-images) is reported in [`ScanReport::problems`]. Symlinked folders are
/// followed, but each real folder is scanned once, so `dir/link -> ..` cannot loop.
/// Hidden entries (name starting with '.') are skipped silently, like most file browsers do.
pub fn scan_folder(root: &Path) -> anyhow::Result<ScanReport> {
    let meta = fs::metadata(root)
        .with_context(|| format!("image folder {} does not exist", root.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a folder", root.display());
    }
    let mut walk = Walk::default();
    walk.visit_dir(root, None);
    // The walk visits children in sorted order already; sorting again makes the guarantee
    // independent of traversal details (Path's ordering is component-wise).
    walk.report.images.sort_by(|a, b| a.path.cmp(&b.path));
    walk.report.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(walk.report)
}

#[derive(Default)]
struct Walk {
    report: ScanReport,
    /// Canonical paths of folders already scanned: the loop guard.
    visited: HashSet<PathBuf>,
}

impl Walk {
    fn problem(&mut self, path: &Path, reason: impl Into<String>) {
        self.report.problems.push(Problem {
            path: path.to_path_buf(),
            reason: reason.into(),
        });
    }

    /// Scan one folder. `label` is `None` only for the root itself.
    fn visit_dir(&mut self, dir: &Path, label: Option<&str>) {
        // Canonicalizing resolves every symlink, so a link back to an ancestor (or a second
        // link to the same folder) maps to a path we have already seen.
        match fs::canonicalize(dir) {
            Ok(real) => {
                if !self.visited.insert(real.clone()) {
                    let reason = format!(
                        "folder skipped: it is a link to {}, which is already scanned \
                         (symlink loop or duplicate link)",
                        real.display()
                    );
                    self.problem(dir, reason);
                    return;
                }
            }
            Err(e) => return self.problem(dir, format!("cannot resolve folder: {e}")),
        }
        let entries = match fs::read_dir(dir) {
            Ok(it) => it,
            Err(e) => return self.problem(dir, format!("cannot read folder: {e}")),
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => names.push(e.file_name()),
                Err(e) => self.problem(dir, format!("cannot list folder entry: {e}")),
            }
        }
        names.sort();
        for name in names {
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = dir.join(&name);
            // A file directly in the root has no label; anything deeper inherits the label of
            // its first-level folder.
            let child_label = label.map(str::to_owned);
            self.visit_entry(&path, child_label, &name.to_string_lossy());
        }
    }

    fn visit_entry(&mut self, path: &Path, label: Option<String>, name: &str) {
        // `fs::metadata` follows symlinks, which is what we want for both files and folders.
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
                let reason = if is_link {
                    format!("broken symlink: {e}")
                } else {
                    format!("cannot read: {e}")
                };
                return self.problem(path, reason);
            }
        };
        if meta.is_dir() {
            // Entering a first-level folder: its name becomes the label below it.
            let label = label.unwrap_or_else(|| name.to_owned());
            self.visit_dir(path, Some(&label));
        } else if meta.is_file() {
            match sniff(path, meta.len()) {
                Ok(()) => self.report.images.push(ImageEntry {
                    path: path.to_path_buf(),
                    label,
                }),
                Err(reason) => self.problem(path, reason),
            }
        } else {
            // FIFOs, sockets, devices: opening a FIFO would block forever, so never touch them.
            self.problem(path, "not a regular file");
        }
    }
}

/// Decide from the first bytes whether a file is an image we can decode.
/// Returns the reason it is not, for the problems list.
pub(crate) fn sniff(path: &Path, len: u64) -> Result<(), String> {
    if len == 0 {
        return Err("empty file".into());
    }
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    fs::File::open(path)
        .and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut head))
        .map_err(|e| format!("cannot read file: {e}"))?;
    if head.is_empty() {
        // The length changed under us (or a special file reported a size): same outcome.
        return Err("empty file".into());
    }
    match image::guess_format(&head) {
        Ok(format) if format.reading_enabled() => Ok(()),
        Ok(format) => Err(format!(
            "unsupported image format ({format:?}): this build cannot decode it"
        )),
        Err(_) => Err("not an image (unrecognized content)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty temp folder unique to this test.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("atlas-scan-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn png_bytes() -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(2, 2)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn labels_order_and_problems() {
        let root = temp_dir("labels");
        fs::create_dir_all(root.join("cats/deeper")).unwrap();
        fs::create_dir_all(root.join("dogs")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        let png = png_bytes();
        // Extension lies on purpose: content decides.
        fs::write(root.join("dogs/b.jpg"), &png).unwrap();
        fs::write(root.join("dogs/a.png"), &png).unwrap();
        fs::write(root.join("cats/deeper/c.dat"), &png).unwrap();
        fs::write(root.join("top.png"), &png).unwrap();
        fs::write(root.join(".hidden.png"), &png).unwrap();
        fs::write(root.join(".git/x.png"), &png).unwrap();
        fs::write(root.join("notes.txt"), b"hello").unwrap();
        fs::write(root.join("empty.jpg"), b"").unwrap();

        let report = scan_folder(&root).unwrap();
        let got: Vec<(String, Option<&str>)> = report
            .images
            .iter()
            .map(|e| {
                let rel = e.path.strip_prefix(&root).unwrap();
                (rel.display().to_string(), e.label.as_deref())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("cats/deeper/c.dat".into(), Some("cats")),
                ("dogs/a.png".into(), Some("dogs")),
                ("dogs/b.jpg".into(), Some("dogs")),
                ("top.png".into(), None),
            ]
        );
        let reasons: Vec<(String, &str)> = report
            .problems
            .iter()
            .map(|p| {
                (
                    p.path.file_name().unwrap().to_string_lossy().into(),
                    p.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("empty.jpg".into(), "empty file"),
                ("notes.txt".into(), "not an image (unrecognized content)"),
            ]
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_root_and_file_root_are_errors() {
        let root = temp_dir("missing");
        let err = scan_folder(&root.join("nope")).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        fs::write(root.join("f.png"), png_bytes()).unwrap();
        let err = scan_folder(&root.join("f.png")).unwrap_err().to_string();
        assert!(err.contains("is not a folder"), "{err}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_followed_without_looping() {
        use std::os::unix::fs::symlink;
        let root = temp_dir("links");
        let outside = temp_dir("links-outside");
        fs::write(outside.join("o.png"), png_bytes()).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("a/x.png"), png_bytes()).unwrap();
        symlink("..", root.join("a/up")).unwrap(); // loop back to the root
        symlink(&outside, root.join("ext")).unwrap(); // followed: label "ext"
        symlink(root.join("missing"), root.join("dangling.png")).unwrap();

        let report = scan_folder(&root).unwrap();
        let labels: Vec<_> = report.images.iter().map(|e| e.label.clone()).collect();
        assert_eq!(labels, vec![Some("a".to_string()), Some("ext".to_string())]);
        assert!(report
            .problems
            .iter()
            .any(|p| p.path.ends_with("a/up") && p.reason.contains("already scanned")));
        assert!(report
            .problems
            .iter()
            .any(|p| p.path.ends_with("dangling.png") && p.reason.starts_with("broken symlink")));
        fs::remove_dir_all(&root).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }
}
