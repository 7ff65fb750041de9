"""Text handling for untrusted answer HTML. Contains no business logic.

Answer HTML from the API is sanitised once, on the way in, with nh3 and a small allow-list;
only that sanitised HTML may ever be marked safe in a template. The plain-text form (for
search, plain-text mail and snippets) is derived from the sanitised HTML with BeautifulSoup,
keeping paragraph breaks and decoding entities.
"""

from __future__ import annotations

import re

import nh3
from bs4 import BeautifulSoup
from bs4.element import NavigableString, Tag

ALLOWED_TAGS = {
    "p", "br", "a", "strong", "em", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th",
    "td", "sup", "sub",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}
URL_SCHEMES = {"http", "https", "mailto"}

_BLOCK = {"p", "ul", "ol", "table", "thead", "tbody"}
_NBSP = "\u00a0"


def sanitize_html(html: str) -> str:
    """Keep only harmless structure: paragraphs, links, emphasis, lists and tables."""
    cleaned: str = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return cleaned.strip()


def looks_like_html(text: str) -> bool:
    return bool(re.search(r"</?[a-zA-Z][^>]*>", text))


def plain_text_to_html(text: str) -> str:
    """Wrap plain text (e.g. a list-endpoint answer) as escaped paragraphs."""
    import html as _html

    paras = [p.strip() for p in re.split(r"\n\s*\n|\r\n\r\n", text) if p.strip()]
    return "".join(f"<p>{_html.escape(p).replace(chr(10), '<br>')}</p>" for p in paras)


_SPACES = re.compile(r"[ \t]{2,}|\t")  # a single space stays as it is
_BLANK_LINES = re.compile(r"\n{3,}")
_CELLS = ["td", "th"]


def html_to_text(html: str) -> str:
    """Plain text from (sanitised) HTML: one blank line between paragraphs, list items as
    '- item', table rows as cells joined by ' | ', entities decoded."""
    out: list[str] = []
    _walk(BeautifulSoup(html, "html.parser"), out)
    return _finish(out)


def _finish(out: list[str]) -> str:
    # Collapse runs of spaces/tabs to one space, drop spaces around line breaks, keep at most
    # one blank line. (Written for speed; the same result as the plain re.sub chain
    # `[ \t]+` -> " ", ` *\n *` -> "\n", `\n{3,}` -> "\n\n" followed by strip().)
    text = _SPACES.sub(" ", "".join(out).replace(_NBSP, " "))
    if "\n" in text:
        text = "\n".join([line.strip(" ") for line in text.split("\n")])
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _walk(node: Tag, out: list[str]) -> None:
    # The document is parsed once: a table cell's text is its own subtree's text, finished
    # on its own (the same as parsing the cell alone, which the first version did).
    append = out.append
    for child in node.children:
        if isinstance(child, NavigableString):
            append(child.replace("\n", " "))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name == "br":
            append("\n")
        elif name == "li":
            append("\n- ")
            _walk(child, out)
        elif name == "tr":
            cells = []
            for cell in child.find_all(_CELLS):
                sub: list[str] = []
                _walk(cell, sub)
                cells.append(_finish(sub).replace("\n", " "))
            append("\n" + " | ".join(cells))
        elif name in _BLOCK:
            append("\n\n")
            _walk(child, out)
            append("\n\n")
        else:
            _walk(child, out)


def normalize_for_search(text: str) -> str:
    """Search form of plain text: non-breaking spaces become spaces (the original is kept)."""
    return text.replace(_NBSP, " ")
