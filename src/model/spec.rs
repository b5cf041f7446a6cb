//! The experiment manifest: `apiVersion: murphy.dev/v1alpha1`, `kind: Experiment`.
//!
//! These types are the single source of truth for the file format: the CLI parses them,
//! the Kubernetes CRD schema is derived from them (schemars), and the runner consumes
//! them after validation. Local-only parts (the `lab` and process selectors) live in
//! [`super::local`] and are clearly marked so the cluster front door can refuse them.
//!
//! This module must never perform I/O or depend on Kubernetes crates.

pub use super::check::{Check, CommandCheck, HttpCheck, PromCheck, TcpCheck};
pub use super::local::Vantage;
use super::local::{LabSpec, LocalTarget};
use super::quantity::{BitRate, ByteRate, ByteSize, Duration, Percent, Rate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const API_VERSION: &str = "murphy.dev/v1alpha1";
pub const KIND: &str = "Experiment";
/// The cluster-scoped kind: the same spec, targets in any opted-in namespace.
pub const CLUSTER_KIND: &str = "ClusterExperiment";

/// A whole experiment file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Experiment {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ExperimentSpec,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Name of the experiment (lowercase letters, digits and '-').
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What to break, what to watch, and what must hold.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// One sentence: the claim this experiment checks, in plain language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed for every random choice (target picking). Reported with the run so it replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Named target selectors that faults refer to.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetSpec>,
    /// Probes sample the system all through the run.
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
    /// Faults, each at an offset from the start of the fault phase.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Recovery steps (restore procedures, process starts and stops) on the fault schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepSpec>,
    /// Client workloads run all through the run and record a history of operations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<WorkloadSpec>,
    /// Components whose own view is sampled through the run (every 250ms), e.g. a load
    /// balancer's idea of which backends are up and how much each served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watches: Vec<WatchSpec>,
    /// Claims are checked after the run on the recorded timeline.
    #[serde(default)]
    pub claims: Vec<ClaimSpec>,
    /// How long the steady state must hold before any fault.
    #[serde(default)]
    pub steady_state: SteadyState,
    /// Length of the fault phase. Defaults to the end of the last fault that has a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// How long to keep observing after every fault is reverted (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observe_after: Option<Duration>,
    #[serde(default)]
    pub guardrails: Guardrails,
    /// Local only: network namespaces and processes Murphy brings up for the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<LabSpec>,
    /// Cluster only: where `command` probes run on a cluster, which never runs a command in
    /// its controller. Each command probe gets a pod of its own in the Experiment's
    /// namespace for the run (a ClusterExperiment's: the controller's namespace), from this
    /// image, that runs the command at the probe's interval. Without it a cluster refuses
    /// command probes. `murphy run` runs commands on its own machine and ignores this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_pod: Option<CommandPod>,
}

/// The pod a cluster runs command probes in.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandPod {
    /// Container image holding the probes' programs (e.g. `busybox:1.36`, `postgres:16`).
    pub image: String,
    /// Service account the pod runs as (default: the namespace's `default`, whose token is
    /// then not mounted). Name one only to give the command API access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// CPU limit of the probe container (Kubernetes quantity, default `100m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory limit of the probe container (Kubernetes quantity, default `64Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// A named selector. Exactly one way of selecting must be given.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-murphy-exactly-one" = ["pods", "lab", "members", "process", "cgroup", "netns"]))]
pub struct TargetSpec {
    #[serde(flatten)]
    pub local: LocalTarget,
    /// Cluster only: pods by namespace and label selector (each pod is one member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodSelector>,
    /// Which of the members to act on, resolved when the fault is injected (default: all).
    /// `primary` and `replica` need `role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Select>,
    /// How to ask each member for its role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleProbe>,
    /// How many of the matching members to pick (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<Pick>,
}

/// Pods on a cluster: every running pod in `namespace` whose labels include all of
/// `matchLabels`. Only namespaces that opted in (label `murphy.dev/chaos: enabled`) can be
/// targeted.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSelector {
    /// Namespace of the pods; it must carry the label `murphy.dev/chaos: enabled`.
    pub namespace: String,
    /// Labels every selected pod must carry: key → value (default: none, so every running
    /// pod in the namespace).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Containers of each pod to act on (default: every container).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
}

/// Role-aware selection of a cluster's members.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Select {
    /// The member whose role probe says primary (leader, master).
    Primary,
    /// The members whose role probe says replica (follower); narrow with `pick`.
    Replica,
    /// A seeded random minority: floor((n-1)/2) members.
    Minority,
    /// A seeded random majority: floor(n/2)+1 members.
    Majority,
    /// Every member at once (correlated loss).
    All,
}

/// Asks one member for its role. Exactly one of the fields is set; the member's lab address
/// is used with the given port.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-murphy-exactly-one" = ["redis", "postgres", "etcd", "command"]))]
pub struct RoleProbe {
    /// Redis `ROLE`: `master` is primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<PortRef>,
    /// PostgreSQL `SELECT pg_is_in_recovery()`: false is primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresRole>,
    /// etcd maintenance status: the member whose id is the leader's is primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<PortRef>,
    /// A program; exit code 0 means primary. `{address}` in an argument is replaced by
    /// the member's address (as data: no shell is involved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// Give up on a member after this long (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Ask every member through the whole run, every `interval`, and put each answer on
    /// the timeline (default true): `singlePrimary` and the failover figures are judged
    /// from it. `false` asks only when a fault that selects by role is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<bool>,
    /// Time between two questions to the same member on the timeline (default 500ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Local only: ask from inside a lab host's network namespace or an existing one
    /// (`from: {netns: NAME}`) instead of from Murphy's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vantage>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRef {
    /// Port on the member's address that the role query goes to (above 0).
    pub port: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresRole {
    /// Port on the member's address where PostgreSQL listens (above 0).
    pub port: u16,
    /// Default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// An endpoint as an experiment writes it: `ip:port`, or `{target:<name>}:<port>` — the
/// port on every member of a target (a lab host's address, a pod's IP), one endpoint each,
/// resolved by the front door when the run starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Addr(std::net::SocketAddr),
    Target { target: String, port: u16 },
}

impl Endpoint {
    /// `None` when `s` is neither form (or the port is 0).
    pub fn parse(s: &str) -> Option<Endpoint> {
        if let Ok(a) = s.parse::<std::net::SocketAddr>() {
            return Some(Endpoint::Addr(a));
        }
        let rest = s.strip_prefix("{target:")?;
        let (target, port) = rest.split_once("}:")?;
        let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
        let name_ok = !target.is_empty()
            && target
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        name_ok.then(|| Endpoint::Target {
            target: target.to_string(),
            port,
        })
    }
}

/// A client that runs all through the run at an open-loop rate and records every operation
/// (invoke, then ok / fail / info) on the run's clock. Exactly one of `http`, `redis`,
/// `postgres`, `etcd` is set.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Workload name, unique in `spec.workloads` (1-63 lowercase letters, digits and '-');
    /// claims refer to it.
    pub name: String,
    /// Operations started per second, on schedule whether or not earlier ones have finished
    /// (open loop: a slow system does not slow the client down).
    pub rate: Rate,
    /// Each node, as `ip:port` or `{target:<name>}:<port>` (that port on every member of
    /// the target: lab hosts, pods). The client sticks to one and moves to the next when an
    /// operation fails or the node refuses writes (e.g. a read-only replica).
    pub endpoints: Vec<String>,
    /// Nodes asked for the final read, which waits for exactly one of them to be primary
    /// (default: `endpoints`). List every node when the client is pinned to one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_endpoints: Vec<String>,
    /// Local only: run the client inside a lab host's network namespace (`from: ca`) or
    /// an existing one (`from: {netns: client-a}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vantage>,
    /// An operation with no answer after this long is recorded as `info` (outcome unknown).
    /// Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Default 500ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Operations in flight at most (default: rate × timeout + 1, at most 256). A due operation that finds every slot busy
    /// is recorded as `fail` (the client could not even try), never silently skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// After the run (faults healed), read back what the system holds, retrying until this
    /// deadline (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_read_deadline: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpWorkload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisWorkload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresWorkload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdWorkload>,
    /// Where accepted work ends up (e.g. the database behind a queue). When set, the final
    /// read comes from here, and waits (until the deadline) for every acknowledged value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_to: Option<Sink>,
    /// Rate changes, as offsets from the workload's start: a phase without `for` is a step
    /// that holds until the next step; a phase with `for` is a spike on top of the steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<RatePhase>,
    /// Send each operation to the next endpoint in turn (a round-robin DNS name or a
    /// client-side balancer) instead of sticking to one until it fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spread: bool,
    /// Whether the steady state needs one successful operation of this workload before any
    /// fault is injected (default true: a client that never got through means the system
    /// was not healthy to begin with). `false` for a client meant to fail, such as writes
    /// sent to a replica that must refuse them; its operations are recorded and judged all
    /// the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_succeed_before_faults: Option<bool>,
    /// HTTP only: send failed requests again, like a client library with retries (a retry
    /// storm when the backoff is short), or hold them and release them all at once the
    /// moment one succeeds (`herd`: the queued traffic returning when a service comes back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RatePhase {
    /// From the workload's start.
    pub after: Duration,
    pub rate: Rate,
    /// A spike: back to the step rate after this long.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Duration>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySpec {
    /// Retries per request after the first attempt (1 to 10).
    pub attempts: u32,
    /// Wait before each retry (default 0: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
    /// Hold failed requests until one succeeds, then send them all at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub herd: bool,
}

/// A store to read delivered values from: exactly one of `redis`, `postgres`, `etcd`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sink {
    /// Each node of the store (at least one), as `ip:port` or `{target:<name>}:<port>`.
    /// The final read waits for exactly
    /// one of them to be primary (etcd: the first that answers).
    pub endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisWorkload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresWorkload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdWorkload>,
}

/// HTTP requests; each 2xx/3xx answer is an ok operation. No final read.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpWorkload {
    /// Request path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `SADD <key> <unique value>`; the final read is `SMEMBERS <key>` on the one master.
/// With `push`, `LPUSH` onto a list instead (a queue), read back with `LRANGE`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisWorkload {
    /// Default `murphy:<workload name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key holds a list (a queue) instead of a set: values go in with `LPUSH` and are
    /// read back with `LRANGE` rather than `SADD` and `SMEMBERS` (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub push: bool,
}

/// `INSERT` of unique ids; the final read selects them from the one primary
/// (`pg_is_in_recovery()` false). The table is created if missing.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresWorkload {
    /// Default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password for `user` (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Default `murphy_writes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// Puts of unique keys under a prefix through etcd's v3 JSON gateway; the final read is a
/// linearizable range read of the prefix.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EtcdWorkload {
    /// Default `/murphy/<workload name>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Which members of a target's matches a fault acts on. Random picks use the seed.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pick {
    pub mode: PickMode,
    /// With mode `count`: how many members to pick at random (seeded), at least 1; all of
    /// them when there are fewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Percent>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PickMode {
    All,
    One,
    Count,
    Percent,
    /// A seeded random number of members, from one up to `percent` of them.
    UpToPercent,
}

/// A probe samples one thing at an interval; every sample goes on the timeline.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    /// Probe name, unique in `spec.probes` (1-63 lowercase letters, digits and '-');
    /// claims, `steadyState` and `guardrails` refer to it.
    pub name: String,
    /// Time between samples (default 250ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// A sample slower than this fails (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Local only: run the probe from inside a lab host's network namespace (`from: ca`)
    /// or an existing one (`from: {netns: client-a}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vantage>,
    #[serde(flatten)]
    pub check: Check,
}

/// One fault: what, where, when, for how long.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    /// Fault name, unique in `spec.faults` (1-63 lowercase letters, digits and '-'); claims
    /// refer to it.
    pub name: String,
    /// Name of an entry in `spec.targets`.
    pub target: String,
    /// Offset from the start of the fault phase.
    #[serde(default)]
    pub at: Duration,
    /// How long the fault lasts (default: until the end of the fault phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    #[serde(flatten)]
    pub action: FaultAction,
}

/// The fault class and its parameters, selected by `kind`. A kind's name is its variant's
/// name in kebab-case, for serde and [`FaultAction::kind`] alike (written nowhere else:
/// code names a kind as a [`FaultKind`]).
#[derive(
    Clone,
    Debug,
    Serialize,
    Deserialize,
    JsonSchema,
    PartialEq,
    strum::IntoStaticStr,
    strum::EnumDiscriminants,
)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
#[strum_discriminants(
    name(FaultKind),
    derive(strum::IntoStaticStr, strum::EnumIter, Hash),
    strum(serialize_all = "kebab-case")
)]
pub enum FaultAction {
    /// Send a signal to the target's processes; lab processes are restarted when the fault ends.
    ProcessKill(ProcessKill),
    /// Freeze the target's processes (freezer cgroup, or SIGSTOP/SIGCONT).
    ProcessPause(ProcessPause),
    /// Drop traffic between the target's network namespace and peers (nftables).
    NetworkPartition(NetworkPartition),
    /// Grow memory charged to the target's memory cgroup at a rate.
    MemoryLeak(MemoryLeak),
    /// Burn CPU inside the target's cpu cgroup.
    CpuBurn(CpuBurn),
    /// Delete or truncate files (originals journaled first).
    DataWipe(DataWipe),
    /// Flip bits, zero ranges, write garbage or truncate files (originals journaled first).
    DataCorrupt(DataCorrupt),
    /// Change a config file, optionally signalling a reload (original journaled first).
    ConfigCorrupt(ConfigCorrupt),
    /// Hold matching file operations of the running target until the fault ends.
    StorageStall(StorageStall),
    /// Delay matching file operations of the running target.
    IoLatency(IoLatency),
    /// Fail matching file operations of the running target with an errno.
    IoError(IoError),
    /// Extra open-loop HTTP traffic at the target's addresses while the fault is active.
    LoadSurge(LoadSurge),
    /// Limit the target's block IO on one device (blkio / io.max controller).
    IoThrottle(IoThrottle),
    /// Delay packets arriving at (or routed through) the target: a userspace NFQUEUE
    /// engine holds them on a timer heap (fails open if the engine dies).
    NetworkDelay(NetworkDelay),
    /// Drop a share of matching packets (nftables `numgen random`).
    NetworkLoss(NetworkLoss),
    /// Flip a bit in a share of matching packets' payload (NFQUEUE engine); the receiver's
    /// checksum then rejects them, as with a bad cable or NIC.
    NetworkCorrupt(NetworkCorrupt),
    /// Duplicate a share of matching packets (nftables `dup`).
    NetworkDuplicate(NetworkDuplicate),
    /// Let a share of packets overtake the others, which are held for `delay` (NFQUEUE).
    NetworkReorder(NetworkReorder),
    /// Limit the bandwidth the target sends with (tc tbf on its interfaces).
    NetworkBandwidth(NetworkBandwidth),
    /// Take network interfaces down: a device or link fails (with several members, a
    /// redundant pair fails at once). Static routes through them come back on revert.
    LinkDown(LinkDown),
    /// More-specific blackhole (or unreachable) routes for prefixes in the target's
    /// namespace.
    RouteBlackhole(RouteBlackhole),
    /// More-specific routes for prefixes through a wrong next hop.
    RouteHijack(RouteHijack),
    /// Withdraw and restore the target's routes for prefixes at a period (with jitter).
    RouteFlap(RouteFlap),
    /// Cut every member of the target (a site or zone) off from everything but each other
    /// and an allow list, in one step.
    SiteFailure(SiteFailure),
    /// Drop BGP (TCP port 179) between the target and peer routers: sessions die when
    /// their hold timer expires.
    BgpSessionDrop(BgpSessionDrop),
    /// Murphy's own BGP speaker opens a session with the target router (as a neighbor the
    /// router has configured) and announces, flaps or keeps resetting prefixes.
    BgpAnnounce(BgpAnnounce),
    /// The target's DNS queries (to any resolver, port 53) are redirected to Murphy's
    /// responder, which answers matching names with SERVFAIL, NXDOMAIN, a wrong address or
    /// not at all, and forwards the rest to the real resolver.
    DnsFault(DnsFault),
}

impl FaultAction {
    /// The targets whose members' addresses this fault acts on, besides its own target:
    /// the peers a partition cuts, a packet filter's peers, a site's allowed targets.
    pub fn peer_targets(&self) -> &[String] {
        use FaultAction as A;
        match self {
            A::NetworkPartition(p) => &p.peers,
            A::BgpSessionDrop(b) => &b.peers,
            A::SiteFailure(s) => &s.allow_targets,
            A::NetworkDelay(d) => &d.filter.peers,
            A::NetworkLoss(l) => &l.filter.peers,
            A::NetworkCorrupt(c) => &c.filter.peers,
            A::NetworkDuplicate(d) => &d.filter.peers,
            A::NetworkReorder(r) => &r.filter.peers,
            _ => &[],
        }
    }

    /// The file paths this fault touches (data, config and storage faults), to be
    /// resolved by the front door (a lab's `{data:<host>}` placeholders).
    pub fn paths_mut(&mut self) -> Vec<&mut String> {
        use FaultAction as A;
        match self {
            A::DataWipe(d) => d.paths.iter_mut().collect(),
            A::DataCorrupt(d) => d.paths.iter_mut().collect(),
            A::ConfigCorrupt(c) => vec![&mut c.path],
            A::StorageStall(f) => f.paths.iter_mut().collect(),
            A::IoThrottle(t) => vec![&mut t.path],
            A::IoLatency(f) => f.paths.iter_mut().collect(),
            A::IoError(f) => f.paths.iter_mut().collect(),
            _ => Vec::new(),
        }
    }

    /// The place this fault acts from when that is not its target: the lab host of
    /// `bgp-announce`'s speaker.
    pub fn acts_from(&self) -> Option<&str> {
        match self {
            FaultAction::BgpAnnounce(b) => Some(&b.from),
            _ => None,
        }
    }

    /// The kind's name (`process-kill`, ...), as in the spec.
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

impl FaultKind {
    /// The kind's name (`process-kill`, ...), as in the spec.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessKill {
    /// Signal name, e.g. SIGKILL (default) or SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Restart lab processes when the fault ends (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessPause {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<PauseMethod>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PauseMethod {
    /// Freezer cgroup where possible, else signals.
    Auto,
    Freezer,
    Signal,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPartition {
    /// Which traffic of the target to drop (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Other targets (by name) to cut the target off from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// CIDRs to cut the target off from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Drop packets arriving at the target.
    Ingress,
    /// Drop packets leaving the target.
    Egress,
    Both,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryLeak {
    /// Growth rate, e.g. "32Mi/s".
    pub rate: ByteRate,
    /// Stop growing at this size. Required when the target's cgroup has no memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<ByteSize>,
    /// `cgroup` (default): a helper process grows inside the target's memory cgroup.
    /// `inProcess`: the target process itself grows — anonymous memory mapped and touched
    /// inside it through ptrace, a tick at a time, and unmapped on revert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<LeakMode>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum LeakMode {
    Cgroup,
    InProcess,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CpuBurn {
    /// Busy threads to run in the target's cpu cgroup (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
}

/// Files a data fault acts on: absolute paths or globs (`*`, `?` within one path
/// component), seen from the target's mount namespace.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataWipe {
    /// Files to act on, as the target sees them (at least one): absolute paths or globs
    /// (`*`, `?` within one path component); lab placeholders such as `{data:db1}` apply.
    pub paths: Vec<String>,
    /// `delete` (default: files, and directories with everything in them) or `truncate`
    /// (files to zero bytes, directories' files one by one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WipeMode>,
    /// Restore the original bytes when the fault ends (default true). Set false when the
    /// experiment's own recovery steps are what must bring the data back; the journal copy
    /// is still kept until the run ends, so a crash is recoverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<bool>,
    /// Keep a copy of the originals in Murphy's journal (default true). Wiping without one
    /// is irreversible and must be asked for explicitly with `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_copy: Option<bool>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WipeMode {
    Delete,
    Truncate,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataCorrupt {
    /// Files to act on, as the target sees them (at least one): absolute paths or globs
    /// (`*`, `?` within one path component); lab placeholders such as `{data:db1}` apply.
    pub paths: Vec<String>,
    /// `bitflip` (default), `zero`, `garbage` or `truncate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<CorruptHow>,
    /// Where in each file (default: seeded random offsets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<ByteSize>,
    /// Bytes per place (default 4Ki; for `bitflip`, one bit flipped in each byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<ByteSize>,
    /// Places per file (default 1; ignored when `offset` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Restore the original bytes when the fault ends (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<bool>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CorruptHow {
    Bitflip,
    Zero,
    Garbage,
    Truncate,
}

/// Exactly one of `set`, `deleteLine`, `replace`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigCorrupt {
    /// One file, absolute, seen from the target's mount namespace.
    pub path: String,
    /// Set `key` to `value` (replacing the line that sets it, or appending one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<ConfigSet>,
    /// Delete every line matching this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_line: Option<String>,
    /// Replace the whole file with this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<String>,
    /// Send this signal to the target's processes afterwards (e.g. SIGHUP to reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<String>,
    /// Restore the original file when the fault ends (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigSet {
    /// The key (one line, not empty). A line that starts with it, followed by a space, tab,
    /// '=', ':' or nothing, sets it.
    pub key: String,
    /// The new value (one line), written after the key and `separator`.
    pub value: String,
    /// Between key and value (default ` = `).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
}

/// Storage faults catch file operations of a running target by path and operation. Paths
/// are absolute patterns (`*`, `?` within one component; lab placeholders such as
/// `{data:db1}` apply); a file matches when it, or a directory above it, matches. Files
/// the target already has open count. `ops` (default all): open, read, write, fsync,
/// metadata.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageStall {
    /// Files whose operations are caught (at least one): absolute patterns; a file matches
    /// when it, or a directory above it, matches.
    pub paths: Vec<String>,
    /// File operations to catch: `open`, `read`, `write`, `fsync`, `metadata` (default:
    /// all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<super::io::IoOp>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IoLatency {
    /// Files whose operations are caught (at least one): absolute patterns; a file matches
    /// when it, or a directory above it, matches.
    pub paths: Vec<String>,
    /// File operations to catch: `open`, `read`, `write`, `fsync`, `metadata` (default:
    /// all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<super::io::IoOp>,
    /// Added to every matching operation, e.g. "20ms".
    pub delay: Duration,
    /// Uniform ± spread around `delay` (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IoError {
    /// Files whose operations are caught (at least one): absolute patterns; a file matches
    /// when it, or a directory above it, matches.
    pub paths: Vec<String>,
    /// File operations to catch: `open`, `read`, `write`, `fsync`, `metadata` (default:
    /// all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<super::io::IoOp>,
    /// Errno name: EIO, ENOSPC, EDQUOT, EROFS, EACCES, EPERM, EAGAIN, EINTR, ENOMEM, EBUSY,
    /// ENOENT, EBADF.
    pub errno: String,
    /// Share of matching operations that fail (default 100%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<Percent>,
}

/// A surge of HTTP requests, sent open loop from Murphy's own network namespace to
/// `port` on every target address in turn (a thundering herd, or with `retry` a retry
/// storm).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadSurge {
    pub rate: Rate,
    /// TCP port (1-65535) the requests go to on each of the target's addresses.
    pub port: u16,
    /// Request path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Send failed requests again (a retry storm), or with `herd` hold them and release
    /// them all at once the moment one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
}

/// Block IO limits for the target's processes on the device that holds `path` (e.g. a
/// lab host's `volume`). A rate of 0 is a true stall (the kernel gets 1 byte/s or 1
/// operation/s: 0 would mean "no limit"). Only IO the kernel charges to the target counts:
/// direct IO, reads, and writeback the target forces with fsync.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IoThrottle {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bps: Option<ByteRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bps: Option<ByteRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_iops: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_iops: Option<Rate>,
}

/// Which packets a packet fault acts on. Every condition given must match.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PacketFilter {
    /// `ingress` (default): packets arriving at the target; `forward`: packets the target
    /// routes (a router or gateway hop); `egress` (loss and duplicate only: holding a
    /// sender's own packets throttles TCP instead of delaying it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<PacketDirection>,
    /// Only packets from or to these targets' addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Only packets from or to these CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// Only packets of this protocol: `tcp`, `udp` or `icmp` (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Only packets with this source or destination port (needs `protocol` tcp or udp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PacketDirection {
    #[default]
    Ingress,
    Forward,
    Egress,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkDelay {
    /// Added to every matching packet, e.g. "50ms".
    pub delay: Duration,
    /// Uniform ± spread around `delay` (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    /// How much each packet's jitter follows the previous one's (netem's correlation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<Percent>,
    #[serde(default)]
    pub filter: PacketFilter,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkLoss {
    /// Share of matching packets dropped, e.g. "10%".
    pub loss: Percent,
    #[serde(default)]
    pub filter: PacketFilter,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkCorrupt {
    /// Share of matching packets with one payload bit flipped.
    pub corrupt: Percent,
    #[serde(default)]
    pub filter: PacketFilter,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkDuplicate {
    /// Share of matching packets sent twice.
    pub duplicate: Percent,
    #[serde(default)]
    pub filter: PacketFilter,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkReorder {
    /// Share of matching packets passed at once, overtaking the rest.
    pub reorder: Percent,
    /// How long the rest are held.
    pub delay: Duration,
    #[serde(default)]
    pub filter: PacketFilter,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkBandwidth {
    /// Link rate, e.g. "1mbit".
    pub rate: BitRate,
    /// Interfaces in the target's namespace (default: every one but `lo`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Queue: packets waiting longer than this are dropped (default 50ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Duration>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkDown {
    /// Interfaces in the target's namespace (default: every one but `lo`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteBlackhole {
    /// IPv4 prefixes, e.g. 10.99.0.0/25.
    pub prefixes: Vec<String>,
    /// `blackhole` (default: silently dropped), `unreachable` (ICMP host unreachable) or
    /// `prohibit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<BlackholeKind>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BlackholeKind {
    Blackhole,
    Unreachable,
    Prohibit,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteHijack {
    pub prefixes: Vec<String>,
    /// The wrong next hop (an address on one of the target's networks).
    pub via: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteFlap {
    /// The target's existing routes to these prefixes are withdrawn and restored.
    pub prefixes: Vec<String>,
    /// Time between changes: withdrawn for one period, back for the next (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Duration>,
    /// Uniform ± spread around each period (seeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteFailure {
    /// CIDRs that stay reachable from inside the site (e.g. a monitoring path).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Targets whose addresses stay reachable from inside the site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_targets: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpSessionDrop {
    /// The other routers (targets); every BGP peer if neither this nor `cidrs` is given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpAnnounce {
    /// Local only: the lab host whose network namespace the speaker runs in.
    pub from: String,
    /// The target router's address, as configured neighbor of the speaker's address.
    pub neighbor: String,
    /// The router's AS number.
    pub neighbor_as: u32,
    /// The AS number the speaker uses (the router must expect it).
    pub local_as: u32,
    /// IPv4 prefixes to announce, e.g. a bogus more-specific 10.99.0.0/25.
    pub prefixes: Vec<String>,
    /// Next hop of the announced routes (default: the speaker's own address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<String>,
    /// AS path (default: `[localAs]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub as_path: Vec<u32>,
    /// `announce` (default): announce once and hold; `flap`: announce and withdraw every
    /// `period`; `reset`: keep opening the session, announcing and resetting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<BgpMode>,
    /// Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsFault {
    /// Names to fault: each matches itself and its subdomains; `*` matches every name.
    pub names: Vec<String>,
    /// `servfail`, `nxdomain`, `wrong` (answer with `answer`) or `timeout` (no answer).
    pub mode: DnsMode,
    /// The wrong IPv4 address served in `wrong` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The real resolver (`ip:port`) that other names are forwarded to.
    pub upstream: String,
    /// Share of matching queries faulted (default 100%); the rest are forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<Percent>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DnsMode {
    Servfail,
    Nxdomain,
    Wrong,
    Timeout,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BgpMode {
    Announce,
    Flap,
    Reset,
}

/// A recovery step: the system's own restore or repair procedure, or starting and
/// stopping lab processes, at a point in the schedule. Exactly one of `argv`, `start`,
/// `stop`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepSpec {
    /// Step name, unique in `spec.steps` (1-63 lowercase letters, digits and '-').
    pub name: String,
    /// Offset from the start of the fault phase. Steps run in order, one at a time.
    #[serde(default)]
    pub at: Duration,
    /// Program and arguments (no shell); lab placeholders such as `{data}` apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    /// Local only: run inside a lab host's network namespace (and with its data
    /// placeholders), or inside an existing one (`from: {netns: NAME}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vantage>,
    /// Run `argv` as this user (default: Murphy's own user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Give up (and kill it) after this long (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Start a lab process (`host/process`) that is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Stop a lab process (`host/process`): SIGTERM, then SIGKILL after 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

impl StepSpec {
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map_or(std::time::Duration::from_secs(60), Duration::as_std)
    }
    pub fn actions_set(&self) -> usize {
        [
            !self.argv.is_empty(),
            self.start.is_some(),
            self.stop.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

/// Where in the run a claim looks.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Window {
    /// The steady-state period before the first fault.
    Before,
    /// While the fault (or, without `fault`, any fault) is active.
    #[default]
    During,
    /// After the fault (or every fault) has been reverted.
    After,
    /// The whole run.
    Whole,
}

/// A claim about the system, checked on the timeline after the run. Exactly one check is set.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-murphy-exactly-one" = ["availability", "recovers", "latency", "noAckedWriteLoss", "writeAvailability", "singlePrimary", "blastRadius", "restores", "recoveryPoint", "eventuallyDelivered", "detects", "errorRate", "noFlapping", "capacityShare", "independentOf", "prometheus"]))]
pub struct ClaimSpec {
    /// Claim name, unique in `spec.claims` (1-200 printable characters, free text); the
    /// verdict is reported under it.
    pub name: String,
    /// The probe's success ratio in a window is at least a bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<AvailabilityClaim>,
    /// After the fault starts, the probe is continuously healthy again within a bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovers: Option<RecoversClaim>,
    /// A percentile of the probe's latency in a window stays under a bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyClaim>,
    /// Every write a workload saw acknowledged is in the final read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_acked_write_loss: Option<WorkloadRef>,
    /// After a fault, the system itself reports it: a lab process's log shows a line
    /// containing a text within a bound (e.g. a checksum error for corrupted data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detects: Option<DetectsClaim>,
    /// Everything the workload saw accepted reached its `deliveredTo` store by the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eventually_delivered: Option<WorkloadRef>,
    /// The longest stretch without a successful write stays under a bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_availability: Option<WriteAvailabilityClaim>,
    /// Never two primaries at once (no split brain), by the members' own word on the role
    /// timeline or by acknowledging writes; held only when the timeline covers every member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_primary: Option<SinglePrimaryClaim>,
    /// While a fault is active, at most N of the listed workloads see failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<BlastRadiusClaim>,
    /// The system serves again within the recovery time objective, from the fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<RestoresClaim>,
    /// Writes acknowledged more than `maxLoss` before the fault are all in the final read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point: Option<RecoveryPointClaim>,
    /// The share of a workload's operations that failed or got no answer in a window stays
    /// at or under a bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<ErrorRateClaim>,
    /// A balancer does not mark backends down and up more than N times in a window (or a
    /// probe does not flip between healthy and failing more than N times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_flapping: Option<NoFlappingClaim>,
    /// No instance serves more than a share of the load in a window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_share: Option<CapacityShareClaim>,
    /// A probe (a status page, a fallback) stays healthy while another probe's system
    /// (the site it reports on) is down: it does not share the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub independent_of: Option<IndependentOfClaim>,
    /// A PromQL query against a Prometheus server, evaluated over a window of the run with
    /// a bound on every value it returns (an SLI the system already exports). No data for
    /// part of the window is inconclusive, never held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusClaim>,
}

/// A range query (`/api/v1/query_range`) over the claim's window: every value of every
/// series it returns must be within the bound, and every step of the window must have a
/// value.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-murphy-exactly-one" = ["atMost", "atLeast"]))]
pub struct PrometheusClaim {
    /// The Prometheus server's base URL, `http://host:port` or `https://…`, with a path
    /// prefix if it serves under one (e.g. `http://10.0.0.5:9090/prometheus`). No user
    /// name, password, query or fragment in it: a bearer token comes from the environment
    /// variable named by `tokenEnv`.
    pub url: String,
    /// The PromQL expression (1-4096 characters), sent as data, never interpreted by
    /// Murphy. It should return one value per step: e.g.
    /// `sum(rate(http_requests_total{code=~"5.."}[30s])) / sum(rate(http_requests_total[30s]))`.
    pub query: String,
    /// Every value must be at or under this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
    /// Every value must be at or over this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    #[serde(default)]
    pub window: Window,
    /// Restrict `during` / `after` to this fault (name in `spec.faults`; default: every
    /// fault). Not allowed with `before` or `whole`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The range query's resolution (default 1s; 100ms to 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Duration>,
    /// Environment variable holding a bearer token for the server (only with `murphy run`;
    /// an uppercase name of letters, digits and `_`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

impl PrometheusClaim {
    /// The bound as (at most?, value).
    pub fn bound(&self) -> (bool, f64) {
        match (self.at_most, self.at_least) {
            (Some(m), _) => (true, m),
            (None, Some(l)) => (false, l),
            (None, None) => (true, f64::NAN),
        }
    }
    pub fn step_ms(&self) -> f64 {
        self.step.map_or(1000.0, |d| d.0.as_secs_f64() * 1000.0)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndependentOfClaim {
    /// The probe that must stay healthy (e.g. the status page).
    pub probe: String,
    /// The probe of the system that goes down (e.g. the site).
    pub of: String,
    /// Share of `probe`'s samples that must succeed while `of` is failing (default 99%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<Percent>,
}

/// A component sampled through the run. Exactly one source.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchSpec {
    /// Watch name, unique in `spec.watches` (1-63 lowercase letters, digits and '-');
    /// claims refer to it.
    pub name: String,
    /// haproxy's stats socket (`stats socket <path>` in its config); lab placeholders such
    /// as `{data:lb1}` apply. Each sample is `show stat`: every server's status and
    /// sessions served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub haproxy: Option<HaproxyWatch>,
}

/// Where haproxy's stats socket is: exactly one of `socket` (a path on this machine) or
/// `address` (on the network, so a cluster reads it too).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-murphy-exactly-one" = ["socket", "address"]))]
pub struct HaproxyWatch {
    /// Path of haproxy's stats socket (`stats socket <path>`): absolute, or starting with a
    /// lab placeholder such as `{data:lb1}`. Only with `murphy run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// haproxy's stats socket on TCP (`stats socket ipv4@<ip>:<port>`), as `ip:port` or
    /// `{target:<name>}:<port>` of a target with exactly one member (a lab host, a pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorRateClaim {
    /// The workload (name in `spec.workloads`) whose operations are counted.
    pub workload: String,
    pub at_most: Percent,
    #[serde(default)]
    pub window: Window,
    /// Restrict `during` / `after` to this fault (name in `spec.faults`; default: every
    /// fault). Not allowed with `before` or `whole`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// Exactly one of `watch` (with `backend`) or `probe`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoFlappingClaim {
    /// A balancer watch (name in `spec.watches`) whose servers' status changes are counted;
    /// needs `backend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<String>,
    /// The balancer's backend (proxy) whose servers are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Only these servers (default: every server of the backend).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Instead of `watch`: a probe (name in `spec.probes`) whose changes between healthy
    /// and failing are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// Status changes allowed (default 0). A server marked down and up again is 2.
    #[serde(default)]
    pub at_most: u32,
    #[serde(default)]
    pub window: Window,
    /// Restrict `during` / `after` to this fault (name in `spec.faults`; default: every
    /// fault). Not allowed with `before` or `whole`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityShareClaim {
    /// The balancers sampled (`spec.watches`).
    pub watches: Vec<String>,
    /// A backend: its servers' shares of the sessions it served. `FRONTEND` of a frontend
    /// name compares the balancers themselves.
    pub proxy: String,
    pub at_most: Percent,
    #[serde(default)]
    pub window: Window,
    /// Restrict `during` / `after` to this fault (name in `spec.faults`; default: every
    /// fault). Not allowed with `before` or `whole`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// The one check a claim makes.
#[derive(Clone, Copy, Debug)]
pub enum ClaimCheck<'a> {
    Availability(&'a AvailabilityClaim),
    Recovers(&'a RecoversClaim),
    Latency(&'a LatencyClaim),
    NoAckedWriteLoss(&'a WorkloadRef),
    WriteAvailability(&'a WriteAvailabilityClaim),
    SinglePrimary(&'a SinglePrimaryClaim),
    BlastRadius(&'a BlastRadiusClaim),
    Restores(&'a RestoresClaim),
    RecoveryPoint(&'a RecoveryPointClaim),
    EventuallyDelivered(&'a WorkloadRef),
    Detects(&'a DetectsClaim),
    ErrorRate(&'a ErrorRateClaim),
    NoFlapping(&'a NoFlappingClaim),
    CapacityShare(&'a CapacityShareClaim),
    IndependentOf(&'a IndependentOfClaim),
    Prometheus(&'a PrometheusClaim),
}

impl ClaimCheck<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            ClaimCheck::Availability(_) => "availability",
            ClaimCheck::Recovers(_) => "recovers",
            ClaimCheck::Latency(_) => "latency",
            ClaimCheck::NoAckedWriteLoss(_) => "noAckedWriteLoss",
            ClaimCheck::WriteAvailability(_) => "writeAvailability",
            ClaimCheck::SinglePrimary(_) => "singlePrimary",
            ClaimCheck::BlastRadius(_) => "blastRadius",
            ClaimCheck::Restores(_) => "restores",
            ClaimCheck::RecoveryPoint(_) => "recoveryPoint",
            ClaimCheck::EventuallyDelivered(_) => "eventuallyDelivered",
            ClaimCheck::Detects(_) => "detects",
            ClaimCheck::ErrorRate(_) => "errorRate",
            ClaimCheck::NoFlapping(_) => "noFlapping",
            ClaimCheck::CapacityShare(_) => "capacityShare",
            ClaimCheck::IndependentOf(_) => "independentOf",
            ClaimCheck::Prometheus(_) => "prometheus",
        }
    }
}

/// The keys a claim may use, for messages.
/// The most entries a list (or map) of the spec may have, by its path under `spec`: the
/// validator refuses more, and the CRD carries the same bounds (`maxItems`,
/// `maxProperties`), which also keeps the API server's admission rules within its cost
/// budget.
pub const LIST_LIMITS: &[(&str, usize)] = &[
    ("targets", 64),
    ("probes", 64),
    ("faults", 64),
    ("steps", 64),
    ("workloads", 32),
    ("watches", 32),
    ("claims", 64),
    ("lab.hosts", 200),
    ("lab.hosts[].processes", 16),
];

/// The bound [`LIST_LIMITS`] sets on `path`.
pub fn list_limit(path: &str) -> usize {
    LIST_LIMITS
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(usize::MAX, |(_, n)| *n)
}

pub const CLAIM_KINDS: &str = "`availability`, `recovers`, `latency`, `noAckedWriteLoss`, `writeAvailability`, `singlePrimary`, `blastRadius`, `restores`, `recoveryPoint`, `eventuallyDelivered`, `detects`, `errorRate`, `noFlapping`, `capacityShare`, `independentOf` or `prometheus`";

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectsClaim {
    /// The fault (name in `spec.faults`) whose injection starts the clock for `within`.
    pub fault: String,
    /// The lab process (`host/process`) whose log is watched.
    pub log: String,
    /// Text a log line must contain (plain text, not a pattern).
    pub contains: String,
    /// From the fault's injection (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoresClaim {
    /// The probe (name in `spec.probes`) that shows the system serving again.
    pub probe: String,
    /// The recovery time objective, measured from the fault's injection.
    pub within: Duration,
    /// Fault whose injection starts the clock (default: the first fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// How long the probe must stay healthy to count as restored (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_for: Option<Duration>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecoveryPointClaim {
    /// The workload (name in `spec.workloads`; not http, which has no final read) whose
    /// final read must hold the writes acknowledged before the fault.
    pub workload: String,
    /// The recovery point objective: writes acknowledged earlier than this before the
    /// fault must all be present after recovery.
    pub max_loss: Duration,
    /// The data fault (default: the first fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadRef {
    /// Name of an entry in `spec.workloads`.
    pub workload: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteAvailabilityClaim {
    /// The workload (name in `spec.workloads`) whose successful operations count as writes.
    pub workload: String,
    /// The longest time without a successful write, from the fault's injection to the end
    /// of the run, stays at or under this.
    pub max_gap: Duration,
    /// Fault whose injection starts the window (default: the first fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SinglePrimaryClaim {
    /// Workloads whose acknowledgements count as evidence: a node that acknowledged a write
    /// acted as primary between the write's invocation and its acknowledgement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<String>,
    /// The cluster (a target with a `role` probe) whose members' own answers, sampled
    /// through the run, count as evidence; the claim speaks about every member of it.
    /// Default: the one target with a role probe, when there is exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlastRadiusClaim {
    /// The fault whose active window is checked.
    pub fault: String,
    /// Workloads (names in `spec.workloads`, at least one) watched while the fault is
    /// active: a workload is affected when an operation it started then failed or got no
    /// answer.
    pub workloads: Vec<String>,
    /// At most this many of the workloads may see a failed or unknown operation.
    pub max_affected: u32,
}

impl ClaimSpec {
    /// The claim's check, if exactly one is set (validation guarantees it).
    pub fn check(&self) -> Option<ClaimCheck<'_>> {
        let all = [
            self.availability.as_ref().map(ClaimCheck::Availability),
            self.recovers.as_ref().map(ClaimCheck::Recovers),
            self.latency.as_ref().map(ClaimCheck::Latency),
            self.no_acked_write_loss
                .as_ref()
                .map(ClaimCheck::NoAckedWriteLoss),
            self.write_availability
                .as_ref()
                .map(ClaimCheck::WriteAvailability),
            self.single_primary.as_ref().map(ClaimCheck::SinglePrimary),
            self.blast_radius.as_ref().map(ClaimCheck::BlastRadius),
            self.restores.as_ref().map(ClaimCheck::Restores),
            self.recovery_point.as_ref().map(ClaimCheck::RecoveryPoint),
            self.eventually_delivered
                .as_ref()
                .map(ClaimCheck::EventuallyDelivered),
            self.detects.as_ref().map(ClaimCheck::Detects),
            self.error_rate.as_ref().map(ClaimCheck::ErrorRate),
            self.no_flapping.as_ref().map(ClaimCheck::NoFlapping),
            self.capacity_share.as_ref().map(ClaimCheck::CapacityShare),
            self.independent_of.as_ref().map(ClaimCheck::IndependentOf),
            self.prometheus.as_ref().map(ClaimCheck::Prometheus),
        ];
        let mut set = all.into_iter().flatten();
        match (set.next(), set.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }
    /// How many checks are set (exactly one is valid).
    pub fn checks_set(&self) -> usize {
        [
            self.availability.is_some(),
            self.recovers.is_some(),
            self.latency.is_some(),
            self.no_acked_write_loss.is_some(),
            self.write_availability.is_some(),
            self.single_primary.is_some(),
            self.blast_radius.is_some(),
            self.restores.is_some(),
            self.recovery_point.is_some(),
            self.eventually_delivered.is_some(),
            self.detects.is_some(),
            self.error_rate.is_some(),
            self.no_flapping.is_some(),
            self.capacity_share.is_some(),
            self.independent_of.is_some(),
            self.prometheus.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
    pub fn probe(&self) -> Option<&str> {
        match self.check()? {
            ClaimCheck::Availability(a) => Some(&a.probe),
            ClaimCheck::Recovers(r) => Some(&r.probe),
            ClaimCheck::Latency(l) if !l.probe.is_empty() => Some(&l.probe),
            ClaimCheck::NoFlapping(n) => n.probe.as_deref(),
            ClaimCheck::Restores(r) => Some(&r.probe),
            ClaimCheck::IndependentOf(i) => Some(&i.probe),
            _ => None,
        }
    }
    pub fn fault(&self) -> Option<&str> {
        match self.check()? {
            ClaimCheck::Availability(a) => a.fault.as_deref(),
            ClaimCheck::Recovers(r) => r.fault.as_deref(),
            ClaimCheck::Latency(l) => l.fault.as_deref(),
            ClaimCheck::ErrorRate(e) => e.fault.as_deref(),
            ClaimCheck::NoFlapping(n) => n.fault.as_deref(),
            ClaimCheck::CapacityShare(c) => c.fault.as_deref(),
            ClaimCheck::Prometheus(p) => p.fault.as_deref(),
            ClaimCheck::WriteAvailability(w) => w.fault.as_deref(),
            ClaimCheck::BlastRadius(b) => Some(&b.fault),
            ClaimCheck::Restores(r) => r.fault.as_deref(),
            ClaimCheck::RecoveryPoint(r) => r.fault.as_deref(),
            ClaimCheck::Detects(d) => Some(&d.fault),
            ClaimCheck::NoAckedWriteLoss(_)
            | ClaimCheck::SinglePrimary(_)
            | ClaimCheck::EventuallyDelivered(_)
            | ClaimCheck::IndependentOf(_) => None,
        }
    }
    /// Workloads the claim reads.
    pub fn workloads(&self) -> Vec<&str> {
        match self.check() {
            Some(ClaimCheck::NoAckedWriteLoss(w)) => vec![&w.workload],
            Some(ClaimCheck::WriteAvailability(w)) => vec![&w.workload],
            Some(ClaimCheck::RecoveryPoint(w)) => vec![&w.workload],
            Some(ClaimCheck::EventuallyDelivered(w)) => vec![&w.workload],
            Some(ClaimCheck::SinglePrimary(s)) => s.workloads.iter().map(String::as_str).collect(),
            Some(ClaimCheck::BlastRadius(b)) => b.workloads.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailabilityClaim {
    /// The probe (name in `spec.probes`) whose samples are counted.
    pub probe: String,
    pub at_least: Percent,
    #[serde(default)]
    pub window: Window,
    /// Restrict `during` / `after` to this fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecoversClaim {
    /// The probe (name in `spec.probes`) that must be healthy again after the fault.
    pub probe: String,
    pub within: Duration,
    /// Fault whose start the clock runs from (default: the first fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// How long the probe must stay healthy to count as recovered (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_for: Option<Duration>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyClaim {
    /// A probe's successful samples, or (instead) `workload`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub probe: String,
    /// A workload's operations: latency from each one's scheduled start (so a stalled
    /// system cannot hide its queueing), answered or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Percentile, e.g. "99%".
    pub percentile: Percent,
    pub below: Duration,
    #[serde(default)]
    pub window: Window,
    /// Restrict `during` / `after` to this fault (name in `spec.faults`; default: every
    /// fault). Not allowed with `before` or `whole`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SteadyState {
    /// How long every steady-state probe must be healthy before faults start (default 3s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// Probes that define the steady state (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<String>,
    /// Minimum success ratio in the steady state (default 100%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<Percent>,
}

/// Limits that abort the experiment and revert everything.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Guardrails {
    /// Hard cap on the whole run, lab set-up excluded (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<Duration>,
    /// Most members (processes or namespaces) a single fault may touch (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_targets: Option<u32>,
    /// Abort the run (and revert everything) when one of these probes has been failing
    /// without a break for its `failingFor`; checked from the start of the fault phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abort_when: Vec<AbortCondition>,
    /// Most bytes a single data fault may touch (and copy into the journal); default 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_data_bytes: Option<ByteSize>,
    /// Where data faults (`data-wipe`, `data-corrupt`, `config-corrupt`) may act: absolute
    /// directories as the target sees them (lab placeholders such as `{data:db1}` apply).
    /// When set, every path of those faults must lie beneath one of them, as written and
    /// again once resolved (symlinks followed) at injection; a path outside is refused and
    /// nothing is touched. Unset: anywhere but `/` itself, /proc, /sys and /dev. Runs with
    /// `murphy run`; a cluster refuses it (its node agents do not enforce it yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_paths: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbortCondition {
    /// The probe (name in `spec.probes`) to watch.
    pub probe: String,
    pub failing_for: Duration,
}

impl ExperimentSpec {
    pub fn probe(&self, name: &str) -> Option<&ProbeSpec> {
        self.probes.iter().find(|p| p.name == name)
    }
    pub fn fault(&self, name: &str) -> Option<&FaultSpec> {
        self.faults.iter().find(|f| f.name == name)
    }
    pub fn steady_duration(&self) -> std::time::Duration {
        self.steady_state
            .duration
            .map_or(std::time::Duration::from_secs(3), Duration::as_std)
    }
    pub fn observe_after(&self) -> std::time::Duration {
        self.observe_after
            .map_or(std::time::Duration::from_secs(5), Duration::as_std)
    }
    pub fn max_duration(&self) -> std::time::Duration {
        self.guardrails
            .max_duration
            .map_or(std::time::Duration::from_secs(600), Duration::as_std)
    }
    pub fn max_data_bytes(&self) -> u64 {
        self.guardrails.max_data_bytes.map_or(1 << 30, |b| b.0)
    }
    pub fn max_targets(&self) -> u32 {
        self.guardrails.max_targets.unwrap_or(10)
    }
    /// Length of the fault phase: `spec.duration`, else the latest fault end.
    pub fn fault_phase(&self) -> std::time::Duration {
        if let Some(d) = self.duration {
            return d.as_std();
        }
        self.faults
            .iter()
            .map(|f| {
                f.at.as_std()
                    + f.duration
                        .map_or(std::time::Duration::ZERO, Duration::as_std)
            })
            .max()
            .unwrap_or_default()
    }
}

impl WorkloadSpec {
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map_or(std::time::Duration::from_secs(1), Duration::as_std)
    }
    pub fn connect_timeout(&self) -> std::time::Duration {
        self.connect_timeout
            .map_or(std::time::Duration::from_millis(500), Duration::as_std)
    }
    /// Workers: enough for every operation of one timeout period to be in flight at once
    /// (so a hanging node cannot stall the schedule), unless set.
    pub fn concurrency(&self) -> usize {
        match self.concurrency {
            Some(c) => c as usize,
            None => ((self.peak_rate() * self.timeout().as_secs_f64()).ceil() as usize + 1)
                .clamp(2, 256),
        }
    }
    /// The highest rate the profile reaches.
    pub fn peak_rate(&self) -> f64 {
        self.profile
            .iter()
            .map(|p| p.rate.per_second)
            .fold(self.rate.per_second, f64::max)
    }
    /// Operations per second at `t` after the workload's start.
    pub fn rate_at(&self, t: std::time::Duration) -> f64 {
        let mut step = self.rate.per_second;
        let mut spike = None;
        for p in &self.profile {
            let from = p.after.as_std();
            match p.for_ {
                None if t >= from => step = p.rate.per_second,
                Some(f) if t >= from && t < from + f.as_std() => spike = Some(p.rate.per_second),
                _ => {}
            }
        }
        spike.unwrap_or(step)
    }
    pub fn final_read_deadline(&self) -> std::time::Duration {
        self.final_read_deadline
            .map_or(std::time::Duration::from_secs(30), Duration::as_std)
    }
    /// Which client, for messages and the history.
    pub fn client_kind(&self) -> &'static str {
        if self.http.is_some() {
            "http"
        } else if self.redis.is_some() {
            "redis"
        } else if self.postgres.is_some() {
            "postgres"
        } else if self.etcd.is_some() {
            "etcd"
        } else {
            "none"
        }
    }
    pub fn clients_set(&self) -> usize {
        [
            self.http.is_some(),
            self.redis.is_some(),
            self.postgres.is_some(),
            self.etcd.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

impl RoleProbe {
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map_or(std::time::Duration::from_secs(2), Duration::as_std)
    }
    /// Whether roles are sampled through the whole run (default true).
    pub fn on_timeline(&self) -> bool {
        self.timeline.unwrap_or(true)
    }
    pub fn interval(&self) -> std::time::Duration {
        self.interval
            .map_or(std::time::Duration::from_millis(500), Duration::as_std)
    }
    pub fn probes_set(&self) -> usize {
        [
            self.redis.is_some(),
            self.postgres.is_some(),
            self.etcd.is_some(),
            self.command.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

impl ProbeSpec {
    pub fn interval(&self) -> std::time::Duration {
        self.interval
            .map_or(std::time::Duration::from_millis(250), Duration::as_std)
    }
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map_or(std::time::Duration::from_secs(1), Duration::as_std)
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;
    use strum::IntoEnumIterator;

    /// serde (the spec's `kind`, the CRD's schema) and [`FaultAction::kind`] derive a kind's
    /// name from the same variant; this fails if the two rules ever disagree.
    #[test]
    fn every_fault_kind_is_named_alike_by_serde_and_by_kind() {
        let schema = serde_json::to_value(schemars::schema_for!(FaultAction)).expect("schema");
        let mut from_serde: Vec<String> = schema["oneOf"]
            .as_array()
            .expect("one schema per kind")
            .iter()
            .filter_map(|v| {
                v["properties"]["kind"]["const"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        let mut from_kind: Vec<String> = FaultKind::iter().map(|k| k.name().to_string()).collect();
        from_serde.sort();
        from_kind.sort();
        assert_eq!(from_serde, from_kind);
        assert_eq!(from_kind.len(), 27);
        let a: FaultAction = serde_json::from_value(serde_json::json!({"kind": "process-kill"}))
            .expect("process-kill");
        assert_eq!(a.kind(), "process-kill");
        assert_eq!(FaultKind::from(&a), FaultKind::ProcessKill);
    }
}
