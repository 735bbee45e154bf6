from __future__ import annotations

import pytest

from busrpc.cli._timeouts import parse_timeout


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2.5", 2.5),
        ("10", 10.0),
        (".5", 0.5),
        ("500ms", 0.5),
        ("1ms", 0.001),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("1m", 60.0),
        (" 250 ms ", 0.25),
        ("2S", 2.0),
        ("30MS", 0.03),
    ],
)
def test_parses_seconds_and_units(text: str, seconds: float) -> None:
    assert parse_timeout(text) == pytest.approx(seconds)


def test_numbers_pass_through() -> None:
    assert parse_timeout(10.0) == 10.0
    assert parse_timeout(3) == 3.0


@pytest.mark.parametrize(
    "text", ["", "abc", "-1", "-500ms", "2h", "1.2.3", "ms", "5 sec", "inf", "nan", "1e3"]
)
def test_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_timeout(text)


@pytest.mark.parametrize("value", ["0", "0ms", "0.0s", 0, 0.0, -1.0, float("inf"), float("nan")])
def test_rejects_zero_negative_and_infinite(value: str | float) -> None:
    with pytest.raises(ValueError, match="more than zero"):
        parse_timeout(value)
