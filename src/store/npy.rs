//! Minimal NumPy `.npy` (format 1.0) reader/writer for 2-D row-major `f32`/`f16` matrices:
//! the interchange format of run folders, readable by `numpy.load` without any extra code.
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

/// Element type on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    F16,
}

impl Dtype {
    fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F16 => "<f2",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
}

/// The header bytes of a C-order 2-D array `[rows, cols]`, padded to a multiple of 64.
pub fn header(dtype: Dtype, rows: usize, cols: usize) -> Vec<u8> {
    header_nd(dtype, &[rows, cols])
}

/// The header bytes of a C-order array of any shape.
pub fn header_nd(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({tuple}), }}",
        dtype.descr()
    );
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let mut out = Vec::with_capacity(unpadded + pad);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((dict.len() + pad + 1) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// Appends `values` encoded as `dtype` (little endian).
pub fn write_values(out: &mut impl Write, values: &[f32], dtype: Dtype) -> Result<()> {
    let mut buf = Vec::with_capacity(values.len() * dtype.size());
    match dtype {
        Dtype::F32 => values
            .iter()
            .for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
        Dtype::F16 => values
            .iter()
            .for_each(|v| buf.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
    }
    out.write_all(&buf)?;
    Ok(())
}

/// Writes a whole matrix atomically.
pub fn write(path: &Path, values: &[f32], rows: usize, cols: usize, dtype: Dtype) -> Result<()> {
    if values.len() != rows * cols {
        bail!(
            "npy write {}: {} values for shape {rows}x{cols}",
            path.display(),
            values.len()
        );
    }
    super::atomic::write_with(path, |out| {
        out.write_all(&header(dtype, rows, cols))?;
        write_values(out, values, dtype)
    })
}

/// Writes an array of any shape atomically (e.g. an image batch `[n, 3, h, w]` for Python).
pub fn write_nd(path: &Path, values: &[f32], shape: &[usize], dtype: Dtype) -> Result<()> {
    if values.len() != shape.iter().product::<usize>() {
        bail!(
            "npy write {}: {} values for shape {shape:?}",
            path.display(),
            values.len()
        );
    }
    super::atomic::write_with(path, |out| {
        out.write_all(&header_nd(dtype, shape))?;
        write_values(out, values, dtype)
    })
}

/// A matrix read back from disk, always as `f32`.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub dtype: Dtype,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// Parses the header; returns (dtype, rows, cols, header length).
pub fn read_header(reader: &mut impl Read) -> Result<(Dtype, usize, usize, usize)> {
    let mut magic = [0u8; 10];
    reader.read_exact(&mut magic)?;
    if &magic[..6] != b"\x93NUMPY" {
        bail!("not a .npy file");
    }
    let (len, prefix) = match magic[6] {
        1 => (u16::from_le_bytes([magic[8], magic[9]]) as usize, 10),
        2 | 3 => {
            let mut rest = [0u8; 2];
            reader.read_exact(&mut rest)?;
            (
                u32::from_le_bytes([magic[8], magic[9], rest[0], rest[1]]) as usize,
                12,
            )
        }
        v => bail!("unsupported .npy version {v}"),
    };
    let mut dict = vec![0u8; len];
    reader.read_exact(&mut dict)?;
    let dict = String::from_utf8_lossy(&dict);
    let dtype = if dict.contains("'<f4'") {
        Dtype::F32
    } else if dict.contains("'<f2'") {
        Dtype::F16
    } else {
        bail!("unsupported dtype in header {dict}");
    };
    if dict.contains("'fortran_order': True") {
        bail!("fortran-order arrays are not supported");
    }
    let shape = dict
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .context("no shape in header")?;
    let dims: Vec<usize> = shape
        .trim_start_matches([' ', '('])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().context("bad shape"))
        .collect::<Result<_>>()?;
    let (rows, cols) = match dims.as_slice() {
        [r] => (*r, 1),
        [r, c] => (*r, *c),
        _ => bail!("expected a 1-D or 2-D array, got shape {dims:?}"),
    };
    Ok((dtype, rows, cols, prefix + len))
}

/// Reads a whole matrix, converting a block of rows at a time: the file's bytes are never held
/// beside the f32 values (at 1M × 1,280 f16 the bytes alone are 2.6 GB).
pub fn read(path: &Path) -> Result<Matrix> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (dtype, rows, cols, _) =
        read_header(&mut reader).with_context(|| format!("reading {}", path.display()))?;
    let mut data = Vec::with_capacity(rows * cols);
    let mut bytes = vec![0u8; READ_BLOCK_VALUES * dtype.size()];
    let mut left = rows * cols;
    while left > 0 {
        let take = left.min(READ_BLOCK_VALUES);
        let block = &mut bytes[..take * dtype.size()];
        reader
            .read_exact(block)
            .with_context(|| format!("{} is truncated", path.display()))?;
        decode_into(block, dtype, &mut data);
        left -= take;
    }
    Ok(Matrix {
        rows,
        cols,
        dtype,
        data,
    })
}

/// Values converted per block by [`read`].
const READ_BLOCK_VALUES: usize = 1 << 20;

/// Appends the little-endian `dtype` values of `bytes` to `out` as f32.
fn decode_into(bytes: &[u8], dtype: Dtype, out: &mut Vec<f32>) {
    match dtype {
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        Dtype::F16 => {
            // `half`'s slice conversion uses the CPU's F16C instructions where there are (found
            // at run time): several times faster than one value at a time, which matters at
            // 1M × 1,280 values.
            let bits: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect();
            let start = out.len();
            out.resize(start + bits.len(), 0.0);
            bits.reinterpret_cast::<f16>()
                .convert_to_f32_slice(&mut out[start..]);
        }
    }
}

/// Rows of a 2-D `.npy` file read on demand (by position, without holding the matrix): for
/// matrices too large to keep in memory, e.g. the activations behind an atlas of a million rows.
/// Reads are positioned (`pread`-style), so one reader can be shared between threads.
#[derive(Debug)]
pub struct RowReader {
    file: File,
    path: std::path::PathBuf,
    pub rows: usize,
    pub cols: usize,
    pub dtype: Dtype,
    /// Byte offset of row 0.
    data_start: u64,
}

impl RowReader {
    pub fn open(path: &Path) -> Result<RowReader> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut reader = BufReader::new(&file);
        let (dtype, rows, cols, header_len) =
            read_header(&mut reader).with_context(|| format!("reading {}", path.display()))?;
        let want = (header_len + rows * cols * dtype.size()) as u64;
        let len = file.metadata()?.len();
        ensure!(
            len >= want,
            "{} is truncated ({len} bytes, its header says {want})",
            path.display()
        );
        Ok(RowReader {
            file,
            path: path.to_path_buf(),
            rows,
            cols,
            dtype,
            data_start: header_len as u64,
        })
    }

    /// Rows `first..first + count` as f32, row-major, appended to `out`.
    pub fn read_rows_into(&self, first: usize, count: usize, out: &mut Vec<f32>) -> Result<()> {
        ensure!(
            first + count <= self.rows,
            "rows {first}..{} of {} are out of range ({} rows)",
            first + count,
            self.path.display(),
            self.rows
        );
        let row_bytes = self.cols * self.dtype.size();
        let mut bytes = vec![0u8; count * row_bytes];
        read_exact_at(
            &self.file,
            &mut bytes,
            self.data_start + (first * row_bytes) as u64,
        )
        .with_context(|| format!("reading rows of {}", self.path.display()))?;
        out.reserve(count * self.cols);
        decode_into(&bytes, self.dtype, out);
        Ok(())
    }

    /// Row `r` as f32.
    pub fn row(&self, r: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.cols);
        self.read_rows_into(r, 1, &mut out)?;
        Ok(out)
    }

    /// Calls `f(first_row, rows)` on consecutive blocks of at most `block_rows` rows, in order.
    pub fn for_each_block(
        &self,
        block_rows: usize,
        mut f: impl FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let block_rows = block_rows.max(1);
        let mut buf = Vec::new();
        for first in (0..self.rows).step_by(block_rows) {
            let count = block_rows.min(self.rows - first);
            buf.clear();
            self.read_rows_into(first, count, &mut buf)?;
            f(first, &buf)?;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_f32_and_f16() {
        let dir = std::env::temp_dir().join(format!("atlas-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        for dtype in [Dtype::F32, Dtype::F16] {
            let path = dir.join(format!("m-{dtype:?}.npy"));
            write(&path, &values, 3, 4, dtype).unwrap();
            let m = read(&path).unwrap();
            assert_eq!((m.rows, m.cols, m.dtype), (3, 4, dtype));
            assert_eq!(m.data, values, "these values are exact in f16 too");
            let rows = RowReader::open(&path).unwrap();
            assert_eq!((rows.rows, rows.cols, rows.dtype), (3, 4, dtype));
            assert_eq!(rows.row(2).unwrap(), &values[8..12]);
            let mut two = vec![];
            rows.read_rows_into(1, 2, &mut two).unwrap();
            assert_eq!(two, &values[4..12]);
            assert!(rows.read_rows_into(2, 2, &mut two).is_err(), "past the end");
            let mut blocks = vec![];
            rows.for_each_block(2, |first, b| {
                blocks.push((first, b.to_vec()));
                Ok(())
            })
            .unwrap();
            assert_eq!(
                blocks,
                vec![(0, values[..8].to_vec()), (2, values[8..].to_vec())]
            );
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            assert_eq!(
                len % 64,
                (12 * dtype.size()) % 64,
                "header is 64-byte aligned"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_matrices_larger_than_one_block() {
        let dir = std::env::temp_dir().join(format!("atlas-npy-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 5 columns do not divide the block, so a row straddles two blocks.
        let (rows, cols) = (READ_BLOCK_VALUES / 5 + 3, 5);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| (i % 1000) as f32 - 500.0)
            .collect();
        for dtype in [Dtype::F32, Dtype::F16] {
            let path = dir.join(format!("big-{dtype:?}.npy"));
            write(&path, &values, rows, cols, dtype).unwrap();
            let m = read(&path).unwrap();
            assert_eq!((m.rows, m.cols), (rows, cols));
            assert!(m.data == values, "integers below 2048 are exact in f16");
            let r = RowReader::open(&path).unwrap();
            assert_eq!(r.row(rows - 1).unwrap(), m.row(rows - 1));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
