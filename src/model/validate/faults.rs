//! Rules on `spec.faults` common to every kind (unique names, a known target, timing
//! within the fault phase and `guardrails.maxDuration`), and the dispatch of each fault's
//! parameters to the rules of its kind (`faults_*`).

use super::common::unique;
use super::{faults_network as net, faults_process as proc_, faults_routing as route};
use super::{faults_storage as storage, Ctx, V};
use crate::model::diag::FieldPath;
use crate::model::quantity::Duration;
use crate::model::spec::{ExperimentSpec, FaultAction, FaultSpec};

/// `spec.faults`: unique names, then each fault's timing and parameters.
pub(super) fn check_faults(v: &mut V, ctx: &Ctx, sp: &FieldPath) {
    let spec = ctx.spec;
    unique(
        v,
        sp.key("faults"),
        spec.faults.iter().map(|f| f.name.as_str()),
        "fault",
    );
    let phase = spec.fault_phase();
    for (i, f) in spec.faults.iter().enumerate() {
        let fp = sp.key("faults").index(i);
        check_target_and_timing(v, spec, &fp, f, phase);
        check_action(v, ctx, &fp, f);
    }
}

/// The fault's target exists; it has a duration (its own, or the rest of the fault phase
/// that ends at `phase`) and ends within `guardrails.maxDuration`.
fn check_target_and_timing(
    v: &mut V,
    spec: &ExperimentSpec,
    fp: &FieldPath,
    f: &FaultSpec,
    phase: std::time::Duration,
) {
    if !spec.targets.contains_key(&f.target) {
        v.err(
            fp.key("target"),
            format!(
                "no target named {:?} in spec.targets{}",
                f.target,
                crate::model::diag::did_you_mean(
                    &f.target,
                    &spec.targets.keys().map(String::as_str).collect::<Vec<_>>()
                )
            ),
        );
    }
    if let Some(d) = f.duration {
        if d.as_std().is_zero() {
            v.err(fp.key("duration"), "must be above 0");
        }
    } else if phase <= f.at.as_std() {
        v.err(fp.key("duration"), "the fault has no duration and the fault phase ends before it starts: set this, or spec.duration");
    }
    let end = f.duration.map_or(phase, |d| f.at.as_std() + d.as_std());
    if end > spec.max_duration() {
        v.err(
            fp.key("at"),
            format!(
                "the fault would end after guardrails.maxDuration ({})",
                Duration(spec.max_duration())
            ),
        );
    }
}

/// The parameters of the fault's kind.
fn check_action(v: &mut V, ctx: &Ctx, fp: &FieldPath, f: &FaultSpec) {
    let spec = ctx.spec;
    let own = f.target.as_str();
    let allow = &spec.guardrails.allow_paths;
    match &f.action {
        FaultAction::ProcessKill(k) => proc_::process_kill(v, fp, k),
        FaultAction::ProcessPause(_) => {}
        FaultAction::MemoryLeak(m) => proc_::memory_leak(v, fp, m),
        FaultAction::CpuBurn(c) => proc_::cpu_burn(v, fp, c),
        FaultAction::LoadSurge(l) => proc_::load_surge(v, fp, l),
        FaultAction::NetworkPartition(n) => net::network_partition(v, spec, fp, n, own),
        FaultAction::NetworkDelay(d) => net::network_delay(v, spec, fp, d),
        FaultAction::NetworkReorder(r) => net::network_reorder(v, spec, fp, r),
        FaultAction::NetworkCorrupt(c) => net::network_corrupt(v, spec, fp, c),
        FaultAction::NetworkLoss(l) => net::network_loss(v, spec, fp, l),
        FaultAction::NetworkDuplicate(d) => net::network_duplicate(v, spec, fp, d),
        FaultAction::NetworkBandwidth(b) => net::network_bandwidth(v, fp, b),
        FaultAction::LinkDown(l) => net::link_down(v, fp, l),
        FaultAction::SiteFailure(s) => net::site_failure(v, spec, fp, s, own),
        FaultAction::RouteBlackhole(r) => route::route_blackhole(v, fp, r),
        FaultAction::RouteHijack(r) => route::route_hijack(v, fp, r),
        FaultAction::RouteFlap(r) => route::route_flap(v, fp, r),
        FaultAction::BgpSessionDrop(b) => route::bgp_session_drop(v, spec, fp, b, own),
        FaultAction::BgpAnnounce(b) => route::bgp_announce(v, ctx, fp, b),
        FaultAction::DnsFault(d) => route::dns_fault(v, fp, d),
        FaultAction::DataWipe(d) => storage::data_wipe(v, fp, d, allow),
        FaultAction::DataCorrupt(d) => storage::data_corrupt(v, fp, d, allow),
        FaultAction::ConfigCorrupt(c) => storage::config_corrupt(v, fp, c, allow),
        FaultAction::StorageStall(s) => storage::storage_stall(v, fp, s),
        FaultAction::IoLatency(l) => storage::io_latency(v, fp, l),
        FaultAction::IoError(e) => storage::io_error(v, fp, e),
        FaultAction::IoThrottle(t) => storage::io_throttle(v, fp, t),
    }
}
