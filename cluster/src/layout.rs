//! Where a cluster keeps its state in etcd, the records stored there, and
//! the shard a key belongs to.
//!
//! ```text
//! /karma/<cluster>/config                  {"shards":N,"hash":"splitmix64"}   (karma cluster init)
//! /karma/<cluster>/shards/<n>/leader       LeaderRecord, on the leader's lease
//! /karma/<cluster>/shards/<n>/history      [ {epoch,start_lsn,node_id}, ... ] every leadership, oldest first
//! /karma/<cluster>/shards/<n>/nodes/<id>   NodeRecord, on that node's lease
//! ```

use serde_json::{json, Value};

/// Which of `shards` shards owns `key` (of any series): the SplitMix64
/// finaliser of the key, modulo the shard count. Stable across versions and
/// platforms; documented in docs/cluster.md.
pub fn shard_of(key: u64, shards: u32) -> u32 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    u32::try_from(z % u64::from(shards.max(1))).unwrap_or(0)
}

/// The etcd key names of one cluster.
#[derive(Clone, Debug)]
pub struct ClusterPaths {
    root: String,
}

impl ClusterPaths {
    pub fn new(cluster: &str) -> ClusterPaths {
        ClusterPaths { root: format!("/karma/{cluster}/") }
    }
    pub fn config(&self) -> String {
        format!("{}config", self.root)
    }
    pub fn shard(&self, shard: u32) -> String {
        format!("{}shards/{shard}/", self.root)
    }
    pub fn leader(&self, shard: u32) -> String {
        format!("{}leader", self.shard(shard))
    }
    pub fn history(&self, shard: u32) -> String {
        format!("{}history", self.shard(shard))
    }
    pub fn nodes(&self, shard: u32) -> String {
        format!("{}nodes/", self.shard(shard))
    }
    pub fn node(&self, shard: u32, node_id: &str) -> String {
        format!("{}{node_id}", self.nodes(shard))
    }
}

/// The shard count from a config value.
pub fn parse_config(value: &str) -> Option<u32> {
    let v: Value = serde_json::from_str(value).ok()?;
    v.get("shards").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0)
}

pub fn config_value(shards: u32) -> String {
    json!({ "shards": shards, "hash": "splitmix64" }).to_string()
}

/// The current leader of a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderRecord {
    pub node_id: String,
    /// `host:port` clients and slaves connect to.
    pub advertise: String,
    /// Counts leaderships of this shard, from 1.
    pub epoch: u64,
    /// The leader's LSN when it took over: every LSN above it is its own.
    pub start_lsn: u64,
}

impl LeaderRecord {
    pub fn to_json(&self) -> String {
        json!({ "node_id": self.node_id, "advertise": self.advertise, "epoch": self.epoch, "start_lsn": self.start_lsn })
            .to_string()
    }
    pub fn parse(value: &str) -> Option<LeaderRecord> {
        let v: Value = serde_json::from_str(value).ok()?;
        Some(LeaderRecord {
            node_id: v.get("node_id")?.as_str()?.to_owned(),
            advertise: v.get("advertise")?.as_str()?.to_owned(),
            epoch: v.get("epoch")?.as_u64()?,
            start_lsn: v.get("start_lsn")?.as_u64()?,
        })
    }
}

/// What a node publishes about itself (for elections and status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    pub node_id: String,
    pub advertise: String,
    /// `master`, `slave` or `starting`.
    pub role: String,
    /// The last LSN the node holds.
    pub lsn: u64,
}

impl NodeRecord {
    pub fn to_json(&self) -> String {
        json!({ "node_id": self.node_id, "advertise": self.advertise, "role": self.role, "lsn": self.lsn }).to_string()
    }
    pub fn parse(value: &str) -> Option<NodeRecord> {
        let v: Value = serde_json::from_str(value).ok()?;
        Some(NodeRecord {
            node_id: v.get("node_id")?.as_str()?.to_owned(),
            advertise: v.get("advertise")?.as_str()?.to_owned(),
            role: v.get("role")?.as_str()?.to_owned(),
            lsn: v.get("lsn")?.as_u64()?,
        })
    }
}

/// One leadership in a shard's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Epoch {
    pub epoch: u64,
    pub start_lsn: u64,
    pub node_id: String,
}

pub fn parse_history(value: &str) -> Vec<Epoch> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(value) else { return Vec::new() };
    items
        .iter()
        .filter_map(|v| {
            Some(Epoch {
                epoch: v.get("epoch")?.as_u64()?,
                start_lsn: v.get("start_lsn")?.as_u64()?,
                node_id: v.get("node_id")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

pub fn history_value(history: &[Epoch]) -> String {
    let items: Vec<Value> =
        history.iter().map(|e| json!({ "epoch": e.epoch, "start_lsn": e.start_lsn, "node_id": e.node_id })).collect();
    Value::Array(items).to_string()
}

/// Whether data of epoch `local_epoch` holding LSNs up to `local_lsn` is a
/// prefix of the history that leads to the last epoch of `history`: every
/// later leadership must have started at or after `local_lsn`. A node whose
/// data fails this has entries nobody else has and must be rebuilt.
pub fn is_prefix_of(local_epoch: u64, local_lsn: u64, history: &[Epoch]) -> bool {
    history.iter().filter(|e| e.epoch > local_epoch).all(|e| e.start_lsn >= local_lsn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_hash_is_stable_and_spreads() {
        // Pinned values: changing them would move data between shards.
        assert_eq!([shard_of(0, 2), shard_of(1, 2), shard_of(2, 2), shard_of(42, 2)], [1, 1, 0, 1]);
        let on_one = (0..1000u64).filter(|k| shard_of(*k, 2) == 1).count();
        assert!((400..600).contains(&on_one), "{on_one}");
        assert_eq!(shard_of(7, 1), 0);
    }

    #[test]
    fn records_round_trip() {
        let l = LeaderRecord { node_id: "a".into(), advertise: "h:1".into(), epoch: 3, start_lsn: 9 };
        assert_eq!(LeaderRecord::parse(&l.to_json()), Some(l));
        let n = NodeRecord { node_id: "b".into(), advertise: "h:2".into(), role: "slave".into(), lsn: 4 };
        assert_eq!(NodeRecord::parse(&n.to_json()), Some(n));
        assert_eq!(parse_config(&config_value(4)), Some(4));
        assert_eq!(parse_config("{\"shards\":0}"), None);
        let h = vec![Epoch { epoch: 1, start_lsn: 0, node_id: "a".into() }];
        assert_eq!(parse_history(&history_value(&h)), h);
    }

    #[test]
    fn divergence_follows_the_history() {
        let h = |starts: &[u64]| -> Vec<Epoch> {
            starts
                .iter()
                .enumerate()
                .map(|(i, s)| Epoch { epoch: i as u64 + 1, start_lsn: *s, node_id: "n".into() })
                .collect()
        };
        // Epoch 1 wrote to 100; epoch 2 started at 90: the old leader diverged.
        assert!(!is_prefix_of(1, 100, &h(&[0, 90])));
        assert!(is_prefix_of(1, 90, &h(&[0, 90])));
        // A node of epoch 1 at 95 stays diverged even after a later epoch at 200.
        assert!(!is_prefix_of(1, 95, &h(&[0, 90, 200])));
        assert!(is_prefix_of(2, 150, &h(&[0, 90, 200])));
    }
}
