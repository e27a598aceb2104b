"""What the decision service decides with, and swapping it without a restart.

A `Snapshot` is immutable: the champion fraud model and its registry version, the rule
set, and the category-risk table. A request reads `Serving.current` once and uses only
that object, so a swap (one reference assignment, on the event loop) never mixes two
models or two rule sets in one decision, and no request fails during a swap. A background
task checks every `fraud_reload_seconds` for a new champion (`TableWatch`), a changed
rules file (its modification time and size) and a newly published risk table; it loads
in a thread while the loop keeps answering. A rules file that does not validate is
refused with its errors logged and counted, and the previous rules stay in force.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import redis

from lakehouse.catalog import MODEL_REGISTRY
from lakehouse.decisions.rules import RulesError, RuleSet, load_rules
from lakehouse.models.fraud import MODEL_NAME, FraudModel, load_fraud_model
from lakehouse.models.registry import champion
from lakehouse.online.fraud_state import decode_category_risk
from lakehouse.settings import Settings
from streaming.fraud.metrics import METRICS
from streaming.fraud.state import FraudState
from streaming.service.table_watch import TableWatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of what to decide with; the model and the risk table may be
    missing (before the first training or publish): decisions are then degraded."""

    rules: RuleSet
    model: FraudModel | None = None
    model_version: int | None = None
    category_risk: dict[str, float] | None = None


class Serving:
    """The current snapshot and how it is refreshed."""

    def __init__(self, settings: Settings, state: FraudState) -> None:
        self.settings = settings
        self.state = state
        self.rules_path = settings.fraud_rules_path
        # A service must not start on rules it cannot read: this raises RulesError.
        self.current = Snapshot(rules=load_rules(self.rules_path))
        self._rules_stamp = _stamp(self.current.rules.path)
        self._registry = TableWatch(MODEL_REGISTRY, settings)

    def refresh(self) -> Snapshot:
        """Load what changed (blocking: run it in a thread); the snapshot to serve next."""
        snapshot = self.current
        registry = self._registry.moved()
        if registry is not None:
            version = champion(self.settings, MODEL_NAME)
            if version is not None and version.version != snapshot.model_version:
                model = load_fraud_model(self.settings, version)
                model.serve()
                snapshot = replace(snapshot, model=model, model_version=version.version)
                METRICS.model_version.set(version.version)
                METRICS.reloads.labels("model").inc()
                log.info("deciding with fraud model version %d", version.version)
            self._registry.seen(registry)
        stamp = _stamp(snapshot.rules.path)
        if stamp != self._rules_stamp:
            self._rules_stamp = stamp
            try:
                rules = load_rules(self.rules_path)
            except RulesError as error:
                METRICS.reload_errors.labels("rules").inc()
                log.error("rules file refused, the previous rules stay in force: %s", error)
            else:
                snapshot = replace(snapshot, rules=rules)
                METRICS.reloads.labels("rules").inc()
                log.info("deciding with rules version %s", rules.version)
        try:
            risk = decode_category_risk(self.state.category_risk())
        except (redis.RedisError, OSError) as error:
            log.warning("category risk unavailable, keeping the current table: %s", error)
            risk = None
        if risk and risk != snapshot.category_risk:
            snapshot = replace(snapshot, category_risk=risk)
            METRICS.reloads.labels("category_risk").inc()
        return snapshot

    def swap(self, snapshot: Snapshot) -> None:
        """Decide with `snapshot` from now on."""
        if snapshot is not self.current:
            self.current = snapshot
            # What is loaded lives until the next swap: out of the collector's sight, so
            # its full collections (pauses of tens of ms in a request) stay short.
            gc.freeze()

    async def poll(self) -> None:
        """Refresh every `fraud_reload_seconds` forever (the app's lifespan loads the first
        snapshot, then starts this and cancels it at shutdown); a failed refresh is logged
        and the current snapshot kept."""
        while True:
            await asyncio.sleep(self.settings.fraud_reload_seconds)
            try:
                self.swap(await asyncio.to_thread(self.refresh))
            except Exception:  # keep deciding with what we have, whatever went wrong
                METRICS.reload_errors.labels("refresh").inc()
                log.exception("reloading the fraud model, rules or risk table failed")


def _stamp(path: Path) -> tuple[int, int] | None:
    """What changes when a file is rewritten: modification time and size."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size
