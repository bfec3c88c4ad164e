//! Structured logs (spec/server.md §8.5): one compact JSON object per event,
//!
//! ```text
//! {"timestamp":"2026-06-06T09:40:25Z","level":"info","event":"server.start","message":"version=0.4.0 port=8080"}
//! ```
//!
//! written to stderr. Events are ordinary `tracing` events with an `event`
//! field and a formatted message; any other fields are appended to the
//! message as `key=value`. With `--log=false` no subscriber is installed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON-lines logger when `enabled`.
pub fn init(enabled: bool) {
    if enabled {
        let _ = tracing_subscriber::registry().with(JsonLines.with_filter(LevelFilter::INFO)).try_init();
    }
}

/// The layer writing spec-format JSON lines to stderr.
pub struct JsonLines;

#[derive(Default)]
struct Fields {
    event: Option<String>,
    message: String,
    extra: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "event" => self.event = Some(value.to_string()),
            "message" => self.message = value.to_string(),
            name => {
                let _ = write!(self.extra, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "event" => self.event = Some(format!("{value:?}").trim_matches('"').to_string()),
            "message" => self.message = format!("{value:?}"),
            name => {
                let _ = write!(self.extra, " {name}={value:?}");
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut message = fields.message;
        message.push_str(&fields.extra);
        let message = message.trim_start().to_string();
        let line = format_line(unix_now(), *meta.level(), fields.event.as_deref().unwrap_or(meta.target()), &message);
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(line.as_bytes());
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One log line, newline included.
pub fn format_line(unix: u64, level: Level, event: &str, message: &str) -> String {
    let level = match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    };
    let mut line = format!(
        "{{\"timestamp\":{},\"level\":\"{level}\",\"event\":{}",
        json_string(&rfc3339(unix)),
        json_string(event)
    );
    if !message.is_empty() {
        let _ = write!(line, ",\"message\":{}", json_string(message));
    }
    line.push_str("}\n");
    line
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn rfc3339(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, (secs / 60) % 60, secs % 60)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_780_738_825), "2026-06-06T09:40:25Z");
    }

    #[test]
    fn line_format() {
        assert_eq!(
            format_line(1_780_738_825, Level::INFO, "server.start", "version=1.0.1 port=8080"),
            "{\"timestamp\":\"2026-06-06T09:40:25Z\",\"level\":\"info\",\"event\":\"server.start\",\"message\":\"version=1.0.1 port=8080\"}\n"
        );
        assert_eq!(
            format_line(0, Level::ERROR, "x", "a \"b\"\n"),
            "{\"timestamp\":\"1970-01-01T00:00:00Z\",\"level\":\"error\",\"event\":\"x\",\"message\":\"a \\\"b\\\"\\n\"}\n"
        );
    }
}
