//! Rules on the parameters of faults on routing and name resolution: `route-blackhole`,
//! `route-hijack`, `route-flap`, `bgp-session-drop`, `bgp-announce` and `dns-fault`.

use super::common::check_cidrs;
use super::faults_network::check_lab_targets;
use super::values::{mask, parse_cidr};
use super::{Ctx, V};
use crate::model::diag::FieldPath;
use crate::model::quantity::Duration;
use crate::model::spec::{
    BgpAnnounce, BgpSessionDrop, DnsFault, DnsMode, ExperimentSpec, RouteBlackhole, RouteFlap,
    RouteHijack,
};
use std::net::{Ipv4Addr, SocketAddr};

pub(super) fn route_blackhole(v: &mut V, fp: &FieldPath, r: &RouteBlackhole) {
    check_prefixes(v, fp.key("prefixes"), &r.prefixes);
}

pub(super) fn route_hijack(v: &mut V, fp: &FieldPath, r: &RouteHijack) {
    check_prefixes(v, fp.key("prefixes"), &r.prefixes);
    if r.via.parse::<Ipv4Addr>().is_err() {
        v.err(fp.key("via"), format!("{:?} is not an IPv4 address", r.via));
    }
}

pub(super) fn route_flap(v: &mut V, fp: &FieldPath, r: &RouteFlap) {
    check_prefixes(v, fp.key("prefixes"), &r.prefixes);
    check_period(v, fp, r.period, r.jitter);
}

/// `own` is the fault's target.
pub(super) fn bgp_session_drop(
    v: &mut V,
    spec: &ExperimentSpec,
    fp: &FieldPath,
    b: &BgpSessionDrop,
    own: &str,
) {
    check_cidrs(v, fp.key("cidrs"), &b.cidrs);
    check_lab_targets(v, fp.key("peers"), &b.peers, spec, own);
}

pub(super) fn bgp_announce(v: &mut V, ctx: &Ctx, fp: &FieldPath, b: &BgpAnnounce) {
    if !ctx.is_lab_host(&b.from) {
        v.err(
            fp.key("from"),
            format!(
                "no lab host named {:?} (the speaker runs in a lab host's namespace)",
                b.from
            ),
        );
    }
    if b.neighbor.parse::<Ipv4Addr>().is_err() {
        v.err(
            fp.key("neighbor"),
            format!("{:?} is not an IPv4 address", b.neighbor),
        );
    }
    if let Some(n) = &b.next_hop {
        if n.parse::<Ipv4Addr>().is_err() {
            v.err(fp.key("nextHop"), format!("{n:?} is not an IPv4 address"));
        }
    }
    for (key, asn) in [("neighborAs", b.neighbor_as), ("localAs", b.local_as)] {
        if asn == 0 || asn == 23456 || asn == u32::MAX {
            v.err(fp.key(key), format!("{asn} is not a usable AS number"));
        }
    }
    if b.local_as == b.neighbor_as {
        v.err(
            fp.key("localAs"),
            "the speaker opens an external (eBGP) session: use an AS other than the router's",
        );
    }
    check_prefixes(v, fp.key("prefixes"), &b.prefixes);
    if b.as_path.len() > 32 {
        v.err(fp.key("asPath"), "at most 32 AS numbers");
    }
    check_period(v, fp, b.period, b.jitter);
}

pub(super) fn dns_fault(v: &mut V, fp: &FieldPath, d: &DnsFault) {
    if d.names.is_empty() {
        v.err(fp.key("names"), "needs at least one name (or \"*\")");
    }
    for (j, n) in d.names.iter().enumerate() {
        let name = n.trim_end_matches('.');
        let ok = name == "*"
            || (!name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                }));
        if !ok {
            v.err(
                fp.key("names").index(j),
                format!("{n:?} is not a DNS name (or \"*\")"),
            );
        }
    }
    match (&d.answer, d.mode) {
        (Some(a), _) if a.parse::<Ipv4Addr>().is_err() => {
            v.err(fp.key("answer"), format!("{a:?} is not an IPv4 address"))
        }
        (None, DnsMode::Wrong) => {
            v.err(fp.key("answer"), "`wrong` needs the address to answer with")
        }
        _ => {}
    }
    match d.upstream.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) if a.port() != 0 && !a.ip().is_unspecified() => {}
        _ => v.err(
            fp.key("upstream"),
            format!(
                "{:?} must be the real resolver as ip:port, e.g. 10.0.0.53:53",
                d.upstream
            ),
        ),
    }
    if d.probability.is_some_and(|p| p.0 <= 0.0) {
        v.err(fp.key("probability"), "must be above 0%");
    }
}

/// Route prefixes: at least one, each a CIDR without host bits.
fn check_prefixes(v: &mut V, path: FieldPath, prefixes: &[String]) {
    if prefixes.is_empty() {
        v.err(path.clone(), "needs at least one prefix");
    }
    for (j, c) in prefixes.iter().enumerate() {
        match parse_cidr(c) {
            Some((a, len)) if u32::from(a) & !mask(len) == 0 && c.contains('/') => {}
            _ => v.err(
                path.index(j),
                format!("{c:?} is not an IPv4 prefix such as 10.99.0.0/25 (no host bits set)"),
            ),
        }
    }
}

/// A flapping fault's `period` (default 1s, at least 100ms) and `jitter` (below the period).
fn check_period(v: &mut V, fp: &FieldPath, period: Option<Duration>, jitter: Option<Duration>) {
    let period = period.map_or(std::time::Duration::from_secs(1), |p| p.as_std());
    if period < std::time::Duration::from_millis(100) {
        v.err(fp.key("period"), "must be at least 100ms");
    }
    if jitter.is_some_and(|j| j.as_std() >= period) {
        v.err(fp.key("jitter"), "must be less than `period`");
    }
}
