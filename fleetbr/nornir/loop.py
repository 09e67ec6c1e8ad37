"""One asyncio event loop in a background thread, shared by the Nornir plugin and tasks.

fleetbr's transport is asyncssh, which needs an event loop; Nornir runs tasks in worker threads
(ThreadedRunner) and calls connection plugins synchronously. Every worker hands its coroutine to
one loop running in its own thread and waits for the answer, so all hosts share a loop (and the
SSH connections opened on it stay usable by every later task).

The loop is reference counted: :meth:`SharedLoop.acquire` starts it on first use and
:meth:`SharedLoop.release` stops it, and joins its thread, when the last user is done (a
connection closed by ``nr.close_connections()``, a task finished). Stopping cancels whatever
still runs on it and closes the loop, as :func:`asyncio.run` does.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

THREAD_NAME = "fleetbr-loop"


class LoopThread:
    """An event loop running forever in a daemon thread until :meth:`stop`."""

    def __init__(self, name: str = THREAD_NAME) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped = False
        # A daemon thread: a program that never closes its connections must still exit.
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_forever()
        finally:
            _finish(self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (or exception) in this thread."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("LoopThread.run called on the loop's own thread (it would hang)")
        if self._stopped:
            coro.close()
            raise RuntimeError("LoopThread.run called after stop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self) -> None:
        """Cancel what still runs, close the loop and join the thread. Idempotent."""
        if threading.current_thread() is self.thread:
            raise RuntimeError("LoopThread.stop called on the loop's own thread")
        if not self._stopped:
            self._stopped = True
            self._loop.call_soon_threadsafe(self._loop.stop)
        self.thread.join()

    @property
    def running(self) -> bool:
        """The thread is alive and the loop accepts work."""
        return not self._stopped and self.thread.is_alive()


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the loop's remaining tasks, let them end, then close it (as asyncio.run does)."""
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


class SharedLoop:
    """A :class:`LoopThread` started on first :meth:`acquire`, stopped on last :meth:`release`."""

    def __init__(self, name: str = THREAD_NAME) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._current: LoopThread | None = None
        self._users = 0

    def acquire(self) -> LoopThread:
        """The running loop (started if needed); pair every call with :meth:`release`."""
        with self._lock:
            if self._current is None:
                self._current = LoopThread(self._name)
            self._users += 1
            return self._current

    def release(self) -> None:
        """Drop one use; the last one stops the loop and joins its thread."""
        with self._lock:
            if self._users <= 0 or self._current is None:
                raise RuntimeError("SharedLoop.release without a matching acquire")
            if threading.current_thread() is self._current.thread:
                raise RuntimeError("SharedLoop.release called on the loop's own thread")
            self._users -= 1
            if self._users:
                return
            current, self._current = self._current, None
            current.stop()

    @contextmanager
    def use(self) -> Iterator[LoopThread]:
        """``with shared.use() as loop: loop.run(...)``: acquire and always release."""
        loop = self.acquire()
        try:
            yield loop
        finally:
            self.release()

    @property
    def users(self) -> int:
        """How many acquires are not released yet."""
        return self._users

    def shutdown(self) -> None:
        """Stop the loop whatever its users (at interpreter exit: connections never closed)."""
        with self._lock:
            current, self._current, self._users = self._current, None, 0
        if current is not None:
            current.stop()


SHARED = SharedLoop()
"""The loop of the ``fleetbr`` connection plugin and the fleetbr Nornir tasks."""


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the shared loop and wait for it: how a Nornir task of your own uses the
    ``fleetbr`` connection (``run_coroutine(conn.run_script("...", label="..."))``)."""
    with SHARED.use() as loop:
        return loop.run(coro)


atexit.register(SHARED.shutdown)
