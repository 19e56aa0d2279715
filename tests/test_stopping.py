"""The server's stop as the live streams see it (reminders.api.stopping)."""

from __future__ import annotations

import asyncio
import threading
import time

from reminders.api.stopping import Stopping


def test_waits_on_several_event_loops_all_end_when_the_stop_begins() -> None:
    # Each TestClient (and each server) runs its own loop; one app's Stopping serves them all.
    stopping = Stopping()
    ended: dict[int, tuple[bool, float]] = {}
    waiting = threading.Barrier(4)

    def stream(i: int) -> None:
        async def run() -> None:
            started = time.monotonic()
            waiting.wait()
            got = await stopping.wait(30)
            ended[i] = (got, time.monotonic() - started)

        asyncio.run(run())

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    waiting.wait()
    time.sleep(0.2)  # the three are inside wait()
    assert not ended
    stopping.begin()
    for thread in threads:
        thread.join(5)
    assert sorted(ended) == [0, 1, 2]
    assert all(got and took < 10 for got, took in ended.values()), ended
    assert stopping.begun


def test_a_wait_after_the_stop_returns_at_once_and_a_quiet_wait_times_out() -> None:
    stopping = Stopping()

    async def quiet() -> bool:
        return await stopping.wait(0.05)

    assert asyncio.run(quiet()) is False
    stopping.begin()

    async def long() -> bool:
        return await stopping.wait(30)

    started = time.monotonic()
    assert asyncio.run(long()) is True
    assert time.monotonic() - started < 5  # at once, not at the end of its 30 s
    assert not stopping._waiting  # nothing left behind by the waits
