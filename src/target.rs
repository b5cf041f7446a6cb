//! Resolving named targets to members on this machine: lab hosts and processes, running
//! processes (pid, pidfile, name, command line), cgroups and named network namespaces.
//! Random picks are seeded so a run replays. Read-only.

use crate::cgroup::Mounts;
use crate::fault::Member;
use crate::lab::Lab;
use crate::model::local::{ExternalMember, MemberRef, ProcessSelector};
use crate::model::spec::{PickMode, TargetSpec};
use crate::netns::Netns;
use crate::procfs::{self, ProcId};

/// Why a target did not resolve to members; each names the target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {target:?} selects pods: it runs on a cluster (kubectl apply), not with `murphy run`")]
    Pods { target: String },
    #[error("target {target:?} refers to the lab, but no lab is running")]
    NoLab { target: String },
    #[error("target {target:?}: no lab host {host:?}")]
    NoLabHost { target: String, host: String },
    #[error("target {target:?}: lab process {reference} is not running")]
    LabProcessDown { target: String, reference: String },
    #[error("target {target:?}: reading pidfile {file}: {source}")]
    Pidfile {
        target: String,
        file: String,
        source: std::io::Error,
    },
    #[error("target {target:?}: pidfile {file} does not hold a pid")]
    PidfileContent { target: String, file: String },
    #[error("target {target:?}: {source}")]
    Pattern {
        target: String,
        source: regex::Error,
    },
    #[error("target {target:?}: no running process matches")]
    NoProcess { target: String },
    #[error("target {target:?}: cgroup {} has no processes", dir.display())]
    EmptyCgroup {
        target: String,
        dir: std::path::PathBuf,
    },
    #[error("target {target:?}: no cgroup {cgroup} in any hierarchy")]
    NoCgroup { target: String, cgroup: String },
    #[error("target {target:?}: no network namespace {netns:?} (see `ip netns list`)")]
    NoNetns { target: String, netns: String },
    #[error("target {target:?}: network namespace {netns:?} is the host's own: as a member it would be every process on the machine")]
    HostNetns { target: String, netns: String },
    #[error(
        "target {target:?} resolved to {count} members, more than guardrails.maxTargets ({max})"
    )]
    TooMany {
        target: String,
        count: usize,
        max: usize,
    },
    #[error("no target {target:?}")]
    Unknown { target: String },
    #[error("target {target:?} selects nothing")]
    Nothing { target: String },
    /// Role-aware selection could not decide (see [`crate::roles::select`]).
    #[error("target {target:?}: {why}")]
    Roles { target: String, why: String },
}

fn root_netns() -> Option<u64> {
    procfs::netns_inode(std::process::id() as i32)
}

fn process_member(id: ProcId) -> Member {
    let comm = procfs::stat(id.pid).map(|s| s.comm).unwrap_or_default();
    let netns = if procfs::netns_inode(id.pid) == root_netns() {
        Netns::Root
    } else {
        Netns::Process { proc: id }
    };
    Member {
        label: format!("pid {} ({comm})", id.pid),
        procs: vec![id],
        netns,
        addrs: Vec::new(),
        lab: None,
    }
}

/// The local front door's view for the run plan ([`crate::plan::Resolver`]): targets
/// resolved through the lab (when there is one) and the host, placeholders through the
/// lab, places as lab hosts.
pub struct LocalResolver<'a> {
    pub spec: &'a crate::model::spec::ExperimentSpec,
    pub lab: Option<&'a Lab>,
}

impl crate::plan::Resolver for LocalResolver<'_> {
    fn target_addrs(&self, target: &str) -> Vec<std::net::Ipv4Addr> {
        let Some(t) = self.spec.targets.get(target) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in matches(target, t, self.lab).unwrap_or_default() {
            for a in m.addrs {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
    fn substitute(&self, s: &str) -> String {
        match self.lab {
            Some(l) => l.substitute_for("", s),
            None => s.to_string(),
        }
    }
    fn place(&self, name: &str) -> Option<crate::plan::Place> {
        let lab = self.lab?;
        let (netns, _) = lab.host(name)?;
        Some(crate::plan::Place {
            netns: Netns::Named { name: netns },
            addrs: lab.addrs(name),
        })
    }
}

/// Every member the selector matches right now (before picking).
pub fn matches(
    name: &str,
    spec: &TargetSpec,
    lab: Option<&Lab>,
) -> Result<Vec<Member>, TargetError> {
    let l = &spec.local;
    if !l.members.is_empty() {
        let mut out = Vec::new();
        for r in &l.members {
            match r {
                MemberRef::Lab(r) => out.extend(lab_ref(name, r, lab)?),
                MemberRef::External(e) => out.push(external(name, e)?),
            }
        }
        // Each member is judged by its label: two alike (the same process listed twice)
        // get a suffix rather than merging.
        let mut seen = std::collections::HashSet::new();
        for m in &mut out {
            let mut n = 2;
            let base = m.label.clone();
            while !seen.insert(m.label.clone()) {
                m.label = format!("{base} #{n}");
                n += 1;
            }
        }
        return Ok(out);
    }
    if let Some(r) = &l.lab {
        return lab_ref(name, r, lab);
    }
    if spec.pods.is_some() {
        return Err(TargetError::Pods {
            target: name.into(),
        });
    }
    other(name, spec)
}

/// One lab reference: a host (each of its processes is a member; a host without processes
/// is one namespace member) or `host/process`.
fn lab_ref(name: &str, r: &str, lab: Option<&Lab>) -> Result<Vec<Member>, TargetError> {
    let lab = lab.ok_or_else(|| TargetError::NoLab {
        target: name.into(),
    })?;
    let (host, process) = r.split_once('/').map_or((r, None), |(h, p)| (h, Some(p)));
    let (netns, _) = lab.host(host).ok_or_else(|| TargetError::NoLabHost {
        target: name.into(),
        host: host.into(),
    })?;
    let addrs = lab.addrs(host);
    let procs = lab.processes(host, process);
    if procs.is_empty() {
        if process.is_some() {
            return Err(TargetError::LabProcessDown {
                target: name.into(),
                reference: r.into(),
            });
        }
        return Ok(vec![Member {
            label: host.to_string(),
            procs: Vec::new(),
            netns: Netns::Named { name: netns },
            addrs,
            lab: Some((host.to_string(), None)),
        }]);
    }
    Ok(procs
        .into_iter()
        .map(|(label, ids)| {
            let pname = label.split_once('/').map(|(_, p)| p.to_string());
            Member {
                label,
                procs: ids,
                netns: Netns::Named {
                    name: netns.clone(),
                },
                addrs: addrs.clone(),
                lab: Some((host.to_string(), pname)),
            }
        })
        .collect())
}

/// The processes a selector matches right now (never Murphy itself, pid 1 or a zombie).
fn select_procs(name: &str, p: &ProcessSelector) -> Result<Vec<ProcId>, TargetError> {
    let me = std::process::id() as i32;
    let ids: Vec<ProcId> = if let Some(pid) = p.pid {
        ProcId::of(pid as i32).into_iter().collect()
    } else if let Some(file) = &p.pidfile {
        let text = std::fs::read_to_string(file).map_err(|source| TargetError::Pidfile {
            target: name.into(),
            file: file.clone(),
            source,
        })?;
        let pid: i32 = text
            .trim()
            .parse()
            .map_err(|_| TargetError::PidfileContent {
                target: name.into(),
                file: file.clone(),
            })?;
        ProcId::of(pid).into_iter().collect()
    } else if let Some(comm) = &p.name {
        procfs::all_pids()
            .into_iter()
            .filter(|pid| *pid != me && procfs::stat(*pid).is_some_and(|s| &s.comm == comm))
            .filter_map(ProcId::of)
            .collect()
    } else if let Some(re) = &p.cmdline {
        let re = regex::Regex::new(re).map_err(|source| TargetError::Pattern {
            target: name.into(),
            source,
        })?;
        procfs::all_pids()
            .into_iter()
            .filter(|pid| {
                *pid != me && procfs::stat(*pid).is_some_and(|s| s.ppid != me || s.comm != "murphy")
            })
            .filter(|pid| procfs::cmdline(*pid).is_some_and(|c| !c.is_empty() && re.is_match(&c)))
            .filter_map(ProcId::of)
            .collect()
    } else {
        Vec::new()
    };
    let ids: Vec<ProcId> = ids.into_iter().filter(|i| i.alive() && i.pid > 1).collect();
    if ids.is_empty() {
        return Err(TargetError::NoProcess {
            target: name.into(),
        });
    }
    Ok(ids)
}

/// Whether `pid` is Murphy or runs under it (its probes, steps and helpers are never a
/// target's processes).
fn under_murphy(pid: i32) -> bool {
    let me = std::process::id() as i32;
    let mut p = pid;
    for _ in 0..8 {
        if p == me {
            return true;
        }
        match procfs::stat(p) {
            Some(s) if s.ppid > 1 => p = s.ppid,
            _ => return false,
        }
    }
    false
}

/// The processes living in a named network namespace (Murphy's own, pid 1 and kernel
/// threads excepted). None for a name that is the host's own namespace (`ip netns attach
/// x 1`): that would be every process on the machine.
fn procs_in_netns(ns: &str) -> Vec<ProcId> {
    use std::os::unix::fs::MetadataExt;
    let Ok(ino) = std::fs::metadata(std::path::Path::new("/run/netns").join(ns)).map(|m| m.ino())
    else {
        return Vec::new();
    };
    if procfs::netns_inode(1) == Some(ino) || root_netns() == Some(ino) {
        return Vec::new();
    }
    procfs::all_pids()
        .into_iter()
        .filter(|pid| *pid > 2 && procfs::stat(*pid).is_some_and(|s| s.ppid != 2))
        .filter(|pid| procfs::netns_inode(*pid) == Some(ino) && !under_murphy(*pid))
        .filter_map(ProcId::of)
        .filter(|i| i.alive())
        .collect()
}

/// Whether a named namespace is the host's own (a bind of pid 1's).
fn is_host_netns(ns: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(std::path::Path::new("/run/netns").join(ns))
        .map(|m| m.ino())
        .is_ok_and(|ino| procfs::netns_inode(1) == Some(ino) || root_netns() == Some(ino))
}

/// The global IPv4 addresses in a namespace, in interface order.
pub fn netns_addrs(netns: &Netns) -> Vec<std::net::Ipv4Addr> {
    let Ok(list) = crate::netlink::route::Route::open(netns).and_then(|mut r| r.addrs()) else {
        return Vec::new();
    };
    // Scope universe is what `ip` calls global.
    (list.into_iter().filter(|a| a.scope == 0))
        .map(|a| a.addr)
        .collect()
}

/// Two members whose first (role probe) address is the same, named, if any.
pub fn shared_address(members: &[Member]) -> Option<String> {
    for (i, a) in members.iter().enumerate() {
        for b in &members[i + 1..] {
            if let (Some(x), Some(y)) = (a.addrs.first(), b.addrs.first()) {
                if x == y {
                    return Some(format!(
                        "members {} and {} both have the address {x}",
                        a.label, b.label
                    ));
                }
            }
        }
    }
    None
}

/// One member that Murphy did not start: a namespace (every process in it), processes or
/// a cgroup, with its address given or read from its namespace.
fn external(name: &str, e: &ExternalMember) -> Result<Member, TargetError> {
    let mut m = if let Some(ns) = &e.netns {
        if !std::path::Path::new("/run/netns").join(ns).exists() {
            return Err(TargetError::NoNetns {
                target: name.into(),
                netns: ns.clone(),
            });
        }
        if is_host_netns(ns) {
            return Err(TargetError::HostNetns {
                target: name.into(),
                netns: ns.clone(),
            });
        }
        Member {
            label: format!("netns {ns}"),
            procs: procs_in_netns(ns),
            netns: Netns::Named { name: ns.clone() },
            addrs: Vec::new(),
            lab: None,
        }
    } else if let Some(p) = &e.process {
        let ids = select_procs(name, p)?;
        let mut m = process_member(ids[0]);
        m.procs = ids;
        m
    } else if let Some(cg) = &e.cgroup {
        let mut t = TargetSpec::default();
        t.local.cgroup = Some(cg.clone());
        other(name, &t)?.remove(0)
    } else {
        return Err(TargetError::Nothing {
            target: name.into(),
        });
    };
    if let Some(n) = &e.name {
        m.label = n.clone();
    }
    m.addrs = match e.address.as_deref().and_then(|a| a.parse().ok()) {
        Some(a) => vec![a],
        None => netns_addrs(&m.netns),
    };
    Ok(m)
}

fn other(name: &str, spec: &TargetSpec) -> Result<Vec<Member>, TargetError> {
    let l = &spec.local;
    if let Some(p) = &l.process {
        let ids = select_procs(name, p)?;
        return Ok(ids.into_iter().map(process_member).collect());
    }
    if let Some(cg) = &l.cgroup {
        let mounts = Mounts::read();
        let mut roots: Vec<std::path::PathBuf> = mounts.v2.iter().cloned().collect();
        roots.extend(mounts.v1.iter().map(|(_, p)| p.clone()));
        for root in roots {
            let dir = root.join(cg.trim_start_matches('/'));
            if dir.join("cgroup.procs").exists() {
                let ids: Vec<ProcId> = crate::cgroup::pids(&dir)
                    .into_iter()
                    .filter_map(ProcId::of)
                    .collect();
                if ids.is_empty() {
                    return Err(TargetError::EmptyCgroup {
                        target: name.into(),
                        dir,
                    });
                }
                let netns = if ids
                    .iter()
                    .all(|i| procfs::netns_inode(i.pid) == root_netns())
                {
                    Netns::Root
                } else {
                    Netns::Process { proc: ids[0] }
                };
                return Ok(vec![Member {
                    label: format!("cgroup {cg}"),
                    procs: ids,
                    netns,
                    addrs: Vec::new(),
                    lab: None,
                }]);
            }
        }
        return Err(TargetError::NoCgroup {
            target: name.into(),
            cgroup: cg.clone(),
        });
    }
    if let Some(ns) = &l.netns {
        if !std::path::Path::new("/run/netns").join(ns).exists() {
            return Err(TargetError::NoNetns {
                target: name.into(),
                netns: ns.clone(),
            });
        }
        let netns = Netns::Named { name: ns.clone() };
        return Ok(vec![Member {
            label: format!("netns {ns}"),
            procs: procs_in_netns(ns),
            addrs: netns_addrs(&netns),
            netns,
            lab: None,
        }]);
    }
    Err(TargetError::Nothing {
        target: name.into(),
    })
}

/// splitmix64 (kept at this path for callers; the engine's one source is [`crate::rand`]).
pub fn next_random(state: &mut u64) -> u64 {
    crate::rand::next(state)
}

/// Apply `pick` to the matches, deterministically for a given seed and target name.
pub fn pick(name: &str, spec: &TargetSpec, members: Vec<Member>, seed: u64) -> Vec<Member> {
    match &spec.pick {
        Some(p) => pick_by(name, p, members, |m| m.label.clone(), seed),
        None => members,
    }
}

/// Seeded, replayable picking of any kind of member (lab members here, pods on a cluster):
/// the same name, seed and candidates give the same choice, whatever order they came in.
pub fn pick_by<T>(
    name: &str,
    p: &crate::model::spec::Pick,
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    seed: u64,
) -> Vec<T> {
    let n = items.len();
    let mut state = seed ^ crate::rand::hash(name);
    let share = |p: &crate::model::spec::Pick| {
        ((p.percent.map_or(100.0, |x| x.0) / 100.0) * n as f64).ceil() as usize
    };
    let k = match p.mode {
        PickMode::All => n,
        PickMode::One => 1,
        PickMode::Count => p.count.unwrap_or(1) as usize,
        PickMode::Percent => share(p),
        PickMode::UpToPercent => {
            let most = share(p).max(1);
            1 + (next_random(&mut state) % most as u64) as usize
        }
    }
    .min(n);
    // Fisher-Yates on a stable order.
    items.sort_by_key(&key);
    for i in (1..n).rev() {
        let j = (next_random(&mut state) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
    items.truncate(k);
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::Pick;

    fn m(label: &str) -> Member {
        Member {
            label: label.into(),
            procs: vec![],
            netns: Netns::Root,
            addrs: vec![],
            lab: None,
        }
    }

    #[test]
    fn picks_are_seeded_and_replayable() {
        let spec = TargetSpec {
            pick: Some(Pick {
                mode: PickMode::Count,
                count: Some(2),
                percent: None,
            }),
            ..Default::default()
        };
        let all: Vec<Member> = (0..10).map(|i| m(&format!("m{i}"))).collect();
        let a = pick("t", &spec, all.clone(), 42);
        let b = pick("t", &spec, all.iter().rev().cloned().collect(), 42);
        assert_eq!(a, b, "same seed, same members, whatever the input order");
        assert_eq!(a.len(), 2);
        let others: Vec<_> = (0..20).map(|s| pick("t", &spec, all.clone(), s)).collect();
        assert!(
            others.iter().any(|o| *o != a),
            "different seeds pick differently"
        );
    }
}
