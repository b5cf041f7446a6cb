//! A minimal Redis (RESP2) client: enough for `SADD`, `SMEMBERS` and `ROLE`, with
//! deadlines on every read and write.

use super::net::{self, left, NetError};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) | Reply::Error(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub fn read_reply<R: BufRead>(r: &mut R, depth: usize) -> std::io::Result<Reply> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    if depth > 8 {
        return Err(bad("reply nested too deep"));
    }
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad("truncated reply"));
    }
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad("bad number in reply"));
    match line[0] {
        b'+' => Ok(Reply::Status(body)),
        b'-' => Ok(Reply::Error(body)),
        b':' => Ok(Reply::Int(num(&body)?)),
        b'$' => {
            let n = num(&body)?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            if n > 512 << 20 {
                return Err(bad("bulk reply too large"));
            }
            let mut b = vec![0u8; n as usize + 2];
            r.read_exact(&mut b)?;
            b.truncate(n as usize);
            Ok(Reply::Bulk(Some(b)))
        }
        b'*' => {
            let n = num(&body)?;
            if n < 0 {
                return Ok(Reply::Array(None));
            }
            if n > 10_000_000 {
                return Err(bad("array reply too large"));
            }
            let mut v = Vec::with_capacity(n.min(4096) as usize);
            for _ in 0..n {
                v.push(read_reply(r, depth + 1)?);
            }
            Ok(Reply::Array(Some(v)))
        }
        _ => Err(bad("unknown reply type")),
    }
}

/// One connection to one node.
pub struct Conn {
    pub addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(
        addr: SocketAddr,
        connect_timeout: Duration,
        user_timeout: Duration,
    ) -> Result<Conn, NetError> {
        let s = net::connect(addr, connect_timeout, user_timeout)?;
        Ok(Conn {
            addr,
            reader: BufReader::new(s),
        })
    }

    /// Send one command and read its reply by `deadline`.
    pub fn call(&mut self, args: &[&[u8]], deadline: Instant) -> Result<Reply, NetError> {
        let s = self.reader.get_mut();
        s.set_write_timeout(Some(left(deadline)))
            .map_err(|e| NetError::before(e.to_string()))?;
        s.write_all(&encode(args))
            .map_err(|e| NetError::before(format!("sending to {}: {e}", self.addr)))?;
        s.set_read_timeout(Some(left(deadline)))
            .map_err(|e| NetError::after(e.to_string()))?;
        read_reply(&mut self.reader, 0).map_err(|e| {
            NetError::after(
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
                    format!("no reply from {} in time", self.addr)
                } else {
                    format!("reading from {}: {e}", self.addr)
                },
            )
        })
    }
}

/// `ROLE` of one node: `master`, `slave` or `sentinel`.
pub fn role(addr: SocketAddr, timeout: Duration) -> Result<String, NetError> {
    let deadline = Instant::now() + timeout;
    let mut c = Conn::open(addr, timeout, timeout)?;
    match c.call(&[b"ROLE"], deadline)? {
        Reply::Array(Some(v)) if !v.is_empty() => v[0]
            .text()
            .ok_or_else(|| NetError::after("odd ROLE reply".into())),
        Reply::Error(e) => Err(NetError::after(e)),
        other => Err(NetError::after(format!("odd ROLE reply {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_parses_resp() {
        assert_eq!(
            encode(&[b"SADD", b"k", b"v1"]),
            b"*3\r\n$4\r\nSADD\r\n$1\r\nk\r\n$2\r\nv1\r\n"
        );
        let mut r = BufReader::new(&b"*3\r\n$6\r\nmaster\r\n:42\r\n*1\r\n*3\r\n$8\r\n10.0.0.2\r\n$4\r\n6379\r\n$1\r\n0\r\n"[..]);
        let rep = read_reply(&mut r, 0).expect("parse");
        let Reply::Array(Some(v)) = rep else {
            panic!("array")
        };
        assert_eq!(v[0].text().as_deref(), Some("master"));
        assert_eq!(v[1], Reply::Int(42));
        let mut r =
            BufReader::new(&b"-READONLY You can't write against a read only replica.\r\n"[..]);
        assert!(matches!(read_reply(&mut r, 0), Ok(Reply::Error(e)) if e.starts_with("READONLY")));
        let mut r = BufReader::new(&b"$5\r\nab"[..]);
        assert!(read_reply(&mut r, 0).is_err());
    }
}
