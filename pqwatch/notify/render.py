"""Render a composed digest into a multipart/alternative email with Jinja templates.

Templates autoescape; the one exception is the answer HTML, which was sanitised with nh3 on
the way into the archive and only gains <mark> tags here: the `safe_answer` filter re-cleans
it before marking it safe, so nothing else can smuggle markup into a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import getaddresses, parseaddr
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
import jinja2.runtime
import nh3
from markupsafe import Markup

from pqwatch.notify.compose import SECTION_TITLES, SECTIONS, Digest
from pqwatch.resources import templates_dir
from pqwatch.text import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES, strip_controls
from pqwatch.types import SourcePolls, source_label


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
    # A line per paragraph, list item and table row (a line break between two block tags
    # shows as nothing): mail lines may be 998 bytes at most, and a whole answer on one line
    # would make the HTML part go quoted-printable, in 76-character pieces (build_message).
    for end in _BLOCK_ENDS:
        if end in cleaned:
            cleaned = cleaned.replace(end, end + "\n")
    return Markup(cleaned)  # noqa: S704 - cleaned by nh3 just above


_BLOCK_ENDS = ("</p>", "</li>", "</tr>", "</ul>", "</ol>", "</table>")


def _finalize(value: object) -> object:
    """Every value a template prints, without control characters: text is cleaned when it is
    stored, and this keeps an archive stored before that from reaching a mail reader."""
    if isinstance(value, Markup):
        return Markup(strip_controls(str(value)))  # noqa: S704 - already escaped or cleaned
    if isinstance(value, str):
        return strip_controls(value)
    return value


def environment(folder: Path | None = None) -> jinja2.Environment:
    """Templates from `folder`; by default pqwatch's own (pqwatch/resources.py finds them)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder or templates_dir()),
        autoescape=jinja2.select_autoescape(["html", "xml"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        finalize=_finalize,
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
        "statement": ("written statement", "written statements"),
        "foi": ("FOI update", "FOI updates"),
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


def health_text(polls: tuple[SourcePolls, ...], tz: ZoneInfo) -> str:
    """The footer's word on polling: when the archive was last updated (each source's own
    time when there are several, so one lagging source is seen) and which sources failed."""

    def when(moment: datetime | None) -> str:
        if moment is None:
            return "not yet"
        local = moment.astimezone(tz)
        return f"{_day(local)} at {local:%H:%M}"

    if all(p.last_ok is None for p in polls):
        line = "The archive has not been updated successfully yet."
    elif len(polls) == 1:
        line = f"Archive last updated successfully {when(polls[0].last_ok)} ({tz.key})."
    else:
        each = ", ".join(f"{source_label(p.source)} {when(p.last_ok)}" for p in polls)
        line = f"Archive last updated successfully: {each} ({tz.key})."
    failed = [p for p in polls if p.failures]
    if failed:
        each = "; ".join(
            f"{p.failures} poll{'s' if p.failures != 1 else ''} of {source_label(p.source)}"
            for p in failed
        )
        line += (
            f" Warning: {each} failed during this period, so some answers may arrive in a"
            " later digest."
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
    operator: str | None,
    unsubscribe_url: str | None,
    watch_unsubscribe: list[tuple[str, str]] | None = None,
    manage_url: str | None = None,
) -> Rendered:
    period = period_text(digest.period_start, digest.period_end, tz)
    subject = subject_for(digest, period)
    kind = "Daily" if digest.frequency == "daily" else "Weekly"
    context = {
        "digest": digest,
        "subject": subject,
        # Named for what it holds: written questions, and statements or FOI when present.
        "title": f"{kind} digest of "
        + (
            "written answers and FOI responses"
            if digest.count("foi")
            else "written questions and statements"
            if digest.count("statement")
            else "written questions"
        ),
        "period": period,
        "sections": [(k, SECTION_TITLES[k]) for k in SECTIONS],
        "watch_list": ", ".join(subscribed_watches) or "none",
        "health": health_text(digest.polls, tz),
        "operator": operator,
        "unsubscribe_mailto": (
            unsubscribe_mailto(operator, digest.subscriber_email) if operator else None
        ),
        "unsubscribe_url": unsubscribe_url,
        "watch_unsubscribe": watch_unsubscribe or [],
        # /manage/<token>: watches, frequency, pause (only where people may manage there).
        "manage_url": manage_url,
    }
    return Rendered(
        subject=subject,
        text=env.get_template("digest.txt").render(context),
        html=env.get_template("digest.html").render(context),
    )


def unsubscribe_mailto(operator: str, email: str) -> str:
    return f"mailto:{operator}?subject={quote('unsubscribe ' + email)}"


# RFC 5321: a line of a message is at most 998 bytes, without its CRLF.
_MAX_LINE = 998

# The policies digests carry: SMTP's (CRLF line ends), SMTPUTF8's when an address is not
# ASCII (headers in UTF-8), and lines of at most 76 characters where the package breaks them:
# headers are folded there (RFC 5322 asks 78 at most) and quoted-printable bodies are written
# in such lines, as RFC 2045 requires.
_POLICY = SMTP.clone(max_line_length=76)
_POLICY_UTF8 = SMTPUTF8.clone(max_line_length=76)


@lru_cache(maxsize=256)  # the sender, the operator and the fixed values, once a run
def _header(name: str, value: str) -> BaseHeader:
    """A header parsed once: set on a message, it is stored as it is, not parsed again."""
    header: BaseHeader = _POLICY.header_factory(name, value)
    return header


def _transfer_encoding(body: str) -> str:
    """How a body goes: as it is when every line fits in a mail line (7bit when ASCII, else
    8bit, which a server without 8BITMIME gets in a 7-bit form: mailer.py), else
    quoted-printable, which the email package writes in 76-character lines. (Left to choose,
    the package would encode every body with a line over 76 characters.)"""
    if "\0" not in body and max(map(len, body.encode().splitlines()), default=0) <= _MAX_LINE:
        return "7bit" if body.isascii() else "8bit"
    return "quoted-printable"


def build_message(
    rendered: Rendered,
    *,
    sender: str,
    to_name: str,
    to_email: str,
    message_id: str,
    operator: str | None,
    unsubscribe_url: str | None,
    when: datetime,
) -> EmailMessage:
    """The digest as multipart/alternative (text, then HTML; UTF-8), built with the email
    package. A re-send of the same digest has the same Message-ID (message_id)."""
    from_addr = getaddresses([sender])[0][1]
    # As smtplib's send_message decides: a non-ASCII address needs SMTPUTF8 (names do not).
    msg = EmailMessage(policy=_POLICY if (from_addr + to_email).isascii() else _POLICY_UTF8)
    msg["From"] = _header("From", sender)
    # An Address, not formataddr's text: a name that is not ASCII comes out of formataddr
    # as an encoded word, which Python 3.11's folding writes back partly unencoded, leaving
    # a comma in it bare ("Zoë O'Brien, MP" read as two addresses).
    local, _, domain = to_email.rpartition("@")
    msg["To"] = Address(display_name=to_name, username=local, domain=domain)
    msg["Subject"] = rendered.subject
    msg["Date"] = when
    msg["Message-ID"] = message_id
    if operator:
        # The footer says "reply to" the operator: a reply must reach them, not the sender.
        msg["Reply-To"] = _header("Reply-To", operator)
    targets = [f"<{unsubscribe_mailto(operator, to_email)}>"] if operator else []
    if unsubscribe_url:
        targets.append(f"<{unsubscribe_url}>")
    if targets:
        msg["List-Unsubscribe"] = ", ".join(targets)
    if unsubscribe_url:
        # RFC 8058: one-click unsubscription needs an HTTPS URI in List-Unsubscribe.
        msg["List-Unsubscribe-Post"] = _header(
            "List-Unsubscribe-Post", "List-Unsubscribe=One-Click"
        )
    msg["Auto-Submitted"] = _header("Auto-Submitted", "auto-generated")
    msg["MIME-Version"] = _header("MIME-Version", "1.0")
    msg.set_content(rendered.text, cte=_transfer_encoding(rendered.text))
    msg.add_alternative(rendered.html, subtype="html", cte=_transfer_encoding(rendered.html))
    return msg


def sender_domain(sender: str) -> str:
    _, addr = parseaddr(sender)
    try:
        return Address(addr_spec=addr).domain or "pqwatch.invalid"
    except (ValueError, IndexError):
        return "pqwatch.invalid"
