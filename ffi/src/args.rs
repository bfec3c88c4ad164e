//! Turning C arguments into Rust values: every check that makes a call
//! `KARMA_INVALID_ARGUMENT` lives here, and so does every dereference of a
//! caller's pointer.

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;

use karma_engine::{Item, Quota, Range, Window};

use crate::last_error::Failure;

/// One batch item: add `value` to the day `bucket` (YYYYMMDD; 0 means today,
/// UTC) of counter `key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KarmaItem {
    /// The counter's key.
    pub key: u64,
    /// The day, as YYYYMMDD; 0 means today (UTC).
    pub bucket: u64,
    /// The amount.
    pub value: u64,
}

/// An inclusive range of day buckets, YYYYMMDD to YYYYMMDD. Where a function
/// takes `const KarmaRange *range`, NULL means "every bucket" (the counter
/// total).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KarmaRange {
    /// First bucket, inclusive.
    pub from: u64,
    /// Last bucket, inclusive.
    pub to: u64,
}

/// One (series, key) item of `karma_*_multi_sum`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KarmaSeriesKey {
    /// The series name (NUL-terminated UTF-8).
    pub series: *const c_char,
    /// The counter's key.
    pub key: u64,
}

/// The answer of `karma_*_consume`, field for field the protocol's
/// `counter.consume` answer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KarmaQuota {
    /// 1 when `value` was added; 0 when it was refused and nothing changed.
    pub allowed: u8,
    /// The window's total after the call (including `value` when allowed).
    pub used: u64,
    /// `limit - used`, or 0 when other writes took the window past the limit.
    pub remaining: u64,
    /// The limit the call was checked against.
    pub limit: u64,
    /// The window's first bucket (YYYYMMDD), inclusive.
    pub range_from: u64,
    /// The window's last bucket (the call's bucket), inclusive.
    pub range_to: u64,
}

impl From<Quota> for KarmaQuota {
    fn from(q: Quota) -> KarmaQuota {
        KarmaQuota {
            allowed: u8::from(q.allowed),
            used: q.used,
            remaining: q.remaining,
            limit: q.limit,
            range_from: q.window.from,
            range_to: q.window.to,
        }
    }
}

/// A non-null, aligned pointer, checked or refused with a message naming
/// the argument.
fn checked<T>(ptr: *const T, name: &str) -> Result<NonNull<T>, Failure> {
    let Some(p) = NonNull::new(ptr.cast_mut()) else {
        return Err(Failure::invalid(format!("{name} must not be NULL")));
    };
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!("{name} is not aligned for its type")));
    }
    Ok(p)
}

/// A handle argument (`KarmaEngine *`, `KarmaClient *`).
///
/// # Safety
///
/// `ptr` must be NULL or point to a live `T` for `'a` (a handle from the
/// matching open function, not yet freed).
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    let p = checked(ptr, name)?;
    // SAFETY: non-null and aligned (checked), live for 'a (the contract);
    // only shared references to handles are ever made.
    Ok(unsafe { p.as_ref() })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `ptr` must be NULL or point to a NUL-terminated string that stays valid
/// and unchanged for `'a`.
pub(crate) unsafe fn string<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    let p = checked(ptr, name)?;
    // SAFETY: non-null, and NUL-terminated and live for 'a per the contract.
    let cstr = unsafe { CStr::from_ptr(p.as_ptr()) };
    cstr.to_str().map_err(|e| Failure::invalid(format!("{name} is not valid UTF-8 ({e})")))
}

/// A NUL-terminated UTF-8 string argument where NULL means "none".
///
/// # Safety
///
/// As for [`string`].
pub(crate) unsafe fn opt_string<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null, and valid per the contract.
    unsafe { string(ptr, name) }.map(Some)
}

/// A `const uint64_t *` argument where NULL means "none".
///
/// # Safety
///
/// `ptr` must be NULL or point to a readable `u64`.
pub(crate) unsafe fn opt_u64(ptr: *const u64, name: &str) -> Result<Option<u64>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and aligned (checked), readable per the contract.
    Ok(Some(unsafe { checked(ptr, name)?.as_ptr().read() }))
}

/// The `(series, key)` items of `multi_sum`, every series checked.
///
/// # Safety
///
/// As for [`slice`], and each item's `series` as for [`string`].
pub(crate) unsafe fn series_keys<'a>(
    ptr: *const KarmaSeriesKey,
    len: usize,
    name: &str,
) -> Result<Vec<(&'a str, u64)>, Failure> {
    // SAFETY: as the helper requires (this function's contract).
    let items = unsafe { slice(ptr, len, name)? };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            // SAFETY: each `series` is NULL or a live string (the contract).
            let series = unsafe { string(item.series, &format!("{name}[{i}].series"))? };
            Ok((series, item.key))
        })
        .collect()
}

/// A NUL-terminated string argument that may be NULL, as raw bytes (paths
/// need not be UTF-8).
///
/// # Safety
///
/// As for [`string`].
pub(crate) unsafe fn opt_bytes<'a>(ptr: *const c_char) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated and live for 'a per the contract.
    Some(unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

/// `len` elements at `ptr` (which may be NULL when `len` is 0).
///
/// # Safety
///
/// When `len > 0`, `ptr` must point to `len` initialised `T`s that stay valid
/// and unchanged for `'a`.
pub(crate) unsafe fn slice<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    let p = checked(ptr, name)?;
    if len.checked_mul(size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(Failure::invalid(format!("{name}: length {len} is too large")));
    }
    // SAFETY: non-null, aligned, `len` elements valid for 'a (the contract),
    // and the byte size fits in isize (checked).
    Ok(unsafe { std::slice::from_raw_parts(p.as_ptr(), len) })
}

/// An out-parameter: written once, on success, never read (so it may point
/// to uninitialised memory).
pub(crate) struct Out<T> {
    ptr: NonNull<T>,
    len: usize,
}

impl<T> Out<T> {
    /// An out-parameter for one `T`.
    ///
    /// # Safety
    ///
    /// `ptr` must be NULL or valid for writing one `T`, and stay so until
    /// the call returns.
    pub unsafe fn one(ptr: *mut T, name: &str) -> Result<Out<T>, Failure> {
        Ok(Out { ptr: checked(ptr, name)?, len: 1 })
    }

    /// An out-parameter for an array of `len` `T`s (NULL allowed when `len` is 0).
    ///
    /// # Safety
    ///
    /// When `len > 0`, `ptr` must be valid for writing `len` `T`s until the
    /// call returns.
    pub unsafe fn many(ptr: *mut T, len: usize, name: &str) -> Result<Out<T>, Failure> {
        if len == 0 {
            return Ok(Out { ptr: NonNull::dangling(), len: 0 });
        }
        if len.checked_mul(size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
            return Err(Failure::invalid(format!("{name}: length {len} is too large")));
        }
        Ok(Out { ptr: checked(ptr, name)?, len })
    }

    /// Writes `value` to a one-element out-parameter (again, if need be).
    pub fn set(&self, value: T) {
        debug_assert_eq!(self.len, 1);
        // SAFETY: `ptr` is non-null, aligned and writable for one `T` (the
        // constructor's contract); `write` does not read or drop the old
        // contents, which may be uninitialised.
        unsafe { self.ptr.as_ptr().write(value) }
    }

    /// Writes `values` to an array out-parameter; their count must be its length.
    pub fn set_all(self, values: Vec<T>) -> Result<(), Failure> {
        if values.len() != self.len {
            return Err(Failure::new(
                crate::KarmaStatus::KARMA_INTERNAL_ERROR,
                format!("expected {} values, got {}", self.len, values.len()),
            ));
        }
        for (i, v) in values.into_iter().enumerate() {
            // SAFETY: `i < len` and the array is writable for `len` elements
            // (the constructor's contract); see `set` for `write`.
            unsafe { self.ptr.as_ptr().add(i).write(v) }
        }
        Ok(())
    }
}

/// An optional range argument.
///
/// # Safety
///
/// `ptr` must be NULL or point to a valid `KarmaRange`.
pub(crate) unsafe fn range(ptr: *const KarmaRange) -> Result<Option<Range>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and aligned (checked), valid per the contract;
    // `KarmaRange` is plain old data, so any bit pattern is a value.
    let r = unsafe { checked(ptr, "range")?.as_ptr().read() };
    Ok(Some(Range { from: r.from, to: r.to }))
}

/// `consume`'s window from its `window` (NULL, `"day"`, `"days"` or
/// `"month"`) and `days` (0: not given) arguments, combined as the
/// protocol combines its `window` and `days` fields ([`Window::parse`],
/// with its messages).
///
/// # Safety
///
/// As for [`string`].
pub(crate) unsafe fn window(window: *const c_char, days: u64) -> Result<Window, Failure> {
    let name = if window.is_null() {
        None
    } else {
        // SAFETY: non-null, and NUL-terminated and live per the contract.
        Some(unsafe { string(window, "window")? })
    };
    Window::parse(name, (days > 0).then_some(days)).map_err(|e| Failure::invalid(e.message()))
}

/// `bucket` as the typed API takes it: 0 (today) is `None`.
pub(crate) fn bucket(bucket: u64) -> Option<u64> {
    (bucket != 0).then_some(bucket)
}

/// Batch items for the engine, with bucket 0 replaced by `today`.
pub(crate) fn items(items: &[KarmaItem], today: u64) -> Vec<Item> {
    items.iter().map(|i| [i.key, if i.bucket == 0 { today } else { i.bucket }, i.value]).collect()
}

/// A page size as the typed API takes it: 0 (the default) is `None`.
pub(crate) fn limit(limit: usize) -> Option<usize> {
    (limit != 0).then_some(limit)
}

impl From<KarmaRange> for Range {
    fn from(r: KarmaRange) -> Range {
        Range { from: r.from, to: r.to }
    }
}
