//! `karma cli`, `karma ingest` and `karma reconcile` driven as an operator
//! would, against a real server. Nothing here depends on timing: the one
//! interruption is pinned down by a proxy that holds the tool's requests.

mod common;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

use common::*;

fn url(server: &Server) -> String {
    format!("--url=karma://127.0.0.1:{}", server.port)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_csv(path: &Path, header: &str, rows: impl IntoIterator<Item = String>) {
    let mut w = BufWriter::new(std::fs::File::create(path).expect("create csv"));
    writeln!(w, "{header}").expect("write");
    for row in rows {
        writeln!(w, "{row}").expect("write");
    }
    w.flush().expect("flush");
}

fn stats_field(server: &Server, name: &str) -> u64 {
    let line = server.connect().request(r#"{"v":2,"op":"system.stats"}"#);
    let v: serde_json::Value = serde_json::from_str(&line).expect("stats json");
    v["response"][name].as_u64().unwrap_or_else(|| panic!("{name} missing in {line}"))
}

#[test]
fn one_shot_requests_print_answers_and_errors() {
    let server = Server::start(&[]);
    let u = url(&server);
    let out = tool(&["cli", &u, "counter.increment", "series=api", "key=42", "bucket=2026-03-01", "value=5"], &[], "");
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "5\n"), "{}", stderr(&out));

    let out = tool(&["cli", &u, "counter.series", "series=api", "key=42", "range=20260301..20260302"], &[], "");
    assert_eq!(stdout(&out), "{\n  \"20260301\": 5\n}\n");

    let out = tool(&["cli", &u, "--raw", r#"{"v":2,"op":"counter.sum","series":"api","key":42}"#], &[], "");
    assert_eq!(stdout(&out), "{\"protocol_version\":2,\"success\":true,\"response\":5,\"error_code\":null}\n");

    // Errors: the code and message plainly, exit status 1.
    let out = tool(&["cli", &u, "tree.info", "series=nope"], &[], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "(error) not_found: Tree \"nope\" not found\n");
    let out = tool(&["cli", &u, "counter.sum", "series=api", "key=x"], &[], "");
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(1), "(error) key must be an unsigned integer, got \"x\"\n")
    );

    // No server there: a transport error, not a panic.
    let out = tool(&["cli", &format!("--url=karma://127.0.0.1:{}", free_port()), "system.ping"], &[], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("(error) connection error"), "{}", stderr(&out));

    let out = tool(&["cli", &u, "help", "counter.batch_sum"], &[], "");
    assert!(stdout(&out).starts_with("counter.batch_sum                  series keys [range]\n"), "{}", stdout(&out));

    let out = tool(&["cli", "--url=http://x", "system.ping"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Invalid Karma URL"), "{}", stderr(&out));
}

#[test]
fn every_tool_has_help_and_the_server_help_points_to_them() {
    let out = tool(&["--help"], &[], "");
    assert!(stdout(&out).ends_with(
        "Operator tools: karma cli|ingest|reconcile|cluster --help (docs/operations.md, docs/cluster.md)\n"
    ));
    for (name, flag) in [("cli", "--raw"), ("ingest", "--chunk-items"), ("reconcile", "--sample-step")] {
        let out = tool(&[name, "--help"], &[], "");
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert!(stdout(&out).contains(flag), "{name}: {}", stdout(&out));
        assert!(stdout(&out).contains("--url"), "{name}");
    }
    // Usage mistakes are clap's: exit 2 with the problem named.
    let out = tool(&["ingest", "--series=s", "--mode=add"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--csv <FILE>"), "{}", stderr(&out));
    let out = tool(&["ingest", "--csv=x", "--series=s", "--mode=upsert"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid value 'upsert'"), "{}", stderr(&out));
    let out = tool(&["reconcile", "--csv=x", "--series=s", "--sample-step=0"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    let out = tool(&["ingest", "--csv=/nonexistent.csv", "--series=s", "--mode=add"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent.csv: No such file"), "{}", stderr(&out));
}

#[test]
fn tokens_come_from_flags_or_the_servers_variables() {
    let server = Server::start(&["--auth-token=w-secret"]);
    let port = server.port.to_string();
    let env = [("KARMA_PORT", port.as_str())];
    let out = tool(&["cli", "system.stats"], &env, "");
    assert_eq!((out.status.code(), stderr(&out).as_str()), (Some(1), "(error) unauthorized: Unauthorized\n"));
    let out = tool(&["cli", "counter.increment", "series=s", "key=1"], &[env[0], ("KARMA_AUTH_TOKEN", "w-secret")], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = tool(&["cli", "--token=w-secret", "counter.sum", "series=s", "key=1"], &env, "");
    assert_eq!(stdout(&out), "1\n");
}

#[test]
fn scripted_session_on_stdin() {
    let server = Server::start(&[]);
    let script = "# a comment\n\
                  counter.increment series=s key=7 bucket=20260102 value=3\n\
                  help counter.sum\n\
                  nope.op\n\
                  {\"v\":2,\"op\":\"counter.sum\",\"series\":\"s\",\"key\":7}\n\
                  quit\n\
                  system.ping\n";
    let out = tool(&["cli", &url(&server)], &[], script);
    assert_eq!(out.status.code(), Some(1), "one line failed");
    assert_eq!(
        stdout(&out),
        "3\n\
         counter.sum                        series key [range]\n\
         \x20 series           required  string\n\
         \x20 key              required  unsigned integer\n\
         \x20 range            optional  range: 20260301..20260331 or {\"from\":..,\"to\":..}\n\
         (error) unknown op \"nope.op\" (`help` lists the ops)\n\
         3\n"
    );
}

/// Output of a process read on a thread, searched as it arrives.
struct Transcript {
    chunks: mpsc::Receiver<Vec<u8>>,
    text: String,
}

impl Transcript {
    fn new(mut out: impl std::io::Read + Send + 'static) -> Transcript {
        let (tx, chunks) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        Transcript { chunks, text: String::new() }
    }

    /// Waits until `needle` appears at or after byte `from`; returns the
    /// position just after it.
    fn wait_for(&mut self, needle: &str, from: usize) -> usize {
        loop {
            if let Some(at) = self.text.get(from..).and_then(|t| t.find(needle)) {
                return from + at + needle.len();
            }
            match self.chunks.recv_timeout(DEADLINE) {
                Ok(chunk) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("{needle:?} never appeared after byte {from} in:\n{}", self.text),
            }
        }
    }
}

#[test]
fn interactive_session_on_a_terminal() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history");
    // script(1) gives the session a pseudo-terminal, so rustyline edits lines.
    let command = format!("{BIN} cli --url=karma://127.0.0.1:{}", server.port);
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("KARMA_HISTORY", &history)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run script(1)");
    let mut input = child.stdin.take().expect("stdin");
    let mut out = Transcript::new(child.stdout.take().expect("stdout"));
    let prompt = format!("127.0.0.1:{}> ", server.port);
    let mut at = out.wait_for(&format!("connected to karma://127.0.0.1:{}", server.port), 0);
    // Each line is typed once the prompt is back; each answer awaited (an
    // empty line: only wait for the next answer).
    // `value=45` then DEL: line editing at work, the 5 is erased.
    for (line, answer) in [
        (&b"counter.increment series=t key=1 value=45\x7f\r"[..], "4\r\n"),
        (b"help\r", "ingest.chunk                       stream_id series chunk_seq items"),
        // Tab completes the op name.
        (b"counter.su\t series=t key=1\r", "> counter.sum"),
        (b"", "4\r\n"),
        (b"tree.info series=none\r", "(error) not_found: Tree \"none\" not found"),
    ] {
        if !line.is_empty() {
            at = out.wait_for(&prompt, at);
            input.write_all(line).expect("type a line");
        }
        at = out.wait_for(answer, at);
    }
    out.wait_for(&prompt, at);
    input.write_all(b"quit\r").expect("type quit");
    let status = child.wait().expect("session ends");
    assert!(status.success(), "{}", out.text);
    let saved = std::fs::read_to_string(&history).expect("history saved");
    assert!(saved.contains("counter.increment series=t key=1 value=4\n"), "{saved}");
    assert!(server.connect().request(r#"{"v":2,"op":"counter.sum","series":"t","key":1}"#).contains("\"response\":4,"));
}

// ---------------------------------------------------------------- ingest

/// 1 M points: 100 000 keys x 10 days, each point once, values 1..=9.
fn million_rows(path: &Path) {
    write_csv(
        path,
        "day,key,value",
        (0..1_000_000u64).map(|i| format!("2026-01-{:02},{},{}", i / 100_000 + 1, i % 100_000, i % 9 + 1)),
    );
}

const MILLION_TOTAL: u64 = 4_999_996; // sum of (i % 9) + 1 for i < 1 000 000

fn summary(server: &Server, series: &str) -> String {
    server.connect().request(&format!(r#"{{"v":2,"op":"tree.summary","series":"{series}"}}"#))
}

/// A TCP proxy in front of `port` that forwards the first `hold_after`
/// request lines, then holds the next one until told to go on (or, if `go`
/// is dropped, cuts the connection without forwarding it).
struct HoldingProxy {
    port: u16,
    held: mpsc::Receiver<()>,
    go: mpsc::Sender<()>,
}

impl HoldingProxy {
    fn start(server_port: u16, hold_after: usize) -> HoldingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (held_tx, held) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else { return };
            let (mut server_w, mut client_w) = (server.try_clone().expect("clone"), client.try_clone().expect("clone"));
            let mut server_r = server;
            thread::spawn(move || {
                let _ = std::io::copy(&mut server_r, &mut client_w);
            });
            let mut lines = BufReader::new(client);
            let mut line = Vec::new();
            let mut count = 0;
            while lines.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                if count == hold_after {
                    let _ = held_tx.send(());
                    if go_rx.recv().is_err() {
                        // Told to cut the connection instead.
                        let _ = lines.get_ref().shutdown(std::net::Shutdown::Both);
                        return;
                    }
                }
                count += 1;
                if server_w.write_all(&line).is_err() {
                    return;
                }
                line.clear();
            }
        });
        HoldingProxy { port, held, go }
    }
}

#[test]
fn ingest_interrupted_by_sigint_resumes_to_the_same_totals() {
    let server = Server::start(&["--max-request-bytes=65536"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("million.csv");
    million_rows(&csv);
    let csv_arg = format!("--csv={}", csv.display());
    let ingest = |url: &str, series: &str| -> Vec<String> {
        ["ingest", url, &csv_arg, "--bucket-column=day", "--mode=add", "--max-request-bytes=65536"]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("--series={series}")])
            .collect()
    };

    // Uninterrupted.
    let args = ingest(&url(&server), "full");
    let out = tool(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("1000000 rows in 1000 chunks"), "{}", stdout(&out));

    // Interrupted: the proxy holds request 300 (ingest.begin and 299
    // chunks went through) until the tool has seen SIGINT, so the tool stops
    // right after that chunk, before chunk 301.
    let proxy = HoldingProxy::start(server.port, 300);
    let args = ingest(&format!("--url=karma://127.0.0.1:{}", proxy.port), "resumed");
    let mut child = karma()
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ingest");
    proxy.held.recv().expect("the tool reached request 300");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let mut err_lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = String::new();
    for line in err_lines.by_ref() {
        let line = line.expect("stderr line");
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("interrupt: stopping") {
            break;
        }
    }
    proxy.go.send(()).expect("release the held request");
    for line in err_lines {
        seen.push_str(&line.expect("stderr line"));
        seen.push('\n');
    }
    let status = child.wait().expect("ingest exits");
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("interrupted before chunk 301 of 1000"), "{seen}");
    // 300 chunks (rows 0..300 000) applied, nothing committed.
    assert!(summary(&server, "resumed").contains("\"total\":1499991,"), "{}", summary(&server, "resumed"));
    assert_eq!(stats_field(&server, "ingest_active_streams"), 1);

    // The same command again resumes and commits.
    let args = ingest(&url(&server), "resumed");
    let out = tool(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("after chunk 300 of 1000"), "{}", stderr(&out));
    let full = summary(&server, "full");
    assert!(full.contains(&format!("\"total\":{MILLION_TOTAL},\"active_keys\":100000")), "{full}");
    assert_eq!(summary(&server, "resumed").replace("resumed", "full"), full);

    // Every one of the million points matches in both series.
    for series in ["full", "resumed"] {
        let out = tool(
            &[
                "reconcile",
                &url(&server),
                &csv_arg,
                "--bucket-column=day",
                "--max-request-bytes=65536",
                &format!("--series={series}"),
            ],
            &[],
            "",
        );
        assert_eq!(out.status.code(), Some(0), "{series}: {}{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains("checked 1000000 points, 0 mismatches"), "{}", stdout(&out));
    }
}

#[test]
fn ingest_modes_and_explicit_stream_ids() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("a.csv");
    write_csv(&csv, "key,bucket,value", (1..=500u64).map(|k| format!("{k},20260105,{k}")));
    let csv_arg = format!("--csv={}", csv.display());
    let u = url(&server);
    let run = |extra: &[&str]| tool(&[&["ingest", &u, &csv_arg][..], extra].concat(), &[], "");

    let out = run(&["--series=s", "--mode=set", "--stream-id=first", "--chunk-items=7"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("committed stream first: 500 rows in 72 chunks"), "{}", stdout(&out));
    // Committed: running it again changes nothing.
    let out = run(&["--series=s", "--mode=set", "--stream-id=first", "--chunk-items=7"]);
    assert!(stdout(&out).contains("already committed"), "{}", stdout(&out));
    // The same id with other parameters is refused by the server.
    let out = run(&["--series=s", "--mode=add", "--stream-id=first"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("idempotency_conflict"), "{}", stderr(&out));
    assert!(summary(&server, "s").contains("\"total\":125250"), "{}", summary(&server, "s"));

    // replace_series swaps the whole series at commit.
    write_csv(&csv, "key,bucket,value", ["9,2026-01-06,2".to_string()]);
    let out = run(&["--series=s", "--mode=replace_series"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(summary(&server, "s").contains("\"total\":2,\"active_keys\":1"), "{}", summary(&server, "s"));

    write_csv(&csv, "key,bucket,value", []);
    let out = run(&["--series=s", "--mode=replace_series"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no rows"), "{}", stderr(&out));
}

#[test]
fn ingest_cut_off_by_a_lost_connection_resumes() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("c.csv");
    write_csv(&csv, "key,bucket,value", (0..2000u64).map(|k| format!("{k},20260107,2")));
    let csv_arg = format!("--csv={}", csv.display());
    let proxy = HoldingProxy::start(server.port, 5);
    let via_proxy = format!("--url=karma://127.0.0.1:{}", proxy.port);
    let args = ["ingest", &via_proxy, &csv_arg, "--series=c", "--mode=add", "--chunk-items=100"];
    let child = karma().args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let child = child.expect("spawn ingest");
    proxy.held.recv().expect("begin and 4 chunks went through");
    drop(proxy.go);
    let out = child.wait_with_output().expect("ingest exits");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ingest.chunk: connection error"), "{}", stderr(&out));
    assert!(stderr(&out).contains("rerun the same command to resume"), "{}", stderr(&out));
    assert!(summary(&server, "c").contains("\"total\":800,"), "{}", summary(&server, "c"));

    let u = url(&server);
    let out = tool(&["ingest", &u, &csv_arg, "--series=c", "--mode=add", "--chunk-items=100"], &[], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("after chunk 4 of 20"), "{}", stderr(&out));
    assert!(summary(&server, "c").contains("\"total\":4000,"), "{}", summary(&server, "c"));
}

#[test]
fn resuming_with_another_file_is_refused() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("r.csv");
    write_csv(&csv, "key,bucket,value", ["1,20260101,5".to_string(), "2,20260101,6".to_string()]);
    let csv_arg = format!("--csv={}", csv.display());
    // An earlier run of stream "r" applied chunk 1 = [[1,20260101,4]] and was cut off.
    let mut c = server.connect();
    assert!(c.request(r#"{"v":2,"op":"ingest.begin","stream_id":"r","mode":"add"}"#).contains("\"success\":true"));
    let chunk = r#"{"v":2,"op":"ingest.chunk","stream_id":"r","series":"s","chunk_seq":1,"items":[[1,20260101,4]]}"#;
    assert!(c.request(chunk).contains("\"success\":true"));

    let run = |extra: &str| {
        tool(&["ingest", &url(&server), &csv_arg, "--series=s", "--mode=add", "--stream-id=r", extra], &[], "")
    };
    // The file's chunk 1 is [[1,20260101,5]]: not what the stream holds.
    let out = run("--chunk-items=1");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("idempotency_conflict: Ingest chunk was already used with different payload (resuming: is this the same file and --chunk-items as the interrupted run?)"), "{}", stderr(&out));

    // Two more chunks, then a file of one chunk: the stream is ahead of it.
    for seq in [2, 3] {
        let chunk = format!(
            r#"{{"v":2,"op":"ingest.chunk","stream_id":"r","series":"s","chunk_seq":{seq},"items":[[9,20260101,1]]}}"#
        );
        assert!(c.request(&chunk).contains("\"success\":true"));
    }
    let out = run("--chunk-items=10");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("stream r already has 3 chunks but the file makes 1"), "{}", stderr(&out));
    // Neither run committed or added anything.
    assert!(summary(&server, "s").contains("\"total\":6,"), "{}", summary(&server, "s"));
    assert_eq!(stats_field(&server, "ingest_active_streams"), 1);
}

#[test]
fn bad_csvs_are_rejected_with_their_line_and_nothing_is_applied() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let good = |n: u64| (1..=n).map(|k| format!("{k},20260101,1")).collect::<Vec<_>>();
    let cases: Vec<(&str, Vec<String>, &str, &str)> = vec![
        ("key,bucket", good(0), "add", "line 1: no column \"value\" in the header (columns: key, bucket)"),
        (
            "key,bucket,value",
            [good(2000), vec!["7,2026-02-30,1".into()]].concat(),
            "add",
            "line 2002: bucket \"2026-02-30\" is not a date",
        ),
        (
            "key,bucket,value",
            [good(5), vec!["7,20260101,18446744073709551616".into()]].concat(),
            "set",
            "line 7: value \"18446744073709551616\" is not an unsigned 64-bit integer",
        ),
        (
            "key,bucket,value",
            [good(5), vec!["7,20260101,9223372036854775808".into()]].concat(),
            "set",
            "line 7: value 9223372036854775808 is above 9223372036854775807",
        ),
        ("key,bucket,value", [good(3), vec!["7,20260101,0".into()]].concat(), "add", "line 5: value 0 in add mode"),
        (
            "key,bucket,value",
            [good(3), vec!["7,20260101".into()]].concat(),
            "add",
            "line 5: no value in column \"value\"",
        ),
    ];
    for (i, (header, rows, mode, expected)) in cases.into_iter().enumerate() {
        let csv = dir.path().join(format!("bad{i}.csv"));
        write_csv(&csv, header, rows);
        let out = tool(
            &["ingest", &url(&server), &format!("--csv={}", csv.display()), "--series=bad", &format!("--mode={mode}")],
            &[],
            "",
        );
        assert_eq!(out.status.code(), Some(2), "case {i}");
        assert!(stderr(&out).contains(expected), "case {i}: {}", stderr(&out));
    }
    // Not a single row reached the server, nor a stream.
    assert!(server.connect().request(r#"{"v":2,"op":"tree.info","series":"bad"}"#).contains("not_found"));
    assert_eq!(stats_field(&server, "ingest_active_streams"), 0);
    assert_eq!(stats_field(&server, "ingest_chunks_applied"), 0);
}

// ---------------------------------------------------------------- reconcile

#[test]
fn reconcile_finds_exactly_the_planted_mismatches_and_reports_them() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let items: Vec<String> = (1..=200u64).map(|k| format!("[{k},{},{}]", 20260301 + k % 3, k * 10)).collect();
    let line = format!(r#"{{"v":2,"op":"series.batch_add","series":"links","items":[{}]}}"#, items.join(","));
    assert!(c.request(&line).contains("\"success\":true"));

    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("export.csv");
    let planted = |k: u64| match k {
        17 => k * 10 + 5,  // Karma is 5 short
        80 => k * 10 - 30, // Karma is 30 over
        151 => 0,          // exported as zero, Karma has 1510
        _ => k * 10,
    };
    write_csv(&csv, "subject,day,expected", (1..=200u64).map(|k| format!("{k},2026-03-0{},{}", 1 + k % 3, planted(k))));
    let csv_arg = format!("--csv={}", csv.display());
    let columns = ["--key-column=subject", "--bucket-column=day", "--value-column=expected"];
    let reconcile = |extra: &[&str]| {
        tool(&[&["reconcile", &url(&server), &csv_arg, "--series=links"][..], &columns[..], extra].concat(), &[], "")
    };

    let out = reconcile(&[]);
    assert_eq!(out.status.code(), Some(1), "drift found: {}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "mismatch line 18: key 17 bucket 20260303: expected 175, karma 170 (-5)\n\
         mismatch line 81: key 80 bucket 20260303: expected 770, karma 800 (+30)\n\
         mismatch line 152: key 151 bucket 20260302: expected 0, karma 1510 (+1510)\n\
         series links: checked 200 points, 3 mismatches, absolute drift 1545, max |delta| 1510\n"
    );

    // Listing is capped; counting is not. Reported to the server.
    assert_eq!(stats_field(&server, "reconciliation_run_count"), 0);
    let out = reconcile(&["--max-mismatches=1", "--report", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(v["checked_points"], 200);
    assert_eq!(v["mismatch_count"], 3);
    assert_eq!(v["absolute_drift"], 1545);
    assert_eq!(v["max_abs_delta"], 1510);
    assert_eq!(v["mismatches"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["mismatches"][0]["line"], 18);
    assert_eq!(v["reported"], true);
    assert_eq!(stats_field(&server, "reconciliation_run_count"), 1);
    assert_eq!(stats_field(&server, "reconciliation_last_checked_points"), 200);
    assert_eq!(stats_field(&server, "reconciliation_last_mismatch_count"), 3);
    assert_eq!(stats_field(&server, "reconciliation_last_absolute_drift"), 1545);
    assert_eq!(stats_field(&server, "reconciliation_last_max_abs_delta"), 1510);

    // Sampling every 2nd row checks rows 1, 3, 5, ...: keys 1, 3, ..., so
    // 17 and 151 but not 80.
    let out = reconcile(&["--sample-step=2", "--report"]);
    assert!(
        stdout(&out).ends_with("checked 100 points, 2 mismatches, absolute drift 1515, max |delta| 1510 (reported)\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(stats_field(&server, "reconciliation_checked_points"), 300);

    // A clean export: exit 0.
    write_csv(&csv, "subject,day,expected", (1..=200u64).map(|k| format!("{k},2026030{},{}", 1 + k % 3, k * 10)));
    let out = reconcile(&[]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));

    // Reporting needs the write token; the read token is refused.
    let locked = Server::start(&["--auth-token=w", "--read-auth-token=r"]);
    let line =
        format!(r#"{{"v":2,"op":"series.batch_add","token":"w","series":"links","items":[{}]}}"#, items.join(","));
    assert!(locked.connect().request(&line).contains("\"success\":true"));
    let out = tool(
        &[&["reconcile", &url(&locked), &csv_arg, "--series=links", "--report", "--token=r"][..], &columns[..]]
            .concat(),
        &[],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).ends_with(
            "karma reconcile: reconciliation.report: forbidden: \
             Read-only token cannot execute command reconciliation_report\n"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "series links: checked 200 points, 0 mismatches, absolute drift 0, max |delta| 0\n");

    // An unknown series is an error, not drift.
    let out = tool(&[&["reconcile", &url(&server), &csv_arg, "--series=nope"][..], &columns[..]].concat(), &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not_found: Tree \"nope\" not found"), "{}", stderr(&out));
}
