//! The fault engine. Every fault class implements [`Fault`]: inject (journal first),
//! confirm (evidence that it took effect), observe (what it sees while active). Revert is
//! the same for every class: apply the recorded undo actions in reverse, which is also
//! what `murphy recover` does after a crash. Adding a class touches its own module, the
//! spec enum, [`build`], docs and tests.
//!
//! Faults act on resolved [`Member`]s and know nothing about how they were selected (lab,
//! process, pod) or who asked (CLI runner, cluster agent).

pub mod bandwidth;
pub mod bgp;
pub mod cpu_burn;
pub mod data;
pub mod dns;
pub mod hog;
pub mod io_throttle;
pub mod leak_helper;
pub mod link_down;
pub mod load_surge;
pub mod memory_leak;
pub mod netutil;
pub mod network_partition;
pub mod packet;
pub mod process_kill;
pub mod process_pause;
pub mod route;
pub mod storage;

use crate::journal::{Journal, RevertEnv, UndoAction};
use crate::model::spec::FaultAction;
use crate::netns::Netns;
use crate::procfs::ProcId;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// One thing a fault acts on: processes and the network namespace they live in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// How to call it in reports: `web1/app`, `pid 1234 (nginx)`, `netns blue`.
    pub label: String,
    pub procs: Vec<ProcId>,
    pub netns: Netns,
    pub addrs: Vec<Ipv4Addr>,
    /// For lab members: (host, process) so a killed process can be restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<(String, Option<String>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
    #[error("writing the journal: {0}")]
    Journal(#[from] std::io::Error),
}

/// Evidence that a fault is in effect.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Evidence(pub String);

/// Undo records for one injection: each is on disk before the change it undoes is made.
pub struct UndoLog<'a> {
    journal: &'a Journal,
    group: String,
    actions: Vec<UndoAction>,
}

impl<'a> UndoLog<'a> {
    pub fn new(journal: &'a Journal, group: &str, label: &str) -> std::io::Result<Self> {
        journal.begin(group, label)?;
        Ok(UndoLog {
            journal,
            group: group.to_string(),
            actions: Vec::new(),
        })
    }
    /// Write `action` to the journal; only then may the caller make the change.
    pub fn record(&mut self, action: UndoAction) -> Result<(), FaultError> {
        self.journal.record(&self.group, &action)?;
        self.actions.push(action);
        Ok(())
    }
    /// Where this injection keeps copies of original data (inside the journal's data
    /// directory, so `murphy recover` finds them).
    pub fn copy_dir(&self) -> PathBuf {
        self.journal.data_dir().join(&self.group)
    }
    pub fn actions(&self) -> &[UndoAction] {
        &self.actions
    }
    pub fn into_actions(self) -> Vec<UndoAction> {
        self.actions
    }
}

/// Settings shared by all faults.
#[derive(Clone, Debug)]
pub struct FaultEnv {
    /// Murphy's own executable, for helper processes (memory and CPU hogs).
    pub exe: PathBuf,
    /// Helper processes exit on their own after this long (their lease).
    pub lease: Duration,
    /// Addresses of the fault's peers (network faults), resolved by the caller.
    pub peer_addrs: Vec<Ipv4Addr>,
    /// The run's seed (seeded corruption offsets).
    pub seed: u64,
    /// Most bytes one data fault may touch.
    pub max_data_bytes: u64,
    /// Where data faults may act (`guardrails.allowPaths`, as the target sees them, lab
    /// placeholders resolved); empty: anywhere but /proc, /sys and /dev.
    pub allow_paths: Vec<PathBuf>,
    /// Where a fault acts from, when that is not the target (the BGP speaker's lab host):
    /// its namespace and addresses.
    pub from: Option<(Netns, Vec<Ipv4Addr>)>,
}

/// One fault class.
pub trait Fault: Send {
    fn kind(&self) -> &'static str;
    /// Make the change. Every change is preceded by `undo.record(...)`. On error, the
    /// caller reverts whatever was recorded, so nothing is left half-applied.
    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError>;
    /// Show, from the system itself, that the fault is in effect.
    fn confirm(&mut self) -> Result<Evidence, FaultError>;
    /// Things worth putting on the timeline while the fault is active (called often).
    fn observe(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// What the fault achieved so far, as named figures for the record beside what was
    /// asked (e.g. `holdErrorP99Us`, `packetsDelayed`, `syscallsDelayed`): counts are
    /// totals since injection. Called before [`Fault::stop`].
    fn fidelity(&mut self) -> std::collections::BTreeMap<String, f64> {
        std::collections::BTreeMap::new()
    }
    /// Stop background work (helper threads and processes) before the undo actions run.
    fn stop(&mut self) {}
}

/// The numbers of a helper's `stats k=v k=v ...` line, by key (non-numbers are skipped).
pub fn stats_numbers(line: &str) -> std::collections::BTreeMap<String, f64> {
    line.strip_prefix("stats ")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse::<f64>().ok()?))
        })
        .collect()
}

/// Revert an injection: apply its undo actions in reverse. Idempotent.
pub fn revert(
    actions: &[UndoAction],
    env: &dyn RevertEnv,
) -> Result<Vec<String>, Vec<crate::journal::RevertError>> {
    crate::journal::revert_actions(actions, env)
}

/// Build the fault object for a spec.
pub fn build(action: &FaultAction, env: &FaultEnv, group: &str) -> Box<dyn Fault> {
    match action {
        FaultAction::ProcessKill(p) => Box::new(process_kill::ProcessKill::new(p)),
        FaultAction::ProcessPause(p) => Box::new(process_pause::ProcessPause::new(p, group)),
        FaultAction::NetworkPartition(p) => Box::new(network_partition::NetworkPartition::new(
            p,
            env.peer_addrs.clone(),
            group,
        )),
        FaultAction::MemoryLeak(p) if p.mode == Some(crate::model::spec::LeakMode::InProcess) => {
            Box::new(memory_leak::InProcess::new(p, env))
        }
        FaultAction::MemoryLeak(p) => Box::new(memory_leak::MemoryLeak::new(p, env)),
        FaultAction::CpuBurn(p) => Box::new(cpu_burn::CpuBurn::new(p, env)),
        FaultAction::DataWipe(p) => {
            Box::new(data::Wipe::new(p, env.max_data_bytes, &env.allow_paths))
        }
        FaultAction::DataCorrupt(p) => Box::new(data::Corrupt::new(
            p,
            env.max_data_bytes,
            env.seed,
            &env.allow_paths,
        )),
        FaultAction::ConfigCorrupt(p) => Box::new(data::Config::new(p, &env.allow_paths)),
        FaultAction::StorageStall(s) => Box::new(storage::Storage::stall(s, env)),
        FaultAction::IoLatency(l) => Box::new(storage::Storage::latency(l, env)),
        FaultAction::IoError(e) => Box::new(storage::Storage::error(e, env)),
        FaultAction::LoadSurge(l) => Box::new(load_surge::LoadSurge::new(l)),
        FaultAction::IoThrottle(t) => Box::new(io_throttle::IoThrottle::new(t, group)),
        FaultAction::NetworkDelay(d) => Box::new(packet::Engine::delay(d, env, group)),
        FaultAction::NetworkReorder(r) => Box::new(packet::Engine::reorder(r, env, group)),
        FaultAction::NetworkCorrupt(c) => Box::new(packet::Engine::corrupt(c, env, group)),
        FaultAction::NetworkLoss(l) => Box::new(packet::NftPacket::loss(l, env, group)),
        FaultAction::NetworkDuplicate(d) => Box::new(packet::NftPacket::duplicate(d, env, group)),
        FaultAction::NetworkBandwidth(b) => Box::new(bandwidth::Bandwidth::new(b)),
        FaultAction::LinkDown(l) => Box::new(link_down::LinkDown::new(l)),
        FaultAction::RouteBlackhole(r) => Box::new(route::AddRoutes::blackhole(r)),
        FaultAction::RouteHijack(r) => Box::new(route::AddRoutes::hijack(r)),
        FaultAction::RouteFlap(r) => Box::new(route::RouteFlap::new(r, env.seed)),
        FaultAction::SiteFailure(s) => Box::new(network_partition::NetworkPartition::site(
            s,
            env.peer_addrs.clone(),
            group,
        )),
        FaultAction::BgpSessionDrop(b) => Box::new(network_partition::NetworkPartition::bgp(
            b,
            env.peer_addrs.clone(),
            group,
        )),
        FaultAction::BgpAnnounce(b) => Box::new(bgp::Bgp::new(b, env)),
        FaultAction::DnsFault(d) => Box::new(dns::Dns::new(d, env, group)),
    }
}

/// Wait until `cond` holds or `within` passes.
pub fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn require_procs(members: &[Member], kind: &str) -> Result<Vec<ProcId>, FaultError> {
    let procs: Vec<ProcId> = members
        .iter()
        .flat_map(|m| m.procs.iter().copied())
        .filter(ProcId::alive)
        .collect();
    if procs.is_empty() {
        return Err(FaultError::Refused(format!(
            "{kind}: the target has no running processes"
        )));
    }
    Ok(procs)
}
