//! `Karma::Engine.new(path = nil, **options)` and
//! `Karma::Client.new(url: nil, **options)` options to engine [`Options`] and
//! [`ClientConfig`]. Option names are the server's flags (docs/server.md),
//! as in the Python package.

use std::path::PathBuf;
use std::time::Duration;

use karma_client::{ClientConfig, ClientOption, ClientOptionKind, ClientOptionValue};
use karma_engine::{OptionError, OptionValue, Options};
use magnus::{prelude::*, Error, Float, Integer, RHash, RString, Ruby, Symbol, Value};

use crate::errors;

/// Visits the `(name, value)` pairs of an options Hash (Symbol or String keys).
fn each_option(ruby: &Ruby, options: RHash, mut f: impl FnMut(&str, Value) -> Result<(), Error>) -> Result<(), Error> {
    let mut pairs = Vec::with_capacity(options.len());
    options.foreach(|k: Value, v: Value| {
        pairs.push((k, v));
        Ok(magnus::r_hash::ForEach::Continue)
    })?;
    for (k, v) in pairs {
        let name = if let Some(s) = Symbol::from_value(k) {
            s.name()?.into_owned()
        } else if let Some(s) = RString::from_value(k) {
            s.to_string()?
        } else {
            return Err(Error::new(ruby.exception_type_error(), "option names must be Symbols"));
        };
        f(&name, v)?;
    }
    Ok(())
}

fn uint_opt(ruby: &Ruby, v: Value, name: &str) -> Result<u64, Error> {
    match Integer::from_value(v) {
        Some(i) => i
            .to_u64()
            .map_err(|_| errors::argument(ruby, format!("option {name} must be an Integer from 0 to 2**64-1"))),
        None => Err(Error::new(ruby.exception_type_error(), format!("option {name} must be an Integer"))),
    }
}

fn usize_opt(ruby: &Ruby, v: Value, name: &str) -> Result<usize, Error> {
    Ok(usize::try_from(uint_opt(ruby, v, name)?).unwrap_or(usize::MAX))
}

fn str_opt(ruby: &Ruby, v: Value, name: &str) -> Result<Option<String>, Error> {
    if v.is_nil() {
        return Ok(None);
    }
    if let Some(s) = Symbol::from_value(v) {
        return Ok(Some(s.name()?.into_owned()));
    }
    match RString::from_value(v) {
        Some(s) => Ok(Some(s.to_string()?)),
        None => Err(Error::new(ruby.exception_type_error(), format!("option {name} must be a String or nil"))),
    }
}

/// Seconds (Integer or Float, 0 disables the timeout).
fn seconds_opt(ruby: &Ruby, v: Value, name: &str) -> Result<Duration, Error> {
    let secs = if let Some(i) = Integer::from_value(v) {
        i.to_i64().map(|n| n as f64).unwrap_or(-1.0)
    } else if let Some(f) = Float::from_value(v) {
        f.to_f64()
    } else {
        return Err(Error::new(ruby.exception_type_error(), format!("option {name} must be a number of seconds")));
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| errors::argument(ruby, format!("option {name} must be a number of seconds >= 0, got {secs}")))
}

pub fn engine_options(ruby: &Ruby, path: Option<PathBuf>, options: Option<RHash>) -> Result<Options, Error> {
    let mut o = match path {
        Some(p) => Options::durable(p),
        None => Options::default(),
    };
    let Some(options) = options else { return Ok(o) };
    each_option(ruby, options, |name, v| set_engine_option(ruby, &mut o, name, v))?;
    Ok(o)
}

/// Sets one option through the engine's table of options: a wrong type is
/// a `TypeError`, an unknown name an `ArgumentError`, a value the option
/// does not take a `Karma::ValidationError`, with the table's message.
fn set_engine_option(ruby: &Ruby, o: &mut Options, name: &str, v: Value) -> Result<(), Error> {
    let text;
    let value = if v.is_nil() {
        OptionValue::Null
    } else if v.is_kind_of(ruby.class_true_class()) {
        OptionValue::Bool(true)
    } else if v.is_kind_of(ruby.class_false_class()) {
        OptionValue::Bool(false)
    } else if let Some(i) = Integer::from_value(v) {
        match i.to_u64() {
            Ok(n) => OptionValue::UInt(n),
            // Negative or past 2**64-1: refused as a value, not a type.
            Err(_) => {
                text = i.to_string();
                OptionValue::Text(&text)
            }
        }
    } else if let Some(word) = str_opt(ruby, v, name).ok().flatten() {
        text = word;
        OptionValue::Str(&text)
    } else {
        OptionValue::Other
    };
    o.set(name, value).map_err(|e| match e {
        OptionError::Unknown(_) => {
            Error::new(ruby.exception_arg_error(), format!("Karma::Engine got an unknown option {name:?}"))
        }
        e if e.is_type_error() => Error::new(ruby.exception_type_error(), e.to_string()),
        e => errors::argument(ruby, e.to_string()),
    })
}

/// `base` when given, else `url` (`karma://` or `tcp://`), else the
/// `KARMA_*` environment; then the options: `host` and `port`, and the
/// client options by the names of the client's table
/// (`karma_client::CLIENT_OPTIONS`: `token`, `pool_size`, the timeouts in
/// seconds, ...), plus `pool_timeout`, the KarmaClient gem's name for
/// `checkout_timeout`.
pub fn client_config(
    ruby: &Ruby,
    url: Option<String>,
    options: Option<RHash>,
    base: Option<ClientConfig>,
) -> Result<ClientConfig, Error> {
    let invalid = |e: karma_engine::Error| {
        errors::build(ruby, "ValidationError", e.message(), Some(e.code().as_str()), "invalid")
    };
    let mut config = match (base, url) {
        (Some(base), _) => Ok(base),
        (None, Some(u)) => ClientConfig::from_url(&u),
        (None, None) => ClientConfig::from_env(),
    }
    .map_err(invalid)?;
    if let Some(options) = options {
        each_option(ruby, options, |name, v| {
            if v.is_nil() {
                return Ok(());
            }
            match name {
                "host" => config.host = str_opt(ruby, v, name)?.unwrap_or_default(),
                "port" => {
                    config.port = u16::try_from(uint_opt(ruby, v, name)?)
                        .map_err(|_| errors::argument(ruby, "option port must be from 1 to 65535"))?
                }
                _ => {
                    let option = ClientOption::find(if name == "pool_timeout" { "checkout_timeout" } else { name })
                        .ok_or_else(|| {
                            Error::new(
                                ruby.exception_arg_error(),
                                format!("Karma::Client got an unknown option {name:?}"),
                            )
                        })?;
                    let value = match option.kind() {
                        ClientOptionKind::Token => ClientOptionValue::Token(str_opt(ruby, v, name)?),
                        ClientOptionKind::Count => ClientOptionValue::Count(usize_opt(ruby, v, name)?),
                        ClientOptionKind::Bytes => ClientOptionValue::Bytes(usize_opt(ruby, v, name)?),
                        ClientOptionKind::Duration => ClientOptionValue::Duration(seconds_opt(ruby, v, name)?),
                    };
                    option.set(&mut config, value).map_err(invalid)?;
                }
            }
            Ok(())
        })?;
    }
    config.validate().map_err(invalid)?;
    Ok(config)
}
