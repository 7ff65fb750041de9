"""Build RSS 2.0 and Atom feeds per watch (and one for all watches) with feedgen.

Each item is one event — an answer, a correction, a holding answer, a newly tabled question —
with a GUID made of the question's id, the event kind and its date. So a correction reaches a
feed reader as a new item instead of silently editing an old one, and rebuilding a feed never
changes an existing item's GUID. The feed's own dates come from its newest item, not the clock,
so an unchanged feed is byte-for-byte the same (and its ETag stable).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from feedgen.feed import FeedGenerator

from pqwatch import __version__
from pqwatch.text import cut_html, cut_text
from pqwatch.types import (
    AttachmentData,
    attachments_from_json,
    foi_state_label,
    item_label,
    official_url,
)

KIND_LABELS = {
    "answered": "Answered",
    "corrected": "Corrected",
    "holding": "Holding answer",
    "tabled": "Tabled",
}
OFFICIAL_SITE = "https://questions-statements.parliament.uk/written-questions"
ALL = "all"
# XML 1.0 forbids most C0 controls, lone surrogates and U+FFFE/U+FFFF.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str | None) -> str:
    return _XML_BAD.sub("", text or "")


@dataclass(frozen=True)
class FeedItem:
    guid: str
    kind: str
    title: str
    url: str | None
    published: datetime
    asker: str | None
    department: str | None
    watches: tuple[str, ...]
    question_text: str
    heading: str | None
    uin: str | None
    house: str
    date_tabled: date
    answer_html: str | None
    answered_by: str | None
    answer_date: date | None
    attachments: tuple[AttachmentData, ...] = ()
    answer_cut: bool = False
    # "UK Parliament (Commons), written question"
    where: str = ""
    statement: bool = False
    made_by: str | None = None  # a statement's minister
    # FOI: the request's state in words (its authority is `department`, requester `asker`).
    foi_state: str | None = None


@dataclass(frozen=True)
class FeedDoc:
    slug: str
    title: str
    items: tuple[FeedItem, ...]
    updated: datetime


def _d(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def load_feed(rows: Iterable[Mapping[str, Any]], slug: str, title: str, tz: ZoneInfo) -> FeedDoc:
    """The feed of the store's event rows (pqwatch.store.reads.Reads.feed_events)."""
    items = []
    for r in rows:
        day = _d(r["event_date"]) or date.min
        heading = r["heading"] or f"Question to the {r['department'] or 'Government'}"
        uin = r["uin"] or "?"
        statement = r["item_kind"] == "statement"
        label = "Statement" if statement else KIND_LABELS.get(r["kind"], r["kind"].title())
        foi_state = None
        if r["item_kind"] == "foi":
            # A change of state is told as it was then; anything else with the state now.
            then = json.loads(r["detail_json"]).get("to") if r["detail_json"] else None
            foi_state = foi_state_label(then or r["status"], _d(r["date_for_answer"]), day)
            label = {"answered": "FOI response", "tabled": "FOI request"}.get(
                r["kind"], f"FOI: {foi_state}"
            )
            uin = r["department"] or "?"  # who was asked says more than a url_title
        corrected = r["kind"] == "corrected"
        # A very long answer is cut at a paragraph; the rest is a link away.
        answer_html, answer_cut = cut_html(r["answer_html"]) if r["answer_html"] else (None, False)
        items.append(
            FeedItem(
                guid=f"pqwatch:{r['source']}:{r['source_id']}:{r['kind']}:{day.isoformat()}",
                kind=r["kind"],
                title=f"[{label}] {heading} ({uin})",
                url=official_url(
                    r["parliament"], r["item_kind"], r["date_tabled"], r["uin"], r["source_id"]
                ),
                where=item_label(r["parliament"], r["item_kind"], r["house"]),
                made_by=r["minister"] if statement else None,
                statement=statement,
                foi_state=foi_state,
                # Noon, UK time: the same calendar day whichever zone a reader shows.
                published=datetime.combine(day, time(12, 0), tzinfo=tz).astimezone(UTC),
                asker=r["asker"],
                department=r["department"],
                watches=r["watches"],
                question_text=cut_text(r["question_text"])[0],
                heading=r["heading"],
                uin=r["uin"],
                house=r["house"],
                date_tabled=_d(r["date_tabled"]) or date.min,
                answer_html=answer_html,
                answer_cut=answer_cut,
                answered_by=r["corrector"] if corrected and r["corrector"] else r["answerer"],
                answer_date=_d(r["date_corrected"] if corrected else r["date_answered"]),
                attachments=attachments_from_json(r["attachments_json"]),
            )
        )
    updated = max((i.published for i in items), default=datetime(2000, 1, 1, tzinfo=UTC))
    return FeedDoc(slug=slug, title=title, items=tuple(items), updated=updated)


def _generator(doc: FeedDoc, site_url: str | None, kind: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.load_extension("dc")
    feed_url = f"{site_url}/feeds/{doc.slug}.{kind}" if site_url else None
    fg.id(feed_url or f"urn:pqwatch:feed:{doc.slug}")
    fg.title(xml_safe(f"Written questions: {doc.title}"))
    about = (
        "UK Parliament written questions matching any watch"
        if doc.slug == ALL
        else f"UK Parliament written questions matching the watch {doc.title!r}"
    )
    fg.description(xml_safe(about))
    fg.subtitle(xml_safe(about))
    fg.link(href=site_url or OFFICIAL_SITE, rel="alternate")
    if feed_url:
        fg.link(href=feed_url, rel="self")
    fg.language("en-GB")
    # RFC 4287 4.1.1: a feed needs an atom:author unless every entry has one, and entries of
    # questions without a known asker have none.
    fg.author(name="pqwatch")
    fg.generator("pqwatch", version=__version__)
    fg.updated(doc.updated)
    fg.lastBuildDate(doc.updated)
    return fg


def render_feed(doc: FeedDoc, kind: str, env: jinja2.Environment, site_url: str | None) -> bytes:
    """The feed as bytes; `kind` is "rss" or "atom"."""
    fg = _generator(doc, site_url, kind)
    template = env.get_template("feed_item.html")
    # feedgen prepends entries; add oldest first so the newest comes first in the document.
    for item in reversed(doc.items):
        fe = fg.add_entry()
        fe.guid(item.guid, permalink=False)
        fe.id(item.guid)
        fe.title(xml_safe(item.title))
        if item.url:
            fe.link(href=item.url)
        if item.asker:
            fe.author(name=xml_safe(item.asker))
            fe.dc.dc_creator(xml_safe(item.asker))
        for term in (item.department, *item.watches):
            if term:
                fe.category(term=xml_safe(term))
        body = xml_safe(template.render(item=item))
        if kind == "rss":
            fe.description(body)
        else:
            fe.summary(xml_safe(item.question_text))
            fe.content(body, type="html")
        fe.published(item.published)
        fe.updated(item.published)
        fe.pubDate(item.published)
    data: bytes = fg.rss_str(pretty=True) if kind == "rss" else fg.atom_str(pretty=True)
    return data


def etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
