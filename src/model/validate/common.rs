//! Rules shared by several families: unique names in a list, a program's argv, file
//! paths (and the stricter ones of data faults), lists of CIDRs and user names.

use super::values::{is_beneath, is_name, kernel_tree, parse_cidr};
use super::V;
use crate::model::diag::FieldPath;
use std::collections::HashSet;

/// The names of a list's items (`base[i].name`) are well formed and unique. Claim names
/// are free text; the others are lowercase names.
pub(super) fn unique<'a>(
    v: &mut V,
    base: FieldPath,
    names: impl Iterator<Item = &'a str>,
    what: &str,
) {
    let mut seen = HashSet::new();
    for (i, n) in names.enumerate() {
        if what == "claim" {
            if n.trim().is_empty() || n.len() > 200 || n.chars().any(char::is_control) {
                v.err(
                    base.index(i).key("name"),
                    "claim names are 1-200 printable characters",
                );
            }
        } else if !is_name(n, 63) {
            v.err(
                base.index(i).key("name"),
                format!("{what} name {n:?} must be lowercase letters, digits and '-'"),
            );
        }
        if !seen.insert(n) {
            v.err(
                base.index(i).key("name"),
                format!("duplicate {what} name {n:?}"),
            );
        }
    }
}

pub(super) fn check_argv(v: &mut V, path: FieldPath, argv: &[String]) {
    if argv.is_empty() || argv[0].is_empty() {
        v.err(path, "must name a program: argv cannot be empty");
        return;
    }
    for (i, a) in argv.iter().enumerate() {
        if a.contains('\0') {
            v.err(path.index(i), "contains a NUL byte");
        }
    }
}

/// The user a program runs as.
pub(super) fn check_user(v: &mut V, path: FieldPath, user: Option<&String>) {
    if let Some(u) = user {
        if u.is_empty() || u.contains(['/', '\0', ':']) {
            v.err(path, format!("{u:?} is not a user name"));
        }
    }
}

pub(super) fn check_paths(v: &mut V, path: FieldPath, paths: &[String]) {
    if paths.is_empty() {
        v.err(path.clone(), "needs at least one path");
    }
    for (i, p) in paths.iter().enumerate() {
        if let Some(why) = path_problem(p) {
            v.err(path.index(i), why);
        }
    }
}

/// Why `p` is not an absolute path (or a lab placeholder) without `.` or `..`.
fn path_problem(p: &str) -> Option<String> {
    // `{data:<host>}/...` is a lab host's data directory (absolute once resolved).
    let bad = !(p.starts_with('/') || p.starts_with("{data:"))
        || p.contains('\0')
        || p.split('/').any(|c| c == ".." || c == ".")
        || p.trim_end_matches('/').is_empty();
    bad.then(|| {
        format!(
            "{p:?} must be an absolute path (or start with {{data:<host>}}) without '.' or '..'"
        )
    })
}

/// The paths of a data fault (`data-wipe`, `data-corrupt`, `config-corrupt`): well formed
/// as [`check_paths`] says, and none that could reach the whole system: not `/` itself,
/// nothing under /proc, /sys or /dev, no wildcard in the first name; beneath one of
/// `allow` (`guardrails.allowPaths`) when that is set.
pub(super) fn check_data_paths(v: &mut V, path: FieldPath, paths: &[String], allow: &[String]) {
    if paths.is_empty() {
        v.err(path.clone(), "needs at least one path");
    }
    for (i, p) in paths.iter().enumerate() {
        if let Some(why) = data_path_problem(p, allow) {
            v.err(path.index(i), why);
        }
    }
}

fn data_path_problem(p: &str, allow: &[String]) -> Option<String> {
    let first = p.split('/').find(|c| !c.is_empty());
    if p.starts_with('/') && first.is_none() {
        return Some(format!(
            "{p:?} is the whole filesystem: name the data directory or files"
        ));
    }
    if let Some(why) = path_problem(p) {
        return Some(why);
    }
    if let Some(t) = kernel_tree(p) {
        return Some(format!(
            "{p:?} is under {t}: data faults never act there (its paths reach processes, devices and other roots, such as /proc/1/root)"
        ));
    }
    if p.starts_with('/') && first.is_some_and(|f| f.contains(['*', '?'])) {
        return Some(format!(
            "{p:?} starts with a wildcard, which matches every top-level directory (/proc and /sys included): name the first directory"
        ));
    }
    if !allow.is_empty() && !allow.iter().any(|a| is_beneath(p, a)) {
        return Some(format!(
            "{p:?} is not beneath guardrails.allowPaths ({})",
            allow.join(", ")
        ));
    }
    None
}

/// `guardrails.allowPaths`: absolute directories (or lab placeholders), no wildcards, not
/// `/` and not under /proc, /sys or /dev.
pub(super) fn check_allow_paths(v: &mut V, path: FieldPath, allow: &[String]) {
    for (i, a) in allow.iter().enumerate() {
        let why = if a.contains(['*', '?']) {
            Some(format!("{a:?} must be a directory, without wildcards"))
        } else {
            data_path_problem(a, &[])
        };
        if let Some(why) = why {
            v.err(path.index(i), why);
        }
    }
}

pub(super) fn check_cidrs(v: &mut V, path: FieldPath, cidrs: &[String]) {
    for (j, c) in cidrs.iter().enumerate() {
        if parse_cidr(c).is_none() {
            v.err(
                path.index(j),
                format!("{c:?} is not an IPv4 CIDR such as 10.0.0.0/8"),
            );
        }
    }
}
