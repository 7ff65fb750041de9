"""Load and validate config.toml. Contains no business logic.

Every problem becomes one ConfigError line naming the file, the key and what is wrong.
Relative paths resolve against the config file's folder, so the same file works whatever
the current directory. Secrets never live in the file: the SMTP password comes only from
PQWATCH_SMTP_PASSWORD, and PQWATCH_DATABASE_URL overrides [database] url.

The sections are plain dataclasses, read by pydantic's validator (``pydantic_core``), strict.
Its schema is built here from the dataclasses' fields, types and ``Rule``s, as pydantic builds
a model's. Strict pydantic models made from the same dataclasses read the same and write the
same errors, but importing pydantic and building them added about 65 ms to every command that
reads the config (``pqwatch search`` on an empty archive: 0.19 s against 0.13 s).
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
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
)  # fmt: skip

from pydantic_core import CoreSchema, SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from pqwatch.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from datetime import date, datetime

DEFAULT_CONFIG = "config.toml"
ENV_CONFIG = "PQWATCH_CONFIG"
ENV_DATABASE_URL = "PQWATCH_DATABASE_URL"
ENV_SMTP_PASSWORD = "PQWATCH_SMTP_PASSWORD"
# The sender when the config names none: fine for .eml files, never for SMTP.
DEFAULT_SENDER = "pqwatch@localhost"

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


def _address_of(mailbox: str) -> str:
    from email.utils import parseaddr  # here: only SMTP settings need it (~5 ms to import)

    return parseaddr(mailbox)[1]


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
    """Bounds and a check for one field, added to its schema as pydantic adds ``Field(ge=...)``
    and ``AfterValidator``."""

    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    min_length: int | None = None
    check: Callable[[Any], Any] | None = None

    def applied_to(self, schema: CoreSchema) -> CoreSchema:
        for key in ("ge", "le", "gt", "min_length"):
            if getattr(self, key) is not None:
                schema = cast(CoreSchema, {**schema, key: getattr(self, key)})
        if self.check is not None:
            schema = cs.no_info_after_validator_function(self.check, schema)
        return schema


EmailAddress = Annotated[str, Rule(check=_email_address)]
Mailbox = Annotated[str, Rule(check=_mailbox)]
HttpUrl = Annotated[str, Rule(check=_http_url)]
NonBlank = Annotated[str, Rule(check=_non_blank)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
House = Literal["Commons", "Lords"]
_HOUSES: tuple[House, ...] = ("Commons", "Lords")


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    url: NonBlank = "sqlite:///pqwatch.db"


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """What every [sources.NAME] section has (pqwatch.sources.http reads the HTTP ones)."""

    enabled: bool = True
    base_url: HttpUrl = "https://example.org"
    requests_per_second: Annotated[float, Rule(gt=0, le=10000)] = 1.0
    timeout_seconds: Annotated[float, Rule(gt=0, le=600)] = 60.0
    max_retries: Annotated[int, Rule(ge=0, le=10)] = 3
    max_concurrency: Annotated[int, Rule(ge=1, le=16)] = 2
    # Longest wait honoured from a Retry-After header, and the backoff base.
    max_retry_after_seconds: Annotated[float, Rule(ge=0, le=3600)] = 120.0
    backoff_seconds: Annotated[float, Rule(ge=0, le=60)] = 2.0


@dataclass(frozen=True, kw_only=True)
class UKParliamentConfig(SourceConfig):
    base_url: HttpUrl = "https://questions-statements-api.parliament.uk"
    houses: Annotated[list[House], Rule(min_length=1)] = field(
        default_factory=lambda: list(_HOUSES)
    )
    # Written ministerial statements too (the same API; a source of their own, uk_statements).
    statements: bool = False
    initial_lookback_days: Annotated[int, Rule(ge=1, le=3650)] = 7
    # Unanswered questions change without a new date (transfers, headings filled in), so each
    # poll re-reads the questions tabled in this many recent days, not just since the cursor.
    revisit_tabled_days: Annotated[int, Rule(ge=0, le=365)] = 7
    requests_per_second: Annotated[float, Rule(gt=0, le=10000)] = 5.0
    page_size: Annotated[int, Rule(ge=1, le=1000)] = 100
    max_concurrency: Annotated[int, Rule(ge=1, le=16)] = 4


@dataclass(frozen=True, kw_only=True)
class ScottishParliamentConfig(SourceConfig):
    enabled: bool = False
    base_url: HttpUrl = "https://data.parliament.scot"
    # A year is one 7-10 MB download: never fetched more often than this.
    min_minutes_between_downloads: Annotated[int, Rule(ge=0, le=7 * 24 * 60)] = 180
    # Past years are fetched again while they hold open questions, back this many years.
    open_years_back: Annotated[int, Rule(ge=0, le=30)] = 3
    timeout_seconds: Annotated[float, Rule(gt=0, le=600)] = 120.0


@dataclass(frozen=True, kw_only=True)
class SeneddConfig(SourceConfig):
    enabled: bool = False
    base_url: HttpUrl = "https://record.senedd.wales"
    # The first poll walks from here (WQ ids are dense and sequential: ~100230 in Aug 2026).
    start_id: Annotated[int, Rule(ge=1)] = 100000
    # New ids are walked upward until this many in a row are missing.
    stop_after_misses: Annotated[int, Rule(ge=1, le=100)] = 5
    # Unanswered questions are read again, this many a poll, oldest check first.
    recheck_per_poll: Annotated[int, Rule(ge=0, le=1000)] = 50


@dataclass(frozen=True, kw_only=True)
class NIAssemblyConfig(SourceConfig):
    enabled: bool = False
    base_url: HttpUrl = "https://data.niassembly.gov.uk"
    # Tabled questions are read back this far every poll; answers further (they come late).
    tabled_days: Annotated[int, Rule(ge=1, le=3650)] = 21
    answered_days: Annotated[int, Rule(ge=1, le=3650)] = 90


@dataclass(frozen=True, kw_only=True)
class WhatDoTheyKnowConfig(SourceConfig):
    enabled: bool = False
    base_url: HttpUrl = "https://www.whatdotheyknow.com"
    # robots.txt asks crawlers to keep off feeds: a considerate feed reader, one at a time.
    requests_per_second: Annotated[float, Rule(gt=0, le=10000)] = 1.0
    max_concurrency: Annotated[int, Rule(ge=1, le=16)] = 1
    # Feeds followed: search queries (Alaveteli's own syntax), authorities' and users'
    # url_names, and single requests by url_title.
    searches: list[NonBlank] = field(default_factory=list)
    bodies: list[NonBlank] = field(default_factory=list)
    users: list[NonBlank] = field(default_factory=list)
    requests: list[NonBlank] = field(default_factory=list)
    # Each watch's words also become a search feed.
    watch_searches: bool = True
    # Pages of 25 events read per feed and poll at most (paging stops at a known event).
    max_pages: Annotated[int, Rule(ge=1, le=40)] = 4


@dataclass(frozen=True, kw_only=True)
class SourcesConfig:
    uk_parliament: UKParliamentConfig = field(default_factory=UKParliamentConfig)
    scottish_parliament: ScottishParliamentConfig = field(default_factory=ScottishParliamentConfig)
    senedd: SeneddConfig = field(default_factory=SeneddConfig)
    ni_assembly: NIAssemblyConfig = field(default_factory=NIAssemblyConfig)
    whatdotheyknow: WhatDoTheyKnowConfig = field(default_factory=WhatDoTheyKnowConfig)


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
    # "from" in the file: a Python keyword.
    from_: Mailbox = field(default=f"pqwatch <{DEFAULT_SENDER}>", metadata={"key": "from"})
    smtp_host: str | None = None
    smtp_port: Annotated[int, Rule(ge=1, le=65535)] | None = None
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    outbox_dir: Path = Path("outbox")
    operator: EmailAddress | None = None
    timeout_seconds: Annotated[float, Rule(gt=0, le=600)] = 30.0

    @property
    def port(self) -> int:
        if self.smtp_port is not None:
            return self.smtp_port
        return {"starttls": 587, "ssl": 465, "none": 25}[self.security]


@dataclass(frozen=True, kw_only=True)
class FeedsConfig:
    out_dir: Path = Path("feeds")
    site_url: HttpUrl | None = None
    max_items: Annotated[int, Rule(ge=1, le=10000)] = 100


def _proxy(value: str) -> str:
    """An address or network (10.0.0.0/8) whose X-Forwarded-For/-Proto headers are believed,
    or "*" for any (only behind a proxy that is the sole way in)."""
    import ipaddress

    if value != "*":
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f'{value!r} is not an IP address or network (or "*")') from None
    return value


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """`pqwatch serve`. Loopback unless told: a public address belongs behind a proxy."""

    host: NonBlank = "127.0.0.1"
    port: Annotated[int, Rule(ge=0, le=65535)] = 8080  # 0: any free port
    # The public address (https://pq.example.org); [feeds] site_url is used when unset.
    site_url: HttpUrl | None = None
    self_service: bool = True
    # Proxies whose forwarded client address and scheme are believed (none by default).
    trusted_proxies: list[Annotated[str, Rule(check=_proxy)]] = field(default_factory=list)
    # Processes serving the one port: one per core is the most that helps (each has a GIL).
    workers: Annotated[int, Rule(ge=1, le=64)] = 1


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    timezone: Annotated[str, Rule(check=_timezone)] = "Europe/London"
    poll_every_minutes: Annotated[int, Rule(ge=1, le=7 * 24 * 60)] = 60
    digest_weekday: Weekday = "mon"
    digest_time: Annotated[str, Rule(check=_hhmm)] = "08:00"
    # Consecutive failed polls of one source before the operator gets one alert.
    alert_after_failures: Annotated[int, Rule(ge=1, le=1000)] = 3

    def today(self, now: datetime) -> date:
        """The calendar day in the configured zone: the API's dates are UK calendar dates."""
        from zoneinfo import ZoneInfo

        return now.astimezone(ZoneInfo(self.timezone)).date()


@dataclass(frozen=True, kw_only=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    watches: list[WatchConfig] = field(default_factory=list)
    subscribers: list[SubscriberConfig] = field(default_factory=list)
    email: EmailConfig = field(default_factory=EmailConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    web: WebConfig = field(default_factory=WebConfig)
    # Where the file was read from; set by load_config, not a key of the file.
    path: Path = field(default=Path(DEFAULT_CONFIG), metadata={"key": None})

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def watch_names_for(self, subscriber: SubscriberConfig) -> list[str]:
        if subscriber.watches is None:
            return [w.name for w in self.watches]
        return list(subscriber.watches)


def _schema(hint: Any) -> CoreSchema:
    """The schema of a field's type: what pydantic builds for it in a strict model."""
    origin = get_origin(hint)
    if origin is Annotated:
        inner, *rules = get_args(hint)
        schema = _schema(inner)
        for rule in rules:
            schema = rule.applied_to(schema)
        return schema
    if origin is Union or origin is UnionType:  # X | None
        (inner,) = (a for a in get_args(hint) if a is not type(None))
        return cs.nullable_schema(_schema(inner))
    if origin is Literal:
        return cs.literal_schema(list(get_args(hint)))
    if origin is list:
        return cs.list_schema(_schema(get_args(hint)[0]))
    if hint is Path:  # a folder, written as text
        return cs.no_info_after_validator_function(Path, cs.str_schema())
    if isinstance(hint, type) and is_dataclass(hint):
        return _section_schema(hint)
    simple: dict[type, Callable[[], CoreSchema]] = {
        str: cs.str_schema, int: cs.int_schema, float: cs.float_schema, bool: cs.bool_schema
    }  # fmt: skip
    return simple[hint]()


def _section_schema(cls: type) -> CoreSchema:
    """A table with exactly the section's keys (as a pydantic model reads one), then the
    dataclass made from it."""
    hints = get_type_hints(cls, include_extras=True)
    keys: dict[str, cs.ModelField] = {}
    for f in fields(cls):
        key = f.metadata.get("key", f.name)  # its name in the file; None: not in the file
        if key is None:
            continue
        schema = _schema(hints[f.name])
        if f.default is not MISSING:
            schema = cs.with_default_schema(schema, default=f.default)
        elif f.default_factory is not MISSING:
            schema = cs.with_default_schema(schema, default_factory=f.default_factory)
        keys[f.name] = cs.model_field(schema, validation_alias=key)
    table = cs.model_fields_schema(keys, model_name=cls.__name__, extra_behavior="forbid")
    # The table is read as (values, extra keys, keys set).
    return cs.no_info_after_validator_function(lambda read: cls(**read[0]), table)


@cache
def _validator() -> SchemaValidator:
    # Strict: "100" is not a number and 1 is not a boolean.
    return SchemaValidator(_schema(Config), config=cs.CoreConfig(strict=True))


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out or "(top level)"


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        hint = _SECRET_HINTS.get(str(err["loc"][-1]))
        return f"unknown key{' (' + hint + ')' if hint else ''}"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind in {"string_type", "int_type", "float_type", "bool_type", "list_type", "model_type"}:
        msg += f", got {type(err['input']).__name__} {err['input']!r}"
    return msg


def _resolve_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:" and not rest.startswith("file:"):
            return prefix + str((base / rest).resolve())
    return url


def _cross_check(cfg: Config, where: str) -> None:
    from pqwatch.query import parse  # stdlib-only module

    if cfg.email.smtp_host and _address_of(cfg.email.from_) == DEFAULT_SENDER:
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
            parse(w.query)
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
        cfg = _validator().validate_python(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ConfigError(
            f"{where}: {_loc(tuple(first['loc']))}: {_message(first)}"
            + (more if len(errors) > 1 else "")
        ) from None
    assert isinstance(cfg, Config)
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
