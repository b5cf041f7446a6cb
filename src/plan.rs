//! The run plan: what happens when, and to whom — shared by both front doors.
//!
//! [`Plan::new`] turns a validated spec into the schedule: the phases and every fault's
//! window (when it is injected, when it is reverted). [`resolve`] turns one fault into
//! what the engine needs to inject it, through a [`Resolver`] that each front door
//! implements over what it knows: the local runner over its lab and the host, the cluster
//! controller over pods. What a fault kind needs resolved (its peers, its paths, the place
//! it acts from) is asked of the spec type itself ([`FaultAction::peer_targets`],
//! [`FaultAction::paths_mut`], [`FaultAction::acts_from`]), never listed here or in a door.
//!
//! Pure: no I/O, no clock, no threads. Both `murphy run` and the operator carry out the
//! same plan, so a fault's window is the same whichever door runs it.

use crate::model::spec::{
    Endpoint, ExperimentSpec, FaultAction, FaultSpec, WatchSpec, WorkloadSpec,
};
use crate::netns::Netns;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A place a fault acts from, when that is not its target (a lab host running Murphy's
/// BGP speaker): its network namespace and addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub netns: Netns,
    pub addrs: Vec<Ipv4Addr>,
}

/// What a front door knows of the system it runs against.
pub trait Resolver {
    /// Addresses of every member of a target (empty when it has none or is unknown).
    fn target_addrs(&self, target: &str) -> Vec<Ipv4Addr>;
    /// `s` with the door's placeholders replaced (a lab's `{data:<host>}`); as is where
    /// the door has none.
    fn substitute(&self, s: &str) -> String {
        s.to_string()
    }
    /// A named place a fault may act from (a lab host), if the door has it.
    fn place(&self, _name: &str) -> Option<Place> {
        None
    }
}

/// One fault's window, on the clock of the fault phase (0 = the steady state ended).
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Index of the fault in `spec.faults`.
    pub index: usize,
    pub fault: String,
    /// When it is injected.
    pub at: Duration,
    /// How long it stays once injected; `None`: until the fault phase ends.
    pub length: Option<Duration>,
}

/// The schedule of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub steady: Duration,
    /// The fault phase as specified (`spec.duration`, else the latest fault end).
    pub fault_phase: Duration,
    pub observe_after: Duration,
    /// Every fault, in the order it is due (by `at`, then spec order).
    pub windows: Vec<Window>,
    /// Recovery steps (index in `spec.steps`, when due), in the order they are due.
    pub steps: Vec<(usize, Duration)>,
}

impl Plan {
    pub fn new(spec: &ExperimentSpec) -> Plan {
        let mut windows: Vec<Window> = spec
            .faults
            .iter()
            .enumerate()
            .map(|(index, f)| Window {
                index,
                fault: f.name.clone(),
                at: f.at.as_std(),
                length: f.duration.map(|d| d.as_std()),
            })
            .collect();
        windows.sort_by_key(|w| (w.at, w.index));
        let mut steps: Vec<(usize, Duration)> = spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.at.as_std()))
            .collect();
        steps.sort_by_key(|(i, at)| (*at, *i));
        Plan {
            steady: spec.steady_duration(),
            fault_phase: spec.fault_phase(),
            observe_after: spec.observe_after(),
            windows,
            steps,
        }
    }

    pub fn window(&self, fault: &str) -> Option<&Window> {
        self.windows.iter().find(|w| w.fault == fault)
    }

    /// When a fault that was injected at `injected` (fault-phase clock) is reverted: its
    /// length after the injection, or the end of the fault phase.
    pub fn revert_at(&self, w: &Window, injected: Duration) -> Duration {
        match w.length {
            Some(d) => injected + d,
            None => self.fault_phase.max(injected),
        }
    }

    /// The scheduled window (start, end) of a fault on the fault-phase clock.
    pub fn span(&self, w: &Window) -> (Duration, Duration) {
        (w.at, self.revert_at(w, w.at))
    }

    /// The fault phase lasts until it is over and every scheduled window has closed.
    pub fn faults_end(&self) -> Duration {
        self.windows
            .iter()
            .map(|w| self.span(w).1)
            .chain(self.steps.iter().map(|(_, at)| *at))
            .fold(self.fault_phase, Duration::max)
    }

    /// The whole run as scheduled: steady state, fault phase, observation.
    pub fn length(&self) -> Duration {
        self.steady + self.faults_end() + self.observe_after
    }
}

/// One fault, resolved for injection by a front door.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The fault's action with the door's placeholders in its paths replaced.
    pub action: FaultAction,
    /// Addresses of the fault's peers, without the fault's own members' (a member is cut
    /// off from the rest of its cluster, not from itself).
    pub peers: Vec<Ipv4Addr>,
    /// Where the fault acts from, when that is not its target.
    pub from: Option<Place>,
}

/// Why a fault cannot be resolved: the door refuses to inject it rather than inject
/// something wider than asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The fault names peers, but none of them has an address now other than the fault's
    /// own members': without peers a partition would cut its target off from everything.
    #[error("fault {fault}: its peers {peers:?} have no address right now besides its own members' (refusing to act on all traffic instead)")]
    NoPeers { fault: String, peers: Vec<String> },
    /// The place the fault acts from is not known to this door.
    #[error("fault {fault}: acts from {place:?}, which this front door does not have")]
    NoPlace { fault: String, place: String },
    /// A workload's or watch's endpoint names a target that has no address right now.
    #[error("{what}: {endpoint:?} resolves to no address (target {target:?} has no member with one right now)")]
    NoEndpoint {
        what: String,
        endpoint: String,
        target: String,
    },
    /// A watch reads one component; its target has several members.
    #[error("{what}: {endpoint:?} names target {target:?}, which has {count} members with an address: a watch reads one (name a target with exactly one)")]
    ManyEndpoints {
        what: String,
        endpoint: String,
        target: String,
        count: usize,
    },
}

/// Resolve one fault against what a door knows. `own` are the addresses of the members
/// the fault acts on.
pub fn resolve(
    fault: &FaultSpec,
    own: &[Ipv4Addr],
    r: &dyn Resolver,
) -> Result<Resolved, PlanError> {
    let mut action = fault.action.clone();
    for p in action.paths_mut() {
        *p = r.substitute(p);
    }
    let named = fault.action.peer_targets();
    let mut all: Vec<Ipv4Addr> = Vec::new();
    for t in named {
        for a in r.target_addrs(t) {
            if !all.contains(&a) {
                all.push(a);
            }
        }
    }
    let peers: Vec<Ipv4Addr> = all.into_iter().filter(|a| !own.contains(a)).collect();
    // An empty peer list means "everything" to the faults that take one: named peers that
    // leave nothing (none has an address, or all are the fault's own members) are refused.
    if !named.is_empty() && peers.is_empty() {
        return Err(PlanError::NoPeers {
            fault: fault.name.clone(),
            peers: named.to_vec(),
        });
    }
    let from = match fault.action.acts_from() {
        Some(name) => Some(r.place(name).ok_or_else(|| PlanError::NoPlace {
            fault: fault.name.clone(),
            place: name.to_string(),
        })?),
        None => None,
    };
    Ok(Resolved {
        action,
        peers,
        from,
    })
}

/// A workload with every endpoint as `ip:port`: each `{target:<name>}:<port>` becomes that
/// port on every address of the target, in the door's order (lab members as listed, pods by
/// name). A target with no address refuses the run: a client with no node to talk to would
/// record only failures, which is the system's fault in no way.
pub fn resolve_workload(w: &WorkloadSpec, r: &dyn Resolver) -> Result<WorkloadSpec, PlanError> {
    let expand = |list: &[String]| -> Result<Vec<String>, PlanError> {
        let mut out = Vec::new();
        for e in list {
            match Endpoint::parse(e) {
                Some(Endpoint::Target { target, port }) => {
                    let addrs = r.target_addrs(&target);
                    if addrs.is_empty() {
                        return Err(PlanError::NoEndpoint {
                            what: format!("workload {}", w.name),
                            endpoint: e.clone(),
                            target,
                        });
                    }
                    out.extend(addrs.iter().map(|a| format!("{a}:{port}")));
                }
                // Validated already: an address stays as written.
                _ => out.push(e.clone()),
            }
        }
        Ok(out)
    };
    let mut out = w.clone();
    out.endpoints = expand(&w.endpoints)?;
    out.read_endpoints = expand(&w.read_endpoints)?;
    if let Some(d) = out.delivered_to.as_mut() {
        d.endpoints = expand(&d.endpoints)?;
    }
    Ok(out)
}

/// A watch with its source resolved: a socket path through the door's placeholders, an
/// `address` of `{target:<name>}:<port>` to that port on the target's one member.
pub fn resolve_watch(w: &WatchSpec, r: &dyn Resolver) -> Result<WatchSpec, PlanError> {
    let mut out = w.clone();
    let what = format!("watch {}", w.name);
    if let Some(h) = out.haproxy.as_mut() {
        if let Some(s) = h.socket.as_mut() {
            *s = r.substitute(s);
        }
        if let Some(a) = h.address.as_mut() {
            if let Some(Endpoint::Target { target, port }) = Endpoint::parse(a) {
                let addrs = r.target_addrs(&target);
                match addrs.as_slice() {
                    [one] => *a = format!("{one}:{port}"),
                    [] => {
                        return Err(PlanError::NoEndpoint {
                            what,
                            endpoint: a.clone(),
                            target,
                        })
                    }
                    many => {
                        return Err(PlanError::ManyEndpoints {
                            what,
                            endpoint: a.clone(),
                            target,
                            count: many.len(),
                        })
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Targets a watch's address names, each once.
pub fn watch_targets(w: &WatchSpec) -> Vec<String> {
    w.haproxy
        .iter()
        .filter_map(|h| h.address.as_deref())
        .filter_map(|a| match Endpoint::parse(a) {
            Some(Endpoint::Target { target, .. }) => Some(target),
            _ => None,
        })
        .collect()
}

/// Targets a workload's endpoints name (`{target:<name>}:<port>`), each once.
pub fn workload_targets(w: &WorkloadSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let sink = w.delivered_to.iter().flat_map(|d| d.endpoints.iter());
    for e in w.endpoints.iter().chain(&w.read_endpoints).chain(sink) {
        if let Some(Endpoint::Target { target, .. }) = Endpoint::parse(e) {
            if !out.contains(&target) {
                out.push(target);
            }
        }
    }
    out
}

/// The front door an experiment runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// `murphy run` on one machine: everything.
    Local,
    /// The Kubernetes operator: pods as targets, probes from the controller.
    Cluster,
}

/// What an `Experiment` in `namespace` may not target on a cluster: pods of another
/// namespace (each such field named). A `ClusterExperiment` (no `namespace` here) may
/// target any opted-in namespace. The chart's ValidatingAdmissionPolicy says the same.
pub fn scope_problems(namespace: Option<&str>, spec: &ExperimentSpec) -> Vec<(String, String)> {
    let Some(ns) = namespace else {
        return Vec::new();
    };
    spec.targets
        .iter()
        .filter_map(|(name, t)| {
            let sel = t.pods.as_ref()?;
            (sel.namespace != ns).then(|| {
                (
                    format!("spec.targets.{name}.pods.namespace"),
                    format!(
                        "an Experiment in namespace {ns:?} targets pods of its own namespace only, found {:?} (a ClusterExperiment, which cluster admins create, may target other namespaces)",
                        sel.namespace
                    ),
                )
            })
        })
        .collect()
}

/// Everything `door` refuses in an experiment the validator accepted: what the door
/// cannot run ([`unsupported`]) and, on a cluster, an `Experiment`'s targets outside its
/// own namespace. `murphy validate --cluster` and the cluster's admission webhook both
/// answer with exactly this, so they never disagree.
pub fn refusals(
    exp: &crate::model::spec::Experiment,
    door: Door,
) -> Vec<crate::model::diag::Diagnostic> {
    let mut out: Vec<(String, String)> = unsupported(&exp.spec, door)
        .into_iter()
        .map(|(f, m)| (f, m.to_string()))
        .collect();
    if door == Door::Cluster && exp.kind == crate::model::spec::KIND {
        out.extend(scope_problems(exp.metadata.namespace.as_deref(), &exp.spec));
    }
    out.into_iter()
        .map(|(field, message)| crate::model::diag::Diagnostic {
            path: crate::model::diag::FieldPath::parse(&field),
            message,
            location: None,
        })
        .collect()
}

/// Fields of a spec that `door` cannot carry out, each with why. The door refuses such an
/// experiment as a whole, naming every field, before anything runs.
pub fn unsupported(spec: &ExperimentSpec, door: Door) -> Vec<(String, &'static str)> {
    if door == Door::Local {
        return Vec::new();
    }
    const LOCAL: &str = "only runs with `murphy run` on one machine";
    const NOT_YET: &str = "does not run on a cluster yet (it runs with `murphy run`)";
    let mut out: Vec<(String, &'static str)> = Vec::new();
    if spec.lab.is_some() {
        out.push(("spec.lab".into(), LOCAL));
    }
    for (name, t) in &spec.targets {
        let l = &t.local;
        for (set, field) in [
            (l.lab.is_some(), "lab"),
            (!l.members.is_empty(), "members"),
            (l.process.is_some(), "process"),
            (l.cgroup.is_some(), "cgroup"),
            (l.netns.is_some(), "netns"),
        ] {
            if set {
                out.push((format!("spec.targets.{name}.{field}"), LOCAL));
            }
        }
    }
    // Nothing from a spec runs as the controller: a command probe or role check runs in a
    // pod of its own (`spec.commandPod`), or not at all.
    const NO_POD: &str = "needs `spec.commandPod` on a cluster: a command runs there only in a pod of its own (from the image it names), never in the controller";
    for (i, p) in spec.probes.iter().enumerate() {
        if p.from.is_some() {
            out.push((format!("spec.probes[{i}].from"), LOCAL));
        }
        if p.check.prometheus.is_some() {
            out.push((
                format!("spec.probes[{i}].prometheus"),
                "does not run on a cluster yet: the controller would fetch whatever URL an Experiment names (it runs with `murphy run`)",
            ));
        }
        if p.check.command.is_some() && spec.command_pod.is_none() {
            out.push((format!("spec.probes[{i}].command"), NO_POD));
        }
    }
    for (name, t) in &spec.targets {
        if t.role.as_ref().is_some_and(|r| r.command.is_some()) && spec.command_pod.is_none() {
            out.push((format!("spec.targets.{name}.role.command"), NO_POD));
        }
        if t.role
            .as_ref()
            .is_some_and(|r| r.command.is_some() && r.on_timeline())
        {
            out.push((
                format!("spec.targets.{name}.role.timeline"),
                "must be `false` with a command role check on a cluster: the check runs in one-shot pods when a fault is due, not all through the run (redis, postgres and etcd role probes go on the timeline)",
            ));
        }
        if t.role.as_ref().is_some_and(|r| r.from.is_some()) {
            out.push((format!("spec.targets.{name}.role.from"), LOCAL));
        }
    }
    for (i, f) in spec.faults.iter().enumerate() {
        if f.action.acts_from().is_some() {
            out.push((format!("spec.faults[{i}].from"), LOCAL));
        }
    }
    for (i, w) in spec.workloads.iter().enumerate() {
        if w.from.is_some() {
            out.push((format!("spec.workloads[{i}].from"), LOCAL));
        }
    }
    for (i, w) in spec.watches.iter().enumerate() {
        if w.haproxy.as_ref().is_some_and(|h| h.socket.is_some()) {
            out.push((format!("spec.watches[{i}].haproxy.socket"), LOCAL));
        }
    }
    if !spec.steps.is_empty() {
        out.push(("spec.steps".into(), NOT_YET));
    }
    // The node agents resolve data faults' paths without it: a guardrail that would not
    // hold is refused, never ignored.
    if !spec.guardrails.allow_paths.is_empty() {
        out.push((
            "spec.guardrails.allowPaths".into(),
            "is not enforced by the node agents yet (it runs with `murphy run`)",
        ));
    }
    for (i, c) in spec.claims.iter().enumerate() {
        if c.detects.is_some() {
            out.push((format!("spec.claims[{i}].detects"), LOCAL));
        }
        if c.prometheus.is_some() {
            out.push((
                format!("spec.claims[{i}].prometheus"),
                "does not run on a cluster yet: the controller would fetch whatever URL an Experiment names (it runs with `murphy run`)",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::Experiment;
    use std::collections::BTreeMap;

    fn spec(yaml_faults: &str, extra: &str) -> ExperimentSpec {
        let doc = format!(
            "apiVersion: murphy.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: t}}\nspec:\n  {extra}\n  targets:\n    web: {{pods: {{namespace: a, matchLabels: {{app: web}}}}}}\n    db: {{pods: {{namespace: a, matchLabels: {{app: db}}}}}}\n  faults:\n{yaml_faults}"
        );
        // Deserialized only: the plan assumes a validated spec but needs none of its rules.
        match serde_saphyr::from_str::<Experiment>(&doc) {
            Ok(e) => e.spec,
            Err(e) => panic!("{e}\n{doc}"),
        }
    }

    struct Fixed(BTreeMap<&'static str, Vec<Ipv4Addr>>);
    impl Resolver for Fixed {
        fn target_addrs(&self, target: &str) -> Vec<Ipv4Addr> {
            self.0.get(target).cloned().unwrap_or_default()
        }
        fn substitute(&self, s: &str) -> String {
            s.replace("{data:db}", "/srv/db")
        }
    }

    #[test]
    fn windows_are_due_in_order_and_a_fault_without_duration_lasts_the_phase() {
        let s = spec(
            "    - {name: late, kind: process-pause, target: web, at: 4s, duration: 2s}\n    - {name: early, kind: process-kill, target: db, at: 1s}\n",
            "duration: 10s",
        );
        let p = Plan::new(&s);
        let names: Vec<&str> = p.windows.iter().map(|w| w.fault.as_str()).collect();
        assert_eq!(names, ["early", "late"]);
        let early = p.window("early").expect("early");
        assert_eq!(
            p.span(early),
            (Duration::from_secs(1), Duration::from_secs(10))
        );
        let late = p.window("late").expect("late");
        assert_eq!(
            p.span(late),
            (Duration::from_secs(4), Duration::from_secs(6))
        );
        // A slow injection moves the revert with it, by the same rule on both doors.
        assert_eq!(
            p.revert_at(late, Duration::from_millis(4300)),
            Duration::from_millis(6300)
        );
        assert_eq!(p.faults_end(), Duration::from_secs(10));
    }

    #[test]
    fn a_window_past_the_phase_end_extends_the_phase_instead_of_being_cut() {
        let s = spec(
            "    - {name: long, kind: process-pause, target: web, at: 2s, duration: 9s}\n",
            "duration: 5s",
        );
        let p = Plan::new(&s);
        let w = p.window("long").expect("long");
        assert_eq!(p.span(w).1, Duration::from_secs(11));
        assert_eq!(p.faults_end(), Duration::from_secs(11));
        assert_eq!(
            p.length(),
            s.steady_duration() + Duration::from_secs(11) + s.observe_after()
        );
    }

    #[test]
    fn peers_resolve_through_the_door_without_the_faults_own_addresses() {
        let s = spec(
            "    - {name: cut, kind: network-partition, target: web, peers: [db, web], duration: 2s}\n",
            "",
        );
        let a = |x: u8| Ipv4Addr::new(10, 0, 0, x);
        let r = Fixed(BTreeMap::from([
            ("web", vec![a(1), a(2)]),
            ("db", vec![a(3), a(4)]),
        ]));
        let got = resolve(&s.faults[0], &[a(1)], &r).expect("resolves");
        assert_eq!(got.peers, vec![a(3), a(4), a(2)]);
        assert_eq!(got.from, None);
        // Peers that resolve to nothing must not turn into "cut off from everything".
        let none = Fixed(BTreeMap::new());
        assert!(matches!(
            resolve(&s.faults[0], &[a(1)], &none),
            Err(PlanError::NoPeers { .. })
        ));
        // Nor peers that are only the fault's own members.
        let own_only = Fixed(BTreeMap::from([("web", vec![a(1)]), ("db", vec![a(1)])]));
        assert!(matches!(
            resolve(&s.faults[0], &[a(1)], &own_only),
            Err(PlanError::NoPeers { .. })
        ));
    }

    #[test]
    fn the_cluster_door_names_every_field_it_cannot_run_and_the_local_door_none() {
        let mut s = spec("    - {name: kill, kind: process-kill, target: web}\n", "");
        assert!(unsupported(&s, Door::Cluster).is_empty());
        let more = spec(
            "    - {name: kill, kind: process-kill, target: web}\n",
            "steps: [{name: s, at: 1s, argv: [\"true\"]}]\n  workloads: [{name: w, rate: 10/s, endpoints: [\"10.0.0.1:80\"], http: {path: /}}, {name: v, from: h, rate: 10/s, endpoints: [\"10.0.0.1:80\"], http: {path: /}}]",
        );
        s.workloads = more.workloads;
        s.steps = more.steps;
        s.guardrails.allow_paths = vec!["/srv/db".into()];
        let fields: Vec<String> = unsupported(&s, Door::Cluster)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.workloads[1].from",
                "spec.steps",
                "spec.guardrails.allowPaths"
            ]
        );
        assert!(unsupported(&s, Door::Local).is_empty());
    }

    #[test]
    fn a_workload_endpoint_naming_a_target_becomes_every_member_address_in_the_door_order() {
        let s = spec(
            "    - {name: kill, kind: process-kill, target: db}\n",
            "workloads: [{name: w, rate: 10/s, endpoints: [\"{target:db}:2379\", \"10.0.0.9:2379\"], readEndpoints: [\"{target:web}:80\"], etcd: {}}]",
        );
        let r = Fixed(BTreeMap::from([
            (
                "db",
                vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1)],
            ),
            ("web", vec![]),
        ]));
        let w = &s.workloads[0];
        assert_eq!(workload_targets(w), ["db", "web"]);
        // A target without an address refuses the workload, naming the endpoint.
        let err = resolve_workload(w, &r).expect_err("web has no address");
        assert!(err.to_string().contains("{target:web}:80"), "{err}");
        let mut w = w.clone();
        w.read_endpoints.clear();
        let got = resolve_workload(&w, &r).expect("resolves");
        assert_eq!(
            got.endpoints,
            ["10.0.0.2:2379", "10.0.0.1:2379", "10.0.0.9:2379"]
        );
    }

    #[test]
    fn paths_are_resolved_by_the_door_and_other_kinds_keep_their_action() {
        let s = spec(
            "    - {name: wipe, kind: data-wipe, target: db, paths: [\"{data:db}/base\"]}\n    - {name: kill, kind: process-kill, target: web}\n",
            "duration: 3s",
        );
        let r = Fixed(BTreeMap::new());
        let got = resolve(&s.faults[0], &[], &r).expect("resolves");
        match got.action {
            FaultAction::DataWipe(d) => assert_eq!(d.paths, ["/srv/db/base"]),
            other => panic!("{other:?}"),
        }
        let kill = resolve(&s.faults[1], &[], &r).expect("resolves");
        assert_eq!(kill.action, s.faults[1].action);
    }
}
