//! Rules on the parameters of faults that act on processes and their resources:
//! `process-kill` (and `process-pause`, which has none to check), `memory-leak`,
//! `cpu-burn` and `load-surge`.

use super::values::parse_signal;
use super::V;
use crate::model::diag::FieldPath;
use crate::model::spec::{CpuBurn, LoadSurge, MemoryLeak, ProcessKill};

pub(super) fn process_kill(v: &mut V, fp: &FieldPath, k: &ProcessKill) {
    if let Some(s) = &k.signal {
        if parse_signal(s).is_none() {
            v.err(
                fp.key("signal"),
                format!("unknown signal {s:?} (use e.g. SIGKILL, SIGTERM)"),
            );
        }
    }
}

pub(super) fn memory_leak(v: &mut V, fp: &FieldPath, m: &MemoryLeak) {
    if m.rate.bytes_per_second < 4096.0 {
        v.err(
            fp.key("rate"),
            "must be at least 4Ki/s (one page per second)",
        );
    }
    if m.limit.is_some_and(|l| l.0 > 64 << 30) {
        v.err(fp.key("limit"), "must be at most 64Gi");
    }
}

pub(super) fn cpu_burn(v: &mut V, fp: &FieldPath, c: &CpuBurn) {
    if let Some(w) = c.workers {
        if !(1..=256).contains(&w) {
            v.err(fp.key("workers"), "must be between 1 and 256");
        }
    }
}

pub(super) fn load_surge(v: &mut V, fp: &FieldPath, l: &LoadSurge) {
    if l.rate.per_second > 2000.0 || l.rate.per_second <= 0.0 {
        v.err(fp.key("rate"), "must be above 0 and at most 2000/s");
    }
    if l.port == 0 {
        v.err(fp.key("port"), "must be a TCP port (1-65535)");
    }
    if let Some(p) = &l.path {
        if !p.starts_with('/') || p.contains(|c: char| c.is_whitespace() || c.is_control()) {
            v.err(
                fp.key("path"),
                "must start with '/' and contain no spaces or control characters",
            );
        }
    }
    if let Some(r) = &l.retry {
        if !(1..=10).contains(&r.attempts) {
            v.err(fp.key("retry").key("attempts"), "must be between 1 and 10");
        }
    }
}
