"""Figures logged with every model: confusion matrix and reliability diagram (matplotlib, Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless workers: never try to open a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rakuten_ml.models.calibration import reliability_curve  # noqa: E402


def confusion_matrix_figure(confusion: np.ndarray, codes: tuple[int, ...], title: str = "Confusion matrix (row-normalised)") -> Figure:
    """Row-normalised so rare classes are as readable as 2583; counts would hide them."""
    totals = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, totals, out=np.zeros_like(confusion, dtype=float), where=totals > 0)
    fig, ax = plt.subplots(figsize=(11, 9))
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(codes)), labels=[str(c) for c in codes], rotation=90, fontsize=7)
    ax.set_yticks(range(len(codes)), labels=[str(c) for c in codes], fontsize=7)
    ax.set_xlabel("predicted prdtypecode")
    ax.set_ylabel("true prdtypecode")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def reliability_figure(proba: np.ndarray, y_idx: np.ndarray, n_bins: int = 15, title: str = "Reliability diagram") -> Figure:
    confidence, accuracy, counts = reliability_curve(proba, y_idx, n_bins)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    mask = counts > 0
    top.plot(confidence[mask], accuracy[mask], marker="o", label="model")
    top.set_ylabel("accuracy")
    top.set_title(title)
    top.legend(loc="upper left")
    centres = (np.arange(n_bins) + 0.5) / n_bins
    bottom.bar(centres, counts, width=1.0 / n_bins, color="tab:blue", alpha=0.6)
    bottom.set_xlabel("confidence (top-1 probability)")
    bottom.set_ylabel("count")
    fig.tight_layout()
    return fig
