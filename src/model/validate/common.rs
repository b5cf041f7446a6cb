//! Rules shared by several families: unique names in a list, a program's argv, file
//! paths, lists of CIDRs and user names.

use super::values::{is_name, parse_cidr};
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
        // `{data:<host>}/...` is a lab host's data directory (absolute once resolved).
        let bad = !(p.starts_with('/') || p.starts_with("{data:"))
            || p.contains('\0')
            || p.split('/').any(|c| c == ".." || c == ".")
            || p.trim_end_matches('/').is_empty();
        if bad {
            v.err(
                path.index(i),
                format!("{p:?} must be an absolute path (or start with {{data:<host>}}) without '.' or '..'"),
            );
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
