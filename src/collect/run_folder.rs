//! The run folder: what `atlas collect` writes, in formats any tool can read.
//!
//! ```text
//! run/
//!   run.json                  manifest: settings, model, layers, status, counts
//!   images.csv                the fixed image list (index, path, label, class index)
//!   parts/000012/             one finished chunk (renamed into place atomically)
//!   layers/<layer>/acts.npy   [N, C] activations (f32 or f16)
//!   layers/<layer>/attr.npy   [N, K] attributions over all classes (f32)
//!   provenance.csv            row, layer, image index, path, label, y, x, draw
//!   predictions.csv           top-5 per image
//!   problems.csv              every skipped input and why
//! ```
//! A shard's folder (`atlas collect --shard i/N`, see [`super::shard`]) has the same manifest
//! (with its shard) and image list, and keeps its finished chunks in `parts/`: `atlas merge`
//! writes the final files of all shards' chunks at once, with the code an unsharded run uses.
//! Work is saved chunk by chunk; a chunk directory is built under a temporary name and renamed
//! when complete, so after a kill the run resumes at the first missing chunk and neither loses nor
//! duplicates rows. Sample positions depend only on (seed, image, layer, draw), so the resumed
//! rows equal those of an uninterrupted run.
use std::collections::BTreeSet;
use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::{ImageEntry, Problem};
use crate::store::{atomic, csv_io, npy, npy::Dtype};

use super::shard::Shard;

/// `/2`: positions are drawn without replacement per image and layer. `/1` runs (drawn with
/// replacement) still open for reading; they cannot be resumed, since the sampler changed.
pub const FORMAT: &str = "activation-atlas-run/2";
pub const FORMAT_V1: &str = "activation-atlas-run/1";

/// `status` of a finished run.
pub const COMPLETE: &str = "complete";
/// `status` of a shard whose chunks are all saved (it has no final files: see `atlas merge`).
pub const SHARD_COMPLETE: &str = "shard-complete";

/// The settings that define the content of a run; a resume must use the same ones.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunSettings {
    pub model_file: PathBuf,
    pub model_name: String,
    pub model_bytes: u64,
    pub images_root: PathBuf,
    pub layers: Vec<String>,
    pub samples_per_image: u32,
    pub margin: i64,
    pub seed: u64,
    pub batch_size: usize,
    pub chunk_images: usize,
    pub acts_dtype: Dtype,
    pub preprocess: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LayerSummary {
    pub name: String,
    pub dir: String,
    pub channels: usize,
    pub rows: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunManifest {
    pub format: String,
    pub settings: RunSettings,
    pub num_images: usize,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    /// "collecting" until every chunk is saved and merged, then "complete" ("shard-complete"
    /// for a shard).
    pub status: String,
    #[serde(default)]
    pub layers: Vec<LayerSummary>,
    #[serde(default)]
    pub images_done: usize,
    #[serde(default)]
    pub problems: usize,
    /// Which part of the images this folder collects; absent (and not written) for a whole run,
    /// so unsharded and merged manifests are as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// One layer's rows of one chunk.
#[derive(Default)]
pub struct ChunkLayer {
    pub acts: Vec<f32>,
    pub attr: Vec<f32>,
    /// (image index, y, x, draw) per row.
    pub rows: Vec<(usize, i64, i64, u32)>,
}

/// Everything one chunk produces.
pub struct ChunkData {
    pub index: usize,
    pub layers: Vec<ChunkLayer>,
    /// image index and its top-5 (class, probability).
    pub predictions: Vec<(usize, Vec<(usize, f32)>)>,
    pub problems: Vec<(usize, String)>,
}

/// One line of `images.csv`: path, folder label, class index of that label.
pub type ImageRecord = (PathBuf, Option<String>, Option<usize>);

pub struct RunFolder {
    pub root: PathBuf,
}

/// A file-system-safe directory name for a layer (`layer1.0.relu` → `layer1.0.relu`, `a/b` → `a_b`).
pub fn layer_dir_name(layer: &str) -> String {
    let s: String = layer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// Splits one CSV record written by the run folder (the rules of [`csv_io`]); for callers that
/// look at one line. Files are read record by record, as a quoted field may span lines.
pub fn parse_csv_line(line: &str) -> Vec<String> {
    csv_io::parse_record(line)
}

/// The `images.csv`, `provenance.csv` and `predictions.csv` fields of an image: path and label.
fn path_and_label(image: &ImageRecord) -> [String; 2] {
    let (path, label, _) = image;
    [
        path.to_string_lossy().into_owned(),
        label.clone().unwrap_or_default(),
    ]
}

impl RunFolder {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunFolder { root: root.into() }
    }
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("run.json")
    }
    fn parts_dir(&self) -> PathBuf {
        self.root.join("parts")
    }
    pub fn chunk_dir(&self, index: usize) -> PathBuf {
        self.parts_dir().join(format!("{index:06}"))
    }
    pub fn layer_dir(&self, layer: &str) -> PathBuf {
        self.root.join("layers").join(layer_dir_name(layer))
    }

    pub fn read_manifest(&self) -> Result<Option<RunManifest>> {
        let path = self.manifest_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path)?;
        let m: RunManifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a run manifest", path.display()))?;
        if m.format != FORMAT && m.format != FORMAT_V1 {
            bail!(
                "{} has format {:?}, expected {FORMAT:?}",
                path.display(),
                m.format
            );
        }
        Ok(Some(m))
    }

    pub fn write_manifest(&self, m: &RunManifest) -> Result<()> {
        atomic::write_bytes(
            &self.manifest_path(),
            serde_json::to_string_pretty(m)?.as_bytes(),
        )
    }

    /// Writes the fixed image list and the scan's problems when a run starts.
    pub fn write_image_list(
        &self,
        images: &[ImageEntry],
        classes: &[Option<usize>],
        problems: &[Problem],
    ) -> Result<()> {
        fs::create_dir_all(&self.root)?;
        csv_io::write_file(&self.root.join("images.csv"), |w| {
            w.write_record(["index", "path", "label", "class_index"])?;
            for (i, (img, class)) in images.iter().zip(classes).enumerate() {
                let label = img.label.as_deref().unwrap_or("");
                let class = class.map(|c| c.to_string()).unwrap_or_default();
                let path = img.path.to_string_lossy();
                w.write_record([i.to_string().as_str(), &path, label, &class])?;
            }
            Ok(())
        })?;
        csv_io::write_file(&self.root.join("scan-problems.csv"), |w| {
            w.write_record(["path", "reason"])?;
            for p in problems {
                w.write_record([&*p.path.to_string_lossy(), &p.reason])?;
            }
            Ok(())
        })
    }

    /// Reads back the image list: (path, label, class index).
    pub fn read_image_list(&self) -> Result<Vec<ImageRecord>> {
        let path = self.root.join("images.csv");
        ensure!(path.is_file(), "run folder has no images.csv");
        let mut out = vec![];
        for f in csv_io::read_records(&path)?.iter().skip(1) {
            if f.len() < 4 {
                bail!("images.csv has a malformed line");
            }
            let label = (!f[2].is_empty()).then(|| f[2].to_string());
            out.push((PathBuf::from(&f[1]), label, f[3].parse().ok()));
        }
        Ok(out)
    }

    /// Chunks already saved. Also removes what a killed writer left half-done.
    pub fn finished_chunks(&self) -> Result<BTreeSet<usize>> {
        let dir = self.parts_dir();
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if chunk_index(&entry.file_name().to_string_lossy()).is_none() {
                // tmp-* directories of a killed writer: their chunk is simply redone.
                let _ = fs::remove_dir_all(entry.path());
                let _ = fs::remove_file(entry.path());
            }
        }
        self.saved_chunks()
    }

    /// Chunks already saved, read only (what `atlas merge` looks at in a shard's folder).
    pub fn saved_chunks(&self) -> Result<BTreeSet<usize>> {
        let dir = self.parts_dir();
        if !dir.is_dir() {
            return Ok(BTreeSet::new());
        }
        let mut done = BTreeSet::new();
        for entry in fs::read_dir(&dir)? {
            if let Some(i) = chunk_index(&entry?.file_name().to_string_lossy()) {
                done.insert(i);
            }
        }
        Ok(done)
    }

    /// Saves one chunk: written under a temporary name, then renamed into place.
    pub fn save_chunk(&self, chunk: &ChunkData, acts_dtype: Dtype) -> Result<()> {
        let tmp = self
            .parts_dir()
            .join(format!("tmp-{:06}-{}", chunk.index, std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        for (l, data) in chunk.layers.iter().enumerate() {
            let n = data.rows.len();
            let c = data.acts.len().checked_div(n).unwrap_or(0);
            let k = data.attr.len().checked_div(n).unwrap_or(0);
            npy::write(
                &tmp.join(format!("{l}.acts.npy")),
                &data.acts,
                n,
                c,
                acts_dtype,
            )?;
            npy::write(
                &tmp.join(format!("{l}.attr.npy")),
                &data.attr,
                n,
                k,
                Dtype::F32,
            )?;
            csv_io::write_file(&tmp.join(format!("{l}.rows.csv")), |w| {
                for (img, y, x, d) in &data.rows {
                    w.write_record([img.to_string(), y.to_string(), x.to_string(), d.to_string()])?;
                }
                Ok(())
            })?;
        }
        // Predictions as "class:probability" cells separated by spaces; names are added when
        // the chunks are merged.
        csv_io::write_file(&tmp.join("predictions.csv"), |w| {
            for (img, top) in &chunk.predictions {
                let cells: Vec<String> = top.iter().map(|(c, p)| format!("{c}:{p:.6}")).collect();
                w.write_record([img.to_string(), cells.join(" ")])?;
            }
            Ok(())
        })?;
        csv_io::write_file(&tmp.join("problems.csv"), |w| {
            for (img, reason) in &chunk.problems {
                w.write_record([&img.to_string(), reason])?;
            }
            Ok(())
        })?;
        fs::rename(&tmp, self.chunk_dir(chunk.index)).context("saving a finished chunk")?;
        Ok(())
    }

    /// Merges every chunk into the final matrices and tables, then marks the run complete.
    /// Safe to repeat after a kill: final files are written atomically and the chunks are only
    /// removed once the manifest says "complete".
    pub fn finalize(&self, manifest: &mut RunManifest, channels: &[usize]) -> Result<()> {
        let chunks: Vec<PathBuf> = self
            .finished_chunks()?
            .into_iter()
            .map(|c| self.chunk_dir(c))
            .collect();
        self.write_results(&chunks, manifest, channels)?;
        let _ = fs::remove_dir_all(self.parts_dir());
        Ok(())
    }

    /// Marks a shard complete once all its chunks are saved; its chunks stay for `atlas merge`.
    /// The manifest's layer summaries count the shard's rows.
    pub fn complete_shard(&self, manifest: &mut RunManifest, channels: &[usize]) -> Result<()> {
        let chunks: Vec<PathBuf> = self
            .finished_chunks()?
            .into_iter()
            .map(|c| self.chunk_dir(c))
            .collect();
        let mut summaries = vec![];
        for (l, layer) in manifest.settings.layers.iter().enumerate() {
            let mut rows = 0;
            for chunk in &chunks {
                rows += count_npy_rows(&chunk.join(format!("{l}.acts.npy")))?;
            }
            summaries.push(LayerSummary {
                name: layer.clone(),
                dir: format!("layers/{}", layer_dir_name(layer)),
                channels: channels[l],
                rows,
            });
        }
        manifest.layers = summaries;
        manifest.status = SHARD_COMPLETE.into();
        self.write_manifest(manifest)
    }

    /// Writes the final matrices and tables of the chunk folders `chunks` (in chunk order) into
    /// this folder, which already holds the run's `images.csv` and `scan-problems.csv`, and
    /// finally the manifest, marked complete. `channels` per layer of the run.
    pub fn write_results(
        &self,
        chunks: &[PathBuf],
        manifest: &mut RunManifest,
        channels: &[usize],
    ) -> Result<()> {
        let images = self.read_image_list()?;
        let mut summaries = vec![];
        let mut provenance = vec![];
        for (l, layer) in manifest.settings.layers.iter().enumerate() {
            let summary = self.merge_layer_matrices(chunks, l, layer, channels[l], manifest)?;
            provenance.extend(layer_provenance(chunks, l, layer, &images)?);
            summaries.push(summary);
        }
        csv_io::write_file(&self.root.join("provenance.csv"), |w| {
            w.write_record([
                "row",
                "layer",
                "image_index",
                "path",
                "label",
                "y",
                "x",
                "draw",
            ])?;
            for record in &provenance {
                w.write_record(record)?;
            }
            Ok(())
        })?;
        let (predictions, problems) = read_chunk_tables(chunks)?;
        self.write_predictions(&predictions, &images, &manifest.class_names)?;
        let scan_problems = self.write_problems(&problems, &images)?;
        manifest.layers = summaries;
        manifest.images_done = predictions.len();
        manifest.problems = scan_problems + problems.len();
        manifest.status = COMPLETE.into();
        self.write_manifest(manifest)
    }

    /// Concatenates the chunks' `acts.npy` and `attr.npy` of layer number `l` into the layer's
    /// folder.
    fn merge_layer_matrices(
        &self,
        chunks: &[PathBuf],
        l: usize,
        layer: &str,
        channels: usize,
        manifest: &RunManifest,
    ) -> Result<LayerSummary> {
        let dir = self.layer_dir(layer);
        fs::create_dir_all(&dir)?;
        let parts = |kind: &str| -> Vec<PathBuf> {
            chunks
                .iter()
                .map(|chunk| chunk.join(format!("{l}.{kind}.npy")))
                .collect()
        };
        let mut rows = 0usize;
        for part in parts("acts") {
            rows += count_npy_rows(&part)?;
        }
        let dtype = manifest.settings.acts_dtype;
        concat_npy(&parts("acts"), &dir.join("acts.npy"), rows, channels, dtype)?;
        let classes = manifest.num_classes;
        concat_npy(
            &parts("attr"),
            &dir.join("attr.npy"),
            rows,
            classes,
            Dtype::F32,
        )?;
        Ok(LayerSummary {
            name: layer.to_string(),
            dir: format!("layers/{}", layer_dir_name(layer)),
            channels,
            rows,
        })
    }

    /// `predictions.csv`: per image its path, label and top classes by name with probability.
    fn write_predictions(
        &self,
        predictions: &[(usize, String)],
        images: &[ImageRecord],
        names: &[String],
    ) -> Result<()> {
        csv_io::write_file(&self.root.join("predictions.csv"), |w| {
            w.write_record(
                "image_index,path,label,top1,p1,top2,p2,top3,p3,top4,p4,top5,p5".split(','),
            )?;
            for (img, top) in predictions {
                let [path, label] = path_and_label(&images[*img]);
                let mut record = vec![img.to_string(), path, label];
                for cell in top.split(' ').filter(|s| !s.is_empty()) {
                    let (c, p) = cell.split_once(':').context("bad prediction cell")?;
                    let name = names.get(c.parse::<usize>()?).map_or("?", String::as_str);
                    record.extend([name.to_string(), p.to_string()]);
                }
                w.write_record(&record)?;
            }
            Ok(())
        })
    }

    /// `problems.csv`: the scan's problems, then the images that failed while collecting.
    /// Returns the number of the scan's.
    fn write_problems(
        &self,
        problems: &[(usize, String)],
        images: &[ImageRecord],
    ) -> Result<usize> {
        let scan_path = self.root.join("scan-problems.csv");
        let scan = if scan_path.is_file() {
            csv_io::read_records(&scan_path)?
        } else {
            vec![]
        };
        let scan = scan.get(1..).unwrap_or_default();
        csv_io::write_file(&self.root.join("problems.csv"), |w| {
            w.write_record(["path", "reason"])?;
            for record in scan {
                w.write_record(record)?;
            }
            for (img, reason) in problems {
                w.write_record([&*images[*img].0.to_string_lossy(), reason])?;
            }
            Ok(())
        })?;
        Ok(scan.len())
    }
}

/// The `provenance.csv` records of layer number `l`: its chunks' rows (image index, y, x,
/// draw) numbered from 0, with the layer's name and the image's path and label.
fn layer_provenance(
    chunks: &[PathBuf],
    l: usize,
    layer: &str,
    images: &[ImageRecord],
) -> Result<Vec<[String; 8]>> {
    let mut out = vec![];
    for c in chunks {
        let path = c.join(format!("{l}.rows.csv"));
        for f in csv_io::read_records(&path)? {
            ensure!(f.len() == 4, "{}: bad line {f:?}", path.display());
            let img: usize = f[0].parse()?;
            let image = images
                .get(img)
                .with_context(|| format!("{}: no image {img}", path.display()))?;
            let [path, label] = path_and_label(image);
            let row = out.len().to_string();
            let (y, x, draw) = (f[1].into(), f[2].into(), f[3].into());
            out.push([row, layer.into(), img.to_string(), path, label, y, x, draw]);
        }
    }
    Ok(out)
}

/// The chunks' predictions (image index, "class:probability …") and problems (image index,
/// reason), in chunk order.
#[allow(clippy::type_complexity)]
fn read_chunk_tables(chunks: &[PathBuf]) -> Result<(Vec<(usize, String)>, Vec<(usize, String)>)> {
    let mut predictions = vec![];
    let mut problems = vec![];
    for c in chunks {
        let dir = c;
        for (file, list) in [
            ("predictions.csv", &mut predictions),
            ("problems.csv", &mut problems),
        ] {
            for f in csv_io::read_records(&dir.join(file))? {
                ensure!(f.len() == 2, "bad {file} line {f:?}");
                list.push((f[0].parse::<usize>()?, f[1].to_string()));
            }
        }
    }
    Ok((predictions, problems))
}

/// The chunk index of a finished chunk's folder name (six digits), `None` for other entries.
fn chunk_index(name: &str) -> Option<usize> {
    (name.len() == 6).then(|| name.parse().ok()).flatten()
}

fn count_npy_rows(path: &Path) -> Result<usize> {
    let mut f = BufReader::new(
        fs::File::open(path).with_context(|| format!("missing {}", path.display()))?,
    );
    Ok(npy::read_header(&mut f)?.1)
}

/// Concatenates row blocks of the same dtype and width by copying their raw bytes.
fn concat_npy(
    parts: &[PathBuf],
    out_path: &Path,
    rows: usize,
    cols: usize,
    dtype: Dtype,
) -> Result<()> {
    atomic::write_with(out_path, |out| {
        out.write_all(&npy::header(dtype, rows, cols))?;
        for part in parts {
            let mut f = BufReader::new(fs::File::open(part)?);
            let (d, r, c, _) = npy::read_header(&mut f)?;
            if r > 0 && (d != dtype || c != cols) {
                bail!(
                    "{} has dtype {d:?} and {c} columns, expected {dtype:?} and {cols}",
                    part.display()
                );
            }
            let copied = std::io::copy(&mut f.by_ref().take((r * c * dtype.size()) as u64), out)?;
            if copied as usize != r * c * dtype.size() {
                bail!("{} is truncated", part.display());
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-chunk run over awkward names (commas, quotes, `\r`), written with the public API.
    fn awkward_run(root: &Path) -> RunManifest {
        let folder = RunFolder::new(root);
        let images = [
            ("/data/plain.jpg", Some("cat")),
            ("/data/with,comma.jpg", Some("a,b")),
            ("/data/say \"hi\"\r.jpg", None),
        ]
        .map(|(p, l)| ImageEntry {
            path: PathBuf::from(p),
            label: l.map(String::from),
        });
        let scan_problems = [Problem {
            path: PathBuf::from("/data/bad,file.png"),
            reason: "cannot decode: \"truncated\"".into(),
        }];
        folder
            .write_image_list(&images, &[Some(0), Some(1), None], &scan_problems)
            .unwrap();
        let layers = vec!["head".to_string(), "odd,\"layer\"".to_string()];
        let mut manifest = RunManifest {
            format: FORMAT.into(),
            settings: RunSettings {
                model_file: PathBuf::from("m.pt"),
                model_name: "m".into(),
                model_bytes: 1,
                images_root: PathBuf::from("/data"),
                layers: layers.clone(),
                samples_per_image: 2,
                margin: 0,
                seed: 1,
                batch_size: 2,
                chunk_images: 2,
                acts_dtype: Dtype::F32,
                preprocess: "squash".into(),
            },
            num_images: 3,
            num_classes: 3,
            class_names: vec!["cat".into(), "dog, big".into(), "say \"x\"".into()],
            status: "collecting".into(),
            layers: vec![],
            images_done: 0,
            problems: 0,
            shard: None,
        };
        let layer = |rows: Vec<(usize, i64, i64, u32)>| ChunkLayer {
            acts: (0..rows.len() * 2).map(|v| v as f32).collect(),
            attr: (0..rows.len() * 3).map(|v| -(v as f32)).collect(),
            rows,
        };
        let chunks = [
            ChunkData {
                index: 0,
                layers: vec![
                    layer(vec![(0, 1, 2, 0), (1, 3, 4, 0), (1, 0, 0, 1)]),
                    layer(vec![(0, 0, 0, 0), (1, 0, 0, 0)]),
                ],
                predictions: vec![
                    (0, vec![(0, 0.75), (1, 0.25)]),
                    (1, vec![(1, 0.5), (2, 0.125), (0, 0.0625)]),
                ],
                problems: vec![],
            },
            ChunkData {
                index: 1,
                layers: vec![layer(vec![]), layer(vec![])],
                predictions: vec![],
                problems: vec![(2, "too small, 3×3 \"pixels\"".into())],
            },
        ];
        for chunk in &chunks {
            folder.save_chunk(chunk, Dtype::F32).unwrap();
        }
        folder.finalize(&mut manifest, &[2, 2]).unwrap();
        manifest
    }

    /// The tables of [`awkward_run`] as the hand-written CSV code wrote them before the `csv`
    /// crate (captured from that code): run folders written then must read back, and new ones
    /// must not differ.
    const GOLDEN: [(&str, &str); 5] = [
        (
            "images.csv",
            "index,path,label,class_index\n\
             0,/data/plain.jpg,cat,0\n\
             1,\"/data/with,comma.jpg\",\"a,b\",1\n\
             2,\"/data/say \"\"hi\"\"\r.jpg\",,\n",
        ),
        (
            "scan-problems.csv",
            "path,reason\n\
             \"/data/bad,file.png\",\"cannot decode: \"\"truncated\"\"\"\n",
        ),
        (
            "provenance.csv",
            "row,layer,image_index,path,label,y,x,draw\n\
             0,head,0,/data/plain.jpg,cat,1,2,0\n\
             1,head,1,\"/data/with,comma.jpg\",\"a,b\",3,4,0\n\
             2,head,1,\"/data/with,comma.jpg\",\"a,b\",0,0,1\n\
             0,\"odd,\"\"layer\"\"\",0,/data/plain.jpg,cat,0,0,0\n\
             1,\"odd,\"\"layer\"\"\",1,\"/data/with,comma.jpg\",\"a,b\",0,0,0\n",
        ),
        (
            "predictions.csv",
            "image_index,path,label,top1,p1,top2,p2,top3,p3,top4,p4,top5,p5\n\
             0,/data/plain.jpg,cat,cat,0.750000,\"dog, big\",0.250000\n\
             1,\"/data/with,comma.jpg\",\"a,b\",\"dog, big\",0.500000,\"say \"\"x\"\"\",0.125000,cat,0.062500\n",
        ),
        (
            "problems.csv",
            "path,reason\n\
             \"/data/bad,file.png\",\"cannot decode: \"\"truncated\"\"\"\n\
             \"/data/say \"\"hi\"\"\r.jpg\",\"too small, 3×3 \"\"pixels\"\"\"\n",
        ),
    ];

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("atlas-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn tables_are_written_byte_for_byte_as_before() {
        let root = temp_dir("run-golden");
        let manifest = awkward_run(&root);
        for (file, want) in GOLDEN {
            let got = fs::read_to_string(root.join(file)).unwrap();
            assert_eq!(got, want, "{file}");
        }
        assert_eq!((manifest.images_done, manifest.problems), (2, 2));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn image_list_in_the_old_format_reads_back() {
        let root = temp_dir("run-old-images");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("images.csv"), GOLDEN[0].1).unwrap();
        let images = RunFolder::new(&root).read_image_list().unwrap();
        let want: Vec<ImageRecord> = vec![
            ("/data/plain.jpg".into(), Some("cat".into()), Some(0)),
            ("/data/with,comma.jpg".into(), Some("a,b".into()), Some(1)),
            ("/data/say \"hi\"\r.jpg".into(), None, None),
        ];
        assert_eq!(images, want);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_line_break_in_a_path_survives_the_image_list() {
        // The hand-written reader went line by line and split such a path in two.
        let root = temp_dir("run-newline");
        let folder = RunFolder::new(&root);
        let odd = "/data/two\nlines, \"quoted\"\r\n.jpg";
        let images = [ImageEntry {
            path: PathBuf::from(odd),
            label: Some("x\ny".into()),
        }];
        folder.write_image_list(&images, &[Some(0)], &[]).unwrap();
        let list = folder.read_image_list().unwrap();
        assert_eq!(
            list,
            vec![(PathBuf::from(odd), Some("x\ny".into()), Some(0))]
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn csv_roundtrip_with_commas_quotes_and_line_breaks() {
        let fields = ["a,b", "say \"hi\"", "cr\r", "n\nl", "plain"];
        let line = csv_io::to_string([fields]).unwrap();
        assert_eq!(parse_csv_line(line.strip_suffix('\n').unwrap()), fields);
    }

    #[test]
    fn layer_dirs_are_safe() {
        assert_eq!(layer_dir_name("layer1.0.relu"), "layer1.0.relu");
        assert_eq!(layer_dir_name("a/b c"), "a_b_c");
        assert_eq!(layer_dir_name(".."), "_..");
    }
}
