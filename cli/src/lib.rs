//! Karma's operator tools, run as subcommands of the `karma` binary:
//!
//! * `karma cli`: one request from the command line, or an interactive
//!   session (see [`repl`]);
//! * `karma ingest`: CSV backfill through the streaming ingest ops ([`ingest`]);
//! * `karma reconcile`: compare a CSV of expected points with the server
//!   ([`reconcile`]);
//! * `karma cluster`: create and inspect a cluster's shard map in etcd
//!   ([`cluster`]).
//!
//! All of them reach the server through the engine's client ([`connect`]),
//! configured by flags or the same `KARMA_*` variables as the server.

#![forbid(unsafe_code)]

pub mod answer;
pub mod cluster;
pub mod connect;
pub mod csv_rows;
pub mod ingest;
mod interrupt;
pub mod progress;
pub mod reconcile;
pub mod repl;
pub mod request;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use connect::{ConnectArgs, Connection};

/// The subcommand names `karma` hands over to this crate.
pub const TOOLS: &[&str] = &["cli", "ingest", "reconcile", "cluster"];

/// Whether `karma <first>` is one of the tools rather than the server.
pub fn is_tool(first: &str) -> bool {
    TOOLS.contains(&first)
}

#[derive(Parser, Debug)]
#[command(name = "karma", bin_name = "karma", about = "Karma operator tools", disable_version_flag = true)]
struct Tools {
    #[command(subcommand)]
    tool: Tool,
}

#[derive(Subcommand, Debug)]
enum Tool {
    /// Send one request (`karma cli counter.sum series=api key=42` or raw
    /// JSON), or start an interactive session without one.
    Cli(CliArgs),
    /// Stream a CSV of key,bucket,value rows into a series (resumable).
    Ingest(ingest::IngestArgs),
    /// Compare a CSV of expected key,bucket,value points with the server.
    Reconcile(reconcile::ReconcileArgs),
    /// Create (`init --shards=N`) or inspect (`status`) a cluster in etcd.
    Cluster(cluster::ClusterArgs),
}

#[derive(Args, Debug)]
struct CliArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print the response line exactly as the server sent it.
    #[arg(long)]
    raw: bool,
    /// `OP name=value ...` or one raw JSON request; none: interactive.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "REQUEST")]
    request: Vec<String>,
}

/// Runs `karma <tool> <args...>` (`args[0]` is the tool's name).
pub fn run(args: &[String]) -> ExitCode {
    let tools = match Tools::try_parse_from(std::iter::once("karma").chain(args.iter().map(String::as_str))) {
        Ok(tools) => tools,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    match tools.tool {
        Tool::Cli(args) => cli(&args),
        Tool::Ingest(args) => ingest::run(&args),
        Tool::Reconcile(args) => reconcile::run(&args),
        Tool::Cluster(args) => cluster::run(&args),
    }
}

fn cli(args: &CliArgs) -> ExitCode {
    let conn = match Connection::open(&args.connect) {
        Ok(conn) => conn,
        Err(message) => {
            eprintln!("karma cli: {message}");
            return ExitCode::from(2);
        }
    };
    if args.request.is_empty() {
        return repl::run(&conn);
    }
    if args.request[0] == "help" {
        print!("{}", request::help(args.request.get(1).map(String::as_str)));
        return ExitCode::SUCCESS;
    }
    if args.raw {
        let line = match request::build(&args.request) {
            Ok(line) => line,
            Err(message) => {
                eprintln!("(error) {message}");
                return ExitCode::from(1);
            }
        };
        return match conn.raw(&line) {
            Ok(response) => {
                println!("{response}");
                match answer::render(&response).is_error {
                    true => ExitCode::from(1),
                    false => ExitCode::SUCCESS,
                }
            }
            Err(err) => {
                eprintln!("(error) {err}");
                ExitCode::from(1)
            }
        };
    }
    let (text, failed) = repl::send(&conn, &args.request);
    if failed {
        eprintln!("{text}");
        ExitCode::from(1)
    } else {
        println!("{text}");
        ExitCode::SUCCESS
    }
}
