//! cgroup v1 and v2 through cgroupfs: find where controllers are mounted, find a process's
//! cgroup, create and remove cgroups, move processes, freeze and thaw, read usage.
//!
//! Works on either layout (and the hybrid one, where v1 controllers sit beside an empty
//! v2 hierarchy). Never removes a cgroup Murphy did not create: callers pass only paths
//! they recorded in the journal.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where each controller lives.
#[derive(Clone, Debug, Default)]
pub struct Mounts {
    /// (controllers, mount point) for v1 hierarchies.
    pub v1: Vec<(Vec<String>, PathBuf)>,
    /// The v2 mount point, if any.
    pub v2: Option<PathBuf>,
    /// Controllers available in the v2 hierarchy.
    pub v2_controllers: Vec<String>,
}

impl Mounts {
    pub fn read() -> Mounts {
        let mut m = Mounts::default();
        let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
            return m;
        };
        for line in info.lines() {
            // ... mount_point ... - fstype source super_options
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = left.split_whitespace().nth(4).unwrap_or("");
            let mut r = right.split_whitespace();
            let fstype = r.next().unwrap_or("");
            let opts = r.nth(1).unwrap_or("");
            match fstype {
                "cgroup2" => {
                    m.v2 = Some(PathBuf::from(mount_point));
                    m.v2_controllers =
                        fs::read_to_string(Path::new(mount_point).join("cgroup.controllers"))
                            .unwrap_or_default()
                            .split_whitespace()
                            .map(str::to_string)
                            .collect();
                }
                "cgroup" => {
                    let ctrls: Vec<String> = opts
                        .split(',')
                        .filter(|o| {
                            !matches!(
                                *o,
                                "rw" | "ro"
                                    | "relatime"
                                    | "nosuid"
                                    | "nodev"
                                    | "noexec"
                                    | "clone_children"
                                    | "noprefix"
                            ) && !o.starts_with("release_agent")
                        })
                        .map(|o| o.strip_prefix("name=").unwrap_or(o).to_string())
                        .collect();
                    m.v1.push((ctrls, PathBuf::from(mount_point)));
                }
                _ => {}
            }
        }
        m
    }

    /// Mount point of the v1 hierarchy holding `controller`.
    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == controller))
            .map(|(_, p)| p.as_path())
    }

    /// True when `controller` is managed by cgroup v2 (unified) rather than v1.
    pub fn is_v2(&self, controller: &str) -> bool {
        self.v1_mount(controller).is_none() && self.v2_controllers.iter().any(|c| c == controller)
            || (controller == "freezer" && self.v1_mount("freezer").is_none() && self.v2.is_some())
    }

    /// Absolute directory of `pid`'s cgroup for `controller`.
    pub fn proc_cgroup(&self, pid: i32, controller: &str) -> Option<PathBuf> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let v2 = self.is_v2(controller);
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?;
            let ctrls = parts.next()?;
            let path = parts.next()?.trim_start_matches('/');
            if v2 && id == "0" && ctrls.is_empty() {
                return Some(self.v2.as_ref()?.join(path));
            }
            if !v2
                && ctrls
                    .split(',')
                    .any(|c| c == controller || c == format!("name={controller}"))
            {
                return Some(self.v1_mount(controller)?.join(path));
            }
        }
        None
    }

    /// Where Murphy creates its own cgroups for `controller` (v1) or in v2.
    pub fn base_for(&self, controller: &str) -> Option<PathBuf> {
        if self.is_v2(controller) {
            self.v2.clone()
        } else {
            self.v1_mount(controller).map(Path::to_path_buf)
        }
    }
}

pub fn create(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

pub fn add_pid(dir: &Path, pid: i32) -> io::Result<()> {
    fs::write(dir.join("cgroup.procs"), pid.to_string())
}

pub fn pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Remove an (empty) cgroup, retrying while exiting tasks leave it. Missing is success.
pub fn remove(dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Freeze or thaw. v1 uses freezer.state, v2 uses cgroup.freeze.
pub fn set_frozen(dir: &Path, frozen: bool) -> io::Result<()> {
    let v1 = dir.join("freezer.state");
    if v1.exists() {
        fs::write(v1, if frozen { "FROZEN" } else { "THAWED" })
    } else {
        fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
    }
}

/// Whether the cgroup reports itself fully frozen.
pub fn is_frozen(dir: &Path) -> Option<bool> {
    if let Ok(s) = fs::read_to_string(dir.join("freezer.state")) {
        return Some(s.trim() == "FROZEN");
    }
    let ev = fs::read_to_string(dir.join("cgroup.events")).ok()?;
    Some(ev.lines().any(|l| l.trim() == "frozen 1"))
}

pub fn memory_usage(dir: &Path) -> Option<u64> {
    read_u64(&dir.join("memory.usage_in_bytes")).or_else(|| read_u64(&dir.join("memory.current")))
}

/// The memory limit, or None when unlimited.
pub fn memory_limit(dir: &Path) -> Option<u64> {
    if let Some(v) = read_u64(&dir.join("memory.limit_in_bytes")) {
        return (v < (1u64 << 60)).then_some(v);
    }
    read_u64(&dir.join("memory.max"))
}

pub fn set_memory_limit(dir: &Path, bytes: u64) -> io::Result<()> {
    let v1 = dir.join("memory.limit_in_bytes");
    if v1.exists() {
        fs::write(v1, bytes.to_string())
    } else {
        fs::write(dir.join("memory.max"), bytes.to_string())
    }
}

/// Number of OOM kills recorded for the cgroup.
pub fn oom_kills(dir: &Path) -> Option<u64> {
    for file in ["memory.oom_control", "memory.events"] {
        if let Ok(s) = fs::read_to_string(dir.join(file)) {
            if let Some(n) = s.lines().find_map(|l| l.strip_prefix("oom_kill ")) {
                return n.trim().parse().ok();
            }
        }
    }
    None
}

/// CPU time used by the cgroup, in nanoseconds.
pub fn cpu_usage_ns(dir: &Path) -> Option<u64> {
    if let Some(v) = read_u64(&dir.join("cpuacct.usage")) {
        return Some(v);
    }
    let s = fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let us: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()?;
    Some(us * 1000)
}

fn read_u64(p: &Path) -> Option<u64> {
    let s = fs::read_to_string(p).ok()?;
    let t = s.trim();
    if t == "max" {
        return None;
    }
    t.parse().ok()
}
