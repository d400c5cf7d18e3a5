//! End-to-end check of the image-folder pipeline against a deliberately messy folder.
//!
//! The fixture is generated on the fly (no binary files in the repo): ordinary files come from
//! the `image` crate's encoders; formats it cannot write (CMYK JPEG, progressive JPEG, palette
//! PNG, bomb headers) come from the tiny hand-written encoders at the bottom of this file.

use crate::common;

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas::data::decode::Preprocess;
use atlas::data::loader::{spawn_loader, spawn_loader_joinable};
use atlas::data::{load_rgb, scan_folder};
use image::{DynamicImage, ImageFormat, RgbImage};

/// Good images: path under the root, label, size after decoding (EXIF rotation applied).
const GOOD: &[(&str, Option<&str>, (u32, u32))] = &[
    ("cats/gray.jpg", Some("cats"), (24, 16)),
    ("cats/nested/deep.png", Some("cats"), (5, 7)),
    ("cmyk.jpg", None, (16, 8)),
    ("exif_rotate90.jpg", None, (20, 40)),
    ("good.jpg", None, (64, 48)),
    ("good.png", None, (64, 48)),
    ("gray16.png", None, (9, 5)),
    ("palette.png", None, (6, 4)),
    ("progressive.jpg", None, (16, 8)),
    ("rgb16.png", None, (7, 3)),
    ("rgba.png", None, (8, 8)),
    ("tall_1x300.png", None, (1, 300)),
    ("tiny_1x1.png", None, (1, 1)),
    ("wide_500x1.jpg", None, (500, 1)),
];
/// Files the scan must reject by content, and the folder link that would loop.
const SCAN_PROBLEMS: &[(&str, &str)] = &[
    ("empty.jpg", "empty file"),
    ("loop/link", "already scanned"),
    ("text.jpg", "not an image"),
];
/// Files that look like images from their first bytes but must fail to decode.
const DECODE_FAILURES: &[(&str, &str)] = &[
    ("bomb_100000px.png", "too large"),
    ("bomb_alloc.png", "too large"),
    ("corrupt_middle.png", "corrupt"),
    ("truncated.jpg", "truncated"),
];

#[test]
fn scan_lists_good_images_and_reports_bad_files() {
    let start = Instant::now();
    let root = build_fixture("scan");
    let report = scan_folder(&root).unwrap();

    let mut expected: Vec<(String, Option<String>)> = GOOD
        .iter()
        .map(|(p, l, _)| (p.to_string(), l.map(String::from)))
        .chain(DECODE_FAILURES.iter().map(|(p, _)| (p.to_string(), None)))
        .collect();
    expected.sort();
    let listed: Vec<(String, Option<String>)> = report
        .images
        .iter()
        .map(|e| (rel(&root, &e.path), e.label.clone()))
        .collect();
    assert_eq!(
        listed, expected,
        "listed images (sorted, hidden file excluded)"
    );

    let problems: Vec<(String, &str)> = report
        .problems
        .iter()
        .map(|p| (rel(&root, &p.path), p.reason.as_str()))
        .collect();
    assert_eq!(problems.len(), SCAN_PROBLEMS.len(), "{problems:#?}");
    for ((path, reason), (want_path, want)) in problems.iter().zip(SCAN_PROBLEMS) {
        assert_eq!(path, want_path);
        assert!(reason.contains(want), "{path}: {reason}");
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn good_images_decode_to_size_with_sane_pixels() {
    let root = build_fixture("good");
    for (path, _, native) in GOOD {
        let path = root.join(path);
        // Native size: no resampling, so pixel checks below see the decoder's output.
        let img = load_rgb(&path, Preprocess::Squash, *native)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(img.dimensions(), *native, "{}", path.display());
        for prep in [
            Preprocess::Squash,
            Preprocess::ResizeShorterCrop { resize: 256 },
        ] {
            let img = load_rgb(&path, prep, (224, 224)).unwrap();
            assert_eq!(img.dimensions(), (224, 224), "{} {prep:?}", path.display());
        }
    }
    let load = |name: &str, size| load_rgb(&root.join(name), Preprocess::Squash, size).unwrap();

    let gray = load("cats/gray.jpg", (24, 16));
    assert!(gray.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    assert!(gray.pixels().any(|p| p[0] < 60) && gray.pixels().any(|p| p[0] > 190));

    // Alpha is dropped, not composited: a half-transparent colour keeps its RGB.
    assert!(load("rgba.png", (8, 8))
        .pixels()
        .all(|p| p.0 == [200, 30, 60]));
    // 16-bit → 8-bit.
    assert!(load("rgb16.png", (7, 3))
        .pixels()
        .all(|p| p.0 == [18, 128, 255]));
    assert!(load("gray16.png", (9, 5))
        .pixels()
        .all(|p| p.0 == [64, 64, 64]));

    let pal = load("palette.png", (6, 4));
    for (x, y, p) in pal.enumerate_pixels() {
        assert_eq!(
            p.0,
            PALETTE[((x + y) % 3) as usize],
            "palette pixel {x},{y}"
        );
    }

    // Adobe CMYK, stored inverted as Photoshop does: (255,0,0,255) is red.
    let cmyk = load("cmyk.jpg", (16, 8));
    assert_close(cmyk.get_pixel(3, 3).0, [255, 0, 0], 2, "cmyk left");
    assert_close(cmyk.get_pixel(12, 3).0, [100, 200, 50], 2, "cmyk right");

    let prog = load("progressive.jpg", (16, 8));
    assert_close(prog.get_pixel(3, 3).0, PROG_LEFT, 3, "progressive left");
    assert_close(prog.get_pixel(12, 3).0, PROG_RIGHT, 3, "progressive right");

    // Stored 40×20 with red on the left; EXIF 6 means "rotate 90° clockwise to display",
    // which puts the red half on top.
    let rot = load("exif_rotate90.jpg", (20, 40));
    assert_close(rot.get_pixel(10, 4).0, [255, 0, 0], 40, "exif top");
    assert_close(rot.get_pixel(10, 35).0, [0, 0, 255], 40, "exif bottom");

    assert_eq!(
        load("tiny_1x1.png", (3, 2)).pixels().next().unwrap().0,
        [9, 99, 199]
    );
}

#[test]
fn bad_images_fail_fast_with_reasons() {
    let root = build_fixture("bad");
    for (name, want) in DECODE_FAILURES.iter().chain(SCAN_PROBLEMS) {
        let start = Instant::now();
        let err = load_rgb(&root.join(name), Preprocess::Squash, (224, 224)).unwrap_err();
        let want = if *name == "loop/link" {
            "not a regular file"
        } else {
            want
        };
        assert!(err.contains(want), "{name}: {err}");
        assert!(start.elapsed() < Duration::from_secs(2), "{name} was slow");
    }
    // A JPEG with garbage in its entropy data: libjpeg and zune-jpeg both only *warn* about
    // that and return damaged pixels, so we only demand "no panic, and a sane result".
    match load_rgb(
        &root.join(".aside/corrupt_middle.jpg"),
        Preprocess::Squash,
        (32, 32),
    ) {
        Ok(img) => assert_eq!(img.dimensions(), (32, 32)),
        Err(reason) => assert!(!reason.is_empty()),
    }
}

#[test]
fn loader_keeps_order_and_reports_failures_by_index() {
    let root = build_fixture("loader");
    let report = scan_folder(&root).unwrap();
    let paths: Vec<PathBuf> = report.images.iter().map(|e| e.path.clone()).collect();
    let is_bad = |i: usize| {
        DECODE_FAILURES
            .iter()
            .any(|(n, _)| paths[i] == root.join(n))
    };
    // A shuffled order, with repeats, so "in order" is not "sorted".
    let n = paths.len();
    let order: Vec<usize> = (0..2 * n).map(|k| (k * 7 + 3) % n).collect();
    let (w, h) = (12, 10);
    let rx = spawn_loader(
        Arc::new(paths.clone()),
        order.clone(),
        5,
        Preprocess::Squash,
        (w, h),
        3,
    );

    let batches: Vec<_> = rx.iter().collect();
    assert_eq!(batches.len(), order.len().div_ceil(5));
    for (batch, chunk) in batches.iter().zip(order.chunks(5)) {
        let good: Vec<usize> = chunk.iter().copied().filter(|&i| !is_bad(i)).collect();
        let bad: Vec<usize> = chunk.iter().copied().filter(|&i| is_bad(i)).collect();
        assert_eq!(batch.indices, good);
        assert_eq!(batch.failures.iter().map(|f| f.0).collect::<Vec<_>>(), bad);
        assert!(batch.failures.iter().all(|f| !f.1.is_empty()));
        assert_eq!(batch.pixels.len(), good.len() * 3 * (w * h) as usize);
        assert!(batch.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // Pixels are in the same order as `indices`: compare one image against a direct decode.
    let first = &batches[0];
    let direct = load_rgb(&paths[first.indices[0]], Preprocess::Squash, (w, h)).unwrap();
    let plane = 3 * (w * h) as usize;
    assert_eq!(first.pixels[..plane], atlas::data::to_chw_f32(&direct)[..]);
}

#[test]
fn dropping_the_receiver_stops_the_loader() {
    let root = build_fixture("drop");
    let paths: Vec<PathBuf> = GOOD.iter().map(|(p, _, _)| root.join(p)).collect();
    let n = paths.len();
    // Far more work than we will consume: 100 batches.
    let order: Vec<usize> = (0..400).map(|k| k % n).collect();
    let (rx, handle) =
        spawn_loader_joinable(Arc::new(paths), order, 4, Preprocess::Squash, (64, 64), 2);
    assert_eq!(rx.recv().unwrap().indices.len(), 4);
    drop(rx);
    // The coordinator must notice and exit (taking its scoped workers with it) promptly.
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = done_tx.send(handle.join().is_ok());
    });
    let joined = done_rx.recv_timeout(Duration::from_secs(10));
    assert_eq!(
        joined,
        Ok(true),
        "loader thread did not stop after the receiver was dropped"
    );
}

// ---------------------------------------------------------------------------------------------
// Fixture

const PALETTE: [[u8; 3]; 3] = [[255, 0, 0], [0, 128, 255], [10, 20, 30]];
const PROG_LEFT: [u8; 3] = [200, 40, 40];
const PROG_RIGHT: [u8; 3] = [30, 90, 220];

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap().display().to_string()
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A smooth colour gradient, so JPEG compresses it well and pixel checks are meaningful.
fn gradient(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w.max(2)) as u8, (y * 255 / h.max(2)) as u8, 128])
    }))
}

/// Write the messy folder into a fresh temp dir and return its path.
/// The whole CLI over the messy folder: exits 0, collects every good image, and names every bad
/// file with its reason in problems.csv.
#[test]
fn collect_cli_over_messy_folder_processes_good_and_reports_bad() {
    let root = build_fixture("cli");
    let out_dir = common::scratch("bad-input-run");
    let out = out_dir.join("run");
    let model = atlas::defaults::default_model();
    assert!(model.exists(), "run scripts/setup.sh first");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["collect", "--layers", "head", "--batch", "4"])
        .arg("--model")
        .arg(&model)
        .arg("--images")
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "exit {:?}: {stderr}", run.status);
    let predictions = fs::read_to_string(out.join("predictions.csv")).unwrap();
    assert_eq!(predictions.lines().count(), 1 + GOOD.len(), "{predictions}");
    for (good, _, _) in GOOD {
        assert!(
            predictions.contains(&*root.join(good).to_string_lossy()),
            "{good} missing from predictions"
        );
    }
    let problems = fs::read_to_string(out.join("problems.csv")).unwrap();
    assert_eq!(
        problems.lines().count(),
        1 + SCAN_PROBLEMS.len() + DECODE_FAILURES.len(),
        "{problems}"
    );
    for (bad, why) in SCAN_PROBLEMS.iter().chain(DECODE_FAILURES) {
        let line = problems
            .lines()
            .find(|l| l.contains(&*root.join(bad).to_string_lossy()))
            .unwrap_or_else(|| panic!("{bad} not named in problems.csv:\n{problems}"));
        assert!(line.contains(why), "{line}");
    }
    let acts = atlas::store::npy::read(&out.join("layers/head/acts.npy")).unwrap();
    assert_eq!(acts.rows, GOOD.len());
}

fn build_fixture(tag: &str) -> common::Scratch {
    let root = common::scratch(&format!("bad-input-{tag}"));
    fs::create_dir_all(root.join("cats/nested")).unwrap();
    fs::create_dir_all(root.join("loop")).unwrap();
    let put = |name: &str, bytes: &[u8]| fs::write(root.join(name), bytes).unwrap();

    let good_jpg = encode(gradient(64, 48), ImageFormat::Jpeg);
    let good_png = encode(gradient(64, 48), ImageFormat::Png);
    put("good.jpg", &good_jpg);
    put("good.png", &good_png);
    let gray = image::GrayImage::from_fn(24, 16, |x, _| image::Luma([(x * 10) as u8 + 10]));
    put(
        "cats/gray.jpg",
        &encode(DynamicImage::ImageLuma8(gray), ImageFormat::Jpeg),
    );
    put(
        "cats/nested/deep.png",
        &encode(gradient(5, 7), ImageFormat::Png),
    );
    let rgb16 = image::ImageBuffer::from_pixel(7, 3, image::Rgb([0x1234u16, 0x8000, 0xFFFF]));
    put(
        "rgb16.png",
        &encode(DynamicImage::ImageRgb16(rgb16), ImageFormat::Png),
    );
    let gray16 = image::ImageBuffer::from_pixel(9, 5, image::Luma([0x4040u16]));
    put(
        "gray16.png",
        &encode(DynamicImage::ImageLuma16(gray16), ImageFormat::Png),
    );
    let rgba = image::RgbaImage::from_pixel(8, 8, image::Rgba([200, 30, 60, 128]));
    put(
        "rgba.png",
        &encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
    );
    put(
        "tall_1x300.png",
        &encode(gradient(1, 300), ImageFormat::Png),
    );
    put(
        "wide_500x1.jpg",
        &encode(gradient(500, 1), ImageFormat::Jpeg),
    );
    let tiny = RgbImage::from_pixel(1, 1, image::Rgb([9, 99, 199]));
    put(
        "tiny_1x1.png",
        &encode(DynamicImage::ImageRgb8(tiny), ImageFormat::Png),
    );
    put("palette.png", &tiny_png::palette(6, 4, &PALETTE));
    put("cmyk.jpg", &tiny_jpeg::cmyk_two_blocks());
    put(
        "progressive.jpg",
        &tiny_jpeg::progressive_two_blocks(PROG_LEFT, PROG_RIGHT),
    );
    let halves = RgbImage::from_fn(40, 20, |x, _| {
        image::Rgb(if x < 20 { [255, 0, 0] } else { [0, 0, 255] })
    });
    let halves = encode(DynamicImage::ImageRgb8(halves), ImageFormat::Jpeg);
    put(
        "exif_rotate90.jpg",
        &tiny_jpeg::with_exif_orientation(&halves, 6),
    );
    put(".hidden.png", &good_png);

    // Bad files.
    put("empty.jpg", b"");
    put("text.jpg", b"<html>404 Not Found</html>\n");
    put("truncated.jpg", &good_jpg[..good_jpg.len() / 2]);
    let noisy = RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([
            ((x * 31) ^ (y * 17)) as u8,
            (x * y) as u8,
            (x + 3 * y) as u8,
        ])
    });
    let mut corrupt = encode(DynamicImage::ImageRgb8(noisy), ImageFormat::Png);
    let mid = corrupt.len() / 2;
    corrupt[mid..mid + 8].copy_from_slice(b"\xde\xad\xbe\xef\xde\xad\xbe\xef");
    put("corrupt_middle.png", &corrupt);
    put(
        "bomb_100000px.png",
        &tiny_png::header_only(100_000, 100_000, 8, 2),
    );
    // Within the side limit, but 19000×19000 RGBA16 would need 2.7 GB.
    put(
        "bomb_alloc.png",
        &tiny_png::header_only(19_000, 19_000, 16, 6),
    );
    // Garbage inside a JPEG's entropy data. It sits in a hidden folder, which the scan must
    // skip silently; the decode test loads it directly.
    let mut corrupt_jpg = good_jpg.clone();
    let mid = corrupt_jpg.len() / 2;
    corrupt_jpg[mid..mid + 8].copy_from_slice(b"\x13\x37\x13\x37\x13\x37\x13\x37");
    fs::create_dir_all(root.join(".aside")).unwrap();
    fs::write(root.join(".aside/corrupt_middle.jpg"), &corrupt_jpg).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("..", root.join("loop/link")).unwrap();
    root
}

/// Byte-wise closeness, for lossy formats.
fn assert_close(got: [u8; 3], want: [u8; 3], tol: u8, what: &str) {
    let ok = got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= tol);
    assert!(ok, "{what}: got {got:?}, want {want:?} ± {tol}");
}

// ---------------------------------------------------------------------------------------------
// Hand-written encoders for what the `image` crate cannot write.

/// PNG files written chunk by chunk, with an uncompressed ("stored") zlib stream.
mod tiny_png {
    /// CRC-32 (ISO-HDLC), bit by bit: slow but tiny, and fixtures are small.
    pub fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    0xEDB8_8320 ^ (crc >> 1)
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    /// zlib stream made of stored (uncompressed) deflate blocks.
    fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = if data.is_empty() {
            vec![&[]]
        } else {
            data.chunks(65_535).collect()
        };
        for (i, block) in blocks.iter().enumerate() {
            out.push(u8::from(i + 1 == blocks.len())); // BFINAL on the last block, BTYPE=00
            let len = block.len() as u16;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
        out.extend_from_slice(&adler32(data).to_be_bytes());
        out
    }

    fn chunk(out: &mut Vec<u8>, kind: [u8; 4], body: &[u8]) {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(&kind);
        out.extend_from_slice(body);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }

    fn png(
        w: u32,
        h: u32,
        depth: u8,
        color: u8,
        extra: &[(&[u8; 4], Vec<u8>)],
        raw: &[u8],
    ) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[depth, color, 0, 0, 0]); // deflate, adaptive filter, no interlace
        chunk(&mut out, *b"IHDR", &ihdr);
        for (kind, body) in extra {
            chunk(&mut out, **kind, body);
        }
        chunk(&mut out, *b"IDAT", &zlib_stored(raw));
        chunk(&mut out, *b"IEND", &[]);
        out
    }

    /// 8-bit palette PNG; pixel (x, y) uses colour (x + y) % 3. Colour 1 is fully transparent
    /// (tRNS), to check that alpha is dropped rather than blended.
    pub fn palette(w: u32, h: u32, colours: &[[u8; 3]; 3]) -> Vec<u8> {
        let plte: Vec<u8> = colours.iter().flatten().copied().collect();
        let mut raw = Vec::new();
        for y in 0..h {
            raw.push(0); // filter type None
            raw.extend((0..w).map(|x| ((x + y) % 3) as u8));
        }
        png(
            w,
            h,
            8,
            3,
            &[(b"PLTE", plte), (b"tRNS", vec![255, 0, 255])],
            &raw,
        )
    }

    /// A valid-looking PNG whose header claims `w × h` but whose data is a few bytes.
    pub fn header_only(w: u32, h: u32, depth: u8, color: u8) -> Vec<u8> {
        png(w, h, depth, color, &[], &[0; 16])
    }
}

/// Baseline and progressive JPEGs made of flat 8×8 blocks. With an all-ones quantization table
/// a flat block of sample value v has a single non-zero coefficient, DC = 8·(v − 128), so the
/// encoder needs no DCT: just Huffman-coded DC differences and an end-of-block per block.
mod tiny_jpeg {
    /// The standard luminance DC Huffman table (JPEG spec K.3): categories 0..=11.
    const DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    /// An AC table with one symbol, 0x00 (end of block / EOB run of 1), coded as the bit "0".
    const AC_BITS: [u8; 16] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const AC_VALS: [u8; 1] = [0];

    /// MSB-first bit writer with JPEG's 0xFF byte stuffing.
    #[derive(Default)]
    struct Bits {
        out: Vec<u8>,
        acc: u8,
        n: u8,
    }

    impl Bits {
        fn put(&mut self, code: u32, len: u8) {
            for i in (0..len).rev() {
                self.acc = (self.acc << 1) | ((code >> i) & 1) as u8;
                self.n += 1;
                if self.n == 8 {
                    self.out.push(self.acc);
                    if self.acc == 0xFF {
                        self.out.push(0x00);
                    }
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }

        /// Pad the last byte with 1 bits, as the spec asks.
        fn finish(mut self) -> Vec<u8> {
            while self.n != 0 {
                self.put(1, 1);
            }
            self.out
        }
    }

    /// Canonical Huffman codes (code, length) indexed by symbol.
    fn codes(bits: &[u8; 16], vals: &[u8]) -> Vec<(u32, u8)> {
        let mut table = vec![(0, 0); 256];
        let (mut code, mut k) = (0u32, 0);
        for len in 1..=16u8 {
            for _ in 0..bits[usize::from(len) - 1] {
                table[usize::from(vals[k])] = (code, len);
                code += 1;
                k += 1;
            }
            code <<= 1;
        }
        table
    }

    fn put_dc(bits: &mut Bits, dc: &[(u32, u8)], diff: i32) {
        let cat = 32 - diff.unsigned_abs().leading_zeros();
        let (code, len) = dc[cat as usize];
        bits.put(code, len);
        if cat > 0 {
            // Negative values are sent as diff - 1 in `cat` bits (one's complement style).
            let v = if diff < 0 { diff - 1 } else { diff };
            bits.put(v as u32 & ((1 << cat) - 1), cat as u8);
        }
    }

    fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(body);
    }

    /// A JPEG of `w × h` (multiples of 8) where `block(bx, by)` gives each component's flat
    /// sample value for block (bx, by).
    fn encode(
        w: u16,
        h: u16,
        adobe_cmyk: bool,
        progressive: bool,
        block: impl Fn(u16, u16) -> Vec<u8>,
    ) -> Vec<u8> {
        let ncomp = block(0, 0).len() as u8;
        let mut out = vec![0xFF, 0xD8];
        if adobe_cmyk {
            // APP14 "Adobe": version 100, flags 0, 0, transform 0 (= CMYK, not YCCK).
            segment(&mut out, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00");
        }
        let mut dqt = vec![0x00];
        dqt.extend_from_slice(&[1; 64]);
        segment(&mut out, 0xDB, &dqt);
        let mut sof = vec![8];
        sof.extend_from_slice(&h.to_be_bytes());
        sof.extend_from_slice(&w.to_be_bytes());
        sof.push(ncomp);
        for c in 0..ncomp {
            sof.extend_from_slice(&[c + 1, 0x11, 0]); // id, no subsampling, quant table 0
        }
        segment(&mut out, if progressive { 0xC2 } else { 0xC0 }, &sof);
        let mut dht = vec![0x00];
        dht.extend_from_slice(&DC_BITS);
        dht.extend_from_slice(&DC_VALS);
        dht.push(0x10);
        dht.extend_from_slice(&AC_BITS);
        dht.extend_from_slice(&AC_VALS);
        segment(&mut out, 0xC4, &dht);

        let (dc, ac) = (codes(&DC_BITS, &DC_VALS), codes(&AC_BITS, &AC_VALS));
        let blocks: Vec<(u16, u16)> = (0..h / 8)
            .flat_map(|by| (0..w / 8).map(move |bx| (bx, by)))
            .collect();
        let all: Vec<u8> = (1..=ncomp).collect();
        // One scan: (components, spectral start, spectral end).
        let scans: Vec<(Vec<u8>, u8, u8)> = if progressive {
            // DC of all components interleaved, then each component's AC band on its own.
            let mut s = vec![(all.clone(), 0, 0)];
            s.extend((1..=ncomp).map(|c| (vec![c], 1, 63)));
            s
        } else {
            vec![(all, 0, 63)]
        };
        for (comps, ss, se) in scans {
            let mut sos = vec![comps.len() as u8];
            for &c in &comps {
                sos.extend_from_slice(&[c, 0x00]); // DC table 0, AC table 0
            }
            sos.extend_from_slice(&[ss, se, 0x00]);
            segment(&mut out, 0xDA, &sos);
            let mut bits = Bits::default();
            let mut pred = vec![0i32; usize::from(ncomp)];
            for &(bx, by) in &blocks {
                let values = block(bx, by);
                for &c in &comps {
                    let ci = usize::from(c - 1);
                    if ss == 0 {
                        let dc_val = 8 * (i32::from(values[ci]) - 128);
                        put_dc(&mut bits, &dc, dc_val - pred[ci]);
                        pred[ci] = dc_val;
                    }
                    if se > 0 {
                        bits.put(ac[0].0, ac[0].1); // end of block: all AC zero
                    }
                }
            }
            out.extend_from_slice(&bits.finish());
        }
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    /// 16×8 Adobe CMYK: left block (C,M,Y,K) stored inverted (255,0,0,255) → red;
    /// right block (128,255,64,200) → RGB ≈ (100,200,50).
    pub fn cmyk_two_blocks() -> Vec<u8> {
        encode(16, 8, true, false, |bx, _| {
            if bx == 0 {
                vec![255, 0, 0, 255]
            } else {
                vec![128, 255, 64, 200]
            }
        })
    }

    /// JFIF full-range RGB → YCbCr, as the decoders undo it.
    fn ycbcr([r, g, b]: [u8; 3]) -> Vec<u8> {
        let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
        let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
        [y, cb, cr]
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect()
    }

    /// 16×8 progressive YCbCr JPEG, left block `left`, right block `right`.
    pub fn progressive_two_blocks(left: [u8; 3], right: [u8; 3]) -> Vec<u8> {
        encode(16, 8, false, true, |bx, _| {
            ycbcr(if bx == 0 { left } else { right })
        })
    }

    /// Insert an EXIF APP1 segment carrying only an Orientation tag right after SOI.
    pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec(); // big-endian, IFD at offset 8
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]); // Orientation, SHORT, 1
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // value padding + no next IFD
        let mut app1 = b"Exif\x00\x00".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        segment(&mut out, 0xE1, &app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }
}
