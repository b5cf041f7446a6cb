//! HTTP APIs Murphy reads from and writes to (Prometheus' query API, Grafana's annotations):
//! a checked base URL and one blocking client (`ureq`, with rustls for `https`) with a
//! deadline on every request. Nothing here runs in a fault path.

use std::time::Duration;

/// The base URL of an API: `http(s)://host[:port][/prefix]`, nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    /// Without a trailing `/`.
    base: String,
}

impl BaseUrl {
    /// Checks `s`: scheme `http` or `https`, a host (a name or an IPv4 / bracketed IPv6
    /// address), an optional port and path prefix; no user name or password, query,
    /// fragment, whitespace or control characters; at most 2048 characters.
    pub fn parse(s: &str) -> Result<BaseUrl, String> {
        if s.is_empty() || s.len() > 2048 {
            return Err("must be a URL of 1-2048 characters".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not hold spaces or control characters".into());
        }
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| format!("{s:?}: must start with http:// or https://"))?;
        if s.contains(['?', '#']) {
            return Err(format!(
                "{s:?}: no query or fragment (the base URL only: Murphy adds the API's path)"
            ));
        }
        let (authority, _path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(format!(
                "{s:?}: no user name or password in the URL (a token comes from the environment)"
            ));
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("{s:?}: unclosed [ in the host"))?;
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(format!("{s:?}: {addr:?} is not an IPv6 address"));
                }
                check_port(s, after.strip_prefix(':'), after.is_empty())?;
                addr
            }
            None => {
                let (host, port) = match authority.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (authority, None),
                };
                check_port(s, port, port.is_none())?;
                host
            }
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !name_ok && host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{s:?}: {host:?} is not a host name or address"));
        }
        Ok(BaseUrl {
            base: s.trim_end_matches('/').to_string(),
        })
    }

    /// `base` + `path` (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }
}

fn check_port(s: &str, port: Option<&str>, none: bool) -> Result<(), String> {
    match port {
        None if none => Ok(()),
        Some(p) if p.parse::<u16>().is_ok_and(|n| n > 0) => Ok(()),
        _ => Err(format!("{s:?}: the port must be 1-65535")),
    }
}

/// A client whose every request (connect, send, answer) ends within `timeout`; HTTP
/// error statuses are answers, not errors, so callers can say what the server said.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("murphy/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// The bearer token in environment variable `var`, if it is set and not empty.
pub fn token_from_env(var: Option<&str>) -> Result<Option<String>, String> {
    let Some(var) = var else {
        return Ok(None);
    };
    match std::env::var(var) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
        _ => Err(format!("environment variable {var} (the token) is not set")),
    }
}

/// The first line of a body, cut to 300 characters, for messages.
pub fn excerpt(body: &str) -> String {
    let line = body.lines().next().unwrap_or("").trim();
    let mut s: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::BaseUrl;

    #[test]
    fn base_urls_are_a_scheme_a_host_a_port_and_a_prefix_only() {
        for ok in [
            "http://127.0.0.1:9090",
            "http://prometheus.monitoring.svc:9090/",
            "https://grafana.example.com/grafana",
            "http://[::1]:3000",
            "http://localhost",
        ] {
            assert!(BaseUrl::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            BaseUrl::parse("http://h:9090/p/")
                .expect("ok")
                .join("/api/v1/query_range"),
            "http://h:9090/p/api/v1/query_range"
        );
        for (bad, says) in [
            ("ftp://h", "must start with http"),
            ("http://user:pw@h:9090", "no user name"),
            ("http://h:9090/?x=1", "no query"),
            ("http://h:0", "port"),
            ("http://h:99999", "port"),
            ("http://", "not a host"),
            ("http://h h", "spaces"),
            ("http://[zz]:1", "IPv6"),
            ("http://h_1:80", "not a host"),
        ] {
            let e = BaseUrl::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
