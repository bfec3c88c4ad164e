//! Where a request goes in a cluster, decided from the request as the
//! engine parses it: the key's shard, a split of its keys or items by shard,
//! every shard, or nowhere (an op whose answer shards cannot reproduce).

use karma_cluster::shard_of;
use karma_engine::protocol::{Command, Op, Request};
use karma_engine::Error;
use serde_json::{Map, Value};

/// How one request is carried out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Single-key ops: the shard that owns the key answers.
    One(u32),
    /// Multi-key ops: the array `field` is cut by shard; each part lists the
    /// positions (in the request) of its elements, shards in order. Never
    /// empty: a request with an empty array goes whole to shard 0, which
    /// answers it as a single node would.
    Split { field: &'static str, parts: Vec<(u32, Vec<usize>)> },
    /// Ops over a whole series, or over the node: every shard answers and
    /// the answers are merged.
    Every,
}

/// The plan for `req` in a cluster of `shards` shards, or the error that
/// refuses it (always `validation`, naming the op).
pub(crate) fn plan(req: &Request<'_>, shards: u32) -> Result<Plan, Error> {
    let split = |field, keys: &mut dyn Iterator<Item = u64>| Plan::Split { field, parts: split(keys, shards) };
    Ok(match (req.op, &req.command) {
        (_, Command::Key { key, .. } | Command::Write { key, .. } | Command::Consume { key, .. }) => {
            Plan::One(shard_of(*key, shards))
        }
        (_, Command::Keys { keys, .. }) => split("keys", &mut keys.iter().copied()),
        (op, Command::Items { items, .. }) => {
            if op == Op::BatchAdd {
                check_batch_total(items)?;
            }
            split("items", &mut items.iter().map(|[key, _, _]| *key))
        }
        (_, Command::MultiSum { items, .. }) => split("items", &mut items.iter().map(|i| i.key)),
        (
            Op::Ping
            | Op::Health
            | Op::Stats
            | Op::Metrics
            | Op::Wal
            | Op::TreeList
            | Op::TreeInfo
            | Op::TreeKeys
            | Op::TreeSummary
            | Op::TreeTop
            | Op::TreeCreate
            | Op::TreeDrop
            | Op::TreeReset
            | Op::TreeDeleteRange
            | Op::SystemCompact
            | Op::SeriesCompact
            | Op::DeleteBefore,
            _,
        ) => Plan::Every,
        (op, _) => return Err(refused(op)),
    })
}

/// A single node refuses a `series.batch_add` whose total overflows before
/// applying anything; each shard would only see its part's total.
fn check_batch_total(items: &[[u64; 3]]) -> Result<(), Error> {
    items
        .iter()
        .try_fold(0u64, |total, [_, _, value]| total.checked_add(*value))
        .map(|_| ())
        .ok_or_else(|| Error::validation("Batch total overflow"))
}

fn split(keys: &mut dyn Iterator<Item = u64>, shards: u32) -> Vec<(u32, Vec<usize>)> {
    let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); shards.max(1) as usize];
    for (i, key) in keys.enumerate() {
        by_shard[shard_of(key, shards) as usize].push(i);
    }
    let parts: Vec<(u32, Vec<usize>)> = (0u32..).zip(by_shard).filter(|(_, positions)| !positions.is_empty()).collect();
    if parts.is_empty() {
        return vec![(0, Vec::new())];
    }
    parts
}

/// Why an op is not carried out in cluster mode.
fn refused(op: Op) -> Error {
    let why = match op {
        Op::TreeSeries => "its key order is one node's insertion order, which shards cannot reproduce",
        Op::IngestBegin | Op::IngestChunk | Op::IngestCommit | Op::IngestAbort => {
            "an ingest stream lives on one node; send batch writes instead"
        }
        Op::ReconciliationReport => "a report is recorded by one node, and a cluster has no single node to keep it",
        _ => {
            "it concerns one node's files, log or replication: send it to that node (`karma cluster status` lists them)"
        }
    };
    Error::validation(format!("{} is not supported in cluster mode: {why}", op.name()))
}

/// `fields` with the array `field` cut down to the elements at `positions`.
pub(crate) fn subset(fields: &Map<String, Value>, field: &str, positions: &[usize]) -> Map<String, Value> {
    let mut part = fields.clone();
    if let Some(Value::Array(all)) = fields.get(field) {
        let picked = positions.iter().filter_map(|&i| all.get(i).cloned()).collect();
        part.insert(field.to_owned(), Value::Array(picked));
    }
    part
}

/// The etcd endpoints and cluster name of a `karma+etcd://` URL.
pub(crate) fn parse_url(url: &str) -> Result<(String, String), String> {
    let bad = || format!("invalid cluster URL {url:?}: expected karma+etcd://host:port[,host:port...]/<cluster-name>");
    let rest = url.strip_prefix(super::URL_SCHEME).ok_or_else(bad)?;
    let (endpoints, cluster) = rest.split_once('/').ok_or_else(bad)?;
    let cluster = cluster.trim_end_matches('/');
    if endpoints.is_empty() || cluster.is_empty() || cluster.contains('/') {
        return Err(bad());
    }
    Ok((endpoints.to_owned(), cluster.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use karma_engine::protocol::request::{parse_document, parse_request};

    fn plan_of(line: &str) -> Result<Plan, Error> {
        let doc = parse_document(line.as_bytes()).unwrap();
        plan(&parse_request(&doc).unwrap(), 2)
    }

    #[test]
    fn cluster_urls_name_endpoints_and_cluster() {
        assert_eq!(parse_url("karma+etcd://127.0.0.1:2379/demo"), Ok(("127.0.0.1:2379".into(), "demo".into())));
        assert_eq!(parse_url("karma+etcd://a:1,b:2/c/"), Ok(("a:1,b:2".into(), "c".into())));
        for bad in ["karma://h:1/c", "karma+etcd://h:1", "karma+etcd:///c", "karma+etcd://h:1/", "karma+etcd://h:1/a/b"]
        {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn single_key_ops_go_to_their_shard() {
        // Pinned in karma_cluster: with 2 shards key 2 is on shard 0, key 42 on shard 1.
        assert_eq!(plan_of(r#"{"v":2,"op":"counter.sum","series":"s","key":2}"#), Ok(Plan::One(0)));
        assert_eq!(plan_of(r#"{"v":2,"op":"counter.increment","series":"s","key":42}"#), Ok(Plan::One(1)));
        let consume = r#"{"v":2,"op":"counter.consume","series":"s","key":42,"value":1,"limit":5,"window":"day"}"#;
        assert_eq!(plan_of(consume), Ok(Plan::One(1)));
    }

    #[test]
    fn multi_key_ops_are_cut_by_shard_in_request_order() {
        let split = Plan::Split { field: "keys", parts: vec![(0, vec![1]), (1, vec![0, 2])] };
        assert_eq!(plan_of(r#"{"v":2,"op":"counter.batch_sum","series":"s","keys":[42,2,0]}"#), Ok(split));
        let items = r#"{"v":2,"op":"series.batch_add","series":"s","items":[[2,20260101,1],[2,20260101,1]]}"#;
        assert_eq!(plan_of(items), Ok(Plan::Split { field: "items", parts: vec![(0, vec![0, 1])] }));
        let multi = r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"a","key":1},{"series":"b","key":2}]}"#;
        let split = Plan::Split { field: "items", parts: vec![(0, vec![1]), (1, vec![0])] };
        assert_eq!(plan_of(multi), Ok(split));
        let empty = r#"{"v":2,"op":"series.batch_set","series":"s","items":[]}"#;
        assert_eq!(plan_of(empty), Ok(Plan::Split { field: "items", parts: vec![(0, vec![])] }));
    }

    #[test]
    fn a_batch_total_over_u64_is_refused_before_splitting() {
        let line = format!(
            r#"{{"v":2,"op":"series.batch_add","series":"s","items":[[2,20260101,{m}],[42,20260101,{m}],[0,20260101,2]]}}"#,
            m = i64::MAX
        );
        assert_eq!(plan_of(&line).unwrap_err().message(), "Batch total overflow");
    }

    #[test]
    fn series_ops_go_everywhere_and_per_node_ops_are_refused() {
        assert_eq!(plan_of(r#"{"v":2,"op":"tree.top","series":"s"}"#), Ok(Plan::Every));
        assert_eq!(plan_of(r#"{"v":2,"op":"tree.list"}"#), Ok(Plan::Every));
        for line in [
            r#"{"v":2,"op":"snapshot.list"}"#,
            r#"{"v":2,"op":"replication.status"}"#,
            r#"{"v":2,"op":"ingest.abort","stream_id":"x"}"#,
            r#"{"v":2,"op":"tree.series","series":"s","range":{"from":1,"to":2}}"#,
        ] {
            let err = plan_of(line).unwrap_err();
            assert_eq!(err.code(), karma_engine::ErrorCode::ValidationError);
            assert!(err.message().contains("not supported in cluster mode"), "{err}");
        }
    }

    #[test]
    fn subsets_keep_the_chosen_elements_in_order() {
        let fields: Map<String, Value> = serde_json::from_str(r#"{"series":"s","keys":[5,6,7]}"#).unwrap();
        let part = subset(&fields, "keys", &[2, 0]);
        assert_eq!(Value::Object(part), serde_json::json!({"series": "s", "keys": [7, 5]}));
    }
}
