"""The rollout's adaptive bound on hosts in flight (no SSH)."""

from __future__ import annotations

import asyncio
import time

from fleetbr.pacing import WindowPacer


def test_fast_confirms_grow_the_capacity_up_to_forks() -> None:
    pacer = WindowPacer(forks=10, start=2)
    for i in range(20):
        pacer.armed(f"h{i}", timeout=60)
        pacer.decided(f"h{i}", confirmed=True)
    assert pacer.capacity == 10 and pacer.peak == 10


def test_a_slow_confirm_halves_the_capacity_once_per_quarter_timeout() -> None:
    pacer = WindowPacer(forks=64, start=32)
    for host in ("a", "b"):
        pacer.opened[host] = (time.monotonic() - 40, 60.0)  # armed 40 s ago, 60 s timer
    pacer.decided("a", confirmed=True)
    pacer.decided("b", confirmed=True)  # the same congestion: not cut twice
    assert pacer.capacity == 16


def test_rollbacks_do_not_tune_the_capacity() -> None:
    pacer = WindowPacer(forks=64, start=8)
    pacer.opened["cut"] = (time.monotonic() - 70, 60.0)
    pacer.decided("cut", confirmed=False)
    assert pacer.capacity == 8


def test_slots_bound_hosts_in_flight() -> None:
    pacer = WindowPacer(forks=50, start=3)
    running = peak = 0

    async def host() -> None:
        nonlocal running, peak
        async with pacer.slot():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(host() for _ in range(12)))

    asyncio.run(main())
    assert peak == 3


def test_no_new_host_while_the_event_loop_lags() -> None:
    pacer = WindowPacer(forks=5, start=5)
    pacer.lag = 1.0
    started: list[float] = []

    async def main() -> None:
        async def host() -> None:
            async with pacer.slot():
                started.append(time.monotonic())

        task = asyncio.create_task(host())
        await asyncio.sleep(0.3)
        assert not started, "a host started while the controller was short of CPU"
        pacer.lag = 0.0
        await asyncio.wait_for(task, 2)

    asyncio.run(main())
    assert started


def test_waiting_hosts_start_in_order_as_places_free() -> None:
    pacer = WindowPacer(forks=50, start=2)
    order: list[int] = []

    async def host(index: int) -> None:
        async with pacer.slot():
            order.append(index)
            assert pacer.active <= 2
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(host(i) for i in range(300)))

    asyncio.run(main())
    assert order == list(range(300))
    assert pacer.active == 0


def test_a_cancelled_waiter_passes_its_place_on() -> None:
    pacer = WindowPacer(forks=50, start=1)
    ran: list[str] = []

    async def host(name: str) -> None:
        async with pacer.slot():
            ran.append(name)

    async def main() -> None:
        async with pacer.slot():
            handed, queued, last = (asyncio.create_task(host(n)) for n in ("a", "b", "c"))
            await asyncio.sleep(0)  # all three queue behind this place
            queued.cancel()  # still waiting: leaves the queue
            await asyncio.sleep(0)
        handed.cancel()  # handed the place on release, cancelled before it ran: "c" gets it
        await asyncio.gather(handed, queued, return_exceptions=True)
        await asyncio.wait_for(last, 2)

    asyncio.run(main())
    assert ran == ["c"]
    assert pacer.active == 0
