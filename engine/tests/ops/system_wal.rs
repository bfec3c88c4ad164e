//! system.wal (extension): the ops of this section through `Engine::handle_line`.

use super::*;

#[test]
fn system_wal_reports_the_policy_and_the_fsyncs_of_a_durable_engine() {
    use karma_engine::FsyncPolicy;
    let (e, _dir) = durable_with(|o| o.wal_fsync = FsyncPolicy::Always);
    for key in 1..=3 {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{key}}}"#));
    }
    let reply = send(&e, r#"{"v":2,"op":"system.wal"}"#);
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let w = &v["response"];
    assert_eq!(v["success"], true, "{reply}");
    assert_eq!((w["policy"].as_str(), w["enabled"].as_bool()), (Some("always"), Some(true)), "{reply}");
    assert_eq!(
        (w["current_lsn"].as_u64(), w["durable_lsn"].as_u64(), w["entries"].as_u64()),
        (Some(3), Some(3), Some(3))
    );
    let (groups, fsyncs) = (w["groups"].as_u64().unwrap(), w["fsyncs"].as_u64().unwrap());
    assert!((1..=3).contains(&groups) && fsyncs == groups, "{reply}");
    assert!(w["fsync_us_max"].as_u64().unwrap() <= w["fsync_us_total"].as_u64().unwrap(), "{reply}");
    let metrics = e.metrics_text();
    assert!(metrics.contains("karma_wal_fsync_policy{policy=\"always\"} 1\n"), "{metrics}");
    assert!(metrics.contains(&format!("karma_wal_fsyncs_total {fsyncs}\n")), "{metrics}");
    assert!(metrics.contains("# TYPE karma_wal_fsync_seconds_max gauge\n"), "{metrics}");
    // A read: allowed with the read token and on a slave.
    let (slave, _d) = durable_with(|o| o.role = Role::Slave);
    assert!(send(&slave, r#"{"v":2,"op":"system.wal"}"#).contains("\"policy\":\"never\""));
}

#[test]
fn system_wal_without_fsyncs_leaves_the_metrics_as_karma_1_0_had_them() {
    let (e, _dir) = durable();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1}"#);
    let reply = send(&e, r#"{"v":2,"op":"system.wal"}"#);
    assert!(reply.contains(r#""policy":"never","enabled":true,"current_lsn":1,"durable_lsn":1,"groups":1,"entries":1,"fsyncs":0,"fsync_us_total":0,"fsync_us_max":0,"fsync_us_avg":0.0}"#), "{reply}");
    assert!(!e.metrics_text().contains("karma_wal_fsync"));
    let memory = engine();
    assert_eq!(
        send(&memory, r#"{"v":2,"op":"system.wal"}"#),
        r#"{"protocol_version":2,"success":true,"response":{"policy":"always","enabled":false,"current_lsn":0,"durable_lsn":0,"groups":0,"entries":0,"fsyncs":0,"fsync_us_total":0,"fsync_us_max":0,"fsync_us_avg":0.0},"error_code":null}"#
    );
}
