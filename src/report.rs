//! Reports: the claims table for terminals, the whole run as JSON, and JUnit XML (one test
//! case per claim). Reports render verdicts; they never recompute them.

use crate::model::spec::Experiment;
use crate::output::RunOutput;
use crate::record::history::OpResult;
use crate::record::{RunRecord, RunStatus};
use crate::verdict::history::WriteRef;
use crate::verdict::{Outcome, Verdict};
use serde::{Deserialize, Serialize};

/// Exit codes, documented in the README.
pub mod exit {
    /// Every claim held.
    pub const HELD: i32 = 0;
    /// At least one claim failed.
    pub const FAILED: i32 = 1;
    /// No claim failed, but at least one was inconclusive, or the run was aborted.
    pub const INCONCLUSIVE: i32 = 2;
    /// The experiment file is invalid (or the command line is).
    pub const INVALID: i32 = 3;
    /// Murphy itself failed (e.g. could not write its journal).
    pub const INTERNAL: i32 = 4;
    /// A revert or the lab's teardown did not complete: something of the run is still in
    /// the system (the report names it; `murphy recover --run ID` replays the journal).
    /// Whatever the verdicts, this comes first.
    pub const LEFT_BEHIND: i32 = 5;
}

/// The whole run, as written by `--json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub murphy_version: String,
    pub run_id: String,
    pub seed: u64,
    pub started_unix_ms: u64,
    pub hostname: String,
    /// Kernel release of the machine that ran it.
    #[serde(default)]
    pub kernel: String,
    pub experiment: Experiment,
    pub verdicts: Vec<Verdict>,
    pub record: RunRecord,
    pub exit_code: i32,
}

pub fn exit_code(verdicts: &[Verdict], status: &RunStatus, left_behind: &[String]) -> i32 {
    if !left_behind.is_empty() {
        exit::LEFT_BEHIND
    } else if verdicts.iter().any(|v| v.outcome == Outcome::Failed) {
        exit::FAILED
    } else if verdicts.iter().any(|v| v.outcome == Outcome::Inconclusive)
        || *status != RunStatus::Completed
        || verdicts.is_empty()
    {
        exit::INCONCLUSIVE
    } else {
        exit::HELD
    }
}

impl RunReport {
    pub fn new(exp: &Experiment, out: RunOutput) -> RunReport {
        let exit_code = exit_code(&out.verdicts, &out.record.status, &out.record.left_behind);
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        RunReport {
            kernel,
            murphy_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: out.run_id,
            seed: out.seed,
            started_unix_ms: out.started_unix_ms,
            hostname,
            experiment: exp.clone(),
            verdicts: out.verdicts,
            record: out.record,
            exit_code,
        }
    }
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

/// `s` in lines of at most `width` characters, broken at spaces (a longer word is cut).
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let n = cur.chars().count();
            let room = if n == 0 {
                width
            } else {
                width.saturating_sub(n + 1)
            };
            if word.len() <= room {
                if n > 0 {
                    cur.push(' ');
                }
                cur.extend(word.iter());
                break;
            }
            if n > 0 {
                lines.push(std::mem::take(&mut cur));
                continue;
            }
            // A word longer than a whole line: cut it.
            lines.push(word[..width].iter().collect());
            word = word[width..].to_vec();
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// The claims table and a summary, for a terminal (no colour codes: safe for CI logs);
/// lines are as long as the reasons.
pub fn table(r: &RunReport) -> String {
    table_fit(r, None)
}

/// The claims table fitted to a terminal `width` columns wide (reasons and long claim
/// names wrap in their columns; below ~80 columns each claim is a card of its own).
pub fn table_fit(r: &RunReport, width: Option<usize>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\nExperiment {} · run {} · seed {}\n",
        r.experiment.metadata.name, r.run_id, r.seed
    ));
    if let Some(d) = &r.experiment.spec.description {
        match width {
            Some(w) => {
                for l in wrap(d, w) {
                    out.push_str(&format!("{l}\n"));
                }
            }
            None => out.push_str(&format!("{d}\n")),
        }
    }
    if r.record.status != RunStatus::Completed {
        out.push_str(&format!(
            "Run status: {:?}: {}\n",
            r.record.status,
            r.record.status_reason.as_deref().unwrap_or("")
        ));
    }
    if !r.record.left_behind.is_empty() {
        out.push_str(&format!(
            "LEFT BEHIND: not everything was undone; run `murphy recover --run {}`:\n",
            r.run_id
        ));
        for l in &r.record.left_behind {
            out.push_str(&format!("  - {l}\n"));
        }
    }
    out.push('\n');
    for f in &r.record.faults {
        let state = if f.confirmed {
            "confirmed"
        } else {
            "NOT confirmed"
        };
        let window = match (f.injected_ms, f.reverted_ms) {
            (Some(a), Some(b)) => format!("{:.1}s → {:.1}s", a / 1000.0, b / 1000.0),
            (Some(a), None) => format!("{:.1}s → (not reverted)", a / 1000.0),
            _ => "never injected".into(),
        };
        let detail = if f.confirmed {
            f.evidence.clone()
        } else {
            f.error.clone().unwrap_or_default()
        };
        let line = format!(
            "fault {} ({}) on {}: {window}, {state}: {detail}",
            f.name,
            f.kind,
            f.members.join(", ")
        );
        match width {
            Some(w) => {
                for (i, l) in wrap(&line, w.saturating_sub(6)).iter().enumerate() {
                    let indent = if i == 0 { "  " } else { "      " };
                    out.push_str(&format!("{indent}{l}\n"));
                }
            }
            None => out.push_str(&format!("  {line}\n")),
        }
    }
    out.push('\n');
    let w_claim = r
        .verdicts
        .iter()
        .map(|v| v.claim.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 48);
    let w_meas = r
        .verdicts
        .iter()
        .map(|v| v.measured.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 28);
    let fixed = 2 + w_claim + 2 + 12 + 2 + w_meas + 2;
    match width {
        // Too narrow for columns: one card per claim.
        Some(w) if w < fixed + 24 => {
            let body = w.saturating_sub(16).max(20);
            for v in &r.verdicts {
                for (i, l) in wrap(&v.claim, body).iter().enumerate() {
                    let word = if i == 0 { v.outcome.word() } else { "" };
                    out.push_str(&format!("  {}  {l}\n", pad(word, 12)));
                }
                for l in wrap(&format!("measured: {}", v.measured), body) {
                    out.push_str(&format!("  {}  {l}\n", pad("", 12)));
                }
                for l in wrap(&v.reason, body) {
                    out.push_str(&format!("  {}  {l}\n", pad("", 12)));
                }
                out.push('\n');
            }
        }
        _ => {
            out.push_str(&format!(
                "  {}  {}  {}  REASON\n",
                pad("CLAIM", w_claim),
                pad("VERDICT", 12),
                pad("MEASURED", w_meas)
            ));
            for v in &r.verdicts {
                let claim = wrap(&v.claim, w_claim);
                let meas = wrap(&v.measured, w_meas);
                let reason = match width {
                    Some(w) => wrap(&v.reason, w - fixed),
                    None => vec![v.reason.clone()],
                };
                let rows = claim.len().max(meas.len()).max(reason.len());
                let cell = |c: &[String], i: usize| c.get(i).cloned().unwrap_or_default();
                for i in 0..rows {
                    let word = if i == 0 { v.outcome.word() } else { "" };
                    let line = format!(
                        "  {}  {}  {}  {}",
                        pad(&cell(&claim, i), w_claim),
                        pad(word, 12),
                        pad(&cell(&meas, i), w_meas),
                        cell(&reason, i)
                    );
                    out.push_str(line.trim_end());
                    out.push('\n');
                }
            }
        }
    }
    if !r.record.histories.is_empty() {
        out.push_str("\n  WORKLOAD            OK    FAIL  UNKNOWN  FINAL READ\n");
        for h in &r.record.histories {
            let fr = match &h.final_read {
                Some(f) if f.ok => format!("{} values from {}", f.values.len(), f.endpoint),
                Some(f) => format!("FAILED: {}", f.error.as_deref().unwrap_or("?")),
                None => "-".into(),
            };
            out.push_str(&format!(
                "  {}  {:>4}  {:>4}  {:>7}  {fr}\n",
                pad(&h.workload, 16),
                h.count(OpResult::Ok),
                h.count(OpResult::Fail),
                h.count(OpResult::Info)
            ));
        }
    }
    for v in r.verdicts.iter().filter(|v| !v.lost_writes.is_empty()) {
        out.push_str(&format!(
            "\n  {} for \"{}\" ({}; value, when acknowledged, by whom):\n",
            if v.kind == "eventuallyDelivered" {
                "Undelivered messages"
            } else {
                "Lost writes"
            },
            v.claim,
            v.lost_writes.len()
        ));
        out.push_str(&lost_lines(&v.lost_writes, TABLE_LOST_LINES));
    }
    let held = r
        .verdicts
        .iter()
        .filter(|v| v.outcome == Outcome::Held)
        .count();
    let failed = r
        .verdicts
        .iter()
        .filter(|v| v.outcome == Outcome::Failed)
        .count();
    let inc = r.verdicts.len() - held - failed;
    out.push_str(&format!(
        "\n{held} held, {failed} failed, {inc} inconclusive (exit code {})\n",
        r.exit_code
    ));
    match width {
        Some(w) => fit_lines(&out, w),
        None => out,
    }
}

/// Every line of `text` within `width` columns: a longer one wraps, its continuation
/// indented two more than the line.
fn fit_lines(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.chars().count() <= width {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        for (i, l) in wrap(line.trim_start(), width.saturating_sub(indent + 2))
            .iter()
            .enumerate()
        {
            let pad = if i == 0 { indent } else { indent + 2 };
            out.push_str(&format!("{}{l}\n", " ".repeat(pad)));
        }
    }
    out
}

/// How many lost writes the terminal table lists (all are in JSON and JUnit).
const TABLE_LOST_LINES: usize = 12;

fn lost_lines(lost: &[WriteRef], limit: usize) -> String {
    let mut out = String::new();
    for w in lost.iter().take(limit) {
        out.push_str(&format!(
            "    {}  acked at {:.3}s by {}\n",
            w.value,
            w.t_ms / 1000.0,
            w.endpoint
        ));
    }
    if lost.len() > limit {
        out.push_str(&format!(
            "    … and {} more (every one is in the JSON report)\n",
            lost.len() - limit
        ));
    }
    out
}

/// JUnit XML: one test case per claim. Failed claims are failures; inconclusive claims are
/// errors (never passes). See [`crate::junit`].
pub fn junit(r: &RunReport) -> String {
    use crate::junit::{Case, Ending, Suite, LOST_LISTED};
    let name = r.experiment.metadata.name.clone();
    let run_ms = r.record.phases.end_ms.max(0.0);
    let cases = r
        .verdicts
        .iter()
        .map(|v| {
            let mut detail = format!("measured: {}", v.measured);
            if !v.lost_writes.is_empty() {
                detail.push_str(&format!(
                    "\nlost writes ({}):\n{}",
                    v.lost_writes.len(),
                    lost_lines(&v.lost_writes, LOST_LISTED)
                ));
            }
            // A claim's time is the span of evidence it judged: its window when it has
            // one, else the run.
            let ms = v
                .figures
                .get("windowMs")
                .copied()
                .unwrap_or(run_ms)
                .max(0.0);
            Case {
                classname: format!("{name}.{}", v.kind),
                name: v.claim.clone(),
                ending: match v.outcome {
                    Outcome::Held => Ending::Passed,
                    Outcome::Failed => Ending::Failed {
                        kind: "claim-failed".into(),
                    },
                    Outcome::Inconclusive => Ending::Inconclusive,
                },
                message: v.reason.clone(),
                detail,
                out: format!(
                    "measured: {}{}",
                    v.measured,
                    v.figures
                        .iter()
                        .map(|(k, val)| format!("\n{k}: {}", figure(k, *val)))
                        .collect::<String>()
                ),
                time: std::time::Duration::from_secs_f64(ms / 1000.0),
            }
        })
        .chain(crate::junit::left_behind_case(
            &name,
            &r.run_id,
            &r.record.left_behind,
        ))
        .collect();
    crate::junit::render(Suite {
        name,
        started_unix_ms: r.started_unix_ms,
        hostname: r.hostname.clone(),
        time: std::time::Duration::from_secs_f64(run_ms / 1000.0),
        properties: vec![
            ("runId".into(), r.run_id.clone()),
            ("seed".into(), r.seed.to_string()),
            ("status".into(), format!("{:?}", r.record.status)),
            ("kernel".into(), r.kernel.clone()),
            ("murphyVersion".into(), r.murphy_version.clone()),
        ],
        cases,
    })
}

/// A figure for people: times (names ending in `Ms`) in seconds, counts as integers.
pub fn figure(name: &str, v: f64) -> String {
    if name.ends_with("Ms") {
        if v.abs() < 1000.0 {
            format!("{v:.0}ms")
        } else {
            format!("{:.3}s", v / 1000.0)
        }
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown summary for a CI job's step summary: verdicts with measured figures, then
/// the lost writes (folded).
pub fn markdown(r: &RunReport) -> String {
    let mut o = String::new();
    let count = |x: Outcome| r.verdicts.iter().filter(|v| v.outcome == x).count();
    o.push_str(&format!(
        "### Murphy: {} — {} held, {} failed, {} inconclusive\n\n",
        md_cell(&r.experiment.metadata.name),
        count(Outcome::Held),
        count(Outcome::Failed),
        count(Outcome::Inconclusive)
    ));
    if let Some(d) = &r.experiment.spec.description {
        o.push_str(&format!("{}\n\n", md_cell(d)));
    }
    o.push_str(&format!(
        "Run `{}`, seed `{}`, status `{:?}`, exit code {}.\n\n",
        r.run_id, r.seed, r.record.status, r.exit_code
    ));
    if !r.record.left_behind.is_empty() {
        o.push_str(&format!(
            "**LEFT BEHIND**: not everything was undone; run `murphy recover --run {}`:\n\n",
            r.run_id
        ));
        for l in &r.record.left_behind {
            o.push_str(&format!("- {}\n", md_cell(l)));
        }
        o.push('\n');
    }
    o.push_str("| | claim | measured | figures | reason |\n|---|---|---|---|---|\n");
    for v in &r.verdicts {
        let mark = match v.outcome {
            Outcome::Held => "✅ held",
            Outcome::Failed => "❌ failed",
            Outcome::Inconclusive => "⚠️ inconclusive",
        };
        let figs = v
            .figures
            .iter()
            .map(|(k, x)| format!("{k}={}", figure(k, *x)))
            .collect::<Vec<_>>()
            .join(", ");
        o.push_str(&format!(
            "| {mark} | {} | {} | {} | {} |\n",
            md_cell(&v.claim),
            md_cell(&v.measured),
            md_cell(&figs),
            md_cell(&v.reason)
        ));
    }
    for f in &r.record.faults {
        o.push_str(&format!(
            "\n- fault **{}** ({}) on {}: {}",
            md_cell(&f.name),
            f.kind,
            md_cell(&f.members.join(", ")),
            if f.confirmed {
                format!("confirmed: {}", md_cell(&f.evidence))
            } else {
                format!(
                    "NOT confirmed: {}",
                    md_cell(f.error.as_deref().unwrap_or(""))
                )
            }
        ));
    }
    o.push('\n');
    for v in r.verdicts.iter().filter(|v| !v.lost_writes.is_empty()) {
        o.push_str(&format!(
            "\n<details><summary>{} lost writes: {}</summary>\n\n| value | acknowledged at | by |\n|---|---|---|\n",
            v.lost_writes.len(),
            md_cell(&v.claim)
        ));
        for w in v.lost_writes.iter().take(500) {
            o.push_str(&format!(
                "| `{}` | {:.3}s | {} |\n",
                md_cell(&w.value),
                w.t_ms / 1000.0,
                md_cell(&w.endpoint)
            ));
        }
        if v.lost_writes.len() > 500 {
            o.push_str(&format!(
                "\n… and {} more in the JSON report.\n",
                v.lost_writes.len() - 500
            ));
        }
        o.push_str("\n</details>\n");
    }
    o
}

#[cfg(test)]
mod exit_tests {
    use super::*;

    #[test]
    fn something_left_behind_comes_before_any_verdict() {
        let held = Verdict {
            claim: "c".into(),
            kind: "availability".into(),
            outcome: Outcome::Held,
            measured: String::new(),
            reason: String::new(),
            figures: Default::default(),
            lost_writes: vec![],
            indeterminate_writes: vec![],
        };
        let v = vec![held];
        assert_eq!(exit_code(&v, &RunStatus::Completed, &[]), exit::HELD);
        let left = vec!["fault f: restoring /x: not a directory".to_string()];
        assert_eq!(
            exit_code(&v, &RunStatus::Completed, &left),
            exit::LEFT_BEHIND
        );
        let mut failed = v.clone();
        failed[0].outcome = Outcome::Failed;
        assert_eq!(
            exit_code(&failed, &RunStatus::Aborted, &left),
            exit::LEFT_BEHIND
        );
    }
}
