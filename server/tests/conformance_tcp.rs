//! Replays the Karma 1.0 conformance corpus (`tests/conformance/`) over TCP
//! against the real `karma` binary: one freshly started server on an empty
//! data directory per scenario, with the scenario's flags, every request on
//! one connection, the next request sent once the previous answer arrived.
//!
//! The comparison rules are the in-process harness's
//! (`engine/tests/common/conformance.rs`, included below), so both targets
//! give the same verdicts: `--skip-known-bugs --relax parser-message`, the
//! overrides of `tests/conformance_overrides.json`, and every answer must end
//! with `\r\n`.
//!
//! `scripts/conformance-tcp` runs this test (`./scripts/test` does too, once).
//! `KARMA_CONFORMANCE_ONLY=name1,name2` limits the run to some scenarios.

mod common;

#[allow(dead_code)]
#[path = "../../engine/tests/common/conformance.rs"]
mod conformance;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use conformance::{
    corpus_dir, load_scenarios, report, run_scenario, selected_scenarios, split_reply, Exchange, Failure, Outcome,
    ReplayOptions, Scenario,
};

/// Longest wait for one answer; a server that takes longer is reported as
/// hung for that scenario (never a timing assertion).
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to a scenario's server.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(port: u16) -> Result<Connection, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(LINE_TIMEOUT)).map_err(|e| format!("set_read_timeout: {e}"))?;
        let writer = stream.try_clone().map_err(|e| format!("clone: {e}"))?;
        Ok(Connection { reader: BufReader::new(stream), writer })
    }

    /// Sends `request` and a `\n`; reads one answer line. A closed
    /// connection (EOF, or a reset after the server's last answer) is an
    /// answer of its own: `body: None`.
    fn exchange(&mut self, request: &str) -> Result<Exchange, String> {
        let mut line = Vec::with_capacity(request.len() + 1);
        line.extend_from_slice(request.as_bytes());
        line.push(b'\n');
        if let Err(e) = self.writer.write_all(&line) {
            // The server may close after its previous answer (request_too_large).
            return match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Ok(Exchange::default()),
                _ => Err(format!("write: {e}")),
            };
        }
        let mut answer = Vec::new();
        match self.reader.read_until(b'\n', &mut answer) {
            Ok(0) => Ok(Exchange::default()),
            Ok(_) => Ok(split_reply(&answer)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && answer.is_empty() => Ok(Exchange::default()),
            Err(e) => Err(format!("read: {e}")),
        }
    }
}

/// Replays one scenario on a fresh server started with its flags.
fn run_over_tcp(scenario: &Scenario, opts: &ReplayOptions) -> Outcome {
    let flags: Vec<&str> = scenario.meta.server_flags.iter().map(String::as_str).collect();
    let server = Server::start(&flags);
    let mut connection = match Connection::open(server.port) {
        Ok(c) => c,
        Err(e) => return Outcome { failures: vec![Failure::scenario(e)], skipped: 0 },
    };
    run_scenario(scenario, opts, &mut |request| connection.exchange(request))
}

#[test]
fn corpus_replays_over_tcp() {
    let scenarios = selected_scenarios();
    assert!(!scenarios.is_empty(), "no scenario to replay");

    let opts = ReplayOptions::standard();
    let (mut passed, mut failed_names) = (0usize, Vec::new());
    let mut text = String::new();
    for scenario in &scenarios {
        let outcome = run_over_tcp(scenario, &opts);
        if outcome.failures.is_empty() {
            passed += 1;
        } else {
            failed_names.push(scenario.name.clone());
        }
        text.push_str(&report(scenario, &outcome));
    }
    let summary = format!("{passed} passed, {} failed", failed_names.len());
    println!("conformance corpus over TCP ({}): {}\n{text}{summary}", common::BIN, corpus_dir().display());
    assert!(failed_names.is_empty(), "conformance over TCP: {summary}; failing: {}", failed_names.join(", "));
}

/// The TCP target reports a wrong answer: a scenario whose recording was
/// altered must fail, naming the line (the harness is not vacuous).
#[test]
fn a_wrong_answer_over_tcp_is_reported() {
    let dir = corpus_dir();
    let mut scenarios = load_scenarios(&dir).unwrap_or_else(|e| panic!("conformance corpus: {e}"));
    let scenario = scenarios.iter_mut().find(|s| s.name == "system_ping_health").expect("system_ping_health scenario");
    let line = scenario
        .lines
        .iter()
        .position(|l| l.response.as_deref().is_some_and(|r| r.contains("\"pong\"")))
        .expect("a pong line");
    if let Some(r) = scenario.lines[line].response.as_mut() {
        *r = r.replace("\"pong\"", "\"pang\"");
    }
    let outcome = run_over_tcp(scenario, &ReplayOptions::standard());
    let lines: Vec<usize> = outcome.failures.iter().map(|f| f.line).collect();
    assert_eq!(lines, vec![line + 1], "{}", report(scenario, &outcome));
}
