"""A timer wheel: many deadlines, one event-loop timer.

Every call has a deadline, on the client (fail the call) and on the server (cancel the
handler). A loop timer per call costs ~3 µs to arm and cancel under uvloop, a sixth of a
whole in-memory call. The wheel groups deadlines into slots of `resolution` seconds and
keeps one loop timer, for the earliest slot. Adding and removing an entry is two dict
operations. Entries fire at most one `resolution` late, never early.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

__all__ = ["TimerWheel"]

K = TypeVar("K", bound=Hashable)

RESOLUTION: Final = 0.005


class TimerWheel(Generic[K]):
    """Calls ``on_expire(key)`` at (or just after) each key's deadline, on the loop's clock.

    Keys are the caller's own unique objects (a request token, a call), so an entry costs
    no allocation beyond its place in a set.
    """

    __slots__ = (
        "_buckets",
        "_handle",
        "_handle_slot",
        "_loop",
        "_on_expire",
        "_resolution",
        "_slots",
    )

    def __init__(self, on_expire: Callable[[K], None], resolution: float = RESOLUTION) -> None:
        self._on_expire = on_expire
        self._resolution = resolution
        self._buckets: dict[int, set[K]] = {}
        self._slots: list[int] = []  # heap of the slots in _buckets
        self._handle: asyncio.TimerHandle | None = None
        self._handle_slot = -1
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, when: float, key: K) -> int:
        """Expire *key* once *when* (loop time) has passed; the slot, for `remove`."""
        slot = int(when / self._resolution) + 1
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            heapq.heappush(self._slots, slot)
            if self._handle is None or slot < self._handle_slot:
                self._arm(slot)
        bucket.add(key)
        return slot

    def remove(self, slot: int, key: K) -> None:
        """Forget *key* if it has not expired yet (no-op if it has)."""
        bucket = self._buckets.get(slot)
        if bucket is not None:
            bucket.discard(key)

    def _arm(self, slot: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._handle_slot = slot
        self._handle = loop.call_at(slot * self._resolution, self._fire)

    def _fire(self) -> None:
        self._handle = None
        assert self._loop is not None
        now_slot = int(self._loop.time() / self._resolution)
        slots, buckets, on_expire = self._slots, self._buckets, self._on_expire
        while slots and slots[0] <= now_slot:
            for key in buckets.pop(heapq.heappop(slots)):
                on_expire(key)
        while slots and not buckets.get(slots[0]):  # drop slots emptied by remove()
            buckets.pop(heapq.heappop(slots), None)
        if slots:
            self._arm(slots[0])

    def close(self) -> None:
        """Cancel the loop timer and forget every entry."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._buckets.clear()
        self._slots.clear()
