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


def html_to_text(html: str) -> str:
    """Plain text from (sanitised) HTML: one blank line between paragraphs, list items as
    '- item', table rows as cells joined by ' | ', entities decoded."""
    soup = BeautifulSoup(html, "html.parser")
    out: list[str] = []
    _walk(soup, out)
    text = "".join(out)
    text = text.replace(_NBSP, " ")
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _walk(node: Tag, out: list[str]) -> None:
    for child in node.children:
        if isinstance(child, NavigableString):
            out.append(str(child).replace("\n", " "))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name == "br":
            out.append("\n")
        elif name == "li":
            out.append("\n- ")
            _walk(child, out)
        elif name == "tr":
            cells = [
                html_to_text(str(cell)).replace("\n", " ") for cell in child.find_all(["td", "th"])
            ]
            out.append("\n" + " | ".join(cells))
        elif name in _BLOCK:
            out.append("\n\n")
            _walk(child, out)
            out.append("\n\n")
        else:
            _walk(child, out)


def normalize_for_search(text: str) -> str:
    """Search form of plain text: non-breaking spaces become spaces (the original is kept)."""
    return text.replace(_NBSP, " ")
