from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pqwatch import __version__
from tests.conftest import CliResult, rows


def test_version(cli: Callable[..., CliResult]) -> None:
    result = cli("--version")
    assert (result.exit_code, result.stdout.strip()) == (0, f"pqwatch {__version__}")


def test_every_command_has_help(cli: Callable[..., CliResult]) -> None:
    from typer.main import get_command

    from pqwatch.cli import app

    commands = get_command(app).commands  # type: ignore[attr-defined]
    assert "init" in commands
    for name in commands:
        result = cli(name, "--help")
        assert result.exit_code == 0, name
        assert "Usage" in result.stdout


def test_unknown_option_is_a_usage_error(cli: Callable[..., CliResult]) -> None:
    result = cli("init", "--frobnicate")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "pqwatch: error: usage error: No such option: --frobnicate (see 'pqwatch init --help')"
    )


def test_unknown_command(cli: Callable[..., CliResult]) -> None:
    result = cli("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.stderr


def test_python_dash_m_without_traceback(write_config: Callable[..., Path]) -> None:
    """The real process, as a user runs it: a bad config is one line and exit code 2."""
    path = write_config("[email]\nsmtp_host = 25\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pqwatch", "--config", str(path), "init"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"pqwatch: error: {path}: email.smtp_host: Input should be a valid string, got int 25"
    )


def test_no_arguments_prints_the_help_not_one_squashed_line(cli: Callable[..., CliResult]) -> None:
    result = cli()
    assert result.exit_code == 2
    assert result.stdout.startswith("Usage: pqwatch [OPTIONS] COMMAND [ARGS]...")
    assert "\n  search " in result.stdout and "\n  digest " in result.stdout
    assert result.stderr == ""


def test_a_query_starting_with_minus_gets_a_hint_with_options_the_command_has(
    cli: Callable[..., CliResult], write_config: Callable[..., Path]
) -> None:
    config = write_config()
    preview = cli("--config", config, "watches", "preview", "-adult care")
    assert preview.exit_code == 2
    assert "e.g. pqwatch watches preview -- '-adult care')" in preview.stderr
    search = cli("--config", config, "search", "-adult care")
    assert "e.g. pqwatch search --limit 5 -- '-adult care')" in search.stderr
    # The hint works as given.
    assert cli("--config", config, "watches", "preview", "--", "-adult care").exit_code == 0


def test_dates_after_today_are_refused_and_move_nothing(
    cli: Callable[..., CliResult], write_config: Callable[..., Path]
) -> None:
    from datetime import date, timedelta

    config = write_config()
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    for args in (
        ("poll", "--since", "2024-01-01", "--until", tomorrow),
        ("poll", "--since", tomorrow, "--until", tomorrow),
        ("backfill", "--since", tomorrow),
        ("backfill", "--since", "2024-01-01", "--until", tomorrow),
        ("show", f"{tomorrow}/1234"),
        ("watches", "preview", "hospice", "--until", tomorrow),
    ):
        result = cli("--config", config, *args)
        assert result.exit_code == 2, args
        assert f"{tomorrow} is in the future" in result.stderr, args
        assert len(result.stderr.strip().splitlines()) == 1
    db = config.parent / "pqwatch.db"
    if os.environ.get("PQWATCH_DATABASE_URL"):  # PostgreSQL: the test's database
        migrated = rows(db, "SELECT to_regclass('poll_run') IS NOT NULL") == [(1,)]
    else:
        migrated = db.exists()
    if migrated:
        assert rows(db, "SELECT count(*) FROM poll_run") == [(0,)]
    bad = cli("--config", config, "show", "2024-13-45/1234")
    assert bad.exit_code == 2 and "is not a date" in bad.stderr
