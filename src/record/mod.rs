//! The record of a run: one clock and plain data — probe samples, fault stages, lab and
//! guardrail events, workload histories, watch samples. Claims are evaluated on a
//! finished [`RunRecord`] ([`crate::verdict`]); reports render it. This layer imports
//! nothing of Murphy above it: no faults, runner, lab, probes, workloads or I/O.

pub mod history;
pub mod watch;

use serde::{Deserialize, Serialize};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The run's monotonic clock; times are milliseconds since the run started.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    wall_ms: u64,
}

impl Clock {
    pub fn start() -> Clock {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            start: Instant::now(),
            wall_ms,
        }
    }
    pub fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
    /// An instant on the run's clock (0 for instants before the start).
    pub fn ms_at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }
    pub fn wall_start_ms(&self) -> u64 {
        self.wall_ms
    }
}

/// One probe sample.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub probe: String,
    pub t_ms: f64,
    pub ok: bool,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One answer of one cluster member to its role probe, on the run's clock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleSample {
    /// The target (cluster) the member belongs to.
    pub target: String,
    /// The member's label (`r1/redis`, `netns n1`).
    pub member: String,
    /// The address it was asked at (acknowledgements from it are matched by address).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// When the question was asked.
    pub t_ms: f64,
    /// How long the answer took.
    pub latency_ms: f64,
    pub role: RoleSeen,
    /// Why the role is unknown or down.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl RoleSample {
    /// When the answer came back: the member held this role at some instant between the
    /// question and the answer.
    pub fn answered_ms(&self) -> f64 {
        self.t_ms + self.latency_ms
    }
}

/// One cluster on the role timeline: every member that was to be asked (whether or not it
/// ever answered), its addresses, and how the asking went.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RoleCluster {
    pub target: String,
    pub members: Vec<RoleMember>,
    /// Time between two questions to the same member.
    pub interval_ms: f64,
    /// When the asking started and stopped (run clock).
    pub started_ms: f64,
    pub stopped_ms: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RoleMember {
    pub label: String,
    /// Every address of the member: acknowledgements from any of them are its deeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// What a member said (or what is known) about its role.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RoleSeen {
    Primary,
    Replica,
    /// Not serving at all: its processes are gone and its address refuses connections.
    Down,
    /// No answer (a timeout, an error): the member might be anything.
    Unknown,
}

/// Something other than a sample, on the same clock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub t_ms: f64,
    /// `phase`, `fault`, `lab`, `guardrail`, `observation`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    pub message: String,
}

/// What happened to one fault.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FaultRecord {
    pub name: String,
    pub kind: String,
    pub target: String,
    /// Members the fault acted on.
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted_ms: Option<f64>,
    pub confirmed: bool,
    /// What showed the fault took effect.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evidence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time from the start of injection to confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_latency_ms: Option<f64>,
    /// Set when the fault stopped being in effect before its window closed (its agent
    /// lost it, or its lease could not be renewed): claims that would hold on its window
    /// are inconclusive, since the window was not covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<EarlyEnd>,
    /// What the fault achieved, as its engine measured it (hold error, packets, syscalls,
    /// bytes leaked, longest stop), beside what the spec asked; taken at its revert.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub achieved: std::collections::BTreeMap<String, f64>,
}

/// A fault's achieved figures on one line for the timeline (`name=value`, 3 decimals).
pub fn achieved_text(achieved: &std::collections::BTreeMap<String, f64>) -> String {
    achieved
        .iter()
        .map(|(k, v)| format!("{k}={}", (v * 1000.0).round() / 1000.0))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fold one member's achieved figures into a fault's (the cluster door reverts each pod
/// on its own and gets each pod's figures): counts add up (packets, syscalls, threads,
/// bytes leaked, steps, OOM kills, paths resolved); every other figure (hold error,
/// latency, rate, longest stop, queue peak) keeps the worst member's, the highest; a drop
/// share is recomputed from the summed counts.
pub fn merge_achieved(
    into: &mut std::collections::BTreeMap<String, f64>,
    from: impl IntoIterator<Item = (String, f64)>,
) {
    const COUNTS: [&str; 7] = [
        "packets",
        "syscalls",
        "threads",
        "fdPaths",
        "leakedBytes",
        "steps",
        "oomKills",
    ];
    for (k, v) in from {
        if !v.is_finite() {
            continue;
        }
        let e = into
            .entry(k.clone())
            .or_insert(if COUNTS.iter().any(|c| k.starts_with(c)) {
                0.0
            } else {
                f64::NEG_INFINITY
            });
        if COUNTS.iter().any(|c| k.starts_with(c)) {
            *e += v;
        } else {
            *e = e.max(v);
        }
    }
    if let (Some(seen), Some(dropped)) = (into.get("packetsSeen"), into.get("packetsDropped")) {
        if *seen > 0.0 {
            let share = dropped / seen;
            into.insert("dropShare".into(), share);
        }
    }
}

/// A fault that stopped being in effect before its window closed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EarlyEnd {
    /// The last time it was known to be in effect (its confirmation or last renewal).
    pub last_known_ms: f64,
    /// What showed it had ended, or that nobody could tell.
    pub reason: String,
}

/// Boundaries of the run's phases.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Phases {
    pub steady_start_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults_start_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults_end_ms: Option<f64>,
    pub end_ms: f64,
}

/// How the run ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Completed,
    /// The steady state did not hold before any fault; nothing was injected.
    SteadyStateFailed,
    /// A guardrail stopped the run.
    Aborted,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// Targets did not resolve, the lab did not come up, or a fault failed to inject.
    Error,
}

/// The finished record of a run: what claims are evaluated on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub samples: Vec<Sample>,
    pub events: Vec<Event>,
    pub faults: Vec<FaultRecord>,
    /// Workload histories (operations and final reads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histories: Vec<history::History>,
    /// Samples of `spec.watches` (e.g. a balancer's view of its backends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch_samples: Vec<watch::WatchSample>,
    pub phases: Phases,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// What Murphy could not undo (a revert or the lab's teardown that did not complete),
    /// each naming what is left: the machine is not as it was, whatever the verdicts say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_behind: Vec<String>,
    /// Every member's answers to its cluster's role probe through the run (the role
    /// timeline), in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleSample>,
    /// The clusters on the role timeline: who was to be asked, so that a member that never
    /// answered is known to be missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_clusters: Vec<RoleCluster>,
    /// The Prometheus range queries made for `prometheus` claims, with what they returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prometheus: Vec<PromQuery>,
}

/// One range query (`/api/v1/query_range`) made for a claim after the run, and its answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PromQuery {
    /// The claim it was made for.
    pub claim: String,
    pub url: String,
    pub query: String,
    /// The window asked about, on the run's clock, and the resolution.
    pub start_ms: f64,
    pub end_ms: f64,
    pub step_ms: f64,
    /// Every series returned (labels, then `[t_ms, value]` on the run's clock; `NaN`
    /// values are left out: they are no data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<PromSeries>,
    /// Why there is no answer (the server was unreachable, refused the query, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PromSeries {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    pub points: Vec<[f64; 2]>,
}

impl FaultRecord {
    /// When the fault was known to be in effect: its confirmation (its injection for a
    /// record that has no confirmation time).
    pub fn in_effect_ms(&self) -> Option<f64> {
        self.confirmed_ms.or(self.injected_ms)
    }
}

impl RunRecord {
    /// The finished record from its parts, as both front doors build it: samples in time
    /// order, everything else as recorded.
    #[allow(clippy::too_many_arguments)]
    pub fn assemble(
        mut samples: Vec<Sample>,
        events: Vec<Event>,
        faults: Vec<FaultRecord>,
        histories: Vec<history::History>,
        watch_samples: Vec<watch::WatchSample>,
        phases: Phases,
        status: RunStatus,
        status_reason: Option<String>,
    ) -> RunRecord {
        samples.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        RunRecord {
            samples,
            events,
            faults,
            histories,
            watch_samples,
            phases,
            status,
            status_reason,
            left_behind: Vec::new(),
            prometheus: Vec::new(),
            roles: Vec::new(),
            role_clusters: Vec::new(),
        }
    }

    pub fn samples_of<'a>(&'a self, probe: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.probe == probe)
    }
    pub fn fault(&self, name: &str) -> Option<&FaultRecord> {
        self.faults.iter().find(|f| f.name == name)
    }
    /// The named fault, or without a name the first one injected.
    pub fn fault_or_first(&self, name: Option<&str>) -> Option<&FaultRecord> {
        match name {
            Some(f) => self.fault(f),
            None => self
                .faults
                .iter()
                .filter(|f| f.injected_ms.is_some())
                .min_by(|a, b| {
                    a.injected_ms
                        .unwrap_or(0.0)
                        .total_cmp(&b.injected_ms.unwrap_or(0.0))
                }),
        }
    }
    pub fn history(&self, workload: &str) -> Option<&history::History> {
        self.histories.iter().find(|h| h.workload == workload)
    }
}

#[cfg(test)]
mod merge_tests {
    use super::{achieved_text, merge_achieved};
    use std::collections::BTreeMap;

    #[test]
    fn pods_figures_add_up_as_counts_and_keep_the_worst_otherwise() {
        let mut all = BTreeMap::new();
        let pod = |seen: f64, dropped: f64, p99: f64| {
            vec![
                ("packetsSeen".to_string(), seen),
                ("packetsDropped".to_string(), dropped),
                ("holdErrorP99Us".to_string(), p99),
                ("dropShare".to_string(), dropped / seen),
            ]
        };
        merge_achieved(&mut all, pod(100.0, 10.0, 300.0));
        merge_achieved(&mut all, pod(300.0, 50.0, 120.0));
        assert_eq!(all["packetsSeen"], 400.0);
        assert_eq!(all["packetsDropped"], 60.0);
        assert_eq!(all["holdErrorP99Us"], 300.0);
        assert_eq!(all["dropShare"], 0.15);
        merge_achieved(&mut all, vec![("leakBytesPerS".to_string(), f64::NAN)]);
        assert!(!all.contains_key("leakBytesPerS"));
        assert_eq!(
            achieved_text(&all),
            "dropShare=0.15 holdErrorP99Us=300 packetsDropped=60 packetsSeen=400"
        );
    }
}
