//! `bgp-announce`: Murphy's own BGP speaker ([`crate::bgp`]) runs as a helper process in
//! the namespace of a lab host that the target router has configured as a neighbor, opens
//! a session and announces, flaps or keeps resetting prefixes. Confirm reads the router's
//! own kernel routing table: the bogus route must be there (or, for `reset`, the session
//! must have come up). Revert stops the speaker, which withdraws what it announced and
//! closes the session; the journal's undo kills it if anything is left.

use super::hog::{Hog, Lines};
use super::{Evidence, Fault, FaultEnv, FaultError, Member, UndoLog};
use crate::model::spec::FaultKind;
use crate::model::spec::{BgpAnnounce, BgpMode};
use crate::netns::Netns;
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::Duration;

pub struct Bgp {
    spec: BgpAnnounce,
    env: FaultEnv,
    router: Vec<Netns>,
    helper: Option<(Hog, Lines)>,
    seen: usize,
}

impl Bgp {
    pub fn new(spec: &BgpAnnounce, env: &FaultEnv) -> Self {
        Bgp {
            spec: spec.clone(),
            env: env.clone(),
            router: Vec::new(),
            helper: None,
            seen: 0,
        }
    }
}

/// The speaker's address: the one of `from` that shares the longest prefix with the
/// neighbor.
pub fn local_address(from: &[Ipv4Addr], neighbor: Ipv4Addr) -> Option<Ipv4Addr> {
    from.iter()
        .copied()
        .max_by_key(|a| (u32::from(*a) ^ u32::from(neighbor)).leading_zeros())
}

impl Fault for Bgp {
    fn kind(&self) -> &'static str {
        FaultKind::BgpAnnounce.name()
    }
    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let (from_ns, from_addrs) = self.env.from.clone().ok_or_else(|| {
            FaultError::Refused(format!(
                "bgp-announce: no network namespace for `from: {}`",
                self.spec.from
            ))
        })?;
        let neighbor: Ipv4Addr = self.spec.neighbor.parse().map_err(|_| {
            FaultError::Refused(format!("bad neighbor address {}", self.spec.neighbor))
        })?;
        let local = local_address(&from_addrs, neighbor)
            .ok_or_else(|| FaultError::Refused(format!("{} has no address", self.spec.from)))?;
        self.router = super::netutil::spaces(members, self.kind())?;
        let mode = match self.spec.mode.unwrap_or(BgpMode::Announce) {
            BgpMode::Announce => "announce",
            BgpMode::Flap => "flap",
            BgpMode::Reset => "reset",
        };
        let as_path = if self.spec.as_path.is_empty() {
            vec![self.spec.local_as]
        } else {
            self.spec.as_path.clone()
        };
        let cfg = json!({
            "peer": neighbor.to_string(),
            "peerAs": self.spec.neighbor_as,
            "localAs": self.spec.local_as,
            "routerId": local.to_string(),
            "holdTime": 9,
            "prefixes": self.spec.prefixes,
            "nextHop": self.spec.next_hop.clone().unwrap_or_else(|| local.to_string()),
            "asPath": as_path,
            "mode": mode,
            "periodMs": self.spec.period.map_or(1000, |p| p.as_std().as_millis() as u64),
            "jitterMs": self.spec.jitter.map_or(0, |p| p.as_std().as_millis() as u64),
            "seed": self.env.seed,
            "leaseMs": self.env.lease.as_millis() as u64,
        });
        let (hog, lines) = super::hog::start_in(
            &self.env.exe,
            &["bgp".to_string(), cfg.to_string()],
            &from_ns,
            undo,
            "established",
            Duration::from_secs(10),
        )
        .map_err(|e| {
            FaultError::Failed(format!(
                "BGP speaker AS{} at {local} with {neighbor}: {e} (is {local} a configured neighbor of the router?)",
                self.spec.local_as
            ))
        })?;
        self.helper = Some((hog, lines));
        Ok(())
    }
    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let Some((_, lines)) = &self.helper else {
            return Err(FaultError::Failed("the speaker is not running".into()));
        };
        let est = lines.last("established").unwrap_or_default();
        if self.spec.mode == Some(BgpMode::Reset) {
            return Ok(Evidence(format!(
                "speaker {est}; resetting the session every period"
            )));
        }
        // The router's own table must carry the announced prefixes.
        let mut seen = Vec::new();
        let mut sockets = Vec::new();
        for ns in &self.router {
            sockets.push(super::netutil::rtnl(ns)?);
        }
        let ok = super::wait_for(Duration::from_secs(5), || {
            seen.clear();
            for rt in sockets.iter_mut() {
                for p in &self.spec.prefixes {
                    let Ok(routes) = super::netutil::routes_exact(rt, p) else {
                        return false;
                    };
                    let Some(r) = routes.first() else {
                        return false;
                    };
                    seen.push(format!(
                        "{} routes {p} via {} ({})",
                        rt.netns().describe(),
                        r.gateway.map_or("-".into(), |g| g.to_string()),
                        r.protocol_name().unwrap_or_else(|| "-".into())
                    ));
                }
            }
            true
        });
        if !ok {
            return Err(FaultError::Failed(format!(
                "speaker {est}, but the router's table has no route for {} within 5s (filtered by its import policy?)",
                self.spec.prefixes.join(", ")
            )));
        }
        Ok(Evidence(format!("speaker {est}; {}", seen.join("; "))))
    }
    fn observe(&mut self) -> Vec<String> {
        let Some((_, lines)) = &self.helper else {
            return Vec::new();
        };
        let (new, next) = lines.since(self.seen);
        self.seen = next;
        new.into_iter()
            .filter(|l| !l.starts_with("keepalive"))
            .map(|l| format!("speaker: {l}"))
            .collect()
    }
    fn stop(&mut self) {
        if let Some((hog, _)) = &mut self.helper {
            hog.finish(Duration::from_secs(3));
        }
    }
}
