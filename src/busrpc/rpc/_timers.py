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
import itertools
from collections.abc import Callable
from typing import Final

__all__ = ["TimerWheel"]

RESOLUTION: Final = 0.005


class TimerWheel:
    """Runs callbacks at (or just after) their deadline on the running loop's clock."""

    __slots__ = ("_buckets", "_handle", "_handle_slot", "_ids", "_loop", "_resolution", "_slots")

    def __init__(self, resolution: float = RESOLUTION) -> None:
        self._resolution = resolution
        self._buckets: dict[int, dict[int, Callable[[], None]]] = {}
        self._slots: list[int] = []  # heap of the slots in _buckets
        self._ids = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._handle_slot = -1
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, when: float, callback: Callable[[], None]) -> tuple[int, int]:
        """Run *callback* once *when* (loop time) has passed; a key for `remove`."""
        slot = int(when / self._resolution) + 1
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = {}
            heapq.heappush(self._slots, slot)
            if self._handle is None or slot < self._handle_slot:
                self._arm(slot)
        key = next(self._ids)
        bucket[key] = callback
        return slot, key

    def remove(self, entry: tuple[int, int]) -> None:
        """Forget an entry that has not fired (no-op if it has)."""
        bucket = self._buckets.get(entry[0])
        if bucket is not None:
            bucket.pop(entry[1], None)

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
        slots, buckets = self._slots, self._buckets
        while slots and slots[0] <= now_slot:
            bucket = buckets.pop(heapq.heappop(slots))
            for callback in bucket.values():
                callback()
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
