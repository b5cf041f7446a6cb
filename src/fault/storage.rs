//! Storage faults on a running target: `storage-stall`, `io-latency`, `io-error`.
//!
//! A tracer helper (`murphy __hog io ...`, see [`crate::ptrace`]) seizes every thread of
//! the target's processes without stopping them, follows their forks, and at each file
//! syscall whose file matches the filter — by descriptor (already-open files included) or
//! by path — holds it until the fault ends, holds it for a delay, or makes it return an
//! errno. Revert asks the helper to let go (held operations then complete); the journal
//! holds the helper's identity, and if the helper dies the kernel detaches every tracee,
//! so no target is ever left stopped.

use super::hog::Hog;
use super::{require_procs, wait_for, Evidence, Fault, FaultEnv, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::model::spec::{IoError, IoLatency, StorageStall};
use crate::procfs::ProcId;
use crate::ptrace::{IoAction, IoOp, TraceConfig, TraceStats};
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Shared {
    ready: Option<Result<usize, String>>,
    stats: TraceStats,
    detached: bool,
}

pub struct Storage {
    kind: &'static str,
    paths: Vec<String>,
    ops: Vec<IoOp>,
    action: IoAction,
    env: FaultEnv,
    helper: Option<Hog>,
    shared: Arc<Mutex<Shared>>,
    targets: Vec<ProcId>,
    last: TraceStats,
    last_at: Option<Instant>,
}

impl Storage {
    pub fn stall(s: &StorageStall, env: &FaultEnv) -> Storage {
        Self::new(
            FaultKind::StorageStall.name(),
            &s.paths,
            &s.ops,
            IoAction::Stall,
            env,
        )
    }

    pub fn latency(l: &IoLatency, env: &FaultEnv) -> Storage {
        let us = |d: std::time::Duration| d.as_micros() as u64;
        let act = IoAction::Delay {
            delay_us: us(l.delay.0),
            jitter_us: l.jitter.map(|j| us(j.0)).unwrap_or(0),
        };
        Self::new(FaultKind::IoLatency.name(), &l.paths, &l.ops, act, env)
    }

    pub fn error(e: &IoError, env: &FaultEnv) -> Storage {
        let act = IoAction::Error {
            errno: crate::ptrace::errno_by_name(&e.errno).unwrap_or(libc::EIO),
            probability: e.probability.map(|p| p.ratio()).unwrap_or(1.0),
        };
        Self::new(FaultKind::IoError.name(), &e.paths, &e.ops, act, env)
    }

    fn new(
        kind: &'static str,
        paths: &[String],
        ops: &[IoOp],
        action: IoAction,
        env: &FaultEnv,
    ) -> Storage {
        Storage {
            kind,
            paths: paths.to_vec(),
            ops: if ops.is_empty() {
                IoOp::ALL.to_vec()
            } else {
                ops.to_vec()
            },
            action,
            env: env.clone(),
            helper: None,
            shared: Arc::new(Mutex::new(Shared::default())),
            targets: Vec::new(),
            last: TraceStats::default(),
            last_at: None,
        }
    }

    fn stats(&self) -> TraceStats {
        self.shared.lock().map(|s| s.stats).unwrap_or_default()
    }

    fn describe_action(&self) -> String {
        match &self.action {
            IoAction::Stall => "held until the fault ends".into(),
            IoAction::Delay {
                delay_us,
                jitter_us,
            } => format!(
                "delayed {:.1}ms ± {:.1}ms",
                *delay_us as f64 / 1000.0,
                *jitter_us as f64 / 1000.0
            ),
            IoAction::Error { errno, probability } => format!(
                "failed with {} ({:.0}% of them)",
                crate::ptrace::ERRNOS
                    .iter()
                    .find(|(_, v)| v == errno)
                    .map(|(n, _)| *n)
                    .unwrap_or("an errno"),
                probability * 100.0
            ),
        }
    }
}

/// Threads of `pid` and the pid of whoever traces each (0: nobody).
pub fn tracers_of(pid: i32) -> Vec<(i32, i32)> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    rd.filter_map(|e| {
        let tid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
        let tracer = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))?
            .trim()
            .parse()
            .ok()?;
        Some((tid, tracer))
    })
    .collect()
}

impl Fault for Storage {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        // The target's processes and everything they started (a database's background
        // writers and connection backends hold its files too); later forks are followed.
        let procs = crate::procfs::with_descendants(&require_procs(members, self.kind)?);
        let cfg = TraceConfig {
            pids: procs.iter().map(|p| p.pid).collect(),
            paths: self.paths.clone(),
            ops: self.ops.clone(),
            action: self.action.clone(),
            seed: self.env.seed,
            lease_ms: self.env.lease.as_millis() as u64,
        };
        let json = serde_json::to_string(&cfg)
            .map_err(|e| FaultError::Failed(format!("encoding the tracer's settings: {e}")))?;
        let (mut hog, out) = Hog::spawn_reporting(&self.env.exe, &["io".to_string(), json])?;
        // The helper waits for its go byte: journal it first.
        undo.record(UndoAction::Kill { proc: hog.id })?;
        let shared = self.shared.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let Ok(mut s) = shared.lock() else { return };
                if let Some(rest) = line.strip_prefix("ready threads=") {
                    s.ready = Some(Ok(rest.trim().parse().unwrap_or(0)));
                } else if let Some(rest) = line.strip_prefix("error ") {
                    s.ready = Some(Err(rest.to_string()));
                } else if let Some(st) = TraceStats::parse(&line) {
                    s.stats = st;
                } else if line == "detached" {
                    s.detached = true;
                }
            }
        });
        hog.go()?;
        let id = hog.id;
        self.helper = Some(hog);
        self.targets = procs;
        let shared = self.shared.clone();
        wait_for(Duration::from_secs(5), || {
            shared.lock().map(|s| s.ready.is_some()).unwrap_or(true)
        });
        let ready = self.shared.lock().ok().and_then(|s| s.ready.clone());
        match ready {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(FaultError::Failed(format!("tracer pid {}: {e}", id.pid))),
            None => Err(FaultError::Failed(format!(
                "tracer pid {} did not attach within 5s",
                id.pid
            ))),
        }
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let helper = self
            .helper
            .as_ref()
            .map(|h| h.id.pid)
            .ok_or_else(|| FaultError::Failed("no tracer".into()))?;
        // Evidence from the kernel: every thread of the targets names the tracer.
        let mut traced = 0;
        let mut total = 0;
        for p in self.targets.iter().filter(|p| p.alive()) {
            for (_, tracer) in tracers_of(p.pid) {
                total += 1;
                if tracer == helper {
                    traced += 1;
                }
            }
        }
        if traced == 0 {
            return Err(FaultError::Failed(format!(
                "no thread of the target is traced by pid {helper}"
            )));
        }
        Ok(Evidence(format!(
            "{traced}/{total} threads of pid {} traced by pid {helper} (kernel TracerPid); {} operations on {} {}",
            {
                let pids: Vec<String> = self.targets.iter().map(|p| p.pid.to_string()).collect();
                if pids.len() > 4 {
                    format!("{} and {} more", pids[..4].join(", "), pids.len() - 4)
                } else {
                    pids.join(", ")
                }
            },
            self.ops
                .iter()
                .map(|o| format!("{o:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join("/"),
            self.paths.join(", "),
            self.describe_action()
        )))
    }

    fn fidelity(&mut self) -> std::collections::BTreeMap<String, f64> {
        let s = self.stats();
        let mut out = std::collections::BTreeMap::from([
            ("threadsTraced".to_string(), s.threads as f64),
            ("syscallsMatched".to_string(), s.matched as f64),
            ("syscallsDelayed".to_string(), s.delayed as f64),
            ("syscallsFailed".to_string(), s.failed as f64),
            ("fdPathsCached".to_string(), s.fd_cached as f64),
            ("fdPathsResolved".to_string(), s.fd_resolved as f64),
        ]);
        if s.delayed > 0 {
            out.insert(
                "addedLatencyMeanUs".into(),
                s.held_us as f64 / s.delayed as f64,
            );
        }
        out
    }

    fn observe(&mut self) -> Vec<String> {
        let s = self.stats();
        let due = self
            .last_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if s == self.last || !due {
            return Vec::new();
        }
        let mut out = Vec::new();
        let prev = self.last;
        self.last = s;
        self.last_at = Some(Instant::now());
        match &self.action {
            IoAction::Stall => {
                if s.held_now != prev.held_now || s.matched != prev.matched {
                    out.push(format!(
                        "{} operation(s) held now ({} caught so far)",
                        s.held_now, s.matched
                    ));
                }
            }
            IoAction::Delay { .. } => {
                if s.delayed > prev.delayed {
                    out.push(format!(
                        "{} operation(s) delayed so far (mean {:.1}ms)",
                        s.delayed,
                        s.held_us as f64 / 1000.0 / s.delayed.max(1) as f64
                    ));
                }
            }
            IoAction::Error { .. } => {
                if s.failed > prev.failed {
                    out.push(format!(
                        "{} of {} matching operation(s) failed so far",
                        s.failed, s.matched
                    ));
                }
            }
        }
        out
    }

    fn stop(&mut self) {
        if let Some(h) = self.helper.as_mut() {
            // Let go gracefully (held operations complete); the journal's Kill is the
            // fallback.
            h.finish(Duration::from_secs(4));
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.stop();
    }
}
