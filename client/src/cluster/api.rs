//! [`Karma`](karma_engine::api::Karma) for [`ClusterClient`], produced from
//! the surface table by the adapter of [`crate::typed`]: each request is
//! carried out by [`ClusterClient::run`] (routed, split or sent to every
//! shard, the answers merged into one node's), and its answer read with the
//! wire types [`Client`](crate::Client) uses, so both read the same response
//! shapes the same way.
//!
//! The methods whose answer is the cluster's own: `ping` is `"pong"` once
//! every shard's leader answered; `health` is
//! `{"status":"ok"|"unhealthy","shards":[{"shard":n,"leader":"host:port","health":{...}}, ...]}`
//! and `stats` `{"shards":[{"shard":n,"leader":"host:port","stats":{...}}, ...]}`;
//! `metrics` is every shard leader's metrics, each sample labelled
//! `shard="n"`; `snapshot_all` is refused (`validation_error`): a snapshot
//! concerns one node's files.

use karma_engine::protocol::Op;
use serde_json::{Map, Value};

use super::ClusterClient;
use crate::typed::{karma_over_requests, Requests};
use crate::Result;

impl Requests for ClusterClient {
    fn response_json(&self, op: Op, fields: Map<String, Value>) -> Result<Vec<u8>> {
        Ok(self.run(op.name(), fields)?.to_json())
    }
}

karma_engine::for_each_method!(@with [ClusterClient;] karma_over_requests);
