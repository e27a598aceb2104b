"""What a training run hands back, whatever the model: the artifact to register and what
to show about it. The Dagster assets register it and turn its charts and tables into
metadata; the benchmark prints the same numbers."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainedModel:
    """A trained, evaluated model, not yet registered.

    `metrics` are held-out figures (the registry keeps them and promotes on
    `promotion_metric`); `charts` are PNG images by title; `tables` are small row lists
    (feature importance, baseline comparison) by title; `seconds` is the wall time of
    the fit alone, separate from feature building and evaluation.
    """

    name: str
    artifact: bytes
    params: dict[str, Any]
    metrics: dict[str, float]
    promotion_metric: str
    seconds: float
    charts: dict[str, bytes] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def zip_artifact(files: dict[str, bytes]) -> bytes:
    """A deflated zip of `files` with fixed timestamps: an identical model gives identical
    bytes, so the registry's content address stores a retrain that changed nothing once."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
