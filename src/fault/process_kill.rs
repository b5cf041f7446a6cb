//! `process-kill`: send a signal to every process of the target. Lab processes are
//! restarted when the fault ends (the restart is the fault's undo action).

use super::{require_procs, wait_for, Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::model::validate::parse_signal;
use crate::procfs::ProcId;
use std::time::Duration;

pub struct ProcessKill {
    signal: i32,
    restart: bool,
    killed: Vec<ProcId>,
}

impl ProcessKill {
    pub fn new(spec: &crate::model::spec::ProcessKill) -> Self {
        ProcessKill {
            signal: spec
                .signal
                .as_deref()
                .and_then(parse_signal)
                .unwrap_or(libc::SIGKILL),
            restart: spec.restart.unwrap_or(true),
            killed: Vec::new(),
        }
    }
}

impl Fault for ProcessKill {
    fn kind(&self) -> &'static str {
        FaultKind::ProcessKill.name()
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let procs = require_procs(members, self.kind())?;
        if self.restart {
            for m in members {
                if let Some((host, Some(process))) = &m.lab {
                    undo.record(UndoAction::RestartLabProcess {
                        host: host.clone(),
                        process: process.clone(),
                    })?;
                }
            }
        }
        let sig = nix::sys::signal::Signal::try_from(self.signal)
            .map_err(|e| FaultError::Refused(e.to_string()))?;
        for p in procs {
            if !p.alive() {
                continue;
            }
            match nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), sig) {
                Ok(()) => self.killed.push(p),
                // Exited on its own since it was listed (a forking server's child).
                Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    return Err(FaultError::Failed(format!(
                        "sending {sig} to pid {}: {e}",
                        p.pid
                    )))
                }
            }
        }
        if self.killed.is_empty() {
            return Err(FaultError::Failed(
                "every process of the target exited before the signal".into(),
            ));
        }
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let killed = self.killed.clone();
        if wait_for(Duration::from_secs(3), || killed.iter().all(|p| !p.alive())) {
            let pids: Vec<String> = killed.iter().map(|p| p.pid.to_string()).collect();
            Ok(Evidence(if pids.len() > 6 {
                format!(
                    "{} processes no longer running (pid {}, …)",
                    pids.len(),
                    pids[..5].join(", ")
                )
            } else {
                format!("pid {} no longer running", pids.join(", "))
            }))
        } else {
            let alive: Vec<String> = killed
                .iter()
                .filter(|p| p.alive())
                .map(|p| p.pid.to_string())
                .collect();
            Err(FaultError::Failed(format!(
                "pid {} still running 3s after the signal",
                alive.join(", ")
            )))
        }
    }
}
