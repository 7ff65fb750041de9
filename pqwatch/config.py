"""Load and validate config.toml. Contains no business logic.

Every problem becomes one ConfigError line naming the file, the key and what is wrong.
Relative paths resolve against the config file's folder, so the same file works whatever
the current directory. Secrets never live in the file: the SMTP password comes only from
PQWATCH_SMTP_PASSWORD, and PQWATCH_DATABASE_URL overrides [database] url.

The sections are plain dataclasses, and one declaration serves two readers. A valid file,
the usual case, is read by ``_fast``, a small strict reader without pydantic: importing
pydantic and building its validators cost more than a whole ``pqwatch search`` otherwise
does (docs/PERFORMANCE.md). Anything ``_fast`` is not sure of goes to pydantic, strict, which
accepts or writes the error message. A test holds the two to the same results.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pqwatch.errors import ConfigError, UsageError

DEFAULT_CONFIG = "config.toml"
ENV_CONFIG = "PQWATCH_CONFIG"
ENV_DATABASE_URL = "PQWATCH_DATABASE_URL"
ENV_SMTP_PASSWORD = "PQWATCH_SMTP_PASSWORD"

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDR_RE = re.compile(rf"^[^@\s<>()\[\],;:\"]+@{_LABEL}(?:\.{_LABEL})*$")

# Keys people reach for that must not be in the file, with the reason.
_PASSWORD_HINT = f"the SMTP password comes only from the environment variable {ENV_SMTP_PASSWORD}"
_SECRET_HINTS = {"password": _PASSWORD_HINT, "smtp_password": _PASSWORD_HINT}


def _email_address(value: str) -> str:
    if not _ADDR_RE.match(value):
        raise ValueError(f"{value!r} is not a valid email address")
    return value.lower() if value.isascii() else value


def _mailbox(value: str) -> str:
    """A From-style mailbox: 'Name <addr@example.org>' or a bare address."""
    from email.utils import parseaddr  # here: the email package costs every command ~10 ms

    _, addr = parseaddr(value)
    if not addr or not _ADDR_RE.match(addr):
        raise ValueError(f"{value!r} is not a valid mailbox (use 'Name <address@example.org>')")
    return value


def _timezone(value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as Europe/London)"
        ) from None
    return value


def _hhmm(value: str) -> str:
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if not m:
        raise ValueError(f"{value!r} is not a time of day in HH:MM (24-hour) form")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


@dataclass(frozen=True)
class Rule:
    """Bounds and a check for one field, read by ``_fast`` and (as a core schema) by pydantic."""

    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    min_length: int | None = None
    check: Callable[[Any], Any] | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        schema = handler(source)
        for key in ("ge", "le", "gt", "min_length"):
            if getattr(self, key) is not None:
                schema[key] = getattr(self, key)
        if self.check is not None:
            schema = core_schema.no_info_after_validator_function(self.check, schema)
        return schema

    def apply(self, value: Any) -> Any:
        """The value as pydantic would return it; raises ValueError where pydantic would fail."""
        size = len(value) if self.min_length is not None else 0
        if (
            (self.ge is not None and not value >= self.ge)
            or (self.le is not None and not value <= self.le)
            or (self.gt is not None and not value > self.gt)
            or (self.min_length is not None and size < self.min_length)
        ):
            raise ValueError("out of range")
        return self.check(value) if self.check is not None else value


class _PathFromText:
    """A folder given as text in the file (pydantic's strict mode wants a Path object)."""

    @staticmethod
    def __get_pydantic_core_schema__(source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(Path, core_schema.str_schema())


EmailAddress = Annotated[str, Rule(check=_email_address)]
Mailbox = Annotated[str, Rule(check=_mailbox)]
HttpUrl = Annotated[str, Rule(check=_http_url)]
NonBlank = Annotated[str, Rule(check=_non_blank)]
Folder = Annotated[Path, _PathFromText]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
House = Literal["Commons", "Lords"]
_HOUSES: tuple[House, ...] = ("Commons", "Lords")


def _range(**bounds: float) -> Rule:
    return Rule(**bounds)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    url: NonBlank = "sqlite:///pqwatch.db"


@dataclass(frozen=True, kw_only=True)
class UKParliamentConfig:
    base_url: HttpUrl = "https://questions-statements-api.parliament.uk"
    houses: Annotated[list[House], Rule(min_length=1)] = field(
        default_factory=lambda: list(_HOUSES)
    )
    initial_lookback_days: Annotated[int, _range(ge=1, le=3650)] = 7
    # Unanswered questions change without a new date (transfers, headings filled in), so each
    # poll re-reads the questions tabled in this many recent days, not just since the cursor.
    revisit_tabled_days: Annotated[int, _range(ge=0, le=365)] = 7
    requests_per_second: Annotated[float, _range(gt=0, le=10000)] = 5.0
    # The live API often takes 7-30 s per list query (API.md section 0), so be generous.
    timeout_seconds: Annotated[float, _range(gt=0, le=600)] = 60.0
    page_size: Annotated[int, _range(ge=1, le=1000)] = 100
    max_retries: Annotated[int, _range(ge=0, le=10)] = 3
    max_concurrency: Annotated[int, _range(ge=1, le=16)] = 4
    # Longest wait honoured from a Retry-After header, and the backoff base.
    max_retry_after_seconds: Annotated[float, _range(ge=0, le=3600)] = 120.0
    backoff_seconds: Annotated[float, _range(ge=0, le=60)] = 2.0


@dataclass(frozen=True, kw_only=True)
class SourcesConfig:
    uk_parliament: UKParliamentConfig = field(default_factory=UKParliamentConfig)


@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    name: NonBlank
    query: NonBlank


@dataclass(frozen=True, kw_only=True)
class SubscriberConfig:
    email: EmailAddress
    name: str = ""
    # None means every watch, including watches added later.
    watches: list[NonBlank] | None = None
    frequency: Literal["weekly", "daily"] = "weekly"
    send_empty: bool = False


@dataclass(frozen=True, kw_only=True)
class EmailConfig:
    # "from" in the file (a Python keyword, so renamed on the way in).
    from_: Mailbox = "pqwatch <pqwatch@localhost>"
    smtp_host: str | None = None
    smtp_port: Annotated[int, _range(ge=1, le=65535)] | None = None
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    outbox_dir: Folder = Path("outbox")
    operator: EmailAddress | None = None
    timeout_seconds: Annotated[float, _range(gt=0, le=600)] = 30.0

    @property
    def port(self) -> int:
        if self.smtp_port is not None:
            return self.smtp_port
        return {"starttls": 587, "ssl": 465, "none": 25}[self.security]


@dataclass(frozen=True, kw_only=True)
class FeedsConfig:
    out_dir: Folder = Path("feeds")
    site_url: HttpUrl | None = None
    max_items: Annotated[int, _range(ge=1, le=10000)] = 100


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    timezone: Annotated[str, Rule(check=_timezone)] = "Europe/London"
    poll_every_minutes: Annotated[int, _range(ge=1, le=7 * 24 * 60)] = 60
    digest_weekday: Weekday = "mon"
    digest_time: Annotated[str, Rule(check=_hhmm)] = "08:00"
    # Consecutive failed polls of one source before the operator gets one alert.
    alert_after_failures: Annotated[int, _range(ge=1, le=1000)] = 3


@dataclass(frozen=True, kw_only=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    watches: list[WatchConfig] = field(default_factory=list)
    subscribers: list[SubscriberConfig] = field(default_factory=list)
    email: EmailConfig = field(default_factory=EmailConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # Where the file was read from; set by load_config, not a key of the file.
    path: Path = field(default=Path(DEFAULT_CONFIG), metadata={"file_key": False})

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def watch_names_for(self, subscriber: SubscriberConfig) -> list[str]:
        if subscriber.watches is None:
            return [w.name for w in self.watches]
        return list(subscriber.watches)


_SECTIONS: dict[str, type] = {
    c.__name__: c
    for c in (DatabaseConfig, UKParliamentConfig, SourcesConfig, WatchConfig, SubscriberConfig,
              EmailConfig, FeedsConfig, ScheduleConfig, Config)
}  # fmt: skip


# -- the fast reader -----------------------------------------------------------------------


class _Unsure(Exception):
    """``_fast`` cannot vouch for this value: pydantic decides."""


@cache
def _fields_of(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in fields(cls) if f.metadata.get("file_key", True)}


def _fast(hint: Any, raw: Any) -> Any:
    """``raw`` read as ``hint`` exactly as strict pydantic would, or _Unsure."""
    origin = get_origin(hint)
    if origin is Annotated:
        inner, *marks = get_args(hint)
        if inner is Path and _PathFromText in marks:
            if type(raw) is not str:
                raise _Unsure
            return Path(raw)
        value = _fast(inner, raw)
        for mark in marks:
            if isinstance(mark, Rule):
                try:
                    value = mark.apply(value)
                except (ValueError, TypeError):
                    raise _Unsure from None
        return value
    if origin is Union or origin is UnionType:  # X | None: TOML has no null, so it is an X
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise _Unsure
        return _fast(args[0], raw)
    if origin is Literal:
        if type(raw) is str and raw in get_args(hint):
            return raw
        raise _Unsure
    if origin is list:
        if type(raw) is not list:
            raise _Unsure
        (item,) = get_args(hint)
        return [_fast(item, v) for v in raw]
    # Strict, as pydantic is told to be: "100" is not a number and 1 is not a boolean.
    if hint is str or hint is bool or hint is int:
        if type(raw) is hint:
            return raw
        raise _Unsure
    if hint is float:
        if type(raw) is float or type(raw) is int:
            return float(raw)
        raise _Unsure
    if isinstance(hint, type) and is_dataclass(hint):
        if type(raw) is not dict:
            raise _Unsure
        known = _fields_of(hint)
        values = {}
        for key, value in raw.items():
            name = "from_" if key == "from" else key
            if name not in known:
                raise _Unsure
            values[name] = _fast(known[name], value)
        try:
            return hint(**values)
        except TypeError:  # a required key is missing
            raise _Unsure from None
    raise _Unsure


def _validate(data: dict[str, Any]) -> Config:
    try:
        cfg = _fast(Config, data)
        assert isinstance(cfg, Config)
        return cfg
    except _Unsure:
        return _validate_with_pydantic(data)


def _validate_with_pydantic(data: dict[str, Any]) -> Config:
    """Strict pydantic models made from the same dataclasses; raises its ValidationError."""
    email = data.get("email")
    if isinstance(email, dict) and "from" in email:
        data = {**data, "email": {("from_" if k == "from" else k): v for k, v in email.items()}}
    # As typer does: no scan of every installed package for pydantic plugins.
    previous = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "1"
    try:
        model = _model_for(Config).model_validate(data)
    finally:
        if previous is None:
            del os.environ["PYDANTIC_DISABLE_PLUGINS"]
        else:
            os.environ["PYDANTIC_DISABLE_PLUGINS"] = previous
    cfg = _from_model(model)
    assert isinstance(cfg, Config)
    return cfg


@cache
def _model_for(cls: type) -> Any:
    """A strict pydantic model with the fields, types, rules and defaults of a section."""
    from pydantic import ConfigDict, Field, create_model

    specs: dict[str, Any] = {}
    for f in fields(cls):
        if not f.metadata.get("file_key", True):
            continue
        hint = _swap(_fields_of(cls)[f.name])
        if f.default_factory is not MISSING:
            specs[f.name] = (hint, Field(default_factory=f.default_factory))
        elif f.default is not MISSING:
            specs[f.name] = (hint, f.default)
        else:
            specs[f.name] = (hint, ...)
    config = ConfigDict(extra="forbid", frozen=True, strict=True)
    return create_model(cls.__name__, __config__=config, **specs)


def _swap(hint: Any) -> Any:
    """The type with each section dataclass in it replaced by its pydantic model."""
    origin = get_origin(hint)
    if origin is Annotated:
        inner, *marks = get_args(hint)
        return Annotated[(_swap(inner), *marks)]
    if origin is Union or origin is UnionType:
        return Union[tuple(_swap(a) for a in get_args(hint))]  # noqa: UP007
    if origin is list:
        return list[_swap(get_args(hint)[0])]  # type: ignore[misc]
    if isinstance(hint, type) and is_dataclass(hint):
        return _model_for(hint)
    return hint


def _from_model(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, list):
        return [_from_model(v) for v in value]
    if isinstance(value, BaseModel):
        cls = _SECTIONS[type(value).__name__]
        return cls(**{name: _from_model(getattr(value, name)) for name in _fields_of(cls)})
    return value


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + ("from" if part == "from_" else part)
    return out or "(top level)"


def _message(err: Any) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        hint = _SECRET_HINTS.get(str(loc[-1]))
        return f"unknown key{' (' + hint + ')' if hint else ''}"
    if kind in ("missing", "missing_argument"):
        return "required key is missing"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind in {
        "string_type",
        "int_type",
        "int_parsing",
        "float_type",
        "float_parsing",
        "bool_type",
        "bool_parsing",
        "list_type",
        "model_type",
        "dict_type",
        "dataclass_type",
    }:
        msg += f", got {type(err.get('input')).__name__} {err.get('input')!r}"
    return msg


def _resolve_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:" and not rest.startswith("file:"):
            return prefix + str((base / rest).resolve())
    return url


def _cross_check(cfg: Config, where: str) -> None:
    from pqwatch.search.query import compile_query  # stdlib-only module

    if cfg.email.smtp_host and cfg.email.from_ == EmailConfig.from_:
        # Mail from pqwatch@localhost is refused or lost, and replies go nowhere.
        raise ConfigError(
            f"{where}: email.from: set the address digests are sent from "
            f"(the default {EmailConfig.from_!r} cannot be sent by SMTP)"
        )

    names: dict[str, int] = {}
    for i, w in enumerate(cfg.watches):
        if w.name.casefold() in names:
            raise ConfigError(f"{where}: watches[{i}].name: duplicate watch name {w.name!r}")
        names[w.name.casefold()] = i
        try:
            compile_query(w.query)
        except UsageError as exc:
            raise ConfigError(f"{where}: watches[{i}].query: {exc}") from None
    emails: set[str] = set()
    for i, s in enumerate(cfg.subscribers):
        if s.email.casefold() in emails:
            raise ConfigError(f"{where}: subscribers[{i}].email: duplicate subscriber {s.email!r}")
        emails.add(s.email.casefold())
        for j, name in enumerate(s.watches or []):
            if name.casefold() not in names:
                known = ", ".join(repr(w.name) for w in cfg.watches) or "none configured"
                raise ConfigError(
                    f"{where}: subscribers[{i}].watches[{j}]: no watch named {name!r} "
                    f"(watches: {known})"
                )


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, validate and resolve the config file. Raises ConfigError, never anything else."""
    p = Path(path or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)
    where = str(p)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a folder, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    try:
        cfg = _validate(data)
    except Exception as exc:  # pydantic's ValidationError (pydantic is imported only then)
        if not hasattr(exc, "errors"):
            raise
        errors = exc.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ConfigError(
            f"{where}: {_loc(tuple(first['loc']))}: {_message(first)}"
            + (more if len(errors) > 1 else "")
        ) from None
    _cross_check(cfg, where)

    base = p.resolve().parent
    url = os.environ.get(ENV_DATABASE_URL) or cfg.database.url
    return replace(
        cfg,
        path=p.resolve(),
        database=DatabaseConfig(url=_resolve_url(url, base)),
        email=replace(cfg.email, outbox_dir=base / cfg.email.outbox_dir),
        feeds=replace(cfg.feeds, out_dir=base / cfg.feeds.out_dir),
    )
