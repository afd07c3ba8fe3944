//! The conformance runner through the built `fleetwire` binary: the reference as a
//! spawned `fleetwire testee`, a crashing or hanging testee, and the CLI's exit codes
//! and reports. (Moved from the conformance crate's tests: they need the binary.)

use std::time::Duration;

use fleetwire_conformance::{cases, run_cases, Case, RunOptions, Verdict};

const SEED: u64 = 20261101;

fn quick() -> RunOptions {
    RunOptions {
        minimise: false,
        ..RunOptions::default()
    }
}

/// The spawned path: the runner talks to `fleetwire testee` over pipes.
mod spawned {
    use super::*;
    use fleetwire_conformance::{Spawned, Testee};

    fn exe() -> String {
        format!("'{}'", env!("CARGO_BIN_EXE_fleetwire"))
    }

    #[test]
    fn spawned_reference_passes_the_non_split_cases() {
        let subset: Vec<Case> = cases(SEED)
            .into_iter()
            .filter(|c| !c.id.ends_with(".every"))
            .collect();
        let mut t = Spawned::new(&format!("{} testee", exe()));
        assert_eq!(t.info().unwrap().name, "fleetwire-reference");
        let results = run_cases(&mut t, &subset, &quick()).unwrap();
        let bad: Vec<_> = results
            .iter()
            .filter(|r| r.verdict != Verdict::Ok)
            .collect();
        assert!(bad.is_empty(), "{:#?}", bad.first());
    }

    #[test]
    fn a_crashing_or_hanging_testee_fails_the_case_and_the_run_goes_on() {
        let subset: Vec<Case> = cases(SEED)
            .into_iter()
            .filter(|c| c.id.starts_with("codec.header.kind."))
            .collect();
        let cmd = format!("{} testee --crash-on codec.header.kind.unassigned-8 --hang-on codec.header.kind.unassigned-10", exe());
        let mut t = Spawned::new(&cmd);
        let opts = RunOptions {
            timeout: Duration::from_millis(300),
            minimise: false,
            progress: false,
        };
        let results = run_cases(&mut t, &subset, &opts).unwrap();
        let failed: Vec<&str> = results
            .iter()
            .filter(|r| r.verdict == Verdict::Failed)
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "codec.header.kind.unassigned-8",
                "codec.header.kind.unassigned-10"
            ]
        );
        assert_eq!(
            results.iter().filter(|r| r.verdict == Verdict::Ok).count(),
            subset.len() - 2
        );
        assert_eq!(t.restarts(), 2);
    }

    #[test]
    fn cli_exit_codes_and_reports() {
        let dir = std::env::temp_dir().join(format!("fw-conf-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_fleetwire"))
                .args(args)
                .output()
                .unwrap()
        };
        let json = dir.join("m.json");
        let testee = format!("{} testee --mutant pong-late", exe());
        let out = run(&[
            "conformance",
            "codec",
            "--testee",
            &testee,
            "--case",
            "codec.connection.ping.*",
            "--seed",
            "3",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("replay: fleetwire conformance codec --testee"),
            "{stdout}"
        );
        // the failure is expected: exit 0; plus a stale entry: exit 1
        let expected = dir.join("expected.txt");
        std::fs::write(&expected, "codec.connection.ping.order  PONG queued late\n").unwrap();
        let args = [
            "conformance",
            "codec",
            "--mutant",
            "pong-late",
            "--case",
            "codec.connection.ping.*",
            "--expected",
            expected.to_str().unwrap(),
        ];
        assert_eq!(run(&args).status.code(), Some(0));
        std::fs::write(
            &expected,
            "codec.connection.ping.order  late\ncodec.connection.ping.fifo  passes\n",
        )
        .unwrap();
        assert_eq!(run(&args).status.code(), Some(1));
        let mut update = args.to_vec();
        update.push("--update-expected");
        assert_eq!(run(&update).status.code(), Some(0));
        assert_eq!(
            run(&args).status.code(),
            Some(0),
            "{}",
            std::fs::read_to_string(&expected).unwrap()
        );
        // usage errors and a broken harness exit 2
        assert_eq!(
            run(&["conformance", "--no-such-flag"]).status.code(),
            Some(2)
        );
        assert_eq!(
            run(&["conformance", "codec", "--testee", "/nonexistent/testee"])
                .status
                .code(),
            Some(2)
        );
        // the HTML matrix of two reports
        let ref_json = dir.join("r.json");
        assert_eq!(
            run(&[
                "conformance",
                "--case",
                "codec.connection.ping.*",
                "--json",
                ref_json.to_str().unwrap()
            ])
            .status
            .code(),
            Some(0)
        );
        let html = dir.join("m.html");
        let out = run(&[
            "conformance",
            "report",
            "--html",
            html.to_str().unwrap(),
            ref_json.to_str().unwrap(),
            json.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0));
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(
            page.contains("fleetwire-reference")
                && page.contains("fleetwire-mutant-pong-late")
                && page.contains("class=\"FAILED")
        );
    }
}

// trace: limit.proxy-polices, route.egress-closed
/// The proxy role against a third party's proxy, here the reference CLI spawned per case
/// (`--testee CMD` with `{routes}`, the proxy printing `listening on HOST:PORT`).
#[test]
fn proxy_role_runs_a_spawned_proxy() {
    let testee = format!(
        "'{}' proxy --listen 127.0.0.1:0 --node-id 9 --plaintext {{routes}}",
        env!("CARGO_BIN_EXE_fleetwire")
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetwire"))
        .args([
            "conformance",
            "peer",
            "--role",
            "proxy",
            "--timeout",
            "3000",
        ])
        .args(["--testee", &testee])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 unexpected failures"), "{stdout}");
    // a mutant in-process fails (exit 1)
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetwire"))
        .args([
            "conformance",
            "peer",
            "--role",
            "proxy",
            "--mutant",
            "proxy-error-budget-unpoliced",
        ])
        .args(["--case", "*.error-budget"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `fleetwire conformance` with no target and globs that select only live cases runs
/// those (it stopped at "no case matches" from the codec cases), the proxy role included.
#[test]
fn no_target_with_live_only_globs_runs_the_live_cases() {
    for (glob, summary) in [
        (
            "peer.server.ping.*",
            "live peer, reference server/plaintext",
        ),
        (
            "peer.proxy.client-ids.*",
            "live peer, reference proxy/plaintext",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetwire"))
            .args(["conformance", "--case", glob])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{glob}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(summary), "{glob}: {stdout}");
        assert!(
            !stdout.contains("fleetwire-reference:"),
            "{glob}: the codec run ran: {stdout}"
        );
    }
}
