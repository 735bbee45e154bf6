"""Durations on the command line: ``2.5`` (seconds), ``500ms``, ``2s``, ``1m``."""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["parse_timeout"]

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$", re.IGNORECASE)
_SCALE: Final = {"ms": 0.001, "s": 1.0, "m": 60.0}


def parse_timeout(value: str | float) -> float:
    """Seconds from a duration: a plain number of seconds, or a number with ``ms``, ``s``
    or ``m``. The result is always positive and finite.

    Raises:
        ValueError: not a duration, or zero.

    Example:
        >>> parse_timeout("500ms"), parse_timeout("2s"), parse_timeout("2.5")
        (0.5, 2.0, 2.5)
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(
                f"invalid duration {value!r}: use seconds (2.5) or a unit (500ms, 2s, 1m)"
            )
        number, unit = match.groups()
        seconds = float(number) * _SCALE[(unit or "s").lower()]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: it must be more than zero")
    return seconds
