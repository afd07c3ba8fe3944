"""Sans-IO Fleetwire v1 endpoint connection (spec §3, §6, §7.2, §7.4, §8, §9, §11, §12).

The connection never touches a socket or a clock. The caller feeds received bytes with
``receive_data(data, now_ms)``, lets timers run with ``tick(now_ms)``, collects bytes to
write with ``data_to_send()`` and reads events from the returned lists. When the
connection closes, ``close_code`` holds the code and the state is CLOSED.

Interpretation choices where the spec is silent or ambiguous are listed in
AMBIGUITIES.md next to this package; the code refers to them as "A<n>".
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from . import compress as _compress
from .codec import (
    CODEC_NONE,
    PREFACE,
    RESERVED_NODE,
    ROLE_CLIENT,
    ROLE_NODE,
    ROLE_PROXY,
    VERSION,
    Credit,
    Deframer,
    ErrorPayload,
    Goaway,
    Header,
    HeaderEvent,
    Hello,
    Kind,
    Packet,
    Ping,
    Pong,
    PrefaceEvent,
    codec_bit,
    encode_header,
    MAX_REASON,
)
from .errors import LOCAL_ONLY_CODES, ConnectionError_, ErrorCode, PacketError, UsageError

U32_MAX = 0xFFFFFFFF
SUPPORTED_VERSIONS = (1, 1)  # this implementation speaks version 1 only


class State(enum.Enum):
    """Connection states, spec §6.1."""

    AWAIT_PREFACE = "AWAIT_PREFACE"
    AWAIT_HELLO = "AWAIT_HELLO"
    ESTABLISHED = "ESTABLISHED"
    DRAINING = "DRAINING"
    CLOSED = "CLOSED"


#: Default PINGs answered per second (§11 limit.ping-rate leaves the rate to the
#: configuration): far above a keepalive or an RTT probe, far below a flood.
DEFAULT_PING_RATE_LIMIT = 100_000
#: Default ERROR packets accepted per second (§5.7 error.rate).
DEFAULT_ERROR_RATE_LIMIT = 100_000


@dataclass
class Config:
    """Local configuration. HELLO fields default to the spec §11 defaults."""

    role: int = ROLE_NODE
    node_id: int = 1
    peer_id: int = 0  # id attributed to the peer (sent in HELLO, used as a client's source)
    min_version: int = 1
    max_version: int = 1
    codecs: int = field(default_factory=_compress.supported_codecs_mask)
    max_ratio: int = 100
    max_payload: int = 65535
    max_decompressed: int = 262_144
    initial_credit_packets: int = 1024
    initial_credit_bytes: int = 4_194_304
    idle_timeout_ms: int = 60_000
    hello_extensions: bytes = b""
    # spec §6.5 timers (local)
    handshake_timeout_ms: int = 10_000
    header_timeout_ms: int = 5_000
    packet_timeout_ms: int = 30_000
    drain_timeout_ms: int = 5_000
    # spec §11 local limits
    max_empty_run: int = 32
    max_packet_errors: int = 16
    # §11 limit.ping-rate: PINGs answered per fixed 1000 ms window; the one beyond closes
    # with FLOOD (None = no limit). On by default: the spec asks for a configured rate,
    # and a peer must not make us answer PINGs without bound.
    ping_rate_limit: Optional[int] = DEFAULT_PING_RATE_LIMIT
    # §5.7 error.rate: ERROR packets accepted per fixed 1000 ms window; the one beyond
    # closes with FLOOD (None = no limit). ERROR takes no credit (§8), so nothing else
    # bounds them.
    error_rate_limit: Optional[int] = DEFAULT_ERROR_RATE_LIMIT
    # §5.7 error.rate, §11: events a driver keeps for the application until it takes
    # them; one more closes with FLOOD (peer.SocketDriver). The Connection itself hands
    # every event over at once, from the input it is given.
    max_queued_events: int = 4096
    # spec §7.2: None = every service is registered
    services: Optional[frozenset] = None
    # spec §7.4 / §10.2 trust inputs supplied by the transport layer
    # Explicit local configuration that trusts the peer (a trusted address, or the
    # configured address this endpoint connected to): its role node or proxy is accepted
    # without a certificate (src.auth) and X = 1 from a proxy is honoured (src.trust).
    trust_proxy_source: bool = False
    # src.auth: node/proxy peers must be authenticated (certificate or configuration).
    # None = the role's default: True for a node or proxy (spec §7.4: never trusted by
    # default), False for a client (it accepts the server it connected to).
    require_peer_auth: Optional[bool] = None
    # The identity the peer's certificate names (mutual TLS, §10.2), as a (role, id) pair:
    # SAN URI fleetwire:node:<id> -> (ROLE_NODE, id), fleetwire:proxy:<id> -> (ROLE_PROXY, id).
    # None: the peer authenticated no node id (no certificate, no such URI, or more than
    # one, a malformed one counting as one: §10.2, see peer.cert_identity).
    peer_identity: Optional[tuple[int, int]] = None
    # spec §8 flow.grant: top credit back up automatically as packets are consumed
    auto_credit: bool = True
    # spec §6.2 neg.keepalive: PING after half the peer's idle timeout without sending
    keepalive: bool = True

    def hello(self) -> Hello:
        return Hello(
            min_version=self.min_version, max_version=self.max_version, role=self.role,
            hello_flags=0, node_id=self.node_id, peer_id=self.peer_id, codecs=self.codecs,
            max_ratio=self.max_ratio, max_payload=self.max_payload,
            max_decompressed=self.max_decompressed,
            initial_credit_packets=self.initial_credit_packets,
            initial_credit_bytes=self.initial_credit_bytes, idle_timeout_ms=self.idle_timeout_ms,
            extensions=self.hello_extensions,
        )


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------


@dataclass
class HandshakeComplete:
    peer_hello: Hello
    version: int


@dataclass
class DataReceived:
    """A DATA packet delivered locally (spec §7.2), payload decompressed."""

    source: int
    header: Header
    payload: bytes


@dataclass
class PingReceived:
    ping: Ping


@dataclass
class PongReceived:
    pong: Pong
    rtt_us: int  # now - timestamp - hold_us, timestamps are microseconds (spec §5.3, §5.4)


@dataclass
class CreditReceived:
    credit: Credit


@dataclass
class GoawayReceived:
    goaway: Goaway
    # spec §6.4 half-close: a NO_ERROR GOAWAY this endpoint has not answered yet; it may
    # still send DATA, then answers with close() (close.answer).
    answer_owed: bool = False


@dataclass
class ErrorReceived:
    """An ERROR addressed to this endpoint (spec §5.7)."""

    source: int
    error: ErrorPayload


@dataclass
class PacketDiscarded:
    """This endpoint discarded a packet with a packet error (spec §12.1)."""

    code: int
    header: Header
    reported: bool  # an ERROR was sent


@dataclass
class DataDiscardedAfterGoaway:
    """No longer produced: document version 1.0 discarded DATA that arrived after this
    endpoint sent GOAWAY; version 1.1 processes it (spec §6.4 close.half)."""

    header: Header


@dataclass
class ConnectionClosed:
    code: int
    local: bool  # True: detected or initiated here (incl. CONNECTION_LOST); False: peer GOAWAY
    reason: str = ""


Event = Union[HandshakeComplete, DataReceived, PingReceived, PongReceived, CreditReceived,
              GoawayReceived, ErrorReceived, PacketDiscarded, DataDiscardedAfterGoaway,
              ConnectionClosed]


# ---------------------------------------------------------------------------
# The connection
# ---------------------------------------------------------------------------


def _count_in_window(limit: Optional[int], start: Optional[int], count: int, now_ms: int,
                     why: str) -> tuple[Optional[int], int]:
    """Counts one packet in a fixed 1000 ms window that starts with the first packet
    after the previous window ended; raises FLOOD for the packet beyond ``limit`` (None:
    no limit). Returns the window's new start and count."""
    if limit is None:
        return start, count
    if start is None or now_ms - start >= 1000:
        start, count = now_ms, 0
    count += 1
    if count > limit:
        raise ConnectionError_(ErrorCode.FLOOD, why)
    return start, count


class Connection:
    """One endpoint of a Fleetwire connection, as a sans-IO state machine."""

    def __init__(self, config: Config, now_ms: int) -> None:
        self.config = config
        self.state = State.AWAIT_PREFACE
        self.version: Optional[int] = None
        self.peer_hello: Optional[Hello] = None
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.close_local = True  # False when the close was started by the peer's GOAWAY
        self._out = bytearray()
        self._events: list[Event] = []
        self._deframer = Deframer(config.max_payload, expect_preface=True)
        # credit (packets, bytes) taken by the header of a DATA packet not yet complete
        self._incoming = (0, 0)
        # timers (spec §6.5)
        self._opened_ms = now_ms
        self._last_rx_ms = now_ms
        self._header_start_ms: Optional[int] = None
        self._packet_start_ms: Optional[int] = None
        self._goaway_sent_ms: Optional[int] = None
        self._goaway_received_ms: Optional[int] = None  # the drain timer of §6.5 starts here too
        self._now_ms = now_ms  # latest time the caller passed in
        self._last_tx_ms = now_ms  # for keepalive (spec §6.2 neg.keepalive)
        self._next_ping_id = 1
        # flow control (spec §8): credit we granted (receive side) and hold (send side)
        self.recv_credit_packets = config.initial_credit_packets
        self.recv_credit_bytes = config.initial_credit_bytes
        self.send_credit_packets = 0
        self.send_credit_bytes = 0
        # counters
        self.delivered = 0  # DATA processed: delivered or discarded by a packet error (§5.5)
        self.packet_errors = 0  # spec §12.3
        self._empty_run = 0  # spec §11 max_empty_run
        # spec §11 limit.per-source: on a trusted proxy link, per source
        self._source_empty_run: dict[int, int] = {}
        self._source_errors: dict[int, int] = {}
        self._ping_window_start: Optional[int] = None
        self._ping_window_count = 0
        self._error_window_start: Optional[int] = None
        self._error_window_count = 0
        self._outstanding_pings: dict[int, int] = {}
        self.goaway_sent = False
        self._goaway_code: int = ErrorCode.NO_ERROR
        self.goaway_received: Optional[Goaway] = None
        # spec §6.4: once both GOAWAYs are exchanged, the input already received is
        # processed (close.answer-drain), then the connection closes (end of receive_data).
        self._close_after_input = False
        # spec §3 preface.send: preface and HELLO immediately, without waiting.
        self._out += PREFACE
        self._send_packet(Kind.HELLO, config.hello().encode())

    # ------------------------------------------------------------------ I/O API
    def data_to_send(self) -> bytes:
        """Bytes to write to the transport, in order; clears the outbox."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def closed(self) -> bool:
        return self.state == State.CLOSED

    def receive_data(self, data: bytes, now_ms: int) -> list[Event]:
        """Process received bytes at time ``now_ms``. Timers that expired before this
        input arrived fire first (timeout.first)."""
        if self.closed:
            return []
        self._check_timers(now_ms)
        if self.closed:
            return self._take_events()
        if data:
            self._last_rx_ms = now_ms  # idle timer restarts on any byte (spec §6.5)
            self._deframer.feed(data)
        try:
            self._process(now_ms)
        except ConnectionError_ as e:
            self._fail(e.code, e.detail)
        if self._close_after_input and not self.closed:  # close.answer: "then it closes"
            g = self.goaway_received
            assert g is not None
            self._set_closed(g.code, False, g.reason)
        self._update_frame_timers(now_ms)
        return self._take_events()

    def tick(self, now_ms: int) -> list[Event]:
        """Let time pass without input (spec §6.5)."""
        if not self.closed:
            self._check_timers(now_ms)
        return self._take_events()

    def transport_closed(self, now_ms: Optional[int] = None) -> list[Event]:
        """The byte stream ended or failed (spec §6.4). Timers that expired at or before
        ``now_ms`` are handled first. If no GOAWAY was sent or received, the closure is
        reported locally as CONNECTION_LOST (0x0011), which is never sent; after a
        GOAWAY it is reported with that GOAWAY's code (the peer's if one was received,
        else this endpoint's own, as after ``close()``). Nothing is sent."""
        if now_ms is not None and not self.closed:
            self._check_timers(now_ms)
        if self.closed:
            return self._take_events()
        g = self.goaway_received
        if g is not None:  # the peer half-closed (§6.4) and we had not answered yet
            self._set_closed(g.code, False, g.reason)
        elif self.goaway_sent:
            self._set_closed(self._goaway_code, True, "byte stream ended after GOAWAY")
        else:
            self._set_closed(ErrorCode.CONNECTION_LOST, True, "byte stream ended without GOAWAY")
        return self._take_events()

    def next_deadline(self) -> Optional[int]:
        """Earliest time at which a timer expires or a keepalive is due, for the
        caller's poll loop."""
        times = [d for d, _ in self._deadlines()]
        keepalive = self._keepalive_due()
        if keepalive is not None:
            times.append(keepalive)
        return min(times, default=None)

    # ------------------------------------------------------------------ app API
    def send_data(self, payload: bytes, *, dst: int = 0, service: int = 0, channel: int = 0,
                  codec: int = CODEC_NONE, never_compress: bool = False) -> None:
        """Queue a DATA packet (spec §5.1, §8, §9.2).

        With a ``codec``, the compressed form is sent only when it is smaller
        (comp.threshold) and its decompressed length is within the peer's cap
        (comp.send-cap); otherwise the uncompressed form is sent when it fits the peer's
        ``max_payload``. A payload larger than ``max_payload`` may travel compressed.
        """
        # spec §6.4: no DATA after our GOAWAY (close.no-data-after); after the peer's
        # GOAWAY we may still send until we answer (a half-close)
        if self.state not in (State.ESTABLISHED, State.DRAINING) or self.goaway_sent:
            raise UsageError(f"cannot send DATA in state {self.state.name}")  # close.no-data-after
        assert self.peer_hello is not None
        peer = self.peer_hello
        if never_compress and codec != CODEC_NONE:
            raise UsageError("N = 1 payloads are never compressed (spec §9.2 comp.never)")
        if codec != CODEC_NONE and not peer.codecs & codec_bit(codec):
            raise UsageError("peer did not announce this codec (spec §9.2 comp.send-negotiated)")
        wire, used = self._choose_wire_form(bytes(payload), codec)
        if len(wire) > peer.max_payload:  # hdr.length-send
            raise UsageError(f"payload of {len(wire)} bytes does not fit the peer's limits")
        if self.send_credit_packets < 1 or self.send_credit_bytes < len(wire):  # flow.send
            raise UsageError("not enough flow-control credit")
        self.send_credit_packets -= 1
        self.send_credit_bytes -= len(wire)
        self._send_packet(Kind.DATA, wire, dst=dst, service=service, channel=channel,
                          codec=used, never_compress=never_compress)

    def _choose_wire_form(self, raw: bytes, codec: int) -> tuple[bytes, int]:
        """spec §9.2: pick the compressed form only if smaller and within the peer's
        cap = min(max_decompressed, max_ratio × Payload Length) (comp.send-cap)."""
        if codec == CODEC_NONE:
            return raw, CODEC_NONE
        assert self.peer_hello is not None
        packed = _compress.compress(codec, raw)
        cap, _ = _compress.compute_cap(self.peer_hello.max_decompressed, self.peer_hello.max_ratio, len(packed))
        if len(packed) < len(raw) and len(raw) <= cap:
            return packed, codec
        return raw, CODEC_NONE

    def can_send(self, length: int) -> bool:
        return (self.state in (State.ESTABLISHED, State.DRAINING) and not self.goaway_sent
                and self.send_credit_packets >= 1 and self.send_credit_bytes >= length)

    def send_ping(self, ping_id: int, now_ms: int) -> None:
        """Send a PING whose timestamp is ``now_ms`` in microseconds (spec §5.3)."""
        timestamp = now_ms * 1000
        self._now_ms = max(self._now_ms, now_ms)
        if self.state not in (State.ESTABLISHED, State.DRAINING):
            raise UsageError("PING before the handshake")
        self._outstanding_pings[ping_id] = timestamp
        self._send_packet(Kind.PING, Ping(ping_id, timestamp).encode())

    def send_credit(self, packets: int, nbytes: int) -> None:
        """Grant credit (spec §5.6, §8). Keeps outstanding credit ≤ 2^32 − 1."""
        if packets == 0 and nbytes == 0:
            raise UsageError("CREDIT with both increments zero")
        if self.recv_credit_packets + packets > U32_MAX or self.recv_credit_bytes + nbytes > U32_MAX:
            raise UsageError("outstanding credit would exceed 2^32 - 1")
        self.recv_credit_packets += packets
        self.recv_credit_bytes += nbytes
        self._send_packet(Kind.CREDIT, Credit(packets, nbytes).encode())

    def grant_consumed(self, *, at_half: bool = True) -> None:
        """spec §8 flow.grant: grant back the credit consumed so far, for an application
        that runs with ``auto_credit=False`` and has taken what it was delivered. With
        ``at_half`` (the auto_credit policy) only once half of either initial credit is
        consumed."""
        if self.closed or self.state not in (State.ESTABLISHED, State.DRAINING):
            return
        c = self.config
        # a DATA packet still arriving has taken its credit but is not consumed yet
        ip, ib = self._incoming
        dp = max(c.initial_credit_packets - self.recv_credit_packets - ip, 0)
        db = max(c.initial_credit_bytes - self.recv_credit_bytes - ib, 0)
        if at_half and not (dp * 2 >= c.initial_credit_packets or db * 2 >= c.initial_credit_bytes):
            return
        if dp or db:
            self.send_credit(dp, db)

    def close(self, now_ms: int, code: int = ErrorCode.NO_ERROR, reason: str = "") -> list[Event]:
        """Graceful shutdown (spec §6.4), a half-close: GOAWAY NO_ERROR ("I send no more
        DATA"), then DRAINING until the peer's GOAWAY or the drain timer, while the peer's
        DATA is still processed (close.half). After the peer's own GOAWAY this is the
        answer (close.answer): it closes at once. Before the handshake completes there is
        nothing to drain, so the connection closes at once (A12). Any other code is a
        connection error: GOAWAY with that code and close at once (close.on-error).
        Returns the events this produced (the close, if any)."""
        self._close(now_ms, code, reason)
        return self._take_events()

    def _close(self, now_ms: int, code: int, reason: str) -> None:
        if self.closed:
            return
        if code in LOCAL_ONLY_CODES:
            raise UsageError(f"{code:#06x} is local only and never sent (spec §12.4)")
        self._now_ms = max(self._now_ms, now_ms)
        if code != ErrorCode.NO_ERROR:
            self._fail(code, reason)
            return
        if self.goaway_sent:  # at most one GOAWAY with NO_ERROR
            return
        self._send_goaway(code, reason, now_ms)
        g = self.goaway_received
        if g is not None and self.state == State.DRAINING:
            # close.answer: our answer to the peer's half-close; both directions are done
            self._set_closed(g.code, False, g.reason)
            return
        if self.state in (State.ESTABLISHED, State.DRAINING):
            self.state = State.DRAINING
        else:
            self._set_closed(code, True, reason)

    # ------------------------------------------------------------------ internals: output
    def _send_packet(self, kind: int, payload: bytes, **hdr) -> None:
        self._last_tx_ms = self._now_ms
        version = self.version if (kind != Kind.HELLO and self.version) else VERSION  # hdr.version-send
        self._out += encode_header(kind, len(payload), version=version, **hdr) + payload

    def _send_goaway(self, code: int, reason: str, now_ms: Optional[int]) -> None:
        raw = reason.encode("utf-8")[:MAX_REASON]
        reason = raw.decode("utf-8", errors="ignore")
        self._send_packet(Kind.GOAWAY, Goaway(code, self.delivered, reason).encode())
        if not self.goaway_sent:
            self._goaway_sent_ms = now_ms
            self._goaway_code = code
        self.goaway_sent = True

    def _take_events(self) -> list[Event]:
        ev, self._events = self._events, []
        return ev

    def _set_closed(self, code: int, local: bool, reason: str = "") -> None:
        self.state = State.CLOSED
        self.close_code = code
        self.close_reason = reason
        self.close_local = local
        self._events.append(ConnectionClosed(code, local, reason))

    def _fail(self, code: int, reason: str = "") -> None:
        """Connection error (spec §6.4 close.on-error, §12.1): GOAWAY with the code,
        then close without processing further input. This holds in every state,
        DRAINING included; since the connection closes right after, at most one GOAWAY
        with an error code is ever sent (a NO_ERROR one may precede it)."""
        if self.closed:
            return
        self._send_goaway(code, reason, None)
        self._set_closed(code, True, reason)

    # ------------------------------------------------------------------ internals: timers
    def _deadlines(self) -> list[tuple[int, str]]:
        c = self.config
        out = []
        if self.peer_hello is None:
            out.append((self._opened_ms + c.handshake_timeout_ms, "handshake"))
        if c.idle_timeout_ms:
            out.append((self._last_rx_ms + c.idle_timeout_ms, "idle"))
        if self._header_start_ms is not None:
            out.append((self._header_start_ms + c.header_timeout_ms, "header"))
        if self._packet_start_ms is not None:
            out.append((self._packet_start_ms + c.packet_timeout_ms, "packet"))
        # spec §6.5: the drain timer starts at the first GOAWAY NO_ERROR, sent or received
        starts = [t for t in (self._goaway_sent_ms, self._goaway_received_ms) if t is not None]
        if starts:
            out.append((min(starts) + c.drain_timeout_ms, "drain"))
        return out

    def _check_timers(self, now_ms: int) -> None:
        """spec §6.5 timeout.boundary: a timer has expired once ``now_ms ≥ t0 + T``;
        receive_data calls this before processing input (timeout.first)."""
        self._now_ms = max(self._now_ms, now_ms)
        # timeout.first: earliest first; at the same instant a TIMEOUT timer before the
        # drain timer (and the keepalive, below, after both)
        expired = sorted((d, name == "drain", name) for d, name in self._deadlines() if now_ms >= d)
        if not expired:
            self._maybe_keepalive(now_ms)
            return
        _, _, name = expired[0]
        if name == "drain":
            g = self.goaway_received
            if g is not None and not self.goaway_sent:
                # close.answer: no later than the drain timer, the answer we still owe
                self._send_goaway(ErrorCode.NO_ERROR, "drain timer", now_ms)
                self._set_closed(g.code, False, g.reason)
            else:  # drain expiry after our GOAWAY: close without sending anything more (§6.4)
                self._set_closed(self._goaway_code, True, "drain timeout")
        else:
            self._fail(ErrorCode.TIMEOUT, f"{name} timeout")

    def _keepalive_due(self) -> Optional[int]:
        """spec §6.2 neg.keepalive, §6.5: traffic is due when nothing was sent for half
        the peer's idle timeout; any packet sent counts, and keepalive continues in
        DRAINING."""
        if (self.state not in (State.ESTABLISHED, State.DRAINING) or self.peer_hello is None
                or not self.config.keepalive or not self.peer_hello.idle_timeout_ms):
            return None
        return self._last_tx_ms + self.peer_hello.idle_timeout_ms // 2

    def _maybe_keepalive(self, now_ms: int) -> None:
        due = self._keepalive_due()
        if due is not None and now_ms >= due:
            self.send_ping(self._next_ping_id, now_ms)
            self._next_ping_id += 1

    def _update_frame_timers(self, now_ms: int) -> None:
        """Header/packet timers start at the first byte of a header/packet (spec §6.5)."""
        d = self._deframer
        if self.closed or self.state == State.AWAIT_PREFACE:
            self._header_start_ms = self._packet_start_ms = None
            return
        if d.in_packet:
            if self._packet_start_ms is None:
                self._packet_start_ms = now_ms
        else:
            self._packet_start_ms = None
        if d.in_header:
            if self._header_start_ms is None:
                self._header_start_ms = now_ms
        else:
            self._header_start_ms = None

    # ------------------------------------------------------------------ internals: input
    def _process(self, now_ms: int) -> None:
        while not self.closed:
            ev = self._deframer.next_event()
            if ev is None:
                return
            if isinstance(ev, PrefaceEvent):
                self.state = State.AWAIT_HELLO  # spec §6.1
            elif isinstance(ev, HeaderEvent):
                self._packet_start_ms = self._packet_start_ms if self._packet_start_ms is not None else now_ms
                self._header_start_ms = None  # header complete
                self._on_header(ev.header)
            else:
                self._packet_start_ms = None  # packet complete
                self._incoming = (0, 0)
                self._on_packet(ev.packet, now_ms)

    def _on_header(self, h: Header) -> None:
        """State checks of spec §6.3, after §4.9 and before the payload is read."""
        # 1. kind permitted in this state (state.permitted)
        if self.state == State.AWAIT_HELLO:
            if h.kind not in (Kind.HELLO, Kind.GOAWAY):
                raise ConnectionError_(ErrorCode.UNEXPECTED_PACKET, f"{Kind(h.kind).name} before HELLO")
            return
        if h.kind == Kind.HELLO:
            raise ConnectionError_(ErrorCode.UNEXPECTED_PACKET, "second HELLO")
        if h.kind == Kind.DATA and self.goaway_received is not None:
            raise ConnectionError_(ErrorCode.UNEXPECTED_PACKET, "DATA after the peer's GOAWAY")
        # 2. X = 1 permitted from this peer (src.forbid / src.trust / src.reserved)
        if h.x and not self._peer_may_stamp():
            raise ConnectionError_(ErrorCode.SOURCE_FORGED, "X = 1 from an untrusted peer")
        if h.x and h.src == RESERVED_NODE:
            raise ConnectionError_(ErrorCode.SOURCE_FORGED, "Source Node 0xFFFF")
        # 3. DATA: enough credit (flow.exceed); consumed now, at the header
        if h.kind == Kind.DATA:
            if self.recv_credit_packets < 1 or self.recv_credit_bytes < h.length:
                raise ConnectionError_(ErrorCode.FLOW_CONTROL, "DATA beyond granted credit")
            self.recv_credit_packets -= 1
            self.recv_credit_bytes -= h.length
            self._incoming = (1, h.length)  # not consumed until it is complete (flow.grant)

    def _peer_may_stamp(self) -> bool:
        """spec §7.4 src.trust: only a peer with HELLO role proxy that is authenticated as
        a proxy may send X = 1: by explicit local configuration (a trusted proxy link, or
        a client trusting the server it authenticated), or by a certificate naming
        fleetwire:proxy:<its node_id> (§10.2). A node certificate never makes a proxy."""
        assert self.peer_hello is not None
        hello, c = self.peer_hello, self.config
        if hello.role != ROLE_PROXY:
            return False
        if c.role == ROLE_CLIENT:  # src.client-trusts-server: the server it connected to
            return True
        return c.trust_proxy_source or c.peer_identity == (ROLE_PROXY, hello.node_id)

    def _source_of(self, h: Header) -> int:
        """spec §7.4: the source of a DATA/ERROR packet from this peer."""
        assert self.peer_hello is not None
        role = self.peer_hello.role
        if role == ROLE_CLIENT:
            return self.config.peer_id
        if role == ROLE_PROXY and h.src is not None:
            return h.src
        return self.peer_hello.node_id

    def _on_packet(self, p: Packet, now_ms: int) -> None:
        kind = p.header.kind
        handler: Callable[[Packet, int], None] = {
            Kind.HELLO: self._on_hello,
            Kind.PING: self._on_ping,
            Kind.PONG: self._on_pong,
            Kind.GOAWAY: self._on_goaway,
            Kind.CREDIT: self._on_credit,
            Kind.ERROR: self._on_error,
            Kind.DATA: self._on_data,
        }[Kind(kind)]
        handler(p, now_ms)

    # ---- HELLO (spec §5.2, §6.2, §7.4 src.auth)
    def _on_hello(self, p: Packet, now_ms: int) -> None:
        # hello.order: payload length, field rules (BAD_HELLO), version overlap
        # (UNSUPPORTED_VERSION), authentication (BAD_HELLO).
        hello = Hello.parse(p.payload)  # hello.length
        hello.check_version_range()  # hello.fields
        hello.check_fields()  # hello.fields
        lo = max(hello.min_version, self.config.min_version, SUPPORTED_VERSIONS[0])
        hi = min(hello.max_version, self.config.max_version, SUPPORTED_VERSIONS[1])
        if lo > hi:  # neg.version
            raise ConnectionError_(ErrorCode.UNSUPPORTED_VERSION, "no common version")
        self._check_peer_auth(hello)  # src.auth, tls.node-binding
        if hello.peer_id == RESERVED_NODE:  # §5.2: 0xFFFF is treated, and reported, as 0
            hello = dataclasses.replace(hello, peer_id=0)
        self.version = hi
        self._deframer.version = hi
        self.peer_hello = hello
        self.send_credit_packets = hello.initial_credit_packets  # neg.directional, §8
        self.send_credit_bytes = hello.initial_credit_bytes
        self.state = State.ESTABLISHED
        self._events.append(HandshakeComplete(hello, hi))

    def _check_peer_auth(self, hello: Hello) -> None:
        """spec §10.2 tls.node-binding and §7.4 src.auth. Clients are exempt.

        * Binding: when the certificate names an identity, the HELLO's node_id must be
          its id, else BAD_HELLO. The role is not part of the binding: a proxy with a
          node certificate is merely not authenticated as a proxy (§10.2).
        * Required authentication: the identity must name the HELLO's node_id and, for
          role proxy, be a proxy identity (a proxy identity also matches role node)."""
        c = self.config
        if hello.role == ROLE_CLIENT:
            return
        ident = c.peer_identity
        if ident is not None and ident[1] != hello.node_id:
            raise ConnectionError_(ErrorCode.BAD_HELLO, "node_id does not match the certificate")
        require = c.require_peer_auth
        if require is None:  # src.auth: never trusted by default, except by a client
            require = c.role != ROLE_CLIENT
        if require and not c.trust_proxy_source:  # configured trust satisfies src.auth
            if ident is None:
                raise ConnectionError_(ErrorCode.BAD_HELLO, "node/proxy peer did not authenticate")
            if hello.role == ROLE_PROXY and ident[0] != ROLE_PROXY:
                raise ConnectionError_(ErrorCode.BAD_HELLO, "role proxy without a proxy identity")

    # ---- PING / PONG (spec §5.3, §5.4, §11 limit.ping-rate)
    def _on_ping(self, p: Packet, now_ms: int) -> None:
        ping = Ping.decode(p.payload)
        self._rate_limit_ping(now_ms)
        # ping.answer / ping.order / ping.fifo: answered at once, in arrival order
        self._send_packet(Kind.PONG, Pong(ping.id, ping.timestamp, 0).encode())
        self._events.append(PingReceived(ping))

    def _rate_limit_ping(self, now_ms: int) -> None:
        # limit.ping-rate: at most `ping_rate_limit` per window; the one beyond is FLOOD
        self._ping_window_start, self._ping_window_count = _count_in_window(
            self.config.ping_rate_limit, self._ping_window_start, self._ping_window_count,
            now_ms, "PING rate exceeded")

    def _on_pong(self, p: Packet, now_ms: int) -> None:
        pong = Pong.decode(p.payload)
        ts = self._outstanding_pings.pop(pong.id, None)
        if ts is None:  # pong.unknown: ignored, not an error
            return
        self._events.append(PongReceived(pong, now_ms * 1000 - pong.timestamp - pong.hold_us))

    # ---- GOAWAY (spec §5.5, §6.4)
    def _on_goaway(self, p: Packet, now_ms: int) -> None:
        """spec §6.4. Permitted in AWAIT_HELLO too (§6.1). A GOAWAY with a code other
        than NO_ERROR is not answered and closes at once. A NO_ERROR GOAWAY is answered
        (unless this endpoint sent GOAWAY already); the endpoint then keeps processing
        the input it has (DATA in it is UNEXPECTED_PACKET) and closes (N1)."""
        g = Goaway.decode(p.payload)
        if self.goaway_received is not None and g.code == ErrorCode.NO_ERROR:
            return  # §6.4: a second GOAWAY with NO_ERROR is ignored (settles N3)
        self.goaway_received = g
        owed = (g.code == ErrorCode.NO_ERROR and not self.goaway_sent
                and self.state != State.AWAIT_HELLO)
        self._events.append(GoawayReceived(g, owed))
        if g.code != ErrorCode.NO_ERROR:
            self._set_closed(g.code, False, g.reason)  # goaway.unknown-code: reported as is
            return
        if self.state == State.AWAIT_HELLO:  # nothing to drain before the handshake
            if not self.goaway_sent:
                self._send_goaway(ErrorCode.NO_ERROR, "", now_ms)
            self._set_closed(g.code, False, g.reason)
            return
        self.state = State.DRAINING
        if self.goaway_sent:  # the answer to our GOAWAY: both directions are finished
            self._close_after_input = True
            return
        # §6.4 half-close: the peer sends no more DATA; we may, until the application
        # answers with close() (close.answer) or the drain timer, started now, does
        self._goaway_received_ms = now_ms

    # ---- CREDIT (spec §5.6, §8)
    def _on_credit(self, p: Packet, now_ms: int) -> None:
        c = Credit.decode(p.payload)  # credit.zero
        if self.send_credit_packets + c.packets > U32_MAX or self.send_credit_bytes + c.bytes > U32_MAX:
            raise ConnectionError_(ErrorCode.FLOW_CONTROL, "credit above 2^32 - 1")  # flow.overflow
        self.send_credit_packets += c.packets
        self.send_credit_bytes += c.bytes
        self._events.append(CreditReceived(c))

    # ---- ERROR (spec §5.7)
    def _on_error(self, p: Packet, now_ms: int) -> None:
        e = ErrorPayload.decode(p.payload)  # error.layout
        # error.rate: ERROR takes no credit; at most `error_rate_limit` per window from
        # a client (a node or proxy relays others' reports, §5.7)
        if self.peer_hello is None or self.peer_hello.role == ROLE_CLIENT:
            self._error_window_start, self._error_window_count = _count_in_window(
                self.config.error_rate_limit, self._error_window_start,
                self._error_window_count, now_ms, "ERROR rate exceeded")
        h = p.header
        if not self._is_local(h.dst):
            # A non-proxy has no route; an undeliverable ERROR is discarded silently
            # (error.no-loop) but still counts against the budget (§12.3).
            self._packet_error(PacketError(ErrorCode.NO_ROUTE, "ERROR for another node"), p)
            return
        self._events.append(ErrorReceived(self._source_of(h), e))

    # ---- DATA (spec §5.1, §6.3, §7.2, §9.3, §11)
    def _on_data(self, p: Packet, now_ms: int) -> None:
        h = p.header
        if self._peer_may_stamp():
            # spec §11 limit.per-source: on a trusted proxy link the run is per source, and
            # a source over the limit gets ERROR FLOOD; the link stays open
            src = self._source_of(h)
            run = self._source_empty_run.get(src, 0) + 1 if h.length == 0 else 0
            if run > self.config.max_empty_run:
                run = 0
                self.delivered += 1  # processed: discarded and reported (§5.5)
                self._report(ErrorCode.FLOOD, p)
                self._replenish_or_grant(h)
                self._source_empty_run[src] = 0
                return
            self._source_empty_run[src] = run
        # spec §11 limit.empty-run (counts only DATA; control packets neither reset nor add)
        elif h.length == 0:
            self._empty_run += 1
            if self._empty_run > self.config.max_empty_run:
                raise ConnectionError_(ErrorCode.FLOOD, "too many empty DATA packets")
        else:
            self._empty_run = 0
        # spec §6.4 close.half: after our GOAWAY the peer's DATA is still processed
        try:
            payload = self._deliverable_payload(p)
        except PacketError as e:
            self.delivered += 1  # goaway.delivered: discarded with a packet error counts
            self._packet_error(e, p)
            if not self.closed:
                self._replenish_or_grant(h)
            return
        self.delivered += 1
        self._events.append(DataReceived(self._source_of(h), h, payload))
        self._replenish_credit()

    def _is_local(self, dst: int) -> bool:
        """spec §7.2: Destination Node 0 or this endpoint's own id (for a client, the id
        its peer attributed to it in HELLO `peer_id`, §7.2, state.data-order)."""
        if dst == 0:
            return True
        own = self.config.node_id
        if self.config.role == ROLE_CLIENT and self.peer_hello is not None:
            own = self.peer_hello.peer_id
        return own != 0 and dst == own and dst != RESERVED_NODE

    def _deliverable_payload(self, p: Packet) -> bytes:
        """state.data-order (§6.3): route (§7.2/§7.3; Destination 0xFFFF is always
        NO_ROUTE), service (§7.2), codec announced (§9.3), then decompression (§9.3)."""
        h = p.header
        if not self._is_local(h.dst):
            raise PacketError(ErrorCode.NO_ROUTE, f"no route to node {h.dst}")
        services = self.config.services
        if services is not None and h.service not in services:
            raise PacketError(ErrorCode.NO_SERVICE, f"service {h.service}")
        c = self.config
        return _compress.decompress(h.codec, p.payload, announced_codecs=c.codecs,
                                    max_decompressed=c.max_decompressed, max_ratio=c.max_ratio)

    def _replenish_or_grant(self, h: Header) -> None:
        if not self.config.auto_credit:
            # §8 flow.grant / flow.no-deadlock: a discarded packet never reaches the
            # application, so nothing else would give its credit back: it is granted
            # back at once, even when the application grants the rest itself.
            self.send_credit(1, h.length)
        else:
            self._replenish_credit()

    def _packet_error(self, e: PacketError, p: Packet) -> None:
        """spec §12.1 / §12.3: discard, report with ERROR (never about an ERROR), and
        close with TOO_MANY_ERRORS once the count exceeds max_packet_errors; that packet gets no ERROR (§12.3).
        On a trusted proxy link the budget is per source, and the source over it gets
        ERROR TOO_MANY_ERRORS instead of the link being closed (§11 limit.per-source)."""
        code = e.code
        if self._peer_may_stamp():
            src = self._source_of(p.header)
            n = self._source_errors.get(src, 0) + 1
            if n > self.config.max_packet_errors:
                n, code = 0, ErrorCode.TOO_MANY_ERRORS
            self._source_errors[src] = n
        else:
            self.packet_errors += 1
            if self.packet_errors > self.config.max_packet_errors:
                raise ConnectionError_(ErrorCode.TOO_MANY_ERRORS, f"{self.packet_errors} packet errors")
        report = self._report(code, p)
        self._events.append(PacketDiscarded(code, p.header, report))

    def _report(self, code: int, p: Packet) -> bool:
        """Send ERROR ``code`` about ``p`` to its source (error.route), unless ``p`` is
        itself an ERROR (error.no-loop). Returns whether an ERROR was sent."""
        h = p.header
        if h.kind == Kind.ERROR:
            return False
        dst = self._source_of(h)  # error.route: to the source, Service/Channel zero
        self._send_packet(Kind.ERROR, ErrorPayload(code, p.raw_header).encode(), dst=dst)
        return True

    def _replenish_credit(self) -> None:
        """spec §8 flow.grant: once half of the initial credit is consumed, top it up.
        Credit of discarded DATA (packet errors, DRAINING) is granted back too (§8)."""
        if self.config.auto_credit:
            self.grant_consumed()
