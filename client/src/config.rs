//! [`ClientConfig`]: where the server is and how patient the client is.
//!
//! Three ways to build one: the struct literal (with `..ClientConfig::default()`),
//! a URL ([`ClientConfig::from_url`]) and the environment
//! ([`ClientConfig::from_env`]). Invalid values are a
//! [`karma_engine::Error`] with [`ErrorCode::ValidationError`] that names the offending
//! variable or URL part.
//!
//! Every timeout uses the server's convention: [`Duration::ZERO`] disables it
//! (block without limit).

use std::fmt;
use std::time::Duration;

use karma_engine::error::{Error, ErrorCode, Result};

use crate::options::{ClientOption, CLIENT_OPTIONS};

/// The port `karma` listens on by default.
pub const DEFAULT_PORT: u16 = 8080;

/// Environment variables read by [`ClientConfig::from_env`].
pub const ENV_URL: &str = "KARMA_URL";
pub const ENV_HOST: &str = "KARMA_HOST";
pub const ENV_PORT: &str = "KARMA_PORT";
pub const ENV_TOKEN: &str = "KARMA_TOKEN";
pub const ENV_POOL_SIZE: &str = "KARMA_POOL_SIZE";
pub const ENV_CHECKOUT_TIMEOUT: &str = "KARMA_CHECKOUT_TIMEOUT";
pub const ENV_CONNECT_TIMEOUT: &str = "KARMA_CONNECT_TIMEOUT";
pub const ENV_READ_TIMEOUT: &str = "KARMA_READ_TIMEOUT";
pub const ENV_WRITE_TIMEOUT: &str = "KARMA_WRITE_TIMEOUT";

/// How a [`super::Client`] reaches its server.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Sent as `"token"` in every request when set (spec/protocol.md §6).
    pub token: Option<String>,
    /// Most open connections; at least 1.
    pub pool_size: usize,
    /// How long a call waits for a free pooled connection before
    /// [`super::ClientError::PoolTimeout`].
    pub checkout_timeout: Duration,
    /// TCP connect timeout (per resolved address).
    pub connect_timeout: Duration,
    /// Longest wait for response bytes (per socket read).
    pub read_timeout: Duration,
    /// Longest a socket write may block.
    pub write_timeout: Duration,
    /// Longest response line accepted (without its `\n`); 0 = no limit. A
    /// longer answer fails the call ([`super::ClientError::is_response_too_large`])
    /// and its connection is closed after reading at most this many bytes
    /// of it, so a misbehaving server cannot make the client buffer without
    /// bound.
    pub max_response_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            host: "127.0.0.1".to_string(),
            port: DEFAULT_PORT,
            token: None,
            pool_size: 5,
            checkout_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_response_bytes: 0,
        }
    }
}

/// The token is never printed.
impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("pool_size", &self.pool_size)
            .field("checkout_timeout", &self.checkout_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::ValidationError, message)
}

impl ClientConfig {
    /// A config for `host:port` with every other setting at its default.
    pub fn new(host: impl Into<String>, port: u16) -> ClientConfig {
        ClientConfig { host: host.into(), port, ..ClientConfig::default() }
    }

    /// Parses `karma://host:port` or `tcp://host:port` (port defaults to
    /// 8080, IPv6 hosts in brackets: `karma://[::1]:8080`). An optional query
    /// sets the client options ([`CLIENT_OPTIONS`]) by name:
    /// `?token=..&pool_size=..&checkout_timeout=..&connect_timeout=..&...`
    /// (timeouts in seconds, fractions allowed; `%XX` escapes are decoded). Unknown query
    /// parameters are refused, so a typo does not go unnoticed.
    pub fn from_url(url: &str) -> Result<ClientConfig> {
        let mut config = ClientConfig::default();
        config.apply_url(url)?;
        Ok(config)
    }

    /// Reads the process environment; see [`ClientConfig::from_env_with`].
    pub fn from_env() -> Result<ClientConfig> {
        ClientConfig::from_env_with(|name| std::env::var(name).ok())
    }

    /// Builds a config from environment-style variables, looked up through
    /// `get` (empty values count as unset):
    ///
    /// * `KARMA_URL` (a [`ClientConfig::from_url`] URL) wins over
    ///   `KARMA_HOST` / `KARMA_PORT`;
    /// * then the variable of each client option ([`CLIENT_OPTIONS`]:
    ///   `KARMA_TOKEN`, `KARMA_POOL_SIZE`, `KARMA_CHECKOUT_TIMEOUT`, ...;
    ///   timeouts in seconds, fractions allowed, 0 disables) overrides the
    ///   defaults and any value given in the URL's query.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Result<ClientConfig> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut config = ClientConfig::default();
        if let Some(url) = get(ENV_URL) {
            config.apply_url(url.trim()).map_err(|e| invalid(format!("{ENV_URL}: {}", e.message())))?;
        } else {
            if let Some(host) = get(ENV_HOST) {
                config.host = host.trim().to_string();
            }
            if let Some(port) = get(ENV_PORT) {
                config.port = parse_port(ENV_PORT, &port)?;
            }
        }
        for option in CLIENT_OPTIONS {
            let Some(env) = option.env else { continue };
            if let Some(v) = get(env) {
                option.set(&mut config, option.parse_text(env, &v)?)?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what a [`super::Client`] needs: a host and a pool of at least one.
    pub fn validate(&self) -> Result<()> {
        if self.host.is_empty() {
            return Err(invalid("Karma client host must not be empty"));
        }
        if self.pool_size == 0 {
            return Err(invalid("Karma client pool_size must be at least 1"));
        }
        Ok(())
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn apply_url(&mut self, url: &str) -> Result<()> {
        let bad = |why: &str| invalid(format!("Invalid Karma URL {url:?}: {why}"));
        let rest = url
            .strip_prefix("karma://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| bad("expected karma://host:port or tcp://host:port"))?;
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains('/') {
            return Err(bad("a path is not allowed"));
        }
        if authority.contains('@') {
            return Err(bad("user info is not supported; pass the token as ?token="));
        }
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let (host, tail) = after.split_once(']').ok_or_else(|| bad("unterminated [ in IPv6 host"))?;
            match tail {
                "" => (host, None),
                _ => (host, Some(tail.strip_prefix(':').ok_or_else(|| bad("expected :port after ]"))?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                Some(_) => return Err(bad("IPv6 hosts must be written in brackets")),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("host is missing"));
        }
        self.host = host.to_string();
        if let Some(port) = port {
            self.port = parse_port("port", port).map_err(|e| bad(e.message()))?;
        }
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(raw).ok_or_else(|| bad(&format!("bad %-escape in {name}")))?;
            let value = value.as_str();
            let r = match ClientOption::find(name) {
                Some(option) => option.parse_text(name, value).and_then(|v| option.set(self, v)),
                None => Err(invalid(format!("unknown query parameter {name:?}"))),
            };
            r.map_err(|e| bad(e.message()))?;
        }
        Ok(())
    }
}

fn parse_port(name: &str, value: &str) -> Result<u16> {
    match value.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(invalid(format!("{name} must be a port number between 1 and 65535, got {value:?}"))),
    }
}

pub(crate) fn parse_pool_size(name: &str, value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(format!("{name} must be a positive integer, got {value:?}"))),
    }
}

pub(crate) fn parse_bytes(name: &str, value: &str) -> Result<usize> {
    value.trim().parse::<usize>().map_err(|_| invalid(format!("{name} must be a number of bytes, got {value:?}")))
}

pub(crate) fn parse_seconds(name: &str, value: &str) -> Result<Duration> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| invalid(format!("{name} must be a non-negative number of seconds, got {value:?}")))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn urls() {
        let c = ClientConfig::from_url("karma://db.example:9000").unwrap();
        assert_eq!((c.host.as_str(), c.port, c.pool_size), ("db.example", 9000, 5));
        let c = ClientConfig::from_url("tcp://10.0.0.1").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("10.0.0.1", 8080));
        let c = ClientConfig::from_url("karma://[::1]:7000/").unwrap();
        assert_eq!((c.host.as_str(), c.port, c.address().as_str()), ("::1", 7000, "[::1]:7000"));
        let c = ClientConfig::from_url(
            "karma://h:1?token=a%2Fb+c&pool_size=2&checkout_timeout=0.25&connect_timeout=2&read_timeout=0&write_timeout=1.5&max_response_bytes=4096",
        )
        .unwrap();
        assert_eq!(c.max_response_bytes, 4096);
        assert_eq!(c.token.as_deref(), Some("a/b c"));
        assert_eq!(c.pool_size, 2);
        assert_eq!(c.checkout_timeout, Duration::from_millis(250));
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.read_timeout, Duration::ZERO);
        assert_eq!(c.write_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn bad_urls_are_validation_errors() {
        for url in [
            "http://h:1",
            "karma://",
            "karma://h:0",
            "karma://h:70000",
            "karma://h:x",
            "karma://h/db",
            "karma://u@h:1",
            "karma://::1:80",
            "karma://h:1?pool_size=0",
            "karma://h:1?read_timeout=-1",
            "karma://h:1?nope=1",
            "karma://h:1?token=%zz",
            "karma://h:1?max_response_bytes=-1",
        ] {
            let err = ClientConfig::from_url(url).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationError, "{url}");
            assert!(err.message().contains("Invalid Karma URL"), "{url}: {err}");
        }
    }

    #[test]
    fn environment() {
        let c = ClientConfig::from_env_with(env(&[])).unwrap();
        assert_eq!(c, ClientConfig::default());
        let c = ClientConfig::from_env_with(env(&[
            ("KARMA_HOST", "karma.internal"),
            ("KARMA_PORT", "9001"),
            ("KARMA_TOKEN", "s3cret"),
            ("KARMA_POOL_SIZE", "12"),
            ("KARMA_CHECKOUT_TIMEOUT", "0.5"),
            ("KARMA_CONNECT_TIMEOUT", "0.1"),
            ("KARMA_READ_TIMEOUT", "2"),
            ("KARMA_WRITE_TIMEOUT", "3.5"),
        ]))
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.token.as_deref(), c.pool_size),
            ("karma.internal", 9001, Some("s3cret"), 12)
        );
        assert_eq!(c.checkout_timeout, Duration::from_millis(500));
        assert_eq!(c.connect_timeout, Duration::from_millis(100));
        assert_eq!(c.read_timeout, Duration::from_secs(2));
        assert_eq!(c.write_timeout, Duration::from_millis(3500));
        assert!(!format!("{c:?}").contains("s3cret"));

        // KARMA_URL wins over KARMA_HOST/PORT; KARMA_TOKEN wins over ?token=.
        let c = ClientConfig::from_env_with(env(&[
            ("KARMA_URL", "karma://u.example:1234?token=fromurl&pool_size=3"),
            ("KARMA_HOST", "ignored"),
            ("KARMA_PORT", "1"),
            ("KARMA_TOKEN", "fromenv"),
            ("KARMA_POOL_SIZE", ""),
        ]))
        .unwrap();
        assert_eq!((c.host.as_str(), c.port, c.token.as_deref(), c.pool_size), ("u.example", 1234, Some("fromenv"), 3));
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        for (name, value) in [
            ("KARMA_PORT", "eighty"),
            ("KARMA_POOL_SIZE", "0"),
            ("KARMA_POOL_SIZE", "-1"),
            ("KARMA_READ_TIMEOUT", "soon"),
            ("KARMA_WRITE_TIMEOUT", "NaN"),
            ("KARMA_CONNECT_TIMEOUT", "-0.5"),
            ("KARMA_URL", "redis://x"),
        ] {
            let err = ClientConfig::from_env_with(env(&[(name, value)])).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationError);
            assert!(err.message().contains(name), "{name}: {err}");
        }
    }
}
