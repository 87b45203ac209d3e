"""Aggregation: eval JSON records of a sweep (or the default run) -> the paper's Table 1/2 layout.

Input: `results/eval/{prompt}/{variant}.json` records (format "eval").
Output: `results/tables/{sweep}.csv` and `.md`: one row per variant group (the variant name without its
`.s{seed}` suffix), in the sweep's own order (the order variants first appear in the records: the workflow
passes them in sweep order), stably grouped by backbone. Columns: backbone, SLA, PWG, H_MSE mean +- std over
the group's videos (prompts x seeds; population std, ddof 0), relative change vs. the row's baseline (column
``baseline``: for a row with SLA or PWG on, the row of the same settings with both off when the sweep has one,
so AnimateZero + SLA is compared with AnimateZero alone; otherwise, and for rows with both off, the backbone's
first row with both off; empty on the baseline itself), the paired change (per video:
the change against the baseline's video of the same prompt and seed, averaged over the videos both have;
pooled means hide a variant that helps on some motions and hurts on others) with how many of those videos
improved, the official H_MSE mean +- std, mean seconds per video, largest peak memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from latentman.generation import methods
from latentman.io import atomic_path

COLUMNS = [
    "variant",
    "backbone",
    "sla",
    "pwg",
    "videos",
    "h_mse_mean",
    "h_mse_std",
    "h_mse_rel_change_pct",
    "h_mse_paired_change_pct",
    "videos_improved",
    "videos_paired",
    "baseline",
    "h_mse_official_mean",
    "h_mse_official_std",
    "seconds_per_video",
    "peak_memory_mb",
    "random_weights",
    "same_as",
]


def backbone_of(settings: Mapping) -> str:
    """The backbone of a variant's settings: a preset method's backbone (latentman: t2v_zero with SLA and
    PWG), else the method (latentman.generation.methods)."""
    return methods.backbone_of(settings.get("method", "t2v_zero"))


def _same_as(members: Sequence[Mapping]) -> str:
    """The variants whose videos this group reused (", "-joined; "" when it generated its own): a variant
    equal to an earlier one (latentman.sweeps.shared_results) is evaluated on that one's frames, whose
    settings carry that one's name."""
    names = {(m.get("settings") or {}).get("name") for m in members}
    return ", ".join(sorted(n for n in names - {m["variant"] for m in members} if n))


def _without_modules(settings: Mapping) -> str:
    """The settings with SLA and PWG switched off and the name and seed dropped, as a comparable key: equal
    for a row and the same configuration without the paper's modules."""
    key = {k: v for k, v in settings.items() if k not in ("name", "seed")}
    for module in ("sla", "pwg"):
        key[module] = {**(key.get(module) or {}), "enabled": False}
    return json.dumps(key, sort_keys=True, default=str)


def _baseline_of(table: pd.DataFrame, index, keys: Mapping[str, str]) -> str | None:
    """The group a row's changes are measured against (see the module docstring); None when it has none."""
    row = table.loc[index]
    off = table[(table.backbone == row.backbone) & ~table.sla & ~table.pwg]
    if row.sla or row.pwg:
        same = off[off.variant.map(keys) == keys[row.variant]]
        if len(same):
            return same.iloc[0].variant
    if len(off) and off.index[0] != index:
        return off.iloc[0].variant
    return None


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


def variant_order(
    records: Sequence[Mapping], groups: Mapping[str, str] | None = None
) -> dict[str, list[Mapping]]:
    """Records by variant group, in THE order of every table and plot: the order groups first appear in
    ``records`` (the sweep's), stably grouped by backbone (backbones in order of first appearance)."""
    groups = groups or {}
    by_group: dict[str, list[Mapping]] = {}
    for record in records:
        by_group.setdefault(groups.get(record["variant"], record["variant"]), []).append(record)
    backbone = {group: backbone_of(members[0].get("settings") or {}) for group, members in by_group.items()}
    backbones = list(dict.fromkeys(backbone.values()))
    ordered = sorted(by_group, key=lambda group: backbones.index(backbone[group]))  # stable: sweep order kept
    return {group: by_group[group] for group in ordered}


def _video_key(record: Mapping) -> tuple:
    """What pairs a video with its baseline's: the prompt and the seed."""
    return record["prompt"], record.get("seed")


def _paired_change(members: Sequence[Mapping], baseline: Sequence[Mapping]) -> tuple[float, int, int]:
    """(mean per-video relative change in %, videos improved, videos paired) against ``baseline``."""
    reference = {_video_key(m): m["h_mse"]["mean"] for m in baseline if m["h_mse"]["mean"] not in (None, 0)}
    changes = [
        100.0 * (m["h_mse"]["mean"] - reference[_video_key(m)]) / reference[_video_key(m)]
        for m in members
        if m["h_mse"]["mean"] is not None and _video_key(m) in reference
    ]
    if not changes:
        return float("nan"), 0, 0
    return float(np.mean(changes)), sum(c < 0 for c in changes), len(changes)


def aggregate(records: Sequence[Mapping], groups: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per variant group (COLUMNS), in :func:`variant_order`. groups maps variant name -> group name
    (default: itself)."""
    rows = []
    ordered = variant_order(records, groups)
    for group, members in ordered.items():
        settings = members[0].get("settings") or {}
        h_mean, h_std = _stats([m["h_mse"]["mean"] for m in members])
        o_mean, o_std = _stats([m["h_mse_official"]["mean"] for m in members])
        times = [m["wall_time_s"] for m in members if m.get("wall_time_s") is not None]
        memory = [m["peak_memory_mb"] for m in members if m.get("peak_memory_mb") is not None]
        rows.append(
            {
                "variant": group,
                "backbone": backbone_of(settings),
                "sla": bool(settings.get("sla", {}).get("enabled", False)),
                "pwg": bool(settings.get("pwg", {}).get("enabled", False)),
                "videos": len(members),
                "h_mse_mean": h_mean,
                "h_mse_std": h_std,
                "h_mse_rel_change_pct": None,
                "h_mse_paired_change_pct": float("nan"),
                "videos_improved": 0,
                "videos_paired": 0,
                "baseline": "",
                "h_mse_official_mean": o_mean,
                "h_mse_official_std": o_std,
                "seconds_per_video": float(np.mean(times)) if times else None,
                "peak_memory_mb": float(np.max(memory)) if memory else None,
                "random_weights": any("random weights" in (m.get("note") or "") for m in members),
                "same_as": _same_as(members),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    keys = {group: _without_modules(members[0].get("settings") or {}) for group, members in ordered.items()}
    by_name = table.set_index("variant")
    for index, row in table.iterrows():
        # the baseline's own change stays empty ("—"): a "+0.0 %" there reads as a measured result
        base = _baseline_of(table, index, keys)
        reference = by_name.loc[base].h_mse_mean if base is not None else None
        if reference and row.h_mse_mean is not None:
            table.at[index, "baseline"] = base
            table.at[index, "h_mse_rel_change_pct"] = 100.0 * (row.h_mse_mean - reference) / reference
            paired = _paired_change(ordered[row.variant], ordered[base])
            table.loc[index, ["h_mse_paired_change_pct", "videos_improved", "videos_paired"]] = paired
    # a float column (NaN where empty), so the CSV writes it with the other numbers' precision
    table["h_mse_rel_change_pct"] = table["h_mse_rel_change_pct"].astype(float)
    return table


RANDOM_MARK = " †"


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def paired_cell(row) -> str:
    """ "−3.9 % (8/8)": the mean per-video change and how many of the paired videos improved; "—" without."""
    paired = getattr(row, "videos_paired", 0)
    if pd.isna(paired) or not paired or pd.isna(row.h_mse_paired_change_pct):
        return "—"
    return f"{row.h_mse_paired_change_pct:+.1f} % ({int(row.videos_improved)}/{int(paired)})"


def baseline_cell(row) -> str:
    """The variant a row's changes are against; "—" on a baseline (empty, or NaN read back from a CSV)."""
    base = getattr(row, "baseline", "")
    return base if isinstance(base, str) and base else "—"


def to_markdown(table: pd.DataFrame, title: str = "") -> str:
    """The table in the paper's Table 1/2 layout (Markdown)."""
    lines = [f"### {title}", ""] if title else []
    if "random_weights" in table and table["random_weights"].any():
        lines += [
            "> **Random weights:** rows marked † come from random-weight models (`embedded:*`): their frames",
            "> are structured noise, not pictures, so their H_MSE says nothing about video quality.",
            "",
        ]
    lines += [
        "| Variant | Backbone | SLA | PWG | H_MSE ↓ (Eq. 9) | Δ vs. baseline | Δ per video (improved) "
        "| Baseline | H_MSE official | s / video | Peak memory (MB) | Videos |",
        "|---|---|:-:|:-:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for row in table.itertuples():
        # "—": the baseline itself, or no baseline of this backbone in the sweep
        change = "—" if pd.isna(row.h_mse_rel_change_pct) else f"{row.h_mse_rel_change_pct:+.1f} %"
        mark = RANDOM_MARK if getattr(row, "random_weights", False) else ""
        lines.append(
            f"| {row.variant}{mark} | {row.backbone} | {'✓' if row.sla else '✗'} | {'✓' if row.pwg else '✗'} "
            f"| {_fmt(row.h_mse_mean)} ± {_fmt(row.h_mse_std)} | {change} | {paired_cell(row)} "
            f"| {baseline_cell(row)} | {_fmt(row.h_mse_official_mean)} ± {_fmt(row.h_mse_official_std)} "
            f"| {_fmt(row.seconds_per_video, 1)} | {_fmt(row.peak_memory_mb, 0)} | {row.videos} |"
        )
    # same_as is "" (or NaN, read back from a CSV) on rows that generated their own videos
    shared = [
        f"{row.variant} = {row.same_as}"
        for row in table.itertuples()
        if isinstance(getattr(row, "same_as", None), str) and row.same_as
    ]
    if shared:
        lines += ["", f"Same settings, so the videos were generated once and reused: {'; '.join(shared)}."]
    return "\n".join(lines) + "\n"


def write_table(
    table: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike, title: str = ""
):
    """Write the CSV and Markdown tables atomically."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(md_path) as tmp:
        tmp.write_text(to_markdown(table, title))
