//! `network-bandwidth`: a token bucket (tc `tbf`) as the root qdisc of each chosen
//! interface, limiting what the target sends. It refuses an interface that already has a
//! root qdisc of its own (it would be replaced and lost); revert deletes Murphy's qdisc,
//! which puts the interface's default back.

use super::netutil::{self, nl_failed, rtnl};
use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::netlink::route::{Qdisc, Route, Tbf};
use crate::netns::Netns;

pub struct Bandwidth {
    bits: u64,
    latency_ms: u64,
    asked: Vec<String>,
    applied: Vec<(Netns, String)>,
    /// One rtnetlink socket per namespace, kept from inject to the last observation.
    socks: Vec<Route>,
}

impl Bandwidth {
    pub fn new(spec: &crate::model::spec::NetworkBandwidth) -> Self {
        Bandwidth {
            bits: spec.rate.bits_per_second,
            latency_ms: spec
                .latency
                .map_or(50, |d| d.as_std().as_millis().max(1) as u64),
            asked: spec.interfaces.clone(),
            applied: Vec::new(),
            socks: Vec::new(),
        }
    }
    /// Bucket size: 10 ms at the rate, and never under two full-size frames.
    pub fn burst_bytes(&self) -> u64 {
        (self.bits / 8 / 100).max(3200)
    }
}

/// The root qdisc of `dev`, read over the namespace's socket; `noqueue` when none is listed.
fn root_qdisc(rt: &mut Route, dev: &str) -> Result<Qdisc, FaultError> {
    let ns = rt.netns().clone();
    Ok(rt
        .root_qdisc(dev)
        .map_err(nl_failed(&ns))?
        .unwrap_or_else(|| Qdisc {
            kind: "noqueue".into(),
            ..Default::default()
        }))
}

impl Fault for Bandwidth {
    fn kind(&self) -> &'static str {
        FaultKind::NetworkBandwidth.name()
    }
    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let spaces = netutil::spaces(members, self.kind())?;
        netutil::no_root(&spaces, self.kind(), "shape the host's own interfaces")?;
        let mut plan = Vec::new();
        for ns in &spaces {
            let mut rt = rtnl(ns)?;
            for dev in netutil::pick_interfaces(ns, &self.asked)? {
                let q = root_qdisc(&mut rt, &dev)?;
                let kind = q.kind.as_str();
                if !matches!(kind, "noqueue" | "pfifo_fast" | "fq_codel" | "mq") {
                    return Err(FaultError::Refused(format!(
                        "{dev} in {} already has a {kind} root qdisc; Murphy will not replace it",
                        ns.describe()
                    )));
                }
                plan.push((self.socks.len(), ns.clone(), dev));
            }
            self.socks.push(rt);
        }
        let tbf = Tbf {
            bits_per_second: self.bits,
            burst_bytes: u32::try_from(self.burst_bytes()).unwrap_or(u32::MAX),
            latency_ms: self.latency_ms,
        };
        for (sock, ns, dev) in plan {
            undo.record(UndoAction::DeleteQdisc {
                netns: ns.clone(),
                dev: dev.clone(),
            })?;
            self.socks[sock]
                .add_tbf(&dev, tbf)
                .map_err(nl_failed(&ns))?;
            self.applied.push((ns, dev));
        }
        Ok(())
    }
    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        for (ns, dev) in &self.applied {
            let Some(rt) = self.socks.iter_mut().find(|r| r.netns() == ns) else {
                continue;
            };
            let q = root_qdisc(rt, dev)?;
            if q.kind != "tbf" {
                return Err(FaultError::Failed(format!(
                    "{dev} in {} has no tbf root qdisc",
                    ns.describe()
                )));
            }
            parts.push(format!(
                "tbf rate {} on {dev} in {}",
                q.rate_bytes
                    .map_or_else(|| "?".to_string(), |r| format!("{}bit/s", r * 8)),
                ns.describe()
            ));
        }
        Ok(Evidence(parts.join("; ")))
    }
    fn observe(&mut self) -> Vec<String> {
        let (mut sent, mut dropped) = (0u64, 0u64);
        for (ns, dev) in &self.applied {
            let Some(rt) = self.socks.iter_mut().find(|r| r.netns() == ns) else {
                continue;
            };
            if let Ok(q) = root_qdisc(rt, dev) {
                sent += q.bytes;
                dropped += q.drops;
            }
        }
        vec![format!(
            "shaped: {sent} bytes sent, {dropped} packets dropped"
        )]
    }
}
