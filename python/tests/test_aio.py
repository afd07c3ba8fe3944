import asyncio

import fleetwire
from fleetwire.aio import Receiver


def test_asyncio_receive_wakes_the_loop_through_a_descriptor():
    async def main():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        with fleetwire.Engine() as eng:
            rx = Receiver(eng)
            t = asyncio.ensure_future(ticker())
            # Nothing arrives: the loop keeps running other tasks meanwhile.
            assert await rx.recv_batch(timeout=0.2) == []
            assert ticks > 20
            lst = eng.listen("127.0.0.1", 0)
            conn = eng.connect("127.0.0.1", lst.port)
            got = []

            async def later():
                await asyncio.sleep(0.05)
                eng.send_many(conn, [((0, 1, 0), b"%d" % i) for i in range(500)])

            asyncio.ensure_future(later())
            while len(got) < 500:
                batch = await rx.recv_batch(timeout=5)
                assert batch, "timed out"
                got += [bytes(e.payload) for e in batch if isinstance(e, fleetwire.Message)]
            assert got == [b"%d" % i for i in range(500)]
            stop = True
            await t

    asyncio.run(main())
