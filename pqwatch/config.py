"""Load and validate config.toml. Contains no business logic.

Every problem becomes one ConfigError line naming the file, the key and what is wrong.
Relative paths resolve against the config file's folder, so the same file works whatever
the current directory. Secrets never live in the file: the SMTP password comes only from
PQWATCH_SMTP_PASSWORD, and PQWATCH_DATABASE_URL overrides [database] url.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

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
    _, addr = parseaddr(value)
    if not addr or not _ADDR_RE.match(addr):
        raise ValueError(f"{value!r} is not a valid mailbox (use 'Name <address@example.org>')")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
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


EmailAddress = Annotated[str, AfterValidator(_email_address)]
Mailbox = Annotated[str, AfterValidator(_mailbox)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
NonBlank = Annotated[str, AfterValidator(_non_blank)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
House = Literal["Commons", "Lords"]
_HOUSES: tuple[House, ...] = ("Commons", "Lords")


class _Section(BaseModel):
    # strict: "100" is not a number and 1 is not a boolean; a config says what it means.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class DatabaseConfig(_Section):
    url: NonBlank = "sqlite:///pqwatch.db"


class UKParliamentConfig(_Section):
    base_url: HttpUrl = "https://questions-statements-api.parliament.uk"
    houses: list[House] = Field(default_factory=lambda: list(_HOUSES), min_length=1)
    initial_lookback_days: int = Field(default=7, ge=1, le=3650)
    # Unanswered questions change without a new date (transfers, headings filled in), so each
    # poll re-reads the questions tabled in this many recent days, not just since the cursor.
    revisit_tabled_days: int = Field(default=7, ge=0, le=365)
    requests_per_second: float = Field(default=5.0, gt=0, le=10000)
    # The live API often takes 7-30 s per list query (API.md section 0), so be generous.
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    page_size: int = Field(default=100, ge=1, le=1000)
    max_retries: int = Field(default=3, ge=0, le=10)
    max_concurrency: int = Field(default=4, ge=1, le=16)
    # Longest wait honoured from a Retry-After header, and the backoff base.
    max_retry_after_seconds: float = Field(default=120.0, ge=0, le=3600)
    backoff_seconds: float = Field(default=2.0, ge=0, le=60)


class SourcesConfig(_Section):
    uk_parliament: UKParliamentConfig = Field(default_factory=UKParliamentConfig)


class WatchConfig(_Section):
    name: NonBlank
    query: NonBlank


class SubscriberConfig(_Section):
    email: EmailAddress
    name: str = ""
    # None means every watch, including watches added later.
    watches: list[NonBlank] | None = None
    frequency: Literal["weekly", "daily"] = "weekly"
    send_empty: bool = False


class EmailConfig(_Section):
    from_: Mailbox = Field(default="pqwatch <pqwatch@localhost>", alias="from")
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    outbox_dir: Path = Field(default=Path("outbox"), strict=False)
    operator: EmailAddress | None = None
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @property
    def port(self) -> int:
        if self.smtp_port is not None:
            return self.smtp_port
        return {"starttls": 587, "ssl": 465, "none": 25}[self.security]


class FeedsConfig(_Section):
    out_dir: Path = Field(default=Path("feeds"), strict=False)
    site_url: HttpUrl | None = None
    max_items: int = Field(default=100, ge=1, le=10000)


class ScheduleConfig(_Section):
    timezone: Annotated[str, AfterValidator(_timezone)] = "Europe/London"
    poll_every_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    digest_weekday: Weekday = "mon"
    digest_time: Annotated[str, AfterValidator(_hhmm)] = "08:00"
    # Consecutive failed polls of one source before the operator gets one alert.
    alert_after_failures: int = Field(default=3, ge=1, le=1000)


class Config(_Section):
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    watches: list[WatchConfig] = Field(default_factory=list)
    subscribers: list[SubscriberConfig] = Field(default_factory=list)
    email: EmailConfig = Field(default_factory=EmailConfig)
    feeds: FeedsConfig = Field(default_factory=FeedsConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    # Where the file was read from; not a key of the file.
    path: Path = Field(default=Path(DEFAULT_CONFIG), exclude=True, strict=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def watch_names_for(self, subscriber: SubscriberConfig) -> list[str]:
        if subscriber.watches is None:
            return [w.name for w in self.watches]
        return list(subscriber.watches)


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
    if kind == "extra_forbidden":
        hint = _SECRET_HINTS.get(str(loc[-1]))
        return f"unknown key{' (' + hint + ')' if hint else ''}"
    if kind == "missing":
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
        cfg = Config.model_validate(data)
    except ValidationError as exc:
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
    return cfg.model_copy(
        update={
            "path": p.resolve(),
            "database": DatabaseConfig(url=_resolve_url(url, base)),
            "email": cfg.email.model_copy(update={"outbox_dir": base / cfg.email.outbox_dir}),
            "feeds": cfg.feeds.model_copy(update={"out_dir": base / cfg.feeds.out_dir}),
        }
    )
