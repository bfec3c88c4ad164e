//! End-to-end tests of the `karma` binary over TCP. No timing assertions:
//! everything that "eventually" happens is bounded by a generous deadline.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn ping_pong() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(c.request(PING), PONG);
    // CRLF requests work too, and the connection stays open.
    c.send(format!("{PING}\r\n").as_bytes());
    assert_eq!(c.read_line().as_deref(), Some(PONG));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let mut batch = String::new();
    for i in 0..100 {
        if i % 2 == 0 {
            batch.push_str(&format!(
                r#"{{"v":2,"op":"counter.increment","series":"pipe","key":{i},"bucket":20260101,"value":{}}}"#,
                i + 1
            ));
        } else {
            batch.push_str(&format!(r#"{{"v":2,"op":"nope.{i}"}}"#));
        }
        batch.push('\n');
    }
    c.send(batch.as_bytes());
    for i in 0..100 {
        let line = c.read_line().unwrap_or_else(|| panic!("response {i} missing"));
        if i % 2 == 0 {
            assert_eq!(
                line,
                format!(r#"{{"protocol_version":2,"success":true,"response":{},"error_code":null}}"#, i + 1)
            );
        } else {
            assert_eq!(line, error_line("unknown_command", &format!("Unknown op nope.{i}")));
        }
    }
    // Still usable afterwards.
    assert_eq!(c.request(PING), PONG);
}

#[test]
fn oversized_line_is_rejected_and_closed() {
    let server = Server::start(&["--max-request-bytes=100"]);
    let too_large = error_line("request_too_large", "Request exceeds 100 bytes");

    // Responses to the lines before it come first.
    let mut c = server.connect();
    let mut bytes = format!("{PING}\n").into_bytes();
    bytes.extend_from_slice(&[b'a'; 200]);
    bytes.extend_from_slice(format!("\n{PING}\n").as_bytes());
    c.send(&bytes);
    assert_eq!(c.read_line().as_deref(), Some(PONG));
    assert_eq!(c.read_line().as_deref(), Some(too_large.as_str()));
    assert!(c.is_closed());

    // Exactly at the limit is fine; a `\r` counts towards it.
    let mut c = server.connect();
    let padded = format!("{PING}{}", " ".repeat(100 - PING.len()));
    assert_eq!(padded.len(), 100);
    assert_eq!(c.request(&padded), PONG);
    c.send(format!("{padded}\r\n").as_bytes());
    assert_eq!(c.read_line().as_deref(), Some(too_large.as_str()));
    assert!(c.is_closed());

    // A partial line already over the limit is rejected without its newline.
    let mut c = server.connect();
    c.send(&[b'x'; 150]);
    assert_eq!(c.read_line().as_deref(), Some(too_large.as_str()));
    assert!(c.is_closed());
}

#[test]
fn final_line_without_newline_is_processed_at_eof() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.send(format!("{PING}\n{PING}").as_bytes());
    c.shutdown_write();
    assert_eq!(c.read_line().as_deref(), Some(PONG));
    assert_eq!(c.read_line().as_deref(), Some(PONG));
    assert!(c.is_closed());
}

#[test]
fn idle_partial_line_is_closed_silently_after_read_timeout() {
    let server = Server::start(&["--read-timeout=1"]);
    let mut c = server.connect();
    c.send(br#"{"v":2,"op":"#);
    // No response, just EOF (bounded by the client's generous read timeout).
    assert!(c.read_line().is_none());
}

#[test]
fn garbage_and_invalid_utf8_are_invalid_json() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let inputs: [&[u8]; 5] =
        [b"\xff\xfe\x00\x01garbage\x7f\n", b"{\"v\":2,\"op\":\"\xc3\x28\"}\n", b"\x80\n", b"not json\n", b"\n"];
    for input in inputs {
        c.send(input);
        let line = c.read_line().expect("a response");
        assert_eq!(error_code(&line).as_deref(), Some("invalid_json"), "{input:?} -> {line}");
        assert_eq!(c.request(PING), PONG, "connection unusable after {input:?}");
    }
}

#[test]
fn a_thousand_concurrent_connections() {
    let limit = raise_nofile(4096);
    let n = if limit >= 2200 { 1000 } else { (limit as usize).saturating_sub(200) / 2 };
    assert!(n >= 100, "open-files limit {limit} too low for this test");
    let server = Server::start(&[]);
    let mut clients: Vec<Client> = (0..n).map(|_| server.connect()).collect();
    for c in &mut clients {
        c.send(format!("{PING}\n").as_bytes());
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.read_line().as_deref(), Some(PONG), "connection {i}");
    }
}

#[test]
fn a_client_vanishing_mid_pipeline_does_not_affect_others() {
    let server = Server::start(&[]);
    let mut other = server.connect();
    assert_eq!(other.request(PING), PONG);
    for round in 0..5 {
        let mut rude = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        let mut batch = String::new();
        for i in 0..500 {
            batch.push_str(&format!(
                r#"{{"v":2,"op":"counter.increment","series":"rude","key":{i},"bucket":20260101}}"#
            ));
            batch.push('\n');
        }
        batch.push_str(r#"{"v":2,"op":"sys"#);
        let _ = rude.write_all(batch.as_bytes());
        if round % 2 == 0 {
            // Close with unread responses pending (may reset the connection).
            reset_on_close(&rude);
        } else {
            let mut first = [0u8; 16];
            let _ = rude.read(&mut first);
        }
        drop(rude);
        assert_eq!(other.request(PING), PONG);
    }
    let mut fresh = server.connect();
    assert_eq!(fresh.request(PING), PONG);
}

#[test]
fn connections_over_the_limit_get_an_error_and_are_closed() {
    let server = Server::start(&["--max-connections=1"]);
    // The readiness probe's connection may still hold the only slot for a
    // moment: retry until a connection is served.
    let mut first = pinging_client(&server);
    // A partial line keeps the first connection busy, so it is not reaped
    // as idle to make room (server/tests/limits.rs covers that).
    let (head, tail) = PING.split_at(5);
    first.send(format!("{PING}\n{head}").as_bytes());
    assert_eq!(first.read_line().as_deref(), Some(PONG));
    let mut second = server.connect();
    let line = second.read_line().expect("an error line");
    assert_eq!(line, error_line("limit_exceeded", "Too many connections (limit 1)"));
    assert!(second.is_closed());
    // The first connection is unaffected; once it leaves, a new one fits.
    assert_eq!(first.request(tail), PONG);
    drop(first);
    pinging_client(&server);
}

/// A connection that got `pong` (retried until a slot is free).
fn pinging_client(server: &Server) -> Client {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let mut c = server.connect();
        c.send(format!("{PING}\n").as_bytes());
        if c.read_line().as_deref() == Some(PONG) {
            return c;
        }
        assert!(std::time::Instant::now() < deadline, "no connection slot became free");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn write_token_is_required() {
    let server = Server::start(&["--auth-token=w"]);
    let mut c = server.connect();
    let unauthorized = error_line("unauthorized", "Unauthorized");
    assert_eq!(c.request(PING), unauthorized);
    assert_eq!(c.request(r#"{"v":2,"op":"system.ping","token":"nope"}"#), unauthorized);
    assert_eq!(c.request(r#"{"v":2,"op":"system.ping","token":5}"#), unauthorized);
    assert_eq!(c.request(r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260505}"#), unauthorized);
    assert_eq!(c.request(r#"{"v":2,"op":"system.ping","token":"w"}"#), PONG);
    assert_eq!(
        c.request(r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260505,"value":3,"token":"w"}"#),
        r#"{"protocol_version":2,"success":true,"response":3,"error_code":null}"#
    );
}

#[test]
fn empty_cli_token_means_no_auth() {
    let server = Server::start(&["--auth-token="]);
    let mut c = server.connect();
    assert_eq!(c.request(PING), PONG);
}

/// One well-formed request per op that the read token may not run, with the
/// internal command name used in the `forbidden` message.
const WRITES: &[(&str, &str)] = &[
    (r#"{"v":2,"op":"tree.create","series":"s"}"#, "create"),
    (r#"{"v":2,"op":"tree.drop","series":"s"}"#, "drop"),
    (r#"{"v":2,"op":"tree.reset","series":"s"}"#, "reset"),
    (r#"{"v":2,"op":"tree.delete_range","series":"s","range":{"from":20260101,"to":20260102}}"#, "delete"),
    (r#"{"v":2,"op":"tree.delete_before","series":"s","before":20260101}"#, "delete_before"),
    (r#"{"v":2,"op":"tree.compact","series":"s"}"#, "compact"),
    (r#"{"v":2,"op":"series.delete_before","series":"s","before":20260101}"#, "delete_before"),
    (r#"{"v":2,"op":"series.compact","series":"s"}"#, "compact"),
    (r#"{"v":2,"op":"system.compact"}"#, "compact"),
    (r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260505,"value":3}"#, "increment"),
    (r#"{"v":2,"op":"series.increment","series":"s","key":1,"bucket":20260505}"#, "increment"),
    (r#"{"v":2,"op":"counter.decrement","series":"s","key":1,"bucket":20260505,"value":1}"#, "decrement"),
    (r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260505,1]]}"#, "batch_add"),
    (r#"{"v":2,"op":"counter.batch_increment","series":"s","items":[[1,20260505,1]]}"#, "batch_add"),
    (r#"{"v":2,"op":"series.batch_set","series":"s","items":[[1,20260505,1]]}"#, "batch_set"),
    (r#"{"v":2,"op":"counter.reset","series":"s","key":1}"#, "reset"),
    (r#"{"v":2,"op":"counter.batch_reset","series":"s","keys":[1,2]}"#, "batch_reset"),
    (r#"{"v":2,"op":"counter.delete_range","series":"s","key":1,"range":{"from":20260101,"to":20260102}}"#, "delete"),
    (
        r#"{"v":2,"op":"counter.batch_delete_range","series":"s","keys":[1],"range":{"from":20260101,"to":20260102}}"#,
        "batch_delete_range",
    ),
    (r#"{"v":2,"op":"ingest.begin","stream_id":"st","mode":"add"}"#, "ingest_begin"),
    (
        r#"{"v":2,"op":"ingest.chunk","stream_id":"st","series":"s","chunk_seq":1,"items":[[1,20260505,1]]}"#,
        "ingest_chunk",
    ),
    (r#"{"v":2,"op":"ingest.commit","stream_id":"st"}"#, "ingest_commit"),
    (r#"{"v":2,"op":"ingest.abort","stream_id":"st"}"#, "ingest_abort"),
    (r#"{"v":2,"op":"idempotency.prune","before":0}"#, "idempotency_prune"),
    (r#"{"v":2,"op":"recovery.checkpoint","source":"src","offset":"1"}"#, "recovery_checkpoint"),
    (r#"{"v":2,"op":"snapshot.create","series":"s"}"#, "dump"),
    (r#"{"v":2,"op":"snapshot.create_all"}"#, "dump_all"),
    (r#"{"v":2,"op":"snapshot.load","file":"1_s.tree"}"#, "load"),
    (r#"{"v":2,"op":"reconciliation.report","checked_points":1,"mismatch_count":0}"#, "reconciliation_report"),
];

fn with_token(request: &str, token: &str) -> String {
    let body = request.strip_suffix('}').expect("object");
    format!(r#"{body},"token":"{token}"}}"#)
}

#[test]
fn read_token_cannot_mutate() {
    let server = Server::start(&["--auth-token=w", "--read-auth-token=r"]);
    let mut c = server.connect();
    assert_eq!(c.request(&with_token(PING, "r")), PONG);
    assert_eq!(
        c.request(&with_token(r#"{"v":2,"op":"tree.list"}"#, "r")),
        r#"{"protocol_version":2,"success":true,"response":[],"error_code":null}"#
    );
    for (request, internal) in WRITES {
        assert_eq!(
            c.request(&with_token(request, "r")),
            error_line("forbidden", &format!("Read-only token cannot execute command {internal}")),
            "{request}"
        );
    }
    assert_eq!(c.request(&with_token(PING, "x")), error_line("unauthorized", "Unauthorized"));
}

#[test]
fn slave_refuses_writes() {
    let server = Server::start(&["--role=slave"]);
    let mut c = server.connect();
    assert_eq!(c.request(PING), PONG);
    assert_eq!(
        c.request(r#"{"v":2,"op":"tree.list"}"#),
        r#"{"protocol_version":2,"success":true,"response":[],"error_code":null}"#
    );
    // Requests that pass validation on an empty node (spec conformance
    // scenario slave_role_rejects_writes).
    let writes = [
        (r#"{"v":2,"op":"counter.increment","series":"api","key":1,"bucket":20260505,"value":1}"#, "increment"),
        (r#"{"v":2,"op":"counter.decrement","series":"api","key":1,"bucket":20260505,"value":1}"#, "decrement"),
        (r#"{"v":2,"op":"series.batch_add","series":"api","items":[[1,20260505,1]]}"#, "batch_add"),
        (r#"{"v":2,"op":"tree.create","series":"api"}"#, "create"),
        (r#"{"v":2,"op":"snapshot.create","series":"api"}"#, "dump"),
        (r#"{"v":2,"op":"snapshot.create_all"}"#, "dump_all"),
        (r#"{"v":2,"op":"recovery.checkpoint","source":"s","offset":"1"}"#, "recovery_checkpoint"),
        (r#"{"v":2,"op":"reconciliation.report","checked_points":1,"mismatch_count":0}"#, "reconciliation_report"),
        (r#"{"v":2,"op":"ingest.begin","stream_id":"s","mode":"add"}"#, "ingest_begin"),
        (r#"{"v":2,"op":"idempotency.prune","before":0}"#, "idempotency_prune"),
        (
            r#"{"v":2,"op":"counter.increment","series":"api","key":1,"bucket":20260505,"value":1,"idempotency_key":"k"}"#,
            "increment",
        ),
    ];
    for (request, internal) in writes {
        assert_eq!(
            c.request(request),
            error_line("forbidden", &format!("Slave role cannot execute command {internal}")),
            "{request}"
        );
    }
}

#[test]
fn cli_errors_exit_1_with_the_exact_message() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--port=abc"], &[], "ERROR: --port must be an integer"),
        (&["-p", "x"], &[], "ERROR: --port must be an integer"),
        (&["--wal=maybe"], &[], "ERROR: --wal must be true or false"),
        (&[], &[("KARMA_PORT", "eighty")], "ERROR: Environment variable KARMA_PORT must be an integer"),
        (&[], &[("KARMA_WAL", "1")], "ERROR: Environment variable KARMA_WAL must be true or false"),
        (&["--port=0"], &[], "ERROR: Invalid configuration: port must be between 1 and 65535"),
        (&["--role=leader"], &[], "ERROR: Invalid configuration: role must be master or slave"),
        (&["--max-request-bytes=0"], &[], "ERROR: Invalid configuration: max_request_bytes must be greater than 0"),
        (&["--port"], &[], "ERROR: Missing option: --port"),
    ];
    for (args, env, message) in cases {
        let out = run_cli(args, env);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), format!("{message}\n"), "{args:?}");
        assert!(out.stdout.is_empty());
    }
    let out = run_cli(&["--foo"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("ERROR: --foo is not a valid option.\n"), "{stderr}");
    assert!(stderr.contains("--port"), "usage expected: {stderr}");
}

#[test]
fn help_and_version_exit_0() {
    let out = run_cli(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for flag in ["--bind", "--port", "--directory", "--auth-token", "--read-timeout", "--metrics-port", "KARMA_PORT"] {
        assert!(stdout.contains(flag), "{flag} missing from help");
    }
    assert!(out.stderr.is_empty());
    let out = run_cli(&["-h"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let out = run_cli(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "karma 0.4.0\n");
}

#[test]
fn sigterm_and_sigint_stop_with_status_0() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut server = Server::start(&["--shutdown-timeout=1"]);
        // An idle client must not hold the shutdown up.
        let mut idle = server.connect();
        assert_eq!(idle.request(PING), PONG);
        server.signal(sig);
        let status = server.wait_exit();
        assert_eq!(status.code(), Some(0), "signal {sig}: {}", server.stderr());
        assert!(idle.is_closed());
    }
}

#[test]
fn shutdown_writes_a_final_snapshot() {
    let mut server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(
        c.request(r#"{"v":2,"op":"counter.increment","series":"snap","key":1,"bucket":20260505,"value":2}"#),
        r#"{"protocol_version":2,"success":true,"response":2,"error_code":null}"#
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0), "{}", server.stderr());
    let trees: Vec<_> = std::fs::read_dir(server.data_dir())
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("_snap.tree"))
        .collect();
    assert_eq!(trees.len(), 1, "one snapshot of series snap expected");
}

#[test]
fn sigusr1_snapshots_and_keeps_running() {
    let mut server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(
        c.request(r#"{"v":2,"op":"counter.increment","series":"usr","key":1,"bucket":20260505,"value":2}"#),
        r#"{"protocol_version":2,"success":true,"response":2,"error_code":null}"#
    );
    server.signal(libc::SIGUSR1);
    // The snapshot appears eventually; the server answers throughout.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        assert_eq!(c.request(PING), PONG);
        let found = std::fs::read_dir(server.data_dir())
            .expect("data dir")
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with("_usr.tree"));
        if found {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no snapshot after SIGUSR1");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!server.has_exited(), "server exited");
    let mut fresh = server.connect();
    assert_eq!(fresh.request(PING), PONG);
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn metrics_over_http() {
    let metrics_port = free_port();
    let server = Server::start(&[&format!("--metrics-port={metrics_port}")]);
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", metrics_port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "metrics port closed: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("Content-Type: text/plain"), "{response}");
    assert!(response.contains("karma_uptime_seconds"), "{response}");
    drop(server);
}

/// How long every WAL fsync takes in the slow-disk tests (the test build's
/// fault injection).
const SLOW_FSYNC_MS: &str = "5000";
/// The write those tests wait on, as it is logged.
const SLOW_WRITE: &str = r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260101,"value":5}"#;

/// A server whose every fsync takes [`SLOW_FSYNC_MS`], with one runtime
/// worker, so that anything its fsync held up would show.
fn slow_fsync_server() -> Server {
    Server::start_with_env(
        &["--wal-fsync=always"],
        &[("KARMA_FAULT_FSYNC_DELAY_MS", SLOW_FSYNC_MS), ("KARMA_WORKERS", "1")],
    )
}

/// The writer of [`SLOW_WRITE`] has no answer yet (its fsync is still
/// running), then gets its acknowledgement, which a fresh connection's
/// read confirms. (Fresh: others may have been idle past --read-timeout.)
fn assert_answered_only_after_its_fsync(server: &Server, writer: &mut Client) {
    writer.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let pending = writer.stream.peek(&mut byte);
    assert!(
        matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the write was answered before its {SLOW_FSYNC_MS} ms fsync: {pending:?}"
    );
    writer.stream.set_nonblocking(false).unwrap();
    let ack = writer.read_line().expect("the write's answer");
    assert!(ack.contains("\"success\":true"), "{ack}");
    let sum = server.connect().request(r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#);
    assert!(sum.contains("\"response\":5"), "{sum}");
}

/// The only open connection commits its own write on its worker's thread
/// (no other connection to gather a group with), handing the worker's
/// other tasks to another thread for the time: with every fsync made to
/// take seconds and one runtime worker, a connection that arrives during
/// that fsync is answered before it ends, `system.stats` included (its
/// `wal_bytes` counts the write in flight instead of waiting for it).
#[test]
fn a_lone_writers_slow_fsync_does_not_hold_up_newcomers() {
    let server = slow_fsync_server();
    let mut writer = server.connect();
    writer.send(format!("{SLOW_WRITE}\n").as_bytes());
    // Once its line is in the file, the write's fsync has begun.
    let (wal, line) = (server.data_dir().join("karma.wal"), b"{\"v\":2,\"lsn\":1,");
    let deadline = std::time::Instant::now() + DEADLINE;
    while !std::fs::read(&wal).is_ok_and(|log| log.starts_with(line)) {
        assert!(std::time::Instant::now() < deadline, "the write never reached the WAL");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut newcomer = server.connect();
    assert_eq!(newcomer.request(PING), PONG);
    // Stats count the write being fsynced without waiting for it.
    let line_bytes = format!("{{\"v\":2,\"lsn\":1,\"entry\":{SLOW_WRITE}}}\n").len();
    let stats = newcomer.request(r#"{"v":2,"op":"system.stats"}"#);
    assert!(stats.contains(&format!("\"wal_bytes\":{line_bytes},")), "{stats}");
    assert_answered_only_after_its_fsync(&server, &mut writer);
}

/// A slow disk must not stall other connections: with every WAL fsync made
/// to take seconds (the test build's fault injection) and one runtime
/// worker, a connection whose write waits for its fsync does not stop
/// another connection's reads from being answered meanwhile. (Before, the
/// fsync ran on the worker itself, so the reads waited for it.)
#[test]
fn a_slow_fsync_does_not_hold_up_other_connections() {
    let server = slow_fsync_server();
    let mut writer = server.connect();
    let mut reader = server.connect();
    writer.send(format!("{SLOW_WRITE}\n").as_bytes());
    for _ in 0..20 {
        assert_eq!(reader.request(PING), PONG);
        let sum = reader.request(r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#);
        assert!(sum.contains("\"success\":true"), "{sum}");
    }
    // The reads were answered while the write still waits for its fsync.
    assert_answered_only_after_its_fsync(&server, &mut writer);
}
