//! auth and roles: the ops of this section through `Engine::handle_line`.

use super::*;

fn auth_engine() -> (karma_engine::Engine, tempfile::TempDir) {
    let (e, dir) = durable_with(|o| {
        o.auth_token = Some("w".into());
        o.read_auth_token = Some("r".into());
    });
    // The stream "st" the ingest rows refer to.
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"st","mode":"add","token":"w"}"#,
        r#"{"stream_id":"st","mode":"add","series":null,"granularity":null,"status":"active","last_chunk_seq":0}"#,
    );
    (e, dir)
}

#[test]
fn read_token_runs_reads_and_is_forbidden_every_mutation() {
    let (e, _dir) = auth_engine();
    for (op, internal, read_only, fields) in OPS {
        let got = send(&e, &line(op, fields, r#","token":"r""#));
        if *read_only {
            assert!(!got.contains("\"forbidden\"") && !got.contains("\"unauthorized\""), "{op}: {got}");
        } else {
            assert_eq!(got, fail("forbidden", &format!("Read-only token cannot execute command {internal}")), "{op}");
        }
    }
}

#[test]
fn write_token_runs_everything_and_no_token_is_unauthorized() {
    let (e, _dir) = auth_engine();
    for (op, _, _, fields) in OPS {
        for bad in ["", r#","token":"nope""#, r#","token":5"#, r#","token":null"#] {
            expect_err(&e, &line(op, fields, bad), "unauthorized", "Unauthorized");
        }
    }
    for (op, _, _, fields) in OPS {
        let got = send(&e, &line(op, fields, r#","token":"w""#));
        assert!(!got.contains("\"forbidden\"") && !got.contains("\"unauthorized\""), "{op}: {got}");
    }
}

#[test]
fn field_errors_come_before_authentication() {
    let (e, _dir) = auth_engine();
    expect_err(&e, r#"{"v":2,"op":"counter.sum"}"#, "validation_error", "Field tree or series is required");
    expect_err(&e, r#"{"v":2,"op":"nope"}"#, "unknown_command", "Unknown op nope");
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":-1}"#,
        "validation_error",
        "Field key must be greater than or equal to 0",
    );
    // Validation after authentication.
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"value":0}"#,
        "unauthorized",
        "Unauthorized",
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"value":0,"token":"w"}"#,
        "validation_error",
        "Field value must be greater than 0",
    );
    // With auth on, every request is authenticated (no fast path).
    expect_err(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "unauthorized", "Unauthorized");
    expect_ok(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"token":"w"}"#, "1");
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1,"token":"r"}"#, "1");
}

#[test]
fn only_a_read_token_guards_reads_and_refuses_it_for_writes() {
    let e = engine_with(|o| o.read_auth_token = Some("r".into()));
    expect_err(
        &e,
        r#"{"v":2,"op":"tree.create","series":"s","token":"r"}"#,
        "forbidden",
        "Read-only token cannot execute command create",
    );
    expect_err(&e, r#"{"v":2,"op":"tree.create","series":"s","token":"w"}"#, "unauthorized", "Unauthorized");
    expect_ok(&e, r#"{"v":2,"op":"tree.list","token":"r"}"#, "[]");
    expect_err(&e, r#"{"v":2,"op":"tree.list"}"#, "unauthorized", "Unauthorized");
}

#[test]
fn same_value_for_both_tokens_grants_full_access() {
    let e = engine_with(|o| {
        o.auth_token = Some("t".into());
        o.read_auth_token = Some("t".into());
    });
    expect_ok(&e, r#"{"v":2,"op":"tree.create","series":"s","token":"t"}"#, r#""OK""#);
}

#[test]
fn slave_refuses_every_non_read_op_after_validation() {
    let (e, _dir) = durable_with(|o| o.role = Role::Slave);
    // Replication applies internally, bypassing the role check.
    let internal = Session::internal();
    send_as(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"st","mode":"add"}"#, &internal);
    for (op, internal_name, read_only, fields) in OPS {
        let got = send(&e, &line(op, fields, ""));
        if *read_only {
            assert!(!got.contains("\"forbidden\""), "{op}: {got}");
        } else {
            assert_eq!(got, fail("forbidden", &format!("Slave role cannot execute command {internal_name}")), "{op}");
        }
    }
    // Validation first.
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"value":0}"#,
        "validation_error",
        "Field value must be greater than 0",
    );
    expect_err(&e, &chunk("unknown", "s", 1, "[]"), "not_found", r#"Ingest stream "unknown" not found"#);
    expect_err(&e, r#"{"v":2,"op":"snapshot.create_all"}"#, "forbidden", "Slave role cannot execute command dump_all");
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

#[test]
fn read_token_on_a_slave_reads() {
    let e = engine_with(|o| {
        o.role = Role::Slave;
        o.read_auth_token = Some("r".into());
    });
    expect_ok(&e, r#"{"v":2,"op":"system.ping","token":"r"}"#, r#""pong""#);
    expect_err(
        &e,
        r#"{"v":2,"op":"tree.create","series":"s","token":"r"}"#,
        "forbidden",
        "Read-only token cannot execute command create",
    );
}
