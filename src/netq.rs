//! Userspace packet-delay engine on NFQUEUE (`netq`).
//!
//! This kernel has neither `tc netem` nor the nftables `queue` statement, but the
//! iptables `NFQUEUE` target works. Murphy inserts a rule such as
//! `iptables -I INPUT ... -j NFQUEUE --queue-num N --queue-bypass` (built by
//! [`iptables_rule`]) in the receiver's namespace, and runs [`engine_main`] there as a
//! helper process. The engine binds queue `N` over netfilter netlink (plain safe Rust on
//! `nix` sockets, no libnetfilter_queue), holds every queued packet on a timer heap and
//! accepts it when its release time comes: delay, uniform jitter with netem-style
//! correlation, reorder (a fraction sent at once), loss (drop verdict) and corruption
//! (one flipped bit in the transport segment, accepted with the modified payload).
//!
//! What it must never do:
//! - never fail closed: the queue is configured fail-open (a full queue accepts) and the
//!   rule must carry `--queue-bypass`, so when the engine is gone packets pass untouched;
//! - never keep a packet past the end: on a stop byte, EOF on stdin, SIGTERM/SIGINT or the
//!   end of the lease every held packet is accepted at once before exiting;
//! - never create packets (NFQUEUE cannot duplicate; use nftables `dup` for that) nor
//!   delay on a sender's OUTPUT chain (TCP small queues throttle the sender instead);
//! - never run a shell: rules are argv vectors, and this module starts no process.
//!
//! Note that the kernel *drops* packets still queued to a socket that closes without a
//! verdict (SIGKILL): those are lost once, after which `--queue-bypass` lets traffic pass.

use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of the packet engine that cannot be used. Murphy writes these settings itself from a
/// validated experiment, so this names a bug or a hand-made config, never a user's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetqConfigError(pub String);

impl std::fmt::Display for NetqConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NetqConfigError {}

/// Largest accepted `delayUs` (60 s): longer holds only time out connections.
pub const MAX_DELAY_US: u64 = 60_000_000;
/// Interval between two `stats` lines.
pub const STATS_EVERY: Duration = Duration::from_millis(500);

fn default_queue_max_len() -> u32 {
    16_384
}

/// Packets per second the queue is sized for: above 1 Gbit/s of full-size frames (GSO
/// packets count once however large).
pub const QUEUE_SIZED_FOR_PPS: u64 = 150_000;

/// The kernel queue's length for a delay: every packet of `delay` at
/// [`QUEUE_SIZED_FOR_PPS`] fits, at least the default, at most 262,144 (each queued packet
/// holds kernel memory). Beyond it the kernel passes packets unshaped, which the engine
/// reports (`held_peak` = `queue_max`).
pub fn queue_len_for(delay_us: u64) -> u32 {
    let want = delay_us.saturating_mul(QUEUE_SIZED_FOR_PPS) / 1_000_000;
    u32::try_from(want.clamp(u64::from(default_queue_max_len()), 262_144)).unwrap_or(262_144)
}

/// Configuration of one engine, as JSON (camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetqConfig {
    /// NFQUEUE number, the same as the rule's `--queue-num`.
    pub queue: u16,
    /// Base delay in microseconds.
    #[serde(default)]
    pub delay_us: u64,
    /// Uniform jitter (+/-) in microseconds around `delayUs`; must not exceed it.
    #[serde(default)]
    pub jitter_us: u64,
    /// Jitter correlation 0..=1: `next = c*last + (1-c)*fresh` (as netem); no effect
    /// without jitter.
    #[serde(default)]
    pub correlation: f64,
    /// Probability of a drop verdict.
    #[serde(default)]
    pub loss: f64,
    /// Probability of flipping one bit of the transport segment.
    #[serde(default)]
    pub corrupt: f64,
    /// Must be 0: NFQUEUE cannot copy packets (use nftables `dup`).
    #[serde(default)]
    pub duplicate: f64,
    /// Probability that a packet is sent at once instead of delayed (needs `delayUs` > 0).
    #[serde(default)]
    pub reorder: f64,
    /// Seed of the random stream; the same seed gives the same decisions.
    #[serde(default)]
    pub seed: u64,
    /// The engine stops by itself after this many milliseconds.
    pub lease_ms: u64,
    /// Kernel queue length (packets queued or held). When full, packets pass undelayed.
    #[serde(default = "default_queue_max_len")]
    pub queue_max_len: u32,
}

impl NetqConfig {
    /// Check ranges and combinations, with a message naming the field.
    pub fn validate(&self) -> Result<(), NetqConfigError> {
        self.validate_inner().map_err(NetqConfigError)
    }

    fn validate_inner(&self) -> Result<(), String> {
        for (name, p) in [
            ("correlation", self.correlation),
            ("loss", self.loss),
            ("corrupt", self.corrupt),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                return Err(format!("{name} must be within 0..=1, got {p}"));
            }
        }
        if self.duplicate > 0.0 {
            return Err(
                "duplicate is not possible with NFQUEUE (it cannot create packets); \
                 use nftables `dup` instead and set duplicate to 0"
                    .into(),
            );
        }
        if self.delay_us > MAX_DELAY_US {
            return Err(format!(
                "delayUs must be at most {MAX_DELAY_US}, got {}",
                self.delay_us
            ));
        }
        if self.jitter_us > self.delay_us {
            return Err(format!(
                "jitterUs ({}) must not exceed delayUs ({})",
                self.jitter_us, self.delay_us
            ));
        }
        if self.reorder > 0.0 && self.delay_us == 0 {
            return Err("reorder needs delayUs > 0 (reordered packets skip the delay)".into());
        }
        if self.lease_ms == 0 {
            return Err("leaseMs must be positive".into());
        }
        if !(64..=1 << 20).contains(&self.queue_max_len) {
            return Err(format!(
                "queueMaxLen must be within 64..=1048576, got {}",
                self.queue_max_len
            ));
        }
        Ok(())
    }
}

/// Parse and validate a configuration.
pub fn parse_config(json: &str) -> Result<NetqConfig, NetqConfigError> {
    parse_config_inner(json).map_err(NetqConfigError)
}

fn parse_config_inner(json: &str) -> Result<NetqConfig, String> {
    let cfg: NetqConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
    cfg.validate_inner()?;
    Ok(cfg)
}

// ---------------------------------------------------------------------------------------
// Decisions

/// SplitMix64: small, seedable, good enough for fault injection.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        crate::rand::next(&mut self.0)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// What to do with one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Drop,
    /// Accept after `delay`; `flip_bit` is a bit index into the packet to invert.
    Accept {
        delay: Duration,
        flip_bit: Option<usize>,
    },
}

#[derive(Debug, Clone)]
struct Shaper {
    cfg: NetqConfig,
    rng: Rng,
    last: f64,
}

impl Shaper {
    fn new(cfg: NetqConfig) -> Shaper {
        Shaper {
            rng: Rng(cfg.seed ^ 0x6E65_7471_5EED_0001),
            cfg,
            last: 0.5,
        }
    }

    /// Decide for a packet whose network-layer bytes are `packet`.
    fn decide(&mut self, packet: &[u8]) -> Decision {
        if self.rng.chance(self.cfg.loss) {
            return Decision::Drop;
        }
        let flip_bit = if self.rng.chance(self.cfg.corrupt) {
            let start = transport_offset(packet);
            (start < packet.len())
                .then(|| start * 8 + self.rng.below(((packet.len() - start) * 8) as u64) as usize)
        } else {
            None
        };
        let delay = if self.rng.chance(self.cfg.reorder) {
            Duration::ZERO
        } else {
            Duration::from_micros(self.delay_us())
        };
        Decision::Accept { delay, flip_bit }
    }

    fn delay_us(&mut self) -> u64 {
        let (d, j) = (self.cfg.delay_us, self.cfg.jitter_us);
        if j == 0 {
            return d;
        }
        let c = self.cfg.correlation;
        let u = c * self.last + (1.0 - c) * self.rng.unit();
        self.last = u;
        let offset = ((2.0 * u - 1.0) * j as f64).round() as i64;
        d.saturating_add_signed(offset)
    }
}

/// Offset of the transport header: after the IPv4 header (IHL) or the fixed IPv6 header.
fn transport_offset(packet: &[u8]) -> usize {
    match packet.first().map(|b| b >> 4) {
        Some(4) => usize::from(packet[0] & 0x0f) * 4,
        Some(6) => 40,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------
// Netfilter netlink (NFQUEUE) wire format

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQA_CFG_F_GSO: u32 = 4;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Flush the verdict batch before it grows past this (the kernel caps a send at sndbuf).
const TX_FLUSH: usize = 48 * 1024;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Start a netfilter message; returns its offset for [`nl_end`].
fn nl_begin(buf: &mut Vec<u8>, msg: u16, flags: u16, seq: u32, queue: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg).to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family AF_UNSPEC, version 0, resource id = queue (big endian).
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&queue.to_be_bytes());
    start
}

fn nla_put(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    // Attribute payloads here are at most one packet (65535) plus a header.
    let len16 = u16::try_from(len).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len16.to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + align4(len) - len, 0);
}

fn nl_end(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// What the engine asks of the kernel for each packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CopyMode {
    /// Whole packets (corruption rewrites them) or their metadata only (delay, loss and
    /// reorder never read a byte of the packet).
    whole: bool,
}

impl CopyMode {
    fn for_config(cfg: &NetqConfig) -> CopyMode {
        CopyMode {
            whole: cfg.corrupt > 0.0,
        }
    }
    /// Queue flags: always fail open; GSO packets whole when nothing is rewritten, so the
    /// kernel does not segment every large packet before queueing it.
    fn flags(self) -> u32 {
        if self.whole {
            NFQA_CFG_F_FAIL_OPEN
        } else {
            NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO
        }
    }
}

/// One configuration message: bind, copy mode and range, queue length, flags.
fn config_message(queue: u16, seq: u32, max_len: u32, copy: CopyMode) -> Vec<u8> {
    let mut b = Vec::with_capacity(96);
    let s = nl_begin(
        &mut b,
        NFQNL_MSG_CONFIG,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        queue,
    );
    nla_put(&mut b, NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0]);
    let (range, mode) = if copy.whole {
        (0xffffu32, NFQNL_COPY_PACKET)
    } else {
        (0, NFQNL_COPY_META)
    };
    let mut params = range.to_be_bytes().to_vec();
    params.push(mode);
    nla_put(&mut b, NFQA_CFG_PARAMS, &params);
    nla_put(&mut b, NFQA_CFG_QUEUE_MAXLEN, &max_len.to_be_bytes());
    let mask = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
    nla_put(&mut b, NFQA_CFG_MASK, &mask.to_be_bytes());
    nla_put(&mut b, NFQA_CFG_FLAGS, &copy.flags().to_be_bytes());
    nl_end(&mut b, s);
    b
}

/// Append a verdict (optionally with a replacement payload) to a batch.
fn put_verdict(buf: &mut Vec<u8>, queue: u16, id: u32, verdict: u32, payload: Option<&[u8]>) {
    let s = nl_begin(buf, NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, queue);
    let mut hdr = [0u8; 8];
    hdr[..4].copy_from_slice(&verdict.to_be_bytes());
    hdr[4..].copy_from_slice(&id.to_be_bytes());
    nla_put(buf, NFQA_VERDICT_HDR, &hdr);
    if let Some(p) = payload {
        nla_put(buf, NFQA_PAYLOAD, p);
    }
    nl_end(buf, s);
}

/// A netlink message read from the socket.
#[derive(Debug, PartialEq, Eq)]
enum Incoming<'a> {
    Packet {
        id: u32,
        payload: &'a [u8],
    },
    /// An error or ack (`errno` 0) for the request with this sequence number.
    Error {
        errno: i32,
        seq: u32,
    },
    Other,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Split a datagram into netlink messages and decode the ones we care about.
fn parse_datagram(buf: &[u8]) -> Vec<Incoming<'_>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let Some(len) = u32_at(buf, off).map(|l| l as usize) else {
            break;
        };
        if len < 16 || off + len > buf.len() {
            break;
        }
        let msg = &buf[off..off + len];
        let typ = u16_at(msg, 4).unwrap_or(0);
        if typ == NLMSG_ERROR {
            let errno = u32_at(msg, 16).map(|e| e as i32).unwrap_or(0);
            // The original header follows: its seq is at 16 + 4 + 8.
            let seq = u32_at(msg, 28).unwrap_or(0);
            out.push(Incoming::Error { errno, seq });
        } else if typ == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
            out.push(parse_packet(msg).unwrap_or(Incoming::Other));
        } else {
            out.push(Incoming::Other);
        }
        off += align4(len);
    }
    out
}

fn parse_packet(msg: &[u8]) -> Option<Incoming<'_>> {
    let mut id = None;
    let mut payload: &[u8] = &[];
    let mut a = 20; // nlmsghdr + nfgenmsg
    while a + 4 <= msg.len() {
        let alen = usize::from(u16_at(msg, a)?);
        let typ = u16_at(msg, a + 2)? & NLA_TYPE_MASK;
        if alen < 4 || a + alen > msg.len() {
            break;
        }
        let data = &msg[a + 4..a + alen];
        match typ {
            NFQA_PACKET_HDR => id = Some(u32::from_be_bytes(data.get(..4)?.try_into().ok()?)),
            NFQA_PAYLOAD => payload = data,
            _ => {}
        }
        a += align4(alen);
    }
    Some(Incoming::Packet { id: id?, payload })
}

/// A bound NFQUEUE netlink socket.
struct Nfq {
    fd: OwnedFd,
    queue: u16,
    tx: Vec<u8>,
}

impl Nfq {
    fn open(queue: u16, max_len: u32, copy: CopyMode) -> Result<Nfq, String> {
        use nix::sys::socket::{
            bind, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr,
            SockFlag, SockProtocol, SockType,
        };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(|e| format!("netlink socket: {e}"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| format!("netlink bind: {e}"))?;
        // A large receive buffer absorbs bursts; overflow would pass packets (fail open).
        let big = 16 << 20;
        if setsockopt(&fd, sockopt::RcvBufForce, &big).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &big);
        }
        let seq = 1;
        send(
            fd.as_raw_fd(),
            &config_message(queue, seq, max_len, copy),
            MsgFlags::empty(),
        )
        .map_err(|e| format!("queue config send: {e}"))?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                .map_err(|e| format!("queue config reply: {e}"))?;
            for m in parse_datagram(&buf[..n]) {
                if let Incoming::Error { errno, seq: s } = m {
                    if s != seq {
                        continue;
                    }
                    return match errno {
                        0 => Ok(Nfq {
                            fd,
                            queue,
                            tx: Vec::with_capacity(TX_FLUSH + 70_000),
                        }),
                        e if -e == libc::EBUSY || -e == libc::EPERM => Err(format!(
                            "queue {queue} cannot be bound: another process holds it, or \
                             CAP_NET_ADMIN is missing ({})",
                            std::io::Error::from_raw_os_error(-e)
                        )),
                        e => Err(format!(
                            "queue {queue} bind/config failed: {}",
                            std::io::Error::from_raw_os_error(-e)
                        )),
                    };
                }
            }
        }
    }

    fn verdict(&mut self, id: u32, verdict: u32, payload: Option<&[u8]>) -> Result<(), String> {
        if self.tx.len() + payload.map_or(0, <[u8]>::len) + 64 > TX_FLUSH {
            self.flush()?;
        }
        put_verdict(&mut self.tx, self.queue, id, verdict, payload);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        use nix::sys::socket::{send, MsgFlags};
        if self.tx.is_empty() {
            return Ok(());
        }
        let r = send(self.fd.as_raw_fd(), &self.tx, MsgFlags::empty());
        self.tx.clear();
        r.map(drop).map_err(|e| format!("verdict send: {e}"))
    }
}

// ---------------------------------------------------------------------------------------
// Engine

/// A packet waiting for its release time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    at: Instant,
    seq: u64,
    id: u32,
    payload: Option<Vec<u8>>,
}

/// Hold-error histogram with 1 µs buckets; larger values land in the last bucket.
#[derive(Debug, Clone)]
struct Hist {
    buckets: Vec<u64>,
    count: u64,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            buckets: vec![0; 1 << 16],
            count: 0,
        }
    }
    fn record(&mut self, d: Duration) {
        let us = usize::try_from(d.as_micros()).unwrap_or(usize::MAX);
        let i = us.min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
    }
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return i as u64;
            }
        }
        (self.buckets.len() - 1) as u64
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Stats {
    seen: u64,
    delayed: u64,
    dropped: u64,
    corrupted: u64,
    released: u64,
    /// Most packets held at once: at the queue's length the kernel lets further packets
    /// through unshaped (fail open).
    held_peak: u64,
}

struct Engine {
    nfq: Nfq,
    queue_max: u32,
    shaper: Shaper,
    heap: BinaryHeap<Reverse<Held>>,
    seq: u64,
    stats: Stats,
    hist: Hist,
    rx: Vec<u8>,
}

impl Engine {
    fn stats_line(&self) -> String {
        let s = &self.stats;
        format!(
            "stats seen={} delayed={} dropped={} corrupted={} released={} held={} \
             held_peak={} queue_max={} hold_err_p50_us={} hold_err_p99_us={}",
            s.seen,
            s.delayed,
            s.dropped,
            s.corrupted,
            s.released,
            self.heap.len(),
            s.held_peak,
            self.queue_max,
            self.hist.quantile(0.50),
            self.hist.quantile(0.99),
        )
    }

    /// Read queued packets without blocking (at most `budget` datagrams). Returns false
    /// when the socket had nothing more to give.
    fn receive(&mut self, budget: usize) -> Result<bool, String> {
        use nix::errno::Errno;
        use nix::sys::socket::{recv, MsgFlags};
        for _ in 0..budget {
            let n = match recv(
                self.nfq.fd.as_raw_fd(),
                &mut self.rx,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => return Ok(false),
                // The socket overflowed: the kernel passed (fail open) what it could not queue.
                Err(Errno::ENOBUFS) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("queue receive: {e}")),
            };
            let now = Instant::now();
            let rx = std::mem::take(&mut self.rx);
            let mut result = Ok(());
            for m in parse_datagram(&rx[..n]) {
                if let Incoming::Packet { id, payload } = m {
                    result = result.and(self.on_packet(id, payload, now));
                }
            }
            self.rx = rx;
            result?;
            // Do not let a burst delay the release of packets that are due.
            if self.heap.peek().is_some_and(|Reverse(h)| h.at <= now) {
                return Ok(true);
            }
        }
        Ok(true)
    }

    fn on_packet(&mut self, id: u32, payload: &[u8], now: Instant) -> Result<(), String> {
        self.stats.seen += 1;
        match self.shaper.decide(payload) {
            Decision::Drop => {
                self.stats.dropped += 1;
                self.nfq.verdict(id, NF_DROP, None)
            }
            Decision::Accept { delay, flip_bit } => {
                let modified = flip_bit.map(|bit| {
                    let mut p = payload.to_vec();
                    p[bit / 8] ^= 1 << (bit % 8);
                    p
                });
                if modified.is_some() {
                    self.stats.corrupted += 1;
                }
                if delay.is_zero() {
                    self.stats.released += 1;
                    return self.nfq.verdict(id, NF_ACCEPT, modified.as_deref());
                }
                self.stats.delayed += 1;
                self.seq += 1;
                self.heap.push(Reverse(Held {
                    at: now + delay,
                    seq: self.seq,
                    id,
                    payload: modified,
                }));
                self.stats.held_peak = self.stats.held_peak.max(self.heap.len() as u64);
                Ok(())
            }
        }
    }

    /// Accept every held packet due by `now` (all of them when `all`).
    fn release(&mut self, all: bool) -> Result<(), String> {
        let now = Instant::now();
        while let Some(Reverse(top)) = self.heap.peek() {
            if !all && top.at > now {
                break;
            }
            let Some(Reverse(h)) = self.heap.pop() else {
                break;
            };
            if h.at <= now {
                self.hist.record(now - h.at);
            }
            self.stats.released += 1;
            self.nfq.verdict(h.id, NF_ACCEPT, h.payload.as_deref())?;
        }
        Ok(())
    }
}

/// Entry point of the engine helper (`murphy __netq '<json>'`).
///
/// Protocol: print `error ...` and return 2 on a bad configuration; wait for one "go"
/// byte on stdin (EOF first: return 0); bind and print `bound queue=N` (or `error ...`
/// and return 1); then print a `stats ...` line every 500 ms. Another byte or EOF on
/// stdin, SIGTERM/SIGINT, or the end of the lease stops it: every held packet is accepted
/// at once, a last `stats` line is printed and 0 is returned.
pub fn engine_main(config_json: &str) -> i32 {
    let out = std::io::stdout();
    let say = |line: &str| {
        let mut o = out.lock();
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    };
    let cfg = match parse_config(config_json) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("error bad configuration: {e}"));
            return 2;
        }
    };
    // Read the go byte straight from fd 0 (no std buffering, so a later stop byte stays
    // visible to poll).
    let stdin = std::io::stdin();
    let mut one = [0u8; 1];
    loop {
        match nix::unistd::read(stdin.as_fd(), &mut one) {
            Ok(1) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return 0,
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    // Finer timer wakeups: the default 50 µs slack adds straight to the hold error.
    let _ = nix::sys::prctl::set_timerslack(1_000);
    // Release packets on time even when the machine is busy (a low real-time priority;
    // refused without CAP_SYS_NICE, then the engine runs as a normal process).
    let realtime = crate::sys::set_fifo_priority(10).is_ok();
    let lease_end = Instant::now() + Duration::from_millis(cfg.lease_ms);
    let copy = CopyMode::for_config(&cfg);
    let nfq = match Nfq::open(cfg.queue, cfg.queue_max_len, copy) {
        Ok(q) => q,
        Err(e) => {
            say(&format!("error {e}"));
            return 1;
        }
    };
    say(&format!(
        "bound queue={} realtime={realtime} copy={} queue_max={}",
        cfg.queue,
        if copy.whole { "packet" } else { "meta,gso" },
        cfg.queue_max_len
    ));
    let mut eng = Engine {
        nfq,
        queue_max: cfg.queue_max_len,
        shaper: Shaper::new(cfg),
        heap: BinaryHeap::new(),
        seq: 0,
        stats: Stats::default(),
        hist: Hist::new(),
        rx: vec![0u8; 128 * 1024],
    };
    let result = run(&mut eng, &stop, lease_end, &say);
    // Stop: take what is still queued in the socket, then let everything go.
    let mut drained = Ok(());
    for _ in 0..64 {
        match eng.receive(1024) {
            Ok(true) => continue,
            Ok(false) => break,
            Err(e) => {
                drained = Err(e);
                break;
            }
        }
    }
    let released = eng.release(true).and_then(|()| eng.nfq.flush());
    say(&eng.stats_line());
    match result.and(drained).and(released) {
        Ok(()) => 0,
        Err(e) => {
            say(&format!("error {e}"));
            1
        }
    }
}

fn run(
    eng: &mut Engine,
    stop: &AtomicBool,
    lease_end: Instant,
    say: &dyn Fn(&str),
) -> Result<(), String> {
    use nix::poll::{ppoll, PollFd, PollFlags};
    use nix::sys::time::TimeSpec;
    let stdin = std::io::stdin();
    let mut next_stats = Instant::now() + STATS_EVERY;
    loop {
        eng.release(false)?;
        eng.nfq.flush()?;
        let now = Instant::now();
        if now >= next_stats {
            say(&eng.stats_line());
            next_stats += STATS_EVERY;
            if next_stats <= now {
                next_stats = now + STATS_EVERY;
            }
        }
        if stop.load(Ordering::SeqCst) || now >= lease_end {
            return Ok(());
        }
        let mut until = next_stats.min(lease_end);
        let mut spin_to = None;
        if let Some(Reverse(top)) = eng.heap.peek() {
            if top.at < until {
                until = top.at;
                // Few packets held (the regime where each one's timing shows): wake a
                // little early and spin to the release time, since the timer's wakeup
                // latency is the tail of the hold error. Many held: the loop is busy
                // anyway and releases in batches; no spinning.
                if eng.heap.len() <= SPIN_HELD_AT_MOST {
                    until = top.at.checked_sub(SPIN_EARLY).unwrap_or(top.at);
                    spin_to = Some(top.at);
                }
            }
        }
        let wait = until.saturating_duration_since(now);
        let (nl_ready, stdin_ready) = {
            let mut fds = [
                PollFd::new(eng.nfq.fd.as_fd(), PollFlags::POLLIN),
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            ];
            match ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            (
                fds[0].revents().is_some_and(|r| !r.is_empty()),
                fds[1].revents().is_some_and(|r| !r.is_empty()),
            )
        };
        if stdin_ready {
            // A byte, EOF or hangup on stdin: the parent wants us gone (or is gone).
            stop.store(true, Ordering::SeqCst);
        }
        if nl_ready {
            eng.receive(256)?;
        }
        if let Some(due) = spin_to {
            // Only when the timer (not a packet or stdin) woke us, and briefly.
            if !nl_ready
                && !stdin_ready
                && due.saturating_duration_since(Instant::now()) <= SPIN_EARLY
            {
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

/// How early the engine wakes before a release to spin the rest of the way.
const SPIN_EARLY: Duration = Duration::from_micros(60);
/// Spin only while at most this many packets are held.
const SPIN_HELD_AT_MOST: usize = 32;

// ---------------------------------------------------------------------------------------
// iptables rules

/// Which packets an NFQUEUE rule sends to the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleFilter {
    /// Source IPv4 addresses or CIDRs (joined with commas; empty: any).
    pub sources: Vec<String>,
    /// Destination IPv4 addresses or CIDRs (joined with commas; empty: any).
    pub destinations: Vec<String>,
    /// `tcp`, `udp` or `icmp`; none: every protocol.
    pub protocol: Option<String>,
    /// Destination port (tcp/udp only).
    pub dport: Option<u16>,
    /// Source port (tcp/udp only).
    pub sport: Option<u16>,
    /// Marks the rule as `murphy-<tag>` in a comment so leftovers can be found.
    pub tag: String,
}

/// Check a rule before use: chain, IPv4 CIDRs, protocol, ports only with tcp/udp, tag.
pub fn validate_rule(chain: &str, filter: &RuleFilter) -> Result<(), NetqConfigError> {
    validate_rule_inner(chain, filter).map_err(NetqConfigError)
}

fn validate_rule_inner(chain: &str, filter: &RuleFilter) -> Result<(), String> {
    if !matches!(chain, "INPUT" | "FORWARD" | "OUTPUT") {
        return Err(format!(
            "chain must be INPUT, FORWARD or OUTPUT, got {chain:?}"
        ));
    }
    for cidr in filter.sources.iter().chain(&filter.destinations) {
        let (addr, prefix) = match cidr.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (cidr.as_str(), None),
        };
        let ok = addr.parse::<std::net::Ipv4Addr>().is_ok()
            && prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= 32));
        if !ok {
            return Err(format!("{cidr:?} is not an IPv4 address or CIDR"));
        }
    }
    let proto = filter.protocol.as_deref();
    if let Some(p) = proto {
        if !matches!(p, "tcp" | "udp" | "icmp") {
            return Err(format!("protocol must be tcp, udp or icmp, got {p:?}"));
        }
    }
    if (filter.dport.is_some() || filter.sport.is_some()) && !matches!(proto, Some("tcp" | "udp")) {
        return Err("dport/sport need protocol tcp or udp".into());
    }
    let tag_ok = !filter.tag.is_empty()
        && filter.tag.len() <= 200
        && filter
            .tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if !tag_ok {
        return Err(format!(
            "tag must be 1..=200 characters of [A-Za-z0-9._:-], got {:?}",
            filter.tag
        ));
    }
    Ok(())
}

/// The argv of an NFQUEUE rule after the verb: `iptables -w -I <this>` adds it and
/// `iptables -w -D <this>` removes it. Ports are emitted as given, so an invalid filter
/// makes iptables fail rather than match more than asked; see [`validate_rule`].
pub fn iptables_rule(chain: &str, queue: u16, filter: &RuleFilter) -> Vec<String> {
    let mut v = vec![chain.to_string()];
    if !filter.sources.is_empty() {
        v.extend(["-s".into(), filter.sources.join(",")]);
    }
    if !filter.destinations.is_empty() {
        v.extend(["-d".into(), filter.destinations.join(",")]);
    }
    if let Some(p) = &filter.protocol {
        v.extend(["-p".into(), p.clone()]);
        if filter.dport.is_some() || filter.sport.is_some() {
            v.extend(["-m".into(), p.clone()]);
        }
    }
    if let Some(port) = filter.sport {
        v.extend(["--sport".into(), port.to_string()]);
    }
    if let Some(port) = filter.dport {
        v.extend(["--dport".into(), port.to_string()]);
    }
    v.extend([
        "-m".into(),
        "comment".into(),
        "--comment".into(),
        format!("murphy-{}", filter.tag),
        "-j".into(),
        "NFQUEUE".into(),
        "--queue-num".into(),
        queue.to_string(),
        "--queue-bypass".into(),
    ]);
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg() -> NetqConfig {
        parse_config(
            r#"{"queue":7,"delayUs":50000,"jitterUs":10000,"correlation":0.25,"loss":0.0,
                "corrupt":0.0,"duplicate":0.0,"reorder":0.0,"seed":7,"leaseMs":60000}"#,
        )
        .unwrap()
    }

    #[test]
    fn config_parses_with_defaults_and_round_trips() {
        let c = cfg();
        assert_eq!(c.queue, 7);
        assert_eq!(c.queue_max_len, 16_384);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"delayUs\":50000"));
        assert_eq!(parse_config(&json).unwrap(), c);
        let min = parse_config(r#"{"queue":1,"leaseMs":10}"#).unwrap();
        assert_eq!((min.delay_us, min.loss), (0, 0.0));
    }

    #[test]
    fn config_errors_are_clear() {
        let bad = |patch: &str| {
            let mut v = serde_json::to_value(cfg()).unwrap();
            let p: serde_json::Value = serde_json::from_str(patch).unwrap();
            for (k, x) in p.as_object().unwrap() {
                v[k] = x.clone();
            }
            parse_config(&v.to_string()).unwrap_err().to_string()
        };
        assert!(bad(r#"{"loss":1.5}"#).contains("loss must be within 0..=1"));
        assert!(bad(r#"{"corrupt":-0.1}"#).contains("corrupt"));
        assert!(bad(r#"{"jitterUs":60000}"#).contains("must not exceed delayUs"));
        assert!(bad(r#"{"duplicate":0.1}"#).contains("nftables `dup`"));
        assert!(
            bad(r#"{"delayUs":0,"jitterUs":0,"correlation":0,"reorder":0.5}"#)
                .contains("reorder needs")
        );
        assert!(bad(r#"{"leaseMs":0}"#).contains("leaseMs"));
        assert!(bad(r#"{"queueMaxLen":1}"#).contains("queueMaxLen"));
        assert!(bad(r#"{"delayUs":60000001}"#).contains("delayUs must be at most"));
        assert!(parse_config(r#"{"queue":1,"leaseMs":1,"bogus":1}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        assert!(parse_config(r#"{"queue":70000,"leaseMs":1}"#).is_err());
    }

    #[test]
    fn rng_is_deterministic_and_uniform() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = Rng(1);
        let mean = (0..100_000).map(|_| r.unit()).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!((0..1000).all(|_| r.below(10) < 10));
        assert!((0..1000).all(|_| r.chance(1.0)) && (0..1000).all(|_| !r.chance(0.0)));
    }

    fn ipv4_icmp(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p
    }

    #[test]
    fn delay_jitter_stays_in_bounds_and_centres() {
        let mut s = Shaper::new(cfg());
        let pkt = ipv4_icmp(84);
        let mut sum = 0u128;
        for _ in 0..20_000 {
            let Decision::Accept { delay, flip_bit } = s.decide(&pkt) else {
                panic!("no loss configured")
            };
            assert!(flip_bit.is_none());
            let us = delay.as_micros();
            assert!((40_000..=60_000).contains(&us), "{us}");
            sum += us;
        }
        let mean = sum / 20_000;
        assert!((49_500..=50_500).contains(&mean), "{mean}");
    }

    #[test]
    fn correlation_makes_successive_delays_close() {
        let spread = |c: f64| {
            let mut s = Shaper::new(NetqConfig {
                correlation: c,
                ..cfg()
            });
            let mut last = s.delay_us() as f64;
            let mut total = 0.0;
            for _ in 0..10_000 {
                let d = s.delay_us() as f64;
                total += (d - last).abs();
                last = d;
            }
            total / 10_000.0
        };
        assert!(spread(0.9) < spread(0.0) / 3.0);
    }

    #[test]
    fn loss_and_reorder_follow_their_probabilities() {
        let mut s = Shaper::new(NetqConfig {
            loss: 0.2,
            reorder: 0.25,
            ..cfg()
        });
        let pkt = ipv4_icmp(84);
        let (mut drop, mut now) = (0, 0);
        for _ in 0..20_000 {
            match s.decide(&pkt) {
                Decision::Drop => drop += 1,
                Decision::Accept { delay, .. } if delay.is_zero() => now += 1,
                _ => {}
            }
        }
        assert!((3_700..=4_300).contains(&drop), "{drop}");
        // 25% of the 80% that are kept.
        assert!((3_700..=4_300).contains(&now), "{now}");
    }

    #[test]
    fn corruption_flips_one_bit_after_the_ip_header() {
        let mut s = Shaper::new(NetqConfig {
            corrupt: 1.0,
            ..cfg()
        });
        let pkt = ipv4_icmp(84);
        for _ in 0..1000 {
            let Decision::Accept {
                flip_bit: Some(bit),
                ..
            } = s.decide(&pkt)
            else {
                panic!("always corrupt")
            };
            assert!((20 * 8..84 * 8).contains(&bit), "{bit}");
        }
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        assert_eq!(transport_offset(&v6), 40);
        // A bare header has no transport bytes: nothing to flip.
        let Decision::Accept { flip_bit, .. } = s.decide(&ipv4_icmp(20)) else {
            panic!()
        };
        assert_eq!(flip_bit, None);
    }

    #[test]
    fn config_message_layout() {
        let m = config_message(7, 1, 4096, CopyMode { whole: true });
        assert_eq!(u32_at(&m, 0).unwrap() as usize, m.len());
        assert_eq!(u16_at(&m, 4).unwrap(), (3 << 8) | 2);
        assert_eq!(u16_at(&m, 6).unwrap(), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(&m[16..20], &[0, 0, 0, 7]);
        // cmd attr: len 8, type 1, bind.
        assert_eq!(&m[20..28], &[8, 0, 1, 0, 1, 0, 0, 0]);
        // params: len 9 (padded to 12), type 2, range 0xffff be, mode 2.
        assert_eq!(&m[28..40], &[9, 0, 2, 0, 0, 0, 0xff, 0xff, 2, 0, 0, 0]);
        assert_eq!(&m[40..48], &[8, 0, 3, 0, 0, 0, 0x10, 0]);
        // mask: fail open and GSO; flags: fail open only (a rewritten packet must be whole).
        assert_eq!(&m[48..56], &[8, 0, 4, 0, 0, 0, 0, 5]);
        assert_eq!(&m[56..64], &[8, 0, 5, 0, 0, 0, 0, 1]);
        assert_eq!(m.len(), 64);
        // Delay, loss and reorder read nothing of a packet: metadata only, GSO whole.
        let m = config_message(7, 1, 4096, CopyMode { whole: false });
        assert_eq!(&m[28..40], &[9, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&m[56..64], &[8, 0, 5, 0, 0, 0, 0, 5]);
    }

    #[test]
    fn the_queue_holds_a_delay_at_the_rate_it_is_sized_for() {
        assert_eq!(queue_len_for(0), 16_384);
        assert_eq!(queue_len_for(50_000), 16_384);
        assert_eq!(queue_len_for(1_000_000), 150_000);
        assert_eq!(queue_len_for(60_000_000), 262_144);
    }

    #[test]
    fn verdict_and_packet_round_trip() {
        let mut b = Vec::new();
        put_verdict(&mut b, 7, 0x01020304, NF_ACCEPT, Some(&[1, 2, 3]));
        assert_eq!(u32_at(&b, 0).unwrap() as usize, b.len());
        assert_eq!(&b[24..32], &[0, 0, 0, 1, 1, 2, 3, 4]);
        assert_eq!(&b[32..39], &[7, 0, 10, 0, 1, 2, 3]);

        // A kernel packet message: hdr attr + payload attr, then an ack.
        let mut m = Vec::new();
        let s = nl_begin(&mut m, NFQNL_MSG_PACKET, 0, 0, 7);
        nla_put(&mut m, NFQA_PACKET_HDR, &[0, 0, 0, 42, 8, 0, 1]);
        nla_put(&mut m, 0x8000 | 11, &[0; 8]); // nested, ignored
        nla_put(&mut m, NFQA_PAYLOAD, &[0x45, 0, 0, 20]);
        nl_end(&mut m, s);
        let e = m.len();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&(-16i32).to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&9u32.to_ne_bytes());
        m.extend_from_slice(&[0; 4]);
        assert_eq!(m.len(), e + 36);
        assert_eq!(
            parse_datagram(&m),
            vec![
                Incoming::Packet {
                    id: 42,
                    payload: &[0x45, 0, 0, 20]
                },
                Incoming::Error { errno: -16, seq: 9 }
            ]
        );
        // Truncated input is ignored, not a panic.
        assert_eq!(parse_datagram(&m[..10]), vec![]);
        assert_eq!(parse_datagram(&m[..30]), vec![]);
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Hist::new();
        assert_eq!(h.quantile(0.5), 0);
        for us in 1..=100 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        h.record(Duration::from_secs(5));
        assert_eq!(h.quantile(1.0), 65_535);
    }

    #[test]
    fn held_packets_pop_earliest_first() {
        let t = Instant::now();
        let mut heap = BinaryHeap::new();
        for (i, ms) in [30u64, 10, 20, 10].into_iter().enumerate() {
            heap.push(Reverse(Held {
                at: t + Duration::from_millis(ms),
                seq: i as u64,
                id: i as u32,
                payload: None,
            }));
        }
        let ids: Vec<u32> = std::iter::from_fn(|| heap.pop().map(|Reverse(h)| h.id)).collect();
        assert_eq!(ids, vec![1, 3, 2, 0]);
    }

    fn rule(f: RuleFilter) -> String {
        iptables_rule("INPUT", 7, &f).join(" ")
    }

    #[test]
    fn iptables_argv() {
        let tag = "t1".to_string();
        assert_eq!(
            rule(RuleFilter {
                protocol: Some("icmp".into()),
                tag: tag.clone(),
                ..Default::default()
            }),
            "INPUT -p icmp -m comment --comment murphy-t1 -j NFQUEUE --queue-num 7 --queue-bypass"
        );
        let full = RuleFilter {
            sources: vec!["10.0.0.1".into(), "10.0.1.0/24".into()],
            destinations: vec!["10.0.0.2/32".into()],
            protocol: Some("tcp".into()),
            dport: Some(5432),
            sport: Some(1000),
            tag: tag.clone(),
        };
        assert_eq!(
            rule(full.clone()),
            "INPUT -s 10.0.0.1,10.0.1.0/24 -d 10.0.0.2/32 -p tcp -m tcp --sport 1000 \
             --dport 5432 -m comment --comment murphy-t1 -j NFQUEUE --queue-num 7 \
             --queue-bypass"
        );
        assert_eq!(validate_rule("FORWARD", &full), Ok(()));
        assert_eq!(
            iptables_rule("FORWARD", 3, &RuleFilter::default())[0],
            "FORWARD"
        );
        let v = iptables_rule("OUTPUT", 65535, &RuleFilter::default());
        assert_eq!(v[v.len() - 2], "65535");
    }

    #[test]
    fn rule_validation() {
        let ok = RuleFilter {
            tag: "x".into(),
            ..Default::default()
        };
        assert!(validate_rule("PREROUTING", &ok)
            .unwrap_err()
            .to_string()
            .contains("chain"));
        let e = |f: RuleFilter| validate_rule("INPUT", &f).unwrap_err().to_string();
        assert!(e(RuleFilter {
            dport: Some(1),
            protocol: Some("icmp".into()),
            ..ok.clone()
        })
        .contains("dport/sport"));
        assert!(e(RuleFilter {
            sport: Some(1),
            ..ok.clone()
        })
        .contains("dport/sport"));
        assert!(e(RuleFilter {
            protocol: Some("sctp".into()),
            ..ok.clone()
        })
        .contains("protocol"));
        assert!(e(RuleFilter {
            sources: vec!["10.0.0.0/33".into()],
            ..ok.clone()
        })
        .contains("IPv4"));
        assert!(e(RuleFilter {
            destinations: vec!["fd00::1".into()],
            ..ok.clone()
        })
        .contains("IPv4"));
        assert!(e(RuleFilter {
            tag: "a b".into(),
            ..ok.clone()
        })
        .contains("tag"));
        assert!(e(RuleFilter {
            tag: String::new(),
            ..ok
        })
        .contains("tag"));
    }
}
