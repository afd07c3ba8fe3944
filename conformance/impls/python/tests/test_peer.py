"""The blocking TCP/TLS peer (peer.py): echo over plaintext TCP and TLS 1.3 with ALPN
fleetwire/1 (§10.1), mutual TLS node-id binding (§10.2)."""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

from fleetwire_py.codec import ROLE_CLIENT, ROLE_NODE, ROLE_PROXY, Kind, Ping, make_packet
from fleetwire_py.connection import Config, ConnectionClosed, DataReceived, PacketDiscarded
from fleetwire_py.errors import ErrorCode as E
from fleetwire_py import peer as P

from .helpers import handshake_bytes


def ping(i=1):
    return make_packet(Kind.PING, Ping(i, 0).encode())


def make_cert(directory, name, san):
    key, crt = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True)
    return crt, key


class CertUriTests(unittest.TestCase):  # §10.2: fleetwire:node:<id>, fleetwire:proxy:<id>
    def test_parse(self):
        self.assertEqual(P.parse_cert_uri("fleetwire:node:5"), (ROLE_NODE, 5))
        self.assertEqual(P.parse_cert_uri("fleetwire:proxy:65534"), (ROLE_PROXY, 65534))
        for bad in ("fleetwire:proxy:65535", "fleetwire:node:0", "fleetwire:node:x", "fleetwire:node:",
                    "fleetwire:node:+5", "fleetwire:client:5", "https://example.com"):
            self.assertIsNone(P.parse_cert_uri(bad), bad)


    def test_identity_from_uris(self):  # §10.2: exactly one URI, a malformed one counts
        self.assertEqual(P.identity_from_uris(["https://x", "fleetwire:node:5"]), (ROLE_NODE, 5))
        self.assertEqual(P.identity_from_uris(["fleetwire:proxy:7"]), (ROLE_PROXY, 7))
        for uris in ([], ["https://x"], ["fleetwire:node:5", "fleetwire:proxy:5"],
                     ["fleetwire:node:5", "fleetwire:node:5"], ["fleetwire:node:5", "fleetwire:node:x"],
                     ["fleetwire:node:0"], ["fleetwire:proxy:65535"]):
            self.assertIsNone(P.identity_from_uris(uris), uris)


class QueuedEventBoundTests(unittest.TestCase):  # §5.7 error.rate, §11: events kept, bounded
    def driver_and_peer(self, bound):
        mine, theirs = socket.socketpair()
        self.addCleanup(mine.close)
        self.addCleanup(theirs.close)
        config = Config(role=ROLE_NODE, node_id=2, max_queued_events=bound,
                        require_peer_auth=False, keepalive=False)
        driver = P.SocketDriver(mine, config)
        theirs.sendall(handshake_bytes(role=ROLE_CLIENT, node_id=0))
        return driver, theirs

    def poll_until(self, driver, n):
        for _ in range(50):
            if len(driver.events) >= n or driver.conn.closed:
                return
            driver.poll(max_wait_ms=20)

    def test_at_the_bound_kept_and_one_more_is_flood(self):
        driver, peer = self.driver_and_peer(10)
        peer.sendall(ping() * 9)  # HandshakeComplete + 9 PingReceived: 10 events
        self.poll_until(driver, 10)
        self.assertEqual(len(driver.events), 10)
        self.assertFalse(driver.conn.closed)
        peer.sendall(ping())  # the 11th event not taken
        self.poll_until(driver, 11)
        self.assertTrue(driver.conn.closed)
        self.assertEqual(driver.conn.close_code, E.FLOOD)

    def test_taking_events_makes_room(self):
        driver, peer = self.driver_and_peer(10)
        for _ in range(5):
            peer.sendall(ping() * 9)
            self.poll_until(driver, 9)
            self.assertLessEqual(len(driver.take_events()), 10)
        self.assertFalse(driver.conn.closed)


class TcpEchoTests(unittest.TestCase):
    def setUp(self):
        self.server = P.EchoServer(config=Config(role=ROLE_NODE, node_id=2)).start()

    def tearDown(self):
        self.server.stop()

    def test_echo_plain_and_compressed(self):
        c = P.Client("127.0.0.1", self.server.port)
        self.assertTrue(c.handshake())
        self.assertEqual(c.conn.peer_hello.peer_id, 1000)  # hello.peer-id
        payload = bytes(range(256)) * 10
        for codec in (0, 2) + ((1,) if c.conn.peer_hello.codecs & 1 else ()):
            c.send(payload, service=3, channel=4, codec=codec)
            ev = c.wait_for(DataReceived)
            c.driver.events.clear()
            self.assertEqual((ev.payload, ev.header.service, ev.header.channel), (payload, 3, 4))
        c.close()
        self.assertEqual(c.conn.close_code, E.NO_ERROR)

    def test_many_packets_one_write(self):  # tls.grouping / layer.split on a real socket
        c = P.Client("127.0.0.1", self.server.port)
        self.assertTrue(c.handshake())
        for i in range(50):
            c.conn.send_data(b"%d" % i)
        c.driver.flush()
        got = []
        while len(got) < 50:
            ev = c.wait_for(DataReceived, 3000)
            self.assertIsNotNone(ev)
            got = [e.payload for e in c.driver.events if isinstance(e, DataReceived)]
        self.assertEqual(got, [b"%d" % i for i in range(50)])
        c.close()

    def test_bad_preface_gets_goaway(self):
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        s.settimeout(3)
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        s.close()
        self.assertTrue(buf.startswith(b"\x89FWIRE\r\n"))
        self.assertIn(b"\x14\x00\x00", buf)  # a GOAWAY header (version 1, kind 4)
        self.assertEqual(buf[-10 - len("bad preface"):][:2], b"\x00\x02")  # BAD_PREFACE


@unittest.skipUnless(shutil.which("openssl"), "openssl CLI needed to make test certificates")
class TlsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.srv_crt, cls.srv_key = make_cert(cls.dir, "server", "DNS:localhost,URI:fleetwire:node:2")
        cls.cli_crt, cls.cli_key = make_cert(cls.dir, "client", "DNS:client,URI:fleetwire:node:5")
        cls.prx_crt, cls.prx_key = make_cert(cls.dir, "proxy", "DNS:proxy,URI:fleetwire:proxy:5")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def start(self, client_ca=None, **cfg):
        ctx = P.server_tls_context(self.srv_crt, self.srv_key, client_ca)
        cfg.setdefault("role", ROLE_NODE)
        cfg.setdefault("node_id", 2)
        server = P.EchoServer(config=Config(**cfg), tls=ctx).start()
        self.addCleanup(server.stop)
        return server

    def test_tls_echo(self):  # tls.version, tls.alpn, tls.server-auth
        server = self.start()
        c = P.Client("127.0.0.1", server.port, tls=P.client_tls_context(self.srv_crt), server_name="localhost")
        self.assertEqual(c.driver.sock.version(), "TLSv1.3")
        self.assertEqual(c.driver.sock.selected_alpn_protocol(), "fleetwire/1")
        self.assertTrue(c.handshake())
        c.send(b"over tls")
        self.assertEqual(c.wait_for(DataReceived).payload, b"over tls")
        c.close()

    def test_wrong_server_name_rejected(self):  # tls.server-auth
        server = self.start()
        with self.assertRaises(ssl.SSLCertVerificationError):
            P.Client("127.0.0.1", server.port, tls=P.client_tls_context(self.srv_crt), server_name="other")

    def test_tls12_refused(self):  # tls.version
        server = self.start()
        ctx = ssl.create_default_context(cafile=self.srv_crt)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["fleetwire/1"])
        with self.assertRaises(ssl.SSLError):
            P.Client("127.0.0.1", server.port, tls=ctx, server_name="localhost")

    def test_alpn_mismatch(self):  # tls.alpn
        server = self.start()
        ctx = ssl.create_default_context(cafile=self.srv_crt)
        ctx.set_alpn_protocols(["h2"])
        with self.assertRaises((ConnectionRefusedError, ssl.SSLError)):
            P.Client("127.0.0.1", server.port, tls=ctx, server_name="localhost")

    def test_mutual_tls_binding(self):  # tls.node-binding, src.auth
        server = self.start(client_ca=self.cli_crt, require_peer_auth=True)
        ctx = P.client_tls_context(self.srv_crt, self.cli_crt, self.cli_key)
        ok = P.Client("127.0.0.1", server.port, Config(role=ROLE_NODE, node_id=5), tls=ctx, server_name="localhost")
        self.assertTrue(ok.handshake())
        ok.send(b"bound")
        self.assertEqual(ok.wait_for(DataReceived).payload, b"bound")
        ok.close()
        bad = P.Client("127.0.0.1", server.port, Config(role=ROLE_NODE, node_id=6), tls=ctx, server_name="localhost")
        ev = bad.wait_for(ConnectionClosed)
        self.assertEqual(ev.code, E.BAD_HELLO)
        bad.driver.close()

    def test_proxy_certificate_authenticates_proxy(self):  # §10.2, §7.4 src.trust
        server = self.start(client_ca=self.prx_crt, require_peer_auth=True)
        ctx = P.client_tls_context(self.srv_crt, self.prx_crt, self.prx_key)
        c = P.Client("127.0.0.1", server.port, Config(role=ROLE_PROXY, node_id=5), tls=ctx, server_name="localhost")
        self.assertTrue(c.handshake())
        c.conn.send_credit(1, 1)  # keep the client's own accounting untouched; raw X = 1 DATA:
        c.driver.flush()
        c.driver.sock.sendall(make_packet(Kind.DATA, b"stamped", src=9))
        ev = c.wait_for(PacketDiscarded)  # the echo goes back to source 9: not local here
        self.assertIsNotNone(ev)
        self.assertEqual((ev.code, ev.header.dst), (E.NO_ROUTE, 9))
        c.close()

    def test_proxy_role_with_node_certificate(self):  # tls.node-binding, src.auth
        # §7.4 (revised): with authentication required, role proxy needs a proxy identity
        server = self.start(client_ca=self.cli_crt, require_peer_auth=True)
        ctx = P.client_tls_context(self.srv_crt, self.cli_crt, self.cli_key)
        c = P.Client("127.0.0.1", server.port, Config(role=ROLE_PROXY, node_id=5), tls=ctx, server_name="localhost")
        ev = c.wait_for(ConnectionClosed)
        self.assertEqual(ev.code, E.BAD_HELLO)
        c.driver.close()

    def test_plaintext_preface_gets_tls_alert(self):  # preface.misconfig (SHOULD)
        server = self.start()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as c:
            c.sendall(b"\x89FWIRE\r\n")
            got = b""
            while len(got) < 7 and (chunk := c.recv(16)):
                got += chunk
        self.assertEqual(got, P.TLS_ALERT_UNEXPECTED_MESSAGE)

    def test_client_role_needs_no_certificate_binding(self):
        server = self.start()
        c = P.Client("127.0.0.1", server.port, Config(role=ROLE_CLIENT, node_id=0),
                     tls=P.client_tls_context(self.srv_crt), server_name="localhost")
        self.assertTrue(c.handshake())
        c.close()


if __name__ == "__main__":
    unittest.main()
