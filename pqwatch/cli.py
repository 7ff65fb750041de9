"""The `pqwatch` command line: parse arguments, call one facade method, format the result.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error. Every failure is
one line on stderr, never a traceback (set PQWATCH_DEBUG=1 to see one). Heavy modules are
imported inside commands so that `pqwatch --help` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pqwatch import __version__
from pqwatch.errors import PQWatchError

if TYPE_CHECKING:
    from pqwatch.service import PQWatch

app = typer.Typer(
    name="pqwatch",
    help="Monitor UK parliamentary written questions: archive, search, digests and feeds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class _State:
    config_path: Path | None = None


state = _State()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pqwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="PQWATCH_CONFIG",
            help="Config file (default ./config.toml).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    state.config_path = config


@contextmanager
def _service() -> Iterator[PQWatch]:
    from pqwatch.service import PQWatch

    with PQWatch.open(state.config_path) as svc:
        yield svc


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@app.command()
def init() -> None:
    """Create the database, or migrate it to the current schema, and load the config."""
    with _service() as svc:
        res = svc.init()
    before = res.revision_before or "empty"
    change = "already current" if res.revision_before == res.revision_after else f"from {before}"
    typer.echo(f"Database {res.database} is at revision {res.revision_after} ({change}).")
    typer.echo(f"Config: {res.watches} watch(es), {res.subscribers} subscriber(s).")


def main() -> None:
    """Entry point: run the app and turn every failure into one line and an exit code."""
    # Typer bundles its own click in recent versions; find its exception classes either way.
    mro = typer.BadParameter.__mro__
    UsageError: type[Any] = next(c for c in mro if c.__name__ == "UsageError")
    ClickException: type[Any] = next(c for c in mro if c.__name__ == "ClickException")
    Abort: type[BaseException] = typer.Abort

    try:
        rv = app(standalone_mode=False, prog_name="pqwatch")
    except UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"usage error: {exc.format_message()}{hint}", 2)
    except ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except PQWatchError as exc:
        _fail(str(exc), exc.exit_code)
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("PQWATCH_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (PQWATCH_DEBUG=1 shows more)", 1)
    sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, code: int) -> None:
    line = " ".join(str(message).split())
    sys.stderr.write(f"pqwatch: error: {line}\n")
    sys.exit(code)
