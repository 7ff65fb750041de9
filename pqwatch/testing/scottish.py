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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from pqwatch.testing.standin import StandIn

QUESTIONS = "/api/motionsquestionsanswersquestions"
MEMBERS = "/api/members"


class ScottishServer(StandIn):
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
        super().__init__()
        self.years = years
        self.members = members
        self.etags = etags
        self.fail_with: int | None = None
        self.body: bytes | None = None

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


def _json(payload: Any) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), content_type="application/json")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pqwatch.testing.scottish FILE (a year's JSON array)")
        return 2
    records = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    return ScottishServer({None: records}).serve(8766, f"{len(records)} Scottish questions")


if __name__ == "__main__":
    raise SystemExit(main())
