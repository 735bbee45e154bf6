"""What the commands print of a bus URL: never a password, a token or the query."""

from __future__ import annotations

import pytest

from busrpc.cli._runtime import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("memory://", "memory://"),
        ("memory://orders", "memory://orders"),
        ("nats://ada:s3cret@10.0.0.1:4222", "nats://ada:***@10.0.0.1:4222"),
        ("nats://s3cret-token@10.0.0.1:4222", "nats://***@10.0.0.1:4222"),
        ("nats://h:4222?user_credentials=/s3cret/app.creds&name=x", "nats://h:4222"),
        ("nats://u:s3cret@a:1,nats://u:s3cret@b:2?name=x", "nats://u:***@a:1,nats://u:***@b:2"),
    ],
)
def test_redact_url_hides_credentials_and_options(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)
