"""Plots of a sweep (matplotlib, Agg): H_MSE per frame pair, H_MSE bars with error bars, a contact sheet.

Inputs: eval JSON records (`results/eval/{prompt}/{variant}.json`) and frames (F, H, W, 3) uint8 of one prompt
across variants. Outputs: PNG files under `results/plots/{sweep}/`, written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from latentman.io import atomic_path  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_per_pair(records: Sequence[Mapping], groups: Mapping[str, str], path: str | os.PathLike) -> None:
    """H_MSE (Eq. 9) per frame pair i-1 -> i, averaged over a variant group's videos: one line per group."""
    curves: dict[str, list[list[float]]] = {}
    for record in records:
        values = [np.nan if v is None else v for v in record["h_mse"]["per_pair"]]
        curves.setdefault(groups.get(record["variant"], record["variant"]), []).append(values)
    fig, ax = plt.subplots(figsize=(7, 4))
    for group, series in curves.items():
        length = max(len(s) for s in series)
        padded = np.full((len(series), length), np.nan)
        for row, values in enumerate(series):
            padded[row, : len(values)] = values
        with np.errstate(all="ignore"):
            ax.plot(np.arange(1, length + 1), np.nanmean(padded, axis=0), marker="o", label=group)
    ax.set_xlabel("frame pair (i-1 → i)")
    ax.set_ylabel("H_MSE (Eq. 9, 0–255 scale)")
    ax.set_title("H_MSE per frame pair (mean over prompts and seeds)")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_bars(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """One bar per variant group with std error bars: Eq. 9 (left panel), the official code (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(table)), 4))
    x = np.arange(len(table))
    panels = (("h_mse", "H_MSE (Eq. 9)", "C0"), ("h_mse_official", "H_MSE (official code)", "C1"))
    for ax, (key, label, colour) in zip(axes, panels):
        mean = table[f"{key}_mean"].astype(float).to_numpy()
        std = table[f"{key}_std"].astype(float).to_numpy()
        ax.bar(x, mean, 0.6, yerr=std, capsize=3, color=colour)
        ax.set_xticks(x, table["variant"], rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("0–255 scale, lower is better")
    fig.tight_layout()
    _save(fig, path)


def contact_sheet(
    frames_by_variant: Mapping[str, np.ndarray], path: str | os.PathLike, max_frames: int = 8, title: str = ""
) -> None:
    """Rows = variants, columns = the same frame indices (evenly spaced, at most max_frames) of one prompt."""
    names = list(frames_by_variant)
    count = min(min(f.shape[0] for f in frames_by_variant.values()), max_frames)
    total = min(f.shape[0] for f in frames_by_variant.values())
    picks = np.linspace(0, total - 1, count).round().astype(int)
    fig, axes = plt.subplots(
        len(names),
        count,
        figsize=(1.3 * count, 1.4 * len(names)),
        squeeze=False,
        gridspec_kw={"wspace": 0.02},
    )
    for row, name in enumerate(names):
        for col, index in enumerate(picks):
            ax = axes[row][col]
            ax.imshow(frames_by_variant[name][index])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {index}", fontsize=7)
            if col == 0:
                ax.set_ylabel(name, fontsize=6, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=8)
    _save(fig, path)
