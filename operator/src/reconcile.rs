//! The controller's I/O: kube-runtime calls [`reconcile`] for each Experiment; it observes
//! (the object, its run, the pods), asks [`crate::controller::plan`] what to do, and does it
//! — finalizer patches, pod selection, agent calls, status patches, Events, the evidence
//! ConfigMap. Decisions stay in the pure modules; this file only carries them out.

use crate::controller::{self, Action, Observed, ABORT_ANNOTATION, FINALIZER};
use crate::crd::{self, Experiment};
use crate::grpc::Agents;
use crate::run::{ClusterRun, Placed, PodView};
use crate::select::{self, Chosen, PodInfo};
use crate::status::{self, ExperimentStatus, Phase};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::EventType;
use kube::{Api, Client, Resource, ResourceExt};
use murphy::claims::Verdict;
use murphy::timeline::RunStatus;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Which address serves which node's agent.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// Fixed `node=host:port` entries (running outside a cluster; they win).
    pub fixed: BTreeMap<String, String>,
    /// Where the agent DaemonSet's pods are (in a cluster).
    pub namespace: Option<String>,
    pub selector: Option<String>,
    pub port: u16,
}

/// Agent pods → node name → `podIP:port` (running pods with an IP only).
pub fn agent_addresses(pods: &[Pod], port: u16) -> BTreeMap<String, String> {
    pods.iter()
        .filter_map(|p| {
            let st = p.status.as_ref()?;
            if st.phase.as_deref() != Some("Running") {
                return None;
            }
            let ip = st.pod_ip.as_ref()?;
            let node = p.spec.as_ref()?.node_name.clone()?;
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.clone()
            };
            Some((node, format!("{host}:{port}")))
        })
        .collect()
}

impl Directory {
    /// Every agent's address, by node: the fixed ones and the agent pods that run.
    pub async fn all(&self, client: &Client) -> Result<BTreeMap<String, String>, String> {
        let mut out = self.fixed.clone();
        for (n, a) in self.listed(client).await? {
            out.entry(n).or_insert(a);
        }
        Ok(out)
    }

    /// The running agent pods' addresses by node (none without an agent namespace).
    async fn listed(&self, client: &Client) -> Result<BTreeMap<String, String>, String> {
        let Some(ns) = &self.namespace else {
            return Ok(BTreeMap::new());
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let mut lp = ListParams::default();
        if let Some(s) = &self.selector {
            lp = lp.labels(s);
        }
        let pods = api
            .list(&lp)
            .await
            .map_err(|e| format!("listing agent pods in {ns}: {e}"))?;
        Ok(agent_addresses(&pods.items, self.port))
    }

    /// An address for each node, or the nodes that have no agent.
    pub async fn resolve(
        &self,
        client: &Client,
        nodes: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out: BTreeMap<String, String> = nodes
            .iter()
            .filter_map(|n| self.fixed.get(n).map(|a| (n.clone(), a.clone())))
            .collect();
        if out.len() < nodes.len() {
            for (n, a) in self.listed(client).await? {
                if nodes.contains(&n) {
                    out.entry(n).or_insert(a);
                }
            }
        }
        let missing: Vec<&String> = nodes.iter().filter(|n| !out.contains_key(*n)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "no Murphy agent serves node(s) {} (is the agent DaemonSet running there?)",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(out)
    }
}

pub use crate::metrics::ControllerMetrics as Metrics;

/// Writes events.k8s.io Events about Experiments. Each is its own object, never folded
/// into an earlier one with the same reason (kube's Recorder keeps the first note of a
/// series, so a second fault's injection would read as the first's).
pub struct Events {
    pub client: Client,
    /// `reportingController` (e.g. `murphy-controller`).
    pub controller: String,
    /// `reportingInstance`: this replica.
    pub instance: String,
}

impl Events {
    pub async fn publish(
        &self,
        t: EventType,
        reason: &str,
        action: &str,
        note: &str,
        regarding: &k8s_openapi::api::core::v1::ObjectReference,
    ) -> Result<(), kube::Error> {
        use k8s_openapi::api::events::v1::Event;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let now = k8s_openapi::jiff::Timestamp::now();
        let ns = regarding.namespace.clone().unwrap_or("default".into());
        let ev = Event {
            metadata: kube::api::ObjectMeta {
                namespace: Some(ns.clone()),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            action: Some(action.into()),
            reason: Some(reason.into()),
            note: Some(note.into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match t {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &ns)
            .create(&PostParams::default(), &ev)
            .await
            .map(|_| ())
    }
}

/// What every reconcile shares.
pub struct Ctx {
    pub client: Client,
    pub agents: Agents,
    pub directory: Directory,
    pub recorder: Events,
    pub lease_ms: u64,
    /// The runs this controller holds, by Experiment UID, each behind its own lock.
    pub runs: Mutex<HashMap<String, Arc<Mutex<ClusterRun>>>>,
    pub metrics: Arc<Metrics>,
    /// The controller's own namespace: ClusterExperiments' evidence ConfigMaps go here.
    pub home_namespace: String,
    /// How command probes' pods get their sampler (None: command probes are refused).
    pub runner: Option<crate::probe_pods::Runner>,
    /// Namespaced mode's namespaces (empty: cluster-wide).
    pub watch_namespaces: Vec<String>,
    /// Where finished runs' annotations go (None: nowhere).
    pub grafana: Option<murphy::annotate::Target>,
}

impl Ctx {
    /// The namespaces targets may be in: the watched ones in namespaced mode (the
    /// installer's list is the opt-in), else those labelled murphy.dev/chaos=enabled.
    async fn opted_in(&self) -> Result<BTreeSet<String>, String> {
        if !self.watch_namespaces.is_empty() {
            return Ok(self.watch_namespaces.iter().cloned().collect());
        }
        let ns_api: Api<Namespace> = Api::all(self.client.clone());
        Ok(ns_api
            .list(&ListParams::default().labels(&format!(
                "{}={}",
                select::OPT_IN_LABEL,
                select::OPT_IN_VALUE
            )))
            .await
            .map_err(|e| format!("listing opted-in namespaces: {e}"))?
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

/// The engine's view of the resource (for validation and the report).
pub fn core_experiment(exp: &Experiment) -> murphy::model::spec::Experiment {
    murphy::model::spec::Experiment {
        api_version: murphy::model::spec::API_VERSION.into(),
        kind: murphy::model::spec::KIND.into(),
        metadata: murphy::model::spec::Metadata {
            name: exp.name_any(),
            namespace: exp.namespace(),
            labels: exp.labels().clone(),
            annotations: BTreeMap::new(),
        },
        spec: exp.spec.spec.clone(),
    }
}

/// The pure observation of one Experiment.
pub fn observe(exp: &Experiment, run: Option<&ClusterRun>, lease_ms: u64) -> Observed {
    let phase = exp.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let core = core_experiment(exp);
    Observed {
        phase,
        deleting: exp.meta().deletion_timestamp.is_some(),
        has_finalizer: exp.finalizers().iter().any(|f| f == FINALIZER),
        abort_requested: exp
            .annotations()
            .get(ABORT_ANNOTATION)
            .is_some_and(|v| v != "false")
            || run.is_some_and(|r| r.aborted.is_some()),
        invalid: match &exp.spec.unreadable {
            Some(problems) => problems.clone(),
            None => murphy::model::validate::validate(&core)
                .iter()
                .map(ToString::to_string)
                .chain(crd::scope_problems(
                    exp.namespace().as_deref(),
                    &exp.spec.spec,
                ))
                .collect(),
        },
        local_only: crd::local_only_fields(&exp.spec.spec),
        now_ms: run.map_or(0, |r| r.now_ms() as u64),
        running_since_ms: run.map(|_| 0),
        // A run keeps the plan it started with: an edit of the object mid-run changes
        // nothing of its schedule.
        fault_phase_ms: run.map_or_else(
            || ClusterRun::length_ms(&exp.spec.spec),
            |r| r.plan.length().as_millis() as u64,
        ),
        live_injections: run.map_or(0, ClusterRun::unexpired),
        lease_ms,
        run_lost: matches!(phase, Phase::Running | Phase::Reverting) && run.is_none(),
        steady_failed: run.is_some_and(|r| r.steady_failed.is_some()),
    }
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// One reconcile: observe, plan, act.
#[tracing::instrument(skip_all, fields(experiment = %key_of(&exp)))]
pub async fn reconcile(exp: Arc<Experiment>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let t0 = std::time::Instant::now();
    let out = reconcile_once(exp, ctx.clone()).await;
    ctx.metrics.reconciled(t0.elapsed(), out.is_ok());
    out
}

async fn reconcile_once(exp: Arc<Experiment>, ctx: Arc<Ctx>) -> Result<Requeue, Error> {
    let uid = exp.uid().unwrap_or_default();
    // The map is locked only to look up or change entries; each run has its own lock, held
    // through this reconcile (kube-runtime never reconciles one object twice at once), so
    // one experiment's slow agent does not hold up the others.
    let entry = ctx.runs.lock().await.get(&uid).cloned();
    let mut run = match &entry {
        Some(r) => Some(r.clone().lock_owned().await),
        None => None,
    };
    let o = observe(&exp, run.as_deref(), ctx.lease_ms);
    let actions = controller::plan(&o);
    let mut next = Requeue::await_change();
    // The soonest step the run itself asked for in this reconcile (a later Requeue action
    // never pushes it back).
    let mut soonest: Option<Duration> = None;
    for a in actions {
        match a {
            Action::AddFinalizer => patch_finalizers(&ctx.client, &exp, true).await?,
            Action::RemoveFinalizer => {
                if let Some(r) = run.as_deref_mut() {
                    let pods = std::mem::take(&mut r.probe_pods);
                    crate::probe_pods::delete(&ctx.client, &pods).await;
                }
                forget(&ctx, &uid).await;
                patch_finalizers(&ctx.client, &exp, false).await?;
            }
            Action::Reject(reason) => {
                forget(&ctx, &uid).await;
                ctx.metrics.rejected.inc();
                end_early(&ctx, &exp, "Rejected", "Validate", &reason).await?;
            }
            Action::Abandon(reason) => {
                // Whatever the lost run still holds is reverted now, not at its lapse.
                let swept = sweep(&ctx, &exp).await;
                let reason = format!("{reason}; {swept}");
                ctx.metrics.completed("inconclusive", true);
                end_early(&ctx, &exp, "Abandoned", "Recover", &reason).await?;
            }
            Action::Start => match start(&ctx, &exp, &uid).await {
                Ok(started) => {
                    let msg = started
                        .targets
                        .iter()
                        .map(|(f, ps)| format!("{f}: {} pod(s)", ps.len()))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let shared = Arc::new(Mutex::new(started));
                    run = Some(shared.clone().lock_owned().await);
                    let n = {
                        let mut runs = ctx.runs.lock().await;
                        runs.insert(uid.clone(), shared);
                        runs.len()
                    };
                    ctx.metrics.started.inc();
                    ctx.metrics.running.set(n as i64);
                    let msg = format!("targets resolved ({msg}); probes started");
                    set_status(&ctx.client, &exp, Phase::Running, None, &msg, None, None).await?;
                    event(&ctx, &exp, EventType::Normal, "Started", "Start", &msg).await;
                }
                Err(reason) => {
                    ctx.metrics.rejected.inc();
                    end_early(&ctx, &exp, "TargetsFailed", "Start", &reason).await?;
                }
            },
            Action::Renew => {
                if let Some(r) = run.as_deref_mut() {
                    r.step(&ctx.agents).await;
                    replacements(&ctx, r).await;
                    publish(&ctx, &exp, r).await;
                    if r.aborted.is_some() || r.steady_failed.is_some() {
                        // A fault that did not take stops the run now, not at its next
                        // scheduled step.
                        soonest = Some(Duration::from_millis(50));
                        next = Requeue::requeue(Duration::from_millis(50));
                    } else if let Some(ms) = r.next_due_ms() {
                        soonest = Some(Duration::from_millis(ms.max(50)));
                        next = Requeue::requeue(Duration::from_millis(ms.max(50)));
                    }
                }
            }
            Action::RevertAll(reason) => {
                let phase = exp.status.as_ref().map(|s| s.phase).unwrap_or_default();
                let mut reason = reason;
                if let Some(r) = run.as_deref_mut() {
                    match &r.aborted {
                        // The run stopped itself (a fault did not take): say why.
                        Some(why) => reason = format!("aborted: {why}"),
                        None if o.abort_requested => r.aborted = Some(reason.clone()),
                        None => {}
                    }
                    r.revert(&ctx.agents, None, &reason).await;
                    publish(&ctx, &exp, r).await;
                }
                if phase != Phase::Reverting && !o.deleting {
                    set_status(
                        &ctx.client,
                        &exp,
                        Phase::Reverting,
                        None,
                        &reason,
                        None,
                        None,
                    )
                    .await?;
                    event(
                        &ctx,
                        &exp,
                        EventType::Normal,
                        "Reverting",
                        "Revert",
                        &reason,
                    )
                    .await;
                }
            }
            Action::Evaluate => {
                if let Some(r) = run.as_deref_mut() {
                    // The run is forgotten only once its result is written: a failed
                    // write is retried with the same record, not lost.
                    finish(&ctx, &exp, r).await?;
                    forget(&ctx, &uid).await;
                }
            }
            Action::Requeue(ms) => {
                // The schedule's own next step, or what the run asked for above (a fault
                // that did not take, a steady state that failed), may come sooner.
                let due = run
                    .as_deref()
                    .and_then(ClusterRun::next_due_ms)
                    .map(|d| Duration::from_millis(d.max(50)));
                let want = [Some(Duration::from_millis(ms.max(50))), due, soonest]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(Duration::from_millis(50));
                next = Requeue::requeue(want);
            }
        }
    }
    Ok(next)
}

/// Revert, on every agent, what a run this controller does not hold (its controller was
/// lost) still has injected, knowing no pod: each agent reverts the experiment's leases.
/// Says what was done, agent by agent.
async fn sweep(ctx: &Ctx, exp: &Experiment) -> String {
    let lapse = format!(
        "their leases lapse on the agents within {} s",
        ctx.lease_ms.div_ceil(1000)
    );
    let agents = match ctx.directory.all(&ctx.client).await {
        Ok(a) if a.is_empty() => {
            return format!("no agent is known to this controller: {lapse}");
        }
        Ok(a) => a,
        Err(e) => return format!("the agents could not be found ({e}): {lapse}"),
    };
    let experiment = key_of(exp);
    let calls = agents
        .values()
        .map(|addr| {
            (
                addr.clone(),
                crate::grpc::pb::ExperimentRef {
                    experiment: experiment.clone(),
                },
            )
        })
        .collect();
    let results = ctx
        .agents
        .fan_out(calls, crate::run::FAN_OUT, |mut c, r| async move {
            c.revert_experiment(r).await.map(|x| x.into_inner())
        })
        .await;
    let mut undone = Vec::new();
    let mut trouble = Vec::new();
    for (node, r) in agents.keys().zip(results) {
        match r {
            Ok(reply) => undone.extend(reply.undone),
            Err(e) => trouble.push(format!("the agent on {node}: {}", e.message())),
        }
    }
    let mut said = if undone.is_empty() {
        format!("no agent of {} held any of its faults", agents.len())
    } else {
        format!(
            "this controller reverted what was still injected: {}",
            undone.join("; ")
        )
    };
    if !trouble.is_empty() {
        said.push_str(&format!("; not reached, {lapse}: {}", trouble.join("; ")));
    }
    tracing::info!(experiment, "a lost run's faults: {said}");
    said
}

/// An Event for each thing that happened to the run's faults since the last call; the
/// fault metrics (what is in effect now, how long injecting and reverting took).
async fn publish(ctx: &Ctx, exp: &Experiment, run: &mut ClusterRun) {
    for (revert, kind, secs) in std::mem::take(&mut run.timings) {
        ctx.metrics.timed(revert, &kind, secs);
    }
    let active = run
        .faults
        .iter()
        .filter(|f| {
            f.confirmed
                && f.injected_ms.is_some()
                && f.reverted_ms.is_none()
                && f.ended_early.is_none()
        })
        .map(|f| crate::metrics::FaultLabels {
            namespace: exp.namespace().unwrap_or_default(),
            experiment: exp.name_any(),
            fault: f.name.clone(),
            kind: f.kind.clone(),
        })
        .collect();
    ctx.metrics
        .active_faults(&exp.uid().unwrap_or_default(), active);
    for n in std::mem::take(&mut run.notices) {
        let t = if n.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let action = match n.reason {
            "FaultInjected" | "FaultFailed" => "Inject",
            "FaultReverted" | "RevertFailed" => "Revert",
            "FaultReleased" => "Release",
            _ => "Observe",
        };
        event(ctx, exp, t, n.reason, action, &n.note).await;
    }
}

/// Drop an experiment's run (its probes stop, its probe pods are deleted).
async fn forget(ctx: &Ctx, uid: &str) {
    let gone = {
        let mut runs = ctx.runs.lock().await;
        let gone = runs.remove(uid);
        ctx.metrics.running.set(runs.len() as i64);
        ctx.metrics.active_faults(uid, Default::default());
        gone
    };
    if let Some(run) = gone {
        // Held by this reconcile at most (it called us): try, never wait on it.
        if let Ok(mut r) = run.try_lock() {
            let pods = std::mem::take(&mut r.probe_pods);
            crate::probe_pods::delete(&ctx.client, &pods).await;
        }
    }
}

/// Status Aborted with `reason`, and a Warning Event saying so.
async fn end_early(
    ctx: &Ctx,
    exp: &Experiment,
    why: &str,
    action: &str,
    reason: &str,
) -> Result<(), Error> {
    set_status(
        &ctx.client,
        exp,
        Phase::Aborted,
        None,
        reason,
        None,
        Some(why),
    )
    .await?;
    event(ctx, exp, EventType::Warning, why, action, reason).await;
    Ok(())
}

/// Retry a failed reconcile after a pause (kube-runtime calls this).
pub fn error_policy(_exp: Arc<Experiment>, err: &Error, _ctx: Arc<Ctx>) -> Requeue {
    tracing::warn!("reconcile failed: {err}");
    Requeue::requeue(Duration::from_secs(5))
}

/// The API of the object's own kind: an Experiment in its namespace, or the
/// ClusterExperiment of that name (the controller sees both as an [`Experiment`]; a
/// cluster-scoped one has no namespace).
fn api(client: &Client, exp: &Experiment) -> Api<kube::api::DynamicObject> {
    match exp.namespace() {
        Some(ns) => Api::namespaced_with(
            client.clone(),
            &ns,
            &kube::api::ApiResource::erase::<Experiment>(&()),
        ),
        None => Api::all_with(
            client.clone(),
            &kube::api::ApiResource::erase::<crd::ClusterExperiment>(&()),
        ),
    }
}

/// How runs, agents' leases and logs name an experiment: `namespace/name` for an
/// Experiment, the bare name for a ClusterExperiment (a namespace never holds a '/').
pub fn key_of(exp: &Experiment) -> String {
    match exp.namespace() {
        Some(ns) => format!("{ns}/{}", exp.name_any()),
        None => exp.name_any(),
    }
}

/// A reference to the object, of its own kind (Events' `regarding`).
fn reference(exp: &Experiment) -> k8s_openapi::api::core::v1::ObjectReference {
    let mut r = exp.object_ref(&());
    if exp.namespace().is_none() {
        r.kind = Some("ClusterExperiment".into());
    }
    r
}

/// The evidence ConfigMap's owner: the object, of its own kind.
fn owner(
    exp: &Experiment,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    let mut o = exp.controller_owner_ref(&())?;
    if exp.namespace().is_none() {
        o.kind = "ClusterExperiment".into();
    }
    Some(o)
}

/// The finalizer patches: JSON patches whose `test` op makes them fail if someone else
/// changed the list meanwhile (the reconcile then retries on fresh data).
pub fn finalizer_patch(finalizers: Option<&[String]>, add: bool) -> Option<serde_json::Value> {
    use serde_json::json;
    if add {
        return Some(match finalizers {
            None => json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ]),
            Some(f) => json!([
                {"op": "test", "path": "/metadata/finalizers", "value": f},
                {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
            ]),
        });
    }
    let i = finalizers?.iter().position(|f| f == FINALIZER)?;
    let path = format!("/metadata/finalizers/{i}");
    Some(json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]))
}

async fn patch_finalizers(client: &Client, exp: &Experiment, add: bool) -> Result<(), Error> {
    let Some(v) = finalizer_patch(exp.meta().finalizers.as_deref(), add) else {
        return Ok(());
    };
    let patch: json_patch::Patch =
        serde_json::from_value(v).map_err(|e| Error::Other(e.to_string()))?;
    api(client, exp)
        .patch(
            &exp.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await?;
    Ok(())
}

/// Write the status: phase, conditions, and (once evaluated) the verdicts.
async fn set_status(
    client: &Client,
    exp: &Experiment,
    phase: Phase,
    verdicts: Option<&[Verdict]>,
    reason: &str,
    evidence: Option<String>,
    ending: Option<&str>,
) -> Result<(), Error> {
    let mut st: ExperimentStatus = exp.status.clone().unwrap_or_default();
    st.phase = phase;
    if let Some(v) = verdicts {
        status::record_verdicts(&mut st, v);
    }
    if evidence.is_some() {
        st.evidence = evidence;
    }
    st.observed_generation = exp.meta().generation;
    st.conditions = status::conditions(
        &st.conditions,
        phase,
        st.verdict.as_deref(),
        reason,
        &now_rfc3339(),
        exp.meta().generation,
        ending,
    );
    let patch = serde_json::json!({ "status": st });
    api(client, exp)
        .patch_status(
            &exp.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

async fn event(ctx: &Ctx, exp: &Experiment, t: EventType, reason: &str, action: &str, note: &str) {
    let note: String = note.chars().take(1000).collect();
    // Every Event is logged too: the controller's log tells the same story.
    match t {
        EventType::Warning => tracing::warn!(reason, action, "{note}"),
        EventType::Normal => tracing::info!(reason, action, "{note}"),
    }
    let regarding = reference(exp);
    if let Err(e) = ctx
        .recorder
        .publish(t, reason, action, &note, &regarding)
        .await
    {
        tracing::warn!(reason, "publishing an event failed: {e}");
    }
}

/// A pod as the selection sees it, and its containers' runtime ids.
pub fn pod_info(p: &Pod) -> (PodInfo, Vec<(String, String)>) {
    let st = p.status.as_ref();
    let ids = st
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    let id = c.container_id.as_deref()?;
                    let bare = id.split_once("://").map_or(id, |(_, b)| b);
                    Some((c.name.clone(), bare.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let info = PodInfo {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        uid: p.uid().unwrap_or_default(),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        labels: p.labels().clone(),
        running: st.and_then(|s| s.phase.as_deref()) == Some("Running"),
        containers: p
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default(),
        terminating: p.meta().deletion_timestamp.is_some(),
        ip: st
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok()),
        created_unix: p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
        owner: p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone()),
    };
    (info, ids)
}

/// The pods of a target's namespace matching its labels, with container ids by pod UID.
async fn list_pods(
    client: &Client,
    sel: &murphy::model::spec::PodSelector,
) -> Result<(Vec<PodInfo>, HashMap<String, Vec<(String, String)>>), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &sel.namespace);
    let labels = sel
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut lp = ListParams::default();
    if !labels.is_empty() {
        lp = lp.labels(&labels);
    }
    let list = api
        .list(&lp)
        .await
        .map_err(|e| format!("listing pods in {}: {e}", sel.namespace))?;
    let mut infos = Vec::new();
    let mut ids = HashMap::new();
    for p in &list.items {
        let (i, c) = pod_info(p);
        ids.insert(i.uid.clone(), c);
        infos.push(i);
    }
    Ok((infos, ids))
}

/// Only the containers the fault names (or all), with their ids.
fn placed(c: &Chosen, ids: &HashMap<String, Vec<(String, String)>>, addr: &str) -> Placed {
    let all = ids.get(&c.pod.uid).cloned().unwrap_or_default();
    Placed {
        containers: all
            .into_iter()
            .filter(|(n, _)| c.containers.contains(n))
            .collect(),
        chosen: c.clone(),
        addr: addr.to_string(),
    }
}

fn seed_of(exp: &Experiment) -> u64 {
    exp.spec
        .spec
        .seed
        .unwrap_or_else(|| murphy::rand::hash(&exp.uid().unwrap_or_default()))
}

/// Resolve every fault's pods and their agents, then start the run's clock and probes.
async fn start(ctx: &Ctx, exp: &Experiment, uid: &str) -> Result<ClusterRun, String> {
    let spec = &exp.spec.spec;
    let seed = seed_of(exp);
    let role_asker = role_asker(ctx, exp, uid);
    let opted = ctx.opted_in().await?;
    let mut chosen_by_target: BTreeMap<String, Vec<Chosen>> = BTreeMap::new();
    // How each role-aware target was chosen (each pod's answer), for the run's timeline.
    let mut how_chosen: Vec<(String, String)> = Vec::new();
    let mut ids = HashMap::new();
    for f in &spec.faults {
        if chosen_by_target.contains_key(&f.target) {
            continue;
        }
        let t = spec
            .targets
            .get(&f.target)
            .ok_or_else(|| format!("fault {}: no target {:?}", f.name, f.target))?;
        let sel = t.pods.as_ref().ok_or_else(|| {
            select::SelectError::NotPods {
                target: f.target.clone(),
            }
            .to_string()
        })?;
        if !opted.contains(&sel.namespace) {
            return Err(select::SelectError::NotOptedIn {
                target: f.target.clone(),
                namespace: sel.namespace.clone(),
            }
            .to_string());
        }
        let (pods, pod_ids) = list_pods(&ctx.client, sel).await?;
        // Role-aware targets (primary, replica, minority, ...) ask each matching pod
        // first, from here (the probes block: off the async threads).
        let pods = if t.select.is_some() {
            let candidates: Vec<PodInfo> = pods
                .into_iter()
                .filter(|p| {
                    p.running
                        && !p.terminating
                        && sel
                            .match_labels
                            .iter()
                            .all(|(k, v)| p.labels.get(k) == Some(v))
                })
                .collect();
            // A command role check runs in one-shot pods of its own, never here.
            let asked = match (&role_asker, t.role.as_ref()) {
                (Some(asker), Some(probe)) if probe.command.is_some() => {
                    let members: Vec<(String, std::net::Ipv4Addr)> = candidates
                        .iter()
                        .filter_map(|p| Some((p.name.clone(), p.ip?)))
                        .collect();
                    Some(asker.ask(&f.target, probe, &members).await)
                }
                _ => None,
            };
            let (name, spec_t) = (f.target.clone(), t.clone());
            let (narrowed, how) = tokio::task::spawn_blocking(move || {
                select::by_role(&name, &spec_t, candidates, seed, asked.as_ref())
            })
            .await
            .map_err(|e| e.to_string())??;
            if !how.is_empty() {
                how_chosen.push((f.name.clone(), format!("{}: {how}", f.target)));
            }
            narrowed
        } else {
            pods
        };
        let chosen = select::select_pods(
            &f.target,
            t,
            &pods,
            &opted,
            seed,
            spec.max_targets() as usize,
        )
        .map_err(|e| e.to_string())?;
        ids.extend(pod_ids);
        chosen_by_target.insert(f.target.clone(), chosen);
    }
    let nodes: BTreeSet<String> = chosen_by_target
        .values()
        .flatten()
        .filter_map(|c| c.pod.node.clone())
        .collect();
    let addrs = ctx.directory.resolve(&ctx.client, &nodes).await?;
    let targets = spec
        .faults
        .iter()
        .map(|f| {
            let ps = chosen_by_target
                .get(&f.target)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            let node = c.pod.node.clone().unwrap_or_default();
                            placed(c, &ids, addrs.get(&node).map_or("", String::as_str))
                        })
                        .collect()
                })
                .unwrap_or_default();
            (f.name.clone(), ps)
        })
        .collect();
    let view = pod_view(ctx, spec, &opted).await?;
    let name = key_of(exp);
    // Command probes run in pods of their own, running before the run's clock starts so
    // that they sample the whole steady state.
    let probe_pods = start_probe_pods(ctx, exp, uid).await?;
    let mut run =
        match ClusterRun::start(uid, &name, spec.clone(), seed, ctx.lease_ms, targets, &view) {
            Ok(r) => r,
            Err(e) => {
                crate::probe_pods::delete(&ctx.client, &probe_pods).await;
                return Err(e.to_string());
            }
        };
    run.follow_probe_pods(&ctx.client, probe_pods);
    run.role_asker = role_asker;
    for (fault, how) in how_chosen {
        run.chosen_by_role(&fault, how);
    }
    Ok(run)
}

/// How this run asks a `command` role check (in one-shot pods of its own, from
/// `spec.commandPod`), when it has one.
fn role_asker(ctx: &Ctx, exp: &Experiment, uid: &str) -> Option<crate::probe_pods::RoleAsker> {
    let spec = &exp.spec.spec;
    let any = spec
        .targets
        .values()
        .any(|t| t.role.as_ref().is_some_and(|r| r.command.is_some()));
    if !any {
        return None;
    }
    Some(crate::probe_pods::RoleAsker {
        client: ctx.client.clone(),
        runner: ctx.runner.clone()?,
        pod: spec.command_pod.clone()?,
        namespace: exp
            .namespace()
            .unwrap_or_else(|| ctx.home_namespace.clone()),
        exp: exp.name_any(),
        uid: uid.to_string(),
        owner: owner(exp),
    })
}

/// A pod for each command probe (`spec.commandPod`), running; none without command probes.
async fn start_probe_pods(
    ctx: &Ctx,
    exp: &Experiment,
    uid: &str,
) -> Result<Vec<crate::probe_pods::ProbePod>, String> {
    let spec = &exp.spec.spec;
    let commands: Vec<_> = spec
        .probes
        .iter()
        .filter_map(|p| Some((p, p.check.command.as_ref()?)))
        .collect();
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    let cp = spec
        .command_pod
        .as_ref()
        .ok_or("spec.probes[].command needs spec.commandPod on a cluster (refused at admission)")?;
    let runner = ctx.runner.as_ref().ok_or(
        "this controller was started without --probe-pod-image, so it cannot run command probes (the chart sets it)",
    )?;
    let ns = exp
        .namespace()
        .unwrap_or_else(|| ctx.home_namespace.clone());
    // Alive for the whole run and a margin; gone by itself after.
    let lifetime = murphy::plan::Plan::new(spec).length() + Duration::from_secs(120);
    let pods = commands
        .into_iter()
        .map(|(p, c)| {
            (
                p.name.clone(),
                crate::probe_pods::pod_for(
                    &exp.name_any(),
                    uid,
                    &ns,
                    owner(exp),
                    p,
                    c,
                    cp,
                    runner,
                    lifetime,
                ),
            )
        })
        .collect();
    crate::probe_pods::start(&ctx.client, pods, Duration::from_secs(90)).await
}

/// The addresses the run plan resolves faults against: every running pod of each target a
/// fault names as its peers (in opted-in namespaces only, like any target).
async fn pod_view(
    ctx: &Ctx,
    spec: &murphy::model::ExperimentSpec,
    opted: &BTreeSet<String>,
) -> Result<PodView, String> {
    // Every running pod of a peer target (not only the ones a fault chose from it): a
    // peer is the whole target, as on `murphy run`. Likewise every pod of a target a
    // workload's endpoints name, by pod name (a StatefulSet's in ordinal order).
    let mut view = PodView::default();
    let named: Vec<String> = spec
        .faults
        .iter()
        .flat_map(|f| f.action.peer_targets().iter().cloned())
        .chain(
            spec.workloads
                .iter()
                .flat_map(murphy::plan::workload_targets),
        )
        .chain(spec.watches.iter().flat_map(murphy::plan::watch_targets))
        .collect();
    for peer in &named {
        if view.addrs.contains_key(peer) {
            continue;
        }
        let sel = spec
            .targets
            .get(peer)
            .and_then(|t| t.pods.as_ref())
            .ok_or_else(|| {
                select::SelectError::NotPods {
                    target: peer.clone(),
                }
                .to_string()
            })?;
        if !opted.contains(&sel.namespace) {
            return Err(select::SelectError::NotOptedIn {
                target: peer.clone(),
                namespace: sel.namespace.clone(),
            }
            .to_string());
        }
        let (pods, _) = list_pods(&ctx.client, sel).await?;
        let mut running: Vec<_> = pods
            .iter()
            .filter(|p| p.running && !p.terminating)
            .collect();
        // By name, shorter first: a StatefulSet's pods in ordinal order (etcd-2 before
        // etcd-10).
        running.sort_by(|a, b| (a.name.len(), &a.name).cmp(&(b.name.len(), &b.name)));
        let ips = running.iter().filter_map(|p| p.ip).collect();
        view.addrs.insert(peer.clone(), ips);
    }
    // Every running pod of a cluster whose roles go on the timeline (each asked from the
    // controller all through the run, as `murphy run` asks its members).
    for (name, t) in &spec.targets {
        let (Some(sel), Some(role)) = (t.pods.as_ref(), t.role.as_ref()) else {
            continue;
        };
        if !role.on_timeline() || role.command.is_some() || !opted.contains(&sel.namespace) {
            continue;
        }
        let (pods, _) = list_pods(&ctx.client, sel).await?;
        // Every pod that is not going away: one not running yet (or without an address)
        // is asked all the same and answers "unknown", so it can never be a primary
        // nobody saw.
        let mut live: Vec<_> = pods.iter().filter(|p| !p.terminating).collect();
        live.sort_by(|a, b| (a.name.len(), &a.name).cmp(&(b.name.len(), &b.name)));
        let members = live.iter().map(|p| (p.name.clone(), p.ip)).collect();
        view.members.insert(name.clone(), members);
    }
    Ok(view)
}

/// Faults whose window is open follow their pods: a replacement pod of a targeted
/// workload gets the fault too.
async fn replacements(ctx: &Ctx, run: &mut ClusterRun) {
    for fault in run.active_faults() {
        let Some(f) = run.spec.fault(&fault).cloned() else {
            continue;
        };
        let Some(t) = run.spec.targets.get(&f.target).cloned() else {
            continue;
        };
        let Some(sel) = t.pods.clone() else { continue };
        let Ok((pods, ids)) = list_pods(&ctx.client, &sel).await else {
            continue;
        };
        let chosen: Vec<Chosen> = run
            .targets
            .get(&fault)
            .map(|ps| ps.iter().map(|p| p.chosen.clone()).collect())
            .unwrap_or_default();
        // A chosen pod that is deleted or terminating gives its injection back at once
        // (a frozen process would keep it Terminating), and leaves the fault's targets.
        let gone: Vec<String> = select::gone(&chosen, &pods)
            .into_iter()
            .map(|c| c.pod.uid.clone())
            .collect();
        run.release(&ctx.agents, &fault, &gone).await;
        // Replacements fill the slots gone pods left, now or in an earlier step (a new pod
        // may still be Pending when the old one is already Terminating).
        let mut slots: Vec<Chosen> = run
            .targets
            .get(&fault)
            .map(|ps| ps.iter().map(|p| p.chosen.clone()).collect())
            .unwrap_or_default();
        slots.extend(run.vacated.get(&fault).cloned().unwrap_or_default());
        let since = (run.started_unix_ms / 1000) as i64;
        let new: Vec<PodInfo> = select::replacements(&t, &slots, &pods, since)
            .into_iter()
            .cloned()
            .collect();
        if new.is_empty() {
            continue;
        }
        let nodes = new.iter().filter_map(|p| p.node.clone()).collect();
        let Ok(addrs) = ctx.directory.resolve(&ctx.client, &nodes).await else {
            continue;
        };
        let placed_new = new
            .into_iter()
            .map(|p| {
                let containers = if sel.containers.is_empty() {
                    p.containers.clone()
                } else {
                    sel.containers.clone()
                };
                let node = p.node.clone().unwrap_or_default();
                let c = Chosen { pod: p, containers };
                placed(&c, &ids, addrs.get(&node).map_or("", String::as_str))
            })
            .collect();
        run.reinject(&ctx.agents, &fault, placed_new, &[]).await;
    }
}

/// The evidence ConfigMap's name for an Experiment (a ClusterExperiment's, which lives in
/// the controller's namespace, says so: it cannot clash with an Experiment's there).
pub fn evidence_name(exp: &Experiment) -> String {
    match exp.namespace() {
        Some(_) => format!("{}-evidence", exp.name_any()),
        None => format!("cluster-{}-evidence", exp.name_any()),
    }
}

/// ConfigMaps hold at most 1 MiB; the report keeps under this, dropping samples first.
pub const EVIDENCE_BUDGET: usize = 900 * 1024;

/// The report as JSON within [`EVIDENCE_BUDGET`]: when too big, probe samples and the
/// workloads' successful operations are thinned (every other one, repeatedly; failed and
/// unknown operations stay, as do the verdicts with every lost write), and the report says
/// how often each was halved.
pub fn bounded_report(mut report: serde_json::Value) -> String {
    let mut thinned = 0;
    loop {
        let s = serde_json::to_string(&report).unwrap_or_default();
        if s.len() <= EVIDENCE_BUDGET {
            return s;
        }
        if thinned > 20 {
            // Thinning was not enough (watch samples, final-read values, events): keep
            // the verdicts (with every lost write) and the run's outline, drop the raw
            // record, and say so, rather than fail to store any evidence at all.
            for key in ["samples", "histories", "watchSamples", "events"] {
                if let Some(r) = report.get_mut("record").and_then(|r| r.as_object_mut()) {
                    r.remove(key);
                }
            }
            report["recordDropped"] = serde_json::json!(
                "the raw record did not fit in a ConfigMap; the verdicts were judged on all of it"
            );
            let s = serde_json::to_string(&report).unwrap_or_default();
            if s.len() <= EVIDENCE_BUDGET {
                return s;
            }
            return serde_json::json!({
                "verdictsDropped": "the report did not fit in a ConfigMap even without its record",
                "verdicts": report["verdicts"].as_array().map_or(0, Vec::len),
            })
            .to_string();
        }
        if let Some(samples) = report
            .pointer_mut("/record/samples")
            .and_then(|v| v.as_array_mut())
        {
            let kept: Vec<_> = samples.iter().step_by(2).cloned().collect();
            *samples = kept;
        }
        let histories = report
            .pointer_mut("/record/histories")
            .and_then(|v| v.as_array_mut());
        for h in histories.into_iter().flatten() {
            if let Some(ops) = h.get_mut("ops").and_then(|v| v.as_array_mut()) {
                let mut n = 0usize;
                ops.retain(|o| {
                    n += 1;
                    o["result"] != "ok" || n % 2 == 1
                });
            }
        }
        thinned += 1;
        report["samplesThinned"] = serde_json::json!(thinned);
        report["okOperationsThinned"] = serde_json::json!(thinned);
    }
}

async fn finish(ctx: &Ctx, exp: &Experiment, run: &mut ClusterRun) -> Result<(), Error> {
    let (status, why) = run.ending();
    let aborted = why.clone().filter(|_| status != RunStatus::Completed);
    if run.result.is_none() && run.histories.is_none() {
        // Every fault is reverted by now: the workloads stop and read back what the
        // system holds (blocking, up to each one's deadline), as on `murphy run`.
        let (ws, watches) = run.take_observers();
        let read = matches!(status, RunStatus::Completed | RunStatus::Aborted);
        let clock = run.clock;
        let (hs, watched) = tokio::task::spawn_blocking(move || {
            let watched = murphy::watch::stop_all(watches, clock.now_ms());
            (murphy::workload::stop_and_read(ws, clock, read), watched)
        })
        .await
        .unwrap_or_default();
        run.end_observers(hs, watched);
    }
    if run.result.is_none() {
        // Pods of a role-timeline cluster that appeared during the run were never asked:
        // they join its members (unanswered), so no claim holds without them.
        for (target, t) in &run.spec.targets.clone() {
            let (Some(sel), Some(role)) = (t.pods.as_ref(), t.role.as_ref()) else {
                continue;
            };
            if !role.on_timeline() || role.command.is_some() {
                continue;
            }
            if let Ok((pods, _)) = list_pods(&ctx.client, sel).await {
                let names = pods
                    .iter()
                    .filter(|p| !p.terminating)
                    .map(|p| p.name.clone())
                    .collect();
                run.seen_members(target, names);
            }
        }
        run.result = Some(run.finish(status.clone(), why));
    }
    // The command probes' pods go with the run (their samples are in the record now).
    let pods = std::mem::take(&mut run.probe_pods);
    crate::probe_pods::delete(&ctx.client, &pods).await;
    let Some((record, verdicts)) = run.result.clone() else {
        return Ok(());
    };
    // The report shows the spec the run carried out, not the object as it is now.
    let mut core = core_experiment(exp);
    core.spec = run.spec.clone();
    let out = murphy::runner::RunOutput {
        run_id: exp.uid().unwrap_or_default().chars().take(8).collect(),
        seed: run.seed,
        started_unix_ms: run.started_unix_ms,
        record,
        verdicts: verdicts.clone(),
    };
    let report = murphy::report::RunReport::new(&core, out);
    let table = murphy::report::table(&report);
    let json = bounded_report(serde_json::to_value(&report).unwrap_or_default());
    let name = evidence_name(exp);
    let evidence_ns = exp
        .namespace()
        .unwrap_or_else(|| ctx.home_namespace.clone());
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(evidence_ns.clone()),
            owner_references: owner(exp).map(|o| vec![o]),
            labels: Some(BTreeMap::from([(
                "murphy.dev/experiment".to_string(),
                exp.name_any(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("summary.txt".to_string(), table),
            ("report.json".to_string(), json),
        ])),
        ..Default::default()
    };
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &evidence_ns);
    match cms.create(&PostParams::default(), &cm).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            cms.replace(&name, &PostParams::default(), &cm).await?;
        }
        Err(e) => return Err(e.into()),
    }
    let word = status::overall_word(&verdicts);
    let phase = if aborted.is_some() {
        Phase::Aborted
    } else {
        Phase::Completed
    };
    let counts = summary(&verdicts);
    let steady_failed = status == RunStatus::SteadyStateFailed;
    let mut reason = match &aborted {
        // "the steady state did not hold, so no fault was injected: ..."
        Some(r) if steady_failed => format!("{r}; {counts}"),
        Some(r) => format!("aborted: {r}; {counts}"),
        None => format!("verdict {word}: {counts}"),
    };
    if let Some((record, _)) = &run.result {
        if !record.left_behind.is_empty() {
            reason = format!("LEFT BEHIND: {}; {reason}", record.left_behind.join("; "));
        }
    }
    set_status(
        &ctx.client,
        exp,
        phase,
        Some(&verdicts),
        &reason,
        Some(name),
        steady_failed.then_some("SteadyStateFailed"),
    )
    .await?;
    ctx.metrics.completed(word, phase == Phase::Aborted);
    if let (Some(g), false) = (&ctx.grafana, run.annotated) {
        run.annotated = true;
        let (g, anns) = (
            g.clone(),
            murphy::annotate::annotations(&report, g.dashboard_uid.as_deref()),
        );
        let posted = tokio::task::spawn_blocking(move || murphy::annotate::post(&g, &anns))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match posted {
            Ok(n) => {
                tracing::info!(experiment = %exp.name_any(), "{n} annotations posted to Grafana")
            }
            Err(e) => {
                event(
                    ctx,
                    exp,
                    EventType::Warning,
                    "AnnotationsFailed",
                    "Annotate",
                    &format!("Grafana annotations not posted: {e}"),
                )
                .await;
            }
        }
    }
    let t = if word == "held" && phase == Phase::Completed {
        EventType::Normal
    } else {
        EventType::Warning
    };
    event(ctx, exp, t, &format!("{phase:?}"), "Evaluate", &reason).await;
    Ok(())
}

fn summary(v: &[Verdict]) -> String {
    use murphy::claims::Outcome;
    let n = |o: Outcome| v.iter().filter(|x| x.outcome == o).count();
    format!(
        "{} held, {} failed, {} inconclusive",
        n(Outcome::Held),
        n(Outcome::Failed),
        n(Outcome::Inconclusive)
    )
}

/// What `murphy-operator controller` is told.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    pub tls_dir: std::path::PathBuf,
    pub agent_server_name: String,
    pub directory: Directory,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub leader_election: Option<(String, String)>,
    pub lease_ms: u64,
    pub identity: String,
    /// The controller's own namespace (ClusterExperiments' evidence).
    pub namespace: String,
    /// The image and pull policy of command probes' pods' init container (the operator's).
    pub runner: Option<crate::probe_pods::Runner>,
    /// Where to serve the admission webhook (HTTPS with the certificate in `tls_dir`).
    pub webhook_addr: Option<std::net::SocketAddr>,
    /// Namespaced mode: only Experiments of these namespaces, which are also the only
    /// namespaces targets may be in (no ClusterExperiments, no namespace listing).
    /// Empty: every namespace, targets in those labelled murphy.dev/chaos=enabled.
    pub watch_namespaces: Vec<String>,
    /// Post finished runs' annotations to this Grafana.
    pub grafana: Option<murphy::annotate::Target>,
}

/// Run the controller until SIGTERM/SIGINT: the API server from the kubeconfig (or the
/// pod's service account), leader election when asked, then kube-runtime's Controller
/// over every Experiment in the cluster.
pub async fn run_controller(o: ControllerOptions) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    use kube::runtime::{watcher, Controller};
    let tls = crate::certs::Bundle::read(&o.tls_dir).map_err(anyhow::Error::msg)?;
    let client = Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("connecting to the API server (kubeconfig or in-cluster): {e}")
    })?;
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = o.metrics_addr {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--metrics-addr {addr}: {e}"))?;
        let m = metrics.clone();
        tokio::spawn(crate::metrics::serve(l, Arc::new(move || m.render())));
    }
    // Every replica answers admission, leader or not.
    if let Some(addr) = o.webhook_addr {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--webhook-addr {addr}: {e}"))?;
        tokio::spawn(crate::webhook::serve(l, o.tls_dir.clone()));
    }
    let mut lost_leadership: std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>> =
        Box::pin(std::future::pending());
    if let Some((ns, name)) = &o.leader_election {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(client.clone(), ns);
        tracing::info!(identity = %o.identity, "waiting for lease {ns}/{name}");
        crate::leader::acquire(&leases, name, &o.identity, 15).await;
        tracing::info!(identity = %o.identity, "leads");
        let (name, me) = (name.clone(), o.identity.clone());
        lost_leadership =
            Box::pin(async move { crate::leader::hold(&leases, &name, &me, 15).await });
    }
    let recorder = Events {
        client: client.clone(),
        controller: "murphy-controller".into(),
        instance: o.identity.clone(),
    };
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        agents: crate::run::agents(&tls, &o.agent_server_name),
        directory: o.directory.clone(),
        recorder,
        lease_ms: o.lease_ms,
        runs: Mutex::new(HashMap::new()),
        metrics,
        home_namespace: o.namespace.clone(),
        runner: o.runner.clone(),
        watch_namespaces: o.watch_namespaces.clone(),
        grafana: o.grafana.clone(),
    });
    tracing::info!(
        identity = %o.identity,
        lease_ms = o.lease_ms,
        agents = %match (&o.directory.namespace, &o.directory.selector) {
            (Some(ns), Some(sel)) => format!("pods {sel} in namespace {ns}, port {}", o.directory.port),
            _ => format!("{} fixed address(es)", o.directory.fixed.len()),
        },
        "{}",
        if o.watch_namespaces.is_empty() {
            format!(
                "watching Experiments (each targets its own namespace) and ClusterExperiments in every namespace; targets only in namespaces labelled {}={}",
                select::OPT_IN_LABEL,
                select::OPT_IN_VALUE
            )
        } else {
            format!(
                "namespaced: watching Experiments in {} only (no ClusterExperiments)",
                o.watch_namespaces.join(", ")
            )
        }
    );
    // Cluster-wide: one watch over every namespace. Namespaced mode: one per watched
    // namespace (the controller may list nothing else).
    let apis: Vec<Api<Experiment>> = if o.watch_namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        o.watch_namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let namespaced = futures_util::future::join_all(apis.into_iter().map(|exps| {
        Controller::new(exps, watcher::Config::default())
            .graceful_shutdown_on(crate::node::stopped())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|r| async move {
                if let Err(e) = r {
                    tracing::warn!("{e}");
                }
            })
    }));
    // ClusterExperiments go through the very same reconcile, seen as an Experiment with
    // no namespace.
    let cexps: Api<crd::ClusterExperiment> = Api::all(client);
    let cluster_wide = o.watch_namespaces.is_empty();
    let cluster = Controller::new(cexps, watcher::Config::default())
        .graceful_shutdown_on(crate::node::stopped())
        .run(
            |c: Arc<crd::ClusterExperiment>, ctx| reconcile(Arc::new(c.as_experiment()), ctx),
            |c: Arc<crd::ClusterExperiment>, e: &Error, ctx| {
                error_policy(Arc::new(c.as_experiment()), e, ctx)
            },
            ctx.clone(),
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::warn!("{e}");
            }
        });
    let cluster = async move {
        if cluster_wide {
            cluster.await;
        }
    };
    let controller = futures_util::future::join(namespaced, cluster);
    tokio::select! {
        _ = controller => {}
        why = &mut lost_leadership => {
            anyhow::bail!("stopping: {why}");
        }
    }
    // Revert what this replica still holds before it goes, and end each run with the truth
    // in its status (Aborted, saying why) instead of leaving it Running for the next
    // controller to call lost. Bounded: a stop never hangs on an unreachable API server.
    let stop = async {
        let runs: Vec<_> = ctx.runs.lock().await.values().cloned().collect();
        for run in runs {
            let mut r = run.lock().await;
            r.revert(&ctx.agents, None, "the controller is stopping")
                .await;
            r.aborted.get_or_insert_with(|| {
                "the controller stopped before the run ended; every fault was reverted".into()
            });
            let got = match r.experiment.split_once('/') {
                Some((ns, name)) => {
                    Api::<Experiment>::namespaced(ctx.client.clone(), ns)
                        .get(name)
                        .await
                }
                None => Api::<crd::ClusterExperiment>::all(ctx.client.clone())
                    .get(&r.experiment)
                    .await
                    .map(|c| c.as_experiment()),
            };
            match got {
                Ok(exp) => {
                    publish(&ctx, &exp, &mut r).await;
                    if let Err(e) = finish(&ctx, &exp, &mut r).await {
                        tracing::warn!(experiment = %r.experiment, "ending the run on stop: {e}");
                    }
                }
                Err(e) => tracing::warn!(experiment = %r.experiment, "reading it on stop: {e}"),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), stop)
        .await
        .is_err()
    {
        tracing::warn!(
            "stopping: gave up ending the runs after 20 s; their leases lapse on the agents"
        );
    }
    // Hand over: a standby leads at its next ask, not a whole lease later.
    if let Some((ns, name)) = &o.leader_election {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(ctx.client.clone(), ns);
        match tokio::time::timeout(
            Duration::from_secs(3),
            crate::leader::release(&leases, name, &o.identity),
        )
        .await
        {
            Ok(Ok(true)) => tracing::info!("released lease {ns}/{name}"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!("releasing lease {ns}/{name}: {e}"),
            Err(_) => tracing::warn!("releasing lease {ns}/{name}: timed out"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evidence always fits a ConfigMap: thinned first (probe samples, successful
    /// operations), and when what cannot be thinned is still too big, the raw record goes
    /// and the verdicts stay, saying so.
    #[test]
    fn the_evidence_always_fits_a_configmap() {
        let sample = serde_json::json!({"probe": "p", "tMs": 1.0, "ok": true, "latencyMs": 1.0});
        let small = serde_json::json!({
            "verdicts": [{"claim": "c", "outcome": "held"}],
            "record": {"samples": vec![sample.clone(); 20_000]},
        });
        let s = bounded_report(small);
        assert!(s.len() <= EVIDENCE_BUDGET);
        let v: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert!(v["samplesThinned"].as_u64() > Some(0));
        assert!(v.get("recordDropped").is_none());
        assert!(!v["record"]["samples"].as_array().expect("kept").is_empty());
        // Watch samples are never thinned: with enough of them only dropping helps.
        let row = serde_json::json!({"watch": "lb", "tMs": 1.0, "proxy": "app", "server": "web-1", "status": "UP", "total": 1, "current": 0});
        let big = serde_json::json!({
            "verdicts": [{"claim": "c", "outcome": "failed", "lostWrites": [{"value": "w-1"}]}],
            "record": {"watchSamples": vec![row; 20_000], "status": "completed"},
        });
        let s = bounded_report(big);
        assert!(s.len() <= EVIDENCE_BUDGET);
        let v: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert!(v["recordDropped"].is_string(), "{v}");
        assert_eq!(v["verdicts"][0]["lostWrites"][0]["value"], "w-1");
        assert_eq!(v["record"]["status"], "completed");
    }
}
