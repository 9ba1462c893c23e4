// SPDX-License-Identifier: MPL-2.0
//! The HTTP endpoint: one thread accepting connections on the configured address and answering
//! `GET /metrics` (and `GET /`) with a fresh scrape; anything else gets 404 or 405. One request
//! per connection, each read bounded in time, so a client that stalls cannot hold it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::exposition::CONTENT_TYPE;

/// Serves `scrape()` on `listener` until the process ends.
pub fn serve(listener: TcpListener, scrape: impl Fn() -> String + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("vigil-metrics-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        let _ = answer(s, &scrape);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
    if let Err(e) = spawned {
        glib::g_warning!("vigilmetrics", "cannot start the metrics HTTP thread: {e}");
    }
}

fn answer(mut s: TcpStream, scrape: &impl Fn() -> String) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&request);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") | ("GET", "/") => ("200 OK", CONTENT_TYPE, scrape()),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "vigilmetrics serves /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".to_string(),
        ),
    };
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}
