//! Rules on the parameters of faults on data and storage: `data-wipe`, `data-corrupt`,
//! `config-corrupt`, `storage-stall`, `io-latency`, `io-error` and `io-throttle`.

use super::common::{check_data_paths, check_paths};
use super::values::parse_signal;
use super::V;
use crate::model::diag::FieldPath;
use crate::model::spec::{
    ConfigCorrupt, DataCorrupt, DataWipe, IoError, IoLatency, IoThrottle, StorageStall,
};

/// `allow` is `guardrails.allowPaths` (empty: unset).
pub(super) fn data_wipe(v: &mut V, fp: &FieldPath, d: &DataWipe, allow: &[String]) {
    check_data_paths(v, fp.key("paths"), &d.paths, allow);
    if d.journal_copy == Some(false) && d.restore != Some(false) {
        v.err(
            fp.key("journalCopy"),
            "without a journal copy there is nothing to restore from: set `restore: false` too",
        );
    }
}

pub(super) fn data_corrupt(v: &mut V, fp: &FieldPath, d: &DataCorrupt, allow: &[String]) {
    check_data_paths(v, fp.key("paths"), &d.paths, allow);
    if d.length.is_some_and(|l| l.0 == 0) {
        v.err(fp.key("length"), "must be at least 1 byte");
    }
    if let Some(c) = d.count {
        if !(1..=10_000).contains(&c) {
            v.err(fp.key("count"), "must be between 1 and 10000");
        }
    }
}

pub(super) fn config_corrupt(v: &mut V, fp: &FieldPath, c: &ConfigCorrupt, allow: &[String]) {
    check_data_paths(v, fp.key("path"), std::slice::from_ref(&c.path), allow);
    if c.path.contains(['*', '?']) {
        v.err(fp.key("path"), "must name one file (no wildcards)");
    }
    let n = [
        c.set.is_some(),
        c.delete_line.is_some(),
        c.replace.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n != 1 {
        v.err(
            fp.clone(),
            format!("needs exactly one of `set`, `deleteLine` or `replace` (found {n})"),
        );
    }
    if let Some(set) = &c.set {
        if set.key.trim().is_empty() || set.key.contains('\n') {
            v.err(
                fp.key("set").key("key"),
                "must be a non-empty single-line key",
            );
        }
        if set.value.contains('\n') {
            v.err(fp.key("set").key("value"), "must be a single line");
        }
    }
    if let Some(re) = &c.delete_line {
        if let Err(e) = regex::Regex::new(re) {
            v.err(
                fp.key("deleteLine"),
                format!("not a valid regular expression: {e}"),
            );
        }
    }
    if let Some(sig) = &c.reload {
        if parse_signal(sig).is_none() {
            v.err(fp.key("reload"), format!("unknown signal {sig:?}"));
        }
    }
}

pub(super) fn storage_stall(v: &mut V, fp: &FieldPath, s: &StorageStall) {
    check_paths(v, fp.key("paths"), &s.paths);
}

pub(super) fn io_latency(v: &mut V, fp: &FieldPath, l: &IoLatency) {
    check_paths(v, fp.key("paths"), &l.paths);
    if l.delay.0.is_zero() {
        v.err(fp.key("delay"), "must be more than 0");
    }
    if l.delay.0 > std::time::Duration::from_secs(60) {
        v.err(
            fp.key("delay"),
            "must be at most 60s (use storage-stall to hold operations)",
        );
    }
    if let Some(j) = l.jitter {
        if j.0 > l.delay.0 {
            v.err(fp.key("jitter"), "must not exceed `delay`");
        }
    }
}

pub(super) fn io_error(v: &mut V, fp: &FieldPath, e: &IoError) {
    check_paths(v, fp.key("paths"), &e.paths);
    if crate::model::io::errno_by_name(&e.errno).is_none() {
        v.err(
            fp.key("errno"),
            format!(
                "unknown errno {:?}; one of {}",
                e.errno,
                crate::model::io::ERRNOS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if e.probability.is_some_and(|p| p.0 <= 0.0) {
        v.err(fp.key("probability"), "must be more than 0%");
    }
}

pub(super) fn io_throttle(v: &mut V, fp: &FieldPath, t: &IoThrottle) {
    check_paths(v, fp.key("path"), std::slice::from_ref(&t.path));
    if t.path.contains(['*', '?']) {
        v.err(
            fp.key("path"),
            "must name one file or directory (no wildcards)",
        );
    }
    if t.read_bps.is_none()
        && t.write_bps.is_none()
        && t.read_iops.is_none()
        && t.write_iops.is_none()
    {
        v.err(
            fp.clone(),
            "needs at least one of `readBps`, `writeBps`, `readIops`, `writeIops`",
        );
    }
}
