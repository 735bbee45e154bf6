"""A bounded pool of long-lived worker tasks for the server.

A task per request costs ~15k CPU instructions on CPython 3.11 (creating and registering
the task, its first step, its done callback): an eighth of a whole in-memory call. Workers
live across requests: under load a worker that finishes a call takes the next one from
the queue without suspending at all, and an idle worker is woken by resolving one future.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

__all__ = ["WorkerPool"]

logger = logging.getLogger("busrpc.rpc")

T = TypeVar("T")
_STOP: Final = object()


class WorkerPool(Generic[T]):
    """Runs ``handle(item)`` for submitted items on at most *size* worker tasks.

    Items beyond the workers wait in a queue of at most *queue_size*. *handle* must not
    raise (anything it raises is logged and dropped); it may swallow the cancellations
    it causes itself (a call's deadline). The pool never cancels a worker except through
    `cancel_running`.
    """

    def __init__(self, handle: Callable[[T], Awaitable[None]], size: int, queue_size: int) -> None:
        if size < 1 or queue_size < 1:
            raise ValueError("size and queue_size must be at least 1")
        self._handle = handle
        self._size = size
        self._queue_size = queue_size
        self._queue: deque[T] = deque()
        self._idle: list[asyncio.Future[object]] = []  # a stack: the warmest worker first
        self._workers: set[asyncio.Task[None]] = set()
        self._busy = 0
        self._stopping = False
        self._room: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    @property
    def busy(self) -> int:
        """Items being handled now."""
        return self._busy

    @property
    def queued(self) -> int:
        """Items waiting for a worker."""
        return len(self._queue)

    def submit_nowait(self, item: T) -> bool:
        """Hand *item* to a worker, or queue it; False when the queue is full."""
        idle = self._idle
        while idle:
            waiter = idle.pop()
            if not waiter.done():
                waiter.set_result(item)
                return True
        if len(self._workers) < self._size:
            task = asyncio.get_running_loop().create_task(self._work(item))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
            return True
        if len(self._queue) < self._queue_size:
            self._queue.append(item)
            return True
        return False

    async def submit(self, item: T) -> None:
        """Hand *item* to a worker, waiting for room in the queue if it is full."""
        while not self.submit_nowait(item):
            if self._room is None:
                self._room = asyncio.get_running_loop().create_future()
            await self._room

    async def wait_drained(self) -> None:
        """Wait until no item is queued or being handled."""
        while self._busy or self._queue:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def take_queued(self) -> list[T]:
        """Remove and return the items still waiting for a worker."""
        items = list(self._queue)
        self._queue.clear()
        self._wake_room()
        return items

    async def cancel_running(self) -> None:
        """Stop: idle workers exit, running ones are cancelled; wait for all of them."""
        self._stopping = True
        for waiter in self._idle:
            if not waiter.done():
                waiter.set_result(_STOP)
        self._idle.clear()
        workers = set(self._workers)
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.wait(workers)

    async def _work(self, first: T) -> None:
        item: object = first
        loop = asyncio.get_running_loop()
        queue, idle = self._queue, self._idle
        while True:
            self._busy += 1
            try:
                await self._handle(item)  # type: ignore[arg-type]
            except Exception:
                logger.exception("worker: handler raised")
            finally:
                self._busy -= 1
            if self._stopping:
                return
            if queue:
                item = queue.popleft()
                self._wake_room()
                continue
            if not self._busy and self._drained is not None:
                drained, self._drained = self._drained, None
                if not drained.done():
                    drained.set_result(None)
            waiter: asyncio.Future[object] = loop.create_future()
            idle.append(waiter)
            try:
                item = await waiter
            finally:
                if (not waiter.done() or waiter.cancelled()) and waiter in idle:
                    idle.remove(waiter)
            if item is _STOP:
                return

    def _wake_room(self) -> None:
        room = self._room
        if room is not None:
            self._room = None
            if not room.done():
                room.set_result(None)
