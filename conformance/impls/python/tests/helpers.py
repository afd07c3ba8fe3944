"""Shared helpers for the fleetwire_py tests."""

from fleetwire_py.codec import PREFACE, Hello, Kind, make_packet


def hello_bytes(**fields) -> bytes:
    """A HELLO packet (header + payload) with the given payload fields."""
    return make_packet(Kind.HELLO, Hello(**fields).encode())


def handshake_bytes(**fields) -> bytes:
    """Preface + HELLO as a peer sends them (spec §3)."""
    return PREFACE + hello_bytes(**fields)


from fleetwire_py.codec import Goaway, deframe  # noqa: E402
from fleetwire_py.connection import Config, Connection  # noqa: E402


def out_packets(conn, preface=False):
    """Deframe what ``conn`` wants to send (checks it is well-framed)."""
    data = conn.data_to_send()
    r = deframe(data, expect_preface=preface)
    assert r.error is None and not r.incomplete, (r.error, data)
    return r.packets


def established(config=None, now=0, **hello):
    """A connection that completed its handshake with a peer announcing ``hello``.

    The peer's claimed role is trusted as on a closed network (``require_peer_auth``
    False, explicit configuration of spec §7.4 src.auth) unless ``config`` says
    otherwise; the authentication tests build their connections directly."""
    config = config or Config()
    if config.require_peer_auth is None:
        config.require_peer_auth = False
    conn = Connection(config, now)
    conn.data_to_send()
    hello.setdefault("node_id", 2)
    conn.receive_data(handshake_bytes(**hello), now)
    assert conn.state.name == "ESTABLISHED", conn.close_code
    return conn


def goaway_of(packets):
    """The decoded GOAWAY among ``packets`` (the last one)."""
    gs = [Goaway.decode(p.payload) for p in packets if p.header.kind == Kind.GOAWAY]
    return gs[-1] if gs else None
