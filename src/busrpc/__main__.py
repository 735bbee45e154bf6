"""``python -m busrpc``: the ``busrpc`` command."""

from __future__ import annotations

from busrpc.cli import main

if __name__ == "__main__":
    main()
