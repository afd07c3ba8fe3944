//! Stateful differential fuzzing: random `connection` transcripts (a valid handshake
//! most of the time, then random inputs, application actions and time advances), and the
//! normalisation that compares two endpoints' answers on what the spec fixes only.

use serde_json::{json, Map, Value};

use super::cases::{random_chunks, random_packet};
use super::forms::{hex, unhex};
use super::transcript::observe_sent;
use super::Rng;

const PREFACE: &str = "8946574952450d0a";
/// A client's HELLO (header and payload), as the connection vectors send it.
const CLIENT_HELLO: &str =
    "1100001c0000000001010100000000000364ffff00040000000004000040000000000000";
/// A node's HELLO (node id 5), as `random_packet` sends it.
const NODE_HELLO: &str = "1100001c0000000001010200000500000364ffff0004000000000400004000000000ea60";

/// A DATA packet `node` accepts (routed to it, uncompressed, a random payload).
fn valid_data(rng: &mut Rng, node: u16) -> Vec<u8> {
    let payload: Vec<u8> = (0..rng.below(24)).map(|_| rng.byte()).collect();
    let mut b = vec![0x10, 0];
    if rng.below(5) == 0 {
        b[1] |= 0x40; // N
    }
    b.extend((payload.len() as u16).to_be_bytes());
    b.extend(node.to_be_bytes());
    b.extend([rng.below(4) as u8, rng.below(4) as u8]);
    b.extend(payload);
    b
}

fn control(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0x10 | kind, 0];
    b.extend((payload.len() as u16).to_be_bytes());
    b.extend([0, 0, 0, 0]);
    b.extend_from_slice(payload);
    b
}

/// One random transcript: the `connection` request fields (without `wire`).
pub(crate) fn transcript(rng: &mut Rng, mutate: &dyn Fn(&mut Rng, Vec<u8>) -> Vec<u8>) -> Value {
    let node_role = rng.below(3) != 0;
    let own_id: u16 = if node_role { 1 } else { 0 };
    let limits = match rng.below(6) {
        0 => {
            json!({ "initial_credit_bytes": 1024, "initial_credit_packets": 2, "max_payload": 1024 })
        }
        1 => json!({ "initial_credit_packets": 1 }),
        2 => json!({ "idle_timeout_ms": 2000 }),
        3 => json!({ "max_packet_errors": 2 }),
        _ => json!({}),
    };
    let config = json!({
        "limits": limits, "authenticated": null, "codecs": rng.below(4),
        "node_id": own_id, "peer_id": 0, "require_auth": false,
        "role": if node_role { "node" } else { "client" }, "services": null,
        "trust_server_as_proxy": false, "trust_source": false,
    });
    let mut steps = Vec::new();
    let mut now = 0u64;
    if rng.below(8) != 0 {
        let hello = if node_role { CLIENT_HELLO } else { NODE_HELLO };
        let bytes = unhex(&format!("{PREFACE}{hello}")).unwrap_or_default();
        for c in random_chunks(rng, &bytes) {
            steps.push(json!({ "recv": hex(&c) }));
        }
        steps.push(json!({ "expect_events": [] }));
    }
    for _ in 0..=rng.below(14) {
        let mut s = match rng.below(20) {
            0..=6 => {
                let mut input = Vec::new();
                for _ in 0..=rng.below(3) {
                    input.extend(match rng.below(6) {
                        0..=2 => valid_data(rng, own_id),
                        3 => control(2, &(0..16).map(|_| rng.byte()).collect::<Vec<u8>>()),
                        4 => control(5, &[0, 0, 0, 1, 0, 0, 4, 0]),
                        _ => random_packet(rng).0,
                    });
                }
                if rng.below(5) == 0 {
                    input = mutate(rng, input);
                }
                for c in random_chunks(rng, &input) {
                    steps.push(json!({ "recv": hex(&c) }));
                }
                continue;
            }
            7..=9 => json!({ "expect_events": [] }),
            10..=12 => {
                let payload: Vec<u8> = if rng.below(3) == 0 {
                    vec![b'a'; 40 + rng.below(200) as usize]
                } else {
                    (0..rng.below(60)).map(|_| rng.byte()).collect()
                };
                let codec = ["none", "snappy", "zlib"][rng.below(3) as usize];
                json!({
                    "app": "send_data", "node": rng.below(3), "service": 1, "channel": 2,
                    "payload": hex(&payload), "codec": codec,
                    "never_compress": rng.below(5) == 0,
                })
            }
            13 => json!({ "app": "close" }),
            14 => json!({ "app": "send_ping" }),
            15 => json!({ "eof": true }),
            _ => json!({ "tick": true }),
        };
        if rng.below(3) == 0 {
            now += [1, 100, 1000, 5000, 31000][rng.below(5) as usize];
            s["at_ms"] = json!(now);
        }
        steps.push(s);
    }
    steps.push(json!({ "expect_events": [] }));
    steps.push(json!({ "expect_open": true }));
    json!({ "config": config, "steps": steps })
}

/// For a version 1 testee (no `wire`): an `expect_sent` after every step, so that what
/// it reports sent stays attached to the step that sent it.
pub(crate) fn with_expect_sent(fields: &Value) -> Value {
    let mut f = fields.clone();
    let steps: Vec<Value> = fields["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| [s.clone(), json!({ "expect_sent": [] })])
        .collect();
    f["steps"] = json!(steps);
    f
}

fn drop_keys(v: &mut Value, keys: &[&str]) {
    if let Value::Object(m) = v {
        for k in keys {
            m.remove(*k);
        }
    }
}

/// A sent packet as compared: `None` for what the spec leaves to the sender: PINGs, and
/// valid CREDITs — when and in what batches credit goes back is the receiver's choice
/// (§8 `[[flow.grant]]` is a SHOULD about consuming, not a schedule), so even the totals
/// at the end of a transcript may differ; a CREDIT 0/0 is never valid and is compared.
/// Credit overflow is the sender monitor's, withheld credit the vectors'.
fn packet(mut p: Value) -> Option<Value> {
    match p["kind"].as_str() {
        Some("PING") => return None,
        Some("CREDIT") => {
            let (a, b) = (p["packets"].as_u64(), p["bytes"].as_u64());
            if let (Some(a), Some(b)) = (a, b) {
                if a != 0 || b != 0 {
                    return None;
                }
            }
        }
        Some("DATA") => {
            // compressed or not, the bytes delivered must agree (§9 leaves the codec free)
            drop_keys(&mut p, &["payload", "length", "codec"]);
        }
        Some("GOAWAY") | Some("ERROR") => drop_keys(&mut p, &["payload", "length", "reason"]),
        _ => {}
    }
    Some(p)
}

fn event(mut e: Value) -> Value {
    match e["event"].as_str() {
        // the PING id and the reasons are the implementation's choice
        Some("pong") => drop_keys(&mut e, &["id", "rtt_us"]),
        // `by_peer` is informational in the testee protocol (who started a close whose
        // GOAWAYs crossed, who ended a lost stream): the code and `delivered` are compared
        Some("closed") => drop_keys(&mut e, &["reason", "by_peer"]),
        Some("packet_error") => drop_keys(&mut e, &["reason"]),
        _ => {}
    }
    e
}

/// The comparable form of a `connection` result: events, outcome, what each step sent
/// (decoded with the reference codec).
pub(crate) fn normalise(result: &Value) -> Value {
    if result.get("error").is_some() && result.get("observations").is_none() {
        return result.clone();
    }
    let mut observations = Vec::new();
    let mut sent = Vec::new();
    let wire = result.get("wire").and_then(Value::as_array);
    for o in result["observations"].as_array().into_iter().flatten() {
        match o.get("sent") {
            Some(list) if wire.is_none() => {
                let items = list.as_array().into_iter().flatten().cloned();
                let items: Vec<Value> = items.filter_map(packet).collect();
                sent.push(json!(items));
            }
            Some(_) => {}
            None => {
                let mut o = o.clone();
                if let Some(Value::Array(events)) = o.get_mut("events") {
                    *events = events.drain(..).map(event).collect();
                }
                observations.push(o);
            }
        }
    }
    if let Some(wire) = wire {
        let (mut out, mut parsed, mut preface) = (Vec::new(), 0, false);
        let mut broken = false;
        for w in wire {
            out.extend(w["sent"].as_str().and_then(unhex).unwrap_or_default());
            let items = if broken {
                Vec::new()
            } else {
                match observe_sent(&out, &mut parsed, &mut preface) {
                    Ok(l) => l.into_iter().filter_map(packet).collect(),
                    Err(e) => {
                        broken = true;
                        vec![json!({ "undecodable": e })]
                    }
                }
            };
            sent.push(json!({ "sent": items, "closed": w["closed"] }));
        }
    }
    let mut m = Map::new();
    m.insert("outcome".into(), result["outcome"].clone());
    m.insert("observations".into(), json!(observations));
    m.insert("sent".into(), json!(sent));
    Value::Object(m)
}

/// Where two normalised results first differ: `outcome`, `events`, `closed` or
/// `sent KIND` (the kind of the first differing packet).
pub(crate) fn difference(a: &Value, b: &Value) -> String {
    if a.get("observations").is_none() || b.get("observations").is_none() {
        return "error".into();
    }
    if a["outcome"] != b["outcome"] {
        return "outcome".into();
    }
    if a["observations"] != b["observations"] {
        return "events".into();
    }
    let (sa, sb) = (a["sent"].as_array(), b["sent"].as_array());
    for (x, y) in sa.into_iter().flatten().zip(sb.into_iter().flatten()) {
        if x != y {
            let items = |v: &Value| {
                v.get("sent")
                    .unwrap_or(v)
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            };
            let (ix, iy) = (items(x), items(y));
            for i in 0..ix.len().max(iy.len()) {
                if ix.get(i) != iy.get(i) {
                    let p = ix.get(i).or(iy.get(i)).cloned().unwrap_or(Value::Null);
                    let kind = p["kind"].as_str().unwrap_or("(undecodable)");
                    return format!("sent {kind}");
                }
            }
            return "closed".into();
        }
    }
    "sent".into()
}
