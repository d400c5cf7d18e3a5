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
//! Work is saved chunk by chunk; a chunk directory is built under a temporary name and renamed
//! when complete, so after a kill the run resumes at the first missing chunk and neither loses nor
//! duplicates rows. Sample positions depend only on (seed, image, layer, draw), so the resumed
//! rows equal those of an uninterrupted run.
use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::{ImageEntry, Problem};
use crate::store::{atomic, npy, npy::Dtype};

/// `/2`: positions are drawn without replacement per image and layer. `/1` runs (drawn with
/// replacement) still open for reading; they cannot be resumed, since the sampler changed.
pub const FORMAT: &str = "activation-atlas-run/2";
pub const FORMAT_V1: &str = "activation-atlas-run/1";

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
    /// "collecting" until every chunk is saved and merged, then "complete".
    pub status: String,
    #[serde(default)]
    pub layers: Vec<LayerSummary>,
    #[serde(default)]
    pub images_done: usize,
    #[serde(default)]
    pub problems: usize,
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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Splits one CSV line written by [`csv_field`].
pub fn parse_csv_line(line: &str) -> Vec<String> {
    let mut fields = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
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
    fn chunk_dir(&self, index: usize) -> PathBuf {
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
        atomic::write_with(&self.root.join("images.csv"), |out| {
            writeln!(out, "index,path,label,class_index")?;
            for (i, (img, class)) in images.iter().zip(classes).enumerate() {
                let label = img.label.as_deref().unwrap_or("");
                let class = class.map(|c| c.to_string()).unwrap_or_default();
                writeln!(
                    out,
                    "{i},{},{},{class}",
                    csv_field(&img.path.to_string_lossy()),
                    csv_field(label)
                )?;
            }
            Ok(())
        })?;
        atomic::write_with(&self.root.join("scan-problems.csv"), |out| {
            writeln!(out, "path,reason")?;
            for p in problems {
                writeln!(
                    out,
                    "{},{}",
                    csv_field(&p.path.to_string_lossy()),
                    csv_field(&p.reason)
                )?;
            }
            Ok(())
        })
    }

    /// Reads back the image list: (path, label, class index).
    pub fn read_image_list(&self) -> Result<Vec<ImageRecord>> {
        let file =
            fs::File::open(self.root.join("images.csv")).context("run folder has no images.csv")?;
        let mut out = vec![];
        for line in BufReader::new(file).lines().skip(1) {
            let f = parse_csv_line(&line?);
            if f.len() < 4 {
                bail!("images.csv has a malformed line");
            }
            let label = (!f[2].is_empty()).then(|| f[2].clone());
            out.push((PathBuf::from(&f[1]), label, f[3].parse().ok()));
        }
        Ok(out)
    }

    /// Chunks already saved. Also removes what a killed writer left half-done.
    pub fn finished_chunks(&self) -> Result<BTreeSet<usize>> {
        let dir = self.parts_dir();
        fs::create_dir_all(&dir)?;
        let mut done = BTreeSet::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            match name.parse::<usize>() {
                Ok(i) if name.len() == 6 => {
                    done.insert(i);
                }
                _ => {
                    // tmp-* directories of a killed writer: their chunk is simply redone.
                    let _ = fs::remove_dir_all(entry.path());
                    let _ = fs::remove_file(entry.path());
                }
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
            atomic::write_with(&tmp.join(format!("{l}.rows.csv")), |out| {
                for (img, y, x, d) in &data.rows {
                    writeln!(out, "{img},{y},{x},{d}")?;
                }
                Ok(())
            })?;
        }
        atomic::write_with(&tmp.join("predictions.csv"), |out| {
            for (img, top) in &chunk.predictions {
                let cells: Vec<String> = top.iter().map(|(c, p)| format!("{c}:{p:.6}")).collect();
                writeln!(out, "{img},{}", cells.join(" "))?;
            }
            Ok(())
        })?;
        atomic::write_with(&tmp.join("problems.csv"), |out| {
            for (img, reason) in &chunk.problems {
                writeln!(out, "{img},{}", csv_field(reason))?;
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
        let chunks: Vec<usize> = self.finished_chunks()?.into_iter().collect();
        let images = self.read_image_list()?;
        let names = &manifest.class_names;
        let dtype = manifest.settings.acts_dtype;
        let mut summaries = vec![];
        let mut provenance: Vec<String> = vec![];
        for (l, layer) in manifest.settings.layers.iter().enumerate() {
            let dir = self.layer_dir(layer);
            fs::create_dir_all(&dir)?;
            let mut rows = 0usize;
            for &c in &chunks {
                rows += count_npy_rows(&self.chunk_dir(c).join(format!("{l}.acts.npy")))?;
            }
            concat_npy(
                &chunks
                    .iter()
                    .map(|&c| self.chunk_dir(c).join(format!("{l}.acts.npy")))
                    .collect::<Vec<_>>(),
                &dir.join("acts.npy"),
                rows,
                channels[l],
                dtype,
            )?;
            concat_npy(
                &chunks
                    .iter()
                    .map(|&c| self.chunk_dir(c).join(format!("{l}.attr.npy")))
                    .collect::<Vec<_>>(),
                &dir.join("attr.npy"),
                rows,
                manifest.num_classes,
                Dtype::F32,
            )?;
            let mut row_in_layer = 0usize;
            for &c in &chunks {
                let text = fs::read_to_string(self.chunk_dir(c).join(format!("{l}.rows.csv")))?;
                for line in text.lines() {
                    let f: Vec<&str> = line.split(',').collect();
                    let img: usize = f[0].parse()?;
                    let (path, label, _) = &images[img];
                    provenance.push(format!(
                        "{row_in_layer},{},{img},{},{},{},{},{}",
                        csv_field(layer),
                        csv_field(&path.to_string_lossy()),
                        csv_field(label.as_deref().unwrap_or("")),
                        f[1],
                        f[2],
                        f[3]
                    ));
                    row_in_layer += 1;
                }
            }
            summaries.push(LayerSummary {
                name: layer.clone(),
                dir: format!("layers/{}", layer_dir_name(layer)),
                channels: channels[l],
                rows,
            });
        }
        atomic::write_with(&self.root.join("provenance.csv"), |out| {
            writeln!(out, "row,layer,image_index,path,label,y,x,draw")?;
            for line in &provenance {
                writeln!(out, "{line}")?;
            }
            Ok(())
        })?;
        let mut predictions = vec![];
        let mut problems = vec![];
        for &c in &chunks {
            let dir = self.chunk_dir(c);
            for line in fs::read_to_string(dir.join("predictions.csv"))?.lines() {
                let (img, top) = line.split_once(',').context("bad predictions line")?;
                predictions.push((img.parse::<usize>()?, top.to_string()));
            }
            for line in fs::read_to_string(dir.join("problems.csv"))?.lines() {
                let (img, reason) = line.split_once(',').context("bad problems line")?;
                problems.push((img.parse::<usize>()?, reason.to_string()));
            }
        }
        atomic::write_with(&self.root.join("predictions.csv"), |out| {
            writeln!(
                out,
                "image_index,path,label,top1,p1,top2,p2,top3,p3,top4,p4,top5,p5"
            )?;
            for (img, top) in &predictions {
                let (path, label, _) = &images[*img];
                write!(
                    out,
                    "{img},{},{}",
                    csv_field(&path.to_string_lossy()),
                    csv_field(label.as_deref().unwrap_or(""))
                )?;
                for cell in top.split(' ').filter(|s| !s.is_empty()) {
                    let (c, p) = cell.split_once(':').context("bad prediction cell")?;
                    let name = names
                        .get(c.parse::<usize>()?)
                        .map(String::as_str)
                        .unwrap_or("?");
                    write!(out, ",{},{p}", csv_field(name))?;
                }
                writeln!(out)?;
            }
            Ok(())
        })?;
        let scan_problems =
            fs::read_to_string(self.root.join("scan-problems.csv")).unwrap_or_default();
        let scan_lines: Vec<&str> = scan_problems.lines().skip(1).collect();
        atomic::write_with(&self.root.join("problems.csv"), |out| {
            writeln!(out, "path,reason")?;
            for line in &scan_lines {
                writeln!(out, "{line}")?;
            }
            for (img, reason) in &problems {
                writeln!(
                    out,
                    "{},{reason}",
                    csv_field(&images[*img].0.to_string_lossy())
                )?;
            }
            Ok(())
        })?;
        manifest.layers = summaries;
        manifest.images_done = predictions.len();
        manifest.problems = scan_lines.len() + problems.len();
        manifest.status = "complete".into();
        self.write_manifest(manifest)?;
        let _ = fs::remove_dir_all(self.parts_dir());
        Ok(())
    }
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

    #[test]
    fn csv_roundtrip_with_commas_and_quotes() {
        let fields = ["a,b", "say \"hi\"", "plain"];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        assert_eq!(parse_csv_line(&line.join(",")), fields);
    }

    #[test]
    fn layer_dirs_are_safe() {
        assert_eq!(layer_dir_name("layer1.0.relu"), "layer1.0.relu");
        assert_eq!(layer_dir_name("a/b c"), "a_b_c");
        assert_eq!(layer_dir_name(".."), "_..");
    }
}
