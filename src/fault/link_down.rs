//! `link-down`: set interfaces down in each target namespace, as a failed device or
//! cable would. The kernel drops the routes through a downed interface, so the undo
//! record (written first) carries the static routes through it; revert brings the
//! interface up and puts those routes back. With several members (a redundant pair) every
//! member's interfaces go down in the same injection: the correlated failure.

use super::netutil::{self, route_tokens};
use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::netns::Netns;

pub struct LinkDown {
    asked: Vec<String>,
    applied: Vec<(Netns, String)>,
}

impl LinkDown {
    pub fn new(spec: &crate::model::spec::LinkDown) -> Self {
        LinkDown {
            asked: spec.interfaces.clone(),
            applied: Vec::new(),
        }
    }
}

/// Whether an interface is administratively up.
fn is_up(ns: &Netns, dev: &str) -> Result<bool, FaultError> {
    let v = netutil::ip_json(ns, &["link", "show", "dev", dev])?;
    Ok(v[0]["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "UP")))
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
            for dev in netutil::pick_interfaces(ns, &self.asked)? {
                let routes = netutil::ip_json(ns, &["route", "show", "dev", &dev])?;
                let keep: Vec<Vec<String>> = routes
                    .as_array()
                    .into_iter()
                    .flatten()
                    // Connected routes come back with the address; dynamic ones (bird, ...)
                    // are their daemon's to restore.
                    .filter(|r| matches!(r["protocol"].as_str(), Some("boot" | "static") | None))
                    .filter_map(route_tokens)
                    .collect();
                plan.push((ns.clone(), dev, keep));
            }
        }
        if plan.is_empty() {
            return Err(FaultError::Refused(
                "link-down: the target has no interfaces but lo".into(),
            ));
        }
        for (ns, dev, routes) in plan {
            undo.record(UndoAction::LinkUp {
                netns: ns.clone(),
                dev: dev.clone(),
                routes,
            })?;
            netutil::run(&ns, &["ip", "link", "set", "dev", &dev, "down"])?;
            self.applied.push((ns, dev));
        }
        Ok(())
    }
    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        for (ns, dev) in &self.applied {
            if is_up(ns, dev)? {
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
