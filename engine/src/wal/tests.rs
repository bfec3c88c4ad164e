use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::index::{idx_path, read_index};
use super::*;
use crate::error::ErrorCode;
use crate::options::FsyncPolicy;

fn fixtures() -> PathBuf {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/karma1");
    assert!(base.is_dir(), "fixtures missing at {}", base.display());
    base
}

/// A writable copy of a fixture data directory.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in fs::read_dir(fixtures().join(name).join("data")).unwrap() {
        let e = e.unwrap();
        let target = d.path().join(e.file_name());
        fs::write(&target, fs::read(e.path()).unwrap()).unwrap();
    }
    d
}

fn cfg(dir: &Path) -> WalConfig {
    WalConfig {
        dir: dir.to_path_buf(),
        fsync: FsyncPolicy::Never,
        segment_bytes: 0,
        batch_size: 1024,
        batch_wait: Duration::ZERO,
    }
}

fn entry(i: u64) -> String {
    format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{i},"bucket":20260101,"value":1}}"#)
}

/// Bytes of log in `dir`'s WAL files (not the zeros the writer keeps
/// ahead of the log in the active file).
fn disk_bytes(dir: &Path) -> u64 {
    list_files(dir).unwrap().iter().map(|f| log_bytes(&f.path).0.len() as u64).sum()
}

fn replay(dir: &Path) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    read_all(dir, |lsn, e| {
        out.push((lsn, e.to_string()));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn concurrent_appends_reopen_and_replay() {
    let d = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(cfg(d.path())).unwrap());
    assert_eq!(wal.current_lsn(), 0);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for i in 0..250u64 {
                    let lsn = wal.append(entry(t * 1000 + i).as_bytes()).unwrap();
                    if i % 10 == 0 {
                        wal.wait_durable(lsn).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(wal.current_lsn(), 1000);
    wal.wait_durable(1000).unwrap();
    assert_eq!(wal.durable_lsn(), 1000);
    assert_eq!(wal.bytes(), disk_bytes(d.path()));
    assert_eq!(wal.stats().entries, 1000);
    wal.close().unwrap();
    drop(wal);

    let lines = replay(d.path());
    assert_eq!(lines.len(), 1000);
    for (i, (lsn, _)) in lines.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1);
    }
    // Byte format of the original.
    let text = fs::read_to_string(d.path().join(ACTIVE_FILE)).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(first, format!(r#"{{"v":2,"lsn":1,"entry":{}}}"#, lines[0].1));

    let wal = Wal::open(cfg(d.path())).unwrap();
    assert_eq!(wal.current_lsn(), 1000);
    assert_eq!(wal.bytes(), disk_bytes(d.path()));
    assert_eq!(wal.append(entry(1).as_bytes()).unwrap(), 1001);
    wal.wait_durable(1001).unwrap();
    assert_eq!(wal.bytes(), disk_bytes(d.path()));
    assert!(wal.append(b"{\n}").is_err());
    assert!(wal.wait_durable(5000).is_err());
}

#[test]
fn group_commit_fsyncs_less_than_entries() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.fsync = FsyncPolicy::Always;
    c.batch_wait = Duration::from_micros(200);
    let wal = Arc::new(Wal::open(c).unwrap());
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for i in 0..20u64 {
                    let lsn = wal.append(entry(t * 100 + i).as_bytes()).unwrap();
                    wal.wait_durable(lsn).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = wal.stats();
    assert_eq!(s.entries, 640);
    assert_eq!(s.fsyncs, s.groups);
    assert!(s.fsyncs < s.entries, "{s:?}");
    assert_eq!(wal.bytes(), disk_bytes(d.path()));
}

#[test]
fn callbacks_and_lsn_floor() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(cfg(d.path())).unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&hits);
    wal.on_durable(
        0,
        Box::new(move |r| {
            assert!(r.is_ok());
            h.fetch_add(1, Ordering::SeqCst);
        }),
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let lsn = wal.append(entry(1).as_bytes()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    wal.on_durable(lsn, Box::new(move |r| tx.send(r).unwrap()));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), Ok(()));

    wal.ensure_lsn_at_least(500);
    assert_eq!(wal.current_lsn(), 500);
    wal.wait_durable(500).unwrap();
    wal.ensure_lsn_at_least(10);
    assert_eq!(wal.append(entry(2).as_bytes()).unwrap(), 501);
    wal.wait_durable(501).unwrap();
    let lines = replay(d.path());
    assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), vec![1, 501]);
}

fn check_pages(wal: &Wal, max_lsn: u64) {
    let mut afters: Vec<u64> = vec![0, 1, 2, max_lsn.saturating_sub(1), max_lsn, max_lsn + 5];
    afters.extend((0..max_lsn).step_by(7));
    for after in afters {
        for (limit, budget) in [(1, None), (5, None), (10_000, None), (50, Some(900)), (3, Some(10_000))] {
            let fast = wal.entries_after(after, limit, budget).unwrap();
            let slow = wal.entries_after_linear(after, limit, budget).unwrap();
            assert_eq!(fast, slow, "after {after} limit {limit} budget {budget:?}");
            if let Some(first) = fast.entries.first() {
                assert_eq!(first.0, after + 1);
            }
        }
    }
}

#[test]
fn rotation_index_and_replication_pages() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_bytes = 1000;
    c.batch_size = 3;
    let wal = Wal::open(c.clone()).unwrap();
    for i in 0..200u64 {
        let lsn = wal.append(entry(i).as_bytes()).unwrap();
        if i % 4 == 0 {
            wal.wait_durable(lsn).unwrap();
        }
    }
    wal.wait_durable(200).unwrap();
    assert_eq!(wal.bytes(), disk_bytes(d.path()));
    let files = list_files(d.path()).unwrap();
    assert!(files.len() > 5, "{files:?}");
    assert!(wal.stats().rotations as usize == files.len() - 1);
    for f in &files[..files.len() - 1] {
        let name = f.path.file_name().unwrap().to_str().unwrap();
        let first = f.segment_lsn.unwrap();
        assert_eq!(name, segment_name(first));
        assert_eq!(name.len(), "karma.wal.".len() + 20 + ".segment".len());
        let size = fs::metadata(&f.path).unwrap().len();
        assert!(size >= 1000);
        let idx = read_index(&f.path, size).expect("valid index");
        assert_eq!(idx[0], (first, 0));
        // The index agrees with the file.
        let text = fs::read(&f.path).unwrap();
        for (lsn, off) in &idx {
            let line = &text[*off as usize..];
            assert!(line.starts_with(format!(r#"{{"v":2,"lsn":{lsn},"#).as_bytes()));
        }
    }
    assert_eq!(replay(d.path()).len(), 200);
    check_pages(&wal, 200);

    // Budget edge cases.
    let e = wal.entries_after(0, 10, Some(10)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ResponseTooLarge);
    assert_eq!(e.message(), "Single WAL entry 1 exceeds replication response byte budget");
    let one = entry_cost(1, entry(0).len());
    let p = wal.entries_after(0, 10, Some(one * 2 + 1)).unwrap();
    assert_eq!(p.entries.len(), 2);
    assert!(p.truncated_by_bytes);
    assert_eq!(p.entries_bytes, one * 2);
    assert_eq!(
        p.entries_bytes,
        p.entries.iter().map(|(l, e)| format!(r#"{{"lsn":{l},"entry":{e}}}"#).len()).sum::<usize>()
    );
    assert!(!wal.entries_after(0, 10, None).unwrap().truncated_by_bytes);
    assert!(wal.entries_after(0, 0, None).is_err());
    assert!(wal.entries_after(0, 1, Some(0)).is_err());

    // Corrupted, lying and missing indexes: still equal to a linear scan.
    let segs: Vec<_> = files[..files.len() - 1].to_vec();
    for (i, f) in segs.iter().enumerate() {
        let size = fs::metadata(&f.path).unwrap().len();
        match i % 4 {
            0 => fs::write(idx_path(&f.path), "garbage\n").unwrap(),
            1 => fs::remove_file(idx_path(&f.path)).unwrap(),
            2 => {
                // Well-formed but wrong offsets (not line starts).
                let first = f.segment_lsn.unwrap();
                let text = format!("KARMA_WAL_INDEX_V1 size={size}\n{} 0\n{} 7\n{} 19\n", first, first + 1, first + 2);
                fs::write(idx_path(&f.path), text).unwrap();
            }
            _ => {
                // Line starts, but the LSNs are shifted.
                let idx = read_index(&f.path, size).unwrap();
                let mut text = format!("KARMA_WAL_INDEX_V1 size={size}\n");
                for (l, o) in idx {
                    text.push_str(&format!("{} {o}\n", l + 1));
                }
                fs::write(idx_path(&f.path), text).unwrap();
            }
        }
    }
    drop(wal);
    let wal = Wal::open(c).unwrap();
    check_pages(&wal, 200);
}

#[test]
fn truncate_keeps_lsns_going() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_bytes = 500;
    c.fsync = FsyncPolicy::Always;
    let wal = Wal::open(c.clone()).unwrap();
    for i in 0..30u64 {
        wal.append(entry(i).as_bytes()).unwrap();
    }
    wal.truncate().unwrap();
    assert_eq!(wal.bytes(), 0);
    assert_eq!(fs::read_to_string(d.path().join(LSN_FILE)).unwrap(), "30\n");
    let files = list_files(d.path()).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(fs::metadata(&files[0].path).unwrap().len(), 0);
    assert!(!fs::read_dir(d.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".idx")));
    assert_eq!(wal.entries_after(0, 100, None).unwrap().entries.len(), 0);
    assert_eq!(wal.append(entry(1).as_bytes()).unwrap(), 31);
    wal.wait_durable(31).unwrap();
    assert_eq!(wal.bytes(), disk_bytes(d.path()));
    assert_eq!(wal.entries_after(0, 100, None).unwrap().entries[0].0, 31);
    drop(wal);
    // The sidecar carries the LSN across an empty WAL.
    wal_truncate_then_reopen(&c);
}

fn wal_truncate_then_reopen(c: &WalConfig) {
    let wal = Wal::open(c.clone()).unwrap();
    assert_eq!(wal.current_lsn(), 31);
    wal.truncate().unwrap();
    drop(wal);
    let wal = Wal::open(c.clone()).unwrap();
    assert_eq!(wal.current_lsn(), 31);
    assert_eq!(wal.append(entry(1).as_bytes()).unwrap(), 32);
}

#[test]
fn torn_last_line_is_repaired() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(cfg(d.path())).unwrap();
    for i in 0..3u64 {
        wal.append(entry(i).as_bytes()).unwrap();
    }
    wal.close().unwrap();
    drop(wal);
    let path = d.path().join(ACTIVE_FILE);
    let good = fs::read(&path).unwrap();
    for torn in [
        &br#"{"v":2,"lsn":4,"entry":{"v":2,"op":"counter.incr"#[..],
        &br#"{"v":2,"lsn":4,"entry":{}}"#[..],
        &b"\0\0\0\0"[..],
        &b"garbage after the last complete line\n"[..],
        // A torn write into the zero-filled tail: a partial line, then zeros.
        &[&br#"{"v":2,"lsn":4,"entry":{"v":2,"#[..], &[0u8; 4096][..]].concat()[..],
        // The log ends at the first zero, whatever a torn write left after it.
        &[&[0u8; 4096][..], &br#"{"v":2,"lsn":4,"entry":{}}"#[..], b"\n"].concat()[..],
    ] {
        let mut bytes = good.clone();
        bytes.extend_from_slice(torn);
        fs::write(&path, &bytes).unwrap();
        // Replay tolerates it without touching the file.
        assert_eq!(replay(d.path()).len(), 3);
        assert_eq!(fs::read(&path).unwrap(), bytes);
        let wal = Wal::open(cfg(d.path())).unwrap();
        assert_eq!(fs::read(&path).unwrap(), good);
        assert_eq!(wal.current_lsn(), 3);
        assert_eq!(wal.bytes(), good.len() as u64);
        assert_eq!(wal.append(entry(9).as_bytes()).unwrap(), 4);
        wal.close().unwrap();
        drop(wal);
        assert_eq!(replay(d.path()).len(), 4);
        fs::write(&path, &good).unwrap();
    }
}

#[test]
fn corrupt_middle_line_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(ACTIVE_FILE);
    let text = format!(
        "{{\"v\":2,\"lsn\":1,\"entry\":{}}}\n{{\"v\":2,\"lsn\":2,\"entr\n\n{{\"v\":2,\"lsn\":3,\"entry\":{}}}\n",
        entry(1),
        entry(3)
    );
    fs::write(&path, &text).unwrap();
    let offset = text.find("{\"v\":2,\"lsn\":2").unwrap();
    let e = Wal::open(cfg(d.path())).err().unwrap();
    let needle = format!("{}:2 (byte offset {offset})", path.display());
    assert!(e.message().contains(&needle), "{}", e.message());
    assert!(e.message().contains("move the file aside"), "{}", e.message());
    let e = read_all(d.path(), |_, _| Ok(())).unwrap_err();
    assert!(e.message().contains(&needle), "{}", e.message());
    assert_eq!(fs::read_to_string(&path).unwrap(), text);

    // Valid JSON without the envelope: fatal for replay, skipped by replication.
    let text = format!("{{\"command\":\"increment\"}}\n{{\"v\":2,\"lsn\":1,\"entry\":{}}}\n", entry(1));
    fs::write(&path, &text).unwrap();
    let e = read_all(d.path(), |_, _| Ok(())).unwrap_err();
    assert!(e.message().starts_with("WAL entry without v2 LSN envelope is not supported"), "{}", e.message());
    assert_eq!(e.code(), ErrorCode::ValidationError);
    let wal = Wal::open(cfg(d.path())).unwrap();
    assert_eq!(wal.current_lsn(), 1);
    assert_eq!(wal.entries_after(0, 10, None).unwrap().entries.len(), 1);
}

#[test]
fn failed_rotation_makes_the_wal_unavailable() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_bytes = 10;
    let wal = Wal::open(c).unwrap();
    let lsn = wal.append(entry(1).as_bytes()).unwrap();
    wal.wait_durable(lsn).unwrap();
    let before = fs::read(d.path().join(ACTIVE_FILE)).unwrap();
    fs::write(d.path().join(segment_name(1)), b"in the way").unwrap();
    let lsn = wal.append(entry(2).as_bytes()).unwrap();
    let e = wal.wait_durable(lsn).unwrap_err();
    assert!(e.message().starts_with("WAL is unavailable: WAL segment already exists: "), "{e}");
    assert_eq!(e.code(), ErrorCode::ValidationError);
    assert!(wal.failure().unwrap().starts_with("WAL segment already exists"));
    let e = wal.append(entry(3).as_bytes()).unwrap_err();
    assert!(e.message().starts_with("WAL is unavailable"));
    let (tx, rx) = std::sync::mpsc::channel();
    wal.on_durable(lsn, Box::new(move |r| tx.send(r.is_err()).unwrap()));
    assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
    assert!(wal.truncate().is_err());
    assert_eq!(wal.durable_lsn(), 1);
    assert_eq!(fs::read(d.path().join(ACTIVE_FILE)).unwrap(), before);
    assert!(wal.close().is_err());
}

#[test]
fn segmented_wal_fixture() {
    let dir = fixtures().join("segmented-wal/data");
    let lines = replay(&dir);
    assert_eq!(lines.len(), 2410);
    for (i, (lsn, _)) in lines.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1);
    }
    let stats = read_all(&dir, |_, _| Ok(())).unwrap();
    assert_eq!((stats.entries, stats.first_lsn, stats.last_lsn, stats.files), (2410, 1, 2410, 76));
    let files = list_files(&dir).unwrap();
    for f in &files[..files.len() - 1] {
        let size = fs::metadata(&f.path).unwrap().len();
        assert!(read_index(&f.path, size).is_some(), "{}", f.path.display());
    }

    let d = copy_fixture("segmented-wal");
    let before = disk_bytes(d.path());
    let mut c = cfg(d.path());
    c.segment_bytes = 4096;
    let wal = Wal::open(c).unwrap();
    assert_eq!(wal.current_lsn(), 2410);
    assert_eq!(wal.bytes(), before);
    check_pages(&wal, 2410);
    let p = wal.entries_after(1000, 3, None).unwrap();
    assert_eq!(p.entries[0], (1001, lines[1000].1.clone()));
    for i in 0..100u64 {
        wal.append(entry(i).as_bytes()).unwrap();
    }
    wal.wait_durable(2510).unwrap();
    assert_eq!(wal.bytes(), disk_bytes(d.path()));
    check_pages(&wal, 2510);
}

#[test]
fn other_fixtures() {
    let d = copy_fixture("snapshot-plus-wal");
    let wal = Wal::open(cfg(d.path())).unwrap();
    assert_eq!(wal.current_lsn(), 1203);
    assert_eq!(wal.bytes(), 99906);
    let p = wal.entries_after(721, 2, None).unwrap();
    assert_eq!(p.entries[0].0, 722);
    assert_eq!(
        p.entries[0].1,
        r#"{"v":2,"op":"counter.increment","series":"storage_bytes","key":38108,"bucket":20261121,"value":1936685036}"#
    );
    assert_eq!(wal.append(b"{}").unwrap(), 1204);
    drop(wal);

    let d = copy_fixture("snapshots-only");
    let wal = Wal::open(cfg(d.path())).unwrap();
    assert_eq!(wal.current_lsn(), 614);
    assert_eq!(wal.append(b"{}").unwrap(), 615);
    drop(wal);

    let s = read_all(&fixtures().join("large-values/data"), |_, _| Ok(())).unwrap();
    assert!(s.entries > 0);
    let s = read_all(&fixtures().join("bug-replay-batch-total/data"), |_, _| Ok(())).unwrap();
    assert_eq!((s.entries, s.first_lsn, s.last_lsn), (4, 1, 4));
}

/// With fsync off nobody wakes the writer thread on append: a waiter commits
/// its own group, and the writer sweeps up entries nobody waits on.
#[test]
fn unwaited_entries_are_written_by_the_sweeper() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(cfg(d.path())).unwrap();
    let lsn = wal.append(entry(1).as_bytes()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wal.durable_lsn() < lsn {
        assert!(std::time::Instant::now() < deadline, "the sweeper never wrote LSN {lsn}");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(replay(d.path()).len(), 1);
    // A waiter commits its own entry at once.
    let lsn = wal.append(entry(2).as_bytes()).unwrap();
    wal.wait_durable(lsn).unwrap();
    assert_eq!(replay(d.path()).len(), 2);
    // bytes() and replication reads include entries still queued.
    let before = disk_bytes(d.path());
    let lsn = wal.append(entry(3).as_bytes()).unwrap();
    assert_eq!(wal.bytes(), before + line(lsn, &entry(3)).len() as u64);
    assert_eq!(wal.entries_after(0, 10, None).unwrap().entries.len(), 3);
    assert_eq!(wal.bytes(), disk_bytes(d.path()));
    wal.close().unwrap();
}

/// An idle WAL's writer thread sleeps without a timeout, so an idle server
/// does not wake every sweep interval; the next append, even one nobody
/// waits on, wakes it, and it writes that entry.
#[test]
fn an_idle_writer_sleeps_until_an_append_wakes_it() {
    for fsync in [FsyncPolicy::Never, FsyncPolicy::EverySec, FsyncPolicy::Always] {
        let d = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig { fsync, ..cfg(d.path()) }).unwrap();
        for i in 1..=2 {
            // `everysec` sleeps for good only once its background fsync ran.
            eventually(|| wal.shared.state.lock().writer_asleep, "the idle writer never went to sleep");
            let lsn = wal.append(entry(i).as_bytes()).unwrap();
            // Nobody waits for it: only the woken writer thread writes it.
            eventually(|| wal.durable_lsn() >= lsn, "the sleeping writer never wrote the entry");
        }
        assert_eq!(replay(d.path()).len(), 2, "{fsync:?}");
        wal.close().unwrap();
    }
}

/// Waits up to 10 s for `done`, which the writer thread makes true.
fn eventually(done: impl Fn() -> bool, failure: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{failure}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `try_durable_now` commits on the calling thread when the writer is free.
#[test]
fn try_durable_now_commits_inline() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig { fsync: FsyncPolicy::Always, ..cfg(d.path()) }).unwrap();
    let lsn = wal.append(entry(1).as_bytes()).unwrap();
    // The writer thread may have taken it first; either way it is durable
    // once the call answers Some, and only None asks the caller to wait.
    match wal.try_durable_now(lsn) {
        Some(r) => r.unwrap(),
        None => wal.wait_durable(lsn).unwrap(),
    }
    assert!(wal.durable_lsn() >= lsn);
    assert_eq!(replay(d.path()).len(), 1);
    assert_eq!(wal.try_durable_now(lsn), Some(Ok(())));
    wal.close().unwrap();
}

#[test]
fn concurrent_try_durable_now_acknowledges_only_written_entries() {
    // Four threads race for the writer: the losers either wait out the
    // winner's group (fsync off) or are told to wait (None). Whatever they
    // are told, an entry acknowledged is in the file, and every entry is
    // written exactly once.
    let d = tempfile::tempdir().unwrap();
    let wal = std::sync::Arc::new(Wal::open(WalConfig { fsync: FsyncPolicy::Never, ..cfg(d.path()) }).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let wal = std::sync::Arc::clone(&wal);
            std::thread::spawn(move || {
                for i in 0..500 {
                    let lsn = wal.append(entry(t * 1000 + i).as_bytes()).unwrap();
                    match wal.try_durable_now(lsn) {
                        Some(r) => r.unwrap(),
                        None => wal.wait_durable(lsn).unwrap(),
                    }
                    assert!(wal.durable_lsn() >= lsn);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wal.close().unwrap();
    let lsns: Vec<u64> = replay(d.path()).iter().map(|(lsn, _)| *lsn).collect();
    assert_eq!(lsns, (1..=2000).collect::<Vec<u64>>());
}

/// `karma.wal`'s bytes up to the first zero: the log without the zeros the
/// writer keeps ahead of it.
pub(super) fn log_bytes(path: &Path) -> (Vec<u8>, u64) {
    let mut bytes = fs::read(path).unwrap();
    let file_len = bytes.len() as u64;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    assert!(bytes[end..].iter().all(|&b| b == 0), "only zeros follow the log");
    bytes.truncate(end);
    (bytes, file_len)
}

/// A copy of `dir`'s WAL files as they are now: what a crash would leave.
fn crash_copy(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for f in list_files(dir).unwrap() {
        fs::copy(&f.path, copy.path().join(f.path.file_name().unwrap())).unwrap();
    }
    copy
}

#[test]
fn a_crash_with_a_zero_filled_tail_recovers_exactly_the_written_entries() {
    for fsync in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::Never] {
        let d = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig { fsync, ..cfg(d.path()) }).unwrap();
        let mut written = Vec::new();
        for i in 0..50u64 {
            let lsn = wal.append(entry(i).as_bytes()).unwrap();
            wal.wait_durable(lsn).unwrap();
            written.push((lsn, entry(i)));
        }
        let path = d.path().join(ACTIVE_FILE);
        let (log, file_len) = log_bytes(&path);
        assert_eq!(file_len, 1 << 20, "{fsync:?}: the writer zero-fills a chunk ahead of the log");
        assert_eq!(wal.bytes(), log.len() as u64);
        // Replication reads stop at the log's end.
        let all = written.clone();
        assert_eq!(wal.entries_after(0, 1000, None).unwrap().entries, all);
        assert_eq!(wal.entries_after_linear(0, 1000, None).unwrap().entries, all);
        assert_eq!(wal.entries_after(40, 1000, None).unwrap().entries, all[40..]);
        assert_eq!(replay(d.path()), all, "a replay of the live directory reads the log only");

        let crashed = crash_copy(d.path());
        wal.close().unwrap();
        let copied = crashed.path().join(ACTIVE_FILE);
        assert_eq!(replay(crashed.path()), all, "{fsync:?}");
        assert_eq!(fs::metadata(&copied).unwrap().len(), 1 << 20, "replay leaves the file alone");
        let reopened = Wal::open(WalConfig { fsync, ..cfg(crashed.path()) }).unwrap();
        assert_eq!(fs::read(&copied).unwrap(), log, "{fsync:?}: opening cuts the zeros off");
        assert_eq!(reopened.current_lsn(), 50);
        assert_eq!(reopened.bytes(), log.len() as u64);
        let next = reopened.append(entry(50).as_bytes()).unwrap();
        reopened.wait_durable(next).unwrap();
        reopened.close().unwrap();
        written.push((next, entry(50)));
        assert_eq!(replay(crashed.path()), written, "{fsync:?}: appending resumes at the log's end");
    }
}

#[test]
fn rotation_and_close_leave_no_zeros_behind() {
    let d = tempfile::tempdir().unwrap();
    let c = WalConfig { fsync: FsyncPolicy::Always, segment_bytes: 4096, ..cfg(d.path()) };
    let wal = Wal::open(c.clone()).unwrap();
    let mut written = Vec::new();
    for i in 0..200u64 {
        let lsn = wal.append(entry(i).as_bytes()).unwrap();
        wal.wait_durable(lsn).unwrap();
        written.push((lsn, entry(i)));
    }
    assert!(wal.stats().rotations >= 3, "{:?}", wal.stats());
    let (log, file_len) = log_bytes(&d.path().join(ACTIVE_FILE));
    assert!(file_len > log.len() as u64, "the active file is zero-filled ahead");
    assert!(file_len <= 4096, "no further than the segment size: {file_len}");
    let segments: Vec<WalFile> = list_files(d.path()).unwrap().into_iter().filter(|f| !f.is_active()).collect();
    for seg in &segments {
        let bytes = fs::read(&seg.path).unwrap();
        assert!(!bytes.contains(&0), "{} holds zeros", seg.path.display());
        assert!(read_index(&seg.path, bytes.len() as u64).is_some(), "the index matches the cut segment");
    }
    wal.close().unwrap();
    let active = fs::read(d.path().join(ACTIVE_FILE)).unwrap();
    assert_eq!(active, log, "a cleanly closed karma.wal holds the log only");
    assert_eq!(replay(d.path()), written);
    let reopened = Wal::open(c).unwrap();
    assert_eq!(reopened.entries_after(0, 1000, None).unwrap().entries, written);
}

#[test]
fn a_truncated_wal_is_zero_filled_again_from_its_start() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig { fsync: FsyncPolicy::Always, ..cfg(d.path()) }).unwrap();
    for i in 0..5u64 {
        let lsn = wal.append(entry(i).as_bytes()).unwrap();
        wal.wait_durable(lsn).unwrap();
    }
    wal.truncate().unwrap();
    assert_eq!(fs::metadata(d.path().join(ACTIVE_FILE)).unwrap().len(), 0);
    let lsn = wal.append(entry(9).as_bytes()).unwrap();
    wal.wait_durable(lsn).unwrap();
    let (log, file_len) = log_bytes(&d.path().join(ACTIVE_FILE));
    assert_eq!(file_len, 1 << 20);
    assert_eq!(log, format!("{{\"v\":2,\"lsn\":6,\"entry\":{}}}\n", entry(9)).into_bytes());
    wal.close().unwrap();
    assert_eq!(replay(d.path()), [(6, entry(9))]);
}

/// The WAL line of `entry` under `lsn`, as the writer frames it.
fn line(lsn: u64, entry: &str) -> String {
    format!("{{\"v\":2,\"lsn\":{lsn},\"entry\":{entry}}}\n")
}

/// How many entries each queued item holds (`None`: a truncation).
fn queued(wal: &Wal) -> Vec<Option<usize>> {
    let st = wal.shared.state.lock();
    st.queue
        .iter()
        .map(|item| match item {
            handle::Item::Entries(chunk) => Some(chunk.len()),
            handle::Item::Truncate { .. } => None,
        })
        .collect()
}

#[test]
fn queued_entries_split_into_groups_of_batch_size() {
    let d = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig { batch_size: 2, ..cfg(d.path()) }).unwrap();
    // Holding the writer keeps everything queued.
    let writer = wal.core.lock();
    for i in 0..5u64 {
        wal.append(entry(i).as_bytes()).unwrap();
    }
    assert_eq!(queued(&wal), [Some(2), Some(2), Some(1)]);
    drop(writer);
    wal.wait_durable(5).unwrap();
    let stats = wal.stats();
    assert_eq!((stats.groups, stats.entries), (3, 5), "one group per chunk");
    let expected: String = (0..5u64).map(|i| line(i + 1, &entry(i))).collect();
    assert_eq!(log_bytes(&d.path().join(ACTIVE_FILE)).0, expected.as_bytes());
    // Written chunks are kept for the next appends.
    assert!(!wal.shared.state.lock().spare.is_empty());
    wal.close().unwrap();
}

#[test]
fn a_truncation_stays_between_the_entries_queued_around_it() {
    let d = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(cfg(d.path())).unwrap());
    let writer = wal.core.lock();
    for i in 0..3u64 {
        wal.append(entry(i).as_bytes()).unwrap();
    }
    let truncation = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || wal.truncate())
    };
    eventually(|| queued(&wal).len() == 2, "the truncation was never queued");
    // A refused entry in the middle takes no LSN and leaves nothing behind.
    wal.append(entry(3).as_bytes()).unwrap();
    for bad in [&b"{\n}"[..], b""] {
        let e = wal.append(bad).unwrap_err();
        assert_eq!((e.code(), e.message()), (ErrorCode::ValidationError, "WAL entry must be one line of JSON"));
    }
    wal.append(entry(4).as_bytes()).unwrap();
    assert_eq!(queued(&wal), [Some(3), None, Some(2)], "appends after the truncation start a new group");
    drop(writer);
    truncation.join().unwrap().unwrap();
    wal.wait_durable(5).unwrap();
    // The truncation removed the first three entries, not the last two.
    assert_eq!(fs::read_to_string(d.path().join(LSN_FILE)).unwrap(), "3\n");
    let (first, second) = (line(4, &entry(3)), line(5, &entry(4)));
    assert_eq!(log_bytes(&d.path().join(ACTIVE_FILE)).0, format!("{first}{second}").as_bytes());
    let files = wal.shared.files.read();
    assert_eq!(files.active_index, [(4, 0), (5, first.len() as u64)]);
    assert_eq!(files.active_first, Some(4));
    drop(files);
    assert_eq!(wal.bytes(), (first.len() + second.len()) as u64);
    wal.close().unwrap();
}

#[test]
fn bytes_counts_queued_entries_without_waiting_for_the_writer() {
    let d = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(WalConfig { fsync: FsyncPolicy::Always, ..cfg(d.path()) }).unwrap());
    let first = wal.append(entry(0).as_bytes()).unwrap();
    wal.wait_durable(first).unwrap();
    let written = wal.bytes();
    assert_eq!(written, line(1, &entry(0)).len() as u64);
    // A commit in progress (here: the writer held) must not stall the
    // count, which metrics and system.stats report.
    let writer = wal.core.lock();
    for i in 1..4u64 {
        wal.append(entry(i).as_bytes()).unwrap();
    }
    let queued: u64 = (1..4u64).map(|i| line(i + 1, &entry(i)).len() as u64).sum();
    let (tx, rx) = std::sync::mpsc::channel();
    let counting = Arc::clone(&wal);
    std::thread::spawn(move || tx.send(counting.bytes()).unwrap());
    let counted = rx.recv_timeout(Duration::from_secs(60)).expect("bytes() waited for the writer");
    assert_eq!(counted, written + queued);
    drop(writer);
    wal.wait_durable(4).unwrap();
    assert_eq!(wal.bytes(), written + queued);
    assert_eq!(wal.bytes(), log_bytes(&d.path().join(ACTIVE_FILE)).0.len() as u64);
    wal.close().unwrap();
}
