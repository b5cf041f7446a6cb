//! Small helpers the network faults share: interfaces and routes read over netlink
//! ([`crate::netlink::route`]); `ip` and `tc` run inside a namespace (argv only) for the
//! few readers and the qdisc fault that still use them.

use super::{FaultError, Member};
use crate::netlink::route::{Route, RouteSpec};
use crate::netns::Netns;
use serde_json::Value;

/// Distinct network namespaces of the members, in order.
pub fn spaces(members: &[Member], kind: &str) -> Result<Vec<Netns>, FaultError> {
    let mut out: Vec<Netns> = Vec::new();
    for m in members {
        if !out.contains(&m.netns) {
            out.push(m.netns.clone());
        }
    }
    if out.is_empty() {
        return Err(FaultError::Refused(format!(
            "{kind}: the target has no network namespace"
        )));
    }
    Ok(out)
}

/// Refuse the host's own namespace (`why` says what would happen to it).
pub fn no_root(spaces: &[Netns], kind: &str, why: &str) -> Result<(), FaultError> {
    if spaces.contains(&Netns::Root) {
        return Err(FaultError::Refused(format!(
            "{kind}: refusing to {why}; target a lab host or a namespace"
        )));
    }
    Ok(())
}

/// The nftables table of one injection: `murphy_<group>`, in characters nft accepts.
pub fn table_name(group: &str) -> String {
    format!(
        "murphy_{}",
        group
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    )
}

/// Addresses and prefixes as the elements of an nftables anonymous set.
pub fn addr_set(nets: &[(std::net::Ipv4Addr, u8)]) -> Vec<Value> {
    nets.iter()
        .map(|(a, l)| {
            if *l == 32 {
                serde_json::json!(a.to_string())
            } else {
                serde_json::json!({"prefix": {"addr": a.to_string(), "len": l}})
            }
        })
        .collect()
}

/// rtnetlink in a namespace, as a fault error naming the place.
pub fn rtnl(netns: &Netns) -> Result<Route, FaultError> {
    Route::open(netns).map_err(|e| FaultError::Failed(format!("in {}: {e}", netns.describe())))
}

/// A netlink error as a fault error naming the place.
pub fn nl_failed(netns: &Netns) -> impl Fn(crate::netlink::NlError) -> FaultError + '_ {
    move |e| FaultError::Failed(format!("in {}: {e}", netns.describe()))
}

/// Interface names in a namespace, without `lo` (read over netlink).
pub fn interfaces(netns: &Netns) -> Result<Vec<String>, FaultError> {
    let links = rtnl(netns)?.links().map_err(nl_failed(netns))?;
    Ok(links
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n != "lo")
        .collect())
}

/// The routes of the main table for exactly `prefix` (`ip route show exact`).
pub fn routes_exact(rt: &mut Route, prefix: &str) -> Result<Vec<RouteSpec>, FaultError> {
    let (a, len) = crate::model::validate::parse_cidr(prefix)
        .ok_or_else(|| FaultError::Failed(format!("bad prefix {prefix}")))?;
    let base = std::net::Ipv4Addr::from(u32::from(a) & crate::model::validate::mask(len));
    rt.routes_exact(base, len)
        .map_err(nl_failed(&rt.netns().clone()))
}

/// The interfaces a fault acts on: the ones asked for (each must exist), else all but lo.
pub fn pick_interfaces(netns: &Netns, asked: &[String]) -> Result<Vec<String>, FaultError> {
    let have = interfaces(netns)?;
    if asked.is_empty() {
        return Ok(have);
    }
    for a in asked {
        if !have.contains(a) {
            return Err(FaultError::Refused(format!(
                "{} has no interface {a:?} (it has {})",
                netns.describe(),
                have.join(", ")
            )));
        }
    }
    Ok(asked.to_vec())
}

/// The first address of a prefix (for `ip route get`).
pub fn first_addr(prefix: &str) -> Option<String> {
    let (a, len) = crate::model::validate::parse_cidr(prefix)?;
    let base = u32::from(a) & crate::model::validate::mask(len);
    let host = if len >= 31 { base } else { base + 1 };
    Some(std::net::Ipv4Addr::from(host).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_address_of_a_prefix() {
        assert_eq!(first_addr("10.99.0.0/25").as_deref(), Some("10.99.0.1"));
        assert_eq!(first_addr("10.99.0.7/32").as_deref(), Some("10.99.0.7"));
    }
}
