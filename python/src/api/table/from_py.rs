//! An argument kind of the method table from Python: the `conv` function
//! of each kind under the kind's name (each takes the argument's name as
//! its error label), and [`pass!`], how the converted value is handed to
//! the `Karma` method. `series`/`opt_series` are extracted by pyo3 itself.

// Only the kinds of generated rows: `uint`, `opt_bucket` and `window`
// appear only in rows written by hand (an unused alias would not compile
// under -D warnings); a row using one needs its alias here.
pub(super) use crate::conv::{
    bucket, items, keys, opt_limit, opt_range, opt_u64 as opt_key, opt_u64 as opt_uint, range, series_keys,
    u64_arg as key,
};

/// The value of a required kind as the `Karma` method takes it: the
/// arrays by reference (series keys as `&str` pairs), the rest by value.
macro_rules! pass {
    (keys, $a:ident) => {
        &$a
    };
    (items, $a:ident) => {
        &$a
    };
    (series_keys, $a:ident) => {
        &$a.iter().map(|(s, key)| (s.as_str(), *key)).collect::<Vec<(&str, u64)>>()
    };
    ($kind:ident, $a:ident) => {
        $a
    };
}
pub(super) use pass;
