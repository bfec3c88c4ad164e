//! The C ABI's client (`karma_client_*`) opened on a `karma+etcd://` URL,
//! against a real etcd and one `karma` node per shard (harness in
//! common/cluster.rs): writes to keys of both shards read back through the
//! per-key and the batch calls, and a bad cluster URL fails with the status
//! a C caller can act on.
//!
//! Fails (never skips) when etcd is missing: `scripts/test` installs it.

mod common;

use std::ffi::{CStr, CString};
use std::ptr::null_mut;

use common::cluster::{one_node_per_shard, EtcdServer, BUCKET, CLUSTER};
use karma_cluster::shard_of;
use karma_ffi::KarmaStatus::{self, *};
use karma_ffi::*;

fn last_error() -> String {
    let p = karma_last_error();
    if p.is_null() {
        return String::new();
    }
    // SAFETY: a non-NULL karma_last_error is a NUL-terminated string that
    // stays valid until the next call on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn open(url: &str) -> (KarmaStatus, *mut KarmaClient) {
    let url = CString::new(url).expect("no NUL in the URL");
    let mut client = null_mut();
    // SAFETY: a NUL-terminated URL and a writable out pointer.
    let status = unsafe { karma_client_open(url.as_ptr(), &mut client) };
    (status, client)
}

#[test]
fn c_client_on_a_cluster_url_reaches_both_shards() {
    let etcd = EtcdServer::start();
    let _nodes = one_node_per_shard(&etcd, 2, "f");
    let (status, client) = open(&format!("karma+etcd://{}/{CLUSTER}", etcd.endpoint()));
    assert_eq!(status, KARMA_OK, "{}", last_error());
    assert!(!client.is_null());

    let keys: Vec<u64> =
        (1..).filter(|k| shard_of(*k, 2) == 0).take(2).chain((1..).filter(|k| shard_of(*k, 2) == 1).take(2)).collect();
    let series = CString::new("ffi").expect("no NUL");
    let mut out = 0u64;
    for (i, key) in keys.iter().enumerate() {
        let amount = 10 * (i as u64 + 1);
        for _ in 0..2 {
            // SAFETY: a live client, a NUL-terminated series, a writable out.
            let status = unsafe { karma_client_increment(client, series.as_ptr(), *key, BUCKET, amount, &mut out) };
            assert_eq!(status, KARMA_OK, "{}", last_error());
        }
        assert_eq!(out, amount, "increment echoes its amount (key {key})");
    }
    // SAFETY: as above.
    let status = unsafe { karma_client_decrement(client, series.as_ptr(), keys[3], BUCKET, 5, &mut out) };
    assert_eq!((status, out), (KARMA_OK, 5), "{}", last_error());

    let mut asked = keys.clone();
    asked.push(999_999); // never written: sums to 0
    let mut values = vec![u64::MAX; asked.len()];
    let range = KarmaRange { from: BUCKET, to: BUCKET };
    // SAFETY: `asked` and `values` both hold asked.len() items.
    let status = unsafe {
        karma_client_batch_sum(client, series.as_ptr(), asked.as_ptr(), asked.len(), &range, values.as_mut_ptr())
    };
    assert_eq!(status, KARMA_OK, "{}", last_error());
    assert_eq!(values, [20, 40, 60, 75, 0]);

    // The raw path routes by key too and answers as one server would.
    let line = format!(r#"{{"v":2,"op":"counter.sum","series":"ffi","key":{}}}"#, keys[2]);
    let mut response = null_mut();
    // SAFETY: `line` is readable for its length; `response` is writable.
    let status = unsafe { karma_client_execute(client, line.as_ptr().cast(), line.len(), &mut response) };
    assert_eq!(status, KARMA_OK, "{}", last_error());
    // SAFETY: KARMA_OK leaves a NUL-terminated string to free with karma_string_free.
    let text = unsafe { CStr::from_ptr(response) }.to_string_lossy().into_owned();
    // SAFETY: the string karma_client_execute returned, freed once.
    unsafe { karma_string_free(response) };
    assert!(text.contains(r#""success":true"#) && text.contains(r#""response":60"#), "{text}");

    // SAFETY: the live handle, not used afterwards.
    unsafe { karma_client_free(client) };
}

#[test]
fn c_client_reports_bad_cluster_urls() {
    let (status, client) = open("karma+etcd://127.0.0.1:2379");
    assert_eq!(status, KARMA_VALIDATION_ERROR, "no cluster name: {}", last_error());
    assert!(client.is_null());
    assert!(last_error().contains("cluster URL"), "{}", last_error());

    // Nothing listens on loopback port 9: etcd is unreachable.
    let (status, client) = open(&format!("karma+etcd://127.0.0.1:9/{CLUSTER}"));
    assert_eq!(status, KARMA_CONNECTION_ERROR, "{}", last_error());
    assert!(client.is_null());
}
