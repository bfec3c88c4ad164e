//! Constructor options: `new Engine(path, options)` onto the engine's
//! [`Options`], `new Client(url, options)` onto [`ClientConfig`]. Names are
//! the camelCase of the server's flags; unknown names are refused.

use std::path::PathBuf;
use std::time::Duration;

use karma_engine::client::ClientConfig;
use karma_engine::{FsyncPolicy, Options, Role};
use napi::{JsValue, Unknown, ValueType};

use crate::conv::{self, Arg};
use crate::errors::Failure;

const ENGINE_OPTIONS: &[&str] = &[
    "restore",
    "wal",
    "walFsync",
    "walSegmentBytes",
    "walBatchSize",
    "walBatchWaitUs",
    "maxRequestBytes",
    "maxResponseBytes",
    "queryTimeoutMs",
    "authToken",
    "readAuthToken",
    "role",
    "dumpRetentionPerTree",
    "idempotencyMaxRecords",
    "idempotencyMaxAgeSeconds",
];

fn boolean(v: &Unknown<'_>, name: &str) -> Arg<bool> {
    if v.get_type().ok() != Some(ValueType::Boolean) {
        return Err(Failure::Type(format!("option {name} must be a boolean")));
    }
    v.coerce_to_bool().map_err(|e| Failure::Type(e.reason.clone()))
}

fn usize_of(v: &Unknown<'_>, name: &str) -> Arg<usize> {
    Ok(usize::try_from(conv::u64_arg(v, &format!("option {name}"))?).unwrap_or(usize::MAX))
}

/// An empty token means none, as on the server's command line.
fn token(v: &Unknown<'_>, name: &str) -> Arg<Option<String>> {
    Ok(conv::opt_string(Some(v), &format!("option {name}"))?.filter(|t| !t.is_empty()))
}

fn fsync(v: &Unknown<'_>) -> Arg<FsyncPolicy> {
    if v.get_type().ok() == Some(ValueType::Boolean) {
        return Ok(if boolean(v, "walFsync")? { FsyncPolicy::Always } else { FsyncPolicy::Never });
    }
    let word = conv::string(v, "option walFsync")?;
    FsyncPolicy::parse(&word)
        .ok_or_else(|| Failure::Range(format!("option walFsync must be 'always', 'everysec' or 'never', got {word:?}")))
}

fn apply(o: &mut Options, name: &str, v: &Unknown<'_>) -> Arg<()> {
    match name {
        "restore" => o.restore = boolean(v, name)?,
        "wal" => o.wal = boolean(v, name)?,
        "walFsync" => o.wal_fsync = fsync(v)?,
        "walSegmentBytes" => o.wal_segment_bytes = conv::u64_arg(v, "option walSegmentBytes")?,
        "walBatchSize" => o.wal_batch_size = usize_of(v, name)?.max(1),
        "walBatchWaitUs" => o.wal_batch_wait = Duration::from_micros(conv::u64_arg(v, "option walBatchWaitUs")?),
        "maxRequestBytes" => o.max_request_bytes = usize_of(v, name)?,
        "maxResponseBytes" => o.max_response_bytes = usize_of(v, name)?,
        "queryTimeoutMs" => {
            o.query_timeout = match conv::u64_arg(v, "option queryTimeoutMs")? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            }
        }
        "authToken" => o.auth_token = token(v, name)?,
        "readAuthToken" => o.read_auth_token = token(v, name)?,
        "role" => {
            o.role = match conv::string(v, "option role")?.as_str() {
                "master" => Role::Master,
                "slave" => Role::Slave,
                other => return Err(Failure::Range(format!("option role must be 'master' or 'slave', got {other:?}"))),
            }
        }
        "dumpRetentionPerTree" => o.dump_retention_per_tree = usize_of(v, name)?,
        "idempotencyMaxRecords" => o.idempotency_max_records = usize_of(v, name)?,
        "idempotencyMaxAgeSeconds" => {
            o.idempotency_max_age_seconds = conv::u64_arg(v, "option idempotencyMaxAgeSeconds")?
        }
        other => return Err(Failure::Type(format!("unknown Engine option {other:?}"))),
    }
    Ok(())
}

/// `path` (absent = in memory) and the options object.
pub fn engine(path: &Unknown<'_>, options: &Unknown<'_>) -> Arg<Options> {
    let mut opts = match conv::opt_string(Some(path), "path")? {
        Some(p) => Options::durable(PathBuf::from(p)),
        None => Options::default(),
    };
    if let Some(obj) = conv::options(Some(options), "options", ENGINE_OPTIONS)? {
        for name in ENGINE_OPTIONS {
            if let Some(v) = conv::option(Some(&obj), name)? {
                apply(&mut opts, name, &v)?;
            }
        }
    }
    Ok(opts)
}

const CLIENT_OPTIONS: &[&str] =
    &["poolSize", "connectTimeoutMs", "readTimeoutMs", "writeTimeoutMs", "checkoutTimeoutMs", "token"];

/// `url` (`karma://host:port?...`; absent = the `KARMA_*` environment) and
/// the options object, which overrides both.
pub fn client(url: &Unknown<'_>, options: &Unknown<'_>) -> Arg<ClientConfig> {
    let mut config = match conv::opt_string(Some(url), "url")? {
        Some(u) => ClientConfig::from_url(&u),
        None => ClientConfig::from_env(),
    }
    .map_err(Failure::Engine)?;
    let Some(obj) = conv::options(Some(options), "options", CLIENT_OPTIONS)? else { return Ok(config) };
    if let Some(v) = conv::option(Some(&obj), "poolSize")? {
        config.pool_size = usize_of(&v, "poolSize")?;
    }
    for (name, slot) in [
        ("connectTimeoutMs", &mut config.connect_timeout),
        ("readTimeoutMs", &mut config.read_timeout),
        ("writeTimeoutMs", &mut config.write_timeout),
        ("checkoutTimeoutMs", &mut config.checkout_timeout),
    ] {
        if let Some(v) = conv::option(Some(&obj), name)? {
            *slot = Duration::from_millis(conv::u64_arg(&v, &format!("option {name}"))?);
        }
    }
    if let Some(v) = conv::option(Some(&obj), "token")? {
        config.token = token(&v, "token")?;
    }
    Ok(config)
}
