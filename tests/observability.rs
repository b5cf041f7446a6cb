//! Evidence where teams already look: `prometheus` claims judged from a real Prometheus
//! (Debian's) scraping a real exporter (etcd) in the lab, and Grafana annotations posted to
//! a small real HTTP endpoint that records what it receives.

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// One request as the endpoint received it.
#[derive(Clone, Debug)]
struct Received {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 endpoint on 127.0.0.1 answering every request with `status` and a JSON
/// body, keeping each request; its base URL and what it received.
fn endpoint(status: u16) -> (String, Arc<Mutex<Vec<Received>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut s) = conn else { continue };
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim().split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            keep.lock().expect("lock").push(Received {
                line: line.trim().to_string(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let answer = if status == 200 {
                format!(r#"{{"id":{n},"message":"Annotation added"}}"#)
            } else {
                r#"{"message":"invalid API key"}"#.to_string()
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, got)
}

fn run_with(file: &str, args: &[&str], token: &str) -> (Run, String) {
    require_root();
    let state = temp_dir("observability");
    let json = state.join("run.json");
    let out = Command::new(MURPHY)
        .args(["run", file, "--quiet", "--state-dir"])
        .arg(&state)
        .arg("--json")
        .arg(&json)
        .args(args)
        .env("MURPHY_GRAFANA_TOKEN", token)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("murphy run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON report ({e})\n{stdout}\n{stderr}"));
    let report: Value = serde_json::from_str(&text).expect("report JSON");
    let run_id = report["runId"].as_str().expect("runId").to_string();
    assert_no_leftovers(&run_id);
    assert_no_processes(&run_id);
    (
        Run {
            code: out.status.code(),
            report,
            stdout,
            state,
        },
        stderr,
    )
}

#[test]
fn prometheus_claims_are_judged_from_a_real_prometheus_and_the_windows_reach_grafana() {
    let (url, got) = endpoint(200);
    let (r, stderr) = run_with(
        "experiments/prometheus-slo.yaml",
        &["--annotate", &url],
        "t0ken",
    );
    assert_eq!(r.code, Some(1), "a claim failed\n{}\n{stderr}", r.stdout);
    let fault = &r.report["record"]["faults"][0];
    let (confirmed, reverted) = (
        fault["confirmedMs"].as_f64().expect("confirmed"),
        fault["revertedMs"].as_f64().expect("reverted"),
    );
    let kept = r.report["record"]["prometheus"]
        .as_array()
        .expect("the queries are kept in the record");
    assert_eq!(kept.len(), 3, "{kept:?}");
    for q in kept {
        // Asked over the window the fault was in effect, as confirmed.
        assert!(
            (q["startMs"].as_f64().expect("start") - confirmed).abs() < 1.0,
            "{q}"
        );
        assert!(
            (q["endMs"].as_f64().expect("end") - reverted).abs() < 1.0,
            "{q}"
        );
        assert!(q.get("error").is_none(), "{q}");
    }

    // Prometheus' own scrapes are untouched by etcd's freeze: every step has up == 1.
    let own = verdict(&r, "Prometheus keeps scraping itself while etcd is frozen");
    assert_eq!(own["outcome"], "held", "{}", r.stdout);
    assert_eq!(own["figures"]["steps"], own["figures"]["stepsWithData"]);
    assert_eq!(own["figures"]["worst"], 1.0);

    // The scrapes of the frozen etcd time out: Prometheus writes up == 0.
    let up = verdict(&r, "etcd stays scrapable while it is frozen");
    assert_eq!(up["outcome"], "failed", "{}", r.stdout);
    assert_eq!(up["figures"]["worst"], 0.0);
    assert!(
        up["figures"]["outOfBound"].as_f64().expect("n") >= 2.0,
        "{up}"
    );
    assert!(
        up["reason"]
            .as_str()
            .expect("reason")
            .contains(r#"job="etcd""#),
        "{up}"
    );

    // etcd's own gauge goes stale once its scrape fails: every value seen is fine, but
    // the window is not covered, so it cannot hold.
    let leader = verdict(&r, "etcd reports a leader all through the freeze");
    assert_eq!(leader["outcome"], "inconclusive", "{}", r.stdout);
    let (steps, with) = (
        leader["figures"]["steps"].as_f64().expect("steps"),
        leader["figures"]["stepsWithData"].as_f64().expect("with"),
    );
    assert!(with >= 1.0 && with < steps, "{leader}");
    assert!(
        leader["reason"]
            .as_str()
            .expect("reason")
            .contains("does not cover the window"),
        "{leader}"
    );

    // A probe asking Prometheus (an instant query per sample) saw etcd's scrapes fail
    // during the freeze and work again after the thaw.
    let scraped: Vec<&Value> = r.report["record"]["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["probe"] == "etcd-scraped")
        .collect();
    let during = |s: &&&Value| {
        let t = s["tMs"].as_f64().expect("t");
        t > confirmed + 2000.0 && t < reverted
    };
    assert!(
        scraped.iter().filter(during).all(|s| s["ok"] == false),
        "{scraped:?}"
    );
    assert!(scraped.iter().filter(during).any(|s| s["detail"]
        .as_str()
        .is_some_and(|d| d.contains("is not ≥ 1"))));
    let back = verdict(
        &r,
        "etcd is scraped again within 8s of the freeze (5s of it frozen)",
    );
    assert_eq!(back["outcome"], "held", "{}", r.stdout);
    let ms = back["figures"]["recoveryMs"].as_f64().unwrap_or(0.0);
    assert!((5000.0..8000.0).contains(&ms), "{back}");

    // Grafana got the fault's window and the verdict, with the token.
    assert!(stderr.contains("annotations: 2 posted"), "{stderr}");
    let got = got.lock().expect("lock").clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let start = r.report["startedUnixMs"].as_u64().expect("started");
    for g in &got {
        assert_eq!(g.line, "POST /api/annotations HTTP/1.1");
        assert_eq!(g.header("authorization"), Some("Bearer t0ken"));
        assert!(g
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")));
    }
    let window: Value = serde_json::from_str(&got[0].body).expect("JSON");
    assert_eq!(window["time"], start + confirmed.round() as u64, "{window}");
    assert_eq!(
        window["timeEnd"],
        start + reverted.round() as u64,
        "{window}"
    );
    let tags: Vec<&str> = window["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for t in [
        "murphy",
        "experiment:prometheus-slo",
        "fault:freeze-kv",
        "kind:process-pause",
    ] {
        assert!(tags.contains(&t), "{tags:?}");
    }
    assert!(window["text"]
        .as_str()
        .expect("text")
        .contains("in effect on kv/etcd"));
    let end: Value = serde_json::from_str(&got[1].body).expect("JSON");
    assert!(end.get("timeEnd").is_none(), "{end}");
    assert!(
        end["tags"]
            .as_array()
            .expect("tags")
            .contains(&Value::from("verdict:failed")),
        "{end}"
    );
    assert!(end["text"]
        .as_str()
        .expect("text")
        .contains("2 held, 1 failed, 1 inconclusive"));

    // The same run's annotations, posted later from its JSON to a Grafana that refuses
    // the token: said on stderr, the exit code is the report's own.
    let (refusing, asked) = endpoint(401);
    let out = Command::new(MURPHY)
        .args(["report"])
        .arg(r.state.join("run.json"))
        .args(["--annotate", &refusing, "--annotate-dashboard", "abc"])
        .env("MURPHY_GRAFANA_TOKEN", "wrong")
        .output()
        .expect("murphy report");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("annotations not posted")
            && err.contains("HTTP 401")
            && err.contains("invalid API key"),
        "{err}"
    );
    let asked = asked.lock().expect("lock").clone();
    assert_eq!(asked.len(), 1, "stops at the first refusal");
    let first: Value = serde_json::from_str(&asked[0].body).expect("JSON");
    assert_eq!(first["dashboardUID"], "abc");
}

#[test]
fn a_prometheus_claim_is_refused_when_its_fields_are_wrong_and_on_a_cluster() {
    let dir = temp_dir("prom-validate");
    let f = dir.join("bad.yaml");
    std::fs::write(
        &f,
        r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: bad}
spec:
  targets:
    web: {pods: {namespace: shop, matchLabels: {app: web}}}
  probes:
    - {name: p, http: {url: "http://10.0.0.1/"}}
  faults:
    - {name: f, target: web, kind: process-pause, at: 1s, duration: 2s}
  claims:
    - name: both bounds
      prometheus: {url: "http://u:p@prom:9090", query: "up", atMost: 1, atLeast: 0, step: 10ms, tokenEnv: "lower"}
    - name: fine
      prometheus: {url: "http://prom:9090", query: "up", atLeast: 1, fault: f}
"#,
    )
    .expect("write");
    let out = Command::new(MURPHY)
        .arg("validate")
        .arg(&f)
        .output()
        .expect("validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "invalid: exit 3\n{err}");
    for says in [
        "spec.claims[0].prometheus.url",
        "no user name or password",
        "spec.claims[0].prometheus: needs exactly one bound",
        "spec.claims[0].prometheus.step: must be 100ms to 1h",
        "spec.claims[0].prometheus.tokenEnv",
    ] {
        assert!(err.contains(says), "{says}\n{err}");
    }
    assert!(!err.contains("claims[1]"), "{err}");
    // Without the bad claim it is valid here, and refused on a cluster, naming the field.
    let text = std::fs::read_to_string(&f).expect("read");
    let good: String = text
        .lines()
        .filter(|l| !l.contains("both bounds") && !l.contains("u:p@"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&f, good).expect("write");
    let ok = Command::new(MURPHY)
        .arg("validate")
        .arg(&f)
        .output()
        .expect("validate");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let cluster = Command::new(MURPHY)
        .args(["validate", "--cluster"])
        .arg(&f)
        .output()
        .expect("validate --cluster");
    let err = String::from_utf8_lossy(&cluster.stderr);
    assert_eq!(cluster.status.code(), Some(3), "{err}");
    assert!(
        err.contains("spec.claims[0].prometheus") && err.contains("does not run on a cluster yet"),
        "{err}"
    );
}
