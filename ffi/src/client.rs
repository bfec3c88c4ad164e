//! `karma_client_*`: a pooled connection to a `karma` server, or to a
//! cluster of them, behind an opaque handle, with the same functions as
//! `karma_engine_*`.

use std::ffi::c_char;

use karma_client::{AnyClient, Client, ClientConfig, ENV_URL};
use karma_engine::clock::{bucket_of_unix, Clock, SystemClock};

use crate::args::{self, Out};
use crate::last_error::{guard, Failure};
use crate::ops::{self, Handle};
use crate::status::KarmaStatus;

/// A pool of connections to one Karma server or to a cluster's shard
/// leaders (opaque). Create with karma_client_open, destroy with
/// karma_client_free.
pub struct KarmaClient {
    client: AnyClient,
}

impl Handle for KarmaClient {
    type Db = AnyClient;
    const NAME: &'static str = "client";

    fn db(&self) -> &AnyClient {
        &self.client
    }

    /// This machine's date: the server would use its own, which differs only
    /// if the two clocks disagree around midnight UTC.
    fn today(&self) -> u64 {
        bucket_of_unix(SystemClock.unix_seconds())
    }

    fn execute_line(&self, line: &[u8]) -> Result<Vec<u8>, Failure> {
        let line = std::str::from_utf8(line).map_err(|e| Failure::invalid(format!("json is not valid UTF-8 ({e})")))?;
        let reply = self.client.request_line(line).map_err(|e| Failure::of(&e))?;
        Ok(reply.into_bytes())
    }
}

/// Creates a client and stores its handle in `*out` (on KARMA_OK only).
/// For a server nothing is connected yet: an unreachable server shows on the
/// first call as KARMA_CONNECTION_ERROR (or KARMA_TIMEOUT).
///
/// `url_or_null`: `karma://host:port` (or `tcp://`; IPv6 in brackets; port
/// 8080 by default) with an optional query of client options (the client's
/// one table of them, e.g. `?token=..&pool_size=4&read_timeout=2.5`:
/// timeouts in seconds, fractions allowed, 0 disables). NULL reads the
/// environment instead: KARMA_URL, or KARMA_HOST and KARMA_PORT, then each
/// option's KARMA_* variable. A bad URL or variable is
/// KARMA_VALIDATION_ERROR, with a message naming it.
///
/// `karma+etcd://host:port[,host:port...]/<cluster-name>` opens a cluster
/// instead (docs/cluster.md), given here or, with NULL, in KARMA_URL: each
/// call goes to the leaders of the shards that own its keys, and answers as
/// one server would. The client options come from their KARMA_* variables,
/// else their defaults. The cluster's shard count is
/// read from etcd here: unreachable etcd is KARMA_CONNECTION_ERROR (or
/// KARMA_TIMEOUT), a malformed cluster URL KARMA_VALIDATION_ERROR.
///
/// # Safety
///
/// `url_or_null` must be NULL or a NUL-terminated string; `out` must be NULL
/// or point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn karma_client_open(url_or_null: *const c_char, out: *mut *mut KarmaClient) -> KarmaStatus {
    guard(|| {
        // SAFETY: as the helper requires (this function's contract).
        let out = unsafe { Out::one(out, "out")? };
        let client = if url_or_null.is_null() {
            match std::env::var(ENV_URL).ok().filter(|u| AnyClient::is_cluster_url(u)) {
                Some(url) => open_cluster(&url)?,
                None => AnyClient::Node(Client::from_env().map_err(|e| Failure::of(&e))?),
            }
        } else {
            // SAFETY: non-null and NUL-terminated (this function's contract).
            open_url(unsafe { args::string(url_or_null, "url")? })?
        };
        out.set(Box::into_raw(Box::new(KarmaClient { client })));
        Ok(())
    })
}

/// A server URL alone gives the whole config; a cluster URL has no query,
/// so it takes the rest from the environment ([`open_cluster`]).
fn open_url(url: &str) -> Result<AnyClient, Failure> {
    if AnyClient::is_cluster_url(url) {
        return open_cluster(url);
    }
    Client::from_url(url).map(AnyClient::Node).map_err(|e| Failure::of(&e))
}

/// Opens a cluster with token, pool and timeouts from the environment.
/// KARMA_URL is left out: it may hold this very cluster URL, which a
/// server's config cannot parse (the CLI does the same).
fn open_cluster(url: &str) -> Result<AnyClient, Failure> {
    let env = |name: &str| if name == ENV_URL { None } else { std::env::var(name).ok() };
    let base = ClientConfig::from_env_with(env).map_err(|e| Failure::of(&e))?;
    AnyClient::from_url(url, base).map_err(|e| Failure::of(&e))
}

/// Closes the client's connections and frees the handle. NULL is ignored.
/// The handle must not be used afterwards.
///
/// # Safety
///
/// `client` must be NULL or a handle from karma_client_open, not yet freed,
/// that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn karma_client_free(client: *mut KarmaClient) {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::free(client, drop) }
}

/// As karma_engine_execute, over the network: the line (which must be
/// UTF-8) is sent with the client's token added, and `*out_response` is the
/// server's envelope exactly as it was sent (key order and number text
/// preserved, without the `\r\n`). Transport failures
/// (KARMA_CONNECTION_ERROR, KARMA_TIMEOUT) leave `*out_response` NULL.
///
/// # Safety
///
/// `client` must be NULL or a live handle; `json` readable for `len` bytes
/// (NULL allowed when `len` is 0); `out_response` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn karma_client_execute(
    client: *mut KarmaClient,
    json: *const c_char,
    len: usize,
    out_response: *mut *mut c_char,
) -> KarmaStatus {
    // SAFETY: this function's contract is the helper's.
    unsafe { ops::execute(client.cast_const(), json, len, out_response) }
}
