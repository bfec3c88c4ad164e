//! What every part of a Karma cluster agrees on: how to talk to etcd
//! ([`etcd`]), where things live in etcd and which shard owns a key
//! ([`layout`]), and the operator's view of a cluster ([`admin`]).
//!
//! It knows nothing of the engine or of async runtimes: the server runs its
//! election on a thread of its own, the client and the `karma cluster`
//! subcommand call it directly.

#![forbid(unsafe_code)]

pub mod admin;
pub mod etcd;
pub mod layout;

pub use etcd::{Etcd, EtcdError, Kv};
pub use layout::{shard_of, ClusterPaths, LeaderRecord, NodeRecord};
