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
        "exactly one of `http`, `tcp`, `command` or `prometheus`",
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

const CLUSTER: &str = r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: cluster}
spec:
  lab:
    hosts:
      - {name: n1, processes: [{name: db, argv: [sleep, "60"]}]}
      - {name: n2, processes: [{name: db, argv: [sleep, "60"]}]}
      - {name: c}
  targets:
    leader:
      members: [n1/db, n2/db]
      select: primary
      role: {redis: {port: 6379}}
  workloads:
    - {name: w, from: c, rate: 10/s, endpoints: ["10.77.0.10:6379"], redis: {}}
  faults:
    - {name: kill, kind: process-kill, target: leader, at: 1s, duration: 2s}
  claims:
    - name: nothing lost
      noAckedWriteLoss: {workload: w}
    - name: quick failover
      writeAvailability: {workload: w, maxGap: 5s}
"#;

#[test]
fn the_cluster_example_is_valid() {
    assert_eq!(errors(CLUSTER), Vec::<String>::new());
}

#[test]
fn workload_needs_one_client_and_real_endpoints() {
    let src = CLUSTER.replace("redis: {}}", "redis: {}, etcd: {}}");
    expect_error(
        &src,
        "spec.workloads[0]",
        "exactly one of `http`, `redis`, `postgres` or `etcd` (found 2)",
    );
    let src = CLUSTER.replace("\"10.77.0.10:6379\"", "\"redis-1:6379\"");
    expect_error(
        &src,
        "spec.workloads[0].endpoints[0]",
        "neither `ip:port` nor `{target:<name>}:<port>`",
    );
    // A target's members as endpoints: the target must exist.
    let src = CLUSTER.replace("\"10.77.0.10:6379\"", "\"{target:nothere}:6379\"");
    expect_error(
        &src,
        "spec.workloads[0].endpoints[0]",
        "there is no `spec.targets.nothere`",
    );
    let src = CLUSTER.replace("\"10.77.0.10:6379\"", "\"{target:nothere}:0\"");
    expect_error(&src, "spec.workloads[0].endpoints[0]", "neither");
    let src = CLUSTER.replace("from: c,", "from: nowhere,");
    expect_error(&src, "spec.workloads[0].from", "no lab host");
    let src = CLUSTER.replace("rate: 10/s", "rate: fast");
    expect_error(&src, "spec.workloads[0].rate", "rate");
}

#[test]
fn claims_name_existing_workloads_and_measurable_gaps() {
    let src = CLUSTER.replace(
        "noAckedWriteLoss: {workload: w}",
        "noAckedWriteLoss: {workload: x}",
    );
    expect_error(
        &src,
        "spec.claims[0].noAckedWriteLoss.workload",
        "no workload named \"x\"",
    );
    // 10/s writes every 100ms: a 150ms gap cannot be measured.
    let src = CLUSTER.replace("maxGap: 5s", "maxGap: 150ms");
    expect_error(
        &src,
        "spec.claims[1].writeAvailability.maxGap",
        "too slowly",
    );
    let src = CLUSTER.replace(
        "noAckedWriteLoss: {workload: w}",
        "noAckedWriteLoss: {workload: w}\n      singlePrimary: {workloads: [w]}",
    );
    expect_error(&src, "spec.claims[0]", "needs exactly one of");
}

#[test]
fn role_aware_targets_need_a_role_probe_and_lab_members() {
    let src = CLUSTER.replace("      role: {redis: {port: 6379}}\n", "");
    expect_error(&src, "spec.targets.leader.select", "needs `role`");
    let src = CLUSTER.replace("members: [n1/db, n2/db]", "members: [n1/db, n9/db]");
    expect_error(
        &src,
        "spec.targets.leader.members[1]",
        "no lab host named \"n9\"",
    );
    let src = CLUSTER.replace(
        "role: {redis: {port: 6379}}",
        "role: {redis: {port: 6379}, etcd: {port: 2379}}",
    );
    expect_error(&src, "spec.targets.leader.role", "exactly one of");
    let src = CLUSTER.replace("select: primary", "select: leader");
    expect_error(&src, "spec.targets.leader.select", "");
}

#[test]
fn lab_files_are_plain_names() {
    let src = CLUSTER.replace(
        "{name: n1, processes: [{name: db, argv: [sleep, \"60\"]}]}",
        "{name: n1, processes: [{name: db, argv: [sleep, \"60\"], files: {\"../x\": hi}}]}",
    );
    expect_error(&src, "spec.lab.hosts[0].processes[0].files", "plain names");
}

#[test]
fn data_faults_are_validated() {
    let wipe = GOOD.replace(
        "{name: kill, kind: process-kill, target: app, at: 1s, duration: 2s}",
        "{name: wipe, kind: data-wipe, target: app, at: 1s, duration: 2s, paths: [\"var/lib/x\"]}",
    );
    expect_error(&wipe, "spec.faults[0].paths[0]", "absolute path");
    let wipe = GOOD.replace(
        "{name: kill, kind: process-kill, target: app, at: 1s, duration: 2s}",
        "{name: wipe, kind: data-wipe, target: app, at: 1s, duration: 2s, paths: [\"/var/lib/../x\"]}",
    );
    expect_error(&wipe, "spec.faults[0].paths[0]", "'..'");
    let wipe = GOOD.replace(
        "{name: kill, kind: process-kill, target: app, at: 1s, duration: 2s}",
        "{name: wipe, kind: data-wipe, target: app, at: 1s, duration: 2s, paths: [/data], journalCopy: false}",
    );
    expect_error(&wipe, "spec.faults[0].journalCopy", "restore: false");
    let ok = wipe.replace("journalCopy: false", "journalCopy: false, restore: false");
    assert_eq!(
        errors(&ok),
        Vec::<String>::new(),
        "an explicit opt-out is accepted"
    );
    let cfg = GOOD.replace(
        "{name: kill, kind: process-kill, target: app, at: 1s, duration: 2s}",
        "{name: cfg, kind: config-corrupt, target: app, at: 1s, duration: 2s, path: /etc/app.conf, deleteLine: \"(\", reload: SIGBOGUS}",
    );
    expect_error(&cfg, "spec.faults[0].deleteLine", "regular expression");
    expect_error(&cfg, "spec.faults[0].reload", "unknown signal");
    let cfg = GOOD.replace(
        "{name: kill, kind: process-kill, target: app, at: 1s, duration: 2s}",
        "{name: cfg, kind: config-corrupt, target: app, at: 1s, duration: 2s, path: /etc/app.conf}",
    );
    expect_error(
        &cfg,
        "spec.faults[0]",
        "exactly one of `set`, `deleteLine` or `replace`",
    );
}

/// Data faults never reach the kernel's trees (a path under /proc/1/root is the host's
/// `/`) nor the whole filesystem; `guardrails.allowPaths`, when set, bounds every
/// data-fault path. Every problem is reported at once, each naming its field.
#[test]
fn data_fault_paths_stay_out_of_the_kernel_trees_and_within_allow_paths() {
    let src = with_fault(
        "kind: data-wipe, paths: [/proc/1/root/var/lib/db, /sys/fs/cgroup, /dev/sda, \"/*\", /, \"/?ar/lib\", \"/var/*/db\"]",
    );
    expect_error(&src, "spec.faults[0].paths[0]", "under /proc");
    expect_error(&src, "spec.faults[0].paths[1]", "under /sys");
    expect_error(&src, "spec.faults[0].paths[2]", "under /dev");
    expect_error(&src, "spec.faults[0].paths[3]", "starts with a wildcard");
    expect_error(&src, "spec.faults[0].paths[4]", "the whole filesystem");
    expect_error(&src, "spec.faults[0].paths[5]", "starts with a wildcard");
    let errs = errors(&src);
    assert_eq!(
        errs.len(),
        6,
        "one error per bad path, all at once: {errs:#?}"
    );
    expect_error(
        &with_fault("kind: data-corrupt, paths: [/dev/shm/x]"),
        "spec.faults[0].paths[0]",
        "under /dev",
    );
    expect_error(
        &with_fault("kind: config-corrupt, path: /proc/sys/kernel/panic, replace: \"1\""),
        "spec.faults[0].path",
        "under /proc",
    );
    // Storage faults only watch: /dev is theirs to name.
    assert_eq!(
        errors(&with_fault(
            "kind: io-error, paths: [/dev/shm/x], errno: EIO"
        )),
        Vec::<String>::new()
    );

    let allowed = |fault: &str, allow: &str| {
        with_fault(fault).replace(
            "  claims:",
            &format!("  guardrails: {{allowPaths: {allow}}}\n  claims:"),
        )
    };
    let ok = allowed(
        "kind: data-wipe, paths: [/var/lib/db/base, \"/var/lib/db/*.log\", /var/lib/db]",
        "[/srv, /var/lib/db/]",
    );
    assert_eq!(errors(&ok), Vec::<String>::new(), "beneath allowPaths");
    let out = allowed(
        "kind: data-corrupt, paths: [/var/lib/db/x, /var/lib/dbx, \"/var/lib/d*/x\", /etc/passwd]",
        "[/var/lib/db]",
    );
    expect_error(
        &out,
        "spec.faults[0].paths[1]",
        "not beneath guardrails.allowPaths",
    );
    expect_error(
        &out,
        "spec.faults[0].paths[2]",
        "not beneath guardrails.allowPaths",
    );
    expect_error(
        &out,
        "spec.faults[0].paths[3]",
        "not beneath guardrails.allowPaths",
    );
    assert_eq!(errors(&out).len(), 3, "{:#?}", errors(&out));
    expect_error(
        &allowed(
            "kind: config-corrupt, path: /etc/app.conf, replace: x",
            "[/var/lib/db]",
        ),
        "spec.faults[0].path",
        "not beneath guardrails.allowPaths",
    );
    // A lab placeholder is compared as written.
    assert_eq!(
        errors(&allowed(
            "kind: data-wipe, paths: [\"{data:web}/base\"]",
            "[\"{data:web}\"]"
        )),
        Vec::<String>::new()
    );
    let bad = allowed(
        "kind: data-wipe, paths: [/var/lib/db]",
        "[/, relative/dir, /proc/1/root, \"/var/*\", /var/lib/db]",
    );
    expect_error(
        &bad,
        "spec.guardrails.allowPaths[0]",
        "the whole filesystem",
    );
    expect_error(&bad, "spec.guardrails.allowPaths[1]", "absolute path");
    expect_error(&bad, "spec.guardrails.allowPaths[2]", "under /proc");
    expect_error(&bad, "spec.guardrails.allowPaths[3]", "without wildcards");
    assert_eq!(errors(&bad).len(), 4, "{:#?}", errors(&bad));
    // A cluster's node agents do not enforce it: refused there, naming the field.
    assert!(
        cluster_problems(&ok)
            .iter()
            .any(|p| p.starts_with("spec.guardrails.allowPaths")),
        "{:?}",
        cluster_problems(&ok)
    );
}

#[test]
fn steps_and_drill_claims_are_validated() {
    let src = GOOD.replace(
        "  claims:\n",
        "  steps:\n    - {name: restore, at: 1s, argv: [cp, a, b], start: web/app}\n    - {name: go, at: 1s, start: web/nope}\n    - {name: late, at: 1h, argv: [\"true\"]}\n  claims:\n    - {name: rto, restores: {probe: nope, within: 10s}}\n",
    );
    expect_error(
        &src,
        "spec.steps[0]",
        "exactly one of `argv`, `start` or `stop`",
    );
    expect_error(&src, "spec.steps[1].start", "not a lab process");
    expect_error(&src, "spec.steps[2].at", "after the end of the fault phase");
    expect_error(
        &src,
        "spec.claims[0].restores.probe",
        "no probe named \"nope\"",
    );
}

#[test]
fn delivery_claims_need_a_sink() {
    let src = CLUSTER.replace(
        "noAckedWriteLoss: {workload: w}",
        "eventuallyDelivered: {workload: w}",
    );
    expect_error(
        &src,
        "spec.claims[0].eventuallyDelivered.workload",
        "needs `deliveredTo`",
    );
    let ok = src.replace(
        "redis: {}}",
        "redis: {push: true}, deliveredTo: {endpoints: [\"10.77.0.11:5432\"], postgres: {table: delivered}}}",
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
    let bad = ok.replace("table: delivered", "table: \"x; drop\"");
    expect_error(
        &bad,
        "spec.workloads[0].deliveredTo.postgres.table",
        "SQL identifier",
    );
}

fn with_fault(fault: &str) -> String {
    GOOD.replace(
        "    - {name: kill, kind: process-kill, target: app, at: 1s, duration: 2s}",
        &format!("    - {{name: f, target: app, at: 1s, duration: 2s, {fault}}}"),
    )
}

#[test]
fn storage_faults_check_errno_delay_and_paths() {
    expect_error(
        &with_fault("kind: io-error, paths: [/data], errno: EWHAT"),
        "spec.faults[0].errno",
        "unknown errno \"EWHAT\"; one of EIO, ENOSPC",
    );
    expect_error(
        &with_fault("kind: io-latency, paths: [/data], delay: 5ms, jitter: 10ms"),
        "spec.faults[0].jitter",
        "must not exceed `delay`",
    );
    expect_error(
        &with_fault("kind: storage-stall, paths: [data/rel]"),
        "spec.faults[0].paths[0]",
        "must be an absolute path",
    );
    expect_error(
        &with_fault("kind: storage-stall, paths: [/data], ops: [fsync, sync]"),
        "spec.faults[0]",
        "sync",
    );
    expect_error(
        &with_fault("kind: io-throttle, path: /data"),
        "spec.faults[0]",
        "needs at least one of `readBps`, `writeBps`, `readIops`, `writeIops`",
    );
    assert_eq!(
        errors(&with_fault("kind: io-throttle, path: /data, writeBps: 0/s")),
        Vec::<String>::new()
    );
    expect_error(
        &with_fault("kind: memory-leak, rate: 1Mi/s, limit: 100Gi, mode: inProcess"),
        "spec.faults[0].limit",
        "at most 64Gi",
    );
    expect_error(
        &with_fault("kind: load-surge, rate: 5000/s, port: 80"),
        "spec.faults[0].rate",
        "at most 2000/s",
    );
}

#[test]
fn load_claims_and_watches_name_what_they_use() {
    let src = GOOD.replace(
        "  claims:\n",
        "  watches:\n    - {name: lb, haproxy: {socket: /run/lb.sock}}\n    - {name: nosrc}\n  workloads:\n    - {name: w, rate: 10/s, endpoints: [\"10.0.0.1:80\"], redis: {}, retry: {attempts: 2}}\n  claims:\n    - {name: e, errorRate: {workload: nope, atMost: \"1%\"}}\n    - {name: f, noFlapping: {watch: lb, probe: site}}\n    - {name: g, noFlapping: {watch: other, backend: app}}\n    - {name: h, capacityShare: {watches: [lb, zz], proxy: app, atMost: \"0%\"}}\n    - {name: i, latency: {workload: w, probe: site, percentile: \"99%\", below: 1s}}\n",
    );
    expect_error(&src, "spec.watches[1]", "needs a source: `haproxy`");
    expect_error(&src, "spec.workloads[0].retry", "only http workloads retry");
    expect_error(
        &src,
        "spec.claims[0].errorRate.workload",
        "no workload named \"nope\"",
    );
    expect_error(
        &src,
        "spec.claims[1].noFlapping",
        "needs exactly one of `watch` or `probe`",
    );
    expect_error(
        &src,
        "spec.claims[2].noFlapping.watch",
        "no watch named \"other\"",
    );
    expect_error(
        &src,
        "spec.claims[3].capacityShare.watches[1]",
        "no watch named \"zz\"",
    );
    expect_error(
        &src,
        "spec.claims[3].capacityShare.atMost",
        "must be above 0%",
    );
    expect_error(
        &src,
        "spec.claims[4].latency",
        "needs exactly one of `probe` or `workload`",
    );
}

#[test]
fn network_fault_fields_are_checked_with_their_paths() {
    let errs = errors(
        r#"
apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: net}
spec:
  lab:
    hosts: [{name: a}, {name: b}]
    networks:
      - {name: Bad-Name, subnet: 10.78.1.5/24, attach: {a: 10.78.2.1, zz: 10.78.1.2}}
  targets:
    a: {lab: a}
  faults:
    - {name: d, kind: network-delay, target: a, duration: 1s, delay: 50ms, jitter: 80ms, filter: {direction: egress, port: 80}}
    - {name: l, kind: network-loss, target: a, duration: 1s, loss: "0%"}
    - {name: r, kind: route-hijack, target: a, duration: 1s, prefixes: [10.99.0.1/24], via: nowhere}
    - {name: f, kind: route-flap, target: a, duration: 1s, prefixes: [10.99.0.0/24], period: 10ms}
    - {name: g, kind: bgp-announce, target: a, duration: 1s, from: c, neighbor: 10.0.0.1, neighborAs: 65000, localAs: 65000, prefixes: []}
"#,
    );
    for want in [
        "spec.lab.networks[0].name",
        "spec.lab.networks[0].subnet",
        "spec.lab.networks[0].attach.zz",
        "spec.faults[0].jitter",
        "spec.faults[0].filter.direction",
        "spec.faults[0].filter.port",
        "spec.faults[1].loss",
        "spec.faults[2].prefixes[0]",
        "spec.faults[2].via",
        "spec.faults[3].period",
        "spec.faults[4].from",
        "spec.faults[4].localAs",
        "spec.faults[4].prefixes",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "no error at {want}: {errs:#?}"
        );
    }
}

#[test]
fn pod_targets_are_checked_and_cannot_mix_with_a_lab() {
    let errs = errors(
        r#"
apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: pods}
spec:
  lab:
    hosts: [{name: a}]
  targets:
    web:
      pods: {namespace: Shop, matchLabels: {"app/": web, tier: "-bad"}, containers: [Main]}
      pick: {mode: up-to-percent}
  faults:
    - {name: k, kind: process-kill, target: web, duration: 1s}
"#,
    );
    for want in [
        "spec.targets.web.pods.namespace",
        "spec.targets.web.pods.matchLabels.app/",
        "spec.targets.web.pods.matchLabels.tier",
        "spec.targets.web.pods.containers[0]",
        "spec.targets.web.pick.percent",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "no error at {want}: {errs:#?}"
        );
    }
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.targets.web.pods") && e.contains("runs on a cluster")),
        "{errs:#?}"
    );
}

#[test]
fn lists_are_bounded_as_the_crd_bounds_them() {
    let many: String = (0..65)
        .map(|i| format!("    - {{name: k{i}, kind: process-kill, target: app, at: 1s}}\n"))
        .collect();
    let src = GOOD.replace(
        "    - {name: kill, kind: process-kill, target: app, at: 1s, duration: 2s}\n",
        &many,
    );
    expect_error(&src, "spec.faults", "at most 64 entries (found 65)");
}

/// `spec.commandPod` (where a cluster runs command probes): an image reference, a service
/// account name and limits the API server takes, every problem named at once.
#[test]
fn command_pod_fields_are_checked_at_once() {
    let src = GOOD.replace(
        "  targets:\n",
        "  commandPod: {image: \"busy box;rm\", serviceAccountName: Checker_1, cpu: lots, memory: 64Mi}\n  targets:\n",
    );
    let errs = errors(&src);
    for (field, words) in [
        ("spec.commandPod.image", "not an image reference"),
        (
            "spec.commandPod.serviceAccountName",
            "not a service account name",
        ),
        ("spec.commandPod.cpu", "not a Kubernetes quantity"),
    ] {
        assert!(
            errs.iter().any(|e| e.contains(field) && e.contains(words)),
            "{field}: {errs:#?}"
        );
    }
    assert!(
        !errs.iter().any(|e| e.contains("commandPod.memory")),
        "{errs:#?}"
    );
    let ok = GOOD.replace(
        "  targets:\n",
        "  commandPod: {image: \"registry.example.com:5000/tools/busybox:1.36@sha256:0f3c\", serviceAccountName: checker, cpu: \"0.5\", memory: 64Mi}\n  targets:\n",
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
}

/// What `murphy validate --cluster` says of a document: the parser's and validator's
/// problems, else what the cluster door refuses (field paths and messages).
fn cluster_problems(src: &str) -> Vec<String> {
    match parse_experiment(src) {
        Ok(exp) => murphy::plan::refusals(&exp, murphy::plan::Door::Cluster)
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect(),
        Err(d) => d
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect(),
    }
}

/// The bad cluster specs (tests/data/bad-cluster-specs.yaml, which the Kubernetes e2e
/// test also sends to a real API server): each is refused for a cluster, naming its field,
/// while the file they are made from is accepted.
#[test]
fn every_bad_cluster_spec_is_refused_naming_its_field() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let base_src = std::fs::read_to_string(root.join("experiments/kubernetes/pause-one-web.yaml"))
        .expect("base");
    assert_eq!(cluster_problems(&base_src), Vec::<String>::new());
    let base: serde_json::Value = serde_saphyr::from_str(&base_src).expect("yaml");
    let cases: Vec<serde_json::Value> = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("tests/data/bad-cluster-specs.yaml")).expect("cases"),
    )
    .expect("cases yaml");
    assert!(cases.len() >= 15);
    for c in &cases {
        let mut doc = base.clone();
        for (k, v) in c["spec"].as_object().expect("spec") {
            doc["spec"][k] = v.clone();
        }
        let field = c["field"].as_str().expect("field");
        let p = cluster_problems(&doc.to_string());
        assert!(
            p.iter().any(|l| l.starts_with(field)),
            "{}: expected a problem at {field}, got {p:#?}",
            c["name"]
        );
    }
}

/// `murphy validate` reports every problem at once — misspelt keys (with the key meant),
/// values of the wrong type and semantic rules together — in the order of the file.
#[test]
fn every_kind_of_problem_is_reported_at_once_in_file_order() {
    let src = GOOD
        .replace("interval: 100ms", "intervall: 100ms")
        .replace("at: 1s, duration: 2s", "at: 1, duration: 2s")
        .replace("target: app,", "target: apq,")
        .replace("probe: site,", "probe: sitee,");
    let errs = errors(&src);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs[0].contains("spec.probes[0].intervall") && errs[0].contains("did you mean `interval`"),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains("spec.faults[0].target") && errs[1].contains("did you mean `app`"),
        "{errs:#?}"
    );
    assert!(errs[2].contains("spec.faults[0].at"), "{errs:#?}");
    assert!(
        errs[3].contains("spec.claims[0].availability.probe")
            && errs[3].contains("did you mean `site`"),
        "{errs:#?}"
    );
    // In file order: every located error's line is at or after the one before.
    let lines: Vec<usize> = errs
        .iter()
        .filter_map(|e| e.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(lines.len(), 4, "{errs:#?}");
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn from_takes_a_lab_host_or_an_existing_namespace() {
    let src = GOOD.replace(
        "interval: 100ms}",
        "interval: 100ms, from: {netns: client-a}}",
    );
    assert_eq!(errors(&src), Vec::<String>::new());
    let src = GOOD.replace("interval: 100ms}", "interval: 100ms, from: wbe}");
    expect_error(&src, "spec.probes[0].from", "did you mean `web`");
    let src = GOOD.replace("interval: 100ms}", "interval: 100ms, from: {netns: a/b}}");
    expect_error(
        &src,
        "spec.probes[0].from.netns",
        "not a network namespace name",
    );
    let src = GOOD.replace("interval: 100ms}", "interval: 100ms, from: {nets: a}}");
    expect_error(&src, "spec.probes[0].from.nets", "did you mean `netns`");
    let src = GOOD.replace("interval: 100ms}", "interval: 100ms, from: 7}");
    expect_error(
        &src,
        "spec.probes[0].from",
        "lab host name or {netns: NAME}",
    );
}

#[test]
fn existing_processes_and_namespaces_can_be_cluster_members() {
    let src = r#"apiVersion: murphy.dev/v1alpha1
kind: Experiment
metadata: {name: outside}
spec:
  targets:
    leader:
      members:
        - {netns: n1, name: n1}
        - {process: {pidfile: /run/n2.pid}, address: 10.0.0.2}
        - {cgroup: /system.slice/n3.service, address: 10.0.0.3}
      select: primary
      role: {etcd: {port: 2379}, interval: 250ms, from: {netns: client}}
  workloads:
    - {name: w, rate: 5/s, endpoints: ["{target:leader}:2379"], from: {netns: client}, etcd: {}}
  faults:
    - {name: kill, kind: process-kill, target: leader, at: 1s, duration: 2s}
  claims:
    - name: one leader
      singlePrimary: {workloads: [w], target: leader}
"#;
    assert_eq!(errors(src), Vec::<String>::new());
    let bad = src
        .replace("{netns: n1, name: n1}", "{netns: n1, process: {pid: 5}}")
        .replace("address: 10.0.0.2", "address: ten");
    let errs = errors(&bad);
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.targets.leader.members[0]") && e.contains("exactly one")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.targets.leader.members[1].address")),
        "{errs:#?}"
    );
    // The role timeline's own fields, and the cluster a singlePrimary claim names.
    let bad = src
        .replace("interval: 250ms", "interval: 0s")
        .replace("from: {netns: client}}", "from: clinet}")
        .replace("target: leader}", "target: leadr}");
    let errs = errors(&bad);
    for (field, words) in [
        ("spec.targets.leader.role.interval", "between 10ms and 10s"),
        (
            "spec.targets.leader.role.from",
            "no lab host named \"clinet\"",
        ),
        (
            "spec.claims[0].singlePrimary.target",
            "did you mean `leader`",
        ),
    ] {
        assert!(
            errs.iter().any(|e| e.contains(field) && e.contains(words)),
            "{field}: {errs:#?}"
        );
    }
    // A cluster whose roles only go on the timeline needs no `select`.
    let timeline_only = src.replace("      select: primary\n", "");
    let errs = errors(&timeline_only);
    assert!(!errs.iter().any(|e| e.contains("select")), "{errs:#?}");
}
