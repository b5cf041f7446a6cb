//! Network namespaces as Murphy records them: by name, by process, or the host's own.
//! A leaf: the journal, probes, workloads and targets all name namespaces with it.

use crate::procfs::ProcId;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;

/// A network namespace, recorded so that it can be found again after a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Netns {
    /// The namespace Murphy itself runs in.
    Root,
    /// A named namespace under /run/netns.
    Named { name: String },
    /// The namespace of a process.
    Process { proc: ProcId },
}

impl Netns {
    /// Open the namespace; `Ok(None)` means "the current one", `Err` that it is gone.
    pub fn open(&self) -> io::Result<Option<OwnedFd>> {
        match self {
            Netns::Root => Ok(None),
            Netns::Named { name } => Ok(Some(File::open(format!("/run/netns/{name}"))?.into())),
            Netns::Process { proc } => {
                let f = File::open(crate::procfs::netns_path(proc.pid))?;
                if !proc.exists() {
                    return Err(io::Error::new(io::ErrorKind::NotFound, "process is gone"));
                }
                Ok(Some(f.into()))
            }
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Netns::Root => "the host namespace".into(),
            Netns::Named { name } => format!("netns {name}"),
            Netns::Process { proc } => format!("netns of pid {}", proc.pid),
        }
    }
}
