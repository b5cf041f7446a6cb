//! JUnit XML through a maintained writer (`quick-junit`, nextest's), in one shape for a
//! single run and for `--trials`: one suite per experiment (timestamp, hostname, time, the
//! run's identity as properties), one test case per claim (its time, a failure or an
//! error with the reason, figures rounded for people in `system-out`). Valid against the
//! common `junit-10.xsd` (Jenkins xUnit, pytest): nothing inside a test case but its
//! outcome and output.

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// Lost writes listed in a failure at most; the rest is counted (every one is in the JSON).
pub const LOST_LISTED: usize = 20;

/// How one claim ended, for JUnit.
pub enum Ending {
    Passed,
    /// `<failure type=…>`: the claim was judged and did not hold (or was flaky).
    Failed {
        kind: String,
    },
    /// `<error type="inconclusive">`: the run could not judge it.
    Inconclusive,
}

pub struct Case {
    pub classname: String,
    pub name: String,
    pub ending: Ending,
    /// The failure's or error's message (the verdict's reason).
    pub message: String,
    /// The failure's text (what was measured, the lost writes).
    pub detail: String,
    /// `system-out`: what was measured and the figures.
    pub out: String,
    pub time: Duration,
}

pub struct Suite {
    pub name: String,
    pub started_unix_ms: u64,
    pub hostname: String,
    pub time: Duration,
    pub properties: Vec<(String, String)>,
    pub cases: Vec<Case>,
}

/// The test case that fails when a run did not undo everything it did (its faults or its
/// lab), so a CI job reading only the JUnit sees it too; none when everything was undone.
pub fn left_behind_case(experiment: &str, run_id: &str, left: &[String]) -> Option<Case> {
    if left.is_empty() {
        return None;
    }
    let message = format!("not everything was undone; run `murphy recover --run {run_id}`");
    let detail = left
        .iter()
        .map(|l| format!("- {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    Some(Case {
        classname: format!("{experiment}.murphy"),
        name: format!("run {run_id} undid everything it did"),
        ending: Ending::Failed {
            kind: "left-behind".into(),
        },
        out: format!("{message}\n{detail}"),
        message,
        detail,
        time: Duration::ZERO,
    })
}

/// The XML document for one suite.
pub fn render(s: Suite) -> String {
    let mut suite = TestSuite::new(s.name.as_str());
    if let Some(t) = i64::try_from(s.started_unix_ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
    {
        suite.set_timestamp(t.fixed_offset());
    }
    suite.set_time(s.time);
    if !s.hostname.is_empty() {
        suite
            .extra
            .insert("hostname".into(), s.hostname.as_str().into());
    }
    for (k, v) in &s.properties {
        suite.add_property(Property::new(k.as_str(), v.as_str()));
    }
    for c in s.cases {
        let status = match c.ending {
            Ending::Passed => TestCaseStatus::success(),
            Ending::Failed { kind } => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(c.message.as_str())
                    .set_type(kind.as_str())
                    .set_description(c.detail.as_str());
                st
            }
            Ending::Inconclusive => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                st.set_message(c.message.as_str()).set_type("inconclusive");
                if !c.detail.is_empty() {
                    st.set_description(c.detail.as_str());
                }
                st
            }
        };
        let mut tc = TestCase::new(c.name.as_str(), status);
        tc.set_classname(c.classname.as_str())
            .set_time(c.time)
            .set_system_out(c.out.as_str());
        suite.add_test_case(tc);
    }
    let mut report = Report::new("murphy");
    report.set_time(s.time);
    report.add_test_suite(suite);
    match report.to_string() {
        Ok(xml) => without_root_skipped(xml),
        Err(e) => format!("<!-- JUnit could not be written: {e} -->\n"),
    }
}

/// `junit-10.xsd` allows `skipped` on a `<testsuite>` but not on the `<testsuites>` root,
/// where `quick-junit` writes it; Murphy never skips a claim, so the root's is always 0.
fn without_root_skipped(xml: String) -> String {
    let Some(start) = xml.find("<testsuites") else {
        return xml;
    };
    let Some(len) = xml[start..].find('>') else {
        return xml;
    };
    let tag = &xml[start..start + len];
    let cleaned = tag.replace(" skipped=\"0\"", "");
    format!("{}{cleaned}{}", &xml[..start], &xml[start + len..])
}
