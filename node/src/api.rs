//! The two classes, `Engine` (in-process) and `Client` (network), and their
//! methods, declared once in [`karma_methods!`]: every method returns a
//! Promise on both classes, and `Engine` also gets a blocking `...Sync`
//! variant of each.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use karma_client::{AnyClient, Client as NetClient, Pipeline};
use karma_engine::api::Change;
use napi::bindgen_prelude::{AsyncTask, BigInt};
use napi::{Env, JsValue, Unknown};
use napi_derive::napi;

use crate::calls::pipelined::Request;
use crate::calls::{self, DeleteCounts, KeyValue, KeysPage, Point, Quota, ResetCounts, SeriesInfo, SeriesSummary};
use crate::conv::Arg;
use crate::errors::{self, Failure};
use crate::fast;
use crate::settle::Settler;
use crate::task::{Backend, Call, Handle, Job, Json};

/// The method table. Each row: doc comment, the method's name and its
/// `...Sync` name, its JavaScript parameters, the Rust result type, then
/// the TypeScript parameters, result and Promise of result. `$mode` picks
/// what each row becomes: `promise` (a libuv task per call) or `sync`
/// methods of an `Engine`, or a `Client`'s methods (`client`), where the
/// single-counter writes under `pipelined` (the metering and rate-limiting
/// hot path) share pipelined connections (`settle.rs`) and the others stay
/// libuv tasks on pooled connections, so a slow scan never holds up the
/// hot path.
macro_rules! karma_methods {
    ($mode:ident $class:ident) => {
        karma_methods! { @$mode $class pipelined {
            /// Adds `value` (default 1) to one day bucket (today, UTC, by
            /// default); resolves to the value added.
            increment increment_sync (series, key, options) -> BigInt,
                "series: string, key: number | bigint, options?: ChangeOptions", "bigint", "Promise<bigint>";
            /// Subtracts up to `value` (default 1) from one bucket, never below
            /// zero; resolves to the requested `value` (as the protocol does).
            decrement decrement_sync (series, key, options) -> BigInt,
                "series: string, key: number | bigint, options?: ChangeOptions", "bigint", "Promise<bigint>";
            /// Rate limiting in one atomic step: adds `value` (default 1) to a
            /// bucket (today, UTC, by default) only if the window's total plus
            /// `value` stays within `limit`; a refusal (`allowed: false`)
            /// changes nothing. The window is today (`window: 'day'`, the
            /// default), the last `days` days, or the calendar `'month'`.
            consume consume_sync (series, key, limit, options) -> Quota,
                "series: string, key: number | bigint, limit: number | bigint, options?: ConsumeOptions",
                "Quota", "Promise<Quota>";
        } pooled {
            /// The counter's total, or the sum of its buckets in `range`.
            sum sum_sync (series, key, range) -> BigInt,
                "series: string, key: number | bigint, range?: Range", "bigint", "Promise<bigint>";
            /// One sum per key, in order.
            batch_sum batch_sum_sync (series, keys, range) -> Vec<BigInt>,
                "series: string, keys: Array<number | bigint>, range?: Range", "Array<bigint>", "Promise<Array<bigint>>";
            /// One sum per `[series, key]`, in order.
            multi_sum multi_sum_sync (items, range) -> Vec<BigInt>,
                "items: Array<[string, number | bigint]>, range?: Range", "Array<bigint>", "Promise<Array<bigint>>";
            /// The `{ bucket, value }` points of one counter inside `range`.
            points points_sync (series, key, range) -> Vec<Point>,
                "series: string, key: number | bigint, range: Range", "Array<Point>", "Promise<Array<Point>>";
            /// Same as `points` (the v2 op is `counter.series`).
            series series_sync (series, key, range) -> Vec<Point>,
                "series: string, key: number | bigint, range: Range", "Array<Point>", "Promise<Array<Point>>";
            /// Adds `[key, bucket, value]` items atomically; resolves to their total.
            batch_add batch_add_sync (series, items) -> BigInt,
                "series: string, items: Array<[number | bigint, Date | string | number, number | bigint]>",
                "bigint", "Promise<bigint>";
            /// Sets exact bucket values (0 deletes the bucket); resolves to the item count.
            batch_set batch_set_sync (series, items) -> i64,
                "series: string, items: Array<[number | bigint, Date | string | number, number | bigint]>",
                "number", "Promise<number>";
            /// Clears one counter, or every counter of the series without `key`.
            reset reset_sync (series, key) -> (),
                "series: string, key?: number | bigint | null", "void", "Promise<void>";
            /// Clears many counters.
            batch_reset batch_reset_sync (series, keys) -> ResetCounts,
                "series: string, keys: Array<number | bigint>", "ResetCounts", "Promise<ResetCounts>";
            /// Deletes the buckets in `range` of one counter (of every counter without `key`).
            delete_range delete_range_sync (series, range, key) -> (),
                "series: string, range: Range, key?: number | bigint | null", "void", "Promise<void>";
            /// Deletes `range` from many counters.
            batch_delete_range batch_delete_range_sync (series, keys, range) -> DeleteCounts,
                "series: string, keys: Array<number | bigint>, range: Range", "DeleteCounts", "Promise<DeleteCounts>";
            /// Creates an empty series.
            create_series create_series_sync (series) -> (),
                "series: string", "void", "Promise<void>";
            /// Deletes a series and its snapshots.
            drop_series drop_series_sync (series) -> (),
                "series: string", "void", "Promise<void>";
            /// The series names.
            list_series list_series_sync () -> Vec<String>,
                "", "Array<string>", "Promise<Array<string>>";
            /// Key, bucket and value counts of one series.
            info info_sync (series) -> SeriesInfo,
                "series: string", "SeriesInfo", "Promise<SeriesInfo>";
            /// One page of keys after `cursor`, ascending, with their totals.
            keys keys_sync (series, options) -> KeysPage,
                "series: string, options?: KeysOptions", "KeysPage", "Promise<KeysPage>";
            /// The largest counters, largest first.
            top top_sync (series, options) -> Vec<KeyValue>,
                "series: string, options?: TopOptions", "Array<KeyValue>", "Promise<Array<KeyValue>>";
            /// Totals of a series (over `range`, or all time).
            summary summary_sync (series, range) -> SeriesSummary,
                "series: string, range?: Range", "SeriesSummary", "Promise<SeriesSummary>";
            /// Retention: drops the buckets before `before`, then compacts.
            delete_before delete_before_sync (series, before) -> (),
                "series: string, before: Date | string | number", "void", "Promise<void>";
            /// Removes empty counters of one series (of all without `series`).
            compact compact_sync (series) -> (),
                "series?: string | null", "void", "Promise<void>";
            /// Snapshots every series and truncates the WAL (`snapshot.create_all`).
            snapshot_all snapshot_all_sync () -> (),
                "", "void", "Promise<void>";
            /// `'pong'`.
            ping ping_sync () -> String,
                "", "string", "Promise<string>";
            /// The `system.health` object.
            health health_sync () -> Json,
                "", "any", "Promise<any>";
            /// The `system.stats` object (integers above 2**53 as `bigint`).
            stats stats_sync () -> Json,
                "", "any", "Promise<any>";
            /// The Prometheus text of `system.metrics`.
            metrics metrics_sync () -> String,
                "", "string", "Promise<string>";
            /// Deletes idempotency records created before `before` (unix seconds,
            /// a `Date` or an RFC 3339 string); resolves to how many.
            idempotency_prune idempotency_prune_sync (before, options) -> Json,
                "before: number | bigint | Date | string, options?: PruneOptions", "number", "Promise<number>";
            /// Any v2 op: sends `{ v: 2, op, ...fields }` and resolves to its
            /// `response`; an error envelope rejects with its error class.
            request request_sync (op, fields) -> Json,
                "op: string, fields?: Record<string, unknown>", "any", "Promise<any>";
            /// Sends one raw request line and resolves to its `response`.
            request_line request_line_sync (line) -> Json,
                "line: string", "any", "Promise<any>";
        } }
    };
    (@promise $class:ident pipelined { $($hot:tt)* } pooled { $($rest:tt)* }) => {
        karma_methods! { @tasks $class $($hot)* $($rest)* }
    };
    (@sync $class:ident pipelined { $($hot:tt)* } pooled { $($rest:tt)* }) => {
        karma_methods! { @blocking $class $($hot)* $($rest)* }
    };
    (@client $class:ident pipelined { $($hot:tt)* } pooled { $($rest:tt)* }) => {
        karma_methods! { @pipelined $class $($hot)* }
        karma_methods! { @tasks $class $($rest)* }
    };
    (@pipelined $class:ident $(
        $(#[doc = $doc:tt])* $name:ident $sync:ident ($($arg:ident),*) -> $out:ty,
        $args_ts:tt, $ret_ts:tt, $promise_ts:tt;
    )*) => {
        #[napi]
        impl $class {
            $(
                $(#[doc = $doc])*
                #[napi(ts_args_type = $args_ts, ts_return_type = $promise_ts)]
                pub fn $name<'env>(&self, env: &'env Env, $($arg: Unknown<'_>),*) -> napi::Result<Unknown<'env>> {
                    if self.net.is_none() {
                        return self.pooled(env, calls::$name($($arg),*));
                    }
                    self.send(env, calls::pipelined::$name($($arg),*))
                }
            )*
        }
    };
    (@tasks $class:ident $(
        $(#[doc = $doc:tt])* $name:ident $sync:ident ($($arg:ident),*) -> $out:ty,
        $args_ts:tt, $ret_ts:tt, $promise_ts:tt;
    )*) => {
        #[napi]
        impl $class {
            $(
                $(#[doc = $doc])*
                #[napi(ts_args_type = $args_ts, ts_return_type = $promise_ts)]
                pub fn $name(&self, $($arg: Unknown<'_>),*) -> AsyncTask<Job<$out>> {
                    let call = calls::$name($($arg),*).map(|c| Box::new(c) as Call<$out>);
                    AsyncTask::new(Job::new(&self.handle, call))
                }
            )*
        }
    };
    (@blocking $class:ident $(
        $(#[doc = $doc:tt])* $name:ident $sync:ident ($($arg:ident),*) -> $out:ty,
        $args_ts:tt, $ret_ts:tt, $promise_ts:tt;
    )*) => {
        #[napi]
        impl $class {
            $(
                $(#[doc = $doc])*
                ///
                /// Blocks the calling thread (an fsync under `walFsync: 'always'`).
                #[napi(ts_args_type = $args_ts, ts_return_type = $ret_ts)]
                pub fn $sync(&self, env: Env, $($arg: Unknown<'_>),*) -> napi::Result<$out> {
                    calls::$name($($arg),*)
                        .and_then(|call| self.handle.run(call))
                        .map_err(|f| errors::to_js(&env, f))
                }
            )*
        }
    };
}

/// A Karma database in this process: `new Engine()` in memory,
/// `new Engine(path)` durable in a data directory (WAL + snapshots, the same
/// files as the `karma` server's). Every method returns a Promise and runs
/// on the libuv thread pool; the `...Sync` variants run on the calling
/// thread (for the hot path, e.g. with `walFsync: 'never'` or `wal: false`).
/// Worker threads share a durable engine by opening the same path: a
/// `new Engine(path)` while that directory is open in the process (in any
/// thread) uses the engine already open there, and its options are checked
/// but not applied; closing it closes it for every thread.
#[napi]
pub struct Engine {
    handle: Arc<Handle>,
}

#[napi]
impl Engine {
    /// Opens (and recovers) the database; throws on a bad option or an
    /// unreadable directory. Opening replays the WAL on the calling thread.
    #[napi(constructor, ts_args_type = "path?: string | null, options?: EngineOptions")]
    pub fn new(env: Env, path: Unknown<'_>, options: Unknown<'_>) -> napi::Result<Engine> {
        crate::options::engine(&path, &options)
            .and_then(crate::shared::open)
            .map(|handle| Engine { handle })
            .map_err(|f| errors::to_js(&env, f))
    }

    /// Flushes the WAL and releases the directory lock, after the calls in
    /// flight; later calls reject. Idempotent.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<Job<()>> {
        close_job(&self.handle)
    }

    /// `close()` on the calling thread.
    #[napi]
    pub fn close_sync(&self, env: Env) -> napi::Result<()> {
        self.handle.close().map_err(|f| errors::to_js(&env, f))
    }

    /// Whether `close()` ran.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.handle.is_closed()
    }

    #[napi(js_name = "toString")]
    pub fn describe(&self) -> String {
        self.handle.describe()
    }
}

karma_methods!(promise Engine);
karma_methods!(sync Engine);

#[napi]
impl Engine {
    /// `incrementSync` (or, with `decrement`, `decrementSync`) as a plain
    /// function bound to this engine, for karma.js's fast path (`fast.rs`).
    #[napi(js_name = "__bindSync", skip_typescript)]
    pub fn bind_sync<'env>(&self, env: &'env Env, decrement: bool) -> napi::Result<Unknown<'env>> {
        fast::bind(env, &self.handle, Change::of(decrement))
    }
}

crate::ingest::ingest_method!(Engine);

/// A pooled connection to a `karma` server. `url` is
/// `karma://host:port[?token=..&pool_size=..]`; without it the environment
/// is read (`KARMA_URL`, or `KARMA_HOST`/`KARMA_PORT`, plus `KARMA_TOKEN`,
/// `KARMA_POOL_SIZE`, `KARMA_*_TIMEOUT`; default 127.0.0.1:8080). Options
/// override both. Every method returns a Promise. `increment`, `decrement`
/// and `consume` are pipelined (many in flight per connection, up to
/// `poolSize` connections); the other calls take one of `poolSize` pooled
/// connections each and wait on the libuv thread pool (raise
/// `UV_THREADPOOL_SIZE` to run more than 4 at once).
///
/// A `karma+etcd://host:port[,...]/<cluster-name>` URL opens a cluster
/// instead (docs/cluster.md): each call goes to the shard leaders that own
/// its keys and answers as one server would; token, pool and timeouts come
/// from the options only. The constructor reads the shard count from etcd.
/// Every call of a cluster, the single-counter writes included, is pooled.
#[napi]
pub struct Client {
    handle: Arc<Handle>,
    /// The pipelined connections of `increment`, `decrement` and `consume`
    /// (`None` for a cluster, whose calls are all pooled).
    net: Option<Pipeline>,
    settler: Arc<Settler>,
    /// Set by `close()` at once (the handle closes later, on libuv).
    closing: AtomicBool,
}

#[napi]
impl Client {
    /// Configures the pool; connections open on first use.
    #[napi(constructor, ts_args_type = "url?: string | null, options?: ClientOptions")]
    pub fn new(env: Env, url: Unknown<'_>, options: Unknown<'_>) -> napi::Result<Client> {
        let made = crate::options::client(&url, &options).and_then(|(config, cluster_url)| match cluster_url {
            Some(url) => Ok((AnyClient::from_url(&url, config).map_err(Failure::Client)?, None)),
            None => {
                let net = Pipeline::new(config.clone()).map_err(Failure::Engine)?;
                Ok((AnyClient::Node(NetClient::new(config).map_err(Failure::Engine)?), Some(net)))
            }
        });
        let (client, net) = made.map_err(|f| errors::to_js(&env, f))?;
        Ok(Client {
            handle: Handle::new(Backend::Client(client)),
            net,
            settler: Settler::new(&env)?,
            closing: AtomicBool::new(false),
        })
    }

    /// Closes the connections, after the calls in flight; later calls
    /// reject. Idempotent.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<Job<()>> {
        self.closing.store(true, Ordering::Release);
        if let Some(net) = &self.net {
            net.close();
        }
        close_job(&self.handle)
    }

    /// Whether `close()` ran.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.closing.load(Ordering::Acquire) || self.handle.is_closed()
    }

    #[napi(js_name = "toString")]
    pub fn describe(&self) -> String {
        self.handle.describe()
    }
}

karma_methods!(client Client);
crate::ingest::ingest_method!(Client);

#[napi]
impl Client {
    /// `increment` (or, with `decrement`, `decrement`) with its options
    /// read by karma.js (see `fast.rs`).
    #[napi(js_name = "__change", skip_typescript)]
    pub fn change_plain<'env>(
        &self,
        env: &'env Env,
        decrement: bool,
        series: Unknown<'_>,
        key: Unknown<'_>,
        value: Unknown<'_>,
        bucket: Unknown<'_>,
    ) -> napi::Result<Unknown<'env>> {
        self.change(env, Change::of(decrement), series, key, value, bucket)
    }
}

impl Client {
    /// Sends a pipelined call; its Promise settles from the connection
    /// thread (argument errors and a closed client reject it too).
    fn send<'env>(&self, env: &'env Env, request: Arg<impl Request>) -> napi::Result<Unknown<'env>> {
        let (promise, pending) = self.settler.promise(env)?;
        match (request, &self.net) {
            _ if self.closed() => pending.settle::<()>(Err(Failure::Closed("Client"))),
            (Ok(request), Some(net)) => request(net, pending),
            (Ok(_), None) => pending.settle::<()>(Err(Failure::Type("a cluster client has no pipeline".into()))),
            (Err(failure), _) => pending.settle::<()>(Err(failure)),
        }
        Ok(promise)
    }

    /// `__change`: pipelined on a server, pooled on a cluster.
    fn change<'env>(
        &self,
        env: &'env Env,
        change: Change,
        series: Unknown<'_>,
        key: Unknown<'_>,
        value: Unknown<'_>,
        bucket: Unknown<'_>,
    ) -> napi::Result<Unknown<'env>> {
        let call = calls::ChangeCall::plain(change, series, key, value, bucket);
        match self.net {
            Some(_) => self.send(env, call.map(calls::pipelined::send)),
            None => self.pooled(env, call.map(calls::ChangeCall::pooled)),
        }
    }

    /// A pipelined method's pooled fallback (a cluster): `call` as a libuv
    /// task, as every other method of a `Client` runs.
    fn pooled<'env, T>(&self, env: &'env Env, call: Arg<impl calls::Prepared<T>>) -> napi::Result<Unknown<'env>>
    where
        T: napi::bindgen_prelude::ToNapiValue + napi::bindgen_prelude::TypeName + Send + 'static,
    {
        let call = call.map(|c| Box::new(c) as Call<T>);
        Ok(env.spawn(Job::new(&self.handle, call))?.promise_object().to_unknown())
    }
}

fn close_job(handle: &Arc<Handle>) -> AsyncTask<Job<()>> {
    let closing = Arc::clone(handle);
    AsyncTask::new(Job::detached(Box::new(move || closing.close())))
}
