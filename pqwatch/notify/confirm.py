"""Signed links and the mail of self-service subscriptions (double opt-in).

A link token is ``<subscriber id>.<expiry, Unix seconds>.<signature>``: the signature is an
HMAC-SHA256 (cut to 144 bits) under the database's signing secret of the link's purpose
("confirm" or "manage"), the id, the expiry and what binds it to the subscriber's present
state: their own secret (so a new one revokes every link) and, for a confirmation, the
nonce of the latest request (so a newer request makes older links invalid). Nothing in a
token is secret; changing any of it breaks the signature. Stdlib only.

The mail goes through the configured transport (SMTP, or .eml files in the outbox folder),
one message per request. It is one of three, and the caller of `subscribe` cannot tell which
was sent: a confirmation link for a new subscription; a confirmation link for searches added
to an existing subscription; or, for an address already subscribed, a manage link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pqwatch.errors import DeliveryError, UsageError

if TYPE_CHECKING:
    from email.message import EmailMessage

    import jinja2

    from pqwatch.config import Config, EmailConfig

# How long a confirmation link works, and a manage link (each digest carries a fresh one).
CONFIRM_LIFETIME = timedelta(hours=48)
MANAGE_LIFETIME = timedelta(days=90)

_SIG_BYTES = 18  # 144 bits: 24 characters of base64url
_TOKEN = re.compile(r"([1-9][0-9]{0,17})\.([0-9]{1,12})\.([A-Za-z0-9_-]{24})")


@dataclass(frozen=True)
class Token:
    subscriber_id: int
    expires: int  # Unix seconds
    signature: str


def _signature(key: bytes, purpose: str, subscriber_id: int, expires: int, binding: str) -> str:
    message = f"pqwatch/{purpose}\n{subscriber_id}\n{expires}\n{binding}".encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.urlsafe_b64encode(mac).decode()


def make_token(
    key: bytes, purpose: str, subscriber_id: int, expires: datetime, binding: str
) -> str:
    """A signed link token (see the module's docstring)."""
    exp = int(expires.timestamp())
    return f"{subscriber_id}.{exp}.{_signature(key, purpose, subscriber_id, exp, binding)}"


def read_token(token: str) -> Token | None:
    """The parts of a token as written, unchecked; None when it is not one at all."""
    m = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if m is None:
        return None
    return Token(int(m.group(1)), int(m.group(2)), m.group(3))


def signed(key: bytes, purpose: str, token: Token, binding: str) -> bool:
    """Whether the token's signature is right for this purpose and binding (constant time)."""
    want = _signature(key, purpose, token.subscriber_id, token.expires, binding)
    return hmac.compare_digest(want, token.signature)


def expired(token: Token, now: datetime) -> bool:
    return token.expires < now.timestamp()


def confirm_binding(secret: str, nonce: str | None) -> str:
    return f"{secret}\n{nonce or ''}"


def manage_binding(secret: str) -> str:
    return secret


def manage_token(key: bytes, subscriber_id: int, secret: str, now: datetime) -> str:
    """A token for /manage/<token>, working for MANAGE_LIFETIME from `now`."""
    return make_token(key, "manage", subscriber_id, now + MANAGE_LIFETIME, manage_binding(secret))


def manage_url(site: str, key: bytes, subscriber_id: int, secret: str, now: datetime) -> str:
    return f"{site}/manage/{manage_token(key, subscriber_id, secret, now)}"


def public_site(config: Config) -> str | None:
    """The address links in mail point to: [web] site_url, else [feeds] site_url."""
    web = getattr(config, "web", None)
    site = getattr(web, "site_url", None) or config.feeds.site_url
    return site.rstrip("/") if site else None


def manage_site(config: Config) -> str | None:
    """Where a digest's manage link points: the public address, else (self-service on) the
    address `pqwatch serve` listens on by the config, so a local install's digests still
    lead to its manage page. (Unsubscribe links, and the List-Unsubscribe header a mail
    client acts on, stay with a real public address only.)"""
    site = public_site(config)
    web = getattr(config, "web", None)
    if site is None and web is not None and self_service_on(config) and web.port:
        host = f"[{web.host}]" if ":" in web.host else web.host
        site = f"http://{host}:{web.port}"
    return site


def self_service_on(config: Config) -> bool:
    """[web] self_service (read defensively: a config without a [web] section says no)."""
    return bool(getattr(getattr(config, "web", None), "self_service", False))


# -- addresses ------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")


def address(value: str) -> str:
    """A web form's address, checked as config.toml's are (and lower-cased the same way),
    or a UsageError. Also refused: control characters and addresses longer than mail allows."""
    from email.headerregistry import Address

    from pqwatch.config import _email_address

    shown = ascii(value[:80]) if isinstance(value, str) else "that"
    problem = UsageError(f"{shown} is not a valid email address")
    if not isinstance(value, str):
        raise problem
    text = value.strip()
    if not text or len(text) > 254 or _CONTROL.search(text):
        raise problem
    try:
        text = _email_address(text)
        local, _, domain = text.rpartition("@")
        if len(local.encode()) > 64:
            raise ValueError(text)
        str(Address(username=local, domain=domain))  # the email package can write it
    except (ValueError, TypeError, IndexError):
        raise problem from None
    return text


# -- the message ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfirmationMail:
    """What one self-service mail says."""

    # confirm: a new subscription; addition: searches added to a subscription; already: the
    # address is subscribed already (a manage link, nothing to confirm).
    kind: str
    email: str
    frequency: str
    watches: tuple[str, ...]  # names: what to confirm, the searches to add, or subscribed
    link: str  # the confirmation link, or the manage link for "already"
    expires: datetime  # when the link stops working


SUBJECTS = {
    "confirm": "Confirm your alerts about written questions",
    "addition": "Confirm your new alert about written questions",
    "already": "Your alerts about written questions",
}


def build_message(
    env: jinja2.Environment,
    mail: ConfirmationMail,
    *,
    email: EmailConfig,
    reply_to: str | None,
    now: datetime,
    timezone: str,
) -> EmailMessage:
    """The mail as text and HTML (templates/confirm.txt, confirm.html), with the headers an
    automatic message carries."""
    from email.headerregistry import Address
    from email.message import EmailMessage
    from email.policy import SMTP, SMTPUTF8
    from email.utils import format_datetime, getaddresses, make_msgid
    from zoneinfo import ZoneInfo

    from pqwatch.notify.render import sender_domain

    local = mail.expires.astimezone(ZoneInfo(timezone))
    context = {
        "kind": mail.kind,
        "email": mail.email,
        "frequency": mail.frequency,
        "watches": list(mail.watches),
        "link": mail.link,
        "expires": f"{local.day} {local:%b %Y} at {local:%H:%M} ({timezone})",
        "subject": SUBJECTS[mail.kind],
    }
    text = env.get_template("confirm.txt").render(context)
    html = env.get_template("confirm.html").render(context)
    sender = getaddresses([email.from_])[0][1]
    # As digests: SMTPUTF8 only when an address is not ASCII (names never need it).
    policy = SMTP if (mail.email + sender).isascii() else SMTPUTF8
    msg = EmailMessage(policy=policy.clone(max_line_length=76))
    msg["From"] = email.from_
    user, _, domain = mail.email.rpartition("@")
    msg["To"] = Address(username=user, domain=domain)
    msg["Subject"] = SUBJECTS[mail.kind]
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = make_msgid(domain=sender_domain(email.from_))
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, cte=_transfer_encoding(text))
    msg.add_alternative(html, subtype="html", cte=_transfer_encoding(html))
    return msg


def _transfer_encoding(body: str) -> str:
    """As the body is when every line fits a mail line (so the link is one unbroken line),
    else quoted-printable (as digests do: pqwatch.notify.render)."""
    if max(map(len, body.encode().splitlines()), default=0) <= 998:
        return "7bit" if body.isascii() else "8bit"
    return "quoted-printable"


def send(email: EmailConfig, message: EmailMessage, now: datetime) -> None:
    """Hand the message to the configured transport (one connection, closed after), or raise
    a one-line DeliveryError that says nothing about the address's subscription."""
    from pqwatch.notify.mailer import make_transport

    to = re.sub(r"[^A-Za-z0-9.@-]+", "_", str(message["To"]))[:100]
    name = f"{now.astimezone(UTC):%Y%m%d-%H%M%S}-confirm-{to}-{uuid.uuid4().hex[:8]}"
    transport = make_transport(email)
    try:
        transport.send(message, name)
    except DeliveryError:
        raise DeliveryError(
            "the confirmation mail could not be sent just now; please try again later"
        ) from None
    finally:
        transport.close()
