//! [`AnyClient`]: one URL opens either kind of client, for a binding or a
//! tool that should not care: `karma://host:port` a single server
//! ([`Client`]), `karma+etcd://host:port[,host:port...]/<cluster-name>` a
//! cluster ([`ClusterClient`]). Both implement [`Karma`], and so does this.

use karma_engine::api::Karma;
use karma_engine::protocol::line;
use karma_engine::protocol::response::open_envelope;
use serde_json::{Map, Value};

use crate::cluster::{ClusterClient, URL_SCHEME};
use crate::{wire, Client, ClientConfig, ClientError, Result};

/// A single server or a cluster, chosen by URL.
#[derive(Debug)]
pub enum AnyClient {
    Node(Client),
    /// Boxed: a cluster client is much larger than a node's (an `Arc`).
    Cluster(Box<ClusterClient>),
}

impl AnyClient {
    /// Opens `url`; `base` gives everything the URL does not (token, pool,
    /// timeouts). A `karma://` URL's host and port replace `base`'s, and its
    /// token too when it has one. A cluster URL connects to etcd at once to
    /// read the shard count; a server is connected to on first use.
    pub fn from_url(url: &str, base: ClientConfig) -> Result<AnyClient> {
        if url.starts_with(URL_SCHEME) {
            return ClusterClient::from_url(url, base).map(|c| AnyClient::Cluster(Box::new(c)));
        }
        let from_url = ClientConfig::from_url(url).map_err(ClientError::Invalid)?;
        let config = ClientConfig {
            host: from_url.host,
            port: from_url.port,
            token: from_url.token.or(base.token.clone()),
            ..base
        };
        Client::new(config).map(AnyClient::Node).map_err(ClientError::Invalid)
    }

    /// Whether `url` names a cluster rather than one server.
    pub fn is_cluster_url(url: &str) -> bool {
        url.starts_with(URL_SCHEME)
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, AnyClient::Cluster(_))
    }

    /// The token, pool and timeouts in use (for a cluster: for every node).
    pub fn config(&self) -> &ClientConfig {
        match self {
            AnyClient::Node(c) => c.config(),
            AnyClient::Cluster(c) => c.config(),
        }
    }

    /// `karma://host:port` or the cluster's `karma+etcd://` URL, for messages.
    pub fn target(&self) -> String {
        match self {
            AnyClient::Node(c) => format!("karma://{}", c.config().address()),
            AnyClient::Cluster(c) => c.url().to_owned(),
        }
    }

    /// Closes idle pooled connections (see [`Client::close_idle`]).
    pub fn close_idle(&self) {
        match self {
            AnyClient::Node(c) => c.close_idle(),
            AnyClient::Cluster(c) => c.close_idle(),
        }
    }

    /// Sends `{"v":2,"op":op, ...fields}` and returns the `response` value
    /// (see [`Client::request_value`]; a cluster routes it by op and keys).
    pub fn request_value(&self, op: &str, fields: Map<String, Value>) -> Result<Value> {
        match self {
            AnyClient::Node(c) => c.request_value(op, fields),
            AnyClient::Cluster(c) => c.request_value(op, fields),
        }
    }

    /// Sends one raw request line and returns the response line, success
    /// or error (see [`Client::request_line`]; a cluster routes it by op and
    /// keys and answers with the line one node would write).
    pub fn request_line(&self, json_line: &str) -> Result<String> {
        match self {
            AnyClient::Node(c) => c.request_line(json_line),
            AnyClient::Cluster(c) => c.request_line(json_line),
        }
    }

    /// Sends `{"v":2,"op":op, ...fields}` as a raw line and returns the
    /// whole response envelope, success or error (what
    /// [`karma_engine::Engine::request_envelope`] answers in process).
    pub fn request_envelope(&self, op: &str, fields: Map<String, Value>) -> Result<Value> {
        self.request_line_envelope(&line::request(op, fields))
    }

    /// Sends one raw request line and returns the whole response envelope,
    /// success or error; only transport and parse failures are `Err`.
    pub fn request_line_envelope(&self, json_line: &str) -> Result<Value> {
        match self {
            AnyClient::Node(c) => c.request(json_line),
            // A cluster answers with the line one node would write.
            AnyClient::Cluster(c) => wire::envelope(c.request_line(json_line)?.as_bytes()),
        }
    }

    /// Sends one raw request line and returns its `response` value; an
    /// error envelope becomes [`ClientError::Server`].
    pub fn request_line_value(&self, json_line: &str) -> Result<Value> {
        open_envelope(self.request_line_envelope(json_line)?).map_err(ClientError::Server)
    }
}

/// `impl Karma for AnyClient`: each method of the surface table
/// ([`karma_engine::for_each_method!`]) calls the same method of whichever
/// client this is.
macro_rules! any_delegates {
    ($( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*) => {
        impl Karma for AnyClient {
            type Error = ClientError;
            $(
                fn $m(&self, $($arg: karma_engine::arg_type!($kind)),*) -> Result<karma_engine::ret_type!($ret)> {
                    match self {
                        AnyClient::Node(c) => Karma::$m(c, $($arg),*),
                        AnyClient::Cluster(c) => Karma::$m(c.as_ref(), $($arg),*),
                    }
                }
            )*
        }
    };
}
karma_engine::for_each_method!(any_delegates);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_url_opens_a_node_client_keeping_the_rest_of_the_config() {
        let base = ClientConfig { token: Some("base".into()), pool_size: 3, ..ClientConfig::default() };
        let any = AnyClient::from_url("karma://db:9000", base).unwrap();
        assert!(!any.is_cluster());
        let c = any.config();
        assert_eq!((c.host.as_str(), c.port, c.token.as_deref(), c.pool_size), ("db", 9000, Some("base"), 3));
        assert_eq!(any.target(), "karma://db:9000");
        assert!(AnyClient::from_url("http://x", ClientConfig::default()).is_err());
    }

    #[test]
    fn a_cluster_url_needs_etcd_and_names_the_problem() {
        assert!(AnyClient::is_cluster_url("karma+etcd://h:1/c"));
        assert!(!AnyClient::is_cluster_url("karma://h:1"));
        let bad = AnyClient::from_url("karma+etcd://h:1", ClientConfig::default()).unwrap_err();
        assert!(bad.to_string().contains("invalid cluster URL"), "{bad}");
        // Nothing listens on loopback port 9 in the test environment.
        let unreachable = AnyClient::from_url("karma+etcd://127.0.0.1:9/c", ClientConfig::default()).unwrap_err();
        assert!(unreachable.is_transport(), "{unreachable}");
    }
}
