//! The undo journal. Before Murphy changes anything it appends an undo record here and
//! syncs it to disk; reverting applies a group's records in reverse. Every undo action is
//! idempotent, so applying one for a change that never happened (a crash between the
//! record and the change) is harmless. `murphy recover` replays journals a crashed run
//! left behind, with exactly the same code the runner uses to revert.
//!
//! File format: one JSON object per line, `{"group":..,"undo":{..}}`, `{"group":..,"begin":..}`
//! or `{"group":..,"done":true}`, in `<state-dir>/journal/<run-id>.jsonl`.

use crate::cgroup;
use crate::fsnode::{Content, FsError, Meta, RootRef, Special, Want};
pub use crate::netns::Netns;
use crate::procfs::ProcId;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One step that undoes one change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case", tag = "action")]
#[strum(serialize_all = "kebab-case")]
pub enum UndoAction {
    /// Delete an nftables table (one per injection).
    DeleteNftTable {
        netns: Netns,
        family: String,
        table: String,
    },
    /// Thaw a frozen cgroup.
    Thaw { cgroup: PathBuf },
    /// Move processes back into the cgroup they came from.
    MoveBack { procs: Vec<ProcId>, cgroup: PathBuf },
    /// Remove a cgroup Murphy created.
    RemoveCgroup { cgroup: PathBuf },
    /// SIGKILL every process in a cgroup Murphy created.
    KillCgroup { cgroup: PathBuf },
    /// Resume a stopped process.
    Continue { proc: ProcId },
    /// SIGKILL a process Murphy started.
    Kill { proc: ProcId },
    /// Start a lab process again (only a running lab can; recovery skips it).
    RestartLabProcess { host: String, process: String },
    /// Delete a named network namespace Murphy created.
    DeleteNetns { name: String },
    /// Delete a network link Murphy created.
    DeleteLink { name: String },
    /// Put a file's original bytes, mode, owner, extended attributes and times back from
    /// the journal's copy, resolved beneath `root` without following a symlink.
    RestoreFile {
        path: PathBuf,
        /// The copy in the journal's data directory; none when wiped without a copy.
        backup: Option<PathBuf>,
        mode: u32,
        uid: u32,
        gid: u32,
        /// Restore when the fault ends (false: only `murphy recover` after a crash does).
        on_revert: bool,
        /// The root `path` lies beneath (`/`, or the target's `/proc/<pid>/root` and that
        /// process). Absent in journals written before it was recorded: read from `path`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root: Option<RootRef>,
        /// Extended attributes and times. Absent in older journals: left as they are.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta: Option<Meta>,
    },
    /// Send a signal again (e.g. SIGHUP so a restored config is reloaded).
    Signal { proc: ProcId, signal: i32 },
    /// Unmap a range Murphy mapped inside a running process (in-process memory leak),
    /// by running `munmap` in it. Unmapping what was never mapped is harmless.
    Unmap { proc: ProcId, addr: u64, len: u64 },
    /// Ask a helper Murphy started to stop (SIGTERM: it finishes what it is doing to a
    /// target, e.g. puts a traced thread's registers back, and exits), SIGKILL after 3 s.
    StopHelper { proc: ProcId },
    /// Unmount a filesystem Murphy mounted (lazily, so a busy mount still goes).
    Unmount { path: PathBuf },
    /// Detach every loop device backed by a file Murphy created, and delete the file.
    DetachLoop { backing: PathBuf },
    /// Write a value back into a cgroup file (e.g. the original `io.max` line).
    WriteCgroupFile { path: PathBuf, value: String },
    /// Delete a route Murphy added (`ip route del <route>`).
    DeleteRoute { netns: Netns, route: Vec<String> },
    /// Put a route back that Murphy withdrew (`ip route replace <route>`).
    RestoreRoute { netns: Netns, route: Vec<String> },
    /// Bring an interface back up, then put back the static routes that went with it.
    LinkUp {
        netns: Netns,
        dev: String,
        routes: Vec<Vec<String>>,
    },
    /// Delete the root qdisc Murphy put on an interface.
    DeleteQdisc { netns: Netns, dev: String },
    /// Delete the `ip filter` table that iptables (nf_tables backend) created when Murphy
    /// inserted its first rule, once it holds no rule of anyone's.
    DeleteIptablesTable { netns: Netns },
    /// Delete an iptables rule Murphy inserted (`iptables -D <chain> <rule>`).
    DeleteIptablesRule {
        netns: Netns,
        chain: String,
        rule: Vec<String>,
    },
    /// Recreate a directory (or put its metadata back) with its mode, owner, extended
    /// attributes and times.
    RestoreDir {
        path: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
        on_revert: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root: Option<RootRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta: Option<Meta>,
    },
    /// Recreate a symlink (as a link, its target exactly), a FIFO, a socket or a device
    /// node (its rdev), with its mode, owner, extended attributes and times.
    RestoreNode {
        path: PathBuf,
        root: RootRef,
        node: Special,
        mode: u32,
        uid: u32,
        gid: u32,
        meta: Meta,
        on_revert: bool,
    },
}

/// An undo action that did not complete: which action, on what, and why. The journal
/// keeps the action for `murphy recover`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RevertError {
    /// The action's name as journaled (`delete-nft-table`, `thaw`, ...).
    pub action: &'static str,
    /// What it acts on (a namespace and table, a cgroup, a process, a path).
    pub target: String,
    pub message: String,
}

/// A lab process that could not be started or stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LabProcessError {
    pub host: String,
    pub process: String,
    pub message: String,
}

/// A program run inside a namespace (argv only) that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// The namespace, as [`Netns::describe`] says it.
    pub netns: String,
    pub program: String,
    pub message: String,
}

/// What reverting needs from its surroundings: a running lab can restart processes.
pub trait RevertEnv {
    fn restart_lab_process(&self, host: &str, process: &str) -> Result<String, LabProcessError>;
    /// True while an experiment runs (data restores marked `on_revert: false` are left to
    /// the experiment's own recovery); false for `murphy recover` after a crash.
    fn in_run(&self) -> bool {
        false
    }
}

/// Reverting during a run that has no lab.
pub struct NoLabRun;
impl RevertEnv for NoLabRun {
    fn restart_lab_process(&self, host: &str, process: &str) -> Result<String, LabProcessError> {
        NoLab.restart_lab_process(host, process)
    }
    fn in_run(&self) -> bool {
        true
    }
}

/// Reverting without a running lab (recovery after a crash).
pub struct NoLab;
impl RevertEnv for NoLab {
    fn restart_lab_process(&self, host: &str, process: &str) -> Result<String, LabProcessError> {
        Ok(format!(
            "not restarting {host}/{process}: the lab is not running"
        ))
    }
}

pub(crate) fn run_quiet(argv: &[&str], netns: Option<OwnedFd>) -> Result<String, String> {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::sys::enter_before_exec(&mut cmd, netns, Vec::new(), None);
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn signal(proc: &ProcId, sig: nix::sys::signal::Signal) -> Result<bool, String> {
    if !proc.exists() {
        return Ok(false);
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(proc.pid), sig) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(format!("sending {sig} to pid {}: {e}", proc.pid)),
    }
}

fn wait_gone(proc: &ProcId, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while proc.alive() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

impl UndoAction {
    /// Apply the action. Idempotent: a second call, or a call for a change that never
    /// happened, succeeds and says there was nothing to do.
    /// The action's name as journaled (`delete-nft-table`, `thaw`, ...).
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// What the action acts on, for messages and errors.
    pub fn target(&self) -> String {
        use UndoAction as U;
        match self {
            U::DeleteNftTable {
                netns,
                family,
                table,
            } => format!("{family} {table} in {}", netns.describe()),
            U::Thaw { cgroup }
            | U::RemoveCgroup { cgroup }
            | U::KillCgroup { cgroup }
            | U::MoveBack { cgroup, .. } => cgroup.display().to_string(),
            U::Continue { proc }
            | U::Kill { proc }
            | U::StopHelper { proc }
            | U::Signal { proc, .. }
            | U::Unmap { proc, .. } => format!("pid {}", proc.pid),
            U::RestartLabProcess { host, process } => format!("{host}/{process}"),
            U::DeleteNetns { name } => format!("netns {name}"),
            U::DeleteLink { name } => format!("link {name}"),
            U::RestoreFile { path, .. }
            | U::RestoreDir { path, .. }
            | U::RestoreNode { path, .. }
            | U::Unmount { path }
            | U::WriteCgroupFile { path, .. } => path.display().to_string(),
            U::DetachLoop { backing } => backing.display().to_string(),
            U::DeleteRoute { netns, route } | U::RestoreRoute { netns, route } => {
                format!("route {} in {}", route.join(" "), netns.describe())
            }
            U::LinkUp { netns, dev, .. } | U::DeleteQdisc { netns, dev } => {
                format!("{dev} in {}", netns.describe())
            }
            U::DeleteIptablesRule { netns, chain, .. } => {
                format!("iptables {chain} in {}", netns.describe())
            }
            U::DeleteIptablesTable { netns } => {
                format!("iptables table filter in {}", netns.describe())
            }
        }
    }

    /// Undo the change. Idempotent: undoing what was never done (or already undone) is
    /// not an error.
    pub fn apply(&self, env: &dyn RevertEnv) -> Result<String, RevertError> {
        self.apply_step(env).map_err(|message| RevertError {
            action: self.name(),
            target: self.target(),
            message,
        })
    }

    fn apply_step(&self, env: &dyn RevertEnv) -> Result<String, String> {
        match self {
            // nftables, links, routes and other network state
            UndoAction::DeleteNftTable {
                netns,
                family,
                table,
            } => delete_nft_table(netns, family, table),
            UndoAction::DeleteNetns { name } => delete_netns(name),
            UndoAction::DeleteLink { name } => delete_link(name),
            UndoAction::DeleteRoute { netns, route } => delete_route(netns, route),
            UndoAction::RestoreRoute { netns, route } => restore_route(netns, route),
            UndoAction::LinkUp { netns, dev, routes } => link_up(netns, dev, routes),
            UndoAction::DeleteQdisc { netns, dev } => delete_qdisc(netns, dev),
            UndoAction::DeleteIptablesRule { netns, chain, rule } => {
                delete_iptables_rule(netns, chain, rule)
            }
            UndoAction::DeleteIptablesTable { netns } => delete_iptables_table(netns),
            // cgroups and processes
            UndoAction::Thaw { cgroup } => thaw(cgroup),
            UndoAction::MoveBack { procs, cgroup } => move_back(procs, cgroup),
            UndoAction::RemoveCgroup { cgroup } => remove_cgroup(cgroup),
            UndoAction::KillCgroup { cgroup } => kill_cgroup(cgroup),
            UndoAction::WriteCgroupFile { path, value } => write_cgroup_file(path, value),
            UndoAction::Continue { proc } => resume(proc),
            UndoAction::Kill { proc } => kill(proc),
            UndoAction::StopHelper { proc } => stop_helper(proc),
            UndoAction::Signal {
                proc,
                signal: signo,
            } => resend_signal(proc, *signo),
            UndoAction::Unmap { proc, addr, len } => unmap(proc, *addr, *len),
            // files and data
            UndoAction::RestoreFile {
                path,
                backup,
                mode,
                uid,
                gid,
                on_revert,
                root,
                meta,
            } => undo_file(
                path,
                root.as_ref(),
                backup.as_deref(),
                (*mode, *uid, *gid, meta.as_ref()),
                *on_revert,
                env,
            ),
            UndoAction::RestoreDir {
                path,
                mode,
                uid,
                gid,
                on_revert,
                root,
                meta,
            } => undo_node(
                path,
                root.as_ref(),
                Want {
                    content: Content::Dir,
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    meta: meta.as_ref(),
                },
                *on_revert,
                env,
            ),
            UndoAction::RestoreNode {
                path,
                root,
                node,
                mode,
                uid,
                gid,
                meta,
                on_revert,
            } => undo_node(
                path,
                Some(root),
                Want {
                    content: Content::Special(node),
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    meta: Some(meta),
                },
                *on_revert,
                env,
            ),
            // mounts and the lab
            UndoAction::Unmount { path } => unmount(path),
            UndoAction::DetachLoop { backing } => detach_loop(backing),
            UndoAction::RestartLabProcess { host, process } => env
                .restart_lab_process(host, process)
                .map_err(|e| e.message),
        }
    }
}

// Undoing network changes: nftables, namespaces, links, routes, qdiscs, iptables.

/// Delete an nftables table (over netlink, in process), unless its namespace or the table
/// is already gone.
fn delete_nft_table(netns: &Netns, family: &str, table: &str) -> Result<String, String> {
    let gone = || format!("{} is gone; table {table} went with it", netns.describe());
    if netns.open().is_err() {
        return Ok(gone());
    }
    let mut nft = match crate::netlink::nft::Nft::open(netns) {
        Ok(n) => n,
        // The namespace went between the check and the socket.
        Err(_) if netns.open().is_err() => return Ok(gone()),
        Err(e) => return Err(format!("reverting partition in {}: {e}", netns.describe())),
    };
    match nft.delete_table(family, table) {
        Ok(true) => Ok(format!(
            "deleted nft table {family} {table} in {}",
            netns.describe()
        )),
        Ok(false) => Ok(format!(
            "nft table {family} {table} already absent in {}",
            netns.describe()
        )),
        Err(e) => Err(format!("reverting partition in {}: {e}", netns.describe())),
    }
}

/// Delete a named network namespace, unless it is already absent.
fn delete_netns(name: &str) -> Result<String, String> {
    let path = PathBuf::from(format!("/run/netns/{name}"));
    if !path.exists() {
        return Ok(format!("netns {name} already absent"));
    }
    run_quiet(&["ip", "netns", "delete", name], None)
        .map(|_| format!("deleted netns {name}"))
        .map_err(|e| format!("deleting netns {name}: {e}"))
}

/// Delete a network link, unless it is already absent.
fn delete_link(name: &str) -> Result<String, String> {
    if !Path::new("/sys/class/net").join(name).exists() {
        return Ok(format!("link {name} already absent"));
    }
    run_quiet(&["ip", "link", "delete", name], None)
        .map(|_| format!("deleted link {name}"))
        .map_err(|e| format!("deleting link {name}: {e}"))
}

/// rtnetlink in `netns`; `None` when the namespace is gone (nothing left to undo there).
fn rtnl(netns: &Netns) -> Result<Option<crate::netlink::route::Route>, String> {
    if netns.open().is_err() {
        return Ok(None);
    }
    match crate::netlink::route::Route::open(netns) {
        Ok(r) => Ok(Some(r)),
        Err(_) if netns.open().is_err() => Ok(None),
        Err(e) => Err(format!("in {}: {e}", netns.describe())),
    }
}

/// Delete a route Murphy added (`ip route del`, over netlink); an absent route is nothing
/// to do.
fn delete_route(netns: &Netns, route: &[String]) -> Result<String, String> {
    let r = route.join(" ");
    let spec = crate::netlink::route::RouteSpec::parse(route)?;
    let done = match rtnl(netns)? {
        Some(mut nl) => nl.delete(&spec).map_err(|e| e.to_string())?,
        None => false,
    };
    Ok(match done {
        true => format!("deleted route {r} in {}", netns.describe()),
        false => format!("route {r} already absent in {}", netns.describe()),
    })
}

/// Put a withdrawn route back (`ip route replace`, over netlink).
fn restore_route(netns: &Netns, route: &[String]) -> Result<String, String> {
    let r = route.join(" ");
    let spec = crate::netlink::route::RouteSpec::parse(route)?;
    if let Some(mut nl) = rtnl(netns)? {
        nl.add(&spec, true).map_err(|e| e.to_string())?;
    }
    Ok(format!("route {r} is back in {}", netns.describe()))
}

/// Bring an interface back up, then put back its static routes (over netlink).
fn link_up(netns: &Netns, dev: &str, routes: &[Vec<String>]) -> Result<String, String> {
    let specs = routes
        .iter()
        .map(|r| crate::netlink::route::RouteSpec::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut back = 0;
    if let Some(mut nl) = rtnl(netns)? {
        nl.set_up(dev, true).map_err(|e| e.to_string())?;
        for r in &specs {
            nl.add(r, true).map_err(|e| e.to_string())?;
            back += 1;
        }
    }
    Ok(format!(
        "{dev} is up in {} ({back} static route(s) put back)",
        netns.describe()
    ))
}

/// Delete the root qdisc Murphy put on an interface (over netlink); none left is nothing
/// to do.
fn delete_qdisc(netns: &Netns, dev: &str) -> Result<String, String> {
    let done = match rtnl(netns)? {
        Some(mut nl) => nl.delete_root_qdisc(dev).map_err(|e| e.to_string())?,
        None => false,
    };
    Ok(match done {
        true => format!("deleted the root qdisc of {dev} in {}", netns.describe()),
        false => format!("no qdisc of Murphy's left on {dev} in {}", netns.describe()),
    })
}

/// Delete an iptables rule Murphy inserted (`iptables -D`); an absent rule is nothing to do.
fn delete_iptables_rule(netns: &Netns, chain: &str, rule: &[String]) -> Result<String, String> {
    let mut args = vec![chain.to_string()];
    args.extend(rule.iter().cloned());
    net_undo(
        netns,
        &["iptables", "-w", "-D"],
        &args,
        &["does a matching rule exist", "Bad rule", "No chain"],
    )
    .map(|done| match done {
        true => format!("deleted iptables rule in {chain} in {}", netns.describe()),
        false => format!(
            "iptables rule in {chain} already absent in {}",
            netns.describe()
        ),
    })
}

/// Delete the `ip filter` table iptables created for Murphy's rules, unless it holds a
/// rule or chain of anyone's (then it stays, and that is no leftover of Murphy's).
fn delete_iptables_table(netns: &Netns) -> Result<String, String> {
    let (Ok(fd), Ok(fd2)) = (netns.open(), netns.open()) else {
        return Ok(format!("{} is gone", netns.describe()));
    };
    let Ok(listed) = run_quiet(&["iptables", "-w", "-S"], fd) else {
        return Ok(format!("no iptables filter table in {}", netns.describe()));
    };
    if listed
        .lines()
        .any(|l| !l.starts_with("-P ") || !l.ends_with(" ACCEPT"))
    {
        return Ok(format!(
            "kept the iptables filter table in {}: it holds rules or policies of others",
            netns.describe()
        ));
    }
    match run_quiet(&["nft", "delete", "table", "ip", "filter"], fd2) {
        Ok(_) => Ok(format!(
            "deleted the empty iptables filter table in {}",
            netns.describe()
        )),
        Err(e) if e.contains("No such file") => Ok(format!(
            "iptables filter table already absent in {}",
            netns.describe()
        )),
        Err(e) => Err(format!("in {}: {e}", netns.describe())),
    }
}

// Undoing changes to cgroups and processes.

/// Thaw a frozen cgroup, unless it is gone.
fn thaw(cgroup: &Path) -> Result<String, String> {
    if !cgroup.exists() {
        return Ok(format!("cgroup {} is gone", cgroup.display()));
    }
    cgroup::set_frozen(cgroup, false)
        .map(|_| format!("thawed {}", cgroup.display()))
        .map_err(|e| format!("thawing {}: {e}", cgroup.display()))
}

/// Move the processes that are still alive back into the cgroup they came from.
fn move_back(procs: &[ProcId], cgroup: &Path) -> Result<String, String> {
    let mut moved = 0;
    for p in procs.iter().filter(|p| p.alive()) {
        match cgroup::add_pid(cgroup, p.pid) {
            Ok(()) => moved += 1,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => {
                return Err(format!(
                    "moving pid {} back to {}: {e}",
                    p.pid,
                    cgroup.display()
                ))
            }
        }
    }
    Ok(format!(
        "moved {moved} process(es) back to {}",
        cgroup.display()
    ))
}

/// Remove a cgroup Murphy created.
fn remove_cgroup(cgroup: &Path) -> Result<String, String> {
    cgroup::remove(cgroup)
        .map(|_| format!("removed cgroup {}", cgroup.display()))
        .map_err(|e| format!("removing cgroup {}: {e}", cgroup.display()))
}

/// SIGKILL every process in a cgroup until it is empty (for at most three seconds).
fn kill_cgroup(cgroup: &Path) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut killed = 0;
    loop {
        let pids = cgroup::pids(cgroup);
        if pids.is_empty() {
            return Ok(format!(
                "killed {killed} process(es) in {}",
                cgroup.display()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "processes {pids:?} in {} survived SIGKILL",
                cgroup.display()
            ));
        }
        for pid in pids {
            if nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
            {
                killed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Write a value back into a cgroup file, unless the file is gone.
fn write_cgroup_file(path: &Path, value: &str) -> Result<String, String> {
    if !path.exists() {
        return Ok(format!("{} is gone", path.display()));
    }
    fs::write(path, value)
        .map(|_| format!("wrote {value:?} to {}", path.display()))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Resume a stopped process (SIGCONT), unless it is gone.
fn resume(proc: &ProcId) -> Result<String, String> {
    signal(proc, nix::sys::signal::Signal::SIGCONT).map(|sent| {
        if sent {
            format!("resumed pid {}", proc.pid)
        } else {
            format!("pid {} is gone", proc.pid)
        }
    })
}

/// SIGKILL a process Murphy started and wait (up to three seconds) until it is gone.
fn kill(proc: &ProcId) -> Result<String, String> {
    if !signal(proc, nix::sys::signal::Signal::SIGKILL)? {
        return Ok(format!("pid {} already gone", proc.pid));
    }
    if wait_gone(proc, Duration::from_secs(3)) {
        Ok(format!("killed pid {}", proc.pid))
    } else {
        Err(format!("pid {} survived SIGKILL", proc.pid))
    }
}

/// SIGTERM a helper and wait for it to finish on its own; SIGKILL it after three seconds.
fn stop_helper(proc: &ProcId) -> Result<String, String> {
    if !signal(proc, nix::sys::signal::Signal::SIGTERM)? {
        return Ok(format!("helper pid {} already gone", proc.pid));
    }
    if wait_gone(proc, Duration::from_secs(3)) {
        return Ok(format!("helper pid {} stopped", proc.pid));
    }
    kill(proc).map(|m| format!("helper pid {} did not stop on SIGTERM: {m}", proc.pid))
}

/// Send signal number `signo` to a process again, unless it is gone.
fn resend_signal(proc: &ProcId, signo: i32) -> Result<String, String> {
    let sig =
        nix::sys::signal::Signal::try_from(signo).map_err(|e| format!("signal {signo}: {e}"))?;
    signal(proc, sig).map(|sent| {
        if sent {
            format!("sent {sig} to pid {}", proc.pid)
        } else {
            format!("pid {} is gone; no {sig} sent", proc.pid)
        }
    })
}

/// Unmap `len` bytes at `addr` inside a live process by running `munmap` in it.
fn unmap(proc: &ProcId, addr: u64, len: u64) -> Result<String, String> {
    if !proc.alive() {
        return Ok(format!("pid {} is gone; nothing to unmap", proc.pid));
    }
    // A helper that was leaking into it may still be letting go of it: retry a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    let r = loop {
        let r = crate::ptrace::Injector::attach(proc.pid).and_then(|mut inj| {
            let r = inj.syscall(crate::ptrace::nr::MUNMAP, &[addr, len])?;
            inj.detach()?;
            Ok(r)
        });
        match r {
            Err(crate::ptrace::PtraceError::Busy(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => break r,
        }
    };
    match r {
        Ok(0) => Ok(format!(
            "unmapped {} MiB at {addr:#x} in pid {}",
            len >> 20,
            proc.pid
        )),
        Ok(e) => Err(format!("munmap in pid {} returned {e}", proc.pid)),
        Err(crate::ptrace::PtraceError::Gone) => {
            Ok(format!("pid {} is gone; nothing to unmap", proc.pid))
        }
        Err(e) => Err(format!("unmapping in pid {}: {e}", proc.pid)),
    }
}

// Undoing changes to files and data.

/// Put a file back from the journal's copy, with its `(mode, uid, gid, meta)`; during a
/// run, a file not marked `on_revert` is left to the experiment's own recovery.
fn undo_file(
    path: &Path,
    root: Option<&RootRef>,
    backup: Option<&Path>,
    (mode, uid, gid, meta): (u32, u32, u32, Option<&Meta>),
    on_revert: bool,
    env: &dyn RevertEnv,
) -> Result<String, String> {
    if !on_revert && env.in_run() {
        return Ok(format!(
            "left {} as the experiment's recovery made it",
            path.display()
        ));
    }
    let Some(backup) = backup else {
        return Ok(format!(
            "{} cannot be restored: it was wiped without a journal copy (journalCopy: false)",
            path.display()
        ));
    };
    let bytes = fs::read(backup).map_err(|e| {
        format!(
            "restoring {}: reading the journal copy {}: {e}",
            path.display(),
            backup.display()
        )
    })?;
    let want = Want {
        content: Content::File(&bytes),
        mode,
        uid,
        gid,
        meta,
    };
    restore(path, root, &want)
        .map_err(|e| format!("{e} (the original is kept at {})", backup.display()))
}

/// Put a directory or a special node back; during a run, one not marked `on_revert` is
/// left as it is.
fn undo_node(
    path: &Path,
    root: Option<&RootRef>,
    want: Want<'_>,
    on_revert: bool,
    env: &dyn RevertEnv,
) -> Result<String, String> {
    if !on_revert && env.in_run() {
        return Ok(format!("left {} as it is", path.display()));
    }
    restore(path, root, &want)
}

/// Restore `path` beneath its root (journals from before roots were recorded: the root
/// read from the path), exactly, or fail saying what differs.
fn restore(path: &Path, root: Option<&RootRef>, want: &Want<'_>) -> Result<String, String> {
    let root = root
        .cloned()
        .unwrap_or_else(|| RootRef::of_legacy_path(path));
    let rel = path.strip_prefix(&root.path).map_err(|_| {
        format!(
            "restoring {}: the path is not beneath its root {}",
            path.display(),
            root.path.display()
        )
    })?;
    let failed = |e: FsError| match e {
        FsError::Refused { path: p, why } if p == path => {
            format!("restoring {}: {why}", path.display())
        }
        FsError::Differs { path: p, what } if p == path => format!(
            "restoring {}: not as it was after the restore: {what}",
            path.display()
        ),
        e => format!("restoring {}: {e}", path.display()),
    };
    let done = root
        .open()
        .and_then(|r| r.restore(rel, want))
        .map_err(failed)?;
    let what = match want.content {
        Content::File(b) => format!("{} bytes, ", b.len()),
        Content::Dir => "directory, ".into(),
        Content::Special(s) => format!("{}, ", s.describe()),
    };
    Ok(format!(
        "{done} ({what}mode, owner{})",
        if want.meta.is_some() {
            ", extended attributes and times"
        } else {
            ""
        }
    ))
}

// Undoing mounts and the lab's loop devices.

/// Unmount a filesystem lazily, unless it is not mounted.
fn unmount(path: &Path) -> Result<String, String> {
    let mounted = fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&*path.to_string_lossy()));
    if !mounted {
        return Ok(format!("{} not mounted", path.display()));
    }
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
        .map(|_| format!("unmounted {}", path.display()))
        .map_err(|e| format!("unmounting {}: {e}", path.display()))
}

/// Detach every loop device backed by `backing`, then delete the file.
fn detach_loop(backing: &Path) -> Result<String, String> {
    let b = backing.to_string_lossy().into_owned();
    let list =
        run_quiet(&["losetup", "--noheadings", "-O", "NAME", "-j", &b], None).unwrap_or_default();
    let mut done = Vec::new();
    for dev in list.split_whitespace() {
        run_quiet(&["losetup", "-d", dev], None)?;
        done.push(dev.to_string());
    }
    if backing.exists() {
        fs::remove_file(backing).map_err(|e| format!("removing {}: {e}", backing.display()))?;
    }
    Ok(if done.is_empty() {
        format!("removed {}", backing.display())
    } else {
        format!(
            "detached {} and removed {}",
            done.join(", "),
            backing.display()
        )
    })
}

/// Run `fixed` + `args` inside `netns` to undo a network change. `Ok(true)`: done;
/// `Ok(false)`: nothing to do (the namespace is gone, or the command failed with one of
/// the `absent` messages).
fn net_undo(
    netns: &Netns,
    fixed: &[&str],
    args: &[String],
    absent: &[&str],
) -> Result<bool, String> {
    let Ok(fd) = netns.open() else {
        return Ok(false);
    };
    let mut argv: Vec<&str> = fixed.to_vec();
    argv.extend(args.iter().map(String::as_str));
    match run_quiet(&argv, fd) {
        Ok(_) => Ok(true),
        Err(e) if absent.iter().any(|a| e.contains(a)) => Ok(false),
        Err(e) => Err(format!("in {}: {e}", netns.describe())),
    }
}

/// Run a program inside a network namespace (argv only) and return its standard output.
pub fn run_in_netns(netns: &Netns, argv: &[&str]) -> Result<String, CommandError> {
    let failed = |message: String| CommandError {
        netns: netns.describe(),
        program: argv.first().map(|p| p.to_string()).unwrap_or_default(),
        message,
    };
    let fd = netns
        .open()
        .map_err(|e| failed(format!("opening {}: {e}", netns.describe())))?;
    run_quiet(argv, fd).map_err(failed)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    begin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    undo: Option<UndoAction>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    done: bool,
}

/// An append-only, fsynced journal for one run.
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    /// The hold on it (flock on a descriptor of its own) while this run lives.
    hold: Mutex<Option<nix::fcntl::Flock<File>>>,
}

impl Journal {
    pub fn dir(state_dir: &Path) -> PathBuf {
        state_dir.join("journal")
    }

    /// Create the journal of a live run and hold it: until this `Journal` is dropped (or
    /// its process dies, SIGKILL included: the kernel drops the lock), `recover` leaves it
    /// alone. A journal another live run holds is an error.
    pub fn create(state_dir: &Path, run_id: &str) -> io::Result<Journal> {
        let dir = Journal::dir(state_dir);
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{run_id}.jsonl"));
        Journal::claim(&path)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is held by a live run", path.display()),
            )
        })
    }

    /// Open the journal at `path` and hold it, or `None` when a live run holds it.
    pub fn claim(path: &Path) -> io::Result<Option<Journal>> {
        use nix::fcntl::{Flock, FlockArg};
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        // flock: per open file, released when its descriptor closes (the process's exit,
        // however it ends). Files are opened close-on-exec, so helpers the run starts
        // never inherit it.
        let hold = match Flock::lock(File::open(path)?, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(io::Error::from(e)),
        };
        Ok(Some(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            hold: Mutex::new(Some(hold)),
        }))
    }

    /// Stop holding the journal without finishing it, as a crash would: `recover` may
    /// replay it from now on (tests stand in for a dead run with it).
    pub fn abandon(&self) {
        if let Ok(mut h) = self.hold.lock() {
            h.take();
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where data faults keep copies of the originals: `<run-id>.data/` beside the journal.
    pub fn data_dir(&self) -> PathBuf {
        self.path.with_extension("data")
    }

    fn write(&self, line: &Line) -> io::Result<()> {
        self.write_with(line, true)
    }

    /// Append a line; `durable` waits until it is on disk.
    fn write_with(&self, line: &Line, durable: bool) -> io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(io::Error::other)?;
        text.push('\n');
        let mut f = self
            .file
            .lock()
            .map_err(|_| io::Error::other("journal lock poisoned"))?;
        f.write_all(text.as_bytes())?;
        if durable {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Open a group. Not synced on its own: a group without an undo record has nothing to
    /// undo, and the group's first [`Journal::record`] makes this line durable with it (one
    /// fdatasync of the same file flushes both) before any change is made.
    pub fn begin(&self, group: &str, label: &str) -> io::Result<()> {
        self.write_with(
            &Line {
                group: group.into(),
                begin: Some(label.into()),
                undo: None,
                done: false,
            },
            false,
        )
    }

    /// Record an undo action; returns only once it is on disk.
    pub fn record(&self, group: &str, action: &UndoAction) -> io::Result<()> {
        self.write(&Line {
            group: group.into(),
            begin: None,
            undo: Some(action.clone()),
            done: false,
        })
    }

    /// Mark a group reverted; its copies of original data are no longer needed.
    pub fn done(&self, group: &str) -> io::Result<()> {
        self.write(&Line {
            group: group.into(),
            begin: None,
            undo: None,
            done: true,
        })?;
        let copies = self.data_dir().join(group);
        if copies.exists() {
            fs::remove_dir_all(&copies)?;
        }
        Ok(())
    }

    /// Remove the journal once every group in it is done.
    pub fn finish(&self) -> io::Result<()> {
        let pending = read_groups(&self.path)?;
        if pending.iter().all(|g| g.done) {
            fs::remove_file(&self.path)?;
            let data = self.data_dir();
            if data.exists() {
                fs::remove_dir_all(&data)?;
            }
        }
        Ok(())
    }
}

/// A group of undo actions (one fault injection, or the lab).
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub label: String,
    pub actions: Vec<UndoAction>,
    pub done: bool,
}

pub fn read_groups(path: &Path) -> io::Result<Vec<Group>> {
    let f = File::open(path)?;
    let mut groups: Vec<Group> = Vec::new();
    for line in io::BufReader::new(f).lines() {
        let line = line?;
        // A torn last line from a crash mid-write is ignored: its change never started.
        let Ok(l) = serde_json::from_str::<Line>(&line) else {
            continue;
        };
        let idx = match groups.iter().position(|g| g.name == l.group) {
            Some(i) => i,
            None => {
                groups.push(Group {
                    name: l.group.clone(),
                    label: String::new(),
                    actions: Vec::new(),
                    done: false,
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[idx];
        if let Some(b) = l.begin {
            g.label = b;
        }
        if let Some(u) = l.undo {
            g.actions.push(u);
            g.done = false;
        }
        if l.done {
            g.done = true;
        }
    }
    Ok(groups)
}

/// Apply a group's actions in reverse order. Returns what was done, or the first errors.
pub fn revert_actions(
    actions: &[UndoAction],
    env: &dyn RevertEnv,
) -> Result<Vec<String>, Vec<RevertError>> {
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for a in actions.iter().rev() {
        match a.apply(env) {
            Ok(msg) => done.push(msg),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(errors)
    }
}

/// What `murphy recover` did for one journal.
#[derive(Clone, Debug, Serialize)]
pub struct Recovered {
    pub journal: PathBuf,
    pub undone: Vec<String>,
    pub errors: Vec<String>,
    /// Its run is alive (it holds the journal): left alone.
    pub alive: bool,
}

/// Replay every journal under `state_dir` (or only run `only`'s) whose run is no longer
/// alive: revert unfinished groups, newest first, and delete journals that end up fully
/// done. A journal a live run holds is left alone and reported `alive`.
pub fn recover(state_dir: &Path, only: Option<&str>) -> io::Result<Vec<Recovered>> {
    let dir = Journal::dir(state_dir);
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    if let Some(id) = only {
        paths.retain(|p| p.file_stem().is_some_and(|s| s.to_string_lossy() == id));
    }
    for path in paths {
        let mut rec = Recovered {
            journal: path.clone(),
            undone: Vec::new(),
            errors: Vec::new(),
            alive: false,
        };
        // Held first, read after: a live run's journal is never read half-written.
        let Some(journal) = Journal::claim(&path)? else {
            rec.alive = true;
            out.push(rec);
            continue;
        };
        let groups = read_groups(&path)?;
        for g in groups.iter().rev().filter(|g| !g.done) {
            match revert_actions(&g.actions, &NoLab) {
                Ok(msgs) => {
                    rec.undone
                        .extend(msgs.into_iter().map(|m| format!("{}: {m}", g.label)));
                    journal.done(&g.name)?;
                }
                Err(errs) => rec
                    .errors
                    .extend(errs.into_iter().map(|e| format!("{}: {e}", g.label))),
            }
        }
        if rec.errors.is_empty() {
            journal.finish()?;
        }
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod ownership_tests {
    use super::*;

    /// A journal whose one group removes `dir` on revert (an empty directory stands in for
    /// a cgroup Murphy made).
    fn journal_removing(state: &Path, run: &str, dir: &Path) -> Journal {
        fs::create_dir_all(dir).expect("dir");
        let j = Journal::create(state, run).expect("journal");
        j.begin("g", "a fault").expect("begin");
        j.record(
            "g",
            &UndoAction::RemoveCgroup {
                cgroup: dir.to_path_buf(),
            },
        )
        .expect("record");
        j
    }

    #[test]
    fn recover_leaves_a_live_runs_journal_alone_and_replays_a_dead_ones() {
        let base = std::env::temp_dir().join(format!("murphy-own-{}", std::process::id()));
        let state = base.join("state");
        let (live_dir, dead_dir) = (base.join("live"), base.join("dead"));
        let live = journal_removing(&state, "run-live", &live_dir);
        drop(journal_removing(&state, "run-dead", &dead_dir)); // its run died
                                                               // A second run may not take a live run's journal.
        assert!(Journal::create(&state, "run-live").is_err());

        let recs = recover(&state, None).expect("recover");
        let by = |id: &str| {
            recs.iter()
                .find(|r| r.journal.file_stem().is_some_and(|s| s == id))
                .cloned()
                .expect("reported")
        };
        assert!(by("run-live").alive, "{recs:?}");
        assert!(
            !by("run-dead").alive && by("run-dead").errors.is_empty(),
            "{recs:?}"
        );
        assert!(live_dir.exists(), "the live run's fault is untouched");
        assert!(!dead_dir.exists(), "the dead run's fault is reverted");

        // `--run` targets one journal; once its run is gone, it is replayed.
        assert!(recover(&state, Some("run-live")).expect("r")[0].alive);
        drop(live);
        let recs = recover(&state, Some("run-live")).expect("recover");
        assert_eq!(recs.len(), 1);
        assert!(!recs[0].alive && !live_dir.exists(), "{recs:?}");
        assert!(recover(&state, None).expect("r").is_empty(), "nothing left");
        let _ = fs::remove_dir_all(&base);
    }
}
