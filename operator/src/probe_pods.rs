//! Command probes on a cluster. The controller never runs a command from a spec: each
//! `command` probe gets a pod of its own in the Experiment's namespace (a
//! ClusterExperiment's: the controller's), from the image `spec.commandPod` names, under
//! the service account it names (default: the namespace's `default`, with no token
//! mounted), with CPU and memory limits and a deadline. An init container from the
//! operator's image copies `murphy-probe-pod` (static, no dependencies) into a shared
//! volume; the probe container runs it with the probe's program, which prints one JSON
//! line per sample. The controller follows the pod's log and judges each sample with the
//! engine's own rule ([`murphy::probe::judge_command`]), on the run's clock.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::{Api, Client};
use murphy::model::spec::{CommandCheck, CommandPod, ProbeSpec};
use murphy::probe::{Outcome, ProbeSample};
use std::sync::mpsc::Sender;
use std::time::Duration;

/// Where `murphy-probe-pod` is in the operator's image, and where the pod gets it.
pub const RUNNER_IN_IMAGE: &str = "/usr/local/bin/murphy-probe-pod";
const RUNNER_DIR: &str = "/murphy";
const RUNNER: &str = "/murphy/murphy-probe-pod";

/// Labels that mark a probe pod (and say whose it is).
pub const LABEL_EXPERIMENT: &str = "murphy.dev/experiment";
pub const LABEL_PROBE: &str = "murphy.dev/probe";
pub const LABEL_ROLE: &str = "murphy.dev/role-check";

/// What the controller needs to make probe pods.
#[derive(Clone, Debug, Default)]
pub struct Runner {
    /// The operator's image (it carries `murphy-probe-pod`).
    pub image: String,
    /// Its pull policy (the chart's `image.pullPolicy`).
    pub pull_policy: String,
}

/// One probe pod of a run, once created.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbePod {
    pub probe: String,
    pub namespace: String,
    pub name: String,
}

/// The pod for `probe` (a command probe) of the experiment `exp` (its name and UID),
/// living at most `lifetime`.
#[allow(clippy::too_many_arguments)]
pub fn pod_for(
    exp: &str,
    uid: &str,
    namespace: &str,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    probe: &ProbeSpec,
    check: &CommandCheck,
    cp: &CommandPod,
    runner: &Runner,
    lifetime: Duration,
) -> Pod {
    let mut args = vec![
        RUNNER.to_string(),
        "--interval-ms".into(),
        probe.interval().as_millis().to_string(),
        "--timeout-ms".into(),
        probe.timeout().as_millis().to_string(),
        "--for-ms".into(),
        lifetime.as_millis().to_string(),
    ];
    if check.stdout_contains.is_some() {
        args.push("--stdout".into());
    }
    args.push("--".into());
    args.extend(check.argv.iter().cloned());
    build(
        Who {
            exp,
            uid,
            namespace,
            owner,
            kind: "probe",
            name: &probe.name,
        },
        args,
        cp,
        runner,
        lifetime,
    )
}

/// Whose pod, and for what (`probe` or `role`, and the probe's or target's name).
struct Who<'a> {
    exp: &'a str,
    uid: &'a str,
    namespace: &'a str,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    kind: &'a str,
    name: &'a str,
}

/// The pod: `args` (the runner's command line) in the user's image, the runner copied in
/// by an init container from the operator's.
fn build(who: Who, args: Vec<String>, cp: &CommandPod, runner: &Runner, lifetime: Duration) -> Pod {
    let Who {
        exp,
        uid,
        namespace,
        owner,
        kind,
        name,
    } = who;
    // generateName: a re-created Experiment never collides with a pod still terminating.
    let mut prefix = format!("{exp}-{kind}-{name}");
    prefix.truncate(57);
    let prefix = format!("{}-", prefix.trim_end_matches('-'));
    let limits = std::collections::BTreeMap::from([
        (
            "cpu".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                cp.cpu.clone().unwrap_or_else(|| "100m".into()),
            ),
        ),
        (
            "memory".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                cp.memory.clone().unwrap_or_else(|| "64Mi".into()),
            ),
        ),
    ]);
    let small = std::collections::BTreeMap::from([
        (
            "cpu".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("10m".into()),
        ),
        (
            "memory".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("16Mi".into()),
        ),
    ]);
    let hardened = || k8s_openapi::api::core::v1::SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mount = k8s_openapi::api::core::v1::VolumeMount {
        name: "murphy".into(),
        mount_path: RUNNER_DIR.into(),
        ..Default::default()
    };
    let labels = [
        (LABEL_EXPERIMENT, exp),
        (
            if kind == "probe" {
                LABEL_PROBE
            } else {
                LABEL_ROLE
            },
            name,
        ),
        ("murphy.dev/experiment-uid", uid),
        ("app.kubernetes.io/managed-by", "murphy"),
        ("app.kubernetes.io/component", kind),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut pod = Pod {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(prefix),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    };
    pod.metadata.owner_references = owner.map(|o| vec![o]);
    pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
        restart_policy: Some("Never".into()),
        // Gone by itself when the run is long over, whatever became of the controller.
        active_deadline_seconds: Some(lifetime.as_secs() as i64 + 60),
        service_account_name: cp.service_account_name.clone(),
        // The namespace's default account gets no token: the command has no API access
        // unless the Experiment names an account for it.
        automount_service_account_token: Some(cp.service_account_name.is_some()),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(1),
        security_context: Some(k8s_openapi::api::core::v1::PodSecurityContext {
            seccomp_profile: Some(k8s_openapi::api::core::v1::SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        init_containers: Some(vec![k8s_openapi::api::core::v1::Container {
            name: "murphy".into(),
            image: Some(runner.image.clone()),
            image_pull_policy: Some(runner.pull_policy.clone()),
            command: Some(vec![
                RUNNER_IN_IMAGE.into(),
                "--install".into(),
                RUNNER.into(),
            ]),
            volume_mounts: Some(vec![mount.clone()]),
            resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
                limits: Some(small.clone()),
                requests: Some(small.clone()),
                ..Default::default()
            }),
            security_context: Some(hardened()),
            ..Default::default()
        }]),
        containers: vec![k8s_openapi::api::core::v1::Container {
            name: "probe".into(),
            image: Some(cp.image.clone()),
            command: Some(args),
            volume_mounts: Some(vec![k8s_openapi::api::core::v1::VolumeMount {
                read_only: Some(true),
                ..mount
            }]),
            resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
                limits: Some(limits),
                requests: Some(small),
                ..Default::default()
            }),
            security_context: Some(hardened()),
            ..Default::default()
        }],
        volumes: Some(vec![k8s_openapi::api::core::v1::Volume {
            name: "murphy".into(),
            empty_dir: Some(Default::default()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    pod
}

/// One line of `murphy-probe-pod`'s log as a sample: its wall-clock start (Unix ms) and
/// the outcome judged by `check`. None for a line that is not a sample.
pub fn parse_line(check: &CommandCheck, line: &str) -> Option<(u64, Outcome)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let at = v["unixMs"].as_u64()?;
    let latency = Duration::from_secs_f64(v["latencyMs"].as_f64().unwrap_or(0.0).max(0.0) / 1000.0);
    let r = if let Some(code) = v["exit"].as_i64() {
        murphy::probe::judge_command(check, code as i32, v["stdout"].as_str())
    } else if let Some(sig) = v["signal"].as_i64() {
        Err(format!("killed by signal {sig}"))
    } else if v["timedOut"] == true {
        Err(format!("timed out after {latency:?}"))
    } else {
        Err(v["error"].as_str().unwrap_or("no result").to_string())
    };
    Some((
        at,
        match r {
            Ok(detail) => Outcome {
                ok: true,
                latency,
                detail,
            },
            Err(detail) => Outcome {
                ok: false,
                latency,
                detail,
            },
        },
    ))
}

/// Asks members their role with a `command` role check, each in a one-shot pod of its own
/// (`murphy-probe-pod --once`), never in the controller.
#[derive(Clone)]
pub struct RoleAsker {
    pub client: Client,
    pub runner: Runner,
    pub pod: CommandPod,
    pub namespace: String,
    pub exp: String,
    pub uid: String,
    pub owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
}

impl std::fmt::Debug for RoleAsker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RoleAsker({}/{})", self.namespace, self.exp)
    }
}

/// A one-shot role check's answer, from the runner's line: the primary's exit code says
/// primary, another says replica; no answer is unknown.
pub fn role_of_line(line: &str, primary_code: i32) -> murphy::roles::Role {
    use murphy::roles::Role;
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Role::Unknown(format!("no answer: {line}"));
    };
    if let Some(code) = v["exit"].as_i64() {
        return if code as i32 == primary_code {
            Role::Primary
        } else {
            Role::Replica
        };
    }
    if let Some(sig) = v["signal"].as_i64() {
        return Role::Unknown(format!("killed by signal {sig}"));
    }
    if v["timedOut"] == true {
        return Role::Unknown("role command timed out".into());
    }
    Role::Unknown(v["error"].as_str().unwrap_or("no answer").to_string())
}

impl RoleAsker {
    /// Each member's role (by its key), asked at once, each in its own pod, within the
    /// probe's timeout plus the time a pod takes to start (at most 60 s). Pods are deleted.
    pub async fn ask(
        &self,
        target: &str,
        probe: &murphy::model::spec::RoleProbe,
        members: &[(String, std::net::Ipv4Addr)],
    ) -> std::collections::BTreeMap<String, murphy::roles::Role> {
        use murphy::roles::Role;
        let mut out = std::collections::BTreeMap::new();
        let Some(check) = &probe.command else {
            return out;
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let timeout = probe.timeout();
        let mut made: Vec<(String, String)> = Vec::new();
        for (key, addr) in members {
            let mut args = vec![
                RUNNER.to_string(),
                "--once".into(),
                "--timeout-ms".into(),
                timeout.as_millis().to_string(),
                "--".into(),
            ];
            args.extend(murphy::roles::command_argv(&check.argv, *addr));
            let pod = build(
                Who {
                    exp: &self.exp,
                    uid: &self.uid,
                    namespace: &self.namespace,
                    owner: self.owner.clone(),
                    kind: "role",
                    name: target,
                },
                args,
                &self.pod,
                &self.runner,
                timeout + Duration::from_secs(60),
            );
            match api.create(&PostParams::default(), &pod).await {
                Ok(p) => made.push((key.clone(), p.metadata.name.unwrap_or_default())),
                Err(e) => {
                    out.insert(key.clone(), Role::Unknown(format!("its role pod: {e}")));
                }
            }
        }
        let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(60);
        let mut pending = made.clone();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for (key, name) in pending {
                let pod = match api.get(&name).await {
                    Ok(p) => p,
                    Err(e) => {
                        out.insert(key, Role::Unknown(format!("its role pod {name}: {e}")));
                        continue;
                    }
                };
                let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                    let lp = LogParams {
                        container: Some("probe".into()),
                        ..Default::default()
                    };
                    let role = match api.logs(&name, &lp).await {
                        Ok(text) => text
                            .lines()
                            .find(|l| l.starts_with('{'))
                            .map(|l| role_of_line(l, check.exit_code))
                            .unwrap_or_else(|| {
                                Role::Unknown(format!("its role pod {name} said nothing"))
                            }),
                        Err(e) => Role::Unknown(format!("its role pod {name}'s log: {e}")),
                    };
                    out.insert(key, role);
                } else if let Some(why) = stuck(&pod) {
                    out.insert(
                        key,
                        Role::Unknown(format!("its role pod {name} does not run: {why}")),
                    );
                } else if tokio::time::Instant::now() >= deadline {
                    out.insert(
                        key,
                        Role::Unknown(format!("its role pod {name} did not finish in time")),
                    );
                } else {
                    still.push((key, name));
                }
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let gone: Vec<ProbePod> = made
            .into_iter()
            .map(|(_, name)| ProbePod {
                probe: target.to_string(),
                namespace: self.namespace.clone(),
                name,
            })
            .collect();
        delete(&self.client, &gone).await;
        out
    }
}

/// Why a probe pod will not run, from its status (None: it may still start).
pub fn stuck(pod: &Pod) -> Option<String> {
    let st = pod.status.as_ref()?;
    if matches!(st.phase.as_deref(), Some("Failed" | "Succeeded")) {
        return Some(format!(
            "it ended ({}{})",
            st.phase.as_deref().unwrap_or(""),
            st.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    let statuses = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten());
    for c in statuses {
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(w) = waiting {
            let reason = w.reason.as_deref().unwrap_or("");
            if matches!(
                reason,
                "ErrImagePull"
                    | "ImagePullBackOff"
                    | "ErrImageNeverPull"
                    | "InvalidImageName"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
                    | "RunContainerError"
            ) {
                return Some(format!(
                    "container {}: {reason}{}",
                    c.name,
                    w.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()) {
            if t.exit_code != 0 {
                return Some(format!(
                    "container {} exited {}{}",
                    c.name,
                    t.exit_code,
                    t.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    None
}

fn running(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|st| {
        st.phase.as_deref() == Some("Running")
            && st
                .container_statuses
                .iter()
                .flatten()
                .any(|c| c.name == "probe" && c.state.as_ref().is_some_and(|s| s.running.is_some()))
    })
}

/// Create the pods and wait until each probe container runs (at most `within`). On any
/// failure the pods already made are deleted and the reason names the probe.
pub async fn start(
    client: &Client,
    pods: Vec<(String, Pod)>,
    within: Duration,
) -> Result<Vec<ProbePod>, String> {
    let mut made: Vec<ProbePod> = Vec::new();
    let r = async {
        for (probe, pod) in pods {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let created = api
                .create(&PostParams::default(), &pod)
                .await
                .map_err(|e| format!("probe {probe}: creating its pod in {ns}: {e}"))?;
            let name = created.metadata.name.clone().unwrap_or_default();
            made.push(ProbePod {
                probe: probe.clone(),
                namespace: ns,
                name,
            });
        }
        let deadline = tokio::time::Instant::now() + within;
        for p in &made {
            let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace);
            loop {
                let pod = api
                    .get(&p.name)
                    .await
                    .map_err(|e| format!("probe {}: reading pod {}: {e}", p.probe, p.name))?;
                if running(&pod) {
                    break;
                }
                if let Some(why) = stuck(&pod) {
                    return Err(format!(
                        "probe {}: its pod {}/{} does not run: {why}",
                        p.probe, p.namespace, p.name
                    ));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "probe {}: its pod {}/{} was not running after {} s",
                        p.probe,
                        p.namespace,
                        p.name,
                        within.as_secs()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok::<(), String>(())
    }
    .await;
    match r {
        Ok(()) => Ok(made),
        Err(e) => {
            delete(client, &made).await;
            Err(e)
        }
    }
}

/// Delete the pods (best effort: their deadline and owner reference clean up otherwise).
pub async fn delete(client: &Client, pods: &[ProbePod]) {
    for p in pods {
        let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        match api.delete(&p.name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(pod = %p.name, "deleting a probe pod: {e}"),
        }
    }
}

/// Follow a probe pod's log, sending each sample (on the run's clock: `started_unix_ms`
/// is its zero) to `tx` until the task is aborted or the pod is gone. A broken stream is
/// followed again from where it left off.
pub fn follow(
    client: Client,
    pod: ProbePod,
    check: CommandCheck,
    started_unix_ms: u64,
    tx: Sender<ProbeSample>,
) -> tokio::task::JoinHandle<()> {
    use futures_util::{AsyncBufReadExt, TryStreamExt};
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
        let mut last: u64 = 0;
        loop {
            let lp = LogParams {
                container: Some("probe".into()),
                follow: true,
                since_seconds: (last > 0).then_some(10),
                ..Default::default()
            };
            match api.log_stream(&pod.name, &lp).await {
                Ok(stream) => {
                    let mut lines = stream.lines();
                    while let Ok(Some(line)) = lines.try_next().await {
                        let Some((at, outcome)) = parse_line(&check, &line) else {
                            continue;
                        };
                        if at <= last || at < started_unix_ms {
                            continue;
                        }
                        last = at;
                        let s = ProbeSample {
                            probe: pod.probe.clone(),
                            t_ms: (at - started_unix_ms) as f64,
                            outcome,
                        };
                        if tx.send(s).is_err() {
                            return;
                        }
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                Err(e) => tracing::debug!(pod = %pod.name, "following a probe pod's log: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> (ProbeSpec, CommandCheck) {
        let p: ProbeSpec = serde_json::from_value(serde_json::json!({
            "name": "shop", "interval": "500ms", "timeout": "2s",
            "command": {"argv": ["wget", "-q", "-O", "-", "http://10.0.0.1:8080/healthz"], "stdoutContains": "ok"}
        }))
        .expect("probe");
        let c = p.check.command.clone().expect("command");
        (p, c)
    }

    /// The pod runs the probe's program as data (no shell) through the runner, with
    /// limits, a deadline, no token unless an account is named, and nothing privileged.
    #[test]
    fn a_probe_pod_runs_the_program_as_data_with_limits_and_no_token() {
        let (p, c) = probe();
        let cp = CommandPod {
            image: "busybox:1.36".into(),
            ..Default::default()
        };
        let runner = Runner {
            image: "murphy-operator:e2e".into(),
            pull_policy: "Never".into(),
        };
        let pod = pod_for(
            "pause-one",
            "u1",
            "shop",
            None,
            &p,
            &c,
            &cp,
            &runner,
            Duration::from_secs(120),
        );
        let spec = pod.spec.clone().expect("spec");
        let main = &spec.containers[0];
        assert_eq!(main.image.as_deref(), Some("busybox:1.36"));
        assert_eq!(
            main.command.clone().expect("command"),
            [
                RUNNER,
                "--interval-ms",
                "500",
                "--timeout-ms",
                "2000",
                "--for-ms",
                "120000",
                "--stdout",
                "--",
                "wget",
                "-q",
                "-O",
                "-",
                "http://10.0.0.1:8080/healthz"
            ]
        );
        assert!(main.args.is_none());
        let limits = main
            .resources
            .clone()
            .and_then(|r| r.limits)
            .expect("limits");
        assert_eq!(limits["cpu"].0, "100m");
        assert_eq!(limits["memory"].0, "64Mi");
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.service_account_name, None);
        assert_eq!(spec.active_deadline_seconds, Some(180));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let init = &spec.init_containers.clone().expect("init")[0];
        assert_eq!(init.image.as_deref(), Some("murphy-operator:e2e"));
        for c in [main, init] {
            let sc = c.security_context.clone().expect("security context");
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.privileged, None);
        }
        assert_eq!(
            pod.metadata.generate_name.as_deref(),
            Some("pause-one-probe-shop-")
        );
        assert_eq!(pod.metadata.namespace.as_deref(), Some("shop"));
        // A named account gets its token.
        let cp = CommandPod {
            service_account_name: Some("checker".into()),
            memory: Some("32Mi".into()),
            ..cp
        };
        let spec = pod_for(
            "e",
            "u",
            "shop",
            None,
            &p,
            &c,
            &cp,
            &runner,
            Duration::from_secs(60),
        )
        .spec
        .expect("spec");
        assert_eq!(spec.service_account_name.as_deref(), Some("checker"));
        assert_eq!(spec.automount_service_account_token, Some(true));
    }

    #[test]
    fn a_role_checks_line_says_primary_replica_or_unknown() {
        use murphy::roles::Role;
        assert_eq!(
            role_of_line(r#"{"unixMs":1,"latencyMs":2,"exit":0}"#, 0),
            Role::Primary
        );
        assert_eq!(
            role_of_line(r#"{"unixMs":1,"latencyMs":2,"exit":1}"#, 0),
            Role::Replica
        );
        assert_eq!(
            role_of_line(r#"{"unixMs":1,"latencyMs":2,"exit":3}"#, 3),
            Role::Primary
        );
        assert!(matches!(
            role_of_line(r#"{"unixMs":1,"latencyMs":2,"timedOut":true}"#, 0),
            Role::Unknown(_)
        ));
        assert!(matches!(
            role_of_line(r#"{"unixMs":1,"latencyMs":2,"signal":9}"#, 0),
            Role::Unknown(_)
        ));
        assert!(matches!(role_of_line("garbage", 0), Role::Unknown(_)));
    }

    #[test]
    fn log_lines_are_judged_by_the_engines_rule() {
        let (_, c) = probe();
        let (at, o) = parse_line(
            &c,
            r#"{"unixMs":1000,"latencyMs":3.5,"exit":0,"stdout":"ok\n"}"#,
        )
        .expect("sample");
        assert_eq!(at, 1000);
        assert!(o.ok, "{}", o.detail);
        assert_eq!(o.latency, Duration::from_micros(3500));
        let (_, o) = parse_line(
            &c,
            r#"{"unixMs":1001,"latencyMs":3.5,"exit":0,"stdout":"down"}"#,
        )
        .expect("sample");
        assert!(!o.ok);
        assert!(o.detail.contains("does not contain"), "{}", o.detail);
        let (_, o) = parse_line(&c, r#"{"unixMs":1002,"latencyMs":2000.1,"timedOut":true}"#)
            .expect("sample");
        assert!(!o.ok);
        let (_, o) = parse_line(
            &c,
            r#"{"unixMs":1003,"latencyMs":0.1,"error":"wget: not found"}"#,
        )
        .expect("sample");
        assert_eq!((o.ok, o.detail.as_str()), (false, "wget: not found"));
        let (_, o) = parse_line(
            &c,
            r#"{"unixMs":1004,"latencyMs":1,"exit":1,"stdout":"ok"}"#,
        )
        .expect("sample");
        assert!(!o.ok);
        let (_, o) = parse_line(
            &c,
            r#"{"unixMs":1005,"latencyMs":1,"signal":11,"stdout":""}"#,
        )
        .expect("sample");
        assert_eq!((o.ok, o.detail.as_str()), (false, "killed by signal 11"));
        assert!(parse_line(&c, "wget: something on stderr").is_none());
    }
}
