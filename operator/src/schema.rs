//! The API server only accepts *structural* schemas for a CRD: every node has a `type`,
//! `oneOf`/`anyOf`/`allOf` may only validate (never declare properties), no JSON-Schema
//! `const` or type lists, no `properties` beside `additionalProperties`. schemars writes
//! richer JSON Schema (tagged enums as `oneOf` of objects, `Option` as `[T, "null"]`), so
//! [`make_structural`] rewrites the generated schema and [`violations`] checks the result.
//! What the rewrite drops (which variant's fields go together) is still enforced: the
//! controller validates every Experiment with the engine's own validator before acting.

use serde_json::{Map, Value};

/// Rewrite every version's `openAPIV3Schema` of a CRD (JSON) into a structural schema.
pub fn make_structural(crd: &mut Value) {
    if let Some(versions) = crd
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for v in versions {
            if let Some(s) = v.pointer_mut("/schema/openAPIV3Schema") {
                fix(s);
            }
        }
    }
}

fn merge_props(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        match into.get_mut(k) {
            None => {
                into.insert(k.clone(), v.clone());
            }
            Some(existing) => {
                // The same field in two variants: keep the union of what each allows. A
                // bound one variant sets and another does not share is dropped (the
                // engine's validator, which knows the kind, still applies it): a
                // `network-bandwidth` rate is no `memory-leak` byte rate.
                for k in [
                    "pattern",
                    "format",
                    "minimum",
                    "maximum",
                    "minLength",
                    "maxLength",
                ] {
                    if existing.get(k).is_some() && existing.get(k) != v.get(k) {
                        if let Some(o) = existing.as_object_mut() {
                            o.remove(k);
                        }
                    }
                }
                if existing.get("type") != v.get("type") {
                    if let Some(o) = existing.as_object_mut() {
                        for k in [
                            "type",
                            "properties",
                            "items",
                            "enum",
                            "required",
                            "nullable",
                        ] {
                            o.remove(k);
                        }
                        o.insert(
                            "x-kubernetes-preserve-unknown-fields".into(),
                            Value::Bool(true),
                        );
                    }
                    continue;
                }
                if let (Some(a), Some(b)) = (
                    existing.get("enum").and_then(Value::as_array).cloned(),
                    v.get("enum").and_then(Value::as_array),
                ) {
                    let mut all = a;
                    for x in b {
                        if !all.contains(x) {
                            all.push(x.clone());
                        }
                    }
                    existing["enum"] = Value::Array(all);
                }
            }
        }
    }
}

fn fix(node: &mut Value) {
    let Some(obj) = node.as_object_mut() else {
        return;
    };
    // No server-side defaults: the API server would store them on every object (a
    // `filter: {}` on every fault kind, which all but the packet faults reject), and the
    // engine applies its own defaults when it reads a spec.
    obj.remove("default");
    // `Option<T>`: ["T", "null"] → T, nullable.
    if let Some(types) = obj.get("type").and_then(Value::as_array).cloned() {
        let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
        if real.len() == 1 {
            obj.insert("type".into(), real[0].clone());
        }
        if types.iter().any(|t| t == "null") {
            obj.insert("nullable".into(), Value::Bool(true));
        }
    }
    if let Some(c) = obj.remove("const") {
        obj.insert("enum".into(), Value::Array(vec![c]));
    }
    let mut rules: Vec<Value> = Vec::new();
    if let Some(Value::Array(fields)) = obj.remove(EXACTLY_ONE) {
        let names: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
        rules.push(exactly_one(obj, &names));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        let Some(Value::Array(mut branches)) = obj.remove(key) else {
            continue;
        };
        for b in &mut branches {
            fix(b);
        }
        if let Some(tagged) = Tagged::of(&branches) {
            rules.extend(tagged.rules(obj));
            tagged.describe(&mut branches);
        }
        let mut enums: Vec<Value> = Vec::new();
        // A value that may be a name or an object (`from: ca`, `from: {netns: n1}`): the
        // API server's CEL rules only see fields with a type (a property without one is
        // "undefined" to `has()`, found on the real node), so the name's type is kept —
        // these are local-only fields, refused on a cluster by a CEL rule (a name) or by
        // the type (an object), either way naming the field.
        let mut kinds: Vec<&str> = branches
            .iter()
            .filter_map(|b| {
                b.get("type")
                    .and_then(Value::as_str)
                    .or_else(|| b.get("properties").map(|_| "object"))
            })
            .filter(|t| *t != "null")
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        if kinds.len() > 1 {
            for k in [
                "type",
                "properties",
                "items",
                "enum",
                "pattern",
                "format",
                "additionalProperties",
                "required",
            ] {
                obj.remove(k);
            }
            if kinds.contains(&"string") {
                obj.insert("type".into(), "string".into());
            } else {
                obj.insert(
                    "x-kubernetes-preserve-unknown-fields".into(),
                    Value::Bool(true),
                );
            }
            continue;
        }
        for b in branches {
            if b.get("nullable") == Some(&Value::Bool(true))
                || b.get("type").and_then(Value::as_str) == Some("null")
            {
                obj.insert("nullable".into(), Value::Bool(true));
            }
            if let Some(props) = b.get("properties").and_then(Value::as_object) {
                let into = obj
                    .entry("properties")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(into) = into.as_object_mut() {
                    merge_props(into, props);
                }
                obj.entry("type").or_insert_with(|| "object".into());
            }
            if let Some(e) = b.get("enum").and_then(Value::as_array) {
                enums.extend(e.iter().cloned());
            }
            if let Some(t) = b.get("type").filter(|t| *t != "null") {
                obj.entry("type").or_insert_with(|| t.clone());
            }
            for k in [
                "pattern",
                "format",
                "description",
                "additionalProperties",
                "items",
            ] {
                if let Some(x) = b.get(k) {
                    obj.entry(k).or_insert_with(|| x.clone());
                }
            }
        }
        if enums.iter().all(Value::is_null) {
            // Only the `null` of an optional value: no enumeration at all.
            enums.clear();
        }
        if !enums.is_empty() && !obj.contains_key("properties") {
            obj.insert("enum".into(), Value::Array(enums));
        }
    }
    if obj.get("type").and_then(Value::as_str) == Some("null") {
        obj.remove("type");
    }
    if !rules.is_empty() {
        let list = obj
            .entry("x-kubernetes-validations")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(l) = list.as_array_mut() {
            l.extend(rules);
        }
    }
    // Variants' `required` lists would make every variant's fields mandatory: drop the
    // ones that name properties not every variant has (the validator checks them).
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        obj.remove("additionalProperties");
    }
    if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
        obj.remove("additionalProperties");
    }
    if !obj.contains_key("type") {
        if obj.contains_key("properties") {
            obj.insert("type".into(), "object".into());
        } else if obj.contains_key("items") {
            obj.insert("type".into(), "array".into());
        } else if !obj.contains_key("x-kubernetes-preserve-unknown-fields")
            && !obj.contains_key("x-kubernetes-int-or-string")
        {
            obj.insert(
                "x-kubernetes-preserve-unknown-fields".into(),
                Value::Bool(true),
            );
        }
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for v in props.values_mut() {
            fix(v);
        }
    }
    if let Some(items) = obj.get_mut("items") {
        fix(items);
    }
    if let Some(ap) = obj.get_mut("additionalProperties") {
        if ap.is_object() {
            fix(ap);
        }
    }
    // `required` may only name declared properties.
    let declared: Vec<String> = obj
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(Value::Array(req)) = obj.get_mut("required") {
        req.retain(|r| r.as_str().is_some_and(|r| declared.iter().any(|d| d == r)));
    }
}

/// The schema extension a type sets (`#[schemars(extend(...))]`) for "exactly one of these
/// fields", the rule the engine's validator applies: it becomes a CEL rule.
pub const EXACTLY_ONE: &str = "x-murphy-exactly-one";

/// `` `a`, `b` or `c` ``, as the engine's validator words a choice.
fn choice(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match q.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// The CEL rule "exactly one of `names` is set" on an object (a list counts when it has
/// items, as the engine counts it).
fn exactly_one(obj: &Map<String, Value>, names: &[&str]) -> Value {
    let props = obj.get("properties").and_then(Value::as_object);
    let set: Vec<String> = names
        .iter()
        .map(|n| {
            let list = props
                .and_then(|p| p.get(*n))
                .and_then(|p| p.get("type"))
                .is_some_and(|t| t == "array");
            if list {
                format!("(has(self.{n}) && size(self.{n}) > 0)")
            } else {
                format!("has(self.{n})")
            }
        })
        .collect();
    serde_json::json!({
        "rule": format!("[{}].exists_one(x, x)", set.join(", ")),
        "message": format!("needs exactly one of {}", choice(names)),
        "reason": "FieldValueInvalid",
    })
}

/// An internally tagged union (serde's `#[serde(tag = "...")]`): every branch an object
/// whose tag property has exactly one value. Its branches merge into one object, so which
/// fields go with which tag is kept as CEL rules.
struct Tagged {
    tag: String,
    /// Each branch's tag value, its description, and its fields (without the tag).
    variants: Vec<(String, Option<String>, Vec<String>)>,
}

impl Tagged {
    fn of(branches: &[Value]) -> Option<Tagged> {
        let props = |b: &Value| b.get("properties").and_then(Value::as_object).cloned();
        let first = props(branches.first()?)?;
        let single = |p: &Value| -> Option<String> {
            match p.get("enum").and_then(Value::as_array) {
                Some(e) if e.len() == 1 => e[0].as_str().map(str::to_string),
                _ => None,
            }
        };
        let tag = first.iter().find_map(|(k, v)| {
            let all = branches
                .iter()
                .all(|b| props(b).and_then(|p| p.get(k).and_then(single)).is_some());
            (single(v).is_some() && all).then(|| k.clone())
        })?;
        let variants = branches
            .iter()
            .map(|b| {
                let p = props(b).unwrap_or_default();
                let value = p.get(&tag).and_then(single).unwrap_or_default();
                let fields = p.keys().filter(|k| **k != tag).cloned().collect();
                let description = b
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                (value, description, fields)
            })
            .collect();
        Some(Tagged { tag, variants })
    }

    /// For each field only some variants have: it may be set only with their tags. (Fields
    /// of the enclosing object are every variant's.)
    fn rules(&self, obj: &Map<String, Value>) -> Vec<Value> {
        let common: Vec<String> = obj
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let mut fields: Vec<&String> = self.variants.iter().flat_map(|v| &v.2).collect();
        fields.sort();
        fields.dedup();
        let tag = &self.tag;
        fields
            .into_iter()
            .filter(|f| !common.contains(f))
            .filter_map(|f| {
                let owners: Vec<&str> = self
                    .variants
                    .iter()
                    .filter(|v| v.2.contains(f))
                    .map(|v| v.0.as_str())
                    .collect();
                if owners.len() == self.variants.len() {
                    return None;
                }
                let list: Vec<String> = owners.iter().map(|o| format!("'{o}'")).collect();
                Some(serde_json::json!({
                    "rule": format!("!has(self.{f}) || self.{tag} in [{}]", list.join(", ")),
                    "message": format!("`{f}` is a field of {tag} {} only", owners.join(", ")),
                    "reason": "FieldValueForbidden",
                }))
            })
            .collect()
    }

    /// Say in each field's description which variants it belongs to, and in the tag's, what
    /// each value is (`kubectl explain` shows these).
    fn describe(&self, branches: &mut [Value]) {
        let tag_doc: Vec<String> = self
            .variants
            .iter()
            .map(|(v, d, _)| match d {
                Some(d) => format!("`{v}`: {d}"),
                None => format!("`{v}`"),
            })
            .collect();
        for b in branches.iter_mut() {
            let Some(props) = b.get_mut("properties").and_then(Value::as_object_mut) else {
                continue;
            };
            for (name, p) in props.iter_mut() {
                if *name == self.tag {
                    p["description"] = Value::String(format!("One of: {}", tag_doc.join(" ")));
                    continue;
                }
                let owners: Vec<&str> = self
                    .variants
                    .iter()
                    .filter(|v| v.2.contains(name))
                    .map(|v| v.0.as_str())
                    .collect();
                if owners.len() == self.variants.len() {
                    continue;
                }
                let own = p.get("description").and_then(Value::as_str).unwrap_or("");
                p["description"] = Value::String(
                    format!("({} only) {own}", owners.join(", "))
                        .trim_end()
                        .to_string(),
                );
            }
        }
    }
}

/// Every place where a CRD's schemas are not structural, as `path: problem`.
pub fn violations(crd: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) {
        for (i, v) in versions.iter().enumerate() {
            match v.pointer("/schema/openAPIV3Schema") {
                Some(s) => check(s, &format!("versions[{i}]"), &mut out),
                None => out.push(format!("versions[{i}]: no openAPIV3Schema")),
            }
        }
    }
    out
}

fn check(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        out.push(format!("{path}: not an object"));
        return;
    };
    let escape = obj.contains_key("x-kubernetes-preserve-unknown-fields")
        || obj.contains_key("x-kubernetes-int-or-string");
    match obj.get("type") {
        Some(Value::String(_)) => {}
        Some(_) => out.push(format!("{path}: type must be one string")),
        None if escape => {}
        None => out.push(format!("{path}: no type")),
    }
    for k in ["const", "$ref", "definitions", "$defs"] {
        if obj.contains_key(k) {
            out.push(format!("{path}: {k} is not allowed"));
        }
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(bs)) = obj.get(k) {
            if bs
                .iter()
                .any(|b| b.get("properties").is_some() || b.get("type").is_some())
            {
                out.push(format!(
                    "{path}: {k} may only validate, not declare types or properties"
                ));
            }
        }
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!("{path}: properties beside additionalProperties"));
    }
    if let Some(Value::Object(props)) = obj.get("properties") {
        for (k, v) in props {
            check(v, &format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = obj.get("items") {
        check(items, &format!("{path}[]"), out);
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|a| a.is_object()) {
        check(ap, &format!("{path}.*"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(schema: Value) -> Value {
        json!({"spec": {"versions": [{"schema": {"openAPIV3Schema": schema}}]}})
    }

    #[test]
    fn tagged_enums_become_one_object_and_options_nullable() {
        let mut c = crd(json!({
            "type": "object",
            "properties": {
                "name": {"type": ["string", "null"]},
                "fault": {"oneOf": [
                    {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind", "x"]},
                    {"type": "object", "properties": {"kind": {"const": "b"}, "y": {"type": "string"}}, "required": ["kind"]}
                ]}
            }
        }));
        assert!(!violations(&c).is_empty());
        make_structural(&mut c);
        assert_eq!(violations(&c), Vec::<String>::new(), "{c:#}");
        let f = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["fault"];
        assert_eq!(f["type"], "object");
        assert_eq!(f["properties"]["kind"]["enum"], json!(["a", "b"]));
        assert!(f["properties"]["x"].is_object() && f["properties"]["y"].is_object());
        let n = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["name"];
        assert_eq!(
            (n["type"].clone(), n["nullable"].clone()),
            (json!("string"), json!(true))
        );
    }

    #[test]
    fn the_checker_names_what_is_wrong_and_where() {
        let c = crd(
            json!({"type": "object", "properties": {"a": {"properties": {}}, "b": {"type": "string", "const": "x"}}}),
        );
        let v = violations(&c);
        assert!(v.iter().any(|x| x == "versions[0].a: no type"), "{v:?}");
        assert!(
            v.iter().any(|x| x == "versions[0].b: const is not allowed"),
            "{v:?}"
        );
    }
}
