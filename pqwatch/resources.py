"""Where pqwatch finds the files it ships beside its code: the Alembic migrations and the Jinja
templates. Both are kept at the top of the repository (migrations/, templates/); a wheel
carries them inside the package as pqwatch/_migrations and pqwatch/_templates (see the
force-include in pyproject.toml).

One rule for both, and nowhere else: the copy packaged inside pqwatch when there is one (a
normal install: pip install ., pipx install .), else the repository's folder next to the
package (a checkout, and the editable install `make` does, whose pqwatch is the checkout's
folder, so a new migration or an edited template is seen at once).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pqwatch.errors import PQWatchError


def _folder(packaged: str, repository: str) -> Path:
    # importlib.resources is imported here, not at start-up: only migrating and rendering
    # need these folders, and both load far heavier things (Alembic, Jinja) anyway.
    from importlib.resources import files

    package = files("pqwatch")
    if not isinstance(package, Path):
        # Imported from a zip archive: Alembic reads its scripts from a real folder.
        raise PQWatchError(
            f"pqwatch is imported from {package}, not from files: install it with pip or pipx"
        )
    inside, beside = package / packaged, package.parent / repository
    for folder in (inside, beside):
        if folder.is_dir():
            return folder
    raise PQWatchError(
        f"pqwatch is installed without its {repository} ({inside} and {beside} are missing): "
        "reinstall it from a wheel or the repository"
    )


@cache
def migrations_dir() -> Path:
    """The Alembic script folder (env.py, versions/); a real folder, as Alembic needs."""
    return _folder("_migrations", "migrations")


@cache
def templates_dir() -> Path:
    """The Jinja templates of digests and feeds."""
    return _folder("_templates", "templates")
