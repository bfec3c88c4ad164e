//! A result kind of the method table to Python, one function per kind,
//! named after it: ints, lists of ints, `(a, b)` tuples, `None`, and the
//! dicts `info`, `keys` and `summary` answer (the same keys as the v2
//! response fields).

use karma_engine::api::Value;
use karma_engine::{KeysPage, Summary, TreeInfo};
use pyo3::prelude::*;

use crate::api::{dict, int, opt_int, pairs as pair_list};
use crate::conv;

pub fn unit(py: Python<'_>, (): ()) -> PyResult<Bound<'_, PyAny>> {
    Ok(py.None().into_bound(py))
}

pub fn uint(py: Python<'_>, v: u64) -> PyResult<Bound<'_, PyAny>> {
    Ok(int(py, v))
}

pub fn count(py: Python<'_>, v: usize) -> PyResult<Bound<'_, PyAny>> {
    Ok(int(py, v as u64))
}

pub fn uints(py: Python<'_>, v: Vec<u64>) -> PyResult<Bound<'_, PyAny>> {
    v.into_pyobject(py).map(Bound::into_any)
}

pub fn pairs(py: Python<'_>, v: Vec<(u64, u64)>) -> PyResult<Bound<'_, PyAny>> {
    pair_list(py, v)
}

pub fn names(py: Python<'_>, v: Vec<String>) -> PyResult<Bound<'_, PyAny>> {
    v.into_pyobject(py).map(Bound::into_any)
}

pub fn text(py: Python<'_>, v: String) -> PyResult<Bound<'_, PyAny>> {
    let Ok(s) = v.into_pyobject(py);
    Ok(s.into_any())
}

pub fn json(py: Python<'_>, v: Value) -> PyResult<Bound<'_, PyAny>> {
    conv::from_json(py, &v)
}

/// `{"tree", "key_count", "bucket_count", "total"}`.
pub fn info(py: Python<'_>, t: TreeInfo) -> PyResult<Bound<'_, PyAny>> {
    let d = dict(
        py,
        &[
            ("tree", t.tree.into_pyobject(py)?.into_any()),
            ("key_count", int(py, t.key_count as u64)),
            ("bucket_count", int(py, t.bucket_count as u64)),
            ("total", int(py, t.total)),
        ],
    )?;
    Ok(d.into_any())
}

/// `{"tree", "limit", "cursor", "next_cursor", "keys": [(key, total), ...]}`.
pub fn page(py: Python<'_>, p: KeysPage) -> PyResult<Bound<'_, PyAny>> {
    let d = dict(
        py,
        &[
            ("tree", p.tree.into_pyobject(py)?.into_any()),
            ("limit", int(py, p.limit as u64)),
            ("cursor", opt_int(py, p.cursor)),
            ("next_cursor", opt_int(py, p.next_cursor)),
            ("keys", pair_list(py, p.keys)?),
        ],
    )?;
    Ok(d.into_any())
}

/// `{"tree", "range": (from, to) | None, "total", "active_keys", "bucket_count"}`.
pub fn summary(py: Python<'_>, s: Summary) -> PyResult<Bound<'_, PyAny>> {
    let range = match s.range {
        Some(r) => r.into_pyobject(py)?.into_any(),
        None => py.None().into_bound(py),
    };
    let d = dict(
        py,
        &[
            ("tree", s.tree.into_pyobject(py)?.into_any()),
            ("range", range),
            ("total", int(py, s.total)),
            ("active_keys", int(py, s.active_keys as u64)),
            ("bucket_count", int(py, s.bucket_count as u64)),
        ],
    )?;
    Ok(d.into_any())
}
