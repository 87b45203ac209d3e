"""The videos of a generated clip: frames.h5 -> video.mp4 + video.gif, every frame labelled.

Input: ``results/videos/{prompt}/{variant}/frames.h5`` (``/frames`` (F,H,W,3) uint8). Output: ``video.mp4``
(H.264) and ``video.gif`` (looping) beside it, each frame (F, B+H, W, 3): a dark banner strip of height B
above the untouched picture, with the variant name and the prompt id written on it, so a still cut from
either file still says what it shows. The encoding lives in its own rule, so a new frame rate re-encodes
and never re-runs the denoising.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from latentman.generation.storage import read_frames
from latentman.io import write_videos

BANNER_COLOUR = (16, 16, 16)
TEXT_COLOURS = ((255, 255, 255), (190, 190, 190))  # first line (the variant) brighter than the rest
MIN_FONT_PX = 10
# Characters after which a long name may wrap (sweep names are joined with '.', variant words with '_').
BREAKS = " ._+-/"


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's built-in font (Aileron at any size with FreeType, a fixed bitmap font without): no font
    # file to find on the machine, and the same pixels wherever the same Pillow runs.
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1, or no FreeType: the bitmap font
        return ImageFont.load_default()


def font_size(width: int) -> int:
    """Label font size in pixels for frames ``width`` wide: 13 px at 256, 26 px at 512, never below 10."""
    return max(MIN_FONT_PX, round(width / 20))


def _text_width(font, text: str) -> float:
    return font.getlength(text) if hasattr(font, "getlength") else font.getbbox(text)[2]


def _wrap(text: str, font, width: float) -> list[str]:
    """``text`` in lines at most ``width`` wide, broken after a BREAKS character if possible, else anywhere.

    Never truncates: a label cut short could name another variant.
    """
    lines, rest = [], text
    while rest:
        if _text_width(font, rest) <= width:
            lines.append(rest)
            break
        fit = 1  # longest prefix that fits (at least one character, or the loop never ends)
        while fit < len(rest) and _text_width(font, rest[: fit + 1]) <= width:
            fit += 1
        cut = max((k + 1 for k in range(fit) if rest[k] in BREAKS), default=fit)
        lines.append(rest[:cut])
        rest = rest[cut:].lstrip(" ")
    return lines


def banner(lines: Sequence[str], width: int) -> np.ndarray:
    """A (B, width, 3) uint8 strip with ``lines`` written on it, wrapped to the width; B is even (yuv420p)."""
    font = _font(font_size(width))
    margin = max(2, font_size(width) // 4)
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (font_size(width), 2)
    line_height = ascent + descent
    wrapped = [
        (line, TEXT_COLOURS[min(k, 1)])
        for k, text in enumerate(lines)
        for line in _wrap(text, font, width - 2 * margin)
    ]
    height = 2 * margin + line_height * len(wrapped)
    height += height % 2
    image = Image.new("RGB", (width, height), BANNER_COLOUR)
    draw = ImageDraw.Draw(image)
    for row, (line, colour) in enumerate(wrapped):
        draw.text((margin, margin + row * line_height), line, fill=colour, font=font)
    return np.asarray(image, dtype=np.uint8)


def label_frames(frames: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """``frames`` (F,H,W,3) uint8 with the same banner (:func:`banner`) stacked above each: (F, B+H, W, 3)."""
    frames = np.asarray(frames, dtype=np.uint8)
    strip = banner(lines, frames.shape[2])
    strips = np.broadcast_to(strip, (frames.shape[0], *strip.shape))
    return np.concatenate([strips, frames], axis=1)


def video_label(variant: str, prompt: str) -> list[str]:
    """The label of a generated video: the variant name, then the prompt id."""
    return [variant, f"prompt: {prompt}"]


def encode_videos(
    frames_path: str | os.PathLike,
    fps: float,
    mp4_path: str | os.PathLike,
    gif_path: str | os.PathLike,
    label: Sequence[str],
) -> None:
    """frames.h5 -> labelled MP4 and GIF at ``fps`` frames per second, each written atomically."""
    frames = read_frames(frames_path).frames
    write_videos(label_frames(frames, label), fps, mp4_path, gif_path)
