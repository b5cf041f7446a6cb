//! Privileged: a cluster run's record tells the truth about the fault's real life. A fault
//! whose agent stopped (and reverted it) mid-window ends there: the record says so and no
//! claim on its window holds — the false "held" a real node showed (a 90 s pause ended
//! 3 s in, the availability claim held at 99.7 %).

mod common;
use common::{resumed, state};
use murphy::model::spec::ExperimentSpec;
use murphy::record::RunStatus;
use murphy::verdict::Outcome;
use murphy_operator::grpc;
use murphy_operator::run::{ClusterRun, Placed, PodView};
use murphy_operator::select::{Chosen, PodInfo};
use std::collections::BTreeMap;
use std::time::Duration;

const UID: &str = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b";
const APP: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

fn spec() -> ExperimentSpec {
    serde_json::from_value(serde_json::json!({
        "targets": {"web": {"pods": {"namespace": "shop", "matchLabels": {"app": "web"}}}},
        "steadyState": {"duration": "0s"},
        "observeAfter": "0s",
        // Always healthy: without the fault's real life in the record this would hold.
        "probes": [{"name": "shop", "interval": "100ms", "command": {"argv": ["/bin/true"]}}],
        "faults": [{"name": "pause", "target": "web", "kind": "process-pause",
                    "method": "signal", "duration": "30s"}],
        "claims": [{"name": "the shop stays up", "availability": {"probe": "shop", "atLeast": "99%"}}]
    }))
    .expect("spec")
}

fn placed(addr: &str) -> Placed {
    let pod = PodInfo {
        namespace: "shop".into(),
        name: "web-0".into(),
        uid: UID.into(),
        node: Some("node-a".into()),
        labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        running: true,
        containers: vec!["app".into()],
        terminating: false,
        ip: None,
        created_unix: None,
        owner: None,
    };
    Placed {
        chosen: Chosen {
            pod,
            containers: vec!["app".into()],
        },
        containers: vec![("app".into(), APP.into())],
        addr: addr.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_whose_agent_stopped_mid_window_ends_there_and_nothing_holds_on_it() {
    let (tree, pid, dir) = common::pod_tree("early", UID, APP, None);
    let certs = murphy_operator::certs::generate("test-ca", "murphy-controller", "murphy-agent", 1)
        .expect("certs");
    let (addr, stop) =
        common::agent_on_loopback(&tree.root, &dir, &certs, Duration::from_millis(200)).await;
    let agents = grpc::Agents::new(
        grpc::client_tls(&certs.controller, "murphy-agent"),
        Duration::from_secs(2),
    );
    let mut run = ClusterRun::start(
        "uid-early",
        "shop/early",
        spec(),
        1,
        1_500,
        BTreeMap::from([("pause".to_string(), vec![placed(&addr)])]),
        &PodView::default(),
    )
    .expect("start");
    run.step(&agents).await;
    assert_eq!(state(pid), Some('T'), "injected: {:?}", run.faults[0]);
    assert!(run.faults[0].confirmed);

    // The agent stops 0.3 s into a 30 s window (and reverts what it holds, as it should).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(());
    assert!(resumed(pid), "the stopping agent reverted the pause");

    // The next renewal (a third into the 1.5 s lease) fails, or, on a slow machine, the
    // lease has lapsed by then: either way the window ends there.
    tokio::time::sleep(Duration::from_millis(400)).await;
    run.step(&agents).await;
    let early = run.faults[0]
        .ended_early
        .clone()
        .expect("the record says the fault ended early");
    assert!(early.reason.contains("lease"), "{}", early.reason);
    assert!(
        run.active_faults().is_empty(),
        "its window is closed, not kept open on the schedule"
    );

    let (record, verdicts) = run.finish(RunStatus::Completed, None);
    assert!(
        record.samples.iter().all(|s| s.ok),
        "the probe never failed"
    );
    assert_eq!(
        verdicts[0].outcome,
        Outcome::Inconclusive,
        "never held on a window the fault did not cover: {}",
        verdicts[0].reason
    );
    assert!(
        verdicts[0].reason.contains("stopped being in effect"),
        "{}",
        verdicts[0].reason
    );
    drop(tree);
    let _ = std::fs::remove_dir_all(&dir);
}
