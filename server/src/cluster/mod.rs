//! Cluster mode (`--cluster-etcd`): the node's role follows an election in
//! etcd instead of `--role` (docs/cluster.md).
//!
//! [`controller`] holds the election on a thread; this module serves what it
//! decides. Each change of role closes the current server instance the way a
//! clean stop does (drain, snapshot, close the engine) and opens the data
//! directory again in the new role: promotion is exactly the documented
//! manual path (stop the slave cleanly, start it as master), so LSNs carry
//! on. A node that follows a new leader first checks that its data is a
//! prefix of the leader's history; if not (a former leader with writes
//! nobody else received) it empties its directory and bootstraps.

pub mod controller;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use karma_cluster::layout::{is_prefix_of, Epoch};
use karma_cluster::{ClusterPaths, Etcd, LeaderRecord};
use karma_engine::{Engine, Role};
use tokio::sync::watch;

use crate::config::Config;
use crate::replication::{self, Source};
use controller::{Controller, Identity, Shared, Want};

/// The file recording which leadership epoch the directory's data follows.
pub const EPOCH_FILE: &str = "cluster.epoch";

/// What one server instance is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Mode {
    /// Reads only, replicating from nobody (before any leader is known).
    Standby,
    Leader(LeaderRecord),
    Follower(LeaderRecord, Vec<Epoch>),
}

/// Serves as a cluster node until `stop` is set.
pub async fn serve(config: Arc<Config>, stop: watch::Receiver<bool>) -> ExitCode {
    let (Some(endpoints), Some(node_id), Some(advertise)) =
        (config.cluster_etcd.clone(), config.node_id.clone(), config.advertise.clone())
    else {
        return fail("cluster mode needs --cluster-etcd, --node-id and --advertise");
    };
    let ttl = Duration::from_secs(u64::try_from(config.cluster_lease_ttl_seconds).unwrap_or(5));
    let etcd = match Etcd::new(&endpoints, (ttl / 4).max(Duration::from_millis(300))) {
        Ok(e) => e,
        Err(err) => return fail(err),
    };
    let shard = u32::try_from(config.shard).unwrap_or(0);
    if let Err(message) = check_shard(&etcd, &config.cluster_name, shard).await {
        return fail(message);
    }
    let me = Identity { paths: ClusterPaths::new(&config.cluster_name), shard, node_id, advertise, ttl };
    let shared = Arc::new(Shared::default());
    let (want_tx, mut want_rx) = watch::channel(Want::Wait);
    let controller = Controller::new(etcd, me, shared.clone(), want_tx);
    let thread = match std::thread::Builder::new().name("karma-cluster".into()).spawn(move || controller.run()) {
        Ok(t) => t,
        Err(err) => return fail(format!("cannot start the cluster thread: {err}")),
    };
    let dir = PathBuf::from(&config.directory);
    let mut mode = Mode::Standby;
    let mut code = ExitCode::SUCCESS;
    loop {
        let (instance_stop_tx, instance_stop_rx) = watch::channel(false);
        let engine = match start_instance(&config, &dir, &mode, &shared, instance_stop_rx.clone(), &stop).await {
            Ok(engine) => engine,
            Err(err) => {
                code = fail(err);
                break;
            }
        };
        let Some(engine) = engine else { break };
        let listener = match crate::bind(&config.host, config.port_u16()).await {
            Ok(l) => l,
            Err(err) => {
                let _ = engine.close();
                code = fail(format!("cannot listen on {}:{}: {err}", config.host, config.port));
                break;
            }
        };
        tracing::info!(event = "cluster.serving", "mode={mode:?}");
        // Serve until stopped or told to become something else.
        let next = {
            let mut stop = stop.clone();
            let want_rx = &mut want_rx;
            let current = mode.clone();
            let watcher = async move {
                loop {
                    let target = target_mode(&want_rx.borrow_and_update());
                    if let Some(target) = target.filter(|t| *t != current) {
                        return Some(target);
                    }
                    tokio::select! {
                        changed = want_rx.changed() => if changed.is_err() { return None },
                        _ = stop.wait_for(|s| *s) => return None,
                    }
                }
            };
            let (next_tx, next_rx) = tokio::sync::oneshot::channel();
            let served = crate::run(listener, engine.clone(), config.clone(), async move {
                let _ = next_tx.send(watcher.await);
            });
            let result = served.await;
            if let Err(err) = result {
                tracing::error!(event = "server.error", "{err}");
            }
            next_rx.await.ok().flatten()
        };
        let _ = instance_stop_tx.send(true);
        shared.uninstall();
        if let Err(err) = close_engine(engine).await {
            tracing::error!(event = "server.close_failed", "{err}");
            code = ExitCode::from(1);
            break;
        }
        match next {
            Some(target) => mode = target,
            None => break,
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    tracing::info!(event = "server.stop", "version={}", crate::config::VERSION);
    code
}

/// Refuses a shard the cluster does not have, or a cluster never created:
/// such a node would serve keys no client sends it. When etcd cannot be
/// reached the node starts anyway (the election waits for etcd).
async fn check_shard(etcd: &Etcd, cluster: &str, shard: u32) -> Result<(), String> {
    let etcd = etcd.clone();
    let name = cluster.to_owned();
    let count = tokio::task::spawn_blocking(move || karma_cluster::admin::shard_count(&etcd, &name)).await;
    match count {
        Ok(Ok(Some(n))) if shard < n => Ok(()),
        Ok(Ok(Some(n))) => Err(format!("cluster {cluster} has {n} shard(s), numbered from 0: no shard {shard}")),
        Ok(Ok(None)) => Err(format!("no cluster {cluster} in etcd: create it first with karma cluster init")),
        Ok(Err(err)) => {
            tracing::warn!(event = "cluster.etcd_error", "cannot check the shard count yet: {err}");
            Ok(())
        }
        Err(err) => Err(format!("cannot check the shard count: {err}")),
    }
}

fn target_mode(want: &Want) -> Option<Mode> {
    match want {
        Want::Wait => None,
        Want::Lead(record) => Some(Mode::Leader(record.clone())),
        Want::Follow { leader, history } => Some(Mode::Follower(leader.clone(), history.clone())),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    tracing::error!(event = "cluster.failed", "{message}");
    eprintln!("ERROR: {message}");
    ExitCode::from(1)
}

/// Opens the directory for `mode`; `Ok(None)` when stopped meanwhile.
async fn start_instance(
    config: &Config,
    dir: &Path,
    mode: &Mode,
    shared: &Arc<Shared>,
    instance_stop: watch::Receiver<bool>,
    stop: &watch::Receiver<bool>,
) -> Result<Option<Engine>, String> {
    let role = if matches!(mode, Mode::Leader(_)) { Role::Master } else { Role::Slave };
    let mut engine = open(config, role).await?;
    if let Mode::Follower(leader, history) = mode {
        let local_epoch = read_epoch(dir);
        let lsn = engine.replicated_lsn();
        if !is_prefix_of(local_epoch, lsn, history) {
            tracing::warn!(
                event = "cluster.diverged",
                "local data (epoch {local_epoch}, lsn {lsn}) is not a prefix of leader {}'s; rebuilding",
                leader.node_id
            );
            close_engine(engine).await?;
            empty_directory(dir)?;
            let source = source_of(config, leader)?;
            let report = replication::bootstrap_if_empty(dir.to_path_buf(), source, stop.clone()).await;
            if *stop.borrow() {
                return Ok(None);
            }
            engine = open(config, Role::Slave).await?;
            replication::record_startup_bootstrap(&engine, report);
        }
        write_epoch(dir, leader.epoch)?;
        let source = source_of(config, leader)?;
        tokio::spawn(replication::run_poller(engine.clone(), dir.to_path_buf(), source, instance_stop));
    }
    if let Mode::Leader(record) = mode {
        write_epoch(dir, record.epoch)?;
    }
    shared.install(&engine, matches!(mode, Mode::Leader(_)));
    Ok(Some(engine))
}

fn source_of(config: &Config, leader: &LeaderRecord) -> Result<Source, String> {
    let (host, port) = leader
        .advertise
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("leader {} advertises an invalid address {}", leader.node_id, leader.advertise))?;
    Ok(Source {
        host,
        port,
        token: config.replication_token.clone().or_else(|| config.auth_token.clone()),
        poll_interval: Duration::from_millis(u64::try_from(config.replication_poll_interval_ms).unwrap_or(1000).max(1)),
        batch_size: usize::try_from(config.replication_batch_size).unwrap_or(1000).clamp(1, 10_000),
        timeout: config.read_timeout().unwrap_or(Duration::from_secs(5)),
        max_line_bytes: usize::try_from(config.replication_max_line_bytes).unwrap_or(1 << 28).max(1),
    })
}

async fn open(config: &Config, role: Role) -> Result<Engine, String> {
    let mut options = config.engine_options();
    options.role = role;
    match tokio::task::spawn_blocking(move || Engine::open(options)).await {
        Ok(Ok(engine)) => Ok(engine),
        Ok(Err(err)) => Err(err.message().to_owned()),
        Err(err) => Err(format!("engine startup failed: {err}")),
    }
}

/// A clean stop's end: snapshot everything, then close.
async fn close_engine(engine: Engine) -> Result<(), String> {
    match tokio::task::spawn_blocking(move || engine.snapshot_all().and_then(|()| engine.close())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.message().to_owned()),
        Err(err) => Err(err.to_string()),
    }
}

fn read_epoch(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join(EPOCH_FILE)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn write_epoch(dir: &Path, epoch: u64) -> Result<(), String> {
    karma_engine::files::atomic_write(dir, EPOCH_FILE, format!("{epoch}\n").as_bytes())
        .map_err(|e| e.message().to_owned())
}

/// Removes the files of the (closed) directory, not the directory itself.
fn empty_directory(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("Cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| format!("Cannot remove {}: {e}", path.display()))?;
    }
    Ok(())
}
