//! Checks: what a probe, a role probe or a lab process's readiness asks of a system
//! (`http`, `tcp` or `command`). Shared by the experiment spec and the lab spec.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One check: exactly one of `http`, `tcp`, `command` or `prometheus`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-murphy-exactly-one" = ["http", "tcp", "command", "prometheus"]))]
pub struct Check {
    /// An HTTP GET of `url`: passes when the answer's status is accepted (and its body
    /// contains `bodyContains`, if set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// A TCP connect to `address`: passes when the connection is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// A program run to completion: passes when it exits with `exitCode` (and its standard
    /// output contains `stdoutContains`, if set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// An instant PromQL query: passes when it returns at least one value and every value
    /// is within the bound (only with `murphy run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PromCheck>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-murphy-exactly-one" = ["atMost", "atLeast"]))]
pub struct PromCheck {
    /// The Prometheus server's base URL (`http://host:port[/prefix]` or `https://…`).
    pub url: String,
    /// The PromQL expression (1-4096 characters), evaluated at each sample's time.
    pub query: String,
    /// Every value must be at or under this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
    /// Every value must be at or over this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    /// Environment variable holding a bearer token for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    /// `http://host:port/path` (plain HTTP/1.1).
    pub url: String,
    /// Accepted status codes (default: any 2xx or 3xx).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<u16>,
    /// The body must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpCheck {
    /// `ip:port` to connect to.
    pub address: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandCheck {
    /// Program and arguments; never passed through a shell.
    pub argv: Vec<String>,
    /// Exit code that counts as healthy (default 0).
    #[serde(default)]
    pub exit_code: i32,
    /// Standard output must also contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_contains: Option<String>,
}
