//! Claim checkers: pure functions from a finished [`RunRecord`] to a verdict with measured
//! figures and a one-line reason. They never call back into faults or probes.
//!
//! No data is never a pass: an empty window, a fault that was not confirmed, or a run that
//! stopped early makes a claim inconclusive rather than held.
//!
//! The verdict layer reads the record ([`crate::record`]) and the model; it never imports
//! the fault engine, the runner, the lab, probes or workloads. Probe claims live here,
//! history claims in [`history`], load and balancer claims in [`load`].

pub mod history;
pub mod load;
pub mod prom;
pub mod roles;

use crate::model::spec::{
    AvailabilityClaim, ClaimCheck, ClaimSpec, IndependentOfClaim, LatencyClaim, RecoversClaim,
    Window,
};
use crate::record::{RunRecord, RunStatus, Sample};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A workload as the steady-state rule sees it: successes so far and the last failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadProgress {
    pub name: String,
    pub ok: u64,
    pub last_error: Option<String>,
    /// Its `mustSucceedBeforeFaults` (default true).
    pub required: bool,
}

/// What kept the steady state from holding, from `since_ms` to `until_ms` (empty: it held): each
/// steady-state probe (default: every probe) below its share of healthy samples or without
/// samples, each workload without one successful operation. Both doors inject nothing
/// unless this is empty. A steady state of 0s asks for nothing (there was none to judge).
pub fn steady_problems(
    spec: &crate::model::spec::ExperimentSpec,
    samples: &[Sample],
    (since_ms, until_ms): (f64, f64),
    workloads: &[WorkloadProgress],
) -> Vec<String> {
    if spec.steady_duration().is_zero() {
        return Vec::new();
    }
    let need = spec.steady_state.at_least.map_or(1.0, |p| p.ratio());
    let names: Vec<String> = if spec.steady_state.probes.is_empty() {
        spec.probes.iter().map(|p| p.name.clone()).collect()
    } else {
        spec.steady_state.probes.clone()
    };
    let mut problems = Vec::new();
    for n in &names {
        let ss: Vec<&Sample> = samples
            .iter()
            .filter(|s| &s.probe == n && s.t_ms >= since_ms && s.t_ms <= until_ms)
            .collect();
        let good = ss.iter().filter(|s| s.ok).count();
        if ss.is_empty() {
            problems.push(format!("{n} produced no samples"));
        } else if (good as f64) < need * ss.len() as f64 {
            let err = ss
                .iter()
                .find(|s| !s.ok)
                .map(|s| s.detail.clone())
                .unwrap_or_default();
            problems.push(format!("{n} {good}/{} healthy ({err})", ss.len()));
        }
    }
    for w in workloads.iter().filter(|w| w.ok == 0 && w.required) {
        let why = w.last_error.as_deref().unwrap_or("no operation completed");
        problems.push(format!(
            "workload {} had no successful operation ({why}); if it is meant to fail, set `mustSucceedBeforeFaults: false` on it",
            w.name
        ));
    }
    problems
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Held,
    Failed,
    Inconclusive,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Held => "HELD",
            Outcome::Failed => "FAILED",
            Outcome::Inconclusive => "INCONCLUSIVE",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub claim: String,
    pub kind: String,
    pub outcome: Outcome,
    /// The key figure, short, for tables (e.g. "99.2% (119/120)", "recovered in 2.314s").
    pub measured: String,
    /// One plain-language sentence.
    pub reason: String,
    /// Named figures for machines (ms for times, ratios 0..1).
    pub figures: BTreeMap<String, f64>,
    /// Acknowledged writes missing from the final read, one by one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_writes: Vec<self::history::WriteRef>,
    /// Writes whose outcome the client could not know (not losses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indeterminate_writes: Vec<self::history::WriteRef>,
}

pub(crate) fn verdict(
    claim: &ClaimSpec,
    kind: &str,
    outcome: Outcome,
    measured: String,
    reason: String,
    figures: BTreeMap<String, f64>,
) -> Verdict {
    Verdict {
        claim: claim.name.clone(),
        kind: kind.into(),
        outcome,
        measured,
        reason,
        figures,
        lost_writes: Vec::new(),
        indeterminate_writes: Vec::new(),
    }
}

fn secs(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.3}s", ms / 1000.0)
    }
}

/// Why a window's span cannot be known from the record (its claim is inconclusive).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WindowError {
    #[error("fault {0:?} was never injected")]
    NeverInjected(String),
    #[error("fault {fault:?} was not confirmed{}", error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    NotConfirmed {
        fault: String,
        error: Option<String>,
    },
    #[error("no fault was injected")]
    NoneInjected,
    #[error("a fault was never reverted")]
    NeverReverted,
}

/// The time span a window covers, or why it cannot be known.
pub fn window_span(
    rec: &RunRecord,
    window: Window,
    fault: Option<&str>,
) -> Result<(f64, f64), WindowError> {
    let end = rec.phases.end_ms;
    let faults: Vec<_> = match fault {
        Some(f) => rec.faults.iter().filter(|r| r.name == f).collect(),
        None => rec.faults.iter().collect(),
    };
    let needs_faults = matches!(window, Window::During | Window::After);
    if needs_faults {
        if let Some(f) = fault {
            if faults.is_empty() {
                return Err(WindowError::NeverInjected(f.to_string()));
            }
        }
        if let Some(bad) = faults.iter().find(|f| !f.confirmed) {
            return Err(WindowError::NotConfirmed {
                fault: bad.name.clone(),
                error: bad.error.clone(),
            });
        }
    }
    let injected: Vec<f64> = faults.iter().filter_map(|f| f.injected_ms).collect();
    // A fault that ended early was in effect until its last sign of life at most: what
    // happened after that is not the fault's doing.
    let reverted = |f: &&crate::record::FaultRecord| {
        let r = f.reverted_ms.or(rec.phases.faults_end_ms).unwrap_or(end);
        f.ended_early.as_ref().map_or(r, |e| r.min(e.last_known_ms))
    };
    match window {
        Window::Whole => Ok((rec.phases.steady_start_ms, end)),
        Window::Before => Ok((
            rec.phases.steady_start_ms,
            rec.phases.faults_start_ms.unwrap_or(end),
        )),
        Window::During => {
            // In effect from its confirmation, not from the moment Murphy started to inject.
            let start = faults
                .iter()
                .filter_map(|f| f.in_effect_ms())
                .fold(f64::INFINITY, f64::min);
            if !start.is_finite() {
                return Err(WindowError::NoneInjected);
            }
            let stop = faults.iter().map(reverted).fold(start, f64::max);
            Ok((start, stop))
        }
        Window::After => {
            if injected.is_empty() {
                return Err(WindowError::NoneInjected);
            }
            if faults.iter().any(|f| f.reverted_ms.is_none()) {
                return Err(WindowError::NeverReverted);
            }
            let start = faults
                .iter()
                .map(reverted)
                .fold(f64::NEG_INFINITY, f64::max);
            Ok((start, end))
        }
    }
}

/// A probe's samples in a window, by the one rule every window-based claim follows.
///
/// A sample counts when it started at or after the window's start (for a fault: its
/// confirmation, when it was known to be in effect) and was answered by the window's end.
/// A sample in flight across an edge is kept apart, with one exception: a failure that
/// started inside the window counts even if it gave up after the end (the request was
/// sent while the fault was in effect and never answered in time). Nothing that started
/// before the window counts, and no answer that came after it counts as a success.
#[derive(Debug, Default)]
pub struct Windowed<'a> {
    pub counted: Vec<&'a Sample>,
    /// Started before the window and answered inside or after it: never counted.
    pub across_start: usize,
    /// Started inside and answered after the end, successfully: not counted.
    pub across_end: usize,
}

impl Windowed<'_> {
    /// The figures every window-based claim reports about its edges.
    pub fn edge_figures(&self, figures: &mut BTreeMap<String, f64>) {
        figures.insert("inFlightAtStart".into(), self.across_start as f64);
        figures.insert("inFlightAtEnd".into(), self.across_end as f64);
    }
}

/// Samples of `probe` judged in `span` (see [`Windowed`]), in time order.
pub fn in_window<'a>(rec: &'a RunRecord, probe: &'a str, span: (f64, f64)) -> Windowed<'a> {
    let mut w = Windowed::default();
    let mut all: Vec<&Sample> = rec.samples_of(probe).collect();
    all.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    for s in all {
        let end = s.t_ms + s.latency_ms.max(0.0);
        if s.t_ms < span.0 {
            if end > span.0 {
                w.across_start += 1;
            }
        } else if s.t_ms <= span.1 {
            if end <= span.1 || !s.ok {
                w.counted.push(s);
            } else {
                w.across_end += 1;
            }
        }
    }
    w
}

fn in_span<'a>(rec: &'a RunRecord, probe: &'a str, span: (f64, f64)) -> Vec<&'a Sample> {
    in_window(rec, probe, span).counted
}

/// Longest stretch from a failing sample to the next healthy one (or the window's end).
pub fn longest_outage(samples: &[&Sample], window_end: f64) -> f64 {
    let mut longest = 0.0f64;
    let mut down_since: Option<f64> = None;
    for s in samples {
        match (s.ok, down_since) {
            (false, None) => down_since = Some(s.t_ms),
            (true, Some(t0)) => {
                longest = longest.max(s.t_ms - t0);
                down_since = None;
            }
            _ => {}
        }
    }
    if let Some(t0) = down_since {
        longest = longest.max(window_end - t0);
    }
    longest
}

pub(crate) fn window_name(w: Window, fault: Option<&str>) -> String {
    let base = match w {
        Window::Before => "before the faults",
        Window::During => "during the fault",
        Window::After => "after the fault",
        Window::Whole => "over the whole run",
    };
    match fault {
        Some(f) if matches!(w, Window::During | Window::After) => format!("{base} {f:?}"),
        _ => base.to_string(),
    }
}

/// An inconclusive verdict with no figures.
pub(crate) fn no_verdict(claim: &ClaimSpec, kind: &str, why: String) -> Verdict {
    verdict(
        claim,
        kind,
        Outcome::Inconclusive,
        "-".into(),
        why,
        BTreeMap::new(),
    )
}

/// The window's span, or the inconclusive verdict saying why it cannot be measured.
pub(crate) fn span_or_verdict(
    claim: &ClaimSpec,
    kind: &str,
    rec: &RunRecord,
    window: Window,
    fault: Option<&str>,
) -> Result<(f64, f64), Box<Verdict>> {
    window_span(rec, window, fault).map_err(|e| {
        Box::new(no_verdict(
            claim,
            kind,
            format!("cannot measure {}: {e}", window_name(window, fault)),
        ))
    })
}

pub fn availability(claim: &ClaimSpec, a: &AvailabilityClaim, rec: &RunRecord) -> Verdict {
    let kind = "availability";
    let span = match span_or_verdict(claim, kind, rec, a.window, a.fault.as_deref()) {
        Ok(s) => s,
        Err(v) => return *v,
    };
    let judged = in_window(rec, &a.probe, span);
    let samples = &judged.counted;
    if samples.is_empty() {
        return verdict(
            claim,
            kind,
            Outcome::Inconclusive,
            "no samples".into(),
            format!(
                "probe {:?} has no samples {} ({} in flight across its edges, not counted)",
                a.probe,
                window_name(a.window, a.fault.as_deref()),
                judged.across_start + judged.across_end
            ),
            BTreeMap::new(),
        );
    }
    let ok = samples.iter().filter(|s| s.ok).count();
    let n = samples.len();
    let ratio = ok as f64 / n as f64;
    let outage = longest_outage(samples, span.1);
    let mut figures = BTreeMap::from([
        ("samples".to_string(), n as f64),
        ("ok".to_string(), ok as f64),
        ("ratio".to_string(), ratio),
        ("longestOutageMs".to_string(), outage),
        ("windowMs".to_string(), span.1 - span.0),
    ]);
    judged.edge_figures(&mut figures);
    let measured = format!("{:.2}% ({ok}/{n})", ratio * 100.0);
    let held = ratio >= a.at_least.ratio();
    let reason = if held {
        format!(
            "{} of {n} samples of {:?} succeeded {} (needed {}).",
            ok,
            a.probe,
            window_name(a.window, a.fault.as_deref()),
            a.at_least
        )
    } else {
        let first_fail = samples
            .iter()
            .find(|s| !s.ok)
            .map(|s| s.detail.clone())
            .unwrap_or_default();
        format!(
            "only {:.2}% of {:?} samples succeeded {} (needed {}); longest outage {}, first error: {}.",
            ratio * 100.0,
            a.probe,
            window_name(a.window, a.fault.as_deref()),
            a.at_least,
            secs(outage),
            first_fail
        )
    };
    verdict(
        claim,
        kind,
        if held { Outcome::Held } else { Outcome::Failed },
        measured,
        reason,
        figures,
    )
}

/// Stretches of the run in which a probe was known to be failing: from the start of the
/// first failing sample of a streak to the start of its last (a timed-out request says the
/// service was down when it was sent, not until the client gave up). A streak still
/// failing when the data ends runs to `end`.
pub fn down_spans(samples: &[&Sample], end: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut streak: Option<(f64, f64)> = None;
    for s in samples {
        match (s.ok, streak) {
            (false, None) => streak = Some((s.t_ms, s.t_ms)),
            (false, Some((t0, _))) => streak = Some((t0, s.t_ms)),
            (true, Some(span)) => {
                out.push(span);
                streak = None;
            }
            _ => {}
        }
    }
    if let Some((t0, _)) = streak {
        out.push((t0, end));
    }
    out
}

/// `independentOf`: while `of` is down, `probe` keeps succeeding.
pub fn independent_of(claim: &ClaimSpec, i: &IndependentOfClaim, rec: &RunRecord) -> Verdict {
    let kind = "independentOf";
    let end = rec.phases.end_ms;
    let dep: Vec<&Sample> = in_span(rec, &i.of, (rec.phases.steady_start_ms, end));
    let spans = down_spans(&dep, end);
    let down_ms: f64 = spans.iter().map(|(a, b)| b - a).sum();
    if spans.is_empty() {
        return no_verdict(
            claim,
            kind,
            format!(
                "{:?} never failed ({} samples), so this run did not test whether {:?} survives without it",
                i.of,
                dep.len(),
                i.probe
            ),
        );
    }
    let (mut samples, mut across_start, mut across_end) = (Vec::new(), 0, 0);
    for span in &spans {
        let w = in_window(rec, &i.probe, *span);
        samples.extend(w.counted);
        across_start += w.across_start;
        across_end += w.across_end;
    }
    samples.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    if samples.is_empty() {
        return no_verdict(
            claim,
            kind,
            format!(
                "{:?} has no samples in the {} that {:?} was down",
                i.probe,
                secs(down_ms),
                i.of
            ),
        );
    }
    let ok = samples.iter().filter(|s| s.ok).count();
    let n = samples.len();
    let ratio = ok as f64 / n as f64;
    let need = i.at_least.unwrap_or(crate::model::quantity::Percent(99.0));
    let held = ratio >= need.ratio();
    let figures = BTreeMap::from([
        ("samples".to_string(), n as f64),
        ("ok".to_string(), ok as f64),
        ("ratio".to_string(), ratio),
        ("dependencyDownMs".to_string(), down_ms),
        ("dependencyOutages".to_string(), spans.len() as f64),
        ("inFlightAtStart".to_string(), across_start as f64),
        ("inFlightAtEnd".to_string(), across_end as f64),
    ]);
    let reason = if held {
        format!(
            "while {:?} was down ({} in {} outage(s)), {ok} of {n} samples of {:?} succeeded (needed {need}).",
            i.of,
            secs(down_ms),
            spans.len(),
            i.probe
        )
    } else {
        let first = samples
            .iter()
            .find(|s| !s.ok)
            .map(|s| s.detail.clone())
            .unwrap_or_default();
        format!(
            "{:?} went down with {:?}: only {ok} of {n} samples succeeded while {:?} was down ({}), needed {need}; first error: {first}.",
            i.probe,
            i.of,
            i.of,
            secs(down_ms)
        )
    };
    verdict(
        claim,
        kind,
        if held { Outcome::Held } else { Outcome::Failed },
        format!("{:.2}% ({ok}/{n}) while {} down", ratio * 100.0, i.of),
        reason,
        figures,
    )
}

pub fn recovers(claim: &ClaimSpec, r: &RecoversClaim, rec: &RunRecord) -> Verdict {
    let kind = "recovers";
    let inconclusive = |why: String| {
        verdict(
            claim,
            kind,
            Outcome::Inconclusive,
            "-".into(),
            why,
            BTreeMap::new(),
        )
    };
    let fault = rec.fault_or_first(r.fault.as_deref());
    let Some(fault) = fault else {
        return inconclusive("no fault was injected".into());
    };
    if fault.injected_ms.is_none() {
        return inconclusive(format!("fault {:?} was never injected", fault.name));
    }
    // A bound on time is measured from the injection: an outage that began while the
    // fault was being put in place counts against it.
    let start = fault.injected_ms.unwrap_or(0.0);
    if !fault.confirmed {
        return inconclusive(format!(
            "fault {:?} was not confirmed{}",
            fault.name,
            fault
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
    }
    let stable = r.stable_for.map_or(1000.0, |d| d.as_millis_f64());
    let within = r.within.as_millis_f64();
    let samples = in_span(rec, &r.probe, (start, f64::INFINITY));
    if samples.is_empty() {
        return inconclusive(format!(
            "probe {:?} has no samples after fault {:?} started",
            r.probe, fault.name
        ));
    }
    let failures = samples.iter().filter(|s| !s.ok).count();
    // Recovery is looked for after the first failure following the fault's start (a probe
    // that stays healthy for a while and fails later has still degraded).
    let first_failure = samples.iter().position(|s| !s.ok);
    let last = samples.last().map_or(start, |s| s.t_ms);
    let mut figures = BTreeMap::from([
        ("withinMs".to_string(), within),
        ("failedSamples".to_string(), failures as f64),
    ]);
    let Some(ff) = first_failure else {
        // Never failed: held, provided the data covers the bound (else we cannot know).
        if last >= start + within {
            figures.insert("recoveryMs".into(), 0.0);
            let reason = format!(
                "{:?} stayed healthy through fault {:?} ({} samples): nothing to recover from.",
                r.probe,
                fault.name,
                samples.len()
            );
            return verdict(
                claim,
                kind,
                Outcome::Held,
                "never degraded".into(),
                reason,
                figures,
            );
        }
        return inconclusive(format!("{:?} was healthy in every sample, but the data ends {} after fault {:?} started, before the {} bound", r.probe, secs(last - start), fault.name, secs(within)));
    };
    // The first sample after the failure that begins a healthy streak lasting `stable`.
    let after = &samples[ff..];
    let mut found: Option<f64> = None;
    'outer: for (i, s) in after.iter().enumerate() {
        if !s.ok {
            continue;
        }
        for later in &after[i..] {
            if !later.ok {
                continue 'outer;
            }
            if later.t_ms - s.t_ms >= stable {
                found = Some(s.t_ms);
                break 'outer;
            }
        }
        break; // healthy until the data ends, but not for long enough
    }
    match found {
        Some(t) => {
            // After a failure, so always > 0.
            let rt = t - start;
            figures.insert("recoveryMs".into(), rt);
            let measured = format!("recovered in {}", secs(rt));
            if rt <= within {
                let reason = format!("{:?} was healthy again {} after fault {:?} started (bound {}), and stayed so for {}.", r.probe, secs(rt), fault.name, secs(within), secs(stable));
                verdict(claim, kind, Outcome::Held, measured, reason, figures)
            } else {
                let reason = format!("{:?} only recovered {} after fault {:?} started, over the {} bound.", r.probe, secs(rt), fault.name, secs(within));
                verdict(claim, kind, Outcome::Failed, measured, reason, figures)
            }
        }
        None if last >= start + within + stable => {
            let reason = format!("{:?} never stayed healthy for {} within {} of fault {:?} starting ({} failed samples).", r.probe, secs(stable), secs(within), fault.name, failures);
            verdict(claim, kind, Outcome::Failed, "did not recover".into(), reason, figures)
        }
        None => inconclusive(format!("the run ended {} after fault {:?} started, before {:?} could be seen recovering or not", secs(last - start), fault.name, r.probe)),
    }
}

/// Nearest-rank percentile of an ascending slice.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

pub fn latency(claim: &ClaimSpec, l: &LatencyClaim, rec: &RunRecord) -> Verdict {
    let kind = "latency";
    let span = match span_or_verdict(claim, kind, rec, l.window, l.fault.as_deref()) {
        Ok(s) => s,
        Err(v) => return *v,
    };
    let judged = in_window(rec, &l.probe, span);
    let samples = &judged.counted;
    let mut lat: Vec<f64> = samples
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.latency_ms)
        .collect();
    let failed = samples.len() - lat.len();
    lat.sort_by(f64::total_cmp);
    let Some(p) = percentile(&lat, l.percentile.0) else {
        return verdict(
            claim,
            kind,
            Outcome::Inconclusive,
            "no samples".into(),
            format!(
                "probe {:?} has no successful samples {}",
                l.probe,
                window_name(l.window, l.fault.as_deref())
            ),
            BTreeMap::new(),
        );
    };
    let bound = l.below.as_millis_f64();
    let mut figures = BTreeMap::from([
        ("percentileMs".to_string(), p),
        ("boundMs".to_string(), bound),
        ("samples".to_string(), lat.len() as f64),
        ("excludedFailures".to_string(), failed as f64),
    ]);
    judged.edge_figures(&mut figures);
    let measured = format!("p{} = {:.1}ms", l.percentile.0, p);
    let note = if failed > 0 {
        format!(" ({failed} failed samples excluded)")
    } else {
        String::new()
    };
    if p < bound {
        verdict(
            claim,
            kind,
            Outcome::Held,
            measured,
            format!(
                "p{} latency of {:?} was {p:.1}ms {}, under {}{note}.",
                l.percentile.0,
                l.probe,
                window_name(l.window, l.fault.as_deref()),
                secs(bound)
            ),
            figures,
        )
    } else {
        verdict(
            claim,
            kind,
            Outcome::Failed,
            measured,
            format!(
                "p{} latency of {:?} was {p:.1}ms {}, not under {}{note}.",
                l.percentile.0,
                l.probe,
                window_name(l.window, l.fault.as_deref()),
                secs(bound)
            ),
            figures,
        )
    }
}

/// Evaluate every claim. A run that did not complete can fail claims (evidence is
/// evidence) but never holds them.
/// The message the runner puts on the timeline when a watched log shows a watched text.
pub fn detection_message(log: &str, line: &str) -> String {
    format!("{log} logged: {line}")
}

/// The system noticed the fault itself: a watched log line after the injection, in time.
pub fn detects(
    claim: &ClaimSpec,
    d: &crate::model::spec::DetectsClaim,
    rec: &RunRecord,
) -> Verdict {
    let within = d.within.map_or(30_000.0, |w| w.as_millis_f64());
    let mut figures = BTreeMap::new();
    let Some(f) = rec.fault(&d.fault).filter(|f| f.injected_ms.is_some()) else {
        return verdict(
            claim,
            "detects",
            Outcome::Inconclusive,
            "-".into(),
            format!("fault {:?} was never injected", d.fault),
            figures,
        );
    };
    if !f.confirmed {
        return verdict(
            claim,
            "detects",
            Outcome::Inconclusive,
            "-".into(),
            format!("fault {:?} was not confirmed", d.fault),
            figures,
        );
    }
    let t0 = f.injected_ms.unwrap_or(0.0);
    let prefix = detection_message(&d.log, "");
    let hit = rec
        .events
        .iter()
        .filter(|e| e.kind == "detected" && e.t_ms >= t0)
        .find(|e| e.message.starts_with(&prefix) && e.message.contains(&d.contains));
    figures.insert("withinMs".into(), within);
    match hit {
        Some(e) if e.t_ms - t0 <= within => {
            figures.insert("detectedAfterMs".into(), e.t_ms - t0);
            verdict(claim, "detects", Outcome::Held, format!("detected after {}", secs(e.t_ms - t0)), format!("{} {} after {} started, within {}", e.message, secs(e.t_ms - t0), d.fault, secs(within)), figures)
        }
        Some(e) => {
            figures.insert("detectedAfterMs".into(), e.t_ms - t0);
            verdict(claim, "detects", Outcome::Failed, format!("detected after {}", secs(e.t_ms - t0)), format!("{} only {} after {} started, over {}", e.message, secs(e.t_ms - t0), d.fault, secs(within)), figures)
        }
        None if rec.phases.end_ms - t0 < within => verdict(claim, "detects", Outcome::Inconclusive, "-".into(), format!("no line containing {:?} in {}'s log yet, and the run ended {} after {} started, before {} had passed", d.contains, d.log, secs(rec.phases.end_ms - t0), d.fault, secs(within)), figures),
        None => verdict(claim, "detects", Outcome::Failed, "not detected".into(), format!("no line containing {:?} in {}'s log within {} of {}: the system did not report it", d.contains, d.log, secs(within), d.fault), figures),
    }
}

/// RTO: like `recovers`, measured from the data fault's injection, with the figure named
/// for what it is.
pub fn restores(
    claim: &ClaimSpec,
    r: &crate::model::spec::RestoresClaim,
    rec: &RunRecord,
) -> Verdict {
    let as_recovers = RecoversClaim {
        probe: r.probe.clone(),
        within: r.within,
        fault: r.fault.clone(),
        stable_for: r.stable_for,
    };
    let mut v = recovers(claim, &as_recovers, rec);
    v.kind = "restores".into();
    if let Some(ms) = v.figures.get("recoveryMs").copied() {
        v.figures.insert("rtoMs".into(), ms);
        v.measured = format!("RTO {}", secs(ms));
    }
    v
}

pub fn evaluate(claims: &[ClaimSpec], rec: &RunRecord) -> Vec<Verdict> {
    claims
        .iter()
        .map(|c| {
            let Some(check) = c.check() else {
                return verdict(
                    c,
                    "invalid",
                    Outcome::Inconclusive,
                    "-".into(),
                    "claim has no check".into(),
                    BTreeMap::new(),
                );
            };
            if rec.status == RunStatus::SteadyStateFailed || rec.status == RunStatus::Error {
                let why = rec
                    .status_reason
                    .clone()
                    .unwrap_or_else(|| "the run did not reach the fault phase".into());
                return verdict(
                    c,
                    check.kind(),
                    Outcome::Inconclusive,
                    "-".into(),
                    format!("not evaluated: {why}"),
                    BTreeMap::new(),
                );
            }
            let mut v = match check {
                ClaimCheck::Availability(a) => availability(c, a, rec),
                ClaimCheck::Recovers(r) => recovers(c, r, rec),
                ClaimCheck::Latency(l) if l.workload.is_some() => {
                    self::load::workload_latency(c, l, rec)
                }
                ClaimCheck::Latency(l) => latency(c, l, rec),
                ClaimCheck::ErrorRate(e) => self::load::error_rate(c, e, rec),
                ClaimCheck::NoFlapping(n) => self::load::no_flapping(c, n, rec),
                ClaimCheck::CapacityShare(x) => self::load::capacity_share(c, x, rec),
                ClaimCheck::NoAckedWriteLoss(w) => {
                    self::history::no_acked_write_loss(c, &w.workload, rec)
                }
                ClaimCheck::WriteAvailability(w) => self::history::write_availability(c, w, rec),
                ClaimCheck::SinglePrimary(s) => self::roles::single_primary(c, s, rec),
                ClaimCheck::BlastRadius(b) => self::history::blast_radius(c, b, rec),
                ClaimCheck::Restores(r) => restores(c, r, rec),
                ClaimCheck::RecoveryPoint(r) => self::history::recovery_point(c, r, rec),
                ClaimCheck::EventuallyDelivered(w) => {
                    self::history::eventually_delivered(c, &w.workload, rec)
                }
                ClaimCheck::Detects(d) => detects(c, d, rec),
                ClaimCheck::IndependentOf(i) => independent_of(c, i, rec),
                ClaimCheck::Prometheus(p) => self::prom::prometheus(c, p, rec),
            };
            if v.outcome == Outcome::Held
                && matches!(
                    check,
                    ClaimCheck::NoAckedWriteLoss(_)
                        | ClaimCheck::SinglePrimary(_)
                        | ClaimCheck::EventuallyDelivered(_)
                )
            {
                if let Some(f) = rec.faults.iter().find(|f| !f.confirmed) {
                    v.outcome = Outcome::Inconclusive;
                    v.reason = format!(
                        "fault {} was not confirmed, so this run did not test the claim; so far: {}",
                        f.name, v.reason
                    );
                }
            }
            // Held, or inconclusive for want of samples in the short real window: either
            // way the reason is the fault that stopped early.
            if v.outcome != Outcome::Failed {
                if let Some((f, e)) = rec
                    .faults
                    .iter()
                    .find_map(|f| f.ended_early.as_ref().map(|e| (f, e)))
                {
                    v.outcome = Outcome::Inconclusive;
                    v.reason = format!(
                        "fault {} stopped being in effect before its window closed (last known in effect at {:.1}s; {}), so the window was not covered; so far: {}",
                        f.name,
                        e.last_known_ms / 1000.0,
                        e.reason,
                        v.reason
                    );
                }
            }
            if v.outcome == Outcome::Held && rec.status != RunStatus::Completed {
                v.outcome = Outcome::Inconclusive;
                v.reason = format!(
                    "the run was {:?} before it finished, so this cannot hold yet; so far: {}",
                    rec.status, v.reason
                );
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::quantity::{Duration, Percent};
    use crate::record::{FaultRecord, Phases};
    use proptest::prelude::*;

    /// The steady-state rule both doors use: probes at their share, and every workload
    /// that must succeed first with a success; one meant to fail is exempt when it says so.
    #[test]
    fn the_steady_state_needs_each_required_workload_to_succeed_once() {
        let spec: crate::model::spec::ExperimentSpec = serde_json::from_value(serde_json::json!({
            "targets": {},
            "steadyState": {"duration": "2s"},
            "probes": [{"name": "p", "command": {"argv": ["/bin/true"]}}],
            "faults": [],
            "workloads": [
                {"name": "writes", "rate": "1/s", "endpoints": ["10.0.0.1:1"], "etcd": {}},
                {"name": "to-replica", "rate": "1/s", "endpoints": ["10.0.0.2:1"], "etcd": {},
                 "mustSucceedBeforeFaults": false}
            ]
        }))
        .expect("spec");
        let sample = |t: f64, ok: bool| Sample {
            probe: "p".into(),
            t_ms: t,
            ok,
            latency_ms: 1.0,
            detail: if ok { String::new() } else { "refused".into() },
        };
        let none = |name: &str, required: bool| WorkloadProgress {
            name: name.into(),
            ok: 0,
            last_error: Some("read-only".into()),
            required,
        };
        let samples = [sample(100.0, true), sample(600.0, true)];
        // Both workloads without a success: only the required one keeps the steady state
        // from holding, and the message says how to exempt it.
        let p = steady_problems(
            &spec,
            &samples,
            (0.0, 2000.0),
            &[none("writes", true), none("to-replica", false)],
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("workload writes") && p[0].contains("mustSucceedBeforeFaults: false")
        );
        let ok = WorkloadProgress {
            ok: 3,
            ..none("writes", true)
        };
        assert!(steady_problems(
            &spec,
            &samples,
            (0.0, 2000.0),
            &[ok.clone(), none("to-replica", false)]
        )
        .is_empty());
        // A failing probe sample, or none at all since `since`, is a problem too.
        let bad = [sample(100.0, true), sample(600.0, false)];
        let p = steady_problems(&spec, &bad, (0.0, 2000.0), std::slice::from_ref(&ok));
        assert!(p[0].contains("p 1/2 healthy (refused)"), "{p:?}");
        let p = steady_problems(&spec, &samples, (1000.0, 2000.0), std::slice::from_ref(&ok));
        assert!(p[0].contains("p produced no samples"), "{p:?}");
        // A sample after the steady state's end is not part of it.
        let late = [sample(100.0, false), sample(2500.0, true)];
        let p = steady_problems(&spec, &late, (0.0, 2000.0), std::slice::from_ref(&ok));
        assert!(p[0].contains("p 0/1 healthy"), "{p:?}");
    }

    #[test]
    fn detects_needs_the_log_line_after_the_fault_and_in_time() {
        use crate::model::spec::DetectsClaim;
        let claim = ClaimSpec {
            name: "d".into(),
            ..Default::default()
        };
        let d = DetectsClaim {
            fault: "f".into(),
            log: "r2/redis".into(),
            contains: "Bad file".into(),
            within: Some(Duration(std::time::Duration::from_secs(5))),
        };
        let mut r = rec(
            vec![(0.0, true), (20_000.0, true)],
            Some((1000.0, 9000.0, true)),
        );
        r.phases.end_ms = 20_000.0;
        // Nothing logged: failed, the window passed.
        assert_eq!(detects(&claim, &d, &r).outcome, Outcome::Failed);
        let ev = |t: f64, line: &str| crate::record::Event {
            t_ms: t,
            kind: "detected".into(),
            fault: None,
            message: detection_message("r2/redis", line),
        };
        // A line before the fault does not count; one after it does.
        r.events.push(ev(500.0, "Bad file format (old)"));
        assert_eq!(detects(&claim, &d, &r).outcome, Outcome::Failed);
        r.events
            .push(ev(3000.0, "# Bad file format reading the append only file"));
        let v = detects(&claim, &d, &r);
        assert_eq!(v.outcome, Outcome::Held, "{}", v.reason);
        assert_eq!(v.figures["detectedAfterMs"], 2000.0);
        // Another process's log does not count; too late fails.
        r.events.clear();
        r.events.push(crate::record::Event {
            t_ms: 2000.0,
            kind: "detected".into(),
            fault: None,
            message: detection_message("r1/redis", "Bad file format"),
        });
        r.events.push(ev(8000.0, "Bad file format"));
        assert_eq!(detects(&claim, &d, &r).outcome, Outcome::Failed);
        // The run ended before the window passed, with nothing seen: inconclusive.
        r.events.clear();
        r.phases.end_ms = 3000.0;
        assert_eq!(detects(&claim, &d, &r).outcome, Outcome::Inconclusive);
    }

    fn rec(samples: Vec<(f64, bool)>, fault: Option<(f64, f64, bool)>) -> RunRecord {
        RunRecord {
            samples: samples
                .into_iter()
                .map(|(t, ok)| Sample {
                    probe: "p".into(),
                    t_ms: t,
                    ok,
                    latency_ms: 1.0,
                    detail: if ok { String::new() } else { "refused".into() },
                })
                .collect(),
            events: vec![],
            faults: fault
                .map(|(a, b, c)| {
                    vec![FaultRecord {
                        name: "f".into(),
                        kind: "process-kill".into(),
                        target: "t".into(),
                        injected_ms: Some(a),
                        reverted_ms: Some(b),
                        confirmed: c,
                        ..Default::default()
                    }]
                })
                .unwrap_or_default(),
            histories: Vec::new(),
            watch_samples: vec![],
            phases: Phases {
                steady_start_ms: 0.0,
                faults_start_ms: Some(1000.0),
                faults_end_ms: Some(5000.0),
                end_ms: 8000.0,
            },
            status: RunStatus::Completed,
            status_reason: None,
            left_behind: vec![],
            roles: vec![],
            role_clusters: vec![],
            prometheus: vec![],
        }
    }
    fn independent(site_down: impl Fn(f64) -> bool, status_down: impl Fn(f64) -> bool) -> Verdict {
        let mut r = rec(
            every(100.0, 8000.0, |t| !site_down(t)),
            Some((1000.0, 5000.0, true)),
        );
        for s in r.samples.clone() {
            r.samples.push(Sample {
                probe: "status".into(),
                ok: !status_down(s.t_ms),
                ..s
            });
        }
        let claim = ClaimSpec {
            name: "i".into(),
            independent_of: Some(IndependentOfClaim {
                probe: "status".into(),
                of: "p".into(),
                at_least: None,
            }),
            ..Default::default()
        };
        evaluate(&[claim], &r).remove(0)
    }

    #[test]
    fn independent_of_fails_when_the_status_page_goes_down_with_the_site() {
        let v = independent(
            |t| (1000.0..5000.0).contains(&t),
            |t| (1000.0..5000.0).contains(&t),
        );
        assert_eq!(v.outcome, Outcome::Failed, "{}", v.reason);
        // The site is known down from its first failing sample to its last (1000 to 4900
        // ms); the status page's healthy answer at 5000 ms, after the heal, is not "during".
        assert_eq!(v.figures["ok"], 0.0);
        assert_eq!(v.figures["samples"], 40.0);
        assert!(v.reason.contains("went down with"), "{}", v.reason);
    }

    #[test]
    fn independent_of_holds_when_the_status_page_stays_up() {
        let v = independent(|t| (1000.0..5000.0).contains(&t), |_| false);
        assert_eq!(v.outcome, Outcome::Held, "{}", v.reason);
        // The site's down span is 1000..=4900 ms (its failing samples); the status page's
        // sample at 4900 ms was answered after that span, so it is in flight, not counted.
        assert_eq!(v.figures["samples"], 39.0);
        assert_eq!(v.figures["inFlightAtEnd"], 1.0);
        assert_eq!(v.figures["dependencyDownMs"], 3900.0);
    }

    #[test]
    fn independent_of_is_inconclusive_when_the_site_never_went_down() {
        let v = independent(|_| false, |_| false);
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        assert!(v.reason.contains("never failed"), "{}", v.reason);
    }

    #[test]
    fn a_fault_that_ended_early_never_lets_a_claim_hold_on_its_window() {
        // Healthy throughout: held while the fault covered its window...
        let mut r = rec(every(100.0, 8000.0, |_| true), Some((1000.0, 5000.0, true)));
        let claims = vec![avail(99.0, Window::During)];
        assert_eq!(evaluate(&claims, &r)[0].outcome, Outcome::Held);
        // ...but not when its agent lost it 0.5 s in: the window was not covered.
        r.faults[0].ended_early = Some(crate::record::EarlyEnd {
            last_known_ms: 1500.0,
            reason: "renewing the lease on shop/web-0 failed: agent unreachable".into(),
        });
        let v = &evaluate(&claims, &r)[0];
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        assert!(
            v.reason.contains("last known in effect at 1.5s"),
            "{}",
            v.reason
        );
        // A failure seen while it was in effect still counts.
        let mut bad = rec(
            every(100.0, 8000.0, |t| !(1000.0..1400.0).contains(&t)),
            Some((1000.0, 5000.0, true)),
        );
        bad.faults[0].ended_early = r.faults[0].ended_early.clone();
        assert_eq!(evaluate(&claims, &bad)[0].outcome, Outcome::Failed);
    }

    fn every(ms: f64, until: f64, ok: impl Fn(f64) -> bool) -> Vec<(f64, bool)> {
        let mut v = vec![];
        let mut t = 0.0;
        while t <= until {
            v.push((t, ok(t)));
            t += ms;
        }
        v
    }
    fn avail(p: f64, w: Window) -> ClaimSpec {
        ClaimSpec {
            name: "a".into(),
            availability: Some(AvailabilityClaim {
                probe: "p".into(),
                at_least: Percent(p),
                window: w,
                fault: None,
            }),
            ..Default::default()
        }
    }
    fn recov(within_ms: u64) -> ClaimSpec {
        ClaimSpec {
            name: "r".into(),
            recovers: Some(RecoversClaim {
                probe: "p".into(),
                within: Duration::from_millis(within_ms),
                fault: None,
                stable_for: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn availability_counts_only_the_window() {
        let r = rec(
            every(100.0, 8000.0, |t| !(2000.0..3000.0).contains(&t)),
            Some((1000.0, 5000.0, true)),
        );
        let v = evaluate(&[avail(99.0, Window::During)], &r);
        assert_eq!(v[0].outcome, Outcome::Failed);
        // 1000..=4900 ms; the sample at 5000 ms was answered after the revert.
        assert_eq!(v[0].figures["samples"], 40.0);
        assert_eq!(v[0].figures["ok"], 30.0);
        assert_eq!(v[0].figures["inFlightAtEnd"], 1.0);
        let v = evaluate(&[avail(100.0, Window::After)], &r);
        assert_eq!(v[0].outcome, Outcome::Held, "{}", v[0].reason);
    }

    #[test]
    fn no_samples_is_inconclusive_never_held() {
        let r = rec(vec![], Some((1000.0, 5000.0, true)));
        let v = evaluate(&[avail(0.0, Window::During), recov(1000)], &r);
        assert!(v.iter().all(|v| v.outcome == Outcome::Inconclusive));
    }

    #[test]
    fn unconfirmed_fault_makes_dependent_claims_inconclusive() {
        let r = rec(
            every(100.0, 8000.0, |_| true),
            Some((1000.0, 5000.0, false)),
        );
        let v = evaluate(
            &[
                avail(99.0, Window::During),
                recov(1000),
                avail(99.0, Window::Before),
            ],
            &r,
        );
        assert_eq!(v[0].outcome, Outcome::Inconclusive);
        assert_eq!(v[1].outcome, Outcome::Inconclusive);
        assert_eq!(
            v[2].outcome,
            Outcome::Held,
            "the before window does not depend on the fault"
        );
    }

    #[test]
    fn recovery_time_is_measured_from_fault_start_to_first_stable_success() {
        let r = rec(
            every(100.0, 8000.0, |t| !(1000.0..3500.0).contains(&t)),
            Some((1000.0, 5000.0, true)),
        );
        let v = evaluate(&[recov(3000), recov(2000)], &r);
        assert_eq!(v[0].outcome, Outcome::Held, "{}", v[0].reason);
        assert_eq!(v[0].figures["recoveryMs"], 2500.0);
        assert_eq!(v[1].outcome, Outcome::Failed);
    }

    #[test]
    fn delayed_impact_is_not_reported_as_never_degraded() {
        // healthy for 2s after the fault starts, then down from 3000 to 6000ms
        let r = rec(
            every(100.0, 8000.0, |t| !(3000.0..6000.0).contains(&t)),
            Some((1000.0, 5000.0, true)),
        );
        let v = evaluate(&[recov(2000), recov(6000)], &r);
        assert_eq!(v[0].outcome, Outcome::Failed, "{}", v[0].reason);
        assert_eq!(v[1].outcome, Outcome::Held, "{}", v[1].reason);
        assert_eq!(v[1].figures["recoveryMs"], 5000.0);
    }

    #[test]
    fn a_probe_that_never_fails_never_degraded() {
        let r = rec(every(100.0, 8000.0, |_| true), Some((1000.0, 5000.0, true)));
        let v = evaluate(&[recov(2000)], &r);
        assert_eq!(v[0].outcome, Outcome::Held, "{}", v[0].reason);
        assert_eq!(v[0].measured, "never degraded");
    }

    #[test]
    fn a_flapping_probe_has_not_recovered() {
        // healthy for 500ms at a time only: never stable for 1s
        let r = rec(
            every(100.0, 8000.0, |t| {
                t < 1000.0 || (t as u64 / 500).is_multiple_of(2)
            }),
            Some((1000.0, 5000.0, true)),
        );
        let v = evaluate(&[recov(3000)], &r);
        assert_eq!(v[0].outcome, Outcome::Failed, "{}", v[0].reason);
    }

    #[test]
    fn recovery_not_yet_visible_when_data_ends_is_inconclusive() {
        let mut r = rec(
            every(100.0, 2000.0, |t| t < 1000.0),
            Some((1000.0, 5000.0, true)),
        );
        r.phases.end_ms = 2000.0;
        let v = evaluate(&[recov(5000)], &r);
        assert_eq!(v[0].outcome, Outcome::Inconclusive, "{}", v[0].reason);
    }

    #[test]
    fn aborted_runs_never_hold() {
        let mut r = rec(every(100.0, 8000.0, |_| true), Some((1000.0, 5000.0, true)));
        r.status = RunStatus::Aborted;
        let v = evaluate(&[avail(99.0, Window::Whole)], &r);
        assert_eq!(v[0].outcome, Outcome::Inconclusive);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    proptest! {
        #[test]
        fn availability_held_iff_ratio_meets_bound(oks in proptest::collection::vec(any::<bool>(), 1..200), bound in 0.0f64..100.0) {
            let samples: Vec<(f64, bool)> = oks.iter().enumerate().map(|(i, ok)| (i as f64 * 10.0, *ok)).collect();
            let mut r = rec(samples, None);
            r.phases.end_ms = 10_000.0;
            let v = &evaluate(&[avail(bound, Window::Whole)], &r)[0];
            let ratio = oks.iter().filter(|o| **o).count() as f64 / oks.len() as f64;
            prop_assert_eq!(v.outcome == Outcome::Held, ratio >= bound / 100.0);
            prop_assert!(v.outcome != Outcome::Inconclusive);
        }

        /// The window rule: nothing that started before the fault's confirmation counts
        /// as "during", no success answered after the revert counts, and every other
        /// sample is counted exactly once — for every window-based claim alike.
        #[test]
        fn no_sample_started_before_the_confirmation_counts_as_during(
            raw in proptest::collection::vec((0u32..8000, 0u32..1500, any::<bool>()), 0..150),
            inject in 500u32..3000,
            confirm_after in 0u32..1500,
            length in 1u32..4000,
        ) {
            let (injected, confirmed) = (inject as f64, (inject + confirm_after) as f64);
            let reverted = confirmed + length as f64;
            let mut r = rec(vec![], Some((injected, reverted, true)));
            r.faults[0].confirmed_ms = Some(confirmed);
            r.samples = raw
                .iter()
                .map(|(t, lat, ok)| Sample {
                    probe: "p".into(),
                    t_ms: *t as f64,
                    ok: *ok,
                    latency_ms: *lat as f64,
                    detail: String::new(),
                })
                .collect();
            let span = window_span(&r, Window::During, None).expect("span");
            prop_assert_eq!(span, (confirmed, reverted));
            let w = in_window(&r, "p", span);
            for s in &w.counted {
                prop_assert!(s.t_ms >= confirmed, "a sample from {} counted in a window from {}", s.t_ms, confirmed);
                prop_assert!(s.t_ms + s.latency_ms <= reverted || !s.ok, "a success answered after the revert counted");
            }
            let inside = r.samples.iter().filter(|s| s.t_ms >= confirmed && s.t_ms <= reverted).count();
            prop_assert_eq!(w.counted.len() + w.across_end, inside);
            let v = &evaluate(&[avail(50.0, Window::During)], &r)[0];
            if w.counted.is_empty() {
                prop_assert_eq!(v.outcome, Outcome::Inconclusive);
            } else {
                prop_assert_eq!(v.figures["samples"], w.counted.len() as f64);
                prop_assert_eq!(v.figures["inFlightAtStart"], w.across_start as f64);
            }
        }

        #[test]
        fn recovery_time_never_exceeds_the_reported_bound_when_held(down_until in 1000u64..6000, within in 100u64..6000) {
            let r = rec(every(50.0, 10_000.0, |t| !(1000.0..down_until as f64).contains(&t)), Some((1000.0, 9000.0, true)));
            let mut r = r;
            r.phases.end_ms = 10_000.0;
            let v = &evaluate(&[recov(within)], &r)[0];
            if v.outcome == Outcome::Held {
                prop_assert!(v.figures["recoveryMs"] <= within as f64);
            }
            // the probe is down from 1000ms to down_until (rounded up to the 50ms grid)
            let expected = ((down_until as f64 / 50.0).ceil() * 50.0) - 1000.0;
            prop_assert_eq!(v.figures["recoveryMs"], expected);
            prop_assert_eq!(v.outcome == Outcome::Held, expected <= within as f64);
        }
    }
}
