//! `karma/karma.so`: the native half of the `karma-counters` gem (the Ruby
//! half, ruby/lib, gives it keyword arguments, buckets and error classes).
//!
//! * `Karma::Native` wraps either an in-process [`karma_engine::Engine`] or a
//!   pooled [`karma_engine::client::Client`]; `Karma::Engine` and
//!   `Karma::Client` are its Ruby subclasses (native.rs);
//! * every call that can block runs without the GVL (gvl.rs);
//! * Ruby values cross as JSON values (json.rs); server and engine errors
//!   become the `Karma::*Error` classes of lib/karma/errors.rb (errors.rs).

use magnus::{Error, Ruby};

mod errors;
mod fork;
mod gvl;
mod json;
mod native;
mod options;

#[magnus::init(name = "karma")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    fork::install();
    native::define(ruby)
}
