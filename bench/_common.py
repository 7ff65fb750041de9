"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save_json(path: Path | None, result: Any) -> None:
    """Write a benchmark's result as JSON when --json was given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


def compile_package() -> None:
    """Write pqwatch's bytecode before timing whole processes.

    pip writes bytecode when it installs a package (sqlite-utils has its own), but not for an
    editable install, and nothing is written when PYTHONDONTWRITEBYTECODE is set (it is on
    some machines): each run would then compile pqwatch from source, about 0.1 s.
    """
    import compileall

    compileall.compile_dir(Path(__file__).resolve().parent.parent / "pqwatch", quiet=1)
