use std::borrow::Cow;

/// A parsed JSON value borrowing from the request line.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// An integer literal that fits in i64.
    Int(i64),
    /// A number with a fraction or exponent (always a type error for us).
    Float(&'a str),
    Str(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Members in document order; lookups take the last occurrence.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The member `name` of an object (last occurrence wins), if any.
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(members) => members.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The JSON type name used in type-error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// Parses one complete JSON document (surrounding whitespace allowed).
/// The error is a human-readable message for `invalid_json`.
pub fn parse(input: &[u8]) -> Result<Value<'_>, String> {
    let text = std::str::from_utf8(input).map_err(|e| format!("Invalid UTF-8 at byte {}", e.valid_up_to()))?;
    let mut p = Parser { s: text, b: input, i: 0, depth: 0 };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i < p.b.len() {
        return Err(p.unexpected());
    }
    Ok(v)
}

const MAX_DEPTH: usize = 128;

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn column(&self) -> usize {
        self.s[..self.i.min(self.s.len())].chars().count() + 1
    }

    fn unexpected(&self) -> String {
        match self.s.get(self.i..).and_then(|r| r.chars().next()) {
            Some(c) => format!("Unexpected char '{c}' at line 1, column {}", self.column()),
            None => format!("unexpected token '<EOF>' at line 1, column {}", self.column()),
        }
    }

    fn value(&mut self) -> Result<Value<'a>, String> {
        match self.b.get(self.i) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self, word: &str, v: Value<'a>) -> Result<Value<'a>, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.unexpected())
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("Nesting too deep at line 1, column {}", self.column()));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Value<'a>, String> {
        self.enter()?;
        self.i += 1;
        let mut members = Vec::with_capacity(8);
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.unexpected());
            }
            let key = self.string()?;
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(self.unexpected());
            }
            self.i += 1;
            self.ws();
            let v = self.value()?;
            members.push((key, v));
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn array(&mut self) -> Result<Value<'a>, String> {
        self.enter()?;
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value()?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn number(&mut self) -> Result<Value<'a>, String> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        let int_start = self.i;
        // The magnitude as it is scanned (None once past u64), so an
        // integer needs no second pass through `str::parse`.
        let mut magnitude: Option<u64> = Some(0);
        while let Some(&digit @ b'0'..=b'9') = self.b.get(self.i) {
            magnitude = magnitude.and_then(|m| m.checked_mul(10)).and_then(|m| m.checked_add(u64::from(digit - b'0')));
            self.i += 1;
        }
        if self.i == int_start {
            return Err(self.unexpected());
        }
        if self.b[int_start] == b'0' && self.i > int_start + 1 {
            // JSON forbids leading zeros (`00`, `01`).
            self.i = int_start + 1;
            return Err(self.unexpected());
        }
        let mut float = false;
        if self.b.get(self.i) == Some(&b'.') {
            float = true;
            self.i += 1;
            let frac = self.i;
            while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            if self.i == frac {
                return Err(self.unexpected());
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            float = true;
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let exp = self.i;
            while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            if self.i == exp {
                return Err(self.unexpected());
            }
        }
        let text = &self.s[start..self.i];
        if float {
            return Ok(Value::Float(text));
        }
        // Karma 1.0 reads integer literals as i64: anything outside that range
        // makes the whole request invalid JSON (spec/protocol.md §7.1).
        let negative = int_start > start;
        let int = magnitude.and_then(|m| if negative { 0i64.checked_sub_unsigned(m) } else { i64::try_from(m).ok() });
        int.map(Value::Int).ok_or_else(|| format!("Invalid Int64: \"{text}\" at line 1, column {}", start + 1))
    }

    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.i += 1;
        let start = self.i;
        // Fast path: no escapes. One tight scan to the first byte that
        // needs a decision (every request line has a dozen strings).
        let stop = self.b[start..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        match stop.map(|n| (start + n, self.b[start + n])) {
            Some((end, b'"')) => {
                self.i = end + 1;
                return Ok(Cow::Borrowed(&self.s[start..end]));
            }
            Some((end, b'\\')) => self.i = end,
            Some((end, _)) => {
                self.i = end;
                return Err(self.unexpected());
            }
            None => {
                self.i = self.b.len();
                return Err(self.unexpected());
            }
        }
        let mut owned = String::from(&self.s[start..self.i]);
        loop {
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(owned));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.b.get(self.i) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.i += 1;
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.b.get(self.i) == Some(&b'\\') && self.b.get(self.i + 1) == Some(&b'u') {
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..0xE000).contains(&lo) {
                                        return Err(format!(
                                            "Invalid surrogate pair at line 1, column {}",
                                            self.column()
                                        ));
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                } else {
                                    return Err(format!("Unpaired surrogate at line 1, column {}", self.column()));
                                }
                            } else {
                                hi
                            };
                            let c = char::from_u32(code)
                                .ok_or_else(|| format!("Invalid unicode escape at line 1, column {}", self.column()))?;
                            owned.push(c);
                            continue;
                        }
                        _ => return Err(self.unexpected()),
                    };
                    owned.push(c);
                    self.i += 1;
                }
                Some(c) if *c < 0x20 => return Err(self.unexpected()),
                Some(_) => {
                    let rest = &self.s[self.i..];
                    let end = rest.find(['"', '\\']).unwrap_or(rest.len());
                    let chunk = &rest[..end];
                    if let Some(pos) = chunk.bytes().position(|c| c < 0x20) {
                        self.i += pos;
                        return Err(self.unexpected());
                    }
                    owned.push_str(chunk);
                    self.i += end;
                }
                None => return Err(self.unexpected()),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.s.get(self.i..self.i + 4).ok_or_else(|| self.unexpected())?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.unexpected())?;
        self.i += 4;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_objects_with_last_key_winning() {
        let v = parse(br#" {"v":1,"op":"x","v":2} "#).unwrap();
        assert_eq!(v.get("v"), Some(&Value::Int(2)));
        assert_eq!(v.get("op").and_then(Value::as_str), Some("x"));
    }

    #[test]
    fn integers_outside_i64_are_invalid_json() {
        assert!(parse(b"9223372036854775807").is_ok());
        assert!(parse(b"-9223372036854775808").is_ok());
        let err = parse(br#"{"k":18446744073709551615}"#).unwrap_err();
        assert!(err.starts_with("Invalid Int64"), "{err}");
    }

    #[test]
    fn floats_keep_their_text() {
        assert_eq!(parse(b"1e3").unwrap(), Value::Float("1e3"));
        assert_eq!(parse(b"2.0").unwrap(), Value::Float("2.0"));
    }

    #[test]
    fn strings_unescape() {
        let v = parse(br#""a\"b\\c\n\u00e9\ud83d\ude00/""#).unwrap();
        assert_eq!(v.as_str(), Some("a\"b\\c\né😀/"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b""[..],
            b"00",
            b"-01",
            b"   ",
            b"{",
            b"[1,]",
            b"{\"a\" 1}",
            b"nul",
            b"01x",
            b"\"\x01\"",
            b"{} x",
            b"\xff",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
