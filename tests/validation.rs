//! One test per kind of bad input: the error names the field (and its line), and every
//! experiment in experiments/ validates.

use murphy::model::parse_experiment;

const GOOD: &str = r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: ok}
spec:
  lab:
    hosts:
      - name: web
        processes: [{name: app, argv: [sleep, "60"]}]
  targets:
    app: {lab: web/app}
  probes:
    - {name: site, tcp: {address: "10.77.0.10:80"}, interval: 100ms}
  faults:
    - {name: kill, kind: process-kill, target: app, at: 1s, duration: 2s}
  claims:
    - name: stays up
      availability: {probe: site, atLeast: "99%"}
"#;

fn errors(src: &str) -> Vec<String> {
    match parse_experiment(src) {
        Ok(_) => vec![],
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

fn expect_error(src: &str, field: &str, words: &str) {
    let errs = errors(src);
    assert!(
        errs.iter().any(|e| e.contains(field) && e.contains(words)),
        "expected an error on {field} mentioning {words:?}, got {errs:#?}"
    );
}

#[test]
fn the_good_example_is_valid() {
    assert_eq!(errors(GOOD), Vec::<String>::new());
}

#[test]
fn yaml_syntax_errors_have_a_location() {
    let errs = errors("apiVersion: [unclosed\n");
    assert!(
        errs[0].starts_with("1:") || errs[0].starts_with("2:"),
        "{errs:?}"
    );
}

#[test]
fn unknown_fields_are_reported_with_line_and_column() {
    let src = GOOD.replace("interval: 100ms", "intervall: 100ms");
    expect_error(&src, "spec.probes[0].intervall", "unknown field");
    let errs = errors(&src);
    assert!(
        errs[0].starts_with("12:53:"),
        "line 12, column 53: {errs:?}"
    );
}

#[test]
fn every_unknown_field_is_reported_not_only_the_first() {
    let src = GOOD
        .replace("interval: 100ms", "intervall: 100ms")
        .replace("atLeast:", "atleast:");
    assert_eq!(errors(&src).len(), 2, "{:?}", errors(&src));
}

#[test]
fn bare_numbers_are_not_durations() {
    expect_error(
        &GOOD.replace("at: 1s", "at: 1"),
        "spec.faults[0].at",
        "expected a string",
    );
}

#[test]
fn bad_duration_units_are_named() {
    expect_error(
        &GOOD.replace("duration: 2s", "duration: 2 weeks"),
        "spec.faults",
        "invalid duration",
    );
}

#[test]
fn wrong_api_version() {
    expect_error(
        &GOOD.replace("murphy.dev/v1alpha1", "murphy.dev/v2"),
        "apiVersion",
        "must be",
    );
}

#[test]
fn unknown_fault_kind() {
    expect_error(
        &GOOD.replace("process-kill", "process-explode"),
        "spec.faults[0]",
        "unknown variant",
    );
}

#[test]
fn fault_parameter_of_another_kind() {
    expect_error(
        &GOOD.replace("duration: 2s}", "duration: 2s, rate: 1Mi/s}"),
        "spec.faults[0]",
        "rate",
    );
}

#[test]
fn undefined_target() {
    expect_error(
        &GOOD.replace("target: app", "target: nope"),
        "spec.faults[0].target",
        "no target named",
    );
}

#[test]
fn undefined_probe_in_claim() {
    expect_error(
        &GOOD.replace("{probe: site,", "{probe: ghost,"),
        "spec.claims[0].availability.probe",
        "no probe named",
    );
}

#[test]
fn lab_reference_to_missing_process() {
    expect_error(
        &GOOD.replace("lab: web/app", "lab: web/db"),
        "spec.targets.app.lab",
        "no process named",
    );
}

#[test]
fn target_with_two_selectors() {
    expect_error(
        &GOOD.replace("{lab: web/app}", "{lab: web/app, netns: blue}"),
        "spec.targets.app",
        "exactly one",
    );
}

#[test]
fn probe_without_a_check() {
    expect_error(
        &GOOD.replace("tcp: {address: \"10.77.0.10:80\"}", "timeout: 1s"),
        "spec.probes[0]",
        "exactly one of `http`, `tcp` or `command`",
    );
}

#[test]
fn bad_tcp_address() {
    expect_error(
        &GOOD.replace("10.77.0.10:80", "somewhere"),
        "spec.probes[0].tcp.address",
        "ip:port",
    );
}

#[test]
fn empty_argv() {
    expect_error(
        &GOOD.replace("argv: [sleep, \"60\"]", "argv: []"),
        "spec.lab.hosts[0].processes[0].argv",
        "cannot be empty",
    );
}

#[test]
fn percent_out_of_range() {
    expect_error(
        &GOOD.replace("\"99%\"", "\"120%\""),
        "spec.claims[0].availability.atLeast",
        "invalid percentage",
    );
}

#[test]
fn duplicate_names() {
    let src = GOOD.replace(
        "  claims:\n",
        "  claims:\n    - name: stays up\n      availability: {probe: site, atLeast: \"50%\"}\n",
    );
    expect_error(&src, "spec.claims[1].name", "duplicate");
}

#[test]
fn open_ended_fault_needs_a_phase() {
    expect_error(
        &GOOD.replace(", duration: 2s}", "}"),
        "spec.faults[0].duration",
        "no duration",
    );
}

#[test]
fn fault_beyond_max_duration() {
    let src = GOOD.replace("claims:", "guardrails: {maxDuration: 2s}\n  claims:");
    expect_error(&src, "spec.faults[0].at", "maxDuration");
}

#[test]
fn bad_signal_and_bad_cidr() {
    expect_error(
        &GOOD.replace("duration: 2s}", "duration: 2s, signal: SIGFOO}"),
        "spec.faults[0].signal",
        "unknown signal",
    );
    let src = GOOD.replace(
        "kind: process-kill, target: app, at: 1s, duration: 2s}",
        "kind: network-partition, target: app, at: 1s, duration: 2s, cidrs: [10.0.0.0/99]}",
    );
    expect_error(&src, "spec.faults[0].cidrs[0]", "CIDR");
}

#[test]
fn bad_regex_in_cmdline_selector() {
    let src = GOOD.replace("app: {lab: web/app}", "app: {process: {cmdline: \"([\"}}");
    expect_error(
        &src,
        "spec.targets.app.process.cmdline",
        "regular expression",
    );
}

#[test]
fn refuses_pid_1() {
    expect_error(
        &GOOD.replace("app: {lab: web/app}", "app: {process: {pid: 1}}"),
        "spec.targets.app.process.pid",
        "pid 0 or 1",
    );
}

#[test]
fn every_experiment_in_the_repository_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("experiments/") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let src = std::fs::read_to_string(&p).expect("read");
            if let Err(d) = parse_experiment(&src) {
                panic!("{} is invalid: {d:#?}", p.display());
            }
            n += 1;
        }
    }
    assert!(n >= 1, "no experiments found");
}
