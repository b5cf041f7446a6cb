//! The local lab: hosts as network namespaces on one bridge, and processes started inside
//! them, each in cgroups of its own. Brought up before an experiment and torn down after,
//! whatever happens: every resource is journaled before it is created, so a crashed run is
//! cleaned by `murphy recover`.
//!
//! Links and namespaces are set up with iproute2 (`ip`, argv only, never a shell).

use crate::cgroup::{self, Mounts};
use crate::journal::{Journal, LabProcessError, RevertEnv, UndoAction};
use crate::model::local::{LabHost, LabProcess, LabSpec};
use crate::netns::Netns;
use crate::procfs::ProcId;
use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const LAB_GROUP: &str = "lab";
const CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "freezer", "pids"];

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("setting up the lab: {0}")]
    Setup(String),
    #[error("journal: {0}")]
    Journal(#[from] std::io::Error),
    #[error("starting {host}/{process}: {message}")]
    Start {
        host: String,
        process: String,
        message: String,
    },
    #[error("{host}/{process} did not become ready within {timeout:?}: {last}")]
    NotReady {
        host: String,
        process: String,
        timeout: Duration,
        last: String,
    },
}

struct ProcRt {
    spec: LabProcess,
    child: Option<Child>,
    id: Option<ProcId>,
    cgroups: Vec<PathBuf>,
    restarts: u32,
}

pub struct HostRt {
    pub name: String,
    pub netns: String,
    pub addr: Ipv4Addr,
    /// Addresses on `lab.networks`, as (network, address).
    pub extra: Vec<(String, Ipv4Addr)>,
    procs: Vec<ProcRt>,
}

/// Something that happened in the lab while it ran.
#[derive(Clone, Debug)]
pub struct LabEvent {
    pub message: String,
}

pub struct Lab {
    pub run_id: String,
    pub bridge: String,
    pub bridge_addr: Ipv4Addr,
    hosts: Mutex<Vec<HostRt>>,
    journal: Arc<Journal>,
    base_dir: PathBuf,
    log_dir: PathBuf,
    data_root: PathBuf,
    /// Each host's `dataOwner`, else the first process user on it.
    data_owners: Vec<(String, Option<String>)>,
    mounts: Mounts,
    cgroup_root: String,
}

/// Replace `{data:<host>}`, `{data}`, `{address}` and `{host}` in one string (data, never
/// a shell).
fn substitute(s: &str, data_root: &Path, addr: Ipv4Addr, host: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("{data:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 6..];
        match after.find('}') {
            Some(j) => {
                out.push_str(&data_root.join(&after[..j]).to_string_lossy());
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.replace("{data}", &data_root.join(host).to_string_lossy())
        .replace("{address}", &addr.to_string())
        .replace("{host}", host)
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            LabError::Setup(format!(
                "ip {}: {e} (is iproute2 installed?)",
                args.join(" ")
            ))
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The run id's first six characters, which name the lab's links and namespaces.
fn short_id(run_id: &str) -> String {
    run_id.chars().take(6).collect()
}

/// Run a program inside a named network namespace (`ip netns exec`, argv only).
fn run_in(netns: &str, argv: &[&str]) -> Result<(), LabError> {
    let mut args = vec!["netns", "exec", netns];
    args.extend_from_slice(argv);
    ip(&args)
}

impl Lab {
    /// A loop-backed ext4 filesystem mounted on `dir` (journaled: unmount, then detach and
    /// delete the image).
    fn mount_volume(&self, host: &str, bytes: u64, dir: &Path) -> Result<(), LabError> {
        let setup = |what: String| LabError::Setup(format!("volume of {host}: {what}"));
        let img = self.data_root.with_file_name(format!("volume-{host}.img"));
        self.journal.record(
            LAB_GROUP,
            &UndoAction::DetachLoop {
                backing: img.clone(),
            },
        )?;
        let f = fs::File::create(&img).map_err(|e| setup(format!("{}: {e}", img.display())))?;
        f.set_len(bytes)
            .map_err(|e| setup(format!("sizing {}: {e}", img.display())))?;
        drop(f);
        let img_s = img.to_string_lossy().into_owned();
        crate::journal::run_quiet(
            &[
                "mkfs.ext4",
                "-q",
                "-F",
                "-E",
                "nodiscard",
                "-m",
                "0",
                &img_s,
            ],
            None,
        )
        .map_err(setup)?;
        self.journal.record(
            LAB_GROUP,
            &UndoAction::Unmount {
                path: dir.to_path_buf(),
            },
        )?;
        let dir_s = dir.to_string_lossy().into_owned();
        crate::journal::run_quiet(&["mount", "-t", "ext4", "-o", "loop", &img_s, &dir_s], None)
            .map_err(setup)?;
        // A fresh filesystem's lost+found is not the host's data.
        let _ = fs::remove_dir(dir.join("lost+found"));
        Ok(())
    }

    /// Bring the lab up. On error, whatever was created is already journaled; the caller
    /// tears down through [`Lab::teardown`] or the journal.
    pub fn up(
        spec: &LabSpec,
        run_id: &str,
        journal: Arc<Journal>,
        base_dir: &Path,
        log_dir: &Path,
    ) -> Result<Lab, LabError> {
        let subnet = spec.subnet.as_deref().unwrap_or("10.77.0.0/24");
        let net: Ipv4Addr = subnet
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| LabError::Setup(format!("bad subnet {subnet}")))?;
        let o = net.octets();
        let bridge_addr = Ipv4Addr::new(o[0], o[1], o[2], 1);
        let short = short_id(run_id);
        fs::create_dir_all(log_dir)?;
        journal.begin(LAB_GROUP, "lab")?;
        let lab = Lab::new(spec, run_id, journal, base_dir, log_dir, bridge_addr);
        lab.add_bridge()?;
        lab.add_cgroup_parents()?;
        lab.add_hosts(spec, &short, net)?;
        lab.networks(spec, &short)?;
        lab.prepare_data_dirs(spec)?;
        lab.start_processes(spec)?;
        Ok(lab)
    }

    /// The lab before anything is created: no hosts yet, its bridge named after the run.
    fn new(
        spec: &LabSpec,
        run_id: &str,
        journal: Arc<Journal>,
        base_dir: &Path,
        log_dir: &Path,
        bridge_addr: Ipv4Addr,
    ) -> Lab {
        Lab {
            run_id: run_id.to_string(),
            bridge: format!("mb{}", short_id(run_id)),
            bridge_addr,
            hosts: Mutex::new(Vec::new()),
            journal,
            base_dir: base_dir.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            data_root: log_dir
                .parent()
                .map_or_else(|| log_dir.join("data"), |p| p.join("data")),
            data_owners: spec
                .hosts
                .iter()
                .map(|h| {
                    (
                        h.name.clone(),
                        h.data_owner
                            .clone()
                            .or_else(|| h.processes.iter().find_map(|p| p.user.clone())),
                    )
                })
                .collect(),
            mounts: Mounts::read(),
            cgroup_root: format!("murphy-{run_id}"),
        }
    }

    /// The lab's bridge, with the first address of the subnet (journaled first).
    fn add_bridge(&self) -> Result<(), LabError> {
        let bridge = &self.bridge;
        self.journal.record(
            LAB_GROUP,
            &UndoAction::DeleteLink {
                name: bridge.clone(),
            },
        )?;
        ip(&["link", "add", bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", self.bridge_addr),
            "dev",
            bridge,
        ])?;
        ip(&["link", "set", bridge, "up"])
    }

    /// Murphy's own cgroup parents, one per controller (journaled, so removed last).
    fn add_cgroup_parents(&self) -> Result<(), LabError> {
        for c in CONTROLLERS {
            if let Some(base) = self.mounts.base_for(c) {
                let dir = base.join(&self.cgroup_root);
                self.journal.record(
                    LAB_GROUP,
                    &UndoAction::RemoveCgroup {
                        cgroup: dir.clone(),
                    },
                )?;
                cgroup::create(&dir).map_err(|e| {
                    LabError::Setup(format!("creating cgroup {}: {e}", dir.display()))
                })?;
                if self.mounts.is_v2(c) && self.mounts.v2_controllers.iter().any(|x| x == c) {
                    // cgroup v2: let the per-process children use the controller (freezing
                    // needs none: cgroup.freeze is built in).
                    let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
                }
            }
        }
        Ok(())
    }

    /// Every host: its address (given, or the next free one in `net` from .10 up), then
    /// its namespace on the bridge.
    fn add_hosts(&self, spec: &LabSpec, short: &str, net: Ipv4Addr) -> Result<(), LabError> {
        let o = net.octets();
        let mut next = 10u8;
        for (i, h) in spec.hosts.iter().enumerate() {
            let addr = match &h.address {
                Some(a) => a
                    .parse()
                    .map_err(|_| LabError::Setup(format!("bad address {a}")))?,
                None => {
                    while spec.hosts.iter().any(|x| {
                        x.address.as_deref()
                            == Some(&Ipv4Addr::new(o[0], o[1], o[2], next).to_string())
                    }) {
                        next += 1;
                    }
                    let a = Ipv4Addr::new(o[0], o[1], o[2], next);
                    next += 1;
                    a
                }
            };
            self.add_host(h, i, short, addr)?;
        }
        Ok(())
    }

    /// One host: a namespace with `eth0` at `addr` on a veth to the bridge, loopback up
    /// and a default route through the bridge (each resource journaled before it exists).
    fn add_host(&self, h: &LabHost, i: usize, short: &str, addr: Ipv4Addr) -> Result<(), LabError> {
        let netns = format!("murphy-{short}-{}", h.name);
        let veth = format!("mv{short}{i}");
        let peer = format!("mp{short}{i}");
        self.journal.record(
            LAB_GROUP,
            &UndoAction::DeleteNetns {
                name: netns.clone(),
            },
        )?;
        ip(&["netns", "add", &netns])?;
        self.journal
            .record(LAB_GROUP, &UndoAction::DeleteLink { name: veth.clone() })?;
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &netns])?;
        ip(&["-n", &netns, "link", "set", &peer, "name", "eth0"])?;
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &netns,
            "route",
            "add",
            "default",
            "via",
            &self.bridge_addr.to_string(),
        ])?;
        ip(&["link", "set", &veth, "master", &self.bridge])?;
        ip(&["link", "set", &veth, "up"])?;
        self.hosts
            .lock()
            .map_err(|_| LabError::Setup("lock".into()))?
            .push(HostRt {
                name: h.name.clone(),
                netns,
                addr,
                extra: Vec::new(),
                procs: h
                    .processes
                    .iter()
                    .map(|p| ProcRt {
                        spec: p.clone(),
                        child: None,
                        id: None,
                        cgroups: Vec::new(),
                        restarts: 0,
                    })
                    .collect(),
            });
        Ok(())
    }

    /// Every host's data directory, before any process starts (another host's processes
    /// may use it as `{data:<host>}`): on its volume if it has one, owned by its data owner.
    fn prepare_data_dirs(&self, spec: &LabSpec) -> Result<(), LabError> {
        for h in &spec.hosts {
            let dir = self.data_dir(&h.name);
            fs::create_dir_all(&dir)
                .map_err(|e| LabError::Setup(format!("creating {}: {e}", dir.display())))?;
            if let Some(size) = h.volume {
                self.mount_volume(&h.name, size.0, &dir)?;
            }
            if let Some(u) = self.data_owner(&h.name)? {
                nix::unistd::chown(&dir, Some(u.uid), Some(u.gid))
                    .map_err(|e| LabError::Setup(format!("chown {}: {e}", dir.display())))?;
            }
        }
        Ok(())
    }

    /// Start processes host by host, each ready before the next starts (one-shot steps
    /// run to completion); with `start: together`, wait for readiness once all started.
    fn start_processes(&self, spec: &LabSpec) -> Result<(), LabError> {
        let names: Vec<(String, Vec<String>)> = spec
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    h.processes.iter().map(|p| p.name.clone()).collect(),
                )
            })
            .collect();
        let together = spec.start == Some(crate::model::local::StartOrder::Together);
        for (host, procs) in &names {
            for p in procs {
                self.prepare(host, p)?;
                self.start(host, p)?;
                if self.is_oneshot(host, p) {
                    self.wait_exit(host, p)?;
                } else if !together {
                    self.wait_ready(host, p)?;
                }
            }
        }
        for (host, procs) in &names {
            for p in procs {
                if together && !self.is_oneshot(host, p) {
                    self.wait_ready(host, p)?;
                }
            }
        }
        Ok(())
    }

    /// Extra networks (a bridge each, no address on Murphy's side), then forwarding and
    /// static routes inside hosts. Interfaces and routes go with their namespace.
    fn networks(&self, spec: &LabSpec, short: &str) -> Result<(), LabError> {
        for (k, n) in spec.networks.iter().enumerate() {
            let bridge = format!("mn{short}{k}");
            let prefix = n
                .subnet
                .split_once('/')
                .map(|(_, l)| l)
                .ok_or_else(|| LabError::Setup(format!("bad subnet {}", n.subnet)))?;
            self.journal.record(
                LAB_GROUP,
                &UndoAction::DeleteLink {
                    name: bridge.clone(),
                },
            )?;
            ip(&["link", "add", &bridge, "type", "bridge"])?;
            ip(&["link", "set", &bridge, "up"])?;
            for (j, (host, addr)) in n.attach.iter().enumerate() {
                let netns = self.host(host).map(|(ns, _)| ns).ok_or_else(|| {
                    LabError::Setup(format!("network {}: no host {host}", n.name))
                })?;
                let a: Ipv4Addr = addr
                    .parse()
                    .map_err(|_| LabError::Setup(format!("bad address {addr}")))?;
                let veth = format!("mx{short}{k}h{j}");
                let peer = format!("my{short}{k}h{j}");
                self.journal
                    .record(LAB_GROUP, &UndoAction::DeleteLink { name: veth.clone() })?;
                ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
                ip(&["link", "set", &peer, "netns", &netns])?;
                ip(&["-n", &netns, "link", "set", &peer, "name", &n.name])?;
                ip(&[
                    "-n",
                    &netns,
                    "addr",
                    "add",
                    &format!("{a}/{prefix}"),
                    "dev",
                    &n.name,
                ])?;
                ip(&["-n", &netns, "link", "set", &n.name, "up"])?;
                ip(&["link", "set", &veth, "master", &bridge])?;
                ip(&["link", "set", &veth, "up"])?;
                if let Ok(mut hosts) = self.hosts.lock() {
                    if let Some(h) = hosts.iter_mut().find(|h| &h.name == host) {
                        h.extra.push((n.name.clone(), a));
                    }
                }
            }
        }
        for h in &spec.hosts {
            let Some((netns, _)) = self.host(&h.name) else {
                continue;
            };
            if h.forwarding {
                run_in(&netns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            }
            for r in &h.routes {
                let verb = if r.to == "default" { "replace" } else { "add" };
                ip(&["-n", &netns, "route", verb, &r.to, "via", &r.via])?;
            }
        }
        Ok(())
    }

    fn data_owner(&self, host: &str) -> Result<Option<nix::unistd::User>, LabError> {
        match self
            .data_owners
            .iter()
            .find(|(h, _)| h == host)
            .and_then(|(_, o)| o.clone())
        {
            Some(u) => nix::unistd::User::from_name(&u)
                .ok()
                .flatten()
                .map(Some)
                .ok_or_else(|| LabError::Setup(format!("no user named {u:?}"))),
            None => Ok(None),
        }
    }

    fn is_oneshot(&self, host: &str, process: &str) -> bool {
        self.with_proc(host, process, |h, i| h.procs[i].spec.oneshot)
            .unwrap_or(false)
    }

    /// Wait for a one-shot process to exit 0 (within its `ready.timeout`, default 60s).
    fn wait_exit(&self, host: &str, process: &str) -> Result<(), LabError> {
        let timeout = self
            .with_proc(host, process, |h, i| {
                h.procs[i].spec.ready.as_ref().map(|r| r.timeout())
            })?
            .unwrap_or(Duration::from_secs(60));
        let deadline = Instant::now() + timeout;
        let log = self.log_dir.join(format!("{host}-{process}.log"));
        loop {
            let status = self.with_proc(host, process, |h, i| {
                h.procs[i].child.as_mut().and_then(reap_if_exited)
            })?;
            if let Some(st) = status {
                if st.success() {
                    return Ok(());
                }
                return Err(LabError::Start {
                    host: host.into(),
                    process: process.into(),
                    message: format!("one-shot step failed ({st}); see {}", log.display()),
                });
            }
            if Instant::now() >= deadline {
                return Err(LabError::NotReady {
                    host: host.into(),
                    process: process.into(),
                    timeout,
                    last: "the one-shot step was still running".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop a lab process: SIGTERM to its main process, then SIGKILL to everything left in
    /// its cgroup after `grace`.
    pub fn stop_process(
        &self,
        host: &str,
        process: &str,
        grace: Duration,
    ) -> Result<String, LabProcessError> {
        let _ = self.poll();
        let procs: Vec<ProcId> = self
            .processes(host, Some(process))
            .into_iter()
            .flat_map(|(_, ids)| ids)
            .collect();
        let Some(main) = procs.iter().min_by_key(|p| p.start_time).copied() else {
            return Ok(format!("{host}/{process} is not running"));
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(main.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + grace;
        while procs.iter().any(|p| p.alive()) && Instant::now() < deadline {
            let _ = self.poll();
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut killed = 0;
        for p in procs.iter().filter(|p| p.alive()) {
            if nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
            {
                killed += 1;
            }
        }
        let _ = self.poll();
        Ok(if killed == 0 {
            format!("stopped {host}/{process} (SIGTERM)")
        } else {
            format!("stopped {host}/{process}: {killed} process(es) needed SIGKILL after {grace:?}")
        })
    }

    fn with_proc<T>(
        &self,
        host: &str,
        process: &str,
        f: impl FnOnce(&mut HostRt, usize) -> T,
    ) -> Result<T, LabError> {
        let mut hosts = self
            .hosts
            .lock()
            .map_err(|_| LabError::Setup("lab lock poisoned".into()))?;
        let h = hosts
            .iter_mut()
            .find(|h| h.name == host)
            .ok_or_else(|| LabError::Setup(format!("no host {host}")))?;
        let i = h
            .procs
            .iter()
            .position(|p| p.spec.name == process)
            .ok_or_else(|| LabError::Setup(format!("no process {host}/{process}")))?;
        Ok(f(h, i))
    }

    /// Where a lab process's output goes.
    pub fn log_path(&self, host: &str, process: &str) -> PathBuf {
        self.log_dir.join(format!("{host}-{process}.log"))
    }

    /// A host's data directory: `<run>/data/<host>`.
    pub fn data_dir(&self, host: &str) -> PathBuf {
        self.data_root.join(host)
    }

    /// Lab placeholders in a string, as seen from `host`.
    pub fn substitute_for(&self, host: &str, s: &str) -> String {
        let addr = self.host(host).map_or(Ipv4Addr::UNSPECIFIED, |(_, a)| a);
        substitute(s, &self.data_root, addr, host)
    }

    /// Create the data directory and write `files` (first start only).
    fn prepare(&self, host: &str, process: &str) -> Result<(), LabError> {
        let err = |m: String| LabError::Start {
            host: host.into(),
            process: process.into(),
            message: m,
        };
        let (spec, addr) =
            self.with_proc(host, process, |h, i| (h.procs[i].spec.clone(), h.addr))?;
        let dir = self.data_dir(host);
        let owner_name = spec.user.clone().or_else(|| {
            self.data_owners
                .iter()
                .find(|(h, _)| h == host)
                .and_then(|(_, o)| o.clone())
        });
        let owner = match &owner_name {
            Some(u) => Some(
                nix::unistd::User::from_name(u)
                    .ok()
                    .flatten()
                    .ok_or_else(|| err(format!("no user named {u:?}")))?,
            ),
            None => None,
        };
        let chown = |p: &Path| -> Result<(), LabError> {
            if let Some(u) = &owner {
                nix::unistd::chown(p, Some(u.uid), Some(u.gid))
                    .map_err(|e| err(format!("chown {}: {e}", p.display())))?;
            }
            Ok(())
        };
        for (name, text) in &spec.files {
            let path = dir.join(name);
            let text = substitute(text, &self.data_root, addr, host);
            fs::write(&path, text).map_err(|e| err(format!("writing {}: {e}", path.display())))?;
            chown(&path)?;
        }
        Ok(())
    }

    fn start(&self, host: &str, process: &str) -> Result<ProcId, LabError> {
        let err = |m: String| LabError::Start {
            host: host.into(),
            process: process.into(),
            message: m,
        };
        let (spec, netns, restarts, addr) = self.with_proc(host, process, |h, i| {
            (
                h.procs[i].spec.clone(),
                h.netns.clone(),
                h.procs[i].restarts,
                h.addr,
            )
        })?;
        let sub = |s: &String| substitute(s, &self.data_root, addr, host);
        // cgroups of its own, one per controller
        let mut dirs = Vec::new();
        let mut fds: Vec<OwnedFd> = Vec::new();
        for c in CONTROLLERS {
            let Some(base) = self.mounts.base_for(c) else {
                continue;
            };
            let dir = base
                .join(&self.cgroup_root)
                .join(format!("{host}-{process}"));
            if dirs.contains(&dir) {
                continue;
            }
            self.journal.record(
                LAB_GROUP,
                &UndoAction::RemoveCgroup {
                    cgroup: dir.clone(),
                },
            )?;
            self.journal.record(
                LAB_GROUP,
                &UndoAction::KillCgroup {
                    cgroup: dir.clone(),
                },
            )?;
            cgroup::create(&dir)
                .map_err(|e| err(format!("creating cgroup {}: {e}", dir.display())))?;
            if c == "memory" {
                if let Some(limit) = spec.memory_limit {
                    cgroup::set_memory_limit(&dir, limit.0)
                        .map_err(|e| err(format!("setting memory limit: {e}")))?;
                }
            }
            let f = fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .map_err(|e| err(format!("opening {}: {e}", dir.display())))?;
            fds.push(f.into());
            dirs.push(dir);
        }
        let ns: OwnedFd = File::open(format!("/run/netns/{netns}"))
            .map_err(|e| err(format!("opening netns {netns}: {e}")))?
            .into();
        let log_path = self.log_dir.join(format!("{host}-{process}.log"));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| err(format!("log {}: {e}", log_path.display())))?;
        let log2 = log.try_clone().map_err(|e| err(e.to_string()))?;
        let mut cmd = Command::new(sub(&spec.argv[0]));
        cmd.args(spec.argv[1..].iter().map(sub))
            .envs(spec.env.iter().map(|(k, v)| (k, sub(v))))
            .current_dir(
                spec.workdir
                    .as_ref()
                    .map_or_else(|| self.base_dir.clone(), |w| self.base_dir.join(w)),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let mut run_as = None;
        if let Some(u) = &spec.user {
            let user = nix::unistd::User::from_name(u)
                .ok()
                .flatten()
                .ok_or_else(|| err(format!("no user named {u:?}")))?;
            let name = std::ffi::CString::new(u.as_str()).map_err(|e| err(e.to_string()))?;
            let groups = nix::unistd::getgrouplist(&name, user.gid)
                .map_err(|e| err(format!("groups of {u}: {e}")))?;
            run_as = Some(crate::sys::RunAs {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                groups: groups.iter().map(|g| g.as_raw()).collect(),
            });
            for (k, v) in [
                ("HOME", user.dir.to_string_lossy().into_owned()),
                ("USER", u.clone()),
                ("LOGNAME", u.clone()),
            ] {
                if !spec.env.contains_key(k) {
                    cmd.env(k, v);
                }
            }
        }
        crate::sys::new_session_before_exec(&mut cmd);
        crate::sys::enter_before_exec(&mut cmd, Some(ns), fds, run_as);
        let child = cmd
            .spawn()
            .map_err(|e| err(format!("{}: {e}", spec.argv[0])))?;
        let pid = child.id() as i32;
        let id = ProcId::of(pid).ok_or_else(|| err("exited immediately".into()))?;
        self.with_proc(host, process, |h, i| {
            let p = &mut h.procs[i];
            p.child = Some(child);
            p.id = Some(id);
            p.cgroups = dirs;
            p.restarts = restarts;
        })?;
        tracing::info!(host, process, pid, "lab process started");
        Ok(id)
    }

    fn wait_ready(&self, host: &str, process: &str) -> Result<(), LabError> {
        let (ready, netns, addr) = self.with_proc(host, process, |h, i| {
            (h.procs[i].spec.ready.clone(), h.netns.clone(), h.addr)
        })?;
        let Some(ready) = ready else { return Ok(()) };
        let deadline = Instant::now() + ready.timeout();
        let check = ready.check_at(&addr.to_string());
        let mut last = String::from("not checked");
        let ns = Netns::Named { name: netns };
        while Instant::now() < deadline {
            if let Some(exit) = self.exit_status(host, process) {
                return Err(LabError::Start {
                    host: host.into(),
                    process: process.into(),
                    message: format!(
                        "exited during start-up ({exit}); see {}",
                        self.log_dir.join(format!("{host}-{process}.log")).display()
                    ),
                });
            }
            let s = crate::probe::check_once(&check, Some(&ns), Duration::from_millis(500));
            if s.ok {
                return Ok(());
            }
            last = s.detail;
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(LabError::NotReady {
            host: host.into(),
            process: process.into(),
            timeout: ready.timeout(),
            last,
        })
    }

    fn exit_status(&self, host: &str, process: &str) -> Option<String> {
        self.with_proc(host, process, |h, i| {
            let c = h.procs[i].child.as_mut()?;
            reap_if_exited(c).map(|s| s.to_string())
        })
        .ok()
        .flatten()
    }

    /// Reap exited processes and report them (never a live one's ptrace stops).
    pub fn poll(&self) -> Vec<LabEvent> {
        let mut out = Vec::new();
        if let Ok(mut hosts) = self.hosts.lock() {
            for h in hosts.iter_mut() {
                for p in h.procs.iter_mut() {
                    if let Some(c) = p.child.as_mut() {
                        if let Some(status) = reap_if_exited(c) {
                            out.push(LabEvent {
                                message: format!(
                                    "{}/{} (pid {}) exited: {status}",
                                    h.name,
                                    p.spec.name,
                                    c.id()
                                ),
                            });
                            p.child = None;
                        }
                    }
                }
            }
        }
        out
    }

    /// Addresses and namespace of a host.
    pub fn host(&self, name: &str) -> Option<(String, Ipv4Addr)> {
        let hosts = self.hosts.lock().ok()?;
        hosts
            .iter()
            .find(|h| h.name == name)
            .map(|h| (h.netns.clone(), h.addr))
    }

    /// Every address of a host: the lab bridge's first, then one per extra network.
    pub fn addrs(&self, name: &str) -> Vec<Ipv4Addr> {
        let Ok(hosts) = self.hosts.lock() else {
            return Vec::new();
        };
        hosts
            .iter()
            .find(|h| h.name == name)
            .map(|h| {
                std::iter::once(h.addr)
                    .chain(h.extra.iter().map(|(_, a)| *a))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Running lab processes of a host (all, or one by name): for each, its label and every
    /// process in its cgroup (a daemon's workers included), the started process first.
    pub fn processes(&self, host: &str, process: Option<&str>) -> Vec<(String, Vec<ProcId>)> {
        let Ok(hosts) = self.hosts.lock() else {
            return Vec::new();
        };
        let Some(h) = hosts.iter().find(|h| h.name == host) else {
            return Vec::new();
        };
        h.procs
            .iter()
            .filter(|p| process.is_none_or(|n| n == p.spec.name))
            .filter_map(|p| {
                let main = p.id.filter(ProcId::alive);
                let mut ids: Vec<ProcId> = main.into_iter().collect();
                if let Some(dir) = p.cgroups.first() {
                    for pid in cgroup::pids(dir) {
                        if let Some(id) = ProcId::of(pid) {
                            if !ids.contains(&id) && id.alive() {
                                ids.push(id);
                            }
                        }
                    }
                }
                (!ids.is_empty()).then(|| (format!("{}/{}", h.name, p.spec.name), ids))
            })
            .collect()
    }

    pub fn host_names(&self) -> Vec<String> {
        self.hosts
            .lock()
            .map(|h| h.iter().map(|h| h.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Tear everything down: processes, cgroups, links, namespaces.
    pub fn teardown(&self) -> Result<Vec<String>, TeardownError> {
        // Reap children first so nothing lingers as a zombie.
        let groups =
            crate::journal::read_groups(self.journal.path()).map_err(TeardownError::Journal)?;
        let actions: Vec<UndoAction> = groups
            .into_iter()
            .filter(|g| g.name == LAB_GROUP)
            .flat_map(|g| g.actions)
            .collect();
        let r = crate::journal::revert_actions(&actions, &crate::journal::NoLab)
            .map_err(TeardownError::Revert);
        if let Ok(mut hosts) = self.hosts.lock() {
            for h in hosts.iter_mut() {
                for p in h.procs.iter_mut() {
                    if let Some(mut c) = p.child.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                }
            }
        }
        // Data directories hold run-only state (databases, configs); logs stay.
        let _ = fs::remove_dir_all(&self.data_root);
        if r.is_ok() {
            self.journal
                .done(LAB_GROUP)
                .map_err(TeardownError::Journal)?;
        }
        r
    }
}

/// A lab teardown that did not complete: what is left is in the journal for
/// `murphy recover`.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error("{0}")]
    Journal(std::io::Error),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Revert(Vec<crate::journal::RevertError>),
}

impl RevertEnv for Lab {
    fn in_run(&self) -> bool {
        true
    }
    fn restart_lab_process(&self, host: &str, process: &str) -> Result<String, LabProcessError> {
        let failed = |message: String| LabProcessError {
            host: host.into(),
            process: process.into(),
            message,
        };
        // Reap the old one first.
        let _ = self.poll();
        let alive = self.processes(host, Some(process));
        if !alive.is_empty() {
            return Ok(format!("{host}/{process} is already running"));
        }
        self.with_proc(host, process, |h, i| h.procs[i].restarts += 1)
            .map_err(|e| failed(e.to_string()))?;
        let id = self
            .start(host, process)
            .map_err(|e| failed(e.to_string()))?;
        Ok(format!("restarted {host}/{process} as pid {}", id.pid))
    }
}

/// The exit status of `c` once it has exited. Only a zombie is waited for: a wait on a
/// live child would also take the stops of a thread of Murphy's that traces it (the
/// in-process leak's revert runs `munmap` in the target), and that thread would then wait
/// forever for a stop it never sees.
fn reap_if_exited(c: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let pid = i32::try_from(c.id()).ok()?;
    if crate::procfs::stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X')) {
        return None;
    }
    c.try_wait().ok().flatten()
}
