//! The live-peer cases, written from the spec: what the runner sends, what a conforming
//! testee answers. Each case names its section and tags; its level is that of its first
//! tag. Sender checks ([`super::monitor`]) run on every case besides.

use std::time::{Duration, Instant};

use super::session::{
    control, data, describe, grade_close, must, packet, raw_control, should, snappy, unsupported,
    zlib, Closing, Ctx, HelloPlan, Outcome, Plan, Sent, Session, TlsPlan, CLIENT_ID, R, RUNNER_ID,
};
use super::wire::Event;
use fleetwire::control::{Control, Credit, ErrorReport, Goaway, Hello, Ping, Role};
use fleetwire::{Codec, ErrorCode, Header, Kind, Route, PREFACE};

/// Which roles a case applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Roles {
    Both,
    Server,
    Client,
}

/// Which security a case applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sec {
    /// Plaintext and TLS.
    Any,
    /// Plaintext runs only.
    Plain,
    /// TLS runs only.
    Tls,
}

pub(super) type CaseFn = fn(&mut Ctx<'_>) -> R;

/// One case definition.
pub(super) struct Def {
    pub(super) name: &'static str,
    pub(super) roles: Roles,
    pub(super) sec: Sec,
    pub(super) section: &'static str,
    pub(super) tags: &'static [&'static str],
    pub(super) desc: &'static str,
    pub(super) run: CaseFn,
}

macro_rules! case {
    ($name:literal, $roles:ident, $sec:ident, $section:literal, [$($tag:literal),+], $desc:literal, $run:expr) => {
        Def {
            name: $name,
            roles: Roles::$roles,
            sec: Sec::$sec,
            section: $section,
            tags: &[$($tag),+],
            desc: $desc,
            run: $run,
        }
    };
}

// ---------------------------------------------------------------------------------
// generic bodies
// ---------------------------------------------------------------------------------

/// After the handshake, send what `make` builds: a connection error `code`.
fn conn_err(c: &mut Ctx<'_>, make: fn(&mut Session) -> R<Vec<u8>>, code: ErrorCode) -> R {
    let mut s = c.std()?;
    let bytes = make(&mut s)?;
    s.send(&bytes)?;
    Ok(s.expect_close(code))
}

/// After the handshake, send what `make` builds and a probe DATA: the packet error
/// `code` about the header `make` returns, then the echo of the probe.
/// Builds a packet to discard and the header its ERROR must embed.
type MakeBad = fn(&mut Session) -> R<(Vec<u8>, Vec<u8>)>;

fn pkt_err(c: &mut Ctx<'_>, make: MakeBad, code: ErrorCode) -> R {
    let mut s = c.std()?;
    let (mut bytes, header) = make(&mut s)?;
    let probe = vec![0xA5; 8];
    s.take_credit(&[probe.len()])?;
    bytes.extend(data(9, 77, &probe));
    s.send(&bytes)?;
    let sent = Sent {
        payload: probe,
        service: 9,
        channel: 77,
        never: false,
    };
    Ok(s.expect_packet_error(code, &header, &[sent]))
}

/// The handshake with an edited runner HELLO: a connection error `code`.
fn hello_err(c: &mut Ctx<'_>, edit: fn(&mut Hello<'static>), code: ErrorCode) -> R {
    let mut s = c.open(Plan::hello(edit))?;
    Ok(s.expect_close(code))
}

/// The handshake with an edited runner HELLO: accepted, the connection works.
fn hello_ok(c: &mut Ctx<'_>, edit: fn(&mut Hello<'static>)) -> R {
    let mut s = c.open(Plan::hello(edit))?;
    Ok(s.expect_alive(1))
}

/// The handshake with a raw HELLO payload: a connection error `code`.
fn hello_raw(c: &mut Ctx<'_>, make: fn(&Hello<'static>) -> Vec<u8>, code: Option<ErrorCode>) -> R {
    let ours = super::session::runner_hello(c.role);
    let mut s = c.open(Plan {
        hello: HelloPlan::Payload(make(&ours)),
        ..Plan::default()
    })?;
    Ok(match code {
        Some(code) => s.expect_close(code),
        None => s.expect_alive(2),
    })
}

fn hello_bytes(h: &Hello<'_>) -> Vec<u8> {
    super::session::hello_payload(h)
}

/// A DATA packet to destination 0 with its first header bytes edited.
fn bad_data(byte0_or: u8, byte1_or: u8) -> Vec<u8> {
    let mut d = data(1, 1, b"fault");
    d[0] |= byte0_or;
    d[1] |= byte1_or;
    d
}

fn ping_packet() -> Vec<u8> {
    control(Control::Ping(Ping {
        id: 7,
        timestamp: 8,
    }))
}

/// A DATA packet with a route and an optional source.
fn routed(route: Route, source: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut h = Header::data(route, payload.len() as u16);
    h.source = source;
    packet(&h, payload)
}

fn header_of(bytes: &[u8]) -> Vec<u8> {
    let len = if bytes[1] & 0x80 != 0 { 10 } else { 8 };
    bytes[..len].to_vec()
}

fn compressed(codec: Codec, route: Route, wire: &[u8]) -> Vec<u8> {
    let mut h = Header::data(route, wire.len() as u16);
    h.codec = codec;
    packet(&h, wire)
}

fn announced(s: &Session, codec: Codec) -> R<()> {
    if s.th.codecs & codec.hello_bit() == 0 {
        return Err(unsupported(format!(
            "the testee did not announce {}",
            codec.name()
        )));
    }
    Ok(())
}

fn goaway(code: ErrorCode, reason: &str) -> Vec<u8> {
    control(Control::Goaway(Goaway {
        code,
        delivered: 0,
        reason,
    }))
}

fn error_report(
    code: ErrorCode,
    header: &[u8],
    reason: &str,
    route: Route,
    source: Option<u16>,
) -> Vec<u8> {
    let mut out = Vec::new();
    Control::Error(ErrorReport {
        code,
        header,
        reason,
    })
    .encode_routed(route, source, &mut out);
    out
}

/// A compressible payload (text-like, ratio about 3 to 5).
fn text(len: usize, seed: u64) -> Vec<u8> {
    let words: [&[u8]; 8] = [
        b"fleet ", b"wire ", b"packet ", b"node ", b"proxy ", b"credit ", b"route ", b"zone ",
    ];
    let mut rng = crate::Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(words[usize::from(rng.byte()) % words.len()]);
    }
    out.truncate(len);
    out
}

/// A snappy raw block that decompresses to exactly `n` bytes and is exactly `wire`
/// bytes long, when one exists (a literal, then copies of offset 1).
fn snappy_exact(n: usize, wire: usize) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut v = n as u64;
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            head.push(b);
            break;
        }
        head.push(b | 0x80);
    }
    // literal of k bytes (k ≤ 60: one tag byte), then c copy-2 elements (3 bytes each,
    // 1..=64 bytes of output each)
    for c in 0..=n {
        for k in 1..=60usize.min(n) {
            if head.len() + 1 + k + 3 * c != wire {
                continue;
            }
            let rest = n - k;
            if (c == 0 && rest != 0) || rest < c || rest > 64 * c {
                continue;
            }
            let mut out = head.clone();
            out.push(((k - 1) as u8) << 2);
            out.extend(std::iter::repeat_n(b'a', k));
            let mut left = rest;
            for i in 0..c {
                let take = (left - (c - i - 1)).min(64);
                out.push((((take - 1) as u8) << 2) | 0b10);
                out.extend_from_slice(&1u16.to_le_bytes());
                left -= take;
            }
            return Some(out);
        }
        if head.len() + 1 + 3 * c > wire {
            break;
        }
    }
    None
}

/// Incompressible bytes followed by zeros, zlib-compressed: about `n / ratio` bytes of
/// wire for `n` of output, so that the size term of the cap binds.
fn zlib_low_ratio(n: usize, random: usize, seed: u64) -> Vec<u8> {
    let mut rng = crate::Rng::new(seed);
    let mut plain: Vec<u8> = (0..random.min(n)).map(|_| rng.byte()).collect();
    plain.resize(n, 0);
    zlib(&plain)
}

/// The expected cap error for a payload of `wire` bytes whose output exceeds the cap.
fn cap_code(h: &Hello<'_>, wire: usize) -> ErrorCode {
    if u64::from(h.max_decompressed) <= u64::from(h.max_ratio) * wire as u64 {
        ErrorCode::DECOMPRESSED_TOO_LARGE
    } else {
        ErrorCode::RATIO_EXCEEDED
    }
}

/// A compressed DATA whose output is exactly the testee's size cap (`plus` 0) or one
/// byte more (`plus` 1), with a wire length that makes the size term bind.
fn size_cap(s: &mut Session, codec: Codec, plus: usize) -> R<(Vec<u8>, usize)> {
    announced(s, codec)?;
    let h = s.th;
    let n = h.max_decompressed as usize + plus;
    let ratio = usize::from(h.max_ratio);
    // wire length w with ratio × w ≥ max_decompressed + 1
    let min_wire = (h.max_decompressed as usize + 1).div_ceil(ratio) + 8;
    let wire = match codec {
        Codec::Snappy => {
            // a copy element yields at most 64 bytes for 3: the shortest block is longer
            let shortest = 8 + 3 * n.div_ceil(64);
            let from = min_wire.max(shortest);
            (from..from + 64).find_map(|w| snappy_exact(n, w))
        }
        _ => {
            let mut random = min_wire;
            let mut found = None;
            for _ in 0..40 {
                let z = zlib_low_ratio(n, random, s.th.node_id.into());
                if z.len() * ratio > h.max_decompressed as usize {
                    found = Some(z);
                    break;
                }
                random += random / 4 + 16;
            }
            found
        }
    };
    let Some(wire) = wire.filter(|w| w.len() <= usize::from(h.max_payload)) else {
        return Err(unsupported(
            "no payload within the testee's max_payload reaches its size cap",
        ));
    };
    let len = wire.len();
    Ok((compressed(codec, Route::new(0, 1, 3), &wire), len))
}

/// zlib of `k` random bytes then zeros, `n` bytes in all, exactly `wire` bytes long.
fn zlib_exact(n: usize, wire: usize, seed: u64) -> Option<Vec<u8>> {
    let base = zlib(&vec![0u8; n]).len();
    if base > wire {
        return None;
    }
    for salt in 0..4 {
        for k in (wire - base).saturating_sub(40)..=(wire - base + 20).min(n) {
            let z = zlib_low_ratio(n, k, seed + salt);
            if z.len() == wire {
                return Some(z);
            }
        }
    }
    None
}

/// A DATA whose output is exactly the testee's ratio cap (`plus` 0) or one byte more,
/// below its size cap: snappy when its ratio allows, else zlib.
fn ratio_cap(s: &mut Session, codec: Codec, plus: usize) -> R<Vec<u8>> {
    announced(s, codec)?;
    let h = s.th;
    let ratio = usize::from(h.max_ratio);
    for w in (24..600usize).step_by(7) {
        let n = ratio * w + plus;
        if n + 1 > h.max_decompressed as usize || w > usize::from(h.max_payload) {
            break;
        }
        let p = match codec {
            Codec::Snappy => snappy_exact(n, w),
            _ => zlib_exact(n, w, u64::from(h.node_id)),
        };
        if let Some(p) = p {
            return Ok(compressed(codec, Route::new(0, 1, 4), &p));
        }
    }
    Err(unsupported(format!(
        "no {} payload reaches the testee's ratio cap below its size cap",
        codec.name()
    )))
}

// ---------------------------------------------------------------------------------
// floods
// ---------------------------------------------------------------------------------

/// The longest run of empty DATA the undeclared probe sends.
const EMPTY_PROBE: usize = 1024;

/// `flood.empty-over-limit` when the testee's `max_empty_run` is not declared (§11: a
/// local limit, in no HELLO, anything from 32 up): a run of empty DATA as long as the
/// credit allows (at most [`EMPTY_PROBE`]) in one write. A testee whose limit is below the
/// run closes with FLOOD; one that echoes all of it has a limit at least that long or
/// counts nothing, which the runner cannot tell apart: UNSUPPORTED. (That FLOOD does not
/// come at 32 or earlier is `flood.empty-32`'s.)
fn empty_run_probe(s: &mut Session) -> Outcome {
    let n = EMPTY_PROBE.min(usize::try_from(s.credit.0).unwrap_or(usize::MAX));
    if n <= 32 {
        return unsupported(format!(
            "the testee granted credit for {n} packets, too few to exceed any max_empty_run"
        ));
    }
    if let Err(o) = s.send_data(6, 0, &vec![Vec::new(); n]) {
        return o;
    }
    let deadline = s.deadline();
    let mut c = Closing::default();
    let mut echoes = 0;
    loop {
        match s.next(deadline) {
            Event::Packet(p, t) if p.header.kind == Kind::Goaway => {
                match Goaway::parse(&p.payload) {
                    Ok(g) => c.goaways.push((g.code, g.delivered, t)),
                    Err(_) => c.others.push(p),
                }
            }
            Event::Packet(p, _) => {
                if p.header.kind == Kind::Data && c.goaways.is_empty() {
                    echoes += 1;
                    if echoes == n {
                        return unsupported(format!(
                            "no FLOOD after {n} consecutive empty DATA, all echoed: the testee's \
                             max_empty_run is at least {n}, or it counts nothing; declare it \
                             (--max-empty-run) to grade it"
                        ));
                    }
                }
            }
            Event::Closed => {
                c.closed_at = Some(Instant::now());
                break;
            }
            Event::Timeout => break,
            Event::Garbage(_, e) => {
                c.garbage = Some(e);
                c.closed_at = Some(Instant::now());
                break;
            }
        }
    }
    grade_close(&c, ErrorCode::FLOOD, s.timeout)
}

// ---------------------------------------------------------------------------------
// TLS records
// ---------------------------------------------------------------------------------

/// How many small DATA `tls.grouping` sends in one write.
const GROUP_BURST: usize = 64;

/// §10.3 `[[tls.grouping]]`: a burst of [`GROUP_BURST`] small DATA in one write (the
/// runner's TLS puts it in one record), then their echoes. The runner counts the
/// application-data records the testee wrote meanwhile from their plaintext headers on
/// the raw stream: about one record per packet (at least half as many records as
/// packets) is NON-STRICT. How many writes carried them cannot be seen apart from the
/// records (TCP joins and splits segments).
fn tls_grouping(c: &mut Ctx<'_>) -> R {
    let mut s = c.std()?;
    // a round trip first: the post-handshake records (session tickets) are behind us
    if let o @ Outcome::Deviation { .. } = s.expect_alive(41) {
        return Ok(o);
    }
    let payloads: Vec<Vec<u8>> = (0..GROUP_BURST as u64).map(|i| c.bytes(16, i)).collect();
    let sent = s.send_data(6, 4, &payloads)?;
    let (records0, packets0) = (s.wire.records.application, s.wire.packets);
    if let o @ Outcome::Deviation { .. } = s.expect_echoes(&sent) {
        return Ok(o);
    }
    let records = s.wire.records.application - records0;
    let packets = s.wire.packets - packets0;
    if records * 2 >= packets {
        return Ok(should(
            format!(
                "the testee sent {packets} packets (the echoes of {GROUP_BURST} DATA of 16 bytes \
                 that arrived in one record) in {records} TLS records: about one record per \
                 packet (§10.3 [[tls.grouping]])"
            ),
            format!(
                "many small packets per record: fewer than {} records",
                packets.div_ceil(2)
            ),
            format!("{records} records"),
        ));
    }
    Ok(Outcome::Ok)
}

// ---------------------------------------------------------------------------------
// timers
// ---------------------------------------------------------------------------------

/// Grace for a testee's timer to fire and its GOAWAY to arrive.
fn grace(t: Duration) -> Duration {
    t / 4 + Duration::from_millis(200)
}

fn too_long(c: &Ctx<'_>, t: Duration) -> R<()> {
    if t > c.opts.max_wait {
        return Err(unsupported(format!(
            "the timer ({} ms) is longer than --max-wait ({} ms)",
            t.as_millis(),
            c.opts.max_wait.as_millis()
        )));
    }
    Ok(())
}

/// The gap between trickled bytes: three of them within 3/4 of the timer, each well
/// within the testee's idle timeout.
fn trickle_gap(s: &Session, t: Duration) -> Duration {
    let g = t / 4;
    match s.th.idle_timeout_ms {
        0 => g,
        idle => g.min(Duration::from_millis(u64::from(idle) / 3)),
    }
}

/// A TIMEOUT close: GOAWAY TIMEOUT not before `t0 + t`, and by `t0 + t + grace`.
fn expect_timeout(s: &mut Session, t0: Instant, t: Duration) -> Outcome {
    let c = s.until_close(t0 + t + grace(t));
    let outcome = grade_close(&c, ErrorCode::TIMEOUT, t + grace(t));
    if let Some((_, _, at)) = c.goaways.iter().find(|g| g.0 == ErrorCode::TIMEOUT) {
        let elapsed = at.saturating_duration_since(t0);
        if elapsed + Duration::from_millis(2) < t {
            return must(
                format!(
                    "TIMEOUT after {} ms, before the timer of {} ms expired (§6.5 [[timeout.boundary]])",
                    elapsed.as_millis(),
                    t.as_millis()
                ),
                format!("GOAWAY TIMEOUT at ≥ {} ms", t.as_millis()),
                format!("at {} ms", elapsed.as_millis()),
            );
        }
    } else if c.goaways.is_empty() {
        if let Some(at) = c.closed_at {
            if at.saturating_duration_since(t0) + Duration::from_millis(2) < t {
                return must(
                    "closed before the timer expired (§6.5 [[timeout.boundary]])",
                    "TIMEOUT",
                    "early close",
                );
            }
        }
    }
    outcome
}

// ---------------------------------------------------------------------------------
// the catalogue
// ---------------------------------------------------------------------------------

#[allow(clippy::too_many_lines)]
pub(super) fn catalogue() -> Vec<Def> {
    vec![
        // ---- §3 preface ---------------------------------------------------------
        case!("preface.bad-byte", Both, Any, "3", ["preface.check", "close.on-error", "close.on-error-goaway"],
            "a preface with byte 1 changed: GOAWAY BAD_PREFACE, close",
            |c| {
                let mut p = PREFACE.to_vec();
                p[1] = b'f';
                let mut s = c.open(Plan { preface: Some(p), ..Plan::default() })?;
                Ok(s.expect_close(ErrorCode::BAD_PREFACE))
            }),
        case!("preface.bad-last-byte", Both, Any, "3", ["preface.check"],
            "a preface whose 8th byte (LF) is wrong: GOAWAY BAD_PREFACE",
            |c| {
                let mut p = PREFACE.to_vec();
                p[7] = b'\r';
                let mut s = c.open(Plan { preface: Some(p), ..Plan::default() })?;
                Ok(s.expect_close(ErrorCode::BAD_PREFACE))
            }),
        case!("preface.newline-translated", Both, Any, "3", ["preface.check"],
            "the preface with CR LF turned into LF (7 bytes, then HELLO): BAD_PREFACE",
            |c| {
                let p = PREFACE[..6].iter().copied().chain([b'\n']).collect();
                let mut s = c.open(Plan { preface: Some(p), ..Plan::default() })?;
                Ok(s.expect_close(ErrorCode::BAD_PREFACE))
            }),
        case!("preface.seven-bytes-then-wait", Both, Any, "3", ["preface.check", "err.incomplete"],
            "7 preface bytes, a pause, then the 8th and HELLO: no error before 8 bytes",
            |c| {
                let mut s = c.open(Plan { preface: Some(PREFACE[..7].to_vec()), hello: HelloPlan::None, read_hello: false, ..Plan::default() })?;
                let wait = (c.opts.timers.header / 3).min(Duration::from_millis(300));
                std::thread::sleep(wait);
                let mut rest = PREFACE[7..].to_vec();
                rest.extend(super::session::hello_packet(&s.ours));
                s.send(&rest)?;
                s.read_hello_pub()?;
                Ok(s.expect_alive(3))
            }),
        case!("preface.split-every-byte", Both, Any, "3", ["preface.check", "layer.split"],
            "preface and HELLO written one byte per write: accepted",
            |c| {
                let mut s = c.open(Plan { preface: Some(Vec::new()), hello: HelloPlan::None, read_hello: false, ..Plan::default() })?;
                let mut all = PREFACE.to_vec();
                all.extend(super::session::hello_packet(&s.ours));
                s.send_spread(&all, 1, Duration::from_millis(1))?;
                s.read_hello_pub()?;
                Ok(s.expect_alive(4))
            }),
        case!("preface.tls-record-on-plaintext", Both, Plain, "3", ["preface.misconfig", "preface.check"],
            "a TLS record (0x16 0x03 0x01 ...) where the preface belongs: BAD_PREFACE",
            |c| {
                let record = vec![0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00];
                let mut s = c.open(Plan { preface: Some(record), hello: HelloPlan::None, ..Plan::default() })?;
                Ok(s.expect_close(ErrorCode::BAD_PREFACE))
            }),
        // ---- §5.2 HELLO -----------------------------------------------------------
        case!("hello.length-27", Both, Any, "5.2", ["hello.length", "hello.fields"],
            "a HELLO payload of 27 bytes: BAD_HELLO",
            |c| hello_raw(c, |h| hello_bytes(h)[..27].to_vec(), Some(ErrorCode::BAD_HELLO))),
        case!("hello.length-1025", Both, Any, "5.2", ["hello.length", "hello.fields"],
            "a HELLO payload of 1025 bytes (zero extension bytes): BAD_HELLO",
            |c| hello_raw(c, |h| { let mut v = hello_bytes(h); v.resize(1025, 0); v }, Some(ErrorCode::BAD_HELLO))),
        case!("hello.length-1024", Both, Any, "5.2", ["hello.length", "hello.reserved"],
            "a HELLO payload of exactly 1024 bytes (zero extensions): accepted",
            |c| hello_raw(c, |h| { let mut v = hello_bytes(h); v.resize(1024, 0); v }, None)),
        case!("hello.extension-nonzero", Both, Any, "5.2", ["hello.reserved"],
            "HELLO extension bytes that are not zero: ignored",
            |c| hello_raw(c, |h| { let mut v = hello_bytes(h); v.extend([0xAB; 40]); v }, None)),
        case!("hello.flags-nonzero", Both, Any, "5.2", ["hello.reserved"],
            "HELLO hello_flags 0xFF: ignored",
            |c| hello_ok(c, |h| h.hello_flags = 0xFF)),
        case!("hello.codecs-reserved-bits", Both, Any, "5.2", ["hello.reserved"],
            "HELLO codecs with the reserved bits 2-7 set: ignored",
            |c| hello_ok(c, |h| h.codecs = 0xFF)),
        case!("hello.min-version-0", Both, Any, "5.2", ["hello.fields"],
            "HELLO min_version 0: BAD_HELLO",
            |c| hello_err(c, |h| h.min_version = 0, ErrorCode::BAD_HELLO)),
        case!("hello.min-above-max", Both, Any, "5.2", ["hello.fields"],
            "HELLO min_version 2, max_version 1: BAD_HELLO",
            |c| hello_err(c, |h| { h.min_version = 2; h.max_version = 1 }, ErrorCode::BAD_HELLO)),
        case!("hello.no-version-overlap", Both, Any, "6.2", ["neg.version", "hello.order"],
            "HELLO versions 2..3: UNSUPPORTED_VERSION",
            |c| hello_err(c, |h| { h.min_version = 2; h.max_version = 3 }, ErrorCode::UNSUPPORTED_VERSION)),
        case!("hello.version-range-1-9", Both, Any, "6.2", ["neg.version"],
            "HELLO versions 1..9: version 1 negotiated, the connection works",
            |c| hello_ok(c, |h| h.max_version = 9)),
        case!("hello.order-fields-before-version", Both, Any, "5.2", ["hello.order"],
            "HELLO versions 2..3 and max_ratio 0: BAD_HELLO (fields before version overlap)",
            |c| hello_err(c, |h| { h.min_version = 2; h.max_version = 3; h.max_ratio = 0 }, ErrorCode::BAD_HELLO)),
        case!("hello.role-0", Both, Any, "5.2", ["hello.fields"],
            "HELLO role 0: BAD_HELLO",
            |c| hello_raw(c, |h| { let mut v = hello_bytes(h); v[2] = 0; v }, Some(ErrorCode::BAD_HELLO))),
        case!("hello.role-4", Both, Any, "5.2", ["hello.fields"],
            "HELLO role 4: BAD_HELLO",
            |c| hello_raw(c, |h| { let mut v = hello_bytes(h); v[2] = 4; v }, Some(ErrorCode::BAD_HELLO))),
        case!("hello.client-with-node-id", Server, Any, "5.2", ["hello.fields", "hello.client-id"],
            "a client HELLO with node_id 7: BAD_HELLO",
            |c| hello_err(c, |h| h.node_id = 7, ErrorCode::BAD_HELLO)),
        case!("hello.node-id-0", Both, Any, "5.2", ["hello.fields", "hello.node-id"],
            "a node HELLO with node_id 0: BAD_HELLO",
            |c| hello_raw(c, |h| { let mut v = hello_bytes(h); v[2] = 2; v[4] = 0; v[5] = 0; v }, Some(ErrorCode::BAD_HELLO))),
        case!("hello.node-id-ffff", Both, Any, "5.2", ["hello.fields"],
            "a node HELLO with node_id 0xFFFF: BAD_HELLO",
            |c| hello_raw(c, |h| { let mut v = hello_bytes(h); v[2] = 2; v[4] = 0xFF; v[5] = 0xFF; v }, Some(ErrorCode::BAD_HELLO))),
        case!("hello.peer-id-ffff", Both, Any, "5.2", ["hello.fields"],
            "HELLO peer_id 0xFFFF: accepted (read as 0)",
            |c| hello_ok(c, |h| h.peer_id = 0xFFFF)),
        case!("hello.max-payload-1023", Both, Any, "5.2", ["hello.fields"],
            "HELLO max_payload 1023 (credit bytes 1023): BAD_HELLO",
            |c| hello_err(c, |h| { h.max_payload = 1023; h.initial_credit_bytes = 1023 }, ErrorCode::BAD_HELLO)),
        case!("hello.max-decompressed-1023", Both, Any, "5.2", ["hello.fields"],
            "HELLO max_decompressed 1023: BAD_HELLO",
            |c| hello_err(c, |h| h.max_decompressed = 1023, ErrorCode::BAD_HELLO)),
        case!("hello.max-decompressed-1024", Both, Any, "5.2", ["hello.fields"],
            "HELLO max_decompressed 1024 (the lower bound): accepted",
            |c| hello_ok(c, |h| h.max_decompressed = 1024)),
        case!("hello.max-decompressed-16m-plus-1", Both, Any, "5.2", ["hello.fields"],
            "HELLO max_decompressed 16,777,217: BAD_HELLO",
            |c| hello_err(c, |h| h.max_decompressed = 16_777_217, ErrorCode::BAD_HELLO)),
        case!("hello.max-decompressed-16m", Both, Any, "5.2", ["hello.fields"],
            "HELLO max_decompressed 16,777,216 (the upper bound): accepted",
            |c| hello_ok(c, |h| h.max_decompressed = 16_777_216)),
        case!("hello.max-ratio-0", Both, Any, "5.2", ["hello.fields"],
            "HELLO max_ratio 0: BAD_HELLO",
            |c| hello_err(c, |h| h.max_ratio = 0, ErrorCode::BAD_HELLO)),
        case!("hello.max-ratio-1", Both, Any, "5.2", ["hello.fields"],
            "HELLO max_ratio 1: accepted",
            |c| hello_ok(c, |h| h.max_ratio = 1)),
        case!("hello.credit-packets-0", Both, Any, "5.2", ["hello.fields"],
            "HELLO initial_credit_packets 0: BAD_HELLO",
            |c| hello_err(c, |h| h.initial_credit_packets = 0, ErrorCode::BAD_HELLO)),
        case!("hello.credit-packets-1m-plus-1", Both, Any, "5.2", ["hello.fields"],
            "HELLO initial_credit_packets 1,048,577: BAD_HELLO",
            |c| hello_err(c, |h| h.initial_credit_packets = 1_048_577, ErrorCode::BAD_HELLO)),
        case!("hello.credit-packets-1", Both, Any, "5.2", ["hello.fields", "flow.send"],
            "HELLO initial_credit_packets 1: accepted, the testee sends one DATA at a time",
            |c| hello_ok(c, |h| h.initial_credit_packets = 1)),
        case!("hello.credit-bytes-below-max-payload", Both, Any, "5.2", ["hello.fields"],
            "HELLO initial_credit_bytes one below its max_payload: BAD_HELLO",
            |c| hello_err(c, |h| h.initial_credit_bytes = u32::from(h.max_payload) - 1, ErrorCode::BAD_HELLO)),
        case!("hello.credit-bytes-2g", Both, Any, "5.2", ["hello.fields"],
            "HELLO initial_credit_bytes 2^31: BAD_HELLO",
            |c| hello_err(c, |h| h.initial_credit_bytes = 1 << 31, ErrorCode::BAD_HELLO)),
        case!("hello.idle-999", Both, Any, "5.2", ["hello.fields"],
            "HELLO idle_timeout_ms 999: BAD_HELLO",
            |c| hello_err(c, |h| h.idle_timeout_ms = 999, ErrorCode::BAD_HELLO)),
        case!("hello.header-version-2", Both, Any, "4.2", ["hdr.version"],
            "a HELLO whose header Version is 2: UNSUPPORTED_VERSION",
            |c| {
                let mut s = c.open(Plan { hello: HelloPlan::None, ..Plan::default() })?;
                let mut h = super::session::hello_packet(&s.ours);
                h[0] = (h[0] & 0x0F) | 0x20;
                s.send(&h)?;
                Ok(s.expect_close(ErrorCode::UNSUPPORTED_VERSION))
            }),
        // ---- §4 header ------------------------------------------------------------
        case!("header.reserved-bit-2", Both, Any, "4.8", ["hdr.reserved", "close.on-error", "close.on-error-goaway"],
            "DATA with R bit 0x04: GOAWAY RESERVED_BIT",
            |c| conn_err(c, |_| Ok(bad_data(0, 0x04)), ErrorCode::RESERVED_BIT)),
        case!("header.reserved-bit-3", Both, Any, "4.8", ["hdr.reserved"],
            "DATA with R bit 0x08: GOAWAY RESERVED_BIT",
            |c| conn_err(c, |_| Ok(bad_data(0, 0x08)), ErrorCode::RESERVED_BIT)),
        case!("header.unknown-kind-7", Both, Any, "4.3", ["hdr.kind"],
            "a packet of kind 7: GOAWAY UNKNOWN_KIND",
            |c| conn_err(c, |_| Ok(bad_data(0x07, 0)), ErrorCode::UNKNOWN_KIND)),
        case!("header.unknown-kind-15", Both, Any, "4.3", ["hdr.kind"],
            "a packet of kind 15: GOAWAY UNKNOWN_KIND",
            |c| conn_err(c, |_| Ok(bad_data(0x0F, 0)), ErrorCode::UNKNOWN_KIND)),
        case!("header.version-0", Both, Any, "4.2", ["hdr.version"],
            "DATA with Version 0: GOAWAY UNSUPPORTED_VERSION",
            |c| conn_err(c, |_| { let mut d = bad_data(0, 0); d[0] &= 0x0F; Ok(d) }, ErrorCode::UNSUPPORTED_VERSION)),
        case!("header.version-2", Both, Any, "4.2", ["hdr.version"],
            "DATA with Version 2: GOAWAY UNSUPPORTED_VERSION",
            |c| conn_err(c, |_| { let mut d = bad_data(0, 0); d[0] = 0x20; Ok(d) }, ErrorCode::UNSUPPORTED_VERSION)),
        case!("header.codec-3", Both, Any, "4.4", ["hdr.codec-reserved"],
            "DATA with Cod = 3: GOAWAY BAD_FLAGS",
            |c| conn_err(c, |_| Ok(bad_data(0, 0x30)), ErrorCode::BAD_FLAGS)),
        case!("header.never-compress-with-codec", Both, Any, "4.4", ["hdr.never-compress"],
            "DATA with N = 1 and Cod = snappy: GOAWAY BAD_FLAGS",
            |c| conn_err(c, |_| Ok(bad_data(0, 0x50)), ErrorCode::BAD_FLAGS)),
        case!("header.control-codec", Both, Any, "4.4", ["hdr.control-flags"],
            "a PING with Cod = zlib: GOAWAY BAD_FLAGS",
            |c| conn_err(c, |_| { let mut p = ping_packet(); p[1] |= 0x20; Ok(p) }, ErrorCode::BAD_FLAGS)),
        case!("header.control-never-compress", Both, Any, "4.4", ["hdr.control-flags"],
            "a PING with N = 1: GOAWAY BAD_FLAGS",
            |c| conn_err(c, |_| { let mut p = ping_packet(); p[1] |= 0x40; Ok(p) }, ErrorCode::BAD_FLAGS)),
        case!("header.control-ext", Both, Any, "4.7", ["hdr.control-ext"],
            "a PING with X = 1 (10-byte header): GOAWAY BAD_FLAGS",
            |c| conn_err(c, |_| {
                let p = ping_packet();
                let mut out = p[..8].to_vec();
                out[1] |= 0x80;
                out.extend([0, 5]);
                out.extend_from_slice(&p[8..]);
                Ok(out)
            }, ErrorCode::BAD_FLAGS)),
        case!("header.control-route-node", Both, Any, "4.6", ["hdr.control-route"],
            "a PING with Destination Node 5: GOAWAY BAD_CONTROL",
            |c| conn_err(c, |_| { let mut p = ping_packet(); p[5] = 5; Ok(p) }, ErrorCode::BAD_CONTROL)),
        case!("header.control-route-service", Both, Any, "4.6", ["hdr.control-route"],
            "a CREDIT with Service 1: GOAWAY BAD_CONTROL",
            |c| conn_err(c, |_| { let mut p = control(Control::Credit(Credit { packets: 1, bytes: 1 })); p[6] = 1; Ok(p) }, ErrorCode::BAD_CONTROL)),
        case!("header.control-route-channel", Both, Any, "4.6", ["hdr.control-route"],
            "a PING with Channel 1: GOAWAY BAD_CONTROL",
            |c| conn_err(c, |_| { let mut p = ping_packet(); p[7] = 1; Ok(p) }, ErrorCode::BAD_CONTROL)),
        case!("header.oversize", Both, Any, "4.5", ["hdr.length-max", "close.on-error", "close.on-error-goaway"],
            "a DATA header with Payload Length max_payload + 1 (no payload sent): GOAWAY PAYLOAD_TOO_LARGE",
            |c| conn_err(c, |s| {
                let Some(len) = s.th.max_payload.checked_add(1) else {
                    return Err(unsupported("the testee announced max_payload 65535: no larger length exists (its at-limit case runs)"));
                };
                Ok(packet(&Header::data(Route::new(0, 0, 1), len), &[]))
            }, ErrorCode::PAYLOAD_TOO_LARGE)),
        case!("header.at-max-payload", Both, Any, "4.5", ["hdr.length-max"],
            "DATA of exactly the testee's max_payload: accepted (its echo, too large for the runner, may be dropped)",
            |c| {
                let mut s = c.std()?;
                let len = usize::from(s.th.max_payload);
                s.take_credit(&[len])?;
                let payload = c.bytes(len, 5);
                s.send(&data(1, 5, &payload))?;
                s.skip_echoes.push(payload);
                Ok(s.expect_alive(5))
            }),
        case!("header.hint-bits-ignored", Both, Any, "4.8", ["hdr.hint"],
            "DATA with both hint bits set: delivered (echoed)",
            |c| {
                let mut s = c.std()?;
                s.take_credit(&[6])?;
                let mut d = data(1, 6, b"hinted");
                d[1] |= 0x03;
                s.send(&d)?;
                Ok(s.expect_echoes(&[Sent { payload: b"hinted".to_vec(), service: 1, channel: 6, never: false }]))
            }),
        case!("header.order-version-first", Both, Any, "4.9", ["hdr.order"],
            "Version 2, kind 9, R bit and Cod 3 together: UNSUPPORTED_VERSION",
            |c| conn_err(c, |_| { let mut d = bad_data(0, 0x3C); d[0] = 0x29; Ok(d) }, ErrorCode::UNSUPPORTED_VERSION)),
        case!("header.order-kind-before-reserved", Both, Any, "4.9", ["hdr.order"],
            "kind 9 with an R bit: UNKNOWN_KIND",
            |c| conn_err(c, |_| Ok(bad_data(0x09, 0x04)), ErrorCode::UNKNOWN_KIND)),
        case!("header.order-reserved-before-codec", Both, Any, "4.9", ["hdr.order"],
            "an R bit with Cod = 3: RESERVED_BIT",
            |c| conn_err(c, |_| Ok(bad_data(0, 0x3C)), ErrorCode::RESERVED_BIT)),
        case!("header.order-ext-before-route", Both, Any, "4.9", ["hdr.order"],
            "a PING with X = 1 and a non-zero route: BAD_FLAGS before BAD_CONTROL",
            |c| conn_err(c, |_| {
                let p = ping_packet();
                let mut out = p[..8].to_vec();
                out[1] |= 0x80;
                out[5] = 3;
                out.extend([0, 5]);
                out.extend_from_slice(&p[8..]);
                Ok(out)
            }, ErrorCode::BAD_FLAGS)),
        case!("header.order-header-before-state", Both, Any, "6.3", ["state.order"],
            "a second HELLO with an R bit: RESERVED_BIT (header checks before state checks)",
            |c| conn_err(c, |s| { let mut h = super::session::hello_packet(&s.ours); h[1] |= 0x04; Ok(h) }, ErrorCode::RESERVED_BIT)),
        // ---- §6.3 states --------------------------------------------------------
        case!("state.second-hello", Both, Any, "6.3", ["state.permitted", "close.on-error", "close.on-error-goaway"],
            "a second HELLO: GOAWAY UNEXPECTED_PACKET",
            |c| conn_err(c, |s| Ok(super::session::hello_packet(&s.ours)), ErrorCode::UNEXPECTED_PACKET)),
        case!("state.data-before-hello", Both, Any, "6.3", ["state.permitted"],
            "preface, then DATA instead of HELLO: GOAWAY UNEXPECTED_PACKET",
            |c| {
                let mut s = c.open(Plan { hello: HelloPlan::None, ..Plan::default() })?;
                s.send(&data(1, 1, b"early"))?;
                Ok(s.expect_close(ErrorCode::UNEXPECTED_PACKET))
            }),
        case!("state.ping-before-hello", Both, Any, "6.3", ["state.permitted"],
            "preface, then PING instead of HELLO: GOAWAY UNEXPECTED_PACKET",
            |c| {
                let mut s = c.open(Plan { hello: HelloPlan::None, ..Plan::default() })?;
                s.send(&ping_packet())?;
                Ok(s.expect_close(ErrorCode::UNEXPECTED_PACKET))
            }),
        case!("state.credit-before-hello", Both, Any, "6.3", ["state.permitted"],
            "preface, then CREDIT instead of HELLO: GOAWAY UNEXPECTED_PACKET",
            |c| {
                let mut s = c.open(Plan { hello: HelloPlan::None, ..Plan::default() })?;
                s.send(&control(Control::Credit(Credit { packets: 1, bytes: 1 })))?;
                Ok(s.expect_close(ErrorCode::UNEXPECTED_PACKET))
            }),
        case!("state.goaway-before-hello", Both, Any, "6.4", ["close.answer", "state.permitted"],
            "preface, then GOAWAY NO_ERROR instead of HELLO: answered with GOAWAY NO_ERROR, close",
            |c| {
                let mut s = c.open(Plan { hello: HelloPlan::None, ..Plan::default() })?;
                s.send(&goaway(ErrorCode::NO_ERROR, ""))?;
                Ok(s.expect_close(ErrorCode::NO_ERROR))
            }),
        case!("state.data-after-own-goaway", Both, Any, "6.3", ["state.permitted", "close.answer"],
            "GOAWAY NO_ERROR then DATA: the DATA is never delivered (echoed); GOAWAY UNEXPECTED_PACKET, or the NO_ERROR answer if it came first",
            |c| {
                let mut s = c.std()?;
                let mut b = goaway(ErrorCode::NO_ERROR, "");
                s.take_credit(&[4])?;
                b.extend(data(1, 8, b"late"));
                s.send(&b)?;
                let cl = s.until_close(s.deadline());
                if cl.others.iter().any(|p| p.header.kind == Kind::Data) {
                    return Ok(must("DATA sent after the runner's GOAWAY was delivered (echoed) (§6.3)", "no echo", "echo"));
                }
                // the violation may arrive before or after the testee answers (§6.4)
                let codes: Vec<ErrorCode> = cl.goaways.iter().map(|g| g.0).collect();
                let code = if codes.contains(&ErrorCode::UNEXPECTED_PACKET) { ErrorCode::UNEXPECTED_PACKET } else { ErrorCode::NO_ERROR };
                Ok(grade_close(&cl, code, s.timeout))
            }),
        // ---- §5 control payloads ---------------------------------------------------
        case!("control.ping-15", Both, Any, "5.3", ["ctl.malformed"],
            "a PING of 15 bytes: BAD_CONTROL",
            |c| conn_err(c, |_| Ok(raw_control(Kind::Ping, &[1; 15])), ErrorCode::BAD_CONTROL)),
        case!("control.ping-17", Both, Any, "5.3", ["ctl.malformed"],
            "a PING of 17 bytes: BAD_CONTROL",
            |c| conn_err(c, |_| Ok(raw_control(Kind::Ping, &[1; 17])), ErrorCode::BAD_CONTROL)),
        case!("control.pong-19", Both, Any, "5.4", ["ctl.malformed"],
            "a PONG of 19 bytes: BAD_CONTROL",
            |c| conn_err(c, |_| Ok(raw_control(Kind::Pong, &[1; 19])), ErrorCode::BAD_CONTROL)),
        case!("control.pong-unknown-id", Both, Any, "5.4", ["pong.unknown"],
            "a PONG for an id never sent: ignored, the connection works",
            |c| {
                let mut s = c.std()?;
                s.send(&raw_control(Kind::Pong, &[0x5A; 20]))?;
                Ok(s.expect_alive(6))
            }),
        case!("control.credit-7", Both, Any, "5.6", ["ctl.malformed"],
            "a CREDIT of 7 bytes: BAD_CONTROL",
            |c| conn_err(c, |_| Ok(raw_control(Kind::Credit, &[0, 0, 0, 1, 0, 0, 1])), ErrorCode::BAD_CONTROL)),
        case!("control.credit-zero", Both, Any, "5.6", ["credit.zero", "close.on-error", "close.on-error-goaway"],
            "a CREDIT with both increments zero: BAD_CONTROL",
            |c| conn_err(c, |_| Ok(raw_control(Kind::Credit, &[0; 8])), ErrorCode::BAD_CONTROL)),
        case!("control.credit-packets-only", Both, Any, "5.6", ["credit.zero"],
            "a CREDIT of 1 packet and 0 bytes: accepted",
            |c| {
                let mut s = c.std()?;
                s.send(&control(Control::Credit(Credit { packets: 1, bytes: 0 })))?;
                Ok(s.expect_alive(7))
            }),
        case!("control.credit-at-max", Both, Any, "8", ["flow.overflow"],
            "CREDIT making the testee's outstanding credit exactly 2^32 - 1 packets and bytes: accepted",
            |c| {
                let mut s = c.std()?;
                let p = u32::MAX - s.ours.initial_credit_packets;
                let b = u32::MAX - s.ours.initial_credit_bytes;
                s.auto_grant = false;
                s.send(&control(Control::Credit(Credit { packets: p, bytes: b })))?;
                Ok(s.expect_alive(8))
            }),
        case!("control.credit-overflow-packets", Both, Any, "8", ["flow.overflow"],
            "CREDIT making the outstanding packet credit 2^32: FLOW_CONTROL",
            |c| conn_err(c, |s| {
                let p = u32::MAX - s.ours.initial_credit_packets + 1;
                Ok(control(Control::Credit(Credit { packets: p, bytes: 0 })))
            }, ErrorCode::FLOW_CONTROL)),
        case!("control.credit-overflow-bytes", Both, Any, "8", ["flow.overflow"],
            "CREDIT making the outstanding byte credit 2^32: FLOW_CONTROL",
            |c| conn_err(c, |s| {
                let b = u32::MAX - s.ours.initial_credit_bytes + 1;
                Ok(control(Control::Credit(Credit { packets: 0, bytes: b })))
            }, ErrorCode::FLOW_CONTROL)),
        case!("control.goaway-9", Both, Any, "5.5", ["ctl.malformed"],
            "a GOAWAY of 9 bytes: BAD_CONTROL",
            |c| conn_err(c, |_| Ok(raw_control(Kind::Goaway, &[0; 9])), ErrorCode::BAD_CONTROL)),
        case!("control.goaway-reason-257", Both, Any, "5.5", ["goaway.reason"],
            "a GOAWAY NO_ERROR with a 257-byte reason: BAD_CONTROL",
            |c| conn_err(c, |_| { let mut p = vec![0u8; 10]; p.extend([b'r'; 257]); Ok(raw_control(Kind::Goaway, &p)) }, ErrorCode::BAD_CONTROL)),
        case!("control.goaway-reason-256", Both, Any, "5.5", ["goaway.reason", "close.answer"],
            "a GOAWAY NO_ERROR with a 256-byte reason: valid, answered with GOAWAY NO_ERROR",
            |c| conn_err(c, |_| { let mut p = vec![0u8; 10]; p.extend([b'r'; 256]); Ok(raw_control(Kind::Goaway, &p)) }, ErrorCode::NO_ERROR)),
        case!("control.goaway-reason-not-utf8", Both, Any, "5.5", ["goaway.reason"],
            "a GOAWAY whose reason is not UTF-8: BAD_CONTROL",
            |c| conn_err(c, |_| { let mut p = vec![0u8; 10]; p.extend([0xC3, 0x28]); Ok(raw_control(Kind::Goaway, &p)) }, ErrorCode::BAD_CONTROL)),
        case!("control.error-short", Both, Any, "5.7", ["error.layout"],
            "an ERROR of 9 bytes (code and 7 header bytes): BAD_CONTROL",
            |c| conn_err(c, |_| Ok(raw_control_routed(Kind::Error, &[1, 0, 0x10, 0, 0, 0, 0, 0, 0]) ), ErrorCode::BAD_CONTROL)),
        case!("control.error-x-header-short", Both, Any, "5.7", ["error.layout"],
            "an ERROR whose embedded header has X = 1 but only 8 bytes follow the code: BAD_CONTROL",
            |c| conn_err(c, |_| Ok(raw_control_routed(Kind::Error, &[1, 0, 0x10, 0x80, 0, 0, 0, 0, 0, 0])), ErrorCode::BAD_CONTROL)),
        case!("control.error-reason-not-utf8", Both, Any, "5.7", ["error.layout"],
            "an ERROR whose reason is not UTF-8: BAD_CONTROL",
            |c| conn_err(c, |_| Ok(raw_control_routed(Kind::Error, &[1, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0xFF])), ErrorCode::BAD_CONTROL)),
        case!("control.error-unknown-code", Both, Any, "5.7", ["error.layout", "error.no-loop"],
            "an ERROR with an unknown code for the testee (destination 0): accepted, no ERROR back",
            |c| {
                let mut s = c.std()?;
                let h = data(1, 1, b"x");
                s.send(&error_report(ErrorCode(0x01F0), &h[..8], "why", Route::new(0, 0, 0), None))?;
                Ok(s.expect_alive(9))
            }),
        // ---- §5.3 PING ----------------------------------------------------------------
        case!("ping.answer", Both, Any, "5.3", ["ping.answer", "ping.order"],
            "PING then DATA in one write: PONG with the same id and timestamp, before the echo",
            |c| Ok({ let mut s = c.std()?; s.expect_alive(10) })),
        case!("ping.opaque-fields", Both, Any, "5.3", ["ping.answer"],
            "PING with id 0 and timestamp 2^64 - 1: the PONG copies both",
            |c| {
                let mut s = c.std()?;
                let ping = Ping { id: 0, timestamp: u64::MAX };
                s.send(&control(Control::Ping(ping)))?;
                Ok(s.expect_echoes_with(&[], &[(ping, 0)]))
            }),
        case!("ping.fifo", Both, Any, "5.3", ["ping.fifo", "ping.order"],
            "5 PINGs interleaved with DATA in one write: PONGs in order, each before later echoes",
            |c| {
                let mut s = c.std()?;
                let mut bytes = Vec::new();
                let mut sent = Vec::new();
                let mut pings = Vec::new();
                s.take_credit(&[3; 10])?;
                for i in 0..5u8 {
                    let (p, b) = s.ping_bytes();
                    pings.push((p, sent.len()));
                    bytes.extend(b);
                    for j in 0..2u8 {
                        let payload = vec![i, j, 0xEE];
                        bytes.extend(data(2, i * 2 + j, &payload));
                        sent.push(Sent { payload, service: 2, channel: i * 2 + j, never: false });
                    }
                }
                s.send(&bytes)?;
                Ok(s.expect_echoes_with(&sent, &pings))
            }),
        case!("ping.under-load", Both, Any, "5.3", ["ping.order", "ping.fifo"],
            "40 DATA, a PING, 40 DATA in one write: the PONG precedes the echoes of the last 40",
            |c| {
                let mut s = c.std()?;
                let payloads: Vec<Vec<u8>> = (0..80).map(|i| c.bytes(20, 100 + i)).collect();
                s.take_credit(&[20; 80])?;
                let (ping, pb) = s.ping_bytes();
                let mut bytes = Vec::new();
                for p in &payloads[..40] { bytes.extend(data(3, 1, p)); }
                bytes.extend(pb);
                for p in &payloads[40..] { bytes.extend(data(3, 1, p)); }
                s.send(&bytes)?;
                let sent: Vec<Sent> = payloads.into_iter().map(|payload| Sent { payload, service: 3, channel: 1, never: false }).collect();
                Ok(s.expect_echoes_with(&sent, &[(ping, 40)]))
            }),
        // ---- §6.4 shutdown --------------------------------------------------------------
        case!("goaway.answer", Both, Any, "6.4", ["close.answer", "goaway.delivered"],
            "GOAWAY NO_ERROR: answered with GOAWAY NO_ERROR (delivered 0), then close",
            |c| {
                let mut s = c.std()?;
                s.send(&goaway(ErrorCode::NO_ERROR, "conformance"))?;
                let cl = s.until_close(s.deadline());
                if let Some(g) = cl.goaways.first() {
                    if g.0 == ErrorCode::NO_ERROR && g.1 != 0 {
                        return Ok(must("the answer's delivered is not 0 (§5.5 [[goaway.delivered]])", "delivered 0", format!("delivered {}", g.1)));
                    }
                }
                Ok(grade_close(&cl, ErrorCode::NO_ERROR, s.timeout))
            }),
        case!("goaway.delivered", Both, Any, "5.5", ["goaway.delivered", "close.no-data-after"],
            "5 DATA then GOAWAY NO_ERROR in one write: the answer says delivered 5, no DATA after it",
            |c| {
                let mut s = c.std()?;
                s.take_credit(&[4; 5])?;
                let mut b = Vec::new();
                for i in 0..5u8 { b.extend(data(1, i, &[i; 4])); }
                b.extend(goaway(ErrorCode::NO_ERROR, ""));
                s.send(&b)?;
                let cl = s.until_close(s.deadline());
                match cl.goaways.first() {
                    Some(g) if g.0 == ErrorCode::NO_ERROR && g.1 != 5 => Ok(must("delivered does not count the DATA processed before the GOAWAY (§5.5 [[goaway.delivered]])", "delivered 5", format!("delivered {}", g.1))),
                    _ => Ok(grade_close(&cl, ErrorCode::NO_ERROR, s.timeout)),
                }
            }),
        case!("goaway.drain-timer", Both, Any, "6.4", ["close.answer-then-close"],
            "GOAWAY NO_ERROR and the runner keeps its side open: the testee closes by its drain timer",
            |c| {
                let t = c.opts.timers.drain;
                too_long(c, t)?;
                let mut s = c.std()?;
                s.send(&goaway(ErrorCode::NO_ERROR, ""))?;
                let t0 = Instant::now();
                let cl = s.until_close(t0 + t + grace(t));
                if cl.closed_at.is_none() {
                    return Ok(must(format!("still open {} ms after answering, past the drain timer of {} ms", (t + grace(t)).as_millis(), t.as_millis()), "close", "open"));
                }
                Ok(grade_close(&cl, ErrorCode::NO_ERROR, t))
            }),
        case!("goaway.end-of-stream", Both, Any, "6.4", ["close.answer-then-close"],
            "GOAWAY NO_ERROR, then the runner ends its stream: the testee closes at once",
            |c| {
                let mut s = c.std()?;
                s.send(&goaway(ErrorCode::NO_ERROR, ""))?;
                s.wire.shutdown_write();
                let wait = (c.opts.timers.drain / 2).max(Duration::from_millis(200));
                let cl = s.until_close(Instant::now() + wait.min(s.timeout));
                if cl.closed_at.is_none() {
                    return Ok(must("the testee did not close at the end of the runner's stream (§6.4 [[close.answer-then-close]])", "close", "open"));
                }
                Ok(grade_close(&cl, ErrorCode::NO_ERROR, s.timeout))
            }),
        case!("goaway.processes-received-input", Both, Any, "6.4", ["close.answer-drain"],
            "GOAWAY NO_ERROR then PING in one write: after answering, the PING is still answered (SHOULD)",
            |c| {
                let mut s = c.std()?;
                let mut b = goaway(ErrorCode::NO_ERROR, "");
                let (ping, pb) = s.ping_bytes();
                b.extend(pb);
                s.send(&b)?;
                let cl = s.until_close(s.deadline());
                let pong = cl.others.iter().any(|p| p.header.kind == Kind::Pong && fleetwire::control::Pong::parse(&p.payload).is_ok_and(|x| x.id == ping.id));
                match grade_close(&cl, ErrorCode::NO_ERROR, s.timeout) {
                    Outcome::Ok if !pong => Ok(should("closed without processing the PING received with the GOAWAY (§6.4 [[close.answer-drain]])", "PONG", "no PONG")),
                    o => Ok(o),
                }
            }),
        case!("goaway.error-code-not-answered", Both, Any, "6.4", ["close.answer"],
            "GOAWAY PROTOCOL_ERROR: the testee closes without a GOAWAY NO_ERROR answer",
            |c| {
                let mut s = c.std()?;
                s.send(&goaway(ErrorCode::PROTOCOL_ERROR, "runner"))?;
                let cl = s.until_close(s.deadline());
                if cl.goaways.iter().any(|g| g.0 == ErrorCode::NO_ERROR) {
                    return Ok(must("a GOAWAY with an error code was answered with GOAWAY NO_ERROR (§6.4)", "close", "GOAWAY NO_ERROR"));
                }
                if cl.closed_at.is_none() {
                    return Ok(must("the testee did not close after GOAWAY PROTOCOL_ERROR (§6.4)", "close", "open"));
                }
                Ok(Outcome::Ok)
            }),
        case!("goaway.unknown-code", Both, Any, "5.5", ["goaway.unknown-code"],
            "GOAWAY with the unknown code 0x7777: the testee closes as for any GOAWAY",
            |c| {
                let mut s = c.std()?;
                s.send(&goaway(ErrorCode(0x7777), ""))?;
                let cl = s.until_close(s.deadline());
                if cl.closed_at.is_none() {
                    return Ok(must("the testee did not close after a GOAWAY with an unknown code (§5.5)", "close", "open"));
                }
                if cl.goaways.iter().any(|g| g.0 != ErrorCode::NO_ERROR) {
                    return Ok(must("an unknown GOAWAY code was treated as an error", "close", format!("GOAWAY {}", cl.goaways[0].0)));
                }
                Ok(Outcome::Ok)
            }),
        case!("goaway.control-in-draining", Both, Any, "6.4", ["state.permitted", "close.answer"],
            "GOAWAY NO_ERROR then CREDIT and PONG: permitted in DRAINING, no error",
            |c| {
                let mut s = c.std()?;
                let mut b = goaway(ErrorCode::NO_ERROR, "");
                b.extend(control(Control::Credit(Credit { packets: 1, bytes: 1 })));
                b.extend(raw_control(Kind::Pong, &[3; 20]));
                s.send(&b)?;
                Ok(s.expect_close(ErrorCode::NO_ERROR))
            }),
        case!("goaway.twice", Both, Any, "6.4", ["close.on-error", "close.answer"],
            "two GOAWAY NO_ERROR: one answer only, then close",
            |c| {
                let mut s = c.std()?;
                let mut b = goaway(ErrorCode::NO_ERROR, "");
                b.extend(goaway(ErrorCode::NO_ERROR, "again"));
                s.send(&b)?;
                Ok(s.expect_close(ErrorCode::NO_ERROR))
            }),
        // ---- §8 flow control -------------------------------------------------------------
        case!("flow.packet-credit-respected", Both, Any, "8", ["flow.send"],
            "the runner grants 4 packets and sends 10 DATA: at most 4 echoes until it grants more, then the rest",
            |c| {
                let mut s = c.open(Plan::hello(|h| h.initial_credit_packets = 4))?;
                s.auto_grant = false;
                let payloads: Vec<Vec<u8>> = (0..10).map(|i| c.bytes(10, 200 + i)).collect();
                let sent = s.send_data(4, 1, &payloads)?;
                let quiet = s.expect_quiet(Duration::from_millis(300), "while waiting for credit")?;
                let echoes = quiet.iter().filter(|p| p.header.kind == Kind::Data).count();
                if echoes > 4 {
                    return Ok(must("more DATA than the runner's packet credit (§8 [[flow.send]])", "at most 4 echoes", format!("{echoes}")));
                }
                s.send(&control(Control::Credit(Credit { packets: 6, bytes: 0 })))?;
                s.auto_grant = true;
                Ok(s.expect_echoes(&sent[echoes..]))
            }),
        case!("flow.byte-credit-respected", Both, Any, "8", ["flow.send"],
            "the runner grants 1024 bytes and sends 5 DATA of 300: at most 3 echoes until it grants more",
            |c| {
                let mut s = c.open(Plan::hello(|h| h.initial_credit_bytes = 1024))?;
                s.auto_grant = false;
                let payloads: Vec<Vec<u8>> = (0..5).map(|i| c.bytes(300, 300 + i)).collect();
                let sent = s.send_data(4, 2, &payloads)?;
                let quiet = s.expect_quiet(Duration::from_millis(300), "while waiting for credit")?;
                let echoes = quiet.iter().filter(|p| p.header.kind == Kind::Data).count();
                if echoes > 3 {
                    return Ok(must("more DATA bytes than the runner's byte credit (§8 [[flow.send]])", "at most 3 echoes", format!("{echoes}")));
                }
                s.send(&control(Control::Credit(Credit { packets: 0, bytes: 4096 })))?;
                s.auto_grant = true;
                Ok(s.expect_echoes(&sent[echoes..]))
            }),
        case!("flow.exceed-packets", Both, Any, "8", ["flow.exceed"],
            "initial_credit_packets + 1 one-byte DATA in one write: FLOW_CONTROL (unless the testee granted more first)",
            |c| flow_exceed(c, false)),
        case!("flow.exceed-bytes", Both, Any, "8", ["flow.exceed"],
            "DATA totalling initial_credit_bytes + 1 in one write: FLOW_CONTROL (unless the testee granted more first)",
            |c| flow_exceed(c, true)),
        case!("flow.no-deadlock", Both, Any, "8", ["flow.no-deadlock", "flow.grant"],
            "the testee's whole packet window used and echoed: its CREDIT lets the runner send again",
            |c| {
                let mut s = c.std()?;
                let n = s.th.initial_credit_packets;
                if n > 4096 {
                    return Err(unsupported(format!("the testee grants {n} packets (more than 4096 to exhaust)")));
                }
                let mut sent = Vec::new();
                for i in 0..n {
                    let p = vec![(i % 251) as u8; 4];
                    sent.extend(s.send_data(5, 0, &[p])?);
                    if sent.len() >= 32 {
                        let o = s.expect_echoes(&sent);
                        if !matches!(o, Outcome::Ok) { return Ok(o); }
                        sent.clear();
                    }
                }
                let o = s.expect_echoes(&sent);
                if !matches!(o, Outcome::Ok) { return Ok(o); }
                let max = usize::from(s.th.max_payload);
                let deadline = s.deadline();
                while !s.has_credit(max) {
                    match s.next(deadline) {
                        Event::Packet(..) => {}
                        _ => return Ok(must("after its window was used and consumed, the testee's credit does not allow one packet of max_payload (§8 [[flow.no-deadlock]])", "CREDIT", format!("{:?} left", s.credit))),
                    }
                }
                Ok(Outcome::Ok)
            }),
        case!("flow.x-before-credit", Server, Any, "6.3", ["state.order", "src.forbid"],
            "from a client, X = 1 on the DATA that exceeds the credit: SOURCE_FORGED before FLOW_CONTROL",
            |c| {
                let mut s = c.open(Plan::hello(|h| h.initial_credit_packets = 1))?;
                let n = s.th.initial_credit_packets as usize;
                if n > 4096 { return Err(unsupported("the testee grants more than 4096 packets")); }
                let mut b = Vec::new();
                for _ in 0..n { b.extend(data(1, 1, b"c")); }
                b.extend(routed(Route::new(0, 1, 1), Some(5), b"x"));
                s.send(&b)?;
                Ok(s.expect_close(ErrorCode::SOURCE_FORGED))
            }),
        // ---- §7.4 source ---------------------------------------------------------------
        case!("source.x-from-client", Server, Any, "7.4", ["src.forbid"],
            "DATA with X = 1 from a client: SOURCE_FORGED",
            |c| conn_err(c, |_| Ok(routed(Route::new(0, 1, 1), Some(5), b"forged")), ErrorCode::SOURCE_FORGED)),
        case!("source.x-error-from-client", Server, Any, "7.4", ["src.forbid"],
            "an ERROR with X = 1 from a client: SOURCE_FORGED",
            |c| conn_err(c, |_| { let h = data(1, 1, b"x"); Ok(error_report(ErrorCode::NO_ROUTE, &h[..8], "", Route::new(0, 0, 0), Some(5))) }, ErrorCode::SOURCE_FORGED)),
        case!("source.x-from-node", Both, Any, "7.4", ["src.forbid", "src.auth"],
            "DATA with X = 1 from a node: SOURCE_FORGED (a server that takes nodes only when authenticated or configured refuses the node HELLO: BAD_HELLO)",
            |c| {
                needs_no_auth(c)?;
                let mut s = c.open(Plan::hello(|h| { h.role = Role::Node; h.node_id = 40; }))?;
                if refuses_unconfigured_nodes(c) {
                    return Ok(s.expect_close(ErrorCode::BAD_HELLO));
                }
                s.send(&routed(Route::new(0, 1, 1), Some(5), b"forged"))?;
                Ok(s.expect_close(ErrorCode::SOURCE_FORGED))
            }),
        case!("source.x-from-unauthenticated-proxy", Both, Any, "7.4", ["src.trust", "src.auth"],
            "DATA with X = 1 from a proxy the testee did not authenticate: SOURCE_FORGED (a server refuses the proxy HELLO first where the spec requires authentication; a client honours X from its server where the spec says so)",
            |c| {
                needs_no_auth(c)?;
                let mut s = c.open(Plan::hello(|h| { h.role = Role::Proxy; h.node_id = 41; }))?;
                if refuses_unconfigured_nodes(c) {
                    return Ok(s.expect_close(ErrorCode::BAD_HELLO));
                }
                s.take_credit(&[6])?;
                s.send(&routed(Route::new(0, 1, 1), Some(5), b"source"))?;
                if c.role == super::PeerRole::Client && client_trusts_server() {
                    // §7.4 [[src.client-trusts-server]]: delivered from node 5
                    return Ok(s.expect_echoes(&[Sent { payload: b"source".to_vec(), service: 1, channel: 1, never: false }]));
                }
                Ok(s.expect_close(ErrorCode::SOURCE_FORGED))
            }),
        case!("source.proxy-without-x", Both, Any, "7.4", ["src.trust", "src.forbid"],
            "DATA with X = 0 from an unauthenticated proxy: accepted, the source is the proxy's id (BAD_HELLO from a server where the spec requires authentication)",
            |c| {
                needs_no_auth(c)?;
                if refuses_unconfigured_nodes(c) {
                    return hello_err(c, |h| { h.role = Role::Proxy; h.node_id = 42; }, ErrorCode::BAD_HELLO);
                }
                hello_ok(c, |h| { h.role = Role::Proxy; h.node_id = 42; })
            }),
        // ---- §7 routing, §12 errors -----------------------------------------------------
        case!("route.no-route", Both, Any, "7.3", ["route.no-route", "error.route", "error.layout"],
            "DATA for node 77 (the testee is not a proxy): ERROR NO_ROUTE with the header, to the runner; the connection works",
            |c| pkt_err(c, |s| { s.take_credit(&[2])?; let d = routed(Route::new(77, 1, 2), None, b"nr"); let h = header_of(&d); Ok((d, h)) }, ErrorCode::NO_ROUTE)),
        case!("route.dest-ffff", Both, Any, "7.3", ["route.no-route"],
            "DATA for node 0xFFFF: ERROR NO_ROUTE",
            |c| pkt_err(c, |s| { s.take_credit(&[2])?; let d = routed(Route::new(0xFFFF, 1, 2), None, b"nr"); let h = header_of(&d); Ok((d, h)) }, ErrorCode::NO_ROUTE)),
        case!("route.own-id", Both, Any, "7.2", ["state.data-order"],
            "DATA for the testee's own id (a node's node_id; a client's peer_id from the runner): delivered",
            |c| {
                let mut s = c.std()?;
                let own = if c.role == super::PeerRole::Client { CLIENT_ID } else { s.th.node_id };
                s.take_credit(&[3])?;
                s.send(&routed(Route::new(own, 1, 3), None, b"own"))?;
                Ok(s.expect_echoes(&[Sent { payload: b"own".to_vec(), service: 1, channel: 3, never: false }]))
            }),
        case!("route.error-unroutable-silent", Both, Any, "5.7", ["error.no-loop"],
            "an ERROR for node 77: discarded silently (no ERROR about an ERROR), the connection works",
            |c| {
                let mut s = c.std()?;
                let h = data(1, 1, b"x");
                s.send(&error_report(ErrorCode::NO_ROUTE, &h[..8], "", Route::new(77, 0, 0), None))?;
                let seen = s.expect_quiet(Duration::from_millis(150), "after an unroutable ERROR")?;
                if seen.iter().any(|p| p.header.kind == Kind::Error) {
                    return Ok(must("an ERROR about an ERROR (§5.7 [[error.no-loop]])", "nothing", "ERROR"));
                }
                Ok(s.expect_alive(11))
            }),
        case!("route.no-service", Both, Any, "7.2", ["route.no-service"],
            "DATA for a service the testee does not register (--unregistered-service): ERROR NO_SERVICE",
            |c| {
                let Some(svc) = c.opts.unregistered_service else {
                    return Err(unsupported("no --unregistered-service given"));
                };
                let mut s = c.std()?;
                s.take_credit(&[2])?;
                let d = routed(Route::new(0, svc, 2), None, b"ns");
                let h = header_of(&d);
                let mut b = d;
                let probe = vec![0xA5; 8];
                s.take_credit(&[8])?;
                b.extend(data(9, 77, &probe));
                s.send(&b)?;
                Ok(s.expect_packet_error(ErrorCode::NO_SERVICE, &h, &[Sent { payload: probe, service: 9, channel: 77, never: false }]))
            }),
        case!("route.order-route-before-codec", Both, Any, "6.3", ["state.data-order"],
            "DATA for node 77 with a malformed zlib payload: NO_ROUTE (routing is checked before decompression)",
            |c| pkt_err(c, |s| { s.take_credit(&[3])?; let d = compressed(Codec::Zlib, Route::new(77, 1, 2), &[1, 2, 3]); let h = header_of(&d); Ok((d, h)) }, ErrorCode::NO_ROUTE)),
        case!("budget.errors-at-limit", Both, Any, "12.3", ["err.budget"],
            "max_packet_errors DATA for node 77: as many ERRORs, the connection stays open",
            |c| budget(c, 0, false)),
        case!("budget.errors-over-limit", Both, Any, "12.3", ["err.budget"],
            "max_packet_errors + 1 DATA for node 77: TOO_MANY_ERRORS, no ERROR for the last one",
            |c| budget(c, 1, false)),
        case!("budget.silent-errors-count", Both, Any, "12.3", ["err.budget", "error.no-loop"],
            "max_packet_errors + 1 ERRORs for node 77 (discarded silently): TOO_MANY_ERRORS",
            |c| budget(c, 1, true)),
        // ---- §9.3 compression: receiving ---------------------------------------------------
        case!("compress.snappy.valid", Both, Any, "9.3", ["comp.cap", "layer.split"],
            "a valid snappy DATA: delivered decompressed (echoed)",
            |c| comp_valid(c, Codec::Snappy)),
        case!("compress.zlib.valid", Both, Any, "9.3", ["comp.cap"],
            "a valid zlib DATA: delivered decompressed (echoed)",
            |c| comp_valid(c, Codec::Zlib)),
        case!("compress.snappy.empty", Both, Any, "9.3", ["comp.malformed", "comp.packet-error"],
            "an empty payload with Cod = snappy: ERROR DECOMPRESSION_FAILED, the connection works",
            |c| pkt_err(c, |s| { announced(s, Codec::Snappy)?; let d = compressed(Codec::Snappy, Route::new(0, 1, 2), &[]); s.take_credit(&[0])?; let h = header_of(&d); Ok((d, h)) }, ErrorCode::DECOMPRESSION_FAILED)),
        case!("compress.zlib.empty", Both, Any, "9.3", ["comp.malformed", "comp.packet-error"],
            "an empty payload with Cod = zlib: ERROR DECOMPRESSION_FAILED",
            |c| pkt_err(c, |s| { announced(s, Codec::Zlib)?; let d = compressed(Codec::Zlib, Route::new(0, 1, 2), &[]); s.take_credit(&[0])?; let h = header_of(&d); Ok((d, h)) }, ErrorCode::DECOMPRESSION_FAILED)),
        case!("compress.snappy.truncated", Both, Any, "9.3", ["comp.malformed"],
            "a snappy block cut short: ERROR DECOMPRESSION_FAILED",
            |c| comp_bad(c, Codec::Snappy, |p| { let mut z = snappy(p); z.truncate(z.len() - 3); z })),
        case!("compress.zlib.truncated", Both, Any, "9.3", ["comp.malformed"],
            "a zlib stream cut short: ERROR DECOMPRESSION_FAILED",
            |c| comp_bad(c, Codec::Zlib, |p| { let mut z = zlib(p); z.truncate(z.len() - 5); z })),
        case!("compress.zlib.trailing", Both, Any, "9.3", ["comp.malformed"],
            "a zlib stream followed by one more byte: ERROR DECOMPRESSION_FAILED",
            |c| comp_bad(c, Codec::Zlib, |p| { let mut z = zlib(p); z.push(0); z })),
        case!("compress.zlib.checksum", Both, Any, "9.3", ["comp.malformed"],
            "a zlib stream with a wrong Adler-32: ERROR DECOMPRESSION_FAILED",
            |c| comp_bad(c, Codec::Zlib, |p| { let mut z = zlib(p); let n = z.len(); z[n - 1] ^= 0xFF; z })),
        case!("compress.zlib.fdict", Both, Any, "9.3", ["comp.malformed"],
            "a zlib header with FDICT = 1: ERROR DECOMPRESSION_FAILED",
            |c| comp_bad(c, Codec::Zlib, |p| {
                let mut z = zlib(p);
                // CMF 0x78, FLG with FDICT (0x20), FCHECK fixed so (CMF*256+FLG) % 31 == 0
                let mut flg = 0x20u8;
                while (0x7800u16 + u16::from(flg)) % 31 != 0 { flg += 1; }
                z[1] = flg;
                z
            })),
        case!("compress.zlib.cinfo-8", Both, Any, "9.3", ["comp.malformed"],
            "a zlib header with CINFO = 8 (window 64 KiB): ERROR DECOMPRESSION_FAILED",
            |c| comp_bad(c, Codec::Zlib, |p| {
                let mut z = zlib(p);
                z[0] = 0x88;
                let mut flg = z[1] & 0xE0;
                while (0x8800u16 + u16::from(flg)) % 31 != 0 { flg += 1; }
                z[1] = flg;
                z
            })),
        case!("compress.snappy.varint-6", Both, Any, "9.3", ["comp.malformed"],
            "a snappy length varint of 6 bytes: ERROR DECOMPRESSION_FAILED",
            |c| comp_bad(c, Codec::Snappy, |_| vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00])),
        case!("compress.snappy.length-mismatch", Both, Any, "9.3", ["comp.malformed"],
            "a snappy block declaring one byte more than its elements produce: ERROR DECOMPRESSION_FAILED",
            |c| comp_bad(c, Codec::Snappy, |p| { let mut z = snappy(p); z[0] += 1; z })),
        case!("compress.snappy.size-cap-exact", Both, Any, "9.3", ["comp.cap", "comp.cap-error"],
            "snappy output of exactly max_decompressed: accepted",
            |c| comp_at_cap(c, Codec::Snappy)),
        case!("compress.zlib.size-cap-exact", Both, Any, "9.3", ["comp.cap"],
            "zlib output of exactly max_decompressed: accepted",
            |c| comp_at_cap(c, Codec::Zlib)),
        case!("compress.snappy.size-cap-plus-1", Both, Any, "9.3", ["comp.cap-error", "comp.packet-error"],
            "snappy output of max_decompressed + 1 (ratio not binding): ERROR DECOMPRESSED_TOO_LARGE",
            |c| pkt_err(c, |s| { let (d, w) = size_cap(s, Codec::Snappy, 1)?; s.take_credit(&[w])?; let h = header_of(&d); Ok((d, h)) }, ErrorCode::DECOMPRESSED_TOO_LARGE)),
        case!("compress.zlib.size-cap-plus-1", Both, Any, "9.3", ["comp.cap-error", "comp.packet-error"],
            "zlib output of max_decompressed + 1 (ratio not binding): ERROR DECOMPRESSED_TOO_LARGE",
            |c| pkt_err(c, |s| { let (d, w) = size_cap(s, Codec::Zlib, 1)?; s.take_credit(&[w])?; let h = header_of(&d); Ok((d, h)) }, ErrorCode::DECOMPRESSED_TOO_LARGE)),
        case!("compress.snappy.ratio-cap-exact", Both, Any, "9.3", ["comp.cap"],
            "snappy output of exactly max_ratio x Payload Length: accepted",
            |c| ratio_exact(c, Codec::Snappy)),
        case!("compress.zlib.ratio-cap-exact", Both, Any, "9.3", ["comp.cap"],
            "zlib output of exactly max_ratio x Payload Length: accepted",
            |c| ratio_exact(c, Codec::Zlib)),
        case!("compress.snappy.ratio-cap-plus-1", Both, Any, "9.3", ["comp.cap-error", "comp.cap"],
            "snappy output of max_ratio x Payload Length + 1: ERROR RATIO_EXCEEDED",
            |c| pkt_err(c, |s| { let d = ratio_cap(s, Codec::Snappy, 1)?; s.take_credit(&[d.len() - 8])?; let h = header_of(&d); Ok((d, h)) }, ErrorCode::RATIO_EXCEEDED)),
        case!("compress.zlib.ratio-cap-plus-1", Both, Any, "9.3", ["comp.cap-error", "comp.cap"],
            "zlib output of max_ratio x Payload Length + 1: ERROR RATIO_EXCEEDED",
            |c| pkt_err(c, |s| { let d = ratio_cap(s, Codec::Zlib, 1)?; s.take_credit(&[d.len() - 8])?; let h = header_of(&d); Ok((d, h)) }, ErrorCode::RATIO_EXCEEDED)),
        case!("compress.snappy.declared-over-cap", Both, Any, "9.3", ["comp.snappy-declared"],
            "a 6-byte snappy block declaring 2^32 - 1 bytes: the cap error, before any output",
            |c| {
                let mut s = c.std()?;
                announced(&s, Codec::Snappy)?;
                let d = compressed(Codec::Snappy, Route::new(0, 1, 2), &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
                s.take_credit(&[6, 8])?;
                let h = header_of(&d);
                let code = cap_code(&s.th, 6);
                let mut b = d;
                b.extend(data(9, 80, &[0xA8; 8]));
                s.send(&b)?;
                Ok(s.expect_packet_error(code, &h, &[Sent { payload: vec![0xA8; 8], service: 9, channel: 80, never: false }]))
            }),
        case!("compress.zlib.bomb", Both, Any, "9.3", ["comp.cap-error", "comp.packet-error"],
            "zlib zeros decompressing far beyond the cap: ERROR with the cap code, the connection works",
            |c| {
                let mut s = c.std()?;
                announced(&s, Codec::Zlib)?;
                let zeros = vec![0u8; s.th.max_decompressed as usize + 1];
                let z = zlib(&zeros);
                if z.len() > usize::from(s.th.max_payload) { return Err(unsupported("the bomb does not fit max_payload")); }
                let code = cap_code(&s.th, z.len());
                s.take_credit(&[z.len(), 8])?;
                let d = compressed(Codec::Zlib, Route::new(0, 1, 2), &z);
                let h = header_of(&d);
                let mut b = d;
                b.extend(data(9, 78, &[0xA6; 8]));
                s.send(&b)?;
                Ok(s.expect_packet_error(code, &h, &[Sent { payload: vec![0xA6; 8], service: 9, channel: 78, never: false }]))
            }),
        case!("compress.not-negotiated", Both, Any, "9.3", ["comp.not-negotiated"],
            "DATA with a codec the testee did not announce: ERROR CODEC_NOT_NEGOTIATED",
            |c| pkt_err(c, |s| {
                let codec = if s.th.codecs & 0x01 == 0 { Codec::Snappy } else if s.th.codecs & 0x02 == 0 { Codec::Zlib } else {
                    return Err(unsupported("the testee announced both codecs"));
                };
                let payload = text(200, 1);
                let wire = if codec == Codec::Snappy { snappy(&payload) } else { zlib(&payload) };
                s.take_credit(&[wire.len()])?;
                let d = compressed(codec, Route::new(0, 1, 2), &wire);
                let h = header_of(&d);
                Ok((d, h))
            }, ErrorCode::CODEC_NOT_NEGOTIATED)),
        case!("compress.own-limits", Both, Any, "9.3", ["comp.cap"],
            "DATA decompressing beyond the runner's announced caps but within the testee's: accepted (a receiver caps with its own limits)",
            |c| {
                let mut s = c.std()?;
                let codec = if s.th.codecs & 0x02 != 0 { Codec::Zlib } else { Codec::Snappy };
                announced(&s, codec)?;
                let n = (s.th.max_decompressed as usize).min(3 * 4096);
                if n <= s.ours.max_decompressed as usize { return Err(unsupported("the testee's max_decompressed is not above the runner's")); }
                let plain = text(n, 3);
                let wire = if codec == Codec::Snappy { snappy(&plain) } else { zlib(&plain) };
                if (wire.len() as u64) * u64::from(s.th.max_ratio) < n as u64 || wire.len() > usize::from(s.th.max_payload) {
                    return Err(unsupported("no such payload within the testee's ratio"));
                }
                s.take_credit(&[wire.len()])?;
                s.send(&compressed(codec, Route::new(0, 1, 2), &wire))?;
                s.skip_all_echoes = true;
                Ok(s.expect_alive(13))
            }),
        // ---- §9.2 compression: sending -------------------------------------------------
        case!("compress.send.none-announced", Both, Any, "9.2", ["comp.send-negotiated"],
            "the runner announces no codec: the echo of compressible data is uncompressed",
            |c| comp_send(c, |h| h.codecs = 0, false)),
        case!("compress.send.snappy-only", Both, Any, "9.2", ["comp.send-negotiated"],
            "the runner announces snappy only: an echo, if compressed, uses snappy",
            |c| comp_send(c, |h| h.codecs = 0x01, false)),
        case!("compress.send.zlib-only", Both, Any, "9.2", ["comp.send-negotiated"],
            "the runner announces zlib only: an echo, if compressed, uses zlib",
            |c| comp_send(c, |h| h.codecs = 0x02, false)),
        case!("compress.send.never-compress", Both, Any, "9.2", ["comp.never"],
            "DATA marked N = 1: its echo is not compressed",
            |c| comp_send(c, |_| {}, true)),
        case!("compress.send.never-compress-large", Both, Any, "9.2", ["comp.never", "hdr.length-send"],
            "N = 1 DATA larger than the runner's max_payload: never echoed compressed (so not at all)",
            |c| {
                let mut s = c.std()?;
                let plain = text(2000, 4);
                if plain.len() > usize::from(s.th.max_payload) { return Err(unsupported("max_payload below 2000")); }
                s.take_credit(&[plain.len()])?;
                let mut h = Header::data(Route::new(0, 1, 9), plain.len() as u16);
                h.never_compress = true;
                s.send(&packet(&h, &plain))?;
                let seen = s.expect_quiet(Duration::from_millis(200), "after a large N = 1 DATA")?;
                if let Some(p) = seen.iter().find(|p| p.header.kind == Kind::Data) {
                    return Ok(must("a payload marked N = 1 was echoed compressed or beyond max_payload (§9.2 [[comp.never]])", "no echo", describe(p)));
                }
                Ok(s.expect_alive(14))
            }),
        case!("compress.send.within-peer-cap", Both, Any, "9.2", ["comp.send-cap", "hdr.length-send"],
            "2000 zero bytes to echo to a runner with max_payload 1024 and max_ratio 8: any echo is within the runner's caps",
            |c| {
                let mut s = c.std()?;
                s.take_credit(&[2000])?;
                s.send(&data(1, 10, &[0u8; 2000]))?;
                s.skip_echoes.push(vec![0u8; 2000]);
                Ok(s.expect_alive(15))
            }),
        case!("compress.send.large-compressible", Both, Any, "9.2", ["comp.send-cap", "comp.independent"],
            "3000 bytes of text to a runner with max_payload 1024: an echo, if any, is validly compressed within the caps",
            |c| {
                let mut s = c.std()?;
                let plain = text(3000, 5);
                s.take_credit(&[plain.len()])?;
                s.send(&data(1, 11, &plain))?;
                s.skip_echoes.push(plain);
                Ok(s.expect_alive(16))
            }),
        // ---- §6.5 timers ---------------------------------------------------------------
        case!("timer.handshake-expires", Both, Any, "6.5", ["timeout.close", "timeout.boundary"],
            "the preface and no HELLO: GOAWAY TIMEOUT when the handshake timer expires, not before",
            |c| {
                let t = c.opts.timers.handshake;
                too_long(c, t)?;
                let mut s = c.open(Plan { hello: HelloPlan::None, ..Plan::default() })?;
                // the idle timer runs too (restarted by the preface): the first to expire
                let idle = Duration::from_millis(u64::from(s.th.idle_timeout_ms));
                let (t0, t) = if !idle.is_zero() && idle < t { (s.last_send, idle) } else { (s.opened, t) };
                Ok(expect_timeout(&mut s, t0, t))
            }),
        case!("timer.handshake-not-before", Both, Any, "6.5", ["timeout.boundary"],
            "HELLO sent at 60 % of the handshake timer: accepted",
            |c| {
                let t = c.opts.timers.handshake;
                too_long(c, t)?;
                let mut s = c.open(Plan { hello: HelloPlan::None, read_hello: false, ..Plan::default() })?;
                let at = s.opened + t * 6 / 10;
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                let h = super::session::hello_packet(&s.ours);
                s.send(&h)?;
                s.read_hello_pub()?;
                Ok(s.expect_alive(17))
            }),
        case!("timer.header-expires", Both, Any, "6.5", ["timeout.close", "timeout.boundary"],
            "4 header bytes trickled in (keeping the idle timer alive), then nothing: GOAWAY TIMEOUT when the header timer, started at the first byte, expires",
            |c| {
                let t = c.opts.timers.header;
                too_long(c, t)?;
                let mut s = c.std()?;
                let g = trickle_gap(&s, t);
                let d = data(1, 1, b"slow");
                s.send(&d[..1])?;
                let t0 = s.last_send;
                for i in 1..4 {
                    std::thread::sleep(g);
                    s.send(&d[i..=i])?;
                }
                Ok(expect_timeout(&mut s, t0, t))
            }),
        case!("timer.header-not-before", Both, Any, "6.5", ["timeout.boundary", "err.incomplete"],
            "3 header bytes, the rest at 60 % of the header timer: echoed",
            |c| {
                let t = c.opts.timers.header;
                too_long(c, t)?;
                let mut s = c.std()?;
                s.take_credit(&[4])?;
                let d = data(1, 12, b"late");
                s.send(&d[..3])?;
                std::thread::sleep(t * 6 / 10);
                s.send(&d[3..])?;
                Ok(s.expect_echoes(&[Sent { payload: b"late".to_vec(), service: 1, channel: 12, never: false }]))
            }),
        case!("timer.packet-expires", Both, Any, "6.5", ["timeout.close", "timeout.boundary"],
            "a header and payload bytes trickled in (keeping the idle timer alive), never completing: GOAWAY TIMEOUT when the packet timer, started at the first byte, expires",
            |c| {
                let t = c.opts.timers.packet;
                too_long(c, t)?;
                let mut s = c.std()?;
                let g = trickle_gap(&s, t);
                s.take_credit(&[64])?;
                let d = data(1, 1, &[7; 64]);
                s.send(&d[..9])?;
                let t0 = s.last_send;
                for i in 9..12 {
                    std::thread::sleep(g);
                    s.send(&d[i..=i])?;
                }
                Ok(expect_timeout(&mut s, t0, t))
            }),
        case!("timer.packet-not-before", Both, Any, "6.5", ["timeout.boundary"],
            "a header and part of the payload, the rest at 60 % of the packet timer: echoed",
            |c| {
                let t = c.opts.timers.packet;
                too_long(c, t)?;
                let mut s = c.std()?;
                s.take_credit(&[16])?;
                let d = data(1, 13, &[8; 16]);
                s.send(&d[..12])?;
                std::thread::sleep(t * 6 / 10);
                s.send(&d[12..])?;
                Ok(s.expect_echoes(&[Sent { payload: vec![8; 16], service: 1, channel: 13, never: false }]))
            }),
        case!("timer.idle-expires", Both, Any, "6.5", ["timeout.close", "timeout.boundary"],
            "nothing sent after the handshake: GOAWAY TIMEOUT when the testee's idle timer expires, not before",
            |c| {
                let mut s = c.std()?;
                let t = Duration::from_millis(u64::from(s.th.idle_timeout_ms));
                if t.is_zero() { return Err(unsupported("the testee announced no idle timeout")); }
                too_long(c, t)?;
                s.answer_pings = false;
                let t0 = s.last_send;
                Ok(expect_timeout(&mut s, t0, t))
            }),
        case!("timer.idle-restarted-by-partial-packet", Both, Any, "6.5", ["timeout.boundary", "timeout.close"],
            "half a DATA at 50 % of the idle timeout, the rest at 120 %: no TIMEOUT (any byte restarts the idle timer)",
            |c| {
                let mut s = c.std()?;
                let t = Duration::from_millis(u64::from(s.th.idle_timeout_ms));
                if t.is_zero() { return Err(unsupported("the testee announced no idle timeout")); }
                too_long(c, t)?;
                if c.opts.timers.packet * 10 < t * 9 {
                    return Err(unsupported("the packet timer is shorter than 90 % of the idle timeout"));
                }
                s.answer_pings = false;
                s.take_credit(&[16])?;
                let t0 = s.last_send;
                let d = data(1, 14, &[9; 16]);
                std::thread::sleep((t0 + t / 2).saturating_duration_since(Instant::now()));
                s.send(&d[..12])?;
                std::thread::sleep((t0 + t * 12 / 10).saturating_duration_since(Instant::now()));
                s.send(&d[12..])?;
                Ok(s.expect_echoes(&[Sent { payload: vec![9; 16], service: 1, channel: 14, never: false }]))
            }),
        case!("timer.idle-restarted-by-header-byte", Both, Any, "6.5", ["timeout.boundary"],
            "one header byte at 70 % of the idle timeout, the rest at 110 %: no TIMEOUT",
            |c| {
                let mut s = c.std()?;
                let t = Duration::from_millis(u64::from(s.th.idle_timeout_ms));
                if t.is_zero() { return Err(unsupported("the testee announced no idle timeout")); }
                too_long(c, t)?;
                if c.opts.timers.header * 10 < t * 6 {
                    return Err(unsupported("the header timer is shorter than 60 % of the idle timeout"));
                }
                s.answer_pings = false;
                s.take_credit(&[4])?;
                let t0 = s.last_send;
                let d = data(1, 15, b"idle");
                std::thread::sleep((t0 + t * 7 / 10).saturating_duration_since(Instant::now()));
                s.send(&d[..1])?;
                std::thread::sleep((t0 + t * 11 / 10).saturating_duration_since(Instant::now()));
                s.send(&d[1..])?;
                Ok(s.expect_echoes(&[Sent { payload: b"idle".to_vec(), service: 1, channel: 15, never: false }]))
            }),
        case!("timer.preface-not-header-timed", Both, Any, "6.5", ["timeout.boundary", "timeout.close"],
            "the preface spread over 1.3 header timers (within the handshake timer): no TIMEOUT",
            |c| {
                let th = c.opts.timers.header;
                if c.opts.timers.handshake * 10 < th * 16 {
                    return Err(unsupported("the handshake timer is shorter than 1.6 header timers"));
                }
                too_long(c, th * 2)?;
                let mut s = c.open(Plan { preface: Some(Vec::new()), hello: HelloPlan::None, read_hello: false, ..Plan::default() })?;
                s.send(&PREFACE[..2])?;
                std::thread::sleep(th * 13 / 10);
                let mut rest = PREFACE[2..].to_vec();
                rest.extend(super::session::hello_packet(&s.ours));
                s.send(&rest)?;
                s.read_hello_pub()?;
                Ok(s.expect_alive(18))
            }),
        case!("timer.keepalive", Both, Any, "6.2", ["neg.keepalive"],
            "the runner announces idle_timeout_ms 1000 and stays silent: the testee sends something within about 500 ms (SHOULD)",
            |c| {
                let mut s = c.open(Plan::hello(|h| h.idle_timeout_ms = 1000))?;
                let seen = s.expect_quiet(Duration::from_millis(1100), "while keepalive was due")?;
                if seen.is_empty() {
                    return Ok(should("nothing sent for 1100 ms to a peer with a 1000 ms idle timeout (§6.2 [[neg.keepalive]])", "a PING or other traffic", "nothing"));
                }
                Ok(Outcome::Ok)
            }),
        // ---- §11 floods --------------------------------------------------------------
        case!("flood.empty-32", Both, Any, "11", ["limit.empty-run", "limit.empty-run-floor"],
            "32 empty DATA: accepted (no receiver configures max_empty_run below 32); the echoes are no longer run",
            |c| {
                let mut s = c.std()?;
                let empties: Vec<Vec<u8>> = vec![Vec::new(); 32];
                let sent = s.send_data(6, 0, &empties)?;
                Ok(s.expect_echoes(&sent))
            }),
        case!("flood.empty-over-limit", Both, Any, "11", ["limit.empty-run", "close.on-error", "close.on-error-goaway"],
            "max_empty_run empty DATA (declared with --max-empty-run): echoed; one more: GOAWAY FLOOD. Undeclared: up to 1,024 empty DATA in one write, GOAWAY FLOOD, else UNSUPPORTED",
            |c| {
                let mut s = c.std()?;
                let Some(limit) = c.opts.max_empty_run else {
                    return Ok(empty_run_probe(&mut s));
                };
                let sent = s.send_data(6, 0, &vec![Vec::new(); limit as usize])?;
                if let Outcome::Deviation { level, message, expected, actual } = s.expect_echoes(&sent) {
                    return Ok(Outcome::Deviation {
                        level,
                        message: format!("{message} (within the declared max_empty_run {limit}, §11 [[limit.empty-run]])"),
                        expected,
                        actual,
                    });
                }
                s.send_data(6, 0, &[Vec::new()])?;
                Ok(s.expect_close(ErrorCode::FLOOD))
            }),
        case!("flood.empty-reset-by-data", Both, Any, "11", ["limit.empty-run", "limit.empty-run-floor"],
            "max_empty_run (as declared, else 32) empty DATA, one non-empty, as many empty: accepted (non-empty DATA resets the count; max_empty_run is at least 32)",
            |c| {
                let mut s = c.std()?;
                let run = c.opts.max_empty_run.unwrap_or(32).max(32) as usize;
                let mut ps: Vec<Vec<u8>> = vec![Vec::new(); run];
                ps.push(b"reset".to_vec());
                ps.extend(vec![Vec::new(); run]);
                let sent = s.send_data(6, 1, &ps)?;
                Ok(s.expect_echoes(&sent))
            }),
        case!("flood.empty-control-no-reset", Both, Any, "11", ["limit.empty-run"],
            "20 empty DATA, a PING, max_empty_run − 19 empty DATA (the limit declared with --max-empty-run): GOAWAY FLOOD (control packets do not reset the count)",
            |c| {
                let Some(limit) = c.opts.max_empty_run else {
                    return Err(unsupported("the testee's max_empty_run is not declared (--max-empty-run)"));
                };
                if limit < 20 {
                    return Err(unsupported("the declared max_empty_run is below 20"));
                }
                let mut s = c.std()?;
                let after = limit as usize + 1 - 20;
                s.take_credit(&vec![0; 20 + after])?;
                let mut b = Vec::new();
                for _ in 0..20 { b.extend(data(6, 2, &[])); }
                b.extend(s.ping_bytes().1);
                for _ in 0..after { b.extend(data(6, 2, &[])); }
                s.send(&b)?;
                Ok(s.expect_close(ErrorCode::FLOOD))
            }),
        case!("flood.ping", Both, Any, "11", ["limit.ping-rate", "ping.fifo"],
            "2000 PINGs in one write: answered in order, or GOAWAY FLOOD; nothing else",
            |c| {
                let mut s = c.std()?;
                let mut b = Vec::new();
                let mut pings = Vec::new();
                for _ in 0..2000 { let (p, pb) = s.ping_bytes(); pings.push(p); b.extend(pb); }
                s.send(&b)?;
                let deadline = s.deadline();
                let mut answered = 0;
                while answered < pings.len() {
                    match s.next(deadline) {
                        Event::Packet(p, _) if p.header.kind == Kind::Pong => answered += 1,
                        Event::Packet(p, _) if p.header.kind == Kind::Goaway => {
                            let code = Goaway::parse(&p.payload).map(|g| g.code).ok();
                            return Ok(if code == Some(ErrorCode::FLOOD) { Outcome::Ok } else { must("a PING flood closed with another code than FLOOD", "PONGs or FLOOD", describe(&p)) });
                        }
                        Event::Packet(..) => {}
                        _ => return Ok(must("the PING flood got neither its PONGs nor FLOOD", "PONGs or FLOOD", format!("{answered} PONGs"))),
                    }
                }
                Ok(s.expect_alive(19))
            }),
        case!("flood.error", Both, Any, "5.7", ["error.rate", "error.no-loop"],
            "500 ERRORs for the testee in one write: accepted, or GOAWAY FLOOD; never an ERROR back",
            |c| {
                let mut s = c.std()?;
                let h = data(1, 1, b"x");
                let one = error_report(ErrorCode::NO_SERVICE, &h[..8], "", Route::new(0, 0, 0), None);
                let b: Vec<u8> = one.iter().copied().cycle().take(one.len() * 500).collect();
                s.send(&b)?;
                let seen = match s.expect_quiet(Duration::from_millis(200), "after an ERROR flood") {
                    Ok(seen) => seen,
                    Err(_) => {
                        let cl = s.until_close(s.deadline());
                        return Ok(grade_close(&cl, ErrorCode::FLOOD, s.timeout));
                    }
                };
                if seen.iter().any(|p| p.header.kind == Kind::Error) {
                    return Ok(must("an ERROR about an ERROR (§5.7 [[error.no-loop]])", "nothing", "ERROR"));
                }
                Ok(s.expect_alive(20))
            }),
        case!("flood.tiny-data", Both, Any, "12.2", ["err.split-invariant", "flow.send"],
            "2000 one-byte DATA, as fast as credit allows: all echoed, in order",
            |c| {
                let mut s = c.std()?;
                let mut sent = Vec::new();
                for chunk in 0..20u8 {
                    let ps: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i ^ chunk]).collect();
                    sent.extend(s.send_data(7, chunk, &ps)?);
                    if sent.len() >= 400 {
                        let o = s.expect_echoes(&sent);
                        if !matches!(o, Outcome::Ok) { return Ok(o); }
                        sent.clear();
                    }
                }
                Ok(s.expect_echoes(&sent))
            }),
        case!("flood.credit", Both, Any, "8", ["flow.overflow"],
            "1000 CREDIT packets of 1 packet and 1 byte: accepted",
            |c| {
                let mut s = c.std()?;
                let one = control(Control::Credit(Credit { packets: 1, bytes: 1 }));
                let b: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
                s.send(&b)?;
                Ok(s.expect_alive(21))
            }),
        // ---- §2, §12.2 the byte stream ------------------------------------------------
        case!("stream.split-every-byte", Both, Any, "12.2", ["err.incomplete", "err.split-invariant", "layer.split"],
            "a DATA written one byte per write: echoed",
            |c| {
                let mut s = c.std()?;
                let payload = c.bytes(40, 1);
                s.take_credit(&[40])?;
                s.send_spread(&data(2, 0, &payload), 1, Duration::from_millis(1))?;
                Ok(s.expect_echoes(&[Sent { payload, service: 2, channel: 0, never: false }]))
            }),
        case!("stream.coalesced", Both, Any, "12.2", ["err.split-invariant", "layer.split"],
            "20 DATA in one write: all echoed in order",
            |c| {
                let mut s = c.std()?;
                let ps: Vec<Vec<u8>> = (0..20).map(|i| c.bytes(10 + i, 400 + i as u64)).collect();
                let sent = s.send_data(3, 0, &ps)?;
                Ok(s.expect_echoes(&sent))
            }),
        case!("stream.random-splits", Both, Any, "12.2", ["err.split-invariant", "layer.split"],
            "30 DATA written in randomly sized pieces: all echoed in order",
            |c| {
                let mut s = c.std()?;
                let ps: Vec<Vec<u8>> = (0..30).map(|i| c.bytes(5 + 7 * i, 500 + i as u64)).collect();
                let lens: Vec<usize> = ps.iter().map(Vec::len).collect();
                s.take_credit(&lens)?;
                let mut all = Vec::new();
                for p in &ps { all.extend(data(3, 1, p)); }
                let cuts = c.bytes(64, 9);
                let mut at = 0;
                for (i, cut) in cuts.iter().enumerate() {
                    if at >= all.len() { break; }
                    let n = (usize::from(*cut) % 37 + 1).min(all.len() - at);
                    s.send(&all[at..at + n])?;
                    at += n;
                    if i % 8 == 0 { std::thread::sleep(Duration::from_millis(1)); }
                }
                if at < all.len() { s.send(&all[at..])?; }
                let sent: Vec<Sent> = ps.into_iter().map(|payload| Sent { payload, service: 3, channel: 1, never: false }).collect();
                Ok(s.expect_echoes(&sent))
            }),
        case!("stream.slow-drip", Both, Any, "6.5", ["err.incomplete", "timeout.boundary"],
            "a DATA dripped one byte at a time within the header timer: echoed",
            |c| {
                let mut s = c.std()?;
                s.take_credit(&[4])?;
                let d = data(4, 0, b"drip");
                let gap = (c.opts.timers.header / 20).min(Duration::from_millis(50));
                s.send_spread(&d, 1, gap)?;
                Ok(s.expect_echoes(&[Sent { payload: b"drip".to_vec(), service: 4, channel: 0, never: false }]))
            }),
        // ---- §10 TLS ---------------------------------------------------------------------
        case!("tls.handshake", Both, Tls, "10.1", ["tls.version", "tls.alpn"],
            "TLS 1.3 with ALPN fleetwire/1 agreed; then the connection works",
            |c| {
                let mut s = c.std()?;
                if let Some(t) = s.wire.tls() {
                    if t.alpn() != Some(fleetwire::tls::ALPN) {
                        return Ok(must("ALPN fleetwire/1 was not agreed (§10.1 [[tls.alpn]])", "fleetwire/1", format!("{:?}", t.alpn())));
                    }
                }
                Ok(s.expect_alive(22))
            }),
        case!("tls.only-tls12", Both, Tls, "10.1", ["tls.version"],
            "the runner speaks only TLS 1.2: the testee refuses the handshake",
            |c| tls_refused(c, TlsPlan::Tls12Only)),
        case!("tls.no-alpn", Server, Tls, "10.1", ["tls.alpn"],
            "a ClientHello without ALPN: the testee aborts before any application data",
            |c| tls_refused(c, TlsPlan::Alpn(Vec::new()))),
        case!("tls.wrong-alpn", Server, Tls, "10.1", ["tls.alpn"],
            "a ClientHello offering only h2: the testee aborts before any application data",
            |c| tls_refused(c, TlsPlan::Alpn(vec![b"h2"]))),
        case!("tls.alpn-among-others", Server, Tls, "10.1", ["tls.alpn"],
            "a ClientHello offering h2 and fleetwire/1: fleetwire/1 selected, the connection works",
            |c| {
                let mut s = c.open(Plan { tls: TlsPlan::Alpn(vec![b"h2", fleetwire::tls::ALPN]), ..Plan::default() })?;
                if s.wire.tls().and_then(|t| t.alpn()) != Some(fleetwire::tls::ALPN) {
                    return Ok(must("fleetwire/1 was not selected (§10.1 [[tls.alpn]])", "fleetwire/1", "other"));
                }
                Ok(s.expect_alive(23))
            }),
        case!("tls.server-no-alpn", Client, Tls, "10.1", ["tls.alpn"],
            "the runner's server selects no ALPN: the client aborts before sending its preface",
            |c| tls_refused(c, TlsPlan::Alpn(Vec::new()))),
        case!("tls.server-untrusted-cert", Client, Tls, "10.2", ["tls.server-auth"],
            "the runner presents a certificate from an unknown CA: the client aborts the handshake",
            |c| tls_refused(c, TlsPlan::UntrustedServerCert)),
        case!("tls.server-wrong-name", Client, Tls, "10.2", ["tls.server-auth"],
            "the runner presents a trusted certificate for another name: the client aborts the handshake",
            |c| tls_refused(c, TlsPlan::WrongServerName)),
        case!("tls.plaintext-preface", Server, Tls, "3", ["preface.misconfig", "layer.no-fallback"],
            "the plaintext preface and HELLO on the TLS port: a TLS alert (SHOULD) and close; never plaintext Fleetwire",
            |c| {
                let (mut w, _) = c.connect(&TlsPlan::Skip)?;
                let mut b = PREFACE.to_vec();
                b.extend(super::session::hello_packet(&super::session::runner_hello(c.role)));
                let _ = w.send_raw(&b);
                let (got, closed) = w.read_raw(Instant::now() + c.opts.timeout);
                if got.starts_with(&PREFACE[..1]) {
                    return Ok(must("the TLS endpoint answered in plaintext Fleetwire (§2 [[layer.no-fallback]])", "a TLS alert and close", "plaintext preface"));
                }
                if !closed {
                    return Ok(must("the TLS endpoint did not close after a plaintext preface (§3)", "alert, close", "still open"));
                }
                // a TLS alert record: type 21, then version, length 2, level, description 10
                if got.len() >= 7 && got[0] == 21 && got[6] == 10 {
                    return Ok(Outcome::Ok);
                }
                Ok(should("closed without a TLS unexpected_message alert (§3 [[preface.misconfig]])", "alert 10", format!("{:02x?}", &got[..got.len().min(8)])))
            }),
        case!("tls.server-plaintext", Client, Tls, "3", ["layer.no-fallback", "preface.misconfig"],
            "the runner answers the ClientHello with the plaintext preface and HELLO: the client sends no plaintext Fleetwire and closes",
            |c| {
                let (mut w, _) = c.connect(&TlsPlan::Skip)?;
                let (hello, _) = w.read_raw(Instant::now() + Duration::from_millis(300).min(c.opts.timeout));
                if hello.first() != Some(&0x16) {
                    return Ok(must("the TLS client did not start with a TLS handshake record", "0x16", format!("{:02x?}", &hello[..hello.len().min(4)])));
                }
                let mut b = PREFACE.to_vec();
                b.extend(super::session::hello_packet(&super::session::runner_hello(c.role)));
                let _ = w.send_raw(&b);
                let (got, closed) = w.read_raw(Instant::now() + c.opts.timeout);
                if got.windows(PREFACE.len()).any(|x| x == PREFACE) {
                    return Ok(must("the client fell back to plaintext Fleetwire (§2 [[layer.no-fallback]])", "close", "plaintext preface"));
                }
                if !closed {
                    return Ok(must("the client did not close (§3)", "close", "open"));
                }
                Ok(Outcome::Ok)
            }),
        case!("tls.handshake-stall", Both, Tls, "6.5", ["timeout.tls-handshake"],
            "the runner never completes the TLS handshake (as a client it sends no ClientHello; as a server it answers none): the testee closes within the handshake timer",
            |c| {
                let t = c.opts.timers.handshake;
                too_long(c, t)?;
                let (mut w, _) = c.connect(&TlsPlan::Skip)?;
                let t0 = Instant::now();
                let (_, closed) = w.read_raw(t0 + t + grace(t));
                if closed {
                    return Ok(Outcome::Ok);
                }
                Ok(should(
                    format!("the TLS handshake was not bounded by the handshake timer ({} ms, §6.5 [[timeout.tls-handshake]])", t.as_millis()),
                    "close",
                    format!("open after {} ms", (t + grace(t)).as_millis()),
                ))
            }),
        case!("tls.grouping", Both, Tls, "10.3", ["tls.grouping"],
            "64 DATA of 16 bytes in one write (one record): the testee's answer comes in fewer than 32 TLS records (SHOULD: many small packets in one record), counted from the record headers before decryption",
            tls_grouping),
        case!("tls.client-cert.node-match", Server, Tls, "10.2", ["tls.node-binding", "src.auth"],
            "a client certificate naming fleetwire:node:7 and a node HELLO with id 7: accepted",
            |c| {
                let mut s = c.open(Plan { tls: TlsPlan::ClientCert(vec!["fleetwire:node:7".into()]), hello: HelloPlan::Edit(|h| { h.role = Role::Node; h.node_id = 7; }), ..Plan::default() })?;
                Ok(s.expect_pong())
            }),
        case!("tls.client-cert.node-not-answered", Server, Tls, "14.6", ["route.reflector"],
            "an authenticated node (fleetwire:node:7) sends DATA and a PING: the PONG, and no answer to the DATA (the testee echoes, an answer without an application decision, which it should give clients only)",
            |c| not_answered(c, "fleetwire:node:7", Role::Node, 7)),
        case!("tls.client-cert.proxy-id-not-answered", Server, Tls, "14.6", ["route.reflector"],
            "an authenticated proxy (fleetwire:proxy:9) sends DATA with X = 0 (its own id, a node id, is the source) and a PING: the PONG, and no answer to the DATA",
            |c| not_answered(c, "fleetwire:proxy:9", Role::Proxy, 9)),
        case!("tls.client-cert.node-mismatch", Server, Tls, "10.2", ["tls.node-binding"],
            "a client certificate naming fleetwire:node:7 and a node HELLO with id 8: BAD_HELLO",
            |c| cert_hello(c, &["fleetwire:node:7"], Role::Node, 8, Some(ErrorCode::BAD_HELLO))),
        case!("tls.client-cert.two-uris", Server, Tls, "10.2", ["tls.node-binding", "src.auth"],
            "a certificate naming two node ids and a node HELLO with one of them: BAD_HELLO (no id authenticated)",
            |c| cert_hello(c, &["fleetwire:node:7", "fleetwire:node:8"], Role::Node, 7, Some(ErrorCode::BAD_HELLO))),
        case!("tls.client-cert.malformed-uri", Server, Tls, "10.2", ["tls.node-binding", "src.auth"],
            "a certificate naming fleetwire:node:07x and a node HELLO with id 7: BAD_HELLO",
            |c| cert_hello(c, &["fleetwire:node:07x"], Role::Node, 7, Some(ErrorCode::BAD_HELLO))),
        case!("tls.client-cert.none-role-node", Server, Tls, "7.4", ["src.auth"],
            "a certificate without a fleetwire URI and a node HELLO: BAD_HELLO (authentication required)",
            |c| cert_hello(c, &["urn:example:other"], Role::Node, 7, Some(ErrorCode::BAD_HELLO))),
        case!("tls.client-cert.node-cert-role-proxy", Server, Tls, "7.4", ["src.auth", "tls.node-binding"],
            "a fleetwire:node:7 certificate and a proxy HELLO with id 7: BAD_HELLO (not a proxy identity)",
            |c| cert_hello(c, &["fleetwire:node:7"], Role::Proxy, 7, Some(ErrorCode::BAD_HELLO))),
        case!("tls.client-cert.proxy-cert-role-node", Server, Tls, "7.4", ["src.auth"],
            "a fleetwire:proxy:9 certificate and a node HELLO with id 9: accepted (a proxy identity matches role node)",
            |c| cert_hello(c, &["fleetwire:proxy:9"], Role::Node, 9, None)),
        case!("tls.client-cert.client-role", Server, Tls, "10.2", ["tls.node-binding"],
            "a fleetwire:node:7 certificate and a client HELLO (node_id 0): accepted (a client binds no id)",
            |c| cert_hello(c, &["fleetwire:node:7"], Role::Client, 0, None)),
        case!("tls.proxy-x-honoured", Server, Tls, "7.4", ["src.trust", "src.stamp"],
            "an authenticated proxy (fleetwire:proxy:9) sends X = 1 DATA from node 55, then a PING: accepted (no SOURCE_FORGED); an echo, if any, goes to node 55",
            |c| {
                let mut s = c.open(Plan { tls: TlsPlan::ClientCert(vec!["fleetwire:proxy:9".into()]), hello: HelloPlan::Edit(|h| { h.role = Role::Proxy; h.node_id = 9; }), ..Plan::default() })?;
                s.take_credit(&[5])?;
                let mut b = routed(Route::new(0, 1, 16), Some(55), b"proxy");
                let (ping, pb) = s.ping_bytes();
                b.extend(pb);
                s.send(&b)?;
                let deadline = s.deadline();
                loop {
                    match s.next(deadline) {
                        Event::Packet(p, _) if p.header.kind == Kind::Data && p.header.route.node != 55 => {
                            return Ok(must("the echo of a packet from node 55 is not routed to node 55 (§7.4)", "destination 55", format!("destination {}", p.header.route.node)));
                        }
                        Event::Packet(p, _) if p.header.kind == Kind::Pong && fleetwire::control::Pong::parse(&p.payload).is_ok_and(|x| x.id == ping.id) => return Ok(Outcome::Ok),
                        Event::Packet(p, _) if p.header.kind == Kind::Goaway => {
                            return Ok(must("X = 1 from an authenticated proxy was refused (§7.4 [[src.trust]])", "no error", describe(&p)));
                        }
                        Event::Packet(..) => {}
                        other => return Ok(must("no PONG from the testee", "PONG", format!("{other:?}"))),
                    }
                }
            }),
        case!("tls.proxy-source-ffff", Server, Tls, "7.4", ["src.reserved"],
            "an authenticated proxy sends X = 1 with Source Node 0xFFFF: SOURCE_FORGED",
            |c| {
                let mut s = c.open(Plan { tls: TlsPlan::ClientCert(vec!["fleetwire:proxy:9".into()]), hello: HelloPlan::Edit(|h| { h.role = Role::Proxy; h.node_id = 9; }), ..Plan::default() })?;
                s.take_credit(&[5])?;
                s.send(&routed(Route::new(0, 1, 16), Some(0xFFFF), b"proxy"))?;
                Ok(s.expect_close(ErrorCode::SOURCE_FORGED))
            }),
        case!("tls.server-id-mismatch", Client, Tls, "10.2", ["tls.node-binding"],
            "the runner's certificate names fleetwire:node:5 and its node HELLO says 1: the client closes with BAD_HELLO",
            |c| {
                let mut s = c.open(Plan { tls: TlsPlan::ServerIdentity("fleetwire:node:5".into()), ..Plan::default() })?;
                Ok(s.expect_close(ErrorCode::BAD_HELLO))
            }),
        case!("tls.server-id-match", Client, Tls, "10.2", ["tls.node-binding"],
            "the runner's certificate names fleetwire:node:1, as its node HELLO: accepted",
            |c| {
                let mut s = c.open(Plan { tls: TlsPlan::ServerIdentity(format!("fleetwire:node:{RUNNER_ID}")), ..Plan::default() })?;
                Ok(s.expect_alive(25))
            }),
    ]
}

/// Whether the spec in force (document version 1.1 on) makes a client honour X = 1 from
/// its proxy server (§7.4 `[[src.client-trusts-server]]`).
fn client_trusts_server() -> bool {
    crate::cases::tag_levels().contains_key("src.client-trusts-server")
}

/// Whether a server under test must refuse a node or proxy HELLO from a peer that is
/// neither authenticated nor configured as trusted (§7.4 `[[src.auth]]` from document
/// version 1.1 on; in 1.0 only when configured to require authentication).
fn refuses_unconfigured_nodes(c: &Ctx<'_>) -> bool {
    c.role == super::PeerRole::Server && client_trusts_server()
}

/// A node or proxy HELLO without a matching identity is refused first by a testee that
/// requires authentication (§7.4 `[[src.auth]]`, checked by the `tls.client-cert.*`
/// cases).
fn needs_no_auth(c: &Ctx<'_>) -> R<()> {
    if c.opts.testee_requires_auth {
        return Err(unsupported(
            "the testee requires node and proxy peers to authenticate (see tls.client-cert.*)",
        ));
    }
    Ok(())
}

fn raw_control_routed(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let h = Header::data(Route::new(0, 0, 0), payload.len() as u16);
    let mut h = h;
    h.kind = kind;
    packet(&h, payload)
}

/// §14.6 `[[route.reflector]]`: a peer authenticated by `uri` with `role` and `id`
/// sends DATA (with X = 0: the source is its own id, a node id) and a PING; the PONG
/// comes and the DATA is not answered (the testee's echo is an answer without an
/// application decision).
fn not_answered(c: &mut Ctx<'_>, uri: &str, role: Role, id: u16) -> R {
    let mut s = c.open(Plan {
        tls: TlsPlan::ClientCert(vec![uri.to_owned()]),
        hello: HelloPlan::None,
        read_hello: false,
        ..Plan::default()
    })?;
    let mut h = s.ours;
    h.role = role;
    h.node_id = id;
    s.ours = h;
    s.send(&super::session::hello_packet(&h))?;
    s.read_hello_pub()?;
    s.take_credit(&[4])?;
    let mut b = data(1, 3, b"node");
    let (ping, pb) = s.ping_bytes();
    b.extend(pb);
    s.send(&b)?;
    let answer = |p: &fleetwire::Packet| {
        should(
            format!("the DATA of {uri} was answered (§14.6 [[route.reflector]]: an automatic answer goes to clients only)"),
            "no answer",
            describe(p),
        )
    };
    let deadline = s.deadline();
    loop {
        match s.next(deadline) {
            Event::Packet(p, _) if p.header.kind == Kind::Data => return Ok(answer(&p)),
            Event::Packet(p, _)
                if p.header.kind == Kind::Pong
                    && fleetwire::control::Pong::parse(&p.payload)
                        .is_ok_and(|x| x.id == ping.id) =>
            {
                break
            }
            Event::Packet(p, _) if p.header.kind == Kind::Goaway => {
                return Ok(must(
                    format!("the peer authenticated by {uri} was refused"),
                    "no error",
                    describe(&p),
                ));
            }
            Event::Packet(..) => {}
            other => {
                return Ok(must(
                    "no PONG from the testee",
                    "PONG",
                    format!("{other:?}"),
                ))
            }
        }
    }
    // an answer may follow the PONG (the PING is answered as it is read)
    let late = s.expect_quiet(Duration::from_millis(200), "after the PONG")?;
    Ok(late
        .iter()
        .find(|p| p.header.kind == Kind::Data)
        .map_or(Outcome::Ok, answer))
}

/// A TLS setup the testee must refuse: no Fleetwire bytes, the connection ends.
fn tls_refused(c: &mut Ctx<'_>, plan: TlsPlan) -> R {
    if matches!(plan, TlsPlan::Tls12Only) {
        // §10.1: an earlier version must not even be negotiated (the runner's own TLS
        // endpoint would refuse a completed TLS 1.2 handshake itself: rustls alone)
        if !c.tls12_handshake_completes()? {
            return Ok(Outcome::Ok);
        }
        return Ok(must(
            "the testee negotiated TLS 1.2 (§10.1 [[tls.version]]: it must refuse to)",
            "handshake failure",
            "TLS 1.2 handshake completed",
        ));
    }
    let (mut w, hs) = c.connect(&plan)?;
    if hs.is_err() {
        return Ok(Outcome::Ok);
    }
    // handshake done: the testee must abort right after it, before any application data
    if c.role == super::PeerRole::Server {
        let _ = w.send(&PREFACE);
    }
    let deadline = Instant::now() + c.opts.timeout;
    match w.read_preface(deadline) {
        Ok(()) => Ok(must(
            format!("the testee completed the handshake ({plan:?}) and sent Fleetwire data (§10)"),
            "handshake refused",
            "preface",
        )),
        Err(_) if w.is_closed() => Ok(Outcome::Ok),
        Err(e) => Ok(must(
            format!("the testee completed the handshake ({plan:?}) and did not close (§10): {e}"),
            "handshake refused",
            "open",
        )),
    }
}

/// A client certificate with `uris`, a HELLO with `role` and `id`: `code`, or accepted.
fn cert_hello(c: &mut Ctx<'_>, uris: &[&str], role: Role, id: u16, code: Option<ErrorCode>) -> R {
    if code.is_some() && !c.opts.testee_requires_auth {
        return Err(unsupported(
            "the testee is not known to require authentication of nodes",
        ));
    }
    let plan = Plan {
        tls: TlsPlan::ClientCert(uris.iter().map(|u| (*u).to_owned()).collect()),
        hello: HelloPlan::None,
        ..Plan::default()
    };
    let mut s = c.open(Plan {
        read_hello: false,
        ..plan
    })?;
    let mut h = s.ours;
    h.role = role;
    h.node_id = id;
    s.ours = h;
    s.send(&super::session::hello_packet(&h))?;
    s.read_hello_pub()?;
    Ok(match code {
        Some(code) => s.expect_close(code),
        // a node or proxy peer: an echo node may answer clients only, so a PONG proves
        // the HELLO was accepted
        None if role != Role::Client => s.expect_pong(),
        None => s.expect_alive(26),
    })
}

fn flow_exceed(c: &mut Ctx<'_>, bytes: bool) -> R {
    let mut s = c.open(Plan::hello(|h| h.initial_credit_packets = 1))?;
    let th = s.th;
    let mut b = Vec::new();
    if bytes {
        let total = u64::from(th.initial_credit_bytes) + 1;
        if total > 8 << 20 {
            return Err(unsupported(
                "the testee grants more than 8 MiB of byte credit",
            ));
        }
        let max = u64::from(th.max_payload);
        let packets = total.div_ceil(max);
        if packets > u64::from(th.initial_credit_packets) {
            return Err(unsupported(
                "the byte credit cannot be exceeded within the packet credit",
            ));
        }
        let mut left = total;
        while left > 0 {
            let n = left.min(max) as usize;
            b.extend(data(1, 1, &vec![0x33; n]));
            left -= n as u64;
        }
    } else {
        let n = th.initial_credit_packets as usize + 1;
        if n > 4097 {
            return Err(unsupported("the testee grants more than 4096 packets"));
        }
        for _ in 0..n {
            b.extend(data(1, 1, b"c"));
        }
    }
    s.send(&b)?;
    let cl = s.until_close(s.deadline());
    if cl.goaways.iter().any(|g| g.0 == ErrorCode::FLOW_CONTROL) {
        return Ok(Outcome::Ok);
    }
    // a testee that granted credit before the excess arrived is right not to object
    // (a later close, an idle TIMEOUT for example, is not about the excess)
    let granted = cl.others.iter().any(|p| p.header.kind == Kind::Credit);
    if granted {
        return Ok(Outcome::Ok);
    }
    Ok(grade_close(&cl, ErrorCode::FLOW_CONTROL, s.timeout))
}

fn budget(c: &mut Ctx<'_>, plus: u32, errors: bool) -> R {
    let mut s = c.std()?;
    let n = c.opts.max_packet_errors + plus;
    let mut b = Vec::new();
    let d = routed(Route::new(77, 1, 2), None, b"nr");
    if !errors {
        s.take_credit(&vec![2; n as usize])?;
    }
    for _ in 0..n {
        if errors {
            b.extend(error_report(
                ErrorCode::NO_ROUTE,
                &d[..8],
                "",
                Route::new(77, 0, 0),
                None,
            ));
        } else {
            b.extend_from_slice(&d);
        }
    }
    s.send(&b)?;
    if plus > 0 {
        let cl = s.until_close(s.deadline());
        let reports = cl
            .others
            .iter()
            .filter(|p| p.header.kind == Kind::Error)
            .count() as u32;
        let expect = if errors { 0 } else { c.opts.max_packet_errors };
        if reports > expect {
            return Ok(must(
                "the packet that exceeds the budget got an ERROR (§12.3)",
                format!("{expect} ERRORs"),
                format!("{reports}"),
            ));
        }
        return Ok(grade_close(&cl, ErrorCode::TOO_MANY_ERRORS, s.timeout));
    }
    let deadline = s.deadline();
    let mut reports = 0;
    while reports < n {
        match s.next(deadline) {
            Event::Packet(p, _) if p.header.kind == Kind::Error => reports += 1,
            Event::Packet(p, _) if p.header.kind == Kind::Goaway => {
                return Ok(must(format!("closed after {reports} of {n} packet errors, within the budget of {} (§12.3)", c.opts.max_packet_errors), "open", describe(&p)));
            }
            Event::Packet(..) => {}
            other => {
                return Ok(must(
                    "the packet errors were not all reported",
                    format!("{n} ERRORs"),
                    format!("{reports}; then {other:?}"),
                ))
            }
        }
    }
    Ok(s.expect_alive(27))
}

fn comp_valid(c: &mut Ctx<'_>, codec: Codec) -> R {
    let mut s = c.std()?;
    announced(&s, codec)?;
    let plain = text(900, 7);
    let wire = if codec == Codec::Snappy {
        snappy(&plain)
    } else {
        zlib(&plain)
    };
    s.take_credit(&[wire.len()])?;
    s.send(&compressed(codec, Route::new(0, 1, 20), &wire))?;
    Ok(s.expect_echoes(&[Sent {
        payload: plain,
        service: 1,
        channel: 20,
        never: false,
    }]))
}

fn comp_bad(c: &mut Ctx<'_>, codec: Codec, make: fn(&[u8]) -> Vec<u8>) -> R {
    let mut s = c.std()?;
    announced(&s, codec)?;
    let wire = make(&text(300, 8));
    s.take_credit(&[wire.len(), 8])?;
    let d = compressed(codec, Route::new(0, 1, 21), &wire);
    let h = header_of(&d);
    let mut b = d;
    b.extend(data(9, 79, &[0xA7; 8]));
    s.send(&b)?;
    Ok(s.expect_packet_error(
        ErrorCode::DECOMPRESSION_FAILED,
        &h,
        &[Sent {
            payload: vec![0xA7; 8],
            service: 9,
            channel: 79,
            never: false,
        }],
    ))
}

fn ratio_exact(c: &mut Ctx<'_>, codec: Codec) -> R {
    let mut s = c.std()?;
    let d = ratio_cap(&mut s, codec, 0)?;
    s.take_credit(&[d.len() - 8])?;
    s.send(&d)?;
    s.skip_all_echoes = true;
    Ok(s.expect_alive(12))
}

fn comp_at_cap(c: &mut Ctx<'_>, codec: Codec) -> R {
    let mut s = c.std()?;
    let (d, w) = size_cap(&mut s, codec, 0)?;
    s.take_credit(&[w])?;
    s.send(&d)?;
    s.skip_all_echoes = true;
    Ok(s.expect_alive(28))
}

fn comp_send(c: &mut Ctx<'_>, edit: fn(&mut Hello<'static>), never: bool) -> R {
    let mut s = c.open(Plan::hello(edit))?;
    let plain = text(900, 9);
    s.take_credit(&[plain.len()])?;
    let mut h = Header::data(Route::new(0, 1, 22), plain.len() as u16);
    h.never_compress = never;
    s.send(&packet(&h, &plain))?;
    Ok(s.expect_echoes(&[Sent {
        payload: plain,
        service: 1,
        channel: 22,
        never,
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snappy_exact_hits_both_lengths() {
        for (n, w) in [(1000, 60), (262_144, 12_400), (800, 100), (801, 100)] {
            let z = snappy_exact(n, w).unwrap();
            assert_eq!(z.len(), w);
            assert_eq!(
                snap::raw::Decoder::new().decompress_vec(&z).unwrap().len(),
                n
            );
        }
    }

    #[test]
    fn names_are_unique() {
        let all = catalogue();
        let mut names: Vec<_> = all.iter().map(|d| d.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
