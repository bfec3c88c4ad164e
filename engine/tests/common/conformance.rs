//! Replaying the Karma 1.0 conformance corpus (`tests/conformance/`, see its
//! README for the file formats).
//!
//! The comparison rules of the corpus, implemented once and used by both
//! targets: in-process through [`Engine::handle_line`]
//! (`engine/tests/conformance.rs`) and over TCP against the `karma` binary
//! (`server/tests/conformance_tcp.rs`, which includes this file by path):
//!
//! * a line without active `varying` entries must match byte for byte;
//! * otherwise both sides are parsed keeping object key order, duplicate keys
//!   and the literal text of numbers ([`Json`], [`parse_exact`]), the listed
//!   paths are blanked (or sorted for `format: "unordered"`, or have their
//!   metric values blanked for `format: "prometheus"`), and the renderings
//!   must be identical;
//! * `parser-message` and `snapshot-encoding` are compared unless relaxed,
//!   every other reason never is;
//! * `captures` substitute live values into later requests;
//! * `known_bugs` lines are sent but not compared when skipping is requested.
//!
//! The transport is abstracted as a closure (`request -> Exchange`), so the
//! same runner drives the in-process engine ([`InProcess`]) and the unit tests.
//!
//! Known, deliberate deviations from replay.py (none matter for the corpus):
//! lone UTF-16 surrogates in `\u` escapes become U+FFFD (Python keeps them),
//! and only ASCII digits count as digits.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use karma_engine::{Engine, Options, Role, Session};

/// The placeholder a blanked value renders as (same text as replay.py).
pub const MASK: &str = "<varies>";

/// Reasons compared unless relaxed; every other reason is never compared.
pub const ENFORCED_BY_DEFAULT: [&str; 2] = ["parser-message", "snapshot-encoding"];

// ------------------------------------------------------------------ JSON model

/// A JSON value as replay.py sees it: objects keep key order and duplicate
/// keys, numbers keep their literal text (`1` and `1.0` differ).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The literal number text (also `NaN`, `Infinity`, `-Infinity`).
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
    /// A blanked-out value.
    Mask,
}

/// Parses `text` like Python's `json.loads` (strict mode, constants allowed),
/// keeping key order, duplicate keys and number text.
pub fn parse_exact(text: &str) -> Result<Json, String> {
    let mut p = Parser { s: text.as_bytes(), i: 0, depth: 0 };
    p.ws();
    let value = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("extra data at byte {}", p.i));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 512;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn literal(&mut self, word: &str) -> bool {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.peek() {
            Some(b'{') => self.nested(Parser::object),
            Some(b'[') => self.nested(Parser::array),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'n') if self.literal("null") => Ok(Json::Null),
            Some(b't') if self.literal("true") => Ok(Json::Bool(true)),
            Some(b'f') if self.literal("false") => Ok(Json::Bool(false)),
            Some(b'N') if self.literal("NaN") => Ok(Json::Num("NaN".into())),
            Some(b'I') if self.literal("Infinity") => Ok(Json::Num("Infinity".into())),
            Some(b'-') if self.literal("-Infinity") => Ok(Json::Num("-Infinity".into())),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err("expecting value"),
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<Json, String>) -> Result<Json, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`, optional parts only when complete.
    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("expecting value"),
        }
        if self.peek() == Some(b'.') && matches!(self.s.get(self.i + 1), Some(b'0'..=b'9')) {
            self.i += 1;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                self.i = save;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII");
        Ok(Json::Num(text.to_owned()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(h) = self.s.get(self.i..self.i + 4) else {
            return self.err("invalid \\uXXXX escape");
        };
        let h = std::str::from_utf8(h).map_err(|_| format!("invalid \\uXXXX escape at byte {}", self.i))?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.err("invalid \\uXXXX escape");
        }
        self.i += 4;
        Ok(u32::from_str_radix(h, 16).expect("hex"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return self.err("unterminated string");
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi) && self.s[self.i..].starts_with(b"\\u") {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                        .unwrap_or('\u{FFFD}')
                                } else {
                                    self.i = save;
                                    '\u{FFFD}'
                                }
                            } else {
                                char::from_u32(hi).unwrap_or('\u{FFFD}')
                            }
                        }
                        _ => {
                            self.i -= 1;
                            return self.err("invalid escape");
                        }
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => {
                    self.i -= 1;
                    return self.err("invalid control character in string");
                }
                _ => out.push(b),
            }
        }
        // Only whole UTF-8 sequences of a &str and encoded chars were copied.
        Ok(String::from_utf8(out).expect("valid UTF-8"))
    }

    fn object(&mut self) -> Result<Json, String> {
        self.i += 1;
        let mut pairs = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Json::Obj(pairs));
        }
        loop {
            if self.peek() != Some(b'"') {
                return self.err("expecting property name enclosed in double quotes");
            }
            let key = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return self.err("expecting ':' delimiter");
            }
            self.i += 1;
            self.ws();
            let value = self.value()?;
            pairs.push((key, value));
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Obj(pairs));
                }
                _ => return self.err("expecting ',' delimiter"),
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Json::Arr(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                _ => return self.err("expecting ',' delimiter"),
            }
        }
    }
}

/// A string as Python's `json.dumps(s, ensure_ascii=False)` writes it.
fn render_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn render_into(v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Num(n) => out.push_str(n),
        Json::Str(s) => render_str(s, out),
        Json::Mask => out.push_str(MASK),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render_into(item, out);
            }
            out.push(']');
        }
        Json::Obj(pairs) => {
            out.push('{');
            for (i, (k, item)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render_str(k, out);
                out.push(':');
                render_into(item, out);
            }
            out.push('}');
        }
    }
}

/// Compact rendering, as replay.py's `render` (masked values as `<varies>`).
pub fn render(v: &Json) -> String {
    let mut out = String::new();
    render_into(v, &mut out);
    out
}

// ------------------------------------------------------------------ paths

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Key(String),
    Idx(usize),
    Star,
}

/// Parses the small JSONPath dialect of the meta files:
/// `$`, `.name`, `["odd name"]`, `[3]`, `[*]`.
pub fn path_tokens(path: &str) -> Result<Vec<Token>, String> {
    let rest = path.strip_prefix('$').ok_or_else(|| format!("path must start with $: {path:?}"))?;
    let b = rest.as_bytes();
    let bad = || format!("bad path {path:?}");
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphanumeric()) {
                j += 1;
            }
            if j == start || b[start].is_ascii_digit() {
                return Err(bad());
            }
            tokens.push(Token::Key(rest[start..j].to_owned()));
            i = j;
        } else if rest[i..].starts_with("[*]") {
            tokens.push(Token::Star);
            i += 3;
        } else if rest[i..].starts_with("[\"") {
            // a JSON string literal up to the closing quote, then `]`
            let mut j = i + 2;
            loop {
                match b.get(j) {
                    None => return Err(bad()),
                    Some(b'\\') => j += 2,
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            if b.get(j + 1) != Some(&b']') {
                return Err(bad());
            }
            match parse_exact(&rest[i + 1..=j]) {
                Ok(Json::Str(s)) => tokens.push(Token::Key(s)),
                _ => return Err(bad()),
            }
            i = j + 2;
        } else if b[i] == b'[' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j == start || b.get(j) != Some(&b']') {
                return Err(bad());
            }
            tokens.push(Token::Idx(rest[start..j].parse().map_err(|_| bad())?));
            i = j + 1;
        } else {
            return Err(bad());
        }
    }
    Ok(tokens)
}

/// Applies `f` to every value matched by `tokens` (every duplicate key, every
/// element for `[*]`); paths that do not match anything are ignored.
pub fn apply_at(node: &mut Json, tokens: &[Token], f: &dyn Fn(&mut Json)) {
    let Some((first, rest)) = tokens.split_first() else {
        f(node);
        return;
    };
    match (first, node) {
        (Token::Key(name), Json::Obj(pairs)) => {
            for (k, v) in pairs.iter_mut() {
                if k == name {
                    apply_at(v, rest, f);
                }
            }
        }
        (Token::Idx(i), Json::Arr(items)) => {
            if let Some(v) = items.get_mut(*i) {
                apply_at(v, rest, f);
            }
        }
        (Token::Star, Json::Arr(items)) => {
            for v in items.iter_mut() {
                apply_at(v, rest, f);
            }
        }
        _ => {}
    }
}

/// The value at a wildcard-free path (last duplicate key wins, like `json.loads`).
pub fn lookup_plain<'a>(value: &'a Json, path: &str) -> Result<&'a Json, String> {
    let mut cur = value;
    for token in path_tokens(path)? {
        cur = match (&token, cur) {
            (Token::Star, _) => return Err("wildcards are not allowed in capture paths".into()),
            (Token::Key(name), Json::Obj(pairs)) => pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .ok_or_else(|| format!("no member {name:?}"))?,
            (Token::Idx(i), Json::Arr(items)) => items.get(*i).ok_or_else(|| format!("index {i} out of range"))?,
            (t, other) => return Err(format!("cannot apply {t:?} to {}", render(other))),
        };
    }
    Ok(cur)
}

/// Python's `str(value)` of a captured value (strings without quotes).
pub fn capture_text(value: &Json) -> String {
    match value {
        Json::Str(s) => s.clone(),
        Json::Num(n) => n.clone(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Null => "None".into(),
        other => render(other),
    }
}

/// Blanks the value of every sample of the named metrics in a Prometheus text.
pub fn mask_prometheus(metrics: &[String], value: &mut Json) {
    let Json::Str(text) = value else { return };
    let masked: Vec<String> = text
        .split('\n')
        .map(|line| {
            if !line.is_empty() && !line.starts_with('#') {
                if let Some((name, _)) = line.rsplit_once(' ') {
                    let metric = name.split('{').next().unwrap_or(name);
                    if metrics.iter().any(|m| m == metric) {
                        return format!("{name} {MASK}");
                    }
                }
            }
            line.to_owned()
        })
        .collect();
    *text = masked.join("\n");
}

/// Sorts an array by the rendering of its elements (multiset comparison).
pub fn sort_array(value: &mut Json) {
    if let Json::Arr(items) = value {
        items.sort_by_cached_key(render);
    }
}

fn path_segment(key: &str) -> String {
    let ident = !key.is_empty()
        && !key.as_bytes()[0].is_ascii_digit()
        && key.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric());
    if ident {
        format!(".{key}")
    } else {
        let mut s = String::from("[");
        render_str(key, &mut s);
        s.push(']');
        s
    }
}

/// The first (at most `limit`) differences as `(path, expected, actual)`.
pub fn diff_paths(a: &Json, b: &Json, limit: usize) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    diff_into(a, b, "$".to_owned(), &mut out, limit);
    out
}

fn diff_into(a: &Json, b: &Json, path: String, out: &mut Vec<(String, String, String)>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    match (a, b) {
        (Json::Obj(pa), Json::Obj(pb)) => {
            let ka: Vec<Json> = pa.iter().map(|(k, _)| Json::Str(k.clone())).collect();
            let kb: Vec<Json> = pb.iter().map(|(k, _)| Json::Str(k.clone())).collect();
            if ka != kb {
                out.push((format!("{path} (keys)"), render(&Json::Arr(ka)), render(&Json::Arr(kb))));
                return;
            }
            for ((k, va), (_, vb)) in pa.iter().zip(pb) {
                diff_into(va, vb, format!("{path}{}", path_segment(k)), out, limit);
            }
        }
        (Json::Arr(xa), Json::Arr(xb)) => {
            if xa.len() != xb.len() {
                out.push((format!("{path} (length)"), xa.len().to_string(), xb.len().to_string()));
                return;
            }
            for (i, (va, vb)) in xa.iter().zip(xb).enumerate() {
                diff_into(va, vb, format!("{path}[{i}]"), out, limit);
            }
        }
        _ => {
            if a != b && out.len() < limit {
                out.push((path, render(a), render(b)));
            }
        }
    }
}

/// Shortens long text for reports, like replay.py's `shorten`.
pub fn shorten(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        return text.to_owned();
    }
    let head: String = text.chars().take(n).collect();
    format!("{head}...({} chars)", text.chars().count())
}

fn describe(exp: &Json, act: &Json) -> Vec<String> {
    let problems = diff_paths(exp, act, 12);
    if problems.is_empty() {
        return vec!["formatting differs (same JSON value, different text)".into()];
    }
    problems
        .into_iter()
        .map(|(path, e, a)| format!("{path}: expected {}, got {}", shorten(&e, 300), shorten(&a, 300)))
        .collect()
}

// ------------------------------------------------------------------ corpus

/// One `varying` entry of a meta file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub line: usize,
    pub path: String,
    pub reason: String,
    pub format: Option<String>,
    pub metrics: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    pub line: usize,
    pub name: String,
    pub path: String,
    pub recorded: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownBug {
    pub line: usize,
    pub id: String,
}

#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub server_flags: Vec<String>,
    pub varying: Vec<Rule>,
    pub captures: Vec<Capture>,
    pub known_bugs: Vec<KnownBug>,
}

/// One transcript line; `response: None` means the server closed instead.
#[derive(Clone, Debug)]
pub struct Entry {
    pub request: String,
    pub response: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub lines: Vec<Entry>,
    pub meta: Meta,
}

/// The corpus directory, `tests/conformance/` of the repository (the path
/// holds from the engine's and from the server's manifest directory).
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance"))
}

fn str_field(v: &serde_json::Value, key: &str, ctx: &str) -> Result<String, String> {
    v.get(key)
        .and_then(|x| x.as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("{ctx}: missing string field {key:?} in {v}"))
}

fn line_field(v: &serde_json::Value, ctx: &str) -> Result<usize, String> {
    v.get("line")
        .and_then(|x| x.as_u64())
        .filter(|&n| n >= 1)
        .map(|n| n as usize)
        .ok_or_else(|| format!("{ctx}: missing or bad \"line\" in {v}"))
}

fn array_field<'a>(meta: &'a serde_json::Value, key: &str, ctx: &str) -> Result<&'a [serde_json::Value], String> {
    match meta.get(key) {
        None | Some(serde_json::Value::Null) => Ok(&[]),
        Some(serde_json::Value::Array(items)) => Ok(items),
        Some(other) => Err(format!("{ctx}: {key:?} is not an array: {other}")),
    }
}

/// Parses a `NAME.meta.json` document, validating every path.
pub fn parse_meta(text: &str, ctx: &str) -> Result<Meta, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("{ctx}: {e}"))?;
    let mut meta = Meta::default();
    for f in array_field(&v, "server_flags", ctx)? {
        meta.server_flags
            .push(f.as_str().ok_or_else(|| format!("{ctx}: server flag is not a string: {f}"))?.to_owned());
    }
    for r in array_field(&v, "varying", ctx)? {
        let rule = Rule {
            line: line_field(r, ctx)?,
            path: str_field(r, "path", ctx)?,
            reason: r.get("reason").and_then(|x| x.as_str()).unwrap_or("").to_owned(),
            format: r.get("format").and_then(|x| x.as_str()).map(str::to_owned),
            metrics: r
                .get("metrics")
                .and_then(|x| x.as_array())
                .map(|m| m.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        };
        path_tokens(&rule.path).map_err(|e| format!("{ctx}: {e}"))?;
        meta.varying.push(rule);
    }
    for c in array_field(&v, "captures", ctx)? {
        let cap = Capture {
            line: line_field(c, ctx)?,
            name: str_field(c, "name", ctx)?,
            path: str_field(c, "path", ctx)?,
            recorded: str_field(c, "recorded", ctx)?,
        };
        path_tokens(&cap.path).map_err(|e| format!("{ctx}: {e}"))?;
        meta.captures.push(cap);
    }
    for b in array_field(&v, "known_bugs", ctx)? {
        meta.known_bugs.push(KnownBug { line: line_field(b, ctx)?, id: str_field(b, "id", ctx)? });
    }
    Ok(meta)
}

/// Parses a `NAME.jsonl` transcript (blank lines are ignored, as replay.py does).
pub fn parse_transcript(text: &str, ctx: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ctx = format!("{ctx}:{}", i + 1);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{ctx}: {e}"))?;
        let request = str_field(&v, "request", &ctx)?;
        let response = match v.get("response") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Null) => None,
            _ => return Err(format!("{ctx}: \"response\" must be a string or null")),
        };
        entries.push(Entry { request, response });
    }
    Ok(entries)
}

/// Loads every `*.jsonl` scenario of `dir` (sorted by name) with its meta file.
/// Errors if the directory is missing or holds no scenario.
pub fn load_scenarios(dir: &Path) -> Result<Vec<Scenario>, String> {
    let listing = fs::read_dir(dir)
        .map_err(|e| format!("conformance corpus directory {} is not readable ({e})", dir.display()))?;
    let mut names = Vec::new();
    for item in listing {
        let item = item.map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = item.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_suffix(".jsonl") {
            names.push(name.to_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(format!("no *.jsonl scenarios in {}", dir.display()));
    }
    let mut scenarios = Vec::new();
    for name in names {
        let jsonl = dir.join(format!("{name}.jsonl"));
        let text = fs::read_to_string(&jsonl).map_err(|e| format!("{}: {e}", jsonl.display()))?;
        let lines = parse_transcript(&text, &jsonl.display().to_string())?;
        let meta_path = dir.join(format!("{name}.meta.json"));
        let meta = if meta_path.exists() {
            let text = fs::read_to_string(&meta_path).map_err(|e| format!("{}: {e}", meta_path.display()))?;
            parse_meta(&text, &meta_path.display().to_string())?
        } else {
            Meta::default()
        };
        scenarios.push(Scenario { name, lines, meta });
    }
    Ok(scenarios)
}

/// `tests/conformance_overrides.json`: recorded answers Karma deliberately
/// changes although the corpus does not tag them (see docs/compatibility.md).
/// The corpus with its overrides applied, narrowed to the scenarios named in
/// `KARMA_CONFORMANCE_ONLY` (comma-separated) when it is set; shared by the
/// in-process and the TCP replay so both select alike.
pub fn selected_scenarios() -> Vec<Scenario> {
    let mut scenarios = load_scenarios(&corpus_dir()).unwrap_or_else(|e| panic!("conformance corpus: {e}"));
    apply_overrides(&mut scenarios, &overrides_path()).unwrap_or_else(|e| panic!("conformance overrides: {e}"));
    if let Ok(only) = std::env::var("KARMA_CONFORMANCE_ONLY") {
        let wanted: BTreeSet<&str> = only.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let known: BTreeSet<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        let unknown: Vec<&&str> = wanted.difference(&known).collect();
        assert!(unknown.is_empty(), "KARMA_CONFORMANCE_ONLY names unknown scenarios: {unknown:?}");
        assert!(!wanted.is_empty(), "KARMA_CONFORMANCE_ONLY is set but names no scenario");
        scenarios.retain(|s| wanted.contains(s.name.as_str()));
    }
    scenarios
}

pub fn overrides_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance_overrides.json"))
}

/// Replaces the expected response of every overridden line; an override
/// naming a scenario or line that does not exist is an error.
pub fn apply_overrides(scenarios: &mut [Scenario], path: &Path) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let list = doc.get("overrides").and_then(|v| v.as_array()).ok_or("overrides must be an array")?;
    for o in list {
        let scenario = o.get("scenario").and_then(|v| v.as_str()).ok_or("override without scenario")?;
        let line = o.get("line").and_then(|v| v.as_u64()).ok_or("override without line")? as usize;
        let response = o.get("response").and_then(|v| v.as_str()).ok_or("override without response")?;
        let Some(s) = scenarios.iter_mut().find(|s| s.name == scenario) else {
            // The scenario may have been filtered out (KARMA_CONFORMANCE_ONLY).
            continue;
        };
        let entry = s.lines.get_mut(line.wrapping_sub(1)).ok_or_else(|| format!("{scenario} has no line {line}"))?;
        entry.response = Some(response.to_owned());
    }
    Ok(())
}

// ------------------------------------------------------------------ comparison

/// What replay.py's command-line options decide about comparing.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    /// Enforced reasons to stop comparing (`--relax`).
    pub relaxed: BTreeSet<String>,
    /// `None`: compare known-bug lines; `Some([])`: skip all of them;
    /// `Some(ids)`: skip only those ids (`--skip-known-bugs [ID ...]`).
    pub skip_known_bugs: Option<Vec<String>>,
}

impl ReplayOptions {
    /// `--skip-known-bugs --relax parser-message` (snapshot-encoding enforced).
    pub fn standard() -> ReplayOptions {
        ReplayOptions {
            relaxed: ["parser-message".to_owned()].into_iter().collect(),
            skip_known_bugs: Some(Vec::new()),
        }
    }

    fn skips(&self, bug: &KnownBug) -> bool {
        match &self.skip_known_bugs {
            None => false,
            Some(ids) => ids.is_empty() || ids.contains(&bug.id),
        }
    }
}

/// Compares one response line with its recording; returns the problems
/// (empty when the line matches). `None` stands for a closed connection.
pub fn compare_line(
    expected: Option<&str>,
    actual: Option<&str>,
    rules: &[&Rule],
    relaxed: &BTreeSet<String>,
) -> Vec<String> {
    let (expected, actual) = match (expected, actual) {
        (None, None) => return Vec::new(),
        (Some(e), Some(a)) => (e, a),
        (e, _) => {
            let (want, got) =
                if e.is_none() { ("connection close", "a response") } else { ("a response", "connection close") };
            return vec![format!("expected {want}, got {got}")];
        }
    };
    let mut active: Vec<&Rule> = rules
        .iter()
        .copied()
        .filter(|r| !ENFORCED_BY_DEFAULT.contains(&r.reason.as_str()) || relaxed.contains(&r.reason))
        .collect();
    if active.is_empty() {
        if expected == actual {
            return Vec::new();
        }
        return match (parse_exact(expected), parse_exact(actual)) {
            (Ok(e), Ok(a)) => describe(&e, &a),
            _ => vec!["response is not valid JSON".into()],
        };
    }
    let Ok(mut exp) = parse_exact(expected) else {
        return vec!["corpus response is not JSON but has varying paths".into()];
    };
    let Ok(mut act) = parse_exact(actual) else {
        return vec!["response is not valid JSON".into()];
    };
    // masks first, then order-insensitive arrays (stable, like replay.py)
    active.sort_by_key(|r| r.format.as_deref() == Some("unordered"));
    for rule in active {
        let tokens = path_tokens(&rule.path).expect("paths are validated when loading");
        let f: Box<dyn Fn(&mut Json)> = match rule.format.as_deref() {
            Some("prometheus") => {
                let metrics = rule.metrics.clone();
                Box::new(move |v: &mut Json| mask_prometheus(&metrics, v))
            }
            Some("unordered") => Box::new(sort_array),
            _ => Box::new(|v: &mut Json| *v = Json::Mask),
        };
        apply_at(&mut exp, &tokens, &*f);
        apply_at(&mut act, &tokens, &*f);
    }
    if render(&exp) == render(&act) {
        return Vec::new();
    }
    describe(&exp, &act)
}

/// What the transport returned for one request.
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    /// The response line without its terminator; `None` if the connection closed.
    pub body: Option<String>,
    /// Transport-level problems (wrong terminator, ...), compared like replay.py's
    /// `--eol` check: dropped on skipped known-bug lines.
    pub problems: Vec<String>,
}

/// One differing line. `line == 0` is a scenario-level problem (bad flags,
/// engine failed to open or close).
#[derive(Clone, Debug)]
pub struct Failure {
    pub line: usize,
    pub request: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
    pub problems: Vec<String>,
}

impl Failure {
    pub fn scenario(problem: impl Into<String>) -> Failure {
        Failure { line: 0, request: String::new(), expected: None, actual: None, problems: vec![problem.into()] }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub failures: Vec<Failure>,
    /// Known-bug lines sent but not compared.
    pub skipped: usize,
}

/// Replays one scenario through `send` (request text without `\n` →
/// response). An `Err` from `send` (timeout, panic) is recorded and ends the
/// scenario.
pub fn run_scenario(
    scenario: &Scenario,
    opts: &ReplayOptions,
    send: &mut dyn FnMut(&str) -> Result<Exchange, String>,
) -> Outcome {
    let meta = &scenario.meta;
    let skip_lines: BTreeSet<usize> = meta.known_bugs.iter().filter(|b| opts.skips(b)).map(|b| b.line).collect();
    let mut substitutions: Vec<(String, String)> = Vec::new();
    let mut out = Outcome::default();
    // A fixed bug can turn a recorded error into a success (or back); the
    // error counters of later `system.stats`/`system.metrics` lines move by
    // exactly that much, and nothing else may differ.
    let mut error_delta: i64 = 0;
    for (idx, entry) in scenario.lines.iter().enumerate() {
        let lineno = idx + 1;
        let mut request = entry.request.clone();
        for (recorded, live) in &substitutions {
            request = request.replace(recorded.as_str(), live);
        }
        let exchange = match send(&request) {
            Ok(x) => x,
            Err(problem) => {
                out.failures.push(Failure {
                    line: lineno,
                    request,
                    expected: entry.response.clone(),
                    actual: None,
                    problems: vec![problem],
                });
                break;
            }
        };
        let rules: Vec<&Rule> = meta.varying.iter().filter(|r| r.line == lineno).collect();
        let adjusted = entry.response.as_deref().map(|r| adjust_error_count(r, error_delta));
        let mut problems = compare_line(adjusted.as_deref(), exchange.body.as_deref(), &rules, &opts.relaxed);
        if exchange.body.is_some() {
            problems.extend(exchange.problems.iter().cloned());
        }
        if skip_lines.contains(&lineno) {
            out.skipped += 1;
            problems.clear();
            let failed = |r: Option<&str>| r.is_some_and(|r| r.contains("\"success\":false"));
            error_delta += i64::from(failed(exchange.body.as_deref())) - i64::from(failed(entry.response.as_deref()));
        }
        if !problems.is_empty() {
            out.failures.push(Failure {
                line: lineno,
                request: request.clone(),
                expected: entry.response.clone(),
                actual: exchange.body.clone(),
                problems,
            });
        }
        for cap in meta.captures.iter().filter(|c| c.line == lineno) {
            let live = exchange
                .body
                .as_deref()
                .ok_or_else(|| "no response".to_owned())
                .and_then(parse_exact)
                .and_then(|v| lookup_plain(&v, &cap.path).map(capture_text));
            match live {
                Ok(live) => match substitutions.iter_mut().find(|(r, _)| *r == cap.recorded) {
                    Some(slot) => slot.1 = live,
                    None => substitutions.push((cap.recorded.clone(), live)),
                },
                Err(e) => out.failures.push(Failure {
                    line: lineno,
                    request: request.clone(),
                    expected: entry.response.clone(),
                    actual: exchange.body.clone(),
                    problems: vec![format!("capture {} failed: {e}", cap.name)],
                }),
            }
        }
        if exchange.body.is_none() {
            break;
        }
    }
    out
}

/// replay.py's verdict text for one scenario: a `PASS` line, or a `FAIL` line
/// followed by every failing line with request, expected, actual and problems.
pub fn report(scenario: &Scenario, outcome: &Outcome) -> String {
    let note =
        if outcome.skipped > 0 { format!(", {} known-bug lines not compared", outcome.skipped) } else { String::new() };
    let n = scenario.lines.len();
    if outcome.failures.is_empty() {
        return format!("PASS {} ({n} lines{note})\n", scenario.name);
    }
    let mut s = format!("FAIL {} ({} of {n} lines differ{note})\n", scenario.name, outcome.failures.len());
    let text = |t: &Option<String>| t.as_deref().map_or("<connection closed>".to_owned(), |t| shorten(t, 600));
    for f in &outcome.failures {
        if f.line == 0 {
            for p in &f.problems {
                let _ = writeln!(s, "  scenario: {p}");
            }
            continue;
        }
        let _ = writeln!(s, "  line {}: {}", f.line, shorten(&f.request, 300));
        let _ = writeln!(s, "    expected: {}", text(&f.expected));
        let _ = writeln!(s, "    actual:   {}", text(&f.actual));
        for p in &f.problems {
            let _ = writeln!(s, "    - {p}");
        }
    }
    s
}

// ------------------------------------------------------------------ in-process target

/// The scenario's `server_flags`, mapped onto engine [`Options`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerFlags {
    pub auth_token: Option<String>,
    pub read_auth_token: Option<String>,
    pub slave: bool,
    pub max_request_bytes: Option<usize>,
    pub max_response_bytes: Option<usize>,
}

impl ServerFlags {
    /// Accepts the flags the corpus uses; anything else is an error.
    pub fn parse(flags: &[String]) -> Result<ServerFlags, String> {
        let mut out = ServerFlags::default();
        for flag in flags {
            let (name, value) = flag
                .split_once('=')
                .ok_or_else(|| format!("unsupported server flag {flag:?} (expected --name=value)"))?;
            let number = || value.parse::<usize>().map_err(|_| format!("server flag {flag:?}: not a byte count"));
            match name {
                "--auth-token" => out.auth_token = Some(value.to_owned()),
                "--read-auth-token" => out.read_auth_token = Some(value.to_owned()),
                "--role" => match value {
                    "slave" => out.slave = true,
                    "master" => out.slave = false,
                    _ => return Err(format!("server flag {flag:?}: unknown role")),
                },
                "--max-request-bytes" => out.max_request_bytes = Some(number()?),
                "--max-response-bytes" => out.max_response_bytes = Some(number()?),
                _ => return Err(format!("unsupported server flag {flag:?}")),
            }
        }
        Ok(out)
    }

    /// Options of a freshly started `karma --directory=DIR --wal-fsync=false`
    /// with these flags.
    pub fn options(&self, directory: &Path) -> Options {
        let defaults = Options::default();
        Options {
            directory: Some(directory.to_path_buf()),
            wal_fsync: karma_engine::FsyncPolicy::Never,
            auth_token: self.auth_token.clone(),
            read_auth_token: self.read_auth_token.clone(),
            role: if self.slave { Role::Slave } else { Role::Master },
            max_request_bytes: self.max_request_bytes.unwrap_or(defaults.max_request_bytes),
            max_response_bytes: self.max_response_bytes.unwrap_or(defaults.max_response_bytes),
            ..defaults
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

type WorkerReply = Result<Vec<u8>, String>;

/// A fresh engine on a fresh temporary directory, running on its own thread so
/// a hang or panic becomes a reported failure instead of stalling the suite.
///
/// Each request is handed to [`Engine::handle_line`] exactly as the client
/// sent it (a trailing `\r` included: the engine's own size check counts it
/// like the server's reader does, and JSON treats it as whitespace). Like the
/// server, a reply carrying an LSN is only "sent" after `wait_durable`.
pub struct InProcess {
    requests: Option<mpsc::Sender<Vec<u8>>>,
    replies: mpsc::Receiver<WorkerReply>,
    timeout: Duration,
}

impl InProcess {
    pub fn start(flags: &ServerFlags, timeout: Duration) -> Result<InProcess, String> {
        let (req_tx, req_rx) = mpsc::channel::<Vec<u8>>();
        let (rep_tx, rep_rx) = mpsc::channel::<WorkerReply>();
        let flags = flags.clone();
        thread::Builder::new()
            .name("conformance-engine".into())
            .spawn(move || worker(flags, req_rx, rep_tx))
            .map_err(|e| format!("cannot spawn engine thread: {e}"))?;
        let server = InProcess { requests: Some(req_tx), replies: rep_rx, timeout };
        server.wait("Engine::open")?;
        Ok(server)
    }

    fn wait(&self, what: &str) -> Result<Vec<u8>, String> {
        match self.replies.recv_timeout(self.timeout) {
            Ok(reply) => reply,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("{what}: no answer within {:?}", self.timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("{what}: engine thread died")),
        }
    }

    /// Sends one request line; the reply must end with `\r\n`, which is stripped.
    pub fn exchange(&mut self, request: &str) -> Result<Exchange, String> {
        let tx = self.requests.as_ref().ok_or("engine already stopped")?;
        if tx.send(request.as_bytes().to_vec()).is_err() {
            self.requests = None;
            return Err("engine thread died".into());
        }
        let bytes = match self.wait("handle_line") {
            Ok(b) => b,
            Err(e) => {
                self.requests = None;
                return Err(e);
            }
        };
        Ok(split_reply(&bytes))
    }

    /// Stops the worker (closing the engine); reports a failing `close`.
    pub fn finish(mut self) -> Result<(), String> {
        match self.requests.take() {
            Some(tx) => {
                drop(tx);
                self.wait("Engine::close").map(|_| ())
            }
            None => Ok(()),
        }
    }
}

/// Splits a reply into body and terminator problems (`\r\n` is required and
/// the body must be a single line).
pub fn split_reply(bytes: &[u8]) -> Exchange {
    let mut problems = Vec::new();
    let body = if let Some(b) = bytes.strip_suffix(b"\r\n") {
        b
    } else if let Some(b) = bytes.strip_suffix(b"\n") {
        problems.push("line terminator is \"\\n\" (the engine must end replies with \\r\\n)".to_owned());
        b
    } else {
        problems.push("reply has no line terminator (the engine must end replies with \\r\\n)".to_owned());
        bytes
    };
    if body.contains(&b'\n') {
        problems.push("reply contains a newline before its terminator".to_owned());
    }
    if std::str::from_utf8(body).is_err() {
        problems.push("reply is not valid UTF-8".to_owned());
    }
    Exchange { body: Some(String::from_utf8_lossy(body).into_owned()), problems }
}

fn worker(flags: ServerFlags, requests: mpsc::Receiver<Vec<u8>>, replies: mpsc::Sender<WorkerReply>) {
    let dir = match tempfile::Builder::new().prefix("karma-conformance-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            let _ = replies.send(Err(format!("cannot create a temporary directory: {e}")));
            return;
        }
    };
    let opened = panic::catch_unwind(AssertUnwindSafe(|| Engine::open(flags.options(dir.path()))));
    let engine = match opened {
        Ok(Ok(engine)) => engine,
        Ok(Err(e)) => {
            let _ = replies.send(Err(format!("Engine::open failed: {e:?}")));
            return;
        }
        Err(p) => {
            let _ = replies.send(Err(format!("Engine::open panicked: {}", panic_text(&*p))));
            return;
        }
    };
    if replies.send(Ok(Vec::new())).is_err() {
        return;
    }
    let client = Session::client();
    for request in requests {
        let answered = panic::catch_unwind(AssertUnwindSafe(|| {
            let reply = engine.handle_line(&request, &client);
            if let Some(lsn) = reply.lsn {
                engine.wait_durable(lsn).map_err(|e| format!("wait_durable({lsn}) failed: {e:?}"))?;
            }
            Ok(reply.bytes)
        }));
        let message = match answered {
            Ok(result) => result,
            Err(p) => Err(format!("engine panicked: {}", panic_text(&*p))),
        };
        let fatal = message.is_err();
        if replies.send(message).is_err() || fatal {
            return;
        }
    }
    let closed = match panic::catch_unwind(AssertUnwindSafe(|| engine.close())) {
        Ok(Ok(())) => Ok(Vec::new()),
        Ok(Err(e)) => Err(format!("Engine::close failed: {e:?}")),
        Err(p) => Err(format!("Engine::close panicked: {}", panic_text(&*p))),
    };
    drop(engine);
    drop(dir);
    let _ = replies.send(closed);
}

/// Replays one scenario in-process on a fresh engine.
pub fn run_in_process(scenario: &Scenario, opts: &ReplayOptions, timeout: Duration) -> Outcome {
    let flags = match ServerFlags::parse(&scenario.meta.server_flags) {
        Ok(f) => f,
        Err(e) => return Outcome { failures: vec![Failure::scenario(e)], skipped: 0 },
    };
    let mut server = match InProcess::start(&flags, timeout) {
        Ok(s) => s,
        Err(e) => return Outcome { failures: vec![Failure::scenario(e)], skipped: 0 },
    };
    let mut outcome = run_scenario(scenario, opts, &mut |request| server.exchange(request));
    if let Err(e) = server.finish() {
        outcome.failures.push(Failure::scenario(e));
    }
    outcome
}

/// Shifts `"error_count":N` and `karma_errors_total N` in a recorded response
/// by `delta` (see `run_scenario`).
pub fn adjust_error_count(response: &str, delta: i64) -> String {
    if delta == 0 {
        return response.to_owned();
    }
    let mut out = response.to_owned();
    for marker in ["\"error_count\":", "karma_errors_total "] {
        let mut from = 0;
        while let Some(pos) = out[from..].find(marker) {
            let start = from + pos + marker.len();
            let end = start + out[start..].bytes().take_while(u8::is_ascii_digit).count();
            if let Ok(n) = out[start..end].parse::<i64>() {
                out.replace_range(start..end, &(n + delta).to_string());
            }
            from = start;
        }
    }
    out
}
