//! The testee protocol (`conformance/PROTOCOL.md`): framing, the testee side
//! ([`serve`]) and the runner side ([`Testee`], [`InProcess`], [`Spawned`]).

use std::io::{self, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::reference::Reference;
use super::Glob;

/// The protocol version this runner and the reference testee speak.
pub const PROTOCOL_VERSION: u64 = 1;

/// The largest message accepted, in bytes (a longer length prefix is a protocol error).
pub const MAX_MESSAGE: usize = 64 << 20;

/// A testee's answer to one request.
///
/// ```
/// use fleetwire_conformance::Reply;
/// let r = Reply::from_message(&serde_json::json!({"type": "unsupported", "id": 3}));
/// assert_eq!(r, Reply::Unsupported);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `{"type": "result", "result": {...}}`.
    Result(Value),
    /// `{"type": "unsupported"}`: the testee does not implement this operation or input.
    Unsupported,
    /// `{"type": "error", "message": ...}`: the testee could not run the request.
    Error(String),
}

impl Reply {
    /// Reads a reply from a response message.
    ///
    /// ```
    /// use fleetwire_conformance::Reply;
    /// let m = serde_json::json!({"type": "result", "id": 1, "result": {"incomplete": 2}});
    /// assert_eq!(Reply::from_message(&m), Reply::Result(serde_json::json!({"incomplete": 2})));
    /// ```
    pub fn from_message(m: &Value) -> Reply {
        match m.get("type").and_then(Value::as_str) {
            Some("result") => match m.get("result") {
                Some(r) => Reply::Result(r.clone()),
                None => Reply::Error("result message without `result`".into()),
            },
            Some("unsupported") => Reply::Unsupported,
            Some("error") => Reply::Error(
                m.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
                    .to_owned(),
            ),
            _ => Reply::Error(format!("not a response: {m}")),
        }
    }

    /// The response message for request `id`.
    ///
    /// ```
    /// use fleetwire_conformance::Reply;
    /// assert_eq!(Reply::Unsupported.to_message(4), serde_json::json!({"type": "unsupported", "id": 4}));
    /// ```
    pub fn to_message(&self, id: u64) -> Value {
        match self {
            Reply::Result(r) => json!({ "type": "result", "id": id, "result": r }),
            Reply::Unsupported => json!({ "type": "unsupported", "id": id }),
            Reply::Error(m) => json!({ "type": "error", "id": id, "message": m }),
        }
    }
}

/// Writes one message: a 4-byte big-endian length, then the JSON text (UTF-8).
///
/// ```
/// let mut buf = Vec::new();
/// fleetwire_conformance::write_message(&mut buf, &serde_json::json!({"type": "bye"})).unwrap();
/// assert_eq!(&buf[..4], &[0, 0, 0, 14]);
/// assert_eq!(&buf[4..], br#"{"type":"bye"}"#);
/// ```
pub fn write_message(w: &mut impl Write, v: &Value) -> io::Result<()> {
    let text = serde_json::to_vec(v).map_err(io::Error::other)?;
    let len = u32::try_from(text.len()).map_err(|_| io::Error::other("message too long"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&text)?;
    w.flush()
}

/// Reads one message; `Ok(None)` at a clean end of stream (before a length prefix).
///
/// ```
/// let bytes = [0, 0, 0, 2, b'{', b'}'];
/// let v = fleetwire_conformance::read_message(&mut &bytes[..]).unwrap();
/// assert_eq!(v, Some(serde_json::json!({})));
/// assert_eq!(fleetwire_conformance::read_message(&mut &[][..]).unwrap(), None);
/// ```
pub fn read_message(r: &mut impl Read) -> io::Result<Option<Value>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::other(format!("message of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let v = serde_json::from_slice(&body).map_err(io::Error::other)?;
    Ok(Some(v))
}

/// Fault injection for the harness's own tests: make the testee crash or hang on the
/// requests whose `case` field matches a glob.
///
/// ```
/// let f = fleetwire_conformance::Faults::default();
/// assert!(f.crash_on.is_none() && f.hang_on.is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Exit abruptly (status 101) on a matching case.
    pub crash_on: Option<String>,
    /// Never answer a matching case.
    pub hang_on: Option<String>,
}

/// The testee side: answers requests on `input` with `reference` until `bye` or the end
/// of `input`. This is `fleetwire testee`.
///
/// ```
/// use fleetwire_conformance::{read_message, serve, write_message, Faults, Reference};
/// use serde_json::json;
///
/// let mut input = Vec::new();
/// write_message(&mut input, &json!({"type": "hello", "protocol": 1})).unwrap();
/// write_message(&mut input, &json!({"type": "request", "id": 1, "op": "decode_header",
///     "input": "10"})).unwrap();
/// let mut output = Vec::new();
/// serve(&mut &input[..], &mut output, Reference::new(None), &Faults::default()).unwrap();
/// let mut out = &output[..];
/// assert_eq!(read_message(&mut out).unwrap().unwrap()["type"], "hello");
/// let reply = read_message(&mut out).unwrap().unwrap();
/// assert_eq!(reply["result"], json!({"incomplete": 7}));
/// ```
pub fn serve(
    input: &mut impl Read,
    output: &mut impl Write,
    mut reference: Reference,
    faults: &Faults,
) -> io::Result<()> {
    let crash = faults.crash_on.as_deref().map(Glob::new);
    let hang = faults.hang_on.as_deref().map(Glob::new);
    while let Some(msg) = read_message(input)? {
        let id = msg.get("id").and_then(Value::as_u64).unwrap_or(0);
        match msg.get("type").and_then(Value::as_str) {
            Some("hello") => {
                let reply = if msg.get("protocol").and_then(Value::as_u64) == Some(PROTOCOL_VERSION)
                {
                    reference.hello()
                } else {
                    json!({ "type": "error", "message": "unsupported protocol version" })
                };
                write_message(output, &reply)?;
            }
            Some("request") => {
                let case = msg.get("case").and_then(Value::as_str).unwrap_or("");
                if crash.as_ref().is_some_and(|g| g.matches(case)) {
                    std::process::exit(101);
                }
                if hang.as_ref().is_some_and(|g| g.matches(case)) {
                    loop {
                        thread::sleep(Duration::from_secs(3600));
                    }
                }
                let op = msg.get("op").and_then(Value::as_str).unwrap_or("");
                let reply = reference.call(op, &msg);
                write_message(output, &reply.to_message(id))?;
            }
            Some("bye") => return Ok(()),
            _ => {
                let reply = Reply::Error(format!("unknown message type in {msg}"));
                write_message(output, &reply.to_message(id))?;
            }
        }
    }
    Ok(())
}

/// What a testee announced in its hello (`PROTOCOL.md` §3).
///
/// ```
/// use fleetwire_conformance::TesteeInfo;
/// let info = TesteeInfo::from_hello(&fleetwire_conformance::Reference::new(None).hello()).unwrap();
/// assert!(info.supports("decode_stream") && info.claims("codec"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TesteeInfo {
    /// Implementation name.
    pub name: String,
    /// Implementation version.
    pub version: String,
    /// Conformance levels claimed (§15 of the spec): `codec`, `endpoint`, ...
    pub levels: Vec<String>,
    /// Operations implemented.
    pub operations: Vec<String>,
}

impl TesteeInfo {
    /// Parses a hello answer; an error names what is wrong with it.
    ///
    /// ```
    /// let bad = serde_json::json!({"type": "hello", "protocol": 2});
    /// assert!(fleetwire_conformance::TesteeInfo::from_hello(&bad).is_err());
    /// ```
    pub fn from_hello(v: &Value) -> Result<TesteeInfo, String> {
        if v.get("type").and_then(Value::as_str) != Some("hello") {
            return Err(format!("expected a hello, got {v}"));
        }
        if v.get("protocol").and_then(Value::as_u64) != Some(PROTOCOL_VERSION) {
            return Err(format!(
                "testee speaks protocol {}, runner speaks {PROTOCOL_VERSION}",
                v["protocol"]
            ));
        }
        let strings = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
        Ok(TesteeInfo {
            name: text("name"),
            version: text("version"),
            levels: strings("levels"),
            operations: strings("operations"),
        })
    }

    /// Whether the testee implements `op`.
    ///
    /// ```
    /// let info = fleetwire_conformance::TesteeInfo::default();
    /// assert!(!info.supports("decode_header"));
    /// ```
    pub fn supports(&self, op: &str) -> bool {
        self.operations.iter().any(|o| o == op)
    }

    /// Whether the testee claims conformance level `level`.
    ///
    /// ```
    /// let info = fleetwire_conformance::TesteeInfo { levels: vec!["codec".into()], ..Default::default() };
    /// assert!(info.claims("codec") && !info.claims("endpoint"));
    /// ```
    pub fn claims(&self, level: &str) -> bool {
        self.levels.iter().any(|l| l == level)
    }
}

/// What became of one call.
///
/// ```
/// use fleetwire_conformance::{Call, Reply};
/// assert_ne!(Call::Reply(Reply::Unsupported), Call::Timeout);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// The testee answered.
    Reply(Reply),
    /// No answer within the timeout; the testee was killed and will be restarted.
    Timeout,
    /// The testee died or broke the protocol; it will be restarted.
    Crashed(String),
}

/// An implementation under test, as the runner sees it.
///
/// ```
/// use fleetwire_conformance::{Call, InProcess, Reply, Testee};
/// use std::time::Duration;
/// let mut t = InProcess::reference();
/// assert_eq!(t.info().unwrap().name, "fleetwire-reference");
/// let call = t.call("case.x", "decode_header", &serde_json::json!({"input": ""}), Duration::from_secs(1));
/// assert_eq!(call, Call::Reply(Reply::Result(serde_json::json!({"incomplete": 8}))));
/// ```
pub trait Testee {
    /// The testee's hello (starting it if needed); an error means the harness cannot
    /// talk to it at all.
    fn info(&mut self) -> Result<TesteeInfo, String>;
    /// Sends one request (`fields` plus `op` and `case`) and waits at most `timeout`.
    fn call(&mut self, case: &str, op: &str, fields: &Value, timeout: Duration) -> Call;
    /// How many times the testee was restarted after a crash or hang.
    fn restarts(&self) -> usize {
        0
    }
}

/// The reference (or a mutant) called directly, without a process.
///
/// ```
/// use fleetwire_conformance::{InProcess, Mutant, Testee};
/// let mut t = InProcess::new(Some(Mutant::PongLate));
/// assert_eq!(t.info().unwrap().name, "fleetwire-mutant-pong-late");
/// ```
#[derive(Debug)]
pub struct InProcess {
    reference: Reference,
}

impl InProcess {
    /// The reference with an optional mutant.
    ///
    /// ```
    /// let _ = fleetwire_conformance::InProcess::new(None);
    /// ```
    pub fn new(mutant: Option<super::Mutant>) -> InProcess {
        InProcess {
            reference: Reference::new(mutant),
        }
    }

    /// The correct reference.
    ///
    /// ```
    /// let _ = fleetwire_conformance::InProcess::reference();
    /// ```
    pub fn reference() -> InProcess {
        InProcess::new(None)
    }
}

impl Testee for InProcess {
    fn info(&mut self) -> Result<TesteeInfo, String> {
        TesteeInfo::from_hello(&self.reference.hello())
    }

    fn call(&mut self, _case: &str, op: &str, fields: &Value, _timeout: Duration) -> Call {
        Call::Reply(self.reference.call(op, fields))
    }
}

/// Splits a `--testee` command line into words: whitespace separates, single and double
/// quotes group, backslash escapes the next character.
///
/// ```
/// let w = fleetwire_conformance::split_command(r#"python3 "my testee.py" --x='a b'"#);
/// assert_eq!(w, vec!["python3", "my testee.py", "--x=a b"]);
/// ```
pub fn split_command(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.get_or_insert_with(String::new).push(c),
            (_, '\\') => word.get_or_insert_with(String::new).extend(chars.next()),
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<Result<Value, String>>,
}

/// A testee process spawned from a command line, restarted after a crash or timeout.
///
/// ```no_run
/// use fleetwire_conformance::{Spawned, Testee};
/// let mut t = Spawned::new("fleetwire testee --mutant pong-late");
/// println!("{}", t.info()?.name);
/// # Ok::<(), String>(())
/// ```
pub struct Spawned {
    command: Vec<String>,
    process: Option<Process>,
    info: Option<TesteeInfo>,
    next_id: u64,
    restarts: usize,
    started: usize,
}

impl Spawned {
    /// A testee for `command` (split with [`split_command`]); started on first use.
    ///
    /// ```
    /// let t = fleetwire_conformance::Spawned::new("true");
    /// # drop(t);
    /// ```
    pub fn new(command: &str) -> Spawned {
        Spawned {
            command: split_command(command),
            process: None,
            info: None,
            next_id: 0,
            restarts: 0,
            started: 0,
        }
    }

    fn start(&mut self) -> Result<(), String> {
        let (program, args) = self.command.split_first().ok_or("empty --testee command")?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start testee {program:?}: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let msg = match read_message(&mut r) {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => Err("the testee closed its output".to_owned()),
                    Err(e) => Err(format!("bad message from the testee: {e}")),
                };
                let end = msg.is_err();
                if tx.send(msg).is_err() || end {
                    return;
                }
            }
        });
        let mut p = Process {
            child,
            stdin,
            replies: rx,
        };
        write_message(
            &mut p.stdin,
            &json!({ "type": "hello", "protocol": PROTOCOL_VERSION }),
        )
        .map_err(|e| format!("cannot write to the testee: {e}"))?;
        let hello = match p.replies.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let _ = p.child.kill();
                return Err("the testee did not answer hello within 10 s".into());
            }
        };
        self.info = Some(TesteeInfo::from_hello(&hello)?);
        self.process = Some(p);
        self.started += 1;
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

impl Testee for Spawned {
    fn info(&mut self) -> Result<TesteeInfo, String> {
        if self.process.is_none() {
            self.start()?;
        }
        self.info.clone().ok_or_else(|| "no hello".into())
    }

    fn call(&mut self, case: &str, op: &str, fields: &Value, timeout: Duration) -> Call {
        if self.process.is_none() {
            if self.started > 0 {
                self.restarts += 1;
            }
            if let Err(e) = self.start() {
                return Call::Crashed(format!("restart failed: {e}"));
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = match fields {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        msg.insert("type".into(), "request".into());
        msg.insert("id".into(), id.into());
        msg.insert("op".into(), op.into());
        msg.insert("case".into(), case.into());
        let Some(p) = self.process.as_mut() else {
            return Call::Crashed("not running".into());
        };
        if let Err(e) = write_message(&mut p.stdin, &Value::Object(msg)) {
            self.kill();
            return Call::Crashed(format!("cannot write to the testee: {e}"));
        }
        loop {
            match p.replies.recv_timeout(timeout) {
                Ok(Ok(m)) if m.get("id").and_then(Value::as_u64) == Some(id) => {
                    return Call::Reply(Reply::from_message(&m))
                }
                Ok(Ok(_)) => continue, // a stale answer: ignore
                Ok(Err(e)) => {
                    let status = p.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    self.process = None;
                    return Call::Crashed(format!("{e} ({status})"));
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    return Call::Timeout;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.kill();
                    return Call::Crashed("the testee's output closed".into());
                }
            }
        }
    }

    fn restarts(&self) -> usize {
        self.restarts
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(p) = self.process.as_mut() {
            let _ = write_message(&mut p.stdin, &json!({ "type": "bye" }));
        }
        if let Some(mut p) = self.process.take() {
            drop(p.stdin);
            for _ in 0..50 {
                if let Ok(Some(_)) = p.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}
