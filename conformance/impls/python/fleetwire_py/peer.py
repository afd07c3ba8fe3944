"""A small blocking TCP / TLS 1.3 peer that runs :class:`Connection` over a socket.

* ``EchoServer`` accepts connections (one thread each) and echoes every delivered DATA
  packet back to its source (spec §7.4: Destination Node = Source Node when the packet
  was stamped by a proxy, else 0 = "the other end", §4.6).
* ``Client`` connects, sends DATA and collects events.

TLS (spec §10): TLS 1.3 only, ALPN ``fleetwire/1``; with mutual TLS the identity named by
the peer certificate (one SAN URI ``fleetwire:node:<id>`` or ``fleetwire:proxy:<id>``; none
when there are several, a malformed one counting as one) is handed to the connection,
which closes with BAD_HELLO when the HELLO's node_id differs (§10.2 tls.node-binding);
only a ``fleetwire:proxy:<id>`` URI authenticates a proxy, whose X = 1 packets are then
honoured (§7.4 src.trust).

This module is the only one that reads a clock (``time.monotonic``).

Command line:
    python3 -m fleetwire_py.peer server --port 7000 [--node-id 2] [--cert C --key K [--ca CA]]
    python3 -m fleetwire_py.peer client --port 7000 --message hi [--ca CA --server-name N]
    python3 -m fleetwire_py.peer client --port 7000 --echo   # echo DATA, reconnect after each close

``--timers handshake=MS,header=MS,packet=MS,drain=MS`` and ``--idle-ms MS`` configure the
spec §6.5 timers (the live conformance runner is told the same values).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import threading
import time
from typing import Optional

from .codec import CODEC_NONE, CODEC_ZLIB, ROLE_CLIENT, ROLE_NODE, ROLE_PROXY
from .connection import Config, Connection, ConnectionClosed, DataReceived, Event, GoawayReceived
from .errors import ErrorCode, UsageError

ALPN = "fleetwire/1"
RECV_CHUNK = 65535 + 10  # spec §11 limit.buffer: at most one packet's worth per read


def now_ms() -> int:
    return int(time.monotonic() * 1000)


# ---------------------------------------------------------------------------
# TLS (spec §10)
# ---------------------------------------------------------------------------


def server_tls_context(certfile: str, keyfile: str, client_ca: Optional[str] = None) -> ssl.SSLContext:
    """TLS 1.3-only server context offering ALPN fleetwire/1 (tls.version, tls.alpn).
    With ``client_ca`` the client must present a certificate (mutual TLS, §10.2)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(certfile, keyfile)
    ctx.set_alpn_protocols([ALPN])
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_tls_context(cafile: Optional[str] = None, certfile: Optional[str] = None,
                       keyfile: Optional[str] = None) -> ssl.SSLContext:
    """TLS 1.3-only client context that verifies the server name (tls.server-auth)."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols([ALPN])
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def check_alpn(sock: socket.socket) -> None:
    """spec §10.1 tls.alpn: abort when fleetwire/1 was not agreed, before sending any
    application data. Python cannot send the no_application_protocol alert from a
    server whose ALPN did not match, so this uses the revised spec's other option: the
    connection is dropped right after the handshake, before the preface is sent."""
    if isinstance(sock, ssl.SSLSocket):
        if sock.version() != "TLSv1.3" or sock.selected_alpn_protocol() != ALPN:
            sock.close()
            raise ConnectionRefusedError("TLS 1.3 with ALPN fleetwire/1 was not agreed")


CERT_URI_ROLES = {"fleetwire:node:": ROLE_NODE, "fleetwire:proxy:": ROLE_PROXY}  # spec §10.2


def parse_cert_uri(uri: str) -> Optional[tuple[int, int]]:
    """``fleetwire:node:<id>`` / ``fleetwire:proxy:<id>`` (id in decimal, §10.2) ->
    ``(role, id)``; None for any other URI or a malformed id."""
    for prefix, role in CERT_URI_ROLES.items():
        if uri.startswith(prefix):
            digits = uri[len(prefix):]
            if digits.isascii() and digits.isdigit() and 1 <= int(digits) <= 0xFFFE:
                return role, int(digits)
            return None
    return None


def identity_from_uris(uris) -> Optional[tuple[int, int]]:
    """spec §10.2: the (role, id) a certificate's SAN URIs authenticate. A certificate
    that names no ``fleetwire:node:``/``fleetwire:proxy:`` URI, or more than one (a
    malformed one counts as one), authenticates no node id (None)."""
    named = [u for u in uris if any(u.startswith(prefix) for prefix in CERT_URI_ROLES)]
    if len(named) != 1:
        return None
    return parse_cert_uri(named[0])  # None when the only one is malformed


def cert_identity(sock: socket.socket) -> Optional[tuple[int, int]]:
    """The (role, id) identity named by the peer certificate (spec §10.2), or None."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    cert = sock.getpeercert() or {}
    return identity_from_uris([v for t, v in cert.get("subjectAltName", ()) if t == "URI"])


# ---------------------------------------------------------------------------
# Driving a Connection over a blocking socket
# ---------------------------------------------------------------------------


class SocketDriver:
    """Runs one Connection over one connected (possibly TLS) socket."""

    def __init__(self, sock: socket.socket, config: Config) -> None:
        self.sock = sock
        ident = cert_identity(sock)
        if ident is not None:
            config.peer_identity = ident
        self.conn = Connection(config, now_ms())
        self.events: list[Event] = []
        self.flush()

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            try:
                self.sock.sendall(out)
            except OSError:
                pass

    def poll(self, max_wait_ms: int = 1000) -> list[Event]:
        """Wait for input (up to the next timer deadline), process it, flush output."""
        if self.conn.closed:
            return []
        deadline = self.conn.next_deadline()
        wait = max_wait_ms if deadline is None else max(0, min(max_wait_ms, deadline - now_ms()))
        self.sock.settimeout(max(wait, 1) / 1000)
        try:
            data = self.sock.recv(RECV_CHUNK)
            events = self.conn.receive_data(data, now_ms()) if data else self._eof()
        except (socket.timeout, TimeoutError):
            events = self.conn.tick(now_ms())
        except (OSError, ssl.SSLError):
            events = self._eof()
        if self.conn.config.role == ROLE_CLIENT and any(
                isinstance(e, GoawayReceived) and e.answer_owed for e in events):
            # spec §6.4 close.answer: a client sends only when its user asks, and what it
            # sent is already out: it answers the server's half-close at once
            events += self.conn.close(now_ms())
        self.events.extend(events)
        self._bound_events()
        self.flush()
        return events

    def take_events(self) -> list[Event]:
        """The events kept for the application, which takes them (and makes room)."""
        taken, self.events = self.events, []
        return taken

    def _bound_events(self) -> None:
        """§5.7 error.rate, §11: the events kept until the application takes them are at
        most ``config.max_queued_events``; one more closes the connection with FLOOD, so a
        peer cannot grow them without bound while the application does not take them
        (ERROR, PING and PONG take no credit, §8; DATA's credit is granted back on
        delivery with ``auto_credit``, so DATA counts too)."""
        if len(self.events) > self.conn.config.max_queued_events and not self.conn.closed:
            self.events.extend(self.conn.close(now_ms(), ErrorCode.FLOOD,
                                               "events not consumed: too many queued"))

    def _eof(self) -> list[Event]:
        """Transport closed by the peer: nothing more can be received."""
        return self.conn.transport_closed()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def echo(driver: SocketDriver, ev: DataReceived, pending: Optional[list] = None) -> None:
    """Echo one delivered DATA packet back to its source. With ``pending``, an echo that
    lacks the peer's flow-control credit waits there (spec §8 flow.send: never sent
    beyond credit) and is retried by :func:`flush_echoes` once CREDIT arrives; without
    it, such an echo is dropped."""
    h = ev.header
    dst = h.src if h.x else 0
    conn = driver.conn
    payload, codec = ev.payload, CODEC_NONE
    if conn.peer_hello and len(payload) > conn.peer_hello.max_payload and not h.never_compress:
        # only worth trying when the plain form cannot be sent; never for a payload
        # marked N = 1 (spec §4.4, §9.2 comp.never: secrets are never compressed)
        codec = CODEC_ZLIB
    item = (payload, dict(dst=dst, service=h.service, channel=h.channel, codec=codec,
                          never_compress=h.never_compress))
    if pending is None:
        try:
            conn.send_data(item[0], **item[1])
        except UsageError:
            pass  # no credit / too large / closing: the echo is dropped
        return
    pending.append(item)
    flush_echoes(driver, pending)


def flush_echoes(driver: SocketDriver, pending: list) -> None:
    """Send the waiting echoes, in order, as far as the peer's credit allows."""
    conn = driver.conn
    while pending:
        payload, kw = pending[0]
        try:
            conn.send_data(payload, **kw)
        except UsageError as e:
            if "credit" in str(e) and not conn.closed:
                return  # wait for CREDIT
            # too large for the peer, or closing: this echo is dropped
        pending.pop(0)


def echo_loop(driver: SocketDriver) -> None:
    """Echo every delivered DATA until the connection closes."""
    pending: list = []
    answer_owed = False
    while not driver.conn.closed:
        driver.poll()
        for ev in driver.take_events():
            if isinstance(ev, DataReceived):
                echo(driver, ev, pending)
            elif isinstance(ev, GoawayReceived) and ev.answer_owed:
                answer_owed = True
        flush_echoes(driver, pending)
        if answer_owed and not pending and not driver.conn.closed:
            # spec §6.4 close.answer: the peer half-closed; every DATA before its GOAWAY
            # has been echoed (none still waits for credit), so answer now with our
            # GOAWAY (final `delivered`)
            driver.events.extend(driver.conn.close(now_ms()))
            answer_owed = False
        driver.flush()


def serve_echo(sock: socket.socket, config: Config) -> SocketDriver:
    """Run an echo node on one accepted socket until the connection closes."""
    check_alpn(sock)
    driver = SocketDriver(sock, config)
    echo_loop(driver)
    driver.close()
    return driver


#: a TLS record: content type alert (21), legacy version 0x0303, length 2, level fatal (2),
#: description unexpected_message (10) (RFC 8446 §5.1, §6)
TLS_ALERT_UNEXPECTED_MESSAGE = bytes([21, 3, 3, 0, 2, 2, 10])


def plaintext_preface_on_tls(raw: socket.socket, timeout_ms: int) -> bool:
    """spec §3 [[preface.misconfig]] (SHOULD): a TLS server whose first received byte is
    0x89 (the plaintext preface) answers with a TLS ``unexpected_message`` alert and
    closes. Python's ssl module would only reset the connection, so the first byte is
    peeked at before the TLS handshake starts (the client speaks first in TLS). Returns
    True when the connection was refused this way (and closed)."""
    raw.settimeout(timeout_ms / 1000)
    try:
        first = raw.recv(1, socket.MSG_PEEK)
    except OSError:
        first = b""
    finally:
        raw.settimeout(None)
    if first != b"\x89":
        return False
    try:
        raw.sendall(TLS_ALERT_UNEXPECTED_MESSAGE)
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    raw.close()
    return True


class EchoServer:
    """Blocking accept loop in a background thread; one thread per connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: Optional[Config] = None,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        self.config = config or Config(role=ROLE_NODE, node_id=2)
        self.tls = tls
        self.listener = socket.create_server((host, port))
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._stop = False
        self.next_client_id = 1000  # ids attributed to clients (spec §7.4, hello.peer-id)

    def start(self) -> "EchoServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self.listener.close()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        try:
            if self.tls and plaintext_preface_on_tls(raw, self.config.handshake_timeout_ms):
                return
            sock = self.tls.wrap_socket(raw, server_side=True) if self.tls else raw
            cfg = Config(**{**self.config.__dict__})
            cfg.peer_id = self.next_client_id
            self.next_client_id += 1
            serve_echo(sock, cfg)
        except (OSError, ssl.SSLError, ConnectionRefusedError):
            raw.close()


class Client:
    """Blocking client: connect, handshake, send DATA, wait for events."""

    def __init__(self, host: str, port: int, config: Optional[Config] = None,
                 tls: Optional[ssl.SSLContext] = None, server_name: Optional[str] = None) -> None:
        raw = socket.create_connection((host, port))
        sock = tls.wrap_socket(raw, server_hostname=server_name or host) if tls else raw
        check_alpn(sock)
        self.driver = SocketDriver(sock, config or Config(role=ROLE_CLIENT, node_id=0))

    @property
    def conn(self) -> Connection:
        return self.driver.conn

    def wait_for(self, cls, timeout_ms: int = 5000):
        """Poll until an event of type ``cls`` arrives (or the connection closes)."""
        end = now_ms() + timeout_ms
        while now_ms() < end and not self.conn.closed:
            for ev in self.driver.poll(max_wait_ms=100):
                if isinstance(ev, cls):
                    return ev
        for ev in self.driver.events:
            if isinstance(ev, cls):
                return ev
        return None

    def handshake(self, timeout_ms: int = 5000) -> bool:
        from .connection import HandshakeComplete
        return self.wait_for(HandshakeComplete, timeout_ms) is not None

    def send(self, payload: bytes, **kw) -> None:
        self.conn.send_data(payload, **kw)
        self.driver.flush()

    def close(self) -> None:
        self.driver.events.extend(self.conn.close(now_ms()))
        self.driver.flush()
        self.wait_for(ConnectionClosed, 2000)
        self.driver.close()


def echo_client(a, tls, timers) -> int:
    """Connect, echo every delivered DATA back until the connection closes, reconnect;
    stop once the server refuses connections (the live conformance runner's client
    contract: one connection per case)."""
    refused = 0
    while refused < 20:
        try:
            c = Client(a.host, a.port, config=Config(role=ROLE_CLIENT, node_id=0, **timers),
                       tls=tls, server_name=a.server_name)
        except ConnectionRefusedError:
            refused += 1
            time.sleep(0.05)
            continue
        except (OSError, ssl.SSLError):
            time.sleep(0.01)
            continue
        refused = 0
        echo_loop(c.driver)
        c.driver.close()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Fleetwire v1 Python peer")
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--node-id", type=int, default=2)
    ap.add_argument("--cert"), ap.add_argument("--key"), ap.add_argument("--ca")
    ap.add_argument("--server-name")
    ap.add_argument("--message", default="hello")
    ap.add_argument("--echo", action="store_true",
                    help="client: echo every DATA until the connection closes, then reconnect "
                         "(until the server is gone)")
    ap.add_argument("--timers", default="",
                    help="handshake=MS,header=MS,packet=MS,drain=MS (spec §6.5 timers)")
    ap.add_argument("--idle-ms", type=int, default=None, help="announced idle_timeout_ms")
    a = ap.parse_args(argv)
    timers = {}
    for part in filter(None, a.timers.split(",")):
        name, _, ms = part.partition("=")
        timers[f"{name}_timeout_ms"] = int(ms)
    if a.idle_ms is not None:
        timers["idle_timeout_ms"] = a.idle_ms
    if a.mode == "server":
        tls = server_tls_context(a.cert, a.key, a.ca) if a.cert else None
        srv = EchoServer(a.host, a.port, Config(role=ROLE_NODE, node_id=a.node_id, **timers),
                         tls).start()
        print(f"listening on {a.host}:{srv.port}", flush=True)
        try:
            srv._thread.join()
        except KeyboardInterrupt:
            srv.stop()
        return 0
    tls = client_tls_context(a.ca, a.cert, a.key) if (a.ca or a.cert) else None
    if a.echo:
        return echo_client(a, tls, timers)
    c = Client(a.host, a.port, tls=tls, server_name=a.server_name)
    if not c.handshake():
        print("handshake failed", c.conn.close_code)
        return 1
    c.send(a.message.encode())
    ev = c.wait_for(DataReceived)
    print(ev.payload.decode(errors="replace") if ev else "no echo")
    c.close()
    return 0 if ev else 1


if __name__ == "__main__":
    raise SystemExit(main())
