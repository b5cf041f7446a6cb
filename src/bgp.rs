//! A minimal BGP-4 speaker (RFC 4271) for fault injection: the helper process run as
//! `murphy __hog bgp <json>`.
//!
//! It plays a rogue or misbehaving BGP neighbour towards ONE configured router: it opens a
//! session, announces a configured set of IPv4 prefixes, and then either keeps them up
//! (`announce`), announces and withdraws them periodically (`flap`), or keeps tearing the
//! session down and bringing it back (`reset`). The point is to exercise the routers and
//! the failover claims of the system under test, not to route traffic.
//!
//! What it must never do, and does not:
//! - it never accepts routes into the kernel or into any routing table: UPDATEs from the
//!   peer are only counted and reported;
//! - it only ever speaks to the one configured peer (one outgoing TCP connection at a time,
//!   never a listener);
//! - it never runs a shell or any other process.
//!
//! Helper protocol (shared by every Murphy helper): the process first reads one "go" byte
//! from stdin (EOF before it means the parent gave up: exit 0 having done nothing), then runs
//! its plan. It stops cleanly (withdraw what is announced, NOTIFICATION Cease/Administrative
//! Shutdown, close) when stdin yields another byte or EOF (the parent is gone) or when its
//! lease runs out. Every event is one flushed line on stdout.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Settings of the BGP speaker that cannot be used. Murphy writes these settings itself from a
/// validated experiment, so this names a bug or a hand-made config, never a user's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConfigError(pub String);

impl std::fmt::Display for BgpConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BgpConfigError {}

/// The well-known BGP port.
pub const BGP_PORT: u16 = 179;
/// RFC 6793 AS_TRANS: what goes in the 2-octet "My AS" field when the real AS does not fit.
pub const AS_TRANS: u16 = 23456;
/// Message type OPEN.
pub const MSG_OPEN: u8 = 1;
/// Message type UPDATE.
pub const MSG_UPDATE: u8 = 2;
/// Message type NOTIFICATION.
pub const MSG_NOTIFICATION: u8 = 3;
/// Message type KEEPALIVE.
pub const MSG_KEEPALIVE: u8 = 4;
/// Message type ROUTE-REFRESH (RFC 2918).
pub const MSG_ROUTE_REFRESH: u8 = 5;

const HEADER_LEN: usize = 19;
const MAX_MESSAGE_LEN: usize = 4096;
const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_FOUR_OCTET_AS: u8 = 65;
const ATTR_ORIGIN: u8 = 1;
const ATTR_AS_PATH: u8 = 2;
const ATTR_NEXT_HOP: u8 = 3;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_EXTENDED_LENGTH: u8 = 0x10;
const AS_SEQUENCE: u8 = 2;
/// Most prefixes one speaker announces (they must fit in one 4096-byte UPDATE).
pub const MAX_PREFIXES: usize = 500;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
const LINGER: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// Prefixes
// ---------------------------------------------------------------------------------------

/// An IPv4 prefix with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    /// A prefix, or None when `len > 32` or host bits are set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Prefix> {
        if len > 32 || u32::from(addr) & !mask(len) != 0 {
            return None;
        }
        Some(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// Parse `a.b.c.d/len`; None when malformed, `len > 32`, or host bits are set.
pub fn parse_prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.trim().split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = l.parse().ok()?;
    Prefix::new(addr, len).map(|p| (p.addr, p.len))
}

fn put_prefix(out: &mut Vec<u8>, p: &Prefix) {
    out.push(p.len);
    let n = usize::from(p.len).div_ceil(8);
    out.extend_from_slice(&p.addr.octets()[..n]);
}

// ---------------------------------------------------------------------------------------
// Codec errors
// ---------------------------------------------------------------------------------------

/// Why bytes could not be decoded (or a message could not be encoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// Fewer bytes than the header or the length field asks for.
    Truncated {
        need: usize,
        have: usize,
    },
    /// The 16-byte marker is not all ones.
    NotSynchronized,
    /// The length field is out of range for the message type.
    BadLength(u16),
    /// Unknown message type.
    BadType(u8),
    UnsupportedVersion(u8),
    UnacceptableHoldTime(u16),
    MalformedOpen(&'static str),
    MalformedUpdate(&'static str),
    /// A prefix in withdrawn routes or NLRI is malformed.
    InvalidNetworkField,
    /// Encoding would exceed the 4096-byte message limit.
    TooLong(usize),
    /// NLRI to announce without path attributes.
    MissingAttributes,
}

impl CodecError {
    /// The NOTIFICATION (code, subcode) to send to a peer whose message failed this way.
    pub fn notification(&self) -> Option<(u8, u8)> {
        match self {
            CodecError::NotSynchronized => Some((1, 1)),
            CodecError::Truncated { .. } | CodecError::BadLength(_) => Some((1, 2)),
            CodecError::BadType(_) => Some((1, 3)),
            CodecError::UnsupportedVersion(_) => Some((2, 1)),
            CodecError::UnacceptableHoldTime(_) => Some((2, 6)),
            CodecError::MalformedOpen(_) => Some((2, 0)),
            CodecError::MalformedUpdate(_) => Some((3, 1)),
            CodecError::InvalidNetworkField => Some((3, 10)),
            CodecError::TooLong(_) | CodecError::MissingAttributes => None,
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated { need, have } => {
                write!(f, "truncated message: need {need} bytes, have {have}")
            }
            CodecError::NotSynchronized => write!(f, "bad marker (connection not synchronized)"),
            CodecError::BadLength(l) => write!(f, "bad message length {l}"),
            CodecError::BadType(t) => write!(f, "bad message type {t}"),
            CodecError::UnsupportedVersion(v) => write!(f, "unsupported BGP version {v}"),
            CodecError::UnacceptableHoldTime(h) => write!(f, "unacceptable hold time {h}"),
            CodecError::MalformedOpen(why) => write!(f, "malformed OPEN: {why}"),
            CodecError::MalformedUpdate(why) => write!(f, "malformed UPDATE: {why}"),
            CodecError::InvalidNetworkField => write!(f, "malformed UPDATE: invalid prefix"),
            CodecError::TooLong(n) => write!(f, "message of {n} bytes exceeds 4096"),
            CodecError::MissingAttributes => write!(f, "NLRI without path attributes"),
        }
    }
}

impl std::error::Error for CodecError {}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

fn frame(msg_type: u8, body: &[u8]) -> Result<Vec<u8>, CodecError> {
    let len = HEADER_LEN + body.len();
    let len16 = u16::try_from(len)
        .ok()
        .filter(|_| len <= MAX_MESSAGE_LEN)
        .ok_or(CodecError::TooLong(len))?;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&[0xff; 16]);
    v.extend_from_slice(&len16.to_be_bytes());
    v.push(msg_type);
    v.extend_from_slice(body);
    Ok(v)
}

/// OPEN: version 4, `local_as` (AS_TRANS in the 2-octet field when it does not fit), hold
/// time, BGP identifier, and one capabilities parameter: multiprotocol IPv4 unicast and
/// 4-octet AS carrying the real AS.
pub fn encode_open(local_as: u32, hold_time: u16, bgp_id: Ipv4Addr) -> Vec<u8> {
    let my_as = u16::try_from(local_as).unwrap_or(AS_TRANS);
    let mut caps = Vec::with_capacity(12);
    caps.extend_from_slice(&[CAP_MULTIPROTOCOL, 4, 0, 1, 0, 1]);
    caps.extend_from_slice(&[CAP_FOUR_OCTET_AS, 4]);
    caps.extend_from_slice(&local_as.to_be_bytes());
    let mut body = Vec::with_capacity(24);
    body.push(4);
    body.extend_from_slice(&my_as.to_be_bytes());
    body.extend_from_slice(&hold_time.to_be_bytes());
    body.extend_from_slice(&bgp_id.octets());
    body.push(2 + caps.len() as u8);
    body.push(2); // optional parameter type: capabilities
    body.push(caps.len() as u8);
    body.extend_from_slice(&caps);
    // 43 bytes: always fits.
    frame(MSG_OPEN, &body).unwrap_or_default()
}

/// KEEPALIVE: a bare header.
pub fn encode_keepalive() -> Vec<u8> {
    frame(MSG_KEEPALIVE, &[]).unwrap_or_default()
}

/// NOTIFICATION with `data` (cut to fit the 4096-byte limit).
pub fn encode_notification(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    let room = MAX_MESSAGE_LEN - HEADER_LEN - 2;
    let mut body = vec![code, subcode];
    body.extend_from_slice(&data[..data.len().min(room)]);
    frame(MSG_NOTIFICATION, &body).unwrap_or_default()
}

/// RFC 9003 shutdown communication: a length byte then UTF-8 text (at most 255 bytes).
pub fn shutdown_communication(text: &str) -> Vec<u8> {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut v = vec![end as u8];
    v.extend_from_slice(&text.as_bytes()[..end]);
    v
}

/// The path attributes we send with announcements: ORIGIN IGP, AS_PATH (one AS_SEQUENCE
/// per 255 ASes), NEXT_HOP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathAttributes {
    pub as_path: Vec<u32>,
    pub next_hop: Ipv4Addr,
}

fn put_attr(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, code]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, code, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

/// UPDATE with `withdrawn` routes and, when `attrs` is given, path attributes and `nlri`.
/// AS numbers are 4 octets when `four_octet_as` (both sides sent capability 65), else 2
/// octets with AS_TRANS standing in for ASes that do not fit.
pub fn encode_update(
    withdrawn: &[Prefix],
    attrs: Option<&PathAttributes>,
    nlri: &[Prefix],
    four_octet_as: bool,
) -> Result<Vec<u8>, CodecError> {
    if attrs.is_none() && !nlri.is_empty() {
        return Err(CodecError::MissingAttributes);
    }
    let mut w = Vec::new();
    for p in withdrawn {
        put_prefix(&mut w, p);
    }
    let mut a = Vec::new();
    if let Some(attrs) = attrs {
        put_attr(&mut a, FLAG_TRANSITIVE, ATTR_ORIGIN, &[0]);
        let mut path = Vec::new();
        for seg in attrs.as_path.chunks(255) {
            path.push(AS_SEQUENCE);
            path.push(seg.len() as u8);
            for &asn in seg {
                if four_octet_as {
                    path.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let two = u16::try_from(asn).unwrap_or(AS_TRANS);
                    path.extend_from_slice(&two.to_be_bytes());
                }
            }
        }
        put_attr(&mut a, FLAG_TRANSITIVE, ATTR_AS_PATH, &path);
        put_attr(
            &mut a,
            FLAG_TRANSITIVE,
            ATTR_NEXT_HOP,
            &attrs.next_hop.octets(),
        );
    }
    let too_long = CodecError::TooLong(HEADER_LEN + 4 + w.len() + a.len());
    let mut body = Vec::new();
    body.extend_from_slice(
        &u16::try_from(w.len())
            .map_err(|_| too_long.clone())?
            .to_be_bytes(),
    );
    body.extend_from_slice(&w);
    body.extend_from_slice(&u16::try_from(a.len()).map_err(|_| too_long)?.to_be_bytes());
    body.extend_from_slice(&a);
    for p in nlri {
        put_prefix(&mut body, p);
    }
    frame(MSG_UPDATE, &body)
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// A decoded OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenMsg {
    pub version: u8,
    /// The peer's AS: from capability 65 when present, else the 2-octet field.
    pub asn: u32,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// The peer sent capability 65 (4-octet AS numbers).
    pub four_octet_as: bool,
    /// Capability codes the peer advertised, in order.
    pub capabilities: Vec<u8>,
}

/// A decoded UPDATE: only the prefixes are kept; attributes are walked and counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateMsg {
    pub withdrawn: Vec<Prefix>,
    pub announced: Vec<Prefix>,
    pub attributes: usize,
}

/// A decoded NOTIFICATION.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationMsg {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl NotificationMsg {
    /// `6/2 (Cease: administrative shutdown)`, plus the RFC 9003 shutdown communication
    /// when there is one: ` message="..."`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}/{} ({})",
            self.code,
            self.subcode,
            notification_text(self.code, self.subcode)
        );
        if self.code == 6 && matches!(self.subcode, 2 | 4) {
            if let Some((&n, rest)) = self.data.split_first() {
                if n > 0 && usize::from(n) <= rest.len() {
                    if let Ok(text) = std::str::from_utf8(&rest[..usize::from(n)]) {
                        let clean: String = text
                            .chars()
                            .map(|c| if c.is_control() || c == '"' { '\'' } else { c })
                            .collect();
                        s.push_str(&format!(" message=\"{clean}\""));
                    }
                }
            }
        }
        s
    }
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(OpenMsg),
    Update(UpdateMsg),
    Notification(NotificationMsg),
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918): recognised and ignored.
    RouteRefresh,
}

/// Human text for a NOTIFICATION code/subcode: `Cease: administrative shutdown`.
pub fn notification_text(code: u8, subcode: u8) -> String {
    let (major, minor): (&str, Option<&str>) = match (code, subcode) {
        (1, s) => (
            "Message Header Error",
            match s {
                1 => Some("connection not synchronized"),
                2 => Some("bad message length"),
                3 => Some("bad message type"),
                _ => None,
            },
        ),
        (2, s) => (
            "OPEN Message Error",
            match s {
                1 => Some("unsupported version number"),
                2 => Some("bad peer AS"),
                3 => Some("bad BGP identifier"),
                4 => Some("unsupported optional parameter"),
                6 => Some("unacceptable hold time"),
                7 => Some("unsupported capability"),
                11 => Some("role mismatch"),
                _ => None,
            },
        ),
        (3, s) => (
            "UPDATE Message Error",
            match s {
                1 => Some("malformed attribute list"),
                2 => Some("unrecognized well-known attribute"),
                3 => Some("missing well-known attribute"),
                4 => Some("attribute flags error"),
                5 => Some("attribute length error"),
                6 => Some("invalid ORIGIN attribute"),
                8 => Some("invalid NEXT_HOP attribute"),
                9 => Some("optional attribute error"),
                10 => Some("invalid network field"),
                11 => Some("malformed AS_PATH"),
                _ => None,
            },
        ),
        (4, _) => ("Hold Timer Expired", None),
        (5, s) => (
            "Finite State Machine Error",
            match s {
                1 => Some("unexpected message in OpenSent"),
                2 => Some("unexpected message in OpenConfirm"),
                3 => Some("unexpected message in Established"),
                _ => None,
            },
        ),
        (6, s) => (
            "Cease",
            match s {
                1 => Some("maximum number of prefixes reached"),
                2 => Some("administrative shutdown"),
                3 => Some("peer de-configured"),
                4 => Some("administrative reset"),
                5 => Some("connection rejected"),
                6 => Some("other configuration change"),
                7 => Some("connection collision resolution"),
                8 => Some("out of resources"),
                9 => Some("hard reset"),
                10 => Some("BFD down"),
                _ => None,
            },
        ),
        (7, _) => ("ROUTE-REFRESH Message Error", None),
        _ => return format!("unknown error code {code} subcode {subcode}"),
    };
    match (minor, subcode) {
        (Some(m), _) => format!("{major}: {m}"),
        (None, 0) => major.to_string(),
        (None, s) => format!("{major}: subcode {s}"),
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        s
    }
    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Decode a 19-byte header: (total message length, type). Checks the marker, the type, and
/// the length against the type's bounds.
pub fn decode_header(buf: &[u8]) -> Result<(usize, u8), CodecError> {
    let hdr = buf.get(..HEADER_LEN).ok_or(CodecError::Truncated {
        need: HEADER_LEN,
        have: buf.len(),
    })?;
    if hdr[..16].iter().any(|&b| b != 0xff) {
        return Err(CodecError::NotSynchronized);
    }
    let len = u16::from_be_bytes([hdr[16], hdr[17]]);
    let msg_type = hdr[18];
    let (min, max) = match msg_type {
        MSG_OPEN => (29, MAX_MESSAGE_LEN),
        MSG_UPDATE => (23, MAX_MESSAGE_LEN),
        MSG_NOTIFICATION => (21, MAX_MESSAGE_LEN),
        MSG_KEEPALIVE => (19, 19),
        MSG_ROUTE_REFRESH => (23, 23),
        t => return Err(CodecError::BadType(t)),
    };
    let l = usize::from(len);
    if l < min || l > max {
        return Err(CodecError::BadLength(len));
    }
    Ok((l, msg_type))
}

/// Decode one whole message from the front of `buf`: the message and the bytes it used.
pub fn decode_message(buf: &[u8]) -> Result<(Message, usize), CodecError> {
    let (len, msg_type) = decode_header(buf)?;
    let body = buf.get(HEADER_LEN..len).ok_or(CodecError::Truncated {
        need: len,
        have: buf.len(),
    })?;
    let msg = match msg_type {
        MSG_OPEN => Message::Open(decode_open(body)?),
        MSG_UPDATE => Message::Update(decode_update(body)?),
        MSG_NOTIFICATION => Message::Notification(NotificationMsg {
            code: body[0],
            subcode: body[1],
            data: body[2..].to_vec(),
        }),
        MSG_KEEPALIVE => Message::Keepalive,
        _ => Message::RouteRefresh,
    };
    Ok((msg, len))
}

fn decode_open(body: &[u8]) -> Result<OpenMsg, CodecError> {
    let short = CodecError::MalformedOpen("too short");
    let mut c = Cursor::new(body);
    let version = c.u8().ok_or(short.clone())?;
    if version != 4 {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let my_as = c.u16().ok_or(short.clone())?;
    let hold_time = c.u16().ok_or(short.clone())?;
    let bgp_id = Ipv4Addr::from(c.u32().ok_or(short.clone())?);
    let opt_len = c.u8().ok_or(short)?;
    let params = c
        .take(usize::from(opt_len))
        .ok_or(CodecError::MalformedOpen(
            "optional parameters overrun the message",
        ))?;
    if !c.is_empty() {
        return Err(CodecError::MalformedOpen("bytes after optional parameters"));
    }
    if hold_time == 1 || hold_time == 2 {
        return Err(CodecError::UnacceptableHoldTime(hold_time));
    }
    let mut capabilities = Vec::new();
    let mut asn4 = None;
    let mut p = Cursor::new(params);
    while !p.is_empty() {
        let bad = CodecError::MalformedOpen("optional parameter overruns its list");
        let ptype = p.u8().ok_or(bad.clone())?;
        let plen = p.u8().ok_or(bad.clone())?;
        let pval = p.take(usize::from(plen)).ok_or(bad)?;
        if ptype != 2 {
            continue;
        }
        let mut cc = Cursor::new(pval);
        while !cc.is_empty() {
            let bad = CodecError::MalformedOpen("capability overruns its parameter");
            let code = cc.u8().ok_or(bad.clone())?;
            let clen = cc.u8().ok_or(bad.clone())?;
            let cval = cc.take(usize::from(clen)).ok_or(bad)?;
            if code == CAP_FOUR_OCTET_AS {
                if cval.len() != 4 {
                    return Err(CodecError::MalformedOpen("4-octet AS capability length"));
                }
                asn4 = Some(u32::from_be_bytes([cval[0], cval[1], cval[2], cval[3]]));
            }
            capabilities.push(code);
        }
    }
    Ok(OpenMsg {
        version,
        asn: asn4.unwrap_or(u32::from(my_as)),
        hold_time,
        bgp_id,
        four_octet_as: asn4.is_some(),
        capabilities,
    })
}

fn decode_prefixes(buf: &[u8]) -> Result<Vec<Prefix>, CodecError> {
    let mut out = Vec::new();
    let mut c = Cursor::new(buf);
    while !c.is_empty() {
        let len = c.u8().ok_or(CodecError::InvalidNetworkField)?;
        if len > 32 {
            return Err(CodecError::InvalidNetworkField);
        }
        let bytes = c
            .take(usize::from(len).div_ceil(8))
            .ok_or(CodecError::InvalidNetworkField)?;
        let mut o = [0u8; 4];
        o[..bytes.len()].copy_from_slice(bytes);
        // Trailing bits past the length are irrelevant (RFC 4271 4.3): mask them.
        let addr = Ipv4Addr::from(u32::from_be_bytes(o) & mask(len));
        out.push(Prefix { addr, len });
    }
    Ok(out)
}

fn decode_update(body: &[u8]) -> Result<UpdateMsg, CodecError> {
    let mut c = Cursor::new(body);
    let wlen = c.u16().ok_or(CodecError::MalformedUpdate("too short"))?;
    let w = c
        .take(usize::from(wlen))
        .ok_or(CodecError::MalformedUpdate(
            "withdrawn routes overrun the message",
        ))?;
    let alen = c
        .u16()
        .ok_or(CodecError::MalformedUpdate("no path attribute length"))?;
    let a = c
        .take(usize::from(alen))
        .ok_or(CodecError::MalformedUpdate(
            "path attributes overrun the message",
        ))?;
    let nlri = c.rest();
    let mut attributes = 0;
    let mut ac = Cursor::new(a);
    while !ac.is_empty() {
        let bad = CodecError::MalformedUpdate("path attribute overruns the attribute list");
        let flags = ac.u8().ok_or(bad.clone())?;
        let _code = ac.u8().ok_or(bad.clone())?;
        let len = if flags & FLAG_EXTENDED_LENGTH != 0 {
            ac.u16().map(usize::from)
        } else {
            ac.u8().map(usize::from)
        }
        .ok_or(bad.clone())?;
        ac.take(len).ok_or(bad)?;
        attributes += 1;
    }
    Ok(UpdateMsg {
        withdrawn: decode_prefixes(w)?,
        announced: decode_prefixes(nlri)?,
        attributes,
    })
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// What the speaker does once the session is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SpeakerMode {
    /// Announce the prefixes once and keep the session up.
    Announce,
    /// Announce and withdraw the prefixes alternately every `periodMs` (± jitter).
    Flap,
    /// Establish, announce, wait `periodMs`, Cease/Administrative Reset, wait, again.
    Reset,
}

fn default_port() -> u16 {
    BGP_PORT
}
fn default_hold() -> u16 {
    90
}
fn default_period() -> u64 {
    1000
}
fn default_lease() -> u64 {
    60_000
}

/// The JSON configuration of `murphy __hog bgp <json>` (camelCase keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpeakerConfig {
    /// The one router this speaker talks to.
    pub peer: Ipv4Addr,
    /// TCP port of the peer (179).
    #[serde(default = "default_port")]
    pub peer_port: u16,
    /// The AS the peer must announce in its OPEN.
    pub peer_as: u32,
    /// Our AS (above 65535 goes out as AS_TRANS plus capability 65).
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Bind this source address before connecting (default: the kernel picks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<Ipv4Addr>,
    /// Hold time we offer, seconds (0, or 3 and above); the session uses min(ours, theirs).
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    /// IPv4 prefixes to announce, `a.b.c.d/len`, no host bits.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// NEXT_HOP of the announcements (default: our address on the session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<Ipv4Addr>,
    /// AS_PATH of the announcements (default: `[localAs]` towards an eBGP peer, empty
    /// towards an iBGP one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_path: Option<Vec<u32>>,
    pub mode: SpeakerMode,
    /// Flap / reset period, milliseconds.
    #[serde(default = "default_period")]
    pub period_ms: u64,
    /// Uniform jitter added to each period, ± milliseconds.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Seed of the jitter RNG.
    #[serde(default)]
    pub seed: u64,
    /// Stop on our own this long after the go byte, milliseconds.
    #[serde(default = "default_lease")]
    pub lease_ms: u64,
}

impl SpeakerConfig {
    /// The prefixes, parsed; an error names the first bad one or a bad setting.
    pub fn validate(&self) -> Result<Vec<Prefix>, BgpConfigError> {
        self.validate_inner().map_err(BgpConfigError)
    }

    fn validate_inner(&self) -> Result<Vec<Prefix>, String> {
        if self.local_as == 0 || self.peer_as == 0 {
            return Err("localAs and peerAs must be non-zero".into());
        }
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(format!(
                "holdTime {} is not allowed (0 or >= 3)",
                self.hold_time
            ));
        }
        if self.router_id.is_unspecified() {
            return Err("routerId must not be 0.0.0.0".into());
        }
        if self.period_ms < 10 {
            return Err(format!("periodMs {} is below 10", self.period_ms));
        }
        if self.jitter_ms > self.period_ms {
            return Err(format!(
                "jitterMs {} exceeds periodMs {}",
                self.jitter_ms, self.period_ms
            ));
        }
        if self.prefixes.len() > MAX_PREFIXES {
            return Err(format!("more than {MAX_PREFIXES} prefixes"));
        }
        let mut out = Vec::with_capacity(self.prefixes.len());
        for s in &self.prefixes {
            let (addr, len) = parse_prefix(s)
                .ok_or_else(|| format!("bad prefix {s:?} (want a.b.c.d/len without host bits)"))?;
            out.push(Prefix { addr, len });
        }
        Ok(out)
    }

    fn effective_as_path(&self) -> Vec<u32> {
        match &self.as_path {
            Some(p) => p.clone(),
            None if self.local_as != self.peer_as => vec![self.local_as],
            None => Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Session and plans
// ---------------------------------------------------------------------------------------

/// Deterministic jitter from the configured seed ([`crate::rand`]).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }
    fn next(&mut self) -> u64 {
        crate::rand::next(&mut self.0)
    }
}

/// `period` ± uniform `jitter` (milliseconds), never below 10 ms.
fn jittered(rng: &mut XorShift, period_ms: u64, jitter_ms: u64) -> Duration {
    if jitter_ms == 0 {
        return Duration::from_millis(period_ms);
    }
    let span = 2 * u128::from(jitter_ms) + 1;
    let offset = (u128::from(rng.next()) % span) as i128 - i128::from(jitter_ms);
    let ms = (i128::from(period_ms) + offset).max(10);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Print one event line, flushed; control characters become spaces so a line stays a line.
fn emit(line: &str) {
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{clean}");
    let _ = out.flush();
}

#[derive(Clone, Copy, Debug)]
enum StopReason {
    Stdin,
    Eof,
    Lease,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Stdin => "stdin",
            StopReason::Eof => "eof",
            StopReason::Lease => "lease",
        })
    }
}

enum Event {
    Stop(StopReason),
    Msg(u64, Message),
    Bad(u64, CodecError),
    Closed(u64, String),
}

enum Interrupt {
    /// Told to stop: shut down cleanly.
    Stop,
    /// The session failed: reconnect after the backoff.
    Failed(String),
}

enum Cycle {
    Done,
    Again,
}

struct Session {
    id: u64,
    stream: TcpStream,
    peer: Ipv4Addr,
    started: Instant,
    hold: Option<Duration>,
    keepalive_every: Option<Duration>,
    four_octet: bool,
    last_sent: Instant,
    last_recv: Instant,
    next_hop: Ipv4Addr,
    announced: bool,
}

impl Session {
    fn send(&mut self, bytes: &[u8]) -> Result<(), Interrupt> {
        self.stream
            .write_all(bytes)
            .map_err(|e| Interrupt::Failed(format!("write to peer {}: {e}", self.peer)))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    fn notify(&mut self, code: u8, subcode: u8, data: &[u8]) {
        let _ = self.send(&encode_notification(code, subcode, data));
    }
}

/// Read whole messages from the peer and hand them to the speaker until EOF or error.
fn reader(id: u64, mut stream: TcpStream, tx: Sender<Event>) {
    loop {
        let mut buf = vec![0u8; HEADER_LEN];
        if let Err(e) = stream.read_exact(&mut buf) {
            let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "connection closed by peer".to_string()
            } else {
                format!("read error: {e}")
            };
            let _ = tx.send(Event::Closed(id, why));
            return;
        }
        let len = match decode_header(&buf) {
            Ok((len, _)) => len,
            Err(e) => {
                let _ = tx.send(Event::Bad(id, e));
                return;
            }
        };
        buf.resize(len, 0);
        if let Err(e) = stream.read_exact(&mut buf[HEADER_LEN..]) {
            let _ = tx.send(Event::Closed(id, format!("read error mid-message: {e}")));
            return;
        }
        let ev = match decode_message(&buf) {
            Ok((m, _)) => Event::Msg(id, m),
            Err(e) => Event::Bad(id, e),
        };
        let bad = matches!(ev, Event::Bad(..));
        if tx.send(ev).is_err() || bad {
            return;
        }
    }
}

struct Speaker {
    cfg: SpeakerConfig,
    prefixes: Vec<Prefix>,
    as_path: Vec<u32>,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    lease_deadline: Instant,
    stop: Option<StopReason>,
    rng: XorShift,
    next_id: u64,
}

impl Speaker {
    fn set_stop(&mut self, r: StopReason) -> Interrupt {
        if self.stop.is_none() {
            self.stop = Some(r);
            emit(&format!("stopping reason={r}"));
        }
        Interrupt::Stop
    }

    /// The next event before `until` (capped by the lease), Ok(None) on timeout, Err(Stop)
    /// once told to stop (and ever after).
    fn poll(&mut self, until: Instant) -> Result<Option<Event>, Interrupt> {
        if self.stop.is_some() {
            return Err(Interrupt::Stop);
        }
        let now = Instant::now();
        if now >= self.lease_deadline {
            return Err(self.set_stop(StopReason::Lease));
        }
        let until = until.min(self.lease_deadline);
        match self.rx.recv_timeout(until.saturating_duration_since(now)) {
            Ok(Event::Stop(r)) => Err(self.set_stop(r)),
            Ok(ev) => Ok(Some(ev)),
            Err(RecvTimeoutError::Timeout) => {
                if Instant::now() >= self.lease_deadline {
                    Err(self.set_stop(StopReason::Lease))
                } else {
                    Ok(None)
                }
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.set_stop(StopReason::Eof)),
        }
    }

    /// Wait `d` with no session (stale session events are dropped).
    fn pause(&mut self, d: Duration) -> Result<(), Interrupt> {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.poll(until)?;
        }
        Ok(())
    }

    fn period(&mut self) -> Duration {
        jittered(&mut self.rng, self.cfg.period_ms, self.cfg.jitter_ms)
    }

    fn run(&mut self) {
        loop {
            match self.run_session() {
                Ok(Cycle::Done) | Err(Interrupt::Stop) => break,
                Ok(Cycle::Again) => {
                    let d = self.period();
                    if self.pause(d).is_err() {
                        break;
                    }
                }
                Err(Interrupt::Failed(e)) => {
                    emit(&format!("error {e}"));
                    emit(&format!(
                        "reconnecting in {}ms",
                        RECONNECT_BACKOFF.as_millis()
                    ));
                    if self.pause(RECONNECT_BACKOFF).is_err() {
                        break;
                    }
                }
            }
        }
    }

    fn open_stream(&self) -> std::io::Result<TcpStream> {
        let peer = SocketAddrV4::new(self.cfg.peer, self.cfg.peer_port);
        let Some(local) = self.cfg.local_address else {
            return TcpStream::connect_timeout(&SocketAddr::V4(peer), CONNECT_TIMEOUT);
        };
        use nix::sys::socket::SockaddrIn;
        use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType};
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let stream = TcpStream::from(fd);
        // SO_SNDTIMEO also bounds a blocking connect() on Linux.
        stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        bind(
            stream.as_raw_fd(),
            &SockaddrIn::from(SocketAddrV4::new(local, 0)),
        )?;
        match connect(stream.as_raw_fd(), &SockaddrIn::from(peer)) {
            Ok(()) => Ok(stream),
            Err(nix::errno::Errno::EINPROGRESS) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            )),
            Err(e) => Err(e.into()),
        }
    }

    fn connect(&mut self) -> Result<Session, Interrupt> {
        let started = Instant::now();
        let peer = self.cfg.peer;
        emit(&format!(
            "connecting peer={peer} port={}",
            self.cfg.peer_port
        ));
        let fail = |what: &str, e: std::io::Error| {
            Interrupt::Failed(format!("{what} {peer} port {}: {e}", self.cfg.peer_port))
        };
        let stream = self.open_stream().map_err(|e| fail("connect to", e))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(|e| fail("set up socket to", e))?;
        let local = match stream.local_addr() {
            Ok(SocketAddr::V4(a)) => *a.ip(),
            _ => Ipv4Addr::UNSPECIFIED,
        };
        let rd = stream
            .try_clone()
            .map_err(|e| fail("set up socket to", e))?;
        let id = self.next_id;
        self.next_id += 1;
        let tx = self.tx.clone();
        std::thread::spawn(move || reader(id, rd, tx));
        let now = Instant::now();
        let mut s = Session {
            id,
            stream,
            peer,
            started,
            hold: None,
            keepalive_every: None,
            four_octet: false,
            last_sent: now,
            last_recv: now,
            next_hop: self.cfg.next_hop.unwrap_or(local),
            announced: false,
        };
        s.send(&encode_open(
            self.cfg.local_as,
            self.cfg.hold_time,
            self.cfg.router_id,
        ))?;
        Ok(s)
    }

    /// One connection: connect, run the plan, and close it the way the outcome asks.
    fn run_session(&mut self) -> Result<Cycle, Interrupt> {
        self.poll(Instant::now())?;
        let mut s = self.connect()?;
        let r = self.drive(&mut s);
        match r {
            Ok(c) => Ok(c),
            Err(Interrupt::Stop) => {
                self.shutdown(&mut s);
                Ok(Cycle::Done)
            }
            Err(e) => {
                let _ = s.stream.shutdown(Shutdown::Both);
                Err(e)
            }
        }
    }

    /// Handle an event that is not the one a state waits for: errors end the session.
    fn session_event(&mut self, s: &mut Session, ev: Event) -> Result<(), Interrupt> {
        match ev {
            Event::Msg(id, m) if id == s.id => {
                s.last_recv = Instant::now();
                match m {
                    Message::Keepalive | Message::RouteRefresh => Ok(()),
                    Message::Update(u) => {
                        if u.withdrawn.is_empty() && u.announced.is_empty() && u.attributes == 0 {
                            emit("end-of-rib-received");
                        } else {
                            emit(&format!(
                                "update-received withdrawn={} announced={}",
                                u.withdrawn.len(),
                                u.announced.len()
                            ));
                        }
                        Ok(())
                    }
                    Message::Notification(n) => Err(Interrupt::Failed(format!(
                        "peer {} sent NOTIFICATION {}",
                        s.peer,
                        n.describe()
                    ))),
                    Message::Open(_) => {
                        s.notify(5, 3, &[]);
                        Err(Interrupt::Failed(format!(
                            "peer {} sent an unexpected OPEN",
                            s.peer
                        )))
                    }
                }
            }
            Event::Bad(id, e) if id == s.id => {
                if let Some((code, sub)) = e.notification() {
                    s.notify(code, sub, &[]);
                }
                Err(Interrupt::Failed(format!(
                    "malformed message from peer {}: {e}",
                    s.peer
                )))
            }
            Event::Closed(id, why) if id == s.id => {
                Err(Interrupt::Failed(format!("peer {}: {why}", s.peer)))
            }
            _ => Ok(()),
        }
    }

    /// OPEN exchange up to Established.
    fn handshake(&mut self, s: &mut Session) -> Result<(), Interrupt> {
        let deadline = Instant::now() + OPEN_TIMEOUT;
        let open = loop {
            let ev = self.poll(deadline)?.ok_or_else(|| {
                Interrupt::Failed(format!(
                    "no OPEN from peer {} within {}s",
                    s.peer,
                    OPEN_TIMEOUT.as_secs()
                ))
            })?;
            match ev {
                Event::Msg(id, Message::Open(o)) if id == s.id => break o,
                Event::Msg(id, Message::Keepalive | Message::Update(_)) if id == s.id => {
                    s.notify(5, 1, &[]);
                    return Err(Interrupt::Failed(format!(
                        "peer {} sent a message before its OPEN",
                        s.peer
                    )));
                }
                Event::Closed(id, why) if id == s.id => {
                    return Err(Interrupt::Failed(format!(
                        "peer {}: {why} before its OPEN (it refuses us: wrong neighbor address \
                         or AS in its config, or it is waiting out an earlier error)",
                        s.peer
                    )));
                }
                ev => self.session_event(s, ev)?,
            }
        };
        s.last_recv = Instant::now();
        if open.asn != self.cfg.peer_as {
            s.notify(2, 2, &[]);
            return Err(Interrupt::Failed(format!(
                "peer {} is AS {} but peerAs is {}",
                s.peer, open.asn, self.cfg.peer_as
            )));
        }
        let hold = open.hold_time.min(self.cfg.hold_time);
        if hold > 0 {
            s.hold = Some(Duration::from_secs(u64::from(hold)));
            s.keepalive_every = Some(Duration::from_secs(u64::from(hold)) / 3);
        }
        s.four_octet = open.four_octet_as;
        s.send(&encode_keepalive())?;
        let confirm_deadline = Instant::now() + s.hold.unwrap_or(OPEN_TIMEOUT);
        loop {
            let ev = self.poll(confirm_deadline)?.ok_or_else(|| {
                Interrupt::Failed(format!("no KEEPALIVE from peer {} after OPEN", s.peer))
            })?;
            match ev {
                Event::Msg(id, Message::Keepalive) if id == s.id => break,
                Event::Msg(id, Message::Update(_)) if id == s.id => {
                    s.notify(5, 2, &[]);
                    return Err(Interrupt::Failed(format!(
                        "peer {} sent an UPDATE before its KEEPALIVE",
                        s.peer
                    )));
                }
                ev => self.session_event(s, ev)?,
            }
        }
        s.last_recv = Instant::now();
        emit(&format!(
            "established peer={} as={} hold={} id={} as4={} ms={}",
            s.peer,
            open.asn,
            hold,
            open.bgp_id,
            if s.four_octet { "yes" } else { "no" },
            s.started.elapsed().as_millis()
        ));
        Ok(())
    }

    /// Keep the session alive until `until`: keepalives, hold timer, peer messages.
    fn hold_session(&mut self, s: &mut Session, until: Instant) -> Result<(), Interrupt> {
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let mut wake = until;
            if let Some(ka) = s.keepalive_every {
                let due = s.last_sent + ka;
                if now >= due {
                    s.send(&encode_keepalive())?;
                    continue;
                }
                wake = wake.min(due);
            }
            if let Some(h) = s.hold {
                let expiry = s.last_recv + h;
                if now >= expiry {
                    s.notify(4, 0, &[]);
                    return Err(Interrupt::Failed(format!(
                        "hold timer expired: nothing from peer {} for {}s",
                        s.peer,
                        h.as_secs()
                    )));
                }
                wake = wake.min(expiry);
            }
            if let Some(ev) = self.poll(wake)? {
                self.session_event(s, ev)?;
            }
        }
    }

    fn announce(&mut self, s: &mut Session) -> Result<(), Interrupt> {
        if self.prefixes.is_empty() {
            return Ok(());
        }
        let attrs = PathAttributes {
            as_path: self.as_path.clone(),
            next_hop: s.next_hop,
        };
        let msg = encode_update(&[], Some(&attrs), &self.prefixes, s.four_octet)
            .map_err(|e| Interrupt::Failed(format!("cannot encode UPDATE: {e}")))?;
        s.send(&msg)?;
        s.announced = true;
        for p in &self.prefixes {
            emit(&format!("announced {p} nexthop={}", s.next_hop));
        }
        Ok(())
    }

    fn withdraw(&mut self, s: &mut Session) -> Result<(), Interrupt> {
        if !s.announced {
            return Ok(());
        }
        let msg = encode_update(&self.prefixes, None, &[], s.four_octet)
            .map_err(|e| Interrupt::Failed(format!("cannot encode UPDATE: {e}")))?;
        s.send(&msg)?;
        s.announced = false;
        for p in &self.prefixes {
            emit(&format!("withdrawn {p}"));
        }
        Ok(())
    }

    /// The plan, on an open connection. Returns only by error, stop, or (reset) Again.
    fn drive(&mut self, s: &mut Session) -> Result<Cycle, Interrupt> {
        self.handshake(s)?;
        match self.cfg.mode {
            SpeakerMode::Announce => {
                self.announce(s)?;
                loop {
                    let until = self.lease_deadline;
                    self.hold_session(s, until)?;
                }
            }
            SpeakerMode::Flap => loop {
                if s.announced {
                    self.withdraw(s)?;
                } else {
                    self.announce(s)?;
                }
                let until = Instant::now() + self.period();
                self.hold_session(s, until)?;
            },
            SpeakerMode::Reset => {
                self.announce(s)?;
                let until = Instant::now() + self.period();
                self.hold_session(s, until)?;
                s.send(&encode_notification(
                    6,
                    4,
                    &shutdown_communication("murphy fault injection: reset"),
                ))?;
                s.announced = false;
                emit("reset sent");
                self.linger(s);
                Ok(Cycle::Again)
            }
        }
    }

    /// Half-close and give the peer a moment to read our NOTIFICATION and close its side,
    /// so that our close does not turn into a reset that loses the NOTIFICATION.
    fn linger(&mut self, s: &mut Session) {
        let _ = s.stream.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER;
        loop {
            match self.poll(until) {
                Ok(Some(Event::Closed(id, _) | Event::Bad(id, _))) if id == s.id => break,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let _ = s.stream.shutdown(Shutdown::Both);
    }

    /// Clean stop: withdraw, Cease/Administrative Shutdown, close.
    fn shutdown(&mut self, s: &mut Session) {
        if s.announced {
            if let Err(Interrupt::Failed(e)) = self.withdraw(s) {
                emit(&format!("error {e}"));
            }
        }
        s.notify(
            6,
            2,
            &shutdown_communication("murphy fault injection: stop"),
        );
        emit("notification-sent 6/2");
        // The stop flag is set, so poll() returns at once: wait on the reader directly.
        let _ = s.stream.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(Event::Closed(id, _) | Event::Bad(id, _)) if id == s.id => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = s.stream.shutdown(Shutdown::Both);
    }
}

/// Entry point of `murphy __hog bgp <json>`: validate the config (exit 2 with an `error`
/// line if it is bad), wait for the go byte, run the plan until stdin yields a byte or EOF
/// or the lease runs out, stop cleanly, print `stopped`, return 0.
pub fn speaker_main(config_json: &str) -> i32 {
    let cfg: SpeakerConfig = match serde_json::from_str(config_json) {
        Ok(c) => c,
        Err(e) => {
            emit(&format!("error bad config: {e}"));
            return 2;
        }
    };
    let prefixes = match cfg.validate() {
        Ok(p) => p,
        Err(e) => {
            emit(&format!("error bad config: {e}"));
            return 2;
        }
    };
    if !matches!(read_byte(), Some(true)) {
        return 0;
    }
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let stdin_tx = tx.clone();
    std::thread::spawn(move || {
        let r = match read_byte() {
            Some(true) => StopReason::Stdin,
            _ => StopReason::Eof,
        };
        let _ = stdin_tx.send(Event::Stop(r));
    });
    let mut sp = Speaker {
        as_path: cfg.effective_as_path(),
        prefixes,
        tx,
        rx,
        lease_deadline: start + Duration::from_millis(cfg.lease_ms),
        stop: None,
        rng: XorShift::new(cfg.seed),
        next_id: 0,
        cfg,
    };
    sp.run();
    emit("stopped");
    0
}

/// One byte from stdin: Some(true) got one, Some(false) EOF, None error.
fn read_byte() -> Option<bool> {
    let mut one = [0u8; 1];
    loop {
        match std::io::stdin().read(&mut one) {
            Ok(n) => return Some(n == 1),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfx(s: &str) -> Prefix {
        let (addr, len) = parse_prefix(s).expect("valid prefix");
        Prefix { addr, len }
    }

    fn hdr(len: u8, t: u8) -> Vec<u8> {
        let mut v = vec![0xff; 16];
        v.extend_from_slice(&[0, len, t]);
        v
    }

    #[test]
    fn open_is_byte_exact() {
        let got = encode_open(65066, 9, Ipv4Addr::new(10, 78, 0, 66));
        let mut want = hdr(43, 1);
        want.extend_from_slice(&[
            4, 0xfe, 0x2a, 0, 9, 10, 78, 0, 66, 14, // version, AS, hold, id, opt len
            2, 12, // capabilities parameter
            1, 4, 0, 1, 0, 1, // multiprotocol IPv4 unicast
            65, 4, 0, 0, 0xfe, 0x2a, // 4-octet AS
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn open_with_big_as_uses_as_trans() {
        let got = encode_open(4_200_000_000, 90, Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(&got[20..22], &[0x5b, 0xa0]);
        assert_eq!(&got[39..43], &4_200_000_000u32.to_be_bytes());
        let (m, used) = decode_message(&got).expect("decodes");
        assert_eq!(used, 43);
        let Message::Open(o) = m else {
            panic!("not an OPEN")
        };
        assert_eq!(o.asn, 4_200_000_000);
        assert!(o.four_octet_as);
        assert_eq!(o.hold_time, 90);
        assert_eq!(o.bgp_id, Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(o.capabilities, vec![1, 65]);
    }

    #[test]
    fn keepalive_and_notification_are_byte_exact() {
        assert_eq!(encode_keepalive(), hdr(19, 4));
        let mut want = hdr(21, 3);
        want.extend_from_slice(&[6, 2]);
        assert_eq!(encode_notification(6, 2, &[]), want);
        let mut want = hdr(25, 3);
        want.extend_from_slice(&[6, 4, 3, b'b', b'y', b'e']);
        assert_eq!(
            encode_notification(6, 4, &shutdown_communication("bye")),
            want
        );
    }

    #[test]
    fn announce_update_is_byte_exact() {
        let attrs = PathAttributes {
            as_path: vec![65066],
            next_hop: Ipv4Addr::new(10, 78, 0, 66),
        };
        let got = encode_update(&[], Some(&attrs), &[pfx("10.99.0.0/25")], true).expect("fits");
        let mut want = hdr(48, 2);
        want.extend_from_slice(&[
            0, 0, // no withdrawn routes
            0, 20, // attributes
            0x40, 1, 1, 0, // ORIGIN IGP
            0x40, 2, 6, 2, 1, 0, 0, 0xfe, 0x2a, // AS_PATH [65066], 4 octets
            0x40, 3, 4, 10, 78, 0, 66, // NEXT_HOP
            25, 10, 99, 0, 0, // NLRI 10.99.0.0/25
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn two_octet_update_uses_as_trans() {
        let attrs = PathAttributes {
            as_path: vec![65066, 4_200_000_000],
            next_hop: Ipv4Addr::new(192, 0, 2, 1),
        };
        let got = encode_update(&[], Some(&attrs), &[pfx("10.0.0.0/8")], false).expect("fits");
        let mut want = hdr(45, 2);
        want.extend_from_slice(&[
            0, 0, 0, 20, //
            0x40, 1, 1, 0, //
            0x40, 2, 6, 2, 2, 0xfe, 0x2a, 0x5b, 0xa0, //
            0x40, 3, 4, 192, 0, 2, 1, //
            8, 10,
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn withdraw_update_is_byte_exact() {
        let got =
            encode_update(&[pfx("10.99.0.0/25"), pfx("0.0.0.0/0")], None, &[], true).expect("fits");
        let mut want = hdr(29, 2);
        want.extend_from_slice(&[0, 6, 25, 10, 99, 0, 0, 0, 0, 0]);
        assert_eq!(got, want);
        let (m, _) = decode_message(&got).expect("decodes");
        assert_eq!(
            m,
            Message::Update(UpdateMsg {
                withdrawn: vec![pfx("10.99.0.0/25"), pfx("0.0.0.0/0")],
                announced: vec![],
                attributes: 0
            })
        );
    }

    #[test]
    fn long_as_path_uses_extended_length_and_segments() {
        let attrs = PathAttributes {
            as_path: vec![64512; 300],
            next_hop: Ipv4Addr::new(10, 0, 0, 1),
        };
        let got = encode_update(&[], Some(&attrs), &[pfx("10.1.0.0/16")], true).expect("fits");
        // ORIGIN is 4 bytes at offset 23; AS_PATH header follows.
        assert_eq!(&got[27..31], &[0x50, 2, 0x04, 0xb4]); // 2+255*4 + 2+45*4 = 1204
        assert_eq!(&got[31..33], &[2, 255]);
        let (m, _) = decode_message(&got).expect("decodes");
        let Message::Update(u) = m else {
            panic!("not an UPDATE")
        };
        assert_eq!(u.attributes, 3);
        assert_eq!(u.announced, vec![pfx("10.1.0.0/16")]);
    }

    #[test]
    fn update_rejects_nlri_without_attributes_and_oversize() {
        assert_eq!(
            encode_update(&[], None, &[pfx("10.0.0.0/8")], true),
            Err(CodecError::MissingAttributes)
        );
        let many: Vec<Prefix> = (0..1000u32)
            .map(|i| Prefix {
                addr: Ipv4Addr::from(0x0a00_0000 | i),
                len: 32,
            })
            .collect();
        assert!(matches!(
            encode_update(&many, None, &[], true),
            Err(CodecError::TooLong(_))
        ));
    }

    #[test]
    fn prefixes_parse_strictly() {
        assert_eq!(
            parse_prefix("10.99.0.0/25"),
            Some((Ipv4Addr::new(10, 99, 0, 0), 25))
        );
        assert_eq!(parse_prefix("0.0.0.0/0"), Some((Ipv4Addr::UNSPECIFIED, 0)));
        assert_eq!(
            parse_prefix("10.1.2.3/32"),
            Some((Ipv4Addr::new(10, 1, 2, 3), 32))
        );
        for bad in [
            "10.99.0.1/25",
            "10.99.0.128/24",
            "10.0.0.0/33",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/008",
            "10.0.0/8",
            "banana/8",
            "",
        ] {
            assert_eq!(parse_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefix_encoding_uses_minimal_octets() {
        for (s, want) in [
            ("0.0.0.0/0", vec![0u8]),
            ("10.0.0.0/8", vec![8, 10]),
            ("10.99.0.0/24", vec![24, 10, 99, 0]),
            ("10.99.0.128/25", vec![25, 10, 99, 0, 128]),
            ("1.2.3.4/32", vec![32, 1, 2, 3, 4]),
        ] {
            let mut v = Vec::new();
            put_prefix(&mut v, &pfx(s));
            assert_eq!(v, want, "{s}");
        }
    }

    #[test]
    fn decodes_a_two_octet_open_without_capabilities() {
        let mut m = hdr(29, 1);
        m.extend_from_slice(&[4, 0xfd, 0xe8, 0, 240, 10, 78, 0, 1, 0]);
        let (msg, _) = decode_message(&m).expect("decodes");
        assert_eq!(
            msg,
            Message::Open(OpenMsg {
                version: 4,
                asn: 65000,
                hold_time: 240,
                bgp_id: Ipv4Addr::new(10, 78, 0, 1),
                four_octet_as: false,
                capabilities: vec![],
            })
        );
    }

    #[test]
    fn decoder_rejects_malformed_input() {
        let mut bad_marker = encode_keepalive();
        bad_marker[3] = 0;
        assert_eq!(
            decode_message(&bad_marker),
            Err(CodecError::NotSynchronized)
        );
        assert_eq!(decode_message(&hdr(18, 4)), Err(CodecError::BadLength(18)));
        assert_eq!(decode_message(&hdr(20, 4)), Err(CodecError::BadLength(20)));
        assert_eq!(decode_message(&hdr(19, 9)), Err(CodecError::BadType(9)));
        assert!(matches!(
            decode_message(&hdr(30, 2)),
            Err(CodecError::Truncated { need: 30, have: 19 })
        ));
        let mut big = vec![0xff; 16];
        big.extend_from_slice(&[0x10, 0x01, 2]);
        assert_eq!(decode_message(&big), Err(CodecError::BadLength(4097)));
        // OPEN whose optional parameters overrun.
        let mut open = hdr(29, 1);
        open.extend_from_slice(&[4, 0, 1, 0, 9, 1, 1, 1, 1, 5]);
        assert!(matches!(
            decode_message(&open),
            Err(CodecError::MalformedOpen(_))
        ));
        // OPEN with version 3 and with hold time 2.
        let mut v3 = hdr(29, 1);
        v3.extend_from_slice(&[3, 0, 1, 0, 9, 1, 1, 1, 1, 0]);
        assert_eq!(decode_message(&v3), Err(CodecError::UnsupportedVersion(3)));
        let mut h2 = hdr(29, 1);
        h2.extend_from_slice(&[4, 0, 1, 0, 2, 1, 1, 1, 1, 0]);
        assert_eq!(
            decode_message(&h2),
            Err(CodecError::UnacceptableHoldTime(2))
        );
        // UPDATE: prefix length 33, truncated NLRI, attribute overrun.
        let mut u = hdr(24, 2);
        u.extend_from_slice(&[0, 0, 0, 0, 33]);
        assert_eq!(decode_message(&u), Err(CodecError::InvalidNetworkField));
        let mut u = hdr(25, 2);
        u.extend_from_slice(&[0, 0, 0, 0, 24, 10]);
        assert_eq!(decode_message(&u), Err(CodecError::InvalidNetworkField));
        let mut u = hdr(26, 2);
        u.extend_from_slice(&[0, 0, 0, 3, 0x40, 1, 5]);
        assert!(matches!(
            decode_message(&u),
            Err(CodecError::MalformedUpdate(_))
        ));
        let mut u = hdr(23, 2);
        u.extend_from_slice(&[0, 9, 0, 0]);
        assert!(matches!(
            decode_message(&u),
            Err(CodecError::MalformedUpdate(_))
        ));
        assert_eq!(
            CodecError::InvalidNetworkField.notification(),
            Some((3, 10))
        );
    }

    #[test]
    fn notifications_have_human_text() {
        assert_eq!(notification_text(6, 2), "Cease: administrative shutdown");
        assert_eq!(notification_text(6, 4), "Cease: administrative reset");
        assert_eq!(notification_text(4, 0), "Hold Timer Expired");
        assert_eq!(notification_text(2, 2), "OPEN Message Error: bad peer AS");
        assert_eq!(notification_text(6, 99), "Cease: subcode 99");
        assert_eq!(notification_text(42, 1), "unknown error code 42 subcode 1");
        let mut m = encode_notification(6, 2, &shutdown_communication("maint \"now\"\n"));
        let (msg, _) = decode_message(&m).expect("decodes");
        let Message::Notification(n) = msg else {
            panic!("not a NOTIFICATION")
        };
        assert_eq!(
            n.describe(),
            "6/2 (Cease: administrative shutdown) message=\"maint 'now''\""
        );
        // A communication longer than the data is ignored, not trusted.
        m[21] = 200;
        let (msg, _) = decode_message(&m).expect("decodes");
        let Message::Notification(n) = msg else {
            panic!("not a NOTIFICATION")
        };
        assert_eq!(n.describe(), "6/2 (Cease: administrative shutdown)");
        assert_eq!(
            decode_message(&hdr(23, 5)).map(|(m, _)| m),
            Err(CodecError::Truncated { need: 23, have: 19 })
        );
        let mut rr = hdr(23, 5);
        rr.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(decode_message(&rr), Ok((Message::RouteRefresh, 23)));
    }

    #[test]
    fn shutdown_communication_cuts_at_char_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let v = shutdown_communication(&long);
        assert_eq!(v[0], 254);
        assert_eq!(v.len(), 255);
        assert!(std::str::from_utf8(&v[1..]).is_ok());
    }

    #[test]
    fn random_bytes_never_panic_the_decoder() {
        let mut rng = XorShift::new(0x5eed);
        let valid = [
            encode_open(65066, 9, Ipv4Addr::new(10, 78, 0, 66)),
            encode_keepalive(),
            encode_notification(6, 2, &shutdown_communication("x")),
            encode_update(
                &[pfx("10.1.0.0/16")],
                Some(&PathAttributes {
                    as_path: vec![1, 2, 3],
                    next_hop: Ipv4Addr::new(10, 0, 0, 1),
                }),
                &[pfx("10.99.0.0/25"), pfx("10.2.3.4/32")],
                true,
            )
            .expect("fits"),
        ];
        for i in 0..50_000u32 {
            let buf: Vec<u8> = if i.is_multiple_of(2) {
                // Pure noise, sometimes behind a valid marker and a plausible header.
                let n = (rng.next() % 80) as usize;
                let mut b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                if i.is_multiple_of(4) {
                    let len = (19 + rng.next() % 70) as u16;
                    let mut h = vec![0xff; 16];
                    h.extend_from_slice(&len.to_be_bytes());
                    h.push((rng.next() % 6) as u8);
                    h.extend_from_slice(&b);
                    b = h;
                }
                b
            } else {
                // Mutations of valid messages: flipped bytes, truncation.
                let mut b = valid[(rng.next() % valid.len() as u64) as usize].clone();
                for _ in 0..=(rng.next() % 4) {
                    let at = (rng.next() % b.len() as u64) as usize;
                    b[at] = rng.next() as u8;
                }
                if rng.next().is_multiple_of(3) {
                    let keep = (rng.next() % (b.len() as u64 + 1)) as usize;
                    b.truncate(keep);
                }
                b
            };
            if let Ok((_, used)) = decode_message(&buf) {
                assert!(used <= buf.len());
            }
            let _ = decode_header(&buf);
        }
    }

    #[test]
    fn config_parses_the_documented_example() {
        let json = r#"{"peer":"10.78.0.1","peerAs":65000,"localAs":65066,
            "routerId":"10.78.0.66","holdTime":9,"prefixes":["10.99.0.0/25"],
            "nextHop":"10.78.0.66","asPath":[65066],"mode":"flap","periodMs":1000,
            "jitterMs":0,"seed":7,"leaseMs":60000}"#;
        let cfg: SpeakerConfig = serde_json::from_str(json).expect("parses");
        assert_eq!(cfg.mode, SpeakerMode::Flap);
        assert_eq!(cfg.peer_port, 179);
        assert_eq!(cfg.validate(), Ok(vec![pfx("10.99.0.0/25")]));
        let back: SpeakerConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).expect("serializes"))
                .expect("round-trips");
        assert_eq!(back, cfg);

        let minimal = r#"{"peer":"10.78.0.1","peerAs":65000,"localAs":65066,
            "routerId":"10.78.0.66","mode":"announce"}"#;
        let cfg: SpeakerConfig = serde_json::from_str(minimal).expect("parses");
        assert_eq!(cfg.hold_time, 90);
        assert_eq!(cfg.effective_as_path(), vec![65066]);
        assert!(serde_json::from_str::<SpeakerConfig>(
            &minimal.replace("\"mode\"", "\"period\":\"1s\",\"mode\"")
        )
        .is_err());
        let mut bad = cfg.clone();
        bad.prefixes = vec!["10.99.0.1/25".into()];
        assert!(bad.validate().is_err());
        let mut bad = cfg;
        bad.hold_time = 2;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn jitter_is_bounded_and_seeded() {
        let mut a = XorShift::new(7);
        let mut b = XorShift::new(7);
        for _ in 0..1000 {
            let d = jittered(&mut a, 1000, 200);
            assert!(d >= Duration::from_millis(800) && d <= Duration::from_millis(1200));
            assert_eq!(d, jittered(&mut b, 1000, 200));
        }
        assert_eq!(jittered(&mut a, 1000, 0), Duration::from_millis(1000));
    }
}
