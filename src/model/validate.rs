//! Semantic validation of a parsed experiment. Every rule names the field it is about;
//! all problems are collected, not only the first. Nothing here touches the system.

use super::parse::{Diagnostic, FieldPath};
use super::quantity::Duration;
use super::spec::*;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

struct V {
    out: Vec<Diagnostic>,
}

impl V {
    fn err(&mut self, path: FieldPath, msg: impl Into<String>) {
        self.out.push(Diagnostic {
            path,
            message: msg.into(),
            location: None,
        });
    }
}

fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Signals accepted by `process-kill`, by name.
pub fn parse_signal(s: &str) -> Option<i32> {
    let n = s.strip_prefix("SIG").unwrap_or(s);
    Some(match n {
        "KILL" => libc::SIGKILL,
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "ABRT" => libc::SIGABRT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "SEGV" => libc::SIGSEGV,
        _ => return None,
    })
}

/// Parse `a.b.c.d/len` (IPv4 only for now).
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = a.parse().ok()?;
    let len: u8 = l.parse().ok()?;
    (len <= 32).then_some((addr, len))
}

/// Split `http://host[:port]/path` into (host, port, path).
pub fn parse_http_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL (https is not supported yet)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url:?} has an invalid port"))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!("{url:?} is not a valid URL"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

fn check_argv(v: &mut V, path: FieldPath, argv: &[String]) {
    if argv.is_empty() || argv[0].is_empty() {
        v.err(path, "must name a program: argv cannot be empty");
        return;
    }
    for (i, a) in argv.iter().enumerate() {
        if a.contains('\0') {
            v.err(path.index(i), "contains a NUL byte");
        }
    }
}

/// A plain SQL identifier: lowercase letters, digits and '_', not starting with a digit.
fn sql_identifier(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 63
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !t.as_bytes()[0].is_ascii_digit()
}

fn check_paths(v: &mut V, path: FieldPath, paths: &[String]) {
    if paths.is_empty() {
        v.err(path.clone(), "needs at least one path");
    }
    for (i, p) in paths.iter().enumerate() {
        // `{data:<host>}/...` is a lab host's data directory (absolute once resolved).
        let bad = !(p.starts_with('/') || p.starts_with("{data:"))
            || p.contains('\0')
            || p.split('/').any(|c| c == ".." || c == ".")
            || p.trim_end_matches('/').is_empty();
        if bad {
            v.err(
                path.index(i),
                format!("{p:?} must be an absolute path (or start with {{data:<host>}}) without '.' or '..'"),
            );
        }
    }
}

fn check_check(v: &mut V, path: &FieldPath, c: &Check) {
    let n = [c.http.is_some(), c.tcp.is_some(), c.command.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if n != 1 {
        v.err(
            path.clone(),
            format!("needs exactly one of `http`, `tcp` or `command` (found {n})"),
        );
    }
    if let Some(h) = &c.http {
        if let Err(e) = parse_http_url(&h.url) {
            v.err(path.key("http").key("url"), e);
        }
        for (i, s) in h.status.iter().enumerate() {
            if !(100..=599).contains(s) {
                v.err(
                    path.key("http").key("status").index(i),
                    format!("{s} is not an HTTP status code"),
                );
            }
        }
    }
    if let Some(t) = &c.tcp {
        if t.address.parse::<SocketAddr>().is_err() {
            v.err(
                path.key("tcp").key("address"),
                format!("{:?} is not an ip:port address", t.address),
            );
        }
    }
    if let Some(cmd) = &c.command {
        check_argv(v, path.key("command").key("argv"), &cmd.argv);
    }
}

/// A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 characters (alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).
pub fn label_key(k: &str) -> bool {
    let (prefix, name) = k.rsplit_once('/').map_or((None, k), |(p, n)| (Some(p), n));
    let prefix_ok = prefix
        .is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(|l| is_name(l, 63)));
    prefix_ok && !name.is_empty() && label_value(name)
}

/// A Kubernetes label value: empty, or at most 63 characters as in [`label_key`]'s name.
pub fn label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
}

/// A share of packets: above 0, at most 100%.
fn check_share(v: &mut V, path: FieldPath, p: crate::model::quantity::Percent) {
    if p.0 <= 0.0 || p.0 > 100.0 {
        v.err(path, "must be above 0% and at most 100%");
    }
}

fn check_cidrs(v: &mut V, path: FieldPath, cidrs: &[String]) {
    for (j, c) in cidrs.iter().enumerate() {
        if parse_cidr(c).is_none() {
            v.err(
                path.index(j),
                format!("{c:?} is not an IPv4 CIDR such as 10.0.0.0/8"),
            );
        }
    }
}

/// Route prefixes: at least one, each a CIDR without host bits.
fn check_prefixes(v: &mut V, path: FieldPath, prefixes: &[String]) {
    if prefixes.is_empty() {
        v.err(path.clone(), "needs at least one prefix");
    }
    for (j, c) in prefixes.iter().enumerate() {
        match parse_cidr(c) {
            Some((a, len)) if u32::from(a) & !mask(len) == 0 && c.contains('/') => {}
            _ => v.err(
                path.index(j),
                format!("{c:?} is not an IPv4 prefix such as 10.99.0.0/25 (no host bits set)"),
            ),
        }
    }
}

/// Interface names as the kernel allows them.
fn check_ifnames(v: &mut V, path: FieldPath, names: &[String]) {
    for (j, n) in names.iter().enumerate() {
        if n.is_empty()
            || n.len() > 15
            || n.starts_with('-')
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            v.err(path.index(j), format!("{n:?} is not an interface name"));
        }
    }
}

/// Targets whose addresses a fault needs: they must be lab targets, and not the fault's own.
fn check_lab_targets(
    v: &mut V,
    path: FieldPath,
    names: &[String],
    spec: &ExperimentSpec,
    own: &str,
) {
    for (j, p) in names.iter().enumerate() {
        match spec.targets.get(p) {
            None => v.err(path.index(j), format!("no target named {p:?}")),
            Some(t) if t.local.lab.is_none() && t.local.members.is_empty() => v.err(
                path.index(j),
                format!(
                    "{p:?} must be a lab target (its addresses must be known); use cidrs otherwise"
                ),
            ),
            _ => {}
        }
        if p == own {
            v.err(path.index(j), "a fault's own target cannot be listed here");
        }
    }
}

/// A packet fault's filter.
fn check_filter(
    v: &mut V,
    fp: &FieldPath,
    f: &PacketFilter,
    spec: &ExperimentSpec,
    egress_ok: bool,
) {
    let p = fp.key("filter");
    check_cidrs(v, p.key("cidrs"), &f.cidrs);
    check_lab_targets(v, p.key("peers"), &f.peers, spec, "");
    if f.port.is_some() && !matches!(f.protocol, Some(Protocol::Tcp | Protocol::Udp)) {
        v.err(
            p.key("port"),
            "a port needs `protocol: tcp` or `protocol: udp`",
        );
    }
    if f.port == Some(0) {
        v.err(p.key("port"), "must be 1-65535");
    }
    if !egress_ok && f.direction == Some(PacketDirection::Egress) {
        v.err(
            p.key("direction"),
            "holding a sender's own packets throttles TCP instead of delaying it: apply this to the receiver (ingress) or a forwarding hop (forward)",
        );
    }
}

/// `lab.networks` and each host's `routes`.
fn check_networks(
    v: &mut V,
    lp: &FieldPath,
    lab: &crate::model::local::LabSpec,
    addrs: &mut HashSet<Ipv4Addr>,
) {
    let hosts: HashSet<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
    let mut names = HashSet::new();
    if lab.networks.len() > 32 {
        v.err(lp.key("networks"), "at most 32 networks");
    }
    for (k, n) in lab.networks.iter().enumerate() {
        let np = lp.key("networks").index(k);
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

/// The netmask of a prefix length.
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

fn unique<'a>(v: &mut V, base: FieldPath, names: impl Iterator<Item = &'a str>, what: &str) {
    let mut seen = HashSet::new();
    for (i, n) in names.enumerate() {
        if what == "claim" {
            if n.trim().is_empty() || n.len() > 200 || n.chars().any(char::is_control) {
                v.err(
                    base.index(i).key("name"),
                    "claim names are 1-200 printable characters",
                );
            }
        } else if !is_name(n, 63) {
            v.err(
                base.index(i).key("name"),
                format!("{what} name {n:?} must be lowercase letters, digits and '-'"),
            );
        }
        if !seen.insert(n) {
            v.err(
                base.index(i).key("name"),
                format!("duplicate {what} name {n:?}"),
            );
        }
    }
}

/// Validate an experiment. Returns every problem found; empty means valid.
pub fn validate(exp: &Experiment) -> Vec<Diagnostic> {
    let mut v = V { out: Vec::new() };
    let root = FieldPath::root();
    if exp.api_version != API_VERSION {
        v.err(
            root.key("apiVersion"),
            format!("must be {API_VERSION:?}, found {:?}", exp.api_version),
        );
    }
    if exp.kind != KIND {
        v.err(
            root.key("kind"),
            format!("must be {KIND:?}, found {:?}", exp.kind),
        );
    }
    if !is_name(&exp.metadata.name, 63) {
        v.err(
            root.key("metadata").key("name"),
            "must be 1-63 lowercase letters, digits and '-'",
        );
    }
    let spec = &exp.spec;
    let sp = root.key("spec");

    // Lab.
    let mut lab_hosts: Vec<(&str, Vec<&str>)> = Vec::new();
    if let Some(lab) = &spec.lab {
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
                                    format!(
                                        "{a} is not a usable host address in {subnet} (.2 to .254)"
                                    ),
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
                let pp = hp.key("processes").index(j);
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
                        format!("duplicate process name {:?} on host {}", p.name, h.name),
                    );
                }
                check_argv(&mut v, pp.key("argv"), &p.argv);
                for k in p.env.keys() {
                    if k.is_empty() || k.contains('=') || k.contains('\0') {
                        v.err(
                            pp.key("env").key(k),
                            "environment variable names cannot be empty or contain '=' or NUL",
                        );
                    }
                }
                if let Some(u) = &p.user {
                    if u.is_empty() || u.contains(['/', '\0', ':']) {
                        v.err(pp.key("user"), format!("{u:?} is not a user name"));
                    }
                }
                if let Some(r) = &p.ready {
                    check_check(&mut v, &pp.key("ready"), &r.check_at("192.0.2.1"));
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
            lab_hosts.push((
                h.name.as_str(),
                h.processes.iter().map(|p| p.name.as_str()).collect(),
            ));
        }
        if lab.hosts.len() > 200 {
            v.err(lp.key("hosts"), "at most 200 hosts");
        }
        check_networks(&mut v, &lp, lab, &mut addrs);
    }

    // Targets.
    for (name, t) in &spec.targets {
        let tp = sp.key("targets").key(name);
        if !is_name(name, 63) {
            v.err(
                tp.clone(),
                format!("target name {name:?} must be lowercase letters, digits and '-'"),
            );
        }
        let l = &t.local;
        let n = [
            t.pods.is_some(),
            l.lab.is_some(),
            !l.members.is_empty(),
            l.process.is_some(),
            l.cgroup.is_some(),
            l.netns.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            v.err(
                tp.clone(),
                format!("needs exactly one of `pods`, `lab`, `members`, `process`, `cgroup` or `netns` (found {n})"),
            );
        }
        if let Some(p) = &t.pods {
            let pp = tp.key("pods");
            if !is_name(&p.namespace, 63) {
                v.err(
                    pp.key("namespace"),
                    format!("{:?} is not a namespace name", p.namespace),
                );
            }
            for (k, val) in &p.match_labels {
                if !label_key(k) {
                    v.err(
                        pp.key("matchLabels").key(k),
                        "is not a Kubernetes label key",
                    );
                }
                if !label_value(val) {
                    v.err(
                        pp.key("matchLabels").key(k),
                        format!("{val:?} is not a Kubernetes label value"),
                    );
                }
            }
            for (j, c) in p.containers.iter().enumerate() {
                if !is_name(c, 63) {
                    v.err(
                        pp.key("containers").index(j),
                        format!("{c:?} is not a container name"),
                    );
                }
            }
            if spec.lab.is_some() {
                v.err(pp, "a `pods` target runs on a cluster; an experiment with a `lab` runs on this machine");
            }
        }
        let mut refs: Vec<(FieldPath, &String)> = Vec::new();
        if let Some(r) = &l.lab {
            refs.push((tp.key("lab"), r));
        }
        for (j, r) in l.members.iter().enumerate() {
            refs.push((tp.key("members").index(j), r));
        }
        let mut seen_refs = HashSet::new();
        for (rp, r) in refs {
            if !seen_refs.insert(r.as_str()) {
                v.err(rp.clone(), format!("{r:?} is listed twice"));
            }
            let (host, proc_) = r
                .split_once('/')
                .map_or((r.as_str(), None), |(h, p)| (h, Some(p)));
            match lab_hosts.iter().find(|(h, _)| *h == host) {
                None if spec.lab.is_none() => v.err(
                    rp,
                    format!("refers to lab host {host:?} but the experiment has no `lab`"),
                ),
                None => v.err(rp, format!("no lab host named {host:?}")),
                Some((_, procs)) => {
                    if let Some(p) = proc_ {
                        if !procs.contains(&p) {
                            v.err(rp, format!("lab host {host:?} has no process named {p:?}"));
                        }
                    } else if procs.is_empty() {
                        // A host without processes is still a network namespace target.
                    }
                }
            }
        }
        if let Some(p) = &l.process {
            let pp = tp.key("process");
            let n = [
                p.pid.is_some(),
                p.pidfile.is_some(),
                p.name.is_some(),
                p.cmdline.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                v.err(
                    pp.clone(),
                    format!(
                        "needs exactly one of `pid`, `pidfile`, `name` or `cmdline` (found {n})"
                    ),
                );
            }
            if p.pid == Some(0) || p.pid == Some(1) {
                v.err(pp.key("pid"), "refusing to target pid 0 or 1");
            }
            if let Some(f) = &p.pidfile {
                if !f.starts_with('/') {
                    v.err(pp.key("pidfile"), "must be an absolute path");
                }
            }
            if let Some(nm) = &p.name {
                if nm.is_empty() || nm.len() > 15 {
                    v.err(
                        pp.key("name"),
                        "process names (comm) are 1 to 15 characters",
                    );
                }
            }
            if let Some(re) = &p.cmdline {
                if let Err(e) = regex::Regex::new(re) {
                    v.err(
                        pp.key("cmdline"),
                        format!("not a valid regular expression: {e}"),
                    );
                }
            }
        }
        if let Some(c) = &l.cgroup {
            if !c.starts_with('/') || c.split('/').any(|s| s == "..") {
                v.err(
                    tp.key("cgroup"),
                    "must be an absolute cgroup path without '..'",
                );
            }
        }
        if let Some(ns) = &l.netns {
            if ns.is_empty() || ns.contains(['/', '\0']) || ns == "." || ns == ".." {
                v.err(
                    tp.key("netns"),
                    format!("{ns:?} is not a network namespace name"),
                );
            }
        }
        if let Some(sel) = t.select {
            if matches!(sel, Select::Primary | Select::Replica) && t.role.is_none() {
                v.err(
                    tp.key("select"),
                    "selecting the primary or a replica needs `role` (how to ask each member)",
                );
            }
            if l.members.is_empty() && l.lab.is_none() {
                v.err(
                    tp.key("select"),
                    "role-aware selection needs lab `members` (their addresses are probed)",
                );
            }
        }
        if let Some(r) = &t.role {
            let rp = tp.key("role");
            if r.probes_set() != 1 {
                v.err(
                    rp.clone(),
                    format!(
                        "needs exactly one of `redis`, `postgres`, `etcd` or `command` (found {})",
                        r.probes_set()
                    ),
                );
            }
            if let Some(c) = &r.command {
                check_argv(&mut v, rp.key("command").key("argv"), &c.argv);
            }
            for (k, port) in [
                ("redis", r.redis.as_ref().map(|p| p.port)),
                ("etcd", r.etcd.as_ref().map(|p| p.port)),
                ("postgres", r.postgres.as_ref().map(|p| p.port)),
            ] {
                if port == Some(0) {
                    v.err(rp.key(k).key("port"), "must be a port number above 0");
                }
            }
            if t.select.is_none() {
                v.err(tp.key("select"), "`role` is only used with `select`");
            }
        }
        if let Some(pick) = &t.pick {
            let pp = tp.key("pick");
            match pick.mode {
                PickMode::Count if pick.count.unwrap_or(0) == 0 => {
                    v.err(pp.key("count"), "mode `count` needs a count of at least 1")
                }
                PickMode::Percent | PickMode::UpToPercent
                    if pick.percent.is_none_or(|p| p.0 <= 0.0) =>
                {
                    v.err(pp.key("percent"), "this mode needs a percent above 0%")
                }
                _ => {}
            }
        }
    }

    // Probes.
    unique(
        &mut v,
        sp.key("probes"),
        spec.probes.iter().map(|p| p.name.as_str()),
        "probe",
    );
    for (i, p) in spec.probes.iter().enumerate() {
        let pp = sp.key("probes").index(i);
        check_check(&mut v, &pp, &p.check);
        if let Some(iv) = p.interval {
            if iv.as_std() < std::time::Duration::from_millis(10) {
                v.err(pp.key("interval"), "must be at least 10ms");
            }
        }
        if let Some(t) = p.timeout {
            if t.as_std().is_zero() {
                v.err(pp.key("timeout"), "must be above 0");
            }
        }
        if let Some(from) = &p.from {
            if !lab_hosts.iter().any(|(h, _)| h == from) {
                v.err(pp.key("from"), format!("no lab host named {from:?}"));
            }
        }
    }
    let probe_exists = |n: &str| spec.probes.iter().any(|p| p.name == n);

    // Faults.
    unique(
        &mut v,
        sp.key("faults"),
        spec.faults.iter().map(|f| f.name.as_str()),
        "fault",
    );
    let phase = spec.fault_phase();
    for (i, f) in spec.faults.iter().enumerate() {
        let fp = sp.key("faults").index(i);
        if !spec.targets.contains_key(&f.target) {
            v.err(
                fp.key("target"),
                format!("no target named {:?} in spec.targets", f.target),
            );
        }
        if let Some(d) = f.duration {
            if d.as_std().is_zero() {
                v.err(fp.key("duration"), "must be above 0");
            }
        } else if phase <= f.at.as_std() {
            v.err(fp.key("duration"), "the fault has no duration and the fault phase ends before it starts: set this, or spec.duration");
        }
        let end = f.duration.map_or(phase, |d| f.at.as_std() + d.as_std());
        if end > spec.max_duration() {
            v.err(
                fp.key("at"),
                format!(
                    "the fault would end after guardrails.maxDuration ({})",
                    Duration(spec.max_duration())
                ),
            );
        }
        match &f.action {
            FaultAction::ProcessKill(k) => {
                if let Some(s) = &k.signal {
                    if parse_signal(s).is_none() {
                        v.err(
                            fp.key("signal"),
                            format!("unknown signal {s:?} (use e.g. SIGKILL, SIGTERM)"),
                        );
                    }
                }
            }
            FaultAction::ProcessPause(_) => {}
            FaultAction::NetworkPartition(n) => {
                for (j, p) in n.peers.iter().enumerate() {
                    match spec.targets.get(p) {
                        None => v.err(fp.key("peers").index(j), format!("no target named {p:?}")),
                        Some(t) if t.local.lab.is_none() && t.local.members.is_empty() => v.err(fp.key("peers").index(j), format!("peer {p:?} must be a lab target (its addresses must be known); use cidrs otherwise")),
                        _ => {}
                    }
                    if p == &f.target {
                        v.err(
                            fp.key("peers").index(j),
                            "a target cannot be partitioned from itself",
                        );
                    }
                }
                for (j, c) in n.cidrs.iter().enumerate() {
                    if parse_cidr(c).is_none() {
                        v.err(
                            fp.key("cidrs").index(j),
                            format!("{c:?} is not an IPv4 CIDR such as 10.0.0.0/8"),
                        );
                    }
                }
            }
            FaultAction::MemoryLeak(m) => {
                if m.rate.bytes_per_second < 4096.0 {
                    v.err(
                        fp.key("rate"),
                        "must be at least 4Ki/s (one page per second)",
                    );
                }
                if m.limit.is_some_and(|l| l.0 > 64 << 30) {
                    v.err(fp.key("limit"), "must be at most 64Gi");
                }
            }
            FaultAction::CpuBurn(c) => {
                if let Some(w) = c.workers {
                    if !(1..=256).contains(&w) {
                        v.err(fp.key("workers"), "must be between 1 and 256");
                    }
                }
            }
            FaultAction::DataWipe(d) => {
                check_paths(&mut v, fp.key("paths"), &d.paths);
                if d.journal_copy == Some(false) && d.restore != Some(false) {
                    v.err(
                        fp.key("journalCopy"),
                        "without a journal copy there is nothing to restore from: set `restore: false` too",
                    );
                }
            }
            FaultAction::DataCorrupt(d) => {
                check_paths(&mut v, fp.key("paths"), &d.paths);
                if d.length.is_some_and(|l| l.0 == 0) {
                    v.err(fp.key("length"), "must be at least 1 byte");
                }
                if let Some(c) = d.count {
                    if !(1..=10_000).contains(&c) {
                        v.err(fp.key("count"), "must be between 1 and 10000");
                    }
                }
            }
            FaultAction::LoadSurge(l) => {
                if l.rate.per_second > 2000.0 || l.rate.per_second <= 0.0 {
                    v.err(fp.key("rate"), "must be above 0 and at most 2000/s");
                }
                if l.port == 0 {
                    v.err(fp.key("port"), "must be a TCP port (1-65535)");
                }
                if let Some(p) = &l.path {
                    if !p.starts_with('/')
                        || p.contains(|c: char| c.is_whitespace() || c.is_control())
                    {
                        v.err(
                            fp.key("path"),
                            "must start with '/' and contain no spaces or control characters",
                        );
                    }
                }
                if let Some(r) = &l.retry {
                    if !(1..=10).contains(&r.attempts) {
                        v.err(fp.key("retry").key("attempts"), "must be between 1 and 10");
                    }
                }
            }
            FaultAction::NetworkDelay(d) => {
                check_filter(&mut v, &fp, &d.filter, spec, false);
                if d.delay.as_std().is_zero()
                    || d.delay.as_std() > std::time::Duration::from_secs(10)
                {
                    v.err(fp.key("delay"), "must be above 0 and at most 10s");
                }
                if d.jitter.is_some_and(|j| j > d.delay) {
                    v.err(fp.key("jitter"), "must not be more than `delay`");
                }
                if d.correlation.is_some_and(|c| c.0 > 100.0) {
                    v.err(fp.key("correlation"), "must be at most 100%");
                }
            }
            FaultAction::NetworkReorder(r) => {
                check_filter(&mut v, &fp, &r.filter, spec, false);
                check_share(&mut v, fp.key("reorder"), r.reorder);
                if r.delay.as_std().is_zero()
                    || r.delay.as_std() > std::time::Duration::from_secs(10)
                {
                    v.err(fp.key("delay"), "must be above 0 and at most 10s");
                }
            }
            FaultAction::NetworkCorrupt(c) => {
                check_filter(&mut v, &fp, &c.filter, spec, false);
                check_share(&mut v, fp.key("corrupt"), c.corrupt);
            }
            FaultAction::NetworkLoss(l) => {
                check_filter(&mut v, &fp, &l.filter, spec, true);
                check_share(&mut v, fp.key("loss"), l.loss);
            }
            FaultAction::NetworkDuplicate(d) => {
                check_filter(&mut v, &fp, &d.filter, spec, true);
                check_share(&mut v, fp.key("duplicate"), d.duplicate);
                if d.filter
                    .direction
                    .is_some_and(|x| x != PacketDirection::Egress)
                {
                    v.err(
                        fp.key("filter").key("direction"),
                        "duplicates can only be sent out: use egress (the default)",
                    );
                }
            }
            FaultAction::NetworkBandwidth(b) => {
                check_ifnames(&mut v, fp.key("interfaces"), &b.interfaces);
                if b.latency.is_some_and(|l| l.as_std().is_zero()) {
                    v.err(fp.key("latency"), "must be above 0");
                }
            }
            FaultAction::LinkDown(l) => check_ifnames(&mut v, fp.key("interfaces"), &l.interfaces),
            FaultAction::RouteBlackhole(r) => {
                check_prefixes(&mut v, fp.key("prefixes"), &r.prefixes)
            }
            FaultAction::RouteHijack(r) => {
                check_prefixes(&mut v, fp.key("prefixes"), &r.prefixes);
                if r.via.parse::<Ipv4Addr>().is_err() {
                    v.err(fp.key("via"), format!("{:?} is not an IPv4 address", r.via));
                }
            }
            FaultAction::RouteFlap(r) => {
                check_prefixes(&mut v, fp.key("prefixes"), &r.prefixes);
                let period = r
                    .period
                    .map_or(std::time::Duration::from_secs(1), |p| p.as_std());
                if period < std::time::Duration::from_millis(100) {
                    v.err(fp.key("period"), "must be at least 100ms");
                }
                if r.jitter.is_some_and(|j| j.as_std() >= period) {
                    v.err(fp.key("jitter"), "must be less than `period`");
                }
            }
            FaultAction::SiteFailure(s) => {
                check_cidrs(&mut v, fp.key("allow"), &s.allow);
                check_lab_targets(
                    &mut v,
                    fp.key("allowTargets"),
                    &s.allow_targets,
                    spec,
                    &f.target,
                );
            }
            FaultAction::BgpSessionDrop(b) => {
                check_cidrs(&mut v, fp.key("cidrs"), &b.cidrs);
                check_lab_targets(&mut v, fp.key("peers"), &b.peers, spec, &f.target);
            }
            FaultAction::BgpAnnounce(b) => {
                if !lab_hosts.iter().any(|(h, _)| *h == b.from) {
                    v.err(
                        fp.key("from"),
                        format!(
                            "no lab host named {:?} (the speaker runs in a lab host's namespace)",
                            b.from
                        ),
                    );
                }
                if b.neighbor.parse::<Ipv4Addr>().is_err() {
                    v.err(
                        fp.key("neighbor"),
                        format!("{:?} is not an IPv4 address", b.neighbor),
                    );
                }
                if let Some(n) = &b.next_hop {
                    if n.parse::<Ipv4Addr>().is_err() {
                        v.err(fp.key("nextHop"), format!("{n:?} is not an IPv4 address"));
                    }
                }
                for (key, asn) in [("neighborAs", b.neighbor_as), ("localAs", b.local_as)] {
                    if asn == 0 || asn == 23456 || asn == u32::MAX {
                        v.err(fp.key(key), format!("{asn} is not a usable AS number"));
                    }
                }
                if b.local_as == b.neighbor_as {
                    v.err(fp.key("localAs"), "the speaker opens an external (eBGP) session: use an AS other than the router's");
                }
                check_prefixes(&mut v, fp.key("prefixes"), &b.prefixes);
                if b.as_path.len() > 32 {
                    v.err(fp.key("asPath"), "at most 32 AS numbers");
                }
                let period = b
                    .period
                    .map_or(std::time::Duration::from_secs(1), |p| p.as_std());
                if period < std::time::Duration::from_millis(100) {
                    v.err(fp.key("period"), "must be at least 100ms");
                }
                if b.jitter.is_some_and(|j| j.as_std() >= period) {
                    v.err(fp.key("jitter"), "must be less than `period`");
                }
            }
            FaultAction::DnsFault(d) => {
                if d.names.is_empty() {
                    v.err(fp.key("names"), "needs at least one name (or \"*\")");
                }
                for (j, n) in d.names.iter().enumerate() {
                    let name = n.trim_end_matches('.');
                    let ok = name == "*"
                        || (!name.is_empty()
                            && name.len() <= 253
                            && name.split('.').all(|l| {
                                !l.is_empty()
                                    && l.len() <= 63
                                    && l.chars()
                                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                            }));
                    if !ok {
                        v.err(
                            fp.key("names").index(j),
                            format!("{n:?} is not a DNS name (or \"*\")"),
                        );
                    }
                }
                match (&d.answer, d.mode) {
                    (Some(a), _) if a.parse::<Ipv4Addr>().is_err() => {
                        v.err(fp.key("answer"), format!("{a:?} is not an IPv4 address"))
                    }
                    (None, DnsMode::Wrong) => {
                        v.err(fp.key("answer"), "`wrong` needs the address to answer with")
                    }
                    _ => {}
                }
                match d.upstream.parse::<SocketAddr>() {
                    Ok(SocketAddr::V4(a)) if a.port() != 0 && !a.ip().is_unspecified() => {}
                    _ => v.err(
                        fp.key("upstream"),
                        format!(
                            "{:?} must be the real resolver as ip:port, e.g. 10.0.0.53:53",
                            d.upstream
                        ),
                    ),
                }
                if d.probability.is_some_and(|p| p.0 <= 0.0) {
                    v.err(fp.key("probability"), "must be above 0%");
                }
            }
            FaultAction::IoThrottle(t) => {
                check_paths(&mut v, fp.key("path"), std::slice::from_ref(&t.path));
                if t.path.contains(['*', '?']) {
                    v.err(
                        fp.key("path"),
                        "must name one file or directory (no wildcards)",
                    );
                }
                if t.read_bps.is_none()
                    && t.write_bps.is_none()
                    && t.read_iops.is_none()
                    && t.write_iops.is_none()
                {
                    v.err(
                        fp.clone(),
                        "needs at least one of `readBps`, `writeBps`, `readIops`, `writeIops`",
                    );
                }
            }
            FaultAction::StorageStall(s) => check_paths(&mut v, fp.key("paths"), &s.paths),
            FaultAction::IoLatency(l) => {
                check_paths(&mut v, fp.key("paths"), &l.paths);
                if l.delay.0.is_zero() {
                    v.err(fp.key("delay"), "must be more than 0");
                }
                if l.delay.0 > std::time::Duration::from_secs(60) {
                    v.err(
                        fp.key("delay"),
                        "must be at most 60s (use storage-stall to hold operations)",
                    );
                }
                if let Some(j) = l.jitter {
                    if j.0 > l.delay.0 {
                        v.err(fp.key("jitter"), "must not exceed `delay`");
                    }
                }
            }
            FaultAction::IoError(e) => {
                check_paths(&mut v, fp.key("paths"), &e.paths);
                if crate::ptrace::errno_by_name(&e.errno).is_none() {
                    v.err(
                        fp.key("errno"),
                        format!(
                            "unknown errno {:?}; one of {}",
                            e.errno,
                            crate::ptrace::ERRNOS
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                if e.probability.is_some_and(|p| p.0 <= 0.0) {
                    v.err(fp.key("probability"), "must be more than 0%");
                }
            }
            FaultAction::ConfigCorrupt(c) => {
                check_paths(&mut v, fp.key("path"), std::slice::from_ref(&c.path));
                if c.path.contains(['*', '?']) {
                    v.err(fp.key("path"), "must name one file (no wildcards)");
                }
                let n = [
                    c.set.is_some(),
                    c.delete_line.is_some(),
                    c.replace.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if n != 1 {
                    v.err(
                        fp.clone(),
                        format!(
                            "needs exactly one of `set`, `deleteLine` or `replace` (found {n})"
                        ),
                    );
                }
                if let Some(set) = &c.set {
                    if set.key.trim().is_empty() || set.key.contains('\n') {
                        v.err(
                            fp.key("set").key("key"),
                            "must be a non-empty single-line key",
                        );
                    }
                    if set.value.contains('\n') {
                        v.err(fp.key("set").key("value"), "must be a single line");
                    }
                }
                if let Some(re) = &c.delete_line {
                    if let Err(e) = regex::Regex::new(re) {
                        v.err(
                            fp.key("deleteLine"),
                            format!("not a valid regular expression: {e}"),
                        );
                    }
                }
                if let Some(sig) = &c.reload {
                    if parse_signal(sig).is_none() {
                        v.err(fp.key("reload"), format!("unknown signal {sig:?}"));
                    }
                }
            }
        }
    }

    // Steps.
    unique(
        &mut v,
        sp.key("steps"),
        spec.steps.iter().map(|s| s.name.as_str()),
        "step",
    );
    let lab_proc = |r: &str| {
        r.split_once('/')
            .is_some_and(|(h, p)| lab_hosts.iter().any(|(hh, ps)| *hh == h && ps.contains(&p)))
    };
    for (i, st) in spec.steps.iter().enumerate() {
        let stp = sp.key("steps").index(i);
        if st.actions_set() != 1 {
            v.err(
                stp.clone(),
                format!(
                    "needs exactly one of `argv`, `start` or `stop` (found {})",
                    st.actions_set()
                ),
            );
        }
        if !st.argv.is_empty() {
            check_argv(&mut v, stp.key("argv"), &st.argv);
        }
        for (k, r) in [("start", &st.start), ("stop", &st.stop)] {
            if let Some(r) = r {
                if !lab_proc(r) {
                    v.err(
                        stp.key(k),
                        format!("{r:?} is not a lab process (`host/process`)"),
                    );
                }
            }
        }
        if let Some(from) = &st.from {
            if !lab_hosts.iter().any(|(h, _)| h == from) {
                v.err(stp.key("from"), format!("no lab host named {from:?}"));
            }
        }
        if st.timeout.is_some_and(|t| t.as_std().is_zero()) {
            v.err(stp.key("timeout"), "must be above 0");
        }
        if let Some(u) = &st.user {
            if u.is_empty() || u.contains(['/', '\0', ':']) {
                v.err(stp.key("user"), format!("{u:?} is not a user name"));
            }
        }
        if st.at.as_std() > spec.fault_phase() {
            v.err(
                stp.key("at"),
                "is after the end of the fault phase (set spec.duration)",
            );
        }
    }

    // Workloads.
    unique(
        &mut v,
        sp.key("workloads"),
        spec.workloads.iter().map(|w| w.name.as_str()),
        "workload",
    );
    for (i, w) in spec.workloads.iter().enumerate() {
        let wp = sp.key("workloads").index(i);
        if w.clients_set() != 1 {
            v.err(
                wp.clone(),
                format!(
                    "needs exactly one of `http`, `redis`, `postgres` or `etcd` (found {})",
                    w.clients_set()
                ),
            );
        }
        if w.rate.per_second > 2000.0 {
            v.err(wp.key("rate"), "at most 2000/s per workload");
        }
        if w.endpoints.is_empty() {
            v.err(wp.key("endpoints"), "needs at least one `ip:port`");
        }
        for (key, list) in [
            ("endpoints", &w.endpoints),
            ("readEndpoints", &w.read_endpoints),
        ] {
            for (j, e) in list.iter().enumerate() {
                if e.parse::<SocketAddr>().is_err() {
                    v.err(
                        wp.key(key).index(j),
                        format!("{e:?} is not an ip:port address"),
                    );
                }
            }
        }
        if let Some(from) = &w.from {
            if !lab_hosts.iter().any(|(h, _)| h == from) {
                v.err(wp.key("from"), format!("no lab host named {from:?}"));
            }
        }
        for (k, d) in [
            ("timeout", w.timeout),
            ("connectTimeout", w.connect_timeout),
            ("finalReadDeadline", w.final_read_deadline),
        ] {
            if d.is_some_and(|d| d.as_std().is_zero()) {
                v.err(wp.key(k), "must be above 0");
            }
        }
        if let Some(c) = w.concurrency {
            if !(1..=256).contains(&c) {
                v.err(wp.key("concurrency"), "must be between 1 and 256");
            }
        }
        for (j, ph) in w.profile.iter().enumerate() {
            let pp = wp.key("profile").index(j);
            if ph.rate.per_second > 2000.0 {
                v.err(pp.key("rate"), "at most 2000/s per workload");
            }
            if ph.for_.is_some_and(|f| f.as_std().is_zero()) {
                v.err(pp.key("for"), "must be above 0");
            }
        }
        if let Some(r) = &w.retry {
            if !(1..=10).contains(&r.attempts) {
                v.err(wp.key("retry").key("attempts"), "must be between 1 and 10");
            }
            if w.http.is_none() {
                v.err(
                    wp.key("retry"),
                    "only http workloads retry (a retried write would need the same unique value)",
                );
            }
        }
        if let Some(h) = &w.http {
            if let Some(p) = &h.path {
                if !p.starts_with('/') || p.contains(|c: char| c.is_whitespace() || c.is_control())
                {
                    v.err(
                        wp.key("http").key("path"),
                        "must start with '/' and contain no spaces or control characters",
                    );
                }
            }
        }
        if let Some(r) = &w.redis {
            if let Some(k) = &r.key {
                if k.is_empty() || k.len() > 200 || k.contains(|c: char| c.is_control()) {
                    v.err(
                        wp.key("redis").key("key"),
                        "must be 1-200 printable characters",
                    );
                }
            }
        }
        if let Some(p) = &w.postgres {
            if let Some(t) = &p.table {
                if !sql_identifier(t) {
                    v.err(
                        wp.key("postgres").key("table"),
                        "must be a plain SQL identifier: lowercase letters, digits and '_'",
                    );
                }
            }
        }
        if let Some(d) = &w.delivered_to {
            let dp = wp.key("deliveredTo");
            let n = [d.redis.is_some(), d.postgres.is_some(), d.etcd.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if n != 1 {
                v.err(
                    dp.clone(),
                    format!("needs exactly one of `redis`, `postgres` or `etcd` (found {n})"),
                );
            }
            if d.endpoints.is_empty() {
                v.err(dp.key("endpoints"), "needs at least one `ip:port`");
            }
            for (j, e) in d.endpoints.iter().enumerate() {
                if e.parse::<SocketAddr>().is_err() {
                    v.err(
                        dp.key("endpoints").index(j),
                        format!("{e:?} is not an ip:port address"),
                    );
                }
            }
            if let Some(t) = d.postgres.as_ref().and_then(|p| p.table.as_ref()) {
                if !sql_identifier(t) {
                    v.err(
                        dp.key("postgres").key("table"),
                        "must be a plain SQL identifier: lowercase letters, digits and '_'",
                    );
                }
            }
            if w.http.is_some() {
                v.err(
                    dp,
                    "an http workload's deliveries cannot be tied to its requests",
                );
            }
        }
        if let Some(e) = &w.etcd {
            if let Some(p) = &e.prefix {
                if p.is_empty() || p.contains(|c: char| c.is_control()) {
                    v.err(
                        wp.key("etcd").key("prefix"),
                        "must be printable and not empty",
                    );
                }
            }
        }
    }
    let workload = |n: &str| spec.workloads.iter().find(|w| w.name == n);

    // Watches.
    unique(
        &mut v,
        sp.key("watches"),
        spec.watches.iter().map(|w| w.name.as_str()),
        "watch",
    );
    for (i, w) in spec.watches.iter().enumerate() {
        let wp = sp.key("watches").index(i);
        match &w.haproxy {
            None => v.err(wp, "needs a source: `haproxy`"),
            Some(h) => check_paths(
                &mut v,
                wp.key("haproxy").key("socket"),
                std::slice::from_ref(&h.socket),
            ),
        }
    }

    // Claims.
    unique(
        &mut v,
        sp.key("claims"),
        spec.claims.iter().map(|c| c.name.as_str()),
        "claim",
    );
    for (i, c) in spec.claims.iter().enumerate() {
        let cp = sp.key("claims").index(i);
        let Some(check) = c.check() else {
            v.err(
                cp,
                format!(
                    "needs exactly one of {CLAIM_KINDS} (found {})",
                    c.checks_set()
                ),
            );
            continue;
        };
        let kp = cp.key(check.kind());
        let refs: Vec<(FieldPath, &str)> = match check {
            ClaimCheck::NoAckedWriteLoss(w) => vec![(kp.key("workload"), w.workload.as_str())],
            ClaimCheck::WriteAvailability(w) => vec![(kp.key("workload"), w.workload.as_str())],
            ClaimCheck::RecoveryPoint(w) => vec![(kp.key("workload"), w.workload.as_str())],
            ClaimCheck::EventuallyDelivered(w) => vec![(kp.key("workload"), w.workload.as_str())],
            ClaimCheck::ErrorRate(e) => vec![(kp.key("workload"), e.workload.as_str())],
            ClaimCheck::Latency(l) => l
                .workload
                .iter()
                .map(|w| (kp.key("workload"), w.as_str()))
                .collect(),
            ClaimCheck::SinglePrimary(s) => s
                .workloads
                .iter()
                .enumerate()
                .map(|(j, w)| (kp.key("workloads").index(j), w.as_str()))
                .collect(),
            ClaimCheck::BlastRadius(b) => b
                .workloads
                .iter()
                .enumerate()
                .map(|(j, w)| (kp.key("workloads").index(j), w.as_str()))
                .collect(),
            _ => Vec::new(),
        };
        for (p, w) in &refs {
            if workload(w).is_none() {
                v.err(
                    p.clone(),
                    format!("no workload named {w:?} in spec.workloads"),
                );
            }
        }
        let (kind, window) = match check {
            ClaimCheck::NoAckedWriteLoss(w) => {
                if workload(&w.workload).is_some_and(|w| w.http.is_some()) {
                    v.err(
                        kp.key("workload"),
                        "an http workload has no final read; use a redis, postgres or etcd workload",
                    );
                }
                ("noAckedWriteLoss", None)
            }
            ClaimCheck::WriteAvailability(w) => {
                if w.max_gap.as_std().is_zero() {
                    v.err(kp.key("maxGap"), "must be above 0");
                } else if let Some(wl) = workload(&w.workload) {
                    let period = 1000.0 / wl.rate.per_second;
                    if period * 2.0 > w.max_gap.as_millis_f64() {
                        v.err(
                            kp.key("maxGap"),
                            format!(
                                "workload {} writes every {period:.0}ms: too slowly to measure a gap of {}; raise its rate",
                                wl.name, w.max_gap
                            ),
                        );
                    }
                }
                if spec.faults.is_empty() {
                    v.err(
                        kp.clone(),
                        "a `writeAvailability` claim needs at least one fault",
                    );
                }
                ("writeAvailability", None)
            }
            ClaimCheck::SinglePrimary(s) => {
                if s.workloads.is_empty() {
                    v.err(kp.key("workloads"), "needs at least one workload");
                }
                ("singlePrimary", None)
            }
            ClaimCheck::Detects(d) => {
                if !lab_proc(&d.log) {
                    v.err(
                        kp.key("log"),
                        format!("{:?} is not a lab process (`host/process`)", d.log),
                    );
                }
                if d.contains.trim().is_empty() || d.contains.contains('\n') {
                    v.err(kp.key("contains"), "must be non-empty text on one line");
                }
                if d.within.is_some_and(|w| w.as_std().is_zero()) {
                    v.err(kp.key("within"), "must be above 0");
                }
                ("detects", None)
            }
            ClaimCheck::EventuallyDelivered(w) => {
                if workload(&w.workload).is_some_and(|w| w.delivered_to.is_none()) {
                    v.err(
                        kp.key("workload"),
                        "the workload needs `deliveredTo` (where accepted work must arrive)",
                    );
                }
                ("eventuallyDelivered", None)
            }
            ClaimCheck::Restores(r) => {
                if r.within.as_std().is_zero() {
                    v.err(kp.key("within"), "must be above 0");
                }
                if spec.faults.is_empty() {
                    v.err(kp.clone(), "a `restores` claim needs at least one fault");
                }
                ("restores", None)
            }
            ClaimCheck::RecoveryPoint(r) => {
                if workload(&r.workload).is_some_and(|w| w.http.is_some()) {
                    v.err(
                        kp.key("workload"),
                        "an http workload has no final read; use a redis, postgres or etcd workload",
                    );
                }
                if spec.faults.is_empty() {
                    v.err(
                        kp.clone(),
                        "a `recoveryPoint` claim needs at least one fault",
                    );
                }
                ("recoveryPoint", None)
            }
            ClaimCheck::BlastRadius(b) => {
                if b.workloads.is_empty() {
                    v.err(kp.key("workloads"), "needs at least one workload");
                }
                if b.max_affected as usize > b.workloads.len() {
                    v.err(
                        kp.key("maxAffected"),
                        "is more than the number of workloads",
                    );
                }
                ("blastRadius", None)
            }
            ClaimCheck::Availability(a) => ("availability", Some(a.window)),
            ClaimCheck::Recovers(r) => {
                if r.within.as_std().is_zero() {
                    v.err(cp.key("recovers").key("within"), "must be above 0");
                }
                ("recovers", None)
            }
            ClaimCheck::Latency(l) => {
                if l.percentile.0 <= 0.0 {
                    v.err(cp.key("latency").key("percentile"), "must be above 0%");
                }
                if l.workload.is_some() != l.probe.is_empty() {
                    v.err(kp.clone(), "needs exactly one of `probe` or `workload`");
                }
                ("latency", Some(l.window))
            }
            ClaimCheck::ErrorRate(e) => ("errorRate", Some(e.window)),
            ClaimCheck::NoFlapping(n) => {
                match (&n.watch, &n.probe) {
                    (Some(w), None) => {
                        if !spec.watches.iter().any(|x| &x.name == w) {
                            v.err(
                                kp.key("watch"),
                                format!("no watch named {w:?} in spec.watches"),
                            );
                        }
                        if n.backend.is_none() {
                            v.err(kp.key("backend"), "needs the balancer's backend name");
                        }
                    }
                    (None, Some(_)) => {
                        if n.backend.is_some() || !n.servers.is_empty() {
                            v.err(
                                kp.key("backend"),
                                "`backend` and `servers` go with `watch`, not `probe`",
                            );
                        }
                    }
                    _ => v.err(kp.clone(), "needs exactly one of `watch` or `probe`"),
                }
                ("noFlapping", Some(n.window))
            }
            ClaimCheck::CapacityShare(c) => {
                if c.watches.is_empty() {
                    v.err(kp.key("watches"), "needs at least one watch");
                }
                for (j, w) in c.watches.iter().enumerate() {
                    if !spec.watches.iter().any(|x| &x.name == w) {
                        v.err(
                            kp.key("watches").index(j),
                            format!("no watch named {w:?} in spec.watches"),
                        );
                    }
                }
                if c.at_most.0 <= 0.0 {
                    v.err(kp.key("atMost"), "must be above 0%");
                }
                ("capacityShare", Some(c.window))
            }
            ClaimCheck::IndependentOf(i) => {
                if !probe_exists(&i.of) {
                    v.err(
                        kp.key("of"),
                        format!("no probe named {:?} in spec.probes", i.of),
                    );
                }
                if i.of == i.probe {
                    v.err(kp.key("of"), "a probe cannot be independent of itself");
                }
                if i.at_least.is_some_and(|p| p.0 <= 0.0) {
                    v.err(kp.key("atLeast"), "must be above 0%");
                }
                ("independentOf", None)
            }
        };
        let _ = kind;
        if let Some(p) = c.probe() {
            if !probe_exists(p) {
                v.err(
                    kp.key("probe"),
                    format!("no probe named {p:?} in spec.probes"),
                );
            }
        }
        if let Some(f) = c.fault() {
            if spec.fault(f).is_none() {
                v.err(
                    kp.key("fault"),
                    format!("no fault named {f:?} in spec.faults"),
                );
            }
            if window == Some(Window::Before) || window == Some(Window::Whole) {
                v.err(
                    kp.key("fault"),
                    "a fault only narrows the `during` and `after` windows",
                );
            }
        }
        if matches!(check, ClaimCheck::Recovers(_)) && spec.faults.is_empty() {
            v.err(kp, "a `recovers` claim needs at least one fault");
        }
    }

    // Steady state and guardrails.
    for (i, p) in spec.steady_state.probes.iter().enumerate() {
        if !probe_exists(p) {
            v.err(
                sp.key("steadyState").key("probes").index(i),
                format!("no probe named {p:?}"),
            );
        }
    }
    if spec.guardrails.max_targets == Some(0) {
        v.err(sp.key("guardrails").key("maxTargets"), "must be at least 1");
    }
    for (i, a) in spec.guardrails.abort_when.iter().enumerate() {
        if !probe_exists(&a.probe) {
            v.err(
                sp.key("guardrails").key("abortWhen").index(i).key("probe"),
                format!("no probe named {:?}", a.probe),
            );
        }
    }
    v.out
}
