"""Bounded pools that run the server's handlers: long-lived workers (3.11), eager tasks
(3.12+).

A task per request costs ~15k CPU instructions on CPython 3.11 (creating and registering
the task, its first step, its done callback): an eighth of a whole in-memory call. Workers
live across requests: under load a worker that finishes a call takes the next one from
the queue without suspending at all, and an idle worker is woken by resolving one future.

Workers start in a copy of the server's context, never the submitter's, and a worker
whose item left anything set in its context is retired: nothing one call sets is seen by
the next.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Final, Generic, TypeVar

__all__ = ["EagerPool", "WorkerPool", "server_pool"]

logger = logging.getLogger("busrpc.rpc")

T = TypeVar("T")
_STOP: Final = object()


class _Pool(Generic[T]):
    """What both pools share: a bounded queue, the busy count, waiting for the drain."""

    def __init__(
        self,
        handle: Callable[[T], Coroutine[Any, Any, None]],
        size: int,
        queue_size: int,
        *,
        context: contextvars.Context | None = None,
    ) -> None:
        if size < 1 or queue_size < 1:
            raise ValueError("size and queue_size must be at least 1")
        self._handle = handle
        self._size = size
        self._queue_size = queue_size
        self._context = context or contextvars.copy_context()
        self._queue: deque[T] = deque()
        # Items handed over and not finished, counted from the moment of hand-off: an item
        # resolved into an idle worker's future is busy before that worker wakes, so
        # wait_drained can never see "nothing to do" while one is on its way.
        self._busy = 0
        self._stopping = False
        self._drained: asyncio.Future[None] | None = None
        self._setup()

    def _setup(self) -> None:
        """What a pool keeps beyond the shared state (a subclass's own `__init__`)."""

    @property
    def busy(self) -> int:
        """Items handed over and not yet finished."""
        return self._busy

    @property
    def queued(self) -> int:
        """Items waiting to start."""
        return len(self._queue)

    async def wait_drained(self) -> None:
        """Wait until no item is queued or being handled (or the pool has stopped)."""
        while (self._busy or self._queue) and not self._stopping:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def take_queued(self) -> list[T]:
        """Remove and return the items still waiting to start."""
        items = list(self._queue)
        self._queue.clear()
        return items

    def _wake_drained(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)


class WorkerPool(_Pool[T]):
    """Runs ``handle(item)`` for submitted items on at most *size* worker tasks.

    Items beyond the workers wait in a queue of at most *queue_size*. *handle* must not
    raise (anything it raises is logged and dropped); it may swallow the cancellations
    it causes itself (a call's deadline). The pool never cancels a worker except through
    `cancel_running`. Workers start in a copy of *context* (default: the current one),
    never in the context of whoever submitted the item.
    """

    def _setup(self) -> None:
        self._idle: list[asyncio.Future[object]] = []  # a stack: the warmest worker first
        self._workers: set[asyncio.Task[None]] = set()
        self._orphans: list[T] = []  # handed to a worker cancelled before it woke
        self._starting: dict[asyncio.Task[None], T] = {}  # spawned, first step not run yet

    def submit_nowait(self, item: T) -> bool:
        """Hand *item* to a worker, or queue it; False when the queue is full or the pool
        has stopped."""
        if self._stopping:
            return False
        idle = self._idle
        while idle:
            waiter = idle.pop()
            if not waiter.done():
                self._busy += 1
                waiter.set_result(item)
                return True
        if len(self._workers) < self._size:
            self._busy += 1
            self._spawn(item)
            return True
        if len(self._queue) < self._queue_size:
            self._queue.append(item)
            return True
        return False

    async def cancel_running(self) -> list[T]:
        """Stop: idle workers exit, running ones are cancelled; wait for all of them.

        Returns the items that were handed to a worker that never started them (it was
        cancelled before it woke up): the caller answers them, as it does `take_queued`.
        """
        self._stopping = True
        self._wake_drained()
        for waiter in self._idle:
            if not waiter.done():
                waiter.set_result(_STOP)
        self._idle.clear()
        workers = set(self._workers)
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.wait(workers)
        orphans, self._orphans = self._orphans, []
        orphans += self._starting.values()  # cancelled before their first step
        self._starting.clear()
        return orphans

    async def _work(self, first: T) -> None:
        self._starting.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
        item: object = first
        loop = asyncio.get_running_loop()
        queue, idle = self._queue, self._idle
        # What the worker's context holds when it is clean. Comparing contexts is O(1)
        # while nothing was set (the same immutable mapping underneath), so checking
        # after every item is cheap; a worker whose item set a ContextVar is retired.
        clean = contextvars.copy_context()
        while True:
            try:
                await self._handle(item)  # type: ignore[arg-type]
            except Exception:
                logger.exception("worker: handler raised")
            finally:
                self._busy -= 1
            if self._stopping:
                return
            if contextvars.copy_context() != clean:
                self._retire()
                return
            if queue:
                item = queue.popleft()
                self._busy += 1
                continue
            if not self._busy:
                self._wake_drained()
            waiter: asyncio.Future[object] = loop.create_future()
            idle.append(waiter)
            try:
                item = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not _STOP:
                    # Handed to this worker, which is cancelled before it woke up.
                    self._busy -= 1
                    self._orphans.append(waiter.result())  # type: ignore[arg-type]
                raise
            finally:
                if (not waiter.done() or waiter.cancelled()) and waiter in idle:
                    idle.remove(waiter)
            if item is _STOP:
                return

    def _retire(self) -> None:
        """This worker's context is dirty: a fresh worker takes over its queue."""
        self._workers.discard(asyncio.current_task())
        if self._queue:
            self._busy += 1
            self._spawn(self._queue.popleft())
        elif not self._busy:
            self._wake_drained()

    def _spawn(self, item: T) -> None:
        task = asyncio.get_running_loop().create_task(
            self._work(item), context=self._context.copy()
        )
        self._starting[task] = item
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)


class EagerPool(_Pool[T]):
    """`WorkerPool`'s contract on Python 3.12+, with an eager task per item.

    An eager task runs its first step inside `submit_nowait`, so a handler that does not
    suspend (an echo, a cache hit) finishes before the transport's delivery callback
    returns: no worker to wake, no task left to schedule. Each task gets its own copy of
    *context*, so no retiring is needed either. On CPython 3.13 an in-memory echo costs
    111k instructions this way against 135k through `WorkerPool` (callgrind,
    benchmarks/instructions.py). At most *size* items run at once; up to *queue_size*
    more wait, and start as running ones finish.
    """

    def _setup(self) -> None:
        self._running: set[asyncio.Task[None]] = set()  # tasks that suspended
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit_nowait(self, item: T) -> bool:
        """Start *item* now, or queue it; False when the queue is full or the pool has
        stopped."""
        if self._stopping:
            return False
        if len(self._running) < self._size and not self._queue:
            self._start(item)
            return True
        if len(self._queue) < self._queue_size:
            self._queue.append(item)
            return True
        return False

    async def cancel_running(self) -> list[T]:
        """Stop: cancel the running items and wait for them. Returns ``[]``: an item
        here is either queued (`take_queued`) or started."""
        self._stopping = True
        self._wake_drained()
        running = set(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
        return []

    def _start(self, item: T) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._busy += 1
        task = asyncio.Task(  # type: ignore[call-arg]  # eager_start: Python 3.12+
            self._run(item), loop=loop, context=self._context.copy(), eager_start=True
        )
        if not task.done():
            self._running.add(task)
            task.add_done_callback(self._finished)

    async def _run(self, item: T) -> None:
        try:
            await self._handle(item)
        except Exception:
            logger.exception("worker: handler raised")
        finally:
            self._busy -= 1
            if not self._busy and not self._queue:
                self._wake_drained()

    def _finished(self, task: asyncio.Task[None]) -> None:
        # A done callback, never inside another item's step: starting the queued items
        # here is a loop, not a recursion, however many finish at once.
        self._running.discard(task)
        queue = self._queue
        while queue and len(self._running) < self._size and not self._stopping:
            self._start(queue.popleft())


def server_pool(
    handle: Callable[[T], Coroutine[Any, Any, None]],
    size: int,
    queue_size: int,
    *,
    context: contextvars.Context,
) -> WorkerPool[T] | EagerPool[T]:
    """The faster pool this Python has: `EagerPool` on 3.12+, `WorkerPool` on 3.11."""
    if sys.version_info >= (3, 12):
        return EagerPool(handle, size, queue_size, context=context)
    return WorkerPool(handle, size, queue_size, context=context)
