//! The cascade experiments in `experiments/` (issue: storage stalls, in-process memory
//! leaks and load surges), run for real against haproxy, Python backends and PostgreSQL
//! in lab namespaces, with their verdicts asserted. Each run must leave nothing behind:
//! no namespace, cgroup or process of the run (the storage tracer included).

mod common;
use common::*;
use serde_json::Value;

fn figure(v: &Value, name: &str) -> f64 {
    v["figures"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no figure {name} in {v}"))
}

fn events(r: &Run) -> String {
    r.report["record"]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_leaking_backend_cascades_when_the_others_lack_capacity() {
    let r = run("experiments/leak-cascade.yaml");
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    let ev = events(&r);
    assert!(
        ev.contains("OOM kill"),
        "the leak must end in an OOM kill:\n{ev}"
    );
    assert!(ev.contains("the target was killed"), "{ev}");
    // What the leak achieved is in the record beside what was asked.
    let achieved = &r.report["record"]["faults"][0]["achieved"];
    let asked = achieved["requestedBytesPerS"].as_f64().expect("asked");
    let rate = achieved["leakBytesPerS"].as_f64().expect("achieved rate");
    assert!(
        rate > asked * 0.5 && rate < asked * 1.5,
        "achieved {rate} B/s against {asked} B/s asked: {achieved}"
    );
    assert!(achieved["leakedBytes"].as_f64().expect("leaked") > 0.0);
    assert!(achieved["longestStopUs"].as_f64().expect("stop") > 0.0);
    let err = verdict(
        &r,
        "the site's error rate stays under 1% while web1 leaks and dies",
    );
    assert_eq!(err["outcome"], "failed", "{}", r.stdout);
    assert!(figure(err, "errorRate") > 0.05, "{err}");
    let flap = verdict(
        &r,
        "the surviving backends are not marked down (no cascade)",
    );
    assert_eq!(flap["outcome"], "failed", "{}", r.stdout);
    assert!(figure(flap, "changes") >= 2.0, "{flap}");
    assert!(ev.contains("marked DOWN"), "{ev}");
}

#[test]
fn a_leaking_backend_is_absorbed_with_n_plus_one_capacity() {
    let r = run("experiments/leak-cascade-n1.yaml");
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let ev = events(&r);
    assert!(
        ev.contains("OOM kill"),
        "the leak must end in an OOM kill:\n{ev}"
    );
    assert!(
        ev.contains("lb: app/web1 marked DOWN"),
        "haproxy must drain the dead backend:\n{ev}"
    );
    let flap = verdict(
        &r,
        "the surviving backends are not marked down (no cascade)",
    );
    assert_eq!(figure(flap, "changes"), 0.0, "{flap}");
    let err = verdict(
        &r,
        "the site's error rate stays under 1% while web1 leaks and dies",
    );
    assert_eq!(err["outcome"], "held", "{}", r.stdout);
}

#[test]
fn a_shared_storage_stall_takes_both_replicas_down() {
    let r = run("experiments/shared-storage-stall.yaml");
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    let v = verdict(
        &r,
        "the site stays available (at most 10% errors) while one storage system stalls",
    );
    assert_eq!(v["outcome"], "failed", "{}", r.stdout);
    assert!(figure(v, "errorRate") > 0.5, "{v}");
}

#[test]
fn independent_storage_survives_the_same_stall() {
    let r = run("experiments/shared-storage-independent.yaml");
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let v = verdict(
        &r,
        "the site stays available (at most 10% errors) while one storage system stalls",
    );
    assert_eq!(v["outcome"], "held", "{}", r.stdout);
    assert!(
        events(&r).contains("lb: app/app1 marked DOWN"),
        "{}",
        events(&r)
    );
}

#[test]
fn postgres_commits_hang_while_its_data_directory_stalls_then_resume() {
    let r = run("experiments/pg-storage-stall.yaml");
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    // The tracer's counts are in the record: it caught the data directory's syscalls.
    let achieved = &r.report["record"]["faults"][0]["achieved"];
    assert!(
        achieved["syscallsMatched"].as_f64().unwrap_or(0.0) > 0.0
            && achieved["threadsTraced"].as_f64().unwrap_or(0.0) > 0.0,
        "{achieved}"
    );
    let gap = verdict(
        &r,
        "commits keep going while the data directory stalls (no gap over 1s)",
    );
    assert_eq!(gap["outcome"], "failed", "{}", r.stdout);
    let longest = figure(gap, "longestGapMs");
    assert!(
        (3500.0..6000.0).contains(&longest),
        "the gap should be about the 4s stall: {gap}"
    );
    assert_eq!(
        verdict(&r, "no acknowledged order is lost")["outcome"],
        "held",
        "{}",
        r.stdout
    );
    assert_eq!(
        verdict(&r, "commits succeed again after the stall")["outcome"],
        "held",
        "{}",
        r.stdout
    );
    let h = history(&r, "orders");
    let unknown = h["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .filter(|o| o["result"] == "info")
        .count();
    assert!(
        unknown > 0,
        "commits sent during the stall must hang past the timeout"
    );
}

#[test]
fn a_surge_on_one_of_two_balancers_fails_the_share_claim_only() {
    let r = run("experiments/balancer-surge.yaml");
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    let share = verdict(
        &r,
        "neither balancer carries more than 65% of the traffic during the surge",
    );
    assert_eq!(share["outcome"], "failed", "{}", r.stdout);
    assert!(figure(share, "share lb1") > 0.8, "{share}");
    for claim in [
        "no backend serves more than 40% of lb1's traffic",
        "lb1 does not mark backends down and up during the surge",
        "lb2 does not mark backends down and up during the surge",
        "regular clients see under 1% errors during the surge",
    ] {
        assert_eq!(
            verdict(&r, claim)["outcome"],
            "held",
            "{claim}\n{}",
            r.stdout
        );
    }
}
