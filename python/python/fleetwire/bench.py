"""The benchmark that matters to a Python server: ``python -m fleetwire.bench``.

One run, side by side, alternating, medians: for 64 B and 1 KiB messages, plaintext
and TLS (CURVE for zmq), one way and echo:

- **ours**: a Python loop draining ``Engine.recv_batch`` and answering with
  ``send_many`` (reading, TLS, framing and writing on the engine's IO thread);
- **asyncio**: streams with a 4-byte length prefix (``ssl`` for TLS), and the same on
  **uvloop** (optional: ``pip install uvloop``);
- **zmq**: pyzmq PUSH/PULL (one way) and DEALER/ROUTER (echo), CURVE for the secure
  rows (optional: ``pip install pyzmq``).

Each measurement runs the server under test in a fresh process (its main thread is "the
Python thread") and a load generator in another; the orchestrating process is idle.
Measured in the server: messages per second into the Python thread (and out of it, for
echo), CPU of the Python thread per message (``time.thread_time``) and of the whole
server process (``time.process_time``: the IO threads too).

Then: ping round-trip p50/p99 while the server's Python thread runs a simulated game
tick holding the GIL 5 ms of every 10 ms (ours: PONGs come from the IO threads; the
others answer an application-level ping from their loop), with two controls: ours with
no tick, and ours whose IO threads keep the system's scheduler slice (``Engine``'s
``io_slice_us=None``); and messages per second through a native route (echo, count)
with the Python thread idle.

Rounds alternate the contenders in the same run; the report gives medians and ratios.
On a shared machine the absolute numbers move; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

ROUTE = (0, 1, 0)
NATIVE_SERVICE = 9
WARMUP = 0.3


TICK = "spin"  # how the ping servers' game tick holds the GIL (--tick)


def spin(seconds: float) -> None:
    """Holds the GIL for ``seconds`` (a game tick's work): busy (``--tick spin``, the
    default), or asleep in a C call that keeps the GIL (``--tick hold``: the GIL is
    taken but no CPU, which tells the lock's effect from the core's)."""
    if TICK == "hold":
        import ctypes

        ctypes.PyDLL(None).usleep(int(seconds * 1e6))  # PyDLL: the GIL stays held
        return
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Meter:
    """Counts messages after a warm-up and reports rates and CPU at the end."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.n_in = 0
        self.n_out = 0
        self.start: Optional[float] = None
        self.t0 = self.c0 = self.p0 = 0.0
        self.base_in = self.base_out = 0
        self.first: Optional[float] = None
        self.result: Optional[Dict[str, Any]] = None

    def tick(self) -> bool:
        """Call often; returns True when the measurement is over."""
        now = time.perf_counter()
        if self.first is None:
            if self.n_in == 0:
                return False
            self.first = now
        if self.start is None:
            if now - self.first >= WARMUP:
                self.start, self.t0, self.c0, self.p0 = now, now, time.thread_time(), time.process_time()
                self.base_in, self.base_out = self.n_in, self.n_out
            return False
        if now - self.start < self.duration:
            return False
        wall = now - self.t0
        n_in, n_out = self.n_in - self.base_in, self.n_out - self.base_out
        per = max(n_in, 1)
        self.result = {
            "in_per_s": n_in / wall,
            "out_per_s": n_out / wall,
            "thread_cpu_us_per_msg": (time.thread_time() - self.c0) / per * 1e6,
            "process_cpu_us_per_msg": (time.process_time() - self.p0) / per * 1e6,
            "messages": n_in,
        }
        return True


def report(result: Dict[str, Any]) -> None:
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def announce(port: int) -> None:
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- ours


def ours_tls(args: argparse.Namespace, server: bool) -> Any:
    import fleetwire

    if not args.tls:
        return None
    if server:
        return fleetwire.ServerTls(args.pki["cert"], args.pki["key"])
    return fleetwire.ClientTls(args.pki["ca_cert"], "localhost")


def engine_options(args: argparse.Namespace) -> Dict[str, Any]:
    """``--system-slice`` (the control row ``ours-system-slice``): the IO threads keep
    the system's scheduler slice instead of asking for a short one."""
    return {"io_slice_us": None} if args.system_slice else {}


def server_ours(args: argparse.Namespace) -> None:
    import fleetwire

    Message = fleetwire.Message
    eng = fleetwire.Engine(io_threads=1, **engine_options(args))
    lst = eng.listen("127.0.0.1", 0, tls=ours_tls(args, True))
    announce(lst.port)
    m = Meter(args.duration)
    if args.mode == "ping":
        tick_loop_ours(eng, args)
        return
    if args.native:
        counter = eng.route_echo(NATIVE_SERVICE) if args.mode == "echo" else eng.route_count(NATIVE_SERVICE)
        while True:
            time.sleep(0.01)  # the Python thread is idle
            m.n_in = counter.packets
            m.n_out = counter.packets if args.mode == "echo" else 0
            if m.tick():
                break
        report(m.result)
        return
    echo = args.mode == "echo"
    while True:
        events = eng.recv_batch(0.5)
        out = []
        conn = 0
        for e in events:
            if type(e) is Message:
                m.n_in += 1
                if echo:
                    conn = e.conn
                    out.append((e.route, e.payload))
        while out:
            k = eng.send_many(conn, out)
            m.n_out += k
            del out[:k]
            if out:
                time.sleep(0.0001)  # the send queue is full: let the IO thread write
        if m.tick():
            break
    report(m.result)


def tick_loop_ours(eng: Any, args: argparse.Namespace) -> None:
    import fleetwire

    Message = fleetwire.Message
    end = time.perf_counter() + args.duration + 5
    while time.perf_counter() < end:
        if not args.idle:
            spin(0.005)  # the game tick, GIL held
        t = time.perf_counter() + 0.005
        while time.perf_counter() < t:  # the rest of the 10 ms: network work
            for e in eng.recv_batch(max(0.0, t - time.perf_counter())):
                if type(e) is Message:
                    eng.send(e.conn, e.route, e.payload)


def client_ours(args: argparse.Namespace) -> None:
    import fleetwire
    import fleetwire._native

    if args.mode == "ping":
        eng = fleetwire.Engine(io_threads=1, **engine_options(args))
        ping_ours(eng, eng.connect("127.0.0.1", args.port, tls=ours_tls(args, False)), args)
        return
    # The generator's loop is native (as the others' sendall loops are C): only the
    # server's Python thread is under test.
    route = (0, NATIVE_SERVICE, 0) if args.native else ROUTE
    fleetwire._native.bench_load(
        "127.0.0.1", args.port, args.size, 3600.0, route=route, echo=args.mode == "echo", tls=ours_tls(args, False)
    )


def ping_ours(eng: Any, conn: int, args: argparse.Namespace) -> None:
    import fleetwire

    rtts: List[float] = []
    # Wait for the handshake.
    while not any(isinstance(e, fleetwire.Connected) for e in eng.recv_batch(1.0)):
        pass
    end = time.perf_counter() + args.duration + WARMUP
    start = time.perf_counter() + WARMUP
    while time.perf_counter() < end:
        eng.ping(conn)
        deadline = time.perf_counter() + 0.1
        got = False
        while not got and time.perf_counter() < deadline:
            for e in eng.recv_batch(0.05):
                if isinstance(e, fleetwire.Pong):
                    if time.perf_counter() > start:
                        rtts.append(e.rtt)
                    got = True
        time.sleep(0.002)
    report(rtt_summary(rtts))


def rtt_summary(rtts: List[float]) -> Dict[str, Any]:
    if not rtts:
        return {"p50_ms": None, "p99_ms": None, "samples": 0}
    s = sorted(rtts)
    return {
        "p50_ms": s[len(s) // 2] * 1e3,
        "p99_ms": s[min(len(s) - 1, int(len(s) * 0.99))] * 1e3,
        "samples": len(s),
    }


# ---------------------------------------------------------------- asyncio / uvloop


def server_asyncio(args: argparse.Namespace) -> None:
    import asyncio
    import ssl

    if args.impl == "uvloop":
        import uvloop

        uvloop.install()
    ctx = None
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.pki["cert"], args.pki["key"])
    m = Meter(args.duration)
    echo = args.mode == "echo"

    async def handle(reader: Any, writer: Any) -> None:
        try:
            while True:
                hdr = await reader.readexactly(4)
                body = await reader.readexactly(int.from_bytes(hdr, "big"))
                m.n_in += 1
                if echo or args.mode == "ping":
                    writer.write(hdr + body)
                    m.n_out += 1
                    if writer.transport.get_write_buffer_size() > 1 << 20:
                        await writer.drain()
                if m.n_in & 255 == 0 and args.mode != "ping" and m.tick():
                    done.set_result(None)
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def tick() -> None:
        while True:
            spin(0.005)
            await asyncio.sleep(0.005)

    async def main() -> None:
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        announce(srv.sockets[0].getsockname()[1])
        if args.mode == "ping":
            await tick_for(args.duration + 5)
        else:
            await done
            report(m.result)

    async def tick_for(seconds: float) -> None:
        try:
            await asyncio.wait_for(tick(), seconds)
        except asyncio.TimeoutError:
            pass

    done: Any = None
    asyncio.run(main())


def stream_socket(args: argparse.Namespace) -> socket.socket:
    import ssl

    s = socket.create_connection(("127.0.0.1", args.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if args.tls:
        ctx = ssl.create_default_context(cafile=args.pki["ca_cert"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s


def client_stream(args: argparse.Namespace) -> None:
    """The load generator for the length-prefixed servers: prebuilt chunks, sendall."""
    s = stream_socket(args)
    if args.mode == "ping":
        ping_stream(s, args)
        return
    msg = args.size.to_bytes(4, "big") + b"x" * args.size
    chunk = msg * max(1, 65536 // len(msg))
    if args.mode != "echo":
        while True:
            s.sendall(chunk)
    # Echo: one thread (an SSL socket is not for two), non-blocking, reads dropped.
    import selectors
    import ssl

    again = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    view, pos = memoryview(chunk), 0
    while True:
        for _, ev in sel.select():
            if ev & selectors.EVENT_READ:
                try:
                    while s.recv(1 << 20):
                        pass
                except again:
                    pass
            if ev & selectors.EVENT_WRITE:
                try:
                    pos = (pos + s.send(view[pos:])) % len(chunk)
                except again:
                    pass


def ping_stream(s: socket.socket, args: argparse.Namespace) -> None:
    rtts: List[float] = []
    start = time.perf_counter() + WARMUP
    end = start + args.duration
    while time.perf_counter() < end:
        t = time.perf_counter()
        s.sendall((8).to_bytes(4, "big") + int(t * 1e9).to_bytes(8, "big"))
        got = b""
        while len(got) < 12:
            got += s.recv(12 - len(got))
        if t > start:
            rtts.append(time.perf_counter() - t)
        time.sleep(0.002)
    report(rtt_summary(rtts))


# ---------------------------------------------------------------- zmq


def zmq_keys(args: argparse.Namespace) -> Dict[str, bytes]:
    return {k: v.encode() for k, v in args.curve.items()}


def server_zmq(args: argparse.Namespace) -> None:
    import zmq

    ctx = zmq.Context(io_threads=1)
    kind = zmq.PULL if args.mode == "oneway" else zmq.ROUTER
    s = ctx.socket(kind)
    if args.tls:
        k = zmq_keys(args)
        s.curve_server = True
        s.curve_secretkey = k["server_secret"]
        s.curve_publickey = k["server_public"]
    port = s.bind_to_random_port("tcp://127.0.0.1")
    announce(port)
    m = Meter(args.duration)
    if args.mode == "ping":
        end = time.perf_counter() + args.duration + 5
        poller = zmq.Poller()
        poller.register(s, zmq.POLLIN)
        while time.perf_counter() < end:
            spin(0.005)
            t = time.perf_counter() + 0.005
            while time.perf_counter() < t:
                if poller.poll(max(0, int((t - time.perf_counter()) * 1000))):
                    while True:
                        try:
                            parts = s.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        s.send_multipart(parts)
        return
    if args.mode == "oneway":
        recv = s.recv
        while True:
            recv()
            m.n_in += 1
            if m.n_in & 255 == 0 and m.tick():
                break
    else:
        recv, send = s.recv_multipart, s.send_multipart
        while True:
            parts = recv()
            send(parts)
            m.n_in += 1
            m.n_out += 1
            if m.n_in & 255 == 0 and m.tick():
                break
    report(m.result)
    s.close(linger=0)
    ctx.term()


def client_zmq(args: argparse.Namespace) -> None:
    import zmq

    ctx = zmq.Context(io_threads=1)
    kind = zmq.PUSH if args.mode == "oneway" else zmq.DEALER
    s = ctx.socket(kind)
    if args.tls:
        k = zmq_keys(args)
        s.curve_serverkey = k["server_public"]
        s.curve_publickey = k["client_public"]
        s.curve_secretkey = k["client_secret"]
    s.connect(f"tcp://127.0.0.1:{args.port}")
    payload = b"x" * args.size
    if args.mode == "ping":
        rtts: List[float] = []
        start = time.perf_counter() + WARMUP
        end = start + args.duration
        while time.perf_counter() < end:
            t = time.perf_counter()
            s.send(payload[:8])
            s.recv()
            if t > start:
                rtts.append(time.perf_counter() - t)
            time.sleep(0.002)
        report(rtt_summary(rtts))
        return
    send = s.send
    if args.mode == "oneway":
        while True:
            for _ in range(1024):
                send(payload)
    while True:
        for _ in range(256):
            send(payload)
        while True:
            try:
                s.recv(zmq.NOBLOCK)
            except zmq.Again:
                break


# ---------------------------------------------------------------- orchestration

SERVERS = {"ours": server_ours, "asyncio": server_asyncio, "uvloop": server_asyncio, "zmq": server_zmq}
CLIENTS = {"ours": client_ours, "asyncio": client_stream, "uvloop": client_stream, "zmq": client_zmq}
# The optional contenders: the module each imports and the package that provides it.
OPTIONAL = {"uvloop": ("uvloop", "uvloop"), "zmq": ("zmq", "pyzmq")}
# Throughput figures summarised against each baseline: (label, key, unit, higher is better).
FIGURES = (
    ("in msg/s", "in_per_s", "msg/s", True),
    ("py-cpu", "thread_cpu_us_per_msg", "us/msg", False),
)
PING_FIGURES = (("p50", "p50_ms"), ("p99", "p99_ms"))


def missing(impl: str) -> Optional[str]:
    """Why ``impl`` cannot run here (e.g. ``"uvloop not installed"``), or None."""
    if impl not in OPTIONAL:
        return None
    module, package = OPTIONAL[impl]
    try:
        __import__(module)
        return None
    except ImportError:
        return f"{package} not installed"


def available(impl: str) -> bool:
    return missing(impl) is None


def child_args(
    ns: argparse.Namespace,
    role: str,
    impl: str,
    mode: str,
    size: int,
    tls: bool,
    native: bool,
    port: int = 0,
    idle: bool = False,
    system_slice: bool = False,
) -> List[str]:
    return [
        sys.executable, "-m", "fleetwire.bench", "--role", role, "--impl", impl, "--mode", mode,
        "--size", str(size), "--duration", str(ns.duration), "--port", str(port),
        "--secrets", ns.secrets, "--tick", ns.tick,
    ] + (["--tls"] if tls else []) + (["--native"] if native else []) + (["--idle"] if idle else []) + (
        ["--system-slice"] if system_slice else []
    )


def run_one(
    ns: argparse.Namespace,
    impl: str,
    mode: str,
    size: int,
    tls: bool,
    native: bool = False,
    idle: bool = False,
    system_slice: bool = False,
) -> Optional[Dict[str, Any]]:
    """One measurement: server and generator processes; returns the measuring side's
    RESULT (the server's, or the pinger's for ping). ``idle``: the ping server runs no
    game tick (a control row); ``system_slice``: ours with the system's scheduler slice
    on both ends (the other control row)."""
    quiet = None if ns.verbose else subprocess.DEVNULL  # killed children's tracebacks
    server = subprocess.Popen(
        child_args(ns, "server", impl, mode, size, tls, native, idle=idle, system_slice=system_slice), stdout=subprocess.PIPE, stderr=quiet, text=True
    )
    client = None
    try:
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            return None
        port = int(line.split()[1])
        client = subprocess.Popen(
            child_args(ns, "client", impl, mode, size, tls, native, port, system_slice=system_slice),
            stdout=subprocess.PIPE if mode == "ping" else subprocess.DEVNULL,
            stderr=quiet,
            text=True,
        )
        src = client if mode == "ping" else server
        deadline = time.monotonic() + ns.duration + 30
        for line in src.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[7:])
            if time.monotonic() > deadline:
                break
        return None
    finally:
        for p in (client, server):
            if p is not None and p.poll() is None:
                p.kill()
        for p in (client, server):
            if p is not None:
                p.wait()


def alternate(ns: argparse.Namespace, names: List[str], run: Callable[[str], Optional[Dict[str, Any]]]) -> Dict[str, List[Dict[str, Any]]]:
    """``ns.rounds`` rounds of ``run(name)`` for every name, the order reversed every
    other round; a failed run counts as ``{}``."""
    rows: Dict[str, List[Dict[str, Any]]] = {n: [] for n in names}
    for r in range(ns.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            rows[name].append(run(name) or {})
    return rows


def median(rows: List[Dict[str, Any]], key: str) -> Optional[float]:
    vals = [r[key] for r in rows if r and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v: Optional[float], spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def summary(name: str, unit: str, ours: Optional[float], baseline: Optional[float], higher_is_better: bool, skipped: Optional[str] = None) -> Dict[str, Any]:
    """One row in the shape of ``fleetwire bench --json``: ``ratio`` is how many times
    better ours is (None when either side has no figure); ``skipped`` says why the
    baseline did not run."""
    ratio = None
    if ours and baseline:
        ratio = ours / baseline if higher_is_better else baseline / ours
    row = {"name": name, "unit": unit, "ours": ours, "baseline": baseline, "ratio": ratio}
    if skipped:
        row["skipped"] = skipped
    return row


def against_baselines(
    prefix: str, figures: Any, rows: Dict[str, List[Dict[str, Any]]], baselines: List[str], skipped: Dict[str, str]
) -> List[Dict[str, Any]]:
    """Summary rows of ours against every baseline asked for, one per figure; a
    baseline that could not run gives a row that says so (no figure is made up)."""
    out = []
    for label, key, unit, higher in figures:
        ours = median(rows.get("ours", []), key)
        for b in baselines:
            name = f"{prefix} {label} vs {b}"
            if b in skipped:
                out.append(summary(name, unit, ours, None, higher, skipped=skipped[b]))
            else:
                out.append(summary(name, unit, ours, median(rows.get(b, []), key), higher))
    return out


def print_throughput(title: str, impls: List[str], rows: Dict[str, List[Dict[str, Any]]], skipped: Dict[str, str]) -> None:
    print(f"\n## {title}")
    print(f"{'impl':9} {'in msg/s':>12} {'out msg/s':>12} {'py-thread us/msg':>17} {'process us/msg':>15} {'in ratio':>9} {'cpu ratio':>9}")
    base_in = median(rows.get("ours", []), "in_per_s")
    base_cpu = median(rows.get("ours", []), "thread_cpu_us_per_msg")
    for impl in impls:
        if impl in skipped:
            print(f"{impl:9} skipped: {skipped[impl]}")
            continue
        i = median(rows[impl], "in_per_s")
        c = median(rows[impl], "thread_cpu_us_per_msg")
        ratio = (base_in / i) if (base_in and i) else None
        cratio = (c / base_cpu) if (base_cpu and c) else None
        print(
            f"{impl:9} {fmt(i):>12} {fmt(median(rows[impl], 'out_per_s')):>12} {fmt(c, '.3f'):>17} "
            f"{fmt(median(rows[impl], 'process_cpu_us_per_msg'), '.3f'):>15} "
            f"{('ours ' + format(ratio, '.2f') + 'x') if ratio and impl != 'ours' else '':>9} "
            f"{(format(cratio, '.1f') + 'x') if cratio and impl != 'ours' else '':>9}"
        )


def throughput_group(ns: argparse.Namespace, impls: List[str], skipped: Dict[str, str], results: Dict[str, Any]) -> None:
    """Messages/s into (and out of) the Python thread and its CPU per message."""
    sizes = [int(s) for s in ns.sizes.split(",")]
    tlss = {"plain": [False], "tls": [True], "both": [False, True]}[ns.security]
    baselines = [i for i in ns.impls.split(",") if i != "ours"]
    runnable = [i for i in impls if i not in skipped]
    for mode in [m for m in ns.modes.split(",") if m in ("oneway", "echo")]:
        for tls in tlss:
            for size in sizes:
                rows = alternate(ns, runnable, lambda impl: run_one(ns, impl, mode, size, tls))
                print_throughput(f"{mode}, {size} B, {'TLS (zmq: CURVE)' if tls else 'plaintext'}", impls, rows, skipped)
                results["throughput"].append({"mode": mode, "size": size, "tls": tls, "runs": rows})
                prefix = f"py {mode} {size}B {'tls' if tls else 'plaintext'}"
                results["summary"].extend(against_baselines(prefix, FIGURES, rows, baselines, skipped))


def ping_group(ns: argparse.Namespace, impls: List[str], skipped: Dict[str, str], results: Dict[str, Any]) -> None:
    """Ping RTT while the server's Python thread holds the GIL 5 ms of every 10 ms; two
    controls: ``ours-idle`` (no tick: what this machine gives without it) and, when ours
    runs, ``ours-system-slice`` (the tick, and IO threads that keep the system's
    scheduler slice: what ``Engine(io_slice_us=…)`` buys)."""
    controls = ["ours-system-slice"] if "ours" in impls and "ours" not in skipped else []
    controls.append("ours-idle")
    names = [i for i in impls if i not in skipped] + controls

    def run(n: str) -> Optional[Dict[str, Any]]:
        if n == "ours-idle":
            return run_one(ns, "ours", "ping", 64, False, idle=True)
        if n == "ours-system-slice":
            return run_one(ns, "ours", "ping", 64, False, system_slice=True)
        return run_one(ns, n, "ping", 64, False)

    rows = alternate(ns, names, run)
    how = "spinning" if ns.tick == "spin" else "asleep in a C call (--tick hold)"
    print(f"\n## ping RTT while the server's Python thread holds the GIL 5 ms of every 10 ms, {how} (plaintext)")
    print(f"{'impl':17} {'p50 ms':>8} {'p99 ms':>8} {'samples':>8}")
    for impl in impls + controls:
        if impl in skipped:
            print(f"{impl:17} skipped: {skipped[impl]}")
            continue
        print(f"{impl:17} {fmt(median(rows[impl], 'p50_ms'), '.3f'):>8} {fmt(median(rows[impl], 'p99_ms'), '.3f'):>8} {fmt(median(rows[impl], 'samples'), '.0f'):>8}")
    print("(ours-idle: ours with no tick; ours-system-slice: the IO threads keep the system's scheduler slice)")
    results["ping"] = rows
    baselines = [i for i in ns.impls.split(",") if i != "ours"]
    figures = [(f"{p} ms", key, "ms", False) for p, key in PING_FIGURES]
    results["summary"].extend(against_baselines("py ping GIL-tick", figures, rows, baselines, skipped))
    results["summary"].append(summary("py ping no-tick p99 (control)", "ms", median(rows["ours-idle"], "p99_ms"), None, False))
    if "ours-system-slice" in rows:
        # ours against itself with the system's slice: the ratio is what the short slice buys
        results["summary"].append(
            summary(
                "py ping GIL-tick p99 vs system slice",
                "ms",
                median(rows["ours"], "p99_ms"),
                median(rows["ours-system-slice"], "p99_ms"),
                False,
            )
        )


def native_group(ns: argparse.Namespace, results: Dict[str, Any]) -> None:
    """Messages/s through a native route on the IO threads, the Python thread idle."""
    sizes = [int(s) for s in ns.sizes.split(",")]
    print("\n## native routes on the IO threads, Python thread idle (ours only)")
    print(f"{'route':9} {'size':>6} {'msg/s':>12} {'process us/msg':>15}")
    for mode, name in (("oneway", "count"), ("echo", "echo")):
        for size in sizes:
            rs = [run_one(ns, "ours", mode, size, False, native=True) or {} for _ in range(ns.rounds)]
            print(f"{name:9} {size:>6} {fmt(median(rs, 'in_per_s')):>12} {fmt(median(rs, 'process_cpu_us_per_msg'), '.3f'):>15}")
            results["native"].append({"route": name, "size": size, "runs": rs})
            results["summary"].append(summary(f"py native {name} {size}B, Python idle", "msg/s", median(rs, "in_per_s"), None, True))


def orchestrate(ns: argparse.Namespace) -> int:
    impls = ns.impls.split(",")
    skipped = {i: why for i in impls for why in [missing(i)] if why}
    print(f"# fleetwire.bench: {ns.rounds} alternating rounds, {ns.duration}s per measurement, cpus={os.cpu_count()}")
    print("# (the machine may be shared: read the ratios, which come from the same rounds)")
    for impl, why in skipped.items():
        print(f"# {impl}: skipped: {why}")
    results: Dict[str, Any] = {"throughput": [], "ping": {}, "native": [], "skipped": skipped, "summary": []}
    modes = ns.modes.split(",")
    throughput_group(ns, impls, skipped, results)
    if "ping" in modes:
        ping_group(ns, impls, skipped, results)
    if "native" in modes:
        native_group(ns, results)
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fleetwire.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per row (default 3)")
    p.add_argument("--duration", type=float, default=1.0, help="seconds measured per run (default 1.0)")
    p.add_argument("--sizes", default="64,1024")
    p.add_argument("--security", choices=["plain", "tls", "both"], default="both")
    p.add_argument("--modes", default="oneway,echo,ping,native")
    p.add_argument("--impls", default="ours,asyncio,uvloop,zmq")
    p.add_argument(
        "--json",
        help="write every run's figures to this file, and under 'summary' the medians and ratios against each "
        "baseline in the shape of `fleetwire bench --json` (what `fleetwire bench --python` reads)",
    )
    p.add_argument(
        "--tick",
        choices=["spin", "hold"],
        default="spin",
        help="the ping rows' game tick: spin (busy, GIL held; default) or hold (GIL held asleep, no CPU)",
    )
    p.add_argument("--verbose", action="store_true", help="show the child processes' errors")
    # internal: the child processes
    p.add_argument("--role", choices=["server", "client"], help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--tls", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--native", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--idle", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--system-slice", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--secrets", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    unknown = [i for i in ns.impls.split(",") if i not in SERVERS]
    if unknown:
        p.error(f"--impls: unknown {', '.join(unknown)} (expected some of {', '.join(SERVERS)})")
    global TICK
    TICK = ns.tick
    if ns.role:
        with open(ns.secrets) as f:
            secrets = json.load(f)
        ns.pki, ns.curve = secrets["pki"], secrets["curve"]
        (SERVERS if ns.role == "server" else CLIENTS)[ns.impl](ns)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        from .testing import write_test_pki

        curve: Dict[str, str] = {}
        if available("zmq"):
            import zmq

            sp, ss = zmq.curve_keypair()
            cp, cs = zmq.curve_keypair()
            curve = {"server_public": sp.decode(), "server_secret": ss.decode(), "client_public": cp.decode(), "client_secret": cs.decode()}
        ns.secrets = os.path.join(tmp, "secrets.json")
        with open(ns.secrets, "w") as f:
            json.dump({"pki": write_test_pki(tmp), "curve": curve}, f)
        return orchestrate(ns)


if __name__ == "__main__":
    sys.exit(main())
