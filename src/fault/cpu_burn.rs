//! `cpu-burn`: a hog with N busy threads inside the target's cpu (and cpuacct) cgroups, so
//! it competes for the target's CPU share and quota. Revert kills the hog.

use super::hog::Hog;
use super::{require_procs, Evidence, Fault, FaultEnv, FaultError, Member, UndoLog};
use crate::cgroup::Mounts;
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::procfs;
use std::time::{Duration, Instant};

pub struct CpuBurn {
    workers: u32,
    env: FaultEnv,
    hog: Option<Hog>,
    where_: String,
}

impl CpuBurn {
    pub fn new(spec: &crate::model::spec::CpuBurn, env: &FaultEnv) -> Self {
        CpuBurn {
            workers: spec.workers.unwrap_or(1),
            env: env.clone(),
            hog: None,
            where_: String::new(),
        }
    }
}

impl Fault for CpuBurn {
    fn kind(&self) -> &'static str {
        FaultKind::CpuBurn.name()
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let procs = require_procs(members, self.kind())?;
        let mounts = Mounts::read();
        let mut dirs = Vec::new();
        for c in ["cpu", "cpuacct"] {
            if let Some(d) = mounts.proc_cgroup(procs[0].pid, c) {
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
        if dirs.is_empty() {
            return Err(FaultError::Failed(format!(
                "pid {} has no cpu cgroup",
                procs[0].pid
            )));
        }
        let args = vec![
            "cpu".to_string(),
            self.workers.to_string(),
            self.env.lease.as_millis().to_string(),
        ];
        let mut hog = Hog::spawn(&self.env.exe, &args, &dirs)?;
        undo.record(UndoAction::Kill { proc: hog.id })?;
        hog.go()?;
        self.where_ = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        self.hog = Some(hog);
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let hog = self
            .hog
            .as_ref()
            .ok_or_else(|| FaultError::Failed("no hog".into()))?;
        let pid = hog.id.pid;
        let cpu = |pid| procfs::stat(pid).map_or(0, |s| s.utime + s.stime);
        let t0 = Instant::now();
        let c0 = cpu(pid);
        std::thread::sleep(Duration::from_millis(300));
        let used = (cpu(pid) - c0) as f64 / procfs::ticks_per_second() as f64;
        let cpus = used / t0.elapsed().as_secs_f64();
        if cpus > 0.05 {
            Ok(Evidence(format!(
                "hog pid {pid} used {cpus:.2} CPU(s) over {:?} in {}",
                t0.elapsed(),
                self.where_
            )))
        } else {
            Err(FaultError::Failed(format!(
                "hog pid {pid} used no CPU in 300ms"
            )))
        }
    }
}
