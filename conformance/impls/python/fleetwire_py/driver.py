"""Maps the JSON forms of the golden vectors (vectors/README.md) and of the conformance
testee protocol (conformance/PROTOCOL.md, §4) onto fleetwire_py.

Every operation takes the request's fields (a dict) and returns the result form, also a
dict: a decoded structure, ``{"incomplete": n}``, ``{"output": hex}`` or a protocol
error ``{"error": NAME, "code": n}``. Protocol errors detected by the implementation are
results, not exceptions. :class:`Unsupported` is raised for a variant this
implementation does not claim (a codec it cannot decode, the proxy level).

Both ``tests/test_vectors.py`` and ``fleetwire_py.testee`` use this module, so the vector
run and the conformance run exercise the same adapter.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from . import compress as C
from .codec import (
    CODEC_NONE,
    RESERVED_NODE,
    ROLE_CLIENT,
    ROLE_NODE,
    ROLE_PROXY,
    Credit,
    Deframer,
    ErrorPayload,
    Goaway,
    Header,
    Hello,
    Kind,
    PacketEvent,
    Ping,
    Pong,
    PrefaceEvent,
    codec_bit,
    header_len_from_flags,
    decode_header_fields,
    parse_header,
    parse_packet,
)
from .connection import (
    Config,
    Connection,
    ConnectionClosed,
    DataReceived,
    ErrorReceived,
    GoawayReceived,
    HandshakeComplete,
    PongReceived,
)
from .errors import ConnectionError_, ErrorCode, FleetwireError, PacketError, UsageError, code_name

CODEC_NAMES = {0: "none", 1: "snappy", 2: "zlib", 3: "reserved"}
CODEC_IDS = {"none": 0, "snappy": 1, "zlib": 2, "reserved": 3}
ROLE_NAMES = {ROLE_CLIENT: "client", ROLE_NODE: "node", ROLE_PROXY: "proxy"}
ROLE_IDS = {v: k for k, v in ROLE_NAMES.items()}
CONTROL = {"HELLO": Hello, "PING": Ping, "PONG": Pong, "GOAWAY": Goaway, "CREDIT": Credit,
           "ERROR": ErrorPayload}
DEFAULT_MAX_PAYLOAD = 65535


class Unsupported(Exception):
    """The request needs something this implementation does not claim."""


class BadRequest(Exception):
    """The request itself cannot be understood (an adapter-level problem)."""


# ---------------------------------------------------------------------------
# Forms
# ---------------------------------------------------------------------------


def err(e: FleetwireError) -> dict:
    return {"error": code_name(e.code), "code": int(e.code)}


def name_or_none(code: int) -> Optional[str]:
    """Control forms write the registry name, or null for an unassigned code (§12.4)."""
    name = code_name(code)
    return None if name.startswith("0x") else name


def closed_name(code: int) -> str:
    """Close codes: the registry name, or ``0xNNNN`` for an unassigned code."""
    name = code_name(code)
    return f"0x{code:04X}" if name.startswith("0x") else name


def header_dict(h: Header) -> dict:
    return {"header_len": h.header_len, "version": h.version,
            "kind": Kind(h.kind).name if h.kind in Kind._value2member_map_ else h.kind,
            "never_compress": h.never_compress, "codec": CODEC_NAMES[h.codec], "hints": h.hint,
            "length": h.length, "node": h.dst, "service": h.service, "channel": h.channel,
            "source": h.src}


def header_from_dict(d: dict) -> Header:
    kind = d["kind"]
    if isinstance(kind, str):
        try:
            kind = int(Kind[kind])
        except KeyError:
            raise BadRequest(f"unknown kind {kind!r}") from None
    codec = d.get("codec", "none")
    codec = CODEC_IDS[codec] if isinstance(codec, str) else int(codec)
    return Header(kind=kind, length=int(d.get("length", 0)), dst=int(d.get("node", 0)),
                  service=int(d.get("service", 0)), channel=int(d.get("channel", 0)),
                  version=int(d.get("version", 1)), codec=codec,
                  never_compress=bool(d.get("never_compress", False)), hint=int(d.get("hints", 0)),
                  src=None if d.get("source") is None else int(d["source"]))


def control_dict(kind: str, c: Any) -> dict:
    if kind == "HELLO":
        return {"min_version": c.min_version, "max_version": c.max_version,
                "role": ROLE_NAMES.get(c.role, c.role), "hello_flags": c.hello_flags,
                "node_id": c.node_id, "peer_id": c.peer_id, "codecs": c.codecs,
                "max_ratio": c.max_ratio, "max_payload": c.max_payload,
                "max_decompressed": c.max_decompressed,
                "initial_credit_packets": c.initial_credit_packets,
                "initial_credit_bytes": c.initial_credit_bytes, "idle_timeout_ms": c.idle_timeout_ms,
                "extensions": c.extensions.hex()}
    if kind == "PING":
        return {"id": str(c.id), "timestamp": str(c.timestamp)}
    if kind == "PONG":
        return {"id": str(c.id), "timestamp": str(c.timestamp), "hold_us": c.hold_us}
    if kind == "GOAWAY":
        return {"code": c.code, "code_name": name_or_none(c.code), "delivered": str(c.delivered),
                "reason": c.reason}
    if kind == "CREDIT":
        return {"packets": c.packets, "bytes": c.bytes}
    return {"code": c.code, "code_name": name_or_none(c.code), "header": c.header.hex(),
            "reason": c.reason}


def control_from_dict(kind: str, f: dict) -> Any:
    if kind == "HELLO":
        role = f["role"]
        return Hello(min_version=int(f["min_version"]), max_version=int(f["max_version"]),
                     role=ROLE_IDS[role] if isinstance(role, str) else int(role),
                     hello_flags=int(f.get("hello_flags", 0)), node_id=int(f["node_id"]),
                     peer_id=int(f["peer_id"]), codecs=int(f["codecs"]), max_ratio=int(f["max_ratio"]),
                     max_payload=int(f["max_payload"]), max_decompressed=int(f["max_decompressed"]),
                     initial_credit_packets=int(f["initial_credit_packets"]),
                     initial_credit_bytes=int(f["initial_credit_bytes"]),
                     idle_timeout_ms=int(f["idle_timeout_ms"]),
                     extensions=bytes.fromhex(f.get("extensions", "")))
    if kind == "PING":
        return Ping(int(f["id"]), int(f["timestamp"]))
    if kind == "PONG":
        return Pong(int(f["id"]), int(f["timestamp"]), int(f.get("hold_us", 0)))
    if kind == "GOAWAY":
        return Goaway(int(f["code"]), int(f.get("delivered", 0)), f.get("reason", ""))
    if kind == "CREDIT":
        return Credit(int(f["packets"]), int(f["bytes"]))
    if kind == "ERROR":
        return ErrorPayload(int(f["code"]), bytes.fromhex(f["header"]), f.get("reason", ""))
    raise BadRequest(f"unknown control kind {kind!r}")


def _hex(req: dict, key: str = "input") -> bytes:
    try:
        return bytes.fromhex(req[key])
    except (KeyError, ValueError, TypeError):
        raise BadRequest(f"cannot parse field `{key}`") from None


# ---------------------------------------------------------------------------
# Codec operations (testee protocol §4.1-§4.6)
# ---------------------------------------------------------------------------


def _missing_header(raw: bytes) -> int:
    """{"incomplete": n} for a header: 8 - length for a short base header, 10 - length
    when X = 1 (vectors/README.md)."""
    if len(raw) < 8:
        return 8 - len(raw)
    return header_len_from_flags(raw[1]) - len(raw)


def op_decode_header(req: dict) -> dict:
    raw = _hex(req)
    try:
        h = parse_header(raw, int(req.get("max_payload", DEFAULT_MAX_PAYLOAD)))
    except ConnectionError_ as e:
        return err(e)
    return {"incomplete": _missing_header(raw)} if h is None else header_dict(h)


def op_decode_packet(req: dict) -> dict:
    raw = _hex(req)
    try:
        r = parse_packet(raw, int(req.get("max_payload", DEFAULT_MAX_PAYLOAD)))
    except ConnectionError_ as e:
        return err(e)
    if r is None:
        if len(raw) < 8 or len(raw) < header_len_from_flags(raw[1]):
            return {"incomplete": _missing_header(raw)}
        h = decode_header_fields(raw)
        return {"incomplete": h.header_len + h.length - len(raw)}
    pkt, end = r
    return {"header": header_dict(pkt.header), "payload": pkt.payload.hex(), "rest": raw[end:].hex()}


def op_decode_control(req: dict) -> dict:
    kind = req.get("kind")
    if kind not in CONTROL:
        raise BadRequest(f"unknown control kind {kind!r}")
    try:
        return control_dict(kind, CONTROL[kind].decode(_hex(req)))
    except ConnectionError_ as e:
        return err(e)


def op_encode_header(req: dict) -> dict:
    return {"output": header_from_dict(req["header"]).encode().hex()}


def op_encode_packet(req: dict) -> dict:
    return {"output": (header_from_dict(req["header"]).encode() + _hex(req, "payload")).hex()}


def op_encode_control(req: dict) -> dict:
    return {"output": control_from_dict(req["kind"], req["fields"]).encode().hex()}


def op_decode_stream(req: dict) -> dict:
    """Feed the chunks in order; §12.2: the result never depends on the split."""
    d = Deframer(int(req.get("max_payload", DEFAULT_MAX_PAYLOAD)), expect_preface=bool(req.get("preface")),
                 check_control=True)
    packets: list[dict] = []
    consumed = 0  # stream offset of the first byte of the current packet
    try:
        for chunk in req.get("chunks", []):
            d.feed(bytes.fromhex(chunk))
            while (ev := d.next_event()) is not None:
                if isinstance(ev, PacketEvent):
                    p = ev.packet
                    packets.append({"header": header_dict(p.header), "payload": p.payload.hex()})
                    consumed += p.header.header_len + p.header.length
                elif isinstance(ev, PrefaceEvent):
                    consumed += 8
    except ConnectionError_ as e:
        return dict(err(e), offset=consumed, packets=packets, status="error")
    status = "incomplete" if d.buffered or d.awaiting_preface else "complete"
    return {"packets": packets, "status": status}


def op_decompress(req: dict) -> dict:
    codec = req.get("codec")
    if codec not in ("none", "snappy", "zlib"):
        raise BadRequest(f"unknown codec {codec!r}")
    if codec == "snappy" and not C.SNAPPY_AVAILABLE:
        raise Unsupported("snappy needs cramjam")
    lim = req["limits"]
    try:
        out = C.decompress(CODEC_IDS[codec], _hex(req), announced_codecs=int(lim["codecs"]),
                           max_decompressed=int(lim["max_decompressed"]), max_ratio=int(lim["max_ratio"]))
    except FleetwireError as e:
        return err(e)
    return {"output": out.hex()}


# ---------------------------------------------------------------------------
# Connection transcripts (testee protocol §4.7, vectors/README.md)
# ---------------------------------------------------------------------------

_LIMITS = ("max_payload", "max_decompressed", "max_ratio", "initial_credit_packets",
           "initial_credit_bytes", "idle_timeout_ms", "max_empty_run", "max_packet_errors",
           "handshake_timeout_ms", "header_timeout_ms", "packet_timeout_ms", "drain_timeout_ms")


def transcript_config(c: dict) -> Config:
    role = ROLE_IDS[c["role"]]
    if role == ROLE_PROXY:
        # §15: this implementation does not claim the proxy level. A proxy must forward
        # (§7.3), which Connection does not do, so an endpoint under test configured as
        # a proxy is a variant it does not implement (PROTOCOL.md §4: `unsupported`).
        raise Unsupported("the endpoint under test is a proxy (§7.3, proxy level not claimed)")
    cfg = Config(role=role, node_id=int(c["node_id"]), peer_id=int(c["peer_id"]), codecs=int(c["codecs"]),
                 trust_proxy_source=bool(c.get("trust_source", False)),
                 require_peer_auth=bool(c.get("require_auth", False)),
                 services=None if c.get("services") is None else frozenset(c["services"]),
                 auto_credit=False)  # credit is granted back when the application takes events
    # trust_server_as_proxy is ignored: a client always trusts its proxy server (§7.4
    # src.client-trusts-server).
    auth = c.get("authenticated")
    if auth is not None:
        cfg.peer_identity = (ROLE_IDS[auth["role"]], int(auth["node_id"]))
    for k, val in (c.get("limits") or {}).items():
        if k == "max_ping_rate":  # §11 limit.ping-rate: PINGs answered per second
            cfg.ping_rate_limit = int(val)
            continue
        if k == "max_error_rate":  # §5.7 error.rate: ERROR packets accepted per second
            cfg.error_rate_limit = int(val)
            continue
        if k not in _LIMITS:
            raise BadRequest(f"unknown limit {k!r}")
        setattr(cfg, k, int(val))
    if cfg.codecs & codec_bit(1) and not C.SNAPPY_AVAILABLE:
        raise Unsupported("snappy needs cramjam")
    return cfg


def event_item(ev: Any, conn: Connection) -> Optional[dict]:
    if isinstance(ev, HandshakeComplete):
        h = ev.peer_hello
        return {"event": "established", "version": ev.version, "role": ROLE_NAMES[h.role],
                "node_id": h.node_id, "attributed_id": h.peer_id, "codecs": h.codecs,
                "max_payload": h.max_payload, "max_decompressed": h.max_decompressed,
                "max_ratio": h.max_ratio, "initial_credit_packets": h.initial_credit_packets,
                "initial_credit_bytes": h.initial_credit_bytes, "idle_timeout_ms": h.idle_timeout_ms}
    if isinstance(ev, DataReceived):
        h = ev.header
        return {"event": "data", "source": ev.source, "node": h.dst, "service": h.service,
                "channel": h.channel, "payload": ev.payload.hex(), "never_compress": h.never_compress}
    if isinstance(ev, PongReceived):
        return {"event": "pong", "id": str(ev.pong.id), "rtt_us": ev.rtt_us}
    if isinstance(ev, ErrorReceived):
        return {"event": "packet_error", "code": ev.error.code, "source": ev.source,
                "header": ev.error.header.hex(), "reason": ev.error.reason}
    if isinstance(ev, GoawayReceived) and ev.answer_owed:  # §6.4 half-close
        return {"event": "goaway", "delivered": str(ev.goaway.delivered), "reason": ev.goaway.reason}
    if isinstance(ev, ConnectionClosed):
        g = conn.goaway_received
        by_peer = not ev.local
        return {"event": "closed", "code": closed_name(ev.code), "by_peer": by_peer, "reason": ev.reason,
                "delivered": str(g.delivered) if (g is not None and by_peer) else None}
    return None  # events the transcripts do not observe (PING, CREDIT, discards, ...)


class Transcript:
    """Runs one transcript and records an observation at every ``expect_*`` step,
    without judging it (the caller or the runner compares)."""

    def __init__(self, config: dict, steps: list) -> None:
        self.conn = Connection(transcript_config(config), 0)
        self.steps = steps
        self._events: list = []
        self._sent = Deframer(expect_preface=True)  # parses what the endpoint sends
        self._step_out = bytearray()  # what the current step wrote (protocol 2 `wire`)
        self.observations: list[dict] = []
        self.wire: list[dict] = []

    def _take_events(self) -> list[dict]:
        """The application takes its events, and credit goes back for what it took
        (and for DATA discarded meanwhile): §8 flow.grant, with the half-window policy
        of Connection.grant_consumed."""
        evs, self._events = self._events, []
        self.conn.grant_consumed()
        return [x for x in (event_item(e, self.conn) for e in evs) if x is not None]

    def _flush(self) -> None:
        raw = self.conn.data_to_send()
        self._sent.feed(raw)
        self._step_out += raw

    def _sent_items(self) -> list[dict]:
        self._flush()
        items: list[dict] = []
        while (ev := self._sent.next_event()) is not None:
            if isinstance(ev, PrefaceEvent):
                items.append({"preface": True})
            elif isinstance(ev, PacketEvent):
                p = ev.packet
                item = dict(header_dict(p.header), payload=p.payload.hex())
                if p.header.kind == Kind.DATA:
                    # vectors/README.md: a DATA item's `decompressed` payload, when it decodes
                    try:
                        item["decompressed"] = C.decompress(
                            p.header.codec, p.payload, announced_codecs=3,
                            max_decompressed=16 << 20, max_ratio=255).hex()
                    except PacketError:
                        pass
                if p.header.kind != Kind.DATA:
                    kind = Kind(p.header.kind).name
                    item.update(control_dict(kind, CONTROL[kind].decode(p.payload)))
                items.append(item)
        return items

    def _send_data(self, step: dict, t: int) -> None:
        # "a preferred codec": the driver falls back to none when the peer did not
        # announce the codec or N = 1 (§9.2); send_data may still send uncompressed.
        conn = self.conn
        codec = CODEC_IDS.get(step.get("codec", "none"), CODEC_NONE)
        never = bool(step.get("never_compress", False))
        peer = conn.peer_hello
        if never or peer is None or not peer.codecs & codec_bit(codec):
            codec = CODEC_NONE
        self._events += conn.tick(t)
        try:
            conn.send_data(bytes.fromhex(step.get("payload", "")), dst=int(step.get("node", 0)),
                           service=int(step.get("service", 0)), channel=int(step.get("channel", 0)),
                           codec=codec, never_compress=never)
        except UsageError:
            pass  # the application is refused (no credit, closing): nothing is sent

    def run(self) -> dict:
        conn = self.conn
        now = 0
        for step in self.steps:
            # a step without a time happens at the previous step's time (0 at first)
            t = step.get("at_ms", now)
            now = t
            if "recv" in step:
                self._events += conn.receive_data(bytes.fromhex(step["recv"]), t)
            elif step.get("tick"):
                self._events += conn.tick(t)
            elif step.get("eof"):
                self._events += conn.transport_closed(t)
            elif "app" in step:
                app = step["app"]
                if app == "send_data":
                    self._send_data(step, t)
                elif app == "close":
                    self._events += conn.tick(t)
                    self._events += conn.close(t)
                elif app == "send_ping":
                    self._events += conn.tick(t)
                    if not conn.closed:
                        try:
                            conn.send_ping(conn._next_ping_id, t)
                            conn._next_ping_id += 1
                        except UsageError:
                            pass
                else:
                    raise BadRequest(f"unknown app action {app!r}")
            elif "expect_sent" in step:
                self.observations.append({"sent": self._sent_items()})
            elif "expect_events" in step:
                self.observations.append({"events": self._take_events()})
            elif "expect_closed" in step:
                self._take_events()
                self.observations.append({"closed": closed_name(conn.close_code) if conn.closed else None})
            elif "expect_open" in step:
                self._take_events()
                self.observations.append({"open": not conn.closed})
            else:
                raise BadRequest(f"unknown step {sorted(step)}")
            self._flush()
            self.wire.append({"sent": bytes(self._step_out).hex(), "closed": bool(conn.closed)})
            self._step_out.clear()
        return {"observations": self.observations, "outcome": self.outcome()}

    def outcome(self) -> dict:
        c = self.conn
        if not c.closed:
            return {"state": "open"}
        code = c.close_code
        assert code is not None
        # A close is "graceful" (state closed) when it is NO_ERROR, started by the peer's
        # GOAWAY, or the end of the stream; otherwise it is this endpoint's connection error.
        if code in (ErrorCode.NO_ERROR, ErrorCode.CONNECTION_LOST) or not c.close_local:
            return {"state": "closed", "code": closed_name(code)}
        return {"error": closed_name(code), "code": int(code)}


def op_connection(req: dict) -> dict:
    t = Transcript(req["config"], req["steps"])
    result = t.run()
    if req.get("wire") is True:  # protocol 2: the raw bytes of every step
        result["wire"] = t.wire
    return result


OPERATIONS: dict[str, Callable[[dict], dict]] = {
    "decode_header": op_decode_header,
    "decode_packet": op_decode_packet,
    "decode_control": op_decode_control,
    "encode_header": op_encode_header,
    "encode_packet": op_encode_packet,
    "encode_control": op_encode_control,
    "decode_stream": op_decode_stream,
    "decompress": op_decompress,
    "connection": op_connection,
}
