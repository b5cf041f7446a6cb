//! The `Experiment` custom resource (`murphy.dev/v1alpha1`, namespaced, short name `mx`).
//! Its spec *is* the engine's [`murphy::model::ExperimentSpec`]: the same file runs with
//! `murphy run` and `kubectl apply` (local-only parts such as `lab` are refused by the
//! cluster front door). The schema comes from the Rust types through schemars.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to break, what to watch, and what must hold — the engine's experiment spec.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
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
    Ok(crd)
}

/// The CRD as YAML, as `murphy-operator crd` prints it and the Helm chart ships it.
pub fn crd_yaml() -> Result<String, String> {
    serde_saphyr::to_string(&crd_json()?).map_err(|e| e.to_string())
}

/// Parts of a spec the cluster front door cannot run (the engine's
/// [`murphy::plan::unsupported`]): it refuses them, naming each field.
pub fn local_only_fields(spec: &murphy::model::ExperimentSpec) -> Vec<String> {
    murphy::plan::unsupported(spec, murphy::plan::Door::Cluster)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}
