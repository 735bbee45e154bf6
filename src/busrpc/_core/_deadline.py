"""Deadlines: one absolute point in time, passed down every layer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import final

from ._errors import DeadlineExceeded

__all__ = ["DEFAULT_TIMEOUT", "Deadline"]

DEFAULT_TIMEOUT = 10.0
"""Seconds a call may take when neither the caller nor the client sets a timeout."""


@final
class Deadline:
    """An absolute deadline on the event loop's monotonic clock.

    A call turns its ``timeout=`` into a `Deadline` once, at the edge of the API; every
    layer below receives that same object. On the wire it is Unix epoch milliseconds
    (`Busrpc-Deadline`), because time spent queued in a broker must count.

    Example:
        >>> deadline = Deadline.after(2.5)
        >>> async with deadline.scope():      # raises DeadlineExceeded when it passes
        ...     await do_work()
    """

    __slots__ = ("when",)

    when: float
    """The deadline on the loop's clock (`loop.time()`). Read it; don't change it."""

    def __init__(self, when: float) -> None:
        self.when = when  # loop.time() clock: what asyncio.timeout_at takes

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline *seconds* from now (needs a running event loop)."""
        return cls(asyncio.get_running_loop().time() + seconds)

    @classmethod
    def from_wire(cls, unix_ms: int) -> Deadline:
        """The deadline a peer sent as Unix epoch milliseconds."""
        return cls.after(unix_ms / 1000 - time.time())

    def to_wire(self) -> int:
        """Unix epoch milliseconds, for `Busrpc-Deadline`."""
        return int((time.time() + self.remaining()) * 1000)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.when - asyncio.get_running_loop().time())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.when <= asyncio.get_running_loop().time()

    def earliest(self, other: Deadline | None) -> Deadline:
        """The sooner of this deadline and *other* (nested calls inherit the tighter one)."""
        if other is None or self.when <= other.when:
            return self
        return other

    @contextlib.asynccontextmanager
    async def scope(self) -> AsyncIterator[None]:
        """Run the body under this deadline; raise `DeadlineExceeded` when it passes."""
        timeout = asyncio.timeout_at(self.when)
        try:
            async with timeout:
                yield
        except TimeoutError as exc:
            if not timeout.expired():
                raise  # someone else's timeout: not ours to rename
            raise DeadlineExceeded from exc

    def __repr__(self) -> str:
        try:
            return f"Deadline(remaining={self.remaining():.3f}s)"
        except RuntimeError:  # no running loop
            return f"Deadline(when={self.when:.3f})"
