//! Who may do what, for every token configuration (spec/protocol.md §6 and
//! the fail-closed read-token-only rule in docs/compatibility.md).

use karma_engine::{Engine, Options, Session};

fn engine(write: Option<&str>, read: Option<&str>) -> Engine {
    Engine::open(Options {
        auth_token: write.map(str::to_owned),
        read_auth_token: read.map(str::to_owned),
        ..Options::default()
    })
    .expect("in-memory engine")
}

fn ask(engine: &Engine, line: &str) -> String {
    let reply = engine.handle_line(line.as_bytes(), &Session::client());
    String::from_utf8(reply.bytes).expect("utf-8")
}

const WRITE: &str = r#"{"v":2,"op":"counter.increment","series":"api","key":1,"bucket":20260505,"value":3"#;
const READ: &str = r#"{"v":2,"op":"counter.sum","series":"api","key":1"#;

fn with_token(base: &str, token: Option<&str>) -> String {
    match token {
        Some(t) => format!(r#"{base},"token":"{t}"}}"#),
        None => format!("{base}}}"),
    }
}

fn code(response: &str) -> &str {
    if response.contains(r#""success":true"#) {
        "ok"
    } else if response.contains("unauthorized") {
        "unauthorized"
    } else if response.contains("forbidden") {
        "forbidden"
    } else {
        "other"
    }
}

/// Half-configured access control fails closed: with only a read token no
/// request can write (docs/compatibility.md).
#[test]
fn read_token_only_reads_need_the_token_and_nothing_can_write() {
    let e = engine(None, Some("r"));
    assert_eq!(code(&ask(&e, &with_token(WRITE, None))), "unauthorized");
    assert_eq!(code(&ask(&e, &with_token(WRITE, Some("r")))), "forbidden");
    assert_eq!(code(&ask(&e, &with_token(WRITE, Some("nope")))), "unauthorized");
    assert_eq!(code(&ask(&e, &with_token(READ, None))), "unauthorized");
    assert_eq!(code(&ask(&e, &with_token(READ, Some("nope")))), "unauthorized");
    let sum = ask(&e, &with_token(READ, Some("r")));
    assert_eq!(sum, "{\"protocol_version\":2,\"success\":false,\"response\":\"Tree \\\"api\\\" not found\",\"error_code\":\"not_found\"}\r\n");
}

#[test]
fn write_token_guards_everything_when_configured() {
    for read in [None, Some("r")] {
        let e = engine(Some("w"), read);
        assert_eq!(code(&ask(&e, &with_token(WRITE, None))), "unauthorized");
        assert_eq!(code(&ask(&e, &with_token(WRITE, Some("x")))), "unauthorized");
        assert_eq!(code(&ask(&e, &with_token(READ, None))), "unauthorized");
        assert_eq!(code(&ask(&e, &with_token(WRITE, Some("w")))), "ok");
        assert_eq!(code(&ask(&e, &with_token(READ, Some("w")))), "ok");
        if read.is_some() {
            assert_eq!(code(&ask(&e, &with_token(WRITE, Some("r")))), "forbidden");
            assert_eq!(code(&ask(&e, &with_token(READ, Some("r")))), "ok");
        }
    }
}

#[test]
fn no_tokens_means_open_access() {
    let e = engine(None, None);
    assert_eq!(code(&ask(&e, &with_token(WRITE, None))), "ok");
    assert_eq!(code(&ask(&e, &with_token(WRITE, Some("anything")))), "ok");
    assert_eq!(code(&ask(&e, &with_token(READ, None))), "ok");
}

#[test]
fn a_non_string_token_counts_as_absent() {
    let e = engine(Some("w"), None);
    let line = r#"{"v":2,"op":"counter.sum","series":"api","key":1,"token":7}"#;
    assert_eq!(code(&ask(&e, line)), "unauthorized");
}
