//! The dead-man switch of a local run.
//!
//! `murphy run` starts a guardian (`murphy __guard`, a process of its own, in its own
//! process group) before it changes anything. The guardian watches the runner through a
//! pidfd. A run that ends — well or badly, but by returning — releases it, and it exits
//! at once. If instead the runner dies (SIGKILL, an OOM kill, a panic that aborts), the
//! guardian replays the run's journal the moment the kernel reports the death: faults
//! first, newest first, then the lab — exactly what `murphy recover --run ID` does, under
//! the same lock, so a `recover` started by hand at the same time never doubles a revert.
//!
//! What it cannot cover: the guardian itself killed with the runner (a `kill -9` of both,
//! a whole cgroup or container killed, the machine's power). For those, `murphy recover`
//! (by hand, or from the boot hook the README shows) replays the journal left on disk.
//!
//! The guardian writes what it did to `<state-dir>/journal/<run>.guardian.log`; that file
//! stays only when the guardian had something to say.

use crate::journal::{self, Journal};
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// What the runner writes to tell its guardian it ended by itself.
const RELEASE: &[u8] = b"release\n";
/// How long a guardian may take to say it is watching.
const START_WITHIN: Duration = Duration::from_secs(5);
/// How long the guardian waits for the journal's lock after the runner's death (a
/// concurrent `murphy recover` may hold it).
const CLAIM_WITHIN: Duration = Duration::from_secs(30);

pub fn log_path(state_dir: &Path, run_id: &str) -> PathBuf {
    Journal::dir(state_dir).join(format!("{run_id}.guardian.log"))
}

/// The runner's handle on its guardian.
pub struct Guardian {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guardian {
    /// Start the guardian of run `run_id` (whose journal is already created) and wait
    /// until it watches this process.
    pub fn start(exe: &Path, state_dir: &Path, run_id: &str) -> io::Result<Guardian> {
        if let Some(dir) = log_path(state_dir, run_id).parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(state_dir, run_id))?;
        let mut child = Command::new(exe)
            .arg("__guard")
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--run")
            .arg(run_id)
            .arg("--pid")
            .arg(std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            // Out of the runner's process group: a Ctrl-C, or a CI job's kill of the
            // group, reaches the runner (which then stops in order) but not its guardian.
            .process_group(0)
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let ready = wait_readable(stdout.as_fd(), START_WITHIN).and_then(|()| {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line)?;
            if line.trim() == "watching" {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "the guardian did not start (said {:?}; see {})",
                    line.trim(),
                    log_path(state_dir, run_id).display()
                )))
            }
        });
        if let Err(e) = ready {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let stdin = child.stdin.take();
        Ok(Guardian { child, stdin })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The run ended by itself (whatever it left, it said so): the guardian exits without
    /// replaying anything.
    pub fn release(mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(RELEASE);
        }
        // It exits at once; reap it, but never hang the run's end on it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, within: Duration) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms = u16::try_from(within.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the guardian did not start in time",
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

macro_rules! say {
    ($($a:tt)*) => {{
        let _ = writeln!(io::stderr(), "{} {}", now_rfc3339(), format!($($a)*));
    }};
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    crate::html::utc(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// `murphy __guard`: watch runner `pid`; replay run `run_id`'s journal if it dies without
/// releasing us. Returns the process's exit code.
pub fn main(state_dir: &Path, run_id: &str, pid: i32) -> i32 {
    use nix::sys::signal::Signal;
    // A terminal's hang-up or Ctrl-C, or a stop request, is for the runner; the guardian
    // ends when the runner does.
    crate::sys::ignore_signals(&[
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGQUIT,
    ]);
    let log = log_path(state_dir, run_id);
    let runner = match crate::sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            say!("cannot watch runner {pid}: {e}");
            return 4;
        }
    };
    // The pidfd names the process that started us only if it is still our parent now.
    let died_early = nix::unistd::getppid().as_raw() != pid;
    if !died_early {
        let mut out = io::stdout();
        let _ = out.write_all(b"watching\n");
        let _ = out.flush();
    }
    // Let go of the runner's stdout pipe (a `murphy run | tee` ends with the runner).
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
    if !died_early && released(runner.as_fd()) {
        // Nothing to say: drop the log if this guardian never wrote to it.
        if fs::metadata(&log).is_ok_and(|m| m.len() == 0) {
            let _ = fs::remove_file(&log);
        }
        return 0;
    }
    say!("runner {pid} of run {run_id} died without finishing: replaying its journal");
    replay(state_dir, run_id)
}

/// Wait for the runner: true when it released us, false when it died first.
fn released(runner: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdin = io::stdin();
    let mut stdin_open = true;
    let mut got = Vec::new();
    loop {
        let mut fds = vec![PollFd::new(runner, PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                say!("waiting on the runner: {e}");
                return false;
            }
            Ok(_) => {}
        }
        let runner_gone = fds[0].any().unwrap_or(true);
        if stdin_open && fds.get(1).and_then(|f| f.any()).unwrap_or(false) {
            let mut buf = [0u8; 64];
            match io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if got.ends_with(RELEASE) {
                return true;
            }
            continue;
        }
        if runner_gone {
            // A release written just before the exit is still in the pipe.
            if stdin_open {
                let mut rest = Vec::new();
                let _ = io::stdin().lock().read_to_end(&mut rest);
                got.extend_from_slice(&rest);
            }
            return got.ends_with(RELEASE);
        }
    }
}

/// Replay the journal as `murphy recover --run` does, waiting for a concurrent holder.
fn replay(state_dir: &Path, run_id: &str) -> i32 {
    let started = Instant::now();
    loop {
        let recs = match journal::recover(state_dir, Some(run_id)) {
            Ok(r) => r,
            Err(e) => {
                say!("replaying the journal of run {run_id}: {e}");
                return 4;
            }
        };
        let Some(rec) = recs.into_iter().next() else {
            say!("run {run_id} left no journal: nothing to undo");
            return 0;
        };
        if rec.alive {
            if started.elapsed() > CLAIM_WITHIN {
                say!(
                    "{} is still held by another process after {} s; `murphy recover --run {run_id}` replays it once it is free",
                    rec.journal.display(),
                    CLAIM_WITHIN.as_secs()
                );
                return 4;
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        for u in &rec.undone {
            say!("undone: {u}");
        }
        for e in &rec.errors {
            say!("FAILED: {e}");
        }
        if rec.errors.is_empty() {
            say!(
                "run {run_id}: everything undone in {} ms after the runner died",
                started.elapsed().as_millis()
            );
            return 0;
        }
        say!(
            "run {run_id}: some undo actions failed; `murphy recover --run {run_id}` retries them"
        );
        return 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lives_beside_the_journal() {
        let p = log_path(Path::new("/var/lib/murphy"), "abcd1234");
        assert_eq!(
            p,
            Path::new("/var/lib/murphy/journal/abcd1234.guardian.log")
        );
    }
}
