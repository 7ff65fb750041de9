"""Plain text from sanitised answer HTML, checked against a BeautifulSoup reading of the same
HTML (the first implementation, kept here as the oracle) on every real answer recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from bs4.element import NavigableString, Tag

from pqwatch.testing.replay import load_items
from pqwatch.text import _finish, html_to_text, plain_text_to_html, sanitize_html

_BLOCK = {"p", "ul", "ol", "table", "thead", "tbody"}


def reference_text(html: str) -> str:
    # A row's own cells only: the first version also took the cells of a table nested in a
    # cell, which repeated their text.
    out: list[str] = []
    _walk(BeautifulSoup(html, "html.parser"), out)
    return _finish(out)


def _walk(node: Tag, out: list[str]) -> None:
    for child in node.children:
        if isinstance(child, NavigableString):
            out.append(child.replace("\n", " "))
        elif isinstance(child, Tag):
            if child.name == "br":
                out.append("\n")
            elif child.name == "li":
                out.append("\n- ")
                _walk(child, out)
            elif child.name == "tr":
                cells = []
                for cell in child.find_all(["td", "th"], recursive=False):
                    sub: list[str] = []
                    _walk(cell, sub)
                    cells.append(_finish(sub).replace("\n", " "))
                out.append("\n" + " | ".join(cells))
            elif child.name in _BLOCK:
                out.append("\n\n")
                _walk(child, out)
                out.append("\n\n")
            else:
                _walk(child, out)


def _recorded_answers(data_dir: Path) -> list[str]:
    files = sorted((data_dir / "uk_parliament").rglob("*.json*"))
    files = [f for f in files if f.name.startswith(("wq_", "commons_", "longform_"))]
    answers = []
    for value in load_items(files).values():
        for key in ("answerText", "originalAnswerText"):
            raw = value.get(key)
            if isinstance(raw, str) and raw.strip():
                answers.append(raw)
    return answers


def test_every_recorded_answer_reads_as_the_reference_does(data_dir: Path) -> None:
    answers = _recorded_answers(data_dir)
    assert len(answers) > 1000
    with_tables = 0
    for raw in answers:
        html = sanitize_html(raw)
        with_tables += "<td" in html
        assert html_to_text(html) == reference_text(html), raw[:200]
    assert with_tables > 10  # the tricky case is really covered


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<p>One &amp; two</p><p>Three&nbsp;four</p>", "One & two\n\nThree four"),
        ("<p>a<br>b</p><ul><li>x</li><li><em>y</em> z</li></ul>", "a\nb\n\n- x\n- y z"),
        (
            "<table><tr><th>Year</th><th>£m</th></tr><tr><td><p>2019</p></td><td>1,2</td></tr>"
            "</table><p>Source: ONS</p>",
            "Year | £m\n2019 | 1,2\n\nSource: ONS",
        ),
        (
            '<p><a href="https://x.org/?a=1&amp;b=&quot;>&quot;">link &lt;here&gt;</a></p>',
            "link <here>",
        ),
        ("<p>tab\there   and\nnewline</p>", "tab here and newline"),
        ("<script>alert(1)</script><p>kept</p><!-- gone -->", "kept"),
        ("<td>stray cell</td> text", "stray cell text"),
    ],
)
def test_text_of_hand_written_html(raw: str, expected: str) -> None:
    html = sanitize_html(raw)
    assert html_to_text(html) == expected
    assert reference_text(html) == expected


def test_text_of_plain_text_answers() -> None:
    html = plain_text_to_html("First <para> & more.\n\nSecond\nline")
    assert html_to_text(html) == "First <para> & more.\n\nSecond\nline"
