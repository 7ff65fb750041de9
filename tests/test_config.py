from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pqwatch.config import load_config
from pqwatch.errors import ConfigError
from tests.conftest import MINIMAL_CONFIG, CliResult

BAD_CONFIGS = [
    # (config text, text the one-line error must contain)
    ("[databse]\nurl = 'x'\n", "config.toml: databse: unknown key"),
    (
        "[sources.uk_parliament]\ntimeout = 3\n",
        "config.toml: sources.uk_parliament.timeout: unknown key",
    ),
    (
        "[sources.uk_parliament]\nrequests_per_second = 'fast'\n",
        "sources.uk_parliament.requests_per_second: Input should be a valid number",
    ),
    ("[sources.uk_parliament]\nhouses = ['Scotland']\n", "sources.uk_parliament.houses[0]:"),
    # Strict types: a quoted number or a 1 for true is a mistake, not a value.
    (
        "[sources.uk_parliament]\npage_size = '100'\n",
        "sources.uk_parliament.page_size: Input should be a valid integer, got str '100'",
    ),
    ("[email]\nsmtp_port = '25'\n", "email.smtp_port: Input should be a valid integer"),
    (
        "[[subscribers]]\nemail = 'a@example.org'\nsend_empty = 1\n",
        "subscribers[0].send_empty: Input should be a valid boolean, got int 1",
    ),
    ("[sources.uk_parliament]\nhouses = []\n", "sources.uk_parliament.houses:"),
    ("[sources.uk_parliament]\npage_size = 0\n", "sources.uk_parliament.page_size:"),
    ("[[watches]]\nname = 'Hospices'\n", "watches[0].query: required key is missing"),
    ("[[watches]]\nname = 'Hospices'\nquery = '  '\n", "watches[0].query: must not be empty"),
    (
        "[[watches]]\nname = 'A'\nquery = 'a'\n[[watches]]\nname = 'a'\nquery = 'b'\n",
        "watches[1].name: duplicate watch name 'a'",
    ),
    (
        "[[subscribers]]\nemail = 'not-an-email'\n",
        "subscribers[0].email: 'not-an-email' is not a valid email address",
    ),
    (
        "[[watches]]\nname = 'A'\nquery = 'a'\n[[subscribers]]\nemail = 'x@example.org'\n"
        "watches = ['B']\n",
        "subscribers[0].watches[0]: no watch named 'B'",
    ),
    (
        "[[subscribers]]\nemail = 'x@example.org'\nfrequency = 'monthly'\n",
        "subscribers[0].frequency: Input should be 'weekly' or 'daily'",
    ),
    (
        "[[subscribers]]\nemail = 'x@example.org'\n[[subscribers]]\nemail = 'X@example.org'\n",
        "subscribers[1].email: duplicate subscriber",
    ),
    ("[email]\nfrom = 'nobody'\n", "email.from: 'nobody' is not a valid mailbox"),
    ("[email]\nsecurity = 'tls'\n", "email.security: Input should be"),
    ("[email]\npassword = 'hunter2'\n", "email.password: unknown key (the SMTP password comes"),
    ("[email]\nsmtp_port = 70000\n", "email.smtp_port:"),
    ("[feeds]\nsite_url = 'pq.example.org'\n", "feeds.site_url: 'pq.example.org' is not an http"),
    ("[schedule]\ntimezone = 'Mars/Olympus'\n", "schedule.timezone: unknown time zone"),
    ("[schedule]\ntimezone = 'Europe'\n", "schedule.timezone: unknown time zone"),
    ("[schedule]\ndigest_time = '25:00'\n", "schedule.digest_time: '25:00' is not a time of day"),
    ("[schedule]\ndigest_weekday = 'monday'\n", "schedule.digest_weekday: Input should be"),
    ("[schedule]\npoll_every_minutes = 'hourly'\n", "schedule.poll_every_minutes:"),
    ("watches = 'palliative'\n", "watches: Input should be a valid list"),
    ("[database\nurl = 1\n", "config.toml: invalid TOML:"),
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
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert str(path) in lines[0]
    assert "Traceback" not in result.stderr
    assert not (path.parent / "pqwatch.db").exists()  # nothing created from a bad config


def test_missing_config_file(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("--config", tmp_path / "absent.toml", "init")
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"pqwatch: error: {tmp_path / 'absent.toml'}: config file not found"
    )


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


# -- the fast reader and pydantic agree --------------------------------------------------------

GOOD_CONFIGS = [
    "",
    MINIMAL_CONFIG,
    "[sources.uk_parliament]\nrequests_per_second = 5\ntimeout_seconds = 2.5\nhouses = ['Lords']\n",
    "[email]\nfrom = 'PQ Watch <PQ@Example.org>'\nsmtp_host = 'mail'\nsmtp_port = 2525\n"
    "operator = 'Ops@Example.org'\nsecurity = 'none'\noutbox_dir = 'mail/out'\n",
    "[schedule]\ndigest_time = '7:05'\ndigest_weekday = 'fri'\ntimezone = 'UTC'\n",
    "[feeds]\nsite_url = 'https://pq.example.org/'\nmax_items = 10000\n",
    "[[watches]]\nname = ' Hospices '\nquery = 'hospice'\n[[subscribers]]\n"
    "email = 'A@B.org'\nwatches = ['Hospices']\nfrequency = 'daily'\nsend_empty = true\n",
]
NEAR_MISSES = [text for text, _ in BAD_CONFIGS] + [
    "[sources.uk_parliament]\nrequests_per_second = 0\n",
    "[sources.uk_parliament]\nrequests_per_second = nan\n",
    "[sources.uk_parliament]\ntimeout_seconds = inf\n",
    "[sources.uk_parliament]\nmax_retries = true\n",
    "[email]\nsmtp_port = 2525.0\n",
    "[email]\noutbox_dir = 5\n",
    "[feeds]\nmax_items = 0\n",
    "path = '/etc'\n",
    "[[subscribers]]\nname = 'no email'\n",
    "[[subscribers]]\nemail = 'a@b.org'\nwatches = 'all'\n",
]


@pytest.mark.parametrize("text", GOOD_CONFIGS + NEAR_MISSES)
def test_the_fast_reader_agrees_with_pydantic(text: str) -> None:
    import tomllib

    from pqwatch import config

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        slow: object = config._validate_with_pydantic(data)
    except Exception as exc:  # pydantic's ValidationError
        slow = type(exc).__name__
    try:
        fast: object = config._fast(config.Config, data)
    except config._Unsure:
        fast = None  # not sure: pydantic decides, so nothing can differ
    if text in GOOD_CONFIGS:
        assert fast is not None, "a valid config should not need pydantic"
        assert fast == slow
    elif fast is not None:
        assert fast == slow  # never accepts what pydantic refuses, nor reads it differently


def test_a_valid_config_is_read_without_importing_pydantic(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import sys; from pqwatch.config import load_config; "
        f"load_config({str(REPO / 'config.toml')!r}); print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
