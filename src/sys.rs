//! The only module with `unsafe`: the hook that runs between fork and exec when Murphy
//! starts a process inside a network namespace and a set of cgroups.
//!
//! It must stay tiny. Everything it calls after fork is async-signal-safe (setns, write).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Arrange for `cmd` to enter `netns` and join every cgroup whose `cgroup.procs` file is
/// open in `cgroup_procs`, in the child, before exec. The fds are moved into the closure so
/// they stay open until the command is spawned.
pub fn enter_before_exec(cmd: &mut Command, netns: Option<OwnedFd>, cgroup_procs: Vec<OwnedFd>) {
    // SAFETY: the closure runs in the forked child before exec. It only calls setns(2) and
    // write(2) on file descriptors opened before the fork, which are async-signal-safe, and
    // it does not allocate (the fds were moved in already; `last_os_error` reads errno only).
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
            Ok(())
        });
    }
}
