//! Request lines in, response lines out: the parse, authorise, execute and
//! render steps of one line, and the batch of lines a server connection runs
//! back to back.
//!
//! A batch shares what does not need to be per line: today's bucket is read
//! from the clock once (by the first line that needs it), the series the
//! last write went to is at hand for the next (see [`BatchMemo`]), and the
//! command count and latency are recorded once, for the lines of the batch
//! together.
//! A line the plain-line reader declines may be slow (a scan, a snapshot) or
//! may read the metrics (`system.stats`), so before it the batch records what
//! it holds and forgets the day, and the line starts a new stretch.

use std::time::Instant;

use crate::error::{Error, ErrorCode, Result};
use crate::metrics::{self, Metrics};
use crate::protocol::plain::parse_plain_with;
use crate::protocol::request::{parse_document, parse_request};
use crate::protocol::response::{
    write_error, IDEMPOTENT_FALSE_TAIL, IDEMPOTENT_FALSE_TAIL_EOL, IDEMPOTENT_TRUE_TAIL, IDEMPOTENT_TRUE_TAIL_EOL,
    SUCCESS_HEAD, SUCCESS_TAIL, SUCCESS_TAIL_EOL,
};
use crate::store::Series;

use super::{BatchMemo, Ctx, Engine, Session};

/// Lines executed one after the other, e.g. the pipelined lines of one read
/// on a connection. Records its lines' count and latency when dropped.
pub struct LineBatch<'e> {
    engine: &'e Engine,
    /// Whether hot-op lines may take the plain-line reader.
    plain: bool,
    stretch: Stretch,
    memo: BatchMemo,
}

/// The lines run since the metrics last counted them.
struct Stretch {
    /// When the first of them started.
    started: Instant,
    /// How many there are.
    pending: u64,
}

impl Engine {
    /// A batch of lines to run one after the other (see [`LineBatch`]).
    pub fn line_batch(&self) -> LineBatch<'_> {
        let stretch = Stretch { started: Instant::now(), pending: 0 };
        LineBatch { engine: self, plain: true, stretch, memo: BatchMemo::default() }
    }
}

impl LineBatch<'_> {
    /// Every line through the general parser (see
    /// [`Engine::handle_line_general`]).
    #[doc(hidden)]
    pub fn general_only(mut self) -> Self {
        self.plain = false;
        self
    }

    /// Like [`Engine::handle_line_into`], as the next line of this batch.
    pub fn handle_line_into(&mut self, line: &[u8], session: &Session, out: &mut Vec<u8>) -> Option<u64> {
        let engine = self.engine;
        let start = out.len();
        let result = self.run(line, session, out);
        self.memo.next_line();
        match result {
            Ok(lsn) => lsn,
            Err(err) => {
                out.truncate(start);
                write_error(out, &err);
                let m = &engine.inner.metrics;
                metrics::bump(&m.errors);
                if err.code() == ErrorCode::QueryTimeout {
                    metrics::bump(&m.query_timeouts);
                }
                None
            }
        }
    }

    fn run(&mut self, line: &[u8], session: &Session, out: &mut Vec<u8>) -> Result<Option<u64>> {
        let engine = self.engine;
        let max_request = engine.inner.options.max_request_bytes;
        let too_large = !session.internal && line.len() > max_request;
        let known_series = self.memo.series.as_deref().map(Series::name);
        let plain = if self.plain && !too_large { parse_plain_with(line, known_series) } else { None };
        if plain.is_none() {
            // Possibly slow, possibly reading the metrics: see the module doc.
            self.stretch.record(&engine.inner.metrics);
            self.memo.today.set(None);
        }
        self.stretch.pending += 1;
        if too_large {
            return Err(Error::new(ErrorCode::RequestTooLarge, format!("Request exceeds {max_request} bytes")));
        }
        // Borrowed, not moved: a Request is a couple of hundred bytes.
        let (doc, general);
        let (req, batch) = match &plain {
            Some(req) => (req, Some(&self.memo)),
            None => {
                doc = parse_document(line)?;
                general = parse_request(&doc)?;
                (&general, None)
            }
        };
        let ctx = Ctx { internal: session.internal, replay: None, batch };
        if !ctx.internal {
            engine.authorize(req)?;
        }
        let outcome = engine.execute_ctx(req, ctx)?;
        let start = out.len();
        out.extend_from_slice(SUCCESS_HEAD);
        outcome.response.write_json(out);
        let (tail, tail_and_eol) = match outcome.idempotent {
            None => (SUCCESS_TAIL, SUCCESS_TAIL_EOL),
            Some(false) => (IDEMPOTENT_FALSE_TAIL, IDEMPOTENT_FALSE_TAIL_EOL),
            Some(true) => (IDEMPOTENT_TRUE_TAIL, IDEMPOTENT_TRUE_TAIL_EOL),
        };
        // The limit is on the envelope without its line terminator.
        let max_response = engine.inner.options.max_response_bytes;
        if !ctx.internal && max_response > 0 && out.len() - start + tail.len() > max_response {
            return Err(Error::new(ErrorCode::ResponseTooLarge, format!("Response exceeds {max_response} bytes")));
        }
        out.extend_from_slice(tail_and_eol);
        Ok(outcome.lsn)
    }
}

impl Stretch {
    /// Counts the lines of the stretch, with their latency (its time split
    /// evenly), and starts a new one.
    fn record(&mut self, m: &Metrics) {
        if self.pending == 0 {
            return;
        }
        let now = Instant::now();
        metrics::add(&m.commands, self.pending);
        m.command_latency.record_many(now.duration_since(self.started), self.pending);
        self.started = now;
        self.pending = 0;
    }
}

impl Drop for LineBatch<'_> {
    fn drop(&mut self) {
        self.stretch.record(&self.engine.inner.metrics);
    }
}
