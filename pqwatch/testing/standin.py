"""What every local stand-in for a source's site shares: a werkzeug server on a free port in
a background thread, a log of the requests it answered, and a ``main`` to run one by hand.

A stand-in subclasses :class:`StandIn` and answers in ``_answer``::

    with ScottishServer({2016: records}) as server:
        ...  # base_url = server.base_url; server.requests holds (path, query, status)
"""

from __future__ import annotations

import threading
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return


class StandIn:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, int]] = []  # (path, query, status)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _answer(self, request: Request) -> Response:
        raise NotImplementedError

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._answer(request)
        self.requests.append((request.path, request.query_string.decode(), response.status_code))
        return response(environ, start_response)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self, port: int = 0) -> Self:
        self._server = make_server(
            "127.0.0.1", port, self._app, threaded=True, request_handler=_Quiet
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve(self, port: int, what: str) -> int:
        """Serve on ``port`` until Ctrl-C, for a person trying pqwatch by hand."""
        try:
            self.start(port)
        except OSError as exc:
            print(f"cannot listen on port {port}: {exc}")
            return 2
        print(f"Serving {what} at {self.base_url} (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        return 0
