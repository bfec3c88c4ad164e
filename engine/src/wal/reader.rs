//! Reading WAL files: line parsing, scanning with torn-tail detection, and
//! replay (spec/persistence.md §3.2, §3.14, §3.15).

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::segments::list_files;
use crate::error::{Error, ErrorCode, Result};

/// What one WAL line holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParsedLine<'a> {
    /// The `lsn` if present and a non-negative integer.
    pub lsn: Option<u64>,
    /// The compact JSON text of `entry` if present and not null.
    pub entry: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    lsn: Option<&'a RawValue>,
    #[serde(borrow, default)]
    entry: Option<&'a RawValue>,
}

/// Parses one non-blank line; `Err` carries the JSON error text.
pub(crate) fn parse_line(line: &[u8]) -> std::result::Result<ParsedLine<'_>, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let is_object = text.trim_start().starts_with('{');
    let envelope =
        if is_object { serde_json::from_str::<Envelope>(text).map_err(|e| e.to_string()) } else { Err(String::new()) };
    match envelope {
        Ok(env) => Ok(ParsedLine {
            lsn: env.lsn.and_then(|raw| {
                let s = raw.get();
                if s.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse().ok()
                } else {
                    None
                }
            }),
            entry: env.entry.map(|raw| compact(raw.get())),
        }),
        Err(e) => match serde_json::from_str::<IgnoredAny>(text) {
            // Valid JSON of another shape (array, number, duplicate keys...).
            Ok(_) => Ok(ParsedLine { lsn: None, entry: None }),
            Err(_) if is_object => Err(e),
            Err(e2) => Err(e2.to_string()),
        },
    }
}

/// Removes JSON whitespace outside strings (entries written by Karma are
/// already compact and are returned borrowed).
pub(crate) fn compact(json: &str) -> Cow<'_, str> {
    if !json.bytes().any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\r' | '\n') {
            out.push(c);
        }
    }
    if out.len() == json.len() {
        Cow::Borrowed(json)
    } else {
        Cow::Owned(out)
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// One line handed to a scan visitor.
pub(crate) struct ScannedLine<'a> {
    /// Byte offset of the first byte of the line in the file.
    pub offset: u64,
    /// 1-based line number, or 0 when the scan did not start at offset 0.
    pub line_no: u64,
    pub parsed: ParsedLine<'a>,
}

/// A torn last line found by a tolerant scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TornTail {
    pub offset: u64,
    pub line_no: u64,
    pub reason: String,
}

/// How a scan ended.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// End offset of the data read (excluding a torn tail).
    pub valid_len: u64,
    pub torn: Option<TornTail>,
    /// The visitor asked to stop early.
    pub stopped: bool,
}

pub(crate) fn location(path: &Path, line_no: u64, offset: u64) -> String {
    if line_no > 0 {
        format!("{}:{} (byte offset {})", path.display(), line_no, offset)
    } else {
        format!("{} (byte offset {})", path.display(), offset)
    }
}

fn corrupt(code: ErrorCode, path: &Path, line_no: u64, offset: u64, why: &str) -> Error {
    Error::new(
        code,
        format!(
            "Invalid WAL JSON at {}: {}; move the file aside or restore from a snapshot",
            location(path, line_no, offset),
            why
        ),
    )
}

/// Scans `path` from byte `start` up to `end` (or EOF), calling `visit` for
/// every non-blank line (return `false` to stop). Lines that are not JSON
/// fail with `code`, except — when `tolerate_torn` — the last non-blank line
/// (unterminated, or invalid JSON), which is reported as `torn` instead.
/// The data ends at EOF or at the first zero byte (the zero-filled tail of
/// an active file), whichever comes first: `valid_len` tells where.
pub(crate) fn scan_file<F>(
    path: &Path,
    file: Option<File>,
    start: u64,
    end: Option<u64>,
    tolerate_torn: bool,
    code: ErrorCode,
    mut visit: F,
) -> Result<ScanEnd>
where
    F: FnMut(ScannedLine<'_>) -> Result<bool>,
{
    let io_err = |e| Error::io(format!("Cannot read WAL file {}", crate::files::label(path)), e);
    let mut file = match file {
        Some(f) => f,
        None => crate::files::open_regular(path, std::fs::OpenOptions::new().read(true)).map_err(io_err)?,
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
    }
    let limit = end.map(|e| e.saturating_sub(start)).unwrap_or(u64::MAX);
    let mut reader = BufReader::with_capacity(1 << 20, file.take(limit));
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut offset = start;
    let mut line_no: u64 = 0;
    let mut pending: Option<TornTail> = None;
    loop {
        if at_zero_fill(&mut reader).map_err(io_err)? {
            break;
        }
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        let this_offset = offset;
        offset += n as u64;
        if start == 0 {
            line_no += 1;
        }
        // A line cut short by zeros is a torn write into the zero-filled
        // tail: the log ends at the first zero, whatever follows it.
        let zeros_at = buf.iter().position(|&b| b == 0);
        if let Some(at) = zeros_at {
            buf.truncate(at);
            offset = this_offset + at as u64;
        }
        let terminated = zeros_at.is_none() && buf.last() == Some(&b'\n');
        let line = if terminated { &buf[..buf.len() - 1] } else { &buf[..] };
        if is_blank(line) {
            if zeros_at.is_some() {
                break;
            }
            continue;
        }
        if let Some(p) = pending.take() {
            return Err(corrupt(code, path, p.line_no, p.offset, &p.reason));
        }
        if !terminated {
            let reason = "incomplete last line (no trailing newline)".to_string();
            if tolerate_torn {
                return Ok(ScanEnd {
                    valid_len: this_offset,
                    torn: Some(TornTail { offset: this_offset, line_no, reason }),
                    stopped: false,
                });
            }
            return Err(corrupt(code, path, line_no, this_offset, &reason));
        }
        match parse_line(line) {
            Ok(parsed) => {
                let go_on = visit(ScannedLine { offset: this_offset, line_no, parsed })?;
                if !go_on {
                    return Ok(ScanEnd { valid_len: offset, torn: None, stopped: true });
                }
            }
            Err(why) if tolerate_torn => {
                pending = Some(TornTail { offset: this_offset, line_no, reason: why });
            }
            Err(why) => return Err(corrupt(code, path, line_no, this_offset, &why)),
        }
    }
    match pending {
        Some(p) => Ok(ScanEnd { valid_len: p.offset, torn: Some(p), stopped: false }),
        None => Ok(ScanEnd { valid_len: offset, torn: None, stopped: false }),
    }
}

/// Whether the next line starts with a zero byte: the writer zero-fills
/// the active file ahead of the log (writer.rs), so the first zero where a
/// line would start is the end of the log. JSON text never holds one.
fn at_zero_fill(reader: &mut impl BufRead) -> std::io::Result<bool> {
    Ok(reader.fill_buf()?.first() == Some(&0))
}

/// What a replay read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub entries: u64,
    /// LSN of the first entry replayed (0 if none).
    pub first_lsn: u64,
    /// LSN of the last entry replayed (0 if none).
    pub last_lsn: u64,
    pub files: usize,
}

/// Replays every WAL file of `dir` in order (segments by first LSN, then
/// `karma.wal`), calling `f(lsn, entry_json)` for every non-blank line.
/// A line without the v2 envelope is a `validation_error`; a torn last line
/// of the last file is skipped with a warning; any other corrupt line is an
/// error naming the file, line and byte offset.
pub fn read_all(dir: &Path, mut f: impl FnMut(u64, &str) -> Result<()>) -> Result<ReplayStats> {
    let files = list_files(dir)?;
    let mut stats = ReplayStats::default();
    let count = files.len();
    for (i, wf) in files.iter().enumerate() {
        let file = match crate::files::open_regular(&wf.path, std::fs::OpenOptions::new().read(true)) {
            Ok(file) => file,
            // A concurrent truncation removed it: nothing left to replay there.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("Cannot read WAL file {}", crate::files::label(&wf.path)), e)),
        };
        let end = scan_file(&wf.path, Some(file), 0, None, i + 1 == count, ErrorCode::ValidationError, |line| {
            let (Some(lsn), Some(entry)) = (line.parsed.lsn, line.parsed.entry) else {
                return Err(Error::validation(format!(
                    "WAL entry without v2 LSN envelope is not supported ({})",
                    location(&wf.path, line.line_no, line.offset)
                )));
            };
            f(lsn, &entry)?;
            if stats.entries == 0 {
                stats.first_lsn = lsn;
            }
            stats.entries += 1;
            stats.last_lsn = lsn;
            Ok(true)
        })?;
        if let Some(t) = end.torn {
            tracing::warn!(
                file = %wf.path.display(),
                line = t.line_no,
                offset = t.offset,
                reason = %t.reason,
                "wal.torn_tail: skipping the torn last line"
            );
        }
        stats.files += 1;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let p = parse_line(br#"{"v":2,"lsn":17,"entry":{"v":2,"op":"tree.create","series":"a"}}"#).unwrap();
        assert_eq!(p.lsn, Some(17));
        assert_eq!(p.entry.as_deref(), Some(r#"{"v":2,"op":"tree.create","series":"a"}"#));
        let p = parse_line(br#"{ "entry" : {"op" : "x y", "k": [1, 2]}, "lsn": 5, "extra": true }"#).unwrap();
        assert_eq!(p.lsn, Some(5));
        assert_eq!(p.entry.as_deref(), Some(r#"{"op":"x y","k":[1,2]}"#));
        let p = parse_line(br#"{"command":"increment"}"#).unwrap();
        assert_eq!(p, ParsedLine { lsn: None, entry: None });
        assert_eq!(parse_line(b"[1,2]").unwrap().lsn, None);
        assert_eq!(parse_line(br#"{"lsn":-3,"entry":{}}"#).unwrap().lsn, None);
        assert!(parse_line(br#"{"v":2,"lsn":17,"entry":{"v":2"#).is_err());
        assert!(parse_line(b"\xff").is_err());
        assert_eq!(compact("{\"a\\\" \":[ 1 ,\n2]}"), "{\"a\\\" \":[1,2]}");
    }
}
