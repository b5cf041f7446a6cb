//! The runner: lab up → targets resolve → probes start → steady state → faults on schedule
//! (inject, confirm, observe, revert) under guardrails → observe after → probes stop →
//! lab down → claims evaluated on the finished record. Ctrl-C and SIGTERM (via the `stop`
//! flag) revert everything before returning. A crash leaves the journal for `recover`.

use crate::fault::{self, Fault, FaultEnv, Member, UndoLog};
use crate::journal::{Journal, NoLab, RevertEnv, UndoAction};
use crate::lab::Lab;
use crate::model::spec::Experiment;
use crate::netns::Netns;
use crate::plan::{self, Plan, Resolver};
use crate::probe::{self, ProbeHandle, ProbeSample};
use crate::record::{Clock, Event, FaultRecord, Phases, RunRecord, RunStatus, Sample};
use crate::target;
use crate::verdict;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the runner keeps state and finds things.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Journals and run directories live here.
    pub state_dir: PathBuf,
    /// Relative paths in the lab (working directories) resolve against this.
    pub base_dir: PathBuf,
    /// Murphy's own executable (for helper processes).
    pub exe: PathBuf,
    /// Overrides `spec.seed`.
    pub seed: Option<u64>,
}

/// Why a run could not start at all (anything later ends in the record's status).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("creating journal in {}: {source}", dir.display())]
    Journal {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the run's guardian (the dead-man switch that undoes its faults should Murphy die): {source}")]
    Guardian { source: std::io::Error },
}

/// Live progress for people. The runner calls it; it must not block for long.
pub trait Progress {
    fn phase(&self, t_ms: f64, phase: &str);
    fn event(&self, t_ms: f64, line: &str);
    fn sample(&self, _s: &Sample) {}
    /// A fault confirmed in effect (`true`) or reverted (`false`).
    fn fault(&self, _t_ms: f64, _fault: &str, _active: bool) {}
    /// The workloads' counts, a few times a second.
    fn workloads(&self, _t_ms: f64, _w: Vec<crate::live::WorkloadLive>) {}
}

pub use crate::output::RunOutput;

use crate::rand::fresh as random_u64;

/// Undoing a failed injection: everything goes back, including data a fault would
/// otherwise leave to the experiment's recovery steps.
struct Rollback<'a>(&'a dyn RevertEnv);
impl RevertEnv for Rollback<'_> {
    fn restart_lab_process(
        &self,
        host: &str,
        process: &str,
    ) -> Result<String, crate::journal::LabProcessError> {
        self.0.restart_lab_process(host, process)
    }
}

/// A step that names a lab process in a run without a lab.
fn no_lab(host: &str, process: &str) -> crate::journal::LabProcessError {
    crate::journal::LabProcessError {
        host: host.into(),
        process: process.into(),
        message: "no lab is running".into(),
    }
}

/// An `argv` recovery step in progress.
struct RunningStep {
    idx: usize,
    child: std::process::Child,
    started: Instant,
    deadline: Instant,
    log: PathBuf,
}

fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let t = text.trim();
    let start = t.char_indices().rev().nth(n).map_or(0, |(i, _)| i);
    t[start..].replace('\n', " | ")
}

struct Active {
    idx: usize,
    fault: Box<dyn Fault>,
    undo: Vec<UndoAction>,
    group: String,
    revert_at: Instant,
}

struct Ctx<'a> {
    exp: &'a Experiment,
    plan: Plan,
    opts: &'a RunOptions,
    progress: &'a dyn Progress,
    stop: Arc<AtomicBool>,
    clock: Clock,
    journal: Arc<Journal>,
    lab: Option<Lab>,
    seed: u64,
    run_id: String,
    rx: Option<Receiver<ProbeSample>>,
    samples: Vec<Sample>,
    events: Vec<Event>,
    faults: Vec<FaultRecord>,
    probe_state: HashMap<String, (bool, f64)>,
    /// Logs watched for `detects` claims: (host/process, text, file, offset read, hits).
    watches: Vec<(String, String, PathBuf, u64, usize)>,
    /// Live workload counters and whether the last operation seen was ok.
    live: Vec<(String, Arc<crate::workload::Live>, Option<bool>)>,
    abort: Option<String>,
    /// What a revert or the teardown could not undo.
    left_behind: Vec<String>,
    /// The role timeline's samplers (one per cluster with a role probe), with how many of
    /// each one's answers the timeline's events have seen.
    roles: Vec<(crate::roles::RoleSampler, usize)>,
    /// Each member's last role put on the timeline.
    role_seen: HashMap<String, crate::record::RoleSeen>,
}

impl Ctx<'_> {
    fn event(&mut self, kind: &str, fault: Option<&str>, message: String) {
        let t = self.clock.now_ms();
        tracing::info!(kind, fault, t_ms = t, "{message}");
        self.progress.event(
            t,
            &match fault {
                Some(f) => format!("{kind} {f}: {message}"),
                None => format!("{kind}: {message}"),
            },
        );
        self.events.push(Event {
            t_ms: t,
            kind: kind.into(),
            fault: fault.map(str::to_string),
            message,
        });
    }

    /// Start step `idx`: `start`/`stop` run now; `argv` is spawned and polled.
    fn start_step(&mut self, idx: usize) -> Option<RunningStep> {
        let st = self.exp.spec.steps[idx].clone();
        let lab_ref = |r: &str| {
            r.split_once('/')
                .map(|(h, p)| (h.to_string(), p.to_string()))
        };
        if let Some((h, p)) = st.start.as_deref().and_then(lab_ref) {
            let msg = match &self.lab {
                Some(l) => l.restart_lab_process(&h, &p),
                None => Err(no_lab(&h, &p)),
            };
            match msg {
                Ok(m) => self.event("step", None, format!("{}: {m}", st.name)),
                Err(e) => self.event("step", None, format!("{} FAILED: {e}", st.name)),
            }
            return None;
        }
        if let Some((h, p)) = st.stop.as_deref().and_then(lab_ref) {
            let msg = match &self.lab {
                Some(l) => l.stop_process(&h, &p, Duration::from_secs(10)),
                None => Err(no_lab(&h, &p)),
            };
            match msg {
                Ok(m) => self.event("step", None, format!("{}: {m}", st.name)),
                Err(e) => self.event("step", None, format!("{} FAILED: {e}", st.name)),
            }
            return None;
        }
        let host = st.from.as_ref().and_then(|f| f.lab_host()).unwrap_or("");
        let sub = |s: &String| match &self.lab {
            Some(l) => l.substitute_for(host, s),
            None => s.clone(),
        };
        let argv: Vec<String> = st.argv.iter().map(sub).collect();
        let log = self
            .opts
            .state_dir
            .join("runs")
            .join(&self.run_id)
            .join("logs")
            .join(format!("step-{}.log", st.name.replace(['/', ' '], "_")));
        let fail = |cx: &mut Self, e: String| {
            cx.event("step", None, format!("{} FAILED to start: {e}", st.name));
            None
        };
        if let Some(parent) = log.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let out = match std::fs::File::create(&log) {
            Ok(f) => f,
            Err(e) => return fail(self, format!("log {}: {e}", log.display())),
        };
        let err = match out.try_clone() {
            Ok(f) => f,
            Err(e) => return fail(self, e.to_string()),
        };
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&self.opts.base_dir)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        let netns = match self.netns_of(st.from.as_ref()).map(|n| n.open()) {
            Some(Ok(fd)) => fd,
            Some(Err(e)) => {
                return fail(
                    self,
                    format!(
                        "entering {}: {e}",
                        st.from
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    ),
                )
            }
            None => None,
        };
        let mut run_as = None;
        if let Some(u) = &st.user {
            let Some(user) = nix::unistd::User::from_name(u).ok().flatten() else {
                return fail(self, format!("no user named {u:?}"));
            };
            let groups = std::ffi::CString::new(u.as_str())
                .ok()
                .and_then(|n| nix::unistd::getgrouplist(&n, user.gid).ok())
                .unwrap_or_default();
            cmd.env("HOME", &user.dir).env("USER", u).env("LOGNAME", u);
            run_as = Some(crate::sys::RunAs {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                groups: groups.iter().map(|g| g.as_raw()).collect(),
            });
        }
        crate::sys::new_session_before_exec(&mut cmd);
        crate::sys::enter_before_exec(&mut cmd, netns, Vec::new(), run_as);
        match cmd.spawn() {
            Ok(child) => {
                self.event(
                    "step",
                    None,
                    format!("{}: started `{}`", st.name, argv.join(" ")),
                );
                Some(RunningStep {
                    idx,
                    child,
                    started: Instant::now(),
                    deadline: Instant::now() + st.timeout(),
                    log,
                })
            }
            Err(e) => fail(self, format!("{}: {e}", argv[0])),
        }
    }

    /// Check a running step; returns it while it is still running.
    fn poll_step(&mut self, mut r: RunningStep) -> Option<RunningStep> {
        let name = self.exp.spec.steps[r.idx].name.clone();
        match r.child.try_wait() {
            Ok(Some(status)) => {
                let took = r.started.elapsed().as_secs_f64();
                if status.success() {
                    self.event("step", None, format!("{name}: done in {took:.1}s (exit 0)"));
                } else {
                    let t = tail(&r.log, 300);
                    self.event(
                        "step",
                        None,
                        format!("{name} FAILED after {took:.1}s ({status}): {t}"),
                    );
                }
                None
            }
            Ok(None) if Instant::now() >= r.deadline => {
                let _ = r.child.kill();
                let _ = r.child.wait();
                self.event(
                    "step",
                    None,
                    format!(
                        "{name} FAILED: still running after {:?}, killed",
                        self.exp.spec.steps[r.idx].timeout()
                    ),
                );
                None
            }
            Ok(None) => Some(r),
            Err(e) => {
                self.event("step", None, format!("{name} FAILED: {e}"));
                None
            }
        }
    }

    fn revert_env(&self) -> &dyn RevertEnv {
        match &self.lab {
            Some(l) => l,
            None => &crate::journal::NoLabRun,
        }
    }

    /// Take in samples until `until`, watching guardrails and the stop flag. Returns false
    /// when the run must stop.
    fn pump(&mut self, until: Instant, guard: bool) -> bool {
        let mut last_poll = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            if self.abort.is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            let wait = (until - now).min(Duration::from_millis(50));
            let got = match &self.rx {
                Some(rx) => rx.recv_timeout(wait),
                None => {
                    std::thread::sleep(wait);
                    Err(RecvTimeoutError::Timeout)
                }
            };
            if let Ok(s) = got {
                self.take_sample(s, guard);
            }
            if last_poll.elapsed() >= Duration::from_millis(250) {
                last_poll = Instant::now();
                let lab_events: Vec<String> = self
                    .lab
                    .as_ref()
                    .map(|l| l.poll().into_iter().map(|e| e.message).collect())
                    .unwrap_or_default();
                for m in lab_events {
                    self.event("lab", None, m);
                }
                self.watch_workloads();
                self.progress
                    .workloads(self.clock.now_ms(), self.workloads_live());
                self.watch_logs();
                self.watch_roles();
                if guard
                    && self.clock.now_ms() > self.exp.spec.max_duration().as_secs_f64() * 1000.0
                {
                    self.abort = Some(format!(
                        "guardrails.maxDuration ({:?}) exceeded",
                        self.exp.spec.max_duration()
                    ));
                    let m = self.abort.clone().unwrap_or_default();
                    self.event("guardrail", None, m);
                }
            }
        }
    }

    /// New lines in watched logs that contain a watched text go on the timeline.
    fn watch_logs(&mut self) {
        use std::io::{Read, Seek, SeekFrom};
        let mut found = Vec::new();
        for (log, text, path, offset, hits) in self.watches.iter_mut() {
            let Ok(mut f) = std::fs::File::open(&*path) else {
                continue;
            };
            let len = f.metadata().map_or(0, |m| m.len());
            if len < *offset {
                *offset = 0; // truncated or replaced
            }
            if len == *offset || f.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.take(1 << 20).read_to_end(&mut buf).is_err() {
                continue;
            }
            // Only whole lines; a partial last line is read again next time.
            let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            *offset += whole as u64;
            for line in String::from_utf8_lossy(&buf[..whole]).lines() {
                if line.contains(text.as_str()) && *hits < 10 {
                    *hits += 1;
                    found.push(crate::verdict::detection_message(log, line.trim()));
                }
            }
        }
        for m in found {
            self.event("detected", None, m);
        }
    }

    /// Put each member's role changes on the timeline (`r2/redis: primary`).
    fn watch_roles(&mut self) {
        let mut changes = Vec::new();
        for (sampler, seen) in self.roles.iter_mut() {
            let new = sampler.so_far(*seen);
            *seen += new.len();
            for r in new {
                let key = format!("{}/{}", r.target, r.member);
                if self.role_seen.get(&key) != Some(&r.role) {
                    self.role_seen.insert(key, r.role);
                    let what = match r.role {
                        crate::record::RoleSeen::Primary => "primary".to_string(),
                        crate::record::RoleSeen::Replica => "replica".to_string(),
                        crate::record::RoleSeen::Down => format!("down ({})", r.detail),
                        crate::record::RoleSeen::Unknown => format!("unknown ({})", r.detail),
                    };
                    changes.push((r.t_ms, format!("{} {}: {what}", r.target, r.member)));
                }
            }
        }
        for (t, m) in changes {
            self.progress.event(t, &format!("role {m}"));
            self.events.push(Event {
                t_ms: t,
                kind: "role".into(),
                fault: None,
                message: m,
            });
        }
    }

    /// Put a workload's switches between succeeding and failing on the timeline.
    fn workloads_live(&self) -> Vec<crate::live::WorkloadLive> {
        self.live
            .iter()
            .map(|(name, live, _)| crate::live::WorkloadLive {
                name: name.clone(),
                ok: live.ok.load(Ordering::Relaxed),
                failed: live.failed.load(Ordering::Relaxed),
                unknown: live.unknown.load(Ordering::Relaxed),
                last_ms: live.last_latency_ms(),
            })
            .collect()
    }

    fn watch_workloads(&mut self) {
        let mut changes = Vec::new();
        for (name, live, state) in self.live.iter_mut() {
            let Some(last) = live.last() else { continue };
            let ok = last == crate::workload::LastOp::Ok;
            if *state != Some(ok) {
                if state.is_some() || !ok {
                    changes.push(match last {
                        crate::workload::LastOp::Ok => format!("{name}: operations succeed again"),
                        crate::workload::LastOp::Failed(e) => {
                            format!("{name}: operations failing: {e}")
                        }
                    });
                }
                *state = Some(ok);
            }
        }
        for c in changes {
            self.event("workload", None, c);
        }
    }

    fn take_sample(&mut self, s: ProbeSample, guard: bool) {
        let sample = Sample {
            probe: s.probe.clone(),
            t_ms: s.t_ms,
            ok: s.outcome.ok,
            latency_ms: s.outcome.latency.as_secs_f64() * 1000.0,
            detail: if s.outcome.ok {
                String::new()
            } else {
                s.outcome.detail.clone()
            },
        };
        self.progress.sample(&sample);
        let prev = self.probe_state.get(&s.probe).copied();
        match prev {
            Some((was_ok, _)) if was_ok == sample.ok => {}
            _ => {
                self.probe_state
                    .insert(s.probe.clone(), (sample.ok, sample.t_ms));
                if prev.is_some() {
                    let msg = if sample.ok {
                        format!("{} healthy again", s.probe)
                    } else {
                        format!("{} failing: {}", s.probe, s.outcome.detail)
                    };
                    self.events.push(Event {
                        t_ms: sample.t_ms,
                        kind: "probe".into(),
                        fault: None,
                        message: msg.clone(),
                    });
                    self.progress.event(sample.t_ms, &format!("probe {msg}"));
                }
            }
        }
        if guard && !sample.ok {
            let since = self.probe_state.get(&s.probe).map_or(sample.t_ms, |x| x.1);
            for a in &self.exp.spec.guardrails.abort_when {
                if a.probe == s.probe
                    && sample.t_ms - since >= a.failing_for.as_millis_f64()
                    && self.abort.is_none()
                {
                    self.abort = Some(format!(
                        "probe {} failing for {} (abortWhen)",
                        a.probe, a.failing_for
                    ));
                }
            }
            if let Some(m) = self.abort.clone() {
                if !self.events.iter().any(|e| e.kind == "guardrail") {
                    self.event("guardrail", None, m);
                }
            }
        }
        self.samples.push(sample);
    }

    fn members_for(&self, fault_idx: usize) -> Result<(Vec<Member>, String), target::TargetError> {
        let f = &self.exp.spec.faults[fault_idx];
        let t =
            self.exp
                .spec
                .targets
                .get(&f.target)
                .ok_or_else(|| target::TargetError::Unknown {
                    target: f.target.clone(),
                })?;
        let all = target::matches(&f.target, t, self.lab.as_ref())?;
        let from = self.netns_of(t.role.as_ref().and_then(|r| r.from.as_ref()));
        let (selected, how) =
            crate::roles::select_by(&f.target, t, all, self.seed, &|probe, _, addr| {
                crate::roles::role_from(probe, addr, from.as_ref())
            })?;
        let picked = target::pick(&f.target, t, selected, self.seed);
        let max = self.exp.spec.max_targets() as usize;
        if picked.len() > max {
            return Err(target::TargetError::TooMany {
                target: f.target.clone(),
                count: picked.len(),
                max,
            });
        }
        Ok((picked, how))
    }

    fn inject(&mut self, idx: usize, faults_start: Instant) -> Option<Active> {
        let spec = self.exp.spec.faults[idx].clone();
        let _span = tracing::info_span!(
            "fault",
            fault = %spec.name,
            kind = spec.action.kind(),
            target = %spec.target
        )
        .entered();
        let group = format!("f{idx}-{}", self.run_id);
        let t0 = self.clock.now_ms();
        let started = Instant::now();
        let mut rec = FaultRecord {
            name: spec.name.clone(),
            kind: spec.action.kind().into(),
            target: spec.target.clone(),
            ..Default::default()
        };
        let members = match self.members_for(idx) {
            Ok((m, how)) => {
                if !how.is_empty() {
                    self.event(
                        "target",
                        Some(&spec.name),
                        format!("{}: {how}", spec.target),
                    );
                }
                m
            }
            Err(e) => {
                rec.error = Some(e.to_string());
                self.faults.push(rec);
                self.event("fault", Some(&spec.name), format!("not injected: {e}"));
                return None;
            }
        };
        rec.members = members.iter().map(|m| m.label.clone()).collect();
        let lease = self.exp.spec.max_duration() + Duration::from_secs(30);
        let own: Vec<std::net::Ipv4Addr> = members
            .iter()
            .flat_map(|m| m.addrs.iter().copied())
            .collect();
        let view = target::LocalResolver {
            spec: &self.exp.spec,
            lab: self.lab.as_ref(),
        };
        let resolved = match plan::resolve(&spec, &own, &view) {
            Ok(r) => r,
            Err(e) => {
                rec.error = Some(e.to_string());
                self.faults.push(rec);
                self.event("fault", Some(&spec.name), format!("not injected: {e}"));
                return None;
            }
        };
        let env = FaultEnv {
            exe: self.opts.exe.clone(),
            lease,
            peer_addrs: resolved.peers,
            seed: self.seed,
            max_data_bytes: self.exp.spec.max_data_bytes(),
            allow_paths: (self.exp.spec.guardrails.allow_paths.iter())
                .map(|p| view.substitute(p).into())
                .collect(),
            from: resolved.from.map(|p| (p.netns, p.addrs)),
        };
        let mut fault = fault::build(&resolved.action, &env, &group);
        let label = format!(
            "{} ({} on {})",
            spec.name,
            spec.action.kind(),
            rec.members.join(", ")
        );
        let journal = self.journal.clone();
        let mut undo = match UndoLog::new(&journal, &group, &label) {
            Ok(u) => u,
            Err(e) => {
                rec.error = Some(format!("journal: {e}"));
                self.faults.push(rec);
                return None;
            }
        };
        let result = fault.inject(&members, &mut undo);
        let actions = undo.into_actions();
        rec.injected_ms = Some(t0);
        if let Err(e) = result {
            // Nothing half-applied: undo everything recorded, data included.
            fault.stop();
            let rolled = fault::revert(&actions, &Rollback(self.revert_env()));
            rec.error = Some(e.to_string());
            rec.reverted_ms = Some(self.clock.now_ms());
            self.faults.push(rec);
            match rolled {
                Ok(_) => {
                    let _ = self.journal.done(&group);
                    self.event(
                        "fault",
                        Some(&spec.name),
                        format!("injection failed and was rolled back: {e}"),
                    );
                }
                Err(errs) => {
                    // The group stays open in the journal, so `murphy recover` (and the
                    // guardian) replay what is left; the run says so and exits as such.
                    let what = (errs.iter().map(ToString::to_string))
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.left_behind
                        .push(format!("fault {}: {what}", spec.name));
                    self.event(
                        "fault",
                        Some(&spec.name),
                        format!(
                            "injection failed ({e}) and its ROLLBACK FAILED (journal kept for `murphy recover`): {what}"
                        ),
                    );
                }
            }
            return None;
        }
        match fault.confirm() {
            Ok(ev) => {
                rec.confirmed = true;
                rec.confirmed_ms = Some(self.clock.now_ms());
                rec.inject_latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                rec.evidence = ev.0.clone();
                self.faults.push(rec);
                self.progress.fault(self.clock.now_ms(), &spec.name, true);
                self.event(
                    "fault",
                    Some(&spec.name),
                    format!(
                        "injected into {} and confirmed: {}",
                        members
                            .iter()
                            .map(|m| m.label.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        ev.0
                    ),
                );
            }
            Err(e) => {
                rec.error = Some(format!("not confirmed: {e}"));
                self.faults.push(rec);
                self.event(
                    "fault",
                    Some(&spec.name),
                    format!("injected but NOT confirmed: {e}"),
                );
            }
        }
        let revert_at = match self.plan.window(&spec.name) {
            Some(w) => {
                faults_start
                    + self
                        .plan
                        .revert_at(w, started.saturating_duration_since(faults_start))
            }
            None => faults_start + self.plan.fault_phase,
        };
        Some(Active {
            idx,
            fault,
            undo: actions,
            group,
            revert_at,
        })
    }

    fn revert(&mut self, mut a: Active) {
        let name = self.exp.spec.faults[a.idx].name.clone();
        let _span = tracing::info_span!("fault", fault = %name).entered();
        let achieved = a.fault.fidelity();
        a.fault.stop();
        let result = fault::revert(&a.undo, self.revert_env());
        let t = self.clock.now_ms();
        if let Some(r) = self.faults.iter_mut().find(|r| r.name == name) {
            r.reverted_ms = Some(t);
            r.achieved = achieved.clone();
        }
        if !achieved.is_empty() {
            self.event(
                "fidelity",
                Some(&name),
                format!("achieved: {}", crate::record::achieved_text(&achieved)),
            );
        }
        self.progress.fault(t, &name, false);
        match result {
            Ok(msgs) => {
                let _ = self.journal.done(&a.group);
                let what = match msgs.len() {
                    0 => "nothing to undo".to_string(),
                    1..=4 => msgs.join("; "),
                    n => format!("{}; … and {} more step(s)", msgs[..3].join("; "), n - 3),
                };
                self.event("fault", Some(&name), format!("reverted: {what}"));
            }
            Err(errs) => {
                let what = errs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                self.left_behind.push(format!("fault {name}: {what}"));
                self.event(
                    "fault",
                    Some(&name),
                    format!("REVERT FAILED (journal kept for `murphy recover`): {what}"),
                );
            }
        }
        drop(a.fault);
    }
}

/// The workloads and watches as the plan resolved them, to start.
type Resolved = (
    Vec<crate::model::spec::WorkloadSpec>,
    Vec<crate::model::spec::WatchSpec>,
);

/// What runs beside the faults from the steady state to the end: probes, watches and
/// workloads, all on the run's clock.
#[derive(Default)]
struct Observers {
    probes: Vec<ProbeHandle>,
    watches: Vec<(String, crate::watch::WatchHandle)>,
    workloads: Vec<(
        crate::model::spec::WorkloadSpec,
        Option<Netns>,
        crate::workload::Handle,
    )>,
}

/// How the run is going: the status it will end with, and why.
struct Outcome {
    status: RunStatus,
    reason: Option<String>,
    phases: Phases,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status == RunStatus::Completed
    }
    fn end(&mut self, status: RunStatus, reason: String) {
        self.status = status;
        self.reason = Some(reason);
    }
}

/// How long past `guardrails.maxDuration`, or past a stop request, a run may still be going
/// before the watchdog ends the process.
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(60);

/// Guardrails that fire even when the run is stuck (a fault's thread that never returns, a
/// revert that hangs): a thread of its own that, if the run has not ended
/// [`WATCHDOG_GRACE`] after `guardrails.maxDuration` or after a stop request (SIGINT,
/// SIGTERM), says so and exits the process without releasing the guardian — which then
/// replays the journal, faults first, then the lab.
fn watchdog(stop: Arc<AtomicBool>, finished: Arc<AtomicBool>, max: Duration, run_id: String) {
    let started = Instant::now();
    std::thread::Builder::new()
        .name("murphy-watchdog".into())
        .spawn(move || {
            let mut stop_seen: Option<Instant> = None;
            loop {
                std::thread::sleep(Duration::from_millis(200));
                if finished.load(Ordering::SeqCst) {
                    return;
                }
                if stop_seen.is_none() && stop.load(Ordering::SeqCst) {
                    stop_seen = Some(Instant::now());
                }
                let why = if started.elapsed() > max + WATCHDOG_GRACE {
                    format!(
                        "still running {} s after guardrails.maxDuration ({} s)",
                        WATCHDOG_GRACE.as_secs(),
                        max.as_secs()
                    )
                } else if stop_seen.is_some_and(|t| t.elapsed() > WATCHDOG_GRACE) {
                    format!(
                        "still running {} s after it was asked to stop",
                        WATCHDOG_GRACE.as_secs()
                    )
                } else {
                    continue;
                };
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "murphy: run {run_id} is stuck ({why}): exiting; its guardian undoes its faults and lab (see the guardian log in the state directory)"
                );
                std::process::exit(crate::report::exit::INTERNAL);
            }
        })
        .ok();
}

/// Run an experiment that has already been validated.
pub fn run(
    exp: &Experiment,
    opts: &RunOptions,
    progress: &dyn Progress,
    stop: Arc<AtomicBool>,
) -> Result<RunOutput, RunError> {
    let seed = opts.seed.or(exp.spec.seed).unwrap_or_else(random_u64);
    let run_id = format!("{:08x}", random_u64() as u32);
    let _span = tracing::info_span!(
        "experiment",
        name = %exp.metadata.name,
        run = %run_id,
        seed
    )
    .entered();
    // First of all, before the journal exists: the dead-man switch that replays it should
    // this process die without finishing (a kill at any moment leaves nothing behind).
    let guardian = crate::guardian::Guardian::start(&opts.exe, &opts.state_dir, &run_id)
        .map_err(|source| RunError::Guardian { source })?;
    let journal = match Journal::create(&opts.state_dir, &run_id) {
        Ok(j) => Arc::new(j),
        Err(source) => {
            guardian.release();
            return Err(RunError::Journal {
                dir: opts.state_dir.clone(),
                source,
            });
        }
    };
    tracing::debug!(pid = guardian.pid(), "guardian watching");
    let finished = Arc::new(AtomicBool::new(false));
    watchdog(
        stop.clone(),
        finished.clone(),
        exp.spec.max_duration(),
        run_id.clone(),
    );
    let clock = Clock::start();
    let mut cx = Ctx {
        exp,
        plan: Plan::new(&exp.spec),
        opts,
        progress,
        stop,
        clock,
        journal: journal.clone(),
        lab: None,
        seed,
        run_id: run_id.clone(),
        rx: None,
        samples: Vec::new(),
        events: Vec::new(),
        faults: Vec::new(),
        probe_state: HashMap::new(),
        live: Vec::new(),
        watches: Vec::new(),
        abort: None,
        left_behind: Vec::new(),
        roles: Vec::new(),
        role_seen: HashMap::new(),
    };
    let mut out = Outcome {
        status: RunStatus::Completed,
        reason: None,
        phases: Phases::default(),
    };
    cx.lab_up(&mut out);
    if out.ok() {
        cx.preflight(&mut out);
    }
    let mut observers = (Vec::new(), Vec::new());
    if out.ok() {
        observers = cx.resolve_observers(&mut out);
    }
    let mut obs = Observers::default();
    if out.ok() {
        obs = cx.start_observers(observers);
        cx.steady_state(&mut out);
    }
    if out.ok() {
        cx.fault_phase(&mut out);
    }
    let histories = cx.stop_workloads(std::mem::take(&mut obs.workloads), &out.status);
    let watch_samples = cx.stop_watches(std::mem::take(&mut obs.watches));
    cx.events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    // Stop probes and drain.
    for h in obs.probes {
        h.stop();
    }
    if let Some(rx) = cx.rx.take() {
        while let Ok(s) = rx.try_recv() {
            cx.take_sample(s, false);
        }
    }
    cx.watch_roles();
    cx.events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    let (mut roles, mut role_clusters) = (Vec::new(), Vec::new());
    for (sampler, _) in std::mem::take(&mut cx.roles) {
        let (samples, cluster) = sampler.stop();
        roles.extend(samples);
        role_clusters.push(cluster);
    }
    roles.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    out.phases.end_ms = clock.now_ms();
    // Prometheus is asked while the lab is still up (it may run there); the windows come
    // from the faults and phases, as the finished record will have them.
    let mut prometheus = Vec::new();
    let judged = !matches!(out.status, RunStatus::SteadyStateFailed | RunStatus::Error);
    if judged && exp.spec.claims.iter().any(|c| c.prometheus.is_some()) {
        progress.phase(clock.now_ms(), "asking Prometheus");
        let view = RunRecord::assemble(
            Vec::new(),
            Vec::new(),
            cx.faults.clone(),
            Vec::new(),
            Vec::new(),
            out.phases.clone(),
            out.status.clone(),
            None,
        );
        prometheus = crate::prom::collect(&exp.spec.claims, &view, clock.wall_start_ms());
    }
    cx.lab_down();
    let mut record = RunRecord::assemble(
        cx.samples,
        cx.events,
        cx.faults,
        histories,
        watch_samples,
        out.phases,
        out.status,
        out.reason,
    );
    record.left_behind = cx.left_behind;
    record.roles = roles;
    record.role_clusters = role_clusters;
    record.prometheus = prometheus;
    let verdicts = verdict::evaluate(&exp.spec.claims, &record);
    let _ = journal.finish();
    // Ended by itself: whatever is left is in the record (and the journal, for `recover`).
    finished.store(true, Ordering::SeqCst);
    guardian.release();
    Ok(RunOutput {
        run_id,
        seed,
        started_unix_ms: clock.wall_start_ms(),
        record,
        verdicts,
    })
}

impl Ctx<'_> {
    /// Bring the lab up (when the spec has one) and start watching the logs `detects`
    /// claims read. A lab that fails comes down again through its journal.
    fn lab_up(&mut self, out: &mut Outcome) {
        let (exp, opts, journal) = (self.exp, self.opts, self.journal.clone());
        let Some(lab_spec) = &exp.spec.lab else {
            return;
        };
        self.progress
            .phase(self.clock.now_ms(), "bringing the lab up");
        let log_dir = opts.state_dir.join("runs").join(&self.run_id).join("logs");
        match Lab::up(
            lab_spec,
            &self.run_id,
            journal.clone(),
            &opts.base_dir,
            &log_dir,
        ) {
            Ok(l) => {
                self.event(
                    "lab",
                    None,
                    format!(
                        "up: {} host(s) on bridge {} ({}/24)",
                        l.host_names().len(),
                        l.bridge,
                        l.bridge_addr
                    ),
                );
                for c in &exp.spec.claims {
                    if let Some(d) = &c.detects {
                        if let Some((h, p)) = d.log.split_once('/') {
                            let path = l.log_path(h, p);
                            let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
                            self.watches
                                .push((d.log.clone(), d.contains.clone(), path, offset, 0));
                        }
                    }
                }
                self.lab = Some(l);
            }
            Err(e) => {
                out.end(RunStatus::Error, e.to_string());
                self.event("lab", None, format!("failed: {e}"));
                // Tear down what exists via the journal.
                let groups = crate::journal::read_groups(journal.path()).unwrap_or_default();
                let actions: Vec<UndoAction> = groups
                    .into_iter()
                    .filter(|g| g.name == crate::lab::LAB_GROUP)
                    .flat_map(|g| g.actions)
                    .collect();
                match crate::journal::revert_actions(&actions, &NoLab) {
                    Ok(_) => {
                        let _ = journal.done(crate::lab::LAB_GROUP);
                    }
                    Err(errs) => {
                        let what = (errs.iter().map(ToString::to_string))
                            .collect::<Vec<_>>()
                            .join("; ");
                        self.left_behind.push(format!("lab: {what}"));
                        self.event(
                            "lab",
                            None,
                            format!("set-up undone only in part (journal kept for `murphy recover`): {what}"),
                        );
                    }
                }
            }
        }
    }

    /// Every target resolves and every `from: {netns: NAME}` exists before anything
    /// starts.
    fn preflight(&mut self, out: &mut Outcome) {
        for (name, t) in &self.exp.spec.targets {
            let members = match target::matches(name, t, self.lab.as_ref()) {
                Ok(m) => m,
                Err(e) => {
                    out.end(RunStatus::Error, format!("preflight: {e}"));
                    return;
                }
            };
            // A role probe asks each member at its address: two members at one address
            // would both answer for whichever instance listens there.
            if t.role.is_some() {
                if let Some(why) = target::shared_address(&members) {
                    out.end(
                        RunStatus::Error,
                        format!("preflight: spec.targets.{name}.members: {why}: give each member its own `address`"),
                    );
                    return;
                }
            }
        }
        let spec = &self.exp.spec;
        let froms = spec
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("spec.probes[{i}].from"), p.from.as_ref()))
            .chain(
                spec.workloads
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (format!("spec.workloads[{i}].from"), w.from.as_ref())),
            )
            .chain(
                spec.steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("spec.steps[{i}].from"), s.from.as_ref())),
            )
            .chain(spec.targets.iter().map(|(n, t)| {
                (
                    format!("spec.targets.{n}.role.from"),
                    t.role.as_ref().and_then(|r| r.from.as_ref()),
                )
            }));
        for (field, from) in froms {
            if let Some(crate::model::spec::Vantage::Netns(n)) = from {
                if !std::path::Path::new("/run/netns").join(&n.netns).exists() {
                    out.end(
                        RunStatus::Error,
                        format!(
                            "preflight: {field}: no network namespace {:?} (see `ip netns list`)",
                            n.netns
                        ),
                    );
                    return;
                }
            }
        }
    }

    /// The namespace a probe, workload, role probe or step runs from: a lab host's
    /// (`from: <host>`) or an existing one (`from: {netns: NAME}`).
    fn netns_of(&self, from: Option<&crate::model::spec::Vantage>) -> Option<Netns> {
        match from? {
            crate::model::spec::Vantage::Lab(h) => self
                .lab
                .as_ref()
                .and_then(|l| l.host(h))
                .map(|(ns, _)| Netns::Named { name: ns }),
            crate::model::spec::Vantage::Netns(n) => Some(Netns::Named {
                name: n.netns.clone(),
            }),
        }
    }

    /// Each workload and watch with its endpoints resolved through the plan
    /// (`{target:<name>}:<port>` becomes the port on the members' addresses, a socket path
    /// goes through the lab's placeholders); a target without an address ends the run.
    fn resolve_observers(&self, out: &mut Outcome) -> Resolved {
        let r = target::LocalResolver {
            spec: &self.exp.spec,
            lab: self.lab.as_ref(),
        };
        let spec = &self.exp.spec;
        let all = spec
            .workloads
            .iter()
            .map(|w| crate::plan::resolve_workload(w, &r))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|ws| {
                let watches = spec
                    .watches
                    .iter()
                    .map(|w| crate::plan::resolve_watch(w, &r))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((ws, watches))
            });
        all.unwrap_or_else(|e| {
            out.end(RunStatus::Error, format!("preflight: {e}"));
            (Vec::new(), Vec::new())
        })
    }

    /// Start probes, watches and workloads; wait (up to 30 s) for workload set-up.
    fn start_observers(&mut self, (workloads, watches): Resolved) -> Observers {
        let exp = self.exp;
        let mut obs = Observers::default();
        let (tx, rx) = channel();
        for p in &exp.spec.probes {
            obs.probes.push(probe::spawn(
                p.name.clone(),
                p.check.clone(),
                self.netns_of(p.from.as_ref()),
                p.interval(),
                p.timeout(),
                self.clock,
                tx.clone(),
            ));
        }
        self.rx = Some(rx);
        // Every cluster with a role probe: its members asked all through the run.
        for (name, t) in &exp.spec.targets {
            let Some(role) = t.role.as_ref().filter(|r| r.on_timeline()) else {
                continue;
            };
            if let Ok(members) = target::matches(name, t, self.lab.as_ref()) {
                let netns = self.netns_of(role.from.as_ref());
                let sampler =
                    crate::roles::RoleSampler::spawn(name, role, members, netns, self.clock);
                self.roles.push((sampler, 0));
            }
        }
        // Watches sample components' own view on the same clock.
        for w in watches {
            if let Some(h) = crate::watch::spawn(&w, self.clock) {
                obs.watches.push((w.name.clone(), h));
            }
        }
        // Workloads run from the steady state to the end, on the same clock.
        for w in workloads {
            let netns = self.netns_of(w.from.as_ref());
            let h = crate::workload::spawn(w.clone(), netns.clone(), self.clock);
            self.live.push((w.name.clone(), h.live.clone(), None));
            obs.workloads.push((w, netns, h));
        }
        // Workload set-up (e.g. creating a table on the primary) comes before the steady state.
        if !self.live.is_empty() {
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until
                && !self
                    .live
                    .iter()
                    .all(|(_, l, _)| l.started.load(Ordering::SeqCst))
                && !self.stop.load(Ordering::SeqCst)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        obs
    }

    /// Sample through the steady state; no fault is injected unless it held.
    fn steady_state(&mut self, out: &mut Outcome) {
        let exp = self.exp;
        self.progress
            .phase(self.clock.now_ms(), "checking the steady state");
        out.phases.steady_start_ms = self.clock.now_ms();
        if !self.pump(Instant::now() + self.plan.steady, false) {
            out.end(
                RunStatus::Interrupted,
                "interrupted during the steady state".into(),
            );
            return;
        }
        let problems = self.steady_problems(out.phases.steady_start_ms);
        if problems.is_empty() {
            self.event(
                "phase",
                None,
                format!("steady state held for {:?}", exp.spec.steady_duration()),
            );
        } else {
            let why = format!(
                "the steady state did not hold, so no fault was injected: {}",
                problems.join("; ")
            );
            out.end(RunStatus::SteadyStateFailed, why.clone());
            self.event("phase", None, why);
        }
    }

    /// What kept the steady state from holding (the rule both doors share).
    fn steady_problems(&self, since_ms: f64) -> Vec<String> {
        let workloads: Vec<crate::verdict::WorkloadProgress> = self
            .live
            .iter()
            .map(|(name, live, _)| workload_progress(&self.exp.spec, name, live))
            .collect();
        let until = self.clock.now_ms();
        crate::verdict::steady_problems(
            &self.exp.spec,
            &self.samples,
            (since_ms, until),
            &workloads,
        )
    }

    /// The fault phase: faults and recovery steps on the plan's schedule under the
    /// guardrails, everything reverted at its end (or at an abort or interrupt), then the
    /// observation after the faults.
    fn fault_phase(&mut self, out: &mut Outcome) {
        self.progress.phase(self.clock.now_ms(), "injecting faults");
        let faults_start = Instant::now();
        out.phases.faults_start_ms = Some(self.clock.now_ms());
        let (active, running) = self.schedule_loop(faults_start);
        // A step still running is stopped; whatever is still active is reverted now
        // (abort, interrupt or normal end).
        if let Some(mut r) = running {
            let _ = r.child.kill();
            let _ = r.child.wait();
            let name = self.exp.spec.steps[r.idx].name.clone();
            self.event("step", None, format!("{name}: stopped before it finished"));
        }
        for a in active {
            self.revert(a);
        }
        if self.stop.load(Ordering::SeqCst) {
            out.end(
                RunStatus::Interrupted,
                "interrupted (signal); every fault was reverted".into(),
            );
        } else if let Some(a) = self.abort.clone() {
            out.end(
                RunStatus::Aborted,
                format!("aborted by guardrail: {a}; every fault was reverted"),
            );
        }
        out.phases.faults_end_ms = Some(self.clock.now_ms());
        if !out.ok() {
            return;
        }
        self.progress
            .phase(self.clock.now_ms(), "observing after the faults");
        if !self.pump(Instant::now() + self.plan.observe_after, true) {
            if self.stop.load(Ordering::SeqCst) {
                out.end(
                    RunStatus::Interrupted,
                    "interrupted while observing after the faults".into(),
                );
            } else if let Some(a) = self.abort.clone() {
                out.end(RunStatus::Aborted, format!("aborted by guardrail: {a}"));
            }
        }
    }

    /// Carry out the plan's schedule until every fault and step is done and the fault
    /// phase is over, or the run must stop. Returns what is still active or running.
    fn schedule_loop(&mut self, faults_start: Instant) -> (Vec<Active>, Option<RunningStep>) {
        let mut pending: Vec<usize> = self.plan.windows.iter().map(|w| w.index).collect();
        let mut active: Vec<Active> = Vec::new();
        let phase_end = faults_start + self.plan.fault_phase;
        let mut steps: Vec<usize> = self.plan.steps.iter().map(|(i, _)| *i).collect();
        let mut running: Option<RunningStep> = None;
        let at = |cx: &Self, i: usize| faults_start + cx.exp.spec.faults[i].at.as_std();
        let step_at = |cx: &Self, i: usize| faults_start + cx.exp.spec.steps[i].at.as_std();
        loop {
            // Recovery steps, one at a time, in order.
            if let Some(r) = running.take() {
                running = self.poll_step(r);
            }
            if running.is_none() {
                if let Some(&i) = steps.first() {
                    if step_at(self, i) <= Instant::now() {
                        steps.remove(0);
                        running = self.start_step(i);
                    }
                }
            }
            // Due injections and reverts.
            while let Some(&i) = pending.first() {
                if at(self, i) > Instant::now() {
                    break;
                }
                pending.remove(0);
                if let Some(a) = self.inject(i, faults_start) {
                    active.push(a);
                }
            }
            let now = Instant::now();
            let (due, keep): (Vec<Active>, Vec<Active>) =
                active.into_iter().partition(|a| a.revert_at <= now);
            active = keep;
            for a in due {
                self.revert(a);
            }
            if pending.is_empty()
                && active.is_empty()
                && steps.is_empty()
                && running.is_none()
                && Instant::now() >= phase_end
            {
                break;
            }
            let next = pending
                .first()
                .map(|&i| at(self, i))
                .into_iter()
                .chain(active.iter().map(|a| a.revert_at))
                .chain(steps.first().map(|&i| step_at(self, i)))
                .chain(
                    running
                        .as_ref()
                        .map(|_| Instant::now() + Duration::from_millis(50)),
                )
                .min()
                .unwrap_or(phase_end);
            self.observe_active(&mut active);
            let until = next.min(Instant::now() + Duration::from_millis(250));
            if !self.pump(until, true) {
                break;
            }
        }
        (active, running)
    }

    /// Observations from active faults that belong on the timeline (OOMs, deaths).
    fn observe_active(&mut self, active: &mut [Active]) {
        for a in active.iter_mut() {
            let name = self.exp.spec.faults[a.idx].name.clone();
            for o in a.fault.observe() {
                if o.starts_with("OOM") || o.contains("died") {
                    self.event("observation", Some(&name), o);
                }
            }
        }
    }

    /// Stop the workloads, then read back what the system holds (while the lab is still
    /// up) and put each history's summary on the timeline.
    fn stop_workloads(
        &mut self,
        workloads: Vec<(
            crate::model::spec::WorkloadSpec,
            Option<Netns>,
            crate::workload::Handle,
        )>,
        status: &RunStatus,
    ) -> Vec<crate::record::history::History> {
        let mut histories = Vec::new();
        if !workloads.is_empty() {
            self.progress.phase(
                self.clock.now_ms(),
                "stopping workloads and reading back their writes",
            );
        }
        let read = *status == RunStatus::Completed || *status == RunStatus::Aborted;
        for hist in crate::workload::stop_and_read(workloads, self.clock, read) {
            self.event("workload", None, workload_summary(&hist));
            histories.push(hist);
        }
        histories
    }

    /// Stop the watches; a balancer's status changes go on the timeline.
    fn stop_watches(
        &mut self,
        watches: Vec<(String, crate::watch::WatchHandle)>,
    ) -> Vec<crate::record::watch::WatchSample> {
        let (samples, events) = crate::watch::stop_all(watches, self.clock.now_ms());
        self.events.extend(events);
        samples
    }

    /// Tear the lab down (when there is one).
    fn lab_down(&mut self) {
        let Some(lab) = self.lab.take() else {
            return;
        };
        self.progress
            .phase(self.clock.now_ms(), "tearing the lab down");
        match lab.teardown() {
            Ok(_) => self.event("lab", None, "torn down".into()),
            Err(e) => {
                self.left_behind.push(format!("lab: {e}"));
                self.event(
                    "lab",
                    None,
                    format!("TEARDOWN INCOMPLETE (run `murphy recover`): {e}"),
                );
            }
        }
    }
}

/// How far a running workload got, for the steady-state rule.
pub fn workload_progress(
    spec: &crate::model::spec::ExperimentSpec,
    name: &str,
    live: &crate::workload::Live,
) -> crate::verdict::WorkloadProgress {
    let required = spec
        .workloads
        .iter()
        .find(|w| w.name == name)
        .is_none_or(|w| w.must_succeed_before_faults != Some(false));
    crate::verdict::WorkloadProgress {
        required,
        name: name.to_string(),
        ok: live.ok.load(Ordering::SeqCst),
        last_error: match live.last() {
            Some(crate::workload::LastOp::Failed(e)) => Some(e),
            _ => None,
        },
    }
}

/// One line on a workload's history: counts, final read, latency, notes.
pub fn workload_summary(hist: &crate::record::history::History) -> String {
    use crate::record::history::OpResult;
    let fr = match &hist.final_read {
        Some(f) if f.ok => format!(
            "; final read: {} value(s) from {} after {} attempt(s)",
            f.values.len(),
            f.endpoint,
            f.attempts
        ),
        Some(f) => format!(
            "; final read FAILED after {} attempt(s): {}",
            f.attempts,
            f.error.as_deref().unwrap_or("?")
        ),
        None => String::new(),
    };
    format!(
        "{}: {} ok, {} failed, {} unknown{}{fr}{}",
        hist.workload,
        hist.count(OpResult::Ok),
        hist.count(OpResult::Fail),
        hist.count(OpResult::Info),
        hist.latency()
            .map(|l| format!(
                "; latency from scheduled start p50 {:.1}ms, p99 {:.1}ms, max {:.1}ms",
                l.p50_ms, l.p99_ms, l.max_ms
            ))
            .unwrap_or_default(),
        hist.notes
            .iter()
            .map(|n| format!("; {n}"))
            .collect::<String>()
    )
}
