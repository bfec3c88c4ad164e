//! The reference documentation cannot drift from the code: every op name
//! (aliases included) and every error code must appear in docs/protocol.md,
//! every server option and its environment variable in docs/server.md, and
//! every metric an idle server exports in docs/server.md.
//!
//! Adding an op to the op table, an option to the server's option table or a
//! metric without documenting it fails here. The last tests prove the checker
//! itself reports what is missing.

use std::path::Path;

use karma_engine::protocol::Op;
use karma_engine::{Engine, ErrorCode, Session};

fn read_doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The names that do not appear in `doc` as inline code (`` `name` ``).
/// Inline code is required so that a name mentioned in passing inside a
/// longer one (`tree.keys` inside `tree.keys_v2`) does not count.
fn undocumented<'a>(doc: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    names.into_iter().filter(|name| !doc.contains(&format!("`{name}`"))).collect()
}

/// Every name a client may send as `op`.
fn op_names() -> Vec<&'static str> {
    Op::ALL.iter().flat_map(|op| std::iter::once(op.name()).chain(op.aliases().iter().copied())).collect()
}

/// `--long` of every server option, and the environment variable of each
/// that has one, straight from the clap command the server parses with.
fn option_names() -> Vec<String> {
    let mut names = Vec::new();
    for arg in karma_server::config::command().get_arguments() {
        if arg.is_hide_set() {
            continue;
        }
        let Some(long) = arg.get_long() else { continue };
        names.push(format!("--{long}"));
        if let Some(env) = karma_server::config::env_var(long) {
            names.push(env.to_string());
        }
    }
    names
}

/// The metric families of a fresh engine's `system.metrics` text.
fn metric_names() -> Vec<String> {
    let engine = Engine::in_memory();
    let reply = engine.handle_line_acked(br#"{"v":2,"op":"system.metrics"}"#, &Session::client());
    let envelope: serde_json::Value = serde_json::from_slice(&reply).expect("system.metrics answers JSON");
    let text = envelope["response"].as_str().expect("system.metrics answers text");
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_op_and_alias_is_in_the_protocol_reference() {
    let names = op_names();
    assert!(names.len() >= 55, "the op table lists {} names", names.len());
    let missing = undocumented(&read_doc("protocol.md"), names);
    assert!(missing.is_empty(), "ops missing from docs/protocol.md: {missing:?}");
}

#[test]
fn every_error_code_is_in_the_protocol_reference() {
    let missing = undocumented(&read_doc("protocol.md"), ErrorCode::ALL.iter().map(|c| c.as_str()));
    assert!(missing.is_empty(), "error codes missing from docs/protocol.md: {missing:?}");
}

#[test]
fn every_server_option_and_env_var_is_in_the_server_reference() {
    let names = option_names();
    assert!(names.iter().any(|n| n == "--port") && names.iter().any(|n| n == "KARMA_PORT"), "{names:?}");
    let missing = undocumented(&read_doc("server.md"), names.iter().map(String::as_str));
    assert!(missing.is_empty(), "options missing from docs/server.md: {missing:?}");
}

#[test]
fn every_metric_is_in_the_server_reference() {
    let names = metric_names();
    assert!(names.iter().any(|n| n == "karma_commands_total"), "{names:?}");
    let missing = undocumented(&read_doc("server.md"), names.iter().map(String::as_str));
    assert!(missing.is_empty(), "metrics missing from docs/server.md: {missing:?}");
}

#[test]
fn the_checker_reports_an_op_missing_from_an_incomplete_reference() {
    // The real reference with the row of one op taken out.
    let doc = read_doc("protocol.md");
    let without: String = doc.lines().filter(|line| !line.contains("`tree.top`")).collect::<Vec<_>>().join("\n");
    assert_eq!(undocumented(&without, op_names()), vec!["tree.top"]);
    // An op added to the table but not to the reference.
    let mut names = op_names();
    names.push("tree.undocumented");
    assert_eq!(undocumented(&doc, names), vec!["tree.undocumented"]);
}

#[test]
fn the_checker_reports_an_option_missing_from_an_incomplete_reference() {
    let doc = read_doc("server.md");
    let without: String = doc.lines().filter(|line| !line.contains("`--read-timeout`")).collect::<Vec<_>>().join("\n");
    let names = option_names();
    let missing = undocumented(&without, names.iter().map(String::as_str));
    assert!(missing.contains(&"--read-timeout"), "{missing:?}");
    assert!(missing.iter().all(|n| ["--read-timeout", "KARMA_READ_TIMEOUT_SECONDS"].contains(n)), "{missing:?}");
    // A name that appears only inside a longer one does not count.
    assert_eq!(undocumented("`--read-timeout-ms`", ["--read-timeout"]), vec!["--read-timeout"]);
}

/// The rows of docs/server.md's option table: each row's flags (`--bind`,
/// `-b`), environment variable and default, as written.
fn documented_options(doc: &str) -> Vec<(Vec<String>, String, String)> {
    let code = |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(str::to_string).collect() };
    doc.lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            // The flag, variable and default cells hold no `|` (the meaning may).
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let cell = |i: usize| cells.get(i).copied().unwrap_or("");
            (code(cell(1)), cell(2).trim_matches('`').to_string(), cell(3).to_string())
        })
        .collect()
}

#[test]
fn the_server_reference_lists_exactly_the_flag_table_with_its_defaults() {
    let doc = read_doc("server.md");
    let rows = documented_options(&doc);
    let command = karma_server::config::command();
    let flags: Vec<_> = command.get_arguments().filter(|a| !a.is_hide_set()).filter_map(|a| a.get_long()).collect();
    let documented: Vec<&str> =
        rows.iter().filter_map(|(names, ..)| names.first()).map(|n| n.trim_start_matches("--")).collect();
    assert_eq!(documented, flags, "docs/server.md's option table: one row per flag, in the table's order");
    for (names, env, default) in &rows {
        let long = names[0].trim_start_matches("--");
        let arg = command.get_arguments().find(|a| a.get_long() == Some(long)).unwrap();
        let short: Vec<String> = arg.get_short().map(|c| format!("-{c}")).into_iter().collect();
        assert_eq!(&names[1..], &short[..], "--{long}: its short flag");
        assert_eq!(env.as_str(), karma_server::config::env_var(long).unwrap_or(""), "--{long}: its variable");
        let want = match karma_server::config::default_text(long) {
            Some(text) => format!("`{text}`"),
            None if karma_server::config::env_var(long).is_some() => "unset".to_string(),
            None => String::new(),
        };
        assert_eq!(default, &want, "--{long}: its default");
    }
}
