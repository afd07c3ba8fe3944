//! Header (§4) and packet (§4.5, §12.2) vectors.

use serde_json::json;

use super::build::*;
use super::json::hex;

const HOP_KINDS: [u8; 5] = [HELLO, PING, PONG, GOAWAY, CREDIT];
const CONTROL_KINDS: [u8; 6] = [HELLO, PING, PONG, GOAWAY, CREDIT, ERROR];

fn lower(kind: u8) -> String {
    KIND_NAMES[usize::from(kind)].to_lowercase()
}

/// A valid header: decodes to its fields, and encoding them reproduces it.
fn valid(id: String, section: &'static str, reqs: &[&'static str], desc: &str, raw: Raw) -> Vector {
    let mut reqs = reqs.to_vec();
    reqs.extend(["hdr.version-send", "hdr.reserved-send"]);
    if raw.hints == 0 {
        reqs.push("hdr.hint-send");
    }
    vector(id, section, &reqs, desc)
        .input(&raw.bytes())
        .ok(raw.expected(), true)
}

fn invalid(
    id: String,
    section: &'static str,
    reqs: &[&'static str],
    desc: &str,
    raw: Raw,
    e: &str,
) -> Vector {
    let mut reqs = reqs.to_vec();
    reqs.push("hdr.order");
    vector(id, section, &reqs, desc)
        .input(&raw.bytes())
        .fails(err(e))
}

/// Every header vector.
pub(crate) fn header_vectors() -> Vec<Vector> {
    let mut v = Vec::new();
    valid_headers(&mut v);
    version_and_kind(&mut v);
    flags(&mut v);
    length_and_route(&mut v);
    order(&mut v);
    incomplete(&mut v);
    v
}

fn valid_headers(v: &mut Vec<Vector>) {
    for kind in CONTROL_KINDS {
        v.push(valid(
            format!("header.valid.{}", lower(kind)),
            "4.3",
            &["hdr.kind"],
            "an assigned kind with a zero route and no flags",
            Raw::ctl(kind, 16),
        ));
    }
    let data = Raw::data(5).route(7, 1, 3);
    v.push(valid(
        "header.valid.data-routed".into(),
        "4.6",
        &["hdr.kind"],
        "DATA with a route",
        data,
    ));
    v.push(valid(
        "header.valid.data-empty".into(),
        "5.1",
        &[],
        "DATA with an empty payload",
        Raw::data(0),
    ));
    v.push(valid(
        "header.valid.data-max-fields".into(),
        "4.6",
        &[],
        "DATA with every route field at its maximum (0xFFFF is reserved as a node id but is not a header error)",
        Raw::data(9).route(0xFFFF, 0xFF, 0xFF),
    ));
    for (cod, name) in [(1u8, "snappy"), (2, "zlib")] {
        v.push(valid(
            format!("header.valid.data-{name}"),
            "4.4",
            &["hdr.codec-reserved"],
            &format!("DATA compressed with {name}"),
            Raw {
                cod,
                ..Raw::data(20)
            },
        ));
    }
    v.push(valid(
        "header.valid.data-never-compress".into(),
        "4.4",
        &["hdr.never-compress"],
        "DATA with N = 1 and Cod = 0",
        Raw {
            n: true,
            ..Raw::data(4)
        },
    ));
    v.push(valid(
        "header.valid.data-extension".into(),
        "4.7",
        &["hdr.control-ext"],
        "DATA with X = 1: the header is 10 bytes and carries the source node",
        Raw::data(3).route(9, 2, 1).src(0x0102),
    ));
    v.push(valid(
        "header.valid.error-extension".into(),
        "4.7",
        &["hdr.control-ext"],
        "ERROR may carry the extension: it is routed",
        Raw::ctl(ERROR, 12).route(4, 0, 0).src(77),
    ));
    v.push(valid(
        "header.valid.error-routed".into(),
        "4.6",
        &["hdr.control-route"],
        "ERROR is routed: a non-zero route is allowed",
        Raw::ctl(ERROR, 10).route(3, 0, 0),
    ));
    for hints in 1..=3u8 {
        v.push(
            valid(
                format!("header.hints.{hints}"),
                "4.8",
                &["hdr.hint"],
                "hint bits are ignored by the receiver and kept for forwarding",
                Raw {
                    hints,
                    ..Raw::data(1)
                },
            )
            .flag("NonConformingSender"),
        );
    }
    v.push(
        valid(
            "header.hints.ping".into(),
            "4.8",
            &["hdr.hint"],
            "hint bits on a control packet are ignored too",
            Raw {
                hints: 2,
                ..Raw::ctl(PING, 16)
            },
        )
        .flag("NonConformingSender"),
    );
}

fn version_and_kind(v: &mut Vec<Vector>) {
    for version in [0u8, 2, 3, 15] {
        v.push(invalid(
            format!("header.version.{version}"),
            "4.2",
            &["hdr.version"],
            "a Version field other than 1 (no version other than 1 is negotiable)",
            Raw {
                version,
                ..Raw::data(0)
            },
            "UNSUPPORTED_VERSION",
        ));
    }
    v.push(invalid(
        "header.version.2-hello".into(),
        "4.2",
        &["hdr.version"],
        "a HELLO must carry version 1",
        Raw {
            version: 2,
            ..Raw::ctl(HELLO, 28)
        },
        "UNSUPPORTED_VERSION",
    ));
    for kind in 7u8..=15 {
        v.push(invalid(
            format!("header.kind.unassigned-{kind}"),
            "4.3",
            &["hdr.kind"],
            "an unassigned packet kind",
            Raw {
                kind,
                ..Raw::data(0)
            },
            "UNKNOWN_KIND",
        ));
    }
}

fn flags(v: &mut Vec<Vector>) {
    for (r, name) in [(1u8, "0x04"), (2, "0x08"), (3, "both")] {
        v.push(invalid(
            format!("header.reserved.{name}"),
            "4.8",
            &["hdr.reserved"],
            "a reserved R bit is set",
            Raw { r, ..Raw::data(0) },
            "RESERVED_BIT",
        ));
    }
    v.push(invalid(
        "header.reserved.on-ping".into(),
        "4.8",
        &["hdr.reserved"],
        "a reserved R bit on a control packet",
        Raw {
            r: 1,
            ..Raw::ctl(PING, 16)
        },
        "RESERVED_BIT",
    ));
    v.push(invalid(
        "header.codec.reserved-3".into(),
        "4.4",
        &["hdr.codec-reserved"],
        "Cod = 3 is reserved",
        Raw {
            cod: 3,
            ..Raw::data(4)
        },
        "BAD_FLAGS",
    ));
    for cod in [1u8, 2] {
        v.push(invalid(
            format!("header.never-compress.codec-{cod}"),
            "4.4",
            &["hdr.never-compress"],
            "N = 1 with a codec",
            Raw {
                n: true,
                cod,
                ..Raw::data(4)
            },
            "BAD_FLAGS",
        ));
    }
    for kind in CONTROL_KINDS {
        for (cod, n, what) in [
            (1u8, false, "snappy"),
            (2, false, "zlib"),
            (0, true, "never-compress"),
        ] {
            v.push(invalid(
                format!("header.control-flags.{}-{what}", lower(kind)),
                "4.4",
                &["hdr.control-flags"],
                "control packets are never compressed nor marked N",
                Raw {
                    cod,
                    n,
                    ..Raw::ctl(kind, 16)
                },
                "BAD_FLAGS",
            ));
        }
    }
    for kind in HOP_KINDS {
        v.push(invalid(
            format!("header.control-ext.{}", lower(kind)),
            "4.7",
            &["hdr.control-ext"],
            "a hop-by-hop control packet with X = 1",
            Raw::ctl(kind, 16).src(5),
            "BAD_FLAGS",
        ));
    }
}

fn length_and_route(v: &mut Vec<Vector>) {
    let at = Raw::data(1024);
    v.push(
        valid(
            "header.length.at-custom-max".into(),
            "4.5",
            &["hdr.length-max"],
            "Payload Length equal to a max_payload of 1024",
            at,
        )
        .with("max_payload", json!(1024)),
    );
    v.push(
        invalid(
            "header.length.over-custom-max".into(),
            "4.5",
            &["hdr.length-max"],
            "Payload Length 1025 above a max_payload of 1024, rejected from the header alone",
            Raw::data(1025),
            "PAYLOAD_TOO_LARGE",
        )
        .with("max_payload", json!(1024)),
    );
    v.push(valid(
        "header.length.at-default-max".into(),
        "4.5",
        &["hdr.length-max"],
        "Payload Length 65535 with the default max_payload (65535 + 1 does not fit the field)",
        Raw::data(65_535),
    ));
    v.push(
        invalid(
            "header.length.control-over-max".into(),
            "4.5",
            &["hdr.length-max"],
            "the length check applies to control packets too",
            Raw::ctl(GOAWAY, 4000),
            "PAYLOAD_TOO_LARGE",
        )
        .with("max_payload", json!(1024)),
    );
    for kind in HOP_KINDS {
        for (what, raw) in [
            ("node", Raw::ctl(kind, 16).route(1, 0, 0)),
            ("service", Raw::ctl(kind, 16).route(0, 1, 0)),
            ("channel", Raw::ctl(kind, 16).route(0, 0, 1)),
        ] {
            v.push(invalid(
                format!("header.control-route.{}-{what}", lower(kind)),
                "4.6",
                &["hdr.control-route"],
                "a hop-by-hop control packet with a non-zero route field",
                raw,
                "BAD_CONTROL",
            ));
        }
    }
}

/// Headers with two violations: the earlier check of §4.9 decides the code.
fn order(v: &mut Vec<Vector>) {
    let cases: [(&str, Raw, &str, &str); 9] = [
        (
            "version-before-kind",
            Raw {
                version: 2,
                kind: 9,
                ..Raw::data(0)
            },
            "UNSUPPORTED_VERSION",
            "step 1 before 2",
        ),
        (
            "kind-before-reserved",
            Raw {
                kind: 8,
                r: 3,
                ..Raw::data(0)
            },
            "UNKNOWN_KIND",
            "step 2 before 3",
        ),
        (
            "reserved-before-codec",
            Raw {
                r: 1,
                cod: 3,
                ..Raw::data(0)
            },
            "RESERVED_BIT",
            "step 3 before 4",
        ),
        (
            "reserved-before-length",
            Raw {
                r: 2,
                ..Raw::data(2000)
            },
            "RESERVED_BIT",
            "step 3 before 8",
        ),
        (
            "codec-before-length",
            Raw {
                cod: 3,
                ..Raw::data(2000)
            },
            "BAD_FLAGS",
            "step 4 before 8",
        ),
        (
            "control-ext-before-length",
            Raw::ctl(PING, 2000).src(1),
            "BAD_FLAGS",
            "step 7 before 8",
        ),
        (
            "length-before-route",
            Raw::ctl(PING, 2000).route(1, 0, 0),
            "PAYLOAD_TOO_LARGE",
            "step 8 before 9",
        ),
        (
            "control-flags-before-route",
            Raw {
                cod: 1,
                ..Raw::ctl(CREDIT, 8).route(0, 0, 4)
            },
            "BAD_FLAGS",
            "step 5 before 9",
        ),
        (
            "version-before-everything",
            Raw {
                version: 0,
                kind: 15,
                r: 3,
                cod: 3,
                n: true,
                ..Raw::data(65_535).route(1, 1, 1)
            },
            "UNSUPPORTED_VERSION",
            "step 1 before all",
        ),
    ];
    for (name, raw, e, why) in cases {
        v.push(
            invalid(
                format!("header.order.{name}"),
                "4.9",
                &[],
                &format!("two violations: {why}"),
                raw,
                e,
            )
            .with("max_payload", json!(1024)),
        );
    }
}

fn incomplete(v: &mut Vec<Vector>) {
    let full = Raw::data(3).route(1, 0, 0).bytes();
    for n in [0usize, 1, 7] {
        v.push(
            vector(
                format!("header.incomplete.base-{n}-bytes"),
                "4.9",
                &["hdr.order", "err.incomplete"],
                "fewer than 8 bytes: incomplete, not an error",
            )
            .input(&full[..n])
            .ok(json!({ "incomplete": 8 - n }), false),
        );
    }
    let ext = Raw::data(3).src(9).bytes();
    // spec §12.2: the count goes to the end of the current stage (8, then 10 with X = 1)
    for n in [1usize, 2, 5, 7, 8, 9] {
        let (needed, why) = if n < 8 {
            (
                8 - n,
                "X = 1, fewer than 8 bytes: 8 − length more bytes to the base header (§12.2)",
            )
        } else {
            (
                10 - n,
                "X = 1: the header is incomplete until 10 bytes are present",
            )
        };
        v.push(
            vector(
                format!("header.incomplete.extension-{n}-bytes"),
                "4.9",
                &["hdr.order", "err.incomplete"],
                why,
            )
            .input(&ext[..n])
            .ok(json!({ "incomplete": needed }), false),
        );
    }
    let bad_ext = Raw {
        version: 3,
        kind: 12,
        r: 3,
        ..Raw::data(0)
    }
    .src(7)
    .bytes();
    v.push(
        vector(
            "header.incomplete.invalid-with-x-7-bytes",
            "4.9",
            &["hdr.order", "err.incomplete"],
            "7 bytes with X = 1 and an invalid version, kind and R bits: incomplete, 1 more byte to the base header (and no error before the complete 10-byte header)",
        )
        .input(&bad_ext[..7])
        .ok(json!({ "incomplete": 1 }), false),
    );
    // §4.7: the X bit alone decides the header length, whatever the Version
    v.push(
        vector(
            "header.incomplete.invalid-with-x-8-bytes",
            "4.7",
            &["hdr.control-ext", "hdr.order", "err.incomplete"],
            "8 bytes with X = 1 and an invalid version, kind and R bits: the X bit alone makes the header 10 bytes long, so incomplete, 2 more bytes (no error yet)",
        )
        .input(&bad_ext[..8])
        .ok(json!({ "incomplete": 2 }), false),
    );
    let bad = Raw {
        version: 3,
        kind: 12,
        r: 3,
        ..Raw::data(0)
    }
    .bytes();
    v.push(
        vector(
            "header.incomplete.invalid-7-bytes",
            "4.9",
            &["hdr.order", "err.incomplete"],
            "7 bytes of an invalid header: no error may be reported before the header is complete",
        )
        .input(&bad[..7])
        .ok(json!({ "incomplete": 1 }), false),
    );
    let hop_ext = Raw::ctl(PING, 16).src(1).bytes();
    v.push(
        vector(
            "header.incomplete.control-ext-8-bytes",
            "4.9",
            &["hdr.order", "err.incomplete", "hdr.control-ext"],
            "PING with X = 1, 8 bytes: incomplete, because the complete header is 10 bytes",
        )
        .input(&hop_ext[..8])
        .ok(json!({ "incomplete": 2 }), false),
    );
}

/// Every packet vector: header plus payload, and the bytes after the packet.
pub(crate) fn packet_vectors() -> Vec<Vector> {
    let mut v = Vec::new();
    let pkt = |id: &str,
               reqs: &[&'static str],
               desc: &str,
               raw: Raw,
               payload: &[u8],
               rest: &[u8],
               max: Option<u16>| {
        let mut input = raw.packet(payload);
        input.extend_from_slice(rest);
        let length = u16::try_from(payload.len()).expect("fits");
        let header = Raw { length, ..raw }.expected();
        let mut vec = vector(format!("packet.{id}"), "4.5", reqs, desc)
            .input(&input)
            .ok(
                json!({ "header": header, "payload": hex(payload), "rest": hex(rest) }),
                true,
            );
        if let Some(m) = max {
            vec = vec.with("max_payload", json!(m));
        }
        vec
    };
    v.push(pkt(
        "data.empty",
        &[],
        "DATA with an empty payload",
        Raw::data(0),
        b"",
        b"",
        None,
    ));
    v.push(pkt(
        "data.hello",
        &[],
        "DATA carrying 5 bytes",
        Raw::data(0).route(7, 1, 0),
        b"hello",
        b"",
        None,
    ));
    v.push(pkt(
        "data.extension",
        &["hdr.control-ext"],
        "DATA with X = 1: the payload starts after 10 bytes",
        Raw::data(0).route(2, 3, 4).src(0x0A0B),
        b"xyz",
        b"",
        None,
    ));
    v.push(pkt(
        "data.trailing",
        &[],
        "the bytes after the packet are left for the next one",
        Raw::data(0),
        b"ab",
        &[0x10, 0x00],
        None,
    ));
    v.push(pkt(
        "data.at-custom-max",
        &["hdr.length-max"],
        "a 1024-byte payload with max_payload 1024",
        Raw::data(0),
        &pattern(1024),
        b"",
        Some(1024),
    ));
    v.push(pkt(
        "data.at-default-max",
        &["hdr.length-max"],
        "a 65535-byte payload with the default max_payload",
        Raw::data(0),
        &pattern(65_535),
        b"",
        None,
    ));
    v.push(pkt(
        "ping.whole",
        &[],
        "a whole PING packet; the payload is opaque at this layer",
        Raw::ctl(PING, 0),
        &ping_payload(1, 2),
        b"",
        None,
    ));
    v.push(pkt(
        "error.extension",
        &["hdr.control-ext"],
        "an ERROR with the source extension",
        Raw::ctl(ERROR, 0).route(5, 0, 0).src(6),
        &error_payload(0x0100, &Raw::data(0).route(9, 0, 0).bytes(), b""),
        b"",
        None,
    ));
    for (len, have) in [(4usize, 0usize), (4, 3), (1024, 1000)] {
        let payload = pattern(len);
        let input = Raw::data(0).packet(&payload);
        v.push(
            vector(
                format!("packet.incomplete.payload-{have}-of-{len}"),
                "12.2",
                &["err.incomplete"],
                "a complete header with a partial payload: incomplete",
            )
            .input(&input[..8 + have])
            .ok(json!({ "incomplete": len - have }), false),
        );
    }
    let over = Raw::data(1025).bytes();
    v.push(
        vector(
            "packet.over-custom-max.header-only",
            "4.5",
            &["hdr.length-max"],
            "Payload Length 1025 with max_payload 1024: rejected as soon as the header is complete, without waiting for the payload",
        )
        .with("max_payload", json!(1024))
        .input(&over)
        .fails(err("PAYLOAD_TOO_LARGE")),
    );
    let mut over_full = over.clone();
    over_full.extend_from_slice(&pattern(1025));
    v.push(
        vector(
            "packet.over-custom-max.with-payload",
            "4.5",
            &["hdr.length-max"],
            "the same packet with its 1025 payload bytes present",
        )
        .with("max_payload", json!(1024))
        .input(&over_full)
        .fails(err("PAYLOAD_TOO_LARGE")),
    );
    v
}

/// `len` bytes of a fixed, non-trivial pattern.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}
