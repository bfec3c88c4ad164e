//! The two public classes: `karma.Engine` (in-process) and `karma.Client`
//! (network). Both extend `_Api`, which holds every shared method; here are
//! only their constructors.

use std::path::PathBuf;
use std::time::Duration;

use karma_client::{
    AnyClient, Client, ClientConfig, ClientOption, ClientOptionKind, ClientOptionValue, CLIENT_OPTIONS,
};
use karma_engine::{Engine, OptionError, OptionValue, Options, ENGINE_OPTIONS};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt};

use crate::api::{Api, Backend};
use crate::errors::{self, Failure};

/// A Karma database in this process: `Engine()` in memory, `Engine(path)`
/// durable in a data directory (WAL + snapshots, compatible with the
/// `karma` server's). Options (keyword arguments) are the engine options of
/// the server's flags, by the names of the engine's table
/// (`karma_engine::ENGINE_OPTIONS`, docs/server.md; `Engine._OPTIONS`):
/// `wal_fsync="everysec"`, `query_timeout_ms=0` (none), `role="slave"`, ...
/// (`wal_fsync` also takes `True`/`False` for always/never).
#[pyclass(name = "Engine", module = "karma", extends = Api, frozen)]
pub struct PyEngine;

/// Sets one keyword argument through the engine's table of options: a
/// wrong type is a `TypeError`, a value the option does not take a
/// `karma.ValidationError`, with the table's message.
fn apply_option(o: &mut Options, name: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
    let text;
    let value = if v.is_none() {
        OptionValue::Null
    } else if v.is_instance_of::<PyBool>() {
        OptionValue::Bool(v.extract::<bool>()?)
    } else if v.is_instance_of::<PyInt>() {
        match v.extract::<u64>() {
            Ok(n) => OptionValue::UInt(n),
            // Negative or past 2**64-1: refused as a value, not a type.
            Err(_) => {
                text = v.str()?.to_string();
                OptionValue::Text(&text)
            }
        }
    } else if let Ok(s) = v.extract::<String>() {
        text = s;
        OptionValue::Str(&text)
    } else {
        OptionValue::Other
    };
    o.set(name, value).map_err(|e| match e {
        OptionError::Unknown(_) => PyTypeError::new_err(format!("karma.Engine got an unexpected option {name:?}")),
        e if e.is_type_error() => PyTypeError::new_err(e.to_string()),
        e => errors::argument(v.py(), e.to_string()),
    })
}

/// `(name, default)` of every option of a table, the default as
/// configuration text (`None`: unset): what the stubs' keywords are checked
/// against (tests/test_option_tables.py).
type OptionRows = Vec<(&'static str, Option<String>)>;

#[pymethods]
impl PyEngine {
    /// The engine's table of options.
    #[classattr]
    #[pyo3(name = "_OPTIONS")]
    fn options_table() -> OptionRows {
        ENGINE_OPTIONS.iter().map(|o| (o.name, o.default_text())).collect()
    }

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

/// Sets one client option from its keyword: by the option's kind a token
/// (a string), a count (`pool_size`) or a number of bytes (ints), or
/// seconds (a float, 0 disables).
fn apply_client_option(
    py: Python<'_>,
    config: &mut ClientConfig,
    option: &ClientOption,
    v: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let name = option.name;
    let value = match option.kind() {
        ClientOptionKind::Token => ClientOptionValue::Token(Some(v.extract::<String>()?)),
        ClientOptionKind::Count | ClientOptionKind::Bytes => {
            let n = crate::conv::opt_u64(Some(v), name)?.unwrap_or_default();
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if option.kind() == ClientOptionKind::Count {
                ClientOptionValue::Count(n)
            } else {
                ClientOptionValue::Bytes(n)
            }
        }
        ClientOptionKind::Duration => match seconds(py, Some(v.extract::<f64>()?), name)? {
            Some(d) => ClientOptionValue::Duration(d),
            None => return Ok(()),
        },
    };
    option.set(config, value).map_err(|e| errors::argument(py, e.message()))
}

#[pymethods]
impl PyClient {
    /// The client's table of options (`karma_client::CLIENT_OPTIONS`).
    #[classattr]
    #[pyo3(name = "_OPTIONS")]
    fn options_table() -> OptionRows {
        CLIENT_OPTIONS.iter().map(|o| (o.name, o.default_text())).collect()
    }

    /// `url`, then the keyword arguments: the client options by the names
    /// of the client's table (`karma_client::CLIENT_OPTIONS`); `None`
    /// leaves an option as the URL or the environment set it.
    #[new]
    #[pyo3(signature = (url=None, **options))]
    fn new(
        py: Python<'_>,
        url: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
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
        if let Some(options) = options {
            for (k, v) in options.iter() {
                let name = k.extract::<String>()?;
                let option = ClientOption::find(&name).ok_or_else(|| {
                    PyTypeError::new_err(format!("karma.Client got an unexpected keyword argument '{name}'"))
                })?;
                if !v.is_none() {
                    apply_client_option(py, &mut config, option, &v)?;
                }
            }
        }
        let client = match cluster_url {
            // Reads the cluster's shard count from etcd: network, so without the GIL.
            Some(u) => py.detach(|| AnyClient::from_url(&u, config)).map_err(|e| Failure::Client(e).into_pyerr(py))?,
            None => AnyClient::Node(Client::new(config).map_err(invalid)?),
        };
        Ok(PyClassInitializer::from(Api::new(Backend::Client(client))).add_subclass(PyClient))
    }
}
