//! Control payload vectors (§5): the payload alone, with its kind.

use serde_json::{json, Value};

use super::build::*;
use super::json::hex;

fn ctl(
    id: &str,
    section: &'static str,
    reqs: &[&'static str],
    desc: &str,
    kind: &str,
    payload: &[u8],
) -> Vector {
    vector(format!("control.{id}"), section, reqs, desc)
        .with("kind", json!(kind))
        .input(payload)
}

/// Every control vector.
pub(crate) fn control_vectors() -> Vec<Vector> {
    let mut v = Vec::new();
    hello_valid(&mut v);
    hello_invalid(&mut v);
    ping_pong(&mut v);
    goaway(&mut v);
    credit_and_error(&mut v);
    v
}

fn hello_ok(id: &str, reqs: &[&'static str], desc: &str, h: HelloFields) -> Vector {
    ctl(
        &format!("hello.{id}"),
        "5.2",
        reqs,
        desc,
        "HELLO",
        &h.bytes(),
    )
    .ok(h.expected(), true)
}

fn hello_bad(id: &str, reqs: &[&'static str], desc: &str, h: HelloFields) -> Vector {
    let mut reqs = reqs.to_vec();
    reqs.push("hello.fields");
    ctl(
        &format!("hello.{id}"),
        "5.2",
        &reqs,
        desc,
        "HELLO",
        &h.bytes(),
    )
    .fails(err("BAD_HELLO"))
}

fn hello_valid(v: &mut Vec<Vector>) {
    let d = HelloFields::default;
    v.push(hello_ok(
        "node-defaults",
        &["hello.length", "hello.node-id"],
        "a node announcing the default limits",
        d(),
    ));
    v.push(hello_ok(
        "client",
        &["hello.client-id"],
        "a client: node_id 0",
        HelloFields {
            role: 1,
            node_id: 0,
            ..d()
        },
    ));
    v.push(hello_ok(
        "proxy",
        &["hello.node-id"],
        "a proxy with a node id",
        HelloFields {
            role: 3,
            node_id: 65_534,
            ..d()
        },
    ));
    v.push(hello_ok(
        "peer-id",
        &["hello.peer-id"],
        "a node attributing id 4242 to the client it accepted",
        HelloFields {
            peer_id: 4242,
            ..d()
        },
    ));
    v.push(hello_ok(
        "version-range",
        &[],
        "a future-proof version range 1..5",
        HelloFields {
            max_version: 5,
            ..d()
        },
    ));
    v.push(hello_ok(
        "no-codecs",
        &[],
        "no codec announced",
        HelloFields { codecs: 0, ..d() },
    ));
    let minimal = HelloFields {
        max_ratio: 1,
        max_payload: 1024,
        max_decompressed: 1024,
        credit_packets: 1,
        credit_bytes: 1024,
        idle_timeout_ms: 0,
        ..d()
    };
    v.push(hello_ok(
        "limits-at-lower-bounds",
        &["hello.fields"],
        "every limit at its lower bound; idle timeout 0 = none",
        minimal,
    ));
    let maximal = HelloFields {
        max_ratio: 255,
        max_payload: 65_535,
        max_decompressed: 16_777_216,
        credit_packets: 1_048_576,
        credit_bytes: 2_147_483_647,
        idle_timeout_ms: u32::MAX,
        ..d()
    };
    v.push(hello_ok(
        "limits-at-upper-bounds",
        &["hello.fields"],
        "every limit at its upper bound",
        maximal,
    ));
    v.push(hello_ok(
        "idle-1000",
        &["hello.fields"],
        "idle_timeout_ms at its smallest non-zero value",
        HelloFields {
            idle_timeout_ms: 1000,
            ..d()
        },
    ));
    v.push(hello_ok(
        "credit-bytes-equal-max-payload",
        &["hello.fields"],
        "initial_credit_bytes equal to max_payload",
        HelloFields {
            max_payload: 5000,
            credit_bytes: 5000,
            ..d()
        },
    ));
    v.push(hello_ok(
        "length-1024",
        &["hello.length", "hello.reserved"],
        "a 1024-byte HELLO: 996 zero extension bytes",
        HelloFields {
            extensions: vec![0; 996],
            ..d()
        },
    ));
    let reserved = [
        (
            "hello-flags-set",
            HelloFields {
                hello_flags: 0xFF,
                ..d()
            },
            "hello_flags non-zero: ignored",
        ),
        (
            "codecs-reserved-bits",
            HelloFields {
                codecs: 0xFD,
                ..d()
            },
            "reserved bits of codecs set: ignored",
        ),
        (
            "extension-bytes",
            HelloFields {
                extensions: b"future".to_vec(),
                ..d()
            },
            "non-zero extension bytes: ignored",
        ),
    ];
    for (id, h, desc) in reserved {
        v.push(hello_ok(id, &["hello.reserved"], desc, h).flag("NonConformingSender"));
    }
}

fn hello_invalid(v: &mut Vec<Vector>) {
    let d = HelloFields::default;
    let base = d().bytes();
    v.push(
        ctl(
            "hello.length-27",
            "5.2",
            &["hello.length", "hello.fields"],
            "a 27-byte HELLO",
            "HELLO",
            &base[..27],
        )
        .fails(err("BAD_HELLO")),
    );
    v.push(
        ctl(
            "hello.length-0",
            "5.2",
            &["hello.length", "hello.fields"],
            "an empty HELLO",
            "HELLO",
            b"",
        )
        .fails(err("BAD_HELLO")),
    );
    v.push(hello_bad(
        "length-1025",
        &["hello.length"],
        "a 1025-byte HELLO",
        HelloFields {
            extensions: vec![0; 997],
            ..d()
        },
    ));
    let cases: Vec<(&str, HelloFields, &str)> = vec![
        (
            "min-version-0",
            HelloFields {
                min_version: 0,
                max_version: 1,
                ..d()
            },
            "min_version 0",
        ),
        (
            "max-below-min",
            HelloFields {
                min_version: 2,
                max_version: 1,
                ..d()
            },
            "max_version below min_version",
        ),
        ("role-0", HelloFields { role: 0, ..d() }, "role 0"),
        ("role-4", HelloFields { role: 4, ..d() }, "role 4"),
        (
            "node-id-ffff",
            HelloFields {
                node_id: 0xFFFF,
                ..d()
            },
            "node id 0xFFFF is reserved",
        ),
        (
            "proxy-id-ffff",
            HelloFields {
                role: 3,
                node_id: 0xFFFF,
                ..d()
            },
            "proxy with node id 0xFFFF",
        ),
        (
            "max-ratio-0",
            HelloFields {
                max_ratio: 0,
                ..d()
            },
            "max_ratio 0",
        ),
        (
            "max-payload-1023",
            HelloFields {
                max_payload: 1023,
                credit_bytes: 4096,
                ..d()
            },
            "max_payload one below 1024",
        ),
        (
            "max-decompressed-1023",
            HelloFields {
                max_decompressed: 1023,
                ..d()
            },
            "max_decompressed one below 1024",
        ),
        (
            "max-decompressed-16777217",
            HelloFields {
                max_decompressed: 16_777_217,
                ..d()
            },
            "max_decompressed one above 16 MiB",
        ),
        (
            "credit-packets-0",
            HelloFields {
                credit_packets: 0,
                ..d()
            },
            "initial_credit_packets 0",
        ),
        (
            "credit-packets-1048577",
            HelloFields {
                credit_packets: 1_048_577,
                ..d()
            },
            "initial_credit_packets one above 2^20",
        ),
        (
            "credit-bytes-below-max-payload",
            HelloFields {
                max_payload: 5000,
                credit_bytes: 4999,
                ..d()
            },
            "initial_credit_bytes one below max_payload",
        ),
        (
            "credit-bytes-2147483648",
            HelloFields {
                credit_bytes: 2_147_483_648,
                ..d()
            },
            "initial_credit_bytes one above 2^31 - 1",
        ),
        (
            "idle-999",
            HelloFields {
                idle_timeout_ms: 999,
                ..d()
            },
            "idle_timeout_ms one below 1000",
        ),
        (
            "idle-1",
            HelloFields {
                idle_timeout_ms: 1,
                ..d()
            },
            "idle_timeout_ms 1",
        ),
    ];
    for (id, h, desc) in cases {
        v.push(hello_bad(id, &[], desc, h));
    }
    v.push(hello_bad(
        "client-with-node-id",
        &["hello.client-id"],
        "a client with node_id 5",
        HelloFields {
            role: 1,
            node_id: 5,
            ..d()
        },
    ));
    v.push(hello_bad(
        "node-without-id",
        &["hello.node-id"],
        "a node with node_id 0",
        HelloFields { node_id: 0, ..d() },
    ));
    v.push(hello_bad(
        "proxy-without-id",
        &["hello.node-id"],
        "a proxy with node_id 0",
        HelloFields {
            role: 3,
            node_id: 0,
            ..d()
        },
    ));
}

fn u64s(x: u64) -> Value {
    json!(x.to_string())
}

fn ping_pong(v: &mut Vec<Vector>) {
    for (id, pid, ts) in [
        ("zero", 0u64, 0u64),
        ("values", 0x0102_0304_0506_0708, 1_700_000_000_000_000),
        ("max", u64::MAX, u64::MAX),
    ] {
        v.push(
            ctl(
                &format!("ping.{id}"),
                "5.3",
                &[],
                "a 16-byte PING; u64 values are decimal strings",
                "PING",
                &ping_payload(pid, ts),
            )
            .ok(json!({ "id": u64s(pid), "timestamp": u64s(ts) }), true),
        );
    }
    for len in [0usize, 15, 17] {
        v.push(
            ctl(
                &format!("ping.length-{len}"),
                "5.3",
                &["ctl.malformed"],
                "a PING payload is exactly 16 bytes",
                "PING",
                &vec![0xAA; len],
            )
            .fails(err("BAD_CONTROL")),
        );
    }
    for (id, hold) in [("hold-0", 0u32), ("hold-max", u32::MAX)] {
        v.push(
            ctl(
                &format!("pong.{id}"),
                "5.4",
                &[],
                "a 20-byte PONG",
                "PONG",
                &pong_payload(7, 99, hold),
            )
            .ok(
                json!({ "id": u64s(7), "timestamp": u64s(99), "hold_us": hold }),
                true,
            ),
        );
    }
    for len in [16usize, 19, 21] {
        v.push(
            ctl(
                &format!("pong.length-{len}"),
                "5.4",
                &["ctl.malformed"],
                "a PONG payload is exactly 20 bytes",
                "PONG",
                &vec![0x55; len],
            )
            .fails(err("BAD_CONTROL")),
        );
    }
}

fn goaway_ok(
    id: &str,
    reqs: &[&'static str],
    desc: &str,
    code: u16,
    delivered: u64,
    reason: &str,
) -> Vector {
    ctl(&format!("goaway.{id}"), "5.5", reqs, desc, "GOAWAY", &goaway_payload(code, delivered, reason.as_bytes())).ok(
        json!({ "code": code, "code_name": code_name(code), "delivered": u64s(delivered), "reason": reason }),
        true,
    )
}

fn goaway(v: &mut Vec<Vector>) {
    v.push(goaway_ok(
        "no-error",
        &["goaway.delivered"],
        "graceful close, no reason",
        0,
        0,
        "",
    ));
    v.push(goaway_ok(
        "with-reason",
        &["goaway.reason"],
        "a short reason",
        0x000D,
        12,
        "idle",
    ));
    v.push(goaway_ok(
        "reason-256",
        &["goaway.reason"],
        "a reason of exactly 256 bytes",
        0,
        1,
        &"r".repeat(256),
    ));
    v.push(goaway_ok(
        "reason-256-multibyte",
        &["goaway.reason"],
        "a reason of 128 two-byte characters (256 bytes)",
        0,
        1,
        &"é".repeat(128),
    ));
    v.push(goaway_ok(
        "unknown-code",
        &["goaway.unknown-code"],
        "an unassigned code is reported as it is",
        0x7777,
        3,
        "",
    ));
    v.push(goaway_ok(
        "private-code",
        &["goaway.unknown-code"],
        "a private-use code",
        0xFFFF,
        u64::MAX,
        "x",
    ));
    v.push(goaway_ok(
        "packet-error-code",
        &["goaway.unknown-code"],
        "a packet error code in GOAWAY is reported as it is",
        0x0100,
        0,
        "",
    ));
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("length-0", Vec::new(), "an empty GOAWAY"),
        ("length-9", vec![0; 9], "a GOAWAY shorter than 10 bytes"),
        (
            "reason-257",
            goaway_payload(0, 0, &[b'r'; 257]),
            "a reason of 257 bytes",
        ),
        (
            "reason-invalid-utf8",
            goaway_payload(0, 0, &[0x66, 0xFF, 0x66]),
            "a reason with an invalid byte",
        ),
        (
            "reason-truncated-utf8",
            goaway_payload(0, 0, &[0x61, 0xC3]),
            "a reason ending inside a two-byte character",
        ),
        (
            "reason-overlong-utf8",
            goaway_payload(0, 0, &[0xC0, 0xAF]),
            "an overlong encoding is not valid UTF-8",
        ),
        (
            "reason-surrogate",
            goaway_payload(0, 0, &[0xED, 0xA0, 0x80]),
            "an encoded surrogate is not valid UTF-8",
        ),
    ];
    for (id, payload, desc) in bad {
        let mut reqs = vec!["ctl.malformed"];
        if id.starts_with("reason") {
            reqs.push("goaway.reason");
        }
        v.push(
            ctl(
                &format!("goaway.{id}"),
                "5.5",
                &reqs,
                desc,
                "GOAWAY",
                &payload,
            )
            .fails(err("BAD_CONTROL")),
        );
    }
}

fn error_ok(
    id: &str,
    reqs: &[&'static str],
    desc: &str,
    code: u16,
    header: &[u8],
    reason: &str,
) -> Vector {
    ctl(&format!("error.{id}"), "5.7", reqs, desc, "ERROR", &error_payload(code, header, reason.as_bytes())).ok(
        json!({ "code": code, "code_name": code_name(code), "header": hex(header), "reason": reason }),
        true,
    )
}

fn credit_and_error(v: &mut Vec<Vector>) {
    for (id, p, b) in [
        ("packets-only", 1u32, 0u32),
        ("bytes-only", 0, 1),
        ("max", u32::MAX, u32::MAX),
    ] {
        v.push(
            ctl(
                &format!("credit.{id}"),
                "5.6",
                &["credit.zero"],
                "a CREDIT with at least one non-zero increment",
                "CREDIT",
                &credit_payload(p, b),
            )
            .ok(json!({ "packets": p, "bytes": b }), true),
        );
    }
    v.push(
        ctl(
            "credit.zero",
            "5.6",
            &["credit.zero"],
            "both increments zero",
            "CREDIT",
            &credit_payload(0, 0),
        )
        .fails(err("BAD_CONTROL")),
    );
    for len in [7usize, 9] {
        v.push(
            ctl(
                &format!("credit.length-{len}"),
                "5.6",
                &["ctl.malformed"],
                "a CREDIT payload is exactly 8 bytes",
                "CREDIT",
                &vec![1; len],
            )
            .fails(err("BAD_CONTROL")),
        );
    }
    let h8 = Raw::data(5).route(9, 1, 2).bytes();
    let h10 = Raw::data(5).route(9, 1, 2).src(3).bytes();
    v.push(error_ok(
        "no-route",
        &["error.layout"],
        "NO_ROUTE about an 8-byte header",
        0x0100,
        &h8,
        "",
    ));
    v.push(error_ok(
        "extension-header",
        &["error.layout"],
        "the embedded header's X flag makes it 10 bytes",
        0x0101,
        &h10,
        "no such service",
    ));
    v.push(error_ok(
        "reason-256",
        &["error.layout"],
        "a reason of exactly 256 bytes",
        0x0103,
        &h8,
        &"z".repeat(256),
    ));
    let junk = Raw {
        version: 9,
        kind: 15,
        r: 3,
        ..Raw::data(0)
    }
    .bytes();
    v.push(error_ok(
        "embedded-header-not-validated",
        &["error.layout"],
        "the embedded header is not validated",
        0x0102,
        &junk,
        "",
    ));
    v.push(error_ok(
        "unknown-code",
        &["error.layout"],
        "an unassigned code is kept",
        0x01FF,
        &h8,
        "",
    ));
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "an empty ERROR"),
        (
            "short-header",
            error_payload(0x0100, &h8[..7], b""),
            "code plus 7 header bytes",
        ),
        (
            "short-extension",
            error_payload(0x0100, &h10[..9], b""),
            "X = 1 in the embedded header but only 9 header bytes",
        ),
        (
            "reason-257",
            error_payload(0x0100, &h8, &[b'z'; 257]),
            "a reason of 257 bytes",
        ),
        (
            "reason-invalid-utf8",
            error_payload(0x0100, &h8, &[0xFE]),
            "a reason that is not UTF-8",
        ),
    ];
    for (id, payload, desc) in bad {
        v.push(
            ctl(
                &format!("error.{id}"),
                "5.7",
                &["error.layout", "ctl.malformed"],
                desc,
                "ERROR",
                &payload,
            )
            .fails(err("BAD_CONTROL")),
        );
    }
}
