//! Benchmark: the cluster front door's fan-out. Run as root:
//! `cargo bench -p murphy-operator --bench fanout`. Prints Markdown tables; BENCHMARKS.md
//! records the method and results. Not a test: nothing is asserted.
//!
//! Nodes are stood in for by in-process agents (the real `Agent` behind the real gRPC
//! service, mTLS, each on its own loopback port with its own kubelet-style cgroup tree);
//! pods are real `sleep` processes placed in `kubepods/pod<uid>/<container-id>` cgroups.
//! The fault is a real `process-pause` (SIGSTOP, confirmed from /proc). For 1, 100 and
//! 1,000 pods over 1, 20 and 50 nodes it measures, on the controller's side:
//! - select: choosing the pods from the listed ones (seeded pick, blast-radius cap) and
//!   placing them on their nodes' agents;
//! - inject→confirmed: the parallel, bounded fan-out of Inject calls over one reused
//!   channel per agent until every agent has confirmed;
//! - revert: the fan-out of Revert calls until every agent has reverted.
//!
//! What a real cluster adds and this leaves out: the API server's watch latency before the
//! reconcile starts and the LIST of pods (one request per target).
//!
//! Then the agent binary's footprint when idle: resident memory and CPU over 20 s.

use murphy_operator::certs;
use murphy_operator::grpc::{self, AgentService, Agents};
use murphy_operator::run::{ClusterRun, Placed};
use murphy_operator::select::{self, PodInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Node {
    name: String,
    root: PathBuf,
    state: PathBuf,
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Fleet {
    base: PathBuf,
    nodes: Vec<Node>,
    pods: Vec<(PodInfo, String)>,
    children: Vec<Child>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(s) = n.stop.take() {
                let _ = s.send(());
            }
            let _ = std::fs::remove_dir_all(&n.state);
        }
        for c in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
            let _ = c.kill();
            let _ = c.wait();
        }
        let mut dirs = Vec::new();
        let mut stack = vec![self.base.clone()];
        while let Some(d) = stack.pop() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
            dirs.push(d);
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

fn uid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn cid(i: usize) -> String {
    format!("{i:064x}")
}

async fn fleet(tag: &str, nodes: usize, pods: usize, set: &certs::Set) -> Fleet {
    let m = murphy::cgroup::Mounts::read();
    let base = m
        .v1_mount("pids")
        .expect("v1 pids hierarchy")
        .join(format!("murphy-bench-{tag}-{}", std::process::id()));
    let mut f = Fleet {
        base: base.clone(),
        nodes: Vec::new(),
        pods: Vec::new(),
        children: Vec::new(),
    };
    for n in 0..nodes {
        let root = base.join(format!("node{n}"));
        let state =
            std::env::temp_dir().join(format!("murphy-bench-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let (agent, _) = murphy_operator::agent::Agent::start(
            &state,
            "/bin/false".into(),
            vec![root.clone()],
            &format!("n{n}"),
        )
        .expect("agent");
        let name = format!("node-{n}");
        let svc = AgentService::new(&name, agent, Vec::new());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tls = set.agent.clone();
        tokio::spawn(async move {
            let _ = grpc::serve(l, &tls, svc, Duration::from_secs(1), async {
                let _ = rx.await;
            })
            .await;
        });
        f.nodes.push(Node {
            name,
            root,
            state,
            addr,
            stop: Some(tx),
        });
    }
    for i in 0..pods {
        let node = &f.nodes[i % nodes];
        let dir = node
            .root
            .join("kubepods")
            .join(format!("pod{}", uid(i)))
            .join(cid(i));
        std::fs::create_dir_all(&dir).expect("cgroup");
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep");
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).expect("move");
        f.children.push(child);
        f.pods.push((
            PodInfo {
                namespace: "shop".into(),
                name: format!("web-{i}"),
                uid: uid(i),
                node: Some(node.name.clone()),
                labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                running: true,
                containers: vec!["app".into()],
                terminating: false,
                ip: None,
                created_unix: None,
                owner: None,
            },
            cid(i),
        ));
    }
    f
}

const SPEC: &str = r#"
targets:
  web:
    pods:
      namespace: shop
      matchLabels: {app: web}
    pick: {mode: all}
faults:
  - name: pause
    target: web
    kind: process-pause
    method: signal
steadyState:
  duration: 0s
duration: 1h
guardrails:
  maxTargets: 100000
"#;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn one_round(
    f: &Fleet,
    agents: &Agents,
    spec: &murphy::model::ExperimentSpec,
) -> (f64, f64, f64) {
    let t0 = Instant::now();
    let infos: Vec<PodInfo> = f.pods.iter().map(|(p, _)| p.clone()).collect();
    let ids: BTreeMap<String, String> = f
        .pods
        .iter()
        .map(|(p, c)| (p.uid.clone(), c.clone()))
        .collect();
    let addrs: BTreeMap<String, String> = f
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.addr.clone()))
        .collect();
    let opted = BTreeSet::from(["shop".to_string()]);
    let chosen = select::select_pods("web", &spec.targets["web"], &infos, &opted, 7, 100_000)
        .expect("select");
    let placed: Vec<Placed> = chosen
        .into_iter()
        .map(|c| Placed {
            containers: vec![("app".into(), ids[&c.pod.uid].clone())],
            addr: addrs[c.pod.node.as_deref().unwrap_or_default()].clone(),
            chosen: c,
        })
        .collect();
    let n = placed.len();
    let mut run = ClusterRun::start(
        "bench",
        "shop/bench",
        spec.clone(),
        7,
        60_000,
        BTreeMap::from([("pause".to_string(), placed)]),
        &murphy_operator::run::PodView::default(),
    )
    .expect("a pause fault resolves");
    let select_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let t1 = Instant::now();
    run.step(agents).await;
    let inject_ms = t1.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        run.live.len(),
        n,
        "every pod confirmed: {:?}",
        run.faults[0].error
    );
    let t2 = Instant::now();
    run.revert(agents, None, "bench").await;
    let revert_ms = t2.elapsed().as_secs_f64() * 1000.0;
    if !run.live.is_empty() {
        let (rec, _) = run.finish(murphy::timeline::RunStatus::Completed, None);
        panic!(
            "{} not reverted: {:?}",
            run.live.len(),
            rec.events
                .iter()
                .rev()
                .take(2)
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
        );
    }
    (select_ms, inject_ms, revert_ms)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields after the command: state is 0, utime 11, stime 12.
    n(11) + n(12)
}

fn main() {
    assert!(nix::unistd::geteuid().is_root(), "run as root");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .expect("runtime");
    let set = certs::generate("bench-ca", "murphy-controller", "murphy-agent", 1).expect("certs");
    let spec: murphy::model::ExperimentSpec = serde_saphyr::from_str(SPEC).expect("spec");
    println!("| pods | nodes | select (ms) | inject→confirmed (ms) | revert (ms) | channels |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (pods, nodes, rounds) in [(1usize, 1usize, 9usize), (100, 20, 7), (1000, 50, 5)] {
        rt.block_on(async {
            let f = fleet(&format!("{pods}"), nodes, pods, &set).await;
            let agents = Agents::new(
                grpc::client_tls(&set.controller, "murphy-agent"),
                Duration::from_secs(60),
            );
            // One warm-up round opens the channels (TLS handshakes), as a running
            // controller already has them.
            one_round(&f, &agents, &spec).await;
            let (mut s, mut i, mut r) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                let (a, b, c) = one_round(&f, &agents, &spec).await;
                s.push(a);
                i.push(b);
                r.push(c);
            }
            println!(
                "| {pods} | {nodes} | {:.2} | {:.1} | {:.1} | {} |",
                median(&mut s),
                median(&mut i),
                median(&mut r),
                agents.open()
            );
        });
    }

    // The agent binary at rest.
    let dir = std::env::temp_dir().join(format!("murphy-bench-idle-{}", std::process::id()));
    set.agent.write(&dir.join("tls")).expect("tls");
    let mut child = Command::new(env!("CARGO_BIN_EXE_murphy-operator"))
        .args([
            "agent",
            "--node-name",
            "idle",
            "--listen",
            "127.0.0.1:0",
            "--tls-dir",
        ])
        .arg(dir.join("tls"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--health-addr")
        .arg("127.0.0.1:0")
        .stderr(Stdio::null())
        .spawn()
        .expect("agent binary");
    std::thread::sleep(Duration::from_secs(3));
    let pid = child.id();
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    std::thread::sleep(Duration::from_secs(20));
    let ticks = cpu_ticks(pid) - c0;
    // /proc/<pid>/stat counts in USER_HZ, 100 on Linux whatever the kernel's HZ.
    let hz = 100.0;
    let cpu_pct = ticks as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
    println!();
    println!("| agent at rest | value |");
    println!("|---|---:|");
    println!(
        "| resident memory | {:.1} MiB |",
        rss_kib(pid) as f64 / 1024.0
    );
    println!("| CPU over 20 s | {cpu_pct:.3} % of one core ({ticks} ticks) |");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
