//! Starts the real `karma` binary on a free port with a temporary data
//! directory, and talks NDJSON to it.

#![allow(dead_code)]

pub mod cluster;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};

#[allow(unused_imports)] // each test binary uses its own part of this module
pub use karma_testkit::{free_port, DEADLINE};

pub const BIN: &str = env!("CARGO_BIN_EXE_karma");

pub const PONG: &str = r#"{"protocol_version":2,"success":true,"response":"pong","error_code":null}"#;
pub const PING: &str = r#"{"v":2,"op":"system.ping"}"#;

/// A `karma` command with a clean environment (no stray `KARMA_*`).
pub fn karma() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    cmd
}

/// Runs `karma` with `args` to completion (for CLI errors, `--help`).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = karma();
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run karma")
}

/// Runs `karma <args>` (a tool) to completion with `stdin` fed in.
pub fn tool(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = karma();
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn karma");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("karma output")
}

/// The real `karma` binary started by the shared test kit, with
/// `--wal-fsync=false` (these tests never pull the power) before the test's
/// own arguments.
pub struct Server(karma_testkit::Server);

impl Server {
    /// Starts a server with `--wal-fsync=false` plus `extra`, and waits
    /// until it accepts connections.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_with_env(extra, &[])
    }

    /// [`Server::start`] with these environment variables set.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server(karma_testkit::Server::builder(BIN).args(&["--wal-fsync=false"]).args(extra).env(env).start())
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill failed");
    }
}

impl std::ops::Deref for Server {
    type Target = karma_testkit::Server;

    fn deref(&self) -> &karma_testkit::Server {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut karma_testkit::Server {
        &mut self.0
    }
}

pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Client { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Next response line without its terminator; `None` at EOF/reset.
    pub fn read_line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                assert_eq!(line.last(), Some(&b'\n'), "unterminated response {line:?}");
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                Some(String::from_utf8(line).expect("utf-8 response"))
            }
        }
    }

    /// Sends one request line and reads its response.
    pub fn request(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.read_line().expect("a response line")
    }

    /// True once the server closed the connection (EOF or reset).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }

    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).expect("shutdown");
    }
}

pub fn error_code(line: &str) -> Option<String> {
    let key = "\"error_code\":\"";
    let start = line.find(key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}

pub fn error_line(code: &str, message: &str) -> String {
    format!(r#"{{"protocol_version":2,"success":false,"response":"{message}","error_code":"{code}"}}"#)
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Raises this process's soft open-files limit to at least `want`.
pub fn raise_nofile(want: u64) -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur
    }
}

/// SO_LINGER 0: closing the socket sends a reset instead of a FIN.
pub fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we own, with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
