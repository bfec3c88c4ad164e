//! `counter.consume` over TCP against the real `karma` binary: 8 connections
//! race 5,000 consumes against a limit of 1,000; exactly 1,000 are allowed,
//! the counter is exactly 1,000 on a replica that followed the race, and
//! still exactly 1,000 after the master is SIGKILLed and restarted (WAL
//! replay). A SIGKILL in the middle of the race, with a request in flight
//! on every connection, loses no acknowledged consume, and the race resumed
//! on the restarted server still stops at exactly 1,000. No timing
//! assertions: convergence is polled with a deadline.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use common::{Client, DEADLINE};

const CONNECTIONS: usize = 8;
const ATTEMPTS: usize = 5_000;
const CONSUME: &str = r#"{"v":2,"op":"counter.consume","series":"quota","key":42,"bucket":20260528,"limit":1000,"window":"days","days":30}"#;
const SUM: &str = r#"{"v":2,"op":"counter.sum","series":"quota","key":42}"#;

/// A `karma` process on `dir` (kept across restarts); killed on drop.
struct Node(karma_testkit::Server);

impl Node {
    fn start(dir: &Path, extra: &[String]) -> Node {
        Node(
            karma_testkit::Server::builder(common::BIN)
                .directory(dir)
                .args(&["--wal-fsync=always"])
                .args(extra)
                .start(),
        )
    }

    fn connect(&self) -> Client {
        Client::connect(self.0.port)
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        self.0.kill();
    }
}

fn response(line: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON answer");
    v["response"].clone()
}

/// `CONNECTIONS` connections send `ATTEMPTS` consumes in all; the number
/// allowed.
fn race(node: &Node) -> usize {
    let handles: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let mut client = node.connect();
            thread::spawn(move || {
                (0..ATTEMPTS / CONNECTIONS)
                    .filter(|_| {
                        let answer = client.request(CONSUME);
                        response(&answer)["allowed"].as_bool().unwrap_or_else(|| panic!("not a quota: {answer}"))
                    })
                    .count()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("client thread")).sum()
}

#[test]
fn eight_connections_allow_exactly_the_limit_on_master_replica_and_after_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (master_dir, slave_dir) = (tmp.path().join("master"), tmp.path().join("slave"));
    std::fs::create_dir_all(&master_dir).unwrap();
    std::fs::create_dir_all(&slave_dir).unwrap();
    let mut master = Node::start(&master_dir, &[]);
    // The replica follows the master during the race, so it applies the
    // allowed consumes as they stream in (as the increments they are logged as).
    let slave = Node::start(
        &slave_dir,
        &[
            "--role=slave".into(),
            "--replication-source-host=127.0.0.1".into(),
            format!("--replication-source-port={}", master.0.port),
            "--replication-poll-interval-ms=50".into(),
        ],
    );

    assert_eq!(race(&master), 1_000);
    assert_eq!(response(&master.connect().request(SUM)), 1_000);

    let mut replica = slave.connect();
    let started = Instant::now();
    while response(&replica.request(SUM)) != 1_000 {
        assert!(started.elapsed() < DEADLINE, "replica did not converge: {}", replica.request(SUM));
        sleep(Duration::from_millis(50));
    }
    let refused = replica.request(CONSUME);
    assert_eq!(common::error_code(&refused).as_deref(), Some("forbidden"), "{refused}");

    master.kill();
    let master = Node::start(&master_dir, &[]);
    let mut client = master.connect();
    assert_eq!(response(&client.request(SUM)), 1_000, "WAL replay keeps exactly the allowed consumes");
    let again = response(&client.request(CONSUME));
    assert_eq!((again["allowed"].as_bool(), again["used"].as_u64()), (Some(false), Some(1_000)));
    assert_eq!(response(&replica.request(SUM)), 1_000);
}

fn allowed(answer: &str) -> bool {
    response(answer)["allowed"].as_bool().unwrap_or_else(|| panic!("not a quota: {answer}"))
}

fn sum_on(node: &Node) -> u64 {
    let answer = node.connect().request(SUM);
    response(&answer).as_u64().unwrap_or_else(|| panic!("not a sum: {answer}"))
}

#[test]
fn a_sigkill_mid_race_loses_no_acknowledged_consume_and_the_limit_holds_after_restart() {
    const KILL_AFTER: u64 = 400;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut master = Node::start(tmp.path(), &[]);
    let acked = AtomicU64::new(0);
    let (sent_last, killed) = (Barrier::new(CONNECTIONS + 1), Barrier::new(CONNECTIONS + 1));
    // Each connection consumes until `KILL_AFTER` allowed answers have come
    // back in all, then sends one more request and does not read its answer
    // until the master is dead: 8 requests in flight at the kill, each
    // applied or not. Under --wal-fsync=always an answer means durable.
    let in_doubt = thread::scope(|s| {
        let threads: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let mut client = master.connect();
                let (acked, sent_last, killed) = (&acked, &sent_last, &killed);
                s.spawn(move || {
                    while acked.load(Ordering::SeqCst) < KILL_AFTER {
                        if allowed(&client.request(CONSUME)) {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    client.send(format!("{CONSUME}\n").as_bytes());
                    sent_last.wait();
                    killed.wait();
                    match client.read_line() {
                        Some(answer) => {
                            if allowed(&answer) {
                                acked.fetch_add(1, Ordering::SeqCst);
                            }
                            0
                        }
                        None => 1,
                    }
                })
            })
            .collect();
        sent_last.wait();
        master.kill();
        killed.wait();
        threads.into_iter().map(|t| t.join().expect("client thread")).sum::<u64>()
    });
    let acked = acked.into_inner();
    assert!((KILL_AFTER..1_000 - CONNECTIONS as u64).contains(&acked), "{acked} acknowledged before the kill");

    let master = Node::start(tmp.path(), &[]);
    let durable = sum_on(&master);
    assert!(
        acked <= durable && durable <= acked + in_doubt,
        "after replay {durable}: {acked} acknowledged, {in_doubt} in doubt"
    );
    // The race resumed on the restarted master stops at the same limit.
    assert_eq!(race(&master) as u64, 1_000 - durable);
    assert_eq!(sum_on(&master), 1_000);
}
