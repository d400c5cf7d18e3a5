//! A run folder holding a selection of another run's rows of one layer, so that the atlas build
//! and every atlas reader (viewer, dataset examples) work on a class atlas unchanged.
use std::path::Path;

use anyhow::{ensure, Context, Result};

use crate::collect::run_folder::{RunFolder, RunManifest};
use crate::store::npy::{self, Dtype};
use crate::store::{atomic, csv_io, npy::Matrix};

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

    write_subset_provenance(source, dest, layer, rows, acts.rows)?;
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

/// The subset's `provenance.csv`: the source's records of `layer` in the order of `rows`,
/// renumbered from 0. The source must hold `layer_rows` records of the layer (its `acts.npy`
/// rows).
fn write_subset_provenance(
    source: &Path,
    dest: &Path,
    layer: &str,
    rows: &[usize],
    layer_rows: usize,
) -> Result<()> {
    let prov_path = source.join("provenance.csv");
    let mut records = csv_io::open(&prov_path)?.into_records();
    let read_error = || format!("reading {}", prov_path.display());
    let header = records
        .next()
        .transpose()
        .with_context(read_error)?
        .with_context(|| format!("{} is empty", prov_path.display()))?;
    let mut layer_records = Vec::with_capacity(layer_rows);
    for record in records {
        let record = record.with_context(read_error)?;
        if record.get(1) == Some(layer) {
            layer_records.push(record);
        }
    }
    ensure!(
        layer_records.len() == layer_rows,
        "{} has {} rows of layer {layer:?}, its acts.npy has {layer_rows}",
        prov_path.display(),
        layer_records.len(),
    );
    csv_io::write_file(&dest.join("provenance.csv"), |w| {
        w.write_record(&header)?;
        for (i, &r) in rows.iter().enumerate() {
            let number = i.to_string();
            let rest = layer_records[r].iter().skip(1);
            w.write_record(std::iter::once(number.as_str()).chain(rest))?;
        }
        Ok(())
    })
}
