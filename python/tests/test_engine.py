import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import fleetwire
from conftest import collect, of


def messages(events):
    return of(events, fleetwire.Message)


def test_send_and_receive_in_order_with_zero_copy_payloads(pair):
    eng, client, server = pair
    for i in range(1000):
        eng.send(client, (0, 1, 2), i.to_bytes(4, "big"), fleetwire.SNAPPY if i % 2 else 0)
    ev = collect(eng, lambda ev: len(messages(ev)) == 1000)
    got = messages(ev)
    assert [int.from_bytes(bytes(m.payload), "big") for m in got] == list(range(1000))
    m = got[0]
    assert (m.conn, m.route, m.node, m.service, m.channel) == (server, (0, 1, 2), 0, 1, 2)
    view = memoryview(m.payload)
    assert view.readonly and view.format == "B" and view.nbytes == 4 and len(m.payload) == 4
    with pytest.raises(TypeError):
        view[0] = 1  # read-only: the buffer is the engine's
    # The view keeps the bytes alive after the message and payload objects are gone.
    del m, got, ev
    gc.collect()
    assert bytes(view) == (0).to_bytes(4, "big")


def test_send_many_returns_at_once_and_echo_with_payload_objects(pair):
    eng, client, server = pair
    big = os.urandom(20_000)  # above the zero-copy send threshold
    batch = [((0, 1, 0), big), ((0, 1, 1), b"small"), ((0, 1, 2), bytearray(b"ba"), fleetwire.ZLIB)]
    assert eng.send_many(client, batch) == 3
    ev = collect(eng, lambda ev: len(messages(ev)) == 3)
    got = messages(ev)
    assert [bytes(m.payload) for m in got] == [big, b"small", b"ba"]
    # Answer with the received Payload objects (no copy) in one call.
    assert eng.send_many(server, [(m.route, m.payload) for m in got]) == 3
    ev = collect(eng, lambda ev: len(messages(ev)) == 3)
    assert [bytes(m.payload) for m in messages(ev)] == [big, b"small", b"ba"]
    assert all(m.conn == client for m in messages(ev))


def test_messages_kept_across_batches_stay_intact(pair):
    """Message objects come from a free list: ones kept while later batches are taken
    and dropped must not change."""
    eng, client, _ = pair
    kept = []
    for round_ in range(3):
        eng.send_many(client, [((0, 1, 0), f"{round_}:{i}".encode()) for i in range(500)])
        got = of(collect(eng, lambda ev: len(of(ev, fleetwire.Message)) >= 500), fleetwire.Message)
        kept.extend(got[:5])
        del got
        gc.collect()
    assert [bytes(m.payload) for m in kept] == [f"{r}:{i}".encode() for r in range(3) for i in range(5)]
    assert all(m.route == (0, 1, 0) for m in kept)


def test_errors_carry_the_spec_codes(pair):
    eng, client, _ = pair
    with pytest.raises(fleetwire.UnknownConnection) as e:
        eng.send(999_999, (0, 1, 0), b"x")
    assert e.value.code is None and isinstance(e.value, fleetwire.SendRefused)
    with pytest.raises(fleetwire.PayloadTooLarge) as e:
        eng.send(client, (0, 1, 0), b"x" * 65_536)
    assert (e.value.code, e.value.code_name) == (7, "PAYLOAD_TOO_LARGE")
    assert e.value.code == fleetwire.ERROR_CODES["PAYLOAD_TOO_LARGE"]
    with pytest.raises(TypeError):
        eng.send(client, (0, 1), b"x")
    with pytest.raises(ValueError):
        eng.send(client, (0, 1, 0), b"x", fleetwire.SNAPPY | fleetwire.ZLIB)
    with pytest.raises(TypeError):
        eng.send(client, (0, 1, 0), "text")


def test_ping_and_stats(pair):
    eng, client, server = pair
    assert eng.ping(client)
    assert not eng.ping(123_456)
    ev = collect(eng, lambda ev: len(of(ev, fleetwire.Pong)) == 1)
    pong = of(ev, fleetwire.Pong)[0]
    assert pong.conn == client and 0 <= pong.rtt < 1.0
    eng.send(client, (0, 1, 0), b"12345")
    collect(eng, lambda ev: len(messages(ev)) == 1)
    s = eng.stats(client)
    assert s["packets_out"] == 1 and s["payload_bytes_out"] == 5 and s["rtt"] is not None
    assert eng.stats(server)["packets_in"] == 1
    assert eng.stats(424242) is None


def test_close_is_graceful_and_idempotent():
    with fleetwire.Engine() as eng:
        lst = eng.listen("127.0.0.1", 0)
        conn = eng.connect("127.0.0.1", lst.port)
        for _ in range(100):
            eng.send(conn, (0, 1, 0), b"x" * 100)
        ev = collect(eng, lambda ev: len(messages(ev)) == 100)
        assert eng.close_conn(conn)
        ev = collect(eng, lambda ev: len(of(ev, fleetwire.Closed)) == 2)
        closed = {c.conn: c for c in of(ev, fleetwire.Closed)}
        assert closed[conn].code_name == "NO_ERROR" and closed[conn].delivered == 100
    assert eng.closed
    assert eng.close() is True
    with pytest.raises(fleetwire.EngineClosed):
        eng.send(conn, (0, 1, 0), b"x")


def test_tls_and_mutual_tls(tmp_path):
    from fleetwire.testing import write_test_pki

    p = write_test_pki(str(tmp_path))
    with fleetwire.Engine() as eng:
        # Server-authenticated TLS.
        lst = eng.listen("127.0.0.1", 0, tls=fleetwire.ServerTls(p["cert"], p["key"]))
        c = eng.connect("127.0.0.1", lst.port, tls=fleetwire.ClientTls(p["ca_cert"], "localhost"))
        eng.send(c, (0, 1, 0), b"over tls")
        ev = collect(eng, lambda ev: len(messages(ev)) == 1)
        assert bytes(messages(ev)[0].payload) == b"over tls"
        # Mutual TLS: a client without a certificate is refused, one with is accepted.
        mlst = eng.listen("127.0.0.1", 0, tls=fleetwire.ServerTls(p["cert"], p["key"], client_ca=p["ca_cert"]))
        bad = eng.connect("127.0.0.1", mlst.port, tls=fleetwire.ClientTls(p["ca_cert"]))
        ev = collect(eng, lambda ev: any(isinstance(e, fleetwire.Closed) and e.conn == bad for e in ev))
        good = eng.connect(
            "127.0.0.1",
            mlst.port,
            tls=fleetwire.ClientTls(p["ca_cert"], "localhost", cert=p["client_cert"], key=p["client_key"]),
        )
        eng.send(good, (0, 1, 0), b"mutual")
        ev = collect(eng, lambda ev: len(messages(ev)) == 1)
        assert bytes(messages(ev)[0].payload) == b"mutual"
    with pytest.raises(fleetwire.TlsConfigError):
        fleetwire.ServerTls(str(tmp_path / "missing.pem"), p["key"])
    with pytest.raises(fleetwire.TlsConfigError):
        fleetwire.ServerTls(p["key"], p["key"])  # a key is not a certificate


def test_gil_is_released_while_waiting(engine):
    entered = threading.Event()
    result = []

    def waiter():
        entered.set()
        result.append(engine.recv_batch(2.0))

    t = threading.Thread(target=waiter)
    t.start()
    entered.wait()
    time.sleep(0.05)  # let the waiter get into recv_batch
    start = time.monotonic()
    spins = 0
    while time.monotonic() - start < 0.3:
        spins += 1  # pure Python: runs only while nobody else holds the GIL
    elapsed = time.monotonic() - start
    assert t.is_alive(), "recv_batch returned early"
    assert elapsed < 1.0 and spins > 10_000
    t.join()
    assert result == [[]]


def test_slow_consumer_stays_within_the_budget():
    budget = 256 * 1024
    with fleetwire.Engine(recv_budget_bytes=budget, global_recv_budget_bytes=budget) as rx, fleetwire.Engine(
        send_queue_bytes=512 * 1024
    ) as tx:
        lst = rx.listen("127.0.0.1", 0)
        conn = tx.connect("127.0.0.1", lst.port)
        payload = b"p" * 1000
        sent, full = 0, 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # nobody reads on the receiving side
            try:
                sent += tx.send_many(conn, [((0, 1, 0), payload)] * 256)
            except fleetwire.QueueFull:
                full += 1
            if sent and tx.stats(conn)["send_queue_bytes"] >= 400 * 1024:
                time.sleep(0.01)
        now, high = rx.recv_queue_bytes()
        per_message = 1000 + 64  # payload + the engine's per-entry charge
        assert high <= budget + per_message, (high, budget)
        assert tx.stats(conn)["send_queue_bytes"] <= 512 * 1024
        assert sent > budget // per_message  # the budget was really reached
        # Nothing is lost: the consumer catches up and gets every message.
        got = 0
        end = time.monotonic() + 30
        while got < sent:
            assert time.monotonic() < end, (got, sent)
            got += len(messages(rx.recv_batch(0.5)))
        assert got == sent


PEER = textwrap.dedent(
    """
    import sys, fleetwire
    eng = fleetwire.Engine()
    conn = eng.connect("127.0.0.1", int(sys.argv[1]))
    print("go", flush=True)
    while True:
        try:
            eng.send_many(conn, [((0, 1, 0), b"s" * 200)] * 64)
        except fleetwire.QueueFull:
            eng.recv_batch(0.001)
    """
)


def test_peer_killed_mid_stream(engine):
    lst = engine.listen("127.0.0.1", 0)
    env = dict(os.environ)
    peer = subprocess.Popen([sys.executable, "-c", PEER, str(lst.port)], stdout=subprocess.PIPE, env=env)
    try:
        assert peer.stdout.readline().strip() == b"go"
        ev = collect(engine, lambda ev: len(messages(ev)) >= 1000)
        conn = of(ev, fleetwire.Accepted)[0].conn
    finally:
        peer.send_signal(signal.SIGKILL)
        peer.wait()
    ev = collect(engine, lambda ev: any(isinstance(e, fleetwire.Closed) for e in ev))
    closed = of(ev, fleetwire.Closed)[0]
    assert closed.conn == conn and closed.by_peer
    assert closed.code_name == "CONNECTION_LOST"
    # Messages before the kill are whole; the engine goes on serving others.
    assert all(bytes(m.payload) == b"s" * 200 for m in messages(ev))
    c = engine.connect("127.0.0.1", lst.port)
    engine.send(c, (0, 1, 0), b"still here")
    ev = collect(engine, lambda ev: len(messages(ev)) == 1)
    assert bytes(messages(ev)[0].payload) == b"still here"


def test_close_from_another_thread_ends_a_waiting_recv_batch():
    eng = fleetwire.Engine()
    out = []
    t = threading.Thread(target=lambda: out.append(eng.recv_batch(None)))
    t.start()
    time.sleep(0.1)
    start = time.monotonic()
    assert eng.close(2.0)
    t.join(5)
    assert not t.is_alive() and out == [[]]
    assert time.monotonic() - start < 2.0
    with pytest.raises(fleetwire.EngineClosed):
        eng.recv_batch(0)


def _sched_runtime(tid):
    """sched_getattr(2)'s sched_runtime of thread ``tid`` (0: this one): under EEVDF the
    slice in ns. OSError if the call is refused."""
    return _sched_attr(tid).runtime


def _sched_attr(tid):
    """sched_getattr(2) of thread ``tid`` (0: this one); OSError if refused."""
    import ctypes

    class Attr(ctypes.Structure):
        _fields_ = [
            ("size", ctypes.c_uint32), ("policy", ctypes.c_uint32), ("flags", ctypes.c_uint64),
            ("nice", ctypes.c_int32), ("prio", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
            ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64),
        ]

    libc = ctypes.CDLL(None, use_errno=True)
    sys_sched_getattr = {"x86_64": 315, "aarch64": 275}[os.uname().machine]
    a = Attr()
    if libc.syscall(sys_sched_getattr, tid, ctypes.byref(a), ctypes.sizeof(a), 0) != 0:
        raise OSError(ctypes.get_errno(), "sched_getattr")
    return a


def _io_thread_slices(before):
    """The slices of the IO threads started since ``before`` (this process's thread ids
    then)."""
    slices = []
    for tid in set(os.listdir("/proc/self/task")) - before:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if not f.read().startswith("fleetwire-io"):
                    continue
        except OSError:
            continue
        slices.append(_sched_runtime(int(tid)))
    return slices


def _kernel_takes_slices():
    if sys.platform != "linux" or os.uname().machine not in ("x86_64", "aarch64"):
        return False
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    if (major, minor) < (6, 12):
        return False
    # A sandbox may refuse the calls (seccomp): then there is nothing to test. The probe
    # sets a thread's attributes to what they are, on a thread of its own.
    result = []
    probe = threading.Thread(target=lambda: result.append(_set_unchanged()))
    probe.start()
    probe.join()
    return result == [True]


def _set_unchanged():
    """sched_setattr(2) of this thread with its own attributes: whether both calls work."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    sys_sched_setattr = {"x86_64": 314, "aarch64": 274}[os.uname().machine]
    try:
        a = _sched_attr(0)
    except OSError:
        return False
    if a.policy not in (0, 3):  # SCHED_OTHER, SCHED_BATCH
        return False
    a.size, a.flags = ctypes.sizeof(a), 0
    return libc.syscall(sys_sched_setattr, 0, ctypes.byref(a), 0) == 0


def _slices_become(before, expected):
    """The new IO threads' slices, once they are ``expected`` or after 5 s (a thread
    names itself and asks for its slice as it starts, after ``Engine()`` returned)."""
    deadline = time.monotonic() + 5
    while _io_thread_slices(before) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return _io_thread_slices(before)


def _tids():
    return set(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not _kernel_takes_slices(), reason="needs Linux 6.12 (EEVDF custom slices) and sched_getattr(2)")
def test_io_threads_ask_for_the_configured_scheduler_slice():
    # The slice this thread has, which a new thread inherits.
    before = _tids()
    with fleetwire.Engine(io_slice_us=None):
        deadline = time.monotonic() + 5
        while not _io_thread_slices(before) and time.monotonic() < deadline:
            time.sleep(0.01)
        (system,) = _io_thread_slices(before)
    # The bounds Linux accepts, each at exactly the limit.
    for us in (100, 100_000):
        assert us * 1000 != system
        before = _tids()
        with fleetwire.Engine(io_threads=2, io_slice_us=us):
            assert _slices_become(before, [us * 1000] * 2) == [us * 1000] * 2
    # The default is the shortest.
    before = _tids()
    with fleetwire.Engine():
        assert _slices_become(before, [100_000]) == [100_000]


@pytest.mark.parametrize("us", [0, 99, 100_001])
def test_io_slice_us_outside_what_linux_accepts_is_refused(us):
    with pytest.raises(ValueError, match="io_slice_us"):
        fleetwire.Engine(io_slice_us=us)
