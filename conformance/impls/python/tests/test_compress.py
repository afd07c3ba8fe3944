"""§9 codecs and the receiver limits of §9.3: caps at exactly the limit and limit + 1,
the error precedence, and decompression bombs."""

import unittest
import zlib
from unittest import mock

from fleetwire_py import compress as C
from fleetwire_py.codec import CODEC_NONE, CODEC_SNAPPY, CODEC_ZLIB
from fleetwire_py.errors import ErrorCode as E, PacketError

BOTH = 0x03


def run(codec, payload, *, codecs=BOTH, md=16_777_216, ratio=255):
    try:
        return C.decompress(codec, payload, announced_codecs=codecs, max_decompressed=md, max_ratio=ratio)
    except PacketError as e:
        return e.code


def exact_ratio_payload(codec, max_ratio=255):
    """Find n such that compress(zeros(n)) has length L with n == k * L, k ≤ max_ratio:
    then max_ratio = k puts the ratio term of the cap exactly at n."""
    for n in range(2000, 200_000, 7):
        p = C.compress(codec, bytes(n))
        if n % len(p) == 0 and n // len(p) <= max_ratio:
            return p, n, n // len(p)
    raise AssertionError("no exact-ratio payload found")


class CapTests(unittest.TestCase):
    def test_compute_cap(self):
        self.assertEqual(C.compute_cap(1024, 10, 100), (1000, E.RATIO_EXCEEDED))
        self.assertEqual(C.compute_cap(1000, 10, 100), (1000, E.DECOMPRESSED_TOO_LARGE))  # equal terms
        self.assertEqual(C.compute_cap(1024, 255, 100), (1024, E.DECOMPRESSED_TOO_LARGE))
        self.assertEqual(C.compute_cap(1024, 1, 0), (0, E.RATIO_EXCEEDED))


class NoneCodecTests(unittest.TestCase):
    def test_passthrough_ignores_caps(self):
        self.assertEqual(run(CODEC_NONE, b"x" * 5000, codecs=0, md=1024, ratio=1), b"x" * 5000)


class NegotiationTests(unittest.TestCase):
    def test_not_announced_first(self):  # comp.not-negotiated, before any other check
        self.assertEqual(run(CODEC_ZLIB, b"garbage", codecs=0x01), E.CODEC_NOT_NEGOTIATED)
        self.assertEqual(run(CODEC_SNAPPY, b"\xff\xff\xff\xff\x0f", codecs=0x02), E.CODEC_NOT_NEGOTIATED)
        self.assertEqual(run(CODEC_ZLIB, zlib.compress(b"a"), codecs=0xFC), E.CODEC_NOT_NEGOTIATED)

    def test_announced_ok(self):
        self.assertEqual(run(CODEC_ZLIB, zlib.compress(b"abc"), codecs=0x02), b"abc")
        self.assertEqual(run(CODEC_SNAPPY, C.compress(CODEC_SNAPPY, b"abc"), codecs=0x01), b"abc")

    def test_snappy_unavailable_is_clean(self):
        with mock.patch.object(C, "_cramjam", None), mock.patch.object(C, "SNAPPY_AVAILABLE", False):
            self.assertEqual(C.supported_codecs_mask(), 0x02)
            with self.assertRaises(RuntimeError):
                C.compress(CODEC_SNAPPY, b"x")
            # not announced → CODEC_NOT_NEGOTIATED, never a crash
            self.assertEqual(run(CODEC_SNAPPY, b"\x01a", codecs=C.supported_codecs_mask()), E.CODEC_NOT_NEGOTIATED)


class ZlibTests(unittest.TestCase):
    def test_size_cap_exact_and_plus_one(self):  # comp.cap, comp.cap-error
        p = zlib.compress(bytes(5000))
        self.assertEqual(run(CODEC_ZLIB, p, md=5000), bytes(5000))
        self.assertEqual(run(CODEC_ZLIB, p, md=4999), E.DECOMPRESSED_TOO_LARGE)

    def test_ratio_cap_exact_and_plus_one(self):
        p, n, k = exact_ratio_payload(CODEC_ZLIB)
        self.assertEqual(run(CODEC_ZLIB, p, ratio=k), bytes(n))
        self.assertEqual(run(CODEC_ZLIB, p, ratio=k - 1), E.RATIO_EXCEEDED)

    def test_equal_terms_report_decompressed_too_large(self):
        p, n, k = exact_ratio_payload(CODEC_ZLIB)
        self.assertEqual(run(CODEC_ZLIB, p, ratio=k, md=n), bytes(n))
        self.assertEqual(run(CODEC_ZLIB, p + b"", ratio=k - 1, md=(k - 1) * len(p)), E.DECOMPRESSED_TOO_LARGE)

    def test_bomb(self):  # §14.2: 16 MiB of zeros in ~16 KiB
        bomb = zlib.compress(bytes(16_777_216), 9)
        self.assertEqual(run(CODEC_ZLIB, bomb, ratio=255), E.RATIO_EXCEEDED)
        self.assertEqual(run(CODEC_ZLIB, bomb, ratio=255, md=1024), E.DECOMPRESSED_TOO_LARGE)

    def test_cap_bounds_allocation(self):
        # the decompressor is asked for at most cap + 1 bytes
        seen = []
        real = zlib.decompressobj

        class Spy:
            def __init__(self, *a, **kw):
                self.d = real(*a, **kw)

            def decompress(self, data, max_length=0):
                seen.append(max_length)
                return self.d.decompress(data, max_length)

            def __getattr__(self, name):
                return getattr(self.d, name)

        with mock.patch.object(C.zlib, "decompressobj", Spy):
            self.assertEqual(run(CODEC_ZLIB, zlib.compress(bytes(100_000)), md=2048), E.DECOMPRESSED_TOO_LARGE)
        self.assertEqual(seen, [2049])

    def test_malformed(self):  # comp.malformed
        good = zlib.compress(b"hello world" * 10)
        self.assertEqual(run(CODEC_ZLIB, good[:-1]), E.DECOMPRESSION_FAILED)  # truncated
        self.assertEqual(run(CODEC_ZLIB, good[:2]), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_ZLIB, good + b"\0"), E.DECOMPRESSION_FAILED)  # trailing
        bad_sum = good[:-1] + bytes([good[-1] ^ 1])
        self.assertEqual(run(CODEC_ZLIB, bad_sum), E.DECOMPRESSION_FAILED)  # Adler-32
        self.assertEqual(run(CODEC_ZLIB, b"\x78\x9c\xff\xff"), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_ZLIB, b"\x00\x00" + good[2:]), E.DECOMPRESSION_FAILED)  # header
        self.assertEqual(run(CODEC_ZLIB, zlib.compress(b"x")[:0]), E.DECOMPRESSION_FAILED)  # empty
        raw_deflate = zlib.compressobj(wbits=-15)
        self.assertEqual(run(CODEC_ZLIB, raw_deflate.compress(b"abc") + raw_deflate.flush()), E.DECOMPRESSION_FAILED)
        gz = zlib.compressobj(wbits=31)
        self.assertEqual(run(CODEC_ZLIB, gz.compress(b"abc") + gz.flush()), E.DECOMPRESSION_FAILED)

    def test_cap_wins_over_later_malformation(self):
        bomb = zlib.compress(bytes(100_000))
        # truncated after > cap output, bad checksum, trailing bytes: the cap comes first
        self.assertEqual(run(CODEC_ZLIB, bomb[:-4], md=1024), E.DECOMPRESSED_TOO_LARGE)
        self.assertEqual(run(CODEC_ZLIB, bomb[:-1] + bytes([bomb[-1] ^ 1]), md=1024), E.DECOMPRESSED_TOO_LARGE)
        self.assertEqual(run(CODEC_ZLIB, bomb + b"junk", md=1024), E.DECOMPRESSED_TOO_LARGE)
        # the same streams are malformed when the cap is large enough
        self.assertEqual(run(CODEC_ZLIB, bomb[:-4], md=200_000, ratio=10_000), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_ZLIB, bomb + b"junk", md=200_000, ratio=10_000), E.DECOMPRESSION_FAILED)

    def test_output_exactly_cap_then_checksum_error(self):
        p = zlib.compress(bytes(3000))
        bad = p[:-1] + bytes([p[-1] ^ 1])
        self.assertEqual(run(CODEC_ZLIB, bad, md=3000), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_ZLIB, bad, md=2999), E.DECOMPRESSED_TOO_LARGE)

    def test_mid_stream_error_at_the_cap_boundary(self):
        """Two stored blocks; the second has a bad NLEN: 2000 bytes are output before
        the malformation is found."""
        first = bytes(range(250)) * 8
        block1 = b"\x00" + len(first).to_bytes(2, "little") + (len(first) ^ 0xFFFF).to_bytes(2, "little") + first
        block2 = b"\x01" + (5).to_bytes(2, "little") + (5).to_bytes(2, "little") + b"abcde"
        stream = b"\x78\x01" + block1 + block2 + zlib.adler32(first + b"abcde").to_bytes(4, "big")
        self.assertEqual(run(CODEC_ZLIB, stream, md=2000), E.DECOMPRESSION_FAILED)  # output ≤ cap
        self.assertEqual(run(CODEC_ZLIB, stream, md=1999), E.DECOMPRESSED_TOO_LARGE)  # cap first
        fixed = b"\x01" + (5).to_bytes(2, "little") + (5 ^ 0xFFFF).to_bytes(2, "little") + b"abcde"
        good = b"\x78\x01" + block1 + fixed + zlib.adler32(first + b"abcde").to_bytes(4, "big")
        self.assertEqual(run(CODEC_ZLIB, good, md=2005), first + b"abcde")

    def test_invalid_symbol_after_literals(self):
        """Fixed-Huffman block: 40 literals, then the invalid length code 286."""
        bits = [1, 1, 0]  # BFINAL = 1, BTYPE = 01 (LSB first)

        def code(value, n):  # Huffman codes are packed MSB first
            bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

        for _ in range(40):
            code(0x30 + ord("a"), 8)
        code(0xC0 + (286 - 280), 8)
        bits.extend([0] * (-len(bits) % 8))
        deflate = bytes(sum(b << i for i, b in enumerate(bits[j:j + 8])) for j in range(0, len(bits), 8))
        stream = b"\x78\x01" + deflate + bytes(4)
        self.assertEqual(run(CODEC_ZLIB, stream, md=1024), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_ZLIB, stream, md=40), E.DECOMPRESSION_FAILED)  # 40 ≤ cap
        self.assertEqual(run(CODEC_ZLIB, stream, md=39), E.DECOMPRESSED_TOO_LARGE)  # 40 > cap

    def test_preset_dictionary_rejected(self):
        co = zlib.compressobj(zdict=b"dictionary")
        self.assertEqual(run(CODEC_ZLIB, co.compress(b"dictionary!") + co.flush()), E.DECOMPRESSION_FAILED)

    def test_window_size_field(self):  # comp.malformed: CINFO above 7 is malformed
        body = zlib.compress(b"window" * 50)[2:]

        def with_cinfo(cinfo):
            cmf = (cinfo << 4) | 8
            flg = 31 - ((cmf << 8) % 31)  # FCHECK, FDICT = 0, FLEVEL = 0
            flg = 0 if flg == 31 else flg
            return bytes([cmf, flg]) + body

        self.assertEqual(run(CODEC_ZLIB, with_cinfo(7)), b"window" * 50)  # at the limit
        self.assertEqual(run(CODEC_ZLIB, with_cinfo(8)), E.DECOMPRESSION_FAILED)  # limit + 1
        self.assertEqual(run(CODEC_ZLIB, with_cinfo(15)), E.DECOMPRESSION_FAILED)

    def test_fdict_flag_alone_is_malformed(self):  # §9.1: FDICT = 0 required
        good = zlib.compress(b"abc" * 30)
        cmf, flg = good[0], good[1] | 0x20
        flg = (flg & 0xE0) | (31 - ((cmf << 8 | (flg & 0xE0)) % 31)) % 31
        self.assertEqual(((cmf << 8) | flg) % 31, 0)
        self.assertEqual(run(CODEC_ZLIB, bytes([cmf, flg]) + good[2:]), E.DECOMPRESSION_FAILED)

    def test_empty_payload_with_codec(self):  # comp.malformed: empty payload, Cod != 0
        self.assertEqual(run(CODEC_ZLIB, b""), E.DECOMPRESSION_FAILED)
        if C.SNAPPY_AVAILABLE:
            self.assertEqual(run(CODEC_SNAPPY, b""), E.DECOMPRESSION_FAILED)

    def test_malformed_and_over_cap_either_code(self):
        """§9.3: when a payload is malformed and its decompression also exceeds cap,
        either code conforms; this implementation reports the cap when the output
        exceeded cap before the malformation was found."""
        bomb = zlib.compress(bytes(100_000))
        self.assertIn(run(CODEC_ZLIB, bomb[:-4], md=1024), (E.DECOMPRESSED_TOO_LARGE, E.DECOMPRESSION_FAILED))
        # well-formed over cap: the cap error is mandatory
        self.assertEqual(run(CODEC_ZLIB, bomb, md=1024), E.DECOMPRESSED_TOO_LARGE)

    def test_independent_payloads(self):  # comp.independent: sync-flushed fragments fail
        co = zlib.compressobj()
        first = co.compress(b"a" * 100) + co.flush(zlib.Z_SYNC_FLUSH)
        second = co.compress(b"a" * 100) + co.flush()
        self.assertEqual(run(CODEC_ZLIB, first), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_ZLIB, second), E.DECOMPRESSION_FAILED)


@unittest.skipUnless(C.SNAPPY_AVAILABLE, "cramjam not installed")
class SnappyTests(unittest.TestCase):
    def test_varint(self):
        for n in (0, 1, 127, 128, 300, 16_777_216, 0xFFFFFFFF):
            enc = C.encode_snappy_varint(n)
            self.assertEqual(C.parse_snappy_varint(enc + b"tail"), (n, len(enc)))
        self.assertIsNone(C.parse_snappy_varint(b""))
        self.assertIsNone(C.parse_snappy_varint(b"\x80"))
        self.assertIsNone(C.parse_snappy_varint(b"\x80\x80\x80\x80\x80\x00"))  # 6 bytes

    def test_round_trip(self):
        data = bytes(range(256)) * 20
        self.assertEqual(run(CODEC_SNAPPY, C.compress(CODEC_SNAPPY, data)), data)
        self.assertEqual(run(CODEC_SNAPPY, b"\x00"), b"")  # declared 0, no elements

    def test_size_cap_exact_and_plus_one(self):
        p = C.compress(CODEC_SNAPPY, bytes(5000))
        self.assertEqual(run(CODEC_SNAPPY, p, md=5000), bytes(5000))
        self.assertEqual(run(CODEC_SNAPPY, p, md=4999), E.DECOMPRESSED_TOO_LARGE)

    def test_ratio_cap_exact_and_plus_one(self):
        p, n, k = exact_ratio_payload(CODEC_SNAPPY)
        self.assertEqual(run(CODEC_SNAPPY, p, ratio=k), bytes(n))
        self.assertEqual(run(CODEC_SNAPPY, p, ratio=k - 1), E.RATIO_EXCEEDED)

    def test_declared_length_checked_first(self):  # comp.snappy-declared
        # declared 16 MiB + 1 followed by garbage: the cap error wins over malformation
        bomb = C.encode_snappy_varint(16_777_217) + b"\xff" * 20
        self.assertEqual(run(CODEC_SNAPPY, bomb, ratio=255), E.RATIO_EXCEEDED)
        self.assertEqual(run(CODEC_SNAPPY, bomb, md=1024), E.DECOMPRESSED_TOO_LARGE)
        huge = C.encode_snappy_varint(0xFFFFFFFF)
        self.assertEqual(run(CODEC_SNAPPY, huge), E.RATIO_EXCEEDED)
        # declared exactly at cap with garbage body: malformed
        at_cap = C.encode_snappy_varint(1024) + b"\xff" * 20
        self.assertEqual(run(CODEC_SNAPPY, at_cap, md=1024), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_SNAPPY, C.encode_snappy_varint(1025) + b"\xff" * 20, md=1024),
                         E.DECOMPRESSED_TOO_LARGE)

    def test_declared_bomb_does_not_allocate(self):
        with mock.patch.object(C._cramjam.snappy, "decompress_raw", side_effect=AssertionError("called")):
            self.assertEqual(run(CODEC_SNAPPY, C.encode_snappy_varint(10**6) + b"\0", md=1000),
                             E.DECOMPRESSED_TOO_LARGE)

    def test_malformed(self):
        good = C.compress(CODEC_SNAPPY, b"hello hello hello hello world")
        n, used = C.parse_snappy_varint(good)
        body = good[used:]
        self.assertEqual(run(CODEC_SNAPPY, b""), E.DECOMPRESSION_FAILED)  # no preamble
        self.assertEqual(run(CODEC_SNAPPY, b"\x80"), E.DECOMPRESSION_FAILED)  # truncated varint
        self.assertEqual(run(CODEC_SNAPPY, b"\x80\x80\x80\x80\x80\x01"), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_SNAPPY, good[:-1]), E.DECOMPRESSION_FAILED)  # truncated
        self.assertEqual(run(CODEC_SNAPPY, C.encode_snappy_varint(n + 1) + body), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_SNAPPY, C.encode_snappy_varint(n - 1) + body), E.DECOMPRESSION_FAILED)
        self.assertEqual(run(CODEC_SNAPPY, good + b"\x00"), E.DECOMPRESSION_FAILED)  # trailing
        self.assertEqual(run(CODEC_SNAPPY, b"\x05\x01\x00"), E.DECOMPRESSION_FAILED)  # bad offset

    def test_varint_length_limits(self):  # comp.malformed, comp.snappy-declared (revised)
        lit = b"\x10abcde"  # one literal of 5 bytes
        five = b"\x85\x80\x80\x80\x00"  # 5, non-minimal, 5 bytes: MAY be accepted
        self.assertEqual(run(CODEC_SNAPPY, five + lit), b"abcde")
        self.assertEqual(run(CODEC_SNAPPY, b"\x85\x00" + lit), b"abcde")
        six = b"\x85\x80\x80\x80\x80\x00"  # 6 bytes: malformed
        self.assertEqual(run(CODEC_SNAPPY, six + lit), E.DECOMPRESSION_FAILED)
        cut = b"\x85\x80\x80"  # cut short
        self.assertEqual(run(CODEC_SNAPPY, cut), E.DECOMPRESSION_FAILED)
        # a declared length that does not fit in 32 bits is above cap
        self.assertEqual(run(CODEC_SNAPPY, C.encode_snappy_varint(2**32) + lit, md=16_777_216, ratio=255),
                         E.RATIO_EXCEEDED)
        self.assertEqual(run(CODEC_SNAPPY, b"\xff\xff\xff\xff\x7f" + lit, md=1024),
                         E.DECOMPRESSED_TOO_LARGE)

    def test_framing_format_rejected(self):
        framed = bytes(C._cramjam.snappy.compress(b"abc" * 100))
        self.assertEqual(run(CODEC_SNAPPY, framed), E.DECOMPRESSION_FAILED)


class CompressTests(unittest.TestCase):
    def test_compress_round_trip(self):
        data = b"fleetwire " * 300
        self.assertEqual(run(CODEC_ZLIB, C.compress(CODEC_ZLIB, data)), data)
        self.assertEqual(C.compress(CODEC_NONE, data), data)
        with self.assertRaises(ValueError):
            C.compress(3, data)


if __name__ == "__main__":
    unittest.main()
