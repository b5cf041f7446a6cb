//! The syntax of single values: names, signals, CIDRs and netmasks, `http://` URLs,
//! Kubernetes label keys and values, SQL identifiers, data-fault paths. Pure predicates and
//! parsers; the public ones are also used by the faults that act on these values.

use std::net::Ipv4Addr;

/// A DNS-label-like name: 1 to `max` lowercase letters, digits and '-', not starting or
/// ending with '-'.
pub(super) fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A lowercase DNS subdomain (RFC 1123) of at most 253 characters: dot-separated names.
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|part| is_name(part, 63))
}

/// The kernel's own trees, where no data fault acts (a path under them reaches processes,
/// devices and other roots: `/proc/1/root` is the host's `/`).
pub const NO_DATA_UNDER: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The tree of [`NO_DATA_UNDER`] an absolute path lies in, if any.
pub fn kernel_tree(path: &str) -> Option<&'static str> {
    let first = path.split('/').find(|c| !c.is_empty())?;
    NO_DATA_UNDER
        .into_iter()
        .find(|t| t.trim_start_matches('/') == first)
}

/// `path` is `prefix` or lies beneath it, compared name by name (`/data` holds
/// `/data/x`, not `/database`). A wildcard in `path` is a name like any other: `/d*/x`
/// is not beneath `/data`.
pub fn is_beneath(path: &str, prefix: &str) -> bool {
    let names = |s: &str| {
        s.split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (p, pre) = (names(path), names(prefix));
    p.len() >= pre.len() && p[..pre.len()] == pre[..]
}

/// Signals accepted by `process-kill`, by name.
pub fn parse_signal(s: &str) -> Option<i32> {
    let n = s.strip_prefix("SIG").unwrap_or(s);
    Some(match n {
        "KILL" => libc::SIGKILL,
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "ABRT" => libc::SIGABRT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "SEGV" => libc::SIGSEGV,
        _ => return None,
    })
}

/// Parse `a.b.c.d/len` (IPv4 only for now).
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = a.parse().ok()?;
    let len: u8 = l.parse().ok()?;
    (len <= 32).then_some((addr, len))
}

/// The netmask of a prefix length.
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// Why a URL is not one Murphy's HTTP checks can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} is not an http:// URL (https is not supported yet)")]
    NotHttp(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{0:?} has an invalid port")]
    BadPort(String),
    #[error("{0:?} is not a valid URL")]
    Invalid(String),
}

/// Split `http://host[:port]/path` into (host, port, path).
pub fn parse_http_url(url: &str) -> Result<(String, u16, String), UrlError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| UrlError::NotHttp(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(UrlError::NoHost(url.into()));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| UrlError::BadPort(url.into()))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(UrlError::Invalid(url.into()));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 characters (alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).
pub fn label_key(k: &str) -> bool {
    let (prefix, name) = k.rsplit_once('/').map_or((None, k), |(p, n)| (Some(p), n));
    let prefix_ok = prefix
        .is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(|l| is_name(l, 63)));
    prefix_ok && !name.is_empty() && label_value(name)
}

/// A Kubernetes label value: empty, or at most 63 characters as in [`label_key`]'s name.
pub fn label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
}

/// A plain SQL identifier: lowercase letters, digits and '_', not starting with a digit.
pub(super) fn sql_identifier(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 63
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !t.as_bytes()[0].is_ascii_digit()
}
