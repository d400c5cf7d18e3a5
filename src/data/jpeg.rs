//! Detect truncated JPEG files.
//!
//! The JPEG decoder behind `image` (zune-jpeg, in its lenient mode) pads a truncated file with
//! grey and reports success, so a half-copied photo would silently become a training example.
//! Pillow refuses such files ("image file is truncated"); we do the same by walking the marker
//! structure and requiring the end-of-image marker. This is cheap (one pass over bytes that are
//! in memory anyway) and exact: inside entropy-coded data a 0xFF byte is always followed by 0x00
//! or a restart marker, so any other marker found there really is the end of the scan.

/// `Ok(())` if the stream reaches its end-of-image (EOI) marker; otherwise why not.
/// Bytes after EOI (camera trailers, appended thumbnails) are allowed.
pub(crate) fn check_complete(data: &[u8]) -> Result<(), String> {
    const TRUNCATED: &str = "truncated JPEG: the file ends before the end-of-image marker";
    if data.len() < 2 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err("corrupt JPEG: missing start-of-image marker".into());
    }
    let mut i = 2;
    loop {
        // Find the next marker. Stray bytes between segments are tolerated, as libjpeg does.
        i += data[i..].iter().position(|&b| b == 0xFF).ok_or(TRUNCATED)?;
        // Any number of 0xFF fill bytes may precede the marker code.
        while data.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *data.get(i).ok_or(TRUNCATED)?;
        i += 1;
        match marker {
            0xD9 => return Ok(()),                 // EOI
            0x00 | 0x01 | 0xD0..=0xD8 => continue, // markers without a length field
            _ => {}
        }
        let len_bytes = data.get(i..i + 2).ok_or(TRUNCATED)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return Err(format!("corrupt JPEG: bad segment length at byte {i}"));
        }
        i += len;
        if i > data.len() {
            return Err(TRUNCATED.into());
        }
        if marker == 0xDA {
            i = skip_entropy_data(data, i).ok_or(TRUNCATED)?;
        }
    }
}

/// Skip the entropy-coded data that follows a start-of-scan header; returns the index of the
/// 0xFF that starts the next real marker, or `None` if the data runs to the end of the file.
fn skip_entropy_data(data: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += data[i..].iter().position(|&b| b == 0xFF)?;
        let mut j = i + 1;
        while data.get(j) == Some(&0xFF) {
            j += 1;
        }
        match *data.get(j)? {
            // Stuffed zero byte or restart marker: still inside the scan.
            0x00 | 0xD0..=0xD7 => i = j + 1,
            _ => return Some(j - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_complete;

    fn encoded_jpeg() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(32, 24, |x, y| image::Rgb([x as u8 * 8, y as u8 * 9, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn complete_file_passes_even_with_trailer() {
        let mut data = encoded_jpeg();
        assert_eq!(check_complete(&data), Ok(()));
        data.extend_from_slice(b"trailing junk some cameras append");
        assert_eq!(check_complete(&data), Ok(()));
    }

    #[test]
    fn every_truncation_is_caught() {
        let data = encoded_jpeg();
        // Cutting anywhere before the final EOI must fail, and never panic.
        for cut in 0..data.len() {
            assert!(check_complete(&data[..cut]).is_err(), "cut at {cut} passed");
        }
    }
}
