//! The controller's decisions, as one pure function: from what a reconcile observed of an
//! Experiment (and of its injections) to the actions to take, in order. The I/O layer
//! (kube-runtime's watcher, finalizer patches, status patches, agent calls) performs
//! them ([`crate::reconcile`]). Each path is a named test here, and a recorded API scenario in
//! `tests/reconcile.rs`.

use crate::status::Phase;

/// Annotation that aborts a running experiment (any value but "false").
pub const ABORT_ANNOTATION: &str = "murphy.dev/abort";
/// Finalizer that makes deletion revert everything first.
pub const FINALIZER: &str = "murphy.dev/revert";

/// What a reconcile saw.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub phase: Phase,
    pub deleting: bool,
    pub has_finalizer: bool,
    pub abort_requested: bool,
    /// The engine's validation errors, with field paths (empty: valid).
    pub invalid: Vec<String>,
    /// Local-only fields the cluster cannot run (`spec.lab`, process targets, ...).
    pub local_only: Vec<String>,
    pub now_ms: u64,
    /// When the experiment entered Running.
    pub running_since_ms: Option<u64>,
    /// Length of the fault phase (the engine's `fault_phase()`).
    pub fault_phase_ms: u64,
    /// Injections still held for this experiment, by the controller's own record: one
    /// whose lease has expired counts as gone (its agent reverted it, or the agent went
    /// with its node), so deletion completes even when agents are unreachable.
    pub live_injections: usize,
    /// The lease the controller grants (and renews at a third of it).
    pub lease_ms: u64,
    /// Running or Reverting, but this controller holds no run for it (it restarted, or
    /// another replica led before): the agents revert at lease lapse on their own.
    pub run_lost: bool,
    /// The steady state did not hold: nothing was injected, the run ends now.
    pub steady_failed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    AddFinalizer,
    RemoveFinalizer,
    /// Refuse the experiment: status Aborted with this reason, nothing injected.
    Reject(String),
    /// Resolve the targets and their agents, start the run's clock and probes; phase Running.
    Start,
    /// Step the run: inject faults whose window opened, revert those whose window closed,
    /// renew leases a third through, and follow replacement pods.
    Renew,
    /// Revert every live injection; phase Reverting (reason for the condition/event).
    RevertAll(String),
    /// Evaluate the claims on the collected record; phase Completed or Aborted.
    Evaluate,
    /// The run was lost (controller restart): phase Aborted with this reason; the
    /// agents revert what they hold when its leases lapse.
    Abandon(String),
    /// Come back after this long.
    Requeue(u64),
}

/// The actions for one reconcile.
pub fn plan(o: &Observed) -> Vec<Action> {
    use Action::*;
    if o.deleting {
        return if o.live_injections > 0 {
            vec![
                RevertAll("the Experiment is being deleted".into()),
                Requeue(1000),
            ]
        } else if o.has_finalizer {
            vec![RemoveFinalizer]
        } else {
            vec![]
        };
    }
    if !o.has_finalizer {
        return vec![AddFinalizer, Requeue(0)];
    }
    match o.phase {
        Phase::Completed | Phase::Aborted => vec![],
        Phase::Running | Phase::Reverting if o.run_lost => vec![Abandon(
            "the controller running it was lost (it restarted without ending the run): its probes' evidence went with it, so no claim is judged".into(),
        )],
        Phase::Pending if !o.local_only.is_empty() => vec![Reject(format!(
            "{} only run with `murphy run` on one machine",
            o.local_only.join(", ")
        ))],
        Phase::Pending if !o.invalid.is_empty() => vec![Reject(o.invalid.join("; "))],
        Phase::Pending if o.abort_requested => vec![Reject(format!(
            "aborted before it started ({ABORT_ANNOTATION})"
        ))],
        Phase::Pending => vec![Start, Requeue(renew_every(o))],
        Phase::Running if o.steady_failed => vec![
            RevertAll("the steady state did not hold, so no fault was injected".into()),
            Requeue(1000),
        ],
        Phase::Running if o.abort_requested => vec![
            RevertAll(format!("aborted ({ABORT_ANNOTATION})")),
            Requeue(1000),
        ],
        Phase::Running => {
            let since = o.running_since_ms.unwrap_or(o.now_ms);
            let end = since + o.fault_phase_ms;
            if o.now_ms >= end {
                vec![RevertAll("the fault phase is over".into()), Requeue(1000)]
            } else {
                vec![Renew, Requeue(renew_every(o).min(end - o.now_ms))]
            }
        }
        Phase::Reverting if o.live_injections == 0 => vec![Evaluate],
        Phase::Reverting => vec![
            RevertAll("reverting the remaining injections".into()),
            Requeue(1000),
        ],
    }
}

/// Leases are renewed at a third of their length, so two missed renewals still hold.
fn renew_every(o: &Observed) -> u64 {
    (o.lease_ms / 3).max(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn running(now: u64) -> Observed {
        Observed {
            phase: Phase::Running,
            has_finalizer: true,
            now_ms: now,
            running_since_ms: Some(10_000),
            fault_phase_ms: 30_000,
            live_injections: 3,
            lease_ms: 30_000,
            ..Default::default()
        }
    }

    #[test]
    fn new_experiment_gets_the_finalizer_first() {
        let o = Observed::default();
        assert_eq!(plan(&o), vec![AddFinalizer, Requeue(0)]);
    }

    #[test]
    fn valid_pending_experiment_starts() {
        let o = Observed {
            has_finalizer: true,
            lease_ms: 30_000,
            ..Default::default()
        };
        assert_eq!(plan(&o), vec![Start, Requeue(10_000)]);
    }

    #[test]
    fn invalid_or_local_experiment_is_rejected_naming_the_fields() {
        let o = Observed {
            has_finalizer: true,
            invalid: vec!["spec.faults[0].at: bad".into()],
            ..Default::default()
        };
        assert_eq!(plan(&o), vec![Reject("spec.faults[0].at: bad".into())]);
        let o = Observed {
            has_finalizer: true,
            local_only: vec!["spec.lab".into()],
            ..Default::default()
        };
        assert!(matches!(&plan(&o)[..], [Reject(r)] if r.contains("spec.lab")));
    }

    #[test]
    fn running_experiment_renews_leases_until_the_fault_phase_ends() {
        assert_eq!(plan(&running(20_000)), vec![Renew, Requeue(10_000)]);
        assert_eq!(plan(&running(35_000)), vec![Renew, Requeue(5_000)]);
        assert!(matches!(plan(&running(40_000))[0], RevertAll(_)));
    }

    #[test]
    fn abort_annotation_reverts_a_running_experiment() {
        let o = Observed {
            abort_requested: true,
            ..running(20_000)
        };
        assert!(
            matches!(&plan(&o)[..], [RevertAll(r), Requeue(1000)] if r.contains(ABORT_ANNOTATION))
        );
    }

    #[test]
    fn a_steady_state_that_failed_ends_the_run_at_once() {
        let o = Observed {
            steady_failed: true,
            ..running(4_000)
        };
        assert!(
            matches!(&plan(&o)[..], [RevertAll(r), Requeue(1000)] if r.contains("steady state did not hold"))
        );
    }

    #[test]
    fn reverting_experiment_is_evaluated_once_nothing_is_left() {
        let o = Observed {
            phase: Phase::Reverting,
            live_injections: 0,
            ..running(50_000)
        };
        assert_eq!(plan(&o), vec![Evaluate]);
        let o = Observed {
            phase: Phase::Reverting,
            ..running(50_000)
        };
        assert!(matches!(plan(&o)[0], RevertAll(_)));
    }

    #[test]
    fn deleted_experiment_reverts_before_the_finalizer_goes() {
        let o = Observed {
            deleting: true,
            ..running(20_000)
        };
        assert!(matches!(&plan(&o)[..], [RevertAll(_), Requeue(1000)]));
        // Agents gone: their leases lapse and they revert on their own; once the
        // controller sees no live injection, the finalizer is removed.
        let o = Observed {
            deleting: true,
            live_injections: 0,
            ..running(20_000)
        };
        assert_eq!(plan(&o), vec![RemoveFinalizer]);
    }

    #[test]
    fn finished_experiment_is_left_alone() {
        for p in [Phase::Completed, Phase::Aborted] {
            let o = Observed {
                phase: p,
                abort_requested: true,
                ..running(99_000)
            };
            assert_eq!(plan(&o), vec![]);
        }
    }

    #[test]
    fn a_run_the_controller_lost_is_abandoned_but_deletion_still_completes() {
        for phase in [Phase::Running, Phase::Reverting] {
            let o = Observed {
                phase,
                run_lost: true,
                live_injections: 0,
                ..running(20_000)
            };
            match &plan(&o)[..] {
                [Abandon(why)] => assert!(why.contains("no claim is judged"), "{why}"),
                other => panic!("{other:?}"),
            }
            let o = Observed {
                deleting: true,
                ..o
            };
            assert_eq!(plan(&o), vec![RemoveFinalizer]);
        }
    }
}
