//! Field extraction (spec/protocol.md §4 step 8, §7): typed values out of a
//! request object with the exact messages of §5.2.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::json::Value;

use super::request::{Range, Window};

/// A request object being read field by field.
#[derive(Clone, Copy)]
pub struct Fields<'r, 'a> {
    obj: &'r Value<'a>,
}

fn type_error(name: &str, expected: &str) -> Error {
    Error::validation(format!("Field {name} must be {expected}"))
}

fn required(name: &str) -> Error {
    Error::validation(format!("Field {name} is required"))
}

fn non_negative(name: &str) -> Error {
    Error::validation(format!("Field {name} must be greater than or equal to 0"))
}

/// An unsigned integer out of a value, with `name` in the messages.
pub fn unsigned(v: &Value<'_>, name: &str) -> Result<u64> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as u64),
        Value::Int(_) => Err(non_negative(name)),
        _ => Err(type_error(name, "an integer")),
    }
}

impl<'r, 'a> Fields<'r, 'a> {
    pub fn new(obj: &'r Value<'a>) -> Fields<'r, 'a> {
        Fields { obj }
    }

    pub fn get(&self, name: &str) -> Option<&'r Value<'a>> {
        self.obj.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.obj.get(name).is_some()
    }

    /// `tree` if it is a string, else `series` if it is a string (§7.3).
    pub fn series(&self) -> Result<Cow<'a, str>> {
        for name in ["tree", "series"] {
            if let Some(Value::Str(s)) = self.get(name) {
                return Ok(s.clone());
            }
        }
        Err(Error::validation("Field tree or series is required"))
    }

    /// A string field where a missing or non-string value counts as absent.
    pub fn loose_str(&self, name: &str) -> Option<Cow<'a, str>> {
        match self.get(name) {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// A required string field; absent or non-string gives `Field <name> is required`.
    pub fn required_str(&self, name: &str) -> Result<Cow<'a, str>> {
        self.loose_str(name).ok_or_else(|| required(name))
    }

    pub fn required_u64(&self, name: &str) -> Result<u64> {
        match self.get(name) {
            None => Err(required(name)),
            Some(v) => unsigned(v, name),
        }
    }

    pub fn optional_u64(&self, name: &str) -> Result<Option<u64>> {
        self.get(name).map(|v| unsigned(v, name)).transpose()
    }

    /// A signed integer (e.g. `limit`, reconciliation counts).
    pub fn optional_i64(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Int(n)) => Ok(Some(*n)),
            Some(_) => Err(type_error(name, "an integer")),
        }
    }

    pub fn required_i64(&self, name: &str) -> Result<i64> {
        self.optional_i64(name)?.ok_or_else(|| required(name))
    }

    /// `cursor`: like an optional u64, with `null` meaning absent.
    pub fn cursor(&self) -> Result<Option<u64>> {
        match self.get("cursor") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => unsigned(v, "cursor").map(Some),
        }
    }

    /// A string-or-integer field (§7.8); integers become their decimal text.
    pub fn stringish(&self, name: &str) -> Result<Option<Cow<'a, str>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(Value::Int(n)) => Ok(Some(Cow::Owned(n.to_string()))),
            Some(_) => Err(Error::validation(format!("Field {name} must be a string or integer"))),
        }
    }

    /// `keys`: an array of unsigned integers.
    pub fn keys(&self) -> Result<Vec<u64>> {
        match self.get("keys") {
            None => Err(required("keys")),
            Some(Value::Array(items)) => items.iter().map(|v| unsigned(v, "keys[]")).collect(),
            Some(_) => Err(type_error("keys", "an array")),
        }
    }

    /// `items`: an array of `[key, bucket, value]` unsigned triples.
    pub fn items(&self) -> Result<Vec<[u64; 3]>> {
        let items = match self.get("items") {
            None => return Err(required("items")),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(type_error("items", "an array")),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Value::Array(parts) = item else {
                return Err(type_error("items[]", "an array"));
            };
            if parts.len() != 3 {
                return Err(Error::validation("Each item must be [key, bucket, value]"));
            }
            out.push([
                unsigned(&parts[0], "items[][0]")?,
                unsigned(&parts[1], "items[][1]")?,
                unsigned(&parts[2], "items[][2]")?,
            ]);
        }
        Ok(out)
    }

    /// `range`; `None` when absent. Checks shape and `from <= to` (§7.6 steps 1-3).
    pub fn range(&self) -> Result<Option<Range>> {
        let Some(v) = self.get("range") else { return Ok(None) };
        if !matches!(v, Value::Object(_)) {
            return Err(type_error("range", "an object"));
        }
        let r = Fields::new(v);
        let from = match r.get("from") {
            None => return Err(required("range.from")),
            Some(v) => unsigned(v, "range.from")?,
        };
        let to = match r.get("to") {
            None => return Err(required("range.to")),
            Some(v) => unsigned(v, "range.to")?,
        };
        if from > to {
            return Err(Error::validation("Bucket range start must be less than or equal to range end"));
        }
        Ok(Some(Range { from, to }))
    }

    pub fn required_range(&self) -> Result<Range> {
        self.range()?.ok_or_else(|| required("range"))
    }

    /// The write bucket of increment/decrement (§7.5): `date` wins, then
    /// `bucket` (integer or a digits-and-dashes date string); `None` = today.
    pub fn write_bucket(&self) -> Result<Option<u64>> {
        if let Some(v) = self.get("date") {
            return unsigned(v, "date").map(Some);
        }
        match self.get("bucket") {
            None => Ok(None),
            Some(Value::Str(s)) => parse_bucket_string(s).map(Some),
            Some(v) => unsigned(v, "bucket").map(Some),
        }
    }

    /// `counter.consume`'s `window` (`"day"`, `"days"` with `days`, or
    /// `"month"`), combined with `days` by [`Window::parse`].
    pub fn window(&self) -> Result<Window> {
        let days = self.optional_u64("days")?;
        let window = match self.get("window") {
            None => None,
            Some(Value::Str(s)) => Some(s.as_ref()),
            Some(_) => return Err(type_error("window", "a string")),
        };
        Window::parse(window, days)
    }

    /// `file` of the snapshot ops.
    pub fn snapshot_file(&self) -> Result<Cow<'a, str>> {
        let file = self.loose_str("file").ok_or_else(|| required("file"))?;
        if file.is_empty() {
            return Err(Error::validation("Field file must not be empty"));
        }
        if file.contains('/') || file.contains('\\') || file == "." || file == ".." {
            return Err(Error::validation("Field file must be a snapshot basename"));
        }
        if !file.ends_with(".tree") {
            return Err(Error::validation("Field file must end with .tree"));
        }
        Ok(file)
    }
}

/// `"2026-05-05"` → 20260505: dashes removed, digits required. Strings above
/// i64::MAX are refused, so every logged bucket stays readable by Karma 1.0
/// (fix of B10); Karma 1.0 answered `internal_error` for u64 overflow (Q15).
pub fn parse_bucket_string(s: &str) -> Result<u64> {
    if s.starts_with('-') {
        return Err(non_negative("bucket"));
    }
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::validation("Field bucket must be a bucket date"));
    }
    match digits.parse::<i64>() {
        Ok(n) => Ok(n as u64),
        Err(_) => Err(Error::validation(format!("Field bucket must be at most {}", i64::MAX))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_strings() {
        assert_eq!(parse_bucket_string("2026-05-05").unwrap(), 20260505);
        assert_eq!(parse_bucket_string("20-26-0505").unwrap(), 20260505);
        assert_eq!(parse_bucket_string("2026-5-5").unwrap(), 202655);
        assert_eq!(parse_bucket_string("-1").unwrap_err().message(), "Field bucket must be greater than or equal to 0");
        assert_eq!(parse_bucket_string("x").unwrap_err().message(), "Field bucket must be a bucket date");
        assert_eq!(parse_bucket_string("").unwrap_err().message(), "Field bucket must be a bucket date");
        assert_eq!(parse_bucket_string("--").unwrap_err().message(), "Field bucket must be greater than or equal to 0");
        assert!(parse_bucket_string("99999999999999999999").is_err());
    }
}
