//! Murphy: chaos engineering that proves, from evidence, whether redundancy and failover
//! claims hold. This crate is the engine: experiment model, lab, faults, probes, claims,
//! runner and reports. It knows nothing of Kubernetes or gRPC; front doors wrap it.

pub mod annotate;
pub mod bgp;
pub mod cgroup;
pub mod dns;
pub mod fault;
pub mod fsnode;
pub mod glob;
pub mod guardian;
pub mod html;
pub mod httpapi;
pub mod journal;
pub mod junit;
pub mod lab;
pub mod live;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod netq;
pub mod output;
pub mod plan;
pub mod probe;
pub mod procfs;
pub mod prom;
pub mod ptrace;
pub mod rand;
pub mod record;
pub mod report;
pub mod roles;
pub mod runner;
pub mod sys;
pub mod target;
pub mod trials;
pub mod verdict;
pub mod watch;
pub mod workload;

// Paths kept for callers from before the record and verdict layers were split out. Inside
// the crate, use `record` and `verdict` (a test checks the layering).
pub mod timeline {
    //! The run record (now [`crate::record`]).
    pub use crate::record::*;
}
pub mod claims {
    //! Claim checkers (now [`crate::verdict`]).
    pub use crate::verdict::*;
}
pub mod history {
    //! Workload histories ([`crate::record::history`]) and their checkers
    //! ([`crate::verdict::history`]).
    pub use crate::record::history::*;
    pub use crate::verdict::history::*;
}
pub mod load {
    //! Load and balancer claims (now [`crate::verdict::load`]).
    pub use crate::verdict::load::*;
}
