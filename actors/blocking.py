"""`BlockingExecutor`: the one way to run blocking calls (libvirt, qemu-img, file copies).

A bounded thread pool behind an awaitable `run`. Cancellation: a job cancelled while still
queued never starts. A job already running cannot be interrupted (Python threads can't be
killed, and a libvirt call must be allowed to return): the awaiting coroutine still gets
`CancelledError` at once, and the thread finishes the call in the background, its result
discarded. So a blocking function must be safe to abandon mid-way, or bounded by its own
timeout (libvirt's keepalive, qemu-img's own limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from actors.errors import ExecutorShutdown

P = ParamSpec("P")
T = TypeVar("T")


_log = logging.getLogger(__name__)


class BlockingExecutor:
    """A pool of at most `max_workers` threads named after `name`; one per process, handed
    to whoever needs it (the `ActorSystem` holds it as `system.executor`).

    Counters (read them, don't write them): `queued` jobs not started yet, `running` jobs,
    `completed` jobs that returned or raised, `failed` those that raised, `cancelled` jobs
    dropped before they started.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.name = name
        self.max_workers = max_workers
        self.queued = 0
        self.running = 0
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self._lock = threading.Lock()  # counters are updated from the worker threads
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` in a pool thread and return its result or raise its
        exception. The thread sees the caller's contextvars (request id for logging).

        Raises `ExecutorShutdown` after `shutdown`. On cancellation see the module docstring.
        """
        if self._closed:
            raise ExecutorShutdown(name=self.name)
        context = contextvars.copy_context()
        with self._lock:
            self.queued += 1
        try:
            job = self._pool.submit(self._call, context, fn, args, kwargs)
        except RuntimeError:
            # Lost a race with shutdown(): the pool refuses new work.
            with self._lock:
                self.queued -= 1
            raise ExecutorShutdown(name=self.name) from None
        job.add_done_callback(self._count_cancelled)
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            # Synchronously, so a job still queued is dropped before a thread picks it up.
            job.cancel()
            raise

    def _call(
        self,
        context: contextvars.Context,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        with self._lock:
            self.queued -= 1
            self.running += 1
        failed = True
        try:
            result = context.run(fn, *args, **kwargs)
            failed = False
            return result
        finally:
            with self._lock:
                self.running -= 1
                self.completed += 1
                self.failed += failed

    def _count_cancelled(self, job: Future[Any]) -> None:
        if job.cancelled():
            with self._lock:
                self.queued -= 1
                self.cancelled += 1

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new jobs; with `wait`, block until queued and running jobs are done.

        This blocks the calling thread: from a coroutine use `await aclose()` instead.
        """
        self._closed = True
        self._pool.shutdown(wait=wait)

    async def aclose(self, timeout: float | None = None) -> None:
        """`shutdown(wait=True)` without blocking the event loop.

        With a `timeout`, stop waiting after it: jobs still running (a call stuck in a
        library that cannot be interrupted) are logged and left to finish in their threads,
        so a process shutting down is never held hostage by one of them.
        """
        self._closed = True
        done = asyncio.get_running_loop().create_future()
        waiter = threading.Thread(
            target=self._shutdown_and_signal,
            args=(done,),
            name=f"{self.name}-shutdown",
            daemon=True,
        )
        waiter.start()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(done)
        except TimeoutError:
            _log.error(
                "%s: %d blocking job(s) still running after %.1fs; not waiting for them",
                self.name,
                self.running,
                timeout,
            )
            return
        waiter.join()

    def _shutdown_and_signal(self, done: asyncio.Future[None]) -> None:
        self._pool.shutdown(wait=True)
        # After a timed-out aclose() the loop may be gone by now: nobody waits any more.
        with contextlib.suppress(RuntimeError):
            done.get_loop().call_soon_threadsafe(_set_done, done)


def _set_done(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
