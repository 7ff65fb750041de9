"""Run the web app with uvicorn: bind first (so a taken port is a one-line error before
anything starts), say where it listens, stop on SIGTERM or Ctrl-C after the requests in flight
(for at most `shutdown_grace` seconds) and say so.

Two things differ from uvicorn's defaults, on purpose:
- uvicorn re-raises the stopping signal once it has stopped, so the process dies of it; pqwatch
  stops cleanly with exit 0 and one line naming the signal, as `pqwatch run` does.
- uvicorn waits for ever for a request's head once a client has connected (its keep-alive
  timer only starts after a response); here a client that stays silent, or sends half a head,
  is dropped after `client_timeout` seconds (slowloris).
Its logging is reduced to errors, each one line on stderr (no access log: the terminal is the
log, and it says start and stop).

With `workers` > 1 the socket bound here is served by that many worker processes under
uvicorn's own supervisor (uvicorn.supervisors.Multiprocess): it starts them with
multiprocessing's "spawn", so each is a fresh interpreter that opens its own facade (its own
engine and pool: nothing of the parent's crosses over) from a picklable `open_site`, replaces
a worker that dies, and on SIGTERM or Ctrl-C stops them all, each after its requests in flight.
This process only supervises: it says where the site listens once every worker answers, and
which signal stopped it, as with one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors.multiprocess import SIGNALS, Multiprocess

from pqwatch.errors import PQWatchError, UsageError
from pqwatch.text import strip_controls
from pqwatch.web.app import Site, create_app, report

MAX_WORKERS = 64
WORKER_START_SECONDS = 120.0  # for every worker to answer, on a loaded machine
# A worker that does not answer the supervisor's ping (every 0.5 s) for this long is hung: it
# is killed and replaced. uvicorn's 5 s leaves little margin on a busy 2-core machine.
WORKER_HEALTHCHECK_SECONDS = 15


class _OneLine(logging.Handler):
    """uvicorn's own errors as one line each on stderr, without a traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        line = " ".join(strip_controls(record.getMessage()).split())
        sys.stderr.write(f"pqwatch serve: error: {line[:500]}\n")
        sys.stderr.flush()


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head."""

    client_timeout = 30.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request on this connection gets a deadline of its own

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        waiting = self.cycle  # a new request replaces the cycle: then the head has come

        def expire() -> None:
            idle = waiting is None or waiting.response_complete
            if self.cycle is waiting and idle and not self.transport.is_closing():
                self.transport.close()

        self._deadline = self.loop.call_later(self.client_timeout, expire)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_started = on_started
        self.stopped_by: str | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own re-raises the signal after stopping; see the module docstring.
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread may install handlers (tests run servers in threads)
            return
        previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stopped_by is None:
            self.stopped_by = signal.Signals(sig).name
        super().handle_exit(sig, frame)  # a second Ctrl-C stops without waiting

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # listening, with the signal handlers in: whoever waits may signal
            self.on_started()


def _errors_only() -> None:
    """uvicorn's log in this process: errors only, each one line on stderr."""
    log = logging.getLogger("uvicorn.error")
    log.handlers, log.propagate = [_OneLine()], False
    log.setLevel(logging.ERROR)


def _protocol(client_timeout: float) -> type[_Protocol]:
    return type("Protocol", (_Protocol,), {"client_timeout": client_timeout})


@dataclass(frozen=True)
class _WorkerApp:
    """The app factory a worker process calls (uvicorn's factory=True): the worker's own site,
    opened there and closed when the worker stops. It is pickled to the worker, so each field
    is plain data or an importable callable."""

    open_site: Callable[[], Site]
    site_url: str | None
    own_url: str
    self_service: bool
    supervisor: int  # its process id

    def __call__(self) -> Starlette:
        _errors_only()
        _die_with(self.supervisor)
        try:
            site = self.open_site()
        except Exception as exc:
            report("a web worker could not start", exc)
            # On this code uvicorn's supervisor stops, instead of starting it again for ever.
            sys.exit(STARTUP_FAILURE)
        app = create_app(
            site, site_url=self.site_url, own_url=self.own_url, self_service=self.self_service
        )
        close: Callable[[], None] | None = getattr(site, "close", None)

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            try:
                yield
            finally:
                if close is not None:
                    close()  # the worker's pool: PostgreSQL sees its connections end, not drop

        app.router.lifespan_context = lifespan
        return app


def _die_with(parent: int) -> None:
    """Stop (SIGTERM: after the requests in flight) when the supervisor dies, even of SIGKILL:
    a worker left behind would go on serving the port, from a config nobody runs any more."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # it died before that was set
        os.kill(os.getpid(), signal.SIGTERM)


class _WorkerConfig(uvicorn.Config):
    """A worker's uvicorn settings. Pickled to the worker, where its protocol class (one made
    for the client timeout, which pickle cannot carry) is made."""

    client_timeout = 30.0

    def load(self) -> None:
        super().load()
        self.http_protocol_class = _protocol(self.client_timeout)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes, which also says when every worker answers,
    remembers the signal that stopped it, and stops when a worker cannot start (rather than
    starting it again for ever)."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], on_started: Callable[[], None]
    ) -> None:
        super().__init__(config, sockets)  # its signal handlers: queued, acted on in its loop
        self.on_started = on_started
        self.stopped_by: str | None = None
        self.asked_to_stop = False
        self.failure: str | None = None

    def init_processes(self) -> None:
        super().init_processes()
        deadline = time.monotonic() + WORKER_START_SECONDS
        waiting = list(self.processes)
        while waiting and not self.should_exit.is_set():
            self.handle_signals()  # a signal while they start stops them
            for worker in list(waiting):
                if worker.is_ready(timeout=0.2):
                    waiting.remove(worker)
                elif not worker.process.is_alive() or time.monotonic() > deadline:
                    code = worker.process.exitcode
                    self.failure = "a web worker did not start" + (
                        f" (exit code {code})" if code is not None else " in time"
                    )
                    self.should_exit.set()
                    break
        if not self.should_exit.is_set():
            self.on_started()

    def handle_int(self) -> None:
        self.stopped_by = self.stopped_by or "SIGINT"
        super().handle_int()

    def handle_term(self) -> None:
        self.stopped_by = self.stopped_by or "SIGTERM"
        super().handle_term()

    def stop(self) -> None:
        self.asked_to_stop = True
        self.should_exit.set()


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, made as asyncio makes its own: from getaddrinfo, so that its
    protocol is IPPROTO_TCP. asyncio sets TCP_NODELAY only on such sockets' connections;
    without it a keep-alive client (every browser) waited 40 ms a response, for the delayed
    ACK of the headers before the body was sent."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


class WebServer:
    """The web app bound to host:port (not yet serving: call run())."""

    shutdown_grace = 5.0  # seconds the requests in flight get when stopping

    def __init__(
        self,
        site: Site,
        host: str,
        port: int,
        *,
        site_url: str | None = None,
        trusted_proxies: list[str] | None = None,
        client_timeout: float = 30.0,
        self_service: bool = False,
        workers: int = 1,
        open_site: Callable[[], Site] | None = None,
    ) -> None:
        """`workers` > 1: that many processes, each serving `open_site()` (a picklable
        callable: it runs in the worker), under a supervisor; `site` serves none of them."""
        if not 1 <= workers <= MAX_WORKERS:
            raise UsageError(f"workers: {workers} is not between 1 and {MAX_WORKERS}")
        if workers > 1 and open_site is None:
            raise ValueError("several workers need open_site, to open a site in each")
        self.trusted_proxies = list(trusted_proxies or [])
        self.client_timeout = client_timeout
        self.workers, self.open_site = workers, open_site
        self.site_url, self.self_service = site_url, self_service
        try:
            self.socket = _listen(host, port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = host, self.socket.getsockname()[1]
        # Without a site_url, links in mails point at the address bound (never a Host header).
        # (With several workers each makes its own, and this one serves nothing.)
        self.app = create_app(site, site_url=site_url, own_url=self.url, self_service=self_service)
        self._server: _Server | None = None
        self._supervisor: _Supervisor | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _settings(self) -> dict[str, Any]:
        return {
            "lifespan": "off",
            "log_config": None,
            "access_log": False,
            "server_header": False,
            # Forwarded client addresses and schemes only from the configured proxies.
            "proxy_headers": bool(self.trusted_proxies),
            "forwarded_allow_ips": self.trusted_proxies or [],
            "timeout_graceful_shutdown": int(self.shutdown_grace) or 1,
        }

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(self.app, http=_protocol(self.client_timeout), **self._settings())

    def _worker_config(self) -> _WorkerConfig:
        assert self.open_site is not None
        factory = _WorkerApp(
            self.open_site, self.site_url, self.url, self.self_service, os.getpid()
        )
        # The lifespan closes each worker's site as it stops.
        settings = {**self._settings(), "lifespan": "on"}
        config = _WorkerConfig(
            factory,
            factory=True,
            workers=self.workers,
            http=_Protocol,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **settings,
        )
        config.client_timeout = self.client_timeout
        return config

    def run(self, announce: Callable[[str], None]) -> None:
        """Serve until SIGTERM or SIGINT (from the main thread) or stop(); announce the start
        and the stop in one line each."""
        _errors_only()
        if self.workers > 1:
            self._supervise(announce)
            return
        self._server = server = _Server(
            self._config(), lambda: announce(f"Serving pqwatch on {self.url} (Ctrl-C stops)")
        )
        try:
            server.run(sockets=[self.socket])
        finally:
            self.socket.close()
        announce(f"Stopped serving ({server.stopped_by or 'shut down'}).")

    def _supervise(self, announce: Callable[[str], None]) -> None:
        """Serve with several workers (from the main thread: the supervisor's signal handlers
        are process-wide; the previous ones come back when it stops)."""
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        try:
            self._supervisor = supervisor = _Supervisor(
                self._worker_config(),
                [self.socket],
                lambda: announce(
                    f"Serving pqwatch on {self.url} with {self.workers} worker processes "
                    "(Ctrl-C stops)"
                ),
            )
            supervisor.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.socket.close()
        if supervisor.stopped_by is None and not supervisor.asked_to_stop:
            # A worker's own line on stderr says why.
            raise PQWatchError(f"{supervisor.failure or 'a web worker could not start again'}; "
                               "stopped serving")  # fmt: skip
        announce(f"Stopped serving ({supervisor.stopped_by or 'shut down'}).")

    def stop(self) -> None:
        """Ask a running server to stop (from any thread), as a signal would."""
        if self._server is not None:
            self._server.should_exit = True
        if self._supervisor is not None:
            self._supervisor.stop()

    @contextlib.contextmanager
    def running(self, timeout: float = 30.0) -> Iterator[str]:
        """Serve from a thread while the block runs (tests); yields the base URL."""
        ready = threading.Event()
        lines: list[str] = []

        def announce(line: str) -> None:
            lines.append(line)
            ready.set()

        thread = threading.Thread(target=self.run, args=(announce,), daemon=True)
        thread.start()
        try:
            if not ready.wait(timeout) or not self.started:
                raise RuntimeError(f"the web server did not start: {lines}")
            yield self.url
        finally:
            self.stop()
            thread.join(timeout)

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    @property
    def connections(self) -> int:
        """Connections open now (tests wait for the server to be done with theirs)."""
        return len(self._server.server_state.connections) if self._server else 0

    def __repr__(self) -> str:
        return f"WebServer({self.url!r})"
