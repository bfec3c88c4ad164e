//! `karma cli` without a request: an interactive session (line editing and
//! history through rustyline) on a terminal, or one request per line from a
//! script on stdin.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

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
    let mut editor = match DefaultEditor::new() {
        Ok(editor) => editor,
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
