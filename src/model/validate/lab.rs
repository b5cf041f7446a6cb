//! Rules on `spec.lab`: the lab subnet, each host (name, address) and the processes it
//! runs (argv, environment, user, readiness, files), the extra networks hosts attach to,
//! and each host's routes.

use super::checks::check_check;
use super::common::{check_argv, check_user};
use super::values::{is_name, mask, parse_cidr};
use super::V;
use crate::model::diag::FieldPath;
use crate::model::local::{LabHost, LabNetwork, LabProcess, LabSpec};
use crate::model::spec::list_limit;
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// `spec.lab`: the subnet, the hosts, then the networks and routes.
pub(super) fn check_lab(v: &mut V, sp: &FieldPath, lab: &LabSpec) {
    let lp = sp.key("lab");
    let subnet = lab.subnet.as_deref().unwrap_or("10.77.0.0/24");
    let net = match parse_cidr(subnet) {
        Some((a, 24)) if a.octets()[3] == 0 => Some(a),
        _ => {
            v.err(
                lp.key("subnet"),
                format!("{subnet:?} must be an IPv4 /24 such as 10.77.0.0/24"),
            );
            None
        }
    };
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    if lab.hosts.is_empty() {
        v.err(lp.key("hosts"), "a lab needs at least one host");
    }
    for (i, h) in lab.hosts.iter().enumerate() {
        let hp = lp.key("hosts").index(i);
        check_host(v, &hp, h, (subnet, net), &mut names, &mut addrs);
    }
    let most = list_limit("lab.hosts");
    if lab.hosts.len() > most {
        v.err(lp.key("hosts"), format!("at most {most} hosts"));
    }
    let most = list_limit("lab.hosts[].processes");
    for (i, h) in lab.hosts.iter().enumerate() {
        if h.processes.len() > most {
            v.err(
                lp.key("hosts").index(i).key("processes"),
                format!("at most {most} processes"),
            );
        }
    }
    check_networks(v, &lp, lab, &mut addrs);
}

/// One host: its name, its address in the lab subnet (`subnet` as written, and its network
/// address when valid), then its processes. `names` and `addrs` are those seen so far.
fn check_host<'a>(
    v: &mut V,
    hp: &FieldPath,
    h: &'a LabHost,
    (subnet, net): (&str, Option<Ipv4Addr>),
    names: &mut HashSet<&'a str>,
    addrs: &mut HashSet<Ipv4Addr>,
) {
    if !is_name(&h.name, 12) {
        v.err(
            hp.key("name"),
            format!(
                "host name {:?} must be 1-12 lowercase letters, digits and '-'",
                h.name
            ),
        );
    }
    if !names.insert(h.name.as_str()) {
        v.err(hp.key("name"), format!("duplicate host name {:?}", h.name));
    }
    if let Some(a) = &h.address {
        match a.parse::<Ipv4Addr>() {
            Ok(ip) => {
                let o = ip.octets();
                if let Some(n) = net {
                    if o[..3] != n.octets()[..3] || o[3] < 2 || o[3] == 255 {
                        v.err(
                            hp.key("address"),
                            format!("{a} is not a usable host address in {subnet} (.2 to .254)"),
                        );
                    }
                }
                if !addrs.insert(ip) {
                    v.err(hp.key("address"), format!("address {a} is used twice"));
                }
            }
            Err(_) => v.err(hp.key("address"), format!("{a:?} is not an IPv4 address")),
        }
    }
    let mut pnames = HashSet::new();
    for (j, p) in h.processes.iter().enumerate() {
        check_process(v, &hp.key("processes").index(j), p, &h.name, &mut pnames);
    }
}

/// One process of a host; `pnames` are the host's process names seen so far.
fn check_process<'a>(
    v: &mut V,
    pp: &FieldPath,
    p: &'a LabProcess,
    host: &str,
    pnames: &mut HashSet<&'a str>,
) {
    if !is_name(&p.name, 32) {
        v.err(
            pp.key("name"),
            format!(
                "process name {:?} must be lowercase letters, digits and '-'",
                p.name
            ),
        );
    }
    if !pnames.insert(p.name.as_str()) {
        v.err(
            pp.key("name"),
            format!("duplicate process name {:?} on host {}", p.name, host),
        );
    }
    check_argv(v, pp.key("argv"), &p.argv);
    for k in p.env.keys() {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            v.err(
                pp.key("env").key(k),
                "environment variable names cannot be empty or contain '=' or NUL",
            );
        }
    }
    check_user(v, pp.key("user"), p.user.as_ref());
    if let Some(r) = &p.ready {
        check_check(v, &pp.key("ready"), &r.check_at("192.0.2.1"));
    }
    for f in p.files.keys() {
        if f.is_empty() || f.contains(['/', '\0']) || f == "." || f == ".." {
            v.err(
                pp.key("files").key(f),
                "file names are plain names inside the data directory (no '/')",
            );
        }
    }
}

/// `lab.networks` and each host's `routes`.
fn check_networks(v: &mut V, lp: &FieldPath, lab: &LabSpec, addrs: &mut HashSet<Ipv4Addr>) {
    let hosts: HashSet<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
    let mut names = HashSet::new();
    if lab.networks.len() > 32 {
        v.err(lp.key("networks"), "at most 32 networks");
    }
    for (k, n) in lab.networks.iter().enumerate() {
        let np = lp.key("networks").index(k);
        check_network(v, &np, n, &hosts, &mut names, addrs);
    }
    check_routes(v, lp, lab);
}

/// One network: its name, its subnet, and the hosts attached with their addresses.
fn check_network<'a>(
    v: &mut V,
    np: &FieldPath,
    n: &'a LabNetwork,
    hosts: &HashSet<&str>,
    names: &mut HashSet<&'a str>,
    addrs: &mut HashSet<Ipv4Addr>,
) {
    let ok_name = !n.name.is_empty()
        && n.name.len() <= 8
        && n.name.starts_with(|c: char| c.is_ascii_lowercase())
        && n.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok_name || n.name == "lo" || n.name == "eth0" {
        v.err(
            np.key("name"),
            format!("network name {:?} must be 1-8 lowercase letters and digits, starting with a letter (not lo or eth0)", n.name),
        );
    }
    if !names.insert(n.name.as_str()) {
        v.err(
            np.key("name"),
            format!("duplicate network name {:?}", n.name),
        );
    }
    let net = match parse_cidr(&n.subnet) {
        Some((a, len)) if (8..=30).contains(&len) && u32::from(a) & !mask(len) == 0 => {
            Some((a, len))
        }
        _ => {
            v.err(
                np.key("subnet"),
                format!("{:?} must be an IPv4 prefix such as 10.78.1.0/24 (length 8 to 30, no host bits)", n.subnet),
            );
            None
        }
    };
    if n.attach.is_empty() {
        v.err(
            np.key("attach"),
            "a network needs at least one attached host",
        );
    }
    for (host, addr) in &n.attach {
        let ap = np.key("attach").key(host);
        if !hosts.contains(host.as_str()) {
            v.err(ap.clone(), format!("no lab host named {host:?}"));
        }
        match addr.parse::<Ipv4Addr>() {
            Ok(ip) => {
                if let Some((a, len)) = net {
                    let host_bits = u32::from(ip) & !mask(len);
                    if u32::from(ip) & mask(len) != u32::from(a)
                        || host_bits == 0
                        || host_bits == !mask(len)
                    {
                        v.err(
                            ap.clone(),
                            format!("{addr} is not a host address in {}", n.subnet),
                        );
                    }
                }
                if !addrs.insert(ip) {
                    v.err(ap, format!("address {addr} is used twice"));
                }
            }
            Err(_) => v.err(ap, format!("{addr:?} is not an IPv4 address")),
        }
    }
}

/// Each host's `routes`: a CIDR (or `default`) via an IPv4 address, one default at most.
fn check_routes(v: &mut V, lp: &FieldPath, lab: &LabSpec) {
    for (i, h) in lab.hosts.iter().enumerate() {
        for (j, r) in h.routes.iter().enumerate() {
            let rp = lp.key("hosts").index(i).key("routes").index(j);
            if r.to != "default" && parse_cidr(&r.to).is_none() {
                v.err(
                    rp.key("to"),
                    format!(
                        "{:?} must be an IPv4 CIDR such as 10.99.0.0/24, or default",
                        r.to
                    ),
                );
            }
            if r.via.parse::<Ipv4Addr>().is_err() {
                v.err(rp.key("via"), format!("{:?} is not an IPv4 address", r.via));
            }
        }
        if h.routes.iter().filter(|r| r.to == "default").count() > 1 {
            v.err(
                lp.key("hosts").index(i).key("routes"),
                "at most one default route",
            );
        }
    }
}
