//! Diagnostics: a problem found in an experiment file and the field path it is about
//! (`spec.faults[0].target`). Shared by parsing ([`super::parse`]) and semantic validation
//! ([`super::validate`]), so neither has to import the other.

use std::fmt;

/// One segment of a field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path such as `spec.faults[0].target`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }
    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        FieldPath(v)
    }
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        FieldPath(v)
    }
    /// Parse the display form (`spec.faults[0].target`).
    pub fn parse(s: &str) -> Self {
        let mut segs = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(b) = rest.find('[') {
                if b > 0 {
                    segs.push(Seg::Key(rest[..b].to_string()));
                }
                rest = &rest[b..];
                while let Some(stripped) = rest.strip_prefix('[') {
                    let Some(end) = stripped.find(']') else { break };
                    if let Ok(i) = stripped[..end].parse() {
                        segs.push(Seg::Index(i));
                    }
                    rest = &stripped[end + 1..];
                }
            } else {
                segs.push(Seg::Key(rest.to_string()));
            }
        }
        FieldPath(segs)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "(document)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A problem with an experiment file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub path: FieldPath,
    pub message: String,
    /// 1-based line and column of the offending node, when known.
    pub location: Option<(usize, usize)>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((l, c)) => write!(f, "{}:{}: {}: {}", l, c, self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_display_and_parse() {
        let p = FieldPath::root()
            .key("spec")
            .key("faults")
            .index(2)
            .key("target");
        assert_eq!(p.to_string(), "spec.faults[2].target");
        assert_eq!(FieldPath::parse("spec.faults[2].target"), p);
    }
}

/// `; did you mean `x`?` when one of `candidates` is close to `word` (a misspelt key or
/// name), else nothing.
pub fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    let best = candidates
        .iter()
        .filter(|c| **c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (word.len().max(c.len()) / 3).max(1))
        .min();
    match best {
        Some((_, c)) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod suggest_tests {
    use super::did_you_mean;

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(
            did_you_mean("worklods", &["workloads", "watches"]),
            "; did you mean `workloads`?"
        );
        assert_eq!(did_you_mean("r1", &["r2", "db"]), "; did you mean `r2`?");
        assert_eq!(did_you_mean("zzzz", &["workloads"]), "");
    }
}
