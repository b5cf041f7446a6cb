//! Claims on load: error rate and latency of a workload in a window, flapping of a
//! balancer's backends (or of a probe), and how evenly instances share the load. Pure
//! functions of the finished run record; no data is never a pass.

use crate::model::spec::{
    CapacityShareClaim, ClaimSpec, ErrorRateClaim, LatencyClaim, NoFlappingClaim,
};
use crate::record::history::{History, Op, OpResult};
use crate::record::watch::WatchSample;
use crate::record::RunRecord;
use crate::verdict::{
    no_verdict, percentile, span_or_verdict, verdict, window_name, Outcome, Verdict,
};
use std::collections::BTreeMap;

/// Operations judged in a window by the rule probe samples follow
/// ([`crate::verdict::Windowed`]): started inside, and answered by its end unless they
/// failed.
fn ops_in(h: &History, span: (f64, f64)) -> Vec<&Op> {
    h.ops
        .iter()
        .filter(|o| o.invoke_ms >= span.0 && o.invoke_ms <= span.1)
        .filter(|o| o.complete_ms <= span.1 || o.result != crate::record::history::OpResult::Ok)
        .collect()
}

/// Count of each HTTP status (and `none` for no answer) among `ops`.
pub fn status_counts(ops: &[&Op]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in ops {
        let k = o
            .status
            .map_or_else(|| "no answer".to_string(), |s| s.to_string());
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

pub fn error_rate(claim: &ClaimSpec, e: &ErrorRateClaim, rec: &RunRecord) -> Verdict {
    let kind = "errorRate";
    let wname = window_name(e.window, e.fault.as_deref());
    let inconclusive = |why: String| no_verdict(claim, kind, why);
    let span = match span_or_verdict(claim, kind, rec, e.window, e.fault.as_deref()) {
        Ok(s) => s,
        Err(v) => return *v,
    };
    let Some(h) = rec.history(&e.workload) else {
        return inconclusive(format!("workload {:?} recorded no history", e.workload));
    };
    let ops = ops_in(h, span);
    if ops.is_empty() {
        return inconclusive(format!(
            "workload {:?} made no operations {wname}",
            e.workload
        ));
    }
    let failed = ops.iter().filter(|o| o.result == OpResult::Fail).count();
    let unknown = ops.iter().filter(|o| o.result == OpResult::Info).count();
    let bad = failed + unknown;
    let rate = bad as f64 / ops.len() as f64;
    // HTTP answers only: other clients have no status codes.
    let codes = if ops.iter().any(|o| o.status.is_some()) {
        status_counts(&ops)
    } else {
        BTreeMap::new()
    };
    let mut figures = BTreeMap::from([
        ("errorRate".to_string(), rate),
        ("bound".to_string(), e.at_most.ratio()),
        ("operations".to_string(), ops.len() as f64),
        ("failed".to_string(), failed as f64),
        ("unknown".to_string(), unknown as f64),
    ]);
    for (k, n) in &codes {
        figures.insert(format!("status {k}"), *n as f64);
    }
    let measured = format!("{:.2}% ({bad}/{})", rate * 100.0, ops.len());
    let mix = if codes.is_empty() {
        String::new()
    } else {
        format!(
            "; answers {}",
            codes
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let first_err = ops
        .iter()
        .find(|o| o.result != OpResult::Ok)
        .map(|o| format!("; first error: {}", o.error))
        .unwrap_or_default();
    let (outcome, verb) = if rate <= e.at_most.ratio() {
        (Outcome::Held, "at or under")
    } else {
        (Outcome::Failed, "over")
    };
    verdict(
        claim,
        kind,
        outcome,
        measured,
        format!(
            "{bad} of {} operations of {:?} failed or got no answer {wname} ({:.2}%, {verb} the {} bound{mix}){first_err}.",
            ops.len(),
            e.workload,
            rate * 100.0,
            e.at_most
        ),
        figures,
    )
}

/// Latency of a workload's operations, each measured from its scheduled start.
pub fn workload_latency(claim: &ClaimSpec, l: &LatencyClaim, rec: &RunRecord) -> Verdict {
    let kind = "latency";
    let name = l.workload.clone().unwrap_or_default();
    let wname = window_name(l.window, l.fault.as_deref());
    let inconclusive = |why: String| no_verdict(claim, kind, why);
    let span = match span_or_verdict(claim, kind, rec, l.window, l.fault.as_deref()) {
        Ok(s) => s,
        Err(v) => return *v,
    };
    let Some(h) = rec.history(&name) else {
        return inconclusive(format!("workload {name:?} recorded no history"));
    };
    let ops = ops_in(h, span);
    // Saturated operations never started; they count in the error rate, not here.
    let mut lat: Vec<f64> = ops
        .iter()
        .filter(|o| o.complete_ms > o.invoke_ms || o.result == OpResult::Ok)
        .map(|o| o.complete_ms - o.invoke_ms)
        .collect();
    lat.sort_by(f64::total_cmp);
    let Some(p) = percentile(&lat, l.percentile.0) else {
        return inconclusive(format!("workload {name:?} made no operations {wname}"));
    };
    let bound = l.below.as_millis_f64();
    let hdr = crate::record::history::LatencySummary::of(&lat);
    let mut figures = BTreeMap::from([
        ("percentileMs".to_string(), p),
        ("boundMs".to_string(), bound),
        ("operations".to_string(), lat.len() as f64),
    ]);
    if let Some(s) = &hdr {
        figures.insert("p50Ms".into(), s.p50_ms);
        figures.insert("p99Ms".into(), s.p99_ms);
        figures.insert("maxMs".into(), s.max_ms);
    }
    let timed_out = ops.iter().filter(|o| o.result == OpResult::Info).count();
    let note = if timed_out > 0 {
        format!(" ({timed_out} timed out, counted at their timeout)")
    } else {
        String::new()
    };
    let (outcome, verb) = if p < bound {
        (Outcome::Held, "under")
    } else {
        (Outcome::Failed, "not under")
    };
    verdict(
        claim,
        kind,
        outcome,
        format!("p{} = {p:.1}ms", l.percentile.0),
        format!(
            "p{} latency of workload {name:?}, from each operation's scheduled start, was {p:.1}ms {wname}, {verb} {}{note}.",
            l.percentile.0, l.below
        ),
        figures,
    )
}

/// One status change of one server (or probe).
#[derive(Clone, Debug, PartialEq)]
pub struct Flip {
    pub t_ms: f64,
    pub who: String,
    pub from: String,
    pub to: String,
}

fn updown(status: &str) -> Option<&'static str> {
    match status {
        "UP" | "NOLB" | "DRAIN" => Some("UP"),
        "DOWN" | "MAINT" | "NOLB/DOWN" => Some("DOWN"),
        _ => None,
    }
}

/// Status changes (UP ↔ DOWN) of the servers of `backend` in samples of `watch`.
pub fn server_flips(
    samples: &[WatchSample],
    watch: &str,
    backend: &str,
    servers: &[String],
) -> Vec<Flip> {
    let mut last: BTreeMap<&str, &'static str> = BTreeMap::new();
    let mut flips = Vec::new();
    for s in samples.iter().filter(|s| {
        s.watch == watch
            && s.proxy == backend
            && s.server != "BACKEND"
            && s.server != "FRONTEND"
            && (servers.is_empty() || servers.contains(&s.server))
    }) {
        let Some(now) = updown(&s.status) else {
            continue;
        };
        if let Some(prev) = last.insert(&s.server, now) {
            if prev != now {
                flips.push(Flip {
                    t_ms: s.t_ms,
                    who: s.server.clone(),
                    from: prev.into(),
                    to: now.into(),
                });
            }
        }
    }
    flips
}

pub fn no_flapping(claim: &ClaimSpec, n: &NoFlappingClaim, rec: &RunRecord) -> Verdict {
    let kind = "noFlapping";
    let wname = window_name(n.window, n.fault.as_deref());
    let inconclusive = |why: String| no_verdict(claim, kind, why);
    let span = match span_or_verdict(claim, kind, rec, n.window, n.fault.as_deref()) {
        Ok(s) => s,
        Err(v) => return *v,
    };
    let (subject, flips, seen) = if let Some(w) = &n.watch {
        let backend = n.backend.clone().unwrap_or_default();
        let seen = rec
            .watch_samples
            .iter()
            .filter(|s| &s.watch == w && s.proxy == backend && s.t_ms >= span.0 && s.t_ms < span.1)
            .count();
        (
            format!("servers of backend {backend:?} on {w:?}"),
            server_flips(&rec.watch_samples, w, &backend, &n.servers),
            seen,
        )
    } else {
        let p = n.probe.clone().unwrap_or_default();
        let mut prev: Option<bool> = None;
        let mut flips = Vec::new();
        // The samples the window rule counts (a sample answered after the window is not
        // seen in it); flips are read from every sample, then kept inside the window.
        let seen = crate::verdict::in_window(rec, &p, span).counted.len();
        for s in rec.samples_of(&p) {
            if let Some(was) = prev {
                if was != s.ok {
                    let word = |b: bool| if b { "healthy" } else { "failing" };
                    flips.push(Flip {
                        t_ms: s.t_ms,
                        who: p.clone(),
                        from: word(was).into(),
                        to: word(s.ok).into(),
                    });
                }
            }
            prev = Some(s.ok);
        }
        (format!("probe {p:?}"), flips, seen)
    };
    if seen == 0 {
        return inconclusive(format!("no samples of the {subject} {wname}"));
    }
    let flips: Vec<Flip> = flips
        .into_iter()
        .filter(|f| f.t_ms >= span.0 && f.t_ms < span.1)
        .collect();
    let count = flips.len();
    let list = flips
        .iter()
        .take(8)
        .map(|f| format!("{} {}→{} at {:.1}s", f.who, f.from, f.to, f.t_ms / 1000.0))
        .collect::<Vec<_>>()
        .join(", ");
    let more = if count > 8 {
        format!(" and {} more", count - 8)
    } else {
        String::new()
    };
    let figures = BTreeMap::from([
        ("changes".to_string(), count as f64),
        ("bound".to_string(), n.at_most as f64),
        ("samples".to_string(), seen as f64),
    ]);
    let outcome = if count as u32 <= n.at_most {
        Outcome::Held
    } else {
        Outcome::Failed
    };
    let detail = if count == 0 {
        "no status changes".to_string()
    } else {
        format!("{count} status change(s): {list}{more}")
    };
    verdict(
        claim,
        kind,
        outcome,
        format!("{count} change(s)"),
        format!(
            "The {subject} showed {detail} {wname} (at most {} allowed).",
            n.at_most
        ),
        figures,
    )
}

/// Sessions each instance served within `span`: the counter's growth between the first
/// and last sample inside it.
pub fn served_in(
    samples: &[WatchSample],
    watches: &[String],
    proxy: &str,
    span: (f64, f64),
) -> BTreeMap<String, u64> {
    let mut first: BTreeMap<String, u64> = BTreeMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for s in samples.iter().filter(|s| {
        watches.contains(&s.watch)
            && s.proxy == proxy
            && s.server != "BACKEND"
            && s.t_ms >= span.0
            && s.t_ms <= span.1
    }) {
        let key = if s.server == "FRONTEND" {
            s.watch.clone()
        } else if watches.len() > 1 {
            format!("{}/{}", s.watch, s.server)
        } else {
            s.server.clone()
        };
        first.entry(key.clone()).or_insert(s.total);
        last.insert(key, s.total);
    }
    last.into_iter()
        .map(|(k, v)| {
            let f = first.get(&k).copied().unwrap_or(v);
            (k, v.saturating_sub(f))
        })
        .collect()
}

pub fn capacity_share(claim: &ClaimSpec, c: &CapacityShareClaim, rec: &RunRecord) -> Verdict {
    let kind = "capacityShare";
    let wname = window_name(c.window, c.fault.as_deref());
    let inconclusive = |why: String| no_verdict(claim, kind, why);
    let span = match span_or_verdict(claim, kind, rec, c.window, c.fault.as_deref()) {
        Ok(s) => s,
        Err(v) => return *v,
    };
    let served = served_in(&rec.watch_samples, &c.watches, &c.proxy, span);
    let total: u64 = served.values().sum();
    if total == 0 || served.len() < 2 {
        return inconclusive(format!(
            "{:?} on {} served {total} session(s) across {} instance(s) {wname}: nothing to compare",
            c.proxy,
            c.watches.join(", "),
            served.len()
        ));
    }
    let mut shares: Vec<(String, f64)> = served
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64 / total as f64))
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (top, top_share) = shares[0].clone();
    let mut figures: BTreeMap<String, f64> = shares
        .iter()
        .map(|(k, v)| (format!("share {k}"), *v))
        .collect();
    figures.insert("maxShare".into(), top_share);
    figures.insert("bound".into(), c.at_most.ratio());
    figures.insert("sessions".into(), total as f64);
    let list = shares
        .iter()
        .map(|(k, v)| format!("{k} {:.1}%", v * 100.0))
        .collect::<Vec<_>>()
        .join(", ");
    let (outcome, verb) = if top_share <= c.at_most.ratio() {
        (Outcome::Held, "at or under")
    } else {
        (Outcome::Failed, "over")
    };
    verdict(
        claim,
        kind,
        outcome,
        format!("max {:.1}% ({top})", top_share * 100.0),
        format!(
            "Of {total} sessions {wname}, {list}: the largest share, {top}'s, is {verb} the {} bound.",
            c.at_most
        ),
        figures,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::Window;

    fn ws(t: f64, server: &str, status: &str, total: u64) -> WatchSample {
        WatchSample {
            watch: "lb".into(),
            t_ms: t,
            proxy: "app".into(),
            server: server.into(),
            status: status.into(),
            total,
            current: 0,
        }
    }

    #[test]
    fn flips_count_up_down_changes_per_server() {
        let s = vec![
            ws(0.0, "a", "UP", 0),
            ws(0.0, "b", "UP", 0),
            ws(250.0, "a", "DOWN", 0),
            ws(250.0, "b", "no", 0),
            ws(500.0, "a", "UP", 0),
            ws(500.0, "b", "UP", 0),
        ];
        let f = server_flips(&s, "lb", "app", &[]);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].who.as_str(), f[0].to.as_str()), ("a", "DOWN"));
        assert!(server_flips(&s, "lb", "app", &["b".into()]).is_empty());
    }

    fn record(ops: Vec<Op>) -> RunRecord {
        use crate::record::{FaultRecord, Phases, RunStatus};
        RunRecord {
            samples: vec![],
            events: vec![],
            faults: vec![FaultRecord {
                name: "f".into(),
                kind: "storage-stall".into(),
                target: "t".into(),
                injected_ms: Some(1000.0),
                reverted_ms: Some(2000.0),
                confirmed: true,
                ..Default::default()
            }],
            histories: vec![History {
                workload: "w".into(),
                client: "http".into(),
                ops,
                ..Default::default()
            }],
            watch_samples: vec![],
            phases: Phases {
                steady_start_ms: 0.0,
                faults_start_ms: Some(1000.0),
                faults_end_ms: Some(2000.0),
                end_ms: 3000.0,
            },
            status: RunStatus::Completed,
            status_reason: None,
            left_behind: vec![],
            roles: vec![],
            role_clusters: vec![],
            prometheus: vec![],
        }
    }

    fn op(t: f64, ok: bool, status: Option<u16>) -> Op {
        Op {
            id: t as u64,
            value: String::new(),
            invoke_ms: t,
            complete_ms: t + 5.0,
            result: if ok { OpResult::Ok } else { OpResult::Fail },
            endpoint: "a:1".into(),
            error: if ok { String::new() } else { "HTTP 503".into() },
            status,
            attempt: 0,
        }
    }

    fn claim(e: ErrorRateClaim) -> (ClaimSpec, ErrorRateClaim) {
        (
            ClaimSpec {
                name: "c".into(),
                error_rate: Some(e.clone()),
                ..Default::default()
            },
            e,
        )
    }

    #[test]
    fn error_rate_counts_only_the_window_and_never_holds_without_data() {
        let (c, e) = claim(ErrorRateClaim {
            workload: "w".into(),
            at_most: crate::model::Percent(10.0),
            window: Window::During,
            fault: None,
        });
        // 10 ops during the fault, 1 failed; failures outside the window do not count.
        let mut ops: Vec<Op> = (0..10)
            .map(|i| {
                op(
                    1000.0 + i as f64 * 90.0,
                    i != 3,
                    Some(if i == 3 { 503 } else { 200 }),
                )
            })
            .collect();
        ops.push(op(500.0, false, Some(503)));
        ops.push(op(2500.0, false, Some(503)));
        let v = error_rate(&c, &e, &record(ops.clone()));
        assert_eq!(v.outcome, Outcome::Held, "{}", v.reason);
        assert_eq!(v.figures["errorRate"], 0.1);
        assert_eq!(v.figures["status 503"], 1.0);
        ops[4].result = OpResult::Info;
        let v = error_rate(&c, &e, &record(ops));
        assert_eq!(v.outcome, Outcome::Failed, "{}", v.reason);
        let v = error_rate(&c, &e, &record(vec![op(500.0, true, None)]));
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
    }

    #[test]
    fn no_flapping_and_capacity_share_need_samples_in_the_window() {
        let c = ClaimSpec {
            name: "c".into(),
            ..Default::default()
        };
        let n = NoFlappingClaim {
            watch: Some("lb".into()),
            backend: Some("app".into()),
            at_most: 0,
            ..Default::default()
        };
        let mut rec = record(vec![]);
        assert_eq!(no_flapping(&c, &n, &rec).outcome, Outcome::Inconclusive);
        rec.watch_samples = vec![
            ws(1100.0, "a", "UP", 10),
            ws(1100.0, "b", "UP", 10),
            ws(1500.0, "a", "DOWN", 12),
            ws(1500.0, "b", "UP", 40),
        ];
        let v = no_flapping(&c, &n, &rec);
        assert_eq!(v.outcome, Outcome::Failed, "{}", v.reason);
        assert!(v.reason.contains("a UP→DOWN at 1.5s"), "{}", v.reason);
        let s = CapacityShareClaim {
            watches: vec!["lb".into()],
            proxy: "app".into(),
            at_most: crate::model::Percent(60.0),
            window: Window::During,
            fault: None,
        };
        let v = capacity_share(&c, &s, &rec);
        assert_eq!(v.outcome, Outcome::Failed, "{}", v.reason);
        assert!((v.figures["share b"] - 30.0 / 32.0).abs() < 1e-9);
    }

    #[test]
    fn shares_come_from_counter_growth_in_the_window() {
        let s = vec![
            ws(0.0, "a", "UP", 100),
            ws(0.0, "b", "UP", 50),
            ws(1000.0, "a", "UP", 190),
            ws(1000.0, "b", "UP", 80),
            ws(5000.0, "a", "UP", 900),
        ];
        let m = served_in(&s, &["lb".into()], "app", (0.0, 1000.0));
        assert_eq!(m.get("a"), Some(&90));
        assert_eq!(m.get("b"), Some(&30));
    }
}
