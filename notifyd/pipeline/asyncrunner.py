"""One event loop thread per process, shared by every worker thread.

Actors are synchronous (their Redis work is blocking and batched); only the
adapters' network I/O is async. Keeping every adapter on one loop lets them
pool connections across all the shards a process runs.

Every wait on the loop has a deadline. A worker thread waits in slices, and
between slices the loop must answer a probe within ``stall_timeout_s``. A loop
that does not answer (a blocking call inside a coroutine, a dead loop thread),
or a wait that outlasts :data:`STEP_DEADLINE_S` (set below the actors' time
limit), *fences* the process: it exits with :data:`EXIT_STUCK`. Its heartbeat
stops with it, so another worker's maintenance requeues the messages it held,
instead of a live heartbeat keeping them stranded for ever.

The loop is uvloop's where it is installed (``NOTIFYD_EVENT_LOOP=auto``, the
default, as uvicorn chooses): a delivery's loop work (its callbacks, timers,
socket reads and writes, connects) then runs in C, which measurably lowers the
CPU per delivery that decides the rate on a small machine (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from notifyd.runtime.settings import LoopChoice

T = TypeVar("T")

log = logging.getLogger("notifyd.pipeline.asyncrunner")

#: The process's exit status when it fences itself (EX_SOFTWARE).
EXIT_STUCK = 70
#: How long the loop may take to answer a probe before the process is fenced.
DEFAULT_STALL_TIMEOUT_S = 30.0
#: The longest a worker thread waits on the loop for one step: below the actors' 5-minute time
#: limit (``notifyd.pipeline.actors.SHARD_TIME_LIMIT_MS``), which cannot interrupt a blocked wait.
STEP_DEADLINE_S = 240.0
#: A waiting thread checks the loop this often.
WAIT_SLICE_S = 1.0

StallHandler = Callable[[str], None]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: LoopChoice = "auto") -> LoopFactory:
    """What makes a runner's loop: uvloop's where it is installed ("auto") or asked for
    ("uvloop", an error without it), else the standard library's ("asyncio")."""
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError("NOTIFYD_EVENT_LOOP is uvloop, but uvloop is not installed") from None
        return asyncio.new_event_loop
    factory: LoopFactory = uvloop.new_event_loop
    return factory


class LoopStalled(RuntimeError):
    """A wait on the event loop ran past its deadline (raised when the stall handler returns)."""


def fence(reason: str) -> None:
    """Exit now, so that the heartbeat stops and the held messages go to another worker."""
    log.critical("fencing this worker (exit %d): %s", EXIT_STUCK, reason)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # exiting anyway
            handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_STUCK)


class AsyncRunner:
    def __init__(
        self,
        *,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        step_deadline_s: float = STEP_DEADLINE_S,
        on_stall: StallHandler = fence,
        loop: LoopChoice = "auto",
    ) -> None:
        self.new_loop = loop_factory(loop)
        self.stall_timeout_s = stall_timeout_s
        self.step_deadline_s = step_deadline_s
        self.on_stall = on_stall
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                loop = self.new_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="notifyd-async", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def responsive(self, timeout: float) -> bool:
        """Whether the loop runs a callback within ``timeout`` (False when its thread is dead)."""
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is None:
            return True  # not started yet: nothing can be stuck on it
        if thread is None or not thread.is_alive() or loop.is_closed():
            return False
        answered = threading.Event()
        loop.call_soon_threadsafe(answered.set)
        return answered.wait(timeout)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result, waiting at most ``timeout``
        (default: the step deadline) and fencing the process when the loop stops answering."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        self.wait(lambda t: _done(future, t), deadline_s=timeout, on_timeout=future.cancel)
        return future.result(0)

    def call(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        """Run the plain function ``fn`` on the loop (as :meth:`run` runs a coroutine)."""

        async def call() -> T:
            return fn()

        return self.run(call(), timeout)

    def wait(
        self,
        ready: Callable[[float], bool],
        *,
        deadline_s: float | None = None,
        on_timeout: Callable[[], Any] | None = None,
    ) -> None:
        """Block until ``ready(slice)`` is true. Between slices the loop must answer a probe
        within the stall timeout; past ``deadline_s`` (default: the step deadline) the wait ends."""
        limit = self.step_deadline_s if deadline_s is None else deadline_s
        deadline = time.monotonic() + limit
        while not ready(max(0.0, min(WAIT_SLICE_S, deadline - time.monotonic()))):
            if not self.responsive(self.stall_timeout_s):
                self._stalled(f"the event loop did not answer for {self.stall_timeout_s:g} s")
            if time.monotonic() >= deadline:
                if on_timeout is not None:
                    on_timeout()
                if deadline_s is not None:  # the caller's own budget: its error, not a stuck worker
                    raise TimeoutError(f"no answer from the event loop within {limit:g} s")
                self._stalled(f"a worker thread waited on the event loop for more than {limit:g} s")

    def _stalled(self, reason: str) -> None:
        self.on_stall(reason)
        raise LoopStalled(reason)  # only when the handler returns (tests)

    def stop(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        if loop is not None and not loop.is_running():
            loop.close()


def _done(future: concurrent.futures.Future[Any], timeout: float) -> bool:
    try:
        future.exception(timeout)
    except concurrent.futures.TimeoutError:
        return False
    except concurrent.futures.CancelledError:
        return True
    return True
