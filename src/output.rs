//! What a finished run hands to reports and front doors: its identity, the record and the
//! verdicts. Plain data: reports render it, they never recompute it.

use crate::record::RunRecord;
use crate::verdict::Verdict;

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub run_id: String,
    pub seed: u64,
    pub started_unix_ms: u64,
    pub record: RunRecord,
    pub verdicts: Vec<Verdict>,
}
