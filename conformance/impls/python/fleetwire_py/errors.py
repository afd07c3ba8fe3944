"""Error codes (spec §12.4) and the exceptions that carry them.

Two exception classes mirror the two error scopes of spec §12.1:

* :class:`ConnectionError_` — a connection error (codes 0x0000–0x00FF): the stream
  can no longer be trusted, the endpoint sends GOAWAY and closes.
* :class:`PacketError` — a packet error (codes 0x0100–0x01FF): one well-framed
  packet is discarded, an ERROR is reported, the connection continues.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """The error code registry of spec §12.4."""

    NO_ERROR = 0x0000
    PROTOCOL_ERROR = 0x0001
    BAD_PREFACE = 0x0002
    UNSUPPORTED_VERSION = 0x0003
    RESERVED_BIT = 0x0004
    UNKNOWN_KIND = 0x0005
    BAD_FLAGS = 0x0006
    PAYLOAD_TOO_LARGE = 0x0007
    BAD_CONTROL = 0x0008
    BAD_HELLO = 0x0009
    UNEXPECTED_PACKET = 0x000A
    FLOW_CONTROL = 0x000B
    SOURCE_FORGED = 0x000C
    TIMEOUT = 0x000D
    FLOOD = 0x000E
    TOO_MANY_ERRORS = 0x000F
    INTERNAL_ERROR = 0x0010
    CONNECTION_LOST = 0x0011  # local only: the stream ended without GOAWAY (§6.4); never sent
    NO_ROUTE = 0x0100
    NO_SERVICE = 0x0101
    CODEC_NOT_NEGOTIATED = 0x0102
    DECOMPRESSION_FAILED = 0x0103
    DECOMPRESSED_TOO_LARGE = 0x0104
    RATIO_EXCEEDED = 0x0105
    UNREACHABLE = 0x0106


def is_connection_error(code: int) -> bool:
    """spec §12.1: codes 0x0000–0x00FF are connection errors."""
    return 0x0000 <= code <= 0x00FF


def is_packet_error(code: int) -> bool:
    """spec §12.1: codes 0x0100–0x01FF are packet errors."""
    return 0x0100 <= code <= 0x01FF


#: spec §12.4: codes that are reported locally and never sent in GOAWAY or ERROR.
LOCAL_ONLY_CODES = frozenset({ErrorCode.CONNECTION_LOST})


def code_name(code: int) -> str:
    """Registry name of ``code``, or a hex rendering for unknown codes (§12.4)."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:04X}"


class FleetwireError(Exception):
    """Base class: an error carrying a §12.4 code."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = int(code)
        self.detail = detail
        super().__init__(f"{code_name(self.code)}" + (f": {detail}" if detail else ""))


class ConnectionError_(FleetwireError):
    """A connection error (spec §12.1). Trailing underscore avoids the builtin."""


class PacketError(FleetwireError):
    """A packet error (spec §12.1)."""


class UsageError(Exception):
    """The local application asked for something the protocol forbids (never sent)."""
