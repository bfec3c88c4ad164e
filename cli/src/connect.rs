//! The one place the tools touch the engine's client: where the server is
//! (flags, then the same `KARMA_*` variables as the server and the client
//! library), which token to send, and one request at a time over the pool.
//! A `karma+etcd://` URL opens a cluster instead of one server
//! (docs/cluster.md): requests are routed by op and key, and the answers
//! merged into the one a single node would give.

use std::time::Duration;

use clap::Args;
use karma_client::cluster::ClusterClient;
use karma_client::{AnyClient, Client, ClientConfig, ClientError, ENV_URL};
use serde_json::{Map, Value};

/// Environment variable of the server's write token, used when no client
/// token is given, so an operator shell set up for the server just works.
const ENV_SERVER_TOKEN: &str = "KARMA_AUTH_TOKEN";

/// A tool waits this long for one answer unless `KARMA_READ_TIMEOUT` says
/// otherwise: a 10000-item chunk on a busy server is not a 5 s affair.
const TOOL_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a request line the server takes (its `--max-request-bytes`);
/// shared by the tools that pack many items into one request.
#[derive(Args, Clone, Copy, Debug)]
pub struct RequestLimit {
    /// The server's --max-request-bytes: requests are packed to fit.
    #[arg(long = "max-request-bytes", env = "KARMA_MAX_REQUEST_BYTES", value_name = "BYTES",
          default_value_t = 4096, value_parser = clap::value_parser!(u64).range(64..))]
    pub bytes: u64,
}

impl RequestLimit {
    /// Room for a line, keeping one byte for the terminator.
    pub fn line_room(&self) -> usize {
        usize::try_from(self.bytes).unwrap_or(usize::MAX).saturating_sub(1)
    }
}

/// Where to connect; shared by every subcommand.
#[derive(Args, Clone, Debug, Default)]
pub struct ConnectArgs {
    /// Server to talk to, `karma://host:port`, or a cluster,
    /// `karma+etcd://host:port[,...]/<cluster-name>` (default: KARMA_URL,
    /// else KARMA_HOST/KARMA_PORT, else karma://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Token sent with every request (default: KARMA_TOKEN, else KARMA_AUTH_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// Why a call failed: the server said no, or the request never got an answer.
#[derive(Debug)]
pub enum CallError {
    Server { code: String, message: String },
    Transport(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Server { code, message } => write!(f, "{code}: {message}"),
            CallError::Transport(message) => f.write_str(message),
        }
    }
}

impl From<ClientError> for CallError {
    fn from(err: ClientError) -> CallError {
        match err {
            ClientError::Server(e) | ClientError::Invalid(e) => {
                CallError::Server { code: e.code().as_str().to_string(), message: e.message().to_string() }
            }
            other => CallError::Transport(other.to_string()),
        }
    }
}

/// A connection to one server or a cluster, as the tools use it.
pub struct Connection {
    client: AnyClient,
    target: String,
}

impl Connection {
    /// Resolves the configuration (a server is connected to on the first
    /// call; a cluster's etcd is asked for its shard count now).
    pub fn open(args: &ConnectArgs) -> Result<Connection, String> {
        Connection::open_with(args, |name| std::env::var(name).ok())
    }

    fn open_with(args: &ConnectArgs, env: impl Fn(&str) -> Option<String>) -> Result<Connection, String> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let cluster_url = args.url.clone().or_else(|| env(ENV_URL)).filter(|u| AnyClient::is_cluster_url(u));
        // A cluster URL in KARMA_URL is not the single-server setting.
        let server_env = |name: &str| if name == ENV_URL && cluster_url.is_some() { None } else { env(name) };
        let mut config = ClientConfig::from_env_with(server_env).map_err(|e| e.message().to_string())?;
        if let Some(url) = args.url.as_ref().filter(|_| cluster_url.is_none()) {
            let from_url = ClientConfig::from_url(url).map_err(|e| e.message().to_string())?;
            config.host = from_url.host;
            config.port = from_url.port;
            if from_url.token.is_some() {
                config.token = from_url.token;
            }
        }
        if let Some(token) = &args.token {
            config.token = Some(token.clone());
        } else if config.token.is_none() {
            config.token = env(ENV_SERVER_TOKEN);
        }
        if env("KARMA_READ_TIMEOUT").is_none() {
            config.read_timeout = TOOL_READ_TIMEOUT;
        }
        config.pool_size = 1;
        let (client, target) = match cluster_url {
            Some(url) => {
                let cluster = ClusterClient::from_url(&url, config).map_err(|e| match e {
                    ClientError::Server(e) | ClientError::Invalid(e) => e.message().to_string(),
                    other => format!("cannot open {url}: {other}"),
                })?;
                (AnyClient::Cluster(Box::new(cluster)), url)
            }
            None => {
                let target = format!("karma://{}", config.address());
                (AnyClient::Node(Client::new(config).map_err(|e| e.message().to_string())?), target)
            }
        };
        Ok(Connection { client, target })
    }

    /// Whether this connection is to a cluster.
    pub fn is_cluster(&self) -> bool {
        self.client.is_cluster()
    }

    /// `karma://host:port` (or the cluster URL), for prompts and messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Sends one request line (the token added) and returns the response
    /// line exactly as the server wrote it.
    pub fn raw(&self, line: &str) -> Result<String, CallError> {
        Ok(self.client.request_line(line)?)
    }

    /// The length of the request line [`Connection::call`] sends for `op`
    /// and `fields`, token included, without its line terminator.
    pub fn request_len(&self, op: &str, fields: &Value) -> usize {
        let mut map = Map::new();
        map.insert("v".into(), Value::from(2));
        map.insert("op".into(), Value::from(op));
        if let Some(token) = &self.client.config().token {
            map.insert("token".into(), Value::from(token.as_str()));
        }
        if let Value::Object(fields) = fields {
            map.extend(fields.clone());
        }
        Value::Object(map).to_string().len()
    }

    /// Sends `{"v":2,"op":op,...fields}` (`fields` a JSON object) and
    /// returns its `response` value.
    pub fn call(&self, op: &str, fields: Value) -> Result<Value, CallError> {
        let fields = match fields {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => return Err(CallError::Transport(format!("{op}: fields must be a JSON object, not {other}"))),
        };
        Ok(self.client.request_value(op, fields)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(args: ConnectArgs, vars: &[(&str, &str)]) -> Result<Connection, String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Connection::open_with(&args, move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    fn token(c: &Connection) -> Option<&str> {
        c.client.config().token.as_deref()
    }

    #[test]
    fn flags_win_over_the_environment() {
        let c = open(ConnectArgs::default(), &[]).unwrap();
        assert_eq!((c.target(), token(&c)), ("karma://127.0.0.1:8080", None));

        let env = [("KARMA_PORT", "9000"), ("KARMA_AUTH_TOKEN", "server"), ("KARMA_HOST", "db")];
        let c = open(ConnectArgs::default(), &env).unwrap();
        assert_eq!((c.target(), token(&c)), ("karma://db:9000", Some("server")));

        let env = [("KARMA_URL", "karma://u:1"), ("KARMA_TOKEN", "client"), ("KARMA_AUTH_TOKEN", "server")];
        let c = open(ConnectArgs::default(), &env).unwrap();
        assert_eq!((c.target(), token(&c)), ("karma://u:1", Some("client")));

        let args = ConnectArgs { url: Some("karma://f:2".into()), token: Some("flag".into()) };
        let c = open(args, &env).unwrap();
        assert_eq!((c.target(), token(&c)), ("karma://f:2", Some("flag")));
        assert_eq!(c.client.config().read_timeout, TOOL_READ_TIMEOUT);
    }

    #[test]
    fn bad_urls_and_variables_are_reported() {
        let args = ConnectArgs { url: Some("http://x".into()), token: None };
        assert!(open(args, &[]).err().unwrap().contains("Invalid Karma URL"));
        assert!(open(ConnectArgs::default(), &[("KARMA_PORT", "x")]).err().unwrap().contains("KARMA_PORT"));
        // A cluster URL, from the flag or KARMA_URL, asks etcd at once
        // (nothing listens on loopback port 9 here).
        let err = open(ConnectArgs::default(), &[("KARMA_URL", "karma+etcd://127.0.0.1:9/c")]).err().unwrap();
        assert!(err.starts_with("cannot open karma+etcd://127.0.0.1:9/c: connection error"), "{err}");
        let args = ConnectArgs { url: Some("karma+etcd://127.0.0.1:9".into()), token: None };
        assert!(open(args, &[]).err().unwrap().contains("invalid cluster URL"));
    }
}
