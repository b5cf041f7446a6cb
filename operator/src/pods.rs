//! From a pod to the processes of its containers, on the node the agent runs on: walk the
//! cgroup hierarchy kubelet made for the pod and read each container's `cgroup.procs`.
//!
//! Layouts handled (kubelet's, by driver and cgroup version):
//! - cgroupfs driver: `kubepods/[burstable|besteffort/]pod<uid>/<container-id>`
//! - systemd driver: `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice/<runtime>-<container-id>.scope`
//!   with `cri-containerd-`, `crio-` or `docker-` as the runtime prefix
//!
//! under cgroup v1 (one hierarchy per controller; the `pids` or `memory` one is walked) or
//! v2. Read-only: it never changes a cgroup.

use murphy::fault::Member;
use murphy::journal::Netns;
use murphy::procfs::ProcId;
use std::path::{Path, PathBuf};

/// One container of the pod, as the pod's status names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    pub name: String,
    /// The runtime's id, without the `containerd://` (or `cri-o://`, `docker://`) prefix.
    pub id: String,
}

/// A container found on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub name: String,
    pub cgroup: PathBuf,
    pub pids: Vec<i32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("pod {uid} has no cgroup under {roots} on this node (is it scheduled here?)")]
    NoPod { uid: String, roots: String },
    #[error("pod {uid}: container {name} ({id}) has no cgroup (not started yet, or restarted with a new id?)")]
    NoContainer {
        uid: String,
        name: String,
        id: String,
    },
    #[error("pod {uid}: container {name} has no running process")]
    NoProcess { uid: String, name: String },
    #[error("{0:?} is not a container id (expected e.g. containerd://<hex>)")]
    BadId(String),
}

/// `containerd://abc…` → `abc…`; the id must be hex (it becomes part of a path).
pub fn parse_container_id(s: &str) -> Result<String, ResolveError> {
    let id = s.split_once("://").map_or(s, |(_, id)| id);
    if id.len() >= 12 && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(ResolveError::BadId(s.to_string()))
    }
}

/// Whether a cgroup directory name is the pod's (either driver).
pub fn is_pod_dir(name: &str, uid: &str) -> bool {
    name == format!("pod{uid}") || name.ends_with(&format!("-pod{}.slice", uid.replace('-', "_")))
}

/// Whether a cgroup directory name is the container's (either driver, any runtime).
pub fn is_container_dir(name: &str, id: &str) -> bool {
    name == id
        || name
            .strip_suffix(".scope")
            .and_then(|n| n.rsplit_once('-'))
            .is_some_and(|(_, tail)| tail == id)
}

/// The hierarchy roots to search: the v2 mount, and the v1 `pids` (else `memory`) one.
pub fn hierarchy_roots() -> Vec<PathBuf> {
    let m = murphy::cgroup::Mounts::read();
    let mut out = Vec::new();
    if let Some(p) = m.v1_mount("pids").or_else(|| m.v1_mount("memory")) {
        out.push(p.to_path_buf());
    }
    if let Some(v2) = &m.v2 {
        out.push(v2.clone());
    }
    out
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The pod's cgroup directories under `root` (kubelet nests them at most four deep).
pub fn find_pod_dirs(root: &Path, uid: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut level = vec![root.to_path_buf()];
    for _ in 0..5 {
        let mut next = Vec::new();
        for d in level {
            for s in subdirs(&d) {
                let name = s.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if is_pod_dir(name, uid) {
                    out.push(s);
                } else if name.starts_with("kubepods")
                    || name == "burstable"
                    || name == "besteffort"
                    || d != root
                {
                    next.push(s);
                }
            }
        }
        level = next;
    }
    out
}

/// Every asked-for container of the pod with its processes, from the first root that has
/// the pod.
pub fn resolve(
    roots: &[PathBuf],
    uid: &str,
    containers: &[ContainerRef],
) -> Result<Vec<Resolved>, ResolveError> {
    let pod_dirs: Vec<PathBuf> = roots.iter().flat_map(|r| find_pod_dirs(r, uid)).collect();
    let Some(pod_dir) = pod_dirs.first() else {
        return Err(ResolveError::NoPod {
            uid: uid.into(),
            roots: roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    containers
        .iter()
        .map(|c| {
            let dir = subdirs(pod_dir)
                .into_iter()
                .find(|d| {
                    d.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| is_container_dir(n, &c.id))
                })
                .ok_or_else(|| ResolveError::NoContainer {
                    uid: uid.into(),
                    name: c.name.clone(),
                    id: c.id.clone(),
                })?;
            let pids = murphy::cgroup::pids(&dir);
            if pids.is_empty() {
                return Err(ResolveError::NoProcess {
                    uid: uid.into(),
                    name: c.name.clone(),
                });
            }
            Ok(Resolved {
                name: c.name.clone(),
                cgroup: dir,
                pids,
            })
        })
        .collect()
}

/// The engine's view of a container: its processes, and the network namespace they share
/// (entered through the first process, as the pod's sandbox holds it).
pub fn member(pod: &str, r: &Resolved) -> Option<Member> {
    let procs: Vec<ProcId> = r.pids.iter().filter_map(|p| ProcId::of(*p)).collect();
    let first = *procs.first()?;
    Some(Member {
        label: format!("{pod}/{}", r.name),
        procs,
        netns: Netns::Process { proc: first },
        addrs: Vec::new(),
        lab: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f3c2a1e-8b7d-4c6e-9a5f-1d2e3f4a5b6c";
    const ID: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

    #[test]
    fn pod_and_container_directories_of_both_drivers_and_every_runtime() {
        assert!(is_pod_dir(&format!("pod{UID}"), UID));
        assert!(is_pod_dir(
            "kubepods-burstable-pod0f3c2a1e_8b7d_4c6e_9a5f_1d2e3f4a5b6c.slice",
            UID
        ));
        assert!(!is_pod_dir("pod0f3c2a1e", UID));
        for name in [
            ID.to_string(),
            format!("cri-containerd-{ID}.scope"),
            format!("crio-{ID}.scope"),
            format!("docker-{ID}.scope"),
        ] {
            assert!(is_container_dir(&name, ID), "{name}");
        }
        assert!(!is_container_dir("crio-conmon-abc.scope", ID));
        assert_eq!(
            parse_container_id(&format!("containerd://{ID}")),
            Ok(ID.to_string())
        );
        assert_eq!(
            parse_container_id(&format!("cri-o://{ID}")),
            Ok(ID.to_string())
        );
        assert!(parse_container_id("containerd://../../etc").is_err());
    }
}
