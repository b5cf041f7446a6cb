//! `network-partition`: in each target network namespace, one nftables table
//! `murphy_<injection>` with input/output chains that drop traffic to and from the peers
//! (or everything but loopback). Revert deletes the table: one operation, nothing else
//! touched. The table is written as nftables JSON (data, never a command string) and
//! applied in process as one nf_tables transaction over netlink ([`crate::netlink::nft`]).

use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::Direction;
use crate::model::spec::FaultKind;
use crate::model::validate::parse_cidr;
use crate::netlink::nft::{Nft, RuleInfo};
use crate::netns::Netns;
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// What the table drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Traffic to and from the peers (or everything but loopback without peers).
    Peers,
    /// Everything except loopback and the peers (`site-failure`: the peers are the site's
    /// own members and the allow list).
    AllBut,
    /// BGP (TCP port 179) to and from the peers, or with anyone without peers.
    Bgp,
}

pub struct NetworkPartition {
    kind: &'static str,
    scope: Scope,
    direction: Direction,
    peers: Vec<(Ipv4Addr, u8)>,
    tables: Tables,
}

impl NetworkPartition {
    pub fn new(
        spec: &crate::model::spec::NetworkPartition,
        peer_addrs: Vec<Ipv4Addr>,
        group: &str,
    ) -> Self {
        let mut peers: Vec<(Ipv4Addr, u8)> = peer_addrs.into_iter().map(|a| (a, 32)).collect();
        peers.extend(spec.cidrs.iter().filter_map(|c| parse_cidr(c)));
        let table = super::netutil::table_name(group);
        NetworkPartition {
            kind: FaultKind::NetworkPartition.name(),
            scope: Scope::Peers,
            direction: spec.direction.unwrap_or(Direction::Both),
            peers,
            tables: Tables::new("inet", table),
        }
    }

    /// `site-failure`: `allowed` holds the site's own addresses and the allow list.
    pub fn site(
        spec: &crate::model::spec::SiteFailure,
        allowed: Vec<Ipv4Addr>,
        group: &str,
    ) -> Self {
        let mut p = Self::new(&Default::default(), allowed, group);
        p.peers
            .extend(spec.allow.iter().filter_map(|c| parse_cidr(c)));
        p.kind = FaultKind::SiteFailure.name();
        p.scope = Scope::AllBut;
        p
    }

    /// `bgp-session-drop`.
    pub fn bgp(
        spec: &crate::model::spec::BgpSessionDrop,
        peer_addrs: Vec<Ipv4Addr>,
        group: &str,
    ) -> Self {
        let mut p = Self::new(
            &crate::model::spec::NetworkPartition {
                cidrs: spec.cidrs.clone(),
                ..Default::default()
            },
            peer_addrs,
            group,
        );
        p.kind = FaultKind::BgpSessionDrop.name();
        p.scope = Scope::Bgp;
        p
    }

    pub fn table(&self) -> &str {
        &self.tables.table
    }

    /// The nftables JSON document for this partition.
    pub fn ruleset(&self) -> Value {
        let t = &self.tables.table;
        let mut cmds = vec![json!({"add": {"table": {"family": "inet", "name": t}}})];
        let set = super::netutil::addr_set(&self.peers);
        let scope = self.scope;
        let mut chain = |name: &str, hook: &str, field: &str, meta: &str| {
            cmds.push(json!({"add": {"chain": {"family": "inet", "table": t, "name": name, "type": "filter", "hook": hook, "prio": -200, "policy": "accept"}}}));
            let peers = json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": field}}, "right": {"set": set.clone()}}});
            let not_lo =
                json!({"match": {"op": "!=", "left": {"meta": {"key": meta}}, "right": "lo"}});
            let drop = |mut m: Vec<Value>| {
                m.extend([json!({"counter": null}), json!({"drop": null})]);
                json!({"add": {"rule": {"family": "inet", "table": t, "chain": name, "expr": m}}})
            };
            match scope {
                Scope::Peers if set.is_empty() => cmds.push(drop(vec![not_lo])),
                Scope::Peers => cmds.push(drop(vec![peers])),
                Scope::AllBut => {
                    if !set.is_empty() {
                        cmds.push(json!({"add": {"rule": {"family": "inet", "table": t, "chain": name, "expr": [peers, {"accept": null}]}}}));
                    }
                    cmds.push(drop(vec![not_lo]));
                }
                Scope::Bgp => {
                    for port_field in ["dport", "sport"] {
                        let mut m = vec![
                            json!({"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": port_field}}, "right": 179}}),
                        ];
                        if !set.is_empty() {
                            m.insert(0, peers.clone());
                        }
                        cmds.push(drop(m));
                    }
                }
            }
        };
        if matches!(self.direction, Direction::Ingress | Direction::Both) {
            chain("input", "input", "saddr", "iifname");
        }
        if matches!(self.direction, Direction::Egress | Direction::Both) {
            chain("output", "output", "daddr", "oifname");
        }
        json!({"nftables": cmds})
    }
}

/// Murphy's table of one injection in each namespace it was applied in, over one
/// nf_tables socket per namespace kept open for the fault's life (apply, confirm, observe).
/// Revert is the journal's: it deletes the table.
pub struct Tables {
    pub family: &'static str,
    pub table: String,
    pub applied: Vec<(Netns, Nft)>,
}

impl Tables {
    pub fn new(family: &'static str, table: String) -> Tables {
        Tables {
            family,
            table,
            applied: Vec::new(),
        }
    }

    /// Journal the table's deletion, then apply `doc` in `ns` as one transaction (all of
    /// it or nothing); `what` names the fault's act in an error.
    pub fn apply(
        &mut self,
        ns: &Netns,
        doc: &Value,
        undo: &mut UndoLog<'_>,
        what: &str,
    ) -> Result<(), FaultError> {
        undo.record(UndoAction::DeleteNftTable {
            netns: ns.clone(),
            family: self.family.into(),
            table: self.table.clone(),
        })?;
        let failed = |e: crate::netlink::NlError| {
            FaultError::Failed(format!("{what} in {}: {e}", ns.describe()))
        };
        let mut nft = Nft::open(ns).map_err(failed)?;
        nft.apply(doc).map_err(failed)?;
        self.applied.push((ns.clone(), nft));
        Ok(())
    }

    /// The table's rules in each namespace, read back over its socket.
    pub fn rules(&mut self) -> Result<Vec<(Netns, Vec<RuleInfo>)>, FaultError> {
        let mut out = Vec::new();
        for (ns, nft) in &mut self.applied {
            let rules = nft.rules(self.family, &self.table).map_err(|e| {
                FaultError::Failed(format!(
                    "reading table {} in {}: {e}",
                    self.table,
                    ns.describe()
                ))
            })?;
            out.push((ns.clone(), rules));
        }
        Ok(out)
    }

    /// Packets the table's counters counted, summed over its namespaces (a namespace that
    /// is gone counts nothing).
    pub fn packets(&mut self) -> u64 {
        self.applied
            .iter_mut()
            .filter_map(|(_, nft)| nft.rules(self.family, &self.table).ok())
            .flatten()
            .map(|r| r.packets)
            .sum()
    }

    /// Packets counted in one namespace's table (0 when it cannot be read).
    pub fn packets_of(&mut self, ns: &Netns) -> u64 {
        self.applied
            .iter_mut()
            .filter(|(n, _)| n == ns)
            .filter_map(|(_, nft)| nft.rules(self.family, &self.table).ok())
            .flatten()
            .map(|r| r.packets)
            .sum()
    }
}

impl Fault for NetworkPartition {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let spaces = super::netutil::spaces(members, self.kind)?;
        if self.scope == Scope::AllBut {
            // The site's members keep talking to each other.
            for m in members {
                for a in &m.addrs {
                    if !self.peers.contains(&(*a, 32)) {
                        self.peers.push((*a, 32));
                    }
                }
            }
        }
        let cuts_all = match self.scope {
            Scope::Peers => self.peers.is_empty(),
            Scope::AllBut => true,
            Scope::Bgp => false,
        };
        if cuts_all && spaces.contains(&Netns::Root) {
            return Err(FaultError::Refused(format!("{}: refusing to cut the host's own network namespace off from everything: name peers or cidrs", self.kind)));
        }
        let doc = self.ruleset();
        for ns in spaces {
            self.tables.apply(&ns, &doc, undo, "partitioning")?;
        }
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        let table = self.tables.table.clone();
        for (ns, rules) in self.tables.rules()? {
            let drops = rules
                .iter()
                .filter(|r| r.exprs.contains(&"counter".to_string()))
                .count();
            if drops == 0 {
                return Err(FaultError::Failed(format!(
                    "table {table} in {} has no rules",
                    ns.describe()
                )));
            }
            parts.push(format!(
                "{drops} drop rule(s) in table inet {table} in {}",
                ns.describe()
            ));
        }
        Ok(Evidence(parts.join("; ")))
    }

    fn observe(&mut self) -> Vec<String> {
        let total = self.tables.packets();
        vec![format!("dropped {total} packet(s) so far")]
    }

    fn fidelity(&mut self) -> std::collections::BTreeMap<String, f64> {
        std::collections::BTreeMap::from([(
            "packetsDropped".to_string(),
            self.tables.packets() as f64,
        )])
    }
}
