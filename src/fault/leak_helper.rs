//! The in-process leak's helper (`murphy __hog leak <json>`): the process that stops the
//! target's main thread for each tick, so the runner never does (the fault itself is
//! `InProcess` in the memory-leak module), and the progress lines it reports.

use crate::procfs::ProcId;
use std::time::Duration;

pub(super) const PAGE: u64 = 4096;

/// Progress of an in-process leak, as its helper reports it.
#[derive(Clone, Debug, Default)]
pub struct LeakProgress {
    /// Bytes mapped and touched inside the target so far.
    pub mapped: u64,
    /// Seconds since the leak started, at the last tick that mapped memory.
    pub at_secs: f64,
    /// Longest time the target's thread was stopped for one tick, microseconds.
    pub max_pause_us: u64,
    pub ticks: u64,
    /// Why the leak stopped early: the target exited, or a syscall failed.
    pub ended: Option<String>,
}

impl LeakProgress {
    /// The helper's `progress` line: `progress mapped=B at=S ticks=N max_pause_us=U`.
    pub(super) fn line(&self) -> String {
        format!(
            "progress mapped={} at={:.3} ticks={} max_pause_us={}",
            self.mapped, self.at_secs, self.ticks, self.max_pause_us
        )
    }

    pub(super) fn parse(line: &str) -> Option<LeakProgress> {
        let rest = line.strip_prefix("progress ")?;
        let mut p = LeakProgress::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "mapped" => p.mapped = v.parse().ok()?,
                "at" => p.at_secs = v.parse().ok()?,
                "ticks" => p.ticks = v.parse().ok()?,
                "max_pause_us" => p.max_pause_us = v.parse().ok()?,
                _ => {}
            }
        }
        Some(p)
    }
}

/// Map and touch `len` bytes at `addr` inside `pid`.
fn map_chunk(pid: i32, addr: u64, len: u64) -> Result<(), crate::ptrace::PtraceError> {
    use crate::ptrace::{nr, Injector, PtraceError};
    let mut inj = Injector::attach(pid)?;
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64;
    let got = inj.syscall(nr::MMAP, &[addr, len, prot, flags, u64::MAX, 0])?;
    if got as u64 != addr {
        let _ = inj.detach();
        return Err(PtraceError::Os(if got < 0 {
            format!("mmap in the target failed: errno {}", -got)
        } else {
            format!("mmap in the target returned {got:#x}, not {addr:#x}")
        }));
    }
    const MADV_POPULATE_WRITE: u64 = 23;
    let r = inj.syscall(nr::MADVISE, &[addr, len, MADV_POPULATE_WRITE])?;
    inj.detach()?;
    if r < 0 {
        return Err(PtraceError::Os(format!(
            "madvise(MADV_POPULATE_WRITE) in the target failed: errno {}",
            -r
        )));
    }
    Ok(())
}

/// What the runner tells the leak helper.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct LeakConfig {
    pub(super) target: ProcId,
    pub(super) base: u64,
    pub(super) len: u64,
    pub(super) first: u64,
    pub(super) rate: f64,
    pub(super) lease_ms: u64,
}

/// `murphy __hog leak <json>`: the in-process leak's ticks. Protocol: wait for the go
/// byte; map the first chunk and print `ready` (or `error ...`); then every 100ms map what
/// the rate asks for and print a `progress` line; print `ended ...` if the target exits or
/// a syscall fails. A byte or EOF on stdin, SIGTERM, SIGINT or the lease ends it — always
/// between ticks, never with the target's thread stopped.
pub fn leak_main(json: &str) -> i32 {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let cfg: LeakConfig = match serde_json::from_str(json) {
        Ok(c) => c,
        Err(e) => {
            println!("error bad configuration: {e}");
            return 2;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        if signal_hook::flag::register(sig, stop.clone()).is_err() {
            println!("error cannot handle signal {sig}");
            return 2;
        }
    }
    let mut one = [0u8; 1];
    if !matches!(std::io::stdin().read(&mut one), Ok(1)) {
        return 0;
    }
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            let _ = std::io::stdin().read(&mut b);
            stop.store(true, Ordering::SeqCst);
        });
    }
    let out = std::io::stdout();
    let say = |line: &str| {
        let mut o = out.lock();
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    };
    let started = std::time::Instant::now();
    let lease = Duration::from_millis(cfg.lease_ms);
    let pid = cfg.target.pid;
    let mut p = LeakProgress::default();
    let t0 = std::time::Instant::now();
    if let Err(e) = map_chunk(pid, cfg.base, cfg.first) {
        say(&format!("error leaking into pid {pid}: {e}"));
        return 1;
    }
    p.mapped = cfg.first;
    p.ticks = 1;
    p.max_pause_us = t0.elapsed().as_micros() as u64;
    say(&format!("ready pause_us={}", p.max_pause_us));
    say(&p.line());
    while p.mapped < cfg.len && started.elapsed() < lease {
        std::thread::sleep(Duration::from_millis(100));
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if !cfg.target.alive() {
            say(&format!("ended target pid {pid} exited"));
            return 0;
        }
        let want =
            (((cfg.rate * started.elapsed().as_secs_f64()) as u64) / PAGE * PAGE).min(cfg.len);
        if want <= p.mapped {
            continue;
        }
        let t = std::time::Instant::now();
        let r = map_chunk(pid, cfg.base + p.mapped, want - p.mapped);
        p.ticks += 1;
        p.max_pause_us = p.max_pause_us.max(t.elapsed().as_micros() as u64);
        match r {
            Ok(()) => {
                p.mapped = want;
                p.at_secs = started.elapsed().as_secs_f64();
                say(&p.line());
            }
            Err(crate::ptrace::PtraceError::Gone) => {
                say(&format!("ended target pid {pid} exited"));
                return 0;
            }
            Err(e) => {
                say(&format!("ended {e}"));
                return 0;
            }
        }
    }
    0
}
