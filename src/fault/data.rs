//! Data faults: `data-wipe`, `data-corrupt`, `config-corrupt`.
//!
//! Paths are seen from the target's mount namespace: they are resolved beneath its root
//! (`/proc/<pid>/root` when it differs from Murphy's) as if chrooted there. A symlink on
//! the way is followed only inside that root (an absolute target starts again at the
//! target's `/`, `..` stops there); the node a path names is acted on itself, a symlink as
//! a link, and a tree is walked without following any. Every path is resolved before
//! anything changes, and refused — nothing touched — when it resolves to `/`, under
//! `/proc`, `/sys` or `/dev`, or outside `guardrails.allowPaths`.
//!
//! Before anything changes, every node to be touched is captured whole ([`fsnode`]: type,
//! bytes or symlink target or rdev, mode, owner, extended attributes, times), each file's
//! bytes are copied into the journal's data directory, and a restore record is on disk, so
//! revert — or `murphy recover` after a crash — puts the exact originals back and fails
//! loudly if it cannot. A guardrail caps how many bytes one fault may touch; over it,
//! nothing is changed.
//!
//! The corruption generators are pure and seeded ([`corrupt`], [`edit_config`]).

use super::{Evidence, Fault, FaultError, Member, UndoLog};
use crate::fsnode::{self, FsError, Kind, Node, Root, RootRef};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::model::spec::{ConfigCorrupt, CorruptHow, DataCorrupt, DataWipe, WipeMode};
use crate::procfs::ProcId;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

impl From<FsError> for FaultError {
    fn from(e: FsError) -> Self {
        match e {
            FsError::Refused { .. } => FaultError::Refused(e.to_string()),
            _ => FaultError::Failed(e.to_string()),
        }
    }
}

/// The filesystem root a member's paths are resolved against, and the process it belongs
/// to when it is not Murphy's own.
fn root_and_proc(m: &Member) -> (PathBuf, Option<ProcId>) {
    let Some(p) = m.procs.first() else {
        return (PathBuf::from("/"), None);
    };
    let mine = fs::metadata("/proc/self/ns/mnt").map(|m| m.ino()).ok();
    let theirs = fs::metadata(format!("/proc/{}/ns/mnt", p.pid))
        .map(|m| m.ino())
        .ok();
    if theirs.is_some() && theirs != mine {
        (PathBuf::from(format!("/proc/{}/root", p.pid)), Some(*p))
    } else {
        (PathBuf::from("/"), None)
    }
}

/// The filesystem root a member's paths are resolved against.
pub fn root_of(m: &Member) -> PathBuf {
    root_and_proc(m).0
}

/// One member's filesystem: its open root and how the journal names it.
struct Place {
    root: Root,
    id: RootRef,
}

impl Place {
    fn of(m: Option<&Member>) -> Result<Place, FaultError> {
        let (path, proc) = m.map_or((PathBuf::from("/"), None), root_and_proc);
        let id = RootRef { path, proc };
        let root = id.open()?;
        Ok(Place { root, id })
    }

    /// Every place the members' paths live in, once each (no member: Murphy's own `/`).
    fn all(members: &[Member]) -> Result<Vec<Place>, FaultError> {
        let mut out: Vec<Place> = Vec::new();
        if members.is_empty() {
            out.push(Place::of(None)?);
        }
        for m in members {
            if !out.iter().any(|p| p.id.path == root_and_proc(m).0) {
                out.push(Place::of(Some(m))?);
            }
        }
        Ok(out)
    }

    fn show(&self, rel: &Path) -> PathBuf {
        self.root.show(rel)
    }
}

/// What is left of a path to resolve: a piece of the pattern (may hold wildcards) or a
/// piece of a symlink's target (a plain name, whatever characters it holds).
#[derive(Clone, Debug)]
enum Step {
    Pattern(String),
    Name(OsString),
}

/// At most this many symlinks on the way to one path (the kernel's own limit).
const MAX_LINKS: u32 = 40;

fn absent(e: &FsError) -> bool {
    matches!(e, FsError::Io { source, .. }
        if matches!(source.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)))
}

/// Expand an absolute pattern (`*` and `?` within components) beneath `root` into the
/// paths it names, relative to the root and free of symlinks, sorted. A symlink on the way
/// is followed inside the root (an absolute target starts again at the root, `..` stops
/// there); the last name is never followed.
pub fn expand(root: &Root, pattern: &str) -> Result<Vec<PathBuf>, FsError> {
    struct Branch {
        at: PathBuf,
        rest: VecDeque<Step>,
        links: u32,
    }
    let mut out = Vec::new();
    let mut work = vec![Branch {
        at: PathBuf::new(),
        rest: pattern
            .split('/')
            .filter(|c| !c.is_empty())
            .map(|c| Step::Pattern(c.to_string()))
            .collect(),
        links: 0,
    }];
    while let Some(mut b) = work.pop() {
        let Some(step) = b.rest.pop_front() else {
            out.push(b.at);
            continue;
        };
        let name: OsString = match step {
            Step::Pattern(p) if p.contains(['*', '?']) => {
                let names = match root.list(&b.at) {
                    Ok(n) => n,
                    Err(e) if absent(&e) => continue,
                    Err(e) => return Err(e),
                };
                for n in names.into_iter().rev() {
                    if n.to_str().is_some_and(|s| crate::glob::wildcard(&p, s)) {
                        let mut rest = b.rest.clone();
                        rest.push_front(Step::Name(n));
                        work.push(Branch {
                            at: b.at.clone(),
                            rest,
                            links: b.links,
                        });
                    }
                }
                continue;
            }
            Step::Pattern(p) => p.into(),
            Step::Name(n) => n,
        };
        if name == "." {
            work.push(b);
            continue;
        }
        if name == ".." {
            b.at.pop();
            work.push(b);
            continue;
        }
        let here = b.at.join(&name);
        let st = match root.lstat(&here) {
            Ok(Some(st)) => st,
            Ok(None) => continue,
            Err(e) if absent(&e) => continue,
            Err(e) => return Err(e),
        };
        let last = b.rest.is_empty();
        match rustix::fs::FileType::from_raw_mode(st.st_mode as u32) {
            rustix::fs::FileType::Symlink if !last => {
                b.links += 1;
                if b.links > MAX_LINKS {
                    return Err(FsError::Refused {
                        path: root.show(&here),
                        why: format!("more than {MAX_LINKS} symlinks on the way to {pattern}"),
                    });
                }
                let target = root.read_link(&here)?;
                if target.as_bytes().starts_with(b"/") {
                    b.at = PathBuf::new();
                }
                for c in target
                    .as_bytes()
                    .split(|c| *c == b'/')
                    .filter(|c| !c.is_empty())
                    .rev()
                {
                    b.rest
                        .push_front(Step::Name(OsString::from_vec(c.to_vec())));
                }
                work.push(b);
            }
            rustix::fs::FileType::Directory => {
                b.at = here;
                work.push(b);
            }
            _ if last => {
                b.at = here;
                work.push(b);
            }
            // Not a directory: nothing lies beneath it.
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A resolved path may be acted on: not the root itself, not under /proc, /sys or /dev,
/// and within `guardrails.allowPaths` when set. Checked before anything changes.
fn check_resolved(
    place: &Place,
    rel: &Path,
    pattern: &str,
    allow: &[PathBuf],
) -> Result<(), FaultError> {
    let seen = Path::new("/").join(rel);
    let seen_s = seen.to_string_lossy();
    let refused = |why: String| {
        Err(FaultError::Refused(format!(
            "{pattern} resolves to {}{why}; nothing was touched",
            place.show(rel).display()
        )))
    };
    if rel.as_os_str().is_empty() {
        return refused(": the whole filesystem".into());
    }
    if let Some(t) = crate::model::validate::kernel_tree(&seen_s) {
        return refused(format!(", under {t}: data faults never act there"));
    }
    if !allow.is_empty()
        && !allow
            .iter()
            .any(|a| crate::model::validate::is_beneath(&seen_s, &a.to_string_lossy()))
    {
        return refused(format!(
            " ({}), outside guardrails.allowPaths ({})",
            seen.display(),
            allow
                .iter()
                .map(|a| a.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if rel.to_str().is_none() {
        return refused(": a name that is not UTF-8, which the journal cannot record".into());
    }
    Ok(())
}

/// A node to be touched, in pre-order, with the place it lives in.
#[derive(Clone, Debug)]
struct Entry {
    place: usize,
    rel: PathBuf,
    node: Node,
}

impl Entry {
    fn size(&self) -> u64 {
        match self.node.kind {
            Kind::File { size } => size,
            _ => 0,
        }
    }
}

/// Capture `rel` and, for a directory, everything in it, following no symlink.
fn walk(root: &Root, place: usize, rel: &Path, out: &mut Vec<Entry>) -> Result<(), FaultError> {
    if rel.to_str().is_none() {
        return Err(FaultError::Refused(format!(
            "{} has a name that is not UTF-8, which the journal cannot record; nothing was touched",
            root.show(rel).display()
        )));
    }
    let node = root.capture(rel)?;
    let dir = node.kind == Kind::Dir;
    out.push(Entry {
        place,
        rel: rel.to_path_buf(),
        node,
    });
    if dir {
        for name in root.list(rel)? {
            walk(root, place, &rel.join(name), out)?;
        }
    }
    Ok(())
}

/// Every pattern resolved for every member's place: the top paths (outermost only) and
/// every node beneath them. An unmatched pattern, or a path that may not be touched, is
/// refused before anything changes.
struct Found {
    places: Vec<Place>,
    tops: Vec<(usize, PathBuf)>,
    entries: Vec<Entry>,
}

fn resolve(
    members: &[Member],
    patterns: &[String],
    allow: &[PathBuf],
) -> Result<Found, FaultError> {
    let places = Place::all(members)?;
    let mut tops = Vec::new();
    let mut entries = Vec::new();
    for (i, place) in places.iter().enumerate() {
        let mut mine: Vec<PathBuf> = Vec::new();
        for pat in patterns {
            let found = expand(&place.root, pat)?;
            if found.is_empty() {
                return Err(FaultError::Refused(format!(
                    "nothing matches {pat} (under {})",
                    place.id.path.display()
                )));
            }
            for rel in found {
                check_resolved(place, &rel, pat, allow)?;
                mine.push(rel);
            }
        }
        mine.sort();
        mine.dedup();
        let mut outer: Vec<PathBuf> = Vec::new();
        for t in mine {
            if !outer.iter().any(|o| t.starts_with(o)) {
                outer.push(t);
            }
        }
        for t in outer {
            walk(&place.root, i, &t, &mut entries)?;
            tops.push((i, t));
        }
    }
    Ok(Found {
        places,
        tops,
        entries,
    })
}

fn budget<'a>(entries: impl Iterator<Item = &'a Entry>, max: u64) -> Result<u64, FaultError> {
    let total: u64 = entries.map(Entry::size).sum();
    if total > max {
        return Err(FaultError::Refused(format!(
            "the files come to {total} bytes, more than guardrails.maxDataBytes ({max}); nothing was touched"
        )));
    }
    Ok(total)
}

/// Record how to restore `e` (a file's bytes copied into the journal's data directory
/// first, fsynced, when `copy`); returns the copy.
fn journal_entry(
    undo: &mut UndoLog<'_>,
    place: &Place,
    e: &Entry,
    n: usize,
    copy: bool,
    on_revert: bool,
) -> Result<Option<PathBuf>, FaultError> {
    let path = place.show(&e.rel);
    let node = &e.node;
    match &node.kind {
        Kind::Dir => {
            undo.record(UndoAction::RestoreDir {
                path,
                mode: node.mode,
                uid: node.uid,
                gid: node.gid,
                on_revert,
                root: Some(place.id.clone()),
                meta: Some(node.meta.clone()),
            })?;
            Ok(None)
        }
        Kind::Special(s) => {
            undo.record(UndoAction::RestoreNode {
                path,
                root: place.id.clone(),
                node: s.clone(),
                mode: node.mode,
                uid: node.uid,
                gid: node.gid,
                meta: node.meta.clone(),
                on_revert,
            })?;
            Ok(None)
        }
        Kind::File { .. } => {
            let backup = if copy {
                let dir = undo.copy_dir();
                fs::create_dir_all(&dir)?;
                let b = dir.join(format!("{n:06}"));
                let bytes = place.root.read_file(&e.rel, Some(node))?;
                let mut f = fs::File::create(&b)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                Some(b)
            } else {
                None
            };
            undo.record(UndoAction::RestoreFile {
                path,
                backup: backup.clone(),
                mode: node.mode,
                uid: node.uid,
                gid: node.gid,
                on_revert,
                root: Some(place.id.clone()),
                meta: Some(node.meta.clone()),
            })?;
            Ok(backup)
        }
    }
}

/// Sync the journal's copy directory and its parent, so the copies' names survive a
/// crash as their bytes do.
fn sync_copies(undo: &UndoLog<'_>) -> Result<(), FaultError> {
    let dir = undo.copy_dir();
    if dir.exists() {
        fs::File::open(&dir)?.sync_all()?;
        if let Some(p) = dir.parent() {
            fs::File::open(p)?.sync_all()?;
        }
    }
    Ok(())
}

/// Remove a tree a running program may still be writing into: files it creates after
/// the copy was taken are removed too (they did not exist before the fault).
fn remove_tree(root: &Root, rel: &Path) -> Result<(), FsError> {
    let mut n = 0;
    loop {
        match root.remove(rel) {
            Err(FsError::Io { source, .. })
                if source.raw_os_error() == Some(libc::ENOTEMPTY) && n < 20 =>
            {
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

pub struct Wipe {
    spec: DataWipe,
    max: u64,
    allow: Vec<PathBuf>,
    places: Vec<Place>,
    tops: Vec<(usize, PathBuf)>,
    truncated: Vec<(usize, PathBuf)>,
    files: usize,
    others: usize,
    bytes: u64,
}

impl Wipe {
    pub fn new(spec: &DataWipe, max: u64, allow: &[PathBuf]) -> Wipe {
        Wipe {
            spec: spec.clone(),
            max,
            allow: allow.to_vec(),
            places: Vec::new(),
            tops: Vec::new(),
            truncated: Vec::new(),
            files: 0,
            others: 0,
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
        let found = resolve(members, &self.spec.paths, &self.allow)?;
        self.bytes = budget(found.entries.iter(), self.max)?;
        let copy = self.spec.journal_copy.unwrap_or(true);
        let on_revert = self.spec.restore.unwrap_or(true);
        let is_file = |e: &Entry| matches!(e.node.kind, Kind::File { .. });
        self.files = found.entries.iter().filter(|e| is_file(e)).count();
        match self.mode() {
            WipeMode::Delete => {
                // The directories the tops go from: removing the tops changes their times.
                let mut parents: Vec<Entry> = Vec::new();
                for (i, t) in &found.tops {
                    let rel = t.parent().unwrap_or(Path::new("")).to_path_buf();
                    if !parents.iter().any(|p| p.place == *i && p.rel == rel) {
                        let node = found.places[*i].root.capture(&rel)?;
                        parents.push(Entry {
                            place: *i,
                            rel,
                            node,
                        });
                    }
                }
                for p in &parents {
                    journal_entry(undo, &found.places[p.place], p, 0, false, on_revert)?;
                }
                for (n, e) in found.entries.iter().enumerate() {
                    journal_entry(undo, &found.places[e.place], e, n, copy, on_revert)?;
                }
                sync_copies(undo)?;
                self.others = found
                    .entries
                    .iter()
                    .filter(|e| matches!(e.node.kind, Kind::Special(_)))
                    .count();
                for (i, t) in &found.tops {
                    remove_tree(&found.places[*i].root, t)?;
                }
            }
            WipeMode::Truncate => {
                let files: Vec<&Entry> = found.entries.iter().filter(|e| is_file(e)).collect();
                for (n, e) in files.iter().enumerate() {
                    journal_entry(undo, &found.places[e.place], e, n, copy, on_revert)?;
                }
                sync_copies(undo)?;
                for e in files {
                    found.places[e.place]
                        .root
                        .write_file(&e.rel, Some(&e.node), &[])?;
                    self.truncated.push((e.place, e.rel.clone()));
                }
            }
        }
        self.tops = found.tops;
        self.places = found.places;
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        for (i, t) in &self.tops {
            let place = &self.places[*i];
            if self.mode() == WipeMode::Delete && place.root.lstat(t)?.is_some() {
                return Err(FaultError::Failed(format!(
                    "{} still exists",
                    place.show(t).display()
                )));
            }
        }
        for (i, f) in &self.truncated {
            let place = &self.places[*i];
            if let Some(st) = place.root.lstat(f)? {
                if st.st_size > 0 {
                    return Err(FaultError::Failed(format!(
                        "{} still has {} bytes",
                        place.show(f).display(),
                        st.st_size
                    )));
                }
            }
        }
        Ok(Evidence(format!(
            "{} file(s), {} bytes {} under {}{}{}",
            self.files,
            self.bytes,
            if self.mode() == WipeMode::Delete {
                "gone"
            } else {
                "truncated to 0"
            },
            self.tops
                .iter()
                .map(|(i, t)| self.places[*i].show(t).display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if self.others > 0 {
                format!(
                    ", and {} symlink(s), FIFO(s), socket(s) or device node(s)",
                    self.others
                )
            } else {
                String::new()
            },
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

/// A corrupted file: its place, path, the journal copy, and the places changed.
struct Corrupted {
    place: usize,
    rel: PathBuf,
    backup: PathBuf,
    at: Vec<(u64, u64)>,
}

pub struct Corrupt {
    spec: DataCorrupt,
    max: u64,
    seed: u64,
    allow: Vec<PathBuf>,
    places: Vec<Place>,
    done: Vec<Corrupted>,
}

impl Corrupt {
    pub fn new(spec: &DataCorrupt, max: u64, seed: u64, allow: &[PathBuf]) -> Corrupt {
        Corrupt {
            spec: spec.clone(),
            max,
            seed,
            allow: allow.to_vec(),
            places: Vec::new(),
            done: Vec::new(),
        }
    }
}

impl Fault for Corrupt {
    fn kind(&self) -> &'static str {
        FaultKind::DataCorrupt.name()
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let found = resolve(members, &self.spec.paths, &self.allow)?;
        // Regular files only: a symlink is never written through.
        let files: Vec<&Entry> = found
            .entries
            .iter()
            .filter(|e| matches!(e.node.kind, Kind::File { size } if size > 0))
            .collect();
        if files.is_empty() {
            return Err(FaultError::Refused(
                "no non-empty regular file to corrupt matches the paths".into(),
            ));
        }
        budget(files.iter().copied(), self.max)?;
        let how = self.spec.how.unwrap_or(CorruptHow::Bitflip);
        let length = self.spec.length.map_or(4096, |b| b.0);
        let on_revert = self.spec.restore.unwrap_or(true);
        self.places = found.places;
        for (i, e) in files.iter().enumerate() {
            let place = &self.places[e.place];
            let backup = journal_entry(undo, place, e, i, true, on_revert)?
                .ok_or_else(|| FaultError::Failed("no journal copy".into()))?;
            sync_copies(undo)?;
            let mut bytes = fs::read(&backup)?;
            let at = corrupt(
                &mut bytes,
                how,
                self.spec.offset.map(|b| b.0),
                length,
                self.spec.count.unwrap_or(1),
                seed_for(self.seed, &place.show(&e.rel)),
            );
            place.root.write_file(&e.rel, Some(&e.node), &bytes)?;
            self.done.push(Corrupted {
                place: e.place,
                rel: e.rel.clone(),
                backup,
                at,
            });
        }
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let mut parts = Vec::new();
        for c in &self.done {
            let place = &self.places[c.place];
            let path = place.show(&c.rel);
            if place.root.read_file(&c.rel, None)? == fs::read(&c.backup)? {
                return Err(FaultError::Failed(format!(
                    "{} still holds its original bytes",
                    path.display()
                )));
            }
            parts.push(format!(
                "{} at {}",
                path.display(),
                c.at.iter()
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
    allow: Vec<PathBuf>,
    /// Where the file is: its place and path beneath it.
    at: Option<(Place, PathBuf)>,
    wanted: String,
    reloaded: Vec<i32>,
}

impl Config {
    pub fn new(spec: &ConfigCorrupt, allow: &[PathBuf]) -> Config {
        Config {
            spec: spec.clone(),
            allow: allow.to_vec(),
            at: None,
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
        let place = Place::of(members.first())?;
        let pattern = &self.spec.path;
        let rel = match expand(&place.root, pattern)?.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(FaultError::Refused(format!(
                    "{pattern}: no such file (under {})",
                    place.id.path.display()
                )))
            }
        };
        check_resolved(&place, &rel, pattern, &self.allow)?;
        let path = place.show(&rel);
        let node = place.root.capture(&rel)?;
        match &node.kind {
            Kind::File { .. } => {}
            Kind::Special(fsnode::Special::Symlink { target }) => {
                return Err(FaultError::Refused(format!(
                    "{} is a symlink (to {target:?}); config-corrupt does not write through one: name the file it points to",
                    path.display()
                )))
            }
            _ => {
                return Err(FaultError::Refused(format!(
                    "{} is not a regular file",
                    path.display()
                )))
            }
        }
        let text = String::from_utf8(place.root.read_file(&rel, Some(&node))?)
            .map_err(|_| FaultError::Refused(format!("{}: not UTF-8 text", path.display())))?;
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
        let entry = Entry {
            place: 0,
            rel: rel.clone(),
            node,
        };
        journal_entry(
            undo,
            &place,
            &entry,
            0,
            true,
            self.spec.restore.unwrap_or(true),
        )?;
        sync_copies(undo)?;
        place
            .root
            .write_file(&rel, Some(&entry.node), new.as_bytes())?;
        self.wanted = new;
        self.at = Some((place, rel));
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
        let Some((place, rel)) = &self.at else {
            return Err(FaultError::Failed("not injected".into()));
        };
        let p = place.show(rel);
        if place.root.read_file(rel, None)? != self.wanted.as_bytes() {
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
        let rel = d.strip_prefix("/").expect("absolute").to_path_buf();
        let root = Root::open(Path::new("/")).expect("root");
        let got = expand(&root, &format!("/{}/a/*.log", rel.display())).expect("expand");
        assert_eq!(got, vec![rel.join("a/x.log"), rel.join("a/y.log")]);
        assert_eq!(
            expand(&root, &format!("/{}/a/?.txt", rel.display())).expect("expand"),
            vec![rel.join("a/z.txt")]
        );
        assert!(expand(&root, &format!("/{}/nope/*", rel.display()))
            .expect("expand")
            .is_empty());
        let _ = fs::remove_dir_all(&d);
    }

    /// Symlinks on the way resolve as if chrooted at the root: an absolute target starts
    /// again at the root, `..` stops there, and the last name is never followed.
    #[test]
    fn symlinks_on_the_way_resolve_inside_the_root() {
        let d = std::env::temp_dir().join(format!("murphy-chroot-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("data/real")).expect("dirs");
        fs::write(d.join("data/real/f"), "1").expect("file");
        std::os::unix::fs::symlink("/data/real", d.join("data/abs")).expect("link");
        std::os::unix::fs::symlink("../../../../data/real", d.join("data/up")).expect("link");
        std::os::unix::fs::symlink("real/f", d.join("data/last")).expect("link");
        let root = Root::open(&d).expect("root");
        for p in ["/data/abs/f", "/data/up/f", "/data/*/f"] {
            let got = expand(&root, p).expect("expand");
            assert!(
                got.iter().all(|g| g == Path::new("data/real/f")) && !got.is_empty(),
                "{p}: {got:?}"
            );
        }
        assert_eq!(
            expand(&root, "/data/last").expect("expand"),
            vec![PathBuf::from("data/last")],
            "the last name is the link itself"
        );
        let _ = fs::remove_dir_all(&d);
    }
}
