//! `network-bandwidth`: a token bucket (tc `tbf`) as the root qdisc of each chosen
//! interface, limiting what the target sends. It refuses an interface that already has a
//! root qdisc of its own (it would be replaced and lost); revert deletes Murphy's qdisc,
//! which puts the interface's default back.

use super::netutil;
use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::netns::Netns;
use serde_json::Value;

pub struct Bandwidth {
    bits: u64,
    latency_ms: u64,
    asked: Vec<String>,
    applied: Vec<(Netns, String)>,
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
        }
    }
    /// Bucket size: 10 ms at the rate, and never under two full-size frames.
    pub fn burst_bytes(&self) -> u64 {
        (self.bits / 8 / 100).max(3200)
    }
}

fn root_qdisc(ns: &Netns, dev: &str) -> Result<Value, FaultError> {
    let out = netutil::run(ns, &["tc", "-j", "-s", "qdisc", "show", "dev", dev])?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| FaultError::Failed(format!("parsing tc output: {e}")))?;
    Ok(v.as_array()
        .and_then(|a| a.iter().find(|q| q["root"] == true).cloned())
        .unwrap_or(Value::Null))
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
            for dev in netutil::pick_interfaces(ns, &self.asked)? {
                let q = root_qdisc(ns, &dev)?;
                let kind = q["kind"].as_str().unwrap_or("noqueue");
                if !matches!(kind, "noqueue" | "pfifo_fast" | "fq_codel" | "mq") {
                    return Err(FaultError::Refused(format!(
                        "{dev} in {} already has a {kind} root qdisc; Murphy will not replace it",
                        ns.describe()
                    )));
                }
                plan.push((ns.clone(), dev));
            }
        }
        let rate = format!("{}bit", self.bits);
        let burst = self.burst_bytes().to_string();
        let latency = format!("{}ms", self.latency_ms);
        for (ns, dev) in plan {
            undo.record(UndoAction::DeleteQdisc {
                netns: ns.clone(),
                dev: dev.clone(),
            })?;
            netutil::run(
                &ns,
                &[
                    "tc", "qdisc", "add", "dev", &dev, "root", "tbf", "rate", &rate, "burst",
                    &burst, "latency", &latency,
                ],
            )?;
            self.applied.push((ns, dev));
        }
        Ok(())
    }
    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        for (ns, dev) in &self.applied {
            let q = root_qdisc(ns, dev)?;
            if q["kind"] != "tbf" {
                return Err(FaultError::Failed(format!(
                    "{dev} in {} has no tbf root qdisc",
                    ns.describe()
                )));
            }
            parts.push(format!(
                "tbf rate {} on {dev} in {}",
                q["options"]["rate"].as_u64().map_or_else(
                    || q["options"]["rate"].to_string(),
                    |r| format!("{}bit/s", r * 8)
                ),
                ns.describe()
            ));
        }
        Ok(Evidence(parts.join("; ")))
    }
    fn observe(&mut self) -> Vec<String> {
        let (mut sent, mut dropped) = (0u64, 0u64);
        for (ns, dev) in &self.applied {
            if let Ok(q) = root_qdisc(ns, dev) {
                sent += q["bytes"].as_u64().unwrap_or(0);
                dropped += q["drops"].as_u64().unwrap_or(0);
            }
        }
        vec![format!(
            "shaped: {sent} bytes sent, {dropped} packets dropped"
        )]
    }
}
