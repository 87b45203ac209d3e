"""Gallery pages of a sweep for the Snakemake report: what a colleague looks at first.

Two kinds of self-contained HTML page (every picture inline as base64, no script, no outside link):

* prompt page ``results/gallery/{sweep}/{prompt}.html``: the prompt's texts, its motion, render and
  correspondence previews, and the video of every variant side by side, each labelled with its variant name
  and H_MSE; a variant not generated yet is a labelled placeholder.
* summary page ``results/gallery/{sweep}.html``: the H_MSE table as HTML, the plots (H_MSE per frame pair,
  per variant, contact sheet) with their captions, and the list of what is missing.

Pages are built from whatever files exist, so a partly finished run has a gallery that names what is missing.
Videos are re-encoded from ``frames.h5`` as animated WebP (lossy, every frame kept): the mp4/gif files on
disk are named on the page for full quality.

The Snakemake report shows an HTML result in an iframe whose source is a base64 ``data:`` URL, and Chromium
refuses ``data:`` URLs over 2 MiB (a 3 MB page shows blank). So every page is kept under
:data:`PAGE_BUDGET_BYTES`: animations are shrunk until the page fits.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from latentman.io import atomic_path
from latentman.metrics.aggregate import baseline_cell, paired_cell

log = logging.getLogger(__name__)

#: Largest page in bytes: 2 MiB data-URL limit of Chromium / 4 * 3 (base64), less room for the URL's header.
PAGE_BUDGET_BYTES = 1_450_000
#: Largest side (pixels) of an animation on a page before any shrinking; smallest it is shrunk to.
MAX_SIDE, MIN_SIDE = 256, 64

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;color:#1f2937;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 8px}
.texts{margin:0 0 8px;color:#374151}.texts span{margin-right:16px}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;text-align:center}figure img{display:block;border:1px solid #d1d5db;image-rendering:auto}
figure.video img,figure.video .placeholder{width:var(--side);height:var(--side)}
.placeholder{display:flex;align-items:center;justify-content:center;border:1px dashed #9ca3af;
 color:#6b7280;background:#f9fafb;font-size:13px;box-sizing:border-box;padding:4px}
figcaption{font-size:12px;margin-top:4px;max-width:340px}figcaption b{font-size:13px}
figure.preview img.animation{height:var(--side);width:auto}
figure.plot figcaption{text-align:left;max-width:900px}
.missing:not(figure){background:#fef3c7;border:1px solid #f59e0b;padding:8px 12px;margin:8px 0;font-size:13px}
.complete{background:#ecfdf5;border:1px solid #10b981;padding:8px 12px;margin:8px 0;font-size:13px}
.wide{overflow-x:auto;max-width:100%}td{white-space:nowrap}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #d1d5db;padding:4px 8px;text-align:right}
th{background:#f3f4f6}td:first-child,th:first-child,td.text{text-align:left}
.caption{font-size:13px;max-width:900px;color:#374151}.note{font-size:12px;color:#6b7280}
code{background:#f3f4f6;padding:0 3px}
"""


# ------------------------------------------------------------------------------------------ encoding
def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def animation_webp(frames: Sequence[np.ndarray], fps: float, max_side: int, quality: int = 80) -> bytes:
    """Frames (H, W, 3) uint8 as a looping animated WebP whose longer side is at most max_side."""
    from PIL import Image

    images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
    scale = min(1.0, max_side / max(images[0].size))
    if scale < 1.0:
        size = (max(1, round(images[0].width * scale)), max(1, round(images[0].height * scale)))
        images = [image.resize(size, Image.LANCZOS) for image in images]
    out = io.BytesIO()
    duration = max(20, round(1000.0 / fps))
    images[0].save(
        out,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        duration=duration,
        loop=0,
        quality=quality,
    )
    return out.getvalue()


def read_animation(path: str | os.PathLike) -> tuple[list[np.ndarray], float]:
    """Frames (RGB uint8) and frame rate of a GIF preview."""
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
        duration = image.info.get("duration") or 100
    return frames, 1000.0 / duration


def still_webp(path: str | os.PathLike, quality: int = 85) -> bytes:
    """A PNG (e.g. the contact sheet) as a lossy WebP: a fraction of the PNG's size for photos."""
    from PIL import Image

    with Image.open(path) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, format="WEBP", quality=quality)
    return out.getvalue()


@dataclass
class Animation:
    """One animated figure of a page: frames, frame rate and how it is labelled."""

    frames: list[np.ndarray]
    fps: float
    key: str  # the id the figure carries (data-item), e.g. "video:latentman" or "preview:motion"


def fit_animations(animations: Sequence[Animation], budget: int) -> tuple[dict[str, bytes], int]:
    """Encode every animation at the largest side (MAX_SIDE, shrinking by 3/4 down to MIN_SIDE, then a lower
    quality) at which all of them together fit in budget bytes; (key -> WebP bytes, side used)."""
    side, quality = MAX_SIDE, 80
    while True:
        encoded = {a.key: animation_webp(a.frames, a.fps, side, quality) for a in animations}
        total = sum(len(data) * 4 // 3 for data in encoded.values())  # base64 in the page
        if total <= budget:
            return encoded, side
        if side > MIN_SIDE:
            side = max(MIN_SIDE, int(side * 0.75))
        elif quality > 40:
            quality -= 20
        else:
            log.warning(
                "gallery: %d animations need %.1f MB even at %d px: the report viewer may show a blank page "
                "(open the page file itself)",
                len(animations),
                total / 1e6,
                side,
            )
            return encoded, side


# ------------------------------------------------------------------------------------------ text
def caption_html(rst: str, values: Mapping[str, str]) -> str:
    """A report caption (reStructuredText subset: paragraphs, ``literal``, **strong**, *emphasis*) as HTML;
    the Jinja fields ``{{ snakemake.wildcards.NAME }}`` are filled from values."""

    def field_value(match: re.Match) -> str:
        return str(values.get(match.group(1), match.group(0)))

    text = re.sub(r"\{\{\s*snakemake\.wildcards\.(\w+)\s*\}\}", field_value, rst)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    out = []
    for paragraph in paragraphs:
        body = html.escape(" ".join(paragraph.split()))
        body = re.sub(r"``(.+?)``", r"<code>\1</code>", body)
        body = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", body)
        body = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", body)
        out.append(f"<p>{body}</p>")
    return "\n".join(out)


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def short_baseline(row) -> str:
    """The baseline cell without the sweep's name when the row shares it ("paper.t2v_zero" on a row of sweep
    paper reads "t2v_zero"), so the column stays narrow."""
    base = baseline_cell(row)
    sweep = row.variant.split(".", 1)[0] + "."
    return base[len(sweep) :] if base.startswith(sweep) and "." in row.variant else base


def table_html(table: pd.DataFrame, expected_videos: Mapping[str, int]) -> str:
    """The aggregate table (latentman.metrics.aggregate.COLUMNS) as an HTML table in the paper's layout; the
    Videos column says "n of m" where a variant group has fewer evaluated videos than the sweep asks for."""
    head = (
        "<tr><th>Variant</th><th>Backbone</th><th>SLA</th><th>PWG</th><th>H_MSE ↓ (Eq. 9)</th>"
        "<th>Δ vs. baseline</th><th>Δ per video (improved)</th><th>Baseline</th><th>H_MSE official</th>"
        "<th>s / video</th><th>Peak memory (MB)</th>"
        "<th>Videos</th></tr>"
    )
    rows = []
    for row in table.itertuples():
        change = "—" if pd.isna(row.h_mse_rel_change_pct) else f"{row.h_mse_rel_change_pct:+.1f} %"
        expected = expected_videos.get(row.variant, row.videos)
        videos = f"{row.videos}" if row.videos >= expected else f"{row.videos} of {expected}"
        mark = " †" if getattr(row, "random_weights", False) else ""
        rows.append(
            f'<tr data-variant="{html.escape(row.variant)}"><td>{html.escape(row.variant)}{mark}</td>'
            f'<td class="text">{html.escape(row.backbone)}</td>'
            f"<td>{'✓' if row.sla else '✗'}</td><td>{'✓' if row.pwg else '✗'}</td>"
            f"<td>{_fmt(row.h_mse_mean)} ± {_fmt(row.h_mse_std)}</td><td>{change}</td>"
            f'<td>{paired_cell(row)}</td><td class="text">{html.escape(short_baseline(row))}</td>'
            f"<td>{_fmt(row.h_mse_official_mean)} ± {_fmt(row.h_mse_official_std)}</td>"
            f"<td>{_fmt(row.seconds_per_video, 1)}</td><td>{_fmt(row.peak_memory_mb, 0)}</td>"
            f"<td>{videos}</td></tr>"
        )
    note = ""
    if "random_weights" in table and table["random_weights"].any():
        note = (
            '<p class="note">† random-weight models (<code>embedded:*</code>): their frames are structured '
            "noise, so their H_MSE says nothing about video quality.</p>"
        )
    shared = [f"{row.variant} = {row.same_as}" for row in table.itertuples() if getattr(row, "same_as", "")]
    if shared:
        note += (
            f'<p class="note">Same settings, so the videos were generated once and reused: '
            f"{html.escape('; '.join(shared))}.</p>"
        )
    return f'<div class="wide"><table id="h-mse-table">{head}{"".join(rows)}</table></div>{note}'


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def write_page(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------ prompt page
@dataclass
class VideoFiles:
    """The files of one prompt x variant (expected paths; any may be missing in a partial run)."""

    variant: str
    frames: Path
    evaluation: Path
    video: Path  # the mp4 on disk, named on the page


@dataclass
class PageSummary:
    path: Path
    shown: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    side: int = MAX_SIDE
    size: int = 0


def _exists(path: str | os.PathLike | None) -> bool:
    return path is not None and Path(path).is_file()


def _evaluation(path: Path) -> dict | None:
    from latentman.metrics.storage import read_evaluation

    return read_evaluation(path) if _exists(path) else None


def write_prompt_page(
    out: str | os.PathLike,
    *,
    sweep: str,
    prompt: str,
    texts: Mapping[str, str],
    videos: Sequence[VideoFiles],
    previews: Mapping[str, str | os.PathLike],
    fps: float,
    captions: Mapping[str, str] | None = None,
    budget: int = PAGE_BUDGET_BYTES,
) -> PageSummary:
    """The prompt page of one sweep (module docstring). texts: {"motion": ..., "prompt": ...} of the prompt
    row; previews: {"motion": gif, "render": gif, "correspondence": png} (expected paths); captions: preview
    name -> its report caption (reStructuredText), shown under the previews."""
    from latentman.generation.storage import read_frames

    summary = PageSummary(Path(out))
    animations: list[Animation] = []
    for name in ("motion", "render"):
        if _exists(previews.get(name)):
            frames, rate = read_animation(previews[name])
            animations.append(Animation(frames, rate, f"preview:{name}"))
    records: dict[str, dict | None] = {}
    for entry in videos:
        if _exists(entry.frames):
            frames = read_frames(entry.frames).frames
            animations.append(Animation(list(frames), fps, f"video:{entry.variant}"))
        records[entry.variant] = _evaluation(entry.evaluation)
    still = b""
    if _exists(previews.get("correspondence")):
        still = still_webp(previews["correspondence"])
    encoded, side = fit_animations(animations, budget - len(still) * 4 // 3 - 30_000)
    summary.side = side

    def figure(kind: str, key: str, label: str, media: str, note: str = "") -> str:
        return (
            f'<figure class="{kind}" data-item="{html.escape(key)}">{media}'
            f"<figcaption>{label}{note}</figcaption></figure>"
        )

    preview_labels = {
        "motion": "motion (stick figure)",
        "render": "render: control image | IUV",
        "correspondence": "correspondences (prev)",
    }
    preview_figures = []
    for name, label in preview_labels.items():
        key = f"preview:{name}"
        if name == "correspondence" and still:
            media = f'<img src="{data_uri(still, "image/webp")}" alt="{label}" style="max-width:560px">'
        elif key in encoded:
            media = f'<img class="animation" src="{data_uri(encoded[key], "image/webp")}" alt="{label}">'
        else:
            summary.missing.append(f"{name} preview")
            media = f'<div class="placeholder" style="width:{side}px;height:{side}px">not built yet</div>'
            preview_figures.append(figure("preview missing", key, f"<b>{label}</b>", media))
            continue
        summary.shown.append(key)
        preview_figures.append(figure("preview", key, f"<b>{label}</b>", media))

    video_figures = []
    for entry in videos:
        key, name = f"video:{entry.variant}", html.escape(entry.variant)
        record = records[entry.variant]
        if key in encoded:
            summary.shown.append(key)
            media = f'<img src="{data_uri(encoded[key], "image/webp")}" alt="{name}">'
            if record is None:
                score = "<br>H_MSE: not evaluated yet"
                summary.missing.append(f"evaluation of {entry.variant}")
            else:
                score = (
                    f"<br>H_MSE {_fmt(record['h_mse']['mean'])} (Eq. 9) · "
                    f"{_fmt(record['h_mse_official']['mean'])} (official)"
                )
                if record.get("wall_time_s") is not None:
                    score += f"<br>{record['wall_time_s']:.1f} s"
            if entry.frames.parent.name != entry.variant:  # equal settings: generated once, under that name
                score += f"<br>same settings as {html.escape(entry.frames.parent.name)}: its video"
            video_figures.append(figure("video", key, f"<b>{name}</b>", media, score))
        else:
            summary.missing.append(f"video of {entry.variant}")
            media = '<div class="placeholder">not generated yet</div>'
            video_figures.append(figure("video missing", key, f"<b>{name}</b>", media, "<br>missing"))

    missing_videos = [e.variant for e in videos if f"video:{e.variant}" not in encoded]
    if missing_videos:
        notice = (
            f'<p class="missing" id="missing">Missing: {len(missing_videos)} of {len(videos)} variants '
            f"have no video yet ({html.escape(', '.join(missing_videos))}). Build them with "
            "<code>snakemake --cores all</code> (or the sweep target), then rebuild the report.</p>"
        )
    else:
        notice = f'<p class="complete" id="complete">All {len(videos)} variants have a video.</p>'
    title = f"Sweep {sweep} · prompt {prompt}"
    video_folder = str(videos[0].video.parent.parent) if videos else "results/videos"
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="texts"><span><b>motion:</b> {html.escape(texts.get("motion", ""))}</span>'
        f"<span><b>appearance:</b> {html.escape(texts.get('prompt', ''))}</span></p>{notice}"
        f'<h2>Videos</h2><div class="row" id="videos" style="--side:{side}px">{"".join(video_figures)}</div>'
        f'<p class="note">Every frame of each <code>frames.h5</code>, re-encoded as animated WebP at up '
        f"to {side} px; full quality: <code>{html.escape(video_folder)}/&lt;variant&gt;/video.mp4</code>.</p>"
        f'<h2>Previews</h2><div class="row" id="previews" style="--side:{side}px">'
        f"{''.join(preview_figures)}</div>"
    )
    values = {"prompt": prompt, "sweep": sweep}
    for name, label in preview_labels.items():
        if (captions or {}).get(name):
            body += f'<div class="caption"><b>{label}.</b> {caption_html(captions[name], values)}</div>'

    text = page(title, body)
    write_page(out, text)
    summary.size = len(text.encode())
    return summary


# ------------------------------------------------------------------------------------------ summary page
def write_summary_page(
    out: str | os.PathLike,
    *,
    sweep: str,
    videos: Mapping[str, Sequence[VideoFiles]],
    groups: Mapping[str, str],
    contact_prompt: str,
    captions: Mapping[str, str],
    budget: int = PAGE_BUDGET_BYTES,
) -> PageSummary:
    """The summary page of a sweep (module docstring). videos: prompt -> its VideoFiles in sweep order;
    groups: variant -> group (seeds of one setting); captions: name -> caption text (reStructuredText) for
    "table", "h_mse_per_pair", "h_mse_bars", "contact_sheet"."""
    from latentman.generation.storage import read_frames
    from latentman.metrics.aggregate import aggregate
    from latentman.metrics.plots import contact_sheet, plot_bars, plot_per_pair

    summary = PageSummary(Path(out))
    records, expected, missing_videos, missing_evals = [], {}, {}, {}
    for prompt, entries in videos.items():
        for entry in entries:
            group = groups.get(entry.variant, entry.variant)
            expected[group] = expected.get(group, 0) + 1
            record = _evaluation(entry.evaluation)
            if record is not None:
                records.append(record)
            elif _exists(entry.frames):
                missing_evals.setdefault(entry.variant, []).append(prompt)
            else:
                missing_videos.setdefault(entry.variant, []).append(prompt)
    total = sum(len(entries) for entries in videos.values())
    values = {"sweep": sweep, "prompt": contact_prompt}

    sections = []
    if missing_videos or missing_evals:
        items = [
            f'<li data-variant="{html.escape(v)}"><b>{html.escape(v)}</b>: no video yet for '
            f"{html.escape(', '.join(p))}</li>"
            for v, p in missing_videos.items()
        ]
        items += [
            f'<li data-variant="{html.escape(v)}"><b>{html.escape(v)}</b>: generated, not evaluated yet for '
            f"{html.escape(', '.join(p))}</li>"
            for v, p in missing_evals.items()
        ]
        summary.missing = [f"{v}: {', '.join(p)}" for v, p in {**missing_videos, **missing_evals}.items()]
        sections.append(
            f'<div class="missing" id="missing"><b>Partial run:</b> {len(records)} of {total} videos '
            f"are evaluated; the table and plots below use those only.<ul>{''.join(items)}</ul></div>"
        )
    else:
        sections.append(
            f'<p class="complete" id="complete">All {total} videos of the sweep are evaluated.</p>'
        )

    if records:
        table = aggregate(records, groups)
        sections.append(
            f"<h2>H_MSE table</h2>{table_html(table, expected)}"
            f'<div class="caption">{caption_html(captions.get("table", ""), values)}</div>'
        )
        with tempfile.TemporaryDirectory(prefix="latentman-gallery-") as tmp:
            plots = {}
            plot_per_pair(records, groups, Path(tmp) / "per_pair.png")
            plots["h_mse_per_pair"] = (
                "H_MSE per frame pair",
                (Path(tmp) / "per_pair.png").read_bytes(),
                "png",
            )
            plot_bars(table, Path(tmp) / "bars.png")
            plots["h_mse_bars"] = ("H_MSE per variant", (Path(tmp) / "bars.png").read_bytes(), "png")
            # the contact sheet: one row per variant group (its first seed) with frames of the contact prompt
            firsts: dict[str, VideoFiles] = {}
            for entry in videos.get(contact_prompt, []):
                group = groups.get(entry.variant, entry.variant)
                if group not in firsts and _exists(entry.frames):
                    firsts[group] = entry
            if firsts:
                frames = {group: read_frames(entry.frames).frames for group, entry in firsts.items()}
                contact_sheet(frames, Path(tmp) / "contact.png", title=f"prompt {contact_prompt}")
                plots["contact_sheet"] = ("contact sheet", still_webp(Path(tmp) / "contact.png"), "webp")
        sections.append("<h2>Plots</h2>")
        for name, (label, data, kind) in plots.items():
            summary.shown.append(f"plot:{name}")
            sections.append(
                f'<figure class="plot" data-item="plot:{name}"><img src="{data_uri(data, f"image/{kind}")}" '
                f'alt="{label}" style="max-width:100%"><figcaption class="caption"><b>{label}.</b> '
                f"{caption_html(captions.get(name, ''), values)}</figcaption></figure>"
            )
    else:
        sections.append("<p>No video is evaluated yet: no table and no plots.</p>")

    title = f"Sweep {sweep}: table, plots and what is missing"
    text = page(title, f"<h1>{html.escape(title)}</h1>{''.join(sections)}")
    if len(text.encode()) > budget:
        log.warning("gallery: %s is %.1f MB, over the report viewer's limit", out, len(text.encode()) / 1e6)
    write_page(out, text)
    summary.size = len(text.encode())
    return summary
