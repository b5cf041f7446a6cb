//! The only module with `unsafe`: the hook that runs between fork and exec when Murphy
//! starts a process inside a network namespace and a set of cgroups (or in a session of
//! its own), and two system calls the guardian needs (`pidfd_open`, ignoring signals).
//!
//! It must stay tiny. Everything it calls after fork is async-signal-safe (setns, write,
//! setgroups, setgid, setuid).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A user to become after entering the namespace and cgroups (which need root).
#[derive(Clone, Debug)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Arrange for `cmd` to enter `netns` and join every cgroup whose `cgroup.procs` file is
/// open in `cgroup_procs`, in the child, before exec, then drop to `user`. The fds are moved
/// into the closure so they stay open until the command is spawned. (`Command::uid` would
/// drop privileges before this hook runs, and setns needs them.)
pub fn enter_before_exec(
    cmd: &mut Command,
    netns: Option<OwnedFd>,
    cgroup_procs: Vec<OwnedFd>,
    user: Option<RunAs>,
) {
    // SAFETY: the closure runs in the forked child before exec. It only calls setns(2),
    // write(2), setgroups(2), setgid(2) and setuid(2) on file descriptors and buffers made
    // before the fork, which are async-signal-safe, and it does not allocate (everything was
    // moved in already; `last_os_error` reads errno only).
    unsafe {
        cmd.pre_exec(move || {
            if let Some(ns) = &netns {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for fd in &cgroup_procs {
                // Writing "0" to cgroup.procs moves the writing process.
                if libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(u) = &user {
                if libc::setgroups(u.groups.len(), u.groups.as_ptr()) != 0
                    || libc::setgid(u.gid) != 0
                    || libc::setuid(u.uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Start `cmd` in a session of its own (setsid(2) in the child, before exec). A lab
/// process stopped by a fault (`process-pause` with SIGSTOP) is then never in a process
/// group the kernel orphans when Murphy dies — which would send it SIGHUP and SIGCONT and
/// kill it — and a terminal's signals for Murphy never reach it.
pub fn new_session_before_exec(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2),
    // which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Run the calling process under SCHED_FIFO at `priority` (the packet engine, so held
/// packets are released on time on a busy machine).
pub fn set_fifo_priority(priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: sched_setscheduler(2) on pid 0 (this process) reads only `param`, a valid
    // sched_param on our stack for the duration of the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A pidfd for process `pid` (readable once it has exited).
pub fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1; it
    // touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Ignore these signals in this process (SIG_IGN: no handler code runs).
pub fn ignore_signals(signals: &[nix::sys::signal::Signal]) {
    use nix::sys::signal::{signal, SigHandler};
    for s in signals {
        // SAFETY: SIG_IGN installs no handler, so nothing runs in signal context.
        let _ = unsafe { signal(*s, SigHandler::SigIgn) };
    }
}
