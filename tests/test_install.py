"""A normal (not editable) install works: a wheel built from this repository, installed into a
fresh virtual environment, runs the whole cycle from a folder that is not the repository.

The wheel must carry the Alembic migrations and the Jinja templates (both kept at the top of
the repository): `init` needs the first, `digest` and `feeds` the second.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import time
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from pqwatch.testing.replay import ReplayServer, load_items
from tests.conftest import REPO, api_config

WATCH = """
[[watches]]
name = "Hospice funding"
query = "hospice*"

[[subscribers]]
email = "officer@example.org"
"""


def _run(cmd: list[str | Path], cwd: Path, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_a_wheel_installed_into_a_fresh_venv_runs_the_whole_cycle(
    data_dir: Path, replay: ReplayServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    work = tmp_path / "work"
    work.mkdir()
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, REPO], work)
    [wheel] = wheels.glob("pqwatch-*.whl")
    # A venv without pip (quicker to make); this interpreter's pip installs into it. Its
    # dependencies come from pip's cache or the package index.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], work)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel], work)
    # The installed copy is the one that runs, not this checkout.
    where = _run([python, "-c", "import pqwatch; print(pqwatch.__file__)"], work).strip()
    assert Path(where).is_relative_to(venv), where

    base = data_dir / "uk_parliament"
    month = load_items(
        [
            base / "monthly_list_dumps" / "commons_tabled_2024-08.json.gz",
            base / "longform_detail_text" / "longform_2024-08.json.gz",
        ]
    )
    replay.set_items(v for v in month.values() if "ospice" in v["questionText"])
    config = work / "config.toml"
    config.write_text(api_config(replay.base_url, extra=WATCH), encoding="utf-8")

    pqwatch = venv / "bin" / "pqwatch"
    args: list[str | Path] = [pqwatch, "--config", config]
    _run([*args, "init"], work)
    polled = _run([*args, "poll", "--since", "2024-08-01", "--until", "2024-08-31"], work)
    assert "new question" in polled or "questions" in polled, polled
    out = work / "preview"
    _run([*args, "digest", "--dry-run", "--out", out], work)
    [eml] = out.glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None and "hospice" in body.get_content().lower()
    assert message.get_body(("html",)) is not None
    _run([*args, "feeds"], work)
    files = sorted(p.name for p in (work / "feeds").iterdir())
    assert files == [
        "all.atom", "all.rss", "hospice-funding.atom", "hospice-funding.rss", "index.html",
    ]  # fmt: skip
    assert "Hospice funding" in (work / "feeds" / "index.html").read_text(encoding="utf-8")
    print(f"built, installed and ran the wheel in {time.monotonic() - started:.1f} s")
