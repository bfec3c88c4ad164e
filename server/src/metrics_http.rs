//! `--metrics-port`: a minimal HTTP/1.1 endpoint for Prometheus scrapers.
//!
//! * `GET /metrics` → `200`, `text/plain; version=0.0.4`, the engine's
//!   `system.metrics` text;
//! * `GET /health` → `200 ok`, or `503` with the engine's unhealthy reason;
//! * anything else → `404` (`405` for other methods).
//!
//! One request per connection (`Connection: close`).

use std::future::Future;
use std::time::Duration;

use karma_engine::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 8 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the endpoint until `shutdown` completes.
pub async fn serve(listener: TcpListener, engine: Engine, shutdown: impl Future) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(TIMEOUT, handle(stream, engine)).await;
                    });
                }
                Err(err) => {
                    tracing::error!(event = "metrics.accept_failed", "{err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// The response for one request head (request line + headers).
pub fn respond(engine: &Engine, head: &[u8]) -> Vec<u8> {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let request_line = String::from_utf8_lossy(&head[..line_end]);
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return response("405 Method Not Allowed", "text/plain", "method not allowed\n", false);
    }
    match path {
        "/metrics" => response("200 OK", "text/plain; version=0.0.4; charset=utf-8", &engine.metrics_text(), head_only),
        "/health" => match engine.unhealthy_reason() {
            None => response("200 OK", "text/plain", "ok\n", head_only),
            Some(reason) => response("503 Service Unavailable", "text/plain", &format!("{reason}\n"), head_only),
        },
        _ => response("404 Not Found", "text/plain", "not found\n", head_only),
    }
}

fn response(status: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

async fn handle(mut stream: TcpStream, engine: Engine) {
    let mut head = Vec::with_capacity(512);
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            let _ = stream.write_all(&response("431 Request Header Fields Too Large", "text/plain", "", false)).await;
            return;
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                if head.is_empty() {
                    return;
                }
                break;
            }
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let body = respond(&engine, &head);
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let engine = Engine::in_memory();
        let ok = String::from_utf8(respond(&engine, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")).unwrap_or_default();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4"));
        let health = String::from_utf8(respond(&engine, b"GET /health HTTP/1.1\r\n\r\n")).unwrap_or_default();
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n") && health.ends_with("ok\n"));
        let missing = String::from_utf8(respond(&engine, b"GET /nope HTTP/1.1\r\n\r\n")).unwrap_or_default();
        assert!(missing.starts_with("HTTP/1.1 404"));
        let post = String::from_utf8(respond(&engine, b"POST /metrics HTTP/1.1\r\n\r\n")).unwrap_or_default();
        assert!(post.starts_with("HTTP/1.1 405"));
        let head = String::from_utf8(respond(&engine, b"HEAD /metrics HTTP/1.1\r\n\r\n")).unwrap_or_default();
        assert!(head.ends_with("\r\n\r\n"));
    }
}
