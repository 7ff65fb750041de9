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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from pqwatch.errors import UsageError
from pqwatch.text import strip_controls
from pqwatch.web.app import Site, create_app


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
    ) -> None:
        self.trusted_proxies = list(trusted_proxies or [])
        self.client_timeout = client_timeout
        try:
            self.socket = _listen(host, port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = host, self.socket.getsockname()[1]
        # Without a site_url, links in mails point at the address bound (never a Host header).
        self.app = create_app(site, site_url=site_url, own_url=self.url, self_service=self_service)
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _config(self) -> uvicorn.Config:
        protocol = type("Protocol", (_Protocol,), {"client_timeout": self.client_timeout})
        return uvicorn.Config(
            self.app,
            http=protocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # Forwarded client addresses and schemes only from the configured proxies.
            proxy_headers=bool(self.trusted_proxies),
            forwarded_allow_ips=self.trusted_proxies or [],
            timeout_graceful_shutdown=int(self.shutdown_grace) or 1,
        )

    def run(self, announce: Callable[[str], None]) -> None:
        """Serve until SIGTERM or SIGINT (from the main thread) or stop(); announce the start
        and the stop in one line each."""
        log = logging.getLogger("uvicorn.error")
        log.handlers, log.propagate = [_OneLine()], False
        log.setLevel(logging.ERROR)
        self._server = server = _Server(
            self._config(), lambda: announce(f"Serving pqwatch on {self.url} (Ctrl-C stops)")
        )
        try:
            server.run(sockets=[self.socket])
        finally:
            self.socket.close()
        announce(f"Stopped serving ({server.stopped_by or 'shut down'}).")

    def stop(self) -> None:
        """Ask a running server to stop (from any thread), as a signal would."""
        if self._server is not None:
            self._server.should_exit = True

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
