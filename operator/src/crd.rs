//! The `Experiment` custom resource (`murphy.dev/v1alpha1`, namespaced, short name `mx`).
//! Its spec *is* the engine's [`murphy::model::ExperimentSpec`]: the same file runs with
//! `murphy run` and `kubectl apply` (local-only parts such as `lab` are refused by the
//! cluster front door). The schema comes from the Rust types through schemars.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to break, what to watch, and what must hold — the engine's experiment spec.
///
/// Reading an object never fails: a stored spec the engine cannot read (written before
/// admission rules existed, or by a newer version) is kept as [`ExperimentSpec::unreadable`]
/// with the fields named, so that one bad object gets a status and an Event while the
/// controller carries on with every other.
#[derive(CustomResource, Clone, Debug, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "murphy.dev",
    version = "v1alpha1",
    kind = "Experiment",
    plural = "experiments",
    shortname = "mx",
    category = "chaos",
    namespaced,
    // kube's own rewrite cannot merge internally tagged enums (each fault kind's `kind`
    // differs); the schema is built by `crd_json` from the same types instead.
    schema = "disabled",
    status = "crate::status::ExperimentStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Verdict","type":"string","jsonPath":".status.verdict"}"#,
    printcolumn = r#"{"name":"Held","type":"integer","jsonPath":".status.held","priority":1}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.failed","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct ExperimentSpec {
    #[serde(flatten)]
    pub spec: murphy::model::ExperimentSpec,
    /// Why the stored spec could not be read as the engine's (each problem names its
    /// field); `spec` is then empty and the experiment is refused.
    #[serde(skip)]
    #[schemars(skip)]
    pub unreadable: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for ExperimentSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(match serde_path_to_error::deserialize(value) {
            Ok(spec) => ExperimentSpec {
                spec,
                unreadable: None,
            },
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." || path.is_empty() {
                    "spec".to_string()
                } else {
                    format!("spec.{path}")
                };
                ExperimentSpec {
                    spec: murphy::model::ExperimentSpec::default(),
                    unreadable: Some(vec![format!("{field}: {}", e.inner())]),
                }
            }
        })
    }
}

/// An OpenAPI v3 schema of a type, with every subschema inlined (a CRD has no `$ref`).
fn schema_of<T: JsonSchema>() -> Result<serde_json::Value, String> {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut v =
        serde_json::to_value(generator.into_root_schema_for::<T>()).map_err(|e| e.to_string())?;
    if let Some(o) = v.as_object_mut() {
        for k in ["$schema", "title", "definitions", "$defs", "components"] {
            o.remove(k);
        }
    }
    Ok(v)
}

/// The CRD (JSON): kube's metadata (names, columns, status subresource) with the schema
/// generated from the engine's spec types and made structural.
pub fn crd_json() -> Result<serde_json::Value, String> {
    use kube::CustomResourceExt;
    let mut crd = serde_json::to_value(Experiment::crd()).map_err(|e| e.to_string())?;
    let root = serde_json::json!({
        "type": "object",
        "description": "A Murphy experiment: faults to inject, what to observe, and the claims to check from the evidence.",
        "properties": {
            "spec": schema_of::<murphy::model::ExperimentSpec>()?,
            "status": schema_of::<crate::status::ExperimentStatus>()?,
        },
        "required": ["spec"],
    });
    let versions = crd
        .pointer_mut("/spec/versions")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or("the generated CRD has no versions")?;
    for v in versions {
        v["schema"] = serde_json::json!({ "openAPIV3Schema": root.clone() });
    }
    crate::schema::make_structural(&mut crd);
    add_limits(&mut crd);
    add_cluster_rules(&mut crd);
    Ok(crd)
}

/// Admission rules (CEL) for what the cluster door cannot run: the API server refuses such
/// an Experiment when it is applied, naming the field, instead of storing it for the
/// controller to abort. Each rule mirrors a field of [`murphy::plan::unsupported`] (a
/// test pairs them).
pub const CLUSTER_RULES: &[(&str, &str, &str)] = &[
    // (schema path under spec, rule, message)
    ("", "!has(self.lab)", "spec.lab only runs with `murphy run` on one machine"),
    (
        "/properties/workloads/items",
        "!has(self.from)",
        "spec.workloads[].from (a lab host) only runs with `murphy run` on one machine",
    ),
    (
        "/properties/watches/items/properties/haproxy",
        "!has(self.socket)",
        "spec.watches[].haproxy.socket (a path on one machine) only runs with `murphy run`; use `address`",
    ),
    (
        "",
        "!has(self.steps) || size(self.steps) == 0",
        "spec.steps does not run on a cluster yet (it runs with `murphy run`)",
    ),
    (
        "/properties/probes/items",
        "!has(self.from)",
        "spec.probes[].from (a lab host) only runs with `murphy run` on one machine",
    ),
    (
        "",
        "has(self.commandPod) || !has(self.probes) || self.probes.all(p, !has(p.command))",
        "spec.probes[].command needs `spec.commandPod` on a cluster: a command runs there only in a pod of its own (from the image it names), never in the controller",
    ),
    (
        "/properties/targets/additionalProperties/properties/role",
        "!has(self.command) || (has(self.timeline) && !self.timeline)",
        "spec.targets.*.role.timeline must be `false` with a command role check on a cluster: the check runs in one-shot pods when a fault is due, not all through the run (redis, postgres and etcd role probes go on the timeline)",
    ),
    (
        "/properties/targets/additionalProperties/properties/role",
        "!has(self.from)",
        "spec.targets.*.role.from (a lab host or namespace) only runs with `murphy run` on one machine",
    ),
    (
        "",
        "has(self.commandPod) || !has(self.targets) || self.targets.all(k, !has(self.targets[k].role) || !has(self.targets[k].role.command))",
        "spec.targets.*.role.command needs `spec.commandPod` on a cluster: a command runs there only in a pod of its own (from the image it names), never in the controller",
    ),
    (
        "/properties/guardrails",
        "!has(self.allowPaths) || size(self.allowPaths) == 0",
        "spec.guardrails.allowPaths is not enforced by the node agents yet (it runs with `murphy run`)",
    ),
    (
        "/properties/faults/items",
        "!has(self.from)",
        "spec.faults[].from (a lab host) only runs with `murphy run` on one machine",
    ),
    (
        "/properties/claims/items",
        "!has(self.detects)",
        "spec.claims[].detects (a lab process's log) only runs with `murphy run` on one machine",
    ),
    (
        "/properties/probes/items",
        "!has(self.prometheus)",
        "spec.probes[].prometheus does not run on a cluster yet: the controller would fetch whatever URL an Experiment names (it runs with `murphy run`)",
    ),
    (
        "/properties/claims/items",
        "!has(self.prometheus)",
        "spec.claims[].prometheus does not run on a cluster yet: the controller would fetch whatever URL an Experiment names (it runs with `murphy run`)",
    ),
    // One rule per field: the API server's cost budget for a rule over an unbounded map.
    (
        "/properties/targets/additionalProperties",
        "!has(self.lab)",
        "spec.targets.*.lab: lab targets only run with `murphy run` on one machine; use pods",
    ),
    (
        "/properties/targets/additionalProperties",
        "!has(self.members)",
        "spec.targets.*.members: lab members only run with `murphy run` on one machine; use pods",
    ),
    (
        "/properties/targets/additionalProperties",
        "!has(self.process)",
        "spec.targets.*.process: process targets only run with `murphy run` on one machine; use pods",
    ),
    (
        "/properties/targets/additionalProperties",
        "!has(self.cgroup)",
        "spec.targets.*.cgroup: cgroup targets only run with `murphy run` on one machine; use pods",
    ),
    (
        "/properties/targets/additionalProperties",
        "!has(self.netns)",
        "spec.targets.*.netns: netns targets only run with `murphy run` on one machine; use pods",
    ),
];

/// The engine's bounds on the spec's lists ([`murphy::model::spec::LIST_LIMITS`]) as
/// `maxItems` / `maxProperties`.
/// Call `f` with each version's `spec` schema.
fn each_spec_schema(crd: &mut serde_json::Value, mut f: impl FnMut(&mut serde_json::Value)) {
    let Some(versions) = crd
        .pointer_mut("/spec/versions")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return;
    };
    for v in versions {
        if let Some(spec) = v.pointer_mut("/schema/openAPIV3Schema/properties/spec") {
            f(spec);
        }
    }
}

fn add_limits(crd: &mut serde_json::Value) {
    each_spec_schema(crd, |spec| {
        for (path, most) in murphy::model::spec::LIST_LIMITS {
            let pointer: String = path
                .split('.')
                .map(|p| match p.strip_suffix("[]") {
                    Some(p) => format!("/properties/{p}/items"),
                    None => format!("/properties/{p}"),
                })
                .collect();
            if let Some(node) = spec.pointer_mut(&pointer).and_then(|n| n.as_object_mut()) {
                let key = if node.get("type").is_some_and(|t| t == "array") {
                    "maxItems"
                } else {
                    "maxProperties"
                };
                node.insert(key.into(), serde_json::json!(most));
            }
        }
    });
}

fn add_cluster_rules(crd: &mut serde_json::Value) {
    each_spec_schema(crd, |spec| {
        for (path, rule, message) in CLUSTER_RULES {
            let Some(node) = spec.pointer_mut(path).and_then(|n| n.as_object_mut()) else {
                continue;
            };
            let list = node
                .entry("x-kubernetes-validations")
                .or_insert_with(|| serde_json::json!([]));
            if let Some(l) = list.as_array_mut() {
                l.push(serde_json::json!({
                    "rule": rule,
                    "message": message,
                    "reason": "FieldValueForbidden",
                }));
            }
        }
    });
}

/// The CRD as YAML, as `murphy-operator crd` prints it and the Helm chart ships it.
pub fn crd_yaml() -> Result<String, String> {
    serde_saphyr::to_string(&crd_json()?).map_err(|e| e.to_string())
}

/// The cluster-scoped twin of [`Experiment`] (`murphy.dev/v1alpha1`, short name `cmx`):
/// the same spec and status, but its targets may be pods of any opted-in namespace. Only
/// cluster admins can create one (the chart grants it to no one; an `Experiment`, which
/// tenants' `edit` role may create, targets its own namespace only). Its Events go to the
/// `default` namespace and its evidence ConfigMap to the controller's own namespace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterExperiment {
    #[serde(default)]
    pub metadata: kube::api::ObjectMeta,
    pub spec: ExperimentSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::status::ExperimentStatus>,
}

impl kube::Resource for ClusterExperiment {
    type DynamicType = ();
    type Scope = kube::core::ClusterResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "ClusterExperiment".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "murphy.dev".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1alpha1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "clusterexperiments".into()
    }
    fn meta(&self) -> &kube::api::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
        &mut self.metadata
    }
}

impl ClusterExperiment {
    /// The controller's one view of both kinds: an [`Experiment`] with no namespace.
    pub fn as_experiment(&self) -> Experiment {
        let mut metadata = self.metadata.clone();
        metadata.namespace = None;
        Experiment {
            metadata,
            spec: self.spec.clone(),
            status: self.status.clone(),
        }
    }
}

/// The ClusterExperiment CRD: the Experiment's, cluster-scoped, under its own names.
pub fn cluster_crd_json() -> Result<serde_json::Value, String> {
    let mut crd = crd_json()?;
    crd["metadata"]["name"] = "clusterexperiments.murphy.dev".into();
    crd["spec"]["scope"] = "Cluster".into();
    crd["spec"]["names"] = serde_json::json!({
        "kind": "ClusterExperiment",
        "listKind": "ClusterExperimentList",
        "plural": "clusterexperiments",
        "singular": "clusterexperiment",
        "shortNames": ["cmx"],
        "categories": ["chaos"],
    });
    if let Some(root) = crd.pointer_mut("/spec/versions/0/schema/openAPIV3Schema/description") {
        *root = "A Murphy experiment whose targets may be pods of any namespace that opted in (murphy.dev/chaos=enabled); only cluster admins create these. Same spec and status as an Experiment.".into();
    }
    Ok(crd)
}

/// The ClusterExperiment CRD as YAML (`murphy-operator crd --cluster`).
pub fn cluster_crd_yaml() -> Result<String, String> {
    serde_saphyr::to_string(&cluster_crd_json()?).map_err(|e| e.to_string())
}

/// What an Experiment in `namespace` may not target (the engine's
/// [`murphy::plan::scope_problems`]), as "field: message".
pub fn scope_problems(
    namespace: Option<&str>,
    spec: &murphy::model::ExperimentSpec,
) -> Vec<String> {
    murphy::plan::scope_problems(namespace, spec)
        .into_iter()
        .map(|(f, m)| format!("{f}: {m}"))
        .collect()
}

/// Parts of a spec the cluster front door cannot run (the engine's
/// [`murphy::plan::unsupported`]): it refuses them, naming each field.
pub fn local_only_fields(spec: &murphy::model::ExperimentSpec) -> Vec<String> {
    murphy::plan::unsupported(spec, murphy::plan::Door::Cluster)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each admission rule refuses a field the controller also refuses, and names it.
    #[test]
    fn every_admission_rule_names_a_field_the_cluster_door_refuses() {
        let base = serde_json::json!({
            "targets": {"web": {"pods": {"namespace": "shop", "matchLabels": {"app": "web"}}}},
            "faults": [{"name": "kill", "target": "web", "kind": "process-kill"}],
        });
        let with = |patch: serde_json::Value| {
            let mut v = base.clone();
            json_patch::merge(&mut v, &patch);
            let spec: murphy::model::ExperimentSpec = serde_json::from_value(v).expect("spec");
            local_only_fields(&spec)
        };
        assert!(with(serde_json::json!({})).is_empty());
        // A workload runs on a cluster (from the controller); only a lab host as its
        // source is refused.
        assert!(with(serde_json::json!({"workloads": [{"name": "w", "rate": "1/s", "endpoints": ["{target:web}:80"], "http": {"path": "/"}}]})).is_empty());
        assert!(with(serde_json::json!({"watches": [{"name": "lb", "haproxy": {"address": "{target:web}:9999"}}]})).is_empty());
        // A command probe or role check runs on a cluster in a pod of its own, when the
        // spec names one.
        assert!(with(serde_json::json!({"commandPod": {"image": "busybox:1.36"}, "probes": [{"name": "p", "command": {"argv": ["/bin/true"]}}]})).is_empty());
        assert!(with(serde_json::json!({"commandPod": {"image": "busybox:1.36"}, "targets": {"web": {"select": "primary", "role": {"command": {"argv": ["/bin/true"]}, "timeline": false}}}})).is_empty());
        let cases = [
            (serde_json::json!({"lab": {"hosts": []}}), "spec.lab"),
            (
                serde_json::json!({"workloads": [{"name": "w", "rate": "1/s", "from": "h", "endpoints": ["10.0.0.1:80"], "http": {"path": "/"}}]}),
                "spec.workloads[",
            ),
            (
                serde_json::json!({"steps": [{"name": "s", "argv": ["true"]}]}),
                "spec.steps",
            ),
            (
                serde_json::json!({"watches": [{"name": "lb", "haproxy": {"socket": "/run/lb.sock"}}]}),
                "spec.watches[",
            ),
            (
                serde_json::json!({"probes": [{"name": "p", "command": {"argv": ["/bin/true"]}}]}),
                "spec.probes[",
            ),
            (
                serde_json::json!({"targets": {"web": {"select": "primary", "role": {"command": {"argv": ["/bin/true"]}}}}}),
                "spec.targets.",
            ),
            (
                serde_json::json!({"probes": [{"name": "p", "from": "h", "tcp": {"address": "10.0.0.1:80"}}]}),
                "spec.probes[",
            ),
            (
                serde_json::json!({"targets": {"web": {"netns": "blue"}}}),
                "spec.targets.",
            ),
            (
                serde_json::json!({"guardrails": {"allowPaths": ["/srv/db"]}}),
                "spec.guardrails.allowPaths",
            ),
            (
                serde_json::json!({"commandPod": {"image": "busybox:1.36"}, "targets": {"web": {"select": "primary", "role": {"command": {"argv": ["/bin/true"]}}}}}),
                "spec.targets.",
            ),
            (
                serde_json::json!({"targets": {"web": {"select": "primary", "role": {"redis": {"port": 6379}, "from": {"netns": "blue"}}}}}),
                "spec.targets.",
            ),
            (
                serde_json::json!({"workloads": [{"name": "w", "rate": "5/s", "endpoints": ["10.0.0.1:6379"], "from": {"netns": "blue"}, "redis": {}}]}),
                "spec.workloads[",
            ),
        ];
        for (patch, field) in cases {
            let refused = with(patch.clone());
            assert!(
                refused.iter().any(|f| f.starts_with(field)),
                "{patch}: {refused:?}"
            );
            assert!(
                CLUSTER_RULES.iter().any(|(_, _, m)| m.starts_with(field)),
                "no admission rule names {field}"
            );
        }
    }

    /// The regression on a real node: one stored object the engine cannot read (a
    /// `filter: {}` the old CRD defaulted onto every fault, a field of another kind) made
    /// the controller's list fail for everyone. Now it is read, with the field named.
    #[test]
    fn an_object_the_engine_cannot_read_is_still_read_with_the_field_named() {
        let obj = serde_json::json!({
            "apiVersion": "murphy.dev/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "old", "namespace": "shop", "uid": "u1"},
            "spec": {
                "targets": {"web": {"pods": {"namespace": "shop", "matchLabels": {"app": "web"}}}},
                "faults": [{"name": "pause", "target": "web", "kind": "process-pause", "filter": {}}],
            }
        });
        let exp: Experiment = serde_json::from_value(obj).expect("the object is read");
        let why = exp.spec.unreadable.clone().expect("the spec is not");
        assert!(why[0].starts_with("spec.faults[0]"), "{why:?}");
        assert!(why[0].contains("filter"), "{why:?}");
        let o = crate::reconcile::observe(&exp, None, 30_000);
        assert_eq!(o.invalid, why, "refused with the field named");
        // A readable one has nothing to say.
        let good: Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "murphy.dev/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "ok", "namespace": "shop"},
            "spec": {"faults": [{"name": "pause", "target": "web", "kind": "process-pause"}]}
        }))
        .expect("read");
        assert!(good.spec.unreadable.is_none());
        assert_eq!(good.spec.spec.faults.len(), 1);
    }

    /// Found on the real node: a partition from named peer pods was refused as "peer must
    /// be a lab target"; the run plan resolves pod targets to their IPs.
    #[test]
    fn pod_targets_are_valid_peers_of_a_cluster_partition() {
        let exp: murphy::model::spec::Experiment = serde_saphyr::from_str(
            r#"
apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: cut, namespace: shop}
spec:
  targets:
    web: {pods: {namespace: shop, matchLabels: {app: web}}, pick: {mode: one}}
    db: {pods: {namespace: shop, matchLabels: {app: db}}}
  probes:
    - {name: shop, http: {url: "http://10.96.0.10:8080/healthz"}}
  faults:
    - {name: cut, target: web, kind: network-partition, peers: [db], duration: 5s}
  claims:
    - {name: up, availability: {probe: shop, atLeast: 90%}}
"#,
        )
        .expect("yaml");
        let problems = murphy::model::validate::validate(&exp);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(local_only_fields(&exp.spec).is_empty());
    }

    #[test]
    fn the_schema_sets_no_server_side_defaults() {
        let crd = serde_json::to_string(&crd_json().expect("crd")).expect("json");
        assert!(
            !crd.contains("\"default\":"),
            "a default the engine may reject"
        );
    }
}
