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
            let mut moved = 0;
            for p in procs {
                match cgroup::add_pid(&dir, p.pid) {
                    Ok(()) => moved += 1,
                    // Exited since it was listed (a forking server's short-lived child):
                    // nothing left to freeze.
                    Err(_) if !p.alive() => {}
                    Err(e) => {
                        return Err(FaultError::Failed(format!(
                            "moving pid {} into {}: {e}",
                            p.pid,
                            dir.display()
                        )))
                    }
                }
            }
            if moved == 0 {
                return Err(FaultError::Failed(
                    "every process of the target exited before it could be frozen".into(),
                ));
            }
            cgroup::set_frozen(&dir, true)
                .map_err(|e| FaultError::Failed(format!("freezing {}: {e}", dir.display())))?;
            self.frozen = Some(dir);
            return Ok(true);
        }
        if mounts.v2.is_some() {
            // v2: freeze the target's own cgroup, but only if it holds nothing else: its
            // processes and what they forked since they were listed (a forking server's
            // children come and go while the target is resolved).
            let dir = procs
                .iter()
                .filter(|p| p.alive())
                .find_map(|p| mounts.proc_cgroup(p.pid, "freezer"));
            if let Some(dir) = dir {
                let members: Vec<i32> = cgroup::pids(&dir);
                let ours: Vec<i32> = procs.iter().map(|p| p.pid).collect();
                let root = mounts.v2.as_ref().is_some_and(|r| *r == dir);
                if !root
                    && !members.is_empty()
                    && members.iter().all(|p| ours_or_forked_by_them(*p, &ours))
                {
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

/// Whether `pid` is one of `ours` or descends from one of them (walking parents; a process
/// that is already gone counts as ours: it holds nothing any more).
fn ours_or_forked_by_them(pid: i32, ours: &[i32]) -> bool {
    let mut p = pid;
    for depth in 0..64 {
        if ours.contains(&p) {
            return true;
        }
        match crate::procfs::stat(p) {
            Some(s) if s.ppid > 1 => p = s.ppid,
            Some(_) => return false,
            None => return depth == 0,
        }
    }
    false
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
            match nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGSTOP,
            ) {
                Ok(()) => self.stopped.push(p),
                // Exited since it was listed: there is nothing to stop.
                Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => return Err(FaultError::Failed(format!("SIGSTOP pid {}: {e}", p.pid))),
            }
        }
        if self.stopped.is_empty() {
            return Err(FaultError::Failed(
                "every process of the target exited before it could be stopped".into(),
            ));
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

#[cfg(test)]
mod tests {
    use super::ours_or_forked_by_them;

    #[test]
    fn a_cgroup_member_forked_by_the_target_is_the_targets_and_a_stranger_is_not() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let me = std::process::id() as i32;
        let pid = child.id() as i32;
        assert!(ours_or_forked_by_them(pid, &[me]), "a child of ours");
        assert!(ours_or_forked_by_them(pid, &[pid]), "listed itself");
        assert!(!ours_or_forked_by_them(pid, &[]), "nobody's");
        assert!(
            !ours_or_forked_by_them(me, &[pid]),
            "a parent is not forked by its child"
        );
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(ours_or_forked_by_them(pid, &[]), "gone: holds nothing");
    }
}
