//! The result of a batch attack: one row per patch, as CSV (written atomically) or as text.
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::Corner;
use crate::data::Problem;
use crate::store::{atomic, csv_io};

/// A class by logit index and name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassName {
    pub index: usize,
    pub name: String,
}

/// What a row describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowKind {
    /// A photo patch.
    Patch,
    /// The uniform-noise control patch.
    Noise,
    /// All photo patches together (noise excluded): flips and denominators summed over the
    /// patches, probabilities averaged over them (the paper's viewer totals, spec §8.3).
    Total,
}

impl RowKind {
    fn label(self) -> &'static str {
        match self {
            RowKind::Patch => "patch",
            RowKind::Noise => "noise",
            RowKind::Total => "total",
        }
    }
}

/// One patch's results over the images. Every count and mean is over the images whose top-1
/// was the original class without a patch (`correct_before`), except `images_read`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchRow {
    pub kind: RowKind,
    pub patch: String,
    /// The patch alone, Lanczos-resized to the input size: its top-1 class and probability
    /// (`None` for the total row).
    pub patch_class: Option<ClassName>,
    pub patch_prob: f32,
    /// Images decoded (unreadable ones are skipped and reported as problems).
    pub images_read: usize,
    /// Images whose top-1 without a patch is the original class (summed over patches in the
    /// total row, like the paper's denominators).
    pub correct_before: usize,
    /// Of those, images whose top-1 becomes the target class at the static setting.
    pub flipped_static: usize,
    /// Of those, images whose top-1 becomes the target at one or more of the dynamic settings.
    pub flipped_dynamic: usize,
    /// Mean P(target) without the patch.
    pub p_target_before: f64,
    /// Mean P(target) at the static setting.
    pub p_target_static: f64,
    /// Mean over images of the largest P(target) over the dynamic settings.
    pub p_target_dynamic: f64,
}

impl PatchRow {
    pub fn success_static(&self) -> f64 {
        ratio(self.flipped_static, self.correct_before)
    }
    pub fn success_dynamic(&self) -> f64 {
        ratio(self.flipped_dynamic, self.correct_before)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The whole table with the settings it was made with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackTable {
    pub model: String,
    pub original: ClassName,
    pub target: ClassName,
    pub static_ratio: f64,
    pub static_corner: Corner,
    pub dynamic_ratios: Vec<f64>,
    pub dynamic_corners: Vec<Corner>,
    /// Image files listed, images decoded, images processed so far (a partial table has fewer).
    pub images_listed: usize,
    pub images_read: usize,
    pub images_done: usize,
    /// One row per patch (photo patches in the given order, then the noise control).
    pub rows: Vec<PatchRow>,
    /// Images that were skipped, with the reason.
    pub problems: Vec<Problem>,
    /// Composite images classified, and the wall time of the whole run.
    pub composites: usize,
    pub elapsed_s: f64,
}

const CSV_HEADER: &str = "kind,patch,patch_class,patch_class_name,patch_prob,original,target,\
static_setting,images_read,correct_before,flipped_static,flipped_dynamic,success_static,\
success_dynamic,p_target_before,p_target_static,p_target_dynamic";

impl AttackTable {
    /// The photo patches summed (noise excluded); `None` when there are none.
    pub fn total(&self) -> Option<PatchRow> {
        let photos: Vec<&PatchRow> = self
            .rows
            .iter()
            .filter(|r| r.kind == RowKind::Patch)
            .collect();
        if photos.is_empty() {
            return None;
        }
        let n = photos.len() as f64;
        let mean = |f: fn(&PatchRow) -> f64| photos.iter().map(|r| f(r)).sum::<f64>() / n;
        Some(PatchRow {
            kind: RowKind::Total,
            patch: format!("all {} patches", photos.len()),
            patch_class: None,
            patch_prob: 0.0,
            images_read: self.images_read,
            correct_before: photos.iter().map(|r| r.correct_before).sum(),
            flipped_static: photos.iter().map(|r| r.flipped_static).sum(),
            flipped_dynamic: photos.iter().map(|r| r.flipped_dynamic).sum(),
            p_target_before: mean(|r| r.p_target_before),
            p_target_static: mean(|r| r.p_target_static),
            p_target_dynamic: mean(|r| r.p_target_dynamic),
        })
    }

    fn static_setting(&self) -> String {
        format!("{} {}", short(self.static_ratio), self.static_corner)
    }

    /// Rows then the total row, with a header, by the rules of [`csv_io`] (a field holding a
    /// comma, a quote or a line break is quoted).
    pub fn to_csv(&self) -> String {
        let total = self.total();
        let header = CSV_HEADER.split(',').map(String::from).collect();
        let rows = self
            .rows
            .iter()
            .chain(&total)
            .map(|row| self.csv_record(row));
        let records: Vec<Vec<String>> = std::iter::once(header).chain(rows).collect();
        csv_io::to_string(records).expect("CSV of strings into memory cannot fail")
    }

    /// One row's fields, in the order of [`CSV_HEADER`].
    fn csv_record(&self, row: &PatchRow) -> Vec<String> {
        let (class, class_name) = match &row.patch_class {
            Some(c) => (c.index.to_string(), c.name.clone()),
            None => (String::new(), String::new()),
        };
        vec![
            row.kind.label().to_string(),
            row.patch.clone(),
            class,
            class_name,
            format!("{:.6}", row.patch_prob),
            self.original.name.clone(),
            self.target.name.clone(),
            self.static_setting(),
            row.images_read.to_string(),
            row.correct_before.to_string(),
            row.flipped_static.to_string(),
            row.flipped_dynamic.to_string(),
            format!("{:.6}", row.success_static()),
            format!("{:.6}", row.success_dynamic()),
            format!("{:.6}", row.p_target_before),
            format!("{:.6}", row.p_target_static),
            format!("{:.6}", row.p_target_dynamic),
        ]
    }

    /// Writes [`Self::to_csv`] atomically (temporary sibling, then rename).
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        atomic::write_bytes(path, self.to_csv().as_bytes())
    }
}

/// A ratio without float noise: 0.30000000000000004 → "0.3" (at most 4 decimals).
fn short(r: f64) -> String {
    let s = format!("{r:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl std::fmt::Display for AttackTable {
    /// A fixed-width text table for the terminal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ratios: Vec<String> = self.dynamic_ratios.iter().map(|&r| short(r)).collect();
        writeln!(
            f,
            "{}: {} ({}) → {} ({}); {} of {} images read; static {}, dynamic best of {} corners × [{}]",
            self.model,
            self.original.name,
            self.original.index,
            self.target.name,
            self.target.index,
            self.images_read,
            self.images_listed,
            self.static_setting(),
            self.dynamic_corners.len(),
            ratios.join(", ")
        )?;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<28} {:<28} {:>7} {:>17} {:>17} {:>27}",
            "patch",
            "patch alone",
            "correct",
            "static flips",
            "dynamic flips",
            "P(target) before→stat/dyn"
        );
        for row in self.rows.iter().cloned().chain(self.total()) {
            let alone = match &row.patch_class {
                Some(c) => format!("{} {}", c.name, pct(f64::from(row.patch_prob))),
                None => String::new(),
            };
            let _ = writeln!(
                s,
                "{:<28} {:<28} {:>7} {:>17} {:>17} {:>27}",
                truncate(&row.patch, 28),
                truncate(&alone, 28),
                row.correct_before,
                format!("{} ({})", row.flipped_static, pct(row.success_static())),
                format!("{} ({})", row.flipped_dynamic, pct(row.success_dynamic())),
                format!(
                    "{} → {} / {}",
                    pct(row.p_target_before),
                    pct(row.p_target_static),
                    pct(row.p_target_dynamic)
                ),
            );
        }
        f.write_str(&s)
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: RowKind, name: &str, correct: usize, fs: usize, fd: usize, p: f64) -> PatchRow {
        PatchRow {
            kind,
            patch: name.into(),
            patch_class: Some(ClassName {
                index: 3,
                name: "steam locomotive, train".into(),
            }),
            patch_prob: 0.9,
            images_read: 10,
            correct_before: correct,
            flipped_static: fs,
            flipped_dynamic: fd,
            p_target_before: 0.01,
            p_target_static: p,
            p_target_dynamic: p + 0.1,
        }
    }

    fn table() -> AttackTable {
        AttackTable {
            model: "m".into(),
            original: ClassName {
                index: 1,
                name: "snorkel".into(),
            },
            target: ClassName {
                index: 2,
                name: "scuba diver".into(),
            },
            static_ratio: 0.4,
            static_corner: Corner::TopLeft,
            dynamic_ratios: vec![0.2, 0.4],
            dynamic_corners: Corner::ALL.to_vec(),
            images_listed: 10,
            images_read: 10,
            images_done: 10,
            rows: vec![
                row(RowKind::Patch, "a", 8, 2, 4, 0.2),
                row(RowKind::Patch, "b", 8, 6, 8, 0.4),
                row(RowKind::Noise, "noise", 8, 0, 1, 0.0),
            ],
            problems: vec![],
            composites: 0,
            elapsed_s: 0.0,
        }
    }

    #[test]
    fn total_sums_flips_and_averages_probabilities_without_noise() {
        let t = table().total().unwrap();
        assert_eq!((t.correct_before, t.flipped_static), (16, 8));
        assert_eq!(t.flipped_dynamic, 12);
        assert!((t.success_static() - 0.5).abs() < 1e-12);
        assert!((t.p_target_static - 0.3).abs() < 1e-12);
    }

    #[test]
    fn csv_has_a_row_per_patch_plus_total_and_quotes_commas() {
        let csv = table().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + 3 + 1);
        assert_eq!(lines[0], CSV_HEADER);
        assert!(lines[1].starts_with("patch,a,3,\"steam locomotive, train\",0.900000,snorkel,"));
        assert!(lines[1].ends_with(",8,2,4,0.250000,0.500000,0.010000,0.200000,0.300000"));
        assert!(lines[3].starts_with("noise,noise,"));
        assert!(lines[4].starts_with("total,all 2 patches,,,"));
        let cols = CSV_HEADER.split(',').count();
        assert_eq!(lines[4].split(',').count(), cols);
    }

    /// A table as the hand-written writer made it before the `csv` crate (the first two lines
    /// of screenshots/attack-snorkel-scuba.csv, by `atlas attack-batch`); the format is kept.
    #[test]
    fn csv_format_is_unchanged() {
        let mut t = table();
        t.rows = vec![PatchRow {
            kind: RowKind::Patch,
            patch: "exemplar-50".into(),
            patch_class: Some(ClassName {
                index: 5,
                name: "electric ray".into(),
            }),
            patch_prob: 0.142292,
            images_read: 1,
            correct_before: 1,
            flipped_static: 0,
            flipped_dynamic: 0,
            p_target_before: 0.015990,
            p_target_static: 0.023792,
            p_target_dynamic: 0.028444,
        }];
        let csv = t.to_csv();
        let old = "kind,patch,patch_class,patch_class_name,patch_prob,original,target,\
                   static_setting,images_read,correct_before,flipped_static,flipped_dynamic,\
                   success_static,success_dynamic,p_target_before,p_target_static,\
                   p_target_dynamic\n\
                   patch,exemplar-50,5,electric ray,0.142292,snorkel,scuba diver,0.4 top-left,\
                   1,1,0,0,0.000000,0.000000,0.015990,0.023792,0.028444\n";
        assert!(csv.starts_with(old), "{csv}");
    }

    #[test]
    fn awkward_patch_names_round_trip() {
        let mut t = table();
        let name = "a,b \"c\"\r\nd";
        t.rows[0].patch = name.into();
        let records: Vec<csv_io::StringRecord> = csv_io::reader(t.to_csv().as_bytes())
            .records()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 1 + 3 + 1);
        assert_eq!(&records[1][1], name);
        assert!(records.iter().all(|r| r.len() == 17));
    }
}
