//! Data faults: `data-wipe`, `data-corrupt`, `config-corrupt`.
//!
//! Paths are seen from the target's mount namespace (`/proc/<pid>/root` when it differs
//! from Murphy's). Before any byte changes, every file to be touched is copied into the
//! journal's data directory and a restore record (path, copy, mode, owner) is on disk, so
//! revert — or `murphy recover` after a crash — puts the exact original bytes back. A
//! guardrail caps how many bytes one fault may touch; over it, nothing is changed.
//!
//! The corruption generators are pure and seeded ([`corrupt`], [`edit_config`]).

use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::model::spec::{ConfigCorrupt, CorruptHow, DataCorrupt, DataWipe, WipeMode};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The filesystem root a member's paths are resolved against.
pub fn root_of(m: &Member) -> PathBuf {
    let Some(p) = m.procs.first() else {
        return PathBuf::from("/");
    };
    let mine = fs::metadata("/proc/self/ns/mnt").map(|m| m.ino()).ok();
    let theirs = fs::metadata(format!("/proc/{}/ns/mnt", p.pid))
        .map(|m| m.ino())
        .ok();
    if theirs.is_some() && theirs != mine {
        PathBuf::from(format!("/proc/{}/root", p.pid))
    } else {
        PathBuf::from("/")
    }
}

/// Expand an absolute pattern (`*` and `?` within components) under `root`.
pub fn expand(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut current = vec![root.to_path_buf()];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for dir in &current {
            if comp.contains(['*', '?']) {
                let Ok(rd) = fs::read_dir(dir) else { continue };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| crate::glob::wildcard(comp, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            } else {
                let p = dir.join(comp);
                if fs::symlink_metadata(&p).is_ok() {
                    next.push(p);
                }
            }
        }
        current = next;
    }
    current
}

/// A file or directory to be touched, in pre-order.
#[derive(Clone, Debug)]
struct Entry {
    path: PathBuf,
    dir: bool,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn walk(p: &Path, out: &mut Vec<Entry>) -> std::io::Result<()> {
    let m = fs::symlink_metadata(p)?;
    let e = Entry {
        path: p.to_path_buf(),
        dir: m.is_dir(),
        size: if m.is_file() { m.len() } else { 0 },
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
    };
    if m.is_dir() {
        out.push(e);
        let mut kids: Vec<PathBuf> = fs::read_dir(p)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        kids.sort();
        for k in kids {
            walk(&k, out)?;
        }
    } else if m.is_file() {
        out.push(e);
    }
    // Symlinks, sockets and devices are left alone.
    Ok(())
}

/// Resolve every pattern for every member; an unmatched pattern is an error.
fn resolve(
    members: &[Member],
    patterns: &[String],
) -> Result<(Vec<PathBuf>, Vec<Entry>), FaultError> {
    let mut tops = Vec::new();
    let mut entries = Vec::new();
    let roots: Vec<PathBuf> = if members.is_empty() {
        vec![PathBuf::from("/")]
    } else {
        let mut r: Vec<PathBuf> = members.iter().map(root_of).collect();
        r.dedup();
        r
    };
    for root in &roots {
        for pat in patterns {
            let found = expand(root, pat);
            if found.is_empty() {
                return Err(FaultError::Refused(format!(
                    "nothing matches {pat} (under {})",
                    root.display()
                )));
            }
            for f in found {
                if !tops.contains(&f) {
                    walk(&f, &mut entries)
                        .map_err(|e| FaultError::Failed(format!("reading {}: {e}", f.display())))?;
                    tops.push(f);
                }
            }
        }
    }
    Ok((tops, entries))
}

fn budget(entries: &[Entry], max: u64) -> Result<u64, FaultError> {
    let total: u64 = entries.iter().map(|e| e.size).sum();
    if total > max {
        return Err(FaultError::Refused(format!(
            "the files come to {total} bytes, more than guardrails.maxDataBytes ({max}); nothing was touched"
        )));
    }
    Ok(total)
}

/// Copy `e` into the journal's data directory (fsynced) and record how to restore it.
fn journal_copy(
    undo: &mut UndoLog<'_>,
    e: &Entry,
    n: usize,
    copy: bool,
    on_revert: bool,
) -> Result<Option<PathBuf>, FaultError> {
    if e.dir {
        undo.record(UndoAction::RestoreDir {
            path: e.path.clone(),
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            on_revert,
        })?;
        return Ok(None);
    }
    let backup = if copy {
        let dir = undo.copy_dir();
        fs::create_dir_all(&dir)?;
        let b = dir.join(format!("{n:06}"));
        let bytes = fs::read(&e.path)
            .map_err(|err| FaultError::Failed(format!("reading {}: {err}", e.path.display())))?;
        let mut f = fs::File::create(&b)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        Some(b)
    } else {
        None
    };
    undo.record(UndoAction::RestoreFile {
        path: e.path.clone(),
        backup: backup.clone(),
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        on_revert,
    })?;
    Ok(backup)
}

/// Remove a directory tree that a running program may still be writing into: files it
/// creates after the copy was taken are removed too (they did not exist before the fault).
fn remove_tree(t: &Path) -> std::io::Result<()> {
    let mut last = None;
    for _ in 0..20 {
        match fs::remove_dir_all(t) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("could not remove")))
}

pub struct Wipe {
    spec: DataWipe,
    max: u64,
    tops: Vec<PathBuf>,
    files: usize,
    bytes: u64,
}

impl Wipe {
    pub fn new(spec: &DataWipe, max: u64) -> Wipe {
        Wipe {
            spec: spec.clone(),
            max,
            tops: Vec::new(),
            files: 0,
            bytes: 0,
        }
    }
    fn mode(&self) -> WipeMode {
        self.spec.mode.unwrap_or(WipeMode::Delete)
    }
}

impl Fault for Wipe {
    fn kind(&self) -> &'static str {
        FaultKind::DataWipe.name()
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let (tops, entries) = resolve(members, &self.spec.paths)?;
        self.bytes = budget(&entries, self.max)?;
        let copy = self.spec.journal_copy.unwrap_or(true);
        let on_revert = self.spec.restore.unwrap_or(true);
        for (i, e) in entries.iter().enumerate() {
            journal_copy(undo, e, i, copy, on_revert)?;
        }
        self.files = entries.iter().filter(|e| !e.dir).count();
        for t in &tops {
            let m = fs::symlink_metadata(t)?;
            let r = match (self.mode(), m.is_dir()) {
                (WipeMode::Delete, true) => remove_tree(t),
                (WipeMode::Delete, false) => fs::remove_file(t),
                (WipeMode::Truncate, _) => {
                    for e in entries.iter().filter(|e| !e.dir && e.path.starts_with(t)) {
                        fs::OpenOptions::new()
                            .write(true)
                            .open(&e.path)?
                            .set_len(0)?;
                    }
                    Ok(())
                }
            };
            r.map_err(|e| FaultError::Failed(format!("wiping {}: {e}", t.display())))?;
        }
        self.tops = tops;
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        for t in &self.tops {
            match self.mode() {
                WipeMode::Delete if fs::symlink_metadata(t).is_ok() => {
                    return Err(FaultError::Failed(format!("{} still exists", t.display())))
                }
                WipeMode::Truncate => {
                    let mut v = Vec::new();
                    walk(t, &mut v)?;
                    if let Some(e) = v.iter().find(|e| !e.dir && e.size > 0) {
                        return Err(FaultError::Failed(format!(
                            "{} still has {} bytes",
                            e.path.display(),
                            e.size
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(Evidence(format!(
            "{} file(s), {} bytes {} under {}{}",
            self.files,
            self.bytes,
            if self.mode() == WipeMode::Delete {
                "gone"
            } else {
                "truncated to 0"
            },
            self.tops
                .iter()
                .map(|t| t.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if self.spec.journal_copy == Some(false) {
                "; NO journal copy (journalCopy: false)"
            } else {
                "; originals in the journal"
            }
        )))
    }
}

/// splitmix64 over a seed.
fn rng(state: &mut u64) -> u64 {
    crate::rand::next(state)
}

fn seed_for(seed: u64, path: &Path) -> u64 {
    path.to_string_lossy()
        .bytes()
        .fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

/// Corrupt `bytes` in place; returns the (offset, length) of each place changed.
/// Deterministic for a given seed.
pub fn corrupt(
    bytes: &mut Vec<u8>,
    how: CorruptHow,
    offset: Option<u64>,
    length: u64,
    count: u32,
    seed: u64,
) -> Vec<(u64, u64)> {
    let mut st = seed;
    let size = bytes.len() as u64;
    if size == 0 {
        return Vec::new();
    }
    if how == CorruptHow::Truncate {
        let at = offset.unwrap_or(size / 2).min(size);
        bytes.truncate(at as usize);
        return vec![(at, size - at)];
    }
    let len = length.clamp(1, size);
    let places: Vec<u64> = match offset {
        Some(o) => vec![o.min(size - len)],
        None => (0..count.max(1))
            .map(|_| rng(&mut st) % (size - len + 1))
            .collect(),
    };
    for &o in &places {
        for b in &mut bytes[o as usize..(o + len) as usize] {
            *b = match how {
                CorruptHow::Bitflip => *b ^ (1u8 << (rng(&mut st) % 8)),
                CorruptHow::Zero => 0,
                CorruptHow::Garbage => {
                    // Never leave a byte as it was: garbage that happens to match is no fault.
                    let g = rng(&mut st) as u8;
                    if g == *b {
                        !g
                    } else {
                        g
                    }
                }
                CorruptHow::Truncate => *b,
            };
        }
    }
    places.into_iter().map(|o| (o, len)).collect()
}

/// A corrupted file: its path, the journal copy, and the places changed.
type Corrupted = (PathBuf, PathBuf, Vec<(u64, u64)>);

pub struct Corrupt {
    spec: DataCorrupt,
    max: u64,
    seed: u64,
    done: Vec<Corrupted>,
}

impl Corrupt {
    pub fn new(spec: &DataCorrupt, max: u64, seed: u64) -> Corrupt {
        Corrupt {
            spec: spec.clone(),
            max,
            seed,
            done: Vec::new(),
        }
    }
}

impl Fault for Corrupt {
    fn kind(&self) -> &'static str {
        FaultKind::DataCorrupt.name()
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let (_, entries) = resolve(members, &self.spec.paths)?;
        let files: Vec<Entry> = entries
            .into_iter()
            .filter(|e| !e.dir && e.size > 0)
            .collect();
        if files.is_empty() {
            return Err(FaultError::Refused(
                "no non-empty file to corrupt matches the paths".into(),
            ));
        }
        budget(&files, self.max)?;
        let how = self.spec.how.unwrap_or(CorruptHow::Bitflip);
        let length = self.spec.length.map_or(4096, |b| b.0);
        for (i, e) in files.iter().enumerate() {
            let backup = journal_copy(undo, e, i, true, self.spec.restore.unwrap_or(true))?
                .ok_or_else(|| FaultError::Failed("no journal copy".into()))?;
            let mut bytes = fs::read(&backup)?;
            let places = corrupt(
                &mut bytes,
                how,
                self.spec.offset.map(|b| b.0),
                length,
                self.spec.count.unwrap_or(1),
                seed_for(self.seed, &e.path),
            );
            let mut f = fs::OpenOptions::new().write(true).open(&e.path)?;
            f.write_all(&bytes)?;
            f.set_len(bytes.len() as u64)?;
            f.sync_all()?;
            self.done.push((e.path.clone(), backup, places));
        }
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        for (path, backup, places) in &self.done {
            if fs::read(path)? == fs::read(backup)? {
                return Err(FaultError::Failed(format!(
                    "{} still holds its original bytes",
                    path.display()
                )));
            }
            parts.push(format!(
                "{} at {}",
                path.display(),
                places
                    .iter()
                    .map(|(o, l)| format!("{o}+{l}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Evidence(format!(
            "{} file(s) differ from their originals ({:?}): {}",
            self.done.len(),
            self.spec.how.unwrap_or(CorruptHow::Bitflip),
            parts.join("; ")
        )))
    }
}

/// Why a config edit cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    Pattern(#[from] regex::Error),
    #[error("no line matches {0}")]
    NoLineMatches(String),
    #[error("nothing to change")]
    NothingToChange,
}

/// The config edit, as a pure function. Errors when the edit would change nothing.
pub fn edit_config(text: &str, c: &ConfigCorrupt) -> Result<String, EditError> {
    if let Some(r) = &c.replace {
        return Ok(r.clone());
    }
    if let Some(set) = &c.set {
        let sep = set.separator.as_deref().unwrap_or(" = ");
        let line = format!("{}{sep}{}", set.key, set.value);
        let mut found = false;
        let mut out: Vec<String> = Vec::new();
        for l in text.lines() {
            let t = l.trim_start();
            let sets_key = t
                .strip_prefix(set.key.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '=', ':']));
            if sets_key {
                found = true;
                out.push(line.clone());
            } else {
                out.push(l.to_string());
            }
        }
        if !found {
            out.push(line);
        }
        let mut s = out.join("\n");
        s.push('\n');
        return Ok(s);
    }
    if let Some(re) = &c.delete_line {
        let re = regex::Regex::new(re)?;
        let kept: Vec<&str> = text.lines().filter(|l| !re.is_match(l)).collect();
        if kept.len() == text.lines().count() {
            return Err(EditError::NoLineMatches(re.to_string()));
        }
        let mut s = kept.join("\n");
        s.push('\n');
        return Ok(s);
    }
    Err(EditError::NothingToChange)
}

pub struct Config {
    spec: ConfigCorrupt,
    path: Option<PathBuf>,
    wanted: String,
    reloaded: Vec<i32>,
}

impl Config {
    pub fn new(spec: &ConfigCorrupt) -> Config {
        Config {
            spec: spec.clone(),
            path: None,
            wanted: String::new(),
            reloaded: Vec::new(),
        }
    }
}

impl Fault for Config {
    fn kind(&self) -> &'static str {
        FaultKind::ConfigCorrupt.name()
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let root = members.first().map_or_else(|| PathBuf::from("/"), root_of);
        let path = root.join(self.spec.path.trim_start_matches('/'));
        let mut entries = Vec::new();
        walk(&path, &mut entries)
            .map_err(|e| FaultError::Refused(format!("{}: {e}", path.display())))?;
        let Some(e) = entries.first().filter(|e| !e.dir).cloned() else {
            return Err(FaultError::Refused(format!(
                "{} is not a regular file",
                path.display()
            )));
        };
        let text = fs::read_to_string(&path)
            .map_err(|err| FaultError::Refused(format!("{}: {err}", path.display())))?;
        let new = edit_config(&text, &self.spec)
            .map_err(|err| FaultError::Refused(format!("{}: {err}", path.display())))?;
        // With a reload signal, the undo first restores the file, then signals again so the
        // original config is reloaded (records are undone in reverse).
        let reload = match &self.spec.reload {
            Some(sig) => Some(
                crate::model::validate::parse_signal(sig)
                    .ok_or_else(|| FaultError::Refused(format!("unknown signal {sig}")))?,
            ),
            None => None,
        };
        // The main process of each member: the oldest, whose children follow it.
        let mains: Vec<crate::procfs::ProcId> = members
            .iter()
            .filter_map(|m| {
                m.procs
                    .iter()
                    .filter(|p| p.alive())
                    .min_by_key(|p| p.start_time)
                    .copied()
            })
            .collect();
        if let Some(signo) = reload {
            for p in &mains {
                undo.record(UndoAction::Signal {
                    proc: *p,
                    signal: signo,
                })?;
            }
        }
        journal_copy(undo, &e, 0, true, self.spec.restore.unwrap_or(true))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)?;
        f.write_all(new.as_bytes())?;
        f.sync_all()?;
        self.wanted = new;
        self.path = Some(path);
        if let Some(signo) = reload {
            let signal = nix::sys::signal::Signal::try_from(signo)
                .map_err(|e| FaultError::Refused(format!("signal {signo}: {e}")))?;
            for p in &mains {
                if nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), signal).is_ok() {
                    self.reloaded.push(p.pid);
                }
            }
        }
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let Some(p) = &self.path else {
            return Err(FaultError::Failed("not injected".into()));
        };
        if fs::read_to_string(p)? != self.wanted {
            return Err(FaultError::Failed(format!(
                "{} does not hold the changed text",
                p.display()
            )));
        }
        Ok(Evidence(format!(
            "{} changed{}",
            p.display(),
            if self.reloaded.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} sent to pid {:?}",
                    self.spec.reload.as_deref().unwrap_or(""),
                    self.reloaded
                )
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::ConfigSet;

    #[test]
    fn corruption_is_seeded_and_changes_exactly_the_places() {
        let orig: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for how in [CorruptHow::Bitflip, CorruptHow::Zero, CorruptHow::Garbage] {
            let mut a = orig.clone();
            let pa = corrupt(&mut a, how, None, 16, 3, 42);
            let mut b = orig.clone();
            let pb = corrupt(&mut b, how, None, 16, 3, 42);
            assert_eq!(
                (a.clone(), pa.clone()),
                (b, pb),
                "same seed, same corruption"
            );
            let mut c = orig.clone();
            corrupt(&mut c, how, None, 16, 3, 43);
            assert_ne!(a, c, "another seed corrupts elsewhere");
            assert_eq!(a.len(), orig.len());
            for (i, (x, y)) in a.iter().zip(&orig).enumerate() {
                let inside = pa
                    .iter()
                    .any(|(o, l)| (i as u64) >= *o && (i as u64) < o + l);
                if !inside {
                    assert_eq!(x, y, "byte {i} outside the places is untouched ({how:?})");
                }
            }
        }
        // Bit flips change exactly one bit per byte in the place.
        let mut a = orig.clone();
        corrupt(&mut a, CorruptHow::Bitflip, Some(100), 8, 1, 7);
        for i in 100..108 {
            assert_eq!((a[i] ^ orig[i]).count_ones(), 1);
        }
        // Garbage never leaves a byte unchanged; zero zeroes.
        let mut g = orig.clone();
        corrupt(&mut g, CorruptHow::Garbage, Some(0), 64, 1, 1);
        assert!((0..64).all(|i| g[i] != orig[i]));
        let mut z = orig.clone();
        corrupt(&mut z, CorruptHow::Zero, Some(300), 10, 1, 1);
        assert!(z[300..310].iter().all(|b| *b == 0));
        let mut t = orig.clone();
        assert_eq!(
            corrupt(&mut t, CorruptHow::Truncate, Some(4000), 0, 1, 1),
            vec![(4000, 6000)]
        );
        assert_eq!(t.len(), 4000);
    }

    #[test]
    fn config_edits() {
        let text = "# comment\nport = 5432\nmax_connections=100\n";
        let set = |k: &str, v: &str| ConfigCorrupt {
            set: Some(ConfigSet {
                key: k.into(),
                value: v.into(),
                separator: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            edit_config(text, &set("max_connections", "1")).expect("set"),
            "# comment\nport = 5432\nmax_connections = 1\n"
        );
        assert_eq!(
            edit_config(text, &set("shared_buffers", "1TB")).expect("append"),
            "# comment\nport = 5432\nmax_connections=100\nshared_buffers = 1TB\n"
        );
        // `port` does not match `port_x`.
        assert!(edit_config("port_x = 1\n", &set("port", "2"))
            .expect("x")
            .contains("port_x = 1"));
        let del = ConfigCorrupt {
            delete_line: Some("^port".into()),
            ..Default::default()
        };
        assert_eq!(
            edit_config(text, &del).expect("delete"),
            "# comment\nmax_connections=100\n"
        );
        let none = ConfigCorrupt {
            delete_line: Some("^nothing".into()),
            ..Default::default()
        };
        assert!(
            edit_config(text, &none).is_err(),
            "an edit that changes nothing is refused"
        );
    }

    #[test]
    fn globs_expand_within_components() {
        let d = std::env::temp_dir().join(format!("murphy-glob-{}", std::process::id()));
        fs::create_dir_all(d.join("a/b")).expect("dirs");
        for f in ["a/x.log", "a/y.log", "a/z.txt", "a/b/x.log"] {
            fs::write(d.join(f), "1").expect("file");
        }
        let rel = d.strip_prefix("/").expect("absolute").display().to_string();
        let got = expand(Path::new("/"), &format!("{rel}/a/*.log"));
        assert_eq!(got, vec![d.join("a/x.log"), d.join("a/y.log")]);
        assert_eq!(
            expand(Path::new("/"), &format!("{rel}/a/?.txt")),
            vec![d.join("a/z.txt")]
        );
        assert!(expand(Path::new("/"), &format!("{rel}/nope/*")).is_empty());
        let _ = fs::remove_dir_all(&d);
    }
}
