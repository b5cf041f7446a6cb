//! Data faults against real files seen through a lab process: each one changes the files
//! for real, revert (twice) restores every node exactly — bytes, symlinks as links with
//! their exact targets, FIFOs, device nodes, directories, modes, owners, extended
//! attributes and times — and a simulated crash (the runner gone mid-fault) is undone by
//! `murphy recover` from the journal's copies, even for a wipe marked `restore: false`.
//! Symlinks are never followed out of bounds, and a restore that cannot be exact fails
//! instead of saying "restored". Nothing is left behind.

mod common;
use common::*;
use murphy::fault::{self, FaultEnv, Member, UndoLog};
use murphy::journal::{Journal, Netns, NoLab};
use murphy::model::quantity::ByteSize;
use murphy::model::spec::{
    ConfigCorrupt, ConfigSet, CorruptHow, DataCorrupt, DataWipe, FaultAction, WipeMode,
};
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn env(max: u64, allow: &[&Path]) -> FaultEnv {
    FaultEnv {
        exe: env!("CARGO_BIN_EXE_murphy").into(),
        lease: Duration::from_secs(60),
        peer_addrs: vec![],
        seed: 99,
        max_data_bytes: max,
        allow_paths: allow.iter().map(|p| p.to_path_buf()).collect(),
        from: None,
    }
}

const LAB: &str = "
subnet: 10.78.12.0/24
hosts:
  - name: db
    processes:
      - {name: app, argv: [sleep, '600']}
";

fn member(fx: &Fixture) -> Member {
    let (netns, addr) = fx.lab().host("db").expect("host");
    Member {
        label: "db/app".into(),
        procs: fx
            .lab()
            .processes("db", Some("app"))
            .into_iter()
            .flat_map(|(_, p)| p)
            .collect(),
        netns: Netns::Named { name: netns },
        addrs: vec![addr],
        lab: Some(("db".into(), Some("app".into()))),
    }
}

fn nobody() -> u32 {
    nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .map_or(65534, |u| u.uid.as_raw())
}

/// Everything a node is, read without following it and without touching access times
/// (files and directories are read with O_NOATIME; a symlink's target is read after its
/// times).
#[derive(Clone, Debug, PartialEq)]
struct State {
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
    bytes: Vec<u8>,
    target: Option<PathBuf>,
    xattrs: BTreeMap<String, Vec<u8>>,
    atime: (i64, i64),
    mtime: (i64, i64),
}

type Snapshot = BTreeMap<PathBuf, State>;

/// Compare two snapshots, naming each node and field that differs (not whole contents).
#[track_caller]
fn assert_same(got: &Snapshot, want: &Snapshot, what: &str) {
    let mut diff = Vec::new();
    for (p, w) in want {
        match got.get(p) {
            None => diff.push(format!("{}: missing", p.display())),
            Some(g) if g != w => {
                let mut f = Vec::new();
                if g.bytes != w.bytes {
                    f.push(format!("bytes ({} vs {})", g.bytes.len(), w.bytes.len()));
                }
                let (mut g2, mut w2) = (g.clone(), w.clone());
                g2.bytes.clear();
                w2.bytes.clear();
                if g2 != w2 {
                    f.push(format!("{g2:?} vs {w2:?}"));
                }
                diff.push(format!("{}: {}", p.display(), f.join("; ")));
            }
            _ => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        diff.push(format!("{}: extra", p.display()));
    }
    assert!(diff.is_empty(), "{what}:\n{}", diff.join("\n"));
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut buf[..]).expect("llistxattr");
    let mut out = BTreeMap::new();
    for name in buf[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(p, name, &mut v[..]).expect("lgetxattr");
        v.truncate(len);
        out.insert(String::from_utf8_lossy(name).into_owned(), v);
    }
    out
}

fn snapshot(root: &Path) -> Snapshot {
    fn go(p: &Path, out: &mut Snapshot) {
        let m = std::fs::symlink_metadata(p).expect("meta");
        let mut s = State {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev(),
            bytes: Vec::new(),
            target: None,
            xattrs: xattrs(p),
            atime: (m.atime(), m.atime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
        };
        let mut kids = Vec::new();
        if m.file_type().is_symlink() {
            s.target = Some(std::fs::read_link(p).expect("readlink"));
        } else if m.is_file() {
            use std::io::Read;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
                .open(p)
                .expect("open")
                .read_to_end(&mut s.bytes)
                .expect("read");
        } else if m.is_dir() {
            let fd = rustix::fs::open(
                p,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOATIME
                    | rustix::fs::OFlags::NOFOLLOW,
                rustix::fs::Mode::empty(),
            )
            .expect("open dir");
            for e in rustix::fs::Dir::new(fd).expect("dir") {
                let e = e.expect("entry");
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    kids.push(p.join(std::ffi::OsStr::from_bytes(n)));
                }
            }
        }
        out.insert(p.to_path_buf(), s);
        for k in kids {
            go(&k, out);
        }
    }
    let mut out = BTreeMap::new();
    go(root, &mut out);
    out
}

/// The snapshot to compare with: the first read of a symlink updates its access time
/// (reading its target always does, and a fresh link's atime is not after its ctime), so
/// the state is taken once that has happened, as a running system would leave it.
fn settled(root: &Path) -> Snapshot {
    snapshot(root);
    snapshot(root)
}

/// A file's bytes, read without updating its access time.
fn read(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut b = Vec::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
        .open(p)
        .expect("open")
        .read_to_end(&mut b)
        .expect("read");
    b
}

fn set_times(p: &Path, atime: i64, mtime: i64) {
    let ts = |s: i64| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: 123_456_789,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("utimensat");
}

/// A directory outside the tree that a symlink in it points to, with a file that must
/// never be touched.
fn make_outside(base: &Path) -> (PathBuf, Vec<u8>) {
    let outside = base.join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    let secret = outside.join("secret");
    let bytes: Vec<u8> = (0..9000u32).map(|i| (i % 239) as u8).collect();
    std::fs::write(&secret, &bytes).expect("secret");
    (secret, bytes)
}

/// A tree holding every kind of node: regular files of several sizes, modes and owners
/// (setgid included), nested directories with odd modes (sticky 1750), a non-root owner,
/// symlinks with relative and absolute targets, a dangling one, one to a directory outside
/// the tree, a FIFO, a character device (/dev/null's rdev), extended attributes on a file,
/// a directory and a symlink, and set access and modification times on everything.
/// Returns the number of regular files and their bytes.
fn make_tree(root: &Path) -> (usize, u64) {
    std::fs::create_dir_all(root.join("sub/deeper")).expect("dirs");
    std::fs::create_dir_all(root.join("dev")).expect("dirs");
    let nobody = nobody();
    let files: [(&str, usize, u32, u32); 5] = [
        ("a.dat", 70_000, 0o640, 0),
        ("b.conf", 300, 0o600, nobody),
        ("sub/c.log", 5_000, 0o644, 0),
        ("sub/deeper/d.bin", 1, 0o400, nobody),
        ("sub/tool", 64, 0o2755, 0),
    ];
    let mut bytes = 0;
    for (name, size, mode, uid) in files {
        let p = root.join(name);
        let b: Vec<u8> = (0..size).map(|i| (i * 7 + name.len()) as u8).collect();
        std::fs::write(&p, &b).expect("write");
        std::os::unix::fs::chown(&p, Some(uid), Some(uid)).expect("chown");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        bytes += size as u64;
    }
    std::os::unix::fs::symlink("a.dat", root.join("rel-link")).expect("link");
    std::os::unix::fs::symlink("/etc/hostname", root.join("sub/abs-link")).expect("link");
    std::os::unix::fs::symlink("nowhere/at/all", root.join("dangling")).expect("link");
    std::os::unix::fs::symlink("../outside", root.join("out")).expect("link");
    std::os::unix::fs::lchown(root.join("dangling"), Some(nobody), Some(nobody)).expect("chown");
    nix::unistd::mkfifo(
        &root.join("sub/pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o620),
    )
    .expect("mkfifo");
    let null = std::fs::metadata("/dev/null").expect("null").rdev();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("dev/null-twin"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        null,
    )
    .expect("mknod");
    for (p, name, value) in [
        ("b.conf", "user.murphy.owner", &b"dba"[..]),
        ("sub", "user.murphy.dir", &b"\x00\x01binary"[..]),
        ("rel-link", "trusted.murphy.link", &b"on a link"[..]),
    ] {
        rustix::fs::lsetxattr(root.join(p), name, value, rustix::fs::XattrFlags::empty())
            .expect("setxattr");
    }
    std::fs::set_permissions(root.join("sub"), std::fs::Permissions::from_mode(0o1750))
        .expect("chmod dir");
    std::os::unix::fs::chown(root.join("sub/deeper"), Some(nobody), Some(0)).expect("chown");
    std::fs::set_permissions(
        root.join("sub/deeper"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod dir");
    // Times last, children before their directory, each node its own.
    let mut all: Vec<PathBuf> = snapshot(root).into_keys().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_times(
            p,
            1_000_000_000 + i as i64 * 1000,
            900_000_000 + i as i64 * 7,
        );
    }
    (files.len(), bytes)
}

fn inject(
    fx: &Fixture,
    action: FaultAction,
    group: &str,
    max: u64,
    allow: &[&Path],
) -> (
    Box<dyn fault::Fault>,
    Vec<murphy::journal::UndoAction>,
    Result<(), String>,
) {
    let m = member(fx);
    let mut f = fault::build(&action, &env(max, allow), group);
    let mut undo = UndoLog::new(&fx.journal, group, group).expect("undo");
    let r = f
        .inject(std::slice::from_ref(&m), &mut undo)
        .map_err(|e| e.to_string());
    (f, undo.into_actions(), r)
}

fn wipe(paths: &[&Path]) -> FaultAction {
    FaultAction::DataWipe(DataWipe {
        paths: paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        ..Default::default()
    })
}

fn assert_no_temp_files(root: &Path) {
    for p in snapshot(root).keys() {
        assert!(
            !p.to_string_lossy().contains(".murphy-restore"),
            "temporary file left: {}",
            p.display()
        );
    }
}

#[test]
fn data_wipe_restores_every_node_exactly_links_fifos_devices_xattrs_and_times() {
    let mut fx = Fixture::new("wipe", LAB);
    let base = fx.state.join("pg");
    let (secret, secret_bytes) = make_outside(&base);
    let root = base.join("data");
    let (files, bytes) = make_tree(&root);
    let before = settled(&root);
    let outside_before = settled(&base.join("outside"));
    let (mut f, actions, r) = inject(&fx, wipe(&[&root]), "w1", 1 << 30, &[]);
    r.expect("inject");
    let ev = f.confirm().expect("confirm");
    assert!(
        std::fs::symlink_metadata(&root).is_err(),
        "the tree is gone ({})",
        ev.0
    );
    assert!(
        ev.0.contains(&format!("{files} file(s), {bytes} bytes")),
        "{}",
        ev.0
    );
    assert!(ev.0.contains("and 6 symlink(s)"), "{}", ev.0);
    assert_eq!(
        read(&secret),
        secret_bytes,
        "the directory a symlink in the tree points to is not followed"
    );
    let done = fault::revert(&actions, &NoLab).expect("revert");
    assert!(
        done.iter().any(|d| d.contains("symlink to \"../outside\"")),
        "{done:?}"
    );
    assert_same(
        &snapshot(&root),
        &before,
        "every node is back: type, bytes, link targets, rdev, mode, owner, xattrs, times",
    );
    fault::revert(&actions, &NoLab).expect("revert is idempotent");
    assert_same(&snapshot(&root), &before, "a second revert changes nothing");
    assert_same(
        &snapshot(&base.join("outside")),
        &outside_before,
        "outside untouched",
    );
    assert_no_temp_files(&root);
    assert!(
        fx.journal.data_dir().join("w1").exists(),
        "copies kept until done"
    );
    fx.journal.done("w1").expect("done");
    assert!(
        !fx.journal.data_dir().join("w1").exists(),
        "journal copies removed once the fault is done"
    );
    fx.teardown_and_assert_clean();
}

/// The bug: wiping a symlink deleted it and the revert said "nothing to undo".
#[test]
fn wiping_a_symlink_removes_the_link_not_its_target_and_revert_puts_the_link_back() {
    let mut fx = Fixture::new("wipelink", LAB);
    let base = fx.state.join("links");
    let (secret, secret_bytes) = make_outside(&base);
    let root = base.join("data");
    make_tree(&root);
    let before = settled(&root);
    let (mut f, actions, r) = inject(
        &fx,
        wipe(&[&root.join("out"), &root.join("dangling")]),
        "wl",
        1 << 30,
        &[],
    );
    r.expect("inject");
    f.confirm().expect("confirm");
    assert!(
        std::fs::symlink_metadata(root.join("out")).is_err(),
        "the link is gone"
    );
    assert_eq!(read(&secret), secret_bytes);
    assert!(!actions.is_empty());
    fault::revert(&actions, &NoLab).expect("revert");
    assert_same(
        &snapshot(&root),
        &before,
        "the links and their directory's times",
    );
    assert_eq!(
        std::fs::read_link(root.join("out")).expect("a link again"),
        Path::new("../outside")
    );
    fx.teardown_and_assert_clean();
}

#[test]
fn truncating_a_tree_empties_its_files_only_and_revert_restores_them() {
    let mut fx = Fixture::new("trunc", LAB);
    let root = fx.state.join("t");
    make_outside(&fx.state);
    make_tree(&root);
    let before = settled(&root);
    let (mut f, actions, r) = inject(
        &fx,
        FaultAction::DataWipe(DataWipe {
            paths: vec![root.to_string_lossy().into_owned()],
            mode: Some(WipeMode::Truncate),
            ..Default::default()
        }),
        "tr",
        1 << 30,
        &[],
    );
    r.expect("inject");
    f.confirm().expect("confirm");
    assert_eq!(std::fs::metadata(root.join("a.dat")).expect("a").len(), 0);
    assert_eq!(
        std::fs::read_link(root.join("rel-link")).expect("link"),
        Path::new("a.dat"),
        "links are left alone"
    );
    fault::revert(&actions, &NoLab).expect("revert");
    fault::revert(&actions, &NoLab).expect("revert again");
    assert_same(&snapshot(&root), &before, "as before");
    fx.teardown_and_assert_clean();
}

#[test]
fn data_corrupt_changes_bytes_and_revert_restores_them_exactly() {
    let mut fx = Fixture::new("corrupt", LAB);
    let root = fx.state.join("files");
    make_outside(&fx.state);
    make_tree(&root);
    let before = settled(&root);
    let pattern = format!("{}/*.dat", root.display());
    for how in [
        CorruptHow::Bitflip,
        CorruptHow::Zero,
        CorruptHow::Garbage,
        CorruptHow::Truncate,
    ] {
        let group = format!("c-{how:?}");
        let (mut f, actions, r) = inject(
            &fx,
            FaultAction::DataCorrupt(DataCorrupt {
                paths: vec![pattern.clone()],
                how: Some(how),
                length: Some(ByteSize(512)),
                count: Some(3),
                ..Default::default()
            }),
            &group,
            1 << 30,
            &[],
        );
        r.expect("inject");
        f.confirm().expect("confirm");
        let now = read(&root.join("a.dat"));
        let orig = &before[&root.join("a.dat")].bytes;
        assert_ne!(&now, orig, "{how:?} changed the file");
        if how != CorruptHow::Truncate {
            let changed = now.iter().zip(orig).filter(|(a, b)| a != b).count();
            assert!(
                (1..=3 * 512).contains(&changed),
                "{how:?}: {changed} bytes changed"
            );
        }
        assert_eq!(
            read(&root.join("sub/c.log")),
            before[&root.join("sub/c.log")].bytes,
            "files outside the pattern are untouched"
        );
        fault::revert(&actions, &NoLab).expect("revert");
        fault::revert(&actions, &NoLab).expect("revert again");
        assert_same(
            &snapshot(&root),
            &before,
            &format!("{how:?} reverted exactly"),
        );
    }
    assert_no_temp_files(&root);
    fx.teardown_and_assert_clean();
}

/// The bug: corrupting a file through a symlinked directory while another fault wiped
/// that directory left the file outside corrupted, while the run logged "restored" (the
/// revert made a real directory where the link had been and wrote there).
#[test]
fn corrupting_through_a_symlinked_directory_being_wiped_restores_the_file_it_reached() {
    let mut fx = Fixture::new("linkcorrupt", LAB);
    let base = fx.state.join("lc");
    let (secret, secret_bytes) = make_outside(&base);
    let root = base.join("data");
    make_tree(&root);
    let outside_before = settled(&base.join("outside"));
    for corrupt_first in [true, false] {
        let tag = if corrupt_first { "a" } else { "b" };
        let before = settled(&root);
        let (mut c, corrupt_undo, r) = inject(
            &fx,
            FaultAction::DataCorrupt(DataCorrupt {
                paths: vec![format!("{}/out/secret", root.display())],
                how: Some(CorruptHow::Zero),
                ..Default::default()
            }),
            &format!("c{tag}"),
            1 << 30,
            &[],
        );
        r.expect("corrupt");
        c.confirm().expect("corrupted");
        assert_ne!(read(&secret), secret_bytes);
        let (_, wipe_undo, r) = inject(&fx, wipe(&[&root]), &format!("w{tag}"), 1 << 30, &[]);
        r.expect("wipe");
        // The faults end in either order; each revert must be exact or fail.
        let (first, second) = if corrupt_first {
            (&corrupt_undo, &wipe_undo)
        } else {
            (&wipe_undo, &corrupt_undo)
        };
        fault::revert(first, &NoLab).expect("first revert");
        fault::revert(second, &NoLab).expect("second revert");
        assert_eq!(
            read(&secret),
            secret_bytes,
            "the file the symlink led to is restored ({tag})"
        );
        assert_same(
            &snapshot(&base.join("outside")),
            &outside_before,
            "outside untouched",
        );
        assert_same(
            &snapshot(&root),
            &before,
            &format!("the link is a link again ({tag})"),
        );
    }
    fx.teardown_and_assert_clean();
}

/// `guardrails.allowPaths` is checked again once symlinks are resolved: a path that
/// resolves outside is refused with nothing touched and nothing recorded, as is one that
/// resolves into /proc through a link. Inside, the fault runs.
#[test]
fn a_path_that_resolves_outside_allow_paths_or_into_proc_is_refused_untouched() {
    let mut fx = Fixture::new("allow", LAB);
    let base = fx.state.join("al");
    let (secret, secret_bytes) = make_outside(&base);
    let root = base.join("data");
    make_tree(&root);
    std::os::unix::fs::symlink("/proc/self", root.join("me")).expect("link");
    let before = settled(&root);
    let corrupt = |p: String| {
        FaultAction::DataCorrupt(DataCorrupt {
            paths: vec![p],
            ..Default::default()
        })
    };
    let (_, actions, r) = inject(
        &fx,
        corrupt(format!("{}/out/secret", root.display())),
        "o1",
        1 << 30,
        &[&root],
    );
    let e = r.expect_err("refused");
    assert!(
        e.contains("guardrails.allowPaths") && e.contains("outside/secret"),
        "{e}"
    );
    assert!(actions.is_empty(), "nothing recorded");
    let (_, actions, r) = inject(&fx, wipe(&[&root.join("out/*")]), "o2", 1 << 30, &[&root]);
    assert!(r.expect_err("refused").contains("allowPaths"));
    assert!(actions.is_empty());
    let (_, actions, r) = inject(
        &fx,
        corrupt(format!("{}/me/environ", root.display())),
        "o3",
        1 << 30,
        &[],
    );
    let e = r.expect_err("refused");
    assert!(e.contains("under /proc"), "{e}");
    assert!(actions.is_empty());
    assert_eq!(read(&secret), secret_bytes);
    assert_same(&snapshot(&root), &before, "nothing touched");
    // Inside the allowed directory the fault runs.
    let (_, actions, r) = inject(
        &fx,
        corrupt(format!("{}/*.dat", root.display())),
        "in",
        1 << 30,
        &[&root],
    );
    r.expect("inside allowPaths");
    fault::revert(&actions, &NoLab).expect("revert");
    assert_same(&snapshot(&root), &before, "as before");
    fx.teardown_and_assert_clean();
}

/// A revert that cannot put a node back exactly is an error naming it, never "restored":
/// here a directory now stands where a wiped file was, and a directory on the way to
/// another has become a symlink (never followed).
#[test]
fn a_restore_that_cannot_be_exact_is_an_error_not_restored() {
    let mut fx = Fixture::new("inexact", LAB);
    let base = fx.state.join("ix");
    let (secret, secret_bytes) = make_outside(&base);
    let root = base.join("data");
    make_tree(&root);
    let (_, actions, r) = inject(
        &fx,
        wipe(&[&root.join("b.conf"), &root.join("sub/c.log")]),
        "x1",
        1 << 30,
        &[],
    );
    r.expect("inject");
    std::fs::create_dir(root.join("b.conf")).expect("a directory in its place");
    std::fs::write(root.join("b.conf/new"), "the app's").expect("file");
    std::fs::rename(root.join("sub"), base.join("moved-sub")).expect("move");
    std::os::unix::fs::symlink("../outside", root.join("sub")).expect("link on the way");
    let errs = fault::revert(&actions, &NoLab).expect_err("not exact");
    let text: Vec<String> = errs.iter().map(|e| format!("{}: {e}", e.target)).collect();
    assert!(
        text.iter()
            .any(|e| e.contains("b.conf") && e.contains("directory now stands")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.contains("sub/c.log") && e.contains("symlink")),
        "{text:?}"
    );
    assert!(
        !base.join("outside/c.log").exists(),
        "nothing written through the link"
    );
    assert_eq!(read(&secret), secret_bytes);
    fx.teardown_and_assert_clean();
}

#[test]
fn config_corrupt_edits_and_revert_restores_and_a_symlink_is_not_written_through() {
    let mut fx = Fixture::new("config", LAB);
    let dir = fx.state.join("etc");
    std::fs::create_dir_all(&dir).expect("dir");
    let conf = dir.join("app.conf");
    let text = "# app\nlisten = 10.0.0.1:80\nworkers = 4\n";
    std::fs::write(&conf, text).expect("write");
    rustix::fs::lsetxattr(&conf, "user.k", b"v", rustix::fs::XattrFlags::empty()).expect("xattr");
    set_times(&conf, 1_100_000_000, 1_000_000_000);
    std::os::unix::fs::symlink("app.conf", dir.join("link.conf")).expect("link");
    let before = settled(&dir);
    let set = |path: &Path| {
        FaultAction::ConfigCorrupt(ConfigCorrupt {
            path: path.to_string_lossy().into_owned(),
            set: Some(ConfigSet {
                key: "listen".into(),
                value: "256.0.0.1:80".into(),
                separator: None,
            }),
            ..Default::default()
        })
    };
    let (_, actions, r) = inject(&fx, set(&dir.join("link.conf")), "cl", 1 << 30, &[]);
    assert!(r.expect_err("refused").contains("symlink"));
    assert!(actions.is_empty());
    let (mut f, actions, r) = inject(&fx, set(&conf), "cfg", 1 << 30, &[]);
    r.expect("inject");
    f.confirm().expect("confirm");
    assert_eq!(
        std::fs::read_to_string(&conf).expect("read"),
        "# app\nlisten = 256.0.0.1:80\nworkers = 4\n"
    );
    fault::revert(&actions, &NoLab).expect("revert");
    assert_same(&snapshot(&dir), &before, "bytes, xattrs and times back");
    fx.teardown_and_assert_clean();
}

#[test]
fn over_the_byte_budget_nothing_is_touched() {
    let mut fx = Fixture::new("budget", LAB);
    let root = fx.state.join("big");
    make_outside(&fx.state);
    make_tree(&root);
    let before = settled(&root);
    let (_, actions, r) = inject(&fx, wipe(&[&root]), "b1", 10_000, &[]);
    let e = r.expect_err("refused");
    assert!(e.contains("maxDataBytes"), "{e}");
    assert!(actions.is_empty(), "nothing recorded");
    assert_same(&snapshot(&root), &before, "nothing touched");
    fx.teardown_and_assert_clean();
}

#[test]
fn a_crash_mid_wipe_is_undone_by_recover_even_without_restore_on_revert() {
    let mut fx = Fixture::new("crashwipe", LAB);
    let root = fx.state.join("victim");
    make_outside(&fx.state);
    make_tree(&root);
    let before = settled(&root);
    let (mut f, _actions, r) = inject(
        &fx,
        FaultAction::DataWipe(DataWipe {
            paths: vec![format!("{}/*", root.display())],
            restore: Some(false),
            ..Default::default()
        }),
        "crash",
        1 << 30,
        &[],
    );
    r.expect("inject");
    f.confirm().expect("confirm");
    assert_eq!(std::fs::read_dir(&root).expect("dir").count(), 0, "emptied");
    // The runner "crashes": nothing reverts, and its hold on the journal goes with it. A
    // later `murphy recover` reads the journal.
    fx.journal.abandon();
    let state = fx.state.clone();
    let recs = murphy::journal::recover(&state, None).expect("recover");
    let undone: Vec<&String> = recs.iter().flat_map(|r| &r.undone).collect();
    assert!(recs.iter().all(|r| r.errors.is_empty()), "{recs:?}");
    assert!(undone.iter().any(|u| u.contains("restored")), "{undone:?}");
    assert_same(
        &snapshot(&root),
        &before,
        "recover put the exact originals back, the emptied directory's times too",
    );
    // The lab group was recovered too (it was part of the same journal): the lab is gone.
    fx.lab.take();
    assert_no_leftovers(&fx.run_id);
    assert!(
        !Journal::dir(&state)
            .join(format!("{}.data", fx.run_id))
            .exists(),
        "journal copies removed once recovered"
    );
}

/// Journals written before nodes were captured whole still replay: a `restore-file` line
/// without `root` or `meta` puts the bytes, mode and owner back.
#[test]
fn an_old_journal_line_still_restores_a_file() {
    require_root();
    let dir = temp_dir("oldline");
    let backup = dir.join("copy");
    std::fs::write(&backup, "original").expect("copy");
    let path = dir.join("f");
    std::fs::write(&path, "corrupted").expect("file");
    let line = format!(
        r#"{{"action":"restore-file","path":{:?},"backup":{:?},"mode":33184,"uid":0,"gid":0,"on_revert":true}}"#,
        path.display().to_string(),
        backup.display().to_string()
    );
    let a: murphy::journal::UndoAction = serde_json::from_str(&line).expect("old line reads");
    a.apply(&NoLab).expect("restored");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "original");
    assert_eq!(
        std::fs::metadata(&path).expect("meta").mode() & 0o7777,
        0o640
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A target in a mount namespace of its own (a container) is reached through its
/// `/proc/<pid>/root`, with the process journaled beside it: once that process is gone
/// (its pid may be another's), the revert refuses to guess where its files are and says
/// so, keeping the journal copy.
#[test]
fn a_target_in_its_own_mount_namespace_is_reached_through_its_root_until_it_is_gone() {
    require_root();
    let state = temp_dir("mntns");
    let journal = Journal::create(&state, "mntns").expect("journal");
    make_outside(&state);
    let root = state.join("data");
    make_tree(&root);
    let before = settled(&root);
    let mut child = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "600"])
        .spawn()
        .expect("unshare");
    let pid = child.id() as i32;
    let ns = |p: &str| std::fs::metadata(p).map(|m| m.ino()).ok();
    assert!(
        fault::wait_for(Duration::from_secs(10), || ns(&format!(
            "/proc/{pid}/ns/mnt"
        )) != ns("/proc/self/ns/mnt")),
        "the child has a mount namespace of its own"
    );
    let proc = murphy::procfs::ProcId::of(pid).expect("proc");
    let m = Member {
        label: format!("pid {pid}"),
        procs: vec![proc],
        netns: Netns::Root,
        addrs: vec![],
        lab: None,
    };
    let run = |group: &str| {
        let mut f = fault::build(&wipe(&[&root]), &env(1 << 30, &[]), group);
        let mut undo = UndoLog::new(&journal, group, group).expect("undo");
        f.inject(std::slice::from_ref(&m), &mut undo)
            .expect("inject");
        let ev = f.confirm().expect("confirm");
        assert!(ev.0.contains(&format!("/proc/{pid}/root/")), "{}", ev.0);
        undo.into_actions()
    };
    let actions = run("n1");
    fault::revert(&actions, &NoLab).expect("revert through its root");
    assert_same(
        &snapshot(&root),
        &before,
        "restored through /proc/<pid>/root",
    );
    let actions = run("n2");
    let _ = child.kill();
    let _ = child.wait();
    let errs = fault::revert(&actions, &NoLab).expect_err("its root is gone");
    assert!(
        errs.iter()
            .all(|e| e.message.contains(&format!("process {pid}"))
                && e.message.contains("has ended")),
        "{errs:?}"
    );
    assert!(std::fs::symlink_metadata(&root).is_err(), "nothing guessed");
    assert!(
        journal.data_dir().join("n2").exists(),
        "the copies are kept"
    );
    let _ = std::fs::remove_dir_all(&state);
}
