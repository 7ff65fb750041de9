"""A local stand-in for data.parliament.scot, for tests and the offline tour.

Serves ``GET /api/motionsquestionsanswersquestions?year=YYYY`` (the year's JSON array; one
array may stand for every year) and, when given, ``GET /api/members``; 404 elsewhere. It
sends an ETag and answers ``If-None-Match`` with 304, like a server that supports conditional
requests, unless ``etags=False``. Records and members can be swapped while it runs::

    with ScottishServer({2016: records}) as server:
        ...  # [sources.scottish_parliament] base_url = server.base_url

Run ``python -m pqwatch.testing.scottish FILE`` to serve one recorded array for every year.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

QUESTIONS = "/api/motionsquestionsanswersquestions"
MEMBERS = "/api/members"


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return


class ScottishServer:
    """``years`` maps a year (or None: any year) to its records; ``members`` is the members
    list (None: 404). ``fail_with`` makes every questions request answer that status, and
    ``body`` replaces the questions body (garbage, a cut-off array)."""

    def __init__(
        self,
        years: dict[int | None, list[dict[str, Any]]],
        members: list[dict[str, Any]] | None = None,
        *,
        etags: bool = True,
    ) -> None:
        self.years = years
        self.members = members
        self.etags = etags
        self.fail_with: int | None = None
        self.body: bytes | None = None
        self.requests: list[tuple[str, str, int]] = []  # (path, query, status)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._answer(request)
        self.requests.append((request.path, request.query_string.decode(), response.status_code))
        return response(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if request.path == MEMBERS and self.members is not None:
            return _json(self.members)
        if request.path != QUESTIONS:
            return Response("Not found", status=404)
        if self.fail_with is not None:
            return Response("<html>Service unavailable</html>", status=self.fail_with)
        if self.body is not None:
            return Response(self.body, content_type="application/json")
        year = request.args.get("year", type=int)
        records = self.years.get(year, self.years.get(None))
        if records is None:
            return Response("Not found", status=404)
        response = _json(records)
        if self.etags:
            tag = hashlib.sha256(response.get_data()).hexdigest()[:16]
            response.set_etag(tag)
            if tag in request.if_none_match:
                return Response(status=304, headers={"ETag": f'"{tag}"'})
        return response

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self, port: int = 0) -> ScottishServer:
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

    def __enter__(self) -> ScottishServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _json(payload: Any) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), content_type="application/json")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pqwatch.testing.scottish FILE (a year's JSON array)")
        return 2
    records = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    server = ScottishServer({None: records}).start(8766)
    print(f"Serving {len(records)} Scottish questions at {server.base_url} (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
