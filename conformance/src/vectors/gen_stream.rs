//! Stream vectors (§2, §3, §12.2): several packets in one byte stream, fed in explicit
//! chunks, with the packets expected before the final status.

use serde_json::{json, Value};

use super::build::*;
use super::gen_header::pattern;
use super::json::hex;

/// A stream under construction: its bytes and the packets a receiver must deliver.
#[derive(Clone, Default)]
struct S {
    preface: bool,
    bytes: Vec<u8>,
    packets: Vec<Value>,
    max_payload: Option<u16>,
}

enum End {
    Complete,
    Incomplete,
    /// The error and the stream offset of the packet (or preface) that caused it.
    Error(&'static str, usize),
}

impl S {
    fn new() -> S {
        S::default()
    }

    fn with_preface() -> S {
        S {
            preface: true,
            bytes: PREFACE.to_vec(),
            ..S::default()
        }
    }

    /// Appends a packet the receiver must deliver.
    fn pkt(mut self, raw: Raw, payload: &[u8]) -> S {
        let length = u16::try_from(payload.len()).expect("fits");
        self.bytes.extend(raw.packet(payload));
        self.packets.push(json!({
            "header": Raw { length, ..raw }.expected(),
            "payload": hex(payload),
        }));
        self
    }

    /// Appends bytes that are not delivered (a failing or incomplete packet, or what
    /// follows an error).
    fn tail(mut self, bytes: &[u8]) -> S {
        self.bytes.extend_from_slice(bytes);
        self
    }

    fn max(mut self, max_payload: u16) -> S {
        self.max_payload = Some(max_payload);
        self
    }

    fn at(&self) -> usize {
        self.bytes.len()
    }

    fn vector(
        &self,
        id: String,
        reqs: &[&'static str],
        desc: &str,
        chunks: &[&[u8]],
        end: End,
    ) -> Vector {
        let mut expected = json!({ "packets": self.packets });
        let status = match end {
            End::Complete => "complete",
            End::Incomplete => "incomplete",
            End::Error(name, offset) => {
                expected["error"] = json!(name);
                expected["code"] = json!(code_of(name));
                expected["offset"] = json!(offset);
                "error"
            }
        };
        expected["status"] = json!(status);
        let mut reqs = reqs.to_vec();
        reqs.extend(["layer.split", "err.split-invariant"]);
        let mut v = vector(id, "12.2", &reqs, desc)
            .with("preface", json!(self.preface))
            .input(&self.bytes)
            .with(
                "chunks",
                json!(chunks.iter().map(|c| hex(c)).collect::<Vec<_>>()),
            );
        if let Some(m) = self.max_payload {
            v = v.with("max_payload", json!(m));
        }
        let encode = matches!(status, "complete");
        let expected_is_error = status == "error";
        if expected_is_error {
            v.fails(expected)
        } else {
            v.ok(expected, encode)
        }
    }

    /// The vector with the whole input as one chunk.
    fn whole(&self, id: &str, reqs: &[&'static str], desc: &str, end: End) -> Vector {
        self.vector(format!("stream.{id}"), reqs, desc, &[&self.bytes], end)
    }
}

fn hello() -> Vec<u8> {
    HelloFields::default().packet()
}

/// Every stream vector.
pub(crate) fn stream_vectors() -> Vec<Vector> {
    let mut v = Vec::new();
    preface(&mut v);
    packets(&mut v);
    errors(&mut v);
    chunkings(&mut v);
    splits(&mut v);
    v
}

fn preface(v: &mut Vec<Vector>) {
    let p = S::with_preface();
    v.push(p.whole(
        "preface.only",
        &["preface.check"],
        "the preface alone",
        End::Complete,
    ));
    let h = HelloFields::default();
    let with_hello = S::with_preface().pkt(Raw::ctl(HELLO, 0), &h.bytes());
    v.push(with_hello.whole(
        "preface.hello",
        &["preface.check", "preface.send"],
        "preface then HELLO",
        End::Complete,
    ));
    let more = with_hello
        .clone()
        .pkt(Raw::data(0).route(1, 1, 0), b"payload")
        .pkt(Raw::ctl(PING, 0), &ping_payload(1, 2));
    v.push(more.whole(
        "preface.hello-data-ping",
        &["preface.check"],
        "preface, HELLO, DATA, PING",
        End::Complete,
    ));
    for i in 0..8 {
        let mut bad = PREFACE;
        bad[i] ^= 0x20;
        let s = S {
            preface: true,
            ..S::new()
        }
        .tail(&bad)
        .tail(&hello());
        v.push(s.whole(
            &format!("preface.bad-byte-{i}"),
            &["preface.check"],
            &format!("byte {i} of the preface differs"),
            End::Error("BAD_PREFACE", 0),
        ));
    }
    let others: [(&str, &[u8], &str); 4] = [
        (
            "tls-record",
            &[0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1],
            "a TLS ClientHello record: TLS expected by the peer",
        ),
        ("http", b"GET / HTTP/1.1\r\n", "an HTTP request"),
        (
            "lf-only",
            &[0x89, 0x46, 0x57, 0x49, 0x52, 0x45, 0x0A, 0x10],
            "CR LF translated to LF",
        ),
        ("zeros", &[0; 8], "eight zero bytes"),
    ];
    for (id, bytes, desc) in others {
        let s = S {
            preface: true,
            ..S::new()
        }
        .tail(bytes);
        v.push(s.whole(
            &format!("preface.{id}"),
            &["preface.check"],
            desc,
            End::Error("BAD_PREFACE", 0),
        ));
    }
    for n in [0usize, 1, 7] {
        let s = S {
            preface: true,
            ..S::new()
        }
        .tail(&PREFACE[..n]);
        v.push(s.whole(
            &format!("preface.incomplete-{n}"),
            &["preface.check", "err.incomplete"],
            "a prefix of the preface: incomplete",
            End::Incomplete,
        ));
    }
    let s = S::with_preface().tail(&hello()[..5]);
    v.push(s.whole(
        "preface.then-partial-hello",
        &["err.incomplete"],
        "the preface and part of a HELLO header",
        End::Incomplete,
    ));
    // §3 [[preface.check]]: the receiver "MUST NOT report an error before" the first 8
    // bytes are available, even when 7 bytes already cannot begin the preface.
    let wrong7 = S {
        preface: true,
        ..S::new()
    }
    .tail(b"GET / H");
    v.push(wrong7.whole(
        "preface.wrong-7-bytes",
        &["preface.check", "err.incomplete"],
        "7 bytes that cannot begin the preface: still incomplete, no error before the 8th byte",
        End::Incomplete,
    ));
}

fn mixed() -> S {
    S::new()
        .pkt(Raw::data(0).route(3, 1, 2), b"first")
        .pkt(Raw::ctl(PING, 0), &ping_payload(9, 1000))
        .pkt(Raw::ctl(PONG, 0), &pong_payload(8, 900, 12))
        .pkt(Raw::ctl(CREDIT, 0), &credit_payload(4, 4096))
        .pkt(
            Raw::ctl(ERROR, 0).route(3, 0, 0).src(4),
            &error_payload(0x0101, &Raw::data(1).route(4, 9, 0).bytes(), b"no service"),
        )
        .pkt(Raw::data(0), b"")
        .pkt(
            Raw {
                n: true,
                hints: 0,
                ..Raw::data(0).route(3, 1, 2)
            },
            b"secret",
        )
        .pkt(Raw::ctl(GOAWAY, 0), &goaway_payload(0, 2, b"bye"))
}

fn packets(v: &mut Vec<Vector>) {
    v.push(mixed().whole(
        "packets.mixed",
        &[],
        "every kind, back to back",
        End::Complete,
    ));
    v.push(S::new().whole(
        "packets.empty-stream",
        &["err.incomplete"],
        "no bytes at all",
        End::Complete,
    ));
    let many = (0..40).fold(S::new(), |s, _| s.pkt(Raw::data(0), b""));
    v.push(many.whole("packets.empty-data-run", &[], "40 empty DATA packets: framing alone does not limit runs (§11 max_empty_run is a connection check)", End::Complete));
    let ext = S::new()
        .pkt(Raw::data(0).route(1, 0, 0).src(2), b"a")
        .pkt(Raw::data(0).route(1, 0, 0).src(3), b"bc");
    v.push(ext.whole(
        "packets.extensions",
        &["hdr.control-ext"],
        "DATA packets with 10-byte headers",
        End::Complete,
    ));
    let at = S::new()
        .max(1024)
        .pkt(Raw::data(0), &pattern(1024))
        .pkt(Raw::data(0), b"x");
    v.push(at.whole(
        "packets.at-custom-max",
        &["hdr.length-max"],
        "a 1024-byte payload at max_payload 1024, then another packet",
        End::Complete,
    ));
    let m = mixed();
    for (id, cut, desc) in [
        ("inside-header", 3usize, "ends 3 bytes into a header"),
        ("inside-payload", 10, "ends inside a payload"),
    ] {
        let s = m.clone().tail(&Raw::data(0).packet(b"abcdefgh")[..cut]);
        v.push(s.whole(
            &format!("packets.incomplete-{id}"),
            &["err.incomplete"],
            desc,
            End::Incomplete,
        ));
    }
    let s = m.clone().tail(&Raw::data(0).src(1).packet(b"abc")[..9]);
    v.push(s.whole(
        "packets.incomplete-inside-extension",
        &["err.incomplete"],
        "ends 9 bytes into a 10-byte header",
        End::Incomplete,
    ));
    let s = m.tail(&Raw::ctl(PING, 15).route(0, 0, 1).bytes()[..7]);
    v.push(s.whole(
        "packets.incomplete-invalid-header",
        &["err.incomplete", "hdr.order"],
        "ends 7 bytes into a header that will be invalid: not yet an error",
        End::Incomplete,
    ));
}

fn errors(v: &mut Vec<Vector>) {
    let two = || {
        S::new()
            .pkt(Raw::data(0).route(1, 0, 0), b"ok")
            .pkt(Raw::ctl(PING, 0), &ping_payload(1, 1))
    };
    let after = Raw::data(0).packet(b"never delivered");
    let header_errors: [(&str, Raw, &str, &[&'static str]); 5] = [
        (
            "unknown-kind",
            Raw {
                kind: 7,
                ..Raw::data(0)
            },
            "UNKNOWN_KIND",
            &["hdr.kind"],
        ),
        (
            "reserved-bit",
            Raw {
                r: 2,
                ..Raw::data(0)
            },
            "RESERVED_BIT",
            &["hdr.reserved"],
        ),
        (
            "bad-version",
            Raw {
                version: 2,
                ..Raw::data(0)
            },
            "UNSUPPORTED_VERSION",
            &["hdr.version"],
        ),
        (
            "control-route",
            Raw::ctl(CREDIT, 8).route(0, 2, 0),
            "BAD_CONTROL",
            &["hdr.control-route"],
        ),
        (
            "control-ext",
            Raw::ctl(PONG, 20).src(1),
            "BAD_FLAGS",
            &["hdr.control-ext"],
        ),
    ];
    for (id, raw, e, reqs) in header_errors {
        let s = two();
        let at = s.at();
        let s = s.tail(&raw.bytes()).tail(&after);
        v.push(s.whole(&format!("errors.{id}"), reqs, "two packets, then a bad header: the error is at the third packet; nothing after it is delivered", End::Error(e, at)));
    }
    let s = two().max(1024);
    let at = s.at();
    let s = s.tail(&Raw::data(1025).bytes());
    v.push(s.whole("errors.over-max-header-only", &["hdr.length-max"], "a header announcing 1025 bytes at max_payload 1024, and none of its payload: an error, not incomplete", End::Error("PAYLOAD_TOO_LARGE", at)));
    let payload_errors: [(&str, Vec<u8>, &str, &[&'static str]); 6] = [
        (
            "ping-15",
            Raw::ctl(PING, 0).packet(&[0; 15]),
            "BAD_CONTROL",
            &["ctl.malformed"],
        ),
        (
            "credit-zero",
            Raw::ctl(CREDIT, 0).packet(&credit_payload(0, 0)),
            "BAD_CONTROL",
            &["credit.zero"],
        ),
        (
            "goaway-reason-257",
            Raw::ctl(GOAWAY, 0).packet(&goaway_payload(0, 0, &[b'a'; 257])),
            "BAD_CONTROL",
            &["goaway.reason"],
        ),
        (
            "error-short",
            Raw::ctl(ERROR, 0).packet(&[1, 0, 0x10]),
            "BAD_CONTROL",
            &["error.layout"],
        ),
        (
            "hello-27",
            Raw::ctl(HELLO, 0).packet(&HelloFields::default().bytes()[..27]),
            "BAD_HELLO",
            &["hello.length"],
        ),
        (
            "hello-bad-role",
            Raw::ctl(HELLO, 0).packet(
                &HelloFields {
                    role: 9,
                    ..HelloFields::default()
                }
                .bytes(),
            ),
            "BAD_HELLO",
            &["hello.fields"],
        ),
    ];
    for (id, bytes, e, reqs) in payload_errors {
        let s = two();
        let at = s.at();
        let s = s.tail(&bytes).tail(&after);
        v.push(s.whole(
            &format!("errors.{id}"),
            reqs,
            "a control payload error once the third packet is complete",
            End::Error(e, at),
        ));
    }
    let s = S::with_preface().pkt(Raw::ctl(HELLO, 0), &HelloFields::default().bytes());
    let at = s.at();
    let s = s.tail(
        &Raw {
            kind: 11,
            ..Raw::data(0)
        }
        .bytes(),
    );
    v.push(s.whole(
        "errors.after-preface",
        &["hdr.kind"],
        "offsets count the preface",
        End::Error("UNKNOWN_KIND", at),
    ));
    let s = S::new().tail(
        &Raw {
            kind: 9,
            ..Raw::data(0)
        }
        .bytes(),
    );
    v.push(s.whole(
        "errors.first-packet",
        &["hdr.kind"],
        "the very first packet is bad",
        End::Error("UNKNOWN_KIND", 0),
    ));
}

fn chunkings(v: &mut Vec<Vector>) {
    let m = mixed();
    let b = &m.bytes;
    let per_byte3: Vec<&[u8]> = b.chunks(3).collect();
    v.push(m.vector(
        "stream.chunks.mixed-by-3".into(),
        &[],
        "the mixed stream in 3-byte reads",
        &per_byte3,
        End::Complete,
    ));
    let with_empty: Vec<&[u8]> = vec![&[], &b[..5], &[], &b[5..], &[]];
    v.push(m.vector(
        "stream.chunks.empty-reads".into(),
        &[],
        "empty reads change nothing",
        &with_empty,
        End::Complete,
    ));
    let s = S::with_preface()
        .pkt(Raw::ctl(HELLO, 0), &HelloFields::default().bytes())
        .pkt(Raw::data(0), b"z");
    let pre: Vec<&[u8]> = vec![&s.bytes[..4], &s.bytes[4..12], &s.bytes[12..]];
    v.push(s.vector(
        "stream.chunks.preface-split".into(),
        &["preface.check"],
        "the preface split across reads, joined with the HELLO header",
        &pre,
        End::Complete,
    ));
}

/// One stream split at every byte position, and fed one byte at a time.
fn split_family(v: &mut Vec<Vector>, name: &str, s: &S, end: impl Fn() -> End, desc: &str) {
    let b = &s.bytes;
    for cut in 1..b.len() {
        v.push(s.vector(
            format!("stream.split.{name}.at-{cut:02}"),
            &[],
            &format!("{desc}, split at byte {cut}"),
            &[&b[..cut], &b[cut..]],
            end(),
        ));
    }
    let bytewise: Vec<&[u8]> = b.chunks(1).collect();
    v.push(s.vector(
        format!("stream.split.{name}.bytewise"),
        &[],
        &format!("{desc}, one byte per read"),
        &bytewise,
        end(),
    ));
}

fn splits(v: &mut Vec<Vector>) {
    let ok = S::new()
        .pkt(Raw::data(0).route(1, 0, 0), b"hi")
        .pkt(Raw::ctl(CREDIT, 0), &credit_payload(1, 2));
    split_family(v, "data-credit", &ok, || End::Complete, "DATA then CREDIT");
    let bad = S::new().pkt(Raw::data(0), b"a");
    let at = bad.at();
    let bad = bad.tail(
        &Raw {
            kind: 7,
            ..Raw::data(0)
        }
        .bytes(),
    );
    split_family(
        v,
        "data-bad-kind",
        &bad,
        || End::Error("UNKNOWN_KIND", at),
        "DATA then an unknown kind",
    );
}
