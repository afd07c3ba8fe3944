"""The conformance testee (fleetwire_py.testee, conformance/PROTOCOL.md): framing and
handshake through a real subprocess, plus the answer forms in-process."""

import io
import json
import os
import struct
import subprocess
import sys
import unittest

from fleetwire_py import testee as T

PKG_ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def frame(msg):
    body = json.dumps(msg).encode("utf-8")
    return struct.pack(">I", len(body)) + body


def unframe_all(data):
    """Split a byte string into messages; fails on anything that is not a message."""
    out, pos = [], 0
    while pos < len(data):
        assert len(data) - pos >= 4, f"trailing bytes {data[pos:]!r}"
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        body = data[pos + 4:pos + 4 + n]
        assert len(body) == n, "truncated message"
        out.append(json.loads(body.decode("utf-8")))
        pos += 4 + n
    return out


def run_testee(messages, *args):
    env = dict(os.environ, PYTHONPATH=PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "fleetwire_py.testee", *args],
                          input=b"".join(frame(m) for m in messages), capture_output=True,
                          env=env, timeout=30)
    return proc.returncode, unframe_all(proc.stdout), proc.stderr


class SubprocessRoundTrip(unittest.TestCase):
    def test_hello_then_one_operation(self):
        rc, answers, _ = run_testee([
            {"type": "hello", "protocol": 1},
            {"type": "request", "id": 3, "op": "encode_control", "case": "t.credit", "kind": "CREDIT",
             "fields": {"packets": 1, "bytes": 0}},
            {"type": "bye"},
        ])
        self.assertEqual(rc, 0)
        self.assertEqual(len(answers), 2)
        hello, result = answers
        self.assertEqual((hello["type"], hello["protocol"]), ("hello", 1))
        self.assertEqual(hello["levels"], ["codec", "endpoint"])
        self.assertEqual(set(hello["operations"]), {
            "decode_header", "decode_packet", "decode_control", "encode_header", "encode_packet",
            "encode_control", "decode_stream", "decompress", "connection"})
        self.assertEqual(result, {"type": "result", "id": 3, "result": {"output": "0000000100000000"}})

    def test_decode_header_and_end_of_input_without_bye(self):
        rc, answers, _ = run_testee([
            {"type": "hello", "protocol": 1},
            {"type": "request", "id": 1, "op": "decode_header", "input": "1080000300090201"},
            {"type": "request", "id": 2, "op": "decode_header", "input": "1700000000000000"},
        ])
        self.assertEqual(rc, 0)  # stdin ended: the testee exits cleanly
        self.assertEqual(answers[1:], [
            {"type": "result", "id": 1, "result": {"incomplete": 2}},
            {"type": "result", "id": 2, "result": {"error": "UNKNOWN_KIND", "code": 5}},
        ])

    def test_protocol_2_is_negotiated_and_returns_the_wire(self):
        steps = [{"expect_sent": [{"preface": True}, {"kind": "HELLO"}]}, {"at_ms": 0, "recv": ""}]
        config = {"role": "node", "node_id": 1, "peer_id": 0, "codecs": 3, "trust_source": False,
                  "require_auth": False, "authenticated": None, "services": None, "limits": {}}
        rc, answers, _ = run_testee([
            {"type": "hello", "protocol": 1, "protocols": [1, 2]},
            {"type": "request", "id": 1, "op": "connection", "config": config, "steps": steps,
             "wire": True},
        ])
        self.assertEqual(rc, 0)
        self.assertEqual(answers[0]["protocol"], 2)
        wire = answers[1]["result"]["wire"]
        self.assertEqual(len(wire), 2)  # one entry per step
        self.assertTrue(wire[0]["sent"].startswith("894657495245"))  # the preface, then HELLO
        self.assertEqual(wire[1], {"sent": "", "closed": False})

    def test_wrong_protocol_version(self):
        rc, answers, _ = run_testee([{"type": "hello", "protocol": 3}])
        self.assertEqual(rc, 2)
        self.assertEqual(answers[0]["type"], "error")
        self.assertIn("message", answers[0])

    def test_garbage_input_writes_nothing_to_stdout(self):
        env = dict(os.environ, PYTHONPATH=PKG_ROOT)
        proc = subprocess.run([sys.executable, "-m", "fleetwire_py.testee"], input=b"\x00\x00\x00\x05nope!",
                              capture_output=True, env=env, timeout=30)
        self.assertEqual(proc.stdout, b"")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(b"protocol error", proc.stderr)


class Answers(unittest.TestCase):
    def ask(self, req):
        return T.answer(dict(req, type="request", id=9), lambda _: None)

    def test_unknown_operation_is_unsupported(self):
        self.assertEqual(self.ask({"op": "forward"}), {"type": "unsupported", "id": 9})

    def test_proxy_endpoint_is_unsupported(self):  # proxy level not claimed (§15)
        cfg = {"role": "proxy", "node_id": 9, "peer_id": 0, "codecs": 3, "trust_source": False,
               "require_auth": False, "authenticated": None, "services": None, "limits": {}}
        self.assertEqual(self.ask({"op": "connection", "config": cfg, "steps": []}),
                         {"type": "unsupported", "id": 9})

    def test_bad_field_is_an_error_answer(self):
        a = self.ask({"op": "decode_header", "input": "zz"})
        self.assertEqual((a["type"], a["id"]), ("error", 9))

    def test_protocol_errors_are_results(self):
        a = self.ask({"op": "decode_control", "kind": "CREDIT", "input": "0000000000000000"})
        self.assertEqual(a, {"type": "result", "id": 9, "result": {"error": "BAD_CONTROL", "code": 8}})

    def test_connection_observations(self):
        cfg = {"role": "node", "node_id": 1, "peer_id": 0, "codecs": 3, "trust_source": False,
               "require_auth": False, "authenticated": None, "services": None, "limits": {}}
        steps = [{"expect_sent": []}, {"at_ms": 0, "eof": True}, {"expect_closed": "CONNECTION_LOST"},
                 {"expect_events": []}]
        a = self.ask({"op": "connection", "config": cfg, "steps": steps})
        obs = a["result"]["observations"]
        self.assertEqual(obs[0]["sent"][0], {"preface": True})
        self.assertEqual(obs[0]["sent"][1]["kind"], "HELLO")
        self.assertEqual(obs[1:], [{"closed": "CONNECTION_LOST"}, {"events": []}])  # taken at expect_closed
        self.assertEqual(a["result"]["outcome"], {"state": "closed", "code": "CONNECTION_LOST"})

    def test_steps_without_a_time_happen_at_the_previous_steps_time(self):
        # found by the stateful differential fuzzer: a first step without at_ms crashed
        cfg = {"role": "node", "node_id": 1, "peer_id": 0, "codecs": 3, "trust_source": False,
               "require_auth": False, "authenticated": None, "services": None, "limits": {}}
        steps = [{"app": "send_ping"}, {"tick": True}, {"at_ms": 10, "tick": True}, {"eof": True},
                 {"expect_closed": "CONNECTION_LOST"}]
        a = self.ask({"op": "connection", "config": cfg, "steps": steps})
        self.assertEqual(a["result"]["observations"], [{"closed": "CONNECTION_LOST"}])

    def test_framing_helpers(self):
        out = io.BytesIO()
        T.write_message(out, {"type": "bye"})
        self.assertEqual(T.read_message(io.BytesIO(out.getvalue())), {"type": "bye"})
        self.assertIsNone(T.read_message(io.BytesIO(b"")))
        with self.assertRaises(T.ProtocolError):
            T.read_message(io.BytesIO(b"\x00\x00"))
        with self.assertRaises(T.ProtocolError):
            T.read_message(io.BytesIO(struct.pack(">I", T.MAX_MESSAGE + 1)))


if __name__ == "__main__":
    unittest.main()
