//! The engine's layering, read from its source: no import circle among `src/` files, and
//! the model, the record and the verdict layer never reach into the parts that act on the
//! system (the fault engine, the runner, the lab, probes, workloads, ptrace). A test that
//! fails here names the file and the import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["fault", "data"]`) → source file, for every file under `src/` but the
/// crate roots.
fn modules(root: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(root).expect("under src").with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if parts == ["lib"] || parts == ["main"] {
            continue;
        }
        out.insert(parts, f);
    }
    out
}

/// The source without comments and without `#[cfg(test)]` modules (tests may reach
/// anywhere).
fn code(src: &str) -> String {
    let src = match src.find("#[cfg(test)]") {
        Some(i) => &src[..i],
        None => src,
    };
    src.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal (a URL) is rare in paths we look at; the
            // imports we look for never follow one on the same line.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path a file names through `crate::` or `super::`, resolved to the longest
/// known module.
fn imports(
    me: &[String],
    src: &str,
    known: &BTreeMap<Vec<String>, PathBuf>,
) -> BTreeSet<Vec<String>> {
    let resolve = |path: Vec<String>| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|i| path[..i].to_vec())
            .find(|p| known.contains_key(p))
    };
    let mut out = BTreeSet::new();
    let text = code(src);
    let bytes = text.as_bytes();
    let word = |i: usize| i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    for (kw, base) in [
        ("crate::", Vec::new()),
        // `super` of `a/b.rs` is `a`; of `a/mod.rs` (module `a`) it is the crate root:
        // one level up from the module either way.
        ("super::", me[..me.len().saturating_sub(1)].to_vec()),
    ] {
        let mut from = 0;
        while let Some(pos) = text[from..].find(kw) {
            let at = from + pos;
            from = at + kw.len();
            if !word(at) {
                continue;
            }
            let rest = &text[from..];
            // `crate::{a, b::c}` groups.
            let groups: Vec<String> = if let Some(inner) = rest.strip_prefix('{') {
                let end = inner.find('}').unwrap_or(inner.len());
                inner[..end]
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                vec![rest[..end].to_string()]
            };
            for g in groups {
                let mut path = base.clone();
                path.extend(
                    g.split("::")
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
                if let Some(m) = resolve(path) {
                    if m != me {
                        out.insert(m);
                    }
                }
            }
        }
    }
    out
}

fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&root);
    known
        .iter()
        .map(|(m, f)| {
            let src = std::fs::read_to_string(f).expect("read source");
            (m.clone(), imports(m, &src, &known))
        })
        .collect()
}

fn name(m: &[String]) -> String {
    m.join("/")
}

#[test]
fn no_import_circle_among_engine_files() {
    let g = graph();
    // Tarjan's strongly connected components.
    struct T<'a> {
        g: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        idx: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        next: usize,
        circles: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a Vec<String>) {
            self.idx.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let Some((w, _)) = self.g.get_key_value(w) else {
                    continue;
                };
                if !self.idx.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.idx[w]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.idx[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    scc.push(name(w));
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.circles.push(scc);
                }
            }
        }
    }
    let mut t = T {
        g: &g,
        idx: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        circles: Vec::new(),
    };
    for v in g.keys() {
        if !t.idx.contains_key(v) {
            t.visit(v);
        }
    }
    assert!(
        t.circles.is_empty(),
        "files that import each other (directly or round a circle): {:?}",
        t.circles
    );
    assert!(
        g.len() > 40,
        "the source tree was not read ({} files)",
        g.len()
    );
}

#[test]
fn model_record_and_verdicts_do_not_reach_into_the_engine() {
    let g = graph();
    let lower = ["model", "record", "verdict", "plan", "output"];
    let engine = [
        "fault", "runner", "lab", "probe", "workload", "ptrace", "journal", "target", "roles",
        "watch", "sys", "netq", "bgp", "dns", "cgroup", "procfs", "html", "report", "trials",
        "prom", "annotate", "live",
    ];
    let mut bad = Vec::new();
    for (m, deps) in &g {
        if !lower.contains(&m[0].as_str()) {
            continue;
        }
        for d in deps {
            if engine.contains(&d[0].as_str()) {
                bad.push(format!("{} imports {}", name(m), name(d)));
            }
        }
    }
    assert!(bad.is_empty(), "layering broken: {bad:?}");
    // The checker must see real edges, or this test could not fail.
    assert!(g[&vec!["verdict".to_string()]].contains(&vec!["record".to_string()]));
}

#[test]
fn engine_files_use_the_layer_paths_not_the_compatibility_aliases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for (m, f) in modules(&root) {
        let text = code(&std::fs::read_to_string(&f).expect("read"));
        for alias in [
            "crate::timeline",
            "crate::claims",
            "crate::history",
            "crate::load",
        ] {
            if text.match_indices(alias).any(|(i, _)| {
                !text[i + alias.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
            }) {
                bad.push(format!("{} uses {alias}", name(&m)));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
}
