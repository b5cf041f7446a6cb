//! etcd through its v3 JSON gateway (`/v3/kv/put`, `/v3/kv/range`,
//! `/v3/maintenance/status`): keys and values are base64 in JSON.

use super::net::{self, NetError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The key just past every key with this prefix (etcd's `range_end`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn post(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
    connect: Duration,
    deadline: Instant,
) -> Result<serde_json::Value, NetError> {
    let (status, body) = net::http(
        addr,
        "POST",
        path,
        Some(&body.to_string()),
        connect,
        deadline,
    )?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    if status != 200 {
        let msg = v
            .get("message")
            .or_else(|| v.get("error"))
            .and_then(|m| m.as_str())
            .map_or_else(
                || String::from_utf8_lossy(&body).chars().take(200).collect(),
                str::to_string,
            );
        return Err(NetError::after(format!("{addr}: HTTP {status}: {msg}")));
    }
    Ok(v)
}

/// Put `key` = "1".
pub fn put(
    addr: SocketAddr,
    key: &str,
    connect: Duration,
    deadline: Instant,
) -> Result<(), NetError> {
    let body = serde_json::json!({"key": B64.encode(key), "value": B64.encode("1")});
    post(addr, "/v3/kv/put", &body, connect, deadline).map(|_| ())
}

/// Every key under `prefix` (linearizable read), with the prefix removed.
pub fn list(
    addr: SocketAddr,
    prefix: &str,
    connect: Duration,
    deadline: Instant,
) -> Result<Vec<String>, NetError> {
    let body = serde_json::json!({
        "key": B64.encode(prefix),
        "range_end": B64.encode(prefix_end(prefix.as_bytes())),
        "keys_only": true,
    });
    let v = post(addr, "/v3/kv/range", &body, connect, deadline)?;
    let mut out = Vec::new();
    if let Some(kvs) = v.get("kvs").and_then(|k| k.as_array()) {
        for kv in kvs {
            let k = kv
                .get("key")
                .and_then(|k| k.as_str())
                .and_then(|k| B64.decode(k).ok())
                .ok_or_else(|| NetError::after("range reply without a key".into()))?;
            let k = String::from_utf8_lossy(&k).into_owned();
            out.push(k.strip_prefix(prefix).unwrap_or(&k).to_string());
        }
    }
    Ok(out)
}

/// Whether this member is the leader (its member id equals the leader id in its status).
pub fn is_leader(addr: SocketAddr, timeout: Duration) -> Result<bool, NetError> {
    let deadline = Instant::now() + timeout;
    let v = post(
        addr,
        "/v3/maintenance/status",
        &serde_json::json!({}),
        timeout,
        deadline,
    )?;
    leads(&v).map_err(|what| NetError::after(what.to_string()))
}

/// A status reply's answer to "are you the leader". A member that knows no leader (an
/// election under way: the gateway leaves the zero `leader` out) is a definite *no*: a
/// leader always knows itself, so this member is not primary at this instant.
fn leads(v: &serde_json::Value) -> Result<bool, &'static str> {
    let id = |x: Option<&serde_json::Value>| x.map(|v| v.to_string().trim_matches('"').to_string());
    let me =
        id(v.get("header").and_then(|h| h.get("member_id"))).ok_or("status without member_id")?;
    Ok(match id(v.get("leader")) {
        None => false,
        Some(leader) => leader != "0" && me == leader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"/m/"), b"/m0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn a_member_without_a_leader_is_not_primary() {
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
        let me = r#"{"header":{"member_id":"42"}"#;
        assert_eq!(leads(&j(&format!(r#"{me},"leader":"42"}}"#))), Ok(true));
        assert_eq!(leads(&j(&format!(r#"{me},"leader":"7"}}"#))), Ok(false));
        assert_eq!(leads(&j(&format!(r#"{me},"leader":"0"}}"#))), Ok(false));
        assert_eq!(leads(&j(&format!("{me}}}"))), Ok(false));
        assert_eq!(
            leads(&j(r#"{"leader":"42"}"#)),
            Err("status without member_id")
        );
    }
}
