//! Rules on the experiment as a whole: the header (`apiVersion`, `kind`, `metadata`), the
//! drill steps run during the fault phase, the steady state and the guardrails.

use super::common::{check_allow_paths, check_argv, check_user, unique};
use super::values::is_name;
use super::{Ctx, V};
use crate::model::diag::FieldPath;
use crate::model::spec::{
    list_limit, Experiment, ExperimentSpec, StepSpec, API_VERSION, CLUSTER_KIND, KIND,
};

/// `apiVersion`, `kind` and `metadata.name`.
pub(super) fn check_header(v: &mut V, root: &FieldPath, exp: &Experiment) {
    if exp.api_version != API_VERSION {
        v.err(
            root.key("apiVersion"),
            format!("must be {API_VERSION:?}, found {:?}", exp.api_version),
        );
    }
    if exp.kind != KIND && exp.kind != CLUSTER_KIND {
        v.err(
            root.key("kind"),
            format!("must be {KIND:?} or {CLUSTER_KIND:?}, found {:?}", exp.kind),
        );
    }
    if !is_name(&exp.metadata.name, 63) {
        v.err(
            root.key("metadata").key("name"),
            "must be 1-63 lowercase letters, digits and '-'",
        );
    }
}

/// `spec.steps`: unique names, then each step.
pub(super) fn check_steps(v: &mut V, ctx: &Ctx, sp: &FieldPath) {
    let spec = ctx.spec;
    unique(
        v,
        sp.key("steps"),
        spec.steps.iter().map(|s| s.name.as_str()),
        "step",
    );
    for (i, st) in spec.steps.iter().enumerate() {
        check_step(v, ctx, &sp.key("steps").index(i), st);
    }
}

fn check_step(v: &mut V, ctx: &Ctx, stp: &FieldPath, st: &StepSpec) {
    if st.actions_set() != 1 {
        v.err(
            stp.clone(),
            format!(
                "needs exactly one of `argv`, `start` or `stop` (found {})",
                st.actions_set()
            ),
        );
    }
    if !st.argv.is_empty() {
        check_argv(v, stp.key("argv"), &st.argv);
    }
    for (k, r) in [("start", &st.start), ("stop", &st.stop)] {
        if let Some(r) = r {
            if !ctx.is_lab_process(r) {
                v.err(
                    stp.key(k),
                    format!("{r:?} is not a lab process (`host/process`)"),
                );
            }
        }
    }
    if let Some(from) = &st.from {
        ctx.check_from(v, stp.key("from"), from);
    }
    if st.timeout.is_some_and(|t| t.as_std().is_zero()) {
        v.err(stp.key("timeout"), "must be above 0");
    }
    check_user(v, stp.key("user"), st.user.as_ref());
    if st.at.as_std() > ctx.spec.fault_phase() {
        v.err(
            stp.key("at"),
            "is after the end of the fault phase (set spec.duration)",
        );
    }
}

/// `spec.steadyState`: the probes it names exist.
pub(super) fn check_steady_state(v: &mut V, ctx: &Ctx, sp: &FieldPath) {
    for (i, p) in ctx.spec.steady_state.probes.iter().enumerate() {
        if !ctx.probe_exists(p) {
            v.err(
                sp.key("steadyState").key("probes").index(i),
                format!("no probe named {p:?}"),
            );
        }
    }
}

/// `spec.guardrails`: a target limit of at least 1, abort conditions on known probes, and
/// data-fault directories that are directories a data fault may act in.
pub(super) fn check_guardrails(v: &mut V, ctx: &Ctx, sp: &FieldPath) {
    let guardrails = &ctx.spec.guardrails;
    if guardrails.max_targets == Some(0) {
        v.err(sp.key("guardrails").key("maxTargets"), "must be at least 1");
    }
    check_allow_paths(
        v,
        sp.key("guardrails").key("allowPaths"),
        &guardrails.allow_paths,
    );
    for (i, a) in guardrails.abort_when.iter().enumerate() {
        if !ctx.probe_exists(&a.probe) {
            v.err(
                sp.key("guardrails").key("abortWhen").index(i).key("probe"),
                format!("no probe named {:?}", a.probe),
            );
        }
    }
}

/// The spec's lists are bounded ([`crate::model::spec::LIST_LIMITS`]).
pub(super) fn check_sizes(v: &mut V, sp: &FieldPath, spec: &ExperimentSpec) {
    let lens = [
        ("targets", spec.targets.len()),
        ("probes", spec.probes.len()),
        ("faults", spec.faults.len()),
        ("steps", spec.steps.len()),
        ("workloads", spec.workloads.len()),
        ("watches", spec.watches.len()),
        ("claims", spec.claims.len()),
    ];
    for (name, n) in lens {
        let most = list_limit(name);
        if n > most {
            v.err(sp.key(name), format!("at most {most} entries (found {n})"));
        }
    }
}
