//! What the generated functions hand back to C: one `#[repr(C)]` type per
//! result kind of the surface table, [`IntoC`] to build it from the Rust
//! answer, and a free function for each type that owns memory.
//!
//! Owned results are written into a struct the caller provides (usually on
//! its stack); its free function releases what the library allocated inside
//! it and zeroes it, so freeing twice, or freeing a zeroed struct, is safe.

use std::ffi::{c_char, CString};
use std::ptr;

use karma_engine::api::Value;
use karma_engine::{KeysPage, Quota, Summary, TreeInfo};

use crate::args::{KarmaQuota, KarmaRange};
use crate::last_error::{guard_void, Failure};
use crate::status::KarmaStatus;

/// A Rust answer as its C result type.
pub(crate) trait IntoC {
    type C;
    fn into_c(self) -> Result<Self::C, Failure>;
}

impl IntoC for u64 {
    type C = u64;
    fn into_c(self) -> Result<u64, Failure> {
        Ok(self)
    }
}

impl IntoC for usize {
    type C = usize;
    fn into_c(self) -> Result<usize, Failure> {
        Ok(self)
    }
}

impl IntoC for Quota {
    type C = KarmaQuota;
    fn into_c(self) -> Result<KarmaQuota, Failure> {
        Ok(KarmaQuota::from(self))
    }
}

/// A string the caller frees with `karma_string_free`.
pub(crate) fn c_string(s: String) -> Result<*mut c_char, Failure> {
    CString::new(s)
        .map(CString::into_raw)
        .map_err(|_| Failure::new(KarmaStatus::KARMA_INTERNAL_ERROR, "the answer contains a NUL byte"))
}

impl IntoC for String {
    type C = *mut c_char;
    fn into_c(self) -> Result<*mut c_char, Failure> {
        c_string(self)
    }
}

/// JSON objects go to C as their JSON text.
impl IntoC for Value {
    type C = *mut c_char;
    fn into_c(self) -> Result<*mut c_char, Failure> {
        c_string(self.to_string())
    }
}

/// Two numbers: (key, value) in `top` and `keys`, (bucket, value) in `points`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KarmaPair {
    /// The counter's key (`top`, `keys`), or the day bucket (`points`).
    pub key: u64,
    /// The value or total.
    pub value: u64,
}

/// An array of pairs the library allocated; free with karma_pairs_free.
#[repr(C)]
#[derive(Debug)]
pub struct KarmaPairs {
    /// `len` pairs, or NULL when `len` is 0.
    pub items: *mut KarmaPair,
    /// The number of pairs.
    pub len: usize,
}

impl KarmaPairs {
    const EMPTY: KarmaPairs = KarmaPairs { items: ptr::null_mut(), len: 0 };

    fn new(pairs: Vec<(u64, u64)>) -> KarmaPairs {
        if pairs.is_empty() {
            return KarmaPairs::EMPTY;
        }
        let items: Box<[KarmaPair]> = pairs.into_iter().map(|(key, value)| KarmaPair { key, value }).collect();
        let len = items.len();
        KarmaPairs { items: Box::into_raw(items).cast(), len }
    }

    /// Frees the array and leaves the struct empty.
    ///
    /// # Safety
    ///
    /// `items`/`len` must be as [`KarmaPairs::new`] made them (or empty).
    unsafe fn release(&mut self) {
        let pairs = std::mem::replace(self, KarmaPairs::EMPTY);
        if !pairs.items.is_null() {
            // SAFETY: `items` and `len` came from a boxed slice in `new`
            // (the contract), which is rebuilt and dropped once: `self` is
            // already empty.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(pairs.items, pairs.len)) });
        }
    }
}

impl IntoC for Vec<(u64, u64)> {
    type C = KarmaPairs;
    fn into_c(self) -> Result<KarmaPairs, Failure> {
        Ok(KarmaPairs::new(self))
    }
}

/// The answer of the batch deletes and resets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KarmaCounts {
    /// How many counters were reset (`batch_reset`) or had buckets deleted
    /// (`batch_delete_range`).
    pub done: usize,
    /// How many of the keys did not exist.
    pub missing: usize,
}

impl IntoC for (usize, usize) {
    type C = KarmaCounts;
    fn into_c(self) -> Result<KarmaCounts, Failure> {
        Ok(KarmaCounts { done: self.0, missing: self.1 })
    }
}

/// An array of strings the library allocated; free with karma_strings_free.
#[repr(C)]
#[derive(Debug)]
pub struct KarmaStrings {
    /// `len` NUL-terminated strings, or NULL when `len` is 0.
    pub items: *mut *mut c_char,
    /// The number of strings.
    pub len: usize,
}

impl KarmaStrings {
    const EMPTY: KarmaStrings = KarmaStrings { items: ptr::null_mut(), len: 0 };

    /// Frees every string and the array, and leaves the struct empty.
    ///
    /// # Safety
    ///
    /// `items`/`len` must be as `into_c` made them (or empty).
    unsafe fn release(&mut self) {
        let strings = std::mem::replace(self, KarmaStrings::EMPTY);
        if strings.items.is_null() {
            return;
        }
        // SAFETY: a boxed slice of `len` strings made by `into_c` (the
        // contract), rebuilt and dropped once: `self` is already empty.
        let items = unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(strings.items, strings.len)) };
        for s in items.iter() {
            // SAFETY: each came from `CString::into_raw` and is freed once.
            drop(unsafe { CString::from_raw(*s) });
        }
    }
}

impl IntoC for Vec<String> {
    type C = KarmaStrings;
    fn into_c(self) -> Result<KarmaStrings, Failure> {
        if self.is_empty() {
            return Ok(KarmaStrings::EMPTY);
        }
        // Every string is checked before any is handed out, so a failure
        // leaks nothing.
        let strings = self.into_iter().map(CString::new).collect::<Result<Vec<_>, _>>();
        let strings = strings
            .map_err(|_| Failure::new(KarmaStatus::KARMA_INTERNAL_ERROR, "a series name contains a NUL byte"))?;
        let items: Box<[*mut c_char]> = strings.into_iter().map(CString::into_raw).collect();
        let len = items.len();
        Ok(KarmaStrings { items: Box::into_raw(items).cast(), len })
    }
}

/// The answer of `info`; free with karma_info_free.
#[repr(C)]
#[derive(Debug)]
pub struct KarmaInfo {
    /// The series name (owned).
    pub tree: *mut c_char,
    /// How many counters the series has.
    pub key_count: usize,
    /// How many day buckets they hold.
    pub bucket_count: usize,
    /// The sum of every bucket (saturating).
    pub total: u64,
}

impl IntoC for TreeInfo {
    type C = KarmaInfo;
    fn into_c(self) -> Result<KarmaInfo, Failure> {
        Ok(KarmaInfo {
            tree: c_string(self.tree)?,
            key_count: self.key_count,
            bucket_count: self.bucket_count,
            total: self.total,
        })
    }
}

/// One page of `keys`; free with karma_keys_page_free.
#[repr(C)]
#[derive(Debug)]
pub struct KarmaKeysPage {
    /// The series name (owned).
    pub tree: *mut c_char,
    /// The page size used.
    pub limit: usize,
    /// 1 when the request had a cursor (then in `cursor`).
    pub has_cursor: u8,
    /// The request's cursor.
    pub cursor: u64,
    /// 1 when there are more keys: pass `next_cursor` for the next page.
    pub has_next_cursor: u8,
    /// The cursor of the next page.
    pub next_cursor: u64,
    /// (key, total) ascending by key (owned).
    pub keys: KarmaPairs,
}

impl IntoC for KeysPage {
    type C = KarmaKeysPage;
    fn into_c(self) -> Result<KarmaKeysPage, Failure> {
        Ok(KarmaKeysPage {
            tree: c_string(self.tree)?,
            limit: self.limit,
            has_cursor: u8::from(self.cursor.is_some()),
            cursor: self.cursor.unwrap_or(0),
            has_next_cursor: u8::from(self.next_cursor.is_some()),
            next_cursor: self.next_cursor.unwrap_or(0),
            keys: KarmaPairs::new(self.keys),
        })
    }
}

/// The answer of `summary`; free with karma_summary_free.
#[repr(C)]
#[derive(Debug)]
pub struct KarmaSummary {
    /// The series name (owned).
    pub tree: *mut c_char,
    /// 1 when the totals are over `range`; 0 when over all time.
    pub has_range: u8,
    /// The range summed, when `has_range`.
    pub range: KarmaRange,
    /// The sum of the buckets counted.
    pub total: u64,
    /// How many counters have a non-zero bucket counted.
    pub active_keys: usize,
    /// How many buckets were counted.
    pub bucket_count: usize,
}

impl IntoC for Summary {
    type C = KarmaSummary;
    fn into_c(self) -> Result<KarmaSummary, Failure> {
        let (from, to) = self.range.unwrap_or_default();
        Ok(KarmaSummary {
            tree: c_string(self.tree)?,
            has_range: u8::from(self.range.is_some()),
            range: KarmaRange { from, to },
            total: self.total,
            active_keys: self.active_keys,
            bucket_count: self.bucket_count,
        })
    }
}

/// Frees a string field of an owned result and sets it to NULL.
///
/// # Safety
///
/// `*s` must be NULL or from `CString::into_raw`, not yet freed.
unsafe fn release_string(s: &mut *mut c_char) {
    let owned = std::mem::replace(s, ptr::null_mut());
    if !owned.is_null() {
        // SAFETY: from `CString::into_raw` (the contract), freed once: the
        // field is already NULL.
        drop(unsafe { CString::from_raw(owned) });
    }
}

/// Runs `release` on `*p` unless `p` is NULL.
///
/// # Safety
///
/// `p` must be NULL or point to a valid, writable `T`.
unsafe fn free_with<T>(p: *mut T, release: impl FnOnce(&mut T)) {
    if p.is_null() {
        return;
    }
    // SAFETY: non-null, valid and writable (the contract); no other
    // reference to it exists during this call.
    let value = unsafe { &mut *p };
    guard_void(move || release(value));
}

/// Frees the array of a KarmaPairs the library filled and zeroes it. NULL,
/// and a zeroed struct, are ignored.
///
/// # Safety
///
/// `pairs` must be NULL or point to a KarmaPairs written by this library
/// (or zeroed), not freed since.
#[no_mangle]
pub unsafe extern "C" fn karma_pairs_free(pairs: *mut KarmaPairs) {
    // SAFETY: the contract of this function is the helper's, and `pairs`
    // as `release` requires.
    unsafe { free_with(pairs, |p| p.release()) }
}

/// Frees the strings of a KarmaStrings the library filled and zeroes it.
/// NULL, and a zeroed struct, are ignored.
///
/// # Safety
///
/// `strings` must be NULL or point to a KarmaStrings written by this
/// library (or zeroed), not freed since.
#[no_mangle]
pub unsafe extern "C" fn karma_strings_free(strings: *mut KarmaStrings) {
    // SAFETY: the contract of this function is the helper's, and `strings`
    // as `release` requires.
    unsafe { free_with(strings, |s| s.release()) }
}

/// Frees the `tree` of a KarmaInfo the library filled and zeroes it. NULL,
/// and a zeroed struct, are ignored.
///
/// # Safety
///
/// `info` must be NULL or point to a KarmaInfo written by this library (or
/// zeroed), not freed since.
#[no_mangle]
pub unsafe extern "C" fn karma_info_free(info: *mut KarmaInfo) {
    let release = |i: &mut KarmaInfo| {
        // SAFETY: `tree` is as `into_c` made it (this function's contract).
        unsafe { release_string(&mut i.tree) };
        (i.key_count, i.bucket_count, i.total) = (0, 0, 0);
    };
    // SAFETY: the contract of this function is the helper's.
    unsafe { free_with(info, release) }
}

/// Frees the `tree` and `keys` of a KarmaKeysPage the library filled and
/// zeroes it. NULL, and a zeroed struct, are ignored.
///
/// # Safety
///
/// `page` must be NULL or point to a KarmaKeysPage written by this library
/// (or zeroed), not freed since.
#[no_mangle]
pub unsafe extern "C" fn karma_keys_page_free(page: *mut KarmaKeysPage) {
    let release = |p: &mut KarmaKeysPage| {
        // SAFETY: `tree` and `keys` are as `into_c` made them (this
        // function's contract).
        unsafe {
            release_string(&mut p.tree);
            p.keys.release();
        }
        (p.limit, p.has_cursor, p.cursor, p.has_next_cursor, p.next_cursor) = (0, 0, 0, 0, 0);
    };
    // SAFETY: the contract of this function is the helper's.
    unsafe { free_with(page, release) }
}

/// Frees the `tree` of a KarmaSummary the library filled and zeroes it.
/// NULL, and a zeroed struct, are ignored.
///
/// # Safety
///
/// `summary` must be NULL or point to a KarmaSummary written by this
/// library (or zeroed), not freed since.
#[no_mangle]
pub unsafe extern "C" fn karma_summary_free(summary: *mut KarmaSummary) {
    let release = |s: &mut KarmaSummary| {
        // SAFETY: `tree` is as `into_c` made it (this function's contract).
        unsafe { release_string(&mut s.tree) };
        (s.has_range, s.range) = (0, KarmaRange::default());
        (s.total, s.active_keys, s.bucket_count) = (0, 0, 0);
    };
    // SAFETY: the contract of this function is the helper's.
    unsafe { free_with(summary, release) }
}
