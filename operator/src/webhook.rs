//! The validating admission webhook: the API server asks it about every Experiment and
//! ClusterExperiment that is created or changed, and it answers with exactly what
//! `murphy validate --cluster` says of the same document — the engine's parser and
//! validator ([`murphy::model::parse_experiment`]) and what the cluster door refuses
//! ([`murphy::plan::refusals`]). The CRD's CEL rules refuse what a schema can see; this
//! refuses the rest (a fault's target that does not exist, a claim's probe, a duration out
//! of range), every problem at once, each naming its field.
//!
//! Served over HTTPS with the controller's certificate (the chart gives it the webhook
//! Service's DNS name), by every controller replica (leader or not), on `POST /validate`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;
use std::path::PathBuf;
use std::sync::Arc;

/// The largest review it reads (an Experiment is bounded well below this).
const BODY_MAX: usize = 4 << 20;

/// What admission refuses in `obj` (an Experiment or ClusterExperiment as the API server
/// sends it), as "field: message" lines; empty: admitted.
pub fn problems(obj: &serde_json::Value) -> Vec<String> {
    let kind = obj["kind"].as_str().unwrap_or(murphy::model::spec::KIND);
    let mut metadata = serde_json::Map::new();
    for k in ["name", "namespace"] {
        if let Some(v) = obj["metadata"].get(k).filter(|v| v.is_string()) {
            metadata.insert(k.into(), v.clone());
        }
    }
    // The engine's own reading of the document (API-server bookkeeping such as uid,
    // managedFields or status is not the experiment's).
    let doc = serde_json::json!({
        "apiVersion": obj["apiVersion"],
        "kind": kind,
        "metadata": metadata,
        "spec": obj["spec"],
    });
    let diags = match murphy::model::parse_experiment(&doc.to_string()) {
        Ok(exp) => murphy::plan::refusals(&exp, murphy::plan::Door::Cluster),
        Err(d) => d,
    };
    diags
        .iter()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect()
}

/// The answer to one AdmissionReview (JSON in, JSON out).
pub fn review(body: &[u8]) -> Result<Vec<u8>, String> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
    let req: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|e| format!("an AdmissionReview without a request: {e}"))?;
    let mut resp = AdmissionResponse::from(&req);
    // An update that leaves the spec as it was (a finalizer removed, a label, an abort
    // annotation) is never refused: refusing it would make a stored Experiment impossible
    // to delete or abort.
    let same_spec = matches!(
        (&req.old_object, &req.object),
        (Some(old), Some(new)) if old.data.get("spec") == new.data.get("spec")
    );
    // A run keeps the plan it started with: its spec cannot change under it (the status
    // would describe one spec and the record another). Abort or delete, then apply again.
    let running = req
        .old_object
        .as_ref()
        .and_then(|o| o.data.pointer("/status/phase"))
        .and_then(|p| p.as_str())
        .filter(|p| matches!(*p, "Running" | "Reverting"));
    if let (false, Some(phase)) = (same_spec, running) {
        resp = resp.deny(format!(
            "spec: cannot change while the run is {phase} (it keeps the plan it started with); abort it (annotation murphy.dev/abort=true) or delete it, then apply the new spec"
        ));
    } else if let (false, Some(obj)) = (same_spec, &req.object) {
        let v = serde_json::to_value(obj).map_err(|e| e.to_string())?;
        let p = problems(&v);
        if !p.is_empty() {
            tracing::info!(
                name = %req.name,
                namespace = req.namespace.as_deref().unwrap_or(""),
                "admission refused {} problem(s)",
                p.len()
            );
            resp = resp.deny(p.join("; "));
        }
    }
    serde_json::to_vec(&resp.into_review()).map_err(|e| e.to_string())
}

/// The server's TLS: the certificate and key in `dir` (read again for each connection, so
/// a renewed certificate is served without a restart).
fn tls(dir: &std::path::Path) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let crt = dir.join("tls.crt");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&crt)
        .map_err(|e| format!("{}: {e}", crt.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", crt.display()))?;
    let key_path = dir.join("tls.key");
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the webhook certificate: {e}"))?;
    Ok(Arc::new(cfg))
}

async fn handle(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |code: StatusCode, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = code;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(r)
    };
    if req.method() != Method::POST || req.uri().path() != "/validate" {
        return reply(StatusCode::NOT_FOUND, b"{}".to_vec());
    }
    let body = match Limited::new(req.into_body(), BODY_MAX).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(StatusCode::PAYLOAD_TOO_LARGE, e.to_string().into_bytes()),
    };
    match review(&body) {
        Ok(out) => reply(StatusCode::OK, out),
        Err(e) => reply(StatusCode::BAD_REQUEST, e.into_bytes()),
    }
}

/// Serve the webhook on `listener` until the process ends, with the certificate in
/// `tls_dir`.
pub async fn serve(listener: tokio::net::TcpListener, tls_dir: PathBuf) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let dir = tls_dir.clone();
        tokio::spawn(async move {
            let cfg = match tls(&dir) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("admission webhook: {e}");
                    return;
                }
            };
            let accept = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp);
            let Ok(Ok(stream)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), accept).await
            else {
                return;
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(handle))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "murphy.dev/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "x", "namespace": "shop", "uid": "u", "managedFields": [{"manager": "kubectl"}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": spec,
        })
    }

    /// What CEL cannot see is refused here, every problem at once, each naming its field;
    /// a good spec passes whatever bookkeeping the API server added.
    #[test]
    fn references_and_scope_are_refused_every_problem_at_once() {
        let good = serde_json::json!({
            "targets": {"web": {"pods": {"namespace": "shop", "matchLabels": {"app": "web"}}}},
            "probes": [{"name": "p", "tcp": {"address": "10.0.0.1:80"}}],
            "faults": [{"name": "pause", "target": "web", "kind": "process-pause", "duration": "5s"}],
            "claims": [{"name": "up", "availability": {"probe": "p", "atLeast": "50%"}}],
        });
        assert_eq!(problems(&object(good.clone())), Vec::<String>::new());
        let mut bad = good.clone();
        bad["faults"][0]["target"] = "nope".into();
        bad["claims"][0]["availability"]["probe"] = "gone".into();
        bad["targets"]["web"]["pods"]["namespace"] = "bank".into();
        let p = problems(&object(bad));
        assert!(
            p.iter().any(|l| l.starts_with("spec.faults[0].target:")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("spec.claims[0].availability.probe:")),
            "{p:?}"
        );
        // The scope is judged once the spec is valid (the validator's problems come first).
        let mut stray = good;
        stray["targets"]["web"]["pods"]["namespace"] = "bank".into();
        let p = problems(&object(stray.clone()));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "spec.targets.web.pods.namespace: an Experiment in namespace \"shop\""
            ),
            "{p:?}"
        );
        // A ClusterExperiment may reach it.
        let mut cluster = object(stray);
        cluster["kind"] = "ClusterExperiment".into();
        cluster["metadata"]
            .as_object_mut()
            .expect("meta")
            .remove("namespace");
        assert_eq!(problems(&cluster), Vec::<String>::new());
    }

    #[test]
    fn a_review_is_answered_allowed_or_denied_with_its_uid() {
        let req = |spec: serde_json::Value| {
            serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                    "kind": {"group": "murphy.dev", "version": "v1alpha1", "kind": "Experiment"},
                    "resource": {"group": "murphy.dev", "version": "v1alpha1", "resource": "experiments"},
                    "name": "x", "namespace": "shop", "operation": "CREATE",
                    "userInfo": {"username": "alice"},
                    "object": object(spec),
                    "dryRun": true,
                }
            })
            .to_string()
        };
        let out: serde_json::Value = serde_json::from_slice(
            &review(req(serde_json::json!({"faults": [{"name": "k", "target": "web", "kind": "process-kill"}]})).as_bytes())
                .expect("review"),
        )
        .expect("json");
        assert_eq!(
            out["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(out["response"]["allowed"], false);
        assert!(
            out["response"]["status"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("spec.faults[0].target"),
            "{out}"
        );
        assert!(review(b"{}").is_err());
        // The same bad spec, with only its finalizers changed: let through.
        let mut upd: serde_json::Value = serde_json::from_str(&req(
            serde_json::json!({"faults": [{"name": "k", "target": "web", "kind": "process-kill"}]}),
        ))
        .expect("json");
        upd["request"]["operation"] = "UPDATE".into();
        upd["request"]["oldObject"] = upd["request"]["object"].clone();
        upd["request"]["object"]["metadata"]["finalizers"] = serde_json::json!([]);
        let out: serde_json::Value =
            serde_json::from_slice(&review(upd.to_string().as_bytes()).expect("review"))
                .expect("json");
        assert_eq!(out["response"]["allowed"], true, "{out}");
        // A changed spec of a running Experiment is refused whatever it says.
        let mut running = upd.clone();
        running["request"]["oldObject"]["status"] = serde_json::json!({"phase": "Running"});
        running["request"]["object"]["spec"] = serde_json::json!({
            "targets": {"web": {"pods": {"namespace": "shop", "matchLabels": {"app": "web"}}}},
            "faults": [{"name": "k", "target": "web", "kind": "process-kill"}]});
        let out: serde_json::Value =
            serde_json::from_slice(&review(running.to_string().as_bytes()).expect("review"))
                .expect("json");
        assert_eq!(out["response"]["allowed"], false, "{out}");
        assert!(
            out["response"]["status"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("cannot change while the run is Running"),
            "{out}"
        );
        // A changed spec is judged again.
        upd["request"]["object"]["spec"]["faults"][0]["name"] = "k2".into();
        let out: serde_json::Value =
            serde_json::from_slice(&review(upd.to_string().as_bytes()).expect("review"))
                .expect("json");
        assert_eq!(out["response"]["allowed"], false, "{out}");
    }
}
