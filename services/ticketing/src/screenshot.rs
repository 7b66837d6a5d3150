//! Screenshots, without I/O: what a file is, read from its bytes (never from its name or a
//! declared type), and the image decoded and written again in its own format, which keeps the
//! pixels and drops everything else a file may carry (camera and location, comments, colour
//! profiles, anything appended); and rectangles blacked out before an image leaves the
//! organization.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, Rgba};

/// The largest upload, in bytes (the proto says so too).
pub const MAX_BYTES: usize = 10 * 1024 * 1024;
/// The largest chunk of an upload, in bytes.
pub const MAX_CHUNK: usize = 1024 * 1024;
/// The widest and tallest image decoded, in pixels (a small file may claim a huge image).
const MAX_SIDE: u32 = 16_384;
/// The most pixels an image may have (a phone's largest screens are under 10 million): what
/// the conversions after decoding copy is bounded by it too.
const MAX_PIXELS: u64 = 40_000_000;
/// The most memory a decoder may take.
const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// The formats a screenshot may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    Webp,
}

impl Format {
    /// What the bytes are, by their signature.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Format::Webp)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Webp => "image/webp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Png => ImageFormat::Png,
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Webp => ImageFormat::WebP,
        }
    }
}

/// An image written again: its format, bytes and size.
#[derive(Clone, Debug)]
pub struct Clean {
    pub format: Format,
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// A rectangle of an image, in pixels from its top left corner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Reads an upload: a PNG, JPEG or WebP image by its bytes, decoded (turned upright as its
/// camera said) and written again; why not otherwise.
pub fn clean(bytes: &[u8]) -> Result<Clean, String> {
    let format = Format::sniff(bytes)
        .ok_or("is not a PNG, JPEG or WebP image (read from its bytes, not its name)")?;
    let image = decode(bytes, format)?;
    encode(image, format)
}

/// Blacks out `rects` of a stored image and writes it again.
pub fn redact(bytes: &[u8], format: Format, rects: &[Rect]) -> Result<Clean, String> {
    let mut image = decode(bytes, format)?.into_rgba8();
    for r in rects {
        for y in r.y..r.y.saturating_add(r.height).min(image.height()) {
            for x in r.x..r.x.saturating_add(r.width).min(image.width()) {
                image.put_pixel(x, y, Rgba([0, 0, 0, 255]));
            }
        }
    }
    encode(DynamicImage::ImageRgba8(image), format)
}

/// Whether a rectangle lies within an image of this size, and is not empty.
pub fn within(r: &Rect, width: u32, height: u32) -> bool {
    r.width > 0
        && r.height > 0
        && u64::from(r.x) + u64::from(r.width) <= u64::from(width)
        && u64::from(r.y) + u64::from(r.height) <= u64::from(height)
}

fn decode(bytes: &[u8], format: Format) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let unreadable = |e: image::ImageError| format!("is not a readable image: {e}");
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(format!(
            "is {width} x {height} pixels; an image has at most 40 million"
        ));
    }
    let orientation = decoder.orientation().map_err(unreadable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn encode(image: DynamicImage, format: Format) -> Result<Clean, String> {
    let (width, height) = (image.width(), image.height());
    let mut bytes = Vec::new();
    let written = match format {
        // JPEG holds no alpha; quality 90 keeps a screen's text legible.
        Format::Jpeg => {
            let rgb = DynamicImage::ImageRgb8(image.into_rgb8());
            let encoder =
                image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut bytes), 90);
            rgb.write_with_encoder(encoder)
        }
        // The WebP encoder is lossless and takes 8-bit RGB or RGBA.
        Format::Webp => DynamicImage::ImageRgba8(image.into_rgba8())
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::WebP),
        Format::Png => image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png),
    };
    written.map_err(|e| format!("could not be written again: {e}"))?;
    Ok(Clean {
        format,
        bytes,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use caseway_test_support::images::{
        contains, jpeg_with_exif, pdf, picture, png_claiming, png_with_text,
    };

    use super::*;

    #[test]
    fn metadata_is_dropped_and_the_pixels_kept() {
        let tagged = png_with_text(b"Location\x0040.7128 N, 74.0060 W");
        assert!(contains(&tagged, b"40.7128"));
        let clean = clean(&tagged).unwrap();
        assert_eq!(
            (clean.format, clean.width, clean.height),
            (Format::Png, 64, 48)
        );
        assert!(!contains(&clean.bytes, b"40.7128"));
        assert!(!contains(&clean.bytes, b"tEXt"));

        let tagged = jpeg_with_exif(b"GPS 40.7128 N 74.0060 W");
        let clean = super::clean(&tagged).unwrap();
        assert_eq!(clean.format, Format::Jpeg);
        assert!(!contains(&clean.bytes, b"Exif"));
        assert!(!contains(&clean.bytes, b"40.7128"));

        let webp = super::clean(&picture(ImageFormat::WebP)).unwrap();
        assert_eq!((webp.format, webp.width), (Format::Webp, 64));
    }

    #[test]
    fn what_is_not_an_image_is_refused_whatever_it_is_called() {
        assert!(
            clean(&pdf())
                .unwrap_err()
                .contains("is not a PNG, JPEG or WebP image")
        );
        // A PNG signature on bytes that are not one.
        let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
        fake.extend_from_slice(&[0u8; 64]);
        assert!(
            clean(&fake)
                .unwrap_err()
                .contains("is not a readable image")
        );
        // A header claiming a huge image is refused before the memory is taken: past a side's
        // bound, or within it but too many pixels in all.
        assert!(clean(&png_claiming(100_000, 100_000)).is_err());
        assert!(
            clean(&png_claiming(10_000, 10_000))
                .unwrap_err()
                .contains("at most 40 million")
        );
    }

    #[test]
    fn redaction_blacks_out_the_rectangles_only() {
        let png = picture(ImageFormat::Png);
        let rect = Rect {
            x: 10,
            y: 5,
            width: 20,
            height: 10,
        };
        assert!(within(&rect, 64, 48));
        assert!(!within(&Rect { x: 60, ..rect }, 64, 48));
        assert!(!within(&Rect { width: 0, ..rect }, 64, 48));
        let redacted = redact(&png, Format::Png, &[rect]).unwrap();
        let image = image::load_from_memory(&redacted.bytes)
            .unwrap()
            .into_rgba8();
        let black = Rgba([0, 0, 0, 255]);
        assert_eq!(image.get_pixel(10, 5), &black);
        assert_eq!(image.get_pixel(29, 14), &black);
        assert_ne!(image.get_pixel(30, 14), &black);
        assert_ne!(image.get_pixel(9, 5), &black);
    }
}
