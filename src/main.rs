//! The `murphy` command: parses arguments, sets up logging and progress, calls the engine.

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use murphy::model::{parse_experiment, Experiment};
use murphy::report::{self, exit, RunReport};
use murphy::runner::{self, Progress, RunOptions};
use murphy::timeline::Sample;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `print!` that never panics: a reader that went away (a closed pipe, `murphy ... | head`)
/// loses the rest of the output, never the run (faults are still reverted, the exit code
/// is still the run's).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `println!` that never panics (see [`out!`]).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `eprintln!` that never panics (see [`out!`]).
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "murphy",
    version,
    about = "Inject real faults; prove from evidence whether redundancy and failover claims hold."
)]
struct Cli {
    /// Log format for diagnostics on stderr.
    #[arg(long, global = true, env = "MURPHY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an experiment: bring up its lab, inject its faults, check its claims.
    Run {
        file: PathBuf,
        /// Write the whole run (timeline, faults, verdicts) as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write JUnit XML, one test case per claim.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write the self-contained HTML report (with --trials: one per trial, FILE-N.html).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Write a Markdown summary, e.g. `--summary "$GITHUB_STEP_SUMMARY"` (appends).
        #[arg(long)]
        summary: Option<PathBuf>,
        /// Run the experiment N times, each with a fresh lab and seed+i, and report per claim
        /// how often it held; a claim that holds only sometimes is flaky.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        trials: u32,
        /// Where journals and run logs are kept.
        #[arg(long, env = "MURPHY_STATE_DIR", default_value = "/var/lib/murphy")]
        state_dir: PathBuf,
        /// Seed for random choices (overrides spec.seed).
        #[arg(long)]
        seed: Option<u64>,
        /// No live progress, only the final table.
        #[arg(long, short)]
        quiet: bool,
        /// Post each fault's window and the verdict to Grafana (its base URL, e.g.
        /// http://grafana:3000) as annotations tagged `murphy`; the token (a service
        /// account's) comes from MURPHY_GRAFANA_TOKEN.
        #[arg(long, value_name = "URL", value_parser = grafana_url)]
        annotate: Option<murphy::httpapi::BaseUrl>,
        /// With --annotate: put the annotations on this dashboard (its UID) only.
        #[arg(long, value_name = "UID", requires = "annotate")]
        annotate_dashboard: Option<String>,
    },
    /// Render a run's JSON (from `run --json`) as HTML, Markdown or JUnit.
    Report {
        run_json: PathBuf,
        /// The HTML report.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long)]
        markdown: Option<PathBuf>,
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Post the run's fault windows and verdict to Grafana as annotations (as
        /// `murphy run --annotate`).
        #[arg(long, value_name = "URL", value_parser = grafana_url)]
        annotate: Option<murphy::httpapi::BaseUrl>,
        #[arg(long, value_name = "UID", requires = "annotate")]
        annotate_dashboard: Option<String>,
    },
    /// Check an experiment file and report every problem with its field path and line.
    Validate {
        /// Check it as a cluster's admission does (`kubectl apply`): also refuse what the
        /// cluster door cannot run, and an Experiment's targets outside its namespace.
        #[arg(long)]
        cluster: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Revert whatever crashed runs left behind, from their journals.
    Recover {
        #[arg(long, env = "MURPHY_STATE_DIR", default_value = "/var/lib/murphy")]
        state_dir: PathBuf,
        /// Only this run's journal (its id, as in `<state-dir>/journal/<id>.jsonl`).
        #[arg(long)]
        run: Option<String>,
    },
    /// Check that this machine can run experiments.
    Doctor,
    /// Print the JSON schema of the experiment format.
    Schema,
    /// The dead-man switch `murphy run` starts for each run (see `murphy::guardian`).
    #[command(name = "__guard", hide = true)]
    Guard {
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long)]
        run: String,
        #[arg(long)]
        pid: i32,
    },
    #[command(name = "__hog", hide = true)]
    Hog {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Live progress: on a terminal, a spinner over a few lines (phase and countdown, faults
/// in effect, probes and workloads) redrawn in place, coloured unless NO_COLOR; otherwise
/// (or `--quiet`) timestamped lines only.
struct Live {
    quiet: bool,
    bar: Option<ProgressBar>,
    state: Mutex<murphy::live::LiveState>,
    steady_ms: f64,
    color: bool,
    /// When the run's clock started, as the live view learns it from the first call.
    origin: Mutex<Option<(std::time::Instant, f64)>>,
}

impl Live {
    fn new(quiet: bool, exp: &Experiment) -> Live {
        let tty = std::io::stderr().is_terminal();
        let color = murphy::live::color_wanted(tty);
        console::set_colors_enabled_stderr(color);
        let bar = (!quiet && tty).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Live {
            quiet,
            bar,
            state: Mutex::new(murphy::live::LiveState::new(Some(murphy::plan::Plan::new(
                &exp.spec,
            )))),
            steady_ms: exp.spec.steady_duration().as_secs_f64() * 1000.0,
            color,
            origin: Mutex::new(None),
        }
    }
    /// The run's clock now, from the latest time a call carried.
    fn now_ms(&self, t_ms: f64) -> f64 {
        let mut o = self.origin.lock().unwrap_or_else(|p| p.into_inner());
        let (at, t) = *o.get_or_insert((std::time::Instant::now(), t_ms));
        t + at.elapsed().as_secs_f64() * 1000.0
    }
    fn refresh(&self, t_ms: f64) {
        let Some(b) = &self.bar else {
            return;
        };
        let width = murphy::live::terminal_width(std::io::stderr())
            .unwrap_or(100)
            .saturating_sub(3);
        let now = self.now_ms(t_ms).max(t_ms);
        let lines = self
            .state
            .lock()
            .map(|s| s.lines(now, self.steady_ms, width, self.color))
            .unwrap_or_default();
        b.set_message(lines.join("\n"));
    }
    fn line(&self, t_ms: f64, s: &str) {
        if self.quiet {
            return;
        }
        let text = format!("[{:>7.2}s] {s}", t_ms / 1000.0);
        match &self.bar {
            Some(b) => b.println(text),
            None => errln!("{text}"),
        }
    }
}

impl Progress for Live {
    fn phase(&self, t_ms: f64, phase: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.phase(t_ms, phase);
        }
        let shown = if self.color {
            console::style(format!("== {phase}")).bold().to_string()
        } else {
            format!("== {phase}")
        };
        self.line(t_ms, &shown);
        self.refresh(t_ms);
    }
    fn event(&self, t_ms: f64, line: &str) {
        self.line(t_ms, line);
    }
    fn sample(&self, smp: &Sample) {
        if let Ok(mut s) = self.state.lock() {
            s.sample(&smp.probe, smp.ok, smp.latency_ms);
        }
        self.refresh(smp.t_ms);
    }
    fn fault(&self, t_ms: f64, fault: &str, active: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.fault(t_ms, fault, active);
        }
        self.refresh(t_ms);
    }
    fn workloads(&self, t_ms: f64, w: Vec<murphy::live::WorkloadLive>) {
        if let Ok(mut s) = self.state.lock() {
            s.workloads(w);
        }
        self.refresh(t_ms);
    }
}

fn load(file: &Path) -> Result<murphy::model::Experiment, i32> {
    let src = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            errln!("{}: cannot read: {e}", file.display());
            return Err(exit::INVALID);
        }
    };
    parse_experiment(&src).map_err(|diags| {
        errln!("{}: {} problem(s):", file.display(), diags.len());
        for d in diags {
            errln!("  {}:{d}", file.display());
        }
        exit::INVALID
    })
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MURPHY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn real_main() -> anyhow::Result<i32> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::INVALID } else { 0 };
            let _ = e.print();
            return Ok(code);
        }
    };
    if let Cmd::Hog { args } = &cli.command {
        return Ok(murphy::fault::hog::main(args));
    }
    if let Cmd::Guard {
        state_dir,
        run,
        pid,
    } = &cli.command
    {
        return Ok(murphy::guardian::main(state_dir, run, *pid));
    }
    init_tracing(&cli.log_format);
    match cli.command {
        Cmd::Validate { cluster, files } => Ok(validate_cmd(files, cluster)),
        Cmd::Report {
            run_json,
            output,
            markdown,
            junit,
            annotate,
            annotate_dashboard,
        } => report_cmd(
            &run_json,
            output,
            markdown,
            junit,
            grafana(annotate, annotate_dashboard),
        ),
        Cmd::Run {
            file,
            json,
            junit,
            html,
            summary,
            trials,
            state_dir,
            seed,
            quiet,
            annotate,
            annotate_dashboard,
        } => run_cmd(
            &file,
            trials,
            state_dir,
            seed,
            RunOutputs {
                json,
                junit,
                html,
                summary,
                quiet,
                annotate: grafana(annotate, annotate_dashboard),
            },
        ),
        Cmd::Recover { state_dir, run } => recover_cmd(&state_dir, run.as_deref()),
        Cmd::Doctor => Ok(doctor()),
        Cmd::Schema => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&schemars::schema_for!(murphy::model::Experiment))?
            );
            Ok(0)
        }
        Cmd::Hog { .. } | Cmd::Guard { .. } => Ok(0),
    }
}

/// `murphy validate`: check each file; the exit code is the last failure's, else 0.
fn validate_cmd(files: Vec<PathBuf>, cluster: bool) -> i32 {
    let mut code = 0;
    for f in files {
        let refused = match load(&f) {
            Ok(exp) if cluster => {
                let r = murphy::plan::refusals(&exp, murphy::plan::Door::Cluster);
                if r.is_empty() {
                    Ok(exp)
                } else {
                    errln!("{}: {} problem(s) on a cluster:", f.display(), r.len());
                    for d in r {
                        errln!("  {}:{d}", f.display());
                    }
                    Err(exit::INVALID)
                }
            }
            other => other,
        };
        match refused {
            Ok(exp) => outln!(
                "{}: valid ({} probes, {} faults, {} claims)",
                f.display(),
                exp.spec.probes.len(),
                exp.spec.faults.len(),
                exp.spec.claims.len()
            ),
            Err(c) => code = c,
        }
    }
    code
}

/// The claims table, fitted to the terminal when stdout is one (whole lines otherwise,
/// for logs and grep).
fn claims_table(rep: &RunReport) -> String {
    let out = std::io::stdout();
    let width = out
        .is_terminal()
        .then(|| murphy::live::terminal_width(&out))
        .flatten();
    report::table_fit(rep, width)
}

/// `--annotate URL`: a base URL, checked before anything runs.
fn grafana_url(s: &str) -> Result<murphy::httpapi::BaseUrl, String> {
    murphy::httpapi::BaseUrl::parse(s)
}

/// Where annotations go: the URL, the dashboard, and the token from the environment.
fn grafana(
    url: Option<murphy::httpapi::BaseUrl>,
    dashboard_uid: Option<String>,
) -> Option<murphy::annotate::Target> {
    Some(murphy::annotate::Target {
        url: url?,
        token: std::env::var("MURPHY_GRAFANA_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
        dashboard_uid,
    })
}

/// Post the run's annotations, saying on stderr what happened; never changes the exit code.
fn annotate(to: Option<&murphy::annotate::Target>, rep: &RunReport) {
    let Some(to) = to else {
        return;
    };
    let anns = murphy::annotate::annotations(rep, to.dashboard_uid.as_deref());
    match murphy::annotate::post(to, &anns) {
        Ok(n) => errln!("annotations: {n} posted to {}", to.url.as_str()),
        Err(e) => errln!("murphy: annotations not posted: {e}"),
    }
}

/// `murphy report`: render a run's JSON; the claims table when no output is asked for.
fn report_cmd(
    run_json: &Path,
    output: Option<PathBuf>,
    markdown: Option<PathBuf>,
    junit: Option<PathBuf>,
    grafana: Option<murphy::annotate::Target>,
) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(run_json)
        .with_context(|| format!("reading {}", run_json.display()))?;
    let rep: RunReport = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            errln!(
                "{}: not a Murphy run report (from `murphy run --json`): {e}",
                run_json.display()
            );
            return Ok(exit::INVALID);
        }
    };
    if output.is_none() && markdown.is_none() && junit.is_none() && grafana.is_none() {
        out!("{}", claims_table(&rep));
    }
    annotate(grafana.as_ref(), &rep);
    write_outputs(
        &rep,
        None,
        junit.as_deref(),
        output.as_deref(),
        markdown.as_deref(),
    )?;
    Ok(0)
}

/// Where `murphy run` writes its reports, and whether it shows live progress.
struct RunOutputs {
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    html: Option<PathBuf>,
    summary: Option<PathBuf>,
    quiet: bool,
    annotate: Option<murphy::annotate::Target>,
}

/// `murphy run`: load the experiment, then run it once or `trials` times.
fn run_cmd(
    file: &Path,
    trials: u32,
    state_dir: PathBuf,
    seed: Option<u64>,
    out: RunOutputs,
) -> anyhow::Result<i32> {
    let exp = match load(file) {
        Ok(e) => e,
        Err(c) => return Ok(c),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first asks the run to stop in order (revert, tear down, report); a second one
        // ends the process at once, and the run's guardian undoes what it left.
        signal_hook::flag::register_conditional_shutdown(sig, exit::INTERNAL, stop.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let base_dir = file
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let base_dir = std::fs::canonicalize(&base_dir).unwrap_or(base_dir);
    let opts = RunOptions {
        state_dir,
        base_dir,
        exe: std::env::current_exe().context("finding murphy's own executable")?,
        seed,
    };
    if trials == 1 {
        run_once(&exp, &opts, stop, &out)
    } else {
        run_trials(&exp, &opts, stop, trials, &out)
    }
}

/// Run the experiment with live progress in `live`; `None` (the error already printed)
/// if the run could not be carried out.
fn run_with(
    exp: &Experiment,
    opts: &RunOptions,
    live: &Live,
    stop: Arc<AtomicBool>,
) -> Option<RunReport> {
    let out = match runner::run(exp, opts, live, stop) {
        Ok(o) => o,
        Err(e) => {
            errln!("murphy: {e}");
            return None;
        }
    };
    if let Some(b) = &live.bar {
        b.finish_and_clear();
    }
    Some(RunReport::new(exp, out))
}

/// One run: print the claims table, write the reports; the exit code is the run's.
fn run_once(
    exp: &Experiment,
    opts: &RunOptions,
    stop: Arc<AtomicBool>,
    out: &RunOutputs,
) -> anyhow::Result<i32> {
    let live = Live::new(out.quiet, exp);
    let Some(rep) = run_with(exp, opts, &live, stop) else {
        return Ok(exit::INTERNAL);
    };
    out!("{}", claims_table(&rep));
    write_outputs(
        &rep,
        out.json.as_deref(),
        out.junit.as_deref(),
        out.html.as_deref(),
        out.summary.as_deref(),
    )?;
    annotate(out.annotate.as_ref(), &rep);
    Ok(rep.exit_code)
}

/// Repeated trials with seed, seed+1, ... so each trial replays on its own; stops early
/// when interrupted, and then exits at least inconclusive.
fn run_trials(
    exp: &Experiment,
    opts: &RunOptions,
    stop: Arc<AtomicBool>,
    trials: u32,
    out: &RunOutputs,
) -> anyhow::Result<i32> {
    let base = opts.seed.or(exp.spec.seed).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut reps = Vec::new();
    for i in 0..u64::from(trials) {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        errln!(
            "== trial {} of {trials} (seed {})",
            i + 1,
            base.wrapping_add(i)
        );
        let mut o = opts.clone();
        o.seed = Some(base.wrapping_add(i));
        let live = Live::new(out.quiet, exp);
        let Some(rep) = run_with(exp, &o, &live, stop.clone()) else {
            return Ok(exit::INTERNAL);
        };
        if !out.quiet {
            out!("{}", claims_table(&rep));
        }
        if let Some(h) = &out.html {
            write_trial_html(h, i + 1, &rep)?;
        }
        annotate(out.annotate.as_ref(), &rep);
        reps.push(rep);
    }
    let tr = murphy::trials::TrialsReport::new(reps);
    out!("{}", murphy::trials::table(&tr));
    write_trials_outputs(&tr, out)?;
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(exit::INCONCLUSIVE.max(tr.exit_code));
    }
    Ok(tr.exit_code)
}

/// Write trial `n`'s HTML report beside `html`, as `<stem>-<n>.html`.
fn write_trial_html(html: &Path, n: u64, rep: &RunReport) -> anyhow::Result<()> {
    let stem = html
        .file_stem()
        .map_or_else(|| "report".into(), |s| s.to_string_lossy().into_owned());
    let p = html.with_file_name(format!("{stem}-{n}.html"));
    std::fs::write(&p, murphy::html::render(rep))
        .with_context(|| format!("writing {}", p.display()))
}

/// Write whichever reports of all trials were asked for (JSON, Markdown summary, JUnit).
fn write_trials_outputs(tr: &murphy::trials::TrialsReport, out: &RunOutputs) -> anyhow::Result<()> {
    if let Some(p) = &out.json {
        std::fs::write(p, serde_json::to_string_pretty(tr)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &out.summary {
        append(p, &murphy::trials::markdown(tr))?;
    }
    if let Some(p) = &out.junit {
        std::fs::write(p, murphy::trials::junit(tr))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// `murphy recover`: replay what crashed runs left behind and say what was undone.
fn recover_cmd(state_dir: &Path, run: Option<&str>) -> anyhow::Result<i32> {
    let recs = murphy::journal::recover(state_dir, run)
        .with_context(|| format!("reading journals in {}", state_dir.display()))?;
    if recs.is_empty() {
        match run {
            Some(id) => outln!("no journal of run {id} in {}", state_dir.display()),
            None => outln!("nothing to recover in {}", state_dir.display()),
        }
        return Ok(0);
    }
    let mut code = 0;
    for r in recs {
        if r.alive {
            outln!(
                "{}: skipped: its run is still running (it holds the journal)",
                r.journal.display()
            );
            continue;
        }
        outln!("{}:", r.journal.display());
        for u in &r.undone {
            outln!("  undone: {u}");
        }
        for e in &r.errors {
            outln!("  FAILED: {e}");
            code = exit::INTERNAL;
        }
    }
    Ok(code)
}

fn append(p: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .with_context(|| format!("opening {}", p.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", p.display()))
}

/// Write whichever reports were asked for.
fn write_outputs(
    rep: &RunReport,
    json: Option<&Path>,
    junit: Option<&Path>,
    html: Option<&Path>,
    markdown: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_string_pretty(rep)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = junit {
        std::fs::write(p, report::junit(rep))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = html {
        std::fs::write(p, murphy::html::render(rep))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = markdown {
        append(p, &report::markdown(rep))?;
    }
    Ok(())
}

fn doctor() -> i32 {
    let mut bad = 0;
    let mut check = |name: &str, ok: bool, hint: &str| {
        outln!(
            "{} {name}{}",
            if ok { "ok  " } else { "FAIL" },
            if ok {
                String::new()
            } else {
                format!(": {hint}")
            }
        );
        if !ok {
            bad += 1;
        }
    };
    check(
        "running as root",
        nix::unistd::geteuid().is_root(),
        "faults and the lab need root",
    );
    // Faults talk netlink to the kernel themselves (nftables, routes, links, qdiscs); the
    // lab still makes its namespaces and veth pairs with `ip`. (`iptables` only undoes
    // NFQUEUE rules journaled by versions before 2026-12: `murphy recover` says so if it
    // meets one without it.)
    {
        let (bin, pkg) = ("ip", "iproute2 (the lab's namespaces and links)");
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).exists()));
        check(
            &format!("{bin} on PATH"),
            found,
            &format!("apt-get install {pkg}"),
        );
    }
    let m = murphy::cgroup::Mounts::read();
    check(
        "cgroup memory controller",
        m.base_for("memory").is_some(),
        "mount cgroup v1 memory or enable it in cgroup v2",
    );
    check(
        "cgroup freezer",
        m.v1_mount("freezer").is_some() || m.v2.is_some(),
        "mount the v1 freezer or cgroup v2",
    );
    check(
        "/run/netns usable",
        std::fs::create_dir_all("/run/netns").is_ok(),
        "cannot create /run/netns",
    );
    if bad == 0 {
        0
    } else {
        exit::INTERNAL
    }
}

fn main() {
    let code = match real_main() {
        Ok(c) => c,
        Err(e) => {
            errln!("murphy: {e:#}");
            exit::INTERNAL
        }
    };
    std::process::exit(code);
}
