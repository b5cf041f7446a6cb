//! Snapshots of generated artefacts (JUnit XML, the claims table, the run JSON shape) for a
//! fixed run record, so format changes are deliberate.

use murphy::claims::evaluate;
use murphy::history::{FinalRead, History, Op, OpResult};
use murphy::model::parse_experiment;
use murphy::report::{junit, table, RunReport};
use murphy::runner::RunOutput;
use murphy::timeline::{FaultRecord, Phases, RunRecord, RunStatus, Sample};

fn fixed() -> RunReport {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/experiments/quickstart.yaml"
    ))
    .expect("quickstart");
    let exp = parse_experiment(&src).expect("valid");
    let mut samples = Vec::new();
    for i in 0..150 {
        let t = f64::from(i) * 100.0;
        samples.push(Sample {
            probe: "site".into(),
            t_ms: t,
            ok: true,
            latency_ms: 0.5 + f64::from(i % 7) * 0.1,
            detail: String::new(),
        });
        let down = (3000.0..11100.0).contains(&t);
        samples.push(Sample {
            probe: "web1".into(),
            t_ms: t,
            ok: !down,
            latency_ms: 0.4,
            detail: if down {
                "connect 10.77.0.11:80: Connection refused".into()
            } else {
                String::new()
            },
        });
    }
    let record = RunRecord {
        samples,
        events: vec![],
        faults: vec![FaultRecord {
            name: "kill-web1".into(),
            kind: "process-kill".into(),
            target: "web1".into(),
            members: vec!["web1/nginx".into()],
            injected_ms: Some(3000.0),
            confirmed_ms: Some(3005.0),
            reverted_ms: Some(11000.0),
            confirmed: true,
            evidence: "pid 100, 101 no longer running".into(),
            error: None,
            inject_latency_ms: Some(5.0),
        }],
        histories: vec![],
        phases: Phases {
            steady_start_ms: 0.0,
            faults_start_ms: Some(2000.0),
            faults_end_ms: Some(11000.0),
            end_ms: 15000.0,
        },
        status: RunStatus::Completed,
        status_reason: None,
    };
    let verdicts = evaluate(&exp.spec.claims, &record);
    let mut r = RunReport::new(
        &exp,
        RunOutput {
            run_id: "0000abcd".into(),
            seed: 7,
            started_unix_ms: 0,
            record,
            verdicts,
        },
    );
    r.hostname = "host".into();
    r.murphy_version = "test".into();
    r
}

#[test]
fn junit_snapshot() {
    insta::assert_snapshot!(junit(&fixed()));
}

#[test]
fn claims_table_snapshot() {
    insta::assert_snapshot!(table(&fixed()));
}

#[test]
fn verdicts_json_snapshot() {
    insta::assert_json_snapshot!(fixed().verdicts);
}

/// The Redis partition experiment with a synthetic history: the pinned writer's writes to
/// the isolated primary are lost; the other writer fails over.
fn redis_fixed() -> RunReport {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/experiments/redis-sentinel-partition.yaml"
    ))
    .expect("redis experiment");
    let exp = parse_experiment(&src).expect("valid");
    let (r1, r3) = ("10.79.2.11:6379", "10.79.2.13:6379");
    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..200u64 {
        let t = i as f64 * 100.0;
        a.push(Op {
            id: i,
            value: format!("writer-a-{i:06}"),
            invoke_ms: t,
            complete_ms: t + 1.0,
            result: OpResult::Ok,
            endpoint: r1.into(),
            error: String::new(),
        });
        let (result, endpoint, error) = if t < 4000.0 {
            (OpResult::Ok, r1, "")
        } else if t < 4500.0 {
            (OpResult::Info, r1, "no reply from 10.79.2.11:6379 in time")
        } else if t < 5700.0 {
            (
                OpResult::Fail,
                r3,
                "READONLY You can't write against a read only replica.",
            )
        } else {
            (OpResult::Ok, r3, "")
        };
        b.push(Op {
            id: i,
            value: format!("writer-b-{i:06}"),
            invoke_ms: t,
            complete_ms: t + if result == OpResult::Info { 500.0 } else { 1.0 },
            result,
            endpoint: endpoint.into(),
            error: error.into(),
        });
    }
    let kept = |ops: &[Op], pred: &dyn Fn(&Op) -> bool| -> Vec<String> {
        ops.iter()
            .filter(|o| pred(o))
            .map(|o| o.value.clone())
            .collect()
    };
    let hist = |name: &str, ops: Vec<Op>, values: Vec<String>| History {
        workload: name.into(),
        client: "redis".into(),
        started_ms: 0.0,
        stopped_ms: 20_000.0,
        final_read: Some(FinalRead {
            ok: true,
            t_ms: 22_000.0,
            endpoint: r3.into(),
            values,
            attempts: 3,
            error: None,
        }),
        ops,
        notes: vec![],
    };
    let a_kept = kept(&a, &|o| o.invoke_ms < 4000.0);
    let b_kept = kept(&b, &|o| o.result == OpResult::Ok);
    let record = RunRecord {
        samples: vec![],
        events: vec![],
        faults: vec![FaultRecord {
            name: "isolate-primary".into(),
            kind: "network-partition".into(),
            target: "primary".into(),
            members: vec!["r1/redis".into()],
            injected_ms: Some(4000.0),
            confirmed_ms: Some(4010.0),
            reverted_ms: Some(14000.0),
            confirmed: true,
            evidence: "2 drop rule(s)".into(),
            error: None,
            inject_latency_ms: Some(10.0),
        }],
        histories: vec![hist("writer-a", a, a_kept), hist("writer-b", b, b_kept)],
        phases: Phases {
            steady_start_ms: 0.0,
            faults_start_ms: Some(2000.0),
            faults_end_ms: Some(14000.0),
            end_ms: 22_500.0,
        },
        status: RunStatus::Completed,
        status_reason: None,
    };
    let verdicts = evaluate(&exp.spec.claims, &record);
    let mut r = RunReport::new(
        &exp,
        RunOutput {
            run_id: "0000beef".into(),
            seed: 11,
            started_unix_ms: 0,
            record,
            verdicts,
        },
    );
    r.hostname = "host".into();
    r.murphy_version = "test".into();
    r
}

#[test]
fn lost_writes_table_snapshot() {
    let r = redis_fixed();
    let outcomes: Vec<_> = r.verdicts.iter().map(|v| v.outcome).collect();
    use murphy::claims::Outcome::*;
    assert_eq!(outcomes, vec![Failed, Held, Failed, Held]);
    assert_eq!(r.verdicts[0].lost_writes.len(), 160);
    assert_eq!(r.verdicts[0].lost_writes[0].value, "writer-a-000040");
    assert_eq!(r.verdicts[1].indeterminate_writes.len(), 5);
    insta::assert_snapshot!(table(&r));
}
