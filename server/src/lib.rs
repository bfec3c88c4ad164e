//! The `karma` TCP server: configuration, the accept loop, one task per
//! connection, graceful shutdown and the optional HTTP metrics endpoint.
//!
//! [`run`] takes an already bound listener (mini-redis style), so tests bind
//! port 0 and run many servers in one process.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod connection;
pub mod logging;
pub mod metrics_http;
pub mod replication;
pub mod slots;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use karma_engine::Engine;
use karma_engine::Limit;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use config::Config;
use connection::ConnectionSettings;
use slots::{Admission, Slots};

/// First and last pause after a failing `accept()` (e.g. `EMFILE`).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Extra wait for aborted connection tasks after the drain timeout.
const FORCE_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Binds the client listener: the first address `host` resolves to,
/// `SO_REUSEADDR`, backlog `SOMAXCONN`.
pub async fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    let addr: SocketAddr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host} did not resolve to any address")))?;
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(u32::try_from(libc::SOMAXCONN).unwrap_or(1024))
}

/// Serves clients on `listener` until `shutdown` completes, then stops
/// accepting, tells every connection to finish its current batch and close,
/// waits up to `--shutdown-timeout` for them, aborts the rest and returns.
/// The caller then snapshots and closes the engine.
pub async fn run(listener: TcpListener, engine: Engine, config: Arc<Config>, shutdown: impl Future) -> io::Result<()> {
    let (notify, watch_rx) = watch::channel(false);
    let slots = Slots::new(config.max_connections());
    let settings = ConnectionSettings {
        max_request_bytes: config.max_request_bytes(),
        read_timeout: config.read_timeout(),
        write_timeout: config.write_timeout(),
        max_pending_output_bytes: config.max_pending_output_bytes(),
        request_deadline: config.request_deadline(),
        heavy: Arc::new(Semaphore::new(config.max_heavy_requests())),
    };
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let sweeper =
        config.ingest_sweep_interval().map(|every| tokio::spawn(expire_ingest_streams(engine.clone(), every)));
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(err) = joined {
                    if err.is_panic() {
                        tracing::error!(event = "server.connection_panic", "{err}");
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    let _ = stream.set_nodelay(config.nodelay);
                    let slot = match slots.admit() {
                        Admission::Admitted(slot) => slot,
                        Admission::ReapedIdle(slot) => {
                            engine.count_limit(Limit::IdleConnectionReaped);
                            slot
                        }
                        Admission::Refused => {
                            engine.count_limit(Limit::ConnectionRefused);
                            tasks.spawn(connection::reject(stream, slots.limit()));
                            continue;
                        }
                    };
                    tasks.spawn(connection::serve(stream, engine.clone(), settings.clone(), slot, watch_rx.clone()));
                }
                Err(err) => {
                    if is_transient_accept_error(&err) {
                        continue;
                    }
                    // e.g. EMFILE/ENFILE/ENOBUFS: keep serving the existing
                    // connections and retry later instead of dying.
                    tracing::error!(event = "server.accept_failed", "{err}");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            },
        }
    }

    drop(listener);
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    tracing::info!(event = "server.stop_begin", "active_clients={}", tasks.len());
    let _ = notify.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_timeout(), drain).await.is_ok() {
        tracing::info!(event = "server.drain_complete", "active_clients=0");
    } else {
        let active = tasks.len();
        tracing::info!(event = "server.drain_timeout", "active_clients={active}");
        tasks.abort_all();
        let wait = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(FORCE_CLOSE_WAIT, wait).await;
        tracing::info!(
            event = "server.force_close",
            "closed_clients={} remaining_clients={}",
            active - tasks.len(),
            tasks.len()
        );
    }
    Ok(())
}

/// Aborts ingest streams idle past `--ingest-stream-ttl` every `every`, so
/// an abandoned stream goes away even when no ingest request arrives to
/// trigger the engine's own check.
async fn expire_ingest_streams(engine: Engine, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let engine = engine.clone();
        match tokio::task::spawn_blocking(move || engine.expire_ingest_streams()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(event = "ingest.expire_failed", "{}", err.message()),
            Err(err) => tracing::error!(event = "ingest.expire_failed", "{err}"),
        }
    }
}

/// Errors that concern only the one connection being accepted.
fn is_transient_accept_error(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted)
}
