//! The node agent's engine side: what it does for each call the controller makes, with
//! the transport left out (the gRPC service in [`crate::grpc`], with mTLS, wraps this).
//!
//! Every injection is bound to an experiment, a fault and a pod UID. The agent resolves
//! the pod to its containers' processes on this node ([`crate::pods`]), builds the fault
//! with the engine ([`murphy::fault::build`], the same trait the CLI runner uses), journals
//! it in the agent's state directory, and holds it under a lease ([`crate::lease`]). A call
//! naming another pod UID is refused; a lapsed lease is reverted by [`Agent::tick`]; a new
//! agent first reverts whatever a previous instance left in the journal.

use crate::lease::{Key, LeaseError, Leases};
use crate::pods::{self, ContainerRef, ResolveError};
use murphy::fault::{self, Fault, FaultEnv, UndoLog};
use murphy::journal::{Journal, NoLab, UndoAction};
use murphy::model::spec::FaultAction;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One inject call.
/// What one revert undid, and what the fault achieved while it was in effect (its
/// engine's own figures, as `murphy run` records them: packets, hold error, syscalls,
/// leak rate...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reverted {
    pub undone: Vec<String>,
    pub achieved: BTreeMap<String, f64>,
}

#[derive(Clone, Debug)]
pub struct InjectRequest {
    pub experiment: String,
    pub fault: String,
    pub pod: String,
    pub pod_uid: String,
    pub containers: Vec<ContainerRef>,
    pub action: FaultAction,
    pub lease_ms: u64,
    pub seed: u64,
    /// The fault's peers, resolved by the controller's run plan.
    pub peer_addrs: Vec<std::net::Ipv4Addr>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("{0}")]
    Refused(String),
    #[error("injecting {fault}: {message} (rolled back)")]
    Inject { fault: String, message: String },
    #[error("reverting {fault}: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Revert {
        fault: String,
        /// Each undo action that failed, with what it acts on.
        errors: Vec<murphy::journal::RevertError>,
    },
    #[error("journal: {0}")]
    Journal(#[from] std::io::Error),
}

struct Active {
    fault: Box<dyn Fault>,
    undo: Vec<UndoAction>,
    group: String,
    /// namespace/name of the pod (for messages).
    pod: String,
}

pub struct Agent {
    exe: PathBuf,
    roots: Vec<PathBuf>,
    journal: Arc<Journal>,
    leases: Leases,
    active: BTreeMap<Key, Active>,
    serial: u64,
    /// The latest clock reading a call brought (for re-granting a failed revert).
    now_ms: u64,
}

impl Agent {
    /// Start an agent: revert what earlier instances left in `state_dir`, then open a
    /// journal of its own. Returns the agent and what was reverted.
    pub fn start(
        state_dir: &Path,
        exe: PathBuf,
        roots: Vec<PathBuf>,
        instance: &str,
    ) -> Result<(Agent, Vec<String>), AgentError> {
        let mut cleaned = Vec::new();
        for r in murphy::journal::recover(state_dir, None)? {
            if r.alive {
                // Another agent still runs on this state (a rolling update's overlap): its
                // injections are its own to revert.
                cleaned.push(format!(
                    "left alone, held by a live agent: {}",
                    r.journal.display()
                ));
                continue;
            }
            cleaned.extend(r.undone);
            cleaned.extend(r.errors.into_iter().map(|e| format!("NOT reverted: {e}")));
        }
        let journal = Arc::new(Journal::create(state_dir, &format!("agent-{instance}"))?);
        Ok((
            Agent {
                exe,
                roots,
                journal,
                leases: Leases::default(),
                active: BTreeMap::new(),
                serial: 0,
                now_ms: 0,
            },
            cleaned,
        ))
    }

    /// Inject a fault into a pod's containers on this node; returns the confirmation's
    /// evidence. Nothing is left half-applied on error.
    pub fn inject(&mut self, req: &InjectRequest, now_ms: u64) -> Result<String, AgentError> {
        self.now_ms = self.now_ms.max(now_ms);
        if !(1000..=crate::lease::MAX_LEASE_MS).contains(&req.lease_ms) {
            // Checked before anything is applied: a fault must never be left untracked.
            return Err(crate::lease::LeaseError::BadDuration(req.lease_ms).into());
        }
        if matches!(req.action, FaultAction::BgpAnnounce(_)) {
            return Err(AgentError::Refused(
                "bgp-announce runs from a lab host; it is not available on a cluster".into(),
            ));
        }
        let key = Key {
            experiment: req.experiment.clone(),
            fault: req.fault.clone(),
            pod_uid: req.pod_uid.clone(),
        };
        if self.active.contains_key(&key) {
            return Err(AgentError::Refused(format!(
                "{} of {} is already injected into pod {}",
                req.fault, req.experiment, req.pod_uid
            )));
        }
        let resolved = pods::resolve(&self.roots, &req.pod_uid, &req.containers)?;
        let members: Vec<_> = resolved
            .iter()
            .filter_map(|r| pods::member(&req.pod, r))
            .collect();
        self.serial += 1;
        let group = format!("{}-{}-{}", req.experiment, req.fault, self.serial)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>();
        let env = FaultEnv {
            exe: self.exe.clone(),
            lease: Duration::from_millis(req.lease_ms) + Duration::from_secs(30),
            peer_addrs: req.peer_addrs.clone(),
            seed: req.seed,
            max_data_bytes: 1 << 30,
            // A cluster refuses `guardrails.allowPaths` (`plan::unsupported`).
            allow_paths: Vec::new(),
            from: None,
        };
        let _span = tracing::info_span!(
            "inject",
            experiment = %req.experiment,
            fault = %req.fault,
            kind = req.action.kind(),
            pod = %req.pod
        )
        .entered();
        let mut f = fault::build(&req.action, &env, &group);
        let label = format!("{} ({}) on {}", req.fault, req.action.kind(), req.pod);
        let mut undo = UndoLog::new(&self.journal, &group, &label)?;
        let injected = f.inject(&members, &mut undo);
        let actions = undo.into_actions();
        let confirmed = injected.and_then(|()| f.confirm());
        match confirmed {
            Ok(ev) => {
                self.leases.grant(key.clone(), now_ms, req.lease_ms)?;
                self.active.insert(
                    key,
                    Active {
                        fault: f,
                        undo: actions,
                        group,
                        pod: req.pod.clone(),
                    },
                );
                Ok(ev.0)
            }
            Err(e) => {
                f.stop();
                let _ = fault::revert(&actions, &NoLab);
                let _ = self.journal.done(&group);
                Err(AgentError::Inject {
                    fault: req.fault.clone(),
                    message: e.to_string(),
                })
            }
        }
    }

    /// Fresh evidence that a live injection is still in effect: what the fault reports
    /// while active, else its confirmation read again from the system now.
    pub fn observe(
        &mut self,
        experiment: &str,
        fault: &str,
        pod_uid: &str,
    ) -> Result<Vec<String>, AgentError> {
        let key = self.leases.check(experiment, fault, pod_uid)?;
        let Some(a) = self.active.get_mut(&key) else {
            return Ok(Vec::new());
        };
        let seen = a.fault.observe();
        if !seen.is_empty() {
            return Ok(seen);
        }
        a.fault
            .confirm()
            .map(|ev| vec![ev.0])
            .map_err(|e| AgentError::Inject {
                fault: key.fault.clone(),
                message: format!("no longer in effect: {e}"),
            })
    }

    pub fn renew(
        &mut self,
        experiment: &str,
        fault: &str,
        pod_uid: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<u64, AgentError> {
        self.now_ms = self.now_ms.max(now_ms);
        let key = self.leases.check(experiment, fault, pod_uid)?;
        Ok(self.leases.renew(&key, now_ms, ttl_ms)?)
    }

    /// Revert on request.
    pub fn revert(
        &mut self,
        experiment: &str,
        fault: &str,
        pod_uid: &str,
    ) -> Result<Reverted, AgentError> {
        let key = self.leases.check(experiment, fault, pod_uid)?;
        self.leases.release(&key);
        self.undo(&key)
    }

    /// How soon a failed revert is tried again (by `tick`, or by the controller's retry,
    /// which finds the injection still there).
    pub const RETRY_MS: u64 = 2_000;

    fn undo(&mut self, key: &Key) -> Result<Reverted, AgentError> {
        let Some(mut a) = self.active.remove(key) else {
            return Ok(Reverted::default());
        };
        // What it achieved, read while it is still in effect (as the local runner does).
        let achieved = a.fault.fidelity();
        a.fault.stop();
        match fault::revert(&a.undo, &NoLab) {
            Ok(undone) => {
                self.journal.done(&a.group)?;
                Ok(Reverted { undone, achieved })
            }
            Err(errors) => {
                // Keep it, under a short lease: it is retried, never forgotten.
                self.active.insert(key.clone(), a);
                let _ = self.leases.grant(key.clone(), self.now_ms, Self::RETRY_MS);
                Err(AgentError::Revert {
                    fault: key.fault.clone(),
                    errors,
                })
            }
        }
    }

    /// Revert every injection whose lease lapsed by `now` (call it every second or so).
    pub fn tick(&mut self, now_ms: u64) -> Vec<(Key, Result<Vec<String>, AgentError>)> {
        self.now_ms = self.now_ms.max(now_ms);
        self.leases
            .lapsed(now_ms)
            .into_iter()
            .map(|k| {
                let r = self.undo(&k).map(|r| r.undone);
                (k, r)
            })
            .collect()
    }

    /// Live injections.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Stop without reverting anything, as a crash would: the journal stays for the next
    /// agent to replay (tests stand in for a dead agent with it).
    pub fn abandon(self) {
        self.journal.abandon();
        std::mem::forget(self);
    }

    /// Revert every injection of `experiment` (its controller is gone): each key with its
    /// outcome.
    pub fn revert_experiment(
        &mut self,
        experiment: &str,
    ) -> Vec<(Key, String, Result<Vec<String>, AgentError>)> {
        let keys: Vec<(Key, String)> = self
            .active
            .iter()
            .filter(|(k, _)| k.experiment == experiment)
            .map(|(k, a)| (k.clone(), a.pod.clone()))
            .collect();
        keys.into_iter()
            .map(|(k, pod)| {
                self.leases.release(&k);
                let r = self.undo(&k).map(|r| r.undone);
                (k, pod, r)
            })
            .collect()
    }

    /// Revert everything (the agent is stopping): each key with its outcome.
    pub fn revert_all(&mut self) -> Vec<(Key, Result<Vec<String>, AgentError>)> {
        let keys: Vec<Key> = self.active.keys().cloned().collect();
        keys.into_iter()
            .map(|k| {
                self.leases.release(&k);
                let r = self.undo(&k).map(|r| r.undone);
                (k, r)
            })
            .collect()
    }
}
