//! Bodies of the fuzz targets (hidden; not part of the public API).
//!
//! Each `pub fn` takes the raw fuzzer input, drives one part of the crate and panics when
//! an invariant is violated. The cargo-fuzz targets in `fuzz/fuzz_targets/` are
//! three-line shims over these functions, and `tests/fuzz_corpus.rs` replays the
//! checked-in corpus through the same functions on stable `cargo test`.
//!
//! Input layouts (the seed generator `fuzz/seed.py` writes the same):
//!
//! | target | input |
//! |---|---|
//! | [`header`] | header bytes |
//! | [`packet_roundtrip`] | a stream of packets (no preface) |
//! | [`deframe_split`] | `ctl`, `seed`, then a stream of packets |
//! | [`control`] | `kind selector`, then a control payload |
//! | [`decompress`] | `mode`, `max_ratio`, `max_decompressed` (u24 BE), then a payload |
//! | `tls` | `ctl`, `seed`, `pos` (u16 BE), then TLS bytes or a plaintext stream |
//!
//! Every oracle here is written from the spec text, not from the code under test, so a
//! disagreement is a bug on one side or the other.

use crate::control::{Control, Hello};
use crate::deframer::Partial;
use crate::error::{Error, ErrorCode};
use crate::header::{Header, Kind, Route, Status};
use crate::limits::bounds;
use crate::packet::{Packet, PacketRef};
use crate::{Batch, Deframer};

mod connection;
pub use connection::{connection, connection_pair};

#[cfg(feature = "compression")]
mod compression;
#[cfg(feature = "compression")]
pub use compression::decompress;

#[cfg(feature = "test-certs")]
mod tls;
#[cfg(feature = "test-certs")]
pub use tls::tls;

/// Largest input the targets look at; longer inputs are cut (keeps runs fast and the
/// corpus replay bounded).
pub const MAX_INPUT: usize = 1 << 17;

fn clip(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT)]
}

// ---------------------------------------------------------------------------------------
// header
// ---------------------------------------------------------------------------------------

/// The first failing check of spec §4.9 for a complete header, computed independently of
/// `Header::parse`: `Ok(header length)` or the registry code.
fn spec_header_verdict(buf: &[u8], max_payload: u16) -> Result<usize, ErrorCode> {
    let (b0, b1) = (buf[0], buf[1]);
    let kind = b0 & 0x0F;
    let codec = (b1 >> 4) & 0x03;
    let never = b1 & 0x40 != 0;
    let ext = b1 & 0x80 != 0;
    let control = kind != 0;
    let hop_by_hop = kind != 0 && kind != 6;
    let length = u16::from_be_bytes([buf[2], buf[3]]);
    let route_zero = buf[4..8].iter().all(|&b| b == 0);
    let checks = [
        (b0 >> 4 != 1, ErrorCode::UNSUPPORTED_VERSION),
        (kind > 6, ErrorCode::UNKNOWN_KIND),
        (b1 & 0x0C != 0, ErrorCode::RESERVED_BIT),
        (codec == 3, ErrorCode::BAD_FLAGS),
        (control && (codec != 0 || never), ErrorCode::BAD_FLAGS),
        (never && codec != 0, ErrorCode::BAD_FLAGS),
        (hop_by_hop && ext, ErrorCode::BAD_FLAGS),
        (length > max_payload, ErrorCode::PAYLOAD_TOO_LARGE),
        (hop_by_hop && !route_zero, ErrorCode::BAD_CONTROL),
    ];
    match checks.iter().find(|(failed, _)| *failed) {
        Some((_, code)) => Err(*code),
        None => Ok(if ext {
            Header::MAX_LEN
        } else {
            Header::BASE_LEN
        }),
    }
}

/// `Header::parse` never panics; reports nothing before the header is complete (§4.9);
/// agrees with the §4.9 checks in order; and a complete header re-encodes to the input
/// prefix byte for byte and re-parses to itself.
pub fn header(data: &[u8]) {
    let data = &data[..data.len().min(Header::MAX_LEN + 2)];
    for max_payload in [u16::MAX, bounds::MIN_MAX_PAYLOAD, 0] {
        header_with_limit(data, max_payload);
    }
}

fn header_with_limit(data: &[u8], max_payload: u16) {
    let parsed = Header::parse(data, max_payload);
    let needed_len = match data.get(1) {
        Some(b1) if b1 & 0x80 != 0 => Header::MAX_LEN,
        _ => Header::BASE_LEN,
    };
    if data.len() < needed_len {
        // spec §4.9: no error until the complete header is available. `needed` is a
        // lower bound: before byte 1 arrives the extension cannot be known, and the
        // parser asks for the base header first.
        let Ok(Status::Incomplete { needed }) = parsed else {
            panic!("{data:02x?}: {parsed:?} before the header is complete");
        };
        assert!(
            needed >= 1 && needed <= needed_len - data.len(),
            "{data:02x?}: needed {needed}"
        );
        assert!(
            data.len() + needed >= Header::BASE_LEN,
            "{data:02x?}: needed {needed}"
        );
        return;
    }
    let verdict = spec_header_verdict(data, max_payload);
    let header = match (parsed, verdict) {
        (Ok(Status::Complete(h)), Ok(len)) => {
            assert_eq!(h.len(), len);
            h
        }
        (Err(e), Err(code)) => {
            assert_eq!(e.code(), code, "wrong code for {data:02x?}");
            return;
        }
        (got, want) => panic!("Header::parse({data:02x?}) = {got:?}, spec says {want:?}"),
    };
    let mut out = [0u8; Header::MAX_LEN];
    let n = header.encode(&mut out);
    // Header encoding is canonical: every field, hint bits included, is kept.
    assert_eq!(&out[..n], &data[..n], "re-encoding differs");
    let mut v = Vec::new();
    header.encode_to_vec(&mut v);
    assert_eq!(v, &out[..n]);
    assert_eq!(
        Header::parse(&out[..n], max_payload),
        Ok(Status::Complete(header))
    );
    assert_eq!(header.packet_len(), n + usize::from(header.length));
}

// ---------------------------------------------------------------------------------------
// packets
// ---------------------------------------------------------------------------------------

/// Parses packets one after another with `PacketRef::parse`: each re-encodes to exactly
/// its input bytes (borrowed and owned forms), and the whole sequence, with its error or
/// incomplete tail, matches what a `Deframer` fed the same bytes at once produces.
pub fn packet_roundtrip(data: &[u8]) {
    let data = clip(data);
    let mut rest = data;
    let mut packets = Vec::new();
    let mut error = None;
    loop {
        match PacketRef::parse(rest, u16::MAX) {
            Ok(Status::Complete((pkt, tail))) => {
                let consumed = rest.len() - tail.len();
                assert_eq!(consumed, pkt.header.packet_len());
                let mut wire = Vec::new();
                pkt.header.encode_to_vec(&mut wire);
                wire.extend_from_slice(pkt.payload);
                assert_eq!(wire, &rest[..consumed], "packet re-encoding differs");
                let owned = pkt.to_packet();
                assert_eq!(owned.to_vec(), wire);
                assert_eq!(owned.as_ref(), pkt);
                packets.push(owned);
                rest = tail;
            }
            Ok(Status::Incomplete { needed }) => {
                assert!(needed > 0);
                break;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let whole = deframe(data, u16::MAX, &mut std::iter::empty(), false);
    assert_eq!(whole.packets, packets, "Deframer and PacketRef disagree");
    let offset = (data.len() - rest.len()) as u64;
    assert_eq!(whole.error, error.map(|e| (e, offset)));
}

// ---------------------------------------------------------------------------------------
// deframer
// ---------------------------------------------------------------------------------------

/// What a deframer made of a stream.
#[derive(PartialEq, Debug)]
struct Outcome {
    packets: Vec<Packet>,
    /// The error and the stream offset of the packet that failed.
    error: Option<(Error, u64)>,
    /// Bytes left buffered and how much of a packet they hold, when no error occurred.
    tail: Option<(usize, Partial)>,
}

/// Feeds `stream` to a fresh deframer: first `chunks` lengths (cut to what is left), then
/// the rest at once, draining packets after every read. With `peek`, asks for the pending
/// header after each read as a connection does (§6.3).
fn deframe(
    stream: &[u8],
    max_payload: u16,
    chunks: &mut dyn Iterator<Item = usize>,
    peek: bool,
) -> Outcome {
    deframe_with(stream, max_payload, chunks, peek, None)
}

/// [`deframe`], taking packets with `next_batch(max)` when `batch` is `Some(max)`.
fn deframe_with(
    stream: &[u8],
    max_payload: u16,
    chunks: &mut dyn Iterator<Item = usize>,
    peek: bool,
    batch: Option<usize>,
) -> Outcome {
    let mut d = Deframer::new(max_payload);
    let mut b = Batch::default();
    let mut packets = Vec::new();
    let mut error = None;
    let mut pos = 0;
    while pos < stream.len() || pos == 0 {
        let n = chunks.next().unwrap_or(usize::MAX).min(stream.len() - pos);
        d.extend(&stream[pos..pos + n]);
        pos += n;
        if peek {
            if let Err(e) = d.pending_header() {
                assert_eq!(
                    d.next_packet(),
                    Err(e),
                    "pending_header and next_packet disagree"
                );
            }
        }
        loop {
            match take(&mut d, &mut b, batch, &mut packets) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let at = d.offset();
                    // The error is sticky, and so is its location (§12.1).
                    if let Some(first) = error {
                        assert_eq!(first, (e, at), "error changed after more input");
                    }
                    error = Some((e, at));
                    break;
                }
            }
        }
        if stream.is_empty() {
            break;
        }
    }
    let consumed: u64 = packets.iter().map(|p| p.header.packet_len() as u64).sum();
    let tail = match error {
        Some((_, at)) => {
            assert_eq!(
                at, consumed,
                "error offset is not the failing packet's start"
            );
            None
        }
        None => {
            assert_eq!(d.offset(), consumed);
            assert_eq!(consumed as usize + d.buffered(), stream.len());
            Some((d.buffered(), d.partial()))
        }
    };
    let mut wire = Vec::new();
    for p in &packets {
        p.encode_to_vec(&mut wire);
    }
    assert_eq!(
        wire,
        &stream[..wire.len()],
        "packets do not re-encode to the stream"
    );
    Outcome {
        packets,
        error,
        tail,
    }
}

/// Takes the next packet (or batch of packets) into `out`; `Ok(false)` when none is
/// complete.
fn take(
    d: &mut Deframer,
    b: &mut Batch,
    batch: Option<usize>,
    out: &mut Vec<Packet>,
) -> Result<bool, Error> {
    let Some(max) = batch else {
        let p = d.next_packet()?;
        if let Some(p) = &p {
            assert_eq!(p.header.length as usize, p.payload.len());
        }
        out.extend(p.clone());
        return Ok(p.is_some());
    };
    let n = d.next_batch(b, max)?;
    assert!(n <= max && n == b.len() && b.is_empty() == (n == 0));
    for (i, view) in b.iter().enumerate() {
        let owned = b.packet(i).expect("index within the batch");
        assert_eq!(owned.as_ref(), view);
        out.push(owned);
    }
    assert!(b.packet(n).is_none());
    Ok(n > 0)
}

/// Chunk lengths from a xorshift generator: small, mixed with zero-length reads.
struct Chunks {
    state: u64,
    max: usize,
}

impl Iterator for Chunks {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        Some((self.state % (self.max as u64 + 1)) as usize)
    }
}

/// Spec §12.2 [[err.split-invariant]]: feeding the same stream split into reads at
/// arbitrary points gives exactly the same packets, and the same error at the same
/// offset, as feeding it whole.
///
/// Input: `ctl` (bits 0–1 choose `max_payload` among 65535, 1024, 16, 0; bit 2 peeks at
/// the pending header after each read; bits 3–5 choose the largest chunk; bit 6 takes
/// packets with `next_batch`), `seed` (the chunk lengths; with bit 6, bits 0–1 and 7 the
/// batch size), then the stream.
pub fn deframe_split(data: &[u8]) {
    let data = clip(data);
    let [ctl, seed, stream @ ..] = data else {
        return;
    };
    let max_payload = [u16::MAX, bounds::MIN_MAX_PAYLOAD, 16, 0][usize::from(ctl & 0x03)];
    let peek = ctl & 0x04 != 0;
    let max_chunk = [1, 2, 3, 7, 9, 16, 64, 300][usize::from((ctl >> 3) & 0x07)];
    let whole = deframe(stream, max_payload, &mut std::iter::empty(), false);
    let mut chunks = Chunks {
        state: 0x9E37_79B9_7F4A_7C15 ^ (u64::from(*seed) << 32 | stream.len() as u64),
        max: max_chunk,
    };
    // ctl bit 6: take packets in batches of 1–4, or of any size when seed bit 7 is set.
    let batch = (ctl & 0x40 != 0).then_some(if seed & 0x80 != 0 {
        usize::MAX
    } else {
        1 + usize::from(seed & 0x03)
    });
    let split = deframe_with(stream, max_payload, &mut chunks, peek, batch);
    assert_eq!(split, whole, "split reads changed the result (§12.2)");
    if stream.len() <= 4096 {
        let bytewise = deframe(stream, max_payload, &mut std::iter::repeat(1), !peek);
        assert_eq!(
            bytewise, whole,
            "byte-at-a-time reads changed the result (§12.2)"
        );
    }
}

// ---------------------------------------------------------------------------------------
// control payloads
// ---------------------------------------------------------------------------------------

/// Whether a reason is valid: at most 256 bytes of UTF-8 (§5.5, §5.7).
fn spec_reason_ok(b: &[u8]) -> bool {
    b.len() <= 256 && std::str::from_utf8(b).is_ok()
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The rules of the HELLO table (§5.2, §11), written from the spec.
fn spec_hello_ok(p: &[u8]) -> bool {
    if !(28..=1024).contains(&p.len()) {
        return false;
    }
    let (min_v, max_v, role) = (p[0], p[1], p[2]);
    let node_id = u16::from_be_bytes([p[4], p[5]]);
    let max_payload = u16::from_be_bytes([p[10], p[11]]);
    let (max_dec, credit_p, credit_b, idle) = (be32(p, 12), be32(p, 16), be32(p, 20), be32(p, 24));
    let id_ok = match role {
        1 => node_id == 0,
        2 | 3 => node_id != 0 && node_id != 0xFFFF,
        _ => false,
    };
    min_v >= 1
        && max_v >= min_v
        && id_ok
        && p[9] >= 1
        && max_payload >= 1024
        && (1024..=16_777_216).contains(&max_dec)
        && (1..=1_048_576).contains(&credit_p)
        && credit_b >= u32::from(max_payload)
        && credit_b <= 2_147_483_647
        && (idle == 0 || idle >= 1000)
}

/// Whether a control payload of `kind` is valid per §5, written from the spec.
fn spec_control_ok(kind: Kind, p: &[u8]) -> bool {
    match kind {
        Kind::Data => false,
        Kind::Hello => spec_hello_ok(p),
        Kind::Ping => p.len() == 16,
        Kind::Pong => p.len() == 20,
        Kind::Goaway => p.len() >= 10 && spec_reason_ok(&p[10..]),
        Kind::Credit => p.len() == 8 && p.iter().any(|&b| b != 0),
        Kind::Error => {
            let header_len = match p.get(3) {
                Some(b) if b & 0x80 != 0 => 10,
                _ => 8,
            };
            p.len() >= 2 + header_len && spec_reason_ok(&p[2 + header_len..])
        }
    }
}

/// `Control::parse` never panics, accepts exactly the payloads §5 allows, reports
/// BAD_HELLO for HELLO and BAD_CONTROL for the others, and a parsed payload re-encodes
/// byte for byte, alone and inside a whole packet.
///
/// Input: a selector (low 3 bits: the kind, 7 = try every kind), then the payload.
pub fn control(data: &[u8]) {
    let data = clip(data);
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    match Kind::from_u4(sel & 0x07) {
        Some(kind) => control_kind(kind, payload),
        None => Kind::ALL.iter().for_each(|&k| control_kind(k, payload)),
    }
}

fn control_kind(kind: Kind, payload: &[u8]) {
    let parsed = Control::parse(kind, payload);
    let expected_ok = spec_control_ok(kind, payload);
    let c = match parsed {
        Ok(c) => {
            assert!(
                expected_ok,
                "{kind:?} accepted an invalid payload {payload:02x?}"
            );
            c
        }
        Err(e) => {
            assert!(
                !expected_ok,
                "{kind:?} rejected a valid payload {payload:02x?}: {e}"
            );
            let want = match kind {
                Kind::Hello => ErrorCode::BAD_HELLO,
                Kind::Data => ErrorCode::INTERNAL_ERROR,
                _ => ErrorCode::BAD_CONTROL,
            };
            assert_eq!(e.code(), want, "{kind:?}: {e}");
            return;
        }
    };
    assert_eq!(c.kind(), kind);
    let mut out = Vec::new();
    c.encode(&mut out);
    assert_eq!(out, payload, "{kind:?} payload re-encoding differs");
    if let Control::Hello(h) = c {
        assert_eq!(Hello::parse(&out), Ok(h));
    }
    // The whole packet: header with the right length, then the same payload.
    let (route, source) = match kind {
        Kind::Error => (Route::new(0xFFFE, 0, 0), Some(7)),
        _ => (Route::default(), None),
    };
    let mut wire = Vec::new();
    c.encode_routed(route, source, &mut wire);
    let Ok(Status::Complete((pkt, rest))) = PacketRef::parse(&wire, u16::MAX) else {
        panic!("{kind:?} packet does not parse: {wire:02x?}");
    };
    assert!(rest.is_empty());
    assert_eq!(
        (pkt.header.kind, pkt.header.route, pkt.header.source),
        (kind, route, source)
    );
    assert_eq!(pkt.payload, payload);
    assert_eq!(Control::parse(kind, pkt.payload), Ok(c));
}

// ---------------------------------------------------------------------------------------
// inspect
// ---------------------------------------------------------------------------------------

/// The CLI's `inspect` path never panics, prints one line per packet (and the preface),
/// and ends where a deframer fed the same bytes ends: same packets, same error at the
/// same offset, or incomplete at the unfinished packet. Each JSON line is one valid JSON
/// object (RFC 8259 syntax, checked by a small validator below).
///
/// Input: `ctl` (bit 0: JSON; bit 1: hex payloads; bits 2–3: `max_payload` among 65535,
/// 1024, 16, 0), then the stream, with or without the preface.
pub fn inspect(data: &[u8]) {
    use crate::inspect::{inspect, End, Options};
    let data = clip(data);
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let opts = Options {
        json: ctl & 0x01 != 0,
        hex: ctl & 0x02 != 0,
        max_payload: [u16::MAX, bounds::MIN_MAX_PAYLOAD, 16, 0][usize::from((ctl >> 2) & 0x03)],
    };
    let (text, end) = inspect(stream, &opts);
    let (skip, preface) = match crate::packet::check_preface(stream) {
        _ if stream.first() != Some(&crate::PREFACE[0]) => (0, None),
        Ok(Status::Complete(n)) => (n, Some(Ok(()))),
        Ok(Status::Incomplete { needed }) => {
            assert_eq!(end, End::Incomplete { offset: 0, needed });
            assert!(text.is_empty());
            return;
        }
        Err(e) => (0, Some(Err(e))),
    };
    if let Some(Err(error)) = preface {
        assert_eq!(end, End::Invalid { offset: 0, error });
        return;
    }
    let body = &stream[skip..];
    let got = deframe(body, opts.max_payload, &mut std::iter::empty(), false);
    let lines = text.lines().count();
    assert!(text.is_empty() || text.ends_with('\n'));
    assert_eq!(
        lines,
        got.packets.len() + usize::from(preface.is_some()),
        "{text}"
    );
    let consumed = got
        .packets
        .iter()
        .map(|p| p.header.packet_len())
        .sum::<usize>();
    match (end, got.error, got.tail) {
        (End::Complete, None, Some((0, _))) => {}
        (End::Incomplete { offset, needed }, None, Some((n, _))) => {
            assert!(n > 0 && needed > 0);
            assert_eq!(offset, skip + consumed);
        }
        (End::Invalid { offset, error }, Some((e, at)), None) => {
            assert_eq!((error, offset), (e, skip + at as usize));
        }
        (end, error, tail) => panic!("inspect ended {end:?}, deframer {error:?} {tail:?}"),
    }
    if opts.json {
        for line in text.lines() {
            let mut at = 0;
            let b = line.as_bytes();
            let valid =
                b.starts_with(b"{\"offset\":") && json::value(b, &mut at, 0) && at == b.len();
            assert!(valid, "invalid JSON line at byte {at}: {line:?}");
        }
    }
}

/// A JSON syntax checker (RFC 8259), enough to validate `inspect --json` lines without a
/// dependency.
mod json {
    fn ws(b: &[u8], at: &mut usize) {
        while matches!(b.get(*at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            *at += 1;
        }
    }

    fn eat(b: &[u8], at: &mut usize, c: u8) -> bool {
        ws(b, at);
        let ok = b.get(*at) == Some(&c);
        *at += usize::from(ok);
        ok
    }

    fn digits(b: &[u8], at: &mut usize) -> bool {
        let start = *at;
        while b.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at > start
    }

    fn number(b: &[u8], at: &mut usize) -> bool {
        eat(b, at, b'-');
        if b.get(*at) == Some(&b'0') {
            *at += 1;
        } else if !digits(b, at) {
            return false;
        }
        if b.get(*at) == Some(&b'.') {
            *at += 1;
            if !digits(b, at) {
                return false;
            }
        }
        if matches!(b.get(*at), Some(b'e' | b'E')) {
            *at += 1;
            if matches!(b.get(*at), Some(b'+' | b'-')) {
                *at += 1;
            }
            return digits(b, at);
        }
        true
    }

    fn string(b: &[u8], at: &mut usize) -> bool {
        if !eat(b, at, b'"') {
            return false;
        }
        loop {
            match b.get(*at) {
                None => return false,
                Some(b'"') => {
                    *at += 1;
                    return true;
                }
                Some(b'\\') => {
                    *at += 1;
                    match b.get(*at) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => *at += 1,
                        Some(b'u')
                            if b.len() >= *at + 5
                                && b[*at + 1..*at + 5].iter().all(u8::is_ascii_hexdigit) =>
                        {
                            *at += 5;
                        }
                        _ => return false,
                    }
                }
                Some(&c) if c < 0x20 => return false,
                Some(_) => *at += 1,
            }
        }
    }

    fn list(b: &[u8], at: &mut usize, close: u8, depth: usize, keyed: bool) -> bool {
        if eat(b, at, close) {
            return true;
        }
        loop {
            if keyed && !(string(b, at) && eat(b, at, b':')) {
                return false;
            }
            if !value(b, at, depth + 1) {
                return false;
            }
            if eat(b, at, close) {
                return true;
            }
            if !eat(b, at, b',') {
                return false;
            }
        }
    }

    /// Whether a JSON value starts at `at` (moved past it and trailing whitespace).
    pub(super) fn value(b: &[u8], at: &mut usize, depth: usize) -> bool {
        ws(b, at);
        let ok = depth < 64
            && match b.get(*at) {
                Some(b'{') => {
                    *at += 1;
                    list(b, at, b'}', depth, true)
                }
                Some(b'[') => {
                    *at += 1;
                    list(b, at, b']', depth, false)
                }
                Some(b'"') => string(b, at),
                Some(b't') | Some(b'f') | Some(b'n') => ["true", "false", "null"].iter().any(|w| {
                    let hit = b[*at..].starts_with(w.as_bytes());
                    *at += if hit { w.len() } else { 0 };
                    hit
                }),
                Some(_) => number(b, at),
                None => false,
            };
        ws(b, at);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_empty_and_tiny_inputs() {
        for len in 0..12 {
            let data = vec![0x10; len];
            header(&data);
            packet_roundtrip(&data);
            deframe_split(&data);
            control(&data);
            inspect(&data);
            connection(&data);
            connection_pair(&data);
            #[cfg(feature = "compression")]
            decompress(&data);
        }
    }

    #[test]
    fn json_checker_accepts_json_and_rejects_the_rest() {
        let ok = |s: &str| {
            let mut at = 0;
            json::value(s.as_bytes(), &mut at, 0) && at == s.len()
        };
        assert!(ok(r#"{"a":[1,-2.5e3,true,null,"x\"\u00e9"],"b":{}}"#));
        assert!(!ok(r#"{"a":1,}"#) && !ok("{\"a\":\"\n\"}") && !ok("[01]") && !ok("{} x"));
    }

    #[test]
    fn spec_header_verdict_follows_the_order() {
        let v = |b: [u8; 8]| spec_header_verdict(&b, u16::MAX);
        assert_eq!(
            v([0x2F, 0x0C, 0, 0, 0, 0, 0, 0]),
            Err(ErrorCode::UNSUPPORTED_VERSION)
        );
        assert_eq!(
            v([0x12, 0x00, 0, 0, 0, 0, 0, 1]),
            Err(ErrorCode::BAD_CONTROL)
        );
        assert_eq!(v([0x16, 0x80, 0, 0, 0, 1, 0, 0]), Ok(10));
    }
}
