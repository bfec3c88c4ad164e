//! JavaScript values to engine arguments, and engine results back.
//!
//! Counters are u64 end to end and never pass through a double: arguments
//! are a `bigint` (0 ..= 2**64-1) or a `number` that is a safe integer
//! (`Number.isSafeInteger`, so exact); anything else is a `RangeError` (a
//! number out of range, fractional or unsafe) or a `TypeError` (not a number).
//! Results that are counters or keys come back as `bigint`.
//!
//! Buckets are `YYYYMMDD` numbers (`20260505`), `'YYYY-MM-DD'` strings or
//! `Date`s (their UTC day); ranges are `{ from, to }` of buckets.

use karma_engine::{Item, Range};
use napi::bindgen_prelude::{Array, BigInt, FromNapiValue, JsObjectValue, Object, ToNapiValue};
use napi::{sys, Env, JsDate, JsNumber, JsString, JsValue, Unknown, ValueType};
use serde_json::{Map, Number, Value};

use crate::errors::Failure;

/// The result of converting one argument.
pub type Arg<T> = Result<T, Failure>;

/// The largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

pub fn type_of(v: &Unknown<'_>) -> ValueType {
    v.get_type().unwrap_or(ValueType::Unknown)
}

fn type_label(v: &Unknown<'_>) -> &'static str {
    match type_of(v) {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Symbol => "a symbol",
        ValueType::Object if v.is_array().unwrap_or(false) => "an array",
        ValueType::Object => "an object",
        ValueType::Function => "a function",
        ValueType::BigInt => "a bigint",
        _ => "an unknown value",
    }
}

/// `undefined` and `null` both mean "not given".
pub fn is_absent(v: &Unknown<'_>) -> bool {
    matches!(type_of(v), ValueType::Undefined | ValueType::Null)
}

fn number(v: &Unknown<'_>) -> Option<f64> {
    // SAFETY: only called after `get_type()` said Number.
    let n = unsafe { v.cast::<JsNumber>() }.ok()?;
    n.get_double().ok()
}

/// A safe, non-negative integer number as u64.
fn safe_u64(n: f64, what: &str) -> Arg<u64> {
    if n.is_finite() && n.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&n) {
        return Ok(n as u64);
    }
    if n.is_finite() && n.fract() == 0.0 && n > MAX_SAFE_INTEGER {
        return Err(Failure::Range(format!(
            "{what} must be a safe integer (at most 2**53-1) or a bigint, got {n}: pass a bigint for larger values"
        )));
    }
    Err(Failure::Range(format!("{what} must be an integer from 0 to 2**64-1, got {n}")))
}

fn bigint(v: &Unknown<'_>) -> Arg<BigInt> {
    // SAFETY: only called after `get_type()` said BigInt; env and value come from `v`.
    unsafe { BigInt::from_napi_value(v.value().env, v.raw()) }.map_err(|e| Failure::Type(e.reason.clone()))
}

/// A u64 argument: a `bigint` or a safe-integer `number`.
pub fn u64_arg(v: &Unknown<'_>, what: &str) -> Arg<u64> {
    // The common case in one N-API call: a number (any other type fails it).
    let mut n = 0f64;
    // SAFETY: env and value come from `v`, `n` is a valid out pointer.
    if unsafe { sys::napi_get_value_double(v.value().env, v.raw(), &mut n) } == sys::Status::napi_ok {
        return safe_u64(n, what);
    }
    match type_of(v) {
        ValueType::Number => safe_u64(number(v).unwrap_or(f64::NAN), what),
        ValueType::BigInt => match bigint(v)?.get_u64() {
            (false, value, true) => Ok(value),
            _ => Err(Failure::Range(format!("{what} must be a bigint from 0n to 2n**64n-1n"))),
        },
        _ => Err(Failure::Type(format!("{what} must be a number or a bigint, got {}", type_label(v)))),
    }
}

pub fn opt_u64(v: Option<&Unknown<'_>>, what: &str) -> Arg<Option<u64>> {
    match v {
        Some(v) if !is_absent(v) => u64_arg(v, what).map(Some),
        _ => Ok(None),
    }
}

/// A `limit`: a u64 saturating at `usize::MAX`.
pub fn opt_limit(v: Option<&Unknown<'_>>, what: &str) -> Arg<Option<usize>> {
    Ok(opt_u64(v, what)?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
}

pub fn string(v: &Unknown<'_>, what: &str) -> Arg<String> {
    text(v, what).map(|t| t.as_str().to_owned())
}

/// A string argument, short ones kept on the stack: series names are read
/// on every call, and one N-API call into a buffer beats measuring the
/// string, allocating and copying.
pub struct Text {
    buf: [u8; TEXT_INLINE],
    len: usize,
    long: Option<String>,
}

/// Bytes a [`Text`] holds without allocating (series names are far shorter).
const TEXT_INLINE: usize = 256;

impl Text {
    pub fn as_str(&self) -> &str {
        match &self.long {
            Some(s) => s,
            // The bytes came from V8 as UTF-8 and `len` stops short of any cut.
            None => std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default(),
        }
    }
}

pub fn text(v: &Unknown<'_>, what: &str) -> Arg<Text> {
    let mut t = Text { buf: [0; TEXT_INLINE], len: 0, long: None };
    // SAFETY: env and value come from `v`; napi writes at most `buf.len()`
    // bytes (the last a NUL) and the length written to `len`.
    let status = unsafe {
        sys::napi_get_value_string_utf8(v.value().env, v.raw(), t.buf.as_mut_ptr().cast(), t.buf.len(), &mut t.len)
    };
    if status != sys::Status::napi_ok {
        return Err(Failure::Type(format!("{what} must be a string, got {}", type_label(v))));
    }
    // Shorter than the buffer's room: nothing was cut, and V8 never cuts
    // inside a character, so the bytes are valid UTF-8.
    if t.len + 1 < TEXT_INLINE && std::str::from_utf8(&t.buf[..t.len]).is_ok() {
        return Ok(t);
    }
    // SAFETY: the N-API call above said String.
    let s = unsafe { v.cast::<JsString>() }.map_err(|e| Failure::Type(e.reason.clone()))?;
    let long =
        s.into_utf8().and_then(|u| u.into_owned()).map_err(|e| Failure::Type(format!("{what}: {}", e.reason)))?;
    t.long = Some(long);
    Ok(t)
}

pub fn opt_string(v: Option<&Unknown<'_>>, what: &str) -> Arg<Option<String>> {
    match v {
        Some(v) if !is_absent(v) => string(v, what).map(Some),
        _ => Ok(None),
    }
}

/// `YYYYMMDD` of the UTC day `ms` (milliseconds since the epoch) falls on.
fn utc_ymd(ms: f64, what: &str) -> Arg<u64> {
    if !ms.is_finite() {
        return Err(Failure::Range(format!("{what} is an invalid Date")));
    }
    let days = (ms / 86_400_000.0).floor() as i64;
    let (y, m, d) = civil_from_days(days);
    if y < 0 {
        return Err(Failure::Range(format!("{what} must not be before year 0")));
    }
    Ok(y as u64 * 10_000 + m as u64 * 100 + d as u64)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_date(v: &Unknown<'_>) -> bool {
    type_of(v) == ValueType::Object && v.is_date().unwrap_or(false)
}

fn date_ms(v: &Unknown<'_>) -> Arg<f64> {
    // SAFETY: only called after `is_date()`.
    let date = unsafe { v.cast::<JsDate>() }.map_err(|e| Failure::Type(e.reason.clone()))?;
    date.value_of().map_err(|e| Failure::Type(e.reason.clone()))
}

/// A day bucket: `20260505`, `'2026-05-05'` or a `Date` (its UTC day).
pub fn bucket(v: &Unknown<'_>, what: &str) -> Arg<u64> {
    match type_of(v) {
        ValueType::Number | ValueType::BigInt => u64_arg(v, what),
        ValueType::String => {
            let s = string(v, what)?;
            karma_engine::protocol::fields::parse_bucket_string(&s).map_err(Failure::Engine)
        }
        _ if is_date(v) => utc_ymd(date_ms(v)?, what),
        _ => Err(Failure::Type(format!(
            "{what} must be a YYYYMMDD number, a 'YYYY-MM-DD' string or a Date, got {}",
            type_label(v)
        ))),
    }
}

pub fn opt_bucket(v: Option<&Unknown<'_>>, what: &str) -> Arg<Option<u64>> {
    match v {
        Some(v) if !is_absent(v) => bucket(v, what).map(Some),
        _ => Ok(None),
    }
}

fn object<'a>(v: &Unknown<'a>, what: &str, shape: &str) -> Arg<Object<'a>> {
    if type_of(v) != ValueType::Object || v.is_array().unwrap_or(false) {
        return Err(Failure::Type(format!("{what} must be {shape}, got {}", type_label(v))));
    }
    // SAFETY: `get_type()` said Object.
    unsafe { v.cast::<Object>() }.map_err(|e| Failure::Type(e.reason.clone()))
}

/// Property `name` of an object (`undefined` when missing).
pub fn property<'a>(obj: &Object<'a>, name: &str) -> Arg<Unknown<'a>> {
    obj.get_named_property::<Unknown>(name).map_err(|e| Failure::Type(format!("{name}: {}", e.reason)))
}

/// `{ from, to }` of buckets.
pub fn range(v: &Unknown<'_>, what: &str) -> Arg<Range> {
    let obj = object(v, what, "a { from, to } object of buckets")?;
    let get = |k: &str| -> Arg<u64> {
        let part = property(&obj, k)?;
        if is_absent(&part) {
            return Err(Failure::Type(format!("{what} needs a {k:?} bucket")));
        }
        bucket(&part, &format!("{what}.{k}"))
    };
    Ok(Range { from: get("from")?, to: get("to")? })
}

pub fn opt_range(v: Option<&Unknown<'_>>, what: &str) -> Arg<Option<Range>> {
    match v {
        Some(v) if !is_absent(v) => range(v, what).map(Some),
        _ => Ok(None),
    }
}

fn array<'a>(v: &Unknown<'a>, what: &str, shape: &str) -> Arg<Array<'a>> {
    if !v.is_array().unwrap_or(false) {
        return Err(Failure::Type(format!("{what} must be an array of {shape}, got {}", type_label(v))));
    }
    // SAFETY: `is_array()` said so; the raw value and env come from `v`.
    unsafe { Array::from_napi_value(v.value().env, v.raw()) }.map_err(|e| Failure::Type(e.reason.clone()))
}

fn element<'a>(a: &Array<'a>, i: u32) -> Arg<Unknown<'a>> {
    match a.get::<Unknown>(i) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(Failure::Type(format!("missing element {i}"))),
        Err(e) => Err(Failure::Type(e.reason.clone())),
    }
}

/// The elements of an array (each converted by `each`).
fn each<T>(
    v: &Unknown<'_>,
    what: &str,
    shape: &str,
    mut each: impl FnMut(&Unknown<'_>, &str) -> Arg<T>,
) -> Arg<Vec<T>> {
    let a = array(v, what, shape)?;
    let mut out = Vec::with_capacity(a.len() as usize);
    for i in 0..a.len() {
        out.push(each(&element(&a, i)?, &format!("{what}[{i}]"))?);
    }
    Ok(out)
}

/// An array of keys.
pub fn keys(v: &Unknown<'_>, what: &str) -> Arg<Vec<u64>> {
    each(v, what, "keys", u64_arg)
}

/// `[key, bucket, value]` items.
pub fn items(v: &Unknown<'_>, what: &str) -> Arg<Vec<Item>> {
    each(v, what, "[key, bucket, value] items", |item, name| {
        let parts = array(item, name, "[key, bucket, value]")?;
        if parts.len() != 3 {
            return Err(Failure::Type(format!("{name} must be a [key, bucket, value] array")));
        }
        Ok([
            u64_arg(&element(&parts, 0)?, &format!("{name} key"))?,
            bucket(&element(&parts, 1)?, &format!("{name} bucket"))?,
            u64_arg(&element(&parts, 2)?, &format!("{name} value"))?,
        ])
    })
}

/// `[series, key]` pairs.
pub fn series_keys(v: &Unknown<'_>, what: &str) -> Arg<Vec<(String, u64)>> {
    each(v, what, "[series, key] pairs", |item, name| {
        let parts = array(item, name, "[series, key]")?;
        if parts.len() != 2 {
            return Err(Failure::Type(format!("{name} must be a [series, key] array")));
        }
        Ok((
            string(&element(&parts, 0)?, &format!("{name} series"))?,
            u64_arg(&element(&parts, 1)?, &format!("{name} key"))?,
        ))
    })
}

/// An options object (`undefined`/`null` = none); names outside `known`
/// are refused, so a misspelt option (a token, a policy) is never ignored.
pub fn options<'a>(v: Option<&Unknown<'a>>, what: &str, known: &[&str]) -> Arg<Option<Object<'a>>> {
    let Some(v) = v.filter(|v| !is_absent(v)) else { return Ok(None) };
    let obj = object(v, what, "an options object")?;
    let names = obj.get_property_names().map_err(|e| Failure::Type(e.reason.clone()))?;
    // SAFETY: property names come from the same env as `v`.
    let names =
        unsafe { Array::from_napi_value(v.value().env, names.raw()) }.map_err(|e| Failure::Type(e.reason.clone()))?;
    for i in 0..names.len() {
        let name = string(&element(&names, i)?, &format!("{what} name"))?;
        if !known.contains(&name.as_str()) {
            return Err(Failure::Type(format!("{what} has an unknown option {name:?} (known: {})", known.join(", "))));
        }
    }
    Ok(Some(obj))
}

/// Property `name` of an optional options object, `None` when absent.
pub fn option<'a>(obj: Option<&Object<'a>>, name: &str) -> Arg<Option<Unknown<'a>>> {
    match obj {
        None => Ok(None),
        Some(o) => property(o, name).map(|v| Some(v).filter(|v| !is_absent(v))),
    }
}

/// `idempotency.prune`'s `before`: a number or bigint (unix seconds), a
/// `Date`, or an RFC 3339 string (passed through for the engine to parse).
pub fn before_time(v: &Unknown<'_>) -> Arg<Value> {
    match type_of(v) {
        ValueType::String => string(v, "before").map(Value::from),
        ValueType::Number | ValueType::BigInt => u64_arg(v, "before").map(Value::from),
        _ if is_date(v) => {
            let ms = date_ms(v)?;
            if !ms.is_finite() || ms < 0.0 {
                return Err(Failure::Range("before must be a valid Date not before 1970-01-01".into()));
            }
            Ok(Value::from((ms / 1000.0).floor() as u64))
        }
        _ => Err(Failure::Type(format!(
            "before must be a number (unix seconds), a Date or an RFC 3339 string, got {}",
            type_label(v)
        ))),
    }
}

/// A JS value as request JSON (`request(op, fields)`): bigints and safe
/// integers become exact integers (negative ones too, so the server's own
/// validation can be exercised), Dates become `YYYYMMDD` buckets.
pub fn to_json(v: &Unknown<'_>, what: &str) -> Arg<Value> {
    match type_of(v) {
        ValueType::Undefined | ValueType::Null => Ok(Value::Null),
        ValueType::Boolean => Ok(Value::Bool(v.coerce_to_bool().unwrap_or(false))),
        ValueType::Number => {
            let n = number(v).unwrap_or(f64::NAN);
            if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER {
                return Ok(Value::from(n as i64));
            }
            Number::from_f64(n).map(Value::Number).ok_or_else(|| Failure::Range(format!("{what} must be finite")))
        }
        ValueType::BigInt => {
            let big = bigint(v)?;
            match big.get_u64() {
                (false, u, true) => Ok(Value::from(u)),
                _ => match big.get_i64() {
                    (i, true) => Ok(Value::from(i)),
                    _ => Err(Failure::Range(format!("{what} does not fit the protocol's 64-bit integers"))),
                },
            }
        }
        ValueType::String => string(v, what).map(Value::String),
        ValueType::Object if v.is_array().unwrap_or(false) => each(v, what, "values", to_json).map(Value::Array),
        ValueType::Object if is_date(v) => utc_ymd(date_ms(v)?, what).map(Value::from),
        ValueType::Object => {
            // SAFETY: `get_type()` said Object.
            let obj = unsafe { v.cast::<Object>() }.map_err(|e| Failure::Type(e.reason.clone()))?;
            object_to_json(&obj, what).map(Value::Object)
        }
        _ => Err(Failure::Type(format!("{what}: cannot send {} as JSON", type_label(v)))),
    }
}

pub fn object_to_json(obj: &Object<'_>, what: &str) -> Arg<Map<String, Value>> {
    let names = obj.get_property_names().map_err(|e| Failure::Type(e.reason.clone()))?;
    // SAFETY: property names come from the same env as `obj`.
    let names =
        unsafe { Array::from_napi_value(obj.value().env, names.raw()) }.map_err(|e| Failure::Type(e.reason.clone()))?;
    let mut map = Map::with_capacity(names.len() as usize);
    for i in 0..names.len() {
        let name = string(&element(&names, i)?, &format!("{what} name"))?;
        let value = property(obj, &name)?;
        map.insert(name.clone(), to_json(&value, &name)?);
    }
    Ok(map)
}

/// JSON to JS for untyped responses (`request`, `health`, `stats`):
/// integers that a double holds exactly are numbers, larger ones `bigint`,
/// so nothing is rounded.
pub fn from_json(env: &Env, v: Value) -> napi::Result<Unknown<'_>> {
    Ok(match v {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) if u as f64 <= MAX_SAFE_INTEGER => env.create_double(u as f64)?.to_unknown(),
            (Some(u), _) => js(env, BigInt::from(u))?,
            (None, Some(i)) if (i as f64).abs() <= MAX_SAFE_INTEGER => env.create_double(i as f64)?.to_unknown(),
            (None, Some(i)) => js(env, BigInt::from(i))?,
            _ => env.create_double(n.as_f64().unwrap_or(f64::NAN))?.to_unknown(),
        },
        Value::Array(items) => {
            let mut a = Array::from_vec(env, Vec::<Value>::new())?;
            for (i, item) in items.into_iter().enumerate() {
                a.set(i as u32, from_json(env, item)?)?;
            }
            a.to_unknown()
        }
        Value::Object(map) => {
            let mut o = Object::new(env)?;
            for (k, item) in map {
                o.set_named_property(&k, from_json(env, item)?)?;
            }
            o.to_unknown()
        }
        other => js(env, other)?,
    })
}

fn js<T: ToNapiValue>(env: &Env, v: T) -> napi::Result<Unknown<'_>> {
    // SAFETY: `env` is the live env of this call; the value is created in it.
    unsafe { Ok(Unknown::from_raw_unchecked(env.raw(), T::to_napi_value(env.raw(), v)?)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_602), (2026, 5, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(utc_ymd(0.0, "b").ok(), Some(19700101));
        assert_eq!(utc_ymd(-1.0, "b").ok(), Some(19691231));
    }

    #[test]
    fn safe_numbers() {
        assert_eq!(safe_u64(0.0, "k").ok(), Some(0));
        assert_eq!(safe_u64(MAX_SAFE_INTEGER, "k").ok(), Some(9_007_199_254_740_991));
        assert!(matches!(safe_u64(MAX_SAFE_INTEGER + 1.0, "k"), Err(Failure::Range(_))));
        assert!(matches!(safe_u64(-1.0, "k"), Err(Failure::Range(_))));
        assert!(matches!(safe_u64(1.5, "k"), Err(Failure::Range(_))));
        assert!(matches!(safe_u64(f64::NAN, "k"), Err(Failure::Range(_))));
    }
}
