"""The recommendation API: FastAPI for the contract (OpenAPI at `/openapi.json`, typed
parameters, 401 and 422 answers), and a thin ASGI fast path in front of it for the one
hot request.

`GET /v1/recommendations/{user_id}?k=10` is answered by the fast path when the request is
well formed (a numeric id, at most a `k` in range, the right bearer token): it parses
those three things by hand and writes the JSON itself, skipping FastAPI's dependency
injection and validation, which made a request's median time about 1.7 times as long on
this machine (docs/recommendations.md, "Latency"). Anything else (a bad id, `k` out of
range, a missing token, an unknown query parameter) goes to the FastAPI route, which
documents the endpoint and gives the precise 401 or 422. Both paths call the same
`answer.recommend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import FastAPI, Path, Query, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from threadpoolctl import threadpool_limits

from lakehouse.settings import Settings, get_settings
from streaming.recommendations.answer import Answer, recommend
from streaming.recommendations.metrics import METRICS
from streaming.recommendations.serving import Serving
from streaming.recommendations.sessions import SessionReader
from streaming.service.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    authorized,
    json_response,
    send_json,
)
from streaming.service.auth import BearerToken
from streaming.service.exposition import render

PREFIX = "/v1/recommendations/"
MAX_K = 100
MAX_USER_ID = 2**63 - 1
RETRY_AFTER_SECONDS = 5
BEARER = HTTPBearer(auto_error=False, description="LAKEHOUSE_API_TOKEN")
"""Module level: FastAPI resolves the route's (string) annotations in this namespace."""


class Product(BaseModel):
    """One recommended product."""

    product_id: int
    score: float


class Recommendations(BaseModel):
    """A user's recommendations and where they came from."""

    user_id: int
    products: list[Product]
    source: Literal["realtime", "batch", "popular"]
    model_version: int | None
    generated_at: datetime


class Readiness(BaseModel):
    """What the service has loaded."""

    ready: bool
    model_version: int | None
    publication_id: str | None


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The service as an ASGI app (uvicorn's `--factory` target). Refuses to build without
    a token outside the local profile (`auth.MissingToken`)."""
    settings = settings or get_settings()
    token = BearerToken(settings)
    serving = Serving(settings)
    sessions = SessionReader(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # One BLAS thread while serving (32 x 32 solves, where threads only cost); the
        # process's own limits come back at shutdown (tests run the app in process).
        blas = threadpool_limits(1)
        poller = asyncio.create_task(serving.poll())
        try:
            yield
        finally:
            blas.restore_original_limits()
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            serving.close()
            sessions.close()

    api = FastAPI(
        title="lakehouse recommendations",
        version="1",
        summary="Products for a shopper: from their live session, else last night's batch, "
        "else what most people buy. Always 200 once anything is loaded.",
        lifespan=lifespan,
    )

    @api.get(
        "/v1/recommendations/{user_id}",
        response_model=Recommendations,
        responses={
            401: {"description": "Missing or wrong bearer token"},
            503: {"description": "Nothing loaded yet (no champion, nothing published)"},
        },
    )
    async def recommendations(
        user_id: Annotated[int, Path(ge=0, le=MAX_USER_ID, description="The shopper's id")],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many products")] = 10,
    ) -> Response:
        """Up to `k` products for the shopper, best first, with the source of the answer
        (`realtime`, `batch` or `popular`), the model version and when it was made."""
        header = None if credentials is None else f"Bearer {credentials.credentials}".encode()
        if not token.accepts(header):
            METRICS.requests.labels("none", "401").inc()
            return json_response(
                {"detail": "missing or wrong bearer token"}, 401, {"WWW-Authenticate": "Bearer"}
            )
        started = time.perf_counter()
        answer = _answer(serving, sessions, user_id, k)
        if answer is None:
            return _not_ready()
        _observe(answer, started)
        return json_response(answer.body())

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @api.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz() -> Response:
        """Readiness: the champion model and the batch publication are loaded."""
        snapshot = serving.current
        body = Readiness(
            ready=snapshot.ready,
            model_version=snapshot.model_version,
            publication_id=None
            if snapshot.publication is None
            else snapshot.publication.publication_id,
        )
        return json_response(body.model_dump(), 200 if snapshot.ready else 503)

    @api.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus exposition (all workers when several run)."""
        payload, content_type = render()
        return Response(payload, media_type=content_type)

    return FastPath(api, serving, sessions, token)


class FastPath:
    """Answers well-formed recommendation requests before FastAPI sees them (see the
    module docstring); passes everything else, lifespan included, to `app`."""

    def __init__(
        self, app: FastAPI, serving: Serving, sessions: SessionReader, token: BearerToken
    ) -> None:
        self.app = app
        self.serving = serving
        self.sessions = sessions
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(PREFIX):
                user_id = parse_user_id(path[len(PREFIX) :])
                k = parse_k(scope["query_string"])
                if user_id is not None and k is not None and authorized(self.token, scope):
                    started = time.perf_counter()
                    answer = _answer(self.serving, self.sessions, user_id, k)
                    if answer is not None:
                        await send_json(send, 200, orjson.dumps(answer.body()))
                        _observe(answer, started)
                        return
        await self.app(scope, receive, send)



def parse_user_id(text: str) -> int | None:
    """A user id from the path: ASCII digits only, in range; None otherwise (FastAPI then
    explains what is wrong)."""
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_USER_ID else None


def parse_k(query: bytes) -> int | None:
    """`k` from the query string when it is the only parameter (default 10); None for
    anything else."""
    if not query:
        return 10
    name, _, value = query.partition(b"=")
    if name != b"k" or not value or len(value) > 3 or not value.isdigit():
        return None
    k = int(value)
    return k if 1 <= k <= MAX_K else None


def _answer(serving: Serving, sessions: SessionReader, user_id: int, k: int) -> Answer | None:
    snapshot = serving.current
    if not snapshot.anything:
        return None
    return recommend(snapshot, sessions, user_id, k)


def _observe(answer: Answer, started: float) -> None:
    METRICS.requests.labels(answer.source.value, "200").inc()
    METRICS.latency.labels(answer.source.value).observe(time.perf_counter() - started)


def _not_ready() -> Response:
    METRICS.requests.labels("none", "503").inc()
    return json_response(
        {"detail": "no model or batch recommendations loaded yet"},
        503,
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
