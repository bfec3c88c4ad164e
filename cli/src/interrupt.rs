//! Ctrl-C (SIGINT) during a long run: the tool finishes the request in
//! flight, stops before the next one and says how to resume, instead of
//! dying between a request and its answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit status of a run stopped by SIGINT (128 + 2, as a shell reports it).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Clone)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Catches SIGINT from now on: the first one is noted (and said on
    /// stderr), a second one exits at once. If the handler cannot be
    /// installed the default action (exit) stays, which is still safe to
    /// resume from.
    pub fn install() -> Interrupt {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        let handler = move || {
            if set.swap(true, Ordering::SeqCst) {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            eprintln!("interrupt: stopping after the request in flight (Ctrl-C again to quit now)");
        };
        if let Err(err) = ctrlc::set_handler(handler) {
            eprintln!("warning: cannot catch Ctrl-C ({err}); an interruption kills the run at once");
        }
        Interrupt(flag)
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
