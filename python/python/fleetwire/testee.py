"""A conformance testee over this package's codec (conformance/PROTOCOL.md, version 1).

    fleetwire conformance codec --testee "python -m fleetwire.testee"

A thin adapter: every operation calls ``fleetwire.codec`` (the Rust codec through the
binding) and converts to and from the JSON forms of the golden vectors. Connection
transcripts (the ``connection`` operation) are not offered: they show as UNSUPPORTED.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any, BinaryIO, Callable, Dict, List, Optional

from . import codec
from ._native import ProtocolError, __version__

PROTOCOL_VERSION = 1
MAX_MESSAGE = 64 * 1024 * 1024

U64_FIELDS = {"PING": ("id", "timestamp"), "PONG": ("id", "timestamp"), "GOAWAY": ("delivered",)}
BYTES_FIELDS = {"HELLO": ("extensions",), "ERROR": ("header",)}


class BadRequest(Exception):
    """The request cannot be run (a field is missing or malformed)."""


def error_form(e: ProtocolError) -> Dict[str, Any]:
    return {"error": e.code_name or "UNASSIGNED", "code": e.code}


def header_form(h: codec.Header) -> Dict[str, Any]:
    return {
        "header_len": h.header_len,
        "version": 1,
        "kind": h.kind,
        "never_compress": h.never_compress,
        "codec": h.codec,
        "hints": h.hints,
        "length": h.length,
        "node": h.node,
        "service": h.service,
        "channel": h.channel,
        "source": h.source,
    }


def header_from(v: Dict[str, Any]) -> codec.Header:
    try:
        return codec.Header(
            v["kind"],
            node=v["node"],
            service=v["service"],
            channel=v["channel"],
            length=v["length"],
            codec=v["codec"],
            never_compress=v["never_compress"],
            hints=v["hints"],
            source=v.get("source"),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise BadRequest(f"bad header form: {e!r}") from None


def unhex(req: Dict[str, Any], field: str) -> bytes:
    try:
        return bytes.fromhex(req[field])
    except (KeyError, TypeError, ValueError):
        raise BadRequest(f"field {field!r} is missing or not hex") from None


def control_form(kind: str, fields: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(fields)
    for f in U64_FIELDS.get(kind, ()):
        out[f] = str(out[f])
    for f in BYTES_FIELDS.get(kind, ()):
        out[f] = out[f].hex()
    return out


def control_from(kind: str, form: Dict[str, Any]) -> Dict[str, Any]:
    fields = dict(form)
    try:
        for f in U64_FIELDS.get(kind, ()):
            fields[f] = int(fields[f])
        for f in BYTES_FIELDS.get(kind, ()):
            fields[f] = bytes.fromhex(fields[f])
    except (KeyError, TypeError, ValueError) as e:
        raise BadRequest(f"bad control form: {e!r}") from None
    return fields


def max_payload(req: Dict[str, Any]) -> int:
    return int(req.get("max_payload", 65535))


def op_decode_header(req: Dict[str, Any]) -> Dict[str, Any]:
    try:
        r = codec.parse_header(unhex(req, "input"), max_payload(req))
    except ProtocolError as e:
        return error_form(e)
    if isinstance(r, codec.Incomplete):
        return {"incomplete": r.needed}
    return header_form(r)


def op_decode_packet(req: Dict[str, Any]) -> Dict[str, Any]:
    data = unhex(req, "input")
    try:
        r = codec.parse_packet(data, max_payload(req))
    except ProtocolError as e:
        return error_form(e)
    if isinstance(r, codec.Incomplete):
        return {"incomplete": r.needed}
    pkt, used = r
    return {"header": header_form(pkt.header), "payload": bytes(pkt.payload).hex(), "rest": data[used:].hex()}


def op_decode_control(req: Dict[str, Any]) -> Dict[str, Any]:
    kind = req.get("kind")
    if kind == "DATA" or not isinstance(kind, str):
        raise BadRequest("kind must name a control packet")
    try:
        return control_form(kind, codec.decode_control(kind, unhex(req, "input")))
    except ProtocolError as e:
        return error_form(e)


def op_encode_header(req: Dict[str, Any]) -> Dict[str, Any]:
    return {"output": header_from(req["header"]).encode().hex()}


def op_encode_packet(req: Dict[str, Any]) -> Dict[str, Any]:
    out = codec.encode_packet(header_from(req["header"]), unhex(req, "payload"))
    return {"output": out.hex()}


def op_encode_control(req: Dict[str, Any]) -> Dict[str, Any]:
    kind = req.get("kind")
    if not isinstance(kind, str):
        raise BadRequest("kind is missing")
    try:
        out = codec.encode_control(kind, control_from(kind, req["fields"]))
    except (KeyError, ValueError, TypeError, OverflowError) as e:
        raise BadRequest(f"cannot encode: {e!r}") from None
    return {"output": out.hex()}


def op_decode_stream(req: Dict[str, Any]) -> Dict[str, Any]:
    d = codec.Deframer(max_payload(req), preface=bool(req["preface"]))
    packets: List[Dict[str, Any]] = []

    def form(p: codec.Packet) -> Dict[str, Any]:
        return {"header": header_form(p.header), "payload": bytes(p.payload).hex()}

    for chunk in req["chunks"]:
        try:
            got = d.feed(bytes.fromhex(chunk))
        except ProtocolError as e:
            packets.extend(form(p) for p in e.packets)
            r = error_form(e)
            r.update(packets=packets, status="error", offset=e.offset)
            return r
        packets.extend(form(p) for p in got)
    return {"packets": packets, "status": "complete" if d.complete else "incomplete"}


def op_decompress(req: Dict[str, Any]) -> Dict[str, Any]:
    limits = req["limits"]
    try:
        out = codec.decompress(
            req["codec"],
            unhex(req, "input"),
            max_decompressed=limits["max_decompressed"],
            max_ratio=limits["max_ratio"],
            codecs=limits["codecs"],
        )
    except ProtocolError as e:
        return error_form(e)
    return {"output": out.hex()}


OPERATIONS: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]] = {
    "decode_header": op_decode_header,
    "decode_packet": op_decode_packet,
    "decode_control": op_decode_control,
    "encode_header": op_encode_header,
    "encode_packet": op_encode_packet,
    "encode_control": op_encode_control,
    "decode_stream": op_decode_stream,
    "decompress": op_decompress,
}


def read_message(stream: BinaryIO) -> Optional[Dict[str, Any]]:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    if n > MAX_MESSAGE:
        raise SystemExit("message longer than 64 MiB")
    body = stream.read(n)
    if len(body) < n:
        return None
    msg = json.loads(body.decode("utf-8"))
    if not isinstance(msg, dict):
        raise SystemExit("message is not a JSON object")
    return msg


def write_message(stream: BinaryIO, msg: Dict[str, Any]) -> None:
    body = json.dumps(msg, separators=(",", ":")).encode("utf-8")
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def answer(msg: Dict[str, Any]) -> Dict[str, Any]:
    if msg.get("type") == "hello":
        if msg.get("protocol") != PROTOCOL_VERSION:
            return {"type": "error", "message": f"protocol {PROTOCOL_VERSION} only"}
        return {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "name": "fleetwire-python-binding",
            "version": __version__,
            # endpoint: for its decompression cases (§9.3, through the binding's
            # decompress); transcripts need the `connection` operation, not offered
            # here (the engine drives the reference's state machine, which the
            # reference testee covers), so they show as UNSUPPORTED.
            "levels": ["codec", "endpoint"],
            "operations": sorted(OPERATIONS),
        }
    rid = msg.get("id")
    op = OPERATIONS.get(msg.get("op", ""))
    if op is None:
        return {"type": "unsupported", "id": rid}
    try:
        return {"type": "result", "id": rid, "result": op(msg)}
    except (BadRequest, KeyError, TypeError, ValueError) as e:
        return {"type": "error", "id": rid, "message": f"{type(e).__name__}: {e}"}


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        msg = read_message(stdin)
        if msg is None or msg.get("type") == "bye":
            return
        write_message(stdout, answer(msg))


if __name__ == "__main__":
    main()
