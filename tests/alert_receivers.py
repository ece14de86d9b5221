"""Loopback stand-ins for the services alerts are delivered to (the outside boundary, like the exchange
simulator): a webhook receiver and a Telegram Bot API server, both real HTTP servers on 127.0.0.1. Each
records what it received and can be told to fail its next answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Receiver:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 503
    retry_after: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)


def _webhook_app(receiver: Receiver) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        with receiver.lock:
            receiver.paths.append(request.path)
            if receiver.fail_next > 0:
                receiver.fail_next -= 1
                headers = {"Retry-After": receiver.retry_after} if receiver.retry_after else None
                return web.Response(status=receiver.fail_status, headers=headers)
            receiver.received.append(body)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    return app


def _telegram_app(receiver: Receiver) -> web.Application:
    """Telegram's Bot API as python-telegram-bot calls it: POST /bot<token>/<method>."""

    async def method(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        token = request.match_info["token"]
        form = dict(await request.post()) if request.content_type != "application/json" else await request.json()
        me = {"id": 1, "is_bot": True, "first_name": "tradingd", "username": "tradingd_bot"}
        if name == "getMe":
            return web.json_response({"ok": True, "result": me})
        if name != "sendMessage":
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        with receiver.lock:
            receiver.paths.append(f"/bot{token}/{name}")
            if receiver.fail_next > 0:
                receiver.fail_next -= 1
                answer = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1"}
                return web.json_response({**answer, "parameters": {"retry_after": 1}}, status=429)
            receiver.received.append({key: str(value) for key, value in form.items()})
        chat = {"id": int(str(form["chat_id"])) if str(form["chat_id"]).lstrip("-").isdigit() else 5, "type": "private"}
        message = {"message_id": len(receiver.received), "date": 0, "chat": chat, "text": str(form["text"]), "from": me}
        return web.json_response({"ok": True, "result": message})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", method)
    return app


@contextmanager
def serving(kind: str) -> Iterator[Receiver]:
    """A receiver (`webhook` or `telegram`) on a thread of its own, so a daemon process or a test's own
    event loop can reach it alike."""
    receiver = Receiver()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: web.AppRunner | None = None

    async def start() -> None:
        nonlocal runner
        app = _webhook_app(receiver) if kind == "webhook" else _telegram_app(receiver)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        receiver.url = f"http://127.0.0.1:{port}" + ("/hooks/secret-path-token" if kind == "webhook" else "")
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(30), "the receiver did not start"
    try:
        yield receiver
    finally:
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
