//! Role-aware selection: which members of a cluster a fault acts on, resolved when the
//! fault is injected. `primary` and `replica` ask every member for its role (Redis `ROLE`,
//! PostgreSQL `pg_is_in_recovery()`, etcd's status, or a command); `minority`, `majority`
//! and `all` are sizes, chosen with the run's seed so a run replays. Read-only.

use crate::fault::Member;
use crate::model::spec::{RoleProbe, Select, TargetSpec};
use crate::netns::Netns;
use crate::record::{Clock, RoleCluster, RoleMember, RoleSample, RoleSeen};
use crate::target::TargetError;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one member said about its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
    Unknown(String),
}

/// Ask one member (by address) for its role.
pub fn role_of(probe: &RoleProbe, addr: Ipv4Addr) -> Role {
    let t = probe.timeout();
    let r: Result<bool, String> = if let Some(p) = &probe.redis {
        crate::workload::redis::role(SocketAddr::from((addr, p.port)), t)
            .map(|r| r == "master")
            .map_err(|e| e.message)
    } else if let Some(p) = &probe.etcd {
        crate::workload::etcd::is_leader(SocketAddr::from((addr, p.port)), t).map_err(|e| e.message)
    } else if let Some(p) = &probe.postgres {
        crate::workload::pg::runtime()
            .and_then(|rt| {
                let params = crate::workload::pg::PgParams {
                    user: p.user.clone().unwrap_or_else(|| "postgres".into()),
                    password: None,
                    database: p.database.clone().unwrap_or_else(|| "postgres".into()),
                    connect_timeout: t,
                    user_timeout: t,
                };
                crate::workload::pg::is_primary(&rt, SocketAddr::from((addr, p.port)), &params)
            })
            .map_err(|e| e.message)
    } else if let Some(c) = &probe.command {
        command(&c.argv, c.exit_code, addr, t)
    } else {
        Err("no role probe".into())
    };
    match r {
        Ok(true) => Role::Primary,
        Ok(false) => Role::Replica,
        Err(e) => Role::Unknown(e),
    }
}

/// A role command's argv for one member: `{address}` replaced by its address (the only
/// placeholder; everything else is passed as written, never through a shell).
pub fn command_argv(argv: &[String], addr: Ipv4Addr) -> Vec<String> {
    argv.iter()
        .map(|a| a.replace("{address}", &addr.to_string()))
        .collect()
}

fn command(
    argv: &[String],
    primary_code: i32,
    addr: Ipv4Addr,
    t: Duration,
) -> Result<bool, String> {
    let args = command_argv(argv, addr);
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    let deadline = Instant::now() + t;
    loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(s.code() == Some(primary_code));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("role command timed out after {t:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Ask `probe` from inside `netns` (a role probe's `from`), on a short-lived thread so
/// this one stays where it is.
pub fn role_from(probe: &RoleProbe, addr: Ipv4Addr, netns: Option<&Netns>) -> Role {
    let Some(ns) = netns.filter(|n| **n != Netns::Root) else {
        return role_of(probe, addr);
    };
    let (probe, ns) = (probe.clone(), ns.clone());
    std::thread::spawn(move || match crate::probe::enter(Some(&ns)) {
        Ok(()) => role_of(&probe, addr),
        Err(e) => Role::Unknown(e),
    })
    .join()
    .unwrap_or_else(|_| Role::Unknown("role probe thread panicked".into()))
}

/// What a failed role question means for the member: `Down` only when nothing can be
/// serving — every process it was resolved to is gone and its address refuses connections
/// — and `Unknown` otherwise (a timeout or a partition may hide a live primary).
pub fn seen(role: &Role, member: &Member) -> (RoleSeen, String) {
    match role {
        Role::Primary => (RoleSeen::Primary, String::new()),
        Role::Replica => (RoleSeen::Replica, String::new()),
        Role::Unknown(e) => {
            let refused = e.contains("refused");
            let gone = !member.procs.is_empty() && member.procs.iter().all(|p| !p.alive());
            if refused && gone {
                (RoleSeen::Down, format!("processes gone, {e}"))
            } else {
                (RoleSeen::Unknown, e.clone())
            }
        }
    }
}

/// The role timeline of one cluster: every member asked every `interval` on a thread of
/// its own (a slow member never delays the others), answers collected until [`stop`].
/// Dropped without `stop`, its threads are told to stop.
///
/// [`stop`]: RoleSampler::stop
pub struct RoleSampler {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    out: Arc<Mutex<Vec<RoleSample>>>,
    cluster: RoleCluster,
    clock: Clock,
}

impl RoleSampler {
    /// Start asking. A member without an address is recorded as unknown at every tick; a
    /// member whose thread cannot start is still listed, so it shows as never answering.
    pub fn spawn(
        target: &str,
        probe: &RoleProbe,
        members: Vec<Member>,
        netns: Option<Netns>,
        clock: Clock,
    ) -> RoleSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let out = Arc::new(Mutex::new(Vec::new()));
        let cluster = RoleCluster {
            target: target.to_string(),
            members: members
                .iter()
                .map(|m| RoleMember {
                    label: m.label.clone(),
                    addresses: m.addrs.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            interval_ms: probe.interval().as_secs_f64() * 1000.0,
            started_ms: clock.now_ms(),
            stopped_ms: 0.0,
        };
        let mut threads = Vec::new();
        for m in members {
            let (stop, out, probe, netns) =
                (stop.clone(), out.clone(), probe.clone(), netns.clone());
            let target = target.to_string();
            let spawned = std::thread::Builder::new()
                .name(format!("role-{}", m.label))
                .spawn(move || ask_until_stopped(&target, &probe, &m, netns, clock, &stop, &out));
            if let Ok(t) = spawned {
                threads.push(t);
            }
        }
        RoleSampler {
            stop,
            threads,
            out,
            cluster,
            clock,
        }
    }

    /// The answers so far (for the live view and the timeline's events).
    pub fn so_far(&self, from: usize) -> Vec<RoleSample> {
        self.out
            .lock()
            .map(|o| o.get(from..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Stop asking; every answer in time order and the cluster as asked.
    pub fn stop(mut self) -> (Vec<RoleSample>, RoleCluster) {
        self.stop.store(true, Ordering::SeqCst);
        self.cluster.stopped_ms = self.clock.now_ms();
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        let mut v = self
            .out
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default();
        v.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        (v, std::mem::take(&mut self.cluster))
    }
}

impl Drop for RoleSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One member's thread: ask, record, wait for the next tick, until told to stop.
fn ask_until_stopped(
    target: &str,
    probe: &RoleProbe,
    m: &Member,
    netns: Option<Netns>,
    clock: Clock,
    stop: &AtomicBool,
    out: &Mutex<Vec<RoleSample>>,
) {
    let entered = crate::probe::enter(netns.as_ref());
    let interval = probe.interval();
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let t_ms = clock.now_ms();
        let began = Instant::now();
        let role = match (&entered, m.addrs.first()) {
            (Err(e), _) => Role::Unknown(e.clone()),
            (Ok(()), None) => Role::Unknown("the member has no address".into()),
            (Ok(()), Some(a)) => role_of(probe, *a),
        };
        let (role, detail) = seen(&role, m);
        let sample = RoleSample {
            target: target.to_string(),
            member: m.label.clone(),
            address: m.addrs.first().map(ToString::to_string).unwrap_or_default(),
            t_ms,
            latency_ms: began.elapsed().as_secs_f64() * 1000.0,
            role,
            detail,
        };
        if let Ok(mut o) = out.lock() {
            o.push(sample);
        }
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        while !stop.load(Ordering::SeqCst) && Instant::now() < next {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

/// Seeded Fisher-Yates over a stable order; returns the first `k`.
pub fn seeded_subset(name: &str, mut members: Vec<Member>, k: usize, seed: u64) -> Vec<Member> {
    let mut state = seed ^ crate::rand::hash(name);
    members.sort_by(|a, b| a.label.cmp(&b.label));
    let n = members.len();
    for i in (1..n).rev() {
        let j = (crate::rand::next(&mut state) % (i as u64 + 1)) as usize;
        members.swap(i, j);
    }
    members.truncate(k.min(n));
    members
}

/// Narrow a target's members by `select`. Returns the chosen members and a sentence saying
/// how they were chosen (for the timeline).
pub fn select(
    name: &str,
    spec: &TargetSpec,
    members: Vec<Member>,
    seed: u64,
) -> Result<(Vec<Member>, String), TargetError> {
    select_by(name, spec, members, seed, &|probe, _, addr| {
        role_of(probe, addr)
    })
}

/// [`select`] with the roles told by `ask` (the role probe, the member, its address):
/// a cluster asks a command role check in a pod of its own, not here.
pub fn select_by(
    name: &str,
    spec: &TargetSpec,
    members: Vec<Member>,
    seed: u64,
    ask: &dyn Fn(&RoleProbe, &Member, Ipv4Addr) -> Role,
) -> Result<(Vec<Member>, String), TargetError> {
    let fail = |why: String| TargetError::Roles {
        target: name.into(),
        why,
    };
    let Some(sel) = spec.select else {
        return Ok((members, String::new()));
    };
    let n = members.len();
    match sel {
        Select::All => Ok((members, format!("all {n} members (correlated)"))),
        Select::Minority => {
            let k = (n.saturating_sub(1)) / 2;
            if k == 0 {
                return Err(fail(format!("{n} member(s) have no minority")));
            }
            let m = seeded_subset(name, members, k, seed);
            Ok((m, format!("a minority ({k} of {n}), seed {seed}")))
        }
        Select::Majority => {
            let k = n / 2 + 1;
            let m = seeded_subset(name, members, k, seed);
            Ok((m, format!("a majority ({k} of {n}), seed {seed}")))
        }
        Select::Primary | Select::Replica => {
            let probe = spec
                .role
                .as_ref()
                .ok_or_else(|| fail("no role probe".into()))?;
            let mut said = Vec::new();
            let mut chosen = Vec::new();
            for m in members {
                let Some(addr) = m.addrs.first().copied() else {
                    said.push(format!("{}: no address", m.label));
                    continue;
                };
                let r = ask(probe, &m, addr);
                said.push(match &r {
                    Role::Primary => format!("{}: primary", m.label),
                    Role::Replica => format!("{}: replica", m.label),
                    Role::Unknown(e) => format!("{}: unknown ({e})", m.label),
                });
                let want = match sel {
                    Select::Primary => Role::Primary,
                    _ => Role::Replica,
                };
                if r == want {
                    chosen.push(m);
                }
            }
            let what = if sel == Select::Primary {
                "primary"
            } else {
                "replica"
            };
            if chosen.is_empty() {
                return Err(fail(format!(
                    "no member says it is {what} ({})",
                    said.join(", ")
                )));
            }
            Ok((chosen, format!("roles: {}", said.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::CommandCheck;

    fn m(label: &str, ip: [u8; 4]) -> Member {
        Member {
            label: label.into(),
            procs: vec![],
            netns: Netns::Root,
            addrs: vec![Ipv4Addr::from(ip)],
            lab: None,
        }
    }

    fn five() -> Vec<Member> {
        (1..=5)
            .map(|i| m(&format!("n{i}"), [10, 0, 0, i]))
            .collect()
    }

    fn spec(sel: Select, role: Option<RoleProbe>) -> TargetSpec {
        TargetSpec {
            select: Some(sel),
            role,
            ..Default::default()
        }
    }

    #[test]
    fn minority_and_majority_sizes_and_replay() {
        let (min, how) = select("t", &spec(Select::Minority, None), five(), 9).expect("min");
        assert_eq!(min.len(), 2);
        assert!(how.contains("seed 9"));
        let (maj, _) = select("t", &spec(Select::Majority, None), five(), 9).expect("maj");
        assert_eq!(maj.len(), 3);
        let (again, _) = select(
            "t",
            &spec(Select::Minority, None),
            five().into_iter().rev().collect(),
            9,
        )
        .expect("again");
        assert_eq!(min, again, "same seed, same members");
        let picks: std::collections::HashSet<Vec<String>> = (0..30)
            .map(|s| {
                select("t", &spec(Select::Minority, None), five(), s)
                    .expect("min")
                    .0
                    .into_iter()
                    .map(|m| m.label)
                    .collect()
            })
            .collect();
        assert!(picks.len() > 1, "different seeds choose differently");
        let (all, _) = select("t", &spec(Select::All, None), five(), 1).expect("all");
        assert_eq!(all.len(), 5);
        assert!(select(
            "t",
            &spec(Select::Minority, None),
            vec![m("a", [10, 0, 0, 1])],
            1
        )
        .is_err());
    }

    #[test]
    fn primary_and_replicas_come_from_the_role_probe() {
        // `test {address} = 10.0.0.3`: exit 0 (primary) only for that member. No shell.
        let probe = RoleProbe {
            command: Some(CommandCheck {
                argv: vec![
                    "test".into(),
                    "{address}".into(),
                    "=".into(),
                    "10.0.0.3".into(),
                ],
                exit_code: 0,
                stdout_contains: None,
            }),
            ..Default::default()
        };
        let (p, how) =
            select("db", &spec(Select::Primary, Some(probe.clone())), five(), 1).expect("primary");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].label, "n3");
        assert!(
            how.contains("n3: primary") && how.contains("n1: replica"),
            "{how}"
        );
        let (r, _) =
            select("db", &spec(Select::Replica, Some(probe)), five(), 1).expect("replicas");
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|m| m.label != "n3"));
        // Nobody primary: an error that says what each member answered.
        let none = RoleProbe {
            command: Some(CommandCheck {
                argv: vec!["false".into()],
                exit_code: 0,
                stdout_contains: None,
            }),
            ..Default::default()
        };
        let e = select("db", &spec(Select::Primary, Some(none)), five(), 1)
            .expect_err("none")
            .to_string();
        assert!(
            e.contains("no member says it is primary") && e.contains("n5: replica"),
            "{e}"
        );
    }
}
