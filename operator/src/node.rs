//! The agent binary's runtime (`murphy-operator agent`): load the TLS files, recover the
//! journal, serve gRPC with mTLS, revert lapsed leases, and answer `/healthz` and
//! `/metrics` on a separate plain-HTTP port (nothing else is served there).

use crate::agent::Agent;
use crate::certs::Bundle;
use crate::grpc::{self, AgentService};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What `murphy-operator agent` is told.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub node_name: String,
    pub listen: SocketAddr,
    pub tls_dir: PathBuf,
    pub state_dir: PathBuf,
    pub health: Option<SocketAddr>,
    /// Where the node's cgroup hierarchies are (empty: this machine's mounts).
    pub cgroup_roots: Vec<PathBuf>,
    /// The `murphy` binary the faults start their helpers from.
    pub engine_exe: PathBuf,
    /// The identity callers' certificates must name (the controller's).
    pub controller_name: String,
}

/// The hierarchies to search under each given root: a v2 root as it is; a v1 root (a
/// tmpfs with one directory per controller) by its `pids` (else `memory`) hierarchy.
pub fn roots_from(given: &[PathBuf]) -> Vec<PathBuf> {
    if given.is_empty() {
        return crate::pods::hierarchy_roots();
    }
    given
        .iter()
        .map(|r| {
            if r.join("cgroup.controllers").exists() || r.join("cgroup.procs").exists() {
                r.clone()
            } else if r.join("pids").is_dir() {
                r.join("pids")
            } else {
                r.join("memory")
            }
        })
        .collect()
}

/// Run the agent until SIGTERM or SIGINT. Prints what it reverted at start.
pub async fn run(o: AgentOptions) -> anyhow::Result<()> {
    if o.node_name.is_empty() {
        anyhow::bail!("--node-name: empty (in a DaemonSet, set it from spec.nodeName)");
    }
    let tls = Bundle::read(&o.tls_dir).map_err(anyhow::Error::msg)?;
    let roots = roots_from(&o.cgroup_roots);
    let instance = format!("{}-{}", o.node_name, std::process::id());
    let (agent, cleaned) = Agent::start(&o.state_dir, o.engine_exe.clone(), roots, &instance)
        .map_err(|e| anyhow::anyhow!("starting the agent in {}: {e}", o.state_dir.display()))?;
    for c in &cleaned {
        tracing::warn!("reverted what an earlier agent left: {c}");
    }
    let svc = AgentService::new(&o.node_name, agent, cleaned).with_controller(&o.controller_name);
    let listener = tokio::net::TcpListener::bind(o.listen)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {}: {e}", o.listen))?;
    tracing::info!(
        node = %o.node_name,
        "serving gRPC with mTLS on {}",
        listener.local_addr()?
    );
    if let Some(h) = o.health {
        let hl = tokio::net::TcpListener::bind(h)
            .await
            .map_err(|e| anyhow::anyhow!("--health-addr {h}: {e}"))?;
        let metrics = svc.metrics.clone();
        tokio::spawn(crate::metrics::serve(
            hl,
            Arc::new(move || metrics.render()),
        ));
    }
    grpc::serve(listener, &tls, svc, Duration::from_millis(500), stopped()).await?;
    tracing::info!(node = %o.node_name, "stopped: every injection it held was reverted (any failure is logged above and stays in the journal for the next agent)");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The `murphy` binary beside this one (the container image ships both).
pub fn sibling_engine() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .map(|d| d.join("murphy"))
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin/murphy"))
}
