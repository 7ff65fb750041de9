"""A local stand-in for data.niassembly.gov.uk's questions and members services, for tests
and the offline tour.

Serves, from an in-memory list of question records (each with every field it has,
answer included)::

    /questions.asmx/GetQuestionsForWrittenAnswer_TabledInRange_JSON?startDate=&endDate=
    /questions.asmx/GetQuestionsForWrittenAnswer_AnsweredInRange_JSON?startDate=&endDate=
    /questions.asmx/GetQuestionDetails_JSON?documentId=
    /members.asmx/GetAllCurrentMembers_JSON            (when ``members`` is given)

with AIMS's envelope quirks: ``{"QuestionsList": {"Question": [...]}}``, one row as a bare
object, no rows as ``"QuestionsList": null``, every scalar a string, a missing (None) field
left out. The range lists carry no answer text (as SOURCES_WAVE2.md §4's leads say) unless
``answers_in_lists``. Ranges are read by the UK calendar day of each timestamp, both ends
included. Records can be swapped while it runs::

    with NIAssemblyServer(records) as server:
        ...  # [sources.ni_assembly] base_url = server.base_url

Run ``python -m pqwatch.testing.ni_assembly FILE`` to serve a JSON array of records.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from pqwatch.sources.ni_assembly import (
    ANSWERED_PATH,
    DETAIL_PATH,
    MEMBERS_PATH,
    QUESTIONS,
    TABLED_PATH,
    uk_date,
)
from pqwatch.testing.standin import StandIn

ANSWER_FIELDS = ("AnswerPlainText", "AnswerHtml", "AnswerOpenXml")


def stringly(record: dict[str, Any]) -> dict[str, str]:
    """AIMS's typing: every scalar a string ("307", "false"), a None field left out."""
    out = {}
    for key, value in record.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def envelope(
    rows: list[dict[str, Any]], outer: str = "QuestionsList", inner: str = "Question"
) -> Any:
    if not rows:
        return {outer: None}
    return {outer: {inner: rows[0] if len(rows) == 1 else rows}}


class NIAssemblyServer(StandIn):
    """``questions`` are full records; ``members`` the members list (None: 404).
    ``fail_with`` makes every questions request answer that status with an HTML page,
    ``body`` replaces every questions body (garbage, a cut-off array), and
    ``missing_details`` lists DocumentIds whose details come back empty."""

    def __init__(
        self,
        questions: list[dict[str, Any]],
        members: list[dict[str, Any]] | None = None,
        *,
        answers_in_lists: bool = False,
    ) -> None:
        super().__init__()
        self.questions = questions
        self.members = members
        self.answers_in_lists = answers_in_lists
        self.fail_with: int | None = None
        self.body: bytes | None = None
        # DocumentIds whose details answer a null list (as a bad documentId does).
        self.missing_details: set[str] = set()

    def _answer(self, request: Request) -> Response:
        if request.path == MEMBERS_PATH and self.members is not None:
            rows = [stringly(m) for m in self.members]
            return _json(envelope(rows, "AllMembersList", "Member"))
        if not request.path.startswith(QUESTIONS):
            return Response("Not found", status=404)
        if self.fail_with is not None:
            return Response(
                "<html><body>Runtime Error</body></html>",
                status=self.fail_with,
                content_type="text/html",
            )
        if self.body is not None:
            return Response(self.body, content_type="application/json")
        if request.path == DETAIL_PATH:
            doc = request.args.get("documentId", "")
            found = [q for q in self.questions if str(q.get("DocumentId")) == doc]
            found = [] if doc in self.missing_details else found
            return _json(envelope([stringly(q) for q in found]))
        field = {TABLED_PATH: "TabledDate", ANSWERED_PATH: "AnsweredOnDate"}.get(request.path)
        start = uk_date(request.args.get("startDate", ""))
        end = uk_date(request.args.get("endDate", ""))
        if field is None or start is None or end is None:
            # What ASMX does with an unknown operation or a date it cannot read.
            return Response(
                "System.InvalidOperationException", status=500, content_type="text/plain"
            )
        rows = [
            self._listed(q, field)
            for q in self.questions
            if start <= (uk_date(q.get(field)) or date.min) <= end
        ]
        return _json(envelope(rows))

    def _listed(self, record: dict[str, Any], field: str) -> dict[str, str]:
        drop: tuple[str, ...] = () if self.answers_in_lists else ANSWER_FIELDS
        if field == "TabledDate":  # the tabled list knows nothing of answers
            drop = (*ANSWER_FIELDS, "AnsweredOnDate")
        return stringly({k: v for k, v in record.items() if k not in drop})


def _json(payload: Any) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), content_type="application/json")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pqwatch.testing.ni_assembly FILE (a JSON array of questions)")
        return 2
    records = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    return NIAssemblyServer(records).serve(8767, f"{len(records)} NI Assembly questions")


if __name__ == "__main__":
    raise SystemExit(main())
