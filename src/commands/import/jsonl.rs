//! Reading users from a JSON Lines file: one object a line with `id` (string or integer),
//! `email`, `password_hash`, `name` and `email_verified`; other fields are ignored. A line that
//! is not such an object is reported with its number, and a line longer than [`MAX_LINE`] is
//! skipped without ever being held whole in memory. Blank lines are passed over.

use super::queries::SourceRow;
use super::row::Place;
use serde_json::Value;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The longest line read: far more than any user record needs.
pub const MAX_LINE: usize = 64 * 1024;

/// One line of the file.
pub enum Line {
    Row(Place, SourceRow),
    Malformed(Place),
}

pub struct JsonlReader {
    reader: BufReader<tokio::fs::File>,
    line: u64,
    buf: Vec<u8>,
}

impl JsonlReader {
    pub async fn open(path: &Path) -> std::io::Result<Self> {
        let file = tokio::fs::File::open(path).await?;
        Ok(Self {
            reader: BufReader::with_capacity(256 * 1024, file),
            line: 0,
            buf: Vec::new(),
        })
    }

    /// Up to `rows` lines that are not blank; empty at the end of the file.
    pub async fn next_page(&mut self, rows: usize) -> std::io::Result<Vec<Line>> {
        let mut page = Vec::with_capacity(rows.min(10_000));
        while page.len() < rows {
            let Some(too_long) = self.read_line().await? else {
                break;
            };
            let malformed = |detail| {
                Line::Malformed(Place {
                    line: Some(self.line),
                    id: None,
                    detail: Some(detail),
                })
            };
            if too_long {
                page.push(malformed("longer than 64 KiB"));
                continue;
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            page.push(match parse(&self.buf) {
                Ok(row) => Line::Row(
                    Place {
                        line: Some(self.line),
                        id: row.id.clone(),
                        detail: None,
                    },
                    row,
                ),
                Err(detail) => malformed(detail),
            });
        }
        Ok(page)
    }

    /// The next line into `buf` (without its newline); `Some(true)` when it was too long and
    /// was skipped; `None` at the end of the file.
    async fn read_line(&mut self) -> std::io::Result<Option<bool>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(if any {
                    self.line += 1;
                    Some(too_long)
                } else {
                    None
                });
            }
            any = true;
            let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (&available[..end], end + 1, true),
                None => (available, available.len(), false),
            };
            if !too_long {
                if self.buf.len() + chunk.len() > MAX_LINE {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            self.reader.consume(used);
            if done {
                self.line += 1;
                return Ok(Some(too_long));
            }
        }
    }
}

/// A line's fields; the error says what is wrong, never quoting the line.
fn parse(line: &[u8]) -> Result<SourceRow, &'static str> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8")?;
    let value: Value = serde_json::from_str(text.trim_end_matches('\r')).map_err(|_| "not JSON")?;
    let Value::Object(fields) = value else {
        return Err("not a JSON object");
    };
    let text = |name: &str, wrong: &'static str| match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong),
    };
    let id = match fields.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Some(_) => return Err("`id` is neither a string nor an integer"),
    };
    let email_verified = match fields.get("email_verified") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err("`email_verified` is not a boolean"),
    };
    Ok(SourceRow {
        id,
        email: text("email", "`email` is not a string")?,
        password_hash: text("password_hash", "`password_hash` is not a string")?,
        name: text("name", "`name` is not a string")?,
        email_verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fields_are_read_by_name_and_type() {
        let row = parse(
            br#"{"id": 42, "email": "a@example.com", "password_hash": "$2b$x", "name": null, "email_verified": true, "extra": [1]}"#,
        )
        .unwrap();
        assert_eq!(row.id.as_deref(), Some("42"));
        assert_eq!(row.email.as_deref(), Some("a@example.com"));
        assert_eq!(row.name, None);
        assert_eq!(row.email_verified, Some(true));
        assert_eq!(
            parse(br#"{"id": "cl9x", "email": "a@example.com"}"#).map(|r| r.id),
            Ok(Some("cl9x".to_owned()))
        );
        for (bad, why) in [
            (&b"{not json"[..], "not JSON"),
            (b"[1, 2]", "not a JSON object"),
            (b"\xff\xfe", "not UTF-8"),
            (br#"{"id": 1.5}"#, "`id` is neither a string nor an integer"),
            (br#"{"email": 7}"#, "`email` is not a string"),
            (
                br#"{"email_verified": "yes"}"#,
                "`email_verified` is not a boolean",
            ),
        ] {
            assert_eq!(parse(bad).err(), Some(why));
        }
    }

    #[tokio::test]
    async fn long_and_blank_lines_keep_the_line_numbers_right() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, r#"{{"id": 1, "email": "a@example.com"}}"#).unwrap();
        writeln!(file).unwrap();
        writeln!(file, "{}", "x".repeat(1 << 20)).unwrap();
        writeln!(file, "nope").unwrap();
        write!(file, r#"{{"id": 5}}"#).unwrap();
        let mut reader = JsonlReader::open(file.path()).await.unwrap();
        let page = reader.next_page(10).await.unwrap();
        let seen: Vec<(u64, Option<&str>)> = page
            .iter()
            .map(|line| match line {
                Line::Row(place, _) => (place.line.unwrap(), None),
                Line::Malformed(place) => (place.line.unwrap(), place.detail),
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, None),
                (3, Some("longer than 64 KiB")),
                (4, Some("not JSON")),
                (5, None)
            ]
        );
        assert!(reader.next_page(10).await.unwrap().is_empty());
    }
}
