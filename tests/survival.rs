//! The target survives the tool: the runner SIGKILLed at random moments while it stops a
//! target's thread (the in-process leak) or holds a lab target paused with SIGSTOP. The
//! target must come out alive, runnable, untraced and without Murphy's mapping, and with a
//! guardian nobody has to run `recover`.

mod common;
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn journal_has(state: &Path, needle: &str) -> bool {
    std::fs::read_dir(state.join("journal"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(needle)))
        })
        .unwrap_or(false)
}

fn start_run(state: &Path, yaml: &str) -> Child {
    std::fs::create_dir_all(state).expect("state dir");
    let exp = state.join("exp.yaml");
    std::fs::write(&exp, yaml).expect("write");
    spawn_run(&exp, state)
}

fn wait_journal(state: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !journal_has(state, needle) {
        assert!(Instant::now() < deadline, "{needle} never journaled");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn status_field(pid: i32, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

/// A pseudo-random delay (no crate: the test's pid and the round).
fn jitter(round: u64, max_ms: u64) -> Duration {
    let x = (u64::from(std::process::id()) ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    Duration::from_millis((x >> 33) % max_ms)
}

/// A process Murphy did not start: it counts forever and writes the count to a file, so
/// its progress is seen from outside.
fn counter(dir: &Path) -> (Reaped, std::path::PathBuf) {
    let file = dir.join("count");
    let child = Command::new("python3")
        .args([
            "-c",
            "import sys,time\nn=0\nwhile True:\n    n+=1\n    open(sys.argv[1],'w').write(str(n))\n    time.sleep(0.01)\n",
        ])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !file.exists() {
        assert!(Instant::now() < deadline, "counter never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    (Reaped(child), file)
}

fn count(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

use std::os::unix::process::CommandExt;

/// The runner SIGKILLed at 8 random moments of an in-process leak (the leak stops the
/// target's main thread every 100ms to run mmap and madvise in it): every time, the target
/// lives on untraced and counting, and the guardian unmaps the leak within 2 s.
#[test]
fn a_runner_killed_during_an_in_process_leak_leaves_its_target_running() {
    require_root();
    let dir = temp_dir("leakkill");
    let (mut target, file) = counter(&dir);
    let pid = target.0.id() as i32;
    for round in 0..8u64 {
        let state = dir.join(format!("state-{round}"));
        let yaml = format!(
            r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {{name: leak-kill}}
spec:
  targets:
    t: {{process: {{pid: {pid}}}}}
  steadyState: {{duration: 200ms}}
  faults:
    - {{name: leak, kind: memory-leak, target: t, at: 0s, duration: 60s, rate: 200Mi/s, limit: 512Mi, mode: inProcess}}
"#
        );
        let mut run = start_run(&state, &yaml);
        wait_journal(&state, "\"unmap\"");
        std::thread::sleep(jitter(round, 400));
        run.kill().expect("SIGKILL the runner");
        run.wait().expect("reap");
        let killed = Instant::now();
        loop {
            let traced = status_field(pid, "TracerPid:").unwrap_or_default();
            let maps = leak_mappings(pid);
            if traced == "0" && maps.is_empty() && !journal_has(&state, "\"unmap\"") {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(2),
                "round {round}: 2 s after the kill: tracer {traced}, leak mappings {maps:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            target.0.try_wait().expect("wait").is_none(),
            "round {round}: the target died"
        );
        // Not stopped or traced: running, sleeping, or in a disk wait (writing its file).
        let state_char = murphy::procfs::stat(pid).map(|s| s.state);
        assert!(
            matches!(state_char, Some('R' | 'S' | 'D')),
            "round {round}: target state {state_char:?}"
        );
        let (a, t) = (count(&file), Instant::now());
        while count(&file) < a + 5 {
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "round {round}: the target stopped counting at {a}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(target);
}

/// A lab target paused with SIGSTOP (`method: signal`), then the guardian and the runner
/// SIGKILLed: the target is not in a process group the kernel orphans (it would get SIGHUP
/// and die) — it stays alive and stopped until `murphy recover`, which resumes it and takes
/// the lab down.
#[test]
fn a_lab_target_paused_with_sigstop_outlives_a_killed_runner() {
    require_root();
    let state = temp_dir("pausekill");
    let yaml = r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: pause-kill}
spec:
  lab:
    subnet: 10.78.11.0/24
    hosts:
      - name: a
        processes: [{name: idle, argv: [sleep, "600"]}]
  targets:
    a: {lab: a/idle}
  steadyState: {duration: 200ms}
  faults:
    - {name: stop, kind: process-pause, target: a, at: 0s, duration: 60s, method: signal}
"#;
    let mut run = start_run(&state, yaml);
    wait_journal(&state, "\"continue\"");
    std::thread::sleep(Duration::from_millis(300));
    let target = murphy::procfs::all_pids()
        .into_iter()
        .find(|p| murphy::procfs::cmdline(*p).is_some_and(|c| c == "sleep 600"))
        .expect("the lab target");
    assert_eq!(murphy::procfs::stat(target).map(|s| s.state), Some('T'));
    let needle = format!("__guard --state-dir {}", state.display());
    let guardian = murphy::procfs::all_pids()
        .into_iter()
        .find(|p| murphy::procfs::cmdline(*p).is_some_and(|c| c.contains(&needle)))
        .expect("the guardian");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(guardian),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the guardian");
    run.kill().expect("SIGKILL the runner");
    run.wait().expect("reap");
    std::thread::sleep(Duration::from_millis(500));
    let st = murphy::procfs::stat(target).map(|s| s.state);
    assert_eq!(
        st,
        Some('T'),
        "the paused lab target must outlive the runner (alive, still stopped)"
    );
    let out = recover(&state);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("resumed pid {target}")), "{said}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while murphy::procfs::stat(target).is_some_and(|s| s.state != 'Z') {
        assert!(Instant::now() < deadline, "the lab target outlived recover");
        std::thread::sleep(Duration::from_millis(20));
    }
}
