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

/// How good a cgroup mount is to act through: one that shows the whole hierarchy (its
/// root is `/`) beats one that shows a part of it (a container's view of its own cgroup),
/// and a writable one beats a read-only one.
fn mount_rank(root: &str, writable: bool) -> u8 {
    u8::from(root == "/") * 2 + u8::from(writable)
}

impl Mounts {
    pub fn read() -> Mounts {
        let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
            return Mounts::default();
        };
        Mounts::from_mountinfo(&info)
    }

    /// Parse `/proc/self/mountinfo`. Where a hierarchy is mounted more than once (in a
    /// container: its own read-only view of its cgroup, and the host's tree mounted for an
    /// agent), the mount that shows the whole hierarchy and is writable wins.
    pub fn from_mountinfo(info: &str) -> Mounts {
        let mut m = Mounts::default();
        let mut v2_rank = None;
        let mut v1_rank: Vec<u8> = Vec::new();
        for line in info.lines() {
            // id parent major:minor root mount_point options ... - fstype source super_options
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split_whitespace().collect();
            let root = fields.get(3).copied().unwrap_or("/");
            let mount_point = fields.get(4).copied().unwrap_or("");
            let writable = fields
                .get(5)
                .is_some_and(|o| o.split(',').any(|x| x == "rw"));
            let rank = mount_rank(root, writable);
            let mut r = right.split_whitespace();
            let fstype = r.next().unwrap_or("");
            let opts = r.nth(1).unwrap_or("");
            match fstype {
                "cgroup2" => {
                    if v2_rank.is_some_and(|best| best >= rank) {
                        continue;
                    }
                    v2_rank = Some(rank);
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
                    match m.v1.iter().position(|(c, _)| *c == ctrls) {
                        Some(i) if v1_rank[i] >= rank => {}
                        Some(i) => {
                            m.v1[i].1 = PathBuf::from(mount_point);
                            v1_rank[i] = rank;
                        }
                        None => {
                            m.v1.push((ctrls, PathBuf::from(mount_point)));
                            v1_rank.push(rank);
                        }
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The mounts a node agent's container sees on a cgroup v1 node (containerd, no cgroup
    /// namespace): its own read-only view of its freezer cgroup first, then the host's tree
    /// the chart mounts. Found on a real node: the pause fault tried to create its cgroup in
    /// the read-only view ("Read-only file system").
    #[test]
    fn the_whole_writable_hierarchy_wins_over_a_containers_own_view() {
        let info = "\
1210 1201 0:29 /kubepods/besteffort/pod1/abc /sys/fs/cgroup/freezer ro,nosuid,nodev,noexec,relatime master:12 - cgroup cgroup rw,freezer
1211 1201 0:30 /kubepods/besteffort/pod1/abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:13 - cgroup cgroup rw,memory
1300 1290 0:29 / /host/sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime master:12 - cgroup cgroup rw,freezer
1301 1290 0:30 / /host/sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime master:13 - cgroup cgroup rw,memory
1302 1290 0:31 / /host/sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime master:14 - cgroup cgroup rw,pids
1303 1201 0:31 /kubepods/x /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime master:14 - cgroup cgroup rw,pids
";
        let m = Mounts::from_mountinfo(info);
        assert_eq!(
            m.v1_mount("freezer"),
            Some(Path::new("/host/sys/fs/cgroup/freezer"))
        );
        assert_eq!(
            m.v1_mount("memory"),
            Some(Path::new("/host/sys/fs/cgroup/memory"))
        );
        // The whole tree read-only still beats a writable part of it.
        assert_eq!(
            m.v1_mount("pids"),
            Some(Path::new("/host/sys/fs/cgroup/pids"))
        );
        assert_eq!(m.v1.len(), 3, "one entry per hierarchy: {:?}", m.v1);
    }

    #[test]
    fn a_host_with_one_mount_per_hierarchy_is_read_as_it_is() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,freezer
31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
";
        let m = Mounts::from_mountinfo(info);
        assert_eq!(
            m.v1_mount("freezer"),
            Some(Path::new("/sys/fs/cgroup/freezer"))
        );
        assert_eq!(
            m.v1_mount("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
        );
    }
}
