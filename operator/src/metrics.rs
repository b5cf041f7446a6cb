//! What the controller and the agents expose on `/metrics`, through `prometheus-client`
//! (OpenMetrics text): counters, gauges and histograms in seconds, `build_info`, and the
//! process' own `process_*` figures; served with `/healthz` and `/readyz` by hyper.
//!
//! The controller's `murphy_fault_active{namespace,experiment,fault,kind}` is 1 while a
//! fault is confirmed in effect and disappears when it is reverted: a Grafana annotation
//! query on `murphy_fault_active == 1` shades every fault window.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CompletedLabels {
    /// `held`, `failed` or `inconclusive` (the run's overall verdict).
    pub verdict: String,
    /// `completed`, or `aborted` (a guardrail, a lost controller, a failed injection).
    pub ended: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct FaultLabels {
    pub namespace: String,
    pub experiment: String,
    pub fault: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub node: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    component: String,
}

type Seconds = Family<KindLabel, Histogram, fn() -> Histogram>;

/// Inject and revert times: 1 ms to ~65 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn seconds_by_kind() -> Seconds {
    Family::new_with_constructor(seconds as fn() -> Histogram)
}

fn registry(component: &str) -> Registry {
    let mut r = Registry::default();
    r.register(
        "murphy_build",
        "Murphy's version (always 1)",
        Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION").into(),
            component: component.into(),
        }),
    );
    r.register_collector(Box::new(ProcessCollector));
    r
}

/// The controller's metrics.
pub struct ControllerMetrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    reconcile_seconds: Histogram,
    pub started: Counter,
    pub rejected: Counter,
    completed: Family<CompletedLabels, Counter>,
    pub running: Gauge,
    fault_active: Family<FaultLabels, Gauge>,
    inject_seconds: Seconds,
    revert_seconds: Seconds,
    /// The active-fault series of each run (by the Experiment's UID), to drop them all
    /// when the run is forgotten.
    active: Mutex<BTreeMap<String, BTreeSet<FaultLabels>>>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        let mut registry = registry("controller");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "murphy_controller_reconciles",
            "Reconciles run, by result (an error is retried with backoff)",
            reconciles.clone(),
        );
        let reconcile_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register_with_unit(
            "murphy_controller_reconcile",
            "Time one reconcile took",
            Unit::Seconds,
            reconcile_seconds.clone(),
        );
        let started = Counter::default();
        registry.register(
            "murphy_experiments_started",
            "Experiments this controller started (targets resolved, probes running)",
            started.clone(),
        );
        let rejected = Counter::default();
        registry.register(
            "murphy_experiments_rejected",
            "Experiments refused before anything ran (invalid, or targets that did not resolve)",
            rejected.clone(),
        );
        let completed = Family::<CompletedLabels, Counter>::default();
        registry.register(
            "murphy_experiments_completed",
            "Experiments that ended, by overall verdict and how they ended",
            completed.clone(),
        );
        let running = Gauge::default();
        registry.register(
            "murphy_experiments_running",
            "Experiments this controller is running now",
            running.clone(),
        );
        let fault_active = Family::<FaultLabels, Gauge>::default();
        registry.register(
            "murphy_fault_active",
            "1 while a fault is confirmed in effect; the series goes when it is reverted",
            fault_active.clone(),
        );
        let inject_seconds = seconds_by_kind();
        registry.register_with_unit(
            "murphy_fault_inject",
            "From asking the agents to inject a fault to its confirmation on every pod",
            Unit::Seconds,
            inject_seconds.clone(),
        );
        let revert_seconds = seconds_by_kind();
        registry.register_with_unit(
            "murphy_fault_revert",
            "From asking the agents to revert a fault to every agent's answer",
            Unit::Seconds,
            revert_seconds.clone(),
        );
        ControllerMetrics {
            registry,
            reconciles,
            reconcile_seconds,
            started,
            rejected,
            completed,
            running,
            fault_active,
            inject_seconds,
            revert_seconds,
            active: Mutex::new(BTreeMap::new()),
        }
    }
}

impl ControllerMetrics {
    pub fn reconciled(&self, took: Duration, ok: bool) {
        self.reconcile_seconds.observe(took.as_secs_f64());
        self.reconcile_result(ok);
    }
    pub fn reconcile_result(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" }.to_string();
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
    }
    pub fn completed(&self, verdict: &str, aborted: bool) {
        let ended = if aborted { "aborted" } else { "completed" };
        self.completed
            .get_or_create(&CompletedLabels {
                verdict: verdict.into(),
                ended: ended.into(),
            })
            .inc();
    }
    pub fn timed(&self, revert: bool, kind: &str, seconds: f64) {
        let h = if revert {
            &self.revert_seconds
        } else {
            &self.inject_seconds
        };
        h.get_or_create(&KindLabel { kind: kind.into() })
            .observe(seconds);
    }
    /// The faults of run `uid` in effect now (every other series of the run goes).
    pub fn active_faults(&self, uid: &str, now: BTreeSet<FaultLabels>) {
        let mut all = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let before = all.remove(uid).unwrap_or_default();
        for gone in before.difference(&now) {
            self.fault_active.remove(gone);
        }
        for l in &now {
            self.fault_active.get_or_create(l).set(1);
        }
        if !now.is_empty() {
            all.insert(uid.to_string(), now);
        }
    }
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub node: String,
    pub method: String,
}

/// An agent's metrics.
pub struct AgentMetrics {
    registry: Registry,
    node: String,
    calls: Family<CallLabels, Counter>,
    lapsed: Family<NodeLabel, Counter>,
    active: Family<NodeLabel, Gauge>,
    call_seconds: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

impl AgentMetrics {
    pub fn new(node: &str) -> AgentMetrics {
        let mut registry = registry("agent");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "murphy_agent_calls",
            "Calls the agent answered, by outcome (unauthorized: a certificate that is not the controller's)",
            calls.clone(),
        );
        let lapsed = Family::<NodeLabel, Counter>::default();
        registry.register(
            "murphy_agent_lease_reverts",
            "Injections reverted because their lease lapsed",
            lapsed.clone(),
        );
        let active = Family::<NodeLabel, Gauge>::default();
        registry.register(
            "murphy_agent_active_injections",
            "Injections in effect on this node",
            active.clone(),
        );
        let call_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register_with_unit(
            "murphy_agent_call",
            "Time a call took on this node, by method (inject: journal, inject and confirm)",
            Unit::Seconds,
            call_seconds.clone(),
        );
        let m = AgentMetrics {
            registry,
            node: node.to_string(),
            calls,
            lapsed,
            active,
            call_seconds,
        };
        // Every outcome from the start, so a rate() over them has a baseline.
        for o in ["ok", "refused", "failed", "unauthorized"] {
            let _ = m.calls.get_or_create(&m.call(o));
        }
        let _ = m.lapsed.get_or_create(&m.label());
        m.active.get_or_create(&m.label()).set(0);
        m
    }
    fn label(&self) -> NodeLabel {
        NodeLabel {
            node: self.node.clone(),
        }
    }
    fn call(&self, outcome: &str) -> CallLabels {
        CallLabels {
            node: self.node.clone(),
            outcome: outcome.into(),
        }
    }
    /// A call of `method` answered with `outcome` after `took`.
    pub fn called(&self, method: &str, outcome: &str, took: Duration) {
        self.calls.get_or_create(&self.call(outcome)).inc();
        if !method.is_empty() {
            self.call_seconds
                .get_or_create(&MethodLabels {
                    node: self.node.clone(),
                    method: method.into(),
                })
                .observe(took.as_secs_f64());
        }
    }
    pub fn lapsed(&self, n: u64) {
        self.lapsed.get_or_create(&self.label()).inc_by(n);
    }
    pub fn set_active(&self, n: usize) {
        self.active
            .get_or_create(&self.label())
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

fn render(r: &Registry) -> String {
    let mut s = String::new();
    if prometheus_client::encoding::text::encode(&mut s, r).is_err() {
        s = "# EOF\n".into();
    }
    s
}

/// `process_*` of this process, read from /proc at each scrape.
#[derive(Debug)]
struct ProcessCollector;

/// (cpu seconds, resident bytes, virtual bytes, start time in Unix seconds)
fn self_stat() -> Option<(f64, u64, u64, f64)> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest: Vec<&str> = s[s.rfind(')')? + 2..].split_whitespace().collect();
    // rest[0] is field 3; field N is rest[N - 3].
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let cpu = (field(14)? + field(15)?) as f64 / tick;
    let vsize = field(23)?;
    let rss = field(24)? * page;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<f64>()
        .ok()?;
    Some((cpu, rss, vsize, boot + field(22)? as f64 / tick))
}

fn max_fds() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some((cpu, rss, vsize, start)) = self_stat() {
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time spent",
                Some(&Unit::Seconds),
                c.metric_type(),
            )?)?;
            for (name, help, v) in [
                ("process_resident_memory", "Resident memory size", rss),
                ("process_virtual_memory", "Virtual memory size", vsize),
            ] {
                let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
                g.encode(encoder.encode_descriptor(
                    name,
                    help,
                    Some(&Unit::Bytes),
                    g.metric_type(),
                )?)?;
            }
            let g = ConstGauge::new(start);
            g.encode(encoder.encode_descriptor(
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(&Unit::Seconds),
                g.metric_type(),
            )?)?;
        }
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            let g = ConstGauge::new(d.count() as i64);
            g.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                g.metric_type(),
            )?)?;
        }
        if let Some(m) = max_fds() {
            let g = ConstGauge::new(i64::try_from(m).unwrap_or(i64::MAX));
            g.encode(encoder.encode_descriptor(
                "process_max_fds",
                "The most file descriptors it may open",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// Renders the `/metrics` page.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

async fn answer(
    req: Request<hyper::body::Incoming>,
    render: Render,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let (status, ctype, body) = match req.uri().path() {
        "/healthz" | "/readyz" if get => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/metrics" if get => (StatusCode::OK, CONTENT_TYPE, render()),
        "/healthz" | "/readyz" | "/metrics" => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    Ok(r)
}

/// `/healthz`, `/readyz` and `/metrics` (a query string is ignored) over plain HTTP/1.1;
/// nothing else is served.
pub async fn serve(listener: tokio::net::TcpListener, render: Render) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(tcp);
            let svc = hyper::service::service_fn(move |req| answer(req, render.clone()));
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(io, svc),
            )
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_page_has_histograms_build_info_process_and_a_fault_gauge_that_goes() {
        let m = ControllerMetrics::default();
        m.started.inc();
        m.completed("held", false);
        m.reconciled(Duration::from_millis(3), true);
        m.timed(false, "process-pause", 0.056);
        let l = |f: &str| FaultLabels {
            namespace: "shop".into(),
            experiment: "pause-one".into(),
            fault: f.into(),
            kind: "process-pause".into(),
        };
        m.active_faults("uid-1", BTreeSet::from([l("a"), l("b")]));
        let page = m.render();
        for want in [
            "murphy_experiments_started_total 1",
            "murphy_experiments_completed_total{verdict=\"held\",ended=\"completed\"} 1",
            "# TYPE murphy_controller_reconcile_seconds histogram",
            "murphy_controller_reconciles_total{result=\"ok\"} 1",
            "murphy_fault_inject_seconds_bucket{le=\"0.064\",kind=\"process-pause\"} 1",
            "murphy_fault_active{namespace=\"shop\",experiment=\"pause-one\",fault=\"a\",kind=\"process-pause\"} 1",
            "murphy_build_info{version=",
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "# EOF",
        ] {
            assert!(page.contains(want), "{want}\n{page}");
        }
        m.active_faults("uid-1", BTreeSet::from([l("b")]));
        let page = m.render();
        assert!(!page.contains("fault=\"a\""), "{page}");
        assert!(page.contains("fault=\"b\""), "{page}");
        m.active_faults("uid-1", BTreeSet::new());
        assert!(!m.render().contains("murphy_fault_active{"));
    }

    #[test]
    fn the_agent_page_counts_calls_by_outcome_from_zero() {
        let m = AgentMetrics::new("node-b");
        m.called("", "unauthorized", Duration::ZERO);
        m.called("inject", "ok", Duration::from_millis(20));
        m.set_active(1);
        let page = m.render();
        for want in [
            "murphy_agent_calls_total{node=\"node-b\",outcome=\"ok\"} 1",
            "murphy_agent_calls_total{node=\"node-b\",outcome=\"failed\"} 0",
            "murphy_agent_calls_total{node=\"node-b\",outcome=\"unauthorized\"} 1",
            "murphy_agent_active_injections{node=\"node-b\"} 1",
            "murphy_agent_lease_reverts_total{node=\"node-b\"} 0",
            "murphy_agent_call_seconds_bucket{le=\"0.032\",node=\"node-b\",method=\"inject\"} 1",
        ] {
            assert!(page.contains(want), "{want}\n{page}");
        }
    }
}
