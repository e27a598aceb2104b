"""`lakehouse serve ...`: the online services under uvicorn, one process or several.

uvicorn with uvloop and httptools; granian is the alternative `bench/` measures it against
(the `bench` extra). SIGTERM and Ctrl-C stop it cleanly: uvicorn finishes the requests in
flight and runs the app's shutdown (the reload task stops, stores close), then exits 0.
"""

from __future__ import annotations

import os
import signal
import tempfile
from types import FrameType

import uvicorn

from lakehouse.decisions.rules import load_rules
from lakehouse.settings import Settings
from streaming.service.auth import BearerToken

RECOMMENDATIONS_APP = "streaming.recommendations.app:create_app"
FRAUD_APP = "streaming.fraud.app:create_app"


def serve_recommendations(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the recommendation service until SIGTERM; refuses to start without a token
    outside the local profile (before binding the port)."""
    _serve(RECOMMENDATIONS_APP, settings, host, port, workers)


def serve_fraud(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the fraud decision service until SIGTERM; refuses to start without a token
    outside the local profile or with a rules file that does not validate (both checked
    before binding the port)."""
    load_rules(settings.fraud_rules_path)
    _serve(FRAUD_APP, settings, host, port, workers)


def _serve(app: str, settings: Settings, host: str, port: int, workers: int) -> None:
    BearerToken(settings)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the
    # handler it found installed; this one turns that into a clean exit (code 0) rather
    # than death by signal, which supervisors would report as a crash.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker is a process: their metrics meet in files under one folder.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lakehouse-metrics-")
    uvicorn.run(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
