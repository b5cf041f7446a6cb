//! `network-partition`: in each target network namespace, one nftables table
//! `murphy_<injection>` with input/output chains that drop traffic to and from the peers
//! (or everything but loopback). Revert deletes the table: one operation, nothing else
//! touched. Rules are fed to `nft -j -f -` as JSON on stdin, never as a command string.

use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::Direction;
use crate::model::spec::FaultKind;
use crate::model::validate::parse_cidr;
use crate::netns::Netns;
use serde_json::{json, Value};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

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
    table: String,
    applied: Vec<Netns>,
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
            table,
            applied: Vec::new(),
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
        &self.table
    }

    /// The nftables JSON document for this partition.
    pub fn ruleset(&self) -> Value {
        let t = &self.table;
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

/// Run `nft` with JSON output in a namespace, optionally feeding `stdin`.
pub fn nft(netns: &Netns, args: &[&str], stdin: Option<&str>) -> Result<String, FaultError> {
    let failed = |m: String| FaultError::Failed(m);
    let fd = netns
        .open()
        .map_err(|e| failed(format!("opening {}: {e}", netns.describe())))?;
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::sys::enter_before_exec(&mut cmd, fd, Vec::new(), None);
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("nft: {e} (is the nftables package installed?)")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| failed(format!("nft stdin: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("nft: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(failed(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Sum of the drop counters in a Murphy table, and the number of rules.
pub fn table_counters(netns: &Netns, table: &str) -> Result<(usize, u64), FaultError> {
    table_counters_in(netns, "inet", table)
}

/// Packets counted by a Murphy table, summed over the namespaces it was applied in
/// (a namespace that is gone counts nothing).
pub fn packets_in(spaces: &[Netns], family: &str, table: &str) -> u64 {
    spaces
        .iter()
        .filter_map(|ns| table_counters_in(ns, family, table).ok())
        .map(|(_, p)| p)
        .sum()
}

/// [`table_counters`] for a table of another family (`ip`).
pub fn table_counters_in(
    netns: &Netns,
    family: &str,
    table: &str,
) -> Result<(usize, u64), FaultError> {
    let out = nft(netns, &["-j", "list", "table", family, table], None)?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| FaultError::Failed(format!("parsing nft output: {e}")))?;
    let mut rules = 0;
    let mut packets = 0;
    for item in v["nftables"].as_array().into_iter().flatten() {
        if let Some(rule) = item.get("rule") {
            rules += 1;
            for e in rule["expr"].as_array().into_iter().flatten() {
                packets += e["counter"]["packets"].as_u64().unwrap_or(0);
            }
        }
    }
    Ok((rules, packets))
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
        let doc = self.ruleset().to_string();
        for ns in spaces {
            undo.record(UndoAction::DeleteNftTable {
                netns: ns.clone(),
                family: "inet".into(),
                table: self.table.clone(),
            })?;
            nft(&ns, &["-j", "-f", "-"], Some(&doc))
                .map_err(|e| FaultError::Failed(format!("partitioning {}: {e}", ns.describe())))?;
            self.applied.push(ns);
        }
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        for ns in &self.applied {
            let (rules, _) = table_counters(ns, &self.table)?;
            if rules == 0 {
                return Err(FaultError::Failed(format!(
                    "table {} in {} has no rules",
                    self.table,
                    ns.describe()
                )));
            }
            parts.push(format!(
                "{} drop rule(s) in table inet {} in {}",
                rules,
                self.table,
                ns.describe()
            ));
        }
        Ok(Evidence(parts.join("; ")))
    }

    fn observe(&mut self) -> Vec<String> {
        let total = packets_in(&self.applied, "inet", &self.table);
        vec![format!("dropped {total} packet(s) so far")]
    }
}
