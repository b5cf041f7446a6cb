//! The checkers that read workload histories ([`crate::record::history`]).
//!
//! A history is every operation a client started, on the run's clock: when it was invoked
//! (its scheduled start: the client is open loop, so a slow system cannot hide latency by
//! slowing the client), when it completed, and how: `ok` (acknowledged), `fail` (definitely
//! not applied: refused connection, read-only node) or `info` (outcome unknown: a timeout or
//! a connection lost after the request was sent). After the run a final read records what
//! the system really holds.
//!
//! The checkers are pure functions from histories to verdicts. `info` writes are never
//! counted as lost; no data is never a pass.

use super::{Outcome, Verdict};
use crate::model::spec::{BlastRadiusClaim, ClaimSpec, WriteAvailabilityClaim};
pub use crate::record::history::{FinalRead, History, LatencySummary, Op, OpResult};
use crate::record::RunRecord;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// A write named in a verdict's evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRef {
    pub value: String,
    /// When the client saw the answer (the acknowledgement for lost writes).
    pub t_ms: f64,
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

fn secs(ms: f64) -> String {
    format!("{:.3}s", ms / 1000.0)
}

fn base(claim: &ClaimSpec, kind: &str) -> Verdict {
    Verdict {
        claim: claim.name.clone(),
        kind: kind.into(),
        outcome: Outcome::Inconclusive,
        measured: "-".into(),
        reason: String::new(),
        figures: BTreeMap::new(),
        lost_writes: Vec::new(),
        indeterminate_writes: Vec::new(),
    }
}

fn inconclusive(mut v: Verdict, why: String) -> Verdict {
    v.outcome = Outcome::Inconclusive;
    v.reason = why;
    v
}

/// Every acknowledged write is in the final read.
pub fn no_acked_write_loss(claim: &ClaimSpec, workload: &str, rec: &RunRecord) -> Verdict {
    let v = base(claim, "noAckedWriteLoss");
    let Some(h) = rec.history(workload) else {
        return inconclusive(v, format!("workload {workload} recorded no history"));
    };
    check_loss(v, h)
}

/// Everything a producer saw accepted reached the store it is delivered to.
pub fn eventually_delivered(claim: &ClaimSpec, workload: &str, rec: &RunRecord) -> Verdict {
    let v = base(claim, "eventuallyDelivered");
    let Some(h) = rec.history(workload) else {
        return inconclusive(v, format!("workload {workload} recorded no history"));
    };
    check_delivery(v, h)
}

/// The delivery check: the loss check, worded for work accepted and then delivered.
pub fn check_delivery(v: Verdict, h: &History) -> Verdict {
    let mut v = check_loss(v, h);
    v.reason = v
        .reason
        .replace(
            "acknowledged write(s) are missing from the final read from",
            "accepted message(s) never arrived in",
        )
        .replace(
            "acknowledged writes is in the final read from",
            "accepted messages arrived in",
        )
        .replace(
            "write(s) had an unknown outcome",
            "message(s) had an unknown outcome",
        );
    if let Some(n) = v.figures.remove("lost") {
        v.figures.insert("undelivered".into(), n);
    }
    v.measured = v.measured.replace(" lost", " undelivered");
    v
}

/// The loss check on one history (public for tests).
pub fn check_loss(mut v: Verdict, h: &History) -> Verdict {
    let acked: Vec<&Op> = h
        .ops
        .iter()
        .filter(|o| o.is_write() && o.result == OpResult::Ok)
        .collect();
    let fr = match &h.final_read {
        Some(f) if f.ok => f,
        Some(f) => {
            return inconclusive(
                v,
                format!(
                    "the final read failed after {} attempt(s): {}; without it no write can be shown lost or kept",
                    f.attempts,
                    f.error.as_deref().unwrap_or("unknown error")
                ),
            )
        }
        None => return inconclusive(v, "no final read was made".into()),
    };
    if acked.is_empty() {
        return inconclusive(
            v,
            format!(
                "no write was acknowledged ({} attempted), so there is nothing to lose",
                h.ops.iter().filter(|o| o.is_write()).count()
            ),
        );
    }
    let held: HashSet<&str> = fr.values.iter().map(String::as_str).collect();
    let mut lost: Vec<WriteRef> = acked
        .iter()
        .filter(|o| !held.contains(o.value.as_str()))
        .map(|o| WriteRef {
            value: o.value.clone(),
            t_ms: o.complete_ms,
            endpoint: o.endpoint.clone(),
            present: Some(false),
        })
        .collect();
    lost.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    let info: Vec<WriteRef> = h
        .ops
        .iter()
        .filter(|o| o.is_write() && o.result == OpResult::Info)
        .map(|o| WriteRef {
            value: o.value.clone(),
            t_ms: o.complete_ms,
            endpoint: o.endpoint.clone(),
            present: Some(held.contains(o.value.as_str())),
        })
        .collect();
    let info_kept = info.iter().filter(|w| w.present == Some(true)).count();
    let failed_but_present = h
        .ops
        .iter()
        .filter(|o| o.is_write() && o.result == OpResult::Fail && held.contains(o.value.as_str()))
        .count();
    v.figures.insert("acked".into(), acked.len() as f64);
    v.figures.insert("lost".into(), lost.len() as f64);
    v.figures.insert("indeterminate".into(), info.len() as f64);
    v.figures
        .insert("indeterminatePresent".into(), info_kept as f64);
    v.figures
        .insert("finalReadSize".into(), fr.values.len() as f64);
    v.figures
        .insert("failedButPresent".into(), failed_but_present as f64);
    let info_note = if info.is_empty() {
        String::new()
    } else {
        format!(
            "; {} write(s) had an unknown outcome ({} of them present), not counted as lost",
            info.len(),
            info_kept
        )
    };
    let fail_note = if failed_but_present > 0 {
        format!("; {failed_but_present} write(s) the client saw fail are present anyway")
    } else {
        String::new()
    };
    if lost.is_empty() {
        v.outcome = Outcome::Held;
        v.measured = format!("0 of {} lost", acked.len());
        v.reason = format!(
            "every one of {} acknowledged writes is in the final read from {}{info_note}{fail_note}",
            acked.len(),
            fr.endpoint
        );
    } else {
        let by_ep = lost
            .iter()
            .fold(BTreeMap::<&str, usize>::new(), |mut m, w| {
                *m.entry(w.endpoint.as_str()).or_default() += 1;
                m
            });
        let first = &lost[0];
        let last = &lost[lost.len() - 1];
        v.outcome = Outcome::Failed;
        v.measured = format!("{} of {} lost", lost.len(), acked.len());
        v.reason = format!(
            "{} acknowledged write(s) are missing from the final read from {} (acknowledged by {}; between {} and {}){info_note}{fail_note}",
            lost.len(),
            fr.endpoint,
            by_ep
                .iter()
                .map(|(e, n)| format!("{e}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            secs(first.t_ms),
            secs(last.t_ms),
        );
    }
    v.lost_writes = lost;
    v.indeterminate_writes = info;
    v
}

/// Longest stretch without a successful write after a fault, and the time to the first
/// write acknowledged by a different node (failover).
pub fn write_availability(
    claim: &ClaimSpec,
    w: &WriteAvailabilityClaim,
    rec: &RunRecord,
) -> Verdict {
    let v = base(claim, "writeAvailability");
    let Some(h) = rec.history(&w.workload) else {
        return inconclusive(v, format!("workload {} recorded no history", w.workload));
    };
    let fault = rec.fault_or_first(w.fault.as_deref());
    let Some(fault) = fault.filter(|f| f.injected_ms.is_some()) else {
        return inconclusive(
            v,
            "no fault was injected, so there was no failover to measure".into(),
        );
    };
    if !fault.confirmed {
        return inconclusive(
            v,
            format!(
                "fault {} was not confirmed{}",
                fault.name,
                fault
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        );
    }
    // The bound is measured from the injection (a write lost while the fault was being
    // put in place counts against it); the failover figures from the moment the fault
    // was known to be in effect.
    let injected = fault.injected_ms.unwrap_or(0.0);
    let effect = fault.in_effect_ms().unwrap_or(injected);
    let mut v = check_gap(
        v,
        h,
        (injected, effect),
        &fault.name,
        w.max_gap.as_millis_f64(),
    );
    if let Some((ms, who)) = super::roles::promotion_ms(rec, Some(&fault.target), effect) {
        v.figures.insert("promotionMs".into(), ms);
        v.reason.push_str(&format!(
            "; {who} said it was primary {} after {}",
            secs(ms),
            fault.name
        ));
    }
    v
}

/// The gap check on one history from `start` (public for tests).
pub fn check_gap(
    mut v: Verdict,
    h: &History,
    (start, effect): (f64, f64),
    fault: &str,
    max_gap: f64,
) -> Verdict {
    let end = h.stopped_ms;
    if end <= start {
        return inconclusive(v, "the workload stopped before the fault".into());
    }
    let mut oks: Vec<&Op> = h
        .ops
        .iter()
        .filter(|o| o.result == OpResult::Ok && o.complete_ms >= start && o.complete_ms <= end)
        .collect();
    oks.sort_by(|a, b| a.complete_ms.total_cmp(&b.complete_ms));
    let tried = h
        .ops
        .iter()
        .filter(|o| o.invoke_ms >= start && o.invoke_ms <= end)
        .count();
    if tried == 0 {
        return inconclusive(v, "the workload made no operation after the fault".into());
    }
    // Gaps: fault → first ok, between oks, last ok → end.
    let mut points = vec![start];
    points.extend(oks.iter().map(|o| o.complete_ms));
    points.push(end);
    let (mut gap, mut gap_from) = (0.0f64, start);
    for w in points.windows(2) {
        if w[1] - w[0] > gap {
            gap = w[1] - w[0];
            gap_from = w[0];
        }
    }
    // The node that acknowledged writes last before the fault was in effect, and the
    // first write sent after that and acknowledged by another node (sent before, it says
    // nothing about the failover).
    let before = h
        .ops
        .iter()
        .filter(|o| o.result == OpResult::Ok && o.complete_ms < effect)
        .max_by(|a, b| a.complete_ms.total_cmp(&b.complete_ms))
        .map(|o| o.endpoint.clone());
    let sent_after: Vec<&&Op> = oks.iter().filter(|o| o.invoke_ms >= effect).collect();
    let moved = before
        .as_ref()
        .and_then(|b| sent_after.iter().find(|o| &o.endpoint != b));
    if let Some(o) = sent_after.first() {
        v.figures
            .insert("writesBackMs".into(), o.complete_ms - effect);
    }
    v.figures.insert("longestGapMs".into(), gap);
    v.figures.insert("maxGapMs".into(), max_gap);
    v.figures.insert("okAfterFault".into(), oks.len() as f64);
    v.figures.insert("opsAfterFault".into(), tried as f64);
    let failover = match (moved, &before) {
        (Some(o), Some(b)) => {
            v.figures
                .insert("clientMovedMs".into(), o.complete_ms - effect);
            format!(
                "; writes moved from {b} to {} {} after {fault} took effect",
                o.endpoint,
                secs(o.complete_ms - effect)
            )
        }
        (None, Some(b)) => format!("; writes stayed on {b}"),
        _ => String::new(),
    };
    let first_ok = oks.first().map(|o| o.complete_ms);
    let fails = h
        .ops
        .iter()
        .filter(|o| o.invoke_ms >= start && o.result != OpResult::Ok)
        .count();
    v.measured = format!("longest gap {}", secs(gap));
    if first_ok.is_none() {
        v.outcome = Outcome::Failed;
        v.reason = format!(
            "no write succeeded between {fault} ({}) and the end of the workload ({}): {fails} of {tried} operations failed or timed out",
            secs(start),
            secs(end)
        );
        return v;
    }
    let within = gap <= max_gap;
    v.outcome = if within {
        Outcome::Held
    } else {
        Outcome::Failed
    };
    v.reason = format!(
        "the longest stretch without a successful write was {} (from {} to {}), {} the bound of {}; {fails} of {tried} operations after {fault} failed or timed out{failover}",
        secs(gap),
        secs(gap_from),
        secs(gap_from + gap),
        if within { "within" } else { "over" },
        secs(max_gap),
    );
    v
}

/// RPO: writes acknowledged more than `maxLoss` before the data fault are all in the final
/// read; the measured data-loss window runs from the earliest lost acknowledgement to the
/// fault.
pub fn recovery_point(
    claim: &ClaimSpec,
    r: &crate::model::spec::RecoveryPointClaim,
    rec: &RunRecord,
) -> Verdict {
    let v = base(claim, "recoveryPoint");
    let Some(h) = rec.history(&r.workload) else {
        return inconclusive(v, format!("workload {} recorded no history", r.workload));
    };
    let fault = rec.fault_or_first(r.fault.as_deref());
    let Some(f) = fault.filter(|f| f.injected_ms.is_some()) else {
        return inconclusive(v, "the data fault was never injected".into());
    };
    if !f.confirmed {
        return inconclusive(v, format!("fault {} was not confirmed", f.name));
    }
    check_rpo(
        v,
        h,
        f.injected_ms.unwrap_or(0.0),
        &f.name,
        r.max_loss.as_millis_f64(),
    )
}

/// The recovery-point check on one history (public for tests).
pub fn check_rpo(
    mut v: Verdict,
    h: &History,
    fault_ms: f64,
    fault: &str,
    max_loss: f64,
) -> Verdict {
    let before: Vec<&Op> = h
        .ops
        .iter()
        .filter(|o| o.is_write() && o.result == OpResult::Ok && o.complete_ms < fault_ms)
        .collect();
    if before.is_empty() {
        return inconclusive(v, format!("no write was acknowledged before {fault}"));
    }
    v.figures
        .insert("ackedBeforeFault".into(), before.len() as f64);
    v.figures.insert("maxLossMs".into(), max_loss);
    let fr = match &h.final_read {
        Some(f) if f.ok => f,
        Some(f) => {
            // The workload wrote and read fine before the fault; after recovery the system
            // gives nothing back by the deadline: everything acknowledged is unavailable.
            v.outcome = Outcome::Failed;
            v.figures.insert("lost".into(), before.len() as f64);
            v.measured = format!("all {} unavailable", before.len());
            v.reason = format!(
                "after recovery the system returned nothing readable ({} attempt(s): {}), so all {} writes acknowledged before {fault} are unavailable",
                f.attempts,
                f.error.as_deref().unwrap_or("?"),
                before.len()
            );
            v.lost_writes = before
                .iter()
                .map(|o| WriteRef {
                    value: o.value.clone(),
                    t_ms: o.complete_ms,
                    endpoint: o.endpoint.clone(),
                    present: Some(false),
                })
                .collect();
            return v;
        }
        None => return inconclusive(v, "no final read was made".into()),
    };
    let held: HashSet<&str> = fr.values.iter().map(String::as_str).collect();
    let mut lost: Vec<&&Op> = before
        .iter()
        .filter(|o| !held.contains(o.value.as_str()))
        .collect();
    lost.sort_by(|a, b| a.complete_ms.total_cmp(&b.complete_ms));
    let window = lost.first().map_or(0.0, |o| fault_ms - o.complete_ms);
    v.figures.insert("lost".into(), lost.len() as f64);
    v.figures.insert("rpoMs".into(), window);
    let beyond: Vec<&&&Op> = lost
        .iter()
        .filter(|o| o.complete_ms < fault_ms - max_loss)
        .collect();
    v.measured = if lost.is_empty() {
        "RPO 0 (nothing lost)".into()
    } else {
        format!("RPO {} ({} lost)", secs(window), lost.len())
    };
    v.lost_writes = lost
        .iter()
        .map(|o| WriteRef {
            value: o.value.clone(),
            t_ms: o.complete_ms,
            endpoint: o.endpoint.clone(),
            present: Some(false),
        })
        .collect();
    if lost.is_empty() {
        v.outcome = Outcome::Held;
        v.reason = format!(
            "all {} writes acknowledged before {fault} are present after recovery",
            before.len()
        );
    } else if beyond.is_empty() {
        v.outcome = Outcome::Held;
        v.reason = format!(
            "{} of {} writes acknowledged before {fault} are missing after recovery, all from the last {} before it (allowed: {})",
            lost.len(),
            before.len(),
            secs(window),
            secs(max_loss)
        );
    } else {
        v.outcome = Outcome::Failed;
        v.reason = format!(
            "{} of {} writes acknowledged before {fault} are missing after recovery; {} of them were acknowledged more than {} before it (the oldest {} before)",
            lost.len(),
            before.len(),
            beyond.len(),
            secs(max_loss),
            secs(window)
        );
    }
    v
}

/// While a fault is active, at most N workloads see failures.
pub fn blast_radius(claim: &ClaimSpec, b: &BlastRadiusClaim, rec: &RunRecord) -> Verdict {
    let mut v = base(claim, "blastRadius");
    let Some(f) = rec.fault(&b.fault).filter(|f| f.injected_ms.is_some()) else {
        return inconclusive(v, format!("fault {} was never injected", b.fault));
    };
    if !f.confirmed {
        return inconclusive(v, format!("fault {} was not confirmed", b.fault));
    }
    let from = f.in_effect_ms().unwrap_or(0.0);
    let to = f
        .reverted_ms
        .or(rec.phases.faults_end_ms)
        .unwrap_or(rec.phases.end_ms);
    let mut affected = Vec::new();
    let mut clean = Vec::new();
    for w in &b.workloads {
        let Some(h) = rec.history(w) else {
            return inconclusive(v, format!("workload {w} recorded no history"));
        };
        let ops: Vec<&Op> = h
            .ops
            .iter()
            .filter(|o| o.invoke_ms >= from && o.invoke_ms <= to)
            .collect();
        if ops.is_empty() {
            return inconclusive(
                v,
                format!(
                    "workload {w} made no operation while {} was active",
                    b.fault
                ),
            );
        }
        let bad = ops.iter().filter(|o| o.result != OpResult::Ok).count();
        if bad > 0 {
            affected.push(format!("{w} ({bad}/{} failed)", ops.len()));
        } else {
            clean.push(w.clone());
        }
    }
    v.figures.insert("affected".into(), affected.len() as f64);
    v.figures
        .insert("workloads".into(), b.workloads.len() as f64);
    v.measured = format!("{} of {} affected", affected.len(), b.workloads.len());
    let held = affected.len() <= b.max_affected as usize;
    v.outcome = if held { Outcome::Held } else { Outcome::Failed };
    v.reason = format!(
        "while {} was active ({} to {}), {} of {} workloads saw failures{}{} (at most {} allowed){}",
        b.fault,
        secs(from),
        secs(to),
        affected.len(),
        b.workloads.len(),
        if affected.is_empty() { "" } else { ": " },
        affected.join(", "),
        b.max_affected,
        if !held && affected.len() == b.workloads.len() {
            "; every workload was hit at once: a correlated loss"
        } else {
            ""
        }
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op(id: u64, inv: f64, done: f64, r: OpResult, ep: &str) -> Op {
        Op {
            id,
            value: format!("w-{id}"),
            invoke_ms: inv,
            complete_ms: done,
            result: r,
            endpoint: ep.into(),
            error: String::new(),
            status: None,
            attempt: 0,
        }
    }

    fn hist(ops: Vec<Op>, final_values: Option<Vec<String>>) -> History {
        History {
            workload: "w".into(),
            client: "redis".into(),
            started_ms: 0.0,
            stopped_ms: 10_000.0,
            ops,
            final_read: final_values.map(|values| FinalRead {
                ok: true,
                t_ms: 11_000.0,
                endpoint: "a".into(),
                values,
                attempts: 1,
                error: None,
            }),
            notes: Vec::new(),
        }
    }

    fn v() -> Verdict {
        let c = ClaimSpec {
            name: "c".into(),
            ..Default::default()
        };
        base(&c, "t")
    }

    #[test]
    fn loss_lists_each_lost_write_and_ignores_info() {
        let ops = vec![
            op(1, 0.0, 5.0, OpResult::Ok, "a"),
            op(2, 10.0, 15.0, OpResult::Ok, "a"),
            op(3, 20.0, 1020.0, OpResult::Info, "a"),
            op(4, 30.0, 31.0, OpResult::Fail, "b"),
            op(5, 40.0, 45.0, OpResult::Ok, "b"),
        ];
        // w-2 lost; w-3 (info) absent: not a loss.
        let h = hist(ops, Some(vec!["w-1".into(), "w-5".into()]));
        let r = check_loss(v(), &h);
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.lost_writes.len(), 1);
        assert_eq!(r.lost_writes[0].value, "w-2");
        assert_eq!(r.lost_writes[0].endpoint, "a");
        assert_eq!(r.lost_writes[0].t_ms, 15.0);
        assert_eq!(r.indeterminate_writes.len(), 1);
        assert_eq!(r.indeterminate_writes[0].present, Some(false));
        assert_eq!(r.figures["lost"], 1.0);
    }

    #[test]
    fn loss_holds_when_all_acked_present_and_info_applied() {
        let ops = vec![
            op(1, 0.0, 5.0, OpResult::Ok, "a"),
            op(2, 10.0, 1010.0, OpResult::Info, "a"),
        ];
        let h = hist(ops, Some(vec!["w-1".into(), "w-2".into()]));
        let r = check_loss(v(), &h);
        assert_eq!(r.outcome, Outcome::Held, "{}", r.reason);
        assert_eq!(r.figures["indeterminatePresent"], 1.0);
    }

    #[test]
    fn loss_without_final_read_or_acks_is_inconclusive() {
        let h = hist(vec![op(1, 0.0, 5.0, OpResult::Ok, "a")], None);
        assert_eq!(check_loss(v(), &h).outcome, Outcome::Inconclusive);
        let mut h = hist(vec![op(1, 0.0, 5.0, OpResult::Ok, "a")], Some(vec![]));
        if let Some(f) = h.final_read.as_mut() {
            f.ok = false;
            f.error = Some("no master".into());
        }
        let r = check_loss(v(), &h);
        assert_eq!(r.outcome, Outcome::Inconclusive);
        assert!(r.reason.contains("no master"));
        let h = hist(vec![op(1, 0.0, 5.0, OpResult::Info, "a")], Some(vec![]));
        assert_eq!(check_loss(v(), &h).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn gap_measures_failover_and_endpoint_move() {
        let mut ops = Vec::new();
        // 10/s on a until the fault at 2000, failures until 4500, then on b.
        for i in 0..100u64 {
            let t = i as f64 * 100.0;
            let (r, ep) = if t < 2000.0 {
                (OpResult::Ok, "a")
            } else if t < 4500.0 {
                (OpResult::Fail, "a")
            } else {
                (OpResult::Ok, "b")
            };
            ops.push(op(i, t, t + 5.0, r, ep));
        }
        let h = hist(ops, None);
        let r = check_gap(v(), &h, (2000.0, 2000.0), "kill", 3000.0);
        assert_eq!(r.outcome, Outcome::Held, "{}", r.reason);
        assert!((r.figures["longestGapMs"] - 2505.0).abs() < 1e-6);
        assert!((r.figures["clientMovedMs"] - 2505.0).abs() < 1e-6);
        assert!(r.reason.contains("from a to b"));
        let r = check_gap(v(), &h, (2000.0, 2000.0), "kill", 2000.0);
        assert_eq!(r.outcome, Outcome::Failed);
    }

    #[test]
    fn gap_with_no_write_after_the_fault_fails_and_no_ops_is_inconclusive() {
        let ops = vec![
            op(1, 0.0, 5.0, OpResult::Ok, "a"),
            op(2, 3000.0, 4000.0, OpResult::Info, "a"),
        ];
        let h = hist(ops, None);
        assert_eq!(
            check_gap(v(), &h, (2000.0, 2000.0), "f", 1000.0).outcome,
            Outcome::Failed
        );
        let h = hist(vec![op(1, 0.0, 5.0, OpResult::Ok, "a")], None);
        assert_eq!(
            check_gap(v(), &h, (2000.0, 2000.0), "f", 1000.0).outcome,
            Outcome::Inconclusive
        );
    }

    #[test]
    fn late_success_only_counts_from_its_completion() {
        // An op invoked right after the fault that only succeeds 4s later.
        let ops = vec![
            op(1, 0.0, 5.0, OpResult::Ok, "a"),
            op(2, 1001.0, 5000.0, OpResult::Ok, "a"),
        ];
        let mut h = hist(ops, None);
        h.stopped_ms = 5100.0;
        let r = check_gap(v(), &h, (1000.0, 1000.0), "f", 3000.0);
        assert_eq!(r.outcome, Outcome::Failed);
        assert!((r.figures["longestGapMs"] - 4000.0).abs() < 1e-6);
    }

    /// The acknowledgement overlap `singlePrimary` fails on (no role timeline).
    fn split(ops: &[&Op]) -> Option<(f64, f64)> {
        let (t, _) = crate::verdict::roles::ack_tenures(ops, &[]);
        crate::verdict::roles::worst_overlap(&t).map(|(_, _, a, b)| (a, b))
    }

    #[test]
    fn split_brain_needs_real_overlap_not_in_flight_handover() {
        // Clean failover: a's last accepted write was sent before b's first ack, even
        // though a's ack arrived after it.
        let ops = [
            op(1, 0.0, 10.0, OpResult::Ok, "a"),
            op(2, 100.0, 300.0, OpResult::Ok, "a"),
            op(3, 150.0, 200.0, OpResult::Ok, "b"),
            op(4, 400.0, 410.0, OpResult::Ok, "b"),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(split(&refs), None);
        // Both keep accepting writes: split brain, with the window.
        let ops = [
            op(1, 0.0, 10.0, OpResult::Ok, "a"),
            op(2, 100.0, 110.0, OpResult::Ok, "b"),
            op(3, 500.0, 510.0, OpResult::Ok, "a"),
            op(4, 600.0, 610.0, OpResult::Ok, "b"),
            op(5, 700.0, 1700.0, OpResult::Info, "c"),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(split(&refs), Some((110.0, 500.0)));
        let (t, _) = crate::verdict::roles::ack_tenures(&refs, &[]);
        assert_eq!(t.len(), 2, "info ops are not acks");
    }

    #[test]
    fn delivery_is_worded_for_messages() {
        let ops = vec![
            op(1, 0.0, 5.0, OpResult::Ok, "queue"),
            op(2, 10.0, 15.0, OpResult::Ok, "queue"),
        ];
        let h = hist(ops, Some(vec!["w-1".into()]));
        let r = check_delivery(v(), &h);
        assert_eq!(r.outcome, Outcome::Failed);
        assert!(r.reason.contains("never arrived"), "{}", r.reason);
        assert_eq!(r.figures["undelivered"], 1.0);
        assert_eq!(r.measured, "1 of 2 undelivered");
    }

    #[test]
    fn recovery_point_allows_the_last_moments_only() {
        // Writes every 100ms; fault at 5000; the restore lost the last 800ms.
        let ops: Vec<Op> = (0..50u64)
            .map(|i| {
                op(
                    i,
                    i as f64 * 100.0,
                    i as f64 * 100.0 + 5.0,
                    OpResult::Ok,
                    "db",
                )
            })
            .collect();
        let kept: Vec<String> = ops
            .iter()
            .filter(|o| o.complete_ms < 4200.0)
            .map(|o| o.value.clone())
            .collect();
        let h = hist(ops.clone(), Some(kept));
        let r = check_rpo(v(), &h, 5000.0, "wipe", 1000.0);
        assert_eq!(r.outcome, Outcome::Held, "{}", r.reason);
        assert_eq!(r.figures["lost"], 8.0);
        assert!((r.figures["rpoMs"] - 795.0).abs() < 1e-6);
        let r = check_rpo(v(), &h, 5000.0, "wipe", 500.0);
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.lost_writes.len(), 8);
        // Nothing readable after the restore: every write is unavailable, a failure.
        let mut h = hist(ops, Some(vec![]));
        if let Some(f) = h.final_read.as_mut() {
            f.ok = false;
            f.error = Some("connection refused".into());
        }
        let r = check_rpo(v(), &h, 5000.0, "wipe", 1000.0);
        assert_eq!(r.outcome, Outcome::Failed);
        assert!(r.reason.contains("connection refused"));
        // No write before the fault: nothing to check.
        let h = hist(
            vec![op(1, 6000.0, 6001.0, OpResult::Ok, "db")],
            Some(vec![]),
        );
        assert_eq!(
            check_rpo(v(), &h, 5000.0, "wipe", 1000.0).outcome,
            Outcome::Inconclusive
        );
    }

    #[test]
    fn clock_ties_are_not_overlap() {
        let ops = [
            op(1, 0.0, 100.0, OpResult::Ok, "a"),
            op(2, 100.0, 100.0, OpResult::Ok, "b"),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(split(&refs), None);
        let none: Vec<&Op> = Vec::new();
        assert!(crate::verdict::roles::ack_tenures(&none, &[]).0.is_empty());
    }

    fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec((0u32..10_000, 0u32..2000, 0u8..3, 0u8..3), 1..60).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (t, d, r, e))| {
                    let r = match r {
                        0 => OpResult::Ok,
                        1 => OpResult::Fail,
                        _ => OpResult::Info,
                    };
                    op(
                        i as u64,
                        t as f64,
                        (t + d) as f64,
                        r,
                        ["a", "b", "c"][e as usize],
                    )
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn loss_is_exactly_the_acked_writes_missing(ops in arb_ops(), keep in prop::collection::vec(any::<bool>(), 60)) {
            let values: Vec<String> = ops.iter().zip(&keep).filter(|(_, k)| **k).map(|(o, _)| o.value.clone()).collect();
            let h = hist(ops.clone(), Some(values.clone()));
            let r = check_loss(v(), &h);
            let expect: usize = ops.iter().filter(|o| o.result == OpResult::Ok && !values.contains(&o.value)).count();
            let acked = ops.iter().filter(|o| o.result == OpResult::Ok).count();
            if acked == 0 {
                prop_assert_eq!(r.outcome, Outcome::Inconclusive);
            } else {
                prop_assert_eq!(r.lost_writes.len(), expect);
                prop_assert_eq!(r.outcome == Outcome::Held, expect == 0);
                // Never an info or failed write among the lost.
                for w in &r.lost_writes {
                    prop_assert!(ops.iter().any(|o| o.value == w.value && o.result == OpResult::Ok));
                }
            }
        }

        #[test]
        fn one_endpoint_is_never_split_brain(ops in arb_ops()) {
            let ops: Vec<Op> = ops.into_iter().map(|mut o| { o.endpoint = "a".into(); o }).collect();
            let refs: Vec<&Op> = ops.iter().collect();
            prop_assert_eq!(split(&refs), None);
        }

        #[test]
        fn gap_is_at_least_every_gap_between_oks(ops in arb_ops()) {
            let h = hist(ops.clone(), None);
            let r = check_gap(v(), &h, (0.0, 0.0), "f", 1e9);
            if let Some(g) = r.figures.get("longestGapMs") {
                let mut t: Vec<f64> = ops.iter().filter(|o| o.result == OpResult::Ok && o.complete_ms <= 10_000.0).map(|o| o.complete_ms).collect();
                t.sort_by(f64::total_cmp);
                for w in t.windows(2) { prop_assert!(*g >= w[1] - w[0] - 1e-9); }
                prop_assert!(*g <= 10_000.0 + 1e-9);
            }
        }
    }
}
