//! A full disk under the real `karma` binary (issue 10 item 2), made with
//! the test build's fault injection: while the file named by
//! `KARMA_FAULT_DISK_FULL_FILE` exists, every WAL write fails with ENOSPC.
//! A write whose WAL write fails is refused and never becomes visible or
//! part of a snapshot; snapshots are refused while the WAL is failed;
//! `system.health` says so; once the disk takes writes again the WAL resumes
//! by itself and SIGTERM exits 0; a SIGTERM while the disk is still full
//! exits 1 and loses nothing acknowledged. No timing assertions.

mod common;

use std::path::Path;

use common::*;

const SUM: &str = r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#;
const HEALTH: &str = r#"{"v":2,"op":"system.health"}"#;

fn increment(value: u64, idempotency_key: Option<&str>) -> String {
    let key = idempotency_key.map(|k| format!(r#","idempotency_key":"{k}""#)).unwrap_or_default();
    format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260101,"value":{value}{key}}}"#)
}

/// The shared test kit's server, stopped with SIGTERM by the test.
struct Karma(karma_testkit::Server);

impl Karma {
    /// `karma --wal-fsync=always` on `data`, with the disk-full switch at `flag`.
    fn start(data: &Path, flag: &Path) -> Karma {
        let flag = flag.to_string_lossy();
        Karma(
            karma_testkit::Server::builder(BIN)
                .directory(data)
                .args(&["--wal-fsync=always"])
                .env(&[("KARMA_FAULT_DISK_FULL_FILE", &flag)])
                .start(),
        )
    }

    fn client(&self) -> Client {
        Client::connect(self.0.port)
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        self.0.stop()
    }
}

fn ok(line: &str) -> bool {
    line.contains(r#""success":true"#)
}

#[test]
fn a_full_disk_refuses_writes_without_showing_them_and_the_wal_resumes_when_it_clears() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, flag) = (tmp.path().join("data"), tmp.path().join("disk-full"));
    let server = Karma::start(&data, &flag);
    let mut c = server.client();
    assert!(ok(&c.request(&increment(5, None))));

    std::fs::write(&flag, b"").unwrap();
    let refused = c.request(&increment(7, None));
    assert!(!ok(&refused) && refused.contains("WAL"), "{refused}");
    // The refused write is not visible, to this client or another one.
    assert!(c.request(SUM).contains(r#""response":5"#), "the refused write is visible");
    assert!(server.client().request(SUM).contains(r#""response":5"#));
    // An idempotent write refused by the WAL leaves no record behind.
    let idem = c.request(&increment(100, Some("k")));
    assert!(!ok(&idem), "{idem}");
    for snapshot in [r#"{"v":2,"op":"snapshot.create","series":"s"}"#, r#"{"v":2,"op":"snapshot.create_all"}"#] {
        let answer = c.request(snapshot);
        assert!(answer.contains("snapshots are refused until it recovers"), "{answer}");
    }
    let health = c.request(HEALTH);
    assert!(health.contains(r#""status":"unhealthy""#), "{health}");
    let later = c.request(&increment(1, None));
    assert!(!ok(&later), "a write while the disk is full: {later}");
    assert!(c.request(SUM).contains(r#""response":5"#));

    // The disk has space again: the next request resumes the WAL.
    std::fs::remove_file(&flag).unwrap();
    assert!(ok(&c.request(&increment(1, None))));
    let health = c.request(HEALTH);
    assert!(health.contains(r#""status":"ok""#), "{health}");
    let retried = c.request(&increment(3, Some("k")));
    assert!(ok(&retried) && retried.contains(r#""idempotent":false"#), "the retry is applied: {retried}");
    assert!(c.request(SUM).contains(r#""response":9"#));
    assert!(ok(&c.request(r#"{"v":2,"op":"snapshot.create","series":"s"}"#)));
    assert!(ok(&c.request(&increment(10, None))));
    drop(c);
    let status = server.terminate();
    assert!(status.success(), "SIGTERM after the disk recovered: {status}");

    // Exactly the acknowledged writes, and a WAL whose LSNs are whole.
    let server = Karma::start(&data, &flag);
    let mut c = server.client();
    assert!(c.request(SUM).contains(r#""response":19"#));
    let verify = c.request(r#"{"v":2,"op":"snapshot.verify"}"#);
    assert!(verify.contains(r#""status":"ok""#), "{verify}");

    // SIGTERM while the disk is still full: the final snapshot is refused
    // (exit 1), and nothing acknowledged is lost.
    assert!(ok(&c.request(&increment(20, None))));
    std::fs::write(&flag, b"").unwrap();
    assert!(!ok(&c.request(&increment(40, None))));
    drop(c);
    let status = server.terminate();
    assert_eq!(status.code(), Some(1), "SIGTERM with the disk still full");
    std::fs::remove_file(&flag).unwrap();
    let server = Karma::start(&data, &flag);
    assert!(server.client().request(SUM).contains(r#""response":39"#));
    assert!(server.terminate().success());
}
