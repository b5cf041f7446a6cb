//! Kubelet-style pod cgroups with real processes for the privileged operator tests,
//! removed in Drop.
#![allow(dead_code)]

pub mod k8s;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

pub struct Tree {
    pub root: PathBuf,
    children: Vec<Child>,
}

impl Tree {
    /// A tree under the cgroup hierarchy `base`, named after this test process.
    pub fn new(base: &Path, tag: &str) -> Tree {
        require_root();
        Tree {
            root: base.join(format!("murphy-kubelet-{tag}-{}", std::process::id())),
            children: vec![],
        }
    }

    /// A process (in a new network namespace, as a container is) placed in `cgroup`.
    pub fn container(&mut self, cgroup: &Path) -> i32 {
        std::fs::create_dir_all(cgroup).expect("cgroup");
        let child = Command::new("unshare")
            .args(["--net", "sleep", "120"])
            .spawn()
            .expect("unshare");
        let pid = child.id() as i32;
        // unshare execs sleep in place: the pid stays the same.
        std::fs::write(cgroup.join("cgroup.procs"), pid.to_string()).expect("move");
        self.children.push(child);
        pid
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
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

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "privileged test: run as root (CI does)"
    );
}

pub fn state(pid: i32) -> Option<char> {
    murphy::procfs::stat(pid).map(|s| s.state)
}

/// Whether the process runs again (not stopped) within a second.
pub fn resumed(pid: i32) -> bool {
    murphy::fault::wait_for(std::time::Duration::from_secs(1), || {
        !matches!(state(pid), Some('T' | 't'))
    })
}

/// An in-process agent (the real engine) on a loopback port with mTLS, over pods in
/// `root`, journaling in `dir`. Returns its address and a stop switch.
pub async fn agent_on_loopback(
    root: &Path,
    dir: &Path,
    certs: &murphy_operator::certs::Set,
    tick: std::time::Duration,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    use murphy_operator::grpc;
    let (agent, _) = murphy_operator::agent::Agent::start(
        dir,
        "/bin/false".into(),
        vec![root.to_path_buf()],
        "loopback",
    )
    .expect("agent");
    let svc = grpc::AgentService::new("node-a", agent, Vec::new());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tls = certs.agent.clone();
    tokio::spawn(async move {
        grpc::serve(l, &tls, svc, tick, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    (addr, tx)
}

/// A kubelet-style pod, `kubepods/[<qos>/]pod<uid>/<container-id>`, in a fresh tree in the
/// v1 `pids` hierarchy with one process in it; and an empty scratch directory for the
/// agent's journal. Returns the tree, the process and the directory.
pub fn pod_tree(tag: &str, uid: &str, cid: &str, qos: Option<&str>) -> (Tree, i32, PathBuf) {
    let m = murphy::cgroup::Mounts::read();
    let base = m.v1_mount("pids").expect("v1 pids").to_path_buf();
    let mut tree = Tree::new(&base, tag);
    let mut dir = tree.root.join("kubepods");
    if let Some(q) = qos {
        dir = dir.join(q);
    }
    let pid = tree.container(&dir.join(format!("pod{uid}")).join(cid));
    let scratch = std::env::temp_dir().join(format!("murphy-op-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    (tree, pid, scratch)
}
