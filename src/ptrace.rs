//! ptrace on x86_64: run a syscall inside a running process (the in-process memory leak),
//! and trace a process tree's file syscalls to stall, delay or fail them (storage faults).
//!
//! Why syscall-level injection rather than a FUSE fault filesystem: a FUSE mount only sees
//! files opened after it is mounted, so a running database would need every open
//! descriptor and its working directory moved onto the mount by injected syscalls anyway
//! (PostgreSQL opens relation files relative to its data directory), and a dead FUSE
//! daemon leaves ENOTCONN behind. A tracer attaches without stopping the target
//! (`PTRACE_SEIZE`), follows forks (PostgreSQL forks a backend per connection), sees
//! already-open descriptors through `/proc/<tid>/fd`, and if the tracer dies the kernel
//! detaches every tracee and the held syscalls simply proceed: nothing is left behind.
//! The cost is two stops per syscall of the traced processes while the fault is active
//! (measured in `benches/`); nothing is traced before or after.

pub use crate::model::io::{errno_by_name, IoOp, ERRNOS};
use nix::errno::Errno;
use nix::sys::ptrace::{self, AddressType, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// x86_64 syscall numbers used here.
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const STAT: u64 = 4;
    pub const FSTAT: u64 = 5;
    pub const LSTAT: u64 = 6;
    pub const MMAP: u64 = 9;
    pub const MUNMAP: u64 = 11;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const MADVISE: u64 = 28;
    pub const FSYNC: u64 = 74;
    pub const FDATASYNC: u64 = 75;
    pub const TRUNCATE: u64 = 76;
    pub const FTRUNCATE: u64 = 77;
    pub const RENAME: u64 = 82;
    pub const MKDIR: u64 = 83;
    pub const RMDIR: u64 = 84;
    pub const CREAT: u64 = 85;
    pub const LINK: u64 = 86;
    pub const UNLINK: u64 = 87;
    pub const GETDENTS64: u64 = 217;
    pub const OPENAT: u64 = 257;
    pub const MKDIRAT: u64 = 258;
    pub const NEWFSTATAT: u64 = 262;
    pub const UNLINKAT: u64 = 263;
    pub const RENAMEAT: u64 = 264;
    pub const SYNC_FILE_RANGE: u64 = 277;
    pub const FALLOCATE: u64 = 285;
    pub const PREADV: u64 = 295;
    pub const PWRITEV: u64 = 296;
    pub const SYNCFS: u64 = 306;
    pub const RENAMEAT2: u64 = 316;
    pub const COPY_FILE_RANGE: u64 = 326;
    pub const PREADV2: u64 = 327;
    pub const PWRITEV2: u64 = 328;
    pub const STATX: u64 = 332;
    pub const OPENAT2: u64 = 437;
    pub const CLOSE: u64 = 3;
    pub const DUP2: u64 = 33;
    pub const EXECVE: u64 = 59;
    pub const DUP3: u64 = 292;
    pub const EXECVEAT: u64 = 322;
    pub const CLOSE_RANGE: u64 = 436;
}

/// What a syscall does to the descriptors a process has open, for the tracer's
/// fd → path cache: the entries it makes stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdChange {
    /// This descriptor is closed or replaced.
    One(i32),
    /// Descriptors `first..=last` are closed.
    Range(i32, i32),
    /// Any path may now name something else (exec, rename, unlink): forget them all.
    All,
}

/// The cache entries syscall `n` (with its first two arguments) makes stale, if any.
pub fn fd_change(n: u64, a0: u64, a1: u64) -> Option<FdChange> {
    use nr::*;
    // A descriptor argument is an int: the low 32 bits, signed.
    let fd = |v: u64| v as u32 as i32;
    Some(match n {
        CLOSE => FdChange::One(fd(a0)),
        DUP2 | DUP3 => FdChange::One(fd(a1)),
        CLOSE_RANGE => FdChange::Range(
            fd(a0),
            i32::try_from(a1.min(i32::MAX as u64)).unwrap_or(i32::MAX),
        ),
        EXECVE | EXECVEAT | RENAME | RENAMEAT | RENAMEAT2 | UNLINK | UNLINKAT | RMDIR => {
            FdChange::All
        }
        _ => return None,
    })
}

/// Where a syscall's file is named: a descriptor argument, a path argument, or a path
/// relative to a directory descriptor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FileArg {
    Fd(usize),
    Path(usize),
    At(usize, usize),
}

/// The operation class and file argument of a syscall, if it is a file operation.
pub fn classify(n: u64) -> Option<(IoOp, FileArg)> {
    use nr::*;
    use FileArg::*;
    Some(match n {
        OPEN | CREAT => (IoOp::Open, Path(0)),
        OPENAT | OPENAT2 => (IoOp::Open, At(0, 1)),
        READ | PREAD64 | READV | PREADV | PREADV2 => (IoOp::Read, Fd(0)),
        WRITE | PWRITE64 | WRITEV | PWRITEV | PWRITEV2 | FTRUNCATE | FALLOCATE => {
            (IoOp::Write, Fd(0))
        }
        COPY_FILE_RANGE => (IoOp::Write, Fd(2)),
        TRUNCATE => (IoOp::Write, Path(0)),
        FSYNC | FDATASYNC | SYNC_FILE_RANGE | SYNCFS => (IoOp::Fsync, Fd(0)),
        FSTAT | GETDENTS64 => (IoOp::Metadata, Fd(0)),
        STAT | LSTAT | RENAME | MKDIR | RMDIR | LINK | UNLINK => (IoOp::Metadata, Path(0)),
        NEWFSTATAT | STATX | UNLINKAT | RENAMEAT | RENAMEAT2 | MKDIRAT => {
            (IoOp::Metadata, At(0, 1))
        }
        _ => return None,
    })
}

/// What a storage fault does to a matching operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IoAction {
    /// Hold the operation until the fault ends.
    Stall,
    /// Hold it for `delay` ± `jitter` (uniform), then let it run.
    Delay { delay_us: u64, jitter_us: u64 },
    /// Fail it with `errno`, with a probability.
    Error { errno: i32, probability: f64 },
}

/// Everything the tracer helper needs (passed as JSON on its command line).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceConfig {
    pub pids: Vec<i32>,
    /// Absolute path patterns (`*`, `?` within a component); a file matches when it or a
    /// directory above it matches.
    pub paths: Vec<String>,
    pub ops: Vec<IoOp>,
    pub action: IoAction,
    pub seed: u64,
    pub lease_ms: u64,
}

/// Does `path` (absolute, normalized) or a directory above it match one of `patterns`?
pub fn path_matches(patterns: &[String], path: &str) -> bool {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    patterns.iter().any(|p| {
        let pc: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
        pc.len() <= comps.len()
            && pc
                .iter()
                .zip(&comps)
                .all(|(a, b)| crate::glob::wildcard(a, b))
    })
}

/// Join `rel` onto `base` and resolve `.` and `..` lexically.
pub fn normalize(base: &str, rel: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let joined = if rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    };
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

#[derive(Debug, thiserror::Error)]
pub enum PtraceError {
    #[error("the process exited")]
    Gone,
    /// Another tracer holds the thread (PTRACE_SEIZE: EPERM).
    #[error("{0}: another tracer holds it")]
    Busy(String),
    #[error("{0}")]
    Os(String),
}

fn os(what: &'static str) -> impl Fn(Errno) -> PtraceError {
    move |e| {
        if e == Errno::ESRCH {
            PtraceError::Gone
        } else {
            PtraceError::Os(format!("{what}: {e}"))
        }
    }
}

/// Wait for `tid` to stop. An exit is peeked at without reaping it, so the real parent of
/// a process Murphy started can still collect its status.
fn wait_stop(tid: Pid) -> Result<WaitStatus, PtraceError> {
    match waitid(
        Id::Pid(tid),
        WaitPidFlag::WEXITED | WaitPidFlag::WSTOPPED | WaitPidFlag::__WALL | WaitPidFlag::WNOWAIT,
    ) {
        Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(Errno::ECHILD) => {
            return Err(PtraceError::Gone)
        }
        Ok(_) => {}
        Err(e) => return Err(PtraceError::Os(format!("waitid: {e}"))),
    }
    waitpid(tid, Some(WaitPidFlag::__WALL)).map_err(os("waitpid"))
}

/// One thread of a target, stopped by Murphy so that syscalls can run inside it. Only
/// this thread stops; the process's other threads go on. Dropping it restores the
/// thread's registers and lets it go.
pub struct Injector {
    tid: Pid,
    saved: libc::user_regs_struct,
    insn: u64,
    signal: Option<Signal>,
    attached: bool,
}

impl Injector {
    /// Stop `pid` (a thread id) and prepare to run syscalls in it.
    pub fn attach(pid: i32) -> Result<Injector, PtraceError> {
        let tid = Pid::from_raw(pid);
        ptrace::seize(tid, Options::empty()).map_err(|e| match e {
            Errno::EPERM => PtraceError::Busy(format!("PTRACE_SEIZE {pid}")),
            e => os("PTRACE_SEIZE")(e),
        })?;
        let mut inj = Injector {
            tid,
            // Filled in below, once the thread is stopped.
            saved: ptrace_regs_zero(),
            insn: 0,
            signal: None,
            attached: true,
        };
        ptrace::interrupt(tid).map_err(os("PTRACE_INTERRUPT"))?;
        if let WaitStatus::Stopped(_, sig) = wait_stop(tid)? {
            // A signal arrived first: it is delivered when the thread is let go.
            inj.signal = Some(sig);
        }
        inj.saved = ptrace::getregs(tid).map_err(os("PTRACE_GETREGS"))?;
        inj.insn = find_syscall_insn(pid, inj.saved.rip)?;
        Ok(inj)
    }

    /// Run syscall `n` with `args` in the stopped thread; returns the raw result (a
    /// negative errno on failure).
    pub fn syscall(&mut self, n: u64, args: &[u64]) -> Result<i64, PtraceError> {
        let mut regs = self.saved;
        regs.rip = self.insn;
        regs.rax = n;
        // No syscall restart logic for the interrupted original call while ours runs.
        regs.orig_rax = u64::MAX;
        let a = |i: usize| args.get(i).copied().unwrap_or(0);
        regs.rdi = a(0);
        regs.rsi = a(1);
        regs.rdx = a(2);
        regs.r10 = a(3);
        regs.r8 = a(4);
        regs.r9 = a(5);
        for _ in 0..8 {
            ptrace::setregs(self.tid, regs).map_err(os("PTRACE_SETREGS"))?;
            ptrace::step(self.tid, None).map_err(os("PTRACE_SINGLESTEP"))?;
            let st = wait_stop(self.tid)?;
            let now = ptrace::getregs(self.tid).map_err(os("PTRACE_GETREGS"))?;
            if now.rip == self.insn + 2 {
                return Ok(now.rax as i64);
            }
            if let WaitStatus::Stopped(_, sig) = st {
                if sig != Signal::SIGTRAP {
                    self.signal = Some(sig);
                }
            }
        }
        Err(PtraceError::Os(
            "the injected syscall did not run after 8 attempts".into(),
        ))
    }

    /// Put the registers back and let the thread go.
    pub fn detach(mut self) -> Result<(), PtraceError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), PtraceError> {
        if !self.attached {
            return Ok(());
        }
        self.attached = false;
        ptrace::setregs(self.tid, self.saved).map_err(os("PTRACE_SETREGS"))?;
        ptrace::detach(self.tid, self.signal).map_err(os("PTRACE_DETACH"))
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

fn ptrace_regs_zero() -> libc::user_regs_struct {
    libc::user_regs_struct {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        rbp: 0,
        rbx: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rax: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        orig_rax: 0,
        rip: 0,
        cs: 0,
        eflags: 0,
        rsp: 0,
        ss: 0,
        fs_base: 0,
        gs_base: 0,
        ds: 0,
        es: 0,
        fs: 0,
        gs: 0,
    }
}

/// An existing `syscall` instruction (0f 05) to run injected syscalls at, so no code is
/// ever written into the target: the one the thread is stopped after (a thread blocked
/// in a syscall, the usual state of a server), else one in the vDSO.
fn find_syscall_insn(pid: i32, rip: u64) -> Result<u64, PtraceError> {
    let tid = Pid::from_raw(pid);
    if rip >= 2 {
        if let Ok(w) = ptrace::read(tid, (rip - 2) as AddressType) {
            if (w as u64) & 0xffff == 0x050f {
                return Ok(rip - 2);
            }
        }
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| PtraceError::Os(format!("reading maps: {e}")))?;
    let vdso = maps
        .lines()
        .find(|l| l.ends_with("[vdso]"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .ok_or_else(|| PtraceError::Os("no vDSO mapping to find a syscall in".into()))?;
    let bytes = read_mem(pid, vdso.0, (vdso.1 - vdso.0) as usize)?;
    bytes
        .windows(2)
        .position(|w| w == [0x0f, 0x05])
        .map(|i| vdso.0 + i as u64)
        .ok_or_else(|| PtraceError::Os("no syscall instruction in the vDSO".into()))
}

/// Read `len` bytes of another process's memory.
pub fn read_mem(pid: i32, addr: u64, len: usize) -> Result<Vec<u8>, PtraceError> {
    use nix::sys::uio::{process_vm_readv, RemoteIoVec};
    let mut buf = vec![0u8; len];
    let n = {
        let mut local = [std::io::IoSliceMut::new(&mut buf)];
        let remote = [RemoteIoVec {
            base: addr as usize,
            len,
        }];
        process_vm_readv(Pid::from_raw(pid), &mut local, &remote).map_err(os("process_vm_readv"))?
    };
    buf.truncate(n);
    Ok(buf)
}

/// Read a NUL-terminated string (at most 4 KiB) from another process, page by page.
fn read_cstr(pid: i32, mut addr: u64) -> Option<String> {
    let mut out = Vec::new();
    while out.len() < 4096 {
        let to_page = 4096 - (addr % 4096) as usize;
        let chunk = read_mem(pid, addr, to_page.min(256)).ok()?;
        if chunk.is_empty() {
            return None;
        }
        if let Some(z) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..z]);
            return String::from_utf8(out).ok();
        }
        addr += chunk.len() as u64;
        out.extend_from_slice(&chunk);
    }
    None
}

// ---------------------------------------------------------------------------------------
// The storage-fault tracer (runs as the helper process `murphy __hog io <json>`).

#[derive(Default)]
struct Thread {
    /// Its process (thread group): descriptors are the process's, so the fd → path
    /// cache is kept per process.
    tgid: i32,
    /// The next syscall stop is an exit (we saw the entry).
    in_syscall: bool,
    /// Set the result to -errno at the exit stop.
    fail_with: Option<i32>,
    /// Held at a syscall entry: until when (None: until the fault ends).
    held: Option<Option<Instant>>,
}

/// Counters the tracer reports on its stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TraceStats {
    pub threads: usize,
    pub matched: u64,
    pub delayed: u64,
    pub failed: u64,
    pub held_now: usize,
    /// Total extra time held, microseconds.
    pub held_us: u64,
    /// Descriptor lookups answered by the fd → path cache, and those that read /proc.
    pub fd_cached: u64,
    pub fd_resolved: u64,
}

impl TraceStats {
    pub fn line(&self) -> String {
        format!(
            "stats threads={} matched={} delayed={} failed={} held={} heldUs={} fdCached={} fdResolved={}",
            self.threads,
            self.matched,
            self.delayed,
            self.failed,
            self.held_now,
            self.held_us,
            self.fd_cached,
            self.fd_resolved
        )
    }
    pub fn parse(line: &str) -> Option<TraceStats> {
        let rest = line.strip_prefix("stats ")?;
        let mut s = TraceStats::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "threads" => s.threads = v as usize,
                "matched" => s.matched = v,
                "delayed" => s.delayed = v,
                "failed" => s.failed = v,
                "held" => s.held_now = v as usize,
                "heldUs" => s.held_us = v,
                "fdCached" => s.fd_cached = v,
                "fdResolved" => s.fd_resolved = v,
                _ => {}
            }
        }
        Some(s)
    }
}

struct Tracer {
    cfg: TraceConfig,
    threads: HashMap<i32, Thread>,
    /// (process, fd) → the path it was opened as, read once from /proc and kept until a
    /// syscall of the process closes, replaces or renames (see [`fd_change`]). Threads
    /// share their process's descriptor table (pthreads always do).
    paths: HashMap<(i32, i32), String>,

    stats: TraceStats,
    rng: u64,
}

fn trace_options() -> Options {
    Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACEEXEC
}

fn task_ids(pid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Tracer {
    fn next_rand(&mut self) -> f64 {
        crate::rand::unit(&mut self.rng)
    }

    /// Seize every thread of every target process (repeat until no new thread appears).
    fn attach_all(&mut self) -> Result<(), String> {
        for &pid in &self.cfg.pids.clone() {
            for _round in 0..20 {
                let mut new = 0;
                for tid in task_ids(pid) {
                    if self.threads.contains_key(&tid) {
                        continue;
                    }
                    let t = Pid::from_raw(tid);
                    match ptrace::seize(t, trace_options()) {
                        Ok(()) => {}
                        Err(Errno::ESRCH) => continue,
                        Err(e) => return Err(format!("PTRACE_SEIZE {tid}: {e}")),
                    }
                    let _ = ptrace::interrupt(t);
                    self.threads.insert(
                        tid,
                        Thread {
                            tgid: pid,
                            ..Thread::default()
                        },
                    );
                    new += 1;
                }
                if new == 0 {
                    break;
                }
            }
        }
        self.stats.threads = self.threads.len();
        if self.threads.is_empty() {
            return Err("no thread of the target could be traced".into());
        }
        Ok(())
    }

    /// Forget the cached paths a syscall of `tid` makes stale.
    fn invalidate(&mut self, tid: i32, regs: &libc::user_regs_struct) {
        let Some(change) = fd_change(regs.orig_rax, regs.rdi, regs.rsi) else {
            return;
        };
        let tgid = self.threads.get(&tid).map_or(tid, |t| t.tgid);
        match change {
            FdChange::One(fd) => {
                self.paths.remove(&(tgid, fd));
            }
            FdChange::Range(a, b) => self
                .paths
                .retain(|(g, fd), _| *g != tgid || *fd < a || *fd > b),
            FdChange::All => self.paths.retain(|(g, _), _| *g != tgid),
        }
    }

    fn file_of(&mut self, tid: i32, arg: FileArg, regs: &libc::user_regs_struct) -> Option<String> {
        let a = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
        let link = |p: String| {
            std::fs::read_link(p)
                .ok()
                .map(|l| l.to_string_lossy().into_owned())
        };
        match arg {
            FileArg::Fd(i) => {
                let fd = a[i] as i32;
                let tgid = self.threads.get(&tid).map_or(tid, |t| t.tgid);
                if let Some(p) = self.paths.get(&(tgid, fd)) {
                    self.stats.fd_cached += 1;
                    return Some(p.clone());
                }
                self.stats.fd_resolved += 1;
                let p = link(format!("/proc/{tid}/fd/{fd}"))?;
                self.paths.insert((tgid, fd), p.clone());
                Some(p)
            }
            FileArg::Path(i) => {
                let p = read_cstr(tid, a[i])?;
                let base = link(format!("/proc/{tid}/cwd"))?;
                Some(normalize(&base, &p))
            }
            FileArg::At(d, i) => {
                let p = read_cstr(tid, a[i])?;
                let dirfd = a[d] as i32;
                let base = if p.starts_with('/') {
                    String::new()
                } else if dirfd == libc::AT_FDCWD {
                    link(format!("/proc/{tid}/cwd"))?
                } else {
                    link(format!("/proc/{tid}/fd/{dirfd}"))?
                };
                Some(normalize(&base, &p))
            }
        }
    }

    /// A syscall-entry stop: decide what happens to it.
    fn on_entry(&mut self, tid: i32) {
        let pid = Pid::from_raw(tid);
        let Ok(mut regs) = ptrace::getregs(pid) else {
            return;
        };
        self.invalidate(tid, &regs);
        let hit = classify(regs.orig_rax).filter(|(op, _)| self.cfg.ops.contains(op));
        let matched = match hit {
            Some((_, arg)) => self
                .file_of(tid, arg, &regs)
                .is_some_and(|p| path_matches(&self.cfg.paths, &p)),
            None => false,
        };
        if !matched {
            let _ = ptrace::syscall(pid, None);
            return;
        }
        self.stats.matched += 1;
        match self.cfg.action.clone() {
            IoAction::Stall => {
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.held = Some(None);
                }
            }
            IoAction::Delay {
                delay_us,
                jitter_us,
            } => {
                let j = (self.next_rand() * 2.0 - 1.0) * jitter_us as f64;
                let us = (delay_us as f64 + j).max(0.0) as u64;
                self.stats.delayed += 1;
                self.stats.held_us += us;
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.held = Some(Some(Instant::now() + Duration::from_micros(us)));
                }
            }
            IoAction::Error { errno, probability } => {
                if self.next_rand() < probability {
                    // Skip the syscall (an invalid number) and set the result at its exit.
                    regs.orig_rax = u64::MAX;
                    if ptrace::setregs(pid, regs).is_ok() {
                        self.stats.failed += 1;
                        if let Some(t) = self.threads.get_mut(&tid) {
                            t.fail_with = Some(errno);
                        }
                    }
                }
                let _ = ptrace::syscall(pid, None);
            }
        }
    }

    fn on_exit(&mut self, tid: i32) {
        let pid = Pid::from_raw(tid);
        if let Some(errno) = self.threads.get_mut(&tid).and_then(|t| t.fail_with.take()) {
            if let Ok(mut regs) = ptrace::getregs(pid) {
                regs.rax = (-(errno as i64)) as u64;
                let _ = ptrace::setregs(pid, regs);
            }
        }
        let _ = ptrace::syscall(pid, None);
    }

    /// Handle one wait status. `stopping`: detach whatever stops.
    fn on_status(&mut self, st: WaitStatus, stopping: bool) {
        let Some(pid) = st.pid() else { return };
        let tid = pid.as_raw();
        match st {
            WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                self.threads.remove(&tid);
                self.stats.threads = self.threads.len();
                return;
            }
            _ => {}
        }
        let known = self.threads.contains_key(&tid);
        if !known {
            // A new child or thread, auto-attached through a fork or clone event.
            self.threads.insert(
                tid,
                Thread {
                    tgid: crate::procfs::tgid(tid).unwrap_or(tid),
                    ..Thread::default()
                },
            );
            self.stats.threads = self.threads.len();
        }
        if stopping {
            self.detach_stopped(tid, &st);
            return;
        }
        match st {
            WaitStatus::PtraceSyscall(_) => {
                let entering = {
                    let Some(t) = self.threads.get_mut(&tid) else {
                        return;
                    };
                    t.in_syscall = !t.in_syscall;
                    t.in_syscall
                };
                if entering {
                    self.on_entry(tid);
                } else {
                    self.on_exit(tid);
                }
            }
            WaitStatus::PtraceEvent(_, _, ev) => {
                if ev == libc::PTRACE_EVENT_STOP {
                    // Interrupt or group stop: the next syscall stop is an entry.
                    if let Some(t) = self.threads.get_mut(&tid) {
                        t.in_syscall = false;
                    }
                }
                let _ = ptrace::syscall(pid, None);
            }
            WaitStatus::Stopped(_, sig) => {
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.in_syscall = false;
                }
                let _ = ptrace::syscall(pid, Some(sig));
            }
            _ => {}
        }
    }

    fn detach_stopped(&mut self, tid: i32, st: &WaitStatus) {
        let pid = Pid::from_raw(tid);
        let Some(mut t) = self.threads.remove(&tid) else {
            return;
        };
        if let (WaitStatus::PtraceSyscall(_), true) = (st, t.in_syscall) {
            // At an exit stop: finish an injected error before letting go.
            if let Some(errno) = t.fail_with.take() {
                if let Ok(mut regs) = ptrace::getregs(pid) {
                    regs.rax = (-(errno as i64)) as u64;
                    let _ = ptrace::setregs(pid, regs);
                }
            }
        }
        let sig = match st {
            WaitStatus::Stopped(_, s) => Some(*s),
            _ => None,
        };
        let _ = ptrace::detach(pid, sig);
        self.stats.threads = self.threads.len();
    }

    fn release_due(&mut self, now: Instant) {
        let due: Vec<i32> = self
            .threads
            .iter()
            .filter(|(_, t)| matches!(t.held, Some(Some(at)) if at <= now))
            .map(|(k, _)| *k)
            .collect();
        for tid in due {
            if let Some(t) = self.threads.get_mut(&tid) {
                t.held = None;
            }
            let _ = ptrace::syscall(Pid::from_raw(tid), None);
        }
        self.stats.held_now = self.threads.values().filter(|t| t.held.is_some()).count();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.threads
            .values()
            .filter_map(|t| match t.held {
                Some(Some(at)) => Some(at),
                _ => None,
            })
            .min()
    }

    fn drain(&mut self, stopping: bool) {
        loop {
            match waitpid(None, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) => self.on_status(st, stopping),
            }
        }
    }

    /// Let every thread go: held ones at once, running ones after an interrupt.
    fn detach_all(&mut self) {
        let held: Vec<i32> = self
            .threads
            .iter()
            .filter(|(_, t)| t.held.is_some())
            .map(|(k, _)| *k)
            .collect();
        for tid in held {
            self.threads.remove(&tid);
            let _ = ptrace::detach(Pid::from_raw(tid), None);
        }
        for &tid in self.threads.keys() {
            let _ = ptrace::interrupt(Pid::from_raw(tid));
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.threads.is_empty() && Instant::now() < deadline {
            self.drain(true);
            std::thread::sleep(Duration::from_micros(200));
            // Threads that vanished without a status we could collect.
            self.threads
                .retain(|tid, _| std::path::Path::new(&format!("/proc/{tid}")).exists());
        }
    }
}

/// Entry point of the tracer helper. Protocol: wait for a go byte on stdin; print
/// `ready threads=N` (or `error ...`) and then `stats ...` lines on stdout; on `q` or EOF
/// on stdin, or when the lease ends, detach everything and exit.
pub fn io_main(json: &str) -> i32 {
    use nix::poll::{ppoll, PollFd, PollFlags};
    use nix::sys::signal::SigSet;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use nix::sys::time::TimeSpec;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    let cfg: TraceConfig = match serde_json::from_str(json) {
        Ok(c) => c,
        Err(e) => {
            println!("error bad configuration: {e}");
            return 2;
        }
    };
    let mut one = [0u8; 1];
    if !matches!(std::io::stdin().read(&mut one), Ok(1)) {
        return 0;
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    if mask.thread_block().is_err() {
        println!("error cannot block SIGCHLD");
        return 2;
    }
    let Ok(sfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK) else {
        println!("error signalfd");
        return 2;
    };
    let lease = Duration::from_millis(cfg.lease_ms);
    let mut tr = Tracer {
        rng: cfg.seed ^ 0x5EED_1010,
        cfg,
        threads: HashMap::new(),
        paths: HashMap::new(),
        stats: TraceStats::default(),
    };
    let out = std::io::stdout();
    if let Err(e) = tr.attach_all() {
        tr.detach_all();
        let _ = writeln!(out.lock(), "error {e}");
        return 1;
    }
    let _ = writeln!(out.lock(), "ready threads={}", tr.stats.threads);
    // Ending: a byte or EOF on stdin, or the lease. Either wakes a blocked waitpid by
    // starting a child that exits at once (children of any thread are waitable).
    let quit = Arc::new(AtomicBool::new(false));
    let wake = {
        let quit = quit.clone();
        move || {
            quit.store(true, Ordering::SeqCst);
            if let Ok(exe) = std::env::current_exe() {
                let _ = std::process::Command::new(exe)
                    .arg("__hog")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
            }
        }
    };
    let on_stdin = wake.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        let _ = std::io::stdin().read(&mut b);
        on_stdin();
    });
    std::thread::spawn(move || {
        std::thread::sleep(lease);
        wake();
    });
    let mut last_report = Instant::now();
    let mut last_stats = TraceStats::default();
    let report_every = Duration::from_millis(100);
    // Held syscalls are released on time: no timer slack (50 µs by default), and the last
    // stretch before a release spun rather than slept (a wakeup's latency was the error).
    let _ = nix::sys::prctl::set_timerslack(1_000);
    const SPIN: Duration = Duration::from_micros(60);
    loop {
        let now = Instant::now();
        tr.release_due(now);
        if now.duration_since(last_report) >= report_every && tr.stats != last_stats {
            last_report = now;
            last_stats = tr.stats;
            let _ = writeln!(out.lock(), "{}", tr.stats.line());
        }
        if quit.load(Ordering::SeqCst) || tr.threads.is_empty() {
            break;
        }
        let deadline = tr.next_deadline();
        if deadline.is_none() && tr.stats == last_stats {
            // Nothing timed is pending: block until a tracee stops (the fast path; each
            // syscall of a traced thread costs two of these).
            match waitpid(None, Some(WaitPidFlag::__WALL)) {
                Ok(st) => tr.on_status(st, false),
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
            tr.drain(false);
        } else {
            if let Some(d) = deadline.filter(|d| d.saturating_duration_since(now) <= SPIN) {
                while Instant::now() < d {
                    std::hint::spin_loop();
                }
                continue;
            }
            let until = deadline
                .map(|d| d - SPIN)
                .unwrap_or(now + report_every)
                .min(last_report + report_every)
                .max(now);
            let wait = until.saturating_duration_since(now).min(report_every);
            let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let _ = ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None);
            while let Ok(Some(_)) = sfd.read_signal() {}
            tr.drain(false);
        }
    }
    tr.detach_all();
    tr.stats.held_now = 0;
    let _ = writeln!(out.lock(), "{}", tr.stats.line());
    let _ = writeln!(out.lock(), "detached");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_at_or_below_a_pattern() {
        let p = vec!["/srv/data/pg*".to_string()];
        assert!(path_matches(&p, "/srv/data/pg1"));
        assert!(path_matches(&p, "/srv/data/pg1/base/1/123"));
        assert!(!path_matches(&p, "/srv/data"));
        assert!(!path_matches(&p, "/srv/other/pg1"));
        assert!(!path_matches(&p, "socket:[1234]"));
    }

    #[test]
    fn relative_paths_resolve_lexically() {
        assert_eq!(normalize("/a/b", "c/../d/./e"), "/a/b/d/e");
        assert_eq!(normalize("/a/b", "/x/y"), "/x/y");
        assert_eq!(normalize("/", "../../z"), "/z");
    }

    #[test]
    fn file_syscalls_are_classified() {
        assert_eq!(classify(nr::FSYNC), Some((IoOp::Fsync, FileArg::Fd(0))));
        assert_eq!(classify(nr::OPENAT), Some((IoOp::Open, FileArg::At(0, 1))));
        assert_eq!(classify(nr::PWRITE64).map(|c| c.0), Some(IoOp::Write));
        assert_eq!(classify(nr::MMAP), None);
        assert_eq!(errno_by_name("ENOSPC"), Some(libc::ENOSPC));
        assert_eq!(errno_by_name("nope"), None);
    }

    #[test]
    fn descriptor_changes_make_cached_paths_stale() {
        assert_eq!(fd_change(nr::CLOSE, 7, 0), Some(FdChange::One(7)));
        assert_eq!(fd_change(nr::DUP2, 3, 9), Some(FdChange::One(9)));
        assert_eq!(fd_change(nr::DUP3, 3, 9), Some(FdChange::One(9)));
        assert_eq!(
            fd_change(nr::CLOSE_RANGE, 3, u64::from(u32::MAX)),
            Some(FdChange::Range(3, i32::MAX))
        );
        for n in [
            nr::EXECVE,
            nr::RENAME,
            nr::RENAMEAT2,
            nr::UNLINKAT,
            nr::RMDIR,
        ] {
            assert_eq!(fd_change(n, 0, 0), Some(FdChange::All), "{n}");
        }
        assert_eq!(fd_change(nr::PWRITE64, 3, 0), None);
    }

    #[test]
    fn stats_lines_round_trip() {
        let s = TraceStats {
            threads: 3,
            matched: 10,
            delayed: 9,
            failed: 1,
            held_now: 2,
            held_us: 12345,
            fd_cached: 40,
            fd_resolved: 4,
        };
        assert_eq!(TraceStats::parse(&s.line()), Some(s));
    }
}
