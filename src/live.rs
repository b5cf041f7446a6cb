//! What `murphy run` shows while it runs on a terminal: the phase with a countdown (to the
//! next fault's injection or revert, to the end), the faults in effect, each probe's and
//! workload's ok / fail counts and latest latency. [`LiveState`] is fed by the runner's
//! progress calls; [`LiveState::lines`] renders it, fitted to the terminal's width, in
//! colour unless asked not to (`NO_COLOR`).

use crate::plan::Plan;
use std::collections::BTreeMap;

/// A workload's counts as the runner reports them a few times a second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadLive {
    pub name: String,
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
    /// The latest completed operation's latency.
    pub last_ms: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct ProbeLive {
    ok: u64,
    failed: u64,
    last_ok: bool,
    last_ms: f64,
}

/// Everything the live view knows, on the run's clock.
#[derive(Clone, Debug, Default)]
pub struct LiveState {
    plan: Option<Plan>,
    phase: String,
    phase_ms: f64,
    faults_ms: Option<f64>,
    /// Faults confirmed in effect, since when.
    active: BTreeMap<String, f64>,
    /// Faults that were injected (in effect or already reverted).
    done: Vec<String>,
    probes: BTreeMap<String, ProbeLive>,
    workloads: Vec<WorkloadLive>,
}

fn secs(ms: f64) -> String {
    let s = ms.max(0.0) / 1000.0;
    if s < 10.0 {
        format!("{s:.1}s")
    } else {
        format!("{s:.0}s")
    }
}

fn latency(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

impl LiveState {
    pub fn new(plan: Option<Plan>) -> LiveState {
        LiveState {
            plan,
            ..LiveState::default()
        }
    }
    pub fn phase(&mut self, t_ms: f64, phase: &str) {
        self.phase = phase.to_string();
        self.phase_ms = t_ms;
        if phase == "injecting faults" {
            self.faults_ms = Some(t_ms);
        }
    }
    pub fn fault(&mut self, t_ms: f64, fault: &str, active: bool) {
        if active {
            self.active.insert(fault.to_string(), t_ms);
            if !self.done.iter().any(|d| d == fault) {
                self.done.push(fault.to_string());
            }
        } else {
            self.active.remove(fault);
        }
    }
    pub fn sample(&mut self, probe: &str, ok: bool, latency_ms: f64) {
        let p = self.probes.entry(probe.to_string()).or_default();
        if ok {
            p.ok += 1;
        } else {
            p.failed += 1;
        }
        p.last_ok = ok;
        p.last_ms = latency_ms;
    }
    pub fn workloads(&mut self, w: Vec<WorkloadLive>) {
        self.workloads = w;
    }

    /// What comes next and in how long, from `now_ms`.
    fn countdown(&self, now_ms: f64) -> Option<String> {
        let plan = self.plan.as_ref()?;
        let since = now_ms - self.phase_ms;
        match self.phase.as_str() {
            "checking the steady state" => None,
            "injecting faults" => {
                let start = self.faults_ms?;
                let mut next: Vec<(f64, String)> = Vec::new();
                for w in &plan.windows {
                    let at = start + w.at.as_secs_f64() * 1000.0;
                    if !self.done.contains(&w.fault) && at >= now_ms - 1000.0 {
                        next.push((at, format!("inject {}", w.fault)));
                    }
                    if let (Some(since), Some(len)) = (self.active.get(&w.fault), w.length) {
                        next.push((
                            since + len.as_secs_f64() * 1000.0,
                            format!("revert {}", w.fault),
                        ));
                    }
                }
                let end = start + plan.fault_phase.as_secs_f64() * 1000.0;
                next.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut s = match next.first() {
                    Some((t, what)) => format!("next: {what} in {}", secs(t - now_ms)),
                    None => String::new(),
                };
                let total = end + plan.observe_after.as_secs_f64() * 1000.0;
                if !s.is_empty() {
                    s.push_str(" · ");
                }
                s.push_str(&format!("ends in ~{}", secs(total - now_ms)));
                Some(s)
            }
            "observing after the faults" => Some(format!(
                "ends in ~{}",
                secs(plan.observe_after.as_secs_f64() * 1000.0 - since)
            )),
            _ => None,
        }
    }

    /// The view at `now_ms`: a few lines, each at most `width` columns, coloured when
    /// `color`.
    pub fn lines(&self, now_ms: f64, steady_ms: f64, width: usize, color: bool) -> Vec<String> {
        use console::style;
        let st = |s: console::StyledObject<String>| s.force_styling(color).to_string();
        let mut head = format!(
            "{:>6}  {}",
            secs(now_ms),
            st(style(self.phase.clone()).bold().cyan())
        );
        if self.phase == "checking the steady state" {
            head.push_str(&format!(
                " · faults in {}",
                secs(steady_ms - (now_ms - self.phase_ms))
            ));
        } else if let Some(c) = self.countdown(now_ms) {
            head.push_str(&format!(" · {c}"));
        }
        let mut out = vec![head];
        if !self.active.is_empty() {
            let faults: Vec<String> = self
                .active
                .iter()
                .map(|(f, since)| {
                    st(style(format!("{f} ({} in effect)", secs(now_ms - since))).yellow())
                })
                .collect();
            out.push(format!("        faults     {}", faults.join("  ")));
        }
        if !self.probes.is_empty() {
            let probes: Vec<String> = self
                .probes
                .iter()
                .map(|(n, p)| {
                    let mark = if p.last_ok {
                        st(style("✓".to_string()).green())
                    } else {
                        st(style("✗".to_string()).red().bold())
                    };
                    let failed = if p.failed > 0 {
                        st(style(format!("{} fail", p.failed)).red())
                    } else {
                        "0 fail".into()
                    };
                    format!("{n} {mark} {} ok {failed} {}", p.ok, latency(p.last_ms))
                })
                .collect();
            out.push(format!("        probes     {}", probes.join("   ")));
        }
        if !self.workloads.is_empty() {
            let ws: Vec<String> = self
                .workloads
                .iter()
                .map(|w| {
                    let bad = w.failed + w.unknown;
                    let failed = if bad > 0 {
                        st(style(format!("{} fail {} unknown", w.failed, w.unknown)).red())
                    } else {
                        "0 fail".into()
                    };
                    let lat = w.last_ms.map(latency).unwrap_or_else(|| "-".into());
                    format!("{} {} ok {failed} {lat}", w.name, w.ok)
                })
                .collect();
            out.push(format!("        workloads  {}", ws.join("   ")));
        }
        out.into_iter()
            .map(|l| console::truncate_str(&l, width.max(20), "…").into_owned())
            .collect()
    }
}

/// The width of the terminal on `fd` (stdout or stderr), if it is one with a known size;
/// else `COLUMNS` when set.
pub fn terminal_width(fd: impl std::os::fd::AsFd) -> Option<usize> {
    let from_tty = rustix::termios::tcgetwinsize(fd)
        .ok()
        .map(|w| w.ws_col as usize)
        .filter(|c| *c > 0);
    from_tty.or_else(|| {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .filter(|c: &usize| *c > 0)
    })
}

/// Whether to colour: a terminal, `NO_COLOR` unset or empty, and not `TERM=dumb`.
pub fn color_wanted(is_terminal: bool) -> bool {
    is_terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::Experiment;

    fn plan() -> Plan {
        let e: Experiment = serde_saphyr::from_str(
            "apiVersion: murphy.dev/v1alpha1\nkind: Experiment\nmetadata: {name: t}\nspec:\n  targets: {web: {process: {pid: 1}}}\n  faults:\n    - {name: pause, target: web, kind: process-pause, at: 2s, duration: 5s}\n  observeAfter: 4s\n",
        )
        .expect("spec");
        Plan::new(&e.spec)
    }

    #[test]
    fn the_view_counts_down_to_the_next_fault_and_the_end_and_fits_its_width() {
        let mut s = LiveState::new(Some(plan()));
        s.phase(0.0, "checking the steady state");
        s.sample("shop", true, 3.2);
        s.sample("shop", false, 1000.0);
        let l = s.lines(1000.0, 3000.0, 200, false);
        assert!(l[0].contains("faults in 2.0s"), "{l:?}");
        assert!(l[1].contains("shop ✗ 1 ok 1 fail 1.00s"), "{l:?}");
        s.phase(3000.0, "injecting faults");
        let l = s.lines(3500.0, 3000.0, 200, false);
        assert!(l[0].contains("next: inject pause in 1.5s"), "{l:?}");
        assert!(l[0].contains("ends in ~"), "{l:?}");
        s.fault(5000.0, "pause", true);
        s.workloads(vec![WorkloadLive {
            name: "writes".into(),
            ok: 40,
            failed: 2,
            unknown: 1,
            last_ms: Some(0.5),
        }]);
        let l = s.lines(6000.0, 3000.0, 200, false);
        assert!(l[0].contains("next: revert pause in 4.0s"), "{l:?}");
        assert!(l[1].contains("pause (1.0s in effect)"), "{l:?}");
        assert!(
            l[3].contains("writes 40 ok 2 fail 1 unknown 500µs"),
            "{l:?}"
        );
        s.fault(10000.0, "pause", false);
        s.phase(10000.0, "observing after the faults");
        let l = s.lines(11000.0, 3000.0, 200, false);
        assert!(l[0].contains("ends in ~3.0s"), "{l:?}");
        assert!(!l.iter().any(|x| x.contains("in effect")), "{l:?}");
        // Coloured, and cut to the width without breaking a colour code.
        let l = s.lines(11000.0, 3000.0, 30, true);
        assert!(l[0].contains("\u{1b}["), "{l:?}");
        for x in &l {
            assert!(console::measure_text_width(x) <= 30, "{x:?}");
        }
    }
}
