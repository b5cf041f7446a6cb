//! Privileged: the agent over gRPC with mTLS on loopback, injecting into real processes in
//! kubelet-style pod cgroups (pod<uid>/<container-id>, each in its own network namespace).
//! A call without a valid client certificate is refused; a call naming another pod UID is
//! refused; a lapsed lease reverts; a restarted agent binary reverts its predecessor's fault.

mod common;
use common::{resumed, state, Tree};
use murphy_operator::certs::{self, Bundle};
use murphy_operator::grpc::{self, pb, Agents};
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use tonic::Code;

const UID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const APP: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const EXP: &str = "shop/pause-web";

struct Node {
    tree: Tree,
    pid: i32,
    dir: PathBuf,
    certs: certs::Set,
}

fn node(tag: &str) -> Node {
    let (tree, pid, dir) = common::pod_tree(tag, UID, APP, Some("burstable"));
    let certs = certs::generate("test-ca", "murphy-controller", "murphy-agent", 1).expect("certs");
    Node {
        tree,
        pid,
        dir,
        certs,
    }
}

/// Serve an in-process agent on a loopback port; returns its address and a stop switch.
async fn serve(n: &Node, tick: Duration) -> (String, tokio::sync::oneshot::Sender<()>) {
    common::agent_on_loopback(&n.tree.root, &n.dir, &n.certs, tick).await
}

fn pause(lease_ms: u64, uid: &str) -> pb::InjectRequest {
    pb::InjectRequest {
        experiment: EXP.into(),
        fault: "pause".into(),
        pod: "shop/web-0".into(),
        pod_uid: uid.into(),
        containers: vec![pb::Container {
            name: "app".into(),
            id: APP.into(),
        }],
        action_json: r#"{"kind":"process-pause","method":"signal"}"#.into(),
        lease_ms,
        seed: 1,
        peer_addrs: Vec::new(),
    }
}

fn fault_ref(uid: &str) -> pb::FaultRef {
    pb::FaultRef {
        experiment: EXP.into(),
        fault: "pause".into(),
        pod_uid: uid.into(),
    }
}

fn controller(n: &Node) -> Agents {
    Agents::new(
        grpc::client_tls(&n.certs.controller, "murphy-agent"),
        Duration::from_secs(10),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inject_observe_revert_over_mtls_and_refuse_another_pods_uid() {
    let n = node("mtls");
    let (addr, stop) = serve(&n, Duration::from_secs(1)).await;
    let agents = controller(&n);
    let mut c = agents.client(&addr).expect("client");
    let info = c.node(pb::NodeRequest {}).await.expect("node").into_inner();
    assert_eq!((info.node.as_str(), info.active), ("node-a", 0));

    let ev = c
        .inject(pause(60_000, UID))
        .await
        .expect("inject")
        .into_inner();
    assert!(ev.evidence.contains("state T"), "{}", ev.evidence);
    assert_eq!(
        state(n.pid),
        Some('T'),
        "the container's process is stopped"
    );
    let seen = c
        .observe(fault_ref(UID))
        .await
        .expect("observe")
        .into_inner();
    assert!(
        seen.evidence.iter().any(|e| e.contains("state T")),
        "observe reads the stopped state again: {:?}",
        seen.evidence
    );

    // Another pod's UID: refused, and nothing changes.
    let other = "00000000-0000-4000-8000-000000000000";
    let err = c.revert(fault_ref(other)).await.expect_err("other uid");
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert!(err.message().contains(UID), "{}", err.message());
    assert_eq!(state(n.pid), Some('T'));
    // Injecting into a pod that has no cgroup on this node: not found, nothing applied.
    let err = c
        .inject(pb::InjectRequest {
            fault: "pause-2".into(),
            ..pause(60_000, other)
        })
        .await
        .expect_err("not here");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    // A malformed fault names the field.
    let err = c
        .inject(pb::InjectRequest {
            action_json: r#"{"kind":"process-pause","method":"hover"}"#.into(),
            fault: "pause-3".into(),
            ..pause(60_000, UID)
        })
        .await
        .expect_err("bad action");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().starts_with("action_json:"), "{err}");

    let undone = c.revert(fault_ref(UID)).await.expect("revert").into_inner();
    assert!(!undone.undone.is_empty());
    assert!(resumed(n.pid), "revert resumes the process");
    let again = c.revert(fault_ref(UID)).await.expect_err("twice");
    assert_eq!(again.code(), Code::NotFound, "{again}");
    assert_eq!(agents.open(), 1, "one channel, reused by every call");
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&n.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_valid_client_certificate_is_refused() {
    let n = node("nocert");
    let (addr, stop) = serve(&n, Duration::from_secs(1)).await;
    let ca = Certificate::from_pem(&n.certs.agent.ca);
    // 1. No client certificate at all.
    let anonymous = Agents::new(
        ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name("murphy-agent"),
        Duration::from_secs(5),
    );
    // 2. A certificate from another CA, with the right name.
    let stranger = certs::generate("other-ca", "murphy-controller", "murphy-agent", 1).expect("c");
    let forged = Agents::new(
        ClientTlsConfig::new()
            .ca_certificate(ca)
            .identity(Identity::from_pem(
                &stranger.controller.cert,
                &stranger.controller.key,
            ))
            .domain_name("murphy-agent"),
        Duration::from_secs(5),
    );
    // What a refused handshake looks like from the client: the server's alert, or the
    // connection closed under the call (whichever the client reads first).
    let want = [
        "UnknownCA",
        "CertificateRequired",
        "connection closed",
        "broken pipe",
    ];
    for (who, agents) in [("no certificate", anonymous), ("another CA", forged)] {
        let mut c = agents.client(&addr).expect("client");
        let err = c.inject(pause(60_000, UID)).await.expect_err("refused");
        // TLS 1.3: the server rejects the certificate after the client's half of the
        // handshake: the client sees the server's alert, or the connection closed.
        let detail = format!("{err:?}");
        assert!(
            matches!(
                err.code(),
                Code::Unavailable | Code::Cancelled | Code::Unknown
            ) && want.iter().any(|w| detail.contains(w)),
            "{who}: {detail}"
        );
        assert_eq!(state(n.pid).map(|s| s != 'T'), Some(true), "{who}");
    }
    // The real controller certificate gets through, and nothing was injected before.
    let mut c = controller(&n).client(&addr).expect("client");
    let info = c.node(pb::NodeRequest {}).await.expect("node").into_inner();
    assert_eq!(info.active, 0);
    // A plaintext client is not answered either.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await;
    if let Ok(ch) = plain {
        let err = pb::agent_client::AgentClient::new(ch)
            .node(pb::NodeRequest {})
            .await
            .expect_err("plaintext");
        assert!(
            matches!(
                err.code(),
                Code::Unavailable
                    | Code::Unknown
                    | Code::Internal
                    | Code::Cancelled
                    | Code::DeadlineExceeded
            ),
            "{err}"
        );
    }
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&n.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_reverts_without_the_controller() {
    let n = node("lapse");
    let (addr, stop) = serve(&n, Duration::from_millis(100)).await;
    let mut c = controller(&n).client(&addr).expect("client");
    c.inject(pause(1_500, UID)).await.expect("inject");
    assert_eq!(state(n.pid), Some('T'));
    // One renewal keeps it; then the controller goes quiet.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let left = c
        .renew(pb::RenewRequest {
            fault: Some(fault_ref(UID)),
            lease_ms: 1_500,
        })
        .await
        .expect("renew")
        .into_inner();
    assert!(left.lease_ms_left > 1_000, "{}", left.lease_ms_left);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(state(n.pid), Some('T'), "renewed: still paused at 1.8 s");
    let back = murphy::fault::wait_for(Duration::from_secs(3), || {
        !matches!(state(n.pid), Some('T' | 't'))
    });
    assert!(back, "the agent reverted when the lease lapsed");
    let err = c
        .renew(pb::RenewRequest {
            fault: Some(fault_ref(UID)),
            lease_ms: 1_500,
        })
        .await
        .expect_err("lapsed");
    assert!(
        matches!(err.code(), Code::FailedPrecondition | Code::NotFound),
        "{err}"
    );
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&n.dir);
}

/// The agent binary, as the DaemonSet runs it.
fn spawn_agent(n: &Node, tls: &std::path::Path, port: u16, health: u16) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_murphy-operator"))
        .args(["agent", "--node-name", "node-b", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-dir")
        .arg(tls)
        .arg("--state-dir")
        .arg(&n.dir)
        .arg("--health-addr")
        .arg(format!("127.0.0.1:{health}"))
        .arg("--cgroup-root")
        .arg(&n.tree.root)
        .arg("--engine-exe")
        .arg("/bin/false")
        .spawn()
        .expect("agent binary")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

async fn get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("health");
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

async fn until_up(agents: &Agents, addr: &str) -> pb::NodeReply {
    for _ in 0..100 {
        if let Ok(r) = agents
            .client(addr)
            .expect("client")
            .node(pb::NodeRequest {})
            .await
        {
            return r.into_inner();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the agent at {addr} never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_binary_reverts_its_predecessors_fault() {
    let n = node("restart");
    let tls = n.dir.join("tls");
    n.certs.agent.write(&tls).expect("tls files");
    assert_eq!(Bundle::read(&tls).expect("read").cert, n.certs.agent.cert);
    let (port, hport) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{port}");
    let mut first = spawn_agent(&n, &tls, port, hport);
    let agents = controller(&n);
    let info = until_up(&agents, &addr).await;
    assert_eq!(info.node, "node-b");
    assert!(info.cleaned_at_start.is_empty());
    agents
        .client(&addr)
        .expect("client")
        .inject(pause(60_000, UID))
        .await
        .expect("inject");
    assert_eq!(state(n.pid), Some('T'));
    let metrics = get(hport, "/metrics").await;
    assert!(
        metrics.contains("murphy_agent_active_injections{node=\"node-b\"} 1"),
        "{metrics}"
    );
    // The OpenMetrics page of prometheus-client: the inject call timed, build info, the
    // process' own figures; a query string is not another page.
    for want in [
        "application/openmetrics-text",
        "murphy_agent_call_seconds_count{node=\"node-b\",method=\"inject\"} 1",
        "murphy_agent_calls_total{node=\"node-b\",outcome=\"ok\"}",
        "murphy_build_info{version=",
        "process_resident_memory_bytes ",
        "# EOF",
    ] {
        assert!(metrics.contains(want), "{want}\n{metrics}");
    }
    assert!(get(hport, "/metrics?x=1")
        .await
        .contains("murphy_agent_active_injections"));
    assert!(get(hport, "/healthz").await.starts_with("HTTP/1.0 200"));
    assert!(get(hport, "/debug").await.starts_with("HTTP/1.0 404"));
    // The agent dies hard with the fault in effect (no revert on the way out).
    first.kill().expect("kill");
    first.wait().expect("wait");
    assert_eq!(state(n.pid), Some('T'), "still paused: nobody reverted yet");

    let (port2, hport2) = (free_port(), free_port());
    let addr2 = format!("127.0.0.1:{port2}");
    let mut second = spawn_agent(&n, &tls, port2, hport2);
    let agents2 = controller(&n);
    let info = until_up(&agents2, &addr2).await;
    assert!(
        !info.cleaned_at_start.is_empty(),
        "the new agent says what it reverted"
    );
    assert!(resumed(n.pid), "{:?}", info.cleaned_at_start);
    assert_eq!(info.active, 0);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = second.wait().expect("wait");
    assert!(
        status.success(),
        "SIGTERM stops the agent cleanly: {status}"
    );
    let _ = std::fs::remove_dir_all(&n.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_with_an_agents_own_certificate_is_refused() {
    let mut n = node("owncert");
    // As Helm's Sprig makes them: the agent's certificate is good for client use too.
    n.certs = certs::generate_with("test-ca", "murphy-controller", "murphy-agent", 1, true)
        .expect("certs");
    let (addr, stop) = serve(&n, Duration::from_secs(1)).await;
    // A node that holds the agent secret calls another node's agent with it.
    let stolen = Agents::new(
        grpc::client_tls(&n.certs.agent, "murphy-agent"),
        Duration::from_secs(5),
    );
    let err = stolen
        .client(&addr)
        .expect("client")
        .inject(pause(60_000, UID))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert_ne!(state(n.pid), Some('T'), "nothing injected");
    let info = controller(&n)
        .client(&addr)
        .expect("client")
        .node(pb::NodeRequest {})
        .await
        .expect("the controller's certificate still works")
        .into_inner();
    assert_eq!(info.active, 0);
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&n.dir);
}

/// Signed by the right CA is not enough: only a certificate naming the controller may
/// call an agent (a stolen or forged client certificate of the CA is refused, and counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_the_ca_naming_someone_else_is_refused() {
    let mut n = node("identity");
    let (set, others) = certs::generate_with_clients(
        "test-ca",
        "murphy-controller",
        "murphy-agent",
        1,
        false,
        &["evil-client", "murphy-agent"],
    )
    .expect("certs");
    n.certs = set;
    let (addr, stop) = serve(&n, Duration::from_secs(1)).await;
    let as_other = |other| {
        Agents::new(
            grpc::client_tls(other, "murphy-agent"),
            Duration::from_secs(5),
        )
    };
    for other in &others {
        let names =
            grpc::cert_names(&grpc::first_cert_der(&other.cert).expect("der")).expect("names");
        let err = as_other(other)
            .client(&addr)
            .expect("client")
            .inject(pause(60_000, UID))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::PermissionDenied, "{names:?}: {err}");
        assert!(
            err.message().contains(&names[0]) && err.message().contains("murphy-controller"),
            "{err}"
        );
        assert_ne!(state(n.pid), Some('T'), "nothing injected");
    }
    assert_eq!(
        grpc::cert_names(&grpc::first_cert_der(&n.certs.controller.cert).expect("der")).expect("n"),
        ["murphy-controller"]
    );
    let mut c = controller(&n).client(&addr).expect("client");
    c.node(pb::NodeRequest {})
        .await
        .expect("the controller's certificate works");
    // Nor may they undo what the controller injected.
    c.inject(pause(60_000, UID)).await.expect("inject");
    assert_eq!(state(n.pid), Some('T'));
    for other in &others {
        let err = as_other(other)
            .client(&addr)
            .expect("client")
            .revert(fault_ref(UID))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::PermissionDenied, "{err}");
        assert_eq!(
            state(n.pid),
            Some('T'),
            "still paused: the revert was refused"
        );
    }
    c.revert(fault_ref(UID))
        .await
        .expect("the controller reverts");
    assert_ne!(state(n.pid), Some('T'));
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&n.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_agent_reverts_what_it_holds() {
    let n = node("stopping");
    let (addr, stop) = serve(&n, Duration::from_secs(1)).await;
    let mut c = controller(&n).client(&addr).expect("client");
    c.inject(pause(60_000, UID)).await.expect("inject");
    assert_eq!(state(n.pid), Some('T'));
    // SIGTERM, uninstall, a rolling update: the agent goes, and takes its faults with it.
    let _ = stop.send(());
    let back = murphy::fault::wait_for(Duration::from_secs(3), || {
        !matches!(state(n.pid), Some('T' | 't'))
    });
    assert!(back, "the agent reverted on its way out");
    let _ = std::fs::remove_dir_all(&n.dir);
}
