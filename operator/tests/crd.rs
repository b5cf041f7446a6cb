//! The CRD is generated from the engine's types: the chart's copy must be exactly what
//! `murphy-operator crd` prints, the schema must be structural, and every experiment in
//! `experiments/` must read as an Experiment resource.

use murphy_operator::crd::{crd_yaml, local_only_fields, Experiment};
use murphy_operator::schema::violations;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[test]
fn the_charts_crds_are_the_generated_ones() {
    for (generated, file, flag) in [
        (crd_yaml().expect("crd"), "experiment.yaml", ""),
        (
            murphy_operator::crd::cluster_crd_yaml().expect("crd"),
            "clusterexperiment.yaml",
            " --cluster",
        ),
    ] {
        let path = root().join("charts/murphy/crds").join(file);
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == generated,
            "{} differs from `murphy-operator crd{flag}`: regenerate it with\n  cargo run -p murphy-operator -- crd{flag} > charts/murphy/crds/{file}",
            path.display()
        );
    }
}

/// The ClusterExperiment is the Experiment's schema, rules and columns, cluster-scoped
/// under its own names; the controller reads one as an Experiment with no namespace.
#[test]
fn the_cluster_kind_is_the_same_schema_cluster_scoped() {
    let ns = murphy_operator::crd::crd_json().expect("crd");
    let cl = murphy_operator::crd::cluster_crd_json().expect("crd");
    assert_eq!(cl["spec"]["scope"], "Cluster");
    assert_eq!(ns["spec"]["scope"], "Namespaced");
    assert_eq!(cl["spec"]["names"]["kind"], "ClusterExperiment");
    assert_eq!(
        cl["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"],
        ns["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    );
    assert_eq!(
        cl["spec"]["versions"][0]["additionalPrinterColumns"],
        ns["spec"]["versions"][0]["additionalPrinterColumns"]
    );
    let obj = serde_json::json!({
        "apiVersion": "murphy.dev/v1alpha1", "kind": "ClusterExperiment",
        "metadata": {"name": "wide", "uid": "u1"},
        "spec": {"faults": [{"name": "pause", "target": "web", "kind": "process-pause"}]}
    });
    let c: murphy_operator::crd::ClusterExperiment = serde_json::from_value(obj).expect("read");
    let e = c.as_experiment();
    assert_eq!(kube::ResourceExt::namespace(&e), None);
    assert_eq!(murphy_operator::reconcile::key_of(&e), "wide");
    assert_eq!(
        murphy_operator::reconcile::evidence_name(&e),
        "cluster-wide-evidence"
    );
}

/// A namespaced Experiment targets its own namespace only, each stray target named; a
/// ClusterExperiment may target any (opted-in) namespace.
#[test]
fn an_experiment_targets_its_own_namespace_only() {
    let spec: murphy::model::ExperimentSpec = serde_json::from_value(serde_json::json!({
        "targets": {
            "web": {"pods": {"namespace": "shop", "matchLabels": {"app": "web"}}},
            "db": {"pods": {"namespace": "bank", "matchLabels": {"app": "db"}}},
        },
        "faults": [{"name": "pause", "target": "web", "kind": "process-pause"}],
    }))
    .expect("spec");
    let p = murphy_operator::crd::scope_problems(Some("shop"), &spec);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("spec.targets.db.pods.namespace: an Experiment in namespace \"shop\" targets pods of its own namespace only, found \"bank\""),
        "{p:?}"
    );
    assert_eq!(
        murphy_operator::crd::scope_problems(Some("bank"), &spec).len(),
        1
    );
    assert!(murphy_operator::crd::scope_problems(None, &spec).is_empty());
}

#[test]
fn the_generated_schema_is_structural_with_printer_columns_and_status() {
    let yaml = crd_yaml().expect("crd");
    let crd: serde_json::Value = serde_saphyr::from_str(&yaml).expect("yaml");
    assert_eq!(violations(&crd), Vec::<String>::new());
    let v = &crd["spec"]["versions"][0];
    assert_eq!(crd["spec"]["group"], "murphy.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "mx");
    assert_eq!(v["name"], "v1alpha1");
    assert!(v["subresources"]["status"].is_object());
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(cols, ["Phase", "Verdict", "Held", "Failed", "Age"]);
    // `kubectl explain experiment.spec.faults` has the engine's doc comments to show.
    let faults = &v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["faults"];
    assert!(
        faults["description"]
            .as_str()
            .is_some_and(|d| d.contains("fault phase")),
        "{faults}"
    );
    let kinds = &faults["items"]["properties"]["kind"]["enum"];
    assert!(
        kinds
            .as_array()
            .is_some_and(|k| k.iter().any(|x| x == "bgp-announce")),
        "{kinds}"
    );
}

#[test]
fn every_repository_experiment_reads_as_a_resource_and_names_its_local_parts() {
    for e in std::fs::read_dir(root().join("experiments")).expect("experiments/") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read");
        let exp: Experiment =
            serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
        // Every lab experiment is local: the cluster front door names what it refuses.
        if exp.spec.spec.lab.is_some() {
            assert!(local_only_fields(&exp.spec.spec).contains(&"spec.lab".to_string()));
        }
    }
}

#[test]
fn the_cluster_experiments_are_valid_and_have_no_local_parts() {
    let dir = root().join("experiments").join("kubernetes");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("experiments/kubernetes") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read");
        let exp: Experiment =
            serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
        let core = murphy_operator::reconcile::core_experiment(&exp);
        let problems = murphy::model::validate::validate(&core);
        assert!(problems.is_empty(), "{}: {problems:?}", p.display());
        assert_eq!(
            local_only_fields(&exp.spec.spec),
            Vec::<String>::new(),
            "{}",
            p.display()
        );
        n += 1;
    }
    assert!(n >= 1);
}

/// A reviewable outline of the CRD (names, columns, each spec field with its type and
/// whether it is required): a change to the engine's spec types shows up here as a diff.
#[test]
fn crd_outline_snapshot() {
    let yaml = crd_yaml().expect("crd");
    let crd: serde_json::Value = serde_saphyr::from_str(&yaml).expect("yaml");
    let v = &crd["spec"]["versions"][0];
    let mut out = format!(
        "{}.{} {} (short: {}, categories: {})\ncolumns: {}\n",
        crd["spec"]["names"]["plural"].as_str().unwrap_or(""),
        crd["spec"]["group"].as_str().unwrap_or(""),
        v["name"].as_str().unwrap_or(""),
        crd["spec"]["names"]["shortNames"],
        crd["spec"]["names"]["categories"],
        v["additionalPrinterColumns"]
            .as_array()
            .map(|cs| cs
                .iter()
                .map(|c| format!(
                    "{}={}",
                    c["name"].as_str().unwrap_or(""),
                    c["jsonPath"].as_str().unwrap_or("")
                ))
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default()
    );
    fn walk(path: &str, s: &serde_json::Value, depth: usize, out: &mut String) {
        let required: Vec<&str> = s["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        if let Some(props) = s["properties"].as_object() {
            for (k, p) in props {
                let ty = p["type"].as_str().unwrap_or("any");
                let req = if required.contains(&k.as_str()) {
                    " (required)"
                } else {
                    ""
                };
                out.push_str(&format!("{path}.{k}: {ty}{req}\n"));
                if depth < 2 {
                    walk(&format!("{path}.{k}"), p, depth + 1, out);
                }
            }
        }
    }
    walk(
        "spec",
        &v["schema"]["openAPIV3Schema"]["properties"]["spec"],
        0,
        &mut out,
    );
    walk(
        "status",
        &v["schema"]["openAPIV3Schema"]["properties"]["status"],
        1,
        &mut out,
    );
    insta::assert_snapshot!(out);
}

fn crd_json() -> serde_json::Value {
    serde_saphyr::from_str(&crd_yaml().expect("crd")).expect("yaml")
}

/// `kubectl explain` has something to say for every field (a list's items and a map's
/// values are explained by the list or map itself).
#[test]
fn every_field_has_a_description() {
    fn walk(n: &serde_json::Value, path: &str, explained: bool, out: &mut Vec<String>) {
        if !explained && n.get("description").is_none() {
            out.push(path.to_string());
        }
        if let Some(props) = n["properties"].as_object() {
            for (k, v) in props {
                walk(v, &format!("{path}.{k}"), false, out);
            }
        }
        if n.get("items").is_some() {
            walk(&n["items"], &format!("{path}[]"), true, out);
        }
        if n["additionalProperties"].is_object() {
            walk(&n["additionalProperties"], &format!("{path}.*"), true, out);
        }
    }
    let crd = crd_json();
    let mut missing = Vec::new();
    walk(
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        "",
        false,
        &mut missing,
    );
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "fields without a description"
    );
}

/// The union of fault kinds merged into one object keeps which fields go with which kind
/// (a CEL rule per field), and the engine's "exactly one of" choices are CEL rules too;
/// the spec's lists carry the engine's bounds.
#[test]
fn the_schema_keeps_each_kinds_fields_and_each_choice_exact() {
    let crd = crd_json();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let rules = |n: &serde_json::Value| -> Vec<(String, String)> {
        n["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["rule"].as_str().unwrap_or("").to_string(),
                    r["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let faults = &spec["properties"]["faults"];
    let fr = rules(&faults["items"]);
    let delay = fr
        .iter()
        .find(|(r, _)| r.starts_with("!has(self.delay)"))
        .expect("a rule for delay");
    assert!(
        delay.0.contains("'network-delay'") && !delay.0.contains("'process-pause'"),
        "{delay:?}"
    );
    // Fields of every kind (name, target, at, duration) are never restricted.
    for common in ["name", "target", "at", "duration", "kind"] {
        assert!(
            !fr.iter()
                .any(|(r, _)| r.starts_with(&format!("!has(self.{common})"))),
            "{common}"
        );
    }
    let kind_doc = faults["items"]["properties"]["kind"]["description"]
        .as_str()
        .unwrap_or("");
    assert!(kind_doc.contains("`process-pause`: Freeze"), "{kind_doc}");
    let claims = rules(&spec["properties"]["claims"]["items"]);
    assert!(
        claims
            .iter()
            .any(|(r, m)| r.ends_with(".exists_one(x, x)") && m.contains("`availability`")),
        "{claims:?}"
    );
    let probes = rules(&spec["properties"]["probes"]["items"]);
    assert!(
        probes
            .iter()
            .any(|(_, m)| m == "needs exactly one of `http`, `tcp`, `command` or `prometheus`"),
        "{probes:?}"
    );
    for (path, most) in murphy::model::spec::LIST_LIMITS {
        if path.contains('.') {
            continue;
        }
        let n = &spec["properties"][*path];
        let bound = n.get("maxItems").or(n.get("maxProperties"));
        assert_eq!(bound, Some(&serde_json::json!(most)), "{path}");
    }
}
