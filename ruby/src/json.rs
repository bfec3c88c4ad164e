//! Ruby values to JSON values and back.
//!
//! Integers are exact: up to 2**64-1 they go out as u64, negative ones as
//! i64 (so the server's own validation can be exercised); anything beyond
//! is a `Karma::ValidationError`. Dates are turned into buckets by the Ruby
//! half before they get here.

use magnus::value::ReprValue;
use magnus::{Error, Float, Integer, RArray, RHash, RString, Ruby, Symbol, Value};
use serde_json::{Map, Number, Value as Json};

use crate::errors;

fn type_error(ruby: &Ruby, what: &str, v: Value) -> Error {
    let class = class_name(v);
    Error::new(ruby.exception_type_error(), format!("{what}: cannot send a {class} as JSON"))
}

fn class_name(v: Value) -> String {
    v.class().inspect()
}

/// A Ruby Integer as an exact JSON number.
pub fn integer(ruby: &Ruby, i: Integer, what: &str) -> Result<Json, Error> {
    if let Ok(u) = i.to_u64() {
        return Ok(Json::from(u));
    }
    if let Ok(s) = i.to_i64() {
        return Ok(Json::from(s));
    }
    Err(errors::argument(ruby, format!("{what} does not fit the protocol's integers, got {}", i.inspect())))
}

pub fn to_json(ruby: &Ruby, v: Value, what: &str) -> Result<Json, Error> {
    if v.is_nil() {
        return Ok(Json::Null);
    }
    if v.is_kind_of(ruby.class_true_class()) {
        return Ok(Json::Bool(true));
    }
    if v.is_kind_of(ruby.class_false_class()) {
        return Ok(Json::Bool(false));
    }
    if let Some(i) = Integer::from_value(v) {
        return integer(ruby, i, what);
    }
    if let Some(f) = Float::from_value(v) {
        return Number::from_f64(f.to_f64())
            .map(Json::Number)
            .ok_or_else(|| errors::argument(ruby, format!("{what} must be a finite number")));
    }
    if let Some(s) = RString::from_value(v) {
        return Ok(Json::String(s.to_string()?));
    }
    if let Some(s) = Symbol::from_value(v) {
        return Ok(Json::String(s.name()?.into_owned()));
    }
    if let Some(a) = RArray::from_value(v) {
        let mut out = Vec::with_capacity(a.len());
        for (i, item) in a.into_iter().enumerate() {
            out.push(to_json(ruby, item, &format!("{what}[{i}]"))?);
        }
        return Ok(Json::Array(out));
    }
    if let Some(h) = RHash::from_value(v) {
        return hash_to_json(ruby, h, what).map(Json::Object);
    }
    Err(type_error(ruby, what, v))
}

/// A Hash with String or Symbol keys; nil values are left out (as the
/// original client does), so optional fields can be passed as nil.
pub fn hash_to_json(ruby: &Ruby, h: RHash, what: &str) -> Result<Map<String, Json>, Error> {
    let mut map = Map::with_capacity(h.len());
    let mut failure = None;
    h.foreach(|k: Value, v: Value| {
        let key = if let Some(s) = Symbol::from_value(k) {
            s.name()?.into_owned()
        } else if let Some(s) = RString::from_value(k) {
            s.to_string()?
        } else {
            failure = Some(Error::new(ruby.exception_type_error(), format!("{what}: keys must be Symbols or Strings")));
            return Ok(magnus::r_hash::ForEach::Stop);
        };
        if !v.is_nil() {
            let value = to_json(ruby, v, &key)?;
            map.insert(key, value);
        }
        Ok(magnus::r_hash::ForEach::Continue)
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(map),
    }
}

/// JSON to Ruby: objects become Hashes with String keys (as `JSON.parse`
/// makes them), arrays Arrays, numbers Integers or Floats.
pub fn from_json(ruby: &Ruby, v: &Json) -> Result<Value, Error> {
    Ok(match v {
        Json::Null => ruby.qnil().as_value(),
        Json::Bool(true) => ruby.qtrue().as_value(),
        Json::Bool(false) => ruby.qfalse().as_value(),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                ruby.integer_from_u64(u).as_value()
            } else if let Some(i) = n.as_i64() {
                ruby.integer_from_i64(i).as_value()
            } else {
                ruby.float_from_f64(n.as_f64().unwrap_or(f64::NAN)).as_value()
            }
        }
        Json::String(s) => ruby.str_new(s).as_value(),
        Json::Array(a) => {
            let out = ruby.ary_new_capa(a.len());
            for item in a {
                out.push(from_json(ruby, item)?)?;
            }
            out.as_value()
        }
        Json::Object(m) => {
            let out = ruby.hash_new();
            for (k, item) in m {
                out.aset(ruby.str_new(k), from_json(ruby, item)?)?;
            }
            out.as_value()
        }
    })
}
