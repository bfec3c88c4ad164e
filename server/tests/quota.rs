//! `counter.consume` over TCP against the real `karma` binary: 8 connections
//! race 5,000 consumes against a limit of 1,000; exactly 1,000 are allowed,
//! the counter is exactly 1,000 on a replica that replicated the WAL, and
//! still exactly 1,000 after the master is SIGKILLed and restarted (WAL
//! replay). No timing assertions: convergence is polled with a deadline.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use common::{free_port, karma, Client, DEADLINE};

const CONNECTIONS: usize = 8;
const ATTEMPTS: usize = 5_000;
const CONSUME: &str = r#"{"v":2,"op":"counter.consume","series":"quota","key":42,"bucket":20260528,"limit":1000,"window":"days","days":30}"#;
const SUM: &str = r#"{"v":2,"op":"counter.sum","series":"quota","key":42}"#;

/// A `karma` process on `dir` (kept across restarts); killed on drop.
struct Node {
    child: Child,
    port: u16,
}

impl Node {
    fn start(dir: &Path, extra: &[String]) -> Node {
        let port = free_port();
        let child = karma()
            .arg("--bind=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--directory={}", dir.display()))
            .arg("--log=false")
            .arg("--wal-fsync=always")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn karma");
        let mut node = Node { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(node.child.try_wait().expect("try_wait").is_none(), "karma exited at startup");
            assert!(started.elapsed() < DEADLINE, "karma did not accept connections");
            sleep(Duration::from_millis(20));
        }
        node
    }

    fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// SIGKILL (what `Child::kill` sends on unix), then reap.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

    assert_eq!(race(&master), 1_000);
    assert_eq!(response(&master.connect().request(SUM)), 1_000);

    let slave = Node::start(
        &slave_dir,
        &[
            "--role=slave".into(),
            "--replication-source-host=127.0.0.1".into(),
            format!("--replication-source-port={}", master.port),
            "--replication-poll-interval-ms=50".into(),
        ],
    );
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
