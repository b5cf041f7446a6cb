//! Murphy: chaos engineering that proves, from evidence, whether redundancy and failover
//! claims hold. This crate is the engine: experiment model, lab, faults, probes, claims,
//! runner and reports. It knows nothing of Kubernetes or gRPC; front doors wrap it.

pub mod bgp;
pub mod cgroup;
pub mod claims;
pub mod dns;
pub mod fault;
pub mod history;
pub mod html;
pub mod journal;
pub mod lab;
pub mod load;
pub mod model;
pub mod netq;
pub mod probe;
pub mod procfs;
pub mod ptrace;
pub mod report;
pub mod roles;
pub mod runner;
pub mod sys;
pub mod target;
pub mod timeline;
pub mod trials;
pub mod watch;
pub mod workload;
