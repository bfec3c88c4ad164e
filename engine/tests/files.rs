//! The engine touches only regular files inside its data directory and
//! never names the host's paths to a client (issue 10 items 5 and 7).

mod support;

use std::os::unix::fs::symlink;

use karma_engine::{Engine, Options};
use support::{send, T0};

fn open(dir: &std::path::Path) -> Result<Engine, karma_engine::Error> {
    let clock = karma_engine::clock::ManualClock::new(T0);
    Engine::open(Options { wal_fsync: karma_engine::options::FsyncPolicy::Never, clock, ..Options::durable(dir) })
}

/// A `*.tree` symlink planted in the directory is neither listed nor served
/// nor loaded, whatever it points to; the answer names the refused file.
#[test]
fn snapshot_ops_refuse_a_symlinked_tree_file() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENT").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path()).unwrap();
    symlink(&secret, dir.path().join("1_x.tree")).unwrap();
    symlink(&secret, dir.path().join("1_x.tree.meta.json")).unwrap();
    let refusal = r#"{"protocol_version":2,"success":false,"response":"Refusing 1_x.tree: not a regular file (symbolic links and special files in the data directory are refused)","error_code":"validation_error"}"#;
    for line in [
        r#"{"v":2,"op":"snapshot.fetch","file":"1_x.tree"}"#,
        r#"{"v":2,"op":"snapshot.fetch_chunk","file":"1_x.tree","offset":0}"#,
        r#"{"v":2,"op":"snapshot.load","file":"1_x.tree"}"#,
    ] {
        let answer = send(&e, line);
        assert_eq!(answer, refusal, "{line}");
    }
    let listed = send(&e, r#"{"v":2,"op":"snapshot.list"}"#);
    assert!(!listed.contains("1_x.tree"), "{listed}");
    assert!(!send(&e, r#"{"v":2,"op":"snapshot.info"}"#).contains("1_x.tree"));
    assert_eq!(send(&e, r#"{"v":2,"op":"tree.list"}"#), support::ok("[]"));
    // A directory or a FIFO under a snapshot name is refused too, without blocking.
    std::fs::create_dir(dir.path().join("2_d.tree")).unwrap();
    let made = std::process::Command::new("mkfifo").arg(dir.path().join("3_f.tree")).status().unwrap();
    assert!(made.success());
    for file in ["2_d.tree", "3_f.tree"] {
        let answer = send(&e, &format!(r#"{{"v":2,"op":"snapshot.fetch","file":"{file}"}}"#));
        assert!(answer.contains(&format!("Refusing {file}: not a regular file")), "{answer}");
    }
}

/// A `karma.wal` symlink stops startup with a message naming the file; the
/// file it points to is neither appended to nor truncated.
#[test]
fn a_symlinked_wal_stops_startup_and_leaves_its_target_alone() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim.log");
    std::fs::write(&target, "precious\n").unwrap();
    for name in ["karma.wal", "karma.wal.lsn", "recovery.json", "karma.idempotency.json", "karma.lock"] {
        let dir = tempfile::tempdir().unwrap();
        symlink(&target, dir.path().join(name)).unwrap();
        match open(dir.path()) {
            Ok(e) => {
                // Only files read lazily may let the engine start; their use is refused.
                let answer = send(&e, r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260101}"#);
                let info = send(&e, r#"{"v":2,"op":"snapshot.info"}"#);
                panic!("{name}: startup succeeded: {answer} {info}");
            }
            Err(err) => {
                let message = err.message().to_owned();
                assert!(message.contains(name) && message.contains("not a regular file"), "{name}: {message}");
                assert!(!message.contains(&*dir.path().to_string_lossy()), "{name}: host path in {message}");
            }
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n", "{name}");
    }
}

/// Error answers name files by their name in the directory, never by the
/// host's absolute path.
#[test]
fn errors_never_reveal_the_host_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path()).unwrap();
    let host = dir.path().to_string_lossy().into_owned();
    let long = format!("1_{}.tree", "x".repeat(300));
    for line in [
        format!(r#"{{"v":2,"op":"snapshot.fetch","file":"{long}"}}"#),
        format!(r#"{{"v":2,"op":"snapshot.fetch_chunk","file":"{long}","offset":0}}"#),
        format!(r#"{{"v":2,"op":"snapshot.load","file":"{long}"}}"#),
    ] {
        let answer = send(&e, &line);
        assert!(answer.contains("\"success\":false"), "{answer}");
        assert!(!answer.contains(&host), "host path in {answer}");
    }
}

/// Snapshots of a series with the longest allowed name (200 bytes) work,
/// whatever the process id: the temporary file name stays within 255 bytes.
#[test]
fn a_200_byte_series_name_can_be_snapshotted() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path()).unwrap();
    let name = "n".repeat(200);
    let write = format!(r#"{{"v":2,"op":"counter.increment","series":"{name}","key":1,"bucket":20260101}}"#);
    assert_eq!(send(&e, &write), support::ok("1"));
    assert_eq!(
        send(&e, &format!(r#"{{"v":2,"op":"snapshot.create","series":"{name}"}}"#)),
        support::ok(&format!(r#""Tree \"{name}\" saved""#))
    );
    e.snapshot_all().unwrap();
    e.close().unwrap();
    drop(e);
    let e = open(dir.path()).unwrap();
    assert_eq!(send(&e, &format!(r#"{{"v":2,"op":"counter.sum","series":"{name}","key":1}}"#)), support::ok("1"));
}
