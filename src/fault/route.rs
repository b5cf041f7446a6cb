//! Route faults inside a target's network namespace: `route-blackhole` and `route-hijack`
//! add more-specific routes (journaled as routes to delete), `route-flap` withdraws and
//! restores the target's own routes to some prefixes at a period (journaled as routes to
//! put back, before the first withdrawal). They never touch routes other than the ones
//! named, and never the host's own namespace.

use super::netutil::{self, first_addr, nl_failed, routes_exact, rtnl};
use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::BlackholeKind;
use crate::model::spec::FaultKind;
use crate::netlink::route::{Route, RouteSpec};
use crate::netns::Netns;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const ROOT: &str = "change the host's own routing table";

/// `route-blackhole` and `route-hijack`: one added route per prefix and namespace.
pub struct AddRoutes {
    kind: &'static str,
    prefixes: Vec<String>,
    /// Tokens after the prefix (`via X`) or before it (`blackhole`).
    route_type: Option<&'static str>,
    via: Option<String>,
    /// Each namespace with its rtnetlink socket, kept for confirm.
    applied: Vec<(Netns, Route)>,
}

impl AddRoutes {
    pub fn blackhole(spec: &crate::model::spec::RouteBlackhole) -> Self {
        AddRoutes {
            kind: FaultKind::RouteBlackhole.name(),
            prefixes: spec.prefixes.clone(),
            route_type: Some(match spec.route.unwrap_or(BlackholeKind::Blackhole) {
                BlackholeKind::Blackhole => "blackhole",
                BlackholeKind::Unreachable => "unreachable",
                BlackholeKind::Prohibit => "prohibit",
            }),
            via: None,
            applied: Vec::new(),
        }
    }
    pub fn hijack(spec: &crate::model::spec::RouteHijack) -> Self {
        AddRoutes {
            kind: FaultKind::RouteHijack.name(),
            prefixes: spec.prefixes.clone(),
            route_type: None,
            via: Some(spec.via.clone()),
            applied: Vec::new(),
        }
    }
    fn tokens(&self, prefix: &str) -> Vec<String> {
        let mut t = Vec::new();
        if let Some(ty) = self.route_type {
            t.push(ty.to_string());
        }
        t.push(prefix.to_string());
        if let Some(v) = &self.via {
            t.extend(["via".to_string(), v.clone()]);
        }
        t
    }
}

impl Fault for AddRoutes {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let spaces = netutil::spaces(members, self.kind)?;
        netutil::no_root(&spaces, self.kind, ROOT)?;
        for ns in spaces {
            let mut rt = rtnl(&ns)?;
            for p in &self.prefixes {
                let route = self.tokens(p);
                let spec = RouteSpec::parse(&route).map_err(FaultError::Failed)?;
                undo.record(UndoAction::DeleteRoute {
                    netns: ns.clone(),
                    route: route.clone(),
                })?;
                rt.add(&spec, false).map_err(nl_failed(&ns))?;
            }
            self.applied.push((ns, rt));
        }
        Ok(())
    }
    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        for (ns, rt) in &mut self.applied {
            for p in &self.prefixes {
                let addr =
                    first_addr(p).ok_or_else(|| FaultError::Failed(format!("bad prefix {p}")))?;
                match (self.route_type, &self.via) {
                    (Some(t), _) => {
                        // The kernel refuses `route get` into a blackhole: read the table.
                        let found = routes_exact(rt, p)?;
                        let ty = found
                            .first()
                            .map_or_else(|| "no route".to_string(), RouteSpec::type_name);
                        if ty != t {
                            return Err(FaultError::Failed(format!(
                                "{} has no {t} route for {p} (found {ty})",
                                ns.describe()
                            )));
                        }
                        parts.push(format!("{} routes {p} to {t}", ns.describe()));
                    }
                    (None, via) => {
                        let to = addr
                            .parse()
                            .map_err(|_| FaultError::Failed(format!("bad address {addr}")))?;
                        let (_, gw, dev) = rt.get(to).map_err(nl_failed(ns))?;
                        let gw = gw.map(|g| g.to_string());
                        if gw.as_ref() != via.as_ref() {
                            return Err(FaultError::Failed(format!(
                                "{} routes {addr} via {} instead",
                                ns.describe(),
                                gw.as_deref().unwrap_or("-")
                            )));
                        }
                        parts.push(format!(
                            "{} routes {addr} ({p}) via {} dev {}",
                            ns.describe(),
                            gw.as_deref().unwrap_or("-"),
                            dev.as_deref().unwrap_or("-")
                        ));
                    }
                }
            }
        }
        Ok(Evidence(parts.join("; ")))
    }
}

/// `route-flap`: withdraw and restore routes on a timer thread.
pub struct RouteFlap {
    prefixes: Vec<String>,
    period: Duration,
    jitter: Duration,
    seed: u64,
    stop: Arc<AtomicBool>,
    flaps: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
    evidence: String,
}

impl RouteFlap {
    pub fn new(spec: &crate::model::spec::RouteFlap, seed: u64) -> Self {
        RouteFlap {
            prefixes: spec.prefixes.clone(),
            period: spec.period.map_or(Duration::from_secs(1), |d| d.as_std()),
            jitter: spec.jitter.map_or(Duration::ZERO, |d| d.as_std()),
            seed,
            stop: Arc::new(AtomicBool::new(false)),
            flaps: Arc::new(AtomicU64::new(0)),
            errors: Arc::new(Mutex::new(Vec::new())),
            thread: None,
            evidence: String::new(),
        }
    }
}

/// Withdraw (`present` false) or put back every flapped route, each over its namespace's
/// socket (`routes` index into `socks`).
fn set_routes(
    socks: &mut [(Netns, Route)],
    routes: &[(usize, RouteSpec)],
    present: bool,
) -> Result<(), String> {
    for (i, r) in routes {
        let (ns, rt) = &mut socks[*i];
        let done = if present {
            rt.add(r, true)
        } else {
            rt.delete(r).map(drop)
        };
        done.map_err(|e| format!("in {}: {e}", ns.describe()))?;
    }
    Ok(())
}

/// The next seeded jitter draw in [-1, 1).
fn draw(state: &mut u64) -> f64 {
    crate::rand::unit(state) * 2.0 - 1.0
}

impl Fault for RouteFlap {
    fn kind(&self) -> &'static str {
        FaultKind::RouteFlap.name()
    }
    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let spaces = netutil::spaces(members, self.kind())?;
        netutil::no_root(&spaces, self.kind(), ROOT)?;
        let mut routes: Vec<(Netns, Vec<String>)> = Vec::new();
        let mut specs: Vec<(usize, RouteSpec)> = Vec::new();
        let mut socks: Vec<(Netns, Route)> = Vec::new();
        for ns in &spaces {
            let mut rt = rtnl(ns)?;
            for p in &self.prefixes {
                let list = routes_exact(&mut rt, p)?;
                if list.is_empty() {
                    return Err(FaultError::Refused(format!(
                        "route-flap: {} has no route to {p} to flap",
                        ns.describe()
                    )));
                }
                for r in list {
                    routes.push((ns.clone(), r.tokens()));
                    specs.push((socks.len(), r));
                }
            }
            socks.push((ns.clone(), rt));
        }
        for (ns, r) in &routes {
            undo.record(UndoAction::RestoreRoute {
                netns: ns.clone(),
                route: r.clone(),
            })?;
        }
        set_routes(&mut socks, &specs, false).map_err(FaultError::Failed)?;
        self.flaps.store(1, Ordering::SeqCst);
        for (ns, rt) in &mut socks {
            for p in &self.prefixes {
                let left = routes_exact(rt, p)?;
                if !left.is_empty() {
                    return Err(FaultError::Failed(format!(
                        "{} still routes {p} after the withdrawal",
                        ns.describe()
                    )));
                }
            }
        }
        self.evidence = format!(
            "withdrew {} route(s) ({}) and saw them gone; flapping every {:?}",
            routes.len(),
            routes
                .iter()
                .map(|(ns, r)| format!("{} in {}", r.join(" "), ns.describe()))
                .collect::<Vec<_>>()
                .join(", "),
            self.period
        );
        let (stop, flaps, errors) = (self.stop.clone(), self.flaps.clone(), self.errors.clone());
        let (period, jitter) = (self.period, self.jitter);
        let mut rng = self.seed | 1;
        self.thread = Some(std::thread::spawn(move || {
            let mut present = false;
            while !stop.load(Ordering::SeqCst) {
                let j = jitter.as_secs_f64() * draw(&mut rng);
                let wait = Duration::from_secs_f64((period.as_secs_f64() + j).max(0.01));
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                present = !present;
                match set_routes(&mut socks, &specs, present) {
                    Ok(()) => {
                        flaps.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        if let Ok(mut v) = errors.lock() {
                            v.push(e);
                        }
                    }
                }
            }
        }));
        Ok(())
    }
    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        Ok(Evidence(self.evidence.clone()))
    }
    fn observe(&mut self) -> Vec<String> {
        let mut out = vec![format!(
            "{} route change(s) so far",
            self.flaps.load(Ordering::SeqCst)
        )];
        if let Ok(mut e) = self.errors.lock() {
            out.extend(e.drain(..).map(|e| format!("flap error: {e}")));
        }
        out
    }
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RouteFlap {
    fn drop(&mut self) {
        self.stop();
    }
}
