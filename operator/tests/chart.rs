//! The Helm chart (`charts/murphy`), checked without helm:
//!
//! - every `.Values.x.y` a template uses is defined in values.yaml, every value there is
//!   used by some template, and README.md documents each one used;
//! - the controller's ClusterRole grants exactly the rules its code paths need, its Role
//!   only leader-election leases, and no RBAC rule anywhere has a wildcard;
//! - the agent DaemonSet shares the host PID namespace but not the host network, drops all
//!   capabilities and adds back exactly values.yaml's list, and mounts exactly three host
//!   paths, where its arguments say;
//! - Chart.yaml is a v2 chart named murphy with a version and an appVersion.
//!
//! rbac.yaml and agent-daemonset.yaml are written so that they parse as YAML once each
//! template action is replaced (see [`fill`]): no if/range/with, one action per line, each
//! in a scalar position.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What [`fill`] puts in place of an action it does not evaluate.
const PLACEHOLDER: &str = "TEMPLATED";

/// Template keywords of control structures, which [`fill`] refuses.
const CONTROL: [&str; 8] = [
    "if", "else", "end", "range", "with", "define", "block", "template",
];

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/murphy")
}

fn read(rel: &str) -> String {
    let path = chart().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn values() -> Value {
    serde_saphyr::from_str(&read("values.yaml")).expect("values.yaml parses")
}

/// Every file under templates/, by name.
fn templates() -> BTreeMap<String, String> {
    let dir = chart().join("templates");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("templates/") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            out.insert(name.clone(), read(&format!("templates/{name}")));
        }
    }
    assert!(!out.is_empty(), "no templates in {}", dir.display());
    out
}

/// The dotted paths after each `.Values.` in `text`, with their line numbers.
fn value_refs(text: &str) -> Vec<(usize, String)> {
    const MARK: &str = ".Values.";
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find(MARK) {
            let tail = &rest[i + MARK.len()..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(tail.len());
            let path = tail[..end].trim_end_matches('.');
            if !path.is_empty() {
                out.push((n + 1, path.to_string()));
            }
            rest = &tail[end..];
        }
    }
    out
}

/// The value at a dotted path, if every step is a key of a mapping.
fn lookup<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(values, |v, key| v.as_object()?.get(key))
}

/// Paths of values.yaml down to its leaves (scalars, lists, empty mappings).
fn leaf_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(child, &path, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// A value as Go's text/template prints it (strings bare, whole numbers without a point).
fn go_print(v: &Value, at: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Array(_) | Value::Object(_) => {
            panic!("{at}: a list or mapping printed without toJson/toYaml")
        }
    }
}

/// One template action, evaluated when it is `.Values.p`, `toJson .Values.p`, optionally
/// piped to `quote` or `toJson`; [`PLACEHOLDER`] otherwise (include, ternary, ...).
fn eval(action: &str, values: &Value, at: &str) -> String {
    let mut stages = action.split('|').map(str::trim);
    let first = stages.next().unwrap_or_default();
    let (mut json, path) = match first.strip_prefix("toJson ") {
        Some(rest) => (true, rest.trim()),
        None => (false, first),
    };
    let Some(path) = path.strip_prefix(".Values.") else {
        return PLACEHOLDER.to_string();
    };
    let value = lookup(values, path).unwrap_or_else(|| panic!("{at}: .Values.{path} undefined"));
    let mut quote = false;
    for stage in stages {
        match stage {
            "toJson" => json = true,
            "quote" => quote = true,
            _ => return PLACEHOLDER.to_string(),
        }
    }
    let text = if json {
        value.to_string()
    } else {
        go_print(value, at)
    };
    if quote {
        Value::String(text).to_string()
    } else {
        text
    }
}

/// The template `name` with each `{{ ... }}` action replaced by [`eval`]'s result. The
/// whitespace-trimming dashes (`{{-`, `-}}`) are ignored, so a `{{- include ... | nindent
/// 4 }}` under `labels:` becomes `labels:` followed by an indented placeholder scalar.
/// Panics on what would make the replacement meaningless: an action over several lines,
/// a control structure, a template comment.
fn fill(name: &str, text: &str, values: &Value) -> String {
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("templates/{name}:{}", n + 1);
        let mut rest = line;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .unwrap_or_else(|| panic!("{at}: an action must open and close on one line"));
            let action = after[..close]
                .trim()
                .trim_start_matches('-')
                .trim_end_matches('-')
                .trim();
            let word = action.split_whitespace().next().unwrap_or_default();
            assert!(
                !CONTROL.contains(&word) && !action.starts_with("/*"),
                "{at}: `{{{{ {action} }}}}` is a control structure or comment; this file must parse once actions are replaced"
            );
            out.push_str(&eval(action, values, &at));
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// The documents of a template, after [`fill`], parsed.
fn documents(name: &str) -> Vec<Value> {
    let filled = fill(name, &read(&format!("templates/{name}")), &values());
    let docs: Vec<Value> = serde_saphyr::from_multiple(&filled)
        .unwrap_or_else(|e| panic!("templates/{name} does not parse once filled: {e}\n{filled}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected a string, got {s}"))
        })
        .collect()
}

/// (apiGroup, resource) -> verbs, over every rule; panics on fields other than apiGroups,
/// resources and verbs (resourceNames, nonResourceURLs), which the expected lists lack.
fn grants(rules: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in rules.as_array().expect("rules is a list") {
        let keys: BTreeSet<&str> = rule
            .as_object()
            .expect("a rule is a mapping")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["apiGroups", "resources", "verbs"]),
            "{rule}"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                out.entry((group.to_string(), resource.to_string()))
                    .or_default()
                    .extend(strings(&rule["verbs"]).into_iter().map(String::from));
            }
        }
    }
    out
}

fn expected(rules: &[(&str, &str, &[&str])]) -> BTreeMap<(String, String), BTreeSet<String>> {
    rules
        .iter()
        .map(|(group, resource, verbs)| {
            (
                (group.to_string(), resource.to_string()),
                verbs.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect()
}

/// Every string anywhere in `v`, with its JSON path.
fn all_strings<'a>(v: &'a Value, path: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path.to_string(), s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                all_strings(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                all_strings(item, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// values.schema.json (which Helm checks every install and upgrade against) describes
/// every value of values.yaml with its type, and refuses keys it does not know.
#[test]
fn the_values_schema_covers_every_value_with_its_type() {
    let schema: Value =
        serde_json::from_str(&read("values.schema.json")).expect("values.schema.json is JSON");
    let values = values();
    let mut leaves = Vec::new();
    leaf_paths(&values, "", &mut leaves);
    let mut missing = Vec::new();
    for leaf in &leaves {
        let mut node = &schema;
        let mut value = &values;
        let mut free_map = false;
        for part in leaf.split('.') {
            if node.get("properties").is_none() && node["additionalProperties"].is_object() {
                // A map of free keys (e.g. resources.requests): its values' schema.
                node = &node["additionalProperties"];
                value = &value[part];
                free_map = true;
                continue;
            }
            assert_eq!(
                node["additionalProperties"], false,
                "{leaf}: the schema must refuse unknown keys at this level"
            );
            node = &node["properties"][part];
            value = &value[part];
        }
        if node.is_null() {
            missing.push(leaf.clone());
            continue;
        }
        let ty = node["type"]
            .as_str()
            .unwrap_or(if free_map { "any" } else { "" });
        let fits = match value {
            Value::String(_) => ty == "string" || ty == "any",
            Value::Bool(_) => ty == "boolean",
            Value::Number(_) => ty == "integer" || ty == "number" || ty == "any",
            Value::Array(_) => ty == "array",
            Value::Object(_) => ty == "object",
            Value::Null => true,
        };
        assert!(fits, "{leaf}: schema type {ty:?} does not fit {value:?}");
    }
    assert!(missing.is_empty(), "not in values.schema.json: {missing:?}");
}

#[test]
fn every_value_a_template_uses_is_defined_and_every_defined_value_is_used() {
    let values = values();
    let mut used = BTreeSet::new();
    let mut undefined = Vec::new();
    for (name, text) in templates() {
        for (line, path) in value_refs(&text) {
            if lookup(&values, &path).is_none() {
                undefined.push(format!("templates/{name}:{line}: .Values.{path}"));
            }
            used.insert(path);
        }
    }
    assert!(
        undefined.is_empty(),
        "not in values.yaml:\n{}",
        undefined.join("\n")
    );
    let mut leaves = Vec::new();
    leaf_paths(&values, "", &mut leaves);
    let unused: Vec<&String> = leaves
        .iter()
        .filter(|leaf| {
            !used
                .iter()
                .any(|u| *leaf == u || leaf.starts_with(&format!("{u}.")))
        })
        .collect();
    assert!(
        unused.is_empty(),
        "values.yaml defines, no template uses: {unused:?}"
    );
    let readme = read("README.md");
    let undocumented: Vec<&String> = used
        .iter()
        .filter(|p| !readme.contains(&format!("`{p}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "README.md does not document: {undocumented:?}"
    );
}

#[test]
fn the_controller_gets_exactly_the_rbac_its_code_paths_need() {
    let docs = documents("rbac.yaml");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRole"
        ]
    );
    let mut found = Vec::new();
    for doc in &docs {
        all_strings(doc, "", &mut found);
    }
    let wild: Vec<_> = found.iter().filter(|(_, s)| s.contains('*')).collect();
    assert!(wild.is_empty(), "wildcards in rbac.yaml: {wild:?}");

    let cluster_role = &docs[0];
    assert_eq!(
        grants(&cluster_role["rules"]),
        expected(&[
            (
                "murphy.dev",
                "experiments",
                &["get", "list", "watch", "patch", "update"]
            ),
            (
                "murphy.dev",
                "clusterexperiments",
                &["get", "list", "watch", "patch", "update"]
            ),
            (
                "murphy.dev",
                "experiments/status",
                &["get", "patch", "update"]
            ),
            (
                "murphy.dev",
                "clusterexperiments/status",
                &["get", "patch", "update"]
            ),
            ("murphy.dev", "experiments/finalizers", &["update"]),
            ("murphy.dev", "clusterexperiments/finalizers", &["update"]),
            ("", "pods", &["get", "list", "watch", "create", "delete"]),
            ("", "pods/log", &["get"]),
            ("", "namespaces", &["get", "list", "watch"]),
            ("", "configmaps", &["get", "create", "patch", "update"]),
            ("events.k8s.io", "events", &["create", "patch"]),
        ])
    );
    let role = &docs[1];
    assert_eq!(
        grants(&role["rules"]),
        expected(&[(
            "coordination.k8s.io",
            "leases",
            &["get", "create", "update"]
        )])
    );
    // Tenants' roles (aggregated into the built-in edit/admin and view) name Experiments
    // only: nothing in the chart grants ClusterExperiments to anyone but the controller.
    let edit = &docs[3];
    assert_eq!(
        edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    assert_eq!(
        grants(&edit["rules"]),
        expected(&[(
            "murphy.dev",
            "experiments",
            &[
                "get",
                "list",
                "watch",
                "create",
                "update",
                "patch",
                "delete",
                "deletecollection"
            ]
        )])
    );
    let view = &docs[4];
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert_eq!(
        grants(&view["rules"]),
        expected(&[("murphy.dev", "experiments", &["get", "list", "watch"])])
    );
    let binding = &docs[2];
    assert_eq!(binding["roleRef"]["kind"], "Role");
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 1, "{binding}");
    assert_eq!(subjects[0]["kind"], "ServiceAccount");

    // The ClusterRole's bindings (a ClusterRoleBinding, or RoleBindings in namespaced
    // mode) bind that ClusterRole to the controller's account and nothing else.
    let bindings = read("templates/rbac-bindings.yaml");
    let role_refs: Vec<&str> = bindings
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("name:") || l.starts_with("kind:"))
        .collect();
    assert_eq!(
        role_refs
            .iter()
            .filter(|l| l.starts_with("kind: ClusterRole") && **l != "kind: ClusterRoleBinding")
            .count(),
        2,
        "{role_refs:?}"
    );
    assert!(
        bindings.matches("kind: ServiceAccount").count() == 2
            && !bindings.contains("kind: User")
            && !bindings.contains("kind: Group"),
        "rbac-bindings.yaml binds someone else"
    );

    // No grant elsewhere escapes the comparison above.
    for (name, text) in templates() {
        if name == "rbac.yaml" || name == "rbac-bindings.yaml" {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let kind = line.trim().strip_prefix("kind:").map(str::trim);
            assert!(
                !matches!(
                    kind,
                    Some("ClusterRole" | "Role" | "ClusterRoleBinding" | "RoleBinding")
                ),
                "templates/{name}:{}: RBAC belongs in rbac.yaml",
                n + 1
            );
        }
    }
}

#[test]
fn the_agent_has_host_pids_its_listed_capabilities_and_three_host_mounts() {
    let values = values();
    let docs = documents("agent-daemonset.yaml");
    assert_eq!(docs.len(), 1);
    let ds = &docs[0];
    assert_eq!(ds["kind"], "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert!(
        matches!(pod.get("hostNetwork"), None | Some(Value::Bool(false))),
        "hostNetwork: {}",
        pod["hostNetwork"]
    );
    assert!(pod.get("hostIPC").is_none_or(|v| v == false));
    assert_eq!(pod["automountServiceAccountToken"], false);

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let agent = &containers[0];
    let sc = &agent["securityContext"];
    assert_eq!(sc["privileged"], false, "not privileged by default");
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    let added = strings(&sc["capabilities"]["add"]);
    assert_eq!(
        added,
        strings(&values["agent"]["capabilities"]),
        "adds values.yaml's agent.capabilities"
    );
    // The list values.yaml documents, one comment per capability.
    let documented = [
        "NET_ADMIN",
        "SYS_ADMIN",
        "SYS_PTRACE",
        "KILL",
        "SYS_NICE",
        "DAC_OVERRIDE",
    ];
    assert_eq!(
        added.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(documented)
    );
    assert_eq!(added.len(), documented.len(), "no capability twice");

    // hostPath volumes: exactly these, each mounted where the agent's arguments say.
    let mut host: BTreeMap<&str, (&str, &str)> = BTreeMap::new(); // volume -> (path, type)
    let mut secrets = BTreeSet::new();
    for v in pod["volumes"].as_array().expect("volumes") {
        let name = v["name"].as_str().expect("volume name");
        if let Some(hp) = v.get("hostPath") {
            let path = hp["path"].as_str().expect("hostPath.path");
            host.insert(name, (path, hp["type"].as_str().unwrap_or_default()));
        } else {
            // Besides host paths: secrets, and pod-local scratch (emptyDir).
            assert!(
                v.get("secret").is_some() || v.get("emptyDir").is_some(),
                "unexpected volume {v}"
            );
            secrets.insert(name);
        }
    }
    let mounts: BTreeMap<&str, &str> = agent["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("mount name"),
                m["mountPath"].as_str().expect("mountPath"),
            )
        })
        .collect();
    let mounted: BTreeMap<&str, (&str, &str)> = host
        .iter()
        .map(|(name, (path, kind))| {
            let at = mounts
                .get(name)
                .unwrap_or_else(|| panic!("host volume {name} is not mounted"));
            (*path, (*at, *kind))
        })
        .collect();
    assert_eq!(
        mounted,
        BTreeMap::from([
            ("/sys/fs/cgroup", ("/host/sys/fs/cgroup", "Directory")),
            (
                "/var/lib/murphy/agent",
                ("/var/lib/murphy/agent", "DirectoryOrCreate")
            ),
            ("/run/xtables.lock", ("/run/xtables.lock", "FileOrCreate")),
        ])
    );

    let args = strings(&agent["args"]);
    let arg = |flag: &str| {
        let i = args
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("agent args lack {flag}: {args:?}"));
        args.get(i + 1).copied().unwrap_or_default()
    };
    assert_eq!(args[0], "agent");
    assert_eq!(arg("--cgroup-root"), mounted["/sys/fs/cgroup"].0);
    assert_eq!(arg("--state-dir"), mounted["/var/lib/murphy/agent"].0);
    let tls_dir = arg("--tls-dir");
    assert!(
        secrets.iter().any(|s| mounts.get(s) == Some(&tls_dir)),
        "--tls-dir {tls_dir} is not a mounted Secret"
    );
    let port = values["agent"]["port"].as_u64().expect("agent.port");
    assert_eq!(arg("--listen"), format!("0.0.0.0:{port}"));
}

#[test]
fn chart_yaml_is_a_v2_chart_named_murphy() {
    let chart: Value = serde_saphyr::from_str(&read("Chart.yaml")).expect("Chart.yaml parses");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "murphy");
    for key in ["version", "appVersion"] {
        assert!(
            chart[key].as_str().is_some_and(|v| !v.is_empty()),
            "Chart.yaml {key}: {}",
            chart[key]
        );
    }
}
