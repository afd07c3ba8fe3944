#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into fuzz/corpus/<target>/.

Two sources:

* hand-built inputs (valid streams, one per §4.9 error, control payloads, compressed
  payloads and decompression bombs), named `seed-<what>`;
* every `input` hex field of the golden vectors (vectors/*.json), named
  `vec-<file>-<vector id>` (or `vec-<file>-<sha1>` when a vector has no id).

Each target's input layout is documented in src/fuzzing.rs; the prefixes written here
must match it. Python standard library only; rerunning is idempotent.

    python3 fuzz/seed.py            # write seeds
    python3 fuzz/seed.py --check    # exit 1 if a seed would be added or changed
"""

import hashlib
import json
import re
import struct
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
TARGETS = ["header", "packet_roundtrip", "deframe_split", "control", "decompress", "inspect", "connection", "connection_pair", "tls"]
PREFACE = bytes([0x89]) + b"FWIRE\r\n"
# Must match max_len() in fuzz/common.sh.
MAX_LEN = {"header": 16, "control": 1100, "decompress": 8192}
# A TLS 1.3 ClientHello for localhost offering ALPN fleetwire/1 (captured once from
# `openssl s_client -tls1_3 -alpn fleetwire/1 -groups X25519`; fixed so seeds are stable).
CLIENT_HELLO = bytes.fromhex(
    "16030100ee010000ea03038b1349c77bda4c507f6a68ed1c777b77dc60127a8eafd0a2057ccae02d4971172079"
    "a7e6549d0dbc2dfce9b6b6dae37671dc9ffb22f7959ec38b8451bb57f5ea06000813021303130100ff01000099"
    "0000000e000c0000096c6f63616c686f7374000b000403000102000a00040002001d002300000010000e000c0b"
    "666c656574776972652f310016000000170000000d001e001c0403050306030807080808090"
    "80a080b080408050806040105010601002b0003020304002d00020101003300260024001d002059f1a417f2cb"
    "fc1fc6d68c1e68e83c81d08a3676f72df36a9bffd3b5a4950b5c")
KINDS = {"DATA": 0, "HELLO": 1, "PING": 2, "PONG": 3, "GOAWAY": 4, "CREDIT": 5, "ERROR": 6}


# --- encoders (spec §4.1, §5) -------------------------------------------------------------

def header(kind, length, node=0, service=0, channel=0, codec=0, never=False, source=None,
           hints=0, version=1, reserved=0):
    b1 = (codec << 4) | hints | reserved | (0x40 if never else 0) | (0x80 if source is not None else 0)
    h = bytes([(version << 4) | kind, b1]) + struct.pack(">HHBB", length, node, service, channel)
    return h + (struct.pack(">H", source) if source is not None else b"")


def packet(kind, payload=b"", **kw):
    return header(kind, len(payload), **kw) + payload


def hello(role=2, node_id=7, peer_id=0, codecs=3, max_ratio=100, max_payload=65535,
          max_decompressed=262144, credit_packets=1024, credit_bytes=4 << 20, idle=60000, ext=b""):
    return struct.pack(">BBBBHHBBHIIII", 1, 1, role, 0, node_id, peer_id, codecs, max_ratio,
                       max_payload, max_decompressed, credit_packets, credit_bytes, idle) + ext


def goaway(code=0, delivered=0, reason=b""):
    return struct.pack(">HQ", code, delivered) + reason


def error_report(code=0x100, hdr=None, reason=b""):
    return struct.pack(">H", code) + (hdr or header(0, 0, node=9)) + reason


def snappy_literal(data):
    """A snappy raw block holding `data` as literals (len < 61 per element)."""
    out = bytearray(varint(len(data)))
    for i in range(0, len(data), 60):
        chunk = data[i:i + 60]
        out.append((len(chunk) - 1) << 2)
        out += chunk
    return bytes(out)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def snappy_run(byte, n):
    """A literal byte then copies of offset 1: a highly compressible block."""
    out = bytearray(varint(n)) + bytes([0, byte])
    left = n - 1
    while left:
        k = min(left, 64)
        out += bytes([((k - 1) << 2) | 0x02]) + struct.pack("<H", 1)
        left -= k
    return bytes(out)


# --- hand-built seeds ---------------------------------------------------------------------

def valid_stream():
    s = bytearray()
    s += packet(1, hello())
    s += packet(0, b"hello", node=7, service=1, channel=2)
    s += packet(0, b"", node=0)
    s += packet(2, struct.pack(">QQ", 1, 1000))
    s += packet(3, struct.pack(">QQI", 1, 1000, 5))
    s += packet(5, struct.pack(">II", 4, 4096))
    s += packet(6, error_report(reason=b"no route"), node=3)
    s += packet(0, b"x" * 40, node=1, source=42, hints=3)
    s += packet(0, b"secret", never=True)
    s += packet(0, zlib.compress(b"abc" * 50), codec=2)
    s += packet(0, snappy_literal(b"snappy!"), codec=1)
    s += packet(4, goaway(0, 3, b"bye"))
    return bytes(s)


def bad_headers():
    """One header per §4.9 failure, in the order of the checks."""
    return {
        "version-2": header(0, 0, version=2),
        "unknown-kind": header(7, 0),
        "reserved-bit": header(0, 0, reserved=0x04),
        "codec-3": header(0, 0, codec=3),
        "control-codec": header(2, 16, codec=1),
        "never-with-codec": header(0, 0, codec=2, never=True),
        "control-ext": header(2, 16, source=1),
        "too-large": header(0, 65535),
        "control-route": header(5, 8, node=1),
    }


def seeds():
    """(target, name, bytes) for every hand-built seed."""
    stream = valid_stream()
    out = []
    add = lambda t, n, b: out.append((t, "seed-" + n, b))
    for name, h in bad_headers().items():
        add("header", name, h)
        add("deframe_split", name, bytes([0x01, 0x11]) + packet(0, b"ok") + h + b"\0" * 8)
    add("header", "data", header(0, 5, node=7, service=1, channel=2))
    add("header", "data-ext-hints", header(0, 5, node=7, source=0xBEEF, hints=3))
    add("header", "error-ext", header(6, 10, node=1, source=2))
    add("header", "partial", header(0, 5)[:5])
    add("packet_roundtrip", "valid-stream", stream)
    add("packet_roundtrip", "truncated", stream[:-3])
    add("deframe_split", "valid-stream-bytewise", bytes([0x00, 0x00]) + stream)
    add("deframe_split", "valid-stream-peek-64", bytes([0x34, 0x07]) + stream)
    add("deframe_split", "max-payload-16", bytes([0x0A, 0x03]) + stream)
    add("inspect", "preface-stream-text", b"\x02" + PREFACE + stream)
    add("inspect", "preface-stream-json", b"\x03" + PREFACE + stream)
    add("inspect", "bad-preface", b"\x00" + PREFACE[:7] + b"\x0b" + stream)
    add("inspect", "json-control-chars", b"\x01" + packet(4, goaway(0x8001, 1, b'a"\\\n\x01\x7f\xc3\xa9')))
    controls = {
        "hello": (1, hello()),
        "hello-client-ext": (1, hello(role=1, node_id=0, peer_id=5, ext=b"\xff" * 8)),
        "hello-min-limits": (1, hello(max_payload=1024, max_decompressed=1024, max_ratio=1,
                                      credit_packets=1, credit_bytes=1024, idle=1000)),
        "hello-bad-role": (1, hello(role=4)),
        "ping": (2, struct.pack(">QQ", 7, 8)),
        "pong": (3, struct.pack(">QQI", 7, 8, 9)),
        "goaway-reason": (4, goaway(0x000E, 12, "é".encode() * 128)),
        "goaway-bad-utf8": (4, goaway(0, 0, b"\xc3")),
        "credit": (5, struct.pack(">II", 1, 0)),
        "credit-zero": (5, struct.pack(">II", 0, 0)),
        "error-ext": (6, error_report(hdr=header(0, 0, node=1, source=3), reason=b"r")),
        "error-short": (6, error_report()[:9]),
        "any-kind": (7, struct.pack(">QQ", 1, 2)),
    }
    for name, (kind, payload) in controls.items():
        add("control", name, bytes([kind]) + payload)
    limits = lambda mode, ratio=100, max_dec=262144: bytes([mode, ratio]) + max_dec.to_bytes(3, "big")
    text = b"fleetwire routes packets by header; " * 20
    add("decompress", "zlib-text", limits(0x1A) + zlib.compress(text))
    add("decompress", "zlib-bomb", limits(0x1A, 255, 0xFFFFFF) + zlib.compress(b"\0" * 1_000_000, 9))
    add("decompress", "zlib-trailing", limits(0x1A) + zlib.compress(b"abc") + b"\0")
    add("decompress", "zlib-not-negotiated", limits(0x0A) + zlib.compress(b"abc"))
    add("decompress", "snappy-literal", limits(0x19) + snappy_literal(b"snappy literal " * 5))
    add("decompress", "snappy-run", limits(0x19, 10) + snappy_run(0x41, 5000))
    add("decompress", "snappy-bomb", limits(0x19) + bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00]))
    add("decompress", "all-codecs-prefill", limits(0xFB) + zlib.compress(text))
    add("decompress", "roundtrip-text", limits(0x1F) + text)
    add("decompress", "roundtrip-zeros", limits(0x1F, 255, 1024) + b"\0" * 3000)
    # connection: ctl (our config), seed, then what follows the peer's HELLO.
    after_hello = stream[len(packet(1, hello())):]
    add("connection", "valid-stream-node", bytes([0x01, 0x00]) + after_hello)
    add("connection", "valid-stream-client-split", bytes([0x20, 0x05]) + after_hello)
    add("connection", "proxy-trusted-ext", bytes([0x63, 0x07]) + packet(0, b"via", node=1, source=77))
    add("connection", "flood-empty", bytes([0x01, 0x00]) + packet(0, b"") * 40)
    add("connection", "hello-twice", bytes([0x01, 0x00]) + packet(1, hello()))
    add("connection", "bad-zlib", bytes([0x01, 0x00]) + packet(0, b"\x78\x9c\x00", codec=2) * 20)
    add("connection", "credit-overflow", bytes([0x01, 0x00]) + packet(5, struct.pack(">II", 0xFFFFFFFF, 1)))
    add("connection", "tight-limits-too-large", bytes([0x05, 0x00]) + header(0, 2000) + b"x" * 2000)
    # connection_pair: configs, then (op, arg[, fill]) triples; see src/fuzzing/connection.rs
    ops = bytes([
        0x00, 0x05, 0x11,   # a sends 5 bytes
        0x21, 0x30, 0x41,   # a sends 144 bytes, snappy
        0x02, 0xC0, 0x20,   # a sends 576 bytes, zlib
        0x06, 0x00,         # drive
        0x18, 0x00,         # poll b
        0x10, 0x03, 0x02,   # b sends 3 bytes
        0x0A, 0x00,         # a pings
        0x0C, 0x02,         # chunker
        0xE2, 0x10, 0x33,   # a sends 4800 bytes, zlib
        0x06, 0x00, 0x08, 0x00, 0x18, 0x00,
        0x0B, 0x40,         # advance 256 ms
        0x0D, 0x01,         # a closes
        0x06, 0x00,
    ])
    add("connection_pair", "client-node", bytes([0x10]) + ops)
    add("connection_pair", "node-proxy-tight", bytes([0x35]) + ops)
    add("connection_pair", "proxy-forward", bytes([0x32]) + bytes([0x03, 0x03, 0x44, 0x06, 0x00, 0x18, 0x00]))
    add("connection_pair", "credit-exhaust", bytes([0x54]) + bytes([0x20, 0xFF, 0x01]) * 8 + bytes([0x06, 0x00, 0x18, 0x00]) * 3)
    # tls: ctl, seed, pos (u16 BE), then TLS bytes (garbage mode, ctl bit 0 clear) or the
    # client's plaintext stream (genuine mode); see src/fuzzing/tls.rs.
    add("tls", "server-openssl-clienthello", bytes([0x00, 0x01, 0, 0]) + CLIENT_HELLO)
    add("tls", "server-clienthello-bytewise", bytes([0x00, 0x00, 0, 0]) + CLIENT_HELLO[:60])
    add("tls", "server-plaintext-preface", bytes([0x00, 0x00, 0, 0]) + PREFACE + stream)
    add("tls", "client-alert", bytes([0x02, 0x03, 0, 0]) + bytes.fromhex("15030300020228"))
    add("tls", "client-ccs-then-junk", bytes([0x02, 0x03, 0, 0]) + bytes.fromhex("140303000101") + b"\x17\x03\x03\x00\x10" + b"\0" * 16)
    add("tls", "genuine-stream", bytes([0x01, 0x05, 0, 0]) + PREFACE + stream)
    add("tls", "genuine-stream-close", bytes([0x09, 0x06, 0, 0]) + PREFACE + stream * 8)
    add("tls", "genuine-flip-clienthello", bytes([0x15, 0x07, 0x00, 0x40]) + PREFACE + stream)
    add("tls", "genuine-flip-record-version", bytes([0x25, 0x07, 0x00, 0x02]) + PREFACE + stream)
    add("tls", "genuine-flip-late", bytes([0xF5, 0x08, 0x02, 0x00]) + PREFACE + stream * 4)
    return out


# --- vectors ------------------------------------------------------------------------------

def walk(node, path=()):
    """Yields (path, dict) for every dict with a hex `input` field."""
    if isinstance(node, dict):
        if isinstance(node.get("input"), str) and re.fullmatch(r"(?:[0-9a-fA-F]{2})*", node["input"]):
            yield path, node
        for k, v in node.items():
            yield from walk(v, path + (str(k),))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (str(i),))


def split_packets(stream):
    """The complete packets at the front of `stream` (no validation beyond framing)."""
    out = []
    while len(stream) >= 8:
        hlen = 10 if stream[1] & 0x80 else 8
        if len(stream) < hlen:
            break
        total = hlen + struct.unpack(">H", stream[2:4])[0]
        if len(stream) < total:
            break
        out.append((stream[:hlen], stream[hlen:total]))
        stream = stream[total:]
    return out


def after_hello(body):
    """The bytes after a leading HELLO packet, else the whole body."""
    packets = split_packets(body)
    if packets and packets[0][0][0] == 0x11:
        return body[len(packets[0][0]) + len(packets[0][1]):]
    return body


def vector_seeds():
    out = []
    for f in sorted((ROOT / "vectors").glob("*.json")):
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            print(f"skip {f.name}: {e}", file=sys.stderr)
            continue
        layer = doc.get("layer", f.stem) if isinstance(doc, dict) else f.stem
        vectors = doc.get("vectors") if isinstance(doc, dict) else None
        if not isinstance(vectors, list):
            vectors = [v for _, v in walk(doc)]
        for v in vectors:
            data = bytes.fromhex(v["input"]) if isinstance(v.get("input"), str) else b""
            vid = str(v.get("id") or hashlib.sha1(data).hexdigest()[:16])
            name = "vec-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", vid)[:100]
            out.extend(route_vector(layer, name, v, data))
    return out


def route_vector(layer, name, v, data):
    """Routes one vector to the targets that take its kind of input."""
    if layer == "header":
        return [("header", name, data)]
    if layer == "control" and v.get("kind") in KINDS:
        return [("control", name, bytes([KINDS[v["kind"]]]) + data)]
    if layer == "compression":
        codec = {"none": 0, "snappy": 1, "zlib": 2}.get(v.get("codec"), 3)
        lim = v.get("limits", {})
        max_dec = min(int(lim.get("max_decompressed", 262144)), 0xFFFFFF)
        mode = codec | ((int(lim.get("codecs", 3)) & 3) << 3)
        return [("decompress", name, bytes([mode, int(lim.get("max_ratio", 100)) & 0xFF])
                 + max_dec.to_bytes(3, "big") + data)]
    if layer == "connection":
        recv = b"".join(bytes.fromhex(st["recv"]) for st in v.get("steps", []) if isinstance(st.get("recv"), str))
        cfg = v.get("config", {})
        sel = {"client": 0, "node": 1, "proxy": 3 if cfg.get("trust_source") else 2}.get(cfg.get("role"), 1)
        body = recv[8:] if recv.startswith(PREFACE) else recv
        return [("connection", name, bytes([sel, 0]) + after_hello(body)), ("inspect", name, b"\x00" + recv)]
    body = data[8:] if data.startswith(PREFACE) else data
    return [
        ("packet_roundtrip", name, body),
        ("deframe_split", name, b"\x00\x00" + body),
        ("inspect", name, b"\x00" + data),
    ]


def main():
    check = "--check" in sys.argv
    written = 0
    seen = {}
    for target, name, data in seeds() + vector_seeds():
        if target not in TARGETS or data in seen.setdefault(target, set()):
            continue
        if len(data) > MAX_LEN.get(target, 4096):
            continue  # longer than fuzz/run.sh's -max_len: libFuzzer would cut it
        seen[target].add(data)
        path = CORPUS / target / name
        if path.exists() and path.read_bytes() == data:
            continue
        written += 1
        if check:
            print(f"stale: {path.relative_to(ROOT)}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(f"{written} seed file(s) {'stale' if check else 'written'}")
    return 1 if check and written else 0


if __name__ == "__main__":
    sys.exit(main())
