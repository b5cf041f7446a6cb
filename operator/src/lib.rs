//! Murphy's Kubernetes front door, as a library the `murphy-operator` binary wraps.
//!
//! - [`crd`]: the `Experiment` custom resource, derived from the core's spec types (the CRD
//!   schema is generated, never written by hand), and its status.
//! - [`schema`]: checks that the generated schema is structural, as the API server demands.
//! - [`select`]: which pods a target means (opt-in namespaces, label selectors, seeded
//!   picking, blast-radius caps), grouped by the node whose agent acts on them.
//! - [`status`]: phases, conditions and the bounded status the controller writes.
//! - [`controller`]: the reconcile decision (finalizer, reject, start, renew, revert,
//!   evaluate) as one pure function.
//! - [`pods`]: on a node, from a pod's UID to its containers' processes (kubelet's cgroup
//!   layouts), which the engine's faults act on.
//! - [`lease`]: the agent's lease table: which injections lapsed and must be reverted.
//! - [`agent`]: the node agent's engine side (inject, observe, renew, revert, lapse,
//!   clean-up of a predecessor), transport-free.
//! - [`grpc`]: the agent's gRPC service over mTLS and the controller's pooled, bounded
//!   fan-out to agents; [`certs`]: the CA and certificates for it.
//!
//! Apart from [`agent`] and [`pods`] (which act on this node), everything here is a pure
//! function of its inputs: the controller's I/O layer (watching, patching, calling agents)
//! stays thin around it. Dependencies point one way: this crate
//! uses the engine (`murphy`), the engine never uses this crate.

pub mod agent;
pub mod certs;
pub mod controller;
pub mod crd;
pub mod grpc;
pub mod leader;
pub mod lease;
pub mod metrics;
pub mod node;
pub mod pods;
pub mod probe_pods;
pub mod reconcile;
pub mod run;
pub mod schema;
pub mod select;
pub mod status;
pub mod webhook;
