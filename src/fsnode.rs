//! A file-system node's whole state, read and put back under a confined root.
//!
//! A node is a regular file, a directory, a symlink (its target, exactly as stored), a
//! FIFO, a socket or a device (its rdev), with its mode, owner, extended attributes and
//! access and modification times. Data faults [`Root::capture`] nodes before they touch
//! them; the journal puts them back with [`Root::restore`], then reads them again and
//! fails when anything differs, so a restore that is not exact is never reported as done.
//!
//! Every path here is relative to a [`Root`] (`/`, or a process's `/proc/<pid>/root`) and
//! is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`:
//! a symlink on the way is an error, never followed, and nothing resolves outside the root.
//! The node a path names is acted on itself: a symlink as a link, through an `O_PATH |
//! O_NOFOLLOW` descriptor. This module must never follow a symlink, open a FIFO or a
//! device for reading or writing, or act on anything outside its root.

use crate::procfs::ProcId;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps, CWD};
use serde::{Deserialize, Serialize};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

/// One extended attribute (any namespace root can read: `user.*`, `trusted.*`,
/// `security.*`, `system.posix_acl_*`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Xattr {
    pub name: String,
    /// The value, base64 in the journal.
    #[serde(with = "b64")]
    pub value: Vec<u8>,
}

/// What is put back besides type, contents, mode and owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Sorted by name.
    #[serde(default)]
    pub xattrs: Vec<Xattr>,
    pub atime: Time,
    pub mtime: Time,
}

/// A node that is neither a regular file nor a directory, with what makes it that node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Special {
    /// A symlink and its target, exactly as stored (never followed).
    Symlink {
        target: String,
    },
    Fifo,
    Socket,
    CharDevice {
        rdev: u64,
    },
    BlockDevice {
        rdev: u64,
    },
}

impl Special {
    pub fn describe(&self) -> String {
        match self {
            Special::Symlink { target } => format!("symlink to {target:?}"),
            Special::Fifo => "FIFO".into(),
            Special::Socket => "socket".into(),
            Special::CharDevice { rdev } => format!(
                "character device {}:{}",
                rfs::major(*rdev),
                rfs::minor(*rdev)
            ),
            Special::BlockDevice { rdev } => {
                format!("block device {}:{}", rfs::major(*rdev), rfs::minor(*rdev))
            }
        }
    }
}

/// What a captured node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File { size: u64 },
    Dir,
    Special(Special),
}

/// A node as [`Root::capture`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub meta: Meta,
    /// Its identity, to tell it from a node that replaced it.
    pub dev: u64,
    pub ino: u64,
}

/// What a node's contents must be after a restore.
#[derive(Clone, Copy, Debug)]
pub enum Content<'a> {
    File(&'a [u8]),
    Dir,
    Special(&'a Special),
}

/// A node as it must be after a restore. Without `meta` (a journal from before they were
/// recorded), extended attributes and times are left as they are.
#[derive(Clone, Copy, Debug)]
pub struct Want<'a> {
    pub content: Content<'a>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub meta: Option<&'a Meta>,
}

/// A root as the journal records it: its path, and the process whose filesystem it is when
/// that is not Murphy's own (`/proc/<pid>/root`), so a reused pid is never taken for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootRef {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc: Option<ProcId>,
}

impl RootRef {
    /// The root of a path journaled before roots were recorded: `/proc/<pid>/root` when the
    /// path starts with it, else `/`.
    pub fn of_legacy_path(path: &Path) -> RootRef {
        let mut c = path.components();
        let root = match (c.next(), c.next(), c.next(), c.next()) {
            (Some(Component::RootDir), Some(proc_), Some(pid), Some(root))
                if proc_.as_os_str() == "proc"
                    && pid.as_os_str().to_str().is_some_and(|p| {
                        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                    })
                    && root.as_os_str() == "root" =>
            {
                Path::new("/proc").join(pid).join("root")
            }
            _ => PathBuf::from("/"),
        };
        RootRef {
            path: root,
            proc: None,
        }
    }

    /// Open the root; refused when its process is gone (its filesystem cannot be found, and
    /// its pid may be another process's now).
    pub fn open(&self) -> Result<Root, FsError> {
        let gone = |p: &ProcId| FsError::Refused {
            path: self.path.clone(),
            why: format!(
                "process {} whose filesystem this is has ended; its files cannot be reached",
                p.pid
            ),
        };
        if let Some(p) = self.proc.as_ref().filter(|p| !p.alive()) {
            return Err(gone(p));
        }
        let root = Root::open(&self.path).map_err(|e| FsError::Io {
            doing: "opening the root",
            path: self.path.clone(),
            source: e,
        })?;
        // Still the same process once its root is open: the descriptor is its root.
        if let Some(p) = self.proc.as_ref().filter(|p| !p.alive()) {
            return Err(gone(p));
        }
        Ok(root)
    }
}

/// Why a node could not be read, changed or put back.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{doing} {}: {source}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Something on the way or in the place is not what it may be (a symlink on the way, a
    /// directory where a file was, a name the journal cannot hold).
    #[error("{}: {why}", path.display())]
    Refused { path: PathBuf, why: String },
    /// After a restore, the node still differs from what was recorded.
    #[error("{} is not as it was after the restore: {what}", path.display())]
    Differs { path: PathBuf, what: String },
}

fn strict() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// `/proc/self/fd/<fd>`: the node an `O_PATH` descriptor holds, for the calls that take a
/// path (following this one magic link lands on the node itself, a symlink included).
fn magic(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

fn is_absent(e: &io::Error) -> bool {
    matches!(errno(e), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

fn file_type(mode: u32) -> FileType {
    FileType::from_raw_mode(mode)
}

/// A directory all of whose paths are resolved beneath it.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    fd: OwnedFd,
}

impl Root {
    /// Open `path` as a root. The path itself is trusted (it is `/` or the target's
    /// `/proc/<pid>/root`); nothing beneath it is followed.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            path: path.to_path_buf(),
            fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` as Murphy sees it (the root's path joined with it), for messages and records.
    pub fn show(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    fn io(&self, doing: &'static str, rel: &Path, e: impl Into<io::Error>) -> FsError {
        let e = e.into();
        if errno(&e) == Some(libc::ELOOP) || errno(&e) == Some(libc::EXDEV) {
            return FsError::Refused {
                path: self.show(rel),
                why: format!(
                    "{doing}: a symlink (or a way out of {}) stands on the path; it is not followed",
                    self.path.display()
                ),
            };
        }
        FsError::Io {
            doing,
            path: self.show(rel),
            source: e,
        }
    }

    fn check_rel(&self, rel: &Path) -> Result<(), FsError> {
        if rel.components().all(|c| matches!(c, Component::Normal(_))) {
            Ok(())
        } else {
            Err(FsError::Refused {
                path: self.show(rel),
                why: "only plain names may follow the root (no /, . or ..)".into(),
            })
        }
    }

    /// Open `rel` beneath the root, following no symlink (with `O_PATH | O_NOFOLLOW`, a
    /// symlink at the end is opened as itself).
    fn beneath(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let p: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        Ok(rfs::openat2(
            &self.fd,
            p,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            strict(),
        )?)
    }

    /// The node itself, as an `O_PATH` descriptor (a symlink as the link).
    fn node(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.beneath(rel, OFlags::PATH | OFlags::NOFOLLOW)
    }

    /// A directory beneath the root, opened name by name; with `create`, missing
    /// directories on the way are made (mode 0755; their own records, if any, set the
    /// rest). A symlink on the way is refused, naming it.
    fn dir(&self, rel: &Path, create: bool) -> Result<OwnedFd, FsError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut fd = self
            .beneath(Path::new(""), flags)
            .map_err(|e| self.io("opening", Path::new(""), e))?;
        let mut sofar = PathBuf::new();
        for c in rel.components() {
            sofar.push(c);
            let open = |fd: &OwnedFd| rfs::openat2(fd, c, flags, Mode::empty(), strict());
            fd = match open(&fd) {
                Ok(f) => f,
                Err(rustix::io::Errno::NOENT) if create => {
                    match rfs::mkdirat(&fd, c, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(self.io("making directory", &sofar, e)),
                    }
                    open(&fd).map_err(|e| self.io("opening directory", &sofar, e))?
                }
                Err(e @ (rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)) => {
                    let what = match rfs::statat(&fd, c, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if file_type(st.st_mode) == FileType::Symlink => {
                            "a symlink; it is not followed"
                        }
                        Ok(_) => "not a directory",
                        Err(_) => return Err(self.io("opening directory", &sofar, e)),
                    };
                    return Err(FsError::Refused {
                        path: self.show(&sofar),
                        why: format!("on the way to {}, it is {what}", self.show(rel).display()),
                    });
                }
                Err(e) => return Err(self.io("opening directory", &sofar, e)),
            };
        }
        Ok(fd)
    }

    /// The node's status without following it; `None` when it (or a directory on the way)
    /// does not exist.
    pub fn lstat(&self, rel: &Path) -> Result<Option<rfs::Stat>, FsError> {
        self.check_rel(rel)?;
        match self.node(rel) {
            Ok(fd) => rfs::fstat(&fd)
                .map(Some)
                .map_err(|e| self.io("reading the status of", rel, e)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(self.io("opening", rel, e)),
        }
    }

    /// A symlink's target, exactly as stored.
    pub fn read_link(&self, rel: &Path) -> Result<OsString, FsError> {
        let fd = self.node(rel).map_err(|e| self.io("opening", rel, e))?;
        rfs::readlinkat(&fd, "", Vec::new())
            .map(|c| OsString::from_vec(c.into_bytes()))
            .map_err(|e| self.io("reading the symlink", rel, e))
    }

    /// The names in a directory, sorted. Read with `O_NOATIME`: listing leaves the
    /// directory's access time as it was.
    pub fn list(&self, rel: &Path) -> Result<Vec<OsString>, FsError> {
        self.check_rel(rel)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
        let fd = match self.beneath(rel, flags | OFlags::NOATIME) {
            Err(e) if errno(&e) == Some(libc::EPERM) => self.beneath(rel, flags),
            r => r,
        }
        .map_err(|e| self.io("opening directory", rel, e))?;
        let mut names = Vec::new();
        for e in rfs::Dir::new(fd).map_err(|e| self.io("listing", rel, e))? {
            let e = e.map_err(|e| self.io("listing", rel, e))?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsString::from_vec(n.to_vec()));
            }
        }
        names.sort();
        Ok(names)
    }

    /// Read the node's whole state (not a file's bytes: [`Root::read_file`]).
    pub fn capture(&self, rel: &Path) -> Result<Node, FsError> {
        self.capture_node(rel, true)
    }

    /// With `target` false a symlink's target is not read (reading it updates its atime).
    fn capture_node(&self, rel: &Path, target: bool) -> Result<Node, FsError> {
        self.check_rel(rel)?;
        let fd = self.node(rel).map_err(|e| self.io("opening", rel, e))?;
        let st = rfs::fstat(&fd).map_err(|e| self.io("reading the status of", rel, e))?;
        // Times first: reading a symlink's target updates its atime.
        let atime = Time {
            sec: st.st_atime,
            nsec: st.st_atime_nsec as u32,
        };
        let mtime = Time {
            sec: st.st_mtime,
            nsec: st.st_mtime_nsec as u32,
        };
        let rdev = st.st_rdev;
        let kind = match file_type(st.st_mode) {
            FileType::RegularFile => Kind::File {
                size: st.st_size as u64,
            },
            FileType::Directory => Kind::Dir,
            FileType::Symlink => {
                let t = if target {
                    let raw = rfs::readlinkat(&fd, "", Vec::new())
                        .map_err(|e| self.io("reading the symlink", rel, e))?;
                    String::from_utf8(raw.into_bytes()).map_err(|_| FsError::Refused {
                        path: self.show(rel),
                        why: "the symlink's target is not UTF-8; the journal cannot record it"
                            .into(),
                    })?
                } else {
                    String::new()
                };
                Kind::Special(Special::Symlink { target: t })
            }
            FileType::Fifo => Kind::Special(Special::Fifo),
            FileType::Socket => Kind::Special(Special::Socket),
            FileType::CharacterDevice => Kind::Special(Special::CharDevice { rdev }),
            FileType::BlockDevice => Kind::Special(Special::BlockDevice { rdev }),
            FileType::Unknown => {
                return Err(FsError::Refused {
                    path: self.show(rel),
                    why: "a node of unknown type".into(),
                })
            }
        };
        let xattrs = self.read_xattrs(&fd, rel)?;
        Ok(Node {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            meta: Meta {
                xattrs,
                atime,
                mtime,
            },
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    fn xattr_names(&self, fd: &OwnedFd, rel: &Path) -> Result<Vec<Vec<u8>>, FsError> {
        let p = magic(fd);
        loop {
            let n = match rfs::listxattr_query(&p) {
                Ok(n) => n,
                Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
                Err(e) => return Err(self.io("listing extended attributes of", rel, e)),
            };
            if n == 0 {
                return Ok(Vec::new());
            }
            let mut buf = vec![0u8; n];
            match rfs::listxattr(&p, &mut buf[..]) {
                Ok(len) => {
                    buf.truncate(len);
                    return Ok(buf
                        .split(|b| *b == 0)
                        .filter(|n| !n.is_empty())
                        .map(<[u8]>::to_vec)
                        .collect());
                }
                // Grew between the two calls: ask again.
                Err(rustix::io::Errno::RANGE) => continue,
                Err(e) => return Err(self.io("listing extended attributes of", rel, e)),
            }
        }
    }

    fn read_xattrs(&self, fd: &OwnedFd, rel: &Path) -> Result<Vec<Xattr>, FsError> {
        let p = magic(fd);
        let mut out = Vec::new();
        for name in self.xattr_names(fd, rel)? {
            let shown = String::from_utf8(name.clone()).map_err(|_| FsError::Refused {
                path: self.show(rel),
                why: "an extended attribute's name is not UTF-8; the journal cannot record it"
                    .into(),
            })?;
            let value = loop {
                let n = match rfs::getxattr_query(&p, name.as_slice()) {
                    Ok(n) => n,
                    Err(e) => return Err(self.io("reading extended attributes of", rel, e)),
                };
                let mut buf = vec![0u8; n];
                if n == 0 {
                    break buf;
                }
                match rfs::getxattr(&p, name.as_slice(), &mut buf[..]) {
                    Ok(len) => {
                        buf.truncate(len);
                        break buf;
                    }
                    Err(rustix::io::Errno::RANGE) => continue,
                    Err(e) => return Err(self.io("reading extended attributes of", rel, e)),
                }
            };
            out.push(Xattr { name: shown, value });
        }
        out.sort();
        Ok(out)
    }

    /// The node as a file opened with `flags`, after checking through an `O_PATH`
    /// descriptor that it is a regular file (the `expect`ed one, when given): a FIFO or a
    /// device is never opened.
    fn open_file(&self, rel: &Path, expect: Option<&Node>, flags: OFlags) -> Result<File, FsError> {
        self.check_rel(rel)?;
        let fd = self.node(rel).map_err(|e| self.io("opening", rel, e))?;
        let st = rfs::fstat(&fd).map_err(|e| self.io("reading the status of", rel, e))?;
        let same = expect.is_none_or(|n| n.dev == st.st_dev && n.ino == st.st_ino);
        if file_type(st.st_mode) != FileType::RegularFile || !same {
            return Err(FsError::Refused {
                path: self.show(rel),
                why: "it is no longer the regular file Murphy found there".into(),
            });
        }
        // O_NOATIME: reading leaves the file's access time as it was (root may ask for it
        // on any file; without the right, read as anyone would).
        let flags = flags | OFlags::CLOEXEC;
        match rfs::open(magic(&fd), flags | OFlags::NOATIME, Mode::empty()) {
            Err(rustix::io::Errno::PERM) => rfs::open(magic(&fd), flags, Mode::empty()),
            r => r,
        }
        .map(File::from)
        .map_err(|e| self.io("opening", rel, e))
    }

    /// A regular file's bytes.
    pub fn read_file(&self, rel: &Path, expect: Option<&Node>) -> Result<Vec<u8>, FsError> {
        let mut f = self.open_file(rel, expect, OFlags::RDONLY)?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .map_err(|e| self.io("reading", rel, e))?;
        Ok(bytes)
    }

    /// Write a regular file's bytes in place (same inode: hard links and open descriptors
    /// see them), cut to their length, and sync.
    pub fn write_file(
        &self,
        rel: &Path,
        expect: Option<&Node>,
        bytes: &[u8],
    ) -> Result<(), FsError> {
        let mut f = self.open_file(rel, expect, OFlags::WRONLY)?;
        f.write_all(bytes)
            .and_then(|()| f.set_len(bytes.len() as u64))
            .and_then(|()| f.sync_all())
            .map_err(|e| self.io("writing", rel, e))
    }

    /// Remove the node: a symlink as a link, a directory with everything in it (never
    /// following a symlink inside). Absent is done.
    pub fn remove(&self, rel: &Path) -> Result<(), FsError> {
        self.check_rel(rel)?;
        let Some((parent, name)) = split(rel) else {
            return Err(FsError::Refused {
                path: self.show(rel),
                why: "the root itself is never removed".into(),
            });
        };
        let dir = match self.dir(parent, false) {
            Ok(d) => d,
            Err(FsError::Io { source, .. }) if is_absent(&source) => return Ok(()),
            Err(e) => return Err(e),
        };
        let st = match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.io("reading the status of", rel, e)),
        };
        if file_type(st.st_mode) == FileType::Directory {
            // std's remove_dir_all opens every level with O_NOFOLLOW and unlinks links
            // as links; the magic link pins the parent found above.
            std::fs::remove_dir_all(magic(&dir).join(name))
                .or_else(|e| if is_absent(&e) { Ok(()) } else { Err(e) })
                .map_err(|e| self.io("removing", rel, e))
        } else {
            match rfs::unlinkat(&dir, name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(self.io("removing", rel, e)),
            }
        }
    }

    /// Put the node at `rel` back as `want` says, then read it again: any difference is
    /// an error. Idempotent: a node already as it was only has its metadata set again.
    /// Missing directories on the way are made. A file, symlink or special node replaces
    /// a non-directory standing in its place (as the original would); a directory standing
    /// where something else was, or anything but a directory where a directory was, is
    /// left alone and the restore fails (what is there is not Murphy's to remove).
    pub fn restore(&self, rel: &Path, want: &Want<'_>) -> Result<String, FsError> {
        self.check_rel(rel)?;
        let shown = self.show(rel);
        let Some((parent_rel, name)) = split(rel) else {
            // The root itself: only a directory's metadata.
            if !matches!(want.content, Content::Dir) {
                return Err(FsError::Refused {
                    path: shown,
                    why: "the root can only be restored as a directory".into(),
                });
            }
            self.set_meta(None, rel, want)?;
            self.verify(rel, want)?;
            return Ok(format!("{} has its metadata back", shown.display()));
        };
        let parent = self.dir(parent_rel, true)?;
        let now = match rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(st),
            Err(rustix::io::Errno::NOENT) => None,
            Err(e) => return Err(self.io("reading the status of", rel, e)),
        };
        let now_type = now.map(|st| file_type(st.st_mode));
        if now_type == Some(FileType::Directory) && !matches!(want.content, Content::Dir) {
            return Err(FsError::Refused {
                path: shown,
                why: "a directory now stands where the original was; it is left as it is".into(),
            });
        }
        let tmp = OsString::from(format!(".{}.murphy-restore", name.to_string_lossy()));
        let mut did = "already as it was";
        match want.content {
            Content::File(bytes) => {
                if now_type == Some(FileType::RegularFile) {
                    if self.read_file(rel, None)? != bytes {
                        self.write_file(rel, None, bytes)?;
                        did = "restored";
                    }
                } else {
                    self.replace(&parent, rel, &tmp, |d| {
                        let f = rfs::openat(
                            d,
                            tmp.as_os_str(),
                            OFlags::WRONLY
                                | OFlags::CREATE
                                | OFlags::EXCL
                                | OFlags::NOFOLLOW
                                | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o600),
                        )?;
                        let mut f = File::from(f);
                        f.write_all(bytes)?;
                        f.sync_all()
                    })?;
                    did = "restored";
                }
            }
            Content::Dir => {
                if let Some(t) = now_type.filter(|t| *t != FileType::Directory) {
                    return Err(FsError::Refused {
                        path: shown,
                        why: format!(
                            "a {} now stands where the directory was; it is left as it is",
                            type_name(t)
                        ),
                    });
                }
                if now.is_none() {
                    match rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(self.io("making directory", rel, e)),
                    }
                    did = "restored";
                }
            }
            Content::Special(s) => {
                let same = match (s, now) {
                    (Special::Symlink { target }, Some(_))
                        if now_type == Some(FileType::Symlink) =>
                    {
                        self.read_link(rel)?.as_bytes() == target.as_bytes()
                    }
                    (_, Some(st)) => special_of(&st).as_ref() == Some(s),
                    (_, None) => false,
                };
                if !same {
                    self.replace(&parent, rel, &tmp, |d| make_special(d, &tmp, s))?;
                    did = "restored";
                }
            }
        }
        self.set_meta(Some((&parent, name)), rel, want)?;
        self.verify(rel, want)?;
        Ok(format!("{did} {}", shown.display()))
    }

    /// Make the node under the temporary name `tmp` with `make`, then rename it over
    /// whatever stands at `rel` (a non-directory).
    fn replace(
        &self,
        parent: &OwnedFd,
        rel: &Path,
        tmp: &OsStr,
        make: impl FnOnce(&OwnedFd) -> io::Result<()>,
    ) -> Result<(), FsError> {
        let name = rel.file_name().unwrap_or_default();
        match rfs::unlinkat(parent, tmp, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(self.io("removing a stale temporary file beside", rel, e)),
        }
        make(parent).map_err(|e| self.io("making", rel, e))?;
        rfs::renameat(parent, tmp, parent, name).map_err(|e| {
            let _ = rfs::unlinkat(parent, tmp, AtFlags::empty());
            self.io("renaming into place", rel, e)
        })
    }

    /// Owner, then mode (chown clears setuid bits), then extended attributes (chown drops
    /// `security.capability`), then times, last (everything before may change them).
    fn set_meta(
        &self,
        at: Option<(&OwnedFd, &OsStr)>,
        rel: &Path,
        want: &Want<'_>,
    ) -> Result<(), FsError> {
        let fd = self.node(rel).map_err(|e| self.io("opening", rel, e))?;
        let st = rfs::fstat(&fd).map_err(|e| self.io("reading the status of", rel, e))?;
        let link = file_type(st.st_mode) == FileType::Symlink;
        // Only what differs is changed: fewer privileged calls, fewer ways to fail.
        let chown = (st.st_uid, st.st_gid) != (want.uid, want.gid);
        if chown {
            rfs::chownat(
                &fd,
                "",
                Some(rfs::Uid::from_raw(want.uid)),
                Some(rfs::Gid::from_raw(want.gid)),
                AtFlags::EMPTY_PATH,
            )
            .map_err(|e| self.io("setting the owner of", rel, e))?;
        }
        // After a chown the setuid and setgid bits may be gone: set the mode again.
        if !link && (chown || st.st_mode & 0o7777 != want.mode & 0o7777) {
            // Through the descriptor's magic link: the node checked above, never a
            // symlink's target.
            rfs::chmodat(
                CWD,
                magic(&fd),
                Mode::from_raw_mode(want.mode & 0o7777),
                AtFlags::empty(),
            )
            .map_err(|e| self.io("setting the mode of", rel, e))?;
        }
        let Some(meta) = want.meta else {
            return Ok(());
        };
        let p = magic(&fd);
        // Read after the chown, which drops `security.capability`.
        let now = self.read_xattrs(&fd, rel)?;
        for x in meta.xattrs.iter().filter(|x| !now.contains(x)) {
            rfs::setxattr(&p, x.name.as_str(), &x.value, rfs::XattrFlags::empty())
                .map_err(|e| self.io("setting extended attributes of", rel, e))?;
        }
        for x in now
            .iter()
            .filter(|n| !meta.xattrs.iter().any(|x| x.name == n.name))
        {
            rfs::removexattr(&p, x.name.as_str())
                .map_err(|e| self.io("removing an extended attribute of", rel, e))?;
        }
        let times = Timestamps {
            last_access: timespec(meta.atime),
            last_modification: timespec(meta.mtime),
        };
        match at {
            Some((dir, name)) => rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW),
            // The root itself: a directory, reached through its descriptor.
            None => rfs::utimensat(CWD, p, &times, AtFlags::empty()),
        }
        .map_err(|e| self.io("setting the times of", rel, e))
    }

    /// Read the node again and compare it with `want` (a symlink's target was compared
    /// before its times were set; reading it again would change its atime).
    fn verify(&self, rel: &Path, want: &Want<'_>) -> Result<(), FsError> {
        let got = self.capture_node(rel, false)?;
        let mut diff = Vec::new();
        match (&want.content, &got.kind) {
            (Content::File(b), Kind::File { size }) => {
                if *size != b.len() as u64 {
                    diff.push(format!("{size} bytes, not {}", b.len()));
                }
            }
            (Content::Dir, Kind::Dir) => {}
            (Content::Special(Special::Symlink { .. }), Kind::Special(Special::Symlink { .. })) => {
            }
            (Content::Special(s), Kind::Special(g)) if s == &g => {}
            (w, g) => diff.push(format!("a {g:?}, not a {w:?}")),
        }
        let link = matches!(got.kind, Kind::Special(Special::Symlink { .. }));
        if !link && got.mode != want.mode & 0o7777 {
            diff.push(format!("mode {:o}, not {:o}", got.mode, want.mode & 0o7777));
        }
        if (got.uid, got.gid) != (want.uid, want.gid) {
            diff.push(format!(
                "owner {}:{}, not {}:{}",
                got.uid, got.gid, want.uid, want.gid
            ));
        }
        if let Some(m) = want.meta {
            if got.meta.xattrs != m.xattrs {
                let names = |v: &[Xattr]| v.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
                diff.push(format!(
                    "extended attributes {:?}, not {:?}",
                    names(&got.meta.xattrs),
                    names(&m.xattrs)
                ));
            }
            if got.meta.mtime != m.mtime {
                diff.push(format!("mtime {:?}, not {:?}", got.meta.mtime, m.mtime));
            }
            if got.meta.atime != m.atime {
                diff.push(format!("atime {:?}, not {:?}", got.meta.atime, m.atime));
            }
        }
        if diff.is_empty() {
            Ok(())
        } else {
            Err(FsError::Differs {
                path: self.show(rel),
                what: diff.join("; "),
            })
        }
    }
}

fn timespec(t: Time) -> rfs::Timespec {
    rfs::Timespec {
        tv_sec: t.sec,
        tv_nsec: i64::from(t.nsec) as _,
    }
}

/// A path's directory and last name; `None` for the root itself (an empty path).
fn split(rel: &Path) -> Option<(&Path, &OsStr)> {
    Some((rel.parent()?, rel.file_name()?))
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "node of unknown type",
    }
}

/// The special node a status describes (without a symlink's target).
fn special_of(st: &rfs::Stat) -> Option<Special> {
    let rdev = st.st_rdev;
    match file_type(st.st_mode) {
        FileType::Fifo => Some(Special::Fifo),
        FileType::Socket => Some(Special::Socket),
        FileType::CharacterDevice => Some(Special::CharDevice { rdev }),
        FileType::BlockDevice => Some(Special::BlockDevice { rdev }),
        _ => None,
    }
}

fn make_special(dir: &OwnedFd, name: &OsStr, s: &Special) -> io::Result<()> {
    let node = |t: FileType, rdev: u64| {
        rfs::mknodat(dir.as_fd(), name, t, Mode::from_raw_mode(0o600), rdev)
    };
    match s {
        Special::Symlink { target } => rfs::symlinkat(target.as_str(), dir, name),
        Special::Fifo => node(FileType::Fifo, 0),
        Special::Socket => node(FileType::Socket, 0),
        Special::CharDevice { rdev } => node(FileType::CharacterDevice, *rdev),
        Special::BlockDevice { rdev } => node(FileType::BlockDevice, *rdev),
    }
    .map_err(io::Error::from)
}

/// Extended attribute values as base64 strings in the journal.
mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_path_names_its_root() {
        assert_eq!(
            RootRef::of_legacy_path(Path::new("/proc/123/root/var/lib/x")).path,
            Path::new("/proc/123/root")
        );
        assert_eq!(
            RootRef::of_legacy_path(Path::new("/var/lib/x")).path,
            Path::new("/")
        );
        assert_eq!(
            RootRef::of_legacy_path(Path::new("/proc/self/root/x")).path,
            Path::new("/")
        );
    }

    #[test]
    fn openat2_refuses_a_symlink_on_the_way_and_dotdot_out() {
        let d = std::env::temp_dir().join(format!("murphy-fsnode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("in/real")).expect("dirs");
        std::fs::write(d.join("in/real/f"), "x").expect("file");
        std::os::unix::fs::symlink("real", d.join("in/link")).expect("link");
        let root = Root::open(&d.join("in")).expect("root");
        assert!(root.lstat(Path::new("real/f")).expect("lstat").is_some());
        assert!(
            matches!(
                root.lstat(Path::new("link/f")),
                Err(FsError::Refused { .. })
            ),
            "a symlink on the way is refused, not followed"
        );
        // The link itself is a node of its own.
        let n = root.capture(Path::new("link")).expect("capture");
        assert_eq!(
            n.kind,
            Kind::Special(Special::Symlink {
                target: "real".into()
            })
        );
        assert!(root.lstat(Path::new("../in")).is_err(), ".. is refused");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn meta_keeps_xattr_values_exact_in_json() {
        let m = Meta {
            xattrs: vec![Xattr {
                name: "user.k".into(),
                value: vec![0, 255, 10],
            }],
            atime: Time { sec: 1, nsec: 2 },
            mtime: Time { sec: 3, nsec: 4 },
        };
        let j = serde_json::to_string(&m).expect("json");
        assert_eq!(serde_json::from_str::<Meta>(&j).expect("back"), m);
    }
}
