//! The client's options by name: one row per setting a caller may give
//! besides where the server is (host and port), with its `KARMA_*`
//! variable, its kind and the field of [`ClientConfig`] it sets. The URL's
//! query ([`ClientConfig::from_url`]), the environment
//! ([`ClientConfig::from_env`]) and every binding's constructor options go
//! through this table, so an option is added (or renamed) here only.

use std::time::Duration;

use karma_engine::error::{Error, ErrorCode, Result};

use crate::config::{parse_bytes, parse_pool_size, parse_seconds, ClientConfig};
use crate::config::{
    ENV_CHECKOUT_TIMEOUT, ENV_CONNECT_TIMEOUT, ENV_POOL_SIZE, ENV_READ_TIMEOUT, ENV_TOKEN, ENV_WRITE_TIMEOUT,
};

/// What a client option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientOptionKind {
    /// A string; empty (or the host language's null) means none.
    Token,
    /// A whole number, at least 1.
    Count,
    /// A number of bytes; 0 means no limit.
    Bytes,
    /// A duration: seconds (fractions allowed) in URLs, the environment,
    /// Python and Ruby, milliseconds in JavaScript. Zero disables it.
    Duration,
}

/// A value for a client option, already converted by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOptionValue {
    Token(Option<String>),
    Count(usize),
    Bytes(usize),
    Duration(Duration),
}

/// The field of [`ClientConfig`] an option sets.
enum Field {
    Token(fn(&mut ClientConfig) -> &mut Option<String>),
    Count(fn(&mut ClientConfig) -> &mut usize),
    Bytes(fn(&mut ClientConfig) -> &mut usize),
    Duration(fn(&mut ClientConfig) -> &mut Duration),
}

/// One client option.
pub struct ClientOption {
    /// The URL's query parameter, and the keyword of Python and Ruby
    /// (`pool_size`); JavaScript spells it [`ClientOption::js_name`].
    pub name: &'static str,
    /// The environment variable [`ClientConfig::from_env`] reads, if any.
    pub env: Option<&'static str>,
    field: Field,
}

/// Every client option, in the order the environment is read.
pub static CLIENT_OPTIONS: &[ClientOption] = &[
    ClientOption { name: "token", env: Some(ENV_TOKEN), field: Field::Token(|c| &mut c.token) },
    ClientOption { name: "pool_size", env: Some(ENV_POOL_SIZE), field: Field::Count(|c| &mut c.pool_size) },
    ClientOption {
        name: "checkout_timeout",
        env: Some(ENV_CHECKOUT_TIMEOUT),
        field: Field::Duration(|c| &mut c.checkout_timeout),
    },
    ClientOption {
        name: "connect_timeout",
        env: Some(ENV_CONNECT_TIMEOUT),
        field: Field::Duration(|c| &mut c.connect_timeout),
    },
    ClientOption { name: "read_timeout", env: Some(ENV_READ_TIMEOUT), field: Field::Duration(|c| &mut c.read_timeout) },
    ClientOption {
        name: "write_timeout",
        env: Some(ENV_WRITE_TIMEOUT),
        field: Field::Duration(|c| &mut c.write_timeout),
    },
    ClientOption { name: "max_response_bytes", env: None, field: Field::Bytes(|c| &mut c.max_response_bytes) },
];

impl ClientOption {
    /// The option called `name`.
    pub fn find(name: &str) -> Option<&'static ClientOption> {
        CLIENT_OPTIONS.iter().find(|o| o.name == name)
    }

    pub fn kind(&self) -> ClientOptionKind {
        match self.field {
            Field::Token(_) => ClientOptionKind::Token,
            Field::Count(_) => ClientOptionKind::Count,
            Field::Bytes(_) => ClientOptionKind::Bytes,
            Field::Duration(_) => ClientOptionKind::Duration,
        }
    }

    /// The name in JavaScript: camelCase, and a duration, which JavaScript
    /// gives in milliseconds, says so (`checkoutTimeoutMs`).
    pub fn js_name(&self) -> String {
        let mut out = String::with_capacity(self.name.len() + 2);
        let mut words = self.name.split('_');
        out.extend(words.next());
        for word in words {
            let mut chars = word.chars();
            out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
            out.extend(chars);
        }
        if self.kind() == ClientOptionKind::Duration {
            out.push_str("Ms");
        }
        out
    }

    /// The default as configuration text (`5`, `0.25`: seconds for a
    /// duration), `None` when unset by default.
    pub fn default_text(&self) -> Option<String> {
        let mut config = ClientConfig::default();
        match self.field {
            Field::Token(field) => field(&mut config).clone(),
            Field::Count(field) | Field::Bytes(field) => Some(field(&mut config).to_string()),
            Field::Duration(field) => Some(field(&mut config).as_secs_f64().to_string()),
        }
    }

    /// A value from configuration text (a URL's query, a variable);
    /// `label` names it in the error (`pool_size`, `KARMA_POOL_SIZE`).
    pub fn parse_text(&self, label: &str, text: &str) -> Result<ClientOptionValue> {
        Ok(match self.kind() {
            ClientOptionKind::Token => ClientOptionValue::Token((!text.is_empty()).then(|| text.to_string())),
            ClientOptionKind::Count => ClientOptionValue::Count(parse_pool_size(label, text)?),
            ClientOptionKind::Bytes => ClientOptionValue::Bytes(parse_bytes(label, text)?),
            ClientOptionKind::Duration => ClientOptionValue::Duration(parse_seconds(label, text)?),
        })
    }

    /// Sets the option on `config`; a value of another kind is refused.
    /// An empty token means none.
    pub fn set(&self, config: &mut ClientConfig, value: ClientOptionValue) -> Result<()> {
        match (&self.field, value) {
            (Field::Token(field), ClientOptionValue::Token(t)) => *field(config) = t.filter(|t| !t.is_empty()),
            (Field::Count(field), ClientOptionValue::Count(n)) | (Field::Bytes(field), ClientOptionValue::Bytes(n)) => {
                *field(config) = n
            }
            (Field::Duration(field), ClientOptionValue::Duration(d)) => *field(config) = d,
            (_, other) => {
                return Err(Error::new(
                    ErrorCode::ValidationError,
                    format!("option {} takes a {:?} value, not {other:?}", self.name, self.kind()),
                ))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_each_spelling() {
        let names: Vec<(&str, Option<&str>, String)> =
            CLIENT_OPTIONS.iter().map(|o| (o.name, o.env, o.js_name())).collect();
        assert!(names.contains(&("pool_size", Some("KARMA_POOL_SIZE"), "poolSize".into())));
        assert!(names.contains(&("checkout_timeout", Some("KARMA_CHECKOUT_TIMEOUT"), "checkoutTimeoutMs".into())));
        assert!(names.contains(&("token", Some("KARMA_TOKEN"), "token".into())));
        assert!(names.contains(&("max_response_bytes", None, "maxResponseBytes".into())));
    }

    #[test]
    fn values_set_their_field_and_defaults_read_back() {
        let mut c = ClientConfig::default();
        let read = ClientOption::find("read_timeout").unwrap();
        read.set(&mut c, read.parse_text("read_timeout", "0.25").unwrap()).unwrap();
        assert_eq!(c.read_timeout, Duration::from_millis(250));
        let token = ClientOption::find("token").unwrap();
        token.set(&mut c, ClientOptionValue::Token(Some(String::new()))).unwrap();
        assert_eq!(c.token, None);
        assert!(token.set(&mut c, ClientOptionValue::Count(1)).is_err());
        for option in CLIENT_OPTIONS {
            let mut c = ClientConfig::default();
            if let Some(text) = option.default_text() {
                option.set(&mut c, option.parse_text(option.name, &text).unwrap()).unwrap();
            }
            assert_eq!(c, ClientConfig::default(), "{}", option.name);
        }
    }
}
