//! Rules on `spec.claims`: names, exactly one check per claim, the workloads, probes,
//! watches, faults and lab processes a claim names exist, and each kind's own parameters.

use super::common::unique;
use super::{Ctx, V};
use crate::model::diag::FieldPath;
use crate::model::spec::{
    BlastRadiusClaim, CapacityShareClaim, ClaimCheck, ClaimSpec, DetectsClaim, IndependentOfClaim,
    LatencyClaim, NoFlappingClaim, PrometheusClaim, RecoversClaim, RecoveryPointClaim,
    RestoresClaim, SinglePrimaryClaim, Window, WorkloadRef, WriteAvailabilityClaim, CLAIM_KINDS,
};

/// `spec.claims`: unique names, then each claim.
pub(super) fn check_claims(v: &mut V, ctx: &Ctx, sp: &FieldPath) {
    let spec = ctx.spec;
    unique(
        v,
        sp.key("claims"),
        spec.claims.iter().map(|c| c.name.as_str()),
        "claim",
    );
    for (i, c) in spec.claims.iter().enumerate() {
        check_claim(v, ctx, sp.key("claims").index(i), c);
    }
}

fn check_claim(v: &mut V, ctx: &Ctx, cp: FieldPath, c: &ClaimSpec) {
    let Some(check) = c.check() else {
        v.err(
            cp,
            format!(
                "needs exactly one of {CLAIM_KINDS} (found {})",
                c.checks_set()
            ),
        );
        return;
    };
    let kp = cp.key(check.kind());
    check_workload_refs(v, ctx, &kp, check);
    check_kind(v, ctx, &kp, check);
    let window = claim_window(check);
    if let Some(p) = c.probe() {
        if !ctx.probe_exists(p) {
            v.err(
                kp.key("probe"),
                format!("no probe named {p:?} in spec.probes{}", ctx.near_probe(p)),
            );
        }
    }
    if let Some(f) = c.fault() {
        if ctx.spec.fault(f).is_none() {
            v.err(
                kp.key("fault"),
                format!("no fault named {f:?} in spec.faults{}", ctx.near_fault(f)),
            );
        }
        if window == Some(Window::Before) || window == Some(Window::Whole) {
            v.err(
                kp.key("fault"),
                "a fault only narrows the `during` and `after` windows",
            );
        }
    }
    if matches!(check, ClaimCheck::Recovers(_)) && ctx.spec.faults.is_empty() {
        v.err(kp, "a `recovers` claim needs at least one fault");
    }
}

/// The workloads the claim names (at `kp`, the claim's check) exist.
fn check_workload_refs(v: &mut V, ctx: &Ctx, kp: &FieldPath, check: ClaimCheck) {
    let refs: Vec<(FieldPath, &str)> = match check {
        ClaimCheck::NoAckedWriteLoss(w) => vec![(kp.key("workload"), w.workload.as_str())],
        ClaimCheck::WriteAvailability(w) => vec![(kp.key("workload"), w.workload.as_str())],
        ClaimCheck::RecoveryPoint(w) => vec![(kp.key("workload"), w.workload.as_str())],
        ClaimCheck::EventuallyDelivered(w) => vec![(kp.key("workload"), w.workload.as_str())],
        ClaimCheck::ErrorRate(e) => vec![(kp.key("workload"), e.workload.as_str())],
        ClaimCheck::Latency(l) => l
            .workload
            .iter()
            .map(|w| (kp.key("workload"), w.as_str()))
            .collect(),
        ClaimCheck::SinglePrimary(s) => s
            .workloads
            .iter()
            .enumerate()
            .map(|(j, w)| (kp.key("workloads").index(j), w.as_str()))
            .collect(),
        ClaimCheck::BlastRadius(b) => b
            .workloads
            .iter()
            .enumerate()
            .map(|(j, w)| (kp.key("workloads").index(j), w.as_str()))
            .collect(),
        _ => Vec::new(),
    };
    for (p, w) in &refs {
        if ctx.workload(w).is_none() {
            v.err(
                p.clone(),
                format!(
                    "no workload named {w:?} in spec.workloads{}",
                    ctx.near_workload(w)
                ),
            );
        }
    }
}

/// The parameters of the claim's kind (at `kp`).
fn check_kind(v: &mut V, ctx: &Ctx, kp: &FieldPath, check: ClaimCheck) {
    match check {
        ClaimCheck::NoAckedWriteLoss(w) => no_acked_write_loss(v, ctx, kp, w),
        ClaimCheck::WriteAvailability(w) => write_availability(v, ctx, kp, w),
        ClaimCheck::SinglePrimary(s) => single_primary(v, ctx, kp, s),
        ClaimCheck::Detects(d) => detects(v, ctx, kp, d),
        ClaimCheck::EventuallyDelivered(w) => eventually_delivered(v, ctx, kp, w),
        ClaimCheck::Restores(r) => restores(v, ctx, kp, r),
        ClaimCheck::RecoveryPoint(r) => recovery_point(v, ctx, kp, r),
        ClaimCheck::BlastRadius(b) => blast_radius(v, kp, b),
        ClaimCheck::Availability(_) | ClaimCheck::ErrorRate(_) => {}
        ClaimCheck::Recovers(r) => recovers(v, kp, r),
        ClaimCheck::Latency(l) => latency(v, kp, l),
        ClaimCheck::NoFlapping(n) => no_flapping(v, ctx, kp, n),
        ClaimCheck::CapacityShare(c) => capacity_share(v, ctx, kp, c),
        ClaimCheck::IndependentOf(i) => independent_of(v, ctx, kp, i),
        ClaimCheck::Prometheus(p) => prometheus(v, kp, p),
    }
}

/// The window the claim is judged over, for the kinds that have one.
fn claim_window(check: ClaimCheck) -> Option<Window> {
    match check {
        ClaimCheck::Availability(a) => Some(a.window),
        ClaimCheck::Latency(l) => Some(l.window),
        ClaimCheck::ErrorRate(e) => Some(e.window),
        ClaimCheck::NoFlapping(n) => Some(n.window),
        ClaimCheck::CapacityShare(c) => Some(c.window),
        ClaimCheck::Prometheus(p) => Some(p.window),
        _ => None,
    }
}

/// Claims on what a workload read back at the end need a final read: not http.
const NO_FINAL_READ: &str =
    "an http workload has no final read; use a redis, postgres or etcd workload";

fn no_acked_write_loss(v: &mut V, ctx: &Ctx, kp: &FieldPath, w: &WorkloadRef) {
    if ctx.workload(&w.workload).is_some_and(|w| w.http.is_some()) {
        v.err(kp.key("workload"), NO_FINAL_READ);
    }
}

fn write_availability(v: &mut V, ctx: &Ctx, kp: &FieldPath, w: &WriteAvailabilityClaim) {
    if w.max_gap.as_std().is_zero() {
        v.err(kp.key("maxGap"), "must be above 0");
    } else if let Some(wl) = ctx.workload(&w.workload) {
        let period = 1000.0 / wl.rate.per_second;
        if period * 2.0 > w.max_gap.as_millis_f64() {
            v.err(
                kp.key("maxGap"),
                format!(
                    "workload {} writes every {period:.0}ms: too slowly to measure a gap of {}; raise its rate",
                    wl.name, w.max_gap
                ),
            );
        }
    }
    if ctx.spec.faults.is_empty() {
        v.err(
            kp.clone(),
            "a `writeAvailability` claim needs at least one fault",
        );
    }
}

/// Evidence from workloads, a cluster's role timeline, or both; a named cluster exists
/// and has a role probe.
fn single_primary(v: &mut V, ctx: &Ctx, kp: &FieldPath, s: &SinglePrimaryClaim) {
    let with_roles: Vec<&str> = ctx
        .spec
        .targets
        .iter()
        .filter(|(_, t)| t.role.is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    match &s.target {
        Some(t) => match ctx.spec.targets.get(t) {
            None => v.err(
                kp.key("target"),
                format!(
                    "no target named {t:?} in spec.targets{}",
                    crate::model::diag::did_you_mean(t, &with_roles)
                ),
            ),
            Some(spec) if spec.role.is_none() => v.err(
                kp.key("target"),
                format!("target {t:?} has no `role` probe: its members' roles cannot be put on the timeline"),
            ),
            Some(_) => {}
        },
        None if s.workloads.is_empty() => v.err(
            kp.clone(),
            "needs `workloads`, a `target` with a role probe, or both",
        ),
        None => {}
    }
}

fn detects(v: &mut V, ctx: &Ctx, kp: &FieldPath, d: &DetectsClaim) {
    if !ctx.is_lab_process(&d.log) {
        v.err(
            kp.key("log"),
            format!("{:?} is not a lab process (`host/process`)", d.log),
        );
    }
    if d.contains.trim().is_empty() || d.contains.contains('\n') {
        v.err(kp.key("contains"), "must be non-empty text on one line");
    }
    if d.within.is_some_and(|w| w.as_std().is_zero()) {
        v.err(kp.key("within"), "must be above 0");
    }
}

fn eventually_delivered(v: &mut V, ctx: &Ctx, kp: &FieldPath, w: &WorkloadRef) {
    if ctx
        .workload(&w.workload)
        .is_some_and(|w| w.delivered_to.is_none())
    {
        v.err(
            kp.key("workload"),
            "the workload needs `deliveredTo` (where accepted work must arrive)",
        );
    }
}

fn restores(v: &mut V, ctx: &Ctx, kp: &FieldPath, r: &RestoresClaim) {
    if r.within.as_std().is_zero() {
        v.err(kp.key("within"), "must be above 0");
    }
    if ctx.spec.faults.is_empty() {
        v.err(kp.clone(), "a `restores` claim needs at least one fault");
    }
}

fn recovery_point(v: &mut V, ctx: &Ctx, kp: &FieldPath, r: &RecoveryPointClaim) {
    if ctx.workload(&r.workload).is_some_and(|w| w.http.is_some()) {
        v.err(kp.key("workload"), NO_FINAL_READ);
    }
    if ctx.spec.faults.is_empty() {
        v.err(
            kp.clone(),
            "a `recoveryPoint` claim needs at least one fault",
        );
    }
}

fn blast_radius(v: &mut V, kp: &FieldPath, b: &BlastRadiusClaim) {
    if b.workloads.is_empty() {
        v.err(kp.key("workloads"), "needs at least one workload");
    }
    if b.max_affected as usize > b.workloads.len() {
        v.err(
            kp.key("maxAffected"),
            "is more than the number of workloads",
        );
    }
}

/// `recovers` (at `kp`); the check for a fault to recover from is made last, in
/// [`check_claim`].
fn recovers(v: &mut V, kp: &FieldPath, r: &RecoversClaim) {
    if r.within.as_std().is_zero() {
        v.err(kp.key("within"), "must be above 0");
    }
}

fn latency(v: &mut V, kp: &FieldPath, l: &LatencyClaim) {
    if l.percentile.0 <= 0.0 {
        v.err(kp.key("percentile"), "must be above 0%");
    }
    if l.workload.is_some() != l.probe.is_empty() {
        v.err(kp.clone(), "needs exactly one of `probe` or `workload`");
    }
}

fn no_flapping(v: &mut V, ctx: &Ctx, kp: &FieldPath, n: &NoFlappingClaim) {
    match (&n.watch, &n.probe) {
        (Some(w), None) => {
            if !ctx.watch_exists(w) {
                v.err(
                    kp.key("watch"),
                    format!("no watch named {w:?} in spec.watches"),
                );
            }
            if n.backend.is_none() {
                v.err(kp.key("backend"), "needs the balancer's backend name");
            }
        }
        (None, Some(_)) => {
            if n.backend.is_some() || !n.servers.is_empty() {
                v.err(
                    kp.key("backend"),
                    "`backend` and `servers` go with `watch`, not `probe`",
                );
            }
        }
        _ => v.err(kp.clone(), "needs exactly one of `watch` or `probe`"),
    }
}

fn capacity_share(v: &mut V, ctx: &Ctx, kp: &FieldPath, c: &CapacityShareClaim) {
    if c.watches.is_empty() {
        v.err(kp.key("watches"), "needs at least one watch");
    }
    for (j, w) in c.watches.iter().enumerate() {
        if !ctx.watch_exists(w) {
            v.err(
                kp.key("watches").index(j),
                format!("no watch named {w:?} in spec.watches"),
            );
        }
    }
    if c.at_most.0 <= 0.0 {
        v.err(kp.key("atMost"), "must be above 0%");
    }
}

fn independent_of(v: &mut V, ctx: &Ctx, kp: &FieldPath, i: &IndependentOfClaim) {
    if !ctx.probe_exists(&i.of) {
        v.err(
            kp.key("of"),
            format!("no probe named {:?} in spec.probes", i.of),
        );
    }
    if i.of == i.probe {
        v.err(kp.key("of"), "a probe cannot be independent of itself");
    }
    if i.at_least.is_some_and(|p| p.0 <= 0.0) {
        v.err(kp.key("atLeast"), "must be above 0%");
    }
}

fn prometheus(v: &mut V, kp: &FieldPath, p: &PrometheusClaim) {
    prom_query(
        v,
        kp,
        (
            &p.url,
            &p.query,
            p.at_most,
            p.at_least,
            p.token_env.as_deref(),
        ),
    );
    if let Some(step) = p.step {
        let ms = step.as_millis_f64();
        if !(100.0..=3_600_000.0).contains(&ms) {
            v.err(kp.key("step"), "must be 100ms to 1h");
        }
    }
}

/// What a PromQL query needs (a claim's or a probe's): a base URL, the query, exactly one
/// finite bound, and a token variable's name.
pub(super) fn prom_query(
    v: &mut V,
    kp: &FieldPath,
    (url, query, at_most, at_least, token_env): (
        &str,
        &str,
        Option<f64>,
        Option<f64>,
        Option<&str>,
    ),
) {
    if let Err(e) = crate::httpapi::BaseUrl::parse(url) {
        v.err(kp.key("url"), e);
    }
    if query.trim().is_empty() || query.chars().count() > 4096 {
        v.err(kp.key("query"), "must be 1-4096 characters of PromQL");
    } else if query
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        v.err(
            kp.key("query"),
            "must not hold control characters (other than newlines and tabs)",
        );
    }
    match (at_most, at_least) {
        (Some(_), Some(_)) | (None, None) => v.err(
            kp.clone(),
            "needs exactly one bound: `atMost` (every value at or under it) or `atLeast`",
        ),
        (Some(b), None) if !b.is_finite() => v.err(kp.key("atMost"), "must be a finite number"),
        (None, Some(b)) if !b.is_finite() => v.err(kp.key("atLeast"), "must be a finite number"),
        _ => {}
    }
    if let Some(t) = token_env {
        let ok = !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(|c: char| c.is_ascii_digit())
            && t.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            v.err(
                kp.key("tokenEnv"),
                "must be an environment variable name: uppercase letters, digits and `_` (1-128, not starting with a digit)",
            );
        }
    }
}
