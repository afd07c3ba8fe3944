"""Fleetwire for Python: the transport engine off the interpreter lock, and the codec.

The engine's IO threads (Rust) read ahead, decrypt, deframe, validate, decompress,
compress, frame, encrypt, write, answer PINGs and run native routes; this Python thread
only queues sends (``send`` / ``send_many`` return at once) and takes every ready event
in one batch (``recv_batch``, which waits with the GIL released).

    import fleetwire
    with fleetwire.Engine() as eng:
        lst = eng.listen("127.0.0.1", 0)
        conn = eng.connect("127.0.0.1", lst.port)
        eng.send(conn, (0, 1, 0), b"hello")
        ...

See ``fleetwire.codec`` for the wire format, ``fleetwire.aio`` for asyncio.
"""

from ._native import (
    SECRET,
    SNAPPY,
    ZLIB,
    Accepted,
    ClientTls,
    Closed,
    Connected,
    ConnectionClosed,
    Counter,
    Engine,
    EngineClosed,
    FleetwireError,
    GoawayReceived,
    Listener,
    Message,
    PacketError,
    Payload,
    PayloadTooLarge,
    Pong,
    ProtocolError,
    QueueFull,
    SendFailed,
    SendRefused,
    ServerTls,
    TlsConfigError,
    Undelivered,
    UnknownConnection,
    __version__,
    error_codes,
)

ERROR_CODES = error_codes()
"""The spec's error code registry (§12): name -> code."""

__all__ = [
    "SECRET",
    "SNAPPY",
    "ZLIB",
    "Accepted",
    "ClientTls",
    "Closed",
    "Connected",
    "ConnectionClosed",
    "Counter",
    "ERROR_CODES",
    "Engine",
    "EngineClosed",
    "FleetwireError",
    "GoawayReceived",
    "Listener",
    "Message",
    "PacketError",
    "Payload",
    "PayloadTooLarge",
    "Pong",
    "ProtocolError",
    "QueueFull",
    "SendFailed",
    "SendRefused",
    "ServerTls",
    "TlsConfigError",
    "Undelivered",
    "UnknownConnection",
    "__version__",
]
