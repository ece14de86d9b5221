"""Where alerts reach a person: a webhook (one JSON object per message, POSTed) and a Telegram chat
(through python-telegram-bot). A channel sends one `AlertMessage` or raises `DeliveryError`, whose text
never holds the webhook URL or the bot token (both may be secrets, and errors are logged).

The same channels serve the daemon's dispatcher (alerts from the `alerts` table, or kept in memory while
the database is away) and `tradingd liveness` (which runs outside the daemon and has no database)."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from config.settings import AlertSettings

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
TELEGRAM_TEXT_LIMIT = 4096
_HOST = socket.gethostname()

# httpx (under python-telegram-bot) logs every request's URL at INFO, and Telegram's URL holds the token.
for _name in ("httpx", "httpcore", "telegram"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class AlertMessage:
    """One message: an alert, or a digest of several (kind `alert_digest`)."""

    severity: str
    kind: str
    message: str
    trace_id: str
    raised_at: datetime
    uid: str
    pair: str | None = None
    run_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {
            "source": "tradingd",
            "host": _HOST,
            "uid": self.uid,
            "severity": self.severity,
            "kind": self.kind,
            "pair": self.pair,
            "run_id": self.run_id,
            "message": self.message,
            "trace_id": self.trace_id,
            "raised_at": self.raised_at.isoformat(),
            "details": self.details,
        }

    def text(self) -> str:
        """The chat message: what, where, when, and the trace id to find it in the logs."""
        head = f"[{self.severity.upper()}] {self.kind}" + (f" {self.pair}" if self.pair else "")
        lines = [
            head,
            self.message,
            f"trace {self.trace_id} · {self.raised_at:%Y-%m-%d %H:%M:%S} UTC · {_HOST}",
        ]
        if self.run_id:
            lines.append(f"run {self.run_id}")
        text = "\n".join(lines)
        return text if len(text) <= TELEGRAM_TEXT_LIMIT else text[: TELEGRAM_TEXT_LIMIT - 1] + "…"


class DeliveryError(Exception):
    """A send failed; `retry_after_sec`: when the service asked us to wait (HTTP 429)."""

    def __init__(self, message: str, retry_after_sec: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_sec = retry_after_sec


class Channel(Protocol):
    name: str

    async def send(self, message: AlertMessage) -> None: ...

    async def close(self) -> None: ...


class WebhookChannel:
    """POST the message's JSON; any 2xx is delivered."""

    name = "webhook"

    def __init__(self, url: str, timeout_sec: float) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_sec)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, message: AlertMessage) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._url, json=message.payload()) as response:
                if 200 <= response.status < 300:
                    return
                retry_after = _seconds(response.headers.get("Retry-After")) if response.status == 429 else None
                raise DeliveryError(f"the webhook answered HTTP {response.status}", retry_after)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            # aiohttp's errors may name the URL (with its token): say only what kind of failure it was.
            raise DeliveryError(f"the webhook could not be reached ({type(error).__name__})") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class TelegramChannel:
    """`sendMessage` to one chat through python-telegram-bot."""

    name = "telegram"

    def __init__(self, token: str, chat_id: str, api_url: str, timeout_sec: float) -> None:
        from telegram import Bot  # imported here: only a daemon that delivers to Telegram needs it

        self._token = token
        self._bot = Bot(token, base_url=f"{api_url.rstrip('/')}/bot")
        self._chat_id = chat_id
        self._timeout = timeout_sec
        self._open = False

    async def send(self, message: AlertMessage) -> None:
        from telegram.error import RetryAfter, TelegramError

        try:
            if not self._open:
                await self._bot.initialize()
                self._open = True
            await self._bot.send_message(
                self._chat_id,
                message.text(),
                read_timeout=self._timeout,
                write_timeout=self._timeout,
                connect_timeout=self._timeout,
                pool_timeout=self._timeout,
            )
        except RetryAfter as error:
            raise DeliveryError("Telegram asked to wait", _seconds(error.retry_after)) from None
        except (TelegramError, OSError, TimeoutError) as error:
            detail = str(error).replace(self._token, "***")
            raise DeliveryError(
                f"Telegram refused or could not be reached ({type(error).__name__}: {detail})"
            ) from None

    async def close(self) -> None:
        if self._open:
            self._open = False
            try:
                await self._bot.shutdown()
            except Exception as error:  # closing must not fail a shutdown
                logging.getLogger("tradingd.alerts").debug("telegram_close_failed: %s", type(error).__name__)


def open_channels(settings: AlertSettings) -> list[Channel]:
    """The configured channels (none: delivery is off)."""
    channels: list[Channel] = []
    if settings.webhook_url is not None:
        channels.append(WebhookChannel(settings.webhook_url.get_secret_value(), settings.send_timeout_sec))
    if settings.telegram_bot_token is not None and settings.telegram_chat_id is not None:
        channels.append(
            TelegramChannel(
                settings.telegram_bot_token.get_secret_value(),
                settings.telegram_chat_id,
                settings.telegram_api_url,
                settings.send_timeout_sec,
            )
        )
    return channels


async def close_channels(channels: list[Channel]) -> None:
    await asyncio.gather(*(channel.close() for channel in channels))


def _seconds(value: object) -> float | None:
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None
