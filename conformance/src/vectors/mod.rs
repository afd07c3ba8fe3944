//! Golden test vectors: generation, verification and the traceability matrix.
//!
//! The vectors are language-neutral JSON files in `vectors/` (one per layer; the format
//! is documented in `vectors/README.md` and `vectors/schema.json`). They are built by
//! this module from the spec's byte layouts, with small builders of its own rather than
//! the crate's encoders, so that a vector never merely restates the crate's output.
//! [`verify`] then runs the crate's parsers, encoders, decompressor and connection state
//! machine against them; [`trace`] maps every normative sentence of the spec to the
//! vectors and tests that check it.
//!
//! ```no_run
//! use std::path::Path;
//!
//! let dir = Path::new("vectors");
//! let written = fleetwire_conformance::vectors::generate(dir)?;
//! let report = fleetwire_conformance::vectors::verify(dir);
//! assert_eq!(report.passed, written);
//! println!("{report}"); // "N passed, 0 failed"
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use serde_json::{json, Value};

mod build;
mod connection;
mod gen_compress;
mod gen_control;
mod gen_header;
mod gen_stream;
pub(crate) mod json;
mod trace;
pub(crate) mod verify;
pub(crate) mod verify_connection;
mod zlib_data;

pub use trace::{
    trace, trace_with_cases, trace_with_mutants, CaseCoverage, MutantCoverage, Requirement,
    TraceError, TraceReport,
};

/// Version of the vector file format; bumped on an incompatible change.
pub const SCHEMA_VERSION: u64 = 1;

/// The layers, in file order: each is written to `<layer>.json`.
pub const LAYERS: [&str; 6] = [
    "header",
    "packet",
    "control",
    "stream",
    "compression",
    "connection",
];

fn layer_vectors(layer: &str) -> Vec<build::Vector> {
    match layer {
        "header" => gen_header::header_vectors(),
        "packet" => gen_header::packet_vectors(),
        "control" => gen_control::control_vectors(),
        "stream" => gen_stream::stream_vectors(),
        "compression" => gen_compress::compression_vectors(),
        "connection" => connection::connection_vectors(),
        _ => Vec::new(),
    }
}

/// The exact text of `<layer>.json` as [`generate`] writes it, or `None` for an unknown
/// layer.
///
/// Deterministic: the same crate version always renders the same bytes (fixed key order,
/// two-space indentation, a trailing newline).
///
/// ```
/// let text = fleetwire_conformance::vectors::render("header").unwrap();
/// assert!(text.starts_with("{\n  \"schema_version\": 1,\n  \"layer\": \"header\""));
/// assert!(fleetwire_conformance::vectors::render("nope").is_none());
/// ```
pub fn render(layer: &str) -> Option<String> {
    if !LAYERS.contains(&layer) {
        return None;
    }
    let vectors: Vec<Value> = layer_vectors(layer)
        .iter()
        .map(build::Vector::to_json)
        .collect();
    let file = json!({ "schema_version": SCHEMA_VERSION, "layer": layer, "vectors": vectors });
    Some(json::to_pretty(&file))
}

/// Writes every layer's vector file into `dir` (created if missing) and returns the
/// number of vectors written.
///
/// `vectors/README.md` and `vectors/schema.json` are maintained by hand and not touched.
///
/// ```no_run
/// let n = fleetwire_conformance::vectors::generate(std::path::Path::new("vectors"))?;
/// assert!(n >= 200);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn generate(dir: &Path) -> io::Result<usize> {
    fs::create_dir_all(dir)?;
    let mut total = 0;
    for layer in LAYERS {
        total += layer_vectors(layer).len();
        let text = render(layer).unwrap_or_default();
        fs::write(dir.join(format!("{layer}.json")), text)?;
    }
    Ok(total)
}

/// The outcome of [`verify`].
///
/// ```
/// use fleetwire_conformance::vectors::VerifyReport;
/// let report = VerifyReport { passed: 3, failed: 0, failures: Vec::new() };
/// assert!(report.is_ok());
/// assert_eq!(report.to_string(), "3 passed, 0 failed");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Vectors whose checks all passed.
    pub passed: usize,
    /// Vectors (or files) with a failed check.
    pub failed: usize,
    /// `(vector id or file name, what went wrong)`, in file order.
    pub failures: Vec<(String, String)>,
}

impl VerifyReport {
    /// Whether nothing failed.
    ///
    /// ```
    /// let r = fleetwire_conformance::vectors::VerifyReport { passed: 0, failed: 1, failures: vec![("x".into(), "y".into())] };
    /// assert!(!r.is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        self.failed == 0
    }

    fn fail(&mut self, id: impl Into<String>, message: impl Into<String>) {
        self.failed += 1;
        self.failures.push((id.into(), message.into()));
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Checks every vector file in `dir` against this crate: decoding, encoding where a
/// vector says `"encode": true`, and for stream vectors every split of the input.
///
/// Also checks the files' structure (schema version, layer, unique ids, result and
/// expected form, error codes against the registry of spec §12.4). A missing or
/// unreadable file counts as one failure.
///
/// ```no_run
/// let report = fleetwire_conformance::vectors::verify(std::path::Path::new("vectors"));
/// for (id, message) in &report.failures {
///     eprintln!("{id}: {message}");
/// }
/// println!("{report}");
/// ```
pub fn verify(dir: &Path) -> VerifyReport {
    let mut report = VerifyReport::default();
    if let Err(e) = check_registry() {
        report.fail("registry", e);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut decompressor = fleetwire::compress::Decompressor::new();
    for layer in LAYERS {
        let name = format!("{layer}.json");
        let file = match read_layer(dir, layer) {
            Ok(f) => f,
            Err(e) => {
                report.fail(name, e);
                continue;
            }
        };
        for v in file {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("<no id>")
                .to_owned();
            let result = if seen.insert(id.clone()) {
                check_common(&v).and_then(|()| match layer {
                    "header" => verify::header(&v),
                    "packet" => verify::packet(&v),
                    "control" => verify::control(&v),
                    "stream" => verify::stream(&v),
                    "compression" => verify::compression(&v, &mut decompressor),
                    _ => verify_connection::transcript(&v),
                })
            } else {
                Err("duplicate id".to_owned())
            };
            match result {
                Ok(()) => report.passed += 1,
                Err(e) => report.fail(id, e),
            }
        }
    }
    report
}

fn read_layer(dir: &Path, layer: &str) -> Result<Vec<Value>, String> {
    let path = dir.join(format!("{layer}.json"));
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    if file.get("schema_version").and_then(Value::as_u64) != Some(SCHEMA_VERSION) {
        return Err(format!("schema_version is not {SCHEMA_VERSION}"));
    }
    if file.get("layer").and_then(Value::as_str) != Some(layer) {
        return Err(format!("layer is not {layer}"));
    }
    match file.get("vectors") {
        Some(Value::Array(v)) => Ok(v.clone()),
        _ => Err("no vectors array".into()),
    }
}

/// Reads the requirement tags of every vector in `dir`: `(vector id, tags)`.
pub(crate) fn vector_requirements(dir: &Path) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out = Vec::new();
    for layer in LAYERS {
        for v in read_layer(dir, layer)? {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let tags = v
                .get("requirements")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            out.push((id, tags));
        }
    }
    Ok(out)
}

/// The generator's copy of the registry must match the crate's.
fn check_registry() -> Result<(), String> {
    use fleetwire::ErrorCode;
    if build::REGISTRY.len() != ErrorCode::ALL.len() {
        return Err("registry sizes differ".into());
    }
    for (name, code) in build::REGISTRY {
        if ErrorCode::from_name(name) != Some(ErrorCode(*code)) {
            return Err(format!("{name} is not 0x{code:04X} in ErrorCode"));
        }
    }
    Ok(())
}

/// Structure every vector shares (README: "Common fields").
fn check_common(v: &Value) -> Result<(), String> {
    use json::Fields;
    let id = v.str_field("id")?;
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    {
        return Err("id must be lower-case a-z, 0-9, '.', '_' or '-'".into());
    }
    v.str_field("section")?;
    v.str_field("description")?;
    let reqs = v
        .field("requirements")?
        .as_array()
        .ok_or("requirements is not an array")?;
    if reqs.iter().any(|r| !r.is_string()) {
        return Err("a requirement is not a string".into());
    }
    v.field("encode")?
        .as_bool()
        .ok_or("encode is not a boolean")?;
    let expected = v.field("expected")?;
    let result = v.str_field("result")?;
    let has_error = expected.get("error").is_some();
    match result {
        "valid" if has_error => Err("a valid vector expects an error".into()),
        "invalid" if !has_error => Err("an invalid vector expects no error".into()),
        "acceptable" if v.get("alternative").is_none() => {
            Err("an acceptable vector needs an alternative".into())
        }
        "valid" | "invalid" | "acceptable" => check_error_code(expected),
        other => Err(format!("unknown result {other}")),
    }
}

fn check_error_code(expected: &Value) -> Result<(), String> {
    let Some(name) = expected.get("error").and_then(Value::as_str) else {
        return Ok(());
    };
    let code = expected.get("code").and_then(Value::as_u64);
    match build::REGISTRY.iter().find(|(n, _)| *n == name) {
        Some((_, c)) if Some(u64::from(*c)) == code => Ok(()),
        _ => Err(format!(
            "error {name} does not match code {code:?} in the registry"
        )),
    }
}
