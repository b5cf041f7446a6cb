//! Benchmark: fidelity and cost of the network faults, against real namespaces. Run as
//! root: `cargo build --release && cargo bench --bench network`. Prints Markdown tables;
//! BENCHMARKS.md records the method and results. Not a test: nothing is asserted.
//!
//! - delay: requested vs measured added round-trip time of TCP handshakes into a lab host
//!   whose input is delayed by the NFQUEUE engine (baseline subtracted), median and p99
//!   error;
//! - loss: requested vs measured share of UDP datagrams that never arrive (nftables
//!   `numgen`);
//! - throughput: one TCP stream into the host with no fault, through the engine with no
//!   delay, and with 1 ms of delay; the engine's CPU time over the stream, and over a
//!   stream paced at 1 Gbit/s;
//! - side by side with noxious (the Rust port of Toxiproxy, built from its crate by
//!   `benches/noxious-proxy`; skipped with a note when not built): the delay error of a
//!   1-byte echo round trip through each, and the throughput and CPU of one stream.

use murphy::fault::{self, FaultEnv, Member, UndoLog};
use murphy::journal::{Journal, Netns};
use murphy::lab::Lab;
use murphy::model::spec::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SINK: &str = "10.78.201.11:9100";
const ECHO: &str = "10.78.201.11:9102";

const LAB: &str = "
subnet: 10.78.201.0/24
hosts:
  - name: h1
    address: 10.78.201.11
";

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Run `f` on a thread that has entered the lab host's network namespace.
fn in_host<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread")
}

fn connect_rtts(n: usize) -> Vec<f64> {
    let a: SocketAddr = "10.78.201.11:9100".parse().expect("addr");
    (0..n)
        .filter_map(|_| {
            let t = Instant::now();
            let ok = TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok();
            std::thread::sleep(Duration::from_millis(2));
            ok.then(|| t.elapsed().as_secs_f64() * 1000.0 - 2.0)
        })
        .collect()
}

/// Round trips of one byte to the echo server at `addr`, in ms (one connection, 2 ms apart).
fn echo_rtts(addr: &str, n: usize) -> Vec<f64> {
    let mut s = TcpStream::connect(addr).expect("echo connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut b = [0u8; 1];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&[1]).expect("echo write");
        s.read_exact(&mut b).expect("echo read");
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

/// One TCP stream to `addr` for 3 s, as fast as it goes or paced to `gbit`; Gbit/s achieved.
fn stream(addr: &str, gbit: Option<f64>) -> f64 {
    let mut s = TcpStream::connect(addr).expect("connect");
    let buf = vec![7u8; 1 << 16];
    let t = Instant::now();
    let mut sent = 0usize;
    while t.elapsed() < Duration::from_secs(3) {
        if let Some(g) = gbit {
            let due = Duration::from_secs_f64(sent as f64 * 8.0 / (g * 1e9));
            if let Some(wait) = due.checked_sub(t.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        sent += s.write(&buf).expect("write");
    }
    sent as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9
}

/// CPU time (user + system, clock ticks of 10 ms) of a process, from /proc.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// The packet engine's process, found in /proc.
fn engine_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // `murphy __hog netq <json>`
        let mut args = cmd.split(|b| *b == 0).skip(1).take(2);
        args.any(|a| a == b"netq").then_some(pid)
    })
}

/// Share of one core a process used while `f` ran, with `f`'s result.
fn with_cpu<T>(pid: Option<u32>, f: impl FnOnce() -> T) -> (T, Option<f64>) {
    let before = pid.map(cpu_ticks);
    let t = Instant::now();
    let out = f();
    let secs = t.elapsed().as_secs_f64();
    let share = pid
        .zip(before)
        .map(|(p, b)| (cpu_ticks(p).saturating_sub(b)) as f64 / 100.0 / secs * 100.0);
    (out, share)
}

fn cpu_text(share: Option<f64>) -> String {
    share.map_or("-".into(), |c| format!("{c:.0}% of a core"))
}

/// A noxious proxy from `benches/noxious-proxy`, listening on `listen`, until dropped.
struct Noxious(std::process::Child);

impl Noxious {
    fn binary() -> Option<std::path::PathBuf> {
        let p = std::env::var_os("MURPHY_BENCH_NOXIOUS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("benches/noxious-proxy/target/release/noxious-proxy")
            });
        p.exists().then_some(p)
    }

    fn start(bin: &std::path::Path, listen: &str, upstream: &str, latency_ms: u64) -> Self {
        let mut child = std::process::Command::new(bin)
            .args([listen, upstream, &latency_ms.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("noxious-proxy");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("noxious line");
        assert_eq!(line.trim(), "listening", "noxious-proxy said {line:?}");
        Noxious(child)
    }

    fn pid(&self) -> Option<u32> {
        Some(self.0.id())
    }
}

impl Drop for Noxious {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("network benchmark: needs root; skipped");
        return;
    }
    let n: usize = std::env::var("MURPHY_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let state = std::env::temp_dir().join(format!("murphy-netbench-{}", std::process::id()));
    let run_id = format!("n{:07x}", std::process::id());
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
    let exe = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/murphy");
    let env = FaultEnv {
        exe,
        lease: Duration::from_secs(120),
        peer_addrs: vec![],
        seed: 1,
        max_data_bytes: 0,
        allow_paths: Vec::new(),
        from: None,
    };
    let (ns, addr) = lab.host("h1").expect("h1");
    let member = Member {
        label: "h1".into(),
        procs: vec![],
        netns: Netns::Named { name: ns.clone() },
        addrs: vec![addr],
        lab: Some(("h1".into(), None)),
    };
    // Servers inside the host: a TCP acceptor (handshakes, bulk sink) and a UDP counter.
    let listener = in_host(&ns, || {
        TcpListener::bind("10.78.201.11:9100").expect("bind")
    });
    std::thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 1 << 16];
                while matches!(s.read(&mut buf), Ok(k) if k > 0) {}
            });
        }
    });
    let echo = in_host(&ns, || {
        TcpListener::bind("10.78.201.11:9102").expect("bind echo")
    });
    std::thread::spawn(move || {
        for s in echo.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut s = s;
                let _ = s.set_nodelay(true);
                let mut b = [0u8; 64];
                while let Ok(k) = s.read(&mut b) {
                    if k == 0 || s.write_all(&b[..k]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let udp = in_host(&ns, || UdpSocket::bind("10.78.201.11:9101").expect("udp"));
    udp.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");

    let mut group_n = 0;
    let mut with_fault = |action: FaultAction, body: &mut dyn FnMut()| {
        group_n += 1;
        let group = format!("nb{group_n}");
        let mut f = fault::build(&action, &env, &group);
        let mut undo = UndoLog::new(&journal, &group, &group).expect("undo");
        f.inject(std::slice::from_ref(&member), &mut undo)
            .expect("inject");
        let actions = undo.into_actions();
        f.confirm().expect("confirm");
        body();
        let stats = f.observe();
        f.stop();
        fault::revert(&actions, &lab).expect("revert");
        journal.done(&group).expect("done");
        stats
    };

    let mut base = connect_rtts(n);
    let base_med = pct(&mut base, 0.5);
    println!("Baseline TCP handshake: median {base_med:.3} ms over {n}\n");
    println!("| requested delay | n | measured added median | error median | error p99 |");
    println!("|---|---|---|---|---|");
    for ms in [1u64, 5, 20, 50] {
        let mut rtts = Vec::new();
        let action = FaultAction::NetworkDelay(NetworkDelay {
            delay: murphy::model::Duration::from_millis(ms),
            filter: PacketFilter {
                protocol: Some(Protocol::Tcp),
                port: Some(9100),
                ..Default::default()
            },
            ..Default::default()
        });
        with_fault(action, &mut || rtts = connect_rtts(n));
        let mut err: Vec<f64> = rtts.iter().map(|r| r - base_med - ms as f64).collect();
        let added = pct(&mut rtts.clone(), 0.5) - base_med;
        println!(
            "| {ms} ms | {} | {added:.3} ms | {:+.3} ms | {:+.3} ms |",
            rtts.len(),
            pct(&mut err, 0.5),
            pct(&mut err, 0.99)
        );
    }

    println!("\n| requested loss | datagrams | measured loss |");
    println!("|---|---|---|");
    let sender = UdpSocket::bind("0.0.0.0:0").expect("udp");
    let count = 5000;
    for p in ["1%", "10%", "50%"] {
        let action = FaultAction::NetworkLoss(NetworkLoss {
            loss: p.parse().expect("p"),
            filter: PacketFilter {
                protocol: Some(Protocol::Udp),
                port: Some(9101),
                ..Default::default()
            },
        });
        let mut got = 0usize;
        with_fault(action, &mut || {
            // Count on a thread while sending, so the socket buffer never overflows.
            let rx = udp.try_clone().expect("clone");
            let reader = std::thread::spawn(move || {
                let mut n = 0usize;
                let mut b = [0u8; 16];
                while rx.recv(&mut b).is_ok() {
                    n += 1;
                }
                n
            });
            for i in 0..count {
                let _ = sender.send_to(&(i as u32).to_le_bytes(), "10.78.201.11:9101");
                if i % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            got = reader.join().expect("reader");
        });
        println!(
            "| {p} | {count} | {:.2}% |",
            (1.0 - got as f64 / count as f64) * 100.0
        );
    }

    let delay_on = |port: u16, d: Duration| {
        FaultAction::NetworkDelay(NetworkDelay {
            delay: murphy::model::Duration(d),
            filter: PacketFilter {
                protocol: Some(Protocol::Tcp),
                port: Some(port),
                ..Default::default()
            },
            ..Default::default()
        })
    };
    println!("\n| TCP stream into the host | throughput | engine CPU |");
    println!("|---|---|---|");
    println!("| no fault | {:.2} Gbit/s | - |", stream(SINK, None));
    for (label, ms) in [("engine, no delay", 0u64), ("engine, 1 ms delay", 1)] {
        let mut row = String::new();
        let d = Duration::from_micros(ms * 1000 + 1);
        let stats = with_fault(delay_on(9100, d), &mut || {
            let (gbit, cpu) = with_cpu(engine_pid(), || stream(SINK, None));
            let (paced, paced_cpu) = with_cpu(engine_pid(), || stream(SINK, Some(1.0)));
            row = format!(
                "| {label} | {gbit:.2} Gbit/s | {} (paced to 1 Gbit/s: {paced:.2} Gbit/s, {})",
                cpu_text(cpu),
                cpu_text(paced_cpu)
            );
        });
        println!("{row}; {} |", stats.join("; "));
    }

    // Side by side with noxious: the same echo round trip and the same stream.
    let Some(nox) = Noxious::binary() else {
        println!(
            "\nnoxious: not built, side-by-side rows skipped (build it with \
             `cargo build --release --manifest-path benches/noxious-proxy/Cargo.toml`)"
        );
        lab.teardown().expect("teardown");
        let _ = std::fs::remove_dir_all(&state);
        return;
    };
    let direct = pct(&mut echo_rtts(ECHO, n), 0.5);
    let nox_base = {
        let _p = Noxious::start(&nox, "127.0.0.1:19102", ECHO, 0);
        pct(&mut echo_rtts("127.0.0.1:19102", n), 0.5)
    };
    println!(
        "\n1-byte echo round trip, median over {n}: direct {direct:.3} ms, through noxious \
         (no toxic) {nox_base:.3} ms\n"
    );
    println!("| requested delay | Murphy engine: error median | p99 | noxious latency toxic: error median | p99 |");
    println!("|---|---|---|---|---|");
    for ms in [1u64, 5, 20] {
        let mut m = Vec::new();
        with_fault(delay_on(9102, Duration::from_millis(ms)), &mut || {
            m = echo_rtts(ECHO, n)
        });
        let mut m: Vec<f64> = m.iter().map(|r| r - direct - ms as f64).collect();
        let mut x: Vec<f64> = {
            let _p = Noxious::start(&nox, "127.0.0.1:19102", ECHO, ms);
            echo_rtts("127.0.0.1:19102", n)
        }
        .iter()
        .map(|r| r - nox_base - ms as f64)
        .collect();
        println!(
            "| {ms} ms | {:+.3} ms | {:+.3} ms | {:+.3} ms | {:+.3} ms |",
            pct(&mut m, 0.5),
            pct(&mut m, 0.99),
            pct(&mut x, 0.5),
            pct(&mut x, 0.99)
        );
    }
    println!("\n| one TCP stream into the host through noxious | throughput | noxious CPU |");
    println!("|---|---|---|");
    for (label, ms) in [("no toxic", 0u64), ("latency toxic 1 ms", 1)] {
        let p = Noxious::start(&nox, "127.0.0.1:19100", SINK, ms);
        let (gbit, cpu) = with_cpu(p.pid(), || stream("127.0.0.1:19100", None));
        let (paced, paced_cpu) = with_cpu(p.pid(), || stream("127.0.0.1:19100", Some(1.0)));
        println!(
            "| {label} | {gbit:.2} Gbit/s | {} (paced to 1 Gbit/s: {paced:.2} Gbit/s, {}) |",
            cpu_text(cpu),
            cpu_text(paced_cpu)
        );
    }
    lab.teardown().expect("teardown");
    let _ = std::fs::remove_dir_all(&state);
}
