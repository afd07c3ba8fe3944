import pytest

import fleetwire
from fleetwire import codec


def test_header_roundtrip_and_incomplete():
    h = codec.Header("DATA", node=3, service=1, channel=2, length=5, hints=1, source=9)
    wire = h.encode()
    assert len(wire) == 10 and h.header_len == 10
    assert codec.parse_header(wire) == h
    for cut in range(10):
        r = codec.parse_header(wire[:cut])
        assert isinstance(r, codec.Incomplete) and r.needed > 0


def test_header_errors_have_spec_codes():
    with pytest.raises(codec.ProtocolError) as e:
        codec.parse_header(bytes.fromhex("1700000000000000"))  # kind 7
    assert (e.value.code_name, e.value.code) == ("UNKNOWN_KIND", 5)
    with pytest.raises(fleetwire.FleetwireError) as e:
        codec.parse_header(codec.Header(length=101).encode(), max_payload=100)
    assert e.value.code_name == "PAYLOAD_TOO_LARGE"
    assert codec.parse_header(codec.Header(length=100).encode(), max_payload=100).length == 100


def test_packets_and_streams_split_anywhere():
    wire = b"".join(codec.encode_data((1, 2, i), bytes([i]) * i) for i in range(20))
    ping = codec.encode_packet(codec.Header("PING", length=16), codec.encode_control("PING", {"id": 7, "timestamp": 9}))
    stream = codec.PREFACE + wire + ping
    for step in (1, 3, 64, len(stream)):
        d = codec.Deframer(preface=True)
        got = []
        for i in range(0, len(stream), step):
            got += d.feed(stream[i : i + step])
        assert [p.header.route for p in got[:20]] == [(1, 2, i) for i in range(20)]
        assert [bytes(p.payload) for p in got[:20]] == [bytes([i]) * i for i in range(20)]
        assert got[20].control() == {"id": 7, "timestamp": 9}
        assert d.buffered == 0 and d.offset == len(stream)
    pkt, used = codec.parse_packet(wire)
    assert used == 8 and bytes(pkt.payload) == b"" and pkt.encode() == wire[:8]


def test_stream_errors_report_the_offset_and_stick():
    good = codec.encode_data((0, 1, 0), b"ok")
    bad_credit = codec.encode_packet(codec.Header("CREDIT", length=8), bytes(8))  # 0/0 is BAD_CONTROL
    d = codec.Deframer()
    with pytest.raises(codec.ProtocolError) as e:
        d.feed(good + bad_credit)
    assert (e.value.code_name, e.value.offset) == ("BAD_CONTROL", len(good))
    assert [bytes(p.payload) for p in e.value.packets] == [b"ok"]
    with pytest.raises(codec.ProtocolError):
        d.feed(good)
    with pytest.raises(codec.ProtocolError) as e:
        codec.Deframer(preface=True).feed(b"\x89FWIRE\r\x0b")
    assert (e.value.code_name, e.value.offset) == ("BAD_PREFACE", 0)


def test_control_roundtrip():
    hello = {
        "min_version": 1, "max_version": 1, "role": "node", "hello_flags": 0, "node_id": 7,
        "peer_id": 0, "codecs": 3, "max_ratio": 100, "max_payload": 65535,
        "max_decompressed": 262144, "initial_credit_packets": 1024,
        "initial_credit_bytes": 1 << 20, "idle_timeout_ms": 0, "extensions": b"",
    }
    assert codec.decode_control("HELLO", codec.encode_control("HELLO", hello)) == hello
    goaway = {"code": 0x11, "code_name": "CONNECTION_LOST", "delivered": 2**40, "reason": "bye"}
    assert codec.decode_control("GOAWAY", codec.encode_control("GOAWAY", goaway)) == goaway
    with pytest.raises(codec.ProtocolError) as e:
        codec.decode_control("PING", b"short")
    assert e.value.code_name == "BAD_CONTROL"


def test_decompress_limits():
    import zlib

    plain = bytes(range(256)) * 40
    data = zlib.compress(plain)
    assert codec.decompress("zlib", data) == plain
    with pytest.raises(codec.ProtocolError) as e:
        codec.decompress("zlib", data, max_ratio=2)
    assert e.value.code_name == "RATIO_EXCEEDED"
    with pytest.raises(codec.ProtocolError) as e:
        codec.decompress("zlib", data, codecs=1)
    assert e.value.code_name == "CODEC_NOT_NEGOTIATED"
    with pytest.raises(codec.ProtocolError) as e:
        codec.decompress("zlib", b"\x00garbage")
    assert e.value.code_name == "DECOMPRESSION_FAILED"


def test_inspect():
    text, end = codec.inspect(codec.encode_data((0, 7, 1), b"\xaa"))
    assert text.startswith("@0 DATA") and end == {"status": "complete"}
    _, end = codec.inspect(b"\x10\x00\x00")
    assert end["status"] == "incomplete"
    _, end = codec.inspect(bytes.fromhex("1700000000000000"))
    assert end["status"] == "invalid" and end["code_name"] == "UNKNOWN_KIND"
