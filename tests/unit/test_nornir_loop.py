"""The background event loop shared by the Nornir plugin and tasks (fleetbr/nornir/loop.py)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor

import pytest

from fleetbr.nornir.loop import LoopThread, SharedLoop

GUARD = 30.0  # only a bound on a hang; nothing here waits for time to pass


def loop_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_run_returns_the_result_and_raises_the_exception() -> None:
    loop = LoopThread("t-result")
    try:

        async def answer() -> int:
            await asyncio.sleep(0)
            return 42

        async def boom() -> None:
            raise ValueError("boom")

        assert loop.run(answer()) == 42
        with pytest.raises(ValueError, match="boom"):
            loop.run(boom())
    finally:
        loop.stop()
    assert not loop.thread.is_alive()
    assert not loop.running


def test_coroutines_run_on_the_loop_thread_not_the_callers() -> None:
    loop = LoopThread("t-where")
    try:

        async def where() -> str:
            return threading.current_thread().name

        assert loop.run(where()) == "t-where"
        assert loop.thread.daemon  # never keeps the interpreter alive
    finally:
        loop.stop()


def test_callers_in_many_threads_share_one_loop_concurrently() -> None:
    """Ten callers each wait for an event only the last of them sets: this finishes only if
    their coroutines run at the same time on the one loop (Nornir's worker threads)."""
    loop = LoopThread("t-many")
    callers = 10
    try:
        arrived = loop.run(_make_counter(callers))

        async def meet() -> str:
            arrived.count += 1
            if arrived.count == callers:
                arrived.event.set()
            await asyncio.wait_for(arrived.event.wait(), GUARD)
            return threading.current_thread().name

        with ThreadPoolExecutor(callers) as pool:
            names = list(pool.map(lambda _: loop.run(meet()), range(callers)))
        assert names == ["t-many"] * callers
    finally:
        loop.stop()


class _Counter:
    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()


async def _make_counter(_: int) -> _Counter:
    return _Counter()  # created on the loop: its Event belongs there


def test_stop_cancels_what_still_runs_and_closes_the_loop() -> None:
    loop = LoopThread("t-stop")
    started = threading.Event()
    cancelled = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiter = ThreadPoolExecutor(1)
    pending = waiter.submit(loop.run, forever())
    assert started.wait(GUARD)
    loop.stop()
    assert cancelled.is_set()
    with pytest.raises(CancelledError):
        pending.result(GUARD)
    waiter.shutdown()
    assert not loop.thread.is_alive()
    loop.stop()  # idempotent


def test_run_after_stop_and_on_the_loop_thread_are_refused_not_hung() -> None:
    loop = LoopThread("t-refuse")

    async def nested() -> str:
        inner = _noop()
        try:
            loop.run(inner)
        except RuntimeError as exc:
            return str(exc)
        return "ran"

    assert "own thread" in loop.run(nested())
    loop.stop()
    with pytest.raises(RuntimeError, match="after stop"):
        loop.run(_noop())


async def _noop() -> None:
    return None


def test_shared_loop_starts_on_first_acquire_and_stops_on_last_release() -> None:
    shared = SharedLoop("t-shared")
    first = shared.acquire()
    second = shared.acquire()
    assert first is second and shared.users == 2
    assert len(loop_threads("t-shared")) == 1
    shared.release()
    assert first.running  # one user left
    shared.release()
    assert not first.thread.is_alive()
    assert loop_threads("t-shared") == []
    with shared.use() as again:  # a new loop once the old one is gone
        assert again is not first and again.running
    assert not again.thread.is_alive() and shared.users == 0


def test_shared_loop_release_without_acquire_is_an_error() -> None:
    shared = SharedLoop("t-unpaired")
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        shared.release()


def test_shared_loop_release_on_its_own_thread_is_refused() -> None:
    shared = SharedLoop("t-self")
    loop = shared.acquire()

    async def release_here() -> str:
        try:
            shared.release()
        except RuntimeError as exc:
            return str(exc)
        return "released"

    assert "own thread" in loop.run(release_here())
    assert shared.users == 1
    shared.release()
    assert not loop.thread.is_alive()


def test_shared_loop_many_threads_acquire_and_release_leave_no_thread() -> None:
    shared = SharedLoop("t-churn")

    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    def one(_: int) -> str:
        with shared.use() as loop:
            return loop.run(where())

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(200))) == {"t-churn"}
    assert shared.users == 0
    assert loop_threads("t-churn") == []


def test_shutdown_stops_the_loop_whatever_its_users() -> None:
    shared = SharedLoop("t-exit")
    loop = shared.acquire()
    shared.acquire()
    shared.shutdown()
    assert not loop.thread.is_alive() and shared.users == 0
    shared.shutdown()  # nothing left: a no-op
