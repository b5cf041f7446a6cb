//! `dns-fault`: in each target namespace, Murphy's DNS responder ([`crate::dns`], a helper
//! process) listens on a port of its own, and an nftables table `murphy_<id>` (family ip,
//! nat output hook) redirects the target's queries to port 53 — whatever resolver they
//! are sent to — to it. Matching names get the fault; the rest are forwarded to the real
//! resolver (the responder's own upstream queries carry a mark the rule lets through).
//! Revert deletes the table first, then the responder exits.

use super::hog::{Hog, Lines};
use super::network_partition::Tables;
use super::{Evidence, Fault, FaultEnv, FaultError, Member, UndoLog};
use crate::model::spec::FaultKind;
use crate::model::spec::{DnsFault, DnsMode};
use crate::netns::Netns;
use serde_json::{json, Value};
use std::time::Duration;

/// The mark on the responder's upstream sockets ("MU").
const MARK: u32 = 0x4d55;

pub struct Dns {
    spec: DnsFault,
    env: FaultEnv,
    port: u16,
    tables: Tables,
    helpers: Vec<(Hog, Lines, Netns)>,
    seen: Vec<usize>,
}

impl Dns {
    pub fn new(spec: &DnsFault, env: &FaultEnv, group: &str) -> Self {
        let h = group
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        Dns {
            spec: spec.clone(),
            env: env.clone(),
            port: 20000 + (h % 10000) as u16,
            tables: Tables::new("ip", super::netutil::table_name(group)),
            helpers: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// The redirect table (nft JSON).
    pub fn ruleset(&self) -> Value {
        let t = &self.tables.table;
        let mut cmds = vec![
            json!({"add": {"table": {"family": "ip", "name": t}}}),
            json!({"add": {"chain": {"family": "ip", "table": t, "name": "out", "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}}),
        ];
        for proto in ["udp", "tcp"] {
            cmds.push(json!({"add": {"rule": {"family": "ip", "table": t, "chain": "out", "expr": [
                {"match": {"op": "!=", "left": {"meta": {"key": "mark"}}, "right": MARK}},
                {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": 53}},
                {"counter": null},
                {"redirect": {"port": self.port}}
            ]}}}));
        }
        json!({"nftables": cmds})
    }
}

impl Fault for Dns {
    fn kind(&self) -> &'static str {
        FaultKind::DnsFault.name()
    }
    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let spaces = super::netutil::spaces(members, self.kind())?;
        super::netutil::no_root(&spaces, self.kind(), "redirect the host's own DNS")?;
        let mode = match self.spec.mode {
            DnsMode::Servfail => "servfail",
            DnsMode::Nxdomain => "nxdomain",
            DnsMode::Wrong => "wrong",
            DnsMode::Timeout => "timeout",
        };
        let mut cfg = json!({
            "port": self.port,
            "names": self.spec.names,
            "mode": mode,
            "upstream": self.spec.upstream,
            "probability": self.spec.probability.map_or(1.0, |p| p.ratio()),
            "seed": self.env.seed,
            "leaseMs": self.env.lease.as_millis() as u64,
            "upstreamMark": MARK,
        });
        if let Some(a) = &self.spec.answer {
            cfg["answer"] = json!(a);
        }
        let doc = self.ruleset();
        for ns in spaces {
            let (hog, lines) = super::hog::start_in(
                &self.env.exe,
                &["dns".to_string(), cfg.to_string()],
                &ns,
                undo,
                "listening",
                Duration::from_secs(5),
            )?;
            self.helpers.push((hog, lines, ns.clone()));
            self.seen.push(0);
            self.tables.apply(&ns, &doc, undo, "redirecting DNS")?;
        }
        Ok(())
    }
    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        let tables = self.tables.rules()?;
        for (hog, _, ns) in &mut self.helpers {
            if let Some(st) = hog.exited() {
                return Err(FaultError::Failed(format!(
                    "DNS responder in {} exited: {st}",
                    ns.describe()
                )));
            }
            let redirects = tables
                .iter()
                .filter(|(n, _)| n == ns)
                .flat_map(|(_, rules)| rules)
                .filter(|r| r.exprs.iter().any(|e| e == "redir"))
                .count();
            if redirects == 0 {
                return Err(FaultError::Failed(format!(
                    "no DNS redirect in {}",
                    ns.describe()
                )));
            }
            parts.push(format!(
                "port 53 redirected to responder pid {} on :{} in {} ({:?} for {})",
                hog.id.pid,
                self.port,
                ns.describe(),
                self.spec.mode,
                self.spec.names.join(", ")
            ));
        }
        Ok(Evidence(parts.join("; ")))
    }
    fn observe(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (_, lines, ns)) in self.helpers.iter().enumerate() {
            let (new, next) = lines.since(self.seen[i]);
            self.seen[i] = next;
            if let Some(st) = new.iter().rev().find(|l| l.starts_with("stats")) {
                let redirected = self.tables.packets_of(ns);
                out.push(format!(
                    "{}: {st} redirected_packets={redirected}",
                    ns.describe()
                ));
            }
        }
        out
    }
}
