//! `network-partition`: in each target network namespace, one nftables table
//! `murphy_<injection>` with input/output chains that drop traffic to and from the peers
//! (or everything but loopback). Revert deletes the table: one operation, nothing else
//! touched. Rules are fed to `nft -j -f -` as JSON on stdin, never as a command string.

use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::{Netns, UndoAction};
use crate::model::spec::Direction;
use crate::model::validate::parse_cidr;
use serde_json::{json, Value};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

pub struct NetworkPartition {
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
        let table = format!(
            "murphy_{}",
            group
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        );
        NetworkPartition {
            direction: spec.direction.unwrap_or(Direction::Both),
            peers,
            table,
            applied: Vec::new(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The nftables JSON document for this partition.
    pub fn ruleset(&self) -> Value {
        let t = &self.table;
        let mut cmds = vec![json!({"add": {"table": {"family": "inet", "name": t}}})];
        let set: Vec<Value> = self
            .peers
            .iter()
            .map(|(a, l)| {
                if *l == 32 {
                    json!(a.to_string())
                } else {
                    json!({"prefix": {"addr": a.to_string(), "len": l}})
                }
            })
            .collect();
        let mut chain = |name: &str, hook: &str, field: &str, meta: &str| {
            cmds.push(json!({"add": {"chain": {"family": "inet", "table": t, "name": name, "type": "filter", "hook": hook, "prio": -200, "policy": "accept"}}}));
            let matcher = if set.is_empty() {
                json!({"match": {"op": "!=", "left": {"meta": {"key": meta}}, "right": "lo"}})
            } else {
                json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": field}}, "right": {"set": set.clone()}}})
            };
            cmds.push(json!({"add": {"rule": {"family": "inet", "table": t, "chain": name, "expr": [matcher, {"counter": null}, {"drop": null}]}}}));
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
pub fn nft(netns: &Netns, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let fd = netns
        .open()
        .map_err(|e| format!("opening {}: {e}", netns.describe()))?;
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
        .map_err(|e| format!("nft: {e} (is the nftables package installed?)"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| format!("nft stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Sum of the drop counters in a Murphy table, and the number of rules.
pub fn table_counters(netns: &Netns, table: &str) -> Result<(usize, u64), String> {
    let out = nft(netns, &["-j", "list", "table", "inet", table], None)?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("parsing nft output: {e}"))?;
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
        "network-partition"
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let mut spaces: Vec<Netns> = Vec::new();
        for m in members {
            if !spaces.contains(&m.netns) {
                spaces.push(m.netns.clone());
            }
        }
        if spaces.is_empty() {
            return Err(FaultError::Refused(
                "network-partition: the target has no network namespace".into(),
            ));
        }
        if self.peers.is_empty() && spaces.contains(&Netns::Root) {
            return Err(FaultError::Refused("refusing to cut the host's own network namespace off from everything: name peers or cidrs".into()));
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
            let (rules, _) = table_counters(ns, &self.table).map_err(FaultError::Failed)?;
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
        let total: u64 = self
            .applied
            .iter()
            .filter_map(|ns| table_counters(ns, &self.table).ok())
            .map(|(_, p)| p)
            .sum();
        vec![format!("dropped {total} packet(s) so far")]
    }
}
