"""The fraud decision API: `POST /v1/decisions` answers APPROVE, REVIEW or BLOCK for one
payment, before authorization, with the reasons; FastAPI gives the contract (OpenAPI at
`/openapi.json`, 401 and 422 answers with clear messages).

After answering, the transaction and its decision go to the audit trail (Kafka, with an
on-disk spool while Kafka is away), never delaying the answer. The service keeps
answering whatever fails behind it: without Redis it decides on the request alone,
without a model on the rules, and says so (`degraded`, `missing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import orjson
from fastapi import FastAPI, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from lakehouse.settings import Settings, get_settings
from streaming.fraud.audit import AuditTrail
from streaming.fraud.batcher import Batcher
from streaming.fraud.contract import Decision, Transaction
from streaming.fraud.decide import Decided, IdConflict, decide_batch
from streaming.fraud.metrics import METRICS
from streaming.fraud.serving import Serving
from streaming.fraud.state import FraudState
from streaming.service.asgi import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    authorized,
    json_response,
    send_json,
)
from streaming.service.auth import BearerToken
from streaming.service.exposition import render

log = logging.getLogger(__name__)
Answer = Callable[[Transaction], Awaitable[tuple[int, bytes, dict[str, str] | None]]]
DECISIONS_PATH = "/v1/decisions"
MAX_BODY_BYTES = 64 * 1024
BEARER = HTTPBearer(auto_error=False, description="LAKEHOUSE_API_TOKEN")
"""Module level: FastAPI resolves the route's (string) annotations in this namespace."""


class Readiness(BaseModel):
    """What the service has loaded."""

    ready: bool
    model_version: int | None
    rules_version: str
    category_risk: bool


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The service as an ASGI app (uvicorn's `--factory` target). Refuses to build without
    a token outside the local profile (`auth.MissingToken`) or with an invalid rules file
    (`lakehouse.decisions.rules.RulesError`)."""
    settings = settings or get_settings()
    token = BearerToken(settings)
    state = FraudState(settings)
    serving = Serving(settings, state)
    audit = AuditTrail(settings)
    batcher: Batcher[Transaction, Decided | IdConflict] = Batcher(
        lambda batch: decide_batch(serving.current, state, batch), settings.fraud_max_batch)

    async def answer(transaction: Transaction) -> tuple[int, bytes, dict[str, str] | None]:
        """Decide, count, audit: (status, JSON body, headers), for both paths."""
        started = time.perf_counter()
        decided = await batcher.submit(transaction)
        if isinstance(decided, IdConflict):
            METRICS.decisions.labels("none", "409").inc()
            return 409, orjson.dumps({"detail": str(decided)}), None
        METRICS.decisions.labels(decided.body["decision"], "200").inc()
        METRICS.latency.observe(time.perf_counter() - started)
        if decided.replayed:
            return 200, orjson.dumps(decided.body), {"Idempotent-Replayed": "true"}
        # The decision's latency is its `total` stage, not the sum of the stages.
        audit.record(transaction.model_dump(mode="json"),
                     {**decided.body, "latency_ms": decided.body["stage_ms"]["total"]})
        return 200, orjson.dumps(decided.body), None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Load the champion and the risk table before the port takes requests, so the
        # first payments are not decided without them.
        try:
            serving.swap(await asyncio.to_thread(serving.refresh))
        except Exception:  # the poller keeps trying; meanwhile decisions say what is missing
            log.exception("the first load of the model, rules or risk table failed")
        poller = asyncio.create_task(serving.poll())
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            audit.close()  # flushes to Kafka, or to the spool: nothing is lost
            await state.close()

    api = FastAPI(
        title="lakehouse fraud decisions",
        version="1",
        summary="APPROVE, REVIEW or BLOCK for one card payment, before authorization, with "
        "the reasons. Idempotent by transaction id; always answers, degraded if need be.",
        lifespan=lifespan,
    )

    @api.post(
        DECISIONS_PATH,
        response_model=Decision,
        responses={
            401: {"description": "Missing or wrong bearer token"},
            409: {"description": "The transaction id was already decided with other fields"},
        },
    )
    async def decisions(
        transaction: Transaction,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> Response:
        """Decide one payment. A retry of the same request gets the same decision (and is
        counted once); the decision is audited after the answer."""
        header = None if credentials is None else f"Bearer {credentials.credentials}".encode()
        if not token.accepts(header):
            METRICS.decisions.labels("none", "401").inc()
            return json_response({"detail": "missing or wrong bearer token"}, 401,
                         {"WWW-Authenticate": "Bearer"})
        status, body, headers = await answer(transaction)
        return Response(body, status, headers, media_type="application/json")

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @api.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz() -> Response:
        """Readiness: the champion model and the risk table are loaded (rules always are:
        the service does not start without them)."""
        snapshot = serving.current
        ready = snapshot.model is not None and bool(snapshot.category_risk)
        body = Readiness(ready=ready, model_version=snapshot.model_version,
                         rules_version=snapshot.rules.version,
                         category_risk=bool(snapshot.category_risk))
        return json_response(body.model_dump(), 200 if ready else 503)

    @api.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus exposition (all workers when several run)."""
        payload, content_type = render()
        return Response(payload, media_type=content_type)

    return FastPath(api, answer, token)


class FastPath:
    """Answers well-formed, authorized decision requests before FastAPI sees them: the
    body is validated by pydantic-core straight from the bytes, skipping FastAPI's
    dependency injection and request plumbing (about a third of a request's time under
    load, by py-spy). Anything else (a body that does not validate, a missing token,
    another route, lifespan) goes to FastAPI, which documents the endpoint and explains
    the 401 or 422; the body read here is handed on to it."""

    def __init__(self, app: FastAPI, answer: Answer, token: BearerToken) -> None:
        self.app = app
        self.answer = answer
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or scope["path"] != DECISIONS_PATH or not authorized(self.token, scope)):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await send_json(send, 413, orjson.dumps({"detail": "body over 64 KiB"}), None)
            return
        try:
            transaction = Transaction.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replaying(body), send)
            return
        await send_json(send, *await self.answer(transaction))



async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None past `MAX_BODY_BYTES`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes) -> Receive:
    """A `receive` that hands FastAPI the body already read."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
