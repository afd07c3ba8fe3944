import time
from typing import Callable, List

import pytest

import fleetwire


def collect(eng: fleetwire.Engine, until: Callable[[List[object]], bool], timeout: float = 10.0) -> List[object]:
    """Takes events until ``until(events_so_far)`` holds; fails after ``timeout``."""
    events: List[object] = []
    deadline = time.monotonic() + timeout
    while not until(events):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {events[-5:]}"
        events.extend(eng.recv_batch(min(left, 0.5)))
    return events


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


@pytest.fixture
def engine():
    eng = fleetwire.Engine(io_threads=1)
    yield eng
    eng.close(2.0)


@pytest.fixture
def pair(engine):
    """(engine, client conn, server conn), connected, plaintext."""
    lst = engine.listen("127.0.0.1", 0)
    client = engine.connect("127.0.0.1", lst.port)
    ev = collect(engine, lambda ev: len(of(ev, fleetwire.Connected)) == 2)
    server = of(ev, fleetwire.Accepted)[0].conn
    return engine, client, server


@pytest.fixture
def two():
    """(server engine, client engine, client conn, server conn): native routes are
    per engine, so tests of them keep the two ends apart."""
    srv, cli = fleetwire.Engine(), fleetwire.Engine()
    lst = srv.listen("127.0.0.1", 0)
    client = cli.connect("127.0.0.1", lst.port)
    collect(cli, lambda ev: len(of(ev, fleetwire.Connected)) == 1)
    ev = collect(srv, lambda ev: len(of(ev, fleetwire.Connected)) == 1)
    yield srv, cli, client, of(ev, fleetwire.Accepted)[0].conn
    cli.close(2.0)
    srv.close(2.0)
