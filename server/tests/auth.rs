//! Half-configured authentication fails closed and is named at startup
//! (issue 10 item 6), against the real server binary.

mod common;

use common::{error_line, Server};

const WRITE: &str = r#"{"v":2,"op":"counter.increment","series":"api","key":1,"bucket":20260505,"value":3}"#;

#[test]
fn a_read_token_alone_refuses_every_write_and_says_so() {
    let server = Server::start(&["--log=true", "--read-auth-token=r"]);
    let mut client = server.connect();
    assert_eq!(client.request(WRITE), error_line("unauthorized", "Unauthorized"));
    let with_read = WRITE.replace('}', r#","token":"r"}"#);
    assert_eq!(client.request(&with_read), error_line("forbidden", "Read-only token cannot execute command increment"));
    assert_eq!(
        client.request(r#"{"v":2,"op":"tree.list","token":"r"}"#),
        r#"{"protocol_version":2,"success":true,"response":[],"error_code":null}"#
    );
    assert!(server.stderr().contains("only a read-only token is configured"), "{}", server.stderr());
}

#[test]
fn an_empty_auth_token_keeps_auth_off_with_a_warning() {
    let server = Server::start(&["--log=true", "--auth-token="]);
    let mut client = server.connect();
    assert_eq!(client.request(WRITE), r#"{"protocol_version":2,"success":true,"response":3,"error_code":null}"#);
    assert!(server.stderr().contains("the auth token is empty"), "{}", server.stderr());
}
