//! The methods `Engine` and `Client` share, each written once over
//! [`karma_engine::api::Karma`] (which both the engine and the network
//! client implement): a function per method converts the JavaScript
//! arguments and returns the call, which runs later on whichever thread
//! (`api.rs` decides: the JavaScript thread for `...Sync`, libuv otherwise).

use karma_engine::api::{Change, Karma};
use karma_engine::{Range, Window};
use napi::bindgen_prelude::BigInt;
use napi::bindgen_prelude::Object;
use napi::Unknown;
use napi_derive::napi;
use serde_json::{Map, Value};

use crate::conv::{self, Arg};
use crate::errors::Failure;
use crate::task::{Backend, Json};

/// A prepared call of result `T`.
pub trait Prepared<T>: FnOnce(&Backend) -> Result<T, Failure> + Send + 'static {}
impl<T, F: FnOnce(&Backend) -> Result<T, Failure> + Send + 'static> Prepared<T> for F {}

/// The call running `$body` with `$k` bound to the engine or the client
/// (both `Karma`); either's error becomes a [`Failure`].
macro_rules! both {
    (|$k:ident| $body:expr) => {
        move |backend: &Backend| match backend {
            Backend::Engine($k) => $body.map_err(Failure::from),
            Backend::Client($k) => $body.map_err(Failure::from),
        }
    };
}

/// One `(bucket, value)` point of a counter.
#[napi(object)]
pub struct Point {
    /// The day, `YYYYMMDD`.
    pub bucket: i64,
    pub value: BigInt,
}

/// A key and its value (`top`).
#[napi(object)]
pub struct KeyValue {
    pub key: BigInt,
    pub value: BigInt,
}

/// A key and its total over all buckets (`keys`).
#[napi(object)]
pub struct KeyTotal {
    pub key: BigInt,
    pub total: BigInt,
}

/// One page of `keys`.
#[napi(object)]
pub struct KeysPage {
    pub tree: String,
    pub limit: i64,
    /// The cursor this page started after, `null` for the first page.
    pub cursor: Option<BigInt>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<BigInt>,
    pub keys: Vec<KeyTotal>,
}

/// `info`.
#[napi(object)]
pub struct SeriesInfo {
    pub tree: String,
    pub key_count: i64,
    pub bucket_count: i64,
    pub total: BigInt,
}

/// A range of buckets as results give it back.
#[napi(object)]
pub struct BucketRange {
    pub from: i64,
    pub to: i64,
}

/// `summary`.
#[napi(object)]
pub struct SeriesSummary {
    pub tree: String,
    /// The range asked for, `null` for all time.
    pub range: Option<BucketRange>,
    pub total: BigInt,
    pub active_keys: i64,
    pub bucket_count: i64,
}

/// `batchReset`.
#[napi(object)]
pub struct ResetCounts {
    pub reset: i64,
    pub missing: i64,
}

/// `batchDeleteRange`.
#[napi(object)]
pub struct DeleteCounts {
    pub deleted: i64,
    pub missing: i64,
}

fn big(v: u64) -> BigInt {
    BigInt::from(v)
}

fn bigs(v: Vec<u64>) -> Vec<BigInt> {
    v.into_iter().map(BigInt::from).collect()
}

fn points_of(v: Vec<(u64, u64)>) -> Vec<Point> {
    v.into_iter().map(|(bucket, value)| Point { bucket: bucket as i64, value: big(value) }).collect()
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `{ value, bucket }` of `increment`/`decrement`.
fn change_options(options: &Unknown<'_>) -> Arg<(u64, Option<u64>)> {
    let o = conv::options(Some(options), "options", &["value", "bucket"])?;
    change_values(conv::option(o.as_ref(), "value")?.as_ref(), conv::option(o.as_ref(), "bucket")?.as_ref())
}

/// The options' `value` (default 1) and `bucket` (default today), given
/// as values (`None`, `undefined` or `null` when absent).
pub fn change_values(value: Option<&Unknown<'_>>, bucket: Option<&Unknown<'_>>) -> Arg<(u64, Option<u64>)> {
    let value = conv::opt_u64(value, "value")?.unwrap_or(1);
    let bucket = conv::opt_bucket(bucket, "bucket")?;
    Ok((value, bucket))
}

/// One checked `increment` or `decrement`, ready to run pooled
/// ([`ChangeCall::pooled`]) or pipelined ([`pipelined::send`]).
pub struct ChangeCall {
    change: Change,
    series: String,
    key: u64,
    value: u64,
    bucket: Option<u64>,
}

impl ChangeCall {
    /// `(series, key, options)` as the methods take them.
    fn with_options(change: Change, series: Unknown<'_>, key: Unknown<'_>, options: Unknown<'_>) -> Arg<ChangeCall> {
        let series = conv::string(&series, "series")?;
        let key = conv::u64_arg(&key, "key")?;
        let (value, bucket) = change_options(&options)?;
        Ok(ChangeCall { change, series, key, value, bucket })
    }

    /// `series`, `key`, and the options' `value` and `bucket` already read
    /// (karma.js's fast path, see `fast.rs`).
    pub fn plain(
        change: Change,
        series: Unknown<'_>,
        key: Unknown<'_>,
        value: Unknown<'_>,
        bucket: Unknown<'_>,
    ) -> Arg<ChangeCall> {
        let series = conv::string(&series, "series")?;
        let key = conv::u64_arg(&key, "key")?;
        let (value, bucket) = change_values(Some(&value), Some(&bucket))?;
        Ok(ChangeCall { change, series, key, value, bucket })
    }

    /// The call on the engine or on a pooled connection.
    pub fn pooled(self) -> impl Prepared<BigInt> {
        let ChangeCall { change, series, key, value, bucket } = self;
        both!(|k| change.apply(k, &series, key, bucket, value).map(big))
    }
}

pub fn increment(series: Unknown<'_>, key: Unknown<'_>, options: Unknown<'_>) -> Arg<impl Prepared<BigInt>> {
    ChangeCall::with_options(Change::Increment, series, key, options).map(ChangeCall::pooled)
}

pub fn decrement(series: Unknown<'_>, key: Unknown<'_>, options: Unknown<'_>) -> Arg<impl Prepared<BigInt>> {
    ChangeCall::with_options(Change::Decrement, series, key, options).map(ChangeCall::pooled)
}

/// `consume`'s answer (the protocol's `counter.consume` response).
#[napi(object)]
pub struct Quota {
    /// Whether `value` was added.
    pub allowed: bool,
    /// The window's total after this request (including `value` when allowed).
    pub used: BigInt,
    /// `limit - used`, or 0 once the window is past the limit.
    pub remaining: BigInt,
    pub limit: BigInt,
    /// The first bucket of the window, `YYYYMMDD`.
    pub range_from: i64,
    /// The last bucket of the window, `YYYYMMDD`.
    pub range_to: i64,
}

/// `{ window, days }` of `consume`: today (`'day'`, the default), the last
/// `days` days (`'days'`, implied by `days`), or the calendar month; a bad
/// combination is a `RangeError` with the protocol's message.
fn window(o: Option<&Object<'_>>) -> Arg<Window> {
    let name = conv::opt_string(conv::option(o, "window")?.as_ref(), "window")?;
    let days = conv::opt_u64(conv::option(o, "days")?.as_ref(), "days")?;
    Window::parse(name.as_deref(), days).map_err(|e| Failure::Range(e.message().to_string()))
}

/// `consume`'s arguments, checked.
struct ConsumeArgs {
    series: String,
    key: u64,
    bucket: Option<u64>,
    value: u64,
    limit: u64,
    window: Window,
}

fn consume_args(series: Unknown<'_>, key: Unknown<'_>, limit: Unknown<'_>, options: Unknown<'_>) -> Arg<ConsumeArgs> {
    let series = conv::string(&series, "series")?;
    let key = conv::u64_arg(&key, "key")?;
    let limit = conv::u64_arg(&limit, "limit")?;
    let o = conv::options(Some(&options), "options", &["value", "bucket", "window", "days"])?;
    let value = conv::opt_u64(conv::option(o.as_ref(), "value")?.as_ref(), "value")?.unwrap_or(1);
    let bucket = conv::opt_bucket(conv::option(o.as_ref(), "bucket")?.as_ref(), "bucket")?;
    let window = window(o.as_ref())?;
    Ok(ConsumeArgs { series, key, bucket, value, limit, window })
}

fn quota_of(q: karma_engine::Quota) -> Quota {
    Quota {
        allowed: q.allowed,
        used: big(q.used),
        remaining: big(q.remaining),
        limit: big(q.limit),
        range_from: q.window.from as i64,
        range_to: q.window.to as i64,
    }
}

pub fn consume(
    series: Unknown<'_>,
    key: Unknown<'_>,
    limit: Unknown<'_>,
    options: Unknown<'_>,
) -> Arg<impl Prepared<Quota>> {
    let a = consume_args(series, key, limit, options)?;
    Ok(both!(|k| Karma::consume(k, &a.series, a.key, a.bucket, a.value, a.limit, a.window).map(quota_of)))
}

/// `(series, key, range)` of `sum`.
fn sum_args(series: Unknown<'_>, key: Unknown<'_>, range: Unknown<'_>) -> Arg<(String, u64, Option<Range>)> {
    let series = conv::string(&series, "series")?;
    let key = conv::u64_arg(&key, "key")?;
    let range = conv::opt_range(Some(&range), "range")?;
    Ok((series, key, range))
}

pub fn sum(series: Unknown<'_>, key: Unknown<'_>, range: Unknown<'_>) -> Arg<impl Prepared<BigInt>> {
    let (series, key, range) = sum_args(series, key, range)?;
    Ok(both!(|k| Karma::sum(k, &series, key, range).map(big)))
}

pub fn batch_sum(series: Unknown<'_>, keys: Unknown<'_>, range: Unknown<'_>) -> Arg<impl Prepared<Vec<BigInt>>> {
    let series = conv::string(&series, "series")?;
    let keys = conv::keys(&keys, "keys")?;
    let range = conv::opt_range(Some(&range), "range")?;
    Ok(both!(|k| Karma::batch_sum(k, &series, &keys, range).map(bigs)))
}

pub fn multi_sum(items: Unknown<'_>, range: Unknown<'_>) -> Arg<impl Prepared<Vec<BigInt>>> {
    let owned = conv::series_keys(&items, "items")?;
    let range = conv::opt_range(Some(&range), "range")?;
    Ok(both!(|k| {
        let items: Vec<(&str, u64)> = owned.iter().map(|(s, key)| (s.as_str(), *key)).collect();
        Karma::multi_sum(k, &items, range).map(bigs)
    }))
}

pub fn points(series: Unknown<'_>, key: Unknown<'_>, range: Unknown<'_>) -> Arg<impl Prepared<Vec<Point>>> {
    let series = conv::string(&series, "series")?;
    let key = conv::u64_arg(&key, "key")?;
    let range = conv::range(&range, "range")?;
    Ok(both!(|k| Karma::points(k, &series, key, range).map(points_of)))
}

pub fn series(series: Unknown<'_>, key: Unknown<'_>, range: Unknown<'_>) -> Arg<impl Prepared<Vec<Point>>> {
    points(series, key, range)
}

pub fn batch_add(series: Unknown<'_>, items: Unknown<'_>) -> Arg<impl Prepared<BigInt>> {
    let series = conv::string(&series, "series")?;
    let items = conv::items(&items, "items")?;
    Ok(both!(|k| Karma::batch_add(k, &series, &items).map(big)))
}

pub fn batch_set(series: Unknown<'_>, items: Unknown<'_>) -> Arg<impl Prepared<i64>> {
    let series = conv::string(&series, "series")?;
    let items = conv::items(&items, "items")?;
    Ok(both!(|k| Karma::batch_set(k, &series, &items).map(count)))
}

pub fn reset(series: Unknown<'_>, key: Unknown<'_>) -> Arg<impl Prepared<()>> {
    let series = conv::string(&series, "series")?;
    let key = conv::opt_u64(Some(&key), "key")?;
    Ok(both!(|k| Karma::reset(k, &series, key)))
}

pub fn batch_reset(series: Unknown<'_>, keys: Unknown<'_>) -> Arg<impl Prepared<ResetCounts>> {
    let series = conv::string(&series, "series")?;
    let keys = conv::keys(&keys, "keys")?;
    Ok(both!(|k| Karma::batch_reset(k, &series, &keys)
        .map(|(reset, missing)| ResetCounts { reset: count(reset), missing: count(missing) })))
}

pub fn delete_range(series: Unknown<'_>, range: Unknown<'_>, key: Unknown<'_>) -> Arg<impl Prepared<()>> {
    let series = conv::string(&series, "series")?;
    let range = conv::range(&range, "range")?;
    let key = conv::opt_u64(Some(&key), "key")?;
    Ok(both!(|k| Karma::delete_range(k, &series, key, range)))
}

pub fn batch_delete_range(
    series: Unknown<'_>,
    keys: Unknown<'_>,
    range: Unknown<'_>,
) -> Arg<impl Prepared<DeleteCounts>> {
    let series = conv::string(&series, "series")?;
    let keys = conv::keys(&keys, "keys")?;
    let range = conv::range(&range, "range")?;
    Ok(both!(|k| Karma::batch_delete_range(k, &series, &keys, range)
        .map(|(deleted, missing)| DeleteCounts { deleted: count(deleted), missing: count(missing) })))
}

pub fn create_series(series: Unknown<'_>) -> Arg<impl Prepared<()>> {
    let series = conv::string(&series, "series")?;
    Ok(both!(|k| Karma::create_series(k, &series)))
}

pub fn drop_series(series: Unknown<'_>) -> Arg<impl Prepared<()>> {
    let series = conv::string(&series, "series")?;
    Ok(both!(|k| Karma::drop_series(k, &series)))
}

pub fn list_series() -> Arg<impl Prepared<Vec<String>>> {
    Ok(both!(|k| Karma::list_series(k)))
}

pub fn info(series: Unknown<'_>) -> Arg<impl Prepared<SeriesInfo>> {
    let series = conv::string(&series, "series")?;
    Ok(both!(|k| Karma::info(k, &series).map(|t| SeriesInfo {
        tree: t.tree,
        key_count: count(t.key_count),
        bucket_count: count(t.bucket_count),
        total: big(t.total),
    })))
}

pub fn keys(series: Unknown<'_>, options: Unknown<'_>) -> Arg<impl Prepared<KeysPage>> {
    let series = conv::string(&series, "series")?;
    let o = conv::options(Some(&options), "options", &["cursor", "limit"])?;
    let cursor = conv::opt_u64(conv::option(o.as_ref(), "cursor")?.as_ref(), "cursor")?;
    let limit = conv::opt_limit(conv::option(o.as_ref(), "limit")?.as_ref(), "limit")?;
    Ok(both!(|k| Karma::keys(k, &series, cursor, limit).map(|p| KeysPage {
        tree: p.tree,
        limit: count(p.limit),
        cursor: p.cursor.map(big),
        next_cursor: p.next_cursor.map(big),
        keys: p.keys.into_iter().map(|(key, total)| KeyTotal { key: big(key), total: big(total) }).collect(),
    })))
}

pub fn top(series: Unknown<'_>, options: Unknown<'_>) -> Arg<impl Prepared<Vec<KeyValue>>> {
    let series = conv::string(&series, "series")?;
    let o = conv::options(Some(&options), "options", &["limit", "range"])?;
    let limit = conv::opt_limit(conv::option(o.as_ref(), "limit")?.as_ref(), "limit")?;
    let range = conv::opt_range(conv::option(o.as_ref(), "range")?.as_ref(), "range")?;
    Ok(both!(|k| Karma::top(k, &series, limit, range)
        .map(|items| items.into_iter().map(|(key, value)| KeyValue { key: big(key), value: big(value) }).collect())))
}

pub fn summary(series: Unknown<'_>, range: Unknown<'_>) -> Arg<impl Prepared<SeriesSummary>> {
    let series = conv::string(&series, "series")?;
    let range = conv::opt_range(Some(&range), "range")?;
    Ok(both!(|k| Karma::summary(k, &series, range).map(|s| SeriesSummary {
        tree: s.tree,
        range: s.range.map(|(from, to)| BucketRange { from: from as i64, to: to as i64 }),
        total: big(s.total),
        active_keys: count(s.active_keys),
        bucket_count: count(s.bucket_count),
    })))
}

pub fn delete_before(series: Unknown<'_>, before: Unknown<'_>) -> Arg<impl Prepared<()>> {
    let series = conv::string(&series, "series")?;
    let before = conv::bucket(&before, "before")?;
    Ok(both!(|k| Karma::delete_before(k, &series, before)))
}

pub fn compact(series: Unknown<'_>) -> Arg<impl Prepared<()>> {
    let series = conv::opt_string(Some(&series), "series")?;
    Ok(both!(|k| Karma::compact(k, series.as_deref())))
}

pub fn snapshot_all() -> Arg<impl Prepared<()>> {
    Ok(both!(|k| Karma::snapshot_all(k)))
}

pub fn ping() -> Arg<impl Prepared<String>> {
    Ok(both!(|k| Karma::ping(k)))
}

pub fn health() -> Arg<impl Prepared<Json>> {
    Ok(both!(|k| Karma::health(k).map(Json)))
}

pub fn stats() -> Arg<impl Prepared<Json>> {
    Ok(both!(|k| Karma::stats(k).map(Json)))
}

pub fn metrics() -> Arg<impl Prepared<String>> {
    Ok(both!(|k| Karma::metrics(k)))
}

pub fn idempotency_prune(before: Unknown<'_>, options: Unknown<'_>) -> Arg<impl Prepared<Json>> {
    let mut fields = Map::new();
    fields.insert("before".into(), conv::before_time(&before)?);
    let o = conv::options(Some(&options), "options", &["limit"])?;
    if let Some(limit) = conv::opt_u64(conv::option(o.as_ref(), "limit")?.as_ref(), "limit")? {
        fields.insert("limit".into(), Value::from(limit));
    }
    Ok(move |backend: &Backend| {
        let mut v = request_value(backend, "idempotency.prune", fields)?;
        Ok(Json(v.get_mut("deleted").map(Value::take).unwrap_or(v)))
    })
}

pub fn request(op: Unknown<'_>, fields: Unknown<'_>) -> Arg<impl Prepared<Json>> {
    let op = conv::string(&op, "op")?;
    let fields = match conv::to_json(&fields, "fields")? {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        _ => return Err(Failure::Type("fields must be an object".into())),
    };
    Ok(move |backend: &Backend| request_value(backend, &op, fields).map(Json))
}

pub fn request_line(line: Unknown<'_>) -> Arg<impl Prepared<Json>> {
    let line = conv::string(&line, "line")?;
    Ok(move |backend: &Backend| {
        let line = line.trim_end_matches(['\r', '\n']);
        match backend {
            Backend::Engine(e) => e.request_line_value(line.as_bytes()).map(Json).map_err(Failure::from),
            Backend::Client(c) => c.request_line_value(line).map(Json).map_err(Failure::from),
        }
    })
}

/// One v2 request (`{"v":2,"op":op, ...fields}`): its `response` value.
pub(crate) fn request_value(backend: &Backend, op: &str, fields: Map<String, Value>) -> Result<Value, Failure> {
    match backend {
        Backend::Engine(e) => e.request_value(op, fields).map_err(Failure::from),
        Backend::Client(c) => c.request_value(op, fields).map_err(Failure::from),
    }
}

/// The pipelined network variants of the single-counter writes (a
/// `Client`'s hot path, see `settle.rs`): each sends its request on the
/// client's [`Pipeline`] and settles its Promise from the connection thread.
pub mod pipelined {
    use karma_client::{ClientError, Pipeline};
    use karma_engine::api::Change;
    use napi::Unknown;

    use super::{big, consume_args, quota_of, ChangeCall};
    use crate::conv::Arg;
    use crate::errors::Failure;
    use crate::settle::Pending;

    /// A checked call, ready to send.
    pub trait Request: FnOnce(&Pipeline, Pending) + 'static {}
    impl<F: FnOnce(&Pipeline, Pending) + 'static> Request for F {}

    /// Settles `pending` with `answer` made JavaScript by `convert`.
    fn to<T, U>(pending: Pending, convert: fn(T) -> U) -> impl FnOnce(Result<T, ClientError>) + Send
    where
        U: napi::bindgen_prelude::ToNapiValue + Send + 'static,
    {
        move |answer| pending.settle(answer.map(convert).map_err(Failure::Client))
    }

    pub fn increment(series: Unknown<'_>, key: Unknown<'_>, options: Unknown<'_>) -> Arg<impl Request> {
        ChangeCall::with_options(Change::Increment, series, key, options).map(send)
    }

    pub fn decrement(series: Unknown<'_>, key: Unknown<'_>, options: Unknown<'_>) -> Arg<impl Request> {
        ChangeCall::with_options(Change::Decrement, series, key, options).map(send)
    }

    /// The call on the pipeline, settling its Promise with the answer.
    pub fn send(call: ChangeCall) -> impl Request {
        let ChangeCall { change, series, key, value, bucket } = call;
        move |p: &Pipeline, done| p.change(change, &series, key, bucket, value, to(done, big))
    }

    pub fn consume(
        series: Unknown<'_>,
        key: Unknown<'_>,
        limit: Unknown<'_>,
        options: Unknown<'_>,
    ) -> Arg<impl Request> {
        let a = consume_args(series, key, limit, options)?;
        Ok(move |p: &Pipeline, done| {
            p.consume(&a.series, a.key, a.bucket, a.value, a.limit, a.window, to(done, quota_of))
        })
    }
}
