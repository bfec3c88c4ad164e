//! `karma cluster init|status`: create a cluster's shard map in etcd and
//! show its shards, leaders, replicas and lag (docs/cluster.md).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use karma_cluster::{admin, Etcd};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// etcd endpoints, `host:port,...`
    #[arg(long, env = "KARMA_CLUSTER_ETCD", default_value = "127.0.0.1:2379")]
    etcd: String,
    /// The cluster's name
    #[arg(long = "cluster-name", env = "KARMA_CLUSTER_NAME", default_value = "karma")]
    cluster_name: String,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Create the cluster with this many shards (fixed for its lifetime).
    Init {
        #[arg(long)]
        shards: u32,
    },
    /// Shards, their leaders, every live node and its lag in log entries.
    Status,
}

pub fn run(args: &ClusterArgs) -> ExitCode {
    if args.cluster_name.is_empty() || args.cluster_name.contains('/') {
        eprintln!("ERROR: --cluster-name must be non-empty and contain no /");
        return ExitCode::from(2);
    }
    let etcd = match Etcd::new(&args.etcd, Duration::from_secs(5)) {
        Ok(etcd) => etcd,
        Err(err) => return fail(err),
    };
    match args.command {
        ClusterCommand::Init { shards: 0 } => {
            eprintln!("ERROR: --shards must be at least 1");
            ExitCode::from(2)
        }
        ClusterCommand::Init { shards } => match admin::init(&etcd, &args.cluster_name, shards) {
            Ok(true) => {
                println!("cluster {} created with {shards} shard(s)", args.cluster_name);
                ExitCode::SUCCESS
            }
            // An existing cluster keeps its shard count: it decides where
            // every key lives.
            Ok(false) => match admin::shard_count(&etcd, &args.cluster_name) {
                Ok(n) => fail(format!(
                    "cluster {} already exists with {} shard(s); its shard count never changes",
                    args.cluster_name,
                    n.map_or("an unreadable number of".to_owned(), |n| n.to_string())
                )),
                Err(err) => fail(err),
            },
            Err(err) => fail(err),
        },
        ClusterCommand::Status => match admin::status(&etcd, &args.cluster_name) {
            Ok(Some(shards)) => {
                print!("{}", admin::render(&shards));
                ExitCode::SUCCESS
            }
            Ok(None) => fail(format!("no cluster {} in etcd (karma cluster init)", args.cluster_name)),
            Err(err) => fail(err),
        },
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ERROR: {message}");
    ExitCode::from(1)
}
