//! `murphy-probe-pod`: a command probe's sampler, in a pod of its own. The cluster's
//! controller never runs a command from a spec; for a `command` probe it starts a pod from
//! the image the Experiment names (`spec.commandPod`), whose init container copies this
//! program (static, no dependencies) into a shared volume, and whose probe container runs
//! it with the probe's program. It runs the program every interval (start to start, never
//! bunching up), and prints one JSON line per sample, which the controller follows through
//! the pod's log:
//!
//! ```text
//! {"unixMs":1764000000000,"latencyMs":3.2,"exit":0,"stdout":"ok\n"}
//! {"unixMs":1764000000250,"latencyMs":1000.4,"timedOut":true}
//! {"unixMs":1764000000500,"latencyMs":0.1,"error":"/bin/nope: No such file or directory"}
//! {"unixMs":1764000000750,"latencyMs":2.5,"signal":11}
//! ```
//!
//! Usage:
//!
//! ```text
//! murphy-probe-pod --install PATH
//! murphy-probe-pod --interval-ms N --timeout-ms N --for-ms N [--stdout] [--once] -- PROGRAM [ARG...]
//! ```
//!
//! `--once` samples once and exits: a role check (is this member the primary?) asked in a
//! pod of its own.
//!
//! `--for-ms` bounds its life: it exits by itself when the run is long over even if the
//! controller that started it is gone. The program is executed directly, never through a
//! shell.

use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// At most this much of a sample's standard output is kept (and printed).
const STDOUT_MAX: u64 = 4096;

struct Args {
    interval: Duration,
    timeout: Duration,
    lifetime: Duration,
    stdout: bool,
    once: bool,
    argv: Vec<String>,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        interval: Duration::from_millis(250),
        timeout: Duration::from_secs(1),
        lifetime: Duration::from_secs(3600),
        stdout: false,
        once: false,
        argv: Vec::new(),
    };
    let ms = |v: Option<String>, flag: &str| -> Result<Duration, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        let n: u64 = v
            .parse()
            .map_err(|_| format!("{flag}: {v:?} is not a number of milliseconds"))?;
        Ok(Duration::from_millis(n.max(1)))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--interval-ms" => a.interval = ms(it.next(), "--interval-ms")?,
            "--timeout-ms" => a.timeout = ms(it.next(), "--timeout-ms")?,
            "--for-ms" => a.lifetime = ms(it.next(), "--for-ms")?,
            "--stdout" => a.stdout = true,
            "--once" => a.once = true,
            "--" => {
                a.argv = it.collect();
                break;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.argv.is_empty() {
        return Err("no program after --".into());
    }
    Ok(a)
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Run the program once: its JSON line's fields after `unixMs` and `latencyMs`.
fn sample(a: &Args) -> (Duration, String) {
    let start = Instant::now();
    let spawned = Command::new(&a.argv[0])
        .args(&a.argv[1..])
        .stdin(Stdio::null())
        .stdout(if a.stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return (
                start.elapsed(),
                format!("\"error\":{}", json_str(&format!("{}: {e}", a.argv[0]))),
            )
        }
    };
    // Read stdout on the side so a chatty program cannot block on a full pipe.
    let reader = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut limited = out.take(STDOUT_MAX);
            let _ = limited.read_to_end(&mut buf);
            // Drain the rest so the program never blocks on a full pipe.
            let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
            buf
        })
    });
    let deadline = start + a.timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let took = start.elapsed();
                use std::os::unix::process::ExitStatusExt;
                let mut fields = match (status.code(), status.signal()) {
                    (Some(code), _) => format!("\"exit\":{code}"),
                    (None, Some(sig)) => format!("\"signal\":{sig}"),
                    (None, None) => "\"exit\":-1".into(),
                };
                if let Some(r) = reader {
                    let out = r.join().unwrap_or_default();
                    fields.push_str(&format!(
                        ",\"stdout\":{}",
                        json_str(&String::from_utf8_lossy(&out))
                    ));
                }
                return (took, fields);
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return (start.elapsed(), "\"timedOut\":true".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                return (
                    start.elapsed(),
                    format!("\"error\":{}", json_str(&e.to_string())),
                )
            }
        }
    }
}

/// Copy this executable to `path` (mode 0755): the init container's whole job, so the
/// probe container's image needs no shell and no `cp`.
fn install(path: &str) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("finding myself: {e}"))?;
    std::fs::copy(&me, path).map_err(|e| format!("copying to {path}: {e}"))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{path}: {e}"))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--install") {
        args.next();
        let Some(path) = args.next() else {
            eprintln!("murphy-probe-pod: --install needs a path");
            return ExitCode::from(2);
        };
        return match install(&path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("murphy-probe-pod: {e}");
                ExitCode::from(1)
            }
        };
    }
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("murphy-probe-pod: {e}");
            return ExitCode::from(2);
        }
    };
    let born = Instant::now();
    let mut next = Instant::now();
    let stdout = std::io::stdout();
    while born.elapsed() < a.lifetime {
        let at = unix_ms();
        let (took, fields) = sample(&a);
        let line = format!(
            "{{\"unixMs\":{at},\"latencyMs\":{:.3},{fields}}}\n",
            took.as_secs_f64() * 1000.0
        );
        let mut out = stdout.lock();
        if out
            .write_all(line.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            // Nobody reads the log any more: stop.
            return ExitCode::SUCCESS;
        }
        drop(out);
        if a.once {
            break;
        }
        next += a.interval;
        let now = Instant::now();
        if next < now {
            // A slow sample: skip the missed ticks rather than firing a burst.
            next = now;
        }
        std::thread::sleep(next - now);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<Args, String> {
        parse(s.iter().map(|x| x.to_string()))
    }

    #[test]
    fn arguments_are_data_and_the_program_comes_after_the_separator() {
        let a = args(&[
            "--interval-ms",
            "500",
            "--timeout-ms",
            "200",
            "--stdout",
            "--",
            "/bin/echo",
            "a;b",
            "$(x)",
        ])
        .expect("args");
        assert_eq!(a.interval, Duration::from_millis(500));
        assert_eq!(a.timeout, Duration::from_millis(200));
        assert!(a.stdout);
        assert_eq!(a.argv, ["/bin/echo", "a;b", "$(x)"]);
        assert!(args(&["--interval-ms", "x", "--", "/bin/true"]).is_err());
        assert!(args(&["--"]).is_err());
        assert!(args(&["--bogus", "--", "/bin/true"]).is_err());
    }

    #[test]
    fn a_sample_reports_exit_output_timeout_and_spawn_errors() {
        let mut a = args(&[
            "--stdout",
            "--timeout-ms",
            "2000",
            "--",
            "/bin/echo",
            "he said \"ok\"",
        ])
        .expect("args");
        let (_, f) = sample(&a);
        assert_eq!(f, "\"exit\":0,\"stdout\":\"he said \\\"ok\\\"\\n\"");
        a.argv = vec!["/bin/false".into()];
        a.stdout = false;
        assert_eq!(sample(&a).1, "\"exit\":1");
        a.argv = vec!["/bin/sleep".into(), "5".into()];
        a.timeout = Duration::from_millis(100);
        let (took, f) = sample(&a);
        assert_eq!(f, "\"timedOut\":true");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // A sleep only this test runs (pkill matches its whole command line).
        a.argv = vec!["/bin/sleep".into(), "5.4321".into()];
        a.timeout = Duration::from_secs(3);
        let child = std::thread::spawn(move || sample(&a));
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::process::Command::new("/usr/bin/pkill")
            .args(["-SEGV", "-f", "^/bin/sleep 5.4321$"])
            .status();
        let (_, f) = child.join().expect("sample");
        assert_eq!(f, "\"signal\":11");
        let a = args(&["--", "/nonexistent/program"]).expect("args");
        assert!(sample(&a)
            .1
            .starts_with("\"error\":\"/nonexistent/program: "));
    }
}
