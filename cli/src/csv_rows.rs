//! Reading `key, bucket, value` rows out of a CSV file with a header line.
//! Column names are configurable; buckets may be `YYYYMMDD` or
//! `YYYY-MM-DD` and must be real dates; keys and values are unsigned 64-bit
//! integers (checked, never wrapped). Every error names the file line.

use std::fs::File;
use std::path::{Path, PathBuf};

use clap::Args;
use karma_engine::clock::bucket_day_number;

/// Which header names hold the key, bucket and value.
#[derive(Args, Clone, Debug)]
pub struct Columns {
    /// Header of the key column.
    #[arg(long, value_name = "NAME", default_value = "key")]
    pub key_column: String,
    /// Header of the bucket column (YYYYMMDD or YYYY-MM-DD).
    #[arg(long, value_name = "NAME", default_value = "bucket")]
    pub bucket_column: String,
    /// Header of the value column.
    #[arg(long, value_name = "NAME", default_value = "value")]
    pub value_column: String,
}

impl Default for Columns {
    fn default() -> Columns {
        Columns { key_column: "key".into(), bucket_column: "bucket".into(), value_column: "value".into() }
    }
}

/// One data row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Line in the file, counting the header as line 1.
    pub line: u64,
    pub key: u64,
    pub bucket: u64,
    pub value: u64,
}

/// A streaming reader of [`Row`]s.
pub struct RowReader {
    path: PathBuf,
    reader: csv::Reader<File>,
    record: csv::StringRecord,
    /// Positions of the key, bucket and value columns.
    at: [usize; 3],
    names: [String; 3],
}

impl RowReader {
    /// Opens `path` and finds the columns in its header.
    pub fn open(path: &Path, columns: &Columns) -> Result<RowReader, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(file);
        let header = reader.headers().map_err(|e| format!("{}: line 1: {e}", path.display()))?.clone();
        let names = [columns.key_column.clone(), columns.bucket_column.clone(), columns.value_column.clone()];
        let mut at = [0; 3];
        for (slot, name) in at.iter_mut().zip(&names) {
            *slot = header.iter().position(|h| h.trim_start_matches('\u{feff}') == name).ok_or_else(|| {
                let found: Vec<&str> = header.iter().collect();
                format!("{}: line 1: no column {name:?} in the header (columns: {})", path.display(), found.join(", "))
            })?;
        }
        Ok(RowReader { path: path.to_path_buf(), reader, record: csv::StringRecord::new(), at, names })
    }

    /// The next row, `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Row>, String> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(format!("{}: line {line}: {e}", self.path.display()));
            }
        }
        let line = self.record.position().map(|p| p.line()).unwrap_or(0);
        let field = |i: usize| -> Result<&str, String> {
            self.record
                .get(self.at[i])
                .filter(|f| !f.is_empty())
                .ok_or_else(|| format!("{}: line {line}: no value in column {:?}", self.path.display(), self.names[i]))
        };
        let bad =
            |what: &str, text: &str, why: &str| format!("{}: line {line}: {what} {text:?} {why}", self.path.display());
        let (key, bucket, value) = (field(0)?, field(1)?, field(2)?);
        let key = parse_u64(key).ok_or_else(|| bad("key", key, "is not an unsigned 64-bit integer"))?;
        let bucket =
            parse_bucket(bucket).ok_or_else(|| bad("bucket", bucket, "is not a date (YYYYMMDD or YYYY-MM-DD)"))?;
        let value = parse_u64(value).ok_or_else(|| bad("value", value, "is not an unsigned 64-bit integer"))?;
        Ok(Some(Row { line, key, bucket, value }))
    }

    /// Bytes read so far (for progress by size).
    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Digits only, no sign, within u64.
fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `YYYYMMDD` or `YYYY-MM-DD`, a real calendar date.
pub fn parse_bucket(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let digits = match b.len() {
        8 => text.to_string(),
        10 if b[4] == b'-' && b[7] == b'-' => text.replace('-', ""),
        _ => return None,
    };
    let bucket = parse_u64(&digits)?;
    bucket_day_number(bucket).map(|_| bucket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rows(text: &str, columns: &Columns) -> Result<Vec<Row>, String> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let mut reader = RowReader::open(file.path(), columns)?;
        let mut out = Vec::new();
        while let Some(row) = reader.next_row()? {
            out.push(row);
        }
        Ok(out)
    }

    #[test]
    fn rows_in_either_bucket_form() {
        let got = rows(
            "bucket,key,value,extra\n2026-03-01,42,7,x\n20260302, 43 ,18446744073709551615\n",
            &Columns::default(),
        )
        .unwrap();
        assert_eq!(
            got,
            [
                Row { line: 2, key: 42, bucket: 20260301, value: 7 },
                Row { line: 3, key: 43, bucket: 20260302, value: u64::MAX }
            ]
        );
        let columns = Columns { key_column: "id".into(), bucket_column: "day".into(), value_column: "expected".into() };
        assert_eq!(rows("\u{feff}id,day,expected\n1,20240229,0\n", &columns).unwrap().len(), 1);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let err = |text: &str| rows(text, &Columns::default()).unwrap_err();
        assert!(err("key,bucket\n1,20260101\n")
            .contains("line 1: no column \"value\" in the header (columns: key, bucket)"));
        assert!(err("key,bucket,value\n1,20260101,1\n2,2026-02-30,1\n")
            .contains("line 3: bucket \"2026-02-30\" is not a date"));
        assert!(err("key,bucket,value\n1,2026-1-01,1\n").contains("line 2: bucket"));
        assert!(err("key,bucket,value\n1,20260101,18446744073709551616\n")
            .contains("line 2: value \"18446744073709551616\" is not an unsigned 64-bit integer"));
        assert!(err("key,bucket,value\n-1,20260101,1\n").contains("line 2: key \"-1\""));
        assert!(err("key,bucket,value\n1,20260101\n").contains("line 2: no value in column \"value\""));
        assert!(err("key,bucket,value\n1,20260101,\n").contains("line 2: no value in column \"value\""));
        assert!(rows("", &Columns::default()).unwrap_err().contains("no column \"key\""));
    }
}
