//! One TCP connection speaking protocol v2: write request lines, read
//! response lines (spec/protocol.md §1.2, §1.4).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::config::ClientConfig;
use super::ClientError;

/// Why an exchange failed, as far as retrying is concerned.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The socket was dead before the server answered anything: the write
    /// failed, or EOF/reset came before the first response byte. Safe to
    /// retry on a fresh connection if the request may be sent twice.
    Dead(String),
    /// Anything else: a timeout, a connection lost mid-response, garbage.
    Fatal(ClientError),
}

/// Is this I/O error a socket timeout? (`WouldBlock` on Unix, `TimedOut` on Windows.)
pub(crate) fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn opt(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// A TCP connection to the configured server, with Nagle off and the
/// configured read and write timeouts (`connect_timeout` bounds connecting).
pub(crate) fn connect(config: &ClientConfig) -> Result<TcpStream, ClientError> {
    let address = config.address();
    let addrs: Vec<SocketAddr> = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|e| ClientError::Connection(format!("cannot resolve {address}: {e}")))?
        .collect();
    let mut last: Option<io::Error> = None;
    let mut stream = None;
    for addr in &addrs {
        let attempt = match opt(config.connect_timeout) {
            Some(t) => TcpStream::connect_timeout(addr, t),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) if is_timeout(&e) => {
            return Err(ClientError::Timeout(format!(
                "connecting to {address} timed out after {:?}",
                config.connect_timeout
            )))
        }
        (None, Some(e)) => return Err(ClientError::Connection(format!("cannot connect to {address}: {e}"))),
        (None, None) => return Err(ClientError::Connection(format!("{address} resolved to no address"))),
    };
    let setup = |s: &TcpStream| -> io::Result<()> {
        s.set_nodelay(true)?;
        s.set_read_timeout(opt(config.read_timeout))?;
        s.set_write_timeout(opt(config.write_timeout))
    };
    setup(&stream).map_err(|e| ClientError::Connection(format!("cannot configure socket to {address}: {e}")))?;
    Ok(stream)
}

/// What [`ClientError::Protocol`] messages about an over-long response
/// start with; [`ClientError::is_response_too_large`] recognises them.
pub(crate) const RESPONSE_TOO_LARGE: &str = "response exceeds max_response_bytes";

/// The error for a response line longer than `max` bytes from `address`.
pub(crate) fn response_too_large(address: &str, max: usize) -> ClientError {
    ClientError::Protocol(format!("{RESPONSE_TOO_LARGE} ({max}) from {address}"))
}

/// `read_until(b'\n')` that lets `line` (which may already hold the start of
/// the response) grow to at most `max + 1` bytes: a body of `max` bytes and
/// its `\n` (`max` 0: no bound). `Ok(true)` when the line is longer than
/// that, whatever follows it on the socket.
pub(crate) fn read_bounded_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<bool> {
    if max == 0 {
        reader.read_until(b'\n', line)?;
        return Ok(false);
    }
    let room = (max as u64 + 1).saturating_sub(line.len() as u64);
    reader.take(room).read_until(b'\n', line)?;
    Ok(line.last() != Some(&b'\n') && line.len() > max)
}

#[derive(Debug)]
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
    /// `host:port`, for messages.
    address: String,
    /// `max_response_bytes` of the config (0: no bound).
    max_response: usize,
}

impl Connection {
    pub(crate) fn open(config: &ClientConfig) -> Result<Connection, ClientError> {
        let stream = connect(config)?;
        Ok(Connection {
            reader: BufReader::with_capacity(16 * 1024, stream),
            address: config.address(),
            max_response: config.max_response_bytes,
        })
    }

    /// Whether an idle connection still looks usable: the peer has not
    /// closed it (the server's idle read timeout does that) and no stray
    /// bytes are waiting. Never blocks, never writes.
    pub(crate) fn is_reusable(&self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        peek_idle(self.reader.get_ref())
    }

    /// Sends `payload` (one or more complete request lines) in one write
    /// and reads `count` response lines.
    pub(crate) fn exchange(&mut self, payload: &[u8], count: usize) -> Result<Vec<Vec<u8>>, Failure> {
        let address = &self.address;
        if let Err(e) = self.reader.get_mut().write_all(payload) {
            return Err(if is_timeout(&e) {
                Failure::Fatal(ClientError::Timeout(format!("writing to {address} timed out")))
            } else {
                Failure::Dead(format!("writing to {address} failed: {e}"))
            });
        }
        let mut lines = Vec::with_capacity(count);
        for _ in 0..count {
            let mut line = Vec::with_capacity(64);
            let got = read_bounded_line(&mut self.reader, &mut line, self.max_response);
            let nothing_yet = lines.is_empty() && line.is_empty();
            match got {
                Ok(true) => return Err(Failure::Fatal(response_too_large(address, self.max_response))),
                Ok(false) if nothing_yet => {
                    return Err(Failure::Dead(format!("{address} closed the connection before answering")))
                }
                Ok(false) if line.last() == Some(&b'\n') => {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    lines.push(line);
                }
                Ok(_) => {
                    return Err(Failure::Fatal(ClientError::Connection(format!(
                        "{address} closed the connection in the middle of a response ({} of {count} received)",
                        lines.len()
                    ))))
                }
                Err(e) if is_timeout(&e) => {
                    return Err(Failure::Fatal(ClientError::Timeout(format!(
                        "no response from {address} within the read timeout ({} of {count} received)",
                        lines.len()
                    ))))
                }
                Err(e) if nothing_yet && is_reset(&e) => {
                    return Err(Failure::Dead(format!("reading from {address} failed: {e}")))
                }
                Err(e) => {
                    return Err(Failure::Fatal(ClientError::Connection(format!(
                        "reading from {address} failed: {e} ({} of {count} received)",
                        lines.len()
                    ))))
                }
            }
        }
        Ok(lines)
    }
}

pub(crate) fn is_reset(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe)
}

/// `true` if nothing is readable yet (the expected state of an idle
/// connection); `false` on EOF, a pending error or unexpected bytes.
fn peek_idle(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let idle = matches!(stream.peek(&mut byte), Err(e) if is_timeout(&e));
    stream.set_nonblocking(false).is_ok() && idle
}
