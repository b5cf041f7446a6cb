//! Workload histories: every operation a client started, on the run's clock, and what
//! the system held after the run. Plain data (and the latency summary computed from it);
//! the checkers that read histories live in [`crate::verdict::history`].

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpResult {
    Ok,
    Fail,
    Info,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Op {
    /// Sequence number within the workload.
    pub id: u64,
    /// The unique value written (empty for plain requests).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub invoke_ms: f64,
    pub complete_ms: f64,
    pub result: OpResult,
    /// The node that served (or refused) it, `ip:port`.
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// HTTP status of the answer, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// 0 for a first attempt; n for the n-th retry of a failed request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Op {
    pub fn is_write(&self) -> bool {
        !self.value.is_empty()
    }
}

/// What the system held after the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FinalRead {
    pub ok: bool,
    pub t_ms: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    pub values: Vec<String>,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One workload's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub workload: String,
    pub client: String,
    pub started_ms: f64,
    pub stopped_ms: f64,
    pub ops: Vec<Op>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_read: Option<FinalRead>,
    /// Set-up problems and other remarks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl History {
    pub fn count(&self, r: OpResult) -> usize {
        self.ops.iter().filter(|o| o.result == r).count()
    }
    /// Latency of every operation that was sent (answered or timed out), from its
    /// scheduled start.
    pub fn latency(&self) -> Option<LatencySummary> {
        let lat: Vec<f64> = self
            .ops
            .iter()
            .filter(|o| o.complete_ms > o.invoke_ms || o.result == OpResult::Ok)
            .map(|o| o.complete_ms - o.invoke_ms)
            .collect();
        LatencySummary::of(&lat)
    }
}

/// Latency percentiles from an HDR histogram (microsecond resolution, 3 significant
/// digits).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    pub fn of(lat_ms: &[f64]) -> Option<LatencySummary> {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok()?;
        for &ms in lat_ms {
            h.saturating_record(((ms * 1000.0).round() as u64).max(1));
        }
        if h.is_empty() {
            return None;
        }
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        Some(LatencySummary {
            count: h.len(),
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: h.max() as f64 / 1000.0,
        })
    }
}
