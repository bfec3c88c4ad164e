//! Fork detection without a syscall per call: a `pthread_atfork` child
//! handler bumps a generation counter. An `Engine` remembers the generation
//! it was opened in; in a forked child its WAL writer thread does not exist,
//! so it refuses to run (and is leaked rather than dropped, since closing it
//! would wait for that thread forever). A `Client` needs nothing: its pool
//! notices the new pid and opens new connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `in_child` is an `extern "C"` function that only performs an
        // atomic add (async-signal-safe, as a fork child handler must be);
        // the other two handlers are null, which pthread_atfork allows.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
}

pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}
