//! The status the controller writes: a phase, conditions that follow Kubernetes
//! conventions (so `kubectl wait --for=condition=Finished experiment/NAME` works), an
//! overall verdict and per-claim verdicts with their key figure — bounded, because long
//! evidence (timelines, lost writes) belongs in a ConfigMap the status names.
//!
//! Pure functions only: the controller feeds them what it observed.

use murphy::claims::{Outcome, Verdict};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most claims listed in the status; the rest are counted and in the evidence ConfigMap.
pub const MAX_CLAIMS: usize = 32;
/// Longest `measured` or `reason` text kept in the status.
pub const MAX_TEXT: usize = 256;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
pub enum Phase {
    /// Accepted, waiting for targets and agents.
    #[default]
    Pending,
    /// Faults are scheduled or active; probes and workloads record.
    Running,
    /// Every fault is being reverted (end of the fault phase, deletion, abort).
    Reverting,
    /// Everything reverted and the claims evaluated.
    Completed,
    /// Stopped early (guardrail, `murphy.dev/abort` annotation, invalid spec) and reverted.
    Aborted,
}

/// What happened, as the controller saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Targets resolved and every agent reachable.
    Started,
    /// Every fault's window has ended.
    FaultPhaseOver,
    /// Every injection is confirmed reverted by its agent (or its lease expired).
    AllReverted,
    /// A guardrail, an abort request or an error: revert and stop.
    Abort(String),
}

/// The next phase. Terminal phases stay; an abort always goes through Reverting.
pub fn next_phase(current: Phase, event: &Event, aborting: bool) -> Phase {
    use Phase::*;
    match (current, event) {
        (Completed | Aborted, _) => current,
        (Pending, Event::Abort(_)) => Aborted,
        (_, Event::Abort(_)) => Reverting,
        (Pending, Event::Started) => Running,
        (Running, Event::FaultPhaseOver) => Reverting,
        (Reverting, Event::AllReverted) if aborting => Aborted,
        (Reverting, Event::AllReverted) => Completed,
        (p, _) => p,
    }
}

/// A condition in the Kubernetes convention.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Finished`, `Running`, `Completed`, `Aborted` or `Held`.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    /// Why the condition has its status, in one CamelCase word: `Accepted` for `Ready`, the
    /// phase for `Running`, `Completed` and `Aborted`, and the verdict (or `Pending`) for
    /// `Held`.
    pub reason: String,
    /// The controller's latest note on the run (why it started, stopped or aborted), the
    /// same on every condition; cut short past 256 bytes.
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: String,
    /// The Experiment's `metadata.generation` when the condition was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One claim's verdict, short.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimStatus {
    /// The claim's name in `spec.claims` (cut short past 256 bytes).
    pub name: String,
    /// held, failed or inconclusive.
    pub outcome: String,
    /// The claim's key figure, e.g. `99.50% (199/200)` for availability (`-` when nothing
    /// could be measured); cut short past 256 bytes.
    pub measured: String,
}

/// What the controller observed of an Experiment: its phase, the verdict with per-claim
/// results and counts, the evidence ConfigMap and conditions.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    #[serde(default)]
    pub phase: Phase,
    /// held, failed or inconclusive, once Completed or Aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// How many claims held (set once the claims are evaluated).
    #[serde(default)]
    pub held: u32,
    /// How many claims failed (set once the claims are evaluated).
    #[serde(default)]
    pub failed: u32,
    /// How many claims could not be judged (set once the claims are evaluated).
    #[serde(default)]
    pub inconclusive: u32,
    /// Each claim's verdict, in the order of `spec.claims`; at most 32 are listed (the rest
    /// are counted in `claimsNotListed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimStatus>,
    /// Claims not listed above (over [`MAX_CLAIMS`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub claims_not_listed: u32,
    /// The ConfigMap holding the whole report (timeline, evidence, lost writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Conditions in the Kubernetes convention: `Ready` (False when the spec was refused),
    /// `Finished` (True however the run ended: `kubectl wait --for=condition=Finished`
    /// always returns), `Running`, `Completed`, `Aborted` and `Held`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The Experiment's `metadata.generation` when the status was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn word(o: Outcome) -> &'static str {
    match o {
        Outcome::Held => "held",
        Outcome::Failed => "failed",
        Outcome::Inconclusive => "inconclusive",
    }
}

/// [`overall`] as the word the status shows.
pub fn overall_word(verdicts: &[Verdict]) -> &'static str {
    word(overall(verdicts))
}

/// The experiment's verdict: failed if any claim failed, inconclusive if any claim was
/// (or there were none), held only when every claim held.
pub fn overall(verdicts: &[Verdict]) -> Outcome {
    if verdicts.iter().any(|v| v.outcome == Outcome::Failed) {
        Outcome::Failed
    } else if verdicts.is_empty() || verdicts.iter().any(|v| v.outcome == Outcome::Inconclusive) {
        Outcome::Inconclusive
    } else {
        Outcome::Held
    }
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT - 1;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Fill the verdict part of a status from the engine's verdicts (bounded).
pub fn record_verdicts(status: &mut ExperimentStatus, verdicts: &[Verdict]) {
    let count = |o| verdicts.iter().filter(|v| v.outcome == o).count() as u32;
    status.held = count(Outcome::Held);
    status.failed = count(Outcome::Failed);
    status.inconclusive = count(Outcome::Inconclusive);
    status.verdict = Some(word(overall(verdicts)).to_string());
    status.claims = verdicts
        .iter()
        .take(MAX_CLAIMS)
        .map(|v| ClaimStatus {
            name: clip(&v.claim),
            outcome: word(v.outcome).to_string(),
            measured: clip(&v.measured),
        })
        .collect();
    status.claims_not_listed = verdicts.len().saturating_sub(MAX_CLAIMS) as u32;
}

/// The conditions for a phase: `Ready` (accepted and valid), `Running`, `Completed`,
/// `Aborted`, and `Held` (the verdict, once known). A condition's transition time changes
/// only when its status does.
pub fn conditions(
    previous: &[Condition],
    phase: Phase,
    verdict: Option<&str>,
    reason: &str,
    now: &str,
    generation: Option<i64>,
    ending: Option<&str>,
) -> Vec<Condition> {
    let b = |x: bool| if x { "True" } else { "False" };
    let terminal = matches!(phase, Phase::Completed | Phase::Aborted);
    let rejected = ending == Some("Rejected");
    let wanted = [
        (
            "Ready",
            b(!rejected).to_string(),
            if rejected { "Rejected" } else { "Accepted" }.to_string(),
        ),
        // True however the run ends, so `kubectl wait --for=condition=Finished` always
        // returns; the reason says how (Completed, Aborted, Rejected, Abandoned, ...).
        (
            "Finished",
            b(terminal).to_string(),
            match (terminal, ending) {
                (true, Some(e)) => e.to_string(),
                _ => format!("{phase:?}"),
            },
        ),
        (
            "Running",
            b(matches!(phase, Phase::Running | Phase::Reverting)).to_string(),
            format!("{phase:?}"),
        ),
        (
            "Completed",
            b(phase == Phase::Completed).to_string(),
            format!("{phase:?}"),
        ),
        (
            "Aborted",
            b(phase == Phase::Aborted).to_string(),
            format!("{phase:?}"),
        ),
        (
            "Held",
            match (terminal, verdict) {
                (true, Some("held")) => "True".to_string(),
                (true, Some(_)) => "False".to_string(),
                _ => "Unknown".to_string(),
            },
            verdict.map_or("Pending".to_string(), |v| {
                let mut c = v.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            }),
        ),
    ];
    wanted
        .into_iter()
        .map(|(t, status, why)| {
            let old = previous.iter().find(|c| c.type_ == t);
            let since = match old {
                Some(o) if o.status == status => o.last_transition_time.clone(),
                _ => now.to_string(),
            };
            Condition {
                type_: t.to_string(),
                status,
                reason: why,
                message: clip(reason),
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn v(o: Outcome) -> Verdict {
        Verdict {
            claim: "c".into(),
            kind: "availability".into(),
            outcome: o,
            measured: "99%".into(),
            reason: String::new(),
            figures: BTreeMap::new(),
            lost_writes: vec![],
            indeterminate_writes: vec![],
        }
    }

    #[test]
    fn an_experiment_holds_only_when_every_claim_held_and_there_was_one() {
        assert_eq!(overall(&[]), Outcome::Inconclusive);
        assert_eq!(
            overall(&[v(Outcome::Held), v(Outcome::Held)]),
            Outcome::Held
        );
        assert_eq!(
            overall(&[v(Outcome::Held), v(Outcome::Inconclusive)]),
            Outcome::Inconclusive
        );
        assert_eq!(
            overall(&[v(Outcome::Inconclusive), v(Outcome::Failed)]),
            Outcome::Failed
        );
    }

    #[test]
    fn the_phase_machine_reverts_before_it_ends() {
        use Phase::*;
        assert_eq!(next_phase(Pending, &Event::Started, false), Running);
        assert_eq!(
            next_phase(Running, &Event::FaultPhaseOver, false),
            Reverting
        );
        assert_eq!(next_phase(Reverting, &Event::AllReverted, false), Completed);
        assert_eq!(
            next_phase(Running, &Event::Abort("guardrail".into()), true),
            Reverting
        );
        assert_eq!(next_phase(Reverting, &Event::AllReverted, true), Aborted);
        assert_eq!(
            next_phase(Pending, &Event::Abort("invalid".into()), true),
            Aborted
        );
        assert_eq!(
            next_phase(Completed, &Event::Abort("late".into()), true),
            Completed
        );
    }

    #[test]
    fn conditions_keep_their_transition_time_until_their_status_changes() {
        let a = conditions(&[], Phase::Running, None, "running", "t1", Some(1), None);
        let b = conditions(&a, Phase::Running, None, "running", "t2", Some(1), None);
        assert!(b.iter().all(|c| c.last_transition_time == "t1"));
        let c = conditions(
            &b,
            Phase::Completed,
            Some("failed"),
            "1 failed",
            "t3",
            Some(1),
            None,
        );
        let get = |t: &str| c.iter().find(|x| x.type_ == t).cloned().expect("condition");
        assert_eq!(
            (
                get("Completed").status.as_str(),
                get("Completed").last_transition_time.as_str()
            ),
            ("True", "t3")
        );
        assert_eq!(get("Ready").last_transition_time, "t1");
        assert_eq!(
            (get("Held").status.as_str(), get("Held").reason.as_str()),
            ("False", "Failed")
        );
        assert_eq!(get("Running").status, "False");
        assert_eq!(
            (
                get("Finished").status.as_str(),
                get("Finished").reason.as_str()
            ),
            ("True", "Completed")
        );
        assert_eq!(
            conditions(&b, Phase::Running, None, "", "t3", Some(1), None)
                .iter()
                .find(|x| x.type_ == "Finished")
                .map(|x| x.status.clone()),
            Some("False".to_string())
        );
    }

    #[test]
    fn a_refused_experiment_is_finished_and_not_ready_saying_why() {
        let c = conditions(
            &[],
            Phase::Aborted,
            None,
            "spec.lab ...",
            "t",
            Some(1),
            Some("Rejected"),
        );
        let get = |t: &str| c.iter().find(|x| x.type_ == t).cloned().expect("condition");
        assert_eq!(
            (get("Ready").status.as_str(), get("Ready").reason.as_str()),
            ("False", "Rejected")
        );
        assert_eq!(
            (
                get("Finished").status.as_str(),
                get("Finished").reason.as_str()
            ),
            ("True", "Rejected")
        );
        assert_eq!(get("Ready").message, "spec.lab ...");
    }

    proptest! {
        #[test]
        fn the_status_stays_bounded(n in 0usize..200, text in ".{0,600}") {
            let verdicts: Vec<Verdict> = (0..n)
                .map(|i| Verdict { claim: format!("{i}{text}"), measured: text.clone(), ..v(Outcome::Held) })
                .collect();
            let mut s = ExperimentStatus::default();
            record_verdicts(&mut s, &verdicts);
            prop_assert!(s.claims.len() <= MAX_CLAIMS);
            prop_assert_eq!(s.claims.len() + s.claims_not_listed as usize, n);
            prop_assert!(s.claims.iter().all(|c| c.name.len() <= MAX_TEXT + 3 && c.measured.len() <= MAX_TEXT + 3));
        }
    }
}
