//! Rules on the traffic an experiment drives and the sources it watches: `spec.workloads`
//! (one client, rates, endpoints, timeouts, retries, the client's options and the sink
//! deliveries must reach) and `spec.watches`.

use super::common::{check_paths, unique};
use super::values::sql_identifier;
use super::{Ctx, V};
use crate::model::diag::FieldPath;
use crate::model::spec::Endpoint;
use crate::model::spec::{Sink, WorkloadSpec};

/// `spec.workloads`: unique names, then each workload.
pub(super) fn check_workloads(v: &mut V, ctx: &Ctx, sp: &FieldPath) {
    let spec = ctx.spec;
    unique(
        v,
        sp.key("workloads"),
        spec.workloads.iter().map(|w| w.name.as_str()),
        "workload",
    );
    for (i, w) in spec.workloads.iter().enumerate() {
        let wp = sp.key("workloads").index(i);
        check_traffic(v, ctx, &wp, w);
        check_client(v, ctx, &wp, w);
    }
}

/// One client; the rate, endpoints, source host, timeouts, concurrency, rate profile and
/// retries.
fn check_traffic(v: &mut V, ctx: &Ctx, wp: &FieldPath, w: &WorkloadSpec) {
    if w.clients_set() != 1 {
        v.err(
            wp.clone(),
            format!(
                "needs exactly one of `http`, `redis`, `postgres` or `etcd` (found {})",
                w.clients_set()
            ),
        );
    }
    if w.rate.per_second > 2000.0 {
        v.err(wp.key("rate"), "at most 2000/s per workload");
    }
    if w.endpoints.is_empty() {
        v.err(wp.key("endpoints"), "needs at least one `ip:port`");
    }
    for (key, list) in [
        ("endpoints", &w.endpoints),
        ("readEndpoints", &w.read_endpoints),
    ] {
        for (j, e) in list.iter().enumerate() {
            check_endpoint(v, ctx, &wp.key(key).index(j), e);
        }
    }
    if let Some(from) = &w.from {
        ctx.check_from(v, wp.key("from"), from);
    }
    for (k, d) in [
        ("timeout", w.timeout),
        ("connectTimeout", w.connect_timeout),
        ("finalReadDeadline", w.final_read_deadline),
    ] {
        if d.is_some_and(|d| d.as_std().is_zero()) {
            v.err(wp.key(k), "must be above 0");
        }
    }
    if let Some(c) = w.concurrency {
        if !(1..=256).contains(&c) {
            v.err(wp.key("concurrency"), "must be between 1 and 256");
        }
    }
    for (j, ph) in w.profile.iter().enumerate() {
        let pp = wp.key("profile").index(j);
        if ph.rate.per_second > 2000.0 {
            v.err(pp.key("rate"), "at most 2000/s per workload");
        }
        if ph.for_.is_some_and(|f| f.as_std().is_zero()) {
            v.err(pp.key("for"), "must be above 0");
        }
    }
    if let Some(r) = &w.retry {
        if !(1..=10).contains(&r.attempts) {
            v.err(wp.key("retry").key("attempts"), "must be between 1 and 10");
        }
        if w.http.is_none() {
            v.err(
                wp.key("retry"),
                "only http workloads retry (a retried write would need the same unique value)",
            );
        }
    }
}

/// The client's options (`http`, `redis`, `postgres`, `etcd`) and `deliveredTo`.
fn check_client(v: &mut V, ctx: &Ctx, wp: &FieldPath, w: &WorkloadSpec) {
    if let Some(h) = &w.http {
        if let Some(p) = &h.path {
            if !p.starts_with('/') || p.contains(|c: char| c.is_whitespace() || c.is_control()) {
                v.err(
                    wp.key("http").key("path"),
                    "must start with '/' and contain no spaces or control characters",
                );
            }
        }
    }
    if let Some(r) = &w.redis {
        if let Some(k) = &r.key {
            if k.is_empty() || k.len() > 200 || k.contains(|c: char| c.is_control()) {
                v.err(
                    wp.key("redis").key("key"),
                    "must be 1-200 printable characters",
                );
            }
        }
    }
    if let Some(p) = &w.postgres {
        if let Some(t) = &p.table {
            if !sql_identifier(t) {
                v.err(
                    wp.key("postgres").key("table"),
                    "must be a plain SQL identifier: lowercase letters, digits and '_'",
                );
            }
        }
    }
    if let Some(d) = &w.delivered_to {
        check_sink(v, ctx, &wp.key("deliveredTo"), w, d);
    }
    if let Some(e) = &w.etcd {
        if let Some(p) = &e.prefix {
            if p.is_empty() || p.contains(|c: char| c.is_control()) {
                v.err(
                    wp.key("etcd").key("prefix"),
                    "must be printable and not empty",
                );
            }
        }
    }
}

/// `deliveredTo` (at `dp`): one store with real endpoints, for a workload that is not http.
fn check_sink(v: &mut V, ctx: &Ctx, dp: &FieldPath, w: &WorkloadSpec, d: &Sink) {
    let n = [d.redis.is_some(), d.postgres.is_some(), d.etcd.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if n != 1 {
        v.err(
            dp.clone(),
            format!("needs exactly one of `redis`, `postgres` or `etcd` (found {n})"),
        );
    }
    if d.endpoints.is_empty() {
        v.err(dp.key("endpoints"), "needs at least one `ip:port`");
    }
    for (j, e) in d.endpoints.iter().enumerate() {
        check_endpoint(v, ctx, &dp.key("endpoints").index(j), e);
    }
    if let Some(t) = d.postgres.as_ref().and_then(|p| p.table.as_ref()) {
        if !sql_identifier(t) {
            v.err(
                dp.key("postgres").key("table"),
                "must be a plain SQL identifier: lowercase letters, digits and '_'",
            );
        }
    }
    if w.http.is_some() {
        v.err(
            dp.clone(),
            "an http workload's deliveries cannot be tied to its requests",
        );
    }
}

/// `spec.watches`: unique names, and a source for each.
pub(super) fn check_watches(v: &mut V, ctx: &Ctx, sp: &FieldPath) {
    let spec = ctx.spec;
    unique(
        v,
        sp.key("watches"),
        spec.watches.iter().map(|w| w.name.as_str()),
        "watch",
    );
    for (i, w) in spec.watches.iter().enumerate() {
        let wp = sp.key("watches").index(i);
        match &w.haproxy {
            None => v.err(wp, "needs a source: `haproxy`"),
            Some(h) => {
                let hp = wp.key("haproxy");
                match (&h.socket, &h.address) {
                    (Some(s), None) => {
                        check_paths(v, hp.key("socket"), std::slice::from_ref(s));
                    }
                    (None, Some(a)) => check_endpoint(v, ctx, &hp.key("address"), a),
                    _ => v.err(
                        hp,
                        "needs exactly one of `socket` (a path) or `address` (`ip:port` or `{target:<name>}:<port>`)",
                    ),
                }
            }
        }
    }
}

/// One endpoint (at `ep`): `ip:port`, or `{target:<name>}:<port>` naming a target of the
/// experiment.
fn check_endpoint(v: &mut V, ctx: &Ctx, ep: &FieldPath, e: &str) {
    match Endpoint::parse(e) {
        Some(Endpoint::Addr(_)) => {}
        Some(Endpoint::Target { target, .. }) => {
            if !ctx.spec.targets.contains_key(&target) {
                v.err(
                    ep.clone(),
                    format!("{e:?} names no target: there is no `spec.targets.{target}`"),
                );
            }
        }
        None => v.err(
            ep.clone(),
            format!("{e:?} is neither `ip:port` nor `{{target:<name>}}:<port>`"),
        ),
    }
}
