"""Payload codecs of spec §9: none, snappy (raw/block format), zlib (RFC 1950).

Decompression enforces the receiver limits of spec §9.3 with the exact precedence:

1. codec not announced by this receiver         → CODEC_NOT_NEGOTIATED (0x0102)
2. output exceeds ``cap`` (checked while inflating; for snappy, the declared length is
   checked before any output)                     → DECOMPRESSED_TOO_LARGE (0x0104) when
   ``max_decompressed`` is the smaller term or the terms are equal, else RATIO_EXCEEDED
   (0x0105)
3. malformed data (truncation, trailing bytes, checksum, length mismatch)
                                                  → DECOMPRESSION_FAILED (0x0103)

All of them are packet errors (:class:`PacketError`, §9.3 comp.packet-error).
"""

from __future__ import annotations

import zlib
from typing import Optional

from .codec import CODEC_NONE, CODEC_SNAPPY, CODEC_ZLIB, codec_bit
from .errors import ErrorCode, PacketError

try:  # snappy is optional: without cramjam it is simply not supported (not announced).
    import cramjam as _cramjam  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    _cramjam = None

SNAPPY_AVAILABLE = _cramjam is not None
SNAPPY_MAX_VARINT = 5  # a u32 needs at most 5 varint bytes


def supported_codecs_mask() -> int:
    """The HELLO `codecs` bits this implementation can decompress (spec §5.2, §9.1)."""
    return (0x01 if SNAPPY_AVAILABLE else 0) | 0x02


def compute_cap(max_decompressed: int, max_ratio: int, payload_length: int) -> tuple[int, int]:
    """spec §9.3 comp.cap / comp.cap-error: return ``(cap, error_code_if_exceeded)``."""
    ratio_term = max_ratio * payload_length
    cap = min(max_decompressed, ratio_term)
    code = ErrorCode.DECOMPRESSED_TOO_LARGE if max_decompressed <= ratio_term else ErrorCode.RATIO_EXCEEDED
    return cap, code


# ---------------------------------------------------------------------------
# snappy
# ---------------------------------------------------------------------------


def parse_snappy_varint(data: bytes) -> Optional[tuple[int, int]]:
    """Read the raw-format preamble: a little-endian base-128 varint of the uncompressed
    length. Returns ``(value, bytes_used)`` or None when it is truncated or longer than
    5 bytes (malformed)."""
    value = 0
    for i in range(min(len(data), SNAPPY_MAX_VARINT)):
        b = data[i]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value, i + 1
    return None


def encode_snappy_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _decompress_snappy(payload: bytes, cap: int, cap_code: int) -> bytes:
    parsed = parse_snappy_varint(payload)
    if parsed is None:
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "bad snappy length preamble")
    declared, _ = parsed
    # spec §9.3 comp.snappy-declared: compare before any output is produced.
    if declared > cap:
        raise PacketError(cap_code, f"snappy declared length {declared} > cap {cap}")
    if declared > 0xFFFFFFFF:
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "snappy length above 2^32-1")
    if _cramjam is None:  # unreachable when the codec was announced honestly
        raise PacketError(ErrorCode.CODEC_NOT_NEGOTIATED, "snappy unsupported")
    try:
        out = bytes(_cramjam.snappy.decompress_raw(bytes(payload)))
    except Exception as e:  # cramjam.DecompressionError and friends
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, f"snappy: {e}") from None
    if len(out) != declared:  # comp.malformed: output length differs from declared
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "snappy output length mismatch")
    return out


def compress_snappy(data: bytes) -> bytes:
    if _cramjam is None:
        raise RuntimeError("snappy unsupported: cramjam is not installed")
    return bytes(_cramjam.snappy.compress_raw(bytes(data)))


# ---------------------------------------------------------------------------
# zlib
# ---------------------------------------------------------------------------


def _decompress_zlib(payload: bytes, cap: int, cap_code: int) -> bytes:
    """RFC 1950 stream, output capped while inflating (spec §9.3 comp.cap).

    The 2-byte header and the Adler-32 trailer are handled here and the deflate data
    is inflated as a raw stream with ``max_length = cap + 1``, so: no more than cap + 1
    bytes are ever produced; an output above ``cap`` is detected before the trailer is
    examined; and truncation, trailing bytes and checksum mismatches are classified
    exactly. When the deflate data itself is invalid, :func:`_output_before_error`
    measures how much valid output preceded the malformation (comp.malformed: "as long
    as the output did not exceed cap first").
    """
    if len(payload) < 2:
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "zlib header truncated")
    cmf, flg = payload[0], payload[1]
    if cmf & 0x0F != 8 or cmf >> 4 > 7 or ((cmf << 8) | flg) % 31:
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "bad zlib header")
    if flg & 0x20:
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "zlib preset dictionary")
    body = bytes(payload[2:])
    d = zlib.decompressobj(wbits=-15)
    try:
        out = d.decompress(body, cap + 1)  # max_length is never 0 ("unlimited")
    except zlib.error as e:
        if _output_before_error(body, cap) > cap:
            raise PacketError(cap_code, f"zlib output above cap {cap}") from None
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, f"zlib: {e}") from None
    if len(out) > cap:
        raise PacketError(cap_code, f"zlib output above cap {cap}")
    if not d.eof:
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "zlib stream truncated")
    trailer = d.unused_data
    if len(trailer) < 4:
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "zlib checksum truncated")
    if len(trailer) > 4:
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "bytes after the end of the zlib stream")
    if zlib.adler32(out) != int.from_bytes(trailer, "big"):
        raise PacketError(ErrorCode.DECOMPRESSION_FAILED, "zlib Adler-32 mismatch")
    return out


def _inflate_prefix(body: bytes, n: int, cap: int) -> Optional[tuple["zlib._Decompress", int]]:
    """Inflate ``body[:n]`` (at most cap + 1 output bytes). None if it raises."""
    d = zlib.decompressobj(wbits=-15)
    try:
        return d, len(d.decompress(body[:n], cap + 1))
    except zlib.error:
        return None


def _output_before_error(body: bytes, cap: int) -> int:
    """Number of output bytes the raw deflate ``body`` yields before its first error,
    counted up to cap + 1 (only "≤ cap" or "> cap" matters).

    CPython discards the output of a ``decompress`` call that fails, so the failing
    input byte is located by bisection on input prefixes (a prefix never fails unless
    it contains the bad bits), then that byte is replayed one output byte at a time.
    The last output byte of a call that fails cannot be observed (A27); that only matters
    when the output reaches cap + 1, where §9.3 now accepts either code.
    """
    lo, hi = 0, len(body)  # body[:lo] inflates without error, body[:hi] fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = _inflate_prefix(body, mid, cap)
        if r is None:
            hi = mid
        elif r[1] > cap:
            return r[1]
        else:
            lo = mid
    r = _inflate_prefix(body, lo, cap)
    if r is None:  # pragma: no cover - an empty prefix cannot fail
        return 0
    d, n = r
    if n > cap:
        return n
    data = body[lo:hi]
    while n <= cap:
        try:
            chunk = d.decompress(data, 1)
        except zlib.error:
            return n
        if not chunk:
            return n
        n += 1
        data = d.unconsumed_tail
    return n


def compress_zlib(data: bytes, level: int = 6) -> bytes:
    return zlib.compress(bytes(data), level)


# ---------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------


def decompress(codec: int, payload: bytes, *, announced_codecs: int, max_decompressed: int, max_ratio: int) -> bytes:
    """Decode a DATA payload per spec §9.3 using this receiver's announced limits.

    Raises :class:`PacketError` with the code chosen by the §9.3 precedence.
    """
    if codec == CODEC_NONE:
        return bytes(payload)
    if codec not in (CODEC_SNAPPY, CODEC_ZLIB) or not announced_codecs & codec_bit(codec):
        raise PacketError(ErrorCode.CODEC_NOT_NEGOTIATED, f"codec {codec} not announced")
    cap, cap_code = compute_cap(max_decompressed, max_ratio, len(payload))
    if codec == CODEC_SNAPPY:
        return _decompress_snappy(payload, cap, cap_code)
    return _decompress_zlib(payload, cap, cap_code)


def compress(codec: int, data: bytes) -> bytes:
    """Encode ``data`` with ``codec`` (each payload independently, spec §9.1)."""
    if codec == CODEC_NONE:
        return bytes(data)
    if codec == CODEC_SNAPPY:
        return compress_snappy(data)
    if codec == CODEC_ZLIB:
        return compress_zlib(data)
    raise ValueError(f"codec {codec}")
