//! Repeated trials: the same experiment run N times, each with a fresh lab, and per claim
//! how often it held, failed or was inconclusive, with the spread of its measured figures.
//! A claim that holds in some trials and fails in others is **flaky**, never held.

use crate::report::{exit, figure, RunReport};
use crate::verdict::{percentile, Outcome, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrialVerdict {
    /// Held in every trial.
    Held,
    /// Failed in every trial that reached a verdict.
    Failed,
    /// Held in some trials and failed in others.
    Flaky,
    /// Never failed, but not held every time (or never evaluated).
    Inconclusive,
}

impl TrialVerdict {
    pub fn word(self) -> &'static str {
        match self {
            TrialVerdict::Held => "HELD",
            TrialVerdict::Failed => "FAILED",
            TrialVerdict::Flaky => "FLAKY",
            TrialVerdict::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// The spread of one figure over the trials that measured it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dist {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    pub fn of(mut xs: Vec<f64>) -> Option<Dist> {
        xs.retain(|x| x.is_finite());
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        Some(Dist {
            n: xs.len(),
            min: xs[0],
            p50: percentile(&xs, 50.0)?,
            p99: percentile(&xs, 99.0)?,
            max: xs[xs.len() - 1],
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimTrials {
    pub claim: String,
    pub kind: String,
    pub verdict: TrialVerdict,
    pub held: usize,
    pub failed: usize,
    pub inconclusive: usize,
    /// Each trial's outcome, in order.
    pub outcomes: Vec<Outcome>,
    pub figures: BTreeMap<String, Dist>,
}

/// Classify one claim over its trials.
pub fn classify(outcomes: &[Outcome]) -> TrialVerdict {
    let held = outcomes.iter().filter(|o| **o == Outcome::Held).count();
    let failed = outcomes.iter().filter(|o| **o == Outcome::Failed).count();
    match (held, failed) {
        (h, 0) if h == outcomes.len() && h > 0 => TrialVerdict::Held,
        (0, f) if f > 0 => TrialVerdict::Failed,
        (h, f) if h > 0 && f > 0 => TrialVerdict::Flaky,
        _ => TrialVerdict::Inconclusive,
    }
}

/// Per claim (in the experiment's order), over every trial's verdicts.
pub fn aggregate(trials: &[Vec<Verdict>]) -> Vec<ClaimTrials> {
    let mut order: Vec<(String, String)> = Vec::new();
    for t in trials {
        for v in t {
            if !order.iter().any(|(c, _)| c == &v.claim) {
                order.push((v.claim.clone(), v.kind.clone()));
            }
        }
    }
    order
        .into_iter()
        .map(|(claim, kind)| {
            let vs: Vec<&Verdict> = trials
                .iter()
                .filter_map(|t| t.iter().find(|v| v.claim == claim))
                .collect();
            // A trial without this claim's verdict counts as inconclusive.
            let outcomes: Vec<Outcome> = trials
                .iter()
                .map(|t| {
                    t.iter()
                        .find(|v| v.claim == claim)
                        .map_or(Outcome::Inconclusive, |v| v.outcome)
                })
                .collect();
            let mut figs: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for v in &vs {
                for (k, x) in &v.figures {
                    figs.entry(k.clone()).or_default().push(*x);
                }
            }
            ClaimTrials {
                verdict: classify(&outcomes),
                held: outcomes.iter().filter(|o| **o == Outcome::Held).count(),
                failed: outcomes.iter().filter(|o| **o == Outcome::Failed).count(),
                inconclusive: outcomes
                    .iter()
                    .filter(|o| **o == Outcome::Inconclusive)
                    .count(),
                outcomes,
                figures: figs
                    .into_iter()
                    .filter_map(|(k, xs)| Dist::of(xs).map(|d| (k, d)))
                    .collect(),
                claim,
                kind,
            }
        })
        .collect()
}

/// Failed or flaky → 1; else inconclusive → 2; all held → 0.
pub fn exit_code(claims: &[ClaimTrials]) -> i32 {
    if claims
        .iter()
        .any(|c| matches!(c.verdict, TrialVerdict::Failed | TrialVerdict::Flaky))
    {
        exit::FAILED
    } else if claims.is_empty()
        || claims
            .iter()
            .any(|c| c.verdict == TrialVerdict::Inconclusive)
    {
        exit::INCONCLUSIVE
    } else {
        exit::HELD
    }
}

/// Everything `--trials` produced, as written by `--json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialsReport {
    pub murphy_version: String,
    pub experiment: String,
    pub claims: Vec<ClaimTrials>,
    pub trials: Vec<RunReport>,
    pub exit_code: i32,
}

impl TrialsReport {
    pub fn new(trials: Vec<RunReport>) -> TrialsReport {
        let verdicts: Vec<Vec<Verdict>> = trials.iter().map(|t| t.verdicts.clone()).collect();
        let claims = aggregate(&verdicts);
        TrialsReport {
            murphy_version: env!("CARGO_PKG_VERSION").into(),
            experiment: trials
                .first()
                .map(|t| t.experiment.metadata.name.clone())
                .unwrap_or_default(),
            // A trial that left something behind says so first, as a single run does.
            exit_code: if trials.iter().any(|t| !t.record.left_behind.is_empty()) {
                crate::report::exit::LEFT_BEHIND
            } else {
                exit_code(&claims)
            },
            claims,
            trials,
        }
    }
}

fn spread(name: &str, d: &Dist) -> String {
    if d.min == d.max {
        format!("{name} {}", figure(name, d.min))
    } else {
        format!(
            "{name} min {} · p50 {} · p99 {} · max {}",
            figure(name, d.min),
            figure(name, d.p50),
            figure(name, d.p99),
            figure(name, d.max)
        )
    }
}

/// The headline figures worth a line in a terminal.
const KEY_FIGURES: [&str; 8] = [
    "percentileMs",
    "recoveryMs",
    "ratio",
    "longestGapMs",
    "clientMovedMs",
    "lost",
    "overlapMs",
    "affected",
];

/// The trials table for terminals.
pub fn table(r: &TrialsReport) -> String {
    let n = r.trials.len();
    let mut o = format!("\nExperiment {} · {n} trial(s)\n", r.experiment);
    for (i, t) in r.trials.iter().enumerate() {
        let word = |x: Outcome| x.word().chars().next().unwrap_or('?');
        o.push_str(&format!(
            "  trial {}: run {} seed {} status {:?}: {}\n",
            i + 1,
            t.run_id,
            t.seed,
            t.record.status,
            t.verdicts
                .iter()
                .map(|v| word(v.outcome))
                .collect::<String>()
        ));
    }
    o.push('\n');
    for c in &r.claims {
        o.push_str(&format!(
            "  {:<13} {}  (held {}/{n}, failed {}, inconclusive {})\n",
            c.verdict.word(),
            c.claim,
            c.held,
            c.failed,
            c.inconclusive
        ));
        for k in KEY_FIGURES {
            if let Some(d) = c.figures.get(k) {
                o.push_str(&format!("                {}\n", spread(k, d)));
            }
        }
    }
    let count = |v: TrialVerdict| r.claims.iter().filter(|c| c.verdict == v).count();
    o.push_str(&format!(
        "\n{} held, {} failed, {} flaky, {} inconclusive over {n} trial(s) (exit code {})\n",
        count(TrialVerdict::Held),
        count(TrialVerdict::Failed),
        count(TrialVerdict::Flaky),
        count(TrialVerdict::Inconclusive),
        r.exit_code
    ));
    o
}

/// A Markdown summary of the trials.
pub fn markdown(r: &TrialsReport) -> String {
    let n = r.trials.len();
    let mut o = format!(
        "### Murphy: {} — {n} trial(s)\n\n| verdict | claim | held | failed | inconclusive | figures (min · p50 · p99 · max) |\n|---|---|---|---|---|---|\n",
        r.experiment
    );
    for c in &r.claims {
        let mark = match c.verdict {
            TrialVerdict::Held => "✅ held",
            TrialVerdict::Failed => "❌ failed",
            TrialVerdict::Flaky => "🔀 flaky",
            TrialVerdict::Inconclusive => "⚠️ inconclusive",
        };
        let figs = c
            .figures
            .iter()
            .map(|(k, d)| spread(k, d))
            .collect::<Vec<_>>()
            .join("; ");
        o.push_str(&format!(
            "| {mark} | {} | {}/{n} | {} | {} | {} |\n",
            c.claim.replace('|', "\\|"),
            c.held,
            c.failed,
            c.inconclusive,
            figs
        ));
    }
    o
}

/// JUnit for trials, in the shape of a single run's ([`crate::junit`]): one suite, one
/// test case per claim; failed and flaky claims are failures, inconclusive ones errors.
pub fn junit(r: &TrialsReport) -> String {
    use crate::junit::{Case, Ending, Suite};
    let n = r.trials.len();
    let total_ms: f64 = r
        .trials
        .iter()
        .map(|t| t.record.phases.end_ms.max(0.0))
        .sum();
    let cases = r
        .claims
        .iter()
        .map(|c| {
            let summary = format!(
                "{} over {n} trial(s): held {}, failed {}, inconclusive {}",
                c.verdict.word(),
                c.held,
                c.failed,
                c.inconclusive
            );
            let figs: String = c
                .figures
                .iter()
                .map(|(k, d)| format!("\n{}", spread(k, d)))
                .collect();
            Case {
                classname: format!("{}.{}", r.experiment, c.kind),
                name: c.claim.clone(),
                ending: match c.verdict {
                    TrialVerdict::Held => Ending::Passed,
                    TrialVerdict::Failed | TrialVerdict::Flaky => Ending::Failed {
                        kind: format!("claim-{}", c.verdict.word().to_lowercase()),
                    },
                    TrialVerdict::Inconclusive => Ending::Inconclusive,
                },
                message: summary.clone(),
                detail: summary.clone(),
                out: format!("{summary}{figs}"),
                time: std::time::Duration::from_secs_f64(total_ms / 1000.0),
            }
        })
        .chain(r.trials.iter().filter_map(|t| {
            crate::junit::left_behind_case(&r.experiment, &t.run_id, &t.record.left_behind)
        }))
        .collect::<Vec<Case>>();
    let first = r.trials.first();
    crate::junit::render(Suite {
        name: r.experiment.clone(),
        started_unix_ms: first.map_or(0, |t| t.started_unix_ms),
        hostname: first.map(|t| t.hostname.clone()).unwrap_or_default(),
        time: std::time::Duration::from_secs_f64(total_ms / 1000.0),
        properties: vec![
            ("trials".into(), n.to_string()),
            (
                "runIds".into(),
                r.trials
                    .iter()
                    .map(|t| t.run_id.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "seeds".into(),
                r.trials
                    .iter()
                    .map(|t| t.seed.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("murphyVersion".into(), r.murphy_version.clone()),
        ],
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(claim: &str, o: Outcome, fig: Option<f64>) -> Verdict {
        Verdict {
            claim: claim.into(),
            kind: "recovers".into(),
            outcome: o,
            measured: String::new(),
            reason: String::new(),
            figures: fig
                .map(|x| BTreeMap::from([("recoveryMs".to_string(), x)]))
                .unwrap_or_default(),
            lost_writes: vec![],
            indeterminate_writes: vec![],
        }
    }

    #[test]
    fn classification() {
        use Outcome::*;
        assert_eq!(classify(&[Held, Held, Held]), TrialVerdict::Held);
        assert_eq!(classify(&[Failed, Failed]), TrialVerdict::Failed);
        assert_eq!(classify(&[Held, Failed, Held]), TrialVerdict::Flaky);
        assert_eq!(classify(&[Held, Inconclusive]), TrialVerdict::Inconclusive);
        assert_eq!(classify(&[Failed, Inconclusive]), TrialVerdict::Failed);
        assert_eq!(classify(&[Inconclusive]), TrialVerdict::Inconclusive);
        assert_eq!(classify(&[]), TrialVerdict::Inconclusive);
    }

    #[test]
    fn flaky_claim_is_never_held_and_figures_are_spread() {
        use Outcome::*;
        let trials = vec![
            vec![v("a", Held, Some(1000.0)), v("b", Held, Some(5.0))],
            vec![v("a", Failed, Some(9000.0)), v("b", Held, Some(7.0))],
            vec![v("a", Held, Some(2000.0)), v("b", Held, Some(6.0))],
        ];
        let agg = aggregate(&trials);
        assert_eq!(agg[0].verdict, TrialVerdict::Flaky);
        assert_eq!((agg[0].held, agg[0].failed), (2, 1));
        assert_eq!(agg[0].outcomes, vec![Held, Failed, Held]);
        let d = &agg[0].figures["recoveryMs"];
        assert_eq!((d.n, d.min, d.p50, d.max), (3, 1000.0, 2000.0, 9000.0));
        assert_eq!(agg[1].verdict, TrialVerdict::Held);
        assert_eq!(exit_code(&agg), exit::FAILED, "flaky fails the run");
        assert_eq!(exit_code(&agg[1..]), exit::HELD);
    }

    #[test]
    fn a_missing_verdict_counts_as_inconclusive() {
        use Outcome::*;
        let trials = vec![vec![v("a", Held, None)], vec![]];
        let agg = aggregate(&trials);
        assert_eq!(agg[0].verdict, TrialVerdict::Inconclusive);
        assert_eq!(agg[0].inconclusive, 1);
        assert_eq!(exit_code(&agg), exit::INCONCLUSIVE);
    }
}
