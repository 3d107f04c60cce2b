//! The QR code of a TOTP enrollment URI as a PNG image, for authenticator apps to scan.
//!
//! `qrcode` lays out the modules; the PNG is written here (1-bit greyscale, the image data in
//! stored deflate blocks), which spares authd an image library for one small picture: the QR
//! code of a typical `otpauth://` URI is 318 × 318 pixels and 13 KB this way.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module.
const SCALE: usize = 6;
/// White modules around the code, as the QR specification asks.
const QUIET_ZONE: usize = 4;
/// The most a stored deflate block holds.
const STORED_BLOCK: usize = 65_535;

/// A PNG of the QR code of `text` (error correction level M, which apps read from a screen).
pub fn png(text: &str) -> anyhow::Result<Vec<u8>> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| anyhow::anyhow!("cannot make a QR code of the URI: {e}"))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    let row_bytes = side.div_ceil(8);

    // Each row: the filter type (0, none), then 8 pixels a byte, most significant first; a set
    // bit is white.
    let mut raw = Vec::with_capacity(side * (row_bytes + 1));
    for y in 0..side {
        raw.push(0);
        let start = raw.len();
        raw.resize(start + row_bytes, 0);
        for x in 0..side {
            let (mx, my) = (x / SCALE, y / SCALE);
            let dark = mx >= QUIET_ZONE
                && my >= QUIET_ZONE
                && mx < QUIET_ZONE + modules
                && my < QUIET_ZONE + modules
                && colors[(my - QUIET_ZONE) * modules + (mx - QUIET_ZONE)] == Color::Dark;
            if !dark {
                raw[start + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }

    let side = u32::try_from(side)?;
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&side.to_be_bytes());
    // Bit depth 1, greyscale, deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[1, 0, 0, 0, 0]);

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

/// A PNG chunk: length, type, data, and the CRC-32 of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream (RFC 1950) of `data` in stored (uncompressed) deflate blocks (RFC 1951 §3.2.4).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(STORED_BLOCK).max(1);
    let mut out = Vec::with_capacity(data.len() + blocks * 5 + 6);
    // Deflate with a 32 KiB window, no dictionary; 0x7801 is a multiple of 31 as the header's
    // check requires.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = data.chunks(STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = chunks.next() {
        let last = chunks.peek().is_none();
        out.push(u8::from(last));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back what `png` writes, checking every checksum on the way: (side, pixels, white
    /// as true).
    fn read_png(png: &[u8]) -> (usize, Vec<bool>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (mut at, mut header, mut idat) = (8, Vec::new(), Vec::new());
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind = &png[at + 4..at + 8];
            let data = &png[at + 8..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32(&png[at + 4..at + 8 + len]), "CRC of {kind:?}");
            match kind {
                b"IHDR" => header = data.to_vec(),
                b"IDAT" => idat.extend_from_slice(data),
                b"IEND" => assert_eq!(at + 12 + len, png.len(), "IEND is last"),
                other => panic!("unexpected chunk {other:?}"),
            }
            at += 12 + len;
        }
        let side = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
        assert_eq!(&header[4..8], &header[..4], "square");
        assert_eq!(&header[8..], &[1, 0, 0, 0, 0]);
        assert_eq!(
            u16::from_be_bytes([idat[0], idat[1]]) % 31,
            0,
            "zlib header check"
        );
        let (mut at, mut raw) = (2, Vec::new());
        loop {
            let last = idat[at] & 1 == 1;
            assert_eq!(idat[at] >> 1, 0, "stored block");
            let len = u16::from_le_bytes([idat[at + 1], idat[at + 2]]);
            let nlen = u16::from_le_bytes([idat[at + 3], idat[at + 4]]);
            assert_eq!(len, !nlen);
            raw.extend_from_slice(&idat[at + 5..at + 5 + len as usize]);
            at += 5 + len as usize;
            if last {
                break;
            }
        }
        assert_eq!(
            u32::from_be_bytes(idat[at..at + 4].try_into().unwrap()),
            adler32(&raw)
        );
        let row_bytes = side.div_ceil(8);
        assert_eq!(raw.len(), side * (row_bytes + 1));
        let mut pixels = Vec::with_capacity(side * side);
        for row in raw.chunks(row_bytes + 1) {
            assert_eq!(row[0], 0, "filter type none");
            for x in 0..side {
                pixels.push(row[1 + x / 8] & (0x80 >> (x % 8)) != 0);
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
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        // An empty stream is one empty final block.
        assert_eq!(
            zlib_stored(&[]),
            [0x78, 0x01, 1, 0, 0, 0xff, 0xff, 0, 0, 0, 1]
        );
    }
}
