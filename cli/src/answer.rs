//! How a response line is shown to a person: the `response` part indented,
//! with the server's key order and number text kept, or the error code and
//! message on one plain line.

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Envelope<'a> {
    success: bool,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    error_code: Option<String>,
    idempotent: Option<bool>,
}

/// A response line, rendered.
pub struct Answer {
    pub text: String,
    pub is_error: bool,
}

pub fn render(line: &str) -> Answer {
    let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(line) else {
        return Answer { text: format!("(unexpected answer) {line}"), is_error: true };
    };
    let response = envelope.response.map(RawValue::get).unwrap_or("null");
    if !envelope.success {
        let message = serde_json::from_str::<String>(response).unwrap_or_else(|_| response.to_string());
        let code = envelope.error_code.as_deref().unwrap_or("error");
        return Answer { text: format!("(error) {code}: {message}"), is_error: true };
    }
    let mut text = indent(response);
    if envelope.idempotent == Some(true) {
        text.push_str("\n(idempotent replay: applied earlier, not again)");
    }
    Answer { text, is_error: false }
}

/// Re-indents compact JSON text by two spaces per level, without parsing
/// numbers (so `18446744073709551615` stays exact) or reordering keys.
/// Empty arrays and objects stay on one line.
pub fn indent(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = json.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_indented_in_server_order() {
        let line = r#"{"protocol_version":2,"success":true,"response":{"z":18446744073709551615,"a":[1,{"s":"x,{\"y\":1}"}],"e":[],"o":{}},"error_code":null}"#;
        let a = render(line);
        assert!(!a.is_error);
        assert_eq!(
            a.text,
            "{\n  \"z\": 18446744073709551615,\n  \"a\": [\n    1,\n    {\n      \"s\": \"x,{\\\"y\\\":1}\"\n    }\n  ],\n  \"e\": [],\n  \"o\": {}\n}"
        );
        assert_eq!(
            render(r#"{"protocol_version":2,"success":true,"response":"pong","error_code":null}"#).text,
            "\"pong\""
        );
        let replay = r#"{"protocol_version":2,"success":true,"response":3,"idempotent":true,"error_code":null}"#;
        assert!(render(replay).text.starts_with("3\n(idempotent replay"));
    }

    #[test]
    fn errors_show_code_and_message() {
        let a = render(
            r#"{"protocol_version":2,"success":false,"response":"Tree \"x\" not found","error_code":"not_found"}"#,
        );
        assert!(a.is_error);
        assert_eq!(a.text, "(error) not_found: Tree \"x\" not found");
        assert!(render("garbage").text.starts_with("(unexpected answer)"));
    }
}
