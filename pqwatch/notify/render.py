"""Render a composed digest into a multipart/alternative email with Jinja templates.

Templates autoescape; the one exception is the answer HTML, which was sanitised with nh3 on
the way into the archive and only gains <mark> tags here: the `safe_answer` filter re-cleans
it before marking it safe, so nothing else can smuggle markup into a message.
"""

from __future__ import annotations

import binascii
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, EmailPolicy
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
import jinja2.runtime
import nh3
from markupsafe import Markup

from pqwatch.notify.compose import SECTION_TITLES, SECTIONS, Digest
from pqwatch.notify.mailer import OutgoingMail
from pqwatch.text import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES, strip_controls

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
    # A line per paragraph, list item and table row (a line break between two block tags
    # shows as nothing): mail lines may be 998 bytes at most, and a whole answer on one line
    # would have to go quoted-printable, in 76-character pieces (see build_message).
    for end in _BLOCK_ENDS:
        if end in cleaned:
            cleaned = cleaned.replace(end, end + "\n")
    return Markup(cleaned)  # noqa: S704 - cleaned by nh3 just above


_BLOCK_ENDS = ("</p>", "</li>", "</tr>", "</ul>", "</ol>", "</table>")


class _MacroCache:
    """`cached(macro, *args)` in a template: the macro's output, rendered once per distinct
    arguments. Digest items are frozen values and a macro's output depends on its arguments
    only, so subscribers of the same watch share their items' rendering. Macro names are the
    key with the arguments: keep them distinct across templates."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._done: dict[tuple[str, tuple[Hashable, ...]], str] = {}

    def __call__(self, macro: jinja2.runtime.Macro, *args: Hashable) -> str:
        key = (macro.name, args)
        found = self._done.get(key)
        if found is None:
            if len(self._done) >= self.size:
                self._done.clear()
            found = self._done[key] = macro(*args)
        return found


def _finalize(value: object) -> object:
    """Every value a template prints, without control characters: text is cleaned when it is
    stored, and this keeps an archive stored before that from reaching a mail reader."""
    if isinstance(value, Markup):
        return Markup(strip_controls(str(value)))  # noqa: S704 - already escaped or cleaned
    if isinstance(value, str):
        return strip_controls(value)
    return value


def environment(folder: Path = TEMPLATES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=jinja2.select_autoescape(["html", "xml"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    env.filters["day"] = _day
    env.filters["safe_answer"] = _safe_answer
    env.globals["cached"] = _MacroCache()
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
    operator: str | None,
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
        "unsubscribe_mailto": (
            unsubscribe_mailto(operator, digest.subscriber_email) if operator else None
        ),
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


_CRLF = b"\r\n"


# RFC 5321: a line of a message is at most 998 bytes, without its CRLF.
_MAX_LINE = 998


def _body(text: str, eight_bit: bool, boundary: bytes, html: bool = False) -> tuple[bytes, bytes]:
    """A text body for the wire, and its Content-Transfer-Encoding.

    Lines that are short enough go as they are: 7bit when ASCII, 8bit when UTF-8 and the
    server takes it (eight_bit). Otherwise quoted-printable, which cuts lines into
    76-character pieces: a mail server reads a message line by line, and a digest of 50
    items was some 3,000 such lines, which made the local test server the slowest part of
    sending (bench/digests.py). In HTML a long line is broken at a space, which HTML reads
    as the same (our markup and nh3's keep no space that matters: no <pre>, and only style
    attributes hold spaces).

    Quoted-printable is encoded line by line: it never joins lines, so a digest is its
    lines' encodings end to end, and lines repeat across digests. Line ends are what the
    email package takes them to be (\\n, \\r\\n, \\r); the body ends with one. It never
    contains "==", which the boundary does; a body as it is must not contain the boundary."""
    raw = text.encode("utf-8")
    lines = raw.splitlines() or [b""]
    if html:
        lines = [piece for line in lines for piece in _wrap(line)]
    fits = (
        b"\0" not in raw and boundary not in raw and max(len(line) for line in lines) <= _MAX_LINE
    )
    if fits and raw.isascii():
        return _CRLF.join(lines) + _CRLF, b"7bit"
    if fits and eight_bit:
        return _CRLF.join(lines) + _CRLF, b"8bit"
    return b"".join([_qp_line(line) for line in lines]), b"quoted-printable"


def _wrap(line: bytes) -> list[bytes]:
    """A line cut at spaces into pieces of at most _MAX_LINE bytes (a piece with no space to
    cut at stays longer)."""
    pieces = []
    while len(line) > _MAX_LINE:
        cut = line.rfind(b" ", 0, _MAX_LINE + 1)
        if cut <= 0:
            break
        pieces.append(line[:cut])
        line = line[cut + 1 :]
    pieces.append(line)
    return pieces


@lru_cache(maxsize=65536)  # the same item lines go to every subscriber of a watch
def _qp_line(line: bytes) -> bytes:
    """One line (no line end) in quoted-printable, soft-wrapped at 76, ended with CRLF."""
    return binascii.b2a_qp(line, istext=True).replace(b"\n", _CRLF) + _CRLF


@lru_cache(maxsize=1024)  # the sender, and subjects, repeat across a run
def _parsed_header(policy: EmailPolicy[EmailMessage], name: str, value: str) -> bytes:
    return policy.fold_binary(name, policy.header_factory(name, value))


def _header(policy: EmailPolicy[EmailMessage], name: str, value: str) -> bytes:
    """One header line as the email package writes it. Address headers are parsed by its
    header classes (the sender once per run). A short printable ASCII value of another header
    is written as it is, which is what the package's folding does with it, without parsing
    it first; anything else (long, non-ASCII, an encoded word) goes through the package."""
    if name not in {"From", "To"} and (
        len(name) + len(value) + 2 <= 78
        and value.isascii()
        and value.isprintable()
        and "=?" not in value
    ):
        return f"{name}: {value}\r\n".encode("ascii")
    return _parsed_header(policy, name, value)


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
    eight_bit: bool = True,
) -> OutgoingMail:
    """The digest as multipart/alternative (text, then HTML; UTF-8). Each body goes 7bit or
    8bit when its lines allow, else quoted-printable (_body); with eight_bit=False nothing
    goes 8bit, for a server that does not offer 8BITMIME (OutgoingMail.seven_bit).

    Headers are folded and encoded as the email package does; the bodies are encoded here, a
    line at a time with a cache, because the package's encoder and generator (and its header
    parsing) cost more than composing and rendering a digest (about 25 ms for 50 items)."""

    def seven_bit() -> bytes:
        return build_message(
            rendered, sender=sender, to_name=to_name, to_email=to_email,
            message_id=message_id, operator=operator, unsubscribe_url=unsubscribe_url,
            when=when, eight_bit=False,
        ).data  # fmt: skip

    from_addr = getaddresses([sender])[0][1]
    # As smtplib's send_message decides: a non-ASCII address needs SMTPUTF8 (names do not).
    international = not (from_addr + to_email).isascii()
    policy = SMTPUTF8 if international else SMTP
    targets = [f"<{unsubscribe_mailto(operator, to_email)}>"] if operator else []
    if unsubscribe_url:
        targets.append(f"<{unsubscribe_url}>")
    headers = [
        ("From", sender),
        ("To", formataddr((to_name, to_email)) if to_name else to_email),
        ("Subject", rendered.subject),
        ("Date", format_datetime(when)),
        ("Message-ID", message_id),
    ]
    if operator:
        # The footer says "reply to" the operator: a reply must reach them, not the sender.
        headers.append(("Reply-To", operator))
    if targets:
        headers.append(("List-Unsubscribe", ", ".join(targets)))
    if unsubscribe_url:
        # RFC 8058: one-click unsubscription needs an HTTPS URI in List-Unsubscribe.
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    headers += [("Auto-Submitted", "auto-generated"), ("MIME-Version", "1.0")]
    out = [_header(policy, name, value) for name, value in headers]
    boundary = f"==============={uuid.uuid4().hex}==".encode("ascii")
    bodies = [
        (b"plain", *_body(rendered.text, eight_bit, boundary)),
        (b"html", *_body(rendered.html, eight_bit, boundary, html=True)),
    ]
    out.append(b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n')
    out.append(_CRLF)
    for subtype, body, cte in bodies:
        out += [
            b"--" + boundary + _CRLF,
            b"Content-Type: text/" + subtype + b'; charset="utf-8"' + _CRLF,
            b"Content-Transfer-Encoding: " + cte + _CRLF,
            _CRLF,
            body,
            _CRLF,
        ]
    out.append(b"--" + boundary + b"--" + _CRLF)
    uses_8bit = any(cte == b"8bit" for _, _, cte in bodies)
    return OutgoingMail(
        sender=from_addr,
        recipient=to_email,
        data=b"".join(out),
        smtputf8=international,
        eight_bit=uses_8bit,
        seven_bit=seven_bit if uses_8bit else None,
    )


def sender_domain(sender: str) -> str:
    _, addr = parseaddr(sender)
    try:
        return Address(addr_spec=addr).domain or "pqwatch.invalid"
    except (ValueError, IndexError):
        return "pqwatch.invalid"
