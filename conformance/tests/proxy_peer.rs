//! The proxy role of the live peer (`peer::run_proxy`): the unmutated reference proxy
//! passes every case, and every proxy mutant (`peer::ProxyMutant`) is killed by a case
//! the reference passes. In-process over loopback, short timers.

use fleetwire_conformance::peer::{proxy_kill_matrix, run_proxy_mutant, ProxyMutant};
use fleetwire_conformance::Verdict;

// trace: route.client-ids, route.egress-closed, route.fair-share, err.budget-gone-client,
// trace: limit.proxy-polices, limit.global-budget
#[test]
fn reference_proxy_passes_and_every_proxy_mutant_is_killed() {
    let t0 = std::time::Instant::now();
    let reference = run_proxy_mutant(None, &[]).unwrap();
    for r in &reference.results {
        println!(
            "reference {:<52} {:?} {:?}",
            r.id,
            r.verdict,
            r.failure.as_ref().map(|f| &f.message)
        );
    }
    assert!(
        reference.results.iter().all(|r| r.verdict == Verdict::Ok),
        "the reference proxy fails a proxy-role case"
    );
    let matrix = proxy_kill_matrix(2);
    assert_eq!(matrix.len(), ProxyMutant::ALL.len());
    let mut survivors = Vec::new();
    for (m, kills) in &matrix {
        match kills {
            Ok(k) if !k.is_empty() => println!("{:<40} {:<24} {}", m.name(), m.tag(), k.join(" ")),
            other => {
                println!("{:<40} {:<24} SURVIVED {other:?}", m.name(), m.tag());
                survivors.push(m.name());
            }
        }
    }
    println!("{:.1} s", t0.elapsed().as_secs_f64());
    assert!(
        survivors.is_empty(),
        "surviving proxy mutants: {survivors:?}"
    );
}

/// One mutant or the reference by hand: `PROXY_MUTANT=name cargo test ... one_by_hand -- --ignored --nocapture`.
#[test]
#[ignore]
fn one_by_hand() {
    let m = std::env::var("PROXY_MUTANT")
        .ok()
        .map(|n| n.parse::<ProxyMutant>().unwrap());
    let case: Vec<String> = std::env::var("PROXY_CASE").ok().into_iter().collect();
    let t0 = std::time::Instant::now();
    let r = run_proxy_mutant(m, &case).unwrap();
    for r in &r.results {
        println!(
            "{:<52} {:?} {:.2}s {:?}",
            r.id,
            r.verdict,
            r.duration.as_secs_f64(),
            r.failure.as_ref().map(|f| (&f.message, &f.actual))
        );
    }
    println!("{:.1} s", t0.elapsed().as_secs_f64());
}
