//! `karma_client` against the real `karma` server binary (and, for
//! transport failures, against scripted fake servers).
//!
//! The server binary is `target/debug/karma` of this workspace (or
//! `$KARMA_SERVER_BIN`). If it is missing, the first test that needs it
//! runs `cargo build -p karma-server` (with the cargo that runs the tests);
//! rebuild it yourself after changing server/ (`cargo build -p karma-server`).
//! Each test starts its own server on a free port with a temporary data
//! directory and `--log=false`, and kills it when done.
//!
//! No assertion depends on how long anything takes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use karma_client::{Client, ClientConfig, ClientError, Karma, KarmaError, Pipeline};
use karma_engine::{Engine, ErrorCode, Range, Window};
use karma_testkit::free_port;
use serde_json::{json, Map, Value};

// ------------------------------------------------------------------ servers

/// A running `karma` process (the shared test kit's); killed on drop.
struct Server(karma_testkit::Server);

impl Server {
    fn start(extra: &[&str]) -> Server {
        Server(karma_testkit::Server::start(karma_testkit::karma_binary(), extra))
    }

    fn config(&self) -> ClientConfig {
        ClientConfig::new("127.0.0.1", self.port)
    }

    fn client(&self) -> Client {
        Client::new(self.config()).unwrap()
    }
}

impl std::ops::Deref for Server {
    type Target = karma_testkit::Server;

    fn deref(&self) -> &karma_testkit::Server {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut karma_testkit::Server {
        &mut self.0
    }
}

/// A fake server: for connection `i`, answers `answers[i]` request lines
/// with `response: 1`, then reads one more line and closes without
/// answering; connections past the list are answered until EOF. Counts
/// the request lines it received.
fn flaky_server(answers: Vec<usize>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            let limit = answers.get(i).copied();
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut answered = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    if limit == Some(answered) {
                        return; // close without answering
                    }
                    let reply = b"{\"protocol_version\":2,\"success\":true,\"response\":1,\"error_code\":null}\n";
                    if writer.write_all(reply).is_err() {
                        return;
                    }
                    answered += 1;
                }
            });
        }
    });
    (port, received)
}

fn range(from: u64, to: u64) -> Range {
    Range { from, to }
}

// ------------------------------------------------------------------- parity

fn show<T: std::fmt::Debug, E: KarmaError>(r: Result<T, E>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("err {:?} {e}", e.error_code()),
    }
}

/// Every method of the shared API, with successes and server errors;
/// one rendered line per call.
fn script<K: Karma>(k: &K) -> Vec<String> {
    let mut out = Vec::new();
    let mut log = |s: String| out.push(s);
    let march = range(20260301, 20260331);
    let early = range(20260301, 20260303);

    log(show(k.create_series("a")));
    log(show(k.create_series("naïve \"quoted\" \\ series")));
    log(show(k.increment("a", 1, Some(20260305), 5)));
    log(show(k.increment("a", 1, Some(20260301), 7)));
    log(show(k.increment("a", 2, Some(20260301), 3)));
    log(show(k.increment("a", 1, Some(20260303), 2)));
    log(show(k.increment("a", 1, Some(20260301), 0)));
    log(show(k.decrement("a", 1, Some(20260305), 2)));
    log(show(k.decrement("a", 9, Some(20260305), 2)));
    log(show(k.decrement("a", 2, Some(20260301), 10)));
    log(show(k.increment("a", 2, Some(20260302), 4)));
    log(show(k.sum("a", 1, None)));
    log(show(k.sum("a", 1, Some(early))));
    log(show(k.sum("a", 404, None)));
    log(show(k.sum("missing", 1, None)));
    log(show(k.sum("a", 1, Some(range(20240101, 20260301)))));
    log(show(k.sum("a", 1, Some(range(20260230, 20260301)))));
    log(show(k.batch_sum("a", &[1, 2, 3, 1], None)));
    log(show(k.batch_sum("a", &[1, 2], Some(early))));
    log(show(k.batch_sum("a", &[], None)));
    log(show(k.batch_sum("missing", &[1], None)));
    log(show(k.multi_sum(&[("a", 1), ("b", 1)], None)));
    log(show(k.batch_add("b", &[[1, 20260301, 4], [2, 20260302, 6], [1, 20260301, 1]])));
    log(show(k.batch_add("b", &[[1, 20260301, 0]])));
    log(show(k.multi_sum(&[("a", 1), ("b", 1), ("a", 2)], None)));
    log(show(k.multi_sum(&[("a", 1), ("b", 1)], Some(early))));
    log(show(k.points("a", 1, march)));
    log(show(k.points("a", 404, march)));
    log(show(k.points("missing", 1, march)));
    log(show(k.batch_set("b", &[[1, 20260301, 10], [2, 20260302, 0], [3, 20260303, 8]])));
    log(show(k.batch_set("c", &[])));
    log(show(k.list_series()));
    log(show(k.info("a")));
    log(show(k.info("b")));
    log(show(k.info("missing")));
    log(show(k.keys("a", None, None)));
    log(show(k.keys("a", None, Some(1))));
    log(show(k.keys("a", Some(1), Some(1))));
    log(show(k.keys("a", Some(1000), Some(10))));
    log(show(k.keys("a", None, Some(0))));
    log(show(k.keys("a", None, Some(10_001))));
    log(show(k.top("a", None, None)));
    log(show(k.top("a", Some(1), Some(early))));
    log(show(k.top("a", Some(1001), None)));
    log(show(k.summary("a", None)));
    log(show(k.summary("a", Some(early))));
    log(show(k.summary("missing", None)));
    log(show(k.reset("a", Some(2))));
    log(show(k.batch_reset("a", &[1, 2, 404, 1])));
    log(show(k.batch_reset("missing", &[1])));
    log(show(k.batch_add("a", &[[1, 20260301, 1], [1, 20260310, 2], [2, 20260310, 3], [3, 20260320, 4]])));
    log(show(k.delete_range("a", Some(1), range(20260301, 20260305))));
    log(show(k.points("a", 1, march)));
    log(show(k.batch_delete_range("a", &[1, 2, 9, 404], range(20260309, 20260311))));
    log(show(k.batch_delete_range("missing", &[1], march)));
    log(show(k.delete_range("a", None, range(20260320, 20260320))));
    log(show(k.keys("a", None, Some(100))));
    log(show(k.batch_add("a", &[[5, 20260101, 1], [5, 20260401, 2], [6, 20260101, 3]])));
    log(show(k.delete_before("a", 20260301)));
    log(show(k.keys("a", None, Some(100))));
    log(show(k.delete_before("missing", 20260301)));
    log(show(k.compact(Some("b"))));
    log(show(k.compact(None)));
    log(show(k.compact(Some("missing"))));
    log(show(k.reset("b", None)));
    log(show(k.info("b")));
    log(show(k.drop_series("b")));
    log(show(k.drop_series("b")));
    log(show(k.list_series()));
    // counter.consume: allowed and refused answers for each window kind,
    // then every error; the sums show refusals changed nothing.
    log(show(k.consume("q", 1, Some(20260301), 2, 3, Window::Day)));
    log(show(k.consume("q", 1, Some(20260301), 2, 3, Window::Day)));
    log(show(k.consume("q", 1, Some(20260302), 1, 3, Window::Days(2))));
    log(show(k.consume("q", 1, Some(20260331), 1, 3, Window::Month)));
    log(show(k.consume("q", 1, Some(20260401), 3, 3, Window::Month)));
    log(show(k.consume("q", 1, Some(20260402), 1, 0, Window::Day)));
    log(show(k.consume("q", 1, Some(20260301), 0, 3, Window::Day)));
    log(show(k.consume("q", 1, Some(20260301), 1, 3, Window::Days(0))));
    log(show(k.consume("q", 1, Some(20260301), 1, 3, Window::Days(367))));
    log(show(k.consume("q", 1, Some(20260230), 1, 3, Window::Day)));
    log(show(k.consume("q-none", 1, Some(20260301), 5, 3, Window::Day)));
    log(show(k.points("q", 1, range(20260301, 20260430))));
    log(show(k.list_series()));
    log(show(k.ping()));
    log(show(k.health().map(|h| (h["status"].clone(), h["role"].clone()))));
    log(show(k.stats().map(|s| s.is_object())));
    log(show(k.metrics().map(|m| m.starts_with("# TYPE karma_uptime_seconds"))));
    // u64 all the way: two increments reach u64::MAX, one more overflows.
    log(show(k.increment("big", 7, Some(20260301), i64::MAX as u64)));
    log(show(k.increment("big", 7, Some(20260302), i64::MAX as u64)));
    log(show(k.increment("big", 7, Some(20260303), 1)));
    log(show(k.increment("big", 7, Some(20260303), 1)));
    log(show(k.sum("big", 7, None)));
    // A window total that would pass u64::MAX is an overflow, not a refusal.
    log(show(k.consume("big", 7, Some(20260303), 1, i64::MAX as u64, Window::Days(3))));
    log(show(k.batch_sum("big", &[7], None)));
    log(show(k.points("big", 7, march)));
    log(show(k.keys("big", None, None)));
    log(show(k.top("big", None, None)));
    out
}

/// Known difference, not the client's: the engine's typed API skips the
/// parser's `from <= to` check (spec/protocol.md §7.6 step 3), so a
/// reversed range sums to 0 in-process but is a validation_error over TCP.
#[test]
fn a_reversed_range_is_refused_in_process_as_over_tcp() {
    let server = Server::start(&[]);
    let client = server.client();
    let engine = Engine::in_memory();
    client.increment("a", 1, Some(20260301), 1).unwrap();
    engine.increment("a", 1, Some(20260301), 1).unwrap();
    let r = Some(range(20260305, 20260301));
    assert_eq!(show(client.sum("a", 1, r)), show(engine.sum("a", 1, r)));
}

#[test]
fn every_method_gives_the_same_result_over_tcp_as_in_process() {
    let server = Server::start(&[]);
    let remote = script(&server.client());
    let local = script(&Engine::in_memory());
    assert_eq!(remote.len(), local.len());
    let mut diffs = Vec::new();
    for (i, (r, l)) in remote.iter().zip(&local).enumerate() {
        if r != l {
            diffs.push(format!("call {i}:\n  tcp:        {r}\n  in-process: {l}"));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Spot checks that the script exercised what it claims.
    assert!(local.iter().any(|l| l.contains("NotFound")));
    assert!(local.iter().any(|l| l.contains("ValidationError")));
    assert!(local.iter().any(|l| l.contains(&u64::MAX.to_string())));
    assert!(local.iter().any(|l| l.contains("allowed: true, used: 3, remaining: 0, limit: 3")));
    assert!(local.iter().any(|l| l.contains("allowed: false")));
    assert!(local.iter().any(|l| l.contains("window: Range { from: 20260401, to: 20260401 }")));
    assert!(local.iter().any(|l| l.contains("Counter overflow key=7 bucket=20260303")));
}

/// One thread per handle makes its share of 5,000 typed consumes against a
/// limit of 1,000 on one key; returns how many were allowed.
fn consume_race<K: Karma + Sync>(handles: &[K]) -> u64 {
    const ATTEMPTS: usize = 5_000;
    const LIMIT: u64 = 1_000;
    thread::scope(|s| {
        let threads: Vec<_> = handles
            .iter()
            .map(|k| {
                s.spawn(move || {
                    let mut allowed = 0;
                    for _ in 0..ATTEMPTS / handles.len() {
                        let quota = k.consume("race", 42, Some(20260528), 1, LIMIT, Window::Month).unwrap();
                        assert_eq!(quota.limit, LIMIT);
                        assert_eq!(quota.remaining, LIMIT - quota.used);
                        assert_eq!((quota.window.from, quota.window.to), (20260501, 20260528));
                        allowed += u64::from(quota.allowed);
                    }
                    allowed
                })
            })
            .collect();
        threads.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

#[test]
fn eight_threads_consume_exactly_the_limit_over_tcp_as_in_process() {
    let server = Server::start(&[]);
    // A client of its own per thread, pool of one: 8 concurrent connections.
    let clients: Vec<Client> =
        (0..8).map(|_| Client::new(ClientConfig { pool_size: 1, ..server.config() }).unwrap()).collect();
    assert_eq!(consume_race(&clients), 1_000);
    assert_eq!(clients[0].sum("race", 42, None).unwrap(), 1_000);
    assert!(clients.iter().all(|c| c.pool_status().connects == 1));
    let engine = Engine::in_memory();
    let engines: Vec<Engine> = (0..8).map(|_| engine.clone()).collect();
    assert_eq!(consume_race(&engines), 1_000);
    assert_eq!(engine.sum("race", 42, None).unwrap(), 1_000);
}

#[test]
fn u64_max_round_trips_exactly() {
    let server = Server::start(&[]);
    let client = server.client();
    let max = i64::MAX as u64; // the largest value the wire accepts (spec/protocol.md §7.1)
    assert_eq!(client.increment("u", 1, Some(20260301), max).unwrap(), max);
    assert_eq!(client.increment("u", 1, Some(20260302), max).unwrap(), max);
    assert_eq!(client.increment("u", 1, Some(20260303), 1).unwrap(), 1);
    assert_eq!(client.sum("u", 1, None).unwrap(), u64::MAX);
    assert_eq!(
        client.points("u", 1, range(20260301, 20260303)).unwrap(),
        vec![(20260301, max), (20260302, max), (20260303, 1)]
    );
    assert_eq!(client.batch_sum("u", &[1, 2], None).unwrap(), vec![u64::MAX, 0]);
    assert_eq!(client.multi_sum(&[("u", 1)], None).unwrap(), vec![u64::MAX]);
    assert_eq!(client.top("u", None, None).unwrap(), vec![(1, u64::MAX)]);
    assert_eq!(client.keys("u", None, None).unwrap().keys, vec![(1, u64::MAX)]);
    assert_eq!(client.info("u").unwrap().total, u64::MAX);
    assert_eq!(client.summary("u", None).unwrap().total, u64::MAX);
    assert_eq!(client.request_value("counter.sum", fields(json!({"series": "u", "key": 1}))).unwrap(), json!(u64::MAX));
    let env = client.request(r#"{"v":2,"op":"counter.sum","series":"u","key":1}"#).unwrap();
    assert_eq!(env["response"].as_u64(), Some(u64::MAX));
    let err = client.increment("u", 1, Some(20260304), 1).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ValidationError), "{err}");
    assert_eq!(client.sum("u", 1, None).unwrap(), u64::MAX);
    // Above i64::MAX the protocol cannot carry a request integer (§7.1):
    // the client refuses it up front instead of sending a line the server
    // would reject whole as invalid_json.
    let err = client.increment("v", 1, Some(20260301), 1 << 63).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ValidationError), "{err}");
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

// ------------------------------------------------------- raw and pipelining

#[test]
fn raw_requests_and_pipelining_use_one_connection() {
    let server = Server::start(&[]);
    let client = server.client();
    let lines: Vec<String> = vec![
        r#"{"v":2,"op":"tree.create","series":"p"}"#.into(),
        r#"{"v":2,"op":"counter.increment","series":"p","key":1,"bucket":20260301,"value":2}"#.into(),
        r#"{"v":2,"op":"nope"}"#.into(),
        "not json\r\n".into(),
        r#"{"v":2,"op":"counter.sum","series":"p","key":1}"#.into(),
    ];
    let replies = client.pipeline(&lines).unwrap();
    assert_eq!(replies.len(), 5);
    assert_eq!(replies[0]["response"], json!("OK"));
    assert_eq!(replies[1]["response"], json!(2));
    assert_eq!(
        (replies[2]["success"].clone(), replies[2]["error_code"].clone()),
        (json!(false), json!("unknown_command"))
    );
    assert_eq!(replies[3]["error_code"], json!("invalid_json"));
    assert_eq!(replies[4], json!({"protocol_version": 2, "success": true, "response": 2, "error_code": null}));
    assert_eq!(client.pool_status().connects, 1);
    assert!(client.pipeline(&[]).unwrap().is_empty());

    let env = client.request(r#"{"v":2,"op":"counter.sum","series":"nope","key":1}"#).unwrap();
    assert_eq!(env["error_code"], json!("not_found"));
    let err = client.request_value("counter.sum", fields(json!({"series": "nope", "key": 1}))).unwrap_err();
    assert!(matches!(&err, ClientError::Server(e) if e.code() == ErrorCode::NotFound), "{err:?}");
    assert_eq!(err.to_string(), "not_found: Tree \"nope\" not found");
    let v = client
        .request_value(
            "series.batch_add",
            fields(json!({"series": "p", "items": [[2, 20260301, 5]], "idempotency_key": "k1"})),
        )
        .unwrap();
    assert_eq!(v, json!({"applied": 1, "total": 5}));
    let err = client.request("{}\n{}").unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)), "{err:?}");

    // A held connection serves several requests in a row.
    let mut conn = client.checkout().unwrap();
    assert_eq!(conn.request(r#"{"v":2,"op":"system.ping"}"#).unwrap()["response"], json!("pong"));
    assert_eq!(conn.pipeline(&lines[4..]).unwrap()[0]["response"], json!(2));
    drop(conn);
    assert_eq!(client.pool_status().connects, 1);
}

// ------------------------------------------------------------------- pool

#[test]
fn an_exhausted_pool_times_out_with_pool_timeout() {
    let server = Server::start(&[]);
    let client =
        Client::new(ClientConfig { pool_size: 1, checkout_timeout: Duration::from_millis(200), ..server.config() })
            .unwrap();
    let held = client.checkout().unwrap();
    let status = client.pool_status();
    assert_eq!((status.open, status.idle), (1, 0));
    let other = client.clone();
    let err = thread::spawn(move || other.sum("x", 1, None)).join().unwrap().unwrap_err();
    assert!(matches!(err, ClientError::PoolTimeout(_)), "{err:?}");
    assert!(err.is_transport() && err.code().is_none());
    drop(held);
    assert_eq!(client.ping().unwrap(), "pong");
    assert_eq!(client.pool_status().connects, 1);
}

#[test]
fn clones_share_one_pool_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Client>();
    let server = Server::start(&[]);
    let client = Client::new(ClientConfig { pool_size: 2, ..server.config() }).unwrap();
    thread::scope(|s| {
        for t in 0..4 {
            let client = client.clone();
            s.spawn(move || {
                for _ in 0..25 {
                    client.increment("shared", 1, Some(20260301), 1).unwrap();
                    client.sum("shared", t, None).unwrap();
                }
            });
        }
    });
    assert_eq!(client.sum("shared", 1, None).unwrap(), 100);
    let status = client.pool_status();
    assert!(status.connects <= 2 && status.open <= 2, "{status:?}");
}

// ----------------------------------------------------- connection failures

#[test]
fn the_next_call_after_a_server_restart_reconnects() {
    let mut server = Server::start(&[]);
    let client = server.client();
    client.increment("r", 1, Some(20260301), 3).unwrap();
    assert_eq!(client.sum("r", 1, None).unwrap(), 3);
    assert_eq!(client.pool_status().connects, 1);
    server.restart();
    assert_eq!(client.sum("r", 1, None).unwrap(), 3);
    // A write (not retryable) works too: the dead idle socket is noticed
    // before it is used.
    assert_eq!(client.increment("r", 1, Some(20260301), 1).unwrap(), 1);
    assert_eq!(client.sum("r", 1, None).unwrap(), 4);
    assert_eq!(client.pool_status().connects, 2);
}

#[test]
fn connections_closed_by_the_server_idle_timeout_are_replaced() {
    let server = Server::start(&["--read-timeout=1"]);
    let client = server.client();
    assert_eq!(client.ping().unwrap(), "pong");
    thread::sleep(Duration::from_millis(2500)); // the server closes the idle connection
    assert_eq!(client.increment("idle", 1, Some(20260301), 1).unwrap(), 1);
    assert_eq!(client.sum("idle", 1, None).unwrap(), 1);
}

#[test]
fn a_read_on_a_dead_reused_connection_is_retried_once() {
    let (port, received) = flaky_server(vec![1]);
    let client = Client::new(ClientConfig::new("127.0.0.1", port)).unwrap();
    assert_eq!(client.sum("s", 1, None).unwrap(), 1);
    assert_eq!(client.sum("s", 1, None).unwrap(), 1); // dies, retried on a new connection
    assert_eq!(received.load(Ordering::SeqCst), 3);
    assert_eq!(client.pool_status().connects, 2);
}

#[test]
fn a_write_without_idempotency_key_is_never_sent_twice() {
    let (port, received) = flaky_server(vec![1]);
    let client = Client::new(ClientConfig::new("127.0.0.1", port)).unwrap();
    assert_eq!(client.sum("s", 1, None).unwrap(), 1);
    let err = client.increment("s", 1, Some(20260301), 1).unwrap_err();
    assert!(matches!(&err, ClientError::Connection(m) if m.contains("idempotency_key")), "{err:?}");
    assert_eq!(received.load(Ordering::SeqCst), 2);
    assert_eq!(client.pool_status().open, 0);
    // The next call connects afresh.
    assert_eq!(client.increment("s", 1, Some(20260301), 1).unwrap(), 1);
    assert_eq!(client.pool_status().connects, 2);
}

#[test]
fn a_write_with_idempotency_key_is_retried() {
    let (port, received) = flaky_server(vec![1, 0]);
    let client = Client::new(ClientConfig::new("127.0.0.1", port)).unwrap();
    assert_eq!(client.sum("s", 1, None).unwrap(), 1);
    let f = fields(json!({"series": "s", "key": 1, "value": 1, "idempotency_key": "abc"}));
    // Connection 1 dies, connection 2 dies too: retried once only.
    let err = client.request_value("counter.increment", f.clone()).unwrap_err();
    assert!(matches!(err, ClientError::Connection(_)), "{err:?}");
    assert_eq!(received.load(Ordering::SeqCst), 3);
    assert_eq!(client.sum("s", 1, None).unwrap(), 1); // connection 3
    let (port, received) = flaky_server(vec![1]);
    let client = Client::new(ClientConfig::new("127.0.0.1", port)).unwrap();
    assert_eq!(client.sum("s", 1, None).unwrap(), 1);
    assert_eq!(client.request_value("counter.increment", f).unwrap(), json!(1));
    assert_eq!(received.load(Ordering::SeqCst), 3);
    // Raw lines follow the same rule.
    let (port, received) = flaky_server(vec![1, 1]);
    let client = Client::new(ClientConfig::new("127.0.0.1", port)).unwrap();
    client.ping().unwrap_err(); // `1` is not a string: a protocol error, connection kept
    let line = r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,1,1]],"idempotency_key":"x"}"#;
    assert_eq!(client.request(line).unwrap()["response"], json!(1));
    let err = client.request(r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,1,1]]}"#).unwrap_err();
    assert!(matches!(err, ClientError::Connection(_)), "{err:?}");
    assert_eq!(received.load(Ordering::SeqCst), 4);
}

#[test]
fn a_server_that_never_answers_gives_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).ok(); // until the client gives up
        sink
    });
    let client =
        Client::new(ClientConfig { read_timeout: Duration::from_millis(300), ..ClientConfig::new("127.0.0.1", port) })
            .unwrap();
    let err = client.sum("s", 1, None).unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    assert!(err.is_transport());
    // The timed-out connection was closed, not returned to the pool.
    assert_eq!(client.pool_status().open, 0);
    let received = silent.join().unwrap();
    assert_eq!(String::from_utf8(received).unwrap(), "{\"v\":2,\"op\":\"counter.sum\",\"series\":\"s\",\"key\":1}\n");
}

#[test]
fn nothing_listening_is_a_connection_error() {
    let port = free_port();
    let client = Client::new(ClientConfig::new("127.0.0.1", port)).unwrap();
    let err = client.ping().unwrap_err();
    assert!(matches!(err, ClientError::Connection(_)), "{err:?}");
    assert_eq!(client.pool_status().open, 0);
}

// ------------------------------------------------------------------ token

#[test]
fn the_configured_token_goes_with_every_request() {
    let server = Server::start(&["--auth-token=w"]);
    let anonymous = server.client();
    let err = anonymous.sum("t", 1, None).unwrap_err();
    assert!(matches!(&err, ClientError::Server(e) if e.code() == ErrorCode::Unauthorized), "{err:?}");
    assert_eq!(anonymous.ping().unwrap_err().code(), Some(ErrorCode::Unauthorized));

    let client = Client::from_url(&format!("karma://127.0.0.1:{}?token=w&pool_size=2", server.port)).unwrap();
    assert_eq!(client.increment("t", 1, Some(20260301), 2).unwrap(), 2);
    assert_eq!(client.sum("t", 1, None).unwrap(), 2);
    assert_eq!(client.ping().unwrap(), "pong");
    assert_eq!(client.request(r#"{"v":2,"op":"counter.sum","series":"t","key":1}"#).unwrap()["response"], json!(2));
    assert_eq!(client.request_value("tree.list", Map::new()).unwrap(), json!(["t"]));
    let replies = client.pipeline(&[r#"{"v":2,"op":"system.ping"}"#.to_string(), "{}".to_string()]).unwrap();
    assert_eq!(replies[0]["response"], json!("pong"));
    assert_eq!(replies[1]["error_code"], json!("unsupported_protocol"));
    // A line's own token wins over the configured one.
    let env = client.request(r#"{"v":2,"op":"system.ping","token":"wrong"}"#).unwrap();
    assert_eq!(env["error_code"], json!("unauthorized"));
}

// ------------------------------------------------------------------- fork

#[test]
fn a_forked_child_opens_its_own_connections() {
    let server = Server::start(&[]);
    let client = server.client();
    client.increment("f", 1, Some(20260301), 1).unwrap();
    assert_eq!(client.pool_status().connects, 1);

    let mut fds = [0; 2];
    // SAFETY: plain pipe/fork/waitpid; the child only uses the client,
    // writes to the pipe and leaves with _exit (no destructors, no test
    // harness code).
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::close(fds[0]);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let added = client.increment("f", 1, Some(20260301), 10).map_err(|e| e.to_string())?;
                let sum = client.sum("f", 1, None).map_err(|e| e.to_string())?;
                let status = client.pool_status();
                Ok::<String, String>(format!("{added} {sum} {} {}", status.connects, status.open))
            }));
            let text = match outcome {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => format!("error {e}"),
                Err(_) => "panic".to_string(),
            };
            libc::write(fds[1], text.as_ptr().cast(), text.len());
            libc::_exit(0);
        }
        libc::close(fds[1]);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
        let mut buf = [0u8; 256];
        let n = libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
        libc::close(fds[0]);
        let text = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
        // The child opened exactly one connection of its own.
        assert_eq!(text, "10 11 1 1");
    }
    // The parent's pooled connection was left alone: reused, no reconnect.
    assert_eq!(client.sum("f", 1, None).unwrap(), 11);
    assert_eq!(client.increment("f", 1, Some(20260301), 1).unwrap(), 1);
    let status = client.pool_status();
    assert_eq!((status.connects, status.open), (1, 1));
}

// ----------------------------------------------------------------- config

#[test]
fn config_from_url_and_environment_reach_the_server() {
    let server = Server::start(&[]);
    let url = format!("tcp://127.0.0.1:{}?pool_size=3&read_timeout=2.5", server.port);
    let config = ClientConfig::from_env_with(|name| match name {
        "KARMA_URL" => Some(url.clone()),
        "KARMA_HOST" => Some("203.0.113.1".to_string()), // KARMA_URL wins
        "KARMA_CONNECT_TIMEOUT" => Some("0.5".to_string()),
        _ => None,
    })
    .unwrap();
    assert_eq!((config.pool_size, config.read_timeout), (3, Duration::from_millis(2500)));
    assert_eq!(config.connect_timeout, Duration::from_millis(500));
    let client = Client::new(config).unwrap();
    assert_eq!(client.ping().unwrap(), "pong");

    let err = Client::new(ClientConfig { pool_size: 0, ..server.config() }).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    let err = ClientConfig::from_env_with(|n| (n == "KARMA_READ_TIMEOUT").then(|| "fast".to_string())).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    assert!(err.message().contains("KARMA_READ_TIMEOUT"), "{err}");
}

/// Request integers above i64::MAX are refused by the client before anything
/// is sent (the server would answer `invalid_json` for the whole line).
#[test]
fn integers_above_i64_max_are_refused_before_sending() {
    let client = karma_client::Client::new(karma_client::ClientConfig::new("127.0.0.1", 9)).unwrap();
    let err = client.increment("s", u64::MAX, Some(20260101), 1).unwrap_err();
    assert_eq!(err.code(), Some(karma_engine::ErrorCode::ValidationError), "{err}");
    assert!(err.to_string().contains("9223372036854775807"), "{err}");
    assert_eq!(client.pool_status().connects, 0, "nothing was sent");
}

// --------------------------------------------------------------- pipeline

/// Starts `n` calls on a pipeline at once (`call(i, done)`), then waits for
/// every answer (in the order they arrived).
fn all_answers<T: Send + 'static>(
    n: usize,
    call: impl Fn(usize, Box<dyn FnOnce(Result<T, ClientError>) + Send>),
) -> Vec<Result<T, ClientError>> {
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..n {
        let tx = tx.clone();
        call(i, Box::new(move |answer| tx.send(answer).unwrap()));
    }
    (0..n).map(|_| rx.recv().unwrap()).collect()
}

#[test]
fn a_pipeline_answers_many_calls_in_flight() {
    let server = Server::start(&[]);
    let pipeline = Pipeline::new(server.config()).unwrap();
    let answers = all_answers(1000, |i, done| pipeline.increment("p", (i % 10) as u64, Some(20260301), 1, done));
    assert!(answers.iter().all(|a| a == &Ok(1)), "{answers:?}");
    assert_eq!(server.client().batch_sum("p", &(0..10).collect::<Vec<_>>(), None).unwrap(), vec![100; 10]);
    let open = pipeline.connections();
    assert!((1..=server.config().pool_size).contains(&open), "{open} connections");

    let quotas = all_answers(7, |_, done| pipeline.consume("q", 1, Some(20260301), 1, 5, Window::Day, done));
    assert_eq!(quotas.iter().filter(|q| q.as_ref().unwrap().allowed).count(), 5);
    let decremented = all_answers(1, |_, done| pipeline.decrement("p", 1, Some(20260301), 40, done));
    assert_eq!(decremented, vec![Ok(40)]);
    assert_eq!(server.client().sum("p", 1, None).unwrap(), 60);
}

#[test]
fn a_pipeline_sends_the_token_and_gets_server_errors() {
    let server = Server::start(&["--auth-token=w"]);
    let with = Pipeline::new(ClientConfig { token: Some("w".into()), ..server.config() }).unwrap();
    assert_eq!(all_answers(1, |_, done| with.increment("t", 1, None, 2, done)), vec![Ok(2)]);
    let without = Pipeline::new(server.config()).unwrap();
    let answer = all_answers(1, |_, done| without.increment("t", 1, None, 2, done)).remove(0);
    assert_eq!(answer.unwrap_err().code(), Some(ErrorCode::Unauthorized));
    let too_big = all_answers(1, |_, done| with.increment("t", 1, None, u64::MAX, done)).remove(0);
    assert!(matches!(too_big, Err(ClientError::Invalid(_))), "{too_big:?}");
}

#[test]
fn a_pipeline_never_sends_a_write_twice_and_replaces_a_dead_connection() {
    let (port, received) = flaky_server(vec![1]);
    let pipeline = Pipeline::new(ClientConfig::new("127.0.0.1", port)).unwrap();
    let increment = || all_answers(1, |_, done| pipeline.increment("s", 1, None, 1, done)).remove(0);
    assert_eq!(increment(), Ok(1));
    // The server reads the second one and closes without answering.
    let err = increment().unwrap_err();
    assert!(matches!(&err, ClientError::Connection(m) if m.contains("may have been applied")), "{err:?}");
    assert_eq!(received.load(Ordering::SeqCst), 2);
    // The next call goes to a new connection.
    assert_eq!(increment(), Ok(1));
    assert_eq!(received.load(Ordering::SeqCst), 3);
}

#[test]
fn a_pipeline_times_out_and_reports_refused_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).ok(); // until the client gives up
    });
    let config = ClientConfig { read_timeout: Duration::from_millis(300), ..ClientConfig::new("127.0.0.1", port) };
    let pipeline = Pipeline::new(config).unwrap();
    let answers = all_answers(3, |i, done| pipeline.increment("s", i as u64, None, 1, done));
    assert!(answers.iter().all(|a| matches!(a, Err(ClientError::Timeout(_)))), "{answers:?}");
    silent.join().unwrap();

    let refused = Pipeline::new(ClientConfig::new("127.0.0.1", free_port())).unwrap();
    let answer = all_answers(1, |_, done| refused.increment("s", 1, None, 1, done)).remove(0);
    assert!(matches!(answer, Err(ClientError::Connection(_))), "{answer:?}");
}

// ------------------------------------------------------- response size bound

/// A fake server that answers each request line (on whatever connection)
/// with the next length of `lengths`: a success envelope whose line is
/// exactly that many bytes before its `\n`.
fn sized_answers_server(lengths: Vec<usize>) -> u16 {
    const HEAD: &str = r#"{"protocol_version":2,"success":true,"response":""#;
    const TAIL: &str = r#"","error_code":null}"#;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lengths = Arc::new(std::sync::Mutex::new(lengths.into_iter()));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let lengths = Arc::clone(&lengths);
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    let Ok(_) = line else { return };
                    let Some(len) = lengths.lock().unwrap().next() else { return };
                    let answer = format!("{HEAD}{}{TAIL}\n", "x".repeat(len - HEAD.len() - TAIL.len()));
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn answers_longer_than_max_response_bytes_fail_the_call_and_close_the_connection() {
    let port = sized_answers_server(vec![200, 201, 200, 5_000_000]);
    let config = ClientConfig { max_response_bytes: 200, ..ClientConfig::new("127.0.0.1", port) };
    let client = Client::new(config.clone()).unwrap();
    let ping = r#"{"v":2,"op":"system.ping"}"#;
    // Exactly the limit is fine.
    assert_eq!(client.request_line(ping).unwrap().len(), 200);
    let err = client.request_line(ping).unwrap_err();
    assert!(err.is_response_too_large(), "{err:?}");
    assert!(matches!(err, ClientError::Protocol(_)) && !err.is_transport(), "{err:?}");
    // The rest of that answer is never read: the connection is gone, and the
    // next call opens another.
    assert_eq!(client.pool_status().open, 0);
    assert_eq!(client.request_line(ping).unwrap().len(), 200);
    assert_eq!(client.pool_status().connects, 2);

    // The pipelined client keeps the same bound.
    let pipeline = Pipeline::new(config).unwrap();
    let answer = all_answers(1, |_, done| pipeline.increment("s", 1, None, 1, done)).remove(0);
    assert!(answer.as_ref().is_err_and(ClientError::is_response_too_large), "{answer:?}");

    // Without a bound (the default) nothing is refused.
    let unbounded = sized_answers_server(vec![5_000_000]);
    let line = Client::new(ClientConfig::new("127.0.0.1", unbounded)).unwrap().request_line(ping).unwrap();
    assert_eq!(line.len(), 5_000_000);
}
