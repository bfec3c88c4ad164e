//! `karma._karma`: the native half of the `karma` Python package (the
//! package itself, python/karma, re-exports it and defines the exceptions).
//!
//! * `Engine` and `Client` share every method through `_Api` (api.rs), which
//!   is written once over `karma_engine::api::Karma`;
//! * every call that can block (all engine and client work) runs with the
//!   GIL released;
//! * ints are u64 end to end; negatives and ints over 2**64-1 raise
//!   `karma.ValidationError` (also a `ValueError`).
//!
//! Fork safety: `karma/__init__.py` registers [`after_fork_in_child`] with
//! `os.register_at_fork`. It bumps a generation counter; an `Engine` opened
//! in an earlier generation refuses to run (its WAL writer thread was not
//! forked with it) and is leaked rather than dropped. A `Client` needs
//! nothing: its pool notices the new pid and opens new connections.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;

mod api;
mod backends;
mod conv;
mod errors;
mod ingest;

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Called in the child after `os.fork()`.
#[pyfunction]
#[pyo3(name = "_after_fork_in_child")]
fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The surface table's methods and their argument names, for the stub
/// check (`tests/test_stubs.py`): every row must be a method of `_Api`
/// taking at least those arguments.
macro_rules! surface_names {
    ($( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*) => {
        &[$((stringify!($m), &[$(stringify!($arg)),*])),*]
    };
}
const SURFACE: &[(&str, &[&str])] = karma_engine::for_each_method!(surface_names);

#[pymodule]
fn _karma(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<api::Api>()?;
    m.add_class::<backends::PyEngine>()?;
    m.add_class::<backends::PyClient>()?;
    m.add_class::<ingest::Ingest>()?;
    m.add_function(wrap_pyfunction!(after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_for_code, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_classes, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("_SURFACE", SURFACE.to_vec())?;
    Ok(())
}
