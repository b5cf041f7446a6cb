//! End-to-end runs of the real binary: the quickstart's asserted verdicts, and crashes
//! (SIGKILL while faults are active) cleaned up by the run's guardian, or by
//! `murphy recover` when the guardian died too.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MURPHY: &str = env!("CARGO_BIN_EXE_murphy");

#[test]
fn quickstart_runs_end_to_end_with_one_claim_held_and_one_failed() {
    require_root();
    let state = temp_dir("quickstart");
    let json = state.join("run.json");
    let junit = state.join("run.xml");
    let out = Command::new(MURPHY)
        .args([
            "run",
            "experiments/quickstart.yaml",
            "--quiet",
            "--state-dir",
        ])
        .arg(&state)
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("murphy run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit 1 = some claim failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let v = rep["verdicts"].as_array().expect("verdicts");
    assert_eq!(v[0]["outcome"], "held", "{stdout}");
    assert_eq!(v[2]["outcome"], "failed", "{stdout}");
    let rt = v[2]["figures"]["recoveryMs"].as_f64().expect("recoveryMs");
    assert!(
        (7500.0..11000.0).contains(&rt),
        "web1 comes back when the 8s fault is reverted, measured {rt}ms"
    );
    assert!(rep["record"]["faults"][0]["confirmed"]
        .as_bool()
        .expect("confirmed"));
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert_eq!(xml.matches("<testcase").count(), 3);
    assert_eq!(xml.matches("<failure").count(), 1, "{stdout}");
    assert!(stdout.contains("recovered in"), "{stdout}");
    let run_id = rep["runId"].as_str().expect("runId");
    assert_no_leftovers(run_id);
    assert!(
        !state
            .join("journal")
            .join(format!("{run_id}.jsonl"))
            .exists(),
        "journal removed after a clean run"
    );
}

#[test]
fn invalid_experiment_exits_3_and_names_the_field() {
    let dir = temp_dir("invalid");
    let f = dir.join("bad.yaml");
    std::fs::write(&f, "apiVersion: murphy.dev/v1alpha1\nkind: Experiment\nmetadata: {name: x}\nspec:\n  probes:\n    - {name: p, tcp: {adress: \"1.2.3.4:5\"}}\n").expect("write");
    let out = Command::new(MURPHY)
        .arg("run")
        .arg(&f)
        .arg("--state-dir")
        .arg(&dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("6:") && err.contains("spec.probes[0].tcp.adress"),
        "{err}"
    );
    assert!(
        !dir.join("journal").exists(),
        "nothing started for an invalid file"
    );
}

fn journal_text(state: &Path) -> String {
    let mut s = String::new();
    if let Ok(rd) = std::fs::read_dir(state.join("journal")) {
        for e in rd.flatten() {
            if e.path().extension().is_none_or(|x| x != "jsonl") {
                continue;
            }
            s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    s
}

/// Wait until every needle is in the run's journal: the faults they stand for are applied.
fn wait_for_journal(state: &Path, needles: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = journal_text(state);
        if needles.iter().all(|n| text.contains(n)) {
            return;
        }
        assert!(Instant::now() < deadline, "faults never started: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const CRASH: &str = r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: crash}
spec:
  lab:
    subnet: 10.78.9.0/24
    hosts:
      - name: a
        processes: [{name: busy, argv: [md5sum, /dev/zero]}]
      - name: b
        processes: [{name: idle, argv: [sleep, "600"]}]
  targets:
    a: {lab: a/busy}
    b: {lab: b}
  probes:
    - {name: p, command: {argv: ["true"]}, interval: 200ms}
  steadyState: {duration: 500ms}
  faults:
    - {name: cut, kind: network-partition, target: b, at: 0s, duration: 60s}
    - {name: freeze, kind: process-pause, target: a, at: 0s, duration: 60s}
  claims:
    - {name: c, availability: {probe: p, atLeast: "50%"}}
"#;

/// Start the crash experiment and return once both faults are applied: the runner and its
/// run id.
fn crash_run(state: &Path) -> (std::process::Child, String) {
    let exp = state.join("crash.yaml");
    std::fs::write(&exp, CRASH).expect("write");
    let child = spawn_run(&exp, state);
    wait_for_journal(state, &["delete-nft-table", "\"thaw\""]);
    std::thread::sleep(Duration::from_millis(500));
    let text = journal_text(state);
    let run_id = text
        .split("murphy-")
        .nth(1)
        .and_then(|s| s.get(..8))
        .expect("run id in journal")
        .to_string();
    (child, run_id)
}

/// What the crash experiment leaves while it runs, or after a crash nobody cleaned up.
fn crash_leftovers(run_id: &str) -> Vec<String> {
    let short = &run_id[..6];
    let mut left = Vec::new();
    for h in ["a", "b"] {
        let ns = format!("murphy-{short}-{h}");
        if Path::new("/run/netns").join(&ns).exists() {
            left.push(format!("netns {ns} (nft tables: {:?})", murphy_tables(&ns)));
        }
    }
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().contains(short) {
                left.push(format!("link {}", e.file_name().to_string_lossy()));
            }
        }
    }
    let m = murphy::cgroup::Mounts::read();
    for c in ["memory", "cpu", "cpuacct", "freezer", "pids"] {
        if let Some(base) = m.base_for(c) {
            if let Ok(rd) = std::fs::read_dir(base) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().contains(run_id) {
                        left.push(format!("cgroup {}", e.path().display()));
                    }
                }
            }
        }
    }
    for p in murphy::procfs::all_pids() {
        if murphy::procfs::stat(p).is_some_and(|s| s.state == 'Z') {
            continue; // reaped by whoever adopted it; it holds nothing
        }
        if let Some(c) = murphy::procfs::cmdline(p) {
            if c == "md5sum /dev/zero" || c == "sleep 600" {
                left.push(format!("lab process {p}: {c}"));
            }
        }
    }
    left
}

/// The guardian of the run in `state` (its pid), if it is running.
fn guardian_of(state: &Path) -> Option<i32> {
    let needle = format!("__guard --state-dir {}", state.display());
    murphy::procfs::all_pids().into_iter().find(|p| {
        murphy::procfs::cmdline(*p).is_some_and(|c| c.contains(&needle))
            && murphy::procfs::stat(*p).is_some_and(|s| s.state != 'Z')
    })
}

/// The dead-man switch: SIGKILL the runner alone while a partition and a freeze are in
/// effect; without anyone running `recover`, its guardian undoes both and takes the lab
/// down within 2 s, and says so in its log.
#[test]
fn sigkill_of_the_runner_its_guardian_leaves_nothing_behind_within_2s() {
    require_root();
    let state = temp_dir("guarded");
    let (mut child, run_id) = crash_run(&state);
    assert!(
        !crash_leftovers(&run_id).is_empty(),
        "the faults and the lab are in place before the kill"
    );
    let guardian = guardian_of(&state).expect("a guardian watches the run");
    child.kill().expect("SIGKILL the runner");
    let killed = Instant::now();
    child.wait().expect("reap");
    let mut left = crash_leftovers(&run_id);
    while !left.is_empty() && killed.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        left = crash_leftovers(&run_id);
    }
    assert!(
        left.is_empty(),
        "left 2 s after the kill: {left:?}\nguardian log: {}",
        std::fs::read_to_string(state.join(format!("journal/{run_id}.guardian.log")))
            .unwrap_or_default()
    );
    assert_no_leftovers(&run_id);
    let deadline = Instant::now() + Duration::from_secs(2);
    while guardian_of(&state) == Some(guardian) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(
        guardian_of(&state),
        Some(guardian),
        "the guardian exits after"
    );
    let log = std::fs::read_to_string(state.join(format!("journal/{run_id}.guardian.log")))
        .expect("guardian log");
    assert!(
        log.contains("thawed") && log.contains("everything undone"),
        "{log}"
    );
    assert!(
        journal_text(&state).is_empty(),
        "journal replayed and removed"
    );
    let again = recover(&state);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to recover"));
}

/// The limit of the dead-man switch: the guardian SIGKILLed first, then the runner. The
/// faults stay (so this test can fail), and `murphy recover` undoes them.
#[test]
fn sigkill_of_the_runner_and_its_guardian_then_recover_leaves_nothing_behind() {
    require_root();
    let state = temp_dir("crash");
    let (mut child, run_id) = crash_run(&state);
    let guardian = guardian_of(&state).expect("a guardian watches the run");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(guardian),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the guardian");
    child.kill().expect("SIGKILL the runner");
    child.wait().expect("reap");
    std::thread::sleep(Duration::from_millis(500));
    let short = &run_id[..6];
    assert!(
        Path::new(&format!("/run/netns/murphy-{short}-b")).exists(),
        "crash left the lab"
    );
    assert_eq!(
        murphy_tables(&format!("murphy-{short}-b")).len(),
        1,
        "crash left the partition"
    );
    let out = recover(&state);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "recover failed: {said}");
    assert!(
        said.contains("deleted nft table") || said.contains("went with it"),
        "{said}"
    );
    assert!(said.contains("thawed"), "{said}");
    assert_no_leftovers(&run_id);
    let left = crash_leftovers(&run_id);
    assert!(left.is_empty(), "{left:?}");
    // A second recover has nothing to do.
    let again = recover(&state);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to recover"));
}

/// Two experiments at once on one machine and a `murphy recover` beside them: recover
/// skips both live runs (naming them), touches none of their faults, and both finish
/// clean with nothing left behind.
#[test]
fn two_live_runs_and_a_recover_leave_both_runs_intact() {
    require_root();
    let state = temp_dir("owned");
    let spec = |name: &str, subnet: &str, fault: &str| {
        format!(
            r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec:
  lab:
    subnet: {subnet}
    hosts:
      - name: a
        processes: [{{name: idle, argv: [sleep, "600"]}}]
  targets:
    a: {{lab: a}}
  probes:
    - {{name: p, command: {{argv: ["true"]}}, interval: 200ms}}
  steadyState: {{duration: 500ms}}
  faults:
    - {{name: f, kind: {fault}, target: a, at: 0s, duration: 5s}}
  claims:
    - {{name: c, availability: {{probe: p, atLeast: "50%"}}}}
"#
        )
    };
    let mut runs = Vec::new();
    for (name, subnet, fault) in [
        ("one", "10.78.11.0/24", "network-partition"),
        ("two", "10.78.12.0/24", "process-pause"),
    ] {
        let file = state.join(format!("{name}.yaml"));
        std::fs::write(&file, spec(name, subnet, fault)).expect("write");
        runs.push(
            Command::new(MURPHY)
                .arg("run")
                .arg(&file)
                .arg("--quiet")
                .arg("--state-dir")
                .arg(&state)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn"),
        );
    }
    wait_for_journal(&state, &["delete-nft-table", "\"thaw\""]);
    let out = recover(&state);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert_eq!(
        said.matches("skipped: its run is still running").count(),
        2,
        "both live runs named and left alone: {said}"
    );
    assert!(
        !said.contains("undone"),
        "recover touched a live run: {said}"
    );
    for child in runs {
        let o = child.wait_with_output().expect("wait");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(0), "the run finished clean: {text}");
        assert!(!text.contains("TEARDOWN INCOMPLETE"), "{text}");
    }
    assert!(
        journal_text(&state).is_empty(),
        "both journals finished: {}",
        journal_text(&state)
    );
}

/// `guardrails.allowPaths` in a run: lab placeholders in it are resolved as in the
/// faults' paths, a data fault inside runs (and reverts exactly), and one whose path leads
/// out through a symlink made mid-run is not injected, naming the guardrail, with the file
/// outside untouched.
#[test]
fn allow_paths_bound_a_runs_data_faults_once_symlinks_are_resolved() {
    require_root();
    let state = temp_dir("allowpaths");
    let outside = state.join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("secret"), b"do not touch\n").expect("secret");
    let exp = state.join("allow.yaml");
    std::fs::write(
        &exp,
        format!(
            r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {{name: allow}}
spec:
  lab:
    subnet: 10.78.14.0/24
    hosts:
      - name: a
        processes: [{{name: idle, argv: [sleep, "600"], files: {{keep.txt: "kept\n"}}}}]
  targets:
    a: {{lab: a}}
  probes:
    - {{name: p, command: {{argv: ["true"]}}, interval: 200ms}}
  steadyState: {{duration: 500ms}}
  faults:
    - {{name: inside, kind: data-wipe, target: a, at: 0s, duration: 2s, paths: ["{{data:a}}/keep.txt"]}}
    - {{name: outside, kind: data-corrupt, target: a, at: 1s, duration: 1s, paths: ["{{data:a}}/escape/secret"]}}
  steps:
    - {{name: link, at: 0s, argv: [ln, -s, "{outside}", "{{data:a}}/escape"]}}
  guardrails: {{allowPaths: ["{{data:a}}"]}}
  claims:
    - {{name: c, availability: {{probe: p, atLeast: "50%"}}}}
"#,
            outside = outside.display()
        ),
    )
    .expect("write");
    let json = state.join("out.json");
    let out = Command::new(MURPHY)
        .arg("run")
        .arg(&exp)
        .arg("--quiet")
        .arg("--state-dir")
        .arg(&state)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(5), "nothing left behind: {said}");
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let faults = rep["record"]["faults"].as_array().expect("faults");
    let by = |n: &str| {
        faults
            .iter()
            .find(|f| f["name"] == n)
            .cloned()
            .expect("fault")
    };
    assert_eq!(by("inside")["confirmed"], true, "{}", by("inside"));
    assert!(by("inside")["error"].is_null(), "{}", by("inside"));
    let why = by("outside")["error"].to_string();
    assert!(
        why.contains("guardrails.allowPaths") && why.contains("outside/secret"),
        "{why}"
    );
    assert_eq!(
        std::fs::read(outside.join("secret")).expect("secret"),
        b"do not touch\n"
    );
    let run_id = rep["runId"].as_str().expect("run id").to_string();
    assert_no_leftovers(&run_id);
}

/// A revert that cannot complete is never a clean ending: a wiped directory replaced by a
/// file mid-fault cannot be restored, so the run exits 5 ("left behind"), its table and
/// JSON name what is left and the `recover` command, and once the obstacle is gone
/// `murphy recover --run ID` puts the exact bytes back.
#[test]
fn a_revert_that_cannot_complete_exits_5_naming_what_is_left() {
    require_root();
    let state = temp_dir("leftbehind");
    let victim = state.join("victim");
    let dir = victim.join("dir");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("f1"), b"first\n").expect("f1");
    std::fs::write(dir.join("f2"), b"second\n").expect("f2");
    let exp = state.join("left.yaml");
    let d = dir.display();
    std::fs::write(
        &exp,
        format!(
            r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {{name: left}}
spec:
  lab:
    subnet: 10.78.13.0/24
    hosts:
      - name: a
        processes: [{{name: idle, argv: [sleep, "600"]}}]
  targets:
    a: {{lab: a}}
  probes:
    - {{name: p, command: {{argv: ["true"]}}, interval: 200ms}}
  steadyState: {{duration: 500ms}}
  faults:
    - {{name: wipe, kind: data-wipe, target: a, at: 0s, duration: 3s, paths: ["{d}/*"]}}
  steps:
    - {{name: gone, at: 1s, argv: [rm, -rf, "{d}"]}}
    - {{name: file, at: 1500ms, argv: [touch, "{d}"]}}
  claims:
    - {{name: c, availability: {{probe: p, atLeast: "50%"}}}}
"#
        ),
    )
    .expect("write");
    let json = state.join("out.json");
    let out = Command::new(MURPHY)
        .arg("run")
        .arg(&exp)
        .arg("--quiet")
        .arg("--state-dir")
        .arg(&state)
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(state.join("out.xml"))
        .arg("--summary")
        .arg(state.join("out.md"))
        .arg("--html")
        .arg(state.join("out.html"))
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "left behind: {said}");
    // Every report says so, not only the terminal and the exit code.
    for (file, mark) in [
        ("out.xml", "type=\"left-behind\""),
        ("out.md", "**LEFT BEHIND**"),
        ("out.html", "LEFT BEHIND:"),
    ] {
        let text = std::fs::read_to_string(state.join(file)).expect("report");
        assert!(
            text.contains(mark)
                && text.contains("fault wipe")
                && text.contains("murphy recover --run"),
            "{file}: {text}"
        );
    }
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let run_id = rep["runId"].as_str().expect("run id").to_string();
    let left = rep["record"]["leftBehind"].to_string();
    assert!(left.contains("fault wipe"), "{left}");
    assert!(
        said.contains("LEFT BEHIND") && said.contains(&format!("murphy recover --run {run_id}")),
        "{said}"
    );
    assert_eq!(rep["exitCode"], 5, "the JSON says so too");
    // The obstacle goes; recover puts the exact originals back.
    std::fs::remove_file(&dir).expect("the file in the way");
    let rec = Command::new(MURPHY)
        .args(["recover", "--run", &run_id, "--state-dir"])
        .arg(&state)
        .output()
        .expect("recover");
    let said = String::from_utf8_lossy(&rec.stdout);
    assert!(rec.status.success(), "{said}");
    assert_eq!(std::fs::read(dir.join("f1")).expect("f1"), b"first\n");
    assert_eq!(std::fs::read(dir.join("f2")).expect("f2"), b"second\n");
    assert_no_leftovers(&run_id);
}

#[test]
fn guardrail_aborts_and_reverts_within_a_probe_interval() {
    require_root();
    let state = temp_dir("abort");
    let exp = state.join("abort.yaml");
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart/nginx.conf");
    std::fs::write(
        &exp,
        format!(
            r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {{name: abort}}
spec:
  lab:
    subnet: 10.78.10.0/24
    hosts:
      - name: web
        address: 10.78.10.20
        processes:
          - name: nginx
            argv: [nginx, -p, /tmp, -e, stderr, -c, "{}", -g, "daemon off; pid /run/murphy-abort-test.pid;"]
            ready: {{http: {{url: "http://10.78.10.20/"}}}}
  targets:
    web: {{lab: web}}
  probes:
    - {{name: site, http: {{url: "http://10.78.10.20/"}}, interval: 100ms, timeout: 200ms}}
  steadyState: {{duration: 1s}}
  faults:
    - {{name: cut, kind: network-partition, target: web, at: 0s, duration: 60s}}
  claims:
    - {{name: anything, availability: {{probe: site, atLeast: "0%", window: whole}}}}
  guardrails: {{abortWhen: [{{probe: site, failingFor: 1s}}]}}
"#,
            conf.display()
        ),
    )
    .expect("write");
    let json = state.join("run.json");
    let t0 = Instant::now();
    let out = Command::new(MURPHY)
        .arg("run")
        .arg(&exp)
        .arg("--quiet")
        .arg("--state-dir")
        .arg(&state)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the 60s fault was cut short"
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "aborted runs exit 2: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(rep["record"]["status"], "aborted");
    assert_eq!(
        rep["verdicts"][0]["outcome"], "inconclusive",
        "an aborted run never holds a claim"
    );
    let f = &rep["record"]["faults"][0];
    let (inj, rev) = (
        f["injectedMs"].as_f64().expect("inj"),
        f["revertedMs"].as_f64().expect("rev"),
    );
    // failing for 1s, plus at most one probe interval (100ms) and the sample's own timeout (200ms)
    assert!(
        rev - inj < 1000.0 + 100.0 + 200.0 + 300.0,
        "reverted {:.0}ms after injection",
        rev - inj
    );
    assert_no_leftovers(rep["runId"].as_str().expect("runId"));
}

#[test]
fn sigterm_during_a_fault_reverts_tears_down_and_exits_2() {
    require_root();
    let state = temp_dir("sigterm");
    let exp = state.join("term.yaml");
    std::fs::write(
        &exp,
        r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: term}
spec:
  lab:
    subnet: 10.78.11.0/24
    hosts:
      - name: a
        processes: [{name: idle, argv: [sleep, "600"]}]
  targets:
    a: {lab: a}
  probes:
    - {name: p, command: {argv: ["true"]}, interval: 100ms}
  steadyState: {duration: 500ms}
  faults:
    - {name: cut, kind: network-partition, target: a, at: 0s, duration: 60s}
  claims:
    - {name: c, availability: {probe: p, atLeast: "50%"}}
"#,
    )
    .expect("write");
    let json = state.join("run.json");
    let child = Command::new(MURPHY)
        .arg("run")
        .arg(&exp)
        .arg("--quiet")
        .arg("--state-dir")
        .arg(&state)
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for_journal(&state, &["delete-nft-table"]);
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(2), "interrupted runs exit 2");
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(rep["record"]["status"], "interrupted");
    assert!(
        rep["record"]["faults"][0]["revertedMs"].as_f64().is_some(),
        "the fault was reverted"
    );
    assert_no_leftovers(rep["runId"].as_str().expect("runId"));
    assert!(
        !journal_text(&state).contains("delete-nft-table"),
        "journal removed: nothing left to recover"
    );
}

#[test]
fn trials_aggregate_per_claim_and_reports_render() {
    require_root();
    let state = temp_dir("trials");
    let json = state.join("trials.json");
    let html = state.join("report.html");
    let md = state.join("summary.md");
    let out = Command::new(MURPHY)
        .args([
            "run",
            "experiments/quickstart.yaml",
            "--quiet",
            "--trials",
            "2",
            "--state-dir",
        ])
        .arg(&state)
        .arg("--json")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .arg("--summary")
        .arg(&md)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("murphy run --trials");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the recovery claim fails in every trial\n{stdout}"
    );
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(rep["trials"].as_array().map(Vec::len), Some(2));
    let seeds: Vec<u64> = rep["trials"]
        .as_array()
        .expect("trials")
        .iter()
        .map(|t| t["seed"].as_u64().expect("seed"))
        .collect();
    assert_eq!(seeds, vec![7, 8], "spec seed, then seed+1");
    let claims = rep["claims"].as_array().expect("claims");
    assert_eq!(claims[0]["verdict"], "held", "{stdout}");
    assert_eq!(claims[2]["verdict"], "failed", "{stdout}");
    assert_eq!(claims[2]["failed"], 2);
    let rec = &claims[2]["figures"]["recoveryMs"];
    assert_eq!(rec["n"], 2);
    assert!(rec["min"].as_f64().expect("min") >= 7500.0);
    assert!(stdout.contains("over 2 trial(s)"), "{stdout}");
    for i in 1..=2 {
        let page = std::fs::read_to_string(state.join(format!("report-{i}.html")))
            .expect("html per trial");
        assert!(page.contains("<svg") && page.contains("web1 itself recovers within 2s"));
    }
    let summary = std::fs::read_to_string(&md).expect("markdown");
    assert!(
        summary.contains("| ❌ failed | web1 itself recovers within 2s | 0/2 |"),
        "{summary}"
    );

    // `murphy report` renders a saved run; a file that is not a run report is refused.
    let one = serde_json::to_string(&rep["trials"][0]).expect("one run");
    let run_json = state.join("run.json");
    std::fs::write(&run_json, one).expect("write");
    let page = state.join("again.html");
    let st = Command::new(MURPHY)
        .arg("report")
        .arg(&run_json)
        .arg("-o")
        .arg(&page)
        .status()
        .expect("murphy report");
    assert!(st.success());
    assert!(std::fs::read_to_string(&page)
        .expect("html")
        .contains("Timeline"));
    let st = Command::new(MURPHY)
        .arg("report")
        .arg(&json)
        .status()
        .expect("murphy report on a trials file");
    assert_eq!(st.code(), Some(3));
}

/// A reader that goes away (`murphy ... | head`) ends the output, never in a panic: the
/// command still exits with its own code.
#[test]
fn a_closed_pipe_is_no_panic() {
    for args in [
        vec!["schema"],
        vec!["validate", "experiments/quickstart.yaml"],
    ] {
        let mut child = Command::new(MURPHY)
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take()); // the reader is gone before a byte is read
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
