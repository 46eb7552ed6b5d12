"""A real SMTP server for tests: aiosmtpd in a thread of the test process, on 127.0.0.1 and a
free port. Its `Inbox` records every message accepted (envelope and raw bytes) and can be told
to refuse messages (``451 try again later``), to answer slowly, or to hold messages at a gate;
the server can be stopped and started again on the same port, as after an outage.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

REFUSAL = "451 4.3.0 try again later"


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]  # the envelope recipients: who the mail really goes to
    content: bytes  # the message exactly as sent (headers, blank line, body)

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)

    @property
    def header_lines(self) -> list[bytes]:
        """The raw header section, one physical line each (folded lines stay separate)."""
        head = self.content.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        return head.split(b"\n")

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]


class Inbox:
    """The aiosmtpd handler. Runs in the server's event loop thread; the test reads it."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.accept_limit: int | None = None  # refuse every message once this many arrived
        self.refused = 0
        self.delay = 0.0  # seconds before answering each message
        self.gate = threading.Event()  # cleared: messages wait in DATA until it is set
        self.gate.set()
        self.waiting = 0  # messages waiting at the gate now

    async def handle_DATA(self, server, session, envelope) -> str:
        if not self.gate.is_set():
            self.waiting += 1
            while not self.gate.is_set():
                await asyncio.sleep(0.01)
            self.waiting -= 1
        if self.delay:
            await asyncio.sleep(self.delay)
        # No await between the check and the append: one message at a time gets here.
        if self.accept_limit is not None and len(self.received) >= self.accept_limit:
            self.refused += 1
            return REFUSAL
        self.received.append(
            Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content))
        )
        return "250 2.0.0 OK"

    def message_ids(self) -> Counter[str]:
        return Counter(r.message_id for r in self.received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class SmtpServer:
    """An aiosmtpd server that keeps its port and inbox across `stop` and `start`."""

    def __init__(self, inbox: Inbox | None = None, host: str = "127.0.0.1") -> None:
        self.inbox = inbox or Inbox()
        self.host = host
        self.port = free_port(host)
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        """For EMAIL_URL (dashboard.env.email_config) in worker processes."""
        return f"smtp://{self.host}:{self.port}"

    def django_settings(self) -> dict:
        """EMAIL_* settings that make Django's SMTP backend send here."""
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": self.port,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_TIMEOUT": 10,
        }

    def start(self) -> None:
        # server_hostname: without it aiosmtpd calls getfqdn(), which can wait on DNS.
        self._controller = Controller(
            self.inbox, hostname=self.host, port=self.port, server_hostname="smtp.test"
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@contextmanager
def smtp_server(inbox: Inbox | None = None) -> Iterator[SmtpServer]:
    """A started `SmtpServer`, stopped at the end whatever happened."""
    server = SmtpServer(inbox)
    server.start()
    try:
        yield server
    finally:
        server.stop()
