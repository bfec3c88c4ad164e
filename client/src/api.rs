//! [`Karma`] for [`Client`]: the network side of the API the engine shares.

use karma_engine::api::{Karma, KarmaError};
use karma_engine::{ErrorCode, Item, KeysPage, Quota, Range, Summary, TreeInfo, Window};
use serde_json::Value;

use crate::{Client, ClientError};

impl KarmaError for ClientError {
    fn error_code(&self) -> Option<ErrorCode> {
        self.code()
    }
}

impl Karma for Client {
    type Error = ClientError;

    fn increment(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64, ClientError> {
        Client::increment(self, series, key, bucket, value)
    }
    fn decrement(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64, ClientError> {
        Client::decrement(self, series, key, bucket, value)
    }
    fn consume(
        &self,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        limit: u64,
        window: Window,
    ) -> Result<Quota, ClientError> {
        Client::consume(self, series, key, bucket, value, limit, window)
    }
    fn sum(&self, series: &str, key: u64, range: Option<Range>) -> Result<u64, ClientError> {
        Client::sum(self, series, key, range)
    }
    fn batch_sum(&self, series: &str, keys: &[u64], range: Option<Range>) -> Result<Vec<u64>, ClientError> {
        Client::batch_sum(self, series, keys, range)
    }
    fn multi_sum(&self, items: &[(&str, u64)], range: Option<Range>) -> Result<Vec<u64>, ClientError> {
        Client::multi_sum(self, items, range)
    }
    fn points(&self, series: &str, key: u64, range: Range) -> Result<Vec<(u64, u64)>, ClientError> {
        Client::points(self, series, key, range)
    }
    fn batch_add(&self, series: &str, items: &[Item]) -> Result<u64, ClientError> {
        Client::batch_add(self, series, items)
    }
    fn batch_set(&self, series: &str, items: &[Item]) -> Result<usize, ClientError> {
        Client::batch_set(self, series, items)
    }
    fn reset(&self, series: &str, key: Option<u64>) -> Result<(), ClientError> {
        Client::reset(self, series, key)
    }
    fn batch_reset(&self, series: &str, keys: &[u64]) -> Result<(usize, usize), ClientError> {
        Client::batch_reset(self, series, keys)
    }
    fn delete_range(&self, series: &str, key: Option<u64>, range: Range) -> Result<(), ClientError> {
        Client::delete_range(self, series, key, range)
    }
    fn batch_delete_range(&self, series: &str, keys: &[u64], range: Range) -> Result<(usize, usize), ClientError> {
        Client::batch_delete_range(self, series, keys, range)
    }
    fn create_series(&self, series: &str) -> Result<(), ClientError> {
        Client::create_series(self, series)
    }
    fn drop_series(&self, series: &str) -> Result<(), ClientError> {
        Client::drop_series(self, series)
    }
    fn list_series(&self) -> Result<Vec<String>, ClientError> {
        Client::list_series(self)
    }
    fn info(&self, series: &str) -> Result<TreeInfo, ClientError> {
        Client::info(self, series)
    }
    fn keys(&self, series: &str, cursor: Option<u64>, limit: Option<usize>) -> Result<KeysPage, ClientError> {
        Client::keys(self, series, cursor, limit)
    }
    fn top(&self, series: &str, limit: Option<usize>, range: Option<Range>) -> Result<Vec<(u64, u64)>, ClientError> {
        Client::top(self, series, limit, range)
    }
    fn summary(&self, series: &str, range: Option<Range>) -> Result<Summary, ClientError> {
        Client::summary(self, series, range)
    }
    fn delete_before(&self, series: &str, before: u64) -> Result<(), ClientError> {
        Client::delete_before(self, series, before)
    }
    fn compact(&self, series: Option<&str>) -> Result<(), ClientError> {
        Client::compact(self, series)
    }
    fn ping(&self) -> Result<String, ClientError> {
        Client::ping(self)
    }
    fn health(&self) -> Result<Value, ClientError> {
        Client::health(self)
    }
    fn stats(&self) -> Result<Value, ClientError> {
        Client::stats(self)
    }
    fn metrics(&self) -> Result<String, ClientError> {
        Client::metrics(self)
    }
}
