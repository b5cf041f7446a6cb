//! `singlePrimary` from every source of evidence, and the failover figures read from the
//! role timeline.
//!
//! Two sources say a member was primary: its own word (the role timeline: each member
//! asked through the run, [`crate::record::RoleSample`]) and its deeds (a write it
//! acknowledged: it acted as primary between the write's invocation and its
//! acknowledgement). The claim fails when two members were primary at once by either.
//! It holds only when the role timeline covers every member of the cluster through the
//! whole run; a member that did not answer for a while (a timeout, a partition between
//! Murphy and it) could have been a second primary unseen, so the claim is then
//! inconclusive and names the member and the stretch. Acknowledgements alone can fail
//! the claim but never hold it: a client sees only the nodes it writes to.

use super::{Outcome, Verdict};
use crate::model::spec::{ClaimSpec, SinglePrimaryClaim};
use crate::record::history::{Op, OpResult};
use crate::record::{RoleSample, RoleSeen, RunRecord};
use std::collections::BTreeMap;

/// Clients whose acknowledgement means the node that gave it was primary.
const ACKS_FROM_PRIMARY: [&str; 2] = ["redis", "postgres"];

fn secs(ms: f64) -> String {
    format!("{:.3}s", ms / 1000.0)
}

/// A stretch in which one node was primary, and by what evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenure {
    pub node: String,
    pub from: f64,
    pub to: f64,
    pub by: &'static str,
}

/// The role samples of one cluster: `target`, or the only cluster on the timeline.
pub fn cluster_samples<'a>(
    rec: &'a RunRecord,
    target: Option<&str>,
) -> (Option<String>, Vec<&'a RoleSample>) {
    let mut targets: Vec<&str> = rec.roles.iter().map(|r| r.target.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    let chosen = match target {
        Some(t) => Some(t.to_string()),
        None if targets.len() == 1 => Some(targets[0].to_string()),
        None => None,
    };
    let samples = match &chosen {
        Some(t) => rec.roles.iter().filter(|r| &r.target == t).collect(),
        None => Vec::new(),
    };
    (chosen, samples)
}

/// Each member's stretches as primary by its own word: a run of consecutive `primary`
/// answers, from the first question to the last answer.
pub fn role_tenures(samples: &[&RoleSample]) -> Vec<Tenure> {
    let mut by_member: BTreeMap<&str, Vec<&RoleSample>> = BTreeMap::new();
    for s in samples {
        by_member.entry(s.member.as_str()).or_default().push(s);
    }
    let mut out = Vec::new();
    for (m, mut ss) in by_member {
        ss.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        let mut cur: Option<(f64, f64)> = None;
        for s in ss {
            match (s.role, cur) {
                (RoleSeen::Primary, None) => cur = Some((s.t_ms, s.answered_ms())),
                (RoleSeen::Primary, Some((a, _))) => cur = Some((a, s.answered_ms())),
                (RoleSeen::Unknown, _) => {}
                (_, Some((a, b))) => {
                    out.push(Tenure {
                        node: m.to_string(),
                        from: a,
                        to: b,
                        by: "its own word",
                    });
                    cur = None;
                }
                (_, None) => {}
            }
        }
        if let Some((a, b)) = cur {
            out.push(Tenure {
                node: m.to_string(),
                from: a,
                to: b,
                by: "its own word",
            });
        }
    }
    out
}

/// Each node's stretch of acknowledged writes (from its first acknowledgement to the
/// invocation of the last write it accepted), named by the member at its address when
/// the role timeline knows it.
pub fn ack_tenures(ops: &[&Op], samples: &[&RoleSample]) -> Vec<Tenure> {
    let mut t: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for o in ops
        .iter()
        .filter(|o| o.result == OpResult::Ok && o.is_write())
    {
        let host = o
            .endpoint
            .rsplit_once(':')
            .map_or(o.endpoint.as_str(), |(h, _)| h);
        let node = samples
            .iter()
            .find(|s| !s.address.is_empty() && s.address == host)
            .map_or_else(|| o.endpoint.clone(), |s| s.member.clone());
        let e = t.entry(node).or_insert((f64::INFINITY, f64::NEG_INFINITY));
        e.0 = e.0.min(o.complete_ms);
        e.1 = e.1.max(o.invoke_ms);
    }
    t.into_iter()
        .filter(|(_, (a, b))| b >= a)
        .map(|(node, (from, to))| Tenure {
            node,
            from,
            to,
            by: "acknowledged writes",
        })
        .collect()
}

/// The longest stretch in which two different nodes were both primary.
pub fn worst_overlap(tenures: &[Tenure]) -> Option<(&Tenure, &Tenure, f64, f64)> {
    let mut worst: Option<(&Tenure, &Tenure, f64, f64)> = None;
    for (i, a) in tenures.iter().enumerate() {
        for b in &tenures[i + 1..] {
            if a.node == b.node {
                continue;
            }
            let (from, to) = (a.from.max(b.from), a.to.min(b.to));
            if to > from && worst.is_none_or(|w| to - from > w.3 - w.2) {
                worst = Some((a, b, from, to));
            }
        }
    }
    worst
}

/// Stretches of `[start, end]` in which a member's role was not known: before its first
/// known answer, between two known answers further apart than `gap`, after its last.
pub fn blind_spots(
    samples: &[&RoleSample],
    start: f64,
    end: f64,
) -> Vec<(String, f64, f64, String)> {
    let mut by_member: BTreeMap<&str, Vec<&RoleSample>> = BTreeMap::new();
    for s in samples {
        by_member.entry(s.member.as_str()).or_default().push(s);
    }
    let mut out = Vec::new();
    for (m, mut ss) in by_member {
        ss.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        let mut steps: Vec<f64> = ss.windows(2).map(|w| w[1].t_ms - w[0].t_ms).collect();
        steps.sort_by(f64::total_cmp);
        let step = steps.get(steps.len() / 2).copied().unwrap_or(500.0);
        let gap = (3.0 * step).max(1500.0);
        let known: Vec<&&RoleSample> = ss.iter().filter(|s| s.role != RoleSeen::Unknown).collect();
        let why_between = |a: f64, b: f64| {
            ss.iter()
                .find(|s| s.role == RoleSeen::Unknown && s.t_ms >= a && s.t_ms <= b)
                .map_or_else(|| "no answer".to_string(), |s| s.detail.clone())
        };
        let mut last = start;
        for s in &known {
            if s.t_ms - last > gap {
                out.push((m.to_string(), last, s.t_ms, why_between(last, s.t_ms)));
            }
            last = last.max(s.answered_ms());
        }
        if end - last > gap {
            out.push((m.to_string(), last, end, why_between(last, end)));
        }
    }
    out
}

/// `singlePrimary`: never two primaries at once, judged from the role timeline and every
/// workload's acknowledgements.
pub fn single_primary(claim: &ClaimSpec, s: &SinglePrimaryClaim, rec: &RunRecord) -> Verdict {
    let mut v = super::history::base_verdict(claim, "singlePrimary");
    let mut ops: Vec<&Op> = Vec::new();
    for w in &s.workloads {
        match rec.history(w) {
            // Only a primary acknowledges a Redis or PostgreSQL write; an etcd member
            // forwards writes to its leader, so its acknowledgement says nothing of who
            // leads (and HTTP, nothing at all).
            Some(h) if ACKS_FROM_PRIMARY.contains(&h.client.as_str()) => ops.extend(h.ops.iter()),
            Some(_) => {}
            None => {
                v.reason = format!("workload {w} recorded no history");
                return v;
            }
        }
    }
    let (cluster, samples) = cluster_samples(rec, s.target.as_deref());
    let mut tenures = role_tenures(&samples);
    tenures.extend(ack_tenures(&ops, &samples));
    tenures.sort_by(|a, b| a.from.total_cmp(&b.from));
    let mut members: Vec<&str> = samples.iter().map(|r| r.member.as_str()).collect();
    members.sort_unstable();
    members.dedup();
    v.figures
        .insert("membersOnTimeline".into(), members.len() as f64);
    v.figures.insert("roleSamples".into(), samples.len() as f64);
    let mut nodes: Vec<&str> = tenures.iter().map(|t| t.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    v.figures.insert("primariesSeen".into(), nodes.len() as f64);
    let turns = tenures
        .iter()
        .map(|t| format!("{} {}–{} ({})", t.node, secs(t.from), secs(t.to), t.by))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some((a, b, from, to)) = worst_overlap(&tenures) {
        v.outcome = Outcome::Failed;
        v.figures.insert("overlapMs".into(), to - from);
        v.figures.insert("overlapStartMs".into(), from);
        v.figures.insert("overlapEndMs".into(), to);
        v.measured = format!("2 primaries for {}", secs(to - from));
        v.reason = format!(
            "{} (by {}) and {} (by {}) were both primary from {} to {} (split brain); primaries seen: {turns}",
            a.node,
            a.by,
            b.node,
            b.by,
            secs(from),
            secs(to)
        );
        return v;
    }
    let Some(cluster) = cluster.filter(|_| !samples.is_empty()) else {
        v.reason = match &s.target {
            Some(t) => format!("no role timeline for target {t} (its role probe has `timeline: false`, or it has none), so a second primary that no workload wrote to could not be seen; acknowledgements seen: {}", if turns.is_empty() { "none".into() } else { turns }),
            None => format!("no role timeline names the cluster (set `target` to a target with a role probe), so a second primary that no workload wrote to could not be seen; acknowledgements seen: {}", if turns.is_empty() { "none".into() } else { turns }),
        };
        return v;
    };
    let start = rec.phases.steady_start_ms;
    let end = rec.phases.end_ms;
    let blind = blind_spots(&samples, start, end);
    if !blind.is_empty() {
        let total: f64 = blind.iter().map(|b| b.2 - b.1).sum();
        v.figures.insert("blindMs".into(), total);
        let list = blind
            .iter()
            .take(6)
            .map(|(m, a, b, why)| format!("{m} from {} to {} ({why})", secs(*a), secs(*b)))
            .collect::<Vec<_>>()
            .join("; ");
        let seen: Vec<&str> = members
            .iter()
            .copied()
            .filter(|m| !blind.iter().any(|b| b.0 == *m))
            .collect();
        v.reason = format!(
            "no two primaries were seen, but the role timeline of {cluster} does not cover every member: {list}{}; a second primary there could not be seen (covered all through: {})",
            if blind.len() > 6 { format!(" and {} more", blind.len() - 6) } else { String::new() },
            if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
        );
        return v;
    }
    v.outcome = Outcome::Held;
    v.measured = format!("{} primary(ies), never together", nodes.len());
    v.reason = format!(
        "every member of {cluster} ({}) answered its role all through the run and no two were primary at the same time; primaries in turn: {turns}",
        members.join(", ")
    );
    v
}

/// Time from `start` to the first answer in which a member other than the one(s) primary
/// just before `start` says it is primary: the promotion.
pub fn promotion_ms(rec: &RunRecord, start: f64) -> Option<(f64, String)> {
    let (_, samples) = cluster_samples(rec, None);
    let mut last_before: BTreeMap<&str, RoleSeen> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.answered_ms() <= start) {
        last_before.insert(s.member.as_str(), s.role);
    }
    let old: Vec<&str> = last_before
        .iter()
        .filter(|(_, r)| **r == RoleSeen::Primary)
        .map(|(m, _)| *m)
        .collect();
    if old.is_empty() {
        return None;
    }
    samples
        .iter()
        .filter(|s| {
            s.t_ms >= start && s.role == RoleSeen::Primary && !old.contains(&s.member.as_str())
        })
        .map(|s| (s.answered_ms() - start, s.member.clone()))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::ClaimSpec;
    use crate::record::history::History;
    use crate::record::{Phases, RunStatus};

    fn rs(member: &str, addr: &str, t: f64, role: RoleSeen) -> RoleSample {
        RoleSample {
            target: "db".into(),
            member: member.into(),
            address: addr.into(),
            t_ms: t,
            latency_ms: 2.0,
            role,
            detail: if role == RoleSeen::Unknown {
                "timed out".into()
            } else {
                String::new()
            },
        }
    }

    fn op(inv: f64, done: f64, ep: &str) -> Op {
        Op {
            id: inv as u64,
            value: format!("v{inv}"),
            invoke_ms: inv,
            complete_ms: done,
            result: OpResult::Ok,
            endpoint: ep.into(),
            error: String::new(),
            status: None,
            attempt: 0,
        }
    }

    fn record(roles: Vec<RoleSample>, ops: Vec<Op>) -> RunRecord {
        let mut r = RunRecord::assemble(
            vec![],
            vec![],
            vec![],
            vec![History {
                workload: "w".into(),
                client: "redis".into(),
                ops,
                ..Default::default()
            }],
            vec![],
            Phases {
                steady_start_ms: 0.0,
                faults_start_ms: Some(2000.0),
                faults_end_ms: Some(8000.0),
                end_ms: 10_000.0,
            },
            RunStatus::Completed,
            None,
        );
        r.roles = roles;
        r
    }

    fn claim() -> (ClaimSpec, SinglePrimaryClaim) {
        let s = SinglePrimaryClaim {
            workloads: vec!["w".into()],
            target: None,
        };
        (
            ClaimSpec {
                name: "one primary".into(),
                single_primary: Some(s.clone()),
                ..Default::default()
            },
            s,
        )
    }

    /// Every 500 ms for 10 s: r1 primary until `handover`, r2 primary from `promote`.
    fn timeline(handover: f64, promote: f64, r3: impl Fn(f64) -> RoleSeen) -> Vec<RoleSample> {
        let mut v = Vec::new();
        for i in 0..20 {
            let t = i as f64 * 500.0;
            v.push(rs(
                "r1",
                "10.0.0.1",
                t,
                if t < handover {
                    RoleSeen::Primary
                } else {
                    RoleSeen::Replica
                },
            ));
            v.push(rs(
                "r2",
                "10.0.0.2",
                t + 10.0,
                if t >= promote {
                    RoleSeen::Primary
                } else {
                    RoleSeen::Replica
                },
            ));
            v.push(rs("r3", "10.0.0.3", t + 20.0, r3(t)));
        }
        v
    }

    #[test]
    fn two_members_calling_themselves_primary_fail_with_the_window() {
        let (c, s) = claim();
        let rec = record(
            timeline(6000.0, 3000.0, |_| RoleSeen::Replica),
            vec![op(100.0, 110.0, "10.0.0.1:6379")],
        );
        let v = single_primary(&c, &s, &rec);
        assert_eq!(v.outcome, Outcome::Failed, "{}", v.reason);
        assert!(
            v.reason.contains("r1") && v.reason.contains("r2"),
            "{}",
            v.reason
        );
        let from = v.figures["overlapStartMs"];
        assert!((3000.0..3100.0).contains(&from), "{from}");
        assert!(v.figures["overlapEndMs"] > 5400.0);
    }

    #[test]
    fn a_clean_handover_with_every_member_covered_holds() {
        let (c, s) = claim();
        let rec = record(
            timeline(3000.0, 3500.0, |_| RoleSeen::Replica),
            vec![
                op(100.0, 110.0, "10.0.0.1:6379"),
                op(4000.0, 4010.0, "10.0.0.2:6379"),
            ],
        );
        let v = single_primary(&c, &s, &rec);
        assert_eq!(v.outcome, Outcome::Held, "{}", v.reason);
    }

    #[test]
    fn a_member_the_timeline_cannot_see_makes_it_inconclusive_never_held() {
        let (c, s) = claim();
        let rec = record(
            timeline(3000.0, 3500.0, |t| {
                if (3000.0..7000.0).contains(&t) {
                    RoleSeen::Unknown
                } else {
                    RoleSeen::Replica
                }
            }),
            vec![op(100.0, 110.0, "10.0.0.1:6379")],
        );
        let v = single_primary(&c, &s, &rec);
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        assert!(
            v.reason.contains("r3") && v.reason.contains("timed out"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn acknowledgements_alone_fail_but_never_hold() {
        let (c, s) = claim();
        let only_one = record(
            vec![],
            vec![
                op(100.0, 110.0, "10.0.0.1:6379"),
                op(5000.0, 5010.0, "10.0.0.1:6379"),
            ],
        );
        let v = single_primary(&c, &s, &only_one);
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        let two = record(
            vec![],
            vec![
                op(100.0, 110.0, "10.0.0.1:6379"),
                op(200.0, 210.0, "10.0.0.2:6379"),
                op(4000.0, 4010.0, "10.0.0.2:6379"),
                op(5000.0, 5010.0, "10.0.0.1:6379"),
            ],
        );
        assert_eq!(single_primary(&c, &s, &two).outcome, Outcome::Failed);
    }

    #[test]
    fn a_write_acknowledged_by_a_member_that_says_replica_elsewhere_is_a_second_primary() {
        // r3 answers "replica" but a client on its side had writes acknowledged by it
        // while r1 was primary: deeds count as much as words.
        let (c, s) = claim();
        let rec = record(
            timeline(20_000.0, 20_000.0, |_| RoleSeen::Replica),
            vec![
                op(4000.0, 4010.0, "10.0.0.3:6379"),
                op(6000.0, 6010.0, "10.0.0.3:6379"),
            ],
        );
        let v = single_primary(&c, &s, &rec);
        assert_eq!(v.outcome, Outcome::Failed, "{}", v.reason);
        assert!(v.reason.contains("acknowledged writes"), "{}", v.reason);
    }

    #[test]
    fn an_etcd_member_acknowledging_a_write_is_not_a_primary() {
        // etcd followers forward writes to the leader: acknowledgements from two members
        // at once are normal and say nothing about leadership.
        let (c, s) = claim();
        let mut rec = record(
            timeline(3000.0, 3500.0, |_| RoleSeen::Replica),
            vec![
                op(4000.0, 4010.0, "10.0.0.1:2379"),
                op(4100.0, 4110.0, "10.0.0.3:2379"),
                op(6000.0, 6010.0, "10.0.0.1:2379"),
            ],
        );
        rec.histories[0].client = "etcd".into();
        let v = single_primary(&c, &s, &rec);
        assert_eq!(v.outcome, Outcome::Held, "{}", v.reason);
        rec.histories[0].client = "redis".into();
        assert_eq!(single_primary(&c, &s, &rec).outcome, Outcome::Failed);
    }

    #[test]
    fn promotion_is_the_first_new_primary_after_the_fault() {
        let rec = record(timeline(6000.0, 3000.0, |_| RoleSeen::Replica), vec![]);
        let (ms, who) = promotion_ms(&rec, 2000.0).expect("promoted");
        assert_eq!(who, "r2");
        assert!((ms - 1012.0).abs() < 1e-6, "{ms}");
    }
}
