"""The request-size limit, enforced as the body arrives: a declared Content-Length over the limit is refused
before any of the body is read, and a body sent without one (chunked) is counted chunk by chunk and refused
as soon as it passes the limit. Either way the 413 closes the connection, so the rest of the body is never
read, parsed or spooled to disk."""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Pure ASGI middleware: wraps `receive` to count the body's bytes."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send, f"request too large ({length} bytes; the limit is {self.max_bytes})", 0)
        read = 0
        started = over = False

        async def counted_receive() -> Message:
            nonlocal read, over
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes:
                    over = True
                    raise _BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if over:  # the app's own answer to the cut-off body (e.g. "error parsing the body") is replaced
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge:
            if started:  # too late to answer 413: the server closes the connection
                raise
        if over and not started:
            await self._refuse(send, f"request too large (over {self.max_bytes} bytes, the limit)", read)

    async def _refuse(self, send: Send, message: str, read: int) -> None:
        body = json.dumps({"error": message, "limit_bytes": self.max_bytes, "read_bytes": read}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
