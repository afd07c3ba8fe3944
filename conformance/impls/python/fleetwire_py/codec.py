"""Fleetwire v1 codec: routing header, packets, incremental deframer, control payloads.

Everything here is pure and stateless except :class:`Deframer`, which holds at most one
incomplete packet (spec §11 ``limit.buffer``). Parsing follows the exact validation order
of spec §4.9; error codes are those of spec §12.4.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Optional, Union

from .errors import ConnectionError_, ErrorCode

# spec §3: 0x89 "FWIRE" CR LF
PREFACE = b"\x89FWIRE\r\n"
PREFACE_LEN = 8

BASE_HEADER_LEN = 8  # spec §4.1
EXT_HEADER_LEN = 10  # spec §4.1 / §4.7 (X = 1)

VERSION = 1  # spec §4.2
MAX_PAYLOAD_HARD = 0xFFFF  # spec §4.5: width of the Payload Length field
RESERVED_NODE = 0xFFFF  # spec §4.6

# byte 1 bit masks, spec §4.1 table
FLAG_X = 0x80
FLAG_N = 0x40
MASK_COD = 0x30
MASK_R = 0x0C
MASK_HNT = 0x03

CODEC_NONE = 0  # spec §4.4 / §9.1
CODEC_SNAPPY = 1
CODEC_ZLIB = 2
CODEC_RESERVED = 3


class Kind(enum.IntEnum):
    """Packet kinds, spec §4.3."""

    DATA = 0
    HELLO = 1
    PING = 2
    PONG = 3
    GOAWAY = 4
    CREDIT = 5
    ERROR = 6


#: spec §4.6 / §4.7: the hop-by-hop control kinds (carry no route, never X).
HOP_BY_HOP = frozenset({Kind.HELLO, Kind.PING, Kind.PONG, Kind.GOAWAY, Kind.CREDIT})
#: spec §4.3: assigned kinds in version 1.
ASSIGNED_KINDS = frozenset(int(k) for k in Kind)


def _err(code: ErrorCode, detail: str) -> ConnectionError_:
    return ConnectionError_(code, detail)


# ---------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------


@dataclass
class Header:
    """A routing header (spec §4.1). Fields hold raw wire values so that any header,
    even an invalid one, encodes back to the exact bytes it was parsed from."""

    kind: int
    length: int = 0
    dst: int = 0
    service: int = 0
    channel: int = 0
    version: int = VERSION
    codec: int = CODEC_NONE
    never_compress: bool = False
    reserved: int = 0  # the two R bits, as a 0..3 value (bits 3-2 of byte 1)
    hint: int = 0  # the two Hnt bits, 0..3 (bits 1-0 of byte 1)
    src: Optional[int] = None  # Source Node; not None exactly when X = 1 (spec §4.7)

    @property
    def x(self) -> bool:
        """The X flag (spec §4.7): set when the extension is present."""
        return self.src is not None

    @property
    def header_len(self) -> int:
        return EXT_HEADER_LEN if self.x else BASE_HEADER_LEN

    @property
    def is_control(self) -> bool:
        """spec §1.3: a control packet is any packet whose kind is not DATA."""
        return self.kind != Kind.DATA

    @property
    def is_hop_by_hop(self) -> bool:
        return self.kind in HOP_BY_HOP

    def flags_byte(self) -> int:
        """Byte 1 of the header (spec §4.1)."""
        return (
            (FLAG_X if self.x else 0)
            | (FLAG_N if self.never_compress else 0)
            | ((self.codec & 3) << 4)
            | ((self.reserved & 3) << 2)
            | (self.hint & 3)
        )

    def encode(self) -> bytes:
        """Encode to 8 or 10 bytes (spec §4.1). No validation: invalid values that fit
        their fields are encoded as given, so tests can build bad headers."""
        b0 = ((self.version & 0xF) << 4) | (self.kind & 0xF)
        out = struct.pack(">BBHHBB", b0, self.flags_byte(), self.length, self.dst, self.service, self.channel)
        if self.src is not None:
            out += struct.pack(">H", self.src)
        return out


def header_len_from_flags(flags: int) -> int:
    """Header length implied by byte 1 (spec §4.1, §4.7: 10 bytes when X = 1, decided by
    the X bit alone whatever the other fields hold, including an unsupported Version)."""
    return EXT_HEADER_LEN if flags & FLAG_X else BASE_HEADER_LEN


def decode_header_fields(buf: bytes) -> Header:
    """Split a complete header (8 or 10 bytes, per its X flag) into fields without any
    validation. ``buf`` may be longer; only the header bytes are read."""
    b0, flags, length, dst, service, channel = struct.unpack_from(">BBHHBB", buf, 0)
    src = struct.unpack_from(">H", buf, 8)[0] if flags & FLAG_X else None
    return Header(
        kind=b0 & 0x0F,
        length=length,
        dst=dst,
        service=service,
        channel=channel,
        version=b0 >> 4,
        codec=(flags & MASK_COD) >> 4,
        never_compress=bool(flags & FLAG_N),
        reserved=(flags & MASK_R) >> 2,
        hint=flags & MASK_HNT,
        src=src,
    )


def validate_header(h: Header, max_payload: int) -> None:
    """Run the nine header checks of spec §4.9 in order; raise the first failure.

    ``max_payload`` is the value this receiver announced (spec §4.5); it is the only
    connection state the checks use.
    """
    # step 1 — Version (§4.2 hdr.version): version 1 is the only version, so any other
    # Version is rejected in every state and for every kind; no state is needed.
    if h.version != VERSION:
        raise _err(ErrorCode.UNSUPPORTED_VERSION, f"version {h.version}, expected {VERSION}")
    # step 2 — Kind (§4.3)
    if h.kind not in ASSIGNED_KINDS:
        raise _err(ErrorCode.UNKNOWN_KIND, f"kind {h.kind}")
    # step 3 — Reserved bits (§4.8)
    if h.reserved:
        raise _err(ErrorCode.RESERVED_BIT, f"R bits {h.reserved:#x}")
    # step 4 — Cod = 3 (§4.4)
    if h.codec == CODEC_RESERVED:
        raise _err(ErrorCode.BAD_FLAGS, "codec 3 is reserved")
    # step 5 — control packet with Cod != 0 or N = 1 (§4.4)
    if h.is_control and (h.codec != CODEC_NONE or h.never_compress):
        raise _err(ErrorCode.BAD_FLAGS, "control packets are never compressed")
    # step 6 — N = 1 with Cod != 0 (§4.4)
    if h.never_compress and h.codec != CODEC_NONE:
        raise _err(ErrorCode.BAD_FLAGS, "N = 1 requires Cod = 0")
    # step 7 — hop-by-hop control packet with X = 1 (§4.7)
    if h.is_hop_by_hop and h.x:
        raise _err(ErrorCode.BAD_FLAGS, "hop-by-hop packet with X = 1")
    # step 8 — Payload Length above max_payload (§4.5)
    if h.length > max_payload:
        raise _err(ErrorCode.PAYLOAD_TOO_LARGE, f"length {h.length} > {max_payload}")
    # step 9 — hop-by-hop control packet with a non-zero route (§4.6)
    if h.is_hop_by_hop and (h.dst or h.service or h.channel):
        raise _err(ErrorCode.BAD_CONTROL, "hop-by-hop packet with a route")


def parse_header(buf: bytes, max_payload: int = MAX_PAYLOAD_HARD) -> Optional[Header]:
    """Parse and validate the header at the start of ``buf``.

    Returns None while the header is incomplete (spec §4.9: no error may be reported
    before the complete 8 or 10 bytes are available, §12.2), else the validated Header.
    Raises :class:`ConnectionError_` with the first failing check of spec §4.9.
    """
    if len(buf) < BASE_HEADER_LEN:
        return None
    if len(buf) < header_len_from_flags(buf[1]):  # §4.7: X alone decides, whatever the Version
        return None
    h = decode_header_fields(buf)
    validate_header(h, max_payload)
    return h


def encode_header(
    kind: int,
    length: int,
    dst: int = 0,
    service: int = 0,
    channel: int = 0,
    *,
    codec: int = CODEC_NONE,
    never_compress: bool = False,
    src: Optional[int] = None,
    version: int = VERSION,
    hint: int = 0,
    reserved: int = 0,
) -> bytes:
    """Convenience wrapper around :meth:`Header.encode`."""
    return Header(
        kind=kind, length=length, dst=dst, service=service, channel=channel, version=version,
        codec=codec, never_compress=never_compress, reserved=reserved, hint=hint, src=src,
    ).encode()


# ---------------------------------------------------------------------------
# Packets
# ---------------------------------------------------------------------------


@dataclass
class Packet:
    """A routing header followed by its payload (spec §1.3)."""

    header: Header
    payload: bytes = b""
    raw_header: bytes = b""  # the header bytes exactly as received (for ERROR, §5.7)

    def encode(self) -> bytes:
        """Header + payload. Payload Length is taken from the header as given."""
        return self.header.encode() + self.payload


def make_packet(kind: int, payload: bytes = b"", **fields) -> bytes:
    """Encode a packet whose Payload Length is ``len(payload)``."""
    return encode_header(kind, len(payload), **fields) + payload


def parse_packet(buf: bytes, max_payload: int = MAX_PAYLOAD_HARD) -> Optional[tuple[Packet, int]]:
    """Parse one packet from the start of ``buf``.

    Returns None when incomplete, else ``(packet, consumed_bytes)``; raises the §4.9
    header error as soon as the header is complete, even if the payload is not.
    """
    h = parse_header(buf, max_payload)
    if h is None:
        return None
    end = h.header_len + h.length
    if len(buf) < end:
        return None
    return Packet(h, bytes(buf[h.header_len:end]), bytes(buf[: h.header_len])), end


# ---------------------------------------------------------------------------
# Incremental deframer (spec §2 item 3, §12.2)
# ---------------------------------------------------------------------------


@dataclass
class PrefaceEvent:
    """The peer's 8-byte preface was received and is correct (spec §3)."""


@dataclass
class HeaderEvent:
    """A complete header passed the §4.9 checks; its payload has not been read yet.
    The connection runs the state checks of §6.3 at this point."""

    header: Header
    raw_header: bytes


@dataclass
class PacketEvent:
    """A complete packet (header already reported by a HeaderEvent)."""

    packet: Packet


DeframerEvent = Union[PrefaceEvent, HeaderEvent, PacketEvent]


class Deframer:
    """Incremental deframer: accepts input split at any byte (spec §2.3, §12.2).

    ``next_event()`` returns the next event, or None when more input is needed
    (incomplete is never an error, §12.2), or raises :class:`ConnectionError_` for
    invalid input. Once an error was raised, the deframer stays failed and raises the
    same error again: the result never depends on how the input was split.

    For each packet it emits a :class:`HeaderEvent` as soon as the header is complete
    and valid, then a :class:`PacketEvent` when the payload is complete.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD_HARD, expect_preface: bool = False,
                 check_control: bool = False) -> None:
        self.max_payload = max_payload
        self.check_control = check_control  # apply the §5 payload rules to control packets
        self._buf = bytearray()
        self._need_preface = expect_preface
        self._header: Optional[Header] = None  # current header, once validated
        self._raw_header = b""
        self._error: Optional[ConnectionError_] = None

    # -- input -------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed as part of an emitted packet."""
        return len(self._buf)

    @property
    def in_header(self) -> bool:
        """True while some bytes of a packet header have arrived but not all of it."""
        return not self._need_preface and self._header is None and len(self._buf) > 0

    @property
    def in_packet(self) -> bool:
        """True while some bytes of a packet have arrived but not the whole packet."""
        return not self._need_preface and (self._header is not None or len(self._buf) > 0)

    @property
    def awaiting_preface(self) -> bool:
        return self._need_preface

    @property
    def failed(self) -> Optional[ConnectionError_]:
        return self._error

    # -- output ------------------------------------------------------------
    def next_event(self) -> Optional[DeframerEvent]:
        if self._error is not None:
            raise self._error
        try:
            return self._step()
        except ConnectionError_ as e:
            self._error = e
            raise

    def _step(self) -> Optional[DeframerEvent]:
        if self._need_preface:
            # spec §3: check once the first 8 bytes are available, not before.
            if len(self._buf) < PREFACE_LEN:
                return None
            if bytes(self._buf[:PREFACE_LEN]) != PREFACE:
                raise _err(ErrorCode.BAD_PREFACE, "bad preface")
            del self._buf[:PREFACE_LEN]
            self._need_preface = False
            return PrefaceEvent()
        if self._header is None:
            h = parse_header(self._buf, self.max_payload)
            if h is None:
                return None
            self._header = h
            self._raw_header = bytes(self._buf[: h.header_len])
            return HeaderEvent(h, self._raw_header)
        h = self._header
        end = h.header_len + h.length
        if len(self._buf) < end:
            return None
        pkt = Packet(h, bytes(self._buf[h.header_len:end]), self._raw_header)
        if self.check_control and h.is_control:
            decode_control(h.kind, pkt.payload)  # raises BAD_CONTROL / BAD_HELLO (§5)
        del self._buf[:end]
        self._header = None
        self._raw_header = b""
        return PacketEvent(pkt)

    def packets(self) -> list[Packet]:
        """Drain all complete packets currently available (codec-level convenience).
        On invalid input the error is raised and packets completed during this call
        are not returned; use :meth:`next_event` or :func:`deframe` to keep them."""
        out = []
        while True:
            ev = self.next_event()
            if ev is None:
                return out
            if isinstance(ev, PacketEvent):
                out.append(ev.packet)


@dataclass
class DeframeResult:
    """Outcome of :func:`deframe`: the packets before the end or the error, the error
    (None if none), and whether input ended inside a preface/header/payload."""

    packets: list[Packet]
    error: Optional[int]
    incomplete: bool


def deframe(data: bytes, max_payload: int = MAX_PAYLOAD_HARD, *, expect_preface: bool = False,
            chunks: Optional[list[int]] = None, check_control: bool = False) -> DeframeResult:
    """Deframe ``data``, optionally fed in pieces of the given sizes (spec §12.2).
    With ``check_control`` the §5 payload rules of control packets are applied too."""
    d = Deframer(max_payload, expect_preface, check_control=check_control)
    packets: list[Packet] = []
    pieces = [data] if chunks is None else _split(data, chunks)
    try:
        for piece in pieces:
            d.feed(piece)
            while (ev := d.next_event()) is not None:
                if isinstance(ev, PacketEvent):
                    packets.append(ev.packet)
    except ConnectionError_ as e:
        return DeframeResult(packets, e.code, False)
    return DeframeResult(packets, None, d.buffered > 0 or d.awaiting_preface)


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for n in sizes:
        out.append(data[pos:pos + n])
        pos += n
    if pos < len(data):
        out.append(data[pos:])
    return out


# ---------------------------------------------------------------------------
# Control payloads (spec §5)
# ---------------------------------------------------------------------------

ROLE_CLIENT = 1  # spec §5.2
ROLE_NODE = 2
ROLE_PROXY = 3
ROLES = (ROLE_CLIENT, ROLE_NODE, ROLE_PROXY)

CODECS_SNAPPY_BIT = 0x01  # spec §5.2 `codecs`
CODECS_ZLIB_BIT = 0x02

HELLO_FIXED_LEN = 28  # spec §5.2
HELLO_MAX_LEN = 1024
MAX_REASON = 256  # spec §5.5, §5.7, §11
MAX_DECOMPRESSED_MIN = 1024  # spec §5.2 / §11
MAX_DECOMPRESSED_MAX = 16_777_216
MAX_PAYLOAD_MIN = 1024
CREDIT_PACKETS_MAX = 1_048_576
CREDIT_BYTES_MAX = 2_147_483_647
IDLE_TIMEOUT_MIN = 1000

_HELLO_STRUCT = struct.Struct(">BBBBHHBBHIIII")
assert _HELLO_STRUCT.size == HELLO_FIXED_LEN


def codec_bit(codec: int) -> int:
    """The HELLO `codecs` bit announcing ``codec`` (spec §5.2); 0 for none."""
    return {CODEC_SNAPPY: CODECS_SNAPPY_BIT, CODEC_ZLIB: CODECS_ZLIB_BIT}.get(codec, 0)


@dataclass
class Hello:
    """HELLO payload, spec §5.2. ``hello_flags``, the reserved `codecs` bits and
    ``extensions`` are kept as received so encode() reproduces the input exactly."""

    min_version: int = 1
    max_version: int = 1
    role: int = ROLE_NODE
    hello_flags: int = 0
    node_id: int = 1
    peer_id: int = 0
    codecs: int = CODECS_SNAPPY_BIT | CODECS_ZLIB_BIT
    max_ratio: int = 100
    max_payload: int = 65535
    max_decompressed: int = 262_144
    initial_credit_packets: int = 1024
    initial_credit_bytes: int = 4_194_304
    idle_timeout_ms: int = 60_000
    extensions: bytes = b""

    def encode(self) -> bytes:
        return _HELLO_STRUCT.pack(
            self.min_version, self.max_version, self.role, self.hello_flags, self.node_id,
            self.peer_id, self.codecs, self.max_ratio, self.max_payload, self.max_decompressed,
            self.initial_credit_packets, self.initial_credit_bytes, self.idle_timeout_ms,
        ) + self.extensions

    @classmethod
    def parse(cls, payload: bytes) -> "Hello":
        """Layout only (spec §5.2 hello.length): 28..1024 bytes, else BAD_HELLO."""
        if not HELLO_FIXED_LEN <= len(payload) <= HELLO_MAX_LEN:
            raise _err(ErrorCode.BAD_HELLO, f"HELLO payload of {len(payload)} bytes")
        f = _HELLO_STRUCT.unpack_from(payload, 0)
        return cls(*f, extensions=bytes(payload[HELLO_FIXED_LEN:]))

    def check_version_range(self) -> None:
        """spec §5.2 rows 0-1: min_version ≥ 1, max_version ≥ min_version → BAD_HELLO.
        Part of the field rules; run before the other rows (hello.order only fixes that
        all field rules precede version overlap)."""
        if self.min_version < 1:
            raise _err(ErrorCode.BAD_HELLO, "min_version 0")
        if self.max_version < self.min_version:
            raise _err(ErrorCode.BAD_HELLO, "max_version < min_version")

    def check_fields(self) -> None:
        """The remaining field rules of the spec §5.2 table → BAD_HELLO (hello.fields).
        hello_flags, reserved codec bits and extensions are ignored (hello.reserved), and
        ``peer_id`` accepts any value (§5.2 table)."""
        if self.role not in ROLES:
            raise _err(ErrorCode.BAD_HELLO, f"role {self.role}")
        if self.node_id == RESERVED_NODE:
            raise _err(ErrorCode.BAD_HELLO, "node_id 0xFFFF")
        if self.role == ROLE_CLIENT and self.node_id != 0:  # hello.client-id
            raise _err(ErrorCode.BAD_HELLO, "client with non-zero node_id")
        if self.role != ROLE_CLIENT and self.node_id == 0:  # hello.node-id
            raise _err(ErrorCode.BAD_HELLO, "node/proxy with node_id 0")
        if self.max_ratio < 1:
            raise _err(ErrorCode.BAD_HELLO, "max_ratio 0")
        if self.max_payload < MAX_PAYLOAD_MIN:
            raise _err(ErrorCode.BAD_HELLO, f"max_payload {self.max_payload}")
        if not MAX_DECOMPRESSED_MIN <= self.max_decompressed <= MAX_DECOMPRESSED_MAX:
            raise _err(ErrorCode.BAD_HELLO, f"max_decompressed {self.max_decompressed}")
        if not 1 <= self.initial_credit_packets <= CREDIT_PACKETS_MAX:
            raise _err(ErrorCode.BAD_HELLO, f"initial_credit_packets {self.initial_credit_packets}")
        if not self.max_payload <= self.initial_credit_bytes <= CREDIT_BYTES_MAX:
            raise _err(ErrorCode.BAD_HELLO, f"initial_credit_bytes {self.initial_credit_bytes}")
        if self.idle_timeout_ms != 0 and self.idle_timeout_ms < IDLE_TIMEOUT_MIN:
            raise _err(ErrorCode.BAD_HELLO, f"idle_timeout_ms {self.idle_timeout_ms}")

    @classmethod
    def decode(cls, payload: bytes) -> "Hello":
        """Parse and apply every §5.2 rule (codec level; no negotiation)."""
        h = cls.parse(payload)
        h.check_version_range()
        h.check_fields()
        return h


def _fixed(payload: bytes, n: int, what: str) -> None:
    if len(payload) != n:
        raise _err(ErrorCode.BAD_CONTROL, f"{what} payload of {len(payload)} bytes, expected {n}")


@dataclass
class Ping:
    """PING payload, spec §5.3: exactly 16 bytes."""

    id: int
    timestamp: int

    def encode(self) -> bytes:
        return struct.pack(">QQ", self.id, self.timestamp)

    @classmethod
    def decode(cls, payload: bytes) -> "Ping":
        _fixed(payload, 16, "PING")
        return cls(*struct.unpack(">QQ", payload))


@dataclass
class Pong:
    """PONG payload, spec §5.4: exactly 20 bytes."""

    id: int
    timestamp: int
    hold_us: int = 0

    def encode(self) -> bytes:
        return struct.pack(">QQI", self.id, self.timestamp, self.hold_us)

    @classmethod
    def decode(cls, payload: bytes) -> "Pong":
        _fixed(payload, 20, "PONG")
        return cls(*struct.unpack(">QQI", payload))


def _decode_reason(raw: bytes) -> str:
    """spec §5.5 goaway.reason / §5.7 error.layout: ≤ 256 bytes of valid UTF-8."""
    if len(raw) > MAX_REASON:
        raise _err(ErrorCode.BAD_CONTROL, f"reason of {len(raw)} bytes")
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _err(ErrorCode.BAD_CONTROL, "reason is not valid UTF-8") from None


@dataclass
class Goaway:
    """GOAWAY payload, spec §5.5: code u16, delivered u64, optional reason."""

    code: int
    delivered: int = 0
    reason: str = ""

    def encode(self) -> bytes:
        return struct.pack(">HQ", self.code, self.delivered) + self.reason.encode("utf-8")

    @classmethod
    def decode(cls, payload: bytes) -> "Goaway":
        if len(payload) < 10:
            raise _err(ErrorCode.BAD_CONTROL, f"GOAWAY payload of {len(payload)} bytes")
        code, delivered = struct.unpack_from(">HQ", payload, 0)
        return cls(code, delivered, _decode_reason(bytes(payload[10:])))


@dataclass
class Credit:
    """CREDIT payload, spec §5.6: exactly 8 bytes, not both zero."""

    packets: int
    bytes: int

    def encode(self) -> bytes:
        return struct.pack(">II", self.packets, self.bytes)

    @classmethod
    def decode(cls, payload: bytes) -> "Credit":
        _fixed(payload, 8, "CREDIT")
        c = cls(*struct.unpack(">II", payload))
        if c.packets == 0 and c.bytes == 0:  # credit.zero
            raise _err(ErrorCode.BAD_CONTROL, "CREDIT with both increments zero")
        return c


@dataclass
class ErrorPayload:
    """ERROR payload, spec §5.7: code u16, the discarded packet's raw header (8 or 10
    bytes per its X flag, otherwise not validated), optional reason."""

    code: int
    header: bytes
    reason: str = ""

    def encode(self) -> bytes:
        return struct.pack(">H", self.code) + self.header + self.reason.encode("utf-8")

    @classmethod
    def decode(cls, payload: bytes) -> "ErrorPayload":
        if len(payload) < 2 + BASE_HEADER_LEN:
            raise _err(ErrorCode.BAD_CONTROL, f"ERROR payload of {len(payload)} bytes")
        hlen = header_len_from_flags(payload[3])  # byte 1 of the embedded header
        if len(payload) < 2 + hlen:
            raise _err(ErrorCode.BAD_CONTROL, "ERROR payload too short for its embedded header")
        code = struct.unpack_from(">H", payload, 0)[0]
        return cls(code, bytes(payload[2:2 + hlen]), _decode_reason(bytes(payload[2 + hlen:])))

    @property
    def embedded(self) -> Header:
        """The embedded header split into fields (not validated)."""
        return decode_header_fields(self.header)


ControlPayload = Union[Hello, Ping, Pong, Goaway, Credit, ErrorPayload]

_CONTROL_CODECS = {
    Kind.PING: Ping,
    Kind.PONG: Pong,
    Kind.GOAWAY: Goaway,
    Kind.CREDIT: Credit,
    Kind.ERROR: ErrorPayload,
}


def decode_control(kind: int, payload: bytes) -> ControlPayload:
    """Decode a control payload by kind with every §5 rule (HELLO: all §5.2 rules)."""
    if kind == Kind.HELLO:
        return Hello.decode(payload)
    try:
        return _CONTROL_CODECS[Kind(kind)].decode(payload)
    except (KeyError, ValueError):
        raise ValueError(f"kind {kind} has no control payload") from None
