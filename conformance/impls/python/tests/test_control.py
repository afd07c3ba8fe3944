"""Control payloads of §5: layouts, every rule at and beyond its limit, byte-exact
round trips including reserved/ignored fields."""

import struct
import unittest

from fleetwire_py.codec import (
    Credit, ErrorPayload, Goaway, Hello, Kind, Ping, Pong, decode_control, encode_header,
)
from fleetwire_py.errors import ConnectionError_, ErrorCode as E


def code_of(fn, *a):
    try:
        fn(*a)
    except ConnectionError_ as e:
        return e.code
    return None


def hello(**kw):
    return Hello(**kw).encode()


class HelloTests(unittest.TestCase):
    def test_layout(self):
        h = Hello(min_version=1, max_version=3, role=3, hello_flags=0, node_id=0x0102, peer_id=0x0304,
                  codecs=3, max_ratio=0x20, max_payload=0x0400, max_decompressed=0x00010000,
                  initial_credit_packets=5, initial_credit_bytes=0x0400, idle_timeout_ms=1000)
        self.assertEqual(h.encode(), bytes([1, 3, 3, 0, 1, 2, 3, 4, 3, 0x20, 4, 0, 0, 1, 0, 0,
                                            0, 0, 0, 5, 0, 0, 4, 0, 0, 0, 3, 0xE8]))
        self.assertEqual(Hello.decode(h.encode()), h)

    def test_default_valid(self):
        Hello.decode(hello())

    def test_length_limits(self):  # hello.length
        base = hello()
        self.assertEqual(code_of(Hello.decode, base[:27]), E.BAD_HELLO)
        self.assertIsNone(code_of(Hello.decode, base))
        self.assertIsNone(code_of(Hello.decode, base + bytes(1024 - 28)))
        self.assertEqual(code_of(Hello.decode, base + bytes(1025 - 28)), E.BAD_HELLO)
        self.assertEqual(code_of(Hello.decode, b""), E.BAD_HELLO)

    def test_reserved_fields_ignored_and_preserved(self):  # hello.reserved
        payload = bytearray(hello(codecs=0xFF, hello_flags=0xA5)) + b"\x01\x02ext"
        h = Hello.decode(bytes(payload))
        self.assertEqual((h.hello_flags, h.codecs, h.extensions), (0xA5, 0xFF, b"\x01\x02ext"))
        self.assertEqual(h.encode(), bytes(payload))

    def assertField(self, ok, bad):
        for kw in ok:
            self.assertIsNone(code_of(Hello.decode, hello(**kw)), kw)
        for kw in bad:
            self.assertEqual(code_of(Hello.decode, hello(**kw)), E.BAD_HELLO, kw)

    def test_versions(self):
        self.assertField([dict(min_version=1, max_version=1), dict(min_version=1, max_version=255),
                          dict(min_version=2, max_version=2)],
                         [dict(min_version=0, max_version=1), dict(min_version=2, max_version=1)])

    def test_role_and_ids(self):  # hello.client-id, hello.node-id
        self.assertField(
            [dict(role=1, node_id=0), dict(role=2, node_id=1), dict(role=3, node_id=65534),
             dict(role=1, node_id=0, peer_id=77)],
            [dict(role=0), dict(role=4), dict(role=255), dict(role=1, node_id=1), dict(role=2, node_id=0),
             dict(role=3, node_id=0), dict(role=2, node_id=0xFFFF), dict(role=3, node_id=0xFFFF)])

    def test_ratio(self):
        self.assertField([dict(max_ratio=1), dict(max_ratio=255)], [dict(max_ratio=0)])

    def test_max_payload(self):
        self.assertField([dict(max_payload=1024, initial_credit_bytes=1024), dict(max_payload=65535)],
                         [dict(max_payload=1023, initial_credit_bytes=1024), dict(max_payload=0)])

    def test_max_decompressed(self):
        self.assertField([dict(max_decompressed=1024), dict(max_decompressed=16_777_216)],
                         [dict(max_decompressed=1023), dict(max_decompressed=16_777_217), dict(max_decompressed=0)])

    def test_credit_packets(self):
        self.assertField([dict(initial_credit_packets=1), dict(initial_credit_packets=1_048_576)],
                         [dict(initial_credit_packets=0), dict(initial_credit_packets=1_048_577)])

    def test_credit_bytes(self):
        self.assertField(
            [dict(max_payload=2000, initial_credit_bytes=2000), dict(initial_credit_bytes=2_147_483_647)],
            [dict(max_payload=2000, initial_credit_bytes=1999), dict(initial_credit_bytes=2_147_483_648),
             dict(initial_credit_bytes=0xFFFFFFFF)])

    def test_idle_timeout(self):
        self.assertField([dict(idle_timeout_ms=0), dict(idle_timeout_ms=1000), dict(idle_timeout_ms=0xFFFFFFFF)],
                         [dict(idle_timeout_ms=1), dict(idle_timeout_ms=999)])


class PingPongTests(unittest.TestCase):
    def test_ping(self):
        p = Ping(0x0102030405060708, 0x1112131415161718)
        raw = p.encode()
        self.assertEqual(raw, bytes(range(1, 9)) + bytes(range(0x11, 0x19)))
        self.assertEqual(Ping.decode(raw), p)
        self.assertEqual(code_of(Ping.decode, raw[:15]), E.BAD_CONTROL)
        self.assertEqual(code_of(Ping.decode, raw + b"\0"), E.BAD_CONTROL)

    def test_pong(self):
        p = Pong(1, 2, 0xFFFFFFFF)
        raw = p.encode()
        self.assertEqual(len(raw), 20)
        self.assertEqual(Pong.decode(raw), p)
        self.assertEqual(code_of(Pong.decode, raw[:19]), E.BAD_CONTROL)
        self.assertEqual(code_of(Pong.decode, raw + b"\0"), E.BAD_CONTROL)
        self.assertEqual(code_of(Pong.decode, raw[:16]), E.BAD_CONTROL)


class GoawayTests(unittest.TestCase):
    def test_layout(self):
        g = Goaway(0x000D, 5, "bye")
        self.assertEqual(g.encode(), b"\x00\x0d" + bytes(7) + b"\x05bye")
        self.assertEqual(Goaway.decode(g.encode()), g)

    def test_min_length(self):
        self.assertIsNone(code_of(Goaway.decode, bytes(10)))
        self.assertEqual(code_of(Goaway.decode, bytes(9)), E.BAD_CONTROL)
        self.assertEqual(code_of(Goaway.decode, b""), E.BAD_CONTROL)

    def test_reason_limit(self):  # goaway.reason
        self.assertIsNone(code_of(Goaway.decode, bytes(10) + b"a" * 256))
        self.assertEqual(code_of(Goaway.decode, bytes(10) + b"a" * 257), E.BAD_CONTROL)
        # 256 bytes of multi-byte UTF-8 are fine; the limit counts bytes, not characters
        self.assertEqual(Goaway.decode(bytes(10) + "é".encode() * 128).reason, "é" * 128)
        self.assertEqual(code_of(Goaway.decode, bytes(10) + "é".encode() * 128 + b"a"), E.BAD_CONTROL)

    def test_reason_utf8(self):
        for bad in (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"ab\x80"):
            self.assertEqual(code_of(Goaway.decode, bytes(10) + bad), E.BAD_CONTROL, bad)

    def test_unknown_code_kept(self):  # goaway.unknown-code
        g = Goaway.decode(b"\xbe\xef" + bytes(8))
        self.assertEqual(g.code, 0xBEEF)


class CreditTests(unittest.TestCase):
    def test_layout(self):
        c = Credit(1, 0xFFFFFFFF)
        self.assertEqual(c.encode(), b"\0\0\0\1\xff\xff\xff\xff")
        self.assertEqual(Credit.decode(c.encode()), c)
        self.assertEqual(Credit.decode(Credit(0, 1).encode()), Credit(0, 1))
        self.assertEqual(Credit.decode(Credit(1, 0).encode()), Credit(1, 0))

    def test_rules(self):
        self.assertEqual(code_of(Credit.decode, bytes(8)), E.BAD_CONTROL)  # credit.zero
        self.assertEqual(code_of(Credit.decode, bytes(7) + b"\1"[:0]), E.BAD_CONTROL)
        self.assertEqual(code_of(Credit.decode, b"\0\0\0\1" + bytes(5)), E.BAD_CONTROL)


class ErrorPayloadTests(unittest.TestCase):
    def test_layout_base_header(self):
        hdr = encode_header(Kind.DATA, 3, 1, 2, 3)
        e = ErrorPayload(0x0101, hdr, "no svc")
        raw = e.encode()
        self.assertEqual(raw, b"\x01\x01" + hdr + b"no svc")
        self.assertEqual(ErrorPayload.decode(raw), e)

    def test_layout_ext_header(self):
        hdr = encode_header(Kind.DATA, 3, 1, src=9)
        e = ErrorPayload.decode(b"\x01\x00" + hdr + b"r")
        self.assertEqual((e.header, e.reason, e.embedded.src), (hdr, "r", 9))

    def test_min_lengths(self):  # error.layout
        self.assertIsNone(code_of(ErrorPayload.decode, bytes(10)))
        self.assertEqual(code_of(ErrorPayload.decode, bytes(9)), E.BAD_CONTROL)
        ext = b"\x01\x00" + encode_header(Kind.DATA, 0, src=1)
        self.assertIsNone(code_of(ErrorPayload.decode, ext))
        self.assertEqual(code_of(ErrorPayload.decode, ext[:11]), E.BAD_CONTROL)
        self.assertEqual(code_of(ErrorPayload.decode, ext[:10]), E.BAD_CONTROL)

    def test_embedded_header_not_validated(self):
        junk = bytes([0xFF, 0x7F]) + bytes(6)  # version 15, kind 15, every bit but X
        self.assertEqual(ErrorPayload.decode(b"\x00\x07" + junk).header, junk)

    def test_reason(self):
        base = b"\x01\x03" + bytes(8)
        self.assertIsNone(code_of(ErrorPayload.decode, base + b"z" * 256))
        self.assertEqual(code_of(ErrorPayload.decode, base + b"z" * 257), E.BAD_CONTROL)
        self.assertEqual(code_of(ErrorPayload.decode, base + b"\xfe"), E.BAD_CONTROL)


class DispatchTests(unittest.TestCase):
    def test_decode_control(self):
        self.assertIsInstance(decode_control(Kind.HELLO, hello()), Hello)
        self.assertIsInstance(decode_control(Kind.PING, bytes(16)), Ping)
        self.assertIsInstance(decode_control(Kind.PONG, bytes(20)), Pong)
        self.assertIsInstance(decode_control(Kind.GOAWAY, bytes(10)), Goaway)
        self.assertIsInstance(decode_control(Kind.CREDIT, struct.pack(">II", 1, 1)), Credit)
        self.assertIsInstance(decode_control(Kind.ERROR, bytes(10)), ErrorPayload)
        with self.assertRaises(ValueError):
            decode_control(Kind.DATA, b"")


if __name__ == "__main__":
    unittest.main()
