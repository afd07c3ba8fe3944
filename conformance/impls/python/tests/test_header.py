"""Routing header: layout (§4.1), every check of §4.9 at and beyond its limit, the check
order, incompleteness (§12.2) and byte-exact round trips."""

import itertools
import struct
import unittest

from fleetwire_py.codec import (
    Header, Kind, decode_header_fields, encode_header, parse_header, parse_packet,
    validate_header,
)
from fleetwire_py.errors import ConnectionError_, ErrorCode as E


def raw(b0, b1, length=0, dst=0, svc=0, ch=0, src=None):
    out = struct.pack(">BBHHBB", b0, b1, length, dst, svc, ch)
    return out + (struct.pack(">H", src) if src is not None else b"")


def code_of(buf, max_payload=65535):
    try:
        parse_header(buf, max_payload)
    except ConnectionError_ as e:
        return e.code
    return None


class LayoutTests(unittest.TestCase):
    def test_field_positions(self):
        h = decode_header_fields(bytes([0x10, 0x80 | 0x20 | 0x01, 0x01, 0x02, 0xAB, 0xCD, 0x07, 0x09, 0x12, 0x34]))
        self.assertEqual((h.version, h.kind), (1, 0))
        self.assertTrue(h.x)
        self.assertFalse(h.never_compress)
        self.assertEqual(h.codec, 2)
        self.assertEqual(h.reserved, 0)
        self.assertEqual(h.hint, 1)
        self.assertEqual(h.length, 0x0102)
        self.assertEqual(h.dst, 0xABCD)
        self.assertEqual((h.service, h.channel), (7, 9))
        self.assertEqual(h.src, 0x1234)
        self.assertEqual(h.header_len, 10)

    def test_encode_known_bytes(self):
        self.assertEqual(encode_header(Kind.DATA, 5, 0x0102, 3, 4), bytes([0x10, 0, 0, 5, 1, 2, 3, 4]))
        self.assertEqual(encode_header(Kind.PING, 16), bytes([0x12, 0, 0, 16, 0, 0, 0, 0]))
        self.assertEqual(encode_header(Kind.ERROR, 10, 9, src=0xFFFE), bytes([0x16, 0x80, 0, 10, 0, 9, 0, 0, 0xFF, 0xFE]))
        self.assertEqual(encode_header(Kind.DATA, 0, never_compress=True), bytes([0x10, 0x40, 0, 0, 0, 0, 0, 0]))
        self.assertEqual(encode_header(Kind.DATA, 0, codec=1), bytes([0x10, 0x10, 0, 0, 0, 0, 0, 0]))

    def test_round_trip_every_flags_byte(self):
        # Every value of byte 1, for DATA: encode(decode(x)) == x even when invalid.
        for b1 in range(256):
            buf = raw(0x10, b1, 300, 0x1234, 5, 6, src=0x4321 if b1 & 0x80 else None)
            self.assertEqual(decode_header_fields(buf).encode(), buf)

    def test_round_trip_every_first_byte(self):
        for b0 in range(256):
            buf = raw(b0, 0x03, 1, 2, 3, 4)
            self.assertEqual(decode_header_fields(buf).encode(), buf)


class ValidHeaderTests(unittest.TestCase):
    def test_all_valid_kinds(self):
        for kind in Kind:
            route = (0, 0, 0) if kind not in (Kind.DATA, Kind.ERROR) else (7, 8, 9)
            buf = encode_header(kind, 4, *route)
            self.assertEqual(parse_header(buf).kind, kind)

    def test_hint_bits_ignored(self):  # hdr.hint
        for hint in range(4):
            for kind in Kind:
                self.assertIsNotNone(parse_header(encode_header(kind, 0, hint=hint)))

    def test_data_codecs_and_n(self):
        for cod in (0, 1, 2):
            self.assertEqual(parse_header(encode_header(Kind.DATA, 0, codec=cod)).codec, cod)
        self.assertTrue(parse_header(encode_header(Kind.DATA, 0, never_compress=True)).never_compress)

    def test_extension_on_data_and_error(self):
        for kind in (Kind.DATA, Kind.ERROR):
            h = parse_header(encode_header(kind, 0, src=0xFFFF))
            self.assertEqual(h.src, 0xFFFF)


class CheckTests(unittest.TestCase):
    """One test per step of §4.9, each at the boundary."""

    def test_1_version(self):  # hdr.version
        for v in range(16):
            for kind in (0, 1, 2):
                c = code_of(raw((v << 4) | kind, 0))
                self.assertEqual(c, None if v == 1 else E.UNSUPPORTED_VERSION, (v, kind))

    def test_1_version_is_stateless(self):
        # §4.2 (revised): version 1 is the only version; every Version other than 1 is
        # rejected for every kind, including unassigned kinds, with no connection state.
        for b0 in (0x20, 0x21, 0x27, 0x0F, 0xF6):
            with self.assertRaises(ConnectionError_) as cm:
                validate_header(decode_header_fields(raw(b0, 0)), 65535)
            self.assertEqual(cm.exception.code, E.UNSUPPORTED_VERSION, hex(b0))

    def test_1_bad_version_header_length_from_x(self):  # §4.7: X alone decides the length
        from fleetwire_py.codec import parse_header
        hdr = bytes([0x20, 0x80, 0, 0, 0, 0, 0, 0])
        self.assertIsNone(parse_header(hdr))  # waits for the 10th byte before any error
        self.assertIsNone(parse_header(hdr + b"\x00"))
        with self.assertRaises(ConnectionError_) as cm:
            parse_header(hdr + b"\x00\x01")
        self.assertEqual(cm.exception.code, E.UNSUPPORTED_VERSION)

    def test_2_kind(self):  # hdr.kind
        for k in range(16):
            self.assertEqual(code_of(raw(0x10 | k, 0)), None if k <= 6 else E.UNKNOWN_KIND, k)

    def test_3_reserved(self):  # hdr.reserved
        for r in (0x04, 0x08, 0x0C):
            self.assertEqual(code_of(raw(0x10, r)), E.RESERVED_BIT)
        self.assertIsNone(code_of(raw(0x10, 0x03)))

    def test_4_codec_reserved(self):  # hdr.codec-reserved
        self.assertEqual(code_of(raw(0x10, 0x30)), E.BAD_FLAGS)
        self.assertEqual(code_of(raw(0x12, 0x30)), E.BAD_FLAGS)
        self.assertIsNone(code_of(raw(0x10, 0x20)))

    def test_5_control_flags(self):  # hdr.control-flags
        for kind in range(1, 7):
            for b1 in (0x10, 0x20, 0x40):
                self.assertEqual(code_of(raw(0x10 | kind, b1)), E.BAD_FLAGS, (kind, b1))
            self.assertIsNone(code_of(raw(0x10 | kind, 0x00)))

    def test_6_never_compress(self):  # hdr.never-compress
        self.assertEqual(code_of(raw(0x10, 0x40 | 0x10)), E.BAD_FLAGS)
        self.assertEqual(code_of(raw(0x10, 0x40 | 0x20)), E.BAD_FLAGS)
        self.assertIsNone(code_of(raw(0x10, 0x40)))

    def test_7_control_ext(self):  # hdr.control-ext
        for kind in range(1, 6):
            self.assertEqual(code_of(raw(0x10 | kind, 0x80, src=1)), E.BAD_FLAGS, kind)
        self.assertIsNone(code_of(raw(0x16, 0x80, 10, 5, src=1)))
        self.assertIsNone(code_of(raw(0x10, 0x80, src=1)))

    def test_8_length(self):  # hdr.length-max: at the limit and limit + 1
        for maxp in (1024, 4000, 65534):
            self.assertIsNone(code_of(raw(0x10, 0, maxp), maxp))
            self.assertEqual(code_of(raw(0x10, 0, maxp + 1), maxp), E.PAYLOAD_TOO_LARGE)
            self.assertIsNone(code_of(raw(0x12, 0, maxp), maxp))  # even for control kinds
            self.assertEqual(code_of(raw(0x12, 0, maxp + 1), maxp), E.PAYLOAD_TOO_LARGE)
        self.assertIsNone(code_of(raw(0x10, 0, 65535), 65535))

    def test_9_control_route(self):  # hdr.control-route
        for kind in range(1, 6):
            for route in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (0xFFFF, 0xFF, 0xFF)):
                self.assertEqual(code_of(raw(0x10 | kind, 0, 0, *route)), E.BAD_CONTROL, (kind, route))
        # ERROR and DATA carry a route
        self.assertIsNone(code_of(raw(0x16, 0, 10, 1, 2, 3)))
        self.assertIsNone(code_of(raw(0x10, 0, 10, 1, 2, 3)))


class OrderTests(unittest.TestCase):
    """hdr.order: the first failing check in §4.9 order is reported."""

    def test_pairwise_order(self):
        # a header violating every check at once; fix them from first to last
        bad = dict(version=2, kind=9, r=0x0C, cod=3)
        self.assertEqual(code_of(raw((2 << 4) | 9, 0x0C | 0x30 | 0x40 | 0x80, 9999, 1, 1, 1, src=1), 1024),
                         E.UNSUPPORTED_VERSION)
        self.assertEqual(code_of(raw(0x19, 0x0C | 0x30 | 0x80, 9999, 1, src=1), 1024), E.UNKNOWN_KIND)
        self.assertEqual(code_of(raw(0x12, 0x0C | 0x30 | 0x80, 9999, 1, src=1), 1024), E.RESERVED_BIT)
        self.assertEqual(code_of(raw(0x12, 0x30 | 0x80, 9999, 1, src=1), 1024), E.BAD_FLAGS)
        self.assertEqual(code_of(raw(0x12, 0x40, 9999, 1), 1024), E.BAD_FLAGS)  # step 5
        self.assertEqual(code_of(raw(0x10, 0x50, 9999, 1), 1024), E.BAD_FLAGS)  # step 6 on DATA
        self.assertEqual(code_of(raw(0x12, 0x80, 9999, 1, src=1), 1024), E.BAD_FLAGS)  # step 7
        self.assertEqual(code_of(raw(0x12, 0x00, 9999, 1), 1024), E.PAYLOAD_TOO_LARGE)  # step 8 before 9
        self.assertEqual(code_of(raw(0x12, 0x00, 16, 1), 1024), E.BAD_CONTROL)
        del bad

    def test_exhaustive_order_against_reference_rules(self):
        """For all byte-0/byte-1 combinations (with a route and an over-long length),
        the reported code is the first violated rule."""
        for b0, b1 in itertools.product(range(256), range(256)):
            version, kind = b0 >> 4, b0 & 0xF
            x, n, cod, r = b1 & 0x80, b1 & 0x40, (b1 >> 4) & 3, b1 & 0x0C
            control, hop = kind != 0, kind in (1, 2, 3, 4, 5)
            rules = [
                (version != 1, E.UNSUPPORTED_VERSION),
                (kind > 6, E.UNKNOWN_KIND),
                (r != 0, E.RESERVED_BIT),
                (cod == 3, E.BAD_FLAGS),
                (control and (cod != 0 or n), E.BAD_FLAGS),
                (n and cod != 0, E.BAD_FLAGS),
                (hop and x, E.BAD_FLAGS),
                (True, E.PAYLOAD_TOO_LARGE),
            ]
            expected = next(c for cond, c in rules if cond)
            buf = raw(b0, b1, 2000, 1, 0, 0, src=5 if x else None)
            self.assertEqual(code_of(buf, 1999), expected, (hex(b0), hex(b1)))


class IncompleteTests(unittest.TestCase):
    """hdr.order / err.incomplete: no error before the complete header is available."""

    def test_invalid_prefixes_are_incomplete(self):
        for full in (raw(0xF9, 0xFF, 0xFFFF, 1, 1, 1, src=1), raw(0x10, 0x0C), raw(0x12, 0x80, 0, 0, 0, 0, src=3)):
            for i in range(len(full)):
                self.assertIsNone(parse_header(full[:i], 1024), i)
            self.assertIsNotNone(code_of(full, 1024))

    def test_x_needs_ten_bytes(self):
        buf = raw(0x10, 0x80, 0, src=0x0102)
        self.assertIsNone(parse_header(buf[:8]))
        self.assertIsNone(parse_header(buf[:9]))
        self.assertEqual(parse_header(buf).src, 0x0102)

    def test_packet_incomplete_payload(self):
        pkt = encode_header(Kind.DATA, 3) + b"abc"
        for i in range(len(pkt)):
            self.assertIsNone(parse_packet(pkt[:i]))
        p, n = parse_packet(pkt + b"rest")
        self.assertEqual((p.payload, n), (b"abc", 11))

    def test_header_error_before_payload(self):
        # a too-long header fails as soon as the header is complete, payload absent
        self.assertEqual(code_of(raw(0x10, 0, 2000), 1024), E.PAYLOAD_TOO_LARGE)
        with self.assertRaises(ConnectionError_):
            parse_packet(raw(0x10, 0, 2000), 1024)


class HeaderDataclassTests(unittest.TestCase):
    def test_encode_matches_decode(self):
        h = Header(kind=Kind.DATA, length=7, dst=3, service=4, channel=5, codec=1, hint=2, src=9)
        self.assertEqual(decode_header_fields(h.encode()), h)


if __name__ == "__main__":
    unittest.main()
