//! `io-throttle`: block IO limits for the target on the device holding a path, through
//! the kernel's IO controller. cgroup v1: the target's processes (and their descendants)
//! move into a blkio cgroup of Murphy's own whose `blkio.throttle.*` files carry the
//! limits; only the blkio hierarchy changes, and revert moves them back and removes it.
//! cgroup v2: the limit is written into `io.max` of the target's own cgroup when it holds
//! only the target, and the original line is journaled and written back on revert.

use super::{require_procs, Evidence, Fault, FaultError, Member, UndoLog};
use crate::cgroup::{self, Mounts};
use crate::journal::UndoAction;
use crate::model::spec::FaultKind;
use crate::model::spec::IoThrottle as Spec;
use crate::procfs::ProcId;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct IoThrottle {
    spec: Spec,
    group: String,
    cgroup: Option<PathBuf>,
    device: String,
    v2: bool,
    procs: Vec<ProcId>,
}

impl IoThrottle {
    pub fn new(spec: &Spec, group: &str) -> Self {
        IoThrottle {
            spec: spec.clone(),
            group: group.to_string(),
            cgroup: None,
            device: String::new(),
            v2: false,
            procs: Vec::new(),
        }
    }

    /// (v1 file suffix, v2 key, value) for each limit set. A zero rate becomes 1: the
    /// kernel reads 0 as "no limit".
    fn limits(&self) -> Vec<(&'static str, &'static str, u64)> {
        let b = |r: Option<crate::model::ByteRate>| r.map(|r| (r.bytes_per_second as u64).max(1));
        let o = |r: Option<crate::model::Rate>| r.map(|r| (r.per_second as u64).max(1));
        [
            ("read_bps_device", "rbps", b(self.spec.read_bps)),
            ("write_bps_device", "wbps", b(self.spec.write_bps)),
            ("read_iops_device", "riops", o(self.spec.read_iops)),
            ("write_iops_device", "wiops", o(self.spec.write_iops)),
        ]
        .into_iter()
        .filter_map(|(f, k, v)| v.map(|v| (f, k, v)))
        .collect()
    }
}

/// `major:minor` of the whole block device that holds `path` (a partition's disk).
pub fn device_of(path: &Path) -> Result<String, FaultError> {
    let m = std::fs::metadata(path)
        .map_err(|e| FaultError::Refused(format!("{}: {e}", path.display())))?;
    let dev = m.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if major == 0 {
        return Err(FaultError::Refused(format!(
            "{} is on a filesystem without a block device (e.g. tmpfs or overlay); give its host a `volume`",
            path.display()
        )));
    }
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if sys.join("partition").exists() {
        if let Ok(parent) = std::fs::read_to_string(sys.join("../dev")) {
            return Ok(parent.trim().to_string());
        }
    }
    Ok(format!("{major}:{minor}"))
}

impl Fault for IoThrottle {
    fn kind(&self) -> &'static str {
        FaultKind::IoThrottle.name()
    }

    fn inject(&mut self, members: &[Member], undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let procs = crate::procfs::with_descendants(&require_procs(members, self.kind())?);
        let root = members
            .first()
            .map(super::data::root_of)
            .unwrap_or_default();
        let path = root.join(self.spec.path.trim_start_matches('/'));
        self.device = device_of(&path)?;
        let mounts = Mounts::read();
        if let Some(base) = mounts.v1_mount("blkio") {
            let dir = base.join(format!("murphy-{}", self.group));
            undo.record(UndoAction::RemoveCgroup {
                cgroup: dir.clone(),
            })?;
            for p in &procs {
                let orig = mounts.proc_cgroup(p.pid, "blkio").ok_or_else(|| {
                    FaultError::Failed(format!("pid {} has no blkio cgroup", p.pid))
                })?;
                undo.record(UndoAction::MoveBack {
                    procs: vec![*p],
                    cgroup: orig,
                })?;
            }
            cgroup::create(&dir)
                .map_err(|e| FaultError::Failed(format!("creating {}: {e}", dir.display())))?;
            for (file, _, v) in self.limits() {
                let f = dir.join(format!("blkio.throttle.{file}"));
                // Lifted first on revert: IO already queued under the limit is throttled
                // in this cgroup whatever moves where, and at 1 B/s would never finish.
                undo.record(UndoAction::WriteCgroupFile {
                    path: f.clone(),
                    value: format!("{} 0", self.device),
                })?;
                std::fs::write(&f, format!("{} {v}", self.device))
                    .map_err(|e| FaultError::Failed(format!("writing {}: {e}", f.display())))?;
            }
            for p in &procs {
                cgroup::add_pid(&dir, p.pid).map_err(|e| {
                    FaultError::Failed(format!("moving pid {} into {}: {e}", p.pid, dir.display()))
                })?;
            }
            self.cgroup = Some(dir);
        } else if mounts.v2.is_some() {
            let dir = mounts.proc_cgroup(procs[0].pid, "io").ok_or_else(|| {
                FaultError::Refused(format!("pid {} has no cgroup", procs[0].pid))
            })?;
            let members_now = cgroup::pids(&dir);
            let ours: Vec<i32> = procs.iter().map(|p| p.pid).collect();
            if members_now.is_empty() || !members_now.iter().all(|p| ours.contains(p)) {
                return Err(FaultError::Refused(format!(
                    "cgroup v2: {} holds processes other than the target; io.max would throttle them too",
                    dir.display()
                )));
            }
            let file = dir.join("io.max");
            let orig = std::fs::read_to_string(&file)
                .unwrap_or_default()
                .lines()
                .find(|l| l.starts_with(&format!("{} ", self.device)))
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!("{} rbps=max wbps=max riops=max wiops=max", self.device)
                });
            undo.record(UndoAction::WriteCgroupFile {
                path: file.clone(),
                value: orig,
            })?;
            let line = self
                .limits()
                .iter()
                .map(|(_, k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            std::fs::write(&file, format!("{} {line}", self.device))
                .map_err(|e| FaultError::Failed(format!("writing {}: {e}", file.display())))?;
            self.cgroup = Some(dir);
            self.v2 = true;
        } else {
            return Err(FaultError::Refused(
                "no blkio (v1) or io (v2) controller on this machine".into(),
            ));
        }
        self.procs = procs;
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let dir = self
            .cgroup
            .clone()
            .ok_or_else(|| FaultError::Failed("no cgroup".into()))?;
        // Evidence from the kernel: the limits as it reads them back, and the processes
        // in the cgroup that carries them.
        let mut seen = Vec::new();
        if self.v2 {
            let text = std::fs::read_to_string(dir.join("io.max")).unwrap_or_default();
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{} ", self.device)))
                .ok_or_else(|| {
                    FaultError::Failed(format!("io.max has no line for {}", self.device))
                })?;
            seen.push(line.to_string());
        } else {
            for (file, _, v) in self.limits() {
                let text = std::fs::read_to_string(dir.join(format!("blkio.throttle.{file}")))
                    .unwrap_or_default();
                let want = format!("{} {v}", self.device);
                if !text.lines().any(|l| l.trim() == want) {
                    return Err(FaultError::Failed(format!(
                        "blkio.throttle.{file} reads {:?}, not {want:?}",
                        text.trim()
                    )));
                }
                seen.push(format!("{file} {want}"));
            }
        }
        let inside = cgroup::pids(&dir);
        let missing: Vec<i32> = self
            .procs
            .iter()
            .filter(|p| p.alive() && !inside.contains(&p.pid))
            .map(|p| p.pid)
            .collect();
        if !missing.is_empty() {
            return Err(FaultError::Failed(format!(
                "pids {missing:?} are not in {}",
                dir.display()
            )));
        }
        Ok(Evidence(format!(
            "{} process(es) in {} limited on device {}: {}",
            inside.len(),
            dir.display(),
            self.device,
            seen.join(", ")
        )))
    }
}
