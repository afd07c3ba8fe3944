//! Connection transcripts (§3, §5, §6, §7, §8, §9.3, §11, §12): one endpoint under test,
//! a scripted peer's bytes, timer ticks and application actions, with structural
//! expectations on what the endpoint sends, reports and how it ends.

mod handshake;
mod lifecycle;
mod traffic;

use serde_json::{json, Map, Value};

use super::build::*;
use super::json::hex;
use super::zlib_data::{Z_BOMB_1MIB, Z_HELLO_L6};

/// The endpoint under test (README: "Connection transcripts").
#[derive(Clone)]
struct Local {
    role: &'static str,
    node_id: u16,
    peer_id: u16,
    codecs: u8,
    trust_source: bool,
    trust_server_as_proxy: bool,
    require_auth: bool,
    /// `(role, node_id)` of the identity the peer authenticated with.
    authenticated: Option<(&'static str, u16)>,
    services: Option<Vec<u8>>,
    limits: Vec<(&'static str, u64)>,
}

impl Local {
    fn node() -> Local {
        Local {
            role: "node",
            node_id: 1,
            peer_id: 0,
            codecs: 3,
            trust_source: false,
            trust_server_as_proxy: false,
            require_auth: false,
            authenticated: None,
            services: None,
            limits: Vec::new(),
        }
    }
    fn client() -> Local {
        Local {
            role: "client",
            node_id: 0,
            ..Local::node()
        }
    }
    fn proxy() -> Local {
        Local {
            role: "proxy",
            node_id: 9,
            ..Local::node()
        }
    }
    fn limit(mut self, key: &'static str, value: u64) -> Local {
        self.limits.push((key, value));
        self
    }
    fn json(&self) -> Value {
        let limits: Map<String, Value> = self
            .limits
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        json!({
            "role": self.role,
            "node_id": self.node_id,
            "peer_id": self.peer_id,
            "codecs": self.codecs,
            "trust_source": self.trust_source,
            "trust_server_as_proxy": self.trust_server_as_proxy,
            "require_auth": self.require_auth,
            "authenticated": self.authenticated.map(|(role, id)| json!({ "role": role, "node_id": id })),
            "services": self.services,
            "limits": limits,
        })
    }
    fn get(&self, key: &str, default: u64) -> u64 {
        self.limits
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or(default, |(_, v)| *v)
    }
    /// The HELLO this endpoint must send, as a pattern.
    fn hello_pattern(&self) -> Value {
        json!({
            "kind": "HELLO",
            "node": 0, "service": 0, "channel": 0, "source": null,
            "min_version": 1,
            "role": self.role,
            "node_id": self.node_id,
            "peer_id": self.peer_id,
            "max_payload": self.get("max_payload", 65_535),
            "max_decompressed": self.get("max_decompressed", 262_144),
            "max_ratio": self.get("max_ratio", 100),
            "initial_credit_packets": self.get("initial_credit_packets", 1024),
            "initial_credit_bytes": self.get("initial_credit_bytes", 4_194_304),
            "idle_timeout_ms": self.get("idle_timeout_ms", 60_000),
        })
    }
}

/// Packet kinds whose timing is the sender's choice, left out of `expect_sent` unless a
/// transcript is about them.
const TIMING_KINDS: &[&str] = &["CREDIT", "PING"];

/// A transcript under construction.
#[derive(Clone, Default)]
struct T {
    steps: Vec<Value>,
    at: u64,
}

impl T {
    fn push(mut self, step: Value) -> T {
        self.steps.push(step);
        self
    }
    fn at(mut self, ms: u64) -> T {
        self.at = ms;
        self
    }
    fn recv(self, bytes: &[u8]) -> T {
        let at = self.at;
        self.push(json!({ "at_ms": at, "recv": hex(bytes) }))
    }
    fn tick(self, ms: u64) -> T {
        self.at(ms).push(json!({ "at_ms": ms, "tick": true }))
    }
    fn app(self, action: Value) -> T {
        let at = self.at;
        let mut step = json!({ "at_ms": at });
        if let (Value::Object(s), Value::Object(a)) = (&mut step, action) {
            s.extend(a);
        }
        self.push(step)
    }
    /// What was sent, CREDIT and PING aside: when a receiver grants credit (once the
    /// application took the events, or later) and when it sends keepalive PINGs are its
    /// choice (README: "Connection transcripts").
    fn sent(self, patterns: Vec<Value>) -> T {
        self.sent_ignoring(patterns, &[])
    }
    /// As [`T::sent`], also leaving out the packets of the kinds in `ignore`.
    fn sent_ignoring(self, patterns: Vec<Value>, ignore: &[&str]) -> T {
        let mut kinds: Vec<&str> = ignore.to_vec();
        for k in TIMING_KINDS {
            if !kinds.contains(k) {
                kinds.push(k);
            }
        }
        self.push(json!({ "expect_sent": patterns, "ignore": kinds }))
    }
    /// Everything sent, CREDIT and PING included: for transcripts about flow control or
    /// PING themselves.
    fn sent_exact(self, patterns: Vec<Value>) -> T {
        self.push(json!({ "expect_sent": patterns }))
    }
    /// What was sent, leaving out exactly the kinds in `ignore`.
    fn sent_only(self, patterns: Vec<Value>, ignore: &[&str]) -> T {
        self.push(json!({ "expect_sent": patterns, "ignore": ignore }))
    }
    fn eof(self) -> T {
        let at = self.at;
        self.push(json!({ "at_ms": at, "eof": true }))
    }
    fn events(self, patterns: Vec<Value>) -> T {
        self.push(json!({ "expect_events": patterns }))
    }
    fn closed(self, code: &str) -> T {
        self.push(json!({ "expect_closed": code }))
    }
    fn open(self) -> T {
        self.push(json!({ "expect_open": true }))
    }
}

fn preface() -> Value {
    json!({ "preface": true })
}
fn goaway(code: &str) -> Value {
    json!({ "kind": "GOAWAY", "code": code_of(code) })
}
fn established(role: &str) -> Value {
    json!({ "event": "established", "role": role })
}
fn closed_ev(code: &str, by_peer: bool) -> Value {
    json!({ "event": "closed", "code": code, "by_peer": by_peer })
}
fn data_ev(source: u16, node: u16, service: u8, payload: &[u8]) -> Value {
    json!({ "event": "data", "source": source, "node": node, "service": service, "payload": hex(payload) })
}

fn client_hello() -> HelloFields {
    HelloFields {
        role: 1,
        node_id: 0,
        idle_timeout_ms: 0,
        ..HelloFields::default()
    }
}

/// The scripted peer's preface and HELLO.
fn opening(h: &HelloFields) -> Vec<u8> {
    [&PREFACE[..], &h.packet()].concat()
}

fn data(node: u16, service: u8, payload: &[u8]) -> Vec<u8> {
    Raw::data(0).route(node, service, 0).packet(payload)
}
fn ping(id: u64, ts: u64) -> Vec<u8> {
    Raw::ctl(PING, 0).packet(&ping_payload(id, ts))
}
fn goaway_pkt(code: u16, delivered: u64, reason: &[u8]) -> Vec<u8> {
    Raw::ctl(GOAWAY, 0).packet(&goaway_payload(code, delivered, reason))
}
fn credit(p: u32, b: u32) -> Vec<u8> {
    Raw::ctl(CREDIT, 0).packet(&credit_payload(p, b))
}

/// Starts a transcript: the endpoint's own preface and HELLO, then the peer's.
fn start(local: &Local, peer: &HelloFields) -> T {
    T::default()
        .sent(vec![preface(), local.hello_pattern()])
        .recv(&opening(peer))
        .events(vec![established(
            ["", "client", "node", "proxy"][usize::from(peer.role)],
        )])
}

/// How a transcript ends (README: "Connection transcripts", `expected`).
enum End {
    Open,
    Closed(&'static str),
    Error(&'static str),
    /// Either outcome conforms.
    Either(Box<End>, Box<End>),
}

fn end_json(end: &End) -> Value {
    match end {
        End::Open => json!({ "state": "open" }),
        End::Closed(code) => json!({ "state": "closed", "code": code }),
        End::Error(code) => err(code),
        End::Either(a, _) => end_json(a),
    }
}

fn tx(
    id: &str,
    section: &'static str,
    reqs: &[&'static str],
    desc: &str,
    local: &Local,
    t: T,
    end: End,
) -> Vector {
    let v = vector(format!("connection.{id}"), section, reqs, desc)
        .with("config", local.json())
        .with("steps", json!(t.steps));
    match &end {
        End::Open | End::Closed(_) => v.ok(end_json(&end), false),
        End::Error(_) => v.fails(end_json(&end)),
        End::Either(a, b) => v.either(end_json(a), end_json(b)),
    }
}

/// Every connection transcript.
pub(crate) fn connection_vectors() -> Vec<Vector> {
    use handshake::*;
    use lifecycle::*;
    use traffic::*;
    let mut v = Vec::new();
    handshake(&mut v);
    states(&mut v);
    sources(&mut v);
    routing(&mut v);
    flow(&mut v);
    no_deadlock(&mut v);
    compression(&mut v);
    closing(&mut v);
    eof(&mut v);
    timers(&mut v);
    limits(&mut v);
    pings(&mut v);
    v
}
