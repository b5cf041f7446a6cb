//! Snapshots of generated artefacts (JUnit XML, the claims table, the run JSON shape) for a
//! fixed run record, so format changes are deliberate.

use murphy::claims::evaluate;
use murphy::history::{FinalRead, History, Op, OpResult};
use murphy::model::parse_experiment;
use murphy::report::{junit, table, RunReport};
use murphy::runner::RunOutput;
use murphy::timeline::{FaultRecord, Phases, RunRecord, RunStatus, Sample};

fn fixed() -> RunReport {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/experiments/quickstart.yaml"
    ))
    .expect("quickstart");
    let exp = parse_experiment(&src).expect("valid");
    let mut samples = Vec::new();
    for i in 0..150 {
        let t = f64::from(i) * 100.0;
        samples.push(Sample {
            probe: "site".into(),
            t_ms: t,
            ok: true,
            latency_ms: 0.5 + f64::from(i % 7) * 0.1,
            detail: String::new(),
        });
        let down = (3000.0..11100.0).contains(&t);
        samples.push(Sample {
            probe: "web1".into(),
            t_ms: t,
            ok: !down,
            latency_ms: 0.4,
            detail: if down {
                "connect 10.77.0.11:80: Connection refused".into()
            } else {
                String::new()
            },
        });
    }
    let record = RunRecord {
        samples,
        events: vec![],
        faults: vec![FaultRecord {
            name: "kill-web1".into(),
            kind: "process-kill".into(),
            target: "web1".into(),
            members: vec!["web1/nginx".into()],
            injected_ms: Some(3000.0),
            confirmed_ms: Some(3005.0),
            reverted_ms: Some(11000.0),
            confirmed: true,
            evidence: "pid 100, 101 no longer running".into(),
            error: None,
            inject_latency_ms: Some(5.0),
            ended_early: None,
            achieved: Default::default(),
        }],
        histories: vec![],
        watch_samples: vec![],
        phases: Phases {
            steady_start_ms: 0.0,
            faults_start_ms: Some(2000.0),
            faults_end_ms: Some(11000.0),
            end_ms: 15000.0,
        },
        status: RunStatus::Completed,
        status_reason: None,
        left_behind: vec![],
        roles: vec![],
        role_clusters: vec![],
        prometheus: vec![],
    };
    let verdicts = evaluate(&exp.spec.claims, &record);
    let mut r = RunReport::new(
        &exp,
        RunOutput {
            run_id: "0000abcd".into(),
            seed: 7,
            started_unix_ms: 0,
            record,
            verdicts,
        },
    );
    r.hostname = "host".into();
    r.kernel = "test".into();
    r.murphy_version = "test".into();
    r
}

#[test]
fn junit_snapshot() {
    insta::assert_snapshot!(junit(&fixed()));
}

#[test]
fn claims_table_snapshot() {
    insta::assert_snapshot!(table(&fixed()));
}

#[test]
fn the_claims_table_fits_a_terminal_of_any_width_and_keeps_every_word() {
    let r = fixed();
    let words = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
    for width in [160usize, 100, 80, 60, 40] {
        let t = murphy::report::table_fit(&r, Some(width));
        for line in t.lines() {
            assert!(
                line.chars().count() <= width,
                "{width} columns: {line:?}\n{t}"
            );
        }
        // Nothing is cut: every word of every reason and claim is still there, in order.
        let all = words(&t);
        for v in &r.verdicts {
            for w in words(&v.reason).iter().chain(words(&v.claim).iter()) {
                assert!(all.contains(w), "{width}: lost {w:?}\n{t}");
            }
        }
    }
    // Without a width (a pipe, a log), every reason stays on one line.
    let t = table(&r);
    for v in &r.verdicts {
        assert!(t.lines().any(|l| l.ends_with(&v.reason)), "{t}");
    }
}

#[test]
fn verdicts_json_snapshot() {
    insta::assert_json_snapshot!(fixed().verdicts);
}

/// The Redis partition experiment with a synthetic history: the pinned writer's writes to
/// the isolated primary are lost; the other writer fails over.
fn redis_fixed() -> RunReport {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/experiments/redis-sentinel-partition.yaml"
    ))
    .expect("redis experiment");
    let exp = parse_experiment(&src).expect("valid");
    let (r1, r3) = ("10.79.2.11:6379", "10.79.2.13:6379");
    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..200u64 {
        let t = i as f64 * 100.0;
        a.push(Op {
            id: i,
            value: format!("writer-a-{i:06}"),
            invoke_ms: t,
            complete_ms: t + 1.0,
            result: OpResult::Ok,
            endpoint: r1.into(),
            error: String::new(),
            status: None,
            attempt: 0,
        });
        let (result, endpoint, error) = if t < 4000.0 {
            (OpResult::Ok, r1, "")
        } else if t < 4500.0 {
            (OpResult::Info, r1, "no reply from 10.79.2.11:6379 in time")
        } else if t < 5700.0 {
            (
                OpResult::Fail,
                r3,
                "READONLY You can't write against a read only replica.",
            )
        } else {
            (OpResult::Ok, r3, "")
        };
        b.push(Op {
            id: i,
            value: format!("writer-b-{i:06}"),
            invoke_ms: t,
            complete_ms: t + if result == OpResult::Info { 500.0 } else { 1.0 },
            result,
            endpoint: endpoint.into(),
            error: error.into(),
            status: None,
            attempt: 0,
        });
    }
    let kept = |ops: &[Op], pred: &dyn Fn(&Op) -> bool| -> Vec<String> {
        ops.iter()
            .filter(|o| pred(o))
            .map(|o| o.value.clone())
            .collect()
    };
    let hist = |name: &str, ops: Vec<Op>, values: Vec<String>| History {
        workload: name.into(),
        client: "redis".into(),
        started_ms: 0.0,
        stopped_ms: 20_000.0,
        final_read: Some(FinalRead {
            ok: true,
            t_ms: 22_000.0,
            endpoint: r3.into(),
            values,
            attempts: 3,
            error: None,
        }),
        ops,
        notes: vec![],
    };
    let a_kept = kept(&a, &|o| o.invoke_ms < 4000.0);
    let b_kept = kept(&b, &|o| o.result == OpResult::Ok);
    let record = RunRecord {
        samples: vec![],
        events: vec![],
        faults: vec![FaultRecord {
            name: "isolate-primary".into(),
            kind: "network-partition".into(),
            target: "primary".into(),
            members: vec!["r1/redis".into()],
            injected_ms: Some(4000.0),
            confirmed_ms: Some(4010.0),
            reverted_ms: Some(14000.0),
            confirmed: true,
            evidence: "2 drop rule(s)".into(),
            error: None,
            inject_latency_ms: Some(10.0),
            ended_early: None,
            achieved: Default::default(),
        }],
        histories: vec![hist("writer-a", a, a_kept), hist("writer-b", b, b_kept)],
        watch_samples: vec![],
        phases: Phases {
            steady_start_ms: 0.0,
            faults_start_ms: Some(2000.0),
            faults_end_ms: Some(14000.0),
            end_ms: 22_500.0,
        },
        status: RunStatus::Completed,
        status_reason: None,
        left_behind: vec![],
        roles: vec![],
        role_clusters: vec![],
        prometheus: vec![],
    };
    let verdicts = evaluate(&exp.spec.claims, &record);
    let mut r = RunReport::new(
        &exp,
        RunOutput {
            run_id: "0000beef".into(),
            seed: 11,
            started_unix_ms: 0,
            record,
            verdicts,
        },
    );
    r.hostname = "host".into();
    r.kernel = "test".into();
    r.murphy_version = "test".into();
    r
}

#[test]
fn lost_writes_table_snapshot() {
    let r = redis_fixed();
    let outcomes: Vec<_> = r.verdicts.iter().map(|v| v.outcome).collect();
    use murphy::claims::Outcome::*;
    assert_eq!(outcomes, vec![Failed, Held, Failed, Held]);
    assert_eq!(r.verdicts[0].lost_writes.len(), 160);
    assert_eq!(r.verdicts[0].lost_writes[0].value, "writer-a-000040");
    assert_eq!(r.verdicts[1].indeterminate_writes.len(), 5);
    insta::assert_snapshot!(table(&r));
}

/// The structure of the HTML report, not its pixels: sections, headings, claim cards,
/// timeline lanes and marks, table sizes.
fn outline(html: &str) -> String {
    let re = regex::Regex::new(
        r#"<(section) id="([^"]+)"|<(h[123])>([^<]*)|<article class="card ([a-z]+)"><h3><span>([^<]*)|<text x="8" y="[^"]+" class="lbl">([^<]*)|fill="url\(#hatch\)"|<(table)|<(svg) "#,
    )
    .expect("regex");
    let mut out = Vec::new();
    for c in re.captures_iter(html) {
        let line = if let Some(id) = c.get(2) {
            format!("section #{}", id.as_str())
        } else if let (Some(h), Some(t)) = (c.get(3), c.get(4)) {
            format!("  {} {}", h.as_str(), t.as_str())
        } else if let (Some(k), Some(t)) = (c.get(5), c.get(6)) {
            format!("  card [{}] {}", k.as_str(), t.as_str())
        } else if let Some(l) = c.get(7) {
            format!("  lane {}", l.as_str())
        } else if c.get(8).is_some() {
            "  table".to_string()
        } else if c.get(9).is_some() {
            "  svg".to_string()
        } else {
            "  split-brain window".to_string()
        };
        out.push(line);
    }
    out.push(format!("table rows: {}", html.matches("<tr>").count()));
    out.join("\n")
}

#[test]
fn html_report_structure_snapshot() {
    let html = murphy::html::render(&redis_fixed());
    for needle in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "<link",
        "src=\"//",
    ] {
        assert!(
            !html.contains(needle),
            "the report loads nothing from the network: {needle}"
        );
    }
    insta::assert_snapshot!(outline(&html));
    let html = murphy::html::render(&fixed());
    insta::assert_snapshot!("quickstart_html_outline", outline(&html));
}

#[test]
fn markdown_summary_snapshot() {
    insta::assert_snapshot!(murphy::report::markdown(&redis_fixed()));
}

/// Render the report of a cluster run with lost writes in headless Chromium (Debian's
/// `chromium`, installed by scripts/install-deps) at desktop and phone widths: no console
/// errors, the page fits its width, every claim card is there, the charts have their axes
/// (time with the wall clock, latency on a log scale, throughput as a rate) and a mark per
/// lost write, and the screenshots (kept in the test's output directory,
/// target/tmp/murphy-report/) have the asked-for size.
#[test]
fn html_report_renders_in_chromium_without_errors() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is installed (scripts/install-deps installs it)");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("murphy-report");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let page = dir.join("report.html");
    let report = redis_fixed();
    let lost: std::collections::BTreeSet<&str> = report
        .verdicts
        .iter()
        .flat_map(|v| v.lost_writes.iter().map(|w| w.value.as_str()))
        .collect();
    assert!(lost.len() > 100, "a run with lost writes: {}", lost.len());
    std::fs::write(&page, murphy::html::render(&report)).expect("write");
    let url = format!("file://{}", page.display());
    for (w, h) in [(1280u32, 1800u32), (390, 2400)] {
        let profile = dir.join(format!("profile-{w}"));
        let common = |extra: &[String]| {
            let mut args: Vec<String> = [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=3000",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push(format!("--user-data-dir={}", profile.display()));
            args.push(format!("--window-size={w},{h}"));
            args.extend_from_slice(extra);
            args.push(url.clone());
            std::process::Command::new(chromium)
                .args(&args)
                .output()
                .expect("run chromium")
        };
        let dom = common(&["--dump-dom".to_string()]);
        let stderr = String::from_utf8_lossy(&dom.stderr);
        let console: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
            .collect();
        assert!(
            console.is_empty(),
            "console messages at {w}px: {console:#?}"
        );
        let text = String::from_utf8_lossy(&dom.stdout);
        assert!(
            text.contains("data-fits=\"true\""),
            "the page is wider than the {w}px window\n{}",
            &text[..text.len().min(400)]
        );
        assert!(text.contains("data-cards=\"4\""), "4 claim cards at {w}px");
        // The charts as the browser has them: axes with units, a mark per lost write.
        let count = |needle: &str| text.matches(needle).count();
        assert_eq!(
            count("data-mark=\"lost-write\""),
            lost.len(),
            "a mark per lost write"
        );
        assert!(count("data-axis=\"time\"") >= 5, "a time axis");
        assert!(
            text.contains("run started ") && text.contains(" UTC</text>"),
            "the wall clock on the axis"
        );
        assert!(count("data-axis=\"latency\"") >= 2, "log latency axes");
        assert!(
            text.contains(">1ms<") || text.contains(">10ms<"),
            "decades labelled"
        );
        assert!(
            count("data-axis=\"rate\"") >= 2,
            "throughput with a rate axis"
        );
        assert!(text.contains(" ops/s<"), "a rate's unit");
        assert!(count("data-mark=\"op\"") > 300, "every operation a point");
        assert!(text.contains("longest gap"), "figures with human names");
        let png = dir.join(format!("report-{w}.png"));
        let shot = common(&[format!("--screenshot={}", png.display())]);
        assert!(shot.status.success(), "screenshot at {w}px failed");
        let bytes = std::fs::read(&png).expect("png written");
        assert_eq!(&bytes[1..4], b"PNG");
        let width = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let height = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        assert_eq!((width, height), (w, h));
        assert!(
            bytes.len() > 20_000,
            "a real page, not a blank one: {} bytes",
            bytes.len()
        );
        eprintln!("screenshot: {}", png.display());
    }
    for w in [1280, 390] {
        let _ = std::fs::remove_dir_all(dir.join(format!("profile-{w}")));
    }
}

/// The JUnit report — a single run's and `--trials`' alike — is valid against the common
/// `junit-10.xsd` (Jenkins xUnit, pytest), checked by `xmllint` (libxml2). `scripts/test`
/// fetches the schema (`scripts/junit-xsd`) and says where it is in `MURPHY_JUNIT_XSD`.
#[test]
fn junit_is_valid_against_junit_10_xsd_with_times_and_capped_lost_writes() {
    let xsd = std::env::var("MURPHY_JUNIT_XSD")
        .unwrap_or_else(|_| "/var/tmp/murphy-junit-xsd/junit-10.xsd".into());
    assert!(
        std::path::Path::new(&xsd).exists(),
        "no JUnit schema at {xsd}: run scripts/junit-xsd (scripts/test does)"
    );
    let dir = std::env::temp_dir().join(format!("murphy-junit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let redis = redis_fixed();
    let trials = murphy::trials::TrialsReport::new(vec![fixed(), fixed()]);
    // A run that did not undo everything fails a test case of its own, in both shapes.
    let mut left = fixed();
    left.record.left_behind = vec!["fault wipe: restore /srv/d: a file stands in the way".into()];
    let left_trials = murphy::trials::TrialsReport::new(vec![fixed(), left.clone()]);
    for (name, xml) in [
        ("run.xml", junit(&fixed())),
        ("redis.xml", junit(&redis)),
        ("trials.xml", murphy::trials::junit(&trials)),
        ("left.xml", junit(&left)),
        ("left-trials.xml", murphy::trials::junit(&left_trials)),
    ] {
        assert_eq!(
            name.starts_with("left"),
            xml.contains("type=\"left-behind\"")
                && xml.contains("a file stands in the way")
                && xml.contains(&format!("murphy recover --run {}", left.run_id)),
            "{name}: {xml}"
        );
        let file = dir.join(name);
        std::fs::write(&file, &xml).expect("write");
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema", &xsd])
            .arg(&file)
            .output()
            .expect("xmllint (libxml2-utils)");
        assert!(
            out.status.success(),
            "{name} is not valid against junit-10.xsd: {}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
        // What CI tools show: a time on every test case, when and where the suite ran.
        assert!(
            xml.contains("timestamp=\"") && xml.contains("hostname=\"host\""),
            "{xml}"
        );
        let cases = xml.matches("<testcase ").count();
        let timed = xml
            .split("<testcase ")
            .skip(1)
            .filter(|c| {
                c.split('>')
                    .next()
                    .is_some_and(|tag| tag.contains("time=\""))
            })
            .count();
        assert!(cases > 0 && timed == cases, "{xml}");
        // Figures rounded for people, never float noise (`8096.1857580000005`).
        assert!(!has_float_noise(&xml), "{xml}");
    }
    // Lost writes: the first few listed, the rest counted (all of them are in the JSON).
    let xml = junit(&redis);
    let lost = redis
        .verdicts
        .iter()
        .map(|v| v.lost_writes.len())
        .max()
        .expect("verdicts");
    assert!(lost > murphy::junit::LOST_LISTED, "{lost}");
    assert!(xml.contains(&format!("lost writes ({lost})")), "{xml}");
    assert!(xml.contains(&format!("and {} more", lost - murphy::junit::LOST_LISTED)));
    assert!(xml.len() < 20_000, "capped: {} bytes", xml.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A number with more than four decimals.
fn has_float_noise(s: &str) -> bool {
    let b = s.as_bytes();
    (1..b.len()).any(|i| {
        b[i] == b'.'
            && b[i - 1].is_ascii_digit()
            && b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count() > 4
    })
}
