"""The operating limits the detector applies, per sensor: the device's own where
`reference.device_limits` records one (`lakehouse.device_limits`), else its type's from
the catalog.

`OperatingLimits` turns the recorded rows into a lookup that resolves a whole column of
sensors at once (an Arrow `index_in` over `device|type` keys), so the detector resolves
its sensors when it first sees them and again when the limits change, never per reading:
the hot path compares each reading with two per-sensor NumPy arrays. NaN stands for "no
limit": every comparison with it is False, so neither limit rule fires.

`LimitsWatch` is how the processor keeps them current: it keeps the Delta table open and
reads it again only when its version moved (`TableWatch`, as the services watch the model
registry), and a read that fails keeps the limits it had (logged), so the lake being away
never stops the alerts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog import DEVICE_LIMITS, SENSOR_LIMITS
from lakehouse.settings import Settings
from streaming.alerts import metrics
from streaming.service.table_watch import TableWatch

log = logging.getLogger(__name__)

_SEPARATOR = "\x1f"  # the unit separator: no device id or sensor type holds it
_TYPES = pa.array(list(SENSOR_LIMITS))
_TYPE_LOW = np.array([limits.operating[0] for limits in SENSOR_LIMITS.values()] + [np.nan])
_TYPE_HIGH = np.array([limits.operating[1] for limits in SENSOR_LIMITS.values()] + [np.nan])


def _keys(devices: pa.Array, types: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(
        pc.fill_null(devices, ""), pc.fill_null(types, ""), _SEPARATOR
    )


@dataclass(frozen=True)
class OperatingLimits:
    """Device overrides as a vectorised lookup over the catalog's per-type defaults;
    `version`: the Delta version they were read at (None: none recorded)."""

    keys: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    low: np.ndarray = field(default_factory=lambda: np.zeros(0))
    high: np.ndarray = field(default_factory=lambda: np.zeros(0))
    version: int | None = None

    @classmethod
    def from_rows(cls, rows: pa.Table, version: int | None = None) -> OperatingLimits:
        """The lookup for `reference.device_limits` rows (a null side is no limit)."""

        def side(name: str) -> np.ndarray:
            column = rows.column(name).cast(pa.float64())
            return pc.fill_null(column, np.nan).to_numpy(zero_copy_only=False).copy()

        keys = _keys(rows.column("device_id"), rows.column("sensor_type")).combine_chunks()
        return cls(keys, side("low"), side("high"), version)

    def resolve(self, devices: pa.Array, types: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Each sensor's (low, high) limits, given its device and type columns: the device's
        override, else its type's default, NaN for a type the catalog does not know."""
        kind = pc.fill_null(pc.index_in(types, _TYPES), len(_TYPES)).to_numpy(zero_copy_only=False)
        low, high = _TYPE_LOW[kind], _TYPE_HIGH[kind]
        found = pc.index_in(_keys(devices, types), self.keys)
        overridden = pc.is_valid(found).to_numpy(zero_copy_only=False)
        if overridden.any():
            rows = pc.fill_null(found, 0).to_numpy(zero_copy_only=False)[overridden]
            low[overridden], high[overridden] = self.low[rows], self.high[rows]
        return low, high


class LimitsWatch:
    """Reads `reference.device_limits` when its version moved (`TableWatch`); keeps the
    last good limits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = OperatingLimits()
        self._watch = TableWatch(DEVICE_LIMITS, settings)
        metrics.LIMITS_VERSION.set(-1)
        metrics.LIMITS_OVERRIDES.set(0)

    def refresh(self) -> bool:
        """Bring `limits` up to the table; True when they changed. Never raises: a failed
        read is logged and counted, and the limits in hand stay in force until a later
        refresh works (on a table opened anew). The version and overrides in force are
        Prometheus gauges, so an operator can tell which limits the alerts were judged by."""
        try:
            version = self._watch.version()
            if version is None or version == self.limits.version:
                return False
            self.limits = OperatingLimits.from_rows(self._watch.rows(), version)
        except Exception:
            metrics.LIMITS_REFRESH_FAILURES.inc()
            log.warning(
                "device limits not refreshed; keeping those of version %s",
                self.limits.version,
                exc_info=True,
            )
            self._watch = TableWatch(DEVICE_LIMITS, self.settings)
            return False
        metrics.LIMITS_VERSION.set(version)
        metrics.LIMITS_OVERRIDES.set(len(self.limits.keys))
        log.info("device limits at version %d: %d overrides", version, len(self.limits.keys))
        return True
