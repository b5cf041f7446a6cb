//! Against a system Murphy did not start: a three-member etcd cluster brought up by this
//! test with plain `ip netns`, a bridge, veth pairs and `ip netns exec etcd` — no lab. The
//! experiment (the README's "Against a system that is already running" example) names the
//! members by namespace, kills the leader chosen by `select: primary`, writes from a
//! client namespace that exists only outside Murphy, and is judged from the role timeline.

mod common;
use common::*;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BRIDGE: &str = "mxbr0";
const SPACES: [(&str, &str); 4] = [
    ("mx-n1", "10.81.0.11"),
    ("mx-n2", "10.81.0.12"),
    ("mx-n3", "10.81.0.13"),
    ("mx-c", "10.81.0.21"),
];

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cluster, torn down (processes killed, namespaces and bridge deleted) when dropped.
struct Outside {
    etcd: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Outside {
    fn drop(&mut self) {
        for c in &mut self.etcd {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (ns, _) in SPACES {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn clean_slate() {
    for (ns, _) in SPACES {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
    let _ = Command::new("ip")
        .args(["link", "del", BRIDGE])
        .stderr(Stdio::null())
        .status();
}

fn healthy(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(a) = format!("{addr}:2379").parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&a, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

fn start_outside() -> Outside {
    require_root();
    clean_slate();
    let dir = temp_dir("outside");
    let mut o = Outside {
        etcd: Vec::new(),
        dir: dir.clone(),
    };
    ip(&["link", "add", BRIDGE, "type", "bridge"]);
    ip(&["addr", "add", "10.81.0.1/24", "dev", BRIDGE]);
    ip(&["link", "set", BRIDGE, "up"]);
    for (i, (ns, addr)) in SPACES.iter().enumerate() {
        let host = format!("mxv{i}");
        ip(&["netns", "add", ns]);
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        ip(&["link", "set", &host, "master", BRIDGE, "up"]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    let cluster = "n1=http://10.81.0.11:2380,n2=http://10.81.0.12:2380,n3=http://10.81.0.13:2380";
    for (i, (ns, addr)) in SPACES.iter().take(3).enumerate() {
        let name = format!("n{}", i + 1);
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "etcd"])
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", dir.join(&name).display()))
            .arg(format!("--listen-peer-urls=http://{addr}:2380"))
            .arg(format!("--initial-advertise-peer-urls=http://{addr}:2380"))
            .arg(format!("--listen-client-urls=http://{addr}:2379"))
            .arg(format!("--advertise-client-urls=http://{addr}:2379"))
            .arg(format!("--initial-cluster={cluster}"))
            .args([
                "--initial-cluster-state=new",
                "--initial-cluster-token=murphy-outside",
                "--heartbeat-interval=100",
                "--election-timeout=1000",
                "--log-level=warn",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("etcd");
        o.etcd.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !SPACES.iter().take(3).all(|(_, a)| healthy(a)) {
        assert!(Instant::now() < deadline, "etcd did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    o
}

/// The README's example, with this test's namespaces.
fn experiment() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let start = readme
        .find("# against-a-running-system.yaml")
        .expect("the README has the example");
    let body = &readme[start..];
    let end = body.find("```").expect("end of the example");
    body[..end].to_string()
}

#[test]
fn a_cluster_started_outside_murphy_loses_its_leader_by_role_and_is_judged() {
    let outside = start_outside();
    let file = outside.dir.join("experiment.yaml");
    std::fs::write(&file, experiment()).expect("write");
    let r = run(file.to_str().expect("path"));
    assert_eq!(r.code, Some(0), "every claim holds\n{}", r.stdout);
    for claim in [
        "no acknowledged write is lost",
        "writes resume within 5s of losing the leader",
        "one leader at a time",
    ] {
        assert_eq!(
            verdict(&r, claim)["outcome"],
            "held",
            "{claim}\n{}",
            r.stdout
        );
    }
    // The leader was found by asking every member, and it is the one that was killed.
    let f = &r.report["record"]["faults"][0];
    assert_eq!(f["confirmed"], true, "{f}");
    let killed = f["members"][0].as_str().expect("member").to_string();
    let events = r.report["record"]["events"].as_array().expect("events");
    let chose = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .find(|m| m.contains("roles:"))
        .expect("how the leader was chosen");
    assert!(chose.contains(&format!("{killed}: primary")), "{chose}");
    // It really died; the other two are alive and one of them leads now.
    let dead: Vec<_> = SPACES
        .iter()
        .take(3)
        .filter(|(_, a)| !healthy(a))
        .map(|(ns, _)| *ns)
        .collect();
    assert_eq!(dead.len(), 1, "exactly the killed member is gone: {dead:?}");
    assert!(killed.ends_with(&dead[0][4..]), "{killed} vs {dead:?}");
    // The role timeline saw the promotion and the killed member as down, not unknown.
    let gap = verdict(&r, "writes resume within 5s of losing the leader");
    let promoted = gap["figures"]["promotionMs"].as_f64().expect("promotion");
    assert!(promoted > 0.0 && promoted < 5000.0, "{promoted}");
    let roles = r.report["record"]["roles"].as_array().expect("roles");
    assert!(roles
        .iter()
        .any(|s| s["member"] == killed.as_str() && s["role"] == "down"));
    // The client wrote from its own namespace: the step run there saw its address.
    let run_id = r.report["runId"].as_str().expect("run id");
    let log = std::fs::read_to_string(
        r.state
            .join("runs")
            .join(run_id)
            .join("logs")
            .join("step-where.log"),
    )
    .expect("step log");
    assert!(log.contains("10.81.0.21"), "{log}");
    let h = history(&r, "writes");
    assert!(h["ops"].as_array().expect("ops").len() > 200);
    drop(outside);
    assert!(!std::path::Path::new("/run/netns/mx-n1").exists());
}
