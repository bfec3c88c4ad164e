//! One engine per data directory per process. A directory is locked by the
//! engine that opened it, so a worker thread opening the same path as the
//! main thread would fail; instead every `new Engine(path)` of a directory
//! already open in this process shares that engine's handle.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use karma_engine::{Engine, Options};
use parking_lot::Mutex;

use crate::errors::Failure;
use crate::task::{Backend, Handle};

static OPEN: Mutex<Option<HashMap<PathBuf, Weak<Handle>>>> = Mutex::new(None);

/// The directory's identity: its canonical path once it exists.
fn identity(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Opens `options` (recovering the directory), or shares the handle of the
/// engine already open on that directory in this process.
pub fn open(options: Options) -> Result<Arc<Handle>, Failure> {
    let Some(dir) = options.directory.clone() else {
        // In memory: nothing to share.
        return Engine::open(options).map(|e| Handle::new(Backend::Engine(e))).map_err(Failure::Engine);
    };
    // Held while opening, so two threads opening one directory at once
    // cannot both try to take its lock.
    let mut open = OPEN.lock();
    let open = open.get_or_insert_with(HashMap::new);
    open.retain(|_, h| h.upgrade().is_some_and(|h| !h.is_closed()));
    if let Some(handle) = open.get(&identity(&dir)).and_then(Weak::upgrade) {
        return Ok(handle);
    }
    let handle = Handle::new(Backend::Engine(Engine::open(options).map_err(Failure::Engine)?));
    open.insert(identity(&dir), Arc::downgrade(&handle));
    Ok(handle)
}
