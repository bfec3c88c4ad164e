//! Progress of a long run: an indicatif bar (done, rate, ETA) when stderr is
//! a terminal, otherwise a plain line on stderr every few seconds and one at
//! the end, so logs of a cron job or CI run show how far it got.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is written.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    label: &'static str,
    unit: &'static str,
    total: u64,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    done: u64,
    /// Where this run started (a resumed run skips what was done before),
    /// so rates count only this run's work.
    base: u64,
}

impl Progress {
    /// `total` in `unit`s (e.g. rows, bytes).
    pub fn new(label: &'static str, unit: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let template =
                format!("{label} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let now = Instant::now();
        Progress { label, unit, total, bar, started: now, last_line: now, done: 0, base: 0 }
    }

    /// Marks `done` units as finished before this run started.
    pub fn resume_from(&mut self, done: u64) {
        self.done = done;
        self.base = done;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.reset_eta();
        }
    }

    /// Units done in this run per second so far.
    pub fn rate(&self) -> f64 {
        self.done.saturating_sub(self.base) as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    pub fn set(&mut self, done: u64) {
        self.done = done;
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if self.last_line.elapsed() >= PLAIN_EVERY => {
                self.last_line = Instant::now();
                eprintln!("{}", self.line());
            }
            None => {}
        }
    }

    /// Clears the bar, or writes the last plain line.
    pub fn finish(&mut self) {
        match self.bar.take() {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}", self.line()),
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn line(&self) -> String {
        let rate = self.rate();
        let percent = if self.total == 0 { 100.0 } else { self.done as f64 * 100.0 / self.total as f64 };
        let eta =
            if rate > 0.0 { format!("{:.0}s", self.total.saturating_sub(self.done) as f64 / rate) } else { "?".into() };
        format!(
            "{}: {}/{} {} ({percent:.1}%), {rate:.0} {}/s, ETA {eta}",
            self.label, self.done, self.total, self.unit, self.unit
        )
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
