//! Privileged: pods laid out as kubelet does (cgroupfs driver on cgroup v1, systemd driver
//! with containerd and CRI-O on cgroup v2), each container a real process in its own
//! network namespace; the resolver must find exactly those processes, and the engine's
//! faults must act on them through the resulting members.

use murphy_operator::pods::{member, resolve, ContainerRef, ResolveError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

struct Tree {
    root: PathBuf,
    children: Vec<Child>,
}

impl Drop for Tree {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Remove the tree deepest first.
        let mut dirs = Vec::new();
        let mut stack = vec![self.root.clone()];
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

/// A process (in a new network namespace, as a container is) placed in `cgroup`.
fn container(tree: &mut Tree, cgroup: &Path) -> i32 {
    std::fs::create_dir_all(cgroup).expect("cgroup");
    let child = Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .expect("unshare");
    let pid = child.id() as i32;
    // unshare execs sleep in place: the pid stays the same.
    std::fs::write(cgroup.join("cgroup.procs"), pid.to_string()).expect("move");
    tree.children.push(child);
    pid
}

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
    let app = container(tree, &pod_dir.join(app_dir));
    let side = container(tree, &pod_dir.join(side_dir));
    // The pod's sandbox ("pause") has a cgroup of its own too.
    container(tree, &pod_dir.join("0123456789abcdef0123"));
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
    // The engine acts on the member: pausing it stops exactly the app's process.
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

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "privileged test: run as root (CI does)"
    );
}

#[test]
fn cgroupfs_driver_on_cgroup_v1() {
    require_root();
    let m = murphy::cgroup::Mounts::read();
    let base = m.v1_mount("pids").expect("v1 pids hierarchy").to_path_buf();
    let mut tree = Tree {
        root: base.join(format!("murphy-kubelet-{}", std::process::id())),
        children: vec![],
    };
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
    require_root();
    let m = murphy::cgroup::Mounts::read();
    let base = m.v2.clone().expect("a v2 hierarchy");
    let mut tree = Tree {
        root: base.join(format!("murphy-kubelet-{}", std::process::id())),
        children: vec![],
    };
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
