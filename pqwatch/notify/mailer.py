"""Hand messages to an SMTP server, or write them as .eml files into an outbox folder.

Failures are classified because they are handled differently:
- PermanentRefusal: the server refused this recipient or message (5xx). Mark it failed with
  the server's reply and carry on with the others.
- RecipientDeferred: the server said "not now" (4xx) to this recipient or this message only.
  Keep it pending, try it again later (with backoff), and carry on with the others.
- TransientFailure: the server is down, timed out, dropped the connection, is closing (421)
  or refused the sender (MAIL FROM). Leave everything pending and stop; the next run sends it.

Messages are email.message.EmailMessage, written for the wire by the email package: with
SMTPUTF8 when an address is not ASCII; else with BODY=8BITMIME when a body goes 8bit and the
server offers it, and all 7-bit when it does not.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import tempfile
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any, Protocol

from pqwatch.config import ENV_SMTP_PASSWORD, EmailConfig
from pqwatch.errors import DeliveryError


class PermanentRefusal(DeliveryError):
    pass


class TransientFailure(DeliveryError):
    pass


class RecipientDeferred(DeliveryError):
    pass


class Transport(Protocol):
    def send(self, message: EmailMessage, name_hint: str) -> str:
        """Deliver; return the server's reply (or where the file went)."""
        ...

    def close(self) -> None: ...


class FolderTransport:
    """Writes each message as an .eml file (atomically: a temporary file, then a rename)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage, name_hint: str) -> str:
        # As it would go to a server offering 8BITMIME, with the local line ends.
        data = message.as_bytes(policy=message.policy.clone(linesep="\n"))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            final = self.folder / f"{name_hint}.eml"
            os.replace(tmp, final)
        except OSError as exc:
            raise TransientFailure(f"cannot write to {self.folder}: {exc.strerror}") from None
        return f"written to {final}"

    def close(self) -> None:
        pass


class SMTPTransport:
    """One connection reused for a run; opened on first use."""

    def __init__(self, config: EmailConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"{self.config.smtp_host}:{self.config.port}"

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        assert cfg.smtp_host
        try:
            smtp: smtplib.SMTP
            if cfg.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    cfg.smtp_host,
                    cfg.port,
                    timeout=cfg.timeout_seconds,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(cfg.smtp_host, cfg.port, timeout=cfg.timeout_seconds)
                if cfg.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if cfg.username:
                password = os.environ.get(ENV_SMTP_PASSWORD)
                if not password:
                    smtp.close()
                    raise TransientFailure(
                        f"email.username is set but {ENV_SMTP_PASSWORD} is not in the environment"
                    )
                smtp.login(cfg.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientFailure(f"SMTP {self.where} refused the login: {_reply(exc)}") from None
        except smtplib.SMTPNotSupportedError:
            raise TransientFailure(f"SMTP {self.where} does not offer STARTTLS") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientFailure(
                f"cannot connect to SMTP {self.where}: {_describe(exc)}"
            ) from None
        return smtp

    def send(self, message: EmailMessage, name_hint: str) -> str:
        if self._smtp is None:
            self._smtp = self._connect()
        sender, recipients = _envelope(message)
        try:
            if not "".join([sender, *recipients]).isascii():
                # Headers in UTF-8, and SMTPUTF8 (smtplib sends nothing if the server lacks it).
                data, options = _wire(message, utf8=True), ["SMTPUTF8", "BODY=8BITMIME"]
            else:
                data, options = _wire(message), []
                if not data.isascii():  # a body goes 8bit
                    self._smtp.ehlo_or_helo_if_needed()
                    if self._smtp.has_extn("8bitmime"):
                        options = ["BODY=8BITMIME"]
                    else:
                        data = _wire(message, cte_type="7bit")
            refused = self._smtp.sendmail(sender, recipients, data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            replies = "; ".join(f"{r}: {_code_text(c)}" for r, c in exc.recipients.items())
            codes = [c[0] for c in exc.recipients.values()]
            if 421 in codes:  # the server is closing the connection: not about this one
                self._drop()
                raise TransientFailure(f"SMTP {self.where} said {replies}") from None
            if all(400 <= c < 500 for c in codes):
                raise RecipientDeferred(f"deferred by {self.where}: {replies}") from None
            raise PermanentRefusal(replies) from None
        except smtplib.SMTPSenderRefused as exc:
            # MAIL FROM refused (e.g. a login is required): every message would be, whoever
            # it is for, so this is the server's problem, not a bad recipient.
            raise TransientFailure(f"SMTP {self.where} refused the sender: {_reply(exc)}") from None
        except smtplib.SMTPDataError as exc:
            # After the message: smtplib has reset the session (or closed it on a 421).
            if 500 <= exc.smtp_code < 600:
                raise PermanentRefusal(_reply(exc)) from None
            if 400 <= exc.smtp_code < 500 and exc.smtp_code != 421:
                raise RecipientDeferred(f"deferred by {self.where}: {_reply(exc)}") from None
            self._drop()
            raise TransientFailure(f"SMTP {self.where} said {_reply(exc)}") from None
        except smtplib.SMTPResponseException as exc:
            self._drop()
            if 500 <= exc.smtp_code < 600:
                raise PermanentRefusal(_reply(exc)) from None
            raise TransientFailure(f"SMTP {self.where} said {_reply(exc)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise TransientFailure(f"SMTP {self.where} failed: {_describe(exc)}") from None
        if refused:  # some recipients refused; we send one recipient per message
            raise PermanentRefusal("; ".join(f"{r}: {_code_text(c)}" for r, c in refused.items()))
        return f"accepted by {self.where}"

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            except (OSError, smtplib.SMTPException):
                pass
        self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()


def _envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """MAIL FROM and RCPT TO: the addresses in From and To, as smtplib's send_message takes
    them (our messages have neither Sender, Cc nor Bcc)."""
    sender = getaddresses([str(message["From"])])[0][1]
    return sender, [address for _, address in getaddresses([str(message["To"])])]


def _wire(message: EmailMessage, **policy: Any) -> bytes:
    """The message as it goes to the server, written by the email package: CRLF line ends;
    headers in UTF-8 with utf8=True; with cte_type="7bit", for a server that does not offer
    8BITMIME, each 8bit body encoded (in base64). (Not smtplib's send_message: it writes a
    message whose addresses are ASCII with a generator that turns a body line starting with
    "From " into ">From ".)"""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n", **policy))


def _code_text(value: tuple[int, bytes | str]) -> str:
    code, text = value
    return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return _code_text((exc.smtp_code, exc.smtp_error))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "connection closed by the server"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def make_transport(config: EmailConfig, out_dir: Path | None = None) -> Transport:
    if out_dir is not None:
        return FolderTransport(out_dir)
    if config.smtp_host:
        return SMTPTransport(config)
    return FolderTransport(config.outbox_dir)
