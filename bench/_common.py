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
