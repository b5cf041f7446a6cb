//! `process-pause`: freeze the target's processes. With cgroup v1 the processes are moved
//! into a freezer cgroup of Murphy's own (their other controllers are untouched) and
//! frozen; with cgroup v2 the target's own cgroup is frozen when it holds nothing else;
//! otherwise, or on request, SIGSTOP / SIGCONT.

use super::{require_procs, wait_for, Evidence, Fault, FaultError, Member, UndoLog};
use crate::cgroup::{self, Mounts};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::model::spec::PauseMethod;
use crate::procfs::ProcId;
use std::path::PathBuf;
use std::time::Duration;

pub struct ProcessPause {
    method: PauseMethod,
    group: String,
    frozen: Option<PathBuf>,
    stopped: Vec<ProcId>,
}

impl ProcessPause {
    pub fn new(spec: &crate::model::spec::ProcessPause, group: &str) -> Self {
        ProcessPause {
            method: spec.method.unwrap_or(PauseMethod::Auto),
            group: group.to_string(),
            frozen: None,
            stopped: Vec::new(),
        }
    }

    fn freeze(&mut self, procs: &[ProcId], undo: &mut UndoLog<'_>) -> Result<bool, FaultError> {
        let mounts = Mounts::read();
        if let Some(base) = mounts.v1_mount("freezer") {
            // v1: a freezer cgroup of our own; only the freezer hierarchy changes.
            let dir = base.join(format!("murphy-{}", self.group));
            undo.record(UndoAction::RemoveCgroup {
                cgroup: dir.clone(),
            })?;
            for p in procs {
                let orig = mounts.proc_cgroup(p.pid, "freezer").ok_or_else(|| {
                    FaultError::Failed(format!("pid {} has no freezer cgroup", p.pid))
                })?;
                undo.record(UndoAction::MoveBack {
                    procs: vec![*p],
                    cgroup: orig,
                })?;
            }
            undo.record(UndoAction::Thaw {
                cgroup: dir.clone(),
            })?;
            cgroup::create(&dir)
                .map_err(|e| FaultError::Failed(format!("creating {}: {e}", dir.display())))?;
            for p in procs {
                cgroup::add_pid(&dir, p.pid).map_err(|e| {
                    FaultError::Failed(format!("moving pid {} into {}: {e}", p.pid, dir.display()))
                })?;
            }
            cgroup::set_frozen(&dir, true)
                .map_err(|e| FaultError::Failed(format!("freezing {}: {e}", dir.display())))?;
            self.frozen = Some(dir);
            return Ok(true);
        }
        if mounts.v2.is_some() {
            // v2: freeze the target's own cgroup, but only if it holds nothing else.
            let dir = mounts.proc_cgroup(procs[0].pid, "freezer");
            if let Some(dir) = dir {
                let members: Vec<i32> = cgroup::pids(&dir);
                let ours: Vec<i32> = procs.iter().map(|p| p.pid).collect();
                let root = mounts.v2.as_ref().is_some_and(|r| *r == dir);
                if !root && !members.is_empty() && members.iter().all(|p| ours.contains(p)) {
                    undo.record(UndoAction::Thaw {
                        cgroup: dir.clone(),
                    })?;
                    cgroup::set_frozen(&dir, true).map_err(|e| {
                        FaultError::Failed(format!("freezing {}: {e}", dir.display()))
                    })?;
                    self.frozen = Some(dir);
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

impl Fault for ProcessPause {
    fn kind(&self) -> &'static str {
        FaultKind::ProcessPause.name()
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let procs = require_procs(members, self.kind())?;
        if self.method == PauseMethod::Freezer && self.freeze(&procs, undo)? {
            return Ok(());
        }
        if self.method == PauseMethod::Auto {
            let before = undo.actions().len();
            match self.freeze(&procs, undo) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    // `auto` falls back to signals: undo what the freezer attempt did
                    // first (its records stay journaled; undoing them again is harmless).
                    let done = undo.actions()[before..].to_vec();
                    let _ = crate::journal::revert_actions(&done, &crate::journal::NoLabRun);
                    self.frozen = None;
                    tracing::warn!("freezer unusable ({e}); pausing with SIGSTOP instead");
                }
            }
        }
        if self.method == PauseMethod::Freezer {
            return Err(FaultError::Refused(
                "no usable freezer cgroup for the target (use method: signal)".into(),
            ));
        }
        for p in procs {
            undo.record(UndoAction::Continue { proc: p })?;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGSTOP,
            )
            .map_err(|e| FaultError::Failed(format!("SIGSTOP pid {}: {e}", p.pid)))?;
            self.stopped.push(p);
        }
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        if let Some(dir) = &self.frozen {
            let d = dir.clone();
            if wait_for(Duration::from_secs(3), || {
                cgroup::is_frozen(&d) == Some(true)
            }) {
                let n = cgroup::pids(dir).len();
                return Ok(Evidence(format!(
                    "{} reports FROZEN with {n} process(es)",
                    dir.display()
                )));
            }
            return Err(FaultError::Failed(format!(
                "{} did not reach FROZEN within 3s",
                dir.display()
            )));
        }
        let stopped = self.stopped.clone();
        if wait_for(Duration::from_secs(3), || {
            stopped
                .iter()
                .all(|p| matches!(p.state(), Some('T') | None))
        }) {
            Ok(Evidence(format!(
                "{} process(es) in state T (stopped)",
                stopped.len()
            )))
        } else {
            Err(FaultError::Failed(
                "processes did not stop within 3s".into(),
            ))
        }
    }
}
