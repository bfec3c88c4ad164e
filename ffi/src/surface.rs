//! The C functions of the API surface, generated from the engine's table
//! ([`karma_engine::for_each_method!`]): for each method `m`, one generic
//! body `m::call` over [`Handle`] (so over [`Karma`], which both the engine
//! and the client implement), and the two exported functions
//! `karma_engine_m` and `karma_client_m` that forward to it.
//!
//! Each argument *kind* of the table becomes C parameters and a checked
//! conversion (`@arg` rules below), each result kind an out-parameter
//! (`@ret` rules); a new method needs no code here, a new kind one rule.
//!
//! cbindgen does not expand macros, so the header is produced from
//! [`SIGNATURES`], the C signature and documentation of every generated
//! function, recorded by the same expansion that generates it
//! ([`header_source`]).

use std::ffi::c_char;

use karma_engine::api::Karma;

use crate::args::{self, KarmaItem, KarmaQuota, KarmaRange, KarmaSeriesKey, Out};
use crate::client::KarmaClient;
use crate::engine::KarmaEngine;
use crate::last_error::{guard, Failure};
use crate::ops::Handle;
use crate::results::{IntoC, KarmaCounts, KarmaInfo, KarmaKeysPage, KarmaPairs, KarmaStrings, KarmaSummary};
use crate::status::KarmaStatus;

/// A generated method's C parameters (after the handle) and documentation.
pub struct Signature {
    /// The table's name for it: the functions are `karma_engine_<method>`
    /// and `karma_client_<method>`.
    pub method: &'static str,
    /// The doc comment lines, each with its leading space.
    pub docs: &'static [&'static str],
    /// The Rust parameter list after the handle, as the tokens print.
    pub params: &'static str,
}

/// The `# Safety` paragraph of every generated function.
macro_rules! safety_doc {
    () => {
        " The handle must be NULL or live (open, not freed); string arguments NULL \
         or NUL-terminated; arrays readable for their count (NULL allowed when it \
         is 0); out-parameters NULL or writable."
    };
}

/// Expands one table row into the generic body and the two exported
/// functions. The state threaded through the rules is
/// `[row] [idents] [params] [forwarded names] [notes] [conversions] [call args]`,
/// where `idents` are the local names every rule must share (macro hygiene
/// keeps names made by different rules apart).
macro_rules! c_method {
    // ------------------------------------------------------------ arguments
    (@arg [$row:tt [$h:ident $len:ident $o:ident $r:ident] $($acc:tt)*] $a:ident: series, $($rest:tt)*) => {
        c_method! { @push [$row [$h $len $o $r] $($acc)*]
            { $a: *const c_char, } { $a, }
            { concat!(" `", stringify!($a), "`: a series name (NUL-terminated UTF-8)."), }
            {
                // SAFETY: NULL or a live string (the caller's contract).
                let $a = unsafe { args::string($a, stringify!($a))? };
            }
            { $a, } $($rest)* }
    };
    (@arg [$row:tt [$h:ident $len:ident $o:ident $r:ident] $($acc:tt)*] $a:ident: opt_series, $($rest:tt)*) => {
        c_method! { @push [$row [$h $len $o $r] $($acc)*]
            { $a: *const c_char, } { $a, }
            { concat!(" `", stringify!($a), "`: a series name, or NULL for every series."), }
            {
                // SAFETY: NULL or a live string (the caller's contract).
                let $a = unsafe { args::opt_string($a, stringify!($a))? };
            }
            { $a, } $($rest)* }
    };
    (@arg $state:tt $a:ident: key, $($rest:tt)*) => {
        c_method! { @u64 $state $a { concat!(" `", stringify!($a), "`: the counter's key."), } $($rest)* }
    };
    (@arg $state:tt $a:ident: uint, $($rest:tt)*) => {
        c_method! { @u64 $state $a {} $($rest)* }
    };
    (@arg $state:tt $a:ident: bucket, $($rest:tt)*) => {
        c_method! { @u64 $state $a { concat!(" `", stringify!($a), "`: a day bucket, YYYYMMDD."), } $($rest)* }
    };
    // A `uint64_t` passed as is.
    (@u64 [$row:tt $ids:tt $($acc:tt)*] $a:ident { $($note:tt)* } $($rest:tt)*) => {
        c_method! { @push [$row $ids $($acc)*] { $a: u64, } { $a, } { $($note)* } {} { $a, } $($rest)* }
    };
    (@arg [$row:tt $ids:tt $($acc:tt)*] $a:ident: opt_bucket, $($rest:tt)*) => {
        c_method! { @push [$row $ids $($acc)*]
            { $a: u64, } { $a, }
            { concat!(" `", stringify!($a), "`: the day, YYYYMMDD; 0 means today (UTC)."), }
            { let $a = args::bucket($a); }
            { $a, } $($rest)* }
    };
    (@arg $state:tt $a:ident: opt_key, $($rest:tt)*) => {
        c_method! { @opt_u64 $state $a "points to the counter's key, or NULL for every counter." $($rest)* }
    };
    (@arg $state:tt $a:ident: opt_uint, $($rest:tt)*) => {
        c_method! { @opt_u64 $state $a "points to the value, or NULL for none." $($rest)* }
    };
    // A `const uint64_t *` where NULL means none.
    (@opt_u64 [$row:tt $ids:tt $($acc:tt)*] $a:ident $note:literal $($rest:tt)*) => {
        c_method! { @push [$row $ids $($acc)*]
            { $a: *const u64, } { $a, }
            { concat!(" `", stringify!($a), "`: ", $note), }
            {
                // SAFETY: NULL or readable (the caller's contract).
                let $a = unsafe { args::opt_u64($a, stringify!($a))? };
            }
            { $a, } $($rest)* }
    };
    (@arg [$row:tt $ids:tt $($acc:tt)*] $a:ident: opt_limit, $($rest:tt)*) => {
        c_method! { @push [$row $ids $($acc)*]
            { $a: usize, } { $a, } { concat!(" `", stringify!($a), "`: the most to return; 0 means the default."), }
            { let $a = args::limit($a); }
            { $a, } $($rest)* }
    };
    (@arg [$row:tt $ids:tt $($acc:tt)*] $a:ident: window, $($rest:tt)*) => {
        c_method! { @push [$row $ids $($acc)*]
            { $a: *const c_char, days: u64, } { $a, days, }
            {
                concat!(" `", stringify!($a), "`, `days`: the window, ending at the bucket: NULL or \"day\" (that day), \
                    \"month\" (the calendar month up to it) or \"days\" with `days` (the last `days` days, 1 to 366; \
                    `days` non-zero with a NULL `", stringify!($a), "` means the same)."),
            }
            {
                // SAFETY: NULL or a live string (the caller's contract).
                let $a = unsafe { args::window($a, days)? };
            }
            { $a, } $($rest)* }
    };
    (@arg [$row:tt $ids:tt $($acc:tt)*] $a:ident: range, $($rest:tt)*) => {
        c_method! { @push [$row $ids $($acc)*]
            { $a: KarmaRange, } { $a, } { concat!(" `", stringify!($a), "`: the days, inclusive."), }
            { let $a = karma_engine::Range::from($a); }
            { $a, } $($rest)* }
    };
    (@arg [$row:tt $ids:tt $($acc:tt)*] $a:ident: opt_range, $($rest:tt)*) => {
        c_method! { @push [$row $ids $($acc)*]
            { $a: *const KarmaRange, } { $a, }
            { concat!(" `", stringify!($a), "`: the days, inclusive, or NULL for every bucket."), }
            {
                // SAFETY: NULL or readable (the caller's contract).
                let $a = unsafe { args::range($a)? };
            }
            { $a, } $($rest)* }
    };
    (@arg [$row:tt [$h:ident $len:ident $o:ident $r:ident] $($acc:tt)*] $a:ident: keys, $($rest:tt)*) => {
        c_method! { @push [$row [$h $len $o $r] $($acc)*]
            { $a: *const u64, [<n_ $a>]: usize, } { $a, [<n_ $a>], }
            { concat!(" `", stringify!($a), "`, `n_", stringify!($a), "`: an array of counter keys."), }
            {
                // SAFETY: readable for the count (the caller's contract).
                let $a = unsafe { args::slice($a, [<n_ $a>], stringify!($a))? };
                let $len = $a.len();
            }
            { $a, } $($rest)* }
    };
    (@arg [$row:tt [$h:ident $len:ident $o:ident $r:ident] $($acc:tt)*] $a:ident: items, $($rest:tt)*) => {
        c_method! { @push [$row [$h $len $o $r] $($acc)*]
            { $a: *const KarmaItem, [<n_ $a>]: usize, } { $a, [<n_ $a>], }
            {
                concat!(" `", stringify!($a), "`, `n_", stringify!($a), "`: an array of items; an item's bucket 0 \
                    means today (UTC, by this machine's clock)."),
            }
            {
                // SAFETY: readable for the count (the caller's contract).
                let $a = args::items(unsafe { args::slice($a, [<n_ $a>], stringify!($a))? }, $h.today());
                let $a = &$a[..];
                let $len = $a.len();
            }
            { $a, } $($rest)* }
    };
    (@arg [$row:tt [$h:ident $len:ident $o:ident $r:ident] $($acc:tt)*] $a:ident: series_keys, $($rest:tt)*) => {
        c_method! { @push [$row [$h $len $o $r] $($acc)*]
            { $a: *const KarmaSeriesKey, [<n_ $a>]: usize, } { $a, [<n_ $a>], }
            { concat!(" `", stringify!($a), "`, `n_", stringify!($a), "`: an array of (series, key) items."), }
            {
                // SAFETY: readable for the count, with live strings (the caller's contract).
                let $a = unsafe { args::series_keys($a, [<n_ $a>], stringify!($a))? };
                let $a = &$a[..];
                let $len = $a.len();
            }
            { $a, } $($rest)* }
    };
    (@push [$row:tt $ids:tt [$($p:tt)*] [$($n:tt)*] [$($d:tt)*] [$($s:tt)*] [$($c:tt)*]]
        {$($p2:tt)*} {$($n2:tt)*} {$($d2:tt)*} {$($s2:tt)*} {$($c2:tt)*} $($rest:tt)*) => {
        c_method! { @arg [$row $ids [$($p)* $($p2)*] [$($n)* $($n2)*] [$($d)* $($d2)*] [$($s)* $($s2)*] [$($c)* $($c2)*]]
            $($rest)* }
    };
    // Arguments done: on to the result.
    (@arg [[$docs:tt $m:ident $out:ident $ret:ident] $($state:tt)*]) => {
        c_method! { @ret $ret [[$docs $m $out $ret] $($state)*] }
    };

    // -------------------------------------------------------------- results
    (@ret unit [$row:tt $ids:tt $($state:tt)*]) => {
        c_method! { @emit [$row $ids $($state)*] {} {} {} {} {} }
    };
    (@ret uint $state:tt) => { c_method! { @one $state { u64 } "receives the answer" } };
    (@ret count $state:tt) => { c_method! { @one $state { usize } "receives the answer" } };
    (@ret counts $state:tt) => { c_method! { @one $state { KarmaCounts } "receives the counts" } };
    (@ret quota $state:tt) => {
        c_method! { @one $state { KarmaQuota } "receives the answer, allowed or refused" }
    };
    (@ret pairs $state:tt) => {
        c_method! { @one $state { KarmaPairs } "receives an array the library allocated: free it with karma_pairs_free" }
    };
    (@ret names $state:tt) => {
        c_method! { @one $state { KarmaStrings } "receives strings the library allocated: free them with karma_strings_free" }
    };
    (@ret info $state:tt) => {
        c_method! { @one $state { KarmaInfo } "receives the answer: free it with karma_info_free" }
    };
    (@ret page $state:tt) => {
        c_method! { @one $state { KarmaKeysPage } "receives the page: free it with karma_keys_page_free" }
    };
    (@ret summary $state:tt) => {
        c_method! { @one $state { KarmaSummary } "receives the answer: free it with karma_summary_free" }
    };
    (@ret text $state:tt) => {
        c_method! { @one $state { *mut c_char } "receives a string: free it with karma_string_free" }
    };
    (@ret json $state:tt) => {
        c_method! { @one $state { *mut c_char } "receives the object as JSON text: free it with karma_string_free" }
    };
    (@ret uints [[$docs:tt $m:ident $out:ident $ret:ident] [$h:ident $len:ident $o:ident $r:ident] $($state:tt)*]) => {
        c_method! { @emit [[$docs $m $out $ret] [$h $len $o $r] $($state)*]
            { [<out_ $out>]: *mut u64, } { [<out_ $out>], }
            {
                concat!(" `out_", stringify!($out), "`: an array the caller owns, one element per item, which \
                    receives the answers in order."),
            }
            {
                // SAFETY: NULL or writable for the count (the caller's contract).
                let $o = unsafe { Out::many([<out_ $out>], $len, stringify!([<out_ $out>]))? };
            }
            { $o.set_all($r)?; }
        }
    };
    (@one [[$docs:tt $m:ident $out:ident $ret:ident] [$h:ident $len:ident $o:ident $r:ident] $($state:tt)*]
        { $($cty:tt)* } $note:literal) => {
        c_method! { @emit [[$docs $m $out $ret] [$h $len $o $r] $($state)*]
            { [<out_ $out>]: *mut $($cty)*, } { [<out_ $out>], }
            { concat!(" `out_", stringify!($out), "`: ", $note, " (written on KARMA_OK only)."), }
            {
                // SAFETY: NULL or writable (the caller's contract).
                let $o = unsafe { Out::one([<out_ $out>], stringify!([<out_ $out>]))? };
            }
            { $o.set($r.into_c()?); }
        }
    };

    // --------------------------------------------------------------- output
    (@emit [[[$($doc:literal)*] $m:ident $out:ident $ret:ident] [$h:ident $len:ident $o:ident $r:ident]
        [$($p:tt)*] [$($n:tt)*] [$($d:expr,)*] [$($s:tt)*] [$($c:tt)*]]
        { $($out_p:tt)* } { $($out_n:tt)* } { $($out_d:expr,)* } { $($check:tt)* } { $($write:tt)* }) => {
        paste::paste! {
            pub(crate) mod $m {
                use super::*;

                /// The body of `karma_engine_` and `karma_client_` this method.
                ///
                /// # Safety
                ///
                /// That of the exported functions.
                #[allow(clippy::too_many_arguments, unused_variables)]
                pub(crate) unsafe fn call<H: Handle>($h: *const H, $($p)* $($out_p)*) -> KarmaStatus {
                    guard(|| {
                        // SAFETY: NULL or a live handle (the caller's contract).
                        let $h = unsafe { args::handle($h, H::NAME)? };
                        $($s)*
                        // Every argument is checked before the call: a refused call does nothing.
                        $($check)*
                        let $r = $h.db().$m($($c)*).map_err(|e| Failure::of(&e))?;
                        $($write)*
                        Ok(())
                    })
                }

                /// This method's C signature, for the header.
                pub(crate) const SIGNATURE: Signature = Signature {
                    method: stringify!($m),
                    docs: &[$($doc,)* "", $($d,)* $($out_d,)* "", " # Safety", "", safety_doc!()],
                    params: stringify!($($p)* $($out_p)*),
                };
            }

            c_method! { @export $m KarmaEngine [<karma_engine_ $m>] engine
                [$($doc,)* "", $($d,)* $($out_d,)* "", " # Safety", "", safety_doc!()]
                [$($p)* $($out_p)*] [$($n)* $($out_n)*] }
            c_method! { @export $m KarmaClient [<karma_client_ $m>] client
                [$($doc,)* "", $($d,)* $($out_d,)* "", " # Safety", "", safety_doc!()]
                [$($p)* $($out_p)*] [$($n)* $($out_n)*] }
        }
    };
    (@export $m:ident $handle:ident $name:ident $hname:ident [$($doc:expr),*] [$($p:tt)*] [$($n:tt)*]) => {
        $(#[doc = $doc])*
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $name($hname: *mut $handle, $($p)*) -> KarmaStatus {
            // SAFETY: this function's contract is the body's.
            unsafe { $m::call($hname.cast_const(), $($n)*) }
        }
    };
}

/// Expands the whole table with [`c_method!`], and lists the signatures.
macro_rules! c_surface {
    ($( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*) => {
        /// The exported functions, and the body and signature of each method
        /// (in a module named after it).
        pub mod exported {
            use super::*;

            $( c_method! { @arg [[[$($doc)*] $m $out $ret] [h len out result] [] [] [] [] []] $($arg: $kind,)* } )*
        }

        /// Every generated method's signature, in table order.
        pub const SIGNATURES: &[Signature] = &[$(exported::$m::SIGNATURE),*];
    };
}

karma_engine::for_each_method!(c_surface);
