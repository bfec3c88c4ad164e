//! A v2 request line built from an op name and its fields: what a
//! binding's generic `request(op, **fields)` sends, to the in-process
//! engine ([`crate::Engine::request_value`]) or to a server alike.

use serde_json::{Map, Value};

/// `{"v":2,"op":op, ...fields}` as one JSON line (no terminator). `v` and
/// `op` among `fields` are ignored: the arguments name the request.
pub fn request(op: &str, fields: Map<String, Value>) -> String {
    let mut map = Map::with_capacity(fields.len() + 2);
    map.insert("v".into(), Value::from(2));
    map.insert("op".into(), Value::from(op));
    for (k, v) in fields {
        if k != "v" && k != "op" {
            map.insert(k, v);
        }
    }
    Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_name_the_request_and_fields_follow() {
        let mut fields = Map::new();
        fields.insert("op".into(), Value::from("tree.drop"));
        fields.insert("series".into(), Value::from("s"));
        fields.insert("key".into(), Value::from(u64::MAX));
        let line: Value = serde_json::from_str(&request("counter.sum", fields)).unwrap();
        let expected = serde_json::json!({"v": 2, "op": "counter.sum", "series": "s", "key": u64::MAX});
        assert_eq!(line, expected);
    }
}
