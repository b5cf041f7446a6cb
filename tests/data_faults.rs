//! Data faults against real files seen through a lab process: each one changes the files
//! for real, revert (twice) restores the exact original bytes, modes and owners, and a
//! simulated crash (the runner gone mid-fault) is undone by `murphy recover` from the
//! journal's copies — even for a wipe marked `restore: false`. Nothing is left behind.

mod common;
use common::*;
use murphy::fault::{self, FaultEnv, Member, UndoLog};
use murphy::journal::{Journal, Netns, NoLab};
use murphy::model::quantity::ByteSize;
use murphy::model::spec::{
    ConfigCorrupt, ConfigSet, CorruptHow, DataCorrupt, DataWipe, FaultAction,
};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn env(max: u64) -> FaultEnv {
    FaultEnv {
        exe: env!("CARGO_BIN_EXE_murphy").into(),
        lease: Duration::from_secs(60),
        peer_addrs: vec![],
        seed: 99,
        max_data_bytes: max,
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

/// A small tree with varied content, modes and owners; returns (path → (bytes, mode, uid)).
fn make_tree(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, u32)> {
    std::fs::create_dir_all(root.join("sub/deeper")).expect("dirs");
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .map_or(65534, |u| u.uid.as_raw());
    let files: [(&str, usize, u32, u32); 4] = [
        ("a.dat", 70_000, 0o640, 0),
        ("b.conf", 300, 0o600, nobody),
        ("sub/c.log", 5_000, 0o644, 0),
        ("sub/deeper/d.bin", 1, 0o400, nobody),
    ];
    for (name, size, mode, uid) in files {
        let p = root.join(name);
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + name.len()) as u8).collect();
        std::fs::write(&p, &bytes).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        std::os::unix::fs::chown(&p, Some(uid), None).expect("chown");
    }
    std::fs::set_permissions(root.join("sub"), std::fs::Permissions::from_mode(0o750))
        .expect("chmod dir");
    snapshot(root)
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, u32)> {
    let mut out = BTreeMap::new();
    fn go(p: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32, u32)>) {
        let m = std::fs::symlink_metadata(p).expect("meta");
        let bytes = if m.is_file() {
            std::fs::read(p).expect("read")
        } else {
            Vec::new()
        };
        out.insert(p.to_path_buf(), (bytes, m.mode(), m.uid()));
        if m.is_dir() {
            for e in std::fs::read_dir(p).expect("dir").flatten() {
                go(&e.path(), out);
            }
        }
    }
    go(root, &mut out);
    out
}

fn inject(
    fx: &Fixture,
    action: FaultAction,
    group: &str,
    max: u64,
) -> (
    Box<dyn fault::Fault>,
    Vec<murphy::journal::UndoAction>,
    Result<(), String>,
) {
    let m = member(fx);
    let mut f = fault::build(&action, &env(max), group);
    let mut undo = UndoLog::new(&fx.journal, group, group).expect("undo");
    let r = f
        .inject(std::slice::from_ref(&m), &mut undo)
        .map_err(|e| e.to_string());
    (f, undo.into_actions(), r)
}

fn assert_no_temp_files(root: &Path) {
    for (p, _) in snapshot(root) {
        assert!(
            !p.to_string_lossy().contains(".murphy-restore"),
            "temporary file left: {}",
            p.display()
        );
    }
}

#[test]
fn data_wipe_deletes_a_tree_and_revert_restores_exact_bytes_modes_owners() {
    let mut fx = Fixture::new("wipe", LAB);
    let root = fx.state.join("pgdata");
    let before = make_tree(&root);
    let pattern = root.to_string_lossy().into_owned();
    let (mut f, actions, r) = inject(
        &fx,
        FaultAction::DataWipe(DataWipe {
            paths: vec![pattern],
            ..Default::default()
        }),
        "w1",
        1 << 30,
    );
    r.expect("inject");
    let ev = f.confirm().expect("confirm");
    assert!(!root.exists(), "the tree is gone ({})", ev.0);
    assert!(ev.0.contains("4 file(s), 75301 bytes"), "{}", ev.0);
    fault::revert(&actions, &NoLab).expect("revert");
    assert_eq!(
        snapshot(&root),
        before,
        "exact bytes, modes and owners are back"
    );
    fault::revert(&actions, &NoLab).expect("revert is idempotent");
    assert_eq!(snapshot(&root), before);
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

#[test]
fn data_corrupt_changes_bytes_and_revert_restores_them() {
    let mut fx = Fixture::new("corrupt", LAB);
    let root = fx.state.join("files");
    let before = make_tree(&root);
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
        );
        r.expect("inject");
        f.confirm().expect("confirm");
        let now = std::fs::read(root.join("a.dat")).expect("read");
        let orig = &before[&root.join("a.dat")].0;
        assert_ne!(&now, orig, "{how:?} changed the file");
        if how != CorruptHow::Truncate {
            let changed = now.iter().zip(orig).filter(|(a, b)| a != b).count();
            assert!(
                (1..=3 * 512).contains(&changed),
                "{how:?}: {changed} bytes changed"
            );
        }
        assert_eq!(
            std::fs::read(root.join("sub/c.log")).expect("read"),
            before[&root.join("sub/c.log")].0,
            "files outside the pattern are untouched"
        );
        fault::revert(&actions, &NoLab).expect("revert");
        fault::revert(&actions, &NoLab).expect("revert again");
        assert_eq!(snapshot(&root), before, "{how:?} reverted exactly");
    }
    assert_no_temp_files(&root);
    fx.teardown_and_assert_clean();
}

#[test]
fn config_corrupt_edits_and_revert_restores() {
    let mut fx = Fixture::new("config", LAB);
    let dir = fx.state.join("etc");
    std::fs::create_dir_all(&dir).expect("dir");
    let conf = dir.join("app.conf");
    let text = "# app\nlisten = 10.0.0.1:80\nworkers = 4\n";
    std::fs::write(&conf, text).expect("write");
    let (mut f, actions, r) = inject(
        &fx,
        FaultAction::ConfigCorrupt(ConfigCorrupt {
            path: conf.to_string_lossy().into_owned(),
            set: Some(ConfigSet {
                key: "listen".into(),
                value: "256.0.0.1:80".into(),
                separator: None,
            }),
            ..Default::default()
        }),
        "cfg",
        1 << 30,
    );
    r.expect("inject");
    f.confirm().expect("confirm");
    assert_eq!(
        std::fs::read_to_string(&conf).expect("read"),
        "# app\nlisten = 256.0.0.1:80\nworkers = 4\n"
    );
    fault::revert(&actions, &NoLab).expect("revert");
    assert_eq!(std::fs::read_to_string(&conf).expect("read"), text);
    fx.teardown_and_assert_clean();
}

#[test]
fn over_the_byte_budget_nothing_is_touched() {
    let mut fx = Fixture::new("budget", LAB);
    let root = fx.state.join("big");
    let before = make_tree(&root);
    let (_, actions, r) = inject(
        &fx,
        FaultAction::DataWipe(DataWipe {
            paths: vec![root.to_string_lossy().into_owned()],
            ..Default::default()
        }),
        "b1",
        10_000,
    );
    let e = r.expect_err("refused");
    assert!(e.contains("maxDataBytes"), "{e}");
    assert!(actions.is_empty(), "nothing recorded");
    assert_eq!(snapshot(&root), before, "nothing touched");
    fx.teardown_and_assert_clean();
}

#[test]
fn a_crash_mid_wipe_is_undone_by_recover_even_without_restore_on_revert() {
    let mut fx = Fixture::new("crashwipe", LAB);
    let root = fx.state.join("victim");
    let before = make_tree(&root);
    let (mut f, _actions, r) = inject(
        &fx,
        FaultAction::DataWipe(DataWipe {
            paths: vec![format!("{}/*", root.display())],
            restore: Some(false),
            ..Default::default()
        }),
        "crash",
        1 << 30,
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
    assert_eq!(
        snapshot(&root),
        before,
        "recover put the exact originals back"
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
