//! Python values to engine arguments and JSON, and back.
//!
//! Integers are `u64` end to end: Python ints up to 2**64-1 pass unchanged,
//! negatives and larger ints are a `karma.ValidationError` naming the
//! argument. Buckets are ints (`YYYYMMDD`), `datetime.date`, or
//! `datetime.datetime` (converted to UTC first; naive means UTC).

use karma_engine::{Item, Range, Window};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use serde_json::{Map, Number, Value};

use crate::errors;

static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// Why `obj` is not a u64: a `ValidationError` for out-of-range ints, a
/// `TypeError` for everything else.
#[cold]
fn u64_error(obj: &Bound<'_, PyAny>, what: &str) -> PyErr {
    let py = obj.py();
    if obj.is_instance_of::<PyInt>() {
        if obj.lt(0).unwrap_or(false) {
            return errors::argument(py, format!("{what} must be greater than or equal to 0, got {obj}"));
        }
        return errors::argument(py, format!("{what} must be at most 2**64-1 (18446744073709551615), got {obj}"));
    }
    PyTypeError::new_err(format!("{what} must be an int, got {}", type_name(obj)))
}

/// A non-negative int up to 2**64-1.
#[inline]
pub fn u64_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    match obj.extract::<u64>() {
        Ok(v) => Ok(v),
        Err(_) => Err(u64_error(obj, what)),
    }
}

pub fn opt_u64(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<u64>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => u64_arg(o, what).map(Some),
    }
}

/// `consume`'s window from its `window` and `days` arguments, read as the
/// protocol reads its fields ([`Window::parse`], with its messages).
pub fn window(py: Python<'_>, window: Option<&str>, days: Option<u64>) -> PyResult<Window> {
    Window::parse(window, days).map_err(|e| errors::argument(py, e.message()))
}

/// A `limit`: a u64 that saturates at `usize::MAX`.
pub fn opt_limit(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<usize>> {
    Ok(opt_u64(obj, what)?.map(|v| usize::try_from(v).unwrap_or(usize::MAX)))
}

fn utc(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    UTC.get_or_try_init(py, || Ok::<_, PyErr>(py.import("datetime")?.getattr("timezone")?.getattr("utc")?.unbind()))
        .map(|u| u.bind(py))
}

fn field(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    obj.getattr(name)?.extract::<u64>()
}

/// A `datetime.datetime` in UTC (aware ones converted, naive ones taken as UTC).
fn as_utc<'py>(dt: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if dt.getattr("tzinfo")?.is_none() || dt.call_method0("utcoffset")?.is_none() {
        return Ok(dt.clone());
    }
    dt.call_method1("astimezone", (utc(dt.py())?,))
}

enum When<'py> {
    DateTime(Bound<'py, PyAny>),
    Date(Bound<'py, PyAny>),
    Other,
}

fn classify<'py>(obj: &Bound<'py, PyAny>) -> PyResult<When<'py>> {
    let py = obj.py();
    if obj.is_instance(DATETIME.import(py, "datetime", "datetime")?)? {
        Ok(When::DateTime(as_utc(obj)?))
    } else if obj.is_instance(DATE.import(py, "datetime", "date")?)? {
        Ok(When::Date(obj.clone()))
    } else {
        Ok(When::Other)
    }
}

fn ymd(d: &Bound<'_, PyAny>) -> PyResult<u64> {
    Ok(field(d, "year")? * 10_000 + field(d, "month")? * 100 + field(d, "day")?)
}

/// A day bucket: int `YYYYMMDD`, `date`, or `datetime` (its UTC day).
pub fn bucket(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    if obj.is_instance_of::<PyInt>() {
        return u64_arg(obj, what);
    }
    match classify(obj)? {
        When::DateTime(d) | When::Date(d) => ymd(&d),
        When::Other => Err(PyTypeError::new_err(format!(
            "{what} must be an int YYYYMMDD, a datetime.date or a datetime.datetime, got {}",
            type_name(obj)
        ))),
    }
}

pub fn opt_bucket(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<u64>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => bucket(o, what).map(Some),
    }
}

/// A `(from, to)` pair of buckets (tuple or list), or `{"from": .., "to": ..}`.
pub fn range(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Range> {
    if let Ok(d) = obj.cast::<PyDict>() {
        let get = |k: &str| -> PyResult<u64> {
            match d.get_item(k)? {
                Some(v) => bucket(&v, &format!("{what}[{k:?}]")),
                None => Err(PyTypeError::new_err(format!("{what} needs a {k:?} entry"))),
            }
        };
        return Ok(Range { from: get("from")?, to: get("to")? });
    }
    if (obj.is_instance_of::<PyTuple>() || obj.is_instance_of::<PyList>()) && obj.len()? == 2 {
        let from = bucket(&obj.get_item(0)?, &format!("{what}[0]"))?;
        let to = bucket(&obj.get_item(1)?, &format!("{what}[1]"))?;
        return Ok(Range { from, to });
    }
    Err(PyTypeError::new_err(format!("{what} must be a (from, to) tuple of buckets, got {}", type_name(obj))))
}

pub fn opt_range(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Range>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => range(o, what).map(Some),
    }
}

/// A list (any iterable) of keys.
pub fn keys(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u64>> {
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    for (i, k) in obj.try_iter()?.enumerate() {
        let k = k?;
        out.push(u64_arg(&k, &format!("{what}[{i}]"))?);
    }
    Ok(out)
}

/// The parts of a tuple or list of exactly `n` elements.
fn parts<'py>(item: &Bound<'py, PyAny>, n: usize, what: &str, shape: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let ok = (item.is_instance_of::<PyTuple>() || item.is_instance_of::<PyList>()) && item.len()? == n;
    if !ok {
        return Err(PyTypeError::new_err(format!("{what} must be a {shape} tuple, got {}", type_name(item))));
    }
    (0..n).map(|i| item.get_item(i)).collect()
}

/// `[(key, bucket, value), ...]`.
pub fn items(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Item>> {
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    for (i, item) in obj.try_iter()?.enumerate() {
        let item = item?;
        let name = format!("{what}[{i}]");
        let p = parts(&item, 3, &name, "(key, bucket, value)")?;
        out.push([
            u64_arg(&p[0], &format!("{name} key"))?,
            bucket(&p[1], &format!("{name} bucket"))?,
            u64_arg(&p[2], &format!("{name} value"))?,
        ]);
    }
    Ok(out)
}

/// `[(series, key), ...]`.
pub fn series_keys(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<(String, u64)>> {
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    for (i, item) in obj.try_iter()?.enumerate() {
        let item = item?;
        let name = format!("{what}[{i}]");
        let p = parts(&item, 2, &name, "(series, key)")?;
        let series: String = p[0]
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("{name} series must be a str, got {}", type_name(&p[0]))))?;
        out.push((series, u64_arg(&p[1], &format!("{name} key"))?));
    }
    Ok(out)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `idempotency.prune`'s `before`: an int (unix seconds), a `datetime`
/// (naive = UTC), a `date` (its midnight UTC) or an RFC 3339 string.
pub fn before_time(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if obj.is_instance_of::<PyInt>() {
        return Ok(Value::from(u64_arg(obj, "before")?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::from(s.to_cow()?.into_owned()));
    }
    let (d, with_time) = match classify(obj)? {
        When::DateTime(d) => (d, true),
        When::Date(d) => (d, false),
        When::Other => {
            return Err(PyTypeError::new_err(format!(
                "before must be an int (unix seconds), a datetime, a date or an RFC 3339 str, got {}",
                type_name(obj)
            )))
        }
    };
    let get = |n: &str| -> PyResult<i64> { d.getattr(n)?.extract::<i64>() };
    let mut secs = days_from_civil(get("year")?, get("month")?, get("day")?) * 86_400;
    if with_time {
        secs += get("hour")? * 3600 + get("minute")? * 60 + get("second")?;
    }
    u64::try_from(secs)
        .map(Value::from)
        .map_err(|_| errors::argument(obj.py(), format!("before must not be earlier than 1970-01-01, got {obj}")))
}

/// Python to JSON for `request(**fields)`: ints must fit u64 (or i64 when
/// negative, so the server's own validation can be exercised), dates become
/// `YYYYMMDD` buckets, tuples become arrays.
pub fn to_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<u64>() {
            return Ok(Value::from(v));
        }
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(Value::from(v));
        }
        return Err(errors::argument(obj.py(), format!("{what} does not fit the protocol's integers, got {obj}")));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| errors::argument(obj.py(), format!("{what} must be a finite number, got {obj}")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict_to_json(d, what).map(Value::Object);
    }
    if obj.is_instance_of::<PyTuple>() || obj.is_instance_of::<PyList>() {
        let mut out = Vec::with_capacity(obj.len()?);
        for (i, v) in obj.try_iter()?.enumerate() {
            out.push(to_json(&v?, &format!("{what}[{i}]"))?);
        }
        return Ok(Value::Array(out));
    }
    match classify(obj)? {
        When::DateTime(d) | When::Date(d) => Ok(Value::from(ymd(&d)?)),
        When::Other => Err(PyTypeError::new_err(format!("{what}: cannot send a {} as JSON", type_name(obj)))),
    }
}

pub fn dict_to_json(d: &Bound<'_, PyDict>, what: &str) -> PyResult<Map<String, Value>> {
    let mut map = Map::with_capacity(d.len());
    for (k, v) in d.iter() {
        let key: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("{what}: keys must be str, got {}", type_name(&k))))?;
        let value = to_json(&v, &key)?;
        map.insert(key, value);
    }
    Ok(map)
}

/// JSON to Python: objects become dicts, arrays lists, numbers ints (u64 or
/// i64) or floats.
pub fn from_json<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for item in a {
                list.append(from_json(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let dict = PyDict::new(py);
            for (k, item) in m {
                dict.set_item(k, from_json(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::days_from_civil;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 5, 29), 20_602);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
