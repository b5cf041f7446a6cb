//! Watch samples: one row of a component's own view (a balancer's status of each server)
//! at one time on the run's clock. Plain data; [`crate::watch`] takes them.

use serde::{Deserialize, Serialize};

/// One row of one sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchSample {
    pub watch: String,
    pub t_ms: f64,
    /// The proxy (backend or frontend) name.
    pub proxy: String,
    /// The server name, or `FRONTEND` / `BACKEND`.
    pub server: String,
    /// `UP`, `DOWN`, `MAINT`, `no check`, `OPEN`, ... (the first word of haproxy's status).
    pub status: String,
    /// Sessions served so far (a counter).
    pub total: u64,
    /// Sessions in progress.
    pub current: u64,
}
