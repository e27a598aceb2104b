"""The trivial ASGI app the generator's floor and the HTTP stacks are measured against:
one small orjson body, no I/O, so every microsecond is the stack's and the generator's.

    uvicorn bench.serving.trivial:app --loop uvloop --http httptools
    granian --interface asgi bench.serving.trivial:app
"""

from __future__ import annotations

from typing import Any

import orjson

BODY = orjson.dumps(
    {
        "user_id": 42,
        "source": "realtime",
        "items": [{"item_id": i, "score": 1.0} for i in range(10)],
    }
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
