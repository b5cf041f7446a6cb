//! Netlink in process: the kernel's own interface for nftables ([`nft`]) and for links,
//! addresses and routes ([`route`]), so that injecting and reverting a network fault is a
//! message and its acknowledgement, not a process spawn.
//!
//! A [`Socket`] belongs to one network namespace: it is made inside the namespace on a
//! short-lived thread (a netlink socket stays bound to the namespace it was created in) and
//! then used from any thread — a fault keeps one per namespace for its whole life (inject,
//! confirm, observe, revert). Messages are built with [`Msg`] (attributes, nested ones,
//! 4-byte alignment) and read back with [`attrs`]. No string from an experiment is ever
//! interpreted: names and addresses go into attributes as data.

pub mod nft;
pub mod route;

use crate::netns::Netns;
use nix::errno::Errno;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// How long a request may wait for the kernel's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// What the kernel (or the socket) said no with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {errno}")]
pub struct NlError {
    /// What was being done.
    pub what: String,
    pub errno: Errno,
}

impl NlError {
    pub fn new(what: impl Into<String>, errno: Errno) -> NlError {
        NlError {
            what: what.into(),
            errno,
        }
    }
}

/// Which netlink family a socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `NETLINK_ROUTE`: links, addresses, routes, qdiscs.
    Route,
    /// `NETLINK_NETFILTER`: nftables.
    Netfilter,
}

/// A netlink socket inside one network namespace.
pub struct Socket {
    /// `None` only while being dropped.
    fd: Option<OwnedFd>,
    family: Family,
    seq: u32,
    rx: Vec<u8>,
}

/// How long a closed nf_tables socket is kept before it is really closed (see [`Drop`]).
const CLOSE_AFTER: Duration = Duration::from_millis(250);

impl Drop for Socket {
    fn drop(&mut self) {
        // Closing an nf_tables socket while the kernel still has a transaction's deletions
        // to free (after an RCU grace period, ~15 ms here) waits for them — holding the
        // namespace's commit lock, so the next transaction there waits too. Closed a
        // moment later on a thread of its own, it waits for nothing: the revert returns
        // once the table is gone, and a fault injected right after is not held up. (Kept
        // any longer, a socket would keep its namespace and the devices in it alive after
        // their owner deleted it.)
        if let (Some(fd), Family::Netfilter) = (self.fd.take(), self.family) {
            let closer = std::thread::Builder::new().name("netlink-close".into());
            if let Err(e) = closer.spawn(move || {
                std::thread::sleep(CLOSE_AFTER);
                drop(fd);
            }) {
                tracing::debug!("closing a netlink socket inline: {e}");
            }
        }
    }
}

/// What [`Socket::receive`] hands each message to: (type, flags, seq, whole message).
type OnMessage<'a> = &'a mut dyn FnMut(u16, u16, u32, &[u8]);

fn aligned(n: usize) -> usize {
    (n + 3) & !3
}

impl Socket {
    /// A socket of `family` inside `netns` (the namespace is entered on a thread of its own,
    /// never by this one).
    pub fn open(netns: &Netns, family: Family) -> Result<Socket, NlError> {
        let fd = if *netns == Netns::Root {
            raw_socket(family)?
        } else {
            let ns = netns.clone();
            std::thread::spawn(move || {
                crate::probe::enter(Some(&ns))
                    .map_err(|e| NlError::new(e, Errno::ENOENT))
                    .and_then(|()| raw_socket(family))
            })
            .join()
            .map_err(|_| NlError::new("netlink socket thread panicked", Errno::EIO))??
        };
        Ok(Socket {
            fd: Some(fd),
            family,
            seq: (std::process::id() << 12) ^ 0x5eed,
            rx: vec![0u8; 64 * 1024],
        })
    }

    fn fd(&self) -> Result<&OwnedFd, NlError> {
        self.fd
            .as_ref()
            .ok_or_else(|| NlError::new("netlink socket closed", Errno::EBADF))
    }

    /// The next sequence number (never 0: 0 marks kernel notifications).
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Send one datagram holding one or more messages.
    fn send(&self, buf: &[u8]) -> Result<(), NlError> {
        use nix::sys::socket::{send, MsgFlags};
        loop {
            match send(self.fd()?.as_raw_fd(), buf, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(NlError::new("netlink send", e)),
            }
        }
    }

    /// Receive one datagram (waiting at most until `deadline`) and hand each message in it
    /// to `each` as (type, flags, seq, whole message).
    fn receive(&mut self, deadline: Instant, each: OnMessage<'_>) -> Result<(), NlError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use nix::sys::socket::{recv, MsgFlags};
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NlError::new("no answer from the kernel", Errno::ETIMEDOUT));
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let Some(fd) = self.fd.as_ref() else {
                return Err(NlError::new("netlink socket closed", Errno::EBADF));
            };
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(NlError::new("netlink poll", e)),
            }
            let n = match recv(fd.as_raw_fd(), &mut self.rx, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(NlError::new("netlink receive", e)),
            };
            let mut off = 0;
            while off + 16 <= n {
                let len = u32_at(&self.rx, off).unwrap_or(0) as usize;
                if len < 16 || off + len > n {
                    break;
                }
                let m = &self.rx[off..off + len];
                each(
                    u16_at(m, 4).unwrap_or(0),
                    u16_at(m, 6).unwrap_or(0),
                    u32_at(m, 8).unwrap_or(0),
                    m,
                );
                off += aligned(len);
            }
            return Ok(());
        }
    }

    /// Send `msgs` (built with sequence numbers from [`Socket::next_seq`]) in one datagram
    /// and wait until every sequence number in `acked` has been answered. The first error
    /// the kernel reports is returned, with what it was about (`about[i]` for `acked[i]`).
    pub fn transact(
        &mut self,
        msgs: &[u8],
        acked: &[u32],
        about: &[String],
    ) -> Result<(), NlError> {
        self.send(msgs)?;
        let mut pending: Vec<u32> = acked.to_vec();
        let mut first: Option<NlError> = None;
        let deadline = Instant::now() + ANSWER_WITHIN;
        while !pending.is_empty() {
            let mut got = Vec::new();
            let r = self.receive(deadline, &mut |typ, _, seq, m| {
                if typ == NLMSG_ERROR {
                    got.push((seq, errno_of(m)));
                }
            });
            if let Err(e) = r {
                // Once the kernel said no, a batch it aborted may leave the rest unanswered.
                return Err(first.unwrap_or(e));
            }
            for (seq, errno) in got {
                if let Some(i) = pending.iter().position(|s| *s == seq) {
                    pending.swap_remove(i);
                    if errno != 0 && first.is_none() {
                        let what = acked
                            .iter()
                            .position(|s| *s == seq)
                            .and_then(|i| about.get(i))
                            .cloned()
                            .unwrap_or_else(|| "netlink request".into());
                        first = Some(NlError::new(what, Errno::from_raw(-errno)));
                    }
                }
            }
            if first.is_some() && !pending.is_empty() {
                // Give the kernel a moment to answer the rest, then report.
                let soon = Instant::now() + Duration::from_millis(50);
                let mut more = Vec::new();
                let _ = self.receive(soon.min(deadline), &mut |typ, _, seq, _| {
                    if typ == NLMSG_ERROR {
                        more.push(seq);
                    }
                });
                break;
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One request answered by one message or an error (`NLM_F_ACK` not set): the reply's
    /// bytes.
    pub fn get(&mut self, msg: Msg, what: &str) -> Result<Vec<u8>, NlError> {
        let mut all = self.dump(msg, what)?;
        all.pop()
            .ok_or_else(|| NlError::new(format!("{what}: no answer"), Errno::ENODATA))
    }

    /// A dump (or a get): every message answered until `NLMSG_DONE` (or the single answer).
    pub fn dump(&mut self, msg: Msg, what: &str) -> Result<Vec<Vec<u8>>, NlError> {
        let seq = msg.seq();
        let multi = msg.flags() & NLM_F_DUMP == NLM_F_DUMP;
        self.send(&msg.finish())?;
        let deadline = Instant::now() + ANSWER_WITHIN;
        let mut out = Vec::new();
        let mut done: Option<Result<(), NlError>> = None;
        while done.is_none() {
            self.receive(deadline, &mut |typ, flags, s, m| {
                if s != seq || done.is_some() {
                    return;
                }
                match typ {
                    NLMSG_ERROR => {
                        let e = errno_of(m);
                        done = Some(if e == 0 {
                            Ok(())
                        } else {
                            Err(NlError::new(what, Errno::from_raw(-e)))
                        });
                    }
                    NLMSG_DONE => done = Some(Ok(())),
                    _ => {
                        out.push(m.to_vec());
                        if !multi && flags & NLM_F_MULTI == 0 {
                            done = Some(Ok(()));
                        }
                    }
                }
            })
            .map_err(|e| NlError::new(format!("{what}: {}", e.what), e.errno))?;
        }
        done.unwrap_or(Ok(())).map(|()| out)
    }
}

fn raw_socket(family: Family) -> Result<OwnedFd, NlError> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, NetlinkAddr, SockFlag, SockProtocol,
        SockType,
    };
    let proto = match family {
        Family::Route => SockProtocol::NetlinkRoute,
        Family::Netfilter => SockProtocol::NetlinkNetFilter,
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        proto,
    )
    .map_err(|e| NlError::new("netlink socket", e))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| NlError::new("netlink bind", e))?;
    // Dumps of large tables arrive in several datagrams; a roomy buffer keeps them whole.
    let _ = setsockopt(&fd, sockopt::RcvBuf, &(1 << 20));
    Ok(fd)
}

/// The (negative) errno of an `NLMSG_ERROR` message; 0 is an acknowledgement.
fn errno_of(m: &[u8]) -> i32 {
    m.get(16..20)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .unwrap_or(-libc::EIO)
}

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A netlink message under construction: header, family header, attributes.
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    /// A message of `typ` with `flags` and `seq`, followed by the family's fixed header.
    pub fn new(typ: u16, flags: u16, seq: u32, header: &[u8]) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&typ.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(header);
        buf.resize(aligned(buf.len()), 0);
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    pub fn seq(&self) -> u32 {
        u32_at(&self.buf, 8).unwrap_or(0)
    }

    pub fn flags(&self) -> u16 {
        u16_at(&self.buf, 6).unwrap_or(0)
    }

    /// An attribute with raw bytes.
    pub fn put(&mut self, typ: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        self.buf
            .extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&typ.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(aligned(self.buf.len()), 0);
        self
    }

    /// A NUL-terminated string attribute.
    pub fn strz(&mut self, typ: u16, s: &str) -> &mut Msg {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(typ, &b)
    }

    pub fn be32(&mut self, typ: u16, v: u32) -> &mut Msg {
        self.put(typ, &v.to_be_bytes())
    }

    pub fn u32(&mut self, typ: u16, v: u32) -> &mut Msg {
        self.put(typ, &v.to_ne_bytes())
    }

    /// Open a nested attribute; close it with [`Msg::end`].
    pub fn begin(&mut self, typ: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(typ | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end(&mut self) -> &mut Msg {
        if let Some(at) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The finished message's bytes (length filled in).
    pub fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end();
        }
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// The attributes in `b` (a message body past its fixed headers, or a nested attribute's
/// payload) as (type without flags, payload).
pub fn attrs(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut a = 0;
    while a + 4 <= b.len() {
        let len = usize::from(u16_at(b, a).unwrap_or(0));
        let typ = u16_at(b, a + 2).unwrap_or(0) & NLA_TYPE_MASK;
        if len < 4 || a + len > b.len() {
            break;
        }
        out.push((typ, &b[a + 4..a + len]));
        a += aligned(len);
    }
    out
}

/// The payload of the first attribute of type `typ`.
pub fn attr<'a>(list: &[(u16, &'a [u8])], typ: u16) -> Option<&'a [u8]> {
    list.iter().find(|(t, _)| *t == typ).map(|(_, d)| *d)
}

/// A string attribute's text (up to its NUL).
pub fn text(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_nested_lengths_filled_in() {
        let mut m = Msg::new(0x0a00, NLM_F_REQUEST, 7, &[2, 0, 0, 0]);
        m.strz(1, "t");
        m.begin(4).be32(1, 3).end();
        let b = m.finish();
        assert_eq!(b.len() % 4, 0);
        assert_eq!(u32_at(&b, 0), Some(b.len() as u32));
        assert_eq!(u32_at(&b, 8), Some(7));
        let list = attrs(&b[20..]);
        assert_eq!(list.len(), 2);
        assert_eq!(text(attr(&list, 1).expect("name")), "t");
        let inner = attrs(attr(&list, 4).expect("nest"));
        assert_eq!(attr(&inner, 1), Some(&3u32.to_be_bytes()[..]));
    }
}
