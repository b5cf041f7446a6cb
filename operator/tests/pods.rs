//! Privileged: pods laid out as kubelet does (cgroupfs driver on cgroup v1, systemd driver
//! with containerd and CRI-O on cgroup v2), each container a real process in its own
//! network namespace; the resolver must find exactly those processes, and the engine's
//! faults must act on them through the resulting members.

use murphy_operator::pods::{member, resolve, ContainerRef, ResolveError};
use std::path::Path;

mod common;
use common::Tree;

const UID: &str = "7d0e6f1a-2b3c-4d5e-8f90-a1b2c3d4e5f6";
const APP: &str = "9e107d9d372bb6826bd81d3542a419d6a1b2c3d4e5f60718293a4b5c6d7e8f90";
const SIDE: &str = "e4d909c290d0fb1ca068ffaddf22cbd0a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn refs() -> Vec<ContainerRef> {
    vec![
        ContainerRef {
            name: "app".into(),
            id: APP.into(),
        },
        ContainerRef {
            name: "sidecar".into(),
            id: SIDE.into(),
        },
    ]
}

fn check(tree: &mut Tree, pod_dir: &Path, app_dir: &str, side_dir: &str) {
    let app = tree.container(&pod_dir.join(app_dir));
    let side = tree.container(&pod_dir.join(side_dir));
    // The pod's sandbox ("pause") has a cgroup of its own too.
    tree.container(&pod_dir.join("0123456789abcdef0123"));
    let found = resolve(std::slice::from_ref(&tree.root), UID, &refs()).expect("resolve");
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].name.as_str(), found[0].pids.clone()),
        ("app", vec![app])
    );
    assert_eq!(
        (found[1].name.as_str(), found[1].pids.clone()),
        ("sidecar", vec![side])
    );
    // The engine acts on this member (tests/agent.rs pauses it through the agent).
    let m = member("shop/web-0", &found[0]).expect("member");
    assert_eq!(m.procs[0].pid, app);
    assert!(
        m.netns.open().expect("netns").is_some(),
        "the container's own netns"
    );
    let other = resolve(
        std::slice::from_ref(&tree.root),
        "00000000-0000-0000-0000-000000000000",
        &refs(),
    );
    assert!(
        matches!(other, Err(ResolveError::NoPod { .. })),
        "{other:?}"
    );
}

#[test]
fn cgroupfs_driver_on_cgroup_v1() {
    let m = murphy::cgroup::Mounts::read();
    let base = m.v1_mount("pids").expect("v1 pids hierarchy").to_path_buf();
    let mut tree = Tree::new(&base, "v1");
    let pod = tree
        .root
        .join("kubepods/burstable")
        .join(format!("pod{UID}"));
    check(&mut tree, &pod, APP, SIDE);
    let root = tree.root.clone();
    drop(tree);
    assert!(!root.exists(), "cgroups left behind");
}

#[test]
fn systemd_driver_on_cgroup_v2_with_containerd_and_cri_o() {
    let m = murphy::cgroup::Mounts::read();
    let base = m.v2.clone().expect("a v2 hierarchy");
    let mut tree = Tree::new(&base, "v2");
    let pod = tree
        .root
        .join("kubepods.slice/kubepods-besteffort.slice")
        .join(format!(
            "kubepods-besteffort-pod{}.slice",
            UID.replace('-', "_")
        ));
    check(
        &mut tree,
        &pod,
        &format!("cri-containerd-{APP}.scope"),
        &format!("crio-{SIDE}.scope"),
    );
    let root = tree.root.clone();
    drop(tree);
    assert!(!root.exists(), "cgroups left behind");
}
