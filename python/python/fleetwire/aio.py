"""asyncio integration: await a batch of events without a polling thread.

The engine makes a file descriptor readable when events arrive while none were
waiting (``Engine.wake_fd``, a socket pair written from the IO threads); the event
loop watches it with ``add_reader`` and takes the whole batch when it fires.

    import asyncio, fleetwire
    from fleetwire.aio import Receiver

    async def main():
        with fleetwire.Engine() as eng:
            rx = Receiver(eng)
            lst = eng.listen("127.0.0.1", 0)
            conn = eng.connect("127.0.0.1", lst.port)
            eng.send(conn, (0, 1, 0), b"hi")
            while True:
                for ev in await rx.recv_batch(timeout=5):
                    if isinstance(ev, fleetwire.Message):
                        return bytes(ev.payload)

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, List, Optional

from ._native import Engine

__all__ = ["Receiver"]


class Receiver:
    """Awaitable batch receive on one engine. Use one Receiver per engine, and do not
    mix it with blocking ``Engine.recv_batch`` calls from other threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Installs the engine's ready hook before the first check: events that arrive
        # after a check that found none always make the descriptor readable.
        self._fd = engine.wake_fd()
        self._pending: List[object] = []

    def _take(self) -> List[object]:
        self.engine.clear_wake_fd()
        events = self.engine.recv_batch(0)
        if self._pending:
            events = self._pending + events
            self._pending = []
        return events

    async def recv_batch(self, timeout: Optional[float] = None) -> List[object]:
        """Every ready event; waits (without blocking the loop) until at least one is
        ready, or ``timeout`` seconds (None: forever), then returns [] ."""
        events = self._take()
        if events:
            return events
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[List[object]] = loop.create_future()

        def on_ready() -> None:
            ev = self._take()
            if not ev:
                return  # a spurious wake-up: keep waiting
            if fut.done():  # cancelled or timed out meanwhile: keep them for later
                self._pending.extend(ev)
            else:
                fut.set_result(ev)

        loop.add_reader(self._fd, on_ready)
        try:
            if timeout is None:
                return await fut
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                return []
        finally:
            loop.remove_reader(self._fd)

    def __aiter__(self) -> AsyncIterator[List[object]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[List[object]]:
        while True:
            yield await self.recv_batch()
