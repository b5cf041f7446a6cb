//! Benchmark: the operator on the real single-node Kubernetes of `shared/k8s`. Run as root
//! after a release build of the workspace:
//! `cargo build --release --workspace && cargo bench -p murphy-operator --bench node`.
//! Prints Markdown tables; BENCHMARKS.md records the method and results. Not a test:
//! nothing is asserted (it says so and stops where the harness or the Helm venv is absent).
//!
//! The chart is installed for real (Helm 4 through helm-python-sdk) with an image of this
//! release build; a Deployment of 10 pods is the target. For a pause of 1 pod and of all 10:
//! - apply → active: from just before `kubectl apply` until the kernel shows every chosen
//!   pod's app processes stopped (`/proc/<pid>/stat`, polled every 2 ms);
//! - abort → thawed: from just before `kubectl annotate murphy.dev/abort=true` until the
//!   kernel shows them all running again.
//!
//! Beside it, the tool a node's operator would reach for instead: containerd's own
//! `ctr tasks pause` / `resume` on the same containers (a loop over them, as one would
//! script it), timed the same way from the command's start to the kernel's word. Then the
//! controller's and the agent's footprint over the whole run: peak resident memory (VmHWM)
//! and CPU time (utime+stime) per wall second.

#[path = "../tests/common/mod.rs"]
mod common;
use common::k8s::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NS: &str = "bench";
const TRIALS: usize = 7;

fn deploy(node: &Node, replicas: usize) {
    node.apply(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}, labels: {{murphy.dev/chaos: enabled}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: localhost/web:1
          imagePullPolicy: Never
          ports: [{{containerPort: 8080}}]
          readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
"#
    ));
    wait_for("the web pods to be ready", Duration::from_secs(240), || {
        let d = node.json(&["get", "deployment", "web", "-n", NS]);
        (d["status"]["readyReplicas"].as_u64() == Some(replicas as u64)).then_some(())
    });
}

/// Each web pod: (UID, its app processes, its app container's runtime id).
fn pods(node: &Node) -> Vec<(String, Vec<i32>, String)> {
    node.json(&["get", "pods", "-n", NS, "-l", "app=web"])["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
            let pids = pod_pids(&uid)
                .into_iter()
                .filter(|x| murphy::procfs::stat(*x).is_some_and(|s| s.comm != "pause"))
                .collect();
            let cid = p["status"]["containerStatuses"][0]["containerID"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches("containerd://")
                .to_string();
            (uid, pids, cid)
        })
        .collect()
}

/// How many of `pods` the kernel shows stopped (every app process `T`/`t`/`D`).
fn stopped(pods: &[(String, Vec<i32>, String)]) -> usize {
    pods.iter()
        .filter(|(_, pids, _)| {
            !pids.is_empty()
                && pids.iter().all(|p| {
                    murphy::procfs::stat(*p).is_some_and(|s| matches!(s.state, 'D' | 'T' | 't'))
                })
        })
        .count()
}

/// Time from `start` until `stopped(pods)` is `want` (polled every 2 ms).
fn until(pods: &[(String, Vec<i32>, String)], want: usize, start: Instant) -> Duration {
    let deadline = start + Duration::from_secs(60);
    while stopped(pods) != want {
        assert!(Instant::now() < deadline, "waited 60 s for {want} stopped");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// `api` is the `kubernetes` Service's address: the probe the controller runs reaches it.
fn experiment(name: &str, mode: &str, api: &str) -> String {
    format!(
        r#"
apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {{name: {name}, namespace: {NS}}}
spec:
  targets:
    web:
      pods: {{namespace: {NS}, matchLabels: {{app: web}}, containers: [app]}}
      pick: {{mode: {mode}}}
  probes:
    - {{name: web, interval: 1s, tcp: {{address: "{api}:443"}}}}
  faults:
    - {{name: pause, target: web, kind: process-pause, at: 0s, duration: 60s}}
  steadyState: {{duration: 0s}}
  claims:
    - name: bench
      availability: {{probe: web, atLeast: 1%}}
  guardrails: {{maxTargets: 10, maxDuration: 5m}}
"#
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, min, max) in ms.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn fmt((med, min, max): (f64, f64, f64)) -> String {
    format!("{med:.0} ({min:.0}–{max:.0})")
}

/// Murphy: apply → every chosen pod stopped, abort → every pod running.
fn murphy_trials(
    node: &Node,
    pods: &[(String, Vec<i32>, String)],
    mode: &str,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let api = node.json(&["get", "service", "kubernetes", "-n", "default"])["spec"]["clusterIP"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for t in 0..TRIALS {
        let name = format!("b{n}-{t}");
        let yaml = experiment(&name, mode, &api);
        let t0 = Instant::now();
        node.apply(&yaml);
        on.push(ms(until(pods, n, t0)));
        let t1 = Instant::now();
        node.kubectl(&[
            "annotate",
            "experiment",
            &name,
            "-n",
            NS,
            "murphy.dev/abort=true",
        ]);
        off.push(ms(until(pods, 0, t1)));
        wait_for("the run to end", Duration::from_secs(60), || {
            let p = node.json(&["get", "experiment", &name, "-n", NS])["status"]["phase"].clone();
            (p == "Aborted" || p == "Completed").then_some(())
        });
        node.kubectl(&["delete", "experiment", &name, "-n", NS, "--wait=true"]);
    }
    (on, off)
}

/// containerd's `ctr tasks pause` / `resume` over the first `n` pods' app containers.
fn ctr_trials(node: &Node, pods: &[(String, Vec<i32>, String)], n: usize) -> (Vec<f64>, Vec<f64>) {
    let sock = std::env::var("K8S_LOCAL_CONTAINERD_SOCK")
        .unwrap_or_else(|_| "/run/k8s-local/containerd/containerd.sock".into());
    let ctr = PathBuf::from(node.path.split(':').next().unwrap_or("")).join("ctr");
    let ctr = if ctr.exists() {
        ctr
    } else {
        PathBuf::from("ctr")
    };
    let these = &pods[..n];
    let run = |verb: &str| {
        for (_, _, cid) in these {
            let out = node
                .cmd(&ctr)
                .args(["--address", &sock, "-n", "k8s.io", "tasks", verb, cid])
                .output()
                .expect("ctr");
            assert!(
                out.status.success(),
                "ctr {verb}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        let t0 = Instant::now();
        run("pause");
        on.push(ms(until(these, n, t0)));
        let t1 = Instant::now();
        run("resume");
        off.push(ms(until(these, 0, t1)));
    }
    (on, off)
}

/// (VmHWM KiB, CPU seconds) of a pod's app processes.
fn footprint(uid: &str) -> (u64, f64) {
    let tick = 100.0; // USER_HZ
    let mut hwm = 0;
    let mut cpu = 0.0;
    for pid in pod_pids(uid) {
        let Some(st) = murphy::procfs::stat(pid) else {
            continue;
        };
        if st.comm == "pause" {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        hwm += status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        // Fields after the comm: state is [0]; utime [11], stime [12].
        let t: f64 = [11, 12]
            .iter()
            .filter_map(|i| f.get(*i).and_then(|x| x.parse::<f64>().ok()))
            .sum();
        cpu += t / tick;
    }
    (hwm, cpu)
}

fn component_uid(node: &Node, component: &str) -> String {
    node.json(&[
        "get",
        "pods",
        "-n",
        SYSTEM,
        "-l",
        &format!("app.kubernetes.io/component={component}"),
    ])["items"][0]["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_murphy-operator"));
    let Some(node) = up_with_operator("node bench", &bin) else {
        return;
    };
    deploy(&node, 10);
    let pods = pods(&node);
    assert_eq!(pods.len(), 10);
    let (cu, au) = (
        component_uid(&node, "controller"),
        component_uid(&node, "agent"),
    );
    let load0 = loadavg();
    let (c0, a0, w0) = (footprint(&cu).1, footprint(&au).1, Instant::now());
    let mut rows = Vec::new();
    for (label, mode, n) in [("1 pod", "one", 1), ("10 pods", "all", 10)] {
        let (on, off) = murphy_trials(&node, &pods, mode, n);
        rows.push(format!(
            "| Murphy (operator) | {label} | {} | {} |",
            fmt(stats(on)),
            fmt(stats(off))
        ));
    }
    let wall = w0.elapsed().as_secs_f64();
    let (chwm, c1) = footprint(&cu);
    let (ahwm, a1) = footprint(&au);
    for (label, n) in [("1 pod", 1), ("10 pods", 10)] {
        let (on, off) = ctr_trials(&node, &pods, n);
        rows.push(format!(
            "| `ctr tasks pause/resume` (loop) | {label} | {} | {} |",
            fmt(stats(on)),
            fmt(stats(off))
        ));
    }
    let load1 = loadavg();
    println!(
        "\nMedian (min–max) of {TRIALS} trials, ms; load average before {load0}, after {load1}\n"
    );
    println!("| tool | pods | apply → stopped | abort → running |\n|---|---|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    println!("\nFootprint over the Murphy trials ({wall:.0} s):\n");
    println!("| process | peak RSS (VmHWM) | CPU (% of one core) |\n|---|---:|---:|");
    println!(
        "| controller | {:.1} MiB | {:.2} % |",
        chwm as f64 / 1024.0,
        (c1 - c0) / wall * 100.0
    );
    println!(
        "| agent | {:.1} MiB | {:.2} % |",
        ahwm as f64 / 1024.0,
        (a1 - a0) / wall * 100.0
    );
    drop(node);
}
