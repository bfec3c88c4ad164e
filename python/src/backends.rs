//! The two public classes: `karma.Engine` (in-process) and `karma.Client`
//! (network). Both extend `_Api`, which holds every shared method; here are
//! only their constructors.

use std::path::PathBuf;
use std::time::Duration;

use karma_client::{AnyClient, Client, ClientConfig};
use karma_engine::{Engine, FsyncPolicy, Options, Role};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::api::{Api, Backend};
use crate::errors::{self, Failure};

/// A Karma database in this process: `Engine()` in memory, `Engine(path)`
/// durable in a data directory (WAL + snapshots, compatible with the
/// `karma` server's). Options (keyword arguments) are the server's flags:
/// `restore`, `wal`, `wal_fsync` (`"always"`, `"everysec"`, `"never"`, or
/// `True`/`False` for always/never), `wal_segment_bytes`, `wal_batch_size`,
/// `wal_batch_wait_us`, `max_request_bytes`, `max_response_bytes`,
/// `query_timeout_ms` (0 = none), `auth_token`, `read_auth_token`, `role`
/// (`"master"`/`"slave"`), `dump_retention_per_tree`,
/// `idempotency_max_records`, `idempotency_max_age_seconds`.
#[pyclass(name = "Engine", module = "karma", extends = Api, frozen)]
pub struct PyEngine;

fn bool_opt(v: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    v.extract::<bool>().map_err(|_| PyTypeError::new_err(format!("option {name} must be a bool")))
}

/// `"always"`, `"everysec"`, `"never"`, or Karma 1.0's `True`/`False`.
fn fsync_opt(v: &Bound<'_, PyAny>, name: &str) -> PyResult<FsyncPolicy> {
    if let Ok(on) = v.extract::<bool>() {
        return Ok(if on { FsyncPolicy::Always } else { FsyncPolicy::Never });
    }
    let word = v.extract::<String>().map_err(|_| {
        PyTypeError::new_err(format!("option {name} must be \"always\", \"everysec\", \"never\" or a bool"))
    })?;
    FsyncPolicy::parse(&word).ok_or_else(|| {
        errors::argument(v.py(), format!("option {name} must be \"always\", \"everysec\" or \"never\", got {word:?}"))
    })
}

fn uint_opt(v: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    crate::conv::u64_arg(v, &format!("option {name}"))
}

fn usize_opt(v: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    Ok(usize::try_from(uint_opt(v, name)?).unwrap_or(usize::MAX))
}

fn str_opt(v: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<String>> {
    if v.is_none() {
        return Ok(None);
    }
    v.extract::<String>().map(Some).map_err(|_| PyTypeError::new_err(format!("option {name} must be a str or None")))
}

fn apply_option(o: &mut Options, name: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
    match name {
        "restore" => o.restore = bool_opt(v, name)?,
        "wal" => o.wal = bool_opt(v, name)?,
        "wal_fsync" => o.wal_fsync = fsync_opt(v, name)?,
        "wal_segment_bytes" => o.wal_segment_bytes = uint_opt(v, name)?,
        "wal_batch_size" => o.wal_batch_size = usize_opt(v, name)?.max(1),
        "wal_batch_wait_us" => o.wal_batch_wait = Duration::from_micros(uint_opt(v, name)?),
        "max_request_bytes" => o.max_request_bytes = usize_opt(v, name)?,
        "max_response_bytes" => o.max_response_bytes = usize_opt(v, name)?,
        "query_timeout_ms" => {
            o.query_timeout = match uint_opt(v, name)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            }
        }
        "auth_token" => o.auth_token = str_opt(v, name)?.filter(|t| !t.is_empty()),
        "read_auth_token" => o.read_auth_token = str_opt(v, name)?.filter(|t| !t.is_empty()),
        "role" => {
            o.role = match str_opt(v, name)?.as_deref() {
                Some("master") | None => Role::Master,
                Some("slave") => Role::Slave,
                Some(other) => {
                    return Err(errors::argument(v.py(), format!("option role must be master or slave, got {other:?}")))
                }
            }
        }
        "dump_retention_per_tree" => o.dump_retention_per_tree = usize_opt(v, name)?,
        "idempotency_max_records" => o.idempotency_max_records = usize_opt(v, name)?,
        "idempotency_max_age_seconds" => o.idempotency_max_age_seconds = uint_opt(v, name)?,
        other => return Err(PyTypeError::new_err(format!("karma.Engine got an unexpected option {other:?}"))),
    }
    Ok(())
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (path=None, **options))]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let mut opts = match path {
            Some(p) => Options::durable(p),
            None => Options::default(),
        };
        if let Some(options) = options {
            for (k, v) in options.iter() {
                apply_option(&mut opts, &k.extract::<String>()?, &v)?;
            }
        }
        // Opening replays the WAL: it can take a while, so without the GIL.
        let engine = py.detach(|| Engine::open(opts)).map_err(|e| Failure::Engine(e).into_pyerr(py))?;
        Ok(PyClassInitializer::from(Api::new(Backend::Engine(engine))).add_subclass(PyEngine))
    }
}

/// A pooled connection to a `karma` server. `url` is
/// `karma://host:port[?token=..&pool_size=..&..._timeout=..]`; without it the
/// environment is read (`KARMA_URL`, or `KARMA_HOST`/`KARMA_PORT`, plus
/// `KARMA_TOKEN`, `KARMA_POOL_SIZE`, `KARMA_*_TIMEOUT`; default
/// 127.0.0.1:8080). A `karma+etcd://host:port[,...]/<cluster-name>` URL
/// opens a cluster instead (docs/cluster.md): each call goes to the shard
/// leaders that own its keys and answers as one server would. Keyword arguments override both; timeouts are seconds
/// (floats allowed, 0 disables). Safe to share between threads and to keep
/// across `os.fork()` (the child opens its own connections).
#[pyclass(name = "Client", module = "karma", extends = Api, frozen)]
pub struct PyClient;

fn seconds(py: Python<'_>, v: Option<f64>, name: &str) -> PyResult<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s)
            .map(Some)
            .map_err(|_| errors::argument(py, format!("{name} must be a number of seconds >= 0, got {s}"))),
    }
}

#[pymethods]
impl PyClient {
    #[new]
    #[pyo3(signature = (
        url=None, *, pool_size=None, connect_timeout=None, read_timeout=None, write_timeout=None,
        checkout_timeout=None, token=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: Option<String>,
        pool_size: Option<&Bound<'_, PyAny>>,
        connect_timeout: Option<f64>,
        read_timeout: Option<f64>,
        write_timeout: Option<f64>,
        checkout_timeout: Option<f64>,
        token: Option<String>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let invalid = |e: karma_engine::Error| {
            errors::build(py, "ValidationError", e.message(), Some(e.code().as_str()), "invalid")
        };
        let cluster_url = url.clone().filter(|u| AnyClient::is_cluster_url(u));
        let mut config = match (&url, &cluster_url) {
            // A cluster takes token, pool and timeouts from the keywords only.
            (_, Some(_)) => Ok(ClientConfig::default()),
            (Some(u), None) => ClientConfig::from_url(u),
            (None, None) => ClientConfig::from_env(),
        }
        .map_err(invalid)?;
        if let Some(n) = crate::conv::opt_u64(pool_size, "pool_size")? {
            config.pool_size = usize::try_from(n).unwrap_or(usize::MAX);
        }
        for (value, slot, name) in [
            (connect_timeout, &mut config.connect_timeout, "connect_timeout"),
            (read_timeout, &mut config.read_timeout, "read_timeout"),
            (write_timeout, &mut config.write_timeout, "write_timeout"),
            (checkout_timeout, &mut config.checkout_timeout, "checkout_timeout"),
        ] {
            if let Some(d) = seconds(py, value, name)? {
                *slot = d;
            }
        }
        if let Some(t) = token {
            config.token = Some(t).filter(|t| !t.is_empty());
        }
        let client = match cluster_url {
            // Reads the cluster's shard count from etcd: network, so without the GIL.
            Some(u) => py.detach(|| AnyClient::from_url(&u, config)).map_err(|e| Failure::Client(e).into_pyerr(py))?,
            None => AnyClient::Node(Client::new(config).map_err(invalid)?),
        };
        Ok(PyClassInitializer::from(Api::new(Backend::Client(client))).add_subclass(PyClient))
    }
}
