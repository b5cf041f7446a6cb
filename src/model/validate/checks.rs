//! Rules on checks, what asks a system whether it is healthy: a check itself (`http`,
//! `tcp` or `command`), the probes of `spec.probes`, and the role probes that tell a
//! target's primary from its replicas.

use super::common::{check_argv, unique};
use super::values::parse_http_url;
use super::{Ctx, V};
use crate::model::diag::FieldPath;
use crate::model::spec::{Check, ProbeSpec, RoleProbe, TargetSpec};
use std::net::SocketAddr;

/// One check: exactly one of `http`, `tcp` or `command`, each well formed.
pub(super) fn check_check(v: &mut V, path: &FieldPath, c: &Check) {
    let n = [
        c.http.is_some(),
        c.tcp.is_some(),
        c.command.is_some(),
        c.prometheus.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n != 1 {
        v.err(
            path.clone(),
            format!("needs exactly one of `http`, `tcp`, `command` or `prometheus` (found {n})"),
        );
    }
    if let Some(p) = &c.prometheus {
        super::claims::prom_query(
            v,
            &path.key("prometheus"),
            (
                &p.url,
                &p.query,
                p.at_most,
                p.at_least,
                p.token_env.as_deref(),
            ),
        );
    }
    if let Some(h) = &c.http {
        if let Err(e) = parse_http_url(&h.url) {
            v.err(path.key("http").key("url"), e.to_string());
        }
        for (i, s) in h.status.iter().enumerate() {
            if !(100..=599).contains(s) {
                v.err(
                    path.key("http").key("status").index(i),
                    format!("{s} is not an HTTP status code"),
                );
            }
        }
    }
    if let Some(t) = &c.tcp {
        if t.address.parse::<SocketAddr>().is_err() {
            v.err(
                path.key("tcp").key("address"),
                format!("{:?} is not an ip:port address", t.address),
            );
        }
    }
    if let Some(cmd) = &c.command {
        check_argv(v, path.key("command").key("argv"), &cmd.argv);
    }
}

/// A Kubernetes resource quantity as a limit takes it: digits with an optional fraction
/// and suffix (`100m`, `0.5`, `64Mi`, `1G`).
fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let number = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|c| *c == '.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit());
    number
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "Ki" | "Mi" | "Gi" | "Ti"
        )
}

/// `spec.commandPod`: an image reference and a service account name the API server takes.
pub(super) fn check_command_pod(v: &mut V, sp: &FieldPath, c: &crate::model::spec::CommandPod) {
    let cp = sp.key("commandPod");
    let image_ok = !c.image.is_empty()
        && c.image.len() <= 512
        && c.image
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "./:@_-".contains(ch));
    if !image_ok {
        v.err(
            cp.key("image"),
            format!(
                "{:?} is not an image reference (letters, digits and ./:@_- only, at most 512)",
                c.image
            ),
        );
    }
    if let Some(sa) = &c.service_account_name {
        if !super::values::is_dns_subdomain(sa) {
            v.err(
                cp.key("serviceAccountName"),
                format!("{sa:?} is not a service account name (lowercase DNS subdomain)"),
            );
        }
    }
    for (k, q) in [("cpu", &c.cpu), ("memory", &c.memory)] {
        if let Some(q) = q {
            if !is_quantity(q) {
                v.err(
                    cp.key(k),
                    format!("{q:?} is not a Kubernetes quantity such as 100m or 64Mi"),
                );
            }
        }
    }
}

/// `spec.probes`: unique names, then each probe.
pub(super) fn check_probes(v: &mut V, ctx: &Ctx, sp: &FieldPath) {
    let spec = ctx.spec;
    if let Some(c) = &spec.command_pod {
        check_command_pod(v, sp, c);
    }
    unique(
        v,
        sp.key("probes"),
        spec.probes.iter().map(|p| p.name.as_str()),
        "probe",
    );
    for (i, p) in spec.probes.iter().enumerate() {
        check_probe(v, ctx, &sp.key("probes").index(i), p);
    }
}

fn check_probe(v: &mut V, ctx: &Ctx, pp: &FieldPath, p: &ProbeSpec) {
    check_check(v, pp, &p.check);
    if let Some(iv) = p.interval {
        if iv.as_std() < std::time::Duration::from_millis(10) {
            v.err(pp.key("interval"), "must be at least 10ms");
        }
    }
    if let Some(t) = p.timeout {
        if t.as_std().is_zero() {
            v.err(pp.key("timeout"), "must be above 0");
        }
    }
    if let Some(from) = &p.from {
        ctx.check_from(v, pp.key("from"), from);
    }
}

/// A target's `role` (at `tp.role`): exactly one way to ask a member its role, with real
/// ports, and only with `select`.
pub(super) fn check_role(v: &mut V, ctx: &Ctx, tp: &FieldPath, t: &TargetSpec, r: &RoleProbe) {
    let rp = tp.key("role");
    if r.probes_set() != 1 {
        v.err(
            rp.clone(),
            format!(
                "needs exactly one of `redis`, `postgres`, `etcd` or `command` (found {})",
                r.probes_set()
            ),
        );
    }
    if let Some(c) = &r.command {
        check_argv(v, rp.key("command").key("argv"), &c.argv);
    }
    for (k, port) in [
        ("redis", r.redis.as_ref().map(|p| p.port)),
        ("etcd", r.etcd.as_ref().map(|p| p.port)),
        ("postgres", r.postgres.as_ref().map(|p| p.port)),
    ] {
        if port == Some(0) {
            v.err(rp.key(k).key("port"), "must be a port number above 0");
        }
    }
    if t.select.is_none() && !r.on_timeline() {
        v.err(
            tp.key("select"),
            "`role` with `timeline: false` is only used with `select`",
        );
    }
    if let Some(i) = r.interval {
        if i.as_std() < std::time::Duration::from_millis(10)
            || i.as_std() > std::time::Duration::from_secs(10)
        {
            v.err(rp.key("interval"), "must be between 10ms and 10s");
        }
    }
    if r.timeout.is_some_and(|t| t.as_std().is_zero()) {
        v.err(rp.key("timeout"), "must be above 0");
    }
    if let Some(from) = &r.from {
        ctx.check_from(v, rp.key("from"), from);
    }
}
