//! One image file → an RGB image of the model's input size, or a reason why not.
//!
//! Decoding is where hostile or broken files bite, so the order of checks matters:
//! 1. refuse special files and huge files before reading anything;
//! 2. sniff the content (the extension is ignored);
//! 3. refuse truncated JPEGs (the decoder would pad them with grey and call it success);
//! 4. read only the header, with strict limits, so a 100000×100000 "bomb" is refused before any
//!    pixel buffer is allocated;
//! 5. decode, apply EXIF orientation, convert to 8-bit RGB (alpha dropped, as Pillow's
//!    `convert('RGB')` does), then resize;
//! 6. all of it inside `catch_unwind`, so a decoder bug costs one image, not the run.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};

use super::{jpeg, resize};

/// Largest width or height we decode. Bigger images are almost always bombs or scans that a
/// classifier would shrink to 224 px anyway.
pub const MAX_SIDE: u32 = 20_000;
/// Largest decoded pixel buffer, in bytes (e.g. 8-bit RGB up to ~13000×13000).
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;
/// Largest file we read into memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// How an image of any shape becomes the model's fixed input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preprocess {
    /// Resize the whole image to the target size, ignoring aspect ratio (what the Activation
    /// Atlas paper's collection does). Nothing is cut off; shapes get stretched.
    Squash,
    /// torchvision `Resize(resize)` on the shorter side, then `CenterCrop(target)`: the usual
    /// ImageNet evaluation transform (e.g. resize 256, crop 224). Keeps the aspect ratio.
    ResizeShorterCrop { resize: u32 },
}

/// Decode `path` and preprocess it to `size` = (width, height).
///
/// Never panics and never blocks on special files; the error is a short, user-facing reason.
pub fn load_rgb(path: &Path, prep: Preprocess, size: (u32, u32)) -> Result<RgbImage, String> {
    match catch_unwind(AssertUnwindSafe(|| load_rgb_inner(path, prep, size))) {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("decoder crashed on this file: {msg}"))
        }
    }
}

/// Decode `path` at its own size (no resize), with every check of [`load_rgb`]: for pictures
/// that are not model inputs yet, such as attack patches.
pub fn load_original(path: &Path) -> Result<RgbImage, String> {
    match catch_unwind(AssertUnwindSafe(|| decode_bytes(&read_file(path)?))) {
        Ok(result) => result,
        Err(_) => Err("decoder crashed on this file".into()),
    }
}

/// Convert an RGB image to planar `[3, h, w]` floats in [0, 1] (torchvision's `ToTensor`).
pub fn to_chw_f32(img: &RgbImage) -> Vec<f32> {
    let plane = img.width() as usize * img.height() as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(px.0[c]) / 255.0;
        }
    }
    out
}

fn load_rgb_inner(path: &Path, prep: Preprocess, size: (u32, u32)) -> Result<RgbImage, String> {
    check_sizes(prep, size)?;
    let bytes = read_file(path)?;
    let img = decode_bytes(&bytes)?;
    Ok(match prep {
        Preprocess::Squash => resize::squash(&img, size),
        Preprocess::ResizeShorterCrop { resize } => resize::resize_shorter_crop(&img, resize, size),
    })
}

fn check_sizes(prep: Preprocess, (w, h): (u32, u32)) -> Result<(), String> {
    if w == 0 || h == 0 || prep == (Preprocess::ResizeShorterCrop { resize: 0 }) {
        return Err(format!("invalid target size {w}×{h} with {prep:?}"));
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read file: {e}"))?;
    if !meta.is_file() {
        // Opening a FIFO would block forever; devices could be endless.
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "file too large ({} MiB; limit {} MiB)",
            meta.len() >> 20,
            MAX_FILE_BYTES >> 20
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read file: {e}"))?;
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    Ok(bytes)
}

/// Decode an in-memory file to 8-bit RGB with EXIF orientation applied.
pub(crate) fn decode_bytes(bytes: &[u8]) -> Result<RgbImage, String> {
    let format = image::guess_format(bytes)
        .map_err(|_| "not an image (unrecognized content)".to_string())?;
    if format == ImageFormat::Jpeg {
        jpeg::check_complete(bytes)?;
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    // Only the header is parsed here; the dimension limits are checked against it.
    let mut decoder = reader.into_decoder().map_err(|e| describe(format, e))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("corrupt image: it claims to be {w}×{h} pixels"));
    }
    // `into_decoder` does not check the pixel buffer against `max_alloc` (only `decode` does).
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(format!(
            "image too large to decode safely: {w}×{h} {:?} needs {} MiB (limit {} MiB)",
            decoder.color_type(),
            decoder.total_bytes() >> 20,
            MAX_DECODED_BYTES >> 20
        ));
    }
    // A malformed EXIF block should not cost the image: fall back to "as stored".
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| describe(format, e))?;
    img.apply_orientation(orientation);
    // 16-bit → 8-bit rounds; gray is replicated; alpha is dropped (not composited), which is
    // exactly what Pillow's convert('RGB') does for RGBA.
    Ok(img.into_rgb8())
}

/// Turn an `image` error into a reason a user can act on.
fn describe(format: ImageFormat, err: ImageError) -> String {
    let name = format.extensions_str().first().copied().unwrap_or("image");
    match err {
        ImageError::Limits(e) => format!(
            "image too large to decode safely (limits: {MAX_SIDE}×{MAX_SIDE} px, \
             {} MiB): {e}",
            MAX_DECODED_BYTES >> 20
        ),
        ImageError::Decoding(e) => format!("corrupt or truncated {name} file: {e}"),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("truncated {name} file: {e}")
        }
        ImageError::IoError(e) => format!("corrupt {name} file: {e}"),
        ImageError::Unsupported(e) => format!("unsupported {name} variant: {e}"),
        other => format!("cannot decode {name} file: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn chw_layout_and_range() {
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([255 * x as u8, 0, 51]));
        assert_eq!(to_chw_f32(&img), vec![0.0, 1.0, 0.0, 0.0, 0.2, 0.2]);
    }

    #[test]
    fn sixteen_bit_gray_and_alpha_convert_like_pillow() {
        let gray16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(
            3,
            2,
            image::Luma([0x8080u16]),
        ));
        let img = decode_bytes(&encode(&gray16, ImageFormat::Png)).unwrap();
        assert!(img.pixels().all(|p| p.0 == [128, 128, 128]));

        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            2,
            2,
            image::Rgba([10, 20, 30, 0]),
        ));
        let img = decode_bytes(&encode(&rgba, ImageFormat::Png)).unwrap();
        // Fully transparent, yet the colour is kept: alpha is dropped, not composited.
        assert!(img.pixels().all(|p| p.0 == [10, 20, 30]));
    }

    #[test]
    fn garbage_and_empty_are_reasons_not_panics() {
        assert_eq!(
            decode_bytes(b"hello").unwrap_err(),
            "not an image (unrecognized content)"
        );
        assert!(decode_bytes(&[0xFF, 0xD8, 0xFF]).is_err());
        assert!(decode_bytes(b"\x89PNG\r\n\x1a\n").is_err());
    }

    #[test]
    fn invalid_target_size_is_rejected() {
        let err = load_rgb(Path::new("/nonexistent"), Preprocess::Squash, (0, 5)).unwrap_err();
        assert!(err.starts_with("invalid target size"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("atlas-decode-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("pipe.jpg");
        let ok = std::process::Command::new("mkfifo").arg(&fifo).status();
        if ok.is_ok_and(|s| s.success()) {
            let err = load_rgb(&fifo, Preprocess::Squash, (4, 4)).unwrap_err();
            assert_eq!(err, "not a regular file");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
