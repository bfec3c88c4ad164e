//! Command line and environment configuration (spec/server.md §2).
//!
//! Sources, lowest to highest precedence: built-in defaults, `KARMA_*`
//! environment variables, command-line flags. Every value is parsed from a
//! string by this module (clap only tokenises and renders the help), so the
//! error messages are exactly the ones the original server prints:
//!
//! ```text
//! ERROR: --port must be an integer
//! ERROR: Environment variable KARMA_PORT must be an integer
//! ERROR: Invalid configuration: port must be between 1 and 65535
//! ERROR: --foo is not a valid option.
//! ```
//!
//! Deliberate differences from the original (its **BUG?** items):
//! * an empty `--auth-token=` / `--read-auth-token=` / `--replication-token=`
//!   means *unset*, exactly like an empty environment variable;
//! * a flag that needs a value but is given last without one is an
//!   `ERROR: Missing option: <flag>` line, not a runtime crash;
//! * every limit is converted to `usize`/`u64` after validation, so
//!   `--max-request-bytes=2147483647` works.

use std::time::Duration;

use clap::{Arg, ArgAction, Command};
use karma_engine::{EngineOption, FsyncPolicy, Options, Role};

/// The server's version (`karma --version`, the `server.start` log event).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a value is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Taken verbatim (the empty string then fails validation).
    Str,
    /// Taken verbatim; the empty string means unset.
    OptStr,
    /// Taken verbatim when given as a flag, even empty, so that validation
    /// can say "must not be empty"; an empty environment variable is unset.
    OptStrKeepEmpty,
    /// Signed 32-bit integer, Crystal `String#to_i32` rules.
    Int,
    /// Exactly `true` or `false`.
    Bool,
    /// An fsync policy: `always`, `everysec` or `never` (`true` and
    /// `false`, Karma 1.0's values, mean `always` and `never`).
    Fsync,
}

impl Kind {
    /// Whether an empty environment variable of this kind counts as unset.
    fn empty_env_is_unset(self) -> bool {
        matches!(self, Kind::OptStr | Kind::OptStrKeepEmpty)
    }
}

/// Where an option's default comes from.
#[derive(Clone, Copy, Debug)]
enum DefaultValue {
    /// Unset.
    None,
    /// This text, parsed as an operator's would be.
    Text(&'static str),
    /// The engine's default of the engine option with this name
    /// ([`karma_engine::ENGINE_OPTIONS`]): the engine's options keep their
    /// defaults in one place, `Options::default()`.
    Engine(&'static str),
}

/// One option of the server: its flag, environment variable, default, help
/// and how it is stored in [`Config`].
struct OptDef {
    long: &'static str,
    short: Option<char>,
    env: &'static str,
    kind: Kind,
    default: DefaultValue,
    value_name: &'static str,
    help: &'static str,
    set: fn(&mut Config, &str, &Source<'_>) -> Result<(), ConfigError>,
    /// The value as configuration text, `None` when unset.
    get: fn(&Config) -> Option<String>,
}

impl OptDef {
    /// The default as configuration text, `None` when unset.
    fn default_text(&self) -> Option<String> {
        match self.default {
            DefaultValue::None => None,
            DefaultValue::Text(text) => Some(text.to_string()),
            DefaultValue::Engine(name) => EngineOption::find(name).and_then(EngineOption::default_text),
        }
    }

    /// The engine option this one sets, if any.
    fn engine_option(&self) -> Option<&'static str> {
        match self.default {
            DefaultValue::Engine(name) => Some(name),
            DefaultValue::None | DefaultValue::Text(_) => None,
        }
    }

    /// The help line: the description, the default, the variable.
    fn help_line(&self) -> String {
        match self.default_text() {
            Some(default) => format!("{} (default {default}) [env: {}]", self.help, self.env),
            None => format!("{} [env: {}]", self.help, self.env),
        }
    }
}

/// A value of one field of [`Config`], parsed from a flag, an environment
/// variable or a default, and written back as configuration text.
trait Setting: Sized {
    fn parse(raw: &str, kind: Kind, source: &Source<'_>) -> Result<Self, ConfigError>;
    fn to_text(&self) -> Option<String>;
}

impl Setting for String {
    fn parse(raw: &str, _: Kind, _: &Source<'_>) -> Result<String, ConfigError> {
        Ok(raw.to_string())
    }

    fn to_text(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl Setting for Option<String> {
    fn parse(raw: &str, kind: Kind, _: &Source<'_>) -> Result<Option<String>, ConfigError> {
        Ok((kind == Kind::OptStrKeepEmpty || !raw.is_empty()).then(|| raw.to_string()))
    }

    fn to_text(&self) -> Option<String> {
        self.clone()
    }
}

impl Setting for i32 {
    fn parse(raw: &str, _: Kind, source: &Source<'_>) -> Result<i32, ConfigError> {
        parse_i32(raw).ok_or_else(|| source.error("an integer"))
    }

    fn to_text(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Setting for bool {
    fn parse(raw: &str, _: Kind, source: &Source<'_>) -> Result<bool, ConfigError> {
        parse_bool(raw).ok_or_else(|| source.error("true or false"))
    }

    fn to_text(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Setting for FsyncPolicy {
    fn parse(raw: &str, _: Kind, source: &Source<'_>) -> Result<FsyncPolicy, ConfigError> {
        FsyncPolicy::parse(raw).ok_or_else(|| source.error("always, everysec or never (or true/false)"))
    }

    fn to_text(&self) -> Option<String> {
        Some(self.as_str().to_string())
    }
}

/// Declares every option once: the [`Config`] field (with its type), the
/// default, how it is parsed, the flag (and short flag), the environment
/// variable, and the help. From it come the struct, its `Default`, and the
/// [`OPTIONS`] table that drives the environment, the flags and `--help`.
/// The order of the rows is the order environment variables are read in.
macro_rules! server_options {
    ($(
        $(#[$doc:meta])*
        $field:ident: $ty:ty = $default:tt, $kind:ident,
        $long:literal $(| $short:literal)?, $env:literal, $value_name:literal, $help:literal;
    )*) => {
        /// The validated server configuration. Integers keep the signed
        /// 32-bit type of the original; the accessors convert them once
        /// validation passed.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Config {
            $( $(#[$doc])* pub $field: $ty, )*
            /// `--auth-token` / `KARMA_AUTH_TOKEN` was given, but empty:
            /// auth stays off as in Karma 1.0, and the server says so at
            /// startup.
            pub auth_token_empty: bool,
        }

        const OPTIONS: &[OptDef] = &[$(
            OptDef {
                long: $long,
                short: server_options!(@some $($short)?),
                env: $env,
                kind: Kind::$kind,
                default: server_options!(@default $default $field),
                value_name: $value_name,
                help: $help,
                set: |config, raw, source| {
                    config.$field = Setting::parse(raw, Kind::$kind, source)?;
                    Ok(())
                },
                get: |config| config.$field.to_text(),
            },
        )*];

        impl Config {
            /// Every field at its type's zero, before the defaults apply.
            fn zero() -> Config {
                Config { $( $field: Default::default(), )* auth_token_empty: false }
            }
        }
    };
    (@some) => { None };
    (@some $value:literal) => { Some($value) };
    (@default none $field:ident) => { DefaultValue::None };
    (@default engine $field:ident) => { DefaultValue::Engine(stringify!($field)) };
    (@default $text:literal $field:ident) => { DefaultValue::Text($text) };
}

server_options! {
    host: String = "0.0.0.0", Str, "bind" | 'b', "KARMA_HOST", "host", "Address to listen on";
    port: i32 = "8080", Int, "port" | 'p', "KARMA_PORT", "port", "Port to listen on";
    directory: String = ".", Str, "directory" | 'd', "KARMA_DUMP_DIR", "path", "Data directory";
    role: String = engine, Str, "role", "KARMA_ROLE", "role", "master or slave";
    restore: bool = engine, Bool, "restore" | 'r', "KARMA_RESTORE", "flag",
        "Restore snapshots and replay the WAL at startup";
    nodelay: bool = "true", Bool, "nodelay" | 'n', "KARMA_TCP_NODELAY", "flag", "Set TCP_NODELAY on client sockets";
    wal: bool = engine, Bool, "wal" | 'w', "KARMA_WAL", "flag", "Write-ahead log on/off";
    wal_fsync: FsyncPolicy = engine, Fsync, "wal-fsync", "KARMA_WAL_FSYNC", "policy",
        "always (fsync each WAL group before acknowledging), everysec or never; true/false mean always/never";
    wal_segment_bytes: i32 = engine, Int, "wal-segment-bytes", "KARMA_WAL_SEGMENT_BYTES", "bytes",
        "Rotate the WAL past this size, 0 = never";
    wal_batch_size: i32 = engine, Int, "wal-batch-size", "KARMA_WAL_BATCH_SIZE", "count",
        "Most jobs per WAL group commit";
    wal_batch_wait_us: i32 = engine, Int, "wal-batch-wait-us", "KARMA_WAL_BATCH_WAIT_MICROSECONDS", "microseconds",
        "Extra WAL batch collection wait";
    max_request_bytes: i32 = engine, Int, "max-request-bytes", "KARMA_MAX_REQUEST_BYTES", "bytes",
        "Longest request line";
    max_response_bytes: i32 = engine, Int, "max-response-bytes", "KARMA_MAX_RESPONSE_BYTES", "bytes",
        "Longest response, 0 = unlimited";
    read_timeout_seconds: i32 = "5", Int, "read-timeout", "KARMA_READ_TIMEOUT_SECONDS", "seconds",
        "Close a client idle this long, 0 = never";
    write_timeout_seconds: i32 = "5", Int, "write-timeout", "KARMA_WRITE_TIMEOUT_SECONDS", "seconds",
        "Per-write timeout, 0 = none";
    query_timeout_ms: i32 = engine, Int, "query-timeout-ms", "KARMA_QUERY_TIMEOUT_MS", "ms",
        "Deadline of whole-series reads, 0 = none";
    shutdown_timeout_seconds: i32 = "5", Int, "shutdown-timeout", "KARMA_SHUTDOWN_TIMEOUT_SECONDS", "seconds",
        "Client drain time at shutdown";
    auth_token: Option<String> = engine, OptStr, "auth-token", "KARMA_AUTH_TOKEN", "token", "Write (full access) token";
    read_auth_token: Option<String> = engine, OptStr, "read-auth-token", "KARMA_READ_AUTH_TOKEN", "token", "Read-only token";
    dump_retention_per_tree: i32 = engine, Int, "dump-retention-per-tree", "KARMA_DUMP_RETENTION_PER_TREE", "count",
        "Snapshots kept per series, 0 = all";
    replication_source_host: Option<String> = none, OptStrKeepEmpty, "replication-source-host",
        "KARMA_REPLICATION_SOURCE_HOST", "host", "Master address for a slave";
    replication_source_port: i32 = "8080", Int, "replication-source-port", "KARMA_REPLICATION_SOURCE_PORT", "port",
        "Master port";
    replication_token: Option<String> = none, OptStr, "replication-token", "KARMA_REPLICATION_TOKEN", "token",
        "Token sent in replication requests";
    replication_poll_interval_ms: i32 = "1000", Int, "replication-poll-interval-ms",
        "KARMA_REPLICATION_POLL_INTERVAL_MS", "ms", "Sleep between replication polls";
    replication_batch_size: i32 = "1000", Int, "replication-batch-size", "KARMA_REPLICATION_BATCH_SIZE", "count",
        "Entries per replication poll";
    idempotency_max_records: i32 = engine, Int, "idempotency-max-records", "KARMA_IDEMPOTENCY_MAX_RECORDS",
        "count", "Idempotency record cap";
    idempotency_max_age_seconds: i32 = engine, Int, "idempotency-max-age-seconds",
        "KARMA_IDEMPOTENCY_MAX_AGE_SECONDS", "seconds", "Idempotency record age cap, 0 = off";
    log: bool = "true", Bool, "log", "KARMA_LOG", "flag", "Structured JSON logs on/off";
    max_connections: i32 = "10000", Int, "max-connections", "KARMA_MAX_CONNECTIONS", "count",
        "Most concurrent client connections";
    metrics_port: i32 = "0", Int, "metrics-port", "KARMA_METRICS_PORT", "port",
        "Serve GET /metrics over HTTP on this port, 0 = off";
    max_pending_output_bytes: i32 = "1048576", Int, "max-pending-output-bytes", "KARMA_MAX_PENDING_OUTPUT_BYTES",
        "bytes", "Unsent answers per connection before it stops reading";
    request_deadline_seconds: i32 = "10", Int, "request-deadline", "KARMA_REQUEST_DEADLINE_SECONDS", "seconds",
        "Time to complete a request line from its first byte, 0 = none";
    max_heavy_requests: i32 = "0", Int, "max-heavy-requests", "KARMA_MAX_HEAVY_REQUESTS", "count",
        "Scans, batches and snapshot work run at once, 0 = one per CPU";
    workers: i32 = "0", Int, "workers", "KARMA_WORKERS", "count",
        "Threads serving connections, 0 = half the CPUs this process may use (at least 1)";
    replication_max_line_bytes: i32 = "268435456", Int, "replication-max-line-bytes",
        "KARMA_REPLICATION_MAX_LINE_BYTES", "bytes", "Longest reply line a slave reads from its master";
    ingest_max_streams: i32 = engine, Int, "ingest-max-streams", "KARMA_INGEST_MAX_STREAMS", "count",
        "Uncommitted ingest streams at once";
    ingest_max_staged_items: i32 = engine, Int, "ingest-max-staged-items", "KARMA_INGEST_MAX_STAGED_ITEMS",
        "count", "Items all uncommitted replace_series streams may stage";
    ingest_stream_ttl_seconds: i32 = engine, Int, "ingest-stream-ttl", "KARMA_INGEST_STREAM_TTL_SECONDS", "seconds",
        "Abort an uncommitted ingest stream idle this long, 0 = never";
    recovery_max_sources: i32 = engine, Int, "recovery-max-sources", "KARMA_RECOVERY_MAX_SOURCES", "count",
        "Sources recovery.checkpoint keeps";
    cluster_etcd: Option<String> = none, OptStr, "cluster-etcd", "KARMA_CLUSTER_ETCD", "host:port,...",
        "Run as a cluster node coordinated by these etcd endpoints (docs/cluster.md)";
    cluster_name: String = "karma", Str, "cluster-name", "KARMA_CLUSTER_NAME", "name", "Cluster name";
    shard: i32 = "0", Int, "shard", "KARMA_SHARD", "n", "Shard this node serves, from 0";
    node_id: Option<String> = none, OptStr, "node-id", "KARMA_NODE_ID", "id", "This node's name in the cluster";
    advertise: Option<String> = none, OptStr, "advertise", "KARMA_ADVERTISE", "host:port",
        "Address clients and other nodes reach this node at";
    cluster_lease_ttl_seconds: i32 = "5", Int, "cluster-lease-ttl", "KARMA_CLUSTER_LEASE_TTL_SECONDS", "seconds",
        "Leadership lease: a failover starts this long after a leader is lost";
}

/// The option whose emptiness the server warns about at startup.
const AUTH_TOKEN: &str = "auth-token";

impl Default for Config {
    /// Every option at its default from [`OPTIONS`].
    fn default() -> Config {
        let mut config = Config::zero();
        for def in OPTIONS {
            if let Some(raw) = def.default_text() {
                let applied = config.apply(def, &raw, Source::Default);
                debug_assert!(applied.is_ok(), "the default of --{} does not parse", def.long);
            }
        }
        config
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Cli {
    /// Start the server.
    Run(Box<Config>),
    /// Print this usage text on stdout and exit 0.
    Help(String),
    /// Print this version line on stdout and exit 0.
    Version(String),
}

/// A configuration error: print `ERROR: <message>` (and the usage text, if
/// any) on stderr and exit 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub message: String,
    pub usage: Option<String>,
}

impl ConfigError {
    fn new(message: impl Into<String>) -> ConfigError {
        ConfigError { message: message.into(), usage: None }
    }

    /// Everything to print on stderr.
    pub fn render(&self) -> String {
        match &self.usage {
            Some(usage) => format!("ERROR: {}\n{}", self.message, usage),
            None => format!("ERROR: {}\n", self.message),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERROR: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses an integer like Crystal's `String#to_i32`: base 10, optional sign,
/// surrounding whitespace tolerated, no `_`, no prefix, within `i32`.
pub fn parse_i32(s: &str) -> Option<i32> {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i32>().ok()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Where a value came from, for the error message.
enum Source<'a> {
    Default,
    Env(&'a str),
    Flag(&'a str),
}

impl Source<'_> {
    /// "<where> must be <expected>".
    fn error(&self, expected: &str) -> ConfigError {
        match self {
            Source::Default => ConfigError::new(format!("a built-in default must be {expected}")),
            Source::Env(name) => ConfigError::new(format!("Environment variable {name} must be {expected}")),
            Source::Flag(long) => ConfigError::new(format!("--{long} must be {expected}")),
        }
    }
}

impl Config {
    /// What the operator should know about this configuration before the
    /// server accepts its first client.
    pub fn startup_warnings(&self) -> Vec<&'static str> {
        let mut warnings = Vec::new();
        if self.auth_token_empty && self.auth_token.is_none() {
            warnings.push(
                "the auth token is empty, so authentication is off for writes: set a non-empty --auth-token (or \
                 KARMA_AUTH_TOKEN) to require one",
            );
        }
        if self.read_auth_token.is_some() && self.auth_token.is_none() {
            warnings.push(
                "only a read-only token is configured: every write is refused until --auth-token (or \
                 KARMA_AUTH_TOKEN) is set",
            );
        }
        warnings
    }

    fn apply(&mut self, def: &OptDef, raw: &str, source: Source<'_>) -> Result<(), ConfigError> {
        if def.long == AUTH_TOKEN {
            self.auth_token_empty = raw.is_empty();
        }
        (def.set)(self, raw, &source)
    }

    /// The rules of spec/server.md §2.4, in that order; the first failure
    /// wins. Our own options are checked after the original ones.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(msg: &str) -> Result<(), ConfigError> {
            Err(ConfigError::new(format!("Invalid configuration: {msg}")))
        }
        fn at_least_zero(v: i32, name: &str) -> Result<(), ConfigError> {
            if v < 0 {
                invalid(&format!("{name} must be greater than or equal to 0"))
            } else {
                Ok(())
            }
        }
        fn positive(v: i32, name: &str) -> Result<(), ConfigError> {
            if v <= 0 {
                invalid(&format!("{name} must be greater than 0"))
            } else {
                Ok(())
            }
        }
        if self.host.is_empty() {
            return invalid("host must not be empty");
        }
        if !(1..=65535).contains(&self.port) {
            return invalid("port must be between 1 and 65535");
        }
        if self.directory.is_empty() {
            return invalid("dump_dir must not be empty");
        }
        if self.role != "master" && self.role != "slave" {
            return invalid("role must be master or slave");
        }
        at_least_zero(self.wal_segment_bytes, "wal_segment_bytes")?;
        positive(self.wal_batch_size, "wal_batch_size")?;
        at_least_zero(self.wal_batch_wait_us, "wal_batch_wait_microseconds")?;
        positive(self.max_request_bytes, "max_request_bytes")?;
        at_least_zero(self.max_response_bytes, "max_response_bytes")?;
        at_least_zero(self.read_timeout_seconds, "read_timeout_seconds")?;
        at_least_zero(self.write_timeout_seconds, "write_timeout_seconds")?;
        at_least_zero(self.query_timeout_ms, "query_timeout_ms")?;
        at_least_zero(self.shutdown_timeout_seconds, "shutdown_timeout_seconds")?;
        at_least_zero(self.dump_retention_per_tree, "dump_retention_per_tree")?;
        positive(self.idempotency_max_records, "idempotency_max_records")?;
        at_least_zero(self.idempotency_max_age_seconds, "idempotency_max_age_seconds")?;
        positive(self.max_connections, "max_connections")?;
        if !(0..=65535).contains(&self.metrics_port) {
            return invalid("metrics_port must be between 0 and 65535");
        }
        positive(self.max_pending_output_bytes, "max_pending_output_bytes")?;
        at_least_zero(self.request_deadline_seconds, "request_deadline_seconds")?;
        at_least_zero(self.max_heavy_requests, "max_heavy_requests")?;
        at_least_zero(self.workers, "workers")?;
        positive(self.replication_max_line_bytes, "replication_max_line_bytes")?;
        positive(self.ingest_max_streams, "ingest_max_streams")?;
        positive(self.ingest_max_staged_items, "ingest_max_staged_items")?;
        at_least_zero(self.ingest_stream_ttl_seconds, "ingest_stream_ttl_seconds")?;
        positive(self.recovery_max_sources, "recovery_max_sources")?;
        if let Some(host) = &self.replication_source_host {
            if host.is_empty() {
                return invalid("replication_source_host must not be empty");
            }
            if self.role != "slave" {
                return invalid("replication source requires slave role");
            }
            if !(1..=65535).contains(&self.replication_source_port) {
                return invalid("replication_source_port must be between 1 and 65535");
            }
            if self.replication_poll_interval_ms <= 0 {
                return invalid("replication_poll_interval_ms must be greater than 0");
            }
            if !(1..=10000).contains(&self.replication_batch_size) {
                return invalid("replication_batch_size must be between 1 and 10000");
            }
        }
        self.validate_cluster()
    }

    /// Cluster mode decides the role and the replication source itself, so
    /// setting them too is ambiguous and refused; a node must say who it is
    /// and where it is reached.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::new(format!("Invalid configuration: {msg}")));
        let Some(etcd) = &self.cluster_etcd else { return Ok(()) };
        if etcd.split(',').all(|e| e.trim().is_empty()) {
            return invalid("cluster_etcd must name at least one endpoint");
        }
        if self.cluster_name.is_empty() || self.cluster_name.contains('/') {
            return invalid("cluster_name must be non-empty and contain no /");
        }
        if self.shard < 0 {
            return invalid("shard must be at least 0");
        }
        match &self.node_id {
            Some(id) if !id.is_empty() && !id.contains('/') => {}
            _ => return invalid("cluster mode needs --node-id (non-empty, no /)"),
        }
        match &self.advertise {
            Some(a)
                if a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)) => {}
            _ => return invalid("cluster mode needs --advertise=<host:port>"),
        }
        if self.cluster_lease_ttl_seconds < 2 {
            return invalid("cluster_lease_ttl_seconds must be at least 2");
        }
        if self.role != "master" || self.replication_source_host.is_some() {
            return invalid(
                "cluster mode chooses the role and replication source; do not set --role or --replication-source-host",
            );
        }
        Ok(())
    }

    pub fn role(&self) -> Role {
        if self.role == "slave" {
            Role::Slave
        } else {
            Role::Master
        }
    }

    /// `--port` as a port number (valid after [`Config::validate`]).
    pub fn port_u16(&self) -> u16 {
        u16::try_from(self.port).unwrap_or(0)
    }

    /// `--metrics-port`, `None` when off.
    pub fn metrics_port(&self) -> Option<u16> {
        u16::try_from(self.metrics_port).ok().filter(|p| *p != 0)
    }

    pub fn max_request_bytes(&self) -> usize {
        to_usize(self.max_request_bytes)
    }

    pub fn max_connections(&self) -> usize {
        to_usize(self.max_connections).max(1)
    }

    pub fn read_timeout(&self) -> Option<Duration> {
        seconds(self.read_timeout_seconds)
    }

    pub fn write_timeout(&self) -> Option<Duration> {
        seconds(self.write_timeout_seconds)
    }

    pub fn max_pending_output_bytes(&self) -> usize {
        to_usize(self.max_pending_output_bytes).max(1)
    }

    /// `--request-deadline`, `None` when off.
    pub fn request_deadline(&self) -> Option<Duration> {
        seconds(self.request_deadline_seconds)
    }

    /// `--max-heavy-requests`; 0 means one per CPU.
    pub fn max_heavy_requests(&self) -> usize {
        match to_usize(self.max_heavy_requests) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// `--workers`: the async runtime's worker threads; 0 means half the
    /// CPUs this process may run on, at least one. The other half is left
    /// to what does not run on the workers (the WAL writer and its fsyncs,
    /// snapshots, heavy batches) and, on a small shared host, to the
    /// clients: on a 2-core VM one worker served 14-70% more requests than
    /// two, whose work stealing woke each other across cores
    /// (docs/benchmarks.md).
    pub fn workers(&self) -> usize {
        match to_usize(self.workers) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1),
            n => n,
        }
    }

    /// How often the server looks for ingest streams idle past
    /// `--ingest-stream-ttl`: a tenth of the TTL, between 1 and 60 seconds,
    /// so a stream outlives its TTL by at most that; `None` when streams
    /// never expire.
    pub fn ingest_sweep_interval(&self) -> Option<Duration> {
        match to_u64(self.ingest_stream_ttl_seconds) {
            0 => None,
            ttl => Some(Duration::from_secs((ttl / 10).clamp(1, 60))),
        }
    }

    /// How long shutdown waits for connections to finish (0 = force at once).
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(to_u64(self.shutdown_timeout_seconds))
    }

    /// The master to replicate from, when this node is a slave with a source.
    pub fn replication_source(&self) -> Option<crate::replication::Source> {
        let host = self.replication_source_host.clone()?;
        if self.role() != Role::Slave {
            return None;
        }
        let secs = if self.read_timeout_seconds > 0 { self.read_timeout_seconds as u64 } else { 30 };
        Some(crate::replication::Source {
            host,
            port: u16::try_from(self.replication_source_port).unwrap_or(8080),
            token: self.replication_token.clone(),
            poll_interval: std::time::Duration::from_millis(self.replication_poll_interval_ms.max(1) as u64),
            batch_size: usize::try_from(self.replication_batch_size).unwrap_or(1000).clamp(1, 10_000),
            timeout: std::time::Duration::from_secs(secs),
            max_line_bytes: to_usize(self.replication_max_line_bytes).max(1),
        })
    }

    /// The engine's options for this configuration (valid after
    /// [`Config::validate`]): every option that is also an engine option
    /// goes through the engine's own table, so its conversion (`0` = no
    /// query timeout, at least one WAL batch entry, ...) is written once.
    pub fn engine_options(&self) -> Options {
        let mut options = Options::durable(&self.directory);
        for def in OPTIONS {
            let (Some(name), Some(text)) = (def.engine_option(), (def.get)(self)) else { continue };
            let set = options.set_text(name, &text);
            debug_assert!(set.is_ok(), "--{} passed validation but not the engine's table: {set:?}", def.long);
        }
        options
    }
}

fn to_usize(v: i32) -> usize {
    usize::try_from(v).unwrap_or(0)
}

fn to_u64(v: i32) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn seconds(v: i32) -> Option<Duration> {
    match to_u64(v) {
        0 => None,
        s => Some(Duration::from_secs(s)),
    }
}

/// The clap command: tokenising and the usage text. Every option takes its
/// value as a string; values are converted by [`Config::apply`].
pub fn command() -> Command {
    let mut cmd = Command::new("karma")
        .version(VERSION)
        .about("Karma: day-bucketed u64 counters over TCP (protocol v2)")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .arg(Arg::new("help").short('h').long("help").action(ArgAction::SetTrue).help("Print this help and exit"))
        .arg(Arg::new("version").long("version").action(ArgAction::SetTrue).help("Print the version and exit"))
        .arg(
            // The original ignores positional arguments.
            Arg::new("positional").action(ArgAction::Append).num_args(0..).hide(true),
        );
    for def in OPTIONS {
        let mut arg = Arg::new(def.long)
            .long(def.long)
            .value_name(def.value_name)
            .help(def.help_line())
            .num_args(1)
            .allow_hyphen_values(true)
            .action(ArgAction::Append);
        if let Some(short) = def.short {
            arg = arg.short(short);
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// The environment variable of the option spelled `--<long>`, if it has one
/// (`--help` and `--version` have none).
pub fn env_var(long: &str) -> Option<&'static str> {
    OPTIONS.iter().find(|d| d.long == long).map(|d| d.env)
}

/// The default of the option spelled `--<long>` as configuration text
/// (`None` when it is unset by default, or there is no such option): what
/// `--help` shows and docs/server.md must say.
pub fn default_text(long: &str) -> Option<String> {
    OPTIONS.iter().find(|d| d.long == long).and_then(OptDef::default_text)
}

/// The usage text printed by `--help` and after an unknown option.
pub fn usage() -> String {
    command().render_help().to_string()
}

/// Splits the arguments (without the program name) into the ones clap may
/// see and the unknown flags (reported after all known ones were applied),
/// and finds a value flag given last without its value.
struct Prescan {
    known: Vec<String>,
    unknown: Vec<String>,
    missing_value: Option<String>,
}

fn lookup_long(name: &str) -> Option<bool> {
    // Some(takes_value)
    match name {
        "help" | "version" => Some(false),
        _ => OPTIONS.iter().find(|d| d.long == name).map(|_| true),
    }
}

fn lookup_short(c: char) -> Option<bool> {
    if c == 'h' {
        return Some(false);
    }
    OPTIONS.iter().find(|d| d.short == Some(c)).map(|_| true)
}

fn prescan(args: &[String]) -> Prescan {
    let mut known = Vec::with_capacity(args.len());
    let mut unknown = Vec::new();
    let mut missing_value = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            known.extend(args[i - 1..].iter().cloned());
            break;
        }
        let takes_value = if let Some(rest) = arg.strip_prefix("--") {
            let (name, has_inline) = match rest.split_once('=') {
                Some((name, _)) => (name, true),
                None => (rest, false),
            };
            match lookup_long(name) {
                Some(takes) => takes && !has_inline,
                None => {
                    unknown.push(format!("--{name}"));
                    continue;
                }
            }
        } else if arg.len() > 1 && arg.starts_with('-') {
            let mut chars = arg.chars().skip(1);
            let c = chars.next().unwrap_or('-');
            let inline = chars.next().is_some();
            match lookup_short(c) {
                Some(takes) => takes && !inline,
                None => {
                    unknown.push(arg.clone());
                    continue;
                }
            }
        } else {
            false
        };
        known.push(arg.clone());
        if takes_value {
            match args.get(i) {
                Some(value) => {
                    known.push(value.clone());
                    i += 1;
                }
                None => {
                    missing_value = Some(arg.clone());
                    known.pop();
                }
            }
        }
    }
    Prescan { known, unknown, missing_value }
}

/// Parses `args` (without the program name) on top of the environment read
/// through `env`. Environment variables are read first, even for `--help`.
pub fn parse<F>(args: &[String], env: F) -> Result<Cli, ConfigError>
where
    F: Fn(&str) -> Option<String>,
{
    let mut config = Config::default();
    for def in OPTIONS {
        let Some(raw) = env(def.env) else { continue };
        if def.kind.empty_env_is_unset() && raw.is_empty() {
            config.auth_token_empty |= def.long == AUTH_TOKEN;
            continue;
        }
        config.apply(def, &raw, Source::Env(def.env))?;
    }

    let scan = prescan(args);
    let mut argv = Vec::with_capacity(scan.known.len() + 1);
    argv.push("karma".to_string());
    argv.extend(scan.known);
    let matches = command().try_get_matches_from(argv).map_err(|e| ConfigError::new(format!("{}", e.kind())))?;

    // Replay the flags left to right: a bad value fails at its position.
    enum Event<'a> {
        Value(&'a OptDef, &'a str),
        Help,
        Version,
    }
    let mut events: Vec<(usize, Event<'_>)> = Vec::new();
    for def in OPTIONS {
        let (Some(values), Some(indices)) = (matches.get_many::<String>(def.long), matches.indices_of(def.long)) else {
            continue;
        };
        for (value, index) in values.zip(indices) {
            events.push((index, Event::Value(def, value.as_str())));
        }
    }
    if matches.get_flag("help") {
        if let Some(index) = matches.index_of("help") {
            events.push((index, Event::Help));
        }
    }
    if matches.get_flag("version") {
        if let Some(index) = matches.index_of("version") {
            events.push((index, Event::Version));
        }
    }
    events.sort_by_key(|(index, _)| *index);
    for (_, event) in events {
        match event {
            Event::Value(def, value) => config.apply(def, value, Source::Flag(def.long))?,
            Event::Help => return Ok(Cli::Help(usage())),
            Event::Version => return Ok(Cli::Version(format!("karma {VERSION}\n"))),
        }
    }
    if let Some(flag) = scan.missing_value {
        return Err(ConfigError::new(format!("Missing option: {flag}")));
    }
    if let Some(flag) = scan.unknown.into_iter().next() {
        return Err(ConfigError { message: format!("{flag} is not a valid option."), usage: Some(usage()) });
    }
    config.validate()?;
    Ok(Cli::Run(Box::new(config)))
}

/// [`parse`] with the process environment.
pub fn parse_process_args(args: &[String]) -> Result<Cli, ConfigError> {
    parse(args, |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Cli, ConfigError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(&args, |name| env.get(name).cloned())
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match run(args, env) {
            Ok(Cli::Run(c)) => *c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> String {
        match run(args, env) {
            Err(e) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_option_table() {
        let c = config(&[], &[]);
        assert_eq!(c, Config::default());
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.port, 8080);
        assert_eq!(c.directory, ".");
        assert_eq!(c.role(), Role::Master);
        assert!(c.restore && c.nodelay && c.wal && c.log);
        assert_eq!(c.wal_fsync, FsyncPolicy::Always);
        assert_eq!(c.wal_segment_bytes, 67_108_864);
        assert_eq!(c.max_request_bytes(), 4096);
        assert_eq!(c.read_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(c.max_connections(), 10_000);
        assert_eq!(c.metrics_port(), None);
        assert_eq!(c.auth_token, None);
    }

    #[test]
    fn long_short_and_separate_values() {
        let c = config(
            &["--port=9000", "-b", "127.0.0.1", "-d/tmp/x", "--role", "slave", "-rfalse", "-n", "false", "-w=false"],
            &[],
        );
        assert_eq!(c.port, 9000);
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.directory, "/tmp/x");
        assert_eq!(c.role(), Role::Slave);
        assert!(!c.restore);
        assert!(!c.nodelay);
        // clap accepts `-w=false` as the value `false`.
        assert!(!c.wal);
    }

    #[test]
    fn cli_overrides_env_and_last_flag_wins() {
        let c = config(&["--port=1", "--port=2"], &[("KARMA_PORT", "3"), ("KARMA_HOST", "h")]);
        assert_eq!(c.port, 2);
        assert_eq!(c.host, "h");
        let c = config(&[], &[("KARMA_PORT", " +42 ")]);
        assert_eq!(c.port, 42);
    }

    #[test]
    fn every_env_variable_is_read() {
        let env = [
            ("KARMA_HOST", "10.0.0.1"),
            ("KARMA_PORT", "1234"),
            ("KARMA_DUMP_DIR", "/data"),
            ("KARMA_ROLE", "slave"),
            ("KARMA_RESTORE", "false"),
            ("KARMA_TCP_NODELAY", "false"),
            ("KARMA_WAL", "false"),
            ("KARMA_WAL_FSYNC", "false"),
            ("KARMA_WAL_SEGMENT_BYTES", "0"),
            ("KARMA_WAL_BATCH_SIZE", "7"),
            ("KARMA_WAL_BATCH_WAIT_MICROSECONDS", "250"),
            ("KARMA_MAX_REQUEST_BYTES", "100"),
            ("KARMA_MAX_RESPONSE_BYTES", "0"),
            ("KARMA_READ_TIMEOUT_SECONDS", "0"),
            ("KARMA_WRITE_TIMEOUT_SECONDS", "9"),
            ("KARMA_QUERY_TIMEOUT_MS", "0"),
            ("KARMA_SHUTDOWN_TIMEOUT_SECONDS", "3"),
            ("KARMA_AUTH_TOKEN", "w"),
            ("KARMA_READ_AUTH_TOKEN", "r"),
            ("KARMA_DUMP_RETENTION_PER_TREE", "0"),
            ("KARMA_REPLICATION_SOURCE_HOST", "master"),
            ("KARMA_REPLICATION_SOURCE_PORT", "9999"),
            ("KARMA_REPLICATION_TOKEN", "t"),
            ("KARMA_REPLICATION_POLL_INTERVAL_MS", "50"),
            ("KARMA_REPLICATION_BATCH_SIZE", "10"),
            ("KARMA_IDEMPOTENCY_MAX_RECORDS", "5"),
            ("KARMA_IDEMPOTENCY_MAX_AGE_SECONDS", "0"),
            ("KARMA_LOG", "false"),
            ("KARMA_MAX_CONNECTIONS", "3"),
            ("KARMA_METRICS_PORT", "9100"),
        ];
        let c = config(&[], &env);
        let expected = Config {
            host: "10.0.0.1".into(),
            port: 1234,
            directory: "/data".into(),
            role: "slave".into(),
            restore: false,
            nodelay: false,
            wal: false,
            wal_fsync: FsyncPolicy::Never,
            wal_segment_bytes: 0,
            wal_batch_size: 7,
            wal_batch_wait_us: 250,
            max_request_bytes: 100,
            max_response_bytes: 0,
            read_timeout_seconds: 0,
            write_timeout_seconds: 9,
            query_timeout_ms: 0,
            shutdown_timeout_seconds: 3,
            auth_token: Some("w".into()),
            auth_token_empty: false,
            read_auth_token: Some("r".into()),
            dump_retention_per_tree: 0,
            replication_source_host: Some("master".into()),
            replication_source_port: 9999,
            replication_token: Some("t".into()),
            replication_poll_interval_ms: 50,
            replication_batch_size: 10,
            idempotency_max_records: 5,
            idempotency_max_age_seconds: 0,
            log: false,
            max_connections: 3,
            metrics_port: 9100,
            ..Config::default()
        };
        assert_eq!(c, expected);
        let o = c.engine_options();
        assert_eq!(o.query_timeout, None);
        assert_eq!(o.role, Role::Slave);
        assert_eq!(o.wal_batch_wait, Duration::from_micros(250));
        assert_eq!(o.directory, Some(PathBuf::from("/data")));
        assert_eq!(o.auth_token.as_deref(), Some("w"));
        assert_eq!(c.read_timeout(), None);
        assert_eq!(c.metrics_port(), Some(9100));
    }

    #[test]
    fn every_flag_is_accepted() {
        let c = config(
            &[
                "--bind=h",
                "--port=2",
                "--directory=d",
                "--role=master",
                "--restore=false",
                "--nodelay=false",
                "--wal=false",
                "--wal-fsync=false",
                "--wal-segment-bytes=1",
                "--wal-batch-size=2",
                "--wal-batch-wait-us=3",
                "--max-request-bytes=4",
                "--max-response-bytes=5",
                "--read-timeout=6",
                "--write-timeout=7",
                "--query-timeout-ms=8",
                "--shutdown-timeout=9",
                "--auth-token=a",
                "--read-auth-token=b",
                "--dump-retention-per-tree=10",
                "--replication-source-port=11",
                "--replication-token=c",
                "--replication-poll-interval-ms=12",
                "--replication-batch-size=13",
                "--idempotency-max-records=14",
                "--idempotency-max-age-seconds=15",
                "--log=false",
                "--max-connections=16",
                "--metrics-port=17",
            ],
            &[],
        );
        assert_eq!(
            (c.port, c.wal_segment_bytes, c.wal_batch_size, c.wal_batch_wait_us, c.max_request_bytes),
            (2, 1, 2, 3, 4)
        );
        assert_eq!(
            (c.max_response_bytes, c.read_timeout_seconds, c.write_timeout_seconds, c.query_timeout_ms),
            (5, 6, 7, 8)
        );
        assert_eq!((c.shutdown_timeout_seconds, c.dump_retention_per_tree, c.replication_source_port), (9, 10, 11));
        assert_eq!((c.replication_poll_interval_ms, c.replication_batch_size, c.idempotency_max_records), (12, 13, 14));
        assert_eq!((c.idempotency_max_age_seconds, c.max_connections, c.metrics_port), (15, 16, 17));
        assert_eq!((c.host.as_str(), c.directory.as_str()), ("h", "d"));
        assert!(!c.restore && !c.nodelay && !c.wal && !c.log);
        assert_eq!(c.wal_fsync, FsyncPolicy::Never);
        assert_eq!(c.auth_token.as_deref(), Some("a"));
        assert_eq!(c.read_auth_token.as_deref(), Some("b"));
        assert_eq!(c.replication_token.as_deref(), Some("c"));
    }

    #[test]
    fn wal_fsync_takes_a_policy_and_the_1_0_booleans() {
        for (word, policy) in [
            ("always", FsyncPolicy::Always),
            ("everysec", FsyncPolicy::EverySec),
            ("never", FsyncPolicy::Never),
            ("true", FsyncPolicy::Always),
            ("false", FsyncPolicy::Never),
        ] {
            assert_eq!(config(&[&format!("--wal-fsync={word}")], &[]).wal_fsync, policy, "--wal-fsync={word}");
            assert_eq!(config(&["--wal-fsync", word], &[]).wal_fsync, policy, "--wal-fsync {word}");
            assert_eq!(config(&[], &[("KARMA_WAL_FSYNC", word)]).wal_fsync, policy, "KARMA_WAL_FSYNC={word}");
            assert_eq!(config(&[&format!("--wal-fsync={word}")], &[]).engine_options().wal_fsync, policy);
        }
        // The flag wins over the environment.
        let c = config(&["--wal-fsync=everysec"], &[("KARMA_WAL_FSYNC", "never")]);
        assert_eq!(c.wal_fsync, FsyncPolicy::EverySec);
        for bad in ["Always", "yes", "1", "", "every_sec"] {
            assert_eq!(
                error(&[&format!("--wal-fsync={bad}")], &[]),
                "ERROR: --wal-fsync must be always, everysec or never (or true/false)"
            );
        }
        assert_eq!(
            error(&[], &[("KARMA_WAL_FSYNC", "sometimes")]),
            "ERROR: Environment variable KARMA_WAL_FSYNC must be always, everysec or never (or true/false)"
        );
    }

    #[test]
    fn integer_and_bool_errors_use_the_long_name() {
        assert_eq!(error(&["--port=abc"], &[]), "ERROR: --port must be an integer");
        assert_eq!(error(&["-p", "x"], &[]), "ERROR: --port must be an integer");
        assert_eq!(error(&["-p1_000"], &[]), "ERROR: --port must be an integer");
        assert_eq!(error(&["--port=0x10"], &[]), "ERROR: --port must be an integer");
        assert_eq!(error(&["--port=2147483648"], &[]), "ERROR: --port must be an integer");
        assert_eq!(error(&["--wal=TRUE"], &[]), "ERROR: --wal must be true or false");
        assert_eq!(error(&["-w", "1"], &[]), "ERROR: --wal must be true or false");
        assert_eq!(error(&["--log=yes"], &[]), "ERROR: --log must be true or false");
        assert_eq!(error(&["--max-connections=x"], &[]), "ERROR: --max-connections must be an integer");
    }

    #[test]
    fn env_errors_name_the_variable() {
        assert_eq!(error(&[], &[("KARMA_PORT", "80a")]), "ERROR: Environment variable KARMA_PORT must be an integer");
        assert_eq!(error(&[], &[("KARMA_WAL", "yes")]), "ERROR: Environment variable KARMA_WAL must be true or false");
        assert_eq!(
            error(&[], &[("KARMA_TCP_NODELAY", "")]),
            "ERROR: Environment variable KARMA_TCP_NODELAY must be true or false"
        );
        // A bad environment prevents even --help.
        assert_eq!(
            error(&["--help"], &[("KARMA_PORT", "x")]),
            "ERROR: Environment variable KARMA_PORT must be an integer"
        );
        // The environment is read before the flags, so a flag cannot hide it.
        assert_eq!(
            error(&["--port=1"], &[("KARMA_PORT", "x")]),
            "ERROR: Environment variable KARMA_PORT must be an integer"
        );
    }

    #[test]
    fn flags_apply_left_to_right() {
        assert_eq!(error(&["--port=x", "--wal=y"], &[]), "ERROR: --port must be an integer");
        assert_eq!(error(&["--wal=y", "--port=x"], &[]), "ERROR: --wal must be true or false");
        assert!(matches!(run(&["--help", "--port=x"], &[]), Ok(Cli::Help(_))));
        assert_eq!(error(&["--port=x", "--help"], &[]), "ERROR: --port must be an integer");
        // Bad values are reported before unknown options.
        assert_eq!(error(&["--foo", "--port=x"], &[]), "ERROR: --port must be an integer");
    }

    #[test]
    fn unknown_options_come_with_usage() {
        let e = match run(&["--foo"], &[]) {
            Err(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(e.message, "--foo is not a valid option.");
        let rendered = e.render();
        assert!(rendered.starts_with("ERROR: --foo is not a valid option.\n"));
        assert!(rendered.contains("--port"));
        assert_eq!(error(&["--foo=1"], &[]), "ERROR: --foo is not a valid option.");
        assert_eq!(error(&["-x"], &[]), "ERROR: -x is not a valid option.");
        // Unknown flags do not stop the known ones from being applied first.
        assert_eq!(error(&["--port=8081", "--bar", "--baz"], &[]), "ERROR: --bar is not a valid option.");
    }

    #[test]
    fn positional_arguments_are_ignored() {
        let c = config(&["stray", "--port=7", "more"], &[]);
        assert_eq!(c.port, 7);
    }

    #[test]
    fn missing_value_is_an_error_line() {
        assert_eq!(error(&["--port"], &[]), "ERROR: Missing option: --port");
        assert_eq!(error(&["--wal=true", "-p"], &[]), "ERROR: Missing option: -p");
    }

    #[test]
    fn help_and_version() {
        match run(&["--help"], &[]) {
            Ok(Cli::Help(text)) => {
                for def in OPTIONS {
                    assert!(text.contains(&format!("--{}", def.long)), "{} missing from help", def.long);
                    assert!(text.contains(def.env), "{} missing from help", def.env);
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(run(&["-h"], &[]), Ok(Cli::Help(_))));
        match run(&["--version"], &[]) {
            Ok(Cli::Version(v)) => assert_eq!(v, format!("karma {VERSION}\n")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_tokens_mean_unset() {
        let c = config(&["--auth-token=", "--read-auth-token="], &[("KARMA_REPLICATION_TOKEN", "")]);
        assert_eq!(c.auth_token, None);
        assert_eq!(c.read_auth_token, None);
        assert_eq!(c.replication_token, None);
        let c = config(&[], &[("KARMA_AUTH_TOKEN", "")]);
        assert_eq!(c.auth_token, None);
        // A flag can clear a token set in the environment.
        let c = config(&["--auth-token="], &[("KARMA_AUTH_TOKEN", "secret")]);
        assert_eq!(c.auth_token, None);
        assert!(c.auth_token_empty);
        assert!(!c.engine_options().auth_enabled());
    }

    #[test]
    fn resource_limits() {
        let c = config(&[], &[]);
        assert_eq!(c.max_pending_output_bytes(), 1_048_576);
        assert_eq!(c.request_deadline(), Some(Duration::from_secs(10)));
        assert!(c.max_heavy_requests() >= 1);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(c.workers(), (cpus / 2).max(1));
        let c = config(
            &["--max-pending-output-bytes=4096", "--request-deadline=0", "--max-heavy-requests=3"],
            &[
                ("KARMA_REPLICATION_MAX_LINE_BYTES", "1000"),
                ("KARMA_REQUEST_DEADLINE_SECONDS", "4"),
                ("KARMA_WORKERS", "3"),
            ],
        );
        assert_eq!(c.max_pending_output_bytes(), 4096);
        assert_eq!(c.request_deadline(), None);
        assert_eq!(c.max_heavy_requests(), 3);
        assert_eq!(c.workers(), 3);
        assert_eq!(config(&["--workers=5"], &[]).workers(), 5);
        assert_eq!(c.replication_max_line_bytes, 1000);
        let o = config(&[], &[]).engine_options();
        assert_eq!(
            (o.ingest_max_streams, o.ingest_max_staged_items, o.ingest_stream_ttl_seconds, o.recovery_max_sources),
            (10_000, 2_000_000, 86_400, 1_000)
        );
        assert_eq!(config(&[], &[]).ingest_sweep_interval(), Some(Duration::from_secs(60)));
        let c = config(
            &["--ingest-max-streams=3", "--ingest-stream-ttl=0", "--recovery-max-sources=5"],
            &[("KARMA_INGEST_MAX_STAGED_ITEMS", "7"), ("KARMA_INGEST_STREAM_TTL_SECONDS", "4")],
        );
        let o = c.engine_options();
        assert_eq!(
            (o.ingest_max_streams, o.ingest_max_staged_items, o.ingest_stream_ttl_seconds, o.recovery_max_sources),
            (3, 7, 0, 5)
        );
        assert_eq!(c.ingest_sweep_interval(), None);
        assert_eq!(config(&["--ingest-stream-ttl=5"], &[]).ingest_sweep_interval(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn half_configured_auth_is_named_at_startup() {
        assert!(config(&[], &[]).startup_warnings().is_empty());
        assert!(config(&["--auth-token=w", "--read-auth-token=r"], &[]).startup_warnings().is_empty());
        for c in [config(&["--auth-token="], &[]), config(&[], &[("KARMA_AUTH_TOKEN", "")])] {
            let warnings = c.startup_warnings();
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].starts_with("the auth token is empty"), "{warnings:?}");
        }
        // A later non-empty value wins, and then there is nothing to say.
        assert!(config(&["--auth-token=w"], &[("KARMA_AUTH_TOKEN", "")]).startup_warnings().is_empty());
        let warnings = config(&["--read-auth-token=r"], &[]).startup_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("only a read-only token is configured"), "{warnings:?}");
    }

    #[test]
    fn huge_request_limit_does_not_overflow() {
        let c = config(&["--max-request-bytes=2147483647"], &[]);
        assert_eq!(c.max_request_bytes(), 2_147_483_647);
        assert_eq!(c.engine_options().max_request_bytes, 2_147_483_647);
        assert!(c.max_request_bytes().checked_add(1).is_some());
    }

    #[test]
    fn validation_messages_in_order() {
        let cases: &[(&[&str], &str)] = &[
            (&["--bind="], "host must not be empty"),
            (&["--port=0"], "port must be between 1 and 65535"),
            (&["--port=65536"], "port must be between 1 and 65535"),
            (&["--directory="], "dump_dir must not be empty"),
            (&["--role=primary"], "role must be master or slave"),
            (&["--wal-segment-bytes=-1"], "wal_segment_bytes must be greater than or equal to 0"),
            (&["--wal-batch-size=0"], "wal_batch_size must be greater than 0"),
            (&["--wal-batch-wait-us=-1"], "wal_batch_wait_microseconds must be greater than or equal to 0"),
            (&["--max-request-bytes=0"], "max_request_bytes must be greater than 0"),
            (&["--max-response-bytes=-1"], "max_response_bytes must be greater than or equal to 0"),
            (&["--read-timeout=-1"], "read_timeout_seconds must be greater than or equal to 0"),
            (&["--write-timeout=-1"], "write_timeout_seconds must be greater than or equal to 0"),
            (&["--query-timeout-ms=-1"], "query_timeout_ms must be greater than or equal to 0"),
            (&["--shutdown-timeout=-1"], "shutdown_timeout_seconds must be greater than or equal to 0"),
            (&["--dump-retention-per-tree=-1"], "dump_retention_per_tree must be greater than or equal to 0"),
            (&["--idempotency-max-records=0"], "idempotency_max_records must be greater than 0"),
            (&["--idempotency-max-age-seconds=-1"], "idempotency_max_age_seconds must be greater than or equal to 0"),
            (&["--max-connections=0"], "max_connections must be greater than 0"),
            (&["--metrics-port=70000"], "metrics_port must be between 0 and 65535"),
            (&["--max-pending-output-bytes=0"], "max_pending_output_bytes must be greater than 0"),
            (&["--request-deadline=-1"], "request_deadline_seconds must be greater than or equal to 0"),
            (&["--max-heavy-requests=-1"], "max_heavy_requests must be greater than or equal to 0"),
            (&["--workers=-1"], "workers must be greater than or equal to 0"),
            (&["--replication-max-line-bytes=0"], "replication_max_line_bytes must be greater than 0"),
            (&["--ingest-max-streams=0"], "ingest_max_streams must be greater than 0"),
            (&["--ingest-max-staged-items=0"], "ingest_max_staged_items must be greater than 0"),
            (&["--ingest-stream-ttl=-1"], "ingest_stream_ttl_seconds must be greater than or equal to 0"),
            (&["--recovery-max-sources=0"], "recovery_max_sources must be greater than 0"),
            (&["--replication-source-host="], "replication_source_host must not be empty"),
            (&["--replication-source-host=m"], "replication source requires slave role"),
            (
                &["--replication-source-host=m", "--role=slave", "--replication-source-port=0"],
                "replication_source_port must be between 1 and 65535",
            ),
            (
                &["--replication-source-host=m", "--role=slave", "--replication-poll-interval-ms=0"],
                "replication_poll_interval_ms must be greater than 0",
            ),
            (
                &["--replication-source-host=m", "--role=slave", "--replication-batch-size=10001"],
                "replication_batch_size must be between 1 and 10000",
            ),
        ];
        for (args, msg) in cases {
            assert_eq!(error(args, &[]), format!("ERROR: Invalid configuration: {msg}"), "{args:?}");
        }
        // First failing rule wins.
        assert_eq!(error(&["--port=0", "--bind="], &[]), "ERROR: Invalid configuration: host must not be empty");
        assert_eq!(
            error(&["--wal-batch-size=0", "--max-request-bytes=0"], &[]),
            "ERROR: Invalid configuration: wal_batch_size must be greater than 0"
        );
        // Replication rules only apply with a source host; a static slave is fine.
        let c = config(&["--role=slave", "--replication-batch-size=0"], &[]);
        assert_eq!(c.role(), Role::Slave);
        // Empty env string values fail validation.
        assert_eq!(error(&[], &[("KARMA_HOST", "")]), "ERROR: Invalid configuration: host must not be empty");
        assert_eq!(error(&[], &[("KARMA_ROLE", "")]), "ERROR: Invalid configuration: role must be master or slave");
    }

    #[test]
    fn crystal_integer_rules() {
        assert_eq!(parse_i32("42"), Some(42));
        assert_eq!(parse_i32(" -7 "), Some(-7));
        assert_eq!(parse_i32("+7"), Some(7));
        assert_eq!(parse_i32("2147483647"), Some(i32::MAX));
        assert_eq!(parse_i32("-2147483648"), Some(i32::MIN));
        for bad in ["", " ", "1_0", "0x1", "1.0", "2147483648", "+-1", "--1", "1e3", "abc"] {
            assert_eq!(parse_i32(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cluster_options_are_read_and_checked() {
        let base = ["--cluster-etcd=127.0.0.1:2379", "--node-id=a", "--advertise=127.0.0.1:8080"];
        let c = config(&base, &[("KARMA_SHARD", "1"), ("KARMA_CLUSTER_LEASE_TTL_SECONDS", "3")]);
        assert_eq!(c.cluster_etcd.as_deref(), Some("127.0.0.1:2379"));
        assert_eq!((c.shard, c.cluster_lease_ttl_seconds, c.cluster_name.as_str()), (1, 3, "karma"));
        let with = |extra: &str| {
            let mut args = base.to_vec();
            args.push(extra);
            error(&args, &[])
        };
        assert!(with("--role=slave").contains("cluster mode chooses the role"));
        assert!(with("--cluster-lease-ttl=1").contains("at least 2"));
        assert!(with("--shard=-1").contains("shard must be at least 0"));
        assert!(with("--cluster-name=a/b").contains("no /"));
        assert!(error(&["--cluster-etcd=e:1", "--advertise=h:1"], &[]).contains("--node-id"));
        assert!(error(&["--cluster-etcd=e:1", "--node-id=a", "--advertise=nope"], &[]).contains("--advertise"));
        assert!(error(&["--cluster-etcd=,", "--node-id=a", "--advertise=h:1"], &[]).contains("endpoint"));
    }
}
