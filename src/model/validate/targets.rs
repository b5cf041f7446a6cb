//! Rules on `spec.targets`: exactly one selector per target (`pods`, `lab`, `members`,
//! `process`, `cgroup` or `netns`), each well formed; lab references that name real lab
//! hosts and processes; role-aware selection (`select`, `role`) and `pick`.

use super::checks::check_role;
use super::values::{is_name, label_key, label_value};
use super::{Ctx, V};
use crate::model::diag::FieldPath;
use crate::model::local::{ExternalMember, LocalTarget, MemberRef, ProcessSelector};
use crate::model::spec::{Pick, PickMode, PodSelector, Select, TargetSpec};
use std::collections::HashSet;

/// Every target, in name order.
pub(super) fn check_targets(v: &mut V, ctx: &Ctx, sp: &FieldPath) {
    for (name, t) in &ctx.spec.targets {
        check_target(v, ctx, &sp.key("targets").key(name), name, t);
    }
}

fn check_target(v: &mut V, ctx: &Ctx, tp: &FieldPath, name: &str, t: &TargetSpec) {
    if !is_name(name, 63) {
        v.err(
            tp.clone(),
            format!("target name {name:?} must be lowercase letters, digits and '-'"),
        );
    }
    let l = &t.local;
    let n = [
        t.pods.is_some(),
        l.lab.is_some(),
        !l.members.is_empty(),
        l.process.is_some(),
        l.cgroup.is_some(),
        l.netns.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n != 1 {
        v.err(
            tp.clone(),
            format!("needs exactly one of `pods`, `lab`, `members`, `process`, `cgroup` or `netns` (found {n})"),
        );
    }
    if let Some(p) = &t.pods {
        check_pods(v, ctx, &tp.key("pods"), p);
    }
    check_lab_refs(v, ctx, tp, l);
    check_selectors(
        v,
        tp,
        l.netns.as_deref(),
        l.process.as_ref(),
        l.cgroup.as_deref(),
    );
    for (j, m) in l.members.iter().enumerate() {
        if let MemberRef::External(e) = m {
            check_external(v, &tp.key("members").index(j), e);
        }
    }
    if let Some(sel) = t.select {
        check_select(v, tp, t, sel);
    }
    if let Some(r) = &t.role {
        check_role(v, ctx, tp, t, r);
    }
    if let Some(pick) = &t.pick {
        check_pick(v, &tp.key("pick"), pick);
    }
}

/// A `pods` selector: namespace, labels and containers; not in an experiment with a lab.
fn check_pods(v: &mut V, ctx: &Ctx, pp: &FieldPath, p: &PodSelector) {
    if !is_name(&p.namespace, 63) {
        v.err(
            pp.key("namespace"),
            format!("{:?} is not a namespace name", p.namespace),
        );
    }
    for (k, val) in &p.match_labels {
        if !label_key(k) {
            v.err(
                pp.key("matchLabels").key(k),
                "is not a Kubernetes label key",
            );
        }
        if !label_value(val) {
            v.err(
                pp.key("matchLabels").key(k),
                format!("{val:?} is not a Kubernetes label value"),
            );
        }
    }
    for (j, c) in p.containers.iter().enumerate() {
        if !is_name(c, 63) {
            v.err(
                pp.key("containers").index(j),
                format!("{c:?} is not a container name"),
            );
        }
    }
    if ctx.spec.lab.is_some() {
        v.err(
            pp.clone(),
            "a `pods` target runs on a cluster; an experiment with a `lab` runs on this machine",
        );
    }
}

/// The selectors of something already running (a target's or a member's), at `path`.
fn check_selectors(
    v: &mut V,
    path: &FieldPath,
    netns: Option<&str>,
    process: Option<&ProcessSelector>,
    cgroup: Option<&str>,
) {
    if let Some(ns) = netns {
        check_netns_name(v, path.key("netns"), ns);
    }
    if let Some(p) = process {
        check_process_selector(v, &path.key("process"), p);
    }
    if let Some(c) = cgroup {
        if !c.starts_with('/') || c.split('/').any(|s| s == "..") {
            v.err(
                path.key("cgroup"),
                "must be an absolute cgroup path without '..'",
            );
        }
    }
}

/// A network namespace's name as `ip netns` would take it.
pub(super) fn check_netns_name(v: &mut V, path: FieldPath, ns: &str) {
    if ns.is_empty() || ns.len() > 255 || ns.contains(['/', '\0']) || ns == "." || ns == ".." {
        v.err(path, format!("{ns:?} is not a network namespace name"));
    }
}

/// A member Murphy did not start: exactly one of `netns`, `process`, `cgroup`, each well
/// formed, an IPv4 `address` and a plain `name` when given.
fn check_external(v: &mut V, mp: &FieldPath, e: &ExternalMember) {
    let n = [e.netns.is_some(), e.process.is_some(), e.cgroup.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if n != 1 {
        v.err(
            mp.clone(),
            format!("needs exactly one of `netns`, `process` or `cgroup` (found {n})"),
        );
    }
    check_selectors(
        v,
        mp,
        e.netns.as_deref(),
        e.process.as_ref(),
        e.cgroup.as_deref(),
    );
    if let Some(a) = &e.address {
        if a.parse::<std::net::Ipv4Addr>().is_err() {
            v.err(mp.key("address"), format!("{a:?} is not an IPv4 address"));
        }
    }
    if let Some(name) = &e.name {
        if !is_name(name, 63) {
            v.err(
                mp.key("name"),
                format!("{name:?} must be 1-63 lowercase letters, digits and '-'"),
            );
        }
    }
}

/// `lab` and `members`: each `host` or `host/process` names a lab host (and one of its
/// processes), once.
fn check_lab_refs(v: &mut V, ctx: &Ctx, tp: &FieldPath, l: &LocalTarget) {
    let mut refs: Vec<(FieldPath, &str)> = Vec::new();
    if let Some(r) = &l.lab {
        refs.push((tp.key("lab"), r));
    }
    for (j, r) in l.members.iter().enumerate() {
        if let Some(r) = r.lab() {
            refs.push((tp.key("members").index(j), r));
        }
    }
    let mut seen_refs = HashSet::new();
    for (rp, r) in refs {
        if !seen_refs.insert(r) {
            v.err(rp.clone(), format!("{r:?} is listed twice"));
        }
        let (host, proc_) = r.split_once('/').map_or((r, None), |(h, p)| (h, Some(p)));
        match ctx.lab_host(host) {
            None if ctx.spec.lab.is_none() => v.err(
                rp,
                format!("refers to lab host {host:?} but the experiment has no `lab`"),
            ),
            None => v.err(rp, format!("no lab host named {host:?}")),
            Some(procs) => {
                // A host without a process is still a network namespace target.
                if let Some(p) = proc_ {
                    if !procs.contains(&p) {
                        v.err(rp, format!("lab host {host:?} has no process named {p:?}"));
                    }
                }
            }
        }
    }
}

/// A `process` selector: exactly one way to find the process, each well formed.
fn check_process_selector(v: &mut V, pp: &FieldPath, p: &ProcessSelector) {
    let n = [
        p.pid.is_some(),
        p.pidfile.is_some(),
        p.name.is_some(),
        p.cmdline.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n != 1 {
        v.err(
            pp.clone(),
            format!("needs exactly one of `pid`, `pidfile`, `name` or `cmdline` (found {n})"),
        );
    }
    if p.pid == Some(0) || p.pid == Some(1) {
        v.err(pp.key("pid"), "refusing to target pid 0 or 1");
    }
    if let Some(f) = &p.pidfile {
        if !f.starts_with('/') {
            v.err(pp.key("pidfile"), "must be an absolute path");
        }
    }
    if let Some(nm) = &p.name {
        if nm.is_empty() || nm.len() > 15 {
            v.err(
                pp.key("name"),
                "process names (comm) are 1 to 15 characters",
            );
        }
    }
    if let Some(re) = &p.cmdline {
        if let Err(e) = regex::Regex::new(re) {
            v.err(
                pp.key("cmdline"),
                format!("not a valid regular expression: {e}"),
            );
        }
    }
}

/// `select`: the primary or a replica needs a `role`; any selection needs members with
/// addresses to ask: lab members, or pods (asked at their IPs by the controller).
fn check_select(v: &mut V, tp: &FieldPath, t: &TargetSpec, sel: Select) {
    let l = &t.local;
    if matches!(sel, Select::Primary | Select::Replica) && t.role.is_none() {
        v.err(
            tp.key("select"),
            "selecting the primary or a replica needs `role` (how to ask each member)",
        );
    }
    if l.members.is_empty() && l.lab.is_none() && t.pods.is_none() {
        v.err(
            tp.key("select"),
            "role-aware selection needs `members` (lab hosts or processes, or existing namespaces, processes or cgroups) or `pods`: their addresses are probed",
        );
    }
}

/// `pick`: a count or percent for the modes that need one.
fn check_pick(v: &mut V, pp: &FieldPath, pick: &Pick) {
    match pick.mode {
        PickMode::Count if pick.count.unwrap_or(0) == 0 => {
            v.err(pp.key("count"), "mode `count` needs a count of at least 1")
        }
        PickMode::Percent | PickMode::UpToPercent if pick.percent.is_none_or(|p| p.0 <= 0.0) => {
            v.err(pp.key("percent"), "this mode needs a percent above 0%")
        }
        _ => {}
    }
}
