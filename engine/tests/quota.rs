//! `counter.consume`: the atomic quota check-and-add. Concurrency (exactly
//! `limit` allowed whatever the interleaving), each window kind across month
//! and year boundaries with the manual clock, idempotent retries (also after
//! WAL replay), refusals that change nothing, the WAL entry an allowed
//! consume becomes, and every error.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use karma_engine::{Engine, ErrorCode, Options, Role, Session, Window};
use serde_json::{json, Value};
use support::*;

const THREADS: u64 = 8;
const ATTEMPTS: u64 = 5_000;
const LIMIT: u64 = 1_000;

fn quota(e: &Engine, extra: &str) -> Value {
    let line = format!(r#"{{"v":2,"op":"counter.consume","series":"q","key":42{extra}}}"#);
    response(e, &line)
}

fn sum(e: &Engine) -> u64 {
    e.sum("q", 42, None).unwrap_or(0)
}

/// Unix seconds of `hh:00` UTC on `bucket`'s day.
fn at(bucket: u64, hour: u64) -> u64 {
    let days = karma_engine::clock::bucket_day_number(bucket).unwrap() as u64;
    days * 86_400 + hour * 3_600
}

/// `THREADS` threads make `ATTEMPTS` consumes in all (half through the
/// typed method, half as protocol lines); returns how many were allowed.
fn race(e: &Engine) -> u64 {
    let allowed = AtomicU64::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (e, allowed) = (e.clone(), &allowed);
            s.spawn(move || {
                for i in 0..ATTEMPTS / THREADS {
                    let ok = if (t + i) % 2 == 0 {
                        e.consume("q", 42, Some(20260528), 1, LIMIT, Window::Month).unwrap().allowed
                    } else {
                        let line = r#"{"v":2,"op":"counter.consume","series":"q","key":42,"bucket":20260528,"limit":1000,"window":"month"}"#;
                        let answer = e.handle_line_acked(line.as_bytes(), &Session::client());
                        let v: Value = serde_json::from_slice(&answer).unwrap();
                        v["response"]["allowed"].as_bool().unwrap()
                    };
                    if ok {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    allowed.into_inner()
}

#[test]
fn eight_threads_never_pass_the_limit() {
    let e = engine();
    assert_eq!(race(&e), LIMIT);
    assert_eq!(sum(&e), LIMIT);
}

#[test]
fn the_limit_holds_after_wal_replay() {
    let (e, dir) = durable();
    assert_eq!(race(&e), LIMIT);
    e.close().unwrap();
    drop(e);
    let clock = karma_engine::clock::ManualClock::new(T0);
    let o = Options { wal_fsync: karma_engine::FsyncPolicy::Never, clock, ..Options::durable(dir.path()) };
    let reopened = Engine::open(o).unwrap();
    assert_eq!(sum(&reopened), LIMIT);
    let q = quota(&reopened, r#","bucket":20260528,"limit":1000,"window":"month""#);
    assert_eq!(q["allowed"], false);
    assert_eq!(sum(&reopened), LIMIT);
}

#[test]
fn answers_allowed_used_remaining_and_the_window() {
    let e = engine();
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.consume","series":"q","key":42,"limit":5,"value":2}"#,
        r#"{"allowed":true,"used":2,"remaining":3,"limit":5,"range_from":20260528,"range_to":20260528}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.consume","tree":"q","key":42,"limit":5,"value":4}"#,
        r#"{"allowed":false,"used":2,"remaining":3,"limit":5,"range_from":20260528,"range_to":20260528}"#,
    );
    // Other writes are not held to the limit; remaining never goes negative.
    e.increment("q", 42, None, 10).unwrap();
    let q = quota(&e, r#","limit":5"#);
    assert_eq!((q["allowed"].clone(), q["used"].clone(), q["remaining"].clone()), (json!(false), json!(12), json!(0)));
}

#[test]
fn an_over_limit_consume_changes_nothing_and_logs_nothing() {
    let (e, _dir) = durable();
    // No series is created by a refusal.
    assert_eq!(quota(&e, r#","limit":1,"value":2"#)["allowed"], false);
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
    assert_eq!(quota(&e, r#","limit":1"#)["allowed"], true);
    let before = send(&e, r#"{"v":2,"op":"system.wal"}"#);
    let image = format!("{:?}", e.export_series("q").unwrap());
    for extra in [r#","limit":1"#, r#","limit":1,"value":5"#, r#","limit":0"#] {
        assert_eq!(quota(&e, extra)["allowed"], false, "{extra}");
    }
    assert_eq!(send(&e, r#"{"v":2,"op":"system.wal"}"#), before, "a refusal appends no WAL entry");
    assert_eq!(format!("{:?}", e.export_series("q").unwrap()), image);
    assert_eq!(sum(&e), 1);
}

#[test]
fn an_allowed_consume_is_logged_as_the_increment_it_amounts_to() {
    let (e, _dir) = durable();
    quota(&e, r#","limit":10,"value":3,"idempotency_key":"k1""#);
    let entries = response(&e, r#"{"v":2,"op":"replication.entries","after_lsn":0}"#);
    let expected = json!([{"lsn":1,"entry":{"v":2,"op":"counter.increment","series":"q","key":42,"bucket":20260528,"value":3,"idempotency_key":"k1"}}]);
    assert_eq!(entries["entries"], expected);
}

#[test]
fn day_window_restarts_at_midnight_across_a_year_boundary() {
    let (e, clock) = engine_and_clock(|_| {});
    clock.set(at(20261231, 23));
    assert_eq!(quota(&e, r#","limit":2,"value":2"#)["allowed"], true);
    assert_eq!(quota(&e, r#","limit":2"#)["allowed"], false);
    clock.set(at(20270101, 0));
    let q = quota(&e, r#","limit":2,"window":"day""#);
    assert_eq!(
        (q["allowed"].clone(), q["used"].clone(), q["range_from"].clone()),
        (json!(true), json!(1), json!(20270101))
    );
}

#[test]
fn days_window_reaches_back_across_month_and_year_boundaries() {
    let (e, clock) = engine_and_clock(|_| {});
    clock.set(at(20261231, 12));
    quota(&e, r#","limit":100,"value":3"#);
    clock.set(at(20270102, 12));
    let q = quota(&e, r#","limit":4,"window":"days","days":3,"value":2"#);
    assert_eq!((q["allowed"].clone(), q["used"].clone()), (json!(false), json!(3)));
    assert_eq!((q["range_from"].clone(), q["range_to"].clone()), (json!(20261231), json!(20270102)));
    // `days` alone means a days window; two days no longer reach 2026.
    let q = quota(&e, r#","limit":4,"days":2,"value":2"#);
    assert_eq!(
        (q["allowed"].clone(), q["used"].clone(), q["range_from"].clone()),
        (json!(true), json!(2), json!(20270101))
    );
    // February of a leap year: 2024-02-29 is inside two days ending 03-01.
    quota(&e, r#","limit":100,"bucket":20240229,"value":5"#);
    let q = quota(&e, r#","limit":100,"bucket":"2024-03-01","days":2"#);
    assert_eq!((q["used"].clone(), q["range_from"].clone()), (json!(6), json!(20240229)));
}

#[test]
fn month_window_restarts_on_the_first_at_month_and_year_boundaries() {
    let (e, clock) = engine_and_clock(|_| {});
    for (last, next) in [(20260531, 20260601), (20261231, 20270101)] {
        clock.set(at(last, 23));
        let q = quota(&e, r#","limit":3,"value":3,"window":"month""#);
        assert_eq!(q["allowed"], true, "{last}");
        assert_eq!(quota(&e, r#","limit":3,"window":"month""#)["allowed"], false);
        clock.set(at(next, 0));
        let q = quota(&e, r#","limit":3,"window":"month""#);
        assert_eq!(
            (q["allowed"].clone(), q["used"].clone(), q["range_from"].clone()),
            (json!(true), json!(1), json!(next))
        );
    }
    // Month to date: later days of the month do not count.
    quota(&e, r#","limit":100,"bucket":20270120,"value":50"#);
    let q = quota(&e, r#","limit":100,"bucket":20270110,"window":"month""#);
    assert_eq!(q["used"], 2);
}

#[test]
fn an_idempotent_retry_answers_the_first_response_and_counts_once() {
    let e = engine();
    let line = r#"{"v":2,"op":"counter.consume","series":"q","key":42,"limit":2,"idempotency_key":"req-1"}"#;
    let first = r#"{"allowed":true,"used":1,"remaining":1,"limit":2,"range_from":20260528,"range_to":20260528}"#;
    expect(&e, line, &idem(first, false));
    expect(&e, line, &idem(first, true));
    assert_eq!(sum(&e), 1);
    // A refusal is remembered too: it stays refused even after room appears.
    quota(&e, r#","limit":2"#);
    let refused = r#"{"v":2,"op":"counter.consume","series":"q","key":42,"limit":2,"idempotency_key":"req-2"}"#;
    let answer = send(&e, refused);
    assert!(answer.contains(r#""allowed":false"#) && answer.contains(r#""idempotent":false"#), "{answer}");
    e.reset("q", Some(42)).unwrap();
    assert!(send(&e, refused).contains(r#""allowed":false"#));
    // The same key for another request is a conflict.
    let other = r#"{"v":2,"op":"counter.consume","series":"q","key":42,"limit":3,"idempotency_key":"req-1"}"#;
    assert_eq!(error_of(&e, other).0, "idempotency_conflict");
}

#[test]
fn an_idempotent_retry_after_wal_replay_does_not_count_twice() {
    let (e, dir) = durable();
    let line = r#"{"v":2,"op":"counter.consume","series":"q","key":42,"limit":5,"value":2,"idempotency_key":"r"}"#;
    assert!(send(&e, line).contains(r#""idempotent":false"#));
    e.close().unwrap();
    drop(e);
    let clock = karma_engine::clock::ManualClock::new(T0);
    let o = Options { wal_fsync: karma_engine::FsyncPolicy::Never, clock, ..Options::durable(dir.path()) };
    let e = Engine::open(o).unwrap();
    let again = send(&e, line);
    assert!(again.contains(r#""allowed":true,"used":2,"remaining":3"#), "{again}");
    assert!(again.contains(r#""idempotent":true"#), "{again}");
    assert_eq!(sum(&e), 2);
}

#[test]
fn errors_have_their_codes_and_change_nothing() {
    let e = engine();
    e.increment("q", 42, Some(TODAY), I64_MAX).unwrap();
    e.increment("q", 42, Some(TODAY), I64_MAX).unwrap();
    let before = sum(&e);
    let cases = [
        ("", "validation_error", "Field limit is required"),
        (r#","limit":-1"#, "validation_error", "Field limit must be greater than or equal to 0"),
        (r#","limit":5,"value":0"#, "validation_error", "Field value must be greater than 0"),
        (r#","limit":5,"days":0"#, "validation_error", "Field days must be greater than 0"),
        (r#","limit":5,"days":367"#, "validation_error", "Field days exceeds max size of 366"),
        (r#","limit":5,"window":"days""#, "validation_error", "Field days is required"),
        (r#","limit":5,"window":"month","days":2"#, "validation_error", "Field days requires window days"),
        (r#","limit":5,"window":"week""#, "validation_error", "Field window must be day, days or month, got week"),
        (r#","limit":5,"window":7"#, "validation_error", "Field window must be a string"),
        (r#","limit":5,"bucket":20260230"#, "validation_error", "Invalid bucket date"),
        (r#","limit":5,"value":2"#, "validation_error", "Counter overflow key=42 bucket=20260528"),
    ];
    for (extra, code, message) in cases {
        assert_eq!(
            error_of(&e, &format!(r#"{{"v":2,"op":"counter.consume","series":"q","key":42{extra}}}"#)),
            (code.to_owned(), message.to_owned()),
            "{extra}"
        );
    }
    assert_eq!(sum(&e), before);
    assert_eq!(error_of(&e, r#"{"v":2,"op":"counter.consume","key":1,"limit":1}"#).0, "validation_error");
    assert_eq!(error_of(&e, r#"{"v":2,"op":"counter.consume","series":"q","limit":1}"#).1, "Field key is required");
    let typed = e.consume("q", 42, None, 0, 5, Window::Day).unwrap_err();
    assert_eq!(typed.code(), ErrorCode::ValidationError);
    let typed = e.consume("q", 42, None, 1, 5, Window::Days(0)).unwrap_err();
    assert_eq!(typed.code(), ErrorCode::ValidationError);
}

#[test]
fn a_slave_and_the_read_token_refuse_it() {
    let slave = engine_with(|o| o.role = Role::Slave);
    expect_err(
        &slave,
        r#"{"v":2,"op":"counter.consume","series":"q","key":1,"limit":1}"#,
        "forbidden",
        "Slave role cannot execute command consume",
    );
    let e = engine_with(|o| {
        o.auth_token = Some("w".into());
        o.read_auth_token = Some("r".into());
    });
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.consume","series":"q","key":1,"limit":1,"token":"r"}"#,
        "forbidden",
        "Read-only token cannot execute command consume",
    );
    assert_eq!(quota_with_token(&e)["allowed"], true);
}

fn quota_with_token(e: &Engine) -> Value {
    response(e, r#"{"v":2,"op":"counter.consume","series":"q","key":1,"limit":1,"token":"w"}"#)
}
