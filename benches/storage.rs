//! Benchmark: fidelity and overhead of the storage faults and the in-process memory leak,
//! measured from the target's side. Run as root: `cargo bench --bench storage`. Prints
//! Markdown tables; BENCHMARKS.md records the method and results. Nothing is asserted.
//!
//! 1. Tracer overhead with no fault active: a target doing 4 KiB pwrite+fdatasync rounds
//!    (and bare 4 KiB pwrites), untraced versus traced by an `io-latency` fault whose
//!    filter matches nothing it does (every syscall still stops in the tracer).
//! 2. Requested versus achieved IO latency: `io-latency` on fdatasync, the target timing
//!    each round itself; the added latency is its median minus the untraced median.
//! 3. Leak rate accuracy: the in-process leak at several rates, the target's RssAnon
//!    sampled every 50ms, the achieved rate a least-squares slope.
//! 4. io-throttle accuracy: write rate achieved under `writeBps` on a lab volume.

use murphy::fault::{self, FaultEnv, Member, UndoLog};
use murphy::journal::{Journal, Netns, NoLab};
use murphy::lab::Lab;
use murphy::model::spec::*;
use murphy::ptrace::IoOp;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LAB: &str = "
subnet: 10.78.201.0/24
hosts:
  - name: h1
    volume: 256Mi
    processes:
      - name: io
        argv:
          - python3
          - -c
          - |
            import os, sys, time
            fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
            buf = b'x' * 4096
            sync = sys.argv[2] == 'sync'
            while True:
                t = time.monotonic()
                os.pwrite(fd, buf, 0)
                if sync:
                    os.fdatasync(fd)
                print('%.1f' % ((time.monotonic() - t) * 1e6), flush=True)
          - '{data}/f'
          - sync
      - name: bare
        argv:
          - python3
          - -c
          - |
            import os, sys, time
            fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
            buf = b'x' * 4096
            n = 0
            t = time.monotonic()
            while True:
                os.pwrite(fd, buf, 0)
                n += 1
                if n % 20000 == 0:
                    now = time.monotonic()
                    print('%.3f' % ((now - t) / 20000 * 1e6), flush=True)
                    t = now
          - '{data}/g'
      - name: writer
        argv:
          - python3
          - -c
          - |
            import os, sys, time
            f = open(sys.argv[1], 'wb', buffering=0)
            chunk = b'x' * 65536
            n = 0
            while True:
                f.write(chunk)
                os.fsync(f.fileno())
                n += 1
                if n % 64 == 0:
                    f.seek(0)
                print('1', flush=True)
          - '{data}/blob'
      - {name: sleeper, argv: [sleep, '600'], memoryLimit: 1Gi}
";

fn pct(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

struct Bench {
    lab: Lab,
    journal: Arc<Journal>,
    env: FaultEnv,
    n: u32,
}

impl Bench {
    /// Run `f` with `strace` attached to `target` (every thread), then detach it.
    fn with_strace<T>(&self, target: &str, args: &[&str], f: impl FnOnce(&Self) -> T) -> T {
        let pid = self.member(target).procs[0].pid.to_string();
        let mut child = std::process::Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null"])
            .args(args)
            .args(["-p", &pid])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("strace");
        // Attached once the target's first traced stop went by.
        std::thread::sleep(Duration::from_millis(300));
        let out = f(self);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(200));
        out
    }

    fn member(&self, p: &str) -> Member {
        let (ns, addr) = self.lab.host("h1").expect("h1");
        Member {
            label: p.into(),
            procs: self
                .lab
                .processes("h1", Some(p))
                .into_iter()
                .flat_map(|(_, x)| x)
                .collect(),
            netns: Netns::Named { name: ns },
            addrs: vec![addr],
            lab: Some(("h1".into(), Some(p.into()))),
        }
    }

    fn lines(&self, p: &str) -> Vec<String> {
        std::fs::read_to_string(self.lab.log_path("h1", p))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Numbers the process prints during `d`.
    fn during(&self, p: &str, d: Duration) -> Vec<f64> {
        let before = self.lines(p).len();
        std::thread::sleep(d);
        self.lines(p)
            .into_iter()
            .skip(before)
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Run `f` with `action` injected on `target`, then revert.
    fn with<T>(&mut self, action: FaultAction, target: &str, f: impl FnOnce(&Self) -> T) -> T {
        self.n += 1;
        let group = format!("bench-{}", self.n);
        let m = self.member(target);
        let mut fl = fault::build(&action, &self.env, &group);
        let mut undo = UndoLog::new(&self.journal, &group, &group).expect("undo");
        fl.inject(std::slice::from_ref(&m), &mut undo)
            .expect("inject");
        let actions = undo.into_actions();
        fl.confirm().expect("confirm");
        let out = f(self);
        fl.stop();
        fault::revert(&actions, &NoLab).expect("revert");
        self.journal.done(&group).expect("done");
        out
    }
}

fn latency(paths: Vec<String>, ops: Vec<IoOp>, ms: f64) -> FaultAction {
    FaultAction::IoLatency(IoLatency {
        paths,
        ops,
        delay: murphy::model::Duration(Duration::from_secs_f64(ms / 1000.0)),
        jitter: None,
    })
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("storage benchmark: needs root (it injects real faults); skipped");
        return;
    }
    let secs: f64 = std::env::var("MURPHY_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let window = Duration::from_secs_f64(secs);
    let state = std::env::temp_dir().join(format!("murphy-bench-st-{}", std::process::id()));
    let run_id = format!("s{:07x}", std::process::id());
    let journal = Arc::new(Journal::create(&state, &run_id).expect("journal"));
    let v: serde_json::Value = serde_saphyr::from_str(LAB).expect("yaml");
    let spec = serde_json::from_value(v).expect("lab");
    let lab = Lab::up(
        &spec,
        &run_id,
        journal.clone(),
        std::path::Path::new("."),
        &state.join("logs"),
    )
    .expect("lab");
    let env = FaultEnv {
        exe: env!("CARGO_BIN_EXE_murphy").into(),
        lease: Duration::from_secs(600),
        peer_addrs: vec![],
        seed: 1,
        max_data_bytes: 1 << 30,
        allow_paths: Vec::new(),
        from: None,
    };
    let data = lab.data_dir("h1").display().to_string();
    let mut b = Bench {
        lab,
        journal,
        env,
        n: 0,
    };
    std::thread::sleep(Duration::from_secs(1));

    // 1. Overhead with no fault active on the target's operations.
    let nothing = vec!["/nonexistent-murphy-bench".to_string()];
    let base_sync = b.during("io", window);
    let traced_sync = b.with(latency(nothing.clone(), vec![], 1.0), "io", |b| {
        b.during("io", window)
    });
    // Interleaved: untraced, Murphy's tracer, strace the same way (every syscall stops, as
    // strace attached with -p cannot use seccomp-bpf), and strace with an injection armed
    // behind a path filter that matches nothing (what Murphy's row does).
    let base_bare = b.during("bare", window);
    let traced_bare = b.with(latency(nothing, vec![], 1.0), "bare", |b| {
        b.during("bare", window)
    });
    let strace_bare = b.with_strace("bare", &["-e", "trace=pwrite64"], |b| {
        b.during("bare", window)
    });
    let strace_inject = b.with_strace(
        "bare",
        &[
            "-P",
            "/nonexistent-murphy-bench",
            "-e",
            "trace=pwrite64",
            "-e",
            "inject=pwrite64:error=EIO",
        ],
        |b| b.during("bare", window),
    );
    println!("### Tracer overhead, no fault active on the target's operations\n");
    println!("| target loop | untraced median | traced median | untraced p99 | traced p99 | rounds (untraced / traced) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| 4 KiB pwrite + fdatasync (volume) | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {} / {} |",
        pct(base_sync.clone(), 0.5),
        pct(traced_sync.clone(), 0.5),
        pct(base_sync.clone(), 0.99),
        pct(traced_sync.clone(), 0.99),
        base_sync.len(),
        traced_sync.len()
    );
    println!(
        "| 4 KiB pwrite (page cache), per call | {:.2} µs | {:.2} µs | - | - | averaged over 20000 calls |",
        pct(base_bare.clone(), 0.5),
        pct(traced_bare.clone(), 0.5),
    );
    println!("\n### Tracer cost per syscall beside strace (4 KiB pwrite to the page cache, per call, medians of 20000-call averages)\n");
    println!("| tracer | per call | added per call | ratio to Murphy's added cost |");
    println!("|---|---|---|---|");
    let untraced = pct(base_bare.clone(), 0.5);
    let added = |v: &[f64]| pct(v.to_vec(), 0.5) - untraced;
    let ours = added(&traced_bare);
    for (name, v) in [
        ("none", &base_bare),
        ("Murphy io-latency, filter matching nothing", &traced_bare),
        ("strace -e trace=pwrite64", &strace_bare),
        (
            "strace -P /nonexistent… -e inject=pwrite64:error=EIO (armed, path matches nothing)",
            &strace_inject,
        ),
    ] {
        println!(
            "| {name} | {:.2} µs | {:.2} µs | {:.2}× |",
            pct(v.to_vec(), 0.5),
            added(v),
            added(v) / ours
        );
    }

    // 2. Requested versus achieved IO latency on fdatasync.
    let base = pct(base_sync, 0.5) / 1000.0;
    println!("\n### io-latency: requested versus achieved (fdatasync, target's own timing)\n");
    println!(
        "| tracer | requested | rounds | added median | error median | added p99 | error p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    let row = |who: &str, ms: f64, got: Vec<f64>| {
        let added: Vec<f64> = got.iter().map(|us| us / 1000.0 - base).collect();
        let (m, p) = (pct(added.clone(), 0.5), pct(added.clone(), 0.99));
        println!(
            "| {who} | {ms:.1} ms | {} | {m:.3} ms | {:+.3} ms | {p:.3} ms | {:+.3} ms |",
            added.len(),
            m - ms,
            p - ms
        );
    };
    for ms in [1.0, 5.0, 20.0] {
        // Interleaved per requested value: Murphy's io-latency, then strace's delay
        // injection on the same syscall (`delay_exit`, in µs).
        let got = b.with(
            latency(vec![data.clone()], vec![IoOp::Fsync], ms),
            "io",
            |b| b.during("io", window),
        );
        row("Murphy io-latency (fsync)", ms, got);
        let inject = format!("inject=fdatasync:delay_exit={}", (ms * 1000.0) as u64);
        let got = b.with_strace("io", &["-e", "trace=fdatasync", "-e", &inject], |b| {
            b.during("io", window)
        });
        row("strace -e inject=fdatasync:delay_exit", ms, got);
    }

    // 3. Leak rate accuracy.
    println!("\n### In-process memory leak: requested versus achieved rate (RssAnon slope)\n");
    println!("| requested | achieved | error | samples |");
    println!("|---|---|---|---|");
    for mib in [16.0, 64.0, 128.0] {
        let target = b.member("sleeper").procs[0].pid;
        let samples = b.with(
            FaultAction::MemoryLeak(MemoryLeak {
                rate: murphy::model::ByteRate {
                    bytes_per_second: mib * 1048576.0,
                },
                limit: Some(murphy::model::ByteSize(900 << 20)),
                mode: Some(LeakMode::InProcess),
            }),
            "sleeper",
            |_| {
                let t0 = Instant::now();
                let mut s = Vec::new();
                while t0.elapsed() < Duration::from_secs_f64(secs.min(5.0)) {
                    let kib: f64 = std::fs::read_to_string(format!("/proc/{target}/status"))
                        .unwrap_or_default()
                        .lines()
                        .find_map(|l| l.strip_prefix("RssAnon:"))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                        .unwrap_or(0.0);
                    s.push((t0.elapsed().as_secs_f64(), kib / 1024.0));
                    std::thread::sleep(Duration::from_millis(50));
                }
                s
            },
        );
        let n = samples.len() as f64;
        let (sx, sy) = samples
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let (mx, my) = (sx / n, sy / n);
        let (num, den) = samples.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
            (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
        });
        let slope = num / den;
        println!(
            "| {mib:.0} MiB/s | {slope:.1} MiB/s | {:+.1}% | {} |",
            (slope / mib - 1.0) * 100.0,
            samples.len()
        );
    }

    // 4. io-throttle accuracy.
    println!("\n### io-throttle: requested versus achieved write rate (64 KiB + fsync rounds)\n");
    println!("| requested | achieved | error |");
    println!("|---|---|---|");
    let free = b.during("writer", window).len() as f64 * 64.0 / 1024.0 / secs;
    println!("| none | {free:.1} MiB/s | - |");
    for mib in [1.0, 4.0] {
        let rounds = b.with(
            FaultAction::IoThrottle(IoThrottle {
                path: data.clone(),
                write_bps: Some(murphy::model::ByteRate {
                    bytes_per_second: mib * 1048576.0,
                }),
                ..Default::default()
            }),
            "writer",
            |b| {
                std::thread::sleep(Duration::from_millis(500));
                b.during("writer", window).len()
            },
        );
        let got = rounds as f64 * 64.0 / 1024.0 / secs;
        println!(
            "| {mib:.0} MiB/s | {got:.2} MiB/s | {:+.1}% |",
            (got / mib - 1.0) * 100.0
        );
    }
    b.lab.teardown().expect("teardown");
    let _ = std::fs::remove_dir_all(&state);
}
