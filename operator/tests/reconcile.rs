//! The controller's I/O against recorded Kubernetes API scenarios (tower-test stands in
//! for the API server, the one part that cannot run here), one test per reconcile path.
//! Each scenario lists the requests the reconcile must make, in order, with the API
//! server's answers; a request out of order, or one too many, fails the test. Where a
//! path calls agents, the agent is the real one (gRPC with mTLS on loopback, injecting into
//! a real process in a kubelet-style pod cgroup).

mod common;
use common::{resumed, state, Tree};
use http::{Method, Request, Response};
use kube::client::Body;
use kube::Client;
use murphy_operator::controller::{ABORT_ANNOTATION, FINALIZER};
use murphy_operator::crd::{Experiment, ExperimentSpec};
use murphy_operator::grpc;
use murphy_operator::reconcile::{self, Ctx, Directory, Events, Metrics};
use murphy_operator::status::{ExperimentStatus, Phase};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The API server's side of the mock, shared by the scenario steps of one test.
type Handle = Arc<tokio::sync::Mutex<tower_test::mock::Handle<Request<Body>, Response<Body>>>>;

const NS: &str = "shop";
const NAME: &str = "pause-web";
const EXP_UID: &str = "0f5d2a2e-1111-4c4c-8888-000000000001";
const POD_UID: &str = "b1946ac9-2492-4f2e-9d4c-6f1e2d3c4b5a";
const APP: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

/// One expected request and the API server's answer.
struct Step {
    method: Method,
    path: String,
    /// Expected query (`None`: don't care).
    query: Option<String>,
    reply: Reply,
}

enum Reply {
    Json(Value),
    /// Answer with the request's own body (a create or an event).
    Echo,
    /// An API error (e.g. 404 Not Found) with its Status object.
    Error(u16, String),
}

fn step(method: Method, path: &str, reply: Reply) -> Step {
    Step {
        method,
        path: path.into(),
        query: None,
        reply,
    }
}

/// Serve `steps` in order; returns each request's body (JSON) for the test to inspect.
/// Panics (failing the test) on a request out of order.
fn api_server(handle: Handle, steps: Vec<Step>) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let mut handle = handle.lock().await;
        let mut bodies = Vec::new();
        for (i, s) in steps.into_iter().enumerate() {
            let next = tokio::time::timeout(Duration::from_secs(15), handle.next_request())
                .await
                .unwrap_or_else(|_| panic!("step {i}: no {} {} came", s.method, s.path));
            let (req, send) = next.unwrap_or_else(|| panic!("step {i}: client gone"));
            assert_eq!(
                (req.method(), req.uri().path()),
                (&s.method, s.path.as_str()),
                "step {i}: unexpected request {}",
                req.uri()
            );
            if let Some(q) = &s.query {
                assert_eq!(req.uri().query(), Some(q.as_str()), "step {i}");
            }
            let bytes = req.into_body().collect_bytes().await.expect("body");
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("json body")
            };
            let (code, answer) = match s.reply {
                Reply::Json(v) => (200, v),
                Reply::Echo => (200, body.clone()),
                Reply::Error(code, reason) => (
                    code,
                    json!({"apiVersion": "v1", "kind": "Status", "metadata": {},
                           "status": "Failure", "reason": reason, "code": code}),
                ),
            };
            bodies.push(body);
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                    .expect("response"),
            );
        }
        // Nothing more may come (the reconcile is over when the test joins).
        bodies
    })
}

/// Run one reconcile of `exp` against a scenario; returns the requests' bodies.
async fn play(
    c: &Arc<Ctx>,
    handle: &Handle,
    exp: &Experiment,
    steps: Vec<Step>,
    what: &str,
) -> Vec<Value> {
    let server = api_server(handle.clone(), steps);
    reconcile_once(Arc::new(exp.clone()), c.clone())
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    server.await.expect("server")
}

/// After the scenario: no request beyond those listed.
async fn no_more(handle: &Handle) {
    let mut handle = handle.lock().await;
    let extra = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
    if let Ok(Some((req, _))) = extra {
        panic!("unexpected extra request {} {}", req.method(), req.uri());
    }
}

/// One reconcile, failing the test if it waits on a request the scenario does not answer.
async fn reconcile_once(
    exp: Arc<Experiment>,
    c: Arc<Ctx>,
) -> Result<kube::runtime::controller::Action, reconcile::Error> {
    tokio::time::timeout(Duration::from_secs(20), reconcile::reconcile(exp, c))
        .await
        .expect("the reconcile waited on a request the scenario does not answer")
}

/// A TCP address that always accepts (a listener of this test process): the probes' target.
/// A cluster never runs a `command` check (it would run as the controller).
fn healthy_addr() -> String {
    static ADDR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ADDR.get_or_init(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let addr = l.local_addr().expect("addr").to_string();
        std::thread::spawn(move || for _ in l.incoming() {});
        addr
    })
    .clone()
}

/// An HTTP health endpoint (of this test process) that answers 200 while `pid` runs or
/// sleeps and 503 while it is stopped: a probe that sees the pause for real.
fn process_health(pid: i32) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let running = status
                .lines()
                .find_map(|l| l.strip_prefix("State:"))
                .is_some_and(|st| matches!(st.trim().chars().next(), Some('R' | 'S')));
            let line = if running {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = c.write_all(
                format!("HTTP/1.1 {line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    addr
}

fn spec(yaml: &str) -> ExperimentSpec {
    serde_saphyr::from_str(&yaml.replace("{healthy}", &healthy_addr())).expect("spec")
}

const PAUSE_SPEC: &str = r#"
targets:
  web:
    pods:
      namespace: shop
      matchLabels: {app: web}
    pick: {mode: all}
probes:
  - name: web-running
    interval: 100ms
    tcp: {address: "{healthy}"}
faults:
  - name: pause
    target: web
    kind: process-pause
    method: signal
    at: 0s
    duration: 1s
steadyState:
  duration: 200ms
observeAfter: 1500ms
claims:
  - name: the probe keeps answering
    availability:
      probe: web-running
      fault: pause
      atLeast: 99%
"#;

fn experiment(
    yaml: &str,
    finalizer: bool,
    phase: Option<Phase>,
    annotations: &[(&str, &str)],
) -> Experiment {
    let mut e = Experiment::new(NAME, spec(yaml));
    e.metadata.namespace = Some(NS.into());
    e.metadata.uid = Some(EXP_UID.into());
    e.metadata.generation = Some(1);
    e.metadata.resource_version = Some("7".into());
    if finalizer {
        e.metadata.finalizers = Some(vec![FINALIZER.into()]);
    }
    if !annotations.is_empty() {
        e.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }
    e.status = phase.map(|p| ExperimentStatus {
        phase: p,
        ..Default::default()
    });
    e
}

fn exp_path() -> String {
    format!("/apis/murphy.dev/v1alpha1/namespaces/{NS}/experiments/{NAME}")
}

fn events_path() -> String {
    format!("/apis/events.k8s.io/v1/namespaces/{NS}/events")
}

fn ctx(client: Client, agents: grpc::Agents, fixed: &[(&str, &str)]) -> Arc<Ctx> {
    Arc::new(Ctx {
        recorder: Events {
            client: client.clone(),
            controller: "murphy-controller".into(),
            instance: "test".into(),
        },
        client,
        agents,
        directory: Directory {
            fixed: fixed
                .iter()
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .collect(),
            namespace: None,
            selector: None,
            port: 7443,
        },
        lease_ms: 5_000,
        runs: tokio::sync::Mutex::new(HashMap::new()),
        metrics: Arc::new(Metrics::default()),
        home_namespace: "murphy-system".into(),
        runner: None,
        watch_namespaces: Vec::new(),
        grafana: None,
    })
}

fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        Client::new(svc, "default"),
        Arc::new(tokio::sync::Mutex::new(handle)),
    )
}

fn certs() -> murphy_operator::certs::Set {
    murphy_operator::certs::generate("test-ca", "murphy-controller", "murphy-agent", 1)
        .expect("certs")
}

fn no_agents() -> grpc::Agents {
    let c = certs();
    grpc::Agents::new(
        grpc::client_tls(&c.controller, "murphy-agent"),
        Duration::from_secs(5),
    )
}

fn echo_exp(e: &Experiment) -> Reply {
    Reply::Json(serde_json::to_value(e).expect("json"))
}

#[tokio::test]
async fn a_new_experiment_gets_the_finalizer_first() {
    let (client, handle) = mock();
    let exp = experiment(PAUSE_SPEC, false, None, &[]);
    let server = api_server(
        handle.clone(),
        vec![step(Method::PATCH, &exp_path(), echo_exp(&exp))],
    );
    let c = ctx(client, no_agents(), &[]);
    reconcile_once(Arc::new(exp), c).await.expect("reconcile");
    let bodies = server.await.expect("server");
    assert_eq!(
        bodies[0],
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]),
        "a JSON patch that fails if the finalizers changed meanwhile"
    );
    no_more(&handle).await;
}

#[tokio::test]
async fn a_local_only_spec_is_rejected_naming_the_fields() {
    let (client, handle) = mock();
    let yaml = format!(
        "{PAUSE_SPEC}lab:\n  hosts:\n    - name: a\n      processes:\n        - name: p\n          argv: [sleep, \"9\"]\n"
    );
    let exp = experiment(&yaml, true, None, &[]);
    let server = api_server(handle.clone(), status_and_event(&exp));
    let c = ctx(client, no_agents(), &[]);
    reconcile_once(Arc::new(exp), c.clone())
        .await
        .expect("reconcile");
    let bodies = server.await.expect("server");
    let st = &bodies[0]["status"];
    assert_eq!(st["phase"], "Aborted");
    let aborted = st["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Aborted")
        .expect("Aborted condition");
    assert_eq!(aborted["status"], "True");
    assert!(
        aborted["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.lab")),
        "{aborted}"
    );
    // `kubectl wait --for=condition=Finished` returns for a refused spec too, and Ready
    // says it was refused.
    let cond = |t: &str| {
        st["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .map(|c| (c["status"].clone(), c["reason"].clone()))
    };
    assert_eq!(cond("Finished"), Some((json!("True"), json!("Rejected"))));
    assert_eq!(cond("Ready"), Some((json!("False"), json!("Rejected"))));
    assert_eq!(bodies[1]["type"], "Warning");
    assert_eq!(bodies[1]["reason"], "Rejected");
    assert_eq!(bodies[1]["regarding"]["name"], NAME);
    let page = c.metrics.render();
    assert!(
        page.contains("murphy_experiments_rejected_total 1")
            && page.contains("murphy_experiments_started_total 0"),
        "{page}"
    );
    no_more(&handle).await;
}

#[tokio::test]
async fn a_namespace_that_did_not_opt_in_aborts_the_start_with_the_reason() {
    let (client, handle) = mock();
    let exp = experiment(PAUSE_SPEC, true, None, &[]);
    let mut list_ns = step(
        Method::GET,
        "/api/v1/namespaces",
        Reply::Json(
            json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}, "items": []}),
        ),
    );
    list_ns.query = Some("&labelSelector=murphy.dev%2Fchaos%3Denabled".into());
    let server = api_server(
        handle.clone(),
        vec![
            list_ns,
            step(
                Method::PATCH,
                &format!("{}/status", exp_path()),
                echo_exp(&exp),
            ),
            step(Method::POST, &events_path(), Reply::Echo),
        ],
    );
    let c = ctx(client, no_agents(), &[]);
    reconcile_once(Arc::new(exp), c).await.expect("reconcile");
    let bodies = server.await.expect("server");
    assert_eq!(bodies[1]["status"]["phase"], "Aborted");
    let text = bodies[1].to_string();
    assert!(
        text.contains("has not opted in") && text.contains("murphy.dev/chaos=enabled"),
        "{text}"
    );
    assert_eq!(bodies[2]["reason"], "TargetsFailed");
    no_more(&handle).await;
}

#[tokio::test]
async fn a_run_lost_to_a_controller_restart_is_abandoned() {
    let (client, handle) = mock();
    let exp = experiment(PAUSE_SPEC, true, Some(Phase::Running), &[]);
    let server = api_server(handle.clone(), status_and_event(&exp));
    let c = ctx(client, no_agents(), &[]);
    reconcile_once(Arc::new(exp), c).await.expect("reconcile");
    let bodies = server.await.expect("server");
    assert_eq!(bodies[0]["status"]["phase"], "Aborted");
    let said = bodies[0].to_string();
    assert!(
        said.contains("no agent is known") && said.contains("leases lapse"),
        "{said}"
    );
    assert_eq!(bodies[1]["reason"], "Abandoned");
    no_more(&handle).await;
}

/// A controller killed mid-run (SIGKILL: nothing ended the run) is replaced by one that
/// does not hold the run: it reverts what the agents still hold for it at once, rather
/// than leaving the pod frozen until the lease lapses, and says so in the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_controller_reverts_what_a_lost_run_still_holds_and_ends_it() {
    let p = pod("adopt");
    let (old, handle, stop) = with_agent(&p).await;
    let long = PAUSE_SPEC.replace("duration: 1s", "duration: 60s");
    let (_, running) = start_and_inject(&old, &handle, &long).await;
    assert_eq!(state(p.pid), Some('T'));
    // The same agent, reached by the new controller as node-a's.
    let addr = old.directory.fixed["node-a"].clone();
    // (The new controller holds the same certificate.)
    let agents = old.agents.clone();
    drop(old); // the controller is gone; the agent still holds the pause

    let (client, handle) = mock();
    let new = ctx(client, agents, &[("node-a", &addr)]);
    let bodies = play(&new, &handle, &running, status_and_event(&running), "adopt").await;
    let st = &bodies[0]["status"];
    assert!(
        resumed(p.pid),
        "the new controller reverted it at once: {st}"
    );
    assert_eq!(st["phase"], "Aborted", "{st}");
    let said = st.to_string();
    assert!(
        said.contains("no claim is judged")
            && said.contains("reverted what was still injected")
            && said.contains("pause on shop/web-0"),
        "{said}"
    );
    assert_eq!(bodies[1]["reason"], "Abandoned");
    no_more(&handle).await;
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn a_completed_experiment_is_left_alone() {
    let (client, handle) = mock();
    let exp = experiment(PAUSE_SPEC, true, Some(Phase::Completed), &[]);
    let c = ctx(client, no_agents(), &[]);
    let next = reconcile_once(Arc::new(exp), c).await.expect("reconcile");
    assert_eq!(next, kube::runtime::controller::Action::await_change());
    no_more(&handle).await;
}

// --- Paths that reach an agent (privileged: real processes in pod cgroups). ---

struct Pod {
    tree: Tree,
    pid: i32,
    dir: std::path::PathBuf,
}

fn pod(tag: &str) -> Pod {
    let (tree, pid, dir) = common::pod_tree(tag, POD_UID, APP, None);
    Pod { tree, pid, dir }
}

fn namespaces() -> Reply {
    Reply::Json(json!({
        "apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
        "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"murphy.dev/chaos": "enabled"}}}]
    }))
}

/// A running pod on node-a with one container `app` (`cid` its runtime id), made by the
/// web ReplicaSet long before the run.
fn pod_json(name: &str, uid: &str, cid: &str, ip: &str) -> Value {
    pod_json_created(name, uid, cid, ip, "2020-01-01T00:00:00Z")
}

/// The same, created by the ReplicaSet at `created` (RFC 3339).
fn pod_json_created(name: &str, uid: &str, cid: &str, ip: &str, created: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": uid, "labels": {"app": "web"},
                     "creationTimestamp": created,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c",
                                          "uid": "6b1c2f4e-0d1a-4e7b-9c3f-2a8e5d7b9c01", "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "web"}]},
        "status": {"phase": "Running", "podIP": ip,
                   "containerStatuses": [{"name": "app", "containerID": format!("containerd://{cid}"),
                     "image": "web", "imageID": "", "ready": true, "restartCount": 0}]}
    })
}

fn pod_list(items: Vec<Value>) -> Reply {
    Reply::Json(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}))
}

fn pods() -> Reply {
    pod_list(vec![pod_json("web-0", POD_UID, APP, "10.0.0.5")])
}

/// The status patch and the Event that go with it.
fn status_and_event(exp: &Experiment) -> Vec<Step> {
    vec![
        step(
            Method::PATCH,
            &format!("{}/status", exp_path()),
            echo_exp(exp),
        ),
        step(Method::POST, &events_path(), Reply::Echo),
    ]
}

/// Evaluate: the evidence ConfigMap, the final status, the Event.
fn evaluate_steps(exp: &Experiment) -> Vec<Step> {
    let mut v = vec![step(
        Method::POST,
        &format!("/api/v1/namespaces/{NS}/configmaps"),
        Reply::Echo,
    )];
    v.extend(status_and_event(exp));
    v
}

/// An Event on a fault's life (injected, reverted, released, ended early).
fn fault_event() -> Step {
    step(Method::POST, &events_path(), Reply::Echo)
}

/// The target namespace's pods listed (an open fault window looks for replacements).
fn list_pods(reply: Reply) -> Vec<Step> {
    vec![step(
        Method::GET,
        &format!("/api/v1/namespaces/{NS}/pods"),
        reply,
    )]
}

fn start_steps(exp: &Experiment) -> Vec<Step> {
    vec![
        step(Method::GET, "/api/v1/namespaces", namespaces()),
        step(
            Method::GET,
            &format!("/api/v1/namespaces/{NS}/pods"),
            pods(),
        ),
        step(
            Method::PATCH,
            &format!("{}/status", exp_path()),
            echo_exp(exp),
        ),
        step(Method::POST, &events_path(), Reply::Echo),
    ]
}

/// An agent on loopback over `p`'s pod, and a controller context (mock API server) that
/// reaches it as node-a's agent.
async fn with_agent(p: &Pod) -> (Arc<Ctx>, Handle, tokio::sync::oneshot::Sender<()>) {
    let certs = certs();
    let (addr, stop) =
        common::agent_on_loopback(&p.tree.root, &p.dir, &certs, Duration::from_millis(200)).await;
    let agents = grpc::Agents::new(
        grpc::client_tls(&certs.controller, "murphy-agent"),
        Duration::from_secs(10),
    );
    let (client, handle) = mock();
    (ctx(client, agents, &[("node-a", &addr)]), handle, stop)
}

/// Start `yaml` (namespaces, pods, status Running, Event), then step it past the steady
/// state, which injects (the open window lists the pods to look for replacements).
/// Returns the start's request bodies and the Running experiment.
async fn start_and_inject(c: &Arc<Ctx>, handle: &Handle, yaml: &str) -> (Vec<Value>, Experiment) {
    let pending = experiment(yaml, true, None, &[]);
    let server = api_server(handle.clone(), start_steps(&pending));
    reconcile_once(Arc::new(pending), c.clone())
        .await
        .expect("start");
    let started = server.await.expect("server");
    no_more(handle).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = experiment(yaml, true, Some(Phase::Running), &[]);
    let mut steps = list_pods(pods());
    steps.push(fault_event());
    let bodies = play(c, handle, &running, steps, "inject").await;
    // The Event says the fault is in effect, naming the pod, the moment it is.
    assert_eq!(bodies[1]["reason"], "FaultInjected", "{}", bodies[1]);
    assert_eq!(bodies[1]["type"], "Normal");
    assert!(
        bodies[1]["note"]
            .as_str()
            .is_some_and(|n| n.contains("shop/web-0") && n.contains("process-pause")),
        "{}",
        bodies[1]
    );
    // And the metrics mark it active, for a Grafana annotation query.
    let page = c.metrics.render();
    assert!(
        page.contains("murphy_fault_active{namespace=\"shop\",experiment=")
            && page.contains("kind=\"process-pause\"} 1"),
        "{page}"
    );
    (started, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_inject_revert_and_evaluate_through_a_real_agent() {
    let p = pod("life");
    let (c, handle, stop) = with_agent(&p).await;
    // The probe asks a health endpoint that reports the pod's process state (as a
    // service's own health check would): it fails while the process is paused.
    let health = process_health(p.pid);
    let yaml = PAUSE_SPEC
        .replace(
            r#"tcp: {address: "{healthy}"}"#,
            &format!(r#"http: {{url: "http://{health}/"}}"#),
        )
        .replace(
            "claims:\n",
            "claims:\n  - name: the process runs again within 2s\n    recovers: {probe: web-running, within: 2s, fault: pause, stableFor: 300ms}\n",
        );
    // 1. Start: opted-in namespaces, the target's pods, status Running, an Event; 2. past
    // the steady state the agent pauses the pod's process.
    let (bodies, running) = start_and_inject(&c, &handle, &yaml).await;
    assert_eq!(bodies[2]["status"]["phase"], "Running");
    assert_eq!(bodies[3]["reason"], "Started");
    assert!(
        bodies[3]["note"]
            .as_str()
            .is_some_and(|n| n.contains("pause: 1 pod(s)")),
        "{}",
        bodies[3]
    );
    assert_eq!(state(p.pid), Some('T'), "the pod's process is paused");
    no_more(&handle).await;

    // 3. Past the fault's 1 s: reverted by the schedule, and an Event says so.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let bodies = play(&c, &handle, &running, vec![fault_event()], "revert").await;
    assert!(resumed(p.pid), "the window closed: resumed");
    assert_eq!(bodies[0]["reason"], "FaultReverted", "{}", bodies[0]);
    assert!(
        bodies[0]["note"]
            .as_str()
            .is_some_and(|n| n.contains("shop/web-0") && n.contains("its window ended")),
        "{}",
        bodies[0]
    );
    no_more(&handle).await;

    // 4. After observeAfter: Reverting (nothing left to revert), then 5. Evaluate.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let bodies = play(
        &c,
        &handle,
        &running,
        status_and_event(&running),
        "phase over",
    )
    .await;
    assert_eq!(bodies[0]["status"]["phase"], "Reverting");
    no_more(&handle).await;

    let reverting = experiment(&yaml, true, Some(Phase::Reverting), &[]);
    let bodies = play(
        &c,
        &handle,
        &reverting,
        evaluate_steps(&reverting),
        "evaluate",
    )
    .await;
    // The evidence ConfigMap: owned by the Experiment, the report inside.
    let cm = &bodies[0];
    assert_eq!(cm["metadata"]["name"], format!("{NAME}-evidence"));
    assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], EXP_UID);
    let summary = cm["data"]["summary.txt"].as_str().expect("summary");
    assert!(
        summary.contains("the probe keeps answering") && summary.contains("FAILED"),
        "{summary}"
    );
    let report: Value =
        serde_json::from_str(cm["data"]["report.json"].as_str().expect("report")).expect("json");
    let fault = &report["record"]["faults"][0];
    assert_eq!(fault["confirmed"], true, "{fault}");
    assert!(
        fault["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("shop/web-0")),
        "{fault}"
    );
    assert!(fault["revertedMs"].as_f64().is_some(), "{fault}");
    let failing = report["record"]["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["ok"] == false)
        .count();
    assert!(
        failing >= 5,
        "the probe saw the pause: {failing} failing samples"
    );
    // The status: Completed, the verdict and each claim's figure, from the evidence:
    // the paused process fails availability, and it runs again in time.
    let st = &bodies[1]["status"];
    assert_eq!(st["phase"], "Completed");
    assert_eq!(st["verdict"], "failed", "{st}");
    assert_eq!(
        (st["held"].as_u64(), st["failed"].as_u64()),
        (Some(1), Some(1)),
        "{st}"
    );
    let outcome = |name: &str| {
        st["claims"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name))
            .map(|c| c["outcome"].clone())
    };
    assert_eq!(outcome("the probe keeps answering"), Some(json!("failed")));
    assert_eq!(
        outcome("the process runs again within 2s"),
        Some(json!("held"))
    );
    assert_eq!(st["evidence"], format!("{NAME}-evidence"));
    let completed = st["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Completed")
        .expect("Completed");
    assert_eq!(
        completed["status"], "True",
        "kubectl wait --for=condition=Completed"
    );
    assert_eq!(bodies[2]["reason"], "Completed");
    assert_eq!(
        bodies[2]["type"], "Warning",
        "a failed verdict is a warning"
    );
    // Started once, completed once with its verdict; the fault's inject and revert timed,
    // and no fault left marked active.
    let page = c.metrics.render();
    for want in [
        "murphy_experiments_started_total 1",
        "murphy_experiments_completed_total{verdict=\"failed\",ended=\"completed\"} 1",
        "murphy_fault_inject_seconds_count{kind=\"process-pause\"} 1",
        "murphy_fault_revert_seconds_count{kind=\"process-pause\"} 1",
        "murphy_controller_reconciles_total{result=\"ok\"}",
    ] {
        assert!(page.contains(want), "{want}\n{page}");
    }
    assert!(!page.contains("murphy_fault_active{"), "{page}");
    no_more(&handle).await;
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_reverts_first_then_drops_the_finalizer() {
    let p = pod("delete");
    let (c, handle, stop) = with_agent(&p).await;
    let long = PAUSE_SPEC.replace("duration: 1s", "duration: 60s");
    let (_, running) = start_and_inject(&c, &handle, &long).await;
    assert_eq!(state(p.pid), Some('T'));

    // kubectl delete: the agent reverts first (an Event says so), the finalizer stays.
    let mut deleting = running.clone();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let bodies = play(
        &c,
        &handle,
        &deleting,
        vec![fault_event()],
        "revert on delete",
    )
    .await;
    assert_eq!(bodies[0]["reason"], "FaultReverted", "{}", bodies[0]);
    assert!(resumed(p.pid), "reverted before the object goes");
    no_more(&handle).await;
    // Then the finalizer goes, with a patch that checks it is the one removed.
    let bodies = play(
        &c,
        &handle,
        &deleting,
        vec![step(Method::PATCH, &exp_path(), echo_exp(&deleting))],
        "finalizer",
    )
    .await;
    assert_eq!(
        bodies[0],
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ])
    );
    no_more(&handle).await;
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_abort_annotation_reverts_and_ends_aborted() {
    let p = pod("abort");
    let (c, handle, stop) = with_agent(&p).await;
    let long = PAUSE_SPEC.replace("duration: 1s", "duration: 60s");
    start_and_inject(&c, &handle, &long).await;
    assert_eq!(state(p.pid), Some('T'));

    let aborting = experiment(
        &long,
        true,
        Some(Phase::Running),
        &[(ABORT_ANNOTATION, "true")],
    );
    let mut steps = vec![fault_event()];
    steps.extend(status_and_event(&aborting));
    let bodies = play(&c, &handle, &aborting, steps, "abort").await;
    assert_eq!(bodies[0]["reason"], "FaultReverted", "{}", bodies[0]);
    assert_eq!(bodies[1]["status"]["phase"], "Reverting");
    assert!(resumed(p.pid), "aborting reverts at once");

    let reverting = experiment(
        &long,
        true,
        Some(Phase::Reverting),
        &[(ABORT_ANNOTATION, "true")],
    );
    let bodies = play(
        &c,
        &handle,
        &reverting,
        evaluate_steps(&reverting),
        "evaluate",
    )
    .await;
    let st = &bodies[1]["status"];
    assert_eq!(st["phase"], "Aborted", "{st}");
    assert!(st.to_string().contains(ABORT_ANNOTATION), "{st}");
    assert_eq!(bodies[2]["type"], "Warning");
    no_more(&handle).await;
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[test]
fn agent_addresses_come_from_running_agent_pods_with_an_ip() {
    let pods: Vec<k8s_openapi::api::core::v1::Pod> = serde_json::from_value(json!([
        {"metadata": {"name": "a"}, "spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Running", "podIP": "10.1.0.4"}},
        {"metadata": {"name": "b"}, "spec": {"nodeName": "n2", "containers": []}, "status": {"phase": "Pending"}},
        {"metadata": {"name": "c"}, "spec": {"nodeName": "n3", "containers": []}, "status": {"phase": "Running", "podIP": "fd00::7"}}
    ]))
    .expect("pods");
    assert_eq!(
        reconcile::agent_addresses(&pods, 7443),
        BTreeMap::from([
            ("n1".to_string(), "10.1.0.4:7443".to_string()),
            ("n3".to_string(), "[fd00::7]:7443".to_string()),
        ])
    );
}

const NEW_UID: &str = "c4ca4238-a0b9-4382-8dcc-509a6f75849b";
const NEW_APP: &str = "fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13";

/// The pod list after the targeted pod was replaced (its workload made web-1).
/// Now (RFC 3339, seconds): a pod the ReplicaSet made during the run.
fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn replaced() -> Reply {
    pod_list(vec![pod_json_created(
        "web-1",
        NEW_UID,
        NEW_APP,
        "10.0.0.6",
        &now_rfc3339(),
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_pod_gets_the_fault_while_its_window_is_open() {
    let mut p = pod("replace");
    let new_pid = p.tree.container(
        &p.tree
            .root
            .join("kubepods")
            .join(format!("pod{NEW_UID}"))
            .join(NEW_APP),
    );
    let (c, handle, stop) = with_agent(&p).await;
    let long = PAUSE_SPEC.replace("duration: 1s", "duration: 60s");
    let (_, running) = start_and_inject(&c, &handle, &long).await;
    assert_eq!(state(p.pid), Some('T'));
    assert_ne!(state(new_pid), Some('T'), "not targeted yet");

    // The workload replaced web-0 with web-1: the next step releases web-0's injection
    // (a deleted pod must not stay frozen in Terminating) and injects into web-1.
    // Events: the window no longer covers what was chosen, the release, the injection.
    let mut steps = list_pods(replaced());
    steps.extend([fault_event(), fault_event(), fault_event()]);
    let bodies = play(&c, &handle, &running, steps, "follow").await;
    let reasons: Vec<&Value> = bodies[1..].iter().map(|b| &b["reason"]).collect();
    assert_eq!(
        reasons,
        [
            &json!("FaultEndedEarly"),
            &json!("FaultReleased"),
            &json!("FaultInjected")
        ]
    );
    assert_eq!(bodies[1]["type"], "Warning");
    assert!(
        bodies[3]["note"].to_string().contains("shop/web-1"),
        "{}",
        bodies[3]
    );
    assert_eq!(state(new_pid), Some('T'), "the replacement is paused too");
    assert!(
        resumed(p.pid),
        "the gone pod's injection was released at once"
    );
    no_more(&handle).await;
    // web-0 was followed once: a later list with a third pod, also new, changes nothing
    // (the blast radius stays one pod).
    let more = pod_list(vec![
        pod_json_created("web-1", NEW_UID, NEW_APP, "10.0.0.6", &now_rfc3339()),
        pod_json_created(
            "web-2",
            "d3d94468-02a4-4259-b55d-38e044b4b2a3",
            NEW_APP,
            "10.0.0.7",
            &now_rfc3339(),
        ),
    ]);
    play(&c, &handle, &running, list_pods(more), "no more").await;
    let held = c.runs.lock().await.get(EXP_UID).cloned().expect("run");
    let run = held.lock().await;
    assert_eq!(
        run.targets["pause"]
            .iter()
            .map(|p| p.chosen.pod.name.as_str())
            .collect::<Vec<_>>(),
        ["web-1"],
        "the gone pod left the targets, the replacement took its place"
    );
    assert_eq!(
        run.live.len(),
        1,
        "web-1's injection only: web-0's was released, no third"
    );
    assert!(run.aborted.is_none());
    drop(run);

    // Ending it reverts both (abort: the quickest way to the end).
    let aborting = experiment(
        &long,
        true,
        Some(Phase::Running),
        &[(ABORT_ANNOTATION, "true")],
    );
    let mut steps = vec![fault_event()];
    steps.extend(status_and_event(&aborting));
    play(&c, &handle, &aborting, steps, "abort").await;
    assert!(resumed(p.pid) && resumed(new_pid), "both reverted");
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn leader_election_creates_the_lease_renews_it_and_waits_for_another_holder() {
    use k8s_openapi::api::coordination::v1::Lease;
    use murphy_operator::leader;
    let (client, handle) = mock();
    let leases: kube::Api<Lease> = kube::Api::namespaced(client, "murphy-system");
    let path = "/apis/coordination.k8s.io/v1/namespaces/murphy-system/leases";
    let held = |holder: &str| {
        Reply::Json(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "murphy-controller", "namespace": "murphy-system", "resourceVersion": "41"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "renewTime": k8s_openapi::jiff::Timestamp::now().to_string(), "leaseTransitions": 2}
        }))
    };
    // No Lease yet: create it, held by us.
    let server = api_server(
        handle.clone(),
        vec![
            step(
                Method::GET,
                &format!("{path}/murphy-controller"),
                Reply::Error(404, "NotFound".into()),
            ),
            step(Method::POST, path, Reply::Echo),
        ],
    );
    let r = leader::round(&leases, "murphy-controller", "me", 15)
        .await
        .expect("round");
    assert_eq!(r, Ok(()));
    let bodies = server.await.expect("server");
    assert_eq!(bodies[1]["spec"]["holderIdentity"], "me");
    assert_eq!(bodies[1]["spec"]["leaseDurationSeconds"], 15);
    // Ours: renewed with a replace that carries the read's resourceVersion.
    let server = api_server(
        handle.clone(),
        vec![
            step(
                Method::GET,
                &format!("{path}/murphy-controller"),
                held("me"),
            ),
            step(
                Method::PUT,
                &format!("{path}/murphy-controller"),
                Reply::Echo,
            ),
        ],
    );
    let r = leader::round(&leases, "murphy-controller", "me", 15)
        .await
        .expect("round");
    assert_eq!(r, Ok(()));
    let bodies = server.await.expect("server");
    assert_eq!(bodies[1]["metadata"]["resourceVersion"], "41");
    assert_eq!(
        bodies[1]["spec"]["leaseTransitions"], 2,
        "a renewal is no transition"
    );
    // Another replica's fresh Lease: wait, write nothing.
    let server = api_server(
        handle.clone(),
        vec![step(
            Method::GET,
            &format!("{path}/murphy-controller"),
            held("other"),
        )],
    );
    let r = leader::round(&leases, "murphy-controller", "me", 15)
        .await
        .expect("round");
    assert!(matches!(r, Err(d) if d > Duration::ZERO), "{r:?}");
    server.await.expect("server");
    no_more(&handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_does_not_take_aborts_the_run_saying_why() {
    let p = pod("notake");
    let (c, handle, stop) = with_agent(&p).await;
    // The API lists a pod this node's agent has no cgroup for.
    let pending = experiment(PAUSE_SPEC, true, None, &[]);
    let mut steps = start_steps(&pending);
    steps[1] = list_pods(replaced()).remove(0);
    play(&c, &handle, &pending, steps, "start").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = experiment(PAUSE_SPEC, true, Some(Phase::Running), &[]);
    let mut steps = list_pods(replaced());
    steps.push(fault_event());
    let bodies = play(&c, &handle, &running, steps, "inject").await;
    assert_eq!(bodies[1]["reason"], "FaultFailed", "{}", bodies[1]);
    assert_eq!(bodies[1]["type"], "Warning");
    let bodies = play(&c, &handle, &running, status_and_event(&running), "abort").await;
    let text = bodies[0].to_string();
    assert_eq!(bodies[0]["status"]["phase"], "Reverting");
    assert!(
        text.contains("aborted: fault pause") && text.contains("has no cgroup"),
        "the reason is the agent's: {text}"
    );
    let reverting = experiment(PAUSE_SPEC, true, Some(Phase::Reverting), &[]);
    let bodies = play(
        &c,
        &handle,
        &reverting,
        evaluate_steps(&reverting),
        "evaluate",
    )
    .await;
    assert_eq!(bodies[1]["status"]["phase"], "Aborted", "{}", bodies[1]);
    assert_eq!(
        bodies[1]["status"]["verdict"], "inconclusive",
        "a fault that never took proves nothing: {}",
        bodies[1]
    );
    no_more(&handle).await;
    assert_ne!(state(p.pid), Some('T'), "nothing was paused");
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&p.dir);
}
