//! SIGKILL crash test of the real `karma` binary: several client threads
//! pipeline writes over TCP (under each `--wal-fsync` policy that promises
//! a process crash loses nothing: `always`, Karma 1.0's `true`, and
//! `everysec`, which acknowledges after write(2)), each write touching only
//! its own cells; the server is SIGKILLed at a random point, restarted on
//! the same directory, and every acknowledged write must be there exactly
//! once, every write in flight entirely or not at all, and nothing else.
//! Repeated on one cumulative directory. No timing assertions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use karma_testkit::{Rng, Server, DEADLINE};

const BIN: &str = env!("CARGO_BIN_EXE_karma");
const KILLS: usize = 12;
const CLIENTS: u64 = 4;
/// Requests each client writes before reading their responses.
const WINDOWS: [u64; CLIENTS as usize] = [2, 7, 16, 40];

// ------------------------------------------------------------------ server

/// A server on the cumulative directory `dir`, its stderr appended to `log`.
fn start(dir: &Path, log: &Path, fsync: &str) -> Server {
    Server::builder(BIN).directory(dir).stderr_log(log).args(&[format!("--wal-fsync={fsync}")]).start()
}

// ------------------------------------------------------------------ writes

/// Write `id` of client `t` adds to keys `2id` (and `2id+1` for a batch) of
/// series `c<t>`; ids never repeat, so every write has its own cells.
fn cells(id: u64) -> Vec<(u64, u64, u64)> {
    let n = if id % 5 == 3 { 2 } else { 1 };
    (0..n).map(|j| (2 * id + j, 20260101 + (id + j) % 28, id % 1000 + 1 + j)).collect()
}

fn request(t: u64, id: u64) -> String {
    let c = cells(id);
    let series = format!("c{t}");
    match id % 5 {
        3 => {
            let items: Vec<String> = c.iter().map(|(k, b, v)| format!("[{k},{b},{v}]")).collect();
            format!(r#"{{"v":2,"op":"series.batch_add","series":"{series}","items":[{}]}}"#, items.join(","))
        }
        4 => {
            let (k, b, v) = c[0];
            format!(
                r#"{{"v":2,"op":"counter.increment","series":"{series}","key":{k},"bucket":{b},"value":{v},"idempotency_key":"{series}-{id}"}}"#
            )
        }
        _ => {
            let (k, b, v) = c[0];
            format!(r#"{{"v":2,"op":"counter.increment","series":"{series}","key":{k},"bucket":{b},"value":{v}}}"#)
        }
    }
}

/// What one client thread saw in one run.
#[derive(Default)]
struct ClientRun {
    acked: Vec<u64>,
    /// Sent, no response before the connection died.
    in_flight: Vec<u64>,
    next_id: u64,
}

/// Pipelines writes (`WINDOWS[t]` at a time) until the connection dies.
fn client(port: u16, t: u64, first_id: u64, acks: Arc<AtomicU64>) -> ClientRun {
    let mut run = ClientRun { next_id: first_id, ..ClientRun::default() };
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else { return run };
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let window = WINDOWS[t as usize];
        let ids: Vec<u64> = (run.next_id..run.next_id + window).collect();
        run.next_id += window;
        let mut batch = String::new();
        for id in &ids {
            batch.push_str(&request(t, *id));
            batch.push('\n');
        }
        // Even if the write fails part-way, some lines may have reached the
        // server: all of them count as in flight until answered.
        let _ = writer.write_all(batch.as_bytes());
        for (n, id) in ids.iter().enumerate() {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    run.in_flight.extend_from_slice(&ids[n..]);
                    return run;
                }
                Ok(_) => {
                    assert!(
                        line.contains("\"success\":true"),
                        "client {t}: write {id} failed: {} -> {line}",
                        request(t, *id)
                    );
                    run.acked.push(*id);
                    acks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

// ------------------------------------------------------------------ checks

fn ask(port: u16, line: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    BufReader::new(stream).read_line(&mut out).unwrap();
    out
}

/// key -> total of series `c<t>`, through `tree.keys` pages.
fn totals(port: u16, t: u64) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    let mut cursor = "null".to_string();
    loop {
        let reply =
            ask(port, &format!(r#"{{"v":2,"op":"tree.keys","series":"c{t}","limit":10000,"cursor":{cursor}}}"#));
        if reply.contains("\"error_code\":\"not_found\"") {
            return out;
        }
        assert!(reply.contains("\"success\":true"), "tree.keys c{t}: {reply}");
        // {"key":K,"total":V} pairs; numbers only, so a plain scan is enough.
        let mut rest = reply.as_str();
        while let Some(at) = rest.find("{\"key\":") {
            rest = &rest[at + 7..];
            let comma = rest.find(',').unwrap();
            let key: u64 = rest[..comma].parse().unwrap();
            rest = &rest[comma + 9..]; // ,"total":
            let end = rest.find('}').unwrap();
            out.insert(key, rest[..end].parse().unwrap());
        }
        let next = reply.split("\"next_cursor\":").nth(1).unwrap();
        let next = &next[..next.find(',').unwrap()];
        if next == "null" {
            return out;
        }
        cursor = next.to_string();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Present,
    Absent,
}

/// Checks client `t`'s series against `states`; ids in `in_flight` may be
/// present or absent (entirely) and are resolved into `states`.
fn check_client(port: u16, t: u64, states: &mut BTreeMap<u64, State>, in_flight: &[u64], kill: usize) -> (u64, u64) {
    let got = totals(port, t);
    let (mut present, mut absent) = (0, 0);
    for id in in_flight {
        let c = cells(*id);
        let all = c.iter().all(|(k, _, v)| got.get(k) == Some(v));
        let none = c.iter().all(|(k, _, _)| !got.contains_key(k));
        assert!(all || none, "kill {kill}: client {t} in-flight write {id} half applied: {:?}", c);
        states.insert(*id, if all { State::Present } else { State::Absent });
        if all {
            present += 1;
        } else {
            absent += 1;
        }
    }
    let mut want = BTreeMap::new();
    for (id, s) in states.iter() {
        let c = cells(*id);
        match s {
            State::Present => {
                for (k, _, v) in c {
                    want.insert(k, v);
                }
            }
            State::Absent => {
                for (k, _, _) in c {
                    assert!(!got.contains_key(&k), "kill {kill}: client {t} write {id} was absent, key {k} is back");
                }
            }
        }
    }
    if got != want {
        let wrong: Vec<_> =
            want.iter().filter(|(k, v)| got.get(k) != Some(v)).map(|(k, v)| (k, v, got.get(k))).collect();
        let extra: Vec<_> = got.iter().filter(|(k, _)| !want.contains_key(k)).collect();
        panic!(
            "kill {kill}: client {t}: acknowledged cells wrong (key, want, got) {:?}; unexpected keys {:?}",
            &wrong[..wrong.len().min(10)],
            &extra[..extra.len().min(10)]
        );
    }
    (present, absent)
}

/// Sends `snapshot.create_all` over and over until the connection dies.
fn snapshotter(port: u16) -> u64 {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut done = 0;
    loop {
        if writer.write_all(b"{\"v\":2,\"op\":\"snapshot.create_all\"}\n").is_err() {
            return done;
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return done,
            Ok(_) => assert!(line.contains("\"success\":true"), "snapshot.create_all: {line}"),
        }
        done += 1;
        thread::sleep(Duration::from_millis(2));
    }
}

fn crash_loop(seed: u64, snapshots: bool, fsync: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let log = tmp.path().join("karma.stderr");
    let mut rng = Rng(seed);
    let mut states: Vec<BTreeMap<u64, State>> = (0..CLIENTS).map(|_| BTreeMap::new()).collect();
    let mut next_ids: Vec<u64> = vec![0; CLIENTS as usize];
    let mut server = start(&dir, &log, fsync);
    let (mut total_acked, mut in_flight_present, mut in_flight_absent, mut snapshots_done) = (0u64, 0u64, 0u64, 0u64);
    for kill in 0..KILLS {
        let acks = Arc::new(AtomicU64::new(0));
        let target = 1 + rng.below(1500);
        let handles: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (port, first, acks) = (server.port, next_ids[t as usize], acks.clone());
                thread::spawn(move || client(port, t, first, acks))
            })
            .collect();
        let snapshotter = snapshots.then(|| {
            let port = server.port;
            thread::spawn(move || snapshotter(port))
        });
        let begun = Instant::now();
        while acks.load(Ordering::Relaxed) < target {
            assert!(begun.elapsed() < DEADLINE, "kill {kill}: only {} acks", acks.load(Ordering::Relaxed));
            assert!(!server.has_exited(), "karma died by itself");
            thread::sleep(Duration::from_micros(200));
        }
        server.kill(); // SIGKILL
        let runs: Vec<ClientRun> = handles.into_iter().map(|h| h.join().expect("client thread")).collect();
        if let Some(h) = snapshotter {
            snapshots_done += h.join().expect("snapshot thread");
        }

        server = start(&dir, &log, fsync);
        for (t, run) in runs.iter().enumerate() {
            for id in &run.acked {
                states[t].insert(*id, State::Present);
            }
            total_acked += run.acked.len() as u64;
            let (p, a) = check_client(server.port, t as u64, &mut states[t], &run.in_flight, kill);
            in_flight_present += p;
            in_flight_absent += a;
            next_ids[t] = run.next_id;
        }
    }
    // A clean snapshot and restart keep it all.
    let reply = ask(server.port, r#"{"v":2,"op":"snapshot.create_all"}"#);
    assert!(reply.contains("\"success\":true"), "{reply}");
    server.kill();
    let server = start(&dir, &log, fsync);
    for (t, s) in states.iter_mut().enumerate() {
        check_client(server.port, t as u64, s, &[], KILLS);
    }
    println!(
        "--wal-fsync={fsync}: {KILLS} kills, {total_acked} acknowledged writes, in flight: {in_flight_present} present, \
         {in_flight_absent} absent, {snapshots_done} snapshots"
    );
}

#[test]
fn sigkill_never_loses_or_doubles_an_acknowledged_increment() {
    crash_loop(0x853c_49e6_748f_ea9b, false, "always");
}

/// `everysec` acknowledges once the kernel has the write: a killed process
/// loses nothing either.
#[test]
fn sigkill_under_everysec_never_loses_or_doubles_an_acknowledged_increment() {
    crash_loop(0x3c6e_f372_fe94_f82b, false, "everysec");
}

/// The same while another client runs `snapshot.create_all` in a loop, so
/// kills land inside snapshots too; with Karma 1.0's spelling of `always`.
#[test]
fn sigkill_during_snapshots_never_loses_or_doubles_an_acknowledged_increment() {
    crash_loop(0x6a09_e667_f3bc_c909, true, "true");
}

#[test]
fn sigkill_during_snapshots_under_everysec_never_loses_or_doubles_an_acknowledged_increment() {
    crash_loop(0xa54f_f53a_5f1d_36f1, true, "everysec");
}
