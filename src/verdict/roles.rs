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
use crate::record::{RoleMember, RoleSample, RoleSeen, RunRecord};
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
/// invocation of the last write it accepted), named by the member that has the address it
/// was sent to. With a known cluster, acknowledgements from an address no member has (a
/// proxy, a virtual IP) are returned apart: they cannot be put on any member.
pub fn ack_tenures(ops: &[&Op], members: &[RoleMember]) -> (Vec<Tenure>, BTreeMap<String, usize>) {
    let mut t: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut elsewhere: BTreeMap<String, usize> = BTreeMap::new();
    for o in ops
        .iter()
        .filter(|o| o.result == OpResult::Ok && o.is_write())
    {
        let host = o
            .endpoint
            .rsplit_once(':')
            .map_or(o.endpoint.as_str(), |(h, _)| h);
        let node = match members
            .iter()
            .find(|m| m.addresses.iter().any(|a| a == host))
        {
            Some(m) => m.label.clone(),
            None if !members.is_empty() => {
                *elsewhere.entry(o.endpoint.clone()).or_default() += 1;
                continue;
            }
            None => o.endpoint.clone(),
        };
        let e = t.entry(node).or_insert((f64::INFINITY, f64::NEG_INFINITY));
        e.0 = e.0.min(o.complete_ms);
        e.1 = e.1.max(o.invoke_ms);
    }
    let tenures = t
        .into_iter()
        .filter(|(_, (a, b))| b >= a)
        .map(|(node, (from, to))| Tenure {
            node,
            from,
            to,
            by: "acknowledged writes",
        })
        .collect();
    (tenures, elsewhere)
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
/// known answer, after its last, and between two known answers further apart than three
/// intervals — or than one, when a question in between went unanswered (a timeout, a
/// partition between Murphy and the member). A member that never answered is blind
/// throughout.
pub fn blind_spots(
    samples: &[&RoleSample],
    members: &[&str],
    interval: f64,
    (start, end): (f64, f64),
) -> Vec<(String, f64, f64, String)> {
    let mut out = Vec::new();
    for m in members {
        let mut ss: Vec<&&RoleSample> = samples.iter().filter(|s| s.member == *m).collect();
        ss.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        let why_between = |a: f64, b: f64| {
            ss.iter()
                .find(|s| s.role == RoleSeen::Unknown && s.t_ms >= a && s.t_ms <= b)
                .map(|s| s.detail.clone())
        };
        let mut last = start;
        let mut first = true;
        for s in ss.iter().filter(|s| s.role != RoleSeen::Unknown) {
            let unanswered = why_between(last, s.t_ms);
            // Scheduling jitter is allowed for; an unanswered question is not.
            let allowed = if first || unanswered.is_some() {
                2.0 * interval
            } else {
                3.0 * interval + 250.0
            };
            if s.t_ms - last > allowed {
                let why = unanswered.unwrap_or_else(|| "no answer".into());
                out.push((m.to_string(), last, s.t_ms.min(end), why));
            }
            last = last.max(s.answered_ms());
            first = false;
        }
        if end - last > 2.0 * interval || first {
            let why = why_between(last, end).unwrap_or_else(|| {
                if first {
                    "never answered".into()
                } else {
                    "no answer".into()
                }
            });
            out.push((m.to_string(), last, end, why));
        }
    }
    out
}

/// `singlePrimary`: never two primaries at once, judged from the role timeline and every
/// Redis or PostgreSQL workload's acknowledgements.
pub fn single_primary(claim: &ClaimSpec, s: &SinglePrimaryClaim, rec: &RunRecord) -> Verdict {
    let mut v = super::no_verdict(claim, "singlePrimary", String::new());
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
    let known = cluster
        .as_deref()
        .and_then(|c| rec.role_clusters.iter().find(|k| k.target == c));
    // Every member that was to be asked; without the cluster's list, the ones that answered.
    let members: Vec<RoleMember> = match known {
        Some(k) => k.members.clone(),
        None => {
            let mut seen: Vec<RoleMember> = Vec::new();
            for r in &samples {
                if !seen.iter().any(|m| m.label == r.member) {
                    seen.push(RoleMember {
                        label: r.member.clone(),
                        addresses: vec![r.address.clone()],
                    });
                }
            }
            seen
        }
    };
    let mut tenures = role_tenures(&samples);
    let (acks, elsewhere) = ack_tenures(&ops, &members);
    tenures.extend(acks);
    tenures.sort_by(|a, b| a.from.total_cmp(&b.from));
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
    let apart = if elsewhere.is_empty() {
        String::new()
    } else {
        format!(
            "; acknowledgements from addresses no member has, not counted: {}",
            elsewhere
                .iter()
                .map(|(e, n)| format!("{e} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if let Some((a, b, from, to)) = worst_overlap(&tenures) {
        v.outcome = Outcome::Failed;
        v.figures.insert("overlapMs".into(), to - from);
        v.figures.insert("overlapStartMs".into(), from);
        v.figures.insert("overlapEndMs".into(), to);
        v.measured = format!("2 primaries for {}", secs(to - from));
        v.reason = format!(
            "{} (by {}) and {} (by {}) were both primary from {} to {} (split brain); primaries seen: {turns}{apart}",
            a.node,
            a.by,
            b.node,
            b.by,
            secs(from),
            secs(to)
        );
        return v;
    }
    let seen = if turns.is_empty() {
        "none".to_string()
    } else {
        turns.clone()
    };
    let Some(cluster) = cluster.filter(|_| !members.is_empty()) else {
        v.reason = match &s.target {
            Some(t) => format!("no role timeline for target {t} (its role probe has `timeline: false`, or it has none), so a second primary that no workload wrote to could not be seen; acknowledgements seen: {seen}{apart}"),
            None => format!("no role timeline names the cluster (set `target` to a target with a role probe), so a second primary that no workload wrote to could not be seen; acknowledgements seen: {seen}{apart}"),
        };
        return v;
    };
    let interval = known
        .map_or_else(|| median_step(&samples), |k| k.interval_ms)
        .max(1.0);
    let start = rec.phases.steady_start_ms;
    // Up to when the asking stopped: the samplers stop together at the end, and one still
    // waiting on a slow member must not leave the others "unseen".
    let last_asked = samples.iter().map(|r| r.t_ms).fold(start, f64::max);
    let end = rec
        .phases
        .end_ms
        .min(known.map_or(last_asked, |k| k.stopped_ms.max(start)));
    let labels: Vec<&str> = members.iter().map(|m| m.label.as_str()).collect();
    let blind = blind_spots(&samples, &labels, interval, (start, end));
    if !blind.is_empty() {
        let total: f64 = blind.iter().map(|b| b.2 - b.1).sum();
        v.figures.insert("blindMs".into(), total);
        let list = blind
            .iter()
            .take(6)
            .map(|(m, a, b, why)| format!("{m} from {} to {} ({why})", secs(*a), secs(*b)))
            .collect::<Vec<_>>()
            .join("; ");
        let covered: Vec<&str> = labels
            .iter()
            .copied()
            .filter(|m| !blind.iter().any(|b| b.0 == *m))
            .collect();
        v.reason = format!(
            "no two primaries were seen, but the role timeline of {cluster} does not cover every member: {list}{}; a second primary there could not be seen (covered all through: {}){apart}",
            if blind.len() > 6 { format!(" and {} more", blind.len() - 6) } else { String::new() },
            if covered.is_empty() { "none".to_string() } else { covered.join(", ") }
        );
        return v;
    }
    v.outcome = Outcome::Held;
    v.measured = format!("{} primary(ies), never together", nodes.len());
    v.reason = format!(
        "every member of {cluster} ({}) answered its role every {} all through the run and no two were primary at the same time (a second primary for less than that could slip between two questions); primaries in turn: {seen}{apart}",
        labels.join(", "),
        secs(interval)
    );
    v
}

fn median_step(samples: &[&RoleSample]) -> f64 {
    let mut by_member: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for s in samples {
        by_member.entry(s.member.as_str()).or_default().push(s.t_ms);
    }
    let mut steps: Vec<f64> = by_member
        .values_mut()
        .flat_map(|ts| {
            ts.sort_by(f64::total_cmp);
            ts.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
        })
        .collect();
    steps.sort_by(f64::total_cmp);
    steps.get(steps.len() / 2).copied().unwrap_or(500.0)
}

/// Time from `start` to the first answer in which a member other than the one(s) primary
/// just before `start` (by their last known answer) says it is primary: the promotion.
/// The cluster is `target` when it is on the role timeline, else the only one there.
pub fn promotion_ms(rec: &RunRecord, target: Option<&str>, start: f64) -> Option<(f64, String)> {
    let on_timeline = target.filter(|t| rec.roles.iter().any(|r| r.target == *t));
    let (_, samples) = cluster_samples(rec, on_timeline);
    let mut last_before: BTreeMap<&str, RoleSeen> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.answered_ms() <= start && s.role != RoleSeen::Unknown)
    {
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
    fn a_member_that_never_answered_is_not_covered() {
        // r4 was to be asked (its sampler never ran): the others' answers cannot hold.
        let (c, s) = claim();
        let mut rec = record(timeline(3000.0, 3500.0, |_| RoleSeen::Replica), vec![]);
        rec.role_clusters = vec![crate::record::RoleCluster {
            target: "db".into(),
            members: ["r1", "r2", "r3", "r4"]
                .iter()
                .enumerate()
                .map(|(i, m)| RoleMember {
                    label: m.to_string(),
                    addresses: vec![format!("10.0.0.{}", i + 1)],
                })
                .collect(),
            interval_ms: 500.0,
            started_ms: 0.0,
            stopped_ms: 9600.0,
        }];
        let v = single_primary(&c, &s, &rec);
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        assert!(
            v.reason.contains("r4") && v.reason.contains("never answered"),
            "{}",
            v.reason
        );
        // An acknowledgement through an address no member has is reported, not counted.
        rec.role_clusters[0].members.pop();
        rec.histories[0].ops = vec![
            op(4000.0, 4010.0, "10.0.0.99:6379"),
            op(6000.0, 6010.0, "10.0.0.99:6379"),
        ];
        let v = single_primary(&c, &s, &rec);
        assert_eq!(v.outcome, Outcome::Held, "{}", v.reason);
        assert!(v.reason.contains("10.0.0.99:6379 (2)"), "{}", v.reason);
    }

    #[test]
    fn one_unanswered_question_longer_than_two_intervals_is_a_blind_spot() {
        let (c, s) = claim();
        // r3's question at 5000 ms timed out after 2 s; its next answer came at 7000 ms.
        let mut roles: Vec<RoleSample> = timeline(3000.0, 3500.0, |_| RoleSeen::Replica)
            .into_iter()
            .filter(|r| !(r.member == "r3" && (5000.0..7000.0).contains(&r.t_ms)))
            .collect();
        let mut slow = rs("r3", "10.0.0.3", 5020.0, RoleSeen::Unknown);
        slow.latency_ms = 2000.0;
        roles.push(slow);
        let v = single_primary(&c, &s, &record(roles, vec![]));
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        assert!(v.reason.contains("r3 from"), "{}", v.reason);
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
        let (ms, who) = promotion_ms(&rec, None, 2000.0).expect("promoted");
        assert_eq!(who, "r2");
        assert!((ms - 1012.0).abs() < 1e-6, "{ms}");
    }
}
