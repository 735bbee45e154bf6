"""The ``busrpc`` command line (typer + rich): demo, serve, call, bench."""


def main() -> None:
    """Entry point of the ``busrpc`` command."""
    try:
        from ._app import app
    except ImportError as exc:  # the cli extra is not installed
        import sys

        sys.stderr.write(
            f"busrpc: the command line needs its extra: pip install 'busrpc[cli]' ({exc})\n"
        )
        raise SystemExit(1) from None
    app(prog_name="busrpc")
