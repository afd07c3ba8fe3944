//! The conformance runner checked against the reference (which must pass every case)
//! and against its mutants (each of which some case must kill).

use std::time::{Duration, Instant};

use fleetwire_conformance::{
    cases, fuzz, run_cases, Call, Case, ExpectedFile, FuzzOptions, InProcess, Level, Mutant,
    Report, RunOptions, Testee, TesteeInfo, Verdict,
};

const SEED: u64 = 20261101;

fn quick() -> RunOptions {
    RunOptions {
        minimise: false,
        ..RunOptions::default()
    }
}

// trace: layer.split, err.split-invariant
#[test]
fn reference_passes_every_case() {
    let all = cases(SEED);
    assert!(all.len() >= 250, "only {} cases", all.len());
    let results = run_cases(&mut InProcess::reference(), &all, &quick()).unwrap();
    let bad: Vec<_> = results
        .iter()
        .filter(|r| r.verdict != Verdict::Ok)
        .collect();
    assert!(
        bad.is_empty(),
        "{} cases not OK: {:#?}",
        bad.len(),
        bad.first()
    );
}

#[test]
fn case_ids_are_unique_and_stable_across_seeds() {
    let a: Vec<String> = cases(1).into_iter().map(|c| c.id).collect();
    let b: Vec<String> = cases(2).into_iter().map(|c| c.id).collect();
    assert_eq!(a, b);
    let mut sorted = a.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), a.len(), "duplicate case ids");
    assert!(a.iter().all(|id| id.starts_with("codec.")));
}

/// Every mutant against every case except the `codec.split.*.every` families, which
/// repeat the checks of `codec.stream.*` at each split point (the `bytewise` variants and
/// the `stream.split.*` vectors stay in); that keeps this test a few seconds long.
#[test]
fn every_mutant_is_killed() {
    let subset: Vec<Case> = cases(SEED)
        .into_iter()
        .filter(|c| !c.id.ends_with(".every"))
        .collect();
    let start = Instant::now();
    let kills = fleetwire_conformance::kill_matrix(&subset, 2);
    println!(
        "kill matrix ({} cases, {:.1} s):",
        subset.len(),
        start.elapsed().as_secs_f64()
    );
    for (m, ids) in &kills {
        let shown: Vec<&str> = ids.iter().take(4).map(String::as_str).collect();
        println!(
            "  {:<34} {:>3} cases: {}{}",
            m.name(),
            ids.len(),
            shown.join(" "),
            if ids.len() > 4 { " ..." } else { "" }
        );
    }
    let killed = kills.values().filter(|ids| !ids.is_empty()).count();
    println!("kill rate: {killed}/{} mutants", Mutant::ALL.len());
    assert!(Mutant::ALL.len() >= 20);
    let survivors: Vec<&str> = kills
        .iter()
        .filter(|(_, ids)| ids.is_empty())
        .map(|(m, _)| m.name())
        .collect();
    assert!(survivors.is_empty(), "mutants no case kills: {survivors:?}");
}

/// The sender monitor names the requirement a sender-side mutant breaks, and finds
/// nothing in what the reference sends.
// trace: hdr.ext-send, hello.versions, comp.send-format
#[test]
fn sender_monitor_names_the_broken_requirement() {
    let selected: Vec<Case> = cases(SEED)
        .into_iter()
        .filter(|c| c.id.starts_with("codec.connection."))
        .collect();
    let ok = run_cases(&mut InProcess::reference(), &selected, &quick()).unwrap();
    assert!(ok.iter().all(|r| r.verdict == Verdict::Ok));
    for (m, tag) in [
        (Mutant::NodeStampsSource, "[[hdr.ext-send]]"),
        (Mutant::HelloMaxVersion2, "[[hello.versions]]"),
        (Mutant::CorruptCompressor, "[[comp.send-format]]"),
        (Mutant::SendsReservedBits, "[[hdr.reserved-send]]"),
        (Mutant::NeverGrantsCredit, "[[flow.no-deadlock]]"),
    ] {
        let results = run_cases(&mut InProcess::new(Some(m)), &selected, &quick()).unwrap();
        let named = results.iter().any(|r| {
            r.verdict == Verdict::Failed
                && r.failure.as_ref().is_some_and(|f| f.message.contains(tag))
        });
        assert!(named, "{m}: no case failed naming {tag}");
    }
}

fn mutant_report(m: Mutant, glob: &str) -> Report {
    let selected: Vec<Case> = cases(SEED)
        .into_iter()
        .filter(|c| fleetwire_conformance::Glob::new(glob).matches(&c.id))
        .collect();
    let results = run_cases(
        &mut InProcess::new(Some(m)),
        &selected,
        &RunOptions::default(),
    )
    .unwrap();
    Report {
        implementation: format!("mutant-{m}"),
        version: "0".into(),
        seed: SEED,
        replay: format!("fleetwire conformance codec --mutant {m}"),
        results,
        ..Report::default()
    }
}

#[test]
fn deviations_are_graded_by_requirement_level() {
    let base = cases(SEED)
        .into_iter()
        .find(|c| c.id == "codec.header.reserved.both")
        .unwrap();
    for (level, verdict) in [
        (Level::Must, Verdict::Failed),
        (Level::Should, Verdict::NonStrict),
        (Level::May, Verdict::Informational),
    ] {
        let case = Case {
            level,
            ..base.clone()
        };
        let mut t = InProcess::new(Some(Mutant::AcceptsReservedBits));
        let r = run_cases(&mut t, &[case], &quick()).unwrap();
        assert_eq!(r[0].verdict, verdict);
    }
}

#[test]
fn expected_failures_are_kept_apart_and_stale_entries_fail_the_run() {
    let all: Vec<String> = cases(SEED).into_iter().map(|c| c.id).collect();
    let mut report = mutant_report(Mutant::AcceptsReservedBits, "codec.header.*");
    assert_eq!(report.exit_code(), 1, "unexpected failures fail the run");
    // every failure expected: the run passes, failures counted apart
    let file = ExpectedFile::parse(
        "codec.header.reserved.*  R bits ignored\ncodec.header.order.*  same bug\n",
    );
    report.stale = file.apply(&mut report.results, &all);
    let s = report.summary();
    assert!(
        s.expected_failures >= 5 && s.unexpected_failures == 0,
        "{s:?}"
    );
    assert!(report.stale.is_empty());
    assert_eq!(report.exit_code(), 0);
    // an entry for a case that passes now, and one that matches no case: both stale
    let file = ExpectedFile::parse(
        "codec.header.reserved.*  R bits\ncodec.header.order.*  same bug\ncodec.header.kind.unassigned-7  fixed\ncodec.nothing.here  gone\n",
    );
    report.stale = file.apply(&mut report.results, &all);
    assert_eq!(report.stale.len(), 2, "{:?}", report.stale);
    assert_eq!(report.exit_code(), 1);
    // --update-expected keeps the useful entries and drops the stale ones
    let updated = file.updated(&report.results);
    assert!(updated.contains("codec.header.reserved.*") && !updated.contains("codec.nothing.here"));
}

#[test]
fn json_report_has_summary_and_cases() {
    let report = mutant_report(Mutant::AcceptsReservedBits, "codec.header.reserved.*");
    let v = report.to_json();
    for key in [
        "ok",
        "failed",
        "non_strict",
        "informational",
        "unsupported",
        "expected_failures",
        "unexpected_failures",
        "total",
    ] {
        assert!(v["summary"][key].is_u64(), "summary.{key}");
    }
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(
        cases.len(),
        v["summary"]["total"].as_u64().unwrap() as usize
    );
    let failed = cases.iter().find(|c| c["verdict"] == "FAILED").unwrap();
    for key in [
        "id",
        "section",
        "tags",
        "level",
        "verdict",
        "duration_ms",
        "expected",
        "actual",
        "input_hex",
        "replay",
    ] {
        assert!(failed.get(key).is_some(), "case.{key}");
    }
    assert!(failed["replay"]
        .as_str()
        .unwrap()
        .contains("--case codec.header.reserved."));
}

#[test]
fn junit_report_validates_against_the_schema() {
    let mut report = mutant_report(Mutant::GoawayNotAnswered, "codec.connection.close.*");
    report
        .results
        .extend(mutant_report(Mutant::AcceptsReservedBits, "codec.header.reserved.*").results);
    // one SHOULD-graded deviation, reported as a passing case with a note
    let mut soft = report.results[report.results.len() - 1].clone();
    soft.id = "codec.synthetic.should".into();
    soft.verdict = Verdict::NonStrict;
    report.results.push(soft);
    let xml = report.to_junit();
    assert!(
        xml.contains("<failure")
            && xml.contains("<testsuite ")
            && xml.contains("<system-out>NON-STRICT")
    );
    // structure: every testcase has a name and sits in a testsuite with tests=
    assert_eq!(xml.matches("<testsuites").count(), 1);
    assert!(xml.matches("<testcase name=\"").count() == report.results.len());
    let dir = std::env::temp_dir().join(format!("fw-junit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("junit.xml");
    std::fs::write(&file, &xml).unwrap();
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/junit-10.xsd");
    match std::process::Command::new("xmllint")
        .args(["--noout", "--schema", schema])
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "xmllint: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!(
            "xmllint not installed: schema validation skipped (apt-get install libxml2-utils)"
        ),
    }
}

#[test]
fn minimiser_shrinks_a_planted_failure() {
    let report = mutant_report(
        Mutant::AcceptsReservedBits,
        "codec.coalesce.stream.errors.reserved-bit",
    );
    let f = report.results[0]
        .failure
        .as_ref()
        .expect("the mutant fails the case");
    let original = f.input_hex.as_ref().unwrap().len() / 2;
    let m = f.minimised.as_ref().expect("minimised");
    let small = m["input_hex"].as_str().unwrap().len() / 2;
    assert!(
        original > 100 && small <= 10,
        "{original} bytes -> {small}: {m}"
    );
}

#[test]
fn fuzz_finds_a_planted_mutant_quickly() {
    let opts = FuzzOptions {
        seconds: 10.0,
        seed: 7,
        max_iterations: Some(5000),
        max_disagreements: 1,
        ..FuzzOptions::default()
    };
    let start = Instant::now();
    let r = fuzz(
        &mut InProcess::new(Some(Mutant::ControlRouteIgnored)),
        &opts,
    )
    .unwrap();
    assert_eq!(r.disagreements.len(), 1, "after {} inputs", r.iterations);
    assert!(start.elapsed() < Duration::from_secs(10));
    let clean = fuzz(
        &mut InProcess::reference(),
        &FuzzOptions {
            max_iterations: Some(1000),
            ..opts
        },
    )
    .unwrap();
    assert!(
        clean.disagreements.is_empty(),
        "{:?}",
        clean.disagreements.first()
    );
}

/// The reference (or a mutant) as a protocol version 1 testee: no `wire`.
struct V1(InProcess);

impl Testee for V1 {
    fn info(&mut self) -> Result<TesteeInfo, String> {
        let mut i = self.0.info()?;
        i.protocol = 1;
        Ok(i)
    }

    fn call(&mut self, case: &str, op: &str, fields: &serde_json::Value, t: Duration) -> Call {
        let mut f = fields.clone();
        if let Some(m) = f.as_object_mut() {
            m.remove("wire");
        }
        self.0.call(case, op, &f, t)
    }
}

#[test]
fn fuzz_transcripts_find_stateful_mutants() {
    let opts = FuzzOptions {
        seconds: 10.0,
        seed: 7,
        max_iterations: Some(3000),
        max_disagreements: 1,
        ..FuzzOptions::default()
    };
    let start = Instant::now();
    // only a transcript shows these: a handshake, then the application's actions
    for m in [Mutant::DataAfterOwnGoaway, Mutant::PongLate] {
        let r = fuzz(&mut InProcess::new(Some(m)), &opts).unwrap();
        assert_eq!(
            r.disagreements.len(),
            1,
            "{m}: after {} inputs",
            r.iterations
        );
        let d = &r.disagreements[0];
        assert_eq!(d.op, "connection", "{m}: {d:?}");
        assert!(r.per_op["connection"].count > 0);
        let v1 = fuzz(&mut V1(InProcess::new(Some(m))), &opts).unwrap();
        assert_eq!(
            v1.disagreements.len(),
            1,
            "{m} (v1): after {} inputs",
            v1.iterations
        );
        assert_eq!(v1.disagreements[0].op, "connection");
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn fuzz_transcripts_reference_agrees_with_itself() {
    let opts = FuzzOptions {
        seconds: 20.0,
        seed: 20261204,
        max_iterations: Some(4000),
        ..FuzzOptions::default()
    };
    let r = fuzz(&mut InProcess::reference(), &opts).unwrap();
    assert!(r.per_op["connection"].count >= 800, "{:?}", r.per_op);
    assert!(r.per_op["encode_packet"].count > 0, "{:?}", r.per_op);
    assert!(r.disagreements.is_empty(), "{:#?}", r.disagreements.first());
    let v1 = fuzz(&mut V1(InProcess::reference()), &opts).unwrap();
    assert!(
        v1.disagreements.is_empty(),
        "{:#?}",
        v1.disagreements.first()
    );
}
