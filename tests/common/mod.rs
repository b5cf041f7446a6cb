//! Shared fixture for privileged tests: a lab of real namespaces and processes, torn down
//! in Drop, plus the "nothing left behind" assertions every test ends with.
#![allow(dead_code)]

use murphy::journal::Journal;
use murphy::lab::Lab;
use murphy::model::local::LabSpec;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

static N: AtomicU32 = AtomicU32::new(0);

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "privileged test: run as root (CI does)"
    );
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "murphy-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub fn lab_spec(yaml: &str) -> LabSpec {
    let v: serde_json::Value = serde_saphyr::from_str(yaml).expect("lab yaml");
    serde_json::from_value(v).expect("lab spec")
}

pub struct Fixture {
    pub lab: Option<Lab>,
    pub journal: Arc<Journal>,
    pub state: PathBuf,
    pub run_id: String,
}

impl Fixture {
    pub fn new(tag: &str, yaml: &str) -> Fixture {
        require_root();
        let state = temp_dir(tag);
        // The first six characters name the bridge and namespaces: make them differ
        // between the tests of one process.
        let run_id = format!(
            "{:02x}{:06x}",
            N.fetch_add(1, Ordering::SeqCst) & 0xff,
            std::process::id() & 0xff_ffff
        );
        let journal = Arc::new(Journal::create(&state, &run_id).expect("journal"));
        let lab = Lab::up(
            &lab_spec(yaml),
            &run_id,
            journal.clone(),
            Path::new(env!("CARGO_MANIFEST_DIR")),
            &state.join("logs"),
        )
        .expect("lab up");
        Fixture {
            lab: Some(lab),
            journal,
            state,
            run_id,
        }
    }
    pub fn lab(&self) -> &Lab {
        self.lab.as_ref().expect("lab")
    }
    pub fn teardown_and_assert_clean(&mut self) {
        if let Some(l) = self.lab.take() {
            l.teardown().expect("teardown");
        }
        assert_no_leftovers(&self.run_id);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(l) = self.lab.take() {
            let _ = l.teardown();
        }
    }
}

/// Nothing of run `run_id` survives: namespaces, links, cgroups.
pub fn assert_no_leftovers(run_id: &str) {
    let short: String = run_id.chars().take(6).collect();
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("murphy-{short}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        netns.is_empty(),
        "network namespaces left behind: {netns:?}"
    );
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.contains(&short))
                .collect()
        })
        .unwrap_or_default();
    assert!(links.is_empty(), "links left behind: {links:?}");
    let m = murphy::cgroup::Mounts::read();
    for c in ["memory", "cpu", "cpuacct", "freezer", "pids"] {
        if let Some(base) = m.base_for(c) {
            let d = base.join(format!("murphy-{run_id}"));
            assert!(!d.exists(), "cgroup left behind: {}", d.display());
        }
    }
}

/// nft tables named murphy_* in a named namespace (empty when the namespace is gone).
pub fn murphy_tables(netns: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "nft", "list", "tables"])
        .output()
        .expect("ip netns exec nft");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("murphy_"))
        .map(str::to_string)
        .collect()
}

pub fn cpu_ticks(pid: i32) -> u64 {
    murphy::procfs::stat(pid).map_or(0, |s| s.utime + s.stime)
}

// Running whole experiments from `experiments/` and reading their reports.

pub const MURPHY: &str = env!("CARGO_BIN_EXE_murphy");

pub struct Run {
    pub code: Option<i32>,
    pub report: Value,
    pub stdout: String,
    pub state: std::path::PathBuf,
}

pub fn run(file: &str) -> Run {
    require_root();
    let state = temp_dir("cluster");
    let json = state.join("run.json");
    let out = Command::new(MURPHY)
        .args(["run", file, "--quiet", "--state-dir"])
        .arg(&state)
        .arg("--json")
        .arg(&json)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("murphy run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e})\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let report: Value = serde_json::from_str(&text).expect("report JSON");
    let run_id = report["runId"].as_str().expect("runId").to_string();
    assert_no_leftovers(&run_id);
    assert_no_processes(&run_id);
    Run {
        code: out.status.code(),
        report,
        stdout,
        state,
    }
}

/// No process started for the run survives it (their command lines name the run's data
/// directory).
pub fn assert_no_processes(run_id: &str) {
    let needle = format!("runs/{run_id}/");
    let left: Vec<String> = murphy::procfs::all_pids()
        .into_iter()
        .filter_map(|p| murphy::procfs::cmdline(p).map(|c| (p, c)))
        .filter(|(_, c)| c.contains(&needle))
        .map(|(p, c)| format!("{p}: {c}"))
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

pub fn verdict<'a>(r: &'a Run, claim: &str) -> &'a Value {
    r.report["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .find(|v| v["claim"] == claim)
        .unwrap_or_else(|| panic!("no claim {claim:?}\n{}", r.stdout))
}

pub fn history<'a>(r: &'a Run, workload: &str) -> &'a Value {
    r.report["record"]["histories"]
        .as_array()
        .expect("histories")
        .iter()
        .find(|h| h["workload"] == workload)
        .expect("history")
}

/// Mappings in the range Murphy's in-process leak uses.
pub fn leak_mappings(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.split('-')
                .next()
                .and_then(|a| u64::from_str_radix(a, 16).ok())
                .is_some_and(|a| (0x1000_0000_0000..0x2000_0000_0000).contains(&a))
        })
        .map(str::to_string)
        .collect()
}

/// A child killed when the test ends, passed or not.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `murphy run <exp> --quiet --state-dir <state>` in the background, its output discarded.
pub fn spawn_run(exp: &Path, state: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_murphy"))
        .arg("run")
        .arg(exp)
        .arg("--quiet")
        .arg("--state-dir")
        .arg(state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn murphy run")
}

/// `murphy recover --state-dir <state>`, run to its end.
pub fn recover(state: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_murphy"))
        .arg("recover")
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("murphy recover")
}
