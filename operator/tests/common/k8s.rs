//! The real single-node Kubernetes of `shared/k8s` for the end-to-end tests and the node
//! benchmarks: bring it up (purged first), install the chart with Helm 4 from an image of
//! this build, and bring it down again whatever happened.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use serde_json::Value;

pub const SYSTEM: &str = "murphy-system";
pub const RELEASE: &str = "murphy";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

pub fn harness() -> Option<PathBuf> {
    let dir = std::env::var_os("MURPHY_K8S_LOCAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/k8s"));
    dir.join("up.sh").exists().then_some(dir)
}

pub fn venv_python() -> PathBuf {
    std::env::var_os("MURPHY_E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/murphy-e2e-venv/bin/python"))
}

/// The running node: its environment for kubectl and Helm. Dropping it uninstalls the
/// release and brings the node down, whatever happened.
pub struct Node {
    k8s: PathBuf,
    pub path: String,
    pub kubeconfig: String,
}

impl Node {
    pub fn up(k8s: &Path) -> Node {
        // A clean slate: nothing an earlier run left in the node's state.
        let _ = Command::new(k8s.join("down.sh")).arg("--purge").output();
        let out = Command::new(k8s.join("up.sh"))
            // The controller runs in a pod: the API server must answer on the Service IP.
            .env("K8S_LOCAL_API_BIND", "0.0.0.0")
            .output()
            .expect("up.sh");
        let env = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "up.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .map(|v| v.replace("\"$PATH\"", &std::env::var("PATH").unwrap_or_default()))
                .unwrap_or_else(|| panic!("up.sh printed no {name}: {env}"))
        };
        Node {
            k8s: k8s.to_path_buf(),
            path: var("PATH"),
            kubeconfig: var("KUBECONFIG"),
        }
    }

    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("PATH", &self.path)
            .env("KUBECONFIG", &self.kubeconfig)
            .current_dir(repo());
        c
    }

    /// The harness's kubectl (first on its PATH).
    pub fn kubectl_path(&self) -> PathBuf {
        PathBuf::from(self.path.split(':').next().unwrap_or("")).join("kubectl")
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let prog = if program == "kubectl" {
            self.kubectl_path()
        } else {
            PathBuf::from(program)
        };
        self.cmd(prog).args(args).output().expect("spawn")
    }

    /// kubectl, which must succeed; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.run("kubectl", args);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply` of `yaml`, which must succeed. While no controller answers the
    /// admission webhook (one replica restarting: killed by a scenario, or rolled by an
    /// upgrade) the API server refuses Experiments (`failurePolicy: Fail`); that, and only
    /// that, is retried for up to 90 s, as a user would.
    pub fn apply(&self, yaml: &str) {
        let file = std::env::temp_dir().join(format!("murphy-e2e-{}.yaml", std::process::id()));
        std::fs::write(&file, yaml).expect("write manifest");
        let path = file.to_string_lossy().into_owned();
        let t0 = std::time::Instant::now();
        loop {
            let out = self.run("kubectl", &["apply", "-f", &path]);
            if out.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if webhook_unavailable(&err) && t0.elapsed() < Duration::from_secs(90) {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            panic!("kubectl apply -f {path}: {err}");
        }
        let _ = std::fs::remove_file(&file);
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&a)).expect("kubectl json")
    }

    pub fn helm(&self, args: &[&str]) -> Output {
        self.cmd(venv_python())
            .arg(repo().join("scripts/helm.py"))
            .args(args)
            .output()
            .expect("helm.py")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.helm(&[
            "uninstall",
            RELEASE,
            "--namespace",
            SYSTEM,
            "--ignore-not-found",
            "--wait-seconds",
            "60",
        ]);
        let out = Command::new(self.k8s.join("down.sh"))
            .arg("--purge")
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!(
                    "e2e: down.sh left something: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// Wait until `f` gives something, or fail naming `what`.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every process on this machine in the pod with `uid` (kubelet's cgroup paths name it).
pub fn pod_pids(uid: &str) -> Vec<i32> {
    let under = uid.replace('-', "_");
    murphy::procfs::all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| {
                c.contains(&format!("pod{uid}")) || c.contains(&format!("pod{under}"))
            })
        })
        .collect()
}

/// Whether every process of the pod's app container is stopped by the kernel: the
/// freezer shows them in `D` (frozen) or `T` (stopped); the pause container is left alone.
pub fn app_stopped(uid: &str) -> Option<bool> {
    let pids: Vec<i32> = pod_pids(uid)
        .into_iter()
        .filter(|p| murphy::procfs::stat(*p).is_some_and(|s| s.comm != "pause"))
        .collect();
    if pids.is_empty() {
        return None;
    }
    Some(
        pids.iter()
            .all(|p| murphy::procfs::stat(*p).is_some_and(|s| matches!(s.state, 'D' | 'T' | 't'))),
    )
}

/// `scripts/e2e-image ARGS` (with the node's PATH for `ctr`), asserted to succeed.
pub fn e2e_image(node: Option<&Node>, args: &[&str]) {
    let mut cmd = Command::new(repo().join("scripts/e2e-image"));
    cmd.args(args);
    if let Some(n) = node {
        cmd.env("PATH", &n.path);
    }
    let out = cmd.output().expect("scripts/e2e-image");
    assert!(
        out.status.success(),
        "e2e-image {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart values of the e2e install (and of its upgrades): this build's image, imported
/// (never pulled), and one controller replica.
pub const E2E_VALUES: &[&str] = &[
    "--set",
    "image.repository=localhost/murphy-operator,image.tag=e2e,image.pullPolicy=Never",
    "--set",
    "controller.replicas=1",
];

pub fn install(node: &Node) {
    e2e_image(Some(node), &["import"]);
    node.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {SYSTEM}}}\n"
    ));
    let out = node.helm(&[
        "install",
        RELEASE,
        "charts/murphy",
        "--namespace",
        SYSTEM,
        "--wait-seconds",
        "180",
        E2E_VALUES[0],
        E2E_VALUES[1],
        E2E_VALUES[2],
        E2E_VALUES[3],
    ]);
    assert!(
        out.status.success(),
        "helm install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Build the operator's image from the binaries in `dir` (`murphy-operator` and `murphy`
/// of one build), from scratch with the tools the faults call.
pub fn build_image(dir: &Path) {
    assert!(
        dir.join("murphy").exists(),
        "build the workspace first (no {})",
        dir.join("murphy").display()
    );
    e2e_image(None, &["build", &dir.to_string_lossy()]);
}

/// The node up with the chart installed from an image of the binaries beside `bin` (this
/// build's `murphy-operator`), or `None`, said in one line by `who`, where the harness or
/// the Helm venv is absent.
pub fn up_with_operator(who: &str, bin: &Path) -> Option<Node> {
    let Some(k8s) = harness() else {
        eprintln!("{who}: skipped: no Kubernetes harness (set MURPHY_K8S_LOCAL or put shared/k8s beside the repository)");
        return None;
    };
    if !venv_python().exists() {
        eprintln!(
            "{who}: skipped: no Helm venv at {} (run scripts/e2e-venv)",
            venv_python().display()
        );
        return None;
    }
    super::require_root();
    // The image: this build's binaries, from scratch with the tools the faults call.
    build_image(bin.parent().expect("target dir"));
    let node = Node::up(&k8s);
    install(&node);
    Some(node)
}

/// The API server could not reach the admission webhook (no controller answering yet), as
/// opposed to the webhook's own refusal.
pub fn webhook_unavailable(stderr: &str) -> bool {
    stderr.contains("failed calling webhook")
}
