//! `karma ingest`: a CSV streamed through `ingest.begin/chunk/commit`.
//!
//! The whole file is checked before the first request, because chunks of an
//! `add` or `set` stream are applied as they arrive: a bad row found halfway
//! would leave half a file applied. So a bad row stops the run with its line
//! number and nothing sent.
//!
//! Resuming: the stream id (by default derived from the rows, series, mode
//! and chunk size, so rerunning the same command finds the same stream) is
//! re-begun; the server answers with its last applied chunk. Chunks before
//! it are not sent again, that chunk is re-sent once (the server skips it and
//! checks it is the same payload, which catches a changed file or chunk
//! size), and the rest follow.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::connect::{CallError, ConnectArgs, Connection, RequestLimit};
use crate::csv_rows::{Columns, Row, RowReader};
use crate::interrupt::{Interrupt, EXIT_INTERRUPTED};
use crate::progress::Progress;

/// The protocol's largest items array.
const MAX_CHUNK_ITEMS: usize = 10_000;
/// Request integers are signed 64-bit on the wire (spec/protocol.md §7.1).
const WIRE_MAX: u64 = i64::MAX as u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Mode {
    /// Add each value to its bucket (values must be > 0).
    Add,
    /// Set each bucket to its value (0 deletes it).
    Set,
    /// Replace the whole series with the file, atomically at commit.
    ReplaceSeries,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Add => "add",
            Mode::Set => "set",
            Mode::ReplaceSeries => "replace_series",
        }
    }
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// CSV file with a header line.
    #[arg(long, value_name = "FILE")]
    pub csv: PathBuf,
    /// Series to write.
    #[arg(long, value_name = "S")]
    pub series: String,
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Stream id; rerun with the same id to resume (default: derived from
    /// the rows, series, mode and chunk size).
    #[arg(long, value_name = "ID")]
    pub stream_id: Option<String>,
    /// Rows per ingest.chunk request (1..=10000); keep it when resuming.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_CHUNK_ITEMS as u64))]
    pub chunk_items: u64,
    #[command(flatten)]
    pub limit: RequestLimit,
    #[command(flatten)]
    pub columns: Columns,
}

/// Cuts rows into chunks of at most `max_items` whose request line fits in
/// `room` bytes. The cut depends only on the rows and these two numbers,
/// so a resumed run cuts the same chunks.
struct Chunker {
    mode: Mode,
    max_items: usize,
    /// Bytes left for the items once the rest of the request is written.
    room: usize,
    pending: Option<Row>,
}

impl Chunker {
    fn new(conn: &Connection, args: &IngestArgs, stream_id: &str) -> Result<Chunker, String> {
        // The request without items, with the widest chunk_seq.
        let empty = json!({"stream_id": stream_id, "series": args.series, "chunk_seq": u64::MAX, "items": []});
        let header = conn.request_len("ingest.chunk", &empty);
        let room = args.limit.line_room().checked_sub(header).filter(|&r| r >= 64).ok_or_else(|| {
            format!(
                "--max-request-bytes {} leaves no room for items next to the series and stream id",
                args.limit.bytes
            )
        })?;
        Ok(Chunker { mode: args.mode, max_items: args.chunk_items as usize, room, pending: None })
    }

    /// The next chunk, empty at the end of the file.
    fn next(&mut self, reader: &mut RowReader) -> Result<Vec<Row>, String> {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        loop {
            let row = match self.pending.take() {
                Some(row) => row,
                None => match reader.next_row()? {
                    // The file is read twice: check the rows both times.
                    Some(row) => check_row(self.mode, &row, reader.path()).map(|()| row)?,
                    None => return Ok(chunk),
                },
            };
            let size = item_len(&row) + usize::from(!chunk.is_empty());
            if chunk.len() == self.max_items || bytes + size > self.room {
                self.pending = Some(row);
                return Ok(chunk);
            }
            bytes += size;
            chunk.push(row);
        }
    }
}

/// Length of `[key,bucket,value]` in JSON.
fn item_len(row: &Row) -> usize {
    let digits = |n: u64| n.checked_ilog10().unwrap_or(0) as usize + 1;
    digits(row.key) + digits(row.bucket) + digits(row.value) + 4
}

pub fn run(args: &IngestArgs) -> ExitCode {
    match ingest(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("karma ingest: {message}");
            ExitCode::from(2)
        }
    }
}

/// What the checking pass learned.
struct Checked {
    rows: u64,
    chunks: u64,
    /// Of everything that decides the chunks: rows, series, mode, limits.
    digest: [u8; 32],
}

/// Rerunning the same command finds the same stream; a different file,
/// series, mode or chunking starts a new one.
fn default_stream_id(digest: &[u8; 32]) -> String {
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("csv-{hex}")
}

fn ingest(args: &IngestArgs) -> Result<ExitCode, String> {
    let conn = Connection::open(&args.connect)?;
    if conn.is_cluster() {
        return Err(format!(
            "{} is a cluster: an ingest stream lives on one node, and a file's keys belong to several shards; \
             karma ingest takes a karma:// URL",
            conn.target()
        ));
    }
    let interrupt = Interrupt::install();
    let checked = check_file(&conn, args)?;
    let stream_id = match &args.stream_id {
        Some(id) => id.clone(),
        None => default_stream_id(&checked.digest),
    };
    let chunks = checked.chunks;
    if checked.rows == 0 {
        if args.mode == Mode::ReplaceSeries {
            return Err(format!(
                "{}: no rows; replace_series would empty the series (use tree.reset for that)",
                args.csv.display()
            ));
        }
        println!("{}: no rows, nothing to ingest", args.csv.display());
        return Ok(ExitCode::SUCCESS);
    }

    let begun = call(&conn, "ingest.begin", json!({"stream_id": stream_id, "mode": args.mode.as_str()}))?;
    if begun.get("status").and_then(Value::as_str) == Some("already_committed") {
        println!("stream {stream_id} was already committed: nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    let resume_after = begun.get("last_chunk_seq").and_then(Value::as_u64).unwrap_or(0);
    if resume_after > chunks {
        return Err(format!(
            "stream {stream_id} already has {resume_after} chunks but the file makes {chunks}: \
             not the same file or --chunk-items"
        ));
    }
    if resume_after > 0 {
        eprintln!("resuming stream {stream_id} after chunk {resume_after} of {chunks}");
    }

    let mut progress = Progress::new("ingest", "rows", checked.rows);
    let mut reader = RowReader::open(&args.csv, &args.columns)?;
    let mut chunker = Chunker::new(&conn, args, &stream_id)?;
    let (mut seq, mut sent_rows) = (0u64, 0u64);
    loop {
        let chunk = chunker.next(&mut reader)?;
        if chunk.is_empty() {
            break;
        }
        seq += 1;
        sent_rows += chunk.len() as u64;
        if seq == resume_after {
            progress.resume_from(sent_rows - chunk.len() as u64);
        }
        if seq >= resume_after {
            if interrupt.requested() {
                progress.finish();
                eprintln!(
                    "interrupted before chunk {seq} of {chunks}; stream {stream_id} is not committed. \
                     Rerun the same command to resume."
                );
                if args.mode != Mode::ReplaceSeries {
                    eprintln!(
                        "(in {} mode the chunks sent so far are already applied: resume this stream \
                         rather than start another)",
                        args.mode.as_str()
                    );
                }
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            let items: Vec<[u64; 3]> = chunk.iter().map(|r| [r.key, r.bucket, r.value]).collect();
            let fields = json!({"stream_id": stream_id, "series": args.series, "chunk_seq": seq, "items": items});
            call(&conn, "ingest.chunk", fields).map_err(|e| match seq == resume_after {
                true => format!("{e} (resuming: is this the same file and --chunk-items as the interrupted run?)"),
                false => e,
            })?;
        }
        progress.set(sent_rows);
    }
    if interrupt.requested() {
        progress.finish();
        eprintln!("interrupted before commit; rerun the same command to resume");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    call(&conn, "ingest.commit", json!({"stream_id": stream_id}))?;
    progress.finish();
    let resumed = match resume_after {
        0 => String::new(),
        n => format!(", resumed after chunk {n}"),
    };
    println!(
        "committed stream {stream_id}: {} rows in {chunks} chunks into series {} ({} mode{resumed}) in {:.1}s ({:.0} rows/s)",
        checked.rows,
        args.series,
        args.mode.as_str(),
        progress.elapsed().as_secs_f64(),
        progress.rate(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads every row once: any bad row ends the run before a request is
/// sent. Counts the rows and chunks, and digests them for the default
/// stream id.
fn check_file(conn: &Connection, args: &IngestArgs) -> Result<Checked, String> {
    let mut reader = RowReader::open(&args.csv, &args.columns)?;
    // The default id is not known yet, but its length is.
    let sized_id = args.stream_id.clone().unwrap_or_else(|| default_stream_id(&[0; 32]));
    let mut chunker = Chunker::new(conn, args, &sized_id)?;
    let mut hash = Sha256::new();
    hash.update(format!("{}\0{}\0{}\0{}\0", args.series, args.mode.as_str(), args.chunk_items, args.limit.bytes));
    let (mut rows, mut chunks) = (0u64, 0u64);
    loop {
        let chunk = chunker.next(&mut reader)?;
        if chunk.is_empty() {
            return Ok(Checked { rows, chunks, digest: hash.finalize().into() });
        }
        for row in &chunk {
            for n in [row.key, row.bucket, row.value] {
                hash.update(n.to_le_bytes());
            }
        }
        rows += chunk.len() as u64;
        chunks += 1;
    }
}

/// What the server would refuse, refused up front.
fn check_row(mode: Mode, row: &Row, path: &std::path::Path) -> Result<(), String> {
    let at = |msg: String| format!("{}: line {}: {msg}", path.display(), row.line);
    for (name, n) in [("key", row.key), ("value", row.value)] {
        if n > WIRE_MAX {
            return Err(at(format!("{name} {n} is above {WIRE_MAX}, the largest integer a request can carry")));
        }
    }
    if mode == Mode::Add && row.value == 0 {
        return Err(at("value 0 in add mode (an add must be greater than 0)".to_string()));
    }
    Ok(())
}

fn call(conn: &Connection, op: &str, fields: Value) -> Result<Value, String> {
    conn.call(op, fields).map_err(|e| match e {
        CallError::Server { .. } => format!("{op} failed: {e}"),
        CallError::Transport(_) => format!("{op}: {e} (rerun the same command to resume)"),
    })
}
