//! Packet faults. `network-loss` and `network-duplicate` are nftables rules (`numgen
//! random` then drop; `dup` to the packet's own destination), one table per injection as
//! for partitions. `network-delay`, `network-reorder` and `network-corrupt` need a packet
//! held or changed, which this kernel's tc cannot do (no netem): a table of Murphy's own
//! (written over netlink like the others) hands matching packets to NFQUEUE with bypass —
//! the kernel's NFQUEUE target, since this kernel has no nftables `queue` expression —
//! and Murphy's userspace engine ([`crate::netq`]) running inside the target's namespace
//! holds or changes them. If the engine dies the kernel lets packets through (fail open);
//! revert deletes the table, then the engine releases every held packet and exits.
//!
//! Delay acts on the receiving side's input (or a forwarding hop), never on a sender's own
//! output: holding a sender's packets makes TCP throttle itself instead of seeing delay.

use super::hog::{Hog, Lines};
use super::netutil;
use super::network_partition::Tables;
use super::{Evidence, Fault, FaultEnv, FaultError, Member, UndoLog};
use crate::model::spec::FaultKind;
use crate::model::spec::{PacketDirection, PacketFilter};
use crate::model::validate::parse_cidr;
use crate::netns::Netns;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The filter with its peer targets resolved to addresses.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub direction: PacketDirection,
    pub nets: Vec<(Ipv4Addr, u8)>,
    pub protocol: Option<&'static str>,
    pub port: Option<u16>,
}

impl Matcher {
    pub fn new(f: &PacketFilter, peer_addrs: &[Ipv4Addr]) -> Self {
        let mut nets: Vec<(Ipv4Addr, u8)> = peer_addrs.iter().map(|a| (*a, 32)).collect();
        nets.extend(f.cidrs.iter().filter_map(|c| parse_cidr(c)));
        Matcher {
            direction: f.direction.unwrap_or_default(),
            nets,
            protocol: f.protocol.map(|p| p.name()),
            port: f.port,
        }
    }

    /// nftables match expressions: one list per rule (address and port each match either
    /// side where it makes sense, which takes one rule per combination).
    pub fn nft_matches(&self) -> Vec<Vec<Value>> {
        let addr_fields: Vec<&str> = match (self.nets.is_empty(), self.direction) {
            (true, _) => vec![],
            (false, PacketDirection::Ingress) => vec!["saddr"],
            (false, PacketDirection::Egress) => vec!["daddr"],
            (false, PacketDirection::Forward) => vec!["saddr", "daddr"],
        };
        let set = netutil::addr_set(&self.nets);
        let port_fields: Vec<&str> = if self.port.is_some() {
            vec!["sport", "dport"]
        } else {
            vec![]
        };
        let mut out = Vec::new();
        let addrs: Vec<Option<&str>> = if addr_fields.is_empty() {
            vec![None]
        } else {
            addr_fields.into_iter().map(Some).collect()
        };
        let ports: Vec<Option<&str>> = if port_fields.is_empty() {
            vec![None]
        } else {
            port_fields.into_iter().map(Some).collect()
        };
        for a in &addrs {
            for p in &ports {
                let mut m = Vec::new();
                if let Some(field) = a {
                    m.push(json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": field}}, "right": {"set": set.clone()}}}));
                }
                if let Some(proto) = self.protocol {
                    m.push(json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": proto}}));
                }
                if let (Some(field), Some(port)) = (p, self.port) {
                    m.push(json!({"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": field}}, "right": port}}));
                }
                if self.direction != PacketDirection::Forward {
                    let key = if self.direction == PacketDirection::Ingress {
                        "iifname"
                    } else {
                        "oifname"
                    };
                    m.push(json!({"match": {"op": "!=", "left": {"meta": {"key": key}}, "right": "lo"}}));
                }
                out.push(m);
            }
        }
        out
    }

    /// The members' namespaces; the host's own only when peers narrow what is touched.
    pub fn spaces(&self, members: &[Member], kind: &str) -> Result<Vec<Netns>, FaultError> {
        let spaces = netutil::spaces(members, kind)?;
        if self.nets.is_empty() {
            netutil::no_root(
                &spaces,
                kind,
                "act on all of the host's own traffic (name peers or cidrs)",
            )?;
        }
        Ok(spaces)
    }

    pub fn hook(&self) -> &'static str {
        match self.direction {
            PacketDirection::Ingress => "input",
            PacketDirection::Egress => "output",
            PacketDirection::Forward => "forward",
        }
    }

    /// The engine's table: one chain at the hook the direction names, and per match
    /// combination a rule handing the packet to queue `queue` (bypassed when no engine
    /// listens: fail open). The kernel here has no nftables `queue` expression; the
    /// encoder writes the rule's `queue` with the kernel's NFQUEUE target, as iptables
    /// would, but in a table of Murphy's own.
    pub fn queue_ruleset(&self, table: &str, queue: u16) -> Value {
        let hook = self.hook();
        let mut cmds = vec![
            json!({"add": {"table": {"family": "ip", "name": table}}}),
            json!({"add": {"chain": {"family": "ip", "table": table, "name": hook, "type": "filter", "hook": hook, "prio": 0, "policy": "accept"}}}),
        ];
        for mut m in self.nft_matches() {
            m.extend([
                json!({"counter": null}),
                json!({"queue": {"num": queue, "flags": ["bypass"]}}),
            ]);
            cmds.push(json!({"add": {"rule": {"family": "ip", "table": table, "chain": hook, "expr": m}}}));
        }
        json!({"nftables": cmds})
    }
}

/// `network-loss` and `network-duplicate` as an nftables table per namespace.
pub struct NftPacket {
    kind: &'static str,
    /// `inet` for loss; `ip` for duplication (`dup to ip daddr` needs a family).
    family: &'static str,
    matcher: Matcher,
    /// Parts per million of matching packets acted on.
    ppm: u32,
    tables: Tables,
}

impl NftPacket {
    pub fn loss(spec: &crate::model::spec::NetworkLoss, env: &FaultEnv, group: &str) -> Self {
        NftPacket {
            kind: FaultKind::NetworkLoss.name(),
            family: "inet",
            matcher: Matcher::new(&spec.filter, &env.peer_addrs),
            ppm: (spec.loss.ratio() * 1e6).round() as u32,
            tables: Tables::new("inet", netutil::table_name(group)),
        }
    }
    pub fn duplicate(
        spec: &crate::model::spec::NetworkDuplicate,
        env: &FaultEnv,
        group: &str,
    ) -> Self {
        let mut f = spec.filter.clone();
        // A copy can only be sent out, so duplication acts on what the target sends.
        if f.direction.is_none() {
            f.direction = Some(PacketDirection::Egress);
        }
        NftPacket {
            kind: FaultKind::NetworkDuplicate.name(),
            family: "ip",
            matcher: Matcher::new(&f, &env.peer_addrs),
            ppm: (spec.duplicate.ratio() * 1e6).round() as u32,
            tables: Tables::new("ip", netutil::table_name(group)),
        }
    }

    pub fn ruleset(&self, devices: &[String]) -> Value {
        let t = &self.tables.table;
        let fam = self.family;
        let chain = self.matcher.hook();
        let mut cmds = vec![
            json!({"add": {"table": {"family": fam, "name": t}}}),
            json!({"add": {"chain": {"family": fam, "table": t, "name": chain, "type": "filter", "hook": chain, "prio": -200, "policy": "accept"}}}),
        ];
        // numgen draws 0..=999999: at 100% every packet matches, with no draw at all.
        let dice: Vec<Value> = if self.ppm >= 1_000_000 {
            Vec::new()
        } else {
            vec![
                json!({"match": {"op": "<", "left": {"numgen": {"mode": "random", "mod": 1_000_000}}, "right": self.ppm}}),
            ]
        };
        for m in self.matcher.nft_matches() {
            if self.kind == FaultKind::NetworkLoss.name() {
                let mut e = m.clone();
                e.extend(dice.iter().cloned());
                e.extend([json!({"counter": null}), json!({"drop": null})]);
                cmds.push(json!({"add": {"rule": {"family": fam, "table": t, "chain": chain, "expr": e}}}));
            } else {
                for dev in devices {
                    let mut e = m.clone();
                    e.push(json!({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": dev}}));
                    e.extend(dice.iter().cloned());
                    e.extend([
                        json!({"counter": null}),
                        json!({"dup": {"addr": {"payload": {"protocol": "ip", "field": "daddr"}}, "dev": dev}}),
                    ]);
                    cmds.push(json!({"add": {"rule": {"family": fam, "table": t, "chain": chain, "expr": e}}}));
                }
            }
        }
        json!({"nftables": cmds})
    }
}

impl Fault for NftPacket {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let spaces = self.matcher.spaces(members, self.kind)?;
        for ns in spaces {
            let devices = netutil::interfaces(&ns)?;
            let doc = self.ruleset(&devices);
            self.tables.apply(&ns, &doc, undo, self.kind)?;
        }
        Ok(())
    }
    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        let table = self.tables.table.clone();
        for (ns, rules) in self.tables.rules()? {
            if rules.is_empty() {
                return Err(FaultError::Failed(format!(
                    "table {table} in {} has no rules",
                    ns.describe()
                )));
            }
            parts.push(format!(
                "{} rule(s) acting on {:.4}% of matching packets ({} hook) in table {} {table} in {}",
                rules.len(),
                f64::from(self.ppm) / 1e4,
                self.matcher.hook(),
                self.family,
                ns.describe()
            ));
        }
        Ok(Evidence(parts.join("; ")))
    }
    fn observe(&mut self) -> Vec<String> {
        let total = self.tables.packets();
        let verb = if self.kind == FaultKind::NetworkLoss.name() {
            "dropped"
        } else {
            "duplicated"
        };
        vec![format!("{verb} {total} packet(s) so far")]
    }
    fn fidelity(&mut self) -> std::collections::BTreeMap<String, f64> {
        let total = self.tables.packets();
        let key = if self.kind == FaultKind::NetworkLoss.name() {
            "packetsDropped"
        } else {
            "packetsDuplicated"
        };
        std::collections::BTreeMap::from([(key.to_string(), total as f64)])
    }
}

/// Delay, reorder and corruption through the NFQUEUE engine.
pub struct Engine {
    kind: &'static str,
    matcher: Matcher,
    config: Value,
    exe: std::path::PathBuf,
    queue: u16,
    /// The table handing matching packets to the engine, in each namespace.
    tables: Tables,
    helpers: Vec<(Hog, Lines, Netns)>,
    seen_lines: Vec<usize>,
    /// Whether each engine's queue has been seen full (said once on the timeline).
    fail_open: Vec<bool>,
}

impl Engine {
    fn new(
        kind: &'static str,
        filter: &PacketFilter,
        mut config: Value,
        env: &FaultEnv,
        group: &str,
    ) -> Self {
        // One queue number per injection; queues are per network namespace.
        let queue = 100
            + (group
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                % 60000) as u16;
        config["queue"] = json!(queue);
        config["seed"] = json!(env.seed);
        config["leaseMs"] = json!(env.lease.as_millis() as u64);
        Engine {
            kind,
            matcher: Matcher::new(filter, &env.peer_addrs),
            config,
            exe: env.exe.clone(),
            queue,
            tables: Tables::new("ip", netutil::table_name(group)),
            helpers: Vec::new(),
            seen_lines: Vec::new(),
            fail_open: Vec::new(),
        }
    }
    pub fn delay(spec: &crate::model::spec::NetworkDelay, env: &FaultEnv, group: &str) -> Self {
        let delay_us = spec.delay.as_std().as_micros() as u64
            + spec.jitter.map_or(0, |j| j.as_std().as_micros() as u64);
        let cfg = json!({
            "queueMaxLen": crate::netq::queue_len_for(delay_us),
            "delayUs": spec.delay.as_std().as_micros() as u64,
            "jitterUs": spec.jitter.map_or(0, |j| j.as_std().as_micros() as u64),
            "correlation": spec.correlation.map_or(0.0, |c| c.ratio()),
        });
        Self::new(
            FaultKind::NetworkDelay.name(),
            &spec.filter,
            cfg,
            env,
            group,
        )
    }
    pub fn reorder(spec: &crate::model::spec::NetworkReorder, env: &FaultEnv, group: &str) -> Self {
        let cfg = json!({
            "queueMaxLen": crate::netq::queue_len_for(spec.delay.as_std().as_micros() as u64),
            "delayUs": spec.delay.as_std().as_micros() as u64,
            "reorder": spec.reorder.ratio(),
        });
        Self::new(
            FaultKind::NetworkReorder.name(),
            &spec.filter,
            cfg,
            env,
            group,
        )
    }
    pub fn corrupt(spec: &crate::model::spec::NetworkCorrupt, env: &FaultEnv, group: &str) -> Self {
        let cfg = json!({ "corrupt": spec.corrupt.ratio() });
        Self::new(
            FaultKind::NetworkCorrupt.name(),
            &spec.filter,
            cfg,
            env,
            group,
        )
    }
}

impl Fault for Engine {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let spaces = self.matcher.spaces(members, self.kind)?;
        let doc = self.matcher.queue_ruleset(&self.tables.table, self.queue);
        let json = self.config.to_string();
        for ns in spaces {
            // The engine binds its queue first; only then do packets go to it.
            let (hog, lines) = super::hog::start_in(
                &self.exe,
                &["netq".to_string(), json.clone()],
                &ns,
                undo,
                "bound",
                Duration::from_secs(5),
            )?;
            self.helpers.push((hog, lines, ns.clone()));
            self.seen_lines.push(0);
            self.fail_open.push(false);
            self.tables.apply(&ns, &doc, undo, self.kind)?;
        }
        Ok(())
    }
    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        let tables = self.tables.rules()?;
        for (hog, lines, ns) in &mut self.helpers {
            if let Some(st) = hog.exited() {
                return Err(FaultError::Failed(format!(
                    "packet engine in {} exited: {st}",
                    ns.describe()
                )));
            }
            let rules = tables
                .iter()
                .filter(|(n, _)| n == ns)
                .flat_map(|(_, r)| r)
                .filter(|r| r.exprs.iter().any(|e| e == "target"))
                .count();
            if rules == 0 {
                return Err(FaultError::Failed(format!(
                    "no queue rule of Murphy's in {}",
                    ns.describe()
                )));
            }
            parts.push(format!(
                "engine pid {} {} in {}; {rules} rule(s) to queue {} in table ip {}",
                hog.id.pid,
                lines.last("bound").unwrap_or_default(),
                ns.describe(),
                self.queue,
                self.tables.table
            ));
        }
        Ok(Evidence(parts.join("; ")))
    }
    fn observe(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (_, lines, ns)) in self.helpers.iter().enumerate() {
            let (new, next) = lines.since(self.seen_lines[i]);
            self.seen_lines[i] = next;
            if let Some(st) = new.iter().rev().find(|l| l.starts_with("stats")) {
                out.push(format!("{}: {st}", ns.describe()));
                let n = super::stats_numbers(st);
                if let (Some(peak), Some(max)) = (n.get("held_peak"), n.get("queue_max")) {
                    if *max > 0.0 && peak >= max && !self.fail_open[i] {
                        self.fail_open[i] = true;
                        out.push(format!(
                            "{}: fail open: the engine held its queue's maximum of {max} \
                             packets; the kernel passes further matching packets unshaped \
                             until some are released",
                            ns.describe()
                        ));
                    }
                }
            }
        }
        out
    }
    /// From each namespace's engine, its latest `stats` line: packet counts summed, the
    /// hold error (how late a held packet went out, µs) the worst of the engines.
    fn fidelity(&mut self) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        for (_, lines, _) in &self.helpers {
            let (all, _) = lines.since(0);
            let Some(st) = all.iter().rev().find(|l| l.starts_with("stats")) else {
                continue;
            };
            let n = super::stats_numbers(st);
            // The fail-open point: at the queue's length the kernel passed packets unshaped.
            if let (Some(peak), Some(max)) = (n.get("held_peak"), n.get("queue_max")) {
                let full = out.entry("queueFull".to_string()).or_insert(0.0);
                if *max > 0.0 && peak >= max {
                    *full = 1.0;
                }
            }
            for (from, to) in [
                ("seen", "packetsSeen"),
                ("delayed", "packetsDelayed"),
                ("dropped", "packetsDropped"),
                ("corrupted", "packetsCorrupted"),
                ("released", "packetsReleased"),
            ] {
                if let Some(v) = n.get(from) {
                    *out.entry(to.to_string()).or_insert(0.0) += v;
                }
            }
            for (from, to) in [
                ("hold_err_p50_us", "holdErrorP50Us"),
                ("hold_err_p99_us", "holdErrorP99Us"),
                ("held_peak", "heldPeak"),
                ("queue_max", "queueMax"),
            ] {
                if let Some(v) = n.get(from) {
                    let e = out.entry(to.to_string()).or_insert(0.0);
                    *e = f64::max(*e, *v);
                }
            }
        }
        // Every packet the rules handed to the queue (the engines' `seen` lags by up to one
        // stats interval; a queue that was full passed the difference unshaped).
        out.insert("packetsMatched".into(), self.tables.packets() as f64);
        if let (Some(seen), Some(dropped)) = (out.get("packetsSeen"), out.get("packetsDropped")) {
            if *seen > 0.0 {
                out.insert("dropShare".into(), dropped / seen);
            }
        }
        out
    }
    fn stop(&mut self) {
        for (hog, _, _) in &mut self.helpers {
            hog.finish(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarding_hop_matches_peers_at_either_end_and_ports_on_either_side() {
        let m = Matcher {
            direction: PacketDirection::Forward,
            nets: vec![(Ipv4Addr::new(10, 1, 0, 0), 16)],
            protocol: Some("tcp"),
            port: Some(80),
        };
        let doc = m.queue_ruleset("murphy_f1", 7);
        let cmds = doc["nftables"].as_array().expect("cmds");
        assert_eq!(cmds[1]["add"]["chain"]["hook"], "forward");
        let rules: Vec<String> = cmds
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .map(|r| r["expr"].to_string())
            .collect();
        assert_eq!(rules.len(), 4, "{rules:#?}");
        assert!(rules
            .iter()
            .any(|r| r.contains("saddr") && r.contains("10.1.0.0") && r.contains("dport")));
        assert!(rules
            .iter()
            .any(|r| r.contains("daddr") && r.contains("10.1.0.0") && r.contains("sport")));
        assert!(rules
            .iter()
            .all(|r| r.contains(r#"{"queue":{"flags":["bypass"],"num":7}}"#)));
        let ingress = Matcher {
            direction: PacketDirection::Ingress,
            nets: vec![],
            protocol: None,
            port: None,
        };
        let doc = ingress.queue_ruleset("murphy_f2", 7);
        let cmds = doc["nftables"].as_array().expect("cmds");
        assert_eq!(cmds[1]["add"]["chain"]["hook"], "input");
        assert_eq!(cmds.len(), 3);
    }
}
