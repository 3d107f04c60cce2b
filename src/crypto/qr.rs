//! The QR code of a TOTP enrollment URI as a PNG image, for authenticator apps to scan.
//!
//! `qrcode` lays out the modules and `png` writes the picture: 1-bit greyscale, so the QR code of
//! a typical `otpauth://` URI is 318 × 318 pixels and well under 2 KB.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module.
const SCALE: usize = 6;
/// White modules around the code, as the QR specification asks.
const QUIET_ZONE: usize = 4;

/// A PNG of the QR code of `text` (error correction level M, which apps read from a screen).
pub fn png(text: &str) -> anyhow::Result<Vec<u8>> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| anyhow::anyhow!("cannot make a QR code of the URI: {e}"))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    let row_bytes = side.div_ceil(8);

    // 8 pixels a byte, most significant first, each row starting on a byte; a set bit is white.
    let mut pixels = vec![0u8; side * row_bytes];
    for y in 0..side {
        let row = &mut pixels[y * row_bytes..(y + 1) * row_bytes];
        for x in 0..side {
            let (mx, my) = (x / SCALE, y / SCALE);
            let dark = mx >= QUIET_ZONE
                && my >= QUIET_ZONE
                && mx < QUIET_ZONE + modules
                && my < QUIET_ZONE + modules
                && colors[(my - QUIET_ZONE) * modules + (mx - QUIET_ZONE)] == Color::Dark;
            if !dark {
                row[x / 8] |= 0x80 >> (x % 8);
            }
        }
    }

    let side = u32::try_from(side)?;
    let mut out = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut out, side, side);
    encoder.set_color(::png::ColorType::Grayscale);
    encoder.set_depth(::png::BitDepth::One);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes what `png` writes, with the `png` crate's reader (which checks every CRC and the
    /// zlib stream): (side, pixels, white as true).
    fn read_png(png: &[u8]) -> (usize, Vec<bool>) {
        let mut reader = ::png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .expect("a well-formed PNG");
        let info = reader.info();
        let side = info.width as usize;
        assert_eq!(info.height, info.width, "square");
        assert_eq!(
            (info.color_type, info.bit_depth),
            (::png::ColorType::Grayscale, ::png::BitDepth::One)
        );
        let mut raw = vec![0; reader.output_buffer_size().expect("a small picture")];
        let frame = reader.next_frame(&mut raw).expect("the image data decodes");
        assert_eq!(frame.line_size, side.div_ceil(8));
        let mut pixels = Vec::with_capacity(side * side);
        for row in raw.chunks(frame.line_size).take(side) {
            for x in 0..side {
                pixels.push(row[x / 8] & (0x80 >> (x % 8)) != 0);
            }
        }
        (side, pixels)
    }

    fn scan(png: &[u8]) -> String {
        let (side, pixels) = read_png(png);
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| {
            if pixels[y * side + x] { 255 } else { 0 }
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the picture");
        grids[0].decode().expect("the QR code decodes").1
    }

    #[test]
    fn the_png_is_well_formed_and_a_scanner_reads_the_uri_back() {
        let uri = "otpauth://totp/authd:ann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
                   &issuer=authd&algorithm=SHA1&digits=6&period=30";
        let png = png(uri).unwrap();
        assert_eq!(scan(&png), uri);
        assert!(png.len() < 40_000, "{} bytes", png.len());
    }

    #[test]
    fn a_long_account_name_still_makes_a_readable_code() {
        let account = format!("{}%40example.com", "a".repeat(240));
        let uri = format!("otpauth://totp/authd:{account}?secret=GEZDGNBVGY3TQOJQ&issuer=authd");
        assert_eq!(scan(&png(&uri).unwrap()), uri);
    }

    #[test]
    fn modules_are_six_pixels_inside_a_white_quiet_zone() {
        let uri = "otpauth://totp/authd:ann%40example.com?secret=GEZDGNBVGY3TQOJQ&issuer=authd";
        let modules = QrCode::with_error_correction_level(uri, EcLevel::M)
            .unwrap()
            .width();
        let (side, pixels) = read_png(&png(uri).unwrap());
        assert_eq!(side, (modules + 2 * QUIET_ZONE) * SCALE);
        let border = QUIET_ZONE * SCALE;
        let white = |x: usize, y: usize| pixels[y * side + x];
        for i in 0..side {
            for d in 0..border {
                assert!(white(i, d) && white(d, i), "quiet zone at {i}, {d}");
                assert!(white(i, side - 1 - d) && white(side - 1 - d, i));
            }
        }
        // The top-left finder pattern: a dark module, one whole block of 6 × 6 pixels.
        for y in border..border + SCALE {
            for x in border..border + SCALE {
                assert!(!white(x, y), "finder pattern at {x}, {y}");
            }
        }
    }
}
