//! Replays the Karma 1.0 conformance corpus (`tests/conformance/`, recorded
//! from the original server) through the engine in-process, with the
//! standard rules: lines tagged `known_bugs` are sent but not compared, and
//! JSON parser messages are not compared (see `common/conformance.rs`).
//!
//! Every scenario runs on a fresh engine in a fresh temporary directory. All
//! mismatches are collected and reported at once, followed by a
//! `N passed, M failed` line. `KARMA_CONFORMANCE_ONLY=name1,name2` limits the
//! run to some scenarios (naming an unknown scenario fails the test).
//!
//! The comparison logic lives in `common/conformance.rs`; the tests at the end
//! of this file check it on hand-made examples.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::conformance::*;

/// Longest wait for one response (or for open/close) before the scenario is
/// declared hung.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn conformance_corpus() {
    let scenarios = selected_scenarios();

    let opts = ReplayOptions::standard();
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut text = String::new();
    let mut failed_names = Vec::new();
    for scenario in &scenarios {
        let outcome = run_in_process(scenario, &opts, LINE_TIMEOUT);
        if outcome.failures.is_empty() {
            passed += 1;
        } else {
            failed += 1;
            failed_names.push(scenario.name.clone());
        }
        text.push_str(&report(scenario, &outcome));
    }
    let summary = format!("{passed} passed, {failed} failed");
    println!("conformance corpus: {}\n{text}{summary}", corpus_dir().display());
    assert!(failed == 0, "conformance: {summary} (report above); failing scenarios: {}", failed_names.join(", "));
}

// ------------------------------------------------------------------ harness self-tests

fn rule(line: usize, path: &str, reason: &str) -> Rule {
    Rule { line, path: path.into(), reason: reason.into(), ..Rule::default() }
}

fn standard_relaxed() -> BTreeSet<String> {
    ReplayOptions::standard().relaxed
}

fn cmp(expected: &str, actual: &str, rules: &[Rule]) -> Vec<String> {
    let refs: Vec<&Rule> = rules.iter().collect();
    compare_line(Some(expected), Some(actual), &refs, &standard_relaxed())
}

#[test]
fn parser_keeps_order_duplicates_and_number_text() {
    let v =
        parse_exact(r#" {"b":1,"a":1.0,"b":-0.5e+3,"s":"\u00e9\n\ud83d\ude00","n":[null,true,false,NaN]} "#).unwrap();
    assert_eq!(
        render(&v),
        "{\"b\":1,\"a\":1.0,\"b\":-0.5e+3,\"s\":\"\u{e9}\\n\u{1F600}\",\"n\":[null,true,false,NaN]}"
    );
    assert_eq!(render(&parse_exact("18446744073709551615").unwrap()), "18446744073709551615");
    for bad in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", "1e", "-", "\"a\nb\"", "{\"a\" 1}", "nul", "1 2", "'a'"] {
        assert!(parse_exact(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn path_tokens_cover_the_meta_dialect() {
    assert_eq!(
        path_tokens(r#"$.response.latest_by_tree[0]["odd name"][*].file"#).unwrap(),
        vec![
            Token::Key("response".into()),
            Token::Key("latest_by_tree".into()),
            Token::Idx(0),
            Token::Key("odd name".into()),
            Token::Star,
            Token::Key("file".into()),
        ]
    );
    assert_eq!(path_tokens("$").unwrap(), vec![]);
    for bad in ["response", "$.", "$[x]", "$[\"a\"", "$.a b", "$..a"] {
        assert!(path_tokens(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn blanking_applies_to_every_match() {
    let mut v = parse_exact(r#"{"r":[{"t":1,"k":2},{"t":3,"k":4}],"t":5}"#).unwrap();
    apply_at(&mut v, &path_tokens("$.r[*].t").unwrap(), &|x: &mut Json| *x = Json::Mask);
    assert_eq!(render(&v), r#"{"r":[{"t":<varies>,"k":2},{"t":<varies>,"k":4}],"t":5}"#);
    // a path that matches nothing is ignored
    apply_at(&mut v, &path_tokens("$.r[7].zz").unwrap(), &|x: &mut Json| *x = Json::Mask);
    assert_eq!(render(&v), r#"{"r":[{"t":<varies>,"k":2},{"t":<varies>,"k":4}],"t":5}"#);
}

#[test]
fn time_path_may_differ_but_nothing_else() {
    let rules = [rule(1, "$.response.uptime_seconds", "time")];
    let exp =
        r#"{"protocol_version":2,"success":true,"response":{"uptime_seconds":12,"command_count":3},"error_code":null}"#;
    let same_but_time = r#"{"protocol_version":2,"success":true,"response":{"uptime_seconds":999,"command_count":3},"error_code":null}"#;
    assert!(cmp(exp, same_but_time, &rules).is_empty());

    let other_differs = r#"{"protocol_version":2,"success":true,"response":{"uptime_seconds":999,"command_count":4},"error_code":null}"#;
    let problems = cmp(exp, other_differs, &rules);
    assert_eq!(problems, vec!["$.response.command_count: expected 3, got 4".to_owned()]);

    // number text matters on compared paths, and key order matters
    let float = r#"{"protocol_version":2,"success":true,"response":{"uptime_seconds":1,"command_count":3.0},"error_code":null}"#;
    assert_eq!(cmp(exp, float, &rules).len(), 1);
    let reordered =
        r#"{"protocol_version":2,"success":true,"response":{"command_count":3,"uptime_seconds":12},"error_code":null}"#;
    assert!(cmp(exp, reordered, &rules)[0].contains("(keys)"));
    // a missing masked member is a key difference, not a pass
    let missing = r#"{"protocol_version":2,"success":true,"response":{"command_count":3},"error_code":null}"#;
    assert!(!cmp(exp, missing, &rules).is_empty());
}

#[test]
fn lines_without_active_rules_compare_bytes() {
    let exp = r#"{"a":1,"b":[1,2]}"#;
    assert!(cmp(exp, exp, &[]).is_empty());
    assert_eq!(
        cmp(exp, r#"{"a": 1,"b":[1,2]}"#, &[]),
        vec!["formatting differs (same JSON value, different text)".to_owned()]
    );
    assert_eq!(cmp(exp, r#"{"a":1,"b":[1,2,3]}"#, &[]), vec!["$.b (length): expected 2, got 3".to_owned()]);
    assert_eq!(cmp(exp, "oops", &[]), vec!["response is not valid JSON".to_owned()]);
    // snapshot-encoding is enforced: such a rule does not make the line lenient
    let rules = [rule(1, "$.response", "snapshot-encoding")];
    assert!(!cmp(r#"{"response":"QUJD"}"#, r#"{"response":"QUJE"}"#, &rules).is_empty());
    assert!(!cmp(r#"{"response":"QUJD"}"#, r#"{"response": "QUJD"}"#, &rules).is_empty());
}

#[test]
fn parser_message_is_relaxed_and_enforced_without_relax() {
    let rules = [rule(1, "$.response", "parser-message")];
    let exp =
        r#"{"protocol_version":2,"success":false,"response":"Unexpected char 'x' at 1:1","error_code":"invalid_json"}"#;
    let act = r#"{"protocol_version":2,"success":false,"response":"expected value at line 1 column 1","error_code":"invalid_json"}"#;
    assert!(cmp(exp, act, &rules).is_empty());
    let wrong_code = act.replace("invalid_json", "validation_error");
    assert_eq!(cmp(exp, &wrong_code, &rules).len(), 1);
    let refs: Vec<&Rule> = rules.iter().collect();
    assert!(!compare_line(Some(exp), Some(act), &refs, &BTreeSet::new()).is_empty());
}

#[test]
fn prometheus_and_unordered_rules() {
    let prom = Rule {
        format: Some("prometheus".into()),
        metrics: vec!["karma_uptime_seconds".into(), "karma_latency_ms".into()],
        ..rule(1, "$.response", "time")
    };
    let exp = r##"{"response":"# HELP karma_uptime_seconds x\nkarma_uptime_seconds 5\nkarma_latency_ms{op=\"a\"} 0.5\nkarma_commands_total 3\n"}"##;
    let ok = r##"{"response":"# HELP karma_uptime_seconds x\nkarma_uptime_seconds 77\nkarma_latency_ms{op=\"a\"} 1.25\nkarma_commands_total 3\n"}"##;
    let bad = r##"{"response":"# HELP karma_uptime_seconds x\nkarma_uptime_seconds 77\nkarma_latency_ms{op=\"a\"} 1.25\nkarma_commands_total 4\n"}"##;
    let renamed = r##"{"response":"# HELP karma_uptime_seconds x\nkarma_up_seconds 5\nkarma_latency_ms{op=\"a\"} 0.5\nkarma_commands_total 3\n"}"##;
    assert!(cmp(exp, ok, std::slice::from_ref(&prom)).is_empty());
    assert!(!cmp(exp, bad, std::slice::from_ref(&prom)).is_empty());
    assert!(!cmp(exp, renamed, std::slice::from_ref(&prom)).is_empty());

    let unordered = Rule { format: Some("unordered".into()), ..rule(1, "$.response", "order") };
    let masked_ts = rule(1, "$.response[*].ts", "time");
    let exp = r#"{"response":[{"k":"a","ts":1},{"k":"b","ts":2},{"k":"b","ts":3}]}"#;
    let shuffled = r#"{"response":[{"k":"b","ts":9},{"k":"a","ts":8},{"k":"b","ts":7}]}"#;
    let not_multiset = r#"{"response":[{"k":"b","ts":9},{"k":"a","ts":8},{"k":"a","ts":7}]}"#;
    let rules = [unordered.clone(), masked_ts.clone()];
    assert!(cmp(exp, shuffled, &rules).is_empty());
    assert!(!cmp(exp, not_multiset, &rules).is_empty());
}

fn scenario(lines: &[(&str, &str)], meta: Meta) -> Scenario {
    Scenario {
        name: "hand_made".into(),
        lines: lines.iter().map(|(q, r)| Entry { request: (*q).into(), response: Some((*r).into()) }).collect(),
        meta,
    }
}

#[test]
fn captures_substitute_and_known_bugs_are_skipped() {
    let meta = Meta {
        captures: vec![Capture {
            line: 1,
            name: "SNAP".into(),
            path: "$.response.file".into(),
            recorded: "111_api.tree".into(),
        }],
        varying: vec![rule(1, "$.response.file", "time")],
        known_bugs: vec![KnownBug { line: 3, id: "B3".into() }],
        ..Meta::default()
    };
    let scn = scenario(
        &[
            ("create", r#"{"response":{"file":"111_api.tree"}}"#),
            ("load 111_api.tree", r#"{"response":"ok"}"#),
            ("buggy", r#"{"response":"old"}"#),
            ("last", r#"{"response":"x"}"#),
        ],
        meta,
    );
    let mut seen = Vec::new();
    let mut send = |req: &str| -> Result<Exchange, String> {
        seen.push(req.to_owned());
        let body = match req {
            "create" => r#"{"response":{"file":"222_api.tree"}}"#,
            "load 222_api.tree" => r#"{"response":"ok"}"#,
            "buggy" => r#"{"response":"fixed"}"#,
            _ => r#"{"response":"y"}"#,
        };
        Ok(Exchange { body: Some(body.into()), problems: Vec::new() })
    };
    let outcome = run_scenario(&scn, &ReplayOptions::standard(), &mut send);
    assert_eq!(seen, ["create", "load 222_api.tree", "buggy", "last"]);
    assert_eq!(outcome.skipped, 1);
    assert_eq!(outcome.failures.len(), 1, "{outcome:?}");
    assert_eq!(outcome.failures[0].line, 4);
    assert!(report(&scn, &outcome).starts_with("FAIL hand_made (1 of 4 lines differ, 1 known-bug lines not compared)"));

    // without skipping, the known-bug line is compared
    let mut send_again = |req: &str| -> Result<Exchange, String> {
        let body = if req == "buggy" { r#"{"response":"fixed"}"# } else { r#"{"response":"x"}"# };
        Ok(Exchange { body: Some(body.into()), problems: Vec::new() })
    };
    let strict = ReplayOptions { skip_known_bugs: None, ..ReplayOptions::standard() };
    let outcome = run_scenario(&scn, &strict, &mut send_again);
    assert!(outcome.failures.iter().any(|f| f.line == 3));
}

#[test]
fn transport_errors_end_the_scenario() {
    let scn = scenario(&[("a", "1"), ("b", "2"), ("c", "3")], Meta::default());
    let mut calls = 0;
    let mut send = |_: &str| -> Result<Exchange, String> {
        calls += 1;
        if calls == 2 {
            Err("engine panicked: boom".into())
        } else {
            Ok(Exchange { body: Some("1".into()), problems: Vec::new() })
        }
    };
    let outcome = run_scenario(&scn, &ReplayOptions::standard(), &mut send);
    assert_eq!(calls, 2);
    assert_eq!(outcome.failures.len(), 1);
    assert_eq!(outcome.failures[0].problems, ["engine panicked: boom"]);
}

#[test]
fn replies_must_end_with_crlf() {
    let ok = split_reply(b"{\"a\":1}\r\n");
    assert_eq!(ok.body.as_deref(), Some("{\"a\":1}"));
    assert!(ok.problems.is_empty());
    assert!(!split_reply(b"{\"a\":1}\n").problems.is_empty());
    assert!(!split_reply(b"{\"a\":1}").problems.is_empty());
    assert!(!split_reply(b"{\"a\":\n1}\r\n").problems.is_empty());
}

#[test]
fn server_flags_map_onto_options() {
    let flags: Vec<String> = [
        "--auth-token=w",
        "--read-auth-token=r",
        "--role=slave",
        "--max-request-bytes=64",
        "--max-response-bytes=1500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let parsed = ServerFlags::parse(&flags).unwrap();
    let opts = parsed.options(std::path::Path::new("/tmp/x"));
    assert_eq!(opts.auth_token.as_deref(), Some("w"));
    assert_eq!(opts.read_auth_token.as_deref(), Some("r"));
    assert_eq!(opts.role, karma_engine::Role::Slave);
    assert_eq!(opts.max_request_bytes, 64);
    assert_eq!(opts.max_response_bytes, 1500);
    assert_eq!(opts.wal_fsync, karma_engine::FsyncPolicy::Never);
    assert_eq!(opts.directory.as_deref(), Some(std::path::Path::new("/tmp/x")));
    for bad in ["--unknown=1", "--max-request-bytes=big", "--role=boss", "--auth-token"] {
        assert!(ServerFlags::parse(&[bad.to_string()]).is_err(), "{bad} should be rejected");
    }
}

#[test]
fn missing_corpus_directory_is_an_error() {
    let err = load_scenarios(std::path::Path::new("/nonexistent/karma/conformance")).unwrap_err();
    assert!(err.contains("not readable"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert!(load_scenarios(empty.path()).unwrap_err().contains("no *.jsonl"));
}

#[test]
fn corpus_matches_its_own_recordings() {
    // Answering every request with its recorded line must pass every scenario:
    // checks that the corpus loads and that no rule, capture or known bug is
    // mishandled by the harness itself.
    let scenarios = load_scenarios(&corpus_dir()).unwrap_or_else(|e| panic!("conformance corpus: {e}"));
    for scn in &scenarios {
        let mut next = scn.lines.iter();
        let mut send = |_: &str| -> Result<Exchange, String> {
            let entry = next.next().expect("one request per line");
            Ok(match &entry.response {
                Some(r) => split_reply(format!("{r}\r\n").as_bytes()),
                None => Exchange::default(),
            })
        };
        let outcome = run_scenario(scn, &ReplayOptions::standard(), &mut send);
        assert!(outcome.failures.is_empty(), "{}", report(scn, &outcome));
        let strict = ReplayOptions::default();
        let outcome = run_scenario(scn, &strict, &mut {
            let mut next = scn.lines.iter();
            move |_: &str| -> Result<Exchange, String> {
                let entry = next.next().expect("one request per line");
                Ok(Exchange { body: entry.response.clone(), problems: Vec::new() })
            }
        });
        assert!(outcome.failures.is_empty(), "{}", report(scn, &outcome));
    }
}
