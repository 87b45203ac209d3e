"""Plots of a sweep (matplotlib, Agg): H_MSE per frame pair, H_MSE bars with error bars, a contact sheet.

Inputs: eval JSON records (`results/eval/{prompt}/{variant}.json`) and frames (F, H, W, 3) uint8 of one prompt
across variants. Outputs: PNG files under `results/plots/{sweep}/`, written atomically.

Every plot shows the variants in the table's order (:func:`latentman.metrics.aggregate.variant_order`: the
sweep's order, grouped by backbone) and gives each backbone one colour: its bars, and shades of it for its
per-pair lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from latentman.generation.methods import colourmap_of, label_of  # noqa: E402
from latentman.io import atomic_path  # noqa: E402
from latentman.metrics.aggregate import backbone_of, variant_order  # noqa: E402

#: Colour families (matplotlib sequential colour maps) for backbones the method registry does not know (a
#: record from another version), in order of first appearance; registered methods declare their own.
SPARE_COLOURMAPS = ("Purples", "Reds", "Greys", "YlOrBr", "PuRd")
MARKERS = "osD^vP*Xh<>"


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def backbone_colourmaps(backbones: Sequence[str]) -> dict[str, str]:
    """The colour family of each backbone: the one its method declares (latentman.generation.methods), a
    spare one for a name the registry does not know."""
    unique = list(dict.fromkeys(backbones))
    spare = iter([cmap for cmap in SPARE_COLOURMAPS if cmap not in {colourmap_of(b) for b in unique}])
    return {b: colourmap_of(b) or next(spare, "Greys") for b in unique}


def backbone_colours(backbones: Sequence[str]) -> dict[str, tuple]:
    """The colour of each backbone (first appearance order): the strong shade of its colour family."""
    return {b: plt.get_cmap(cmap)(0.7) for b, cmap in backbone_colourmaps(backbones).items()}


def _variant_colours(backbone_by_variant: Mapping[str, str]) -> dict[str, tuple]:
    """Shades of each backbone's colour family for its variants (dark to light in order)."""
    colours = {}
    for backbone, name in backbone_colourmaps(list(backbone_by_variant.values())).items():
        members = [v for v, b in backbone_by_variant.items() if b == backbone]
        cmap = plt.get_cmap(name)
        shades = np.linspace(0.9, 0.45, len(members)) if len(members) > 1 else [0.7]
        colours.update({v: cmap(float(s)) for v, s in zip(members, shades)})
    return colours


def plot_per_pair(records: Sequence[Mapping], groups: Mapping[str, str], path: str | os.PathLike) -> None:
    """H_MSE (Eq. 9) per frame pair i-1 -> i, averaged over a variant group's videos: one line per group."""
    _save(per_pair_figure(records, groups), path)


def per_pair_figure(records: Sequence[Mapping], groups: Mapping[str, str]):
    """The figure of :func:`plot_per_pair`."""
    ordered = variant_order(records, groups)
    colours = _variant_colours({g: backbone_of(m[0].get("settings") or {}) for g, m in ordered.items()})
    fig, ax = plt.subplots(figsize=(8, 4))
    for k, (group, members) in enumerate(ordered.items()):
        series = [[np.nan if v is None else v for v in m["h_mse"]["per_pair"]] for m in members]
        length = max(len(s) for s in series)
        padded = np.full((len(series), length), np.nan)
        for row, values in enumerate(series):
            padded[row, : len(values)] = values
        with np.errstate(all="ignore"):
            mean = np.nanmean(padded, axis=0)
        ax.plot(
            np.arange(1, length + 1),
            mean,
            marker=MARKERS[k % len(MARKERS)],
            color=colours[group],
            label=group,
        )
    # pair i compares frame i with frame i-1: a whole number, never "1.5"
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("frame pair i (frame i-1 → frame i)")
    ax.set_ylabel("H_MSE (Eq. 9, 0–255 scale)")
    ax.set_title("H_MSE per frame pair (mean over prompts and seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="variant", title_fontsize=8)
    return fig


def _bar_positions(backbones: Sequence[str]) -> np.ndarray:
    """x of each bar: consecutive within a backbone, a one-bar gap between backbones."""
    x, position = [], 0.0
    for k, backbone in enumerate(backbones):
        if k and backbone != backbones[k - 1]:
            position += 1.0
        x.append(position)
        position += 1.0
    return np.asarray(x)


def plot_bars(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """One bar per variant group with std error bars, grouped and coloured by backbone: Eq. 9 (left panel),
    the official code (right)."""
    _save(bars_figure(table), path)


def bars_figure(table: pd.DataFrame):
    """The figure of :func:`plot_bars`."""
    backbones = table["backbone"].tolist()
    colours = backbone_colours(backbones)
    x = _bar_positions(backbones)
    fig, axes = plt.subplots(1, 2, figsize=(max(9, 0.75 * x[-1] + 5 if len(x) else 9), 4.2))
    panels = (("h_mse", "H_MSE (Eq. 9)"), ("h_mse_official", "H_MSE (official code)"))
    for ax, (key, label) in zip(axes, panels):
        mean = table[f"{key}_mean"].astype(float).to_numpy()
        std = table[f"{key}_std"].astype(float).to_numpy()
        ax.bar(
            x,
            mean,
            0.8,
            yerr=std,
            capsize=3,
            color=[colours[b] for b in backbones],
            edgecolor="black",
            lw=0.5,
        )
        ax.set_xticks(x, table["variant"], rotation=35, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("0–255 scale, lower is better")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    handles = [
        Patch(facecolor=colour, edgecolor="black", lw=0.5, label=label_of(b)) for b, colour in colours.items()
    ]
    axes[1].legend(
        handles=handles,
        title="backbone",
        fontsize=8,
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    fig.tight_layout()
    return fig


def _wrap_name(name: str, width: int = 16) -> str:
    """A variant name on lines of at most ``width`` characters, broken after '.', '_', '+' or '-'."""
    lines, line = [], ""
    for piece in [p for p in _pieces(name) if p]:
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = ""
        while len(piece) > width:  # one piece longer than a line: cut it
            lines.append(piece[:width])
            piece = piece[width:]
        line += piece
    return "\n".join([*lines, line] if line else lines)


def _pieces(name: str) -> list[str]:
    """``name`` in pieces that each end with a break character ('a.b_c' -> ['a.', 'b_', 'c'])."""
    pieces, current = [], ""
    for char in name:
        current += char
        if char in "._+-":
            pieces.append(current)
            current = ""
    return [*pieces, current]


def contact_sheet(
    frames_by_variant: Mapping[str, np.ndarray], path: str | os.PathLike, max_frames: int = 8, title: str = ""
) -> None:
    """Rows = variants (in the mapping's order), columns = the same frame indices (evenly spaced, at most
    max_frames) of one prompt; each row's variant name in a column of its own at the left."""
    _save(contact_sheet_figure(frames_by_variant, max_frames, title), path)


def contact_sheet_figure(frames_by_variant: Mapping[str, np.ndarray], max_frames: int = 8, title: str = ""):
    """The figure of :func:`contact_sheet`."""
    names = list(frames_by_variant)
    total = min(f.shape[0] for f in frames_by_variant.values())
    count = min(total, max_frames)
    picks = np.linspace(0, total - 1, count).round().astype(int)
    labels = [_wrap_name(name) for name in names]
    # laid out in inches, so frames touch their neighbours with a thin gap whatever the number of rows
    label_width = 0.3 + 0.085 * max(len(line) for text in labels for line in text.splitlines())
    size, gap = 1.5, 0.05  # inches per frame (150 px at the saved 100 dpi), between frames
    head = 0.3 + (0.35 if title else 0.0)  # the frame numbers, and the title above them
    width = label_width + count * (size + gap)
    height = head + len(names) * size + (len(names) - 1) * gap
    fig = plt.figure(figsize=(width, height))

    def box(x, y, w, h):  # inches from the top left -> figure fraction
        return [x / width, 1 - (y + h) / height, w / width, h / height]

    for row, (name, label) in enumerate(zip(names, labels)):
        top = head + row * (size + gap)
        text_ax = fig.add_axes(box(0, top, label_width, size))
        text_ax.axis("off")
        text_ax.text(
            1.0,
            0.5,
            label,
            ha="right",
            va="center",
            fontsize=10,
            family="monospace",
            transform=text_ax.transAxes,
        )
        for col, index in enumerate(picks):
            ax = fig.add_axes(box(label_width + gap + col * (size + gap), top, size, size))
            ax.imshow(frames_by_variant[name][index])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {index}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.1 / height, va="top")
    return fig
