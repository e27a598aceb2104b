"""What the service answers from, and swapping it without a restart.

A `Snapshot` is immutable: the champion recommender, its registry version, and the opened
batch store of the current publication. Requests read `Serving.current` once and use only
that object, so a swap (one reference assignment, on the event loop) can never mix two
models or two publications in one answer. A background task polls the registry and the
publication pointer every `recommendations_reload_seconds`, loads whatever changed in a
thread (the event loop keeps answering meanwhile), then swaps. The replaced store is
closed one poll later, once no request can still hold it.

A poll must cost next to nothing, since it shares the process (and Python's lock) with
the requests: the registry is read only when its Delta log has moved
(`streaming.service.table_watch`), and the publication pointer is one small file or
item.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, replace

from lakehouse.catalog import MODEL_REGISTRY
from lakehouse.models.recommender import MODEL_NAME, Recommender, load_recommender
from lakehouse.models.registry import champion, load_artifact
from lakehouse.online.batch_store import BatchStore, Publication, StoreUnavailable
from lakehouse.online.publication import latest_publication, open_store
from lakehouse.settings import Settings
from streaming.recommendations.metrics import METRICS
from streaming.service.table_watch import TableWatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of what to serve; any part may be missing before the first
    training or publish."""

    model: Recommender | None = None
    model_version: int | None = None
    store: BatchStore | None = None

    @property
    def publication(self) -> Publication | None:
        """The batch publication being served, if any."""
        return None if self.store is None else self.store.publication

    @property
    def anything(self) -> bool:
        """Whether any request can be answered."""
        return self.model is not None or self.store is not None

    @property
    def ready(self) -> bool:
        """Whether the model and the batch store are both loaded."""
        return self.model is not None and self.store is not None


class Serving:
    """The current snapshot and how it is refreshed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current = Snapshot()
        self._retired: list[BatchStore] = []
        self._registry = TableWatch(MODEL_REGISTRY, settings)

    def refresh(self) -> Snapshot:
        """Load what changed since the current snapshot (blocking: run it in a thread);
        return the snapshot to serve next (the current one if nothing changed)."""
        snapshot = self.current
        registry = self._registry.moved()
        if registry is not None:
            version = champion(self.settings, MODEL_NAME)
            if version is not None and version.version != snapshot.model_version:
                model = load_recommender(load_artifact(self.settings, version))
                snapshot = replace(snapshot, model=model, model_version=version.version)
                METRICS.model_version.set(version.version)
                METRICS.reloads.labels("model").inc()
                log.info("serving recommender version %d", version.version)
            self._registry.seen(registry)  # only once what it holds is loaded
        try:
            publication = latest_publication(self.settings)
            if publication is not None and publication != snapshot.publication:
                snapshot = replace(snapshot, store=open_store(self.settings, publication))
                METRICS.reloads.labels("publication").inc()
                log.info("serving publication %s", publication.publication_id)
        except StoreUnavailable as error:
            log.warning("batch store unavailable, keeping the current one: %s", error)
        return snapshot

    def swap(self, snapshot: Snapshot) -> None:
        """Serve `snapshot` from now on; close stores retired by the previous swap."""
        for store in self._retired:
            store.close()
        self._retired = []
        previous = self.current
        if previous.store is not None and previous.store is not snapshot.store:
            self._retired.append(previous.store)
        self.current = snapshot
        if snapshot is not previous:
            # What is loaded now lives until the next swap: out of the garbage collector's
            # sight, so its full collections (pauses of tens of ms in a request) stay short.
            gc.freeze()

    async def poll(self) -> None:
        """Refresh forever (the app's lifespan cancels it); a failed refresh is logged and
        the current snapshot kept."""
        while True:
            try:
                self.swap(await asyncio.to_thread(self.refresh))
            except Exception:  # keep serving what we have, whatever went wrong
                log.exception("reloading the model or the batch results failed")
            await asyncio.sleep(self.settings.recommendations_reload_seconds)

    def close(self) -> None:
        """Close every store still open."""
        for store in [*self._retired, self.current.store]:
            if store is not None:
                store.close()
        self._retired = []
