//! DNS fault responder (`dns-fault`).
//!
//! A small DNS server meant to run as a helper inside a target's network namespace, where an
//! nftables `redirect` rule in the nat output hook sends the target's queries (UDP and TCP
//! port 53) to it. Queries whose name matches one of the configured names get the configured
//! fault (SERVFAIL, NXDOMAIN, a wrong A record, or no answer at all); every other query is
//! forwarded unchanged to the real resolver and the answer relayed back.
//!
//! The parsing is deliberately minimal: header plus exactly one question. It never panics on
//! any input: everything is read through bounds-checked accessors.
//!
//! Loop hazard: the responder's own upstream queries leave from the same namespace, so the
//! redirect rule would send them straight back to the responder. Set `upstreamMark` and make
//! the rule skip packets carrying that mark (`meta mark != MARK`), or use an upstream port the
//! rule does not catch. Should a forward come back anyway, it is recognised by its source
//! (one of our in-flight upstream sockets) and answered SERVFAIL instead of looping.
//!
//! UDP replies are sent from the address the query was addressed to (IP_PKTINFO): after a
//! `redirect` that is 127.0.0.1, and only a reply from there matches the conntrack entry that
//! turns it back into the address the client asked. Needs nix's `uio` feature.

use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use std::hash::Hash;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings of the DNS responder that cannot be used. Murphy writes these settings itself from a
/// validated experiment, so this names a bug or a hand-made config, never a user's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfigError(pub String);

impl std::fmt::Display for DnsConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DnsConfigError {}

/// Upper bound on the wait for the upstream resolver, per forwarded query.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// TTL of the A record served in `wrong` mode.
pub const WRONG_TTL: u32 = 5;
const STATS_EVERY: Duration = Duration::from_millis(500);
const HEADER_LEN: usize = 12;
/// Forwarded UDP queries waiting for their upstream answer at once; beyond: SERVFAIL.
const MAX_UDP_INFLIGHT: usize = 512;
/// Open TCP client connections at once; beyond: the connection is closed at once.
const MAX_TCP_CONNS: usize = 128;
/// A TCP client connection idle this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How often blocked reads look at the stop flag.
const SLICE: Duration = Duration::from_millis(200);

const RCODE_FORMERR: u8 = 1;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// What a matching query gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// RCODE 2.
    Servfail,
    /// RCODE 3.
    Nxdomain,
    /// NOERROR with an A record to `answer` (A queries), NODATA otherwise.
    Wrong,
    /// No answer at all.
    Timeout,
}

impl FaultMode {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultMode::Servfail => "servfail",
            FaultMode::Nxdomain => "nxdomain",
            FaultMode::Wrong => "wrong",
            FaultMode::Timeout => "timeout",
        }
    }
}

/// Validated responder configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    /// UDP and TCP port listened on (0.0.0.0).
    pub port: u16,
    /// Names faulted, lowercased, without a trailing dot; `*` matches every name, any other
    /// entry matches itself and all its subdomains.
    pub names: Vec<String>,
    /// The fault.
    pub mode: FaultMode,
    /// Address served in `wrong` mode (required there).
    pub answer: Option<Ipv4Addr>,
    /// The real resolver.
    pub upstream: SocketAddr,
    /// Share of matching queries faulted (the rest are forwarded), 0..=1.
    pub probability: f64,
    /// Seed of the probability draws.
    pub seed: u64,
    /// Stop on our own this long after the go byte, milliseconds.
    pub lease_ms: u64,
    /// SO_MARK put on upstream sockets, so the redirect rule can let them through.
    pub upstream_mark: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    port: Option<Value>,
    names: Option<Value>,
    mode: Option<Value>,
    answer: Option<Value>,
    upstream: Option<Value>,
    probability: Option<Value>,
    seed: Option<Value>,
    lease_ms: Option<Value>,
    upstream_mark: Option<Value>,
}

fn required<'a>(v: &'a Option<Value>, field: &str) -> Result<&'a Value, String> {
    v.as_ref().ok_or_else(|| format!("missing field `{field}`"))
}

fn uint(v: &Value, field: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{field}` must be an integer in {min}..={max}, got {v}"
        )),
    }
}

fn string<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("`{field}` must be a string, got {v}"))
}

/// Lowercases a configured name, strips one trailing dot and checks its labels.
fn normalize_name(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t == "*" {
        return Ok("*".to_string());
    }
    let t = t.strip_suffix('.').unwrap_or(t).to_ascii_lowercase();
    if t.is_empty() {
        return Err(format!("`names` entry {raw:?} is empty"));
    }
    if t.len() > 253 {
        return Err(format!(
            "`names` entry {raw:?} is longer than 253 characters"
        ));
    }
    for label in t.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "`names` entry {raw:?} has an empty or over-long (>63) label"
            ));
        }
        if label.contains('*') || label.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(format!(
                "`names` entry {raw:?}: wildcards other than a lone \"*\" and whitespace are not supported"
            ));
        }
    }
    Ok(t)
}

/// Parses and validates the JSON configuration; the error names the offending field.
pub fn parse_config(json: &str) -> Result<DnsConfig, DnsConfigError> {
    parse_config_inner(json).map_err(DnsConfigError)
}

fn parse_config_inner(json: &str) -> Result<DnsConfig, String> {
    let raw: RawConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let port = uint(required(&raw.port, "port")?, "port", 1, 65535)? as u16;
    let names_v = required(&raw.names, "names")?;
    let arr = names_v
        .as_array()
        .ok_or_else(|| format!("`names` must be an array of strings, got {names_v}"))?;
    if arr.is_empty() {
        return Err("`names` must hold at least one name (\"*\" for all)".to_string());
    }
    let mut names = Vec::with_capacity(arr.len());
    for n in arr {
        names.push(normalize_name(string(n, "names")?)?);
    }
    let mode = match string(required(&raw.mode, "mode")?, "mode")? {
        "servfail" => FaultMode::Servfail,
        "nxdomain" => FaultMode::Nxdomain,
        "wrong" => FaultMode::Wrong,
        "timeout" => FaultMode::Timeout,
        other => {
            return Err(format!(
                "`mode` must be one of servfail, nxdomain, wrong, timeout; got {other:?}"
            ))
        }
    };
    let answer = match &raw.answer {
        None => None,
        Some(v) => {
            let s = string(v, "answer")?;
            Some(
                s.trim()
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("`answer` must be an IPv4 address, got {s:?}"))?,
            )
        }
    };
    if mode == FaultMode::Wrong && answer.is_none() {
        return Err("`answer` (an IPv4 address) is required when `mode` is \"wrong\"".to_string());
    }
    let up = string(required(&raw.upstream, "upstream")?, "upstream")?;
    let upstream: SocketAddr = up
        .trim()
        .parse()
        .map_err(|_| format!("`upstream` must be ip:port (e.g. 10.0.0.53:53), got {up:?}"))?;
    if upstream.port() == 0 || upstream.ip().is_unspecified() {
        return Err(format!(
            "`upstream` needs a specific address and a non-zero port, got {up:?}"
        ));
    }
    let probability = match &raw.probability {
        None => 1.0,
        Some(v) => match v.as_f64() {
            Some(p) if (0.0..=1.0).contains(&p) => p,
            _ => return Err(format!("`probability` must be a number in 0..=1, got {v}")),
        },
    };
    let seed = match &raw.seed {
        None => 1,
        Some(v) => uint(v, "seed", 0, u64::MAX)?,
    };
    let lease_ms = uint(
        required(&raw.lease_ms, "leaseMs")?,
        "leaseMs",
        1,
        u64::MAX / 4,
    )?;
    let upstream_mark = match &raw.upstream_mark {
        None => None,
        Some(v) => Some(uint(v, "upstreamMark", 1, u64::from(u32::MAX))? as u32),
    };
    Ok(DnsConfig {
        port,
        names,
        mode,
        answer,
        upstream,
        probability,
        seed,
        lease_ms,
        upstream_mark,
    })
}

/// The one question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Labels as on the wire (case preserved), without the root label.
    pub labels: Vec<Vec<u8>>,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

impl Question {
    /// Dotted form (for logs and tests); bytes outside printable ASCII are escaped as `\DDD`.
    pub fn name(&self) -> String {
        let mut s = String::new();
        for (i, l) in self.labels.iter().enumerate() {
            if i > 0 {
                s.push('.');
            }
            for &b in l {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    s.push(char::from(b));
                } else {
                    s.push_str(&format!("\\{b:03}"));
                }
            }
        }
        s
    }
}

/// What a message read off the wire is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Shorter than a header, or a response: never answered.
    Ignore,
    /// A query with an opcode other than QUERY: forwarded untouched.
    OtherOpcode,
    /// The header reads but the question does not (or there is not exactly one).
    Malformed {
        /// Query id.
        id: u16,
        /// Query flags.
        flags: u16,
    },
    /// A standard query with one well-formed question.
    Query {
        /// Query id.
        id: u16,
        /// Query flags.
        flags: u16,
        /// The question.
        question: Question,
    },
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    let b = msg.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Reads a (possibly compressed) name at `start`: its labels and the offset just past it.
fn read_name(msg: &[u8], start: usize) -> Option<(Vec<Vec<u8>>, usize)> {
    let mut labels = Vec::new();
    let mut pos = start;
    let mut end = None;
    let mut wire_len = 1usize;
    let mut jumps = 0;
    loop {
        let len = usize::from(*msg.get(pos)?);
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    return Some((labels, end.unwrap_or(pos + 1)));
                }
                let label = msg.get(pos + 1..pos + 1 + len)?;
                wire_len += len + 1;
                if wire_len > 255 {
                    return None;
                }
                labels.push(label.to_vec());
                pos += 1 + len;
            }
            0xC0 => {
                let lo = usize::from(*msg.get(pos + 1)?);
                let target = ((len & 0x3F) << 8) | lo;
                if end.is_none() {
                    end = Some(pos + 2);
                }
                jumps += 1;
                // Pointers must go backwards; the jump cap stops any remaining loop.
                if jumps > 32 || target >= pos {
                    return None;
                }
                pos = target;
            }
            _ => return None,
        }
    }
}

/// Parses a message as a query: header and exactly one question (anything after the
/// question, such as an EDNS OPT record, is ignored).
pub fn parse_query(msg: &[u8]) -> Parsed {
    let (Some(id), Some(flags), Some(qdcount)) = (be16(msg, 0), be16(msg, 2), be16(msg, 4)) else {
        return Parsed::Ignore;
    };
    if msg.len() < HEADER_LEN || flags & 0x8000 != 0 {
        return Parsed::Ignore;
    }
    if (flags >> 11) & 0xF != 0 {
        return Parsed::OtherOpcode;
    }
    if qdcount != 1 {
        return Parsed::Malformed { id, flags };
    }
    let Some((labels, end)) = read_name(msg, HEADER_LEN) else {
        return Parsed::Malformed { id, flags };
    };
    let (Some(qtype), Some(qclass)) = (be16(msg, end), be16(msg, end + 2)) else {
        return Parsed::Malformed { id, flags };
    };
    Parsed::Query {
        id,
        flags,
        question: Question {
            labels,
            qtype,
            qclass,
        },
    }
}

/// Whether the question name falls under one of the configured names.
pub fn name_matches(labels: &[Vec<u8>], names: &[String]) -> bool {
    names.iter().any(|n| {
        if n == "*" {
            return true;
        }
        let want: Vec<&[u8]> = n.split('.').map(str::as_bytes).collect();
        want.len() <= labels.len()
            && labels[labels.len() - want.len()..]
                .iter()
                .zip(&want)
                .all(|(got, w)| got.eq_ignore_ascii_case(w))
    })
}

/// Builds a reply: QR, the query's opcode, RD and CD, RA set; the question echoed
/// (uncompressed) if given; one A record to `a` if given (only with a question).
fn build_reply(
    id: u16,
    qflags: u16,
    q: Option<&Question>,
    rcode: u8,
    a: Option<Ipv4Addr>,
) -> Vec<u8> {
    let flags = 0x8000
        | (qflags & 0x7800)
        | (qflags & 0x0100)
        | 0x0080
        | (qflags & 0x0010)
        | u16::from(rcode & 0xF);
    let ancount: u16 = if q.is_some() && a.is_some() { 1 } else { 0 };
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&u16::from(q.is_some()).to_be_bytes());
    out.extend_from_slice(&ancount.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    if let Some(q) = q {
        for l in &q.labels {
            // read_name caps a label at 63 bytes (the length byte's top bits are clear).
            out.push(l.len() as u8);
            out.extend_from_slice(l);
        }
        out.push(0);
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
        if let Some(addr) = a {
            out.extend_from_slice(&[0xC0, 0x0C]); // pointer to the question name
            out.extend_from_slice(&TYPE_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&WRONG_TTL.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&addr.octets());
        }
    }
    out
}

/// The reply `cfg.mode` gives to `query`, whatever its name: `None` in `timeout` mode or
/// when `query` is not a standard query with one readable question.
pub fn fault_reply(query: &[u8], cfg: &DnsConfig) -> Option<Vec<u8>> {
    let Parsed::Query {
        id,
        flags,
        question,
    } = parse_query(query)
    else {
        return None;
    };
    let q = Some(&question);
    match cfg.mode {
        FaultMode::Servfail => Some(build_reply(id, flags, q, RCODE_SERVFAIL, None)),
        FaultMode::Nxdomain => Some(build_reply(id, flags, q, RCODE_NXDOMAIN, None)),
        FaultMode::Wrong => {
            let a = if question.qtype == TYPE_A && question.qclass == CLASS_IN {
                cfg.answer
            } else {
                None
            };
            Some(build_reply(id, flags, q, 0, a))
        }
        FaultMode::Timeout => None,
    }
}

/// SERVFAIL for any query whose header reads (question echoed when it parses); `None` for
/// responses and runts.
pub fn servfail_reply(query: &[u8]) -> Option<Vec<u8>> {
    match parse_query(query) {
        Parsed::Ignore => None,
        Parsed::Query {
            id,
            flags,
            question,
        } => Some(build_reply(
            id,
            flags,
            Some(&question),
            RCODE_SERVFAIL,
            None,
        )),
        Parsed::Malformed { id, flags } => Some(build_reply(id, flags, None, RCODE_SERVFAIL, None)),
        Parsed::OtherOpcode => {
            let id = be16(query, 0)?;
            let flags = be16(query, 2)?;
            Some(build_reply(id, flags, None, RCODE_SERVFAIL, None))
        }
    }
}

/// FORMERR (header only) for a query whose header reads; `None` otherwise.
pub fn formerr_reply(query: &[u8]) -> Option<Vec<u8>> {
    let id = be16(query, 0)?;
    let flags = be16(query, 2)?;
    if query.len() < HEADER_LEN || flags & 0x8000 != 0 {
        return None;
    }
    Some(build_reply(id, flags, None, RCODE_FORMERR, None))
}

/// What to do with a name-matched or unmatched query, before the probability draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Runt or response: no answer, not counted.
    Ignore,
    /// Malformed: answer FORMERR with these bytes.
    FormErr(Vec<u8>),
    /// The name matches: a fault candidate.
    Match,
    /// Not ours: forward unchanged.
    Forward,
}

/// Classifies one incoming message.
pub fn classify(msg: &[u8], cfg: &DnsConfig) -> Verdict {
    match parse_query(msg) {
        Parsed::Ignore => Verdict::Ignore,
        Parsed::OtherOpcode => Verdict::Forward,
        Parsed::Malformed { .. } => match formerr_reply(msg) {
            Some(r) => Verdict::FormErr(r),
            None => Verdict::Ignore,
        },
        Parsed::Query { question, .. } => {
            if name_matches(&question.labels, &cfg.names) {
                Verdict::Match
            } else {
                Verdict::Forward
            }
        }
    }
}

/// The final decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No answer, not counted.
    Ignore,
    /// Answer FORMERR.
    FormErr(Vec<u8>),
    /// Faulted: answer these bytes, or nothing (`timeout`).
    Fault(Option<Vec<u8>>),
    /// Forward to the upstream resolver.
    Forward,
}

/// Classifies `msg` and, for a matching name, draws against `cfg.probability` (a draw is
/// taken only when 0 < probability < 1, so runs replay from the seed).
pub fn decide(msg: &[u8], cfg: &DnsConfig, rng: &mut XorShift) -> Action {
    match classify(msg, cfg) {
        Verdict::Ignore => Action::Ignore,
        Verdict::FormErr(r) => Action::FormErr(r),
        Verdict::Forward => Action::Forward,
        Verdict::Match => {
            let hit = if cfg.probability >= 1.0 {
                true
            } else if cfg.probability <= 0.0 {
                false
            } else {
                rng.next_f64() < cfg.probability
            };
            if hit {
                Action::Fault(fault_reply(msg, cfg))
            } else {
                Action::Forward
            }
        }
    }
}

/// The probability draws: the engine's seeded source ([`crate::rand`]).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is replaced by a fixed non-zero constant).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        crate::rand::next(&mut self.0)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Default)]
struct Stats {
    queries: AtomicU64,
    faulted: AtomicU64,
    forwarded: AtomicU64,
    upstream_errors: AtomicU64,
}

impl Stats {
    fn line(&self) -> String {
        format!(
            "stats queries={} faulted={} forwarded={} upstream_errors={}",
            self.queries.load(Ordering::Relaxed),
            self.faulted.load(Ordering::Relaxed),
            self.forwarded.load(Ordering::Relaxed),
            self.upstream_errors.load(Ordering::Relaxed)
        )
    }
}

struct Shared {
    cfg: DnsConfig,
    stop: AtomicBool,
    rng: Mutex<XorShift>,
    stats: Stats,
    udp_inflight: AtomicUsize,
    tcp_conns: AtomicUsize,
    /// Local addresses of our in-flight upstream UDP sockets: a query from one of them is
    /// our own forward redirected back to us (a rule without the mark exception).
    own_udp: Mutex<HashSet<SocketAddr>>,
    /// Local ports of our in-flight upstream TCP connections, likewise.
    own_tcp: Mutex<HashSet<u16>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keeps `key` in `set` while alive.
struct Registered<'a, T: Eq + Hash> {
    set: &'a Mutex<HashSet<T>>,
    key: T,
}

impl<'a, T: Eq + Hash + Clone> Registered<'a, T> {
    fn new(set: &'a Mutex<HashSet<T>>, key: T) -> Self {
        lock(set).insert(key.clone());
        Registered { set, key }
    }
}

impl<T: Eq + Hash> Drop for Registered<'_, T> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.key);
    }
}

impl Shared {
    fn new(cfg: DnsConfig) -> Self {
        Shared {
            rng: Mutex::new(XorShift::new(cfg.seed)),
            cfg,
            stop: AtomicBool::new(false),
            stats: Stats::default(),
            udp_inflight: AtomicUsize::new(0),
            tcp_conns: AtomicUsize::new(0),
            own_udp: Mutex::new(HashSet::new()),
            own_tcp: Mutex::new(HashSet::new()),
        }
    }

    /// Decides and counts (forwards are counted by the caller once attempted).
    fn decide(&self, msg: &[u8]) -> Action {
        let action = decide(msg, &self.cfg, &mut lock(&self.rng));
        if action != Action::Ignore {
            self.stats.queries.fetch_add(1, Ordering::Relaxed);
        }
        if let Action::Fault(_) = action {
            self.stats.faulted.fetch_add(1, Ordering::Relaxed);
        }
        action
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn set_mark<F: AsFd>(fd: &F, mark: Option<u32>) -> Result<(), String> {
    if let Some(m) = mark {
        nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::Mark, &m)
            .map_err(|e| format!("SO_MARK {m}: {e}"))?;
    }
    Ok(())
}

/// One UDP round trip to the upstream resolver, from a fresh socket.
fn forward_udp(query: &[u8], sh: &Shared) -> Result<Vec<u8>, String> {
    let upstream = sh.cfg.upstream;
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let bind = if upstream.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    set_mark(&s, sh.cfg.upstream_mark)?;
    s.connect(upstream).map_err(|e| format!("connect: {e}"))?;
    let me = s.local_addr().map_err(|e| format!("getsockname: {e}"))?;
    let _own = Registered::new(&sh.own_udp, me);
    s.send(query).map_err(|e| format!("send: {e}"))?;
    let id = query.get(..2);
    let mut buf = vec![0u8; 65535];
    loop {
        let left = remaining(deadline).ok_or("timeout")?;
        s.set_read_timeout(Some(left))
            .map_err(|e| format!("timeout: {e}"))?;
        match s.recv(&mut buf) {
            Ok(n) => {
                let r = buf.get(..n).unwrap_or_default();
                // Only the matching response; anything else is noise.
                if n >= HEADER_LEN && r.get(..2) == id && r.get(2).is_some_and(|f| f & 0x80 != 0) {
                    return Ok(r.to_vec());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err("timeout".to_string()),
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

enum Got {
    Full,
    Closed,
}

/// Fills `buf` from `s` unless EOF, an error, `stop` or `deadline` comes first.
fn read_full(s: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool, deadline: Instant) -> Got {
    let mut off = 0;
    while off < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return Got::Closed;
        }
        let Some(left) = remaining(deadline) else {
            return Got::Closed;
        };
        if s.set_read_timeout(Some(left.min(SLICE))).is_err() {
            return Got::Closed;
        }
        let Some(rest) = buf.get_mut(off..) else {
            return Got::Closed;
        };
        match s.read(rest) {
            Ok(0) => return Got::Closed,
            Ok(n) => off += n,
            Err(e) if is_timeout(&e) || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Got::Closed,
        }
    }
    Got::Full
}

fn write_framed(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
}

/// One TCP round trip to the upstream resolver on a fresh connection.
fn forward_tcp(query: &[u8], sh: &Shared) -> Result<Vec<u8>, String> {
    let (upstream, stop) = (sh.cfg.upstream, &sh.stop);
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use nix::sys::time::{TimeVal, TimeValLike};
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let family = if upstream.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| format!("socket: {e}"))?;
    set_mark(&fd, sh.cfg.upstream_mark)?;
    let any = if upstream.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(any)).map_err(|e| format!("bind: {e}"))?;
    let port = socket::getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .ok()
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|a| a.port())
                .or(a.as_sockaddr_in6().map(|a| a.port()))
        })
        .ok_or("getsockname")?;
    let _own = Registered::new(&sh.own_tcp, port);
    // Linux bounds a blocking connect() by SO_SNDTIMEO.
    let tv = TimeVal::milliseconds(UPSTREAM_TIMEOUT.as_millis() as i64);
    socket::setsockopt(&fd, sockopt::SendTimeout, &tv).map_err(|e| format!("timeout: {e}"))?;
    socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(upstream)).map_err(|e| match e {
        nix::errno::Errno::EINPROGRESS | nix::errno::Errno::EAGAIN => "timeout".to_string(),
        e => format!("connect: {e}"),
    })?;
    let mut s = TcpStream::from(fd);
    let _ = s.set_nodelay(true);
    let left = remaining(deadline).ok_or("timeout")?;
    s.set_write_timeout(Some(left))
        .map_err(|e| format!("timeout: {e}"))?;
    write_framed(&mut s, query).map_err(|e| format!("send: {e}"))?;
    let mut len = [0u8; 2];
    if let Got::Closed = read_full(&mut s, &mut len, stop, deadline) {
        return Err("timeout or closed".to_string());
    }
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    if let Got::Closed = read_full(&mut s, &mut body, stop, deadline) {
        return Err("timeout or closed".to_string());
    }
    Ok(body)
}

/// Serves one TCP client: length-prefixed queries, one at a time.
fn serve_tcp(mut s: TcpStream, sh: &Shared) {
    let peer_port = s.peer_addr().map(|a| a.port()).unwrap_or(0);
    let _ = s.set_nonblocking(false);
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(UPSTREAM_TIMEOUT));
    loop {
        let mut len = [0u8; 2];
        if let Got::Closed = read_full(&mut s, &mut len, &sh.stop, Instant::now() + TCP_IDLE) {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if let Got::Closed = read_full(&mut s, &mut msg, &sh.stop, Instant::now() + TCP_IDLE) {
            return;
        }
        let reply = match sh.decide(&msg) {
            Action::Ignore | Action::Fault(None) => None,
            Action::FormErr(r) | Action::Fault(Some(r)) => Some(r),
            Action::Forward => {
                sh.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                let looped = lock(&sh.own_tcp).contains(&peer_port);
                let r = if looped {
                    Err("own forward came back".to_string())
                } else {
                    forward_tcp(&msg, sh)
                };
                match r {
                    Ok(r) => Some(r),
                    Err(_) => {
                        sh.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                        servfail_reply(&msg)
                    }
                }
            }
        };
        if let Some(r) = reply {
            if write_framed(&mut s, &r).is_err() {
                return;
            }
        }
    }
}

/// Receives one datagram (without blocking) with its sender and, from IP_PKTINFO, the
/// address it was sent to.
fn recv_with_dst(
    udp: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> nix::Result<(usize, SocketAddr, Option<Ipv4Addr>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn>(
        udp.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let from = msg
        .address
        .map(|a| SocketAddr::V4(std::net::SocketAddrV4::from(a)))
        .ok_or(nix::errno::Errno::EINVAL)?;
    let mut local = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                local = Some(Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes()));
            }
        }
    }
    Ok((msg.bytes, from, local))
}

/// Sends a UDP reply from `local` (the address the query was sent to), so that conntrack
/// recognises it as the reply of a redirected query and restores the original address. A
/// wildcard socket would otherwise pick the source by route and the client would drop it.
fn send_reply(udp: &UdpSocket, msg: &[u8], to: SocketAddr, local: Option<Ipv4Addr>) {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn};
    if let (SocketAddr::V4(to4), Some(src)) = (to, local) {
        if !src.is_multicast() && !src.is_broadcast() && !src.is_unspecified() {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(src.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let iov = [std::io::IoSlice::new(msg)];
            let cm = [ControlMessage::Ipv4PacketInfo(&info)];
            let dst = SockaddrIn::from(to4);
            if sendmsg(udp.as_raw_fd(), &iov, &cm, MsgFlags::empty(), Some(&dst)).is_ok() {
                return;
            }
        }
    }
    let _ = udp.send_to(msg, to);
}

/// Handles one UDP datagram from `from`, sent to `local`.
fn handle_udp(
    sh: &Arc<Shared>,
    udp: &UdpSocket,
    msg: &[u8],
    from: SocketAddr,
    local: Option<Ipv4Addr>,
) {
    match sh.decide(msg) {
        Action::Ignore | Action::Fault(None) => {}
        Action::FormErr(r) | Action::Fault(Some(r)) => send_reply(udp, &r, from, local),
        Action::Forward => {
            sh.stats.forwarded.fetch_add(1, Ordering::Relaxed);
            let fail = |sh: &Shared| {
                sh.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(r) = servfail_reply(msg) {
                    send_reply(udp, &r, from, local);
                }
            };
            // Our own forward redirected back (the rule lacks the mark exception): fail it
            // here instead of looping until the in-flight cap.
            if lock(&sh.own_udp).contains(&from) {
                fail(sh);
                return;
            }
            if sh.udp_inflight.fetch_add(1, Ordering::SeqCst) >= MAX_UDP_INFLIGHT {
                sh.udp_inflight.fetch_sub(1, Ordering::SeqCst);
                fail(sh);
                return;
            }
            let Ok(reply_sock) = udp.try_clone() else {
                sh.udp_inflight.fetch_sub(1, Ordering::SeqCst);
                fail(sh);
                return;
            };
            let sh2 = Arc::clone(sh);
            let query = msg.to_vec();
            let spawned = std::thread::Builder::new()
                .name("dns-fwd".to_string())
                .spawn(move || {
                    let r = forward_udp(&query, &sh2);
                    let reply = match r {
                        Ok(r) => Some(r),
                        Err(_) => {
                            sh2.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                            servfail_reply(&query)
                        }
                    };
                    if let Some(r) = reply {
                        send_reply(&reply_sock, &r, from, local);
                    }
                    sh2.udp_inflight.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                sh.udp_inflight.fetch_sub(1, Ordering::SeqCst);
                fail(sh);
            }
        }
    }
}

/// Serves until `sh.stop` is set or `lease_end`; prints a stats line every 500 ms.
fn serve(
    sh: &Arc<Shared>,
    udp: &UdpSocket,
    tcp: &TcpListener,
    lease_end: Instant,
    say: &dyn Fn(&str),
) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut buf = vec![0u8; 65535];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
    let mut next_stats = Instant::now() + STATS_EVERY;
    loop {
        let now = Instant::now();
        if now >= next_stats {
            say(&sh.stats.line());
            next_stats += STATS_EVERY;
            if next_stats <= now {
                next_stats = now + STATS_EVERY;
            }
        }
        if sh.stop.load(Ordering::Relaxed) || now >= lease_end {
            return;
        }
        let wait = next_stats
            .min(lease_end)
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        let ms = u16::try_from(wait.as_millis()).unwrap_or(100).max(1);
        let mut fds = [
            PollFd::new(udp.as_fd(), PollFlags::POLLIN),
            PollFd::new(tcp.as_fd(), PollFlags::POLLIN),
        ];
        if poll(&mut fds, PollTimeout::from(ms)).is_err() {
            continue; // EINTR
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let (udp_ready, tcp_ready) = (ready(&fds[0]), ready(&fds[1]));
        if udp_ready {
            for _ in 0..256 {
                match recv_with_dst(udp, &mut buf, &mut cmsg) {
                    Ok((n, from, local)) => {
                        if let Some(msg) = buf.get(..n) {
                            handle_udp(sh, udp, msg, from, local);
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => break, // EAGAIN, or a stray ICMP error
                }
            }
        }
        if tcp_ready {
            for _ in 0..64 {
                let Ok((stream, _)) = tcp.accept() else {
                    break;
                };
                if sh.tcp_conns.fetch_add(1, Ordering::SeqCst) >= MAX_TCP_CONNS {
                    sh.tcp_conns.fetch_sub(1, Ordering::SeqCst);
                    continue; // dropped: closes the connection
                }
                let sh2 = Arc::clone(sh);
                let spawned = std::thread::Builder::new()
                    .name("dns-tcp".to_string())
                    .spawn(move || {
                        serve_tcp(stream, &sh2);
                        sh2.tcp_conns.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    sh.tcp_conns.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
}

fn bind(port: u16) -> Result<(UdpSocket, TcpListener), String> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let udp = UdpSocket::bind(addr).map_err(|e| format!("bind udp {addr}: {e}"))?;
    let tcp = TcpListener::bind(addr).map_err(|e| format!("bind tcp {addr}: {e}"))?;
    udp.set_nonblocking(true)
        .map_err(|e| format!("nonblocking: {e}"))?;
    nix::sys::socket::setsockopt(&udp, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
        .map_err(|e| format!("IP_PKTINFO: {e}"))?;
    tcp.set_nonblocking(true)
        .map_err(|e| format!("nonblocking: {e}"))?;
    Ok((udp, tcp))
}

/// One byte from fd 0 (unbuffered): `Some(true)` a byte, `Some(false)` EOF, `None` error.
fn read_stdin_byte() -> Option<bool> {
    let stdin = std::io::stdin();
    let mut one = [0u8; 1];
    loop {
        match nix::unistd::read(stdin.as_fd(), &mut one) {
            Ok(n) => return Some(n == 1),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Entry point of the responder helper.
///
/// Protocol: print `error bad configuration: ...` and return 2 on a bad configuration; wait
/// for one "go" byte on stdin (EOF first: return 0); bind UDP and TCP on 0.0.0.0:port (on
/// failure print `error ...`, return 1) and print `listening port=N`; serve, printing
/// `stats queries=Q faulted=F forwarded=W upstream_errors=E` every 500 ms, until stdin
/// yields another byte or EOF or the lease runs out; print a last `stats` line and
/// `stopped`, return 0.
pub fn responder_main(config_json: &str) -> i32 {
    let say = |line: &str| {
        let mut o = std::io::stdout().lock();
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
    if read_stdin_byte() != Some(true) {
        return 0;
    }
    let lease_end = Instant::now() + Duration::from_millis(cfg.lease_ms);
    let (udp, tcp) = match bind(cfg.port) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("error {e}"));
            return 1;
        }
    };
    let sh = Arc::new(Shared::new(cfg));
    say(&format!("listening port={}", sh.cfg.port));
    let watcher = Arc::clone(&sh);
    // Blocks on fd 0 for the rest of the process; any byte, EOF or error means stop.
    let _ = std::thread::Builder::new()
        .name("dns-stdin".to_string())
        .spawn(move || {
            let _ = read_stdin_byte();
            watcher.stop.store(true, Ordering::SeqCst);
        });
    serve(&sh, &udp, &tcp, lease_end, &say);
    sh.stop.store(true, Ordering::SeqCst);
    say(&sh.stats.line());
    say("stopped");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: &str) -> DnsConfig {
        parse_config(&format!(
            r#"{{"port":5353,"names":["Example.COM."],"mode":"{mode}","answer":"10.0.0.9","upstream":"10.0.0.53:53","probability":1.0,"seed":7,"leaseMs":60000}}"#
        ))
        .expect("valid config")
    }

    /// A query as dig sends it: id 0xBEEF, RD (and AD), one question, an EDNS OPT record.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xBE, 0xEF, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
        for l in name.split('.').filter(|l| !l.is_empty()) {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q.extend_from_slice(&[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]);
        q
    }

    const WWW_EXAMPLE: &[u8] = &[
        3, b'w', b'w', b'w', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0,
    ];

    fn want(flags: [u8; 2], ancount: u8, qtype: u16, answer: &[u8]) -> Vec<u8> {
        let mut w = vec![0xBE, 0xEF, flags[0], flags[1], 0, 1, 0, ancount, 0, 0, 0, 0];
        w.extend_from_slice(WWW_EXAMPLE);
        w.extend_from_slice(&qtype.to_be_bytes());
        w.extend_from_slice(&[0, 1]);
        w.extend_from_slice(answer);
        w
    }

    #[test]
    fn config_parses_and_normalizes() {
        let c = cfg("wrong");
        assert_eq!(c.port, 5353);
        assert_eq!(c.names, vec!["example.com".to_string()]);
        assert_eq!(c.mode, FaultMode::Wrong);
        assert_eq!(c.answer, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(
            c.upstream,
            "10.0.0.53:53".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!((c.seed, c.lease_ms, c.upstream_mark), (7, 60000, None));
        let m = parse_config(
            r#"{"port":53,"names":["*"],"mode":"timeout","upstream":"[::1]:53","leaseMs":1,"upstreamMark":19797}"#,
        )
        .expect("minimal");
        assert_eq!(
            (m.probability, m.seed, m.upstream_mark),
            (1.0, 1, Some(19797))
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let base = r#""port":5353,"names":["a.b"],"mode":"servfail","upstream":"10.0.0.53:53","leaseMs":1000"#;
        let cases = [
            (
                r#"{"names":["a"],"mode":"servfail","upstream":"1.1.1.1:53","leaseMs":1}"#
                    .to_string(),
                "`port`",
            ),
            (format!("{{{base},\"bogus\":1}}"), "bogus"),
            (base.replace("5353", "0").to_string(), "`port`"),
            (base.replace("5353", "\"x\"").to_string(), "`port`"),
            (base.replace("servfail", "slow").to_string(), "`mode`"),
            (base.replace("servfail", "wrong").to_string(), "`answer`"),
            (format!("{{{base},\"answer\":\"10.0.0.300\"}}"), "`answer`"),
            (
                base.replace("10.0.0.53:53", "10.0.0.53").to_string(),
                "`upstream`",
            ),
            (
                base.replace("10.0.0.53:53", "0.0.0.0:53").to_string(),
                "`upstream`",
            ),
            (format!("{{{base},\"probability\":1.5}}"), "`probability`"),
            (format!("{{{base},\"seed\":-1}}"), "`seed`"),
            (base.replace("1000", "0").to_string(), "`leaseMs`"),
            (base.replace("[\"a.b\"]", "[]").to_string(), "`names`"),
            (
                base.replace("[\"a.b\"]", "[\"a..b\"]").to_string(),
                "`names`",
            ),
            (
                base.replace("[\"a.b\"]", "[\"*.b\"]").to_string(),
                "`names`",
            ),
            (base.replace("[\"a.b\"]", "[1]").to_string(), "`names`"),
            (format!("{{{base},\"upstreamMark\":0}}"), "`upstreamMark`"),
        ];
        for (json, field) in cases {
            let json = if json.starts_with('{') {
                json
            } else {
                format!("{{{json}}}")
            };
            let err = parse_config(&json).expect_err(&json).to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
    }

    #[test]
    fn servfail_is_byte_exact() {
        let r = fault_reply(&query("WWW.example.com", 1), &cfg("servfail")).expect("reply");
        let mut w = want([0x81, 0x82], 0, 1, &[]);
        w[12 + 1..12 + 4].copy_from_slice(b"WWW"); // case is echoed as sent
        assert_eq!(r, w);
    }

    #[test]
    fn nxdomain_is_byte_exact() {
        let r = fault_reply(&query("www.example.com", 28), &cfg("nxdomain")).expect("reply");
        assert_eq!(r, want([0x81, 0x83], 0, 28, &[]));
    }

    #[test]
    fn wrong_gives_an_a_record_or_nodata() {
        let r = fault_reply(&query("www.example.com", 1), &cfg("wrong")).expect("reply");
        let a = [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 9];
        assert_eq!(r, want([0x81, 0x80], 1, 1, &a));
        let r = fault_reply(&query("www.example.com", 28), &cfg("wrong")).expect("reply");
        assert_eq!(r, want([0x81, 0x80], 0, 28, &[]));
    }

    #[test]
    fn timeout_gives_nothing() {
        let c = cfg("timeout");
        assert_eq!(fault_reply(&query("example.com", 1), &c), None);
        let mut rng = XorShift::new(1);
        assert_eq!(
            decide(&query("example.com", 1), &c, &mut rng),
            Action::Fault(None)
        );
    }

    #[test]
    fn matching_is_suffix_and_case_insensitive() {
        let c = cfg("servfail");
        let mut rng = XorShift::new(1);
        for n in ["example.com", "EXAMPLE.com", "a.b.example.com"] {
            assert!(
                matches!(decide(&query(n, 1), &c, &mut rng), Action::Fault(Some(_))),
                "{n}"
            );
        }
        for n in ["notexample.com", "example.org", "com", "example.com.evil"] {
            assert_eq!(decide(&query(n, 1), &c, &mut rng), Action::Forward, "{n}");
        }
        let mut all = c.clone();
        all.names = vec!["*".to_string()];
        assert_eq!(classify(&query("anything.test", 1), &all), Verdict::Match);
        assert_eq!(classify(&query("", 1), &all), Verdict::Match);
    }

    #[test]
    fn malformed_gets_formerr_and_runts_are_ignored() {
        let c = cfg("servfail");
        let mut two = query("example.com", 1);
        two[5] = 2;
        let fe = [0xBE, 0xEF, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(classify(&two, &c), Verdict::FormErr(fe.to_vec()));
        let truncated = &query("example.com", 1)[..20];
        assert_eq!(classify(truncated, &c), Verdict::FormErr(fe.to_vec()));
        let mut no_q = query("example.com", 1);
        no_q[5] = 0;
        assert_eq!(classify(&no_q, &c), Verdict::FormErr(fe.to_vec()));
        assert_eq!(classify(&[1, 2, 3], &c), Verdict::Ignore);
        let mut resp = query("example.com", 1);
        resp[2] |= 0x80;
        assert_eq!(classify(&resp, &c), Verdict::Ignore);
        let mut notify = query("example.com", 1);
        notify[2] = 0x20; // opcode 4
        assert_eq!(classify(&notify, &c), Verdict::Forward);
    }

    #[test]
    fn compression_is_followed_and_loops_rejected() {
        // Question name: "www" then a pointer back to a name in ... the header cannot hold
        // one, so build a message where the pointer targets an earlier label in the name.
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[3, b'w', b'w', b'w', 0xC0, 12, 0, 1, 0, 1]);
        assert!(matches!(parse_query(&q), Parsed::Malformed { .. })); // loop www -> www
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]); // points at itself
        assert!(matches!(parse_query(&q), Parsed::Malformed { .. }));
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[0xC0, 2, 0, 1, 0, 1]); // into the header: a 1-byte label, 0
        match parse_query(&q) {
            Parsed::Query { question, .. } => {
                assert_eq!(question.labels, vec![vec![0u8]]);
                assert_eq!((question.qtype, question.qclass), (1, 1));
                assert_eq!(question.name(), "\\000");
            }
            other => panic!("{other:?}"),
        }
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            q.push(63);
            q.extend_from_slice(&[b'a'; 63]);
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(
            matches!(parse_query(&q), Parsed::Malformed { .. }),
            "name over 255"
        );
    }

    #[test]
    fn probability_draws_are_seeded() {
        let mut c = cfg("nxdomain");
        c.probability = 0.3;
        let run = || {
            let mut rng = XorShift::new(c.seed);
            (0..2000)
                .map(|_| {
                    matches!(
                        decide(&query("example.com", 1), &c, &mut rng),
                        Action::Fault(_)
                    )
                })
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|h| **h).count();
        assert!((500..700).contains(&hits), "{hits}");
        c.probability = 0.0;
        let mut rng = XorShift::new(1);
        assert_eq!(
            decide(&query("example.com", 1), &c, &mut rng),
            Action::Forward
        );
    }

    #[test]
    fn servfail_reply_for_upstream_errors() {
        let r = servfail_reply(&query("www.example.com", 1)).expect("reply");
        assert_eq!(r, want([0x81, 0x82], 0, 1, &[]));
        assert_eq!(servfail_reply(&[0; 5]), None);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift::new(0xDEAD_BEEF);
        let modes = ["servfail", "nxdomain", "wrong", "timeout"].map(cfg);
        let seed_msgs = [query("www.example.com", 1), query("other.test", 28)];
        for i in 0..60_000u32 {
            let msg: Vec<u8> = if i % 2 == 0 {
                let len = (rng.next_u64() % 300) as usize;
                (0..len).map(|_| rng.next_u64() as u8).collect()
            } else {
                // Mutate a valid query: flip bytes, maybe cut it short.
                let mut m = seed_msgs[(i as usize / 2) % 2].clone();
                for _ in 0..=(rng.next_u64() % 4) {
                    let at = (rng.next_u64() as usize) % m.len();
                    m[at] = rng.next_u64() as u8;
                }
                let cut = (rng.next_u64() as usize) % (m.len() + 1);
                m.truncate(cut.max(m.len() / 2));
                m
            };
            let c = &modes[i as usize % 4];
            let _ = decide(&msg, c, &mut rng);
            let _ = fault_reply(&msg, c);
            let _ = servfail_reply(&msg);
            let _ = formerr_reply(&msg);
            if let Parsed::Query { question, .. } = parse_query(&msg) {
                let _ = question.name();
            }
        }
    }

    /// Spins the real server on loopback against a fake upstream (UDP and TCP).
    #[test]
    fn serves_faults_and_forwards_on_loopback() {
        let up_udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let up_addr = up_udp.local_addr().expect("addr");
        let up_tcp = TcpListener::bind(up_addr).expect("bind tcp");
        // Fake upstream: answers NOERROR, echoing the query with QR set.
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = up_udp.recv_from(&mut buf) {
                let mut r = buf[..n].to_vec();
                r[2] |= 0x80;
                let _ = up_udp.send_to(&r, from);
            }
        });
        std::thread::spawn(move || {
            for mut s in up_tcp.incoming().flatten() {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut m).is_err() {
                    continue;
                }
                m[2] |= 0x80;
                let _ = write_framed(&mut s, &m);
            }
        });
        let mut c = cfg("nxdomain");
        c.upstream = up_addr;
        let sh = Arc::new(Shared::new(c));
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        let tcp = TcpListener::bind(("127.0.0.1", port)).expect("bind tcp");
        udp.set_nonblocking(true).expect("nb");
        tcp.set_nonblocking(true).expect("nb");
        nix::sys::socket::setsockopt(&udp, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
            .expect("pktinfo");
        let sh2 = Arc::clone(&sh);
        let server = std::thread::spawn(move || {
            serve(
                &sh2,
                &udp,
                &tcp,
                Instant::now() + Duration::from_secs(20),
                &|_| {},
            );
        });
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
        client
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let ask = |q: &[u8]| {
            client.send_to(q, ("127.0.0.1", port)).expect("send");
            let mut buf = [0u8; 512];
            let n = client.recv(&mut buf).expect("answer");
            buf[..n].to_vec()
        };
        assert_eq!(ask(&query("www.example.com", 1))[3] & 0xF, 3);
        let fwd = ask(&query("other.test", 1));
        assert_eq!((fwd[2] & 0x80, fwd[3] & 0xF), (0x80, 0));
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let read_framed = |s: &mut TcpStream| {
            let mut len = [0u8; 2];
            s.read_exact(&mut len).expect("len");
            let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut m).expect("body");
            m
        };
        write_framed(&mut s, &query("www.example.com", 1)).expect("write");
        assert_eq!(read_framed(&mut s)[3] & 0xF, 3);
        write_framed(&mut s, &query("other.test", 1)).expect("write");
        assert_eq!(read_framed(&mut s)[3] & 0xF, 0);
        sh.stop.store(true, Ordering::SeqCst);
        server.join().expect("server");
        assert_eq!(
            sh.stats.line(),
            "stats queries=4 faulted=2 forwarded=2 upstream_errors=0"
        );
    }
}
