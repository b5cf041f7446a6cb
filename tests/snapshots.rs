//! Snapshots of generated artefacts (JUnit XML, the claims table, the run JSON shape) for a
//! fixed run record, so format changes are deliberate.

use murphy::claims::evaluate;
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
