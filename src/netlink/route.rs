//! Links and IPv4 routes over rtnetlink, in process: what `ip link` and `ip route` did for
//! the network faults, as one request and its acknowledgement on a socket kept open in
//! the fault's namespace.
//!
//! Routes keep the form the journal has always recorded them in — the `ip route` argv
//! tokens that recreate them (`blackhole 10.9.0.0/24`, `10.9.0.0/24 via 10.1.0.2 dev eth0
//! proto static metric 20`) — parsed here into a message ([`RouteSpec`]), so a journal
//! written before and one written now are undone the same way.

use super::{attr, attrs, text, Family, Msg, NlError, Socket};
use super::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST};
use crate::netns::Netns;
use nix::errno::Errno;
use std::net::Ipv4Addr;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_STATS: u16 = 3;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
const TC_LINKLAYER_ETHERNET: u8 = 1;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const IFLA_IFNAME: u16 = 3;
const IFF_UP: u32 = 1;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
const AF_INET: u8 = 2;
const RTN_UNICAST: u8 = 1;
const RTPROT_BOOT: u8 = 3;

/// Route types by their `ip route` names.
const TYPES: [(&str, u8); 7] = [
    ("unicast", 1),
    ("local", 2),
    ("broadcast", 3),
    ("blackhole", 6),
    ("unreachable", 7),
    ("prohibit", 8),
    ("throw", 9),
];

/// Routing protocols by their `ip route` names (iproute2's rt_protos).
const PROTOCOLS: [(&str, u8); 14] = [
    ("redirect", 1),
    ("kernel", 2),
    ("boot", 3),
    ("static", 4),
    ("ra", 9),
    ("zebra", 11),
    ("bird", 12),
    ("dhcp", 16),
    ("babel", 42),
    ("bgp", 186),
    ("isis", 187),
    ("ospf", 188),
    ("rip", 189),
    ("eigrp", 192),
];

/// An IPv4 address of a link, as listed.
pub struct Addr {
    pub ifindex: u32,
    pub addr: Ipv4Addr,
    pub len: u8,
    pub scope: u8,
}

/// A link as listed: index, name, administratively up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub up: bool,
}

/// A device's root qdisc as listed: its kind, its rate when it is a token bucket, and
/// what it has sent and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Qdisc {
    pub kind: String,
    /// `tbf` only: the rate in bytes per second.
    pub rate_bytes: Option<u64>,
    pub bytes: u64,
    pub drops: u64,
}

/// A token bucket as `tc qdisc add ... tbf rate R burst B latency L` makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tbf {
    pub bits_per_second: u64,
    pub burst_bytes: u32,
    pub latency_ms: u64,
}

/// One IPv4 route of the main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// `RTN_*` (1 unicast, 6 blackhole, ...).
    pub kind: u8,
    pub dst: Ipv4Addr,
    pub len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dev: Option<String>,
    pub protocol: Option<u8>,
    pub metric: Option<u32>,
}

fn name_of(table: &[(&'static str, u8)], n: u8) -> String {
    table
        .iter()
        .find(|(_, v)| *v == n)
        .map_or_else(|| n.to_string(), |(name, _)| (*name).to_string())
}

fn number_of(table: &[(&str, u8)], s: &str) -> Option<u8> {
    table
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, v)| *v)
        .or_else(|| s.parse().ok())
}

impl RouteSpec {
    /// Parse `ip route` argv tokens: `[type] prefix [via addr] [dev name] [proto p]
    /// [metric n]`.
    pub fn parse(tokens: &[String]) -> Result<RouteSpec, String> {
        let bad = |why: &str| format!("route {:?}: {why}", tokens.join(" "));
        let mut it = tokens.iter().map(String::as_str).peekable();
        let mut r = RouteSpec {
            kind: RTN_UNICAST,
            dst: Ipv4Addr::UNSPECIFIED,
            len: 32,
            gateway: None,
            dev: None,
            protocol: None,
            metric: None,
        };
        if let Some(t) = it
            .peek()
            .and_then(|t| number_of(&TYPES, t).filter(|_| !t.contains('.')))
        {
            r.kind = t;
            it.next();
        }
        let dst = it.next().ok_or_else(|| bad("no prefix"))?;
        let (a, l) = match dst.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad("prefix length"))?),
            None => (dst, 32),
        };
        r.dst = a.parse().map_err(|_| bad("prefix address"))?;
        r.len = l;
        if l > 32 {
            return Err(bad("prefix length"));
        }
        while let Some(k) = it.next() {
            let v = it
                .next()
                .ok_or_else(|| bad("a keyword without its value"))?;
            match k {
                "via" => r.gateway = Some(v.parse().map_err(|_| bad("gateway"))?),
                "dev" => r.dev = Some(v.to_string()),
                "proto" => r.protocol = Some(number_of(&PROTOCOLS, v).ok_or_else(|| bad("proto"))?),
                "metric" => r.metric = Some(v.parse().map_err(|_| bad("metric"))?),
                _ => return Err(bad(&format!("unknown keyword {k:?}"))),
            }
        }
        Ok(r)
    }

    /// The `ip route` argv tokens that recreate this route.
    pub fn tokens(&self) -> Vec<String> {
        let mut t = Vec::new();
        if self.kind != RTN_UNICAST {
            t.push(name_of(&TYPES, self.kind));
        }
        t.push(format!("{}/{}", self.dst, self.len));
        if let Some(g) = self.gateway {
            t.extend(["via".into(), g.to_string()]);
        }
        if let Some(d) = &self.dev {
            t.extend(["dev".into(), d.clone()]);
        }
        if let Some(p) = self.protocol {
            t.extend(["proto".into(), name_of(&PROTOCOLS, p)]);
        }
        if let Some(m) = self.metric {
            t.extend(["metric".into(), m.to_string()]);
        }
        t
    }

    pub fn type_name(&self) -> String {
        name_of(&TYPES, self.kind)
    }

    pub fn protocol_name(&self) -> Option<String> {
        self.protocol.map(|p| name_of(&PROTOCOLS, p))
    }
}

/// rtnetlink in one network namespace.
pub struct Route {
    sock: Socket,
    netns: Netns,
}

fn ifinfo(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

fn tcmsg(ifindex: u32, handle: u32, parent: u32) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    h[8..12].copy_from_slice(&handle.to_ne_bytes());
    h[12..16].copy_from_slice(&parent.to_ne_bytes());
    h
}

fn rtmsg(len: u8, protocol: u8, scope: u8, kind: u8) -> [u8; 12] {
    [
        AF_INET,
        len,
        0,
        0,
        RT_TABLE_MAIN,
        protocol,
        scope,
        kind,
        0,
        0,
        0,
        0,
    ]
}

impl Route {
    pub fn open(netns: &Netns) -> Result<Route, NlError> {
        Ok(Route {
            sock: Socket::open(netns, Family::Route)?,
            netns: netns.clone(),
        })
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, NlError> {
        let seq = self.sock.next_seq();
        let m = Msg::new(
            RTM_GETLINK,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            &ifinfo(0, 0, 0),
        );
        let msgs = self.sock.dump(m, "listing links")?;
        Ok(msgs
            .iter()
            .filter(|m| super::u16_at(m, 4) == Some(RTM_NEWLINK))
            .filter_map(|m| {
                let index = super::u32_at(m, 20)?;
                let flags = super::u32_at(m, 24)?;
                let list = attrs(m.get(32..)?);
                Some(Link {
                    index,
                    name: text(attr(&list, IFLA_IFNAME)?),
                    up: flags & IFF_UP != 0,
                })
            })
            .collect())
    }

    /// Every IPv4 address of the namespace, in the kernel's order (by link).
    pub fn addrs(&mut self) -> Result<Vec<Addr>, NlError> {
        let seq = self.sock.next_seq();
        let m = Msg::new(
            RTM_GETADDR,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            &[AF_INET, 0, 0, 0, 0, 0, 0, 0],
        );
        let msgs = self.sock.dump(m, "listing addresses")?;
        Ok(msgs
            .iter()
            .filter(|m| super::u16_at(m, 4) == Some(RTM_NEWADDR))
            .filter(|m| m.get(16) == Some(&AF_INET))
            .filter_map(|m| {
                let len = *m.get(17)?;
                let scope = *m.get(19)?;
                let ifindex = super::u32_at(m, 20)?;
                let list = attrs(m.get(24..)?);
                let raw = attr(&list, IFA_LOCAL).or_else(|| attr(&list, IFA_ADDRESS))?;
                let o: [u8; 4] = raw.get(..4)?.try_into().ok()?;
                Some(Addr {
                    ifindex,
                    addr: Ipv4Addr::from(o),
                    len,
                    scope,
                })
            })
            .collect())
    }

    /// The link named `name`, if there is one.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, NlError> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    /// The index of the link named `name`.
    pub fn ifindex(&mut self, name: &str) -> Result<Option<u32>, NlError> {
        Ok(self.link(name)?.map(|l| l.index))
    }

    /// Set a link administratively up or down.
    pub fn set_up(&mut self, name: &str, up: bool) -> Result<(), NlError> {
        let index = self.ifindex(name)?.ok_or_else(|| {
            NlError::new(
                format!("no interface {name:?} in {}", self.netns.describe()),
                Errno::ENODEV,
            )
        })?;
        let seq = self.sock.next_seq();
        let m = Msg::new(
            RTM_NEWLINK,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            &ifinfo(index, if up { IFF_UP } else { 0 }, IFF_UP),
        );
        let what = format!("setting {name} {}", if up { "up" } else { "down" });
        self.sock.transact(&m.finish(), &[seq], &[what])
    }

    fn index_of(&mut self, dev: &str) -> Result<u32, NlError> {
        self.ifindex(dev)?.ok_or_else(|| {
            NlError::new(
                format!("no interface {dev:?} in {}", self.netns.describe()),
                Errno::ENODEV,
            )
        })
    }

    /// The root qdisc of `dev` (`None`: the device has none listed, i.e. `noqueue`).
    pub fn root_qdisc(&mut self, dev: &str) -> Result<Option<Qdisc>, NlError> {
        let index = self.index_of(dev)?;
        let seq = self.sock.next_seq();
        let m = Msg::new(
            RTM_GETQDISC,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            &tcmsg(index, 0, 0),
        );
        let msgs = self.sock.dump(m, &format!("listing the qdiscs of {dev}"))?;
        for m in msgs {
            if super::u16_at(&m, 4) != Some(RTM_NEWQDISC)
                || super::u32_at(&m, 20) != Some(index)
                || super::u32_at(&m, 28) != Some(TC_H_ROOT)
            {
                continue;
            }
            let list = attrs(m.get(36..).unwrap_or_default());
            let mut q = Qdisc {
                kind: attr(&list, TCA_KIND).map(text).unwrap_or_default(),
                ..Default::default()
            };
            if let Some(st) = attr(&list, TCA_STATS) {
                // struct tc_stats: bytes u64, packets u32, drops u32, ...
                q.bytes = st
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_ne_bytes);
                q.drops = u64::from(super::u32_at(st, 12).unwrap_or(0));
            }
            if q.kind == "tbf" {
                let opts = attrs(attr(&list, TCA_OPTIONS).unwrap_or_default());
                let rate32 = attr(&opts, TCA_TBF_PARMS).and_then(|p| super::u32_at(p, 8));
                let rate64 = attr(&opts, TCA_TBF_RATE64)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_ne_bytes);
                q.rate_bytes = rate64.or(rate32.map(u64::from));
            }
            return Ok(Some(q));
        }
        Ok(None)
    }

    /// Make a token bucket the root qdisc of `dev` (refused if it has a root of its own
    /// already that is not a default one: the kernel's answer to an exclusive add).
    pub fn add_tbf(&mut self, dev: &str, t: Tbf) -> Result<(), NlError> {
        let index = self.index_of(dev)?;
        let rate = t.bits_per_second / 8;
        let rate32 = u32::try_from(rate).unwrap_or(u32::MAX);
        // Queue at most `latency` worth of bytes beyond the bucket, as tc computes it.
        let limit = rate
            .saturating_mul(t.latency_ms)
            .checked_div(1000)
            .unwrap_or(0)
            .saturating_add(u64::from(t.burst_bytes));
        // struct tc_tbf_qopt: rate and peak rate (tc_ratespec, 12 bytes each), limit,
        // buffer, mtu. The link layer is given, so the kernel needs no rate table; the
        // bucket is given in bytes (TCA_TBF_BURST), so `buffer` is derived from it.
        let mut qopt = [0u8; 36];
        qopt[1] = TC_LINKLAYER_ETHERNET;
        qopt[8..12].copy_from_slice(&rate32.to_ne_bytes());
        qopt[24..28].copy_from_slice(&u32::try_from(limit).unwrap_or(u32::MAX).to_ne_bytes());
        let seq = self.sock.next_seq();
        let mut m = Msg::new(
            RTM_NEWQDISC,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            seq,
            &tcmsg(index, 0, TC_H_ROOT),
        );
        m.strz(TCA_KIND, "tbf");
        m.begin(TCA_OPTIONS).put(TCA_TBF_PARMS, &qopt);
        if rate > u64::from(u32::MAX) {
            m.put(TCA_TBF_RATE64, &rate.to_ne_bytes());
        }
        m.u32(TCA_TBF_BURST, t.burst_bytes).end();
        let what = format!("adding a tbf root qdisc to {dev}");
        self.sock.transact(&m.finish(), &[seq], &[what])
    }

    /// Delete the root qdisc of `dev`; `Ok(false)` when there is none to delete (the
    /// default is back, or the device is gone).
    pub fn delete_root_qdisc(&mut self, dev: &str) -> Result<bool, NlError> {
        let Some(index) = self.ifindex(dev)? else {
            return Ok(false);
        };
        let seq = self.sock.next_seq();
        let m = Msg::new(
            RTM_DELQDISC,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            &tcmsg(index, 0, TC_H_ROOT),
        );
        let what = format!("deleting the root qdisc of {dev}");
        match self.sock.transact(&m.finish(), &[seq], &[what]) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.errno, Errno::ENOENT | Errno::ENODEV | Errno::EINVAL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The main table's IPv4 routes, with their devices' names.
    pub fn routes(&mut self) -> Result<Vec<RouteSpec>, NlError> {
        let seq = self.sock.next_seq();
        let m = Msg::new(
            RTM_GETROUTE,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            &rtmsg(0, 0, 0, 0),
        );
        let msgs = self.sock.dump(m, "listing routes")?;
        let names: Vec<Link> = self.links()?;
        let mut out = Vec::new();
        for m in msgs {
            if let Some(r) = parse_route(&m, &names) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The routes for exactly `dst/len`.
    pub fn routes_exact(&mut self, dst: Ipv4Addr, len: u8) -> Result<Vec<RouteSpec>, NlError> {
        Ok(self
            .routes()?
            .into_iter()
            .filter(|r| r.dst == dst && r.len == len)
            .collect())
    }

    /// Add (`replace`: or replace) a route.
    pub fn add(&mut self, r: &RouteSpec, replace: bool) -> Result<(), NlError> {
        let flags = if replace {
            NLM_F_CREATE | NLM_F_REPLACE
        } else {
            NLM_F_CREATE | NLM_F_EXCL
        };
        // As `ip route`: a route without a gateway straight onto a device is link-scoped.
        let scope = if r.kind == RTN_UNICAST && r.gateway.is_none() {
            RT_SCOPE_LINK
        } else {
            RT_SCOPE_UNIVERSE
        };
        let what = format!(
            "{} route {}",
            if replace { "replacing" } else { "adding" },
            r.tokens().join(" ")
        );
        self.change(
            RTM_NEWROUTE,
            flags,
            r,
            r.protocol.unwrap_or(RTPROT_BOOT),
            scope,
            r.kind,
            what,
        )
    }

    /// Delete a route; `Ok(false)` when there was none like it.
    pub fn delete(&mut self, r: &RouteSpec) -> Result<bool, NlError> {
        let what = format!("deleting route {}", r.tokens().join(" "));
        // As `ip route del`: any scope; the type only when it was named.
        let kind = if r.kind == RTN_UNICAST { 0 } else { r.kind };
        match self.change(
            RTM_DELROUTE,
            0,
            r,
            r.protocol.unwrap_or(0),
            RT_SCOPE_NOWHERE,
            kind,
            what,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.errno == Errno::ESRCH || e.errno == Errno::ENOENT => Ok(false),
            Err(e) => Err(e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        typ: u16,
        flags: u16,
        r: &RouteSpec,
        protocol: u8,
        scope: u8,
        kind: u8,
        what: String,
    ) -> Result<(), NlError> {
        let oif = match &r.dev {
            Some(d) => Some(self.ifindex(d)?.ok_or_else(|| {
                NlError::new(
                    format!("{what}: no interface {d:?} in {}", self.netns.describe()),
                    Errno::ENODEV,
                )
            })?),
            None => None,
        };
        let seq = self.sock.next_seq();
        let mut m = Msg::new(
            typ,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
            &rtmsg(r.len, protocol, scope, kind),
        );
        m.put(RTA_DST, &r.dst.octets());
        m.u32(RTA_TABLE, u32::from(RT_TABLE_MAIN));
        if let Some(g) = r.gateway {
            m.put(RTA_GATEWAY, &g.octets());
        }
        if let Some(i) = oif {
            m.u32(RTA_OIF, i);
        }
        if let Some(p) = r.metric {
            m.u32(RTA_PRIORITY, p);
        }
        self.sock.transact(&m.finish(), &[seq], &[what])
    }

    /// The route the kernel would take to `addr` (`ip route get`): type, gateway, device.
    pub fn get(
        &mut self,
        addr: Ipv4Addr,
    ) -> Result<(String, Option<Ipv4Addr>, Option<String>), NlError> {
        let seq = self.sock.next_seq();
        let mut m = Msg::new(RTM_GETROUTE, NLM_F_REQUEST, seq, &rtmsg(32, 0, 0, 0));
        m.put(RTA_DST, &addr.octets());
        let reply = self.sock.get(m, &format!("route to {addr}"))?;
        let links = self.links()?;
        let r = parse_route(&reply, &links).ok_or_else(|| {
            NlError::new(format!("route to {addr}: an odd answer"), Errno::EBADMSG)
        })?;
        Ok((r.type_name(), r.gateway, r.dev))
    }
}

/// An `RTM_NEWROUTE` message of the main table (IPv4) as a [`RouteSpec`].
fn parse_route(m: &[u8], links: &[Link]) -> Option<RouteSpec> {
    if super::u16_at(m, 4) != Some(RTM_NEWROUTE) {
        return None;
    }
    let h = m.get(16..28)?;
    if h[0] != AF_INET {
        return None;
    }
    let list = attrs(m.get(28..)?);
    let table = attr(&list, RTA_TABLE)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(u32::from(h[4]));
    if table != u32::from(RT_TABLE_MAIN) {
        return None;
    }
    let v4 = |b: &[u8]| -> Option<Ipv4Addr> { <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from) };
    let oif = attr(&list, RTA_OIF)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes);
    Some(RouteSpec {
        kind: h[7],
        dst: attr(&list, RTA_DST)
            .and_then(v4)
            .unwrap_or(Ipv4Addr::UNSPECIFIED),
        len: h[1],
        gateway: attr(&list, RTA_GATEWAY).and_then(v4),
        dev: oif.and_then(|i| links.iter().find(|l| l.index == i).map(|l| l.name.clone())),
        protocol: Some(h[5]),
        metric: attr(&list, RTA_PRIORITY)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn journal_tokens_round_trip() {
        for s in [
            "blackhole 10.99.0.0/25",
            "10.99.0.0/24 via 10.78.1.2 dev up1 proto static",
            "10.99.0.0/24 dev eth0 proto boot metric 20",
            "unreachable 10.1.2.3/32",
        ] {
            let r = RouteSpec::parse(&t(s)).expect(s);
            assert_eq!(r.tokens().join(" "), s);
        }
        let bare = RouteSpec::parse(&t("10.9.0.7")).expect("bare");
        assert_eq!((bare.len, bare.kind), (32, RTN_UNICAST));
        assert_eq!(
            RouteSpec::parse(&t("10.0.0.0/24 proto 200")).map(|r| r.protocol),
            Ok(Some(200))
        );
        assert!(RouteSpec::parse(&t("10.0.0.0/33")).is_err());
        assert!(RouteSpec::parse(&t("10.0.0.0/24 via")).is_err());
        assert!(RouteSpec::parse(&t("10.0.0.0/24 mtu 1400")).is_err());
    }
}
