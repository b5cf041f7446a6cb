//! `prometheus` claims: after the run, one range query per claim over the claim's window
//! (as the record says it was: a fault's window from its confirmation), kept in the record
//! ([`crate::record::PromQuery`]) so the verdict, the report and a later `murphy report`
//! judge the same answer. Both front doors call [`collect`] on the finished record.

use crate::httpapi::{self, BaseUrl};
use crate::model::spec::{ClaimSpec, PromCheck, PrometheusClaim};
use crate::record::{PromQuery, PromSeries, RunRecord};
use crate::verdict::{window_name, window_span};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one query may take, all told.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The range query of every `prometheus` claim, in claim order. `wall_start_ms` is the
/// run's start on the wall clock (Unix milliseconds): the record's times are relative to it.
pub fn collect(claims: &[ClaimSpec], rec: &RunRecord, wall_start_ms: u64) -> Vec<PromQuery> {
    claims
        .iter()
        .filter_map(|c| c.prometheus.as_ref().map(|p| (c, p)))
        .map(|(c, p)| query_for(c, p, rec, wall_start_ms))
        .collect()
}

fn query_for(c: &ClaimSpec, p: &PrometheusClaim, rec: &RunRecord, wall: u64) -> PromQuery {
    let mut q = PromQuery {
        claim: c.name.clone(),
        url: p.url.clone(),
        query: p.query.clone(),
        step_ms: p.step_ms(),
        ..PromQuery::default()
    };
    match window_span(rec, p.window, p.fault.as_deref()) {
        Ok((a, b)) => {
            q.start_ms = a;
            q.end_ms = b;
        }
        Err(e) => {
            q.error = Some(format!(
                "not asked: cannot measure {}: {e}",
                window_name(p.window, p.fault.as_deref())
            ));
            return q;
        }
    }
    if q.end_ms < q.start_ms {
        q.error = Some("not asked: the window is empty".into());
        return q;
    }
    match range_query(p, wall, q.start_ms, q.end_ms) {
        Ok(series) => q.series = series,
        Err(e) => q.error = Some(e),
    }
    q
}

/// `/api/v1/query_range` over `[start_ms, end_ms]` of the run; points come back on the
/// run's clock.
fn range_query(
    p: &PrometheusClaim,
    wall: u64,
    start_ms: f64,
    end_ms: f64,
) -> Result<Vec<PromSeries>, String> {
    let secs = |ms: f64| format!("{:.3}", (wall as f64 + ms) / 1000.0);
    let (status, body) = get(
        &p.url,
        p.token_env.as_deref(),
        "/api/v1/query_range",
        &[
            ("query", p.query.clone()),
            ("start", secs(start_ms)),
            ("end", secs(end_ms)),
            ("step", format!("{:.3}", p.step_ms() / 1000.0)),
        ],
        TIMEOUT,
        64 << 20,
    )?;
    parse_answer(status, &body, wall)
}

/// One GET of Prometheus' API at `url` + `path` with `params`, as the bearer token in
/// `token_env` (if any), answered within `timeout`: the status and the body (at most
/// `limit` bytes).
fn get(
    url: &str,
    token_env: Option<&str>,
    path: &str,
    params: &[(&str, String)],
    timeout: Duration,
    limit: u64,
) -> Result<(u16, String), String> {
    let base = BaseUrl::parse(url)?;
    let token = httpapi::token_from_env(token_env)?;
    let mut req = httpapi::agent(timeout).get(base.join(path));
    for (k, v) in params {
        req = req.query(*k, v);
    }
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = req
        .call()
        .map_err(|e| format!("asking {}: {e}", base.as_str()))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_string()
        .map_err(|e| format!("reading the answer of {}: {e}", base.as_str()))?;
    Ok((status, body))
}

/// Prometheus' API envelope: `status`, then `data` or `errorType`/`error`.
#[derive(Deserialize)]
struct Answer<D> {
    status: String,
    #[serde(default = "none")]
    data: Option<D>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

fn none<D>() -> Option<D> {
    None
}

/// The `data` of a successful answer, or what the server said.
fn data_of<D: serde::de::DeserializeOwned>(status: u16, body: &str) -> Result<D, String> {
    let a: Answer<D> = serde_json::from_str(body).map_err(|_| {
        format!(
            "HTTP {status}: not a Prometheus API answer: {}",
            httpapi::excerpt(body)
        )
    })?;
    if a.status != "success" {
        return Err(format!(
            "HTTP {status}: Prometheus said {}: {}",
            a.error_type.as_deref().unwrap_or("error"),
            a.error.as_deref().unwrap_or("(no message)")
        ));
    }
    a.data
        .ok_or_else(|| format!("HTTP {status}: a success without data"))
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Prometheus' answer (status and JSON body) to series on the run's clock.
pub fn parse_answer(status: u16, body: &str, wall: u64) -> Result<Vec<PromSeries>, String> {
    let data: Data = data_of(status, body)?;
    if data.result_type != "matrix" {
        return Err(format!(
            "the query returned a {}, not a range of values",
            data.result_type
        ));
    }
    Ok(data
        .result
        .into_iter()
        .map(|s| PromSeries {
            labels: s.metric,
            points: s
                .values
                .into_iter()
                .filter_map(|(t, v)| {
                    let v = parse_value(&v)?;
                    Some([t * 1000.0 - wall as f64, v])
                })
                .collect(),
        })
        .collect())
}

/// A probe's sample: an instant query (`/api/v1/query`, at the server's now) whose every
/// value must be within the bound; no value is a failed sample ("no data").
pub fn instant_check(p: &PromCheck, timeout: Duration) -> Result<String, String> {
    let (status, body) = get(
        &p.url,
        p.token_env.as_deref(),
        "/api/v1/query",
        &[
            ("query", p.query.clone()),
            ("timeout", format!("{}ms", timeout.as_millis().max(1))),
        ],
        timeout,
        16 << 20,
    )?;
    let values = parse_instant(status, &body)?;
    judge_instant(&values, p.at_most, p.at_least)
}

#[derive(Deserialize)]
struct InstantData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// A value with its series' labels.
type Labelled = (BTreeMap<String, String>, f64);

/// The values of an instant query's answer, with their series' labels (a scalar has none).
fn parse_instant(status: u16, body: &str) -> Result<Vec<Labelled>, String> {
    let data: InstantData = data_of(status, body)?;
    let value = |v: &serde_json::Value| v.get(1).and_then(|s| s.as_str()).and_then(parse_value);
    match data.result_type.as_str() {
        "scalar" => Ok(value(&data.result)
            .map(|v| vec![(BTreeMap::new(), v)])
            .unwrap_or_default()),
        "vector" => Ok(data
            .result
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| {
                let labels: BTreeMap<String, String> = s
                    .get("metric")
                    .cloned()
                    .and_then(|m| serde_json::from_value(m).ok())
                    .unwrap_or_default();
                Some((labels, value(s.get("value")?)?))
            })
            .collect()),
        other => Err(format!("the query returned a {other}, not values")),
    }
}

fn judge_instant(
    values: &[Labelled],
    at_most: Option<f64>,
    at_least: Option<f64>,
) -> Result<String, String> {
    if values.is_empty() {
        return Err("no data (the query returned no value)".into());
    }
    let out = |v: f64| at_most.is_some_and(|b| v > b) || at_least.is_some_and(|b| v < b);
    let shown = |l: &BTreeMap<String, String>| {
        let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{{{}}}", inner.join(", "))
    };
    let (op, bound) = match (at_most, at_least) {
        (Some(b), _) => ("≤", b),
        (None, Some(b)) => ("≥", b),
        (None, None) => ("", f64::NAN),
    };
    if let Some((l, v)) = values.iter().find(|(_, v)| out(*v)) {
        return Err(format!("{v} in {} is not {op} {bound}", shown(l)));
    }
    let list: Vec<String> = values.iter().take(3).map(|(_, v)| v.to_string()).collect();
    Ok(format!(
        "{}{} {op} {bound}",
        list.join(", "),
        if values.len() > 3 { ", …" } else { "" }
    ))
}

/// A sample value as Prometheus writes it (`"0.5"`, `"+Inf"`, `"-Inf"`); `NaN` is none.
fn parse_value(v: &str) -> Option<f64> {
    let x = match v {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => v.parse::<f64>().ok()?,
    };
    (!x.is_nan()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::{judge_instant, parse_answer, parse_instant};

    #[test]
    fn an_instant_answer_passes_only_with_values_all_within_the_bound() {
        let v = parse_instant(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"job":"a"},"value":[1.5,"0.5"]},{"metric":{"job":"b"},"value":[1.5,"2"]}]}}"#,
        )
        .expect("parsed");
        assert_eq!(v.len(), 2);
        assert!(judge_instant(&v, Some(2.0), None).is_ok());
        let e = judge_instant(&v, Some(1.0), None).expect_err("2 > 1");
        assert!(e.contains(r#"job="b""#), "{e}");
        assert!(judge_instant(&v, None, Some(1.0)).is_err());
        let none = parse_instant(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .expect("parsed");
        assert!(judge_instant(&none, Some(1.0), None)
            .expect_err("empty")
            .contains("no data"));
        let nan = parse_instant(
            200,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"NaN"]}}"#,
        )
        .expect("parsed");
        assert!(nan.is_empty(), "NaN is no data");
    }

    #[test]
    fn answers_become_points_on_the_run_clock_and_errors_say_what_the_server_said() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"job":"web"},"values":[[1000.5,"0.25"],[1001.5,"NaN"],[1002.5,"+Inf"]]}]}}"#;
        let s = parse_answer(200, body, 1_000_000).expect("parsed");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].labels["job"], "web");
        assert_eq!(s[0].points, vec![[500.0, 0.25], [2500.0, f64::INFINITY]]);
        let e = parse_answer(
            400,
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#,
            0,
        )
        .expect_err("refused");
        assert!(e.contains("bad_data") && e.contains("parse error"), "{e}");
        let e = parse_answer(502, "<html>Bad Gateway</html>", 0).expect_err("not prometheus");
        assert!(e.contains("HTTP 502") && e.contains("Bad Gateway"), "{e}");
        let e = parse_answer(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            0,
        )
        .expect_err("vector");
        assert!(e.contains("vector"), "{e}");
    }
}
