//! `karma cluster init` and `karma cluster status`: create a cluster's
//! shard map and show shards, leaders, replicas and lag.

use crate::etcd::{Etcd, Result};
use crate::layout::{config_value, parse_config, ClusterPaths, LeaderRecord, NodeRecord};

/// Creates the cluster with `shards` shards. Returns `Ok(false)` (and
/// changes nothing) when it already exists: the shard count of a cluster
/// never changes, since it decides where every key lives.
pub fn init(etcd: &Etcd, cluster: &str, shards: u32) -> Result<bool> {
    let paths = ClusterPaths::new(cluster);
    let value = config_value(shards);
    etcd.put_if_unchanged(&[(&paths.config(), 0)], &[(&paths.config(), &value, None)])
}

/// The shard count of `cluster`, `None` when it was never initialised.
pub fn shard_count(etcd: &Etcd, cluster: &str) -> Result<Option<u32>> {
    Ok(etcd.get(&ClusterPaths::new(cluster).config())?.and_then(|kv| parse_config(&kv.value)))
}

/// One shard as `status` shows it.
#[derive(Clone, Debug)]
pub struct ShardStatus {
    pub shard: u32,
    pub leader: Option<LeaderRecord>,
    pub nodes: Vec<NodeRecord>,
}

pub fn status(etcd: &Etcd, cluster: &str) -> Result<Option<Vec<ShardStatus>>> {
    let Some(shards) = shard_count(etcd, cluster)? else { return Ok(None) };
    let paths = ClusterPaths::new(cluster);
    let mut out = Vec::new();
    for shard in 0..shards {
        let leader = etcd.get(&paths.leader(shard))?.and_then(|kv| LeaderRecord::parse(&kv.value));
        let nodes =
            etcd.get_prefix(&paths.nodes(shard))?.iter().filter_map(|kv| NodeRecord::parse(&kv.value)).collect();
        out.push(ShardStatus { shard, leader, nodes });
    }
    Ok(Some(out))
}

/// The status table: one line per node, its lag behind its shard's leader.
pub fn render(shards: &[ShardStatus]) -> String {
    let mut out = String::from("shard  node            role     address                lsn         lag\n");
    for s in shards {
        let leader_lsn = s.leader.as_ref().and_then(|l| s.nodes.iter().find(|n| n.node_id == l.node_id)).map(|n| n.lsn);
        if s.nodes.is_empty() {
            out.push_str(&format!("{:<6} (no live node)\n", s.shard));
        }
        for n in &s.nodes {
            let is_leader = s.leader.as_ref().is_some_and(|l| l.node_id == n.node_id);
            let role = if is_leader { "leader" } else { n.role.as_str() };
            let lag = match (is_leader, leader_lsn) {
                (true, _) => "-".to_owned(),
                (false, Some(l)) => l.saturating_sub(n.lsn).to_string(),
                (false, None) => "?".to_owned(),
            };
            out.push_str(&format!(
                "{:<6} {:<15} {:<8} {:<22} {:<11} {lag}\n",
                s.shard, n.node_id, role, n.advertise, n.lsn
            ));
        }
        if s.leader.is_none() {
            out.push_str(&format!("{:<6} (no leader)\n", s.shard));
        }
    }
    out
}
