//! The `connection` operation of the reference testee: replays a transcript's steps on
//! the crate's [`Connection`] and reports what a runner needs to check the expectations:
//! one observation per `expect_*` step, then the outcome (`conformance/PROTOCOL.md`).

use std::time::Duration;

use serde_json::{json, Value};

use super::filter::Filter;
use super::forms::{codec_by_name, field, hex, hex_field, num, str_field};
use super::mutants::{Mutant, OutputState};
pub(crate) use crate::vectors::verify_connection::{event_json, observe_sent};
use fleetwire::compress::Compressor;
use fleetwire::connection::{Config, Connection, Identity, SendError, SendOptions, ServiceSet};
use fleetwire::{Codec, ErrorCode, Route};

fn config_from(c: &Value, mutant: Option<Mutant>) -> Result<Config, String> {
    let node_id = num(c, "node_id")?;
    let mut config = match str_field(c, "role")? {
        "client" => Config::client(),
        "node" => Config::node(node_id),
        "proxy" => Config::proxy(node_id),
        other => return Err(format!("unknown role {other}")),
    };
    config.node_id = node_id;
    config.peer_id = num(c, "peer_id")?;
    config.codecs = num(c, "codecs")?;
    config.trust_source = c.get("trust_source").and_then(Value::as_bool) == Some(true);
    config.require_auth = c.get("require_auth").and_then(Value::as_bool) == Some(true);
    config.trust_server_as_proxy =
        c.get("trust_server_as_proxy").and_then(Value::as_bool) == Some(true);
    config.authenticated = match (c.get("authenticated"), c.get("authenticated_id")) {
        (Some(a), _) if !a.is_null() => {
            let node_id = num(a, "node_id")?;
            Some(match str_field(a, "role")? {
                "node" => Identity::node(node_id),
                "proxy" => Identity::proxy(node_id),
                other => return Err(format!("unknown identity role {other}")),
            })
        }
        // the field's earlier form: a node id alone
        (_, Some(id)) if !id.is_null() => Some(Identity::node(num(c, "authenticated_id")?)),
        _ => None,
    };
    config.services = match c.get("services") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(ServiceSet::from_iter(
            a.iter().filter_map(Value::as_u64).map(|s| s as u8),
        )),
        Some(_) => return Err("services is neither null nor an array".into()),
    };
    if let Some(limits) = c.get("limits") {
        let limits = limits.as_object().ok_or("limits is not an object")?;
        for (key, value) in limits {
            set_limit(&mut config, key, value)?;
        }
    }
    config.validate()?;
    match mutant {
        // §11 limit.ping-rate: the configured rate shifted, or no limit at all (0)
        Some(Mutant::PingRateOffByOne) if config.max_ping_rate > 0 => config.max_ping_rate += 1,
        Some(Mutant::PingRateIgnored) => config.max_ping_rate = 0,
        // §5.7 error.rate: likewise
        Some(Mutant::ErrorRateOffByOne) if config.max_error_rate > 0 => config.max_error_rate += 1,
        Some(Mutant::ErrorRateIgnored) => config.max_error_rate = 0,
        _ => {}
    }
    let l = &mut config.limits;
    match mutant {
        Some(Mutant::EmptyRunOffByOne) => l.max_empty_run += 1,
        Some(Mutant::ErrorBudgetOffByOne) => l.max_packet_errors += 1,
        Some(Mutant::TimeoutOffByOne) => {
            l.handshake_timeout_ms += 1;
            l.header_timeout_ms += 1;
            l.packet_timeout_ms += 1;
        }
        _ => {}
    }
    Ok(config)
}

fn set_limit(config: &mut Config, key: &str, value: &Value) -> Result<(), String> {
    let n = value
        .as_u64()
        .ok_or_else(|| format!("limit {key} is not a number"))?;
    let u32v = || u32::try_from(n).map_err(|_| format!("limit {key} out of range"));
    if key == "max_ping_rate" {
        // §11 limit.ping-rate: a local limit of the connection, not of the HELLO
        config.max_ping_rate = u32v()?;
        return Ok(());
    }
    if key == "max_error_rate" {
        // §5.7 error.rate: likewise local
        config.max_error_rate = u32v()?;
        return Ok(());
    }
    let l = &mut config.limits;
    match key {
        "max_payload" => {
            l.max_payload = u16::try_from(n).map_err(|_| "max_payload out of range")?
        }
        "max_decompressed" => l.max_decompressed = u32v()?,
        "max_ratio" => l.max_ratio = u8::try_from(n).map_err(|_| "max_ratio out of range")?,
        "initial_credit_packets" => l.initial_credit_packets = u32v()?,
        "initial_credit_bytes" => l.initial_credit_bytes = u32v()?,
        "idle_timeout_ms" => l.idle_timeout_ms = u32v()?,
        "max_empty_run" => l.max_empty_run = u32v()?,
        "max_packet_errors" => l.max_packet_errors = u32v()?,
        "handshake_timeout_ms" => l.handshake_timeout_ms = n,
        "header_timeout_ms" => l.header_timeout_ms = n,
        "packet_timeout_ms" => l.packet_timeout_ms = n,
        "drain_timeout_ms" => l.drain_timeout_ms = n,
        other => return Err(format!("unknown limit {other}")),
    }
    Ok(())
}

struct Run {
    conn: Connection,
    mutant: Option<Mutant>,
    filter: Option<Filter>,
    /// Everything written, after the mutant's output rewriting.
    out: Vec<u8>,
    /// What was written during the current step (protocol v2 `wire`).
    step_out: Vec<u8>,
    ost: OutputState,
    parsed: usize,
    preface_seen: bool,
    app_closed: bool,
    closed: Option<Value>,
}

impl Run {
    fn take_events(&mut self) -> Vec<Value> {
        let mut taken = Vec::new();
        while let Some(e) = self.conn.poll_event() {
            let v = event_json(&e);
            if v["event"] == "closed" {
                self.closed = Some(v.clone());
            }
            taken.push(v);
        }
        let own_id = self.conn.config().node_id;
        super::mutants::rewrite_forwards(self.mutant, &mut taken, own_id);
        taken
    }

    fn recv(&mut self, now: Duration, bytes: &[u8]) {
        match &mut self.filter {
            Some(f) => {
                let mut passed = Vec::new();
                f.push(bytes, &mut passed);
                self.conn.handle_input(now, &passed);
            }
            None => self.conn.handle_input(now, bytes),
        }
    }

    /// Takes what the connection wrote, through the mutant's output rewriting.
    fn flush(&mut self) {
        let mut raw = Vec::new();
        self.conn.poll_transmit(&mut raw);
        if raw.is_empty() {
            return;
        }
        if let Some(m) = self.mutant {
            self.ost.app_closed = self.app_closed;
            raw = m.rewrite_output(&raw, &mut self.ost);
        }
        self.out.extend_from_slice(&raw);
        self.step_out.extend_from_slice(&raw);
    }

    /// Packets sent since the last call: header fields, payload, control fields.
    fn sent(&mut self) -> Result<Vec<Value>, String> {
        self.flush();
        // what a mutant writes may not decode: say so in the observation, so that the
        // runner (which decodes the raw bytes itself in protocol 2) names the fault
        Ok(
            observe_sent(&self.out, &mut self.parsed, &mut self.preface_seen)
                .unwrap_or_else(|e| vec![json!({ "undecodable": e })]),
        )
    }

    fn outcome(&mut self) -> Value {
        self.take_events();
        match &self.closed {
            None => json!({ "state": "open" }),
            Some(c) if c["by_peer"] == true || c["code"] == "NO_ERROR" => {
                json!({ "state": "closed", "code": c["code"] })
            }
            Some(c) => {
                let name = c["code"].as_str().unwrap_or_default();
                let code = ErrorCode::from_name(name).map_or(Value::Null, |c| json!(c.0));
                json!({ "error": name, "code": code })
            }
        }
    }
}

fn app(run: &mut Run, now: Duration, step: &Value) -> Result<(), String> {
    run.conn.handle_timeout(now);
    match str_field(step, "app")? {
        "send_data" => {
            let opts = SendOptions {
                codec: codec_by_name(str_field(step, "codec")?)?,
                never_compress: step.get("never_compress").and_then(Value::as_bool) == Some(true),
            };
            let route = Route::new(
                num(step, "node")?,
                num(step, "service")?,
                num(step, "channel")?,
            );
            let payload = hex_field(step, "payload")?;
            if let Some(m) = run.mutant {
                if bypass_send(run, m, route, &payload, opts) {
                    return Ok(());
                }
            }
            // refusals are not reported: what is sent is checked by expect_sent
            if let Err(e) = run.conn.send_data(route, &payload, opts) {
                if let Some(m) = run.mutant {
                    refused_send(run, m, e, route, &payload);
                }
            }
        }
        "close" => {
            run.app_closed = true;
            run.conn.close(now, "")
        }
        "send_ping" => {
            run.ost.app_ping = true;
            run.conn.send_ping(now);
        }
        other => return Err(format!("unknown app action {other}")),
    }
    Ok(())
}

/// Writes a DATA packet past the connection (what a buggy sender does).
fn write_raw(run: &mut Run, route: Route, codec: Codec, payload: &[u8]) {
    run.flush();
    let mut h = fleetwire::Header::data(route, payload.len() as u16);
    h.codec = codec;
    let mut bytes = Vec::new();
    h.encode_to_vec(&mut bytes);
    bytes.extend_from_slice(payload);
    run.out.extend_from_slice(&bytes);
    run.step_out.extend_from_slice(&bytes);
}

/// The sender-side mutants that take over a send: `true` when they did.
fn bypass_send(run: &mut Run, m: Mutant, route: Route, payload: &[u8], opts: SendOptions) -> bool {
    let Some(peer) = run.conn.peer().copied() else {
        return false;
    };
    if opts.codec == Codec::None || opts.never_compress || run.conn.is_closed() {
        return false;
    }
    let mut wire = Vec::new();
    if Compressor::default()
        .compress(opts.codec, payload, &mut wire)
        .is_err()
    {
        return false;
    }
    let announced = peer.codecs & opts.codec.hello_bit() != 0;
    let cap = u64::from(peer.max_decompressed).min(u64::from(peer.max_ratio) * wire.len() as u64);
    let take = match m {
        Mutant::CompressesUnannounced => !announced,
        Mutant::CompressesPastCap => announced && payload.len() as u64 > cap,
        Mutant::CompressesIncompressible => announced && wire.len() >= payload.len(),
        _ => false,
    };
    if take {
        write_raw(run, route, opts.codec, &wire);
    }
    take
}

/// The sender-side mutants that send what the connection refused.
fn refused_send(run: &mut Run, m: Mutant, e: SendError, route: Route, payload: &[u8]) {
    let send = match (m, e) {
        (Mutant::DataBeyondCredit, SendError::NoCredit) => true,
        (Mutant::DataOverPeerMax, SendError::TooLarge) => true,
        (Mutant::DataAfterOwnGoaway, SendError::Closing) => run.app_closed,
        _ => false,
    };
    if send && !run.conn.is_closed() {
        write_raw(run, route, Codec::None, payload);
    }
}

/// Runs one step; returns the observation of an `expect_*` step.
fn step(run: &mut Run, now: &mut Duration, s: &Value, i: usize) -> Result<Option<Value>, String> {
    if let Some(at) = s.get("at_ms") {
        let at = Duration::from_millis(at.as_u64().ok_or("at_ms is not a number")?);
        if at < *now {
            return Err(format!("step {i}: time goes backwards"));
        }
        *now = at;
    }
    run.ost.app_ping = false;
    let observation = if s.get("recv").is_some() {
        run.recv(*now, &hex_field(s, "recv")?);
        None
    } else if s.get("tick").is_some() {
        run.conn.handle_timeout(*now);
        None
    } else if s.get("eof").is_some() {
        run.conn.handle_eof(*now);
        None
    } else if s.get("app").is_some() {
        app(run, *now, s)?;
        None
    } else if s.get("expect_sent").is_some() {
        Some(json!({ "sent": run.sent()? }))
    } else if s.get("expect_events").is_some() {
        Some(json!({ "events": run.take_events() }))
    } else if s.get("expect_closed").is_some() {
        // the application takes the events here; they are not shown to a later
        // expect_events (as the crate's vector verifier does)
        run.take_events();
        Some(json!({ "closed": run.closed.as_ref().map(|c| c["code"].clone()) }))
    } else if s.get("expect_open").is_some() {
        run.take_events();
        Some(json!({ "open": !run.conn.is_closed() }))
    } else {
        return Err(format!("step {i}: unknown step {s}"));
    };
    Ok(observation)
}

/// The `connection` operation: `{"observations": [...], "outcome": {...}}`.
pub(crate) fn connection(req: &Value, mutant: Option<Mutant>) -> Result<Value, String> {
    let config = config_from(field(req, "config")?, mutant)?;
    let filter = mutant
        .filter(|m| m.filters_input())
        .map(|m| Filter::new(m, true, config.limits.max_payload, true));
    let mut run = Run {
        conn: Connection::new(config, Duration::ZERO),
        mutant,
        filter,
        out: Vec::new(),
        step_out: Vec::new(),
        ost: OutputState::default(),
        parsed: 0,
        preface_seen: false,
        app_closed: false,
        closed: None,
    };
    let mut now = Duration::ZERO;
    let steps = field(req, "steps")?
        .as_array()
        .ok_or("steps is not an array")?;
    let want_wire = req.get("wire").and_then(Value::as_bool) == Some(true);
    let mut observations = Vec::new();
    let mut wire = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if let Some(o) = step(&mut run, &mut now, s, i)? {
            observations.push(o);
        }
        run.flush();
        let sent = std::mem::take(&mut run.step_out);
        wire.push(json!({ "sent": hex(&sent), "closed": run.conn.is_closed() }));
    }
    let mut result = json!({ "observations": observations, "outcome": run.outcome() });
    if want_wire {
        result["wire"] = json!(wire);
    }
    Ok(result)
}
