import ctypes
import os
import shutil
import subprocess
import time

import pytest

import fleetwire
from conftest import collect, of


def messages(events):
    return of(events, fleetwire.Message)


def wait(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end
        time.sleep(0.01)


def test_echo_route_answers_on_the_io_threads(two):
    srv, cli, client, server = two
    counter = srv.route_echo(9)
    cli.send_many(client, [((0, 9, i), bytes([i]) * 10) for i in range(50)])
    cli.send(client, (0, 1, 0), b"for python")
    ev = collect(cli, lambda ev: len(messages(ev)) == 50)
    assert [m.route for m in messages(ev)] == [(0, 9, i) for i in range(50)]
    assert [bytes(m.payload) for m in messages(ev)] == [bytes([i]) * 10 for i in range(50)]
    # Service 9 never reached the server's Python; service 1 did.
    ev = collect(srv, lambda ev: len(messages(ev)) == 1)
    assert [bytes(m.payload) for m in messages(ev)] == [b"for python"]
    assert srv.recv_batch(0.1) == []
    assert counter.packets == 50 and counter.bytes == 500
    assert srv.stats(server)["handled_natively"] == 50
    srv.unroute(9)
    cli.send(client, (0, 9, 0), b"now python")
    ev = collect(srv, lambda ev: len(messages(ev)) == 1)
    assert messages(ev)[0].conn == server


def test_count_and_drop_routes(two):
    srv, cli, client, _ = two
    count = srv.route_count(5)
    dropped = srv.route_drop(6)
    cli.send_many(client, [((0, 5, 0), b"abc")] * 100 + [((0, 6, 0), b"z")] * 7)
    wait(lambda: count.packets == 100 and dropped.packets == 7)
    assert count.bytes == 300
    assert srv.recv_batch(0.2) == []


def test_forward_route(two):
    srv, cli, a, _ = two
    lst = srv.listen("127.0.0.1", 0)
    other = fleetwire.Engine()
    try:
        b = other.connect("127.0.0.1", lst.port)
        ev = collect(srv, lambda ev: len(of(ev, fleetwire.Connected)) == 1)
        b_server = of(ev, fleetwire.Accepted)[0].conn
        fwd = srv.route_forward(7, b_server)  # service 7, from anyone, goes out to b
        cli.send_many(a, [((0, 7, 1), b"to b %d" % i) for i in range(20)])
        ev = collect(other, lambda ev: len(messages(ev)) == 20)
        assert all(m.conn == b and m.route == (0, 7, 1) for m in messages(ev))
        assert [bytes(m.payload) for m in messages(ev)] == [b"to b %d" % i for i in range(20)]
        assert fwd.packets == 20 and fwd.failed == 0
        with pytest.raises(fleetwire.UnknownConnection):
            srv.route_forward(8, 987654)
    finally:
        other.close(2.0)


C_HANDLER = r"""
#include "fleetwire_handler.h"
/* Answers every message with its payload reversed, on the same route. */
void reverse(void *user, const fw_message *m, void *reply, fw_reply_fn send) {
    unsigned char buf[256];
    size_t n = m->len < sizeof buf ? m->len : sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = m->payload[m->len - 1 - i];
    (*(unsigned long *)user)++;
    send(reply, m->node, m->service, m->channel, buf, n);
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_c_abi_handler(two, tmp_path):
    srv, cli, client, _ = two
    include = os.path.join(os.path.dirname(__file__), "..", "include")
    src = tmp_path / "reverse.c"
    src.write_text(C_HANDLER)
    lib = tmp_path / "libreverse.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-I", include, str(src), "-o", str(lib)], check=True)
    so = ctypes.CDLL(str(lib))
    calls = ctypes.c_ulong(0)
    fn = ctypes.cast(so.reverse, ctypes.c_void_p).value
    counter = srv.route_c(4, fn, ctypes.addressof(calls))
    cli.send_many(client, [((0, 4, 0), b"abc"), ((0, 4, 1), b"hello")])
    ev = collect(cli, lambda ev: len(messages(ev)) == 2)
    assert [bytes(m.payload) for m in messages(ev)] == [b"cba", b"olleh"]
    assert [m.route for m in messages(ev)] == [(0, 4, 0), (0, 4, 1)]
    assert calls.value == 2 and counter.packets == 2
    srv.unroute(4)
    with pytest.raises(ValueError):
        srv.route_c(4, 0)
