//! `murphy-operator`: the Kubernetes front door. Subcommands: `crd` prints the CRD the
//! Helm chart ships; `controller` reconciles Experiments; `agent` runs the node agent;
//! `certs` makes a CA and certificates for the controller ↔ agent mTLS when running
//! outside a cluster.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "murphy-operator",
    version,
    about = "Murphy's Kubernetes front door"
)]
struct Cli {
    /// Log format: `text` or `json` (one object per line). The level comes from RUST_LOG
    /// (default `info`), e.g. `info,murphy_operator=debug`.
    #[arg(long, global = true, env = "MURPHY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Cmd,
}

/// Logs go to stderr through `tracing`, filtered by RUST_LOG (the chart's `logLevel`).
fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().with_current_span(true).init();
    } else {
        b.init();
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the Experiment CustomResourceDefinition (YAML), generated from the engine's types.
    Crd {
        /// Print the ClusterExperiment CRD instead (cluster-scoped, same spec).
        #[arg(long)]
        cluster: bool,
    },
    /// Run the node agent: a gRPC service (mTLS only) that injects and reverts faults on
    /// pods of this node, with leases, and reverts what an earlier agent left.
    Agent {
        /// The node this agent serves (in a DaemonSet: from spec.nodeName).
        #[arg(long, env = "NODE_NAME")]
        node_name: String,
        /// Address for gRPC (TLS with a required client certificate).
        #[arg(long, default_value = "0.0.0.0:7443")]
        listen: SocketAddr,
        /// Directory with ca.crt, tls.crt and tls.key (a mounted TLS secret).
        #[arg(long)]
        tls_dir: PathBuf,
        /// The agent's journal: what is injected, so a successor can revert it.
        #[arg(long, default_value = "/var/lib/murphy/agent")]
        state_dir: PathBuf,
        /// Plain-HTTP address for /healthz and /metrics only.
        #[arg(long)]
        health_addr: Option<SocketAddr>,
        /// A cgroup hierarchy root to find pods under (repeatable; default: this machine's
        /// cgroup mounts).
        #[arg(long = "cgroup-root")]
        cgroup_roots: Vec<PathBuf>,
        /// The `murphy` binary the faults start their helpers from (default: beside this one).
        #[arg(long)]
        engine_exe: Option<PathBuf>,
        /// The identity a caller's client certificate must name (a DNS subject alternative
        /// name, else its common name): the controller's. Other certificates from the same
        /// CA are refused.
        #[arg(long, default_value = murphy_operator::grpc::DEFAULT_CONTROLLER)]
        controller_name: String,
    },
    /// Run the controller: reconcile Experiments (kubeconfig or in-cluster service
    /// account), calling the agents over mTLS.
    Controller {
        /// Directory with ca.crt, tls.crt and tls.key (the controller's client certificate).
        #[arg(long)]
        tls_dir: PathBuf,
        /// The DNS name in the agents' certificate.
        #[arg(long, default_value = "murphy-agent")]
        agent_server_name: String,
        /// Namespace of the agent DaemonSet's pods (in a cluster).
        #[arg(long)]
        agent_namespace: Option<String>,
        /// Label selector of the agent pods.
        #[arg(long)]
        agent_selector: Option<String>,
        #[arg(long, default_value_t = 7443)]
        agent_port: u16,
        /// NODE=HOST:PORT: the agent serving a node, for running outside a cluster
        /// (repeatable; wins over the agent pods).
        #[arg(long = "agent-address", value_parser = parse_node_addr)]
        agent_addresses: Vec<(String, String)>,
        /// Plain-HTTP address for /healthz, /readyz and /metrics.
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
        /// Take part in leader election (only the leader reconciles).
        #[arg(long)]
        leader_elect: bool,
        #[arg(long, default_value = "default")]
        leader_election_namespace: String,
        #[arg(long, default_value = "murphy-controller")]
        lease_name: String,
        /// The controller's own namespace: ClusterExperiments' evidence ConfigMaps go here.
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        namespace: String,
        /// The operator's image: command probes' pods copy `murphy-probe-pod` from it.
        /// Without it, command probes are refused.
        #[arg(long)]
        probe_pod_image: Option<String>,
        /// HTTPS address of the validating admission webhook (`POST /validate`), served
        /// with the certificate in --tls-dir, whose DNS names must include the webhook
        /// Service's.
        #[arg(long)]
        webhook_addr: Option<SocketAddr>,
        /// Namespaced mode (repeatable): reconcile Experiments of these namespaces only,
        /// whose pods are then the only targets (the list is the opt-in; no namespace is
        /// listed, no ClusterExperiment served). Default: every namespace.
        #[arg(long = "watch-namespace")]
        watch_namespaces: Vec<String>,
        /// Pull policy of that image in command probes' pods.
        #[arg(long, default_value = "IfNotPresent", value_parser = ["Always", "IfNotPresent", "Never"])]
        probe_pod_pull_policy: String,
        /// Lease the agents hold each injection under, in seconds (renewed at a third).
        #[arg(long, default_value_t = 30)]
        injection_lease_seconds: u64,
        /// Post each finished run's fault windows and verdict to this Grafana (its base
        /// URL) as annotations; the token comes from MURPHY_GRAFANA_TOKEN.
        #[arg(long, value_parser = murphy::httpapi::BaseUrl::parse)]
        grafana_url: Option<murphy::httpapi::BaseUrl>,
        /// With --grafana-url: the dashboard (UID) the annotations go on.
        #[arg(long, requires = "grafana_url")]
        grafana_dashboard: Option<String>,
    },
    /// Make a CA, a controller (client) certificate and an agent (server) certificate,
    /// written as OUT/controller/{ca.crt,tls.crt,tls.key} and OUT/agent/{...}.
    Certs {
        #[arg(long)]
        out: PathBuf,
        /// The DNS name in the agent's certificate (the controller's --agent-server-name).
        #[arg(long, default_value = "murphy-agent")]
        agent_name: String,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

fn parse_node_addr(s: &str) -> Result<(String, String), String> {
    let (node, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NODE=HOST:PORT"))?;
    if node.is_empty() || addr.parse::<SocketAddr>().is_err() && !addr.contains(':') {
        return Err(format!("{s:?}: expected NODE=HOST:PORT"));
    }
    Ok((node.to_string(), addr.to_string()))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    match cli.command {
        Cmd::Crd { cluster } => {
            let yaml = if cluster {
                murphy_operator::crd::cluster_crd_yaml()
            } else {
                murphy_operator::crd::crd_yaml()
            }
            .map_err(anyhow::Error::msg)?;
            // A closed pipe (`murphy-operator crd | head`) ends the output, not in a panic.
            use std::io::Write as _;
            let _ = std::io::stdout().lock().write_all(yaml.as_bytes());
        }
        Cmd::Agent {
            node_name,
            listen,
            tls_dir,
            state_dir,
            health_addr,
            cgroup_roots,
            engine_exe,
            controller_name,
        } => {
            let opts = murphy_operator::node::AgentOptions {
                node_name,
                listen,
                tls_dir,
                state_dir,
                health: health_addr,
                cgroup_roots,
                engine_exe: engine_exe.unwrap_or_else(murphy_operator::node::sibling_engine),
                controller_name,
            };
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(8)
                .enable_all()
                .build()?
                .block_on(murphy_operator::node::run(opts))?;
        }
        Cmd::Controller {
            tls_dir,
            agent_server_name,
            agent_namespace,
            agent_selector,
            agent_port,
            agent_addresses,
            metrics_addr,
            leader_elect,
            leader_election_namespace,
            lease_name,
            namespace,
            probe_pod_image,
            probe_pod_pull_policy,
            webhook_addr,
            watch_namespaces,
            injection_lease_seconds,
            grafana_url,
            grafana_dashboard,
        } => {
            if !(1..=3600).contains(&injection_lease_seconds) {
                anyhow::bail!("--injection-lease-seconds: must be 1..=3600");
            }
            let identity = std::env::var("POD_NAME")
                .ok()
                .or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .ok()
                        .map(|h| h.trim().to_string())
                })
                .unwrap_or_else(|| "murphy-controller".into());
            let opts = murphy_operator::reconcile::ControllerOptions {
                tls_dir,
                agent_server_name,
                directory: murphy_operator::reconcile::Directory {
                    fixed: agent_addresses.into_iter().collect(),
                    namespace: agent_namespace,
                    selector: agent_selector,
                    port: agent_port,
                },
                metrics_addr,
                leader_election: leader_elect.then_some((leader_election_namespace, lease_name)),
                lease_ms: injection_lease_seconds * 1000,
                identity: format!("{identity}-{}", std::process::id()),
                namespace,
                webhook_addr,
                watch_namespaces,
                runner: probe_pod_image.map(|image| murphy_operator::probe_pods::Runner {
                    image,
                    pull_policy: probe_pod_pull_policy,
                }),
                grafana: grafana_url.map(|url| murphy::annotate::Target {
                    url,
                    token: std::env::var("MURPHY_GRAFANA_TOKEN")
                        .ok()
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty()),
                    dashboard_uid: grafana_dashboard,
                }),
            };
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(murphy_operator::reconcile::run_controller(opts))?;
        }
        Cmd::Certs {
            out,
            agent_name,
            days,
        } => {
            let set = murphy_operator::certs::generate(
                "murphy-ca",
                "murphy-controller",
                &agent_name,
                days,
            )?;
            set.controller.write(&out.join("controller"))?;
            set.agent.write(&out.join("agent"))?;
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stdout().lock(),
                "wrote {0}/controller and {0}/agent (ca.crt, tls.crt, tls.key); the agent's name is {agent_name}",
                out.display()
            );
        }
    }
    Ok(())
}
