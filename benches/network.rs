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
//!   delay, and with 1 ms of delay.

use murphy::fault::{self, FaultEnv, Member, UndoLog};
use murphy::journal::{Journal, Netns};
use murphy::lab::Lab;
use murphy::model::spec::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

    println!("\n| TCP stream into the host | throughput |");
    println!("|---|---|");
    let bulk = || {
        let mut s = TcpStream::connect("10.78.201.11:9100").expect("connect");
        let buf = vec![7u8; 1 << 16];
        let t = Instant::now();
        let mut sent = 0usize;
        while t.elapsed() < Duration::from_secs(3) {
            sent += s.write(&buf).expect("write");
        }
        sent as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9
    };
    println!("| no fault | {:.2} Gbit/s |", bulk());
    for (label, ms) in [("engine, no delay", 0u64), ("engine, 1 ms delay", 1)] {
        let mut gbit = 0.0;
        let action = FaultAction::NetworkDelay(NetworkDelay {
            delay: murphy::model::Duration(Duration::from_micros(ms * 1000 + 1)),
            filter: PacketFilter {
                protocol: Some(Protocol::Tcp),
                port: Some(9100),
                ..Default::default()
            },
            ..Default::default()
        });
        let stats = with_fault(action, &mut || gbit = bulk());
        println!("| {label} | {gbit:.2} Gbit/s ({}) |", stats.join("; "));
    }
    lab.teardown().expect("teardown");
    let _ = std::fs::remove_dir_all(&state);
}
