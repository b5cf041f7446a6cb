//! Rules on the parameters of faults on links and packets: `network-partition`, the
//! packet faults with a filter (`network-delay`, `-loss`, `-corrupt`, `-duplicate`,
//! `-reorder`), `network-bandwidth`, `link-down` and `site-failure`.

use super::common::check_cidrs;
use super::V;
use crate::model::diag::FieldPath;
use crate::model::quantity::Percent;
use crate::model::spec::{
    ExperimentSpec, LinkDown, NetworkBandwidth, NetworkCorrupt, NetworkDelay, NetworkDuplicate,
    NetworkLoss, NetworkPartition, NetworkReorder, PacketDirection, PacketFilter, Protocol,
    SiteFailure,
};

/// `own` is the fault's target.
pub(super) fn network_partition(
    v: &mut V,
    spec: &ExperimentSpec,
    fp: &FieldPath,
    n: &NetworkPartition,
    own: &str,
) {
    for (j, p) in n.peers.iter().enumerate() {
        match spec.targets.get(p) {
            None => v.err(fp.key("peers").index(j), format!("no target named {p:?}")),
            // Lab targets (their hosts' addresses) and pod targets (their pods' IPs, on a
            // cluster) have addresses the run plan can resolve.
            Some(t) if t.local.lab.is_none() && t.local.members.is_empty() && t.pods.is_none() => v.err(fp.key("peers").index(j), format!("peer {p:?} must be a lab target (its addresses must be known); use cidrs otherwise")),
            _ => {}
        }
        if p == own {
            v.err(
                fp.key("peers").index(j),
                "a target cannot be partitioned from itself",
            );
        }
    }
    check_cidrs(v, fp.key("cidrs"), &n.cidrs);
}

pub(super) fn network_delay(v: &mut V, spec: &ExperimentSpec, fp: &FieldPath, d: &NetworkDelay) {
    check_filter(v, fp, &d.filter, spec, false);
    if d.delay.as_std().is_zero() || d.delay.as_std() > std::time::Duration::from_secs(10) {
        v.err(fp.key("delay"), "must be above 0 and at most 10s");
    }
    if d.jitter.is_some_and(|j| j > d.delay) {
        v.err(fp.key("jitter"), "must not be more than `delay`");
    }
    if d.correlation.is_some_and(|c| c.0 > 100.0) {
        v.err(fp.key("correlation"), "must be at most 100%");
    }
}

pub(super) fn network_reorder(
    v: &mut V,
    spec: &ExperimentSpec,
    fp: &FieldPath,
    r: &NetworkReorder,
) {
    check_filter(v, fp, &r.filter, spec, false);
    check_share(v, fp.key("reorder"), r.reorder);
    if r.delay.as_std().is_zero() || r.delay.as_std() > std::time::Duration::from_secs(10) {
        v.err(fp.key("delay"), "must be above 0 and at most 10s");
    }
}

pub(super) fn network_corrupt(
    v: &mut V,
    spec: &ExperimentSpec,
    fp: &FieldPath,
    c: &NetworkCorrupt,
) {
    check_filter(v, fp, &c.filter, spec, false);
    check_share(v, fp.key("corrupt"), c.corrupt);
}

pub(super) fn network_loss(v: &mut V, spec: &ExperimentSpec, fp: &FieldPath, l: &NetworkLoss) {
    check_filter(v, fp, &l.filter, spec, true);
    check_share(v, fp.key("loss"), l.loss);
}

pub(super) fn network_duplicate(
    v: &mut V,
    spec: &ExperimentSpec,
    fp: &FieldPath,
    d: &NetworkDuplicate,
) {
    check_filter(v, fp, &d.filter, spec, true);
    check_share(v, fp.key("duplicate"), d.duplicate);
    if d.filter
        .direction
        .is_some_and(|x| x != PacketDirection::Egress)
    {
        v.err(
            fp.key("filter").key("direction"),
            "duplicates can only be sent out: use egress (the default)",
        );
    }
}

pub(super) fn network_bandwidth(v: &mut V, fp: &FieldPath, b: &NetworkBandwidth) {
    check_ifnames(v, fp.key("interfaces"), &b.interfaces);
    if b.latency.is_some_and(|l| l.as_std().is_zero()) {
        v.err(fp.key("latency"), "must be above 0");
    }
}

pub(super) fn link_down(v: &mut V, fp: &FieldPath, l: &LinkDown) {
    check_ifnames(v, fp.key("interfaces"), &l.interfaces);
}

/// `own` is the fault's target.
pub(super) fn site_failure(
    v: &mut V,
    spec: &ExperimentSpec,
    fp: &FieldPath,
    s: &SiteFailure,
    own: &str,
) {
    check_cidrs(v, fp.key("allow"), &s.allow);
    check_lab_targets(v, fp.key("allowTargets"), &s.allow_targets, spec, own);
}

/// A packet fault's filter. `egress_ok`: the fault may hold the target's own packets.
fn check_filter(
    v: &mut V,
    fp: &FieldPath,
    f: &PacketFilter,
    spec: &ExperimentSpec,
    egress_ok: bool,
) {
    let p = fp.key("filter");
    check_cidrs(v, p.key("cidrs"), &f.cidrs);
    check_lab_targets(v, p.key("peers"), &f.peers, spec, "");
    if f.port.is_some() && !matches!(f.protocol, Some(Protocol::Tcp | Protocol::Udp)) {
        v.err(
            p.key("port"),
            "a port needs `protocol: tcp` or `protocol: udp`",
        );
    }
    if f.port == Some(0) {
        v.err(p.key("port"), "must be 1-65535");
    }
    if !egress_ok && f.direction == Some(PacketDirection::Egress) {
        v.err(
            p.key("direction"),
            "holding a sender's own packets throttles TCP instead of delaying it: apply this to the receiver (ingress) or a forwarding hop (forward)",
        );
    }
}

/// Targets whose addresses a fault needs: they must be lab targets, and not the fault's
/// own (`own`; empty when any target may be listed).
pub(super) fn check_lab_targets(
    v: &mut V,
    path: FieldPath,
    names: &[String],
    spec: &ExperimentSpec,
    own: &str,
) {
    for (j, p) in names.iter().enumerate() {
        match spec.targets.get(p) {
            None => v.err(path.index(j), format!("no target named {p:?}")),
            Some(t) if t.local.lab.is_none() && t.local.members.is_empty() && t.pods.is_none() => v
                .err(
                    path.index(j),
                    format!(
                    "{p:?} must be a lab target (its addresses must be known); use cidrs otherwise"
                ),
                ),
            _ => {}
        }
        if p == own {
            v.err(path.index(j), "a fault's own target cannot be listed here");
        }
    }
}

/// A share of packets: above 0, at most 100%.
fn check_share(v: &mut V, path: FieldPath, p: Percent) {
    if p.0 <= 0.0 || p.0 > 100.0 {
        v.err(path, "must be above 0% and at most 100%");
    }
}

/// Interface names as the kernel allows them.
fn check_ifnames(v: &mut V, path: FieldPath, names: &[String]) {
    for (j, n) in names.iter().enumerate() {
        if n.is_empty()
            || n.len() > 15
            || n.starts_with('-')
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            v.err(path.index(j), format!("{n:?} is not an interface name"));
        }
    }
}
