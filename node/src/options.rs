//! Constructor options: `new Engine(path, options)` onto the engine's
//! [`Options`] through the engine's table of options ([`ENGINE_OPTIONS`]),
//! `new Client(url, options)` onto [`ClientConfig`] through the client's
//! table of options ([`CLIENT_OPTIONS`]). Names are the camelCase of the
//! tables' (durations in milliseconds, named `...Ms`); unknown names are
//! refused.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use karma_client::{AnyClient, ClientConfig, ClientOption, ClientOptionKind, ClientOptionValue, CLIENT_OPTIONS};
use karma_engine::{OptionValue, Options, ENGINE_OPTIONS};
use napi::{JsValue, Unknown, ValueType};
use napi_derive::napi;

use crate::conv::{self, Arg};
use crate::errors::Failure;

fn usize_of(v: &Unknown<'_>, name: &str) -> Arg<usize> {
    Ok(usize::try_from(conv::u64_arg(v, &format!("option {name}"))?).unwrap_or(usize::MAX))
}

/// An empty token means none, as on the server's command line.
fn token(v: &Unknown<'_>, name: &str) -> Arg<Option<String>> {
    Ok(conv::opt_string(Some(v), &format!("option {name}"))?.filter(|t| !t.is_empty()))
}

/// The engine options in JavaScript's spelling (`walFsync`), with the
/// engine's name of each.
fn engine_option_names() -> &'static [(String, &'static str)] {
    static NAMES: OnceLock<Vec<(String, &'static str)>> = OnceLock::new();
    NAMES.get_or_init(|| ENGINE_OPTIONS.iter().map(|o| (o.camel_name(), o.name)).collect())
}

/// Sets one option through the engine's table of options: a wrong type is
/// a `TypeError`, a value the option does not take a `RangeError`, with the
/// table's message in JavaScript's spelling of the name.
fn apply(o: &mut Options, camel: &str, name: &str, v: &Unknown<'_>) -> Arg<()> {
    let text;
    let value = match conv::type_of(v) {
        ValueType::Boolean => OptionValue::Bool(v.coerce_to_bool().map_err(|e| Failure::Type(e.reason.clone()))?),
        ValueType::Number | ValueType::BigInt => OptionValue::UInt(conv::u64_arg(v, &format!("option {camel}"))?),
        ValueType::String => {
            text = conv::string(v, &format!("option {camel}"))?;
            OptionValue::Str(&text)
        }
        ValueType::Null | ValueType::Undefined => OptionValue::Null,
        _ => OptionValue::Other,
    };
    o.set(name, value).map_err(|e| {
        if e.is_type_error() {
            Failure::Type(e.message(camel))
        } else {
            Failure::Range(e.message(camel))
        }
    })
}

/// `path` (absent = in memory) and the options object.
pub fn engine(path: &Unknown<'_>, options: &Unknown<'_>) -> Arg<Options> {
    let mut opts = match conv::opt_string(Some(path), "path")? {
        Some(p) => Options::durable(PathBuf::from(p)),
        None => Options::default(),
    };
    let names = engine_option_names();
    let known: Vec<&str> = names.iter().map(|(camel, _)| camel.as_str()).collect();
    if let Some(obj) = conv::options(Some(options), "options", &known)? {
        for (camel, name) in names {
            if let Some(v) = conv::option(Some(&obj), camel)? {
                apply(&mut opts, camel, name, &v)?;
            }
        }
    }
    Ok(opts)
}

/// The client options in JavaScript's spelling (`checkoutTimeoutMs`), with
/// the client's row of each.
fn client_option_names() -> &'static [(String, &'static ClientOption)] {
    static NAMES: OnceLock<Vec<(String, &'static ClientOption)>> = OnceLock::new();
    NAMES.get_or_init(|| CLIENT_OPTIONS.iter().map(|o| (o.js_name(), o)).collect())
}

/// The engine options table's names as JavaScript spells them, in its
/// order: what `EngineOptions` in index.d.ts must declare
/// (test/options.test.js).
#[napi(js_name = "__engineOptions")]
pub fn engine_option_table() -> Vec<String> {
    engine_option_names().iter().map(|(camel, _)| camel.clone()).collect()
}

/// The client options table's names as JavaScript spells them, in its
/// order: what `ClientOptions` in index.d.ts must declare.
#[napi(js_name = "__clientOptions")]
pub fn client_option_table() -> Vec<String> {
    client_option_names().iter().map(|(js, _)| js.clone()).collect()
}

/// `url` (`karma://host:port?...`; absent = the `KARMA_*` environment) and
/// the options object, which overrides both: the config, and the URL when
/// it names a cluster (whose token, pool and timeouts come from the options
/// only, as in the Python and Ruby bindings).
pub fn client(url: &Unknown<'_>, options: &Unknown<'_>) -> Arg<(ClientConfig, Option<String>)> {
    let url = conv::opt_string(Some(url), "url")?;
    let cluster_url = url.clone().filter(|u| AnyClient::is_cluster_url(u));
    let config = match (&url, &cluster_url) {
        (_, Some(_)) => Ok(ClientConfig::default()),
        (Some(u), None) => ClientConfig::from_url(u),
        (None, None) => ClientConfig::from_env(),
    }
    .map_err(Failure::Engine)?;
    Ok((with_options(config, options)?, cluster_url))
}

/// `config` with the client options object applied, each option read by
/// its kind: a token (a string), a count or a number of bytes, or
/// milliseconds for a duration.
fn with_options(mut config: ClientConfig, options: &Unknown<'_>) -> Arg<ClientConfig> {
    let names = client_option_names();
    let known: Vec<&str> = names.iter().map(|(js, _)| js.as_str()).collect();
    let Some(obj) = conv::options(Some(options), "options", &known)? else { return Ok(config) };
    for (js, option) in names {
        let Some(v) = conv::option(Some(&obj), js)? else { continue };
        let value = match option.kind() {
            ClientOptionKind::Token => ClientOptionValue::Token(token(&v, js)?),
            ClientOptionKind::Count => ClientOptionValue::Count(usize_of(&v, js)?),
            ClientOptionKind::Bytes => ClientOptionValue::Bytes(usize_of(&v, js)?),
            ClientOptionKind::Duration => {
                ClientOptionValue::Duration(Duration::from_millis(conv::u64_arg(&v, &format!("option {js}"))?))
            }
        };
        option.set(&mut config, value).map_err(Failure::Engine)?;
    }
    Ok(config)
}
