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
    // The agent dies with the fault active (nothing runs on its way out).
    std::mem::forget(a);
    let (b, cleaned) = agent(&tree, &dir, "two");
    assert!(!cleaned.is_empty(), "the new agent reverted something");
    assert!(
        resumed(pid),
        "the predecessor's pause was undone: {cleaned:?}"
    );
    assert_eq!(b.active(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
