//! The client's cluster mode against a real etcd and real `karma` nodes
//! (harness in common/cluster.rs):
//!
//! * `cluster_client_rides_through_failover_and_merges_batches`: 2 shards x
//!   2 nodes; increments through a SIGKILL of a shard leader reach the
//!   caller without an error and never count twice.
//! * `cluster_answers_every_op_as_one_node_does`: the same script of every
//!   [`Karma`] op, run against 2 shards and against one plain node, gives the
//!   same answers, errors included; the raw request path gives the same
//!   response lines.
//!
//! The tests fail (never skip) when etcd is missing: `scripts/test` installs it.

mod common;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use common::cluster::{one_node_per_shard, wait_for, EtcdServer, Node, BUCKET, CLUSTER};
use common::tool;
use karma_client::cluster::ClusterClient;
use karma_client::{Client, ClientConfig, Karma, KarmaError};
use karma_cluster::{admin, shard_of};
use karma_engine::{Range, Window};
use serde_json::{Map, Value};

#[test]
fn cluster_client_rides_through_failover_and_merges_batches() {
    let etcd = EtcdServer::start();
    assert!(admin::init(&etcd.client(), CLUSTER, 2).expect("init"), "a new cluster");
    let endpoint = etcd.endpoint();
    let mut a0 = Node::start("c0a", 0, &endpoint);
    let _a1 = Node::start("c1a", 1, &endpoint);
    etcd.wait_leader(0, "c0a");
    etcd.wait_leader(1, "c1a");
    let b0 = Node::start("c0b", 0, &endpoint);
    let _b1 = Node::start("c1b", 1, &endpoint);
    wait_for("c0b to register as a slave", || etcd.node(0, "c0b").filter(|n| n.role == "slave"));
    let cluster = Arc::new(ClusterClient::connect(&endpoint, CLUSTER, ClientConfig::default()).expect("connect"));
    assert_eq!(cluster.shard_count(), 2);

    // Increments under load through a SIGKILL of shard 0's leader: no error
    // may reach the caller, and retries never count twice.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (cluster, stop, done) = (cluster.clone(), stop.clone(), done.clone());
        thread::spawn(move || {
            let mut acked: HashMap<u64, u64> = HashMap::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let key = i % 40;
                if let Err(err) = cluster.increment("load", key, Some(BUCKET), 1) {
                    return Err(format!("increment {i} of key {key} failed: {err}"));
                }
                *acked.entry(key).or_insert(0) += 1;
                done.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
            Ok(acked)
        })
    };
    wait_for("load before the kill", || (done.load(Ordering::SeqCst) >= 500).then_some(()));
    let killed_at = Instant::now();
    a0.kill();
    let before = done.load(Ordering::SeqCst);
    wait_for("shard 0 writable again", || etcd.leader(0).filter(|l| l.node_id == "c0b"));
    wait_for("load after the failover", || (done.load(Ordering::SeqCst) >= before + 500).then_some(()));
    let rode_through = killed_at.elapsed();
    stop.store(true, Ordering::SeqCst);
    let acked = writer.join().expect("writer").unwrap_or_else(|e| panic!("an error reached the caller: {e}"));
    let keys: Vec<u64> = (0..40).collect();
    let totals = cluster.batch_sum("load", &keys, None).expect("batch_sum");
    let mut lost = 0;
    for (key, got) in keys.iter().zip(&totals) {
        let want = acked.get(key).copied().unwrap_or(0);
        assert!(*got <= want, "key {key}: total {got} above the {want} acknowledged increments");
        assert_eq!(*got, cluster.sum("load", *key, None).expect("sum"), "sum and batch_sum of key {key}");
        lost += want - got;
    }
    println!(
        "cluster client: {} increments without an error reaching the caller; 500 more done {rode_through:?} after \
         the SIGKILL; {lost} acknowledged increments lost in the failover window",
        acked.values().sum::<u64>()
    );
    let on_shard0 = keys.iter().copied().find(|k| shard_of(*k, 2) == 0).expect("a key of shard 0");
    assert!(b0.sum("load", on_shard0) > 0, "c0b serves shard 0's data");

    // Batches over keys of both shards answer as one node would.
    let plain = Node::plain();
    let single = Client::new(ClientConfig { port: plain.port, ..ClientConfig::default() }).expect("client");
    let items: Vec<[u64; 3]> = (0..60u64).map(|i| [i % 25, 20260501 + i % 3, 1 + i % 7]).collect();
    let added = cluster.batch_add("batch", &items).expect("cluster batch_add");
    assert_eq!(added, single.batch_add("batch", &items).expect("single batch_add"));
    let keys: Vec<u64> = (0..30).rev().collect();
    assert!((0..2).all(|s| keys.iter().any(|k| cluster.shard_of(*k) == s)), "keys on both shards");
    for range in [None, Some(Range { from: 20260502, to: 20260503 })] {
        let got = cluster.batch_sum("batch", &keys, range).expect("cluster batch_sum");
        assert_eq!(got, single.batch_sum("batch", &keys, range).expect("single batch_sum"), "range {range:?}");
        assert!(got.iter().any(|v| *v > 0));
    }
}

/// One answer of the script: the value, or the error's code and message.
fn outcome<T: Debug, E: KarmaError>(what: &str, result: Result<T, E>) -> String {
    match result {
        Ok(v) => format!("{what}: {v:?}"),
        Err(e) => format!("{what}: error {:?}: {e}", e.error_code()),
    }
}

/// Every op of the [`Karma`] API, over keys 0..40 (both shards of two) and
/// two series, one of which only ever gets keys of one shard; answers in order.
fn script<K: Karma>(k: &K) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |what: &str, line: String| out.push(format!("{what} {line}"));
    let week = Range { from: BUCKET, to: BUCKET + 6 };
    let some = Range { from: BUCKET + 1, to: BUCKET + 2 };
    let keys: Vec<u64> = (0..40).rev().collect();
    let items: Vec<[u64; 3]> = (0..90u64).map(|i| [i % 31, BUCKET + i % 4, 1 + i % 9]).collect();

    note("create", outcome("a", k.create_series("a")));
    note("batch_add", outcome("a", k.batch_add("a", &items)));
    note("increment", outcome("a/33", k.increment("a", 33, Some(BUCKET), 5)));
    note("decrement", outcome("a/0", k.decrement("a", 0, Some(BUCKET), 2)));
    note("consume", outcome("a/1", k.consume("a", 1, Some(BUCKET + 3), 3, 100, Window::Days(7))));
    note("consume", outcome("a/1", k.consume("a", 1, Some(BUCKET + 3), 300, 100, Window::Days(7))));
    note("sum", outcome("a/5", k.sum("a", 5, None)));
    note("sum", outcome("a/5 range", k.sum("a", 5, Some(some))));
    note("points", outcome("a/6", k.points("a", 6, week)));
    note("batch_sum", outcome("a", k.batch_sum("a", &keys, None)));
    note("batch_sum", outcome("a range", k.batch_sum("a", &keys, Some(some))));
    note("batch_sum", outcome("a none", k.batch_sum("a", &[], None)));
    // "b" exists only on the shard of key 3 after this.
    note("multi_sum", outcome("b missing", k.multi_sum(&[("a", 1), ("b", 2)], None)));
    note("increment", outcome("b/3", k.increment("b", 3, Some(BUCKET), 7)));
    let on_both: Vec<u64> = (0..12).collect();
    note("batch_sum", outcome("b", k.batch_sum("b", &on_both, None)));
    note("multi_sum", outcome("a+b", k.multi_sum(&[("a", 1), ("b", 2), ("b", 3), ("a", 30)], Some(week))));
    note("multi_sum", outcome("c missing", k.multi_sum(&[("a", 1), ("c", 4), ("b", 3)], None)));
    note("batch_set", outcome("a", k.batch_set("a", &[[2, BUCKET, 40], [7, BUCKET, 0], [35, BUCKET + 9, 3]])));
    note("batch_set", outcome("a none", k.batch_set("a", &[])));
    note("info", outcome("a", k.info("a")));
    note("info", outcome("b", k.info("b")));
    note("summary", outcome("a", k.summary("a", None)));
    note("summary", outcome("a range", k.summary("a", Some(some))));
    let mut cursor = None;
    loop {
        let page = k.keys("a", cursor, Some(7));
        let next = page.as_ref().ok().and_then(|p| p.next_cursor);
        note("keys", outcome("a page", page));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    note("keys", outcome("a default", k.keys("a", None, None)));
    note("keys", outcome("a from 20", k.keys("a", Some(20), Some(1000))));
    note("top", outcome("a 5", k.top("a", Some(5), None)));
    note("top", outcome("a range", k.top("a", Some(4), Some(some))));
    note("top", outcome("a default", k.top("a", None, None)));
    note("batch_reset", outcome("a", k.batch_reset("a", &[1, 2, 3, 4, 39, 1000])));
    note("batch_reset", outcome("b", k.batch_reset("b", &on_both)));
    note("batch_delete_range", outcome("a", k.batch_delete_range("a", &keys, some)));
    note("batch_delete_range", outcome("b", k.batch_delete_range("b", &[3, 4, 5], week)));
    note("reset", outcome("a/8", k.reset("a", Some(8))));
    note("delete_range", outcome("a/9", k.delete_range("a", Some(9), some)));
    note("delete_range", outcome("a", k.delete_range("a", None, Range { from: BUCKET, to: BUCKET })));
    note("batch_sum", outcome("a after", k.batch_sum("a", &keys, None)));
    note("delete_before", outcome("a", k.delete_before("a", BUCKET + 3)));
    note("compact", outcome("a", k.compact(Some("a"))));
    note("compact", outcome("all", k.compact(None)));
    note("info", outcome("a after", k.info("a")));
    note("reset", outcome("b all", k.reset("b", None)));
    note("info", outcome("b after", k.info("b")));
    let mut names = k.list_series();
    if let Ok(n) = names.as_mut() {
        // One node lists in creation order, the cluster by name.
        n.sort();
    }
    note("list_series", outcome("", names));
    note("drop", outcome("b", k.drop_series("b")));
    note("drop", outcome("b again", k.drop_series("b")));
    note("ping", outcome("", k.ping()));

    // Errors: the same code and message as one node.
    note("info", outcome("nope", k.info("nope")));
    note("batch_sum", outcome("nope", k.batch_sum("nope", &keys, None)));
    note("batch_reset", outcome("nope", k.batch_reset("nope", &keys)));
    note("top", outcome("nope", k.top("nope", None, None)));
    note("keys", outcome("limit 0", k.keys("a", None, Some(0))));
    note("sum", outcome("bad range", k.sum("a", 1, Some(Range { from: BUCKET + 1, to: BUCKET }))));
    note("batch_add", outcome("value 0", k.batch_add("a", &[[2, BUCKET, 1], [42, BUCKET, 0]])));
    let huge = [[2, BUCKET, u64::MAX / 2], [42, BUCKET, u64::MAX / 2], [0, BUCKET, 10]];
    note("batch_add", outcome("total over u64", k.batch_add("a", &huge)));
    note("batch_sum", outcome("a final", k.batch_sum("a", &keys, None)));
    out
}

#[test]
fn cluster_answers_every_op_as_one_node_does() {
    let etcd = EtcdServer::start();
    let _nodes = one_node_per_shard(&etcd, 2, "e");
    let cluster = ClusterClient::connect(&etcd.endpoint(), CLUSTER, ClientConfig::default()).expect("connect");
    let plain = Node::plain();
    let single = Client::new(ClientConfig { port: plain.port, ..ClientConfig::default() }).expect("client");

    let on_cluster = script(&cluster);
    let on_node = script(&single);
    for (c, n) in on_cluster.iter().zip(&on_node) {
        assert_eq!(c, n, "the cluster and one node disagree");
    }
    assert_eq!(on_cluster.len(), on_node.len());
    // The script reached both shards and found data on both.
    let totals = single.batch_sum("a", &(0..40).collect::<Vec<u64>>(), None).expect("totals");
    for shard in 0..2 {
        assert!((0..40u64).any(|k| shard_of(k, 2) == shard && totals[k as usize] > 0), "no data on shard {shard}");
    }

    // The raw request path answers with the line one node writes.
    for line in [
        r#"{"v":2,"op":"counter.batch_sum","series":"a","keys":[39,2,17,4,0,22]}"#,
        r#"{"v":2,"op":"series.batch_sum","series":"a","keys":[5,6],"range":{"from":20260501,"to":20260510}}"#,
        r#"{"v":2,"op":"tree.info","series":"a"}"#,
        r#"{"v":2,"op":"tree.top","series":"a","limit":3}"#,
        r#"{"v":2,"op":"tree.keys","series":"a","limit":4,"cursor":6}"#,
        r#"{"v":2,"op":"tree.summary","series":"a"}"#,
        r#"{"v":2,"op":"counter.sum","series":"a","key":12}"#,
        r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"a","key":3},{"series":"a","key":4}]}"#,
        r#"{"v":2,"op":"tree.info","series":"nope"}"#,
        r#"{"v":2,"op":"no.such.op"}"#,
        r#"{"v":2,"op":"counter.sum","series":"a"}"#,
        r#"{"v":1,"op":"system.ping"}"#,
        r#"{"v":2,"op":"counter.sum""#,
    ] {
        let c = cluster.request_line(line).expect("cluster raw line");
        let n = single.request_line(line).expect("node raw line");
        assert_eq!(c, n, "raw answers to {line}");
    }

    // Ops whose answer is per node are refused, naming the op.
    for op in ["snapshot.list", "replication.status", "tree.series"] {
        let mut fields = Map::new();
        if op == "tree.series" {
            fields.insert("series".into(), Value::from("a"));
            fields.insert("range".into(), serde_json::json!({"from": BUCKET, "to": BUCKET}));
        }
        let err = cluster.request_value(op, fields).expect_err("refused");
        assert_eq!(err.error_code().map(|c| c.as_str()), Some("validation_error"), "{err}");
        assert!(err.to_string().contains(op) && err.to_string().contains("cluster mode"), "{err}");
    }
    let line = cluster.request_line(r#"{"v":2,"op":"ingest.abort","stream_id":"s"}"#).expect("line");
    assert!(line.contains(r#""success":false"#) && line.contains("ingest.abort is not supported"), "{line}");

    // Node-wide answers list every shard.
    let health = cluster.health().expect("health");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["shards"].as_array().map(Vec::len), Some(2), "{health}");
    let stats = cluster.stats().expect("stats");
    assert_eq!(stats["shards"][1]["shard"], 1, "{stats}");
    let metrics = cluster.metrics().expect("metrics");
    assert!(metrics.contains("shard=\"0\"") && metrics.contains("shard=\"1\""), "{metrics}");
}

// ---------------------------------------------------------------------------
// the operator tools with a cluster URL
// ---------------------------------------------------------------------------

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn karma_cli_talks_to_a_cluster_as_to_one_node() {
    let etcd = EtcdServer::start();
    let _nodes = one_node_per_shard(&etcd, 2, "t");
    let cluster_url = format!("--url=karma+etcd://{}/{CLUSTER}", etcd.endpoint());
    let plain = Node::plain();
    let node_url = format!("--url=karma://127.0.0.1:{}", plain.port);
    let items: Vec<String> = (0..30u64).map(|k| format!("{k}:2026-05-0{}:{}", 1 + k % 3, k + 1)).collect();
    let items = format!("items={}", items.join(","));
    let keys = "keys=29,3,17,0,42,8,1000";
    let one_shots: Vec<Vec<&str>> = vec![
        vec!["counter.increment", "series=api", "key=42", "bucket=2026-05-01", "value=5"],
        vec!["series.batch_add", "series=api", &items],
        vec!["counter.batch_sum", "series=api", keys],
        vec!["counter.batch_sum", "series=api", keys, "range=20260502..20260503"],
        vec!["--raw", "counter.batch_sum", "series=api", keys],
        vec!["--raw", r#"{"v":2,"op":"tree.top","series":"api","limit":4}"#],
        vec!["tree.keys", "series=api", "limit=5", "cursor=10"],
        vec!["tree.info", "series=api"],
        vec!["tree.summary", "series=api"],
        vec!["counter.batch_reset", "series=api", "keys=1,2,3,500"],
        vec!["counter.multi_sum", "items=api:1,api:4,api:5"],
        vec!["tree.info", "series=nope"],
        vec!["counter.sum", "series=api", "key=x"],
    ];
    for words in &one_shots {
        let run = |url: &str| {
            let args: Vec<&str> = ["cli", url].iter().copied().chain(words.iter().copied()).collect();
            tool(&args, &[], "")
        };
        let (on_cluster, on_node) = (run(&cluster_url), run(&node_url));
        assert_eq!(
            (on_cluster.status.code(), text(&on_cluster.stdout), text(&on_cluster.stderr)),
            (on_node.status.code(), text(&on_node.stdout), text(&on_node.stderr)),
            "karma cli {words:?}"
        );
        assert!(!on_node.stdout.is_empty() || !on_node.stderr.is_empty(), "{words:?} printed nothing");
    }

    // A scripted session (the REPL without a terminal), and KARMA_URL.
    let script = "counter.sum series=api key=29\n\
                  counter.batch_sum series=api keys=4,5,6,7\n\
                  tree.top series=api limit=3\n\
                  snapshot.list\n";
    let cluster_env = format!("karma+etcd://{}/{CLUSTER}", etcd.endpoint());
    let on_cluster = tool(&["cli"], &[("KARMA_URL", &cluster_env)], script);
    let on_node = tool(&["cli", &node_url], &[], script);
    let (c, n) = (text(&on_cluster.stdout), text(&on_node.stdout));
    // Everything but the last answer agrees; snapshot.list is one node's.
    let (c_head, c_last) = c.trim_end().rsplit_once('\n').expect("several answers");
    let (n_head, _) = n.trim_end().rsplit_once('\n').expect("several answers");
    assert_eq!(c_head, n_head);
    assert!(c_last.starts_with("(error) validation_error: snapshot.list is not supported in cluster mode"), "{c_last}");
    assert_eq!(on_cluster.status.code(), Some(1), "a failed line fails the session");

    // reconcile works against a cluster, except for --report; ingest refuses it.
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("export.csv");
    let rows: Vec<String> =
        (0..30u64).map(|k| format!("{k},2026-05-0{},{}", 1 + k % 3, k + 1 + u64::from(k == 7))).collect();
    std::fs::write(&csv, format!("key,bucket,value\n{}\n", rows.join("\n"))).expect("csv");
    let csv_arg = format!("--csv={}", csv.display());
    let reconcile =
        |url: &str, extra: &[&str]| tool(&[&["reconcile", url, &csv_arg, "--series=api"][..], extra].concat(), &[], "");
    let (on_cluster, on_node) = (reconcile(&cluster_url, &[]), reconcile(&node_url, &[]));
    assert_eq!(on_cluster.status.code(), Some(1), "drift found: {}", text(&on_cluster.stderr));
    assert_eq!(text(&on_cluster.stdout), text(&on_node.stdout));
    assert!(
        text(&on_cluster.stdout).contains("key 7 bucket 20260502: expected 9, karma 8"),
        "{}",
        text(&on_cluster.stdout)
    );
    let refused = reconcile(&cluster_url, &["--report"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("--report needs a karma:// URL"), "{}", text(&refused.stderr));
    let ingest = tool(&["ingest", &cluster_url, &csv_arg, "--series=api", "--mode=add"], &[], "");
    assert_eq!(ingest.status.code(), Some(2));
    assert!(
        text(&ingest.stderr).contains("is a cluster: an ingest stream lives on one node"),
        "{}",
        text(&ingest.stderr)
    );
}
