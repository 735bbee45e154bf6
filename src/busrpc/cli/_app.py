"""The ``busrpc`` commands: demo, serve, call, bench.

Exit codes: 0 success; 1 the call or the run failed (an RPC error, ``deadline_exceeded``
and ``unavailable`` included, or an unreachable bus); 2 a usage error (bad option,
invalid JSON, a target that does not import).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any, Final, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

import busrpc

from . import _serve
from ._bench import arun_bench
from ._call import (
    MultiStop,
    RawCall,
    call_multi,
    call_unary,
    check_declared,
    parse_json,
    parse_method,
)
from ._demo import run_demo
from ._runtime import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    ExtraFormatter,
    describe_error,
    redact_url,
    run,
)
from ._timeouts import parse_timeout

__all__ = ["app"]

app = typer.Typer(
    name="busrpc",
    help="Typed RPC over a message broker: run a demo, serve a service, call or bench one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_URL_HELP: Final = "Bus URL: nats://host:4222, memory://, ..."


def _fail(error: CliError) -> NoReturn:
    err.print(f"error: {error.message}", markup=False)
    raise typer.Exit(error.exit_code)


def _setup_logging(level: str = "warning") -> None:
    # As logging.basicConfig: an application embedding the CLI keeps its own logging.
    try:
        numeric = logging.getLevelNamesMapping()[level.upper()]
    except KeyError:
        raise typer.BadParameter(f"unknown level {level!r}", param_hint="--log-level") from None
    root = logging.getLogger()
    if root.handlers:
        return
    handler: logging.Handler
    if err.is_terminal:
        handler = RichHandler(console=err, show_path=False, markup=False)
        handler.setFormatter(ExtraFormatter())
    else:  # captured (a parent process, a log file): one plain line per record
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ExtraFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(numeric)


def _timeout_option(default: str) -> Any:
    return typer.Option(
        "--timeout",
        "-t",
        parser=parse_timeout,
        metavar="DURATION",
        help="Seconds (2.5) or a duration (500ms, 2s, 1m).",
        show_default=default,
    )


def _print_version(value: bool) -> None:
    if value:
        out.print(f"busrpc {busrpc.__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Typed RPC over a message broker: run a demo, serve a service, call or bench one."""


# -- demo --------------------------------------------------------------------------------


@app.command()
def demo(
    url: Annotated[
        str | None,
        typer.Option(help="Use this bus instead of starting a private nats-server."),
    ] = None,
) -> None:
    """Start two servers of a demo service and make a call of every pattern.

    Without --url, a private nats-server is started on a free loopback port and stopped
    at the end. On memory:// the servers run in this process.
    """
    _setup_logging()
    try:
        ok = run(run_demo(url, out))
    except CliError as exc:
        _fail(exc)
    except (busrpc.BusrpcError, RuntimeError, ValueError, ImportError) as exc:
        _fail(CliError(f"demo failed: {exc}"))
    if not ok:
        err.print("error: the demo failed (see ✗ above)", markup=False)
        raise typer.Exit(EXIT_FAILURE)
    out.print("\n[green]every pattern worked[/]")


# -- serve -------------------------------------------------------------------------------


@app.command()
def serve(
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:CLASS",
            help="The service: a @busrpc.service class, a factory function, or an instance.",
        ),
    ],
    url: Annotated[
        str | None,
        typer.Option(
            help=_URL_HELP,
            show_default="$BUSRPC_URL, else a private nats-server",
        ),
    ] = None,
    server_id: Annotated[
        str | None, typer.Option(help="This server's id (default: random).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Subject prefix; callers must use the same.")
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            metavar="METHOD=TOPIC",
            help="Serve METHOD (declared topics=True) on TOPIC; repeatable.",
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            min=0, metavar="SECONDS", help="After Ctrl-C or SIGTERM, running calls get this long."
        ),
    ] = _serve.DEFAULT_GRACE,
    log_level: Annotated[str, typer.Option(help="Logging level on stderr.")] = "warning",
) -> None:
    """Serve a service until SIGINT or SIGTERM, then drain running calls.

    After the first signal, running calls get --grace seconds to finish; a second signal
    stops at once (they are answered `unavailable`).

    Prints `serving SERVICE on URL as server ID` once it takes calls. Waits for a broker
    that is down. Exits 1 if the bus closes under it for good (a supervisor restarts it).
    """
    _setup_logging(log_level)
    try:
        obj = _serve.load_target(target)
        run(
            _serve.serve(
                obj, url, server_id=server_id, namespace=namespace, topics=topic or [], grace=grace
            )
        )
    except CliError as exc:
        _fail(exc)
    except (busrpc.BusrpcError, RuntimeError) as exc:  # RuntimeError: no nats-server binary
        _fail(CliError(f"{type(exc).__name__}: {exc}"))
    except KeyboardInterrupt:  # where signal handlers are unavailable (Windows)
        raise typer.Exit(0) from None


# -- call --------------------------------------------------------------------------------


@app.command()
def call(
    target: Annotated[str, typer.Argument(metavar="SERVICE.METHOD", help="What to call.")],
    body: Annotated[
        str, typer.Argument(metavar="JSON", help="The request as JSON; - reads stdin.")
    ] = "{}",
    url: Annotated[
        str | None,
        typer.Option(envvar="BUSRPC_URL", help=_URL_HELP, show_default=False),
    ] = None,
    timeout: Annotated[float, _timeout_option("10s")] = 10.0,
    multi: Annotated[
        bool,
        typer.Option(
            "--multi", help="Call every server (multi methods); print one line per response."
        ),
    ] = False,
    expect: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="With --multi: stop after N responses."),
    ] = None,
    first: Annotated[
        bool,
        typer.Option("--first", help="With --multi: stop at the first successful response."),
    ] = False,
    quiet: Annotated[
        float | None,
        typer.Option(
            parser=parse_timeout,
            metavar="DURATION",
            help="With --multi: stop after this long without a response.",
        ),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="The topic (dotted for several tokens).")
    ] = None,
    server_id: Annotated[str | None, typer.Option(help="Call this server only.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Subject prefix the servers use.")] = None,
    affinity: Annotated[
        bool, typer.Option("--affinity", help="Let the servers bid (affinity methods).")
    ] = False,
    service_class: Annotated[
        str | None,
        typer.Option(
            metavar="MODULE:CLASS",
            help="The @busrpc.service class declaring the method: --multi, --affinity and "
            "--topic are checked against it before anything is sent.",
        ),
    ] = None,
) -> None:
    """Call a method with a JSON request and print the JSON result.

    An error prints `error: CODE (HTTP STATUS): MESSAGE` on stderr, e.g.
    `error: not_found (404): no such user`, and exits 1 (`deadline_exceeded` and
    `unavailable` too); invalid JSON or options exit 2. Without --service-class, a
    --multi call to a unary method is refused only once its one answer arrives.
    """
    _setup_logging()
    where = redact_url(url or "")
    try:
        if url is None:
            raise CliError("no bus URL: pass --url or set BUSRPC_URL", exit_code=EXIT_USAGE)
        stop = MultiStop(expect=expect, first_success=first, quiet=quiet)
        _check_options(multi, stop, server_id=server_id, affinity=affinity)
        method = parse_method(target, multi=multi, affinity=affinity, topic=topic is not None)
        if service_class is not None:
            check_declared(service_class, method)
        raw = RawCall(
            method=method,
            body=parse_json(sys.stdin.read() if body == "-" else body),
            url=url,
            timeout=timeout,
            namespace=namespace,
            topic=tuple(topic.split(".")) if topic else None,
        )
        if multi:
            _multi(raw, stop)
        else:
            result = run(call_unary(raw, server_id=server_id))
            _print_json(result)
    except CliError as exc:
        _fail(exc)
    except busrpc.RpcError as exc:
        _fail(CliError(describe_error(exc)))
    except busrpc.BusrpcError as exc:  # the bus is unreachable or failed
        _fail(CliError(describe_error(busrpc.Unavailable(f"{where}: {exc}"))))
    except ValueError as exc:  # a topic with invalid tokens, an unknown scheme
        _fail(CliError(str(exc), exit_code=EXIT_USAGE))
    except ImportError as exc:
        _fail(CliError(str(exc)))


def _check_options(multi: bool, stop: MultiStop, *, server_id: str | None, affinity: bool) -> None:
    if multi and (server_id is not None or affinity):
        raise CliError(
            "--multi cannot be combined with --server-id or --affinity", exit_code=EXIT_USAGE
        )
    if not multi:
        for option, used in (
            ("--expect", stop.expect is not None),
            ("--first", stop.first_success),
            ("--quiet", stop.quiet is not None),
        ):
            if used:
                raise CliError(f"{option} needs --multi", exit_code=EXIT_USAGE)


def _multi(raw: RawCall, stop: MultiStop) -> None:
    failed = 0

    def show(response: busrpc.Response[bytes]) -> None:
        nonlocal failed
        if response.error is not None:
            failed += 1
            err.print(
                f"{response.server_id}: error: {describe_error(response.error)}", markup=False
            )
        else:
            assert response.result is not None
            out.print(f"{response.server_id}: {_compact(response.result)}", markup=False)

    count = run(call_multi(raw, stop, show))
    if not count:
        name = f"{raw.method.service}.{raw.method.name}"
        raise CliError(describe_error(busrpc.Unavailable(f"no server answered {name}")))
    if failed:
        raise typer.Exit(EXIT_FAILURE)


def _print_json(data: bytes) -> None:
    try:
        value = json.loads(data)
    except ValueError:  # not JSON after all: show it as it came
        out.print(data.decode(errors="replace"), markup=False)
        return
    out.print_json(data=value, indent=2, highlight=out.is_terminal)


def _compact(data: bytes) -> str:
    try:
        return json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return data.decode(errors="replace")


# -- bench -------------------------------------------------------------------------------


@app.command()
def bench(
    url: Annotated[
        str | None,
        typer.Option(
            help=_URL_HELP,
            show_default="$BUSRPC_URL, else a private nats-server",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 64,
    payload: Annotated[int, typer.Option(min=0, help="Characters of data per call.")] = 100,
    seconds: Annotated[float, typer.Option(min=0.001, help="The measuring window.")] = 5.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds before measuring.")] = 1.0,
    servers: Annotated[int, typer.Option(min=1, help="Echo server processes.")] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON line instead of a table.")
    ] = False,
) -> None:
    """Measure echo calls: start echo servers on the bus, run concurrent callers.

    Each call sends `{"data": "<payload chars>"}`, unique per call, and checks the echo;
    calls completing in the window after the warm-up count. The JSON has the keys of the
    peers harness (calls_per_s, p50_ms, p99_ms, errors, cpu_pct, ...).
    """
    _setup_logging()
    main = arun_bench(url, concurrency, payload, seconds, warmup, servers)
    try:
        if as_json:
            result = run(main)
        else:
            with err.status(f"warming up for {warmup:g} s, then measuring for {seconds:g} s"):
                result = run(main)
    except CliError as exc:
        _fail(exc)
    except (busrpc.BusrpcError, RuntimeError, ValueError, ImportError) as exc:
        _fail(CliError(f"bench failed: {exc}"))
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    else:
        out.print(_bench_table(result))
    if not result["calls"]:
        err.print("error: no call completed in the window", markup=False)
        raise typer.Exit(EXIT_FAILURE)


def _bench_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"busrpc bench on {result['url']}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    cpu = result["cpu_pct"]
    rows = [
        ("calls/s", f"{result['calls_per_s']:,}"),
        ("p50", f"{result['p50_ms']} ms"),
        ("p99", f"{result['p99_ms']} ms"),
        ("calls", f"{result['calls']:,} in {result['seconds']} s"),
        ("errors", str(result["errors"])),
        ("concurrency", str(result["concurrency"])),
        ("payload", f"{result['payload']} B"),
        ("servers", str(result["servers"])),
        ("CPU % client/servers/machine", f"{cpu['client']}/{cpu['servers']}/{cpu['machine']}"),
        ("uvloop", "yes" if result["uvloop"] else "no"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
