"""What the online services' ASGI fast paths share: the ASGI types, the bearer check on
raw headers, and JSON answers (orjson, no response-model validation)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi.responses import Response

from streaming.service.auth import BearerToken

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def authorized(token: BearerToken, scope: Scope) -> bool:
    """Whether a request's raw headers carry the token (always, when none is required)."""
    if not token.required:
        return True
    for name, value in scope["headers"]:
        if name == b"authorization":
            return token.accepts(value)
    return False


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer serialized by orjson."""
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


async def send_json(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    """Answer with an already serialized JSON body, straight through ASGI."""
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
