//! Images as users upload them: a screenshot in each format, and files that carry what a
//! screenshot must not keep (a location in a PNG text chunk or a JPEG's EXIF) or are no image
//! at all.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A 64 x 48 gradient in `format` (PNG, JPEG or WebP).
pub fn picture(format: ImageFormat) -> Vec<u8> {
    let image = RgbImage::from_fn(64, 48, |x, y| Rgb([x as u8 * 4, y as u8 * 5, 200]));
    let image = match format {
        ImageFormat::WebP => DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(image).into_rgba8()),
        _ => DynamicImage::ImageRgb8(image),
    };
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .expect("an image in memory");
    bytes
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG with a text chunk (`keyword\0text`) after its header, as photo tools write a location.
pub fn png_with_text(text: &[u8]) -> Vec<u8> {
    let png = picture(ImageFormat::Png);
    // The signature (8 bytes) and the IHDR chunk (4 + 4 + 13 + 4).
    let (head, tail) = png.split_at(33);
    let mut chunk = b"tEXt".to_vec();
    chunk.extend_from_slice(text);
    let mut out = head.to_vec();
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    out.extend_from_slice(tail);
    out
}

/// A PNG whose header claims `width` x `height` pixels (its checksum right, its pixels those
/// of a small image): what a decompression bomb looks like before it is decoded.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = picture(ImageFormat::Png);
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    // The IHDR chunk's CRC covers its type and data (bytes 12 to 29).
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A JPEG with an EXIF segment after its start, `text` at the end of it, as a phone writes one.
pub fn jpeg_with_exif(text: &[u8]) -> Vec<u8> {
    let jpeg = picture(ImageFormat::Jpeg);
    let mut payload = b"Exif\0\0II*\0\x08\0\0\0\0\0".to_vec();
    payload.extend_from_slice(text);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A small PDF, as a user may rename one `screenshot.png`.
pub fn pdf() -> Vec<u8> {
    b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
        .to_vec()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
