//! Mutants of the independent Python implementation, as source patches.
//!
//! `conformance/mutants/python.txt` lists each mutant as search/replace pairs on the files
//! of `conformance/impls/python/fleetwire_py`. A mutant is applied to a temporary copy of
//! the package and run as a spawned testee (`python -m fleetwire_py.testee` with the copy
//! first on `PYTHONPATH`) through every codec case; the implementation itself carries no
//! switch for any of its bugs. A case kills a mutant when it fails (FAILED or NON-STRICT)
//! against the mutant but not against the unpatched copy, so a failure the implementation
//! already has never counts as a kill.
//!
//! The data file, one block per mutant:
//!
//! ```text
//! mutant py-accepts-reserved-bits
//! tags hdr.reserved
//! what Skips the R-bit check of §4.9 step 3.
//! file fleetwire_py/codec.py
//! @@ search
//!     if h.reserved:
//! @@ replace
//!     if False:
//! @@ end
//! ```
//!
//! Lines starting with `#` outside a search or replace body are comments. A search text
//! must occur exactly once in its file, so a patch that no longer applies is an error,
//! never a silently unchanged copy.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{run_cases, Case, RunOptions, Spawned, Verdict};

/// One search/replace pair of a [`PyMutant`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hunk {
    /// The file, relative to the implementation's directory.
    pub file: String,
    /// Text that occurs exactly once in the file.
    pub search: String,
    /// What replaces it.
    pub replace: String,
}

/// A deliberate bug of the Python implementation, as a source patch.
///
/// ```
/// let text = "mutant py-x\ntags hdr.kind\nwhat W.\nfile a.py\n@@ search\nx = 1\n@@ replace\nx = 2\n@@ end\n";
/// let m = &fleetwire_conformance::PyMutant::parse_all(text).unwrap()[0];
/// assert_eq!((m.name.as_str(), m.tags.len(), m.hunks.len()), ("py-x", 1, 1));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PyMutant {
    /// Its name (`py-...`).
    pub name: String,
    /// The requirement tags the bug violates.
    pub tags: Vec<String>,
    /// What the bug does, one sentence.
    pub what: String,
    /// The patch.
    pub hunks: Vec<Hunk>,
}

/// Where the data file lives, relative to the repository root.
pub const PY_MUTANTS_FILE: &str = "conformance/mutants/python.txt";
/// The Python implementation's directory, relative to the repository root.
pub const PY_IMPL_DIR: &str = "conformance/impls/python";

enum Body {
    None,
    Search,
    Replace,
}

impl PyMutant {
    /// Parses the data file.
    ///
    /// # Errors
    ///
    /// A malformed block, named by its line.
    pub fn parse_all(text: &str) -> Result<Vec<PyMutant>, String> {
        let mut out: Vec<PyMutant> = Vec::new();
        let mut file = String::new();
        let mut body = Body::None;
        let mut hunk = Hunk::default();
        for (n, line) in text.lines().enumerate() {
            let at = |e: &str| format!("{PY_MUTANTS_FILE}:{}: {e}", n + 1);
            match (&body, line) {
                (_, "@@ search") => {
                    hunk = Hunk {
                        file: file.clone(),
                        ..Hunk::default()
                    };
                    body = Body::Search;
                }
                (Body::Search, "@@ replace") => body = Body::Replace,
                (Body::Replace, "@@ end") => {
                    let m = out
                        .last_mut()
                        .ok_or_else(|| at("a patch before `mutant`"))?;
                    if hunk.file.is_empty() || hunk.search.is_empty() {
                        return Err(at("a patch needs `file` and a search text"));
                    }
                    m.hunks.push(std::mem::take(&mut hunk));
                    body = Body::None;
                }
                (Body::Search, l) => push_line(&mut hunk.search, l),
                (Body::Replace, l) => push_line(&mut hunk.replace, l),
                (Body::None, l) if l.trim().is_empty() || l.starts_with('#') => {}
                (Body::None, l) => {
                    let (key, value) = l.split_once(' ').unwrap_or((l, ""));
                    match key {
                        "mutant" => {
                            file.clear();
                            out.push(PyMutant {
                                name: value.trim().to_owned(),
                                ..PyMutant::default()
                            });
                        }
                        "tags" | "what" | "file" => {
                            let value = value.trim().to_owned();
                            if key == "file" {
                                file = value;
                                continue;
                            }
                            let m = out.last_mut().ok_or_else(|| at("no `mutant` line"))?;
                            if key == "tags" {
                                m.tags = value.split_whitespace().map(str::to_owned).collect();
                            } else {
                                m.what = value;
                            }
                        }
                        _ => return Err(at(&format!("unknown key {key:?}"))),
                    }
                }
            }
        }
        if !matches!(body, Body::None) {
            return Err(format!(
                "{PY_MUTANTS_FILE}: a patch is not closed by `@@ end`"
            ));
        }
        for m in &out {
            if m.tags.is_empty() || m.hunks.is_empty() || m.what.is_empty() {
                return Err(format!(
                    "{PY_MUTANTS_FILE}: {} needs tags, what and a patch",
                    m.name
                ));
            }
        }
        Ok(out)
    }

    /// Reads and parses the data file under the repository `root`.
    ///
    /// # Errors
    ///
    /// The file cannot be read or parsed.
    pub fn load(root: &Path) -> Result<Vec<PyMutant>, String> {
        let path = root.join(PY_MUTANTS_FILE);
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        PyMutant::parse_all(&text)
    }

    /// Copies the implementation's package from `impl_dir` into `dest` and applies the
    /// patch there.
    ///
    /// # Errors
    ///
    /// A file cannot be copied, or a search text does not occur exactly once.
    pub fn apply(&self, impl_dir: &Path, dest: &Path) -> Result<(), String> {
        copy_package(impl_dir, dest)?;
        for h in &self.hunks {
            let path = dest.join(&h.file);
            let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", h.file))?;
            let found = text.matches(h.search.as_str()).count();
            if found != 1 {
                return Err(format!(
                    "{}: the search text of {} occurs {found} times in {} (must be once)",
                    PY_MUTANTS_FILE, self.name, h.file
                ));
            }
            let patched = text.replacen(h.search.as_str(), &h.replace, 1);
            fs::write(&path, patched).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}

fn push_line(s: &mut String, line: &str) {
    s.push_str(line);
    s.push('\n');
}

/// Copies `impl_dir/fleetwire_py/*.py` into `dest/fleetwire_py/`.
fn copy_package(impl_dir: &Path, dest: &Path) -> Result<(), String> {
    let from = impl_dir.join("fleetwire_py");
    let to = dest.join("fleetwire_py");
    fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = fs::read_dir(&from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "py") {
            let name = path.file_name().unwrap_or_default();
            fs::copy(&path, to.join(name)).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Scratch, String> {
        let dir =
            std::env::temp_dir().join(format!("fleetwire-pymutant-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The failing cases (FAILED or NON-STRICT) of the package in `dir` run by `python`.
fn failing_cases(python: &str, dir: &Path, cases: &[Case]) -> Result<Vec<String>, String> {
    let cmd = format!(
        "env 'PYTHONPATH={}' '{python}' -m fleetwire_py.testee",
        dir.display()
    );
    let opts = RunOptions {
        minimise: false,
        ..RunOptions::default()
    };
    let results = run_cases(&mut Spawned::new(&cmd), cases, &opts)?;
    Ok(results
        .into_iter()
        .filter(|r| matches!(r.verdict, Verdict::Failed | Verdict::NonStrict))
        .map(|r| r.id)
        .collect())
}

/// The Python kill matrix: for every mutant, the cases that fail against it and pass
/// against the unpatched implementation (`impl_dir`, run by the interpreter `python`),
/// `threads` mutants at a time. Also returns the unpatched implementation's own failures.
///
/// # Errors
///
/// The unpatched implementation cannot be run. A mutant that cannot be applied or run is
/// reported as its own `Err`.
pub fn python_kill_matrix(
    mutants: &[PyMutant],
    impl_dir: &Path,
    python: &str,
    cases: &[Case],
    threads: usize,
) -> Result<(Vec<String>, PyKills), String> {
    let base_dir = Scratch::new("baseline")?;
    PyMutant::default().apply(impl_dir, &base_dir.0)?;
    let baseline = failing_cases(python, &base_dir.0, cases)?;
    let kills = Mutex::new(BTreeMap::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    *n += 1;
                    *n - 1
                };
                let Some(m) = mutants.get(i) else { return };
                let result = Scratch::new(&m.name).and_then(|dir| {
                    m.apply(impl_dir, &dir.0)?;
                    let failed = failing_cases(python, &dir.0, cases)?;
                    Ok(failed
                        .into_iter()
                        .filter(|id| !baseline.contains(id))
                        .collect())
                });
                kills
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(m.name.clone(), result);
            });
        }
    });
    Ok((
        baseline,
        kills.into_inner().unwrap_or_else(|e| e.into_inner()),
    ))
}

/// Per Python mutant name: its killing cases, or why it could not run.
pub type PyKills = BTreeMap<String, Result<Vec<String>, String>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_with_several_hunks_and_comments() {
        let text = "# c\nmutant py-a\ntags a.x b.y\nwhat W.\nfile f.py\n@@ search\n# not a comment\n  x\n@@ replace\n  y\n@@ end\n@@ search\nz\n@@ replace\n@@ end\n";
        let m = PyMutant::parse_all(text).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].tags, ["a.x", "b.y"]);
        assert_eq!(m[0].hunks[0].search, "# not a comment\n  x\n");
        assert_eq!(m[0].hunks[1].replace, "");
    }

    #[test]
    fn rejects_unclosed_and_incomplete_blocks() {
        assert!(PyMutant::parse_all("mutant a\ntags t\nwhat w\nfile f\n@@ search\nx\n").is_err());
        assert!(PyMutant::parse_all("mutant a\ntags t\n").is_err());
    }

    #[test]
    fn the_data_file_applies_to_the_implementation() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        if !root.join(PY_MUTANTS_FILE).is_file() {
            return; // a packaged crate: the data file lives in the repository
        }
        let mutants = PyMutant::load(&root).unwrap();
        assert!(!mutants.is_empty());
        for m in &mutants {
            let dir = Scratch::new(&format!("apply-{}", m.name)).unwrap();
            m.apply(&root.join(PY_IMPL_DIR), &dir.0).unwrap();
        }
    }
}
