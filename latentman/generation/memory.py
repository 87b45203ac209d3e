"""What a generation will need in memory, said in one line before denoising.

peak ≈ weights + frames per UNet call × working memory per frame

The weights are counted from the loaded modules. The working memory per frame is the 512² rehearsal's
(``benchmarks/bench_memory.py``, BENCHMARKS.md "Memory at the paper's size"): the SD1.5 + ControlNet
architecture, one denoising step per PWG mode, float32 on the CPU, a line fitted over chunks of frames;
shipped in ``latentman/data/memory_rehearsal.json``. It is scaled by the frame's area and the dtype's size,
and given only for UNets of SD1.5's widths (other architectures: the weights alone). An estimate, not a
guarantee: a GPU's kernels and allocator add their own; ``tools/gpu_check.sh`` measures the GPU.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

REHEARSAL_FILE = Path(__file__).resolve().parents[1] / "data" / "memory_rehearsal.json"
#: UNet widths the rehearsal measured (SD1.5, and every SD1.5 fine-tune such as the paper's)
SD15_WIDTHS = (320, 640, 1280, 1280)
GIB = 2**30


def rehearsal() -> dict | None:
    """The shipped fit: ``{"res": 512, "dtype": "float32", "per_frame_mib": {mode: MiB}, ...}``; None when
    the file is missing (the estimate then counts the weights alone: it only informs, never stops a run)."""
    return _read_rehearsal(str(REHEARSAL_FILE))


@lru_cache(maxsize=4)
def _read_rehearsal(path: str) -> dict | None:
    if not Path(path).is_file():
        return None
    data = json.loads(Path(path).read_text())
    if set(data["per_frame_mib"]) != {"off", "unet", "full", "decoder"}:
        raise ValueError(f"{path}: per_frame_mib must name the modes off, unet, full and decoder")
    return data


def weight_bytes(*modules: torch.nn.Module) -> int:
    """Bytes of the modules' parameters and buffers, each in its own dtype."""
    total = 0
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            total += tensor.numel() * tensor.element_size()
    return total


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int  # bytes
    per_frame: int | None  # bytes per frame of one UNet call; None: no rehearsal for this UNet
    frames_per_call: int
    why_none: str = ""  # why there is no per-frame estimate

    @property
    def total(self) -> int | None:
        return None if self.per_frame is None else self.weights + self.per_frame * self.frames_per_call

    def largest_chunk(self, free: int) -> int:
        """The most frames per UNet call that fit in ``free`` bytes (0: not even one)."""
        if self.per_frame is None or self.per_frame <= 0:
            raise ValueError("no per-frame estimate for this UNet")
        return max(0, (free - self.weights) // self.per_frame)


def estimate(
    unet_widths, weights: int, resolution: int, frames_per_call: int, pwg_mode: str | None, dtype: torch.dtype
) -> MemoryEstimate:
    """The estimate for ``frames_per_call`` frames of ``resolution``² per UNet call; ``pwg_mode`` None: no
    PWG on any step (else the gradient mode of the guided steps: their peak is the video's)."""
    fit = rehearsal()
    per_frame, why = None, ""
    if fit is None:
        why = f"no rehearsal file {REHEARSAL_FILE.name}"
    elif tuple(unet_widths) != SD15_WIDTHS:
        why = "the 512² rehearsal measured SD1.5's UNet widths only"
    else:
        mib = fit["per_frame_mib"]["off" if pwg_mode is None else pwg_mode]
        area = (resolution / fit["res"]) ** 2
        size = (
            torch.tensor([], dtype=dtype).element_size()
            / torch.tensor([], dtype=torch.float32).element_size()
        )
        per_frame = int(mib * 2**20 * area * size)
    return MemoryEstimate(weights, per_frame, frames_per_call, why)


def free_bytes(device: torch.device) -> int | None:
    """Free memory of the device: CUDA's free memory, or the host's MemAvailable; None if unknown."""
    try:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, RuntimeError, ValueError):
        return None
    return None


def memory_line(est: MemoryEstimate, free: int | None, device: torch.device, pwg_mode: str | None) -> str:
    """One line for the job's log; it ends in the chunk size that fits when the estimate exceeds ``free``."""
    guided = "without PWG" if pwg_mode is None else f"with PWG ({pwg_mode} gradient)"
    where = (
        f"{free / GIB:.1f} GiB free on {device}" if free is not None else f"free memory on {device} unknown"
    )
    if est.total is None:
        return (
            f"memory: weights {est.weights / GIB:.1f} GiB; no estimate of the working memory for this UNet "
            f"({est.why_none}); {where}"
        )
    line = (
        f"memory: about {est.total / GIB:.1f} GiB {guided} for {est.frames_per_call} frames per UNet call "
        f"(weights {est.weights / GIB:.1f} GiB + {est.per_frame / GIB:.2f} GiB per frame; estimate from the "
        f"512² rehearsal, BENCHMARKS.md); {where}"
    )
    if free is not None and est.total > free:
        fits = est.largest_chunk(free)
        advice = f"generation.chunk_size {fits} would fit" if fits else "not even one frame per call fits"
        line += f" -- more than is free: {advice}"
    return line
