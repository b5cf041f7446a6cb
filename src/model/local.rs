//! Local-only parts of the experiment model: the lab (network namespaces and processes
//! that Murphy starts for the run) and process/namespace selectors. A cluster front door
//! refuses experiments that use them.

use super::quantity::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Ways to select members on this machine. Exactly one must be set.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalTarget {
    /// A lab host (`web1`: all its processes) or one lab process (`web1/nginx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    /// The members of a cluster, each one member: a lab host or process (`db1/pg`), or
    /// something already running on this machine (`{netns: n1}`, `{process: {pidfile:
    /// ...}}`, `{cgroup: ...}`), so that `select: primary` and role probes work on systems
    /// Murphy did not start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberRef>,
    /// Running processes on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSelector>,
    /// All processes in a cgroup (path relative to the hierarchy root, e.g. `/system.slice/x.service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// A named network namespace (as in `ip netns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

/// One member of a cluster: a lab reference (`db1/pg`) or an existing namespace, process
/// or cgroup.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum MemberRef {
    Lab(String),
    External(ExternalMember),
}

impl MemberRef {
    /// The lab reference, if this member is one.
    pub fn lab(&self) -> Option<&str> {
        match self {
            MemberRef::Lab(s) => Some(s),
            MemberRef::External(_) => None,
        }
    }
}

impl From<&str> for MemberRef {
    fn from(s: &str) -> Self {
        MemberRef::Lab(s.to_string())
    }
}

/// A name or an object: the two spellings of a member and of a vantage point.
enum NameOr<T> {
    Name(String),
    Object(T),
}

fn name_or<'de, D, T>(d: D, expected: &str) -> Result<NameOr<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::String(s) => Ok(NameOr::Name(s)),
        serde_json::Value::Object(_) => serde_json::from_value(v)
            .map(NameOr::Object)
            .map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!(
            "expected {expected}, found {other}"
        ))),
    }
}

impl<'de> Deserialize<'de> for MemberRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(
            match name_or(
                d,
                "a lab reference (`host` or `host/process`) or one of {netns: ...}, {process: ...}, {cgroup: ...}",
            )? {
                NameOr::Name(s) => MemberRef::Lab(s),
                NameOr::Object(e) => MemberRef::External(e),
            },
        )
    }
}

/// A member that is already running on this machine. Exactly one of `netns`, `process`,
/// `cgroup`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-murphy-exactly-one" = ["netns", "process", "cgroup"]))]
pub struct ExternalMember {
    /// A named network namespace (as in `ip netns`): the member is every process in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Running processes (pid, pidfile, name or command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSelector>,
    /// Every process in a cgroup (path relative to the hierarchy's root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The member's IPv4 address, used by role probes and `{target:<name>}:<port>`
    /// endpoints (default: the first global IPv4 address in its network namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// How the member is named on the timeline and in verdicts (default: `netns <name>`,
    /// `pid <n> (<comm>)` or `cgroup <path>`). Lowercase letters, digits and '-'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Where a client, probe, role probe or step runs from: a lab host by name, or a network
/// namespace that already exists (`{netns: NAME}`, as in `ip netns`).
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum Vantage {
    Lab(String),
    Netns(NetnsRef),
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetnsRef {
    /// Name of the network namespace (as in `ip netns list`).
    pub netns: String,
}

impl Vantage {
    /// The lab host's name, if this vantage point is one.
    pub fn lab_host(&self) -> Option<&str> {
        match self {
            Vantage::Lab(h) => Some(h),
            Vantage::Netns(_) => None,
        }
    }
}

impl From<&str> for Vantage {
    fn from(s: &str) -> Self {
        Vantage::Lab(s.to_string())
    }
}

impl std::fmt::Display for Vantage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Vantage::Lab(h) => write!(f, "lab host {h}"),
            Vantage::Netns(n) => write!(f, "netns {}", n.netns),
        }
    }
}

impl<'de> Deserialize<'de> for Vantage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match name_or(d, "a lab host name or {netns: NAME}")? {
            NameOr::Name(s) => Vantage::Lab(s),
            NameOr::Object(n) => Vantage::Netns(n),
        })
    }
}

/// Exactly one of the fields selects processes.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-murphy-exactly-one" = ["pid", "pidfile", "name", "cmdline"]))]
pub struct ProcessSelector {
    /// Process id (not 0 or 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Absolute path of a file that holds the process's pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<String>,
    /// Exact process name (`comm`, at most 15 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Regular expression matched against the full command line (arguments joined by spaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
}

/// Hosts (network namespaces on one bridge) and the processes to run in them.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabSpec {
    /// IPv4 /24 for the lab bridge (default 10.77.0.0/24); the bridge takes .1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// `ordered` (default): each process is ready before the next starts. `together`: start
    /// every process, then wait for each to be ready (cluster members that need a quorum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartOrder>,
    /// The hosts (at least one, at most 200): each a network namespace on the lab bridge,
    /// running its processes.
    pub hosts: Vec<LabHost>,
    /// Further networks beyond the lab bridge: router links, peering LANs, sites. Each is a
    /// bridge of its own with no address on the host side, so traffic between networks
    /// only flows through lab hosts that forward it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<LabNetwork>,
}

/// One extra network (an L2 segment) and the hosts attached to it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabNetwork {
    /// Network name (lowercase letters, digits; at most 8 characters). It is also the
    /// interface name inside every attached host (`ip -n <host> addr show <name>`).
    pub name: String,
    /// IPv4 prefix of the segment, e.g. 10.78.1.0/24 (prefix length 8 to 30).
    pub subnet: String,
    /// Attached hosts and their address on this network: host name → IPv4 address.
    pub attach: BTreeMap<String, String>,
}

/// A static route inside a lab host.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabRoute {
    /// Destination: an IPv4 CIDR, or `default` (which replaces the default route through
    /// the lab bridge).
    pub to: String,
    /// Next hop: an address on one of the host's networks.
    pub via: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StartOrder {
    Ordered,
    Together,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabHost {
    /// Host name (lowercase letters, digits, '-'; at most 12 characters).
    pub name: String,
    /// IPv4 address inside the lab subnet (default: assigned in order from .10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Owner of the host's data directory `{data}` (default: the user of its first process
    /// that has one, else root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_owner: Option<String>,
    /// Put the host's data directory on a block device of its own (a loop device with an
    /// ext4 filesystem of this size, e.g. "128Mi"), so block IO faults (`io-throttle`)
    /// can act on it without touching anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<super::quantity::ByteSize>,
    /// Forward IPv4 packets between the host's networks (a router or gateway).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarding: bool,
    /// Static routes, added once every network is up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<LabRoute>,
    /// Processes run in the host's network namespace, in the order listed (see
    /// `lab.start`); at most 16.
    #[serde(default)]
    pub processes: Vec<LabProcess>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabProcess {
    /// Process name, unique on its host (1-32 lowercase letters, digits and '-'); elsewhere
    /// the process is `host/process`.
    pub name: String,
    /// Program and arguments; never passed through a shell. In arguments, environment values
    /// and `files`, `{data}` is the host's data directory (created for the run, shared by
    /// the host's processes, removed with the lab), `{data:<host>}` another host's,
    /// `{address}` the host's address and `{host}` its name.
    pub argv: Vec<String>,
    /// A set-up step (like `initdb`), not a service: the lab waits for it to exit 0 before
    /// starting the host's next process, and never restarts it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oneshot: bool,
    /// Files written into the host's data directory before the process first starts:
    /// name → contents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Run as this user (default: Murphy's own user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment variables added to the one the process inherits from Murphy: name →
    /// value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the experiment file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Memory limit for the process's cgroup, e.g. "256Mi".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<super::quantity::ByteSize>,
    /// The process is ready when this check passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Readiness>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    #[serde(flatten)]
    pub check: super::check::Check,
    /// Give up after this long (default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl Readiness {
    pub fn check(&self) -> super::check::Check {
        self.check.clone()
    }
    /// The check with `{address}` replaced by the host's address (so one process
    /// definition can be shared by every host of a cluster through a YAML anchor).
    pub fn check_at(&self, address: &str) -> super::check::Check {
        let mut c = self.check.clone();
        if let Some(h) = c.http.as_mut() {
            h.url = h.url.replace("{address}", address);
        }
        if let Some(t) = c.tcp.as_mut() {
            t.address = t.address.replace("{address}", address);
        }
        if let Some(cmd) = c.command.as_mut() {
            for a in cmd.argv.iter_mut() {
                *a = a.replace("{address}", address);
            }
        }
        c
    }
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map_or(std::time::Duration::from_secs(15), Duration::as_std)
    }
}
