//! `memory-leak`: a hog inside the target's memory cgroup grows at a rate, up to a limit or
//! until the kernel's OOM killer steps in. Observation records OOM kills and says who died:
//! the hog, or the target itself. Revert kills the hog, which frees its memory.

use super::hog::Hog;
use super::{require_procs, wait_for, Evidence, Fault, FaultEnv, FaultError, Member, UndoLog};
use crate::cgroup::{self, Mounts};
use crate::journal::UndoAction;
use crate::procfs::{self, ProcId};
use std::path::PathBuf;
use std::time::Duration;

pub struct MemoryLeak {
    rate: f64,
    limit: Option<u64>,
    env: FaultEnv,
    hog: Option<Hog>,
    cgroup: Option<PathBuf>,
    targets: Vec<ProcId>,
    oom_base: u64,
    reported_ooms: u64,
    reported_target_deaths: usize,
}

impl MemoryLeak {
    pub fn new(spec: &crate::model::spec::MemoryLeak, env: &FaultEnv) -> Self {
        MemoryLeak {
            rate: spec.rate.bytes_per_second,
            limit: spec.limit.map(|l| l.0),
            env: env.clone(),
            hog: None,
            cgroup: None,
            targets: Vec::new(),
            oom_base: 0,
            reported_ooms: 0,
            reported_target_deaths: 0,
        }
    }
}

impl Fault for MemoryLeak {
    fn kind(&self) -> &'static str {
        "memory-leak"
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let procs = require_procs(members, self.kind())?;
        let mounts = Mounts::read();
        let dir = mounts.proc_cgroup(procs[0].pid, "memory").ok_or_else(|| {
            FaultError::Failed(format!("pid {} has no memory cgroup", procs[0].pid))
        })?;
        let cg_limit = cgroup::memory_limit(&dir);
        let limit = match (self.limit, cg_limit) {
            (Some(l), _) => l,
            (None, Some(l)) => l.saturating_mul(2), // grow until the OOM killer acts
            (None, None) => {
                return Err(FaultError::Refused(format!(
                    "the target's memory cgroup {} has no limit: set `limit` so the leak cannot take the whole machine",
                    dir.display()
                )))
            }
        };
        self.oom_base = cgroup::oom_kills(&dir).unwrap_or(0);
        let args = vec![
            "memory".to_string(),
            format!("{}", self.rate),
            limit.to_string(),
            self.env.lease.as_millis().to_string(),
        ];
        let mut hog = Hog::spawn(&self.env.exe, &args, std::slice::from_ref(&dir))
            .map_err(FaultError::Failed)?;
        // The hog is waiting for its go byte: journal it, then let it run.
        undo.record(UndoAction::Kill { proc: hog.id })?;
        hog.go().map_err(FaultError::Failed)?;
        self.hog = Some(hog);
        self.cgroup = Some(dir);
        self.targets = procs;
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let hog = self
            .hog
            .as_ref()
            .ok_or_else(|| FaultError::Failed("no hog".into()))?;
        let id = hog.id;
        let first = procfs::rss_bytes(id.pid).unwrap_or(0);
        let step = (self.rate * 0.05) as u64;
        let mut now = first;
        let grew = wait_for(Duration::from_secs(3), || {
            now = procfs::rss_bytes(id.pid).unwrap_or(0);
            now >= first + step.max(4096)
        });
        let dir = self
            .cgroup
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        if grew {
            let usage = self
                .cgroup
                .as_ref()
                .and_then(|d| cgroup::memory_usage(d))
                .unwrap_or(0);
            Ok(Evidence(format!(
                "hog pid {} grew from {} to {} KiB resident in {dir} (cgroup usage {} MiB)",
                id.pid,
                first / 1024,
                now / 1024,
                usage >> 20
            )))
        } else {
            Err(FaultError::Failed(format!(
                "hog pid {} did not grow within 3s (resident {} KiB)",
                id.pid,
                now / 1024
            )))
        }
    }

    fn observe(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(dir) = &self.cgroup else { return out };
        let ooms = cgroup::oom_kills(dir)
            .unwrap_or(0)
            .saturating_sub(self.oom_base);
        if ooms > self.reported_ooms {
            self.reported_ooms = ooms;
            let hog_dead = self.hog.as_mut().and_then(Hog::exited);
            let dead_targets: Vec<String> = self
                .targets
                .iter()
                .filter(|p| !p.alive())
                .map(|p| p.pid.to_string())
                .collect();
            let who = match (&hog_dead, dead_targets.is_empty()) {
                (Some(_), true) => "the hog was killed; the target survived".to_string(),
                (_, false) => format!("target pid {} killed", dead_targets.join(", ")),
                (None, true) => "a process in the cgroup was killed".to_string(),
            };
            out.push(format!("OOM kill #{ooms} in {}: {who}", dir.display()));
        }
        let dead = self.targets.iter().filter(|p| !p.alive()).count();
        if dead > self.reported_target_deaths {
            self.reported_target_deaths = dead;
            out.push(format!("{dead} target process(es) have died"));
        }
        if let Some(u) = cgroup::memory_usage(dir) {
            out.push(format!("cgroup memory usage {} MiB", u >> 20));
        }
        out
    }
}
