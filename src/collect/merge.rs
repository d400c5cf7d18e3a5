//! `atlas merge`: the run folder of N shards (`atlas collect --shard i/N`), byte for byte the
//! folder an unsharded collection writes.
//!
//! Every shard keeps its saved chunks; the merge checks that the shards belong together (same
//! settings and image list, every index of `0..N` once, every chunk saved) and then writes the
//! final files of all chunks with the code an unsharded run finalizes with
//! ([`RunFolder::write_results`]). Each file is written atomically and the manifest last, so a
//! killed merge leaves a folder without `run.json` that a rerun overwrites.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use crate::store::atomic;

use super::run_folder::{RunFolder, RunManifest, FORMAT, SHARD_COMPLETE};
use super::shard::Shard;

/// The files that hold a run's fixed image list; every shard has the same bytes.
const IMAGE_LIST_FILES: [&str; 2] = ["images.csv", "scan-problems.csv"];

/// One shard's folder as the merge reads it.
struct ShardFolder {
    dir: PathBuf,
    manifest: RunManifest,
    shard: Shard,
}

impl ShardFolder {
    fn open(dir: &Path) -> Result<Self> {
        let manifest = RunFolder::new(dir).read_manifest()?.with_context(|| {
            format!("{} is not a run folder (it has no run.json)", dir.display())
        })?;
        let shard = manifest.shard.with_context(|| {
            format!(
                "{} is a whole run, not a shard (it was collected without --shard)",
                dir.display()
            )
        })?;
        ensure!(
            manifest.format == FORMAT,
            "{} has format {:?}; shards of format {FORMAT:?} only can be merged",
            dir.display(),
            manifest.format
        );
        Ok(ShardFolder {
            dir: dir.to_path_buf(),
            manifest,
            shard,
        })
    }
}

/// Merges the shard folders `dirs` (any order) into the run folder `out`, which must not hold a
/// run yet. Returns the merged manifest.
pub fn merge_shards(out: &Path, dirs: &[PathBuf]) -> Result<RunManifest> {
    ensure!(!dirs.is_empty(), "no shard folders given");
    let shards: Vec<ShardFolder> = dirs
        .iter()
        .map(|d| ShardFolder::open(d))
        .collect::<Result<_>>()?;
    check_same_settings(&shards)?;
    let by_index = check_every_shard_once(&shards)?;
    // Before completeness: a shard of another image list has other chunks.
    let image_list = same_image_list(&shards)?;
    let chunks = all_chunks(&by_index)?;
    let first = by_index[0];

    let run = RunFolder::new(out);
    if run.manifest_path().exists() {
        bail!(
            "{} already holds a run; choose another output folder (or delete it)",
            out.display()
        );
    }
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    atomic::remove_stale_temps(out)?;
    for (file, bytes) in IMAGE_LIST_FILES.iter().zip(&image_list) {
        atomic::write_bytes(&out.join(file), bytes)?;
    }
    let mut manifest = RunManifest {
        status: "collecting".into(),
        layers: vec![],
        images_done: 0,
        problems: 0,
        shard: None,
        ..first.manifest.clone()
    };
    let channels: Vec<usize> = first.manifest.layers.iter().map(|l| l.channels).collect();
    for layer in &manifest.settings.layers {
        atomic::remove_stale_temps(&run.layer_dir(layer))?;
    }
    run.write_results(&chunks, &mut manifest, &channels)?;
    Ok(manifest)
}

/// Every shard was collected with the first one's settings, model classes and shard count.
fn check_same_settings(shards: &[ShardFolder]) -> Result<()> {
    let first = &shards[0];
    for other in &shards[1..] {
        let mut differences = settings_differences(&first.manifest, &other.manifest)?;
        if other.shard.count != first.shard.count {
            differences.push(format!(
                "shard count: {} vs {}",
                first.shard.count, other.shard.count
            ));
        }
        if other.manifest.class_names != first.manifest.class_names {
            differences.push("the model's classes".into());
        }
        if !differences.is_empty() {
            bail!(
                "the shards were collected with different settings, so they cannot be merged: \
                 {} vs {}: {}",
                first.dir.display(),
                other.dir.display(),
                differences.join("; ")
            );
        }
    }
    Ok(())
}

/// The settings (model, layers, seed, positions per image, …) in which two manifests differ, as
/// "name: a vs b".
fn settings_differences(a: &RunManifest, b: &RunManifest) -> Result<Vec<String>> {
    let fields = |m: &RunManifest| -> Result<serde_json::Map<String, serde_json::Value>> {
        match serde_json::to_value(&m.settings)? {
            serde_json::Value::Object(map) => Ok(map),
            _ => bail!("run settings are not a JSON object"),
        }
    };
    let (fa, fb) = (fields(a)?, fields(b)?);
    let mut out = vec![];
    for (name, va) in &fa {
        let vb = fb.get(name).unwrap_or(&serde_json::Value::Null);
        if va != vb {
            out.push(format!("{name}: {va} vs {vb}"));
        }
    }
    Ok(out)
}

/// The shards ordered by index, when every index of `0..N` is there exactly once.
fn check_every_shard_once(shards: &[ShardFolder]) -> Result<Vec<&ShardFolder>> {
    let count = shards[0].shard.count;
    let mut by_index: BTreeMap<usize, &ShardFolder> = BTreeMap::new();
    for s in shards {
        if let Some(earlier) = by_index.insert(s.shard.index, s) {
            bail!(
                "shard {} is given twice: {} and {}",
                s.shard,
                earlier.dir.display(),
                s.dir.display()
            );
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !by_index.contains_key(i))
        .map(|index| Shard { index, count }.to_string())
        .collect();
    if !missing.is_empty() {
        let plural = missing.len() > 1;
        bail!(
            "missing shard{} {}: collect {} with `atlas collect --shard i/{count}` and the same \
             settings, and give every shard's folder to merge",
            if plural { "s" } else { "" },
            missing.join(", "),
            if plural { "them" } else { "it" }
        );
    }
    Ok(by_index.into_values().collect())
}

/// The chunk folders of every shard in chunk order, when each shard is complete: it says so, and
/// it holds exactly the chunks of its range.
fn all_chunks(by_index: &[&ShardFolder]) -> Result<Vec<PathBuf>> {
    let settings = &by_index[0].manifest.settings;
    let num_chunks = by_index[0]
        .manifest
        .num_images
        .div_ceil(settings.chunk_images);
    let mut chunks = vec![];
    for s in by_index {
        let folder = RunFolder::new(&s.dir);
        let saved = folder.saved_chunks()?;
        let expected = s.shard.chunks(num_chunks);
        let have = expected.clone().filter(|c| saved.contains(c)).count();
        if s.manifest.status != SHARD_COMPLETE || have != expected.len() {
            bail!(
                "shard {} in {} is incomplete ({have} of its {} chunks saved): rerun its \
                 `atlas collect --shard {}` with the same settings to finish it, then merge",
                s.shard,
                s.dir.display(),
                expected.len(),
                s.shard
            );
        }
        if let Some(stray) = saved.iter().find(|c| !expected.contains(c)) {
            bail!(
                "{} holds chunk {stray}, which is not one of shard {}'s chunks {}..{}",
                s.dir.display(),
                s.shard,
                expected.start,
                expected.end
            );
        }
        chunks.extend(expected.map(|c| folder.chunk_dir(c)));
    }
    Ok(chunks)
}

/// The bytes of the image list files, when every shard has the same ones (the same images in
/// the same order: the same folder, its content unchanged, and the same `--limit`).
fn same_image_list(shards: &[ShardFolder]) -> Result<Vec<Vec<u8>>> {
    let read = |s: &ShardFolder| -> Result<Vec<Vec<u8>>> {
        IMAGE_LIST_FILES
            .iter()
            .map(|file| {
                let path = s.dir.join(file);
                fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
            })
            .collect()
    };
    let first = read(&shards[0])?;
    for other in &shards[1..] {
        for ((file, a), b) in IMAGE_LIST_FILES.iter().zip(&first).zip(read(other)?) {
            if *a != b {
                bail!(
                    "the shards list different images ({file} differs between {} and {}): \
                     collect every shard from the same, unchanged image folder with the same \
                     --limit",
                    shards[0].dir.display(),
                    other.dir.display()
                );
            }
        }
    }
    Ok(first)
}
