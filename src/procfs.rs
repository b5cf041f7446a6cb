//! Reading /proc: process identity (pid + start time, so a recycled pid is never signalled),
//! names, command lines, states and CPU time. Read-only.

use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;

/// A process identity that survives pid reuse: the pid and its start time in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcId {
    pub pid: i32,
    pub start_time: u64,
}

/// Fields of /proc/PID/stat that Murphy uses.
#[derive(Clone, Debug)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub utime: u64,
    pub stime: u64,
    pub start_time: u64,
}

pub fn stat(pid: i32) -> Option<Stat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let rest: Vec<&str> = s[close + 2..].split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    Some(Stat {
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        utime: rest.get(11)?.parse().ok()?,
        stime: rest.get(12)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

/// The process (thread group) a task belongs to.
pub fn tgid(tid: i32) -> Option<i32> {
    let s = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

impl ProcId {
    pub fn of(pid: i32) -> Option<ProcId> {
        stat(pid).map(|s| ProcId {
            pid,
            start_time: s.start_time,
        })
    }
    /// The same process is still there and not a zombie.
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some(s) if s.start_time == self.start_time && s.state != 'Z' && s.state != 'X')
    }
    /// The same process is there (possibly a zombie not yet reaped).
    pub fn exists(&self) -> bool {
        matches!(stat(self.pid), Some(s) if s.start_time == self.start_time)
    }
    pub fn state(&self) -> Option<char> {
        stat(self.pid)
            .filter(|s| s.start_time == self.start_time)
            .map(|s| s.state)
    }
}

pub fn cmdline(pid: i32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    Some(parts.join(" "))
}

pub fn all_pids() -> Vec<i32> {
    let mut out: Vec<i32> = fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Inode of a process's network namespace.
pub fn netns_inode(pid: i32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

pub fn netns_path(pid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

/// Clock ticks per second (for utime/stime).
pub fn ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// `roots` and every process descended from them (children of children...).
pub fn with_descendants(roots: &[ProcId]) -> Vec<ProcId> {
    let parents: Vec<(i32, i32)> = all_pids()
        .into_iter()
        .filter_map(|p| stat(p).map(|s| (p, s.ppid)))
        .collect();
    let mut out: Vec<ProcId> = roots.to_vec();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].pid;
        for &(p, pp) in &parents {
            if pp == parent && !out.iter().any(|o| o.pid == p) {
                if let Some(id) = ProcId::of(p) {
                    out.push(id);
                }
            }
        }
        i += 1;
    }
    out
}
