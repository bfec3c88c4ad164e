//! Runs the real `karma` binary for integration tests: on a free loopback
//! port, with a data directory (a temporary one unless the test names its
//! own), `--log=false`, and no `KARMA_*` variable inherited from the
//! environment of whoever runs the tests. [`Server::start`] returns once the
//! server accepts connections; dropping the [`Server`] kills it (SIGKILL);
//! [`Server::stop`] stops it cleanly (SIGTERM) instead.
//!
//! Every wait here is bounded by [`DEADLINE`], a guard against hanging
//! forever, never an assertion on speed.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use socket2::{Domain, Socket, Type};
use tempfile::TempDir;

/// Bound for anything that "eventually" happens in a test.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How many times a start is retried on a fresh port when the one picked
/// was taken between [`free_port`] and the server's bind.
const PORT_ATTEMPTS: usize = 5;

/// A loopback port nobody listened on a moment ago, and never handed out
/// before by this process: the tests of one binary run in parallel, and a
/// port given twice would let one test's readiness check connect to
/// another test's server (which the first then sees vanish when its owner
/// kills it).
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    // Held until a fresh port turns up, so the kernel offers another one.
    // Bound but not listening: a port handed out earlier may come back here
    // while its test waits for its server to listen on it, and that test's
    // readiness check must then be refused, not accepted by a socket that
    // nobody serves (it once was, and the test's first request found the
    // port closed).
    let mut seen = Vec::new();
    loop {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("create a TCP socket");
        socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind 127.0.0.1:0");
        let port = socket
            .local_addr()
            .ok()
            .and_then(|address| address.as_socket())
            .expect("local address of a bound socket")
            .port();
        if HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner).insert(port) {
            return port;
        }
        seen.push(socket);
    }
}

/// The `karma` binary for the tests of crates other than `karma-server`
/// (which pass `env!("CARGO_BIN_EXE_karma")` instead): `$KARMA_SERVER_BIN`,
/// or the workspace's `debug/karma`, built with the cargo running the tests
/// when missing. A stale binary is not rebuilt: after changing server/, run
/// `cargo build -p karma-server`.
pub fn karma_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("KARMA_SERVER_BIN") {
            return PathBuf::from(bin);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        let bin = target.join("debug").join("karma");
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "karma-server"])
                .current_dir(&root)
                .status()
                .expect("run cargo build -p karma-server");
            assert!(status.success(), "cargo build -p karma-server failed");
        }
        assert!(bin.exists(), "{} missing after cargo build", bin.display());
        bin
    })
}

/// xorshift64*: a tiny deterministic PRNG for tests that want reproducible
/// variety (crash points, generated request lines) from a printed seed,
/// without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An index into a slice of `len` items.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How to start a [`Server`]; see [`Server::builder`].
#[derive(Clone, Debug)]
pub struct Builder {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    directory: Option<PathBuf>,
    stderr_log: Option<PathBuf>,
    port: Option<u16>,
    wait_ready: bool,
}

impl Builder {
    /// More command-line arguments, after the ones the kit adds.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Builder {
        self.args.extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Environment variables for the server (none is inherited).
    pub fn env(mut self, vars: &[(&str, &str)]) -> Builder {
        self.env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// Use this data directory instead of a fresh temporary one.
    pub fn directory(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.directory = Some(dir.into());
        self
    }

    /// Append the server's stderr to this file instead of one in the
    /// server's temporary directory.
    pub fn stderr_log(mut self, path: impl Into<PathBuf>) -> Builder {
        self.stderr_log = Some(path.into());
        self
    }

    /// Listen on this port instead of a free one picked by the kit (for a
    /// node whose port other processes must know beforehand). Taken or not,
    /// no other port is tried.
    pub fn port(mut self, port: u16) -> Builder {
        self.port = Some(port);
        self
    }

    /// Return as soon as the process runs, without waiting for it to accept
    /// connections (a node that listens only after joining a cluster, or
    /// one expected to refuse to start). The same holds for restarts.
    pub fn no_wait(mut self) -> Builder {
        self.wait_ready = false;
        self
    }

    /// Starts the server and waits until it accepts connections. Panics with
    /// the server's stderr when it exits first (a port taken in between is
    /// retried on another one, unless [`Builder::port`] fixed it).
    pub fn start(self) -> Server {
        let temp = tempfile::tempdir().expect("create a temporary directory");
        let directory = self.directory.clone().unwrap_or_else(|| temp.path().join("data"));
        std::fs::create_dir_all(&directory).expect("create the data directory");
        let stderr_log = self.stderr_log.clone().unwrap_or_else(|| temp.path().join("stderr.log"));
        let fixed = self.port;
        let mut server = Server { port: 0, child: None, launch: self, directory, stderr_log, _temp: temp };
        if let Some(port) = fixed {
            if let Err(Failure::PortTaken(err) | Failure::Other(err)) = server.spawn(port) {
                panic!("karma did not start on port {port}: {err}");
            }
            return server;
        }
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match server.spawn(free_port()) {
                Ok(()) => return server,
                Err(Failure::PortTaken(err)) => last = err,
                Err(Failure::Other(err)) => panic!("karma did not start: {err}"),
            }
        }
        panic!("karma did not start on any of {PORT_ATTEMPTS} ports: {last}");
    }
}

enum Failure {
    PortTaken(String),
    Other(String),
}

/// A running `karma` process; killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Server {
    /// The port the server listens on, on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    launch: Builder,
    directory: PathBuf,
    stderr_log: PathBuf,
    _temp: TempDir,
}

impl Server {
    /// A server started from `bin` with `--bind=127.0.0.1 --port=<free>
    /// --directory=<dir>`, `--log=false` unless the arguments set `--log`,
    /// then the builder's arguments.
    pub fn builder(bin: impl Into<PathBuf>) -> Builder {
        Builder {
            bin: bin.into(),
            args: Vec::new(),
            env: Vec::new(),
            directory: None,
            stderr_log: None,
            port: None,
            wait_ready: true,
        }
    }

    /// [`Server::builder`] with these arguments, started.
    pub fn start<S: AsRef<str>>(bin: impl Into<PathBuf>, args: &[S]) -> Server {
        Server::builder(bin).args(args).start()
    }

    fn command(&self, port: u16) -> Command {
        let launch = &self.launch;
        let mut cmd = Command::new(&launch.bin);
        cmd.env_clear().envs(std::env::vars_os().filter(|(name, _)| !name.to_string_lossy().starts_with("KARMA_")));
        cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
        let sets_log = launch.args.iter().any(|a| a.starts_with("--log=") || a == "--log");
        cmd.arg("--bind=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--directory={}", self.directory.display()))
            .args((!sets_log).then_some("--log=false"))
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// Spawns on `port` and (unless [`Builder::no_wait`]) waits until the
    /// server accepts connections.
    fn spawn(&mut self, port: u16) -> Result<(), Failure> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .map_err(|e| Failure::Other(format!("open {}: {e}", self.stderr_log.display())))?;
        let log_start = log.metadata().map_or(0, |m| m.len());
        let mut child = self.command(port).stderr(log).spawn().map_err(|e| Failure::Other(e.to_string()))?;
        if !self.launch.wait_ready {
            self.child = Some(child);
            self.port = port;
            return Ok(());
        }
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let said = self.stderr_since(log_start);
                let err = format!("{} exited with {status}: {said}", self.launch.bin.display());
                return Err(if said.contains("cannot listen on") {
                    Failure::PortTaken(err)
                } else {
                    Failure::Other(err)
                });
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                self.child = Some(child);
                self.port = port;
                return Ok(());
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::Other(format!("no connection accepted on port {port} within {DEADLINE:?}")));
            }
            sleep(Duration::from_millis(10));
        }
    }

    fn stderr_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.stderr_log) {
            if file.seek(SeekFrom::Start(offset)).is_ok() {
                let _ = file.read_to_string(&mut text);
            }
        }
        text
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.directory
    }

    /// Everything the server (every start of it) wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr_since(0)
    }

    /// The process id of the running server.
    pub fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("the server is running");
        i32::try_from(child.id()).expect("a pid fits in i32")
    }

    /// Waits for the process to exit (after a signal the test sent).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("the server is running");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait on the server") {
                self.child = None;
                return status;
            }
            assert!(started.elapsed() < DEADLINE, "karma did not exit within {DEADLINE:?}");
            sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process ended by itself (it is reaped then).
    pub fn has_exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("the server is running");
        child.try_wait().expect("try_wait on the server").is_some()
    }

    /// Sends signal `signal` (a `libc::SIG*` number) to the running server.
    pub fn signal(&self, signal: i32) {
        let signal = Signal::try_from(signal).expect("a valid signal number");
        kill(Pid::from_raw(self.pid()), signal).expect("signal the server");
    }

    /// A clean stop: SIGTERM (the server drains its connections, writes its
    /// final snapshot and closes), then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM as i32);
        self.wait_exit()
    }

    /// Whether the process is running (started and not yet seen exiting).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, then reap; a no-op when the server is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server (if running) and starts it again with the same
    /// arguments, port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(Failure::PortTaken(err) | Failure::Other(err)) = self.spawn(self.port) {
            panic!("karma did not restart: {err}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
