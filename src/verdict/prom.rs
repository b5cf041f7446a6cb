//! `prometheus` claims, judged on the range query the run kept ([`RunRecord::prometheus`]):
//! a value out of bound fails the claim; otherwise it holds only when every step of the
//! window has a value. No answer, no series or a gap is inconclusive, saying which.

use super::{no_verdict, span_or_verdict, verdict, window_name, Outcome, Verdict};
use crate::model::spec::{ClaimSpec, PrometheusClaim};
use crate::record::RunRecord;
use std::collections::BTreeMap;

fn fmt_value(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn labels(l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "{}".into();
    }
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// `+a.bcds` from the window's start.
fn at(ms: f64, start: f64) -> String {
    format!("+{:.1}s", (ms - start).max(0.0) / 1000.0)
}

pub fn prometheus(claim: &ClaimSpec, p: &PrometheusClaim, rec: &RunRecord) -> Verdict {
    let kind = "prometheus";
    let wname = window_name(p.window, p.fault.as_deref());
    let span = match span_or_verdict(claim, kind, rec, p.window, p.fault.as_deref()) {
        Ok(s) => s,
        Err(v) => return *v,
    };
    let Some(q) = rec.prometheus.iter().find(|q| q.claim == claim.name) else {
        return no_verdict(
            claim,
            kind,
            "the query was never made (the run kept no answer for this claim)".into(),
        );
    };
    if let Some(e) = &q.error {
        return no_verdict(claim, kind, format!("no answer from {}: {e}", q.url));
    }
    // The answer must be about this very window (a record edited or judged against
    // another spec is not evidence for it).
    if (q.start_ms - span.0).abs() > 1.0 || (q.end_ms - span.1).abs() > 1.0 {
        return no_verdict(
            claim,
            kind,
            format!(
                "the query kept covers {:.0}-{:.0}ms, not the window {wname} ({:.0}-{:.0}ms)",
                q.start_ms, q.end_ms, span.0, span.1
            ),
        );
    }
    let (at_most, bound) = p.bound();
    let points: usize = q.series.iter().map(|s| s.points.len()).sum();
    if points == 0 {
        return no_verdict(
            claim,
            kind,
            format!(
                "no data {wname}: the query returned {} series and no value (is the metric scraped? does the query match?)",
                q.series.len()
            ),
        );
    }
    // The worst value over every series, and where it was.
    let mut worst: Option<(f64, f64, usize)> = None;
    for (i, s) in q.series.iter().enumerate() {
        for &[t, v] in &s.points {
            let worse = match worst {
                None => true,
                Some((w, _, _)) => {
                    if at_most {
                        v > w
                    } else {
                        v < w
                    }
                }
            };
            if worse {
                worst = Some((v, t, i));
            }
        }
    }
    let (wv, wt, wi) = worst.expect("points exist");
    // Steps of the window with no value in any series.
    let step = q.step_ms.max(1.0);
    let steps = ((q.end_ms - q.start_ms) / step).floor() as usize + 1;
    let mut covered = vec![false; steps];
    for s in &q.series {
        for &[t, _] in &s.points {
            let k = ((t - q.start_ms) / step).round();
            if k >= 0.0 && (k as usize) < steps {
                covered[k as usize] = true;
            }
        }
    }
    let with_data = covered.iter().filter(|c| **c).count();
    let op = if at_most { "≤" } else { "≥" };
    let mut figures = BTreeMap::from([
        ("worst".to_string(), wv),
        ("bound".to_string(), bound),
        ("series".to_string(), q.series.len() as f64),
        ("points".to_string(), points as f64),
        ("steps".to_string(), steps as f64),
        ("stepsWithData".to_string(), with_data as f64),
    ]);
    if !wv.is_finite() {
        figures.remove("worst");
    }
    let out_of_bound = if at_most { wv > bound } else { wv < bound };
    if out_of_bound {
        let bad: usize = q
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|[_, v]| if at_most { *v > bound } else { *v < bound })
            .count();
        figures.insert("outOfBound".into(), bad as f64);
        return verdict(
            claim,
            kind,
            Outcome::Failed,
            format!("{} (bound {op} {})", fmt_value(wv), fmt_value(bound)),
            format!(
                "{bad} of {points} values {wname} out of bound ({op} {}); the worst, {} at {} of the window, in series {}",
                fmt_value(bound),
                fmt_value(wv),
                at(wt, q.start_ms),
                labels(&q.series[wi].labels)
            ),
            figures,
        );
    }
    if with_data < steps {
        let first_gap = covered.iter().position(|c| !*c).unwrap_or(0);
        let gap_end = covered[first_gap..]
            .iter()
            .position(|c| *c)
            .map_or(steps, |n| first_gap + n);
        return verdict(
            claim,
            kind,
            Outcome::Inconclusive,
            format!("{with_data}/{steps} steps"),
            format!(
                "no value at {} of {steps} steps {wname} (first gap {} to {}): every value seen was {op} {}, but the data does not cover the window",
                steps - with_data,
                at(q.start_ms + first_gap as f64 * step, q.start_ms),
                at(q.start_ms + (gap_end as f64 - 1.0).max(first_gap as f64) * step, q.start_ms),
                fmt_value(bound)
            ),
            figures,
        );
    }
    verdict(
        claim,
        kind,
        Outcome::Held,
        format!("{} (bound {op} {})", fmt_value(wv), fmt_value(bound)),
        format!(
            "every value {wname} was {op} {} (worst {} at {}, {points} values over {steps} steps of {})",
            fmt_value(bound),
            fmt_value(wv),
            at(wt, q.start_ms),
            super::secs(step)
        ),
        figures,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::quantity::Duration;
    use crate::model::spec::Window;
    use crate::record::{FaultRecord, Phases, PromQuery, PromSeries, RunStatus};

    fn claim(at_most: Option<f64>, at_least: Option<f64>) -> (ClaimSpec, PrometheusClaim) {
        let p = PrometheusClaim {
            url: "http://127.0.0.1:9090".into(),
            query: "x".into(),
            at_most,
            at_least,
            window: Window::During,
            fault: Some("f".into()),
            step: Some(Duration::from_millis(1000)),
            token_env: None,
        };
        (
            ClaimSpec {
                name: "c".into(),
                prometheus: Some(p.clone()),
                ..ClaimSpec::default()
            },
            p,
        )
    }

    /// A run whose fault `f` was in effect from 1000 to 5000 ms, with `series` kept for it.
    fn record(series: Vec<Vec<(f64, f64)>>, error: Option<&str>) -> RunRecord {
        let mut rec = RunRecord::assemble(
            Vec::new(),
            Vec::new(),
            vec![FaultRecord {
                name: "f".into(),
                kind: "network-partition".into(),
                target: "t".into(),
                injected_ms: Some(900.0),
                confirmed_ms: Some(1000.0),
                reverted_ms: Some(5000.0),
                confirmed: true,
                ..FaultRecord::default()
            }],
            Vec::new(),
            Vec::new(),
            Phases {
                steady_start_ms: 0.0,
                faults_start_ms: Some(900.0),
                faults_end_ms: Some(5000.0),
                end_ms: 6000.0,
            },
            RunStatus::Completed,
            None,
        );
        rec.prometheus = vec![PromQuery {
            claim: "c".into(),
            url: "http://127.0.0.1:9090".into(),
            query: "x".into(),
            start_ms: 1000.0,
            end_ms: 5000.0,
            step_ms: 1000.0,
            series: series
                .into_iter()
                .map(|pts| PromSeries {
                    labels: BTreeMap::from([("job".to_string(), "web".to_string())]),
                    points: pts.into_iter().map(|(t, v)| [t, v]).collect(),
                })
                .collect(),
            error: error.map(str::to_string),
        }];
        rec
    }

    fn full(v: f64) -> Vec<(f64, f64)> {
        (0..5).map(|k| (1000.0 + k as f64 * 1000.0, v)).collect()
    }

    #[test]
    fn holds_only_on_a_covered_window_fails_on_any_value_out_of_bound() {
        let (c, p) = claim(Some(0.01), None);
        let v = prometheus(&c, &p, &record(vec![full(0.005)], None));
        assert_eq!(v.outcome, Outcome::Held, "{}", v.reason);
        assert_eq!(v.figures["stepsWithData"], 5.0);

        let mut spike = full(0.005);
        spike[3].1 = 0.2;
        let v = prometheus(&c, &p, &record(vec![spike], None));
        assert_eq!(v.outcome, Outcome::Failed, "{}", v.reason);
        assert!(
            v.reason.contains("0.2 at +3.0s of the window"),
            "{}",
            v.reason
        );
        assert_eq!(v.figures["outOfBound"], 1.0);

        // A gap (the exporter went unreachable and its series went stale) is no evidence.
        let mut gap = full(0.005);
        gap.remove(2);
        gap.remove(2);
        let v = prometheus(&c, &p, &record(vec![gap], None));
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        assert!(
            v.reason.contains("no value at 2 of 5 steps"),
            "{}",
            v.reason
        );
        assert!(v.reason.contains("+2.0s to +3.0s"), "{}", v.reason);

        // Another series covering the gap covers the window.
        let mut gap = full(0.005);
        gap.remove(2);
        let v = prometheus(&c, &p, &record(vec![gap, full(0.0)], None));
        assert_eq!(v.outcome, Outcome::Held, "{}", v.reason);

        for (rec, says) in [
            (record(Vec::new(), None), "no data"),
            (record(vec![Vec::new()], None), "no data"),
            (
                record(Vec::new(), Some("connection refused")),
                "connection refused",
            ),
        ] {
            let v = prometheus(&c, &p, &rec);
            assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
            assert!(v.reason.contains(says), "{}", v.reason);
        }
        let mut other = record(vec![full(0.0)], None);
        other.prometheus[0].end_ms = 6000.0;
        let v = prometheus(&c, &p, &other);
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);

        let (c, p) = claim(None, Some(0.99));
        let v = prometheus(&c, &p, &record(vec![full(1.0)], None));
        assert_eq!(v.outcome, Outcome::Held, "{}", v.reason);
        let mut dip = full(1.0);
        dip[0].1 = 0.5;
        let v = prometheus(&c, &p, &record(vec![dip], None));
        assert_eq!(v.outcome, Outcome::Failed, "{}", v.reason);
        assert_eq!(v.measured, "0.5 (bound ≥ 0.99)");
    }
}
