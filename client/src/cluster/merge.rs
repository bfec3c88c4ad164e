//! Putting the shards' answers back together into the answer one node would
//! give. Pure functions over the raw `response` values the shards sent, so
//! every rule here is unit-tested without a network.

use karma_engine::protocol::Op;
use karma_engine::{ErrorCode, KeysPage, Response, Summary, TreeInfo};
use serde::Deserialize;

use crate::typed::decode;
use crate::wire::{
    Added, Applied, DeletedCounts, KeyValue, ResetCounts, WireKeysPage, WireSummary, WireTop, WireTreeInfo,
};
use crate::{ClientError, Result};

/// The `response` value of one shard's answer, as the shard wrote it.
pub(crate) type Raw = Vec<u8>;

/// One shard's answer to its part of a split request: the positions (in the
/// request) its elements came from, and its `response`.
pub(crate) struct PartAnswer {
    pub positions: Vec<usize>,
    pub raw: Raw,
}

/// One shard's answer to a request every shard was sent.
pub(crate) struct ShardAnswer {
    pub shard: u32,
    /// Where the shard's leader was found.
    pub leader: String,
    pub result: Result<Raw>,
}

#[derive(Deserialize)]
pub(crate) struct SeriesKeyValue {
    pub series: String,
    pub key: u64,
    pub value: u64,
}

/// Writes each part's answers to their places in a request of `len` elements.
fn scatter<T: Clone>(op: Op, len: usize, fill: T, parts: Vec<(Vec<usize>, Vec<T>)>) -> Result<Vec<T>> {
    let mut out = vec![fill; len];
    for (positions, values) in parts {
        if positions.len() != values.len() {
            return Err(ClientError::Protocol(format!(
                "{} answered {} values for {} elements",
                op.name(),
                values.len(),
                positions.len()
            )));
        }
        for (i, v) in positions.into_iter().zip(values) {
            if let Some(slot) = out.get_mut(i) {
                *slot = v;
            }
        }
    }
    Ok(out)
}

/// Up to three counts one part of a split write answers with.
type Counts = (usize, usize, u64);

fn sum_counts(parts: &[PartAnswer], count: &dyn Fn(&[u8]) -> Result<Counts>) -> Result<Counts> {
    parts.iter().try_fold((0, 0, 0), |(a, b, c): Counts, p| {
        let (x, y, z) = count(&p.raw)?;
        Ok((a + x, b + y, c.saturating_add(z)))
    })
}

/// The answer to a split request of `len` elements: per-element answers in
/// request order, counts summed.
pub(crate) fn split(op: Op, len: usize, parts: Vec<PartAnswer>) -> Result<Response> {
    let each = |count: &dyn Fn(&[u8]) -> Result<Counts>| sum_counts(&parts, count);
    Ok(match op {
        Op::BatchSum => {
            let mut decoded = Vec::with_capacity(parts.len());
            for p in &parts {
                let kv: Vec<KeyValue> = decode(op, &p.raw)?;
                decoded.push((p.positions.clone(), kv.into_iter().map(|kv| (kv.key, kv.value)).collect()));
            }
            Response::KeyValues(scatter(op, len, (0, 0), decoded)?)
        }
        Op::MultiSum => {
            let mut decoded = Vec::with_capacity(parts.len());
            for p in &parts {
                let items: Vec<SeriesKeyValue> = decode(op, &p.raw)?;
                decoded.push((p.positions.clone(), items.into_iter().map(|i| (i.series, i.key, i.value)).collect()));
            }
            Response::MultiSum(scatter(op, len, (String::new(), 0, 0), decoded)?)
        }
        Op::BatchAdd => {
            let (applied, _, total) = each(&|raw| decode::<Added>(op, raw).map(|a| (a.applied, 0, a.total)))?;
            Response::Added { applied, total }
        }
        Op::BatchSet => {
            let (applied, ..) = each(&|raw| decode::<Applied>(op, raw).map(|a| (a.applied, 0, 0)))?;
            Response::Applied { applied }
        }
        Op::BatchReset => {
            let (reset, missing, _) = each(&|raw| decode::<ResetCounts>(op, raw).map(|r| (r.reset, r.missing, 0)))?;
            Response::Reset { reset, missing }
        }
        Op::BatchDeleteRange => {
            let (deleted, missing, _) =
                each(&|raw| decode::<DeletedCounts>(op, raw).map(|d| (d.deleted, d.missing, 0)))?;
            Response::Deleted { deleted, missing }
        }
        other => return Err(ClientError::Protocol(format!("{} is not a split op", other.name()))),
    })
}

/// What a shard that does not have the series answers to its part of a
/// split request, when the series exists on another shard: what one node,
/// which has the series, answers for keys it has never seen.
pub(crate) fn absent_part(op: Op, keys: &[u64]) -> Option<Response> {
    match op {
        Op::BatchSum => Some(Response::KeyValues(keys.iter().map(|k| (*k, 0)).collect())),
        Op::BatchReset => Some(Response::Reset { reset: 0, missing: keys.len() }),
        Op::BatchDeleteRange => Some(Response::Deleted { deleted: 0, missing: keys.len() }),
        _ => None,
    }
}

/// Ops over a series that a shard without it answers with `not_found`
/// while another shard has it: those shards are left out of the merge, and
/// the op fails only when no shard has the series.
fn series_may_be_partial(op: Op) -> bool {
    matches!(
        op,
        Op::TreeInfo
            | Op::TreeKeys
            | Op::TreeSummary
            | Op::TreeTop
            | Op::TreeDrop
            | Op::SeriesCompact
            | Op::DeleteBefore
    )
}

fn is_not_found(err: &ClientError) -> bool {
    matches!(err, ClientError::Server(e) if e.code() == ErrorCode::NotFound)
}

/// The merged answer to a request every shard was sent.
pub(crate) fn every(op: Op, answers: Vec<ShardAnswer>) -> Result<Response> {
    let mut ok = Vec::with_capacity(answers.len());
    let mut not_found = None;
    for a in answers {
        match a.result {
            Ok(raw) => ok.push((a.shard, a.leader, raw)),
            Err(err) if series_may_be_partial(op) && is_not_found(&err) => {
                not_found.get_or_insert(err);
            }
            Err(err) => return Err(err),
        }
    }
    if ok.is_empty() {
        return Err(not_found.unwrap_or_else(|| ClientError::Protocol(format!("no shard answered {}", op.name()))));
    }
    let raws = || ok.iter().map(|(_, _, raw)| raw.as_slice());
    Ok(match op {
        Op::TreeList => {
            let mut names = Vec::new();
            for raw in raws() {
                names.extend(decode::<Vec<String>>(op, raw)?);
            }
            names.sort_unstable();
            names.dedup();
            Response::Names(names)
        }
        Op::TreeInfo => {
            let infos: Vec<WireTreeInfo> = raws().map(|r| decode(op, r)).collect::<Result<_>>()?;
            Response::TreeInfo(info(infos))
        }
        Op::TreeSummary => {
            let summaries: Vec<WireSummary> = raws().map(|r| decode(op, r)).collect::<Result<_>>()?;
            Response::Summary(summary(summaries))
        }
        Op::TreeKeys => {
            let pages: Vec<WireKeysPage> = raws().map(|r| decode(op, r)).collect::<Result<_>>()?;
            Response::Keys(keys(pages))
        }
        Op::TreeTop => {
            let tops: Vec<WireTop> = raws().map(|r| decode(op, r)).collect::<Result<_>>()?;
            let (tree, limit, items) = top(tops);
            Response::Top { tree, limit, items }
        }
        Op::Metrics => {
            let texts: Vec<(u32, String)> =
                ok.iter().map(|(shard, _, raw)| Ok((*shard, decode::<String>(op, raw)?))).collect::<Result<_>>()?;
            Response::Text(metrics(&texts))
        }
        Op::Health | Op::Stats | Op::Wal => Response::Json(per_shard(op, &ok)),
        // Writes and ping: every shard said the same ("OK", true, "pong").
        _ => Response::Json(ok.swap_remove(0).2),
    })
}

fn info(infos: Vec<WireTreeInfo>) -> TreeInfo {
    let tree = infos.first().map(|i| i.tree.clone()).unwrap_or_default();
    infos.into_iter().fold(TreeInfo { tree, key_count: 0, bucket_count: 0, total: 0 }, |acc, i| TreeInfo {
        key_count: acc.key_count + i.key_count,
        bucket_count: acc.bucket_count + i.bucket_count,
        total: acc.total.saturating_add(i.total),
        ..acc
    })
}

fn summary(summaries: Vec<WireSummary>) -> Summary {
    let (tree, range) = summaries.first().map(|s| (s.tree.clone(), s.range_from.zip(s.range_to))).unwrap_or_default();
    summaries.into_iter().fold(Summary { tree, range, total: 0, active_keys: 0, bucket_count: 0 }, |acc, s| Summary {
        total: acc.total.saturating_add(s.total),
        active_keys: acc.active_keys + s.active_keys,
        bucket_count: acc.bucket_count + s.bucket_count,
        ..acc
    })
}

/// Each shard sent its first `limit` keys above the cursor, so the first
/// `limit` of them all are the page one node would send; there are more
/// when the shards sent more than `limit` together or one of them had more.
fn keys(pages: Vec<WireKeysPage>) -> KeysPage {
    let (tree, limit, cursor) = pages.first().map(|p| (p.tree.clone(), p.limit, p.cursor)).unwrap_or_default();
    let mut more = pages.iter().any(|p| p.next_cursor.is_some());
    let mut keys: Vec<(u64, u64)> = pages.into_iter().flat_map(|p| p.keys).map(|k| (k.key, k.total)).collect();
    keys.sort_unstable_by_key(|(k, _)| *k);
    more |= keys.len() > limit;
    keys.truncate(limit);
    let next_cursor = if more { keys.last().map(|(k, _)| *k) } else { None };
    KeysPage { tree, limit, cursor, next_cursor, keys }
}

/// Each shard sent its `limit` largest counters; the largest `limit` of
/// them all, in a node's order (value descending, then key ascending).
fn top(tops: Vec<WireTop>) -> (String, usize, Vec<(u64, u64)>) {
    let (tree, limit) = tops.first().map(|t| (t.tree.clone(), t.limit)).unwrap_or_default();
    let mut items: Vec<(u64, u64)> = tops.into_iter().flat_map(|t| t.items).map(|kv| (kv.key, kv.value)).collect();
    items.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    items.truncate(limit);
    (tree, limit, items)
}

/// `{"shards":[{"shard":n,"leader":"host:port","<op>":{...}}, ...]}`, and for
/// `system.health` a `"status"` that is `"ok"` only when every shard's is.
fn per_shard(op: Op, ok: &[(u32, String, Raw)]) -> Vec<u8> {
    let field = op.name().trim_start_matches("system.");
    let mut out = String::from("{");
    if op == Op::Health {
        let all_ok = ok
            .iter()
            .all(|(_, _, raw)| serde_json::from_slice::<serde_json::Value>(raw).is_ok_and(|v| v["status"] == "ok"));
        out.push_str(if all_ok { "\"status\":\"ok\"," } else { "\"status\":\"unhealthy\"," });
    }
    out.push_str("\"shards\":[");
    for (i, (shard, leader, raw)) in ok.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let leader = serde_json::Value::from(leader.as_str());
        out.push_str(&format!(
            "{{\"shard\":{shard},\"leader\":{leader},\"{field}\":{}}}",
            String::from_utf8_lossy(raw)
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}

/// The shards' Prometheus texts as one: every sample gains a `shard` label,
/// and the samples of a metric family stay together under its `# HELP` and
/// `# TYPE` lines (taken from the first shard that has the family).
fn metrics(texts: &[(u32, String)]) -> String {
    // Families in first-seen order: name, header lines, sample lines.
    let mut families: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for (shard, text) in texts {
        let mut current: Option<usize> = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let header = line.strip_prefix("# HELP ").or_else(|| line.strip_prefix("# TYPE "));
            if let Some(rest) = header {
                let name = rest.split_whitespace().next().unwrap_or("").to_owned();
                let index = match families.iter().position(|(n, _, _)| *n == name) {
                    Some(i) => i,
                    None => {
                        families.push((name, Vec::new(), Vec::new()));
                        families.len() - 1
                    }
                };
                if !families[index].1.iter().any(|h| h == line) {
                    families[index].1.push(line.to_owned());
                }
                current = Some(index);
            } else if line.starts_with('#') {
                continue;
            } else {
                let index = *current.get_or_insert_with(|| {
                    families.push((String::new(), Vec::new(), Vec::new()));
                    families.len() - 1
                });
                families[index].2.push(with_shard_label(line, *shard));
            }
        }
    }
    let mut out = String::new();
    for (_, headers, samples) in families {
        for line in headers.iter().chain(&samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `name{a="b"} 1` becomes `name{shard="0",a="b"} 1`; `name 1` becomes
/// `name{shard="0"} 1`.
fn with_shard_label(line: &str, shard: u32) -> String {
    let label = format!("shard=\"{shard}\"");
    match line.find(['{', ' ']) {
        Some(i) if line[i..].starts_with("{}") => format!("{}{{{label}}}{}", &line[..i], &line[i + 2..]),
        Some(i) if line[i..].starts_with('{') => format!("{}{{{label},{}", &line[..i], &line[i + 1..]),
        Some(i) => format!("{}{{{label}}}{}", &line[..i], &line[i..]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use karma_engine::Error;

    fn part(positions: &[usize], raw: &str) -> PartAnswer {
        PartAnswer { positions: positions.to_vec(), raw: raw.as_bytes().to_vec() }
    }

    fn shard(shard: u32, result: std::result::Result<&str, ClientError>) -> ShardAnswer {
        ShardAnswer { shard, leader: format!("h:{shard}"), result: result.map(|r| r.as_bytes().to_vec()) }
    }

    fn json(r: &Response) -> String {
        String::from_utf8(r.to_json()).unwrap()
    }

    #[test]
    fn split_answers_go_back_to_request_order() {
        let parts = vec![
            part(&[1], r#"[{"key":2,"value":7}]"#),
            part(&[0, 2], r#"[{"key":42,"value":1},{"key":0,"value":0}]"#),
        ];
        let merged = split(Op::BatchSum, 3, parts).unwrap();
        assert_eq!(merged, Response::KeyValues(vec![(42, 1), (2, 7), (0, 0)]));
        let short = split(Op::BatchSum, 2, vec![part(&[0, 1], r#"[{"key":42,"value":1}]"#)]);
        assert!(matches!(short, Err(ClientError::Protocol(_))));
        let multi = split(
            Op::MultiSum,
            2,
            vec![
                part(&[1], r#"[{"series":"b","key":2,"value":3}]"#),
                part(&[0], r#"[{"series":"a","key":1,"value":4}]"#),
            ],
        )
        .unwrap();
        assert_eq!(json(&multi), r#"[{"series":"a","key":1,"value":4},{"series":"b","key":2,"value":3}]"#);
    }

    #[test]
    fn split_counts_are_summed() {
        let added = split(
            Op::BatchAdd,
            3,
            vec![part(&[0], r#"{"applied":1,"total":5}"#), part(&[1, 2], r#"{"applied":2,"total":7}"#)],
        );
        assert_eq!(added.unwrap(), Response::Added { applied: 3, total: 12 });
        let reset = split(
            Op::BatchReset,
            3,
            vec![part(&[0], r#"{"reset":1,"missing":0}"#), part(&[1, 2], r#"{"reset":0,"missing":2}"#)],
        );
        assert_eq!(reset.unwrap(), Response::Reset { reset: 1, missing: 2 });
        let deleted = split(Op::BatchDeleteRange, 1, vec![part(&[0], r#"{"deleted":1,"missing":0}"#)]);
        assert_eq!(deleted.unwrap(), Response::Deleted { deleted: 1, missing: 0 });
        assert_eq!(
            split(Op::BatchSet, 0, vec![part(&[], r#"{"applied":0}"#)]).unwrap(),
            Response::Applied { applied: 0 }
        );
        assert_eq!(absent_part(Op::BatchReset, &[1, 2]), Some(Response::Reset { reset: 0, missing: 2 }));
        assert_eq!(absent_part(Op::BatchSum, &[9]), Some(Response::KeyValues(vec![(9, 0)])));
    }

    #[test]
    fn series_answers_are_combined_and_absent_shards_left_out() {
        let missing = || Err(ClientError::Server(Error::tree_not_found("s")));
        let info = every(
            Op::TreeInfo,
            vec![
                shard(0, Ok(r#"{"tree":"s","key_count":2,"bucket_count":3,"total":10,"branches":9}"#)),
                shard(1, Ok(r#"{"tree":"s","key_count":1,"bucket_count":1,"total":5,"branches":9}"#)),
                shard(2, missing()),
            ],
        )
        .unwrap();
        assert_eq!(json(&info), r#"{"tree":"s","key_count":3,"bucket_count":4,"total":15,"branches":9}"#);
        let err = every(Op::TreeInfo, vec![shard(0, missing()), shard(1, missing())]).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotFound));
        // Writes that create the series must succeed everywhere.
        assert!(every(Op::TreeReset, vec![shard(0, Ok(r#""OK""#)), shard(1, missing())]).is_err());
        let summary = every(
            Op::TreeSummary,
            vec![
                shard(0, Ok(r#"{"tree":"s","range_from":1,"range_to":2,"total":3,"active_keys":1,"bucket_count":2}"#)),
                shard(1, Ok(r#"{"tree":"s","range_from":1,"range_to":2,"total":4,"active_keys":2,"bucket_count":2}"#)),
            ],
        )
        .unwrap();
        assert_eq!(
            json(&summary),
            r#"{"tree":"s","range_from":1,"range_to":2,"total":7,"active_keys":3,"bucket_count":4}"#
        );
        let names = every(Op::TreeList, vec![shard(0, Ok(r#"["b","a"]"#)), shard(1, Ok(r#"["c","a"]"#))]).unwrap();
        assert_eq!(names, Response::Names(vec!["a".into(), "b".into(), "c".into()]));
    }

    #[test]
    fn key_pages_merge_with_a_nodes_cursor() {
        let page = |keys: &str, next: &str| {
            format!(r#"{{"tree":"s","limit":2,"cursor":3,"next_cursor":{next},"keys":[{keys}]}}"#)
        };
        // Shard 0 has more than the page; shard 1 has one key in it.
        let a = page(r#"{"key":4,"total":1},{"key":9,"total":1}"#, "9");
        let b = page(r#"{"key":5,"total":2}"#, "null");
        let merged = every(Op::TreeKeys, vec![shard(0, Ok(&a)), shard(1, Ok(&b))]).unwrap();
        assert_eq!(
            json(&merged),
            r#"{"tree":"s","limit":2,"cursor":3,"next_cursor":5,"keys":[{"key":4,"total":1},{"key":5,"total":2}]}"#
        );
        // Two keys in all: no next page.
        let a = page(r#"{"key":4,"total":1}"#, "null");
        let merged = every(Op::TreeKeys, vec![shard(0, Ok(&a)), shard(1, Ok(&b))]).unwrap();
        assert!(json(&merged).contains(r#""next_cursor":null"#), "{}", json(&merged));
    }

    #[test]
    fn top_takes_the_largest_across_shards_in_a_nodes_order() {
        let a = r#"{"tree":"s","limit":3,"items":[{"key":1,"value":9},{"key":7,"value":5},{"key":3,"value":1}]}"#;
        let b = r#"{"tree":"s","limit":3,"items":[{"key":2,"value":5},{"key":4,"value":2}]}"#;
        let merged = every(Op::TreeTop, vec![shard(0, Ok(a)), shard(1, Ok(b))]).unwrap();
        assert_eq!(merged, Response::Top { tree: "s".into(), limit: 3, items: vec![(1, 9), (2, 5), (7, 5)] });
    }

    #[test]
    fn node_answers_are_listed_per_shard() {
        let health = every(
            Op::Health,
            vec![shard(0, Ok(r#"{"status":"ok"}"#)), shard(1, Ok(r#"{"status":"unhealthy","error":"x"}"#))],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&health.to_json()).unwrap();
        assert_eq!(v["status"], "unhealthy");
        assert_eq!(v["shards"][1]["leader"], "h:1");
        assert_eq!(v["shards"][1]["health"]["error"], "x");
        let err = every(Op::Ping, vec![shard(0, Ok(r#""pong""#)), shard(1, Err(ClientError::Connection("x".into())))]);
        assert!(matches!(err, Err(ClientError::Connection(_))));
    }

    #[test]
    fn metrics_gain_a_shard_label_and_stay_grouped() {
        let text = "# HELP karma_up Up.\n# TYPE karma_up gauge\nkarma_up 1\n# TYPE karma_ops counter\nkarma_ops{op=\"sum\"} 3\n";
        let merged = metrics(&[(0, text.to_owned()), (1, text.to_owned())]);
        assert_eq!(
            merged,
            "# HELP karma_up Up.\n# TYPE karma_up gauge\nkarma_up{shard=\"0\"} 1\nkarma_up{shard=\"1\"} 1\n\
             # TYPE karma_ops counter\nkarma_ops{shard=\"0\",op=\"sum\"} 3\nkarma_ops{shard=\"1\",op=\"sum\"} 3\n"
        );
        assert_eq!(with_shard_label("x{} 1", 2), "x{shard=\"2\"} 1");
    }
}
