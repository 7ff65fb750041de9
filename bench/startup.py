"""Start-up benchmark: wall time of ``pqwatch --help`` (best of 5; target <= 0.3 s) and the
import time of ``pqwatch.cli`` with its heaviest imports (``python -X importtime``).

``--help`` reads no config; every other command does. So it also times ``pqwatch search``
on an empty archive (start-up, the config read, an empty search) and reading a config alone
(``import pqwatch.config`` and ``load_config``, in a fresh Python).

    .venv/bin/python -m bench.startup
    .venv/bin/python -m bench.startup --runs 10 --json startup.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench._common import compile_package, save_json

BIN = Path(sys.executable).parent
TARGET_HELP_S = 0.3
CONFIG = """
[database]
url = "sqlite:///pqwatch.db"

[[watches]]
name = "Hospices"
query = "hospice"

[[subscribers]]
email = "officer@example.org"
"""


def _best(cmd: list[str], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return min(times), times


def import_profile(module: str) -> tuple[float, list[tuple[str, float]]]:
    """Cumulative import time of `module` (s) and the imports it pulled in directly."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        check=True,
        capture_output=True,
        text=True,
    )
    total = 0.0
    top: list[tuple[str, float]] = []
    pending: list[tuple[str, float]] = []  # children come before their parent
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        try:
            seconds = int(cumulative) / 1e6
        except ValueError:
            continue  # the header line
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        if depth == 1:
            pending.append((name.strip(), seconds))
        elif depth == 0:
            if name.strip() == module:
                total, top = seconds, pending
            pending = []
    return total, sorted(top, key=lambda kv: -kv[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="save the results here")
    args = parser.parse_args(argv)
    compile_package()  # as an installed pqwatch would have it

    bare, _ = _best([sys.executable, "-c", "pass"], args.runs)
    helped, help_times = _best([str(BIN / "pqwatch"), "--help"], args.runs)
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "config.toml"
        config.write_text(CONFIG, encoding="utf-8")
        init = [str(BIN / "pqwatch"), "--config", str(config), "init"]
        subprocess.run(init, check=True, capture_output=True)
        searched, search_times = _best(
            [str(BIN / "pqwatch"), "--config", str(config), "search", "hospice"], args.runs
        )
        read, read_times = _best(
            [
                sys.executable,
                "-c",
                f"from pqwatch.config import load_config; load_config({str(config)!r})",
            ],
            args.runs,
        )
    cli_import, top = import_profile("pqwatch.cli")
    print(f"python -c pass:  {bare:.3f} s (best of {args.runs})")
    print(
        f"pqwatch --help:  {helped:.3f} s (best of {args.runs}; target <= {TARGET_HELP_S} s: "
        f"{'met' if helped <= TARGET_HELP_S else 'MISSED'})"
    )
    print(f"pqwatch search, empty archive: {searched:.3f} s (best of {args.runs})")
    print(f"python reading the config:     {read:.3f} s (best of {args.runs})")
    print(f"import pqwatch.cli: {cli_import * 1000:.0f} ms; heaviest direct imports:")
    for name, seconds in top[:8]:
        print(f"  {name:<40} {seconds * 1000:7.1f} ms")
    heavy = [n for n, _ in top if n.split(".")[0] in {"sqlalchemy", "pydantic", "sqlmodel"}]
    if heavy:
        print(f"heavy modules imported at start-up: {', '.join(heavy)}")
    save_json(
        args.json,
        {
            "python_bare_s": bare,
            "help_best_s": helped,
            "help_runs_s": help_times,
            "search_empty_best_s": searched,
            "search_empty_runs_s": search_times,
            "read_config_best_s": read,
            "read_config_runs_s": read_times,
            "import_cli_s": cli_import,
            "top_imports": top[:20],
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
