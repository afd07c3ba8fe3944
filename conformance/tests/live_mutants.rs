//! Every live mutant (the reference node with one deliberate bug, `peer::LiveMutant`) is
//! killed by the live cases: at least one case FAILED or NON-STRICT. Prints the kill
//! list per mutant. The mutants run in parallel; each runs every server-role case.

use std::sync::{Arc, Mutex};
use std::thread;

use fleetwire_conformance::peer::{live_kills, LiveMutant, PeerRole};

#[test]
fn every_live_mutant_is_killed() {
    let queue = Arc::new(Mutex::new(LiveMutant::ALL.to_vec()));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let queue = queue.clone();
            let results = results.clone();
            thread::spawn(move || loop {
                let Some(m) = queue.lock().unwrap().pop() else {
                    return;
                };
                let kills = live_kills(m, PeerRole::Server, &[]);
                results.lock().unwrap().push((m, kills));
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut results = results.lock().unwrap().clone();
    results.sort_by_key(|r| r.0);
    let mut survivors = Vec::new();
    for (m, kills) in &results {
        match kills {
            Ok(k) if !k.is_empty() => {
                let shown: Vec<&str> = k.iter().take(4).map(String::as_str).collect();
                println!(
                    "{:<40} {:<26} {:>3} cases: {}",
                    m.name(),
                    m.tag(),
                    k.len(),
                    shown.join(" ")
                );
            }
            other => {
                println!("{:<40} {:<26} SURVIVED {other:?}", m.name(), m.tag());
                survivors.push(m.name());
            }
        }
    }
    assert!(
        survivors.is_empty(),
        "surviving live mutants: {survivors:?}"
    );
}

// the client role runs the same filters in front of the reference client
#[test]
fn client_role_kills_sender_mutants() {
    for m in [
        LiveMutant::PongDropped,
        LiveMutant::SendsHintBits,
        LiveMutant::GoawayNotAnswered,
    ] {
        let kills = live_kills(m, PeerRole::Client, &[]).unwrap();
        assert!(
            !kills.is_empty(),
            "{} survived in the client role",
            m.name()
        );
    }
}
