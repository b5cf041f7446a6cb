//! Fuzzing the parser and validator (proptest): every experiment of the gallery, mutated
//! — in its text (bytes cut, inserted, lines doubled or swapped) and in its structure (a
//! node replaced by a value of another type or an edge case, a key dropped, a key added)
//! — must come back as an experiment or as diagnostics, never a panic or a hang, and:
//!
//! - the same input gives the same answer;
//! - every diagnostic has a message;
//! - an added unknown key is always refused, by its path;
//! - what is accepted is planned for both doors without a panic, and survives a round trip
//!   (serialized as Murphy would store it, it parses back to the same experiment).
//!
//! `PROPTEST_CASES` raises the number of cases (default 256 per property).

use murphy::model::{parse_experiment, Experiment};
use proptest::prelude::*;
use serde_json::Value;

fn gallery() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("experiments/")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).expect("read"),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10, "the gallery is the fuzzer's seed corpus");
    out.into_iter().map(|(_, t)| t).collect()
}

/// Parse, and check what must hold of any answer.
fn check(src: &str) -> Result<Experiment, Vec<String>> {
    let first = parse_experiment(src);
    let again = parse_experiment(src);
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the same input parsed twice differs"),
        (Err(a), Err(b)) => {
            let (a, b): (Vec<String>, Vec<String>) = (
                a.iter().map(ToString::to_string).collect(),
                b.iter().map(ToString::to_string).collect(),
            );
            assert_eq!(a, b, "the same input gave different diagnostics");
        }
        _ => panic!("the same input was accepted once and refused once"),
    }
    match first {
        Ok(exp) => {
            for door in [murphy::plan::Door::Local, murphy::plan::Door::Cluster] {
                let _ = murphy::plan::unsupported(&exp.spec, door);
            }
            let _ = murphy::plan::Plan::new(&exp.spec);
            // What Murphy stores (the operator keeps specs as JSON) reads back the same.
            let json = serde_json::to_string(&exp).expect("serialize");
            match parse_experiment(&json) {
                Ok(back) => assert_eq!(back, exp, "the round trip changed the experiment"),
                Err(d) => panic!(
                    "an accepted experiment, serialized, is refused: {:?}",
                    d.iter().map(ToString::to_string).collect::<Vec<_>>()
                ),
            }
            Ok(exp)
        }
        Err(diags) => {
            assert!(!diags.is_empty(), "refused without a diagnostic");
            for d in &diags {
                assert!(
                    !d.message.trim().is_empty(),
                    "a diagnostic without a message"
                );
            }
            Err(diags.iter().map(ToString::to_string).collect())
        }
    }
}

fn yaml_value(src: &str) -> Value {
    serde_saphyr::from_str(src).expect("gallery YAML")
}

/// Every node of a value, by its path of keys and indices.
fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                here.push(Step::Key(k.clone()));
                paths(x, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                here.push(Step::Index(i));
                paths(x, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn node<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// Values the validator must take apart: wrong types, edge numbers, hostile strings.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(-1)),
        Just(Value::from(0)),
        prop::sample::select(vec![
            "",
            " ",
            "0",
            "-1s",
            "0s",
            "1e400",
            "99999999999999999999h",
            "101%",
            "-5%",
            "NaN",
            "1Mi",
            "1Zi/s",
            "/",
            "/proc/self/mem",
            "../../etc/passwd",
            "*",
            "/**",
            "a/../b",
            "10.0.0.0/33",
            "::1",
            "300.1.1.1",
            "{data}",
            "{target:x}:1",
            "{target:}:0",
            "$(id)",
            "`id`",
            "; rm -rf /",
            "\u{0}",
            "é",
            "\u{202e}",
            "SIGKILL",
            "SIGNOPE",
            "65536",
            "primary",
            "inProcess",
            "x".repeat(300).leak(),
        ])
        .prop_map(Value::from),
        "[ -~]{0,24}".prop_map(Value::from),
        Just(Value::Array(vec![])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([{"name": "x"}])),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    AddKey(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), odd_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => any::<usize>().prop_map(Mutation::Remove),
    ]
}

/// Apply a mutation; for an added key, the path it must be refused at.
fn apply(v: &mut Value, m: &Mutation) -> Option<String> {
    let mut all = Vec::new();
    paths(v, &mut Vec::new(), &mut all);
    match m {
        Mutation::Replace(i, x) => {
            let p = &all[i % all.len()];
            *node(v, p) = x.clone();
            None
        }
        Mutation::Remove(i) => {
            let p = &all[i % all.len()];
            if let Some((last, parent)) = p.split_last() {
                match (node(v, parent), last) {
                    (Value::Object(o), Step::Key(k)) => {
                        o.remove(k);
                    }
                    (Value::Array(a), Step::Index(j)) => {
                        a.remove(*j);
                    }
                    _ => {}
                }
            }
            None
        }
        Mutation::AddKey(i, k) => {
            let objects: Vec<&Vec<Step>> = all
                .iter()
                .filter(|p| matches!(node(&mut v.clone(), p), Value::Object(_)))
                .collect();
            let p = objects[i % objects.len()].clone();
            let key = format!("zz{k}");
            match node(v, &p) {
                Value::Object(o) => {
                    o.insert(key.clone(), Value::from(1));
                }
                _ => unreachable!(),
            }
            Some(key)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Nodes replaced or removed anywhere in a gallery experiment.
    #[test]
    fn structural_mutations_are_diagnosed_never_crash(
        pick in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        let corpus = gallery();
        let mut v = yaml_value(pick.get::<String>(&corpus));
        for m in &muts {
            apply(&mut v, m);
        }
        // JSON is YAML: the mutated experiment as a file.
        let src = serde_json::to_string_pretty(&v).expect("json");
        let _ = check(&src);
    }

    /// A key added to any object of a gallery experiment is refused, and named.
    #[test]
    fn an_added_key_is_refused_by_name(
        pick in any::<prop::sample::Index>(),
        at in any::<usize>(),
        key in "[a-z][a-zA-Z]{0,12}",
    ) {
        let corpus = gallery();
        let mut v = yaml_value(pick.get::<String>(&corpus));
        let added = apply(&mut v, &Mutation::AddKey(at, key)).expect("a key");
        let src = serde_json::to_string_pretty(&v).expect("json");
        match check(&src) {
            Ok(_) => prop_assert!(false, "the added key {added} was accepted"),
            Err(diags) => prop_assert!(
                diags.iter().any(|d| d.contains(added.as_str())),
                "the added key {added} is not named in {diags:?}"
            ),
        }
    }

    /// Text mangled: a range cut, bytes inserted, a line doubled, two lines swapped.
    #[test]
    fn text_mutations_are_diagnosed_never_crash(
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        len in 0usize..40,
        bytes in prop::collection::vec(any::<u8>(), 0..16),
        how in 0u8..4,
        other in any::<prop::sample::Index>(),
    ) {
        let corpus = gallery();
        let src = pick.get::<String>(&corpus).as_bytes().to_vec();
        let i = at.index(src.len());
        let mutated: Vec<u8> = match how {
            0 => [&src[..i], &src[(i + len).min(src.len())..]].concat(),
            1 => [&src[..i], &bytes[..], &src[i..]].concat(),
            _ => {
                let text = String::from_utf8_lossy(&src).into_owned();
                let mut lines: Vec<&str> = text.lines().collect();
                let (a, b) = (at.index(lines.len()), other.index(lines.len()));
                if how == 2 {
                    let l = lines[a];
                    lines.insert(a, l);
                } else {
                    lines.swap(a, b);
                }
                lines.join("\n").into_bytes()
            }
        };
        let text = String::from_utf8_lossy(&mutated);
        let _ = check(&text);
    }
}

/// The gallery itself is accepted, round trip included (the fuzzer's seeds are valid).
#[test]
fn every_seed_is_accepted() {
    for src in gallery() {
        assert!(check(&src).is_ok());
    }
}
