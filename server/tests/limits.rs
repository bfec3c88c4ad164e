//! Resource bounds against the real server (issue 14, docs/limits.md): each
//! test asserts the bound itself (memory, slots, closed connections, the
//! counter in `system.metrics`), never how fast something happened.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{error_code, error_line, Client, Server, DEADLINE, PING, PONG};

const MIB: u64 = 1024 * 1024;

/// A field of /proc/<pid>/status in bytes (`VmRSS`, `VmHWM`).
fn proc_status_bytes(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} missing"));
    let kb: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB");
    kb * 1024
}

/// The value of a Prometheus counter in `system.metrics`; 0 when absent
/// (limit counters appear only once non-zero).
fn metric(server: &Server, name: &str) -> u64 {
    let text = loop {
        let reply: Value = serde_json::from_str(&server.connect().request(r#"{"v":2,"op":"system.metrics"}"#))
            .expect("a JSON envelope");
        // Refused while a closing connection still holds its slot: retry.
        if reply["success"] == true {
            break reply["response"].as_str().expect("metrics text").to_string();
        }
        thread::sleep(Duration::from_millis(20));
    };
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0, |v| v.parse().expect("metric value"))
}

/// Waits (bounded by [`DEADLINE`]) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A client that got `pong`; retried while the readiness probe of
/// `Server::start` may still hold a slot.
fn pinging_client(server: &Server) -> Client {
    let start = Instant::now();
    loop {
        let mut c = server.connect();
        c.send(format!("{PING}\n").as_bytes());
        if c.read_line().as_deref() == Some(PONG) {
            return c;
        }
        assert!(start.elapsed() < DEADLINE, "no connection slot became free");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A series whose `tree.series` answer is large: `keys` keys x 2 days.
fn load_series(server: &Server, keys: u64) {
    let mut c = server.connect();
    let mut requests = String::new();
    let mut sent = 0;
    for first in (0..keys).step_by(80) {
        let items: Vec<String> = (first..(first + 80).min(keys))
            .flat_map(|k| [format!("[{k},20260101,7]"), format!("[{k},20260102,9]")])
            .collect();
        requests
            .push_str(&format!(r#"{{"v":2,"op":"series.batch_add","series":"big","items":[{}]}}"#, items.join(",")));
        requests.push('\n');
        sent += 1;
    }
    c.send(requests.as_bytes());
    for _ in 0..sent {
        let line = c.read_line().expect("an answer");
        assert!(line.contains(r#""success":true"#), "{line}");
    }
}

#[test]
fn pipelined_heavy_reads_are_bounded_per_connection() {
    // The defaults keep the suite quick; docs/limits.md records a run of
    // issue 14's worst case with KARMA_LIMITS_CONNECTIONS=60
    // KARMA_LIMITS_REQUESTS=100.
    let count = |var: &str, default: u64| std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (connections, requests) = (count("KARMA_LIMITS_CONNECTIONS", 20), count("KARMA_LIMITS_REQUESTS", 30) as usize);
    let server = Server::start(&["--write-timeout=120", "--read-timeout=120", "--max-heavy-requests=2"]);
    load_series(&server, 20_000);
    let request =
        format!("{}\n", r#"{"v":2,"op":"tree.series","series":"big","range":{"from":20260101,"to":20260102}}"#);
    let first = server.connect().request(request.trim_end());
    let answer = first.len() as u64;
    assert!(answer > 500_000, "the answer is meant to be large, got {first}");

    let before = proc_status_bytes(server.pid(), "VmRSS");
    let mut clients: Vec<Client> = (0..connections).map(|_| server.connect()).collect();
    for c in &mut clients {
        c.send(request.repeat(requests).as_bytes());
    }
    // Every connection has stopped at the pending output limit at least once
    // with nobody reading: the amplification issue 14 found.
    eventually("every connection to hit the output limit", || {
        metric(&server, "karma_limit_pending_output_total") >= connections
    });
    // Now read everything, all connections at once, so the peak below covers
    // the whole run.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                for _ in 0..requests {
                    let line = c.read_line().expect("an answer");
                    assert_eq!(line.len() as u64, answer, "{}", &line[..line.len().min(200)]);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("reader");
    }
    let peak = proc_status_bytes(server.pid(), "VmHWM");
    // docs/limits.md: per connection at most the pending output limit plus
    // one response, the input buffer twice and the kept capacity; plus the
    // working set of the two heavy requests running at once and room for
    // the allocator and thread stacks.
    let per_connection = MIB + MIB + 2 * (4096 + 8192) + 64 * 1024;
    let heavy = 2 * 8 * MIB;
    let slack = 16 * MIB;
    let bound = connections * per_connection + heavy + slack;
    let growth = peak.saturating_sub(before);
    eprintln!(
        "{connections} connections x {requests} requests: peak RSS growth {} MiB, bound {} MiB, RSS growth after they \
         closed {} MiB",
        growth / MIB,
        bound / MIB,
        proc_status_bytes(server.pid(), "VmRSS").saturating_sub(before) / MIB
    );
    assert!(
        growth <= bound,
        "peak RSS grew by {} MiB, bound {} MiB (unbounded: {} MiB)",
        growth / MIB,
        bound / MIB,
        connections * requests as u64 * answer / MIB
    );
    assert_eq!(server.connect().request(PING), PONG);
}

#[test]
fn a_slow_request_line_is_cut_off_at_the_deadline() {
    let server = Server::start(&["--request-deadline=1", "--read-timeout=30"]);
    let mut slow = server.connect();
    // One byte at a time, each well within --read-timeout: only the
    // deadline from the first byte can end this.
    let start = Instant::now();
    let mut sent = 0;
    let line = loop {
        assert!(start.elapsed() < DEADLINE, "the slow line was never cut off");
        if slow.stream.write_all(b" ").is_err() {
            break slow.read_line();
        }
        sent += 1;
        slow.stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let mut byte = [0u8; 1];
        match slow.stream.peek(&mut byte) {
            Ok(_) => {
                slow.stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
                break slow.read_line();
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break None,
        }
    };
    assert!(sent > 1);
    assert_eq!(
        line.as_deref(),
        Some(error_line("limit_exceeded", "Request line not completed within 1 seconds").as_str())
    );
    assert!(slow.is_closed());
    assert_eq!(metric(&server, "karma_limit_request_deadline_total"), 1);
    // Complete lines, however slowly they come one after another, are fine.
    let mut normal = server.connect();
    assert_eq!(normal.request(PING), PONG);
}

#[test]
fn a_pipelining_client_that_reads_late_is_not_cut_off_by_the_deadline() {
    // Found measuring issue 14's worst case: a pipelined burst longer than
    // one read leaves half a line buffered while the server, at its pending
    // output limit, waits for the client to read. That wait is the server's,
    // not the client's, so it must not count toward --request-deadline.
    const REQUESTS: usize = 100;
    let server = Server::start(&["--request-deadline=1", "--write-timeout=60", "--read-timeout=60"]);
    load_series(&server, 20_000);
    let request =
        format!("{}\n", r#"{"v":2,"op":"tree.series","series":"big","range":{"from":20260101,"to":20260102}}"#);
    let answer = server.connect().request(request.trim_end()).len();
    // Several connections: whether the stale deadline or the pending read
    // wins the server's select is a coin toss per connection.
    let mut clients: Vec<Client> = (0..10).map(|_| server.connect()).collect();
    for c in &mut clients {
        c.send(request.repeat(REQUESTS).as_bytes());
    }
    // Longer than the deadline: the server blocks on its answers meanwhile.
    thread::sleep(Duration::from_secs(2));
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                for i in 0..REQUESTS {
                    let line = c.read_line().expect("an answer");
                    assert_eq!(line.len(), answer, "answer {i}: {}", &line[..line.len().min(200)]);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("every answer arrives");
    }
    assert_eq!(metric(&server, "karma_limit_request_deadline_total"), 0);
}

#[test]
fn idle_connections_make_room_and_busy_ones_are_not_taken() {
    let server = Server::start(&["--max-connections=2"]);
    assert_eq!(metric(&server, "karma_limit_connections_refused_total"), 0);
    let mut idle = pinging_client(&server);
    // `busy` has half a request buffered, so it may not be reaped. The
    // complete PING in the same write is answered once the half line sits
    // in the server's buffer.
    let (head, tail) = PING.split_at(7);
    let mut busy = pinging_client(&server);
    busy.send(format!("{PING}\n{head}").as_bytes());
    assert_eq!(busy.read_line().as_deref(), Some(PONG));

    // Full: the idle connection is closed and the newcomer served.
    let mut newcomer = server.connect();
    newcomer.send(format!("{PING}\n{head}").as_bytes());
    assert_eq!(newcomer.read_line().as_deref(), Some(PONG));
    assert!(idle.is_closed());

    // Both remaining connections are busy: refused with limit_exceeded.
    let mut refused = server.connect();
    assert_eq!(refused.read_line(), Some(error_line("limit_exceeded", "Too many connections (limit 2)")));
    assert!(refused.is_closed());
    assert_eq!(busy.request(tail), PONG);
    assert_eq!(newcomer.request(tail), PONG);
    drop((busy, newcomer));
    assert!(metric(&server, "karma_limit_idle_connections_reaped_total") >= 1);
    assert!(metric(&server, "karma_limit_connections_refused_total") >= 1);
}

#[test]
fn a_slave_bounds_the_lines_it_reads_from_its_master() {
    // A fake master answering every request with 8 MiB and no newline.
    let master = TcpListener::bind("127.0.0.1:0").expect("bind fake master");
    let port = master.local_addr().expect("addr").port();
    thread::spawn(move || {
        for conn in master.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request);
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..128 {
                    if conn.write_all(&chunk).is_err() {
                        return;
                    }
                }
                // Hold the connection open without ever ending the line.
                let _ = conn.read(&mut request);
            });
        }
    });
    let server = Server::start(&[
        "--role=slave",
        "--replication-source-host=127.0.0.1",
        &format!("--replication-source-port={port}"),
        "--replication-poll-interval-ms=50",
        "--replication-max-line-bytes=65536",
        // No startup bootstrap: an empty slave retries it until it works.
        "--restore=false",
    ]);
    eventually("a poll to fail on the long line", || metric(&server, "karma_limit_replication_line_total") >= 1);
    let status: Value = serde_json::from_str(&server.connect().request(r#"{"v":2,"op":"replication.status"}"#))
        .expect("a JSON envelope");
    assert_eq!(
        status["response"]["replication_last_poll_error"],
        "Master reply exceeds 65536 bytes (--replication-max-line-bytes)"
    );
    // The slave never held the 8 MiB lines.
    assert!(proc_status_bytes(server.pid(), "VmHWM") < 64 * MIB);
    assert_eq!(server.connect().request(PING), PONG);
}

fn ingest(c: &mut Client, op: &str, fields: &str) -> String {
    c.request(&format!(r#"{{"v":2,"op":"ingest.{op}",{fields}}}"#))
}

fn succeeded(answer: &str) -> bool {
    answer.contains(r#""success":true"#)
}

#[test]
fn ingest_streams_and_staged_items_are_bounded() {
    let server = Server::start(&["--ingest-max-streams=3", "--ingest-max-staged-items=5"]);
    let mut c = server.connect();
    for id in ["a", "b"] {
        assert!(succeeded(&ingest(&mut c, "begin", &format!(r#""stream_id":"{id}","mode":"replace_series""#))));
    }
    assert!(succeeded(&ingest(&mut c, "begin", r#""stream_id":"c","mode":"add""#)));
    // No bound hit yet: no limit counter, exactly as Karma 1.0 answers.
    assert_eq!(metric(&server, "karma_limit_ingest_streams_total"), 0);
    assert!(!server.connect().request(r#"{"v":2,"op":"system.metrics"}"#).contains("karma_limit_"));

    let refused = ingest(&mut c, "begin", r#""stream_id":"d","mode":"add""#);
    assert_eq!(
        refused,
        error_line("limit_exceeded", "Too many active ingest streams (limit 3): commit or abort one first")
    );
    // Re-sending the begin of a stream that exists is not a new stream.
    assert!(succeeded(&ingest(&mut c, "begin", r#""stream_id":"c","mode":"add""#)));
    assert!(succeeded(&ingest(&mut c, "abort", r#""stream_id":"c""#)));
    assert!(succeeded(&ingest(&mut c, "begin", r#""stream_id":"d","mode":"add""#)));

    let chunk = |id: &str, seq: u64, keys: std::ops::Range<u64>| {
        let items: Vec<String> = keys.map(|k| format!("[{k},20260101,1]")).collect();
        format!(r#""stream_id":"{id}","series":"s{id}","chunk_seq":{seq},"items":[{}]"#, items.join(","))
    };
    assert!(succeeded(&ingest(&mut c, "chunk", &chunk("a", 1, 0..3))));
    // 3 staged + 3 would pass 5.
    assert_eq!(
        ingest(&mut c, "chunk", &chunk("b", 1, 0..3)),
        error_line(
            "limit_exceeded",
            "Too many staged ingest items (limit 5): commit or abort a replace_series stream first"
        )
    );
    assert!(succeeded(&ingest(&mut c, "chunk", &chunk("b", 1, 0..2))));
    assert_eq!(metric(&server, "karma_ingest_staged_items"), 5);
    assert_eq!(metric(&server, "karma_ingest_active_streams"), 3);
    // Chunks of add/set streams stage nothing, so they pass.
    assert!(succeeded(&ingest(&mut c, "chunk", &chunk("d", 1, 0..4))));

    // Committing frees what the stream staged.
    assert!(succeeded(&ingest(&mut c, "commit", r#""stream_id":"a""#)));
    assert_eq!(metric(&server, "karma_ingest_staged_items"), 2);
    assert!(succeeded(&ingest(&mut c, "chunk", &chunk("b", 2, 2..5))));
    assert!(succeeded(&ingest(&mut c, "commit", r#""stream_id":"b""#)));

    assert_eq!(metric(&server, "karma_limit_ingest_streams_total"), 1);
    assert_eq!(metric(&server, "karma_limit_ingest_staged_items_total"), 1);
    assert_eq!(metric(&server, "karma_ingest_staged_items"), 0);
    // Another client was served all along, and the data went where it should.
    let mut other = server.connect();
    assert_eq!(other.request(PING), PONG);
    let sb: Value = serde_json::from_str(&other.request(r#"{"v":2,"op":"tree.info","series":"sb"}"#)).expect("json");
    assert_eq!(sb["response"]["key_count"], 5, "{sb}");
}

#[test]
fn the_server_expires_abandoned_ingest_streams_on_its_own() {
    let server = Server::start(&["--ingest-stream-ttl=1"]);
    let mut c = server.connect();
    assert!(succeeded(&ingest(&mut c, "begin", r#""stream_id":"gone","mode":"replace_series""#)));
    drop(c);
    // No further ingest request: only the server's periodic sweep can end it.
    eventually("the idle stream to expire", || metric(&server, "karma_limit_ingest_streams_expired_total") == 1);
    assert_eq!(metric(&server, "karma_ingest_active_streams"), 0);
    let mut c = server.connect();
    let answer = ingest(&mut c, "commit", r#""stream_id":"gone""#);
    assert_eq!(error_code(&answer).as_deref(), Some("not_found"), "{answer}");
}
