//! A real etcd and real `karma` cluster nodes for the cluster tests: etcd
//! (Debian's etcd-server at /usr/bin/etcd) on loopback ports with a
//! temporary data directory, nodes started and SIGKILLed as processes.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use karma_cluster::{ClusterPaths, Etcd, LeaderRecord, NodeRecord};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::{free_port, BIN, DEADLINE};

pub const ETCD_BIN: &str = "/usr/bin/etcd";
pub const CLUSTER: &str = "t";
/// The lease TTL of every node, in seconds (the smallest the server accepts).
pub const TTL: u64 = 2;
pub const BUCKET: u64 = 20260501;

pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// etcd
// ---------------------------------------------------------------------------

pub struct EtcdServer {
    pub child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl EtcdServer {
    pub fn start() -> EtcdServer {
        assert!(
            Path::new(ETCD_BIN).exists(),
            "the cluster tests need etcd at {ETCD_BIN}: install Debian's etcd-server (scripts/test does)"
        );
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let (port, peer) = (free_port(), free_port());
            let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log");
            let client_url = format!("http://127.0.0.1:{port}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let child = Command::new(ETCD_BIN)
                .arg("--name=karma-test")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=karma-test={peer_url}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start etcd");
            let mut server = EtcdServer { child, port, _dir: dir };
            let started = Instant::now();
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    last = format!("etcd exited with {status}");
                    break;
                }
                if server.client().get("/probe").is_ok() {
                    return server;
                }
                if started.elapsed() > DEADLINE {
                    last = "etcd did not answer in time".into();
                    break;
                }
                sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start etcd: {last}");
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> Etcd {
        Etcd::new(&self.endpoint(), Duration::from_secs(2)).expect("etcd client")
    }

    pub fn leader(&self, shard: u32) -> Option<LeaderRecord> {
        let kv = self.client().get(&ClusterPaths::new(CLUSTER).leader(shard)).ok()??;
        LeaderRecord::parse(&kv.value)
    }

    pub fn node(&self, shard: u32, id: &str) -> Option<NodeRecord> {
        let kv = self.client().get(&ClusterPaths::new(CLUSTER).node(shard, id)).ok()??;
        NodeRecord::parse(&kv.value)
    }

    pub fn wait_leader(&self, shard: u32, id: &str) -> LeaderRecord {
        wait_for(&format!("{id} to lead shard {shard}"), || self.leader(shard).filter(|l| l.node_id == id))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `karma cluster <args>` against `endpoint` for cluster [`CLUSTER`].
pub fn karma_cluster_tool(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env_clear()
        .args(["cluster", &format!("--etcd={endpoint}"), &format!("--cluster-name={CLUSTER}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run karma cluster")
}

// ---------------------------------------------------------------------------
// karma nodes
// ---------------------------------------------------------------------------

/// A node started by the shared test kit: a temporary data directory and
/// stderr log kept across restarts, on a port fixed at the first start (it
/// is the address the node advertises).
pub struct Node {
    pub id: String,
    pub port: u16,
    server: karma_testkit::Server,
}

impl Node {
    /// Starts a cluster node without waiting for it to listen: it does once
    /// it has a role, and it exits when the cluster refuses it.
    pub fn start(id: &str, shard: u32, etcd_endpoint: &str) -> Node {
        let port = free_port();
        let args = vec![
            "--wal-fsync=false".to_string(),
            format!("--cluster-etcd={etcd_endpoint}"),
            format!("--cluster-name={CLUSTER}"),
            format!("--shard={shard}"),
            format!("--node-id={id}"),
            format!("--advertise=127.0.0.1:{port}"),
            format!("--cluster-lease-ttl={TTL}"),
            "--replication-poll-interval-ms=20".into(),
        ];
        let server = karma_testkit::Server::builder(BIN).port(port).no_wait().args(&args).start();
        Node { id: id.into(), port, server }
    }

    /// A single server outside any cluster, to compare answers with.
    pub fn plain() -> Node {
        let server = karma_testkit::Server::builder(BIN).args(&["--wal-fsync=false"]).start();
        Node { id: "plain".into(), port: server.port, server }
    }

    /// Starts the node again (after [`Node::kill`]) with the same arguments,
    /// port and data directory.
    pub fn launch(&mut self) {
        self.server.restart();
    }

    /// SIGKILL: no drain, no snapshot, the lease is left to expire.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Waits for a node that exits by itself (one the cluster refused).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.server.wait_exit()
    }

    pub fn stderr(&self) -> String {
        self.server.stderr()
    }

    /// One request on a fresh connection; `None` on a connection error.
    pub fn try_call(&self, request: &Value) -> Option<Value> {
        let mut conn = Conn::open(self.port)?;
        conn.call(request)
    }

    pub fn ok(&self, request: &Value) -> Value {
        let reply = wait_for(&format!("{} to answer {request}", self.id), || self.try_call(request));
        assert_eq!(reply["success"], true, "{request} on {} failed: {reply}\n{}", self.id, self.stderr());
        reply["response"].clone()
    }

    pub fn status(&self) -> Value {
        self.ok(&json!({"v": 2, "op": "replication.status"}))
    }

    pub fn sum(&self, series: &str, key: u64) -> u64 {
        let reply = wait_for(&format!("{} to answer counter.sum", self.id), || {
            self.try_call(&json!({"v": 2, "op": "counter.sum", "series": series, "key": key}))
        });
        match reply["error_code"].as_str() {
            Some("not_found") => 0,
            _ => reply["response"].as_u64().unwrap_or_else(|| panic!("counter.sum on {}: {reply}", self.id)),
        }
    }
}

pub fn u(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or_else(|| panic!("{field} missing in {v}"))
}

/// Waits until `slave` has replayed everything `leader` logged (the leader
/// must be quiet).
pub fn wait_caught_up(leader: &Node, slave: &Node) {
    let target = u(&leader.status(), "wal_current_lsn");
    wait_for(&format!("{} to reach {}'s LSN {target}", slave.id, leader.id), || {
        let s = slave.try_call(&json!({"v": 2, "op": "replication.status"}))?;
        (s["response"]["replayed_lsn"].as_u64() >= Some(target)).then_some(())
    });
}

/// A connection with bounded waits, for writers that must notice a dead
/// node instead of hanging on it.
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(port: u16) -> Option<Conn> {
        let addr = ("127.0.0.1", port);
        let stream = TcpStream::connect(addr).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        stream.set_nodelay(true).ok()?;
        let reader = BufReader::new(stream.try_clone().ok()?);
        Some(Conn { stream, reader })
    }

    pub fn call(&mut self, request: &Value) -> Option<Value> {
        self.stream.write_all(format!("{request}\n").as_bytes()).ok()?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(n) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        }
    }
}

/// A cluster of `shards` shards with one node each (`{prefix}{shard}`),
/// every one of them leading its shard.
pub fn one_node_per_shard(etcd: &EtcdServer, shards: u32, prefix: &str) -> Vec<Node> {
    assert!(karma_cluster::admin::init(&etcd.client(), CLUSTER, shards).expect("init"), "a new cluster");
    let nodes: Vec<Node> = (0..shards).map(|s| Node::start(&format!("{prefix}{s}"), s, &etcd.endpoint())).collect();
    for (shard, node) in (0..shards).zip(&nodes) {
        etcd.wait_leader(shard, &node.id);
    }
    nodes
}
