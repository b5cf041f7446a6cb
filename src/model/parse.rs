//! Parsing an experiment file into [`Experiment`] with errors that name the field path and,
//! where the source is known, the line and column.
//!
//! Pipeline: YAML text → generic value (syntax errors carry a location) → unknown-key check
//! against the schema derived from the types (every unknown key is reported, not only the
//! first) → typed value (type errors carry a path) → semantic validation ([`super::validate`]).

pub use super::diag::{Diagnostic, FieldPath, Seg};
use super::spec::Experiment;
use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Parser};
use std::collections::HashMap;

/// Locations of every node in a YAML document, by field path. Mapping entries point at
/// their key, so "unknown field" and "wrong value" both land on the right line.
pub struct SourceMap {
    map: HashMap<FieldPath, (usize, usize)>,
}

enum Frame {
    Map {
        key: Option<String>,
        expect_key: bool,
    },
    Seq {
        next: usize,
    },
}

impl SourceMap {
    pub fn build(src: &str) -> Self {
        let mut map = HashMap::new();
        let mut stack: Vec<(FieldPath, Frame)> = Vec::new();
        for item in Parser::new_from_str(src) {
            let Ok((event, span)) = item else { break };
            let pos = (span.start.line(), span.start.col() + 1);
            let is_node = matches!(
                event,
                Event::Scalar(..)
                    | Event::SequenceStart(..)
                    | Event::MappingStart(..)
                    | Event::Alias(..)
            );
            if !is_node {
                if matches!(event, Event::SequenceEnd | Event::MappingEnd) {
                    stack.pop();
                }
                continue;
            }
            // Work out this node's path from the enclosing frame.
            let path = match stack.last_mut() {
                None => FieldPath::root(),
                Some((parent, Frame::Seq { next })) => {
                    let p = parent.index(*next);
                    *next += 1;
                    p
                }
                Some((parent, Frame::Map { key, expect_key })) => {
                    if *expect_key {
                        *expect_key = false;
                        let name = match &event {
                            Event::Scalar(v, ..) => v.to_string(),
                            _ => String::new(),
                        };
                        let p = parent.key(&name);
                        map.entry(p).or_insert(pos);
                        *key = Some(name);
                        continue;
                    }
                    *expect_key = true;
                    parent.key(key.as_deref().unwrap_or(""))
                }
            };
            map.entry(path.clone()).or_insert(pos);
            match event {
                Event::MappingStart(..) => stack.push((
                    path,
                    Frame::Map {
                        key: None,
                        expect_key: true,
                    },
                )),
                Event::SequenceStart(..) => stack.push((path, Frame::Seq { next: 0 })),
                _ => {}
            }
        }
        SourceMap { map }
    }

    /// Location of the path, or of its nearest ancestor that has one.
    pub fn locate(&self, path: &FieldPath) -> Option<(usize, usize)> {
        let mut segs = path.0.clone();
        loop {
            if let Some(l) = self.map.get(&FieldPath(segs.clone())) {
                return Some(*l);
            }
            segs.pop()?;
        }
    }
}

/// Parse and validate an experiment from YAML text. Returns every problem found.
pub fn parse_experiment(src: &str) -> Result<Experiment, Vec<Diagnostic>> {
    let value: Value = match serde_saphyr::from_str(src) {
        Ok(v) => v,
        Err(e) => {
            let location = e
                .location()
                .map(|l| (l.line() as usize, l.column() as usize));
            let msg = e.without_snippet().to_string();
            return Err(vec![Diagnostic {
                path: FieldPath::root(),
                message: format!("not valid YAML: {}", first_line(&msg)),
                location,
            }]);
        }
    };
    let sources = SourceMap::build(src);
    let mut value = value;
    let mut diags = unknown_keys(&value);
    // Every problem at once: unknown keys and values of the wrong type are set aside (each
    // reported), and what is left is read and checked by the semantic rules too — unless
    // something could not be set aside, when the rules would only guess.
    let mut pruned: Vec<FieldPath> = diags.iter().map(|d| d.path.clone()).collect();
    for p in &pruned {
        remove_at(&mut value, p);
    }
    let mut typed = None;
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, Experiment>(value.clone()) {
            Ok(exp) => {
                typed = Some(exp);
                break;
            }
            Err(e) => {
                let path = FieldPath::parse(&e.path().to_string());
                let message = e.into_inner().to_string();
                let again = pruned.contains(&path);
                // `missing field x` right after `unknown field y; did you mean x` says the
                // same thing twice.
                let said = message
                    .strip_prefix("missing field ")
                    .map(|f| format!("did you mean {f}"))
                    .is_some_and(|hint| {
                        diags.iter().any(|d| {
                            d.path.0.len() == path.0.len() + 1
                                && d.path.0.starts_with(&path.0)
                                && d.message.contains(&hint)
                        })
                    });
                if !said {
                    diags.push(Diagnostic {
                        path: path.clone(),
                        message,
                        location: None,
                    });
                }
                if again || !remove_at(&mut value, &path) {
                    break;
                }
                pruned.push(path);
            }
        }
    }
    if let Some(exp) = typed {
        let rules = super::validate::validate(&exp);
        if diags.is_empty() && rules.is_empty() {
            return Ok(exp);
        }
        // A rule about something set aside, inside it, or about the item that held it
        // (`needs exactly one check`, once the misspelt one is gone) would only repeat it.
        diags.extend(rules.into_iter().filter(|d| {
            !pruned.iter().any(|p| {
                d.path.0.starts_with(&p.0) || (d.path.0.len() >= 3 && p.0.starts_with(&d.path.0))
            })
        }));
    }
    for d in &mut diags {
        if d.location.is_none() {
            d.location = sources.locate(&d.path);
        }
    }
    // In file order; problems without a place first, as they were found.
    diags.sort_by_key(|d| d.location.unwrap_or((0, 0)));
    diags.dedup_by(|a, b| a.path == b.path && a.message == b.message);
    Err(diags)
}

/// Remove the node at `path` (a key of an object) so the rest can be read. Items of a
/// list are never removed (the indices after them would move): `false` then.
fn remove_at(value: &mut Value, path: &FieldPath) -> bool {
    let Some((last, parent)) = path.0.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parent {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => m.remove(k).is_some(),
        _ => false,
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Report every key that the schema does not allow at its place.
fn unknown_keys(value: &Value) -> Vec<Diagnostic> {
    let schema = schemars::schema_for!(Experiment);
    let root = schema.as_value().clone();
    let mut out = Vec::new();
    walk(value, &root, &root, &FieldPath::root(), &mut out);
    out
}

fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or("");
        if let Some(target) = root.get("$defs").and_then(|d| d.get(name)) {
            return resolve(target, root);
        }
    }
    schema
}

/// All subschemas that together describe an object (allOf / oneOf / anyOf merged).
fn collect<'a>(schema: &'a Value, root: &'a Value, acc: &mut Vec<&'a Value>) {
    let s = resolve(schema, root);
    acc.push(s);
    for k in ["allOf", "oneOf", "anyOf"] {
        if let Some(arr) = s.get(k).and_then(Value::as_array) {
            for sub in arr {
                collect(sub, root, acc);
            }
        }
    }
}

fn walk(value: &Value, schema: &Value, root: &Value, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    let mut parts = Vec::new();
    collect(schema, root, &mut parts);
    match value {
        Value::Object(map) => {
            let mut props: Vec<(&String, &Value)> = Vec::new();
            let mut additional: Option<&Value> = None;
            let mut is_object_schema = false;
            for p in &parts {
                if let Some(o) = p.get("properties").and_then(Value::as_object) {
                    is_object_schema = true;
                    props.extend(o.iter());
                }
                if let Some(a) = p.get("additionalProperties") {
                    if a.is_object() {
                        additional = Some(a);
                    }
                }
            }
            for (k, v) in map {
                let child = path.key(k);
                if let Some((_, s)) = props.iter().find(|(name, _)| *name == k) {
                    walk(v, s, root, &child, out);
                } else if let Some(a) = additional {
                    walk(v, a, root, &child, out);
                } else if is_object_schema {
                    let mut known: Vec<&str> = props.iter().map(|(n, _)| n.as_str()).collect();
                    known.sort_unstable();
                    known.dedup();
                    let hint = super::diag::did_you_mean(k, &known);
                    let message = if hint.is_empty() {
                        format!("unknown field `{k}`; expected one of: {}", known.join(", "))
                    } else {
                        format!("unknown field `{k}`{hint}")
                    };
                    out.push(Diagnostic {
                        path: child,
                        message,
                        location: None,
                    });
                }
            }
        }
        Value::Array(items) => {
            for p in &parts {
                if let Some(item_schema) = p.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        walk(v, item_schema, root, &path.index(i), out);
                    }
                    break;
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_map_points_at_keys_and_items() {
        let src = "a: 1\nspec:\n  faults:\n    - name: x\n      target: y\n";
        let m = SourceMap::build(src);
        assert_eq!(
            m.locate(&FieldPath::parse("spec.faults[0].target")),
            Some((5, 7))
        );
        assert_eq!(m.locate(&FieldPath::parse("spec.faults[0]")), Some((4, 7)));
        assert_eq!(
            m.locate(&FieldPath::parse("spec.faults[0].nothere")),
            Some((4, 7))
        );
    }
}
