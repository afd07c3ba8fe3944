"""The Fleetwire codec for Python users: routing headers, packets, packet streams,
control payloads, decompression under the spec's limits, and the inspector.

Incomplete input is never an error (spec §12.2): ``parse_header`` and ``parse_packet``
return an ``Incomplete(needed)``; invalid input raises ``ProtocolError`` with the spec's
``code`` and ``code_name``.

    >>> from fleetwire import codec
    >>> wire = codec.encode_data((3, 1, 2), b"hello")
    >>> pkt, used = codec.parse_packet(wire)
    >>> (pkt.header.kind, pkt.header.route, bytes(pkt.payload), used)
    ('DATA', (3, 1, 2), b'hello', 13)
    >>> codec.parse_header(wire[:5])
    Incomplete(needed=3)
"""

from ._native import (
    PREFACE,
    Deframer,
    Header,
    Incomplete,
    Packet,
    ProtocolError,
    decode_control,
    decompress,
    encode_control,
    encode_data,
    encode_packet,
    inspect,
    parse_header,
    parse_packet,
)

__all__ = [
    "PREFACE",
    "Deframer",
    "Header",
    "Incomplete",
    "Packet",
    "ProtocolError",
    "decode_control",
    "decompress",
    "encode_control",
    "encode_data",
    "encode_packet",
    "inspect",
    "parse_header",
    "parse_packet",
]
