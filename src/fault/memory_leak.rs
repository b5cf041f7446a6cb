//! `memory-leak`: a hog inside the target's memory cgroup grows at a rate, up to a limit or
//! until the kernel's OOM killer steps in. Observation records OOM kills and says who died:
//! the hog, or the target itself. Revert kills the hog, which frees its memory.

use super::hog::Hog;
use super::leak_helper::{LeakConfig, LeakProgress, PAGE};
use super::{require_procs, wait_for, Evidence, Fault, FaultEnv, FaultError, Member, UndoLog};
use crate::cgroup::{self, Mounts};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
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
        FaultKind::MemoryLeak.name()
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
        let mut hog = Hog::spawn(&self.env.exe, &args, std::slice::from_ref(&dir))?;
        // The hog is waiting for its go byte: journal it, then let it run.
        undo.record(UndoAction::Kill { proc: hog.id })?;
        hog.go()?;
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

    /// The hog's resident size now (what it leaked, while it lives) and the rate asked.
    fn fidelity(&mut self) -> std::collections::BTreeMap<String, f64> {
        let mut out =
            std::collections::BTreeMap::from([("requestedBytesPerS".to_string(), self.rate)]);
        if let Some(h) = &self.hog {
            if let Some(rss) = procfs::rss_bytes(h.id.pid) {
                out.insert("leakedBytes".into(), rss as f64);
            }
        }
        out.insert("oomKills".into(), self.reported_ooms as f64);
        out
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

/// `memory-leak` with `mode: inProcess`: the target process itself grows. Every 100ms a
/// helper process (`murphy __hog leak`, in a process group of its own) stops the target's
/// main thread (the others go on), runs `mmap` of the next chunk of a reserved range at a
/// fixed address (`MAP_FIXED_NOREPLACE`) and `madvise(MADV_POPULATE_WRITE)` so the pages
/// are really charged, and lets it go. The whole range is journaled before the first byte
/// is mapped, so revert (or the guardian, or `murphy recover`) unmaps it; the memory
/// cgroup's OOM killer may end the target first, which is observed and reported.
///
/// The stops happen in the helper, not in the runner, so the target survives whatever
/// happens to the runner: a runner that dies closes the helper's stdin, and the helper
/// finishes the tick it is in (registers put back, thread let go) before it exits; a
/// SIGTERM does the same. Nothing in the runner ever waits on the target's ptrace stops.
pub struct InProcess {
    rate: f64,
    limit: Option<u64>,
    seed: u64,
    lease: Duration,
    exe: PathBuf,
    target: Option<ProcId>,
    base: u64,
    len: u64,
    cgroup: Option<PathBuf>,
    oom_base: u64,
    rss_before: u64,
    helper: Option<(Hog, super::hog::Lines)>,
    reported_end: bool,
    reported_ooms: u64,
    last_note: Option<std::time::Instant>,
}

/// Where leak ranges go: far below the mmap area and far above a PIE heap.
const LEAK_BASE: u64 = 0x1000_0000_0000;
const LEAK_STRIDE: u64 = 64 << 30;

impl InProcess {
    pub fn new(spec: &crate::model::spec::MemoryLeak, env: &FaultEnv) -> Self {
        InProcess {
            rate: spec.rate.bytes_per_second,
            limit: spec.limit.map(|l| l.0),
            seed: env.seed,
            lease: env.lease,
            exe: env.exe.clone(),
            target: None,
            base: 0,
            len: 0,
            cgroup: None,
            oom_base: 0,
            rss_before: 0,
            helper: None,
            reported_end: false,
            reported_ooms: 0,
            last_note: None,
        }
    }

    pub fn progress(&self) -> LeakProgress {
        let Some((_, lines)) = &self.helper else {
            return LeakProgress::default();
        };
        let mut p = lines
            .last("progress ")
            .and_then(|l| LeakProgress::parse(&l))
            .unwrap_or_default();
        p.ended = lines
            .last("ended ")
            .map(|l| l.trim_start_matches("ended ").to_string());
        p
    }
}

impl Fault for InProcess {
    fn kind(&self) -> &'static str {
        FaultKind::MemoryLeak.name()
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let procs = require_procs(members, self.kind())?;
        let target = procs[0];
        let mounts = Mounts::read();
        let dir = mounts.proc_cgroup(target.pid, "memory");
        let cg_limit = dir.as_ref().and_then(|d| cgroup::memory_limit(d));
        let limit = match (self.limit, cg_limit) {
            (Some(l), _) => l,
            (None, Some(l)) => l.saturating_mul(2).min(LEAK_STRIDE), // until the OOM killer acts
            (None, None) => {
                return Err(FaultError::Refused(format!(
                    "pid {}'s memory cgroup has no limit: set `limit` so the leak cannot take the whole machine",
                    target.pid
                )))
            }
        };
        self.len = limit.div_ceil(PAGE) * PAGE;
        let slot = (self.seed ^ target.pid as u64 ^ target.start_time) % 256;
        self.base = LEAK_BASE + slot * LEAK_STRIDE;
        self.oom_base = dir.as_ref().and_then(|d| cgroup::oom_kills(d)).unwrap_or(0);
        self.cgroup = dir;
        self.rss_before = procfs::rss_bytes(target.pid).unwrap_or(0);
        // The whole range is journaled before anything is mapped.
        undo.record(UndoAction::Unmap {
            proc: target,
            addr: self.base,
            len: self.len,
        })?;
        // The first chunk at once, so a target that cannot be traced fails the injection.
        let first = ((self.rate * 0.1) as u64).div_ceil(PAGE).max(1) * PAGE;
        let cfg = LeakConfig {
            target,
            base: self.base,
            len: self.len,
            first: first.min(self.len),
            rate: self.rate,
            lease_ms: self.lease.as_millis() as u64,
        };
        let json = serde_json::to_string(&cfg)
            .map_err(|e| FaultError::Failed(format!("leak configuration: {e}")))?;
        let (mut hog, lines) = Hog::spawn_lines(&self.exe, &["leak".to_string(), json])?;
        undo.record(UndoAction::StopHelper { proc: hog.id })?;
        hog.go()?;
        let said = lines.wait_for(&["ready", "error"], Duration::from_secs(5));
        self.helper = Some((hog, lines));
        match said {
            Some(l) if l.starts_with("ready") => {}
            Some(l) => {
                return Err(FaultError::Failed(format!(
                    "leaking into pid {}: {}",
                    target.pid,
                    l.trim_start_matches("error ")
                )))
            }
            None => {
                return Err(FaultError::Failed(format!(
                    "leaking into pid {}: the leak helper said nothing within 5s",
                    target.pid
                )))
            }
        }
        self.target = Some(target);
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let target = self
            .target
            .ok_or_else(|| FaultError::Failed("no target".into()))?;
        // Evidence from the kernel: the range is in the target's memory map, and its
        // resident size has grown.
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", target.pid))
            .map_err(|e| FaultError::Failed(format!("reading pid {} maps: {e}", target.pid)))?;
        let prefix = format!("{:x}-", self.base);
        if !maps.lines().any(|l| l.starts_with(&prefix)) {
            return Err(FaultError::Failed(format!(
                "no mapping at {:#x} in pid {}",
                self.base, target.pid
            )));
        }
        let rss = procfs::rss_bytes(target.pid).unwrap_or(0);
        if rss <= self.rss_before {
            return Err(FaultError::Failed(format!(
                "pid {} resident size did not grow ({} KiB)",
                target.pid,
                rss / 1024
            )));
        }
        Ok(Evidence(format!(
            "pid {} maps {:#x} and its resident size grew from {} to {} KiB",
            target.pid,
            self.base,
            self.rss_before / 1024,
            rss / 1024
        )))
    }

    /// The leak as it went: bytes mapped into the target, the rate that makes, the
    /// longest the target's thread was stopped for one step.
    fn fidelity(&mut self) -> std::collections::BTreeMap<String, f64> {
        let p = self.progress();
        let mut out = std::collections::BTreeMap::from([
            ("leakedBytes".to_string(), p.mapped as f64),
            ("longestStopUs".to_string(), p.max_pause_us as f64),
            ("steps".to_string(), p.ticks as f64),
            ("requestedBytesPerS".to_string(), self.rate),
        ]);
        if p.at_secs > 0.0 {
            out.insert("leakBytesPerS".into(), p.mapped as f64 / p.at_secs);
        }
        out
    }

    fn observe(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let p = self.progress();
        if let Some(dir) = &self.cgroup {
            let ooms = cgroup::oom_kills(dir)
                .unwrap_or(0)
                .saturating_sub(self.oom_base);
            if ooms > self.reported_ooms {
                self.reported_ooms = ooms;
                // A killed process takes a moment to exit.
                let target = self.target;
                let dead =
                    target.is_some_and(|t| wait_for(Duration::from_millis(500), || !t.alive()));
                out.push(format!(
                    "OOM kill #{ooms} in {}: {}",
                    dir.display(),
                    if dead {
                        "the target was killed".to_string()
                    } else {
                        "another process in the cgroup was killed".to_string()
                    }
                ));
            }
        }
        if let (Some(why), false) = (&p.ended, self.reported_end) {
            self.reported_end = true;
            out.push(format!("leak ended after {} MiB: {why}", p.mapped >> 20));
        }
        if self
            .last_note
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(2))
            && p.ended.is_none()
        {
            self.last_note = Some(std::time::Instant::now());
            if p.at_secs > 0.0 {
                out.push(format!(
                    "leaked {} MiB into pid {} ({:.1} MiB/s achieved of {:.1} requested; longest stop {:.1}ms)",
                    p.mapped >> 20,
                    self.target.map(|t| t.pid).unwrap_or(0),
                    p.mapped as f64 / p.at_secs / 1048576.0,
                    self.rate / 1048576.0,
                    p.max_pause_us as f64 / 1000.0
                ));
            }
        }
        out
    }

    fn stop(&mut self) {
        // Between two ticks it lets go and exits; the journal's StopHelper is the backstop.
        if let Some((hog, _)) = self.helper.as_mut() {
            hog.finish(Duration::from_secs(3));
        }
    }
}
