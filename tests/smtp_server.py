"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, keeping what it accepted. It can
refuse recipients (any reply), refuse the sender, and fail or drop DATA."""

from __future__ import annotations

import asyncio
import email
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    mail_options: list[str] = field(default_factory=list)
    raw: bytes = b""


class MailHandler:
    """aiosmtpd handler: keeps what it accepted; can refuse recipients and fail DATA."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rcpt_attempts: list[str] = []
        self.refuse: dict[str, str] = {}  # address -> reply to RCPT TO
        self.refuse_sender: str | None = None  # reply to MAIL FROM instead of accepting
        # One entry per coming DATA: "drop" closes the connection without replying,
        # anything else is the reply line sent instead of accepting.
        self.data_faults: list[str] = []
        # Seconds the server takes to answer RCPT TO (a slow server, and a longer run to kill;
        # before the message, so the moment it accepts one stays as short as a real server's).
        self.rcpt_delay = 0.0

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any
    ) -> str:
        if self.refuse_sender:
            return self.refuse_sender
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        self.rcpt_attempts.append(address)
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        refusal = self.refuse.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_faults:
            fault = self.data_faults.pop(0)
            if fault == "drop":
                server.transport.abort()  # gone before any reply: nothing was accepted
                return "250 never heard"
            return fault
        message = email.message_from_bytes(envelope.original_content, policy=default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message,
                list(envelope.mail_options),
                envelope.original_content,
            )
        )
        return "250 2.0.0 Ok: queued"


class MailServer:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self.handler = MailHandler()
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> None:
        assert self._controller is None
        controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
