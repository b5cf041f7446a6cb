//! The agent's gRPC transport (tonic, mTLS only) and the controller's side of it.
//!
//! - [`AgentService`] serves the API in `proto/agent.proto` over any [`NodeEngine`]: the
//!   node agent ([`crate::agent::Agent`], which builds faults through the engine's fault
//!   trait) is the one used in production and in the tests. Engine calls block (they
//!   change the kernel), so they run on tokio's blocking pool, one at a time per node.
//! - [`serve`] listens with TLS and a client CA: a client without a certificate signed by
//!   that CA fails the handshake; there is no plaintext listener.
//! - [`Agents`] is the controller's pool: one HTTP/2 channel per agent address, reused by
//!   every call, and [`Agents::fan_out`] runs calls in parallel with a bound.

use crate::agent::{Agent, AgentError, InjectRequest};
use crate::certs::Bundle;
use crate::lease::{Key, LeaseError};
use crate::pods::{ContainerRef, ResolveError};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};
use tonic::{Code, Request, Response, Status};

/// Types and stubs generated from `proto/agent.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("murphy.agent.v1");
}

/// What a node agent does for each call, whatever carries the calls.
pub trait NodeEngine: Send + 'static {
    fn inject(&mut self, req: &InjectRequest, now_ms: u64) -> Result<String, AgentError>;
    fn observe(&mut self, key: &Key) -> Result<Vec<String>, AgentError>;
    fn renew(&mut self, key: &Key, now_ms: u64, ttl_ms: u64) -> Result<u64, AgentError>;
    fn revert(&mut self, key: &Key) -> Result<crate::agent::Reverted, AgentError>;
    /// Revert what lapsed by `now_ms`.
    fn tick(&mut self, now_ms: u64) -> Vec<(Key, Result<Vec<String>, AgentError>)>;
    /// Revert every injection of one experiment: each key, its pod and the outcome.
    #[allow(clippy::type_complexity)]
    fn revert_experiment(
        &mut self,
        experiment: &str,
    ) -> Vec<(Key, String, Result<Vec<String>, AgentError>)>;
    /// Revert everything (the agent is stopping).
    fn revert_all(&mut self) -> Vec<(Key, Result<Vec<String>, AgentError>)>;
    fn active(&self) -> usize;
}

impl NodeEngine for Agent {
    fn inject(&mut self, req: &InjectRequest, now_ms: u64) -> Result<String, AgentError> {
        Agent::inject(self, req, now_ms)
    }
    fn observe(&mut self, k: &Key) -> Result<Vec<String>, AgentError> {
        Agent::observe(self, &k.experiment, &k.fault, &k.pod_uid)
    }
    fn renew(&mut self, k: &Key, now_ms: u64, ttl_ms: u64) -> Result<u64, AgentError> {
        Agent::renew(self, &k.experiment, &k.fault, &k.pod_uid, now_ms, ttl_ms)
    }
    fn revert(&mut self, k: &Key) -> Result<crate::agent::Reverted, AgentError> {
        Agent::revert(self, &k.experiment, &k.fault, &k.pod_uid)
    }
    fn tick(&mut self, now_ms: u64) -> Vec<(Key, Result<Vec<String>, AgentError>)> {
        Agent::tick(self, now_ms)
    }
    fn revert_experiment(
        &mut self,
        experiment: &str,
    ) -> Vec<(Key, String, Result<Vec<String>, AgentError>)> {
        Agent::revert_experiment(self, experiment)
    }
    fn revert_all(&mut self) -> Vec<(Key, Result<Vec<String>, AgentError>)> {
        Agent::revert_all(self)
    }
    fn active(&self) -> usize {
        Agent::active(self)
    }
}

/// The gRPC status for an agent error: the caller tells a refusal from a failure by it.
pub fn status_of(e: &AgentError) -> Status {
    let code = match e {
        AgentError::Lease(LeaseError::WrongPod { .. }) => Code::PermissionDenied,
        AgentError::Lease(LeaseError::Unknown { .. }) => Code::NotFound,
        AgentError::Lease(LeaseError::Lapsed { .. }) => Code::FailedPrecondition,
        AgentError::Lease(LeaseError::BadDuration(_)) => Code::InvalidArgument,
        AgentError::Resolve(ResolveError::NoPod { .. }) => Code::NotFound,
        AgentError::Resolve(_) => Code::FailedPrecondition,
        AgentError::Refused(_) => Code::FailedPrecondition,
        AgentError::Inject { .. } => Code::Aborted,
        AgentError::Revert { .. } | AgentError::Journal(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// The gRPC service over an engine.
pub struct AgentService<E> {
    node: String,
    /// The identity a caller's certificate must name (a DNS SAN, else its CN): the
    /// controller's. Any other certificate of the CA is refused.
    controller: String,
    engine: Arc<Mutex<E>>,
    started: Instant,
    cleaned: Vec<String>,
    pub metrics: Arc<crate::metrics::AgentMetrics>,
}

impl<E> Clone for AgentService<E> {
    fn clone(&self) -> Self {
        AgentService {
            node: self.node.clone(),
            controller: self.controller.clone(),
            engine: self.engine.clone(),
            started: self.started,
            cleaned: self.cleaned.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

fn key(r: Option<pb::FaultRef>) -> Result<Key, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("fault: missing"))?;
    for (field, v) in [
        ("experiment", &r.experiment),
        ("fault", &r.fault),
        ("pod_uid", &r.pod_uid),
    ] {
        if v.is_empty() {
            return Err(Status::invalid_argument(format!("{field}: empty")));
        }
    }
    Ok(Key {
        experiment: r.experiment,
        fault: r.fault,
        pod_uid: r.pod_uid,
    })
}

/// Check and convert an inject call; errors name the field.
pub fn inject_request(r: pb::InjectRequest) -> Result<InjectRequest, Status> {
    let k = key(Some(pb::FaultRef {
        experiment: r.experiment,
        fault: r.fault,
        pod_uid: r.pod_uid,
    }))?;
    let action = serde_json::from_str(&r.action_json)
        .map_err(|e| Status::invalid_argument(format!("action_json: {e}")))?;
    if r.containers.iter().any(|c| c.id.is_empty()) {
        return Err(Status::invalid_argument(
            "containers: a container id is empty",
        ));
    }
    let peer_addrs = r
        .peer_addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse().map_err(|_| {
                Status::invalid_argument(format!("peer_addrs[{i}]: {a:?} is not an IPv4 address"))
            })
        })
        .collect::<Result<Vec<std::net::Ipv4Addr>, Status>>()?;
    Ok(InjectRequest {
        experiment: k.experiment,
        fault: k.fault,
        pod: r.pod,
        pod_uid: k.pod_uid,
        containers: r
            .containers
            .into_iter()
            .map(|c| ContainerRef {
                name: c.name,
                id: c.id,
            })
            .collect(),
        action,
        lease_ms: r.lease_ms,
        seed: r.seed,
        peer_addrs,
    })
}

impl<E: NodeEngine> AgentService<E> {
    /// Serve `engine` as the agent of `node`; `cleaned` is what it reverted at start.
    pub fn new(node: &str, engine: E, cleaned: Vec<String>) -> Self {
        AgentService {
            node: node.to_string(),
            controller: DEFAULT_CONTROLLER.to_string(),
            engine: Arc::new(Mutex::new(engine)),
            started: Instant::now(),
            cleaned,
            metrics: Arc::new(crate::metrics::AgentMetrics::new(node)),
        }
    }

    /// Accept calls only from a certificate naming `name` (default
    /// [`DEFAULT_CONTROLLER`]).
    pub fn with_controller(mut self, name: &str) -> Self {
        self.controller = name.to_string();
        self
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Run `f` on the engine on the blocking pool and count the outcome.
    async fn call<T: Send + 'static>(
        &self,
        method: &'static str,
        f: impl FnOnce(&mut E, u64) -> Result<T, AgentError> + Send + 'static,
    ) -> Result<T, Status> {
        let engine = self.engine.clone();
        let started = self.started;
        let metrics = self.metrics.clone();
        let t0 = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
            // Read the clock once the engine is ours: a lease starts when its call runs,
            // not while it queued behind the node's other calls.
            let r = f(&mut e, started.elapsed().as_millis() as u64);
            metrics.set_active(e.active());
            r
        })
        .await
        .map_err(|e| Status::internal(format!("agent task: {e}")))?;
        let outcome = match &out {
            Ok(_) => "ok",
            Err(AgentError::Lease(_) | AgentError::Refused(_) | AgentError::Resolve(_)) => {
                "refused"
            }
            Err(_) => "failed",
        };
        self.metrics.called(method, outcome, t0.elapsed());
        out.map_err(|e| status_of(&e))
    }

    /// Revert what lapsed; call it about once a second. Returns what it reverted.
    pub async fn tick(&self) -> Vec<(Key, Result<Vec<String>, AgentError>)> {
        let engine = self.engine.clone();
        let started = self.started;
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
            let out = e.tick(started.elapsed().as_millis() as u64);
            metrics.lapsed(out.len() as u64);
            metrics.set_active(e.active());
            out
        })
        .await
        .unwrap_or_default()
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Revert everything the engine holds (the agent is stopping).
    pub async fn revert_all(&self) -> Vec<(Key, Result<Vec<String>, AgentError>)> {
        let engine = self.engine.clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
            let out = e.revert_all();
            metrics.set_active(e.active());
            out
        })
        .await
        .unwrap_or_default()
    }
}

#[tonic::async_trait]
impl<E: NodeEngine> pb::agent_server::Agent for AgentService<E> {
    async fn inject(
        &self,
        req: Request<pb::InjectRequest>,
    ) -> Result<Response<pb::InjectReply>, Status> {
        let r = inject_request(req.into_inner())?;
        let lease = r.lease_ms;
        let evidence = self.call("inject", move |e, now| e.inject(&r, now)).await?;
        Ok(Response::new(pb::InjectReply {
            evidence,
            lease_ms_left: lease,
        }))
    }

    async fn observe(
        &self,
        req: Request<pb::FaultRef>,
    ) -> Result<Response<pb::ObserveReply>, Status> {
        let k = key(Some(req.into_inner()))?;
        let evidence = self.call("observe", move |e, _| e.observe(&k)).await?;
        Ok(Response::new(pb::ObserveReply { evidence }))
    }

    async fn renew(
        &self,
        req: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::RenewReply>, Status> {
        let r = req.into_inner();
        let k = key(r.fault)?;
        let ttl = r.lease_ms;
        let until = self
            .call("renew", move |e, now| e.renew(&k, now, ttl))
            .await?;
        Ok(Response::new(pb::RenewReply {
            lease_ms_left: until.saturating_sub(self.now_ms()),
        }))
    }

    async fn revert(
        &self,
        req: Request<pb::FaultRef>,
    ) -> Result<Response<pb::RevertReply>, Status> {
        let k = key(Some(req.into_inner()))?;
        let r = self.call("revert", move |e, _| e.revert(&k)).await?;
        Ok(Response::new(pb::RevertReply {
            undone: r.undone,
            achieved: r.achieved.into_iter().collect(),
        }))
    }

    async fn revert_experiment(
        &self,
        req: Request<pb::ExperimentRef>,
    ) -> Result<Response<pb::RevertReply>, Status> {
        let experiment = req.into_inner().experiment;
        if experiment.is_empty() {
            return Err(Status::invalid_argument("experiment: empty"));
        }
        let outcomes = self
            .call("revert-experiment", move |e, _| {
                Ok(e.revert_experiment(&experiment))
            })
            .await?;
        let mut undone = Vec::new();
        let mut failed = Vec::new();
        for (k, pod, r) in outcomes {
            match r {
                Ok(msgs) => undone.push(format!("{} on {pod}: {}", k.fault, msgs.join("; "))),
                Err(e) => failed.push(format!("{} on {pod}: {e}", k.fault)),
            }
        }
        if !failed.is_empty() {
            return Err(Status::internal(format!(
                "revert failed (the agent retries): {}; undone: {}",
                failed.join("; "),
                undone.join("; ")
            )));
        }
        Ok(Response::new(pb::RevertReply {
            undone,
            achieved: Default::default(),
        }))
    }

    async fn node(&self, _: Request<pb::NodeRequest>) -> Result<Response<pb::NodeReply>, Status> {
        let active = self.call("info", |e, _| Ok(e.active())).await?;
        Ok(Response::new(pb::NodeReply {
            node: self.node.clone(),
            active: active as u32,
            cleaned_at_start: self.cleaned.clone(),
        }))
    }
}

/// The agent's TLS: its certificate, and the CA a client's certificate must chain to.
pub fn server_tls(b: &Bundle) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(&b.cert, &b.key))
        .client_ca_root(Certificate::from_pem(&b.ca))
        .client_auth_optional(false)
}

/// The controller's TLS towards agents whose certificate names `server_name`.
pub fn client_tls(b: &Bundle, server_name: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&b.ca))
        .identity(Identity::from_pem(&b.cert, &b.key))
        .domain_name(server_name)
}

/// The DER of the first certificate in a PEM text.
pub fn first_cert_der(pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()
        .map(|c| c.as_ref().to_vec())
}

/// The identity agents accept calls from unless told otherwise (`--controller-name`).
pub const DEFAULT_CONTROLLER: &str = "murphy-controller";

/// The names a certificate (DER) goes by: its DNS subject alternative names, or, with
/// none, its subject's common names.
pub fn cert_names(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("unreadable: {e}"))?;
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
    }
    Ok(names)
}

/// Authorizes a call by its certificate's identity, not only by "signed by our CA": the
/// caller's certificate must name `controller`, and must not be the agent's own (where one
/// certificate is good for server and client use, as Helm's Sprig makes them, a node
/// holding the agent secret must not call the other nodes' agents). Refusals are counted.
pub fn authorize(
    controller: String,
    own: Option<Vec<u8>>,
    metrics: Arc<crate::metrics::AgentMetrics>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let refuse = |why: String| {
            metrics.called("", "unauthorized", Duration::ZERO);
            tracing::warn!("refused a call: {why}");
            Err(Status::permission_denied(why))
        };
        let Some(peer) = req.peer_certs() else {
            return refuse("no client certificate".into());
        };
        let Some(first) = peer.first() else {
            return refuse("no client certificate".into());
        };
        if own.as_deref() == Some(first.as_ref()) {
            return refuse(
                "this is an agent's certificate: only the controller calls agents".into(),
            );
        }
        match cert_names(first.as_ref()) {
            Ok(names) if names.contains(&controller) => Ok(req),
            Ok(names) => refuse(format!(
                "the certificate names {}: only the controller ({controller}) calls agents",
                if names.is_empty() {
                    "nobody".to_string()
                } else {
                    names.join(", ")
                }
            )),
            Err(e) => refuse(format!("the client certificate is {e}")),
        }
    }
}

/// Serve `svc` on `listener` with mTLS (the agent's `tls` bundle: its certificate and the
/// CA a client's must chain to) until `shutdown` resolves, reverting lapsed leases every
/// `tick`, and everything at the end.
pub async fn serve<E: NodeEngine>(
    listener: tokio::net::TcpListener,
    tls: &Bundle,
    svc: AgentService<E>,
    tick: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let own = first_cert_der(&tls.cert);
    let tls = server_tls(tls);
    let guard = authorize(svc.controller.clone(), own, svc.metrics.clone());
    let ticker = svc.clone();
    let ticks = tokio::spawn(async move {
        let mut iv = tokio::time::interval(tick);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            for (k, r) in ticker.tick().await {
                match r {
                    Ok(_) => tracing::warn!(
                        fault = %k.fault, experiment = %k.experiment, pod_uid = %k.pod_uid,
                        "lease lapsed: reverted"
                    ),
                    Err(e) => tracing::error!(
                        fault = %k.fault, experiment = %k.experiment, pod_uid = %k.pod_uid,
                        "lease lapsed; revert FAILED: {e}"
                    ),
                }
            }
        }
    });
    let last = svc.clone();
    let out = Server::builder()
        .tls_config(tls)?
        .add_service(pb::agent_server::AgentServer::with_interceptor(svc, guard))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await;
    ticks.abort();
    // Stopping (SIGTERM, uninstall, a rolling update): leave nothing behind.
    for (k, r) in last.revert_all().await {
        match r {
            Ok(_) => tracing::info!(
                fault = %k.fault, experiment = %k.experiment, pod_uid = %k.pod_uid,
                "stopping: reverted"
            ),
            Err(e) => tracing::error!(
                fault = %k.fault, experiment = %k.experiment, pod_uid = %k.pod_uid,
                "stopping: revert FAILED, left in the journal for the next agent: {e}"
            ),
        }
    }
    out
}

/// The controller's connections to agents: one channel per address, reused.
#[derive(Clone)]
pub struct Agents {
    tls: ClientTlsConfig,
    timeout: Duration,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

pub type Client = pb::agent_client::AgentClient<Channel>;

impl Agents {
    pub fn new(tls: ClientTlsConfig, timeout: Duration) -> Self {
        Agents {
            tls,
            timeout,
            channels: Arc::default(),
        }
    }

    /// A client for the agent at `addr` (host:port), on the channel already open to it if
    /// there is one. Connects lazily; a dead agent shows as an error on the call.
    pub fn client(&self, addr: &str) -> Result<Client, String> {
        let mut chans = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = chans.get(addr) {
            return Ok(Client::new(c.clone()));
        }
        let ep = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| format!("agent address {addr:?}: {e}"))?
            .tls_config(self.tls.clone())
            .map_err(|e| format!("agent {addr}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(self.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
        let ch = ep.connect_lazy();
        chans.insert(addr.to_string(), ch.clone());
        Ok(Client::new(ch))
    }

    /// Open channels (one per agent address).
    pub fn open(&self) -> usize {
        self.channels.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Run `call` for every item, at most `limit` at a time, each on its agent's reused
    /// channel; results come back in the items' order.
    pub async fn fan_out<T, R, F, Fut>(
        &self,
        items: Vec<(String, T)>,
        limit: usize,
        call: F,
    ) -> Vec<Result<R, Status>>
    where
        F: Fn(Client, T) -> Fut,
        Fut: std::future::Future<Output = Result<R, Status>>,
    {
        let mut out: Vec<(usize, Result<R, Status>)> =
            futures_util::stream::iter(items.into_iter().enumerate().map(|(i, (addr, t))| {
                let client = self.client(&addr);
                let fut = client.map(|c| call(c, t));
                async move {
                    match fut {
                        Ok(f) => (i, f.await),
                        Err(e) => (i, Err(Status::unavailable(e))),
                    }
                }
            }))
            .buffer_unordered(limit.max(1))
            .collect()
            .await;
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    }
}
