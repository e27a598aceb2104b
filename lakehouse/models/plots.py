"""Charts as PNG images: the models' evaluation (precision-recall curves, lift, calibration
and feature importance, each comparing the model with its baseline where that means
something), a series with its anomaly windows and detections (NAB) and stacked bars (the
storage cost report).

matplotlib is imported lazily with the non-interactive Agg backend, so a code location or
a service that never trains never pays for it. The assets embed the PNGs in Markdown
metadata, which the Dagster UI shows inline.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np

_SIZE = (5.0, 3.6)


def _figure():  # matplotlib types stay unannotated: the module must not import it eagerly
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=_SIZE, dpi=100)
    return plt, figure, axes


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Precision against recall for each named (scores, labels) pair."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt, figure, axes = _figure()
    for name, (scores, labels) in curves.items():
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = average_precision_score(labels, scores)
        axes.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
             title="Precision-recall, held-out")
    axes.legend(loc="lower left", fontsize=8)
    return _png(plt, figure)


def lift(tables: Mapping[str, Sequence[Mapping[str, float]]]) -> bytes:
    """Cumulative share of positives caught by the top-scored groups (a gains chart)."""
    plt, figure, axes = _figure()
    for name, table in tables.items():
        groups = [0.0] + [row["group"] / len(table) for row in table]
        caught = [0.0] + [row["cumulative_recall"] for row in table]
        axes.plot(groups, caught, marker="o", markersize=3, label=name)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="random")
    axes.set(xlabel="share of rows, highest scores first", ylabel="share of positives caught",
             title="Cumulative gains (lift), held-out")
    axes.legend(loc="lower right", fontsize=8)
    return _png(plt, figure)


def calibration(table: Sequence[Mapping[str, float]]) -> bytes:
    """Observed positive rate against mean predicted probability per bin."""
    plt, figure, axes = _figure()
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    axes.plot([row["predicted"] for row in table], [row["observed"] for row in table],
              marker="o", label="model")
    axes.set(xlabel="predicted probability", ylabel="observed rate", xlim=(0, 1),
             ylim=(0, 1), title="Calibration, held-out")
    axes.legend(loc="upper left", fontsize=8)
    return _png(plt, figure)


def importance(values: Mapping[str, float], title: str = "Feature importance") -> bytes:
    """Horizontal bars, largest on top."""
    plt, figure, axes = _figure()
    ranked = sorted(values.items(), key=lambda item: item[1])
    axes.barh([name for name, _ in ranked], [value for _, value in ranked])
    axes.set(title=title)
    axes.tick_params(axis="y", labelsize=7)
    return _png(plt, figure)


def bars(values: Mapping[str, float], title: str, ylabel: str) -> bytes:
    """Vertical bars for a handful of named values (model against baseline)."""
    plt, figure, axes = _figure()
    axes.bar(list(values), list(values.values()))
    axes.set(title=title, ylabel=ylabel)
    return _png(plt, figure)


def predicted_vs_true(true: np.ndarray, predictions: Mapping[str, np.ndarray]) -> bytes:
    """Per test engine, ordered by true remaining life: the true RUL as a line and each
    named scorer's prediction as points, so misses show where in life they happen."""
    plt, figure, axes = _figure()
    order = np.argsort(np.asarray(true), kind="stable")
    engines = np.arange(1, order.size + 1)
    axes.plot(engines, np.asarray(true)[order], color="black", label="true RUL")
    for name, predicted in predictions.items():
        axes.scatter(engines, np.asarray(predicted)[order], s=8, label=name)
    axes.set(
        xlabel="test engine, by true RUL",
        ylabel="remaining cycles",
        title="Predicted vs true RUL, test engines",
    )
    axes.legend(loc="upper left", fontsize=8)
    return _png(plt, figure)


def series_with_windows(
    timestamps: np.ndarray,
    values: np.ndarray,
    windows: Sequence[tuple[np.datetime64, np.datetime64]],
    detections: Mapping[str, np.ndarray],
    title: str,
) -> bytes:
    """A time series with its labelled anomaly windows shaded and each named detector's
    detection times marked along the top, so hits, late hits and false alarms show at a
    glance (NAB's machine temperature)."""
    plt, figure, axes = _figure()
    figure.set_size_inches(_SIZE[0] * 1.6, _SIZE[1])
    axes.plot(timestamps, values, color="black", linewidth=0.5, label="series")
    for index, (start, end) in enumerate(windows):
        axes.axvspan(start, end, color="0.6", alpha=0.35,
                     label="labelled window" if index == 0 else None)
    top = axes.get_xaxis_transform()  # x in data, y as a share of the axes' height
    for row, (name, times) in enumerate(detections.items()):
        height = np.full(len(times), 0.97 - 0.05 * row)
        axes.scatter(times, height, transform=top, marker="v", s=14, label=name)
    axes.set(title=title)
    axes.title.set_fontsize(9)
    axes.tick_params(axis="x", labelsize=7)
    axes.legend(loc="lower left", fontsize=7)
    return _png(plt, figure)


def stacked_bars(
    values: Mapping[str, Mapping[str, float]], stack: Sequence[str], title: str, xlabel: str
) -> bytes:
    """Horizontal bars, one per outer key (top to bottom in order), each stacked from the
    inner values in `stack` order (a missing one counts 0)."""
    plt, figure, axes = _figure()
    figure.set_size_inches(_SIZE[0] * 1.6, max(_SIZE[1], 0.25 * len(values) + 1.2))
    names = list(values)[::-1]
    left = np.zeros(len(names))
    for part in stack:
        widths = np.array([values[name].get(part, 0.0) for name in names])
        axes.barh(names, widths, left=left, label=part)
        left += widths
    axes.set(title=title, xlabel=xlabel)
    axes.title.set_fontsize(9)
    axes.tick_params(axis="y", labelsize=7)
    axes.legend(loc="best", fontsize=7)
    return _png(plt, figure)


def markdown_image(png: bytes, title: str) -> str:
    """The PNG inline in Markdown (a data URI), as Dagster's metadata renders it."""
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
