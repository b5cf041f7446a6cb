//! The HTML report: one self-contained file (inline CSS and SVG, a three-line script, no
//! network)
//! that people can open after a game day. Verdicts first; then one timeline on the run's
//! clock with fault windows shaded, probe health and latency, workload throughput and
//! errors, which node acknowledged writes when, split-brain windows and events; then lost
//! writes one by one, faults, events, and the experiment as it ran.
//!
//! It renders a [`RunReport`] and never recomputes a verdict.

use crate::record::history::{History, OpResult};
use crate::record::{FaultRecord, RunRecord};
use crate::report::RunReport;
use crate::verdict::{Outcome, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write;

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn secs(ms: f64) -> String {
    if ms.abs() < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.3}s", ms / 1000.0)
    }
}

fn class(o: Outcome) -> &'static str {
    match o {
        Outcome::Held => "held",
        Outcome::Failed => "failed",
        Outcome::Inconclusive => "inconclusive",
    }
}

/// A UTC date and time from Unix milliseconds (civil-from-days, no time crate).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

const CSS: &str = r#"
:root{--held:#1a7f37;--failed:#cf222e;--inc:#9a6700;--ink:#1f2328;--mute:#656d76;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;background:#fff}
main{max-width:1180px;margin:0 auto;padding:24px 20px 60px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
.sub{color:var(--mute);margin:0 0 6px}
.meta{display:flex;flex-wrap:wrap;gap:6px 18px;color:var(--mute);font-size:13px}
.summary{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.pill{border-radius:999px;padding:3px 12px;font-weight:600;font-size:13px;color:#fff}
.pill.held{background:var(--held)}.pill.failed{background:var(--failed)}.pill.inconclusive{background:var(--inc)}.pill.status{background:#57606a}
.left-behind{border:2px solid var(--failed);padding:.5em 1em;margin:.5em 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
.card{border:1px solid var(--line);border-left:6px solid var(--line);border-radius:8px;padding:12px 14px;background:#fff}
.card.held{border-left-color:var(--held)}.card.failed{border-left-color:var(--failed)}.card.inconclusive{border-left-color:var(--inc)}
.card h3{font-size:15px;margin:0 0 6px;display:flex;justify-content:space-between;gap:8px}
.verdict{font-size:12px;font-weight:700;letter-spacing:.04em}
.verdict.held{color:var(--held)}.verdict.failed{color:var(--failed)}.verdict.inconclusive{color:var(--inc)}
.measured{font-size:20px;font-weight:650;margin:2px 0 6px}
.reason{margin:0 0 8px;color:#32383f;font-size:14px}
.figs{font-size:12px;color:var(--mute);display:flex;flex-wrap:wrap;gap:2px 12px}
.figs b{color:var(--ink);font-weight:600}
.chart{border:1px solid var(--line);border-radius:8px;padding:8px;background:#fff;overflow-x:auto}
.chart svg{display:block;width:100%;min-width:640px;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px;color:var(--mute);margin:6px 4px 0}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;margin-right:4px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.wide{overflow-x:auto}
.scroll{max-height:420px;overflow:auto;border:1px solid var(--line);border-radius:8px}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--bg);padding:12px;border-radius:8px;overflow:auto;max-height:520px}
details summary{cursor:pointer;color:var(--mute)}
@media (max-width:640px){main{padding:14px 10px}.cards{grid-template-columns:1fr}.measured{font-size:17px}}
"#;

const FAULT_COLORS: [&str; 6] = [
    "#fd8c73", "#d2a8ff", "#79c0ff", "#e3b341", "#56d364", "#ff9bce",
];

struct Scale {
    x0: f64,
    w: f64,
    end: f64,
    /// The run's start on the wall clock (Unix ms): hover text and the axis say both.
    wall0: u64,
}

impl Scale {
    fn x(&self, ms: f64) -> f64 {
        self.x0 + (ms.clamp(0.0, self.end) / self.end) * self.w
    }
    /// `4.200s (10:34:16.2 UTC)`: the run's clock and the wall clock.
    fn when(&self, ms: f64) -> String {
        format!("{} ({} UTC)", secs(ms), clock(self.wall0 as f64 + ms))
    }
}

/// `HH:MM:SS.s` of a Unix time in ms.
fn clock(ms: f64) -> String {
    let ms = ms.max(0.0);
    let day = (ms / 1000.0) % 86_400.0;
    format!(
        "{:02}:{:02}:{:04.1}",
        (day / 3600.0) as u64,
        (day % 3600.0 / 60.0) as u64,
        day % 60.0
    )
}

/// A latency axis on a log scale: whole decades of ms covering every value.
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn over(values: impl Iterator<Item = f64>) -> LogAxis {
        let (mut a, mut b) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            let v = v.max(0.01);
            a = a.min(v);
            b = b.max(v);
        }
        if !a.is_finite() {
            return LogAxis { lo: 0.0, hi: 1.0 };
        }
        let lo = a.log10().floor();
        let hi = b.log10().ceil().max(lo + 1.0);
        LogAxis { lo, hi }
    }
    /// Where `ms` goes between `top` and `bottom`.
    fn y(&self, ms: f64, top: f64, bottom: f64) -> f64 {
        let f = (ms.max(0.01).log10() - self.lo) / (self.hi - self.lo);
        bottom - f.clamp(0.0, 1.0) * (bottom - top)
    }
    /// Tick labels and faint grid lines, one per decade, left of the plot.
    fn ticks(&self, sc: &Scale, top: f64, bottom: f64) -> String {
        let mut s = String::new();
        let mut e = self.lo;
        while e <= self.hi + 1e-9 {
            let ms = 10f64.powf(e);
            let y = self.y(ms, top, bottom);
            let _ = write!(
                s,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="sep"/><text x="{:.1}" y="{:.1}" class="ytick" data-axis="latency">{}</text>"#,
                sc.x0,
                sc.x0 + sc.w,
                sc.x0 - 4.0,
                y + 3.0,
                latency_label(ms)
            );
            e += 1.0;
        }
        s
    }
}

/// `100µs`, `1ms`, `10s`: a decade's label.
fn latency_label(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.0}s", ms / 1000.0)
    }
}

/// A value axis's two labels (bottom and top), left of the plot.
fn value_ticks(sc: &Scale, top: f64, bottom: f64, max: &str, axis: &str) -> String {
    format!(
        r#"<text x="{:.1}" y="{:.1}" class="ytick" data-axis="{axis}">{max}</text><text x="{:.1}" y="{:.1}" class="ytick">0</text>"#,
        sc.x0 - 4.0,
        top + 8.0,
        sc.x0 - 4.0,
        bottom
    )
}

/// The lanes of the timeline, top to bottom: a label, an SVG body and a height each, and
/// the `y` where the next lane starts.
struct Lanes {
    rows: Vec<(String, String)>,
    heights: Vec<f64>,
    y: f64,
}

impl Lanes {
    /// Add a lane of height `h` below the others.
    fn push(&mut self, label: String, svg: String, h: f64) {
        self.rows.push((label, svg));
        self.heights.push(h);
        self.y += h;
    }
}

/// Height of one timeline lane.
const LANE: f64 = 34.0;
/// Where the first lane starts (event ticks go above it).
const TOP: f64 = 28.0;

/// The timeline as inline SVG.
pub fn timeline_svg(r: &RunReport) -> String {
    let rec = &r.record;
    let sc = Scale {
        x0: 210.0,
        w: 750.0,
        end: timeline_end(rec),
        wall0: r.started_unix_ms,
    };
    let lost: std::collections::BTreeSet<&str> = r
        .verdicts
        .iter()
        .flat_map(|v| v.lost_writes.iter().map(|w| w.value.as_str()))
        .collect();
    let mut lanes = Lanes {
        rows: Vec::new(),
        heights: Vec::new(),
        y: TOP,
    };
    let bands = fault_lanes(rec, &sc, &mut lanes);
    probe_lanes(rec, &sc, &mut lanes);
    let workloads_top = lanes.y;
    workload_lanes(rec, &sc, &mut lanes, &lost);
    watch_lanes(rec, &sc, &mut lanes);
    role_lanes(rec, &sc, &mut lanes);
    let lanes_bottom = lanes.y;
    let mut body = split_brain_svg(r, &sc, workloads_top, lanes_bottom);
    let ev = events_svg(rec, &sc);
    let height = lanes_bottom + 50.0;
    let axis = axis_svg(rec, &sc, lanes_bottom);
    let labels = lane_labels(&lanes, &sc, &mut body);
    let bands = bands.replace("BANDH", &format!("{:.1}", lanes_bottom - TOP));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 970 {height:.0}" role="img" aria-label="timeline">
<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#cf222e" fill-opacity="0.08"/><line x1="0" y1="0" x2="0" y2="6" stroke="#cf222e" stroke-opacity="0.45" stroke-width="2"/></pattern></defs>
<style>.lbl{{font:12px system-ui,sans-serif;fill:#1f2328}}.tick{{font:11px system-ui,sans-serif;fill:#656d76;text-anchor:middle}}.ytick{{font:10px system-ui,sans-serif;fill:#656d76;text-anchor:end}}.axis{{font:11px system-ui,sans-serif;fill:#1f2328;text-anchor:middle}}.note{{font:10px system-ui,sans-serif;fill:#656d76;text-anchor:end}}.inbar{{font:11px system-ui,sans-serif;fill:#1f2328}}.grid{{stroke:#eaeef2}}.sep{{stroke:#f0f2f4}}</style>
{axis}{bands}{labels}{body}{ev}
</svg>"##
    )
}

/// Where the timeline ends: the run's end or the last workload's stop, at least 1 ms.
fn timeline_end(rec: &RunRecord) -> f64 {
    rec.phases
        .end_ms
        .max(
            rec.histories
                .iter()
                .map(|h| h.stopped_ms)
                .fold(0.0, f64::max),
        )
        .max(1.0)
}

/// Fault windows: a lane each, and a light band across every lane. Returns the bands, with
/// `BANDH` in place of their height (known only once every lane is laid out).
fn fault_lanes(rec: &RunRecord, sc: &Scale, lanes: &mut Lanes) -> String {
    let mut bands = String::new();
    for (i, f) in rec.faults.iter().enumerate() {
        let color = FAULT_COLORS[i % FAULT_COLORS.len()];
        if let Some((band, bar)) = fault_window(f, color, sc, lanes.y) {
            bands.push_str(&band);
            lanes.push(format!("fault {}", f.name), bar, LANE);
        }
    }
    bands
}

/// One fault's band and its bar (at `y`, evidence in the tooltip); none if it was never
/// injected.
fn fault_window(f: &FaultRecord, color: &str, sc: &Scale, y: f64) -> Option<(String, String)> {
    let (Some(a), b) = (f.injected_ms, f.reverted_ms.unwrap_or(sc.end)) else {
        return None;
    };
    let (xa, xb) = (sc.x(a), sc.x(b).max(sc.x(a) + 1.0));
    let band = format!(
        r#"<rect class="band" x="{xa:.1}" y="{TOP}" width="{:.1}" height="BANDH" fill="{color}" fill-opacity="0.13"/>"#,
        xb - xa
    );
    let bar = format!(
        r#"<rect x="{xa:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="3" fill="{color}" fill-opacity="{}"><title>{}</title></rect><text x="{:.1}" y="{:.1}" class="inbar">{}</text>"#,
        y + 6.0,
        xb - xa,
        LANE - 12.0,
        if f.confirmed { "0.85" } else { "0.35" },
        esc(&format!(
            "{} ({}) on {}: {} → {}; {}",
            f.name,
            f.kind,
            f.members.join(", "),
            secs(a),
            secs(b),
            if f.confirmed {
                format!("confirmed: {}", f.evidence)
            } else {
                format!("NOT confirmed: {}", f.error.clone().unwrap_or_default())
            }
        )),
        xa + 4.0,
        y + LANE / 2.0 + 4.0,
        esc(&format!("{} on {}", f.kind, f.members.join(", ")))
    );
    Some((band, bar))
}

/// Probes: a lane each, in order of first sample.
fn probe_lanes(rec: &RunRecord, sc: &Scale, lanes: &mut Lanes) {
    let mut probes: Vec<String> = Vec::new();
    for s in &rec.samples {
        if !probes.contains(&s.probe) {
            probes.push(s.probe.clone());
        }
    }
    for p in &probes {
        let s = probe_lane(rec, p, sc, lanes.y);
        lanes.push(format!("probe {p} latency"), s, PROBE_LANE);
    }
}

/// Height of a probe's lane: its latency (log scale, a point per sample) over its health.
const PROBE_LANE: f64 = 64.0;

/// One probe's lane: every sample as a point on a log latency axis (green ok, red failed:
/// its time to fail), and a health strip along the bottom.
fn probe_lane(rec: &RunRecord, p: &str, sc: &Scale, y: f64) -> String {
    let lane = PROBE_LANE;
    let samples: Vec<_> = rec.samples.iter().filter(|s| s.probe == p).collect();
    let axis = LogAxis::over(samples.iter().map(|s| s.latency_ms));
    let (top, bottom) = (y + 5.0, y + lane - 15.0);
    let mut s = axis.ticks(sc, top, bottom);
    for (i, smp) in samples.iter().enumerate() {
        let xa = sc.x(smp.t_ms);
        let xb = samples
            .get(i + 1)
            .map_or(xa + 2.0, |n| sc.x(n.t_ms))
            .max(xa + 1.0);
        let what = esc(&if smp.ok {
            format!("ok, {:.1}ms", smp.latency_ms)
        } else {
            format!("failed after {:.1}ms: {}", smp.latency_ms, smp.detail)
        });
        let color = if smp.ok { "#2da44e" } else { "#cf222e" };
        let _ = write!(
            s,
            r#"<rect x="{xa:.1}" y="{:.1}" width="{:.1}" height="7" fill="{color}"><title>{} at {}: {what}</title></rect><circle cx="{xa:.1}" cy="{:.1}" r="1.8" fill="{color}" data-mark="sample"><title>{} at {}: {what}</title></circle>"#,
            y + lane - 10.0,
            xb - xa,
            esc(p),
            sc.when(smp.t_ms),
            axis.y(smp.latency_ms, top, bottom),
            esc(p),
            sc.when(smp.t_ms),
        );
    }
    s
}

/// Workloads: throughput per bucket (ok up, failed/unknown stacked), latency, and who
/// acknowledged, each a lane when it has something to show.
fn workload_lanes(
    rec: &RunRecord,
    sc: &Scale,
    lanes: &mut Lanes,
    lost: &std::collections::BTreeSet<&str>,
) {
    let lane = OPS_LANE;
    let bucket = (sc.end / 160.0).max(100.0);
    for h in &rec.histories {
        let s = workload_lane(h, sc, lanes.y, lane, bucket, lost);
        lanes.push(format!("{} ops/s", h.workload), s, lane);
        if let Some(svg) = latency_lane(h, sc, lanes.y, LAT_LANE, bucket) {
            lanes.push(format!("{} latency", h.workload), svg, LAT_LANE);
        }
        let (s, n) = ack_lane(h, sc, lanes.y);
        if n > 0 {
            let hh = lane.max(n as f64 * 12.0 + 8.0);
            lanes.push(format!("{} acked by", h.workload), s, hh);
        }
    }
}

/// Watches: each balancer backend's view of its servers, up or down over time.
fn watch_lanes(rec: &RunRecord, sc: &Scale, lanes: &mut Lanes) {
    let mut groups: Vec<(String, String)> = rec
        .watch_samples
        .iter()
        .filter(|w| w.server != "BACKEND" && w.server != "FRONTEND")
        .map(|w| (w.watch.clone(), w.proxy.clone()))
        .collect();
    groups.sort();
    groups.dedup();
    for (watch, proxy) in groups {
        let (svg, n) = watch_lane(&rec.watch_samples, &watch, &proxy, sc, lanes.y);
        let hh = LANE.max(n as f64 * 12.0 + 8.0);
        lanes.push(format!("{watch}: {proxy}"), svg, hh);
    }
}

/// The role timeline: one lane per cluster, a row per member, each answer coloured
/// (primary, replica, down, unknown) until the next.
fn role_lanes(rec: &RunRecord, sc: &Scale, lanes: &mut Lanes) {
    let mut targets: Vec<&str> = rec.roles.iter().map(|r| r.target.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    for t in targets {
        let mut members: Vec<&str> = rec
            .roles
            .iter()
            .filter(|r| r.target == t)
            .map(|r| r.member.as_str())
            .collect();
        members.sort_unstable();
        members.dedup();
        let y = lanes.y;
        let mut svg = String::new();
        for (row, m) in members.iter().enumerate() {
            let ry = y + 4.0 + row as f64 * 12.0;
            let pts: Vec<&crate::record::RoleSample> = rec
                .roles
                .iter()
                .filter(|r| r.target == t && r.member == *m)
                .collect();
            for (i, p) in pts.iter().enumerate() {
                let next = pts.get(i + 1).map_or(p.answered_ms(), |n| n.t_ms);
                let (color, word) = match p.role {
                    crate::record::RoleSeen::Primary => ("#8250df", "primary"),
                    crate::record::RoleSeen::Replica => ("#c8b6f5", "replica"),
                    crate::record::RoleSeen::Down => ("#8c959f", "down"),
                    crate::record::RoleSeen::Unknown => ("url(#hatch)", "unknown"),
                };
                let xa = sc.x(p.t_ms);
                let _ = write!(
                    svg,
                    r#"<rect x="{xa:.1}" y="{ry:.1}" width="{:.1}" height="9" fill="{color}"><title>{} {word} at {}{}</title></rect>"#,
                    (sc.x(next) - xa).max(0.5),
                    esc(m),
                    sc.when(p.t_ms),
                    if p.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", esc(&p.detail))
                    }
                );
            }
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" class="tick">{}</text>"#,
                sc.x(0.0) + 2.0,
                ry + 8.0,
                esc(m)
            );
        }
        let hh = LANE.max(members.len() as f64 * 12.0 + 8.0);
        lanes.push(format!("roles: {t}"), svg, hh);
    }
}

/// Split-brain windows (from the verdicts' overlap figures), hatched across the workload
/// and watch lanes.
fn split_brain_svg(r: &RunReport, sc: &Scale, workloads_top: f64, lanes_bottom: f64) -> String {
    let mut splits: Vec<(f64, f64, String)> = Vec::new();
    for v in &r.verdicts {
        if let (Some(s), Some(d)) = (v.figures.get("overlapStartMs"), v.figures.get("overlapMs")) {
            splits.push((*s, s + d, v.claim.clone()));
        }
    }
    let mut body = String::new();
    for (a, b, claim) in &splits {
        let _ = write!(
            body,
            r##"<rect x="{:.1}" y="{workloads_top:.1}" width="{:.1}" height="{:.1}" fill="url(#hatch)" stroke="#cf222e" stroke-width="1"><title>split brain ({}): {} → {}</title></rect>"##,
            sc.x(*a),
            (sc.x(*b) - sc.x(*a)).max(1.0),
            lanes_bottom - workloads_top,
            esc(claim),
            sc.when(*a),
            sc.when(*b)
        );
    }
    body
}

/// Events: ticks along the top, coloured by kind (only the kinds worth a tick).
fn events_svg(rec: &RunRecord, sc: &Scale) -> String {
    let mut ev = String::new();
    for e in &rec.events {
        if !matches!(
            e.kind.as_str(),
            "target"
                | "guardrail"
                | "workload"
                | "lab"
                | "probe"
                | "fault"
                | "step"
                | "detected"
                | "watch"
                | "observation"
        ) {
            continue;
        }
        let color = match e.kind.as_str() {
            "guardrail" => "#cf222e",
            "target" => "#8250df",
            "fault" => "#bc4c00",
            "step" => "#1a7f37",
            "detected" => "#cf222e",
            _ => "#6e7781",
        };
        let x = sc.x(e.t_ms);
        let _ = write!(
            ev,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="{color}" stroke-width="2"><title>{} {}: {}</title></line>"#,
            TOP - 10.0,
            TOP - 2.0,
            sc.when(e.t_ms),
            esc(&e.kind),
            esc(&e.message)
        );
    }
    ev
}

/// The time axis: grid lines with seconds below, and a dashed line where faults start.
fn axis_svg(rec: &RunRecord, sc: &Scale, lanes_bottom: f64) -> String {
    let top = TOP;
    let end = sc.end;
    let mut axis = String::new();
    let step = nice_step(end / 1000.0 / 10.0);
    let mut t = 0.0;
    while t * 1000.0 <= end + 1.0 {
        let x = sc.x(t * 1000.0);
        let _ = write!(
            axis,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{lanes_bottom:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" class="tick" data-axis="time">{}s<title>{}</title></text><text x="{x:.1}" y="{:.1}" class="tick">{}</text>"#,
            lanes_bottom + 14.0,
            trim(t),
            sc.when(t * 1000.0),
            lanes_bottom + 26.0,
            &clock(sc.wall0 as f64 + t * 1000.0)[..8]
        );
        t += step;
    }
    let _ = write!(
        axis,
        r#"<text x="{:.1}" y="{:.1}" class="axis">time since the run started (s), and the wall clock (UTC) · run started {}</text>"#,
        sc.x0 + sc.w / 2.0,
        lanes_bottom + 42.0,
        utc(sc.wall0)
    );
    if let Some(fs) = rec.phases.faults_start_ms {
        let x = sc.x(fs);
        let _ = write!(
            axis,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{lanes_bottom:.1}" stroke="#57606a" stroke-dasharray="4 3"><title>fault phase starts at {}</title></line>"##,
            top - 14.0,
            sc.when(fs)
        );
    }
    axis
}

/// Each lane's label and separator line; appends the lanes' bodies to `body` in order.
fn lane_labels(lanes: &Lanes, sc: &Scale, body: &mut String) -> String {
    let mut labels = String::new();
    let mut ly = TOP;
    for ((label, s), hh) in lanes.rows.iter().zip(&lanes.heights) {
        let _ = write!(
            labels,
            r#"<text x="8" y="{:.1}" class="lbl">{}</text><line x1="0" x2="{:.1}" y1="{:.1}" y2="{:.1}" class="sep"/>"#,
            ly + hh / 2.0 + 4.0,
            esc(&shorten(label, 28)),
            sc.x0 + sc.w,
            ly + hh,
            ly + hh
        );
        body.push_str(s);
        ly += hh;
    }
    labels
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn trim(t: f64) -> String {
    let s = format!("{t:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}

fn nice_step(raw: f64) -> f64 {
    for s in [
        0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ] {
        if s >= raw {
            return s;
        }
    }
    1200.0
}

/// Height of a workload's throughput lane and of its latency lane.
const OPS_LANE: f64 = 48.0;
const LAT_LANE: f64 = 76.0;

/// Throughput per bucket on a rate axis (ok, unknown and failed stacked), and a mark
/// where each lost write was acknowledged.
fn workload_lane(
    h: &History,
    sc: &Scale,
    y: f64,
    lane: f64,
    bucket: f64,
    lost: &std::collections::BTreeSet<&str>,
) -> String {
    let n = (sc.end / bucket).ceil() as usize + 1;
    let mut ok = vec![0u32; n];
    let mut bad = vec![0u32; n];
    let mut unk = vec![0u32; n];
    for o in &h.ops {
        let i = ((o.invoke_ms / bucket) as usize).min(n - 1);
        match o.result {
            OpResult::Ok => ok[i] += 1,
            OpResult::Fail => bad[i] += 1,
            OpResult::Info => unk[i] += 1,
        }
    }
    let max = (0..n)
        .map(|i| ok[i] + bad[i] + unk[i])
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let hgt = lane - 14.0;
    let per_s = max / (bucket / 1000.0);
    let mut s = value_ticks(
        sc,
        y + lane - 2.0 - hgt,
        y + lane - 2.0,
        &format!("{} ops/s", trim(per_s)),
        "rate",
    );
    for i in 0..n {
        let total = ok[i] + bad[i] + unk[i];
        if total == 0 {
            continue;
        }
        let xa = sc.x(i as f64 * bucket);
        let w = (sc.x((i + 1) as f64 * bucket) - xa - 0.5).max(0.5);
        let mut base = y + lane - 2.0;
        for (count, color) in [(ok[i], "#2da44e"), (unk[i], "#d4a72c"), (bad[i], "#cf222e")] {
            if count == 0 {
                continue;
            }
            let hh = f64::from(count) / max * hgt;
            base -= hh;
            let _ = write!(
                s,
                r#"<rect x="{xa:.1}" y="{base:.1}" width="{w:.1}" height="{hh:.1}" fill="{color}"><title>{} at {}: {} ok, {} unknown, {} failed</title></rect>"#,
                esc(&h.workload),
                sc.when(i as f64 * bucket),
                ok[i],
                unk[i],
                bad[i]
            );
        }
    }
    // Lost writes: a red marker above the bars where each was acknowledged.
    for o in h
        .ops
        .iter()
        .filter(|o| o.result == OpResult::Ok && lost.contains(o.value.as_str()))
    {
        let x = sc.x(o.complete_ms);
        let _ = write!(
            s,
            r##"<path d="M{:.1},{:.1}l3.5,-6h-7z" fill="#cf222e" stroke="#fff" stroke-width="0.5" data-mark="lost-write"><title>lost write {} acknowledged at {} by {}, missing from the final read</title></path>"##,
            x,
            y + 9.0,
            esc(&o.value),
            sc.when(o.complete_ms),
            esc(&o.endpoint)
        );
    }
    s
}

/// The most operations drawn as points in a latency lane (evenly thinned beyond it).
const MAX_POINTS: usize = 6000;

/// Every operation's latency as a point on a log axis at its start, coloured ok / failed /
/// unknown (as Jepsen's latency plots), with the p99 per bucket as a line; each bucket's
/// tooltip has p50, p99 and the HTTP status mix.
fn latency_lane(h: &History, sc: &Scale, y: f64, lane: f64, bucket: f64) -> Option<String> {
    let done: Vec<&crate::record::history::Op> = h
        .ops
        .iter()
        .filter(|o| o.complete_ms > o.invoke_ms || o.result == OpResult::Ok)
        .collect();
    if done.is_empty() {
        return None;
    }
    let n = (sc.end / bucket).ceil() as usize + 1;
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut codes: Vec<std::collections::BTreeMap<String, u32>> = vec![Default::default(); n];
    for o in &done {
        let i = ((o.invoke_ms / bucket) as usize).min(n - 1);
        lat[i].push(o.complete_ms - o.invoke_ms);
        let k = o
            .status
            .map_or_else(|| "no status".to_string(), |c| c.to_string());
        *codes[i].entry(k).or_insert(0) += 1;
    }
    let axis = LogAxis::over(done.iter().map(|o| o.complete_ms - o.invoke_ms));
    let (top, bottom) = (y + 5.0, y + lane - 5.0);
    let mut s = axis.ticks(sc, top, bottom);
    let stride = done.len().div_ceil(MAX_POINTS).max(1);
    for o in done.iter().step_by(stride) {
        let (color, word) = match o.result {
            OpResult::Ok => ("#2da44e", "ok"),
            OpResult::Fail => ("#cf222e", "failed"),
            OpResult::Info => ("#d4a72c", "unknown"),
        };
        let ms = o.complete_ms - o.invoke_ms;
        let _ = write!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="{color}" fill-opacity="0.75" data-mark="op"><title>{} #{} at {}: {word} in {ms:.1}ms{}</title></circle>"#,
            sc.x(o.invoke_ms),
            axis.y(ms, top, bottom),
            esc(&h.workload),
            o.id,
            sc.when(o.invoke_ms),
            if o.error.is_empty() {
                String::new()
            } else {
                format!(" ({})", esc(&o.error))
            }
        );
    }
    let pts: Vec<(usize, f64, f64)> = lat
        .iter_mut()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, v)| {
            v.sort_by(f64::total_cmp);
            let q = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
            (i, q(0.5), q(0.99))
        })
        .collect();
    let line: Vec<String> = pts
        .iter()
        .map(|p| {
            format!(
                "{:.1},{:.1}",
                sc.x((p.0 as f64 + 0.5) * bucket),
                axis.y(p.2, top, bottom)
            )
        })
        .collect();
    let _ = write!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#0969da" stroke-width="1.2" stroke-opacity="0.8"/>"##,
        line.join(" ")
    );
    for (i, p50, p99) in &pts {
        let xa = sc.x(*i as f64 * bucket);
        let w = (sc.x((*i + 1) as f64 * bucket) - xa).max(0.5);
        let mix = codes[*i]
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            s,
            r#"<rect x="{xa:.1}" y="{y:.1}" width="{w:.1}" height="{lane:.1}" fill="transparent"><title>{} at {}: p50 {p50:.1}ms, p99 {p99:.1}ms ({mix})</title></rect>"#,
            esc(&h.workload),
            sc.when(*i as f64 * bucket),
        );
    }
    Some(s)
}

/// One row per server of a balancer's backend: green while it says UP, red while DOWN.
fn watch_lane(
    samples: &[crate::watch::WatchSample],
    watch: &str,
    proxy: &str,
    sc: &Scale,
    y: f64,
) -> (String, usize) {
    let mut servers: Vec<&str> = samples
        .iter()
        .filter(|w| w.watch == watch && w.proxy == proxy && w.server != "BACKEND")
        .map(|w| w.server.as_str())
        .collect();
    servers.sort();
    servers.dedup();
    let mut s = String::new();
    for (row, server) in servers.iter().enumerate() {
        let ry = y + 4.0 + row as f64 * 12.0;
        let pts: Vec<&crate::watch::WatchSample> = samples
            .iter()
            .filter(|w| w.watch == watch && w.proxy == proxy && w.server == *server)
            .collect();
        for (i, p) in pts.iter().enumerate() {
            let next = pts.get(i + 1).map_or(p.t_ms + 250.0, |n| n.t_ms);
            let color = match p.status.as_str() {
                "UP" => "#2da44e",
                "DOWN" => "#cf222e",
                _ => "#8c959f",
            };
            let xa = sc.x(p.t_ms);
            let _ = write!(
                s,
                r#"<rect x="{xa:.1}" y="{ry:.1}" width="{:.1}" height="9" fill="{color}"><title>{watch} {proxy}/{server} {} at {} ({} sessions)</title></rect>"#,
                (sc.x(next) - xa).max(0.5),
                esc(&p.status),
                sc.when(p.t_ms),
                p.total
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick">{}</text>"#,
            sc.x(0.0) + 2.0,
            ry + 8.0,
            esc(server)
        );
    }
    (s, servers.len())
}

/// Which node acknowledged writes when: one coloured run per stretch of acks by a node.
fn ack_lane(h: &History, sc: &Scale, y: f64) -> (String, usize) {
    let mut oks: Vec<_> = h
        .ops
        .iter()
        .filter(|o| o.result == OpResult::Ok && o.is_write())
        .collect();
    oks.sort_by(|a, b| a.complete_ms.total_cmp(&b.complete_ms));
    let mut eps: Vec<&str> = Vec::new();
    for o in &oks {
        if !eps.contains(&o.endpoint.as_str()) {
            eps.push(&o.endpoint);
        }
    }
    if eps.is_empty() {
        return (String::new(), 0);
    }
    let colors = ["#0969da", "#8250df", "#bf3989", "#1a7f37", "#bc4c00"];
    let row_h = 12.0;
    let mut s = String::new();
    let mut i = 0;
    while i < oks.len() {
        let ep = &oks[i].endpoint;
        let mut j = i;
        while j + 1 < oks.len()
            && &oks[j + 1].endpoint == ep
            && oks[j + 1].complete_ms - oks[j].complete_ms < 2000.0
        {
            j += 1;
        }
        let k = eps.iter().position(|e| e == ep).unwrap_or(0);
        let xa = sc.x(oks[i].complete_ms);
        let xb = sc.x(oks[j].complete_ms).max(xa + 1.5);
        let _ = write!(
            s,
            r#"<rect x="{xa:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} acknowledged {} write(s) of {} from {} to {}</title></rect>"#,
            y + 4.0 + k as f64 * row_h,
            xb - xa,
            row_h - 1.0,
            colors[k % colors.len()],
            esc(ep),
            j - i + 1,
            esc(&h.workload),
            sc.when(oks[i].complete_ms),
            sc.when(oks[j].complete_ms)
        );
        i = j + 1;
    }
    for (k, ep) in eps.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="note">{}</text>"#,
            sc.x0 + sc.w - 2.0,
            y + 4.0 + (k as f64 + 1.0) * row_h - 1.0,
            esc(ep)
        );
    }
    (s, eps.len())
}

/// A figure's JSON key for people: `longestGapMs` → `longest gap`, `stepsWithData` →
/// `steps with data` (the key stays in the tooltip).
pub fn figure_name(k: &str) -> String {
    let k = k.strip_suffix("Ms").unwrap_or(k);
    let mut out = String::new();
    let mut prev_lower = false;
    for c in k.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn card(v: &Verdict) -> String {
    let c = class(v.outcome);
    let figs: String = v
        .figures
        .iter()
        .map(|(k, x)| {
            let val = if k.ends_with("Ms") {
                secs(*x)
            } else if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.3}")
            };
            format!(
                "<span title=\"{}\">{}: <b>{}</b></span>",
                esc(k),
                esc(&figure_name(k)),
                esc(&val)
            )
        })
        .collect();
    format!(
        r#"<article class="card {c}"><h3><span>{}</span><span class="verdict {c}">{}</span></h3><div class="measured">{}</div><p class="reason">{}</p><div class="figs">{figs}</div></article>"#,
        esc(&v.claim),
        v.outcome.word(),
        esc(&v.measured),
        esc(&v.reason)
    )
}

fn writes_table(
    title: &str,
    rows: &[crate::verdict::history::WriteRef],
    present_col: bool,
) -> String {
    let mut s = format!(
        "<h3>{}</h3><div class=\"scroll\"><table><thead><tr><th>#</th><th>value</th><th>acknowledged / answered at</th><th>endpoint</th>{}</tr></thead><tbody>",
        esc(title),
        if present_col { "<th>in final read</th>" } else { "" }
    );
    for (i, w) in rows.iter().enumerate() {
        let _ = write!(
            s,
            "<tr><td class=\"num\">{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td>{}</tr>",
            i + 1,
            esc(&w.value),
            secs(w.t_ms),
            esc(&w.endpoint),
            if present_col {
                format!("<td>{}</td>", if w.present == Some(true) { "yes" } else { "no" })
            } else {
                String::new()
            }
        );
    }
    s.push_str("</tbody></table></div>");
    s
}

/// The whole report as one HTML document.
pub fn render(r: &RunReport) -> String {
    let mut h = String::new();
    head_and_header(&mut h, r);
    summary_section(&mut h, r);
    h.push_str("<section id=\"claims\"><h2>Claims</h2><div class=\"cards\">");
    for v in &r.verdicts {
        h.push_str(&card(v));
    }
    h.push_str("</div></section>");

    h.push_str("<section id=\"timeline\"><h2>Timeline</h2><div class=\"chart\">");
    h.push_str(&timeline_svg(r));
    h.push_str(r##"</div><div class="legend"><span><i class="sw" style="background:#fd8c73"></i>fault window, from its confirmation to its revert (shaded across all lanes)</span><span><i class="sw" style="background:#2da44e"></i>ok</span><span><i class="sw" style="background:#cf222e"></i>failed</span><span><i class="sw" style="background:#d4a72c"></i>unknown outcome</span><span>• a probe sample or an operation at its start, on a log latency axis</span><span><i class="sw" style="background:#0969da"></i>p99 latency per bucket / acknowledging node</span><span><b style="color:#cf222e">▼</b> lost write, where it was acknowledged</span><span><i class="sw" style="background:repeating-linear-gradient(45deg,#cf222e55 0 2px,#fff0 2px 5px)"></i>split brain / role unknown</span><span><i class="sw" style="background:#8250df"></i>role: primary</span><span><i class="sw" style="background:#c8b6f5"></i>replica</span><span><i class="sw" style="background:#8c959f"></i>down</span><span>ticks on top: events · hover anything for its time on both clocks</span></div></section>"##);

    writes_section(&mut h, r);
    workloads_section(&mut h, r);
    faults_section(&mut h, r);
    events_section(&mut h, r);
    spec_section(&mut h, r);
    h.push_str("<footer><p class=\"sub\">Generated by Murphy from the run's JSON; verdicts are computed once, by the run, and only rendered here.</p></footer></main>");
    // The one script: marks whether the page fits its width (read by the render test).
    h.push_str("<script>addEventListener('load',function(){var d=document.documentElement;document.body.setAttribute('data-fits',String(d.scrollWidth<=window.innerWidth+1));document.body.setAttribute('data-cards',String(document.querySelectorAll('.card').length));});</script></body></html>\n");
    h
}

/// The document's head (title, inline CSS) and the header: experiment, run and host.
fn head_and_header(h: &mut String, r: &RunReport) {
    let name = &r.experiment.metadata.name;
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{} · Murphy run {}</title><style>{CSS}</style></head><body><main>"#,
        esc(name),
        esc(&r.run_id)
    );
    let _ = write!(
        h,
        r#"<header><h1>{}</h1><p class="sub">{}</p><div class="meta"><span>run <b>{}</b></span><span>seed <b>{}</b></span><span>started {}</span><span>host {}</span><span>kernel {}</span><span>murphy {}</span><span>exit code {}</span></div></header>"#,
        esc(name),
        esc(r.experiment.spec.description.as_deref().unwrap_or("")),
        esc(&r.run_id),
        r.seed,
        utc(r.started_unix_ms),
        esc(&r.hostname),
        esc(&r.kernel),
        esc(&r.murphy_version),
        r.exit_code
    );
}

/// Verdict counts and the run's status as pills, and why the run ended if it says.
fn summary_section(h: &mut String, r: &RunReport) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &r.verdicts {
        *counts.entry(class(v.outcome)).or_default() += 1;
    }
    h.push_str(r#"<section class="summary">"#);
    for (k, label) in [
        ("held", "held"),
        ("failed", "failed"),
        ("inconclusive", "inconclusive"),
    ] {
        if let Some(n) = counts.get(k) {
            let _ = write!(h, r#"<span class="pill {k}">{n} {label}</span>"#);
        }
    }
    let _ = write!(
        h,
        r#"<span class="pill status">run {}</span></section>"#,
        esc(&format!("{:?}", r.record.status).to_lowercase())
    );
    if let Some(reason) = &r.record.status_reason {
        let _ = write!(h, "<p class=\"reason\">{}</p>", esc(reason));
    }
    if !r.record.left_behind.is_empty() {
        let _ = write!(
            h,
            "<div class=\"left-behind\"><strong>LEFT BEHIND:</strong> not everything was undone; run <code>murphy recover --run {}</code><ul>",
            esc(&r.run_id)
        );
        for l in &r.record.left_behind {
            let _ = write!(h, "<li>{}</li>", esc(l));
        }
        h.push_str("</ul></div>");
    }
}

/// Lost and indeterminate writes, a table per claim that has any (nothing if none has).
fn writes_section(h: &mut String, r: &RunReport) {
    let lost: Vec<&Verdict> = r
        .verdicts
        .iter()
        .filter(|v| !v.lost_writes.is_empty() || !v.indeterminate_writes.is_empty())
        .collect();
    if lost.is_empty() {
        return;
    }
    h.push_str("<section id=\"writes\"><h2>Lost and indeterminate writes</h2>");
    for v in lost {
        if !v.lost_writes.is_empty() {
            h.push_str(&writes_table(
                &format!(
                    "Lost: acknowledged, missing from the final read — {} ({})",
                    v.claim,
                    v.lost_writes.len()
                ),
                &v.lost_writes,
                false,
            ));
        }
        if !v.indeterminate_writes.is_empty() {
            h.push_str(&writes_table(
                &format!(
                    "Indeterminate (outcome unknown, not counted as lost) — {} ({})",
                    v.claim,
                    v.indeterminate_writes.len()
                ),
                &v.indeterminate_writes,
                true,
            ));
        }
    }
    h.push_str("</section>");
}

/// One row per workload: its operation counts and final read (nothing if none ran).
fn workloads_section(h: &mut String, r: &RunReport) {
    if r.record.histories.is_empty() {
        return;
    }
    h.push_str("<section id=\"workloads\"><h2>Workloads</h2><table><thead><tr><th>workload</th><th>client</th><th>ok</th><th>failed</th><th>unknown</th><th>final read</th></tr></thead><tbody>");
    for w in &r.record.histories {
        let fr = match &w.final_read {
            Some(f) if f.ok => format!(
                "{} values from {} ({} attempt(s))",
                f.values.len(),
                f.endpoint,
                f.attempts
            ),
            Some(f) => format!("failed: {}", f.error.clone().unwrap_or_default()),
            None => "—".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&w.workload),
            esc(&w.client),
            w.count(OpResult::Ok),
            w.count(OpResult::Fail),
            w.count(OpResult::Info),
            esc(&fr)
        );
    }
    h.push_str("</tbody></table></section>");
}

/// One row per fault: members, when it was injected and reverted, and its evidence.
fn faults_section(h: &mut String, r: &RunReport) {
    h.push_str("<section id=\"faults\"><h2>Faults</h2><div class=\"wide\"><table><thead><tr><th>fault</th><th>kind</th><th>members</th><th>injected</th><th>reverted</th><th>asked</th><th>achieved</th><th>evidence</th></tr></thead><tbody>");
    for f in &r.record.faults {
        // What the spec asked (the kind's own parameters), beside what the engine measured.
        let asked = r
            .experiment
            .spec
            .faults
            .iter()
            .find(|s| s.name == f.name)
            .and_then(|s| serde_json::to_value(&s.action).ok())
            .and_then(|v| v.as_object().cloned())
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| k.as_str() != "kind")
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => format!("{}: {s}", figure_name(k)),
                        other => format!("{}: {other}", figure_name(k)),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let achieved = f
            .achieved
            .iter()
            .map(|(k, v)| {
                let shown = if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.3}")
                };
                format!("{}: {shown}", figure_name(k))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td data-achieved=\"{}\">{}</td><td>{}</td></tr>",
            esc(&f.name),
            esc(&f.kind),
            esc(&f.members.join(", ")),
            f.injected_ms.map_or("—".into(), secs),
            f.reverted_ms.map_or("—".into(), secs),
            esc(&asked),
            f.achieved.len(),
            esc(&achieved),
            esc(&if f.confirmed {
                format!("confirmed: {}", f.evidence)
            } else {
                format!("NOT confirmed: {}", f.error.clone().unwrap_or_default())
            })
        );
    }
    h.push_str("</tbody></table></div></section>");
}

/// Every event of the run, in a scrolling table.
fn events_section(h: &mut String, r: &RunReport) {
    h.push_str("<section id=\"events\"><h2>Events</h2><div class=\"scroll\"><table><thead><tr><th>time</th><th>kind</th><th>what happened</th></tr></thead><tbody>");
    for e in &r.record.events {
        let _ = write!(
            h,
            "<tr><td class=\"num\" title=\"{} UTC\">{}</td><td>{}</td><td>{}{}</td></tr>",
            clock(r.started_unix_ms as f64 + e.t_ms),
            secs(e.t_ms),
            esc(&e.kind),
            e.fault
                .as_ref()
                .map_or(String::new(), |f| format!("<b>{}</b>: ", esc(f))),
            esc(&e.message)
        );
    }
    h.push_str("</tbody></table></div></section>");
}

/// The experiment as it ran, as JSON in a collapsed block.
fn spec_section(h: &mut String, r: &RunReport) {
    let spec = serde_json::to_string_pretty(&r.experiment).unwrap_or_default();
    let _ = write!(
        h,
        "<section id=\"spec\"><h2>The experiment as it ran</h2><details><summary>spec (seed {}), {} bytes of JSON</summary><pre>{}</pre></details></section>",
        r.seed,
        spec.len(),
        esc(&spec)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_305_600_000), "2026-11-22 00:00:00 UTC");
        assert_eq!(utc(1_795_392_001_500), "2026-11-23 00:00:01 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
