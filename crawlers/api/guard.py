"""The API's door: the token and the body's size are checked before a request costs anything.

FastAPI reads and parses a request body before its dependencies run, so a token
check written as a dependency came after a 400 MB body had been read and parsed
(3.4 s and 1.3 GB of memory, without a token). :class:`Guard` is a plain ASGI
middleware in front of the application:

* a ``/v1`` request without the right bearer token gets ``401`` before one byte of
  its body is read (the routes' own token dependency stays, as a second lock);
* a body announced (``Content-Length``) or streamed (counted chunk by chunk, for
  ``Transfer-Encoding: chunked``) beyond ``max_body`` bytes gets ``413``, and no more
  than ``max_body`` bytes are ever held;
* an accepted body is read here, within the bound, and replayed to the application.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _answer(send: Send, status: int, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: token first for ``protected`` paths, then the body's size (module docstring)."""

    def __init__(self, app: App, *, token: str, max_body: int, protected: str = "/v1/") -> None:
        self.app, self.expected, self.max_body, self.protected = app, token.encode("utf-8"), max_body, protected

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        scheme, _, given = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("latin-1"), self.expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(self.protected) and not self._authorized(scope):
            await _answer(send, 401, "a valid bearer token is required", ((b"www-authenticate", b"Bearer"),))
            return
        too_large = f"request body larger than {self.max_body} bytes"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _answer(send, 413, too_large)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:  # chunked, or longer than announced: stop reading here
                await _answer(send, 413, too_large)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)
