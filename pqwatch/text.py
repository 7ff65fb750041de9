"""Text handling for untrusted answer HTML. Contains no business logic.

Answer HTML from the API is sanitised once, on the way in, with nh3 and a small allow-list;
only that sanitised HTML may ever be marked safe in a template. The plain-text form (for
search, plain-text mail and snippets) is read from the sanitised HTML, keeping paragraph
breaks and decoding entities.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

ALLOWED_TAGS = {
    "p", "br", "a", "strong", "em", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th",
    "td", "sup", "sub",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}
URL_SCHEMES = {"http", "https", "mailto"}

_BLOCK = frozenset({"p", "ul", "ol", "table", "thead", "tbody"})

# C0 controls but tab and newline, DEL, C1 controls (U+009B is a one-character CSI) and lone
# surrogates: ESC, OSC, BEL, BS or CR in archived text could drive a terminal (rewrite the
# screen, set its title, hide a link), and a lone surrogate cannot be stored as UTF-8.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def strip_controls(text: str) -> str:
    """Text without control characters (tabs and newlines kept; a CR or CRLF becomes a
    newline). Applied to every text a source gives us, and again at the terminal."""
    if _CONTROL.search(text) is None:  # the usual case: one scan, no copy
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


_NBSP = "\u00a0"


# One cleaner, built once: nh3.clean() builds its rules again on every call, which was half
# of its time on an ordinary answer. Built on first use: commands that only print text (and
# strip its control characters) never load nh3.
@lru_cache(maxsize=1)
def _cleaner() -> Any:
    import nh3

    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def sanitize_html(html: str) -> str:
    """Keep only harmless structure: paragraphs, links, emphasis, lists and tables."""
    cleaned: str = _cleaner().clean(html)
    return cleaned.strip()


def looks_like_html(text: str) -> bool:
    return bool(re.search(r"</?[a-zA-Z][^>]*>", text))


def plain_text_to_html(text: str) -> str:
    """Wrap plain text (e.g. a list-endpoint answer) as escaped paragraphs."""
    import html as _html

    paras = [p.strip() for p in re.split(r"\n\s*\n|\r\n\r\n", text) if p.strip()]
    return "".join(f"<p>{_html.escape(p).replace(chr(10), '<br>')}</p>" for p in paras)


_URL = re.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:)]")


def linked_paragraphs(
    text: str,
    reference: re.Pattern[str] | None = None,
    url_of: Callable[[re.Match[str]], str | None] | None = None,
    *,
    letter: bool = False,
) -> str:
    """Plain text (a devolved answer, an FOI response) as escaped HTML paragraphs, one a
    line, with web addresses linked, and each match of `reference` (another question's
    reference: S5W-02066, WQ87719) linked to the page `url_of` gives for it. A `letter`'s
    paragraphs are separated by blank lines, its single line breaks kept as <br>."""
    import html as _html

    def link(url: str | None, shown: str) -> str:
        return f'<a href="{url}">{shown}</a>' if url else shown

    def one(line: str) -> str:
        linked = _URL.sub(lambda m: link(m[0], m[0]), _html.escape(line.strip(), quote=False))
        if reference is not None and url_of is not None:
            linked = reference.sub(lambda m: link(url_of(m), m[0]), linked)
        return linked

    paragraphs = re.split(r"\n\s*\n", text) if letter else text.split("\n")
    out = []
    for para in paragraphs:
        lines = [one(line) for line in para.split("\n") if line.strip()]
        if lines:
            out.append(f"<p>{'<br>'.join(lines)}</p>")
    return "".join(out)


_SPACES = re.compile(r"[ \t]{2,}|\t")  # a single space stays as it is
_SPACE_AROUND_BREAK = re.compile(r" ?\n ?")
_TAG = re.compile(r'<(/?)([a-zA-Z][a-zA-Z0-9]*)(?:[^">]|"[^"]*")*>')
_CELL = frozenset({"td", "th"})


def html_to_text(html: str) -> str:
    """Plain text from sanitised HTML: one blank line between paragraphs, list items as
    '- item', table rows as cells joined by ' | ', entities decoded.

    Only for nh3's output (or plain_text_to_html's): html5ever serialises a balanced tree
    with double-quoted attributes and '<' escaped in text, so a tag pattern reads it exactly,
    about seven times faster than building a BeautifulSoup tree for it (bench/ingest.py).
    """
    if "<t" not in html:  # no table: plain string replacements do (twice as fast again)
        return _text_without_tables(html)
    from html import unescape  # here: html.entities costs search's start-up 2 ms

    out: list[str] = []
    buf = out
    saved: list[list[str]] = []  # the buffers to return to when a row or cell ends
    rows: list[list[str]] = []  # the cells of each open <tr>
    frames: list[str] = []  # "tr", "cell" or "" for each open tr/td/th
    pos = 0
    for m in _TAG.finditer(html):
        start = m.start()
        if start > pos:
            chunk = html[pos:start]
            buf.append((unescape(chunk) if "&" in chunk else chunk).replace("\n", " "))
        pos = m.end()
        name = m.group(2).lower()
        if m.group(1):  # an end tag
            if name in _BLOCK:
                buf.append("\n\n")
            elif name == "tr" or name in _CELL:
                frame = frames.pop() if frames else ""
                if frame == "cell":
                    cell = _finish(buf).replace("\n", " ")
                    buf = saved.pop()
                    rows[-1].append(cell)
                elif frame == "tr":
                    buf = saved.pop()
                    buf.append("\n" + " | ".join(rows.pop()))
        elif name == "br":
            buf.append("\n")
        elif name == "li":
            buf.append("\n- ")
        elif name in _BLOCK:
            buf.append("\n\n")
        elif name == "tr":
            frames.append("tr")
            saved.append(buf)
            rows.append([])
            buf = []  # text in a row but outside its cells is dropped
        elif name in _CELL:
            if rows and frames and frames[-1] == "tr":
                frames.append("cell")
                saved.append(buf)
                buf = []
            else:
                frames.append("")
    if pos < len(html):
        buf.append(unescape(html[pos:]).replace("\n", " "))
    return _finish(out)


# The tags that leave a mark in the text, as nh3 writes them: p, ul, ol, li and br never keep
# an attribute (ALLOWED_ATTRIBUTES), and text never holds a raw '<' or '>'.
_MARKS = (
    ("<p>", "\n\n"), ("</p>", "\n\n"), ("<ul>", "\n\n"), ("</ul>", "\n\n"),
    ("<ol>", "\n\n"), ("</ol>", "\n\n"), ("<br>", "\n"), ("<li>", "\n- "),
)  # fmt: skip
_ANY_TAG = re.compile(r'<(?:[^">]|"[^"]*")*>')


def _text_without_tables(html: str) -> str:
    """html_to_text for HTML without tables: the same text, by string replacement."""
    text = html.replace("\n", " ")  # a line break in the source text is a space
    for tag, mark in _MARKS:
        if tag in text:
            text = text.replace(tag, mark)
    if "<" in text:
        text = _ANY_TAG.sub("", text)
    if "&" in text:
        from html import unescape

        text = unescape(text)
    return _finish([text])


def _finish(out: list[str]) -> str:
    # Collapse runs of spaces/tabs to one space, drop spaces around line breaks, keep at most
    # one blank line. (Written for speed; the same result as the plain re.sub chain
    # `[ \t]+` -> " ", ` *\n *` -> "\n", `\n{3,}` -> "\n\n" followed by strip().)
    # The `in` tests skip a regex scan of the whole text in the usual case.
    text = "".join(out)
    if _NBSP in text:
        text = text.replace(_NBSP, " ")
    if "  " in text or "\t" in text:
        text = _SPACES.sub(" ", text)
    if "\n" in text:
        # Runs of spaces are single by now, so one space either side is all there can be.
        if " \n" in text or "\n " in text:
            text = _SPACE_AROUND_BREAK.sub("\n", text)
        while "\n\n\n" in text:  # str.replace is far faster than a regex here
            text = text.replace("\n\n\n", "\n\n")
    return text.strip()


# How much of one answer (or question) a digest or feed carries; the rest is a link away. A
# long real answer is some 10,000 characters; a 5 MB one would make a 12 MB message.
MAIL_TEXT_LIMIT = 20_000
MAIL_HTML_LIMIT = 30_000  # tables take several characters of markup per character of text
_BLOCK_END = re.compile(r"</(?:p|li|tr|table|ul|ol)>")


def cut_text(text: str, limit: int = MAIL_TEXT_LIMIT) -> tuple[str, bool]:
    """The text cut to `limit` characters at a paragraph (else a line, else a word), and
    whether it was cut."""
    if len(text) <= limit:
        return text, False
    for sep in ("\n\n", "\n", " "):
        cut = text.rfind(sep, 0, limit)
        if cut >= limit // 2:
            break
    else:
        cut = limit
    return text[:cut].rstrip(), True


def cut_html(html: str, limit: int = MAIL_HTML_LIMIT) -> tuple[str, bool]:
    """Sanitised HTML cut to about `limit` characters after a paragraph, list item or table
    row, and whether it was cut. The cut is sanitised again, which closes what it left open."""
    if len(html) <= limit:
        return html, False
    ends = [m.end() for m in _BLOCK_END.finditer(html, 0, limit)]
    cut = ends[-1] if ends and ends[-1] >= limit // 2 else html.rfind(" ", 0, limit)
    return sanitize_html(html[: cut if cut > 0 else limit]), True


def normalize_for_search(text: str) -> str:
    """Search form of plain text: non-breaking spaces become spaces (the original is kept)."""
    return text.replace(_NBSP, " ")
