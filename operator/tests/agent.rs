//! Privileged: the node agent's engine side against real processes in kubelet-style pod
//! cgroups. A pause fault is injected by pod UID; a call naming another pod is refused; a
//! lapsed lease reverts; an agent that died with a fault active is cleaned up by the next.

mod common;
use common::{resumed, state, Tree};
use murphy::model::spec::{FaultAction, PauseMethod, ProcessPause};
use murphy_operator::agent::{Agent, AgentError, InjectRequest};
use murphy_operator::lease::LeaseError;
use murphy_operator::pods::ContainerRef;

const UID: &str = "3a6e1c2d-4f5b-4a7c-9d8e-0f1a2b3c4d5e";
const APP: &str = "5d41402abc4b2a76b9719d911017c592a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn setup(tag: &str) -> (Tree, i32, std::path::PathBuf) {
    common::pod_tree(tag, UID, APP, None)
}

fn agent(tree: &Tree, dir: &std::path::Path, instance: &str) -> (Agent, Vec<String>) {
    Agent::start(dir, "/bin/false".into(), vec![tree.root.clone()], instance).expect("agent")
}

fn pause(lease_ms: u64) -> InjectRequest {
    InjectRequest {
        experiment: "shop/pause-web".into(),
        fault: "pause".into(),
        pod: "shop/web-0".into(),
        pod_uid: UID.into(),
        containers: vec![ContainerRef {
            name: "app".into(),
            id: APP.into(),
        }],
        action: FaultAction::ProcessPause(ProcessPause {
            method: Some(PauseMethod::Signal),
        }),
        lease_ms,
        seed: 1,
        peer_addrs: Vec::new(),
    }
}

#[test]
fn inject_by_pod_uid_refuse_another_uid_revert_on_request() {
    let (tree, pid, dir) = setup("req");
    let (mut a, cleaned) = agent(&tree, &dir, "one");
    assert!(cleaned.is_empty(), "{cleaned:?}");
    let ev = a.inject(&pause(60_000), 0).expect("inject");
    assert!(
        ev.contains("state T"),
        "the evidence is the stopped process: {ev}"
    );
    assert_eq!(state(pid), Some('T'), "the container's process is stopped");
    let err = a
        .revert(
            "shop/pause-web",
            "pause",
            "00000000-0000-0000-0000-000000000000",
        )
        .expect_err("another pod");
    assert!(
        matches!(err, AgentError::Lease(LeaseError::WrongPod { .. })),
        "{err}"
    );
    assert_eq!(state(pid), Some('T'), "a refused call changes nothing");
    a.revert("shop/pause-web", "pause", UID).expect("revert");
    assert!(resumed(pid));
    assert_eq!(a.active(), 0);
    let again = a.revert("shop/pause-web", "pause", UID).expect_err("gone");
    assert!(
        matches!(again, AgentError::Lease(LeaseError::Unknown { .. })),
        "{again}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_lapsed_lease_reverts_on_the_agents_own() {
    let (tree, pid, dir) = setup("lease");
    let (mut a, _) = agent(&tree, &dir, "one");
    a.inject(&pause(2_000), 1_000).expect("inject");
    // Renewed at 2s for 2s more: it now lapses at 4s, not 3s.
    assert_eq!(
        a.renew("shop/pause-web", "pause", UID, 2_000, 2_000)
            .expect("renew"),
        4_000
    );
    assert!(a.tick(3_999).is_empty());
    assert_eq!(state(pid), Some('T'));
    let lapsed = a.tick(4_000);
    assert_eq!(lapsed.len(), 1);
    assert!(
        lapsed[0].1.is_ok(),
        "{:?}",
        lapsed[0].1.as_ref().err().map(ToString::to_string)
    );
    assert!(resumed(pid), "reverted when the lease lapsed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_restarted_agent_reverts_what_its_predecessor_left() {
    let (tree, pid, dir) = setup("restart");
    let (mut a, _) = agent(&tree, &dir, "one");
    a.inject(&pause(60_000), 0).expect("inject");
    assert_eq!(state(pid), Some('T'));
    // The agent dies with the fault active (nothing runs on its way out, and its hold on
    // the journal goes with it).
    a.abandon();
    let (b, cleaned) = agent(&tree, &dir, "two");
    assert!(!cleaned.is_empty(), "the new agent reverted something");
    assert!(
        resumed(pid),
        "the predecessor's pause was undone: {cleaned:?}"
    );
    assert_eq!(b.active(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two peer "pods" (network namespaces) wired to the target pod's namespace by veth
/// pairs, removed in Drop.
struct Peers {
    names: Vec<String>,
}

impl Peers {
    /// Peer `i` gets 10.211.<i>.2/30, the pod's side 10.211.<i>.1/30.
    fn wire(pod_pid: i32, n: u8) -> Peers {
        let mut names = Vec::new();
        let run = |args: &[&str]| {
            let out = std::process::Command::new(args[0])
                .args(&args[1..])
                .output()
                .expect("spawn");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for i in 1..=n {
            let ns = format!("murphy-peer{i}-{}", std::process::id());
            run(&["ip", "netns", "add", &ns]);
            names.push(ns.clone());
            let (pod_if, peer_if) = (format!("mp{i}"), format!("mq{i}"));
            run(&[
                "ip",
                "link",
                "add",
                &pod_if,
                "netns",
                &pod_pid.to_string(),
                "type",
                "veth",
                "peer",
                "name",
                &peer_if,
                "netns",
                &ns,
            ]);
            let pid = pod_pid.to_string();
            let pod_ip = format!("10.211.{i}.1/30");
            let peer_ip = format!("10.211.{i}.2/30");
            run(&[
                "nsenter", "-t", &pid, "-n", "ip", "addr", "add", &pod_ip, "dev", &pod_if,
            ]);
            run(&[
                "nsenter", "-t", &pid, "-n", "ip", "link", "set", &pod_if, "up",
            ]);
            run(&["nsenter", "-t", &pid, "-n", "ip", "link", "set", "lo", "up"]);
            run(&["ip", "-n", &ns, "addr", "add", &peer_ip, "dev", &peer_if]);
            run(&["ip", "-n", &ns, "link", "set", &peer_if, "up"]);
        }
        Peers { names }
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

/// Whether the pod's namespace reaches `ip` (one ping, 1 s).
fn reaches(pod_pid: i32, ip: &str) -> bool {
    std::process::Command::new("nsenter")
        .args([
            "-t",
            &pod_pid.to_string(),
            "-n",
            "ping",
            "-c1",
            "-W1",
            "-q",
            ip,
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The nftables tables in the pod's namespace.
fn tables(pod_pid: i32) -> String {
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pod_pid.to_string(), "-n", "nft", "list", "tables"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_cluster_partition_with_peers_cuts_only_those_peers() {
    let (tree, pid, dir) = setup("peers");
    let _peers = Peers::wire(pid, 2);
    assert!(
        reaches(pid, "10.211.1.2") && reaches(pid, "10.211.2.2"),
        "wired"
    );
    let (mut a, _) = agent(&tree, &dir, "one");
    let req = InjectRequest {
        fault: "cut-db".into(),
        action: FaultAction::NetworkPartition(murphy::model::spec::NetworkPartition {
            peers: vec!["db".into()],
            ..Default::default()
        }),
        // What the controller's run plan resolved the `db` target to.
        peer_addrs: vec!["10.211.1.2".parse().expect("ip")],
        ..pause(60_000)
    };
    let ev = a.inject(&req, 0).expect("inject");
    assert!(
        ev.contains("murphy_"),
        "the evidence is the nft table: {ev}"
    );
    assert!(!reaches(pid, "10.211.1.2"), "the named peer is cut off");
    assert!(
        reaches(pid, "10.211.2.2"),
        "any other address still answers"
    );
    let r = a.revert("shop/pause-web", "cut-db", UID).expect("revert");
    // What the partition achieved on this node goes back with the revert: the probes to
    // the cut-off peer were dropped by its rules.
    assert!(
        r.achieved.get("packetsDropped").copied().unwrap_or(0.0) >= 1.0,
        "{:?}",
        r.achieved
    );
    assert!(reaches(pid, "10.211.1.2"), "the peer is back after revert");
    assert!(
        !tables(pid).contains("murphy_"),
        "no table left: {}",
        tables(pid)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn peers_that_resolved_to_nothing_are_refused_by_the_plan_not_cut_as_everything() {
    // The controller resolves through the engine's plan; an empty peer set is an error
    // there, so no request ever asks the agent to cut a pod off from everything.
    use murphy::plan::{resolve, PlanError, Resolver};
    struct Nobody;
    impl Resolver for Nobody {
        fn target_addrs(&self, _: &str) -> Vec<std::net::Ipv4Addr> {
            Vec::new()
        }
    }
    let f: murphy::model::spec::FaultSpec = serde_json::from_value(serde_json::json!({
        "name": "cut-db", "target": "web", "kind": "network-partition", "peers": ["db"]
    }))
    .expect("fault");
    assert!(matches!(
        resolve(&f, &[], &Nobody),
        Err(PlanError::NoPeers { .. })
    ));
}
