//! Helper processes that consume memory or CPU inside a target's cgroup. They are Murphy's
//! own executable run as `murphy __hog ...`, placed into the cgroups before exec, and they
//! wait for a go byte on stdin so that the journal holds their identity before they do
//! anything. They exit on their own when their lease runs out or when stdin closes (the
//! runner is gone).

use crate::procfs::ProcId;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A running hog, as seen by the fault that started it.
pub struct Hog {
    pub id: ProcId,
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Why a helper process could not be started or told to go.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("opening {}: {source}", path.display())]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening {netns}: {source}")]
    Netns {
        netns: String,
        source: std::io::Error,
    },
    #[error("starting {}: {source}", exe.display())]
    Start {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("hog exited at once")]
    ExitedAtOnce,
    #[error("helper stdout missing")]
    NoStdout,
    #[error("hog stdin closed")]
    StdinClosed,
    #[error("starting hog: {0}")]
    Go(std::io::Error),
}

impl From<HelperError> for super::FaultError {
    fn from(e: HelperError) -> Self {
        super::FaultError::Failed(e.to_string())
    }
}

impl Hog {
    /// Spawn a hog (not yet started) inside `cgroups`.
    pub fn spawn(exe: &Path, args: &[String], cgroups: &[PathBuf]) -> Result<Hog, HelperError> {
        Self::spawn_inner(exe, args, cgroups, false, None).map(|(h, _)| h)
    }

    /// Spawn a helper (not yet started) whose stdout the caller reads, outside any target
    /// cgroup (the storage-fault tracer).
    pub fn spawn_reporting(
        exe: &Path,
        args: &[String],
    ) -> Result<(Hog, std::process::ChildStdout), HelperError> {
        let (h, out) = Self::spawn_inner(exe, args, &[], true, None)?;
        Ok((h, out.ok_or(HelperError::NoStdout)?))
    }

    /// Spawn a reporting helper inside a network namespace (the packet engine, the BGP
    /// speaker). Its stdout lines are collected by a thread into the returned [`Lines`].
    pub fn spawn_in(
        exe: &Path,
        args: &[String],
        netns: &crate::netns::Netns,
    ) -> Result<(Hog, Lines), HelperError> {
        let fd = netns.open().map_err(|source| HelperError::Netns {
            netns: netns.describe(),
            source,
        })?;
        let (h, out) = Self::spawn_inner(exe, args, &[], true, fd)?;
        Ok((h, Lines::collect(out.ok_or(HelperError::NoStdout)?)))
    }

    /// Spawn a reporting helper outside any namespace or cgroup of a target (the
    /// in-process leak); its stdout lines are collected into the returned [`Lines`].
    pub fn spawn_lines(exe: &Path, args: &[String]) -> Result<(Hog, Lines), HelperError> {
        let (h, out) = Self::spawn_inner(exe, args, &[], true, None)?;
        Ok((h, Lines::collect(out.ok_or(HelperError::NoStdout)?)))
    }

    fn spawn_inner(
        exe: &Path,
        args: &[String],
        cgroups: &[PathBuf],
        report: bool,
        netns: Option<OwnedFd>,
    ) -> Result<(Hog, Option<std::process::ChildStdout>), HelperError> {
        let mut fds: Vec<OwnedFd> = Vec::new();
        for dir in cgroups {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .map_err(|source| HelperError::Cgroup {
                    path: dir.clone(),
                    source,
                })?;
            fds.push(f.into());
        }
        let mut cmd = Command::new(exe);
        cmd.arg("__hog")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(if report {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null())
            .process_group(0);
        use std::os::unix::process::CommandExt;
        crate::sys::enter_before_exec(&mut cmd, netns, fds, None);
        let mut child = cmd.spawn().map_err(|source| HelperError::Start {
            exe: exe.to_path_buf(),
            source,
        })?;
        let id = ProcId::of(child.id() as i32).ok_or(HelperError::ExitedAtOnce)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        Ok((Hog { id, child, stdin }, stdout))
    }

    /// Ask the helper to finish (any byte, then EOF) and wait up to `within` for it.
    pub fn finish(&mut self, within: Duration) -> bool {
        if let Some(mut pipe) = self.stdin.take() {
            let _ = pipe.write_all(b"q");
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Let it start consuming.
    pub fn go(&mut self) -> Result<(), HelperError> {
        let pipe = self.stdin.as_mut().ok_or(HelperError::StdinClosed)?;
        pipe.write_all(b"g")
            .and_then(|_| pipe.flush())
            .map_err(HelperError::Go)
    }

    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        // Reverting already killed it; reap so no zombie is left.
        self.stdin.take();
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Start a reporting helper in a namespace the journaled way: spawn it (it waits for its
/// go byte), record its kill, let it go, and wait for its `ready` line (or an `error`
/// line). Dropping the returned [`Hog`] on an error kills it.
pub fn start_in(
    exe: &Path,
    args: &[String],
    netns: &crate::netns::Netns,
    undo: &mut super::UndoLog<'_>,
    ready: &str,
    within: Duration,
) -> Result<(Hog, Lines), super::FaultError> {
    use super::FaultError;
    let (mut hog, lines) = Hog::spawn_in(exe, args, netns)?;
    undo.record(crate::journal::UndoAction::Kill { proc: hog.id })?;
    hog.go()?;
    let what = format!(
        "{} helper pid {} in {}",
        args.first().map_or("", String::as_str),
        hog.id.pid,
        netns.describe()
    );
    match lines.wait_for(&[ready, "error"], within) {
        Some(l) if l.starts_with(ready) => Ok((hog, lines)),
        Some(l) => Err(FaultError::Failed(format!("{what}: {l}"))),
        None => Err(FaultError::Failed(format!(
            "{what}: no \"{ready}\" line within {within:?}"
        ))),
    }
}

/// Lines a reporting helper printed so far.
#[derive(Clone, Default)]
pub struct Lines(pub std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Lines {
    /// Collect `out`'s lines on a thread of their own.
    fn collect(out: std::process::ChildStdout) -> Lines {
        let lines = Lines::default();
        let sink = lines.0.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let Ok(mut v) = sink.lock() else { return };
                v.push(line);
            }
        });
        lines
    }

    /// The first line starting with one of `prefixes`, waiting up to `within`.
    pub fn wait_for(&self, prefixes: &[&str], within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(v) = self.0.lock() {
                if let Some(l) = v.iter().find(|l| prefixes.iter().any(|p| l.starts_with(p))) {
                    return Some(l.clone());
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    /// The last line starting with `prefix`.
    pub fn last(&self, prefix: &str) -> Option<String> {
        self.0
            .lock()
            .ok()?
            .iter()
            .rev()
            .find(|l| l.starts_with(prefix))
            .cloned()
    }
    /// Lines from index `from` on, and the next index.
    pub fn since(&self, from: usize) -> (Vec<String>, usize) {
        match self.0.lock() {
            Ok(v) => (v.iter().skip(from).cloned().collect(), v.len()),
            Err(_) => (Vec::new(), from),
        }
    }
}

/// Entry point for `murphy __hog ...` (hidden).
pub fn main(args: &[String]) -> i32 {
    let arg = args.get(1).map(String::as_str).unwrap_or("");
    match args.first().map(String::as_str) {
        Some("io") => return crate::ptrace::io_main(arg),
        Some("leak") => return super::leak_helper::leak_main(arg),
        Some("netq") => return crate::netq::engine_main(arg),
        Some("bgp") => return crate::bgp::speaker_main(arg),
        Some("dns") => return crate::dns::responder_main(arg),
        _ => {}
    }
    let mut one = [0u8; 1];
    // Wait for the go byte; EOF means the parent gave up.
    if !matches!(std::io::stdin().read(&mut one), Ok(1)) {
        return 0;
    }
    // Exit when the parent goes away.
    std::thread::spawn(|| {
        let mut b = [0u8; 64];
        while matches!(std::io::stdin().read(&mut b), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    let num = |i: usize| {
        args.get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    match args.first().map(String::as_str) {
        Some("memory") => memory(num(1), num(2) as u64, Duration::from_millis(num(3) as u64)),
        Some("cpu") => cpu(num(1) as usize, Duration::from_millis(num(2) as u64)),
        _ => 2,
    }
}

fn memory(bytes_per_sec: f64, limit: u64, lease: Duration) -> i32 {
    let start = Instant::now();
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total: u64 = 0;
    while start.elapsed() < lease {
        let target = ((start.elapsed().as_secs_f64() * bytes_per_sec) as u64).min(limit);
        if total < target {
            let n = (target - total) as usize;
            // Non-zero fill so every page is really touched (not the shared zero page).
            held.push(vec![0xA5u8; n]);
            total += n as u64;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::hint::black_box(&held);
    0
}

fn cpu(workers: usize, lease: Duration) -> i32 {
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..workers.max(1) {
        threads.push(std::thread::spawn(move || {
            let mut x: u64 = 1;
            while start.elapsed() < lease {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            x
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    0
}
