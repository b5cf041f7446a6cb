//! Grafana annotations for a finished run, through Grafana's HTTP API
//! (`POST /api/annotations`, <https://grafana.com/docs/grafana/latest/developers/http_api/annotations/>):
//! one region per fault, from when it was confirmed in effect to its revert, and one point
//! at the end of the run with the verdict. Each is tagged `murphy`, `experiment:<name>`,
//! `run:<id>` (and `fault:<name>`, `kind:<kind>` or `verdict:<outcome>`), so a dashboard's
//! annotation query can select them by tag. Without `dashboardUID` they are organisation
//! annotations, shown on every dashboard that asks for those tags.

use crate::httpapi::{self, BaseUrl};
use crate::report::RunReport;
use crate::verdict::Outcome;
use serde::Serialize;
use std::time::Duration;

/// One annotation as Grafana's API takes it (times in Unix milliseconds).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    #[serde(rename = "dashboardUID", skip_serializing_if = "Option::is_none")]
    pub dashboard_uid: Option<String>,
    pub time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_end: Option<u64>,
    pub tags: Vec<String>,
    pub text: String,
}

/// Where to post and as whom.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: BaseUrl,
    /// A Grafana service account token (sent as `Authorization: Bearer`).
    pub token: Option<String>,
    pub dashboard_uid: Option<String>,
}

/// Tag values: Grafana keeps them as they are, but a `:` or `,` inside one reads badly.
fn tag(k: &str, v: &str) -> String {
    let v: String = v
        .chars()
        .map(|c| if c == ',' || c.is_control() { ' ' } else { c })
        .take(100)
        .collect();
    format!("{k}:{v}")
}

/// The annotations of a run: each fault's window, then the verdict.
pub fn annotations(rep: &RunReport, dashboard_uid: Option<&str>) -> Vec<Annotation> {
    let wall = |ms: f64| rep.started_unix_ms + ms.max(0.0).round() as u64;
    let name = &rep.experiment.metadata.name;
    let base = vec![
        "murphy".to_string(),
        tag("experiment", name),
        tag("run", &rep.run_id),
    ];
    let rec = &rep.record;
    let mut out = Vec::new();
    for f in &rec.faults {
        let mut tags = base.clone();
        tags.push(tag("fault", &f.name));
        tags.push(tag("kind", &f.kind));
        let on = if f.members.is_empty() {
            f.target.clone()
        } else {
            f.members.join(", ")
        };
        let (time, time_end, text) = match f.in_effect_ms() {
            Some(start) if f.confirmed => {
                let end = f
                    .ended_early
                    .as_ref()
                    .map(|e| e.last_known_ms)
                    .or(f.reverted_ms)
                    .unwrap_or(rec.phases.end_ms);
                let how = if f.ended_early.is_some() {
                    " (ended early: the window was not covered)"
                } else if f.reverted_ms.is_none() {
                    " (not reverted by the end of the run)"
                } else {
                    ""
                };
                (
                    wall(start),
                    Some(wall(end.max(start))),
                    format!(
                        "Murphy: fault {} ({}) in effect on {on}{how}. {}",
                        f.name, f.kind, f.evidence
                    ),
                )
            }
            _ => {
                tags.push("unconfirmed".into());
                (
                    wall(f.injected_ms.unwrap_or(rec.phases.end_ms)),
                    None,
                    format!(
                        "Murphy: fault {} ({}) on {on} was never confirmed in effect{}",
                        f.name,
                        f.kind,
                        f.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                )
            }
        };
        out.push(Annotation {
            dashboard_uid: dashboard_uid.map(str::to_string),
            time,
            time_end,
            tags,
            text: text.trim_end().to_string(),
        });
    }
    let count = |o: Outcome| rep.verdicts.iter().filter(|v| v.outcome == o).count();
    let (held, failed, inconclusive) = (
        count(Outcome::Held),
        count(Outcome::Failed),
        count(Outcome::Inconclusive),
    );
    let overall = if failed > 0 {
        "failed"
    } else if inconclusive > 0 || rep.verdicts.is_empty() {
        "inconclusive"
    } else {
        "held"
    };
    let mut tags = base;
    tags.push(tag("verdict", overall));
    let mut text = format!(
        "Murphy: {name} {overall}: {held} held, {failed} failed, {inconclusive} inconclusive"
    );
    for v in &rep.verdicts {
        text.push_str(&format!(
            "\n{} {}: {}",
            v.outcome.word(),
            v.claim,
            v.measured
        ));
    }
    out.push(Annotation {
        dashboard_uid: dashboard_uid.map(str::to_string),
        time: wall(rec.phases.end_ms),
        time_end: None,
        tags,
        text,
    });
    out
}

/// Post every annotation; how many Grafana accepted, or why it stopped at the first it
/// refused (what it said).
pub fn post(to: &Target, anns: &[Annotation]) -> Result<usize, String> {
    let agent = httpapi::agent(Duration::from_secs(10));
    let url = to.url.join("/api/annotations");
    for (i, a) in anns.iter().enumerate() {
        let mut req = agent.post(&url);
        if let Some(t) = &to.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req
            .send_json(a)
            .map_err(|e| format!("posting to {url}: {e}"))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let body = resp
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string()
                .unwrap_or_default();
            return Err(format!(
                "{url} refused annotation {} of {} with HTTP {status}: {}",
                i + 1,
                anns.len(),
                httpapi::excerpt(&body)
            ));
        }
    }
    Ok(anns.len())
}
