"""Render a composed digest into a multipart/alternative email with Jinja templates.

Templates autoescape; the one exception is the answer HTML, which was sanitised with nh3 on
the way into the archive and only gains <mark> tags here: the `safe_answer` filter re-cleans
it before marking it safe, so nothing else can smuggle markup into a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
import nh3
from markupsafe import Markup

from pqwatch.notify.compose import SECTION_TITLES, SECTIONS, Digest
from pqwatch.text import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"


def _day(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return f"{value.day} {value:%b %Y}"


_TABLE = '<table style="border-collapse:collapse;margin:6px 0;font-size:13px;">'
_CELL = '<{} style="border:1px solid #bbb;padding:3px 6px;vertical-align:top;">'


@lru_cache(maxsize=4096)  # the same answers go to every subscriber of a watch
def _safe_answer(html: str | None) -> Markup:
    cleaned = nh3.clean(
        html or "",
        tags=ALLOWED_TAGS | {"mark"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
    )
    # Mail clients ignore <style>: give tables visible cells inline (our attributes, added
    # after cleaning, so nothing from the answer can reach them).
    cleaned = (
        cleaned.replace("<table>", _TABLE)
        .replace("<td>", _CELL.format("td"))
        .replace("<td ", _CELL.format("td")[:-1] + " ")
        .replace("<th>", _CELL.format("th"))
        .replace("<th ", _CELL.format("th")[:-1] + " ")
    )
    return Markup(cleaned)  # noqa: S704 - cleaned by nh3 just above


def environment(folder: Path = TEMPLATES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=jinja2.select_autoescape(["html", "xml"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["day"] = _day
    env.filters["safe_answer"] = _safe_answer
    return env


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def subject_for(digest: Digest, period: str) -> str:
    parts = []
    labels = {
        "answered": ("new answer", "new answers"),
        "corrected": ("correction", "corrections"),
        "holding": ("holding answer", "holding answers"),
        "tabled": ("newly tabled question", "newly tabled questions"),
    }
    for key in SECTIONS:
        n = digest.count(key)
        if n:
            one, many = labels[key]
            parts.append(f"{n} {one if n == 1 else many}")
    what = ", ".join(parts) if parts else "nothing new"
    kind = "Daily" if digest.frequency == "daily" else "Weekly"
    return f"{kind} written questions digest: {what} ({period})"


def period_text(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    s, e = start.astimezone(tz), end.astimezone(tz)
    if s.date() == e.date():
        return _day(e)
    return f"{_day(s)} to {_day(e)}"


def health_text(last_ok: datetime | None, failures: int, tz: ZoneInfo) -> str:
    if last_ok is None:
        line = "The archive has not been updated successfully yet."
    else:
        local = last_ok.astimezone(tz)
        line = f"Archive last updated successfully {_day(local)} at {local:%H:%M} ({tz.key})."
    if failures:
        line += (
            f" Warning: {failures} poll{'s' if failures != 1 else ''} of the Parliament API failed"
            " during this period, so some answers may arrive in a later digest."
        )
    else:
        line += " No poll failed during this period."
    return line


def render(
    env: jinja2.Environment,
    digest: Digest,
    *,
    tz: ZoneInfo,
    subscribed_watches: list[str],
    operator: str,
    unsubscribe_url: str | None,
    watch_unsubscribe: list[tuple[str, str]] | None = None,
) -> Rendered:
    period = period_text(digest.period_start, digest.period_end, tz)
    subject = subject_for(digest, period)
    kind = "Daily" if digest.frequency == "daily" else "Weekly"
    context = {
        "digest": digest,
        "subject": subject,
        "title": f"{kind} digest of written questions",
        "period": period,
        "sections": [(k, SECTION_TITLES[k]) for k in SECTIONS],
        "watch_list": ", ".join(subscribed_watches) or "none",
        "health": health_text(digest.last_poll_ok_at, digest.poll_failures, tz),
        "operator": operator,
        "unsubscribe_mailto": unsubscribe_mailto(operator, digest.subscriber_email),
        "unsubscribe_url": unsubscribe_url,
        "watch_unsubscribe": watch_unsubscribe or [],
    }
    return Rendered(
        subject=subject,
        text=env.get_template("digest.txt").render(context),
        html=env.get_template("digest.html").render(context),
    )


def unsubscribe_mailto(operator: str, email: str) -> str:
    return f"mailto:{operator}?subject={quote('unsubscribe ' + email)}"


def build_message(
    rendered: Rendered,
    *,
    sender: str,
    to_name: str,
    to_email: str,
    message_id: str,
    operator: str,
    unsubscribe_url: str | None,
    when: datetime,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = formataddr((to_name, to_email)) if to_name else to_email
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id
    targets = [f"<{unsubscribe_mailto(operator, to_email)}>"]
    if unsubscribe_url:
        targets.append(f"<{unsubscribe_url}>")
    msg["List-Unsubscribe"] = ", ".join(targets)
    if unsubscribe_url:
        # RFC 8058: one-click unsubscription needs an HTTPS URI in List-Unsubscribe.
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def sender_domain(sender: str) -> str:
    _, addr = parseaddr(sender)
    try:
        return Address(addr_spec=addr).domain or "pqwatch.invalid"
    except (ValueError, IndexError):
        return "pqwatch.invalid"
