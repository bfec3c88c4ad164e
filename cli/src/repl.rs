//! `karma cli` without a request: an interactive session (line editing and
//! history through rustyline) on a terminal, or one request per line from a
//! script on stdin.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use karma_engine::protocol::Op;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::answer;
use crate::connect::Connection;
use crate::request;

/// What one input line asks for.
enum Step {
    Continue { failed: bool },
    Quit,
}

pub fn run(conn: &Connection) -> ExitCode {
    if std::io::stdin().is_terminal() {
        interactive(conn)
    } else {
        scripted(conn)
    }
}

fn interactive(conn: &Connection) -> ExitCode {
    let mut editor = match Editor::<OpCompleter, DefaultHistory>::new() {
        Ok(mut editor) => {
            editor.set_helper(Some(OpCompleter));
            editor
        }
        Err(err) => {
            eprintln!("karma cli: cannot start line editing ({err}); reading plain lines");
            return scripted(conn);
        }
    };
    let history = history_file();
    if let Some(path) = &history {
        // A missing history file is the normal first run.
        let _ = editor.load_history(path);
    }
    println!("connected to {} (`help` lists the ops, Ctrl-D quits)", conn.target());
    let prompt = format!("{}> ", conn.target().trim_start_matches("karma://"));
    loop {
        match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if let Step::Quit = step(conn, &line, &mut std::io::stdout()) {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(err) => {
                eprintln!("karma cli: {err}");
                break;
            }
        }
    }
    if let Some(path) = &history {
        if let Err(err) = editor.save_history(path) {
            eprintln!("karma cli: cannot save history to {}: {err}", path.display());
        }
    }
    ExitCode::SUCCESS
}

/// One request per stdin line, answers on stdout; exit 1 if any failed.
fn scripted(conn: &Connection) -> ExitCode {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = match line {
            Ok(line) => line,
            Err(err) => {
                eprintln!("karma cli: cannot read stdin: {err}");
                return ExitCode::from(2);
            }
        };
        match step(conn, &line, &mut out) {
            Step::Continue { failed: f } => failed |= f,
            Step::Quit => break,
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn step(conn: &Connection, line: &str, out: &mut impl Write) -> Step {
    let line = line.trim();
    let words = split_words(line);
    let (text, failed) = match words.first().map(String::as_str) {
        None => return Step::Continue { failed: false },
        Some(w) if w.starts_with('#') => return Step::Continue { failed: false },
        Some("quit" | "exit") => return Step::Quit,
        Some("help") => (request::help(words.get(1).map(String::as_str)).trim_end().to_string(), false),
        Some(_) => send(conn, &words),
    };
    // A closed stdout (e.g. `| head`) ends the session quietly.
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        return Step::Quit;
    }
    Step::Continue { failed }
}

/// Sends one request; the rendered answer and whether it failed.
pub fn send(conn: &Connection, words: &[String]) -> (String, bool) {
    let line = match request::build(words) {
        Ok(line) => line,
        Err(msg) => return (format!("(error) {msg}"), true),
    };
    match conn.raw(&line) {
        Ok(response) => {
            let a = answer::render(&response);
            (a.text, a.is_error)
        }
        Err(err) => (format!("(error) {err}"), true),
    }
}

/// Splits on whitespace; a line starting with `{` is one raw JSON word, and
/// double quotes group a value with spaces (`source="nightly export"`).
fn split_words(line: &str) -> Vec<String> {
    if line.starts_with('{') {
        return vec![line.to_string()];
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Tab completes op names in the first word and the op's `field=` names
/// after it.
struct OpCompleter;

impl Completer for OpCompleter {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(completions(line, pos))
    }
}

impl Hinter for OpCompleter {
    type Hint = String;
}

impl Highlighter for OpCompleter {}

impl Validator for OpCompleter {}

impl Helper for OpCompleter {}

/// Where the word under the cursor starts, and what it may become.
fn completions(line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = line.get(..pos).unwrap_or(line);
    let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let prefix = &before[start..];
    let mut words = before[..start].split_whitespace();
    let candidates = match words.next() {
        None => Op::ALL
            .iter()
            .map(|op| op.name())
            .chain(["help", "quit"])
            .filter(|name| name.starts_with(prefix))
            .map(str::to_string)
            .collect(),
        Some(first) => match (first, Op::from_name(first)) {
            ("help", _) => {
                Op::ALL.iter().map(|op| op.name().to_string()).filter(|name| name.starts_with(prefix)).collect()
            }
            (_, Some(op)) if !prefix.contains('=') => {
                let given: Vec<&str> = words.filter_map(|w| w.split_once('=').map(|(n, _)| n)).collect();
                op.fields()
                    .iter()
                    .filter(|f| f.name.starts_with(prefix) && !given.contains(&f.name))
                    .map(|f| format!("{}=", f.name))
                    .collect()
            }
            _ => Vec::new(),
        },
    };
    (start, candidates)
}

/// `$KARMA_HISTORY`, else `~/.karma_history`; none without a home.
fn history_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KARMA_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|home| PathBuf::from(home).join(".karma_history"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_completes_ops_then_their_fields() {
        assert_eq!(completions("counter.su", 10), (0, vec!["counter.sum".to_string()]));
        let (start, ops) = completions("ingest.", 7);
        assert_eq!((start, ops.len()), (0, 4));
        assert_eq!(completions("counter.sum series=a k", 22), (21, vec!["key=".to_string()]));
        assert_eq!(completions("counter.sum series=a ", 21), (21, vec!["key=".to_string(), "range=".to_string()]));
        assert_eq!(completions("help tree.to", 12), (5, vec!["tree.top".to_string()]));
        assert!(completions("nope.op s", 9).1.is_empty());
        assert!(completions("counter.sum series=", 19).1.is_empty());
    }

    #[test]
    fn words_split_like_a_shell_would() {
        assert_eq!(split_words("  counter.sum  series=a key=1 "), ["counter.sum", "series=a", "key=1"]);
        assert_eq!(
            split_words(r#"recovery.checkpoint source="nightly export" offset="""#),
            ["recovery.checkpoint", "source=nightly export", "offset="]
        );
        assert_eq!(split_words(r#"{"v":2, "op":"system.ping"}"#), [r#"{"v":2, "op":"system.ping"}"#]);
        assert!(split_words("   ").is_empty());
    }
}
