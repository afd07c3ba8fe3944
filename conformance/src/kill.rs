//! The kill matrix: which cases catch which deliberately faulty implementation.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{run_cases, Case, InProcess, Mutant, RunOptions, Verdict};

/// For every mutant, the ids of the cases it fails (FAILED or NON-STRICT) and the
/// unmutated reference passes, running `cases` on `threads` threads. A mutant with an
/// empty list survived. (A case the reference itself fails kills nothing: it would
/// otherwise count as a kill of every mutant.)
///
/// ```
/// use fleetwire_conformance::{cases, kill_matrix, Mutant};
/// let some: Vec<_> = cases(1).into_iter().filter(|c| c.id.starts_with("codec.header.")).collect();
/// let kills = kill_matrix(&some, 1);
/// assert_eq!(kills.len(), Mutant::ALL.len());
/// assert!(!kills[&Mutant::ALL[0]].is_empty() || some.is_empty());
/// ```
pub fn kill_matrix(cases: &[Case], threads: usize) -> BTreeMap<Mutant, Vec<String>> {
    let kills = Mutex::new(BTreeMap::new());
    let next = Mutex::new(0usize);
    let opts = RunOptions {
        minimise: false,
        ..RunOptions::default()
    };
    let failing = |testee: &mut InProcess| -> Result<Vec<String>, String> {
        Ok(run_cases(testee, cases, &opts)?
            .into_iter()
            .filter(|r| matches!(r.verdict, Verdict::Failed | Verdict::NonStrict))
            .map(|r| r.id)
            .collect())
    };
    let baseline = failing(&mut InProcess::new(None)).unwrap_or_default();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    *n += 1;
                    *n - 1
                };
                let Some(&m) = Mutant::ALL.get(i) else { return };
                let killed: Vec<String> = failing(&mut InProcess::new(Some(m)))
                    .map(|ids| {
                        ids.into_iter()
                            .filter(|id| !baseline.contains(id))
                            .collect()
                    })
                    .unwrap_or_else(|e| vec![format!("harness error: {e}")]);
                kills
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(m, killed);
            });
        }
    });
    kills.into_inner().unwrap_or_else(|e| e.into_inner())
}
