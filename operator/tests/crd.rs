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
fn the_charts_crd_is_the_generated_one() {
    let generated = crd_yaml().expect("crd");
    let path = root().join("charts/murphy/crds/experiment.yaml");
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == generated,
        "{} differs from `murphy-operator crd`: regenerate it with\n  cargo run -p murphy-operator -- crd > charts/murphy/crds/experiment.yaml",
        path.display()
    );
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
