//! Privileged tests: storage faults and the in-process memory leak against running
//! processes in a real lab. The effect is measured by the target itself (its own timing of
//! each write and fsync, the errors it sees) or by the kernel (/proc), independently of the
//! fault's confirm; then revert (twice) and nothing left behind: no tracer attached, no
//! helper process, no mapping, no cgroup or namespace.

mod common;
use common::*;
use murphy::fault::{self, FaultEnv, Member, UndoLog};
use murphy::journal::{Netns, NoLab};
use murphy::model::quantity::{Duration as QDuration, Percent};
use murphy::model::spec::*;
use murphy::model::{ByteRate, ByteSize};
use murphy::ptrace::IoOp;
use std::time::{Duration, Instant};

fn env() -> FaultEnv {
    FaultEnv {
        exe: env!("CARGO_BIN_EXE_murphy").into(),
        lease: Duration::from_secs(60),
        peer_addrs: vec![],
        seed: 7,
        max_data_bytes: 1 << 30,
        allow_paths: Vec::new(),
        from: None,
    }
}

fn member(fx: &Fixture, host: &str, process: &str) -> Member {
    let (netns, addr) = fx.lab().host(host).expect("host");
    Member {
        label: host.into(),
        procs: fx
            .lab()
            .processes(host, Some(process))
            .into_iter()
            .flat_map(|(_, p)| p)
            .collect(),
        netns: Netns::Named { name: netns },
        addrs: vec![addr],
        lab: Some((host.to_string(), Some(process.to_string()))),
    }
}

/// A writer that opens its file once, then appends and fsyncs every 20ms, printing how
/// long each round took (ms) or the errno it got, to stdout (the lab's log).
const WRITER: &str = "
subnet: 10.78.7.0/24
hosts:
  - name: h1
    processes:
      - name: writer
        argv:
          - python3
          - -c
          - |
            import os, sys, time
            f = open(sys.argv[1], 'ab', buffering=0)
            while True:
                t = time.monotonic()
                try:
                    f.write(b'x' * 64)
                    os.fsync(f.fileno())
                    print('ok %.3f' % ((time.monotonic() - t) * 1000), flush=True)
                except OSError as e:
                    print('err %d' % e.errno, flush=True)
                time.sleep(0.02)
          - '{data}/wal'
      - {name: sleeper, argv: [sleep, '600'], memoryLimit: 96Mi}
";

fn log_lines(fx: &Fixture) -> Vec<String> {
    std::fs::read_to_string(fx.lab().log_path("h1", "writer"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Lines the writer printed from now until `d` has passed.
fn lines_during(fx: &Fixture, d: Duration) -> Vec<String> {
    let before = log_lines(fx).len();
    std::thread::sleep(d);
    log_lines(fx).into_iter().skip(before).collect()
}

fn round_ms(lines: &[String]) -> Vec<f64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ok ")?.trim().parse().ok())
        .collect()
}

fn tracer_pids(pid: i32) -> Vec<i32> {
    murphy::fault::storage::tracers_of(pid)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

fn assert_untraced(pid: i32) {
    let t = tracer_pids(pid);
    assert!(
        !t.is_empty() && t.iter().all(|&p| p == 0),
        "threads of pid {pid} still traced: {t:?}"
    );
}

fn inject(
    fx: &Fixture,
    action: FaultAction,
    m: &Member,
    group: &str,
) -> (Box<dyn fault::Fault>, Vec<murphy::journal::UndoAction>) {
    let mut f = fault::build(&action, &env(), group);
    let mut undo = UndoLog::new(&fx.journal, group, group).expect("undo");
    f.inject(std::slice::from_ref(m), &mut undo)
        .expect("inject");
    (f, undo.into_actions())
}

fn data_paths(fx: &Fixture) -> Vec<String> {
    vec![format!("{}/*", fx.lab().data_dir("h1").display())]
}

fn wait_writing(fx: &Fixture) {
    let t = Instant::now();
    while round_ms(&log_lines(fx)).len() < 5 {
        assert!(t.elapsed() < Duration::from_secs(10), "writer never wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn io_latency_delays_an_already_open_file_then_reverts_cleanly() {
    let mut fx = Fixture::new("iolat", WRITER);
    wait_writing(&fx);
    let m = member(&fx, "h1", "writer");
    let pid = m.procs[0].pid;
    let base = round_ms(&lines_during(&fx, Duration::from_millis(500)));
    let (mut f, actions) = inject(
        &fx,
        FaultAction::IoLatency(IoLatency {
            paths: data_paths(&fx),
            ops: vec![IoOp::Fsync],
            delay: QDuration(Duration::from_millis(30)),
            jitter: Some(QDuration(Duration::from_millis(5))),
        }),
        &m,
        "lat",
    );
    let ev = f.confirm().expect("confirm");
    assert!(ev.0.contains("traced by pid"), "{}", ev.0);
    // Independent check: the writer's own timing of each round (it opened the file
    // before the fault started).
    let during = round_ms(&lines_during(&fx, Duration::from_millis(1500)));
    f.stop();
    fault::revert(&actions, &NoLab).expect("revert");
    fault::revert(&actions, &NoLab).expect("revert again");
    let after = round_ms(&lines_during(&fx, Duration::from_millis(500)));
    let med = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    assert!(during.len() >= 10, "too few rounds during: {during:?}");
    assert!(
        (24.0..60.0).contains(&med(&during)),
        "median round during a 30ms±5ms fsync delay: {} (before {}, rounds {during:?})",
        med(&during),
        med(&base)
    );
    assert!(
        med(&after) < 10.0,
        "rounds still slow after revert: {after:?}"
    );
    assert_untraced(pid);
    drop(f);
    fx.teardown_and_assert_clean();
}

/// A target that alternates two files on the same descriptor number: open `hot` (in the
/// fault's paths), fsync, close; open `cold` (outside them) — the kernel hands back the same
/// number — fsync, close. Each round prints which file and how long its fsync took (ms).
const REUSER: &str = "
subnet: 10.78.7.0/24
hosts:
  - name: h1
    processes:
      - name: writer
        argv:
          - python3
          - -c
          - |
            import os, sys, time
            os.makedirs(sys.argv[1] + '/hot', exist_ok=True)
            while True:
                for name in ('hot/f', 'cold'):
                    fd = os.open(sys.argv[1] + '/' + name, os.O_WRONLY | os.O_CREAT, 0o644)
                    os.write(fd, b'x')
                    t = time.monotonic()
                    os.fsync(fd)
                    print('%s %d %.3f' % (name, fd, (time.monotonic() - t) * 1000), flush=True)
                    os.close(fd)
                time.sleep(0.01)
          - '{data}'
";

#[test]
fn a_descriptor_reused_for_another_file_is_judged_by_its_new_path() {
    let mut fx = Fixture::new("fdreuse", REUSER);
    let t = Instant::now();
    while log_lines(&fx).len() < 6 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the target never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = member(&fx, "h1", "writer");
    let (mut f, actions) = inject(
        &fx,
        FaultAction::IoLatency(IoLatency {
            paths: vec![format!("{}/hot", fx.lab().data_dir("h1").display())],
            ops: vec![IoOp::Fsync],
            delay: QDuration(Duration::from_millis(40)),
            jitter: None,
        }),
        &m,
        "reuse",
    );
    f.confirm().expect("confirm");
    let lines = lines_during(&fx, Duration::from_millis(1500));
    let achieved = f.fidelity();
    f.stop();
    fault::revert(&actions, &NoLab).expect("revert");
    let rounds = |which: &str| -> Vec<(i32, f64)> {
        lines
            .iter()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == which).then_some(())?;
                Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
            })
            .collect()
    };
    let (hot, cold) = (rounds("hot/f"), rounds("cold"));
    assert!(hot.len() >= 5 && cold.len() >= 5, "{lines:?}");
    // The same descriptor number each time: the cache had to forget it at each close.
    assert!(
        hot.iter().chain(&cold).all(|(fd, _)| *fd == hot[0].0),
        "{lines:?}"
    );
    assert!(
        hot.iter().all(|(_, ms)| *ms >= 35.0),
        "every fsync of the file in the fault's paths is delayed: {hot:?}"
    );
    assert!(
        cold.iter().all(|(_, ms)| *ms < 30.0),
        "no fsync of the other file on the same descriptor is: {cold:?}"
    );
    // Paths were resolved once per open, not per call.
    assert!(
        achieved["fdPathsResolved"] >= hot.len() as f64,
        "{achieved:?}"
    );
    drop(f);
    fx.teardown_and_assert_clean();
}

#[test]
fn storage_stall_holds_operations_until_revert() {
    let mut fx = Fixture::new("stall", WRITER);
    wait_writing(&fx);
    let m = member(&fx, "h1", "writer");
    let pid = m.procs[0].pid;
    let (mut f, actions) = inject(
        &fx,
        FaultAction::StorageStall(StorageStall {
            paths: data_paths(&fx),
            ops: vec![],
        }),
        &m,
        "stall",
    );
    f.confirm().expect("confirm");
    std::thread::sleep(Duration::from_millis(200));
    // Independent checks: the writer prints nothing, and the kernel shows its thread
    // stopped by the tracer (state t) inside a write or fsync.
    let during = lines_during(&fx, Duration::from_millis(1000));
    assert!(
        during.is_empty(),
        "writer made progress during a stall: {during:?}"
    );
    let state = murphy::procfs::stat(pid).expect("stat").state;
    let sc = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    let nr: u64 = sc
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9999);
    assert_eq!(state, 't', "writer should be in a tracing stop");
    assert!(
        [murphy::ptrace::nr::WRITE, murphy::ptrace::nr::FSYNC].contains(&nr),
        "held in syscall {nr}, expected write or fsync"
    );
    let obs = f.observe().join("; ");
    assert!(obs.contains("1 operation(s) held now"), "{obs}");
    let t = Instant::now();
    f.stop();
    fault::revert(&actions, &NoLab).expect("revert");
    fault::revert(&actions, &NoLab).expect("revert again");
    let after = lines_during(&fx, Duration::from_millis(500));
    assert!(
        round_ms(&after).len() >= 5,
        "writer did not resume after revert: {after:?}"
    );
    // The held round completed, taking about as long as the stall.
    let all = round_ms(&log_lines(&fx));
    assert!(
        all.iter().any(|&ms| ms >= 1000.0),
        "one round should include the whole stall: {all:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_untraced(pid);
    drop(f);
    fx.teardown_and_assert_clean();
}

#[test]
fn io_error_fails_fsync_with_the_errno_then_stops() {
    let mut fx = Fixture::new("ioerr", WRITER);
    wait_writing(&fx);
    let m = member(&fx, "h1", "writer");
    let pid = m.procs[0].pid;
    let (mut f, actions) = inject(
        &fx,
        FaultAction::IoError(IoError {
            paths: data_paths(&fx),
            ops: vec![IoOp::Fsync],
            errno: "ENOSPC".into(),
            probability: Some(Percent(50.0)),
        }),
        &m,
        "err",
    );
    f.confirm().expect("confirm");
    let during = lines_during(&fx, Duration::from_millis(1500));
    let errs = during.iter().filter(|l| *l == "err 28").count();
    let oks = round_ms(&during).len();
    assert!(
        errs >= 5 && oks >= 5,
        "about half the fsyncs should fail with ENOSPC (28): {errs} errors, {oks} ok: {during:?}"
    );
    assert!(
        during.iter().all(|l| l == "err 28" || l.starts_with("ok ")),
        "{during:?}"
    );
    f.stop();
    fault::revert(&actions, &NoLab).expect("revert");
    let after = lines_during(&fx, Duration::from_millis(500));
    assert!(
        !after.is_empty() && after.iter().all(|l| l.starts_with("ok ")),
        "errors after revert: {after:?}"
    );
    assert_untraced(pid);
    drop(f);
    fx.teardown_and_assert_clean();
}

#[test]
fn a_killed_tracer_leaves_the_target_running_untraced() {
    let mut fx = Fixture::new("trkill", WRITER);
    wait_writing(&fx);
    let m = member(&fx, "h1", "writer");
    let pid = m.procs[0].pid;
    let (f, actions) = inject(
        &fx,
        FaultAction::StorageStall(StorageStall {
            paths: data_paths(&fx),
            ops: vec![IoOp::Fsync],
        }),
        &m,
        "stallk",
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(lines_during(&fx, Duration::from_millis(300)).is_empty());
    // The journal's undo (what `murphy recover` runs) without the fault's graceful stop:
    // SIGKILL of the tracer. The kernel detaches the target and the held fsync completes.
    fault::revert(&actions, &NoLab).expect("revert by kill");
    let after = lines_during(&fx, Duration::from_millis(500));
    assert!(
        round_ms(&after).len() >= 5,
        "writer stuck after its tracer died: {after:?}"
    );
    assert_untraced(pid);
    drop(f);
    fx.teardown_and_assert_clean();
}

fn anon_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn in_process_leak_grows_the_target_itself_and_revert_unmaps() {
    let mut fx = Fixture::new("leakin", WRITER);
    let m = member(&fx, "h1", "sleeper");
    let target = m.procs[0];
    let before = anon_kib(target.pid);
    let (mut f, actions) = inject(
        &fx,
        FaultAction::MemoryLeak(MemoryLeak {
            rate: ByteRate {
                bytes_per_second: 64.0 * 1048576.0,
            },
            limit: Some(ByteSize(48 << 20)),
            mode: Some(LeakMode::InProcess),
        }),
        &m,
        "leak",
    );
    let ev = f.confirm().expect("confirm");
    // Independent check: the target's own anonymous resident memory (not a helper's).
    let t = Instant::now();
    while anon_kib(target.pid) < before + 40 * 1024 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "target grew only to {} KiB ({})",
            anon_kib(target.pid),
            ev.0
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let grew_in = t.elapsed();
    let notes = f.observe().join("; ");
    assert!(notes.contains("achieved"), "{notes}");
    f.stop();
    fault::revert(&actions, &NoLab).expect("revert");
    fault::revert(&actions, &NoLab).expect("revert again");
    assert!(
        anon_kib(target.pid) < before + 4 * 1024,
        "target still holds {} KiB anon after revert (before {before}, grew in {grew_in:?})",
        anon_kib(target.pid)
    );
    assert!(
        target.alive(),
        "the target must survive the leak and revert"
    );
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", target.pid)).expect("maps");
    let in_leak_area = |l: &&str| {
        l.split('-')
            .next()
            .and_then(|a| u64::from_str_radix(a, 16).ok())
            .is_some_and(|a| (0x1000_0000_0000..0x2000_0000_0000).contains(&a))
    };
    assert!(
        !maps.lines().any(|l| in_leak_area(&l)),
        "leak mapping left: {maps}"
    );
    assert_untraced(target.pid);
    drop(f);
    fx.teardown_and_assert_clean();
}

#[test]
fn in_process_leak_until_the_oom_killer_ends_the_target() {
    let mut fx = Fixture::new("leakoom", WRITER);
    let m = member(&fx, "h1", "sleeper");
    let target = m.procs[0];
    // No limit: grow until the memory cgroup (96Mi) OOM-kills the target.
    let (mut f, actions) = inject(
        &fx,
        FaultAction::MemoryLeak(MemoryLeak {
            rate: ByteRate {
                bytes_per_second: 128.0 * 1048576.0,
            },
            limit: None,
            mode: Some(LeakMode::InProcess),
        }),
        &m,
        "leakoom",
    );
    let t = Instant::now();
    let mut notes = Vec::new();
    while target.alive() {
        assert!(t.elapsed() < Duration::from_secs(10), "target never died");
        notes.extend(f.observe());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    notes.extend(f.observe());
    let all = notes.join("; ");
    assert!(all.contains("OOM kill"), "{all}");
    assert!(all.contains("the target was killed"), "{all}");
    f.stop();
    let msgs = fault::revert(&actions, &NoLab).expect("revert");
    assert!(
        msgs.iter().any(|m| m.contains("nothing to unmap")),
        "{msgs:?}"
    );
    drop(f);
    fx.teardown_and_assert_clean();
}

/// A writer whose data directory is its own loop-backed ext4 volume: each round writes
/// `argv[2]` bytes and fsyncs, and prints how long it took.
const VOLUME: &str = "
subnet: 10.78.8.0/24
hosts:
  - name: h1
    volume: 64Mi
    processes:
      - name: writer
        argv:
          - python3
          - -c
          - |
            import os, sys, time
            f = open(sys.argv[1], 'wb', buffering=0)
            chunk = b'x' * int(sys.argv[2])
            n = 0
            while True:
                t = time.monotonic()
                f.write(chunk)
                os.fsync(f.fileno())
                n += 1
                if n % 64 == 0:
                    f.seek(0)
                print('ok %.3f' % ((time.monotonic() - t) * 1000), flush=True)
          - '{data}/blob'
          - '65536'
";

fn loop_devices_of(state: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("losetup")
        .args(["--noheadings", "-O", "NAME,BACK-FILE"])
        .output()
        .expect("losetup");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&*state.to_string_lossy()))
        .map(str::to_string)
        .collect()
}

fn io_throttle(fx: &Fixture, write_bps: &str) -> FaultAction {
    FaultAction::IoThrottle(IoThrottle {
        path: fx.lab().data_dir("h1").display().to_string(),
        write_bps: Some(write_bps.parse().expect("rate")),
        ..Default::default()
    })
}

#[test]
fn io_throttle_at_zero_stalls_fsync_and_revert_moves_the_target_back() {
    let mut fx = Fixture::new("thr0", VOLUME);
    wait_writing(&fx);
    let m = member(&fx, "h1", "writer");
    let pid = m.procs[0].pid;
    let mounts = murphy::cgroup::Mounts::read();
    let orig = mounts.proc_cgroup(pid, "blkio").expect("blkio cgroup");
    let (mut f, actions) = inject(&fx, io_throttle(&fx, "0/s"), &m, "thr0");
    let ev = f.confirm().expect("confirm");
    assert!(ev.0.contains("write_bps_device"), "{}", ev.0);
    std::thread::sleep(Duration::from_millis(300));
    // Independent check: the writer finishes no round (its fsync waits on the device).
    let during = lines_during(&fx, Duration::from_millis(1500));
    assert!(
        during.is_empty(),
        "writer made progress at a 1 B/s limit: {during:?}"
    );
    let dir = mounts.proc_cgroup(pid, "blkio").expect("cgroup");
    assert_ne!(dir, orig, "the writer should be in Murphy's blkio cgroup");
    f.stop();
    fault::revert(&actions, &NoLab).expect("revert");
    fault::revert(&actions, &NoLab).expect("revert again");
    assert_eq!(mounts.proc_cgroup(pid, "blkio"), Some(orig));
    assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    let t = Instant::now();
    while round_ms(&log_lines(&fx)).len() < 10 + round_ms(&during).len() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "writer did not resume after revert"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(f);
    let state = fx.state.clone();
    fx.teardown_and_assert_clean();
    assert!(
        loop_devices_of(&state).is_empty(),
        "loop devices left: {:?}",
        loop_devices_of(&state)
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        !mounts.contains(&*state.to_string_lossy()),
        "volume still mounted"
    );
}

#[test]
fn io_throttle_limits_the_write_rate_the_target_achieves() {
    let mut fx = Fixture::new("thr1", VOLUME);
    wait_writing(&fx);
    let m = member(&fx, "h1", "writer");
    let (mut f, actions) = inject(&fx, io_throttle(&fx, "1Mi/s"), &m, "thr1");
    f.confirm().expect("confirm");
    std::thread::sleep(Duration::from_millis(500));
    // Independent check: the writer's own throughput (64 KiB per fsynced round).
    let t = Instant::now();
    let rounds = round_ms(&lines_during(&fx, Duration::from_secs(3))).len();
    let mib_s = rounds as f64 * 65536.0 / t.elapsed().as_secs_f64() / 1048576.0;
    f.stop();
    fault::revert(&actions, &NoLab).expect("revert");
    let free =
        round_ms(&lines_during(&fx, Duration::from_secs(1))).len() as f64 * 65536.0 / 1048576.0;
    assert!(
        (0.5..1.5).contains(&mib_s),
        "achieved {mib_s:.2} MiB/s under a 1 MiB/s limit (unthrottled: {free:.1} MiB/s)"
    );
    assert!(
        free > 3.0 * mib_s,
        "unthrottled {free:.1} MiB/s vs {mib_s:.2}"
    );
    drop(f);
    fx.teardown_and_assert_clean();
}
