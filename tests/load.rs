//! The load generator against a real HTTP server on loopback: rate profiles (a step and a
//! spike) are kept on schedule, a retry storm multiplies the load, and a herd holds failed
//! requests and releases them all at once when the service comes back. Status codes and
//! latency from the scheduled start are in the history.

use murphy::history::{History, OpResult};
use murphy::model::spec::{HttpWorkload, RatePhase, RetrySpec, WorkloadSpec};
use murphy::model::Duration as Q;
use murphy::timeline::Clock;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An HTTP server answering 200 while `healthy`, 503 otherwise.
fn server(healthy: Arc<AtomicBool>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let ok = healthy.load(Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let status = if ok { "200 OK" } else { "503 Unavailable" };
                let _ = c.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
            });
        }
    });
    addr
}

fn spec(addr: &str, rate: &str) -> WorkloadSpec {
    WorkloadSpec {
        name: "load".into(),
        rate: rate.parse().expect("rate"),
        endpoints: vec![addr.to_string()],
        http: Some(HttpWorkload::default()),
        ..Default::default()
    }
}

fn run_for(w: WorkloadSpec, d: Duration, during: impl FnOnce()) -> History {
    let h = murphy::workload::spawn(w, None, Clock::start());
    during();
    std::thread::sleep(d);
    h.stop()
}

fn first_attempts_in(h: &History, from_s: f64, to_s: f64) -> usize {
    h.ops
        .iter()
        .filter(|o| o.attempt == 0)
        .filter(|o| {
            let t = (o.invoke_ms - h.started_ms) / 1000.0;
            t >= from_s && t < to_s
        })
        .count()
}

#[test]
fn a_profile_steps_and_spikes_on_schedule() {
    let addr = server(Arc::new(AtomicBool::new(true)));
    let mut w = spec(&addr, "50/s");
    w.profile = vec![
        RatePhase {
            after: Q(Duration::from_millis(1000)),
            rate: "200/s".parse().expect("rate"),
            for_: Some(Q(Duration::from_millis(500))),
        },
        RatePhase {
            after: Q(Duration::from_millis(1500)),
            rate: "100/s".parse().expect("rate"),
            for_: None,
        },
    ];
    let h = run_for(w, Duration::from_millis(2600), || {});
    let near = |n: usize, want: f64| (n as f64 - want).abs() <= want * 0.15 + 2.0;
    let (a, b, c) = (
        first_attempts_in(&h, 0.0, 1.0),
        first_attempts_in(&h, 1.0, 1.5),
        first_attempts_in(&h, 1.5, 2.5),
    );
    assert!(near(a, 50.0), "base 50/s for 1s: {a}");
    assert!(near(b, 100.0), "spike 200/s for 0.5s: {b}");
    assert!(near(c, 100.0), "step to 100/s for 1s: {c}");
    assert!(h.ops.iter().all(|o| o.status == Some(200)), "statuses");
    let lat = h.latency().expect("latency");
    assert!(
        lat.count as usize == h.ops.len() && lat.p50_ms < 50.0,
        "{lat:?}"
    );
}

#[test]
fn retries_without_backoff_multiply_the_load_on_a_failing_service() {
    let addr = server(Arc::new(AtomicBool::new(false)));
    let mut w = spec(&addr, "40/s");
    w.retry = Some(RetrySpec {
        attempts: 3,
        backoff: None,
        herd: false,
    });
    let h = run_for(w, Duration::from_millis(1500), || {});
    let first = h.ops.iter().filter(|o| o.attempt == 0).count();
    let all = h.ops.len();
    assert!(
        all as f64 >= first as f64 * 3.5,
        "{first} requests became {all} operations"
    );
    assert!(h.ops.iter().all(|o| o.status == Some(503)));
    assert!(h.ops.iter().all(|o| o.result == OpResult::Fail));
}

#[test]
fn a_herd_returns_all_at_once_when_the_service_comes_back() {
    let healthy = Arc::new(AtomicBool::new(false));
    let addr = server(healthy.clone());
    let mut w = spec(&addr, "50/s");
    w.retry = Some(RetrySpec {
        attempts: 1,
        backoff: None,
        herd: true,
    });
    let flag = healthy.clone();
    let h = run_for(w, Duration::from_millis(1800), move || {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1000));
            flag.store(true, Ordering::SeqCst);
        });
    });
    let herd: Vec<f64> = h
        .ops
        .iter()
        .filter(|o| o.attempt == 1)
        .map(|o| o.invoke_ms)
        .collect();
    let failed_first = h
        .ops
        .iter()
        .filter(|o| o.attempt == 0 && o.result == OpResult::Fail)
        .count();
    assert!(
        failed_first >= 40,
        "about a second of failures: {failed_first}"
    );
    assert!(
        herd.len() + 2 >= failed_first,
        "every held request returns: {} of {failed_first}",
        herd.len()
    );
    let spread = herd.iter().cloned().fold(f64::MIN, f64::max)
        - herd.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        spread < 100.0,
        "the held requests go out together, not spread over {spread:.0}ms"
    );
}
