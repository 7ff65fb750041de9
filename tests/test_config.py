from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pqwatch.config import (
    Config,
    DatabaseConfig,
    EmailConfig,
    FeedsConfig,
    SubscriberConfig,
    WatchConfig,
    load_config,
)
from pqwatch.errors import ConfigError
from tests.conftest import MINIMAL_CONFIG, CliResult


@pytest.fixture
def file_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The [database] url as the file gives it: tests of reading the config, which use no
    database, are not overridden by the suite's PostgreSQL URL in the environment."""
    monkeypatch.delenv("PQWATCH_DATABASE_URL", raising=False)


BAD_CONFIGS = [
    # (config text, the whole one-line error after "pqwatch: error: PATH: ")
    ("[databse]\nurl = 'x'\n", "databse: unknown key"),
    ("path = '/etc'\n", "path: unknown key"),  # set by load_config, not a key of the file
    ("[sources.uk_parliament]\ntimeout = 3\n", "sources.uk_parliament.timeout: unknown key"),
    ("[email]\nfrom_ = 'pq@example.org'\n", "email.from_: unknown key"),
    (
        "[email]\npassword = 'hunter2'\n",
        "email.password: unknown key (the SMTP password comes only from the environment "
        "variable PQWATCH_SMTP_PASSWORD)",
    ),
    (
        "[email]\nsmtp_password = 'x'\n",
        "email.smtp_password: unknown key (the SMTP password comes only from the environment "
        "variable PQWATCH_SMTP_PASSWORD)",
    ),
    ("[[watches]]\nname = 'Hospices'\n", "watches[0].query: required key is missing"),
    ("[[subscribers]]\nname = 'no email'\n", "subscribers[0].email: required key is missing"),
    # Strict types: a quoted number or a 1 for true is a mistake, not a value.
    (
        "[sources.uk_parliament]\nrequests_per_second = 'fast'\n",
        "sources.uk_parliament.requests_per_second: Input should be a valid number, got str 'fast'",
    ),
    (
        "[sources.uk_parliament]\npage_size = '100'\n",
        "sources.uk_parliament.page_size: Input should be a valid integer, got str '100'",
    ),
    (
        "[sources.uk_parliament]\nmax_retries = true\n",
        "sources.uk_parliament.max_retries: Input should be a valid integer, got bool True",
    ),
    (
        "[email]\nsmtp_port = '25'\n",
        "email.smtp_port: Input should be a valid integer, got str '25'",
    ),
    (
        "[email]\nsmtp_port = 2525.0\n",
        "email.smtp_port: Input should be a valid integer, got float 2525.0",
    ),
    (
        "[[subscribers]]\nemail = 'a@example.org'\nsend_empty = 1\n",
        "subscribers[0].send_empty: Input should be a valid boolean, got int 1",
    ),
    ("[email]\noutbox_dir = 5\n", "email.outbox_dir: Input should be a valid string, got int 5"),
    (
        "[schedule]\ndigest_time = 08:00:00\n",
        "schedule.digest_time: Input should be a valid string, got time datetime.time(8, 0)",
    ),
    (
        "[schedule]\npoll_every_minutes = 'hourly'\n",
        "schedule.poll_every_minutes: Input should be a valid integer, got str 'hourly'",
    ),
    ("watches = 'palliative'\n", "watches: Input should be a valid list, got str 'palliative'"),
    (
        "[[subscribers]]\nemail = 'a@b.org'\nwatches = 'all'\n",
        "subscribers[0].watches: Input should be a valid list, got str 'all'",
    ),
    (
        "sources = 5\n",
        "sources: Input should be a valid dictionary or instance of SourcesConfig, got int 5",
    ),
    (
        "watches = [1]\n",
        "watches[0]: Input should be a valid dictionary or instance of WatchConfig, got int 1",
    ),
    # Choices and bounds.
    (
        "[sources.uk_parliament]\nhouses = ['Scotland']\n",
        "sources.uk_parliament.houses[0]: Input should be 'Commons' or 'Lords'",
    ),
    (
        "[sources.uk_parliament]\nhouses = []\n",
        "sources.uk_parliament.houses: List should have at least 1 item after validation, not 0",
    ),
    (
        "[sources.uk_parliament]\npage_size = 0\n",
        "sources.uk_parliament.page_size: Input should be greater than or equal to 1",
    ),
    (
        "[sources.uk_parliament]\nrequests_per_second = 0\n",
        "sources.uk_parliament.requests_per_second: Input should be greater than 0",
    ),
    (
        "[sources.uk_parliament]\nrequests_per_second = nan\n",
        "sources.uk_parliament.requests_per_second: Input should be less than or equal to 10000",
    ),
    (
        "[sources.uk_parliament]\ntimeout_seconds = inf\n",
        "sources.uk_parliament.timeout_seconds: Input should be less than or equal to 600",
    ),
    (
        "[email]\nsmtp_port = 70000\n",
        "email.smtp_port: Input should be less than or equal to 65535",
    ),
    ("[feeds]\nmax_items = 0\n", "feeds.max_items: Input should be greater than or equal to 1"),
    (
        "[[subscribers]]\nemail = 'x@example.org'\nfrequency = 'monthly'\n",
        "subscribers[0].frequency: Input should be 'weekly' or 'daily'",
    ),
    ("[email]\nsecurity = 'tls'\n", "email.security: Input should be 'starttls', 'ssl' or 'none'"),
    (
        "[schedule]\ndigest_weekday = 'monday'\n",
        "schedule.digest_weekday: "
        "Input should be 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' or 'sun'",
    ),
    # Checks of the values themselves.
    ("[[watches]]\nname = 'Hospices'\nquery = '  '\n", "watches[0].query: must not be empty"),
    (
        "[[subscribers]]\nemail = 'a@b.org'\nwatches = ['']\n",
        "subscribers[0].watches[0]: must not be empty",
    ),
    (
        "[[subscribers]]\nemail = 'not-an-email'\n",
        "subscribers[0].email: 'not-an-email' is not a valid email address",
    ),
    (
        "[email]\nfrom = 'nobody'\n",
        "email.from: 'nobody' is not a valid mailbox (use 'Name <address@example.org>')",
    ),
    (
        "[feeds]\nsite_url = 'pq.example.org'\n",
        "feeds.site_url: 'pq.example.org' is not an http(s) URL",
    ),
    (
        "[schedule]\ntimezone = 'Mars/Olympus'\n",
        "schedule.timezone: "
        "unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/London)",
    ),
    (
        "[schedule]\ntimezone = 'Europe'\n",
        "schedule.timezone: unknown time zone 'Europe' (use an IANA name such as Europe/London)",
    ),
    (
        "[schedule]\ndigest_time = '25:00'\n",
        "schedule.digest_time: '25:00' is not a time of day in HH:MM (24-hour) form",
    ),
    # The first problem is named, and the others counted.
    (
        "[email]\nsmtp_port = '25'\nsecurity = 'tls'\n",
        "email.smtp_port: Input should be a valid integer, got str '25' (and 1 more problem)",
    ),
    (
        "[email]\nsmtp_port = '25'\nsecurity = 'tls'\ntimeout_seconds = 0\n",
        "email.smtp_port: Input should be a valid integer, got str '25' (and 2 more problems)",
    ),
    # Checks across keys.
    (
        "[[watches]]\nname = 'A'\nquery = 'a'\n[[watches]]\nname = 'a'\nquery = 'b'\n",
        "watches[1].name: duplicate watch name 'a'",
    ),
    (
        "[[watches]]\nname = 'A'\nquery = 'hos*pice'\n",
        "watches[0].query: malformed query: '*' only goes at the end of a word (like educ*) "
        "at character 4: hos*pice",
    ),
    (
        "[[watches]]\nname = 'A'\nquery = 'a'\n[[subscribers]]\nemail = 'x@example.org'\n"
        "watches = ['B']\n",
        "subscribers[0].watches[0]: no watch named 'B' (watches: 'A')",
    ),
    (
        "[[subscribers]]\nemail = 'x@example.org'\n[[subscribers]]\nemail = 'X@example.org'\n",
        "subscribers[1].email: duplicate subscriber 'x@example.org'",
    ),
    (
        "[email]\nsmtp_host = 'mail.example.org'\n",
        "email.from: set the address digests are sent from "
        "(the default 'pqwatch <pqwatch@localhost>' cannot be sent by SMTP)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_is_one_line_naming_the_key(
    text: str, expected: str, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    path = write_config(text)
    result = cli("--config", path, "init")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [f"pqwatch: error: {path}: {expected}"], result.stderr
    assert not (path.parent / "pqwatch.db").exists()  # nothing created from a bad config


def test_invalid_toml(write_config: Callable[..., Path], cli: Callable[..., CliResult]) -> None:
    path = write_config("[database\nurl = 1\n")
    result = cli("--config", path, "init")
    assert result.exit_code == 2
    # The rest of the line is tomllib's own message.
    assert result.stderr.startswith(f"pqwatch: error: {path}: invalid TOML: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_config_file(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("--config", tmp_path / "absent.toml", "init")
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"pqwatch: error: {tmp_path / 'absent.toml'}: config file not found"
    )


@pytest.mark.sqlite_only("the default SQLite file beside the config")
def test_config_from_environment_variable(
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_config("[schedule]\ndigest_time = '7:30'\n", name="elsewhere/pq.toml")
    monkeypatch.setenv("PQWATCH_CONFIG", str(path))
    assert load_config().schedule.digest_time == "07:30"
    assert cli("init").exit_code == 0
    assert (path.parent / "pqwatch.db").exists()


@pytest.mark.usefixtures("file_database_url")
def test_relative_paths_resolve_against_the_config_folder(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        "[database]\nurl = 'sqlite:///data/pq.db'\n[email]\noutbox_dir = 'mail'\n"
        "[feeds]\nout_dir = '/srv/feeds'\n",
        name="etc/config.toml",
    )
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path)
    assert cfg.database.url == f"sqlite:///{tmp_path / 'etc' / 'data' / 'pq.db'}"
    assert cfg.email.outbox_dir == tmp_path / "etc" / "mail"
    assert cfg.feeds.out_dir == Path("/srv/feeds")


def test_database_url_from_environment_wins(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PQWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    assert load_config(write_config()).database.url == f"sqlite:///{tmp_path / 'other.db'}"


@pytest.mark.usefixtures("file_database_url")
def test_a_postgresql_url_is_kept_as_given(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+psycopg://pq:secret@db.example.org:5433/pqwatch"
    assert load_config(write_config(f"[database]\nurl = '{url}'\n")).database.url == url
    monkeypatch.setenv("PQWATCH_DATABASE_URL", url.replace("pqwatch", "other"))
    assert load_config(write_config()).database.url == url.replace("pqwatch", "other")


def test_defaults_and_shipped_config_are_valid() -> None:
    from tests.conftest import REPO

    cfg = load_config(REPO / "config.toml")
    assert [w.name for w in cfg.watches] == ["Children's palliative care"]
    assert cfg.email.smtp_host is None  # the embedded default: an outbox folder of .eml files
    assert cfg.email.outbox_dir == REPO / "outbox"
    assert cfg.sources.uk_parliament.houses == ["Commons", "Lords"]
    assert cfg.email.port == 587


def test_subscriber_without_watches_gets_all(write_config: Callable[..., Path]) -> None:
    cfg = load_config(write_config(MINIMAL_CONFIG))
    assert cfg.watch_names_for(cfg.subscribers[0]) == ["Children's palliative care"]


def test_load_config_raises_only_config_error(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "c.toml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


# -- valid configs: what each key reads as ------------------------------------------------------

GOOD_CONFIGS = [
    # (config text, {attribute path: value read}); types are checked too (5 is read as 5.0).
    (
        "[sources.uk_parliament]\nrequests_per_second = 5\ntimeout_seconds = 2.5\n"
        "houses = ['Lords']\nbase_url = 'http://127.0.0.1:8765/'\ninitial_lookback_days = 3650\n"
        "revisit_tabled_days = 0\npage_size = 1000\nmax_retries = 0\nmax_concurrency = 16\n"
        "max_retry_after_seconds = 0\nbackoff_seconds = 60.0\n",
        {
            "sources.uk_parliament.requests_per_second": 5.0,
            "sources.uk_parliament.timeout_seconds": 2.5,
            "sources.uk_parliament.houses": ["Lords"],
            "sources.uk_parliament.base_url": "http://127.0.0.1:8765",
            "sources.uk_parliament.initial_lookback_days": 3650,
            "sources.uk_parliament.revisit_tabled_days": 0,
            "sources.uk_parliament.page_size": 1000,
            "sources.uk_parliament.max_retries": 0,
            "sources.uk_parliament.max_concurrency": 16,
            "sources.uk_parliament.max_retry_after_seconds": 0.0,
            "sources.uk_parliament.backoff_seconds": 60.0,
        },
    ),
    (
        "[email]\nfrom = 'PQ Watch <PQ@Example.org>'\nsmtp_host = 'mail'\nsmtp_port = 2525\n"
        "operator = 'Ops@Example.org'\nsecurity = 'none'\nusername = 'pq'\n"
        "outbox_dir = 'mail/out'\ntimeout_seconds = 600\n",
        {
            "email.from_": "PQ Watch <PQ@Example.org>",  # as written
            "email.smtp_host": "mail",
            "email.smtp_port": 2525,
            "email.port": 2525,
            "email.operator": "ops@example.org",  # an ASCII address is lower-cased
            "email.security": "none",
            "email.username": "pq",
            "email.outbox_dir": "mail/out",  # relative to the config's folder
            "email.timeout_seconds": 600.0,
        },
    ),
    ("[email]\nsecurity = 'ssl'\n", {"email.port": 465, "email.smtp_port": None}),
    (
        "[schedule]\ndigest_time = '7:05'\ndigest_weekday = 'fri'\ntimezone = 'UTC'\n"
        "poll_every_minutes = 10080\nalert_after_failures = 1\n",
        {
            "schedule.digest_time": "07:05",
            "schedule.digest_weekday": "fri",
            "schedule.timezone": "UTC",
            "schedule.poll_every_minutes": 10080,
            "schedule.alert_after_failures": 1,
        },
    ),
    (
        "[feeds]\nsite_url = 'https://pq.example.org/'\nmax_items = 10000\nout_dir = '/srv/f'\n",
        {
            "feeds.site_url": "https://pq.example.org",
            "feeds.max_items": 10000,
            "feeds.out_dir": "/srv/f",
        },
    ),
    (
        "[database]\nurl = 'sqlite:////var/pq.db'\n[[watches]]\nname = ' Hospices '\n"
        "query = 'hospice'\n[[subscribers]]\nemail = 'A@B.org'\nwatches = ['Hospices']\n"
        "frequency = 'daily'\nsend_empty = true\nname = 'Officer'\n[[subscribers]]\n"
        "email = 'c@d.org'\n",
        {
            "database.url": "sqlite:////var/pq.db",
            "watches": [WatchConfig(name="Hospices", query="hospice")],
            "subscribers": [
                SubscriberConfig(
                    email="a@b.org",
                    name="Officer",
                    watches=["Hospices"],
                    frequency="daily",
                    send_empty=True,
                ),
                SubscriberConfig(email="c@d.org"),  # every watch, weekly
            ],
        },
    ),
]


def _read(cfg: object, dotted: str) -> object:
    for name in dotted.split("."):
        cfg = getattr(cfg, name)
    return cfg


@pytest.mark.parametrize(("text", "expected"), GOOD_CONFIGS)
@pytest.mark.usefixtures("file_database_url")
def test_valid_config_reads_each_key(
    text: str, expected: dict[str, object], write_config: Callable[..., Path]
) -> None:
    path = write_config(text)
    cfg = load_config(path)
    for dotted, value in expected.items():
        if dotted.endswith("_dir"):
            value = path.parent / str(value)
        got = _read(cfg, dotted)
        assert (got, type(got)) == (value, type(value)), dotted


@pytest.mark.usefixtures("file_database_url")
def test_empty_config_is_all_defaults(write_config: Callable[..., Path]) -> None:
    path = write_config("")
    folder = path.parent.resolve()
    assert load_config(path) == Config(
        path=path.resolve(),
        database=DatabaseConfig(url=f"sqlite:///{folder / 'pqwatch.db'}"),
        email=EmailConfig(outbox_dir=folder / "outbox"),
        feeds=FeedsConfig(out_dir=folder / "feeds"),
    )


def test_a_config_is_read_without_importing_pydantic(tmp_path: Path) -> None:
    """pydantic-core alone reads it: importing pydantic and building its models would add
    about 70 ms to every command (docs/PERFORMANCE.md)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import sys; from pqwatch.config import load_config; "
        f"load_config({str(REPO / 'config.toml')!r}); print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
