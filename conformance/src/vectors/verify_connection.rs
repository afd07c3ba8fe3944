//! Runs connection transcripts against the crate's state machine (`fleetwire::connection`).

use std::time::Duration;

use serde_json::{json, Value};

use super::json::{hex, Fields};
use super::verify::{compare, control_json, header_json};
use fleetwire::connection::{Config, Connection, Event, Identity, SendOptions, ServiceSet};
use fleetwire::control::Control;
use fleetwire::{Codec, ErrorCode, PacketRef, Route, Status, PREFACE};

/// A registry name, or `0xNNNN` for an unassigned code.
pub(crate) fn code_label(code: ErrorCode) -> String {
    code.name()
        .map_or_else(|| format!("0x{:04X}", code.0), str::to_owned)
}

fn num<T: TryFrom<u64>>(v: &Value, name: &str) -> Result<T, String> {
    T::try_from(v.u64_field(name)?).map_err(|_| format!("field `{name}` out of range"))
}

fn config_from(c: &Value) -> Result<Config, String> {
    let node_id = num(c, "node_id")?;
    let mut config = match c.str_field("role")? {
        "client" => Config::client(),
        "node" => Config::node(node_id),
        "proxy" => Config::proxy(node_id),
        other => return Err(format!("unknown role {other}")),
    };
    config.node_id = node_id;
    config.peer_id = num(c, "peer_id")?;
    config.codecs = num(c, "codecs")?;
    config.trust_source = c.field("trust_source")?.as_bool().ok_or("trust_source")?;
    config.require_auth = c.field("require_auth")?.as_bool().ok_or("require_auth")?;
    config.trust_server_as_proxy = match c.get("trust_server_as_proxy") {
        None => false,
        Some(b) => b.as_bool().ok_or("trust_server_as_proxy")?,
    };
    config.authenticated = match c.get("authenticated") {
        None | Some(Value::Null) => None,
        Some(a) => {
            let node_id = num(a, "node_id")?;
            Some(match a.str_field("role")? {
                "node" => Identity::node(node_id),
                "proxy" => Identity::proxy(node_id),
                other => return Err(format!("unknown identity role {other}")),
            })
        }
    };
    config.services = match c.field("services")? {
        Value::Null => None,
        Value::Array(a) => Some(ServiceSet::from_iter(
            a.iter().filter_map(Value::as_u64).map(|s| s as u8),
        )),
        _ => return Err("services is neither null nor an array".into()),
    };
    let limits = c
        .field("limits")?
        .as_object()
        .ok_or("limits is not an object")?;
    for (key, value) in limits {
        let n = value
            .as_u64()
            .ok_or_else(|| format!("limit {key} is not a number"))?;
        let small = |n: u64| u32::try_from(n).map_err(|_| format!("limit {key} out of range"));
        let l = &mut config.limits;
        match key.as_str() {
            // §11 limit.ping-rate: a local limit of the connection, not of the HELLO
            "max_ping_rate" => config.max_ping_rate = small(n)?,
            // §5.7 error.rate: likewise local
            "max_error_rate" => config.max_error_rate = small(n)?,
            "max_payload" => {
                l.max_payload = u16::try_from(n).map_err(|_| "max_payload out of range")?
            }
            "max_decompressed" => l.max_decompressed = small(n)?,
            "max_ratio" => l.max_ratio = u8::try_from(n).map_err(|_| "max_ratio out of range")?,
            "initial_credit_packets" => l.initial_credit_packets = small(n)?,
            "initial_credit_bytes" => l.initial_credit_bytes = small(n)?,
            "idle_timeout_ms" => l.idle_timeout_ms = small(n)?,
            "max_empty_run" => l.max_empty_run = small(n)?,
            "max_packet_errors" => l.max_packet_errors = small(n)?,
            "handshake_timeout_ms" => l.handshake_timeout_ms = n,
            "header_timeout_ms" => l.header_timeout_ms = n,
            "packet_timeout_ms" => l.packet_timeout_ms = n,
            "drain_timeout_ms" => l.drain_timeout_ms = n,
            other => return Err(format!("unknown limit {other}")),
        }
    }
    config.validate()?;
    Ok(config)
}

pub(crate) fn event_json(e: &Event) -> Value {
    match e {
        Event::Established { peer } => json!({
            "event": "established",
            "version": peer.version,
            "role": peer.role.name(),
            "node_id": peer.node_id,
            "attributed_id": peer.attributed_id,
            "codecs": peer.codecs,
            "max_payload": peer.max_payload,
            "max_decompressed": peer.max_decompressed,
            "max_ratio": peer.max_ratio,
            "initial_credit_packets": peer.initial_credit_packets,
            "initial_credit_bytes": peer.initial_credit_bytes,
            "idle_timeout_ms": peer.idle_timeout_ms,
        }),
        Event::Data {
            source,
            route,
            payload,
            never_compress,
        } => json!({
            "event": "data", "source": source, "node": route.node, "service": route.service,
            "channel": route.channel, "payload": hex(payload), "never_compress": never_compress,
        }),
        Event::Forward { packet, .. } => json!({
            "event": "forward", "header": header_json(&packet.header), "payload": hex(&packet.payload),
        }),
        Event::Pong { id, rtt } => {
            json!({ "event": "pong", "id": id.to_string(), "rtt_us": rtt.as_micros() as u64 })
        }
        Event::PacketError {
            code,
            source,
            header,
            reason,
        } => json!({
            "event": "packet_error", "code": code.0, "source": source, "header": hex(header), "reason": reason,
        }),
        Event::GoawayReceived { delivered, reason } => json!({
            "event": "goaway", "delivered": delivered.to_string(), "reason": reason,
        }),
        Event::Closed {
            code,
            by_peer,
            reason,
            delivered,
        } => json!({
            "event": "closed", "code": code_label(*code), "by_peer": by_peer, "reason": reason,
            "delivered": delivered.map(|d| d.to_string()),
        }),
        // `Event` is non-exhaustive: an event added later shows up in the transcript
        // (and fails a match) instead of being dropped.
        other => json!({ "event": "unknown", "debug": format!("{other:?}") }),
    }
}

/// Every key of `pattern` has the same value in `actual`.
pub(crate) fn matches(pattern: &Value, actual: &Value) -> bool {
    match pattern.as_object() {
        Some(p) => p.iter().all(|(k, v)| actual.get(k) == Some(v)),
        None => false,
    }
}

pub(crate) fn match_list(what: &str, patterns: &[Value], actual: &[Value]) -> Result<(), String> {
    let ok =
        patterns.len() == actual.len() && patterns.iter().zip(actual).all(|(p, a)| matches(p, a));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {}, got {}",
            json!(patterns),
            json!(actual)
        ))
    }
}

/// The endpoint under test and what has been observed of it.
struct Run {
    conn: Connection,
    out: Vec<u8>,
    parsed: usize,
    preface_seen: bool,
    events: Vec<Value>,
    closed: Option<Value>,
}

impl Run {
    fn take_events(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            let v = event_json(&e);
            if v["event"] == "closed" {
                self.closed = Some(v.clone());
            }
            self.events.push(v);
        }
    }

    /// Packets sent since the last call, flattened: header fields, payload, control fields.
    fn sent(&mut self) -> Result<Vec<Value>, String> {
        self.conn.poll_transmit(&mut self.out);
        observe_sent(&self.out, &mut self.parsed, &mut self.preface_seen)
    }

    fn outcome(&mut self) -> Value {
        self.take_events();
        match &self.closed {
            None => json!({ "state": "open" }),
            Some(c)
                if c["by_peer"] == true
                    || c["code"] == "NO_ERROR"
                    || c["code"] == "CONNECTION_LOST" =>
            {
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
    match step.str_field("app")? {
        "send_data" => {
            let codec = match step.str_field("codec")? {
                "none" => Codec::None,
                "snappy" => Codec::Snappy,
                "zlib" => Codec::Zlib,
                other => return Err(format!("unknown codec {other}")),
            };
            let opts = SendOptions {
                codec,
                never_compress: step
                    .field("never_compress")?
                    .as_bool()
                    .ok_or("never_compress")?,
            };
            let route = Route::new(
                num(step, "node")?,
                num(step, "service")?,
                num(step, "channel")?,
            );
            // the result is not an expectation: what is sent is checked by expect_sent
            let _ = run.conn.send_data(route, &step.hex_field("payload")?, opts);
        }
        "close" => run.conn.close(now, ""),
        "send_ping" => {
            run.conn.send_ping(now);
        }
        other => return Err(format!("unknown app action {other}")),
    }
    Ok(())
}

fn step(run: &mut Run, now: &mut Duration, s: &Value, i: usize) -> Result<(), String> {
    if let Some(at) = s.get("at_ms") {
        let at = Duration::from_millis(at.as_u64().ok_or("at_ms is not a number")?);
        if at < *now {
            return Err(format!("step {i}: time goes backwards"));
        }
        *now = at;
    }
    if s.get("recv").is_some() {
        run.conn.handle_input(*now, &s.hex_field("recv")?);
    } else if s.get("tick").is_some() {
        run.conn.handle_timeout(*now);
    } else if s.get("eof").is_some() {
        run.conn.handle_eof(*now);
    } else if s.get("app").is_some() {
        app(run, *now, s)?;
    } else if let Some(p) = s.get("expect_sent") {
        let patterns = p.as_array().ok_or("expect_sent is not an array")?;
        let ignore: Vec<&str> = s
            .get("ignore")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let sent: Vec<Value> = run
            .sent()?
            .into_iter()
            .filter(|p| !p["kind"].as_str().is_some_and(|k| ignore.contains(&k)))
            .collect();
        match_list(&format!("step {i}: sent"), patterns, &sent)?;
    } else if let Some(p) = s.get("expect_events") {
        let patterns = p.as_array().ok_or("expect_events is not an array")?;
        let start = run.events.len();
        run.take_events();
        match_list(&format!("step {i}: events"), patterns, &run.events[start..])?;
    } else if let Some(code) = s.get("expect_closed") {
        run.take_events();
        let got = run.closed.as_ref().map(|c| &c["code"]);
        if got != Some(code) {
            return Err(format!(
                "step {i}: expected closed with {code}, got {got:?}"
            ));
        }
    } else if s.get("expect_open").is_some() {
        run.take_events();
        if run.conn.is_closed() {
            return Err(format!(
                "step {i}: expected open, closed with {:?}",
                run.closed
            ));
        }
    } else {
        return Err(format!("step {i}: unknown step {s}"));
    }
    Ok(())
}

/// Connection layer: replays the steps, then compares the final outcome.
pub(crate) fn transcript(v: &Value) -> Result<(), String> {
    let config = config_from(v.field("config")?)?;
    let mut run = Run {
        conn: Connection::new(config, Duration::ZERO),
        out: Vec::new(),
        parsed: 0,
        preface_seen: false,
        events: Vec::new(),
        closed: None,
    };
    let mut now = Duration::ZERO;
    for (i, s) in v
        .field("steps")?
        .as_array()
        .ok_or("steps is not an array")?
        .iter()
        .enumerate()
    {
        step(&mut run, &mut now, s, i)?;
    }
    let outcome = run.outcome();
    compare(v, &outcome)
}

/// The packets of `out` after `*parsed`, flattened (header fields, payload as hex, control
/// fields), the preface first as `{"preface": true}`; advances `parsed` past complete
/// packets and leaves an incomplete one for the next call.
/// Adds `decompressed` to an observed DATA item: its payload as the application sent
/// it (decoded by the reference without limits; left out when it does not decode), so
/// that a transcript can check a send whose compression is the sender's choice.
pub(crate) fn with_decompressed(item: &mut Value) {
    if item["kind"] != "DATA" || item.get("decompressed").is_some() {
        return;
    }
    let Some(payload) = item["payload"].as_str().and_then(super::json::unhex) else {
        return;
    };
    let codec = match item["codec"].as_str() {
        Some("none") => {
            item["decompressed"] = json!(hex(&payload));
            return;
        }
        Some("snappy") => Codec::Snappy,
        Some("zlib") => Codec::Zlib,
        _ => return,
    };
    let limits = fleetwire::compress::DecompressLimits {
        max_decompressed: 16 << 20,
        max_ratio: 255,
        codecs: 3,
    };
    let mut plain = Vec::new();
    if fleetwire::compress::Decompressor::new()
        .decompress(codec, &payload, &limits, &mut plain)
        .is_ok()
    {
        item["decompressed"] = json!(hex(&plain));
    }
}

pub(crate) fn observe_sent(
    out: &[u8],
    parsed: &mut usize,
    preface_seen: &mut bool,
) -> Result<Vec<Value>, String> {
    let mut list = Vec::new();
    if !*preface_seen && out.len() >= 8 {
        if out[..8] != PREFACE {
            return Err("the endpoint did not begin with the preface".into());
        }
        *preface_seen = true;
        *parsed = 8;
        list.push(json!({ "preface": true }));
    }
    while *preface_seen && *parsed < out.len() {
        let (pkt, rest) = match PacketRef::parse(&out[*parsed..], u16::MAX) {
            Ok(Status::Complete(p)) => p,
            Ok(Status::Incomplete { .. }) => break,
            Err(e) => return Err(format!("the endpoint sent an invalid packet: {e}")),
        };
        let mut flat = header_json(&pkt.header);
        flat["payload"] = json!(hex(pkt.payload));
        with_decompressed(&mut flat);
        if pkt.header.kind.is_control() {
            let c = Control::parse(pkt.header.kind, pkt.payload)
                .map_err(|e| format!("the endpoint sent an invalid control payload: {e}"))?;
            if let (Value::Object(f), Value::Object(c)) = (&mut flat, control_json(&c)) {
                f.extend(c);
            }
        }
        list.push(flat);
        *parsed = out.len() - rest.len();
    }
    Ok(list)
}
