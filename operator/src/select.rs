//! Which pods a target means on a cluster: only namespaces that opted in (label
//! `murphy.dev/chaos: enabled` on the Namespace), only running pods whose labels include
//! the selector's, then the target's seeded `pick` (the engine's own picking, so a run
//! replays), capped by `guardrails.maxTargets`. Then the pods are grouped by node: each
//! node's agent acts on its own pods.

use murphy::model::spec::{PodSelector, TargetSpec};
use std::collections::{BTreeMap, BTreeSet};

/// The label a namespace carries to allow experiments in it.
pub const OPT_IN_LABEL: &str = "murphy.dev/chaos";
pub const OPT_IN_VALUE: &str = "enabled";

/// What the controller knows of a pod (from the API server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    pub containers: Vec<String>,
    /// Set when the pod is being deleted.
    pub terminating: bool,
    /// The pod's IPv4 address (role probes ask it).
    pub ip: Option<std::net::Ipv4Addr>,
    /// When the API server created it (Unix seconds).
    pub created_unix: Option<i64>,
    /// The UID of its controlling owner (a ReplicaSet, a StatefulSet, ...).
    pub owner: Option<String>,
}

/// One pod chosen, with the containers to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub pod: PodInfo,
    pub containers: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("target {target:?}: namespace {namespace:?} has not opted in (label it {OPT_IN_LABEL}={OPT_IN_VALUE})")]
    NotOptedIn { target: String, namespace: String },
    #[error("target {target:?}: no running pod in {namespace:?} matches {selector}")]
    NoPods {
        target: String,
        namespace: String,
        selector: String,
    },
    #[error("target {target:?}: pod {pod} has no container named {container:?} (it has {have})")]
    NoContainer {
        target: String,
        pod: String,
        container: String,
        have: String,
    },
    #[error("target {target:?} resolved to {found} pods, more than guardrails.maxTargets ({max})")]
    TooMany {
        target: String,
        found: usize,
        max: usize,
    },
    #[error(
        "target {target:?} does not select pods (lab and process targets run with `murphy run`)"
    )]
    NotPods { target: String },
}

fn describe(sel: &PodSelector) -> String {
    if sel.match_labels.is_empty() {
        return "any labels".into();
    }
    sel.match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pods a target means right now.
pub fn select_pods(
    target: &str,
    spec: &TargetSpec,
    pods: &[PodInfo],
    opted_in: &BTreeSet<String>,
    seed: u64,
    max_targets: usize,
) -> Result<Vec<Chosen>, SelectError> {
    let sel = spec.pods.as_ref().ok_or_else(|| SelectError::NotPods {
        target: target.into(),
    })?;
    if !opted_in.contains(&sel.namespace) {
        return Err(SelectError::NotOptedIn {
            target: target.into(),
            namespace: sel.namespace.clone(),
        });
    }
    let matching: Vec<&PodInfo> = pods
        .iter()
        .filter(|p| p.namespace == sel.namespace && p.running && !p.terminating)
        .filter(|p| p.node.is_some())
        .filter(|p| {
            sel.match_labels
                .iter()
                .all(|(k, v)| p.labels.get(k) == Some(v))
        })
        .collect();
    if matching.is_empty() {
        return Err(SelectError::NoPods {
            target: target.into(),
            namespace: sel.namespace.clone(),
            selector: describe(sel),
        });
    }
    let picked = match &spec.pick {
        Some(p) => murphy::target::pick_by(target, p, matching, |p| p.name.clone(), seed),
        None => matching,
    };
    if picked.len() > max_targets {
        return Err(SelectError::TooMany {
            target: target.into(),
            found: picked.len(),
            max: max_targets,
        });
    }
    picked
        .into_iter()
        .map(|p| {
            let containers = if sel.containers.is_empty() {
                p.containers.clone()
            } else {
                for c in &sel.containers {
                    if !p.containers.contains(c) {
                        return Err(SelectError::NoContainer {
                            target: target.into(),
                            pod: p.name.clone(),
                            container: c.clone(),
                            have: p.containers.join(", "),
                        });
                    }
                }
                sel.containers.clone()
            };
            Ok(Chosen {
                pod: p.clone(),
                containers,
            })
        })
        .collect()
}

/// Narrow a target's candidate pods by its role-aware `select` (primary, replica,
/// minority, majority, all): the engine's own [`murphy::roles::select`], which asks each
/// pod for its role through the target's `role` probe at the pod's IP. Runs the probes
/// (blocking); without `select` the pods are returned as they are.
pub fn by_role(
    target: &str,
    spec: &TargetSpec,
    pods: Vec<PodInfo>,
    seed: u64,
    asked: Option<&BTreeMap<String, murphy::roles::Role>>,
) -> Result<(Vec<PodInfo>, String), String> {
    if spec.select.is_none() {
        return Ok((pods, String::new()));
    }
    let members = pods
        .iter()
        .map(|p| murphy::fault::Member {
            label: p.name.clone(),
            procs: Vec::new(),
            netns: murphy::journal::Netns::Root,
            addrs: p.ip.into_iter().collect(),
            lab: None,
        })
        .collect();
    // A command role check was asked in pods of its own (`asked`, by pod name); the others
    // are asked from here (members go by pod name).
    let (chosen, how) = match asked {
        Some(roles) => murphy::roles::select_by(target, spec, members, seed, &|_, m, _| {
            roles
                .get(&m.label)
                .cloned()
                .unwrap_or_else(|| murphy::roles::Role::Unknown("not asked".into()))
        }),
        None => murphy::roles::select(target, spec, members, seed),
    }
    .map_err(|e| e.to_string())?;
    let keep: BTreeSet<String> = chosen.into_iter().map(|m| m.label).collect();
    Ok((
        pods.into_iter()
            .filter(|p| keep.contains(&p.name))
            .collect(),
        how,
    ))
}

/// Chosen pods by node name: one agent call batch per node.
pub fn by_node(chosen: &[Chosen]) -> BTreeMap<String, Vec<&Chosen>> {
    let mut out: BTreeMap<String, Vec<&Chosen>> = BTreeMap::new();
    for c in chosen {
        if let Some(n) = &c.pod.node {
            out.entry(n.clone()).or_default().push(c);
        }
    }
    out
}

/// The chosen pods that are no longer running (deleted, terminating or failed): their
/// injections are released at once.
pub fn gone<'a>(chosen: &'a [Chosen], pods: &[PodInfo]) -> Vec<&'a Chosen> {
    chosen
        .iter()
        .filter(|c| {
            !pods
                .iter()
                .any(|p| p.uid == c.pod.uid && p.running && !p.terminating)
        })
        .collect()
}

/// Pods that replaced a chosen one while the fault window is open: made by the same owner
/// (ReplicaSet, StatefulSet, ...) as a chosen pod that is gone, created after the run
/// started (`since_unix`), matching the selector, running, not already chosen; at most one
/// per gone pod, so the blast radius never grows. An existing pod of the same workload is
/// never a replacement. The controller injects into these too.
pub fn replacements<'a>(
    spec: &TargetSpec,
    chosen: &[Chosen],
    pods: &'a [PodInfo],
    since_unix: i64,
) -> Vec<&'a PodInfo> {
    let Some(sel) = &spec.pods else {
        return Vec::new();
    };
    let mut out: Vec<&PodInfo> = Vec::new();
    for g in gone(chosen, pods) {
        let Some(owner) = &g.pod.owner else {
            continue;
        };
        let next = pods
            .iter()
            .filter(|p| {
                p.namespace == sel.namespace
                    && p.running
                    && !p.terminating
                    && p.node.is_some()
                    && p.owner.as_ref() == Some(owner)
                    && p.created_unix.is_some_and(|c| c >= since_unix)
            })
            .filter(|p| {
                sel.match_labels
                    .iter()
                    .all(|(k, v)| p.labels.get(k) == Some(v))
            })
            .filter(|p| !chosen.iter().any(|c| c.pod.uid == p.uid))
            .filter(|p| !out.iter().any(|o| o.uid == p.uid))
            .min_by_key(|p| (p.created_unix, p.name.clone()));
        if let Some(p) = next {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use murphy::model::spec::{Pick, PickMode};
    use proptest::prelude::*;

    fn pod(i: usize, node: &str, app: &str) -> PodInfo {
        PodInfo {
            ip: None,
            namespace: "shop".into(),
            name: format!("{app}-{i}"),
            uid: format!("uid-{app}-{i}"),
            node: Some(node.into()),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            running: true,
            containers: vec!["app".into(), "sidecar".into()],
            terminating: false,
            created_unix: Some(1_000),
            owner: Some(format!("rs-{app}")),
        }
    }

    fn target(mode: PickMode, count: Option<u32>, percent: Option<f64>) -> TargetSpec {
        TargetSpec {
            pods: Some(PodSelector {
                namespace: "shop".into(),
                match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                containers: vec![],
            }),
            pick: Some(Pick {
                mode,
                count,
                percent: percent.map(murphy::model::Percent),
            }),
            ..Default::default()
        }
    }

    fn fleet() -> Vec<PodInfo> {
        let mut v: Vec<PodInfo> = (0..10)
            .map(|i| pod(i, if i % 2 == 0 { "n1" } else { "n2" }, "web"))
            .collect();
        v.push(pod(0, "n1", "db"));
        v[3].running = false;
        v
    }

    #[test]
    fn role_aware_targets_narrow_the_pods_first() {
        use murphy::model::spec::{CommandCheck, RoleProbe, Select};
        let pods: Vec<PodInfo> = (0..5)
            .map(|i| PodInfo {
                ip: Some(std::net::Ipv4Addr::new(10, 0, 0, i as u8 + 1)),
                ..pod(i, "n1", "web")
            })
            .collect();
        // A size: a seeded minority, the same for the same seed.
        let t = TargetSpec {
            select: Some(Select::Minority),
            ..target(PickMode::All, None, None)
        };
        let (a, how) = by_role("web", &t, pods.clone(), 9, None).expect("minority");
        assert_eq!(a.len(), 2, "{how}");
        let (b, _) = by_role("web", &t, pods.clone(), 9, None).expect("again");
        assert_eq!(a, b);
        // A role: the pod whose probe (a real program, given the pod's IP) says primary.
        let t = TargetSpec {
            select: Some(Select::Primary),
            role: Some(RoleProbe {
                command: Some(CommandCheck {
                    argv: ["/usr/bin/test", "{address}", "=", "10.0.0.4"]
                        .map(String::from)
                        .to_vec(),
                    exit_code: 0,
                    stdout_contains: None,
                }),
                ..Default::default()
            }),
            ..target(PickMode::All, None, None)
        };
        let (p, how) = by_role("web", &t, pods, 9, None).expect("primary");
        assert_eq!(
            p.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
            ["web-3"],
            "{how}"
        );
    }

    fn opted() -> BTreeSet<String> {
        BTreeSet::from(["shop".to_string()])
    }

    #[test]
    fn only_opted_in_namespaces_and_running_matching_pods() {
        let t = target(PickMode::All, None, None);
        let err = select_pods("web", &t, &fleet(), &BTreeSet::new(), 1, 100).expect_err("opt-in");
        assert!(
            err.to_string().contains("murphy.dev/chaos=enabled"),
            "{err}"
        );
        let all = select_pods("web", &t, &fleet(), &opted(), 1, 100).expect("pods");
        assert_eq!(
            all.len(),
            9,
            "10 web pods, one not running, the db pod excluded"
        );
        assert!(all
            .iter()
            .all(|c| c.pod.labels["app"] == "web" && c.pod.running));
        let nodes = by_node(&all);
        assert_eq!(nodes.keys().collect::<Vec<_>>(), ["n1", "n2"]);
    }

    #[test]
    fn modes_pick_the_right_number_and_caps_refuse_more() {
        let f = fleet();
        let n = |t: &TargetSpec| select_pods("web", t, &f, &opted(), 7, 100).map(|v| v.len());
        assert_eq!(n(&target(PickMode::One, None, None)), Ok(1));
        assert_eq!(n(&target(PickMode::Count, Some(3), None)), Ok(3));
        assert_eq!(n(&target(PickMode::Percent, None, Some(50.0))), Ok(5));
        let up = n(&target(PickMode::UpToPercent, None, Some(50.0))).expect("up to");
        assert!((1..=5).contains(&up), "{up}");
        let err = select_pods(
            "web",
            &target(PickMode::All, None, None),
            &f,
            &opted(),
            7,
            4,
        )
        .expect_err("cap");
        assert!(
            matches!(
                err,
                SelectError::TooMany {
                    found: 9,
                    max: 4,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_missing_container_is_named() {
        let mut t = target(PickMode::One, None, None);
        if let Some(p) = t.pods.as_mut() {
            p.containers = vec!["proxy".into()];
        }
        let err = select_pods("web", &t, &fleet(), &opted(), 1, 100).expect_err("container");
        assert!(
            err.to_string()
                .contains("no container named \"proxy\" (it has app, sidecar)"),
            "{err}"
        );
    }

    #[test]
    fn a_replacement_pod_is_targeted_while_the_window_is_open() {
        let t = target(PickMode::Count, Some(2), None);
        let mut f = fleet();
        let chosen = select_pods("web", &t, &f, &opted(), 3, 100).expect("pods");
        // One chosen pod is deleted and its ReplicaSet starts a new one.
        let gone = chosen[0].pod.uid.clone();
        f.retain(|p| p.uid != gone);
        f.push(PodInfo {
            created_unix: Some(2_000),
            ..pod(42, "n2", "web")
        });
        let r = replacements(&t, &chosen, &f, 1_500);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name, "web-42");
    }

    #[test]
    fn an_existing_pod_is_never_taken_for_a_replacement() {
        // The regression on a real node: the chosen pod was deleted and the controller
        // froze a different, already running pod of the same Deployment.
        let t = target(PickMode::One, None, None);
        let mut f = fleet();
        let chosen = select_pods("web", &t, &f, &opted(), 3, 100).expect("pods");
        let uid = chosen[0].pod.uid.clone();
        // Deleted: terminating, then gone. The others existed before the run (t=1000).
        for p in f.iter_mut().filter(|p| p.uid == uid) {
            p.terminating = true;
        }
        assert_eq!(gone(&chosen, &f).len(), 1, "a terminating pod is gone");
        assert!(replacements(&t, &chosen, &f, 1_500).is_empty());
        f.retain(|p| p.uid != uid);
        assert!(replacements(&t, &chosen, &f, 1_500).is_empty());
        // A new pod of another owner (another Deployment's ReplicaSet) is not one either.
        f.push(PodInfo {
            created_unix: Some(2_000),
            owner: Some("rs-other".into()),
            ..pod(43, "n1", "web")
        });
        assert!(replacements(&t, &chosen, &f, 1_500).is_empty());
        // Two new pods of the right owner: exactly one replaces the one gone.
        for i in [44, 45] {
            f.push(PodInfo {
                created_unix: Some(2_000 + i64::from(i)),
                ..pod(i as usize, "n1", "web")
            });
        }
        let r = replacements(&t, &chosen, &f, 1_500);
        assert_eq!(
            r.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["web-44"]
        );
    }

    proptest! {
        #[test]
        fn picks_replay_whatever_order_the_api_lists_pods_in(seed in any::<u64>(), k in 1u32..9, rot in 0usize..10) {
            let t = target(PickMode::Count, Some(k), None);
            let f = fleet();
            let mut g = f.clone();
            g.rotate_left(rot);
            let a: Vec<String> = select_pods("web", &t, &f, &opted(), seed, 100).expect("a").into_iter().map(|c| c.pod.uid).collect();
            let b: Vec<String> = select_pods("web", &t, &g, &opted(), seed, 100).expect("b").into_iter().map(|c| c.pod.uid).collect();
            prop_assert_eq!(a, b);
        }
    }
}
