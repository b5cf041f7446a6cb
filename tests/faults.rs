//! Privileged tests: every fault class against real processes in real namespaces. Each
//! injects, observes the effect with a check independent of the fault's own confirm,
//! reverts (twice: revert is idempotent), and asserts nothing was left behind.

mod common;
use common::*;
use murphy::fault::{self, FaultEnv, Member, UndoLog};
use murphy::journal::{Netns, NoLab};
use murphy::model::spec::*;
use murphy::model::{ByteRate, ByteSize};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn env() -> FaultEnv {
    FaultEnv {
        exe: env!("CARGO_BIN_EXE_murphy").into(),
        lease: Duration::from_secs(60),
        peer_addrs: vec![],
        seed: 1,
        max_data_bytes: 1 << 30,
        allow_paths: Vec::new(),
        from: None,
    }
}

fn member(fx: &Fixture, host: &str, process: Option<&str>) -> Member {
    let (netns, addr) = fx.lab().host(host).expect("host");
    let procs = fx
        .lab()
        .processes(host, process)
        .into_iter()
        .flat_map(|(_, p)| p)
        .collect();
    Member {
        label: host.into(),
        procs,
        netns: Netns::Named { name: netns },
        addrs: vec![addr],
        lab: process.map(|p| (host.to_string(), Some(p.to_string()))),
    }
}

const BUSY: &str = "
subnet: 10.78.1.0/24
hosts:
  - name: h1
    processes:
      - {name: busy, argv: [md5sum, /dev/zero]}
      - {name: idle, argv: [sleep, '600'], memoryLimit: 256Mi}
";

#[test]
fn process_kill_kills_and_revert_restarts_lab_process() {
    let mut fx = Fixture::new("kill", BUSY);
    let m = member(&fx, "h1", Some("idle"));
    let old = m.procs[0];
    let mut f = fault::build(
        &FaultAction::ProcessKill(ProcessKill::default()),
        &env(),
        "k1",
    );
    let mut undo = UndoLog::new(&fx.journal, "k1", "kill").expect("undo");
    f.inject(std::slice::from_ref(&m), &mut undo)
        .expect("inject");
    let actions = undo.into_actions();
    f.confirm().expect("confirm");
    // Independent check: /proc says the process is gone (or a zombie).
    assert!(!old.alive(), "pid {} should be dead", old.pid);
    fx.lab().poll();
    let lab = fx.lab.take().expect("lab");
    fault::revert(&actions, &lab).expect("revert restarts");
    let now = lab.processes("h1", Some("idle"));
    assert_eq!(now.len(), 1, "the lab process runs again");
    assert_ne!(now[0].1[0], old, "a new process");
    fault::revert(&actions, &lab).expect("revert is idempotent");
    assert_eq!(
        lab.processes("h1", Some("idle")).len(),
        1,
        "second revert did not start another"
    );
    fx.lab = Some(lab);
    fx.teardown_and_assert_clean();
}

fn pause_test(method: PauseMethod) {
    let mut fx = Fixture::new("pause", BUSY);
    let m = member(&fx, "h1", Some("busy"));
    let pid = m.procs[0].pid;
    let mut f = fault::build(
        &FaultAction::ProcessPause(ProcessPause {
            method: Some(method),
        }),
        &env(),
        "p1",
    );
    let mut undo = UndoLog::new(&fx.journal, "p1", "pause").expect("undo");
    f.inject(std::slice::from_ref(&m), &mut undo)
        .expect("inject");
    let actions = undo.into_actions();
    let ev = f.confirm().expect("confirm");
    // Independent check: a busy process accumulates no CPU time while paused.
    std::thread::sleep(Duration::from_millis(100));
    let a = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(500));
    let b = cpu_ticks(pid);
    assert!(
        b - a <= 1,
        "paused process still ran: {a} -> {b} ticks ({})",
        ev.0
    );
    fault::revert(&actions, &NoLab).expect("revert");
    fault::revert(&actions, &NoLab).expect("revert again");
    let a = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(500));
    let b = cpu_ticks(pid);
    assert!(
        b - a >= 10,
        "resumed process does not run: {a} -> {b} ticks"
    );
    if method != PauseMethod::Signal {
        let m = murphy::cgroup::Mounts::read();
        if let Some(base) = m.v1_mount("freezer") {
            assert!(
                !base.join("murphy-p1").exists(),
                "freezer cgroup left behind"
            );
        }
    }
    fx.teardown_and_assert_clean();
}

#[test]
fn process_pause_with_freezer_stops_cpu_and_resumes() {
    pause_test(PauseMethod::Auto);
}

#[test]
fn process_pause_with_signals_stops_cpu_and_resumes() {
    pause_test(PauseMethod::Signal);
}

fn serve_in(netns: &str, port: u16) {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).expect("netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let l = TcpListener::bind(("0.0.0.0", port)).expect("bind");
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"pong");
        }
    });
}

fn reachable(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        Ok(mut s) => {
            let mut b = [0u8; 4];
            s.set_read_timeout(Some(Duration::from_millis(300))).ok();
            s.read_exact(&mut b).is_ok()
        }
        Err(_) => false,
    }
}

#[test]
fn network_partition_drops_traffic_and_revert_deletes_the_table() {
    let mut fx = Fixture::new(
        "part",
        "
subnet: 10.78.2.0/24
hosts:
  - name: a
  - name: b
",
    );
    let (ns_a, addr_a) = fx.lab().host("a").expect("a");
    serve_in(&ns_a, 7000);
    let target: SocketAddr = (addr_a, 7000).into();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !reachable(target) && Instant::now() < deadline {}
    assert!(reachable(target), "reachable before the fault");
    let m = member(&fx, "a", None);
    let spec = NetworkPartition {
        direction: Some(Direction::Both),
        peers: vec![],
        cidrs: vec!["10.78.2.1/32".into()],
    };
    let mut f = fault::build(&FaultAction::NetworkPartition(spec), &env(), "n1");
    let mut undo = UndoLog::new(&fx.journal, "n1", "partition").expect("undo");
    f.inject(std::slice::from_ref(&m), &mut undo)
        .expect("inject");
    let actions = undo.into_actions();
    f.confirm().expect("confirm");
    // Independent checks: the table is there, and a connection from the host side fails.
    assert_eq!(murphy_tables(&ns_a).len(), 1, "one murphy table");
    assert!(!reachable(target), "partitioned host still reachable");
    let seen = f.observe().join(" ");
    assert!(
        !seen.contains("dropped 0 "),
        "the drop counter saw the packets: {seen}"
    );
    fault::revert(&actions, &NoLab).expect("revert");
    fault::revert(&actions, &NoLab).expect("revert again");
    assert!(murphy_tables(&ns_a).is_empty(), "table left behind");
    assert!(reachable(target), "reachable after revert");
    fx.teardown_and_assert_clean();
}

#[test]
fn memory_leak_grows_the_cgroup_and_revert_frees_it() {
    let mut fx = Fixture::new("leak", BUSY);
    let m = member(&fx, "h1", Some("idle"));
    let dir = murphy::cgroup::Mounts::read()
        .proc_cgroup(m.procs[0].pid, "memory")
        .expect("memory cgroup");
    let before = murphy::cgroup::memory_usage(&dir).expect("usage");
    let spec = MemoryLeak {
        rate: "64Mi/s".parse::<ByteRate>().expect("rate"),
        limit: Some("96Mi".parse::<ByteSize>().expect("size")),
        mode: None,
    };
    let mut f = fault::build(&FaultAction::MemoryLeak(spec), &env(), "m1");
    let mut undo = UndoLog::new(&fx.journal, "m1", "leak").expect("undo");
    f.inject(std::slice::from_ref(&m), &mut undo)
        .expect("inject");
    let actions = undo.into_actions();
    f.confirm().expect("confirm");
    std::thread::sleep(Duration::from_millis(1200));
    let during = murphy::cgroup::memory_usage(&dir).expect("usage");
    assert!(
        during > before + (48 << 20),
        "cgroup usage grew by only {} MiB",
        (during - before) >> 20
    );
    fault::revert(&actions, &NoLab).expect("revert");
    fault::revert(&actions, &NoLab).expect("revert again");
    // A killed process's pages are uncharged as it exits, which can lag the kill a little.
    let t = Instant::now();
    let mut after = murphy::cgroup::memory_usage(&dir).expect("usage");
    while after >= during - (32 << 20) && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        after = murphy::cgroup::memory_usage(&dir).expect("usage");
    }
    assert!(
        after < during - (32 << 20),
        "memory not freed: {} -> {} MiB",
        during >> 20,
        after >> 20
    );
    drop(f);
    fx.teardown_and_assert_clean();
}

#[test]
fn memory_leak_refuses_an_unlimited_cgroup_without_a_limit() {
    let mut fx = Fixture::new("leak2", BUSY);
    let m = member(&fx, "h1", Some("busy"));
    let spec = MemoryLeak {
        rate: "64Mi/s".parse::<ByteRate>().expect("rate"),
        limit: None,
        mode: None,
    };
    let mut f = fault::build(&FaultAction::MemoryLeak(spec), &env(), "m2");
    let mut undo = UndoLog::new(&fx.journal, "m2", "leak").expect("undo");
    let err = f
        .inject(std::slice::from_ref(&m), &mut undo)
        .expect_err("must refuse");
    assert!(err.to_string().contains("no limit"), "{err}");
    assert!(undo.actions().is_empty(), "nothing was started");
    fx.teardown_and_assert_clean();
}

#[test]
fn cpu_burn_uses_cpu_in_the_target_cgroup_and_revert_stops_it() {
    let mut fx = Fixture::new("cpu", BUSY);
    let m = member(&fx, "h1", Some("idle"));
    let dir = murphy::cgroup::Mounts::read()
        .proc_cgroup(m.procs[0].pid, "cpuacct")
        .expect("cpuacct cgroup");
    let mut f = fault::build(
        &FaultAction::CpuBurn(CpuBurn { workers: Some(1) }),
        &env(),
        "c1",
    );
    let mut undo = UndoLog::new(&fx.journal, "c1", "cpu").expect("undo");
    f.inject(std::slice::from_ref(&m), &mut undo)
        .expect("inject");
    let actions = undo.into_actions();
    f.confirm().expect("confirm");
    let a = murphy::cgroup::cpu_usage_ns(&dir).expect("usage");
    std::thread::sleep(Duration::from_millis(500));
    let b = murphy::cgroup::cpu_usage_ns(&dir).expect("usage");
    assert!(
        b - a > 150_000_000,
        "the idle target's cgroup used only {}ms of CPU",
        (b - a) / 1_000_000
    );
    fault::revert(&actions, &NoLab).expect("revert");
    fault::revert(&actions, &NoLab).expect("revert again");
    std::thread::sleep(Duration::from_millis(100));
    let a = murphy::cgroup::cpu_usage_ns(&dir).expect("usage");
    std::thread::sleep(Duration::from_millis(400));
    let b = murphy::cgroup::cpu_usage_ns(&dir).expect("usage");
    assert!(
        b - a < 40_000_000,
        "CPU still burning after revert: {}ms",
        (b - a) / 1_000_000
    );
    drop(f);
    fx.teardown_and_assert_clean();
}
