//! `load-surge`: extra open-loop HTTP traffic at the target's addresses while the fault is
//! active, through the same client as workloads (requests go out on schedule whatever the
//! answers; with `retry`, failed requests are sent again: a retry storm). Nothing on the
//! target changes, so there is nothing to journal: ending the fault stops the senders.

use super::{wait_for, Evidence, Fault, FaultError, Member, UndoLog};
use crate::model::spec::FaultKind;
use crate::model::spec::{HttpWorkload, LoadSurge as Spec, WorkloadSpec};
use crate::record::history::OpResult;
use crate::record::Clock;
use crate::workload::{self, Handle};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub struct LoadSurge {
    spec: Spec,
    handle: Option<Handle>,
    endpoints: Vec<String>,
    last_note: Option<Instant>,
}

impl LoadSurge {
    pub fn new(spec: &Spec) -> Self {
        LoadSurge {
            spec: spec.clone(),
            handle: None,
            endpoints: Vec::new(),
            last_note: None,
        }
    }
}

impl Fault for LoadSurge {
    fn kind(&self) -> &'static str {
        FaultKind::LoadSurge.name()
    }

    fn inject(&mut self, members: &[Member], _undo: &mut UndoLog<'_>) -> Result<(), FaultError> {
        let endpoints: Vec<String> = members
            .iter()
            .flat_map(|m| m.addrs.iter())
            .map(|a| format!("{a}:{}", self.spec.port))
            .collect();
        if endpoints.is_empty() {
            return Err(FaultError::Refused(
                "load-surge: the target has no known addresses (use a lab target)".into(),
            ));
        }
        let w = WorkloadSpec {
            name: "surge".into(),
            rate: self.spec.rate,
            endpoints: endpoints.clone(),
            timeout: self.spec.timeout,
            http: Some(HttpWorkload {
                path: self.spec.path.clone(),
            }),
            spread: true,
            retry: self.spec.retry.clone(),
            ..Default::default()
        };
        self.handle = Some(workload::spawn(w, None, Clock::start()));
        self.endpoints = endpoints;
        Ok(())
    }

    fn confirm(&mut self) -> Result<Evidence, FaultError> {
        let live = self
            .handle
            .as_ref()
            .map(|h| h.live.clone())
            .ok_or_else(|| FaultError::Failed("no sender".into()))?;
        let total = |l: &workload::Live| {
            l.ok.load(Ordering::SeqCst)
                + l.failed.load(Ordering::SeqCst)
                + l.unknown.load(Ordering::SeqCst)
        };
        if !wait_for(Duration::from_secs(3), || total(&live) >= 1) {
            return Err(FaultError::Failed(
                "no surge request completed within 3s".into(),
            ));
        }
        Ok(Evidence(format!(
            "{} request(s) completed so far at {} to {} ({} answered 2xx/3xx)",
            total(&live),
            self.spec.rate,
            self.endpoints.join(", "),
            live.ok.load(Ordering::SeqCst)
        )))
    }

    fn observe(&mut self) -> Vec<String> {
        let Some(h) = &self.handle else {
            return Vec::new();
        };
        if self
            .last_note
            .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
        {
            return Vec::new();
        }
        self.last_note = Some(Instant::now());
        let l = &h.live;
        vec![format!(
            "surge so far: {} ok, {} failed, {} unanswered",
            l.ok.load(Ordering::SeqCst),
            l.failed.load(Ordering::SeqCst),
            l.unknown.load(Ordering::SeqCst)
        )]
    }

    fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            let hist = h.stop();
            let ok = hist.count(OpResult::Ok);
            tracing::info!(
                "load surge ended: {} requests, {ok} ok, latency {:?}",
                hist.ops.len(),
                hist.latency()
            );
        }
    }
}
