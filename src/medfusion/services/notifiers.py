"""Notifiers: how a message leaves medfusion (email over SMTP, or the log for the demo).

A :class:`Notifier` sends one :class:`Message` or raises :class:`NotifierError`, whose
``permanent`` flag tells the outbox whether trying again can help (a refused address
cannot, a server that is down can).
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from medfusion.config import get_settings

__all__ = ["LogNotifier", "Message", "Notifier", "NotifierError", "SmtpNotifier", "notifier_from_settings"]

log = logging.getLogger("medfusion.notifications")


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: an address (or a reference where none is known), subject and text."""

    recipient: str
    subject: str
    body: str


class NotifierError(Exception):
    """A message could not be sent.

    Parameters
    ----------
    message
        What went wrong.
    permanent
        True when sending again cannot succeed (no address, address refused).
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Notifier(Protocol):
    """Sends messages; raises :class:`NotifierError` when one cannot be sent."""

    def send(self, message: Message) -> None:
        """Send ``message`` (returns only once it has been handed over)."""
        ...


class LogNotifier:
    """Writes each message to the ``medfusion.notifications`` log (the demo's notifier)."""

    def send(self, message: Message) -> None:
        """Log the message at INFO level."""
        log.info("notification to %s: %s | %s", message.recipient, message.subject, message.body)


class SmtpNotifier:
    """Sends email through an SMTP server (standard library ``smtplib``).

    Parameters
    ----------
    host, port
        The SMTP server.
    sender
        The ``From`` address.
    starttls
        Upgrade the connection with STARTTLS before sending.
    username, password
        Credentials for ``AUTH``, when the server needs them.
    timeout
        Seconds to wait for the server.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.username, self.password, self.timeout = starttls, username, password, timeout

    def send(self, message: Message) -> None:
        """Send one email; a refused recipient is permanent, a connection problem is not."""
        if "@" not in message.recipient:
            raise NotifierError(f"{message.recipient} has no email address", permanent=True)
        email = EmailMessage()
        email["From"], email["To"], email["Subject"] = self.sender, message.recipient, message.subject
        email.set_content(message.body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as error:
            raise NotifierError(
                f"the SMTP server refused {message.recipient}: {error}", permanent=True
            ) from None
        except (OSError, smtplib.SMTPException) as error:
            raise NotifierError(f"SMTP {self.host}:{self.port}: {type(error).__name__}: {error}") from None


def notifier_from_settings() -> Notifier:
    """The notifier ``settings.notifier`` names (``log`` or ``smtp``)."""
    settings = get_settings()
    if settings.notifier == "smtp":
        return SmtpNotifier(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        )
    return LogNotifier()
