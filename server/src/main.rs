//! `karma`: the Karma TCP server.
//!
//! Lifecycle (spec/server.md §1, §7): parse env + flags, install signal
//! handlers, open (restore) the engine, bind, log `server.start`, serve.
//! SIGINT/SIGTERM stop accepting, drain connections up to
//! `--shutdown-timeout`, take a full snapshot, close the engine and exit 0.
//! SIGUSR1 takes a full snapshot and keeps running.
//!
//! `karma cli|ingest|reconcile|cluster ...` runs an operator tool instead (the
//! karma-cli crate); everything else is the server's own command line.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use karma_engine::Engine;
use karma_server::config::{self, Cli, Config, VERSION};
use karma_server::{bind, logging, metrics_http, replication, run};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    if args.first().is_some_and(|first| karma_cli::is_tool(first)) {
        return karma_cli::run(&args);
    }
    let config = match config::parse_process_args(&args) {
        Ok(Cli::Run(config)) => config,
        Ok(Cli::Help(text)) => {
            print!("{text}");
            println!(
                "\nOperator tools: karma cli|ingest|reconcile|cluster --help (docs/operations.md, docs/cluster.md)"
            );
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Version(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprint!("{}", err.render());
            return ExitCode::from(1);
        }
    };
    logging::init(config.log);
    for warning in config.startup_warnings() {
        tracing::warn!(event = "server.config_warning", "{warning}");
    }
    raise_open_files_limit();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(config.workers()).enable_all().build() {
            Ok(rt) => rt,
            Err(err) => {
                eprintln!("ERROR: cannot start the runtime: {err}");
                return ExitCode::from(1);
            }
        };
    let code = runtime.block_on(serve(Arc::from(config)));
    // Connection tasks that ignored the drain were aborted; do not wait for
    // stragglers (e.g. a metrics scrape) any longer.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ERROR: {message}");
    ExitCode::from(1)
}

async fn serve(config: Arc<Config>) -> ExitCode {
    // Handlers first, so a signal during a long restore is not fatal; it is
    // acted upon once the server runs.
    let (mut sigint, mut sigterm, mut sigusr1) =
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::user_defined1())) {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return fail(format!("cannot install signal handlers: {e}"))
            }
        };

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        let _ = stop_tx.send(true);
    });

    if config.cluster_etcd.is_some() {
        return karma_server::cluster::serve(config, stop_rx).await;
    }

    // An empty slave first installs the master's newest snapshots.
    let source = config.replication_source();
    let mut bootstrap = replication::BootstrapReport::default();
    if let (Some(source), true) = (&source, config.restore) {
        bootstrap =
            replication::bootstrap_if_empty(PathBuf::from(&config.directory), source.clone(), stop_rx.clone()).await;
        if *stop_rx.borrow() {
            return ExitCode::SUCCESS;
        }
    }

    let options = config.engine_options();
    let engine = match tokio::task::spawn_blocking(move || Engine::open(options)).await {
        Ok(Ok(engine)) => engine,
        Ok(Err(err)) => return fail(err.message()),
        Err(err) => return fail(format!("engine startup failed: {err}")),
    };

    let listener = match bind(&config.host, config.port_u16()).await {
        Ok(l) => l,
        Err(err) => {
            let _ = engine.close();
            return fail(format!("cannot listen on {}:{}: {err}", config.host, config.port));
        }
    };
    let metrics_listener = match config.metrics_port() {
        Some(port) => match bind(&config.host, port).await {
            Ok(l) => Some(l),
            Err(err) => {
                let _ = engine.close();
                return fail(format!("cannot listen on {}:{port} (metrics): {err}", config.host));
            }
        },
        None => None,
    };
    tracing::info!(event = "server.start", "version={VERSION} port={}", config.port);
    if let Some(source) = source {
        replication::record_startup_bootstrap(&engine, bootstrap);
        tokio::spawn(replication::run_poller(
            engine.clone(),
            PathBuf::from(&config.directory),
            source,
            stop_rx.clone(),
        ));
    }

    {
        let engine = engine.clone();
        tokio::spawn(async move {
            while sigusr1.recv().await.is_some() {
                let engine = engine.clone();
                match tokio::task::spawn_blocking(move || engine.snapshot_all()).await {
                    Ok(Ok(())) => tracing::info!(event = "server.snapshot", "signal=USR1"),
                    Ok(Err(err)) => {
                        tracing::error!(event = "server.snapshot_failed", "{}", err.message())
                    }
                    Err(err) => tracing::error!(event = "server.snapshot_failed", "{err}"),
                }
            }
        });
    }
    if let Some(listener) = metrics_listener {
        tokio::spawn(metrics_http::serve(listener, engine.clone(), stopped(stop_rx.clone())));
    }

    if let Err(err) = run(listener, engine.clone(), config.clone(), stopped(stop_rx)).await {
        tracing::error!(event = "server.error", "{err}");
    }

    let mut code = ExitCode::SUCCESS;
    let snapshot_engine = engine.clone();
    match tokio::task::spawn_blocking(move || snapshot_engine.snapshot_all()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::error!(event = "server.snapshot_failed", "{}", err.message());
            eprintln!("ERROR: final snapshot failed: {}", err.message());
            code = ExitCode::from(1);
        }
        Err(err) => {
            tracing::error!(event = "server.snapshot_failed", "{err}");
            code = ExitCode::from(1);
        }
    }
    let close_engine = engine.clone();
    match tokio::task::spawn_blocking(move || close_engine.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::error!(event = "server.close_failed", "{}", err.message());
            code = ExitCode::from(1);
        }
        Err(err) => {
            tracing::error!(event = "server.close_failed", "{err}");
            code = ExitCode::from(1);
        }
    }
    tracing::info!(event = "server.stop", "version={VERSION}");
    code
}

/// Completes once the stop flag is set (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Lets a busy server hold many sockets: raise the soft `RLIMIT_NOFILE` to
/// the hard limit (best effort).
fn raise_open_files_limit() {
    if let Err(err) = rlimit::increase_nofile_limit(1 << 20) {
        tracing::warn!(event = "server.rlimit", "cannot raise the open files limit: {err}");
    }
}
