//! Replication end to end: real `karma` processes (a master and its slaves)
//! on free ports with temporary data directories. Every procedure in
//! docs/replication.md is exercised here; the runbook names these tests.
//!
//! No timing assertions: whatever "eventually" happens (a slave catching up,
//! a re-bootstrap) is polled for with a generous deadline, and the test fails
//! only if the deadline passes.

mod common;

use std::path::{Path, PathBuf};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use common::{error_line, free_port, Client, BIN};

/// Bound for convergence and restarts on a busy 2-core machine; never a
/// performance expectation.
const CONVERGE: Duration = Duration::from_secs(60);
/// Every write lands in 2026, so this one range covers all of them.
const ALL_2026: &str = r#"{"from":20260101,"to":20261231}"#;

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Temporary home of one test's nodes: a data directory and a stderr log per
/// node.
struct Cluster {
    tmp: TempDir,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster { tmp: tempfile::tempdir().expect("tempdir") }
    }

    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("data dir");
        dir
    }

    fn master(&self, name: &str, extra: &[&str]) -> Node {
        Node::start(self.tmp.path(), &self.dir(name), extra)
    }

    /// A slave of `master` with a 50 ms poll interval, plus `extra`.
    fn slave(&self, name: &str, master: &Node, extra: &[&str]) -> Node {
        Node::start(self.tmp.path(), &self.dir(name), &slave_args(master, extra))
    }
}

fn slave_args(master: &Node, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--role=slave".to_string(),
        "--replication-source-host=127.0.0.1".to_string(),
        format!("--replication-source-port={}", master.port),
        "--replication-poll-interval-ms=50".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// One `karma` process on `dir`, started by the shared test kit. Restarts
/// reuse the directory and the arguments (a new port each time); every
/// start appends its stderr to one log per node.
struct Node {
    server: Option<karma_testkit::Server>,
    port: u16,
    dir: PathBuf,
    logs: PathBuf,
    args: Vec<String>,
    /// The port of the first start, when the test chose it.
    first_port: Option<u16>,
}

impl Node {
    fn start<S: AsRef<str>>(logs: &Path, dir: &Path, args: &[S]) -> Node {
        Node::start_at(logs, dir, args, None)
    }

    /// Like [`Node::start`], on `port` if given (no retry on another port).
    fn start_at<S: AsRef<str>>(logs: &Path, dir: &Path, args: &[S], port: Option<u16>) -> Node {
        let mut node = Node {
            server: None,
            port: 0,
            dir: dir.to_path_buf(),
            logs: logs.to_path_buf(),
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            first_port: port,
        };
        node.launch();
        node
    }

    fn stderr_path(&self) -> PathBuf {
        let name = self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.logs.join(format!("{name}.stderr"))
    }

    /// Starts the process and waits until it accepts connections (a slave
    /// with an empty directory first has to bootstrap).
    fn launch(&mut self) {
        assert!(!self.running(), "already running");
        let mut builder = karma_testkit::Server::builder(BIN)
            .directory(&self.dir)
            .stderr_log(self.stderr_path())
            .args(&["--wal-fsync=false"])
            .args(&self.args);
        if let Some(port) = self.first_port.take() {
            builder = builder.port(port);
        }
        let server = builder.start();
        self.port = server.port;
        self.server = Some(server);
    }

    fn running(&self) -> bool {
        self.server.as_ref().is_some_and(karma_testkit::Server::is_running)
    }

    fn server(&self) -> &karma_testkit::Server {
        self.server.as_ref().expect("running")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        self.server().signal(sig);
    }

    /// SIGTERM: drain, final snapshot, exit 0.
    fn stop(&mut self) {
        let status = self.server.as_mut().expect("running").stop();
        assert!(status.success(), "clean stop failed with {status}: {}", self.stderr());
    }

    /// SIGKILL: no drain, no snapshot.
    fn kill(&mut self) {
        self.server.as_mut().expect("running").kill();
    }

    /// Starts again on the same directory with the same arguments.
    fn restart(&mut self) {
        self.launch();
    }

    /// Starts again on the same directory with other arguments.
    fn restart_with<S: AsRef<str>>(&mut self, args: &[S]) {
        self.args = args.iter().map(|a| a.as_ref().to_string()).collect();
        self.launch();
    }

    fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// The whole reply envelope of one request.
    fn call(&self, request: &Value) -> Value {
        let line = self.client().request(&request.to_string());
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }

    /// The `response` of a request that must succeed.
    fn ok(&self, request: &Value) -> Value {
        let reply = self.call(request);
        assert_eq!(reply["success"], true, "{request} failed: {reply}");
        reply["response"].clone()
    }

    fn status(&self) -> Value {
        self.ok(&op("replication.status"))
    }

    fn metrics(&self) -> String {
        self.ok(&op("system.metrics")).as_str().expect("metrics text").to_string()
    }
}

fn op(name: &str) -> Value {
    json!({"v": 2, "op": name})
}

fn u(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or_else(|| panic!("{field} missing in {v}"))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("metric {name} missing in\n{text}"))
        .parse()
        .expect("metric value")
}

/// Sends `lines` pipelined on one connection (in rounds of 200) and checks
/// every reply succeeded.
fn pipeline(port: u16, lines: &[String]) {
    let mut c = Client::connect(port);
    for round in lines.chunks(200) {
        let mut bytes = String::new();
        for l in round {
            bytes.push_str(l);
            bytes.push('\n');
        }
        c.send(bytes.as_bytes());
        for l in round {
            let reply = c.read_line().expect("reply");
            assert!(reply.contains(r#""success":true"#), "{l} -> {reply}");
        }
    }
}

/// A day of 2026 for `i` (all inside [`ALL_2026`]).
fn day(i: u64) -> u64 {
    20260000 + (1 + i % 12) * 100 + 1 + (i / 12) % 28
}

// ---------------------------------------------------------------------------
// Workload: every kind of replicated write
// ---------------------------------------------------------------------------

/// `n` fast-path increments on `series`; returns the amount added.
fn increments(port: u16, series: &str, n: u64, seed: u64) -> u64 {
    let mut total = 0;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let value = 1 + (i + seed) % 5;
            total += value;
            json!({"v":2,"op":"counter.increment","series":series,"key":(i * 7 + seed) % 41,
                   "bucket":day(i + seed),"value":value})
            .to_string()
        })
        .collect();
    pipeline(port, &lines);
    total
}

/// `n` batch_adds of 25 items each; returns the amount added.
fn batch_adds(port: u16, series: &str, n: u64) -> u64 {
    let mut total = 0;
    let lines: Vec<String> = (0..n)
        .map(|b| {
            let items: Vec<Value> = (0..25u64)
                .map(|i| {
                    let value = 1 + (b + i) % 9;
                    total += value;
                    json!([(b * 25 + i) % 97, day(b + i), value])
                })
                .collect();
            json!({"v":2,"op":"series.batch_add","series":series,"items":items}).to_string()
        })
        .collect();
    pipeline(port, &lines);
    total
}

/// `n` idempotent increments, each sent twice (the retry is answered from
/// the idempotency record and adds nothing), plus idempotent batch_sets and
/// decrements; returns the net amount of the increments and decrements.
fn idempotent_writes(port: u16, series: &str, n: u64, prefix: &str) -> u64 {
    let mut net = 0;
    let mut c = Client::connect(port);
    for i in 0..n {
        let value = 10 + i % 7;
        net += value;
        let req = json!({"v":2,"op":"counter.increment","series":series,"key":i % 13,"bucket":day(i),
                         "value":value,"idempotency_key":format!("{prefix}-inc-{i}")})
        .to_string();
        let first = c.request(&req);
        assert!(first.contains(r#""success":true"#), "{first}");
        let retry = c.request(&req);
        assert!(retry.contains(r#""idempotent":true"#), "retry not deduplicated: {retry}");
        if i % 10 == 9 {
            let req = json!({"v":2,"op":"counter.decrement","series":series,"key":i % 13,"bucket":day(i),
                             "value":1,"idempotency_key":format!("{prefix}-dec-{i}")})
            .to_string();
            assert!(c.request(&req).contains(r#""success":true"#));
            assert!(c.request(&req).contains(r#""idempotent":true"#));
            net -= 1;
        }
    }
    // batch_set on a separate series (its totals are not part of `net`).
    for i in 0..n / 10 {
        let req = json!({"v":2,"op":"series.batch_set","series":format!("{series}-set"),
                         "items":[[i, day(i), i * 3], [i + 1000, day(i + 1), 5]],
                         "idempotency_key":format!("{prefix}-set-{i}")})
        .to_string();
        assert!(c.request(&req).contains(r#""success":true"#));
        assert!(c.request(&req).contains(r#""idempotent":true"#));
    }
    net
}

/// `streams` committed `add` streams of 4 chunks (one chunk re-sent, which
/// is skipped) into `series`, and one `replace_series` stream into
/// `<series>-replaced`; returns the amount the add streams added.
fn ingest_streams(port: u16, series: &str, streams: u64, prefix: &str) -> u64 {
    let mut total = 0;
    let mut c = Client::connect(port);
    fn ok(c: &mut Client, req: Value) -> String {
        let reply = c.request(&req.to_string());
        assert!(reply.contains(r#""success":true"#), "{req} -> {reply}");
        reply
    }
    for s in 0..streams {
        let id = format!("{prefix}-add-{s}");
        ok(&mut c, json!({"v":2,"op":"ingest.begin","stream_id":id,"mode":"add"}));
        for seq in 1..=4u64 {
            let items: Vec<Value> = (0..10u64)
                .map(|i| {
                    let value = 1 + (s + seq + i) % 4;
                    total += value;
                    json!([(s * 40 + seq * 10 + i) % 53, day(seq + i), value])
                })
                .collect();
            let chunk = json!({"v":2,"op":"ingest.chunk","stream_id":id,"series":series,"chunk_seq":seq,"items":items});
            ok(&mut c, chunk.clone());
            if seq == 2 {
                let again = ok(&mut c, chunk);
                assert!(again.contains(r#""skipped":true"#), "{again}");
            }
        }
        ok(&mut c, json!({"v":2,"op":"ingest.commit","stream_id":id}));
    }
    let id = format!("{prefix}-replace");
    let replaced = format!("{series}-replaced");
    ok(&mut c, json!({"v":2,"op":"ingest.begin","stream_id":id,"mode":"replace_series"}));
    for seq in 1..=3u64 {
        let items: Vec<Value> = (0..10u64).map(|i| json!([seq * 10 + i, day(i), seq + i])).collect();
        ok(&mut c, json!({"v":2,"op":"ingest.chunk","stream_id":id,"series":replaced,"chunk_seq":seq,"items":items}));
    }
    ok(&mut c, json!({"v":2,"op":"ingest.commit","stream_id":id}));
    total
}

/// Resets, range deletes and explicit series creation/drop.
fn maintenance(port: u16, series: &str) {
    let base = increments(port, series, 200, 3);
    assert!(base > 0);
    let lines = [
        json!({"v":2,"op":"counter.reset","series":series,"key":3}),
        json!({"v":2,"op":"counter.delete_range","series":series,"key":4,"range":{"from":20260101,"to":20260331}}),
        json!({"v":2,"op":"counter.batch_delete_range","series":series,"keys":[5,6],
               "range":{"from":20260401,"to":20260630}}),
        json!({"v":2,"op":"tree.create","series":format!("{series}-empty")}),
        json!({"v":2,"op":"tree.create","series":format!("{series}-dropped")}),
        json!({"v":2,"op":"tree.drop","series":format!("{series}-dropped")}),
    ];
    pipeline(port, &lines.iter().map(Value::to_string).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// Convergence and comparison
// ---------------------------------------------------------------------------

/// Waits until `slave` has replayed everything `master` logged (the master
/// must be quiet) and returns the slave's status.
fn wait_caught_up<M: Status>(master: &M, slave: &Node) -> Value {
    let target = u(&master.status(), "wal_current_lsn");
    let started = Instant::now();
    loop {
        let s = slave.status();
        if u(&s, "replayed_lsn") == target && u(&s, "replication_lag_entries") == 0 {
            return s;
        }
        if started.elapsed() > CONVERGE {
            panic!(
                "slave did not reach master LSN {target} in {CONVERGE:?}; slave status {s}\nslave stderr: {}",
                slave.stderr()
            );
        }
        sleep(Duration::from_millis(50));
    }
}

fn series_names(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = serde_json::from_value(node.ok(&op("tree.list"))).expect("names");
    names.sort();
    names
}

/// Every series' `tree.info` and `tree.series` over all of 2026.
fn dump(node: &Node) -> Vec<(String, Value, Value)> {
    let range: Value = serde_json::from_str(ALL_2026).expect("range");
    series_names(node)
        .into_iter()
        .map(|name| {
            let info = node.ok(&json!({"v":2,"op":"tree.info","series":name}));
            let points = node.ok(&json!({"v":2,"op":"tree.series","series":name,"range":range}));
            (name, info, points)
        })
        .collect()
}

fn assert_same_data(master: &Node, slave: &Node) {
    let (m, s) = (dump(master), dump(slave));
    assert_eq!(
        m.iter().map(|d| &d.0).collect::<Vec<_>>(),
        s.iter().map(|d| &d.0).collect::<Vec<_>>(),
        "series lists differ"
    );
    for (a, b) in m.iter().zip(&s) {
        assert_eq!(a.1, b.1, "tree.info of {} differs", a.0);
        assert_eq!(a.2, b.2, "tree.series of {} differs", a.0);
    }
}

fn total(node: &Node, series: &str) -> u64 {
    u(&node.ok(&json!({"v":2,"op":"tree.info","series":series})), "total")
}

/// Waits until the slave has replayed at least `lsn`.
fn wait_replayed_at_least(slave: &Node, lsn: u64) -> Value {
    let started = Instant::now();
    loop {
        let s = slave.status();
        if u(&s, "replayed_lsn") >= lsn {
            return s;
        }
        assert!(started.elapsed() < CONVERGE, "slave never reached LSN {lsn}: {s}\n{}", slave.stderr());
        sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// a. Master under write load, slave attached from the start
// ---------------------------------------------------------------------------

#[test]
fn slave_converges_with_master_under_concurrent_write_load() {
    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    let slave = cluster.slave("slave", &master, &["--replication-batch-size=500"]);
    // The master had nothing: one bootstrap that installed nothing.
    let s = slave.status();
    assert_eq!(s["role"], "slave");
    assert_eq!(u(&s, "replication_bootstrap_success_count"), 1, "{s}");

    let port = master.port;
    let writers = vec![
        thread::spawn(move || increments(port, "inc", 6000, 1)),
        thread::spawn(move || increments(port, "inc", 6000, 2)),
        thread::spawn(move || batch_adds(port, "batch", 600)),
        thread::spawn(move || idempotent_writes(port, "idem", 500, "a")),
        thread::spawn(move || ingest_streams(port, "ingest", 40, "a")),
        thread::spawn(move || {
            maintenance(port, "maint");
            0
        }),
    ];
    // Read the slave while it applies: reads are served during catch-up.
    for _ in 0..20 {
        let s = slave.status();
        assert_eq!(s["role"], "slave");
        sleep(Duration::from_millis(25));
    }
    let sums: Vec<u64> = writers.into_iter().map(|w| w.join().expect("writer")).collect();

    let s = wait_caught_up(&master, &slave);
    assert!(u(&s, "replication_entries_applied") > 0);
    assert_eq!(u(&s, "replication_poll_error_count"), 0, "{s}");
    assert_same_data(&master, &slave);
    // And the data is what the writers wrote (nothing lost or doubled).
    assert_eq!(total(&slave, "inc"), sums[0] + sums[1]);
    assert_eq!(total(&slave, "batch"), sums[2]);
    assert_eq!(total(&slave, "idem"), sums[3]);
    assert_eq!(total(&slave, "ingest"), sums[4]);
    // The slave logged every entry under the master's LSNs.
    assert_eq!(u(&s, "wal_current_lsn"), u(&master.status(), "wal_current_lsn"));
    let m = slave.metrics();
    assert_eq!(metric(&m, "karma_replication_lag_entries"), 0.0);
    assert_eq!(metric(&m, "karma_replication_replayed_lsn"), u(&s, "replayed_lsn") as f64);
}

// ---------------------------------------------------------------------------
// b. SIGKILL mid-stream, restart on the same directory
// ---------------------------------------------------------------------------

#[test]
fn killed_slave_resumes_from_its_own_wal_without_rebootstrap() {
    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    // A backlog the slave cannot swallow in one page.
    let mut expected = increments(master.port, "k", 20_000, 0);
    let mut slave = cluster.slave("slave", &master, &["--replication-batch-size=20"]);

    let port = master.port;
    let writer = thread::spawn(move || increments(port, "k", 10_000, 5));
    let before_kill = u(&wait_replayed_at_least(&slave, 2_000), "replayed_lsn");
    slave.kill();
    expected += writer.join().expect("writer");
    let master_lsn = u(&master.status(), "wal_current_lsn");
    assert!(before_kill < master_lsn, "the slave was not behind when killed");

    slave.restart();
    let s = slave.status();
    // The directory is not empty: no bootstrap, position from its own WAL.
    assert_eq!(u(&s, "replication_bootstrap_attempt_count"), 0, "{s}");
    assert!(u(&s, "replayed_lsn") >= before_kill, "went back before {before_kill}: {s}");

    let s = wait_caught_up(&master, &slave);
    assert_eq!(u(&s, "replication_bootstrap_attempt_count"), 0, "{s}");
    // Only what it had not applied before the kill was applied again.
    assert!(u(&s, "replication_entries_applied") <= master_lsn - before_kill, "{s}");
    assert_eq!(total(&master, "k"), expected);
    assert_eq!(total(&slave, "k"), expected, "doubled or lost entries");
    assert_same_data(&master, &slave);

    // A clean stop and start converges too (its own snapshot + WAL).
    slave.stop();
    slave.restart();
    assert_eq!(u(&slave.status(), "replication_bootstrap_attempt_count"), 0);
    wait_caught_up(&master, &slave);
    assert_same_data(&master, &slave);
}

// ---------------------------------------------------------------------------
// c. The master truncates its WAL past a stopped slave
// ---------------------------------------------------------------------------

fn gap_rebootstrap(kill: bool) {
    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    let mut slave = cluster.slave("slave", &master, &[]);
    let mut expected = increments(master.port, "g", 3_000, 0);
    idempotent_writes(master.port, "gi", 50, "c1");
    wait_caught_up(&master, &slave);
    if kill {
        slave.kill();
    } else {
        slave.stop();
    }

    // While the slave is away: more writes, a full snapshot (WAL truncated),
    // and a WAL tail after it.
    expected += increments(master.port, "g", 2_000, 1);
    batch_adds(master.port, "gb", 50);
    assert_eq!(master.ok(&op("snapshot.create_all")), "OK");
    let after_snapshot = u(&master.status(), "wal_current_lsn");
    expected += increments(master.port, "g", 1_000, 2);
    ingest_streams(master.port, "gs", 3, "c2");

    slave.restart();
    let s = wait_caught_up(&master, &slave);
    assert!(u(&s, "replication_bootstrap_success_count") >= 1, "no re-bootstrap: {s}");
    assert!(u(&s, "replication_bootstrap_attempt_count") >= 1, "{s}");
    // The gap was reported as a poll error before the re-bootstrap.
    assert!(u(&s, "replication_poll_error_count") >= 1, "{s}");
    assert!(u(&s, "replayed_lsn") > after_snapshot);
    assert_eq!(total(&slave, "g"), expected);
    assert_same_data(&master, &slave);

    // After the re-bootstrap the slave's own files are consistent: a restart
    // neither bootstraps nor diverges.
    slave.stop();
    slave.restart();
    assert_eq!(u(&slave.status(), "replication_bootstrap_attempt_count"), 0);
    wait_caught_up(&master, &slave);
    assert_same_data(&master, &slave);
}

#[test]
fn stopped_slave_behind_truncated_master_wal_rebootstraps_by_itself() {
    gap_rebootstrap(false);
}

#[test]
fn killed_slave_behind_truncated_master_wal_rebootstraps_by_itself() {
    gap_rebootstrap(true);
}

// ---------------------------------------------------------------------------
// d. A slave is read-only for clients
// ---------------------------------------------------------------------------

#[test]
fn slave_refuses_client_writes_and_serves_reads() {
    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    let slave = cluster.slave("slave", &master, &[]);
    master.ok(&json!({"v":2,"op":"counter.increment","series":"r","key":1,"bucket":20260105,"value":7}));
    wait_caught_up(&master, &slave);

    let refused = error_line("forbidden", "Slave role cannot execute command increment");
    let mut c = slave.client();
    // Fast-path shape and general-path shape (with an idempotency key).
    assert_eq!(c.request(r#"{"v":2,"op":"counter.increment","series":"r","key":1,"bucket":20260105}"#), refused);
    assert_eq!(
        c.request(r#"{"v":2,"op":"counter.increment","series":"r","key":1,"bucket":20260105,"idempotency_key":"x"}"#),
        refused
    );
    for (req, name) in [
        (r#"{"v":2,"op":"series.batch_add","series":"r","items":[[1,20260105,1]]}"#, "batch_add"),
        (r#"{"v":2,"op":"snapshot.create_all"}"#, "dump_all"),
    ] {
        let reply = c.request(req);
        assert_eq!(common::error_code(&reply).as_deref(), Some("forbidden"), "{req} -> {reply}");
        assert!(reply.contains("Slave role cannot execute command"), "{name}: {reply}");
    }

    // Reads work and see the replicated data.
    assert_eq!(
        c.request(r#"{"v":2,"op":"counter.sum","series":"r","key":1}"#),
        r#"{"protocol_version":2,"success":true,"response":7,"error_code":null}"#
    );
    assert_eq!(slave.ok(&json!({"v":2,"op":"tree.info","series":"r"}))["total"], 7);
    assert_eq!(slave.ok(&op("system.health"))["role"], "slave");
    // Nothing was written by the refused requests.
    assert_eq!(total(&master, "r"), 7);
    assert_eq!(total(&slave, "r"), 7);
}

// ---------------------------------------------------------------------------
// e. Promotion, and the old master coming back as a slave
// ---------------------------------------------------------------------------

#[test]
fn promoted_slave_continues_the_lsn_sequence_and_feeds_new_slaves() {
    let cluster = Cluster::new();
    let mut master = cluster.master("old-master", &[]);
    let mut slave = cluster.slave("promoted", &master, &[]);
    let mut expected = increments(master.port, "p", 3_000, 0);
    idempotent_writes(master.port, "pi", 40, "e1");
    ingest_streams(master.port, "ps", 3, "e1");
    wait_caught_up(&master, &slave);
    let before = dump(&master);

    // 1. The old master takes no more writes; note its last LSN.
    master.stop();
    let old_last = {
        // Its last LSN is what the slave replayed (it had caught up).
        let s = slave.status();
        assert!(u(&s, "replayed_lsn") > 0);
        u(&s, "replayed_lsn")
    };
    // 2. Stop the slave cleanly, 3. restart its directory as the master.
    slave.stop();
    slave.restart_with(&["--role=master"]);
    let promoted = &slave;
    let s = promoted.status();
    assert_eq!(s["role"], "master");
    assert!(u(&s, "wal_current_lsn") >= old_last, "LSN went backwards: {s}");
    assert_eq!(dump(promoted), before, "promotion changed the data");

    // 4. Writes continue the sequence.
    expected += increments(promoted.port, "p", 500, 9);
    promoted.ok(&json!({"v":2,"op":"counter.increment","series":"p-new","key":1,"bucket":20260301,
                        "idempotency_key":"after-promotion"}));
    let page = promoted.ok(&json!({"v":2,"op":"replication.entries","after_lsn":old_last,"limit":10000}));
    assert_eq!(u(&page, "count"), 501, "{}", page["count"]);
    let lsns: Vec<u64> = page["entries"].as_array().expect("entries").iter().map(|e| u(e, "lsn")).collect();
    assert_eq!(lsns, (old_last + 1..=old_last + 501).collect::<Vec<_>>());
    // Idempotency records came along: a retry of an old write is deduplicated.
    let retry = promoted.call(&json!({"v":2,"op":"counter.increment","series":"pi","key":0,"bucket":day(0),
                                      "value":10,"idempotency_key":"e1-inc-0"}));
    assert_eq!(retry["idempotent"], true, "{retry}");
    // Committed ingest streams too.
    let again = promoted.ok(&json!({"v":2,"op":"ingest.commit","stream_id":"e1-add-0"}));
    assert_eq!(again["status"], "already_committed");

    // 5. A fresh slave of the promoted master converges.
    let fresh = cluster.slave("fresh", promoted, &[]);
    wait_caught_up(promoted, &fresh);
    assert_same_data(promoted, &fresh);
    assert_eq!(total(&fresh, "p"), expected);

    // 6. The old master comes back only as a slave, after wiping its data.
    std::fs::remove_dir_all(&master.dir).expect("wipe old master");
    std::fs::create_dir_all(&master.dir).expect("recreate dir");
    master.restart_with(&slave_args(promoted, &[]));
    let s = wait_caught_up(promoted, &master);
    assert_eq!(s["role"], "slave");
    assert!(u(&s, "replication_bootstrap_success_count") >= 1, "{s}");
    assert_same_data(promoted, &master);
}

// ---------------------------------------------------------------------------
// f. Wrong replication token
// ---------------------------------------------------------------------------

#[test]
fn slave_with_wrong_token_counts_poll_errors_and_keeps_serving() {
    let cluster = Cluster::new();
    // A read token alone refuses every write: the master has a write token too.
    let master = cluster.master("master", &["--auth-token=writer", "--read-auth-token=reader"]);
    // With the right token the slave gets a copy...
    let mut slave = cluster.slave("slave", &master, &["--replication-token=reader"]);
    master
        .ok(&json!({"v":2,"op":"counter.increment","series":"t","key":1,"bucket":20260110,"value":4,"token":"writer"}));
    wait_caught_up(&Node::viewer(&master, "reader"), &slave);
    slave.stop();

    // ... then it is restarted with a wrong one.
    let args = slave_args(&master, &["--replication-token=wrong"]);
    slave.restart_with(&args);
    master
        .ok(&json!({"v":2,"op":"counter.increment","series":"t","key":1,"bucket":20260110,"value":1,"token":"writer"}));
    let started = Instant::now();
    let s = loop {
        let s = slave.status();
        if u(&s, "replication_poll_error_count") >= 3 {
            break s;
        }
        assert!(started.elapsed() < CONVERGE, "no poll errors counted: {s}");
        sleep(Duration::from_millis(50));
    };
    let error = s["replication_last_poll_error"].as_str().unwrap_or_else(|| panic!("no last error: {s}"));
    assert!(error.contains("Unauthorized"), "{error}");
    assert!(u(&s, "replication_last_poll_error_unix") > 0);
    assert_eq!(u(&s, "replication_poll_success_count"), 0, "{s}");
    let m = slave.metrics();
    assert!(metric(&m, "karma_replication_poll_errors_total") >= 3.0);
    // It keeps serving what it has.
    assert_eq!(total(&slave, "t"), 4);
    assert_eq!(slave.ok(&op("system.health"))["status"], "ok");
}

impl Node {
    /// Read requests to a master that needs a read token.
    fn viewer(master: &Node, token: &str) -> Viewer {
        Viewer { port: master.port, token: token.to_string() }
    }
}

/// A read-token view of a node (for masters with `--read-auth-token`).
struct Viewer {
    port: u16,
    token: String,
}

trait Status {
    fn status(&self) -> Value;
}

impl Status for Node {
    fn status(&self) -> Value {
        Node::status(self)
    }
}

impl Status for Viewer {
    fn status(&self) -> Value {
        let line = Client::connect(self.port)
            .request(&json!({"v":2,"op":"replication.status","token":self.token}).to_string());
        let reply: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(reply["success"], true, "{reply}");
        reply["response"].clone()
    }
}

// ---------------------------------------------------------------------------
// g. Bootstrap from snapshots plus a WAL tail
// ---------------------------------------------------------------------------

#[test]
fn empty_slave_bootstraps_from_snapshots_and_wal_tail_applying_each_once() {
    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    // Before the snapshot: every kind of write.
    let mut expected = increments(master.port, "s", 2_000, 0);
    let batch = batch_adds(master.port, "sb", 40);
    let idem = idempotent_writes(master.port, "si", 60, "g1");
    let ingest = ingest_streams(master.port, "ss", 4, "g1");
    assert_eq!(master.ok(&op("snapshot.create_all")), "OK");
    let snap = master.ok(&op("snapshot.info"));
    assert!(u(&snap, "last_snapshot_lsn") > 0);
    assert!(!snap["idempotency_snapshot"].is_null());
    // After it: the WAL tail, touching the same series.
    expected += increments(master.port, "s", 1_000, 1);
    let idem_tail = idempotent_writes(master.port, "si", 30, "g2");
    let tail_lsn = u(&master.status(), "wal_current_lsn");
    assert!(tail_lsn > u(&snap, "last_snapshot_lsn"));

    let slave = cluster.slave("slave", &master, &[]);
    let s = wait_caught_up(&master, &slave);
    assert_eq!(u(&s, "replication_bootstrap_attempt_count"), 1, "{s}");
    assert_eq!(u(&s, "replication_bootstrap_success_count"), 1, "{s}");
    // Only the tail came through the WAL.
    assert_eq!(u(&s, "replication_entries_applied"), tail_lsn - u(&snap, "last_snapshot_lsn"), "{s}");
    assert_eq!(total(&slave, "s"), expected);
    assert_eq!(total(&slave, "sb"), batch);
    assert_eq!(total(&slave, "si"), idem + idem_tail);
    assert_eq!(total(&slave, "ss"), ingest);
    assert_same_data(&master, &slave);
}

/// An `add` ingest stream that is still open when the master snapshots: its
/// later chunks and commit reach a freshly bootstrapped slave through the WAL
/// tail, so the slave needs the stream's state from the snapshot (it travels
/// inside the idempotency snapshot).
#[test]
fn bootstrap_carries_ingest_streams_open_across_the_snapshot() {
    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    let item = |k: u64| json!([[k, 20260201, 5]]);
    master.ok(&json!({"v":2,"op":"ingest.begin","stream_id":"open","mode":"add"}));
    master.ok(&json!({"v":2,"op":"ingest.chunk","stream_id":"open","series":"o","chunk_seq":1,"items":item(1)}));
    assert_eq!(master.ok(&op("snapshot.create_all")), "OK");
    master.ok(&json!({"v":2,"op":"ingest.chunk","stream_id":"open","series":"o","chunk_seq":2,"items":item(2)}));
    master.ok(&json!({"v":2,"op":"ingest.commit","stream_id":"open"}));
    assert_eq!(total(&master, "o"), 10);

    let slave = cluster.slave("slave", &master, &[]);
    wait_caught_up(&master, &slave);
    assert_eq!(total(&slave, "o"), 10, "slave lost the chunk applied after the snapshot");
    assert_same_data(&master, &slave);
}

// ---------------------------------------------------------------------------
// Rebuilding a slave
// ---------------------------------------------------------------------------

#[test]
fn slave_rebuilt_by_emptying_its_directory() {
    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    let mut slave = cluster.slave("slave", &master, &[]);
    increments(master.port, "rb", 2_000, 0);
    wait_caught_up(&master, &slave);
    assert_eq!(master.ok(&op("snapshot.create_all")), "OK");
    increments(master.port, "rb", 500, 1);
    wait_caught_up(&master, &slave);

    // Rebuild: stop, empty the directory, start with the same flags.
    slave.stop();
    for entry in std::fs::read_dir(&slave.dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("rm dir");
        } else {
            std::fs::remove_file(&path).expect("rm");
        }
    }
    increments(master.port, "rb", 500, 2);
    slave.restart();
    let s = wait_caught_up(&master, &slave);
    assert_eq!(u(&s, "replication_bootstrap_success_count"), 1, "{s}");
    assert_same_data(&master, &slave);
}

// ---------------------------------------------------------------------------
// Persistent poll connection vs the master's idle timeout
// ---------------------------------------------------------------------------

/// With a poll interval longer than the master's `--read-timeout`, the
/// master closes the slave's idle connection between polls. A healthy
/// master must not show up as poll errors (the poller resends on a fresh
/// connection).
#[test]
fn poll_interval_longer_than_master_idle_timeout_causes_no_poll_errors() {
    let cluster = Cluster::new();
    let master = cluster.master("master", &["--read-timeout=1"]);
    let slave = Node::start(
        cluster.tmp.path(),
        &cluster.dir("slave"),
        &[
            "--role=slave".to_string(),
            "--replication-source-host=127.0.0.1".to_string(),
            format!("--replication-source-port={}", master.port),
            "--replication-poll-interval-ms=1500".to_string(),
        ],
    );
    let started = Instant::now();
    let mut errors_seen = Vec::new();
    let s = loop {
        let s = slave.status();
        if let Some(e) = s["replication_last_poll_error"].as_str() {
            if errors_seen.last().map(String::as_str) != Some(e) {
                errors_seen.push(e.to_string());
            }
        }
        if u(&s, "replication_poll_attempt_count") >= 5 {
            break s;
        }
        assert!(started.elapsed() < CONVERGE, "{s}");
        sleep(Duration::from_millis(100));
    };
    assert_eq!(u(&s, "replication_poll_error_count"), 0, "errors {errors_seen:?}; status {s}");
}

// ---------------------------------------------------------------------------
// A slave started before its master
// ---------------------------------------------------------------------------

/// Starts an empty slave pointed at a port where nothing listens yet, waits
/// until it logged a failed bootstrap, then starts the master there.
fn slave_started_before_master(cluster: &Cluster) -> (Node, Node) {
    let master_port = free_port();
    let logs = cluster.tmp.path().to_path_buf();
    let dir = cluster.dir("slave");
    let args = vec![
        "--role=slave".to_string(),
        "--replication-source-host=127.0.0.1".to_string(),
        format!("--replication-source-port={master_port}"),
        "--replication-poll-interval-ms=50".to_string(),
        "--log=true".to_string(),
    ];
    let slave = thread::spawn(move || Node::start(&logs, &dir, &args));
    let log = cluster.tmp.path().join("slave.stderr");
    let started = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("replication.bootstrap_failed") {
        assert!(started.elapsed() < CONVERGE, "no failed bootstrap logged");
        sleep(Duration::from_millis(20));
    }
    let master = Node::start_at(cluster.tmp.path(), &cluster.dir("master"), &[] as &[&str], Some(master_port));
    increments(master.port, "early", 100, 0);
    let slave = slave.join().expect("slave start");
    (master, slave)
}

#[test]
fn slave_started_before_its_master_bootstraps_once_the_master_is_up() {
    let cluster = Cluster::new();
    let (master, slave) = slave_started_before_master(&cluster);
    let s = wait_caught_up(&master, &slave);
    assert!(u(&s, "replication_bootstrap_attempt_count") >= 2, "{s}");
    assert!(u(&s, "replication_bootstrap_error_count") >= 1, "{s}");
    assert_eq!(u(&s, "replication_bootstrap_success_count"), 1, "{s}");
    assert_same_data(&master, &slave);
}

/// Startup bootstrap counters carry their timestamps like re-bootstraps do.
#[test]
fn startup_bootstrap_counters_come_with_timestamps() {
    let cluster = Cluster::new();
    let (master, slave) = slave_started_before_master(&cluster);
    let s = wait_caught_up(&master, &slave);
    assert!(u(&s, "replication_bootstrap_error_count") >= 1, "{s}");
    assert!(u(&s, "replication_last_bootstrap_attempt_unix") > 0, "attempt time missing: {s}");
    assert!(u(&s, "replication_last_bootstrap_error_unix") > 0, "error time missing: {s}");
}

// ---------------------------------------------------------------------------
// Clean stops and SIGUSR1 snapshots in the middle of a catch-up
// ---------------------------------------------------------------------------

/// Starts a writer that keeps `series` on `port` busy until the returned
/// flag is set; joining it yields the amount written.
fn background_writer(
    port: u16,
    series: &'static str,
) -> (std::sync::Arc<std::sync::atomic::AtomicBool>, thread::JoinHandle<u64>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let handle = thread::spawn(move || {
        let mut sum = 0;
        let mut seed = 1;
        while !flag.load(Ordering::Relaxed) {
            sum += increments(port, series, 2_000, seed) + batch_adds(port, series, 20);
            seed += 1;
        }
        sum
    });
    (done, handle)
}

fn count_in(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// A slave's own snapshot can be taken while a page is half applied (final
/// snapshot on SIGTERM, or SIGUSR1). Restarting from it, after a clean stop
/// or after a kill once the snapshot completed, neither loses nor re-applies
/// entries.
#[test]
fn slave_snapshots_mid_catch_up_never_lose_or_double_entries() {
    use std::sync::atomic::Ordering;

    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    let mut expected = batch_adds(master.port, "mid", 400) + increments(master.port, "mid", 30_000, 0);
    let mut slave = cluster.slave("slave", &master, &["--replication-batch-size=2000", "--log=true"]);
    // Keep the slave busy: writes go on during every stop and restart.
    let (done, writer) = background_writer(master.port, "mid");
    let mut position = 0;
    for round in 0..8u64 {
        position = u(&wait_replayed_at_least(&slave, position + 1_000), "replayed_lsn");
        if round % 2 == 0 {
            // SIGUSR1 snapshot while pages keep arriving; once it is done, a
            // hard kill.
            let before = count_in(&slave.stderr(), "signal=USR1");
            slave.signal(libc::SIGUSR1);
            let started = Instant::now();
            while count_in(&slave.stderr(), "signal=USR1") == before {
                assert!(started.elapsed() < CONVERGE, "SIGUSR1 snapshot not logged: {}", slave.stderr());
                sleep(Duration::from_millis(5));
            }
            slave.kill();
        } else {
            slave.stop();
        }
        slave.restart();
        let s = slave.status();
        assert_eq!(u(&s, "replication_bootstrap_attempt_count"), 0, "{s}");
        assert!(u(&s, "replayed_lsn") >= position, "went back from {position}: {s}");
    }
    done.store(true, Ordering::Relaxed);
    expected += writer.join().expect("writer");
    wait_caught_up(&master, &slave);
    assert_eq!(total(&master, "mid"), expected);
    assert_eq!(total(&slave, "mid"), expected, "lost or doubled entries");
    assert_same_data(&master, &slave);
}

/// A slave killed while its SIGUSR1 snapshot is being written (after the
/// series files, before the WAL truncation) must restart without applying
/// any entry twice.
#[test]
fn slave_killed_during_its_snapshot_never_doubles_entries() {
    use std::sync::atomic::Ordering;

    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    let mut expected = increments(master.port, "usr1", 20_000, 0);
    let mut slave = cluster.slave("slave", &master, &["--replication-batch-size=2000"]);
    let (done, writer) = background_writer(master.port, "usr1");
    let mut position = 0;
    for round in 0..24u64 {
        position = u(&wait_replayed_at_least(&slave, position + 500), "replayed_lsn");
        slave.signal(libc::SIGUSR1);
        sleep(Duration::from_micros(500 * (round % 12)));
        slave.kill();
        slave.restart();
    }
    done.store(true, Ordering::Relaxed);
    expected += writer.join().expect("writer");
    wait_caught_up(&master, &slave);
    assert_eq!(total(&master, "usr1"), expected);
    assert_eq!(total(&slave, "usr1"), expected, "entries applied twice");
}

// ---------------------------------------------------------------------------
// Full pages against the default response size limit
// ---------------------------------------------------------------------------

/// `--replication-batch-size=10000` (the maximum) against a master with the
/// default `--max-response-bytes` (1 MiB): the page is cut by the byte
/// budget, and the cut page must still fit in the response.
#[test]
fn full_pages_fit_the_default_response_limit() {
    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    increments(master.port, "budget-series", 12_000, 10_000);
    let page = master.call(&json!({"v":2,"op":"replication.entries","after_lsn":0,"limit":10000}));
    assert_eq!(page["success"], true, "{}", page["response"]);
    assert_eq!(page["response"]["truncated_by_bytes"], true);

    let slave = cluster.slave("slave", &master, &["--replication-batch-size=10000"]);
    wait_caught_up(&master, &slave);
    assert_same_data(&master, &slave);
}

// ---------------------------------------------------------------------------
// Reads during an automatic re-bootstrap
// ---------------------------------------------------------------------------

/// A re-bootstrap replaces the slave's whole state. Clients reading the
/// slave meanwhile must see the old state or the new one, never a series
/// that vanished.
#[test]
fn reads_during_a_rebootstrap_never_see_missing_series() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let cluster = Cluster::new();
    // Unlimited responses: comparing the data reads whole 50,000-key series.
    let master = cluster.master("master", &["--max-request-bytes=1048576", "--max-response-bytes=0"]);
    master.ok(&json!({"v":2,"op":"counter.increment","series":"stable","key":1,"bucket":20260101,"value":42}));
    // Enough data that restoring it takes a while.
    let bulk: Vec<String> = (0..60u64)
        .map(|b| {
            let items: Vec<Value> = (0..5_000u64).map(|i| json!([b * 5_000 + i, day(i), 1])).collect();
            json!({"v":2,"op":"series.batch_add","series":format!("bulk-{}", b % 6),"items":items}).to_string()
        })
        .collect();
    pipeline(master.port, &bulk);
    let mut slave = cluster.slave("slave", &master, &["--max-response-bytes=0"]);
    wait_caught_up(&master, &slave);
    slave.stop();
    increments(master.port, "bulk-0", 100, 0);
    assert_eq!(master.ok(&op("snapshot.create_all")), "OK");

    slave.restart();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, port) = (done.clone(), slave.port);
        thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut reads = 0u64;
            let mut wrong = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let reply = c.request(r#"{"v":2,"op":"counter.sum","series":"stable","key":1}"#);
                reads += 1;
                if reply != r#"{"protocol_version":2,"success":true,"response":42,"error_code":null}"# {
                    wrong.push(reply);
                }
            }
            (reads, wrong)
        })
    };
    wait_caught_up(&master, &slave);
    // The re-bootstrap's new state (and so the caught-up LSN) is visible a
    // moment before the poller counts it a success: wait for the count too.
    let started = Instant::now();
    let s = loop {
        let s = slave.status();
        if u(&s, "replication_bootstrap_success_count") >= 1 || started.elapsed() > CONVERGE {
            break s;
        }
        sleep(Duration::from_millis(20));
    };
    done.store(true, Ordering::Relaxed);
    let (reads, wrong) = reader.join().expect("reader");
    assert!(u(&s, "replication_bootstrap_success_count") >= 1, "{s}");
    assert!(reads > 0);
    assert!(wrong.is_empty(), "{} of {reads} reads saw a vanished series, e.g. {}", wrong.len(), wrong[0]);
    assert_same_data(&master, &slave);
}

// ---------------------------------------------------------------------------
// A bootstrap that fails part-way
// ---------------------------------------------------------------------------

/// A proxy in front of a real master that refuses
/// `idempotency.snapshot_fetch_chunk` (always fetched after every series
/// snapshot) while `fail` is set. With `hold`, after the first refusal it
/// holds further `snapshot.info` requests until `fail` is cleared, so no new
/// attempt runs while the test looks at the slave's directory.
fn failing_proxy(master_port: u16, fail: std::sync::Arc<std::sync::atomic::AtomicBool>, hold: bool) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicBool, Ordering};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    let refused = std::sync::Arc::new(AtomicBool::new(false));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (fail, refused) = (fail.clone(), refused.clone());
            thread::spawn(move || {
                let mut upstream = Client::connect(master_port);
                let mut out = stream.try_clone().expect("clone");
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    while hold
                        && line.contains("snapshot.info")
                        && fail.load(Ordering::SeqCst)
                        && refused.load(Ordering::SeqCst)
                    {
                        sleep(Duration::from_millis(10));
                    }
                    let reply = if fail.load(Ordering::SeqCst) && line.contains("idempotency.snapshot_fetch_chunk") {
                        refused.store(true, Ordering::SeqCst);
                        error_line("not_found", "Idempotency snapshot not found")
                    } else {
                        upstream.request(&line)
                    };
                    if out.write_all(format!("{reply}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn failed_bootstrap_leaves_no_partial_snapshot_behind() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    for series in ["one", "two", "three"] {
        increments(master.port, series, 300, 0);
    }
    idempotent_writes(master.port, "four", 20, "f");
    assert_eq!(master.ok(&op("snapshot.create_all")), "OK");
    increments(master.port, "one", 100, 1);

    let fail = Arc::new(AtomicBool::new(true));
    let proxy = failing_proxy(master.port, fail.clone(), true);
    let logs = cluster.tmp.path().to_path_buf();
    let dir = cluster.dir("slave");
    let args = vec![
        "--role=slave".to_string(),
        "--replication-source-host=127.0.0.1".to_string(),
        format!("--replication-source-port={proxy}"),
        "--replication-poll-interval-ms=50".to_string(),
        "--log=true".to_string(),
    ];
    // The slave does not listen before its bootstrap succeeds; start it from
    // another thread and watch its log for the failed attempt.
    let starting = {
        let (logs, dir, args) = (logs.clone(), dir.clone(), args.clone());
        thread::spawn(move || Node::start(&logs, &dir, &args))
    };
    let log = logs.join("slave.stderr");
    let started = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("replication.bootstrap_failed") {
        assert!(started.elapsed() < CONVERGE, "no failed bootstrap logged");
        sleep(Duration::from_millis(20));
    }
    // The failed attempt had installed every series snapshot; it removed them.
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tree") || n.starts_with("karma.idempotency"))
        .collect();
    assert!(leftovers.is_empty(), "partial bootstrap left {leftovers:?}");

    // Once the master answers, the retry installs everything.
    fail.store(false, Ordering::SeqCst);
    let slave = starting.join().expect("slave start");
    let s = wait_caught_up(&master, &slave);
    assert!(u(&s, "replication_bootstrap_error_count") >= 1, "{s}");
    assert_eq!(u(&s, "replication_bootstrap_success_count"), 1, "{s}");
    assert_same_data(&master, &slave);
}

/// The workaround the runbook gives for 10000-entry pages: raise the
/// master's `--max-response-bytes`.
#[test]
fn full_pages_replicate_with_a_raised_master_response_limit() {
    let cluster = Cluster::new();
    let master = cluster.master("master", &["--max-response-bytes=4194304"]);
    increments(master.port, "budget-series", 25_000, 10_000);
    let slave = cluster.slave("slave", &master, &["--replication-batch-size=10000"]);
    let s = wait_caught_up(&master, &slave);
    assert_eq!(u(&s, "replication_poll_error_count"), 0, "{s}");
    assert_same_data(&master, &slave);
}

/// A re-bootstrap that keeps failing is retried with a pause, not in a tight
/// loop that downloads every snapshot of the master again and again. (With a
/// 60 s poll interval and a 2 s look, a paused retry makes a handful of
/// attempts at most; the bound is on a count, not on a duration.)
#[test]
fn failing_rebootstrap_is_retried_with_a_pause() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let cluster = Cluster::new();
    let master = cluster.master("master", &[]);
    increments(master.port, "rb", 300, 0);
    assert_eq!(master.ok(&op("snapshot.create_all")), "OK");
    let fail = Arc::new(AtomicBool::new(false));
    let proxy = failing_proxy(master.port, fail.clone(), false);
    let args = vec![
        "--role=slave".to_string(),
        "--replication-source-host=127.0.0.1".to_string(),
        format!("--replication-source-port={proxy}"),
        "--replication-poll-interval-ms=60000".to_string(),
    ];
    let mut slave = Node::start(cluster.tmp.path(), &cluster.dir("slave"), &args);
    wait_caught_up(&master, &slave);
    slave.stop();
    increments(master.port, "rb", 300, 1);
    assert_eq!(master.ok(&op("snapshot.create_all")), "OK");

    fail.store(true, Ordering::SeqCst);
    slave.restart();
    let started = Instant::now();
    while u(&slave.status(), "replication_bootstrap_error_count") == 0 {
        assert!(started.elapsed() < CONVERGE, "no failed re-bootstrap");
        sleep(Duration::from_millis(20));
    }
    sleep(Duration::from_secs(2));
    let s = slave.status();
    assert!(u(&s, "replication_bootstrap_attempt_count") <= 10, "re-bootstrap loop: {s}");
    // It still serves what it has.
    assert_eq!(total(&slave, "rb"), increments_total(300, 0));
}

/// The amount `increments(_, _, n, seed)` adds.
fn increments_total(n: u64, seed: u64) -> u64 {
    (0..n).map(|i| 1 + (i + seed) % 5).sum()
}
