"""fleetwire_py: an independent Python implementation of the Fleetwire v1 wire protocol,
written from spec/fleetwire-v1.md only (codec and endpoint conformance levels, §15)."""

from .errors import ConnectionError_, ErrorCode, FleetwireError, PacketError, UsageError  # noqa: F401
from . import codec, compress, connection  # noqa: F401

__all__ = ["ConnectionError_", "ErrorCode", "FleetwireError", "PacketError", "UsageError",
           "codec", "compress", "connection"]
