"""Incremental deframing (§2 item 3, §12.2): split at every byte, several packets per
read, identical packets and error however the input is split."""

import random
import unittest

from fleetwire_py.codec import (
    PREFACE, Deframer, HeaderEvent, Kind, PacketEvent, PrefaceEvent, deframe, encode_header,
    make_packet,
)
from fleetwire_py.errors import ConnectionError_, ErrorCode as E

STREAM = b"".join([
    make_packet(Kind.DATA, b"hello", dst=1, service=2, channel=3),
    make_packet(Kind.PING, bytes(16)),
    make_packet(Kind.DATA, b""),
    make_packet(Kind.ERROR, bytes(10), dst=7, src=42),
    make_packet(Kind.DATA, bytes(range(200)), codec=2),
])


def summary(result):
    return ([(p.header, p.payload, p.raw_header) for p in result.packets], result.error, result.incomplete)


class SplitTests(unittest.TestCase):
    def test_one_piece(self):
        r = deframe(STREAM)
        self.assertEqual(len(r.packets), 5)
        self.assertIsNone(r.error)
        self.assertFalse(r.incomplete)
        self.assertEqual(r.packets[3].header.src, 42)
        self.assertEqual(r.packets[3].raw_header, encode_header(Kind.ERROR, 10, 7, src=42))
        self.assertEqual(b"".join(p.encode() for p in r.packets), STREAM)

    def test_split_at_every_byte_pair(self):  # layer.split, err.split-invariant
        whole = summary(deframe(STREAM))
        for i in range(len(STREAM) + 1):
            self.assertEqual(summary(deframe(STREAM, chunks=[i])), whole, i)

    def test_one_byte_at_a_time(self):
        self.assertEqual(summary(deframe(STREAM, chunks=[1] * len(STREAM))), summary(deframe(STREAM)))

    def test_random_splits(self):
        rng = random.Random(7)
        whole = summary(deframe(STREAM))
        for _ in range(300):
            sizes = [rng.randint(0, 12) for _ in range(60)]
            self.assertEqual(summary(deframe(STREAM, chunks=sizes)), whole)

    def test_every_prefix_is_incomplete_not_error(self):  # err.incomplete
        boundaries = {0}
        pos = 0
        for p in deframe(STREAM).packets:
            pos += len(p.encode())
            boundaries.add(pos)
        for i in range(len(STREAM)):
            r = deframe(STREAM[:i])
            self.assertIsNone(r.error, i)
            self.assertEqual(r.incomplete, i not in boundaries, i)

    def test_error_at_same_packet_for_every_split(self):
        bad = STREAM + encode_header(Kind.DATA, 0, reserved=1) + make_packet(Kind.DATA, b"after")
        for i in range(len(bad) + 1):
            r = deframe(bad, chunks=[i])
            self.assertEqual(r.error, E.RESERVED_BIT, i)
            self.assertEqual(len(r.packets), 5, i)

    def test_error_reported_once_header_complete_without_payload(self):
        bad = STREAM + encode_header(Kind.DATA, 70000 & 0xFFFF, src=1)  # length 4464 > 1024
        r = deframe(bad, max_payload=1024)
        self.assertEqual((r.error, len(r.packets)), (E.PAYLOAD_TOO_LARGE, 5))
        r = deframe(bad[:-1], max_payload=1024)  # 9 of 10 header bytes: incomplete
        self.assertEqual((r.error, r.incomplete), (None, True))

    def test_sticky_error(self):
        d = Deframer()
        d.feed(encode_header(Kind.DATA, 0, version=2) + make_packet(Kind.DATA, b"x"))
        for _ in range(3):
            with self.assertRaises(ConnectionError_) as cm:
                d.next_event()
            self.assertEqual(cm.exception.code, E.UNSUPPORTED_VERSION)

    def test_header_event_precedes_payload(self):
        d = Deframer()
        pkt = make_packet(Kind.DATA, b"abcdef")
        d.feed(pkt[:8])
        ev = d.next_event()
        self.assertIsInstance(ev, HeaderEvent)
        self.assertIsNone(d.next_event())
        self.assertTrue(d.in_packet)
        self.assertFalse(d.in_header)
        d.feed(pkt[8:])
        ev = d.next_event()
        self.assertIsInstance(ev, PacketEvent)
        self.assertEqual(ev.packet.payload, b"abcdef")
        self.assertFalse(d.in_packet)

    def test_buffer_holds_only_current_packet(self):  # limit.buffer
        d = Deframer()
        d.feed(STREAM)
        d.packets()
        self.assertEqual(d.buffered, 0)


class PrefaceTests(unittest.TestCase):
    def test_preface_split_everywhere(self):  # preface.check
        data = PREFACE + STREAM
        for i in range(len(data) + 1):
            r = deframe(data, expect_preface=True, chunks=[i])
            self.assertEqual((len(r.packets), r.error), (5, None), i)

    def test_bad_preface_each_byte(self):
        for pos in range(8):
            bad = bytearray(PREFACE)
            bad[pos] ^= 0x01
            for i in range(8):
                r = deframe(bytes(bad[:i]), expect_preface=True)
                self.assertEqual((r.error, r.incomplete), (None, True), (pos, i))
            self.assertEqual(deframe(bytes(bad), expect_preface=True).error, E.BAD_PREFACE)

    def test_tls_record_instead_of_preface(self):
        self.assertEqual(deframe(b"\x16\x03\x01\x00\xa5\x01\x00\x00", expect_preface=True).error, E.BAD_PREFACE)

    def test_preface_event(self):
        d = Deframer(expect_preface=True)
        d.feed(PREFACE)
        self.assertIsInstance(d.next_event(), PrefaceEvent)
        self.assertIsNone(d.next_event())


if __name__ == "__main__":
    unittest.main()
