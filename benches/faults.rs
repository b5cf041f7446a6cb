//! Benchmark: inject→confirmed and revert latency for each fault class, against real
//! processes in a lab namespace. Run as root: `cargo bench --bench faults`. Prints a
//! Markdown table (median, p90, max over N iterations); BENCHMARKS.md records the method
//! and results. Not a test: nothing is asserted about speed.

use murphy::fault::{self, FaultEnv, Member, UndoLog};
use murphy::journal::{Journal, Netns};
use murphy::lab::Lab;
use murphy::model::spec::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LAB: &str = "
subnet: 10.78.200.0/24
hosts:
  - name: h1
    processes:
      - {name: busy, argv: [md5sum, /dev/zero]}
      - {name: idle, argv: [sleep, '600'], memoryLimit: 512Mi}
";

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (p(0.5), p(0.9), v[v.len() - 1])
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("faults benchmark: needs root (it injects real faults); skipped");
        return;
    }
    let n: usize = std::env::var("MURPHY_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let state = std::env::temp_dir().join(format!("murphy-bench-{}", std::process::id()));
    let run_id = format!("b{:07x}", std::process::id());
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
    let exe = if exe.exists() {
        exe
    } else {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/murphy")
    };
    let env = FaultEnv {
        exe,
        lease: Duration::from_secs(60),
        peer_addrs: vec![],
        seed: 1,
        max_data_bytes: 1 << 30,
        allow_paths: Vec::new(),
        from: None,
    };
    let member = |p: &str| {
        let (ns, addr) = lab.host("h1").expect("h1");
        let procs = lab
            .processes("h1", Some(p))
            .into_iter()
            .flat_map(|(_, x)| x)
            .collect();
        Member {
            label: p.into(),
            procs,
            netns: Netns::Named { name: ns },
            addrs: vec![addr],
            lab: Some(("h1".into(), Some(p.into()))),
        }
    };
    let cases: Vec<(&str, FaultAction, &str)> = vec![
        (
            "process-kill (SIGKILL, restart on revert)",
            FaultAction::ProcessKill(ProcessKill::default()),
            "idle",
        ),
        (
            "process-pause (freezer cgroup)",
            FaultAction::ProcessPause(ProcessPause {
                method: Some(PauseMethod::Freezer),
            }),
            "busy",
        ),
        (
            "process-pause (SIGSTOP)",
            FaultAction::ProcessPause(ProcessPause {
                method: Some(PauseMethod::Signal),
            }),
            "busy",
        ),
        (
            "network-partition (nftables over netlink)",
            FaultAction::NetworkPartition(NetworkPartition {
                direction: None,
                peers: vec![],
                cidrs: vec!["10.78.200.1/32".into()],
            }),
            "idle",
        ),
        (
            "memory-leak (64Mi/s hog in memcg)",
            FaultAction::MemoryLeak(MemoryLeak {
                rate: "64Mi/s".parse().expect("rate"),
                limit: Some("64Mi".parse().expect("size")),
                mode: None,
            }),
            "idle",
        ),
        (
            "cpu-burn (1 worker in cpu cgroup)",
            FaultAction::CpuBurn(CpuBurn { workers: Some(1) }),
            "idle",
        ),
        (
            "network-delay (engine start + NFQUEUE rule over netlink)",
            FaultAction::NetworkDelay(NetworkDelay {
                delay: "10ms".parse().expect("delay"),
                ..Default::default()
            }),
            "idle",
        ),
        (
            "network-loss (nftables numgen over netlink)",
            FaultAction::NetworkLoss(NetworkLoss {
                loss: "10%".parse().expect("loss"),
                filter: PacketFilter::default(),
            }),
            "idle",
        ),
        (
            "network-bandwidth (tbf over rtnetlink)",
            FaultAction::NetworkBandwidth(NetworkBandwidth {
                rate: "10mbit".parse().expect("rate"),
                interfaces: vec![],
                latency: None,
            }),
            "idle",
        ),
        (
            "link-down (eth0, routes journaled)",
            FaultAction::LinkDown(LinkDown::default()),
            "idle",
        ),
        (
            "route-blackhole (one prefix)",
            FaultAction::RouteBlackhole(RouteBlackhole {
                prefixes: vec!["10.99.0.0/24".into()],
                route: None,
            }),
            "idle",
        ),
    ];
    println!("| fault | n | inject→confirmed median | p90 | max | revert median | p90 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, action, target) in cases {
        let mut inj = Vec::new();
        let mut rev = Vec::new();
        for i in 0..n {
            let m = member(target);
            let group = format!("bench-{i}");
            let mut f = fault::build(&action, &env, &group);
            let t0 = Instant::now();
            let mut undo = UndoLog::new(&journal, &group, name).expect("undo");
            f.inject(std::slice::from_ref(&m), &mut undo)
                .expect("inject");
            let actions = undo.into_actions();
            f.confirm().expect("confirm");
            inj.push(t0.elapsed().as_secs_f64() * 1000.0);
            let t1 = Instant::now();
            f.stop();
            fault::revert(&actions, &lab).expect("revert");
            rev.push(t1.elapsed().as_secs_f64() * 1000.0);
            journal.done(&group).expect("done");
            drop(f);
            // let a restarted process settle before the next round
            if matches!(action, FaultAction::ProcessKill(_)) {
                let deadline = Instant::now() + Duration::from_secs(2);
                while lab.processes("h1", Some(target)).is_empty() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let (a, b, c) = stats(inj);
        let (d, e, f) = stats(rev);
        println!("| {name} | {n} | {a:.2} ms | {b:.2} ms | {c:.2} ms | {d:.2} ms | {e:.2} ms | {f:.2} ms |");
    }
    let (ns, _) = lab.host("h1").expect("h1");
    side_by_side(&journal, &env, &member("idle"), &ns, n);
    lab.teardown().expect("teardown");
    let _ = std::fs::remove_dir_all(&state);
}

/// A command inside the namespace `ns` (entered before exec; argv only), its output.
fn cli(ns: &str, argv: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let fd = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    murphy::sys::enter_before_exec(&mut cmd, Some(fd.into()), Vec::new(), None);
    let mut child = cmd.spawn().expect("spawn");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Murphy's fault (journal, inject, confirm; revert) against the bare kernel operation
/// over netlink (the floor: the same change and its read-back on an open socket, no
/// journal) and against the command-line tools (`nft`, `ip`) doing the same, interleaved
/// round by round.
fn side_by_side(journal: &Arc<Journal>, env: &FaultEnv, m: &Member, ns: &str, n: usize) {
    use murphy::netlink::nft::Nft;
    use murphy::netlink::route::{Route, RouteSpec};
    let netns = Netns::Named { name: ns.into() };
    let mut nft = Nft::open(&netns).expect("nft socket");
    let mut rt = Route::open(&netns).expect("route socket");
    let partition = FaultAction::NetworkPartition(NetworkPartition {
        direction: None,
        peers: vec![],
        cidrs: vec!["10.78.200.1/32".into()],
    });
    let blackhole = FaultAction::RouteBlackhole(RouteBlackhole {
        prefixes: vec!["10.99.0.0/24".into()],
        route: None,
    });
    let link = FaultAction::LinkDown(LinkDown::default());
    let spec = RouteSpec::parse(&["blackhole".into(), "10.99.0.0/24".into()]).expect("spec");
    // What durability costs: one group opened and one undo record made durable (the
    // write-ahead step of every injection), on the same journal.
    let mut wal = Vec::new();
    for i in 0..n {
        let group = format!("wal-{i}");
        let t0 = Instant::now();
        let mut undo = UndoLog::new(journal, &group, "wal").expect("undo");
        undo.record(murphy::journal::UndoAction::DeleteRoute {
            netns: netns.clone(),
            route: spec.tokens(),
        })
        .expect("record");
        wal.push(t0.elapsed().as_secs_f64() * 1000.0);
        journal.done(&group).expect("done");
    }
    let (a, b, c) = stats(wal);
    println!();
    println!("Journal, one injection's write-ahead (group + one undo record, fdatasync): median {a:.3} ms, p90 {b:.3} ms, max {c:.3} ms");
    // What a fault pays that the floor does not: a socket opened in the namespace (on a
    // thread that enters it) per fault, and closed after it.
    let mut open = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let s = Route::open(&netns).expect("route socket");
        open.push(t0.elapsed().as_secs_f64() * 1000.0);
        drop(s);
    }
    let (a, b, c) = stats(open);
    println!();
    println!("A netlink socket opened in the namespace (thread, setns, socket, bind): median {a:.3} ms, p90 {b:.3} ms, max {c:.3} ms");
    println!();
    println!("| operation | n | Murphy inject→confirmed | floor (netlink) | ratio | CLI | Murphy revert | floor | ratio | CLI |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, action) in [
        ("network-partition", &partition),
        ("route-blackhole", &blackhole),
        ("link-down", &link),
    ] {
        let mut t: [Vec<f64>; 6] = Default::default();
        for i in 0..n {
            // Let the kernel finish destroying what the last round removed (nf_tables frees
            // after an RCU grace period, holding the namespace's commit lock).
            std::thread::sleep(Duration::from_millis(50));
            let ms = |t0: Instant| t0.elapsed().as_secs_f64() * 1000.0;
            // The floor and the CLI, the same change.
            match name {
                "network-partition" => {
                    let doc = serde_json::json!({"nftables": [
                        {"add": {"table": {"family": "inet", "name": "floor"}}},
                        {"add": {"chain": {"family": "inet", "table": "floor", "name": "input", "type": "filter", "hook": "input", "prio": -200, "policy": "accept"}}},
                        {"add": {"rule": {"family": "inet", "table": "floor", "chain": "input", "expr": [
                            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.78.200.1"}},
                            {"counter": null}, {"drop": null}]}}},
                        {"add": {"chain": {"family": "inet", "table": "floor", "name": "output", "type": "filter", "hook": "output", "prio": -200, "policy": "accept"}}},
                        {"add": {"rule": {"family": "inet", "table": "floor", "chain": "output", "expr": [
                            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.78.200.1"}},
                            {"counter": null}, {"drop": null}]}}},
                    ]});
                    let t0 = Instant::now();
                    nft.apply(&doc).expect("apply");
                    assert_eq!(nft.rules("inet", "floor").expect("rules").len(), 2);
                    t[1].push(ms(t0));
                    let t0 = Instant::now();
                    assert!(nft.delete_table("inet", "floor").expect("delete"));
                    t[4].push(ms(t0));
                    let text = doc.to_string();
                    let t0 = Instant::now();
                    cli(ns, &["nft", "-j", "-f", "-"], Some(&text));
                    cli(ns, &["nft", "-j", "list", "table", "inet", "floor"], None);
                    t[2].push(ms(t0));
                    let t0 = Instant::now();
                    cli(ns, &["nft", "delete", "table", "inet", "floor"], None);
                    t[5].push(ms(t0));
                }
                "route-blackhole" => {
                    let t0 = Instant::now();
                    rt.add(&spec, false).expect("add");
                    assert_eq!(rt.routes_exact(spec.dst, spec.len).expect("list").len(), 1);
                    t[1].push(ms(t0));
                    let t0 = Instant::now();
                    assert!(rt.delete(&spec).expect("delete"));
                    t[4].push(ms(t0));
                    let t0 = Instant::now();
                    cli(
                        ns,
                        &["ip", "route", "add", "blackhole", "10.99.0.0/24"],
                        None,
                    );
                    cli(
                        ns,
                        &["ip", "-j", "route", "show", "exact", "10.99.0.0/24"],
                        None,
                    );
                    t[2].push(ms(t0));
                    let t0 = Instant::now();
                    cli(
                        ns,
                        &["ip", "route", "del", "blackhole", "10.99.0.0/24"],
                        None,
                    );
                    t[5].push(ms(t0));
                }
                _ => {
                    let t0 = Instant::now();
                    rt.set_up("eth0", false).expect("down");
                    assert!(!rt.link("eth0").expect("link").expect("eth0").up);
                    t[1].push(ms(t0));
                    let t0 = Instant::now();
                    rt.set_up("eth0", true).expect("up");
                    t[4].push(ms(t0));
                    let t0 = Instant::now();
                    cli(ns, &["ip", "link", "set", "dev", "eth0", "down"], None);
                    cli(ns, &["ip", "-j", "link", "show", "dev", "eth0"], None);
                    t[2].push(ms(t0));
                    let t0 = Instant::now();
                    cli(ns, &["ip", "link", "set", "dev", "eth0", "up"], None);
                    t[5].push(ms(t0));
                }
            }
            // Murphy.
            let group = format!("side-{name}-{i}");
            let mut f = fault::build(action, env, &group);
            let t0 = Instant::now();
            let mut undo = UndoLog::new(journal, &group, name).expect("undo");
            f.inject(std::slice::from_ref(m), &mut undo)
                .expect("inject");
            let actions = undo.into_actions();
            f.confirm().expect("confirm");
            t[0].push(ms(t0));
            let t0 = Instant::now();
            fault::revert(&actions, &murphy::journal::NoLabRun).expect("revert");
            t[3].push(ms(t0));
            journal.done(&group).expect("done");
            drop(f);
        }
        let med: Vec<f64> = t.into_iter().map(|v| stats(v).0).collect();
        println!(
            "| {name} | {n} | {:.3} ms | {:.3} ms | {:.1}× | {:.2} ms | {:.3} ms | {:.3} ms | {:.1}× | {:.2} ms |",
            med[0],
            med[1],
            med[0] / med[1],
            med[2],
            med[3],
            med[4],
            med[3] / med[4],
            med[5]
        );
    }
}
