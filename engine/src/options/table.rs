//! The engine's options by name: one row per option, with how a value is
//! given, its one error text and what it sets. Every way of configuring an
//! engine goes through this table: the server's flags and environment
//! (as text, [`Options::set_text`]) and each binding's keyword arguments
//! (typed values, [`Options::set`]). Their defaults are
//! [`Options::default`]'s, rendered by [`EngineOption::default_text`].

use std::fmt;
use std::time::Duration;

use super::{FsyncPolicy, Options, Role};

/// A value for an option, as a binding or the server hands it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionValue<'a> {
    Bool(bool),
    UInt(u64),
    /// A string value of the host language.
    Str(&'a str),
    /// The host language's null (`None`, `nil`, `null`).
    Null,
    /// Configuration text (a flag or an environment variable): parsed the
    /// way the option's kind says (`true`, `67108864`, `everysec`, ...).
    Text(&'a str),
    /// Any other value of the host language (a float, a list, a negative
    /// number): refused with the option's type error.
    Other,
}

/// What an option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// `true` or `false`.
    Bool,
    /// A non-negative integer.
    UInt,
    /// `"always"`, `"everysec"`, `"never"`, or Karma 1.0's `true`/`false`.
    Fsync,
    /// A string; empty or null means none.
    Token,
    /// `"master"` or `"slave"`; null means master.
    Role,
}

impl OptionKind {
    /// What a value of this kind must be, for error messages.
    pub const fn expected(self) -> &'static str {
        match self {
            OptionKind::Bool => "true or false",
            OptionKind::UInt => "an integer from 0 to 2**64-1",
            OptionKind::Fsync => "always, everysec or never (or true/false)",
            OptionKind::Token => "a string or null",
            OptionKind::Role => "master or slave",
        }
    }
}

/// Why an option was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionError {
    /// No option has this name.
    Unknown(String),
    /// The value has the wrong type for the option (a binding raises its
    /// language's type error).
    Type { name: &'static str, kind: OptionKind },
    /// The value has the right type but is not one the option takes.
    Value { name: &'static str, kind: OptionKind, got: String },
}

impl OptionError {
    /// The message, naming the option as the caller spells it (`walFsync`
    /// in JavaScript, `wal_fsync` elsewhere).
    pub fn message(&self, spelled: &str) -> String {
        match self {
            OptionError::Unknown(_) => format!("unknown option {spelled:?}"),
            OptionError::Type { kind, .. } => format!("option {spelled} must be {}", kind.expected()),
            OptionError::Value { kind, got, .. } => format!("option {spelled} must be {}, got {got}", kind.expected()),
        }
    }

    /// Whether the caller should raise its type error (wrong type, unknown
    /// name) rather than a validation error (a value out of range).
    pub fn is_type_error(&self) -> bool {
        !matches!(self, OptionError::Value { .. })
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            OptionError::Unknown(name) => name.as_str(),
            OptionError::Type { name, .. } | OptionError::Value { name, .. } => name,
        };
        f.write_str(&self.message(name))
    }
}

impl std::error::Error for OptionError {}

/// One engine option.
pub struct EngineOption {
    /// The name: the server's flag with `_` for `-` (`wal_fsync` for
    /// `--wal-fsync`); JavaScript spells it in camelCase.
    pub name: &'static str,
    pub kind: OptionKind,
    set: fn(&mut Options, Parsed),
    get: fn(&Options) -> Option<String>,
}

/// A value checked against its option's kind.
enum Parsed {
    Bool(bool),
    UInt(u64),
    Fsync(FsyncPolicy),
    Token(Option<String>),
    Role(Role),
}

impl EngineOption {
    /// The option called `name`.
    pub fn find(name: &str) -> Option<&'static EngineOption> {
        ENGINE_OPTIONS.iter().find(|o| o.name == name)
    }

    /// The name in camelCase (`walFsync`), as JavaScript spells it.
    pub fn camel_name(&self) -> String {
        let mut out = String::with_capacity(self.name.len());
        let mut upper = false;
        for c in self.name.chars() {
            match c {
                '_' => upper = true,
                c if upper => {
                    out.push(c.to_ascii_uppercase());
                    upper = false;
                }
                c => out.push(c),
            }
        }
        out
    }

    /// The default as configuration text (`67108864`, `always`), `None` when
    /// the option is unset by default.
    pub fn default_text(&self) -> Option<String> {
        (self.get)(&Options::default())
    }

    fn parse(&self, value: OptionValue<'_>) -> Result<Parsed, OptionError> {
        let (name, kind) = (self.name, self.kind);
        let type_error = || OptionError::Type { name, kind };
        let value_error = |got: String| OptionError::Value { name, kind, got };
        Ok(match (kind, value) {
            (OptionKind::Bool, OptionValue::Bool(b)) => Parsed::Bool(b),
            (OptionKind::Bool, OptionValue::Text(t)) => match t {
                "true" => Parsed::Bool(true),
                "false" => Parsed::Bool(false),
                _ => return Err(value_error(format!("{t:?}"))),
            },
            (OptionKind::UInt, OptionValue::UInt(n)) => Parsed::UInt(n),
            (OptionKind::UInt, OptionValue::Text(t)) => {
                Parsed::UInt(t.parse().map_err(|_| value_error(format!("{t:?}")))?)
            }
            (OptionKind::Fsync, OptionValue::Bool(on)) => {
                Parsed::Fsync(if on { FsyncPolicy::Always } else { FsyncPolicy::Never })
            }
            (OptionKind::Fsync, OptionValue::Str(w) | OptionValue::Text(w)) => {
                Parsed::Fsync(FsyncPolicy::parse(w).ok_or_else(|| value_error(format!("{w:?}")))?)
            }
            (OptionKind::Token, OptionValue::Str(t) | OptionValue::Text(t)) => {
                Parsed::Token((!t.is_empty()).then(|| t.to_string()))
            }
            (OptionKind::Token, OptionValue::Null) => Parsed::Token(None),
            (OptionKind::Role, OptionValue::Null) => Parsed::Role(Role::Master),
            (OptionKind::Role, OptionValue::Str(r) | OptionValue::Text(r)) => match r {
                "master" => Parsed::Role(Role::Master),
                "slave" => Parsed::Role(Role::Slave),
                _ => return Err(value_error(format!("{r:?}"))),
            },
            _ => return Err(type_error()),
        })
    }
}

impl Options {
    /// Sets the option called `name` (a binding's keyword argument).
    pub fn set(&mut self, name: &str, value: OptionValue<'_>) -> Result<(), OptionError> {
        let option = EngineOption::find(name).ok_or_else(|| OptionError::Unknown(name.to_string()))?;
        (option.set)(self, option.parse(value)?);
        Ok(())
    }

    /// Sets the option called `name` from configuration text.
    pub fn set_text(&mut self, name: &str, text: &str) -> Result<(), OptionError> {
        self.set(name, OptionValue::Text(text))
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn millis(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Declares the rows of [`ENGINE_OPTIONS`]: `name: Kind, |options, value|
/// what setting it does, |options| its current value as text`. The setter
/// receives the value already checked against the kind.
macro_rules! engine_options {
    ($( $name:ident: $kind:ident, |$o:ident, $v:ident| $set:expr, |$g:ident| $get:expr; )*) => {
        /// Every engine option, in the order of the server's `--help`.
        pub static ENGINE_OPTIONS: &[EngineOption] = &[$(
            EngineOption {
                name: stringify!($name),
                kind: OptionKind::$kind,
                set: |$o, parsed| {
                    let engine_options!(@bind $kind $v) = parsed else { return };
                    $set;
                },
                get: |$g| $get,
            },
        )*];
    };
    (@bind Bool $v:ident) => { Parsed::Bool($v) };
    (@bind UInt $v:ident) => { Parsed::UInt($v) };
    (@bind Fsync $v:ident) => { Parsed::Fsync($v) };
    (@bind Token $v:ident) => { Parsed::Token($v) };
    (@bind Role $v:ident) => { Parsed::Role($v) };
}

engine_options! {
    restore: Bool, |o, v| o.restore = v, |o| Some(o.restore.to_string());
    wal: Bool, |o, v| o.wal = v, |o| Some(o.wal.to_string());
    wal_fsync: Fsync, |o, v| o.wal_fsync = v, |o| Some(o.wal_fsync.as_str().to_string());
    wal_segment_bytes: UInt, |o, v| o.wal_segment_bytes = v, |o| Some(o.wal_segment_bytes.to_string());
    wal_batch_size: UInt, |o, v| o.wal_batch_size = to_usize(v).max(1), |o| Some(o.wal_batch_size.to_string());
    wal_batch_wait_us: UInt, |o, v| o.wal_batch_wait = Duration::from_micros(v),
        |o| Some(o.wal_batch_wait.as_micros().to_string());
    max_request_bytes: UInt, |o, v| o.max_request_bytes = to_usize(v), |o| Some(o.max_request_bytes.to_string());
    max_response_bytes: UInt, |o, v| o.max_response_bytes = to_usize(v), |o| Some(o.max_response_bytes.to_string());
    query_timeout_ms: UInt, |o, v| o.query_timeout = (v > 0).then(|| Duration::from_millis(v)),
        |o| Some(millis(o.query_timeout).to_string());
    auth_token: Token, |o, v| o.auth_token = v, |o| o.auth_token.clone();
    read_auth_token: Token, |o, v| o.read_auth_token = v, |o| o.read_auth_token.clone();
    role: Role, |o, v| o.role = v, |o| Some(o.role.as_str().to_string());
    dump_retention_per_tree: UInt, |o, v| o.dump_retention_per_tree = to_usize(v),
        |o| Some(o.dump_retention_per_tree.to_string());
    idempotency_max_records: UInt, |o, v| o.idempotency_max_records = to_usize(v),
        |o| Some(o.idempotency_max_records.to_string());
    idempotency_max_age_seconds: UInt, |o, v| o.idempotency_max_age_seconds = v,
        |o| Some(o.idempotency_max_age_seconds.to_string());
    ingest_max_streams: UInt, |o, v| o.ingest_max_streams = to_usize(v).max(1),
        |o| Some(o.ingest_max_streams.to_string());
    ingest_max_staged_items: UInt, |o, v| o.ingest_max_staged_items = v.max(1),
        |o| Some(o.ingest_max_staged_items.to_string());
    ingest_stream_ttl_seconds: UInt, |o, v| o.ingest_stream_ttl_seconds = v,
        |o| Some(o.ingest_stream_ttl_seconds.to_string());
    recovery_max_sources: UInt, |o, v| o.recovery_max_sources = to_usize(v).max(1),
        |o| Some(o.recovery_max_sources.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_reads_back_as_itself() {
        for option in ENGINE_OPTIONS {
            let mut o = Options::default();
            if let Some(text) = option.default_text() {
                o.set_text(option.name, &text).unwrap_or_else(|e| panic!("{}: {e}", option.name));
                assert_eq!((option.get)(&o), Some(text), "{}", option.name);
            }
        }
    }

    #[test]
    fn typed_values_set_the_engine_fields() {
        let mut o = Options::default();
        o.set("wal_fsync", OptionValue::Str("everysec")).unwrap();
        assert_eq!(o.wal_fsync, FsyncPolicy::EverySec);
        o.set("wal_fsync", OptionValue::Bool(false)).unwrap();
        assert_eq!(o.wal_fsync, FsyncPolicy::Never);
        o.set("wal_batch_size", OptionValue::UInt(0)).unwrap();
        assert_eq!(o.wal_batch_size, 1);
        o.set("query_timeout_ms", OptionValue::UInt(0)).unwrap();
        assert_eq!(o.query_timeout, None);
        o.set("wal_batch_wait_us", OptionValue::UInt(250)).unwrap();
        assert_eq!(o.wal_batch_wait, Duration::from_micros(250));
        o.set("auth_token", OptionValue::Str("")).unwrap();
        assert_eq!(o.auth_token, None);
        o.set("read_auth_token", OptionValue::Str("r")).unwrap();
        assert_eq!(o.read_auth_token.as_deref(), Some("r"));
        o.set("role", OptionValue::Str("slave")).unwrap();
        assert_eq!(o.role, Role::Slave);
        o.set("role", OptionValue::Null).unwrap();
        assert_eq!(o.role, Role::Master);
        o.set_text("restore", "false").unwrap();
        assert!(!o.restore);
    }

    #[test]
    fn refusals_say_what_the_option_takes() {
        let mut o = Options::default();
        let e = o.set("role", OptionValue::Str("primary")).unwrap_err();
        assert!(!e.is_type_error());
        assert_eq!(e.to_string(), r#"option role must be master or slave, got "primary""#);
        let e = o.set("wal_fsync", OptionValue::Str("sometimes")).unwrap_err();
        assert_eq!(
            e.message("walFsync"),
            r#"option walFsync must be always, everysec or never (or true/false), got "sometimes""#
        );
        let e = o.set("wal", OptionValue::UInt(1)).unwrap_err();
        assert!(e.is_type_error());
        assert_eq!(e.to_string(), "option wal must be true or false");
        // Typed values are not parsed: a string is not a number.
        assert!(o.set("wal_segment_bytes", OptionValue::Str("5")).unwrap_err().is_type_error());
        assert_eq!(o.set("valeu", OptionValue::UInt(1)).unwrap_err(), OptionError::Unknown("valeu".into()));
        assert!(!o.set_text("max_request_bytes", "-1").unwrap_err().is_type_error());
    }

    #[test]
    fn camel_case_names() {
        let camel: Vec<String> = ENGINE_OPTIONS.iter().map(EngineOption::camel_name).collect();
        assert!(camel.contains(&"walFsync".to_string()));
        assert!(camel.contains(&"idempotencyMaxAgeSeconds".to_string()));
        assert!(camel.contains(&"restore".to_string()));
    }
}
