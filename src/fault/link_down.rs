//! `link-down`: set interfaces down in each target namespace, as a failed device or
//! cable would. The kernel drops the routes through a downed interface, so the undo
//! record (written first) carries the static routes through it; revert brings the
//! interface up and puts those routes back. With several members (a redundant pair) every
//! member's interfaces go down in the same injection: the correlated failure.

use super::netutil::{self, nl_failed, rtnl};
use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::netlink::route::{Route, RouteSpec};
use crate::netns::Netns;

pub struct LinkDown {
    asked: Vec<String>,
    applied: Vec<(Netns, String)>,
    /// One rtnetlink socket per namespace, kept from inject to confirm.
    socks: Vec<Route>,
}

impl LinkDown {
    pub fn new(spec: &crate::model::spec::LinkDown) -> Self {
        LinkDown {
            asked: spec.interfaces.clone(),
            applied: Vec::new(),
            socks: Vec::new(),
        }
    }
}

/// Whether an interface is administratively up (read over netlink).
fn is_up(rt: &mut Route, dev: &str) -> Result<bool, FaultError> {
    let ns = rt.netns().clone();
    Ok(rt.link(dev).map_err(nl_failed(&ns))?.is_some_and(|l| l.up))
}

impl Fault for LinkDown {
    fn kind(&self) -> &'static str {
        FaultKind::LinkDown.name()
    }
    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let spaces = netutil::spaces(members, self.kind())?;
        netutil::no_root(&spaces, self.kind(), "take the host's own interfaces down")?;
        let mut plan = Vec::new();
        for ns in &spaces {
            let mut rt = rtnl(ns)?;
            let routes = rt.routes().map_err(nl_failed(ns))?;
            for dev in netutil::pick_interfaces(ns, &self.asked)? {
                let keep: Vec<Vec<String>> = routes
                    .iter()
                    .filter(|r| r.dev.as_deref() == Some(dev.as_str()))
                    // Connected routes come back with the address; dynamic ones (bird, ...)
                    // are their daemon's to restore.
                    .filter(|r| matches!(r.protocol_name().as_deref(), Some("boot" | "static")))
                    .map(RouteSpec::tokens)
                    .collect();
                plan.push((self.socks.len(), ns.clone(), dev, keep));
            }
            self.socks.push(rt);
        }
        if plan.is_empty() {
            return Err(FaultError::Refused(
                "link-down: the target has no interfaces but lo".into(),
            ));
        }
        for (sock, ns, dev, routes) in plan {
            undo.record(UndoAction::LinkUp {
                netns: ns.clone(),
                dev: dev.clone(),
                routes,
            })?;
            self.socks[sock]
                .set_up(&dev, false)
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
            if is_up(rt, dev)? {
                return Err(FaultError::Failed(format!(
                    "{dev} in {} is still up",
                    ns.describe()
                )));
            }
            parts.push(format!("{dev} is down in {}", ns.describe()));
        }
        Ok(Evidence(parts.join("; ")))
    }
}
