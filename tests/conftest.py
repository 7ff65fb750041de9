"""Shared fixtures. Real recorded API data is read from ../shared/data (override with
PQWATCH_TEST_DATA); it is never copied into the repository."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("PQWATCH_TEST_DATA", REPO.parent / "shared" / "data"))

MINIMAL_CONFIG = """
[database]
url = "sqlite:///pqwatch.db"

[[watches]]
name = "Children's palliative care"
query = "palliative care children"

[[subscribers]]
email = "officer@example.org"
name = "Policy officer"
"""


@pytest.fixture
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real recordings not found at {DATA_DIR} (set PQWATCH_TEST_DATA)")
    return DATA_DIR


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PQWATCH_CONFIG", "PQWATCH_DATABASE_URL", "PQWATCH_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str = MINIMAL_CONFIG, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """Run the real `pqwatch` entry point in-process, as a user would from a shell."""
    from pqwatch.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["pqwatch", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run
