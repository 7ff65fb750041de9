from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pqwatch import __version__
from tests.conftest import CliResult


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
