//! Sockets for workload clients: connect and request timeouts, TCP keepalive and
//! `TCP_USER_TIMEOUT`, so a client talking to an isolated node fails fast instead of
//! hanging the experiment; and a minimal HTTP/1.1 request for JSON gateways.

use nix::sys::socket::{setsockopt, sockopt};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Why a request did not get an answer, and whether it may have been applied.
#[derive(Debug)]
pub struct NetError {
    /// The whole request left this machine: the outcome is unknown. A request whose write
    /// failed never arrived whole, and neither Redis nor HTTP acts on a partial request.
    pub sent: bool,
    pub message: String,
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NetError {}

/// An HTTP response that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("incomplete HTTP response")]
    Incomplete,
    #[error("no HTTP status")]
    NoStatus,
    #[error("bad chunk size")]
    BadChunkSize,
}

impl NetError {
    pub fn before(message: String) -> NetError {
        NetError {
            sent: false,
            message,
        }
    }
    pub fn after(message: String) -> NetError {
        NetError {
            sent: true,
            message,
        }
    }
}

pub fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Connect with a timeout and set keepalive and user timeouts.
pub fn connect(
    addr: SocketAddr,
    connect_timeout: Duration,
    user_timeout: Duration,
) -> Result<TcpStream, NetError> {
    let s = TcpStream::connect_timeout(&addr, connect_timeout)
        .map_err(|e| NetError::before(format!("connect {addr}: {e}")))?;
    let _ = s.set_nodelay(true);
    let _ = setsockopt(&s, sockopt::KeepAlive, &true);
    let _ = setsockopt(&s, sockopt::TcpKeepIdle, &1);
    let _ = setsockopt(&s, sockopt::TcpKeepInterval, &1);
    let _ = setsockopt(&s, sockopt::TcpKeepCount, &3);
    let ms = u32::try_from(user_timeout.as_millis())
        .unwrap_or(u32::MAX)
        .max(1);
    let _ = setsockopt(&s, sockopt::TcpUserTimeout, &ms);
    Ok(s)
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    connect_timeout: Duration,
    deadline: Instant,
) -> Result<(u16, Vec<u8>), NetError> {
    let mut s = connect(addr, connect_timeout.min(left(deadline)), left(deadline))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: murphy-workload\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.set_write_timeout(Some(left(deadline)))
        .map_err(|e| NetError::before(e.to_string()))?;
    s.write_all(req.as_bytes())
        .map_err(|e| NetError::before(format!("sending to {addr}: {e}")))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    loop {
        if Instant::now() >= deadline {
            return Err(NetError::after(format!("no answer from {addr} in time")));
        }
        s.set_read_timeout(Some(left(deadline)))
            .map_err(|e| NetError::after(e.to_string()))?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 64 << 20 {
                    return Err(NetError::after("response over 64 MiB".into()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(NetError::after(format!("no answer from {addr} in time")))
            }
            Err(e) => return Err(NetError::after(format!("reading from {addr}: {e}"))),
        }
    }
    parse_response(&buf).map_err(|e| NetError::after(e.to_string()))
}

/// Split an HTTP/1.1 response into status and body (handles chunked encoding).
pub fn parse_response(buf: &[u8]) -> Result<(u16, Vec<u8>), ResponseError> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ResponseError::Incomplete)?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(ResponseError::NoStatus)?;
    let mut body = buf[end + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..nl])
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .map_err(|_| ResponseError::BadChunkSize)?;
            rest = &rest[nl + 2..];
            if size == 0 || rest.len() < size {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[(size + 2).min(rest.len())..];
        }
        body = out;
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let (s, b) =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").expect("plain");
        assert_eq!((s, b.as_slice()), (200, &b"hi"[..]));
        let (s, b) = parse_response(
            b"HTTP/1.1 503 No\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!((s, b.as_slice()), (503, &b"abcde"[..]));
        assert!(parse_response(b"HTTP/1.1 200").is_err());
    }
}
