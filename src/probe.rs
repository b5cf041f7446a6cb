//! Probes: HTTP, TCP connect and command checks, each sampled at an interval on a thread of
//! its own (which may enter a lab host's network namespace first). Every sample carries the
//! time it started on the run's clock and how long it took. Probes only observe; they never
//! change the system.

use crate::model::spec::{Check, CommandCheck, HttpCheck};
use crate::netns::Netns;
use crate::record::Clock;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The result of one check.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub ok: bool,
    pub latency: Duration,
    pub detail: String,
}

/// A sample as it goes on the timeline.
#[derive(Clone, Debug)]
pub struct ProbeSample {
    pub probe: String,
    pub t_ms: f64,
    pub outcome: Outcome,
}

pub(crate) fn enter(netns: Option<&Netns>) -> Result<(), String> {
    if let Some(ns) = netns {
        if let Some(fd) = ns
            .open()
            .map_err(|e| format!("opening {}: {e}", ns.describe()))?
        {
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("entering {}: {e}", ns.describe()))?;
        }
    }
    Ok(())
}

/// Run one check, from inside `netns` if given (on a short-lived thread).
pub fn check_once(check: &Check, netns: Option<&Netns>, timeout: Duration) -> Outcome {
    if netns.is_none() || netns == Some(&Netns::Root) {
        return run_check(check, timeout);
    }
    let check = check.clone();
    let ns = netns.cloned();
    std::thread::scope(|s| {
        s.spawn(move || match enter(ns.as_ref()) {
            Ok(()) => run_check(&check, timeout),
            Err(e) => Outcome {
                ok: false,
                latency: Duration::ZERO,
                detail: e,
            },
        })
        .join()
        .unwrap_or_else(|_| Outcome {
            ok: false,
            latency: Duration::ZERO,
            detail: "probe thread panicked".into(),
        })
    })
}

/// Run one check in the calling thread's network namespace.
pub fn run_check(check: &Check, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let r = if let Some(h) = &check.http {
        http(h, timeout)
    } else if let Some(t) = &check.tcp {
        tcp(&t.address, timeout).map(|_| "connected".to_string())
    } else if let Some(c) = &check.command {
        command(c, timeout)
    } else if let Some(p) = &check.prometheus {
        crate::prom::instant_check(p, timeout)
    } else {
        Err("no check configured".into())
    };
    let latency = start.elapsed();
    match r {
        Ok(detail) => Outcome {
            ok: true,
            latency,
            detail,
        },
        Err(detail) => Outcome {
            ok: false,
            latency,
            detail,
        },
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("resolving {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} did not resolve"))
}

fn tcp(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let sa = resolve(addr)?;
    TcpStream::connect_timeout(&sa, timeout).map_err(|e| format!("connect {sa}: {e}"))
}

fn http(h: &HttpCheck, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let (host, port, path) =
        crate::model::validate::parse_http_url(&h.url).map_err(|e| e.to_string())?;
    let mut s = tcp(&format!("{host}:{port}"), timeout)?;
    let left = |d: Instant| {
        d.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    s.set_write_timeout(Some(left(deadline)))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: murphy-probe\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("sending request: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} reading the response"));
        }
        s.set_read_timeout(Some(left(deadline)))
            .map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 1 << 20 {
                    break;
                }
            }
            // A signal caught by any thread ends a read with a timeout in EINTR even
            // with SA_RESTART (signal(7)); the deadline still bounds the retry.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("timed out after {timeout:?} reading the response"))
            }
            Err(e) => return Err(format!("reading response: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let status_line = text.lines().next().unwrap_or("");
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP response: {:?}",
                status_line.chars().take(60).collect::<String>()
            )
        })?;
    let status_ok = if h.status.is_empty() {
        (200..400).contains(&code)
    } else {
        h.status.contains(&code)
    };
    if !status_ok {
        return Err(format!("HTTP {code}"));
    }
    if let Some(needle) = &h.body_contains {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if !body.contains(needle.as_str()) {
            return Err(format!("HTTP {code} but body lacks {needle:?}"));
        }
    }
    Ok(format!("HTTP {code}"))
}

/// A finished command's sample: healthy when it exited with the expected code and, when
/// asked, printed the expected text. Shared by the local door (which runs the command) and
/// the cluster's command pods (which report the exit code and output).
pub fn judge_command(c: &CommandCheck, code: i32, stdout: Option<&str>) -> Result<String, String> {
    if code != c.exit_code {
        return Err(format!("exit {code}, expected {}", c.exit_code));
    }
    if let Some(w) = &c.stdout_contains {
        if !stdout.unwrap_or("").contains(w.as_str()) {
            return Err(format!(
                "exit {code}, but the output does not contain {w:?}"
            ));
        }
    }
    Ok(format!("exit {code}"))
}

fn command(c: &CommandCheck, timeout: Duration) -> Result<String, String> {
    let want = c.stdout_contains.as_deref();
    let mut child = Command::new(&c.argv[0])
        .args(&c.argv[1..])
        .stdin(Stdio::null())
        .stdout(if want.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", c.argv[0]))?;
    // Read stdout on the side (at most 1 MiB) so a chatty program cannot block on a full pipe.
    let reader = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.take(1 << 20).read_to_end(&mut buf);
            buf
        })
    });
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let code = status.code().unwrap_or(-1);
                let out = reader.map(|r| r.join().unwrap_or_default());
                let out = out.as_deref().map(String::from_utf8_lossy);
                return judge_command(c, code, out.as_deref());
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A running probe; stops when dropped or when `stop` is set.
pub struct ProbeHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProbeHandle {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Start sampling `check` every `interval` (measured start to start, never bunching up
/// after a slow sample) and send every sample to `tx`.
pub fn spawn(
    name: String,
    check: Check,
    netns: Option<Netns>,
    interval: Duration,
    timeout: Duration,
    clock: Clock,
    tx: Sender<ProbeSample>,
) -> ProbeHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("probe-{name}"))
        .spawn(move || {
            let entered = enter(netns.as_ref());
            let mut next = Instant::now();
            while !stop2.load(Ordering::SeqCst) {
                let t_ms = clock.now_ms();
                let outcome = match &entered {
                    Ok(()) => run_check(&check, timeout),
                    Err(e) => Outcome {
                        ok: false,
                        latency: Duration::ZERO,
                        detail: e.clone(),
                    },
                };
                if tx
                    .send(ProbeSample {
                        probe: name.clone(),
                        t_ms,
                        outcome,
                    })
                    .is_err()
                {
                    break;
                }
                next += interval;
                let now = Instant::now();
                if next < now {
                    // A slow sample: skip the missed ticks rather than firing a burst.
                    next = now;
                }
                while Instant::now() < next && !stop2.load(Ordering::SeqCst) {
                    std::thread::sleep((next - Instant::now()).min(Duration::from_millis(20)));
                }
            }
        })
        .ok();
    ProbeHandle { stop, thread }
}
