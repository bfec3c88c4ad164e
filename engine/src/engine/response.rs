//! Typed results of [`super::Engine::execute`] and their JSON rendering.

use crate::json::{write_str, write_u64};

/// `tree.keys` page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysPage {
    pub tree: String,
    pub limit: usize,
    pub cursor: Option<u64>,
    pub next_cursor: Option<u64>,
    /// `(key, total)` ascending by key.
    pub keys: Vec<(u64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeInfo {
    pub tree: String,
    pub key_count: usize,
    pub bucket_count: usize,
    /// Saturates at u64::MAX (Karma 1.0 failed with `Arithmetic overflow`).
    pub total: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub tree: String,
    pub range: Option<(u64, u64)>,
    pub total: u64,
    pub active_keys: usize,
    pub bucket_count: usize,
}

/// What an op answered, before it is rendered as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// `"OK"`.
    Ok,
    /// JSON `true` (range deletes).
    True,
    Text(String),
    U64(u64),
    Added {
        applied: usize,
        total: u64,
    },
    Applied {
        applied: usize,
    },
    Reset {
        reset: usize,
        missing: usize,
    },
    Deleted {
        deleted: usize,
        missing: usize,
    },
    /// `counter.batch_sum`: `(key, value)` in request order.
    KeyValues(Vec<(u64, u64)>),
    /// `counter.multi_sum`: `(series, key, value)`.
    MultiSum(Vec<(String, u64, u64)>),
    /// `counter.series`: `(bucket, value)` in insertion order.
    Buckets(Vec<(u64, u64)>),
    Names(Vec<String>),
    TreeInfo(TreeInfo),
    Keys(KeysPage),
    Top {
        tree: String,
        limit: usize,
        items: Vec<(u64, u64)>,
    },
    Summary(Summary),
    /// `tree.series`: key → buckets.
    TreeSeries(Vec<(u64, Vec<(u64, u64)>)>),
    /// `counter.consume`.
    Quota(super::Quota),
    /// Anything rarer, already rendered.
    Json(Vec<u8>),
}

fn kv_list(out: &mut Vec<u8>, items: &[(u64, u64)], a: &str, b: &str) {
    out.push(b'[');
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\":");
        write_u64(out, *k);
        out.extend_from_slice(b",\"");
        out.extend_from_slice(b.as_bytes());
        out.extend_from_slice(b"\":");
        write_u64(out, *v);
        out.push(b'}');
    }
    out.push(b']');
}

fn bucket_map(out: &mut Vec<u8>, buckets: &[(u64, u64)]) {
    out.push(b'{');
    for (i, (b, v)) in buckets.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        write_u64(out, *b);
        out.extend_from_slice(b"\":");
        write_u64(out, *v);
    }
    out.push(b'}');
}

fn opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(n) => write_u64(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

impl Response {
    /// Writes the `response` value.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Response::Ok => out.extend_from_slice(b"\"OK\""),
            Response::True => out.extend_from_slice(b"true"),
            Response::Text(s) => write_str(out, s),
            Response::U64(n) => write_u64(out, *n),
            Response::Added { applied, total } => {
                out.extend_from_slice(b"{\"applied\":");
                write_u64(out, *applied as u64);
                out.extend_from_slice(b",\"total\":");
                write_u64(out, *total);
                out.push(b'}');
            }
            Response::Applied { applied } => {
                out.extend_from_slice(b"{\"applied\":");
                write_u64(out, *applied as u64);
                out.push(b'}');
            }
            Response::Reset { reset, missing } => {
                out.extend_from_slice(b"{\"reset\":");
                write_u64(out, *reset as u64);
                out.extend_from_slice(b",\"missing\":");
                write_u64(out, *missing as u64);
                out.push(b'}');
            }
            Response::Deleted { deleted, missing } => {
                out.extend_from_slice(b"{\"deleted\":");
                write_u64(out, *deleted as u64);
                out.extend_from_slice(b",\"missing\":");
                write_u64(out, *missing as u64);
                out.push(b'}');
            }
            Response::KeyValues(items) => kv_list(out, items, "key", "value"),
            Response::MultiSum(items) => {
                out.push(b'[');
                for (i, (s, k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"series\":");
                    write_str(out, s);
                    out.extend_from_slice(b",\"key\":");
                    write_u64(out, *k);
                    out.extend_from_slice(b",\"value\":");
                    write_u64(out, *v);
                    out.push(b'}');
                }
                out.push(b']');
            }
            Response::Buckets(b) => bucket_map(out, b),
            Response::Names(names) => {
                out.push(b'[');
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, n);
                }
                out.push(b']');
            }
            Response::TreeInfo(t) => {
                out.extend_from_slice(b"{\"tree\":");
                write_str(out, &t.tree);
                out.extend_from_slice(b",\"key_count\":");
                write_u64(out, t.key_count as u64);
                out.extend_from_slice(b",\"bucket_count\":");
                write_u64(out, t.bucket_count as u64);
                out.extend_from_slice(b",\"total\":");
                write_u64(out, t.total);
                out.extend_from_slice(b",\"branches\":9}");
            }
            Response::Keys(p) => {
                out.extend_from_slice(b"{\"tree\":");
                write_str(out, &p.tree);
                out.extend_from_slice(b",\"limit\":");
                write_u64(out, p.limit as u64);
                out.extend_from_slice(b",\"cursor\":");
                opt_u64(out, p.cursor);
                out.extend_from_slice(b",\"next_cursor\":");
                opt_u64(out, p.next_cursor);
                out.extend_from_slice(b",\"keys\":");
                kv_list(out, &p.keys, "key", "total");
                out.push(b'}');
            }
            Response::Top { tree, limit, items } => {
                out.extend_from_slice(b"{\"tree\":");
                write_str(out, tree);
                out.extend_from_slice(b",\"limit\":");
                write_u64(out, *limit as u64);
                out.extend_from_slice(b",\"items\":");
                kv_list(out, items, "key", "value");
                out.push(b'}');
            }
            Response::Summary(s) => {
                out.extend_from_slice(b"{\"tree\":");
                write_str(out, &s.tree);
                if let Some((from, to)) = s.range {
                    out.extend_from_slice(b",\"range_from\":");
                    write_u64(out, from);
                    out.extend_from_slice(b",\"range_to\":");
                    write_u64(out, to);
                }
                out.extend_from_slice(b",\"total\":");
                write_u64(out, s.total);
                out.extend_from_slice(b",\"active_keys\":");
                write_u64(out, s.active_keys as u64);
                out.extend_from_slice(b",\"bucket_count\":");
                write_u64(out, s.bucket_count as u64);
                out.push(b'}');
            }
            Response::TreeSeries(keys) => {
                out.push(b'{');
                for (i, (k, buckets)) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    write_u64(out, *k);
                    out.extend_from_slice(b"\":");
                    bucket_map(out, buckets);
                }
                out.push(b'}');
            }
            Response::Quota(q) => q.write_json(out),
            Response::Json(raw) => out.extend_from_slice(raw),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.write_json(&mut out);
        out
    }
}
