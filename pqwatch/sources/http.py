"""HTTP for every source: one client per source and poll, with a descriptive User-Agent, a
per-host rate limit, a timeout on every request, and retries with backoff (honouring
Retry-After) for timeouts, dropped connections, 429 and 5xx. Sources parse; this fetches.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx

from pqwatch import __version__
from pqwatch.config import SourceConfig
from pqwatch.errors import SourceError

ConfigT = TypeVar("ConfigT", bound=SourceConfig)
USER_AGENT = (
    f"pqwatch/{__version__} (parliamentary written questions monitor; "
    "polite polling, one request at a time per host)"
)


class RateLimiter:
    """Spaces request starts at least 1/rate seconds apart, across threads."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            self._sleep(start - now)


class Retry(Exception):
    """A failure worth trying again (raised by a response check, too)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _NotFound(Exception):
    pass


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _problem_title(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return ""
    if isinstance(data, dict) and isinstance(data.get("title"), str):
        return f" ({data['title'][:200]})"
    return ""


class SourceHTTP:
    """Thread-safe; close() when done. `requests_made` and `bytes_received` count every try."""

    def __init__(
        self,
        settings: SourceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        accept: str = "application/json",
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._jitter = jitter
        self._limiter = RateLimiter(settings.requests_per_second, sleep=sleep)
        self._http = httpx.Client(
            base_url=settings.base_url,
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={"User-Agent": USER_AGENT, "Accept": accept},
            transport=transport,
            follow_redirects=True,
        )
        self._count_lock = threading.Lock()
        self.requests_made = 0
        self.bytes_received = 0

    def close(self) -> None:
        self._http.close()

    def get(
        self,
        path: str,
        params: dict[str, str | int] | None = None,
        *,
        headers: dict[str, str] | None = None,
        allow_404: bool = False,
        read: Callable[[httpx.Response], Any] = lambda resp: resp,
    ) -> Any:
        """GET, retrying transient failures, and give `read(response)` (which may raise
        Retry). A 304 is handed to `read` too. Raises SourceError; a 404 gives None when
        allow_404 is set."""
        attempts = self.settings.max_retries + 1
        last = ""
        for attempt in range(attempts):
            try:
                return read(self._attempt(path, params, headers))
            except _NotFound:
                if allow_404:
                    return None
                raise SourceError(f"GET {path}: HTTP 404 (not found)") from None
            except Retry as exc:
                last = exc.reason
                if attempt + 1 >= attempts:
                    break
                self._sleep(self._backoff(attempt, exc.retry_after))
        raise SourceError(f"GET {path}: {last} (gave up after {attempts} attempts)")

    def get_json(
        self,
        path: str,
        params: dict[str, str | int] | None = None,
        *,
        headers: dict[str, str] | None = None,
        allow_404: bool = False,
    ) -> Any:
        """GET a JSON document (a body that is not JSON is tried again, then an error)."""
        return self.get(path, params, headers=headers, allow_404=allow_404, read=read_json)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = self.settings.max_retry_after_seconds
        if retry_after is not None:
            return min(retry_after, cap)
        base = self.settings.backoff_seconds
        delay: float = base * (2**attempt) + base * self._jitter()
        return min(delay, cap)

    def _attempt(
        self, path: str, params: dict[str, str | int] | None, headers: dict[str, str] | None
    ) -> httpx.Response:
        self._limiter.wait()
        with self._count_lock:
            self.requests_made += 1
        try:
            resp = self._http.get(path, params=params, headers=headers)
        except httpx.TimeoutException:
            raise Retry(f"timed out after {self.settings.timeout_seconds:g} s") from None
        except httpx.TransportError as exc:
            raise Retry(f"connection failed: {type(exc).__name__}: {exc}") from None
        with self._count_lock:
            self.bytes_received += len(resp.content)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise Retry(
                f"HTTP {resp.status_code}", parse_retry_after(resp.headers.get("Retry-After"))
            )
        if resp.status_code == 404:
            raise _NotFound()
        if resp.status_code >= 400:
            raise SourceError(f"GET {path}: HTTP {resp.status_code}{_problem_title(resp)}")
        return resp


class OverHTTP(Generic[ConfigT]):
    """A source built on one SourceHTTP: its config section, and what it reports and closes
    (the ingest reads these)."""

    accept = "application/json"  # what the source's site answers in

    def __init__(self, config: ConfigT, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._net = SourceHTTP(config, transport=transport, accept=self.accept)

    @property
    def requests_made(self) -> int:
        return self._net.requests_made

    @property
    def bytes_received(self) -> int:
        return self._net.bytes_received

    def close(self) -> None:
        self._net.close()


def read_json(resp: httpx.Response) -> Any:
    """The JSON body; Retry when it is not JSON (an HTML error page, a body cut short)."""
    try:
        return json.loads(resp.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = resp.headers.get("Content-Type", "").split(";")[0] or "no content type"
        raise Retry(f"the response was not valid JSON ({kind})") from None
