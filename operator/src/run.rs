//! One Experiment's run on a cluster, as the controller holds it between reconciles: the
//! pods each fault chose, the probes sampling from the controller, the engine's run plan
//! ([`murphy::plan::Plan`]: each fault at `steadyState + at`, reverted after its
//! `duration` or at the end of the fault phase — the same windows `murphy run` keeps),
//! each fault resolved through the plan against the pods ([`PodView`]: its peers'
//! addresses), the injections live on agents with their leases, and the record the
//! engine's claims are evaluated on. The same [`murphy::verdict::evaluate`] judges a
//! cluster run and a `murphy run`.
//!
//! The agent calls go through [`crate::grpc::Agents`] (pooled channels, bounded fan-out);
//! everything that decides (what is due, which injections count as gone) is plain code
//! over the clock this run started.

use crate::grpc::{self, pb, Agents};
use crate::lease::Key;
use crate::select::Chosen;
use murphy::claims::{self, Verdict};
use murphy::model::spec::ExperimentSpec;
use murphy::model::spec::WorkloadSpec;
use murphy::plan::{self, Plan, Resolved, Resolver};
use murphy::probe::{self, ProbeHandle, ProbeSample};
use murphy::record::history::History;
use murphy::timeline::{Clock, Event, FaultRecord, Phases, RunRecord, RunStatus, Sample};
use murphy::workload;
use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;

/// Most agent calls in flight at once, over all agents.
pub const FAN_OUT: usize = 64;

/// A live injection: where it is and until when its lease holds (run clock, ms).
#[derive(Clone, Debug, PartialEq)]
pub struct Injection {
    pub key: Key,
    pub pod: String,
    pub node: String,
    pub addr: String,
    pub lease_until_ms: f64,
    /// The last time its agent said it is in effect (its confirmation, then each renewal).
    pub known_ms: f64,
    /// A revert was asked for and did not complete (it is being retried).
    pub revert_tried: bool,
    /// Its pod is gone: it is being released, never renewed.
    pub released: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Waiting,
    Active,
    Done,
}

/// A fault's life as a cluster operator reads it (a Kubernetes Event each, published the
/// moment the controller learns it): injected, reverted, released, ended early, failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub warning: bool,
    /// CamelCase, as Kubernetes Event reasons are.
    pub reason: &'static str,
    pub note: String,
}

/// `a, b, c` — at most `n` names, then how many more.
pub fn name_list(names: &[String], n: usize) -> String {
    let mut s = names.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > n {
        s.push_str(&format!(" (+{} more)", names.len() - n));
    }
    s
}

/// The cluster's view for the run plan: the IPv4 addresses of each target's pods (the
/// fault targets' chosen pods and every running pod of a `peers` target).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub addrs: BTreeMap<String, Vec<std::net::Ipv4Addr>>,
    /// Each cluster whose roles go on the timeline: its pods (name, IP when it has one).
    pub members: BTreeMap<String, Vec<(String, Option<std::net::Ipv4Addr>)>>,
}

impl Resolver for PodView {
    fn target_addrs(&self, target: &str) -> Vec<std::net::Ipv4Addr> {
        self.addrs.get(target).cloned().unwrap_or_default()
    }
}

/// One pod a fault will act on, with the agent serving its node.
#[derive(Clone, Debug)]
pub struct Placed {
    pub chosen: Chosen,
    /// Container name → runtime id (without the `containerd://` prefix).
    pub containers: Vec<(String, String)>,
    pub addr: String,
}

pub struct ClusterRun {
    pub uid: String,
    pub experiment: String,
    pub spec: ExperimentSpec,
    /// The schedule, shared with `murphy run`.
    pub plan: Plan,
    /// Each fault resolved through the plan (its action and peers), by name.
    pub resolved: BTreeMap<String, Resolved>,
    pub seed: u64,
    pub lease_ms: u64,
    pub clock: Clock,
    pub started_unix_ms: u64,
    /// Pods per fault, in spec order.
    pub targets: BTreeMap<String, Vec<Placed>>,
    /// Chosen pods that went away mid-window, per fault: each is an open slot its owner's
    /// next new pod fills (one for one), so the blast radius never grows.
    pub vacated: BTreeMap<String, Vec<Chosen>>,
    /// When each fault was injected (run clock): its window ends `duration` after that.
    injected_at: BTreeMap<String, f64>,
    stages: BTreeMap<String, Stage>,
    pub live: Vec<Injection>,
    pub samples: Vec<Sample>,
    pub events: Vec<Event>,
    pub faults: Vec<FaultRecord>,
    /// What happened to the faults since the controller last published it.
    pub notices: Vec<Notice>,
    /// How long each inject (false) and revert (true) took, by fault kind, in seconds,
    /// since the last time the metrics took them.
    pub timings: Vec<(bool, String, f64)>,
    /// Whether the finished run's annotations were posted (once, however often the
    /// finish is retried).
    pub annotated: bool,
    probes: Vec<ProbeHandle>,
    /// The role timeline: each cluster's pods asked their role all through the run.
    roles: Vec<murphy::roles::RoleSampler>,
    /// Pods of those clusters seen at the end (one that appeared mid-run was never asked).
    late_members: BTreeMap<String, Vec<String>>,
    rx: Option<Receiver<ProbeSample>>,
    /// Where samples go (the command probes' pods send theirs here too).
    probe_tx: Option<std::sync::mpsc::Sender<ProbeSample>>,
    /// The command probes' pods (`spec.commandPod`), deleted when the run ends.
    pub probe_pods: Vec<crate::probe_pods::ProbePod>,
    /// The tasks following their logs.
    pod_followers: Vec<tokio::task::JoinHandle<()>>,
    /// How a `command` role check is asked (in pods of its own) when a fault is due.
    pub role_asker: Option<crate::probe_pods::RoleAsker>,
    /// The workloads' clients, running from the controller since the run started (they
    /// reach pods by IP, as probes do), with their endpoints resolved through the plan.
    workloads: Vec<(WorkloadSpec, Option<murphy::netns::Netns>, workload::Handle)>,
    clients: Vec<(String, Arc<workload::Live>)>,
    /// The watches, read over the network from the controller (a haproxy stats socket on
    /// TCP), with their addresses resolved through the plan.
    watches: Vec<(String, murphy::watch::WatchHandle)>,
    /// Their histories, once stopped and read back ([`ClusterRun::end_observers`]).
    pub histories: Option<Vec<History>>,
    /// The watches' samples, once stopped.
    watch_samples: Vec<murphy::record::watch::WatchSample>,
    /// The steady state was judged (at its end, before any fault).
    steady_checked: bool,
    /// It did not hold: why. Nothing is injected; the run ends `steady-state-failed`.
    pub steady_failed: Option<String>,
    pub aborted: Option<String>,
    /// The evaluated record, kept until it is written (a failed write is retried).
    pub result: Option<(RunRecord, Vec<Verdict>)>,
}

impl ClusterRun {
    /// Resolve every fault through the run plan against `view`, then start the run's clock
    /// and its probes (sampled from the controller). A fault that cannot be resolved (its
    /// peers have no address) refuses the whole run before anything is injected.
    pub fn start(
        uid: &str,
        experiment: &str,
        spec: ExperimentSpec,
        seed: u64,
        lease_ms: u64,
        targets: BTreeMap<String, Vec<Placed>>,
        view: &PodView,
    ) -> Result<ClusterRun, plan::PlanError> {
        let resolved = spec
            .faults
            .iter()
            .map(|f| {
                let own: Vec<std::net::Ipv4Addr> = targets
                    .get(&f.name)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.chosen.pod.ip)
                    .collect();
                plan::resolve(f, &own, view).map(|r| (f.name.clone(), r))
            })
            .collect::<Result<_, _>>()?;
        let workloads = spec
            .workloads
            .iter()
            .map(|w| plan::resolve_workload(w, view))
            .collect::<Result<Vec<_>, _>>()?;
        let watches = spec
            .watches
            .iter()
            .map(|w| plan::resolve_watch(w, view))
            .collect::<Result<Vec<_>, _>>()?;
        let clock = Clock::start();
        let (tx, rx) = channel();
        // A command probe never runs here: it runs in a pod of its own
        // ([`ClusterRun::follow_probe_pods`]), or the run is refused at admission.
        let probes = spec
            .probes
            .iter()
            .filter(|p| p.check.command.is_none())
            .map(|p| {
                probe::spawn(
                    p.name.clone(),
                    p.check.clone(),
                    None,
                    p.interval(),
                    p.timeout(),
                    clock,
                    tx.clone(),
                )
            })
            .collect();
        let roles = view
            .members
            .iter()
            .filter_map(|(name, pods)| {
                let role = spec.targets.get(name)?.role.as_ref()?;
                let members = pods
                    .iter()
                    .map(|(pod, ip)| murphy::fault::Member {
                        label: pod.clone(),
                        procs: Vec::new(),
                        netns: murphy::netns::Netns::Root,
                        addrs: ip.iter().copied().collect(),
                        lab: None,
                    })
                    .collect();
                Some(murphy::roles::RoleSampler::spawn(
                    name, role, members, None, clock,
                ))
            })
            .collect();
        let faults = spec
            .faults
            .iter()
            .map(|f| FaultRecord {
                name: f.name.clone(),
                kind: f.action.kind().to_string(),
                target: f.target.clone(),
                members: targets
                    .get(&f.name)
                    .map(|ps| ps.iter().map(|p| pod_name(&p.chosen)).collect())
                    .unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        let stages = spec
            .faults
            .iter()
            .map(|f| (f.name.clone(), Stage::Waiting))
            .collect();
        let workloads: Vec<_> = workloads
            .into_iter()
            .map(|w| {
                let h = workload::spawn(w.clone(), None, clock);
                (w, None, h)
            })
            .collect();
        let clients = workloads
            .iter()
            .map(|(w, _, h)| (w.name.clone(), h.live.clone()))
            .collect();
        let watches = watches
            .iter()
            .filter_map(|w| Some((w.name.clone(), murphy::watch::spawn(w, clock)?)))
            .collect();
        let mut run = ClusterRun {
            uid: uid.into(),
            experiment: experiment.into(),
            started_unix_ms: clock.wall_start_ms(),
            plan: Plan::new(&spec),
            resolved,
            spec,
            seed,
            lease_ms,
            clock,
            targets,
            vacated: BTreeMap::new(),
            injected_at: BTreeMap::new(),
            stages,
            live: Vec::new(),
            samples: Vec::new(),
            events: Vec::new(),
            faults,
            notices: Vec::new(),
            timings: Vec::new(),
            annotated: false,
            probes,
            roles,
            late_members: BTreeMap::new(),
            rx: Some(rx),
            probe_tx: Some(tx),
            probe_pods: Vec::new(),
            pod_followers: Vec::new(),
            role_asker: None,
            workloads,
            clients,
            watches,
            histories: None,
            watch_samples: Vec::new(),
            steady_checked: false,
            steady_failed: None,
            aborted: None,
            result: None,
        };
        run.event("phase", None, "steady state".into());
        Ok(run)
    }

    pub fn now_ms(&self) -> f64 {
        self.clock.now_ms()
    }

    /// The pods of a role-timeline cluster as they are at the end of the run.
    pub fn seen_members(&mut self, target: &str, pods: Vec<String>) {
        self.late_members.insert(target.to_string(), pods);
    }

    fn notice(&mut self, warning: bool, reason: &'static str, note: String) {
        self.notices.push(Notice {
            warning,
            reason,
            note,
        });
    }

    fn event(&mut self, kind: &str, fault: Option<&str>, message: String) {
        self.events.push(Event {
            t_ms: self.clock.now_ms(),
            kind: kind.into(),
            fault: fault.map(str::to_string),
            message,
        });
    }

    /// Move probe samples onto the record.
    pub fn drain(&mut self) {
        if let Some(rx) = &self.rx {
            while let Ok(s) = rx.try_recv() {
                self.samples.push(Sample {
                    probe: s.probe,
                    t_ms: s.t_ms,
                    ok: s.outcome.ok,
                    latency_ms: s.outcome.latency.as_secs_f64() * 1000.0,
                    detail: s.outcome.detail,
                });
            }
        }
    }

    fn steady_ms(&self) -> f64 {
        self.plan.steady.as_secs_f64() * 1000.0
    }

    /// When the fault phase ends: when it is over and every window has closed (the plan).
    fn fault_phase_end_ms(&self) -> f64 {
        self.steady_ms() + self.plan.faults_end().as_secs_f64() * 1000.0
    }

    /// How long the run lasts from its start: steady state, fault phase, observation.
    pub fn length_ms(spec: &ExperimentSpec) -> u64 {
        Plan::new(spec).length().as_millis() as u64
    }

    /// (start, end) of a fault's scheduled window on the run clock, from the plan.
    pub fn window(&self, name: &str) -> Option<(f64, f64)> {
        let (start, end) = self.plan.span(self.plan.window(name)?);
        let steady = self.steady_ms();
        Some((
            steady + start.as_secs_f64() * 1000.0,
            steady + end.as_secs_f64() * 1000.0,
        ))
    }

    /// When the fault's window closes (run clock): `duration` after its actual injection,
    /// or the end of the fault phase, by the plan's rule (the one `murphy run` keeps).
    pub fn revert_due_ms(&self, name: &str) -> Option<f64> {
        let w = self.plan.window(name)?;
        let steady = self.steady_ms();
        let Some(t) = self.injected_at.get(name) else {
            return self.window(name).map(|(_, e)| e);
        };
        let injected = Duration::from_secs_f64(((t - steady) / 1000.0).max(0.0));
        Some(steady + self.plan.revert_at(w, injected).as_secs_f64() * 1000.0)
    }

    /// Injections whose lease has not run out: the only ones that can still be in effect.
    pub fn unexpired(&self) -> usize {
        let now = self.now_ms();
        self.live.iter().filter(|i| i.lease_until_ms > now).count()
    }

    /// When the schedule next needs a step (ms from now), for the requeue.
    pub fn next_due_ms(&self) -> Option<u64> {
        let now = self.now_ms();
        // The steady state is judged at its end, not whenever the next step comes.
        let steady_end = (!self.steady_checked).then(|| self.steady_ms());
        self.stages
            .iter()
            .filter_map(|(name, st)| {
                let (s, _) = self.window(name)?;
                match st {
                    Stage::Waiting => Some(s),
                    Stage::Active => self.revert_due_ms(name),
                    Stage::Done => None,
                }
            })
            .chain(steady_end)
            .map(|t| (t - now).max(0.0) as u64)
            .min()
    }

    /// Renew leases due for renewal (first: a slow injection must not let them lapse),
    /// inject what is due, revert what ended, and retry reverts that failed.
    pub async fn step(&mut self, agents: &Agents) {
        self.drain();
        self.renew(agents).await;
        self.retry_releases(agents).await;
        let now = self.now_ms();
        if !self.steady_checked && now >= self.steady_ms() {
            self.judge_steady_state();
        }
        let names: Vec<String> = self.stages.keys().cloned().collect();
        for name in names {
            let Some((start, _)) = self.window(&name) else {
                continue;
            };
            let end = self.revert_due_ms(&name).unwrap_or(f64::INFINITY);
            let st = self.stages[&name];
            if st == Stage::Waiting
                && now >= start
                && self.steady_checked
                && self.steady_failed.is_none()
                && self.aborted.is_none()
            {
                self.stages.insert(name.clone(), Stage::Active);
                // Its length counts from the injection (set in `inject`, after any role
                // check), not from when it fell due.
                self.injected_at.insert(name.clone(), now);
                self.inject(agents, &name).await;
            } else if st == Stage::Active && now >= end {
                self.stages.insert(name.clone(), Stage::Done);
                self.revert(agents, Some(&name), "its window ended").await;
            } else if st == Stage::Done && self.live.iter().any(|i| i.key.fault == name) {
                self.revert(agents, Some(&name), "retrying a failed revert")
                    .await;
            }
        }
    }

    /// Say on the timeline how a fault's role-aware target was chosen (each pod's answer),
    /// as `murphy run` does.
    pub fn chosen_by_role(&mut self, fault: &str, how: String) {
        self.event("target", Some(fault), how);
    }

    /// At the end of the steady state, by the rule `murphy run` keeps: every steady-state
    /// probe at its share of healthy samples and every workload with a success, or no fault
    /// is injected at all.
    pub fn judge_steady_state(&mut self) {
        self.drain();
        self.steady_checked = true;
        let progress: Vec<_> = self
            .clients
            .iter()
            .map(|(name, live)| murphy::runner::workload_progress(&self.spec, name, live))
            .collect();
        let window = (0.0, self.steady_ms());
        let problems =
            murphy::verdict::steady_problems(&self.spec, &self.samples, window, &progress);
        if problems.is_empty() {
            let held = format!("steady state held for {:?}", self.plan.steady);
            self.event("phase", None, held);
        } else {
            let why = format!(
                "the steady state did not hold, so no fault was injected: {}",
                problems.join("; ")
            );
            self.event("phase", None, why.clone());
            self.notice(true, "SteadyStateFailed", why.clone());
            for st in self.stages.values_mut() {
                *st = Stage::Done;
            }
            self.steady_failed = Some(why);
        }
    }

    /// The workloads and watches, to stop (and read back) off the async threads: the final
    /// read waits up to each workload's deadline ([`workload::stop_and_read`]), a watch
    /// joins its sampler ([`murphy::watch::stop_all`]).
    pub fn take_observers(&mut self) -> Observers {
        (
            std::mem::take(&mut self.workloads),
            std::mem::take(&mut self.watches),
        )
    }

    /// Keep the stopped workloads' histories and the watches' samples for the record, each
    /// history summarized on the timeline as `murphy run` does.
    pub fn end_observers(&mut self, histories: Vec<History>, watched: Watched) {
        for h in &histories {
            self.event("workload", None, murphy::runner::workload_summary(h));
        }
        self.histories = Some(histories);
        self.watch_samples = watched.0;
        self.events.extend(watched.1);
    }

    /// How the run ends: the steady state failed, it was aborted (why), or it completed.
    pub fn ending(&self) -> (RunStatus, Option<String>) {
        if let Some(why) = &self.steady_failed {
            (RunStatus::SteadyStateFailed, Some(why.clone()))
        } else if let Some(why) = &self.aborted {
            (RunStatus::Aborted, Some(why.clone()))
        } else {
            (RunStatus::Completed, None)
        }
    }

    /// The record of `fault` injected into `p` at `t0` (its lease counted from then).
    fn injection(&self, fault: &str, p: &Placed, t0: f64) -> Injection {
        Injection {
            key: Key {
                experiment: self.experiment.clone(),
                fault: fault.to_string(),
                pod_uid: p.chosen.pod.uid.clone(),
            },
            pod: pod_name(&p.chosen),
            node: p.chosen.pod.node.clone().unwrap_or_default(),
            addr: p.addr.clone(),
            lease_until_ms: t0 + self.lease_ms as f64,
            known_ms: t0,
            revert_tried: false,
            released: false,
        }
    }

    async fn inject(&mut self, agents: &Agents, fault: &str) {
        let placed = self.targets.get(fault).cloned().unwrap_or_default();
        // Pods chosen by their role at the start are injected only if they still have it
        // now (as `murphy run` asks at injection): killing a follower in a "leader kill"
        // would let its claims hold on a fault that never happened.
        if let Some(why) = self.role_changed(fault, &placed).await {
            let msg = format!("not injected: {why}");
            self.event("fault", Some(fault), msg.clone());
            self.notice(true, "FaultFailed", format!("{fault}: {msg}"));
            self.aborted = Some(format!("fault {fault}: {why}"));
            return;
        }
        // The role check may have taken seconds (a command role check's one-shot pods): the
        // fault's `duration` starts now, as on `murphy run`.
        let now = self.now_ms();
        self.injected_at.insert(fault.to_string(), now);
        self.inject_into(agents, fault, &placed, true).await;
    }

    /// For a fault whose target selects the primary or the replicas, why a chosen pod no
    /// longer has that role (asked now at its IP, off the async threads); `None` when all do
    /// or the target does not select by role.
    async fn role_changed(&mut self, fault: &str, placed: &[Placed]) -> Option<String> {
        // `&mut self` (Send), not `&self`: the run holds a probe receiver that is not Sync.
        let (want, probe, pods) = self.role_check(fault, placed)?;
        if probe.command.is_some() {
            // Asked in one-shot pods, never here; no way to ask is no answer.
            let Some(asker) = self.role_asker.clone() else {
                return Some("its command role check cannot be asked (no spec.commandPod)".into());
            };
            let target = self
                .spec
                .fault(fault)
                .map(|f| f.target.clone())
                .unwrap_or_default();
            let members: Vec<(String, std::net::Ipv4Addr)> = pods
                .iter()
                .filter_map(|(n, ip)| Some((n.clone(), (*ip)?)))
                .collect();
            let roles = asker.ask(&target, &probe, &members).await;
            return wrong_roles(
                want,
                pods.into_iter()
                    .map(|(n, ip)| {
                        let r = ip.and_then(|_| roles.get(&n).cloned());
                        (n, r)
                    })
                    .collect(),
            );
        }
        roles_now(want, probe, pods).await
    }

    /// What [`Self::role_changed`] asks: the role wanted, how to ask, and each chosen pod.
    fn role_check(&self, fault: &str, placed: &[Placed]) -> Option<RoleCheck> {
        use murphy::model::spec::Select;
        use murphy::roles::Role;
        let f = self.spec.fault(fault)?;
        let t = self.spec.targets.get(&f.target)?;
        let want = match t.select? {
            Select::Primary => Role::Primary,
            Select::Replica => Role::Replica,
            _ => return None,
        };
        let probe = t.role.clone()?;
        let pods = placed
            .iter()
            .map(|p| (pod_name(&p.chosen), p.chosen.pod.ip))
            .collect();
        Some((want, probe, pods))
    }

    /// Inject `fault` into `placed`; `first` for the fault's own start (a replacement
    /// pod's injection adds to the record instead).
    async fn inject_into(&mut self, agents: &Agents, fault: &str, placed: &[Placed], first: bool) {
        let Some(spec) = self.spec.fault(fault).cloned() else {
            return;
        };
        let (action, peers) = match self.resolved.get(fault) {
            Some(r) => (&r.action, r.peers.iter().map(|a| a.to_string()).collect()),
            None => (&spec.action, Vec::new()),
        };
        let action_json = serde_json::to_string(action).unwrap_or_default();
        let calls: Vec<(String, pb::InjectRequest)> = placed
            .iter()
            .map(|p| {
                (
                    p.addr.clone(),
                    pb::InjectRequest {
                        experiment: self.experiment.clone(),
                        fault: fault.to_string(),
                        pod: pod_name(&p.chosen),
                        pod_uid: p.chosen.pod.uid.clone(),
                        containers: p
                            .containers
                            .iter()
                            .map(|(n, id)| pb::Container {
                                name: n.clone(),
                                id: id.clone(),
                            })
                            .collect(),
                        action_json: action_json.clone(),
                        lease_ms: self.lease_ms,
                        seed: self.seed,
                        peer_addrs: peers.clone(),
                    },
                )
            })
            .collect();
        let t0 = self.now_ms();
        self.event(
            "fault",
            Some(fault),
            format!(
                "injecting {} into {} pod(s)",
                spec.action.kind(),
                calls.len()
            ),
        );
        let results = agents
            .fan_out(calls, FAN_OUT, |mut c, r| async move {
                c.inject(r).await.map(|x| x.into_inner())
            })
            .await;
        let t1 = self.now_ms();
        let mut evidence = Vec::new();
        let mut errors = Vec::new();
        for (p, r) in placed.iter().zip(results) {
            match r {
                Ok(reply) => {
                    evidence.push(format!("{}: {}", pod_name(&p.chosen), reply.evidence));
                    let mut i = self.injection(fault, p, t0);
                    i.known_ms = t1;
                    self.live.push(i);
                }
                Err(e) => {
                    if matches!(
                        e.code(),
                        Code::DeadlineExceeded
                            | Code::Cancelled
                            | Code::Unknown
                            | Code::Unavailable
                    ) {
                        // The call may have run on the agent after all: keep it so it is
                        // reverted (an agent that has nothing answers NotFound).
                        let i = self.injection(fault, p, t0);
                        self.live.push(i);
                    }
                    errors.push(format!("{}: {}", pod_name(&p.chosen), e.message()))
                }
            }
        }
        let ok = errors.is_empty() && !evidence.is_empty();
        if let Some(rec) = self.faults.iter_mut().find(|f| f.name == fault) {
            if first {
                rec.injected_ms = Some(t0);
                rec.confirmed = ok;
                rec.confirmed_ms = ok.then_some(t1);
                rec.inject_latency_ms = ok.then_some(t1 - t0);
                rec.evidence = evidence.join("; ");
                rec.error = (!errors.is_empty()).then(|| errors.join("; "));
            } else {
                rec.members
                    .extend(placed.iter().map(|p| pod_name(&p.chosen)));
                for e in &evidence {
                    rec.evidence = format!("{}; {e}", rec.evidence);
                }
                if !errors.is_empty() {
                    let prev = rec.error.take().map(|e| e + "; ").unwrap_or_default();
                    rec.error = Some(prev + &errors.join("; "));
                }
            }
        }
        let msg = if ok {
            format!(
                "confirmed on {} pod(s) in {:.0} ms",
                evidence.len(),
                t1 - t0
            )
        } else {
            format!(
                "FAILED on {} of {} pod(s): {}",
                errors.len(),
                placed.len(),
                errors.join("; ")
            )
        };
        self.event("fault", Some(fault), msg.clone());
        let pods: Vec<String> = placed.iter().map(|p| pod_name(&p.chosen)).collect();
        let kind = spec.action.kind();
        self.timings
            .push((false, kind.to_string(), (t1 - t0).max(0.0) / 1000.0));
        if ok {
            let how = if first { "" } else { " (replacement pods)" };
            self.notice(
                false,
                "FaultInjected",
                format!(
                    "{fault} ({kind}) in effect on {}{how}, confirmed in {:.0} ms",
                    name_list(&pods, 20),
                    t1 - t0
                ),
            );
        } else {
            self.notice(
                true,
                "FaultFailed",
                format!("{fault} ({kind}) did not take: {msg}"),
            );
        }
        if !errors.is_empty() {
            // A fault that did not take everywhere is not the experiment asked for.
            self.aborted = Some(format!("fault {fault}: {msg}"));
        }
    }

    /// Revert live injections (of one fault, or all). Injections whose agent says they are
    /// unknown (reverted at lease lapse, or never there) count as reverted; a failure
    /// stays live and is retried on the next call.
    pub async fn revert(&mut self, agents: &Agents, fault: Option<&str>, why: &str) {
        let (these, rest): (Vec<Injection>, Vec<Injection>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|i| fault.is_none_or(|f| i.key.fault == f));
        self.live = rest;
        if these.is_empty() {
            if let Some(f) = fault {
                self.mark_reverted(f, None);
            }
            return;
        }
        let t0 = std::time::Instant::now();
        let results = revert_calls(agents, &these).await;
        let took = t0.elapsed().as_secs_f64();
        let mut kinds: Vec<String> = these
            .iter()
            .filter_map(|i| {
                self.faults
                    .iter()
                    .find(|f| f.name == i.key.fault)
                    .map(|f| f.kind.clone())
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        self.timings
            .extend(kinds.into_iter().map(|k| (true, k, took)));
        let now = self.now_ms();
        let mut failed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut undone: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, r) in these.into_iter().zip(results) {
            match r {
                Ok(reply) => {
                    if !reply.achieved.is_empty() {
                        if let Some(rec) = self.faults.iter_mut().find(|f| f.name == i.key.fault) {
                            murphy::record::merge_achieved(&mut rec.achieved, reply.achieved);
                        }
                    }
                    undone.entry(i.key.fault.clone()).or_default().push(i.pod)
                }
                Err(e) if e.code() == Code::NotFound => {
                    // The agent no longer held it at the first ask: it ended there before
                    // now (an agent that restarted, or a lease that lapsed), so the window
                    // was not covered from its last sign of life on. (On a retry, an
                    // earlier attempt may have done it.)
                    if !i.revert_tried {
                        self.ended_early(
                            &i.key.fault,
                            i.known_ms,
                            format!(
                                "the agent on {} no longer held it on {} when it was reverted",
                                i.node, i.pod
                            ),
                        );
                    }
                }
                Err(e)
                    if i.lease_until_ms <= now
                        && matches!(e.code(), Code::Unavailable | Code::Cancelled) =>
                {
                    // Unreachable, but its lease ran out: the agent reverted it at the
                    // lapse, or its node is gone with it. Nobody can say it stayed in
                    // effect until its window closed. (An agent that answers with an
                    // error, or too slowly, tried: that is retried, never counted.)
                    if !i.revert_tried {
                        self.ended_early(
                            &i.key.fault,
                            i.known_ms,
                            format!(
                                "its lease on {} lapsed while the agent on {} was unreachable",
                                i.pod, i.node
                            ),
                        );
                    }
                }
                Err(e) => {
                    failed.entry(i.key.fault.clone()).or_default().push(format!(
                        "{}: {}",
                        i.pod,
                        e.message()
                    ));
                    let mut i = i;
                    i.revert_tried = true;
                    self.live.push(i);
                }
            }
        }
        let names: Vec<String> = match fault {
            Some(f) => vec![f.to_string()],
            None => self.faults.iter().map(|f| f.name.clone()).collect(),
        };
        for f in names {
            let errs = failed.get(&f).cloned();
            let was_injected = self
                .faults
                .iter()
                .any(|r| r.name == f && r.injected_ms.is_some() && r.reverted_ms.is_none());
            if !was_injected {
                continue;
            }
            match &errs {
                None => {
                    self.event("fault", Some(&f), format!("reverted ({why})"));
                    let pods = undone.get(&f).cloned().unwrap_or_default();
                    let on = if pods.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", name_list(&pods, 20))
                    };
                    self.notice(false, "FaultReverted", format!("{f} reverted{on} ({why})"));
                    let achieved = self
                        .faults
                        .iter()
                        .find(|r| r.name == f)
                        .map(|r| r.achieved.clone())
                        .unwrap_or_default();
                    if !achieved.is_empty() {
                        self.event(
                            "fidelity",
                            Some(&f),
                            format!(
                                "achieved on its pods: {}",
                                murphy::record::achieved_text(&achieved)
                            ),
                        );
                    }
                }
                Some(e) => {
                    let msg = format!("revert FAILED, retrying: {}", e.join("; "));
                    self.event("fault", Some(&f), msg.clone());
                    self.notice(true, "RevertFailed", format!("{f}: {msg}"));
                }
            }
            self.mark_reverted(&f, errs);
        }
    }

    fn mark_reverted(&mut self, fault: &str, errors: Option<Vec<String>>) {
        let now = self.now_ms();
        if let Some(rec) = self.faults.iter_mut().find(|r| r.name == fault) {
            if errors.is_none() && rec.injected_ms.is_some() && rec.reverted_ms.is_none() {
                rec.reverted_ms = Some(now);
            }
        }
        if errors.is_none() {
            self.stages.insert(fault.to_string(), Stage::Done);
        }
    }

    /// Renew leases that are a third or more through.
    pub async fn renew(&mut self, agents: &Agents) {
        let now = self.now_ms();
        let third = self.lease_ms as f64 / 3.0;
        // A fault whose window closed is never renewed (its revert is being retried).
        let active = |inj: &Injection| {
            !inj.released && self.stages.get(&inj.key.fault) == Some(&Stage::Active)
        };
        // A lease that already ran out (the controller came too late) is lost: the agent
        // reverts at the lapse.
        let mut lost: BTreeMap<String, (f64, Vec<String>)> = BTreeMap::new();
        for inj in self
            .live
            .iter()
            .filter(|i| active(i) && i.lease_until_ms <= now)
        {
            let entry = lost
                .entry(inj.key.fault.clone())
                .or_insert((f64::INFINITY, Vec::new()));
            entry.0 = entry.0.min(inj.known_ms);
            entry.1.push(format!(
                "its lease on {} lapsed before it was renewed",
                inj.pod
            ));
        }
        let due: Vec<usize> = (0..self.live.len())
            .filter(|&i| {
                let left = self.live[i].lease_until_ms - now;
                left > 0.0 && left <= 2.0 * third && active(&self.live[i])
            })
            .collect();
        if due.is_empty() {
            self.end_lost(agents, lost).await;
            return;
        }
        let lease = self.lease_ms;
        let calls = due
            .iter()
            .map(|&i| {
                (
                    self.live[i].addr.clone(),
                    pb::RenewRequest {
                        fault: Some(fault_ref(&self.live[i].key)),
                        lease_ms: lease,
                    },
                )
            })
            .collect();
        let results = agents
            .fan_out(calls, FAN_OUT, |mut c, r| async move {
                c.renew(r).await.map(|x| x.into_inner())
            })
            .await;
        for (&i, r) in due.iter().zip(results) {
            match r {
                Ok(_) => {
                    self.live[i].lease_until_ms = now + lease as f64;
                    self.live[i].known_ms = now;
                }
                Err(e) => {
                    let (pod, fault) = (self.live[i].pod.clone(), self.live[i].key.fault.clone());
                    let why = format!("renewing the lease on {pod} failed: {}", e.message());
                    self.event("fault", Some(&fault), why.clone());
                    let entry = lost.entry(fault).or_insert((f64::INFINITY, Vec::new()));
                    entry.0 = entry.0.min(self.live[i].known_ms);
                    entry.1.push(why);
                }
            }
        }
        self.end_lost(agents, lost).await;
    }

    /// Nobody can say these faults are still in effect: each window ends now, with the
    /// truth in the record (claims on it cannot hold), and the fault is reverted everywhere
    /// rather than left to run on uncounted.
    async fn end_lost(&mut self, agents: &Agents, lost: BTreeMap<String, (f64, Vec<String>)>) {
        for (fault, (known, why)) in lost {
            self.ended_early(&fault, known, why.join("; "));
            self.revert(agents, Some(&fault), "its lease could not be renewed")
                .await;
            // Closed either way: a revert that failed is retried on every step.
            self.stages.insert(fault, Stage::Done);
        }
    }

    /// Record that `fault` stopped being (known to be) in effect before its window
    /// closed; the first such report stands.
    fn ended_early(&mut self, fault: &str, last_known_ms: f64, reason: String) {
        let Some(rec) = self.faults.iter_mut().find(|r| r.name == fault) else {
            return;
        };
        if rec.ended_early.is_some() || rec.reverted_ms.is_some() {
            return;
        }
        rec.ended_early = Some(murphy::record::EarlyEnd {
            last_known_ms,
            reason: reason.clone(),
        });
        self.event(
            "fault",
            Some(fault),
            format!("ended before its window closed: {reason}"),
        );
        self.notice(
            true,
            "FaultEndedEarly",
            format!("{fault} ended before its window closed (claims on it cannot hold): {reason}"),
        );
    }

    /// Re-apply a fault whose window is open to pods that replaced its chosen ones.
    /// `gone` are the UIDs of the pods they replace: those leave the fault's targets, so
    /// each replaced pod is followed once and the blast radius stays what was chosen.
    /// Revert released injections; what fails stays released (never renewed: its lease
    /// runs out on the agent) and is retried on the next step. Returns the failures.
    async fn release_now(&mut self, agents: &Agents, these: Vec<Injection>) -> Vec<String> {
        let results = revert_calls(agents, &these).await;
        let mut failed = Vec::new();
        for (mut i, r) in these.into_iter().zip(results) {
            match r {
                Ok(_) => {}
                Err(e) if e.code() == Code::NotFound => {}
                Err(e) => {
                    failed.push(format!("{}: {}", i.pod, e.message()));
                    i.released = true;
                    i.revert_tried = true;
                    self.live.push(i);
                }
            }
        }
        failed
    }

    /// Retry releases that failed (each step).
    async fn retry_releases(&mut self, agents: &Agents) {
        let (these, rest): (Vec<Injection>, Vec<Injection>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|i| i.released);
        self.live = rest;
        if these.is_empty() {
            return;
        }
        let failed = self.release_now(agents, these).await;
        if !failed.is_empty() {
            let fault = self
                .live
                .iter()
                .find(|i| i.released)
                .map(|i| i.key.fault.clone());
            self.event(
                "fault",
                fault.as_deref(),
                format!("releasing FAILED, retrying: {}", failed.join("; ")),
            );
        }
    }

    pub async fn reinject(
        &mut self,
        agents: &Agents,
        fault: &str,
        new: Vec<Placed>,
        gone: &[String],
    ) {
        if new.is_empty() || self.stages.get(fault) != Some(&Stage::Active) {
            return;
        }
        let names: Vec<String> = new.iter().map(|p| pod_name(&p.chosen)).collect();
        self.event(
            "fault",
            Some(fault),
            format!("replacement pod(s) {}: injecting again", names.join(", ")),
        );
        let targets = self.targets.entry(fault.to_string()).or_default();
        targets.retain(|p| !gone.contains(&p.chosen.pod.uid));
        targets.extend(new.iter().cloned());
        // Each replacement fills the slot of a gone pod of its owner.
        if let Some(slots) = self.vacated.get_mut(fault) {
            for p in &new {
                if let Some(k) = slots
                    .iter()
                    .position(|c| c.pod.owner.is_some() && c.pod.owner == p.chosen.pod.owner)
                {
                    slots.remove(k);
                }
            }
        }
        self.inject_into(agents, fault, &new, false).await;
    }

    /// Give back the injections of `fault` on pods that are gone (deleted, terminating):
    /// reverted on their agents now, and the pods leave the fault's targets (so the pods
    /// that count toward the blast radius are only those still running).
    pub async fn release(&mut self, agents: &Agents, fault: &str, gone: &[String]) {
        if gone.is_empty() {
            return;
        }
        let (these, rest): (Vec<Injection>, Vec<Injection>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|i| i.key.fault == fault && gone.contains(&i.key.pod_uid));
        self.live = rest;
        // Each gone pod leaves the targets and opens a slot its replacement fills.
        if let Some(targets) = self.targets.get_mut(fault) {
            let (left, kept): (Vec<Placed>, Vec<Placed>) = std::mem::take(targets)
                .into_iter()
                .partition(|p| gone.contains(&p.chosen.pod.uid));
            *targets = kept;
            self.vacated
                .entry(fault.to_string())
                .or_default()
                .extend(left.into_iter().map(|p| p.chosen));
        }
        if these.is_empty() {
            return;
        }
        let pods: Vec<String> = these.iter().map(|i| i.pod.clone()).collect();
        // From here the fault covers fewer pods than were chosen: the window is no longer
        // the one the claims speak about.
        let known = these
            .iter()
            .map(|i| i.known_ms)
            .fold(f64::INFINITY, f64::min);
        self.ended_early(
            fault,
            known,
            format!(
                "pod(s) {} went away mid-window, so the fault covered fewer pods than chosen",
                pods.join(", ")
            ),
        );
        let failed = self.release_now(agents, these).await;
        let msg = if failed.is_empty() {
            format!(
                "pod(s) {} gone: their injection is released",
                pods.join(", ")
            )
        } else {
            format!(
                "pod(s) {} gone: releasing FAILED, retrying: {}",
                pods.join(", "),
                failed.join("; ")
            )
        };
        self.notice(
            !failed.is_empty(),
            "FaultReleased",
            format!("{fault}: {msg}"),
        );
        self.event("fault", Some(fault), msg);
    }

    /// Whether a fault's window is open (it has been injected and not reverted).
    pub fn active_faults(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter(|(_, s)| **s == Stage::Active)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Follow the command probes' pods: their samples join the others, on this run's
    /// clock. Needs a Tokio runtime.
    pub fn follow_probe_pods(
        &mut self,
        client: &kube::Client,
        pods: Vec<crate::probe_pods::ProbePod>,
    ) {
        let Some(tx) = &self.probe_tx else { return };
        for pod in &pods {
            let check = self
                .spec
                .probes
                .iter()
                .find(|p| p.name == pod.probe)
                .and_then(|p| p.check.command.clone());
            if let Some(check) = check {
                self.pod_followers.push(crate::probe_pods::follow(
                    client.clone(),
                    pod.clone(),
                    check,
                    self.started_unix_ms,
                    tx.clone(),
                ));
            }
        }
        self.probe_pods.extend(pods);
    }

    /// Stop the probes and evaluate the claims on the finished record.
    pub fn finish(
        &mut self,
        status: RunStatus,
        reason: Option<String>,
    ) -> (RunRecord, Vec<Verdict>) {
        for p in self.probes.drain(..) {
            p.stop();
        }
        let (mut roles, mut role_clusters) = (Vec::new(), Vec::new());
        for sampler in self.roles.drain(..) {
            let (samples, mut cluster) = sampler.stop();
            for pod in self.late_members.get(&cluster.target).into_iter().flatten() {
                if !cluster.members.iter().any(|m| &m.label == pod) {
                    cluster.members.push(murphy::record::RoleMember {
                        label: pod.clone(),
                        addresses: Vec::new(),
                    });
                }
            }
            roles.extend(samples);
            role_clusters.push(cluster);
        }
        roles.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        for f in self.pod_followers.drain(..) {
            f.abort();
        }
        self.probe_tx = None;
        self.drain();
        self.rx = None;
        // Workloads and watches not ended yet (the caller had no time to read back) stop
        // here, unread.
        if self.histories.is_none() {
            let (ws, watches) = self.take_observers();
            let hs = workload::stop_and_read(ws, self.clock, false);
            let watched = murphy::watch::stop_all(watches, self.now_ms());
            self.end_observers(hs, watched);
        }
        let watch_samples = std::mem::take(&mut self.watch_samples);
        self.events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        let now = self.now_ms();
        let steady = self.steady_ms();
        let mut rec = RunRecord::assemble(
            std::mem::take(&mut self.samples),
            std::mem::take(&mut self.events),
            self.faults.clone(),
            self.histories.clone().unwrap_or_default(),
            watch_samples,
            Phases {
                steady_start_ms: 0.0,
                // No fault phase when the steady state did not hold (as on `murphy run`).
                faults_start_ms: self.steady_failed.is_none().then_some(steady),
                faults_end_ms: self
                    .steady_failed
                    .is_none()
                    .then(|| self.fault_phase_end_ms().min(now)),
                end_ms: now,
            },
            status,
            reason,
        );
        // Whatever is still injected when the run ends is said, as `murphy run` says it.
        rec.left_behind = self
            .live
            .iter()
            .map(|i| {
                format!(
                    "fault {} on {}: not reverted yet (the agent on {} reverts it when its lease lapses)",
                    i.key.fault, i.pod, i.node
                )
            })
            .collect();
        rec.roles = roles;
        rec.role_clusters = role_clusters;
        let verdicts = claims::evaluate(&self.spec.claims, &rec);
        (rec, verdicts)
    }
}

/// The role a fault's pods must still have, how to ask, and each pod (name, IP).
type RoleCheck = (
    murphy::roles::Role,
    murphy::model::spec::RoleProbe,
    Vec<(String, Option<std::net::Ipv4Addr>)>,
);

/// Ask each pod its role now (off the async threads); why one does not have `want`.
async fn roles_now(
    want: murphy::roles::Role,
    probe: murphy::model::spec::RoleProbe,
    pods: Vec<(String, Option<std::net::Ipv4Addr>)>,
) -> Option<String> {
    let roles = tokio::task::spawn_blocking(move || {
        pods.into_iter()
            .map(|(n, ip)| (n, ip.map(|a| murphy::roles::role_of(&probe, a))))
            .collect::<Vec<_>>()
    })
    .await
    .ok()?;
    wrong_roles(want, roles)
}

/// What moved: each chosen pod whose role is not the one it was chosen for.
fn wrong_roles(
    want: murphy::roles::Role,
    roles: Vec<(String, Option<murphy::roles::Role>)>,
) -> Option<String> {
    use murphy::roles::Role;
    let wrong: Vec<String> = roles
        .into_iter()
        .filter(|(_, r)| r.as_ref() != Some(&want))
        .map(|(n, r)| match r {
            Some(Role::Primary) => format!("{n} is now primary"),
            Some(Role::Replica) => format!("{n} is now a replica"),
            Some(Role::Unknown(e)) => format!("{n} did not say ({e})"),
            None => format!("{n} has no IP"),
        })
        .collect();
    (!wrong.is_empty()).then(|| {
        format!(
            "chosen as {} at the start, but when the fault was due {}",
            if want == Role::Primary {
                "the primary"
            } else {
                "a replica"
            },
            wrong.join(", ")
        )
    })
}

/// A run's workloads and watches, handed out to be stopped off the async threads.
pub type Observers = (
    Vec<(WorkloadSpec, Option<murphy::netns::Netns>, workload::Handle)>,
    Vec<(String, murphy::watch::WatchHandle)>,
);

/// What stopping the watches gave: samples and timeline events.
pub type Watched = (
    Vec<murphy::record::watch::WatchSample>,
    Vec<murphy::record::Event>,
);

impl Drop for ClusterRun {
    /// A run forgotten mid-way (its Experiment deleted) stops sampling and writing: probes
    /// here, role samplers and watches and workloads by their own drop (never joined on
    /// the async threads).
    fn drop(&mut self) {
        for p in self.probes.drain(..) {
            p.stop();
        }
        self.roles.clear();
        for f in self.pod_followers.drain(..) {
            f.abort();
        }
    }
}

/// Ask each injection's agent to revert it (bounded fan-out); one result per injection.
async fn revert_calls(
    agents: &Agents,
    these: &[Injection],
) -> Vec<Result<pb::RevertReply, tonic::Status>> {
    let calls = these
        .iter()
        .map(|i| (i.addr.clone(), fault_ref(&i.key)))
        .collect();
    agents
        .fan_out(calls, FAN_OUT, |mut c, r| async move {
            c.revert(r).await.map(|x| x.into_inner())
        })
        .await
}

pub fn pod_name(c: &Chosen) -> String {
    format!("{}/{}", c.pod.namespace, c.pod.name)
}

pub fn fault_ref(k: &Key) -> pb::FaultRef {
    pb::FaultRef {
        experiment: k.experiment.clone(),
        fault: k.fault.clone(),
        pod_uid: k.pod_uid.clone(),
    }
}

/// The timeout of one agent call: under a third of the shortest sensible lease (leases
/// are renewed when a third has passed, so a hung agent cannot make others lapse).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(8);

/// The controller's agent pool from its TLS files.
pub fn agents(tls: &crate::certs::Bundle, server_name: &str) -> Agents {
    Agents::new(grpc::client_tls(tls, server_name), CALL_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec as both doors read it (deserialized; the plan needs no rules of its own).
    fn spec() -> ExperimentSpec {
        serde_json::from_value(serde_json::json!({
            "targets": {"web": {"pods": {"namespace": "shop", "matchLabels": {"app": "web"}}}},
            "duration": "5s",
            "steadyState": {"duration": "2s"},
            "faults": [
                {"name": "pause", "target": "web", "kind": "process-pause", "at": "1s", "duration": "2s"},
                {"name": "kill", "target": "web", "kind": "process-kill", "at": "3s"},
                {"name": "long", "target": "web", "kind": "process-pause", "at": "4s", "duration": "6s"}
            ]
        }))
        .expect("spec")
    }

    /// The controller never runs a command from a spec: a command probe of a run (which
    /// only a pod of its own samples) starts no process here, whatever it says.
    #[tokio::test]
    async fn a_command_probe_never_runs_in_the_controller() {
        let marker = std::env::temp_dir().join(format!("murphy-no-command-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let spec: ExperimentSpec = serde_json::from_value(serde_json::json!({
            "targets": {"web": {"pods": {"namespace": "shop", "matchLabels": {"app": "web"}}}},
            "commandPod": {"image": "busybox:1.36"},
            "probes": [{"name": "shop", "interval": "20ms", "command": {"argv": ["/usr/bin/touch", marker.to_string_lossy()]}}],
            "faults": [{"name": "pause", "target": "web", "kind": "process-pause", "duration": "1s"}],
        }))
        .expect("spec");
        let run = ClusterRun::start(
            "uid",
            "shop/x",
            spec,
            1,
            30_000,
            BTreeMap::new(),
            &PodView::default(),
        )
        .expect("start");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!marker.exists(), "a command ran in the controller");
        assert!(run.probes.is_empty());
    }

    /// A steady state that does not hold injects nothing, on a cluster as on `murphy run`:
    /// the run ends steady-state-failed, saying why, and no claim holds.
    #[tokio::test]
    async fn a_steady_state_that_does_not_hold_injects_nothing() {
        let spec: ExperimentSpec = serde_json::from_value(serde_json::json!({
            "targets": {"web": {"pods": {"namespace": "shop", "matchLabels": {"app": "web"}}}},
            "steadyState": {"duration": "300ms"},
            "observeAfter": "0s",
            "probes": [{"name": "shop", "interval": "50ms", "timeout": "100ms", "tcp": {"address": "127.0.0.1:9"}}],
            "faults": [{"name": "pause", "target": "web", "kind": "process-pause", "duration": "1s"}],
            "claims": [{"name": "up", "availability": {"probe": "shop", "atLeast": "1%"}}]
        }))
        .expect("spec");
        let certs = crate::certs::generate("test-ca", "murphy-controller", "murphy-agent", 1)
            .expect("certs");
        let agents = agents(&certs.controller, "murphy-agent");
        let chosen = Chosen {
            pod: crate::select::PodInfo {
                namespace: "shop".into(),
                name: "web-0".into(),
                uid: "u".into(),
                node: Some("n".into()),
                labels: BTreeMap::new(),
                running: true,
                containers: vec!["app".into()],
                terminating: false,
                ip: None,
                created_unix: None,
                owner: None,
            },
            containers: vec!["app".into()],
        };
        // An agent nobody listens on: an injection attempt would be recorded as failed.
        let placed = Placed {
            chosen,
            containers: vec![("app".into(), "c".into())],
            addr: "127.0.0.1:9".into(),
        };
        let mut run = ClusterRun::start(
            "uid",
            "shop/x",
            spec,
            1,
            30_000,
            BTreeMap::from([("pause".to_string(), vec![placed])]),
            &PodView::default(),
        )
        .expect("start");
        run.step(&agents).await;
        assert!(run.steady_failed.is_none(), "judged only at its end");
        tokio::time::sleep(Duration::from_millis(400)).await;
        run.step(&agents).await;
        let why = run.steady_failed.clone().expect("the steady state failed");
        assert!(why.contains("shop 0/"), "{why}");
        assert!(run.live.is_empty() && run.active_faults().is_empty());
        assert!(!run.faults[0].confirmed && run.faults[0].injected_ms.is_none());
        assert!(run.notices.iter().any(|n| n.reason == "SteadyStateFailed"));
        let (status, reason) = run.ending();
        assert_eq!(status, RunStatus::SteadyStateFailed);
        let (record, verdicts) = run.finish(status, reason);
        assert_eq!(record.phases.faults_start_ms, None);
        assert_eq!(verdicts[0].outcome, murphy::verdict::Outcome::Inconclusive);
    }

    #[test]
    fn the_cluster_keeps_the_windows_of_the_shared_plan_that_murphy_run_keeps() {
        let spec = spec();
        let run = ClusterRun::start(
            "uid",
            "shop/x",
            spec.clone(),
            1,
            30_000,
            BTreeMap::new(),
            &PodView::default(),
        )
        .expect("start");
        // What `murphy run` does with the same spec: the plan's windows, injected at `at`
        // and reverted at `revert_at` (from the steady state's end).
        let local = Plan::new(&spec);
        let steady_ms = spec.steady_duration().as_secs_f64() * 1000.0;
        for f in &spec.faults {
            let w = local.window(&f.name).expect("window");
            let (s, e) = local.span(w);
            let want = (
                steady_ms + s.as_secs_f64() * 1000.0,
                steady_ms + local.revert_at(w, s).as_secs_f64() * 1000.0,
            );
            assert_eq!(run.window(&f.name), Some(want), "{}", f.name);
            assert!(e >= s, "{}", f.name);
        }
        // A window past `spec.duration` is kept whole on both doors (it was cut on a
        // cluster before), and the run lasts until it closes.
        assert_eq!(run.window("long"), Some((6_000.0, 12_000.0)));
        assert_eq!(run.window("kill"), Some((5_000.0, 7_000.0)));
        // An injection that starts late keeps its whole duration, as with `murphy run`
        // (`revert_at` from the actual injection); one without a duration still ends with
        // the fault phase.
        let mut run = run;
        run.injected_at.insert("pause".into(), 3_300.0);
        assert_eq!(run.revert_due_ms("pause"), Some(5_300.0));
        run.injected_at.insert("kill".into(), 5_400.0);
        assert_eq!(run.revert_due_ms("kill"), Some(7_000.0));
        assert_eq!(
            ClusterRun::length_ms(&spec),
            (spec.steady_duration() + Duration::from_secs(10) + spec.observe_after()).as_millis()
                as u64
        );
    }
}
