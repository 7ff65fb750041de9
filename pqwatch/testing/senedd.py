"""A local stand-in for record.senedd.wales, for tests and the offline tour.

Serves ``GET /WrittenQuestion/<n>`` from ``pages`` (id -> the text of the question's page,
laid out as docs/SOURCES_WAVE2.md §3 describes: optionally the member's name and
constituency, ``WQn (e) Tabled on dd/mm/yyyy``, the question, ``Answered by ... | Answered
on ...`` or ``To be answered by: ...``, the answer) as an HTML page in site chrome: a head
whose script mentions "Tabled on", navigation, and a "Contact us" footer, so a parser must
read the page as a reader sees it. A value that is already HTML is sent as it is. Unknown ids
answer 404, or with ``missing="shell"`` the site shell without a question (200), which is
what the real site is said to do. Pages can be swapped while it runs::

    with SeneddServer({91968: text}) as server:
        ...  # [sources.senedd] base_url = server.base_url

The real markup was never recorded: this is the documented text in plausible HTML, no more.
Run ``python -m pqwatch.testing.senedd FILE`` to serve every item of the recorded Order
Paper excerpts (wave2/senedd/...page_excerpts.json) as a page of its own.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from werkzeug.wrappers import Request, Response

from pqwatch.testing.standin import StandIn

_PATH = re.compile(r"/WrittenQuestion/([0-9]+)/?")
_ITEM = re.compile(r"(?m)^(?=WQ[0-9]+ \([ew]\) Tabled on )")
_HEADER = re.compile(r"(WQ[0-9]+) (\([ew]\)) (Tabled on .*)")
# The portfolio headings printed between an Order Paper's items (not part of any question).
_HEADING = re.compile(r"(?:First Minister|Counsel General|(?:Deputy )?Minister for [^.?]+)")

SHELL = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
    "<script>var labels = ['Tabled on', 'Answered by'];</script><style>p{{margin:0}}</style>"
    "</head><body><nav><a href='/'>Home</a> <a href='/Search'>Search the Record</a></nav>"
    "<main>\n{main}\n</main><footer><p>Contact us</p><p>Cookies</p></footer></body></html>"
)


def render(text: str) -> str:
    """The page for a question's text: one paragraph a line, the header line in spans (as
    inline markup splits it on a real page), web addresses as links."""
    if text.lstrip().startswith("<"):
        return text
    blocks = []
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        header = _HEADER.fullmatch(line)
        if header:
            spans = "\n  ".join(f"<span>{html.escape(p)}</span>" for p in header.groups())
            blocks.append(f"<div class='wq-header'>\n  {spans}\n</div>")
            continue
        escaped = html.escape(line)
        linked = re.sub(r"https?://[^\s<]+", lambda m: f"<a href='{m[0]}'>{m[0]}</a>", escaped)
        blocks.append(f"<p>{linked}</p>")
    return SHELL.format(title="Written Question", main="\n".join(blocks))


def pages_from_order_paper(text: str) -> dict[int, str]:
    """Each item of an Order Paper's text as the text of its own page: the page header and
    the portfolio headings between items left out."""
    pages = {}
    for part in _ITEM.split(text)[1:]:
        lines = [ln.strip() for ln in part.strip().split("\n")]
        while lines and (not lines[-1] or _HEADING.fullmatch(lines[-1])):
            lines.pop()
        pages[int(part[2 : part.index(" ")])] = "\n".join(lines)
    return pages


class SeneddServer(StandIn):
    """``pages`` maps a question id to its page (text or HTML). ``fail_with`` makes every
    question request answer that status; ``body`` (with ``content_type``) replaces every
    question page (garbage, a JSON error, a cut-off page)."""

    def __init__(self, pages: dict[int, str], *, missing: str = "404") -> None:
        super().__init__()
        self.pages = pages
        self.missing = missing
        self.fail_with: int | None = None
        self.body: bytes | None = None
        self.content_type = "text/html; charset=utf-8"

    def _answer(self, request: Request) -> Response:
        match = _PATH.fullmatch(request.path)
        if match is None:
            return Response("Not found", status=404)
        if self.fail_with is not None:
            return Response("<html>Service unavailable</html>", status=self.fail_with)
        if self.body is not None:
            return Response(self.body, content_type=self.content_type)
        text = self.pages.get(int(match[1]))
        if text is None:
            if self.missing == "shell":
                shell = SHELL.format(title="Senedd", main="<p>Written Question</p>")
                return Response(shell, content_type="text/html; charset=utf-8")
            return Response("Not found", status=404)
        return Response(render(text), content_type="text/html; charset=utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pqwatch.testing.senedd FILE (the recorded page excerpts)")
        return 2
    pages: dict[int, str] = {}
    for page in json.loads(Path(args[0]).read_text(encoding="utf-8"))["pages"]:
        pages |= pages_from_order_paper(page["excerpt"])
    return SeneddServer(pages).serve(8768, f"{len(pages)} Senedd questions")


if __name__ == "__main__":
    raise SystemExit(main())
