"""The sans-IO endpoint state machine: §3, §6, §7.2, §7.4, §8, §9.3 delivery, §11, §12."""

import unittest
import zlib

from fleetwire_py.codec import (
    PREFACE, Credit, ErrorPayload, Goaway, Hello, Kind, Ping, Pong, ROLE_CLIENT, ROLE_NODE,
    ROLE_PROXY, encode_header, make_packet,
)
from fleetwire_py.connection import (
    DEFAULT_ERROR_RATE_LIMIT, DEFAULT_PING_RATE_LIMIT, Config, Connection, CreditReceived, DataDiscardedAfterGoaway, DataReceived, ErrorReceived,
    GoawayReceived, HandshakeComplete, PacketDiscarded, PingReceived, PongReceived, State,
)
from fleetwire_py.errors import ErrorCode as E, UsageError

from .helpers import established, goaway_of, handshake_bytes, hello_bytes, out_packets


def data(payload=b"x", **kw):
    return make_packet(Kind.DATA, payload, **kw)


def ping(i=1, ts=2):
    return make_packet(Kind.PING, Ping(i, ts).encode())


def assert_closed(tc, conn, code):
    tc.assertEqual(conn.state, State.CLOSED)
    tc.assertEqual(conn.close_code, code)
    g = goaway_of(out_packets(conn))
    tc.assertIsNotNone(g, "a GOAWAY is sent on a connection error")
    tc.assertEqual(g.code, code)


class PrefaceAndHelloTests(unittest.TestCase):
    def test_preface_and_hello_sent_immediately(self):  # preface.send, hdr.version-send
        conn = Connection(Config(node_id=7, max_payload=2000, initial_credit_bytes=5000, require_peer_auth=False), 0)
        out = conn.data_to_send()
        self.assertEqual(out[:8], PREFACE)
        pkts = out_packets_from(out[8:])
        self.assertEqual(len(pkts), 1)
        h = pkts[0].header
        self.assertEqual((h.kind, h.version, h.dst, h.service, h.channel, h.x), (Kind.HELLO, 1, 0, 0, 0, False))
        hello = Hello.decode(pkts[0].payload)
        self.assertEqual((hello.node_id, hello.max_payload, hello.initial_credit_bytes), (7, 2000, 5000))
        self.assertEqual(hello.hello_flags, 0)

    def test_handshake(self):
        conn = Connection(Config(require_peer_auth=False), 0)
        ev = conn.receive_data(handshake_bytes(node_id=9, codecs=0x02), 5)
        self.assertIsInstance(ev[0], HandshakeComplete)
        self.assertEqual(conn.state, State.ESTABLISHED)
        self.assertEqual(conn.version, 1)
        self.assertEqual(conn.peer_hello.node_id, 9)

    def test_handshake_split_at_every_byte(self):  # layer.split
        stream = handshake_bytes(node_id=9) + data(b"hello") + ping(5, 6)
        for i in range(len(stream) + 1):
            conn = Connection(Config(require_peer_auth=False), 0)
            conn.data_to_send()
            events = conn.receive_data(stream[:i], 1) + conn.receive_data(stream[i:], 1)
            kinds = [type(e).__name__ for e in events]
            self.assertEqual(kinds, ["HandshakeComplete", "DataReceived", "PingReceived"], i)

    def test_states_progress(self):
        conn = Connection(Config(require_peer_auth=False), 0)
        self.assertEqual(conn.state, State.AWAIT_PREFACE)
        conn.receive_data(PREFACE[:7], 0)
        self.assertEqual(conn.state, State.AWAIT_PREFACE)
        conn.receive_data(PREFACE[7:], 0)
        self.assertEqual(conn.state, State.AWAIT_HELLO)
        conn.receive_data(hello_bytes(node_id=3), 0)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_bad_preface(self):  # preface.check
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.data_to_send()
        conn.receive_data(b"\x16\x03\x01\x02\x00\x01\x00\x01", 0)
        assert_closed(self, conn, E.BAD_PREFACE)

    def test_bad_preface_needs_eight_bytes(self):
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(b"GET / HT", 0)[:0]
        self.assertEqual(conn.close_code, E.BAD_PREFACE)
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(b"GET / H", 0)
        self.assertEqual(conn.state, State.AWAIT_PREFACE)

    def test_packet_before_hello(self):  # state.permitted
        for kind_pkt in (data(), ping(), make_packet(Kind.CREDIT, Credit(1, 1).encode()),
                         make_packet(Kind.ERROR, bytes(10)), make_packet(Kind.PONG, bytes(20))):
            conn = Connection(Config(require_peer_auth=False), 0)
            conn.data_to_send()
            conn.receive_data(PREFACE + kind_pkt, 0)
            assert_closed(self, conn, E.UNEXPECTED_PACKET)

    def test_unexpected_is_reported_before_payload(self):  # state.order
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.data_to_send()
        conn.receive_data(PREFACE + encode_header(Kind.DATA, 500), 0)  # no payload yet
        assert_closed(self, conn, E.UNEXPECTED_PACKET)

    def test_header_checks_precede_state_checks(self):
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.data_to_send()
        conn.receive_data(PREFACE + encode_header(Kind.DATA, 0, reserved=1), 0)
        assert_closed(self, conn, E.RESERVED_BIT)

    def test_second_hello(self):
        conn = established()
        conn.receive_data(hello_bytes(node_id=2), 1)
        assert_closed(self, conn, E.UNEXPECTED_PACKET)

    def test_hello_header_version(self):  # hdr.version
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.data_to_send()
        conn.receive_data(PREFACE + make_packet(Kind.HELLO, Hello(node_id=2).encode(), version=2), 0)
        assert_closed(self, conn, E.UNSUPPORTED_VERSION)

    def test_version_negotiation(self):  # neg.version
        for lo, hi, code in ((1, 1, None), (1, 9, None), (2, 9, E.UNSUPPORTED_VERSION),
                             (0, 1, E.BAD_HELLO), (3, 2, E.BAD_HELLO)):
            conn = Connection(Config(require_peer_auth=False), 0)
            conn.data_to_send()
            conn.receive_data(handshake_bytes(node_id=2, min_version=lo, max_version=hi), 0)
            if code is None:
                self.assertEqual((conn.state, conn.version), (State.ESTABLISHED, 1))
            else:
                assert_closed(self, conn, code)

    def test_hello_order(self):  # hello.order
        # field rules (BAD_HELLO) before version overlap (UNSUPPORTED_VERSION)
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(handshake_bytes(node_id=2, min_version=2, max_version=2, max_ratio=0), 0)
        self.assertEqual(conn.close_code, E.BAD_HELLO)
        # length before fields: a 27-byte HELLO whose fields are also invalid
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(PREFACE + make_packet(Kind.HELLO, Hello(node_id=0, min_version=2, max_version=2,
                                                                  max_ratio=0).encode()[:27]), 0)
        self.assertEqual(conn.close_code, E.BAD_HELLO)
        # version overlap before authentication
        conn = Connection(Config(require_peer_auth=True), 0)
        conn.receive_data(handshake_bytes(node_id=2, min_version=2, max_version=3), 0)
        self.assertEqual(conn.close_code, E.UNSUPPORTED_VERSION)
        conn = Connection(Config(peer_identity=(ROLE_NODE, 9)), 0)
        conn.receive_data(handshake_bytes(node_id=2, min_version=2, max_version=2), 0)
        self.assertEqual(conn.close_code, E.UNSUPPORTED_VERSION)
        # every field rule precedes authentication
        conn = Connection(Config(require_peer_auth=True), 0)
        conn.receive_data(handshake_bytes(node_id=2, idle_timeout_ms=999), 0)
        self.assertEqual(conn.close_code, E.BAD_HELLO)

    def test_peer_id_any_value(self):  # §5.2 table: peer_id "any value accepted"
        for pid in (0, 1, 0xFFFE, 0xFFFF):
            conn = Connection(Config(require_peer_auth=False), 0)
            conn.receive_data(handshake_bytes(node_id=2, peer_id=pid), 0)
            self.assertEqual(conn.state, State.ESTABLISHED, pid)

    def test_bad_hello_fields(self):  # hello.fields
        for kw in (dict(max_payload=1023, initial_credit_bytes=4096), dict(role=0), dict(node_id=0),
                   dict(role=ROLE_CLIENT, node_id=4), dict(max_decompressed=1023), dict(idle_timeout_ms=999),
                   dict(initial_credit_packets=0), dict(initial_credit_bytes=1000, max_payload=1024)):
            conn = Connection(Config(require_peer_auth=False), 0)
            conn.data_to_send()
            kw.setdefault("node_id", 2)
            conn.receive_data(handshake_bytes(**kw), 0)
            assert_closed(self, conn, E.BAD_HELLO)

    def test_hello_length_limits(self):
        for extra, code in ((1024 - 28, None), (1025 - 28, E.BAD_HELLO)):
            conn = Connection(Config(require_peer_auth=False), 0)
            conn.data_to_send()
            conn.receive_data(PREFACE + make_packet(Kind.HELLO, Hello(node_id=2).encode() + bytes(extra)), 0)
            if code is None:
                self.assertEqual(conn.state, State.ESTABLISHED)
            else:
                assert_closed(self, conn, code)
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(PREFACE + make_packet(Kind.HELLO, Hello(node_id=2).encode()[:27]), 0)
        self.assertEqual(conn.close_code, E.BAD_HELLO)

    def test_hello_reserved_ignored(self):  # hello.reserved
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(handshake_bytes(node_id=2, hello_flags=0xFF, codecs=0xFC, extensions=b"future"), 0)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_auth_required(self):  # src.auth, tls.node-binding
        node5, proxy5 = (ROLE_NODE, 5), (ROLE_PROXY, 5)
        cases = [
            (dict(require_peer_auth=True), dict(role=ROLE_NODE, node_id=5), E.BAD_HELLO),
            (dict(require_peer_auth=True), dict(role=ROLE_PROXY, node_id=5), E.BAD_HELLO),
            (dict(require_peer_auth=True), dict(role=ROLE_CLIENT, node_id=0), None),
            (dict(require_peer_auth=True, peer_identity=node5), dict(role=ROLE_NODE, node_id=5), None),
            (dict(require_peer_auth=True, peer_identity=(ROLE_NODE, 6)),
             dict(role=ROLE_NODE, node_id=5), E.BAD_HELLO),
            (dict(peer_identity=(ROLE_NODE, 6)), dict(role=ROLE_NODE, node_id=5), E.BAD_HELLO),
            (dict(peer_identity=(ROLE_PROXY, 6)), dict(role=ROLE_PROXY, node_id=5), E.BAD_HELLO),
            # §10.2 binds the id; §7.4 src.auth: role proxy needs a proxy identity, and a
            # proxy identity also matches role node
            (dict(require_peer_auth=True, peer_identity=proxy5), dict(role=ROLE_PROXY, node_id=5), None),
            (dict(require_peer_auth=True, peer_identity=proxy5), dict(role=ROLE_NODE, node_id=5), None),
            (dict(require_peer_auth=True, peer_identity=node5), dict(role=ROLE_PROXY, node_id=5), E.BAD_HELLO),
            # configured not to require authentication, a proxy with a node identity is
            # accepted, merely not authenticated as a proxy (vector
            # connection.source.proxy-role-node-identity)
            (dict(require_peer_auth=False, peer_identity=node5), dict(role=ROLE_PROXY, node_id=5), None),
            (dict(require_peer_auth=False, peer_identity=proxy5), dict(role=ROLE_NODE, node_id=5), None),
            # spec 1.1 src.auth: a node requires it by default; configured trust satisfies it
            (dict(), dict(role=ROLE_NODE, node_id=5), E.BAD_HELLO),
            (dict(), dict(role=ROLE_PROXY, node_id=5), E.BAD_HELLO),
            (dict(peer_identity=node5), dict(role=ROLE_PROXY, node_id=5), E.BAD_HELLO),
            (dict(peer_identity=proxy5), dict(role=ROLE_NODE, node_id=5), None),
            (dict(trust_proxy_source=True), dict(role=ROLE_NODE, node_id=5), None),
            (dict(trust_proxy_source=True), dict(role=ROLE_PROXY, node_id=5), None),
            # a client accepts the server it connected to
            (dict(role=ROLE_CLIENT, node_id=0), dict(role=ROLE_PROXY, node_id=5), None),
        ]
        for cfg, hello, code in cases:
            conn = Connection(Config(**cfg), 0)
            conn.data_to_send()
            conn.receive_data(handshake_bytes(**hello), 0)
            if code is None:
                self.assertEqual(conn.state, State.ESTABLISHED, (cfg, hello))
            else:
                assert_closed(self, conn, code)

    def test_own_max_payload_applies_to_hello(self):  # hdr.length-max
        conn = Connection(Config(max_payload=1024, initial_credit_bytes=1024, require_peer_auth=False), 0)
        conn.data_to_send()
        conn.receive_data(PREFACE + encode_header(Kind.HELLO, 1025), 0)
        assert_closed(self, conn, E.PAYLOAD_TOO_LARGE)


def out_packets_from(raw):
    from fleetwire_py.codec import deframe
    r = deframe(raw)
    assert r.error is None and not r.incomplete
    return r.packets


class LengthTests(unittest.TestCase):
    def test_data_at_and_over_max_payload(self):
        cfg = dict(max_payload=1024, initial_credit_bytes=100_000)
        conn = established(Config(**cfg))
        ev = conn.receive_data(data(bytes(1024)), 1)
        self.assertEqual(len(ev[0].payload), 1024)
        conn.receive_data(encode_header(Kind.DATA, 1025), 1)
        assert_closed(self, conn, E.PAYLOAD_TOO_LARGE)


class SourceTests(unittest.TestCase):  # §7.4
    def test_x_from_node_is_forged(self):  # src.forbid
        conn = established(role=ROLE_NODE, node_id=4)
        conn.receive_data(data(src=9), 1)
        assert_closed(self, conn, E.SOURCE_FORGED)

    def test_x_from_client_is_forged(self):
        conn = established(role=ROLE_CLIENT, node_id=0)
        conn.receive_data(make_packet(Kind.ERROR, bytes(10), src=9), 1)
        assert_closed(self, conn, E.SOURCE_FORGED)

    def test_x_from_untrusted_proxy(self):  # src.trust
        conn = established(role=ROLE_PROXY, node_id=4)
        conn.receive_data(encode_header(Kind.DATA, 10, src=9), 1)  # before the payload
        assert_closed(self, conn, E.SOURCE_FORGED)

    def test_trusted_proxy(self):
        conn = established(Config(trust_proxy_source=True), role=ROLE_PROXY, node_id=4)
        ev = conn.receive_data(data(b"a", src=9) + data(b"b"), 1)
        self.assertEqual([e.source for e in ev], [9, 4])

    def test_node_source(self):
        conn = established(role=ROLE_NODE, node_id=4)
        self.assertEqual(conn.receive_data(data(), 1)[0].source, 4)

    def test_client_source_is_attributed_id(self):
        conn = established(Config(peer_id=321), role=ROLE_CLIENT, node_id=0)
        self.assertEqual(conn.receive_data(data(), 1)[0].source, 321)
        conn = established(Config(peer_id=0), role=ROLE_CLIENT, node_id=0)
        self.assertEqual(conn.receive_data(data(), 1)[0].source, 0)

    def test_source_check_before_flow_control(self):  # state.order 2 before 3
        conn = established(Config(initial_credit_packets=1, auto_credit=False))
        conn.receive_data(data(), 1)
        conn.receive_data(encode_header(Kind.DATA, 0, src=3), 1)
        self.assertEqual(conn.close_code, E.SOURCE_FORGED)


    def test_no_credit_back_for_a_packet_still_arriving(self):  # flow.grant
        # found by the stateful differential fuzzer: the header took the credit, and
        # taking the events granted it back before the payload had arrived
        conn = established(Config(initial_credit_packets=1, auto_credit=False))
        whole = data(b"x" * 40)
        conn.receive_data(whole[:12], 1)  # the header and 4 payload bytes
        conn.grant_consumed()
        self.assertEqual(out_packets(conn), [])
        self.assertEqual(len(conn.receive_data(whole[12:], 2)), 1)
        conn.grant_consumed()
        (credit,) = out_packets(conn)
        self.assertEqual(credit.header.kind, Kind.CREDIT)
        self.assertEqual(Credit.decode(credit.payload), Credit(1, 40))


class RoutingTests(unittest.TestCase):  # §7.2, §7.3
    def test_local_destinations(self):
        conn = established(Config(node_id=7))
        self.assertEqual(len(conn.receive_data(data(dst=0) + data(dst=7), 1)), 2)

    def test_no_route(self):  # route.no-route
        for dst in (8, 0xFFFF):
            conn = established(Config(node_id=7), node_id=4)
            ev = conn.receive_data(data(b"abc", dst=dst, service=3, channel=4), 1)
            self.assertEqual(ev, [PacketDiscarded(E.NO_ROUTE, ev[0].header, True)])
            (err,) = out_packets(conn)
            self.assertEqual((err.header.kind, err.header.dst, err.header.service, err.header.channel),
                             (Kind.ERROR, 4, 0, 0))  # error.route
            e = ErrorPayload.decode(err.payload)
            self.assertEqual((e.code, e.header), (E.NO_ROUTE, encode_header(Kind.DATA, 3, dst, 3, 4)))
            self.assertEqual(conn.state, State.ESTABLISHED)  # comp.packet-error: continues

    def test_no_service(self):  # route.no-service
        conn = established(Config(services=frozenset({1, 2})))
        ev = conn.receive_data(data(service=1) + data(service=3) + data(service=2), 1)
        self.assertEqual([type(e).__name__ for e in ev], ["DataReceived", "PacketDiscarded", "DataReceived"])
        self.assertEqual(ev[1].code, E.NO_SERVICE)

    def test_error_embeds_extension_header(self):
        conn = established(Config(trust_proxy_source=True, services=frozenset()), role=ROLE_PROXY, node_id=4)
        conn.receive_data(data(b"q", dst=0, service=9, src=77, hint=2), 1)
        (err,) = out_packets(conn)
        self.assertEqual(err.header.dst, 77)  # to the source of the discarded packet
        self.assertEqual(ErrorPayload.decode(err.payload).header, encode_header(Kind.DATA, 1, 0, 9, src=77, hint=2))

    def test_client_uses_attributed_id(self):
        conn = established(Config(role=ROLE_CLIENT, node_id=0), node_id=3, peer_id=55)
        self.assertIsInstance(conn.receive_data(data(dst=55), 1)[0], DataReceived)
        self.assertIsInstance(conn.receive_data(data(dst=56), 1)[0], PacketDiscarded)


class ErrorPacketTests(unittest.TestCase):  # §5.7
    def test_error_delivered(self):
        conn = established(node_id=4)
        payload = ErrorPayload(E.NO_SERVICE, encode_header(Kind.DATA, 1, 4, 2), "why").encode()
        ev = conn.receive_data(make_packet(Kind.ERROR, payload), 1)
        self.assertEqual(ev, [ErrorReceived(4, ErrorPayload(E.NO_SERVICE, encode_header(Kind.DATA, 1, 4, 2), "why"))])

    def test_unknown_code_reported(self):
        conn = established()
        ev = conn.receive_data(make_packet(Kind.ERROR, b"\x7f\xff" + bytes(8)), 1)
        self.assertEqual(ev[0].error.code, 0x7FFF)

    def test_undeliverable_error_silently_discarded(self):  # error.no-loop
        conn = established(Config(node_id=7))
        ev = conn.receive_data(make_packet(Kind.ERROR, bytes(10), dst=9), 1)
        self.assertEqual(ev[0].code, E.NO_ROUTE)
        self.assertFalse(ev[0].reported)
        self.assertEqual(out_packets(conn), [])

    def test_error_rate_at_limit_accepted_and_one_more_is_flood(self):  # error.rate
        err = make_packet(Kind.ERROR, ErrorPayload(E.NO_SERVICE, encode_header(Kind.DATA, 1, 4, 2)).encode())
        conn = established(Config(error_rate_limit=40), role=ROLE_CLIENT, node_id=0)
        ev = conn.receive_data(err * 40, 10)
        self.assertEqual(len([e for e in ev if isinstance(e, ErrorReceived)]), 40)
        conn.receive_data(err * 40, 1010)  # a new window
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(err, 2009)  # the 41st of this window
        assert_closed(self, conn, E.FLOOD)

    def test_error_rate_counts_silently_discarded_errors(self):  # error.rate
        conn = established(Config(node_id=7, error_rate_limit=5, max_packet_errors=100),
                           role=ROLE_CLIENT, node_id=0)
        conn.receive_data(make_packet(Kind.ERROR, bytes(10), dst=9) * 5, 1)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(make_packet(Kind.ERROR, bytes(10), dst=9), 2)
        assert_closed(self, conn, E.FLOOD)

    def test_error_rate_not_limited_from_a_node(self):  # error.rate: a node relays reports
        err = make_packet(Kind.ERROR, ErrorPayload(E.NO_SERVICE, encode_header(Kind.DATA, 1, 4, 2)).encode())
        conn = established(Config(error_rate_limit=5), role=ROLE_NODE, node_id=2)
        ev = conn.receive_data(err * 50, 10)
        self.assertEqual(len([e for e in ev if isinstance(e, ErrorReceived)]), 50)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_error_rate_limited_by_default(self):  # error.rate
        self.assertEqual(Config().error_rate_limit, DEFAULT_ERROR_RATE_LIMIT)

    def test_error_no_credit(self):
        conn = established(Config(initial_credit_packets=1, auto_credit=False))
        conn.receive_data(make_packet(Kind.ERROR, bytes(10)) * 5 + data(), 1)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_malformed_error(self):  # error.layout
        for payload in (bytes(9), b"\0\0" + encode_header(Kind.DATA, 0, src=1)[:9], bytes(10) + b"\xff"):
            conn = established()
            conn.receive_data(make_packet(Kind.ERROR, payload), 1)
            assert_closed(self, conn, E.BAD_CONTROL)

    def test_error_flags(self):  # hdr.control-flags applies to ERROR
        conn = established()
        conn.receive_data(make_packet(Kind.ERROR, bytes(10), never_compress=True), 1)
        assert_closed(self, conn, E.BAD_FLAGS)


class FlowControlTests(unittest.TestCase):  # §8
    def test_packet_credit_exact(self):  # flow.exceed
        conn = established(Config(initial_credit_packets=3, auto_credit=False))
        ev = conn.receive_data(data() * 3, 1)
        self.assertEqual(len(ev), 3)
        conn.receive_data(encode_header(Kind.DATA, 1), 1)  # header alone triggers it
        assert_closed(self, conn, E.FLOW_CONTROL)

    def test_byte_credit_exact(self):
        cfg = Config(max_payload=1024, initial_credit_bytes=2048, auto_credit=False)
        conn = established(cfg)
        conn.receive_data(data(bytes(1024)) + data(bytes(1000)), 1)
        self.assertEqual(conn.recv_credit_bytes, 24)
        conn.receive_data(data(bytes(24)), 1)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(data(b""), 1)  # zero bytes still need one packet credit only
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(encode_header(Kind.DATA, 1), 1)
        assert_closed(self, conn, E.FLOW_CONTROL)

    def test_credit_restores(self):
        conn = established(Config(initial_credit_packets=2, auto_credit=False))
        conn.receive_data(data() * 2, 1)
        conn.send_credit(1, 1)
        self.assertEqual(out_packets(conn)[0].header.kind, Kind.CREDIT)
        conn.receive_data(data(), 1)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_auto_credit(self):  # flow.grant
        conn = established(Config(initial_credit_packets=4))
        for _ in range(20):
            conn.receive_data(data(), 1)
        self.assertEqual(conn.state, State.ESTABLISHED)
        credits = [Credit.decode(p.payload) for p in out_packets(conn) if p.header.kind == Kind.CREDIT]
        self.assertEqual(sum(c.packets for c in credits) + conn.recv_credit_packets, 24)

    def test_send_side_credit(self):  # flow.send
        conn = established(initial_credit_packets=1, initial_credit_bytes=1024, max_payload=1024)
        with self.assertRaises(UsageError):
            conn.send_data(bytes(1025))  # hdr.length-send
        conn.send_data(bytes(1024))
        with self.assertRaises(UsageError):
            conn.send_data(b"")
        ev = conn.receive_data(make_packet(Kind.CREDIT, Credit(1, 0).encode()), 1)
        self.assertEqual(ev, [CreditReceived(Credit(1, 0))])
        conn.send_data(b"")
        with self.assertRaises(UsageError):
            conn.send_data(b"")

    def test_credit_overflow(self):  # flow.overflow
        conn = established(initial_credit_packets=10, initial_credit_bytes=4096, max_payload=1024)
        conn.receive_data(make_packet(Kind.CREDIT, Credit(0xFFFFFFFF - 10, 0xFFFFFFFF - 4096).encode()), 1)
        self.assertEqual((conn.send_credit_packets, conn.send_credit_bytes), (0xFFFFFFFF, 0xFFFFFFFF))
        conn.receive_data(make_packet(Kind.CREDIT, Credit(1, 0).encode()), 1)
        assert_closed(self, conn, E.FLOW_CONTROL)
        conn = established(initial_credit_packets=10, initial_credit_bytes=4096, max_payload=1024)
        conn.receive_data(make_packet(Kind.CREDIT, Credit(0, 0xFFFFFFFF - 4095).encode()), 1)
        assert_closed(self, conn, E.FLOW_CONTROL)

    def test_credit_zero_and_length(self):  # credit.zero, ctl.malformed
        for payload in (bytes(8), bytes(7), bytes(9)):
            conn = established()
            conn.receive_data(make_packet(Kind.CREDIT, payload), 1)
            assert_closed(self, conn, E.BAD_CONTROL)

    def test_local_credit_bounded(self):
        conn = established(Config(initial_credit_packets=10))
        with self.assertRaises(UsageError):
            conn.send_credit(0xFFFFFFFF - 9, 0)
        conn.send_credit(0xFFFFFFFF - 10, 0)


class PingTests(unittest.TestCase):  # §5.3, §5.4
    def test_pong_echoes(self):  # ping.answer
        conn = established()
        ev = conn.receive_data(ping(0x0102030405060708, 0xFFFFFFFFFFFFFFFF), 1)
        self.assertEqual(ev, [PingReceived(Ping(0x0102030405060708, 0xFFFFFFFFFFFFFFFF))])
        (p,) = out_packets(conn)
        self.assertEqual(p.header.kind, Kind.PONG)
        pong = Pong.decode(p.payload)
        self.assertEqual((pong.id, pong.timestamp), (0x0102030405060708, 0xFFFFFFFFFFFFFFFF))

    def test_fifo_and_order(self):  # ping.fifo, ping.order
        conn = established(Config(initial_credit_packets=2))
        conn.receive_data(ping(1) + data() + ping(2) + data() + ping(3), 1)
        kinds = [(p.header.kind, Pong.decode(p.payload).id if p.header.kind == Kind.PONG else None)
                 for p in out_packets(conn)]
        # each PONG precedes whatever was queued after its PING was processed
        self.assertEqual(kinds, [(Kind.PONG, 1), (Kind.CREDIT, None), (Kind.PONG, 2), (Kind.CREDIT, None),
                                 (Kind.PONG, 3)])

    def test_bad_ping_lengths(self):
        for n in (15, 17, 0):
            conn = established()
            conn.receive_data(make_packet(Kind.PING, bytes(n)), 1)
            assert_closed(self, conn, E.BAD_CONTROL)
        for n in (19, 21):
            conn = established()
            conn.receive_data(make_packet(Kind.PONG, bytes(n)), 1)
            assert_closed(self, conn, E.BAD_CONTROL)

    def test_pong_matching(self):  # pong.unknown
        conn = established()
        conn.send_ping(5, 10)
        self.assertEqual(conn.receive_data(make_packet(Kind.PONG, Pong(6, 0, 0).encode()), 20), [])
        ev = conn.receive_data(make_packet(Kind.PONG, Pong(5, 10_000, 2000).encode()), 20)
        self.assertEqual(ev, [PongReceived(Pong(5, 10_000, 2000), 20_000 - 10_000 - 2000)])
        self.assertEqual(conn.receive_data(make_packet(Kind.PONG, Pong(5, 10_000, 0).encode()), 20), [])
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_ping_rate_limit(self):  # limit.ping-rate
        conn = established(Config(ping_rate_limit=3))
        conn.receive_data(ping() * 3, 100)
        conn.receive_data(ping(), 1100)  # new window
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(ping() * 3, 1200)
        assert_closed(self, conn, E.FLOOD)

    def test_ping_rate_at_limit_answered_and_one_more_is_flood(self):  # limit.ping-rate
        conn = established(Config(ping_rate_limit=50))
        out_packets(conn)
        conn.receive_data(ping() * 50, 10)
        pongs = [p for p in out_packets(conn) if p.header.kind == Kind.PONG]
        self.assertEqual(len(pongs), 50)  # every PING within the rate answered
        conn.receive_data(ping() * 50, 1010)  # a new window: 50 more
        self.assertEqual(len([p for p in out_packets(conn) if p.header.kind == Kind.PONG]), 50)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(ping(), 1500)  # the 51st of this window
        assert_closed(self, conn, E.FLOOD)

    def test_ping_rate_limited_by_default(self):  # limit.ping-rate: a configured rate
        self.assertEqual(Config().ping_rate_limit, DEFAULT_PING_RATE_LIMIT)
        conn = established()
        conn.receive_data(ping() * DEFAULT_PING_RATE_LIMIT, 5)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(ping(), 999)
        assert_closed(self, conn, E.FLOOD)

    def test_ping_rate_off(self):
        conn = established(Config(ping_rate_limit=None))
        conn.receive_data(ping() * 1000, 5)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_ping_route_must_be_zero(self):
        conn = established()
        conn.receive_data(make_packet(Kind.PING, bytes(16), channel=1), 1)
        assert_closed(self, conn, E.BAD_CONTROL)


class EmptyRunTests(unittest.TestCase):  # §11 limit.empty-run
    def test_exact_limit(self):
        conn = established(Config(max_empty_run=3))
        conn.receive_data(data(b"") * 3, 1)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(data(b""), 1)
        assert_closed(self, conn, E.FLOOD)

    def test_reset_by_non_empty(self):
        conn = established(Config(max_empty_run=3))
        conn.receive_data((data(b"") * 3 + data(b"x")) * 5, 1)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_control_does_not_reset(self):
        conn = established(Config(max_empty_run=2))
        conn.receive_data(data(b"") + ping() + data(b"") + ping() + data(b""), 1)
        self.assertEqual(conn.close_code, E.FLOOD)

    def test_default_32(self):
        conn = established()
        conn.receive_data(data(b"") * 32, 1)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(data(b""), 1)
        self.assertEqual(conn.close_code, E.FLOOD)


class PacketErrorBudgetTests(unittest.TestCase):  # §12.3
    def test_budget_exact(self):
        conn = established(Config(max_packet_errors=2, services=frozenset()))
        ev = conn.receive_data(data() * 2, 1)
        self.assertEqual([e.code for e in ev], [E.NO_SERVICE] * 2)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(data(), 1)
        assert_closed(self, conn, E.TOO_MANY_ERRORS)

    def test_default_16(self):
        conn = established(Config(services=frozenset()))
        conn.receive_data(data() * 16, 1)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(data(), 1)
        self.assertEqual(conn.close_code, E.TOO_MANY_ERRORS)


class CompressionDeliveryTests(unittest.TestCase):  # §9.3 in the connection
    def test_zlib_delivered(self):
        conn = established()
        raw = bytes(range(256)) * 8
        ev = conn.receive_data(data(zlib.compress(raw), codec=2), 1)
        self.assertEqual(ev[0].payload, raw)

    def test_not_negotiated(self):
        conn = established(Config(codecs=0x01))
        ev = conn.receive_data(data(zlib.compress(b"abc"), codec=2), 1)
        self.assertEqual(ev[0].code, E.CODEC_NOT_NEGOTIATED)

    def test_caps_are_packet_errors(self):
        conn = established(Config(max_decompressed=1024, max_ratio=255))
        bomb = zlib.compress(bytes(100_000))
        ev = conn.receive_data(data(bomb, codec=2) + data(b"ok"), 1)
        self.assertEqual(ev[0].code, E.DECOMPRESSED_TOO_LARGE)
        self.assertEqual(ev[1].payload, b"ok")
        conn = established(Config(max_decompressed=1_000_000, max_ratio=2))
        ev = conn.receive_data(data(bomb, codec=2) + data(zlib.compress(b"x")[:-1], codec=2), 1)
        self.assertEqual([e.code for e in ev], [E.RATIO_EXCEEDED, E.DECOMPRESSION_FAILED])

    def test_route_checked_before_codec(self):
        conn = established(Config(node_id=1, codecs=0))
        ev = conn.receive_data(data(b"junk", dst=9, codec=2), 1)
        self.assertEqual(ev[0].code, E.NO_ROUTE)

    def test_send_compressed_only_if_smaller(self):
        conn = established(codecs=0x02)
        conn.send_data(b"a" * 1000, codec=2)
        conn.send_data(b"xy", codec=2)
        p1, p2 = out_packets(conn)
        self.assertEqual((p1.header.codec, p2.header.codec), (2, 0))
        with self.assertRaises(UsageError):
            conn.send_data(b"a" * 100, codec=1)  # comp.send-negotiated
        with self.assertRaises(UsageError):
            conn.send_data(b"secret", codec=2, never_compress=True)  # comp.never


class GoawayTests(unittest.TestCase):  # §5.5, §6.4
    def test_receive_goaway_is_a_half_close(self):  # close.answer, goaway.delivered
        conn = established()
        conn.receive_data(data() * 3, 1)
        conn.data_to_send()
        ev = conn.receive_data(make_packet(Kind.GOAWAY, Goaway(0, 7, "bye").encode()), 2)
        self.assertEqual(ev[0], GoawayReceived(Goaway(0, 7, "bye"), True))
        self.assertEqual(conn.state, State.DRAINING)
        self.assertEqual(out_packets(conn), [])  # not answered while we may still answer
        conn.send_data(b"answer")  # §6.4: DATA allowed until our own GOAWAY
        ev = conn.close(3)
        self.assertEqual([type(e).__name__ for e in ev], ["ConnectionClosed"])
        self.assertEqual((conn.state, conn.close_code), (State.CLOSED, E.NO_ERROR))
        p1, p2 = out_packets(conn)
        self.assertEqual(p1.header.kind, Kind.DATA)
        g = Goaway.decode(p2.payload)
        self.assertEqual((g.code, g.delivered), (E.NO_ERROR, 3))
        with self.assertRaises(UsageError):
            conn.send_data(b"x")

    def test_drain_timer_answers_an_owed_goaway(self):  # close.answer: no later than the drain timer
        conn = established(Config(drain_timeout_ms=5000, idle_timeout_ms=0))
        conn.receive_data(data() + make_packet(Kind.GOAWAY, Goaway(0, 0).encode()), 100)
        conn.data_to_send()
        conn.tick(5099)
        self.assertEqual((conn.state, out_packets(conn)), (State.DRAINING, []))
        conn.tick(5100)
        self.assertEqual((conn.state, conn.close_code), (State.CLOSED, E.NO_ERROR))
        g = goaway_of(out_packets(conn))
        self.assertEqual((g.code, g.delivered), (E.NO_ERROR, 1))

    def test_error_goaway_not_answered(self):  # close.answer: other codes close at once
        for code in (E.FLOOD, 0xBEEF, 0x0100):  # goaway.unknown-code: reported as is
            conn = established()
            conn.data_to_send()
            ev = conn.receive_data(make_packet(Kind.GOAWAY, Goaway(code, 0).encode()) + ping(), 2)
            self.assertEqual([type(e).__name__ for e in ev], ["GoawayReceived", "ConnectionClosed"])
            self.assertEqual((conn.state, conn.close_code), (State.CLOSED, code))
            self.assertEqual(conn.data_to_send(), b"")  # no answer, PING after it not processed

    def test_goaway_receiver_keeps_processing(self):  # §6.4: until it closes
        conn = established(node_id=4)
        conn.send_ping(1, 1)
        conn.data_to_send()
        err = make_packet(Kind.ERROR, ErrorPayload(E.NO_SERVICE, encode_header(Kind.DATA, 1)).encode())
        ev = conn.receive_data(make_packet(Kind.GOAWAY, Goaway(0, 0).encode()) + ping(5)
                               + make_packet(Kind.PONG, Pong(1, 1000, 0).encode())
                               + make_packet(Kind.CREDIT, Credit(1, 1).encode()) + err, 2)
        self.assertEqual([type(e).__name__ for e in ev],
                         ["GoawayReceived", "PingReceived", "PongReceived", "CreditReceived", "ErrorReceived"])
        self.assertEqual([p.header.kind for p in out_packets(conn)], [Kind.PONG])
        conn.close(3)  # the answer (close.answer)
        self.assertEqual([p.header.kind for p in out_packets(conn)], [Kind.GOAWAY])
        self.assertEqual(conn.close_code, E.NO_ERROR)

    def test_data_after_peer_goaway(self):  # state.permitted
        conn = established()
        conn.data_to_send()
        conn.receive_data(make_packet(Kind.GOAWAY, Goaway(0, 0).encode()) + encode_header(Kind.DATA, 5), 2)
        self.assertEqual(conn.close_code, E.UNEXPECTED_PACKET)  # reported at the header
        codes = [Goaway.decode(p.payload).code for p in out_packets(conn)]
        self.assertEqual(codes, [E.UNEXPECTED_PACKET])  # not answered yet: a half-close
        # the same after our own GOAWAY was answered by the peer
        conn = established()
        conn.close(1)
        conn.data_to_send()
        conn.receive_data(make_packet(Kind.GOAWAY, Goaway(0, 0).encode()) + data(), 2)
        self.assertEqual(conn.close_code, E.UNEXPECTED_PACKET)
        self.assertEqual([Goaway.decode(p.payload).code for p in out_packets(conn)], [E.UNEXPECTED_PACKET])

    def test_goaway_in_await_hello(self):  # §6.1: AWAIT_HELLO may receive GOAWAY
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.data_to_send()
        ev = conn.receive_data(PREFACE + make_packet(Kind.GOAWAY, Goaway(0, 0, "busy").encode()), 1)
        self.assertEqual(ev[0], GoawayReceived(Goaway(0, 0, "busy")))
        self.assertEqual((conn.state, conn.close_code), (State.CLOSED, E.NO_ERROR))
        (p,) = out_packets(conn)  # answered right after our HELLO, version 1 in its header
        self.assertEqual((p.header.kind, p.header.version, Goaway.decode(p.payload).code),
                         (Kind.GOAWAY, 1, E.NO_ERROR))
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.data_to_send()
        conn.receive_data(PREFACE + make_packet(Kind.GOAWAY, Goaway(E.BAD_HELLO, 0).encode()), 1)
        self.assertEqual(conn.close_code, E.BAD_HELLO)
        self.assertEqual(conn.data_to_send(), b"")  # an error GOAWAY is not answered

    def test_error_in_draining_sends_second_goaway(self):  # close.on-error in DRAINING
        conn = established()
        conn.close(1)
        conn.receive_data(make_packet(Kind.CREDIT, bytes(8)) + ping(), 2)
        codes = [Goaway.decode(p.payload).code for p in out_packets(conn) if p.header.kind == Kind.GOAWAY]
        self.assertEqual(codes, [E.NO_ERROR, E.BAD_CONTROL])
        self.assertEqual(conn.close_code, E.BAD_CONTROL)
        conn.close(3)
        self.assertEqual(conn.data_to_send(), b"")

    def test_at_most_one_no_error_goaway(self):
        conn = established()
        conn.close(1)
        conn.close(2)
        self.assertEqual(len(out_packets(conn)), 1)
        conn.tick(3)
        conn.receive_data(make_packet(Kind.GOAWAY, Goaway(0, 0).encode()), 4)  # the peer's answer
        self.assertEqual(out_packets(conn), [])  # not answered: we sent GOAWAY already

    def test_close_with_error_code(self):  # a local error closes at once
        conn = established()
        conn.close(1, E.INTERNAL_ERROR, "oops")
        self.assertEqual((conn.state, conn.close_code), (State.CLOSED, E.INTERNAL_ERROR))
        self.assertEqual(goaway_of(out_packets(conn)).code, E.INTERNAL_ERROR)
        with self.assertRaises(UsageError):  # CONNECTION_LOST is local only, never sent
            established().close(1, E.CONNECTION_LOST)

    def test_bad_goaway(self):  # goaway.reason
        for payload in (bytes(9), bytes(10) + b"r" * 257, bytes(10) + b"\xc3"):
            conn = established()
            conn.receive_data(make_packet(Kind.GOAWAY, payload), 1)
            assert_closed(self, conn, E.BAD_CONTROL)
        conn = established()
        conn.receive_data(make_packet(Kind.GOAWAY, bytes(10) + b"r" * 256), 1)
        self.assertEqual(conn.state, State.DRAINING)  # accepted: a half-close
        conn.close(2)
        self.assertEqual(conn.close_code, 0)

    def test_local_close_drains(self):  # close.no-data-after, close.half
        conn = established(Config(drain_timeout_ms=5000))
        conn.receive_data(data(b"1"), 10)
        conn.close(100)
        g = goaway_of(out_packets(conn))
        self.assertEqual((g.code, g.delivered), (0, 1))
        self.assertEqual(conn.state, State.DRAINING)
        with self.assertRaises(UsageError):
            conn.send_data(b"x")
        ev = conn.receive_data(data(b"late") + ping(9), 200)
        self.assertIsInstance(ev[0], DataReceived)  # §6.4 close.half: still processed
        self.assertIsInstance(ev[1], PingReceived)
        self.assertEqual(conn.delivered, 2)
        self.assertEqual(out_packets(conn)[0].header.kind, Kind.PONG)  # PING still answered
        conn.receive_data(make_packet(Kind.GOAWAY, Goaway(0, 1).encode()), 300)
        self.assertEqual((conn.state, conn.close_code), (State.CLOSED, 0))
        self.assertEqual(out_packets(conn), [])  # no second GOAWAY

    def test_drain_timer(self):  # timeout.boundary; drain expiry sends nothing (§6.4)
        conn = established(Config(idle_timeout_ms=0))
        conn.close(1000)
        conn.data_to_send()
        conn.tick(5999)
        self.assertEqual(conn.state, State.DRAINING)
        conn.tick(6000)
        self.assertEqual((conn.state, conn.close_code), (State.CLOSED, 0))
        self.assertEqual(conn.data_to_send(), b"")

    def test_header_timer_expiring_with_the_drain_timer_closes_with_timeout(self):  # timeout.first
        conn = established(Config(idle_timeout_ms=0))
        conn.close(1000)
        conn.data_to_send()
        conn.receive_data(ping()[:3], 1000)  # a header started as the drain timer did
        conn.tick(6000)  # both expire now: the TIMEOUT timer first
        self.assertEqual((conn.state, conn.close_code), (State.CLOSED, E.TIMEOUT))
        self.assertEqual([p.header.kind for p in out_packets(conn)], [Kind.GOAWAY])

    def test_close_before_handshake(self):
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.close(1)
        self.assertEqual(conn.state, State.CLOSED)

    def test_no_input_after_error(self):  # close.on-error
        conn = established()
        conn.receive_data(make_packet(Kind.CREDIT, bytes(8)) + ping(), 1)
        self.assertEqual([p.header.kind for p in out_packets(conn)], [Kind.GOAWAY])
        self.assertEqual(conn.receive_data(ping(), 2), [])
        self.assertEqual(conn.data_to_send(), b"")


class TimeoutTests(unittest.TestCase):  # §6.5
    def test_handshake(self):
        conn = Connection(Config(idle_timeout_ms=0, require_peer_auth=False), 1000)
        conn.data_to_send()
        conn.receive_data(PREFACE, 5000)
        conn.tick(10_999)
        self.assertEqual(conn.state, State.AWAIT_HELLO)
        conn.tick(11_000)
        assert_closed(self, conn, E.TIMEOUT)

    def test_handshake_satisfied(self):
        conn = Connection(Config(idle_timeout_ms=0, require_peer_auth=False), 0)
        conn.receive_data(handshake_bytes(node_id=2), 9000)
        conn.tick(100_000)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_idle(self):
        conn = established(Config(idle_timeout_ms=60_000), now=0)
        conn.data_to_send()
        conn.receive_data(b"", 50_000)  # no bytes: does not restart the timer
        conn.tick(59_999)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(ping(), 59_999)  # any byte restarts it
        conn.tick(119_998)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.tick(119_999)
        assert_closed(self, conn, E.TIMEOUT)

    def test_idle_disabled(self):
        conn = established(Config(idle_timeout_ms=0))
        conn.tick(10**9)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_header_timer(self):
        conn = established(Config(idle_timeout_ms=0), now=0)
        conn.receive_data(data(b"abc")[:3], 100)
        conn.receive_data(data(b"abc")[3:7], 5000)  # trickling does not restart it
        conn.tick(5099)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.tick(5100)
        assert_closed(self, conn, E.TIMEOUT)

    def test_header_timer_stops_when_header_complete(self):
        conn = established(Config(idle_timeout_ms=0), now=0)
        pkt = data(bytes(100))
        conn.receive_data(pkt[:8], 100)
        conn.tick(20_000)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.tick(30_099)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.tick(30_100)  # packet timer
        assert_closed(self, conn, E.TIMEOUT)

    def test_packet_timer_restarts_per_packet(self):
        conn = established(Config(idle_timeout_ms=0), now=0)
        stream = data(bytes(100)) * 2
        conn.receive_data(stream[:50], 0)
        conn.receive_data(stream[50:120], 29_000)  # completes packet 1, starts packet 2
        conn.tick(58_999)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.tick(59_000)
        self.assertEqual(conn.close_code, E.TIMEOUT)

    def test_timer_fires_before_late_input(self):
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(handshake_bytes(node_id=2), 10_000)
        self.assertEqual(conn.close_code, E.TIMEOUT)

    def test_next_deadline(self):
        conn = Connection(Config(idle_timeout_ms=60_000, require_peer_auth=False), 0)
        self.assertEqual(conn.next_deadline(), 10_000)


class SplitInvarianceTests(unittest.TestCase):  # err.split-invariant at connection level
    def test_session_every_split(self):
        stream = (handshake_bytes(node_id=2) + data(b"a", service=1) + ping(3, 4)
                  + data(b"b", dst=99) + make_packet(Kind.CREDIT, Credit(1, 1).encode())
                  + data(b"c") + encode_header(Kind.DATA, 0, codec=3) + data(b"never"))

        def run(chunks):
            conn = Connection(Config(require_peer_auth=False), 0)
            events = []
            for c in chunks:
                events += conn.receive_data(c, 1)
            return [repr(e) for e in events], conn.data_to_send(), conn.close_code

        whole = run([stream])
        self.assertEqual(whole[2], E.BAD_FLAGS)
        for i in range(len(stream) + 1):
            for j in (i, min(i + 3, len(stream)), len(stream)):
                self.assertEqual(run([stream[:i], stream[i:j], stream[j:]]), whole, (i, j))


class VersionStampTests(unittest.TestCase):
    def test_sent_packets_carry_version_1(self):
        conn = established()
        conn.send_data(b"x")
        conn.send_ping(1, 1)
        conn.send_credit(1, 1)
        conn.close(2)
        self.assertTrue(all(p.header.version == 1 for p in out_packets(conn)))


if __name__ == "__main__":
    unittest.main()


class KeepaliveTests(unittest.TestCase):  # neg.keepalive
    def test_ping_after_half_peer_idle(self):
        conn = established(Config(idle_timeout_ms=0), now=0, idle_timeout_ms=10_000)
        conn.data_to_send()
        self.assertEqual(conn.next_deadline(), 5000)
        conn.tick(4999)
        self.assertEqual(conn.data_to_send(), b"")
        conn.tick(5000)
        (p,) = out_packets(conn)
        self.assertEqual(p.header.kind, Kind.PING)
        self.assertEqual(conn.next_deadline(), 10_000)

    def test_sending_postpones_keepalive(self):
        conn = established(Config(idle_timeout_ms=0), now=0, idle_timeout_ms=10_000)
        conn.tick(4000)
        conn.send_data(b"x")
        conn.tick(8999)
        self.assertEqual([p.header.kind for p in out_packets(conn)], [Kind.DATA])

    def test_peer_without_idle_timeout(self):
        conn = established(Config(idle_timeout_ms=0), now=0, idle_timeout_ms=0)
        self.assertIsNone(conn.next_deadline())


class FlagDeliveryTests(unittest.TestCase):
    def test_never_compress_and_hint_delivered(self):  # hdr.never-compress, hdr.hint
        conn = established()
        ev = conn.receive_data(data(b"secret", never_compress=True, hint=3), 1)
        self.assertEqual(ev[0].payload, b"secret")
        self.assertTrue(ev[0].header.never_compress)
        self.assertEqual(ev[0].header.hint, 3)

    def test_control_with_hint_accepted(self):
        conn = established()
        conn.receive_data(make_packet(Kind.PING, bytes(16), hint=1), 1)
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_unknown_kind_after_handshake(self):  # hdr.kind
        conn = established()
        conn.receive_data(encode_header(7, 0), 1)
        assert_closed(self, conn, E.UNKNOWN_KIND)

    def test_transport_closed_is_connection_lost(self):  # §6.4, §12.4 0x0011
        def after(setup):
            conn = Connection(Config(require_peer_auth=False), 0)
            setup(conn)
            conn.data_to_send()
            ev = conn.transport_closed()
            self.assertEqual(conn.close_code, E.CONNECTION_LOST)
            self.assertEqual(ev[-1].code, 0x0011)
            self.assertEqual(conn.data_to_send(), b"")  # local only: never sent
        after(lambda c: None)  # AWAIT_PREFACE
        after(lambda c: c.receive_data(PREFACE[:3], 0))
        after(lambda c: c.receive_data(PREFACE, 0))  # AWAIT_HELLO
        after(lambda c: c.receive_data(handshake_bytes(node_id=2), 0))  # between packets
        after(lambda c: c.receive_data(handshake_bytes(node_id=2) + data(b"abc")[:5], 0))  # mid-header
        after(lambda c: c.receive_data(handshake_bytes(node_id=2) + data(b"abc")[:9], 0))  # mid-payload
        # §6.4 (revised): after this endpoint's own GOAWAY, the end of the stream is
        # reported with that GOAWAY's code (settles N2)
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(handshake_bytes(node_id=2), 0)
        conn.close(1)
        conn.data_to_send()
        ev = conn.transport_closed(2)
        self.assertEqual((conn.close_code, ev[-1].local, conn.data_to_send()), (E.NO_ERROR, True, b""))
        # timers that expired by the end of the stream are handled first
        conn = Connection(Config(handshake_timeout_ms=100, require_peer_auth=False), 0)
        conn.transport_closed(100)
        self.assertEqual(conn.close_code, E.TIMEOUT)


class SendCapTests(unittest.TestCase):  # comp.send-cap (§9.2)
    def test_compressed_beyond_peer_ratio_sent_plain(self):
        conn = established(codecs=0x02, max_ratio=2)
        conn.send_data(b"a" * 1000, codec=2)  # ~20 bytes × 2 < 1000: not allowed compressed
        (p,) = out_packets(conn)
        self.assertEqual((p.header.codec, p.payload), (0, b"a" * 1000))

    def test_compressed_at_peer_cap_exactly(self):
        raw = b"a" * 1000
        packed = zlib.compress(raw, 6)
        ratio = -(-len(raw) // len(packed))  # smallest ratio with ratio × len ≥ 1000
        conn = established(codecs=0x02, max_ratio=ratio)
        conn.send_data(raw, codec=2)
        self.assertEqual(out_packets(conn)[0].header.codec, 2)
        conn = established(codecs=0x02, max_ratio=ratio - 1)
        conn.send_data(raw, codec=2)
        self.assertEqual(out_packets(conn)[0].header.codec, 0)

    def test_max_decompressed_term(self):
        conn = established(codecs=0x02, max_decompressed=1024)
        conn.send_data(b"a" * 1024, codec=2)
        conn.send_data(b"a" * 1025, codec=2)
        self.assertEqual([p.header.codec for p in out_packets(conn)], [2, 0])

    def test_larger_than_max_payload_travels_compressed(self):
        conn = established(codecs=0x02, max_payload=1024, initial_credit_bytes=4096, max_ratio=255)
        conn.send_data(b"z" * 3000, codec=2)
        (p,) = out_packets(conn)
        self.assertEqual(p.header.codec, 2)
        self.assertLessEqual(len(p.payload), 1024)
        with self.assertRaises(UsageError):  # cap exceeded and the plain form does not fit
            conn.send_data(b"z" * 20_000, codec=2)


# ---------------------------------------------------------------------------
# Rules settled by the spec revision that answered AMBIGUITIES.md
# ---------------------------------------------------------------------------


class DiscardedCreditTests(unittest.TestCase):  # §8: credit consumed whatever happens next
    def test_packet_errors_consume_credit(self):
        # The discarded DATA consumes its credit, which the endpoint grants back at once
        # even when the application grants the rest (flow.no-deadlock; vector
        # connection.flow.discarded-data-consumes-credit).
        conn = established(Config(initial_credit_packets=2, auto_credit=False, services=frozenset({1}),
                                  max_packet_errors=100))
        conn.data_to_send()
        ev = conn.receive_data(data(service=2) * 2, 1)  # two NO_SERVICE discards
        self.assertEqual([e.code for e in ev], [E.NO_SERVICE] * 2)
        self.assertEqual([p.header.kind for p in out_packets(conn)],
                         [Kind.ERROR, Kind.CREDIT, Kind.ERROR, Kind.CREDIT])
        self.assertEqual((conn.recv_credit_packets, conn.state), (2, State.ESTABLISHED))
        conn.receive_data(data(service=1) * 2, 1)  # delivered, not yet taken: no CREDIT
        self.assertEqual((conn.recv_credit_packets, out_packets(conn)), (0, []))
        conn.receive_data(encode_header(Kind.DATA, 1, service=1), 1)  # limit + 1
        assert_closed(self, conn, E.FLOW_CONTROL)

    def test_draining_keeps_granting_credit(self):  # close.half, flow.no-deadlock
        conn = established(Config(max_payload=1024, initial_credit_packets=5, initial_credit_bytes=1024))
        conn.close(1)
        for i in range(20):  # 20 KiB through a 1 KiB window, after our GOAWAY
            ev = conn.receive_data(data(bytes(1000)) + data(bytes(24)), 2 + i)
            self.assertEqual([type(e).__name__ for e in ev], ["DataReceived"] * 2)
        self.assertEqual(conn.state, State.DRAINING)
        self.assertEqual(conn.delivered, 40)

    def test_discarded_credit_granted_back(self):  # §8: "grants it back when done with it"
        conn = established(Config(initial_credit_packets=4, services=frozenset(), max_packet_errors=100))
        conn.receive_data(data() * 20, 1)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.close(2)
        conn.receive_data(data() * 20, 3)
        self.assertEqual(conn.state, State.DRAINING)
        credits = [Credit.decode(p.payload) for p in out_packets(conn) if p.header.kind == Kind.CREDIT]
        self.assertEqual(sum(c.packets for c in credits) + conn.recv_credit_packets, 44)


class EmptyRunCountingTests(unittest.TestCase):  # §11 limit.empty-run (revised)
    def test_controls_neither_reset_nor_add(self):
        conn = established(Config(max_empty_run=2))
        conn.receive_data(data(b"") + ping() * 5 + make_packet(Kind.ERROR, bytes(10)) + data(b""), 1)
        self.assertEqual(conn.state, State.ESTABLISHED)  # 2 = limit, controls did not add
        conn.receive_data(ping() + data(b""), 1)  # 3 = limit + 1, the PING did not reset
        self.assertEqual(conn.close_code, E.FLOOD)

    def test_discarded_empty_data_counts(self):
        # packet errors (NO_ROUTE) count
        conn = established(Config(max_empty_run=3, node_id=7, max_packet_errors=100))
        ev = conn.receive_data(data(b"", dst=9) * 3, 1)
        self.assertEqual([e.code for e in ev], [E.NO_ROUTE] * 3)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(data(b"", dst=9), 1)
        self.assertEqual(conn.close_code, E.FLOOD)
        # DATA discarded in DRAINING counts
        conn = established(Config(max_empty_run=3))
        conn.receive_data(data(b"") * 2, 1)
        conn.close(2)
        conn.receive_data(data(b""), 3)
        self.assertEqual(conn.state, State.DRAINING)
        conn.receive_data(data(b""), 3)
        self.assertEqual(conn.close_code, E.FLOOD)
        # an empty payload with Cod != 0 (malformed, §9.3) counts too
        conn = established(Config(max_empty_run=1, max_packet_errors=100))
        conn.receive_data(data(b"", codec=2), 1)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(data(b"", codec=2), 1)
        self.assertEqual(conn.close_code, E.FLOOD)

    def test_empty_run_precedes_packet_error(self):  # §6.3: §11 limits before delivery
        conn = established(Config(max_empty_run=1, services=frozenset(), max_packet_errors=100))
        conn.receive_data(data(b""), 1)
        conn.data_to_send()
        conn.receive_data(data(b""), 1)
        self.assertEqual([p.header.kind for p in out_packets(conn)], [Kind.GOAWAY])  # no ERROR
        self.assertEqual(conn.close_code, E.FLOOD)


class ErrorBudgetTests(unittest.TestCase):  # §12.3 (revised)
    def test_silent_error_discards_count(self):
        conn = established(Config(node_id=7, max_packet_errors=3))
        stray = make_packet(Kind.ERROR, ErrorPayload(E.NO_ROUTE, encode_header(Kind.DATA, 0)).encode(), dst=9)
        ev = conn.receive_data(stray * 3, 1)  # exactly the budget
        self.assertEqual([(e.code, e.reported) for e in ev], [(E.NO_ROUTE, False)] * 3)
        self.assertEqual((conn.state, out_packets(conn)), (State.ESTABLISHED, []))
        conn.receive_data(stray, 1)  # budget + 1
        assert_closed(self, conn, E.TOO_MANY_ERRORS)

    def test_exceeding_packet_gets_no_error(self):
        conn = established(Config(max_packet_errors=2, services=frozenset()))
        conn.receive_data(data() * 2, 1)
        self.assertEqual([p.header.kind for p in out_packets(conn)], [Kind.ERROR, Kind.ERROR])
        conn.receive_data(data(), 1)
        self.assertEqual([p.header.kind for p in out_packets(conn)], [Kind.GOAWAY])
        self.assertEqual(conn.close_code, E.TOO_MANY_ERRORS)

    def test_mixed_reported_and_silent(self):
        conn = established(Config(node_id=7, max_packet_errors=2))
        conn.receive_data(data(dst=9) + make_packet(Kind.ERROR, bytes(10), dst=9), 1)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.receive_data(make_packet(Kind.ERROR, bytes(10), dst=9), 1)
        self.assertEqual(conn.close_code, E.TOO_MANY_ERRORS)

    def test_packet_errors_after_our_goaway_count(self):  # close.half: processed as in ESTABLISHED
        conn = established(Config(max_packet_errors=1, services=frozenset()))
        conn.close(1)
        conn.receive_data(data(), 2)
        self.assertEqual((conn.state, conn.packet_errors), (State.DRAINING, 1))
        conn.receive_data(data(), 3)
        self.assertEqual(conn.close_code, E.TOO_MANY_ERRORS)

class SourceNodeReservedTests(unittest.TestCase):  # §7.4 src.reserved
    def test_source_ffff_forged(self):
        for pkt in (encode_header(Kind.DATA, 3, src=0xFFFF), make_packet(Kind.ERROR, bytes(10), src=0xFFFF)):
            conn = established(Config(trust_proxy_source=True), role=ROLE_PROXY, node_id=4)
            conn.receive_data(pkt, 1)
            assert_closed(self, conn, E.SOURCE_FORGED)

    def test_source_boundaries_accepted(self):
        conn = established(Config(trust_proxy_source=True), role=ROLE_PROXY, node_id=4)
        ev = conn.receive_data(data(b"a", src=0xFFFE) + data(b"b", src=0) + data(b"c", src=1), 1)
        self.assertEqual([e.source for e in ev], [0xFFFE, 0, 1])  # 0 = unattributed client

    def test_forged_checked_before_credit(self):  # §6.3 step 2 before step 3
        conn = established(Config(trust_proxy_source=True, initial_credit_packets=1, auto_credit=False),
                           role=ROLE_PROXY, node_id=4)
        conn.receive_data(data(), 1)
        conn.receive_data(encode_header(Kind.DATA, 0, src=0xFFFF), 1)
        self.assertEqual(conn.close_code, E.SOURCE_FORGED)

    def test_proxy_authenticated_by_certificate(self):  # src.trust, tls.node-binding
        conn = established(Config(peer_identity=(ROLE_PROXY, 4)), role=ROLE_PROXY, node_id=4)
        self.assertEqual(conn.receive_data(data(src=9), 1)[0].source, 9)
        # a proxy with a node certificate is not authenticated as a proxy
        conn = established(Config(peer_identity=(ROLE_NODE, 4)), role=ROLE_PROXY, node_id=4)
        conn.receive_data(data(src=9), 1)
        self.assertEqual(conn.close_code, E.SOURCE_FORGED)
        # a proxy with neither certificate nor configuration: X = 1 is forged
        conn = established(role=ROLE_PROXY, node_id=4)
        conn.receive_data(data(src=9), 1)
        self.assertEqual(conn.close_code, E.SOURCE_FORGED)


class DestinationTests(unittest.TestCase):  # §7.2, §7.3, §6.3 state.data-order
    def test_ffff_is_always_no_route(self):
        conn = established(Config(role=ROLE_CLIENT, node_id=0), node_id=3, peer_id=0xFFFF)
        ev = conn.receive_data(data(dst=0xFFFF) + data(dst=0xFFFE) + data(dst=0), 1)
        self.assertEqual([getattr(e, "code", None) for e in ev], [E.NO_ROUTE, E.NO_ROUTE, None])

    def test_node_ids_at_bounds(self):
        conn = established(Config(node_id=0xFFFE))
        self.assertIsInstance(conn.receive_data(data(dst=0xFFFE), 1)[0], DataReceived)
        self.assertEqual(conn.receive_data(data(dst=0xFFFF), 1)[0].code, E.NO_ROUTE)

    def test_client_without_attributed_id(self):
        conn = established(Config(role=ROLE_CLIENT, node_id=0), node_id=3, peer_id=0)
        ev = conn.receive_data(data(dst=0) + data(dst=1), 1)
        self.assertEqual([type(e).__name__ for e in ev], ["DataReceived", "PacketDiscarded"])

    def test_data_order(self):  # route -> service -> codec -> decompression
        bad_zlib = b"\x78\x9c\xff\xff"
        cases = [
            (dict(dst=9, service=5, codec=2), E.NO_ROUTE),
            (dict(dst=0, service=5, codec=2), E.NO_SERVICE),
            (dict(dst=7, service=1, codec=1), E.CODEC_NOT_NEGOTIATED),
            (dict(dst=7, service=1, codec=2), E.DECOMPRESSION_FAILED),
        ]
        for kw, code in cases:
            conn = established(Config(node_id=7, services=frozenset({1}), codecs=0x02))
            ev = conn.receive_data(data(bad_zlib, **kw), 1)
            self.assertEqual(ev[0].code, code, kw)


class KeepaliveDrainingTests(unittest.TestCase):  # §6.5: keepalive continues in DRAINING
    def test_ping_in_draining(self):
        conn = established(Config(idle_timeout_ms=0, drain_timeout_ms=60_000), now=0, idle_timeout_ms=10_000)
        conn.close(1000)  # GOAWAY sent at 1000: counts as traffic
        conn.data_to_send()
        conn.tick(5999)
        self.assertEqual(conn.data_to_send(), b"")
        conn.tick(6000)
        (p,) = out_packets(conn)
        self.assertEqual((p.header.kind, conn.state), (Kind.PING, State.DRAINING))


class TimerBoundaryTests(unittest.TestCase):  # timeout.boundary, timeout.first
    def test_handshake_input_at_deadline(self):
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(handshake_bytes(node_id=2), 9_999)  # deadline − 1: processed
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn = Connection(Config(require_peer_auth=False), 0)
        conn.receive_data(PREFACE, 5)
        conn.receive_data(hello_bytes(node_id=2), 10_000)  # at the deadline: timer first
        self.assertEqual(conn.close_code, E.TIMEOUT)

    def test_idle_input_at_deadline(self):
        conn = established(Config(idle_timeout_ms=2000), now=0)
        ev = conn.receive_data(data(), 1999)
        self.assertIsInstance(ev[0], DataReceived)
        ev = conn.receive_data(data(), 3998)  # 1999 + 2000 − 1
        self.assertIsInstance(ev[0], DataReceived)
        ev = conn.receive_data(data(), 5998)  # 3998 + 2000: expired before the input
        self.assertEqual([type(e).__name__ for e in ev], ["ConnectionClosed"])
        assert_closed(self, conn, E.TIMEOUT)

    def test_idle_restarts_on_partial_packet_bytes(self):
        conn = established(Config(idle_timeout_ms=2000, header_timeout_ms=60_000, packet_timeout_ms=60_000),
                           now=0)
        pkt = data(b"abcdef")
        for i, t in enumerate((1999, 3998, 5997)):
            conn.receive_data(pkt[i:i + 1], t)
        conn.tick(7996)
        self.assertEqual(conn.state, State.ESTABLISHED)
        conn.tick(7997)
        self.assertEqual(conn.close_code, E.TIMEOUT)

    def test_header_and_packet_input_at_deadline(self):
        pkt = data(bytes(20))
        conn = established(Config(idle_timeout_ms=0), now=0)
        conn.receive_data(pkt[:4], 100)
        ev = conn.receive_data(pkt[4:], 5099)  # header deadline − 1
        self.assertIsInstance(ev[-1], DataReceived)
        conn = established(Config(idle_timeout_ms=0), now=0)
        conn.receive_data(pkt[:4], 100)
        conn.receive_data(pkt[4:], 5100)  # header deadline
        self.assertEqual(conn.close_code, E.TIMEOUT)
        conn = established(Config(idle_timeout_ms=0), now=0)
        conn.receive_data(pkt[:10], 100)
        ev = conn.receive_data(pkt[10:], 30_099)  # packet deadline − 1
        self.assertIsInstance(ev[-1], DataReceived)
        conn = established(Config(idle_timeout_ms=0), now=0)
        conn.receive_data(pkt[:10], 100)
        conn.receive_data(pkt[10:], 30_100)  # packet deadline
        self.assertEqual(conn.close_code, E.TIMEOUT)

    def test_preface_not_under_header_timer(self):  # §6.5: the handshake timer covers it
        conn = Connection(Config(header_timeout_ms=1000, packet_timeout_ms=1000, require_peer_auth=False), 0)
        conn.receive_data(PREFACE[:4], 0)
        conn.tick(9_999)
        self.assertEqual(conn.state, State.AWAIT_PREFACE)
        conn.tick(10_000)
        self.assertEqual(conn.close_code, E.TIMEOUT)

    def test_drain_input_at_deadline(self):
        conn = established(Config(idle_timeout_ms=0))
        conn.close(1000)
        conn.data_to_send()
        self.assertIsInstance(conn.receive_data(ping(), 5999)[0], PingReceived)
        ev = conn.receive_data(ping(), 6000)
        self.assertEqual([type(e).__name__ for e in ev], ["ConnectionClosed"])
        self.assertEqual([p.header.kind for p in out_packets(conn)], [Kind.PONG])  # nothing after expiry


class CapScopeTests(unittest.TestCase):  # §9.3: limits apply to compressed payloads only
    def test_uncompressed_payload_not_capped(self):
        conn = established(Config(max_decompressed=1024, max_ratio=1, max_payload=4096,
                                  initial_credit_bytes=100_000))
        ev = conn.receive_data(data(b"u" * 4096), 1)  # 4096 > max_decompressed: delivered
        self.assertEqual(ev[0].payload, b"u" * 4096)
        conn.receive_data(encode_header(Kind.DATA, 4097), 1)  # bounded by max_payload alone
        assert_closed(self, conn, E.PAYLOAD_TOO_LARGE)


class PerSourceLimitTests(unittest.TestCase):  # §11 limit.per-source
    def link(self, **kw):
        return established(Config(trust_proxy_source=True, **kw), role=ROLE_PROXY, node_id=4)

    def test_empty_run_per_source(self):
        conn = self.link()
        conn.data_to_send()
        conn.receive_data((data(b"", src=40000) + data(b"", src=40001)) * 20, 1)  # 40 in a row on the link
        self.assertEqual((conn.state, out_packets(conn)), (State.ESTABLISHED, []))
        conn = self.link()
        conn.data_to_send()
        conn.receive_data(data(b"", src=40000) * 32, 1)  # the limit
        self.assertEqual([p.header.kind for p in out_packets(conn)], [])
        conn.receive_data(data(b"", src=40000), 1)  # limit + 1: ERROR FLOOD to that source
        (p,) = [p for p in out_packets(conn) if p.header.kind == Kind.ERROR]
        self.assertEqual((ErrorPayload.decode(p.payload).code, p.header.dst), (E.FLOOD, 40000))
        self.assertEqual(conn.state, State.ESTABLISHED)
        ev = conn.receive_data(data(b"ok", src=40001), 1)
        self.assertEqual(ev[0].source, 40001)

    def test_error_budget_per_source(self):
        conn = self.link(max_packet_errors=2, services=frozenset({0}))
        conn.data_to_send()
        conn.receive_data(data(service=9, src=40000) * 2 + data(service=9, src=40001), 1)
        codes = [ErrorPayload.decode(p.payload).code for p in out_packets(conn) if p.header.kind == Kind.ERROR]
        self.assertEqual(codes, [E.NO_SERVICE] * 3)
        conn.receive_data(data(service=9, src=40000), 1)  # budget + 1 for 40000
        (p,) = [p for p in out_packets(conn) if p.header.kind == Kind.ERROR]
        self.assertEqual((ErrorPayload.decode(p.payload).code, p.header.dst), (E.TOO_MANY_ERRORS, 40000))
        self.assertEqual(conn.state, State.ESTABLISHED)

    def test_not_per_source_from_a_client(self):  # limit.empty-run stays per connection
        conn = established(role=ROLE_CLIENT, node_id=0)
        conn.receive_data(data(b"") * 33, 1)
        self.assertEqual(conn.close_code, E.FLOOD)
