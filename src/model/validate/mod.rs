//! Semantic validation of a parsed experiment. Every rule names the field it is about;
//! all problems are collected, not only the first. Nothing here touches the system.
//!
//! The rules sit by family, one submodule each; [`validate`] runs the families in a fixed
//! order (header, lab, targets, probes, faults, steps, workloads, watches, claims, steady
//! state and guardrails), so the list of problems comes out in the order of the file's
//! sections. What one family needs to know about another (which lab hosts and processes
//! exist, which probes, workloads and watches are named) is read from [`Ctx`].

mod checks;
mod claims;
mod common;
mod experiment;
mod faults;
mod faults_network;
mod faults_process;
mod faults_routing;
mod faults_storage;
mod lab;
mod targets;
mod values;
mod workloads;

pub use values::{
    is_beneath, kernel_tree, label_key, label_value, mask, parse_cidr, parse_http_url,
    parse_signal, UrlError, NO_DATA_UNDER,
};

use super::diag::{Diagnostic, FieldPath};
use super::spec::{Experiment, ExperimentSpec, WorkloadSpec};

/// Collects the problems found, in the order the rules find them.
struct V {
    out: Vec<Diagnostic>,
}

impl V {
    fn err(&mut self, path: FieldPath, msg: impl Into<String>) {
        self.out.push(Diagnostic {
            path,
            message: msg.into(),
            location: None,
        });
    }
}

/// What the rules of one family need to know about the rest of the experiment.
struct Ctx<'a> {
    spec: &'a ExperimentSpec,
    /// Every lab host's name with its processes' names, in file order (duplicates kept;
    /// empty without a `lab`).
    lab_hosts: Vec<(&'a str, Vec<&'a str>)>,
}

impl<'a> Ctx<'a> {
    fn new(spec: &'a ExperimentSpec) -> Self {
        let lab_hosts = spec.lab.as_ref().map_or_else(Vec::new, |lab| {
            lab.hosts
                .iter()
                .map(|h| {
                    (
                        h.name.as_str(),
                        h.processes.iter().map(|p| p.name.as_str()).collect(),
                    )
                })
                .collect()
        });
        Ctx { spec, lab_hosts }
    }

    /// The processes of the first lab host with this name.
    fn lab_host(&self, name: &str) -> Option<&[&'a str]> {
        self.lab_hosts
            .iter()
            .find(|(h, _)| *h == name)
            .map(|(_, procs)| procs.as_slice())
    }

    fn is_lab_host(&self, name: &str) -> bool {
        self.lab_hosts.iter().any(|(h, _)| *h == name)
    }

    /// `; did you mean ...` for a misspelt probe name.
    fn near_probe(&self, name: &str) -> String {
        let names: Vec<&str> = self.spec.probes.iter().map(|p| p.name.as_str()).collect();
        super::diag::did_you_mean(name, &names)
    }
    fn near_fault(&self, name: &str) -> String {
        let names: Vec<&str> = self.spec.faults.iter().map(|p| p.name.as_str()).collect();
        super::diag::did_you_mean(name, &names)
    }
    fn near_workload(&self, name: &str) -> String {
        let names: Vec<&str> = self
            .spec
            .workloads
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        super::diag::did_you_mean(name, &names)
    }

    /// A `from`: a lab host of this experiment, or a well-formed namespace name (whether
    /// it exists is known only on the machine that runs the experiment).
    fn check_from(&self, v: &mut V, path: FieldPath, from: &super::local::Vantage) {
        match from {
            super::local::Vantage::Lab(h) if !self.is_lab_host(h) => {
                let hosts: Vec<&str> = self.lab_hosts.iter().map(|(h, _)| *h).collect();
                let msg = if self.spec.lab.is_none() {
                    format!("no lab host named {h:?}: the experiment has no `lab` (an existing namespace is `from: {{netns: {h}}}`)")
                } else {
                    format!(
                        "no lab host named {h:?}{}",
                        crate::model::diag::did_you_mean(h, &hosts)
                    )
                };
                v.err(path, msg);
            }
            super::local::Vantage::Lab(_) => {}
            super::local::Vantage::Netns(n) => {
                targets::check_netns_name(v, path.key("netns"), &n.netns)
            }
        }
    }

    /// `host/process` names a process of a lab host.
    fn is_lab_process(&self, r: &str) -> bool {
        r.split_once('/').is_some_and(|(h, p)| {
            self.lab_hosts
                .iter()
                .any(|(hh, ps)| *hh == h && ps.contains(&p))
        })
    }

    fn probe_exists(&self, name: &str) -> bool {
        self.spec.probes.iter().any(|p| p.name == name)
    }

    fn workload(&self, name: &str) -> Option<&'a WorkloadSpec> {
        self.spec.workloads.iter().find(|w| w.name == name)
    }

    fn watch_exists(&self, name: &str) -> bool {
        self.spec.watches.iter().any(|w| w.name == name)
    }
}

/// Validate an experiment. Returns every problem found; empty means valid.
pub fn validate(exp: &Experiment) -> Vec<Diagnostic> {
    let mut v = V { out: Vec::new() };
    let root = FieldPath::root();
    experiment::check_header(&mut v, &root, exp);
    let spec = &exp.spec;
    let sp = root.key("spec");
    let ctx = Ctx::new(spec);
    experiment::check_sizes(&mut v, &sp, spec);
    if let Some(l) = &spec.lab {
        lab::check_lab(&mut v, &sp, l);
    }
    targets::check_targets(&mut v, &ctx, &sp);
    checks::check_probes(&mut v, &ctx, &sp);
    faults::check_faults(&mut v, &ctx, &sp);
    experiment::check_steps(&mut v, &ctx, &sp);
    workloads::check_workloads(&mut v, &ctx, &sp);
    workloads::check_watches(&mut v, &ctx, &sp);
    claims::check_claims(&mut v, &ctx, &sp);
    experiment::check_steady_state(&mut v, &ctx, &sp);
    experiment::check_guardrails(&mut v, &ctx, &sp);
    v.out
}
