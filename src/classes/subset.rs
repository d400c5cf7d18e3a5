//! A run folder holding a selection of another run's rows of one layer, so that the atlas build
//! and every atlas reader (viewer, dataset examples) work on a class atlas unchanged.
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{ensure, Context, Result};

use crate::collect::run_folder::{RunFolder, RunManifest};
use crate::store::npy::{self, Dtype};
use crate::store::{atomic, npy::Matrix};

/// FNV-1a over bytes: a stable content key for cache files (not cryptographic).
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Key of a selection: the source run, its layer and row count, and the selected rows.
pub fn selection_key(source: &Path, layer: &str, total_rows: usize, rows: &[usize]) -> String {
    let h = fnv1a(rows.iter().flat_map(|r| (*r as u64).to_le_bytes()));
    format!(
        "{}:{layer}:{total_rows}:{}:{h:016x}",
        source.display(),
        rows.len()
    )
}

/// Writes `dest` as a complete run folder with only `layer`, whose row `i` is row `rows[i]` of
/// the source run (`acts.npy` as f32, `attr.npy`, `provenance.csv` renumbered; `images.csv` and
/// `predictions.csv` copied) plus `subset.json` naming the source and the rows. Skipped when
/// `dest/subset.key` already holds `key`.
#[allow(clippy::too_many_arguments)]
pub fn write_subset_run(
    source: &Path,
    manifest: &RunManifest,
    layer: &str,
    acts: &Matrix,
    attr: &Matrix,
    rows: &[usize],
    dest: &Path,
    key: &str,
) -> Result<()> {
    let key_file = dest.join("subset.key");
    let dest_run = RunFolder::new(dest);
    if std::fs::read_to_string(&key_file).is_ok_and(|k| k == key)
        && dest_run.read_manifest().ok().flatten().is_some()
    {
        return Ok(());
    }
    let summary = manifest
        .layers
        .iter()
        .find(|l| l.name == layer)
        .with_context(|| format!("the run has no layer {layer:?}"))?;
    std::fs::create_dir_all(dest.join(&summary.dir))?;
    let (c, k) = (acts.cols, attr.cols);
    let pick = |m: &Matrix, w: usize| -> Vec<f32> {
        rows.iter()
            .flat_map(|&r| m.data[r * w..(r + 1) * w].iter().copied())
            .collect()
    };
    npy::write(
        &dest.join(&summary.dir).join("acts.npy"),
        &pick(acts, c),
        rows.len(),
        c,
        Dtype::F32,
    )?;
    npy::write(
        &dest.join(&summary.dir).join("attr.npy"),
        &pick(attr, k),
        rows.len(),
        k,
        Dtype::F32,
    )?;

    // Provenance: the layer's lines of the source, in the selected order, renumbered.
    let prov_path = source.join("provenance.csv");
    let text = std::fs::read_to_string(&prov_path)
        .with_context(|| format!("cannot read {}", prov_path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let mut layer_lines: Vec<&str> = Vec::with_capacity(acts.rows);
    for line in lines {
        let f = crate::collect::run_folder::parse_csv_line(line);
        if f.get(1).map(String::as_str) == Some(layer) {
            layer_lines.push(line);
        }
    }
    ensure!(
        layer_lines.len() == acts.rows,
        "{} has {} rows of layer {layer:?}, its acts.npy has {}",
        prov_path.display(),
        layer_lines.len(),
        acts.rows
    );
    let mut out = String::with_capacity(rows.len() * 80);
    out.push_str(header);
    out.push('\n');
    for (i, &r) in rows.iter().enumerate() {
        let (_, rest) = layer_lines[r]
            .split_once(',')
            .context("malformed provenance line")?;
        let _ = writeln!(out, "{i},{rest}");
    }
    atomic::write_bytes(&dest.join("provenance.csv"), out.as_bytes())?;
    for file in ["images.csv", "predictions.csv", "problems.csv"] {
        let p = source.join(file);
        if p.is_file() {
            atomic::write_bytes(&dest.join(file), &std::fs::read(&p)?)?;
        }
    }
    let info = serde_json::json!({
        "source_run": source,
        "layer": layer,
        "source_rows": acts.rows,
        "rows": rows,
    });
    atomic::write_bytes(
        &dest.join("subset.json"),
        serde_json::to_string(&info)?.as_bytes(),
    )?;
    let mut m = manifest.clone();
    m.settings.layers = vec![layer.to_string()];
    m.settings.acts_dtype = Dtype::F32;
    let mut s = summary.clone();
    s.rows = rows.len();
    m.layers = vec![s];
    m.status = "complete".into();
    dest_run.write_manifest(&m)?;
    atomic::write_bytes(&key_file, key.as_bytes())
}
