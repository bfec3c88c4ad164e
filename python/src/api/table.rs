//! The `_Api` methods whose Python signature follows mechanically from the
//! engine's method table ([`karma_engine::for_each_method!`]): arguments in
//! table order, `opt_*` kinds as `name=None`, every other kind required.
//!
//! Per row, [`py_method!`] builds the `#[pyo3(signature = (...))]` tuple and
//! the parameter list with a tt-muncher (an attribute can't contain a macro
//! call, and `#[pymethods]` does not expand macros in its impl), converts
//! each argument with the `conv` function of its kind (the argument's name
//! as the error label), calls the method through `both!` and converts the
//! result with the [`to_py`] function named after its kind. Each row becomes
//! its own `#[pymethods] impl Api` (pyo3's `multiple-pymethods`).
//!
//! Rows whose Python signature or answer differs from the table are written
//! by hand in `api.rs` and skipped here by name: `increment`/`decrement`
//! (value before bucket, value defaulting to 1), `consume` (limit first,
//! then value/bucket/window/days keywords), `delete_range` (range before
//! `key=None`), and `batch_reset`/`batch_delete_range` (their dicts name the
//! first count differently).

use karma_engine::api::Karma;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;

use super::{Api, Backend};
use crate::errors::Failure;

mod from_py;
mod to_py;

/// The callback of `for_each_method!`: one [`py_method!`] per row.
macro_rules! py_methods {
    ($( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*) => {
        $( py_method! { [$(#[doc = $doc])*] $m ($($arg: $kind),*) -> $ret } )*
    };
}

/// One row into one pyo3 method. The munching state is
/// `[docs] name ret [signature] [parameters] [conversions] [call arguments]`.
macro_rules! py_method {
    // ------------------------------------------------ written by hand in api.rs
    ([$($doc:tt)*] increment $($rest:tt)*) => {};
    ([$($doc:tt)*] decrement $($rest:tt)*) => {};
    ([$($doc:tt)*] consume $($rest:tt)*) => {};
    ([$($doc:tt)*] delete_range $($rest:tt)*) => {};
    ([$($doc:tt)*] batch_reset $($rest:tt)*) => {};
    ([$($doc:tt)*] batch_delete_range $($rest:tt)*) => {};

    // ------------------------------------------------------------ a row
    ([$($doc:tt)*] $m:ident ($($arg:ident: $kind:ident),*) -> $ret:ident) => {
        py_method! { @arg [$($doc)*] $m $ret [] [] [] [] $($arg: $kind,)* }
    };

    // ------------------------------------------------------------ arguments
    // A series name: extracted by pyo3 (its message names the argument).
    (@arg $doc:tt $m:ident $ret:ident [$($sig:tt)*] [$($param:tt)*] $conv:tt [$($call:tt)*]
        $a:ident: series, $($rest:tt)*) => {
        py_method! { @arg $doc $m $ret [$($sig)* $a,] [$($param)* $a: PyBackedStr,] $conv [$($call)* &$a,] $($rest)* }
    };
    (@arg $doc:tt $m:ident $ret:ident [$($sig:tt)*] [$($param:tt)*] $conv:tt [$($call:tt)*]
        $a:ident: opt_series, $($rest:tt)*) => {
        py_method! { @arg $doc $m $ret [$($sig)* $a=None,] [$($param)* $a: Option<PyBackedStr>,] $conv
            [$($call)* $a.as_deref(),] $($rest)* }
    };
    // Optional kinds: `name=None`, converted by `conv`.
    (@arg $doc:tt $m:ident $ret:ident $sig:tt $param:tt $conv:tt $call:tt $a:ident: opt_key, $($rest:tt)*) => {
        py_method! { @opt $doc $m $ret $sig $param $conv $call $a: opt_key, $($rest)* }
    };
    (@arg $doc:tt $m:ident $ret:ident $sig:tt $param:tt $conv:tt $call:tt $a:ident: opt_uint, $($rest:tt)*) => {
        py_method! { @opt $doc $m $ret $sig $param $conv $call $a: opt_uint, $($rest)* }
    };
    (@arg $doc:tt $m:ident $ret:ident $sig:tt $param:tt $conv:tt $call:tt $a:ident: opt_bucket, $($rest:tt)*) => {
        py_method! { @opt $doc $m $ret $sig $param $conv $call $a: opt_bucket, $($rest)* }
    };
    (@arg $doc:tt $m:ident $ret:ident $sig:tt $param:tt $conv:tt $call:tt $a:ident: opt_limit, $($rest:tt)*) => {
        py_method! { @opt $doc $m $ret $sig $param $conv $call $a: opt_limit, $($rest)* }
    };
    (@arg $doc:tt $m:ident $ret:ident $sig:tt $param:tt $conv:tt $call:tt $a:ident: opt_range, $($rest:tt)*) => {
        py_method! { @opt $doc $m $ret $sig $param $conv $call $a: opt_range, $($rest)* }
    };
    // Every other kind: required, converted by `conv`.
    (@arg $doc:tt $m:ident $ret:ident [$($sig:tt)*] [$($param:tt)*] [$($conv:tt)*] [$($call:tt)*]
        $a:ident: $kind:ident, $($rest:tt)*) => {
        py_method! { @arg $doc $m $ret [$($sig)* $a,] [$($param)* $a: &Bound<'py, PyAny>,]
            [$($conv)* let $a = from_py::$kind($a, stringify!($a))?;] [$($call)* from_py::pass!($kind, $a),]
            $($rest)* }
    };
    (@opt $doc:tt $m:ident $ret:ident [$($sig:tt)*] [$($param:tt)*] [$($conv:tt)*] [$($call:tt)*]
        $a:ident: $kind:ident, $($rest:tt)*) => {
        py_method! { @arg $doc $m $ret [$($sig)* $a=None,] [$($param)* $a: Option<&Bound<'py, PyAny>>,]
            [$($conv)* let $a = from_py::$kind($a, stringify!($a))?;] [$($call)* $a,] $($rest)* }
    };

    // ------------------------------------------------------------ the method
    (@arg [$($doc:tt)*] $m:ident $ret:ident [$($sig:tt)*] [$($param:tt)*] [$($conv:tt)*] [$($call:tt)*]) => {
        #[pymethods]
        impl Api {
            $($doc)*
            #[pyo3(signature = ($($sig)*))]
            // pub(crate): the hand-written `series` alias calls `points`.
            pub(crate) fn $m<'py>(&self, py: Python<'py>, $($param)*) -> PyResult<Bound<'py, PyAny>> {
                $($conv)*
                let answer = both!(self, py, |k| Karma::$m(k, $($call)*))?;
                to_py::$ret(py, answer)
            }
        }
    };
}

karma_engine::for_each_method!(py_methods);
