//! Turns what an operator types into one request line: either raw JSON
//! (sent as is) or `op name=value ...`, where each value is read according
//! to the op's field table ([`Op::fields`]), so `bucket=2026-03-01`,
//! `keys=1,2,3` and `range=20260301..20260331` mean what they look like.

use karma_engine::protocol::{Field, FieldKind, Op};
use serde_json::Value;

/// Fields every op may carry besides its own (spec/protocol.md §12).
const COMMON_FIELDS: &[Field] = &[
    Field { name: "idempotency_key", kind: FieldKind::Text, required: false },
    Field { name: "fingerprint", kind: FieldKind::Text, required: false },
    Field { name: "idempotency_created_at_unix", kind: FieldKind::Uint, required: false },
];

/// Builds the request line for `words` (the first is the op, or the whole
/// request as JSON).
pub fn build(words: &[String]) -> Result<String, String> {
    let Some(first) = words.first() else {
        return Err("nothing to send".to_string());
    };
    if first.trim_start().starts_with('{') {
        return raw_json(&words.join(" "));
    }
    let op = Op::from_name(first).ok_or_else(|| format!("unknown op {first:?} (`help` lists the ops)"))?;
    let mut line = format!("{{\"v\":2,\"op\":{}", quote(first));
    for word in &words[1..] {
        let (name, text) = word.split_once('=').ok_or_else(|| format!("expected name=value, got {word:?}"))?;
        let field = find_field(op, name)?;
        let value = parse_value(field, text)?;
        line.push_str(&format!(",{}:{}", quote(name), value));
    }
    line.push('}');
    Ok(line)
}

fn raw_json(text: &str) -> Result<String, String> {
    let text = text.trim();
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) => Ok(text.replace(['\n', '\r'], " ")),
        Ok(_) => Err("a JSON request must be an object".to_string()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

fn find_field(op: Op, name: &str) -> Result<&'static Field, String> {
    // `tree` is the old name of `series`; `date` of the write bucket.
    let lookup = match name {
        "tree" => "series",
        "date" if op.fields().iter().any(|f| f.name == "bucket") => "bucket",
        other => other,
    };
    op.fields().iter().chain(COMMON_FIELDS).find(|f| f.name == lookup).ok_or_else(|| {
        let names: Vec<&str> = op.fields().iter().map(|f| f.name).collect();
        match names.is_empty() {
            true => format!("{} takes no field {name:?}", op.name()),
            false => format!("{} has no field {name:?} (fields: {})", op.name(), names.join(", ")),
        }
    })
}

fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

/// The JSON text of one field value.
fn parse_value(field: &Field, text: &str) -> Result<String, String> {
    let bad = |what: &str| format!("{} must be {what}, got {text:?}", field.name);
    if text.starts_with(['[', '{']) && !matches!(field.kind, FieldKind::Str) {
        return serde_json::from_str::<Value>(text).map(|v| v.to_string()).map_err(|e| bad(&format!("JSON ({e})")));
    }
    match field.kind {
        FieldKind::Str => Ok(quote(text)),
        FieldKind::Uint => integer(text, false).ok_or_else(|| bad("an unsigned integer")),
        FieldKind::Int => integer(text, true).ok_or_else(|| bad("an integer")),
        FieldKind::Bucket => bucket(text).ok_or_else(|| bad("a bucket (YYYYMMDD or YYYY-MM-DD)")),
        FieldKind::Text | FieldKind::Timestamp => Ok(integer(text, false).unwrap_or_else(|| quote(text))),
        FieldKind::Keys => {
            let keys: Option<Vec<String>> = text.split(',').map(|k| integer(k.trim(), false)).collect();
            keys.map(|k| format!("[{}]", k.join(","))).ok_or_else(|| bad("keys like 1,2,3"))
        }
        FieldKind::Items => {
            let items: Option<Vec<String>> = text
                .split(',')
                .map(|item| {
                    let parts: Vec<&str> = item.split(':').collect();
                    match parts.as_slice() {
                        [k, b, v] => Some(format!("[{},{},{}]", integer(k, false)?, bucket(b)?, integer(v, false)?)),
                        _ => None,
                    }
                })
                .collect();
            items.map(|i| format!("[{}]", i.join(","))).ok_or_else(|| bad("items like key:bucket:value,..."))
        }
        FieldKind::SeriesKeys => {
            let items: Option<Vec<String>> = text
                .split(',')
                .map(|item| {
                    let (series, key) = item.rsplit_once(':')?;
                    Some(format!("{{\"series\":{},\"key\":{}}}", quote(series), integer(key, false)?))
                })
                .collect();
            items.map(|i| format!("[{}]", i.join(","))).ok_or_else(|| bad("items like series:key,..."))
        }
        FieldKind::Range => {
            let (from, to) = text.split_once("..").ok_or_else(|| bad("a range like 20260301..20260331"))?;
            match (bucket(from), bucket(to)) {
                (Some(from), Some(to)) => Ok(format!("{{\"from\":{from},\"to\":{to}}}")),
                _ => Err(bad("a range like 20260301..20260331")),
            }
        }
    }
}

/// A JSON integer literal; the server judges the range.
fn integer(text: &str, signed: bool) -> Option<String> {
    let digits = match text.strip_prefix('-') {
        Some(rest) if signed => rest,
        _ => text,
    };
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| text.to_string())
}

/// `YYYYMMDD` or `YYYY-MM-DD` as the integer bucket.
fn bucket(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let dashed = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    let digits: String = if dashed { text.replace('-', "") } else { text.to_string() };
    integer(&digits, false)
}

/// The `help` text: every op with its fields, or one op in detail.
pub fn help(topic: Option<&str>) -> String {
    let describe = |op: Op| {
        let fields: Vec<String> =
            op.fields().iter().map(|f| if f.required { f.name.to_string() } else { format!("[{}]", f.name) }).collect();
        format!("{:<34} {}", op.name(), fields.join(" "))
    };
    match topic.map(|t| (t, Op::from_name(t))) {
        None => {
            let mut out = String::from("ops (fields in [] are optional; `help OP` for value formats):\n");
            for &op in Op::ALL {
                out.push_str(&format!("  {}\n", describe(op)));
            }
            out.push_str(
                "\nsend: OP name=value ...   or a raw JSON request line\n\
                 values: bucket=2026-03-01  keys=1,2,3  range=20260301..20260331\n\
                 \x20       items=key:bucket:value,...  (multi_sum: series:key,...)  or any JSON value\n\
                 quit with `quit`, `exit` or Ctrl-D\n",
            );
            out
        }
        Some((_, Some(op))) => {
            let mut out = format!("{}\n", describe(op));
            for f in op.fields() {
                let need = if f.required { "required" } else { "optional" };
                out.push_str(&format!("  {:<16} {need:<9} {}\n", f.name, kind_help(f.kind)));
            }
            out
        }
        Some((t, None)) => format!("unknown op {t:?}; `help` lists the ops\n"),
    }
}

fn kind_help(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Str => "string",
        FieldKind::Uint => "unsigned integer",
        FieldKind::Int => "integer",
        FieldKind::Bucket => "bucket: 20260301 or 2026-03-01",
        FieldKind::Text => "string or integer",
        FieldKind::Timestamp => "unix seconds or RFC 3339 timestamp",
        FieldKind::Keys => "keys: 1,2,3 or [1,2,3]",
        FieldKind::Items => "items: key:bucket:value,... or [[k,b,v],...]",
        FieldKind::SeriesKeys => "items: series:key,... or [{\"series\":..,\"key\":..}]",
        FieldKind::Range => "range: 20260301..20260331 or {\"from\":..,\"to\":..}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(words: &[&str]) -> Result<String, String> {
        build(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn words_become_typed_fields() {
        assert_eq!(line(&["system.ping"]).unwrap(), r#"{"v":2,"op":"system.ping"}"#);
        assert_eq!(
            line(&["counter.increment", "series=api", "key=42", "bucket=2026-03-01", "value=5"]).unwrap(),
            r#"{"v":2,"op":"counter.increment","series":"api","key":42,"bucket":20260301,"value":5}"#
        );
        assert_eq!(
            line(&["counter.batch_sum", "tree=7", "keys=1,2", "range=2026-03-01..20260302"]).unwrap(),
            r#"{"v":2,"op":"counter.batch_sum","tree":"7","keys":[1,2],"range":{"from":20260301,"to":20260302}}"#
        );
        assert_eq!(
            line(&["series.batch_add", "series=a", "items=1:20260101:2,3:2026-01-02:4"]).unwrap(),
            r#"{"v":2,"op":"series.batch_add","series":"a","items":[[1,20260101,2],[3,20260102,4]]}"#
        );
        assert_eq!(
            line(&["counter.multi_sum", "items=a:1,b:c:2"]).unwrap(),
            r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"a","key":1},{"series":"b:c","key":2}]}"#
        );
        assert_eq!(
            line(&["recovery.checkpoint", "source=x", "offset=12", "event_id=e-1", "idempotency_key=k"]).unwrap(),
            r#"{"v":2,"op":"recovery.checkpoint","source":"x","offset":12,"event_id":"e-1","idempotency_key":"k"}"#
        );
        assert_eq!(
            line(&["counter.batch_sum", "series=s", "keys=[5]", r#"range={"from":1,"to":2}"#]).unwrap(),
            r#"{"v":2,"op":"counter.batch_sum","series":"s","keys":[5],"range":{"from":1,"to":2}}"#
        );
        assert_eq!(
            line(&["reconciliation.report", "checked_points=-1", "mismatch_count=0"]).unwrap(),
            r#"{"v":2,"op":"reconciliation.report","checked_points":-1,"mismatch_count":0}"#
        );
    }

    #[test]
    fn raw_json_is_sent_as_written() {
        let raw = r#"{"v":2, "op":"counter.sum","key":99999999999999999999}"#;
        assert_eq!(line(&[raw]).unwrap(), raw);
        assert!(line(&["{not json"]).unwrap_err().contains("not valid JSON"));
        assert!(build(&["[1]".to_string()]).is_err());
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(line(&[]).is_err());
        assert!(line(&["nope.op"]).unwrap_err().contains("unknown op"));
        assert!(line(&["counter.sum", "series"]).unwrap_err().contains("name=value"));
        assert!(line(&["counter.sum", "sereis=a"]).unwrap_err().contains("fields: series, key, range"));
        assert!(line(&["system.ping", "x=1"]).unwrap_err().contains("takes no field"));
        assert!(line(&["counter.sum", "key=-1"]).unwrap_err().contains("unsigned integer"));
        assert!(line(&["counter.sum", "key=4x"]).unwrap_err().contains("key must be"));
        assert!(line(&["counter.sum", "range=1-2"]).unwrap_err().contains("range like"));
        assert!(line(&["counter.batch_sum", "keys=1,,2"]).is_err());
        assert!(line(&["series.batch_add", "items=1:2"]).is_err());
        assert!(line(&["counter.batch_sum", "keys=[1"]).unwrap_err().contains("JSON"));
    }

    #[test]
    fn help_comes_from_the_op_table() {
        let all = help(None);
        for op in Op::ALL {
            assert!(all.contains(op.name()), "{}", op.name());
        }
        assert!(all.contains("counter.sum                        series key [range]"));
        let one = help(Some("ingest.chunk"));
        assert!(one.contains("chunk_seq        required  unsigned integer"), "{one}");
        assert!(help(Some("nope")).contains("unknown op"));
    }
}
